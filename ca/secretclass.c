/* SecretClass objects from YAML (DESIGN.md "SecretClass").
 *
 * libyaml's event parser does all YAML parsing.  Its events are collected
 * into a small bounded tree per document (refusing anchors, aliases and
 * tags, limiting depth and node count while the events arrive, so that a
 * billion-laughs or a deeply nested document costs at most a few limits'
 * worth of memory), then the tree is checked field by field against the
 * SecretClass schema.  Kubernetes semantics: a field set to null is unset.
 *
 * sigil's choices where Stackable's v1alpha2 leaves room (see also the
 * header):
 * - ca.secret is optional.  ca.autoGenerate defaults to false as in
 *   Stackable when ca.secret is given, and to true when it is absent, so
 *   that `autoTls: {}` is a working class outside Kubernetes.
 * - ca.keyGeneration (Stackable) and ca.keyAlgorithm (sigil) both choose
 *   the CA key and may not be combined.  keyGeneration also sets the leaf
 *   key algorithm, as Stackable generates leaf keys with it too; the sigil
 *   autoTls.keyAlgorithm always wins for leaves.
 * - kerberosKeytab.adminKeytabSecret is a Secret reference, stored in
 *   ca_kerberos_config.admin_keytab as "<namespace>/<name>", or (standalone)
 *   a plain string that must be an absolute path, so the two never clash.
 * - externalCa takes exactly one of cfssl or vault, plus the optional
 *   keyAlgorithm (leaf keys) and maxCertificateLifetime.  timeout and the
 *   Vault mount default as ca_class_config_defaults() says (10s, "pki").
 * - Documents that are empty (`---` with nothing after it) are skipped, as
 *   kubectl does, but a stream without any SecretClass is an error.
 * - Error messages count documents from 1, like lines. */
#include "ca/secretclass.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "ca/key.h"
#include "ca/store.h"
#include "util/duration.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/parse.h"

/* Nesting of mappings and sequences; a SecretClass needs 7, kubectl's
 * managedFields about 12. */
#define SC_MAX_DEPTH 32
/* Nodes (scalars, mappings, sequences) in one document. */
#define SC_MAX_NODES 16384
/* Field paths in messages ("spec.backend.autoTls.additionalTrustRoots[3]..."). */
#define SC_MAX_PATH 256
/* How much of a value a message quotes. */
#define SC_MAX_SHOW 64
/* *.yaml / *.yml files in one class directory. */
#define SC_MAX_DIR_FILES 256
/* externalCa timeout. */
#define SC_MAX_TIMEOUT_SECS    600
/* Kubernetes object names: RFC 1123 subdomain and label. */
#define SC_MAX_DNS_NAME  253
#define SC_MAX_DNS_LABEL 63

#define SC_NONE UINT32_MAX

/* ---- the bounded document tree ------------------------------------------ */

typedef enum sc_kind {
	SC_SCALAR,
	SC_SEQ,
	SC_MAP,
} sc_kind;

typedef struct sc_node {
	sc_kind kind;
	bool plain;     /* unquoted scalar: may be null, a boolean or a number */
	uint32_t line;  /* 1-based */
	uint32_t first; /* children; a mapping's alternate key, value */
	uint32_t last;
	uint32_t next;  /* sibling */
	uint32_t count; /* children */
	char *value;    /* scalar, NUL-terminated, no inner NUL */
	size_t len;
} sc_node;

typedef struct sc_tree {
	sc_node *nodes;
	uint32_t n;
	uint32_t cap;
} sc_tree;

static void sc_tree_reset(sc_tree *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		free(t->nodes[i].value);
	t->n = 0;
}

static void sc_tree_free(sc_tree *t)
{
	sc_tree_reset(t);
	free(t->nodes);
	t->nodes = NULL;
	t->cap = 0;
}

/* Appends a node under parent (SC_NONE: the root); indexes stay valid when
 * the array grows, pointers do not. */
static int sc_tree_add(sc_tree *t, sc_kind kind, uint32_t line, uint32_t parent, uint32_t *ret)
{
	sc_node *n;
	uint32_t idx;

	if (t->n >= SC_MAX_NODES)
		return SIGIL_E_LIMIT;
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 64;
		sc_node *p;

		if (cap > SC_MAX_NODES)
			cap = SC_MAX_NODES;
		p = realloc(t->nodes, (size_t)cap * sizeof(*p));
		if (!p)
			return SIGIL_E_NOMEM;
		t->nodes = p;
		t->cap = cap;
	}
	idx = t->n++;
	n = &t->nodes[idx];
	*n = (sc_node){
	    .kind = kind,
	    .line = line,
	    .first = SC_NONE,
	    .last = SC_NONE,
	    .next = SC_NONE,
	};
	if (parent != SC_NONE) {
		sc_node *p = &t->nodes[parent];
		if (p->last == SC_NONE)
			p->first = idx;
		else
			t->nodes[p->last].next = idx;
		p->last = idx;
		p->count++;
	}
	*ret = idx;
	return 0;
}

/* ---- checking a document --------------------------------------------------- */

typedef struct sc_ctx {
	const sc_tree *t;
	size_t doc; /* 1-based */
	sigil_err *err;
} sc_ctx;

static const sc_node *sc_at(const sc_ctx *c, uint32_t i)
{
	return i == SC_NONE ? NULL : &c->t->nodes[i];
}

/* Printable ASCII only, shortened: values in messages come from the file
 * and end up in logs and terminals. */
static const char *sc_show(const char *s, char *buf, size_t size)
{
	return sigil_err_show(s, buf, size);
}

static void sc_path(char *buf, size_t size, const char *parent, const char *key)
{
	char shown[SC_MAX_SHOW];

	sc_show(key, shown, sizeof(shown));
	if (parent && *parent)
		snprintf(buf, size, "%s.%s", parent, shown);
	else
		snprintf(buf, size, "%s", shown);
}

/* parent[i]; a path cut short only shortens a message. */
static void sc_path_index(char *buf, size_t size, const char *parent, size_t i)
{
	if (snprintf(buf, size, "%s[%zu]", parent, i) >= (int)size)
		buf[size - 1] = '\0';
}

SIGIL_PRINTF(5, 6)
static int sc_fail(const sc_ctx *c, int code, const char *path, uint32_t line, const char *fmt, ...)
{
	char msg[SIGIL_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path && *path)
		return sigil_err_set(c->err, code, "document %zu: %s (line %u): %s", c->doc, path,
		                     line, msg);
	return sigil_err_set(c->err, code, "document %zu (line %u): %s", c->doc, line, msg);
}

/* YAML 1.2 core schema nulls; a null field is an unset field. */
static bool sc_is_null(const sc_node *n)
{
	if (!n)
		return true;
	if (n->kind != SC_SCALAR || !n->plain)
		return false;
	return n->len == 0 || !strcmp(n->value, "~") || !strcmp(n->value, "null") ||
	       !strcmp(n->value, "Null") || !strcmp(n->value, "NULL");
}

/* Checks that map is a mapping with string keys, each known key at most
 * once, and (strict) no unknown key: a typo under spec must not silently
 * change how certificates are made.  known has at most 64 entries. */
