/* The expiry watcher (csi/watcher.c): deadline arithmetic, the token
 * bucket, plans from records, the heap and its rebuild from a state dir,
 * and one real in-place renewal and trust refresh through the thread. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca/caset.h"
#include "ca/store.h"
#include "csi/issuer.h"
#include "csi/node.h"
#include "csi/state.h"
#include "csi/watcher.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/parse.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sigil-test-watch-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return sigil_fs_remove_tree(dir, NULL);
}

/* ---- arithmetic ---------------------------------------------------------- */

static void test_renew_at(void **state)
{
	(void)state;
	const int64_t issued = 1700000000, not_after = issued + 3000;

	/* No jitter: exactly 2/3 of the lifetime. */
	assert_int_equal(csi_watch_renew_at_ms(issued, not_after, 2.0 / 3.0, 0.0),
	                 issued * 1000 + 2000 * 1000);
	/* Jitter only ever makes it earlier, by at most 10% of that span. */
	for (int i = 0; i < 1000; i++) {
		double u = i / 1000.0;
		int64_t at = csi_watch_renew_at_ms(issued, not_after, 2.0 / 3.0, u);
		assert_true(at <= issued * 1000 + 2000 * 1000);
		assert_true(at >= issued * 1000 + 1800 * 1000);
	}
	/* Other fractions; nonsense fraction/u fall back to the defaults. */
	assert_int_equal(csi_watch_renew_at_ms(issued, not_after, 0.5, 0.0),
	                 (issued + 1500) * 1000);
	assert_int_equal(
	    csi_watch_renew_at_ms(issued, not_after, 7.0, 0.0),
	    csi_watch_renew_at_ms(issued, not_after, CSI_WATCH_DEFAULT_RENEW_FRACTION, 0.0));
	assert_int_equal(csi_watch_renew_at_ms(issued, not_after, 0.5, -3.0),
	                 (issued + 1500) * 1000);
	/* A certificate already past (or garbage times): due at notAfter. */
	assert_int_equal(csi_watch_renew_at_ms(not_after, issued, 0.5, 0.0), issued * 1000);
}

static void test_evict_at_and_backoff(void **state)
{
	(void)state;
	assert_int_equal(csi_watch_evict_at_ms(1700086400, 6 * 3600),
	                 (1700086400LL - 21600) * 1000);
	assert_int_equal(csi_watch_backoff_ms(1, 2000, 300000), 2000);
	assert_int_equal(csi_watch_backoff_ms(2, 2000, 300000), 4000);
	assert_int_equal(csi_watch_backoff_ms(5, 2000, 300000), 32000);
	assert_int_equal(csi_watch_backoff_ms(9, 2000, 300000), 300000);
	assert_int_equal(csi_watch_backoff_ms(1000, 2000, 300000), 300000);
	assert_int_equal(csi_watch_backoff_ms(0, 2000, 300000), 2000);
}

static void test_bucket(void **state)
{
	(void)state;
	csi_watch_bucket b;
	int64_t now = 1000000;

	/* 10 per minute, burst 1: one now, the next after 6 s. */
	csi_watch_bucket_init(&b, 10.0 / 60.0, 1.0, now);
	assert_int_equal(csi_watch_bucket_take(&b, now), 0);
	int64_t wait = csi_watch_bucket_take(&b, now);
	assert_true(wait >= 5999 && wait <= 6001);
	assert_true(csi_watch_bucket_take(&b, now + 3000) > 0);
	assert_int_equal(csi_watch_bucket_take(&b, now + 6001), 0);
	/* 5 per second, burst 5: five at once, then one every 200 ms. */
	csi_watch_bucket_init(&b, 5.0, 5.0, now);
	for (int i = 0; i < 5; i++)
		assert_int_equal(csi_watch_bucket_take(&b, now), 0);
	wait = csi_watch_bucket_take(&b, now);
	assert_true(wait >= 199 && wait <= 201);
	/* A long idle time does not bank more than the burst. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(csi_watch_bucket_take(&b, now + 3600000), 0);
	assert_true(csi_watch_bucket_take(&b, now + 3600000) > 0);
	/* Time going backwards never creates tokens. */
	assert_true(csi_watch_bucket_take(&b, now) > 0);
}

