/* sigil-csi's side of the Kubernetes API (issue 6): PVC annotations for
 * CreateVolume, the restarter annotation on pods with renewal=restart,
 * Events on pods, pod evictions, and pod lookups for the embedded CA and
 * the expiry watcher.  Without an API (standalone) sigil-csi has no
 * csi_kube and every caller skips these steps.
 *
 * Thread-safe: one csi_kube shared by the CSI handler threads and the
 * watcher. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "csi/attrs.h"
#include "kube/client.h"
#include "kube/podinfo.h"
#include "util/err.h"

#define CSI_KUBE_RESTARTER_PREFIX "restarter.sigil.dev/expires-at."
#define CSI_KUBE_STACKABLE_RESTARTER_PREFIX "restarter.stackable.tech/expires-at."
/* external-provisioner --extra-create-metadata parameters */
#define CSI_KUBE_PARAM_PVC_NAME "csi.storage.k8s.io/pvc/name"
#define CSI_KUBE_PARAM_PVC_NAMESPACE "csi.storage.k8s.io/pvc/namespace"

typedef struct csi_kube_config {
	kube_client *client;       /* borrowed; must outlive the csi_kube */
	const char *node_name;     /* this node (spec.nodeName of its pods) */
	const char *component;     /* Event source, e.g. "sigil-csi" */
	bool stackable_compat;     /* also write Stackable's restarter key */
	bool events;               /* post Events (a zeroed config posts none;
				    * sigil-csi sets it unless --no-events) */
	size_t event_queue_max;    /* Events waiting to be sent; 0: default */
} csi_kube_config;

/* Events wait in a bounded queue for the sender thread; a full queue drops
 * new ones (counted) rather than block a publish. */
#define CSI_KUBE_EVENT_QUEUE_DEFAULT 256
#define CSI_KUBE_EVENT_QUEUE_MAX 4096
/* client-go's recorder truncates messages to 1024 bytes too. */
#define CSI_KUBE_EVENT_MAX_MESSAGE 1024
#define CSI_KUBE_EVENT_MAX_REASON 128

typedef struct csi_kube csi_kube;

int csi_kube_new(const csi_kube_config *cfg, csi_kube **ret, sigil_err *err) SIGIL_WUR;
void csi_kube_free(csi_kube *k);
SIGIL_DEFINE_CLEANUP(csi_kube, csi_kube_free)

/* CreateVolume: the annotations of PVC ns/name whose keys carry one of
 * the two attribute prefixes (secrets.sigil.dev/, secrets.stackable.tech/),
 * as csi_kv pairs (malloc'ed; free with csi_kube_kv_free).  A PVC that is
 * gone is SIGIL_E_NOTFOUND (a final error for the provisioner: no retry
 * storm); an unreachable apiserver is SIGIL_E_UNAVAIL. */
/* The filtering step alone, on a PVC object (exposed for tests and
 * fuzzing): at most CSI_MAX_ATTRS matching keys, keys up to
 * CSI_MAX_ATTR_KEY_LEN and string values up to CSI_MAX_ATTR_LEN bytes;
 * anything else is SIGIL_E_LIMIT / SIGIL_E_INVALID naming the key.  Other
 * annotations are ignored. */
int csi_kube_pvc_filter(const json_t *pvc, csi_kv **ret, size_t *n, sigil_err *err) SIGIL_WUR;
int csi_kube_pvc_attributes(csi_kube *k, const char *ns, const char *name, csi_kv **ret,
			    size_t *n, sigil_err *err) SIGIL_WUR;
void csi_kube_kv_free(csi_kv *kv, size_t n);

/* The restarter annotation key for a volume, made as Stackable's
 * secret-operator makes it (csi_server/node.rs tag_pod): prefix + the
 * first 16 bytes of SHA-256("secrets.stackable.tech/volume:" + volume_id)
 * as 32 lower-case hex digits.  The sigil key uses the same tag, so both
 * keys of a volume end alike.  out must hold 128 bytes. */
void csi_kube_restarter_key(const char *prefix, const char *volume_id, char out[128]);
/* The annotation value: RFC 3339 in UTC, "2030-01-02T03:04:05Z"; with
 * stackable set spelled "+00:00" as Stackable (chrono to_rfc3339) does. */
int csi_kube_format_expiry(time_t t, bool stackable, char out[32]) SIGIL_WUR;

/* renewal=restart: merge-patches the pod annotation
 * restarter.sigil.dev/expires-at.<hash> = expires_at in RFC 3339 (and
 * Stackable's key in compatibility mode). */
int csi_kube_annotate_expiry(csi_kube *k, const char *ns, const char *pod, const char *volume_id,
			     time_t expires_at, sigil_err *err) SIGIL_WUR;

/* Event types and the reasons sigil posts. */
#define CSI_KUBE_EVENT_NORMAL "Normal"
#define CSI_KUBE_EVENT_WARNING "Warning"

/* Posts a core/v1 Event about the pod (involvedObject Pod ns/name/uid,
 * source component and host = node).  Best effort: never blocks a publish
 * for long (queued and sent by a background thread, dropped when the
 * queue is full) and never fails the caller.  pod_uid may be NULL. */
void csi_kube_event(csi_kube *k, const char *ns, const char *pod, const char *pod_uid,
		    const char *type, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

typedef struct csi_kube_stats {
	unsigned long long events_queued;  /* accepted into the queue */
	unsigned long long events_sent;    /* created on the apiserver */
	unsigned long long events_failed;  /* the apiserver refused or was down */
	unsigned long long events_dropped; /* queue full (or out of memory) */
	size_t queue_len;                  /* waiting now */
	bool in_flight;                    /* one being sent now */
} csi_kube_stats;
void csi_kube_get_stats(csi_kube *k, csi_kube_stats *ret);
/* Waits until every queued Event has been sent (or has failed);
 * SIGIL_E_TIMEOUT after timeout_ms.  For an orderly shutdown and tests. */
int csi_kube_flush_events(csi_kube *k, long timeout_ms, sigil_err *err) SIGIL_WUR;

/* This node's name (csi_kube_config.node_name). */
const char *csi_kube_node_name(const csi_kube *k);

/* POST pods/<pod>/eviction.  0 evicted; SIGIL_E_UNAVAIL when a
 * PodDisruptionBudget blocks it now (retry later); SIGIL_E_NOTFOUND when
 * the pod is gone. */
int csi_kube_evict(csi_kube *k, const char *ns, const char *pod, sigil_err *err) SIGIL_WUR;

/* The pod as the API sees it (kube/podinfo.h), with its node. */
int csi_kube_pod_info(csi_kube *k, const char *ns, const char *pod,
		      const char *const *listener_volumes, size_t n_listener_volumes,
		      kube_pod_info **ret, sigil_err *err) SIGIL_WUR;
