#define _GNU_SOURCE
#include "csi/watcher.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/x509.h>

#include "csi/node.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

/* A sleep never lasts longer than this, so that a wall-clock jump (the
 * deadlines are wall-clock times: notAfter is one) is noticed in time. */
#define WATCH_MAX_SLEEP_MS (10LL * 60 * 1000)
/* Up to this much random delay after a rate-limit wait (per-node jitter). */
#define WATCH_RATE_JITTER_MS   1000
#define WATCH_HASH_MIN_BUCKETS 64

typedef struct wentry {
	char *volume_id;
	char *target;
	char *class_name; /* trust bundle followed; NULL: none */
	char *pod_ns, *pod_name, *pod_uid;
	uint64_t hash;
	struct wentry *next; /* hash chain */
	size_t heap_idx;     /* SIZE_MAX: not in the heap */
	bool in_flight;      /* the thread runs an action on it */
	bool removed;        /* forgotten while in flight: the thread frees it */
	uint64_t gen;        /* bumped by track(): an in-flight result is stale */
	/* scheduling */
	csi_watch_plan plan;
	int64_t not_after;
	uint64_t trust_version;
	unsigned failures;     /* consecutive failures of the main action */
	int64_t main_retry_at; /* ms; 0: none (backoff / rate limit) */
	unsigned annotate_failures;
	int64_t annotate_retry_at;
	unsigned pod_ip_checks;
	int64_t published_ms;
	bool blocked_posted; /* EvictionBlocked posted for this not_after */
	bool alerted;        /* ExpiringSoon raised for this not_after */
	bool done;           /* evicted: nothing left to do but trust refresh */
	/* the action chosen for the heap */
	csi_watch_action action;
	int64_t deadline_ms;
} wentry;

struct csi_watcher {
	csi_watcher_config cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop, kick;
	wentry **heap;
	size_t n_heap, cap_heap;
	wentry **buckets;
	size_t n_buckets, n_entries;
	csi_watch_bucket renew_bucket, evict_bucket;
	int64_t next_bundle_ms;
	csi_watcher_stats stats;
};

const char *csi_watch_action_name(csi_watch_action a)
{
	switch (a) {
	case CSI_WATCH_NONE: return "none";
	case CSI_WATCH_RENEW: return "renew";
	case CSI_WATCH_EVICT: return "evict";
	case CSI_WATCH_POD_IP: return "pod-ip";
	case CSI_WATCH_ANNOTATE: return "annotate";
	default: return "unknown";
	}
}

const char *csi_watch_event_name(csi_watch_event e)
{
	switch (e) {
	case CSI_WATCH_EV_TRACKED: return "tracked";
	case CSI_WATCH_EV_UNTRACKED: return "untracked";
	case CSI_WATCH_EV_RENEWED: return "renewed";
	case CSI_WATCH_EV_RENEW_FAILED: return "renew_failed";
	case CSI_WATCH_EV_EVICTED: return "evicted";
	case CSI_WATCH_EV_EVICT_BLOCKED: return "evict_blocked";
	case CSI_WATCH_EV_EVICT_FAILED: return "evict_failed";
	case CSI_WATCH_EV_EXPIRING_SOON: return "expiring_soon";
	case CSI_WATCH_EV_TRUST_REFRESHED: return "trust_refreshed";
	case CSI_WATCH_EV_TRUST_FAILED: return "trust_failed";
	default: return "unknown";
	}
}

/* ---- pure arithmetic ------------------------------------------------------ */

int64_t csi_watch_renew_at_ms(int64_t issued_at, int64_t not_after, double fraction, double u)
{
	double span, early;

	if (not_after <= issued_at)
		return not_after * 1000;
	if (!(fraction > 0.0) || fraction >= 1.0)
		fraction = CSI_WATCH_DEFAULT_RENEW_FRACTION;
	if (!(u >= 0.0) || u >= 1.0)
		u = 0.0;
	span = (double)(not_after - issued_at) * 1000.0 * fraction;
	early = span * CSI_WATCH_RENEW_JITTER * u;
	return issued_at * 1000 + (int64_t)(span - early);
}

int64_t csi_watch_evict_at_ms(int64_t not_after, int64_t restart_buffer_secs)
{
	return (not_after - restart_buffer_secs) * 1000;
}

int64_t csi_watch_backoff_ms(unsigned failures, int64_t min_ms, int64_t max_ms)
{
	int64_t d = min_ms;

	for (unsigned i = 1; i < failures && d < max_ms; i++)
		d *= 2;
	return d < max_ms ? d : max_ms;
}

void csi_watch_bucket_init(csi_watch_bucket *b, double per_sec, double burst, int64_t now_ms)
{
	b->rate_per_ms = per_sec / 1000.0;
	b->burst = burst < 1.0 ? 1.0 : burst;
	b->tokens = b->burst;
	b->last_ms = now_ms;
}

int64_t csi_watch_bucket_take(csi_watch_bucket *b, int64_t now_ms)
{
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * b->rate_per_ms;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ms = now_ms;
	}
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	if (b->rate_per_ms <= 0.0)
		return WATCH_MAX_SLEEP_MS;
	double need = (1.0 - b->tokens) / b->rate_per_ms;
	int64_t ms = (int64_t)need;
	return (double)ms < need ? ms + 1 : (ms > 0 ? ms : 1);
}

