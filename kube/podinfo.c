/* Pod identity from the Kubernetes API (see podinfo.h).
 *
 * Everything read here ends up in a certificate, so every string is
 * checked for what it claims to be (a DNS label, a DNS name, an IP
 * address) and every list is bounded before it is copied.  The apiserver
 * is trusted for content, not for shape. */
#define _GNU_SOURCE
#include "kube/podinfo.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

/* Fields we copy that have no limit in client.h. */
#define KUBE_POD_MAX_UID        128
#define KUBE_POD_MAX_PHASE      32
#define KUBE_POD_MAX_DNS_LABEL  63
#define KUBE_POD_MAX_DNS_NAME   253
#define KUBE_POD_MAX_IP_TEXT    45 /* INET6_ADDRSTRLEN - 1 */
/* Entries looked at in lists that may hold things we skip: a pod with
 * more volumes, or a node with more addresses, is refused rather than
 * scanned without end. */
#define KUBE_POD_MAX_VOLUMES    1024
#define KUBE_POD_MAX_NODE_ADDRS 64
/* listener-operator: a PVC naming an existing Listener instead of the one
 * made for it. */
#define KUBE_POD_LISTENER_NAME_ANNOTATION "listeners.stackable.tech/listener-name"

static void podinfo_json_decref(json_t *j)
{
	json_decref(j);
}
SIGIL_DEFINE_CLEANUP(json_t, podinfo_json_decref)

/* ---- checks --------------------------------------------------------------------- */

/* Untrusted text in a message: printable, bounded. */
static const char *podinfo_show(const char *s, char *buf, size_t cap)
{
	return sigil_err_show(s, buf, cap);
}

/* RFC 1123 label: [a-z0-9-], not starting or ending with '-'. */
static bool podinfo_label_ok(const char *s, size_t n)
{
	if (n == 0 || n > KUBE_POD_MAX_DNS_LABEL || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* RFC 1123 subdomain: labels joined by '.', at most 253 bytes. */
static bool podinfo_dns_name_ok(const char *s)
{
	size_t n = strnlen(s, KUBE_POD_MAX_DNS_NAME + 1);
	const char *p = s, *end = s + n;

	if (n == 0 || n > KUBE_POD_MAX_DNS_NAME)
		return false;
	while (p < end) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		const char *le = dot ? dot : end;

		if (!podinfo_label_ok(p, (size_t)(le - p)))
			return false;
		if (dot && dot + 1 == end)
			return false; /* no trailing dot */
		p = dot ? dot + 1 : end;
	}
	return true;
}

static bool podinfo_ip_ok(const char *s)
{
	unsigned char buf[16];

	if (strnlen(s, KUBE_POD_MAX_IP_TEXT + 1) > KUBE_POD_MAX_IP_TEXT)
		return false;
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static bool podinfo_uid_ok(const char *s)
{
	size_t n = strnlen(s, KUBE_POD_MAX_UID + 1);

	if (n == 0 || n > KUBE_POD_MAX_UID)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return false;
	return true;
}

static bool podinfo_phase_ok(const char *s)
{
	size_t n = strnlen(s, KUBE_POD_MAX_PHASE + 1);

	if (n == 0 || n > KUBE_POD_MAX_PHASE)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

/* A string member, or NULL when absent, null or "".  *bad is set when the
 * member is there but not a string. */
static const char *podinfo_opt_str(const json_t *obj, const char *key, bool *bad)
{
	const json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		*bad = true;
		return NULL;
	}
	/* Embedded NULs would make the C string differ from the JSON one. */
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		*bad = true;
		return NULL;
	}
	return json_string_value(v)[0] ? json_string_value(v) : NULL;
}

static int podinfo_dup(char **dst, const char *src, sigil_err *err)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
}

