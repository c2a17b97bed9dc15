/* metrics/metrics: exact text exposition, escaping, float formatting,
 * parsing back with the independent prometheus_client parser, names and
 * registration rules, child removal, limits and drop accounting, collect
 * callbacks, and exact totals under concurrent updates and scrapes. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics/metrics.h"

static char *render(metrics_registry *reg)
{
	sigil_err err = {0};
	char *out = NULL;
	size_t len = 0;

	assert_int_equal(metrics_render(reg, &out, &len, &err), 0);
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	return out;
}

/* The registry's own drop counter is always first; tests compare what
 * follows it. */
static const char *after_dropped(const char *text)
{
	const char *p = text;

	/* Labeled and without series until something is dropped. */
	if (strncmp(p, "# HELP sigil_metrics_updates_dropped_total ", 43) != 0)
		return p;
	p = strstr(p, "# TYPE sigil_metrics_updates_dropped_total counter\n");
	assert_non_null(p);
	p = strchr(p, '\n') + 1;
	while (strncmp(p, "sigil_metrics_updates_dropped_total", 35) == 0)
		p = strchr(p, '\n') + 1;
	return p;
}

static double dropped(metrics_registry *reg, const char *family, const char *reason)
{
	/* Read back through the rendered text, as a scrape would. */
	char *text = render(reg);
	char needle[256];
	const char *p;
	double v = 0;

	snprintf(needle, sizeof(needle),
		 "sigil_metrics_updates_dropped_total{family=\"%s\",reason=\"%s\"} ", family,
		 reason);
	p = strstr(text, needle);
	if (p)
		v = strtod(p + strlen(needle), NULL);
	free(text);
	return v;
}

static void test_exposition_exact(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_family *req, *exp, *lat;
	static const char *const rl[] = {"method", "code"};
	static const char *const el[] = {"namespace", "pod", "volume", "class"};
	static const double b[] = {0.25, 0.5, 1};
	sigil_err err = {0};
	char *text;

	assert_non_null(reg);
	assert_int_equal(metrics_counter(reg, "sigil_requests_total",
					 "Requests.\nSecond line with a \\ backslash.", rl, 2, &req,
					 &err),
			 0);
	assert_int_equal(metrics_gauge(reg, "sigil_volume_not_after_seconds",
				       "Volume notAfter (unix seconds).", el, 4, &exp, &err),
			 0);
	assert_int_equal(metrics_histogram(reg, "sigil_issue_seconds", "Issuance latency.", NULL,
					   0, b, 3, &lat, &err),
			 0);
	metrics_inc(req, (const char *const[]){"Publish", "OK"}, 1);
	metrics_inc(req, (const char *const[]){"Publish", "OK"}, 2);
	metrics_inc(req, (const char *const[]){"Unpublish", "say \"hi\"\\\nnext"}, 1);
	metrics_set(exp, (const char *const[]){"default", "web-0", "tls", "tls"}, 1700000000);
	metrics_set(exp, (const char *const[]){"kube-system", "dns-1", "certs", "tls"}, 0.5);
	/* Binary fractions, so that the sum is exact. */
	metrics_observe(lat, NULL, 0.125);
	metrics_observe(lat, NULL, 0.25); /* le is inclusive */
	metrics_observe(lat, NULL, 0.75);
	metrics_observe(lat, NULL, 20);

	text = render(reg);
	assert_string_equal(
		after_dropped(text),
		"# HELP sigil_requests_total Requests.\\nSecond line with a \\\\ backslash.\n"
		"# TYPE sigil_requests_total counter\n"
		"sigil_requests_total{method=\"Publish\",code=\"OK\"} 3\n"
		"sigil_requests_total{method=\"Unpublish\",code=\"say \\\"hi\\\"\\\\\\nnext\"} 1\n"
		"# HELP sigil_volume_not_after_seconds Volume notAfter (unix seconds).\n"
		"# TYPE sigil_volume_not_after_seconds gauge\n"
		"sigil_volume_not_after_seconds{namespace=\"default\",pod=\"web-0\",volume=\"tls\","
		"class=\"tls\"} 1700000000\n"
		"sigil_volume_not_after_seconds{namespace=\"kube-system\",pod=\"dns-1\","
		"volume=\"certs\",class=\"tls\"} 0.5\n"
		"# HELP sigil_issue_seconds Issuance latency.\n"
		"# TYPE sigil_issue_seconds histogram\n"
		"sigil_issue_seconds_bucket{le=\"0.25\"} 2\n"
		"sigil_issue_seconds_bucket{le=\"0.5\"} 2\n"
		"sigil_issue_seconds_bucket{le=\"1\"} 3\n"
		"sigil_issue_seconds_bucket{le=\"+Inf\"} 4\n"
		"sigil_issue_seconds_sum 21.125\n"
		"sigil_issue_seconds_count 4\n");
	/* No update was dropped, so the drop counter has no series yet. */
	assert_null(strstr(text, "sigil_metrics_updates_dropped_total{"));
	free(text);
	metrics_registry_free(reg);
}

