/* Kubernetes API client over libcurl and jansson (see client.h).
 *
 * The apiserver is a peer we trust for content but not for size or
 * shape: every body is size-limited while it arrives, decoded with
 * duplicate keys refused, and only printable bytes of it reach messages.
 * Names and selectors are checked or escaped before they go into a URL. */
#define _GNU_SOURCE
#include "kube/client.h"
#include "kube/jsonmem.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define KUBE_USER_AGENT "sigil/0.1.0"
/* Idle easy handles kept for their connections. */
#define KUBE_POOL_SIZE 8
/* A watch request lives timeout_seconds on the server; the client gives
 * it this much more before it calls the connection dead. */
#define KUBE_WATCH_SLACK_MS          30000
#define KUBE_WATCH_DEFAULT_TIMEOUT_S 300
#define KUBE_WATCH_MAX_TIMEOUT_S     3600
/* Granularity of waits that a stop flag can cut short. */
#define KUBE_SLEEP_SLICE_MS 100
/* A watch stream shorter than this without events counts as a failure
 * (so a server that closes at once is not hammered). */
#define KUBE_WATCH_MIN_HEALTHY_MS 1000
#define KUBE_MAX_WHAT             384
#define KUBE_MAX_HEADER           (KUBE_CONFIG_MAX_TOKEN + 64)

SIGIL_DEFINE_CLEANUP(CURLU, curl_url_cleanup)

static void kube_json_decref(json_t *j)
{
	json_decref(j);
}
SIGIL_DEFINE_CLEANUP(json_t, kube_json_decref)

/* ---- resources ------------------------------------------------------------ */

const kube_resource kube_res_pods = {"", "v1", "pods", "Pod", true};
const kube_resource kube_res_nodes = {"", "v1", "nodes", "Node", false};
const kube_resource kube_res_namespaces = {"", "v1", "namespaces", "Namespace", false};
const kube_resource kube_res_pvcs = {"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim",
                                     true};
const kube_resource kube_res_secrets = {"", "v1", "secrets", "Secret", true};
const kube_resource kube_res_configmaps = {"", "v1", "configmaps", "ConfigMap", true};
const kube_resource kube_res_events = {"", "v1", "events", "Event", true};
const kube_resource kube_res_leases = {"coordination.k8s.io", "v1", "leases", "Lease", true};
const kube_resource kube_res_pdbs = {"policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget",
                                     true};
const kube_resource kube_res_tokenreviews = {"authentication.k8s.io", "v1", "tokenreviews",
                                             "TokenReview", false};
const kube_resource kube_res_secretclasses = {"secrets.sigil.dev", "v1alpha1", "secretclasses",
                                              "SecretClass", false};
const kube_resource kube_res_truststores = {"secrets.sigil.dev", "v1alpha1", "truststores",
                                            "TrustStore", true};
const kube_resource kube_res_stackable_secretclasses = {"secrets.stackable.tech", "v1alpha2",
                                                        "secretclasses", "SecretClass", false};
const kube_resource kube_res_stackable_truststores = {"secrets.stackable.tech", "v1alpha1",
                                                      "truststores", "TrustStore", true};
/* helper A (issue 6, pod identity): listener-volume scopes read Listeners. */
const kube_resource kube_res_listeners = {"listeners.stackable.tech", "v1alpha1", "listeners",
                                          "Listener", true};

static const kube_resource *const kube_resources[] = {
    &kube_res_pods,
    &kube_res_nodes,
    &kube_res_namespaces,
    &kube_res_pvcs,
    &kube_res_secrets,
    &kube_res_configmaps,
    &kube_res_events,
    &kube_res_leases,
    &kube_res_pdbs,
    &kube_res_tokenreviews,
    /* sigil's group before Stackable's: a bare "secretclasses" is ours. */
    &kube_res_secretclasses,
    &kube_res_truststores,
    &kube_res_stackable_secretclasses,
    &kube_res_stackable_truststores,
    &kube_res_listeners, /* helper A (issue 6) */
};

const kube_resource *kube_resource_find(const char *name)
{
	const char *dot;
	size_t plen;

	if (!name)
		return NULL;
	dot = strchr(name, '.');
	plen = dot ? (size_t)(dot - name) : strlen(name);
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(kube_resources); i++) {
		const kube_resource *r = kube_resources[i];

		if (strlen(r->plural) != plen || strncmp(r->plural, name, plen) != 0)
			continue;
		if (!dot || strcmp(dot + 1, r->group) == 0)
			return r;
	}
	return NULL;
}

bool kube_name_ok(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strnlen(name, KUBE_MAX_NAME + 1);
	if (n == 0 || n > KUBE_MAX_NAME || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
		      ch == ':' || ch == '@' || ch == '+' || ch == '~'))
			return false;
	}
	return true;
}

