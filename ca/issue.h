/* Issuing leaf certificates from a CSR or a bare public key, and building
 * CSRs on the node. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ca/authority.h"
#include "util/err.h"

#define CA_MAX_CSR_DER 16384
#define CA_DEFAULT_LEAF_LIFETIME_SECS (24LL * 3600)
/* Stackable: maxCertificateLifetime defaults to 15 days. */
#define CA_DEFAULT_MAX_LEAF_LIFETIME_SECS (15LL * 86400)

typedef struct ca_leaf_request {
	const char *common_name;          /* optional; <= CA_MAX_CN_LEN */
	const char *const *domain_components; /* optional DC=..., most significant first */
	size_t n_domain_components;
	const char *const *dns;           /* DNS SANs */
	size_t n_dns;
	const char *const *ips;           /* IP SANs, text form */
	size_t n_ips;
	const char *const *uris;          /* URI SANs */
	size_t n_uris;
	bool allow_wildcards;             /* policy: "*.x.y" DNS names */
	int64_t lifetime_secs;            /* requested, > 0 */
	int64_t max_lifetime_secs;        /* class maximum; 0 = CA_DEFAULT_MAX_LEAF_LIFETIME_SECS */
	int64_t ca_retirement_secs;       /* leaf must end this long before the CA does */
	double jitter_factor;             /* 0 <= f < 1: shorten lifetime by up to f */
	time_t now;                       /* 0 = wall clock */
} ca_leaf_request;

/* Signs a leaf for the public key of a DER CSR after verifying the CSR's own
 * signature.  The CSR's subject and extensions are ignored: the names come
 * from req (the CA decides the names).  notAfter = now + lifetime, where
 * lifetime = min(requested, class max, CA notAfter - retirement - now),
 * then shortened by a random jitter; notBefore backdated CA_BACKDATE_SECS.
 * Extensions: basicConstraints CA:FALSE, keyUsage by key type, EKU
 * serverAuth+clientAuth, SAN (critical when the subject is empty), SKI, AKI. */
int ca_issue_from_csr(const ca_authority *ca, const uint8_t *csr_der, size_t csr_len,
		      const ca_leaf_request *req, X509 **ret, sigil_err *err) SIGIL_WUR;
int ca_issue_from_pubkey(const ca_authority *ca, EVP_PKEY *pubkey, const ca_leaf_request *req,
			 X509 **ret, sigil_err *err) SIGIL_WUR;

/* Node side: a DER CSR signed by key (subject CN optional, no extensions). */
/* The certificate carries at least one iPAddress subjectAltName. */
bool ca_cert_has_ip_san(X509 *cert);
int ca_csr_create(EVP_PKEY *key, const char *common_name, uint8_t **ret_der, size_t *ret_len,
		  sigil_err *err) SIGIL_WUR;

/* Parses and verifies a DER CSR, returning its public key. */
int ca_csr_parse(const uint8_t *der, size_t len, EVP_PKEY **ret_pubkey, sigil_err *err) SIGIL_WUR;
