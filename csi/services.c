/* CSI spec v1 services.  Validation follows the spec's error table for each
 * RPC ("MUST" rules are quoted next to the code that obeys them). */
#include "csi/services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "proto/csi.pb-c.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/parse.h"

/* Packs msg into a malloc'ed buffer for the rpc layer. */
static int pack(const ProtobufCMessage *msg, uint8_t **resp, size_t *resp_len)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n ? n : 1);

	if (!buf)
		return SIGIL_E_NOMEM;
	protobuf_c_message_pack(msg, buf);
	*resp = buf;
	*resp_len = n;
	return 0;
}

#define UNPACK(type, fn, req, len, st)                                                   \
	({                                                                               \
		type *_m = fn(NULL, len, req);                                           \
		if (!_m)                                                                 \
			rpc_status_set(st, RPC_INVALID_ARGUMENT, "malformed request");  \
		_m;                                                                      \
	})

/* ---- Identity ------------------------------------------------------------ */

static int GetPluginInfo(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
			 uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	csi_services *s = ctx;
	Csi__V1__GetPluginInfoRequest *in =
		UNPACK(Csi__V1__GetPluginInfoRequest, csi__v1__get_plugin_info_request__unpack, req,
		       req_len, st);
	Csi__V1__GetPluginInfoResponse out = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;

	if (!in)
		return SIGIL_E_INVALID;
	csi__v1__get_plugin_info_request__free_unpacked(in, NULL);
	out.name = (char *)s->driver_name;
	out.vendor_version = (char *)s->version;
	return pack(&out.base, resp, resp_len);
}

static int GetPluginCapabilities(void *ctx, const rpc_call *call, const uint8_t *req,
				 size_t req_len, uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	Csi__V1__GetPluginCapabilitiesRequest *in =
		UNPACK(Csi__V1__GetPluginCapabilitiesRequest,
		       csi__v1__get_plugin_capabilities_request__unpack, req, req_len, st);
	Csi__V1__GetPluginCapabilitiesResponse out = CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__PluginCapability caps[2] = {CSI__V1__PLUGIN_CAPABILITY__INIT,
					     CSI__V1__PLUGIN_CAPABILITY__INIT};
	Csi__V1__PluginCapability__Service svc[2] = {CSI__V1__PLUGIN_CAPABILITY__SERVICE__INIT,
						     CSI__V1__PLUGIN_CAPABILITY__SERVICE__INIT};
	Csi__V1__PluginCapability *list[2] = {&caps[0], &caps[1]};

	if (!in)
		return SIGIL_E_INVALID;
	csi__v1__get_plugin_capabilities_request__free_unpacked(in, NULL);
	svc[0].type = CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__CONTROLLER_SERVICE;
	svc[1].type = CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__VOLUME_ACCESSIBILITY_CONSTRAINTS;
	for (int i = 0; i < 2; i++) {
		caps[i].type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
		caps[i].service = &svc[i];
	}
	out.n_capabilities = 2;
	out.capabilities = list;
	return pack(&out.base, resp, resp_len);
}

static int Probe(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
		 uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	csi_services *s = ctx;
	Csi__V1__ProbeRequest *in =
		UNPACK(Csi__V1__ProbeRequest, csi__v1__probe_request__unpack, req, req_len, st);
	Csi__V1__ProbeResponse out = CSI__V1__PROBE_RESPONSE__INIT;
	Google__Protobuf__BoolValue ready = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;

	if (!in)
		return SIGIL_E_INVALID;
	csi__v1__probe_request__free_unpacked(in, NULL);
	/* Ready only when the CA can sign. */
	ready.value = csi_node_ready(s->node);
	out.ready = &ready;
	return pack(&out.base, resp, resp_len);
}

/* ---- Controller ---------------------------------------------------------- */

static bool capability_ok(const Csi__V1__VolumeCapability *c, rpc_status *st)
{
	if (!c)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "volume capability is required"), false;
	if (c->access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
				      "block access is not supported: secret volumes are mounts"),
		       false;
	if (c->access_type_case != CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
				      "volume capability needs an access type (mount)"),
		       false;
	if (!c->access_mode)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "volume capability needs an access mode"),
		       false;
	return true;
}

