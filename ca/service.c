#include "ca/service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/issue.h"
#include "util/mem.h"

typedef struct svc_class {
	ca_class_config cfg;
	pthread_mutex_t lock;
	ca_set *set; /* autoTls only */
} svc_class;

struct ca_service {
	ca_store *store;
	sigil_clock clock;
	char *cluster_domain;
	svc_class *classes;
	size_t n;
};

void ca_class_config_defaults(ca_class_config *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->backend = CA_BACKEND_AUTOTLS;
	c->ca_key_alg = SIGIL_KEY_ECDSA_P256;
	c->leaf_key_alg = SIGIL_KEY_ECDSA_P256;
	c->ca_lifetime_secs = CA_DEFAULT_LIFETIME_SECS;
	c->retirement_secs = 3600;
	c->max_leaf_lifetime_secs = CA_DEFAULT_MAX_LEAF_LIFETIME_SECS;
	c->auto_generate = true;
}

static int class_open(ca_service *svc, svc_class *c, sigil_err *err)
{
	ca_set_config sc = {
		.class_name = c->cfg.name,
		.key_alg = c->cfg.ca_key_alg,
		.ca_lifetime_secs = c->cfg.ca_lifetime_secs,
		.retirement_secs = c->cfg.retirement_secs,
		.auto_generate = c->cfg.auto_generate,
		.clock = &svc->clock,
	};

	if (c->cfg.backend != CA_BACKEND_AUTOTLS)
		return 0;
	return ca_set_open(svc->store, &sc, &c->set, err);
}

int ca_service_new(const ca_service_config *cfg, ca_service **ret, sigil_err *err)
{
	ca_service *svc;
	size_t n = cfg->n_classes ? cfg->n_classes : 1;
	int r = 0;

	if (n > CA_SERVICE_MAX_CLASSES)
		return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d classes", CA_SERVICE_MAX_CLASSES);
	svc = calloc(1, sizeof(*svc));
	if (!svc)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	svc->store = cfg->store;
	svc->clock = cfg->clock ? *cfg->clock : sigil_clock_real;
	svc->cluster_domain = strdup(cfg->cluster_domain ? cfg->cluster_domain : CA_DEFAULT_CLUSTER_DOMAIN);
	svc->classes = calloc(n, sizeof(*svc->classes));
	if (!svc->classes || !svc->cluster_domain) {
		ca_service_free(svc);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		svc_class *c = &svc->classes[i];
		if (cfg->n_classes)
			c->cfg = cfg->classes[i];
		else
			ca_class_config_defaults(&c->cfg, CA_SERVICE_DEFAULT_CLASS);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(svc->classes[j].cfg.name, c->cfg.name))
				r = sigil_err_set(err, SIGIL_E_INVALID, "class %s is defined twice", c->cfg.name);
		pthread_mutex_init(&c->lock, NULL);
		svc->n++;
		if (r == 0) {
			r = class_open(svc, c, err);
			if (r < 0)
				sigil_err_prefix(err, "class %s: ", c->cfg.name);
		}
	}
	if (r < 0) {
		ca_service_free(svc);
		return r;
	}
	*ret = svc;
	return 0;
}

void ca_service_free(ca_service *svc)
{
	if (!svc)
		return;
	for (size_t i = 0; i < svc->n; i++) {
		ca_set_free(svc->classes[i].set);
		pthread_mutex_destroy(&svc->classes[i].lock);
	}
	free(svc->classes);
	free(svc->cluster_domain);
	free(svc);
}

static svc_class *find_class(ca_service *svc, const char *name, sigil_err *err)
{
	for (size_t i = 0; i < svc->n; i++)
		if (!strcmp(svc->classes[i].cfg.name, name))
			return &svc->classes[i];
	sigil_err_set(err, SIGIL_E_NOTFOUND, "SecretClass '%s' does not exist", name);
	return NULL;
}

void ca_issue_result_free(ca_issue_result *r)
{
	if (!r)
		return;
	X509_free(r->leaf);
	sk_X509_pop_free(r->chain, X509_free);
	sk_X509_pop_free(r->trust, X509_free);
	memset(r, 0, sizeof(*r));
}

