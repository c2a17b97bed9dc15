/* CA sets: the generations of CAs of one SecretClass, kept in a ca_store,
 * with automatic rotation.
 *
 * Time line of one generation G (nb = notBefore, na = notAfter, R = the
 * retirement duration, created = nb + CA_BACKDATE_SECS):
 *
 *   created ........ half of active life ........ na - R ...... na
 *   | signs leaves   | successor G+1 generated    | retired     | expired,
 *   | that end       | (G still signs leaves that | (leaves the | pruned
 *   | before na - R  |  end before na - R)        |  bundle)    |
 *
 * - Signer: the OLDEST generation with na - R >= the leaf's notAfter.  So
 *   no leaf ever outlives its CA's na - R, and the new CA only starts
 *   signing once the old one can no longer cover a full leaf: by then the
 *   new CA has been in every trust bundle for a long time.
 * - Retired: now >= na - R.  The trust bundle is every CA not yet retired
 *   (plus the additionalTrustRoots).  Because of the signer rule, every
 *   leaf a retired CA signed has already expired, so dropping it from the
 *   bundle orphans no valid certificate.
 * - Rotation: a new generation is made once the NEWEST one has passed half
 *   of its active life (active life = lifetime - R), i.e. when
 *   now >= created + (na - created - R) / 2.  The backdate is not part of
 *   the lifetime the operator asked for, so it is left out of the sum.
 * - Pruning: a generation is removed from the store once it has expired
 *   (na <= now), except the newest one, which is kept whatever happens so
 *   that a class never silently loses its last CA.
 * - Generation numbers only grow: a new one is 1 + the largest one the
 *   store or this set has seen.
 *
 * Every change happens under the store's class lock, after re-reading the
 * store, so several processes (sigil-ca replicas, sigilctl) sharing one
 * store never rotate twice or lose each other's generations.  A ca_set is
 * not thread-safe; its owner serialises calls, and a refresh invalidates
 * the authorities returned by ca_set_signer. */
#include "ca/caset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "util/mem.h"

#define CASET_DEFAULT_RETIREMENT_SECS 3600
/* ub-common-name (RFC 5280 appendix A). */
#define CASET_MAX_COMMON_NAME 64
#define CASET_DEFAULT_CN_PREFIX "sigil CA "

SIGIL_DEFINE_CLEANUP(ca_authority, ca_authority_free)

static void x509_stack_free(STACK_OF(X509) *s)
{
	sk_X509_pop_free(s, X509_free);
}
SIGIL_DEFINE_CLEANUP(STACK_OF(X509), x509_stack_free)

/* The generations of a set, built up before it replaces the set's own. */
typedef struct caset_gens {
	ca_authority **cas;
	uint64_t *gens;
	size_t n;
} caset_gens;

static void caset_gens_clear(caset_gens *g)
{
	for (size_t i = 0; i < g->n; i++)
		ca_authority_free(g->cas[i]);
	free(g->cas);
	free(g->gens);
	memset(g, 0, sizeof(*g));
}

static time_t caset_now(const ca_set *set)
{
	return sigil_clock_now(set->cfg.clock);
}

static bool caset_is_retired(const ca_set *set, const ca_authority *ca, time_t now)
{
	return (int64_t)now >= (int64_t)ca_authority_not_after(ca) - set->cfg.retirement_secs;
}

static bool caset_rotation_due(const ca_set *set, const ca_authority *newest, time_t now)
{
	int64_t nb = ca_authority_not_before(newest), na = ca_authority_not_after(newest);
	int64_t created = nb + CA_BACKDATE_SECS;

	/* A CA made elsewhere may be shorter than our backdate. */
	if (created > na)
		created = nb;
	return (int64_t)now >= created + (na - created - set->cfg.retirement_secs) / 2;
}

/* version: the first 8 bytes of SHA-256 over the membership (generation
 * numbers with their certificates, and the extra roots in a canonical
 * order), so that every replica computes the same value for the same set
 * and it changes exactly when the membership does. */
