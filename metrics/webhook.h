/* Alert webhook: Alertmanager API v2 `POST <url>/api/v2/alerts`.
 *
 * metrics_webhook_send() copies the alert into a bounded queue and returns
 * at once; a background thread POSTs queued alerts as one JSON array per
 * request with libcurl:
 *   [{"labels":{"alertname":..,"severity":..,...},
 *     "annotations":{"summary":..,"description":..},
 *     "startsAt":"RFC 3339","endsAt":"RFC 3339 (only to resolve)",
 *     "generatorURL":".."}]
 * 5xx answers, 429, and connection errors or timeouts are retried with
 * exponential backoff; other 4xx are final failures.  Counters, also in the
 * registry when one is given:
 *   sigil_alert_webhook_sent_total, sigil_alert_webhook_failed_total,
 *   sigil_alert_webhook_dropped_total (queue full or shutting down). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "util/err.h"

#define METRICS_WEBHOOK_MAX_URL 2048
#define METRICS_WEBHOOK_DEFAULT_QUEUE 1024
#define METRICS_WEBHOOK_MAX_QUEUE 65536
#define METRICS_WEBHOOK_MAX_LABELS 16
#define METRICS_WEBHOOK_MAX_VALUE 4096 /* label value or annotation, bytes */
/* Alerts per POST. */
#define METRICS_WEBHOOK_MAX_BATCH 64
#define METRICS_WEBHOOK_DEFAULT_TIMEOUT_MS 10000
#define METRICS_WEBHOOK_DEFAULT_ATTEMPTS 5
#define METRICS_WEBHOOK_MAX_ATTEMPTS 100
#define METRICS_WEBHOOK_DEFAULT_BACKOFF_MS 500
#define METRICS_WEBHOOK_MAX_BACKOFF_MS 30000
#define METRICS_WEBHOOK_MAX_TOKEN 16384

typedef struct metrics_webhook_config {
	/* Alertmanager base URL, http:// or https:// ("/api/v2/alerts" is
	 * appended unless the URL already ends with it). */
	const char *url;
	/* Optional: a file holding a bearer token, re-read for every POST
	 * (projected tokens rotate). */
	const char *token_file;
	/* Optional: CA bundle to verify an https receiver. */
	const char *ca_file;
	/* Optional generatorURL put in every alert. */
	const char *generator_url;
	/* 0 picks the defaults above. */
	unsigned timeout_ms;   /* per attempt */
	unsigned max_queue;    /* alerts waiting */
	unsigned max_attempts; /* per batch, including the first */
	unsigned backoff_ms;   /* first retry delay; doubles up to the max */
	/* Optional: where the sent/failed/dropped counters go (it must
	 * outlive the webhook: metrics_webhook_stop counts into it). */
	metrics_registry *registry;
} metrics_webhook_config;

typedef struct metrics_label {
	const char *name;
	const char *value;
} metrics_label;

typedef struct metrics_alert {
	/* Must include "alertname"; names as for Prometheus labels. */
	const metrics_label *labels;
	size_t n_labels;
	const char *summary;     /* optional annotation */
	const char *description; /* optional annotation */
	int64_t starts_at;       /* unix seconds; 0 = now */
	int64_t ends_at;         /* unix seconds; 0 = firing; set to resolve */
} metrics_alert;

typedef struct metrics_webhook_stats {
	uint64_t sent, failed, dropped;
	uint64_t attempts; /* delivery attempts (HTTP requests tried) */
} metrics_webhook_stats;

typedef struct metrics_webhook metrics_webhook;

int metrics_webhook_start(const metrics_webhook_config *cfg, metrics_webhook **ret,
			  sigil_err *err) SIGIL_WUR;
/* Queues one alert; never blocks on the network.  SIGIL_E_INVALID for a
 * malformed alert, SIGIL_E_LIMIT when the queue is full (the alert is
 * dropped and counted). */
int metrics_webhook_send(metrics_webhook *wh, const metrics_alert *alert,
			 sigil_err *err) SIGIL_WUR;
/* Waits up to timeout_ms until the queue is empty and nothing is in flight.
 * SIGIL_E_TIMEOUT otherwise. */
int metrics_webhook_flush(metrics_webhook *wh, unsigned timeout_ms) SIGIL_WUR;
void metrics_webhook_get_stats(metrics_webhook *wh, metrics_webhook_stats *ret);
/* Stops the thread (aborting a request in flight), drops what is still
 * queued (counted as dropped) and frees wh.  Accepts NULL. */
void metrics_webhook_stop(metrics_webhook *wh);