static int sc_map_check(const sc_ctx *c, const sc_node *map, const char *path,
                        const char *const *known, size_t n_known, bool strict)
{
	uint64_t seen = 0;
	char p[SC_MAX_PATH];

	if (map->kind != SC_MAP)
		return sc_fail(c, SIGIL_E_INVALID, path, map->line, "expected a mapping");
	for (const sc_node *k = sc_at(c, map->first); k; k = sc_at(c, k->next)) {
		const sc_node *v = sc_at(c, k->next);
		size_t i;

		if (!v)
			return sc_fail(c, SIGIL_E_INTERNAL, path, k->line, "key without a value");
		if (k->kind != SC_SCALAR)
			return sc_fail(c, SIGIL_E_INVALID, path, k->line, "keys must be strings");
		for (i = 0; i < n_known; i++)
			if (!strcmp(k->value, known[i]))
				break;
		if (i == n_known) {
			if (strict) {
				sc_path(p, sizeof(p), path, k->value);
				return sc_fail(c, SIGIL_E_INVALID, p, k->line, "unknown field");
			}
		} else {
			if (seen & (UINT64_C(1) << i)) {
				sc_path(p, sizeof(p), path, k->value);
				return sc_fail(c, SIGIL_E_INVALID, p, k->line,
				               "field is given twice");
			}
			seen |= UINT64_C(1) << i;
		}
		k = v;
	}
	return 0;
}

/* The value of key in a checked mapping; NULL when absent or null. */
static const sc_node *sc_field(const sc_ctx *c, const sc_node *map, const char *key)
{
	for (const sc_node *k = sc_at(c, map->first); k; k = sc_at(c, k->next)) {
		const sc_node *v = sc_at(c, k->next);

		if (!v)
			return NULL;
		if (k->kind == SC_SCALAR && !strcmp(k->value, key))
			return sc_is_null(v) ? NULL : v;
		k = v;
	}
	return NULL;
}

static int sc_missing(const sc_ctx *c, const sc_node *map, const char *path, const char *key)
{
	char p[SC_MAX_PATH];

	sc_path(p, sizeof(p), path, key);
	return sc_fail(c, SIGIL_E_INVALID, p, map->line, "required field is missing");
}

/* Copies a scalar into dst[size]: never truncated, no control characters. */
static int sc_str(const sc_ctx *c, const sc_node *v, const char *path, char *dst, size_t size)
{
	if (v->kind != SC_SCALAR)
		return sc_fail(c, SIGIL_E_INVALID, path, v->line, "expected a string");
	if (v->len >= size)
		return sc_fail(c, SIGIL_E_LIMIT, path, v->line,
		               "value is %zu bytes long, the limit is %zu", v->len, size - 1);
	for (size_t i = 0; i < v->len; i++) {
		unsigned char ch = (unsigned char)v->value[i];
		if (ch < 0x20 || ch == 0x7f)
			return sc_fail(c, SIGIL_E_INVALID, path, v->line,
			               "value contains a control character");
	}
	memcpy(dst, v->value, v->len + 1);
	return 0;
}

/* An optional (empty: unset, dst keeps its default) or required string. */
static int sc_get_str(const sc_ctx *c, const sc_node *map, const char *path, const char *key,
                      bool required, char *dst, size_t size)
{
	const sc_node *v = sc_field(c, map, key);
	char p[SC_MAX_PATH];

	if (!v || (v->kind == SC_SCALAR && v->len == 0)) {
		if (required)
			return sc_missing(c, map, path, key);
		return 0;
	}
	sc_path(p, sizeof(p), path, key);
	return sc_str(c, v, p, dst, size);
}

static int sc_get_bool(const sc_ctx *c, const sc_node *map, const char *path, const char *key,
                       bool *dst, bool *present)
{
	const sc_node *v = sc_field(c, map, key);
	char p[SC_MAX_PATH];

	if (present)
		*present = false;
	if (!v)
		return 0;
	sc_path(p, sizeof(p), path, key);
	/* YAML 1.2 core booleans only: a quoted "true" is a string, and YAML
	 * 1.1's yes/no/on/off are too easy to get by accident. */
	if (v->kind == SC_SCALAR && v->plain &&
	    (!strcmp(v->value, "true") || !strcmp(v->value, "True") || !strcmp(v->value, "TRUE")))
		*dst = true;
	else if (v->kind == SC_SCALAR && v->plain &&
	         (!strcmp(v->value, "false") || !strcmp(v->value, "False") ||
	          !strcmp(v->value, "FALSE")))
		*dst = false;
	else
		return sc_fail(c, SIGIL_E_INVALID, p, v->line, "expected true or false");
	if (present)
		*present = true;
	return 0;
}

static int sc_get_int(const sc_ctx *c, const sc_node *map, const char *path, const char *key,
                      int64_t min, int64_t max, int64_t *dst, bool *present)
{
	const sc_node *v = sc_field(c, map, key);
	char p[SC_MAX_PATH], shown[SC_MAX_SHOW];
	int64_t val;

	*present = false;
	if (!v)
		return 0;
	sc_path(p, sizeof(p), path, key);
	if (v->kind != SC_SCALAR || !v->plain)
		return sc_fail(c, SIGIL_E_INVALID, p, v->line, "expected a number");
	if (sigil_parse_int64(v->value, min, max, &val) < 0)
		return sc_fail(
		    c, SIGIL_E_INVALID, p, v->line, "\"%s\" is not a number between %lld and %lld",
		    sc_show(v->value, shown, sizeof(shown)), (long long)min, (long long)max);
	*dst = val;
	*present = true;
	return 0;
}

static int sc_get_duration(const sc_ctx *c, const sc_node *map, const char *path, const char *key,
                           int64_t *dst, bool *present)
{
	const sc_node *v = sc_field(c, map, key);
	char p[SC_MAX_PATH], s[SIGIL_MAX_DURATION_LEN + 1];
	sigil_err e = {0};
	int64_t secs;
	int r;

	if (present)
		*present = false;
	if (!v)
		return 0;
	sc_path(p, sizeof(p), path, key);
	r = sc_str(c, v, p, s, sizeof(s));
	if (r < 0)
		return r;
	r = sigil_duration_parse(s, &secs, &e);
	if (r < 0)
		return sc_fail(c, r, p, v->line, "%s", e.msg);
	*dst = secs;
	if (present)
		*present = true;
	return 0;
}

static int sc_get_keyalg(const sc_ctx *c, const sc_node *map, const char *path, const char *key,
                         sigil_keyalg *dst, bool *present)
{
	const sc_node *v = sc_field(c, map, key);
	char p[SC_MAX_PATH], shown[SC_MAX_SHOW], names[128] = "";
	size_t o = 0;
	sigil_keyalg alg;

	*present = false;
	if (!v)
		return 0;
	sc_path(p, sizeof(p), path, key);
	/* Scalars hold no NUL (sc_node_event), so the value is the whole string. */
	if (v->kind == SC_SCALAR && ca_keyalg_parse(v->value, &alg) == 0) {
		*dst = alg;
		*present = true;
		return 0;
	}
	for (int i = 0; i < SIGIL_KEY__COUNT && o < sizeof(names); i++) {
		int w = snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "",
		                 ca_keyalg_name((sigil_keyalg)i));
		if (w < 0)
			break;
		o += (size_t)w;
	}
	return sc_fail(
	    c, SIGIL_E_INVALID, p, v->line, "unknown key algorithm \"%s\"; use one of %s",
	    v->kind == SC_SCALAR ? sc_show(v->value, shown, sizeof(shown)) : "(not a string)",
	    names);
}