static void test_histogram_labels(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_family *h;
	static const char *const l[] = {"class"};
	sigil_err err = {0};
	char *text;
	double v;

	assert_int_equal(metrics_histogram(reg, "lat_seconds", "L.", l, 1, (const double[]){1, 2},
					   2, &h, &err),
			 0);
	metrics_observe(h, (const char *const[]){"tls"}, 1.5);
	metrics_observe(h, (const char *const[]){"tls"}, -3); /* below every bucket */
	text = render(reg);
	assert_non_null(strstr(text, "lat_seconds_bucket{class=\"tls\",le=\"1\"} 1\n"
				     "lat_seconds_bucket{class=\"tls\",le=\"2\"} 2\n"
				     "lat_seconds_bucket{class=\"tls\",le=\"+Inf\"} 2\n"
				     "lat_seconds_sum{class=\"tls\"} -1.5\n"
				     "lat_seconds_count{class=\"tls\"} 2\n"));
	free(text);
	assert_int_equal(metrics_get(h, (const char *const[]){"tls"}, &v), 0);
	assert_true(v == 2);
	metrics_registry_free(reg);
}

static void test_float_format(void **state)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{0, "0"},
		{-0.0, "-0"},
		{0.1, "0.1"},
		{1.0 / 3, "0.3333333333333333"},
		{0.1 + 0.2, "0.30000000000000004"},
		{1e-9, "1e-09"},
		{2.5e-7, "2.5e-07"},
		{1e21, "1e+21"},
		{123456789012.0, "123456789012"},
		{-42.25, "-42.25"},
		{INFINITY, "+Inf"},
		{-INFINITY, "-Inf"},
		{NAN, "NaN"},
	};
	metrics_registry *reg = metrics_registry_new();
	metrics_family *g;
	static const char *const l[] = {"i"};
	sigil_err err = {0};
	char *text;

	assert_int_equal(metrics_gauge(reg, "g", "G.", l, 1, &g, &err), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char idx[8];

		snprintf(idx, sizeof(idx), "%zu", i);
		metrics_set(g, (const char *const[]){idx}, cases[i].v);
	}
	text = render(reg);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char line[128];
		char *p;

		snprintf(line, sizeof(line), "g{i=\"%zu\"} %s\n", i, cases[i].text);
		p = strstr(text, line);
		if (!p)
			fail_msg("missing %s in\n%s", line, text);
		/* And it reads back to the same double. */
		if (!isnan(cases[i].v) && !isinf(cases[i].v))
			assert_true(strtod(cases[i].text, NULL) == cases[i].v);
	}
	free(text);
	metrics_registry_free(reg);
}

/* prometheus_client's own text parser (python3-prometheus-client) reads
 * what we render; it prints one canonical line per sample. */
static const char py_parser[] =
	"import sys\n"
	"from prometheus_client.parser import text_string_to_metric_families\n"
	"text = open(sys.argv[1], encoding='utf-8').read()\n"
	"for f in text_string_to_metric_families(text):\n"
	"    for s in f.samples:\n"
	"        labels = ','.join('%s=%r' % kv for kv in sorted(s.labels.items()))\n"
	"        print('%s|%s|%s|%r' % (f.type, s.name, labels, s.value))\n";

