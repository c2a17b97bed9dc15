/* The expiry watcher (DESIGN.md "Expiry, renewal, restarts, alerts";
 * issue 7): one thread and one min-heap of deadlines over every live volume
 * of the node.  No per-volume timers and no polling of volumes: the thread
 * sleeps on a condition variable until the earliest deadline, the next
 * trust-bundle check, or a change (publish, unpublish).
 *
 * What a deadline does depends on the volume:
 *   renewal=in-place   at ~2/3 of the lifetime (up to 10% earlier, random)
 *                      re-issue with the same attributes and swap the files
 *                      atomically (csi_node_renew)
 *   renewal=restart    at notAfter - restart-buffer (the restarter
 *                      annotation's value) evict the pod through the
 *                      Eviction API; without a Kubernetes API (standalone)
 *                      there is nobody to evict through, so the volume is
 *                      renewed in place at that time instead
 *   pod scope before   re-check the pod a few times with backoff and
 *   the pod had an IP  re-issue once it has one, so that the cert gains it
 *   annotation failed  retry the restarter annotation
 * Renewals and evictions are rate limited per node (token buckets; an
 * action that finds no token is pushed back by the wait plus up to 1 s of
 * jitter), so that a CA rotation or a restart after downtime does not
 * renew or restart a whole node at once.  An eviction is never attempted
 * before its deadline: rate limiting and retries only ever delay it.
 *
 * Trust bundles: every bundle_check_secs the watcher asks the issuer for
 * the bundle version of each class in use (one call per class, not per
 * volume) and rewrites ca.crt / the truststore of every live volume of a
 * class whose version changed (csi_node_refresh_trust).
 *
 * State: the heap is rebuilt from the state dir at start
 * (csi_state_foreach), so a restarted sigil-csi keeps every deadline; a
 * deadline already past is handled at once (rate limited). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csi/attrs.h"
#include "csi/issuer.h"
#include "csi/kube.h"
#include "csi/state.h"
#include "util/err.h"

/* in-place renewal at this fraction of the certificate's lifetime */
#define CSI_WATCH_DEFAULT_RENEW_FRACTION (2.0 / 3.0)
#define CSI_WATCH_MIN_RENEW_FRACTION     0.05
#define CSI_WATCH_MAX_RENEW_FRACTION     0.95
/* ... up to this fraction of that point earlier (spreads a node's renewals) */
#define CSI_WATCH_RENEW_JITTER              0.1
#define CSI_WATCH_DEFAULT_BUNDLE_CHECK_SECS 30
#define CSI_WATCH_MAX_BUNDLE_CHECK_SECS     86400
#define CSI_WATCH_DEFAULT_RENEWALS_PER_SEC  5.0
#define CSI_WATCH_DEFAULT_EVICTIONS_PER_MIN 10.0
#define CSI_WATCH_MAX_RATE                  100000.0
/* distinct classes whose trust bundles are followed */
#define CSI_WATCH_MAX_CLASSES 256
/* retries of failed renewals / evictions: exponential from MIN to MAX */
#define CSI_WATCH_RETRY_MIN_MS       2000
#define CSI_WATCH_RETRY_MAX_MS       300000
#define CSI_WATCH_EVICT_RETRY_MAX_MS 30000
/* pod IP checks after publish: first after FIRST_MS, doubling, at most N */
#define CSI_WATCH_POD_IP_FIRST_MS 1000
#define CSI_WATCH_POD_IP_CHECKS   7
/* an in-place volume whose renewal keeps failing is "expiring soon" once
 * this fraction of its lifetime has passed */
#define CSI_WATCH_EXPIRING_FRACTION 0.9

typedef struct csi_node csi_node;
typedef struct csi_watcher csi_watcher;

typedef enum csi_watch_action {
	CSI_WATCH_NONE,     /* nothing expires (keytab): not in the heap */
	CSI_WATCH_RENEW,    /* re-issue in place */
	CSI_WATCH_EVICT,    /* evict the pod */
	CSI_WATCH_POD_IP,   /* look whether the pod has an IP yet */
	CSI_WATCH_ANNOTATE, /* retry writing the restarter annotation */
} csi_watch_action;

const char *csi_watch_action_name(csi_watch_action a);

/* What happened, for metrics and alerts (hooks below). */
typedef enum csi_watch_event {
	CSI_WATCH_EV_TRACKED,   /* a volume is watched (again): not_after is current */
	CSI_WATCH_EV_UNTRACKED, /* unpublished, or its pod is gone */
	CSI_WATCH_EV_RENEWED,
	CSI_WATCH_EV_RENEW_FAILED,
	CSI_WATCH_EV_EVICTED,
	CSI_WATCH_EV_EVICT_BLOCKED, /* a PodDisruptionBudget said no (429) */
	CSI_WATCH_EV_EVICT_FAILED,  /* any other eviction error */
	CSI_WATCH_EV_EXPIRING_SOON, /* an alert: renewal or eviction keeps failing near expiry */
	CSI_WATCH_EV_TRUST_REFRESHED,
	CSI_WATCH_EV_TRUST_FAILED,
	CSI_WATCH_EV__COUNT
} csi_watch_event;

const char *csi_watch_event_name(csi_watch_event e);