/* A mapping value, NULL when absent or null. */
static int sc_get_map(const sc_ctx *c, const sc_node *map, const char *path, const char *key,
                      const char *const *known, size_t n_known, const sc_node **ret)
{
	const sc_node *v = sc_field(c, map, key);
	char p[SC_MAX_PATH];
	int r;

	*ret = NULL;
	if (!v)
		return 0;
	sc_path(p, sizeof(p), path, key);
	r = sc_map_check(c, v, p, known, n_known, true);
	if (r < 0)
		return r;
	*ret = v;
	return 0;
}

/* RFC 1123 label: [a-z0-9]([a-z0-9-]*[a-z0-9])?, at most max bytes. */
static bool sc_dns_label_ok(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
	}
	return true;
}

/* RFC 1123 subdomain (Kubernetes object names, DNS suffixes): labels joined
 * by '.', so never "..", never a '/' and never leaving a directory. */
static bool sc_dns_name_ok(const char *s)
{
	size_t len = strlen(s);
	const char *p = s;

	if (len == 0 || len > SC_MAX_DNS_NAME)
		return false;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (!sc_dns_label_ok(p, l, SC_MAX_DNS_LABEL))
			return false;
		if (!dot)
			return true;
		p = dot + 1;
	}
}

/* No whitespace: host names, realms, principals. */
static int sc_check_token(const sc_ctx *c, const sc_node *map, const char *path, const char *key,
                          const char *val)
{
	char p[SC_MAX_PATH];

	if (!strchr(val, ' '))
		return 0;
	sc_path(p, sizeof(p), path, key);
	return sc_fail(c, SIGIL_E_INVALID, p, map->line, "must not contain spaces");
}

/* {name, namespace}: a Secret or ConfigMap. */
static int sc_get_ref(const sc_ctx *c, const sc_node *map, const char *path, const char *key,
                      bool config_map, ca_object_ref *dst, bool *present)
{
	static const char *const known[] = {"name", "namespace"};
	const sc_node *v;
	char p[SC_MAX_PATH], np[SC_MAX_PATH];
	ca_object_ref ref = {.config_map = config_map};
	int r;

	*present = false;
	r = sc_get_map(c, map, path, key, known, SIGIL_ARRAY_SIZE(known), &v);
	if (r < 0 || !v)
		return r;
	sc_path(p, sizeof(p), path, key);
	r = sc_get_str(c, v, p, "name", true, ref.name, sizeof(ref.name));
	if (r < 0)
		return r;
	if (!sc_dns_name_ok(ref.name)) {
		sc_path(np, sizeof(np), p, "name");
		return sc_fail(c, SIGIL_E_INVALID, np, v->line,
		               "not a Kubernetes object name (lower-case letters, digits, '-' "
		               "and '.', at most %d bytes)",
		               SC_MAX_DNS_NAME);
	}
	r = sc_get_str(c, v, p, "namespace", true, ref.namespace_, sizeof(ref.namespace_));
	if (r < 0)
		return r;
	if (!sc_dns_label_ok(ref.namespace_, strlen(ref.namespace_), SC_MAX_DNS_LABEL)) {
		sc_path(np, sizeof(np), p, "namespace");
		return sc_fail(c, SIGIL_E_INVALID, np, v->line,
		               "not a Kubernetes namespace (lower-case letters, digits and '-', "
		               "at most %d bytes)",
		               SC_MAX_DNS_LABEL);
	}
	*dst = ref;
	*present = true;
	return 0;
}

/* ---- spec.backend.autoTls ---------------------------------------------------- */

static int sc_key_generation(const sc_ctx *c, const sc_node *ca, const char *path,
                             sigil_keyalg *dst, bool *present)
{
	static const char *const kg_known[] = {"rsa"};
	static const char *const rsa_known[] = {"length"};
	const sc_node *kg, *rsa;
	char p[SC_MAX_PATH], rp[SC_MAX_PATH];
	int64_t len = 0;
	bool has_len;
	int r;

	*present = false;
	r = sc_get_map(c, ca, path, "keyGeneration", kg_known, SIGIL_ARRAY_SIZE(kg_known), &kg);
	if (r < 0 || !kg)
		return r;
	sc_path(p, sizeof(p), path, "keyGeneration");
	r = sc_get_map(c, kg, p, "rsa", rsa_known, SIGIL_ARRAY_SIZE(rsa_known), &rsa);
	if (r < 0)
		return r;
	if (!rsa)
		return sc_missing(c, kg, p, "rsa");
	sc_path(rp, sizeof(rp), p, "rsa");
	r = sc_get_int(c, rsa, rp, "length", 0, 65536, &len, &has_len);
	if (r < 0)
		return r;
	if (!has_len)
		return sc_missing(c, rsa, rp, "length");
	switch (len) {
	case 2048: *dst = SIGIL_KEY_RSA2048; break;
	case 3072: *dst = SIGIL_KEY_RSA3072; break;
	case 4096: *dst = SIGIL_KEY_RSA4096; break;
	default:
		sc_path(p, sizeof(p), rp, "length");
		return sc_fail(c, SIGIL_E_INVALID, p, rsa->line,
		               "RSA length %lld is not supported; use 2048, 3072 or 4096",
		               (long long)len);
	}
	*present = true;
	return 0;
}

static int sc_autotls_ca(const sc_ctx *c, const sc_node *ca, const char *path, ca_class_config *cfg,
                         bool *leaf_from_kg)
{
	bool has_auto, has_kg, has_alg, has_life, has_ret;
	sigil_keyalg kg_alg = SIGIL_KEY_RSA2048, alg = SIGIL_KEY_ECDSA_P256;
	char p[SC_MAX_PATH];
	int r;

	r = sc_get_ref(c, ca, path, "secret", false, &cfg->ca_secret, &cfg->has_ca_secret);
	if (r < 0)
		return r;
	/* Stackable's default is false (a missing CA Secret is an error); with
	 * no ca.secret there is nothing else to use, so sigil generates. */
	cfg->auto_generate = !cfg->has_ca_secret;
	r = sc_get_bool(c, ca, path, "autoGenerate", &cfg->auto_generate, &has_auto);
	if (r < 0)
		return r;
	r = sc_get_duration(c, ca, path, "caCertificateLifetime", &cfg->ca_lifetime_secs,
	                    &has_life);
	if (r < 0)
		return r;
	r = sc_get_duration(c, ca, path, "caCertificateRetirementDuration", &cfg->retirement_secs,
	                    &has_ret);
	if (r < 0)
		return r;
	r = sc_key_generation(c, ca, path, &kg_alg, &has_kg);
	if (r < 0)
		return r;
	r = sc_get_keyalg(c, ca, path, "keyAlgorithm", &alg, &has_alg);
	if (r < 0)
		return r;
	if (has_kg && has_alg) {
		sc_path(p, sizeof(p), path, "keyAlgorithm");
		return sc_fail(c, SIGIL_E_INVALID, p, ca->line,
		               "set either keyGeneration or keyAlgorithm, not both");
	}
	if (has_kg) {
		cfg->ca_key_alg = kg_alg;
		cfg->leaf_key_alg = kg_alg;
		*leaf_from_kg = true;
	}
	if (has_alg)
		cfg->ca_key_alg = alg;
	if (cfg->ca_lifetime_secs <= 0) {
		sc_path(p, sizeof(p), path, "caCertificateLifetime");
		return sc_fail(c, SIGIL_E_INVALID, p, ca->line, "must be longer than 0s");
	}
	/* A CA must be usable for some time before it retires (caset.h). */
	if (cfg->retirement_secs >= cfg->ca_lifetime_secs) {
		sc_path(p, sizeof(p), path, "caCertificateRetirementDuration");
		return sc_fail(c, SIGIL_E_INVALID, p, ca->line,
		               "must be shorter than caCertificateLifetime");
	}
	return 0;
}

