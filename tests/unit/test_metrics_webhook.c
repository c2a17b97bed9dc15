/* metrics/webhook against tests/fakes/alert_receiver.py (a stdlib Python
 * Alertmanager v2 receiver, started here): delivery and the JSON shape
 * Alertmanager validates, bearer token and URL handling, retry after 5xx
 * and 429, no retry after 400, attempts exhausted, a full queue, a hung
 * receiver (timeout), a refused connection, stop with work pending, the
 * registry counters, and refused alerts and configurations. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metrics/webhook.h"

#define WAIT_MS 60000 /* generous: a loaded CI machine */

static pid_t recv_pid;
static uint16_t recv_port;
static char tmpdir[] = "/tmp/sigil-webhook-XXXXXX";
static char base_url[128];

/* ---- the receiver ------------------------------------------------------------ */

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int start_receiver(void **state)
{
	const char *src = getenv("SIGIL_SOURCE_DIR");
	char script[1024], portfile[256];

	if (!src)
		src = ".";
	snprintf(script, sizeof(script), "%s/tests/fakes/alert_receiver.py", src);
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(portfile, sizeof(portfile), "%s/port", tmpdir);
	recv_pid = fork();
	if (recv_pid < 0)
		return -1;
	if (recv_pid == 0) {
		/* Never outlive the test, even when it crashes. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl("/usr/bin/python3", "python3", script, "--port-file", portfile, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < WAIT_MS / 50; i++) {
		FILE *f = fopen(portfile, "r");
		unsigned p = 0;

		if (f) {
			char line[16] = "";

			if (fgets(line, sizeof(line), f)) {
				char *end;
				unsigned long v = strtoul(line, &end, 10);

				if (end != line && (*end == '\n' || !*end) && v > 0 && v < 65536)
					p = (unsigned)v;
			}
			fclose(f);
		}
		if (p) {
			recv_port = (uint16_t)p;
			snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%u", p);
			return 0;
		}
		if (waitpid(recv_pid, NULL, WNOHANG) == recv_pid) {
			recv_pid = 0;
			return -1;
		}
		sleep_ms(50);
	}
	return -1;
}

static int stop_receiver(void **state)
{
	char path[256];

	if (recv_pid > 0) {
		kill(recv_pid, SIGTERM);
		waitpid(recv_pid, NULL, 0);
	}
	snprintf(path, sizeof(path), "%s/port", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/token", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return 0;
}

typedef struct membuf {
	char *p;
	size_t len;
} membuf;

static size_t mem_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	membuf *m = ud;
	size_t n = size * nmemb;
	char *np = realloc(m->p, m->len + n + 1);

	if (!np)
		return 0;
	m->p = np;
	memcpy(m->p + m->len, p, n);
	m->len += n;
	m->p[m->len] = '\0';
	return n;
}

/* A request to the receiver's control API; returns the parsed answer. */
static json_t *control(const char *method, const char *path, const char *body)
{
	char url[256];
	membuf m = {0};
	long status = 0;
	CURL *c = curl_easy_init();
	json_t *j;

	assert_non_null(c);
	snprintf(url, sizeof(url), "%s%s", base_url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
	if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	assert_int_equal(status, 200);
	j = json_loads(m.p ? m.p : "null", JSON_DECODE_ANY, NULL);
	free(m.p);
	assert_non_null(j);
	return j;
}

static void configure(const char *body)
{
	json_decref(control("POST", "/_fake/config", body));
}

static int reset_receiver(void **state)
{
	configure("{\"reset\": true}");
	return 0;
}

/* Every alert POST the receiver answered. */
static json_t *requests(void)
{
	json_t *j = control("GET", "/_fake/requests", NULL);

	assert_true(json_is_array(j));
	return j;
}

static void wait_inflight(int n)
{
	for (int i = 0; i < WAIT_MS / 20; i++) {
		json_t *st = control("GET", "/_fake/state", NULL);
		json_int_t v = json_integer_value(json_object_get(st, "inflight"));

		json_decref(st);
		if (v == n)
			return;
		sleep_ms(20);
	}
	fail_msg("receiver never had %d requests in flight", n);
}

static metrics_webhook *start(metrics_webhook_config *cfg)
{
	metrics_webhook *wh = NULL;
	sigil_err err = {0};

	if (!cfg->url)
		cfg->url = base_url;
	if (metrics_webhook_start(cfg, &wh, &err) != 0)
		fail_msg("metrics_webhook_start: %s", err.msg);
	return wh;
}

static void send_simple(metrics_webhook *wh, const char *name)
{
	const metrics_label l[] = {{"alertname", name}, {"severity", "warning"}};
	metrics_alert a = {.labels = l, .n_labels = 2, .summary = "s"};
	sigil_err err = {0};

	if (metrics_webhook_send(wh, &a, &err) != 0)
		fail_msg("metrics_webhook_send: %s", err.msg);
}

static metrics_webhook_stats stats(metrics_webhook *wh)
{
	metrics_webhook_stats s;

	metrics_webhook_get_stats(wh, &s);
	return s;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_delivery_shape(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	char token_path[256], url[200];
	metrics_webhook_config cfg = {
		.token_file = token_path,
		.generator_url = "https://sigil.example/csi?node=n1",
		.registry = reg,
	};
	const metrics_label firing[] = {
		{"alertname", "SigilCertificateExpiringSoon"},
		{"severity", "warning"},
		{"namespace", "default"},
		{"pod", "web-0"},
		{"volume", "tls"},
		{"class", "tls"},
	};
	const metrics_label resolved[] = {
		{"alertname", "SigilRenewalFailed"},
		{"pod", "caf\xc3\xa9 \"quoted\"\n"},
	};
	metrics_alert a1 = {.labels = firing,
			    .n_labels = 6,
			    .summary = "Certificate of default/web-0 expires in 5m",
			    .description = "Renewal failed 3 times: CA unavailable",
			    .starts_at = 1700000000};
	metrics_alert a2 = {
		.labels = resolved, .n_labels = 2, .starts_at = 1700000000, .ends_at = 1700000600};
	metrics_webhook *wh;
	metrics_webhook_stats s;
	sigil_err err = {0};
	json_t *reqs, *alerts = json_array();
	size_t i;
	json_t *r;
	char *text;
	size_t len;
	FILE *f;

	snprintf(token_path, sizeof(token_path), "%s/token", tmpdir);
	f = fopen(token_path, "w");
	assert_non_null(f);
	fputs("tok-123.abc\n", f);
	fclose(f);
	/* A trailing slash is fine: the path is appended once. */
	snprintf(url, sizeof(url), "%s/", base_url);
	cfg.url = url;
	wh = start(&cfg);
	assert_int_equal(metrics_webhook_send(wh, &a1, &err), 0);
	assert_int_equal(metrics_webhook_send(wh, &a2, &err), 0);
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	s = stats(wh);
	assert_int_equal(s.sent, 2);
	assert_int_equal(s.failed, 0);
	assert_int_equal(s.dropped, 0);

	reqs = requests();
	assert_true(json_array_size(reqs) >= 1 && json_array_size(reqs) <= 2);
	json_array_foreach(reqs, i, r) {
		json_t *body = json_object_get(r, "body");

		/* 200 means the receiver's postableAlerts validation passed. */
		assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
		assert_string_equal(json_string_value(json_object_get(r, "path")),
				    "/api/v2/alerts");
		assert_string_equal(json_string_value(json_object_get(r, "authorization")),
				    "Bearer tok-123.abc");
		assert_string_equal(json_string_value(json_object_get(r, "contentType")),
				    "application/json");
		assert_true(json_is_array(body));
		json_array_extend(alerts, body);
	}
	assert_int_equal(json_array_size(alerts), 2);
	{
		json_t *x = json_array_get(alerts, 0), *y = json_array_get(alerts, 1);
		json_t *want = json_pack(
			"{s:{s:s,s:s,s:s,s:s,s:s,s:s},s:{s:s,s:s},s:s,s:s}", "labels", "alertname",
			"SigilCertificateExpiringSoon", "severity", "warning", "namespace",
			"default", "pod", "web-0", "volume", "tls", "class", "tls", "annotations",
			"summary", "Certificate of default/web-0 expires in 5m", "description",
			"Renewal failed 3 times: CA unavailable", "startsAt", "2023-11-14T22:13:20Z",
			"generatorURL", "https://sigil.example/csi?node=n1");
		json_t *want2 = json_pack("{s:{s:s,s:s},s:{},s:s,s:s,s:s}", "labels", "alertname",
					  "SigilRenewalFailed", "pod", "caf\xc3\xa9 \"quoted\"\n",
					  "annotations", "startsAt", "2023-11-14T22:13:20Z", "endsAt",
					  "2023-11-14T22:23:20Z", "generatorURL",
					  "https://sigil.example/csi?node=n1");

		assert_non_null(want);
		assert_non_null(want2);
		if (!json_equal(x, want)) {
			char *got = json_dumps(x, JSON_SORT_KEYS);

			fail_msg("alert 1: %s", got);
		}
		assert_true(json_equal(y, want2));
		json_decref(want);
		json_decref(want2);
	}
	json_decref(alerts);
	json_decref(reqs);

	metrics_webhook_stop(wh);
	assert_int_equal(metrics_render(reg, &text, &len, &err), 0);
	assert_non_null(strstr(text, "\nsigil_alert_webhook_sent_total 2\n"));
	assert_non_null(strstr(text, "\nsigil_alert_webhook_failed_total 0\n"));
	assert_non_null(strstr(text, "\nsigil_alert_webhook_dropped_total 0\n"));
	free(text);
	metrics_registry_free(reg);
}

static void test_retry_after_500(void **state)
{
	metrics_webhook_config cfg = {.backoff_ms = 50,
				      .url = NULL};
	metrics_webhook *wh;
	metrics_webhook_stats s;
	json_t *reqs;
	char url[200];

	/* The full path given: used as it is. */
	snprintf(url, sizeof(url), "%s/api/v2/alerts", base_url);
	cfg.url = url;
	configure("{\"fail\": 2, \"status\": 500}");
	wh = start(&cfg);
	send_simple(wh, "A");
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	s = stats(wh);
	assert_int_equal(s.sent, 1);
	assert_int_equal(s.failed, 0);
	assert_int_equal(s.attempts, 3);
	reqs = requests();
	assert_int_equal(json_array_size(reqs), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(reqs, 0), "status")),
			 500);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(reqs, 1), "status")),
			 500);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(reqs, 2), "status")),
			 200);
	/* The same body every time. */
	assert_string_equal(json_string_value(json_object_get(json_array_get(reqs, 0), "raw")),
			    json_string_value(json_object_get(json_array_get(reqs, 2), "raw")));
	assert_string_equal(json_string_value(json_object_get(json_array_get(reqs, 0), "path")),
			    "/api/v2/alerts");
	json_decref(reqs);
	metrics_webhook_stop(wh);
}

