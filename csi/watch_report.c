#include "csi/watch_report.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/key.h"
#include "util/log.h"

struct csi_watch_report {
	csi_watch_report_config cfg;
	pthread_mutex_t lock; /* sources */
	csi_watcher *watcher;
	csi_keypool *pool;
	metrics_family *not_after, *watched, *renewals, *evictions, *expiring, *trust,
	    *trust_failures, *pool_ready, *publishes, *publish_seconds;
};

static const char *const vol_labels[] = {"namespace", "pod", "volume", "class"};
static const char *const class_label[] = {"class"};
static const char *const result_label[] = {"result"};
static const char *const class_result_labels[] = {"class", "result"};
static const char *const alg_label[] = {"algorithm"};

static void collect(metrics_registry *reg, void *ud)
{
	csi_watch_report *r = ud;
	csi_watcher_stats st;

	(void)reg;
	pthread_mutex_lock(&r->lock);
	if (r->watcher) {
		csi_watcher_get_stats(r->watcher, &st);
		metrics_set(r->watched, NULL, (double)st.tracked);
	}
	if (r->pool)
		for (int a = 0; a < SIGIL_KEY__COUNT; a++) {
			const char *v[] = {ca_keyalg_name((sigil_keyalg)a)};
			metrics_set(r->pool_ready, v,
			            (double)csi_keypool_ready(r->pool, (sigil_keyalg)a));
		}
	pthread_mutex_unlock(&r->lock);
}

int csi_watch_report_new(const csi_watch_report_config *cfg, csi_watch_report **ret, sigil_err *err)
{
	csi_watch_report *r = calloc(1, sizeof(*r));
	metrics_registry *reg = cfg->registry;
	int rc = 0;

	if (!r)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r->cfg = *cfg;
	pthread_mutex_init(&r->lock, NULL);
	if (reg) {
		if ((rc = metrics_gauge(
		         reg, "sigil_volume_not_after_seconds",
		         "notAfter of the certificate in each watched volume (unix seconds)",
		         vol_labels, 4, &r->not_after, err)) < 0 ||
		    (rc = metrics_gauge(reg, "sigil_watched_volumes",
		                        "volumes the expiry watcher follows", NULL, 0, &r->watched,
		                        err)) < 0 ||
		    (rc = metrics_counter(reg, "sigil_renewals_total",
		                          "in-place renewals by class and result (success, failure; "
		                          "failures are retried)",
		                          class_result_labels, 2, &r->renewals, err)) < 0 ||
		    (rc = metrics_counter(
		         reg, "sigil_evictions_total",
		         "pod evictions for a fresh certificate by result (success; blocked: a "
		         "PodDisruptionBudget said no; failure)",
		         result_label, 1, &r->evictions, err)) < 0 ||
		    (rc = metrics_counter(
		         reg, "sigil_expiring_soon_total",
		         "alerts raised: a certificate nears expiry and cannot be renewed "
		         "or its pod evicted",
		         NULL, 0, &r->expiring, err)) < 0 ||
		    (rc = metrics_counter(
		         reg, "sigil_trust_bundle_updates_total",
		         "volumes whose trust bundle was rewritten after a CA change", class_label,
		         1, &r->trust, err)) < 0 ||
		    (rc = metrics_counter(reg, "sigil_trust_bundle_update_failures_total",
		                          "trust bundle rewrites that failed", class_label, 1,
		                          &r->trust_failures, err)) < 0 ||
		    (rc = metrics_gauge(reg, "sigil_key_pool_depth",
		                        "pre-generated keys ready per algorithm", alg_label, 1,
		                        &r->pool_ready, err)) < 0 ||
		    (rc = metrics_counter(reg, "sigil_publishes_total",
		                          "NodePublishVolume calls by result (success, failure; an "
		                          "idempotent repeat counts as success)",
		                          result_label, 1, &r->publishes, err)) < 0 ||
		    (rc = metrics_histogram(reg, "sigil_publish_duration_seconds",
		                            "time to answer NodePublishVolume (minting included)",
		                            NULL, 0, metrics_latency_buckets,
		                            metrics_latency_buckets_n, &r->publish_seconds, err)) < 0 ||
		    (rc = metrics_collect_add(reg, collect, r, err)) < 0) {
			pthread_mutex_destroy(&r->lock);
			free(r);
			return rc;
		}
	}
	*ret = r;
	return 0;
}

void csi_watch_report_sources(csi_watch_report *r, csi_watcher *w, csi_keypool *pool)
{
	pthread_mutex_lock(&r->lock);
	r->watcher = w;
	r->pool = pool;
	pthread_mutex_unlock(&r->lock);
}

