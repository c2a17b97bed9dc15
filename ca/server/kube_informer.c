/* One watch, one cache, one thread (see kube_informer.h). */
#include "ca/server/kube_informer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

#define INF_DEFAULT_BACKOFF_MIN_MS 500
#define INF_DEFAULT_BACKOFF_MAX_MS 30000

struct kube_informer {
	kube_client *client;
	const kube_resource *res;
	char *label_selector;
	kube_informer_notify_fn notify;
	void *ctx;
	long backoff_min_ms, backoff_max_ms;
	unsigned watch_timeout_s;

	pthread_t thread;
	bool started;
	atomic_int stop;

	pthread_mutex_t lock; /* guards everything below, and the wake-up condition */
	pthread_cond_t wake;
	json_t *cache; /* key -> object */
	bool synced;
	bool progress; /* an event arrived since the last backoff */
	unsigned long generation;
	sigil_err last_err;
};

char *kube_informer_key(const kube_resource *res, const json_t *obj)
{
	const char *name = kube_object_name(obj);
	const char *ns = kube_object_namespace(obj);
	size_t len;
	char *k;

	if (!name || !kube_name_ok(name))
		return NULL;
	if (!res->namespaced)
		return strdup(name);
	if (!ns || !kube_name_ok(ns))
		return NULL;
	len = strlen(ns) + 1 + strlen(name) + 1;
	k = malloc(len);
	if (k)
		snprintf(k, len, "%s/%s", ns, name);
	return k;
}

static void inf_notify(kube_informer *inf)
{
	if (inf->notify)
		inf->notify(inf->ctx);
}

/* Replaces the cache with the items of a List. */
static int inf_sync(kube_informer *inf, const json_t *list, sigil_err *err)
{
	json_t *items = json_object_get(list, "items");
	json_t *fresh, *it;
	size_t i;

	if (!json_is_array(items))
		return sigil_err_set(err, SIGIL_E_INVALID, "%s list without items",
		                     inf->res->plural);
	if (json_array_size(items) > KUBE_INFORMER_MAX_OBJECTS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d %s in the cluster",
		                     KUBE_INFORMER_MAX_OBJECTS, inf->res->plural);
	fresh = json_object();
	if (!fresh)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	json_array_foreach(items, i, it)
	{
		_cleanup_free_ char *key = kube_informer_key(inf->res, it);

		/* An object the apiserver would never send (no name): skipped,
		 * it cannot be addressed anyway. */
		if (!key || !json_is_object(it))
			continue;
		if (json_object_set(fresh, key, it) < 0) {
			json_decref(fresh);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
	}
	pthread_mutex_lock(&inf->lock);
	json_decref(inf->cache);
	inf->cache = fresh;
	inf->synced = true;
	inf->progress = true;
	inf->generation++;
	inf->last_err.code = 0;
	inf->last_err.msg[0] = '\0';
	pthread_mutex_unlock(&inf->lock);
	return 0;
}

static int inf_event(const kube_watch_event *ev, void *ctx, sigil_err *err)
{
	kube_informer *inf = ctx;
	_cleanup_free_ char *key = NULL;
	int r = 0;

	if (atomic_load(&inf->stop))
		return 1;
	if (ev->type == KUBE_WATCH_SYNC) {
		r = inf_sync(inf, ev->object, err);
		if (r == 0)
			inf_notify(inf);
		return r;
	}
	key = kube_informer_key(inf->res, ev->object);
	if (!key || !json_is_object(ev->object))
		return 0;
	pthread_mutex_lock(&inf->lock);
	inf->progress = true;
	switch (ev->type) {
	case KUBE_WATCH_ADDED:
	case KUBE_WATCH_MODIFIED:
		if (!json_object_get(inf->cache, key) &&
		    json_object_size(inf->cache) >= KUBE_INFORMER_MAX_OBJECTS) {
			r = sigil_err_set(err, SIGIL_E_LIMIT, "more than %d %s in the cluster",
			                  KUBE_INFORMER_MAX_OBJECTS, inf->res->plural);
			break;
		}
		if (json_object_set(inf->cache, key, ev->object) < 0)
			r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		break;
	case KUBE_WATCH_DELETED: json_object_del(inf->cache, key); break;
	case KUBE_WATCH_SYNC:
	default: break;
	}
	if (r == 0)
		inf->generation++;
	pthread_mutex_unlock(&inf->lock);
	if (r == 0)
		inf_notify(inf);
	return r;
}

/* Sleeps ms unless stopped first; true when stopped. */
static bool inf_sleep(kube_informer *inf, long ms)
{
	struct timespec ts;
	bool stopped;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&inf->lock);
	while (!atomic_load(&inf->stop)) {
		if (pthread_cond_timedwait(&inf->wake, &inf->lock, &ts) == ETIMEDOUT)
			break;
	}
	stopped = atomic_load(&inf->stop) != 0;
	pthread_mutex_unlock(&inf->lock);
	return stopped;
}

