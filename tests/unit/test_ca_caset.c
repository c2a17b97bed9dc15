/* CA sets over simulated time: first CA, the rotation schedule, signer
 * choice, trust bundle contents, pruning, rotate-now, refresh across two
 * sets on one store, the version counter and autoGenerate off.
 *
 * Lifetimes are shortened (CA 100 days, retirement 1 day, leaves 10 days)
 * and a fake clock moves through years in a loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/caset.h"
#include "ca/store.h"
#include "util/fs.h"
#include "util/mem.h"

#define DAY 86400LL
#define CA_LIFE (100 * DAY)
#define RETIRE (1 * DAY)
#define LEAF_LIFE (10 * DAY)
#define T0 ((time_t)1700000000) /* 2023-11-14 */
#define CLASS "tls"

typedef struct fake_clock {
	time_t t;
} fake_clock;

static time_t fake_now(void *ctx)
{
	return ((fake_clock *)ctx)->t;
}

typedef struct fixture {
	char root[64];
	char dir[128];
	fake_clock fc;
	sigil_clock clock;
	ca_store *store;
} fixture;

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));
	sigil_err err = {0};

	if (!fx)
		return -1;
	snprintf(fx->root, sizeof(fx->root), "/tmp/sigil-test-caset-XXXXXX");
	if (!mkdtemp(fx->root))
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "%s/ca", fx->root);
	fx->fc.t = T0;
	fx->clock.now = fake_now;
	fx->clock.ctx = &fx->fc;
	if (ca_store_dir_open(fx->dir, &fx->store, &err) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	sigil_err err = {0};

	ca_store_free(fx->store);
	(void)sigil_fs_remove_tree(fx->root, &err);
	free(fx);
	return 0;
}

static ca_set_config make_cfg(fixture *fx)
{
	ca_set_config c = {
		.class_name = CLASS,
		.key_alg = SIGIL_KEY_ECDSA_P256,
		.ca_lifetime_secs = CA_LIFE,
		.retirement_secs = RETIRE,
		.auto_generate = true,
		.clock = &fx->clock,
	};
	return c;
}

static ca_set *open_set(fixture *fx)
{
	ca_set_config c = make_cfg(fx);
	ca_set *set = NULL;
	sigil_err err = {0};
	int r = ca_set_open(fx->store, &c, &set, &err);

	if (r != 0)
		fail_msg("ca_set_open: %d %s", r, err.msg);
	return set;
}

static void refresh(ca_set *set, bool *changed)
{
	sigil_err err = {0};
	int r = ca_set_refresh(set, changed, &err);

	if (r != 0)
		fail_msg("ca_set_refresh: %d %s", r, err.msg);
}

/* Creation time of a generation we made (notBefore is backdated). */
static time_t created(const ca_authority *ca)
{
	return ca_authority_not_before(ca) + CA_BACKDATE_SECS;
}

static time_t rotation_due(const ca_authority *ca)
{
	time_t c = created(ca);

	return c + (ca_authority_not_after(ca) - c - RETIRE) / 2;
}

static bool gen_file_exists(fixture *fx, uint64_t gen)
{
	char p[256];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s/gen-%016llx.pem", fx->dir, CLASS, (unsigned long long)gen);
	return stat(p, &st) == 0;
}

static size_t gen_files(fixture *fx)
{
	ca_store_record *recs = NULL;
	size_t n = 0;
	sigil_err err = {0};

	assert_int_equal(ca_store_load(fx->store, CLASS, &recs, &n, &err), 0);
	ca_store_records_free(recs, n);
	return n;
}

static bool bundle_has(STACK_OF(X509) *b, X509 *x)
{
	for (int i = 0; i < sk_X509_num(b); i++)
		if (X509_cmp(sk_X509_value(b, i), x) == 0)
			return true;
	return false;
}

static STACK_OF(X509) *bundle(ca_set *set)
{
	STACK_OF(X509) *b = NULL;
	sigil_err err = {0};
	int r = ca_set_trust_bundle(set, &b, &err);

	if (r != 0)
		fail_msg("ca_set_trust_bundle: %d %s", r, err.msg);
	return b;
}

static void bundle_free(STACK_OF(X509) *b)
{
	sk_X509_pop_free(b, X509_free);
}

/* ---- first CA ------------------------------------------------------------- */

