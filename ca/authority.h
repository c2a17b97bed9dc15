/* A certificate authority: a CA certificate with its private key, and for an
 * imported company intermediate the chain above it. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/key.h"
#include "util/err.h"

#define CA_DEFAULT_LIFETIME_SECS (365LL * 86400)
#define CA_BACKDATE_SECS (5 * 60)
#define CA_MAX_SUBJECT_LEN 256
/* Serials are random, positive, at most 20 octets (RFC 5280 4.1.2.2). */
#define CA_SERIAL_BYTES 16
/* Certificates in an imported CA's chain (and in one PEM blob we import). */
#define CA_MAX_CHAIN 16

typedef struct ca_authority {
	X509 *cert;
	EVP_PKEY *key;
	/* Imported CA only: intermediates above cert, issuer order, may be empty. */
	STACK_OF(X509) *chain;
	/* Imported CA only: the self-signed root (from the chain file, or the
	 * CA itself when it is self-signed). */
	X509 *root;
	/* A signing context initialised once for key, which
	 * ca_authority_sign_cert copies instead of setting one up per
	 * certificate.  Set by ca_authority_create and _import/_from_pem,
	 * NULL in an authority assembled by hand (then each signature
	 * initialises its own); only read afterwards, so threads share it. */
	EVP_MD_CTX *sign_ctx;
} ca_authority;

typedef struct ca_create_opts {
	sigil_keyalg alg;
	const char *common_name; /* default "sigil CA" */
	const char *organization; /* optional O= */
	int64_t lifetime_secs;    /* default CA_DEFAULT_LIFETIME_SECS */
	time_t now;               /* notBefore = now - CA_BACKDATE_SECS; 0 = wall clock */
} ca_create_opts;

/* A new self-signed root: basicConstraints critical CA:TRUE, keyUsage
 * critical keyCertSign+cRLSign, SKI, AKI, random serial. */
int ca_authority_create(const ca_create_opts *opts, ca_authority **ret, sigil_err *err) SIGIL_WUR;

/* Imports a company CA from PEM files: cert_path holds the CA certificate
 * (optionally followed by its chain), key_path its key (possibly encrypted:
 * the passphrase is the first line of passphrase_path), chain_path
 * (optional) the intermediates and/or root above it.  Refuses, naming the
 * reason: a key that does not match the certificate, a certificate that is
 * not a CA (basicConstraints CA:TRUE and keyCertSign when keyUsage is
 * present), a certificate not yet valid or expired at now (0 = wall
 * clock), a chain that does not link up or holds certificates off the path. */
int ca_authority_import(const char *cert_path, const char *key_path, const char *passphrase_path,
			const char *chain_path, time_t now, ca_authority **ret, sigil_err *err) SIGIL_WUR;
/* The same from PEM bytes in memory (passphrase may be NULL). */
int ca_authority_from_pem(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
			  const char *passphrase, const char *chain_pem, size_t chain_len, time_t now,
			  ca_authority **ret, sigil_err *err) SIGIL_WUR;
void ca_authority_free(ca_authority *ca);
/* Sets up what create/import derive from cert and key (sign_ctx) in an
 * authority assembled by hand; a no-op when already done. */
int ca_authority_prepare(ca_authority *ca, sigil_err *err) SIGIL_WUR;

time_t ca_authority_not_after(const ca_authority *ca);
time_t ca_authority_not_before(const ca_authority *ca);

/* Helpers shared by ca/ and keystore/ */
time_t ca_asn1_time_to_time_t(const ASN1_TIME *t);
/* Parses every certificate in a PEM blob (at least one, at most max). */
int ca_certs_from_pem(const char *pem, size_t len, size_t max, STACK_OF(X509) **ret,
		      sigil_err *err) SIGIL_WUR;
/* Appends the PEM of each certificate in certs to out. */
int ca_certs_to_pem(STACK_OF(X509) *certs, char **ret, size_t *len, sigil_err *err) SIGIL_WUR;

/* Certificate building blocks shared by ca/authority.c and ca/issue.c. */
/* Serial: CA_SERIAL_BYTES random bytes, top bit cleared, never zero. */
int ca_cert_set_random_serial(X509 *x, sigil_err *err) SIGIL_WUR;
int ca_cert_set_validity(X509 *x, time_t not_before, time_t not_after, sigil_err *err) SIGIL_WUR;
/* Critical basicConstraints (CA:TRUE or CA:FALSE, no pathlen). */
int ca_cert_add_basic_constraints(X509 *x, bool is_ca, sigil_err *err) SIGIL_WUR;
/* Critical keyUsage; bits are KU_* flags from <openssl/x509v3.h>. */
int ca_cert_add_key_usage(X509 *x, unsigned int ku_flags, sigil_err *err) SIGIL_WUR;
/* SKI = SHA-1 of x's public key (RFC 5280 4.2.1.2 method 1) and AKI keyid =
 * the issuer's SKI (or the hash of its key when it has none); issuer NULL
 * means self-signed. */
int ca_cert_add_key_ids(X509 *x, X509 *issuer, sigil_err *err) SIGIL_WUR;
/* Signs with the digest ca_key_sign_digest chooses for key. */
int ca_cert_sign(X509 *x, EVP_PKEY *key, sigil_err *err) SIGIL_WUR;
/* The same with ca's key, through ca->sign_ctx when it is set. */
int ca_authority_sign_cert(const ca_authority *ca, X509 *x, sigil_err *err) SIGIL_WUR;
