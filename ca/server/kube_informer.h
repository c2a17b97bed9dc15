/* A small informer (client-go's name for it): one thread that watches one
 * resource and keeps a cache of its objects, for sigil-ca's controllers
 * (kube_classes.h, truststore.h).
 *
 * The thread runs kube_client_watch, which LISTs (delivered as SYNC),
 * resumes dropped streams and relists after 410 Gone.  When the watch
 * gives up (apiserver down for longer than the client's retries, 403)
 * the informer keeps its last cache, waits with an exponential backoff
 * and starts over with a fresh LIST.  A 404 on the collection means the
 * CRD is not installed: the cache is empty and counts as synced (so that
 * a controller is not held up by an optional API group), and the
 * informer retries at the maximum backoff.
 *
 * The notify callback runs on the informer's thread after every change to
 * the cache (and after the first sync); it must be quick and must not call
 * kube_informer_stop on its own informer. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kube/client.h"
#include "util/err.h"
#include "util/mem.h"

/* Objects kept by one informer: a cluster with more SecretClasses or
 * TrustStores than this is refused rather than eating sigil-ca's memory. */
#define KUBE_INFORMER_MAX_OBJECTS 4096

typedef struct kube_informer kube_informer;

typedef void (*kube_informer_notify_fn)(void *ctx);

typedef struct kube_informer_opts {
	kube_client *client;            /* borrowed; must outlive the informer */
	const kube_resource *res;       /* borrowed (a static kube_res_*) */
	const char *label_selector;     /* copied; NULL: every object */
	kube_informer_notify_fn notify; /* may be NULL */
	void *ctx;
	long backoff_min_ms;      /* 0: 500 */
	long backoff_max_ms;      /* 0: 30000 */
	unsigned watch_timeout_s; /* per WATCH request; 0: 300 */
} kube_informer_opts;

/* Starts the thread.  The cache is empty and unsynced until the first
 * LIST has been read. */
int kube_informer_start(const kube_informer_opts *o, kube_informer **ret, sigil_err *err) SIGIL_WUR;
/* Asks the thread to stop without waiting (so that several informers
 * stop in parallel); accepts NULL.  kube_informer_stop still has to be
 * called. */
void kube_informer_request_stop(kube_informer *inf);
/* Stops the thread (within about a second) and frees everything; accepts
 * NULL. */
void kube_informer_stop(kube_informer *inf);
SIGIL_DEFINE_CLEANUP(kube_informer, kube_informer_stop)

/* A deep copy of the cache: a JSON object mapping "namespace/name" (or
 * "name" for cluster-scoped resources) to the object.  *synced tells
 * whether a LIST has been read since the start.  *generation counts
 * changes (may be NULL). */
int kube_informer_snapshot(kube_informer *inf, json_t **ret, bool *synced,
                           unsigned long *generation, sigil_err *err) SIGIL_WUR;

/* The last error that ended a watch ("" when the watch is healthy). */
void kube_informer_last_error(kube_informer *inf, sigil_err *ret);

/* The cache key of an object: "namespace/name" or "name".  NULL when the
 * object has no usable name.  Malloc'ed. */
char *kube_informer_key(const kube_resource *res, const json_t *obj);