static void test_429_retried_400_final(void **state)
{
	metrics_webhook_config cfg = {.backoff_ms = 20};
	metrics_webhook *wh = start(&cfg);
	metrics_webhook_stats s;

	configure("{\"fail\": 1, \"status\": 429}");
	send_simple(wh, "A");
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	s = stats(wh);
	assert_int_equal(s.sent, 1);
	assert_int_equal(s.attempts, 2);
	configure("{\"fail\": 1, \"status\": 400}");
	send_simple(wh, "B");
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	s = stats(wh);
	assert_int_equal(s.sent, 1);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.attempts, 3); /* 400: not retried */
	metrics_webhook_stop(wh);
}

static void test_attempts_exhausted(void **state)
{
	metrics_webhook_config cfg = {.backoff_ms = 10, .max_attempts = 3};
	metrics_webhook *wh = start(&cfg);
	metrics_webhook_stats s;
	json_t *reqs;

	configure("{\"fail\": 10, \"status\": 503}");
	send_simple(wh, "A");
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	s = stats(wh);
	assert_int_equal(s.sent, 0);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.attempts, 3);
	reqs = requests();
	assert_int_equal(json_array_size(reqs), 3);
	json_decref(reqs);
	metrics_webhook_stop(wh);
}

static void test_queue_full(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_webhook_config cfg = {.max_queue = 2, .registry = reg, .timeout_ms = WAIT_MS};
	metrics_webhook *wh = start(&cfg);
	metrics_webhook_stats s;
	const metrics_label l[] = {{"alertname", "D"}};
	metrics_alert a = {.labels = l, .n_labels = 1};
	sigil_err err = {0};
	json_t *reqs;
	size_t total = 0, i;
	json_t *r;
	char *text;
	size_t len;

	configure("{\"hang\": true}");
	send_simple(wh, "A");
	/* A is in flight (held by the receiver); the queue is empty. */
	wait_inflight(1);
	send_simple(wh, "B");
	send_simple(wh, "C");
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "full"));
	s = stats(wh);
	assert_int_equal(s.dropped, 1);
	configure("{\"hang\": false}");
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	s = stats(wh);
	assert_int_equal(s.sent, 3);
	assert_int_equal(s.dropped, 1);
	reqs = requests();
	json_array_foreach(reqs, i, r) total += json_array_size(json_object_get(r, "body"));
	assert_int_equal(total, 3);
	json_decref(reqs);
	metrics_webhook_stop(wh);
	assert_int_equal(metrics_render(reg, &text, &len, &err), 0);
	assert_non_null(strstr(text, "\nsigil_alert_webhook_dropped_total 1\n"));
	assert_non_null(strstr(text, "\nsigil_alert_webhook_sent_total 3\n"));
	free(text);
	metrics_registry_free(reg);
}