static bool record_has_pod_scope(const csi_attrs *a)
{
	for (size_t i = 0; i < a->n_scopes; i++)
		if (a->scopes[i].kind == CA_SCOPE_POD)
			return true;
	return false;
}

int csi_watch_plan_record(const csi_volume_record *rec, bool have_kube, double fraction, double u,
                          csi_watch_plan *ret, sigil_err *err)
{
	csi_watch_plan p = {0};
	csi_attrs a;
	int r;

	r = csi_node_record_attrs(rec, &a, err);
	if (r < 0)
		return r;
	p.renewal = a.renewal;
	p.issued_at = rec->renewed_at ? rec->renewed_at : rec->published_at;
	p.restart_buffer_secs = csi_attrs_restart_buffer(&a, p.issued_at, rec->not_after);
	if (rec->not_after > 0 && a.format != CSI_FORMAT_KERBEROS) {
		p.expires_at = rec->not_after - p.restart_buffer_secs;
		if (a.renewal == CSI_RENEWAL_IN_PLACE) {
			p.action = CSI_WATCH_RENEW;
			p.deadline_ms =
			    csi_watch_renew_at_ms(p.issued_at, rec->not_after, fraction, u);
		} else if (have_kube && a.pod_namespace && a.pod_name) {
			p.action = CSI_WATCH_EVICT;
			p.deadline_ms =
			    csi_watch_evict_at_ms(rec->not_after, p.restart_buffer_secs);
			p.needs_annotation = rec->annotated_expires_at != p.expires_at;
		} else {
			/* Nobody to evict through: renew in place at the time the
			 * pod would have been restarted (documented in main.c). */
			p.action = CSI_WATCH_RENEW;
			p.deadline_ms =
			    csi_watch_evict_at_ms(rec->not_after, p.restart_buffer_secs);
		}
		p.awaiting_pod_ip = have_kube && rec->awaiting_pod_ip && record_has_pod_scope(&a);
	}
	csi_attrs_free(&a);
	*ret = p;
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double rand_unit(void)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (uint32_t)wall_ms() * 2654435761u;
	return (double)v / 4294967296.0;
}

static uint64_t key_hash(const char *id, const char *target)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */

	for (const char *p = id; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (const char *p = target; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return h;
}

static void entry_free(wentry *e)
{
	if (!e)
		return;
	free(e->volume_id);
	free(e->target);
	free(e->class_name);
	free(e->pod_ns);
	free(e->pod_name);
	free(e->pod_uid);
	free(e);
}

static void notify(csi_watcher *w, const wentry *e, csi_watch_event ev, const char *fmt, ...)
    SIGIL_PRINTF(4, 5);

/* Counts ev and tells the hook.  Called without w->lock held. */
static void notify(csi_watcher *w, const wentry *e, csi_watch_event ev, const char *fmt, ...)
{
	char msg[512] = "";
	va_list ap;

	pthread_mutex_lock(&w->lock);
	w->stats.counts[ev]++;
	pthread_mutex_unlock(&w->lock);
	if (!w->cfg.notify)
		return;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	csi_watch_notice n = {
	    .event = ev,
	    .volume_id = e->volume_id,
	    .target_path = e->target,
	    .pod_namespace = e->pod_ns,
	    .pod_name = e->pod_name,
	    .class_name = e->class_name,
	    .not_after = e->not_after,
	    .message = msg,
	};
	w->cfg.notify(w->cfg.notify_ctx, &n);
}

/* Posts a Kubernetes Event about the entry's pod (best effort). */
static void pod_event(csi_watcher *w, const wentry *e, const char *type, const char *reason,
                      const char *fmt, ...) SIGIL_PRINTF(5, 6);

static void pod_event(csi_watcher *w, const wentry *e, const char *type, const char *reason,
                      const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!w->cfg.kube || !e->pod_ns || !e->pod_name)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	csi_kube_event(w->cfg.kube, e->pod_ns, e->pod_name, e->pod_uid, type, reason, "%s", msg);
}

static void format_time(int64_t t, char buf[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- heap (min by deadline) ------------------------------------------------ */

static void heap_swap(csi_watcher *w, size_t i, size_t j)
{
	wentry *t = w->heap[i];

	w->heap[i] = w->heap[j];
	w->heap[j] = t;
	w->heap[i]->heap_idx = i;
	w->heap[j]->heap_idx = j;
}

static void heap_up(csi_watcher *w, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (w->heap[p]->deadline_ms <= w->heap[i]->deadline_ms)
			break;
		heap_swap(w, i, p);
		i = p;
	}
}

static void heap_down(csi_watcher *w, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < w->n_heap && w->heap[l]->deadline_ms < w->heap[m]->deadline_ms)
			m = l;
		if (r < w->n_heap && w->heap[r]->deadline_ms < w->heap[m]->deadline_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(w, i, m);
		i = m;
	}
}