static void test_first_ca(void **state)
{
	fixture *fx = *state;
	ca_set *set = open_set(fx), *again;
	const ca_authority *ca;
	char cn[128];

	assert_int_equal(set->n, 1);
	assert_int_equal(set->generations[0], 1);
	ca = set->cas[0];
	assert_int_equal(ca_authority_not_before(ca), T0 - CA_BACKDATE_SECS);
	assert_int_equal(ca_authority_not_after(ca), T0 + CA_LIFE);
	assert_true(X509_check_ca(ca->cert) > 0);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(ca->cert), NID_commonName, cn,
					      sizeof(cn)) > 0);
	assert_string_equal(cn, "sigil CA tls #1");
	assert_true(gen_file_exists(fx, 1));
	assert_int_equal(gen_files(fx), 1);
	assert_true(set->version != 0);

	/* Re-opening loads the same CA (no second generation). */
	fx->fc.t += 3600;
	again = open_set(fx);
	assert_int_equal(again->n, 1);
	assert_int_equal(X509_cmp(again->cas[0]->cert, ca->cert), 0);
	assert_int_equal(EVP_PKEY_eq(again->cas[0]->key, ca->key), 1);
	assert_true(again->version == set->version);
	assert_int_equal(gen_files(fx), 1);
	ca_set_free(again);
	ca_set_free(set);
	ca_set_free(NULL);
}

static void test_common_name_and_algorithms(void **state)
{
	fixture *fx = *state;
	ca_set_config c = make_cfg(fx);
	ca_set *set = NULL;
	sigil_err err = {0};
	char cn[128];
	/* 63 x 'n': the generation suffix must still fit in 64 bytes. */
	char long_cn[64];

	memset(long_cn, 'n', sizeof(long_cn) - 1);
	long_cn[sizeof(long_cn) - 1] = '\0';
	c.class_name = "ed";
	c.key_alg = SIGIL_KEY_ED25519;
	c.common_name = long_cn;
	assert_int_equal(ca_set_open(fx->store, &c, &set, &err), 0);
	assert_int_equal(EVP_PKEY_get_id(set->cas[0]->key), EVP_PKEY_ED25519);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(set->cas[0]->cert),
					      NID_commonName, cn, sizeof(cn)) > 0);
	assert_int_equal(strlen(cn), 64);
	assert_non_null(strstr(cn, " #1"));
	ca_set_free(set);

	/* The common name given is copied: the caller's buffer may go. */
	{
		char *tmp = strdup("ACME internal CA");
		c.class_name = "acme";
		c.key_alg = SIGIL_KEY_ECDSA_P384;
		c.common_name = tmp;
		assert_int_equal(ca_set_open(fx->store, &c, &set, &err), 0);
		memset(tmp, 'x', strlen(tmp));
		free(tmp);
		assert_int_equal(ca_set_rotate_now(set, &err), 0);
		assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(set->cas[1]->cert),
						      NID_commonName, cn, sizeof(cn)) > 0);
		assert_string_equal(cn, "ACME internal CA #2");
		ca_set_free(set);
	}
}

