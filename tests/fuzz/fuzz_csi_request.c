/* Fuzz target: decoding of gRPC payloads as the CSI and issuer handlers do
 * it (protobuf-c unpack, then the volume context through the attribute
 * parser).  The first byte picks the message type. */
#include <stdint.h>
#include <stdlib.h>

#include "csi/attrs.h"
#include "proto/csi.pb-c.h"
#include "proto/issuer.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void node_publish(const uint8_t *d, size_t n)
{
	Csi__V1__NodePublishVolumeRequest *r = csi__v1__node_publish_volume_request__unpack(NULL, n, d);
	csi_kv kv[CSI_MAX_ATTRS];
	csi_attrs a;

	if (!r)
		return;
	if (r->n_volume_context <= CSI_MAX_ATTRS) {
		for (size_t i = 0; i < r->n_volume_context; i++) {
			kv[i].key = r->volume_context[i]->key;
			kv[i].value = r->volume_context[i]->value;
		}
		if (csi_attrs_parse(kv, r->n_volume_context, &a, NULL) == 0)
			csi_attrs_free(&a);
	}
	csi__v1__node_publish_volume_request__free_unpacked(r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		node_publish(data + 1, size - 1);
		break;
	case 1: {
		Csi__V1__CreateVolumeRequest *r = csi__v1__create_volume_request__unpack(NULL, size - 1, data + 1);
		if (r)
			csi__v1__create_volume_request__free_unpacked(r, NULL);
		break;
	}
	case 2: {
		Sigil__V1__IssueRequest *r = sigil__v1__issue_request__unpack(NULL, size - 1, data + 1);
		if (r)
			sigil__v1__issue_request__free_unpacked(r, NULL);
		break;
	}
	default: {
		Csi__V1__NodeUnpublishVolumeRequest *r =
			csi__v1__node_unpublish_volume_request__unpack(NULL, size - 1, data + 1);
		if (r)
			csi__v1__node_unpublish_volume_request__free_unpacked(r, NULL);
		break;
	}
	}
	return 0;
}
