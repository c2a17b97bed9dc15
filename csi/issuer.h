/* Where a node gets its certificates signed: the embedded CA (standalone,
 * ca_service in-process) or a remote sigil-ca over the issuer API.  The
 * publish pipeline only sees this interface. */
#pragma once
#include <stdbool.h>

#include "ca/service.h"

typedef struct csi_issuer csi_issuer;

typedef struct csi_issuer_ops {
	int (*issue)(csi_issuer *is, const ca_issue_request *req, ca_issue_result *ret,
		     sigil_err *err);
	int (*trust_bundle)(csi_issuer *is, const char *class_name, STACK_OF(X509) **ret,
			    uint64_t *ret_version, sigil_err *err);
	int (*class_info)(csi_issuer *is, const char *class_name, ca_class_config *ret,
			  sigil_err *err);
	bool (*ready)(csi_issuer *is);
	void (*free)(csi_issuer *is);
} csi_issuer_ops;

struct csi_issuer {
	const csi_issuer_ops *ops;
};

/* The embedded CA: a directory store under state_dir/ca and the given
 * classes (NULL/0: only the built-in "tls" class). */
int csi_issuer_local_new(const char *state_dir, const ca_class_config *classes, size_t n_classes,
			 const char *cluster_domain, csi_issuer **ret, sigil_err *err) SIGIL_WUR;

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
static inline bool csi_issuer_ready(csi_issuer *is)
{
	return is->ops->ready(is);
}
void csi_issuer_free(csi_issuer *is);
