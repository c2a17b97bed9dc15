/* metrics/httpd: the listen-address parser (good, truncated, oversized and
 * garbage input), and the real server on loopback driven with libcurl:
 * /metrics content and type, /healthz, /readyz flipping, 404, 405 with
 * Allow, HEAD, port 0, IPv6, a busy port, the connection limit and the idle
 * timeout, and a clean stop. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics/httpd.h"

/* ---- a small libcurl client ------------------------------------------------ */

typedef struct http_resp {
	long status;
	char body[65536];
	size_t body_len;
	char ctype[256];
	char allow[256];
	int curl_rc;
} http_resp;

static size_t body_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	http_resp *r = ud;
	size_t n = size * nmemb;

	if (n > sizeof(r->body) - 1 - r->body_len)
		return 0;
	memcpy(r->body + r->body_len, p, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return n;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name);

	if (n > nl + 1 && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
		const char *v = line + nl + 1;
		size_t vl = n - nl - 1;

		while (vl && (*v == ' '))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
			vl--;
		snprintf(out, outsz, "%.*s", (int)vl, v);
	}
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	http_resp *r = ud;
	size_t n = size * nmemb;

	header_value(p, n, "Content-Type", r->ctype, sizeof(r->ctype));
	header_value(p, n, "Allow", r->allow, sizeof(r->allow));
	return n;
}

static void http(const char *host, uint16_t port, const char *method, const char *path,
		 long timeout_ms, http_resp *r)
{
	char url[256];
	CURL *c = curl_easy_init();

	assert_non_null(c);
	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "http://%s:%u%s", host, port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "a=b");
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	r->curl_rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
}

static void get_ok(uint16_t port, const char *path, http_resp *r)
{
	http("127.0.0.1", port, "GET", path, 30000, r);
	assert_int_equal(r->curl_rc, CURLE_OK);
}

/* ---- listen addresses ------------------------------------------------------- */

static void test_parse_listen(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	sigil_err err = {0};
	char big[METRICS_HTTPD_MAX_LISTEN + 8];
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", ":9090", "127.0.0.1:65536", "127.0.0.1:-1",
		"127.0.0.1:+80", "127.0.0.1: 80", "127.0.0.1:\t80", "127.0.0.1:080",
		"127.0.0.1:80x", "localhost:80", "1.2.3:80", "256.1.1.1:80", "::1:80",
		"[::1]80", "[::1]:", "[::1", "[]:80", "[127.0.0.1]:80", "[::1]:99999",
		"1.2.3.4:80:80", "[::1]:80]", "\xff:80", "127.0.0.1:123456",
	};

	assert_int_equal(metrics_httpd_parse_listen("127.0.0.1:9090", &ss, &len, &err), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9090);
	assert_int_equal(metrics_httpd_parse_listen("0.0.0.0:0", &ss, &len, &err), 0);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 0);
	assert_int_equal(metrics_httpd_parse_listen("[::1]:65535", &ss, &len, &err), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);
	assert_int_equal(metrics_httpd_parse_listen("[::]:0", &ss, &len, &err), 0);
	assert_int_equal(metrics_httpd_parse_listen("[fe80::1:2]:8080", &ss, &len, &err), 0);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sockaddr_storage untouched;

		memset(&untouched, 0xab, sizeof(untouched));
		memset(&err, 0, sizeof(err));
		if (metrics_httpd_parse_listen(bad[i], &untouched, &len, &err) >= 0)
			fail_msg("accepted bad listen address \"%s\"", bad[i]);
		assert_true(err.msg[0] != '\0');
		/* Out-parameters untouched on failure. */
		assert_int_equal(((unsigned char *)&untouched)[0], 0xab);
	}
	assert_true(metrics_httpd_parse_listen(NULL, &ss, &len, &err) < 0);
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(metrics_httpd_parse_listen(big, &ss, &len, &err), SIGIL_E_LIMIT);
}

/* ---- the server -------------------------------------------------------------- */

typedef struct ready_state {
	atomic_bool ready;
	atomic_int calls;
} ready_state;

static bool ready_cb(void *ud, char *reason, size_t size)
{
	ready_state *rs = ud;

	atomic_fetch_add(&rs->calls, 1);
	if (atomic_load(&rs->ready))
		return true;
	snprintf(reason, size, "CA not reachable yet");
	return false;
}