static int caset_digest_cert(X509 *x, unsigned char md[32], sigil_err *err)
{
	unsigned int len = 0;

	if (!X509_digest(x, EVP_sha256(), md, &len) || len != 32)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot hash certificate");
	return 0;
}

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static int caset_compute_version(const caset_gens *g, STACK_OF(X509) *extra, uint64_t *ret,
				 sigil_err *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[32], out[EVP_MAX_MD_SIZE];
	unsigned char(*roots)[32] = NULL;
	int nextra = extra ? sk_X509_num(extra) : 0;
	uint64_t v = 0;
	int r = 0;

	if (!ctx)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		r = sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot hash CA set");
		goto out;
	}
	for (size_t i = 0; i < g->n; i++) {
		unsigned char be[8];
		for (int k = 0; k < 8; k++)
			be[k] = (unsigned char)(g->gens[i] >> (56 - 8 * k));
		r = caset_digest_cert(g->cas[i]->cert, md, err);
		if (r < 0)
			goto out;
		EVP_DigestUpdate(ctx, "G", 1);
		EVP_DigestUpdate(ctx, be, sizeof(be));
		EVP_DigestUpdate(ctx, md, sizeof(md));
	}
	if (nextra > 0) {
		roots = calloc((size_t)nextra, sizeof(*roots));
		if (!roots) {
			r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			goto out;
		}
		for (int i = 0; i < nextra; i++) {
			r = caset_digest_cert(sk_X509_value(extra, i), roots[i], err);
			if (r < 0)
				goto out;
		}
		qsort(roots, (size_t)nextra, sizeof(*roots), cmp_digest);
		for (int i = 0; i < nextra; i++) {
			EVP_DigestUpdate(ctx, "T", 1);
			EVP_DigestUpdate(ctx, roots[i], sizeof(roots[i]));
		}
	}
	if (!EVP_DigestFinal_ex(ctx, out, NULL)) {
		r = sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot hash CA set");
		goto out;
	}
	for (int k = 0; k < 8; k++)
		v = (v << 8) | out[k];
	*ret = v;
out:
	free(roots);
	EVP_MD_CTX_free(ctx);
	return r;
}

/* Turns one stored record into an authority.  ca_authority_from_pem checks
 * validity at `now`, which suits an import but not a store that keeps
 * expired generations until they are pruned: validity is this module's
 * business (see the rules above), so the check is made at a time inside
 * the certificate's own validity period. */
static int caset_parse_record(const ca_set *set, const ca_store_record *rec, time_t now,
			      ca_authority **ret, sigil_err *err)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;
	time_t nb, na, at = now;
	X509 *x;
	int r;

	r = ca_certs_from_pem(rec->cert_pem, rec->cert_len, 1, &certs, err);
	if (r >= 0) {
		x = sk_X509_value(certs, 0);
		/* A generation this set already holds, with the same certificate
		 * (the store has checked that the key belongs to it): share it
		 * rather than decode the key again on every refresh. */
		for (size_t i = 0; i < set->n; i++) {
			ca_authority *cur = set->cas[i], *dup;
			if (set->generations[i] != rec->generation || X509_cmp(cur->cert, x) != 0)
				continue;
			dup = calloc(1, sizeof(*dup));
			if (!dup)
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			X509_up_ref(cur->cert);
			EVP_PKEY_up_ref(cur->key);
			dup->cert = cur->cert;
			dup->key = cur->key;
			dup->chain = sk_X509_new_null();
			if (!dup->chain) {
				ca_authority_free(dup);
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			}
			/* The shared key still needs its per-authority signing context. */
			r = ca_authority_prepare(dup, err);
			if (r < 0) {
				ca_authority_free(dup);
				return r;
			}
			*ret = dup;
			return 0;
		}
		nb = ca_asn1_time_to_time_t(X509_get0_notBefore(x));
		na = ca_asn1_time_to_time_t(X509_get0_notAfter(x));
		if (at < nb)
			at = nb;
		if (at > na)
			at = na;
		r = ca_authority_from_pem(rec->cert_pem, rec->cert_len, rec->key_pem, rec->key_len,
					  NULL, NULL, 0, at, ret, err);
	}
	if (r < 0) {
		if (err)
			err->code = SIGIL_E_CORRUPT;
		sigil_err_prefix(err, "CA store: class %s generation %llu cannot be used: ",
				 set->class_name, (unsigned long long)rec->generation);
		return SIGIL_E_CORRUPT;
	}
	return 0;
}

/* Reads every generation of the class (caller holds the lock); room is
 * left for one more. */
