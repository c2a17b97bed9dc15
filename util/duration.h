/* Durations as users write them in volume attributes and SecretClasses:
 * "1d", "6h", "30m", "45s", combinations such as "1d12h" or "2h30m", and
 * Stackable's humantime forms ("7d", "24h").  Stored as seconds. */
#pragma once
#include <stdint.h>

#include "util/err.h"

/* 100 years: anything longer is a typo, not a lifetime. */
#define SIGIL_MAX_DURATION_SECS (100LL * 365 * 24 * 3600)
#define SIGIL_MAX_DURATION_LEN 64

int sigil_duration_parse(const char *s, int64_t *ret_secs, sigil_err *err) SIGIL_WUR;
/* Formats like "1d2h3m4s" (or "0s") into buf. */
void sigil_duration_format(int64_t secs, char *buf, size_t len);
