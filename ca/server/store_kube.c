/* The Kubernetes Secret CA store (see store_kube.h for the layout and the
 * guarantees).
 *
 * It lives in ca/server (library sigil_caserver, which links the
 * Kubernetes client) rather than ca/, because sigil_ca is linked into
 * sigil-csi too, which has no use for a Secret store.
 *
 * Secret bytes: the record text and its base64 form are wiped once we are
 * done with them.  jansson keeps its own copies of every string it holds
 * (the request body we build, the Secret we read), and it frees them
 * without wiping (kube/client.h); that is outside what this file can do. */
#define _GNU_SOURCE
#include "ca/server/store_kube.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/evp.h>

#include "util/log.h"
#include "util/mem.h"

#define LOCK_SUFFIX "-lock"
/* Bound on distinct classes locked through one store. */
#define KSTORE_MAX_LOCKS 1024
/* Bound on the data keys of one Secret examined by load (generations plus
 * anything somebody added). */
#define KSTORE_MAX_KEYS 4096
/* base64 of one record (4/3 of CA_STORE_MAX_RECORD_SIZE, rounded up). */
#define KSTORE_MAX_B64 (((CA_STORE_MAX_RECORD_SIZE + 2) / 3) * 4)
/* Poll interval while another replica holds the Lease. */
#define KSTORE_LOCK_POLL_MIN_MS 100
#define KSTORE_LOCK_POLL_MAX_MS 1000
/* The names and messages that go in errors. */
#define KSTORE_MAX_WHAT 600


typedef struct kube_lock {
	struct kube_lock *next;
	char class_name[CA_STORE_MAX_CLASS_LEN + 1];
	pthread_mutex_t mutex; /* held from lock to unlock: excludes threads */
	/* Guarded by kube_store.locks_mutex. */
	bool held;
	pthread_t owner;
	json_t *lease; /* the Lease as our acquiring write stored it */
} kube_lock;

typedef struct kube_store {
	ca_store base;
	kube_client *client; /* borrowed */
	char *ns;
	char *prefix;
	char *holder;
	pthread_mutex_t locks_mutex;
	kube_lock *locks;
	size_t nlocks;
} kube_store;

static kube_store *to_kube(ca_store *s)
{
	return (kube_store *)s;
}

/* ---- names ----------------------------------------------------------------------- */

/* An RFC 1123 subdomain, as the apiserver requires of Secret and Lease
 * names: '.'-separated labels of lower-case alphanumerics and '-', each
 * starting and ending with an alphanumeric. */
static bool dns_subdomain_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > KUBE_MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		bool label_edge = i == 0 || i + 1 == len || s[i - 1] == '.' || s[i + 1] == '.';

		if (alnum)
			continue;
		if (c == '-' && !label_edge)
			continue;
		if (c == '.' && i > 0 && i + 1 < len && s[i - 1] != '.')
			continue;
		return false;
	}
	return true;
}

/* "<prefix>-<class><suffix>", checked to be a valid object name. */
static int object_name(const kube_store *ks, const char *class_name, const char *suffix,
		       char buf[KUBE_MAX_NAME + 1], sigil_err *err)
{
	int r = ca_store_check_class(class_name, err);
	int n;

	if (r < 0)
		return r;
	n = snprintf(buf, KUBE_MAX_NAME + 1, "%s-%s%s", ks->prefix, class_name, suffix);
	if (n < 0 || n > KUBE_MAX_NAME || !dns_subdomain_ok(buf))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "CA class %s gives the object name \"%s-%s%s\", which Kubernetes "
				     "does not accept: a class name must end with a letter or digit, "
				     "and each '.'-separated part must start and end with one",
				     class_name, ks->prefix, class_name, suffix);
	return 0;
}

/* ---- base64 (standard alphabet with padding, as Secret data is) ------------------ */

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Strict: no white space, length a multiple of 4, '=' only as the last one
 * or two characters.  *ret is NUL-terminated, free with
 * sigil_freezero(*ret, *ret_len + 1). */