static int caset_load_locked(const ca_set *set, time_t now, caset_gens *ret, sigil_err *err)
{
	ca_store_record *recs = NULL;
	size_t n = 0;
	caset_gens g = {0};
	int r;

	r = ca_store_load(set->store, set->class_name, &recs, &n, err);
	if (r < 0)
		return r;
	g.cas = sigil_calloc(n + 1, sizeof(*g.cas));
	g.gens = sigil_calloc(n + 1, sizeof(*g.gens));
	if (!g.cas || !g.gens) {
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		r = caset_parse_record(set, &recs[i], now, &g.cas[g.n], err);
		if (r < 0)
			goto out;
		g.gens[g.n++] = recs[i].generation;
	}
	*ret = g;
	memset(&g, 0, sizeof(g));
	r = 0;
out:
	caset_gens_clear(&g);
	ca_store_records_free(recs, n);
	return r;
}

/* "<base> #<generation>": distinct subjects per generation keep chain
 * building simple for clients that match issuers by name only. */
static void caset_common_name(const ca_set *set, uint64_t generation,
			      char buf[CASET_MAX_COMMON_NAME + 1])
{
	char suffix[32];
	const char *base = set->cfg.common_name;
	size_t blen, slen, max;
	char dflt[sizeof(CASET_DEFAULT_CN_PREFIX) + CA_STORE_MAX_CLASS_LEN];

	if (!base) {
		snprintf(dflt, sizeof(dflt), CASET_DEFAULT_CN_PREFIX "%s", set->class_name);
		base = dflt;
	}
	snprintf(suffix, sizeof(suffix), " #%llu", (unsigned long long)generation);
	slen = strlen(suffix);
	blen = strlen(base);
	max = CASET_MAX_COMMON_NAME - slen;
	if (blen > max) {
		blen = max;
		/* Never cut a UTF-8 sequence in half. */
		while (blen > 0 && ((unsigned char)base[blen] & 0xc0) == 0x80)
			blen--;
	}
	snprintf(buf, CASET_MAX_COMMON_NAME + 1, "%.*s%s", (int)blen, base, suffix);
}

/* Makes generation `generation`, writes it to the store and appends it to g
 * (which has room for it). */
static int caset_generate(const ca_set *set, uint64_t generation, time_t now, caset_gens *g,
			  sigil_err *err)
{
	_cleanup_(ca_authority_freep) ca_authority *ca = NULL;
	_cleanup_(x509_stack_freep) STACK_OF(X509) *one = sk_X509_new_null();
	_cleanup_free_ char *cert_pem = NULL;
	char *key_pem = NULL;
	size_t cert_len = 0, key_len = 0;
	char cn[CASET_MAX_COMMON_NAME + 1];
	ca_create_opts opts = {
		.alg = set->cfg.key_alg,
		.common_name = cn,
		.lifetime_secs = set->cfg.ca_lifetime_secs,
		.now = now,
	};
	ca_store_record rec;
	int r;

	if (!one)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	caset_common_name(set, generation, cn);
	r = ca_authority_create(&opts, &ca, err);
	if (r < 0)
		return sigil_err_prefix(err, "generating CA for class %s: ", set->class_name);
	if (!sk_X509_push(one, ca->cert))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	X509_up_ref(ca->cert);
	r = ca_certs_to_pem(one, &cert_pem, &cert_len, err);
	if (r < 0)
		return r;
	r = ca_key_to_pkcs8_pem(ca->key, &key_pem, &key_len, err);
	if (r < 0)
		return r;
	rec = (ca_store_record){
		.generation = generation,
		.cert_pem = cert_pem,
		.cert_len = cert_len,
		.key_pem = key_pem,
		.key_len = key_len,
	};
	r = ca_store_put(set->store, set->class_name, &rec, err);
	sigil_freezero(key_pem, key_len);
	if (r < 0)
		return r;
	g->cas[g->n] = TAKE_PTR(ca);
	g->gens[g->n++] = generation;
	return 0;
}

/* Under the class lock: re-read the store, make the first CA or rotate
 * when due (or when forced), prune expired generations; then adopt the
 * result.  On failure the set is left as it was. */
