/* The embedded CA: sigil-csi started with only --endpoint, --node-id and
 * --state-dir signs with a CA kept under its state dir (DESIGN.md). */
#include <stdlib.h>
#include <string.h>

#include "csi/issuer.h"
#include "util/fs.h"
#include "util/mem.h"

typedef struct local_issuer {
	csi_issuer base;
	ca_store *store;
	ca_service *svc;
} local_issuer;

static int local_issue(csi_issuer *is, const ca_issue_request *req, ca_issue_result *ret,
		       sigil_err *err)
{
	return ca_service_issue(((local_issuer *)is)->svc, req, ret, err);
}

static int local_bundle(csi_issuer *is, const char *c, STACK_OF(X509) **ret, uint64_t *v,
			sigil_err *err)
{
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
	_cleanup_free_ char *dir = sigil_path_join(state_dir, "ca");
	local_issuer *l;
	int r;

	if (!dir)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	l = calloc(1, sizeof(*l));
	if (!l)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	l->base.ops = &local_ops;
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