static int b64_decode(const char *in, size_t in_len, uint8_t **ret, size_t *ret_len)
{
	size_t pad = 0, out_len;
	uint8_t *out;
	int n;

	if (in_len == 0 || in_len % 4 != 0 || in_len > KSTORE_MAX_B64)
		return SIGIL_E_CORRUPT;
	for (size_t i = 0; i < in_len; i++) {
		if (in[i] == '=') {
			if (i + 2 < in_len)
				return SIGIL_E_CORRUPT;
			pad++;
		} else if (pad > 0 || !b64_char(in[i])) {
			return SIGIL_E_CORRUPT;
		}
	}
	out_len = in_len / 4 * 3;
	out = malloc(out_len + 1);
	if (!out)
		return SIGIL_E_NOMEM;
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)in_len);
	if (n < 0 || (size_t)n != out_len) {
		sigil_freezero(out, out_len + 1);
		return SIGIL_E_CORRUPT;
	}
	out_len -= pad;
	out[out_len] = '\0';
	*ret = out;
	*ret_len = out_len;
	return 0;
}

/* *ret is secret: free with sigil_freezero(*ret, *ret_len + 1). */
static int b64_encode(const char *in, size_t len, char **ret, size_t *ret_len)
{
	size_t out_len = (len + 2) / 3 * 4;
	char *out;

	if (len > CA_STORE_MAX_RECORD_SIZE)
		return SIGIL_E_LIMIT;
	out = malloc(out_len + 1);
	if (!out)
		return SIGIL_E_NOMEM;
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
	out[out_len] = '\0';
	*ret = out;
	*ret_len = out_len;
	return 0;
}

/* ---- time ---------------------------------------------------------------------- */

static bool digits(const char *s, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return true;
}

int ca_store_kube_parse_time(const char *s, time_t *ret)
{
	struct tm tm = {0};
	int year, mon, day, hh, mm, ss, oh = 0, om = 0, sign = 0;
	const char *p;
	time_t t;
	size_t frac = 0;

	if (!s || strnlen(s, 64) < 20)
		return SIGIL_E_INVALID;
	if (!digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &mon) || s[7] != '-' ||
	    !digits(s + 8, 2, &day) || s[10] != 'T' || !digits(s + 11, 2, &hh) || s[13] != ':' ||
	    !digits(s + 14, 2, &mm) || s[16] != ':' || !digits(s + 17, 2, &ss))
		return SIGIL_E_INVALID;
	p = s + 19;
	if (*p == '.') {
		/* Go writes up to 9 fraction digits (RFC 3339 time-secfrac). */
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (++frac > 9)
				return SIGIL_E_INVALID;
		if (frac == 0)
			return SIGIL_E_INVALID;
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 ||
		    om > 59)
			return SIGIL_E_INVALID;
		p += 6;
	} else {
		return SIGIL_E_INVALID;
	}
	if (*p != '\0')
		return SIGIL_E_INVALID;
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
		return SIGIL_E_INVALID;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	t = timegm(&tm);
	/* timegm normalises 31 February into March: refuse what moved. */
	if (t == (time_t)-1 || tm.tm_mday != day || tm.tm_mon != mon - 1)
		return SIGIL_E_INVALID;
	*ret = t - sign * (oh * 3600 + om * 60);
	return 0;
}

/* metav1.MicroTime as the apiserver writes it. */
#define MICRO_TIME_LEN 48
static void format_micro_time(char buf[MICRO_TIME_LEN])
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		base[0] = '\0';
	snprintf(buf, MICRO_TIME_LEN, "%.31s.%06dZ", base, (int)(ts.tv_nsec / 1000) % 1000000);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Up to 50% random extra, so that replicas waiting together do not poll
 * in lock step. */
static long jitter_ms(long base)
{
	unsigned r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (unsigned)mono_ms();
	return base + (long)(r % (unsigned)(base / 2 + 1));
}

/* ---- objects --------------------------------------------------------------------- */

static bool object_is_managed(const json_t *obj)
{
	const json_t *v = json_object_get(json_object_get(json_object_get(obj, "metadata"),
							  "labels"),
					  CA_STORE_KUBE_MANAGED_LABEL);

	return json_is_string(v) && !strcmp(json_string_value(v), CA_STORE_KUBE_MANAGED_VALUE);
}

/* A Secret that is ours: labelled and of our type.  Anything else with
 * that name belongs to somebody else and is never written. */
