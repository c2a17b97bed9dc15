/* sigilctl publish / unpublish / info: speak CSI to a plugin's socket
 * exactly as the kubelet does. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csi/attrs.h"
#include "proto/csi.pb-c.h"
#include "rpc/client.h"
#include "tools/sigilctl.h"
#include "util/mem.h"
#include "util/parse.h"

#define CTL_TIMEOUT_MS 60000
#define CTL_MAX_ATTRS 64

static const char *target_of(const char *endpoint, char *buf, size_t len)
{
	/* gRPC wants unix:/abs/path or unix:///abs/path; accept a bare path too. */
	if (!strncmp(endpoint, "unix:", 5))
		return endpoint;
	snprintf(buf, len, "unix:%s", endpoint);
	return buf;
}

static int call(const char *endpoint, const char *method, const ProtobufCMessage *req,
		uint8_t **resp, size_t *resp_len)
{
	char tbuf[600];
	rpc_client_config cc = {.target = target_of(endpoint, tbuf, sizeof(tbuf))};
	rpc_client *c = NULL;
	rpc_status st = {0};
	sigil_err err = {0};
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = malloc(n ? n : 1);
	int r;

	if (!buf)
		return -1;
	protobuf_c_message_pack(req, buf);
	r = rpc_client_new(&cc, &c, &err);
	if (r == 0)
		r = rpc_client_call(c, method, buf, n, NULL, 0, CTL_TIMEOUT_MS, &st, resp, resp_len, &err);
	sigil_freezero(buf, n);
	rpc_client_free(c);
	if (r < 0) {
		fprintf(stderr, "sigilctl: %s: %s\n", method, err.msg);
		return -1;
	}
	if (st.code != RPC_OK) {
		fprintf(stderr, "sigilctl: %s failed: %s: %s\n", method, rpc_code_name(st.code), st.msg);
		return -st.code;
	}
	return 0;
}

int sigilctl_cmd_publish(int argc, char **argv)
{
	static const struct option lo[] = {
		{"endpoint", required_argument, 0, 'e'},
		{"volume-id", required_argument, 0, 'v'},
		{"target", required_argument, 0, 't'},
		{"attr", required_argument, 0, 'a'},
		{"readonly", no_argument, 0, 'r'},
		{"fs-group", required_argument, 0, 'g'},
		{"pod", required_argument, 0, 'p'},
		{"namespace", required_argument, 0, 'n'},
		{"help", no_argument, 0, 'h'},
		{0},
	};
	const char *endpoint = NULL, *vid = NULL, *target = NULL, *group = NULL;
	const char *pod = NULL, *ns = NULL;
	char *keys[CTL_MAX_ATTRS + 2];
	const char *vals[CTL_MAX_ATTRS + 2];
	size_t n = 0;
	bool ro = false;
	int c, rc = SIGILCTL_EXIT_USAGE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'e': endpoint = optarg; break;
		case 'v': vid = optarg; break;
		case 't': target = optarg; break;
		case 'r': ro = true; break;
		case 'g': group = optarg; break;
		case 'p': pod = optarg; break;
		case 'n': ns = optarg; break;
		case 'a': {
			const char *eq = strchr(optarg, '=');
			if (!eq || n >= CTL_MAX_ATTRS) {
				fprintf(stderr, "sigilctl publish: --attr wants KEY=VALUE (at most %d)\n",
					CTL_MAX_ATTRS);
				goto out;
			}
			keys[n] = sigil_strndup(optarg, (size_t)(eq - optarg));
			vals[n] = eq + 1;
			/* Short keys get our prefix: --attr class=tls. */
			if (keys[n] && !strchr(keys[n], '/')) {
				size_t l = strlen(CSI_ATTR_PREFIX) + strlen(keys[n]) + 1;
				char *full = malloc(l);
				if (full)
					snprintf(full, l, "%s%s", CSI_ATTR_PREFIX, keys[n]);
				free(keys[n]);
				keys[n] = full;
			}
			if (!keys[n])
				goto out;
			n++;
			break;
		}
		case 'h':
			printf("usage: sigilctl publish --endpoint SOCK --volume-id ID --target DIR "
			       "[--attr KEY=VALUE]... [--pod NAME --namespace NS] [--fs-group GID] [--readonly]\n");
			rc = SIGILCTL_EXIT_OK;
			goto out;
		default: goto out;
		}
	}
	if (!endpoint || !vid || !target) {
		fprintf(stderr, "sigilctl publish: --endpoint, --volume-id and --target are required\n");
		goto out;
	}
	/* The kubelet adds pod information when podInfoOnMount is set. */
	if (pod) {
		keys[n] = strdup(CSI_ATTR_PREFIX_K8S "pod.name");
		vals[n++] = pod;
	}
	if (ns) {
		keys[n] = strdup(CSI_ATTR_PREFIX_K8S "pod.namespace");
		vals[n++] = ns;
	}
	{
		Csi__V1__NodePublishVolumeRequest req = CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__INIT;
		Csi__V1__VolumeCapability cap = CSI__V1__VOLUME_CAPABILITY__INIT;
		Csi__V1__VolumeCapability__MountVolume mnt = CSI__V1__VOLUME_CAPABILITY__MOUNT_VOLUME__INIT;
		Csi__V1__VolumeCapability__AccessMode mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__INIT;
		Csi__V1__NodePublishVolumeRequest__VolumeContextEntry e[CTL_MAX_ATTRS + 2];
		Csi__V1__NodePublishVolumeRequest__VolumeContextEntry *ep[CTL_MAX_ATTRS + 2];
		uint8_t *resp = NULL;
		size_t rl = 0;

		mode.mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER;
		if (group)
			mnt.volume_mount_group = (char *)group;
		cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
		cap.mount = &mnt;
		cap.access_mode = &mode;
		for (size_t i = 0; i < n; i++) {
			Csi__V1__NodePublishVolumeRequest__VolumeContextEntry x =
				CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__VOLUME_CONTEXT_ENTRY__INIT;
			x.key = keys[i];
			x.value = (char *)vals[i];
			e[i] = x;
			ep[i] = &e[i];
		}
		req.volume_id = (char *)vid;
		req.target_path = (char *)target;
		req.readonly = ro;
		req.volume_capability = &cap;
		req.n_volume_context = n;
		req.volume_context = ep;
		if (call(endpoint, "/csi.v1.Node/NodePublishVolume", &req.base, &resp, &rl) == 0) {
			printf("published %s at %s\n", vid, target);
			rc = SIGILCTL_EXIT_OK;
		} else {
			rc = SIGILCTL_EXIT_FAIL;
		}
		free(resp);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	return rc;
}

