/* What the Kubernetes API says about a pod that asks for a volume: the
 * facts the scopes turn into names (DESIGN.md "Volume API") and the node
 * it is scheduled on (node authorization).  Used by sigil-ca (remote
 * issuance) and by sigil-csi's embedded CA when it has an API.
 *
 *   node               -> GET nodes/<spec.nodeName>: status.addresses of
 *                         type InternalIP / ExternalIP
 *   pod                -> spec.subdomain, spec.hostname, status.podIPs
 *   listener-volume=X  -> the pod's volume X, its PVC (ephemeral:
 *                         "<pod>-<X>", else persistentVolumeClaim.claimName),
 *                         the Listener it names and that Listener's
 *                         status.ingressAddresses (Stackable's
 *                         listener-operator, listeners.stackable.tech)
 *
 * Errors: a pod that does not exist is SIGIL_E_NOTFOUND; an apiserver that
 * cannot be reached (or does not answer in time) is SIGIL_E_UNAVAIL; a
 * listener volume the pod does not have, whose PVC or Listener does not
 * exist yet, or whose Listener has no address yet, is SIGIL_E_PRECOND
 * naming it, as is a node scope for a pod not scheduled yet; objects whose
 * fields cannot be read (bad IPs, names) are SIGIL_E_CORRUPT; too many
 * addresses SIGIL_E_LIMIT.
 *
 * Listeners: Stackable's current secret-operator reads the addresses from
 * the PodListeners object "pod-<uid>"; this follows the older, simpler
 * path through the Listener's own status, which listener-operator still
 * maintains. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "ca/scopes.h"
#include "kube/client.h"
#include "util/err.h"

#define KUBE_POD_MAX_IPS 16
#define KUBE_POD_MAX_LISTENERS 8
#define KUBE_POD_MAX_LISTENER_ADDRS 16

typedef struct kube_pod_listener {
	char *volume_name;
	char **addresses;               /* host names and IPs */
	size_t n_addresses;
} kube_pod_listener;

typedef struct kube_pod_info {
	char *namespace_;
	char *name;
	char *uid;
	char *node_name;                /* spec.nodeName; NULL while unscheduled */
	char *subdomain;                /* spec.subdomain; NULL if none */
	char *hostname;                 /* spec.hostname; NULL if none */
	char *phase;                    /* status.phase */
	char **pod_ips;                 /* status.podIPs */
	size_t n_pod_ips;
	char **node_ips;                /* the node's InternalIP/ExternalIP addresses */
	size_t n_node_ips;
	kube_pod_listener *listeners;   /* one per requested listener volume */
	size_t n_listeners;
} kube_pod_info;

/* GETs the pod, its node (only if want_node), and the listeners of the
 * named volumes.  ret is allocated. */
int kube_pod_info_get(kube_client *c, const char *ns, const char *name, bool want_node,
		      const char *const *listener_volumes, size_t n_listener_volumes,
		      kube_pod_info **ret, sigil_err *err) SIGIL_WUR;
/* Parses a Pod object (and optionally a Node object) into *ret; exposed
 * for tests and fuzzing.  node may be NULL. */
int kube_pod_info_from_json(const json_t *pod, const json_t *node, kube_pod_info **ret,
			    sigil_err *err) SIGIL_WUR;
void kube_pod_info_free(kube_pod_info *pi);
/* The pod has run to completion (status.phase Succeeded or Failed): its
 * containers will not start again, so it gets no new secrets. */
bool kube_pod_info_terminated(const kube_pod_info *pi);

/* The PVC behind the pod's volume volume_name: "<pod>-<volume>" for an
 * ephemeral volume, else persistentVolumeClaim.claimName.  SIGIL_E_PRECOND
 * when the pod has no such volume or it is not backed by a claim.  *ret is
 * malloc'ed.  Exposed for tests and fuzzing. */
int kube_pod_volume_claim_name(const json_t *pod, const char *volume_name, char **ret,
			       sigil_err *err) SIGIL_WUR;
/* A Listener's status.ingressAddresses (at most
 * KUBE_POD_MAX_LISTENER_ADDRS, each a validated IP or DNS name) into
 * *ret; SIGIL_E_PRECOND when it has none yet.  Exposed for tests and
 * fuzzing; free with kube_pod_listener_clear. */
int kube_pod_listener_from_json(const json_t *listener, const char *volume_name,
				kube_pod_listener *ret, sigil_err *err) SIGIL_WUR;
void kube_pod_listener_clear(kube_pod_listener *l);
SIGIL_DEFINE_CLEANUP(kube_pod_info, kube_pod_info_free)

/* Fills id from pi: node name, node IPs, pod namespace/name/subdomain/IPs,
 * listeners (the ca_listener array is stored in *listeners, which must
 * have room for KUBE_POD_MAX_LISTENERS).  Pointers borrow from pi;
 * cluster_domain is left as it was. */
void kube_pod_info_identity(const kube_pod_info *pi, ca_identity *id,
			    ca_listener listeners[KUBE_POD_MAX_LISTENERS]);