/* ---- plans ----------------------------------------------------------------- */

typedef struct rec_builder {
	char *keys[16];
	char *vals[16];
	char *files[3];
	csi_volume_record r;
} rec_builder;

static void rb_init(rec_builder *b, const char *id, const char *target, int64_t published,
                    int64_t not_after)
{
	memset(b, 0, sizeof(*b));
	b->r.volume_id = (char *)id;
	b->r.target_path = (char *)target;
	b->r.fingerprint = "fp";
	b->r.attr_keys = b->keys;
	b->r.attr_values = b->vals;
	b->files[0] = "tls.crt";
	b->files[1] = "tls.key";
	b->files[2] = "ca.crt";
	b->r.files = b->files;
	b->r.n_files = 3;
	b->r.published_at = published;
	b->r.not_after = not_after;
}

static void rb_attr(rec_builder *b, const char *k, const char *v)
{
	b->keys[b->r.n_attrs] = (char *)k;
	b->vals[b->r.n_attrs] = (char *)v;
	b->r.n_attrs++;
}

static void rb_pod(rec_builder *b)
{
	rb_attr(b, "csi.storage.k8s.io/pod.name", "web-0");
	rb_attr(b, "csi.storage.k8s.io/pod.namespace", "default");
}

static void test_plan(void **state)
{
	(void)state;
	rec_builder b;
	csi_watch_plan p;
	sigil_err err = {0};
	const int64_t t0 = 1700000000;

	/* in-place: RENEW at 2/3 of the lifetime (u = 0: no jitter). */
	rb_init(&b, "v1", "/t/1", t0, t0 + 3600);
	rb_attr(&b, "secrets.sigil.dev/class", "tls");
	rb_attr(&b, "secrets.sigil.dev/renewal", "in-place");
	rb_pod(&b);
	assert_int_equal(csi_watch_plan_record(&b.r, true, 2.0 / 3.0, 0.0, &p, &err), 0);
	assert_int_equal(p.action, CSI_WATCH_RENEW);
	assert_int_equal(p.deadline_ms, (t0 + 2400) * 1000);
	assert_false(p.needs_annotation);
	/* ... measured from the last renewal, not the first publish. */
	b.r.renewed_at = t0 + 2400;
	b.r.not_after = t0 + 6000;
	assert_int_equal(csi_watch_plan_record(&b.r, true, 2.0 / 3.0, 0.0, &p, &err), 0);
	assert_int_equal(p.deadline_ms, (t0 + 2400 + 2400) * 1000);

	/* restart (the default) with an API: EVICT at notAfter - buffer,
	 * and the annotation is due until it matches. */
	rb_init(&b, "v2", "/t/2", t0, t0 + 86400);
	rb_attr(&b, "secrets.sigil.dev/class", "tls");
	rb_attr(&b, "secrets.sigil.dev/backend.autotls.cert.restart-buffer", "2h");
	rb_pod(&b);
	assert_int_equal(csi_watch_plan_record(&b.r, true, 2.0 / 3.0, 0.5, &p, &err), 0);
	assert_int_equal(p.action, CSI_WATCH_EVICT);
	assert_int_equal(p.deadline_ms, (t0 + 86400 - 7200) * 1000);
	assert_int_equal(p.expires_at, t0 + 86400 - 7200);
	assert_true(p.needs_annotation);
	b.r.annotated_expires_at = t0 + 86400 - 7200;
	assert_int_equal(csi_watch_plan_record(&b.r, true, 2.0 / 3.0, 0.5, &p, &err), 0);
	assert_false(p.needs_annotation);
	/* ... without an API: renewed in place at that same time. */
	assert_int_equal(csi_watch_plan_record(&b.r, false, 2.0 / 3.0, 0.5, &p, &err), 0);
	assert_int_equal(p.action, CSI_WATCH_RENEW);
	assert_int_equal(p.deadline_ms, (t0 + 86400 - 7200) * 1000);
	/* The default buffer (6h) shrinks to a quarter of a short lifetime. */
	rb_init(&b, "v3", "/t/3", t0, t0 + 60);
	rb_attr(&b, "secrets.sigil.dev/class", "tls");
	rb_attr(&b, "secrets.sigil.dev/backend.autotls.cert.lifetime", "1m");
	rb_pod(&b);
	assert_int_equal(csi_watch_plan_record(&b.r, true, 2.0 / 3.0, 0.5, &p, &err), 0);
	assert_int_equal(p.deadline_ms, (t0 + 45) * 1000);

	/* Pod IP pending: only for a pod scope with an API. */
	b.r.awaiting_pod_ip = true;
	assert_int_equal(csi_watch_plan_record(&b.r, true, 2.0 / 3.0, 0.5, &p, &err), 0);
	assert_false(p.awaiting_pod_ip);
	rb_attr(&b, "secrets.sigil.dev/scope", "pod,node");
	assert_int_equal(csi_watch_plan_record(&b.r, true, 2.0 / 3.0, 0.5, &p, &err), 0);
	assert_true(p.awaiting_pod_ip);
	assert_int_equal(csi_watch_plan_record(&b.r, false, 2.0 / 3.0, 0.5, &p, &err), 0);
	assert_false(p.awaiting_pod_ip);

	/* A keytab (nothing expires): nothing to schedule. */
	rb_init(&b, "v4", "/t/4", t0, 0);
	rb_attr(&b, "secrets.sigil.dev/class", "kerberos");
	rb_attr(&b, "secrets.sigil.dev/format", "kerberos");
	assert_int_equal(csi_watch_plan_record(&b.r, true, 2.0 / 3.0, 0.5, &p, &err), 0);
	assert_int_equal(p.action, CSI_WATCH_NONE);

	/* Garbage attributes in a record: refused, not guessed at. */
	rb_init(&b, "v5", "/t/5", t0, t0 + 60);
	rb_attr(&b, "secrets.sigil.dev/renewal", "sometimes");
	rb_attr(&b, "secrets.sigil.dev/class", "tls");
	assert_int_equal(csi_watch_plan_record(&b.r, true, 2.0 / 3.0, 0.5, &p, &err),
	                 SIGIL_E_INVALID);
	rb_init(&b, "v6", "/t/6", t0, t0 + 60);
	assert_int_equal(csi_watch_plan_record(&b.r, true, 2.0 / 3.0, 0.5, &p, &err),
	                 SIGIL_E_INVALID);
}

