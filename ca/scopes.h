/* Scopes become certificate names, as Stackable's secret-operator does it
 * (DESIGN.md "Volume API"):
 *   node               -> node name, node InternalIP/ExternalIP addresses
 *   pod                -> {subdomain}.{ns}.svc.{domain} and
 *                         {pod}.{subdomain}.{ns}.svc.{domain} when the pod has
 *                         a subdomain, plus pod IPs when known
 *   service=X          -> X.{ns}.svc.{domain}
 *   listener-volume=X  -> the listener's ingress addresses (host names and IPs)
 * The CA side runs this: the node only says which scopes it wants. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define CA_DEFAULT_CLUSTER_DOMAIN "cluster.local"
#define CA_MAX_IDENTITY_ADDRS 16

typedef enum ca_scope_kind {
	CA_SCOPE_NODE,
	CA_SCOPE_POD,
	CA_SCOPE_SERVICE,
	CA_SCOPE_LISTENER_VOLUME,
} ca_scope_kind;

typedef struct ca_scope {
	ca_scope_kind kind;
	char *name; /* service / listener volume name; NULL for node and pod */
} ca_scope;

typedef struct ca_listener {
	const char *volume_name;              /* the listener-volume scope name */
	const char *const *addresses;         /* host names or IPs */
	size_t n_addresses;
} ca_listener;

/* What the CA knows about the requester (from the volume context, or from
 * the Kubernetes API when it has one). */
typedef struct ca_identity {
	const char *node_name;
	const char *const *node_ips;
	size_t n_node_ips;
	const char *pod_namespace;
	const char *pod_name;
	const char *pod_subdomain;            /* spec.subdomain; NULL if none */
	const char *const *pod_ips;
	size_t n_pod_ips;
	const ca_listener *listeners;
	size_t n_listeners;
	const char *cluster_domain;           /* NULL: cluster.local */
	/* helper A (issue 6): spec.hostname.  The pod's DNS name is
	 * {hostname}.{subdomain}.{ns}.svc.{domain}; NULL: the pod name. */
	const char *pod_hostname;
} ca_identity;

typedef struct ca_names {
	char *common_name; /* pod name (or node name) */
	char **dns;
	size_t n_dns;
	char **ips;
	size_t n_ips;
} ca_names;

/* Computes the names; duplicates are dropped, order is scope order.  A
 * scope that needs facts the identity does not have (a pod scope without a
 * namespace, a listener volume that is unknown) is SIGIL_E_PRECOND naming
 * the scope. */
int ca_scopes_to_names(const ca_identity *id, const ca_scope *scopes, size_t n_scopes,
		       ca_names *ret, sigil_err *err) SIGIL_WUR;
void ca_names_free(ca_names *n);
const char *ca_scope_kind_name(ca_scope_kind k);
