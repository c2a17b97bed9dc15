/* The TrustStore controller (see truststore.h).
 *
 * An informer keeps a cache of the TrustStores (both groups); one worker
 * thread reconciles every TrustStore whenever one changed, on
 * truststore_kick, and every resync interval.  The targets are not
 * cached: each reconcile GETs the target by name and PUTs it (with the
 * resourceVersion read; 409 -> re-read) or POSTs it when it is missing.
 * That costs a GET per TrustStore per reconcile, and an edit or a deletion
 * by someone else is repaired at the next resync rather than at once; in
 * return sigil-ca needs only get, create and update on ConfigMaps and
 * Secrets.  A label-selected list+watch of the targets would need list and
 * watch on every ConfigMap and Secret in the cluster, since RBAC cannot
 * grant by label. */
#include "ca/server/truststore.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ca/server/kube_informer.h"
#include "ca/server/kube_secrets.h"
#include "keystore/keystore.h"
#include "util/log.h"

#define TS_DEFAULT_RESYNC_MS  60000
#define TS_MANAGED_BY         "sigil"
#define TS_ANNOTATION_CONTENT "secrets.sigil.dev/content-sha256"
#define TS_ANNOTATION_CLASS   "secrets.sigil.dev/secret-class"
#define TS_KEY_PEM            "ca.crt"
#define TS_KEY_PKCS12         "truststore.p12"
#define TS_UPDATE_ATTEMPTS    4
/* Reported errors remembered (one per TrustStore). */
#define TS_MAX_REPORTED KUBE_INFORMER_MAX_OBJECTS
#define TS_SHA256_HEX   (2 * 32 + 1)

/* ---- spec ----------------------------------------------------------------------------- */

static int ts_get_str(const json_t *obj, const char *field, const char *path, bool required,
                      char *dst, size_t size, sigil_err *err)
{
	const json_t *v = json_object_get(obj, field);
	const char *s;

	if (!v || json_is_null(v)) {
		if (required)
			return sigil_err_set(err, SIGIL_E_INVALID, "%s is required", path);
		dst[0] = '\0';
		return 0;
	}
	s = json_string_value(v);
	if (!s)
		return sigil_err_set(err, SIGIL_E_INVALID, "%s must be a string", path);
	if (json_string_length(v) != strlen(s))
		return sigil_err_set(err, SIGIL_E_INVALID, "%s contains a NUL character", path);
	if (strlen(s) >= size)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s is longer than %zu bytes", path,
		                     size - 1);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

