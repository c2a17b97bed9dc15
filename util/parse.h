/* Checked number parsing (no atoi/strtol without checks). */
#pragma once
#include <stdint.h>

#include "util/err.h"

/* Whole string must be a decimal number in [min, max]. */
int sigil_parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret) SIGIL_WUR;
/* A decimal fraction like "0.2" in [min, max). */
int sigil_parse_double(const char *s, double min, double max, double *ret) SIGIL_WUR;
