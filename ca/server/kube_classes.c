/* SecretClasses from the Kubernetes API (see kube_classes.h).
 *
 * One informer per API group; whenever either cache changes, the whole
 * class set is recomputed from both snapshots (a cluster has a handful of
 * SecretClasses, so re-parsing them all is cheaper than being clever) and
 * compared with what was delivered last. */
#include "ca/server/kube_classes.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/secretclass.h"
#include "ca/server/kube_informer.h"
#include "util/log.h"

#define KC_GROUPS 2

typedef struct kc_entry {
	const ca_class_config *cfg;
	bool stackable;
} kc_entry;

struct kube_classes {
	kube_classes_opts o;
	kube_informer *inf[KC_GROUPS];
	const kube_resource *res[KC_GROUPS];
	size_t n_groups;

	pthread_mutex_t lock; /* serializes recomputation and guards the state below */
	pthread_cond_t ready_cv;
	bool stopping;
	bool delivered;
	ca_class_config *last; /* CA_SERVICE_MAX_CLASSES */
	size_t n_last;
	kube_class_error errors[KUBE_CLASSES_MAX_ERRORS];
	size_t n_errors;
	/* "group/name" -> "resourceVersion|message" of errors already passed
	 * to on_error, so that each is reported once per object version. */
	json_t *reported;
};

/* ---- pure part ------------------------------------------------------------------- */

int kube_classes_parse_object(const kube_resource *res, const json_t *obj, ca_class_config *ret,
                              sigil_err *err)
{
	_cleanup_free_ char *text = NULL;
	ca_class_config cfg;
	const char *name = kube_object_name(obj);
	json_t *doc;
	char api[128];
	size_t n = 0;
	int r;

	if (!res || !json_is_object(obj))
		return sigil_err_set(err, SIGIL_E_INVALID, "a SecretClass must be a JSON object");
	if (!name)
		return sigil_err_set(err, SIGIL_E_INVALID, "SecretClass without metadata.name");
	snprintf(api, sizeof(api), "%s/%s", res->group, res->version);
	/* Only what the parser knows: managedFields, status and the like
	 * would only cost parse time and limits. */
	doc = json_pack("{s:s, s:s, s:{s:s}, s:O?}", "apiVersion", api, "kind", "SecretClass",
	                "metadata", "name", name, "spec", json_object_get(obj, "spec"));
	if (!doc)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	/* JSON is YAML (flow style).  The default separators (", " and
	 * ": ") and ASCII-only output keep libyaml's YAML 1.1 scanner happy. */
	text = json_dumps(doc, JSON_ENSURE_ASCII | JSON_SORT_KEYS);
	json_decref(doc);
	if (!text)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = ca_secretclass_parse_yaml(text, strlen(text), &cfg, 1, &n, err);
	if (r < 0)
		return sigil_err_prefix(err, "SecretClass %.80s (%s): ", name, res->group);
	if (n != 1)
		return sigil_err_set(err, SIGIL_E_INTERNAL, "SecretClass %.80s: parsed %zu classes",
		                     name, n);
	*ret = cfg;
	return 0;
}

static int kc_entry_cmp(const void *a, const void *b)
{
	const kc_entry *x = a, *y = b;
	int c = strcmp(x->cfg->name, y->cfg->name);

	if (c)
		return c;
	return (int)x->stackable - (int)y->stackable; /* sigil first */
}

static void kc_drop(kube_class_error *dropped, size_t max_dropped, size_t *n_dropped,
                    const char *name, const char *group, int code, const char *why)
{
	kube_class_error *d;

	if (*n_dropped >= max_dropped) {
		(*n_dropped)++;
		return;
	}
	d = &dropped[(*n_dropped)++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->group, sizeof(d->group), "%s", group);
	sigil_err_set(&d->err, code, "SecretClass %s (%s): %s", name, group, why);
}