static void test_config_validation(void **state)
{
	fixture *fx = *state;
	ca_set_config c;
	ca_set *set = NULL;
	sigil_err err = {0};

	c = make_cfg(fx);
	c.retirement_secs = CA_LIFE;
	assert_int_equal(ca_set_open(fx->store, &c, &set, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "Retirement"));
	c = make_cfg(fx);
	c.retirement_secs = -1;
	assert_int_equal(ca_set_open(fx->store, &c, &set, &err), SIGIL_E_INVALID);
	c = make_cfg(fx);
	c.class_name = "../etc";
	assert_int_equal(ca_set_open(fx->store, &c, &set, &err), SIGIL_E_INVALID);
	c = make_cfg(fx);
	c.class_name = NULL;
	assert_int_equal(ca_set_open(fx->store, &c, &set, &err), SIGIL_E_INVALID);
	c = make_cfg(fx);
	c.key_alg = SIGIL_KEY__COUNT;
	assert_int_equal(ca_set_open(fx->store, &c, &set, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_set_open(NULL, &c, &set, &err), SIGIL_E_INVALID);
	assert_null(set);
	assert_int_equal(gen_files(fx), 0);

	/* Zero means the documented defaults (365 days, 1 hour). */
	c = make_cfg(fx);
	c.ca_lifetime_secs = 0;
	c.retirement_secs = 0;
	assert_int_equal(ca_set_open(fx->store, &c, &set, &err), 0);
	assert_int_equal(set->cfg.retirement_secs, 3600);
	assert_int_equal(ca_authority_not_after(set->cas[0]), T0 + CA_DEFAULT_LIFETIME_SECS);
	ca_set_free(set);
}

/* ---- auto_generate off ----------------------------------------------------- */

static void test_auto_generate_off(void **state)
{
	fixture *fx = *state;
	ca_set_config c = make_cfg(fx);
	ca_set *set = NULL, *first;
	sigil_err err = {0};
	char cdir[256];
	struct stat st;

	c.auto_generate = false;
	assert_int_equal(ca_set_open(fx->store, &c, &set, &err), SIGIL_E_PRECOND);
	assert_null(set);
	assert_non_null(strstr(err.msg, "class tls has no CA and autoGenerate is off"));
	assert_int_equal(gen_files(fx), 0);
	snprintf(cdir, sizeof(cdir), "%s/%s", fx->dir, CLASS);
	/* Only the lock file may exist: no generation was written. */
	if (stat(cdir, &st) == 0) {
		char gen1[300];
		snprintf(gen1, sizeof(gen1), "%s/gen-0000000000000001.pem", cdir);
		assert_int_not_equal(stat(gen1, &st), 0);
	}

	/* Once a CA exists, autoGenerate off opens it. */
	first = open_set(fx);
	assert_int_equal(ca_set_open(fx->store, &c, &set, &err), 0);
	assert_int_equal(set->n, 1);
	assert_int_equal(X509_cmp(set->cas[0]->cert, first->cas[0]->cert), 0);
	ca_set_free(set);
	ca_set_free(first);
}

/* ---- rotation schedule --------------------------------------------------- */

static void test_rotation_schedule(void **state)
{
	fixture *fx = *state;
	ca_set *set = open_set(fx);
	time_t due = rotation_due(set->cas[0]);
	uint64_t v1 = set->version;
	bool changed = true;

	/* Half of the active life: (100d - 1d) / 2 after creation. */
	assert_int_equal(due, T0 + (CA_LIFE - RETIRE) / 2);
	fx->fc.t = due - 1;
	refresh(set, &changed);
	assert_false(changed);
	assert_int_equal(set->n, 1);
	assert_true(set->version == v1);
	assert_int_equal(gen_files(fx), 1);

	fx->fc.t = due;
	refresh(set, &changed);
	assert_true(changed);
	assert_int_equal(set->n, 2);
	assert_int_equal(set->generations[1], 2);
	assert_true(set->version != v1);
	assert_int_equal(created(set->cas[1]), due);
	assert_true(gen_file_exists(fx, 2));

	/* Refreshing again at the same time or a little later does nothing:
	 * the newest (gen 2) is not due. */
	refresh(set, &changed);
	assert_false(changed);
	fx->fc.t = rotation_due(set->cas[1]) - 1;
	refresh(set, &changed);
	assert_false(changed);
	assert_int_equal(set->n, 2);
	/* Opening at a due time rotates too (open = refresh). */
	fx->fc.t = rotation_due(set->cas[1]);
	{
		ca_set *other = open_set(fx);
		assert_int_equal(other->n, 3);
		assert_int_equal(other->generations[2], 3);
		ca_set_free(other);
	}
	refresh(set, &changed);
	assert_true(changed);
	assert_int_equal(set->n, 3);
	ca_set_free(set);
}

/* ---- signer, bundle, pruning through one CA's life ------------------------ */

static void test_lifecycle(void **state)
{
	fixture *fx = *state;
	ca_set *set = open_set(fx);
	const ca_authority *g1 = NULL, *g2;
	STACK_OF(X509) *b;
	X509 *g1_cert;
	time_t usable1, t2;
	bool changed;
	uint64_t v;

	/* Before any rotation the only CA signs, even a leaf it cannot cover
	 * (the caller caps such a leaf). */
	assert_ptr_equal(ca_set_signer(set, T0 + LEAF_LIFE), set->cas[0]);
	assert_ptr_equal(ca_set_signer(set, T0 + 10 * CA_LIFE), set->cas[0]);

	t2 = rotation_due(set->cas[0]);
	fx->fc.t = t2;
	refresh(set, &changed);
	assert_int_equal(set->n, 2);
	g1 = set->cas[0];
	g2 = set->cas[1];
	g1_cert = g1->cert;
	X509_up_ref(g1_cert);
	usable1 = ca_authority_not_after(g1) - RETIRE; /* T0 + 99d */
	assert_int_equal(usable1, T0 + 99 * DAY);

	/* Signer: the OLD CA while it outlives the leaf by the retirement. */
	assert_ptr_equal(ca_set_signer(set, t2 + LEAF_LIFE), g1);
	assert_ptr_equal(ca_set_signer(set, usable1), g1);
	assert_ptr_equal(ca_set_signer(set, usable1 + 1), g2);
	/* Nothing covers a leaf beyond the newest: the newest signs. */
	assert_ptr_equal(ca_set_signer(set, ca_authority_not_after(g2)), g2);

	/* Bundle: both while the old one is not retired... */
	b = bundle(set);
	assert_int_equal(sk_X509_num(b), 2);
	assert_true(bundle_has(b, g1->cert));
	assert_true(bundle_has(b, g2->cert));
	bundle_free(b);
	fx->fc.t = usable1 - 1;
	b = bundle(set);
	assert_int_equal(sk_X509_num(b), 2);
	bundle_free(b);
	/* ...and the old one leaves once retired (now >= notAfter - R), with
	 * no refresh needed: the bundle follows the clock. */
	v = set->version;
	fx->fc.t = usable1;
	b = bundle(set);
	assert_int_equal(sk_X509_num(b), 1);
	assert_false(bundle_has(b, g1->cert));
	assert_true(bundle_has(b, g2->cert));
	bundle_free(b);
	/* At that moment a 10-day leaf is signed by gen 2. */
	assert_ptr_equal(ca_set_signer(set, usable1 + LEAF_LIFE), g2);

	/* Pruning: the retired gen 1 stays in the store until it expires. */
	fx->fc.t = ca_authority_not_after(g1) - 1;
	refresh(set, &changed);
	assert_true(gen_file_exists(fx, 1));
	assert_true(set->generations[0] == 1);
	/* (gen 2 reached half-life at T0 + 99d: gen 3 was made meanwhile) */
	assert_int_equal(set->n, 3);
	assert_true(set->version != v);
	v = set->version;
	fx->fc.t = T0 + CA_LIFE; /* gen 1 notAfter */
	refresh(set, &changed);
	assert_true(changed);
	assert_true(set->version != v);
	assert_int_equal(set->n, 2);
	assert_true(set->generations[0] == 2);
	assert_true(set->generations[1] == 3);
	assert_false(gen_file_exists(fx, 1));
	assert_true(gen_file_exists(fx, 2));
	assert_int_equal(gen_files(fx), 2);
	for (size_t i = 0; i < set->n; i++)
		assert_int_not_equal(X509_cmp(set->cas[i]->cert, g1_cert), 0);
	X509_free(g1_cert);
	ca_set_free(set);
}

/* The newest generation is never pruned, even when expired: a class must
 * not silently lose its last CA.  Rotation then replaces it. */
static void test_expired_store(void **state)
{
	fixture *fx = *state;
	ca_set *set = open_set(fx), *later;
	ca_set_config c = make_cfg(fx);
	sigil_err err = {0};

	ca_set_free(set);
	fx->fc.t = T0 + 3 * CA_LIFE; /* long after gen 1 expired */
	/* The expired CA still loads (it is not refused as invalid), rotation
	 * replaces it, then it is pruned.  autoGenerate only concerns an
	 * empty class. */
	c.auto_generate = false;
	assert_int_equal(ca_set_open(fx->store, &c, &later, &err), 0);
	assert_int_equal(later->n, 1);
	assert_true(later->generations[0] == 2);
	assert_false(gen_file_exists(fx, 1));
	assert_int_equal(created(later->cas[0]), fx->fc.t);
	ca_set_free(later);
}

/* ---- rotate_now, refresh by another set, version ---------------------------- */

static void test_rotate_now_and_refresh(void **state)
{
	fixture *fx = *state;
	ca_set *a = open_set(fx), *b = open_set(fx);
	sigil_err err = {0};
	bool changed = true;
	uint64_t va = a->version;

	assert_true(a->version == b->version);
	fx->fc.t = T0 + DAY; /* far from half-life */
	assert_int_equal(ca_set_rotate_now(a, &err), 0);
	assert_int_equal(a->n, 2);
	assert_true(a->generations[1] == 2);
	assert_true(a->version != va);
	assert_true(gen_file_exists(fx, 2));
	/* The old CA still covers a 10-day leaf, so it keeps signing. */
	assert_ptr_equal(ca_set_signer(a, fx->fc.t + LEAF_LIFE), a->cas[0]);

	/* b has not seen it yet; refresh picks it up without rotating again. */
	assert_int_equal(b->n, 1);
	refresh(b, &changed);
	assert_true(changed);
	assert_int_equal(b->n, 2);
	assert_true(b->version == a->version);
	assert_int_equal(X509_cmp(b->cas[1]->cert, a->cas[1]->cert), 0);
	refresh(b, &changed);
	assert_false(changed);
	assert_int_equal(gen_files(fx), 2);

	/* b rotates twice; a catches up with both. */
	assert_int_equal(ca_set_rotate_now(b, &err), 0);
	assert_int_equal(ca_set_rotate_now(b, &err), 0);
	assert_true(b->generations[3] == 4);
	refresh(a, &changed);
	assert_true(changed);
	assert_int_equal(a->n, 4);
	assert_true(a->version == b->version);

	/* Generation numbers only grow: even if the newest file vanished
	 * from the store, a does not hand out number 4 again. */
	assert_int_equal(ca_store_remove(fx->store, CLASS, 4, &err), 0);
	assert_int_equal(ca_set_rotate_now(a, &err), 0);
	assert_int_equal(a->n, 4);
	assert_true(a->generations[2] == 3);
	assert_true(a->generations[3] == 5);
	ca_set_free(a);
	ca_set_free(b);
}

/* A store shared by replicas whose lock lapsed: when this set goes to
 * write generation N, another replica has just written its own N.  The
 * other replica's CA must be kept and adopted, never overwritten. */
typedef struct racing_store {
	ca_store base;
	ca_store *inner;
	const ca_store_record *theirs; /* written just before our put, once */
	int raced;
} racing_store;

static int rs_lock(ca_store *s, const char *c, sigil_err *e)
{
	return ca_store_lock(((racing_store *)s)->inner, c, e);
}
static void rs_unlock(ca_store *s, const char *c)
{
	ca_store_unlock(((racing_store *)s)->inner, c);
}
static int rs_load(ca_store *s, const char *c, ca_store_record **r, size_t *n, sigil_err *e)
{
	return ca_store_load(((racing_store *)s)->inner, c, r, n, e);
}
static int rs_put(ca_store *s, const char *c, const ca_store_record *rec, sigil_err *e)
{
	racing_store *rs = (racing_store *)s;

	if (rs->theirs && !rs->raced && rs->theirs->generation == rec->generation) {
		rs->raced++;
		assert_int_equal(ca_store_put(rs->inner, c, rs->theirs, e), 0);
	}
	return ca_store_put(rs->inner, c, rec, e);
}
static int rs_remove(ca_store *s, const char *c, uint64_t g, sigil_err *e)
{
	return ca_store_remove(((racing_store *)s)->inner, c, g, e);
}
static void rs_free(ca_store *s)
{
	(void)s;
}
static const ca_store_ops racing_ops = {rs_lock, rs_unlock, rs_load, rs_put, rs_remove, rs_free};

static void test_lost_race_adopts_theirs(void **state)
{
	fixture *fx = *state;
	char dir2[160];
	ca_store *other = NULL;
	ca_store_record *recs = NULL;
	size_t n = 0;
	sigil_err err = {0};
	ca_set *mine, *theirs_set;
	ca_set_config c = make_cfg(fx);

	/* "Their" generation 2, made by an unrelated set in another store. */
	snprintf(dir2, sizeof(dir2), "%s/other", fx->root);
	assert_int_equal(ca_store_dir_open(dir2, &other, &err), 0);
	assert_int_equal(ca_set_open(other, &c, &theirs_set, &err), 0);
	assert_int_equal(ca_set_rotate_now(theirs_set, &err), 0);
	assert_int_equal(ca_store_load(other, CLASS, &recs, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_true(recs[1].generation == 2);

	racing_store rs = {.base = {.ops = &racing_ops}, .inner = fx->store};
	assert_int_equal(ca_set_open(&rs.base, &c, &mine, &err), 0);
	assert_int_equal(mine->n, 1);
	rs.theirs = &recs[1];
	/* Our rotation loses the race for generation 2: success, and the set
	 * now holds their CA as generation 2. */
	assert_int_equal(ca_set_rotate_now(mine, &err), 0);
	assert_int_equal(rs.raced, 1);
	assert_int_equal(mine->n, 2);
	assert_true(mine->generations[1] == 2);
	assert_int_equal(X509_cmp(mine->cas[1]->cert, theirs_set->cas[1]->cert), 0);
	/* And the store kept theirs. */
	ca_store_record *now = NULL;
	size_t nn = 0;
	assert_int_equal(ca_store_load(fx->store, CLASS, &now, &nn, &err), 0);
	assert_int_equal(nn, 2);
	assert_string_equal(now[1].cert_pem, recs[1].cert_pem);
	ca_store_records_free(now, nn);
	ca_store_records_free(recs, n);
	ca_set_free(mine);
	ca_set_free(theirs_set);
	ca_store_free(other);
}

static X509 *make_root(const char *cn)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_get_subject_name(x);

	assert_non_null(k);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	EVP_PKEY_free(k);
	return x;
}

static void test_version_and_trust_roots(void **state)
{
	fixture *fx = *state;
	ca_set *set = open_set(fx), *other;
	STACK_OF(X509) *roots = sk_X509_new_null(), *b;
	X509 *r1 = make_root("extra one"), *r2 = make_root("extra two");
	sigil_err err = {0};
	uint64_t v0 = set->version, v1, v2;
	bool changed;

	/* No membership change, no version change. */
	fx->fc.t += DAY;
	refresh(set, &changed);
	assert_false(changed);
	assert_true(set->version == v0);

	sk_X509_push(roots, r1);
	assert_int_equal(ca_set_add_trust_roots(set, roots, &err), 0);
	v1 = set->version;
	assert_true(v1 != v0);
	/* The same root again: no change. */
	assert_int_equal(ca_set_add_trust_roots(set, roots, &err), 0);
	assert_true(set->version == v1);
	assert_int_equal(ca_set_add_trust_roots(set, NULL, &err), 0);
	assert_true(set->version == v1);
	sk_X509_push(roots, r2);
	assert_int_equal(ca_set_add_trust_roots(set, roots, &err), 0);
	v2 = set->version;
	assert_true(v2 != v1 && v2 != v0);
	assert_int_equal(sk_X509_num(set->extra_trust), 2);
	/* The set holds its own references. */
	sk_X509_pop_free(roots, X509_free);

	b = bundle(set);
	assert_int_equal(sk_X509_num(b), 3);
	assert_int_equal(X509_cmp(sk_X509_value(b, 0), set->cas[0]->cert), 0);
	bundle_free(b);

	/* A refresh keeps the extra roots and, without rotation, the version. */
	refresh(set, &changed);
	assert_false(changed);
	assert_true(set->version == v2);

	/* Same membership in another set gives the same version, whatever
	 * the order the roots were added in. */
	other = open_set(fx);
	roots = sk_X509_new_null();
	X509_up_ref(r2);
	X509_up_ref(r1);
	sk_X509_push(roots, r2);
	sk_X509_push(roots, r1);
	assert_int_equal(ca_set_add_trust_roots(other, roots, &err), 0);
	assert_true(other->version == v2);
	sk_X509_pop_free(roots, X509_free);

	/* Rotation changes it. */
	assert_int_equal(ca_set_rotate_now(set, &err), 0);
	assert_true(set->version != v2);
	refresh(other, &changed);
	assert_true(changed);
	assert_true(other->version == set->version);

	/* Retirement alone does not change membership (bundle shrinks,
	 * version stays); pruning does. */
	{
		uint64_t v;
		ca_set_free(other);
		ca_set_free(set);
		fx->fc.t = T0 + 10 * DAY;
		set = open_set(fx);
		v = set->version;
		/* gen 1 and 2 both made around T0: gen 1 retires at T0+99d. */
		fx->fc.t = T0 + 99 * DAY;
		b = bundle(set);
		bundle_free(b);
		assert_true(set->version == v);
	}

	/* The limit on additional roots. */
	roots = sk_X509_new_null();
	for (int i = 0; i < CA_SET_MAX_TRUST_ROOTS + 1; i++) {
		char cn[32];
		snprintf(cn, sizeof(cn), "root %d", i);
		sk_X509_push(roots, make_root(cn));
	}
	{
		uint64_t v = set->version;
		assert_int_equal(ca_set_add_trust_roots(set, roots, &err), SIGIL_E_LIMIT);
		assert_true(set->version == v);
		assert_int_equal(sk_X509_num(set->extra_trust), 0);
	}
	sk_X509_pop_free(roots, X509_free);
	ca_set_free(set);
}

/* ---- broken stores ---------------------------------------------------------- */

static void test_corrupt_generation(void **state)
{
	fixture *fx = *state;
	ca_set *set = open_set(fx), *again = NULL;
	sigil_err err = {0};
	char p[256];
	FILE *f;

	ca_set_free(set);
	snprintf(p, sizeof(p), "%s/%s/gen-0000000000000002.pem", fx->dir, CLASS);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("-----BEGIN CERTIFICATE-----\nMIIB\n", f);
	fclose(f);
	/* Neither open nor a due rotation writes anything: the class is refused. */
	fx->fc.t = T0 + 60 * DAY;
	{
		ca_set_config c = make_cfg(fx);
		assert_int_equal(ca_set_open(fx->store, &c, &again, &err), SIGIL_E_CORRUPT);
	}
	assert_null(again);
	assert_non_null(strstr(err.msg, p));
	assert_false(gen_file_exists(fx, 3));
	unlink(p);
}

/* A record the store accepts (well-formed, key matches) but that is not a
 * CA certificate: refused by the authority layer, naming the generation. */
static void test_not_a_ca_generation(void **state)
{
	fixture *fx = *state;
	X509 *x = X509_new();
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509_NAME *n = X509_get_subject_name(x);
	BIO *bio = BIO_new(BIO_s_mem());
	ca_store_record rec = {0};
	ca_set *set = NULL;
	ca_set_config c = make_cfg(fx);
	sigil_err err = {0};
	char *data;
	long len;

	ASN1_INTEGER_set(X509_get_serialNumber(x), 9);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)"leaf", -1, -1,
				   0);
	X509_set_issuer_name(x, n);
	ASN1_TIME_set(X509_getm_notBefore(x), T0 - DAY);
	ASN1_TIME_set(X509_getm_notAfter(x), T0 + CA_LIFE);
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	assert_true(PEM_write_bio_X509(bio, x) == 1);
	len = BIO_get_mem_data(bio, &data);
	rec.cert_pem = strndup(data, (size_t)len);
	rec.cert_len = (size_t)len;
	BIO_reset(bio);
	assert_true(PEM_write_bio_PKCS8PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1);
	len = BIO_get_mem_data(bio, &data);
	rec.key_pem = strndup(data, (size_t)len);
	rec.key_len = (size_t)len;
	rec.generation = 1;
	assert_int_equal(ca_store_put(fx->store, CLASS, &rec, &err), 0);

	assert_int_equal(ca_set_open(fx->store, &c, &set, &err), SIGIL_E_CORRUPT);
	assert_non_null(strstr(err.msg, "generation 1"));
	assert_non_null(strstr(err.msg, "not a CA"));
	assert_int_equal(gen_files(fx), 1);

	ca_store_record_clear(&rec);
	BIO_free(bio);
	EVP_PKEY_free(k);
	X509_free(x);
}