int truststore_spec_from_json(const kube_resource *res, const json_t *obj, truststore_spec *ret,
                              sigil_err *err)
{
	static const char *const known[] = {"secretClassName", "targetKind", "format"};
	truststore_spec s;
	const json_t *md, *spec, *v;
	const char *key;
	char buf[64];
	int r;

	memset(&s, 0, sizeof(s));
	if (!res || !json_is_object(obj))
		return sigil_err_set(err, SIGIL_E_INVALID, "a TrustStore must be a JSON object");
	md = json_object_get(obj, "metadata");
	if (!json_is_object(md))
		return sigil_err_set(err, SIGIL_E_INVALID, "TrustStore without metadata");
	if ((r = ts_get_str(md, "name", "metadata.name", true, s.name, sizeof(s.name), err)) < 0 ||
	    (r = ts_get_str(md, "namespace", "metadata.namespace", true, s.namespace_,
	                    sizeof(s.namespace_), err)) < 0 ||
	    (r = ts_get_str(md, "uid", "metadata.uid", true, s.uid, sizeof(s.uid), err)) < 0)
		return sigil_err_prefix(err, "TrustStore: ");
	if (!kube_name_ok(s.name) || !kube_name_ok(s.namespace_))
		return sigil_err_set(err, SIGIL_E_INVALID, "TrustStore: bad name %.64s/%.64s",
		                     s.namespace_, s.name);
	snprintf(s.api_version, sizeof(s.api_version), "%s/%s", res->group, res->version);
	spec = json_object_get(obj, "spec");
	if (!json_is_object(spec))
		return sigil_err_set(err, SIGIL_E_INVALID, "TrustStore %s/%s: spec is required",
		                     s.namespace_, s.name);
	json_object_foreach((json_t *)spec, key, v)
	{
		bool ok = false;

		for (size_t i = 0; i < SIGIL_ARRAY_SIZE(known); i++)
			ok |= !strcmp(key, known[i]);
		if (!ok)
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "TrustStore %s/%s: unknown field spec.%.64s (known: "
			                     "secretClassName, targetKind, format)",
			                     s.namespace_, s.name, key);
	}
	r = ts_get_str(spec, "secretClassName", "spec.secretClassName", true, s.class_name,
	               sizeof(s.class_name), err);
	if (r == 0 && !kube_name_ok(s.class_name))
		r = sigil_err_set(err, SIGIL_E_INVALID, "spec.secretClassName is not a valid name");
	if (r == 0)
		r = ts_get_str(spec, "targetKind", "spec.targetKind", false, buf, sizeof(buf), err);
	if (r == 0) {
		if (!buf[0] || !strcmp(buf, "ConfigMap"))
			s.target = TRUSTSTORE_TARGET_CONFIGMAP;
		else if (!strcmp(buf, "Secret"))
			s.target = TRUSTSTORE_TARGET_SECRET;
		else
			r = sigil_err_set(err, SIGIL_E_INVALID,
			                  "spec.targetKind must be ConfigMap or Secret");
	}
	if (r == 0)
		r = ts_get_str(spec, "format", "spec.format", false, buf, sizeof(buf), err);
	if (r == 0) {
		if (!buf[0] || !strcmp(buf, "tls-pem"))
			s.format = TRUSTSTORE_FORMAT_PEM;
		else if (!strcmp(buf, "tls-pkcs12"))
			s.format = TRUSTSTORE_FORMAT_PKCS12;
		else
			r = sigil_err_set(err, SIGIL_E_INVALID,
			                  "spec.format must be tls-pem or tls-pkcs12 (a TrustStore "
			                  "publishes certificates)");
	}
	if (r < 0)
		return sigil_err_prefix(err, "TrustStore %s/%s: ", s.namespace_, s.name);
	*ret = s;
	return 0;
}

int truststore_spec_parse(const kube_resource *res, const char *text, size_t len,
                          truststore_spec *ret, sigil_err *err)
{
	json_error_t jerr;
	json_t *obj;
	int r;

	if (!text && len)
		return sigil_err_set(err, SIGIL_E_INVALID, "no TrustStore text");
	if (len > TRUSTSTORE_MAX_OBJECT)
		return sigil_err_set(err, SIGIL_E_LIMIT, "TrustStore is %zu bytes, the limit is %u",
		                     len, TRUSTSTORE_MAX_OBJECT);
	obj = json_loadb(len ? text : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		return sigil_err_set(err, SIGIL_E_INVALID, "TrustStore is not JSON: %s (line %d)",
		                     jerr.text, jerr.line);
	r = truststore_spec_from_json(res, obj, ret, err);
	json_decref(obj);
	return r;
}

/* ---- desired object ---------------------------------------------------------------------- */

static void sha256_hex(const void *data, size_t len, char out[TS_SHA256_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	out[0] = '\0';
	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL))
		return;
	for (unsigned int i = 0; i < n && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void x509_stack_freep(STACK_OF(X509) * *p)
{
	sk_X509_pop_free(*p, X509_free);
}

static void bio_freep(BIO **b)
{
	BIO_free(*b);
}

static int ts_parse_pem(const char *pem, size_t len, STACK_OF(X509) * *ret, sigil_err *err)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;
	_cleanup_(bio_freep) BIO *b = NULL;
	X509 *x;

	if (!pem || len == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "empty trust bundle");
	if (len > TRUSTSTORE_MAX_BUNDLE)
		return sigil_err_set(err, SIGIL_E_LIMIT, "trust bundle larger than %u bytes",
		                     TRUSTSTORE_MAX_BUNDLE);
	b = BIO_new_mem_buf(pem, (int)len);
	certs = sk_X509_new_null();
	if (!b || !certs)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_num(certs) >= TRUSTSTORE_MAX_CERTS) {
			X509_free(x);
			return sigil_err_set(err, SIGIL_E_LIMIT,
			                     "trust bundle has more than %d certificates",
			                     TRUSTSTORE_MAX_CERTS);
		}
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
	}
	ERR_clear_error(); /* the end of the input reads as "no start line" */
	if (sk_X509_num(certs) == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "trust bundle holds no PEM certificate");
	*ret = TAKE_PTR(certs);
	return 0;
}