static char *python_parse(const char *text)
{
	char path[] = "/tmp/sigil-metrics-XXXXXX";
	int fd = mkstemp(path);
	char cmd[512];
	char *out = NULL;
	size_t cap = 0, len = 0;
	FILE *p;
	int st;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	{
		char pypath[] = "/tmp/sigil-metrics-py-XXXXXX";
		int pfd = mkstemp(pypath);

		assert_true(pfd >= 0);
		assert_int_equal(write(pfd, py_parser, strlen(py_parser)),
				 (ssize_t)strlen(py_parser));
		close(pfd);
		snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s", pypath, path);
		p = popen(cmd, "r");
		assert_non_null(p);
		for (;;) {
			char buf[4096];
			size_t n = fread(buf, 1, sizeof(buf), p);

			if (n == 0)
				break;
			if (len + n + 1 > cap) {
				cap = (len + n + 1) * 2;
				out = realloc(out, cap);
				assert_non_null(out);
			}
			memcpy(out + len, buf, n);
			len += n;
		}
		st = pclose(p);
		unlink(pypath);
	}
	unlink(path);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (!out)
		out = calloc(1, 1);
	out[len] = '\0';
	return out;
}

static void test_parse_back(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_family *c, *g, *h;
	static const char *const l[] = {"namespace", "pod"};
	sigil_err err = {0};
	char *text, *parsed;

	assert_int_equal(metrics_counter(reg, "sigil_renewals_total", "Renewals \\ \"q\".", l, 2,
					 &c, &err),
			 0);
	assert_int_equal(metrics_gauge(reg, "sigil_pool_depth", "Pool.", NULL, 0, &g, &err), 0);
	assert_int_equal(metrics_histogram(reg, "sigil_lat_seconds", "Latency.", NULL, 0,
					   metrics_latency_buckets, metrics_latency_buckets_n, &h,
					   &err),
			 0);
	metrics_inc(c, (const char *const[]){"ns\"1", "p\\o\nd\xc3\xa9"}, 7);
	metrics_set(g, NULL, 1.0 / 3);
	metrics_observe(h, NULL, 0.00390625);
	metrics_observe(h, NULL, 42);
	text = render(reg);
	parsed = python_parse(text);
	/* python repr of labels: the exact unescaped original strings. */
	if (!strstr(parsed, "counter|sigil_renewals_total|namespace='ns\"1',pod='p\\\\o\\ndé'|7.0\n"))
		fail_msg("parse back:\n%s\nfrom:\n%s", parsed, text);
	assert_non_null(strstr(parsed, "gauge|sigil_pool_depth||0.3333333333333333\n"));
	assert_non_null(strstr(parsed, "histogram|sigil_lat_seconds_bucket|le='0.005'|1.0\n"));
	assert_non_null(strstr(parsed, "histogram|sigil_lat_seconds_bucket|le='10'|1.0\n"));
	assert_non_null(strstr(parsed, "histogram|sigil_lat_seconds_bucket|le='+Inf'|2.0\n"));
	assert_non_null(strstr(parsed, "histogram|sigil_lat_seconds_sum||42.00390625\n"));
	assert_non_null(strstr(parsed, "histogram|sigil_lat_seconds_count||2.0\n"));
	free(parsed);
	free(text);
	metrics_registry_free(reg);
}

