/* Output formats of a TLS volume: tls-pem, tls-pkcs12, tls-jks.
 *
 * A format renders key material into a set of named files in memory; the
 * caller (csi/ volume writer, sigilctl) writes them.  Nothing here touches
 * the file system. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "util/err.h"

#define KS_MAX_FILES 8
#define KS_MAX_PASSWORD_LEN 256
#define KS_MAX_ALIAS_LEN 64
#define KS_MAX_CHAIN 16
#define KS_MAX_TRUST 64

typedef enum ks_format {
	KS_FORMAT_PEM,
	KS_FORMAT_PKCS12,
	KS_FORMAT_JKS,
} ks_format;

/* "tls-pem", "tls-pkcs12", "tls-jks". */
int ks_format_parse(const char *s, ks_format *ret) SIGIL_WUR;
const char *ks_format_name(ks_format f);

typedef struct ks_material {
	EVP_PKEY *key;          /* NULL for provision-parts=public */
	X509 *leaf;             /* NULL for provision-parts=public */
	STACK_OF(X509) *chain;  /* intermediates above leaf, issuer order; never the root; may be NULL */
	STACK_OF(X509) *trust;  /* trust bundle (CA certificates); required */
} ks_material;

typedef struct ks_options {
	const char *password;        /* keystore password; NULL or "" = empty */
	bool pkcs12_legacy;          /* PBE-SHA1-3DES + SHA-1 MAC instead of PBES2/AES-256/SHA-256 */
	const char *alias;           /* key entry alias; default "1" */
	/* File names (default in parentheses); may contain '/', never "..". */
	const char *pem_cert_name;   /* tls.crt */
	const char *pem_key_name;    /* tls.key */
	const char *pem_ca_name;     /* ca.crt */
	const char *keystore_name;   /* keystore.p12 / keystore.jks */
	const char *truststore_name; /* truststore.p12 / truststore.jks */
} ks_options;

typedef struct ks_file {
	char *name;
	uint8_t *data;
	size_t len;
	bool secret; /* holds a private key: wiped on free */
} ks_file;

typedef struct ks_fileset {
	ks_file files[KS_MAX_FILES];
	size_t n;
} ks_fileset;

/* Renders material in format f.  With material->key == NULL only the trust
 * files are produced (ca.crt / truststore).  On failure *out is empty. */
int ks_render(ks_format f, const ks_material *m, const ks_options *opts, ks_fileset *out,
	      sigil_err *err) SIGIL_WUR;
void ks_fileset_free(ks_fileset *fs);
/* Adds a file (takes ownership of data) — for format implementations. */
int ks_fileset_add(ks_fileset *fs, const char *name, uint8_t *data, size_t len, bool secret,
		   sigil_err *err) SIGIL_WUR;

/* tls-pem pieces (keystore/pem.c). */
int ks_pem_render(const ks_material *m, const ks_options *opts, ks_fileset *out,
		  sigil_err *err) SIGIL_WUR;
/* tls-pkcs12 (keystore/pkcs12.c): keystore with key+chain under alias, and
 * a truststore whose certificate bags carry Java's trusted-key-usage
 * attribute (OID 2.16.840.1.113894.746875.1.1 = anyExtendedKeyUsage). */
int ks_pkcs12_render(const ks_material *m, const ks_options *opts, ks_fileset *out,
		     sigil_err *err) SIGIL_WUR;
/* tls-jks (keystore/jks.c): Sun JKS v2 keystore and truststore. */
int ks_jks_render(const ks_material *m, const ks_options *opts, ks_fileset *out,
		  sigil_err *err) SIGIL_WUR;

/* JKS reader (for sigilctl inspect, tests and fuzzing): verifies the keyed
 * SHA-1 integrity digest with password and lists the entries.  Untrusted
 * input: bounded by KS_JKS_MAX_* limits. */
#define KS_JKS_MAX_ENTRIES 256
#define KS_JKS_MAX_CERT_LEN 65536
#define KS_JKS_MAX_CHAIN 32

typedef struct ks_jks_entry {
	char alias[KS_MAX_ALIAS_LEN + 1];
	bool is_key;          /* PrivateKeyEntry; otherwise trustedCertEntry */
	int64_t created_ms;
	size_t n_certs;       /* chain length (key) or 1 (trusted) */
	X509 *cert;           /* first certificate (leaf or trusted cert) */
	EVP_PKEY *key;        /* decrypted private key when is_key; wiped on free */
} ks_jks_entry;

typedef struct ks_jks {
	ks_jks_entry *entries;
	size_t n;
} ks_jks;

int ks_jks_parse(const uint8_t *data, size_t len, const char *password, ks_jks *ret,
		 sigil_err *err) SIGIL_WUR;
void ks_jks_free(ks_jks *j);