/* Appends v to a string array unless it is there already. */
static int podinfo_push(char ***arr, size_t *n, size_t max, const char *v, const char *what,
			sigil_err *err)
{
	char **na;

	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*arr)[i], v))
			return 0;
	if (*n >= max)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s: more than %zu addresses", what, max);
	na = realloc(*arr, (*n + 1) * sizeof(*na));
	if (!na)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	*arr = na;
	na[*n] = strdup(v);
	if (!na[*n])
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	(*n)++;
	return 0;
}

static void podinfo_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- freeing --------------------------------------------------------------------- */

void kube_pod_listener_clear(kube_pod_listener *l)
{
	if (!l)
		return;
	free(l->volume_name);
	podinfo_strv_free(l->addresses, l->n_addresses);
	memset(l, 0, sizeof(*l));
}

void kube_pod_info_free(kube_pod_info *pi)
{
	if (!pi)
		return;
	free(pi->namespace_);
	free(pi->name);
	free(pi->uid);
	free(pi->node_name);
	free(pi->subdomain);
	free(pi->hostname);
	free(pi->phase);
	podinfo_strv_free(pi->pod_ips, pi->n_pod_ips);
	podinfo_strv_free(pi->node_ips, pi->n_node_ips);
	for (size_t i = 0; i < pi->n_listeners; i++)
		kube_pod_listener_clear(&pi->listeners[i]);
	free(pi->listeners);
	free(pi);
}

/* ---- the Pod and Node objects ------------------------------------------------------ */