/* Namespaces are DNS labels. */
static bool kube_namespace_ok(const char *ns)
{
	size_t n = strnlen(ns, 64);

	if (n == 0 || n > 63 || ns[0] == '-' || ns[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((ns[i] >= 'a' && ns[i] <= 'z') || (ns[i] >= '0' && ns[i] <= '9') ||
		      ns[i] == '-'))
			return false;
	return true;
}

/* Quotes a caller's string in a message: printable, bounded. */
static const char *kube_show(const char *s, char *buf, size_t cap)
{
	return sigil_err_show(s, buf, cap);
}

int kube_resource_path(const kube_resource *res, const char *ns, const char *name,
                       const char *subresource, char **ret, sigil_err *err)
{
	sigil_wbuf b;
	char q[80];
	int r;

	if (ns && !ns[0])
		ns = NULL;
	if (ns && !res->namespaced)
		return sigil_err_set(
		    err, SIGIL_E_INVALID,
		    "%s objects are not namespaced, yet namespace \"%s\" was given", res->kind,
		    kube_show(ns, q, sizeof(q)));
	if (ns && !kube_namespace_ok(ns))
		return sigil_err_set(err, SIGIL_E_INVALID, "namespace \"%s\" is not a DNS label",
		                     kube_show(ns, q, sizeof(q)));
	if (name && !kube_name_ok(name))
		return sigil_err_set(err, SIGIL_E_INVALID, "\"%s\" is not a valid %s name",
		                     kube_show(name, q, sizeof(q)), res->kind);
	if (name && res->namespaced && !ns)
		return sigil_err_set(err, SIGIL_E_INVALID, "%s \"%s\" needs a namespace", res->kind,
		                     name);
	if (subresource && !kube_name_ok(subresource))
		return sigil_err_set(err, SIGIL_E_INVALID, "bad subresource name");
	sigil_wbuf_init(&b, KUBE_MAX_PATH, false);
	if (res->group[0])
		sigil_wbuf_putf(&b, "/apis/%s/%s", res->group, res->version);
	else
		sigil_wbuf_putf(&b, "/api/%s", res->version);
	if (ns)
		sigil_wbuf_putf(&b, "/namespaces/%s", ns);
	sigil_wbuf_putf(&b, "/%s", res->plural);
	if (name)
		sigil_wbuf_putf(&b, "/%s", name);
	if (subresource)
		sigil_wbuf_putf(&b, "/%s", subresource);
	r = sigil_wbuf_status(&b);
	if (r < 0) {
		sigil_wbuf_free(&b);
		return sigil_err_set(err, r, "cannot build an API path");
	}
	*ret = (char *)sigil_wbuf_steal(&b, NULL);
	return *ret ? 0 : sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
}

static const char *kube_json_str(const json_t *obj, const char *a, const char *b)
{
	const json_t *v = json_object_get(obj, a);

	if (b)
		v = json_object_get(v, b);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *kube_object_name(const json_t *obj)
{
	return kube_json_str(obj, "metadata", "name");
}

const char *kube_object_namespace(const json_t *obj)
{
	return kube_json_str(obj, "metadata", "namespace");
}

const char *kube_object_resource_version(const json_t *obj)
{
	return kube_json_str(obj, "metadata", "resourceVersion");
}

/* "get Pod default/web-0", "list pods in namespace default". */
static void kube_what(char *buf, size_t cap, const char *verb, const kube_resource *res,
                      const char *ns, const char *name)
{
	if (name)
		snprintf(buf, cap, "%s %s %s%s%s", verb, res->kind, ns && ns[0] ? ns : "",
		         ns && ns[0] ? "/" : "", name);
	else if (ns && ns[0])
		snprintf(buf, cap, "%s %s in namespace %s", verb, res->plural, ns);
	else
		snprintf(buf, cap, "%s %s%s", verb, res->plural,
		         res->namespaced ? " in all namespaces" : "");
}

/* ---- the client --------------------------------------------------------------- */

struct kube_client {
	kube_client_opts opts;
	char *server;
	char *user_agent;
	char *ca_file;
	uint8_t *ca_data;
	size_t ca_data_len;
	bool insecure;
	bool allow_http;
	char *client_cert_file;
	char *client_key_file;
	uint8_t *client_cert_data;
	size_t client_cert_data_len;
	uint8_t *client_key_data;
	size_t client_key_data_len;
	char *namespace_;

	pthread_mutex_t auth_lock;
	char *token; /* current bearer token */
	char *token_file;
	bool token_stat_valid;
	dev_t token_dev;
	ino_t token_ino;
	off_t token_size;
	struct timespec token_mtime;

	pthread_mutex_t rate_lock;
	double bucket;
	int64_t bucket_ns;
	uint64_t rng;

	pthread_mutex_t pool_lock;
	CURL *pool[KUBE_POOL_SIZE];
	size_t n_pool;
};

static pthread_once_t kube_curl_once = PTHREAD_ONCE_INIT;
static CURLcode kube_curl_init_rc = CURLE_FAILED_INIT;

static void kube_curl_global_init(void)
{
	/* curl_global_init is not thread-safe on every libcurl: run it once. */
	kube_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void kube_client_opts_init(kube_client_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->qps = 20;
	o->burst = 30;
	o->timeout_ms = 30000;
	o->connect_timeout_ms = 10000;
	o->max_response = KUBE_DEFAULT_MAX_RESPONSE;
	o->max_retries = 5;
	o->backoff_base_ms = 200;
	o->backoff_max_ms = 10000;
	o->retry_after_max_ms = 30000;
	o->user_agent = KUBE_USER_AGENT;
}

static bool kube_is_loopback(const char *host)
{
	return !strcmp(host, "127.0.0.1") || !strcmp(host, "localhost") || !strcmp(host, "[::1]") ||
	       !strcmp(host, "::1");
}

/* https:// always; http:// only to this machine (a bearer token must not
 * cross a network in clear text).  No user info, query or fragment: API
 * paths are appended to this URL. */
static int kube_check_server(const char *url, bool *allow_http, sigil_err *err)
{
	_cleanup_(curl_url_cleanupp) CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *part = NULL;
	int r = 0;

	if (!u)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		r = sigil_err_set(err, SIGIL_E_INVALID, "Kubernetes API server \"%s\" is not a URL",
		                  url);
		goto out;
	}
	*allow_http = false;
	if (!strcmp(scheme, "http") && kube_is_loopback(host)) {
		*allow_http = true;
	} else if (strcmp(scheme, "https") != 0) {
		r = sigil_err_set(
		    err, SIGIL_E_INVALID,
		    "Kubernetes API server \"%s\" must use https:// (http:// only to 127.0.0.1)",
		    url);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK)
		r = sigil_err_set(
		    err, SIGIL_E_INVALID,
		    "Kubernetes API server URL must not contain user info, a query or a fragment");
out:
	curl_free(part);
	curl_free(host);
	curl_free(scheme);
	return r;
}

static int kube_dup(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : SIGIL_E_NOMEM;
}

static int kube_dup_bytes(uint8_t **dst, size_t *dst_len, const uint8_t *src, size_t len)
{
	if (!src)
		return 0;
	*dst = malloc(len + 1);
	if (!*dst)
		return SIGIL_E_NOMEM;
	memcpy(*dst, src, len);
	(*dst)[len] = 0;
	*dst_len = len;
	return 0;
}

void kube_client_free(kube_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_pool; i++)
		curl_easy_cleanup(c->pool[i]);
	pthread_mutex_destroy(&c->pool_lock);
	pthread_mutex_destroy(&c->rate_lock);
	pthread_mutex_destroy(&c->auth_lock);
	free(c->server);
	free(c->user_agent);
	free(c->ca_file);
	free(c->ca_data);
	free(c->client_cert_file);
	free(c->client_key_file);
	free(c->client_cert_data);
	if (c->client_key_data)
		sigil_freezero(c->client_key_data, c->client_key_data_len + 1);
	free(c->namespace_);
	sigil_secret_free(c->token);
	free(c->token_file);
	free(c);
}

int kube_client_new(const kube_config *cfg, const kube_client_opts *opts, kube_client **ret,
                    sigil_err *err)
{
	_cleanup_(kube_client_freep) kube_client *c = NULL;
	kube_client_opts defaults;
	int r;

	pthread_once(&kube_curl_once, kube_curl_global_init);
	kube_jsonmem_init(); /* Secret data and tokens pass through jansson */
	if (kube_curl_init_rc != CURLE_OK)
		return sigil_err_set(err, SIGIL_E_INTERNAL, "libcurl initialisation failed: %s",
		                     curl_easy_strerror(kube_curl_init_rc));
	if (!opts) {
		kube_client_opts_init(&defaults);
		opts = &defaults;
	}
	if (!cfg || !cfg->server)
		return sigil_err_set(err, SIGIL_E_INVALID, "no Kubernetes API server configured");
	if (opts->qps < 0 || opts->timeout_ms <= 0 || opts->connect_timeout_ms <= 0 ||
	    opts->max_response == 0 || opts->max_retries > KUBE_MAX_RETRIES ||
	    opts->backoff_base_ms < 0 || opts->backoff_max_ms < opts->backoff_base_ms ||
	    opts->retry_after_max_ms < 0 || (opts->qps > 0 && opts->burst == 0))
		return sigil_err_set(err, SIGIL_E_INVALID, "bad Kubernetes client options");
	c = sigil_calloc(1, sizeof(*c));
	if (!c)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	pthread_mutex_init(&c->auth_lock, NULL);
	pthread_mutex_init(&c->rate_lock, NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	c->opts = *opts;
	c->opts.user_agent = NULL;
	c->insecure = cfg->insecure_skip_tls_verify;
	r = kube_check_server(cfg->server, &c->allow_http, err);
	if (r < 0)
		return r;
	if (kube_dup(&c->server, cfg->server) < 0 ||
	    kube_dup(&c->user_agent, opts->user_agent ? opts->user_agent : KUBE_USER_AGENT) < 0 ||
	    kube_dup(&c->ca_file, cfg->ca_file) < 0 ||
	    kube_dup_bytes(&c->ca_data, &c->ca_data_len, cfg->ca_data, cfg->ca_data_len) < 0 ||
	    kube_dup(&c->client_cert_file, cfg->client_cert_file) < 0 ||
	    kube_dup(&c->client_key_file, cfg->client_key_file) < 0 ||
	    kube_dup_bytes(&c->client_cert_data, &c->client_cert_data_len, cfg->client_cert_data,
	                   cfg->client_cert_data_len) < 0 ||
	    kube_dup_bytes(&c->client_key_data, &c->client_key_data_len, cfg->client_key_data,
	                   cfg->client_key_data_len) < 0 ||
	    kube_dup(&c->namespace_, cfg->namespace_ ? cfg->namespace_ : "default") < 0 ||
	    kube_dup(&c->token_file, cfg->token_file) < 0 ||
	    (!cfg->token_file && kube_dup(&c->token, cfg->token) < 0))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	c->bucket = opts->burst;
	c->bucket_ns = sigil_mono_ns();
	c->rng = (uint64_t)c->bucket_ns ^ (uint64_t)(uintptr_t)c;
	*ret = TAKE_PTR(c);
	return 0;
}

const char *kube_client_namespace(const kube_client *c)
{
	return c->namespace_;
}

/* ---- waiting ---------------------------------------------------------------- */

static void kube_sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool kube_should_stop(const atomic_int *stop, int64_t deadline_ns)
{
	return (stop && atomic_load(stop)) || (deadline_ns && sigil_mono_ns() >= deadline_ns);
}

/* Sleeps ms, or less when stop is raised or the deadline comes; returns
 * true when it was cut short. */
static bool kube_sleep_interruptible(long ms, const atomic_int *stop, int64_t deadline_ns)
{
	while (ms > 0) {
		long slice = ms < KUBE_SLEEP_SLICE_MS ? ms : KUBE_SLEEP_SLICE_MS;

		if (kube_should_stop(stop, deadline_ns))
			return true;
		kube_sleep_ms(slice);
		ms -= slice;
	}
	return kube_should_stop(stop, deadline_ns);
}

/* Client-side rate limit: a token bucket.  A caller takes a token,
 * possibly driving the bucket negative, and sleeps until its token would
 * have been there; so waiters are served in order without a queue. */
static void kube_rate_wait(kube_client *c)
{
	int64_t now, wait_ns = 0;

	if (c->opts.qps <= 0)
		return;
	pthread_mutex_lock(&c->rate_lock);
	now = sigil_mono_ns();
	c->bucket += (double)(now - c->bucket_ns) * c->opts.qps / 1e9;
	if (c->bucket > c->opts.burst)
		c->bucket = c->opts.burst;
	c->bucket_ns = now;
	c->bucket -= 1;
	if (c->bucket < 0)
		wait_ns = (int64_t)(-c->bucket / c->opts.qps * 1e9);
	pthread_mutex_unlock(&c->rate_lock);
	if (wait_ns > 0)
		kube_sleep_ms((long)((wait_ns + 999999) / 1000000));
}

/* Exponential backoff with jitter in [d/2, d). */
static long kube_backoff_ms(kube_client *c, unsigned attempt)
{
	long d = c->opts.backoff_base_ms;
	uint64_t x;

	for (unsigned i = 0; i < attempt && d < c->opts.backoff_max_ms; i++)
		d *= 2;
	if (d > c->opts.backoff_max_ms)
		d = c->opts.backoff_max_ms;
	if (d <= 1)
		return d;
	pthread_mutex_lock(&c->rate_lock);
	/* xorshift64: jitter only, no secrecy needed. */
	x = c->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->rng = x;
	pthread_mutex_unlock(&c->rate_lock);
	return d / 2 + (long)(x % (uint64_t)(d / 2));
}

/* ---- the bearer token ----------------------------------------------------------- */

/* Re-reads the token file when it changed (or when force is set, after a
 * 401).  *changed tells whether the token is different now.  A token file
 * that cannot be read while we still hold a token keeps the old one: the
 * kubelet swaps the file atomically, a failure is transient. */
static int kube_token_refresh(kube_client *c, bool force, bool *changed, sigil_err *err)
{
	struct stat st;
	char *tok = NULL;
	int r = 0;

	if (changed)
		*changed = false;
	if (!c->token_file)
		return 0;
	pthread_mutex_lock(&c->auth_lock);
	if (stat(c->token_file, &st) < 0) {
		if (!c->token)
			r = sigil_err_errno(err, errno, "bearer token file %s", c->token_file);
		goto out;
	}
	if (!force && c->token && c->token_stat_valid && st.st_dev == c->token_dev &&
	    st.st_ino == c->token_ino && st.st_size == c->token_size &&
	    st.st_mtim.tv_sec == c->token_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == c->token_mtime.tv_nsec)
		goto out;
	r = kube_config_read_token(c->token_file, &tok, err);
	if (r < 0) {
		if (c->token)
			r = 0;
		goto out;
	}
	if (changed)
		*changed = !c->token || strcmp(c->token, tok) != 0;
	sigil_secret_free(c->token);
	c->token = tok;
	c->token_stat_valid = true;
	c->token_dev = st.st_dev;
	c->token_ino = st.st_ino;
	c->token_size = st.st_size;
	c->token_mtime = st.st_mtim;
	log_debug("kube: read bearer token from %s", c->token_file);
out:
	pthread_mutex_unlock(&c->auth_lock);
	return r;
}

/* "Authorization: Bearer ..." (secret), or NULL without a token. */
static int kube_auth_header(kube_client *c, char **ret)
{
	int r = 0;

	*ret = NULL;
	pthread_mutex_lock(&c->auth_lock);
	if (c->token) {
		size_t n = strlen(c->token) + sizeof("Authorization: Bearer ");
		char *h = malloc(n);

		if (h)
			snprintf(h, n, "Authorization: Bearer %s", c->token);
		else
			r = SIGIL_E_NOMEM;
		*ret = h;
	}
	pthread_mutex_unlock(&c->auth_lock);
	return r;
}

/* A header list that may hold a token: wiped before curl frees it. */
static void kube_headers_free(struct curl_slist *h)
{
	for (struct curl_slist *i = h; i; i = i->next)
		if (i->data)
			sigil_wipe(i->data, strlen(i->data));
	curl_slist_free_all(h);
}
SIGIL_DEFINE_CLEANUP(struct curl_slist, kube_headers_free)

/* ---- one HTTP exchange ---------------------------------------------------------- */

typedef struct kube_req {
	const char *method;
	const char *path;         /* path and query, appended to the server URL */
	const char *what;         /* for messages: "get Pod default/web-0" */
	const char *content_type; /* of body */
	const char *body;
	size_t body_len;
	bool retry_429_needs_retry_after; /* eviction: a bare 429 is a PDB's answer */
	bool idempotent;                  /* safe to resend after a broken connection */
} kube_req;

typedef struct kube_stream kube_stream;

typedef struct kube_resp {
	long status;
	long retry_after_s;
	sigil_wbuf body;
	bool limit_hit;
	/* Watches: events are handed to the stream as they arrive. */
	kube_stream *stream;
	const atomic_int *stop;
	int64_t deadline_ns;
	bool stopped;
} kube_resp;

static CURL *kube_handle_get(kube_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool > 0)
		h = c->pool[--c->n_pool];
	pthread_mutex_unlock(&c->pool_lock);
	return h ? h : curl_easy_init();
}

/* Back to the pool; curl_easy_reset keeps live connections and TLS
 * sessions, which is the point of pooling. */
static void kube_handle_put(kube_client *c, CURL *h, bool reusable)
{
	if (!h)
		return;
	curl_easy_reset(h);
	pthread_mutex_lock(&c->pool_lock);
	if (reusable && c->n_pool < KUBE_POOL_SIZE) {
		c->pool[c->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

static int kube_stream_feed(kube_stream *s, const char *p, size_t n);

static size_t kube_write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	kube_resp *rs = ud;
	size_t n = size * nmemb;

	if (rs->stream && rs->status == 200)
		return kube_stream_feed(rs->stream, p, n) < 0 ? 0 : n;
	if (sigil_wbuf_put(&rs->body, p, n) < 0) {
		rs->limit_hit = rs->body.failed == SIGIL_E_LIMIT;
		return 0;
	}
	return n;
}

/* Watches learn the status before the body, so that a 200 stream is
 * parsed as events and anything else collected as a Status. */
static size_t kube_header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	kube_resp *rs = ud;
	size_t n = size * nmemb;

	if (n >= 5 && !memcmp(p, "HTTP/", 5)) {
		/* "HTTP/1.1 200 OK", "HTTP/2 200": the code is the second word. */
		const char *sp = memchr(p, ' ', n);
		long code = 0;

		for (size_t i = sp ? (size_t)(sp - p) + 1 : n;
		     i < n && p[i] >= '0' && p[i] <= '9' && code < 1000; i++)
			code = code * 10 + (p[i] - '0');
		/* Interim 1xx answers are followed by the real one. */
		if (code >= 200)
			rs->status = code;
	}
	return n;
}

static int kube_xfer_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                        curl_off_t ulnow)
{
	kube_resp *rs = ud;

	if (kube_should_stop(rs->stop, rs->deadline_ns)) {
		rs->stopped = true;
		return 1;
	}
	return 0;
}

static int kube_curl_error(kube_client *c, const kube_req *rq, CURLcode rc, const char *detail,
                           long timeout_ms, const kube_resp *rs, sigil_err *err)
{
	const char *msg = detail[0] ? detail : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return sigil_err_set(err, SIGIL_E_TIMEOUT,
		                     "%s: no answer from the Kubernetes API at %s within %ld ms",
		                     rq->what, c->server, timeout_ms);
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (rs->limit_hit || rc == CURLE_FILESIZE_EXCEEDED)
			return sigil_err_set(
			    err, SIGIL_E_LIMIT,
			    "%s: the answer from the Kubernetes API exceeds the %zu-byte limit",
			    rq->what, rs->body.max);
		return sigil_err_set(err, SIGIL_E_INTERNAL, "%s: %s", rq->what, msg);
	case CURLE_OUT_OF_MEMORY:
		return sigil_err_set(err, SIGIL_E_NOMEM, "%s: out of memory", rq->what);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return sigil_err_set(err, SIGIL_E_UNAVAIL,
		                     "%s: the certificate of the Kubernetes API at %s is not "
		                     "trusted (check the certificate authority): %s",
		                     rq->what, c->server, msg);
	case CURLE_SSL_CERTPROBLEM:
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "%s: the client certificate or key cannot be used: %s",
		                     rq->what, msg);
	default:
		return sigil_err_set(err, SIGIL_E_UNAVAIL,
		                     "%s: cannot reach the Kubernetes API at %s: %s", rq->what,
		                     c->server, msg);
	}
}