int kube_classes_merge(const ca_class_config *sigil, size_t n_sigil,
                       const ca_class_config *stackable, size_t n_stackable,
                       const char *const *taken, size_t n_taken, ca_class_config *ret, size_t max,
                       size_t *n, kube_class_error *dropped, size_t max_dropped, size_t *n_dropped,
                       sigil_err *err)
{
	_cleanup_free_ kc_entry *all = NULL;
	_cleanup_free_ ca_class_config *out = NULL;
	ca_class_config builtin;
	size_t total = 0, k = 0, nd = 0;
	bool have_tls = false;

	if ((n_sigil && !sigil) || (n_stackable && !stackable) || (n_taken && !taken) ||
	    (max && !ret) || !n)
		return sigil_err_set(err, SIGIL_E_INVALID, "merge: bad arguments");
	if (n_sigil > KUBE_INFORMER_MAX_OBJECTS || n_stackable > KUBE_INFORMER_MAX_OBJECTS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d SecretClasses",
		                     KUBE_INFORMER_MAX_OBJECTS);
	all = sigil_calloc(n_sigil + n_stackable + 1, sizeof(*all));
	out = sigil_calloc(max ? max : 1, sizeof(*out));
	if (!all || !out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (size_t i = 0; i < n_sigil; i++)
		all[total++] = (kc_entry){.cfg = &sigil[i]};
	for (size_t i = 0; i < n_stackable; i++)
		all[total++] = (kc_entry){.cfg = &stackable[i], .stackable = true};
	for (size_t i = 0; i < total; i++)
		have_tls |= !strcmp(all[i].cfg->name, CA_SERVICE_DEFAULT_CLASS);
	for (size_t i = 0; i < n_taken; i++)
		have_tls |= taken[i] && !strcmp(taken[i], CA_SERVICE_DEFAULT_CLASS);
	if (!have_tls) {
		/* Stackable: a first volume needs no configuration. */
		ca_class_config_defaults(&builtin, CA_SERVICE_DEFAULT_CLASS);
		all[total++] = (kc_entry){.cfg = &builtin};
	}
	qsort(all, total, sizeof(*all), kc_entry_cmp);
	for (size_t i = 0; i < total; i++) {
		const char *group = all[i].stackable ? kube_res_stackable_secretclasses.group
		                                     : kube_res_secretclasses.group;

		if (i > 0 && !strcmp(all[i].cfg->name, all[i - 1].cfg->name)) {
			kc_drop(dropped, max_dropped, &nd, all[i].cfg->name, group, SIGIL_E_EXISTS,
			        "shadowed by the secrets.sigil.dev SecretClass of the same name");
			continue;
		}
		if (k >= max) {
			char why[96];

			snprintf(why, sizeof(why), "left out: more than %zu SecretClasses", max);
			kc_drop(dropped, max_dropped, &nd, all[i].cfg->name, group, SIGIL_E_LIMIT,
			        why);
			continue;
		}
		out[k++] = *all[i].cfg;
	}
	if (k)
		memcpy(ret, out, k * sizeof(*ret));
	*n = k;
	if (n_dropped)
		*n_dropped = nd;
	return 0;
}

/* ---- the watcher ------------------------------------------------------------------ */

/* Parses one group's snapshot.  Classes that fail go into errors (and
 * their names into taken). */
typedef struct kc_group_result {
	ca_class_config *classes;
	size_t n;
	const char **taken; /* borrowed from the snapshot */
	size_t n_taken;
} kc_group_result;

static void kc_record_error(kube_classes *kc, const char *name, const char *group, const char *rv,
                            const sigil_err *why, json_t *still_failing)
{
	char key[CA_CLASS_MAX_NAME + 80], val[SIGIL_ERR_MSG_MAX + KUBE_MAX_RESOURCE_VERSION + 2];
	const char *prev;
	kube_class_error *e;

	snprintf(key, sizeof(key), "%s/%s", group, name);
	snprintf(val, sizeof(val), "%s|%s", rv ? rv : "", why->msg);
	prev = json_string_value(json_object_get(kc->reported, key));
	if ((!prev || strcmp(prev, val)) && kc->o.on_error)
		kc->o.on_error(name, group, why, kc->o.ctx);
	json_object_set_new(still_failing, key, json_string(val));
	if (kc->n_errors >= KUBE_CLASSES_MAX_ERRORS)
		return;
	e = &kc->errors[kc->n_errors++];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->group, sizeof(e->group), "%s", group);
	e->err = *why;
}