/* Volume ids derive from the CreateVolume name, so a repeated CreateVolume
 * returns the same volume (CSI spec: CreateVolume MUST be idempotent). */
static void volume_id_for(const char *name, char out[48])
{
	unsigned char md[32];
	unsigned int l = 0;

	EVP_Digest(name, strlen(name), md, &l, EVP_sha256(), NULL);
	memcpy(out, "sigil-", 6);
	for (int i = 0; i < 16; i++)
		snprintf(out + 6 + 2 * i, 3, "%02x", md[i]);
}

/* The setting a volume attribute key names, whichever prefix it uses
 * ("secrets.stackable.tech/scope" -> "scope"); NULL for other keys. */
static const char *attr_setting(const char *key)
{
	if (!strncmp(key, CSI_ATTR_PREFIX, strlen(CSI_ATTR_PREFIX)))
		return key + strlen(CSI_ATTR_PREFIX);
	if (!strncmp(key, CSI_ATTR_PREFIX_STACKABLE, strlen(CSI_ATTR_PREFIX_STACKABLE)))
		return key + strlen(CSI_ATTR_PREFIX_STACKABLE);
	return NULL;
}

static bool annotated(const csi_kv *ann, size_t n_ann, const char *setting)
{
	for (size_t i = 0; i < n_ann; i++) {
		const char *s = attr_setting(ann[i].key);
		if (s && !strcmp(s, setting))
			return true;
	}
	return false;
}

static const char *param_get(const Csi__V1__CreateVolumeRequest *in, const char *key)
{
	for (size_t i = 0; i < in->n_parameters; i++)
		if (!strcmp(in->parameters[i]->key, key))
			return in->parameters[i]->value;
	return NULL;
}

/* The volume context of a new volume.  Without a Kubernetes API: the
 * parameters, as they are.  With one, and the PVC named by
 * external-provisioner's --extra-create-metadata parameters: the PVC's
 * secrets.sigil.dev/ and secrets.stackable.tech/ annotations, which is
 * where an ephemeral volumeClaimTemplate carries the volume attributes
 * (Stackable's controller.rs copies the PVC annotations the same way), on
 * top of the StorageClass parameters.  Rule: a PVC annotation overrides
 * the parameter for the same setting under either prefix (the PVC is the
 * more specific of the two); csi.storage.k8s.io/ parameters describe the
 * PVC and stay out (the kubelet adds its own pod keys at publish).  The
 * result is validated like NodePublishVolume's attributes so that a broken
 * PVC fails here, at provisioning, not at mount.
 * *ret borrows from in and from *ann (owned by the caller). */
static int create_volume_context(csi_services *s, const Csi__V1__CreateVolumeRequest *in,
				 csi_kv **ret, size_t *n, csi_kv **ann, size_t *n_ann,
				 rpc_status *st)
{
	const char *pvc = param_get(in, CSI_KUBE_PARAM_PVC_NAME);
	const char *pvc_ns = param_get(in, CSI_KUBE_PARAM_PVC_NAMESPACE);
	csi_kv *kv = NULL;
	csi_attrs attrs;
	sigil_err err = {0};
	size_t count = 0;
	int r;

	*ann = NULL;
	*n_ann = 0;
	if (s->kube && (pvc || pvc_ns)) {
		if (!pvc || !*pvc || !pvc_ns || !*pvc_ns) {
			rpc_status_set(st, RPC_INVALID_ARGUMENT,
				       "parameters " CSI_KUBE_PARAM_PVC_NAME " and " CSI_KUBE_PARAM_PVC_NAMESPACE
				       " must be given together (external-provisioner "
				       "--extra-create-metadata)");
			return SIGIL_E_INVALID;
		}
		r = csi_kube_pvc_attributes(s->kube, pvc_ns, pvc, ann, n_ann, &err);
		if (r < 0) {
			/* A PVC that is gone is NOT_FOUND, a final error for
			 * external-provisioner (no retry storm, Stackable's
			 * secret-operator issue #722); an unreachable
			 * apiserver is UNAVAILABLE and retried. */
			log_warn("CreateVolume %s: PVC %s/%s: %s", in->name, pvc_ns, pvc, err.msg);
			rpc_status_from_err(st, r, &err);
			return r;
		}
	}
	kv = sigil_calloc(in->n_parameters + *n_ann, sizeof(*kv));
	if (!kv)
		return SIGIL_E_NOMEM;
	for (size_t i = 0; i < in->n_parameters; i++) {
		const char *key = in->parameters[i]->key, *setting = attr_setting(key);

		if (s->kube && pvc) {
			if (!strncmp(key, CSI_ATTR_PREFIX_K8S, strlen(CSI_ATTR_PREFIX_K8S)))
				continue;
			if (setting && annotated(*ann, *n_ann, setting))
				continue;
		}
		kv[count++] = (csi_kv){key, in->parameters[i]->value};
	}
	for (size_t i = 0; i < *n_ann; i++)
		kv[count++] = (*ann)[i];
	if (s->kube && pvc) {
		r = csi_attrs_parse(kv, count, &attrs, &err);
		if (r < 0) {
			free(kv);
			log_warn("CreateVolume %s: PVC %s/%s: %s", in->name, pvc_ns, pvc, err.msg);
			rpc_status_set(st, RPC_INVALID_ARGUMENT, "PVC %s/%s: %s", pvc_ns, pvc, err.msg);
			return r;
		}
		csi_attrs_free(&attrs);
	}
	*ret = kv;
	*n = count;
	return 0;
}

