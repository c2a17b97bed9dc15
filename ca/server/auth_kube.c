/* TokenReview authentication for sigil-ca (see auth_kube.h). */
#include "ca/server/auth_kube.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/log.h"
#include "util/mem.h"

#define CA_AUTH_KUBE_REF_MAX (KUBE_MAX_NAME + 1 + KUBE_MAX_NAME)

#define CA_AUTH_KUBE_MAX_MSG 256

/* Compact: a kube caller never has a class list. */
typedef struct kube_cache_entry {
	unsigned char digest[32];
	time_t expires; /* wall clock, like the token's exp */
	int code;       /* 0: the caller below; else the refusal */
	bool admin;
	char node[254];
	char msg[CA_AUTH_KUBE_MAX_MSG]; /* why it was refused: never token text */
} kube_cache_entry;

typedef struct kube_auth {
	ca_auth base;
	kube_client *client;
	char audience[CA_AUTH_KUBE_MAX_AUDIENCE + 1];
	char node_accounts[CA_AUTH_KUBE_MAX_ACCOUNTS][CA_AUTH_KUBE_REF_MAX + 1];
	size_t n_node_accounts;
	char admin_accounts[CA_AUTH_KUBE_MAX_ACCOUNTS][CA_AUTH_KUBE_REF_MAX + 1];
	size_t n_admin_accounts;
	const sigil_clock *clock;
	pthread_mutex_t lock;
	kube_cache_entry *cache; /* CA_AUTH_KUBE_CACHE_MAX slots */
	size_t n_cache;
	atomic_uint_fast64_t reviews;
} kube_auth;

/* A message that may be cut short (vsnprintf: truncation is fine here). */
static void msgf(char *buf, size_t cap, const char *fmt, ...) SIGIL_PRINTF(3, 4);
static void msgf(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(buf, cap, fmt, ap) < 0)
		buf[0] = '\0';
	va_end(ap);
}

static void entry_caller(const kube_cache_entry *e, ca_caller *ret)
{
	memset(ret, 0, sizeof(*ret));
	memcpy(ret->node, e->node, sizeof(ret->node));
	ret->admin = e->admin;
}

/* ---- names ------------------------------------------------------------------------ */

static bool dns_label_ok(const char *s, size_t n)
{
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static bool dns_name_ok(const char *s, size_t n)
{
	size_t start = 0;

	if (n == 0 || n > KUBE_MAX_NAME)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!dns_label_ok(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

bool ca_auth_kube_account_ok(const char *ref)
{
	const char *slash;
	size_t n;

	if (!ref)
		return false;
	n = strnlen(ref, CA_AUTH_KUBE_REF_MAX + 1);
	slash = memchr(ref, '/', n);
	if (n > CA_AUTH_KUBE_REF_MAX || !slash)
		return false;
	/* A namespace is a DNS label, a service account name a DNS subdomain. */
	return dns_label_ok(ref, (size_t)(slash - ref)) &&
	       dns_name_ok(slash + 1, n - (size_t)(slash - ref) - 1);
}

static bool account_in(const char list[][CA_AUTH_KUBE_REF_MAX + 1], size_t n, const char *ns,
		       const char *name)
{
	size_t nl = strlen(ns);

	for (size_t i = 0; i < n; i++)
		if (!strncmp(list[i], ns, nl) && list[i][nl] == '/' && !strcmp(list[i] + nl + 1, name))
			return true;
	return false;
}

/* ---- the JWT's exp ---------------------------------------------------------------- */

int ca_auth_kube_jwt_exp(const char *tok, size_t len, int64_t *ret)
{
	const char *dot1, *dot2;
	size_t plen, blen;
	unsigned char *b64 = NULL, *raw = NULL;
	json_t *claims = NULL, *exp;
	int n, r = SIGIL_E_INVALID;

	if (!tok || len > CA_AUTH_MAX_TOKEN)
		return SIGIL_E_INVALID;
	dot1 = memchr(tok, '.', len);
	if (!dot1)
		return SIGIL_E_INVALID;
	dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok));
	if (!dot2)
		return SIGIL_E_INVALID;
	plen = (size_t)(dot2 - dot1 - 1);
	if (plen == 0 || plen > CA_AUTH_KUBE_MAX_JWT_PAYLOAD * 4 / 3 + 4)
		return SIGIL_E_INVALID;
	/* RFC 7515: base64url without padding; OpenSSL decodes the standard
	 * alphabet with padding. */
	blen = (plen + 3) / 4 * 4;
	b64 = malloc(blen + 1);
	raw = malloc(blen / 4 * 3 + 1);
	if (!b64 || !raw) {
		r = SIGIL_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < plen; i++) {
		char c = dot1[1 + i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   (c >= '0' && c <= '9')))
			goto out;
		b64[i] = (unsigned char)c;
	}
	if (plen % 4 == 1)
		goto out;
	for (size_t i = plen; i < blen; i++)
		b64[i] = '=';
	b64[blen] = '\0';
	n = EVP_DecodeBlock(raw, b64, (int)blen);
	if (n < 0)
		goto out;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	n -= (int)(blen - plen);
	if (n <= 0)
		goto out;
	claims = json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	exp = json_object_get(claims, "exp");
	if (json_is_integer(exp) && json_integer_value(exp) > 0) {
		*ret = json_integer_value(exp);
		r = 0;
	} else if (json_is_real(exp) && json_real_value(exp) >= 1 && json_real_value(exp) < 1e15) {
		/* NumericDate may carry a fraction (RFC 7519 2); whole seconds
		 * from 1 on, so that exp 0.5 is not taken as a valid 0. */
		*ret = (int64_t)json_real_value(exp);
		r = 0;
	}
out:
	json_decref(claims);
	free(b64);
	free(raw);
	return r;
}

