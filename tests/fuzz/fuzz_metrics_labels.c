/* Fuzz target: label values through the registry and the text exposition
 * (escaping of \ " and newline, UTF-8 checks, removal).  Input: three label
 * values separated by NUL bytes, then an operation byte.  What is accepted
 * must come back out of the exposition, unescaped, byte for byte; what is
 * refused must not appear at all; the whole text must be UTF-8. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (3 * (METRICS_MAX_LABEL_VALUE + 64))

/* Reads one escaped label value starting after the opening quote; returns
 * the position after the closing quote or NULL. */
static const char *unescape(const char *p, char *out, size_t outsz)
{
	size_t n = 0;

	for (; *p && *p != '"'; p++) {
		char c = *p;

		if (c == '\n')
			return NULL; /* raw newline inside a value */
		if (c == '\\') {
			p++;
			if (*p == 'n')
				c = '\n';
			else if (*p == '\\' || *p == '"')
				c = *p;
			else
				return NULL;
		}
		if (n + 1 >= outsz)
			return NULL;
		out[n++] = c;
	}
	if (*p != '"')
		return NULL;
	out[n] = '\0';
	return p + 1;
}

/* Checks the one sample line of family fz; returns true if found. */
static bool find_sample(const char *text, const char *const want[3])
{
	static const char *const names[] = {"a", "b", "c"};
	const char *p = strstr(text, "\nfz{");
	char got[METRICS_MAX_LABEL_VALUE + 1];

	if (!p)
		return false;
	p += 4;
	for (int i = 0; i < 3; i++) {
		size_t nl = strlen(names[i]);

		if (i > 0 && *p++ != ',')
			abort();
		if (strncmp(p, names[i], nl) != 0 || p[nl] != '=' || p[nl + 1] != '"')
			abort();
		p = unescape(p + nl + 2, got, sizeof(got));
		if (!p || strcmp(got, want[i]) != 0)
			abort();
	}
	if (strncmp(p, "} ", 2) != 0)
		abort();
	/* Only one such line. */
	if (strstr(p, "\nfz{"))
		abort();
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const labels[] = {"a", "b", "c"};
	char *buf, *vals[3];
	const char *cv[3];
	metrics_registry *reg;
	metrics_family *g = NULL;
	size_t off = 0;
	uint8_t op = 0;
	char *text = NULL;
	size_t len = 0;
	bool ok = true;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	buf = malloc(size + 4);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	memset(buf + size, 0, 4);
	for (int i = 0; i < 3; i++) {
		vals[i] = buf + (off < size ? off : size);
		cv[i] = vals[i];
		off += strlen(vals[i]) + 1;
		ok = ok && metrics_label_value_ok(vals[i]);
	}
	if (off < size)
		op = (uint8_t)data[off];
	reg = metrics_registry_new();
	if (!reg || metrics_gauge(reg, "fz", "Fuzz \\ help\nline.", labels, 3, &g, NULL) < 0)
		abort();
	metrics_set(g, cv, (double)op - 100.5);
	if (op & 1)
		metrics_inc(g, cv, 1);
	if (op & 2) {
		if (metrics_remove(g, cv) != ok)
			abort();
		ok = false;
	}
	if (metrics_render(reg, &text, &len, NULL) < 0)
		abort();
	if (strlen(text) != len || !metrics_utf8_ok(text, len))
		abort();
	if (find_sample(text, cv) != ok)
		abort();
	/* HELP text escaped (no raw newline in it); only shown with a sample. */
	if (!strstr(text, "# HELP fz Fuzz \\\\ help\\nline.\n") != !ok)
		abort();
	free(text);
	metrics_registry_free(reg);
	free(buf);
	return 0;
}