static int kc_parse_group(kube_classes *kc, const kube_resource *res, json_t *snap,
                          kc_group_result *g, json_t *still_failing, sigil_err *err)
{
	size_t cap = json_object_size(snap);
	const char *key;
	json_t *obj;

	g->classes = sigil_calloc(cap ? cap : 1, sizeof(*g->classes));
	g->taken = sigil_calloc(cap ? cap : 1, sizeof(*g->taken));
	if (!g->classes || !g->taken)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	json_object_foreach(snap, key, obj)
	{
		sigil_err e = {0};

		if (kube_classes_parse_object(res, obj, &g->classes[g->n], &e) == 0) {
			g->n++;
			continue;
		}
		kc_record_error(kc, key, res->group, kube_object_resource_version(obj), &e,
		                still_failing);
		g->taken[g->n_taken++] = key;
	}
	return 0;
}

static int kc_cmp_error(const void *a, const void *b)
{
	const kube_class_error *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->group, y->group);
}

/* Called with kc->lock held. */
static void kc_recompute_locked(kube_classes *kc)
{
	json_t *snap[KC_GROUPS] = {NULL};
	kc_group_result g[KC_GROUPS] = {{0}};
	_cleanup_free_ ca_class_config *set = NULL;
	kube_class_error dropped[KUBE_CLASSES_MAX_ERRORS];
	const char **taken = NULL;
	json_t *still_failing = NULL;
	size_t n = 0, nd = 0, n_taken = 0;
	sigil_err e = {0};
	int r = 0;

	if (kc->stopping)
		return;
	for (size_t i = 0; i < kc->n_groups; i++) {
		bool synced = false;

		if (!kc->inf[i])
			goto out; /* still starting: kube_classes_start recomputes */
		r = kube_informer_snapshot(kc->inf[i], &snap[i], &synced, NULL, &e);
		if (r < 0 || !synced)
			goto out;
	}
	still_failing = json_object();
	set = sigil_calloc(CA_SERVICE_MAX_CLASSES, sizeof(*set));
	if (!still_failing || !set)
		goto out;
	kc->n_errors = 0;
	for (size_t i = 0; i < kc->n_groups && r == 0; i++)
		r = kc_parse_group(kc, kc->res[i], snap[i], &g[i], still_failing, &e);
	if (r < 0)
		goto out;
	taken = sigil_calloc(g[0].n_taken + g[1].n_taken + 1, sizeof(*taken));
	if (!taken)
		goto out;
	for (size_t i = 0; i < KC_GROUPS; i++)
		for (size_t j = 0; j < g[i].n_taken; j++)
			taken[n_taken++] = g[i].taken[j];
	r = kube_classes_merge(g[0].classes, g[0].n, g[1].classes, g[1].n, taken, n_taken, set,
	                       CA_SERVICE_MAX_CLASSES, &n, dropped, SIGIL_ARRAY_SIZE(dropped), &nd,
	                       &e);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < nd && i < SIGIL_ARRAY_SIZE(dropped); i++)
		kc_record_error(kc, dropped[i].name, dropped[i].group, NULL, &dropped[i].err,
		                still_failing);
	qsort(kc->errors, kc->n_errors, sizeof(kc->errors[0]), kc_cmp_error);
	/* Forget errors that went away, so that breaking a class again is
	 * reported again. */
	json_decref(kc->reported);
	kc->reported = still_failing;
	still_failing = NULL;
	if (kc->delivered && n == kc->n_last && !memcmp(set, kc->last, n * sizeof(*set)))
		goto out;
	if (n)
		memcpy(kc->last, set, n * sizeof(*set));
	kc->n_last = n;
	kc->o.on_change(kc->last, kc->n_last, kc->o.ctx);
	if (!kc->delivered) {
		kc->delivered = true;
		pthread_cond_broadcast(&kc->ready_cv);
	}
out:
	if (r < 0)
		log_debug("SecretClasses: %s", e.msg);
	free(taken);
	json_decref(still_failing);
	for (size_t i = 0; i < KC_GROUPS; i++) {
		free(g[i].classes);
		free(g[i].taken);
		json_decref(snap[i]);
	}
}

