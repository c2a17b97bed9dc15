/* Fuzzes the CA store record parser (the bytes of DIR/<class>/gen-*.pem).
 * Properties: never crashes or leaks; whatever it accepts is exactly one
 * certificate block and one key block, and serialising the parsed record
 * gives back the input byte for byte (nothing is dropped or normalised). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca/store.h"
#include "util/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ca_store_record rec;
	sigil_err err = {0};
	char *out = NULL;
	size_t out_len = 0;

	if (ca_store_record_parse("fuzz", (const char *)data, size, &rec, &err) < 0) {
		if (err.code != SIGIL_E_CORRUPT && err.code != SIGIL_E_NOMEM)
			abort();
		return 0;
	}
	if (rec.cert_len + rec.key_len != size || strlen(rec.cert_pem) != rec.cert_len ||
	    strlen(rec.key_pem) != rec.key_len)
		abort();
	if (ca_store_record_format(&rec, &out, &out_len, &err) < 0)
		abort();
	if (out_len != size || memcmp(out, data, size) != 0)
		abort();
	sigil_freezero(out, out_len + 1);
	ca_store_record_clear(&rec);
	return 0;
}