/* ---- the cache --------------------------------------------------------------------- */

static void digest_token(const char *tok, size_t len, unsigned char out[32])
{
	unsigned int l = 0;

	EVP_Digest(tok, len, out, &l, EVP_sha256(), NULL);
}

/* With the lock held.  Returns the live entry for d, or NULL. */
static kube_cache_entry *cache_find(kube_auth *k, const unsigned char d[32], time_t now)
{
	for (size_t i = 0; i < k->n_cache; i++) {
		kube_cache_entry *e = &k->cache[i];

		if (memcmp(e->digest, d, 32) != 0)
			continue;
		if (e->expires > now)
			return e;
		/* Expired: drop it (swap with the last). */
		k->cache[i] = k->cache[--k->n_cache];
		sigil_wipe(&k->cache[k->n_cache], sizeof(k->cache[0]));
		return NULL;
	}
	return NULL;
}

/* With the lock held: room for one more, dropping expired entries first
 * and then the one that would expire soonest. */
static void cache_put(kube_auth *k, const kube_cache_entry *ne, time_t now)
{
	size_t i, victim = 0;

	for (i = 0; i < k->n_cache; i++)
		if (!memcmp(k->cache[i].digest, ne->digest, 32)) {
			k->cache[i] = *ne;
			return;
		}
	if (k->n_cache >= CA_AUTH_KUBE_CACHE_MAX) {
		for (i = 0; i < k->n_cache;) {
			if (k->cache[i].expires <= now)
				k->cache[i] = k->cache[--k->n_cache];
			else
				i++;
		}
	}
	if (k->n_cache >= CA_AUTH_KUBE_CACHE_MAX) {
		for (i = 1; i < k->n_cache; i++)
			if (k->cache[i].expires < k->cache[victim].expires)
				victim = i;
		k->cache[victim] = *ne;
		return;
	}
	k->cache[k->n_cache++] = *ne;
}

/* ---- authenticate -------------------------------------------------------------------- */

/* What the review means for sigil: a caller, or a refusal in e. */
static void decide(kube_auth *k, const kube_token_identity *id, kube_cache_entry *e)
{
	if (!id->sa_namespace[0] || !id->sa_name[0]) {
		e->code = SIGIL_E_PERM;
		msgf(e->msg, sizeof(e->msg), "user %.64s is not a service account", id->username);
		return;
	}
	if (account_in(k->admin_accounts, k->n_admin_accounts, id->sa_namespace, id->sa_name)) {
		e->code = 0;
		msgf(e->node, sizeof(e->node), "%s", CA_AUTH_ADMIN);
		e->admin = true;
		return;
	}
	if (!account_in(k->node_accounts, k->n_node_accounts, id->sa_namespace, id->sa_name)) {
		e->code = SIGIL_E_PERM;
		msgf(e->msg, sizeof(e->msg),
			 "service account %.63s/%.64s may not act as a node (see "
			 "--node-service-account)",
			 id->sa_namespace, id->sa_name);
		return;
	}
	/* The node binding only exists in tokens the kubelet projected for a
	 * pod (ServiceAccountTokenPodNodeInfo); a long-lived Secret token has
	 * none and cannot say which node it speaks for. */
	if (!id->node_name[0]) {
		e->code = SIGIL_E_UNAUTH;
		msgf(e->msg, sizeof(e->msg),
			 "the token of %.63s/%.64s is not bound to a node (mount a projected service "
			 "account token with audience %.64s)",
			 id->sa_namespace, id->sa_name, k->audience);
		return;
	}
	if (!dns_name_ok(id->node_name, strlen(id->node_name)) ||
	    strlen(id->node_name) >= sizeof(e->node)) {
		e->code = SIGIL_E_UNAUTH;
		msgf(e->msg, sizeof(e->msg), "the token's node binding is not a node name");
		return;
	}
	e->code = 0;
	msgf(e->node, sizeof(e->node), "%s", id->node_name);
}