static int podinfo_parse_pod(const json_t *pod, kube_pod_info *pi, sigil_err *err)
{
	const json_t *meta, *spec, *status, *ips;
	const char *name, *ns, *uid, *node, *sub, *host, *phase, *kind;
	char q[80], what[KUBE_MAX_NAME + 80];
	bool bad = false;
	int r;

	if (!json_is_object(pod))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "the Pod is not a JSON object");
	kind = podinfo_opt_str(pod, "kind", &bad);
	if (bad || (kind && strcmp(kind, "Pod") != 0))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "the object is a %s, not a Pod",
				     podinfo_show(kind, q, sizeof(q)));
	meta = json_object_get(pod, "metadata");
	if (!json_is_object(meta))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "the Pod has no metadata");
	name = podinfo_opt_str(meta, "name", &bad);
	ns = podinfo_opt_str(meta, "namespace", &bad);
	if (bad || !name || !ns || !podinfo_dns_name_ok(name) ||
	    !podinfo_label_ok(ns, strnlen(ns, KUBE_POD_MAX_DNS_LABEL + 1)))
		return sigil_err_set(err, SIGIL_E_CORRUPT,
				     "the Pod has no valid metadata.name and metadata.namespace");
	snprintf(what, sizeof(what), "Pod %s/%s", ns, name);
	uid = podinfo_opt_str(meta, "uid", &bad);
	if (bad || (uid && !podinfo_uid_ok(uid)))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: metadata.uid is not valid", what);

	spec = json_object_get(pod, "spec");
	if (spec && !json_is_object(spec))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: spec is not an object", what);
	node = podinfo_opt_str(spec, "nodeName", &bad);
	sub = podinfo_opt_str(spec, "subdomain", &bad);
	host = podinfo_opt_str(spec, "hostname", &bad);
	if (bad)
		return sigil_err_set(err, SIGIL_E_CORRUPT,
				     "%s: spec.nodeName, subdomain or hostname is not a string", what);
	if (node && !podinfo_dns_name_ok(node))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: spec.nodeName \"%s\" is not a DNS name",
				     what, podinfo_show(node, q, sizeof(q)));
	/* Both become DNS labels in certificate names (DESIGN.md: pod scope). */
	if (sub && !podinfo_label_ok(sub, strnlen(sub, KUBE_POD_MAX_DNS_LABEL + 1)))
		return sigil_err_set(err, SIGIL_E_CORRUPT,
				     "%s: spec.subdomain \"%s\" is not a DNS label", what,
				     podinfo_show(sub, q, sizeof(q)));
	if (host && !podinfo_label_ok(host, strnlen(host, KUBE_POD_MAX_DNS_LABEL + 1)))
		return sigil_err_set(err, SIGIL_E_CORRUPT,
				     "%s: spec.hostname \"%s\" is not a DNS label", what,
				     podinfo_show(host, q, sizeof(q)));

	status = json_object_get(pod, "status");
	if (status && !json_is_object(status))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: status is not an object", what);
	phase = podinfo_opt_str(status, "phase", &bad);
	if (bad || (phase && !podinfo_phase_ok(phase)))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: status.phase is not valid", what);

	if ((r = podinfo_dup(&pi->name, name, err)) < 0 ||
	    (r = podinfo_dup(&pi->namespace_, ns, err)) < 0 ||
	    (r = podinfo_dup(&pi->uid, uid, err)) < 0 ||
	    (r = podinfo_dup(&pi->node_name, node, err)) < 0 ||
	    (r = podinfo_dup(&pi->subdomain, sub, err)) < 0 ||
	    (r = podinfo_dup(&pi->hostname, host, err)) < 0 ||
	    (r = podinfo_dup(&pi->phase, phase, err)) < 0)
		return r;

	/* Usually empty at publish time: the kubelet assigns pod IPs after
	 * the volumes are set up.  status.podIP is the older single field. */
	ips = json_object_get(status, "podIPs");
	if (ips && !json_is_null(ips)) {
		size_t i;
		json_t *e;

		if (!json_is_array(ips))
			return sigil_err_set(err, SIGIL_E_CORRUPT,
					     "%s: status.podIPs is not a list", what);
		if (json_array_size(ips) > KUBE_POD_MAX_IPS)
			return sigil_err_set(err, SIGIL_E_LIMIT, "%s: more than %d pod IPs", what,
					     KUBE_POD_MAX_IPS);
		json_array_foreach(ips, i, e) {
			const char *ip = json_is_object(e) ? podinfo_opt_str(e, "ip", &bad) : NULL;

			if (bad || !ip || !podinfo_ip_ok(ip))
				return sigil_err_set(err, SIGIL_E_CORRUPT,
						     "%s: status.podIPs[%zu] is not an IP address",
						     what, i);
			r = podinfo_push(&pi->pod_ips, &pi->n_pod_ips, KUBE_POD_MAX_IPS, ip, what,
					 err);
			if (r < 0)
				return r;
		}
	} else {
		const char *ip = podinfo_opt_str(status, "podIP", &bad);

		if (bad || (ip && !podinfo_ip_ok(ip)))
			return sigil_err_set(err, SIGIL_E_CORRUPT,
					     "%s: status.podIP is not an IP address", what);
		if (ip && (r = podinfo_push(&pi->pod_ips, &pi->n_pod_ips, KUBE_POD_MAX_IPS, ip,
					    what, err)) < 0)
			return r;
	}
	return 0;
}

/* The node's InternalIP and ExternalIP addresses, as Stackable takes them
 * for the node scope; Hostname and DNS entries are skipped (the node name
 * is already a name). */