/* Failures before any answer that are worth another attempt. */
static bool kube_curl_transient(CURLcode rc, bool idempotent)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST: return true;
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE: return idempotent;
	default: return false;
	}
}

/* Performs one exchange.  0 when an HTTP answer came back (any status);
 * otherwise an error, with *transient telling whether to try again. */
static int kube_perform(kube_client *c, const kube_req *rq, kube_resp *rs, long timeout_ms,
                        bool *transient, sigil_err *err)
{
	_cleanup_(kube_headers_freep) struct curl_slist *headers = NULL;
	_cleanup_(sigil_secret_strp) char *auth = NULL;
	_cleanup_free_ char *url = NULL;
	char ctype[96], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_blob blob;
	size_t ulen;
	CURL *h;
	CURLcode rc = CURLE_OK;
	curl_off_t ra = 0;
	int r;

	*transient = false;
	ulen = strlen(c->server) + strlen(rq->path) + 1;
	url = malloc(ulen);
	if (!url)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	snprintf(url, ulen, "%s%s", c->server, rq->path);
	if (kube_auth_header(c, &auth) < 0)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	{
		const char *fixed[3] = {"Accept: application/json", "Expect:", NULL};
		size_t nf = 2;

		if (rq->content_type) {
			snprintf(ctype, sizeof(ctype), "Content-Type: %s", rq->content_type);
			fixed[nf++] = ctype;
		}
		for (size_t i = 0; i < nf; i++) {
			struct curl_slist *nh = curl_slist_append(headers, fixed[i]);

			if (!nh)
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			headers = nh;
		}
		if (auth) {
			struct curl_slist *nh = curl_slist_append(headers, auth);

			if (!nh)
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			headers = nh;
		}
	}
	h = kube_handle_get(c);
	if (!h)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	rs->status = 0;
	rs->retry_after_s = 0;
	rs->limit_hit = false;
	rs->stopped = false;
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(h, opt, val);                                        \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, c->allow_http ? "https,http" : "https");
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_USERAGENT, c->user_agent);
	SET(CURLOPT_HTTPHEADER, headers);
	SET(CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, timeout_ms);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_WRITEFUNCTION, kube_write_cb);
	SET(CURLOPT_WRITEDATA, rs);
	SET(CURLOPT_HEADERFUNCTION, kube_header_cb);
	SET(CURLOPT_HEADERDATA, rs);
	SET(CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
	if (!rs->stream)
		SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)rs->body.max);
	if (rs->stop || rs->deadline_ns) {
		SET(CURLOPT_NOPROGRESS, 0L);
		SET(CURLOPT_XFERINFOFUNCTION, kube_xfer_cb);
		SET(CURLOPT_XFERINFODATA, rs);
	}
	if (c->ca_file)
		SET(CURLOPT_CAINFO, c->ca_file);
	if (c->ca_data) {
		blob = (struct curl_blob){
		    .data = c->ca_data, .len = c->ca_data_len, .flags = CURL_BLOB_COPY};
		SET(CURLOPT_CAINFO_BLOB, &blob);
	}
	if (c->client_cert_file)
		SET(CURLOPT_SSLCERT, c->client_cert_file);
	if (c->client_key_file)
		SET(CURLOPT_SSLKEY, c->client_key_file);
	if (c->client_cert_data) {
		blob = (struct curl_blob){.data = c->client_cert_data,
		                          .len = c->client_cert_data_len,
		                          .flags = CURL_BLOB_COPY};
		SET(CURLOPT_SSLCERT_BLOB, &blob);
		SET(CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (c->client_key_data) {
		/* NOCOPY: curl must not keep its own unwiped copy of the key. */
		blob = (struct curl_blob){.data = c->client_key_data,
		                          .len = c->client_key_data_len,
		                          .flags = CURL_BLOB_NOCOPY};
		SET(CURLOPT_SSLKEY_BLOB, &blob);
		SET(CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (strcmp(rq->method, "GET") != 0)
		SET(CURLOPT_CUSTOMREQUEST, rq->method);
	if (rq->body) {
		SET(CURLOPT_POSTFIELDS, rq->body);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	}
#undef SET
	if (rc != CURLE_OK) {
		kube_handle_put(c, h, false);
		return sigil_err_set(err, SIGIL_E_INTERNAL, "%s: libcurl setup failed: %s",
		                     rq->what, curl_easy_strerror(rc));
	}
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK) {
		long code = 0;

		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		rs->status = code;
		if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			rs->retry_after_s = ra > 86400 ? 86400 : (long)ra;
		r = 0;
	} else if (rc == CURLE_ABORTED_BY_CALLBACK && rs->stopped) {
		r = 0; /* the caller asked to stop */
	} else if (rs->stream && rc == CURLE_WRITE_ERROR && rs->status == 200) {
		r = 0; /* the stream ended itself (callback, 410, bad event) */
	} else {
		*transient = kube_curl_transient(rc, rq->idempotent);
		r = kube_curl_error(c, rq, rc, errbuf, timeout_ms, rs, err);
	}
	log_debug("kube: %s %s -> %ld (%s)", rq->method, rq->path, rs->status,
	          rc == CURLE_OK ? "ok" : curl_easy_strerror(rc));
	/* A connection whose transfer we cut short cannot be reused. */
	kube_handle_put(c, h, rc == CURLE_OK);
	return r;
}

static bool kube_status_retryable(const kube_req *rq, const kube_resp *rs)
{
	switch (rs->status) {
	case 429: return !rq->retry_429_needs_retry_after || rs->retry_after_s > 0;
	case 500:
	case 502:
	case 503:
	case 504: return true;
	default: return false;
	}
}

static void kube_err_append(sigil_err *err, const char *s)
{
	size_t n;

	if (!err)
		return;
	n = strlen(err->msg);
	if (n + 1 < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - n, "%s", s);
}

/* Runs a request with retries and turns the answer into JSON or an error.
 * ret may be NULL when the caller does not want the body. */
static int kube_do(kube_client *c, const kube_req *rq, json_t **ret, sigil_err *err)
{
	kube_resp rs = {0};
	bool reauthed = false;
	unsigned attempt;
	int r;

	for (attempt = 0;; attempt++) {
		bool transient = false;
		long wait;

		kube_rate_wait(c);
		r = kube_token_refresh(c, false, NULL, err);
		if (r < 0)
			return sigil_err_prefix(err, "%s", rq->what);
		sigil_wbuf_free(&rs.body);
		sigil_wbuf_init(&rs.body, c->opts.max_response, true);
		r = kube_perform(c, rq, &rs, c->opts.timeout_ms, &transient, err);
		if (r < 0) {
			if (!transient || attempt >= c->opts.max_retries)
				goto out;
			kube_sleep_ms(kube_backoff_ms(c, attempt));
			continue;
		}
		if (rs.status == 401 && c->token_file && !reauthed) {
			bool changed = false;

			/* The token may have rotated between our stat and the
			 * request; one more try with a fresh read. */
			reauthed = true;
			if (kube_token_refresh(c, true, &changed, NULL) == 0 && changed)
				continue;
		}
		if (!kube_status_retryable(rq, &rs) || attempt >= c->opts.max_retries)
			break;
		if (rs.retry_after_s > 0) {
			wait = rs.retry_after_s * 1000;
			if (wait > c->opts.retry_after_max_ms)
				wait = c->opts.retry_after_max_ms;
		} else {
			wait = kube_backoff_ms(c, attempt);
		}
		log_debug("kube: %s: HTTP %ld, retrying in %ld ms", rq->what, rs.status, wait);
		kube_sleep_ms(wait);
	}
	if (rs.status >= 200 && rs.status < 300) {
		json_error_t jerr;
		json_t *obj;

		r = 0;
		if (!ret)
			goto out;
		obj =
		    json_loadb((const char *)rs.body.p, rs.body.len, JSON_REJECT_DUPLICATES, &jerr);
		if (!obj || !json_is_object(obj)) {
			json_decref(obj);
			r = sigil_err_set(err, SIGIL_E_CORRUPT,
			                  "%s: the Kubernetes API answered with something that is "
			                  "not a JSON object (%s)",
			                  rq->what, obj ? "not an object" : jerr.text);
			goto out;
		}
		*ret = obj;
		goto out;
	}
	{
		kube_status st;

		kube_status_parse(rs.status, (const char *)rs.body.p, rs.body.len, &st);
		r = kube_status_to_err(&st, rq->what, err);
		if (attempt > 0 && kube_status_retryable(rq, &rs)) {
			char tail[64];

			snprintf(tail, sizeof(tail), " (gave up after %u attempts)", attempt + 1);
			kube_err_append(err, tail);
		}
	}
out:
	sigil_wbuf_free(&rs.body);
	return r;
}

/* ---- requests --------------------------------------------------------------- */

/* Appends "&name=value" (or "?name=value" first) with value escaped. */
static void kube_query_add(sigil_wbuf *b, const char *name, const char *value)
{
	char *esc;

	if (!value)
		return;
	esc = curl_easy_escape(NULL, value, 0);
	if (!esc) {
		b->failed = b->failed ? b->failed : SIGIL_E_NOMEM;
		return;
	}
	sigil_wbuf_putf(b, "%c%s=%s", memchr(b->p, '?', b->len) ? '&' : '?', name, esc);
	curl_free(esc);
}

static int kube_check_selector(const char *what, const char *sel, sigil_err *err)
{
	if (sel && strnlen(sel, KUBE_MAX_SELECTOR + 1) > KUBE_MAX_SELECTOR)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s selector exceeds %d bytes", what,
		                     KUBE_MAX_SELECTOR);
	return 0;
}

/* Encodes a request body; the caller wipes and frees it (it may be a
 * Secret). */
static int kube_encode(const json_t *obj, const char *what, char **ret, size_t *len, sigil_err *err)
{
	char *s;

	if (!json_is_object(obj))
		return sigil_err_set(err, SIGIL_E_INVALID, "%s: the object is not a JSON object",
		                     what);
	s = json_dumps(obj, JSON_COMPACT);
	if (!s)
		return sigil_err_set(err, SIGIL_E_NOMEM, "%s: cannot encode the object", what);
	*len = strlen(s);
	if (*len > KUBE_MAX_REQUEST_BODY) {
		sigil_freezero(s, *len);
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "%s: the object is %zu bytes, the apiserver takes at most %u",
		                     what, *len, KUBE_MAX_REQUEST_BODY);
	}
	*ret = s;
	return 0;
}