/* Records written before the watcher existed still load; the new fields
 * survive a round trip. */
static void test_record_fields(void **state)
{
	(void)state;
	static const char old[] =
	    "{\"version\":1,\"volumeId\":\"v\",\"targetPath\":\"/t\",\"notAfter\":5,"
	    "\"publishedAt\":1,\"renewedAt\":0,\"readonly\":false,"
	    "\"attributes\":{\"secrets.sigil.dev/class\":\"tls\"},\"files\":[\"tls.crt\"]}";
	csi_volume_record r, back;
	char *json = NULL;
	sigil_err err = {0};

	assert_int_equal(csi_record_from_json(old, strlen(old), &r, &err), 0);
	assert_false(r.has_fs_group);
	assert_int_equal(r.trust_version, 0);
	assert_false(r.awaiting_pod_ip);
	assert_int_equal(r.annotated_expires_at, 0);
	r.has_fs_group = true;
	r.fs_group = 2000;
	r.trust_version = 0xfedcba9876543210ull; /* above INT64_MAX */
	r.awaiting_pod_ip = true;
	r.annotated_expires_at = 1234;
	assert_int_equal(csi_record_to_json(&r, &json, &err), 0);
	assert_int_equal(csi_record_from_json(json, strlen(json), &back, &err), 0);
	assert_true(back.has_fs_group);
	assert_int_equal(back.fs_group, 2000);
	assert_true(back.trust_version == 0xfedcba9876543210ull);
	assert_true(back.awaiting_pod_ip);
	assert_int_equal(back.annotated_expires_at, 1234);
	csi_record_free(&back);
	sigil_secret_free(json);
	csi_record_free(&r);

	/* Out-of-range and mistyped new fields are refused. */
	static const char *bad[] = {
	    "{\"version\":1,\"volumeId\":\"v\",\"targetPath\":\"/t\",\"fsGroup\":-1,"
	    "\"attributes\":{},\"files\":[]}",
	    "{\"version\":1,\"volumeId\":\"v\",\"targetPath\":\"/t\",\"fsGroup\":99999999999,"
	    "\"attributes\":{},\"files\":[]}",
	    "{\"version\":1,\"volumeId\":\"v\",\"targetPath\":\"/t\",\"trustVersion\":\"7\","
	    "\"attributes\":{},\"files\":[]}",
	    "{\"version\":1,\"volumeId\":\"v\",\"targetPath\":\"/t\",\"annotatedExpiresAt\":1.5,"
	    "\"attributes\":{},\"files\":[]}",
	};
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(bad); i++)
		assert_int_equal(csi_record_from_json(bad[i], strlen(bad[i]), &r, &err),
		                 SIGIL_E_CORRUPT);
}

