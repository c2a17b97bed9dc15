/* A pool of pre-generated private keys, so that an RSA mount does not wait
 * ~100-200 ms for key generation (DESIGN.md gotchas).  A background thread
 * keeps each configured algorithm topped up to its target depth; a take on
 * an empty pool generates inline.  Keys never leave the node. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "ca/key.h"
#include "util/err.h"

#define CSI_KEYPOOL_MAX_DEPTH 1024

typedef struct csi_keypool csi_keypool;

/* depth[alg] keys are kept ready for each algorithm (0: none pooled). */
int csi_keypool_new(const size_t depth[SIGIL_KEY__COUNT], csi_keypool **ret,
		    sigil_err *err) SIGIL_WUR;
/* Stops the refill thread and frees every pooled key. Accepts NULL. */
void csi_keypool_free(csi_keypool *p);
/* A fresh key of alg: from the pool if one is ready, else generated now.
 * *from_pool tells which (may be NULL). */
int csi_keypool_take(csi_keypool *p, sigil_keyalg alg, EVP_PKEY **ret, bool *from_pool,
		     sigil_err *err) SIGIL_WUR;
/* Keys ready now for alg. */
size_t csi_keypool_ready(csi_keypool *p, sigil_keyalg alg);
/* Blocks until every pool is full or timeout_ms passes; true when full. */
bool csi_keypool_wait_full(csi_keypool *p, int timeout_ms);