/* A store full of generations: rotation fails cleanly, the set stays
 * usable and unchanged. */
static void test_store_full(void **state)
{
	fixture *fx = *state;
	ca_set *set = open_set(fx);
	ca_store_record *recs = NULL;
	size_t n = 0;
	bool changed;
	sigil_err err = {0};
	uint64_t v;

	assert_int_equal(ca_set_rotate_now(set, &err), 0);
	/* Fill the store up with copies of generation 2 (cheaper than 62
	 * more rotations; the store does not care). */
	assert_int_equal(ca_store_load(fx->store, CLASS, &recs, &n, &err), 0);
	assert_int_equal(n, 2);
	for (uint64_t g = 3; g <= CA_STORE_MAX_GENERATIONS; g++) {
		recs[1].generation = g;
		assert_int_equal(ca_store_put(fx->store, CLASS, &recs[1], &err), 0);
	}
	ca_store_records_free(recs, n);
	refresh(set, &changed);
	assert_true(changed);
	assert_int_equal(set->n, CA_STORE_MAX_GENERATIONS);
	v = set->version;
	assert_int_equal(ca_set_rotate_now(set, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "64"));
	assert_int_equal(set->n, CA_STORE_MAX_GENERATIONS);
	assert_true(set->version == v);
	assert_non_null(ca_set_signer(set, T0 + LEAF_LIFE));
	/* The lock was released on the error path. */
	assert_int_equal(ca_store_lock(fx->store, CLASS, &err), 0);
	ca_store_unlock(fx->store, CLASS);
	ca_set_free(set);
}

