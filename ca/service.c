#include "ca/service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "ca/external.h"
#include "ca/issue.h"
#include "util/fs.h"
#include "util/mem.h"

/* A class: its configuration and where its certificates come from.
 * Signing takes the read lock, so every worker signs in parallel;
 * refresh and rotation take the write lock. */
typedef struct svc_class {
	ca_class_config cfg;
	pthread_rwlock_t lock;
	ca_set *set;                  /* autoTls with a generated CA */
	ca_authority *imported;       /* autoTls with a company CA (ca.secret, no autoGenerate) */
	STACK_OF(X509) *extra_trust;  /* additionalTrustRoots (and the company root) */
	uint64_t static_version;      /* bundle version for imported / external classes */
} svc_class;

struct ca_service {
	ca_store *store;
	int (*external_sign)(const ca_external_config *cfg, const struct ca_external_request *req,
			     X509 **ret_leaf, STACK_OF(X509) **ret_chain, sigil_err *err);
	sigil_clock clock;
	char *cluster_domain;
	char *secrets_dir;
	svc_class *classes;
	size_t n;
};

const char *ca_backend_name(ca_backend_kind k)
{
	switch (k) {
	case CA_BACKEND_AUTOTLS: return "autoTls";
	case CA_BACKEND_EXTERNAL: return "externalCa";
	case CA_BACKEND_KERBEROS: return "kerberosKeytab";
	default: return "unknown";
	}
}

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
	c->external.timeout_ms = 10000;
	snprintf(c->external.mount, sizeof(c->external.mount), "pki");
}

/* SECRETS_DIR/<ns>/<name>/<key>, as a mounted Secret looks. */
static char *secret_path(const ca_service *svc, const ca_object_ref *ref, const char *key,
			 sigil_err *err)
{
	char rel[CA_CLASS_MAX_NAME + 64 + 64];
	char *p;

	if (!svc->secrets_dir) {
		sigil_err_set(err, SIGIL_E_PRECOND,
			      "%s %s/%s is referenced but no secrets directory is configured",
			      ref->config_map ? "ConfigMap" : "Secret", ref->namespace_, ref->name);
		return NULL;
	}
	snprintf(rel, sizeof(rel), "%s/%s/%s", ref->namespace_[0] ? ref->namespace_ : "default",
		 ref->name, key);
	if (!sigil_fs_rel_path_ok(rel)) {
		sigil_err_set(err, SIGIL_E_INVALID, "bad object reference %s", rel);
		return NULL;
	}
	p = sigil_path_join(svc->secrets_dir, rel);
	if (!p)
		sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	return p;
}

static int load_trust_roots(ca_service *svc, svc_class *c, sigil_err *err)
{
	c->extra_trust = sk_X509_new_null();
	if (!c->extra_trust)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (size_t i = 0; i < c->cfg.n_trust_roots; i++) {
		_cleanup_free_ char *path = secret_path(svc, &c->cfg.trust_roots[i], "ca.crt", err);
		_cleanup_free_ uint8_t *pem = NULL;
		STACK_OF(X509) *certs = NULL;
		size_t len;
		int r;

		if (!path)
			return err ? err->code : SIGIL_E_INVALID;
		r = sigil_fs_read_file(path, SIGIL_MAX_FILE_SIZE, &pem, &len, err);
		if (r == 0)
			r = ca_certs_from_pem((char *)pem, len, CA_CLASS_MAX_TRUST_ROOTS * 8, &certs, err);
		if (r < 0)
			return sigil_err_prefix(err, "additionalTrustRoots[%zu]: ", i);
		for (int j = 0; j < sk_X509_num(certs); j++) {
			X509 *x = sk_X509_value(certs, j);
			if (!X509_up_ref(x) || !sk_X509_push(c->extra_trust, x)) {
				sk_X509_pop_free(certs, X509_free);
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			}
		}
		sk_X509_pop_free(certs, X509_free);
	}
	return 0;
}