typedef struct csi_watch_notice {
	csi_watch_event event;
	const char *volume_id;
	const char *target_path;
	const char *pod_namespace; /* may be NULL */
	const char *pod_name;      /* may be NULL */
	const char *class_name;
	int64_t not_after;   /* unix seconds; 0 unknown */
	const char *message; /* human readable; never a secret */
} csi_watch_notice;

/* Called from the watcher thread (and from publish / unpublish for
 * TRACKED / UNTRACKED); must not block for long and must not call back
 * into the watcher. */
typedef void (*csi_watch_notify_fn)(void *ctx, const csi_watch_notice *n);

typedef struct csi_watcher_config {
	csi_node *node;             /* borrowed: renew, trust refresh, annotation */
	csi_state *state;           /* borrowed: rebuild at start */
	csi_issuer *issuer;         /* borrowed: trust bundle versions */
	csi_kube *kube;             /* borrowed; NULL without a Kubernetes API */
	double renew_fraction;      /* 0: CSI_WATCH_DEFAULT_RENEW_FRACTION */
	int64_t bundle_check_secs;  /* 0: default 30; < 0: never */
	double renewals_per_sec;    /* 0: default */
	double evictions_per_min;   /* 0: default */
	csi_watch_notify_fn notify; /* optional: metrics, alert webhook */
	void *notify_ctx;
} csi_watcher_config;

/* Creates the watcher and loads every record of the state (no thread yet:
 * csi_watcher_start). */
int csi_watcher_new(const csi_watcher_config *cfg, csi_watcher **ret, sigil_err *err) SIGIL_WUR;
int csi_watcher_start(csi_watcher *w, sigil_err *err) SIGIL_WUR;
/* Stops the thread (waits for the action in flight) and frees; NULL ok. */
void csi_watcher_free(csi_watcher *w);

/* Publish / renewal: (re)computes the volume's deadline from its record.
 * Records without anything to watch are dropped from the heap. */
void csi_watcher_track(csi_watcher *w, const csi_volume_record *rec);
/* Unpublish: forgets the volume (a missing one is fine). */
void csi_watcher_forget(csi_watcher *w, const char *volume_id, const char *target_path);

typedef struct csi_watcher_stats {
	size_t tracked; /* volumes in the heap or in flight */
	uint64_t counts[CSI_WATCH_EV__COUNT];
	uint64_t bundle_checks; /* trust bundle version queries sent */
	uint64_t wakeups;       /* times the thread woke up */
} csi_watcher_stats;

void csi_watcher_get_stats(csi_watcher *w, csi_watcher_stats *ret);

/* The earliest deadline (tests, sigilctl): copies of the volume id and
 * target (free them), the action and the deadline in unix milliseconds.
 * SIGIL_E_NOTFOUND when nothing is scheduled. */
int csi_watcher_peek(csi_watcher *w, char **ret_volume_id, char **ret_target,
                     csi_watch_action *ret_action, int64_t *ret_deadline_ms) SIGIL_WUR;

/* ---- pure scheduling arithmetic (exposed for unit tests) ----------------- */

/* in-place: issued + fraction * lifetime, minus up to CSI_WATCH_RENEW_JITTER
 * of that span (u in [0,1) picks how much); in unix ms.  Never after
 * fraction * lifetime, never before issued. */
int64_t csi_watch_renew_at_ms(int64_t issued_at, int64_t not_after, double fraction, double u);
/* restart: notAfter - restart buffer (the annotation's value), unix ms. */
int64_t csi_watch_evict_at_ms(int64_t not_after, int64_t restart_buffer_secs);
/* Exponential backoff after `failures` consecutive failures (>= 1). */
int64_t csi_watch_backoff_ms(unsigned failures, int64_t min_ms, int64_t max_ms);

/* A token bucket: rate tokens per second, burst capacity. */
typedef struct csi_watch_bucket {
	double rate_per_ms;
	double burst;
	double tokens;
	int64_t last_ms;
} csi_watch_bucket;

void csi_watch_bucket_init(csi_watch_bucket *b, double per_sec, double burst, int64_t now_ms);
/* Takes a token and returns 0, or returns the ms until one is available. */
int64_t csi_watch_bucket_take(csi_watch_bucket *b, int64_t now_ms);

/* The main action and deadline for a record (no state, no I/O), which
 * csi_watcher_track schedules, together with the side tasks it needs
 * (annotation retry, pod IP checks; the watcher runs the earliest).  have_kube: a Kubernetes API is
 * available. u in [0,1): the jitter draw.  SIGIL_E_INVALID for a record whose attributes do not
 * parse. */
typedef struct csi_watch_plan {
	csi_watch_action action; /* the main action: RENEW, EVICT or NONE */
	int64_t deadline_ms;     /* of the main action */
	bool needs_annotation;   /* restart + API: the annotation is not current */
	bool awaiting_pod_ip;    /* pod scope issued before the pod had an IP */
	csi_renewal renewal;
	int64_t restart_buffer_secs;
	int64_t issued_at;
	int64_t expires_at; /* restart: notAfter - buffer (seconds) */
} csi_watch_plan;

int csi_watch_plan_record(const csi_volume_record *rec, bool have_kube, double fraction, double u,
                          csi_watch_plan *ret, sigil_err *err) SIGIL_WUR;