static int heap_push(csi_watcher *w, wentry *e)
{
	if (w->n_heap == w->cap_heap) {
		size_t cap = w->cap_heap ? w->cap_heap * 2 : 64;
		wentry **h = realloc(w->heap, cap * sizeof(*h));
		if (!h)
			return SIGIL_E_NOMEM;
		w->heap = h;
		w->cap_heap = cap;
	}
	e->heap_idx = w->n_heap;
	w->heap[w->n_heap++] = e;
	heap_up(w, e->heap_idx);
	return 0;
}

static void heap_remove(csi_watcher *w, wentry *e)
{
	size_t i = e->heap_idx;

	if (i == SIZE_MAX || i >= w->n_heap || w->heap[i] != e)
		return;
	e->heap_idx = SIZE_MAX;
	w->n_heap--;
	if (i == w->n_heap)
		return;
	w->heap[i] = w->heap[w->n_heap];
	w->heap[i]->heap_idx = i;
	heap_down(w, i);
	heap_up(w, i);
}

/* ---- hash table by (volume id, target) ------------------------------------ */

static wentry *table_find(csi_watcher *w, const char *id, const char *target, uint64_t h)
{
	for (wentry *e = w->buckets[h & (w->n_buckets - 1)]; e; e = e->next)
		if (e->hash == h && !strcmp(e->volume_id, id) && !strcmp(e->target, target))
			return e;
	return NULL;
}

