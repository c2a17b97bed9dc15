#include "ca/server/keytab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kerberos/kadm.h"
#include "kerberos/krb5conf.h"
#include "kerberos/principal.h"
#include "util/mem.h"

#define QUOTE_LEN 80

void issuer_keytab_plan_free(issuer_keytab_plan *p)
{
	if (!p)
		return;
	free(p->admin_keytab);
	free(p->krb5_conf);
	for (size_t i = 0; p->principals && i < p->n_principals; i++)
		free(p->principals[i]);
	free(p->principals);
	free(p);
}

static int check_service_names(const issuer_keytab_request *req, sigil_err *err)
{
	char q[QUOTE_LEN];
	int r;

	if (req->n_service_names == 0 || !req->service_names)
		return sigil_err_set(err, SIGIL_E_INVALID, "no Kerberos service names given");
	if (req->n_service_names > ISSUER_KEYTAB_MAX_SERVICE_NAMES)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "%zu service names, at most %d are allowed",
		                     req->n_service_names, ISSUER_KEYTAB_MAX_SERVICE_NAMES);
	for (size_t i = 0; i < req->n_service_names; i++) {
		const char *s = req->service_names[i];

		if (!s)
			return sigil_err_set(err, SIGIL_E_INVALID, "service name %zu is missing",
			                     i);
		if ((r = kerberos_principal_check_service(s, err)) < 0) {
			sigil_err_prefix(err, "kerberos.service.names \"%s\": ",
			                 kerberos_quote(s, q, sizeof(q)));
			return r;
		}
	}
	return 0;
}

static bool already(char **list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], s))
			return true;
	return false;
}

/* service × DNS name, in the order of the service names, then of the
 * scopes; duplicates (a service name given twice) dropped. */
static int build_principals(issuer_keytab_plan *p, const issuer_keytab_request *req,
                            const ca_names *names, sigil_err *err)
{
	size_t max;
	int r;

	if (names->n_dns == 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "the scopes give no host name for a principal (IP addresses "
		                     "are not used; add scope node or service=NAME)");
	if (names->n_dns > KERBEROS_MAX_PRINCIPALS ||
	    req->n_service_names > KERBEROS_MAX_PRINCIPALS / names->n_dns)
		return sigil_err_set(
		    err, SIGIL_E_LIMIT,
		    "%zu service names x %zu host names is more than %d principals",
		    req->n_service_names, names->n_dns, KERBEROS_MAX_PRINCIPALS);
	max = req->n_service_names * names->n_dns;
	if (!(p->principals = sigil_calloc(max, sizeof(char *))))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (size_t i = 0; i < req->n_service_names; i++) {
		for (size_t j = 0; j < names->n_dns; j++) {
			char buf[KERBEROS_MAX_PRINCIPAL_LEN + 1];
			char q[QUOTE_LEN];

			r = kerberos_principal_build(req->service_names[i], names->dns[j],
			                             p->kerberos.realm, buf, sizeof(buf), err);
			if (r < 0) {
				sigil_err_prefix(err, "principal for host \"%s\": ",
				                 kerberos_quote(names->dns[j], q, sizeof(q)));
				return r;
			}
			if (already(p->principals, p->n_principals, buf))
				continue;
			if (!(p->principals[p->n_principals] = strdup(buf)))
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			p->n_principals++;
		}
	}
	return 0;
}

int issuer_keytab_plan_new(ca_service *svc, const issuer_keytab_request *req,
                           issuer_keytab_plan **ret, sigil_err *err)
{
	_cleanup_(issuer_keytab_plan_freep) issuer_keytab_plan *p = NULL;
	_cleanup_free_ ca_class_config *cls = NULL;
	ca_names names = {0};
	ca_identity id;
	int r;

	if (!req->class_name || !*req->class_name)
		return sigil_err_set(err, SIGIL_E_INVALID, "class_name is required");
	if (!(cls = malloc(sizeof(*cls))) || !(p = calloc(1, sizeof(*p))))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if ((r = ca_service_class(svc, req->class_name, cls, err)) < 0)
		return r;
	if (cls->backend != CA_BACKEND_KERBEROS)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "SecretClass '%s' is %s, not kerberosKeytab; format kerberos "
		                     "needs a kerberosKeytab class",
		                     cls->name, ca_backend_name(cls->backend));
	snprintf(p->class_name, sizeof(p->class_name), "%s", cls->name);
	p->kerberos = cls->kerberos;
	p->public_only = req->public_only;

	/* The class was checked when it was loaded; render checks it again,
	 * because its values become lines of a file in every pod. */
	kerberos_krb5conf conf = {
	    .realm = p->kerberos.realm,
	    .kdc = p->kerberos.kdc,
	    .admin_server = p->kerberos.admin_server,
	    .cluster_domain = ca_service_cluster_domain(svc),
	};
	if ((r = kerberos_krb5conf_render(&conf, &p->krb5_conf, &p->krb5_conf_len, err)) < 0) {
		sigil_err_prefix(err, "SecretClass '%s': ", p->class_name);
		return r;
	}
	if (req->public_only) {
		*ret = TAKE_PTR(p);
		return 0;
	}

	if ((r = check_service_names(req, err)) < 0)
		return r;
	id = *req->identity;
	id.cluster_domain = ca_service_cluster_domain(svc);
	if ((r = ca_scopes_to_names(&id, req->scopes, req->n_scopes, &names, err)) < 0)
		return r;
	r = build_principals(p, req, &names, err);
	ca_names_free(&names);
	if (r < 0)
		return r;
	if ((r = ca_service_secret_file(svc, p->kerberos.admin_keytab, "keytab", &p->admin_keytab,
	                                err)) < 0) {
		sigil_err_prefix(err, "SecretClass '%s' adminKeytabSecret: ", p->class_name);
		return r;
	}
	*ret = TAKE_PTR(p);
	return 0;
}

int issuer_keytab_run(const issuer_keytab_plan *p, int64_t timeout_ms, uint8_t **ret_keytab,
                      size_t *ret_len, sigil_err *err)
{
	uint8_t *kt = NULL;
	size_t len = 0;
	int r;

	if (p->public_only) {
		*ret_keytab = NULL;
		*ret_len = 0;
		return 0;
	}
	kerberos_admin_config cfg = {
	    .realm = p->kerberos.realm,
	    .kdc = p->kerberos.kdc,
	    .admin_server = p->kerberos.admin_server,
	    .admin_principal = p->kerberos.admin_principal,
	    .admin_keytab = p->admin_keytab,
	    .timeout_ms = timeout_ms,
	};
	r = kerberos_provision(&cfg, (const char *const *)p->principals, p->n_principals, true, &kt,
	                       &len, err);
	if (r == SIGIL_E_UNAUTH) {
		/* The node's credentials were fine; ours were not.  Unauthenticated
		 * would send the operator after the node's token. */
		if (err)
			err->code = SIGIL_E_PRECOND;
		sigil_err_prefix(
		    err, "SecretClass '%s': sigil-ca cannot log in to kadmind: ", p->class_name);
		return SIGIL_E_PRECOND;
	}
	if (r < 0) {
		sigil_err_prefix(err, "SecretClass '%s': ", p->class_name);
		return r;
	}
	*ret_keytab = kt;
	*ret_len = len;
	return 0;
}