static int sc_trust_roots(const sc_ctx *c, const sc_node *tls, const char *path,
                          ca_class_config *cfg)
{
	static const char *const known[] = {"secret", "configMap"};
	const sc_node *seq = sc_field(c, tls, "additionalTrustRoots");
	char p[SC_MAX_PATH], ip[SC_MAX_PATH];
	size_t i = 0;
	int r;

	if (!seq)
		return 0;
	sc_path(p, sizeof(p), path, "additionalTrustRoots");
	if (seq->kind != SC_SEQ)
		return sc_fail(c, SIGIL_E_INVALID, p, seq->line, "expected a list");
	if (seq->count > CA_CLASS_MAX_TRUST_ROOTS)
		return sc_fail(c, SIGIL_E_LIMIT, p, seq->line, "%u entries, the limit is %d",
		               seq->count, CA_CLASS_MAX_TRUST_ROOTS);
	for (const sc_node *e = sc_at(c, seq->first); e; e = sc_at(c, e->next), i++) {
		bool has_secret, has_cm;

		sc_path_index(ip, sizeof(ip), p, i);
		r = sc_map_check(c, e, ip, known, SIGIL_ARRAY_SIZE(known), true);
		if (r < 0)
			return r;
		r = sc_get_ref(c, e, ip, "secret", false, &cfg->trust_roots[i], &has_secret);
		if (r < 0)
			return r;
		if (!has_secret) {
			r = sc_get_ref(c, e, ip, "configMap", true, &cfg->trust_roots[i], &has_cm);
			if (r < 0)
				return r;
		} else {
			has_cm = sc_field(c, e, "configMap") != NULL;
		}
		if (has_secret == has_cm)
			return sc_fail(c, SIGIL_E_INVALID, ip, e->line,
			               "set exactly one of secret or configMap");
	}
	cfg->n_trust_roots = i;
	return 0;
}

static int sc_autotls(const sc_ctx *c, const sc_node *tls, const char *path, ca_class_config *cfg)
{
	static const char *const ca_known[] = {
	    "secret",
	    "autoGenerate",
	    "caCertificateLifetime",
	    "caCertificateRetirementDuration",
	    "keyGeneration",
	    "keyAlgorithm",
	};
	const sc_node *ca;
	char p[SC_MAX_PATH];
	bool leaf_from_kg = false, has;
	int r;

	cfg->backend = CA_BACKEND_AUTOTLS;
	r = sc_get_map(c, tls, path, "ca", ca_known, SIGIL_ARRAY_SIZE(ca_known), &ca);
	if (r < 0)
		return r;
	if (ca) {
		sc_path(p, sizeof(p), path, "ca");
		r = sc_autotls_ca(c, ca, p, cfg, &leaf_from_kg);
		if (r < 0)
			return r;
	}
	r = sc_trust_roots(c, tls, path, cfg);
	if (r < 0)
		return r;
	r = sc_get_duration(c, tls, path, "maxCertificateLifetime", &cfg->max_leaf_lifetime_secs,
	                    &has);
	if (r < 0)
		return r;
	if (cfg->max_leaf_lifetime_secs <= 0) {
		sc_path(p, sizeof(p), path, "maxCertificateLifetime");
		return sc_fail(c, SIGIL_E_INVALID, p, tls->line, "must be longer than 0s");
	}
	return sc_get_keyalg(c, tls, path, "keyAlgorithm", &cfg->leaf_key_alg, &has);
}

/* ---- spec.backend.externalCa ------------------------------------------------- */

static int sc_url(const sc_ctx *c, const sc_node *map, const char *path, char *dst, size_t size)
{
	char p[SC_MAX_PATH];
	int r = sc_get_str(c, map, path, "url", true, dst, size);

	if (r < 0)
		return r;
	/* http only for tests against a local cfssl (service.h). */
	if ((!strncmp(dst, "https://", 8) && dst[8]) || (!strncmp(dst, "http://", 7) && dst[7])) {
		if (!strchr(dst, ' '))
			return 0;
	}
	sc_path(p, sizeof(p), path, "url");
	return sc_fail(c, SIGIL_E_INVALID, p, map->line,
	               "expected an https:// (or http://) URL without spaces");
}

static int sc_timeout(const sc_ctx *c, const sc_node *map, const char *path, int64_t *ms)
{
	char p[SC_MAX_PATH];
	int64_t secs = 0;
	bool has;
	int r = sc_get_duration(c, map, path, "timeout", &secs, &has);

	if (r < 0 || !has)
		return r;
	if (secs <= 0 || secs > SC_MAX_TIMEOUT_SECS) {
		sc_path(p, sizeof(p), path, "timeout");
		return sc_fail(c, SIGIL_E_INVALID, p, map->line, "must be between 1s and %ds",
		               SC_MAX_TIMEOUT_SECS);
	}
	*ms = secs * 1000;
	return 0;
}

/* Vault mounts and roles become URL path segments (/v1/<mount>/sign/<role>):
 * no "..", no empty segment, nothing that needs escaping. */
static int sc_url_segments(const sc_ctx *c, const sc_node *map, const char *path, const char *key,
                           const char *val, bool slashes)
{
	char p[SC_MAX_PATH];
	const char *seg = val;

	for (const char *s = val;; s++) {
		bool end = *s == '\0' || (slashes && *s == '/');
		if (end) {
			size_t l = (size_t)(s - seg);
			if (l == 0 || (l == 1 && seg[0] == '.') ||
			    (l == 2 && seg[0] == '.' && seg[1] == '.'))
				goto bad;
			if (*s == '\0')
				return 0;
			seg = s + 1;
			continue;
		}
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			goto bad;
	}
bad:
	sc_path(p, sizeof(p), path, key);
	return sc_fail(c, SIGIL_E_INVALID, p, map->line, "use letters, digits, '-', '_' and '.'%s",
	               slashes ? " (and '/' between parts)" : "");
}

static int sc_cfssl(const sc_ctx *c, const sc_node *m, const char *path, ca_external_config *x)
{
	int r;

	x->kind = CA_EXTERNAL_CFSSL;
	r = sc_url(c, m, path, x->url, sizeof(x->url));
	if (r == 0)
		r = sc_get_str(c, m, path, "caFile", false, x->ca_file, sizeof(x->ca_file));
	if (r == 0)
		r = sc_get_str(c, m, path, "authKeyFile", false, x->auth_key_file,
		               sizeof(x->auth_key_file));
	if (r == 0)
		r = sc_get_str(c, m, path, "profile", false, x->profile, sizeof(x->profile));
	if (r == 0)
		r = sc_timeout(c, m, path, &x->timeout_ms);
	return r;
}