/* ---- years of simulated time ------------------------------------------------ */

typedef struct leaf {
	X509 *signer;
	time_t not_after;
} leaf;

static void test_years_simulation(void **state)
{
	fixture *fx = *state;
	ca_set *set = open_set(fx);
	/* Two days do not divide the 49.5-day half-life: rotations happen
	 * up to a step late, which the checks below allow for (the exact
	 * second is test_rotation_schedule's business). */
	const time_t step = 2 * DAY, end = T0 + 3 * 365 * DAY;
	leaf *leaves = NULL;
	size_t nleaves = 0, cap = 0;
	int rotations = 0;
	uint64_t last_gen = 1;

	for (time_t t = T0; t <= end; t += step) {
		time_t due = rotation_due(set->cas[set->n - 1]);
		uint64_t v = set->version;
		bool changed;
		STACK_OF(X509) *b;
		const ca_authority *signer;
		time_t leaf_na = t + LEAF_LIFE;

		fx->fc.t = t;
		refresh(set, &changed);
		assert_true(changed == (set->version != v));
		if (set->generations[set->n - 1] != last_gen) {
			/* A rotation happens at the first step at or after the due
			 * time, and never before. */
			assert_true(t >= due && t < due + step);
			assert_true(set->generations[set->n - 1] == last_gen + 1);
			last_gen++;
			rotations++;
		} else {
			assert_true(t < due);
		}
		assert_true(set->n >= 1 && set->n <= 3);
		for (size_t i = 1; i < set->n; i++)
			assert_true(set->generations[i] > set->generations[i - 1]);
		for (size_t i = 0; i < set->n; i++)
			assert_true(ca_authority_not_after(set->cas[i]) > t); /* pruned */

		/* Issue a leaf; its CA covers it plus retirement. */
		signer = ca_set_signer(set, leaf_na);
		assert_non_null(signer);
		assert_true(ca_authority_not_after(signer) - RETIRE >= leaf_na);
		/* A successor was in bundles long before it signed anything:
		 * from half of its predecessor's active life until the
		 * predecessor can no longer cover a leaf. */
		if (signer != set->cas[0] || set->generations[0] != 1)
			assert_true(t - created(signer) >=
				    (CA_LIFE - RETIRE) / 2 - LEAF_LIFE - step);
		if (nleaves == cap) {
			cap = cap ? cap * 2 : 256;
			leaves = realloc(leaves, cap * sizeof(*leaves));
			assert_non_null(leaves);
		}
		X509_up_ref(signer->cert);
		leaves[nleaves++] = (leaf){signer->cert, leaf_na};

		/* Every leaf still valid is trusted by the current bundle. */
		b = bundle(set);
		for (size_t i = 0; i < nleaves; i++)
			if (leaves[i].not_after > t)
				assert_true(bundle_has(b, leaves[i].signer));
		bundle_free(b);
		/* The store holds exactly the set. */
		if (changed)
			assert_int_equal(gen_files(fx), set->n);
	}
	/* 3 years / (49.5 days, up to a day late each). */
	assert_in_range(rotations, (end - T0) / ((CA_LIFE - RETIRE) / 2 + step),
			(end - T0) / ((CA_LIFE - RETIRE) / 2));
	for (size_t i = 0; i < nleaves; i++)
		X509_free(leaves[i].signer);
	free(leaves);
	ca_set_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_ca, setup, teardown),
		cmocka_unit_test_setup_teardown(test_common_name_and_algorithms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auto_generate_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_schedule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_now_and_refresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_race_adopts_theirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_and_trust_roots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_ca_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_years_simulation, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
