/* Fuzz target: a PersistentVolumeClaim's annotations as CreateVolume reads
 * them (csi_kube_pvc_filter), then through the volume attribute parser as
 * CreateVolume validates them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csi/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool ours(const char *key)
{
	return !strncmp(key, CSI_ATTR_PREFIX, strlen(CSI_ATTR_PREFIX)) ||
	       !strncmp(key, CSI_ATTR_PREFIX_STACKABLE, strlen(CSI_ATTR_PREFIX_STACKABLE));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *pvc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	csi_kv *kv = NULL;
	size_t n = 0;
	sigil_err err = {0};
	int r;

	if (!pvc)
		return 0;
	r = csi_kube_pvc_filter(pvc, &kv, &n, &err);
	if (r == 0) {
		csi_attrs a;

		/* Only our keys, within the limits, come out. */
		if (n > CSI_MAX_ATTRS || (n && !kv))
			abort();
		for (size_t i = 0; i < n; i++)
			if (!ours(kv[i].key) || strlen(kv[i].key) > CSI_MAX_ATTR_KEY_LEN ||
			    strlen(kv[i].value) > CSI_MAX_ATTR_LEN)
				abort();
		sigil_err e2 = {0};
		r = csi_attrs_parse(kv, n, &a, &e2);
		if (r == 0)
			csi_attrs_free(&a);
		else if (e2.code != r || !e2.msg[0])
			abort();
		csi_kube_kv_free(kv, n);
	} else if (err.code != r || !err.msg[0]) {
		abort();
	}
	json_decref(pvc);
	return 0;
}