static int secret_check_ours(const json_t *secret, const char *what, sigil_err *err)
{
	const json_t *type = json_object_get(secret, "type");

	if (!json_is_object(secret))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s is not an object", what);
	if (!object_is_managed(secret))
		return sigil_err_set(err, SIGIL_E_PRECOND,
				     "%s exists but is not managed by sigil (no label "
				     CA_STORE_KUBE_MANAGED_LABEL "=" CA_STORE_KUBE_MANAGED_VALUE
				     "); refusing to use or overwrite it: remove it or choose "
				     "another CA store name prefix",
				     what);
	if (!json_is_string(type) || strcmp(json_string_value(type), CA_STORE_KUBE_SECRET_TYPE))
		return sigil_err_set(err, SIGIL_E_PRECOND,
				     "%s is labelled as sigil's but its type is not "
				     CA_STORE_KUBE_SECRET_TYPE "; refusing to use or overwrite it",
				     what);
	return 0;
}

static int cmp_rec(const void *a, const void *b)
{
	uint64_t x = ((const ca_store_record *)a)->generation;
	uint64_t y = ((const ca_store_record *)b)->generation;

	return x < y ? -1 : x > y;
}

int ca_store_kube_parse_secret(const json_t *secret, const char *what, ca_store_record **ret,
			       size_t *ret_n, sigil_err *err)
{
	const json_t *data, *value;
	const char *key;
	ca_store_record *recs = NULL;
	size_t n = 0, nkeys;
	int r;

	r = secret_check_ours(secret, what, err);
	if (r < 0)
		return r;
	data = json_object_get(secret, "data");
	/* The apiserver drops an empty data map. */
	if (!data || json_is_null(data)) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	if (!json_is_object(data))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: data is not a map", what);
	nkeys = json_object_size(data);
	if (nkeys == 0) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	if (nkeys > KSTORE_MAX_KEYS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s holds more than %d data keys", what,
				     KSTORE_MAX_KEYS);
	if (nkeys > CA_STORE_MAX_GENERATIONS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s holds more than %d CA generations",
				     what, CA_STORE_MAX_GENERATIONS);
	recs = sigil_calloc(nkeys, sizeof(*recs));
	if (!recs)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	json_object_foreach((json_t *)data, key, value) {
		char kwhat[KSTORE_MAX_WHAT];
		uint8_t *bytes = NULL;
		size_t len = 0;
		uint64_t g;

		snprintf(kwhat, sizeof(kwhat), "%s key %.80s", what, key);
		/* Strict: a key we did not write means somebody edited the
		 * Secret; refuse the class rather than guess. */
		if (!ca_store_gen_parse(key, &g)) {
			r = sigil_err_set(err, SIGIL_E_CORRUPT,
					  "%s: not a CA generation (expected gen-<16 hex digits>.pem)",
					  kwhat);
			goto fail;
		}
		if (!json_is_string(value)) {
			r = sigil_err_set(err, SIGIL_E_CORRUPT, "%s: value is not a string", kwhat);
			goto fail;
		}
		r = b64_decode(json_string_value(value), json_string_length(value), &bytes, &len);
		if (r == SIGIL_E_NOMEM) {
			r = sigil_err_set(err, r, "out of memory");
			goto fail;
		}
		if (r < 0) {
			r = sigil_err_set(err, SIGIL_E_CORRUPT,
					  "%s: value is not base64 of at most %u bytes", kwhat,
					  CA_STORE_MAX_RECORD_SIZE);
			goto fail;
		}
		r = ca_store_record_parse(kwhat, (const char *)bytes, len, &recs[n], err);
		sigil_freezero(bytes, len + 1);
		if (r < 0)
			goto fail;
		recs[n++].generation = g;
	}
	qsort(recs, n, sizeof(*recs), cmp_rec);
	*ret = recs;
	*ret_n = n;
	return 0;
fail:
	/* Refuse the whole class: a silently skipped generation could be the
	 * one that signed certificates in use. */
	ca_store_records_free(recs, n);
	return r;
}

/* ---- the store --------------------------------------------------------------------- */

static void secret_what(const kube_store *ks, const char *name, char buf[KSTORE_MAX_WHAT])
{
	snprintf(buf, KSTORE_MAX_WHAT, "CA store Secret %s/%s", ks->ns, name);
}

/* GET the class's Secret: *ret NULL when there is none. */
static int kstore_get_secret(kube_store *ks, const char *name, json_t **ret, sigil_err *err)
{
	json_t *obj = NULL;
	int r = kube_client_get(ks->client, &kube_res_secrets, ks->ns, name, &obj, err);

	if (r == SIGIL_E_NOTFOUND) {
		sigil_err_clear(err);
		*ret = NULL;
		return 0;
	}
	if (r < 0)
		return r;
	*ret = obj;
	return 0;
}