static void kube_body_free(char **p)
{
	if (*p)
		sigil_freezero(*p, strlen(*p));
}

int kube_client_get(kube_client *c, const kube_resource *res, const char *ns, const char *name,
                    json_t **ret, sigil_err *err)
{
	_cleanup_free_ char *path = NULL;
	char what[KUBE_MAX_WHAT];
	int r;

	if (!name)
		return sigil_err_set(err, SIGIL_E_INVALID, "get %s: no name", res->kind);
	r = kube_resource_path(res, ns, name, NULL, &path, err);
	if (r < 0)
		return r;
	kube_what(what, sizeof(what), "get", res, ns, name);
	return kube_do(c,
	               &(kube_req){.method = "GET", .path = path, .what = what, .idempotent = true},
	               ret, err);
}

int kube_client_list_page(kube_client *c, const kube_resource *res, const char *ns,
                          const kube_list_opts *o, const char *cont, json_t **ret, sigil_err *err)
{
	_cleanup_free_ char *base = NULL;
	char what[KUBE_MAX_WHAT], lim[24];
	kube_list_opts none = {0};
	sigil_wbuf b;
	json_t *list = NULL;
	int r;

	if (!o)
		o = &none;
	if ((r = kube_check_selector("label", o->label_selector, err)) < 0 ||
	    (r = kube_check_selector("field", o->field_selector, err)) < 0)
		return r;
	if (cont && strnlen(cont, KUBE_MAX_PATH) >= KUBE_MAX_PATH)
		return sigil_err_set(err, SIGIL_E_LIMIT, "continue token too long");
	r = kube_resource_path(res, ns, NULL, NULL, &base, err);
	if (r < 0)
		return r;
	kube_what(what, sizeof(what), "list", res, ns, NULL);
	snprintf(lim, sizeof(lim), "%u", o->limit ? o->limit : KUBE_DEFAULT_PAGE_SIZE);
	sigil_wbuf_init(&b, KUBE_MAX_PATH * 3, false);
	sigil_wbuf_putf(&b, "%s", base);
	kube_query_add(&b, "limit", lim);
	if (o->label_selector && o->label_selector[0])
		kube_query_add(&b, "labelSelector", o->label_selector);
	if (o->field_selector && o->field_selector[0])
		kube_query_add(&b, "fieldSelector", o->field_selector);
	if (cont && cont[0])
		kube_query_add(&b, "continue", cont);
	r = sigil_wbuf_status(&b);
	if (r < 0) {
		sigil_wbuf_free(&b);
		return sigil_err_set(err, r, "%s: cannot build the request", what);
	}
	r = kube_do(
	    c,
	    &(kube_req){
	        .method = "GET", .path = (const char *)b.p, .what = what, .idempotent = true},
	    &list, err);
	sigil_wbuf_free(&b);
	if (r < 0)
		return r;
	if (!json_is_array(json_object_get(list, "items"))) {
		json_decref(list);
		return sigil_err_set(err, SIGIL_E_CORRUPT,
		                     "%s: the answer is not a List (no items)", what);
	}
	*ret = list;
	return 0;
}

