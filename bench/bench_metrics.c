/* bench/metrics: the cost of the metrics registry on the hot paths.
 *   - ns per counter increment of an existing labeled child (one thread,
 *     and 4 threads on one child: the contended case), and per histogram
 *     observation;
 *   - render time for 10,000 and 100,000 per-volume gauges (4 labels), the
 *     work of one /metrics scrape of a full node.
 * Not a test: prints figures.  `bench_metrics [SECONDS]` (default 1 per
 * measurement). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "util/clock.h"
#include "util/parse.h"

#define BENCH_THREADS 4

static double secs_per_run = 1;

static void die(const char *what, const sigil_err *err)
{
	fprintf(stderr, "bench_metrics: %s: %s\n", what, err ? err->msg : "failed");
	exit(1);
}

/* Runs fn in batches until the time is up; returns ns per call. */
static double ns_per_op(void (*fn)(void *), void *arg, long *ret_ops)
{
	int64_t start = sigil_mono_ns(), deadline = start + (int64_t)(secs_per_run * 1e9), end;
	long ops = 0;

	do {
		for (int i = 0; i < 4096; i++)
			fn(arg);
		ops += 4096;
		end = sigil_mono_ns();
	} while (end < deadline);
	*ret_ops = ops;
	return (double)(end - start) / (double)ops;
}

typedef struct inc_arg {
	metrics_family *fam;
	const char *const *values;
	long ops;
	double ns;
} inc_arg;

static void do_inc(void *p)
{
	inc_arg *a = p;

	metrics_inc(a->fam, a->values, 1);
}

static pthread_mutex_t base_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile long base_count;

static void do_lock(void *p)
{
	pthread_mutex_lock(&base_lock);
	base_count++;
	pthread_mutex_unlock(&base_lock);
}

static void do_observe(void *p)
{
	inc_arg *a = p;

	metrics_observe(a->fam, a->values, 0.042);
}

static void *inc_thread(void *p)
{
	inc_arg *a = p;

	a->ns = ns_per_op(do_inc, a, &a->ops);
	return NULL;
}

static void bench_render(size_t n_volumes)
{
	static const char *const l[] = {"namespace", "pod", "volume", "class"};
	metrics_registry *reg = metrics_registry_new();
	metrics_family *g = NULL;
	sigil_err err = {0};
	int64_t t0, best = INT64_MAX;
	size_t len = 0;
	int runs = 0;

	if (!reg || metrics_gauge(reg, "sigil_volume_not_after_seconds", "notAfter.", l, 4, &g,
				  &err) < 0)
		die("registry", &err);
	for (size_t i = 0; i < n_volumes; i++) {
		char ns[32], pod[64];

		snprintf(ns, sizeof(ns), "team-%zu", i % 50);
		snprintf(pod, sizeof(pod), "app-%zu-7f9c8d6b5-x%zu", i, i * 7919 % 100000);
		metrics_set(g, (const char *const[]){ns, pod, "tls", "tls"},
			    1700000000.0 + (double)i);
	}
	t0 = sigil_mono_ns();
	do {
		char *text = NULL;
		int64_t s = sigil_mono_ns(), d;

		if (metrics_render(reg, &text, &len, &err) < 0)
			die("render", &err);
		d = sigil_mono_ns() - s;
		if (d < best)
			best = d;
		free(text);
		runs++;
	} while (sigil_mono_ns() - t0 < (int64_t)(secs_per_run * 1e9) || runs < 3);
	printf("render %6zu gauges:            %8.2f ms (best of %d), %zu bytes\n", n_volumes,
	       (double)best / 1e6, runs, len);
	metrics_registry_free(reg);
}

int main(int argc, char **argv)
{
	static const char *const l[] = {"method", "code"};
	static const char *const v[] = {"NodePublishVolume", "OK"};
	metrics_registry *reg;
	metrics_family *c = NULL, *h = NULL;
	sigil_err err = {0};
	inc_arg one, many[BENCH_THREADS];
	pthread_t th[BENCH_THREADS];
	double total_ops = 0, sum_ns = 0;

	if (argc > 1 && sigil_parse_double(argv[1], 0.01, 600, &secs_per_run) < 0) {
		fprintf(stderr, "usage: bench_metrics [SECONDS]\n");
		return 2;
	}
	reg = metrics_registry_new();
	if (!reg || metrics_counter(reg, "sigil_rpc_total", "RPCs.", l, 2, &c, &err) < 0 ||
	    metrics_histogram(reg, "sigil_rpc_seconds", "RPC latency.", l, 2,
			      metrics_latency_buckets, metrics_latency_buckets_n, &h, &err) < 0)
		die("registry", &err);

	{
		/* A yardstick for this machine's current speed and load. */
		long ops;
		double ns = ns_per_op(do_lock, NULL, &ops);

		printf("baseline: mutex lock+unlock:      %8.1f ns/op (%ld ops)\n", ns, ops);
	}
	one = (inc_arg){.fam = c, .values = v};
	one.ns = ns_per_op(do_inc, &one, &one.ops);
	printf("counter inc, 1 thread:            %8.1f ns/op (%ld ops)\n", one.ns, one.ops);
	for (int i = 0; i < BENCH_THREADS; i++) {
		many[i] = (inc_arg){.fam = c, .values = v};
		if (pthread_create(&th[i], NULL, inc_thread, &many[i]) != 0)
			die("pthread_create", NULL);
	}
	for (int i = 0; i < BENCH_THREADS; i++) {
		pthread_join(th[i], NULL);
		total_ops += (double)many[i].ops;
		sum_ns += many[i].ns;
	}
	printf("counter inc, %d threads, 1 child:  %8.1f ns/op per thread (%.0f ops)\n",
	       BENCH_THREADS, sum_ns / BENCH_THREADS, total_ops);
	one = (inc_arg){.fam = h, .values = v};
	one.ns = ns_per_op(do_observe, &one, &one.ops);
	printf("histogram observe, 1 thread:      %8.1f ns/op (%ld ops)\n", one.ns, one.ops);
	metrics_registry_free(reg);

	bench_render(10000);
	bench_render(100000);
	return 0;
}