/* A version for bundles that only change when the configuration does. */
static uint64_t bundle_hash(STACK_OF(X509) *certs)
{
	unsigned char md[32];
	unsigned int l = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint64_t v = 0;

	if (!c)
		return 1;
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	for (int i = 0; i < sk_X509_num(certs); i++) {
		unsigned char h[32];
		unsigned int hl = 0;
		X509_digest(sk_X509_value(certs, i), EVP_sha256(), h, &hl);
		EVP_DigestUpdate(c, h, hl);
	}
	EVP_DigestFinal_ex(c, md, &l);
	EVP_MD_CTX_free(c);
	for (int i = 0; i < 8; i++)
		v = (v << 8) | md[i];
	return v ? v : 1;
}

static int import_company_ca(ca_service *svc, svc_class *c, sigil_err *err)
{
	_cleanup_free_ char *crt = secret_path(svc, &c->cfg.ca_secret, "ca.crt", err);
	_cleanup_free_ char *key = crt ? secret_path(svc, &c->cfg.ca_secret, "ca.key", err) : NULL;
	_cleanup_free_ char *pass = key ? secret_path(svc, &c->cfg.ca_secret, "passphrase", err) : NULL;
	_cleanup_free_ char *chain = pass ? secret_path(svc, &c->cfg.ca_secret, "chain.crt", err) : NULL;
	int r;

	if (!chain)
		return err ? err->code : SIGIL_E_INVALID;
	r = ca_authority_import(crt, key, access(pass, F_OK) == 0 ? pass : NULL,
				access(chain, F_OK) == 0 ? chain : NULL,
				sigil_clock_now(&svc->clock), &c->imported, err);
	if (r < 0)
		return sigil_err_prefix(err, "ca.secret %s/%s: ", c->cfg.ca_secret.namespace_,
					c->cfg.ca_secret.name);
	/* The company root anchors the bundle (it may also come through
	 * additionalTrustRoots). */
	if (c->imported->root) {
		if (!X509_up_ref(c->imported->root) || !sk_X509_push(c->extra_trust, c->imported->root))
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	return 0;
}

static int class_open(ca_service *svc, svc_class *c, sigil_err *err)
{
	int r = load_trust_roots(svc, c, err);

	if (r < 0)
		return r;
	switch (c->cfg.backend) {
	case CA_BACKEND_AUTOTLS:
		if (c->cfg.has_ca_secret && !c->cfg.auto_generate) {
			r = import_company_ca(svc, c, err);
		} else {
			ca_set_config sc = {
				.class_name = c->cfg.name,
				.key_alg = c->cfg.ca_key_alg,
				.ca_lifetime_secs = c->cfg.ca_lifetime_secs,
				.retirement_secs = c->cfg.retirement_secs,
				.auto_generate = c->cfg.auto_generate,
				.clock = &svc->clock,
			};
			r = ca_set_open(svc->store, &sc, &c->set, err);
			if (r == 0 && sk_X509_num(c->extra_trust) > 0)
				r = ca_set_add_trust_roots(c->set, c->extra_trust, err);
		}
		break;
	case CA_BACKEND_EXTERNAL:
		if (!svc->external_sign)
			r = sigil_err_set(err, SIGIL_E_INVALID,
					  "externalCa classes are served by sigil-ca, not by an embedded CA");
		else if (sk_X509_num(c->extra_trust) == 0)
			r = sigil_err_set(err, SIGIL_E_INVALID,
					  "an externalCa class needs additionalTrustRoots (the company root)");
		break;
	case CA_BACKEND_KERBEROS:
		break;
	default:
		r = sigil_err_set(err, SIGIL_E_INVALID, "unknown backend");
		break;
	}
	if (r == 0 && !c->set && sk_X509_num(c->extra_trust) == 0 && c->cfg.backend == CA_BACKEND_AUTOTLS)
		r = sigil_err_set(err, SIGIL_E_INVALID,
				  "the trust bundle would be empty: put the company root in ca.secret's "
				  "chain.crt or in additionalTrustRoots");
	c->static_version = bundle_hash(c->extra_trust);
	return r;
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
	svc->external_sign = cfg->external_sign;
	svc->clock = cfg->clock ? *cfg->clock : sigil_clock_real;
	svc->cluster_domain = strdup(cfg->cluster_domain ? cfg->cluster_domain : CA_DEFAULT_CLUSTER_DOMAIN);
	svc->secrets_dir = cfg->secrets_dir ? strdup(cfg->secrets_dir) : NULL;
	svc->classes = calloc(n, sizeof(*svc->classes));
	if (!svc->classes || !svc->cluster_domain || (cfg->secrets_dir && !svc->secrets_dir)) {
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
		pthread_rwlock_init(&c->lock, NULL);
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
		ca_authority_free(svc->classes[i].imported);
		sk_X509_pop_free(svc->classes[i].extra_trust, X509_free);
		pthread_rwlock_destroy(&svc->classes[i].lock);
	}
	free(svc->classes);
	free(svc->cluster_domain);
	free(svc->secrets_dir);
	free(svc);
}

static svc_class *find_class(ca_service *svc, const char *name, sigil_err *err)
{
	for (size_t i = 0; name && i < svc->n; i++)
		if (!strcmp(svc->classes[i].cfg.name, name))
			return &svc->classes[i];
	sigil_err_set(err, SIGIL_E_NOTFOUND, "SecretClass '%s' does not exist", name ? name : "");
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

/* namePolicy.allowedDomains: every DNS name must be a domain or below it. */
static int check_name_policy(const ca_class_config *cfg, const ca_names *names, sigil_err *err)
{
	if (cfg->n_allowed_domains == 0)
		return 0;
	for (size_t i = 0; i < names->n_dns; i++) {
		const char *n = names->dns[i];
		size_t nl = strlen(n);
		bool ok = false;
		for (size_t j = 0; j < cfg->n_allowed_domains && !ok; j++) {
			const char *d = cfg->allowed_domains[j];
			size_t dl = strlen(d);
			ok = !strcasecmp(n, d) ||
			     (nl > dl + 1 && n[nl - dl - 1] == '.' && !strcasecmp(n + nl - dl, d));
		}
		if (!ok)
			return sigil_err_set(err, SIGIL_E_PERM,
					     "name %s is outside the namePolicy.allowedDomains of class %s",
					     n, cfg->name);
	}
	return 0;
}

static int copy_stack(STACK_OF(X509) *src, STACK_OF(X509) **ret, sigil_err *err)
{
	STACK_OF(X509) *s = src ? X509_chain_up_ref(src) : sk_X509_new_null();

	if (!s)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	*ret = s;
	return 0;
}

static int issue_locked(ca_service *svc, svc_class *c, const ca_issue_request *req,
			const ca_names *names, ca_issue_result *res, sigil_err *err)
{
	time_t now = sigil_clock_now(&svc->clock);
	int64_t lifetime = req->lifetime_secs > 0 ? req->lifetime_secs : CA_DEFAULT_LEAF_LIFETIME_SECS;
	int r = 0;

	if (lifetime > c->cfg.max_leaf_lifetime_secs)
		lifetime = c->cfg.max_leaf_lifetime_secs;
	if (req->csr_der && c->cfg.backend == CA_BACKEND_EXTERNAL) {
		ca_external_request er = {
			.csr_der = req->csr_der, .csr_len = req->csr_len,
			.common_name = names->common_name,
			.dns = (const char *const *)names->dns, .n_dns = names->n_dns,
			.ips = (const char *const *)names->ips, .n_ips = names->n_ips,
			.lifetime_secs = lifetime,
		};
		r = svc->external_sign(&c->cfg.external, &er, &res->leaf, &res->chain, err);
	} else if (req->csr_der) {
		const ca_authority *signer = c->imported ? c->imported : ca_set_signer(c->set, now + lifetime);
		ca_leaf_request lr = {
			.common_name = names->common_name,
			.dns = (const char *const *)names->dns, .n_dns = names->n_dns,
			.ips = (const char *const *)names->ips, .n_ips = names->n_ips,
			.allow_wildcards = c->cfg.allow_wildcards,
			.lifetime_secs = lifetime,
			.max_lifetime_secs = c->cfg.max_leaf_lifetime_secs,
			.ca_retirement_secs = c->cfg.retirement_secs,
			.jitter_factor = req->jitter_factor,
			.now = now,
		};
		if (!signer)
			return sigil_err_set(err, SIGIL_E_PRECOND, "class %s has no CA", c->cfg.name);
		r = ca_issue_from_csr(signer, req->csr_der, req->csr_len, &lr, &res->leaf, err);
		if (r == 0)
			r = copy_stack(signer->chain, &res->chain, err);
		/* A company intermediate is part of the chain the pod serves
		 * (tls.crt = leaf + intermediates); a self-signed root is not. */
		if (r == 0 && X509_check_issued(signer->cert, signer->cert) != X509_V_OK) {
			if (!X509_up_ref(signer->cert))
				r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			else if (!sk_X509_insert(res->chain, signer->cert, 0)) {
				X509_free(signer->cert);
				r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			}
		}
	}
	if (r == 0 && res->leaf)
		res->not_after = ca_asn1_time_to_time_t(X509_get0_notAfter(res->leaf));
	if (r == 0) {
		if (c->set) {
			r = ca_set_trust_bundle(c->set, &res->trust, err);
			res->bundle_version = c->set->version;
		} else {
			r = copy_stack(c->extra_trust, &res->trust, err);
			res->bundle_version = c->static_version;
		}
	}
	return r;
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
	if (c->cfg.backend == CA_BACKEND_KERBEROS)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "SecretClass '%s' provisions Kerberos keytabs, not TLS certificates "
				     "(use format kerberos)", c->cfg.name);
	if (req->csr_len > CA_MAX_CSR_DER)
		return sigil_err_set(err, SIGIL_E_LIMIT, "CSR larger than %d bytes", CA_MAX_CSR_DER);
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
		r = check_name_policy(&c->cfg, &names, err);
		if (r < 0) {
			ca_names_free(&names);
			return r;
		}
	}
	pthread_rwlock_rdlock(&c->lock);
	r = issue_locked(svc, c, req, &names, &res, err);
	pthread_rwlock_unlock(&c->lock);
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
	uint64_t v;
	int r;

	if (!c)
		return SIGIL_E_NOTFOUND;
	if (c->cfg.backend == CA_BACKEND_KERBEROS)
		return sigil_err_set(err, SIGIL_E_INVALID, "SecretClass '%s' has no trust bundle",
				     class_name);
	pthread_rwlock_rdlock(&c->lock);
	if (c->set) {
		r = ca_set_trust_bundle(c->set, ret, err);
		v = c->set->version;
	} else {
		r = copy_stack(c->extra_trust, ret, err);
		v = c->static_version;
	}
	pthread_rwlock_unlock(&c->lock);
	if (r == 0 && ret_version)
		*ret_version = v;
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
		pthread_rwlock_wrlock(&c->lock);
		r = ca_set_refresh(c->set, &ch, err);
		pthread_rwlock_unlock(&c->lock);
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
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "SecretClass '%s' has no generated CA to rotate", class_name);
	pthread_rwlock_wrlock(&c->lock);
	r = ca_set_rotate_now(c->set, err);
	pthread_rwlock_unlock(&c->lock);
	return r;
}

