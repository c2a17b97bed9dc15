#include "util/parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int sigil_parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	char *end;
	long long v;

	if (!s || !*s || *s == ' ' || *s == '+')
		return SIGIL_E_INVALID;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return SIGIL_E_INVALID;
	*ret = v;
	return 0;
}

int sigil_parse_double(const char *s, double min, double max, double *ret)
{
	char *end;
	double v;

	if (!s || !*s || *s == ' ')
		return SIGIL_E_INVALID;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			return SIGIL_E_INVALID; /* no hex floats, inf or nan */
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < min || v >= max)
		return SIGIL_E_INVALID;
	*ret = v;
	return 0;
}
