/* Fuzz target: Secret and ConfigMap objects as the mirror reads them
 * (kube_secrets_decode_object), and base64. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ca/server/kube_secrets.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_items(const kube_secrets_item *it, size_t n)
{
	size_t total = 0;

	if (n > KUBE_SECRETS_MAX_KEYS)
		abort();
	for (size_t i = 0; i < n; i++) {
		/* Every key is a plain file name inside the object's directory. */
		if (!kube_secrets_key_ok(it[i].key) || strchr(it[i].key, '/'))
			abort();
		if (i > 0 && strcmp(it[i - 1].key, it[i].key) >= 0)
			abort();
		if (it[i].len > KUBE_SECRETS_MAX_VALUE || !it[i].data)
			abort();
		total += it[i].len;
	}
	if (total > KUBE_SECRETS_MAX_OBJECT)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *obj;
	uint8_t *dec = NULL;
	size_t dlen = 0;
	sigil_err err = {0};
	int r;

	/* The raw input as base64: either refused or decoded within bounds,
	 * and encoding the result gives the input back (strict decoding). */
	r = kube_secrets_b64_decode((const char *)data, size, 1u << 20, &dec, &dlen, &err);
	if (r == 0) {
		char *enc = NULL;

		if (dlen > 1u << 20)
			abort();
		if (kube_secrets_b64_encode(dec, dlen, &enc, &err) < 0 || strlen(enc) != size)
			abort();
		sigil_freezero(dec, dlen + 1);
		free(enc);
	} else if (err.code != r) {
		abort();
	}
	obj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!obj)
		return 0;
	for (int cm = 0; cm < 2; cm++) {
		kube_secrets_item *it = NULL;
		size_t n = 0;

		r = kube_secrets_decode_object(obj, cm, "fuzz", &it, &n, &err);
		if (r == 0)
			check_items(it, n);
		else if (it || err.code != r || !err.msg[0])
			abort();
		kube_secrets_items_free(it, n);
	}
	json_decref(obj);
	return 0;
}