/* ---- heap, rebuild, track, forget -------------------------------------------- */

typedef struct env {
	csi_state *st;
	csi_issuer *is;
	csi_node *node;
} env;

static void env_open(env *e)
{
	sigil_err err = {0};

	memset(e, 0, sizeof(*e));
	assert_int_equal(csi_state_open(dir, &e->st, &err), 0);
	assert_int_equal(csi_issuer_local_new(dir, NULL, 0, NULL, &e->is, &err), 0);
	csi_node_config nc = {.node_id = "node-1", .issuer = e->is, .state = e->st};
	assert_int_equal(csi_node_new(&nc, &e->node, &err), 0);
}

static void env_close(env *e)
{
	csi_node_free(e->node);
	csi_issuer_free(e->is);
	csi_state_free(e->st);
}

#define N_HEAP 2000

static void test_heap_rebuild(void **state)
{
	(void)state;
	env e;
	csi_watcher *w = NULL;
	sigil_err err = {0};
	int64_t *expect = calloc(N_HEAP, sizeof(int64_t));
	const int64_t t0 = 1900000000;
	uint32_t seed = 12345;

	assert_non_null(expect);
	/* Records on disk first (as a crashed sigil-csi left them):
	 * renewal=restart without an API is due at notAfter - buffer exactly,
	 * which makes the expected order deterministic. */
	{
		csi_state *st = NULL;
		assert_int_equal(csi_state_open(dir, &st, &err), 0);
		for (int i = 0; i < N_HEAP; i++) {
			rec_builder b;
			char id[32], target[64];
			seed = seed * 1103515245u + 12345u;
			int64_t na = t0 + 3600 + (seed >> 8) % 100000;
			snprintf(id, sizeof(id), "vol-%d", i);
			snprintf(target, sizeof(target), "/pods/%d/v", i);
			rb_init(&b, id, target, t0, na);
			rb_attr(&b, "secrets.sigil.dev/class", "tls");
			rb_attr(&b, "secrets.sigil.dev/backend.autotls.cert.restart-buffer", "1h");
			assert_int_equal(csi_state_put(st, &b.r, &err), 0);
			expect[i] = (na - 3600) * 1000;
		}
		csi_state_free(st);
	}
	env_open(&e);
	csi_watcher_config wc = {
	    .node = e.node, .state = e.st, .issuer = e.is, .bundle_check_secs = -1};
	assert_int_equal(csi_watcher_new(&wc, &w, &err), 0);
	csi_watcher_stats stats;
	csi_watcher_get_stats(w, &stats);
	assert_int_equal(stats.tracked, N_HEAP);

	/* A new, earlier volume goes to the top; forgetting it restores the
	 * previous top. */
	char *id = NULL, *target = NULL;
	csi_watch_action act;
	int64_t d0, d;
	assert_int_equal(csi_watcher_peek(w, &id, &target, &act, &d0), 0);
	assert_int_equal(act, CSI_WATCH_RENEW);
	free(id);
	free(target);
	{
		rec_builder b;
		rb_init(&b, "early", "/pods/early", t0, t0 + 3600 + 1);
		rb_attr(&b, "secrets.sigil.dev/class", "tls");
		rb_attr(&b, "secrets.sigil.dev/backend.autotls.cert.restart-buffer", "1h");
		csi_watcher_track(w, &b.r);
		assert_int_equal(csi_watcher_peek(w, &id, &target, &act, &d), 0);
		assert_string_equal(id, "early");
		assert_int_equal(d, (t0 + 1) * 1000);
		free(id);
		free(target);
		/* Tracking it again with a later notAfter moves it down. */
		b.r.not_after = t0 + 3600 + 200000;
		csi_watcher_track(w, &b.r);
		assert_int_equal(csi_watcher_peek(w, &id, &target, &act, &d), 0);
		assert_string_not_equal(id, "early");
		assert_int_equal(d, d0);
		free(id);
		free(target);
		csi_watcher_forget(w, "early", "/pods/early");
		csi_watcher_forget(w, "early", "/pods/early"); /* twice is fine */
		csi_watcher_forget(w, "never", "/pods/never");
	}
	/* Drain: the deadlines come out in order and match the records. */
	int64_t last = INT64_MIN;
	size_t n = 0;
	int64_t sum_seen = 0, sum_expect = 0;
	for (int i = 0; i < N_HEAP; i++)
		sum_expect += expect[i] / 1000;
	while (csi_watcher_peek(w, &id, &target, &act, &d) == 0) {
		assert_true(d >= last);
		last = d;
		sum_seen += d / 1000;
		int64_t idx;
		assert_int_equal(sigil_parse_int64(id + 4, 0, N_HEAP - 1, &idx), 0);
		assert_int_equal(d, expect[idx]);
		csi_watcher_forget(w, id, target);
		free(id);
		free(target);
		n++;
	}
	assert_int_equal(n, N_HEAP);
	assert_int_equal(sum_seen, sum_expect);
	csi_watcher_get_stats(w, &stats);
	assert_int_equal(stats.tracked, 0);
	csi_watcher_free(w);
	env_close(&e);
	free(expect);
}

