/* Wall clock that tests can replace (CA rotation over simulated time). */
#pragma once
#include <stdint.h>
#include <time.h>

typedef time_t (*sigil_clock_fn)(void *ctx);

typedef struct sigil_clock {
	sigil_clock_fn now;
	void *ctx;
} sigil_clock;

/* The real clock. */
extern const sigil_clock sigil_clock_real;
time_t sigil_clock_now(const sigil_clock *c);
/* Monotonic milliseconds, for timeouts and latencies. */
int64_t sigil_mono_ms(void);
int64_t sigil_mono_ns(void);