bool ca_service_ready(ca_service *svc)
{
	for (size_t i = 0; i < svc->n; i++) {
		svc_class *c = &svc->classes[i];
		if (c->cfg.backend == CA_BACKEND_AUTOTLS && !c->imported && (!c->set || c->set->n == 0))
			return false;
	}
	return true;
}

size_t ca_service_class_count(ca_service *svc)
{
	return svc->n;
}

int ca_service_status(ca_service *svc, size_t index, ca_class_status *ret, sigil_err *err)
{
	svc_class *c;
	time_t now = sigil_clock_now(&svc->clock);

	if (index >= svc->n)
		return sigil_err_set(err, SIGIL_E_NOTFOUND, "no class %zu", index);
	c = &svc->classes[index];
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->name, sizeof(ret->name), "%s", c->cfg.name);
	ret->backend = c->cfg.backend;
	pthread_rwlock_rdlock(&c->lock);
	if (c->set) {
		for (size_t i = 0; i < c->set->n && i < CA_STORE_MAX_GENERATIONS; i++) {
			ca_generation_info *g = &ret->gens[ret->n_gens++];
			const ca_authority *a = c->set->cas[i];
			g->generation = c->set->generations[i];
			X509_NAME_oneline(X509_get_subject_name(a->cert), g->subject, sizeof(g->subject));
			ca_key_describe(a->key, g->key_type, sizeof(g->key_type));
			g->not_before = ca_authority_not_before(a);
			g->not_after = ca_authority_not_after(a);
			g->retired = now >= g->not_after - c->cfg.retirement_secs;
		}
		ret->bundle_version = c->set->version;
	} else {
		if (c->imported) {
			ca_generation_info *g = &ret->gens[ret->n_gens++];
			X509_NAME_oneline(X509_get_subject_name(c->imported->cert), g->subject,
					  sizeof(g->subject));
			ca_key_describe(c->imported->key, g->key_type, sizeof(g->key_type));
			g->not_before = ca_authority_not_before(c->imported);
			g->not_after = ca_authority_not_after(c->imported);
		}
		ret->bundle_version = c->static_version;
	}
	pthread_rwlock_unlock(&c->lock);
	return 0;
}

