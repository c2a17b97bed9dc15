/* What sigil-csi does with the expiry watcher's notices (csi/watcher.h):
 * one log line each (the daemon's log: info for what went well, warn for
 * what an operator must look at), Prometheus metrics in a registry, and
 * Alertmanager alerts through the webhook.  Registry and webhook are
 * optional (NULL: only logging). */
#pragma once
#include <stdbool.h>

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

/* Metric families (names used by deploy/alerts/prometheusrule.yaml):
 *   sigil_volume_not_after_seconds{namespace,pod,volume,class}  gauge
 *   sigil_watched_volumes                                        gauge
 *   sigil_renewals_total{class,result}          counter (success, failure)
 *   sigil_evictions_total{result}               counter (success, blocked by a PDB, failure)
 *   sigil_expiring_soon_total                   counter (alerts raised)
 *   sigil_trust_bundle_updates_total{class} / sigil_trust_bundle_update_failures_total{class}
 *   sigil_key_pool_depth{algorithm}             gauge (when a pool is given)
 *   sigil_publishes_total{result}, sigil_publish_duration_seconds (histogram) */
int csi_watch_report_new(const csi_watch_report_config *cfg, csi_watch_report **ret,
                         sigil_err *err) SIGIL_WUR;
/* Gauges computed at scrape time from the watcher and the key pool (both
 * borrowed, either may be NULL; call with NULLs before freeing them). */
void csi_watch_report_sources(csi_watch_report *r, csi_watcher *w, csi_keypool *pool);
void csi_watch_report_free(csi_watch_report *r);
/* The csi_watch_notify_fn: ctx is the csi_watch_report. */
void csi_watch_report_notify(void *ctx, const csi_watch_notice *n);
/* One NodePublishVolume answered (accepts a NULL report). */
void csi_watch_report_published(csi_watch_report *r, bool ok, double seconds);
