/* Prometheus registry and text exposition format 0.0.4.
 *
 * Format reference: prometheus/docs "Exposition formats" (text-based
 * format): `# HELP name text` escapes '\' and newline; label values escape
 * '\', '"' and newline; values are Go ParseFloat-compatible floats with
 * "+Inf", "-Inf" and "NaN"; histograms expose cumulative `_bucket{le=..}`
 * series ending with le="+Inf", then `_sum` and `_count`. */
#include "metrics/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/mem.h"

const double metrics_latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					  0.25,  0.5,    1,     2.5,  5,     10};
const size_t metrics_latency_buckets_n = SIGIL_ARRAY_SIZE(metrics_latency_buckets);

#define METRICS_MAX_LIMIT (METRICS_DEFAULT_MAX_CHILDREN * 10)
#define METRICS_HASH_INIT 16

/* Own counter for updates that could not be recorded (see metrics.h). */
#define DROPPED_NAME "sigil_metrics_updates_dropped_total"

typedef enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
} metrics_type;

typedef struct metrics_child {
	struct metrics_child *hnext;      /* hash chain */
	struct metrics_child *prev, *next; /* creation order, for rendering */
	uint64_t hash;
	double value;     /* counter or gauge value; histogram sum */
	uint64_t count;   /* histogram observations */
	uint64_t *counts; /* histogram: per bucket (not cumulative), n_buckets + 1 */
	/* Label pairs pre-rendered and escaped, `a="x",b="y"` (no braces),
	 * so that a scrape of many children only copies bytes. */
	char *labels_text;
	size_t labels_text_len;
	char *values[]; /* n_labels raw values */
} metrics_child;

struct metrics_family {
	metrics_registry *reg;
	metrics_type type;
	char *name;
	char *help;
	size_t n_labels;
	char *labels[METRICS_MAX_LABELS];
	size_t n_buckets;
	double buckets[METRICS_MAX_BUCKETS];
	size_t max_children;

	pthread_mutex_t lock; /* guards everything below */
	metrics_child **table;
	size_t table_size; /* power of two */
	size_t n_children;
	metrics_child *first, *last;
};

typedef struct metrics_collector {
	metrics_collect_fn fn;
	void *userdata;
} metrics_collector;

struct metrics_registry {
	pthread_mutex_t lock; /* families and collectors lists */
	metrics_family *fams[METRICS_MAX_FAMILIES];
	size_t n_fams;
	metrics_collector collectors[METRICS_MAX_COLLECTORS];
	size_t n_collectors;
	/* Serializes renders, so that metrics_collect_remove can wait for a
	 * render that may be running a collector. */
	pthread_mutex_t render_lock;
	metrics_family *dropped;
};

/* ---- names and values ------------------------------------------------------ */

static bool name_char_ok(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (c == ':')
		return colon;
	return !first && c >= '0' && c <= '9';
}

static bool name_ok(const char *name, bool colon)
{
	size_t n;

	if (!name)
		return false;
	n = strnlen(name, METRICS_MAX_NAME + 1);
	if (n == 0 || n > METRICS_MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char_ok(name[i], i == 0, colon))
			return false;
	return true;
}

bool metrics_name_ok(const char *name)
{
	return name_ok(name, true);
}