const char *ca_service_cluster_domain(const ca_service *svc)
{
	return svc->cluster_domain;
}

/* Kubernetes object names and namespaces: lower-case DNS labels and dots. */
static bool object_name_ok(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max || s[0] == '.')
		return false; /* also ".", ".." */
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '.'))
			return false;
	return true;
}

int ca_service_secret_file(const ca_service *svc, const char *ref, const char *key, char **ret,
			   sigil_err *err)
{
	ca_object_ref o;
	const char *slash;
	size_t nl, ml;
	char *p;

	if (!ref || !*ref)
		return sigil_err_set(err, SIGIL_E_INVALID, "empty Secret reference");
	if (ref[0] == '/') {
		if (strlen(ref) >= CA_CLASS_MAX_PATH)
			return sigil_err_set(err, SIGIL_E_INVALID, "path longer than %d bytes",
					     CA_CLASS_MAX_PATH - 1);
		if (!(p = strdup(ref)))
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		*ret = p;
		return 0;
	}
	slash = strchr(ref, '/');
	nl = slash ? (size_t)(slash - ref) : 0;
	ml = slash ? strlen(slash + 1) : 0;
	if (!slash || !object_name_ok(ref, nl, sizeof(o.namespace_) - 1) ||
	    !object_name_ok(slash + 1, ml, sizeof(o.name) - 1) || !key ||
	    !sigil_fs_rel_path_ok(key))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "'%.80s' is neither an absolute path nor <namespace>/<name>", ref);
	memset(&o, 0, sizeof(o));
	memcpy(o.namespace_, ref, nl);
	memcpy(o.name, slash + 1, ml);
	if (!(p = secret_path(svc, &o, key, err)))
		return err ? err->code : SIGIL_E_INVALID;
	*ret = p;
	return 0;
}