static int kstore_load(ca_store *s, const char *class_name, ca_store_record **ret,
		       size_t *ret_n, sigil_err *err)
{
	kube_store *ks = to_kube(s);
	_cleanup_(json_decrefp) json_t *secret = NULL;
	char name[KUBE_MAX_NAME + 1], what[KSTORE_MAX_WHAT];
	int r;

	r = object_name(ks, class_name, "", name, err);
	if (r < 0)
		return r;
	r = kstore_get_secret(ks, name, &secret, err);
	if (r < 0)
		return r;
	if (!secret) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	secret_what(ks, name, what);
	r = ca_store_kube_parse_secret(secret, what, ret, ret_n, err);
	if (r == SIGIL_E_CORRUPT)
		sigil_err_prefix(err, "class %s: ", class_name);
	return r;
}

/* The total size of a Secret's data values (base64 text). */
static size_t secret_data_size(const json_t *data)
{
	const char *key;
	const json_t *v;
	size_t total = 0;

	json_object_foreach((json_t *)data, key, v)
		total += strlen(key) + json_string_length(v);
	return total;
}

static json_t *new_managed_metadata(const char *name, const char *ns)
{
	return json_pack("{s:s, s:s, s:{s:s}}", "name", name, "namespace", ns, "labels",
			 CA_STORE_KUBE_MANAGED_LABEL, CA_STORE_KUBE_MANAGED_VALUE);
}

/* One attempt at adding key=b64 to the Secret.  1: lost a race, re-read. */
static int kstore_put_once(kube_store *ks, const char *name, const char *what, const char *key,
			   const char *b64, sigil_err *err)
{
	_cleanup_(json_decrefp) json_t *secret = NULL;
	json_t *data;
	int r;

	r = kstore_get_secret(ks, name, &secret, err);
	if (r < 0)
		return r;
	if (!secret) {
		_cleanup_(json_decrefp) json_t *obj = json_pack(
		    "{s:s, s:s, s:o, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Secret",
		    "metadata", new_managed_metadata(name, ks->ns), "type",
		    CA_STORE_KUBE_SECRET_TYPE, "data", key, b64);

		if (!obj)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		r = kube_client_create(ks->client, &kube_res_secrets, ks->ns, obj, NULL, err);
		/* AlreadyExists: another replica created it first; re-read. */
		if (r == SIGIL_E_EXISTS) {
			sigil_err_clear(err);
			return 1;
		}
		return r;
	}
	r = secret_check_ours(secret, what, err);
	if (r < 0)
		return r;
	data = json_object_get(secret, "data");
	if (!data || json_is_null(data)) {
		data = json_object();
		if (!data || json_object_set_new(secret, "data", data) < 0)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	if (!json_is_object(data))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: data is not a map", what);
	if (json_object_get(data, key))
		return sigil_err_set(err, SIGIL_E_EXISTS,
				     "%s already holds %s (another replica wrote it: reload "
				     "and adopt it)",
				     what, key);
	if (json_object_size(data) >= CA_STORE_MAX_GENERATIONS)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "%s already holds %d CA generations; prune some first", what,
				     CA_STORE_MAX_GENERATIONS);
	if (secret_data_size(data) + strlen(key) + strlen(b64) > CA_STORE_KUBE_MAX_SECRET_DATA)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "%s would exceed the 1 MiB a Secret may hold; prune old "
				     "generations first",
				     what);
	if (json_object_set_new(data, key, json_string(b64)) < 0)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	/* The object carries the resourceVersion we read: a write in between
	 * is a 409 Conflict (SIGIL_E_BUSY), never a lost update. */
	r = kube_client_update(ks->client, &kube_res_secrets, ks->ns, secret, NULL, err);
	if (r == SIGIL_E_BUSY || r == SIGIL_E_NOTFOUND) {
		/* Changed or deleted since we read it: read again. */
		sigil_err_clear(err);
		return 1;
	}
	return r;
}