/* ---- the thread: a real renewal and a real trust refresh ---------------------- */

static size_t read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n;
}

static void count_notice(void *ctx, const csi_watch_notice *n)
{
	int *counts = ctx;
	counts[n->event]++;
}

static void test_thread_renew_and_refresh(void **state)
{
	(void)state;
	env e;
	csi_watcher *w = NULL;
	sigil_err err = {0};
	char target[128], path[192];
	static char crt0[8192], key0[8192], crt1[8192], key1[8192], ca0[16384], ca1[16384];
	int counts[CSI_WATCH_EV__COUNT] = {0};
	csi_volume_record rec0, rec1;

	snprintf(target, sizeof(target), "%s/pod-vol", dir);
	env_open(&e);
	/* 60 s (the shortest lifetime), renewed at 5% = 3 s; checks the
	 * bundle every second. */
	csi_watcher_config wc = {.node = e.node,
	                         .state = e.st,
	                         .issuer = e.is,
	                         .renew_fraction = 0.05,
	                         .bundle_check_secs = 1,
	                         .notify = count_notice,
	                         .notify_ctx = counts};
	assert_int_equal(csi_watcher_new(&wc, &w, &err), 0);
	csi_node_set_watcher(e.node, w);
	assert_int_equal(csi_watcher_start(w, &err), 0);
	csi_kv kv[] = {
	    {"secrets.sigil.dev/class", "tls"},
	    {"secrets.sigil.dev/scope", "node"},
	    {"secrets.sigil.dev/renewal", "in-place"},
	    {"secrets.sigil.dev/key-algorithm", "ecdsa-p256"},
	    {"secrets.sigil.dev/backend.autotls.cert.lifetime", "1m"},
	    {"secrets.sigil.dev/backend.autotls.cert.jitter-factor", "0"},
	};
	csi_publish_request req = {.volume_id = "vol-r",
	                           .target_path = target,
	                           .attrs = kv,
	                           .n_attrs = SIGIL_ARRAY_SIZE(kv)};
	csi_publish_result res;
	assert_int_equal(csi_node_publish(e.node, &req, &res, &err), 0);
	assert_int_equal(counts[CSI_WATCH_EV_TRACKED], 1);
	assert_int_equal(csi_state_get(e.st, "vol-r", target, &rec0), 0);
	snprintf(path, sizeof(path), "%s/tls.crt", target);
	assert_true(read_file(path, crt0, sizeof(crt0)) > 0);
	snprintf(path, sizeof(path), "%s/tls.key", target);
	assert_true(read_file(path, key0, sizeof(key0)) > 0);
	snprintf(path, sizeof(path), "%s/ca.crt", target);
	assert_true(read_file(path, ca0, sizeof(ca0)) > 0);

	/* Wait (generously) for the renewal. */
	for (int i = 0; i < 300 && counts[CSI_WATCH_EV_RENEWED] == 0; i++)
		usleep(50000);
	assert_true(counts[CSI_WATCH_EV_RENEWED] >= 1);
	assert_int_equal(csi_state_get(e.st, "vol-r", target, &rec1), 0);
	assert_true(rec1.not_after > rec0.not_after);
	assert_true(rec1.renewed_at >= rec0.published_at);
	snprintf(path, sizeof(path), "%s/tls.crt", target);
	assert_true(read_file(path, crt1, sizeof(crt1)) > 0);
	snprintf(path, sizeof(path), "%s/tls.key", target);
	assert_true(read_file(path, key1, sizeof(key1)) > 0);
	assert_string_not_equal(crt0, crt1);
	assert_string_not_equal(key0, key1); /* a new key, not a re-signed one */
	csi_record_free(&rec0);
	csi_record_free(&rec1);

	/* A rotation in the store (as `sigilctl ca rotate` does it) reaches
	 * the volume: ca.crt changes, tls.crt and tls.key stay byte-identical. */
	{
		_cleanup_free_ char *cadir = sigil_path_join(dir, "ca");
		ca_store *store = NULL;
		ca_set *set = NULL;
		ca_set_config cfg = {.class_name = "tls",
		                     .key_alg = SIGIL_KEY_ECDSA_P256,
		                     .ca_lifetime_secs = 365LL * 86400,
		                     .retirement_secs = 3600,
		                     .auto_generate = true};
		assert_int_equal(ca_store_dir_open(cadir, &store, &err), 0);
		assert_int_equal(ca_set_open(store, &cfg, &set, &err), 0);
		/* Renewals continue meanwhile: compare against what is there
		 * right before the rotation. */
		int refreshed = counts[CSI_WATCH_EV_TRUST_REFRESHED];
		snprintf(path, sizeof(path), "%s/tls.crt", target);
		assert_int_equal(ca_set_rotate_now(set, &err), 0);
		ca_set_free(set);
		ca_store_free(store);
		for (int i = 0; i < 300 && counts[CSI_WATCH_EV_TRUST_REFRESHED] == refreshed; i++)
			usleep(50000);
		assert_true(counts[CSI_WATCH_EV_TRUST_REFRESHED] > refreshed);
	}
	snprintf(path, sizeof(path), "%s/ca.crt", target);
	assert_true(read_file(path, ca1, sizeof(ca1)) > 0);
	assert_string_not_equal(ca0, ca1);
	/* The new bundle holds two CAs (old and new). */
	assert_true(strstr(strstr(ca1, "BEGIN CERTIFICATE") + 1, "BEGIN CERTIFICATE") != NULL);

	/* Unpublish: the watcher forgets it. */
	assert_int_equal(csi_node_unpublish(e.node, "vol-r", target, &err), 0);
	csi_watcher_stats stats;
	csi_watcher_get_stats(w, &stats);
	assert_int_equal(stats.tracked, 0);
	assert_int_equal(counts[CSI_WATCH_EV_UNTRACKED], 1);
	assert_int_equal(counts[CSI_WATCH_EV_RENEW_FAILED], 0);
	csi_node_set_watcher(e.node, NULL);
	csi_watcher_free(w);
	env_close(&e);
}

