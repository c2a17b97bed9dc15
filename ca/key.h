/* Key algorithms and key generation (the only place sigil makes keys). */
#pragma once
#include <stdbool.h>

#include <openssl/evp.h>

#include "util/err.h"

typedef enum sigil_keyalg {
	SIGIL_KEY_RSA2048,
	SIGIL_KEY_RSA3072,
	SIGIL_KEY_RSA4096,
	SIGIL_KEY_ECDSA_P256,
	SIGIL_KEY_ECDSA_P384,
	SIGIL_KEY_ED25519,
	SIGIL_KEY__COUNT
} sigil_keyalg;

/* "rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ed25519". */
int ca_keyalg_parse(const char *s, sigil_keyalg *ret) SIGIL_WUR;
const char *ca_keyalg_name(sigil_keyalg alg);
bool ca_keyalg_is_rsa(sigil_keyalg alg);

int ca_key_generate(sigil_keyalg alg, EVP_PKEY **ret, sigil_err *err) SIGIL_WUR;
/* Which of our algorithms a key is; SIGIL_E_INVALID for anything else
 * (RSA < 2048 bits, other curves, DSA...). */
int ca_key_alg(const EVP_PKEY *key, sigil_keyalg *ret) SIGIL_WUR;
/* The digest to sign with this key: SHA-256 for RSA and P-256, SHA-384 for
 * P-384, SHA-512 for P-521, NULL (*ret) for Ed25519/Ed448, which hash
 * internally.  SIGIL_E_INVALID for keys that cannot sign certificates. */
int ca_key_sign_digest(const EVP_PKEY *key, const EVP_MD **ret, sigil_err *err) SIGIL_WUR;
/* Human-readable description, e.g. "ECDSA P-256", "RSA 2048". */
const char *ca_key_describe(const EVP_PKEY *key, char *buf, size_t len);

/* PKCS#8 PEM (unencrypted) of a private key; the result is secret: free it
 * with sigil_freezero(p, len). */
int ca_key_to_pkcs8_pem(EVP_PKEY *key, char **ret, size_t *len, sigil_err *err) SIGIL_WUR;
/* Reads a PEM private key; passphrase may be NULL for an unencrypted key. */
int ca_key_from_pem(const char *pem, size_t len, const char *passphrase, EVP_PKEY **ret,
		    sigil_err *err) SIGIL_WUR;