bool metrics_label_name_ok(const char *name)
{
	/* Prometheus data model: label names beginning with "__" are reserved. */
	return name_ok(name, false) && strncmp(name, "__", 2) != 0;
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_ok(const unsigned char *s, size_t n)
{
	return metrics_utf8_ok((const char *)s, n);
}

bool metrics_utf8_ok(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

bool metrics_label_value_ok(const char *value)
{
	size_t n;

	if (!value)
		return false;
	n = strnlen(value, METRICS_MAX_LABEL_VALUE + 1);
	return n <= METRICS_MAX_LABEL_VALUE && utf8_ok((const unsigned char *)value, n);
}

/* Shortest text that Go's strconv.ParseFloat reads back as the same double
 * (what Prometheus' client_golang writes). */
static void format_double(char *buf, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(buf, size, "NaN");
	} else if (isinf(v)) {
		snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
	} else if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v &&
		   !(v == 0 && signbit(v))) {
		/* (range first: casting an out-of-range double is undefined) */
		/* Integral values (counts, unix times) are most of a scrape:
		 * print them without snprintf's float path. */
		char tmp[24];
		int64_t i = (int64_t)v;
		uint64_t u = i < 0 ? (uint64_t)(-i) : (uint64_t)i;
		size_t n = 0, k = 0;

		do {
			tmp[n++] = (char)('0' + u % 10);
			u /= 10;
		} while (u);
		if (i < 0 && k + 1 < size)
			buf[k++] = '-';
		while (n && k + 1 < size)
			buf[k++] = tmp[--n];
		buf[k] = '\0';
	} else {
		/* 17 significant digits always round-trip (IEEE 754 binary64). */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(buf, size, "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
	}
}

static void put_escaped(sigil_wbuf *b, const char *s, bool quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *rep = NULL;

		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '\n')
			rep = "\\n";
		else if (*s == '"' && quote)
			rep = "\\\"";
		if (!rep)
			continue;
		sigil_wbuf_put(b, run, (size_t)(s - run));
		sigil_wbuf_put(b, rep, 2);
		run = s + 1;
	}
	sigil_wbuf_put(b, run, (size_t)(s - run));
}

/* ---- families and children -------------------------------------------------- */

static inline uint64_t hash_mix(uint64_t h, uint64_t w)
{
	/* One multiply per 8 bytes (the per-byte FNV loop cost more than the
	 * mutex on the hot path); xor-shift spreads high bits into the index. */
	h = (h ^ w) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

static uint64_t hash_values(const metrics_family *fam, const char *const *values)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < fam->n_labels; i++) {
		const char *p = values[i];
		size_t n = strlen(p);
		uint64_t w;

		for (; n >= 8; n -= 8, p += 8) {
			memcpy(&w, p, 8);
			h = hash_mix(h, w);
		}
		w = 0;
		for (size_t k = 0; k < n; k++) /* (a sized memcpy would be a call) */
			w |= (uint64_t)(unsigned char)p[k] << (8 * k);
		/* The length ends each value, so ("ab","c") and ("a","bc") differ. */
		h = hash_mix(h, w);
		h = hash_mix(h, (uint64_t)(p - values[i]) + n);
	}
	return h;
}

static bool child_matches(const metrics_family *fam, const metrics_child *c, uint64_t h,
			  const char *const *values)
{
	if (c->hash != h)
		return false;
	for (size_t i = 0; i < fam->n_labels; i++)
		if (strcmp(c->values[i], values[i]) != 0)
			return false;
	return true;
}

/* With fam->lock held. */
static metrics_child **child_slot(metrics_family *fam, uint64_t h, const char *const *values)
{
	metrics_child **pp = &fam->table[h & (fam->table_size - 1)];

	while (*pp && !child_matches(fam, *pp, h, values))
		pp = &(*pp)->hnext;
	return pp;
}

static void child_free(metrics_child *c)
{
	if (!c)
		return;
	free(c->labels_text);
	free(c->counts);
	free(c);
}

static int family_grow(metrics_family *fam)
{
	size_t nsize = fam->table_size * 2;
	metrics_child **nt = calloc(nsize, sizeof(*nt));

	if (!nt)
		return SIGIL_E_NOMEM;
	for (size_t i = 0; i < fam->table_size; i++) {
		metrics_child *c = fam->table[i];

		while (c) {
			metrics_child *next = c->hnext;

			c->hnext = nt[c->hash & (nsize - 1)];
			nt[c->hash & (nsize - 1)] = c;
			c = next;
		}
	}
	free(fam->table);
	fam->table = nt;
	fam->table_size = nsize;
	return 0;
}

