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
	CA_BACKEND_AUTOTLS,  /* spec.backend.autoTls */
	CA_BACKEND_EXTERNAL, /* spec.backend.externalCa (sigil): cfssl or Vault PKI */
	CA_BACKEND_KERBEROS, /* spec.backend.kerberosKeytab */
} ca_backend_kind;

#define CA_CLASS_MAX_PATH 256
#define CA_CLASS_MAX_URL 512
#define CA_CLASS_MAX_TRUST_ROOTS 8
#define CA_CLASS_MAX_DOMAINS 16
#define CA_CLASS_MAX_NAME 254

/* A reference to a Kubernetes Secret (or ConfigMap).  Standalone, it names
 * the directory SECRETS_DIR/<namespace>/<name>/ holding the Secret's keys as
 * files (ca.crt, ca.key, ...), which is also how a mounted Secret looks. */
typedef struct ca_object_ref {
	char name[CA_CLASS_MAX_NAME];
	char namespace_[64];
	bool config_map; /* additionalTrustRoots may name a ConfigMap */
} ca_object_ref;

typedef enum ca_external_kind {
	CA_EXTERNAL_CFSSL, /* POST /api/v1/cfssl/sign or authsign */
	CA_EXTERNAL_VAULT, /* POST /v1/<mount>/sign/<role> */
} ca_external_kind;

typedef struct ca_external_config {
	ca_external_kind kind;
	char url[CA_CLASS_MAX_URL];            /* https://host:port (http only for tests) */
	char ca_file[CA_CLASS_MAX_PATH];       /* PEM roots for the external CA's TLS; empty: system */
	char auth_key_file[CA_CLASS_MAX_PATH]; /* cfssl authsign: file with the hex HMAC key */
	char profile[64];                      /* cfssl profile; empty: default */
	char token_file[CA_CLASS_MAX_PATH];    /* Vault token */
	char mount[128];                       /* Vault PKI mount, default "pki" */
	char role[128];                        /* Vault role */
	int64_t timeout_ms;                    /* default 10000 */
} ca_external_config;

typedef struct ca_kerberos_config {
	char realm[256];                       /* realmName */
	char kdc[256];                         /* kdc host[:port] */
	char admin_server[256];                /* admin.mit.kadminServer */
	char admin_keytab[CA_CLASS_MAX_PATH];  /* adminKeytabSecret (standalone: a path) */
	char admin_principal[256];             /* adminPrincipal */
} ca_kerberos_config;

typedef struct ca_class_config {
	char name[CA_STORE_MAX_CLASS_LEN + 1];
	ca_backend_kind backend;
	/* autoTls */
	sigil_keyalg ca_key_alg;       /* generated CAs (ca.keyGeneration / sigil keyAlgorithm) */
	sigil_keyalg leaf_key_alg;     /* default for volumes that do not ask */
	int64_t ca_lifetime_secs;      /* caCertificateLifetime, default 365d */
	int64_t retirement_secs;       /* caCertificateRetirementDuration, default 1h */
	int64_t max_leaf_lifetime_secs;/* maxCertificateLifetime, default 15d */
	bool auto_generate;            /* ca.autoGenerate */
	bool has_ca_secret;            /* ca.secret: with autoGenerate false, an imported (company) CA */
	ca_object_ref ca_secret;
	ca_object_ref trust_roots[CA_CLASS_MAX_TRUST_ROOTS]; /* additionalTrustRoots */
	size_t n_trust_roots;
	/* Name policy (sigil): wildcards, and DNS suffixes every name must end in. */
	bool allow_wildcards;
	char allowed_domains[CA_CLASS_MAX_DOMAINS][CA_CLASS_MAX_NAME];
	size_t n_allowed_domains;
	ca_external_config external;   /* backend == CA_BACKEND_EXTERNAL */
	ca_kerberos_config kerberos;   /* backend == CA_BACKEND_KERBEROS */
} ca_class_config;

/* Fills the defaults of a class named name (Stackable's defaults; keys
 * ECDSA P-256). */
void ca_class_config_defaults(ca_class_config *c, const char *name);

typedef struct ca_service ca_service;
struct ca_external_request; /* ca/external.h */

typedef struct ca_service_config {
	ca_store *store;               /* borrowed; must outlive the service */
	const ca_class_config *classes;/* copied; NULL/0: only the default "tls" class */
	size_t n_classes;
	const char *cluster_domain;    /* NULL: cluster.local */
	const char *secrets_dir;       /* standalone Secrets: DIR/<ns>/<name>/<key>; NULL: none */
	/* externalCa signing (ca/external.h ca_external_sign).  A function
	 * pointer so that only sigil-ca links libcurl: the node's embedded CA
	 * leaves it NULL and refuses externalCa classes. */
	int (*external_sign)(const ca_external_config *cfg, const struct ca_external_request *req,
			     X509 **ret_leaf, STACK_OF(X509) **ret_chain, sigil_err *err);
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

typedef struct ca_generation_info {
	uint64_t generation;
	char subject[256];
	char key_type[32];
	time_t not_before;
	time_t not_after;
	bool retired;
} ca_generation_info;

typedef struct ca_class_status {
	char name[CA_STORE_MAX_CLASS_LEN + 1];
	ca_backend_kind backend;
	ca_generation_info gens[CA_STORE_MAX_GENERATIONS];
	size_t n_gens;
	uint64_t bundle_version;
} ca_class_status;

size_t ca_service_class_count(ca_service *svc);
/* Status of the index-th class (0 <= index < count). */
int ca_service_status(ca_service *svc, size_t index, ca_class_status *ret, sigil_err *err) SIGIL_WUR;
const char *ca_backend_name(ca_backend_kind k);

/* The DNS domain names are made in (cluster.local unless configured). */
const char *ca_service_cluster_domain(const ca_service *svc);
/* The file holding key `key` of a Secret given as a class field stores it:
 * an absolute path is the file itself (standalone), "<namespace>/<name>" is
 * SECRETS_DIR/<namespace>/<name>/<key> (a mounted Secret).  *ret is
 * malloc'ed.  SIGIL_E_INVALID for a malformed reference, SIGIL_E_PRECOND
 * when a reference needs a secrets directory and none is configured. */
int ca_service_secret_file(const ca_service *svc, const char *ref, const char *key, char **ret,
			   sigil_err *err) SIGIL_WUR;