static int kstore_put(ca_store *s, const char *class_name, const ca_store_record *rec,
		      sigil_err *err)
{
	kube_store *ks = to_kube(s);
	char name[KUBE_MAX_NAME + 1], what[KSTORE_MAX_WHAT], key[CA_STORE_GEN_NAME_LEN + 1];
	char *data = NULL, *b64 = NULL;
	size_t len = 0, b64_len = 0;
	int r;

	r = object_name(ks, class_name, "", name, err);
	if (r < 0)
		return r;
	secret_what(ks, name, what);
	ca_store_gen_name(rec->generation, key);
	/* Serialise and check before anything goes to the apiserver. */
	r = ca_store_record_format(rec, &data, &len, err);
	if (r < 0)
		return r;
	r = b64_encode(data, len, &b64, &b64_len);
	if (r < 0) {
		r = sigil_err_set(err, r, "cannot encode generation %s", key);
		goto out;
	}
	for (int attempt = 0; attempt < CA_STORE_KUBE_MAX_ATTEMPTS; attempt++) {
		if (attempt > 0)
			sleep_ms(jitter_ms(20L << (attempt < 5 ? attempt : 5)));
		r = kstore_put_once(ks, name, what, key, b64, err);
		if (r <= 0)
			goto out;
		log_debug("%s: conflict writing %s, re-reading (attempt %d)", what, key,
			  attempt + 1);
	}
	r = sigil_err_set(err, SIGIL_E_BUSY,
			  "%s kept changing while adding %s (%d attempts); try again", what, key,
			  CA_STORE_KUBE_MAX_ATTEMPTS);
out:
	if (r < 0 && r != SIGIL_E_EXISTS && r != SIGIL_E_BUSY && r != SIGIL_E_LIMIT &&
	    r != SIGIL_E_PRECOND && r != SIGIL_E_CORRUPT)
		sigil_err_prefix(err, "writing %s: ", what);
	sigil_freezero(b64, b64_len + 1);
	sigil_freezero(data, len + 1);
	return r;
}

/* One attempt at deleting key from the Secret.  1: lost a race, re-read. */
static int kstore_remove_once(kube_store *ks, const char *name, const char *what,
			      const char *key, sigil_err *err)
{
	_cleanup_(json_decrefp) json_t *secret = NULL;
	json_t *data;
	int r;

	r = kstore_get_secret(ks, name, &secret, err);
	if (r < 0 || !secret)
		return r;
	r = secret_check_ours(secret, what, err);
	if (r < 0)
		return r;
	data = json_object_get(secret, "data");
	if (!json_is_object(data) || !json_object_get(data, key))
		return 0; /* already gone */
	if (json_object_del(data, key) < 0)
		return sigil_err_set(err, SIGIL_E_INTERNAL, "cannot remove %s", key);
	r = kube_client_update(ks->client, &kube_res_secrets, ks->ns, secret, NULL, err);
	if (r == SIGIL_E_BUSY) {
		sigil_err_clear(err);
		return 1;
	}
	if (r == SIGIL_E_NOTFOUND) {
		sigil_err_clear(err);
		return 0;
	}
	return r;
}

static int kstore_remove(ca_store *s, const char *class_name, uint64_t generation,
			 sigil_err *err)
{
	kube_store *ks = to_kube(s);
	char name[KUBE_MAX_NAME + 1], what[KSTORE_MAX_WHAT], key[CA_STORE_GEN_NAME_LEN + 1];
	int r;

	r = object_name(ks, class_name, "", name, err);
	if (r < 0)
		return r;
	secret_what(ks, name, what);
	ca_store_gen_name(generation, key);
	for (int attempt = 0; attempt < CA_STORE_KUBE_MAX_ATTEMPTS; attempt++) {
		if (attempt > 0)
			sleep_ms(jitter_ms(20L << (attempt < 5 ? attempt : 5)));
		r = kstore_remove_once(ks, name, what, key, err);
		if (r <= 0) {
			if (r < 0 && r != SIGIL_E_PRECOND)
				sigil_err_prefix(err, "removing %s from %s: ", key, what);
			return r;
		}
	}
	return sigil_err_set(err, SIGIL_E_BUSY,
			     "%s kept changing while removing %s (%d attempts); try again", what,
			     key, CA_STORE_KUBE_MAX_ATTEMPTS);
}

/* ---- locking --------------------------------------------------------------------- */

static kube_lock *kstore_find_lock(kube_store *ks, const char *class_name)
{
	for (kube_lock *l = ks->locks; l; l = l->next)
		if (!strcmp(l->class_name, class_name))
			return l;
	return NULL;
}

static const char *lease_holder(const json_t *lease)
{
	const json_t *h = json_object_get(json_object_get(lease, "spec"), "holderIdentity");

	return json_is_string(h) ? json_string_value(h) : "";
}

