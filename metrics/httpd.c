/* /metrics, /healthz and /readyz over libmicrohttpd (one internal polling
 * thread with poll(): the fd count is bounded by the connection limit). */
#include "metrics/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/mem.h"
#include "util/parse.h"

struct metrics_httpd {
	struct MHD_Daemon *daemon;
	metrics_registry *registry;
	metrics_ready_fn ready;
	void *ready_userdata;
	uint16_t port;
};

#define TEXT_PLAIN "text/plain; charset=utf-8"

static bool port_digits_ok(const char *p)
{
	size_t n = strnlen(p, 6);

	if (n == 0 || n > 5 || (p[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

int metrics_httpd_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len,
			       sigil_err *err)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *hs, *he;
	struct sockaddr_storage ss;
	socklen_t len;
	int64_t port;
	size_t n;

	if (!s || !s[0])
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "metrics listen address is empty (want HOST:PORT)");
	n = strnlen(s, METRICS_HTTPD_MAX_LISTEN + 1);
	if (n > METRICS_HTTPD_MAX_LISTEN)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "metrics listen address longer than %d bytes",
				     METRICS_HTTPD_MAX_LISTEN);
	if (s[0] == '[') {
		/* RFC 3986 3.2.2: an IPv6 literal is bracketed. */
		hs = s + 1;
		he = memchr(hs, ']', n - 1);
		if (!he || he[1] != ':')
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "metrics listen address \"%s\": want [IPV6]:PORT", s);
		colon = he + 1;
	} else {
		hs = s;
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "metrics listen address \"%s\": want IPV4:PORT or "
					     "[IPV6]:PORT",
					     s);
		he = colon;
	}
	if (he == hs || (size_t)(he - hs) >= sizeof(host))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "metrics listen address \"%s\": bad host", s);
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	/* Digits only (strtoll alone would take "\t+8", "-0"), no leading zero. */
	if (!port_digits_ok(colon + 1) || sigil_parse_int64(colon + 1, 0, 65535, &port) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "metrics listen address \"%s\": port must be 0..65535", s);
	memset(&ss, 0, sizeof(ss));
	if (s[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "metrics listen address \"%s\": \"%s\" is not a "
					     "numeric IPv6 address",
					     s, host);
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;

		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "metrics listen address \"%s\": \"%s\" is not a "
					     "numeric IPv4 address",
					     s, host);
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		len = sizeof(*a4);
	}
	*ret = ss;
	*ret_len = len;
	return 0;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
			     char *body, size_t len, enum MHD_ResponseMemoryMode mode,
			     const char *allow)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result r;

	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
	    (allow && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result reply_static(struct MHD_Connection *conn, unsigned status,
				    const char *body)
{
	return reply(conn, status, TEXT_PLAIN, (char *)body, strlen(body),
		     MHD_RESPMEM_PERSISTENT, NULL);
}

static enum MHD_Result serve_metrics(metrics_httpd *h, struct MHD_Connection *conn)
{
	sigil_err err = {0};
	char *body = NULL;
	size_t len = 0;

	if (!h->registry)
		return reply(conn, MHD_HTTP_OK, METRICS_CONTENT_TYPE, (char *)"", 0,
			     MHD_RESPMEM_PERSISTENT, NULL);
	if (metrics_render(h->registry, &body, &len, &err) < 0) {
		char msg[SIGIL_ERR_MSG_MAX + 32];

		snprintf(msg, sizeof(msg), "rendering metrics: %s\n", err.msg);
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, TEXT_PLAIN, msg, strlen(msg),
			     MHD_RESPMEM_MUST_COPY, NULL);
	}
	return reply(conn, MHD_HTTP_OK, METRICS_CONTENT_TYPE, body, len, MHD_RESPMEM_MUST_FREE,
		     NULL);
}

static enum MHD_Result serve_readyz(metrics_httpd *h, struct MHD_Connection *conn)
{
	char reason[METRICS_HTTPD_MAX_REASON] = "";
	char msg[METRICS_HTTPD_MAX_REASON + 16];

