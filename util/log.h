/* Logging for programs.  Library code logs at debug at most; it returns
 * errors instead.  Never pass secrets to these functions. */
#pragma once
#include "util/err.h"

enum sigil_log_level { SIGIL_LOG_ERROR, SIGIL_LOG_WARN, SIGIL_LOG_INFO, SIGIL_LOG_DEBUG };

void sigil_log_set_level(enum sigil_log_level lvl);
/* Reads SIGIL_LOG_LEVEL (error|warn|info|debug) from the environment. */
void sigil_log_init_from_env(const char *progname);
void sigil_log(enum sigil_log_level lvl, const char *fmt, ...) SIGIL_PRINTF(2, 3);

#define log_error(...) sigil_log(SIGIL_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) sigil_log(SIGIL_LOG_WARN, __VA_ARGS__)
#define log_info(...) sigil_log(SIGIL_LOG_INFO, __VA_ARGS__)
#define log_debug(...) sigil_log(SIGIL_LOG_DEBUG, __VA_ARGS__)