/* Whether the holder recorded in the Lease has let it run out by its own
 * renewTime and our clock.  A Lease without a usable renewTime is judged by
 * observation only (see kstore_lease_acquire). */
static bool lease_expired_by_clock(const json_t *lease)
{
	const json_t *spec = json_object_get(lease, "spec");
	const json_t *rt = json_object_get(spec, "renewTime");
	const json_t *dur = json_object_get(spec, "leaseDurationSeconds");
	json_int_t d = json_is_integer(dur) ? json_integer_value(dur) : CA_STORE_KUBE_LEASE_SECONDS;
	time_t renewed;

	if (!json_is_string(rt) || ca_store_kube_parse_time(json_string_value(rt), &renewed) < 0)
		return false;
	if (d < 1 || d > 3600)
		d = CA_STORE_KUBE_LEASE_SECONDS;
	return (int64_t)renewed + (int64_t)d < (int64_t)time(NULL);
}

/* Writes the Lease so that we hold it: create when lease is NULL, else an
 * update carrying its resourceVersion.  0: held (*ret the stored Lease);
 * 1: lost a race; < 0: error. */
static int kstore_lease_write(kube_store *ks, const char *name, json_t *lease, json_t **ret,
			      sigil_err *err)
{
	char now[MICRO_TIME_LEN];
	json_t *spec;
	int r;

	format_micro_time(now);
	if (!lease) {
		_cleanup_(json_decrefp) json_t *obj = json_pack(
		    "{s:s, s:s, s:o, s:{s:s, s:i, s:s, s:s, s:i}}", "apiVersion",
		    "coordination.k8s.io/v1", "kind", "Lease", "metadata",
		    new_managed_metadata(name, ks->ns), "spec", "holderIdentity", ks->holder,
		    "leaseDurationSeconds", CA_STORE_KUBE_LEASE_SECONDS, "acquireTime", now,
		    "renewTime", now, "leaseTransitions", 0);

		if (!obj)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		r = kube_client_create(ks->client, &kube_res_leases, ks->ns, obj, ret, err);
		if (r == SIGIL_E_EXISTS) {
			sigil_err_clear(err);
			return 1;
		}
		return r;
	}
	spec = json_object_get(lease, "spec");
	if (!json_is_object(spec)) {
		spec = json_object();
		if (!spec || json_object_set_new(lease, "spec", spec) < 0)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	if (strcmp(lease_holder(lease), ks->holder)) {
		const json_t *tr = json_object_get(spec, "leaseTransitions");
		json_int_t t = json_is_integer(tr) ? json_integer_value(tr) : 0;

		if (t < 0 || t >= INT32_MAX)
			t = 0;
		if (json_object_set_new(spec, "leaseTransitions", json_integer(t + 1)) < 0)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	if (json_object_set_new(spec, "holderIdentity", json_string(ks->holder)) < 0 ||
	    json_object_set_new(spec, "leaseDurationSeconds",
				json_integer(CA_STORE_KUBE_LEASE_SECONDS)) < 0 ||
	    json_object_set_new(spec, "acquireTime", json_string(now)) < 0 ||
	    json_object_set_new(spec, "renewTime", json_string(now)) < 0)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = kube_client_update(ks->client, &kube_res_leases, ks->ns, lease, ret, err);
	if (r == SIGIL_E_BUSY || r == SIGIL_E_NOTFOUND) {
		sigil_err_clear(err);
		return 1;
	}
	return r;
}

/* Takes the class's Lease, waiting while another live holder has it. */
static int kstore_lease_acquire(kube_store *ks, const char *class_name, json_t **ret,
				sigil_err *err)
{
	char name[KUBE_MAX_NAME + 1], what[KSTORE_MAX_WHAT];
	char seen_rv[KUBE_MAX_RESOURCE_VERSION + 1] = "";
	int64_t start = mono_ms(), seen_at = 0;
	long poll = KSTORE_LOCK_POLL_MIN_MS;
	int r;

	r = object_name(ks, class_name, LOCK_SUFFIX, name, err);
	if (r < 0)
		return r;
	snprintf(what, sizeof(what), "CA store Lease %s/%s", ks->ns, name);
	for (;;) {
		_cleanup_(json_decrefp) json_t *lease = NULL;
		const char *holder, *rv;
		bool free_to_take;

		r = kube_client_get(ks->client, &kube_res_leases, ks->ns, name, &lease, err);
		if (r == SIGIL_E_NOTFOUND) {
			sigil_err_clear(err);
			lease = NULL;
		} else if (r < 0) {
			return sigil_err_prefix(err, "locking CA class %s: ", class_name);
		}
		if (lease && !object_is_managed(lease))
			return sigil_err_set(err, SIGIL_E_PRECOND,
					     "%s exists but is not managed by sigil (no label "
					     CA_STORE_KUBE_MANAGED_LABEL "=" CA_STORE_KUBE_MANAGED_VALUE
					     "); refusing to take it over",
					     what);
		holder = lease ? lease_holder(lease) : "";
		rv = lease ? kube_object_resource_version(lease) : NULL;
		/* client-go's rule: a record that stays unchanged for a whole
		 * lease duration while we watch is expired, whatever the
		 * clocks say. */
		if (rv && strcmp(rv, seen_rv)) {
			snprintf(seen_rv, sizeof(seen_rv), "%s", rv);
			seen_at = mono_ms();
		}
		free_to_take = !lease || !*holder || !strcmp(holder, ks->holder) ||
			       lease_expired_by_clock(lease) ||
			       (rv && mono_ms() - seen_at > CA_STORE_KUBE_LEASE_SECONDS * 1000LL);
		if (free_to_take) {
			if (lease && *holder && strcmp(holder, ks->holder))
				log_debug("%s: taking over from %s, whose lease ran out", what,
					  holder);
			r = kstore_lease_write(ks, name, lease, ret, err);
			if (r == 0)
				return 0;
			if (r < 0)
				return sigil_err_prefix(err, "locking CA class %s: ", class_name);
			continue; /* lost the race: look again at once */
		}
		if (mono_ms() - start > CA_STORE_KUBE_LOCK_MAX_WAIT_SECONDS * 1000LL)
			return sigil_err_set(err, SIGIL_E_BUSY,
					     "%s is held by %s; gave up after %d seconds", what,
					     holder, CA_STORE_KUBE_LOCK_MAX_WAIT_SECONDS);
		sleep_ms(jitter_ms(poll));
		if (poll < KSTORE_LOCK_POLL_MAX_MS)
			poll *= 2;
	}
}

/* Gives the Lease up (holderIdentity cleared, as client-go does on
 * release).  A Lease somebody took over meanwhile is left alone; a failure
 * only means others wait for the lease to run out. */
static void kstore_lease_release(kube_store *ks, const char *class_name, json_t *lease)
{
	sigil_err err = {0};
	json_t *spec = json_object_get(lease, "spec");
	char now[MICRO_TIME_LEN];
	int r;

	if (!json_is_object(spec))
		return;
	format_micro_time(now);
	if (json_object_set_new(spec, "holderIdentity", json_string("")) < 0 ||
	    json_object_set_new(spec, "leaseDurationSeconds", json_integer(1)) < 0 ||
	    json_object_set_new(spec, "renewTime", json_string(now)) < 0)
		return;
	r = kube_client_update(ks->client, &kube_res_leases, ks->ns, lease, NULL, &err);
	if (r < 0)
		log_debug("releasing the CA store lease of class %s: %s", class_name, err.msg);
}

static int kstore_lock_class(ca_store *s, const char *class_name, sigil_err *err)
{
	kube_store *ks = to_kube(s);
	char name[KUBE_MAX_NAME + 1];
	json_t *lease = NULL;
	kube_lock *l;
	int r;

	r = object_name(ks, class_name, LOCK_SUFFIX, name, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&ks->locks_mutex);
	l = kstore_find_lock(ks, class_name);
	if (!l) {
		pthread_mutexattr_t attr;

		if (ks->nlocks >= KSTORE_MAX_LOCKS) {
			pthread_mutex_unlock(&ks->locks_mutex);
			return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d CA classes locked",
					     KSTORE_MAX_LOCKS);
		}
		l = calloc(1, sizeof(*l));
		if (!l) {
			pthread_mutex_unlock(&ks->locks_mutex);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
		snprintf(l->class_name, sizeof(l->class_name), "%s", class_name);
		/* Error-checking, so that a thread locking twice gets an error
		 * instead of deadlocking on itself. */
		pthread_mutexattr_init(&attr);
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
		pthread_mutex_init(&l->mutex, &attr);
		pthread_mutexattr_destroy(&attr);
		l->next = ks->locks;
		ks->locks = l;
		ks->nlocks++;
	}
	pthread_mutex_unlock(&ks->locks_mutex);

	r = pthread_mutex_lock(&l->mutex);
	if (r == EDEADLK)
		return sigil_err_set(err, SIGIL_E_INTERNAL,
				     "CA class %s is already locked by this thread", class_name);
	if (r != 0)
		return sigil_err_errno(err, r, "cannot lock CA class %s", class_name);
	r = kstore_lease_acquire(ks, class_name, &lease, err);
	if (r < 0) {
		pthread_mutex_unlock(&l->mutex);
		return r;
	}
	pthread_mutex_lock(&ks->locks_mutex);
	l->held = true;
	l->owner = pthread_self();
	l->lease = lease;
	pthread_mutex_unlock(&ks->locks_mutex);
	return 0;
}

static void kstore_unlock_class(ca_store *s, const char *class_name)
{
	kube_store *ks = to_kube(s);
	json_t *lease = NULL;
	kube_lock *l;
	bool mine = false;

	pthread_mutex_lock(&ks->locks_mutex);
	l = kstore_find_lock(ks, class_name);
	if (l && l->held && pthread_equal(l->owner, pthread_self())) {
		mine = true;
		lease = l->lease;
		l->lease = NULL;
		l->held = false;
	}
	pthread_mutex_unlock(&ks->locks_mutex);
	if (!mine)
		return; /* not held by this thread: nothing to release */
	if (lease)
		kstore_lease_release(ks, class_name, lease);
	json_decref(lease);
	pthread_mutex_unlock(&l->mutex);
}

static void kstore_free(ca_store *s)
{
	kube_store *ks = to_kube(s);
	kube_lock *l, *next;

	if (!ks)
		return;
	for (l = ks->locks; l; l = next) {
		next = l->next;
		/* A Lease still held at free runs out by itself. */
		json_decref(l->lease);
		pthread_mutex_destroy(&l->mutex);
		free(l);
	}
	pthread_mutex_destroy(&ks->locks_mutex);
	free(ks->ns);
	free(ks->prefix);
	free(ks->holder);
	free(ks);
}

static const ca_store_ops kube_ops = {
	.lock = kstore_lock_class,
	.unlock = kstore_unlock_class,
	.load = kstore_load,
	.put = kstore_put,
	.remove = kstore_remove,
	.free = kstore_free,
};

int ca_store_kube_open(kube_client *c, const char *ns, const char *name_prefix,
		       const char *holder_id, ca_store **ret, sigil_err *err)
{
	kube_store *ks;
	size_t hlen;

	if (!c)
		return sigil_err_set(err, SIGIL_E_INVALID, "the Secret CA store needs a Kubernetes "
							   "client");
	if (!ns || !*ns || strlen(ns) > KUBE_CONFIG_MAX_NAMESPACE || !dns_subdomain_ok(ns) ||
	    strchr(ns, '.'))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "CA store namespace \"%.63s\" is not a valid namespace name",
				     ns ? ns : "");
	if (!name_prefix || strlen(name_prefix) > CA_STORE_KUBE_MAX_PREFIX ||
	    !dns_subdomain_ok(name_prefix))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "CA store name prefix \"%.64s\" is not valid: use at most %d "
				     "lower-case letters, digits, '-' and '.', starting and ending "
				     "with a letter or digit",
				     name_prefix ? name_prefix : "", CA_STORE_KUBE_MAX_PREFIX);
	hlen = holder_id ? strnlen(holder_id, CA_STORE_KUBE_MAX_HOLDER + 1) : 0;
	if (hlen == 0 || hlen > CA_STORE_KUBE_MAX_HOLDER)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "CA store holder identity must be 1 to %d characters",
				     CA_STORE_KUBE_MAX_HOLDER);
	for (size_t i = 0; i < hlen; i++)
		if (holder_id[i] < 0x21 || holder_id[i] > 0x7e)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "CA store holder identity must be printable ASCII "
					     "without spaces");
	ks = calloc(1, sizeof(*ks));
	if (!ks)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	ks->base.ops = &kube_ops;
	ks->client = c;
	ks->ns = strdup(ns);
	ks->prefix = strdup(name_prefix);
	ks->holder = strdup(holder_id);
	pthread_mutex_init(&ks->locks_mutex, NULL);
	if (!ks->ns || !ks->prefix || !ks->holder) {
		kstore_free(&ks->base);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	*ret = &ks->base;
	return 0;
}
