/* Where a node gets its certificates signed: the embedded CA (standalone,
 * ca_service in-process) or a remote sigil-ca over the issuer API.  The
 * publish pipeline only sees this interface. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ca/service.h"

typedef struct csi_issuer csi_issuer;

/* A Kerberos volume: the CA turns the scopes and service names into
 * principals "{service}/{name}@{REALM}" (the node never names one). */
typedef struct csi_keytab_request {
	const char *class_name;
	const ca_identity *identity;      /* node name, pod namespace and name */
	const ca_scope *scopes;
	size_t n_scopes;
	const char *const *service_names; /* at least one */
	size_t n_service_names;
	bool public_only;                 /* krb5.conf only, no principal */
} csi_keytab_request;

typedef struct csi_keytab_result {
	uint8_t *keytab;                  /* secret; NULL when public_only */
	size_t keytab_len;
	char *krb5_conf;                  /* NUL-terminated */
	size_t krb5_conf_len;
	size_t n_principals;
} csi_keytab_result;

/* Wipes the keytab; accepts NULL. */
void csi_keytab_result_free(csi_keytab_result *r);

typedef struct csi_issuer_ops {
	int (*issue)(csi_issuer *is, const ca_issue_request *req, ca_issue_result *ret,
		     sigil_err *err);
	int (*trust_bundle)(csi_issuer *is, const char *class_name, STACK_OF(X509) **ret,
			    uint64_t *ret_version, sigil_err *err);
	int (*class_info)(csi_issuer *is, const char *class_name, ca_class_config *ret,
			  sigil_err *err);
	bool (*ready)(csi_issuer *is);
	void (*free)(csi_issuer *is);
	/* Kerberos volumes (kerberosKeytab classes); only a sigil-ca holds
	 * admin credentials, so the embedded CA refuses them. */
	int (*provision_keytab)(csi_issuer *is, const csi_keytab_request *req,
				csi_keytab_result *ret, sigil_err *err);
} csi_issuer_ops;

struct csi_issuer {
	const csi_issuer_ops *ops;
};

/* The embedded CA: a directory store under state_dir/ca and the given
 * classes (NULL/0: only the built-in "tls" class). */
int csi_issuer_local_new(const char *state_dir, const ca_class_config *classes, size_t n_classes,
			 const char *cluster_domain, csi_issuer **ret, sigil_err *err) SIGIL_WUR;

typedef struct csi_kube csi_kube;
/* The same with a Kubernetes API (kube borrowed, may be NULL): every
 * request naming a pod is checked against the API as sigil-ca checks it
 * in remote mode.  The pod must exist (else SIGIL_E_NOTFOUND), be
 * scheduled (else SIGIL_E_PRECOND, from kube/podinfo.h) and be scheduled
 * on this node (spec.nodeName == csi_kube_node_name, else SIGIL_E_PERM); the scopes then get the names the API knows (node IPs,
 * pod subdomain and IPs, listener addresses) instead of the volume
 * context's.  An unreachable apiserver is SIGIL_E_UNAVAIL: nothing is
 * issued. */
int csi_issuer_local_new_kube(const char *state_dir, const ca_class_config *classes,
			      size_t n_classes, const char *cluster_domain, csi_kube *kube,
			      csi_issuer **ret, sigil_err *err) SIGIL_WUR;

/* A remote sigil-ca: endpoint "host:port", the CA bundle that its serving
 * certificate must verify against, and a file holding the bearer token
 * (re-read on every call, so a rotated token is picked up). */
typedef struct csi_remote_config {
	const char *endpoint;
	const char *ca_bundle_file;
	const char *token_file;
	const char *server_name;  /* optional name to verify instead of the host */
	int64_t timeout_ms;       /* per attempt; 0: 10 s */
	int attempts;             /* for UNAVAILABLE / DEADLINE_EXCEEDED; 0: 3 */
} csi_remote_config;

int csi_issuer_remote_new(const csi_remote_config *cfg, csi_issuer **ret, sigil_err *err) SIGIL_WUR;

static inline int csi_issuer_issue(csi_issuer *is, const ca_issue_request *req,
				   ca_issue_result *ret, sigil_err *err)
{
	return is->ops->issue(is, req, ret, err);
}
static inline int csi_issuer_trust_bundle(csi_issuer *is, const char *c, STACK_OF(X509) **ret,
					  uint64_t *v, sigil_err *err)
{
	return is->ops->trust_bundle(is, c, ret, v, err);
}
static inline int csi_issuer_class(csi_issuer *is, const char *c, ca_class_config *ret,
				   sigil_err *err)
{
	return is->ops->class_info(is, c, ret, err);
}
static inline int csi_issuer_provision_keytab(csi_issuer *is, const csi_keytab_request *req,
					      csi_keytab_result *ret, sigil_err *err)
{
	return is->ops->provision_keytab(is, req, ret, err);
}
static inline bool csi_issuer_ready(csi_issuer *is)
{
	return is->ops->ready(is);
}
void csi_issuer_free(csi_issuer *is);