static metrics_child *child_new(const metrics_family *fam, uint64_t h, const char *const *values)
{
	size_t vlen = 0;
	metrics_child *c;
	char *p;
	sigil_wbuf lb;

	for (size_t i = 0; i < fam->n_labels; i++)
		vlen += strlen(values[i]) + 1;
	c = calloc(1, sizeof(*c) + fam->n_labels * sizeof(char *) + vlen);
	if (!c)
		return NULL;
	c->hash = h;
	p = (char *)&c->values[fam->n_labels];
	for (size_t i = 0; i < fam->n_labels; i++) {
		size_t n = strlen(values[i]) + 1;

		memcpy(p, values[i], n);
		c->values[i] = p;
		p += n;
	}
	sigil_wbuf_init(&lb, (size_t)METRICS_MAX_LABELS * (METRICS_MAX_NAME + 4 +
							   2 * METRICS_MAX_LABEL_VALUE + 1),
			false);
	for (size_t i = 0; i < fam->n_labels; i++) {
		sigil_wbuf_putf(&lb, "%s%s=\"", i ? "," : "", fam->labels[i]);
		put_escaped(&lb, values[i], true);
		sigil_wbuf_put(&lb, "\"", 1);
	}
	if (sigil_wbuf_status(&lb) < 0) {
		sigil_wbuf_free(&lb);
		free(c);
		return NULL;
	}
	c->labels_text = (char *)sigil_wbuf_steal(&lb, &c->labels_text_len);
	if (fam->type == METRICS_HISTOGRAM)
		c->counts = calloc(fam->n_buckets + 1, sizeof(*c->counts));
	if (!c->labels_text || (fam->type == METRICS_HISTOGRAM && !c->counts)) {
		child_free(c);
		return NULL;
	}
	return c;
}

static void count_drop(metrics_family *fam, const char *reason)
{
	metrics_family *d = fam->reg ? fam->reg->dropped : NULL;

	/* The drop counter does not count its own drops (no recursion). */
	if (d && d != fam) {
		const char *v[2] = {fam->name, reason};

		metrics_inc(d, v, 1);
	}
}

/* Looks up or creates the child for values, with fam->lock held.  NULL
 * with *reason set when the update must be dropped. */
static metrics_child *child_get(metrics_family *fam, const char *const *values, uint64_t h,
				const char **reason)
{
	metrics_child **pp;
	metrics_child *c;

	pp = child_slot(fam, h, values);
	if (*pp)
		return *pp;
	/* A new tuple: validate once, here, not on every update. */
	for (size_t i = 0; i < fam->n_labels; i++) {
		if (!metrics_label_value_ok(values[i])) {
			*reason = "invalid_label_value";
			return NULL;
		}
	}
	if (fam->n_children >= fam->max_children) {
		*reason = "limit";
		return NULL;
	}
	c = child_new(fam, h, values);
	if (!c) {
		*reason = "out_of_memory";
		return NULL;
	}
	/* Keep chains short: grow at a load factor of 1.  A failed growth
	 * only makes lookups slower. */
	if (fam->n_children + 1 > fam->table_size && family_grow(fam) == 0)
		pp = child_slot(fam, h, values);
	*pp = c;
	c->prev = fam->last;
	if (fam->last)
		fam->last->next = c;
	else
		fam->first = c;
	fam->last = c;
	fam->n_children++;
	return c;
}

static bool values_present(const metrics_family *fam, const char *const *values)
{
	if (fam->n_labels && !values)
		return false;
	for (size_t i = 0; i < fam->n_labels; i++)
		if (!values[i])
			return false;
	return true;
}

typedef enum update_op { OP_INC, OP_SET, OP_OBSERVE } update_op;

