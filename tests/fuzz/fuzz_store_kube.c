/* Fuzzes the Kubernetes Secret CA store's parsers: a Secret object as the
 * apiserver sends it (ca_store_kube_parse_secret) and the metav1 time in a
 * Lease (ca_store_kube_parse_time).
 * Properties: never crashes or leaks; a failure is one of the documented
 * codes; an accepted Secret gives strictly ascending generations whose
 * records serialise back; an accepted time re-parses to the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ca/server/store_kube.h"
#include "util/mem.h"

/* Far above any real Secret (1 MiB of data in base64 plus metadata). */
#define FUZZ_MAX_INPUT (4u * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_time(const uint8_t *data, size_t size)
{
	char buf[80];
	time_t t = 0, t2 = 0;

	if (size >= sizeof(buf))
		return;
	memcpy(buf, data, size);
	buf[size] = '\0';
	if (ca_store_kube_parse_time(buf, &t) == 0) {
		if (ca_store_kube_parse_time(buf, &t2) != 0 || t != t2)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *secret;
	ca_store_record *recs = NULL;
	size_t n = 0;
	sigil_err err = {0};
	int r;

	fuzz_time(data, size);
	if (size > FUZZ_MAX_INPUT)
		return 0;
	secret = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (!secret)
		return 0;
	r = ca_store_kube_parse_secret(secret, "fuzz", &recs, &n, &err);
	json_decref(secret);
	if (r < 0) {
		if (r != SIGIL_E_CORRUPT && r != SIGIL_E_PRECOND && r != SIGIL_E_LIMIT &&
		    r != SIGIL_E_NOMEM)
			abort();
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		char *out = NULL;
		size_t out_len = 0;

		if (i > 0 && recs[i].generation <= recs[i - 1].generation)
			abort();
		if (ca_store_record_format(&recs[i], &out, &out_len, &err) < 0)
			abort();
		sigil_freezero(out, out_len + 1);
	}
	ca_store_records_free(recs, n);
	return 0;
}