static int kube_list_all(kube_client *c, const kube_resource *res, const char *ns,
                         const kube_list_opts *o, json_t **ret, sigil_err *err)
{
	_cleanup_(kube_json_decrefp) json_t *items = json_array();
	_cleanup_(kube_json_decrefp) json_t *first = NULL;
	_cleanup_free_ char *cont = NULL;
	json_t *out;
	int r;

	if (!items)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (unsigned page = 0;; page++) {
		_cleanup_(kube_json_decrefp) json_t *list = NULL;
		const json_t *meta;
		const char *next;

		if (page >= KUBE_MAX_LIST_PAGES)
			return sigil_err_set(err, SIGIL_E_LIMIT, "list %s: more than %d pages",
			                     res->plural, KUBE_MAX_LIST_PAGES);
		r = kube_client_list_page(c, res, ns, o, cont, &list, err);
		if (r < 0)
			return r;
		if (json_array_size(items) + json_array_size(json_object_get(list, "items")) >
		    KUBE_MAX_LIST_ITEMS)
			return sigil_err_set(err, SIGIL_E_LIMIT, "list %s: more than %d objects",
			                     res->plural, KUBE_MAX_LIST_ITEMS);
		if (json_array_extend(items, json_object_get(list, "items")) < 0)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		meta = json_object_get(list, "metadata");
		next = kube_json_str(meta, "continue", NULL);
		if (!first)
			first = json_incref(list);
		free(cont);
		cont = NULL;
		if (!next || !next[0])
			break;
		cont = strdup(next);
		if (!cont)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	/* The List as if it had come in one piece: the first page's kind
	 * and resourceVersion (the snapshot every page was served from). */
	out = json_pack(
	    "{s:O?, s:O?, s:{s:O?}, s:O}", "kind", json_object_get(first, "kind"), "apiVersion",
	    json_object_get(first, "apiVersion"), "metadata", "resourceVersion",
	    json_object_get(json_object_get(first, "metadata"), "resourceVersion"), "items", items);
	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	*ret = out;
	return 0;
}

int kube_client_list(kube_client *c, const kube_resource *res, const char *ns,
                     const kube_list_opts *o, json_t **ret, sigil_err *err)
{
	int r = kube_list_all(c, res, ns, o, ret, err);

	/* An expired continue token (410): the snapshot is gone, start over
	 * once (client-go's pager does the same). */
	if (r == KUBE_E_GONE)
		r = kube_list_all(c, res, ns, o, ret, err);
	return r;
}

/* Checks that obj names the same namespace as the call. */
static int kube_object_ns_check(const kube_resource *res, const char *ns, const json_t *obj,
                                const char *what, sigil_err *err)
{
	const char *ons = kube_object_namespace(obj);

	if (ons && ons[0] && res->namespaced && (!ns || strcmp(ons, ns) != 0))
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "%s: the object's namespace \"%s\" differs from the request's",
		                     what, ons);
	return 0;
}

int kube_client_create(kube_client *c, const kube_resource *res, const char *ns, json_t *obj,
                       json_t **ret, sigil_err *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_(kube_body_free) char *body = NULL;
	const char *name = kube_object_name(obj);
	char what[KUBE_MAX_WHAT];
	size_t len;
	int r;

	if (res->namespaced && (!ns || !ns[0]))
		return sigil_err_set(err, SIGIL_E_INVALID, "create %s: a namespace is needed",
		                     res->kind);
	r = kube_resource_path(res, ns, NULL, NULL, &path, err);
	if (r < 0)
		return r;
	kube_what(what, sizeof(what), "create", res, ns, name ? name : "(generated name)");
	if ((r = kube_object_ns_check(res, ns, obj, what, err)) < 0 ||
	    (r = kube_encode(obj, what, &body, &len, err)) < 0)
		return r;
	return kube_do(c,
	               &(kube_req){.method = "POST",
	                           .path = path,
	                           .what = what,
	                           .content_type = "application/json",
	                           .body = body,
	                           .body_len = len},
	               ret, err);
}