static int CreateVolume(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
			uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	csi_services *s = ctx;
	Csi__V1__CreateVolumeRequest *in =
		UNPACK(Csi__V1__CreateVolumeRequest, csi__v1__create_volume_request__unpack, req,
		       req_len, st);
	Csi__V1__CreateVolumeResponse out = CSI__V1__CREATE_VOLUME_RESPONSE__INIT;
	Csi__V1__Volume vol = CSI__V1__VOLUME__INIT;
	Csi__V1__Volume__VolumeContextEntry *entries = NULL, **eptrs = NULL;
	Csi__V1__Topology *topo = NULL;
	csi_kv *ctxkv = NULL, *ann = NULL;
	size_t n_ctx = 0, n_ann = 0;
	char id[48];
	int r = SIGIL_E_INVALID;

	if (!in)
		return SIGIL_E_INVALID;
	/* CSI spec: name and volume_capabilities are REQUIRED. */
	if (!in->name || !*in->name) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "name is required");
		goto out;
	}
	if (strlen(in->name) > CSI_MAX_VOLUME_ID_LEN) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "name is too long");
		goto out;
	}
	if (in->n_volume_capabilities == 0) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "volume_capabilities are required");
		goto out;
	}
	for (size_t i = 0; i < in->n_volume_capabilities; i++)
		if (!capability_ok(in->volume_capabilities[i], st))
			goto out;
	if (in->volume_content_source) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "volume content sources are not supported");
		goto out;
	}
	if (in->n_parameters > CSI_MAX_ATTRS) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "too many parameters (limit %d)", CSI_MAX_ATTRS);
		goto out;
	}
	volume_id_for(in->name, id);
	r = create_volume_context(s, in, &ctxkv, &n_ctx, &ann, &n_ann, st);
	if (r < 0)
		goto out;
	entries = sigil_calloc(n_ctx, sizeof(*entries));
	eptrs = sigil_calloc(n_ctx, sizeof(*eptrs));
	if (!entries || !eptrs) {
		r = SIGIL_E_NOMEM;
		goto out;
	}
	/* This becomes the volume context that NodePublishVolume sees. */
	for (size_t i = 0; i < n_ctx; i++) {
		Csi__V1__Volume__VolumeContextEntry e = CSI__V1__VOLUME__VOLUME_CONTEXT_ENTRY__INIT;
		e.key = (char *)ctxkv[i].key;
		e.value = (char *)ctxkv[i].value;
		entries[i] = e;
		eptrs[i] = &entries[i];
	}
	vol.volume_id = id;
	vol.capacity_bytes = in->capacity_range ? in->capacity_range->required_bytes : 0;
	vol.n_volume_context = n_ctx;
	vol.volume_context = eptrs;
	/* The volume lives on the node the pod was scheduled to. */
	if (in->accessibility_requirements) {
		Csi__V1__TopologyRequirement *t = in->accessibility_requirements;
		if (t->n_preferred)
			topo = t->preferred[0];
		else if (t->n_requisite)
			topo = t->requisite[0];
	}
	if (topo) {
		vol.n_accessible_topology = 1;
		vol.accessible_topology = &topo;
	}
	out.volume = &vol;
	r = pack(&out.base, resp, resp_len);