static void kc_notify(void *ctx)
{
	kube_classes *kc = ctx;

	pthread_mutex_lock(&kc->lock);
	kc_recompute_locked(kc);
	pthread_mutex_unlock(&kc->lock);
}

static void kc_free(kube_classes *kc)
{
	if (!kc)
		return;
	json_decref(kc->reported);
	free(kc->last);
	pthread_cond_destroy(&kc->ready_cv);
	pthread_mutex_destroy(&kc->lock);
	free(kc);
}

void kube_classes_stop(kube_classes *kc)
{
	if (!kc)
		return;
	/* After this no recomputation touches the informers. */
	pthread_mutex_lock(&kc->lock);
	kc->stopping = true;
	pthread_cond_broadcast(&kc->ready_cv);
	pthread_mutex_unlock(&kc->lock);
	for (size_t i = 0; i < KC_GROUPS; i++)
		kube_informer_request_stop(kc->inf[i]);
	for (size_t i = 0; i < KC_GROUPS; i++)
		kube_informer_stop(kc->inf[i]);
	kc_free(kc);
}

int kube_classes_start(const kube_classes_opts *o, kube_classes **ret, sigil_err *err)
{
	pthread_condattr_t ca;
	kube_classes *kc;
	int r;

	if (!o || !o->client || !o->on_change)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "SecretClass watcher: no client or callback");
	kc = calloc(1, sizeof(*kc));
	if (!kc)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	kc->o = *o;
	pthread_mutex_init(&kc->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&kc->ready_cv, &ca);
	pthread_condattr_destroy(&ca);
	kc->last = sigil_calloc(CA_SERVICE_MAX_CLASSES, sizeof(*kc->last));
	kc->reported = json_object();
	if (!kc->last || !kc->reported) {
		kc_free(kc);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	kc->res[kc->n_groups++] = &kube_res_secretclasses;
	if (o->compat_stackable)
		kc->res[kc->n_groups++] = &kube_res_stackable_secretclasses;
	for (size_t i = 0; i < kc->n_groups; i++) {
		kube_informer_opts io = {
		    .client = o->client,
		    .res = kc->res[i],
		    .notify = kc_notify,
		    .ctx = kc,
		    .backoff_min_ms = o->backoff_min_ms,
		    .backoff_max_ms = o->backoff_max_ms,
		    .watch_timeout_s = o->watch_timeout_s,
		};
		kube_informer *inf = NULL;

		r = kube_informer_start(&io, &inf, err);
		if (r < 0) {
			kube_classes_stop(kc);
			return r;
		}
		pthread_mutex_lock(&kc->lock);
		kc->inf[i] = inf;
		pthread_mutex_unlock(&kc->lock);
	}
	/* A sync that arrived before its informer was stored above was
	 * ignored: look again now that both are. */
	kc_notify(kc);
	*ret = kc;
	return 0;
}

int kube_classes_wait_ready(kube_classes *kc, long timeout_ms, sigil_err *err)
{
	struct timespec ts;
	sigil_err last = {0};
	bool ready;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&kc->lock);
	while (!kc->delivered && !kc->stopping)
		if (pthread_cond_timedwait(&kc->ready_cv, &kc->lock, &ts) == ETIMEDOUT)
			break;
	ready = kc->delivered;
	for (size_t i = 0; !ready && i < kc->n_groups && !last.code; i++)
		if (kc->inf[i])
			kube_informer_last_error(kc->inf[i], &last);
	pthread_mutex_unlock(&kc->lock);
	if (ready)
		return 0;
	return sigil_err_set(
	    err, SIGIL_E_TIMEOUT,
	    "SecretClasses were not read from the Kubernetes API within %ld ms%s%s", timeout_ms,
	    last.code ? ": " : "", last.code ? last.msg : "");
}

size_t kube_classes_errors(kube_classes *kc, kube_class_error *ret, size_t max)
{
	size_t n;

	pthread_mutex_lock(&kc->lock);
	n = kc->n_errors < max ? kc->n_errors : max;
	if (n)
		memcpy(ret, kc->errors, n * sizeof(*ret));
	pthread_mutex_unlock(&kc->lock);
	return n;
}
