/* The metrics and health HTTP endpoint (libmicrohttpd, one internal
 * polling thread):
 *   GET /metrics   the registry in the text format 0.0.4
 *   GET /healthz   200 "ok" while the process serves requests
 *   GET /readyz    200 "ok", or 503 with the readiness callback's reason
 * HEAD works like GET without a body; other methods get 405 (with Allow),
 * other paths 404.  Plain HTTP: scrapes carry no secrets. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "metrics/metrics.h"
#include "util/err.h"

#define METRICS_HTTPD_MAX_LISTEN 300
#define METRICS_HTTPD_DEFAULT_MAX_CONNECTIONS 16
#define METRICS_HTTPD_MAX_CONNECTIONS 1024
#define METRICS_HTTPD_DEFAULT_TIMEOUT_SEC 10
#define METRICS_HTTPD_MAX_TIMEOUT_SEC 3600
/* Longest readiness reason sent back (bytes, including the NUL). */
#define METRICS_HTTPD_MAX_REASON 256

/* Returns true when ready; otherwise writes a short reason (NUL-terminated,
 * at most reason_size bytes) for the 503 body.  Called on the HTTP thread. */
typedef bool (*metrics_ready_fn)(void *userdata, char *reason, size_t reason_size);

typedef struct metrics_httpd_config {
	/* "HOST:PORT": "0.0.0.0:9090", "127.0.0.1:0", "[::1]:9090", "[::]:0".
	 * HOST must be a numeric address; port 0 picks a free port. */
	const char *listen;
	/* Rendered on /metrics; NULL serves an empty exposition.  Must outlive
	 * the server (stop it first). */
	metrics_registry *registry;
	/* NULL: always ready. */
	metrics_ready_fn ready;
	void *ready_userdata;
	/* 0 picks the defaults above. */
	unsigned max_connections;
	unsigned timeout_sec;
} metrics_httpd_config;

typedef struct metrics_httpd metrics_httpd;

/* Binds and starts serving.  SIGIL_E_INVALID for a bad listen address or
 * limits, SIGIL_E_UNAVAIL when the address cannot be bound. */
int metrics_httpd_start(const metrics_httpd_config *cfg, metrics_httpd **ret,
			sigil_err *err) SIGIL_WUR;
/* The bound port (the picked one when the config said 0). */
uint16_t metrics_httpd_port(const metrics_httpd *h);
/* Stops serving, closes every connection and frees h.  Accepts NULL. */
void metrics_httpd_stop(metrics_httpd *h);

/* Parses "HOST:PORT" as described above into a socket address. */
int metrics_httpd_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len,
			       sigil_err *err) SIGIL_WUR;
