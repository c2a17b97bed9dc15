/* Kubernetes API client (libcurl + jansson).
 *
 * One kube_client per process, shared by every thread: requests take an
 * easy handle from a small pool (so connections are reused), the bearer
 * token and the rate limiter are behind mutexes, the configuration is
 * immutable.
 *
 * Every request:
 * - waits for the client-side rate limit (token bucket: qps, burst);
 * - re-reads the token file when it changed (projected service account
 *   tokens rotate), and once more after a 401;
 * - is bounded by a timeout and a response size limit;
 * - is retried after 429 and 500/502/503/504 and refused connections, up
 *   to max_retries times, waiting Retry-After when the server gives one
 *   and an exponential backoff with jitter otherwise (an eviction's 429
 *   without Retry-After is a PodDisruptionBudget's answer, not overload,
 *   and is not retried);
 * - turns a metav1.Status into an error naming the object (kube/status.h).
 *
 * Objects are jansson values; results are new references the caller
 * json_decref()s.  kube_client_new switches jansson to a free function
 * that wipes every block (kube/jsonmem.h), so Secret data and tokens read
 * through here do not linger in freed heap. */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kube/config.h"
#include "kube/status.h"
#include "util/err.h"
#include "util/mem.h"

/* Defaults and hard limits. */
#define KUBE_DEFAULT_MAX_RESPONSE       (16u * 1024 * 1024)
#define KUBE_MAX_REQUEST_BODY           (3u * 1024 * 1024) /* the apiserver's own limit */
#define KUBE_MAX_WATCH_EVENT            (4u * 1024 * 1024) /* one watch event line */
#define KUBE_MAX_LIST_PAGES             10000
#define KUBE_MAX_LIST_ITEMS             200000
#define KUBE_MAX_NAME                   253
#define KUBE_MAX_SELECTOR               4096
#define KUBE_MAX_PATH                   8192
#define KUBE_MAX_RESOURCE_VERSION       64
#define KUBE_DEFAULT_PAGE_SIZE          500
#define KUBE_MAX_RETRIES                20
#define KUBE_MAX_TOKEN_REVIEW_AUDIENCES 16

/* A REST resource: where its objects live and what they are called. */
typedef struct kube_resource {
	const char *group;   /* "" for the core API */
	const char *version; /* "v1", "v1alpha1" */
	const char *plural;  /* path segment: "pods" */
	const char *kind;    /* "Pod" */
	bool namespaced;
} kube_resource;

extern const kube_resource kube_res_pods;
extern const kube_resource kube_res_nodes;
extern const kube_resource kube_res_namespaces;
extern const kube_resource kube_res_pvcs;
extern const kube_resource kube_res_secrets;
extern const kube_resource kube_res_configmaps;
extern const kube_resource kube_res_events;
extern const kube_resource kube_res_leases;
extern const kube_resource kube_res_pdbs;
extern const kube_resource kube_res_tokenreviews;
extern const kube_resource kube_res_secretclasses;           /* secrets.sigil.dev/v1alpha1 */
extern const kube_resource kube_res_truststores;             /* secrets.sigil.dev/v1alpha1 */
extern const kube_resource kube_res_stackable_secretclasses; /* secrets.stackable.tech/v1alpha2 */
extern const kube_resource kube_res_stackable_truststores;   /* secrets.stackable.tech/v1alpha1 */
/* helper A (issue 6, pod identity): Stackable listener-operator's Listener. */
extern const kube_resource kube_res_listeners; /* listeners.stackable.tech/v1alpha1 */

/* Looks a resource up by "plural" or "plural.group" ("pods",
 * "secretclasses.secrets.stackable.tech"); a bare plural means the core
 * or the sigil group.  NULL when unknown. */
const kube_resource *kube_resource_find(const char *name);

typedef struct kube_client_opts {
	double qps;      /* sustained requests per second; 0: no limit */
	unsigned burst;  /* bucket size (>= 1 when qps > 0) */
	long timeout_ms; /* whole request, watches excepted */
	long connect_timeout_ms;
	size_t max_response;  /* bytes of one response body */
	unsigned max_retries; /* after 429 / 5xx / refused connection */
	long backoff_base_ms; /* first wait without Retry-After; doubles */
	long backoff_max_ms;
	long retry_after_max_ms; /* a server's Retry-After is capped to this */
	const char *user_agent;  /* copied */
} kube_client_opts;

/* Defaults: qps 20, burst 30 (more than client-go's 5/10: sigil-csi
 * publishes come in bursts), timeout 30 s, connect 10 s, max_response
 * KUBE_DEFAULT_MAX_RESPONSE, 5 retries, backoff 200 ms .. 10 s,
 * Retry-After capped at 30 s, user agent "sigil/<version>". */