static void test_timeout_hung_receiver(void **state)
{
	metrics_webhook_config cfg = {.timeout_ms = 300, .max_attempts = 2, .backoff_ms = 10};
	metrics_webhook *wh = start(&cfg);
	metrics_webhook_stats s;

	configure("{\"hang\": true}");
	send_simple(wh, "A");
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	s = stats(wh);
	assert_int_equal(s.sent, 0);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.attempts, 2);
	configure("{\"hang\": false}");
	metrics_webhook_stop(wh);
}

static void test_connection_refused(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char url[128];
	metrics_webhook_config cfg = {.url = url, .max_attempts = 3, .backoff_ms = 10};
	metrics_webhook *wh;
	metrics_webhook_stats s;

	/* A port that was free a moment ago and has no listener. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(a.sin_port));
	wh = start(&cfg);
	send_simple(wh, "A");
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	close(fd);
	s = stats(wh);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.attempts, 3);
	metrics_webhook_stop(wh);
}

static void test_token_file_problems(void **state)
{
	char token_path[256];
	metrics_webhook_config cfg = {.token_file = token_path, .max_attempts = 2,
				      .backoff_ms = 10};
	metrics_webhook *wh;
	metrics_webhook_stats s;
	json_t *reqs;
	FILE *f;

	/* Missing: nothing is sent without the token. */
	snprintf(token_path, sizeof(token_path), "%s/no-such-token", tmpdir);
	wh = start(&cfg);
	send_simple(wh, "A");
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	s = stats(wh);
	assert_int_equal(s.failed, 1);
	metrics_webhook_stop(wh);
	/* A token that would break the header line is refused too. */
	snprintf(token_path, sizeof(token_path), "%s/token", tmpdir);
	f = fopen(token_path, "w");
	assert_non_null(f);
	fputs("abc\r\nX-Evil: 1\n", f);
	fclose(f);
	wh = start(&cfg);
	send_simple(wh, "B");
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	s = stats(wh);
	assert_int_equal(s.failed, 1);
	metrics_webhook_stop(wh);
	reqs = requests();
	assert_int_equal(json_array_size(reqs), 0);
	json_decref(reqs);
}

