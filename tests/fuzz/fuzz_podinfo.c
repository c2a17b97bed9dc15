/* Fuzz target: Pod, Node and Listener objects as the Kubernetes API sends
 * them (kube/podinfo.h).  The input is one JSON document
 *   {"pod": {...}, "node": {...}, "listener": {...}, "volume": "name"}
 * decoded with the client's own flags; whatever is accepted must be fit to
 * become certificate names. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/podinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ip(const char *s)
{
	unsigned char b[16];

	if (!s || (inet_pton(AF_INET, s, b) != 1 && inet_pton(AF_INET6, s, b) != 1))
		abort();
}

/* A DNS name (lower case, digits, '-', '.') of at most 253 bytes. */
static void check_dns(const char *s, size_t max)
{
	size_t n;

	if (!s)
		abort();
	n = strlen(s);
	if (n == 0 || n > max || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
		abort();
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '.'))
			abort();
}

static void check_info(const kube_pod_info *pi, bool with_node)
{
	ca_identity id = {0};
	ca_listener ls[KUBE_POD_MAX_LISTENERS];

	check_dns(pi->name, 253);
	check_dns(pi->namespace_, 63);
	if (pi->node_name)
		check_dns(pi->node_name, 253);
	if (pi->subdomain)
		check_dns(pi->subdomain, 63);
	if (pi->hostname)
		check_dns(pi->hostname, 63);
	if (pi->n_pod_ips > KUBE_POD_MAX_IPS || pi->n_node_ips > KUBE_POD_MAX_IPS)
		abort();
	for (size_t i = 0; i < pi->n_pod_ips; i++)
		check_ip(pi->pod_ips[i]);
	for (size_t i = 0; i < pi->n_node_ips; i++)
		check_ip(pi->node_ips[i]);
	if (!with_node && pi->n_node_ips)
		abort();
	kube_pod_info_identity(pi, &id, ls);
	if (id.pod_name != pi->name || id.n_pod_ips != pi->n_pod_ips)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	const json_t *pod, *node, *listener, *vol;
	kube_pod_info *pi = NULL;
	kube_pod_listener l = {0};
	char *claim = NULL;
	sigil_err err = {0};
	int r;

	if (!doc)
		return 0;
	pod = json_object_get(doc, "pod");
	node = json_object_get(doc, "node");
	listener = json_object_get(doc, "listener");
	vol = json_object_get(doc, "volume");
	r = kube_pod_info_from_json(pod, node, &pi, &err);
	if (r == 0) {
		if (!pi)
			abort();
		check_info(pi, node != NULL);
		kube_pod_info_free(pi);
	} else if (pi || err.code != r || !err.msg[0]) {
		abort();
	}
	if (json_is_string(vol)) {
		r = kube_pod_volume_claim_name(pod, json_string_value(vol), &claim, &err);
		if (r == 0)
			check_dns(claim, 253);
		else if (claim || !err.msg[0])
			abort();
		free(claim);
	}
	r = kube_pod_listener_from_json(listener, json_is_string(vol) ? json_string_value(vol) : "v",
					&l, &err);
	if (r == 0) {
		if (l.n_addresses == 0 || l.n_addresses > KUBE_POD_MAX_LISTENER_ADDRS)
			abort();
		for (size_t i = 0; i < l.n_addresses; i++) {
			unsigned char b[16];

			if (inet_pton(AF_INET, l.addresses[i], b) != 1 &&
			    inet_pton(AF_INET6, l.addresses[i], b) != 1)
				check_dns(l.addresses[i], 253);
		}
	} else if (l.addresses || !err.msg[0]) {
		abort();
	}
	kube_pod_listener_clear(&l);
	json_decref(doc);
	return 0;
}