static int podinfo_parse_node(const json_t *node, kube_pod_info *pi, sigil_err *err)
{
	const json_t *addrs;
	const char *name;
	char q[80], what[KUBE_MAX_NAME + 16];
	bool bad = false;
	size_t i;
	json_t *e;
	int r;

	if (!json_is_object(node))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "the Node is not a JSON object");
	name = podinfo_opt_str(json_object_get(node, "metadata"), "name", &bad);
	if (bad || !name)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "the Node has no metadata.name");
	if (!pi->node_name || strcmp(pi->node_name, name) != 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "Node %s is not the node Pod %s/%s is scheduled on (%s)",
				     podinfo_show(name, q, sizeof(q)), pi->namespace_, pi->name,
				     pi->node_name ? pi->node_name : "none");
	snprintf(what, sizeof(what), "Node %s", pi->node_name);
	addrs = json_object_get(json_object_get(node, "status"), "addresses");
	if (!addrs || json_is_null(addrs))
		return 0;
	if (!json_is_array(addrs))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: status.addresses is not a list",
				     what);
	if (json_array_size(addrs) > KUBE_POD_MAX_NODE_ADDRS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s: more than %d addresses", what,
				     KUBE_POD_MAX_NODE_ADDRS);
	json_array_foreach(addrs, i, e) {
		const char *type, *addr;

		if (!json_is_object(e))
			return sigil_err_set(err, SIGIL_E_CORRUPT,
					     "%s: status.addresses[%zu] is not an object", what, i);
		type = podinfo_opt_str(e, "type", &bad);
		addr = podinfo_opt_str(e, "address", &bad);
		if (bad || !type || !addr)
			return sigil_err_set(err, SIGIL_E_CORRUPT,
					     "%s: status.addresses[%zu] has no type or address", what,
					     i);
		if (strcmp(type, "InternalIP") != 0 && strcmp(type, "ExternalIP") != 0)
			continue;
		if (!podinfo_ip_ok(addr))
			return sigil_err_set(err, SIGIL_E_CORRUPT,
					     "%s: %s \"%s\" is not an IP address", what, type,
					     podinfo_show(addr, q, sizeof(q)));
		r = podinfo_push(&pi->node_ips, &pi->n_node_ips, KUBE_POD_MAX_IPS, addr, what, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int kube_pod_info_from_json(const json_t *pod, const json_t *node, kube_pod_info **ret,
			    sigil_err *err)
{
	_cleanup_(kube_pod_info_freep) kube_pod_info *pi = sigil_calloc(1, sizeof(*pi));
	int r;

	if (!pi)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = podinfo_parse_pod(pod, pi, err);
	if (r == 0 && node)
		r = podinfo_parse_node(node, pi, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(pi);
	return 0;
}

/* ---- listener volumes ------------------------------------------------------------- */

int kube_pod_volume_claim_name(const json_t *pod, const char *volume_name, char **ret,
			       sigil_err *err)
{
	const json_t *vols, *vol = NULL, *pvc;
	const char *pod_name, *claim;
	char q[80];
	bool bad = false;
	size_t i;
	json_t *e;
	char *out;
	int n;

	pod_name = podinfo_opt_str(json_object_get(pod, "metadata"), "name", &bad);
	if (bad || !pod_name || !podinfo_dns_name_ok(pod_name))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "the Pod has no valid metadata.name");
	if (!volume_name || !podinfo_label_ok(volume_name, strnlen(volume_name, 64)))
		return sigil_err_set(err, SIGIL_E_INVALID, "\"%s\" is not a volume name",
				     podinfo_show(volume_name, q, sizeof(q)));
	vols = json_object_get(json_object_get(pod, "spec"), "volumes");
	if (vols && !json_is_array(vols))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "Pod %s: spec.volumes is not a list",
				     pod_name);
	if (json_array_size(vols) > KUBE_POD_MAX_VOLUMES)
		return sigil_err_set(err, SIGIL_E_LIMIT, "Pod %s: more than %d volumes", pod_name,
				     KUBE_POD_MAX_VOLUMES);
	json_array_foreach(vols, i, e) {
		bool vbad = false; /* a volume without a readable name is not ours */
		const char *vn = json_is_object(e) ? podinfo_opt_str(e, "name", &vbad) : NULL;

		if (vn && !strcmp(vn, volume_name)) {
			vol = e;
			break;
		}
	}
	if (!vol)
		return sigil_err_set(err, SIGIL_E_PRECOND,
				     "scope listener-volume=%s: Pod %s has no volume named %s",
				     volume_name, pod_name, volume_name);
	if (json_is_object(json_object_get(vol, "ephemeral"))) {
		/* Kubernetes names an ephemeral volume's PVC <pod>-<volume>. */
		size_t len = strlen(pod_name) + 1 + strlen(volume_name) + 1;

		out = malloc(len);
		if (!out)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		n = snprintf(out, len, "%s-%s", pod_name, volume_name);
		if (n < 0 || (size_t)n >= len || (size_t)n > KUBE_MAX_NAME) {
			free(out);
			return sigil_err_set(err, SIGIL_E_LIMIT,
					     "scope listener-volume=%s: the PVC name of Pod %s's "
					     "ephemeral volume exceeds %d bytes",
					     volume_name, pod_name, KUBE_MAX_NAME);
		}
		*ret = out;
		return 0;
	}
	pvc = json_object_get(vol, "persistentVolumeClaim");
	claim = json_is_object(pvc) ? podinfo_opt_str(pvc, "claimName", &bad) : NULL;
	if (bad || !claim)
		return sigil_err_set(err, SIGIL_E_PRECOND,
				     "scope listener-volume=%s: volume %s of Pod %s is neither "
				     "ephemeral nor a persistentVolumeClaim",
				     volume_name, volume_name, pod_name);
	if (!podinfo_dns_name_ok(claim))
		return sigil_err_set(err, SIGIL_E_CORRUPT,
				     "Pod %s: volume %s names the claim \"%s\", not a valid name",
				     pod_name, volume_name, podinfo_show(claim, q, sizeof(q)));
	out = strdup(claim);
	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	*ret = out;
	return 0;
}

int kube_pod_listener_from_json(const json_t *listener, const char *volume_name,
				kube_pod_listener *ret, sigil_err *err)
{
	kube_pod_listener l = {0};
	const json_t *addrs;
	const char *name;
	char q[80], what[KUBE_MAX_NAME + 96];
	bool bad = false;
	size_t i;
	json_t *e;
	int r = 0;

	if (!json_is_object(listener))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "the Listener is not a JSON object");
	name = podinfo_opt_str(json_object_get(listener, "metadata"), "name", &bad);
	snprintf(what, sizeof(what), "scope listener-volume=%s: Listener %s",
		 volume_name ? volume_name : "?", podinfo_show(name, q, sizeof(q)));
	addrs = json_object_get(json_object_get(listener, "status"), "ingressAddresses");
	if (addrs && !json_is_null(addrs) && !json_is_array(addrs))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: status.ingressAddresses is not a list",
				     what);
	if (json_array_size(addrs) == 0)
		return sigil_err_set(err, SIGIL_E_PRECOND,
				     "%s has no ingress address yet (is listener-operator running?)",
				     what);
	if (json_array_size(addrs) > KUBE_POD_MAX_LISTENER_ADDRS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s: more than %d ingress addresses", what,
				     KUBE_POD_MAX_LISTENER_ADDRS);
	if (podinfo_dup(&l.volume_name, volume_name ? volume_name : "", err) < 0)
		return SIGIL_E_NOMEM;
	json_array_foreach(addrs, i, e) {
		const char *addr = json_is_object(e) ? podinfo_opt_str(e, "address", &bad) : NULL;
		const char *type = json_is_object(e) ? podinfo_opt_str(e, "addressType", &bad) : NULL;
		bool ok;

		if (bad || !addr) {
			r = sigil_err_set(err, SIGIL_E_CORRUPT,
					  "%s: status.ingressAddresses[%zu] has no address", what, i);
			break;
		}
		/* listener-operator's AddressType: "IP" or "Hostname". */
		if (type && !strcmp(type, "IP"))
			ok = podinfo_ip_ok(addr);
		else if (type && !strcmp(type, "Hostname"))
			ok = podinfo_dns_name_ok(addr);
		else
			ok = podinfo_ip_ok(addr) || podinfo_dns_name_ok(addr);
		if (!ok) {
			r = sigil_err_set(err, SIGIL_E_CORRUPT,
					  "%s: ingress address \"%s\" is not a valid %s", what,
					  podinfo_show(addr, q, sizeof(q)),
					  type && !strcmp(type, "IP") ? "IP address" : "host name");
			break;
		}
		r = podinfo_push(&l.addresses, &l.n_addresses, KUBE_POD_MAX_LISTENER_ADDRS, addr,
				 what, err);
		if (r < 0)
			break;
	}
	if (r < 0) {
		kube_pod_listener_clear(&l);
		return r;
	}
	*ret = l;
	return 0;
}

