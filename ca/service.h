/* The CA service core: SecretClasses with their CA sets, and the decisions
 * a CA makes for each request (names from scopes, lifetime caps, signer).
 * Used in-process by sigil-csi's embedded CA (standalone mode) and behind
 * the issuer gRPC API by sigil-ca; both see the same behaviour.
 * Thread-safe: one lock per class. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "ca/caset.h"
#include "ca/key.h"
#include "ca/scopes.h"
#include "ca/store.h"
#include "util/clock.h"

#define CA_SERVICE_MAX_CLASSES 64
/* Stackable's built-in class: autoTls with a generated CA. */
#define CA_SERVICE_DEFAULT_CLASS "tls"

typedef enum ca_backend_kind {
	CA_BACKEND_AUTOTLS,
	CA_BACKEND_KERBEROS,
} ca_backend_kind;

typedef struct ca_class_config {
	char name[CA_STORE_MAX_CLASS_LEN + 1];
	ca_backend_kind backend;
	/* autoTls */
	sigil_keyalg ca_key_alg;       /* generated CAs */
	sigil_keyalg leaf_key_alg;     /* default for volumes that do not ask */
	int64_t ca_lifetime_secs;      /* caCertificateLifetime, default 365d */
	int64_t retirement_secs;       /* caCertificateRetirementDuration, default 1h */
	int64_t max_leaf_lifetime_secs;/* maxCertificateLifetime, default 15d */
	bool auto_generate;            /* ca.autoGenerate */
	bool allow_wildcards;          /* name policy */
} ca_class_config;

/* Fills the defaults of a class named name (Stackable's defaults; keys
 * ECDSA P-256). */
void ca_class_config_defaults(ca_class_config *c, const char *name);

typedef struct ca_service ca_service;

typedef struct ca_service_config {
	ca_store *store;               /* borrowed; must outlive the service */
	const ca_class_config *classes;/* copied; NULL/0: only the default "tls" class */
	size_t n_classes;
	const char *cluster_domain;    /* NULL: cluster.local */
	const sigil_clock *clock;      /* NULL: real clock */
} ca_service_config;

int ca_service_new(const ca_service_config *cfg, ca_service **ret, sigil_err *err) SIGIL_WUR;
void ca_service_free(ca_service *svc);

typedef struct ca_issue_request {
	const char *class_name;
	const ca_identity *identity;   /* cluster_domain is taken from the service */
	const ca_scope *scopes;
	size_t n_scopes;
	const uint8_t *csr_der;        /* NULL: public parts only (trust bundle) */
	size_t csr_len;
	int64_t lifetime_secs;         /* requested */
	double jitter_factor;
} ca_issue_request;

typedef struct ca_issue_result {
	X509 *leaf;                    /* NULL for public parts only */
	STACK_OF(X509) *chain;         /* intermediates above the leaf (never the root) */
	STACK_OF(X509) *trust;         /* trust bundle */
	uint64_t bundle_version;
	time_t not_after;
} ca_issue_result;

/* Unknown class: SIGIL_E_NOTFOUND.  Bad CSR or names: SIGIL_E_INVALID /
 * SIGIL_E_LIMIT.  Facts missing for a scope: SIGIL_E_PRECOND. */
int ca_service_issue(ca_service *svc, const ca_issue_request *req, ca_issue_result *ret,
		     sigil_err *err) SIGIL_WUR;
void ca_issue_result_free(ca_issue_result *r);

int ca_service_trust_bundle(ca_service *svc, const char *class_name, STACK_OF(X509) **ret,
			    uint64_t *ret_version, sigil_err *err) SIGIL_WUR;
int ca_service_class(ca_service *svc, const char *class_name, ca_class_config *ret,
		     sigil_err *err) SIGIL_WUR;
/* Re-reads the stores and rotates where due; *changed when any bundle changed. */
int ca_service_refresh(ca_service *svc, bool *changed, sigil_err *err) SIGIL_WUR;
int ca_service_rotate(ca_service *svc, const char *class_name, sigil_err *err) SIGIL_WUR;
/* Every autoTls class has a usable CA. */
bool ca_service_ready(ca_service *svc);