int sigilctl_cmd_unpublish(int argc, char **argv)
{
	static const struct option lo[] = {
		{"endpoint", required_argument, 0, 'e'},
		{"volume-id", required_argument, 0, 'v'},
		{"target", required_argument, 0, 't'},
		{0},
	};
	Csi__V1__NodeUnpublishVolumeRequest req = CSI__V1__NODE_UNPUBLISH_VOLUME_REQUEST__INIT;
	const char *endpoint = NULL;
	uint8_t *resp = NULL;
	size_t rl = 0;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'e': endpoint = optarg; break;
		case 'v': req.volume_id = optarg; break;
		case 't': req.target_path = optarg; break;
		default: return SIGILCTL_EXIT_USAGE;
		}
	}
	if (!endpoint) {
		fprintf(stderr, "usage: sigilctl unpublish --endpoint SOCK --volume-id ID --target DIR\n");
		return SIGILCTL_EXIT_USAGE;
	}
	if (call(endpoint, "/csi.v1.Node/NodeUnpublishVolume", &req.base, &resp, &rl) < 0)
		return SIGILCTL_EXIT_FAIL;
	free(resp);
	printf("unpublished %s from %s\n", req.volume_id, req.target_path);
	return SIGILCTL_EXIT_OK;
}

int sigilctl_cmd_info(int argc, char **argv)
{
	static const struct option lo[] = {{"endpoint", required_argument, 0, 'e'}, {0}};
	const char *endpoint = NULL;
	uint8_t *resp = NULL;
	size_t rl = 0;
	int c, rc = SIGILCTL_EXIT_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c != 'e')
			return SIGILCTL_EXIT_USAGE;
		endpoint = optarg;
	}
	if (!endpoint) {
		fprintf(stderr, "usage: sigilctl info --endpoint SOCK\n");
		return SIGILCTL_EXIT_USAGE;
	}
	Csi__V1__GetPluginInfoRequest pi = CSI__V1__GET_PLUGIN_INFO_REQUEST__INIT;
	if (call(endpoint, "/csi.v1.Identity/GetPluginInfo", &pi.base, &resp, &rl) == 0) {
		Csi__V1__GetPluginInfoResponse *r = csi__v1__get_plugin_info_response__unpack(NULL, rl, resp);
		if (r) {
			printf("driver:   %s %s\n", r->name, r->vendor_version);
			csi__v1__get_plugin_info_response__free_unpacked(r, NULL);
		}
	} else {
		rc = SIGILCTL_EXIT_FAIL;
	}
	free(resp);
	resp = NULL;
	Csi__V1__ProbeRequest pr = CSI__V1__PROBE_REQUEST__INIT;
	if (call(endpoint, "/csi.v1.Identity/Probe", &pr.base, &resp, &rl) == 0) {
		Csi__V1__ProbeResponse *r = csi__v1__probe_response__unpack(NULL, rl, resp);
		if (r) {
			printf("ready:    %s\n", r->ready && r->ready->value ? "yes" : "no");
			csi__v1__probe_response__free_unpacked(r, NULL);
		}
	} else {
		rc = SIGILCTL_EXIT_FAIL;
	}
	free(resp);
	resp = NULL;
	Csi__V1__NodeGetInfoRequest ni = CSI__V1__NODE_GET_INFO_REQUEST__INIT;
	if (call(endpoint, "/csi.v1.Node/NodeGetInfo", &ni.base, &resp, &rl) == 0) {
		Csi__V1__NodeGetInfoResponse *r = csi__v1__node_get_info_response__unpack(NULL, rl, resp);
		if (r) {
			printf("node id:  %s\n", r->node_id);
			for (size_t i = 0; r->accessible_topology && i < r->accessible_topology->n_segments; i++)
				printf("topology: %s=%s\n", r->accessible_topology->segments[i]->key,
				       r->accessible_topology->segments[i]->value);
			csi__v1__node_get_info_response__free_unpacked(r, NULL);
		}
	} else {
		rc = SIGILCTL_EXIT_FAIL;
	}
	free(resp);
	return rc;
}