static void test_endpoints(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_family *g;
	ready_state rs = {0};
	metrics_httpd_config cfg = {
		.listen = "127.0.0.1:0",
		.registry = reg,
		.ready = ready_cb,
		.ready_userdata = &rs,
	};
	metrics_httpd *h = NULL;
	sigil_err err = {0};
	http_resp *r = calloc(1, sizeof(*r));
	char *text = NULL;
	size_t len;
	uint16_t port;

	assert_non_null(r);
	assert_int_equal(metrics_gauge(reg, "sigil_up", "Up.", (const char *const[]){"who"}, 1, &g,
				       &err),
			 0);
	metrics_set(g, (const char *const[]){"csi"}, 1);
	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), 0);
	port = metrics_httpd_port(h);
	assert_true(port != 0);

	get_ok(port, "/metrics", r);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->ctype, "text/plain; version=0.0.4; charset=utf-8");
	assert_int_equal(metrics_render(reg, &text, &len, &err), 0);
	assert_string_equal(r->body, text);
	assert_non_null(strstr(r->body, "sigil_up{who=\"csi\"} 1\n"));
	free(text);
	/* A change shows on the next scrape. */
	metrics_set(g, (const char *const[]){"csi"}, 0);
	get_ok(port, "/metrics", r);
	assert_non_null(strstr(r->body, "sigil_up{who=\"csi\"} 0\n"));

	get_ok(port, "/healthz", r);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->body, "ok\n");

	get_ok(port, "/readyz", r);
	assert_int_equal(r->status, 503);
	assert_string_equal(r->body, "not ready: CA not reachable yet\n");
	atomic_store(&rs.ready, true);
	get_ok(port, "/readyz", r);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->body, "ok\n");
	atomic_store(&rs.ready, false);
	get_ok(port, "/readyz", r);
	assert_int_equal(r->status, 503);
	assert_int_equal(atomic_load(&rs.calls), 3);
	/* /healthz does not depend on readiness. */
	get_ok(port, "/healthz", r);
	assert_int_equal(r->status, 200);

	get_ok(port, "/", r);
	assert_int_equal(r->status, 404);
	get_ok(port, "/metrics/", r);
	assert_int_equal(r->status, 404);
	get_ok(port, "/metricsx", r);
	assert_int_equal(r->status, 404);
	get_ok(port, "/../metrics", r); /* curl normalizes this to /metrics */
	assert_int_equal(r->status, 200);

	http("127.0.0.1", port, "POST", "/metrics", 30000, r);
	assert_int_equal(r->curl_rc, CURLE_OK);
	assert_int_equal(r->status, 405);
	assert_string_equal(r->allow, "GET, HEAD");
	http("127.0.0.1", port, "DELETE", "/healthz", 30000, r);
	assert_int_equal(r->status, 405);
	http("127.0.0.1", port, "PUT", "/nothing", 30000, r);
	assert_int_equal(r->status, 404);

	http("127.0.0.1", port, "HEAD", "/metrics", 30000, r);
	assert_int_equal(r->curl_rc, CURLE_OK);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->body_len, 0);
	assert_string_equal(r->ctype, "text/plain; version=0.0.4; charset=utf-8");

	metrics_httpd_stop(h);
	/* Stopped: nobody listens on the port any more. */
	http("127.0.0.1", port, "GET", "/healthz", 5000, r);
	assert_int_equal(r->curl_rc, CURLE_COULDNT_CONNECT);
	free(r);
	metrics_registry_free(reg);
}

static void test_no_registry_always_ready(void **state)
{
	metrics_httpd_config cfg = {.listen = "127.0.0.1:0"};
	metrics_httpd *h = NULL;
	sigil_err err = {0};
	http_resp *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), 0);
	get_ok(metrics_httpd_port(h), "/metrics", r);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->body_len, 0);
	get_ok(metrics_httpd_port(h), "/readyz", r);
	assert_int_equal(r->status, 200);
	metrics_httpd_stop(h);
	metrics_httpd_stop(NULL);
	free(r);
}

static bool have_ipv6_loopback(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	bool ok;

	if (fd < 0)
		return false;
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static void test_ipv6(void **state)
{
	metrics_httpd_config cfg = {.listen = "[::1]:0"};
	metrics_httpd *h = NULL;
	sigil_err err = {0};
	http_resp *r;

	if (!have_ipv6_loopback())
		skip();
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), 0);
	assert_true(metrics_httpd_port(h) != 0);
	http("[::1]", metrics_httpd_port(h), "GET", "/healthz", 30000, r);
	assert_int_equal(r->curl_rc, CURLE_OK);
	assert_int_equal(r->status, 200);
	/* IPv6 only: not reachable over IPv4. */
	http("127.0.0.1", metrics_httpd_port(h), "GET", "/healthz", 5000, r);
	assert_int_not_equal(r->curl_rc, CURLE_OK);
	metrics_httpd_stop(h);
	free(r);
}