void csi_watch_report_free(csi_watch_report *r)
{
	if (!r)
		return;
	if (r->cfg.registry)
		metrics_collect_remove(r->cfg.registry, collect, r);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

static void alert(csi_watch_report *r, const csi_watch_notice *n, const char *name,
                  const char *severity, const char *summary)
{
	sigil_err err = {0};
	metrics_label labels[] = {
	    {"alertname", name},
	    {"severity", severity},
	    {"namespace", or_empty(n->pod_namespace)},
	    {"pod", or_empty(n->pod_name)},
	    {"volume", or_empty(n->volume_id)},
	    {"class", or_empty(n->class_name)},
	    {"node", or_empty(r->cfg.node_name)},
	};
	metrics_alert a = {
	    .labels = labels,
	    .n_labels = sizeof(labels) / sizeof(labels[0]),
	    .summary = summary,
	    .description = n->message,
	};

	if (!r->cfg.webhook)
		return;
	if (metrics_webhook_send(r->cfg.webhook, &a, &err) < 0)
		log_debug("alert %s not queued: %s", name, err.msg);
}

void csi_watch_report_notify(void *ctx, const csi_watch_notice *n)
{
	csi_watch_report *r = ctx;
	char pod[320];
	const char *vl[] = {or_empty(n->pod_namespace), or_empty(n->pod_name), n->volume_id,
	                    or_empty(n->class_name)};
	const char *cl[] = {or_empty(n->class_name)};
	const char *cl_ok[] = {or_empty(n->class_name), "success"};
	const char *cl_fail[] = {or_empty(n->class_name), "failure"};
	static const char *const res_success[] = {"success"};
	const char *ev = csi_watch_event_name(n->event);
	const char *msg = n->message ? n->message : "";

	if (n->pod_namespace && n->pod_name)
		snprintf(pod, sizeof(pod), " (pod %s/%s)", n->pod_namespace, n->pod_name);
	else
		pod[0] = '\0';

	switch (n->event) {
	case CSI_WATCH_EV_TRACKED:
		log_debug("watching volume %s at %s (notAfter %lld)", n->volume_id, n->target_path,
		          (long long)n->not_after);
		if (n->not_after)
			metrics_set(r->not_after, vl, (double)n->not_after);
		break;
	case CSI_WATCH_EV_UNTRACKED:
		log_debug("no longer watching volume %s at %s", n->volume_id, n->target_path);
		metrics_remove(r->not_after, vl);
		break;
	case CSI_WATCH_EV_RENEWED:
		log_info("volume %s%s: %s: %s", n->volume_id, pod, ev, msg);
		metrics_inc(r->renewals, cl_ok, 1);
		metrics_set(r->not_after, vl, (double)n->not_after);
		break;
	case CSI_WATCH_EV_EVICTED:
		log_info("volume %s%s: %s: %s", n->volume_id, pod, ev, msg);
		metrics_inc(r->evictions, res_success, 1);
		break;
	case CSI_WATCH_EV_TRUST_REFRESHED:
		log_debug("volume %s: %s: %s", n->volume_id, ev, msg);
		metrics_inc(r->trust, cl, 1);
		break;
	case CSI_WATCH_EV_RENEW_FAILED:
	case CSI_WATCH_EV_EVICT_BLOCKED:
	case CSI_WATCH_EV_EVICT_FAILED:
	case CSI_WATCH_EV_TRUST_FAILED:
	case CSI_WATCH_EV_EXPIRING_SOON:
		log_warn("volume %s%s: %s: %s", n->volume_id, pod, ev, msg);
		if (n->event == CSI_WATCH_EV_RENEW_FAILED) {
			metrics_inc(r->renewals, cl_fail, 1);
			alert(r, n, "SigilRenewalFailed", "warning",
			      "sigil could not renew a certificate in place");
		} else if (n->event == CSI_WATCH_EV_EVICT_BLOCKED ||
		           n->event == CSI_WATCH_EV_EVICT_FAILED) {
			const char *rl[] = {n->event == CSI_WATCH_EV_EVICT_BLOCKED ? "blocked"
			                                                           : "failure"};
			metrics_inc(r->evictions, rl, 1);
		} else if (n->event == CSI_WATCH_EV_TRUST_FAILED) {
			metrics_inc(r->trust_failures, cl, 1);
			alert(r, n, "SigilTrustBundleRefreshFailed", "warning",
			      "sigil could not write a rotated CA trust bundle into a volume");
		} else {
			metrics_inc(r->expiring, NULL, 1);
			alert(r, n, "SigilCertificateExpiringSoon", "critical",
			      "a certificate is about to expire and sigil cannot replace it");
		}
		break;
	default: break;
	}
}

void csi_watch_report_published(csi_watch_report *r, bool ok, double seconds)
{
	static const char *const success[] = {"success"}, *const failure[] = {"failure"};

	if (!r)
		return;
	metrics_inc(r->publishes, ok ? success : failure, 1);
	metrics_observe(r->publish_seconds, NULL, seconds);
}