/* The client's errors as podinfo.h promises them: a timeout is the
 * apiserver being unavailable too; sigil's own credentials being refused
 * is not the caller's authentication failing. */
static int podinfo_api_err(int r, sigil_err *err)
{
	switch (r) {
	case SIGIL_E_TIMEOUT:
		if (err)
			err->code = SIGIL_E_UNAVAIL;
		return SIGIL_E_UNAVAIL;
	case SIGIL_E_UNAUTH:
	case SIGIL_E_PERM:
		sigil_err_prefix(err, "sigil's own Kubernetes credentials were refused (check its "
				      "service account and RBAC): ");
		if (err)
			err->code = SIGIL_E_PRECOND;
		return SIGIL_E_PRECOND;
	default: return r;
	}
}

/* Objects that the listener-operator has not made yet: retry later. */
static int podinfo_listener_api_err(int r, sigil_err *err)
{
	if (r == SIGIL_E_NOTFOUND) {
		if (err)
			err->code = SIGIL_E_PRECOND;
		return SIGIL_E_PRECOND;
	}
	return podinfo_api_err(r, err);
}

static int podinfo_listener_get(kube_client *c, const json_t *pod, const kube_pod_info *pi,
				const char *volume, kube_pod_listener *ret, sigil_err *err)
{
	_cleanup_(podinfo_json_decrefp) json_t *pvc = NULL;
	_cleanup_(podinfo_json_decrefp) json_t *listener = NULL;
	_cleanup_free_ char *pvc_name = NULL;
	const char *lname;
	char q[80];
	bool bad = false;
	int r;

	r = kube_pod_volume_claim_name(pod, volume, &pvc_name, err);
	if (r < 0)
		return r;
	r = kube_client_get(c, &kube_res_pvcs, pi->namespace_, pvc_name, &pvc, err);
	if (r < 0) {
		sigil_err_prefix(err, "scope listener-volume=%s: ", volume);
		return podinfo_listener_api_err(r, err);
	}
	/* Stackable: the annotation names a shared Listener; without it the
	 * Listener made for the volume carries the PVC's name. */
	lname = podinfo_opt_str(json_object_get(json_object_get(pvc, "metadata"), "annotations"),
				KUBE_POD_LISTENER_NAME_ANNOTATION, &bad);
	if (bad || (lname && !podinfo_dns_name_ok(lname)))
		return sigil_err_set(err, SIGIL_E_CORRUPT,
				     "scope listener-volume=%s: PVC %s/%s: annotation %s \"%s\" is "
				     "not a valid name",
				     volume, pi->namespace_, pvc_name, KUBE_POD_LISTENER_NAME_ANNOTATION,
				     podinfo_show(lname, q, sizeof(q)));
	if (!lname)
		lname = pvc_name;
	r = kube_client_get(c, &kube_res_listeners, pi->namespace_, lname, &listener, err);
	if (r < 0) {
		sigil_err_prefix(err, "scope listener-volume=%s: ", volume);
		return podinfo_listener_api_err(r, err);
	}
	return kube_pod_listener_from_json(listener, volume, ret, err);
}