static void test_bad_config(void **state)
{
	metrics_httpd_config cfg = {.listen = "127.0.0.1:0"};
	metrics_httpd_config cfg2;
	metrics_httpd *h = NULL, *h2 = NULL;
	sigil_err err = {0};
	char listen[64];

	assert_int_equal(metrics_httpd_start(NULL, &h, &err), SIGIL_E_INVALID);
	cfg.listen = "nonsense";
	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), SIGIL_E_INVALID);
	cfg.listen = "127.0.0.1:0";
	cfg.max_connections = METRICS_HTTPD_MAX_CONNECTIONS + 1;
	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), SIGIL_E_INVALID);
	cfg.max_connections = 0;
	cfg.timeout_sec = METRICS_HTTPD_MAX_TIMEOUT_SEC + 1;
	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), SIGIL_E_INVALID);
	assert_null(h);
	/* An address that is not ours. */
	cfg.timeout_sec = 0;
	cfg.listen = "192.0.2.1:0";
	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), SIGIL_E_UNAVAIL);
	assert_non_null(strstr(err.msg, "192.0.2.1:0"));
	assert_null(h);

	/* A port in use: the message says so. */
	cfg.listen = "127.0.0.1:0";
	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), 0);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", metrics_httpd_port(h));
	cfg2 = (metrics_httpd_config){.listen = listen};
	memset(&err, 0, sizeof(err));
	assert_int_equal(metrics_httpd_start(&cfg2, &h2, &err), SIGIL_E_UNAVAIL);
	assert_null(h2);
	assert_non_null(strstr(err.msg, "in use"));
	metrics_httpd_stop(h);
}

/* Connects a raw TCP socket that sends nothing. */
static int idle_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* True when the server closes fd within timeout_ms (generous). */
static bool closed_by_server(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	return recv(fd, &c, 1, 0) <= 0;
}

static void test_connection_limit(void **state)
{
	metrics_httpd_config cfg = {.listen = "127.0.0.1:0", .max_connections = 2,
				    .timeout_sec = 600};
	metrics_httpd *h = NULL;
	sigil_err err = {0};
	http_resp *r = calloc(1, sizeof(*r));
	int a, b;

	assert_non_null(r);
	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), 0);
	a = idle_connect(metrics_httpd_port(h));
	b = idle_connect(metrics_httpd_port(h));
	/* Both slots are held by idle clients: a third request is not
	 * served (it waits in the backlog or is refused). */
	http("127.0.0.1", metrics_httpd_port(h), "GET", "/healthz", 1500, r);
	assert_int_not_equal(r->curl_rc, CURLE_OK);
	close(a);
	close(b);
	/* With the slots free again it is. */
	for (int i = 0; i < 100; i++) {
		http("127.0.0.1", metrics_httpd_port(h), "GET", "/healthz", 5000, r);
		if (r->curl_rc == CURLE_OK)
			break;
	}
	assert_int_equal(r->curl_rc, CURLE_OK);
	assert_int_equal(r->status, 200);
	metrics_httpd_stop(h);
	free(r);
}

static void test_idle_timeout_and_stop(void **state)
{
	metrics_httpd_config cfg = {.listen = "127.0.0.1:0", .timeout_sec = 1};
	metrics_httpd *h = NULL;
	sigil_err err = {0};
	int a, b;

	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), 0);
	a = idle_connect(metrics_httpd_port(h));
	/* The idle client is cut off after the timeout. */
	assert_true(closed_by_server(a, 30000));
	close(a);
	/* Stopping with a connection still open closes it and returns. */
	cfg.timeout_sec = 600;
	metrics_httpd_stop(h);
	assert_int_equal(metrics_httpd_start(&cfg, &h, &err), 0);
	b = idle_connect(metrics_httpd_port(h));
	metrics_httpd_stop(h);
	assert_true(closed_by_server(b, 30000));
	close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_listen),
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_no_registry_always_ready),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_connection_limit),
		cmocka_unit_test(test_idle_timeout_and_stop),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