static int sc_vault(const sc_ctx *c, const sc_node *m, const char *path, ca_external_config *x)
{
	int r;

	x->kind = CA_EXTERNAL_VAULT;
	r = sc_url(c, m, path, x->url, sizeof(x->url));
	if (r == 0)
		r = sc_get_str(c, m, path, "caFile", false, x->ca_file, sizeof(x->ca_file));
	if (r == 0)
		r = sc_get_str(c, m, path, "tokenFile", true, x->token_file, sizeof(x->token_file));
	if (r == 0)
		r = sc_get_str(c, m, path, "mount", false, x->mount, sizeof(x->mount));
	if (r == 0)
		r = sc_url_segments(c, m, path, "mount", x->mount, true);
	if (r == 0)
		r = sc_get_str(c, m, path, "role", true, x->role, sizeof(x->role));
	if (r == 0)
		r = sc_url_segments(c, m, path, "role", x->role, false);
	if (r == 0)
		r = sc_timeout(c, m, path, &x->timeout_ms);
	return r;
}

static int sc_external(const sc_ctx *c, const sc_node *ext, const char *path, ca_class_config *cfg)
{
	static const char *const known[] = {"cfssl", "vault", "keyAlgorithm",
	                                    "maxCertificateLifetime", "additionalTrustRoots"};
	static const char *const cfssl_known[] = {"url", "caFile", "authKeyFile", "profile",
	                                          "timeout"};
	static const char *const vault_known[] = {"url",   "caFile", "tokenFile",
	                                          "mount", "role",   "timeout"};
	const sc_node *cfssl, *vault;
	char p[SC_MAX_PATH];
	bool has;
	int r;

	cfg->backend = CA_BACKEND_EXTERNAL;
	cfg->auto_generate = false; /* the company CA signs; sigil holds no CA key */
	r = sc_map_check(c, ext, path, known, SIGIL_ARRAY_SIZE(known), true);
	if (r < 0)
		return r;
	r = sc_get_map(c, ext, path, "cfssl", cfssl_known, SIGIL_ARRAY_SIZE(cfssl_known), &cfssl);
	if (r < 0)
		return r;
	r = sc_get_map(c, ext, path, "vault", vault_known, SIGIL_ARRAY_SIZE(vault_known), &vault);
	if (r < 0)
		return r;
	if (!cfssl == !vault)
		return sc_fail(c, SIGIL_E_INVALID, path, ext->line,
		               "set exactly one of cfssl or vault");
	/* The company root that the external CA chains to: the bundle pods trust. */
	r = sc_trust_roots(c, ext, path, cfg);
	if (r < 0)
		return r;
	if (cfssl) {
		sc_path(p, sizeof(p), path, "cfssl");
		r = sc_cfssl(c, cfssl, p, &cfg->external);
	} else {
		sc_path(p, sizeof(p), path, "vault");
		r = sc_vault(c, vault, p, &cfg->external);
	}
	if (r < 0)
		return r;
	r = sc_get_keyalg(c, ext, path, "keyAlgorithm", &cfg->leaf_key_alg, &has);
	if (r < 0)
		return r;
	r = sc_get_duration(c, ext, path, "maxCertificateLifetime", &cfg->max_leaf_lifetime_secs,
	                    &has);
	if (r < 0)
		return r;
	if (cfg->max_leaf_lifetime_secs <= 0) {
		sc_path(p, sizeof(p), path, "maxCertificateLifetime");
		return sc_fail(c, SIGIL_E_INVALID, p, ext->line, "must be longer than 0s");
	}
	return 0;
}

/* ---- spec.backend.kerberosKeytab --------------------------------------------- */

static int sc_admin_keytab(const sc_ctx *c, const sc_node *kt, const char *path,
                           ca_kerberos_config *k)
{
	const sc_node *v = sc_field(c, kt, "adminKeytabSecret");
	char p[SC_MAX_PATH];
	ca_object_ref ref;
	bool has;
	int r;

	if (!v)
		return sc_missing(c, kt, path, "adminKeytabSecret");
	sc_path(p, sizeof(p), path, "adminKeytabSecret");
	if (v->kind == SC_SCALAR) {
		/* Standalone: a path.  Absolute, so it never reads as the
		 * "<namespace>/<name>" form of a Secret reference. */
		r = sc_str(c, v, p, k->admin_keytab, sizeof(k->admin_keytab));
		if (r < 0)
			return r;
		if (k->admin_keytab[0] != '/')
			return sc_fail(c, SIGIL_E_INVALID, p, v->line,
			               "a keytab path must be absolute (or give {name, namespace} "
			               "of a Secret)");
		return 0;
	}
	r = sc_get_ref(c, kt, path, "adminKeytabSecret", false, &ref, &has);
	if (r < 0)
		return r;
	if (strlen(ref.namespace_) + 1 + strlen(ref.name) >= sizeof(k->admin_keytab))
		return sc_fail(c, SIGIL_E_LIMIT, p, v->line,
		               "namespace/name is longer than %zu bytes",
		               sizeof(k->admin_keytab) - 1);
	size_t nl = strlen(ref.namespace_), ml = strlen(ref.name);
	memcpy(k->admin_keytab, ref.namespace_, nl);
	k->admin_keytab[nl] = '/';
	memcpy(k->admin_keytab + nl + 1, ref.name, ml + 1);
	return 0;
}

static int sc_kerberos(const sc_ctx *c, const sc_node *kt, const char *path, ca_class_config *cfg)
{
	static const char *const known[] = {"realmName", "kdc", "admin", "adminKeytabSecret",
	                                    "adminPrincipal"};
	static const char *const admin_known[] = {"mit", "activeDirectory"};
	static const char *const mit_known[] = {"kadminServer"};
	ca_kerberos_config *k = &cfg->kerberos;
	const sc_node *admin, *mit;
	char p[SC_MAX_PATH], mp[SC_MAX_PATH];
	int r;

	cfg->backend = CA_BACKEND_KERBEROS;
	cfg->auto_generate = false; /* no CA: keytabs come from the KDC */
	r = sc_map_check(c, kt, path, known, SIGIL_ARRAY_SIZE(known), true);
	if (r < 0)
		return r;
	r = sc_get_str(c, kt, path, "realmName", true, k->realm, sizeof(k->realm));
	if (r == 0)
		r = sc_check_token(c, kt, path, "realmName", k->realm);
	if (r == 0)
		r = sc_get_str(c, kt, path, "kdc", true, k->kdc, sizeof(k->kdc));
	if (r == 0)
		r = sc_check_token(c, kt, path, "kdc", k->kdc);
	if (r < 0)
		return r;
	r = sc_get_map(c, kt, path, "admin", admin_known, SIGIL_ARRAY_SIZE(admin_known), &admin);
	if (r < 0)
		return r;
	if (!admin)
		return sc_missing(c, kt, path, "admin");
	sc_path(p, sizeof(p), path, "admin");
	if (sc_field(c, admin, "activeDirectory")) {
		sc_path(mp, sizeof(mp), p, "activeDirectory");
		return sc_fail(c, SIGIL_E_INVALID, mp, admin->line,
		               "Active Directory administration is not supported by sigil yet");
	}
	r = sc_get_map(c, admin, p, "mit", mit_known, SIGIL_ARRAY_SIZE(mit_known), &mit);
	if (r < 0)
		return r;
	if (!mit)
		return sc_missing(c, admin, p, "mit");
	sc_path(mp, sizeof(mp), p, "mit");
	r = sc_get_str(c, mit, mp, "kadminServer", true, k->admin_server, sizeof(k->admin_server));
	if (r == 0)
		r = sc_check_token(c, mit, mp, "kadminServer", k->admin_server);
	if (r == 0)
		r = sc_admin_keytab(c, kt, path, k);
	if (r == 0)
		r = sc_get_str(c, kt, path, "adminPrincipal", true, k->admin_principal,
		               sizeof(k->admin_principal));
	if (r == 0)
		r = sc_check_token(c, kt, path, "adminPrincipal", k->admin_principal);
	return r;
}