int kube_pod_info_get(kube_client *c, const char *ns, const char *name, bool want_node,
		      const char *const *listener_volumes, size_t n_listener_volumes,
		      kube_pod_info **ret, sigil_err *err)
{
	_cleanup_(podinfo_json_decrefp) json_t *pod = NULL;
	_cleanup_(podinfo_json_decrefp) json_t *node = NULL;
	_cleanup_(kube_pod_info_freep) kube_pod_info *pi = NULL;
	int r;

	if (!c || !ns || !name)
		return sigil_err_set(err, SIGIL_E_INVALID, "a pod namespace and name are required");
	if (n_listener_volumes > KUBE_POD_MAX_LISTENERS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d listener volumes",
				     KUBE_POD_MAX_LISTENERS);
	r = kube_client_get(c, &kube_res_pods, ns, name, &pod, err);
	if (r < 0)
		return podinfo_api_err(r, err);
	r = kube_pod_info_from_json(pod, NULL, &pi, err);
	if (r < 0)
		return r;
	if (strcmp(pi->namespace_, ns) != 0 || strcmp(pi->name, name) != 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT,
				     "asked for Pod %s/%s, the Kubernetes API answered with %s/%s", ns,
				     name, pi->namespace_, pi->name);
	if (want_node) {
		if (!pi->node_name)
			return sigil_err_set(err, SIGIL_E_PRECOND,
					     "scope node: Pod %s/%s is not scheduled on a node yet",
					     ns, name);
		r = kube_client_get(c, &kube_res_nodes, NULL, pi->node_name, &node, err);
		if (r == SIGIL_E_NOTFOUND) {
			if (err)
				err->code = SIGIL_E_PRECOND;
			return SIGIL_E_PRECOND; /* the node went away under the pod */
		}
		if (r < 0)
			return podinfo_api_err(r, err);
		r = podinfo_parse_node(node, pi, err);
		if (r < 0)
			return r;
	}
	if (n_listener_volumes > 0) {
		pi->listeners = sigil_calloc(n_listener_volumes, sizeof(*pi->listeners));
		if (!pi->listeners)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n_listener_volumes; i++) {
		bool seen = false;

		for (size_t j = 0; j < pi->n_listeners; j++)
			if (listener_volumes[i] &&
			    !strcmp(pi->listeners[j].volume_name, listener_volumes[i]))
				seen = true;
		if (seen)
			continue;
		r = podinfo_listener_get(c, pod, pi, listener_volumes[i],
					 &pi->listeners[pi->n_listeners], err);
		if (r < 0)
			return r;
		pi->n_listeners++;
	}
	*ret = TAKE_PTR(pi);
	return 0;
}

