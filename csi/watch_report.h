/* What sigil-csi does with the expiry watcher's notices (csi/watcher.h):
 * one log line each (the daemon's log: info for what went well, warn for
 * what an operator must look at), Prometheus metrics in a registry, and
 * Alertmanager alerts through the webhook.  Registry and webhook are
 * optional (NULL: only logging). */
#pragma once
#include "csi/keypool.h"
#include "csi/watcher.h"
#include "metrics/metrics.h"
#include "metrics/webhook.h"
#include "util/err.h"

typedef struct csi_watch_report csi_watch_report;

typedef struct csi_watch_report_config {
	metrics_registry *registry; /* borrowed; NULL: no metrics */
	metrics_webhook *webhook;   /* borrowed; NULL: no alerts */
	const char *node_name;      /* label of every alert */
} csi_watch_report_config;

/* Metric families (all prefixed sigil_csi_):
 *   volume_not_after_seconds{namespace,pod,volume,class}   gauge
 *   watched_volumes                                        gauge
 *   renewals_total{class} / renewal_failures_total{class}  counters
 *   evictions_total / eviction_failures_total{reason}      counters (reason: pdb, error)
 *   expiring_soon_total                                    counter (alerts raised)
 *   trust_refreshes_total{class} / trust_refresh_failures_total{class}
 *   key_pool_ready{algorithm}                              gauge (when a pool is given) */
int csi_watch_report_new(const csi_watch_report_config *cfg, csi_watch_report **ret,
                         sigil_err *err) SIGIL_WUR;
/* Gauges computed at scrape time from the watcher and the key pool (both
 * borrowed, either may be NULL; call with NULLs before freeing them). */
void csi_watch_report_sources(csi_watch_report *r, csi_watcher *w, csi_keypool *pool);
void csi_watch_report_free(csi_watch_report *r);
/* The csi_watch_notify_fn: ctx is the csi_watch_report. */
void csi_watch_report_notify(void *ctx, const csi_watch_notice *n);
