/* sigil-csi's side of the Kubernetes API: PVC annotations, the restarter
 * annotation, Events (queued, sent by one background thread), evictions
 * and pod lookups. */
#include "csi/kube.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

/* Stackable hashes this salt and the volume id (secret-operator
 * csi_server/node.rs tag_pod); sigil uses the same tag under its own
 * prefix so both keys of one volume end in the same hash. */
#define RESTARTER_SALT "secrets.stackable.tech/volume:"
#define RESTARTER_TAG_BYTES 16

typedef struct ev_item {
	char *ns;
	char *pod;
	char *uid;
	char *type;
	char *reason;
	char *message;
	time_t at;
} ev_item;

struct csi_kube {
	kube_client *client;
	char *node_name;
	char *component;
	bool stackable_compat;
	bool events;

	pthread_mutex_t mu;
	pthread_cond_t cv;      /* queue not empty, or stop */
	pthread_cond_t idle_cv; /* queue empty and nothing in flight */
	ev_item **ring;
	size_t cap, head, len;
	bool in_flight;
	bool stop;
	bool thread_started;
	pthread_t thread;
	csi_kube_stats stats;
};

static void ev_item_free(ev_item *e)
{
	if (!e)
		return;
	free(e->ns);
	free(e->pod);
	free(e->uid);
	free(e->type);
	free(e->reason);
	free(e->message);
	free(e);
}

/* ---- Events ---------------------------------------------------------------- */

static json_t *event_json(const csi_kube *k, const ev_item *e)
{
	char ts[32];
	json_t *inv, *obj;

	if (csi_kube_format_expiry(e->at, false, ts) < 0)
		return NULL;
	inv = json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", "v1", "kind", "Pod", "namespace",
			e->ns, "name", e->pod);
	if (!inv)
		return NULL;
	if (e->uid && json_object_set_new(inv, "uid", json_string(e->uid)) < 0) {
		json_decref(inv);
		return NULL;
	}
	/* core/v1 Event as client-go's recorder writes it: generateName
	 * "<pod>.", source and the reporting fields both name this plugin on
	 * this node. */
	obj = json_pack("{s:s, s:s, s:{s:s+, s:s}, s:o, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, "
			"s:i, s:s, s:s}",
			"apiVersion", "v1", "kind", "Event", "metadata", "generateName", e->pod, ".",
			"namespace", e->ns, "involvedObject", inv, "reason", e->reason, "message",
			e->message, "type", e->type, "source", "component", k->component, "host",
			k->node_name, "firstTimestamp", ts, "lastTimestamp", ts, "count", 1,
			"reportingComponent", k->component, "reportingInstance", k->node_name);
	return obj;
}