int truststore_pem_from_certs(STACK_OF(X509) * certs, char **ret, size_t *ret_len, sigil_err *err)
{
	_cleanup_(bio_freep) BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *out;
	long len;

	if (!b)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (!certs || sk_X509_num(certs) == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "empty trust bundle");
	for (int i = 0; i < sk_X509_num(certs); i++)
		if (!PEM_write_bio_X509(b, sk_X509_value(certs, i)))
			return sigil_err_ssl(err, SIGIL_E_CRYPTO, "writing PEM");
	len = BIO_get_mem_data(b, &data);
	if (len <= 0 || (size_t)len > TRUSTSTORE_MAX_BUNDLE)
		return sigil_err_set(err, SIGIL_E_LIMIT, "trust bundle larger than %u bytes",
		                     TRUSTSTORE_MAX_BUNDLE);
	out = malloc((size_t)len + 1);
	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	*ret = out;
	*ret_len = (size_t)len;
	return 0;
}

static const char *ts_kind_name(truststore_target t)
{
	return t == TRUSTSTORE_TARGET_SECRET ? "Secret" : "ConfigMap";
}

int truststore_desired_object(const truststore_spec *spec, const char *pem, size_t pem_len,
                              json_t **ret, sigil_err *err)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;
	_cleanup_free_ char *canon = NULL;
	_cleanup_free_ char *b64 = NULL;
	ks_fileset fs = {0};
	size_t canon_len = 0;
	const uint8_t *bytes;
	size_t len;
	const char *key;
	char bundle_hash[TS_SHA256_HEX], content_hash[TS_SHA256_HEX];
	json_t *obj = NULL, *data = NULL;
	bool binary;
	int r;

	r = ts_parse_pem(pem, pem_len, &certs, err);
	if (r == 0)
		r = truststore_pem_from_certs(certs, &canon, &canon_len, err);
	if (r < 0)
		return sigil_err_prefix(err, "class %s: ", spec->class_name);
	/* Canonical PEM: only the certificates, whatever else the bundle
	 * text held. */
	sha256_hex(canon, canon_len, bundle_hash);
	if (spec->format == TRUSTSTORE_FORMAT_PKCS12) {
		ks_material m = {.trust = certs};

		r = ks_render(KS_FORMAT_PKCS12, &m, NULL, &fs, err);
		if (r < 0)
			return r;
		if (fs.n != 1) {
			ks_fileset_free(&fs);
			return sigil_err_set(err, SIGIL_E_INTERNAL, "PKCS#12 truststore: %zu files",
			                     fs.n);
		}
		key = TS_KEY_PKCS12;
		bytes = fs.files[0].data;
		len = fs.files[0].len;
		binary = true;
	} else {
		key = TS_KEY_PEM;
		bytes = (const uint8_t *)canon;
		len = canon_len;
		binary = false;
	}
	sha256_hex(bytes, len, content_hash);
	if (binary || spec->target == TRUSTSTORE_TARGET_SECRET) {
		r = kube_secrets_b64_encode(bytes, len, &b64, err);
		if (r == 0)
			data = json_pack("{s:s}", key, b64);
	} else {
		data = json_pack("{s:s#}", key, (const char *)bytes, len);
	}
	ks_fileset_free(&fs);
	if (r < 0)
		return r;
	if (!data)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:[{s:s, s:s, "
	                "s:s, s:s, s:b}]}}",
	                "apiVersion", "v1", "kind", ts_kind_name(spec->target), "metadata", "name",
	                spec->name, "namespace", spec->namespace_, "labels",
	                TRUSTSTORE_LABEL_MANAGED_BY, TS_MANAGED_BY, TRUSTSTORE_LABEL_TRUSTSTORE,
	                "true", "annotations", TRUSTSTORE_ANNOTATION_BUNDLE, bundle_hash,
	                TS_ANNOTATION_CONTENT, content_hash, TS_ANNOTATION_CLASS, spec->class_name,
	                "ownerReferences", "apiVersion", spec->api_version, "kind", "TrustStore",
	                "name", spec->name, "uid", spec->uid, "controller", 1);
	if (!obj) {
		json_decref(data);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	if (spec->target == TRUSTSTORE_TARGET_SECRET)
		json_object_set_new(obj, "type", json_string("Opaque"));
	json_object_set_new(
	    obj, binary && spec->target == TRUSTSTORE_TARGET_CONFIGMAP ? "binaryData" : "data",
	    data);
	*ret = obj;
	return 0;
}

/* ---- comparing ---------------------------------------------------------------------------- */

static const char *ts_label(const json_t *obj, const char *key)
{
	return json_string_value(
	    json_object_get(json_object_get(json_object_get(obj, "metadata"), "labels"), key));
}

static const char *ts_annotation(const json_t *obj, const char *key)
{
	return json_string_value(
	    json_object_get(json_object_get(json_object_get(obj, "metadata"), "annotations"), key));
}

bool truststore_object_managed(const json_t *obj)
{
	const char *m = ts_label(obj, TRUSTSTORE_LABEL_MANAGED_BY);
	const char *t = ts_label(obj, TRUSTSTORE_LABEL_TRUSTSTORE);

	return m && !strcmp(m, TS_MANAGED_BY) && t && !strcmp(t, "true");
}

static const char *ts_owner_uid(const json_t *desired)
{
	return json_string_value(json_object_get(
	    json_array_get(json_object_get(json_object_get(desired, "metadata"), "ownerReferences"),
	                   0),
	    "uid"));
}

static bool ts_owned_by(const json_t *obj, const char *uid)
{
	json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
	json_t *o;
	size_t i;

	if (!uid)
		return false;
	json_array_foreach(refs, i, o)
	{
		const char *u = json_string_value(json_object_get(o, "uid"));
		const char *k = json_string_value(json_object_get(o, "kind"));

		if (u && k && !strcmp(u, uid) && !strcmp(k, "TrustStore"))
			return true;
	}
	return false;
}

static bool ts_str_eq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

bool truststore_object_current(const json_t *existing, const json_t *desired)
{
	const char *kind = json_string_value(json_object_get(desired, "kind"));
	bool cm = kind && !strcmp(kind, "ConfigMap");
	kube_secrets_item *have = NULL, *want = NULL;
	size_t n_have = 0, n_want = 0;
	bool ok = false;

	if (!truststore_object_managed(existing) || !ts_owned_by(existing, ts_owner_uid(desired)))
		return false;
	if (!ts_str_eq(ts_annotation(existing, TRUSTSTORE_ANNOTATION_BUNDLE),
	               ts_annotation(desired, TRUSTSTORE_ANNOTATION_BUNDLE)) ||
	    !ts_str_eq(ts_annotation(existing, TS_ANNOTATION_CLASS),
	               ts_annotation(desired, TS_ANNOTATION_CLASS)))
		return false;
	/* The files: the same names, and each still what sigil wrote (its
	 * hash as recorded when written).  A PKCS#12 file differs on every
	 * rendering (random salts), so the bytes themselves are not compared
	 * with a fresh rendering. */
	if (kube_secrets_decode_object(existing, cm, "existing", &have, &n_have, NULL) < 0 ||
	    kube_secrets_decode_object(desired, cm, "desired", &want, &n_want, NULL) < 0)
		goto out;
	if (n_have != n_want || n_have != 1 || strcmp(have[0].key, want[0].key))
		goto out;
	{
		char h[TS_SHA256_HEX];

		sha256_hex(have[0].data, have[0].len, h);
		ok = ts_str_eq(h, ts_annotation(existing, TS_ANNOTATION_CONTENT));
	}
	/* A PEM file sits in data, a PKCS#12 one in binaryData. */
	if (ok && cm)
		ok = json_object_size(json_object_get(existing, "data")) ==
		         json_object_size(json_object_get(desired, "data")) &&
		     json_object_size(json_object_get(existing, "binaryData")) ==
		         json_object_size(json_object_get(desired, "binaryData"));
out:
	kube_secrets_items_free(have, n_have);
	kube_secrets_items_free(want, n_want);
	return ok;
}

/* ---- the controller -------------------------------------------------------------------------- */

enum { TS_INF_SIGIL, TS_INF_STACKABLE, TS_INF_N };

struct truststore {
	truststore_opts o;
	kube_informer *inf[TS_INF_N];

	pthread_t thread;
	bool started;
	atomic_int stop;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool dirty;

	/* Worker thread only. */
	json_t *reported; /* "ns/name" -> "rv|message" */
};

static void ts_report(truststore *ts, const json_t *owner, const kube_resource *owner_res,
                      const char *ns, const char *name, const char *reason, const sigil_err *why)
{
	char key[KUBE_MAX_NAME + 80], val[SIGIL_ERR_MSG_MAX + KUBE_MAX_RESOURCE_VERSION + 2];
	const char *rv = owner ? kube_object_resource_version(owner) : NULL;
	const char *prev;
	json_t *ev;
	char ts_now[32], api[96];
	time_t now = time(NULL);
	struct tm tm;
	sigil_err e = {0};

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	snprintf(val, sizeof(val), "%s|%s", rv ? rv : "", why->msg);
	prev = json_string_value(json_object_get(ts->reported, key));
	if (prev && !strcmp(prev, val))
		return;
	if (json_object_size(ts->reported) < TS_MAX_REPORTED || prev)
		json_object_set_new(ts->reported, key, json_string(val));
	if (ts->o.on_error)
		ts->o.on_error(ns, name, why, ts->o.ctx);
	/* The apiserver being away is no news for the TrustStore's owner, and
	 * posting about it would fail too. */
	if (ts->o.no_events || !owner || why->code == SIGIL_E_UNAVAIL ||
	    why->code == SIGIL_E_TIMEOUT)
		return;
	gmtime_r(&now, &tm);
	strftime(ts_now, sizeof(ts_now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(api, sizeof(api), "%s/%s", owner_res->group, owner_res->version);
	ev =
	    json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s?, s:s?}, s:s, s:s, "
	              "s:s, s:{s:s}, s:s, s:s, s:i, s:s}",
	              "apiVersion", "v1", "kind", "Event", "metadata", "generateName", name,
	              "namespace", ns, "involvedObject", "apiVersion", api, "kind", "TrustStore",
	              "name", name, "namespace", ns, "uid",
	              json_string_value(json_object_get(json_object_get(owner, "metadata"), "uid")),
	              "resourceVersion", rv, "reason", reason, "message", why->msg, "type",
	              "Warning", "source", "component", "sigil-ca", "firstTimestamp", ts_now,
	              "lastTimestamp", ts_now, "count", 1, "reportingComponent", "sigil-ca");
	if (!ev)
		return;
	/* generateName wants a prefix ending in a separator. */
	{
		char gen[KUBE_MAX_NAME + 2];

		snprintf(gen, sizeof(gen), "%.*s.", KUBE_MAX_NAME - 6, name);
		json_object_set_new(json_object_get(ev, "metadata"), "generateName",
		                    json_string(gen));
	}
	if (kube_client_create(ts->o.client, &kube_res_events, ns, ev, NULL, &e) < 0)
		log_debug("truststore: cannot post an Event for %s/%s: %s", ns, name, e.msg);
	json_decref(ev);
}

static void ts_clear_report(truststore *ts, const char *ns, const char *name)
{
	char key[KUBE_MAX_NAME + 80];

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	json_object_del(ts->reported, key);
}

static void ts_action(truststore *ts, const truststore_spec *s, truststore_target t,
                      const char *what)
{
	log_debug("truststore: %s %s %s/%s", what, ts_kind_name(t), s->namespace_, s->name);
	if (ts->o.on_action)
		ts->o.on_action(s->namespace_, s->name, ts_kind_name(t), what, ts->o.ctx);
}

typedef struct ts_mutate_ctx {
	const json_t *desired;
	const char *what;
	bool wrote;
} ts_mutate_ctx;

static json_t *ts_md_map(json_t *md, const char *field)
{
	json_t *m = json_object_get(md, field);

	if (!json_is_object(m)) {
		m = json_object();
		json_object_set_new(md, field, m);
	}
	return m;
}

/* Turns a managed object read from the API into the desired one, keeping
 * what others added (labels, annotations, other owners). */
static int ts_mutate(json_t *obj, void *ctx, sigil_err *err)
{
	ts_mutate_ctx *m = ctx;
	json_t *md = json_object_get(obj, "metadata");
	const json_t *dmd = json_object_get(m->desired, "metadata");
	json_t *refs, *mine, *o;
	const char *uid = ts_owner_uid(m->desired);
	const char *k;
	json_t *v;
	size_t i;

	if (!truststore_object_managed(obj))
		return sigil_err_set(err, SIGIL_E_EXISTS,
		                     "%s exists and is not managed by sigil (it lacks the labels "
		                     "%s=%s and %s=true); not overwriting it: delete it or rename "
		                     "the TrustStore",
		                     m->what, TRUSTSTORE_LABEL_MANAGED_BY, TS_MANAGED_BY,
		                     TRUSTSTORE_LABEL_TRUSTSTORE);
	if (!json_is_object(md))
		return sigil_err_set(err, SIGIL_E_INVALID, "%s has no metadata", m->what);
	if (truststore_object_current(obj, m->desired))
		return 1;
	json_object_foreach(json_object_get(dmd, "labels"), k, v)
	    json_object_set(ts_md_map(md, "labels"), k, v);
	json_object_foreach(json_object_get(dmd, "annotations"), k, v)
	    json_object_set(ts_md_map(md, "annotations"), k, v);
	refs = json_object_get(md, "ownerReferences");
	if (!json_is_array(refs)) {
		refs = json_array();
		json_object_set_new(md, "ownerReferences", refs);
	}
	mine = json_array_get(json_object_get(dmd, "ownerReferences"), 0);
	/* One controller reference: ours replaces any TrustStore owner (a
	 * TrustStore deleted and created again has a new uid). */
	for (i = json_array_size(refs); i-- > 0;) {
		o = json_array_get(refs, i);
		k = json_string_value(json_object_get(o, "kind"));
		if ((k && !strcmp(k, "TrustStore")) ||
		    ts_str_eq(json_string_value(json_object_get(o, "uid")), uid))
			json_array_remove(refs, i);
	}
	json_array_append(refs, mine);
	json_object_del(obj, "data");
	json_object_del(obj, "binaryData");
	json_object_del(obj, "stringData");
	if ((v = json_object_get(m->desired, "data")))
		json_object_set_new(obj, "data", json_deep_copy(v));
	if ((v = json_object_get(m->desired, "binaryData")))
		json_object_set_new(obj, "binaryData", json_deep_copy(v));
	m->wrote = true;
	return 0;
}

static const kube_resource *ts_target_res(truststore_target t)
{
	return t == TRUSTSTORE_TARGET_SECRET ? &kube_res_secrets : &kube_res_configmaps;
}

/* One TrustStore: its target is read by name (GET) and written when it is
 * missing, edited or stale.  Nothing here lists, watches or deletes
 * ConfigMaps or Secrets: sigil-ca's RBAC grants get, create and update on
 * them and nothing more, so that the CA cannot read every Secret in the
 * cluster. */
static void ts_reconcile_one(truststore *ts, const kube_resource *owner_res, const json_t *owner)
{
	truststore_spec s;
	_cleanup_free_ char *pem = NULL;
	size_t pem_len = 0;
	uint64_t version = 0;
	json_t *desired = NULL;
	char what[KUBE_MAX_NAME + 96];
	ts_mutate_ctx m = {0};
	sigil_err e = {0};
	const char *reason = "InvalidTrustStore";
	int r;

	r = truststore_spec_from_json(owner_res, owner, &s, &e);
	if (r < 0) {
		const char *ns = kube_object_namespace(owner), *name = kube_object_name(owner);

		if (ns && name)
			ts_report(ts, owner, owner_res, ns, name, reason, &e);
		return;
	}
	snprintf(what, sizeof(what), "%s %s/%s", ts_kind_name(s.target), s.namespace_, s.name);
	reason = "TrustBundleUnavailable";
	r = ts->o.get_bundle(s.class_name, &pem, &pem_len, &version, ts->o.ctx, &e);
	if (r < 0) {
		sigil_err_prefix(&e, "SecretClass %s: ", s.class_name);
		goto fail;
	}
	r = truststore_desired_object(&s, pem, pem_len, &desired, &e);
	if (r < 0)
		goto fail;
	reason = "TrustStoreWriteFailed";
	m.desired = desired;
	m.what = what;
	/* GET, compare, PUT with the resourceVersion read (409: again). */
	r = kube_client_update_retry(ts->o.client, ts_target_res(s.target), s.namespace_, s.name,
	                             TS_UPDATE_ATTEMPTS, ts_mutate, &m, NULL, &e);
	if (r == 0 && m.wrote)
		ts_action(ts, &s, s.target, "updated");
	if (r == SIGIL_E_NOTFOUND) {
		sigil_err_clear(&e);
		r = kube_client_create(ts->o.client, ts_target_res(s.target), s.namespace_, desired,
		                       NULL, &e);
		if (r == 0) {
			ts_action(ts, &s, s.target, "created");
		} else if (r == SIGIL_E_EXISTS) {
			/* Created by someone else between our GET and POST;
			 * ts_mutate tells whether it is ours to update. */
			sigil_err_clear(&e);
			m.wrote = false;
			r = kube_client_update_retry(ts->o.client, ts_target_res(s.target),
			                             s.namespace_, s.name, TS_UPDATE_ATTEMPTS,
			                             ts_mutate, &m, NULL, &e);
			if (r == 0 && m.wrote)
				ts_action(ts, &s, s.target, "updated");
		}
	}
	if (r < 0)
		goto fail;
	/* A changed targetKind leaves the object of the other kind behind: it
	 * carries an ownerReference to this TrustStore, so the garbage
	 * collector removes it with the TrustStore.  Deleting it here would
	 * need delete on every ConfigMap and Secret in the cluster. */
	ts_clear_report(ts, s.namespace_, s.name);
	json_decref(desired);
	return;
fail:
	json_decref(desired);
	if (r == SIGIL_E_EXISTS)
		reason = "TargetNotManaged";
	ts_report(ts, owner, owner_res, s.namespace_, s.name, reason, &e);
}

static void ts_reconcile_all(truststore *ts)
{
	json_t *snap[TS_INF_N] = {NULL};
	bool synced = true;
	sigil_err e = {0};

	for (int i = 0; i < TS_INF_N; i++) {
		bool s = false;

		if (!ts->inf[i])
			continue;
		if (kube_informer_snapshot(ts->inf[i], &snap[i], &s, NULL, &e) < 0 || !s)
			synced = false;
	}
	/* Without both TrustStore lists a shadowed Stackable TrustStore
	 * could be served in place of the sigil one. */
	if (!synced)
		goto out;
	for (int g = TS_INF_SIGIL; g <= TS_INF_STACKABLE && !atomic_load(&ts->stop); g++) {
		const kube_resource *res =
		    g == TS_INF_SIGIL ? &kube_res_truststores : &kube_res_stackable_truststores;
		const char *key;
		json_t *obj;

		json_object_foreach(snap[g], key, obj)
		{
			if (atomic_load(&ts->stop))
				break;
			if (g == TS_INF_STACKABLE && json_object_get(snap[TS_INF_SIGIL], key)) {
				sigil_err sh = {0};

				sigil_err_set(
				    &sh, SIGIL_E_EXISTS,
				    "TrustStore %s (secrets.stackable.tech) is shadowed by the "
				    "secrets.sigil.dev TrustStore of the same name",
				    key);
				if (ts->o.on_error)
					ts->o.on_error(kube_object_namespace(obj),
					               kube_object_name(obj), &sh, ts->o.ctx);
				continue;
			}
			ts_reconcile_one(ts, res, obj);
		}
	}
out:
	for (int i = 0; i < TS_INF_N; i++)
		json_decref(snap[i]);
}

static void *ts_main(void *arg)
{
	truststore *ts = arg;
	long resync = ts->o.resync_ms > 0 ? ts->o.resync_ms : TS_DEFAULT_RESYNC_MS;

	while (!atomic_load(&ts->stop)) {
		struct timespec dl;

		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += resync / 1000;
		dl.tv_nsec += (resync % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&ts->lock);
		while (!ts->dirty && !atomic_load(&ts->stop))
			if (pthread_cond_timedwait(&ts->wake, &ts->lock, &dl) == ETIMEDOUT)
				break;
		ts->dirty = false;
		pthread_mutex_unlock(&ts->lock);
		if (atomic_load(&ts->stop))
			break;
		ts_reconcile_all(ts);
	}
	return NULL;
}

void truststore_kick(truststore *ts)
{
	if (!ts)
		return;
	pthread_mutex_lock(&ts->lock);
	ts->dirty = true;
	pthread_cond_signal(&ts->wake);
	pthread_mutex_unlock(&ts->lock);
}

static void ts_notify(void *ctx)
{
	truststore_kick(ctx);
}

static void ts_free(truststore *ts)
{
	if (!ts)
		return;
	json_decref(ts->reported);
	pthread_cond_destroy(&ts->wake);
	pthread_mutex_destroy(&ts->lock);
	free(ts);
}

void truststore_stop(truststore *ts)
{
	if (!ts)
		return;
	pthread_mutex_lock(&ts->lock);
	atomic_store(&ts->stop, 1);
	pthread_cond_broadcast(&ts->wake);
	pthread_mutex_unlock(&ts->lock);
	for (int i = 0; i < TS_INF_N; i++)
		kube_informer_request_stop(ts->inf[i]);
	if (ts->started)
		pthread_join(ts->thread, NULL);
	/* Their notify only touches lock and wake, which live until ts_free. */
	for (int i = 0; i < TS_INF_N; i++)
		kube_informer_stop(ts->inf[i]);
	ts_free(ts);
}

int truststore_start(const truststore_opts *o, truststore **ret, sigil_err *err)
{
	pthread_condattr_t ca;
	truststore *ts;
	int r, e;

	if (!o || !o->client || !o->get_bundle)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "TrustStore controller: no client or bundle callback");
	ts = calloc(1, sizeof(*ts));
	if (!ts)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	ts->o = *o;
	pthread_mutex_init(&ts->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ts->wake, &ca);
	pthread_condattr_destroy(&ca);
	ts->reported = json_object();
	if (!ts->reported) {
		ts_free(ts);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	for (int i = 0; i < TS_INF_N; i++) {
		kube_informer_opts io = {
		    .client = o->client,
		    .notify = ts_notify,
		    .ctx = ts,
		    .backoff_min_ms = o->backoff_min_ms,
		    .backoff_max_ms = o->backoff_max_ms,
		    .watch_timeout_s = o->watch_timeout_s,
		};

		if (i == TS_INF_STACKABLE && !o->compat_stackable)
			continue;
		io.res =
		    i == TS_INF_SIGIL ? &kube_res_truststores : &kube_res_stackable_truststores;
		r = kube_informer_start(&io, &ts->inf[i], err);
		if (r < 0) {
			truststore_stop(ts);
			return r;
		}
	}
	e = pthread_create(&ts->thread, NULL, ts_main, ts);
	if (e) {
		truststore_stop(ts);
		return sigil_err_errno(err, e, "cannot start the TrustStore controller thread");
	}
	ts->started = true;
	*ret = ts;
	return 0;
}