static int caset_sync(ca_set *set, bool force_rotate, sigil_err *err)
{
	caset_gens g = {0};
	time_t now = caset_now(set);
	uint64_t version, max_gen;
	size_t keep;
	int r;

	r = ca_store_lock(set->store, set->class_name, err);
	if (r < 0)
		return r;
	r = caset_load_locked(set, now, &g, err);
	if (r < 0)
		goto out;
	if (g.n == 0 && !set->cfg.auto_generate) {
		r = sigil_err_set(err, SIGIL_E_PRECOND,
				  "class %s has no CA and autoGenerate is off: import a CA or enable "
				  "ca.autoGenerate",
				  set->class_name);
		goto out;
	}
	if (g.n == 0 || force_rotate || caset_rotation_due(set, g.cas[g.n - 1], now)) {
		max_gen = g.n ? g.gens[g.n - 1] : 0;
		/* Never reuse a number this set has seen, even if the store lost it. */
		if (set->n && set->generations[set->n - 1] > max_gen)
			max_gen = set->generations[set->n - 1];
		if (max_gen == UINT64_MAX) {
			r = sigil_err_set(err, SIGIL_E_LIMIT, "class %s: generation numbers exhausted",
					  set->class_name);
			goto out;
		}
		if (g.n >= CA_STORE_MAX_GENERATIONS) {
			r = sigil_err_set(err, SIGIL_E_LIMIT,
					  "class %s already holds %d CA generations; cannot rotate "
					  "until old ones expire",
					  set->class_name, CA_STORE_MAX_GENERATIONS);
			goto out;
		}
		r = caset_generate(set, max_gen + 1, now, &g, err);
		if (r == SIGIL_E_EXISTS) {
			/* Another replica wrote that generation first (a store shared
			 * between processes whose lock lapsed): never overwrite it;
			 * adopt what the store holds now.  Its new generation is the
			 * rotation that was due or asked for. */
			caset_gens_clear(&g);
			r = caset_load_locked(set, now, &g, err);
			if (r == 0 && g.n == 0)
				r = sigil_err_set(err, SIGIL_E_CORRUPT,
						  "class %s: the store reported generation %llu as "
						  "existing but holds none",
						  set->class_name, (unsigned long long)(max_gen + 1));
		}
		if (r < 0)
			goto out;
	}
	/* Prune expired generations, never the newest. */
	keep = 0;
	for (size_t i = 0; i < g.n; i++) {
		if (i + 1 < g.n && (int64_t)ca_authority_not_after(g.cas[i]) <= (int64_t)now) {
			r = ca_store_remove(set->store, set->class_name, g.gens[i], err);
			if (r < 0) {
				/* Keep what is left consistent for the free below. */
				for (size_t j = i; j < g.n; j++) {
					g.cas[keep] = g.cas[j];
					g.gens[keep++] = g.gens[j];
				}
				g.n = keep;
				goto out;
			}
			ca_authority_free(g.cas[i]);
			continue;
		}
		g.cas[keep] = g.cas[i];
		g.gens[keep++] = g.gens[i];
	}
	g.n = keep;
	r = caset_compute_version(&g, set->extra_trust, &version, err);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < set->n; i++)
		ca_authority_free(set->cas[i]);
	free(set->cas);
	free(set->generations);
	set->cas = g.cas;
	set->generations = g.gens;
	set->n = g.n;
	set->version = version;
	memset(&g, 0, sizeof(g));
out:
	ca_store_unlock(set->store, set->class_name);
	caset_gens_clear(&g);
	return r;
}

void ca_set_free(ca_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		ca_authority_free(set->cas[i]);
	free(set->cas);
	free(set->generations);
	sk_X509_pop_free(set->extra_trust, X509_free);
	free(set->class_name);
	/* The set owns its copy of the configured common name. */
	free((char *)set->cfg.common_name);
	free(set);
}
SIGIL_DEFINE_CLEANUP(ca_set, ca_set_free)

