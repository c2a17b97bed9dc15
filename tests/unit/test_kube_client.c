/* kube/client: resource paths and names, option checks, and the HTTP and
 * watch-stream handling against a scripted raw HTTP server on 127.0.0.1
 * (plain http is allowed to loopback), for byte-level cases the fake
 * apiserver does not produce: events split across writes, garbage events,
 * oversized events and bodies, non-JSON answers, stop and deadlines. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kube/client.h"
#include "util/clock.h"

/* ---- a scripted HTTP server ------------------------------------------------ */

#define MAX_SCRIPT 16
#define MAX_REQ    4096
/* In a scripted response: flush what came before and pause 100 ms. */
#define PAUSE "\x01"
/* At the end of a scripted response: keep the connection open. */
#define HOLD "\x02"

typedef struct raw_server {
	int lfd;
	int port;
	pthread_t th;
	char *script[MAX_SCRIPT];
	size_t script_len[MAX_SCRIPT];
	size_t n;
	size_t next;
	char reqs[MAX_SCRIPT][MAX_REQ];
	size_t nreq;
	atomic_int quit;
	pthread_mutex_t lock;
} raw_server;

static raw_server srv;

static void srv_add(const char *resp)
{
	srv.script_len[srv.n] = strlen(resp);
	srv.script[srv.n++] = strdup(resp);
}

/* Takes ownership of a malloc'ed response. */
static void srv_add_owned(char *resp, size_t len)
{
	srv.script_len[srv.n] = len;
	srv.script[srv.n++] = resp;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void serve_one(int fd)
{
	char req[65536];
	size_t got = 0, clen = 0;
	char *end = NULL, *cl;
	const char *resp;
	size_t rlen;

	while (!end && got < sizeof(req) - 1) {
		ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);

		if (n <= 0)
			return;
		got += (size_t)n;
		req[got] = '\0';
		end = strstr(req, "\r\n\r\n");
	}
	if (!end)
		return;
	cl = strcasestr(req, "\r\nContent-Length: ");
	if (cl && cl < end)
		clen = strtoul(cl + 18, NULL, 10);
	while (got < (size_t)(end - req) + 4 + clen && got < sizeof(req) - 1) {
		ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
		req[got] = '\0';
	}
	pthread_mutex_lock(&srv.lock);
	if (srv.nreq < MAX_SCRIPT) {
		size_t keep = got < MAX_REQ - 1 ? got : MAX_REQ - 1;

		memcpy(srv.reqs[srv.nreq], req, keep);
		srv.reqs[srv.nreq++][keep] = '\0';
	}
	if (srv.next < srv.n) {
		resp = srv.script[srv.next];
		rlen = srv.script_len[srv.next];
		srv.next++;
	} else {
		resp = "HTTP/1.1 599 No Script\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
		rlen = strlen(resp);
	}
	pthread_mutex_unlock(&srv.lock);
	for (size_t i = 0; i < rlen;) {
		const char *mark = memchr(resp + i, '\x01', rlen - i);
		const char *hold = memchr(resp + i, '\x02', rlen - i);
		size_t seg = mark ? (size_t)(mark - resp) - i : rlen - i;

		if (hold && (!mark || hold < mark))
			seg = (size_t)(hold - resp) - i;
		send_all(fd, resp + i, seg);
		i += seg;
		if (i < rlen && resp[i] == '\x01') {
			usleep(100000);
			i++;
		} else if (i < rlen && resp[i] == '\x02') {
			/* Hold the stream open until the client goes or we quit. */
			while (!atomic_load(&srv.quit)) {
				struct pollfd p = {.fd = fd, .events = POLLIN};
				char b;

				if (poll(&p, 1, 50) > 0 && recv(fd, &b, 1, 0) <= 0)
					break;
			}
			i++;
		}
	}
}

static void *srv_main(void *arg)
{
	while (!atomic_load(&srv.quit)) {
		struct pollfd p = {.fd = srv.lfd, .events = POLLIN};
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(srv.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		serve_one(fd);
		shutdown(fd, SHUT_RDWR);
		close(fd);
	}
	return NULL;
}

static int srv_setup(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	memset(&srv, 0, sizeof(srv));
	pthread_mutex_init(&srv.lock, NULL);
	srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(srv.lfd, 16) < 0 || getsockname(srv.lfd, (struct sockaddr *)&a, &alen) < 0)
		return -1;
	srv.port = ntohs(a.sin_port);
	return pthread_create(&srv.th, NULL, srv_main, NULL) == 0 ? 0 : -1;
}

