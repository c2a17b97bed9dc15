/* The embedded CA: sigil-csi started with only --endpoint, --node-id and
 * --state-dir signs with a CA kept under its state dir (DESIGN.md). */
#include <stdlib.h>
#include <string.h>

#include "csi/issuer.h"
#include "csi/kube.h"
#include "util/fs.h"
#include "util/mem.h"

typedef struct local_issuer {
	csi_issuer base;
	ca_store *store;
	ca_service *svc;
	csi_kube *kube; /* borrowed; NULL standalone */
} local_issuer;

/* With an API the pod's facts come from the API, never from the volume
 * context, and a node only gets certificates for its own pods: the rule
 * sigil-ca applies to remote nodes (issue 6 "Node authorization"). */
static int local_issue_kube(local_issuer *l, const ca_issue_request *req, ca_issue_result *ret,
			    sigil_err *err)
{
	const ca_identity *in = req->identity;
	const char *lv[KUBE_POD_MAX_LISTENERS];
	ca_listener listeners[KUBE_POD_MAX_LISTENERS];
	kube_pod_info *pi = NULL;
	const char *self = csi_kube_node_name(l->kube);
	size_t n_lv = 0;
	int r;

	for (size_t i = 0; i < req->n_scopes; i++) {
		if (req->scopes[i].kind != CA_SCOPE_LISTENER_VOLUME)
			continue;
		if (n_lv == KUBE_POD_MAX_LISTENERS)
			return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d listener-volume scopes",
					     KUBE_POD_MAX_LISTENERS);
		lv[n_lv++] = req->scopes[i].name;
	}
	r = csi_kube_pod_info(l->kube, in->pod_namespace, in->pod_name, lv, n_lv, &pi, err);
	if (r < 0)
		return r; /* the client's message names the pod or node */
	if (!pi->node_name || strcmp(pi->node_name, self)) {
		if (pi->node_name)
			r = sigil_err_set(err, SIGIL_E_PERM,
					  "pod %s/%s is scheduled on node %s, not on this node %s: "
					  "refusing to issue for it",
					  in->pod_namespace, in->pod_name, pi->node_name, self);
		else
			r = sigil_err_set(err, SIGIL_E_PERM,
					  "pod %s/%s is not scheduled on a node yet: refusing to issue "
					  "for it on node %s",
					  in->pod_namespace, in->pod_name, self);
		kube_pod_info_free(pi);
		return r;
	}
	if (kube_pod_info_terminated(pi)) {
		r = sigil_err_set(err, SIGIL_E_PRECOND,
				  "pod %s/%s has terminated (phase %s): no new secrets for it",
				  in->pod_namespace, in->pod_name, pi->phase);
		kube_pod_info_free(pi);
		return r;
	}
	ca_identity id = *in;
	kube_pod_info_identity(pi, &id, listeners);
	id.cluster_domain = in->cluster_domain;
	ca_issue_request kreq = *req;
	kreq.identity = &id;
	r = ca_service_issue(l->svc, &kreq, ret, err);
	kube_pod_info_free(pi);
	return r;
}

static int local_issue(csi_issuer *is, const ca_issue_request *req, ca_issue_result *ret,
		       sigil_err *err)
{
	local_issuer *l = (local_issuer *)is;

	/* A request that names no pod (no podInfoOnMount) keeps the node's
	 * own facts: there is no pod to check. */
	if (l->kube && req->identity && req->identity->pod_namespace && req->identity->pod_name)
		return local_issue_kube(l, req, ret, err);
	return ca_service_issue(l->svc, req, ret, err);
}

static int local_bundle(csi_issuer *is, const char *c, STACK_OF(X509) **ret, uint64_t *v,
			sigil_err *err)
{
	/* ---- expiry watcher (helper W, issue 7) ----
	 * The watcher asks for each class's bundle every --bundle-check-interval:
	 * re-read the store first, so that a rotation made by `sigilctl ca
	 * rotate` on the state dir is seen, and a rotation that has come due
	 * happens on that schedule rather than on the next issue.  A store
	 * that cannot be read now leaves the bundle we have. */
	if (ca_service_refresh(((local_issuer *)is)->svc, NULL, NULL) < 0) {
		/* keep serving the bundle in memory */
	}
	/* ---- end expiry watcher ---- */
	return ca_service_trust_bundle(((local_issuer *)is)->svc, c, ret, v, err);
}

static int local_class(csi_issuer *is, const char *c, ca_class_config *ret, sigil_err *err)
{
	return ca_service_class(((local_issuer *)is)->svc, c, ret, err);
}

static bool local_ready(csi_issuer *is)
{
	return ca_service_ready(((local_issuer *)is)->svc);
}

static int local_keytab(csi_issuer *is, const csi_keytab_request *req, csi_keytab_result *ret,
			sigil_err *err)
{
	/* DESIGN.md: sigil-ca holds the Kerberos admin credentials; a node
	 * never does, so the embedded CA has nothing to ask kadmind with. */
	return sigil_err_set(err, SIGIL_E_PRECOND,
			     "SecretClass '%s': kerberos classes need a sigil-ca (--ca-endpoint)",
			     req->class_name ? req->class_name : "");
}

static void local_free(csi_issuer *is)
{
	local_issuer *l = (local_issuer *)is;

	ca_service_free(l->svc);
	ca_store_free(l->store);
	free(l);
}

static const csi_issuer_ops local_ops = {
	.issue = local_issue,
	.trust_bundle = local_bundle,
	.class_info = local_class,
	.ready = local_ready,
	.free = local_free,
	.provision_keytab = local_keytab,
};

int csi_issuer_local_new(const char *state_dir, const ca_class_config *classes, size_t n_classes,
			 const char *cluster_domain, csi_issuer **ret, sigil_err *err)
{
	return csi_issuer_local_new_kube(state_dir, classes, n_classes, cluster_domain, NULL, ret,
					 err);
}

int csi_issuer_local_new_kube(const char *state_dir, const ca_class_config *classes,
			      size_t n_classes, const char *cluster_domain, csi_kube *kube,
			      csi_issuer **ret, sigil_err *err)
{
	_cleanup_free_ char *dir = sigil_path_join(state_dir, "ca");
	local_issuer *l;
	int r;

	if (!dir)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	l = calloc(1, sizeof(*l));
	if (!l)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	l->base.ops = &local_ops;
	l->kube = kube;
	r = ca_store_dir_open(dir, &l->store, err);
	if (r == 0) {
		ca_service_config cfg = {
			.store = l->store,
			.classes = classes,
			.n_classes = n_classes,
			.cluster_domain = cluster_domain,
		};
		r = ca_service_new(&cfg, &l->svc, err);
	}
	if (r < 0) {
		local_free(&l->base);
		return r;
	}
	*ret = &l->base;
	return 0;
}

void csi_issuer_free(csi_issuer *is)
{
	if (is)
		is->ops->free(is);
}

void csi_keytab_result_free(csi_keytab_result *r)
{
	if (!r)
		return;
	sigil_freezero(r->keytab, r->keytab_len);
	free(r->krb5_conf);
	memset(r, 0, sizeof(*r));
}