static int kube_authenticate(ca_auth *a, const char *tok, size_t len, ca_caller *ret,
			     sigil_err *err)
{
	kube_auth *k = (kube_auth *)a;
	_cleanup_secret_str_ char *copy = NULL;
	const char *auds[1] = {k->audience};
	kube_token_identity id;
	kube_cache_entry e;
	time_t now = sigil_clock_now(k->clock);
	int64_t exp, ttl;
	sigil_err rerr = {0};
	int r;

	if (len == 0 || len > CA_AUTH_MAX_TOKEN)
		return sigil_err_set(err, SIGIL_E_UNAUTH, "invalid bearer token");
	for (size_t i = 0; i < len; i++)
		if (tok[i] <= 0x20 || tok[i] >= 0x7f)
			return sigil_err_set(err, SIGIL_E_UNAUTH, "invalid bearer token");
	memset(&e, 0, sizeof(e));
	digest_token(tok, len, e.digest);

	pthread_mutex_lock(&k->lock);
	{
		kube_cache_entry *hit = cache_find(k, e.digest, now);

		if (hit) {
			r = hit->code;
			if (r == 0)
				entry_caller(hit, ret);
			else
				sigil_err_set(err, r, "%s", hit->msg);
			pthread_mutex_unlock(&k->lock);
			return r;
		}
	}
	pthread_mutex_unlock(&k->lock);

	/* The metadata value is not NUL-terminated. */
	copy = sigil_strndup(tok, len);
	if (!copy)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	atomic_fetch_add(&k->reviews, 1);
	r = kube_client_review_token(k->client, copy, auds, 1, &id, &rerr);
	switch (r) {
	case 0:
		decide(k, &id, &e);
		break;
	case SIGIL_E_UNAUTH:
		e.code = SIGIL_E_UNAUTH;
		msgf(e.msg, sizeof(e.msg), "%s", rerr.msg);
		break;
	case SIGIL_E_TIMEOUT:
	case SIGIL_E_UNAVAIL:
		/* Not cached: the next call asks again. */
		return sigil_err_set(err, SIGIL_E_UNAVAIL, "cannot review the token: %s", rerr.msg);
	default:
		/* sigil-ca's own RBAC (403 on tokenreviews), a malformed answer:
		 * not the caller's fault, and nothing to cache. */
		return sigil_err_set(err, SIGIL_E_UNAVAIL, "cannot review the token (%s): %s",
				     sigil_errcode_name(r), rerr.msg);
	}
	if (e.code == 0) {
		/* The apiserver vouched for the token; its exp only bounds the
		 * cache (a token without one is cached for the ceiling). */
		ttl = CA_AUTH_KUBE_POSITIVE_TTL_SECS;
		if (ca_auth_kube_jwt_exp(tok, len, &exp) == 0 && exp - (int64_t)now < ttl)
			ttl = exp - (int64_t)now;
	} else {
		ttl = CA_AUTH_KUBE_NEGATIVE_TTL_SECS;
	}
	if (ttl > 0) {
		e.expires = now + (time_t)ttl;
		pthread_mutex_lock(&k->lock);
		cache_put(k, &e, now);
		pthread_mutex_unlock(&k->lock);
	}
	if (e.code != 0)
		return sigil_err_set(err, e.code, "%s", e.msg);
	entry_caller(&e, ret);
	return 0;
}

static void kube_auth_free(ca_auth *a)
{
	kube_auth *k = (kube_auth *)a;

	if (k->cache)
		sigil_freezero(k->cache, CA_AUTH_KUBE_CACHE_MAX * sizeof(*k->cache));
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static const ca_auth_ops kube_ops = {kube_authenticate, kube_auth_free};

uint64_t ca_auth_kube_reviews(const ca_auth *a)
{
	if (!a || a->ops != &kube_ops)
		return 0;
	return atomic_load(&((const kube_auth *)a)->reviews);
}

static int add_accounts(char list[][CA_AUTH_KUBE_REF_MAX + 1], size_t *n,
			const char *const *refs, size_t n_refs, const char *flag, sigil_err *err)
{
	if (n_refs > CA_AUTH_KUBE_MAX_ACCOUNTS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d %s", CA_AUTH_KUBE_MAX_ACCOUNTS,
				     flag);
	for (size_t i = 0; i < n_refs; i++) {
		if (!ca_auth_kube_account_ok(refs[i]))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s \"%.64s\" is not NAMESPACE/NAME", flag,
					     refs[i] ? refs[i] : "");
		snprintf(list[(*n)++], CA_AUTH_KUBE_REF_MAX + 1, "%s", refs[i]);
	}
	return 0;
}