/* An issuer that wraps the embedded CA and fails issues on demand. */
typedef struct flaky_issuer {
	csi_issuer base;
	csi_issuer *real;
	volatile int fail;
} flaky_issuer;

static int flaky_issue(csi_issuer *is, const ca_issue_request *req, ca_issue_result *ret,
                       sigil_err *err)
{
	flaky_issuer *f = (flaky_issuer *)is;
	if (f->fail)
		return sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA is down (test)");
	return csi_issuer_issue(f->real, req, ret, err);
}
static int flaky_bundle(csi_issuer *is, const char *c, STACK_OF(X509) * *ret, uint64_t *v,
                        sigil_err *err)
{
	return csi_issuer_trust_bundle(((flaky_issuer *)is)->real, c, ret, v, err);
}
static int flaky_class(csi_issuer *is, const char *c, ca_class_config *ret, sigil_err *err)
{
	return csi_issuer_class(((flaky_issuer *)is)->real, c, ret, err);
}
static bool flaky_ready(csi_issuer *is)
{
	return csi_issuer_ready(((flaky_issuer *)is)->real);
}
static void flaky_free(csi_issuer *is)
{
	(void)is;
}
static const csi_issuer_ops flaky_ops = {
    .issue = flaky_issue,
    .trust_bundle = flaky_bundle,
    .class_info = flaky_class,
    .ready = flaky_ready,
    .free = flaky_free,
};

