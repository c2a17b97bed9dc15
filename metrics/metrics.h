/* Prometheus metrics registry: counters, gauges and histograms rendered in
 * the text exposition format 0.0.4.
 *
 * A family has a name, a help text and a fixed list of label names; its
 * children (one per tuple of label values) are made on first use.  Every
 * function here is thread-safe: CSI handler threads, the expiry watcher and
 * the HTTP thread share one registry.
 *
 * Hot path: metrics_inc/set/observe hash the label values and take the
 * family's mutex; after a tuple's first use they never allocate.
 *
 * Updates never fail for the caller.  An update that cannot be recorded
 * (the family is full, a label value is too long or not UTF-8, a counter
 * is asked to go down, wrong NULL values) is dropped and counted in the
 * registry's own counter
 *   sigil_metrics_updates_dropped_total{family="<name>",reason="<why>"}
 * so that a scrape shows it.  A NULL family is accepted and ignored, so
 * optional metrics need no `if`.
 *
 * Typical use:
 *   static const char *const vl[] = {"namespace", "pod", "volume", "class"};
 *   metrics_family *exp;
 *   r = metrics_gauge(reg, "sigil_volume_cert_not_after_seconds",
 *                     "notAfter of the volume's certificate (unix seconds).",
 *                     vl, 4, &exp, err);
 *   metrics_set(exp, (const char *const[]){ns, pod, vol, cls}, not_after);
 *   metrics_remove(exp, (const char *const[]){ns, pod, vol, cls}); // unpublish
 * and serve `reg` with metrics_httpd_start (metrics/httpd.h). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* Metric and label names: [a-zA-Z_:][a-zA-Z0-9_:]* (no ':' in labels,
 * no leading "__" in labels: reserved by Prometheus). */
#define METRICS_MAX_NAME 128
#define METRICS_MAX_HELP 1024
#define METRICS_MAX_LABELS 8
/* Longest label value in bytes (Kubernetes names are <= 253). */
#define METRICS_MAX_LABEL_VALUE 1024
/* Histogram bucket upper bounds (finite, strictly increasing; +Inf implicit). */
#define METRICS_MAX_BUCKETS 32
#define METRICS_MAX_FAMILIES 512
/* Default bound on children per family; see metrics_family_set_limit. */
#define METRICS_DEFAULT_MAX_CHILDREN 100000
#define METRICS_MAX_COLLECTORS 64
/* Hard cap on one rendered scrape. */
#define METRICS_MAX_RENDER (256u * 1024 * 1024)

/* The exposition Content-Type for /metrics. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct metrics_registry metrics_registry;
typedef struct metrics_family metrics_family;

/* Latency buckets in seconds, 1 ms .. 10 s (for issuance, renewal, RPCs). */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_buckets_n;

/* NULL on out of memory. */
metrics_registry *metrics_registry_new(void);
/* Frees the registry and every family (family pointers become invalid).
 * No other thread may use it any more.  Accepts NULL. */
void metrics_registry_free(metrics_registry *reg);

/* Register a family.  labels may be NULL when n_labels is 0.  Registering
 * the same name again with the same type, help and label names returns
 * the existing family (so two modules can share one); a different shape is
 * SIGIL_E_EXISTS.  Bad names are SIGIL_E_INVALID, too many families or
 * labels SIGIL_E_LIMIT.  *ret stays valid until metrics_registry_free. */
int metrics_counter(metrics_registry *reg, const char *name, const char *help,
		    const char *const *labels, size_t n_labels, metrics_family **ret,
		    sigil_err *err) SIGIL_WUR;
int metrics_gauge(metrics_registry *reg, const char *name, const char *help,
		  const char *const *labels, size_t n_labels, metrics_family **ret,
		  sigil_err *err) SIGIL_WUR;
/* buckets: finite, strictly increasing, 1..METRICS_MAX_BUCKETS of them.
 * The label name "le" is refused (it is the bucket label). */
int metrics_histogram(metrics_registry *reg, const char *name, const char *help,
		      const char *const *labels, size_t n_labels, const double *buckets,
		      size_t n_buckets, metrics_family **ret, sigil_err *err) SIGIL_WUR;

/* Bounds the number of children of fam (1..METRICS_DEFAULT_MAX_CHILDREN*10).
 * When full, updates for a new tuple are dropped (and counted, see above);
 * existing children keep working, and removing one makes room. */
int metrics_family_set_limit(metrics_family *fam, size_t max_children,
			     sigil_err *err) SIGIL_WUR;

/* values: n_labels strings in the family's label order (NULL if none). */
/* Counter += v (v >= 0) or gauge += v (any sign). */
void metrics_inc(metrics_family *fam, const char *const *values, double v);
/* Gauge = v.  (On a counter: refused and counted as dropped.) */
void metrics_set(metrics_family *fam, const char *const *values, double v);
/* Histogram: records one observation v. */
void metrics_observe(metrics_family *fam, const char *const *values, double v);
/* Removes one child (e.g. the gauge of an unpublished volume), so that it
 * disappears from the next scrape.  Returns true if it existed. */
bool metrics_remove(metrics_family *fam, const char *const *values);
/* Removes every child of fam (e.g. before a collect callback refills it). */
void metrics_clear(metrics_family *fam);

/* Reads a child's value (counter/gauge value, histogram sample count):
 * for tests and for code that exposes the same number elsewhere.
 * SIGIL_E_NOTFOUND when the child does not exist. */
int metrics_get(metrics_family *fam, const char *const *values, double *ret) SIGIL_WUR;

/* A callback run at the start of every render (scrape), on the scraping
 * thread, without registry locks held: it sets gauges whose values are
 * computed on demand (key pool depth, CA expiry).  Must be thread-safe
 * with respect to the caller's own data. */
typedef void (*metrics_collect_fn)(metrics_registry *reg, void *userdata);
int metrics_collect_add(metrics_registry *reg, metrics_collect_fn fn, void *userdata,
			sigil_err *err) SIGIL_WUR;
/* Unregisters (fn, userdata); waits for a running render to finish with it,
 * so userdata may be freed afterwards. */
void metrics_collect_remove(metrics_registry *reg, metrics_collect_fn fn, void *userdata);

/* Runs the collectors and renders every family in the text format 0.0.4
 * (families in registration order, children in creation order).
 * *ret is malloc'ed and NUL-terminated, *len excludes the NUL. */
int metrics_render(metrics_registry *reg, char **ret, size_t *len, sigil_err *err) SIGIL_WUR;

/* Checks for names and values, exposed for callers that take names from
 * configuration. */
bool metrics_name_ok(const char *name);
bool metrics_label_name_ok(const char *name);
/* A label value the registry accepts: valid UTF-8, at most
 * METRICS_MAX_LABEL_VALUE bytes. */
bool metrics_label_value_ok(const char *value);
/* n bytes of well-formed UTF-8 (RFC 3629; no NUL check). */
bool metrics_utf8_ok(const char *s, size_t n);
