/* externalCa backends: a company CA signs the node's CSR over HTTPS.
 *
 * Two APIs are spoken (libcurl + jansson):
 *  - cfssl: POST {url}/api/v1/cfssl/info for the signer's certificate, then
 *    POST {url}/api/v1/cfssl/sign, or /authsign when an HMAC key file is
 *    configured (token = HMAC-SHA256(key, request bytes), cfssl auth.Standard).
 *    cfssl's API has no lifetime field: the profile's expiry decides.
 *  - Vault PKI: POST {url}/v1/{mount}/sign/{role} with X-Vault-Token.
 *
 * cfg->timeout_ms bounds each HTTP request (connect included); cfssl makes
 * two (info, then sign).  Redirects are not followed.
 *
 * Whatever the CA answers is checked before it is handed out: exactly one
 * leaf for the CSR's own public key, currently valid, not a CA; chain
 * certificates that each sign the one below.  Self-signed roots are dropped
 * from the chain (the trust bundle carries them). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "ca/service.h"
#include "util/err.h"

/* Largest response body accepted from a CA; the transfer is aborted beyond. */
#define CA_EXTERNAL_MAX_RESPONSE (1024 * 1024)
/* Token and HMAC key files (secrets). */
#define CA_EXTERNAL_MAX_SECRET_FILE 8192
/* Certificates accepted in one response (leaf + chain + roots). */
#define CA_EXTERNAL_MAX_CERTS 16
#define CA_EXTERNAL_DEFAULT_TIMEOUT_MS 10000
#define CA_EXTERNAL_MAX_TIMEOUT_MS (10 * 60 * 1000)
/* Error text quoted from a CA. */
#define CA_EXTERNAL_MAX_QUOTE 200

typedef struct ca_external_request {
	const uint8_t *csr_der;        /* verified here (signature, supported key) */
	size_t csr_len;
	const char *common_name;       /* optional */
	const char *const *dns;        /* DNS SANs (no commas: Vault joins them) */
	size_t n_dns;
	const char *const *ips;        /* IP SANs, text form */
	size_t n_ips;
	int64_t lifetime_secs;         /* Vault "ttl"; <= 0: the role's default */
} ca_external_request;

/* Signs req at the external CA described by cfg.  On success *ret_leaf is the
 * new certificate and *ret_chain the intermediates above it (never the root;
 * may be empty).
 * Errors: SIGIL_E_UNAVAIL for an unreachable CA, a timeout, TLS failures,
 * HTTP 5xx/429; SIGIL_E_PERM when the CA refuses the credentials (HTTP
 * 401/403, cfssl "invalid token"); SIGIL_E_INVALID for a refused request or
 * an answer that is malformed or does not match the CSR; SIGIL_E_LIMIT for
 * an oversized answer; SIGIL_E_NOTFOUND / SIGIL_E_PERM for missing or
 * unreadable token and key files. */
int ca_external_sign(const ca_external_config *cfg, const ca_external_request *req,
		     X509 **ret_leaf, STACK_OF(X509) **ret_chain, sigil_err *err) SIGIL_WUR;