/* A failed renewal keeps the old files and record, is reported, and is
 * retried with backoff until it works. */
static void test_thread_renew_failure(void **state)
{
	(void)state;
	csi_state *st = NULL;
	flaky_issuer fi = {.base = {.ops = &flaky_ops}};
	csi_node *node = NULL;
	csi_watcher *w = NULL;
	sigil_err err = {0};
	char target[128], path[192];
	static char crt0[8192], crt1[8192];
	int counts[CSI_WATCH_EV__COUNT] = {0};
	csi_volume_record rec0, rec1;

	snprintf(target, sizeof(target), "%s/flaky-vol", dir);
	assert_int_equal(csi_state_open(dir, &st, &err), 0);
	assert_int_equal(csi_issuer_local_new(dir, NULL, 0, NULL, &fi.real, &err), 0);
	csi_node_config nc = {.node_id = "node-1", .issuer = &fi.base, .state = st};
	assert_int_equal(csi_node_new(&nc, &node, &err), 0);
	csi_watcher_config wc = {.node = node,
	                         .state = st,
	                         .issuer = &fi.base,
	                         .renew_fraction = 0.05,
	                         .bundle_check_secs = -1,
	                         .notify = count_notice,
	                         .notify_ctx = counts};
	assert_int_equal(csi_watcher_new(&wc, &w, &err), 0);
	csi_node_set_watcher(node, w);
	csi_kv kv[] = {
	    {"secrets.sigil.dev/class", "tls"},
	    {"secrets.sigil.dev/scope", "node"},
	    {"secrets.sigil.dev/renewal", "in-place"},
	    {"secrets.sigil.dev/key-algorithm", "ecdsa-p256"},
	    {"secrets.sigil.dev/backend.autotls.cert.lifetime", "1m"},
	    {"secrets.sigil.dev/backend.autotls.cert.jitter-factor", "0"},
	};
	csi_publish_request req = {.volume_id = "vol-f",
	                           .target_path = target,
	                           .attrs = kv,
	                           .n_attrs = SIGIL_ARRAY_SIZE(kv)};
	assert_int_equal(csi_node_publish(node, &req, NULL, &err), 0);
	assert_int_equal(csi_state_get(st, "vol-f", target, &rec0), 0);
	snprintf(path, sizeof(path), "%s/tls.crt", target);
	assert_true(read_file(path, crt0, sizeof(crt0)) > 0);
	fi.fail = 1;
	assert_int_equal(csi_watcher_start(w, &err), 0);
	/* Due after ~3 s; wait (generously) for two failures (2 s backoff). */
	for (int i = 0; i < 400 && counts[CSI_WATCH_EV_RENEW_FAILED] < 2; i++)
		usleep(50000);
	assert_true(counts[CSI_WATCH_EV_RENEW_FAILED] >= 2);
	assert_int_equal(counts[CSI_WATCH_EV_RENEWED], 0);
	assert_true(read_file(path, crt1, sizeof(crt1)) > 0);
	assert_string_equal(crt0, crt1); /* the old files stay */
	assert_int_equal(csi_state_get(st, "vol-f", target, &rec1), 0);
	assert_int_equal(rec1.not_after, rec0.not_after);
	assert_int_equal(rec1.renewed_at, 0);
	csi_record_free(&rec1);
	/* The CA is back: the next retry renews. */
	fi.fail = 0;
	for (int i = 0; i < 400 && counts[CSI_WATCH_EV_RENEWED] == 0; i++)
		usleep(50000);
	assert_true(counts[CSI_WATCH_EV_RENEWED] >= 1);
	assert_true(read_file(path, crt1, sizeof(crt1)) > 0);
	assert_string_not_equal(crt0, crt1);
	assert_int_equal(csi_state_get(st, "vol-f", target, &rec1), 0);
	assert_true(rec1.not_after > rec0.not_after);
	csi_record_free(&rec0);
	csi_record_free(&rec1);
	csi_node_set_watcher(node, NULL);
	csi_watcher_free(w);
	csi_node_free(node);
	csi_issuer_free(fi.real);
	csi_state_free(st);
}