int ca_set_open(ca_store *store, const ca_set_config *cfg, ca_set **ret, sigil_err *err)
{
	_cleanup_(ca_set_freep) ca_set *set = NULL;
	int r;

	if (!store || !cfg)
		return sigil_err_set(err, SIGIL_E_INVALID, "CA set needs a store and a configuration");
	r = ca_store_check_class(cfg->class_name, err);
	if (r < 0)
		return r;
	if ((int)cfg->key_alg < 0 || cfg->key_alg >= SIGIL_KEY__COUNT)
		return sigil_err_set(err, SIGIL_E_INVALID, "class %s: unknown CA key algorithm",
				     cfg->class_name);
	set = calloc(1, sizeof(*set));
	if (!set)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	set->cfg = *cfg;
	set->cfg.common_name = NULL;
	set->class_name = strdup(cfg->class_name);
	if (!set->class_name)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	set->cfg.class_name = set->class_name;
	if (cfg->common_name) {
		set->cfg.common_name = strdup(cfg->common_name);
		if (!set->cfg.common_name)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	if (set->cfg.ca_lifetime_secs == 0)
		set->cfg.ca_lifetime_secs = CA_DEFAULT_LIFETIME_SECS;
	if (set->cfg.retirement_secs == 0)
		set->cfg.retirement_secs = CASET_DEFAULT_RETIREMENT_SECS;
	if (set->cfg.retirement_secs < 0 || set->cfg.ca_lifetime_secs < 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "class %s: CA lifetime and retirement must not be negative",
				     set->class_name);
	/* Without an active life there is nothing a CA could sign. */
	if (set->cfg.retirement_secs >= set->cfg.ca_lifetime_secs)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "class %s: caCertificateRetirementDuration (%llds) must be "
				     "shorter than caCertificateLifetime (%llds)",
				     set->class_name, (long long)set->cfg.retirement_secs,
				     (long long)set->cfg.ca_lifetime_secs);
	set->store = store;
	set->extra_trust = sk_X509_new_null();
	if (!set->extra_trust)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = caset_sync(set, false, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(set);
	return 0;
}

int ca_set_refresh(ca_set *set, bool *changed, sigil_err *err)
{
	uint64_t old = set->version;
	int r = caset_sync(set, false, err);

	if (r < 0)
		return r;
	if (changed)
		*changed = set->version != old;
	return 0;
}

int ca_set_rotate_now(ca_set *set, sigil_err *err)
{
	return caset_sync(set, true, err);
}

const ca_authority *ca_set_signer(const ca_set *set, time_t leaf_not_after)
{
	if (!set || set->n == 0)
		return NULL;
	for (size_t i = 0; i < set->n; i++) {
		int64_t usable_until = (int64_t)ca_authority_not_after(set->cas[i]) -
				       set->cfg.retirement_secs;
		if (usable_until >= (int64_t)leaf_not_after)
			return set->cas[i];
	}
	return set->cas[set->n - 1];
}

int ca_set_trust_bundle(const ca_set *set, STACK_OF(X509) **ret, sigil_err *err)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *out = sk_X509_new_null();
	time_t now = caset_now(set);
	int ncas = 0;

	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (size_t i = 0; i < set->n; i++) {
		if (caset_is_retired(set, set->cas[i], now))
			continue;
		if (!sk_X509_push(out, set->cas[i]->cert))
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		X509_up_ref(set->cas[i]->cert);
		ncas++;
	}
	/* Every CA retired means rotation has not run for a long time: a bundle
	 * without our own CA would break every workload at once. */
	if (ncas == 0)
		return sigil_err_set(err, SIGIL_E_PRECOND,
				     "class %s has no CA that is not retired; refresh the CA set",
				     set->class_name);
	for (int i = 0; i < sk_X509_num(set->extra_trust); i++) {
		X509 *x = sk_X509_value(set->extra_trust, i);
		if (!sk_X509_push(out, x))
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		X509_up_ref(x);
	}
	*ret = TAKE_PTR(out);
	return 0;
}

int ca_set_add_trust_roots(ca_set *set, STACK_OF(X509) *roots, sigil_err *err)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *next = NULL;
	caset_gens cur;
	uint64_t version;
	int r;

	if (!roots)
		return 0;
	next = sk_X509_dup(set->extra_trust);
	if (!next)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	/* sk_X509_dup copies pointers: take our own references. */
	for (int i = 0; i < sk_X509_num(next); i++)
		X509_up_ref(sk_X509_value(next, i));
	for (int i = 0; i < sk_X509_num(roots); i++) {
		X509 *x = sk_X509_value(roots, i);
		bool dup = false;

		for (int k = 0; !dup && k < sk_X509_num(next); k++)
			dup = X509_cmp(x, sk_X509_value(next, k)) == 0;
		if (dup)
			continue;
		if (sk_X509_num(next) >= CA_SET_MAX_TRUST_ROOTS)
			return sigil_err_set(err, SIGIL_E_LIMIT,
					     "class %s: more than %d additional trust roots",
					     set->class_name, CA_SET_MAX_TRUST_ROOTS);
		if (!sk_X509_push(next, x))
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		X509_up_ref(x);
	}
	cur = (caset_gens){.cas = set->cas, .gens = set->generations, .n = set->n};
	r = caset_compute_version(&cur, next, &version, err);
	if (r < 0)
		return r;
	sk_X509_pop_free(set->extra_trust, X509_free);
	set->extra_trust = TAKE_PTR(next);
	set->version = version;
	return 0;
}