static void *inf_main(void *arg)
{
	kube_informer *inf = arg;
	long backoff = inf->backoff_min_ms;

	while (!atomic_load(&inf->stop)) {
		kube_watch_opts o = {
		    .label_selector = inf->label_selector,
		    .timeout_seconds = inf->watch_timeout_s,
		    .stop = &inf->stop,
		};
		sigil_err e = {0};
		bool progress, notify = false;
		long wait;
		int r;

		r = kube_client_watch(inf->client, inf->res, NULL, &o, inf_event, inf, &e);
		if (atomic_load(&inf->stop))
			break;
		if (r == 0)
			sigil_err_set(&e, SIGIL_E_UNAVAIL, "watch %s ended", inf->res->plural);
		pthread_mutex_lock(&inf->lock);
		inf->last_err = e;
		progress = inf->progress;
		inf->progress = false;
		if (r == SIGIL_E_NOTFOUND) {
			/* The CRD is not installed: nothing to wait for. */
			if (!inf->synced || json_object_size(inf->cache)) {
				json_object_clear(inf->cache);
				inf->generation++;
				notify = true;
			}
			inf->synced = true;
		}
		pthread_mutex_unlock(&inf->lock);
		log_debug("informer %s: %s", inf->res->plural, e.msg);
		if (notify)
			inf_notify(inf);
		if (progress)
			backoff = inf->backoff_min_ms;
		wait = r == SIGIL_E_NOTFOUND ? inf->backoff_max_ms : backoff;
		/* Jitter: many sigil-ca replicas must not relist in step. */
		wait = wait / 2 + (long)((unsigned long)random() % (unsigned long)(wait / 2 + 1));
		if (inf_sleep(inf, wait))
			break;
		backoff = backoff * 2 > inf->backoff_max_ms ? inf->backoff_max_ms : backoff * 2;
	}
	return NULL;
}

static void inf_free(kube_informer *inf)
{
	if (!inf)
		return;
	json_decref(inf->cache);
	free(inf->label_selector);
	pthread_cond_destroy(&inf->wake);
	pthread_mutex_destroy(&inf->lock);
	free(inf);
}

int kube_informer_start(const kube_informer_opts *o, kube_informer **ret, sigil_err *err)
{
	pthread_condattr_t ca;
	kube_informer *inf;
	int e;

	if (!o || !o->client || !o->res)
		return sigil_err_set(err, SIGIL_E_INVALID, "informer: no client or resource");
	inf = calloc(1, sizeof(*inf));
	if (!inf)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	inf->client = o->client;
	inf->res = o->res;
	inf->notify = o->notify;
	inf->ctx = o->ctx;
	inf->backoff_min_ms =
	    o->backoff_min_ms > 0 ? o->backoff_min_ms : INF_DEFAULT_BACKOFF_MIN_MS;
	inf->backoff_max_ms =
	    o->backoff_max_ms > 0 ? o->backoff_max_ms : INF_DEFAULT_BACKOFF_MAX_MS;
	if (inf->backoff_max_ms < inf->backoff_min_ms)
		inf->backoff_max_ms = inf->backoff_min_ms;
	inf->watch_timeout_s = o->watch_timeout_s;
	pthread_mutex_init(&inf->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&inf->wake, &ca);
	pthread_condattr_destroy(&ca);
	inf->cache = json_object();
	if (!inf->cache ||
	    (o->label_selector && !(inf->label_selector = strdup(o->label_selector)))) {
		inf_free(inf);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	e = pthread_create(&inf->thread, NULL, inf_main, inf);
	if (e) {
		inf_free(inf);
		return sigil_err_errno(err, e, "cannot start the %s informer thread",
		                       o->res->plural);
	}
	inf->started = true;
	*ret = inf;
	return 0;
}

void kube_informer_request_stop(kube_informer *inf)
{
	if (!inf)
		return;
	pthread_mutex_lock(&inf->lock);
	atomic_store(&inf->stop, 1);
	pthread_cond_broadcast(&inf->wake);
	pthread_mutex_unlock(&inf->lock);
}

void kube_informer_stop(kube_informer *inf)
{
	if (!inf)
		return;
	kube_informer_request_stop(inf);
	if (inf->started)
		pthread_join(inf->thread, NULL);
	inf_free(inf);
}

int kube_informer_snapshot(kube_informer *inf, json_t **ret, bool *synced,
                           unsigned long *generation, sigil_err *err)
{
	json_t *copy;
	bool s;
	unsigned long g;

	pthread_mutex_lock(&inf->lock);
	copy = json_deep_copy(inf->cache);
	s = inf->synced;
	g = inf->generation;
	pthread_mutex_unlock(&inf->lock);
	if (!copy)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	*ret = copy;
	if (synced)
		*synced = s;
	if (generation)
		*generation = g;
	return 0;
}

void kube_informer_last_error(kube_informer *inf, sigil_err *ret)
{
	pthread_mutex_lock(&inf->lock);
	*ret = inf->last_err;
	pthread_mutex_unlock(&inf->lock);
}