static void test_stop_with_pending(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_webhook_config cfg = {.registry = reg, .timeout_ms = WAIT_MS};
	metrics_webhook *wh = start(&cfg);
	sigil_err err = {0};
	char *text;
	size_t len;

	configure("{\"hang\": true}");
	send_simple(wh, "A");
	wait_inflight(1);
	send_simple(wh, "B");
	/* Returns although the receiver never answers: the request in flight
	 * is aborted; both alerts count as dropped. */
	metrics_webhook_stop(wh);
	assert_int_equal(metrics_render(reg, &text, &len, &err), 0);
	assert_non_null(strstr(text, "\nsigil_alert_webhook_dropped_total 2\n"));
	assert_non_null(strstr(text, "\nsigil_alert_webhook_sent_total 0\n"));
	free(text);
	configure("{\"hang\": false}");
	metrics_registry_free(reg);
}

static void test_invalid(void **state)
{
	metrics_webhook_config cfg = {0};
	metrics_webhook *wh = NULL;
	sigil_err err = {0};
	metrics_label l[METRICS_WEBHOOK_MAX_LABELS + 1];
	metrics_alert a = {.labels = l};
	char *big = malloc(METRICS_WEBHOOK_MAX_URL + 16);
	char *bigval = malloc(METRICS_WEBHOOK_MAX_VALUE + 2);

	assert_non_null(big);
	assert_non_null(bigval);
	/* Configurations. */
	assert_int_equal(metrics_webhook_start(NULL, &wh, &err), SIGIL_E_INVALID);
	assert_int_equal(metrics_webhook_start(&cfg, &wh, &err), SIGIL_E_INVALID);
	cfg.url = "ftp://x";
	assert_int_equal(metrics_webhook_start(&cfg, &wh, &err), SIGIL_E_INVALID);
	cfg.url = "http://a b";
	assert_int_equal(metrics_webhook_start(&cfg, &wh, &err), SIGIL_E_INVALID);
	memcpy(big, "http://", 7);
	memset(big + 7, 'a', METRICS_WEBHOOK_MAX_URL);
	big[METRICS_WEBHOOK_MAX_URL + 7] = '\0';
	cfg.url = big;
	assert_int_equal(metrics_webhook_start(&cfg, &wh, &err), SIGIL_E_LIMIT);
	cfg.url = base_url;
	cfg.max_queue = METRICS_WEBHOOK_MAX_QUEUE + 1;
	assert_int_equal(metrics_webhook_start(&cfg, &wh, &err), SIGIL_E_INVALID);
	cfg.max_queue = 0;
	cfg.generator_url = "\xff";
	assert_int_equal(metrics_webhook_start(&cfg, &wh, &err), SIGIL_E_INVALID);
	cfg.generator_url = NULL;
	assert_null(wh);

	wh = start(&cfg);
	assert_int_equal(metrics_webhook_send(wh, NULL, &err), SIGIL_E_INVALID);
	l[0] = (metrics_label){"severity", "x"};
	a.n_labels = 1;
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "alertname"));
	l[0] = (metrics_label){"alertname", "A"};
	l[1] = (metrics_label){"bad-name", "x"};
	a.n_labels = 2;
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	l[1] = (metrics_label){"pod", "\xc3"};
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	l[1] = (metrics_label){"pod", ""};
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	l[1] = (metrics_label){"pod", NULL};
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	l[1] = (metrics_label){"alertname", "B"};
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	memset(bigval, 'v', METRICS_WEBHOOK_MAX_VALUE + 1);
	bigval[METRICS_WEBHOOK_MAX_VALUE + 1] = '\0';
	l[1] = (metrics_label){"pod", bigval};
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	a.n_labels = 1;
	a.summary = "\xed\xa0\x80";
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	a.summary = bigval;
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	a.summary = NULL;
	a.starts_at = -1;
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	a.starts_at = 0;
	a.ends_at = (int64_t)1 << 50;
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_INVALID);
	a.ends_at = 0;
	for (size_t i = 0; i <= METRICS_WEBHOOK_MAX_LABELS; i++) {
		static char names[METRICS_WEBHOOK_MAX_LABELS + 1][16];

		snprintf(names[i], sizeof(names[i]), i ? "l%zu" : "alertname", i);
		l[i] = (metrics_label){names[i], "v"};
	}
	a.n_labels = METRICS_WEBHOOK_MAX_LABELS + 1;
	assert_int_equal(metrics_webhook_send(wh, &a, &err), SIGIL_E_LIMIT);
	/* At the limit: fine, and delivered. */
	a.n_labels = METRICS_WEBHOOK_MAX_LABELS;
	bigval[METRICS_WEBHOOK_MAX_VALUE] = '\0';
	a.description = bigval;
	assert_int_equal(metrics_webhook_send(wh, &a, &err), 0);
	assert_int_equal(metrics_webhook_flush(wh, WAIT_MS), 0);
	assert_int_equal(stats(wh).sent, 1);
	assert_int_equal(stats(wh).dropped + stats(wh).failed, 0);
	metrics_webhook_stop(wh);
	metrics_webhook_stop(NULL);
	free(big);
	free(bigval);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_delivery_shape, reset_receiver),
		cmocka_unit_test_setup(test_retry_after_500, reset_receiver),
		cmocka_unit_test_setup(test_429_retried_400_final, reset_receiver),
		cmocka_unit_test_setup(test_attempts_exhausted, reset_receiver),
		cmocka_unit_test_setup(test_queue_full, reset_receiver),
		cmocka_unit_test_setup(test_timeout_hung_receiver, reset_receiver),
		cmocka_unit_test_setup(test_connection_refused, reset_receiver),
		cmocka_unit_test_setup(test_token_file_problems, reset_receiver),
		cmocka_unit_test_setup(test_stop_with_pending, reset_receiver),
		cmocka_unit_test_setup(test_invalid, reset_receiver),
	};
	int rc;

	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, start_receiver, stop_receiver);
	curl_global_cleanup();
	return rc;
}