/* ---- spec ------------------------------------------------------------------- */

static int sc_name_policy(const sc_ctx *c, const sc_node *spec, ca_class_config *cfg)
{
	static const char *const known[] = {"allowWildcards", "allowedDomains"};
	const char *path = "spec.namePolicy";
	const sc_node *np, *seq;
	char p[SC_MAX_PATH], ip[SC_MAX_PATH];
	size_t i = 0;
	int r;

	r = sc_get_map(c, spec, "spec", "namePolicy", known, SIGIL_ARRAY_SIZE(known), &np);
	if (r < 0 || !np)
		return r;
	r = sc_get_bool(c, np, path, "allowWildcards", &cfg->allow_wildcards, NULL);
	if (r < 0)
		return r;
	seq = sc_field(c, np, "allowedDomains");
	if (!seq)
		return 0;
	sc_path(p, sizeof(p), path, "allowedDomains");
	if (seq->kind != SC_SEQ)
		return sc_fail(c, SIGIL_E_INVALID, p, seq->line, "expected a list");
	if (seq->count > CA_CLASS_MAX_DOMAINS)
		return sc_fail(c, SIGIL_E_LIMIT, p, seq->line, "%u entries, the limit is %d",
		               seq->count, CA_CLASS_MAX_DOMAINS);
	for (const sc_node *e = sc_at(c, seq->first); e; e = sc_at(c, e->next), i++) {
		sc_path_index(ip, sizeof(ip), p, i);
		if (sc_is_null(e))
			return sc_fail(c, SIGIL_E_INVALID, ip, e->line, "empty domain");
		r = sc_str(c, e, ip, cfg->allowed_domains[i], sizeof(cfg->allowed_domains[i]));
		if (r < 0)
			return r;
		if (!sc_dns_name_ok(cfg->allowed_domains[i]))
			return sc_fail(c, SIGIL_E_INVALID, ip, e->line,
			               "not a lower-case DNS name (like example.com)");
	}
	cfg->n_allowed_domains = i;
	return 0;
}

static int sc_backend(const sc_ctx *c, const sc_node *backend, ca_class_config *cfg)
{
	static const char *const known[] = {"autoTls", "externalCa", "kerberosKeytab", "k8sSearch",
	                                    "experimentalCertManager"};
	const char *path = "spec.backend";
	const sc_node *found = NULL;
	size_t which = 0;
	char p[SC_MAX_PATH];
	int r;

	r = sc_map_check(c, backend, path, known, SIGIL_ARRAY_SIZE(known), true);
	if (r < 0)
		return r;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(known); i++) {
		const sc_node *v = sc_field(c, backend, known[i]);
		if (!v)
			continue;
		if (found)
			return sc_fail(c, SIGIL_E_INVALID, path, backend->line,
			               "only one backend may be set, found %s and %s", known[which],
			               known[i]);
		found = v;
		which = i;
	}
	if (!found)
		return sc_fail(c, SIGIL_E_INVALID, path, backend->line,
		               "no backend: set exactly one of autoTls, externalCa or "
		               "kerberosKeytab (an all-defaults class is `autoTls: {}`)");
	sc_path(p, sizeof(p), path, known[which]);
	switch (which) {
	case 0:
		r = sc_map_check(c, found, p,
		                 (const char *const[]){"ca", "additionalTrustRoots",
		                                       "maxCertificateLifetime", "keyAlgorithm"},
		                 4, true);
		return r < 0 ? r : sc_autotls(c, found, p, cfg);
	case 1: return sc_external(c, found, p, cfg);
	case 2: return sc_kerberos(c, found, p, cfg);
	default:
		return sc_fail(c, SIGIL_E_INVALID, p, found->line,
		               "%s backend is not supported by sigil yet", known[which]);
	}
}

static int sc_doc_class(const sc_ctx *c, const sc_node *root, ca_class_config *cfg)
{
	static const char *const top[] = {"apiVersion", "kind", "metadata", "spec", "status"};
	static const char *const spec_known[] = {"backend", "namePolicy"};
	char api[64] = "", kind[64] = "", name[CA_STORE_MAX_CLASS_LEN + 1] = "";
	char shown[SC_MAX_SHOW];
	const sc_node *meta, *spec, *backend;
	sigil_err e = {0};
	int r;

	if (root->kind != SC_MAP)
		return sc_fail(c, SIGIL_E_INVALID, NULL, root->line,
		               "a SecretClass document must be a mapping");
	r = sc_map_check(c, root, "", top, SIGIL_ARRAY_SIZE(top), true);
	if (r < 0)
		return r;
	r = sc_get_str(c, root, "", "apiVersion", true, api, sizeof(api));
	if (r < 0)
		return r;
	if (strcmp(api, CA_SECRETCLASS_API_SIGIL) && strcmp(api, CA_SECRETCLASS_API_STACKABLE) &&
	    strcmp(api, CA_SECRETCLASS_API_STACKABLE_V1))
		return sc_fail(
		    c, SIGIL_E_INVALID, "apiVersion", sc_field(c, root, "apiVersion")->line,
		    "\"%s\" is not supported; use %s (or %s)", sc_show(api, shown, sizeof(shown)),
		    CA_SECRETCLASS_API_SIGIL, CA_SECRETCLASS_API_STACKABLE);
	r = sc_get_str(c, root, "", "kind", true, kind, sizeof(kind));
	if (r < 0)
		return r;
	if (strcmp(kind, "SecretClass"))
		return sc_fail(c, SIGIL_E_INVALID, "kind", sc_field(c, root, "kind")->line,
		               "\"%s\" is not SecretClass", sc_show(kind, shown, sizeof(shown)));
	/* Unknown metadata (labels, annotations, managedFields...) is ignored. */
	meta = sc_field(c, root, "metadata");
	if (!meta)
		return sc_missing(c, root, "", "metadata");
	r = sc_map_check(c, meta, "metadata", (const char *const[]){"name"}, 1, false);
	if (r < 0)
		return r;
	r = sc_get_str(c, meta, "metadata", "name", true, name, sizeof(name));
	if (r < 0)
		return r;
	if (ca_store_check_class(name, &e) < 0)
		return sc_fail(c, e.code, "metadata.name", meta->line, "%s", e.msg);
	r = sc_get_map(c, root, "", "spec", spec_known, SIGIL_ARRAY_SIZE(spec_known), &spec);
	if (r < 0)
		return r;
	if (!spec)
		return sc_missing(c, root, "", "spec");
	ca_class_config_defaults(cfg, name);
	backend = sc_field(c, spec, "backend");
	if (!backend)
		return sc_missing(c, spec, "spec", "backend");
	r = sc_backend(c, backend, cfg);
	if (r < 0)
		return r;
	return sc_name_policy(c, spec, cfg);
}