static void family_update(metrics_family *fam, const char *const *values, double v, update_op op)
{
	const char *reason = NULL;
	metrics_child *c;
	uint64_t h;

	if (!fam)
		return;
	switch (op) {
	case OP_INC:
		if (fam->type == METRICS_HISTOGRAM)
			reason = "wrong_type";
		else if (isnan(v) || (fam->type == METRICS_COUNTER && !(v >= 0)))
			reason = "invalid_value";
		break;
	case OP_SET:
		if (fam->type != METRICS_GAUGE)
			reason = "wrong_type";
		break;
	case OP_OBSERVE:
		if (fam->type != METRICS_HISTOGRAM)
			reason = "wrong_type";
		else if (isnan(v))
			reason = "invalid_value";
		break;
	default:
		reason = "wrong_type";
		break;
	}
	if (!reason && !values_present(fam, values))
		reason = "invalid_label_value";
	if (reason) {
		count_drop(fam, reason);
		return;
	}
	/* Hashed before locking: the lock is held only for the lookup. */
	h = hash_values(fam, values);
	pthread_mutex_lock(&fam->lock);
	c = child_get(fam, values, h, &reason);
	if (c) {
		switch (op) {
		case OP_INC:
			c->value += v;
			break;
		case OP_SET:
			c->value = v;
			break;
		case OP_OBSERVE: {
			size_t i = 0;

			/* Buckets are few (<= 32): a scan beats a bisection. */
			while (i < fam->n_buckets && v > fam->buckets[i])
				i++;
			c->counts[i]++;
			c->count++;
			c->value += v;
			break;
		}
		default:
			break;
		}
	}
	pthread_mutex_unlock(&fam->lock);
	/* Counted after unlocking: never hold two family locks. */
	if (!c)
		count_drop(fam, reason);
}

void metrics_inc(metrics_family *fam, const char *const *values, double v)
{
	family_update(fam, values, v, OP_INC);
}

void metrics_set(metrics_family *fam, const char *const *values, double v)
{
	family_update(fam, values, v, OP_SET);
}

void metrics_observe(metrics_family *fam, const char *const *values, double v)
{
	family_update(fam, values, v, OP_OBSERVE);
}

/* With fam->lock held. */
static void child_unlink(metrics_family *fam, metrics_child **pp)
{
	metrics_child *c = *pp;

	*pp = c->hnext;
	if (c->prev)
		c->prev->next = c->next;
	else
		fam->first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		fam->last = c->prev;
	fam->n_children--;
	child_free(c);
}

bool metrics_remove(metrics_family *fam, const char *const *values)
{
	metrics_child **pp;
	bool found = false;

	if (!fam || !values_present(fam, values))
		return false;
	pthread_mutex_lock(&fam->lock);
	pp = child_slot(fam, hash_values(fam, values), values);
	if (*pp) {
		child_unlink(fam, pp);
		found = true;
	}
	pthread_mutex_unlock(&fam->lock);
	return found;
}

void metrics_clear(metrics_family *fam)
{
	metrics_child *c;

	if (!fam)
		return;
	pthread_mutex_lock(&fam->lock);
	c = fam->first;
	while (c) {
		metrics_child *next = c->next;

		child_free(c);
		c = next;
	}
	memset(fam->table, 0, fam->table_size * sizeof(*fam->table));
	fam->first = fam->last = NULL;
	fam->n_children = 0;
	pthread_mutex_unlock(&fam->lock);
}

int metrics_get(metrics_family *fam, const char *const *values, double *ret)
{
	metrics_child **pp;
	int r = SIGIL_E_NOTFOUND;

	if (!fam || !values_present(fam, values))
		return SIGIL_E_INVALID;
	pthread_mutex_lock(&fam->lock);
	pp = child_slot(fam, hash_values(fam, values), values);
	if (*pp) {
		*ret = fam->type == METRICS_HISTOGRAM ? (double)(*pp)->count : (*pp)->value;
		r = 0;
	}
	pthread_mutex_unlock(&fam->lock);
	return r;
}

