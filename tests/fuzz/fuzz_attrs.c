/* Fuzz target: volume attribute parsing.  Input: lines "key=value". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csi/attrs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	csi_kv kv[CSI_MAX_ATTRS + 4];
	size_t n = 0;
	csi_attrs a;
	char *p, *line;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	p = s;
	while (p && n < sizeof(kv) / sizeof(kv[0])) {
		char *eq;
		line = p;
		p = strchr(p, '\n');
		if (p)
			*p++ = '\0';
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		kv[n].key = line;
		kv[n].value = eq + 1;
		n++;
	}
	if (csi_attrs_parse(kv, n, &a, NULL) == 0) {
		if (!a.class_name)
			abort(); /* class is required */
		csi_attrs_free(&a);
	}
	free(s);
	return 0;
}
