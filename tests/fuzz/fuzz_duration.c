/* Fuzz target: the duration parser (volume attributes, SecretClasses). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/duration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	int64_t v;
	char buf[64];

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (sigil_duration_parse(s, &v, NULL) == 0) {
		/* Whatever parses must format and parse back to the same value. */
		sigil_duration_format(v, buf, sizeof(buf));
		int64_t w;
		if (sigil_duration_parse(buf, &w, NULL) != 0 || w != v)
			abort();
	}
	free(s);
	return 0;
}