static int srv_teardown(void **state)
{
	atomic_store(&srv.quit, 1);
	pthread_join(srv.th, NULL);
	close(srv.lfd);
	for (size_t i = 0; i < srv.n; i++)
		free(srv.script[i]);
	pthread_mutex_destroy(&srv.lock);
	return 0;
}

static kube_client *new_client(kube_client_opts *o)
{
	kube_config cfg = {0};
	kube_client_opts def;
	kube_client *c = NULL;
	char url[64];
	sigil_err err = {0};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
	cfg.server = url;
	cfg.namespace_ = "default";
	if (!o) {
		kube_client_opts_init(&def);
		def.backoff_base_ms = 10;
		def.backoff_max_ms = 40;
		def.timeout_ms = 5000;
		o = &def;
	}
	assert_int_equal(kube_client_new(&cfg, o, &c, &err), 0);
	return c;
}

#define HDR200 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"

/* ---- resources and paths --------------------------------------------------- */

static void test_resources(void **state)
{
	char *p = NULL;
	sigil_err err = {0};

	assert_ptr_equal(kube_resource_find("pods"), &kube_res_pods);
	assert_ptr_equal(kube_resource_find("secretclasses"), &kube_res_secretclasses);
	assert_ptr_equal(kube_resource_find("secretclasses.secrets.stackable.tech"),
	                 &kube_res_stackable_secretclasses);
	assert_ptr_equal(kube_resource_find("leases.coordination.k8s.io"), &kube_res_leases);
	assert_null(kube_resource_find("pods.apps"));
	assert_null(kube_resource_find("pod"));
	assert_null(kube_resource_find(""));
	assert_null(kube_resource_find(NULL));

	assert_int_equal(kube_resource_path(&kube_res_pods, "default", "web-0", NULL, &p, &err), 0);
	assert_string_equal(p, "/api/v1/namespaces/default/pods/web-0");
	free(p);
	assert_int_equal(
	    kube_resource_path(&kube_res_pods, "default", "web-0", "eviction", &p, &err), 0);
	assert_string_equal(p, "/api/v1/namespaces/default/pods/web-0/eviction");
	free(p);
	assert_int_equal(kube_resource_path(&kube_res_pods, NULL, NULL, NULL, &p, &err), 0);
	assert_string_equal(p, "/api/v1/pods");
	free(p);
	assert_int_equal(kube_resource_path(&kube_res_secretclasses, "", "tls", NULL, &p, &err), 0);
	assert_string_equal(p, "/apis/secrets.sigil.dev/v1alpha1/secretclasses/tls");
	free(p);
	assert_int_equal(kube_resource_path(&kube_res_leases, "kube-system", NULL, NULL, &p, &err),
	                 0);
	assert_string_equal(p, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases");
	free(p);

	p = NULL;
	assert_int_equal(kube_resource_path(&kube_res_nodes, "default", "n", NULL, &p, &err),
	                 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "not namespaced"));
	assert_int_equal(kube_resource_path(&kube_res_pods, NULL, "web-0", NULL, &p, &err),
	                 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "needs a namespace"));
	assert_int_equal(kube_resource_path(&kube_res_pods, "Default", "a", NULL, &p, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(kube_resource_path(&kube_res_pods, "a/b", "a", NULL, &p, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(kube_resource_path(&kube_res_pods, "default", "..", NULL, &p, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(kube_resource_path(&kube_res_pods, "default", "a/../b", NULL, &p, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(kube_resource_path(&kube_res_pods, "default", "a?watch=1", NULL, &p, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(kube_resource_path(&kube_res_pods, "default", "a%2F", NULL, &p, &err),
	                 SIGIL_E_INVALID);
	assert_null(p);

	assert_true(kube_name_ok("web-0"));
	assert_true(kube_name_ok("system:node:node-1"));
	assert_true(kube_name_ok("web-0.17a8c3f1b2c3d4e5"));
	assert_false(kube_name_ok(""));
	assert_false(kube_name_ok("."));
	assert_false(kube_name_ok("a b"));
	assert_false(kube_name_ok("a#b"));
	{
		char longname[KUBE_MAX_NAME + 2];

		memset(longname, 'a', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		assert_false(kube_name_ok(longname));
		longname[KUBE_MAX_NAME] = '\0';
		assert_true(kube_name_ok(longname));
	}
}

static void test_client_new_checks(void **state)
{
	kube_config cfg = {0};
	kube_client_opts o;
	kube_client *c = NULL;
	sigil_err err = {0};

	assert_int_equal(kube_client_new(&cfg, NULL, &c, &err), SIGIL_E_INVALID);
	cfg.server = "http://10.0.0.1:6443";
	assert_int_equal(kube_client_new(&cfg, NULL, &c, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "must use https://"));
	cfg.server = "ftp://127.0.0.1";
	assert_int_equal(kube_client_new(&cfg, NULL, &c, &err), SIGIL_E_INVALID);
	cfg.server = "https://user:pw@k:6443";
	assert_int_equal(kube_client_new(&cfg, NULL, &c, &err), SIGIL_E_INVALID);
	assert_null(strstr(err.msg, "pw")); /* a password is never echoed */
	cfg.server = "https://k:6443/?x=1";
	assert_int_equal(kube_client_new(&cfg, NULL, &c, &err), SIGIL_E_INVALID);
	cfg.server = "not a url";
	assert_int_equal(kube_client_new(&cfg, NULL, &c, &err), SIGIL_E_INVALID);
	assert_null(c);

	cfg.server = "https://k8s.example.com:6443/prefix";
	kube_client_opts_init(&o);
	o.max_retries = KUBE_MAX_RETRIES + 1;
	assert_int_equal(kube_client_new(&cfg, &o, &c, &err), SIGIL_E_INVALID);
	kube_client_opts_init(&o);
	o.qps = 5;
	o.burst = 0;
	assert_int_equal(kube_client_new(&cfg, &o, &c, &err), SIGIL_E_INVALID);
	kube_client_opts_init(&o);
	o.timeout_ms = 0;
	assert_int_equal(kube_client_new(&cfg, &o, &c, &err), SIGIL_E_INVALID);
	assert_null(c);

	assert_int_equal(kube_client_new(&cfg, NULL, &c, &err), 0);
	assert_string_equal(kube_client_namespace(c), "default");
	kube_client_free(c);
	kube_client_free(NULL);
}

/* ---- requests ------------------------------------------------------------------ */

static void test_answers_that_are_not_objects(void **state)
{
	kube_client *c = new_client(NULL);
	json_t *obj = NULL;
	sigil_err err = {0};

	srv_add(HDR200 "not json at all");
	srv_add(HDR200 "{\"kind\":\"Pod\",\"kind\":\"Secret\"}");
	srv_add(HDR200 "[1,2,3]");
	srv_add(HDR200 "");
	for (int i = 0; i < 4; i++) {
		assert_int_equal(kube_client_get(c, &kube_res_pods, "default", "web-0", &obj, &err),
		                 SIGIL_E_CORRUPT);
		assert_non_null(strstr(err.msg, "get Pod default/web-0"));
		assert_null(obj);
	}
	/* A proxy's page, retried once, then a good answer. */
	srv_add("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
	        "<html><body>502 Bad Gateway</body></html>");
	srv_add(HDR200
	        "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-0\",\"resourceVersion\":\"7\"}}");
	assert_int_equal(kube_client_get(c, &kube_res_pods, "default", "web-0", &obj, &err), 0);
	assert_string_equal(kube_object_resource_version(obj), "7");
	assert_string_equal(kube_object_name(obj), "web-0");
	assert_null(kube_object_namespace(obj));
	json_decref(obj);
	assert_int_equal(srv.nreq, 6);
	assert_non_null(
	    strstr(srv.reqs[0], "GET /api/v1/namespaces/default/pods/web-0 HTTP/1.1\r\n"));
	assert_non_null(strstr(srv.reqs[0], "\r\nAccept: application/json\r\n"));
	assert_null(strstr(srv.reqs[0], "Authorization")); /* anonymous config */
	kube_client_free(c);
}

static void test_response_limit_without_length(void **state)
{
	kube_client_opts o;
	kube_client *c;
	json_t *obj = NULL;
	sigil_err err = {0};
	size_t hl = strlen(HDR200), n = hl + 100000;
	char *big = malloc(n);

	memcpy(big, HDR200, hl);
	memset(big + hl, ' ', n - hl);
	big[hl] = '{';
	srv_add_owned(big, n);
	kube_client_opts_init(&o);
	o.max_response = 10000;
	c = new_client(&o);
	assert_int_equal(kube_client_get(c, &kube_res_configmaps, "default", "big", &obj, &err),
	                 SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "exceeds the 10000-byte limit"));
	kube_client_free(c);
}

static void test_delete_and_patch_requests(void **state)
{
	kube_client *c = new_client(NULL);
	sigil_err err = {0};
	json_t *patch = json_pack("{s:{s:{s:n}}}", "metadata", "annotations", "a");
	json_t *obj = NULL;

	srv_add(HDR200 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Success\"}");
	srv_add(HDR200 "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}");
	assert_int_equal(kube_client_delete(c, &kube_res_secrets, "ns1", "s1", "42", &err), 0);
	assert_int_equal(kube_client_patch(c, &kube_res_pods, "ns1", "p", patch, &obj, &err), 0);
	assert_non_null(strstr(srv.reqs[0], "DELETE /api/v1/namespaces/ns1/secrets/s1 HTTP/1.1"));
	assert_non_null(strstr(srv.reqs[0], "Content-Type: application/json"));
	assert_non_null(strstr(srv.reqs[0], "\"preconditions\":{\"resourceVersion\":\"42\"}"));
	assert_non_null(strstr(srv.reqs[1], "PATCH /api/v1/namespaces/ns1/pods/p HTTP/1.1"));
	assert_non_null(strstr(srv.reqs[1], "Content-Type: application/merge-patch+json"));
	assert_non_null(strstr(srv.reqs[1], "{\"metadata\":{\"annotations\":{\"a\":null}}}"));
	json_decref(obj);
	json_decref(patch);

	/* Refused before anything is sent. */
	patch = json_pack("[i]", 1);
	assert_int_equal(kube_client_patch(c, &kube_res_pods, "ns1", "p", patch, &obj, &err),
	                 SIGIL_E_INVALID);
	json_decref(patch);
	assert_int_equal(kube_client_delete(c, &kube_res_pods, "ns1", NULL, NULL, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(kube_client_evict_pod(c, NULL, "p", &err), SIGIL_E_INVALID);
	obj = json_pack("{s:{s:s, s:s}}", "metadata", "name", "x", "namespace", "other");
	assert_int_equal(kube_client_create(c, &kube_res_configmaps, "ns1", obj, NULL, &err),
	                 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "differs from the request's"));
	assert_int_equal(kube_client_create(c, &kube_res_configmaps, NULL, obj, NULL, &err),
	                 SIGIL_E_INVALID);
	json_decref(obj);
	assert_int_equal(srv.nreq, 2);
	kube_client_free(c);
}

static int no_change(json_t *obj, void *ctx, sigil_err *err)
{
	(*(int *)ctx)++;
	return 1;
}

static int mutate_fails(json_t *obj, void *ctx, sigil_err *err)
{
	return sigil_err_set(err, SIGIL_E_PRECOND, "refusing");
}

static void test_update_retry_paths(void **state)
{
	kube_client *c = new_client(NULL);
	sigil_err err = {0};
	json_t *obj = NULL;
	int calls = 0;

	srv_add(HDR200
	        "{\"kind\":\"Lease\",\"metadata\":{\"name\":\"l\",\"resourceVersion\":\"3\"}}");
	srv_add(HDR200
	        "{\"kind\":\"Lease\",\"metadata\":{\"name\":\"l\",\"resourceVersion\":\"3\"}}");
	srv_add(HDR200 "{\"kind\":\"Lease\",\"metadata\":{\"name\":\"l\"}}");
	/* No change needed: nothing is written. */
	assert_int_equal(kube_client_update_retry(c, &kube_res_leases, "default", "l", 3, no_change,
	                                          &calls, &obj, &err),
	                 0);
	assert_int_equal(calls, 1);
	assert_string_equal(kube_object_resource_version(obj), "3");
	json_decref(obj);
	assert_int_equal(kube_client_update_retry(c, &kube_res_leases, "default", "l", 3,
	                                          mutate_fails, NULL, NULL, &err),
	                 SIGIL_E_PRECOND);
	/* An object without a resourceVersion cannot be updated safely. */
	assert_int_equal(kube_client_update_retry(c, &kube_res_leases, "default", "l", 3, no_change,
	                                          &calls, NULL, &err),
	                 SIGIL_E_CORRUPT);
	assert_int_equal(srv.nreq, 3);
	for (size_t i = 0; i < srv.nreq; i++)
		assert_non_null(strstr(
		    srv.reqs[i], "GET /apis/coordination.k8s.io/v1/namespaces/default/leases/l "));
	kube_client_free(c);
}

static void test_rate_limit(void **state)
{
	kube_client_opts o;
	kube_client *c;
	sigil_err err = {0};
	int64_t t0, dt;

	kube_client_opts_init(&o);
	o.qps = 10;
	o.burst = 2;
	c = new_client(&o);
	for (int i = 0; i < 6; i++)
		srv_add(HDR200 "{}");
	t0 = sigil_mono_ms();
	for (int i = 0; i < 6; i++) {
		json_t *obj = NULL;

		assert_int_equal(kube_client_get(c, &kube_res_nodes, NULL, "n", &obj, &err), 0);
		json_decref(obj);
	}
	dt = sigil_mono_ms() - t0;
	/* Burst of 2, then 4 more at 10/s: about 400 ms. */
	if (dt < 350)
		fail_msg("6 requests at qps 10 burst 2 took only %lld ms", (long long)dt);
	kube_client_free(c);
}

/* ---- watch ------------------------------------------------------------------------ */

typedef struct seen {
	char log[2048];
	int stop_after;
	int n;
	int fail_with;
} seen;

static const char *const type_names[] = {"SYNC", "ADDED", "MODIFIED", "DELETED"};

static int record(const kube_watch_event *ev, void *ctx, sigil_err *err)
{
	seen *s = ctx;
	size_t l = strlen(s->log);
	const char *name = ev->type == KUBE_WATCH_SYNC ? "*" : kube_object_name(ev->object);

	snprintf(s->log + l, sizeof(s->log) - l, "%s %s %s;", type_names[ev->type],
	         name ? name : "?", ev->resource_version);
	s->n++;
	if (s->fail_with && s->n >= s->stop_after)
		return sigil_err_set(err, s->fail_with, "callback says no");
	return s->stop_after && s->n >= s->stop_after ? 1 : 0;
}

#define EV(type, name, rv)                                                                         \
	"{\"type\":\"" type                                                                        \
	"\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"" name     \
	"\",\"namespace\":\"default\",\"resourceVersion\":\"" rv "\"}}}\n"

static void test_watch_resume_gone_relist(void **state)
{
	kube_client *c = new_client(NULL);
	kube_watch_opts o = {.resource_version = "4", .timeout_seconds = 30};
	char last[KUBE_MAX_RESOURCE_VERSION + 1];
	seen s = {.stop_after = 5};
	sigil_err err = {0};
	char ev1[] = EV("ADDED", "a", "5");

	/* Stream 1: the first event split mid-JSON across two writes. */
	{
		char resp[1024];
		size_t half = strlen(ev1) / 2;

		snprintf(resp, sizeof(resp), HDR200 "%.*s" PAUSE "%s" EV("MODIFIED", "a", "6"),
		         (int)half, ev1, ev1 + half);
		srv_add(resp);
	}
	/* Stream 2: the version is gone. */
	srv_add(HDR200 "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
	               "\"metadata\":{},"
	               "\"status\":\"Failure\",\"message\":\"too old resource version: 6 "
	               "(9)\",\"reason\":\"Expired\","
	               "\"code\":410}}\n");
	/* The relist. */
	srv_add(
	    HDR200
	    "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"10\"},"
	    "\"items\":[{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"9\"}}]}");
	/* Stream 3: a bookmark, an unknown type (ignored), CRLF line ends, then a deletion. */
	srv_add(HDR200 "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\","
	               "\"metadata\":"
	               "{\"resourceVersion\":\"12\"}}}\r\n\r\n"
	               "{\"type\":\"FUTURE\",\"object\":{}}\n" EV("DELETED", "a", "13")
	                   EV("ADDED", "b", "14"));
	o.last_rv = last;
	o.last_rv_size = sizeof(last);
	s.stop_after = 4;
	assert_int_equal(kube_client_watch(c, &kube_res_pods, "default", &o, record, &s, &err), 0);
	assert_string_equal(s.log, "ADDED a 5;MODIFIED a 6;SYNC * 10;DELETED a 13;");
	assert_string_equal(last, "13");
	assert_int_equal(srv.nreq, 4);
	assert_non_null(strstr(srv.reqs[0],
	                       "GET /api/v1/namespaces/default/pods?watch=1&resourceVersion=4&"
	                       "allowWatchBookmarks=true&timeoutSeconds=30 HTTP/1.1"));
	assert_non_null(strstr(srv.reqs[1], "?watch=1&resourceVersion=6&"));
	assert_non_null(
	    strstr(srv.reqs[2], "GET /api/v1/namespaces/default/pods?limit=500 HTTP/1.1"));
	assert_non_null(strstr(srv.reqs[3], "?watch=1&resourceVersion=10&"));
	kube_client_free(c);
}

static void test_watch_garbage_then_recovers(void **state)
{
	kube_client *c = new_client(NULL);
	kube_watch_opts o = {.resource_version = "4", .label_selector = "app in (a,b)"};
	seen s = {.stop_after = 1};
	sigil_err err = {0};

	srv_add(HDR200 "this is not an event\n");
	srv_add(HDR200 "{\"type\":\"ADDED\",\"object\":\"not an object\"}\n");
	srv_add(HDR200
	        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"x\",\"resourceVersion\":"
	        "\"bad rv with spaces\"}}}\n");
	srv_add(HDR200 EV("ADDED", "b", "8"));
	assert_int_equal(kube_client_watch(c, &kube_res_pods, NULL, &o, record, &s, &err), 0);
	assert_string_equal(s.log, "ADDED b 8;");
	assert_int_equal(srv.nreq, 4);
	/* Resumed from the same version each time, selector escaped. */
	for (size_t i = 0; i < 4; i++)
		assert_non_null(strstr(srv.reqs[i], "GET /api/v1/pods?watch=1&resourceVersion=4&"
		                                    "allowWatchBookmarks=true&timeoutSeconds=300&"
		                                    "labelSelector=app%20in%20%28a%2Cb%29 "));
	kube_client_free(c);
}

static void test_watch_errors_end_it(void **state)
{
	kube_client *c = new_client(NULL);
	kube_watch_opts o = {.resource_version = "4"};
	seen s = {0};
	sigil_err err = {0};

	srv_add(
	    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
	    "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"pods is forbidden: User "
	    "\\\"x\\\" cannot "
	    "watch resource \\\"pods\\\"\",\"reason\":\"Forbidden\",\"code\":403}");
	assert_int_equal(kube_client_watch(c, &kube_res_pods, "default", &o, record, &s, &err),
	                 SIGIL_E_PERM);
	assert_non_null(strstr(err.msg, "watch pods in namespace default: pods is forbidden"));

	/* An ERROR event other than 410 that is not transient. */
	srv_add(HDR200
	        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"message\":\"bad selector\","
	        "\"reason\":\"BadRequest\",\"code\":400}}\n");
	assert_int_equal(kube_client_watch(c, &kube_res_pods, "default", &o, record, &s, &err),
	                 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "bad selector"));

	/* A callback error ends the watch with that error. */
	srv_add(HDR200 EV("ADDED", "a", "5"));
	s = (seen){.stop_after = 1, .fail_with = SIGIL_E_IO};
	assert_int_equal(kube_client_watch(c, &kube_res_pods, "default", &o, record, &s, &err),
	                 SIGIL_E_IO);
	assert_string_equal(err.msg, "callback says no");
	assert_int_equal(srv.nreq, 3);
	kube_client_free(c);
}

static void test_watch_gives_up(void **state)
{
	kube_client_opts ko;
	kube_client *c;
	kube_watch_opts o = {.resource_version = "4"};
	seen s = {0};
	sigil_err err = {0};

	kube_client_opts_init(&ko);
	ko.max_retries = 2;
	ko.backoff_base_ms = 5;
	ko.backoff_max_ms = 10;
	c = new_client(&ko);
	for (int i = 0; i < 3; i++)
		srv_add("HTTP/1.1 500 Internal Server Error\r\nConnection: "
		        "close\r\nContent-Length: 4\r\n\r\noops");
	assert_int_equal(kube_client_watch(c, &kube_res_pods, "default", &o, record, &s, &err),
	                 SIGIL_E_UNAVAIL);
	assert_non_null(strstr(err.msg, "giving up after 3 failed attempts"));
	assert_int_equal(srv.nreq, 3);

	/* A server that says 410 right after every LIST: no hot loop. */
	for (int i = 0; i < 3; i++) {
		srv_add(HDR200 "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"10\"},"
		               "\"items\":[]}");
		srv_add(HDR200
		        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"message\":\"too old "
		        "resource version\",\"reason\":\"Expired\",\"code\":410}}\n");
	}
	o.resource_version = NULL;
	s = (seen){0};
	assert_int_equal(kube_client_watch(c, &kube_res_pods, "default", &o, record, &s, &err),
	                 KUBE_E_GONE);
	assert_non_null(strstr(err.msg, "giving up after 3 failed attempts"));
	assert_string_equal(s.log, "SYNC * 10;SYNC * 10;SYNC * 10;");
	assert_int_equal(srv.nreq, 9);
	kube_client_free(c);
}

static void test_watch_event_too_big(void **state)
{
	kube_client *c = new_client(NULL);
	kube_watch_opts o = {.resource_version = "4"};
	seen s = {0};
	sigil_err err = {0};
	size_t hl = strlen(HDR200), n = hl + KUBE_MAX_WATCH_EVENT + 100;
	char *big = malloc(n);

	memcpy(big, HDR200, hl);
	memset(big + hl, 'x', n - hl);
	srv_add_owned(big, n);
	assert_int_equal(kube_client_watch(c, &kube_res_pods, "default", &o, record, &s, &err),
	                 SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "an event exceeds"));
	kube_client_free(c);
}

static atomic_int stop_flag;

static void *raise_stop(void *arg)
{
	usleep(300000);
	atomic_store(&stop_flag, 1);
	return NULL;
}

static void test_watch_stop_and_deadline(void **state)
{
	kube_client *c = new_client(NULL);
	kube_watch_opts o = {.resource_version = "4", .stop = &stop_flag};
	seen s = {0};
	sigil_err err = {0};
	pthread_t th;
	int64_t t0, dt;

	/* An idle stream: only the stop flag ends it. */
	srv_add(HDR200 EV("ADDED", "a", "5") HOLD);
	atomic_store(&stop_flag, 0);
	pthread_create(&th, NULL, raise_stop, NULL);
	t0 = sigil_mono_ms();
	assert_int_equal(kube_client_watch(c, &kube_res_pods, "default", &o, record, &s, &err), 0);
	dt = sigil_mono_ms() - t0;
	pthread_join(th, NULL);
	assert_string_equal(s.log, "ADDED a 5;");
	if (dt < 250 || dt > 2500)
		fail_msg("stop took %lld ms", (long long)dt);

	/* The same with max_duration_ms. */
	srv_add(HDR200 HOLD);
	o = (kube_watch_opts){.resource_version = "4", .max_duration_ms = 300};
	t0 = sigil_mono_ms();
	assert_int_equal(kube_client_watch(c, &kube_res_pods, "default", &o, record, &s, &err), 0);
	dt = sigil_mono_ms() - t0;
	if (dt < 250 || dt > 2500)
		fail_msg("max_duration took %lld ms", (long long)dt);

	o = (kube_watch_opts){.resource_version = "4"};
	assert_int_equal(kube_client_watch(c, &kube_res_pods, "default", &o, NULL, &s, &err),
	                 SIGIL_E_INVALID);
	{
		char tiny[4];

		o.last_rv = tiny;
		o.last_rv_size = sizeof(tiny);
		assert_int_equal(
		    kube_client_watch(c, &kube_res_pods, "default", &o, record, &s, &err),
		    SIGIL_E_INVALID);
	}
	kube_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resources),
	    cmocka_unit_test(test_client_new_checks),
	    cmocka_unit_test_setup_teardown(test_answers_that_are_not_objects, srv_setup,
	                                    srv_teardown),
	    cmocka_unit_test_setup_teardown(test_response_limit_without_length, srv_setup,
	                                    srv_teardown),
	    cmocka_unit_test_setup_teardown(test_delete_and_patch_requests, srv_setup,
	                                    srv_teardown),
	    cmocka_unit_test_setup_teardown(test_update_retry_paths, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_rate_limit, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_watch_resume_gone_relist, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_watch_garbage_then_recovers, srv_setup,
	                                    srv_teardown),
	    cmocka_unit_test_setup_teardown(test_watch_errors_end_it, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_watch_gives_up, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_watch_event_too_big, srv_setup, srv_teardown),
	    cmocka_unit_test_setup_teardown(test_watch_stop_and_deadline, srv_setup, srv_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