int metrics_family_set_limit(metrics_family *fam, size_t max_children, sigil_err *err)
{
	if (!fam || max_children < 1 || max_children > METRICS_MAX_LIMIT)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "metrics family limit must be 1..%u children",
				     (unsigned)METRICS_MAX_LIMIT);
	pthread_mutex_lock(&fam->lock);
	fam->max_children = max_children;
	pthread_mutex_unlock(&fam->lock);
	return 0;
}

static void family_free(metrics_family *fam)
{
	if (!fam)
		return;
	if (fam->table)
		metrics_clear(fam);
	free(fam->table);
	pthread_mutex_destroy(&fam->lock);
	for (size_t i = 0; i < fam->n_labels; i++)
		free(fam->labels[i]);
	free(fam->name);
	free(fam->help);
	free(fam);
}

/* Same type, help, label names and buckets. */
static bool family_same(const metrics_family *f, metrics_type type, const char *help,
			const char *const *labels, size_t n_labels, const double *buckets,
			size_t n_buckets)
{
	if (f->type != type || strcmp(f->help, help) != 0 || f->n_labels != n_labels ||
	    f->n_buckets != n_buckets)
		return false;
	for (size_t i = 0; i < n_labels; i++)
		if (strcmp(f->labels[i], labels[i]) != 0)
			return false;
	for (size_t i = 0; i < n_buckets; i++)
		if (f->buckets[i] != buckets[i])
			return false;
	return true;
}

static int family_check(const char *name, const char *help, const char *const *labels,
			size_t n_labels, metrics_type type, const double *buckets,
			size_t n_buckets, sigil_err *err)
{
	if (!metrics_name_ok(name))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "metric name \"%.*s\" is not [a-zA-Z_:][a-zA-Z0-9_:]* "
				     "of at most %d bytes",
				     METRICS_MAX_NAME, name ? name : "", METRICS_MAX_NAME);
	if (!help || strnlen(help, METRICS_MAX_HELP + 1) > METRICS_MAX_HELP ||
	    !utf8_ok((const unsigned char *)help, strlen(help)))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "metric %s: help must be UTF-8 of at most %d bytes", name,
				     METRICS_MAX_HELP);
	if (n_labels > METRICS_MAX_LABELS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "metric %s: more than %d labels", name,
				     METRICS_MAX_LABELS);
	if (n_labels && !labels)
		return sigil_err_set(err, SIGIL_E_INVALID, "metric %s: label names missing",
				     name);
	for (size_t i = 0; i < n_labels; i++) {
		if (!metrics_label_name_ok(labels[i]))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "metric %s: label name \"%.*s\" is not "
					     "[a-zA-Z_][a-zA-Z0-9_]* (nor starts with __)",
					     name, METRICS_MAX_NAME, labels[i] ? labels[i] : "");
		if (type == METRICS_HISTOGRAM && strcmp(labels[i], "le") == 0)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "histogram %s: label \"le\" is reserved for buckets",
					     name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(labels[i], labels[j]) == 0)
				return sigil_err_set(err, SIGIL_E_INVALID,
						     "metric %s: label %s given twice", name,
						     labels[i]);
	}
	if (type != METRICS_HISTOGRAM)
		return 0;
	if (n_buckets < 1 || n_buckets > METRICS_MAX_BUCKETS || !buckets)
		return sigil_err_set(err, SIGIL_E_LIMIT, "histogram %s: needs 1..%d buckets",
				     name, METRICS_MAX_BUCKETS);
	for (size_t i = 0; i < n_buckets; i++)
		if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "histogram %s: buckets must be finite and strictly "
					     "increasing (+Inf is implicit)",
					     name);
	return 0;
}

/* The three suffixes a histogram adds must not collide with other names;
 * Prometheus would see two families with one series name.  With reg->lock. */