void kube_client_opts_init(kube_client_opts *o);

typedef struct kube_client kube_client;

/* Copies what it needs from cfg.  https:// servers only (http:// to a
 * loopback address for tests).  opts NULL: defaults. */
int kube_client_new(const kube_config *cfg, const kube_client_opts *opts, kube_client **ret,
                    sigil_err *err) SIGIL_WUR;
void kube_client_free(kube_client *c);
SIGIL_DEFINE_CLEANUP(kube_client, kube_client_free)

/* What a daemon's --kubeconfig FILE / --in-cluster flags ask for: loads
 * that configuration (the kubeconfig's current context, or the pod's
 * service account) and makes a client.  Neither given: 0 and *ret NULL
 * (standalone).  *ret_server (may be NULL) receives the API server's URL
 * (malloc'ed) for a log line. */
int kube_client_open(const char *kubeconfig, bool in_cluster, const kube_client_opts *opts,
                     kube_client **ret, char **ret_server, sigil_err *err) SIGIL_WUR;

/* The default namespace of the configuration. */
const char *kube_client_namespace(const kube_client *c);

/* ns is required for namespaced resources (except list/watch, where NULL
 * or "" means all namespaces) and must be NULL or "" for cluster-scoped
 * ones.  Names are checked before they go into a URL. */

int kube_client_get(kube_client *c, const kube_resource *res, const char *ns, const char *name,
                    json_t **ret, sigil_err *err) SIGIL_WUR;

typedef struct kube_list_opts {
	const char *label_selector; /* "app=web,tier!=db"; NULL: none */
	const char *field_selector; /* "spec.nodeName=node-1"; NULL: none */
	unsigned limit;             /* page size; 0: KUBE_DEFAULT_PAGE_SIZE */
} kube_list_opts;

/* One page: the List as the server sent it.  cont is the previous page's
 * metadata.continue (NULL for the first page).  An expired continue token
 * is KUBE_E_GONE. */
int kube_client_list_page(kube_client *c, const kube_resource *res, const char *ns,
                          const kube_list_opts *o, const char *cont, json_t **ret,
                          sigil_err *err) SIGIL_WUR;

/* Every page, following metadata.continue: a List {kind, apiVersion,
 * metadata: {resourceVersion of the first page}, items: [all]}.  If a
 * continue token expires mid-way the list restarts once from the top.
 * opts may be NULL. */
int kube_client_list(kube_client *c, const kube_resource *res, const char *ns,
                     const kube_list_opts *o, json_t **ret, sigil_err *err) SIGIL_WUR;

/* POST: obj is sent as is; ret (may be NULL) gets what the server stored.
 * An existing object is SIGIL_E_EXISTS. */
int kube_client_create(kube_client *c, const kube_resource *res, const char *ns, json_t *obj,
                       json_t **ret, sigil_err *err) SIGIL_WUR;

/* PUT to metadata.name of obj.  With metadata.resourceVersion set (as it
 * is on anything read from the server) the write only happens if nobody
 * wrote since: otherwise SIGIL_E_BUSY (409 Conflict). */
int kube_client_update(kube_client *c, const kube_resource *res, const char *ns, json_t *obj,
                       json_t **ret, sigil_err *err) SIGIL_WUR;

/* Read-modify-write with conflict handling (client-go RetryOnConflict):
 * GET, mutate(obj), PUT; on 409 Conflict start again, up to attempts
 * times.  mutate returns 0 to write, 1 when the object needs no change
 * (then nothing is written and *ret is the object read), < 0 to abort with
 * that error.  ret may be NULL. */
typedef int (*kube_mutate_fn)(json_t *obj, void *ctx, sigil_err *err);
int kube_client_update_retry(kube_client *c, const kube_resource *res, const char *ns,
                             const char *name, unsigned attempts, kube_mutate_fn mutate, void *ctx,
                             json_t **ret, sigil_err *err) SIGIL_WUR;

/* PATCH with a JSON merge patch (RFC 7386, application/merge-patch+json):
 * {"metadata":{"annotations":{"k":"v"}}} sets one annotation, null
 * removes a key.  A metadata.resourceVersion in the patch makes it
 * conditional (SIGIL_E_BUSY when stale). */
int kube_client_patch(kube_client *c, const kube_resource *res, const char *ns, const char *name,
                      json_t *patch, json_t **ret, sigil_err *err) SIGIL_WUR;

/* DELETE.  precondition_rv (may be NULL) makes it conditional
 * (SIGIL_E_BUSY when the object changed).  A missing object is
 * SIGIL_E_NOTFOUND; callers that want idempotence ignore it. */
int kube_client_delete(kube_client *c, const kube_resource *res, const char *ns, const char *name,
                       const char *precondition_rv, sigil_err *err) SIGIL_WUR;