out:
	free(entries);
	free(eptrs);
	free(ctxkv);
	csi_kube_kv_free(ann, n_ann);
	csi__v1__create_volume_request__free_unpacked(in, NULL);
	return r;
}

static int DeleteVolume(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
			uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	Csi__V1__DeleteVolumeRequest *in =
		UNPACK(Csi__V1__DeleteVolumeRequest, csi__v1__delete_volume_request__unpack, req,
		       req_len, st);
	Csi__V1__DeleteVolumeResponse out = CSI__V1__DELETE_VOLUME_RESPONSE__INIT;
	bool ok;

	if (!in)
		return SIGIL_E_INVALID;
	ok = in->volume_id && *in->volume_id;
	csi__v1__delete_volume_request__free_unpacked(in, NULL);
	if (!ok)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "volume_id is required"), SIGIL_E_INVALID;
	/* Nothing is stored per volume on the controller side: deleting an
	 * unknown volume succeeds (CSI spec: DeleteVolume MUST be idempotent). */
	return pack(&out.base, resp, resp_len);
}

static int ControllerGetCapabilities(void *ctx, const rpc_call *call, const uint8_t *req,
				     size_t req_len, uint8_t **resp, size_t *resp_len,
				     rpc_status *st)
{
	Csi__V1__ControllerGetCapabilitiesRequest *in =
		UNPACK(Csi__V1__ControllerGetCapabilitiesRequest,
		       csi__v1__controller_get_capabilities_request__unpack, req, req_len, st);
	Csi__V1__ControllerGetCapabilitiesResponse out =
		CSI__V1__CONTROLLER_GET_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__ControllerServiceCapability cap = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__INIT;
	Csi__V1__ControllerServiceCapability__RPC rpc = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__INIT;
	Csi__V1__ControllerServiceCapability *list[1] = {&cap};

	if (!in)
		return SIGIL_E_INVALID;
	csi__v1__controller_get_capabilities_request__free_unpacked(in, NULL);
	rpc.type = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__CREATE_DELETE_VOLUME;
	cap.type_case = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__TYPE_RPC;
	cap.rpc = &rpc;
	out.n_capabilities = 1;
	out.capabilities = list;
	return pack(&out.base, resp, resp_len);
}

static int ValidateVolumeCapabilities(void *ctx, const rpc_call *call, const uint8_t *req,
				      size_t req_len, uint8_t **resp, size_t *resp_len,
				      rpc_status *st)
{
	Csi__V1__ValidateVolumeCapabilitiesRequest *in =
		UNPACK(Csi__V1__ValidateVolumeCapabilitiesRequest,
		       csi__v1__validate_volume_capabilities_request__unpack, req, req_len, st);
	Csi__V1__ValidateVolumeCapabilitiesResponse out =
		CSI__V1__VALIDATE_VOLUME_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__ValidateVolumeCapabilitiesResponse__Confirmed conf =
		CSI__V1__VALIDATE_VOLUME_CAPABILITIES_RESPONSE__CONFIRMED__INIT;
	rpc_status tmp;
	int r = SIGIL_E_INVALID;
	bool all = true;

	if (!in)
		return SIGIL_E_INVALID;
	if (!in->volume_id || !*in->volume_id) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "volume_id is required");
		goto out;
	}
	if (in->n_volume_capabilities == 0) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "volume_capabilities are required");
		goto out;
	}
	for (size_t i = 0; i < in->n_volume_capabilities; i++)
		all = all && capability_ok(in->volume_capabilities[i], &tmp);
	if (all) {
		conf.n_volume_capabilities = in->n_volume_capabilities;
		conf.volume_capabilities = in->volume_capabilities;
		conf.n_volume_context = in->n_volume_context;
		conf.volume_context = (Csi__V1__ValidateVolumeCapabilitiesResponse__Confirmed__VolumeContextEntry **)
					      in->volume_context;
		conf.n_parameters = in->n_parameters;
		conf.parameters = (Csi__V1__ValidateVolumeCapabilitiesResponse__Confirmed__ParametersEntry **)
					  in->parameters;
		out.confirmed = &conf;
	} else {
		out.message = "only mount access is supported";
	}
	r = pack(&out.base, resp, resp_len);