static bool name_taken(const metrics_registry *reg, const char *name, metrics_type type)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	size_t n = strlen(name);

	for (size_t i = 0; i < reg->n_fams; i++) {
		const metrics_family *f = reg->fams[i];
		size_t fn = strlen(f->name);

		for (size_t s = 0; s < SIGIL_ARRAY_SIZE(sfx); s++) {
			size_t sn = strlen(sfx[s]);

			/* new histogram "x" vs existing "x_sum"; existing
			 * histogram "x" vs new "x_sum" */
			if (type == METRICS_HISTOGRAM && fn == n + sn &&
			    strncmp(f->name, name, n) == 0 && strcmp(f->name + n, sfx[s]) == 0)
				return true;
			if (f->type == METRICS_HISTOGRAM && n == fn + sn &&
			    strncmp(name, f->name, fn) == 0 && strcmp(name + fn, sfx[s]) == 0)
				return true;
		}
	}
	return false;
}

static int family_register(metrics_registry *reg, metrics_type type, const char *name,
			   const char *help, const char *const *labels, size_t n_labels,
			   const double *buckets, size_t n_buckets, metrics_family **ret,
			   sigil_err *err)
{
	metrics_family *fam = NULL;
	int r;

	if (!reg)
		return sigil_err_set(err, SIGIL_E_INVALID, "no metrics registry");
	r = family_check(name, help, labels, n_labels, type, buckets, n_buckets, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->n_fams; i++) {
		metrics_family *f = reg->fams[i];

		if (strcmp(f->name, name) != 0)
			continue;
		if (!family_same(f, type, help, labels, n_labels, buckets, n_buckets)) {
			r = sigil_err_set(err, SIGIL_E_EXISTS,
					  "metric %s is already registered with another type, "
					  "help, labels or buckets",
					  name);
			goto out;
		}
		*ret = f;
		r = 0;
		goto out;
	}
	if (name_taken(reg, name, type)) {
		r = sigil_err_set(err, SIGIL_E_EXISTS,
				  "metric %s collides with a histogram's _bucket/_sum/_count series",
				  name);
		goto out;
	}
	if (reg->n_fams >= METRICS_MAX_FAMILIES) {
		r = sigil_err_set(err, SIGIL_E_LIMIT, "more than %d metric families",
				  METRICS_MAX_FAMILIES);
		goto out;
	}
	fam = calloc(1, sizeof(*fam));
	if (!fam)
		goto nomem;
	pthread_mutex_init(&fam->lock, NULL);
	fam->reg = reg;
	fam->type = type;
	fam->max_children = METRICS_DEFAULT_MAX_CHILDREN;
	fam->name = strdup(name);
	fam->help = strdup(help);
	fam->table_size = METRICS_HASH_INIT;
	fam->table = calloc(fam->table_size, sizeof(*fam->table));
	if (!fam->name || !fam->help || !fam->table)
		goto nomem;
	for (size_t i = 0; i < n_labels; i++) {
		fam->labels[i] = strdup(labels[i]);
		if (!fam->labels[i])
			goto nomem;
		fam->n_labels = i + 1;
	}
	fam->n_buckets = n_buckets;
	if (n_buckets)
		memcpy(fam->buckets, buckets, n_buckets * sizeof(*buckets));
	/* An unlabeled metric exists from the start (value 0), as client
	 * libraries do, so that rate() and absent() see it. */
	if (n_labels == 0) {
		const char *reason = NULL;

		pthread_mutex_lock(&fam->lock);
		metrics_child *c = child_get(fam, NULL, hash_values(fam, NULL), &reason);
		pthread_mutex_unlock(&fam->lock);
		if (!c)
			goto nomem;
	}
	reg->fams[reg->n_fams++] = fam;
	*ret = fam;
	r = 0;
	goto out;
nomem:
	family_free(fam);
	r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory registering metric %s", name);
out:
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int metrics_counter(metrics_registry *reg, const char *name, const char *help,
		    const char *const *labels, size_t n_labels, metrics_family **ret,
		    sigil_err *err)
{
	return family_register(reg, METRICS_COUNTER, name, help, labels, n_labels, NULL, 0, ret,
			       err);
}

int metrics_gauge(metrics_registry *reg, const char *name, const char *help,
		  const char *const *labels, size_t n_labels, metrics_family **ret,
		  sigil_err *err)
{
	return family_register(reg, METRICS_GAUGE, name, help, labels, n_labels, NULL, 0, ret,
			       err);
}

int metrics_histogram(metrics_registry *reg, const char *name, const char *help,
		      const char *const *labels, size_t n_labels, const double *buckets,
		      size_t n_buckets, metrics_family **ret, sigil_err *err)
{
	return family_register(reg, METRICS_HISTOGRAM, name, help, labels, n_labels, buckets,
			       n_buckets, ret, err);
}

/* ---- registry ------------------------------------------------------------------ */

metrics_registry *metrics_registry_new(void)
{
	static const char *const dl[] = {"family", "reason"};
	metrics_registry *reg = calloc(1, sizeof(*reg));
	metrics_family *d = NULL;

	if (!reg)
		return NULL;
	pthread_mutex_init(&reg->lock, NULL);
	pthread_mutex_init(&reg->render_lock, NULL);
	if (metrics_counter(reg, DROPPED_NAME,
			    "Metric updates that could not be recorded (family full, bad label "
			    "value, wrong type or value).",
			    dl, 2, &d, NULL) < 0) {
		metrics_registry_free(reg);
		return NULL;
	}
	reg->dropped = d;
	return reg;
}

void metrics_registry_free(metrics_registry *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->n_fams; i++)
		family_free(reg->fams[i]);
	pthread_mutex_destroy(&reg->lock);
	pthread_mutex_destroy(&reg->render_lock);
	free(reg);
}