/* ---- the YAML stream ----------------------------------------------------------- */

typedef struct sc_parse {
	yaml_parser_t yp;
	bool yp_ready;
	sc_tree tree;
	uint32_t stack[SC_MAX_DEPTH];
	size_t depth;
	size_t doc;
	bool stream_end;
	ca_class_config *classes;
	size_t doc_of[CA_SECRETCLASS_MAX_DOCS]; /* document of each class */
	size_t n;
	size_t cap;
	sigil_err *err;
	const char *text;
	size_t len;
} sc_parse;

static void sc_parse_done(sc_parse *p)
{
	if (p->yp_ready)
		yaml_parser_delete(&p->yp);
	sc_tree_free(&p->tree);
	free(p->classes);
}

static int sc_yaml_error(const sc_parse *p)
{
	const yaml_parser_t *y = &p->yp;
	const char *problem = y->problem ? y->problem : "unknown error";
	size_t doc = p->doc ? p->doc : 1;
	const char *hint = "";

	switch (y->error) {
	case YAML_MEMORY_ERROR:
		return sigil_err_set(p->err, SIGIL_E_NOMEM, "out of memory parsing YAML");
	case YAML_READER_ERROR:
		return sigil_err_set(p->err, SIGIL_E_INVALID,
		                     "document %zu: invalid YAML text at byte %zu: %s", doc,
		                     y->problem_offset, problem);
	case YAML_SCANNER_ERROR:
	case YAML_PARSER_ERROR:
		/* libyaml's word for a tab is "cannot start any token". */
		if (y->problem_mark.index < p->len && p->text[y->problem_mark.index] == '\t')
			hint = " (tabs cannot indent YAML; use spaces)";
		if (y->context)
			return sigil_err_set(
			    p->err, SIGIL_E_INVALID,
			    "document %zu (line %zu, column %zu): YAML syntax error: "
			    "%s (%s at line %zu)%s",
			    doc, y->problem_mark.line + 1, y->problem_mark.column + 1, problem,
			    y->context, y->context_mark.line + 1, hint);
		return sigil_err_set(p->err, SIGIL_E_INVALID,
		                     "document %zu (line %zu, column %zu): YAML syntax error: %s%s",
		                     doc, y->problem_mark.line + 1, y->problem_mark.column + 1,
		                     problem, hint);
	default:
		return sigil_err_set(p->err, SIGIL_E_INVALID, "document %zu: YAML error: %s", doc,
		                     problem);
	}
}

static int sc_finish_doc(sc_parse *p)
{
	sc_ctx c = {.t = &p->tree, .doc = p->doc, .err = p->err};
	const sc_node *root = p->tree.n ? &p->tree.nodes[0] : NULL;
	ca_class_config *cfg;
	int r;

	if (sc_is_null(root))
		return 0; /* an empty document, e.g. a trailing "---" */
	if (p->n >= p->cap)
		return sigil_err_set(p->err, SIGIL_E_LIMIT,
		                     "document %zu: more SecretClasses than the limit of %zu",
		                     p->doc, p->cap);
	cfg = &p->classes[p->n];
	r = sc_doc_class(&c, root, cfg);
	if (r < 0)
		return r;
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->classes[i].name, cfg->name))
			return sigil_err_set(
			    p->err, SIGIL_E_INVALID,
			    "document %zu: SecretClass \"%s\" is already defined by "
			    "document %zu",
			    p->doc, cfg->name, p->doc_of[i]);
	p->doc_of[p->n++] = p->doc;
	return 0;
}

static int sc_node_event(sc_parse *p, const yaml_event_t *ev, sc_kind kind)
{
	uint32_t line = (uint32_t)(ev->start_mark.line + 1);
	uint32_t parent = p->depth ? p->stack[p->depth - 1] : SC_NONE;
	const yaml_char_t *anchor = NULL, *tag = NULL;
	uint32_t idx;
	int r;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	default:
		return sigil_err_set(p->err, SIGIL_E_INTERNAL, "unexpected YAML event %d",
		                     (int)ev->type);
	}
	/* Anchors only exist for aliases, and aliases are how a few bytes of
	 * YAML expand into gigabytes (billion laughs); SecretClasses need
	 * neither, nor tags. */
	if (anchor)
		return sigil_err_set(p->err, SIGIL_E_INVALID,
		                     "document %zu (line %u): YAML anchors and aliases are not "
		                     "allowed",
		                     p->doc, line);
	if (tag)
		return sigil_err_set(p->err, SIGIL_E_INVALID,
		                     "document %zu (line %u): YAML tags are not allowed", p->doc,
		                     line);
	if (kind != SC_SCALAR && p->depth >= SC_MAX_DEPTH)
		return sigil_err_set(p->err, SIGIL_E_LIMIT,
		                     "document %zu (line %u): nested more than %d levels deep",
		                     p->doc, line, SC_MAX_DEPTH);
	r = sc_tree_add(&p->tree, kind, line, parent, &idx);
	if (r == SIGIL_E_LIMIT)
		return sigil_err_set(p->err, r, "document %zu (line %u): more than %d YAML nodes",
		                     p->doc, line, SC_MAX_NODES);
	if (r < 0)
		return sigil_err_set(p->err, r, "out of memory parsing YAML");
	if (kind == SC_SCALAR) {
		sc_node *n = &p->tree.nodes[idx];
		const char *v = (const char *)ev->data.scalar.value;
		size_t len = ev->data.scalar.length;

		/* "\0" escapes would silently cut C strings short. */
		if (memchr(v, '\0', len))
			return sigil_err_set(
			    p->err, SIGIL_E_INVALID,
			    "document %zu (line %u): NUL characters are not allowed", p->doc, line);
		n->value = sigil_strndup(v, len);
		if (!n->value)
			return sigil_err_set(p->err, SIGIL_E_NOMEM, "out of memory parsing YAML");
		n->len = len;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	} else {
		p->stack[p->depth++] = idx;
	}
	return 0;
}

static int sc_event(sc_parse *p, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		p->doc++;
		if (p->doc > CA_SECRETCLASS_MAX_DOCS)
			return sigil_err_set(p->err, SIGIL_E_LIMIT, "more than %d YAML documents",
			                     CA_SECRETCLASS_MAX_DOCS);
		sc_tree_reset(&p->tree);
		p->depth = 0;
		return 0;
	case YAML_DOCUMENT_END_EVENT: return sc_finish_doc(p);
	case YAML_ALIAS_EVENT:
		return sigil_err_set(p->err, SIGIL_E_INVALID,
		                     "document %zu (line %zu): YAML anchors and aliases are not "
		                     "allowed",
		                     p->doc, ev->start_mark.line + 1);
	case YAML_SCALAR_EVENT: return sc_node_event(p, ev, SC_SCALAR);
	case YAML_SEQUENCE_START_EVENT: return sc_node_event(p, ev, SC_SEQ);
	case YAML_MAPPING_START_EVENT: return sc_node_event(p, ev, SC_MAP);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (p->depth == 0)
			return sigil_err_set(p->err, SIGIL_E_INTERNAL, "unbalanced YAML events");
		p->depth--;
		return 0;
	case YAML_STREAM_END_EVENT: p->stream_end = true; return 0;
	case YAML_STREAM_START_EVENT:
	case YAML_NO_EVENT:
	default: return 0;
	}
}

