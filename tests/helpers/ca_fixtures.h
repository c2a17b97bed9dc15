/* Shared test helpers for the CA core: certificates with arbitrary
 * extensions and validity, CSRs, PEM encodings, temporary files. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/authority.h"
#include "ca/key.h"

/* A fixed instant for deterministic tests: 2024-01-01T00:00:00Z. */
#define FX_NOW ((time_t)1704067200)

enum fx_bc {
	FX_BC_NONE,  /* no basicConstraints extension */
	FX_BC_CA,    /* critical CA:TRUE */
	FX_BC_LEAF,  /* critical CA:FALSE */
};

typedef struct fx_cert_opts {
	const char *cn;
	EVP_PKEY *key;        /* subject key (its public half goes in) */
	X509 *issuer;         /* NULL: self-signed with key */
	EVP_PKEY *issuer_key; /* ignored when issuer is NULL */
	enum fx_bc bc;
	unsigned int ku;      /* KU_* flags, 0 = no keyUsage */
	time_t not_before;
	time_t not_after;
} fx_cert_opts;

/* Aborts the test (fail()) on any error. */
X509 *fx_make_cert(const fx_cert_opts *o);
/* A generated CA valid from now - backdate to now + lifetime_secs. */
ca_authority *fx_make_ca(sigil_keyalg alg, time_t now, int64_t lifetime_secs);
EVP_PKEY *fx_make_key(sigil_keyalg alg);
/* A DER CSR for key (CN optional); free with free(). */
uint8_t *fx_make_csr(EVP_PKEY *key, const char *cn, size_t *len);

/* PEM encodings (malloc'ed, NUL-terminated). */
char *fx_cert_pem(X509 *x);
char *fx_certs_pem(X509 *const *xs, size_t n);
char *fx_key_pem(EVP_PKEY *key);
/* PKCS#8 encrypted with AES-256-CBC under passphrase. */
char *fx_key_pem_encrypted(EVP_PKEY *key, const char *passphrase);

/* A fresh directory under $TMPDIR (free with fx_rmdir). */
char *fx_tmpdir(void);
void fx_rmdir(char *dir);
/* Writes dir/name and returns the malloc'ed path. */
char *fx_write(const char *dir, const char *name, const void *data, size_t len);