int ca_service_issue(ca_service *svc, const ca_issue_request *req, ca_issue_result *ret,
		     sigil_err *err)
{
	svc_class *c = find_class(svc, req->class_name, err);
	ca_issue_result res = {0};
	ca_names names = {0};
	ca_identity id;
	int r = 0;

	if (!c)
		return SIGIL_E_NOTFOUND;
	if (c->cfg.backend != CA_BACKEND_AUTOTLS)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "SecretClass '%s' does not issue TLS certificates", c->cfg.name);
	id = *req->identity;
	id.cluster_domain = svc->cluster_domain;
	/* The CA decides the names: from the scopes and what it knows of the
	 * pod, never from the CSR. */
	if (req->csr_der) {
		r = ca_scopes_to_names(&id, req->scopes, req->n_scopes, &names, err);
		if (r < 0)
			return r;
		if (names.n_dns == 0 && names.n_ips == 0 && !names.common_name) {
			ca_names_free(&names);
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "the scopes give no name for the certificate");
		}
	}
	pthread_mutex_lock(&c->lock);
	time_t now = sigil_clock_now(&svc->clock);
	if (req->csr_der) {
		int64_t lifetime = req->lifetime_secs;
		if (lifetime > c->cfg.max_leaf_lifetime_secs)
			lifetime = c->cfg.max_leaf_lifetime_secs;
		const ca_authority *signer = ca_set_signer(c->set, now + lifetime);
		ca_leaf_request lr = {
			.common_name = names.common_name,
			.dns = (const char *const *)names.dns, .n_dns = names.n_dns,
			.ips = (const char *const *)names.ips, .n_ips = names.n_ips,
			.allow_wildcards = c->cfg.allow_wildcards,
			.lifetime_secs = lifetime,
			.max_lifetime_secs = c->cfg.max_leaf_lifetime_secs,
			.ca_retirement_secs = c->cfg.retirement_secs,
			.jitter_factor = req->jitter_factor,
			.now = now,
		};
		if (!signer)
			r = sigil_err_set(err, SIGIL_E_PRECOND, "class %s has no CA", c->cfg.name);
		if (r == 0)
			r = ca_issue_from_csr(signer, req->csr_der, req->csr_len, &lr, &res.leaf, err);
		if (r == 0) {
			res.chain = signer->chain ? X509_chain_up_ref(signer->chain) : sk_X509_new_null();
			if (!res.chain)
				r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
		if (r == 0)
			res.not_after = ca_asn1_time_to_time_t(X509_get0_notAfter(res.leaf));
	}
	if (r == 0)
		r = ca_set_trust_bundle(c->set, &res.trust, err);
	res.bundle_version = c->set->version;
	pthread_mutex_unlock(&c->lock);
	ca_names_free(&names);
	if (r < 0) {
		ca_issue_result_free(&res);
		return r;
	}
	*ret = res;
	return 0;
}

int ca_service_trust_bundle(ca_service *svc, const char *class_name, STACK_OF(X509) **ret,
			    uint64_t *ret_version, sigil_err *err)
{
	svc_class *c = find_class(svc, class_name, err);
	int r;

	if (!c)
		return SIGIL_E_NOTFOUND;
	if (!c->set)
		return sigil_err_set(err, SIGIL_E_INVALID, "SecretClass '%s' has no trust bundle",
				     class_name);
	pthread_mutex_lock(&c->lock);
	r = ca_set_trust_bundle(c->set, ret, err);
	if (r == 0 && ret_version)
		*ret_version = c->set->version;
	pthread_mutex_unlock(&c->lock);
	return r;
}

int ca_service_class(ca_service *svc, const char *class_name, ca_class_config *ret, sigil_err *err)
{
	svc_class *c = find_class(svc, class_name, err);

	if (!c)
		return SIGIL_E_NOTFOUND;
	*ret = c->cfg;
	return 0;
}

int ca_service_refresh(ca_service *svc, bool *changed, sigil_err *err)
{
	bool any = false;
	int r = 0;

	for (size_t i = 0; i < svc->n && r == 0; i++) {
		svc_class *c = &svc->classes[i];
		bool ch = false;
		if (!c->set)
			continue;
		pthread_mutex_lock(&c->lock);
		r = ca_set_refresh(c->set, &ch, err);
		pthread_mutex_unlock(&c->lock);
		any |= ch;
	}
	if (changed)
		*changed = any;
	return r;
}

int ca_service_rotate(ca_service *svc, const char *class_name, sigil_err *err)
{
	svc_class *c = find_class(svc, class_name, err);
	int r;

	if (!c)
		return SIGIL_E_NOTFOUND;
	if (!c->set)
		return sigil_err_set(err, SIGIL_E_INVALID, "SecretClass '%s' has no CA", class_name);
	pthread_mutex_lock(&c->lock);
	r = ca_set_rotate_now(c->set, err);
	pthread_mutex_unlock(&c->lock);
	return r;
}

bool ca_service_ready(ca_service *svc)
{
	for (size_t i = 0; i < svc->n; i++)
		if (svc->classes[i].cfg.backend == CA_BACKEND_AUTOTLS &&
		    (!svc->classes[i].set || svc->classes[i].set->n == 0))
			return false;
	return true;
}
