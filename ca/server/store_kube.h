/* The Kubernetes Secret CA store: the ca_store interface (ca/store.h) kept
 * in Secrets of sigil-ca's namespace, so that several sigil-ca replicas
 * share one CA set.
 *
 * Layout: one Secret per class, "<prefix>-<class>", type sigil.dev/ca-store,
 * label app.kubernetes.io/managed-by=sigil, data key
 * "gen-<16 lower-case hex digits>.pem" = ca_store_record_format bytes per
 * generation (the same names and bytes as the directory store's files).
 *
 * Guarantees (the same as the directory store):
 * - load is strict: a data key that is not a generation name, or whose value
 *   is not a record, fails the whole load with SIGIL_E_CORRUPT naming the
 *   Secret and the key; nothing is regenerated or dropped.
 * - put adds one key with an update carrying the resourceVersion it read
 *   (create when the Secret is missing).  A 409 Conflict means another
 *   writer got in first: the Secret is re-read, and if the generation now
 *   exists the answer is SIGIL_E_EXISTS (another replica wrote it; the
 *   caller reloads and adopts it, a CA is never overwritten); otherwise the
 *   write is retried, a bounded number of times.  remove is the same.
 * - a Secret (or Lease) of that name without the managed-by label is
 *   refused with SIGIL_E_PRECOND and never written.
 * - crash safety comes from the apiserver: every write is one atomic object
 *   update, so there are no leftovers to clean.
 *
 * Locking: an in-process mutex per class plus a coordination.k8s.io/v1
 * Lease "<prefix>-<class>-lock" (see ca_store_kube_open). */
#pragma once
#include <stdbool.h>
#include <time.h>

#include <jansson.h>

#include "ca/store.h"
#include "kube/client.h"
#include "util/err.h"

#define CA_STORE_KUBE_SECRET_TYPE "sigil.dev/ca-store"
#define CA_STORE_KUBE_MANAGED_LABEL "app.kubernetes.io/managed-by"
#define CA_STORE_KUBE_MANAGED_VALUE "sigil"
/* A Lease not renewed for this long is taken over. */
#define CA_STORE_KUBE_LEASE_SECONDS 30
/* Longest name prefix: "<prefix>-<class>-lock" must stay a valid object
 * name (KUBE_MAX_NAME) with the longest class name. */
#define CA_STORE_KUBE_MAX_PREFIX (KUBE_MAX_NAME - CA_STORE_MAX_CLASS_LEN - 6)
/* holderIdentity of the Lease. */
#define CA_STORE_KUBE_MAX_HOLDER 253
/* The apiserver refuses a Secret whose data exceeds 1 MiB. */
#define CA_STORE_KUBE_MAX_SECRET_DATA (1024u * 1024)
/* Re-reads after 409 Conflicts before put/remove give up (SIGIL_E_BUSY). */
#define CA_STORE_KUBE_MAX_ATTEMPTS 10
/* How long lock waits for a Lease held by another live replica. */
#define CA_STORE_KUBE_LOCK_MAX_WAIT_SECONDS (3 * CA_STORE_KUBE_LEASE_SECONDS)

/* Opens the store.  c is borrowed and must outlive the store; ns is
 * sigil-ca's namespace; name_prefix (e.g. "sigil-ca") makes the object
 * names; holder_id names this process in the Leases and must be unique
 * among live processes (the pod name is: a restarted container reuses it
 * and then takes over its dead predecessor's Lease at once).
 *
 * The Lease is not renewed while held: a rotation holds it for one key
 * generation and a handful of API calls, far less than
 * CA_STORE_KUBE_LEASE_SECONDS.  Should a holder ever stall longer, another
 * replica takes the Lease over; the resourceVersion checks on the Secret
 * still make sure that no CA is lost or overwritten (the late writer gets
 * SIGIL_E_EXISTS).  Expiry is judged both by the Lease's renewTime against
 * the local clock and, independent of clock skew, by the Lease staying
 * unchanged for a whole lease duration while we watch it (client-go's
 * leader election rule).  lock returns SIGIL_E_BUSY after waiting
 * CA_STORE_KUBE_LOCK_MAX_WAIT_SECONDS. */
int ca_store_kube_open(kube_client *c, const char *ns, const char *name_prefix,
		       const char *holder_id, ca_store **ret, sigil_err *err) SIGIL_WUR;

/* The records of one Secret object as read from the API, ascending by
 * generation (the parser behind load; exposed for tests and fuzzing).
 * what names the Secret in messages.  A Secret without the managed-by
 * label or with another type is SIGIL_E_PRECOND; a bad key or value
 * SIGIL_E_CORRUPT; more than CA_STORE_MAX_GENERATIONS SIGIL_E_LIMIT. */
int ca_store_kube_parse_secret(const json_t *secret, const char *what, ca_store_record **ret,
			       size_t *n, sigil_err *err) SIGIL_WUR;

/* A metav1.Time / MicroTime as the apiserver writes it:
 * "YYYY-MM-DDTHH:MM:SS[.fraction]Z" or with a "+hh:mm"/"-hh:mm" offset.
 * SIGIL_E_INVALID otherwise. */
int ca_store_kube_parse_time(const char *s, time_t *ret) SIGIL_WUR;
