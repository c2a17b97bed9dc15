#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum sigil_log_level log_level = SIGIL_LOG_INFO;
static const char *log_prog = "sigil";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void sigil_log_set_level(enum sigil_log_level lvl)
{
	log_level = lvl;
}

void sigil_log_init_from_env(const char *progname)
{
	const char *v = getenv("SIGIL_LOG_LEVEL");

	if (progname)
		log_prog = progname;
	if (!v)
		return;
	if (!strcmp(v, "error"))
		log_level = SIGIL_LOG_ERROR;
	else if (!strcmp(v, "warn"))
		log_level = SIGIL_LOG_WARN;
	else if (!strcmp(v, "info"))
		log_level = SIGIL_LOG_INFO;
	else if (!strcmp(v, "debug"))
		log_level = SIGIL_LOG_DEBUG;
}

void sigil_log(enum sigil_log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	char ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (lvl > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s.%03ldZ %s[%s] ", ts, now.tv_nsec / 1000000, log_prog, names[lvl]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&log_lock);
}