	if (!h->ready || h->ready(h->ready_userdata, reason, sizeof(reason)))
		return reply_static(conn, MHD_HTTP_OK, "ok\n");
	reason[sizeof(reason) - 1] = '\0';
	snprintf(msg, sizeof(msg), "not ready: %s\n", reason[0] ? reason : "(no reason given)");
	return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, TEXT_PLAIN, msg, strlen(msg),
		     MHD_RESPMEM_MUST_COPY, NULL);
}

static enum MHD_Result httpd_handle(void *cls, struct MHD_Connection *conn, const char *url,
				    const char *method, const char *version,
				    const char *upload_data, size_t *upload_data_size,
				    void **con_cls)
{
	metrics_httpd *h = cls;
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
		   strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	bool known = strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0 ||
		     strcmp(url, "/readyz") == 0;

	/* Every answer is queued on the first call; a request body (of a
	 * refused POST) is never read. */
	if (!known)
		return reply_static(conn, MHD_HTTP_NOT_FOUND, "not found\n");
	if (!get)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, TEXT_PLAIN,
			     (char *)"method not allowed\n", 19, MHD_RESPMEM_PERSISTENT,
			     "GET, HEAD");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, conn);
	if (strcmp(url, "/readyz") == 0)
		return serve_readyz(h, conn);
	return reply_static(conn, MHD_HTTP_OK, "ok\n");
}

/* MHD does not say why a start failed; binding once ourselves gives the
 * errno (EADDRINUSE, EADDRNOTAVAIL, EACCES) for the message. */
static int bind_errno(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1, e = 0;

	if (fd < 0)
		return errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) < 0)
		e = errno;
	close(fd);
	return e;
}

int metrics_httpd_start(const metrics_httpd_config *cfg, metrics_httpd **ret, sigil_err *err)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	unsigned max_conn, timeout, flags;
	const union MHD_DaemonInfo *info;
	metrics_httpd *h;
	int r;

	if (!cfg)
		return sigil_err_set(err, SIGIL_E_INVALID, "no metrics HTTP configuration");
	r = metrics_httpd_parse_listen(cfg->listen, &ss, &sslen, err);
	if (r < 0)
		return r;
	max_conn = cfg->max_connections ? cfg->max_connections
					: METRICS_HTTPD_DEFAULT_MAX_CONNECTIONS;
	timeout = cfg->timeout_sec ? cfg->timeout_sec : METRICS_HTTPD_DEFAULT_TIMEOUT_SEC;
	if (max_conn > METRICS_HTTPD_MAX_CONNECTIONS)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "metrics HTTP connection limit must be 1..%d",
				     METRICS_HTTPD_MAX_CONNECTIONS);
	if (timeout > METRICS_HTTPD_MAX_TIMEOUT_SEC)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "metrics HTTP timeout must be 1..%d seconds",
				     METRICS_HTTPD_MAX_TIMEOUT_SEC);
	h = calloc(1, sizeof(*h));
	if (!h)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	h->registry = cfg->registry;
	h->ready = cfg->ready;
	h->ready_userdata = cfg->ready_userdata;
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, httpd_handle, h,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				     MHD_OPTION_CONNECTION_LIMIT, max_conn,
				     MHD_OPTION_CONNECTION_TIMEOUT, timeout,
				     MHD_OPTION_LISTEN_BACKLOG_SIZE, max_conn, MHD_OPTION_END);
	if (!h->daemon) {
		int e = bind_errno(&ss, sslen);

		free(h);
		if (e)
			return sigil_err_set(err, SIGIL_E_UNAVAIL,
					     "cannot listen for metrics on %s: %s", cfg->listen,
					     strerror(e));
		return sigil_err_set(err, SIGIL_E_UNAVAIL,
				     "cannot start the metrics HTTP server on %s", cfg->listen);
	}
	info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port) {
		MHD_stop_daemon(h->daemon);
		free(h);
		return sigil_err_set(err, SIGIL_E_INTERNAL,
				     "metrics HTTP server on %s did not report its port",
				     cfg->listen);
	}
	h->port = info->port;
	*ret = h;
	return 0;
}

uint16_t metrics_httpd_port(const metrics_httpd *h)
{
	return h ? h->port : 0;
}

void metrics_httpd_stop(metrics_httpd *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->daemon);
	free(h);
}