/* POST pods/NAME/eviction (policy/v1).  The apiserver answers 429 when a
 * PodDisruptionBudget does not allow the disruption now: that is
 * SIGIL_E_UNAVAIL at once (no retries here; the caller retries later) with
 * the budget's message.  A 429 that carries Retry-After (apiserver
 * overload) is retried like any request.  A missing pod is
 * SIGIL_E_NOTFOUND. */
int kube_client_evict_pod(kube_client *c, const char *ns, const char *name,
                          sigil_err *err) SIGIL_WUR;

#define KUBE_TOKEN_MAX_USER 512
typedef struct kube_token_identity {
	char username[KUBE_TOKEN_MAX_USER]; /* "system:serviceaccount:NS:SA" */
	char uid[128];
	char sa_namespace[KUBE_MAX_NAME + 1]; /* for service account users, else "" */
	char sa_name[KUBE_MAX_NAME + 1];
	char pod_name[KUBE_MAX_NAME + 1]; /* user.extra authentication.kubernetes.io/... */
	char pod_uid[128];
	char node_name[KUBE_MAX_NAME + 1];
} kube_token_identity;

/* TokenReview: asks the apiserver who token belongs to.  audiences may be
 * NULL/0.  0 and *ret when authenticated; SIGIL_E_UNAUTH with the
 * server's reason when not.  A bound service account token carries the
 * pod it was issued for. */
int kube_client_review_token(kube_client *c, const char *token, const char *const *audiences,
                             size_t n_audiences, kube_token_identity *ret,
                             sigil_err *err) SIGIL_WUR;

/* ---- WATCH ------------------------------------------------------------------ */

typedef enum kube_watch_type {
	KUBE_WATCH_SYNC, /* object is a List of every object: forget what you knew */
	KUBE_WATCH_ADDED,
	KUBE_WATCH_MODIFIED,
	KUBE_WATCH_DELETED, /* object is its last state */
} kube_watch_type;

typedef struct kube_watch_event {
	kube_watch_type type;
	json_t *object;               /* borrowed for the callback's duration */
	const char *resource_version; /* where the watch has got to */
} kube_watch_event;

/* Return 0 to go on, 1 to stop (kube_client_watch returns 0), < 0 to stop
 * with that error. */
typedef int (*kube_watch_fn)(const kube_watch_event *ev, void *ctx, sigil_err *err);

typedef struct kube_watch_opts {
	const char *label_selector;
	const char *field_selector;
	/* Resume after this resourceVersion.  NULL or "": LIST first and
	 * deliver it as a SYNC event, then watch from the List's version. */
	const char *resource_version;
	unsigned timeout_seconds; /* per WATCH request (server side); 0: 300 */
	long max_duration_ms;     /* return 0 after this long; 0: never */
	const atomic_int *stop;   /* non-zero stops within about a second */
	char *last_rv;            /* if set, receives the last resourceVersion seen */
	size_t last_rv_size;      /* its size (>= KUBE_MAX_RESOURCE_VERSION + 1) */
} kube_watch_opts;

/* Streams changes until the callback, stop or max_duration ends it.  A
 * stream that ends (server timeout, dropped connection) is resumed from
 * the last resourceVersion seen (BOOKMARKs advance it); a 410 Gone (the
 * version was compacted away) restarts with a LIST delivered as SYNC.
 * Transient failures are retried with backoff; more than max_retries in a
 * row without an event in between, or a 401/403/404, end the watch with
 * that error. */
int kube_client_watch(kube_client *c, const kube_resource *res, const char *ns,
                      const kube_watch_opts *o, kube_watch_fn fn, void *ctx,
                      sigil_err *err) SIGIL_WUR;

/* ---- helpers ------------------------------------------------------------------ */

/* A Kubernetes object name that is safe in a URL path segment: 1 to
 * KUBE_MAX_NAME printable ASCII characters, no '/', '%', space, "." or
 * "..".  (The apiserver's own rule is stricter per kind.) */
bool kube_name_ok(const char *name);

/* The API path of a resource collection or object, e.g.
 * "/api/v1/namespaces/default/pods/web-0" or
 * "/apis/secrets.sigil.dev/v1alpha1/secretclasses".  name and subresource
 * may be NULL.  Malloc'ed. */
int kube_resource_path(const kube_resource *res, const char *ns, const char *name,
                       const char *subresource, char **ret, sigil_err *err) SIGIL_WUR;

/* metadata.name / namespace / resourceVersion of an object, or NULL. */
const char *kube_object_name(const json_t *obj);
const char *kube_object_namespace(const json_t *obj);
const char *kube_object_resource_version(const json_t *obj);