int ca_auth_kube_new(const ca_auth_kube_config *cfg, ca_auth **ret, sigil_err *err)
{
	kube_auth *k;
	const char *aud;
	int r;

	if (!cfg || !cfg->client)
		return sigil_err_set(err, SIGIL_E_INVALID, "TokenReview needs a Kubernetes client");
	aud = cfg->audience ? cfg->audience : CA_AUTH_KUBE_DEFAULT_AUDIENCE;
	if (!aud[0] || strlen(aud) > CA_AUTH_KUBE_MAX_AUDIENCE)
		return sigil_err_set(err, SIGIL_E_INVALID, "the token audience must be 1..%d bytes",
				     CA_AUTH_KUBE_MAX_AUDIENCE);
	k = calloc(1, sizeof(*k));
	if (!k)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	k->cache = calloc(CA_AUTH_KUBE_CACHE_MAX, sizeof(*k->cache));
	if (!k->cache) {
		free(k);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	k->base.ops = &kube_ops;
	pthread_mutex_init(&k->lock, NULL);
	k->client = cfg->client;
	k->clock = cfg->clock ? cfg->clock : &sigil_clock_real;
	snprintf(k->audience, sizeof(k->audience), "%s", aud);
	r = add_accounts(k->admin_accounts, &k->n_admin_accounts, cfg->admin_accounts,
			 cfg->n_admin_accounts, "--admin-service-account", err);
	if (r == 0 && cfg->n_node_accounts > 0) {
		r = add_accounts(k->node_accounts, &k->n_node_accounts, cfg->node_accounts,
				 cfg->n_node_accounts, "--node-service-account", err);
	} else if (r == 0) {
		char def[CA_AUTH_KUBE_REF_MAX + 1];
		const char *ns = cfg->namespace_ ? cfg->namespace_ : kube_client_namespace(cfg->client);
		const char *one[1] = {def};

		snprintf(def, sizeof(def), "%s/%s", ns ? ns : "default", CA_AUTH_KUBE_DEFAULT_NODE_SA);
		r = add_accounts(k->node_accounts, &k->n_node_accounts, one, 1, "namespace", err);
	}
	if (r < 0) {
		kube_auth_free(&k->base);
		return r;
	}
	*ret = &k->base;
	return 0;
}

/* ---- the chain ------------------------------------------------------------------------ */

typedef struct chain_auth {
	ca_auth base;
	ca_auth *members[CA_AUTH_CHAIN_MAX];
	size_t n;
} chain_auth;

static int chain_authenticate(ca_auth *a, const char *tok, size_t len, ca_caller *ret,
			      sigil_err *err)
{
	chain_auth *c = (chain_auth *)a;
	int r = SIGIL_E_UNAUTH;

	for (size_t i = 0; i < c->n; i++) {
		sigil_err e = {0};

		r = ca_auth_authenticate(c->members[i], tok, len, ret, &e);
		if (r != SIGIL_E_UNAUTH || i + 1 == c->n) {
			if (r < 0 && err)
				*err = e;
			return r;
		}
	}
	return sigil_err_set(err, r, "invalid bearer token");
}

static void chain_free(ca_auth *a)
{
	chain_auth *c = (chain_auth *)a;

	for (size_t i = 0; i < c->n; i++)
		ca_auth_free(c->members[i]);
	free(c);
}

static const ca_auth_ops chain_ops = {chain_authenticate, chain_free};

int ca_auth_chain_new(ca_auth *const *members, size_t n, ca_auth **ret, sigil_err *err)
{
	chain_auth *c;

	if (n == 0 || n > CA_AUTH_CHAIN_MAX) {
		for (size_t i = 0; i < n; i++)
			ca_auth_free(members[i]);
		return sigil_err_set(err, SIGIL_E_INVALID, "1..%d authenticators", CA_AUTH_CHAIN_MAX);
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		for (size_t i = 0; i < n; i++)
			ca_auth_free(members[i]);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	c->base.ops = &chain_ops;
	for (size_t i = 0; i < n; i++)
		c->members[c->n++] = members[i];
	*ret = &c->base;
	return 0;
}
