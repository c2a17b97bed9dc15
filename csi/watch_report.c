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
	metrics_family *not_after, *watched, *renewals, *renew_failures, *evictions,
	    *evict_failures, *expiring, *trust, *trust_failures, *pool_ready;
};

static const char *const vol_labels[] = {"namespace", "pod", "volume", "class"};
static const char *const class_label[] = {"class"};
static const char *const reason_label[] = {"reason"};
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
		         reg, "sigil_csi_volume_not_after_seconds",
		         "notAfter of the certificate in each watched volume (unix seconds)",
		         vol_labels, 4, &r->not_after, err)) < 0 ||
		    (rc = metrics_gauge(reg, "sigil_csi_watched_volumes",
		                        "volumes the expiry watcher follows", NULL, 0, &r->watched,
		                        err)) < 0 ||
		    (rc = metrics_counter(reg, "sigil_csi_renewals_total",
		                          "in-place renewals that succeeded", class_label, 1,
		                          &r->renewals, err)) < 0 ||
		    (rc = metrics_counter(reg, "sigil_csi_renewal_failures_total",
		                          "in-place renewals that failed (retried)", class_label, 1,
		                          &r->renew_failures, err)) < 0 ||
		    (rc = metrics_counter(
		         reg, "sigil_csi_evictions_total",
		         "pods evicted so that they restart with a fresh certificate", NULL, 0,
		         &r->evictions, err)) < 0 ||
		    (rc = metrics_counter(
		         reg, "sigil_csi_eviction_failures_total",
		         "evictions refused (reason pdb: a PodDisruptionBudget) or failed",
		         reason_label, 1, &r->evict_failures, err)) < 0 ||
		    (rc = metrics_counter(
		         reg, "sigil_csi_expiring_soon_total",
		         "alerts raised: a certificate nears expiry and cannot be renewed "
		         "or its pod evicted",
		         NULL, 0, &r->expiring, err)) < 0 ||
		    (rc = metrics_counter(
		         reg, "sigil_csi_trust_refreshes_total",
		         "volumes whose trust bundle was rewritten after a CA change", class_label,
		         1, &r->trust, err)) < 0 ||
		    (rc = metrics_counter(reg, "sigil_csi_trust_refresh_failures_total",
		                          "trust bundle rewrites that failed", class_label, 1,
		                          &r->trust_failures, err)) < 0 ||
		    (rc = metrics_gauge(reg, "sigil_csi_key_pool_ready",
		                        "pre-generated keys ready per algorithm", alg_label, 1,
		                        &r->pool_ready, err)) < 0 ||
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
		metrics_inc(r->renewals, cl, 1);
		metrics_set(r->not_after, vl, (double)n->not_after);
		break;
	case CSI_WATCH_EV_EVICTED:
		log_info("volume %s%s: %s: %s", n->volume_id, pod, ev, msg);
		metrics_inc(r->evictions, NULL, 1);
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
			metrics_inc(r->renew_failures, cl, 1);
			alert(r, n, "SigilRenewalFailed", "warning",
			      "sigil could not renew a certificate in place");
		} else if (n->event == CSI_WATCH_EV_EVICT_BLOCKED ||
		           n->event == CSI_WATCH_EV_EVICT_FAILED) {
			const char *rl[] = {n->event == CSI_WATCH_EV_EVICT_BLOCKED ? "pdb"
			                                                           : "error"};
			metrics_inc(r->evict_failures, rl, 1);
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