static void test_config_refused(void **state)
{
	(void)state;
	env e;
	csi_watcher *w = NULL;
	sigil_err err = {0};

	env_open(&e);
	csi_watcher_config wc = {
	    .node = e.node, .state = e.st, .issuer = e.is, .renew_fraction = 1.5};
	assert_int_equal(csi_watcher_new(&wc, &w, &err), SIGIL_E_INVALID);
	wc.renew_fraction = 0;
	wc.renewals_per_sec = -1;
	assert_int_equal(csi_watcher_new(&wc, &w, &err), SIGIL_E_INVALID);
	wc.renewals_per_sec = 0;
	wc.bundle_check_secs = 1000000;
	assert_int_equal(csi_watcher_new(&wc, &w, &err), SIGIL_E_INVALID);
	wc.node = NULL;
	wc.bundle_check_secs = 0;
	assert_int_equal(csi_watcher_new(&wc, &w, &err), SIGIL_E_INVALID);
	assert_null(w);
	csi_watcher_free(NULL);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_renew_at),
	    cmocka_unit_test(test_evict_at_and_backoff),
	    cmocka_unit_test(test_bucket),
	    cmocka_unit_test(test_plan),
	    cmocka_unit_test(test_record_fields),
	    cmocka_unit_test_setup_teardown(test_heap_rebuild, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_thread_renew_and_refresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_thread_renew_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