int metrics_collect_add(metrics_registry *reg, metrics_collect_fn fn, void *userdata,
			sigil_err *err)
{
	int r = 0;

	if (!reg || !fn)
		return sigil_err_set(err, SIGIL_E_INVALID, "no registry or collect function");
	pthread_mutex_lock(&reg->lock);
	if (reg->n_collectors >= METRICS_MAX_COLLECTORS)
		r = sigil_err_set(err, SIGIL_E_LIMIT, "more than %d metric collectors",
				  METRICS_MAX_COLLECTORS);
	else
		reg->collectors[reg->n_collectors++] = (metrics_collector){fn, userdata};
	pthread_mutex_unlock(&reg->lock);
	return r;
}

void metrics_collect_remove(metrics_registry *reg, metrics_collect_fn fn, void *userdata)
{
	if (!reg)
		return;
	/* Taking render_lock waits for a running render (which may be inside
	 * fn) to finish.  A collector must therefore not call this. */
	pthread_mutex_lock(&reg->render_lock);
	pthread_mutex_lock(&reg->lock);
	for (size_t i = 0; i < reg->n_collectors; i++) {
		if (reg->collectors[i].fn == fn && reg->collectors[i].userdata == userdata) {
			memmove(&reg->collectors[i], &reg->collectors[i + 1],
				(reg->n_collectors - i - 1) * sizeof(reg->collectors[0]));
			reg->n_collectors--;
			break;
		}
	}
	pthread_mutex_unlock(&reg->lock);
	pthread_mutex_unlock(&reg->render_lock);
}

/* ---- rendering ----------------------------------------------------------------- */

