#include "util/clock.h"

static time_t real_now(void *ctx)
{
	(void)ctx;
	return time(NULL);
}

const sigil_clock sigil_clock_real = {real_now, 0};

time_t sigil_clock_now(const sigil_clock *c)
{
	if (!c || !c->now)
		return time(NULL);
	return c->now(c->ctx);
}

int64_t sigil_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t sigil_mono_ms(void)
{
	return sigil_mono_ns() / 1000000;
}
