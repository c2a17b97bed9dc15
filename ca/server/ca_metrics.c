#include "ca/server/ca_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

/* Distinct class label values per family (unknown classes included). */
#define CA_METRICS_MAX_CLASS_LABELS (4 * CA_SERVICE_MAX_CLASSES)

struct ca_metrics {
	metrics_registry *reg;
	issuer_server *srv;
	metrics_family *issued;
	metrics_family *issue_seconds;
	metrics_family *keytabs;
	metrics_family *keytab_seconds;
	metrics_family *rotations;
	metrics_family *ca_not_after;
	metrics_family *ca_generations;
	metrics_family *bundle_version;
	bool collector;
	pthread_mutex_t seen_lock;
	/* Newest generation seen per class at the last scrape: a rotation
	 * (scheduled or forced) shows as a newer one. */
	struct {
		char name[CA_STORE_MAX_CLASS_LEN + 1];
		uint64_t newest;
	} seen[CA_SERVICE_MAX_CLASSES];
	size_t n_seen;
};

static const char *const L_CLASS[] = {"class"};
static const char *const L_CLASS_RESULT[] = {"class", "result"};
static const char *const L_CLASS_GEN[] = {"class", "generation"};

static void note_newest(ca_metrics *m, const char *name, uint64_t newest)
{
	size_t i;

	for (i = 0; i < m->n_seen; i++)
		if (!strcmp(m->seen[i].name, name))
			break;
	if (i == m->n_seen) {
		/* First sight: the generations that exist are not rotations. */
		if (m->n_seen == CA_SERVICE_MAX_CLASSES)
			return;
		snprintf(m->seen[i].name, sizeof(m->seen[i].name), "%s", name);
		m->seen[i].newest = newest;
		m->n_seen++;
		return;
	}
	if (newest > m->seen[i].newest) {
		const char *c[] = {name};
		metrics_inc(m->rotations, c, (double)(newest - m->seen[i].newest));
		m->seen[i].newest = newest;
	}
}

/* Scrape time: the CA generations of every class as the service sees them
 * now.  The families are refilled, so pruned generations disappear. */
static void collect(metrics_registry *reg, void *userdata)
{
	ca_metrics *m = userdata;
	ca_class_status *cs = malloc(sizeof(*cs));
	size_t n;

	if (!cs)
		return;
	pthread_rwlock_rdlock(&m->srv->lock);
	metrics_clear(m->ca_not_after);
	metrics_clear(m->ca_generations);
	metrics_clear(m->bundle_version);
	n = m->srv->svc ? ca_service_class_count(m->srv->svc) : 0;
	for (size_t i = 0; i < n; i++) {
		if (ca_service_status(m->srv->svc, i, cs, NULL) < 0)
			continue;
		const char *cls[] = {cs->name};
		if (cs->n_gens) {
			pthread_mutex_lock(&m->seen_lock);
			note_newest(m, cs->name, cs->gens[cs->n_gens - 1].generation);
			pthread_mutex_unlock(&m->seen_lock);
		}
		metrics_set(m->ca_generations, cls, (double)cs->n_gens);
		metrics_set(m->bundle_version, cls, (double)(cs->bundle_version & ((1ULL << 53) - 1)));
		for (size_t g = 0; g < cs->n_gens; g++) {
			char gen[24];
			snprintf(gen, sizeof(gen), "%llu", (unsigned long long)cs->gens[g].generation);
			const char *v[] = {cs->name, gen};
			metrics_set(m->ca_not_after, v, (double)cs->gens[g].not_after);
		}
	}
	pthread_rwlock_unlock(&m->srv->lock);
	free(cs);
}

int ca_metrics_new(metrics_registry *reg, issuer_server *srv, ca_metrics **ret, sigil_err *err)
{
	ca_metrics *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	m->reg = reg;
	m->srv = srv;
	pthread_mutex_init(&m->seen_lock, NULL);
	r = metrics_counter(reg, "sigil_ca_issued_total", "Issue calls answered, by class and result.",
			    L_CLASS_RESULT, 2, &m->issued, err);
	if (r == 0)
		r = metrics_histogram(reg, "sigil_ca_issue_duration_seconds",
				      "Time to answer an Issue call (signing included).", L_CLASS, 1,
				      metrics_latency_buckets, metrics_latency_buckets_n,
				      &m->issue_seconds, err);
	if (r == 0)
		r = metrics_counter(reg, "sigil_ca_keytabs_total",
				    "ProvisionKeytab calls answered, by class and result.",
				    L_CLASS_RESULT, 2, &m->keytabs, err);
	if (r == 0)
		r = metrics_histogram(reg, "sigil_ca_keytab_duration_seconds",
				      "Time to answer a ProvisionKeytab call (kadmind included).",
				      L_CLASS, 1, metrics_latency_buckets, metrics_latency_buckets_n,
				      &m->keytab_seconds, err);
	if (r == 0)
		r = metrics_counter(reg, "sigil_ca_rotations_total",
				    "New CA generations made (scheduled or forced).", L_CLASS, 1,
				    &m->rotations, err);
	if (r == 0)
		r = metrics_gauge(reg, "sigil_ca_not_after_seconds",
				  "notAfter of each CA generation (unix time).", L_CLASS_GEN, 2,
				  &m->ca_not_after, err);
	if (r == 0)
		r = metrics_gauge(reg, "sigil_ca_generations", "CA generations kept per class.",
				  L_CLASS, 1, &m->ca_generations, err);
	if (r == 0)
		r = metrics_gauge(reg, "sigil_ca_trust_bundle_version",
				  "Version of each class's trust bundle (low 53 bits).", L_CLASS, 1,
				  &m->bundle_version, err);
	/* Class labels come from requests (of authenticated callers whose
	 * tokens allow the class): bound them even so. */
	if (r == 0)
		r = metrics_family_set_limit(m->issued, CA_METRICS_MAX_CLASS_LABELS * 2, err);
	if (r == 0)
		r = metrics_family_set_limit(m->issue_seconds, CA_METRICS_MAX_CLASS_LABELS, err);
	if (r == 0)
		r = metrics_family_set_limit(m->keytabs, CA_METRICS_MAX_CLASS_LABELS * 2, err);
	if (r == 0)
		r = metrics_family_set_limit(m->keytab_seconds, CA_METRICS_MAX_CLASS_LABELS, err);
	if (r == 0)
		r = metrics_collect_add(reg, collect, m, err);
	if (r < 0) {
		pthread_mutex_destroy(&m->seen_lock);
		free(m);
		return r;
	}
	m->collector = true;
	*ret = m;
	return 0;
}

void ca_metrics_free(ca_metrics *m)
{
	if (!m)
		return;
	if (m->collector)
		metrics_collect_remove(m->reg, collect, m);
	pthread_mutex_destroy(&m->seen_lock);
	free(m);
}

void ca_metrics_issued(ca_metrics *m, const char *class_name, bool ok, double seconds)
{
	if (!m || !class_name)
		return;
	const char *v[] = {class_name, ok ? "success" : "failure"};
	const char *c[] = {class_name};
	metrics_inc(m->issued, v, 1);
	metrics_observe(m->issue_seconds, c, seconds);
}

void ca_metrics_keytab(ca_metrics *m, const char *class_name, bool ok, double seconds)
{
	if (!m || !class_name)
		return;
	const char *v[] = {class_name, ok ? "success" : "failure"};
	const char *c[] = {class_name};
	metrics_inc(m->keytabs, v, 1);
	metrics_observe(m->keytab_seconds, c, seconds);
}