static void put_series(sigil_wbuf *b, const char *name, const char *suffix,
		       const metrics_child *c, const char *le, double v)
{
	char num[40];
	bool braces = c->labels_text_len > 0 || le;

	sigil_wbuf_put(b, name, strlen(name));
	sigil_wbuf_put(b, suffix, strlen(suffix));
	if (braces)
		sigil_wbuf_put(b, "{", 1);
	sigil_wbuf_put(b, c->labels_text, c->labels_text_len);
	if (le) {
		if (c->labels_text_len)
			sigil_wbuf_put(b, ",", 1);
		sigil_wbuf_put(b, "le=\"", 4);
		sigil_wbuf_put(b, le, strlen(le));
		sigil_wbuf_put(b, "\"", 1);
	}
	if (braces)
		sigil_wbuf_put(b, "}", 1);
	format_double(num, sizeof(num), v);
	sigil_wbuf_put(b, " ", 1);
	sigil_wbuf_put(b, num, strlen(num));
	sigil_wbuf_put(b, "\n", 1);
}

static void family_render(metrics_family *fam, sigil_wbuf *b)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	char les[METRICS_MAX_BUCKETS][40];

	for (size_t i = 0; i < fam->n_buckets; i++)
		format_double(les[i], sizeof(les[i]), fam->buckets[i]);
	pthread_mutex_lock(&fam->lock);
	/* A labeled family without children has nothing to show (as
	 * client_golang does). */
	if (fam->first) {
		sigil_wbuf_putf(b, "# HELP %s ", fam->name);
		put_escaped(b, fam->help, false);
		sigil_wbuf_putf(b, "\n# TYPE %s %s\n", fam->name, types[fam->type]);
	}
	for (const metrics_child *c = fam->first; c; c = c->next) {
		if (fam->type != METRICS_HISTOGRAM) {
			put_series(b, fam->name, "", c, NULL, c->value);
			continue;
		}
		uint64_t cum = 0;

		for (size_t i = 0; i < fam->n_buckets; i++) {
			cum += c->counts[i];
			put_series(b, fam->name, "_bucket", c, les[i], (double)cum);
		}
		put_series(b, fam->name, "_bucket", c, "+Inf", (double)c->count);
		put_series(b, fam->name, "_sum", c, NULL, c->value);
		put_series(b, fam->name, "_count", c, NULL, (double)c->count);
	}
	pthread_mutex_unlock(&fam->lock);
}

int metrics_render(metrics_registry *reg, char **ret, size_t *len, sigil_err *err)
{
	metrics_collector cols[METRICS_MAX_COLLECTORS];
	metrics_family *fams[METRICS_MAX_FAMILIES];
	size_t n_cols, n_fams, n = 0;
	sigil_wbuf b;
	char *out;
	int r;

	if (!reg)
		return sigil_err_set(err, SIGIL_E_INVALID, "no metrics registry");
	pthread_mutex_lock(&reg->render_lock);
	pthread_mutex_lock(&reg->lock);
	n_cols = reg->n_collectors;
	memcpy(cols, reg->collectors, n_cols * sizeof(cols[0]));
	pthread_mutex_unlock(&reg->lock);
	/* Collectors run without reg->lock: they update families. */
	for (size_t i = 0; i < n_cols; i++)
		cols[i].fn(reg, cols[i].userdata);
	/* Families are never removed before metrics_registry_free, so the
	 * snapshot of pointers stays valid. */
	pthread_mutex_lock(&reg->lock);
	n_fams = reg->n_fams;
	memcpy(fams, reg->fams, n_fams * sizeof(fams[0]));
	pthread_mutex_unlock(&reg->lock);

	sigil_wbuf_init(&b, METRICS_MAX_RENDER, false);
	for (size_t i = 0; i < n_fams; i++)
		family_render(fams[i], &b);
	pthread_mutex_unlock(&reg->render_lock);
	r = sigil_wbuf_status(&b);
	if (r < 0) {
		sigil_wbuf_free(&b);
		return sigil_err_set(err, r,
				     r == SIGIL_E_LIMIT ? "metrics exposition exceeds %u bytes"
							: "out of memory rendering metrics (%u max)",
				     METRICS_MAX_RENDER);
	}
	out = (char *)sigil_wbuf_steal(&b, &n);
	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory rendering metrics");
	*ret = out;
	*len = n;
	return 0;
}