int kube_client_update(kube_client *c, const kube_resource *res, const char *ns, json_t *obj,
                       json_t **ret, sigil_err *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_(kube_body_free) char *body = NULL;
	const char *name = kube_object_name(obj);
	char what[KUBE_MAX_WHAT];
	size_t len;
	int r;

	if (!name)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "update %s: the object has no metadata.name", res->kind);
	r = kube_resource_path(res, ns, name, NULL, &path, err);
	if (r < 0)
		return r;
	kube_what(what, sizeof(what), "update", res, ns, name);
	if ((r = kube_object_ns_check(res, ns, obj, what, err)) < 0 ||
	    (r = kube_encode(obj, what, &body, &len, err)) < 0)
		return r;
	/* A PUT with a resourceVersion is safe to repeat: a second copy
	 * conflicts instead of writing twice. */
	return kube_do(c,
	               &(kube_req){.method = "PUT",
	                           .path = path,
	                           .what = what,
	                           .content_type = "application/json",
	                           .body = body,
	                           .body_len = len,
	                           .idempotent = kube_object_resource_version(obj) != NULL},
	               ret, err);
}

int kube_client_update_retry(kube_client *c, const kube_resource *res, const char *ns,
                             const char *name, unsigned attempts, kube_mutate_fn mutate, void *ctx,
                             json_t **ret, sigil_err *err)
{
	int r = SIGIL_E_BUSY;

	if (attempts == 0)
		attempts = 1;
	for (unsigned i = 0; i < attempts; i++) {
		_cleanup_(kube_json_decrefp) json_t *obj = NULL;

		r = kube_client_get(c, res, ns, name, &obj, err);
		if (r < 0)
			return r;
		if (!kube_object_resource_version(obj))
			return sigil_err_set(err, SIGIL_E_CORRUPT,
			                     "get %s %s: no metadata.resourceVersion", res->kind,
			                     name);
		r = mutate(obj, ctx, err);
		if (r < 0)
			return r;
		if (r == 1) {
			if (ret)
				*ret = TAKE_PTR(obj);
			return 0;
		}
		r = kube_client_update(c, res, ns, obj, ret, err);
		if (r != SIGIL_E_BUSY)
			return r;
		log_debug("kube: update %s %s: conflict, attempt %u of %u", res->kind, name, i + 1,
		          attempts);
	}
	{
		char tail[64];

		snprintf(tail, sizeof(tail), " (still conflicting after %u attempts)", attempts);
		kube_err_append(err, tail);
	}
	return r;
}

int kube_client_patch(kube_client *c, const kube_resource *res, const char *ns, const char *name,
                      json_t *patch, json_t **ret, sigil_err *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_(kube_body_free) char *body = NULL;
	char what[KUBE_MAX_WHAT];
	size_t len;
	int r;

	if (!name)
		return sigil_err_set(err, SIGIL_E_INVALID, "patch %s: no name", res->kind);
	r = kube_resource_path(res, ns, name, NULL, &path, err);
	if (r < 0)
		return r;
	kube_what(what, sizeof(what), "patch", res, ns, name);
	r = kube_encode(patch, what, &body, &len, err);
	if (r < 0)
		return r;
	/* A merge patch sets values; sending it twice has the effect of once. */
	return kube_do(c,
	               &(kube_req){.method = "PATCH",
	                           .path = path,
	                           .what = what,
	                           .content_type = "application/merge-patch+json",
	                           .body = body,
	                           .body_len = len,
	                           .idempotent = true},
	               ret, err);
}

int kube_client_delete(kube_client *c, const kube_resource *res, const char *ns, const char *name,
                       const char *precondition_rv, sigil_err *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_(kube_body_free) char *body = NULL;
	_cleanup_(kube_json_decrefp) json_t *opts = NULL;
	char what[KUBE_MAX_WHAT];
	size_t len = 0;
	int r;

	if (!name)
		return sigil_err_set(err, SIGIL_E_INVALID, "delete %s: no name", res->kind);
	r = kube_resource_path(res, ns, name, NULL, &path, err);
	if (r < 0)
		return r;
	kube_what(what, sizeof(what), "delete", res, ns, name);
	if (precondition_rv) {
		if (strlen(precondition_rv) > KUBE_MAX_RESOURCE_VERSION)
			return sigil_err_set(err, SIGIL_E_INVALID, "%s: bad resourceVersion", what);
		opts = json_pack("{s:s, s:s, s:{s:s}}", "kind", "DeleteOptions", "apiVersion", "v1",
		                 "preconditions", "resourceVersion", precondition_rv);
		if (!opts)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		r = kube_encode(opts, what, &body, &len, err);
		if (r < 0)
			return r;
	}
	return kube_do(c,
	               &(kube_req){.method = "DELETE",
	                           .path = path,
	                           .what = what,
	                           .content_type = body ? "application/json" : NULL,
	                           .body = body,
	                           .body_len = len,
	                           .idempotent = true},
	               NULL, err);
}

int kube_client_evict_pod(kube_client *c, const char *ns, const char *name, sigil_err *err)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_(kube_body_free) char *body = NULL;
	_cleanup_(kube_json_decrefp) json_t *ev = NULL;
	char what[KUBE_MAX_WHAT];
	size_t len;
	int r;

	if (!name || !ns || !ns[0])
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "evict Pod: namespace and name are needed");
	r = kube_resource_path(&kube_res_pods, ns, name, "eviction", &path, err);
	if (r < 0)
		return r;
	kube_what(what, sizeof(what), "evict", &kube_res_pods, ns, name);
	ev = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "policy/v1", "kind", "Eviction",
	               "metadata", "name", name, "namespace", ns);
	if (!ev)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = kube_encode(ev, what, &body, &len, err);
	if (r < 0)
		return r;
	/* Not idempotent: a repeated eviction of a pod that went would be a
	 * confusing 404. */
	return kube_do(c,
	               &(kube_req){.method = "POST",
	                           .path = path,
	                           .what = what,
	                           .content_type = "application/json",
	                           .body = body,
	                           .body_len = len,
	                           .retry_429_needs_retry_after = true},
	               NULL, err);
}

/* Copies a server-given string into a fixed field: printable ASCII
 * (spaces only if allowed), truncated. */
static void kube_copy_field(char *dst, size_t cap, const char *src, bool spaces)
{
	size_t o = 0;

	if (src)
		for (; src[o] && o + 1 < cap; o++)
			dst[o] = ((src[o] > 0x20 || (spaces && src[o] == ' ')) && src[o] < 0x7f)
			             ? src[o]
			             : '?';
	dst[o] = '\0';
}

