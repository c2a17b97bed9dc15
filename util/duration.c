#include "util/duration.h"

#include <stdio.h>
#include <string.h>

int sigil_duration_parse(const char *s, int64_t *ret_secs, sigil_err *err)
{
	int64_t total = 0;
	const char *p = s;
	int units = 0;
	int last_rank = 100;

	if (!s || !*s)
		return sigil_err_set(err, SIGIL_E_INVALID, "empty duration");
	if (strlen(s) > SIGIL_MAX_DURATION_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "duration is too long");
	while (*p) {
		int64_t v = 0, mult;
		int digits = 0, rank;

		while (*p == ' ')
			p++;
		while (*p >= '0' && *p <= '9') {
			if (v > SIGIL_MAX_DURATION_SECS)
				return sigil_err_set(err, SIGIL_E_INVALID, "duration '%s' is too large", s);
			v = v * 10 + (*p - '0');
			p++;
			digits++;
		}
		if (!digits)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "duration '%s': expected a number at '%s'", s, p);
		/* Units, longest spelling first. */
		if (!strncmp(p, "days", 4)) { mult = 86400; rank = 5; p += 4; }
		else if (!strncmp(p, "day", 3)) { mult = 86400; rank = 5; p += 3; }
		else if (*p == 'd') { mult = 86400; rank = 5; p++; }
		else if (!strncmp(p, "hours", 5)) { mult = 3600; rank = 4; p += 5; }
		else if (!strncmp(p, "hour", 4)) { mult = 3600; rank = 4; p += 4; }
		else if (*p == 'h') { mult = 3600; rank = 4; p++; }
		else if (!strncmp(p, "ms", 2)) {
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "duration '%s': milliseconds are not supported", s);
		}
		else if (!strncmp(p, "min", 3)) { mult = 60; rank = 3; p += 3; }
		else if (*p == 'm') { mult = 60; rank = 3; p++; }
		else if (!strncmp(p, "sec", 3)) { mult = 1; rank = 2; p += 3; }
		else if (*p == 's') { mult = 1; rank = 2; p++; }
		else if (*p == 'w') { mult = 7 * 86400; rank = 6; p++; }
		else
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "duration '%s': unknown or missing unit at '%s' (use d, h, m, s)",
					     s, p);
		if (rank >= last_rank)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "duration '%s': units must go from largest to smallest", s);
		last_rank = rank;
		if (v > SIGIL_MAX_DURATION_SECS / mult || total + v * mult > SIGIL_MAX_DURATION_SECS)
			return sigil_err_set(err, SIGIL_E_INVALID, "duration '%s' is too large", s);
		total += v * mult;
		units++;
		while (*p == ' ')
			p++;
	}
	if (!units)
		return sigil_err_set(err, SIGIL_E_INVALID, "empty duration");
	*ret_secs = total;
	return 0;
}

void sigil_duration_format(int64_t secs, char *buf, size_t len)
{
	int64_t d = secs / 86400, h = secs / 3600 % 24, m = secs / 60 % 60, s = secs % 60;
	size_t off = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (secs <= 0) {
		snprintf(buf, len, "0s");
		return;
	}
#define PART(v, u)                                                                       \
	if ((v) && off < len)                                                            \
		off += (size_t)snprintf(buf + off, len - off, "%lld" u, (long long)(v));
	PART(d, "d")
	PART(h, "h")
	PART(m, "m")
	PART(s, "s")
#undef PART
}