out:
	csi__v1__validate_volume_capabilities_request__free_unpacked(in, NULL);
	return r;
}

/* ---- Node ---------------------------------------------------------------- */

static int NodePublishVolume(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
			     uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	csi_services *s = ctx;
	Csi__V1__NodePublishVolumeRequest *in =
		UNPACK(Csi__V1__NodePublishVolumeRequest, csi__v1__node_publish_volume_request__unpack,
		       req, req_len, st);
	Csi__V1__NodePublishVolumeResponse out = CSI__V1__NODE_PUBLISH_VOLUME_RESPONSE__INIT;
	csi_publish_request pr = {0};
	csi_publish_result res = {0};
	csi_kv *kv = NULL;
	sigil_err err = {0};
	int64_t t0 = sigil_mono_ns();
	int r = SIGIL_E_INVALID;

	if (!in) {
		csi_watch_report_published(s->report, false, (double)(sigil_mono_ns() - t0) / 1e9);
		return SIGIL_E_INVALID;
	}
	/* CSI spec: volume_id, target_path and volume_capability are REQUIRED
	 * (INVALID_ARGUMENT when missing). */
	if (!*in->volume_id) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "volume_id is required");
		goto out;
	}
	if (!*in->target_path) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "target_path is required");
		goto out;
	}
	if (!capability_ok(in->volume_capability, st))
		goto out;
	if (in->n_volume_context > CSI_MAX_ATTRS) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "too many volume attributes (limit %d)",
			       CSI_MAX_ATTRS);
		goto out;
	}
	const char *group = in->volume_capability->mount->volume_mount_group;
	if (group && *group) {
		int64_t gid;
		if (sigil_parse_int64(group, 0, 0x7fffffff, &gid) < 0) {
			rpc_status_set(st, RPC_INVALID_ARGUMENT,
				       "volume_mount_group '%s' is not a numeric group id", group);
			goto out;
		}
		pr.has_fs_group = true;
		pr.fs_group = (gid_t)gid;
	}
	kv = sigil_calloc(in->n_volume_context, sizeof(*kv));
	if (!kv) {
		r = SIGIL_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < in->n_volume_context; i++) {
		kv[i].key = in->volume_context[i]->key;
		kv[i].value = in->volume_context[i]->value;
	}
	pr.volume_id = in->volume_id;
	pr.target_path = in->target_path;
	pr.readonly = in->readonly;
	pr.attrs = kv;
	pr.n_attrs = in->n_volume_context;
	r = csi_node_publish(s->node, &pr, &res, &err);
	if (r < 0) {
		log_warn("NodePublishVolume %s -> %s: %s", in->volume_id, in->target_path, err.msg);
		rpc_status_from_err(st, r, &err);
		goto out;
	}
	if (res.already_published)
		log_info("NodePublishVolume %s -> %s: already published", in->volume_id, in->target_path);
	else
		log_info("NodePublishVolume %s -> %s: %zu files, notAfter %lld%s", in->volume_id,
			 in->target_path, res.n_files, (long long)res.not_after,
			 res.key_from_pool ? ", pooled key" : "");
	r = pack(&out.base, resp, resp_len);
out:
	csi_watch_report_published(s->report, r == 0, (double)(sigil_mono_ns() - t0) / 1e9);
	free(kv);
	csi__v1__node_publish_volume_request__free_unpacked(in, NULL);
	return r;
}