static void test_names(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_family *f = NULL, *f2 = NULL;
	static const char *const good[] = {"a", "namespace"};
	static const double b[] = {1, 2};
	sigil_err err = {0};
	char longname[METRICS_MAX_NAME + 2];

	assert_true(metrics_name_ok("sigil:ca_expiry_seconds"));
	assert_true(metrics_name_ok("_x9"));
	assert_false(metrics_name_ok("9x"));
	assert_false(metrics_name_ok(""));
	assert_false(metrics_name_ok("a-b"));
	assert_false(metrics_name_ok("a b"));
	assert_false(metrics_name_ok("é"));
	assert_false(metrics_name_ok(NULL));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(metrics_name_ok(longname));
	longname[METRICS_MAX_NAME] = '\0';
	assert_true(metrics_name_ok(longname));
	assert_true(metrics_label_name_ok("pod"));
	assert_false(metrics_label_name_ok("__name__"));
	assert_false(metrics_label_name_ok("a:b"));

	assert_int_equal(metrics_counter(reg, "bad-name", "h", NULL, 0, &f, &err),
			 SIGIL_E_INVALID);
	assert_null(f);
	assert_non_null(strstr(err.msg, "bad-name"));
	assert_int_equal(metrics_counter(reg, "x", "h", (const char *const[]){"__x"}, 1, &f, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(metrics_counter(reg, "x", "h", (const char *const[]){"a", "a"}, 2, &f,
					 &err),
			 SIGIL_E_INVALID);
	assert_int_equal(metrics_counter(reg, "x", "bad utf8 \xff", NULL, 0, &f, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(metrics_counter(reg, "x", "h",
					 (const char *const[]){"a", "b", "c", "d", "e", "f", "g",
							       "h", "i"},
					 9, &f, &err),
			 SIGIL_E_LIMIT);
	assert_int_equal(metrics_histogram(reg, "h", "h", (const char *const[]){"le"}, 1, b, 2,
					   &f, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(metrics_histogram(reg, "h", "h", NULL, 0, (const double[]){2, 1}, 2, &f,
					   &err),
			 SIGIL_E_INVALID);
	assert_int_equal(metrics_histogram(reg, "h", "h", NULL, 0, (const double[]){1, INFINITY},
					   2, &f, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(metrics_histogram(reg, "h", "h", NULL, 0, b, 0, &f, &err),
			 SIGIL_E_LIMIT);
	assert_null(f);

	/* Same shape: the same family; another shape: refused. */
	assert_int_equal(metrics_counter(reg, "shared_total", "h", good, 2, &f, &err), 0);
	assert_int_equal(metrics_counter(reg, "shared_total", "h", good, 2, &f2, &err), 0);
	assert_ptr_equal(f, f2);
	assert_int_equal(metrics_gauge(reg, "shared_total", "h", good, 2, &f2, &err),
			 SIGIL_E_EXISTS);
	assert_int_equal(metrics_counter(reg, "shared_total", "h", good, 1, &f2, &err),
			 SIGIL_E_EXISTS);
	/* A histogram's series names are taken. */
	assert_int_equal(metrics_histogram(reg, "lat", "h", NULL, 0, b, 2, &f, &err), 0);
	assert_int_equal(metrics_gauge(reg, "lat_count", "h", NULL, 0, &f2, &err),
			 SIGIL_E_EXISTS);
	assert_int_equal(metrics_gauge(reg, "q_sum", "h", NULL, 0, &f2, &err), 0);
	assert_int_equal(metrics_histogram(reg, "q", "h", NULL, 0, b, 2, &f2, &err),
			 SIGIL_E_EXISTS);
	metrics_registry_free(reg);
}

static void test_family_count_limit(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_family *f;
	sigil_err err = {0};
	size_t i;
	int r = 0;

	/* The registry's own drop counter is one family already. */
	for (i = 0; i < METRICS_MAX_FAMILIES + 1; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%zu", i);
		r = metrics_gauge(reg, name, "h", NULL, 0, &f, &err);
		if (r < 0)
			break;
	}
	assert_int_equal(r, SIGIL_E_LIMIT);
	assert_int_equal(i, METRICS_MAX_FAMILIES - 1);
	metrics_registry_free(reg);
}

static void test_label_values(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_family *g, *c;
	static const char *const l[] = {"v"};
	sigil_err err = {0};
	char *big = malloc(METRICS_MAX_LABEL_VALUE + 2);
	char *text;
	double v;

	assert_non_null(big);
	memset(big, 'x', METRICS_MAX_LABEL_VALUE + 1);
	big[METRICS_MAX_LABEL_VALUE + 1] = '\0';
	assert_true(metrics_label_value_ok(""));
	assert_true(metrics_label_value_ok("日本"));
	assert_false(metrics_label_value_ok("\xff"));
	assert_false(metrics_label_value_ok("\xc3"));         /* truncated */
	assert_false(metrics_label_value_ok("\xc0\xaf"));     /* overlong '/' */
	assert_false(metrics_label_value_ok("\xed\xa0\x80")); /* surrogate */
	assert_false(metrics_label_value_ok("\xf4\x90\x80\x80")); /* > U+10FFFF */
	assert_false(metrics_label_value_ok(big));
	assert_false(metrics_label_value_ok(NULL));

	assert_int_equal(metrics_gauge(reg, "g", "h", l, 1, &g, &err), 0);
	assert_int_equal(metrics_counter(reg, "c_total", "h", NULL, 0, &c, &err), 0);
	metrics_set(g, (const char *const[]){"\xff"}, 1);
	metrics_set(g, (const char *const[]){big}, 1);
	metrics_set(g, (const char *const[]){NULL}, 1);
	metrics_set(g, NULL, 1);
	big[METRICS_MAX_LABEL_VALUE] = '\0'; /* exactly the limit: accepted */
	metrics_set(g, (const char *const[]){big}, 2);
	assert_int_equal(metrics_get(g, (const char *const[]){big}, &v), 0);
	assert_true(v == 2);
	assert_true(dropped(reg, "g", "invalid_label_value") == 4);

	/* Wrong operations are dropped and counted too. */
	metrics_inc(c, NULL, -1);
	metrics_inc(c, NULL, NAN);
	metrics_set(c, NULL, 5);
	metrics_observe(g, (const char *const[]){"a"}, 1);
	assert_int_equal(metrics_get(c, NULL, &v), 0);
	assert_true(v == 0);
	assert_true(dropped(reg, "c_total", "invalid_value") == 2);
	assert_true(dropped(reg, "c_total", "wrong_type") == 1);
	assert_true(dropped(reg, "g", "wrong_type") == 1);
	/* A NULL family is a no-op. */
	metrics_inc(NULL, NULL, 1);
	assert_false(metrics_remove(NULL, NULL));
	text = render(reg);
	assert_null(strstr(text, "\xff"));
	free(text);
	free(big);
	metrics_registry_free(reg);
}

static void test_remove_and_clear(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_family *g;
	static const char *const l[] = {"namespace", "pod"};
	sigil_err err = {0};
	char *text;
	double v;

	assert_int_equal(metrics_gauge(reg, "exp", "h", l, 2, &g, &err), 0);
	metrics_set(g, (const char *const[]){"a", "p1"}, 1);
	metrics_set(g, (const char *const[]){"a", "p2"}, 2);
	metrics_set(g, (const char *const[]){"b", "p1"}, 3);
	/* ("a","p1") and ("ap","1") must not be confused. */
	metrics_set(g, (const char *const[]){"ap", "1"}, 4);
	assert_true(metrics_remove(g, (const char *const[]){"a", "p2"}));
	assert_false(metrics_remove(g, (const char *const[]){"a", "p2"}));
	assert_false(metrics_remove(g, (const char *const[]){"zz", "p2"}));
	assert_int_equal(metrics_get(g, (const char *const[]){"a", "p2"}, &v), SIGIL_E_NOTFOUND);
	text = render(reg);
	assert_string_equal(after_dropped(text), "# HELP exp h\n# TYPE exp gauge\n"
						 "exp{namespace=\"a\",pod=\"p1\"} 1\n"
						 "exp{namespace=\"b\",pod=\"p1\"} 3\n"
						 "exp{namespace=\"ap\",pod=\"1\"} 4\n");
	free(text);
	/* Re-created after removal: appended, starting from scratch. */
	metrics_inc(g, (const char *const[]){"a", "p2"}, 5);
	assert_int_equal(metrics_get(g, (const char *const[]){"a", "p2"}, &v), 0);
	assert_true(v == 5);
	/* Removing the first and the last keeps the order list intact. */
	assert_true(metrics_remove(g, (const char *const[]){"a", "p1"}));
	assert_true(metrics_remove(g, (const char *const[]){"a", "p2"}));
	text = render(reg);
	assert_string_equal(after_dropped(text), "# HELP exp h\n# TYPE exp gauge\n"
						 "exp{namespace=\"b\",pod=\"p1\"} 3\n"
						 "exp{namespace=\"ap\",pod=\"1\"} 4\n");
	free(text);
	metrics_clear(g);
	text = render(reg);
	/* No children: no HELP/TYPE either. */
	assert_string_equal(after_dropped(text), "");
	free(text);
	metrics_set(g, (const char *const[]){"c", "p"}, 1);
	assert_int_equal(metrics_get(g, (const char *const[]){"c", "p"}, &v), 0);
	metrics_registry_free(reg);
}

static void test_child_limit(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	metrics_family *g;
	static const char *const l[] = {"v"};
	sigil_err err = {0};
	double v;

	assert_int_equal(metrics_gauge(reg, "g", "h", l, 1, &g, &err), 0);
	assert_int_equal(metrics_family_set_limit(g, 0, &err), SIGIL_E_INVALID);
	assert_int_equal(metrics_family_set_limit(g, 3, &err), 0);
	metrics_set(g, (const char *const[]){"1"}, 1);
	metrics_set(g, (const char *const[]){"2"}, 1);
	metrics_set(g, (const char *const[]){"3"}, 1);
	metrics_set(g, (const char *const[]){"4"}, 1); /* full: dropped */
	metrics_set(g, (const char *const[]){"1"}, 9); /* existing: fine */
	assert_int_equal(metrics_get(g, (const char *const[]){"4"}, &v), SIGIL_E_NOTFOUND);
	assert_int_equal(metrics_get(g, (const char *const[]){"1"}, &v), 0);
	assert_true(v == 9);
	assert_true(dropped(reg, "g", "limit") == 1);
	/* Removing one makes room. */
	assert_true(metrics_remove(g, (const char *const[]){"2"}));
	metrics_set(g, (const char *const[]){"4"}, 4);
	assert_int_equal(metrics_get(g, (const char *const[]){"4"}, &v), 0);
	assert_true(v == 4);
	metrics_registry_free(reg);
}

static void test_many_children(void **state)
{
	/* 10,000 per-volume gauges: every one is rendered once, the hash
	 * table grows, lookups find the right child. */
	metrics_registry *reg = metrics_registry_new();
	metrics_family *g;
	static const char *const l[] = {"namespace", "pod", "volume", "class"};
	sigil_err err = {0};
	char *text;
	size_t lines = 0;

	assert_int_equal(metrics_gauge(reg, "sigil_volume_not_after_seconds", "h", l, 4, &g, &err),
			 0);
	for (int i = 0; i < 10000; i++) {
		char pod[32];

		snprintf(pod, sizeof(pod), "pod-%d", i);
		metrics_set(g, (const char *const[]){"ns", pod, "tls", "tls"}, i);
	}
	for (int i = 0; i < 10000; i += 997) {
		char pod[32];
		double v;

		snprintf(pod, sizeof(pod), "pod-%d", i);
		assert_int_equal(metrics_get(g, (const char *const[]){"ns", pod, "tls", "tls"}, &v),
				 0);
		assert_true(v == i);
	}
	text = render(reg);
	for (const char *p = text; (p = strstr(p, "sigil_volume_not_after_seconds{")); p++)
		lines++;
	assert_int_equal(lines, 10000);
	assert_non_null(strstr(text, "pod=\"pod-9999\",volume=\"tls\",class=\"tls\"} 9999\n"));
	free(text);
	metrics_registry_free(reg);
}

typedef struct collect_ctx {
	metrics_family *depth;
	atomic_int calls;
	int value;
} collect_ctx;

static void collect_depth(metrics_registry *reg, void *userdata)
{
	collect_ctx *c = userdata;

	atomic_fetch_add(&c->calls, 1);
	metrics_set(c->depth, NULL, c->value);
}

static void test_collect(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	collect_ctx ctx = {.value = 17};
	sigil_err err = {0};
	char *text;

	assert_int_equal(metrics_gauge(reg, "sigil_keypool_depth", "Keys ready.", NULL, 0,
				       &ctx.depth, &err),
			 0);
	assert_int_equal(metrics_collect_add(reg, NULL, NULL, &err), SIGIL_E_INVALID);
	assert_int_equal(metrics_collect_add(reg, collect_depth, &ctx, &err), 0);
	text = render(reg);
	assert_non_null(strstr(text, "\nsigil_keypool_depth 17\n"));
	free(text);
	ctx.value = 3;
	text = render(reg);
	assert_non_null(strstr(text, "\nsigil_keypool_depth 3\n"));
	free(text);
	assert_int_equal(atomic_load(&ctx.calls), 2);
	metrics_collect_remove(reg, collect_depth, &ctx);
	ctx.value = 99;
	text = render(reg);
	assert_non_null(strstr(text, "\nsigil_keypool_depth 3\n"));
	free(text);
	assert_int_equal(atomic_load(&ctx.calls), 2);
	metrics_registry_free(reg);
}

#define N_THREADS 8
#define N_INCS    50000

typedef struct worker {
	metrics_family *c, *h, *g;
	int id;
} worker;

static atomic_int remove_failures;

static void *inc_worker(void *arg)
{
	worker *w = arg;
	char self[16];

	snprintf(self, sizeof(self), "t%d", w->id);
	for (int i = 0; i < N_INCS; i++) {
		const char *shared[] = {i % 2 ? "odd" : "even"};
		const char *mine[] = {self};

		metrics_inc(w->c, shared, 1);
		metrics_inc(w->c, mine, 2);
		metrics_observe(w->h, NULL, (i % 3) ? 0.5 : 5);
		/* Per-volume gauges come and go while others scrape. */
		if (i % 100 == 0) {
			char vol[32];

			snprintf(vol, sizeof(vol), "%s-%d", self, i);
			metrics_set(w->g, (const char *const[]){vol}, i);
			/* (cmocka asserts only on the main thread) */
			if (i % 200 == 0 && !metrics_remove(w->g, (const char *const[]){vol}))
				atomic_fetch_add(&remove_failures, 1);
		}
	}
	return NULL;
}

static atomic_bool scraping;

static void *scrape_worker(void *arg)
{
	metrics_registry *reg = arg;
	int n = 0;

	while (atomic_load(&scraping) || n == 0) {
		char *text = render(reg);

		free(text);
		n++;
	}
	return NULL;
}

static void test_concurrency(void **state)
{
	metrics_registry *reg = metrics_registry_new();
	static const char *const l[] = {"who"};
	worker w[N_THREADS];
	pthread_t th[N_THREADS], scr;
	metrics_family *c, *h, *g;
	sigil_err err = {0};
	double v, total = 0;
	char *text;

	assert_int_equal(metrics_counter(reg, "ops_total", "h", l, 1, &c, &err), 0);
	assert_int_equal(metrics_histogram(reg, "op_seconds", "h", NULL, 0, (const double[]){1},
					   1, &h, &err),
			 0);
	assert_int_equal(metrics_gauge(reg, "vol", "h", (const char *const[]){"v"}, 1, &g, &err),
			 0);
	atomic_store(&scraping, true);
	assert_int_equal(pthread_create(&scr, NULL, scrape_worker, reg), 0);
	for (int i = 0; i < N_THREADS; i++) {
		w[i] = (worker){c, h, g, i};
		assert_int_equal(pthread_create(&th[i], NULL, inc_worker, &w[i]), 0);
	}
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(th[i], NULL);
	atomic_store(&scraping, false);
	pthread_join(scr, NULL);
	assert_int_equal(atomic_load(&remove_failures), 0);

	assert_int_equal(metrics_get(c, (const char *const[]){"odd"}, &v), 0);
	assert_true(v == N_THREADS * N_INCS / 2);
	assert_int_equal(metrics_get(c, (const char *const[]){"even"}, &v), 0);
	assert_true(v == N_THREADS * N_INCS / 2);
	for (int i = 0; i < N_THREADS; i++) {
		char self[16];

		snprintf(self, sizeof(self), "t%d", i);
		assert_int_equal(metrics_get(c, (const char *const[]){self}, &v), 0);
		assert_true(v == 2.0 * N_INCS);
		total += v;
	}
	assert_true(total == 2.0 * N_THREADS * N_INCS);
	assert_int_equal(metrics_get(h, NULL, &v), 0);
	assert_true(v == (double)N_THREADS * N_INCS);
	text = render(reg);
	{
		/* i % 3 == 0 observed 5 (above the 1 bucket); the rest 0.5. */
		int fives = (N_INCS + 2) / 3;
		char line[128];

		snprintf(line, sizeof(line), "op_seconds_bucket{le=\"1\"} %d\n",
			 N_THREADS * (N_INCS - fives));
		assert_non_null(strstr(text, line));
		snprintf(line, sizeof(line), "op_seconds_count %d\n", N_THREADS * N_INCS);
		assert_non_null(strstr(text, line));
	}
	/* Half the per-volume gauges were removed: 250 of 500 per thread stay. */
	{
		size_t n = 0;

		for (const char *p = text; (p = strstr(p, "\nvol{")); p++)
			n++;
		assert_int_equal(n, N_THREADS * (N_INCS / 100) / 2);
	}
	free(text);
	metrics_registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exposition_exact),
		cmocka_unit_test(test_histogram_labels),
		cmocka_unit_test(test_float_format),
		cmocka_unit_test(test_parse_back),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_family_count_limit),
		cmocka_unit_test(test_label_values),
		cmocka_unit_test(test_remove_and_clear),
		cmocka_unit_test(test_child_limit),
		cmocka_unit_test(test_many_children),
		cmocka_unit_test(test_collect),
		cmocka_unit_test(test_concurrency),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
