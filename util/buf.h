/* Bounded byte buffers.
 *
 * sigil_rbuf is a read cursor over untrusted bytes: every getter checks the
 * remaining length first and never advances on failure (s2n stuffer,
 * OpenSSH sshbuf).  sigil_wbuf is a growable output buffer with a hard size
 * limit; it can be marked secret, so that every reallocation and the final
 * free wipe the old bytes. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef struct sigil_rbuf {
	const uint8_t *p;
	size_t len;
	size_t off;
} sigil_rbuf;

void sigil_rbuf_init(sigil_rbuf *b, const void *p, size_t len);
size_t sigil_rbuf_remaining(const sigil_rbuf *b);
int sigil_rbuf_get_u8(sigil_rbuf *b, uint8_t *ret) SIGIL_WUR;
int sigil_rbuf_get_u16be(sigil_rbuf *b, uint16_t *ret) SIGIL_WUR;
int sigil_rbuf_get_u32be(sigil_rbuf *b, uint32_t *ret) SIGIL_WUR;
int sigil_rbuf_get_u64be(sigil_rbuf *b, uint64_t *ret) SIGIL_WUR;
/* Points *ret at the next n bytes (no copy). */
int sigil_rbuf_get_bytes(sigil_rbuf *b, size_t n, const uint8_t **ret) SIGIL_WUR;

typedef struct sigil_wbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
	size_t max;   /* hard limit; appends beyond it fail with SIGIL_E_LIMIT */
	bool secret;  /* wipe on growth and free */
	int failed;   /* first error; later appends are no-ops */
} sigil_wbuf;

void sigil_wbuf_init(sigil_wbuf *b, size_t max, bool secret);
/* Appends; on failure records it in b->failed, so a sequence of appends can
 * be checked once with sigil_wbuf_status. */
int sigil_wbuf_put(sigil_wbuf *b, const void *p, size_t n);
int sigil_wbuf_put_u8(sigil_wbuf *b, uint8_t v);
int sigil_wbuf_put_u16be(sigil_wbuf *b, uint16_t v);
int sigil_wbuf_put_u32be(sigil_wbuf *b, uint32_t v);
int sigil_wbuf_put_u64be(sigil_wbuf *b, uint64_t v);
int sigil_wbuf_putf(sigil_wbuf *b, const char *fmt, ...) SIGIL_PRINTF(2, 3);
int sigil_wbuf_status(const sigil_wbuf *b) SIGIL_WUR;
/* Hands out the bytes (NUL-terminated for convenience; *len excludes it)
 * and resets b. */
uint8_t *sigil_wbuf_steal(sigil_wbuf *b, size_t *len);
void sigil_wbuf_free(sigil_wbuf *b);
