/* Fuzz target: TrustStore objects (truststore_spec_parse). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca/server/truststore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t size)
{
	if (strnlen(s, size) >= size)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	truststore_spec s;
	sigil_err err = {0};
	int r;

	memset(&s, 0xa5, sizeof(s));
	r = truststore_spec_parse(&kube_res_truststores, (const char *)data, size, &s, &err);
	if (r < 0) {
		if (err.code != r || !err.msg[0])
			abort();
		return 0;
	}
	if (r != 0)
		abort();
	/* What is accepted is safe to put in a URL and an ownerReference. */
	check_str(s.name, sizeof(s.name));
	check_str(s.namespace_, sizeof(s.namespace_));
	check_str(s.uid, sizeof(s.uid));
	check_str(s.class_name, sizeof(s.class_name));
	if (!kube_name_ok(s.name) || !kube_name_ok(s.namespace_) || !kube_name_ok(s.class_name) ||
	    !s.uid[0])
		abort();
	if (strcmp(s.api_version, "secrets.sigil.dev/v1alpha1"))
		abort();
	if (s.target != TRUSTSTORE_TARGET_CONFIGMAP && s.target != TRUSTSTORE_TARGET_SECRET)
		abort();
	if (s.format != TRUSTSTORE_FORMAT_PEM && s.format != TRUSTSTORE_FORMAT_PKCS12)
		abort();
	return 0;
}
