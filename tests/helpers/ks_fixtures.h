/* Test material for the keystore tests, made with plain OpenSSL calls (no
 * dependency on ca/): a root CA, an intermediate and a leaf per key type,
 * plus helpers to write files and run the real tools (openssl, keytool). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "keystore/keystore.h"

typedef enum ksf_alg {
	KSF_RSA,
	KSF_EC,
	KSF_ED25519,
} ksf_alg;

typedef struct ksf_pki {
	ksf_alg alg;
	EVP_PKEY *root_key, *inter_key, *leaf_key;
	X509 *root, *inter, *leaf;
	X509 *other_root;       /* a second, unrelated root (EC) for multi-cert bundles */
	STACK_OF(X509) *chain;  /* [inter] */
	STACK_OF(X509) *trust;  /* [root, other_root] */
} ksf_pki;

const char *ksf_alg_name(ksf_alg alg);
/* Builds root -> intermediate -> leaf (CN=leaf.example, SAN DNS). Aborts
 * the test on failure. */
void ksf_pki_new(ksf_alg alg, ksf_pki *p);
void ksf_pki_free(ksf_pki *p);
/* Material over p (borrowed pointers). */
ks_material ksf_material(const ksf_pki *p);

/* The file called name in fs, or NULL. */
const ks_file *ksf_find(const ks_fileset *fs, const char *name);

/* A fresh private temp directory (malloc'ed path); remove with ksf_rmdir. */
char *ksf_mkdtemp(void);
void ksf_rmdir(char *dir);
/* Writes dir/name; returns the malloc'ed full path. */
char *ksf_write(const char *dir, const char *name, const void *data, size_t len);
/* Reads a whole file (malloc'ed). */
unsigned char *ksf_read(const char *path, size_t *len);

/* Runs a shell command with stdout+stderr captured; returns the exit status
 * (-1 when it could not run) and the output in *out (malloc'ed, NUL-ended). */
int ksf_run(const char *cmd, char **out);
/* Whether a program is on PATH. */
bool ksf_have(const char *prog);
/* Number of occurrences of needle in hay. */
size_t ksf_count(const char *hay, const char *needle);

/* Whether two keys are the same key pair. */
bool ksf_key_eq(const EVP_PKEY *a, const EVP_PKEY *b);
/* Whether two keys have byte-identical PKCS#8 encodings. */
bool ksf_key_der_eq(EVP_PKEY *a, EVP_PKEY *b);

/* Runs `keytool ARGS` with the environment variable KSF_PW set to password
 * (pass "-storepass:env KSF_PW" in args): no quoting, works for "". */
int ksf_keytool(const char *args, const char *password, char **out);
/* Whether needle occurs in the (not NUL-terminated) bytes d[0..len). */
bool ksf_contains(const void *d, size_t len, const char *needle);