static void *event_thread(void *arg)
{
	csi_kube *k = arg;

	pthread_mutex_lock(&k->mu);
	for (;;) {
		while (!k->stop && k->len == 0)
			pthread_cond_wait(&k->cv, &k->mu);
		if (k->stop)
			break;
		ev_item *e = k->ring[k->head];
		k->ring[k->head] = NULL;
		k->head = (k->head + 1) % k->cap;
		k->len--;
		k->in_flight = true;
		pthread_mutex_unlock(&k->mu);

		sigil_err err = {0};
		json_t *obj = event_json(k, e);
		int r = obj ? kube_client_create(k->client, &kube_res_events, e->ns, obj, NULL, &err)
			    : sigil_err_set(&err, SIGIL_E_NOMEM, "cannot build the Event");
		json_decref(obj);
		/* Library code logs at debug at most; the counters tell the
		 * operator that Events are lost. */
		if (r < 0)
			log_debug("Event %s for pod %s/%s not posted: %s", e->reason, e->ns, e->pod,
				  err.msg);
		ev_item_free(e);

		pthread_mutex_lock(&k->mu);
		k->in_flight = false;
		if (r < 0)
			k->stats.events_failed++;
		else
			k->stats.events_sent++;
		if (k->len == 0)
			pthread_cond_broadcast(&k->idle_cv);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

/* Kubernetes JSON strings must be UTF-8 and jansson refuses anything else;
 * a message built from names and error texts is made printable ASCII. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

static char *bounded_dup(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *d = sigil_strndup(s, n);

	if (d)
		sanitize(d);
	return d;
}

void csi_kube_event(csi_kube *k, const char *ns, const char *pod, const char *pod_uid,
		    const char *type, const char *reason, const char *fmt, ...)
{
	char msg[CSI_KUBE_EVENT_MAX_MESSAGE + 1];
	ev_item *e;
	va_list ap;

	if (!k || !k->events || !ns || !pod || !type || !reason || !fmt)
		return;
	if (!kube_name_ok(ns) || !kube_name_ok(pod))
		return;
	va_start(ap, fmt);
	/* Truncation is fine: the Event is a hint, the log has the rest. */
	(void)!vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	e = calloc(1, sizeof(*e));
	if (!e)
		goto dropped;
	e->ns = strdup(ns);
	e->pod = strdup(pod);
	e->uid = pod_uid && *pod_uid ? bounded_dup(pod_uid, CSI_KUBE_EVENT_MAX_REASON) : NULL;
	e->type = bounded_dup(type, CSI_KUBE_EVENT_MAX_REASON);
	e->reason = bounded_dup(reason, CSI_KUBE_EVENT_MAX_REASON);
	e->message = bounded_dup(msg, CSI_KUBE_EVENT_MAX_MESSAGE);
	e->at = time(NULL);
	if (!e->ns || !e->pod || (pod_uid && *pod_uid && !e->uid) || !e->type || !e->reason ||
	    !e->message) {
		ev_item_free(e);
		goto dropped;
	}

	pthread_mutex_lock(&k->mu);
	/* Never block a publish: a full queue drops the Event and counts it. */
	if (k->stop || k->len == k->cap) {
		k->stats.events_dropped++;
		pthread_mutex_unlock(&k->mu);
		ev_item_free(e);
		return;
	}
	k->ring[(k->head + k->len) % k->cap] = e;
	k->len++;
	k->stats.events_queued++;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	return;
dropped:
	pthread_mutex_lock(&k->mu);
	k->stats.events_dropped++;
	pthread_mutex_unlock(&k->mu);
}

void csi_kube_get_stats(csi_kube *k, csi_kube_stats *ret)
{
	pthread_mutex_lock(&k->mu);
	*ret = k->stats;
	ret->queue_len = k->len;
	ret->in_flight = k->in_flight;
	pthread_mutex_unlock(&k->mu);
}

int csi_kube_flush_events(csi_kube *k, long timeout_ms, sigil_err *err)
{
	struct timespec deadline;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&k->mu);
	while ((k->len > 0 || k->in_flight) && r == 0)
		r = pthread_cond_timedwait(&k->idle_cv, &k->mu, &deadline);
	size_t left = k->len + (k->in_flight ? 1 : 0);
	pthread_mutex_unlock(&k->mu);
	if (left)
		return sigil_err_set(err, SIGIL_E_TIMEOUT,
				     "%zu Kubernetes Events still unsent after %ld ms", left, timeout_ms);
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

int csi_kube_new(const csi_kube_config *cfg, csi_kube **ret, sigil_err *err)
{
	csi_kube *k;
	size_t cap = cfg->event_queue_max ? cfg->event_queue_max : CSI_KUBE_EVENT_QUEUE_DEFAULT;

	if (!cfg->client)
		return sigil_err_set(err, SIGIL_E_INVALID, "csi_kube needs a Kubernetes client");
	if (!cfg->node_name || !kube_name_ok(cfg->node_name))
		return sigil_err_set(err, SIGIL_E_INVALID, "node name '%s' is not a Kubernetes name",
				     cfg->node_name ? cfg->node_name : "");
	if (cap > CSI_KUBE_EVENT_QUEUE_MAX)
		return sigil_err_set(err, SIGIL_E_LIMIT, "Event queue of %zu is over the limit of %d",
				     cap, CSI_KUBE_EVENT_QUEUE_MAX);
	k = calloc(1, sizeof(*k));
	if (!k)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	k->client = cfg->client;
	k->stackable_compat = cfg->stackable_compat;
	k->events = cfg->events;
	k->cap = cap;
	k->node_name = strdup(cfg->node_name);
	k->component = strdup(cfg->component && *cfg->component ? cfg->component : "sigil-csi");
	k->ring = calloc(cap, sizeof(*k->ring));
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	pthread_cond_init(&k->idle_cv, NULL);
	if (!k->node_name || !k->component || !k->ring) {
		csi_kube_free(k);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	if (k->events) {
		int r = pthread_create(&k->thread, NULL, event_thread, k);
		if (r != 0) {
			csi_kube_free(k);
			return sigil_err_errno(err, r, "cannot start the Event thread");
		}
		k->thread_started = true;
	}
	*ret = k;
	return 0;
}

void csi_kube_free(csi_kube *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->mu);
	k->stop = true;
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
	/* The thread finishes the Event in flight (bounded by the client's
	 * request timeout); queued ones are dropped. */
	if (k->thread_started)
		pthread_join(k->thread, NULL);
	if (k->ring)
		for (size_t i = 0; i < k->len; i++)
			ev_item_free(k->ring[(k->head + i) % k->cap]);
	free(k->ring);
	pthread_cond_destroy(&k->idle_cv);
	pthread_cond_destroy(&k->cv);
	pthread_mutex_destroy(&k->mu);
	free(k->node_name);
	free(k->component);
	free(k);
}

const char *csi_kube_node_name(const csi_kube *k)
{
	return k->node_name;
}

/* ---- PVC annotations ------------------------------------------------------- */

static bool attr_prefixed(const char *key)
{
	return !strncmp(key, CSI_ATTR_PREFIX, strlen(CSI_ATTR_PREFIX)) ||
	       !strncmp(key, CSI_ATTR_PREFIX_STACKABLE, strlen(CSI_ATTR_PREFIX_STACKABLE));
}

void csi_kube_kv_free(csi_kv *kv, size_t n)
{
	if (!kv)
		return;
	for (size_t i = 0; i < n; i++) {
		free((char *)kv[i].key);
		/* values may hold the keystore password */
		sigil_secret_free((char *)kv[i].value);
	}
	free(kv);
}

/* Checks one annotation of ours and copies it into *slot. */
static int pvc_take(const char *key, const json_t *val, csi_kv *slot, sigil_err *err)
{
	size_t vlen;

	if (strlen(key) > CSI_MAX_ATTR_KEY_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "PVC annotation '%.64s...' is longer than %d bytes", key,
				     CSI_MAX_ATTR_KEY_LEN);
	if (!json_is_string(val))
		return sigil_err_set(err, SIGIL_E_INVALID, "PVC annotation '%s' is not a string", key);
	vlen = json_string_length(val);
	if (vlen > CSI_MAX_ATTR_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "PVC annotation '%s' is longer than %d bytes",
				     key, CSI_MAX_ATTR_LEN);
	/* JSON allows \u0000; a C string would silently end there. */
	if (memchr(json_string_value(val), '\0', vlen))
		return sigil_err_set(err, SIGIL_E_INVALID, "PVC annotation '%s' contains a NUL byte",
				     key);
	slot->key = strdup(key);
	slot->value = sigil_strndup(json_string_value(val), vlen);
	if (!slot->key || !slot->value) {
		free((char *)slot->key);
		sigil_secret_free((char *)slot->value);
		*slot = (csi_kv){0};
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	return 0;
}

int csi_kube_pvc_filter(const json_t *pvc, csi_kv **ret, size_t *n, sigil_err *err)
{
	const json_t *md, *ann;
	const char *key, *name;
	json_t *val;
	csi_kv *kv;
	size_t count = 0;
	int r;

	if (!json_is_object(pvc))
		return sigil_err_set(err, SIGIL_E_INVALID, "PersistentVolumeClaim is not an object");
	name = kube_object_name(pvc);
	md = json_object_get(pvc, "metadata");
	if (md && !json_is_object(md))
		return sigil_err_set(err, SIGIL_E_INVALID, "PVC %s: metadata is not an object",
				     name ? name : "?");
	ann = md ? json_object_get(md, "annotations") : NULL;
	if (ann && !json_is_object(ann) && !json_is_null(ann))
		return sigil_err_set(err, SIGIL_E_INVALID, "PVC %s: metadata.annotations is not an object",
				     name ? name : "?");
	kv = sigil_calloc(CSI_MAX_ATTRS, sizeof(*kv));
	if (!kv)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (json_is_object(ann)) {
		json_object_foreach((json_t *)ann, key, val)
		{
			if (!attr_prefixed(key))
				continue; /* other controllers' annotations */
			if (count == CSI_MAX_ATTRS) {
				r = sigil_err_set(err, SIGIL_E_LIMIT,
						  "PVC has more than %d secrets.* annotations", CSI_MAX_ATTRS);
				csi_kube_kv_free(kv, count);
				return r;
			}
			r = pvc_take(key, val, &kv[count], err);
			if (r < 0) {
				csi_kube_kv_free(kv, count);
				return r;
			}
			count++;
		}
	}
	*ret = kv;
	*n = count;
	return 0;
}

int csi_kube_pvc_attributes(csi_kube *k, const char *ns, const char *name, csi_kv **ret,
			    size_t *n, sigil_err *err)
{
	json_t *pvc = NULL;
	int r;

	if (!ns || !kube_name_ok(ns) || !name || !kube_name_ok(name))
		return sigil_err_set(err, SIGIL_E_INVALID, "PVC '%s/%s' is not a valid name",
				     ns ? ns : "", name ? name : "");
	r = kube_client_get(k->client, &kube_res_pvcs, ns, name, &pvc, err);
	if (r < 0)
		return r;
	r = csi_kube_pvc_filter(pvc, ret, n, err);
	json_decref(pvc);
	return r;
}

/* ---- restarter annotation -------------------------------------------------- */

void csi_kube_restarter_key(const char *prefix, const char *volume_id, char out[128])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t plen = strnlen(prefix, 128 - 2 * RESTARTER_TAG_BYTES - 1);
	bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
		  EVP_DigestUpdate(ctx, RESTARTER_SALT, strlen(RESTARTER_SALT)) == 1 &&
		  EVP_DigestUpdate(ctx, volume_id, strlen(volume_id)) == 1 &&
		  EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= RESTARTER_TAG_BYTES;

	EVP_MD_CTX_free(ctx);
	memcpy(out, prefix, plen);
	for (size_t i = 0; i < RESTARTER_TAG_BYTES; i++) {
		static const char hex[] = "0123456789abcdef";
		/* A failed digest (out of memory) still yields a well-formed
		 * key; it just no longer matches Stackable's. */
		unsigned char b = ok ? md[i] : 0;
		out[plen + 2 * i] = hex[b >> 4];
		out[plen + 2 * i + 1] = hex[b & 15];
	}
	out[plen + 2 * RESTARTER_TAG_BYTES] = '\0';
}

int csi_kube_format_expiry(time_t t, bool stackable, char out[32])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm))
		return SIGIL_E_INVALID;
	/* RFC 3339 in UTC; Stackable writes chrono's to_rfc3339(), which
	 * spells UTC "+00:00", and its commons-operator accepts both. */
	if (strftime(out, 32, stackable ? "%Y-%m-%dT%H:%M:%S+00:00" : "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return SIGIL_E_INVALID;
	return 0;
}

int csi_kube_annotate_expiry(csi_kube *k, const char *ns, const char *pod, const char *volume_id,
			     time_t expires_at, sigil_err *err)
{
	char key[128], skey[128], ts[32], sts[32];
	json_t *patch, *ann;
	int r;

	if (!ns || !kube_name_ok(ns) || !pod || !kube_name_ok(pod))
		return sigil_err_set(err, SIGIL_E_INVALID, "pod '%s/%s' is not a valid name",
				     ns ? ns : "", pod ? pod : "");
	if (!volume_id || !*volume_id)
		return sigil_err_set(err, SIGIL_E_INVALID, "volume id is required");
	if (csi_kube_format_expiry(expires_at, false, ts) < 0 ||
	    csi_kube_format_expiry(expires_at, true, sts) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "expiry time %lld is out of range",
				     (long long)expires_at);
	csi_kube_restarter_key(CSI_KUBE_RESTARTER_PREFIX, volume_id, key);
	csi_kube_restarter_key(CSI_KUBE_STACKABLE_RESTARTER_PREFIX, volume_id, skey);
	ann = json_object();
	patch = json_pack("{s:{s:o}}", "metadata", "annotations", ann);
	if (!patch || json_object_set_new(ann, key, json_string(ts)) < 0 ||
	    (k->stackable_compat && json_object_set_new(ann, skey, json_string(sts)) < 0)) {
		json_decref(patch);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	/* JSON merge patch (RFC 7386): only our keys change, other
	 * annotations stay. */
	r = kube_client_patch(k->client, &kube_res_pods, ns, pod, patch, NULL, err);
	json_decref(patch);
	return r;
}

/* ---- evictions and pod lookups --------------------------------------------- */

int csi_kube_evict(csi_kube *k, const char *ns, const char *pod, sigil_err *err)
{
	if (!ns || !kube_name_ok(ns) || !pod || !kube_name_ok(pod))
		return sigil_err_set(err, SIGIL_E_INVALID, "pod '%s/%s' is not a valid name",
				     ns ? ns : "", pod ? pod : "");
	return kube_client_evict_pod(k->client, ns, pod, err);
}

int csi_kube_pod_info(csi_kube *k, const char *ns, const char *pod,
		      const char *const *listener_volumes, size_t n_listener_volumes,
		      kube_pod_info **ret, sigil_err *err)
{
	if (!ns || !kube_name_ok(ns) || !pod || !kube_name_ok(pod))
		return sigil_err_set(err, SIGIL_E_INVALID, "pod '%s/%s' is not a valid name",
				     ns ? ns : "", pod ? pod : "");
	if (n_listener_volumes > KUBE_POD_MAX_LISTENERS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d listener volumes",
				     KUBE_POD_MAX_LISTENERS);
	return kube_pod_info_get(k->client, ns, pod, true, listener_volumes, n_listener_volumes, ret,
				 err);
}