/* user.extra["authentication.kubernetes.io/<key>"][0] */
static const char *kube_extra(const json_t *user, const char *key)
{
	char full[96];
	const json_t *v;

	snprintf(full, sizeof(full), "authentication.kubernetes.io/%s", key);
	v = json_object_get(json_object_get(user, "extra"), full);
	v = json_is_array(v) ? json_array_get(v, 0) : v;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

int kube_client_review_token(kube_client *c, const char *token, const char *const *audiences,
                             size_t n_audiences, kube_token_identity *ret, sigil_err *err)
{
	_cleanup_(kube_json_decrefp) json_t *tr = NULL;
	_cleanup_(kube_json_decrefp) json_t *resp = NULL;
	_cleanup_(kube_json_decrefp) json_t *auds = NULL;
	_cleanup_(kube_body_free) char *body = NULL;
	_cleanup_free_ char *path = NULL;
	const json_t *status, *user;
	const char *uname, *emsg;
	kube_token_identity id;
	size_t len;
	int r;

	if (!token || !token[0])
		return sigil_err_set(err, SIGIL_E_UNAUTH, "no token to review");
	if (strlen(token) > KUBE_CONFIG_MAX_TOKEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "token to review exceeds %d bytes",
		                     KUBE_CONFIG_MAX_TOKEN);
	if (n_audiences > KUBE_MAX_TOKEN_REVIEW_AUDIENCES)
		return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d audiences",
		                     KUBE_MAX_TOKEN_REVIEW_AUDIENCES);
	auds = json_array();
	for (size_t i = 0; auds && i < n_audiences; i++)
		if (json_array_append_new(auds, json_string(audiences[i])) < 0) {
			return sigil_err_set(err, SIGIL_E_INVALID, "bad audience");
		}
	tr = json_pack("{s:s, s:s, s:{s:s, s:O}}", "apiVersion", "authentication.k8s.io/v1", "kind",
	               "TokenReview", "spec", "token", token, "audiences", auds);
	if (!tr)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (n_audiences == 0)
		json_object_del(json_object_get(tr, "spec"), "audiences");
	r = kube_resource_path(&kube_res_tokenreviews, NULL, NULL, NULL, &path, err);
	if (r < 0)
		return r;
	r = kube_encode(tr, "create TokenReview", &body, &len, err);
	/* The JSON copy of the token is in body now; drop the tree's. */
	{
		json_t *t = json_object_get(json_object_get(tr, "spec"), "token");

		if (t)
			sigil_wipe((char *)json_string_value(t), json_string_length(t));
	}
	if (r < 0)
		return r;
	r = kube_do(c,
	            &(kube_req){.method = "POST",
	                        .path = path,
	                        .what = "create TokenReview",
	                        .content_type = "application/json",
	                        .body = body,
	                        .body_len = len,
	                        .idempotent = true},
	            &resp, err);
	if (r < 0)
		return r;
	/* The answer echoes spec.token: wipe it too. */
	{
		json_t *t = json_object_get(json_object_get(resp, "spec"), "token");

		if (json_is_string(t))
			sigil_wipe((char *)json_string_value(t), json_string_length(t));
	}
	status = json_object_get(resp, "status");
	if (!json_is_object(status))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "TokenReview answer has no status");
	if (!json_is_true(json_object_get(status, "authenticated"))) {
		char m[KUBE_STATUS_MAX_MESSAGE];

		emsg = kube_json_str(status, "error", NULL);
		kube_copy_field(m, sizeof(m), emsg, true);
		return sigil_err_set(err, SIGIL_E_UNAUTH,
		                     "the token was not accepted by the Kubernetes API%s%s",
		                     m[0] ? ": " : "", m);
	}
	user = json_object_get(status, "user");
	uname = kube_json_str(user, "username", NULL);
	if (!uname || !uname[0])
		return sigil_err_set(err, SIGIL_E_CORRUPT, "TokenReview answer has no user name");
	memset(&id, 0, sizeof(id));
	kube_copy_field(id.username, sizeof(id.username), uname, false);
	kube_copy_field(id.uid, sizeof(id.uid), kube_json_str(user, "uid", NULL), false);
	kube_copy_field(id.pod_name, sizeof(id.pod_name), kube_extra(user, "pod-name"), false);
	kube_copy_field(id.pod_uid, sizeof(id.pod_uid), kube_extra(user, "pod-uid"), false);
	kube_copy_field(id.node_name, sizeof(id.node_name), kube_extra(user, "node-name"), false);
	/* system:serviceaccount:<namespace>:<name> */
	if (!strncmp(id.username, "system:serviceaccount:", 22)) {
		const char *nsp = id.username + 22, *colon = strchr(nsp, ':');

		if (colon && (size_t)(colon - nsp) <= KUBE_MAX_NAME &&
		    strlen(colon + 1) <= KUBE_MAX_NAME) {
			memcpy(id.sa_namespace, nsp, (size_t)(colon - nsp));
			kube_copy_field(id.sa_name, sizeof(id.sa_name), colon + 1, false);
		}
	}
	*ret = id;
	return 0;
}

/* ---- WATCH -------------------------------------------------------------------- */

struct kube_stream {
	kube_watch_fn fn;
	void *ctx;
	sigil_err *err;
	char rv[KUBE_MAX_RESOURCE_VERSION + 1];
	sigil_wbuf line;    /* an incomplete event line */
	int cb_result;      /* 1: the callback said stop; < 0: its error */
	bool gone;          /* ERROR 410 */
	bool error_event;   /* another ERROR event */
	bool bad_event;     /* an event we cannot read */
	bool too_big;       /* an event beyond KUBE_MAX_WATCH_EVENT */
	kube_status status; /* of the ERROR event */
	unsigned events;
};

static int kube_stream_set_rv(kube_stream *s, const json_t *obj)
{
	const char *rv = kube_object_resource_version(obj);

	if (!rv || !rv[0] || strlen(rv) > KUBE_MAX_RESOURCE_VERSION)
		return -1;
	for (const char *p = rv; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return -1;
	memcpy(s->rv, rv, strlen(rv) + 1);
	return 0;
}

static int kube_stream_event(kube_stream *s, const char *p, size_t n)
{
	_cleanup_(kube_json_decrefp) json_t *ev = NULL;
	kube_watch_event we;
	const char *type;
	json_t *obj;

	while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' '))
		n--;
	if (n == 0)
		return 0;
	ev = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
	type = kube_json_str(ev, "type", NULL);
	obj = json_object_get(ev, "object");
	if (!type || !json_is_object(obj)) {
		s->bad_event = true;
		return -1;
	}
	if (!strcmp(type, "ERROR")) {
		kube_status_from_json(obj, 0, &s->status);
		if (s->status.code == 410)
			s->gone = true;
		else
			s->error_event = true;
		return -1;
	}
	if (!strcmp(type, "BOOKMARK")) {
		/* Only a resourceVersion: progress without a change. */
		if (kube_stream_set_rv(s, obj) < 0) {
			s->bad_event = true;
			return -1;
		}
		s->events++;
		return 0;
	}
	if (!strcmp(type, "ADDED"))
		we.type = KUBE_WATCH_ADDED;
	else if (!strcmp(type, "MODIFIED"))
		we.type = KUBE_WATCH_MODIFIED;
	else if (!strcmp(type, "DELETED"))
		we.type = KUBE_WATCH_DELETED;
	else {
		log_debug("kube: ignoring watch event of type %.32s", type);
		return 0;
	}
	if (kube_stream_set_rv(s, obj) < 0) {
		s->bad_event = true;
		return -1;
	}
	s->events++;
	we.object = obj;
	we.resource_version = s->rv;
	s->cb_result = s->fn(&we, s->ctx, s->err);
	return s->cb_result != 0 ? -1 : 0;
}

/* The apiserver writes one JSON object per line. */
static int kube_stream_feed(kube_stream *s, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (sigil_wbuf_put(&s->line, p, take) < 0) {
			s->too_big = true;
			return -1;
		}
		if (!nl)
			break;
		if (kube_stream_event(s, (const char *)s->line.p, s->line.len) < 0)
			return -1;
		s->line.len = 0;
		p += take + 1;
		n -= take + 1;
	}
	return 0;
}

typedef struct kube_watch_run {
	kube_client *c;
	const kube_resource *res;
	const char *ns;
	const kube_watch_opts *o;
	unsigned timeout_s;
	int64_t deadline_ns;
	char what[KUBE_MAX_WHAT];
} kube_watch_run;

/* LIST and hand it to the callback as SYNC.  A failed LIST is an error
 * in *list_err (the loop decides whether to retry); the callback's answer
 * goes to *cb_result with its error in s->err. */
static int kube_watch_sync(kube_watch_run *w, kube_stream *s, int *cb_result, sigil_err *list_err)
{
	_cleanup_(kube_json_decrefp) json_t *list = NULL;
	kube_list_opts lo = {.label_selector = w->o->label_selector,
	                     .field_selector = w->o->field_selector};
	kube_watch_event we;
	int r;

	*cb_result = 0;
	r = kube_client_list(w->c, w->res, w->ns, &lo, &list, list_err);
	if (r < 0)
		return r;
	if (kube_stream_set_rv(s, list) < 0)
		return sigil_err_set(list_err, SIGIL_E_CORRUPT,
		                     "%s: the List has no resourceVersion", w->what);
	we = (kube_watch_event){.type = KUBE_WATCH_SYNC, .object = list, .resource_version = s->rv};
	*cb_result = s->fn(&we, s->ctx, s->err);
	return 0;
}

/* One WATCH request from s->rv.  Returns 0 when the stream ended in a way
 * the loop handles (see s and rs), or an error with *transient set. */
static int kube_watch_once(kube_watch_run *w, kube_stream *s, kube_resp *rs, bool *transient,
                           sigil_err *err)
{
	_cleanup_free_ char *base = NULL;
	char tmo[16];
	sigil_wbuf b;
	long timeout_ms;
	int r;

	r = kube_resource_path(w->res, w->ns, NULL, NULL, &base, err);
	if (r < 0)
		return r;
	sigil_wbuf_init(&b, KUBE_MAX_PATH * 3, false);
	sigil_wbuf_putf(&b, "%s?watch=1", base);
	snprintf(tmo, sizeof(tmo), "%u", w->timeout_s);
	kube_query_add(&b, "resourceVersion", s->rv);
	kube_query_add(&b, "allowWatchBookmarks", "true");
	kube_query_add(&b, "timeoutSeconds", tmo);
	if (w->o->label_selector && w->o->label_selector[0])
		kube_query_add(&b, "labelSelector", w->o->label_selector);
	if (w->o->field_selector && w->o->field_selector[0])
		kube_query_add(&b, "fieldSelector", w->o->field_selector);
	r = sigil_wbuf_status(&b);
	if (r < 0) {
		sigil_wbuf_free(&b);
		return sigil_err_set(err, r, "%s: cannot build the request", w->what);
	}
	kube_rate_wait(w->c);
	r = kube_token_refresh(w->c, false, NULL, err);
	if (r < 0) {
		sigil_wbuf_free(&b);
		return sigil_err_prefix(err, "%s", w->what);
	}
	sigil_wbuf_free(&rs->body);
	sigil_wbuf_init(&rs->body, w->c->opts.max_response, false);
	s->line.len = 0;
	s->line.failed = 0;
	timeout_ms = (long)w->timeout_s * 1000 + KUBE_WATCH_SLACK_MS;
	r = kube_perform(
	    w->c,
	    &(kube_req){
	        .method = "GET", .path = (const char *)b.p, .what = w->what, .idempotent = true},
	    rs, timeout_ms, transient, err);
	sigil_wbuf_free(&b);
	return r;
}