void kube_pod_info_identity(const kube_pod_info *pi, ca_identity *id,
			    ca_listener listeners[KUBE_POD_MAX_LISTENERS])
{
	size_t n = pi->n_listeners < KUBE_POD_MAX_LISTENERS ? pi->n_listeners
							     : KUBE_POD_MAX_LISTENERS;

	id->node_name = pi->node_name;
	id->node_ips = (const char *const *)pi->node_ips;
	id->n_node_ips = pi->n_node_ips;
	id->pod_namespace = pi->namespace_;
	id->pod_name = pi->name;
	id->pod_subdomain = pi->subdomain;
	id->pod_hostname = pi->hostname;
	id->pod_ips = (const char *const *)pi->pod_ips;
	id->n_pod_ips = pi->n_pod_ips;
	for (size_t i = 0; i < n; i++)
		listeners[i] = (ca_listener){
		    .volume_name = pi->listeners[i].volume_name,
		    .addresses = (const char *const *)pi->listeners[i].addresses,
		    .n_addresses = pi->listeners[i].n_addresses,
		};
	id->listeners = n ? listeners : NULL;
	id->n_listeners = n;
}

bool kube_pod_info_terminated(const kube_pod_info *pi)
{
	return pi->phase && (!strcmp(pi->phase, "Succeeded") || !strcmp(pi->phase, "Failed"));
}