int ca_secretclass_parse_yaml(const char *text, size_t len, ca_class_config *ret, size_t max,
                              size_t *n, sigil_err *err)
{
	sc_parse p = {.err = err, .text = text, .len = text ? len : 0};
	int r = 0;

	if (!ret && max)
		return sigil_err_set(err, SIGIL_E_INVALID, "no room for SecretClasses");
	if (!text && len)
		return sigil_err_set(err, SIGIL_E_INVALID, "no YAML text");
	if (len > CA_SECRETCLASS_MAX_YAML)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "SecretClass YAML is %zu bytes long, the limit is %d", len,
		                     CA_SECRETCLASS_MAX_YAML);
	p.cap = max < CA_SECRETCLASS_MAX_DOCS ? max : CA_SECRETCLASS_MAX_DOCS;
	p.classes = sigil_calloc(p.cap ? p.cap : 1, sizeof(*p.classes));
	if (!p.classes)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (!yaml_parser_initialize(&p.yp)) {
		sc_parse_done(&p);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	p.yp_ready = true;
	/* libyaml asserts on a NULL input, even an empty one. */
	yaml_parser_set_input_string(&p.yp, (const unsigned char *)(len ? text : ""), len);
	yaml_parser_set_encoding(&p.yp, YAML_UTF8_ENCODING);
	while (r == 0 && !p.stream_end) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&p.yp, &ev)) {
			r = sc_yaml_error(&p);
			break;
		}
		r = sc_event(&p, &ev);
		yaml_event_delete(&ev);
	}
	if (r == 0 && p.n == 0)
		r = sigil_err_set(err, SIGIL_E_INVALID,
		                  "no SecretClass found (the YAML is empty or only comments)");
	if (r == 0) {
		memcpy(ret, p.classes, p.n * sizeof(*ret));
		*n = p.n;
	}
	sc_parse_done(&p);
	return r;
}

/* ---- directories --------------------------------------------------------------- */

static bool sc_yaml_name(const char *name)
{
	size_t len = strlen(name);

	/* Hidden files include editors' swap files and the "..data" links of
	 * a mounted ConfigMap (whose visible names are links to it). */
	if (name[0] == '.')
		return false;
	return (len > 5 && !strcmp(name + len - 5, ".yaml")) ||
	       (len > 4 && !strcmp(name + len - 4, ".yml"));
}

static int sc_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct sc_names {
	char **v;
	size_t n;
} sc_names;

static void sc_names_free(sc_names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static void sc_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static void sc_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static int sc_list_dir(int dfd, const char *dir, sc_names *ret, sigil_err *err)
{
	_cleanup_(sc_closedirp) DIR *d = NULL;
	sc_names l = {0};
	struct dirent *de;
	int fd = dup(dfd);

	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot read directory %s", dir);
	d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return sigil_err_errno(err, e, "cannot read directory %s", dir);
	}
	l.v = calloc(SC_MAX_DIR_FILES, sizeof(*l.v));
	if (!l.v)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (!sc_yaml_name(de->d_name))
			continue;
		/* Follows links: a mounted ConfigMap's files are links. */
		if (fstatat(dfd, de->d_name, &st, 0) < 0) {
			int e = errno;
			sc_names_free(&l);
			return sigil_err_errno(err, e, "cannot stat %s/%s", dir, de->d_name);
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (l.n >= SC_MAX_DIR_FILES) {
			sc_names_free(&l);
			return sigil_err_set(err, SIGIL_E_LIMIT,
			                     "%s holds more than %d SecretClass files", dir,
			                     SC_MAX_DIR_FILES);
		}
		l.v[l.n] = strdup(de->d_name);
		if (!l.v[l.n]) {
			sc_names_free(&l);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
		l.n++;
		errno = 0;
	}
	if (errno) {
		int e = errno;
		sc_names_free(&l);
		return sigil_err_errno(err, e, "cannot read directory %s", dir);
	}
	qsort(l.v, l.n, sizeof(*l.v), sc_cmp_names);
	*ret = l;
	return 0;
}

int ca_secretclass_load_dir(const char *dir, ca_class_config *ret, size_t max, size_t *n,
                            sigil_err *err)
{
	_cleanup_(sc_closep) int dfd = -1;
	_cleanup_free_ ca_class_config *all = NULL;
	_cleanup_free_ ca_class_config *file = NULL;
	_cleanup_free_ size_t *file_of = NULL;
	sc_names names = {0};
	size_t total = 0;
	int r = 0;

	if (!dir)
		return sigil_err_set(err, SIGIL_E_INVALID, "no SecretClass directory");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ENOENT)
			return sigil_err_set(err, SIGIL_E_NOTFOUND,
			                     "SecretClass directory %s does not exist", dir);
		return sigil_err_errno(err, errno, "cannot open SecretClass directory %s", dir);
	}
	r = sc_list_dir(dfd, dir, &names, err);
	if (r < 0)
		return r;
	file = sigil_calloc(CA_SECRETCLASS_MAX_DOCS, sizeof(*file));
	all = sigil_calloc(max ? max : 1, sizeof(*all));
	file_of = sigil_calloc(max ? max : 1, sizeof(*file_of));
	if (!file || !all || !file_of) {
		sc_names_free(&names);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	for (size_t f = 0; f < names.n && r == 0; f++) {
		_cleanup_free_ uint8_t *text = NULL;
		size_t len = 0, k = 0;

		r = sigil_fs_read_file_at(dfd, names.v[f], CA_SECRETCLASS_MAX_YAML, &text, &len,
		                          err);
		if (r == 0)
			r = ca_secretclass_parse_yaml((const char *)text, len, file,
			                              CA_SECRETCLASS_MAX_DOCS, &k, err);
		if (r < 0) {
			sigil_err_prefix(err, "%s/%s: ", dir, names.v[f]);
			break;
		}
		if (k > max - total) {
			r = sigil_err_set(err, SIGIL_E_LIMIT,
			                  "%s/%s: more than %zu SecretClasses in %s", dir,
			                  names.v[f], max, dir);
			break;
		}
		for (size_t i = 0; i < k && r == 0; i++) {
			for (size_t j = 0; j < total; j++) {
				if (strcmp(all[j].name, file[i].name))
					continue;
				r = sigil_err_set(err, SIGIL_E_INVALID,
				                  "SecretClass \"%s\" is defined in both %s/%s and "
				                  "%s/%s",
				                  file[i].name, dir, names.v[file_of[j]], dir,
				                  names.v[f]);
				break;
			}
			if (r == 0) {
				all[total] = file[i];
				file_of[total++] = f;
			}
		}
	}
	sc_names_free(&names);
	if (r < 0)
		return r;
	if (total)
		memcpy(ret, all, total * sizeof(*ret));
	*n = total;
	return 0;
}