int kube_client_watch(kube_client *c, const kube_resource *res, const char *ns,
                      const kube_watch_opts *o, kube_watch_fn fn, void *ctx, sigil_err *err)
{
	kube_watch_run w = {.c = c, .res = res, .ns = ns, .o = o};
	kube_stream s = {.fn = fn, .ctx = ctx, .err = err};
	kube_resp rs = {0};
	unsigned failures = 0;
	bool need_list, reauthed = false;
	sigil_err last = {0};
	int r = 0;

	if (!o || !fn)
		return sigil_err_set(err, SIGIL_E_INVALID, "watch: no options or callback");
	if ((r = kube_check_selector("label", o->label_selector, err)) < 0 ||
	    (r = kube_check_selector("field", o->field_selector, err)) < 0)
		return r;
	if (o->last_rv && o->last_rv_size < KUBE_MAX_RESOURCE_VERSION + 1)
		return sigil_err_set(err, SIGIL_E_INVALID, "watch: last_rv buffer too small");
	kube_what(w.what, sizeof(w.what), "watch", res, ns, NULL);
	w.timeout_s = o->timeout_seconds ? o->timeout_seconds : KUBE_WATCH_DEFAULT_TIMEOUT_S;
	if (w.timeout_s > KUBE_WATCH_MAX_TIMEOUT_S)
		w.timeout_s = KUBE_WATCH_MAX_TIMEOUT_S;
	w.deadline_ns =
	    o->max_duration_ms > 0 ? sigil_mono_ns() + o->max_duration_ms * 1000000LL : 0;
	need_list = !o->resource_version || !o->resource_version[0];
	if (!need_list) {
		if (strlen(o->resource_version) > KUBE_MAX_RESOURCE_VERSION)
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "watch: resourceVersion too long");
		memcpy(s.rv, o->resource_version, strlen(o->resource_version) + 1);
	}
	sigil_wbuf_init(&s.line, KUBE_MAX_WATCH_EVENT, false);
	rs.stream = &s;
	rs.stop = o->stop;
	rs.deadline_ns = w.deadline_ns;

	for (;;) {
		bool transient = false, listed = false;
		int64_t started;

		if (kube_should_stop(o->stop, w.deadline_ns)) {
			r = 0;
			break;
		}
		s.events = 0;
		if (need_list) {
			int cb = 0;

			r = kube_watch_sync(&w, &s, &cb, &last);
			if (cb != 0) {
				r = cb < 0 ? cb : 0;
				break;
			}
			if (r < 0) {
				if (r != SIGIL_E_UNAVAIL && r != SIGIL_E_TIMEOUT) {
					if (err)
						*err = last;
					break;
				}
				goto retry;
			}
			need_list = false;
			listed = true;
		}
		s.gone = s.error_event = s.bad_event = s.too_big = false;
		s.cb_result = 0;
		started = sigil_mono_ns();
		r = kube_watch_once(&w, &s, &rs, &transient, &last);
		if (s.cb_result != 0) {
			r = s.cb_result < 0 ? s.cb_result : 0;
			break;
		}
		if (r < 0) {
			if (!transient && r != SIGIL_E_TIMEOUT) {
				if (err)
					*err = last;
				break;
			}
			goto retry;
		}
		if (rs.stopped) {
			r = 0;
			break;
		}
		if (s.too_big) {
			r = sigil_err_set(err, SIGIL_E_LIMIT, "%s: an event exceeds %u bytes",
			                  w.what, KUBE_MAX_WATCH_EVENT);
			break;
		}
		if (rs.status != 200) {
			kube_status st;

			kube_status_parse(rs.status, (const char *)rs.body.p, rs.body.len, &st);
			r = kube_status_to_err(&st, w.what, &last);
			if (rs.status == 410) {
				need_list = true;
				s.rv[0] = '\0';
				if (!listed)
					continue;
				goto retry;
			}
			if (rs.status == 401 && c->token_file && !reauthed) {
				bool changed = false;

				reauthed = true;
				if (kube_token_refresh(c, true, &changed, NULL) == 0 && changed)
					continue;
			}
			if (rs.status != 429 && !(rs.status >= 500 && rs.status <= 504)) {
				if (err)
					*err = last;
				break;
			}
			if (rs.retry_after_s > 0) {
				long wait = rs.retry_after_s * 1000;

				if (wait > c->opts.retry_after_max_ms)
					wait = c->opts.retry_after_max_ms;
				if (kube_sleep_interruptible(wait, o->stop, w.deadline_ns))
					continue;
				failures++;
				if (failures > c->opts.max_retries)
					goto give_up;
				continue;
			}
			goto retry;
		}
		reauthed = false;
		if (s.gone) {
			/* The version we would resume from was compacted:
			 * start over with a fresh LIST (informer relist).  Gone
			 * right after a LIST means the server is confused: back
			 * off rather than spin. */
			log_debug("kube: %s: resourceVersion %s is gone, relisting", w.what, s.rv);
			s.rv[0] = '\0';
			need_list = true;
			if (!listed || s.events > 0)
				continue;
			kube_status_to_err(&s.status, w.what, &last);
			goto retry;
		}
		if (s.error_event) {
			r = kube_status_to_err(&s.status, w.what, &last);
			if (r != SIGIL_E_UNAVAIL && r != SIGIL_E_TIMEOUT) {
				if (err)
					*err = last;
				break;
			}
			goto retry;
		}
		if (s.bad_event) {
			sigil_err_set(&last, SIGIL_E_CORRUPT, "%s: unreadable watch event", w.what);
			goto retry;
		}
		/* The stream ended normally (timeoutSeconds, apiserver
		 * restart): resume from where we got to. */
		if (s.events > 0 ||
		    sigil_mono_ns() - started >= KUBE_WATCH_MIN_HEALTHY_MS * 1000000LL) {
			failures = 0;
			continue;
		}
		sigil_err_set(&last, SIGIL_E_UNAVAIL, "%s: the stream ended at once", w.what);
	retry:
		if (s.events > 0)
			failures = 0;
		failures++;
		if (failures > c->opts.max_retries)
			goto give_up;
		log_debug("kube: %s: %s; retry %u", w.what, last.msg, failures);
		kube_sleep_interruptible(kube_backoff_ms(c, failures - 1), o->stop, w.deadline_ns);
		continue;
	give_up:
		r = sigil_err_set(err, last.code ? last.code : SIGIL_E_UNAVAIL,
		                  "%s (giving up after %u failed attempts)", last.msg, failures);
		break;
	}
	if (o->last_rv)
		snprintf(o->last_rv, o->last_rv_size, "%s", s.rv);
	sigil_wbuf_free(&rs.body);
	sigil_wbuf_free(&s.line);
	return r;
}

int kube_client_open(const char *kubeconfig, bool in_cluster, const kube_client_opts *opts,
                     kube_client **ret, char **ret_server, sigil_err *err)
{
	_cleanup_(kube_config_freep) kube_config *cfg = NULL;
	_cleanup_free_ char *server = NULL;
	kube_client *c = NULL;
	int r;

	if (kubeconfig && in_cluster)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "a kubeconfig and the in-cluster configuration exclude each other");
	if (!kubeconfig && !in_cluster) {
		*ret = NULL;
		if (ret_server)
			*ret_server = NULL;
		return 0;
	}
	r = in_cluster ? kube_config_load_in_cluster(NULL, &cfg, err)
	               : kube_config_load_kubeconfig(kubeconfig, NULL, &cfg, err);
	if (r < 0)
		return r;
	if (ret_server && !(server = strdup(cfg->server)))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = kube_client_new(cfg, opts, &c, err);
	if (r < 0)
		return r;
	*ret = c;
	if (ret_server)
		*ret_server = TAKE_PTR(server);
	return 0;
}