static int table_grow(csi_watcher *w)
{
	size_t nb = w->n_buckets * 2;
	wentry **b = calloc(nb, sizeof(*b));

	if (!b)
		return SIGIL_E_NOMEM;
	for (size_t i = 0; i < w->n_buckets; i++)
		for (wentry *e = w->buckets[i], *next; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	free(w->buckets);
	w->buckets = b;
	w->n_buckets = nb;
	return 0;
}

static int table_add(csi_watcher *w, wentry *e)
{
	if (w->n_entries >= CSI_STATE_MAX_VOLUMES)
		return SIGIL_E_LIMIT;
	if (w->n_entries + 1 > w->n_buckets * 2 && table_grow(w) < 0)
		return SIGIL_E_NOMEM;
	e->next = w->buckets[e->hash & (w->n_buckets - 1)];
	w->buckets[e->hash & (w->n_buckets - 1)] = e;
	w->n_entries++;
	return 0;
}

static void table_unlink(csi_watcher *w, wentry *e)
{
	wentry **pp = &w->buckets[e->hash & (w->n_buckets - 1)];

	for (; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			e->next = NULL;
			w->n_entries--;
			return;
		}
}

/* ---- scheduling ------------------------------------------------------------ */

/* The earliest of the entry's tasks becomes its heap deadline. */
static void entry_choose(csi_watcher *w, wentry *e)
{
	csi_watch_action act = CSI_WATCH_NONE;
	int64_t at = INT64_MAX;

	if (!e->done && e->plan.action != CSI_WATCH_NONE) {
		act = e->plan.action;
		at = e->plan.deadline_ms;
		if (e->main_retry_at > at)
			at = e->main_retry_at;
	}
	if (!e->done && e->plan.needs_annotation && w->cfg.kube) {
		int64_t t = e->annotate_retry_at;
		if (t < at) {
			act = CSI_WATCH_ANNOTATE;
			at = t;
		}
	}
	if (!e->done && e->plan.awaiting_pod_ip && e->pod_ip_checks < CSI_WATCH_POD_IP_CHECKS) {
		/* checks at 1, 3, 7, 15, ... times FIRST_MS after the issue */
		int64_t t = e->published_ms + CSI_WATCH_POD_IP_FIRST_MS *
		                                  ((INT64_C(1) << (e->pod_ip_checks + 1)) - 1);
		if (t < at) {
			act = CSI_WATCH_POD_IP;
			at = t;
		}
	}
	e->action = act;
	e->deadline_ms = at;
}

/* Puts a not-in-flight entry where it belongs in the heap. */
static void entry_reschedule(csi_watcher *w, wentry *e)
{
	int64_t old_top = w->n_heap ? w->heap[0]->deadline_ms : INT64_MAX;

	entry_choose(w, e);
	if (e->heap_idx != SIZE_MAX)
		heap_remove(w, e);
	if (e->action != CSI_WATCH_NONE && heap_push(w, e) < 0)
		log_debug("watcher: out of memory scheduling %s", e->volume_id);
	if (w->n_heap && w->heap[0]->deadline_ms < old_top) {
		w->kick = true;
		pthread_cond_signal(&w->cond);
	}
}

static int dup_opt(char **dst, const char *s)
{
	free(*dst);
	*dst = NULL;
	if (!s)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : SIGIL_E_NOMEM;
}

/* Loads what the watcher keeps about rec into e (its strings only when
 * the entry is new: in-flight entries keep theirs). */
static int entry_load(csi_watcher *w, wentry *e, const csi_volume_record *rec, bool strings)
{
	csi_watch_plan p;
	csi_attrs a;
	sigil_err err = {0};
	int r;

	r = csi_watch_plan_record(rec, w->cfg.kube != NULL, w->cfg.renew_fraction, rand_unit(), &p,
	                          &err);
	if (r < 0) {
		log_debug("watcher: volume %s: %s", rec->volume_id, err.msg);
		return r;
	}
	if (strings) {
		r = csi_node_record_attrs(rec, &a, &err);
		if (r < 0)
			return r;
		r = dup_opt(&e->pod_ns, a.pod_namespace);
		if (r == 0)
			r = dup_opt(&e->pod_name, a.pod_name);
		if (r == 0)
			r = dup_opt(&e->pod_uid, a.pod_uid);
		/* Keytabs have no trust bundle to follow. */
		if (r == 0 && a.format != CSI_FORMAT_KERBEROS)
			r = dup_opt(&e->class_name, a.class_name);
		csi_attrs_free(&a);
		if (r < 0)
			return r;
	}
	if (rec->not_after != e->not_after) {
		/* A new certificate: earlier failures and alerts are history. */
		e->failures = 0;
		e->main_retry_at = 0;
		e->blocked_posted = false;
		e->alerted = false;
		e->done = false;
	}
	if (!p.needs_annotation) {
		e->annotate_failures = 0;
		e->annotate_retry_at = 0;
	}
	e->plan = p;
	e->not_after = rec->not_after;
	e->trust_version = rec->trust_version;
	e->published_ms = (rec->renewed_at ? rec->renewed_at : rec->published_at) * 1000;
	return 0;
}

static void track_locked(csi_watcher *w, const csi_volume_record *rec)
{
	uint64_t h = key_hash(rec->volume_id, rec->target_path);
	wentry *e = table_find(w, rec->volume_id, rec->target_path, h);

	if (e) {
		if (entry_load(w, e, rec, !e->in_flight) < 0)
			return;
		e->gen++;
		if (!e->in_flight)
			entry_reschedule(w, e);
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->heap_idx = SIZE_MAX;
	e->hash = h;
	e->volume_id = strdup(rec->volume_id);
	e->target = strdup(rec->target_path);
	if (!e->volume_id || !e->target || entry_load(w, e, rec, true) < 0 || table_add(w, e) < 0) {
		entry_free(e);
		return;
	}
	entry_reschedule(w, e);
}

void csi_watcher_track(csi_watcher *w, const csi_volume_record *rec)
{
	wentry snapshot = {0};
	csi_attrs a;
	bool have_attrs;

	if (!w || !rec)
		return;
	pthread_mutex_lock(&w->lock);
	track_locked(w, rec);
	pthread_mutex_unlock(&w->lock);
	/* The notice carries the same names as every later one about the
	 * volume (metrics labels). */
	have_attrs = csi_node_record_attrs(rec, &a, NULL) == 0;
	snapshot.volume_id = rec->volume_id;
	snapshot.target = rec->target_path;
	snapshot.not_after = rec->not_after;
	if (have_attrs) {
		snapshot.pod_ns = a.pod_namespace;
		snapshot.pod_name = a.pod_name;
		snapshot.class_name = a.format == CSI_FORMAT_KERBEROS ? NULL : a.class_name;
	}
	notify(w, &snapshot, CSI_WATCH_EV_TRACKED, NULL);
	if (have_attrs)
		csi_attrs_free(&a);
}

/* Under w->lock. */
static void forget_locked(csi_watcher *w, wentry *e)
{
	table_unlink(w, e);
	heap_remove(w, e);
	if (e->in_flight)
		e->removed = true; /* the thread frees it */
	else
		entry_free(e);
}

void csi_watcher_forget(csi_watcher *w, const char *volume_id, const char *target_path)
{
	wentry *e;
	wentry snapshot = {0};
	bool found = false;

	if (!w || !volume_id || !target_path)
		return;
	pthread_mutex_lock(&w->lock);
	e = table_find(w, volume_id, target_path, key_hash(volume_id, target_path));
	if (e) {
		found = true;
		snapshot.pod_ns = e->pod_ns ? strdup(e->pod_ns) : NULL;
		snapshot.pod_name = e->pod_name ? strdup(e->pod_name) : NULL;
		snapshot.class_name = e->class_name ? strdup(e->class_name) : NULL;
		forget_locked(w, e);
	}
	pthread_mutex_unlock(&w->lock);
	if (found) {
		snapshot.volume_id = (char *)volume_id;
		snapshot.target = (char *)target_path;
		notify(w, &snapshot, CSI_WATCH_EV_UNTRACKED, NULL);
		free(snapshot.pod_ns);
		free(snapshot.pod_name);
		free(snapshot.class_name);
	}
}

void csi_watcher_get_stats(csi_watcher *w, csi_watcher_stats *ret)
{
	pthread_mutex_lock(&w->lock);
	*ret = w->stats;
	ret->tracked = w->n_entries;
	pthread_mutex_unlock(&w->lock);
}

int csi_watcher_peek(csi_watcher *w, char **ret_volume_id, char **ret_target,
                     csi_watch_action *ret_action, int64_t *ret_deadline_ms)
{
	char *id = NULL, *t = NULL;
	csi_watch_action a = CSI_WATCH_NONE;
	int64_t d = 0;
	int r = 0;

	pthread_mutex_lock(&w->lock);
	if (!w->n_heap) {
		r = SIGIL_E_NOTFOUND;
	} else {
		id = strdup(w->heap[0]->volume_id);
		t = strdup(w->heap[0]->target);
		a = w->heap[0]->action;
		d = w->heap[0]->deadline_ms;
		if (!id || !t)
			r = SIGIL_E_NOMEM;
	}
	pthread_mutex_unlock(&w->lock);
	if (r < 0) {
		free(id);
		free(t);
		return r;
	}
	*ret_volume_id = id;
	*ret_target = t;
	*ret_action = a;
	*ret_deadline_ms = d;
	return 0;
}

/* ---- actions (run by the thread without w->lock) -------------------------- */

/* What an action decided, applied under the lock afterwards. */
typedef struct outcome {
	bool forget;   /* the volume or its pod is gone */
	bool have_rec; /* rec is the volume's new record */
	csi_volume_record rec;
	bool main_failed; /* failures++, retry with backoff */
	int64_t main_retry_max_ms;
	int64_t retry_by_ms; /* and no later than this (0: no bound) */
	bool annotate_failed;
	bool pod_ip_checked;  /* one more pod IP check used */
	int64_t rate_wait_ms; /* no token: try again this much later */
	bool evicted;
	bool mark_blocked_posted;
	bool mark_alerted;
} outcome;

/* in-place renewal (also renewal=restart without an API). */
static void act_renew(csi_watcher *w, const wentry *e, const char *why, outcome *o)
{
	sigil_err err = {0};
	char when[32];
	int r;

	r = csi_node_renew(w->cfg.node, e->volume_id, e->target, &o->rec, &err);
	if (r == 0) {
		o->have_rec = true;
		format_time(o->rec.not_after, when);
		pod_event(w, e, CSI_KUBE_EVENT_NORMAL, "Renewed",
		          "sigil renewed the certificate of volume %s in place%s; valid until %s",
		          e->volume_id, why, when);
		wentry ne = *e;
		ne.not_after = o->rec.not_after;
		notify(w, &ne, CSI_WATCH_EV_RENEWED, "new certificate%s, valid until %s", why, when);
		return;
	}
	if (r == SIGIL_E_NOTFOUND) {
		o->forget = true;
		return;
	}
	o->main_failed = true;
	o->main_retry_max_ms = CSI_WATCH_RETRY_MAX_MS;
	format_time(e->not_after, when);
	pod_event(w, e, CSI_KUBE_EVENT_WARNING, "RenewalFailed",
	          "sigil could not renew the certificate of volume %s (it keeps the current one, "
	          "valid until %s, and retries): %s",
	          e->volume_id, when, err.msg);
	notify(w, e, CSI_WATCH_EV_RENEW_FAILED, "%s", err.msg);
	/* Alert once most of the lifetime is gone without a renewal. */
	int64_t issued = e->plan.issued_at;
	int64_t soon =
	    issued + (int64_t)((double)(e->not_after - issued) * CSI_WATCH_EXPIRING_FRACTION);
	if (!e->alerted && time(NULL) >= soon) {
		o->mark_alerted = true;
		pod_event(
		    w, e, CSI_KUBE_EVENT_WARNING, "ExpiringSoon",
		    "the certificate of volume %s expires at %s and renewals keep failing: %s",
		    e->volume_id, when, err.msg);
		notify(w, e, CSI_WATCH_EV_EXPIRING_SOON,
		       "certificate expires at %s and renewals keep failing: %s", when, err.msg);
	}
}

static void act_evict(csi_watcher *w, const wentry *e, outcome *o)
{
	sigil_err err = {0};
	char when[32];
	int r;

	format_time(e->not_after, when);
	r = csi_kube_evict(w->cfg.kube, e->pod_ns, e->pod_name, &err);
	if (r == 0) {
		o->evicted = true;
		pod_event(
		    w, e, CSI_KUBE_EVENT_NORMAL, "Evicted",
		    "sigil evicted the pod so that it restarts with a fresh certificate: volume "
		    "%s expires at %s",
		    e->volume_id, when);
		notify(w, e, CSI_WATCH_EV_EVICTED, "evicted %s/%s", e->pod_ns, e->pod_name);
		return;
	}
	if (r == SIGIL_E_NOTFOUND) {
		/* The pod is gone; the kubelet will unpublish the volume. */
		o->forget = true;
		return;
	}
	o->main_failed = true;
	/* Retry often enough for the buffer: at most an eighth of it apart
	 * (30 s for the default 6h), and once more right when the alert is
	 * due, so that a short-lived certificate is not retried past its
	 * expiry. */
	o->main_retry_max_ms = e->plan.restart_buffer_secs * 1000 / 8;
	if (o->main_retry_max_ms > CSI_WATCH_EVICT_RETRY_MAX_MS)
		o->main_retry_max_ms = CSI_WATCH_EVICT_RETRY_MAX_MS;
	if (o->main_retry_max_ms < CSI_WATCH_RETRY_MIN_MS)
		o->main_retry_max_ms = CSI_WATCH_RETRY_MIN_MS;
	if (!e->alerted)
		o->retry_by_ms = (e->not_after - e->plan.restart_buffer_secs / 4) * 1000;
	if (r != SIGIL_E_UNAVAIL) {
		notify(w, e, CSI_WATCH_EV_EVICT_FAILED, "%s", err.msg);
		return;
	}
	notify(w, e, CSI_WATCH_EV_EVICT_BLOCKED, "%s", err.msg);
	if (!e->blocked_posted) {
		o->mark_blocked_posted = true;
		pod_event(
		    w, e, CSI_KUBE_EVENT_WARNING, "EvictionBlocked",
		    "sigil cannot evict the pod yet (volume %s, certificate valid until %s): %s; "
		    "retrying",
		    e->volume_id, when, err.msg);
	}
	/* The alert: the pod is still blocked in the last quarter of the
	 * restart buffer, so it may well run into an expired certificate. */
	if (!e->alerted && time(NULL) >= e->not_after - e->plan.restart_buffer_secs / 4) {
		o->mark_alerted = true;
		pod_event(
		    w, e, CSI_KUBE_EVENT_WARNING, "ExpiringSoon",
		    "the certificate of volume %s expires at %s and the pod cannot be evicted: "
		    "%s",
		    e->volume_id, when, err.msg);
		notify(w, e, CSI_WATCH_EV_EXPIRING_SOON,
		       "certificate expires at %s and eviction is blocked: %s", when, err.msg);
	}
}

static void act_pod_ip(csi_watcher *w, const wentry *e, outcome *o)
{
	kube_pod_info *pi = NULL;
	sigil_err err = {0};
	int r;

	r = csi_kube_pod_info(w->cfg.kube, e->pod_ns, e->pod_name, NULL, 0, &pi, &err);
	if (r == SIGIL_E_NOTFOUND) {
		o->forget = true;
		return;
	}
	if (r < 0 || pi->n_pod_ips == 0) {
		kube_pod_info_free(pi);
		o->pod_ip_checked = true;
		return;
	}
	kube_pod_info_free(pi);
	act_renew(w, e, " to add the pod's IP", o);
	if (!o->have_rec)
		o->pod_ip_checked = true;
}

static void act_annotate(csi_watcher *w, const wentry *e, outcome *o)
{
	sigil_err err = {0};
	int r = csi_node_annotate_expiry(w->cfg.node, e->volume_id, e->target, &o->rec, &err);

	if (r == 0)
		o->have_rec = true;
	else if (r == SIGIL_E_NOTFOUND)
		o->forget = true;
	else
		o->annotate_failed = true;
}

/* Under w->lock: folds an outcome into the entry (or frees it). */
static void apply_outcome(csi_watcher *w, wentry *e, uint64_t gen, outcome *o, int64_t now)
{
	e->in_flight = false;
	if (e->removed) {
		entry_free(e);
		return;
	}
	if (o->forget) {
		table_unlink(w, e);
		entry_free(e);
		return;
	}
	if (gen != e->gen) {
		/* Re-published meanwhile: its new record rules. */
		entry_reschedule(w, e);
		return;
	}
	if (o->have_rec)
		(void)entry_load(w, e, &o->rec, false);
	if (o->main_failed) {
		e->failures++;
		e->main_retry_at = now + csi_watch_backoff_ms(e->failures, CSI_WATCH_RETRY_MIN_MS,
		                                              o->main_retry_max_ms);
		if (o->retry_by_ms > now && e->main_retry_at > o->retry_by_ms)
			e->main_retry_at = o->retry_by_ms;
	}
	if (o->annotate_failed) {
		e->annotate_failures++;
		e->annotate_retry_at =
		    now + csi_watch_backoff_ms(e->annotate_failures, CSI_WATCH_RETRY_MIN_MS,
		                               CSI_WATCH_RETRY_MAX_MS);
	}
	if (o->pod_ip_checked)
		e->pod_ip_checks++;
	if (o->rate_wait_ms)
		e->main_retry_at =
		    now + o->rate_wait_ms + (int64_t)(rand_unit() * WATCH_RATE_JITTER_MS);
	if (o->evicted)
		e->done = true;
	if (o->mark_blocked_posted)
		e->blocked_posted = true;
	if (o->mark_alerted)
		e->alerted = true;
	entry_reschedule(w, e);
}

/* ---- trust bundles ---------------------------------------------------------- */

typedef struct vol_ref {
	char *volume_id, *target;
} vol_ref;

static void check_bundles(csi_watcher *w)
{
	char *classes[CSI_WATCH_MAX_CLASSES];
	size_t n_classes = 0;

	pthread_mutex_lock(&w->lock);
	for (size_t b = 0; b < w->n_buckets; b++)
		for (wentry *e = w->buckets[b]; e; e = e->next) {
			size_t i;
			if (!e->class_name)
				continue;
			for (i = 0; i < n_classes; i++)
				if (!strcmp(classes[i], e->class_name))
					break;
			if (i == n_classes && n_classes < CSI_WATCH_MAX_CLASSES) {
				classes[n_classes] = strdup(e->class_name);
				if (classes[n_classes])
					n_classes++;
			}
		}
	pthread_mutex_unlock(&w->lock);

	for (size_t c = 0; c < n_classes; c++) {
		STACK_OF(X509) *trust = NULL;
		uint64_t version = 0;
		sigil_err err = {0};
		vol_ref *refs = NULL;
		size_t n_refs = 0, cap = 0;

		pthread_mutex_lock(&w->lock);
		w->stats.bundle_checks++;
		pthread_mutex_unlock(&w->lock);
		/* One call per class per interval, however many volumes. */
		if (csi_issuer_trust_bundle(w->cfg.issuer, classes[c], &trust, &version, &err) <
		    0) {
			log_debug("watcher: trust bundle of class %s: %s", classes[c], err.msg);
			continue;
		}
		pthread_mutex_lock(&w->lock);
		for (size_t b = 0; b < w->n_buckets; b++)
			for (wentry *e = w->buckets[b]; e; e = e->next) {
				if (!e->class_name || strcmp(e->class_name, classes[c]) ||
				    e->trust_version == version)
					continue;
				if (n_refs == cap) {
					size_t nc = cap ? cap * 2 : 16;
					vol_ref *nr = realloc(refs, nc * sizeof(*nr));
					if (!nr)
						break;
					refs = nr;
					cap = nc;
				}
				refs[n_refs].volume_id = strdup(e->volume_id);
				refs[n_refs].target = strdup(e->target);
				n_refs++;
			}
		pthread_mutex_unlock(&w->lock);
		for (size_t i = 0; i < n_refs; i++) {
			csi_volume_record rec;
			wentry *e;
			int r;

			if (!refs[i].volume_id || !refs[i].target)
				goto next;
			err.msg[0] = '\0';
			r = csi_node_refresh_trust(w->cfg.node, refs[i].volume_id, refs[i].target,
			                           trust, version, &rec, &err);
			pthread_mutex_lock(&w->lock);
			e = table_find(w, refs[i].volume_id, refs[i].target,
			               key_hash(refs[i].volume_id, refs[i].target));
			if (r == 0 && e)
				e->trust_version = rec.trust_version;
			pthread_mutex_unlock(&w->lock);
			if (r == 0) {
				wentry snap = {.volume_id = refs[i].volume_id,
				               .target = refs[i].target,
				               .class_name = classes[c],
				               .not_after = rec.not_after};
				notify(w, &snap, CSI_WATCH_EV_TRUST_REFRESHED,
				       "trust bundle version %llu", (unsigned long long)version);
				csi_record_free(&rec);
			} else if (r != SIGIL_E_NOTFOUND) {
				wentry snap = {.volume_id = refs[i].volume_id,
				               .target = refs[i].target,
				               .class_name = classes[c]};
				notify(w, &snap, CSI_WATCH_EV_TRUST_FAILED, "%s", err.msg);
				log_debug("watcher: trust refresh of %s: %s", refs[i].target,
				          err.msg);
			}
		next:
			free(refs[i].volume_id);
			free(refs[i].target);
		}
		free(refs);
		sk_X509_pop_free(trust, X509_free);
	}
	for (size_t c = 0; c < n_classes; c++)
		free(classes[c]);
}

/* ---- the thread ------------------------------------------------------------- */

static void *watcher_main(void *arg)
{
	csi_watcher *w = arg;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		int64_t now = wall_ms();
		int64_t next = w->next_bundle_ms;

		w->stats.wakeups++;
		if (w->cfg.bundle_check_secs > 0 && now >= w->next_bundle_ms) {
			w->next_bundle_ms = now + w->cfg.bundle_check_secs * 1000;
			pthread_mutex_unlock(&w->lock);
			check_bundles(w);
			pthread_mutex_lock(&w->lock);
			continue;
		}
		if (w->n_heap && w->heap[0]->deadline_ms <= now) {
			wentry *e = w->heap[0];
			outcome o = {0};
			uint64_t gen = e->gen;
			csi_watch_action act = e->action;
			int64_t wait = 0;

			heap_remove(w, e);
			if (act == CSI_WATCH_RENEW || act == CSI_WATCH_POD_IP)
				wait = csi_watch_bucket_take(&w->renew_bucket, now);
			else if (act == CSI_WATCH_EVICT)
				wait = csi_watch_bucket_take(&w->evict_bucket, now);
			if (wait > 0) {
				/* Rate limited: later, with jitter; never earlier. */
				o.rate_wait_ms = wait;
				e->in_flight = true;
				apply_outcome(w, e, gen, &o, now);
				continue;
			}
			e->in_flight = true;
			/* The action works on a copy: track() may update the
			 * numbers of an in-flight entry meanwhile (its strings
			 * stay: they are only set while it is not in flight). */
			wentry snap = *e;
			pthread_mutex_unlock(&w->lock);
			switch (act) {
			case CSI_WATCH_RENEW:
				act_renew(w, &snap,
				          snap.plan.renewal == CSI_RENEWAL_RESTART
				              ? " (renewal=restart without a Kubernetes API)"
				              : "",
				          &o);
				break;
			case CSI_WATCH_EVICT: act_evict(w, &snap, &o); break;
			case CSI_WATCH_POD_IP: act_pod_ip(w, &snap, &o); break;
			case CSI_WATCH_ANNOTATE: act_annotate(w, &snap, &o); break;
			case CSI_WATCH_NONE:
			default: break;
			}
			if (o.forget)
				notify(w, &snap, CSI_WATCH_EV_UNTRACKED,
				       "the volume or its pod is gone");
			pthread_mutex_lock(&w->lock);
			apply_outcome(w, e, gen, &o, wall_ms());
			if (o.have_rec)
				csi_record_free(&o.rec);
			continue;
		}
		if (w->n_heap && w->heap[0]->deadline_ms < next)
			next = w->heap[0]->deadline_ms;
		if (w->cfg.bundle_check_secs <= 0 && !w->n_heap)
			next = now + WATCH_MAX_SLEEP_MS;
		int64_t sleep_ms = next - now;
		if (sleep_ms > WATCH_MAX_SLEEP_MS)
			sleep_ms = WATCH_MAX_SLEEP_MS;
		if (sleep_ms < 1)
			sleep_ms = 1;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += sleep_ms / 1000;
		ts.tv_nsec += (sleep_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		w->kick = false;
		while (!w->stop && !w->kick) {
			if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT)
				break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* ---- life cycle ---------------------------------------------------------------- */

static void rebuild_one(const csi_volume_record *rec, void *ctx)
{
	csi_watcher_track(ctx, rec);
}

int csi_watcher_new(const csi_watcher_config *cfg, csi_watcher **ret, sigil_err *err)
{
	csi_watcher *w;
	pthread_condattr_t ca;
	int64_t now = wall_ms();

	if (!cfg->node || !cfg->state || !cfg->issuer)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "the watcher needs a node, state and issuer");
	if (cfg->renew_fraction != 0.0 && (cfg->renew_fraction < CSI_WATCH_MIN_RENEW_FRACTION ||
	                                   cfg->renew_fraction > CSI_WATCH_MAX_RENEW_FRACTION))
		return sigil_err_set(err, SIGIL_E_INVALID, "renewal fraction %g is not in %g..%g",
		                     cfg->renew_fraction, CSI_WATCH_MIN_RENEW_FRACTION,
		                     CSI_WATCH_MAX_RENEW_FRACTION);
	if (cfg->renewals_per_sec < 0 || cfg->renewals_per_sec > CSI_WATCH_MAX_RATE ||
	    cfg->evictions_per_min < 0 || cfg->evictions_per_min > CSI_WATCH_MAX_RATE)
		return sigil_err_set(err, SIGIL_E_INVALID, "rate limits must be 0..%g",
		                     CSI_WATCH_MAX_RATE);
	if (cfg->bundle_check_secs > CSI_WATCH_MAX_BUNDLE_CHECK_SECS)
		return sigil_err_set(err, SIGIL_E_INVALID, "bundle check interval above %d s",
		                     CSI_WATCH_MAX_BUNDLE_CHECK_SECS);
	w = calloc(1, sizeof(*w));
	if (!w)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	w->cfg = *cfg;
	if (w->cfg.renew_fraction == 0.0)
		w->cfg.renew_fraction = CSI_WATCH_DEFAULT_RENEW_FRACTION;
	if (w->cfg.bundle_check_secs == 0)
		w->cfg.bundle_check_secs = CSI_WATCH_DEFAULT_BUNDLE_CHECK_SECS;
	if (w->cfg.renewals_per_sec == 0.0)
		w->cfg.renewals_per_sec = CSI_WATCH_DEFAULT_RENEWALS_PER_SEC;
	if (w->cfg.evictions_per_min == 0.0)
		w->cfg.evictions_per_min = CSI_WATCH_DEFAULT_EVICTIONS_PER_MIN;
	/* Bursts: one second of renewals, one eviction (restarts are the
	 * expensive thing to do all at once). */
	csi_watch_bucket_init(&w->renew_bucket, w->cfg.renewals_per_sec, w->cfg.renewals_per_sec,
	                      now);
	csi_watch_bucket_init(&w->evict_bucket, w->cfg.evictions_per_min / 60.0, 1.0, now);
	w->next_bundle_ms = now; /* catch rotations that happened while we were down */
	w->n_buckets = WATCH_HASH_MIN_BUCKETS;
	w->buckets = calloc(w->n_buckets, sizeof(*w->buckets));
	if (!w->buckets) {
		free(w);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	csi_state_foreach(cfg->state, rebuild_one, w);
	*ret = w;
	return 0;
}

int csi_watcher_start(csi_watcher *w, sigil_err *err)
{
	int r;

	if (w->started)
		return 0;
	r = pthread_create(&w->thread, NULL, watcher_main, w);
	if (r != 0)
		return sigil_err_errno(err, r, "cannot start the expiry watcher thread");
	w->started = true;
	return 0;
}

void csi_watcher_free(csi_watcher *w)
{
	if (!w)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	for (size_t b = 0; b < w->n_buckets; b++)
		for (wentry *e = w->buckets[b], *next; e; e = next) {
			next = e->next;
			entry_free(e);
		}
	free(w->buckets);
	free(w->heap);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