static int NodeUnpublishVolume(void *ctx, const rpc_call *call, const uint8_t *req,
			       size_t req_len, uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	csi_services *s = ctx;
	Csi__V1__NodeUnpublishVolumeRequest *in =
		UNPACK(Csi__V1__NodeUnpublishVolumeRequest,
		       csi__v1__node_unpublish_volume_request__unpack, req, req_len, st);
	Csi__V1__NodeUnpublishVolumeResponse out = CSI__V1__NODE_UNPUBLISH_VOLUME_RESPONSE__INIT;
	sigil_err err = {0};
	int r;

	if (!in)
		return SIGIL_E_INVALID;
	r = csi_node_unpublish(s->node, in->volume_id, in->target_path, &err);
	if (r < 0) {
		log_warn("NodeUnpublishVolume %s %s: %s", in->volume_id, in->target_path, err.msg);
		rpc_status_from_err(st, r, &err);
	} else {
		log_info("NodeUnpublishVolume %s %s", in->volume_id, in->target_path);
		r = pack(&out.base, resp, resp_len);
	}
	csi__v1__node_unpublish_volume_request__free_unpacked(in, NULL);
	return r;
}

static int NodeGetCapabilities(void *ctx, const rpc_call *call, const uint8_t *req,
			       size_t req_len, uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	Csi__V1__NodeGetCapabilitiesRequest *in =
		UNPACK(Csi__V1__NodeGetCapabilitiesRequest,
		       csi__v1__node_get_capabilities_request__unpack, req, req_len, st);
	Csi__V1__NodeGetCapabilitiesResponse out = CSI__V1__NODE_GET_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__NodeServiceCapability cap = CSI__V1__NODE_SERVICE_CAPABILITY__INIT;
	Csi__V1__NodeServiceCapability__RPC rpc = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__INIT;
	Csi__V1__NodeServiceCapability *list[1] = {&cap};

	if (!in)
		return SIGIL_E_INVALID;
	csi__v1__node_get_capabilities_request__free_unpacked(in, NULL);
	/* The kubelet passes fsGroup as volume_mount_group, and does not
	 * chown the files itself. */
	rpc.type = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__VOLUME_MOUNT_GROUP;
	cap.type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
	cap.rpc = &rpc;
	out.n_capabilities = 1;
	out.capabilities = list;
	return pack(&out.base, resp, resp_len);
}

static int NodeGetInfo(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
		       uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	csi_services *s = ctx;
	Csi__V1__NodeGetInfoRequest *in = UNPACK(Csi__V1__NodeGetInfoRequest,
						 csi__v1__node_get_info_request__unpack, req,
						 req_len, st);
	Csi__V1__NodeGetInfoResponse out = CSI__V1__NODE_GET_INFO_RESPONSE__INIT;
	Csi__V1__Topology topo = CSI__V1__TOPOLOGY__INIT;
	Csi__V1__Topology__SegmentsEntry seg = CSI__V1__TOPOLOGY__SEGMENTS_ENTRY__INIT;
	Csi__V1__Topology__SegmentsEntry *segs[1] = {&seg};
	char key[300];

	if (!in)
		return SIGIL_E_INVALID;
	csi__v1__node_get_info_request__free_unpacked(in, NULL);
	snprintf(key, sizeof(key), "%s/node", s->driver_name);
	seg.key = key;
	seg.value = (char *)csi_node_id(s->node);
	topo.n_segments = 1;
	topo.segments = segs;
	out.node_id = (char *)csi_node_id(s->node);
	out.max_volumes_per_node = s->max_volumes_per_node;
	out.accessible_topology = &topo;
	return pack(&out.base, resp, resp_len);
}

size_t csi_services_methods(csi_services *s, rpc_method *m)
{
	size_t n = 0;

#define M(svc, name) m[n++] = (rpc_method){"/csi.v1." svc "/" #name, name, s}
	M("Identity", GetPluginInfo);
	M("Identity", GetPluginCapabilities);
	M("Identity", Probe);
	M("Controller", CreateVolume);
	M("Controller", DeleteVolume);
	M("Controller", ControllerGetCapabilities);
	M("Controller", ValidateVolumeCapabilities);
	M("Node", NodePublishVolume);
	M("Node", NodeUnpublishVolume);
	M("Node", NodeGetCapabilities);
	M("Node", NodeGetInfo);
#undef M
	return n;
}
