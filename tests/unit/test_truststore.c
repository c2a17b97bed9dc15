/* ca/server/truststore: TrustStore spec parsing, the object it wants, and
 * the controller against a small in-process apiserver (plain http on
 * 127.0.0.1) that serves TrustStores and answers ConfigMaps and Secrets
 * only by name: a LIST, WATCH, DELETE or PATCH of them is answered 403, as
 * sigil-ca's RBAC would, and recorded. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include "ca/server/kube_secrets.h"
#include "ca/server/truststore.h"
#include "tests/helpers/ca_fixtures.h"
#include "util/clock.h"
#include "util/mem.h"

/* As the apiserver returns a TrustStore. */
#define TS_OBJ(spec)                                                                               \
	"{\"apiVersion\":\"secrets.sigil.dev/v1alpha1\",\"kind\":\"TrustStore\","                  \
	"\"metadata\":{\"name\":\"my-ca\",\"namespace\":\"apps\",\"uid\":\"4b1c-77\","             \
	"\"resourceVersion\":\"31\",\"generation\":1},\"spec\":" spec "}"

static int parse(const char *text, truststore_spec *s, sigil_err *err)
{
	return truststore_spec_parse(&kube_res_truststores, text, strlen(text), s, err);
}

static void test_spec_ok(void **state)
{
	truststore_spec s;
	sigil_err err = {0};

	(void)state;
	assert_int_equal(parse(TS_OBJ("{\"secretClassName\":\"tls\"}"), &s, &err), 0);
	assert_string_equal(s.name, "my-ca");
	assert_string_equal(s.namespace_, "apps");
	assert_string_equal(s.uid, "4b1c-77");
	assert_string_equal(s.class_name, "tls");
	assert_string_equal(s.api_version, "secrets.sigil.dev/v1alpha1");
	assert_int_equal(s.target, TRUSTSTORE_TARGET_CONFIGMAP);
	assert_int_equal(s.format, TRUSTSTORE_FORMAT_PEM);

	assert_int_equal(parse(TS_OBJ("{\"secretClassName\":\"tls\",\"targetKind\":\"Secret\","
	                              "\"format\":\"tls-pkcs12\"}"),
	                       &s, &err),
	                 0);
	assert_int_equal(s.target, TRUSTSTORE_TARGET_SECRET);
	assert_int_equal(s.format, TRUSTSTORE_FORMAT_PKCS12);
	/* null is unset (Kubernetes semantics). */
	assert_int_equal(parse(TS_OBJ("{\"secretClassName\":\"tls\",\"targetKind\":null,"
	                              "\"format\":null}"),
	                       &s, &err),
	                 0);
	assert_int_equal(s.target, TRUSTSTORE_TARGET_CONFIGMAP);
	/* Stackable's group. */
	assert_int_equal(truststore_spec_parse(&kube_res_stackable_truststores,
	                                       TS_OBJ("{\"secretClassName\":\"tls\"}"),
	                                       strlen(TS_OBJ("{\"secretClassName\":\"tls\"}")), &s,
	                                       &err),
	                 0);
	assert_string_equal(s.api_version, "secrets.stackable.tech/v1alpha1");
}

static void expect_bad(const char *text, int code, const char *needle)
{
	truststore_spec s;
	sigil_err err = {0};
	int r = parse(text, &s, &err);

	if (r != code)
		fail_msg("%s: got %d (%s), want %d", text, r, err.msg, code);
	if (needle && !strstr(err.msg, needle))
		fail_msg("'%s' not in '%s'", needle, err.msg);
}

static void test_spec_bad(void **state)
{
	char *big;
	size_t n = TRUSTSTORE_MAX_OBJECT + 16;

	(void)state;
	expect_bad(TS_OBJ("{\"secretClassName\":\"tls\",\"targetkind\":\"Secret\"}"),
	           SIGIL_E_INVALID, "spec.targetkind");
	expect_bad(TS_OBJ("{\"secretClassName\":\"tls\",\"targetKind\":\"Pod\"}"), SIGIL_E_INVALID,
	           "targetKind");
	expect_bad(TS_OBJ("{\"secretClassName\":\"tls\",\"format\":\"kerberos\"}"), SIGIL_E_INVALID,
	           "format");
	expect_bad(TS_OBJ("{\"secretClassName\":\"tls\",\"format\":7}"), SIGIL_E_INVALID, "string");
	expect_bad(TS_OBJ("{}"), SIGIL_E_INVALID, "spec.secretClassName is required");
	expect_bad(TS_OBJ("{\"secretClassName\":\"../x\"}"), SIGIL_E_INVALID, NULL);
	expect_bad(TS_OBJ("{\"secretClassName\":\"a\\u0000b\"}"), SIGIL_E_INVALID, "NUL");
	expect_bad(TS_OBJ("[]"), SIGIL_E_INVALID, "spec");
	expect_bad(TS_OBJ("null"), SIGIL_E_INVALID, "spec");
	expect_bad(
	    "{\"metadata\":{\"name\":\"x\",\"namespace\":\"y\"},\"spec\":{\"secretClassName\":"
	    "\"tls\"}}",
	    SIGIL_E_INVALID, "uid");
	expect_bad("{\"metadata\":{\"name\":\"x\",\"uid\":\"u\"},\"spec\":{}}", SIGIL_E_INVALID,
	           "namespace");
	expect_bad("{\"metadata\":{\"name\":\"a/b\",\"namespace\":\"y\",\"uid\":\"u\"},"
	           "\"spec\":{\"secretClassName\":\"tls\"}}",
	           SIGIL_E_INVALID, NULL);
	/* Truncated, garbage, duplicate keys, not an object. */
	expect_bad("{\"metadata\":{\"name\":\"x\"", SIGIL_E_INVALID, "not JSON");
	expect_bad("", SIGIL_E_INVALID, NULL);
	expect_bad("\x01\x02garbage", SIGIL_E_INVALID, NULL);
	expect_bad("{\"spec\":{},\"spec\":{}}", SIGIL_E_INVALID, NULL);
	expect_bad("[1,2,3]", SIGIL_E_INVALID, NULL);
	expect_bad("\"x\"", SIGIL_E_INVALID, NULL);
	/* Oversized: refused before parsing. */
	big = malloc(n + 1);
	memset(big, ' ', n);
	big[n] = '\0';
	expect_bad(big, SIGIL_E_LIMIT, NULL);
	free(big);
	/* An over-long field. */
	{
		char text[1024], name[300];

		memset(name, 'a', sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		snprintf(text, sizeof(text), TS_OBJ("{\"secretClassName\":\"%s\"}"), name);
		expect_bad(text, SIGIL_E_LIMIT, NULL);
	}
}

static char *bundle_pem(int n_certs)
{
	X509 *xs[2];
	char *pem;

	for (int i = 0; i < n_certs; i++) {
		ca_authority *ca = fx_make_ca(SIGIL_KEY_ECDSA_P256, FX_NOW, 86400);

		xs[i] = ca->cert;
		X509_up_ref(xs[i]);
		ca_authority_free(ca);
	}
	pem = fx_certs_pem(xs, (size_t)n_certs);
	for (int i = 0; i < n_certs; i++)
		X509_free(xs[i]);
	return pem;
}

static truststore_spec spec_of(truststore_target t, truststore_format f)
{
	truststore_spec s;
	sigil_err err = {0};

	assert_int_equal(parse(TS_OBJ("{\"secretClassName\":\"tls\"}"), &s, &err), 0);
	s.target = t;
	s.format = f;
	return s;
}

/* What the API would hand back: the desired object plus server fields. */
static json_t *as_stored(const json_t *desired)
{
	json_t *o = json_deep_copy(desired);
	json_t *md = json_object_get(o, "metadata");

	json_object_set_new(md, "resourceVersion", json_string("77"));
	json_object_set_new(md, "uid", json_string("server-uid"));
	json_object_set_new(md, "creationTimestamp", json_string("2024-01-01T00:00:00Z"));
	return o;
}

static void test_desired_configmap_pem(void **state)
{
	char *pem = bundle_pem(2);
	truststore_spec s = spec_of(TRUSTSTORE_TARGET_CONFIGMAP, TRUSTSTORE_FORMAT_PEM);
	json_t *d = NULL, *stored;
	sigil_err err = {0};
	const char *crt;

	(void)state;
	/* Text around the certificates (a comment) is dropped. */
	{
		size_t len = strlen(pem) + 32;
		char *noisy = malloc(len);

		snprintf(noisy, len, "# bundle\n%s", pem);
		assert_int_equal(truststore_desired_object(&s, noisy, strlen(noisy), &d, &err), 0);
		free(noisy);
	}
	assert_string_equal(json_string_value(json_object_get(d, "kind")), "ConfigMap");
	crt = json_string_value(json_object_get(json_object_get(d, "data"), "ca.crt"));
	assert_non_null(crt);
	assert_string_equal(crt, pem);
	assert_null(json_object_get(d, "binaryData"));
	assert_true(truststore_object_managed(d));
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_array_get(json_object_get(json_object_get(d, "metadata"), "ownerReferences"),
	                       0),
	        "uid")),
	    "4b1c-77");

	stored = as_stored(d);
	assert_true(truststore_object_current(stored, d));
	/* Edited by someone else. */
	json_object_set_new(json_object_get(stored, "data"), "ca.crt", json_string("tampered"));
	assert_false(truststore_object_current(stored, d));
	json_decref(stored);
	/* An extra key. */
	stored = as_stored(d);
	json_object_set_new(json_object_get(stored, "data"), "extra", json_string("x"));
	assert_false(truststore_object_current(stored, d));
	json_decref(stored);
	/* Labels gone: not ours any more. */
	stored = as_stored(d);
	json_object_del(json_object_get(json_object_get(stored, "metadata"), "labels"),
	                TRUSTSTORE_LABEL_TRUSTSTORE);
	assert_false(truststore_object_managed(stored));
	assert_false(truststore_object_current(stored, d));
	json_decref(stored);
	/* A different owner (the TrustStore was re-created). */
	stored = as_stored(d);
	json_object_set_new(
	    json_array_get(json_object_get(json_object_get(stored, "metadata"), "ownerReferences"),
	                   0),
	    "uid", json_string("old"));
	assert_false(truststore_object_current(stored, d));
	json_decref(stored);
	/* A new bundle. */
	{
		char *pem2 = bundle_pem(1);
		json_t *d2 = NULL;

		assert_int_equal(truststore_desired_object(&s, pem2, strlen(pem2), &d2, &err), 0);
		stored = as_stored(d);
		assert_false(truststore_object_current(stored, d2));
		json_decref(stored);
		json_decref(d2);
		free(pem2);
	}
	json_decref(d);
	free(pem);
}

static void test_desired_secret_and_pkcs12(void **state)
{
	char *pem = bundle_pem(1);
	truststore_spec s = spec_of(TRUSTSTORE_TARGET_SECRET, TRUSTSTORE_FORMAT_PEM);
	json_t *d = NULL, *d2 = NULL, *stored;
	uint8_t *dec = NULL;
	size_t dlen = 0;
	const char *b64;
	sigil_err err = {0};

	(void)state;
	assert_int_equal(truststore_desired_object(&s, pem, strlen(pem), &d, &err), 0);
	assert_string_equal(json_string_value(json_object_get(d, "kind")), "Secret");
	assert_string_equal(json_string_value(json_object_get(d, "type")), "Opaque");
	b64 = json_string_value(json_object_get(json_object_get(d, "data"), "ca.crt"));
	assert_int_equal(kube_secrets_b64_decode(b64, strlen(b64), 65536, &dec, &dlen, &err), 0);
	assert_int_equal(dlen, strlen(pem));
	assert_memory_equal(dec, pem, dlen);
	sigil_freezero(dec, dlen + 1);
	json_decref(d);

	/* PKCS#12 in a ConfigMap: binaryData, a file Java and OpenSSL read. */
	s = spec_of(TRUSTSTORE_TARGET_CONFIGMAP, TRUSTSTORE_FORMAT_PKCS12);
	assert_int_equal(truststore_desired_object(&s, pem, strlen(pem), &d, &err), 0);
	assert_null(json_object_get(d, "data"));
	b64 =
	    json_string_value(json_object_get(json_object_get(d, "binaryData"), "truststore.p12"));
	assert_non_null(b64);
	assert_int_equal(kube_secrets_b64_decode(b64, strlen(b64), 1 << 20, &dec, &dlen, &err), 0);
	{
		const unsigned char *p = dec;
		PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)dlen);
		STACK_OF(X509) *ca = NULL;

		assert_non_null(p12);
		assert_true(PKCS12_parse(p12, "", NULL, NULL, &ca));
		assert_int_equal(sk_X509_num(ca), 1);
		sk_X509_pop_free(ca, X509_free);
		PKCS12_free(p12);
	}
	sigil_freezero(dec, dlen + 1);
	/* Rendered again, the bytes differ (salts) but nothing needs writing. */
	assert_int_equal(truststore_desired_object(&s, pem, strlen(pem), &d2, &err), 0);
	assert_string_not_equal(b64, json_string_value(json_object_get(
	                                 json_object_get(d2, "binaryData"), "truststore.p12")));
	stored = as_stored(d);
	assert_true(truststore_object_current(stored, d2));
	/* Edited file. */
	json_object_set_new(json_object_get(stored, "binaryData"), "truststore.p12",
	                    json_string("AAAA"));
	assert_false(truststore_object_current(stored, d2));
	json_decref(stored);
	/* Format changed to PEM: the file name differs. */
	{
		truststore_spec sp = spec_of(TRUSTSTORE_TARGET_CONFIGMAP, TRUSTSTORE_FORMAT_PEM);
		json_t *dp = NULL;

		assert_int_equal(truststore_desired_object(&sp, pem, strlen(pem), &dp, &err), 0);
		stored = as_stored(d);
		assert_false(truststore_object_current(stored, dp));
		json_decref(stored);
		json_decref(dp);
	}
	json_decref(d);
	json_decref(d2);
	free(pem);
}

static void test_desired_bad_bundle(void **state)
{
	truststore_spec s = spec_of(TRUSTSTORE_TARGET_CONFIGMAP, TRUSTSTORE_FORMAT_PEM);
	json_t *d = NULL;
	sigil_err err = {0};
	char *pem = bundle_pem(1);
	char *big;

	(void)state;
	assert_int_equal(truststore_desired_object(&s, "", 0, &d, &err), SIGIL_E_INVALID);
	assert_int_equal(truststore_desired_object(&s, "garbage", 7, &d, &err), SIGIL_E_INVALID);
	/* Truncated certificate. */
	assert_int_equal(truststore_desired_object(&s, pem, strlen(pem) / 2, &d, &err),
	                 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "class tls"));
	big = calloc(1, TRUSTSTORE_MAX_BUNDLE + 2);
	memset(big, 'x', TRUSTSTORE_MAX_BUNDLE + 1);
	assert_int_equal(truststore_desired_object(&s, big, TRUSTSTORE_MAX_BUNDLE + 1, &d, &err),
	                 SIGIL_E_LIMIT);
	/* Too many certificates. */
	{
		size_t one = strlen(pem), n = TRUSTSTORE_MAX_CERTS + 1;
		char *many = malloc(one * n + 1);

		for (size_t i = 0; i < n; i++)
			memcpy(many + i * one, pem, one);
		many[one * n] = '\0';
		assert_int_equal(truststore_desired_object(&s, many, one * n, &d, &err),
		                 SIGIL_E_LIMIT);
		free(many);
	}
	assert_null(d);
	free(big);
	free(pem);
}

static void test_pem_from_certs(void **state)
{
	char *pem = bundle_pem(2), *out = NULL;
	size_t len = 0;
	STACK_OF(X509) *st = sk_X509_new_null();
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;
	sigil_err err = {0};

	(void)state;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		sk_X509_push(st, x);
	assert_int_equal(sk_X509_num(st), 2);
	assert_int_equal(truststore_pem_from_certs(st, &out, &len, &err), 0);
	assert_int_equal(len, strlen(pem));
	assert_string_equal(out, pem);
	free(out);
	sk_X509_pop_free(st, X509_free);
	st = sk_X509_new_null();
	assert_int_equal(truststore_pem_from_certs(st, &out, &len, &err), SIGIL_E_INVALID);
	assert_int_equal(truststore_pem_from_certs(NULL, &out, &len, &err), SIGIL_E_INVALID);
	sk_X509_free(st);
	BIO_free(b);
	free(pem);
}

/* ---- the controller against an in-process apiserver ------------------------------------- */

/* Requests held in the log, and connections served at once. */
#define FAKE_MAX_LOG  8192
#define FAKE_MAX_CONN 64
#define FAKE_MAX_REQ  (256u * 1024)

typedef struct fake_api {
	int lfd;
	int port;
	pthread_t th;
	atomic_int quit;
	atomic_int live; /* connection threads running */
	pthread_mutex_t lock;
	unsigned long rv;
	json_t *objs;        /* "configmaps/ns/name" or "secrets/ns/name" -> object */
	json_t *truststores; /* array of TrustStore objects */
	json_t *log;         /* array of {method, path, query, status} */
} fake_api;

static fake_api api;

static void send_all_fd(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* "NS/KIND[/NAME]" -> its parts; *n: how many (2 or 3). */
static int fake_split_path(const char *p, char *ns, size_t ns_size, char *kind, size_t kind_size,
                           char *name, size_t name_size, int *n)
{
	char *dst[3] = {ns, kind, name};
	size_t size[3] = {ns_size, kind_size, name_size};
	int i = 0;

	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (i >= 3 || len == 0 || len >= size[i])
			return -1;
		memcpy(dst[i], p, len);
		dst[i][len] = '\0';
		i++;
		p += len;
		if (*p == '/')
			p++;
	}
	*n = i;
	return i >= 2 ? 0 : -1;
}

static void fake_send(int fd, int code, const char *reason, const char *body)
{
	char hdr[256];
	size_t blen = strlen(body);
	int n = snprintf(hdr, sizeof(hdr),
	                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: "
	                 "close\r\nContent-Length: %zu\r\n\r\n",
	                 code, reason, blen);

	send_all_fd(fd, hdr, (size_t)n);
	send_all_fd(fd, body, blen);
}

static void fake_send_json(int fd, int code, const char *reason, json_t *obj)
{
	char *body = json_dumps(obj, JSON_COMPACT);

	fake_send(fd, code, reason, body ? body : "{}");
	free(body);
}

static void fake_status(int fd, int code, const char *reason, const char *message)
{
	json_t *st =
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion", "v1",
	              "status", "Failure", "message", message, "reason", reason, "code", code);

	fake_send_json(fd, code, reason, st);
	json_decref(st);
}

/* With api.lock held. */
static void fake_stamp(json_t *obj)
{
	char rv[32];
	json_t *md = json_object_get(obj, "metadata");

	snprintf(rv, sizeof(rv), "%lu", ++api.rv);
	json_object_set_new(md, "resourceVersion", json_string(rv));
}

/* Answers one request; returns its status code (0: a watch held open). */
static int fake_route(int fd, const char *method, const char *path, const char *query,
                      const char *body, size_t body_len)
{
	char kind[32] = "", ns[128] = "", name[256] = "", key[512];
	json_t *obj, *in;
	int n = 0;

	if (!strcmp(path, "/apis/secrets.sigil.dev/v1alpha1/truststores") &&
	    !strcmp(method, "GET")) {
		json_t *list;
		char rv[32];

		if (strstr(query, "watch=1")) {
			/* A watch that never sees a change: TrustStore edits
			 * are not what this test is about. */
			static const char hdr[] = "HTTP/1.1 200 OK\r\nContent-Type: "
			                          "application/json\r\nConnection: close\r\n\r\n";

			send_all_fd(fd, hdr, sizeof(hdr) - 1);
			while (!atomic_load(&api.quit)) {
				struct pollfd p = {.fd = fd, .events = POLLIN};
				char b;

				if (poll(&p, 1, 50) > 0 && recv(fd, &b, 1, 0) <= 0)
					break;
			}
			return 0;
		}
		pthread_mutex_lock(&api.lock);
		snprintf(rv, sizeof(rv), "%lu", api.rv);
		list = json_pack("{s:s, s:s, s:{s:s}, s:O}", "apiVersion",
		                 "secrets.sigil.dev/v1alpha1", "kind", "TrustStoreList", "metadata",
		                 "resourceVersion", rv, "items", api.truststores);
		pthread_mutex_unlock(&api.lock);
		fake_send_json(fd, 200, "OK", list);
		json_decref(list);
		return 200;
	}
	if (!strcmp(method, "POST") && !strncmp(path, "/api/v1/namespaces/", 19) &&
	    strstr(path, "/events")) {
		fake_send(fd, 201, "Created", body_len ? body : "{}");
		return 201;
	}
	/* /api/v1/namespaces/NS/KIND[/NAME] */
	if (strncmp(path, "/api/v1/namespaces/", 19) != 0 ||
	    fake_split_path(path + 19, ns, sizeof(ns), kind, sizeof(kind), name, sizeof(name), &n) <
	        0 ||
	    (strcmp(kind, "configmaps") != 0 && strcmp(kind, "secrets") != 0)) {
		if (strstr(path, "configmaps") || strstr(path, "secrets")) {
			fake_status(fd, 403, "Forbidden",
			            "only get, create and update are granted");
			return 403;
		}
		fake_status(fd, 404, "NotFound", "no such path");
		return 404;
	}
	/* What sigil-ca's ClusterRole grants on them: get, create, update. */
	if (!((n == 3 && (!strcmp(method, "GET") || !strcmp(method, "PUT"))) ||
	      (n == 2 && !strcmp(method, "POST")))) {
		fake_status(fd, 403, "Forbidden", "only get, create and update are granted");
		return 403;
	}
	if (n == 2) {
		in = json_loadb(body, body_len, 0, NULL);
		if (!in || !kube_object_name(in)) {
			json_decref(in);
			fake_status(fd, 400, "BadRequest", "bad object");
			return 400;
		}
		snprintf(name, sizeof(name), "%s", kube_object_name(in));
	}
	snprintf(key, sizeof(key), "%s/%s/%s", kind, ns, name);
	pthread_mutex_lock(&api.lock);
	obj = json_object_get(api.objs, key);
	if (!strcmp(method, "GET")) {
		if (obj) {
			json_t *copy = json_deep_copy(obj);

			pthread_mutex_unlock(&api.lock);
			fake_send_json(fd, 200, "OK", copy);
			json_decref(copy);
			return 200;
		}
		pthread_mutex_unlock(&api.lock);
		fake_status(fd, 404, "NotFound", "not found");
		return 404;
	}
	if (n == 3)
		in = json_loadb(body, body_len, 0, NULL);
	if (!json_is_object(in) || !json_is_object(json_object_get(in, "metadata"))) {
		pthread_mutex_unlock(&api.lock);
		json_decref(in);
		fake_status(fd, 400, "BadRequest", "bad object");
		return 400;
	}
	if (!strcmp(method, "POST") && obj) {
		pthread_mutex_unlock(&api.lock);
		json_decref(in);
		fake_status(fd, 409, "AlreadyExists", "already exists");
		return 409;
	}
	if (!strcmp(method, "PUT")) {
		const char *want = kube_object_resource_version(in);
		const char *have = obj ? kube_object_resource_version(obj) : NULL;

		if (!obj) {
			pthread_mutex_unlock(&api.lock);
			json_decref(in);
			fake_status(fd, 404, "NotFound", "not found");
			return 404;
		}
		if (!want || !have || strcmp(want, have) != 0) {
			pthread_mutex_unlock(&api.lock);
			json_decref(in);
			fake_status(fd, 409, "Conflict", "the object has been modified");
			return 409;
		}
	}
	fake_stamp(in);
	json_object_set(api.objs, key, in);
	pthread_mutex_unlock(&api.lock);
	fake_send_json(fd, strcmp(method, "POST") ? 200 : 201,
	               strcmp(method, "POST") ? "OK" : "Created", in);
	json_decref(in);
	return strcmp(method, "POST") ? 200 : 201;
}

static void *fake_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *req = malloc(FAKE_MAX_REQ + 1);
	char method[16] = "", target[2048] = "";
	size_t got = 0, clen = 0;
	char *end = NULL, *cl, *sp1, *sp2, *q;
	int code;

	while (req && !end && got < FAKE_MAX_REQ) {
		ssize_t r = recv(fd, req + got, FAKE_MAX_REQ - got, 0);

		if (r <= 0)
			break;
		got += (size_t)r;
		req[got] = '\0';
		end = strstr(req, "\r\n\r\n");
	}
	if (!end)
		goto out;
	cl = strcasestr(req, "\r\nContent-Length: ");
	if (cl && cl < end)
		clen = strtoul(cl + 18, NULL, 10);
	while (got < (size_t)(end - req) + 4 + clen && got < FAKE_MAX_REQ) {
		ssize_t r = recv(fd, req + got, FAKE_MAX_REQ - got, 0);

		if (r <= 0)
			break;
		got += (size_t)r;
		req[got] = '\0';
	}
	sp1 = strchr(req, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || (size_t)(sp1 - req) >= sizeof(method) ||
	    (size_t)(sp2 - sp1 - 1) >= sizeof(target))
		goto out;
	memcpy(method, req, (size_t)(sp1 - req));
	memcpy(target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	q = strchr(target, '?');
	if (q)
		*q++ = '\0';
	code = fake_route(fd, method, target, q ? q : "", end + 4, got - (size_t)(end + 4 - req));
	pthread_mutex_lock(&api.lock);
	if (json_array_size(api.log) < FAKE_MAX_LOG)
		json_array_append_new(api.log,
		                      json_pack("{s:s, s:s, s:s, s:i}", "method", method, "path",
		                                target, "query", q ? q : "", "status", code));
	pthread_mutex_unlock(&api.lock);
out:
	free(req);
	shutdown(fd, SHUT_RDWR);
	close(fd);
	atomic_fetch_sub(&api.live, 1);
	return NULL;
}

static void *fake_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&api.quit)) {
		struct pollfd p = {.fd = api.lfd, .events = POLLIN};
		pthread_t t;
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(api.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		while (atomic_load(&api.live) >= FAKE_MAX_CONN && !atomic_load(&api.quit))
			usleep(1000);
		atomic_fetch_add(&api.live, 1);
		if (pthread_create(&t, NULL, fake_conn, (void *)(intptr_t)fd) != 0) {
			atomic_fetch_sub(&api.live, 1);
			close(fd);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static void fake_start(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	memset(&api, 0, sizeof(api));
	pthread_mutex_init(&api.lock, NULL);
	api.rv = 100;
	api.objs = json_object();
	api.truststores = json_array();
	api.log = json_array();
	api.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(api.lfd >= 0);
	assert_int_equal(bind(api.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(api.lfd, 64), 0);
	assert_int_equal(getsockname(api.lfd, (struct sockaddr *)&a, &alen), 0);
	api.port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&api.th, NULL, fake_main, NULL), 0);
}

static void fake_stop(void)
{
	atomic_store(&api.quit, 1);
	pthread_join(api.th, NULL);
	while (atomic_load(&api.live) > 0)
		usleep(1000);
	close(api.lfd);
	json_decref(api.objs);
	json_decref(api.truststores);
	json_decref(api.log);
	pthread_mutex_destroy(&api.lock);
}

static void fake_add_truststore(const char *name, const char *spec_json)
{
	char uid[64];
	json_t *spec = json_loads(spec_json, 0, NULL);
	json_t *o;

	assert_non_null(spec);
	snprintf(uid, sizeof(uid), "uid-%s", name);
	o = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:o}", "apiVersion",
	              "secrets.sigil.dev/v1alpha1", "kind", "TrustStore", "metadata", "name", name,
	              "namespace", "apps", "uid", uid, "resourceVersion", "7", "spec", spec);
	assert_non_null(o);
	pthread_mutex_lock(&api.lock);
	json_array_append_new(api.truststores, o);
	pthread_mutex_unlock(&api.lock);
}

/* A copy of the stored object (NULL: none). */
static json_t *fake_get(const char *kind, const char *name)
{
	char key[256];
	json_t *o;

	snprintf(key, sizeof(key), "%s/apps/%s", kind, name);
	pthread_mutex_lock(&api.lock);
	o = json_deep_copy(json_object_get(api.objs, key));
	pthread_mutex_unlock(&api.lock);
	return o;
}

/* Someone else writes (obj) or deletes (NULL) an object. */
static void fake_put(const char *kind, const char *name, json_t *obj)
{
	char key[256];

	snprintf(key, sizeof(key), "%s/apps/%s", kind, name);
	pthread_mutex_lock(&api.lock);
	if (obj) {
		fake_stamp(obj);
		json_object_set_new(api.objs, key, obj);
	} else {
		json_object_del(api.objs, key);
	}
	pthread_mutex_unlock(&api.lock);
}

/* Requests matching method (NULL: any) on a path starting with prefix;
 * with collection, only those on the collection itself (LIST/WATCH). */
static size_t fake_count(const char *method, const char *prefix, bool collection)
{
	size_t i, n = 0;
	json_t *e;

	pthread_mutex_lock(&api.lock);
	json_array_foreach(api.log, i, e)
	{
		const char *m = json_string_value(json_object_get(e, "method"));
		const char *p = json_string_value(json_object_get(e, "path"));

		if (method && strcmp(m, method) != 0)
			continue;
		if (strncmp(p, prefix, strlen(prefix)) != 0)
			continue;
		if (collection && p[strlen(prefix)] != '\0')
			continue;
		n++;
	}
	pthread_mutex_unlock(&api.lock);
	return n;
}

static size_t fake_count_status(int code)
{
	size_t i, n = 0;
	json_t *e;

	pthread_mutex_lock(&api.lock);
	json_array_foreach(api.log, i, e)
	{
		n += json_integer_value(json_object_get(e, "status")) == code;
	}
	pthread_mutex_unlock(&api.lock);
	return n;
}

/* The controller's side: the bundle it is given, what it reports. */
typedef struct ctl_state {
	pthread_mutex_t lock;
	char *pem;
	uint64_t version;
	json_t *errors;  /* array of "name: message" */
	json_t *actions; /* array of "name kind action" */
} ctl_state;

static int ctl_bundle(const char *class_name, char **pem, size_t *pem_len, uint64_t *version,
                      void *ctx, sigil_err *err)
{
	ctl_state *cs = ctx;
	char *copy;

	if (strcmp(class_name, "tls") != 0)
		return sigil_err_set(err, SIGIL_E_NOTFOUND, "no SecretClass named %s", class_name);
	pthread_mutex_lock(&cs->lock);
	copy = strdup(cs->pem);
	*version = cs->version;
	pthread_mutex_unlock(&cs->lock);
	if (!copy)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	*pem = copy;
	*pem_len = strlen(copy);
	return 0;
}

static void ctl_error(const char *ns, const char *name, const sigil_err *why, void *ctx)
{
	ctl_state *cs = ctx;
	char line[SIGIL_ERR_MSG_MAX + 300];

	snprintf(line, sizeof(line), "%s/%s: %s", ns, name, why->msg);
	pthread_mutex_lock(&cs->lock);
	json_array_append_new(cs->errors, json_string(line));
	pthread_mutex_unlock(&cs->lock);
}

static void ctl_action(const char *ns, const char *name, const char *kind, const char *action,
                       void *ctx)
{
	ctl_state *cs = ctx;
	char line[512];

	snprintf(line, sizeof(line), "%s/%s %s %s", ns, name, kind, action);
	pthread_mutex_lock(&cs->lock);
	json_array_append_new(cs->actions, json_string(line));
	pthread_mutex_unlock(&cs->lock);
}

static size_t ctl_count(ctl_state *cs, json_t *arr, const char *needle)
{
	size_t i, n = 0;
	json_t *v;

	pthread_mutex_lock(&cs->lock);
	json_array_foreach(arr, i, v)
	{
		n += strstr(json_string_value(v), needle) != NULL;
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}

/* The PEM file an object holds ("" when none). */
static char *stored_pem(const char *kind, const char *name)
{
	json_t *o = fake_get(kind, name);
	kube_secrets_item *items = NULL;
	size_t n = 0;
	char *pem;

	if (!o ||
	    kube_secrets_decode_object(o, !strcmp(kind, "configmaps"), "stored", &items, &n, NULL) <
	        0 ||
	    n != 1 || strcmp(items[0].key, "ca.crt") != 0) {
		kube_secrets_items_free(items, n);
		json_decref(o);
		return strdup("");
	}
	pem = strndup((const char *)items[0].data, items[0].len);
	kube_secrets_items_free(items, n);
	json_decref(o);
	return pem;
}

static bool holds_pem(const char *kind, const char *name, const char *want)
{
	char *have = stored_pem(kind, name);
	bool ok = have && !strcmp(have, want);

	free(have);
	return ok;
}

/* Waits (generously: this is about what happens, not how fast) until
 * cond holds. */
#define WAIT_FOR(cond)                                                                             \
	do {                                                                                       \
		int64_t until_ = sigil_mono_ms() + 30000;                                          \
		while (!(cond) && sigil_mono_ms() < until_)                                        \
			usleep(20000);                                                             \
		assert_true(cond);                                                                 \
	} while (0)

static void test_controller_by_name_only(void **state)
{
	ctl_state cs = {.lock = PTHREAD_MUTEX_INITIALIZER};
	char *pem2 = bundle_pem(2);
	kube_config cfg = {0};
	kube_client_opts co;
	kube_client *c = NULL;
	truststore *ts = NULL;
	char url[64];
	sigil_err err = {0};
	json_t *o;
	size_t writes;
	const char *foreign_rv;
	char foreign_rv_copy[32];

	(void)state;
	cs.pem = bundle_pem(1);
	cs.version = 1;
	cs.errors = json_array();
	cs.actions = json_array();
	fake_start();
	fake_add_truststore("ts-cm", "{\"secretClassName\":\"tls\"}");
	fake_add_truststore("ts-sec", "{\"secretClassName\":\"tls\",\"targetKind\":\"Secret\"}");
	fake_add_truststore("foreign", "{\"secretClassName\":\"tls\"}");
	fake_add_truststore("ghost", "{\"secretClassName\":\"nope\"}");
	fake_put("configmaps", "foreign",
	         json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1", "kind",
	                   "ConfigMap", "metadata", "name", "foreign", "namespace", "apps",
	                   "labels", "app", "other", "data", "ca.crt", "not sigil's"));

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", api.port);
	cfg.server = url;
	cfg.namespace_ = "sigil";
	kube_client_opts_init(&co);
	co.qps = 0;
	co.timeout_ms = 10000;
	co.backoff_base_ms = 10;
	co.backoff_max_ms = 40;
	assert_int_equal(kube_client_new(&cfg, &co, &c, &err), 0);
	{
		truststore_opts o2 = {.client = c,
		                      .get_bundle = ctl_bundle,
		                      .on_error = ctl_error,
		                      .on_action = ctl_action,
		                      .ctx = &cs,
		                      .no_events = true,
		                      .resync_ms = 200,
		                      .backoff_min_ms = 20,
		                      .backoff_max_ms = 100};

		assert_int_equal(truststore_start(&o2, &ts, &err), 0);
	}

	/* Created, with sigil's labels and the ownerReference. */
	WAIT_FOR(holds_pem("configmaps", "ts-cm", cs.pem));
	WAIT_FOR(holds_pem("secrets", "ts-sec", cs.pem));
	o = fake_get("secrets", "ts-sec");
	assert_true(truststore_object_managed(o));
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_array_get(json_object_get(json_object_get(o, "metadata"), "ownerReferences"),
	                       0),
	        "uid")),
	    "uid-ts-sec");
	json_decref(o);

	/* Someone else's object of that name is reported and left alone. */
	WAIT_FOR(ctl_count(&cs, cs.errors, "apps/foreign: ") > 0);
	assert_true(ctl_count(&cs, cs.errors, "not managed by sigil") > 0);
	WAIT_FOR(ctl_count(&cs, cs.errors, "apps/ghost: SecretClass nope") > 0);
	o = fake_get("configmaps", "foreign");
	foreign_rv = kube_object_resource_version(o);
	snprintf(foreign_rv_copy, sizeof(foreign_rv_copy), "%s", foreign_rv);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(o, "data"), "ca.crt")),
	    "not sigil's");
	json_decref(o);

	/* Deleted by someone: only the resync can notice (nothing watches
	 * ConfigMaps), and it recreates it. */
	fake_put("configmaps", "ts-cm", NULL);
	WAIT_FOR(holds_pem("configmaps", "ts-cm", cs.pem));
	assert_true(ctl_count(&cs, cs.actions, "apps/ts-cm ConfigMap created") >= 2);

	/* Edited by someone (labels kept): restored. */
	o = fake_get("secrets", "ts-sec");
	json_object_set_new(json_object_get(o, "data"), "ca.crt", json_string("dGFtcGVyZWQ="));
	fake_put("secrets", "ts-sec", o);
	assert_false(holds_pem("secrets", "ts-sec", cs.pem));
	WAIT_FOR(holds_pem("secrets", "ts-sec", cs.pem));
	assert_true(ctl_count(&cs, cs.actions, "apps/ts-sec Secret updated") >= 1);

	/* A new bundle: both rewritten. */
	pthread_mutex_lock(&cs.lock);
	free(cs.pem);
	cs.pem = pem2;
	cs.version = 2;
	pthread_mutex_unlock(&cs.lock);
	truststore_kick(ts);
	WAIT_FOR(holds_pem("configmaps", "ts-cm", pem2));
	WAIT_FOR(holds_pem("secrets", "ts-sec", pem2));

	/* Settled: several resyncs read the targets and write nothing. */
	writes = fake_count("PUT", "/api/v1/", false) + fake_count("POST", "/api/v1/", false);
	{
		size_t gets = fake_count("GET", "/api/v1/namespaces/apps/configmaps/ts-cm", false);

		WAIT_FOR(fake_count("GET", "/api/v1/namespaces/apps/configmaps/ts-cm", false) >=
		         gets + 3);
	}
	assert_int_equal(
	    fake_count("PUT", "/api/v1/", false) + fake_count("POST", "/api/v1/", false), writes);
	truststore_stop(ts);

	/* What it asked for: targets by name, never a list, watch, delete or
	 * patch of ConfigMaps or Secrets. */
	o = fake_get("configmaps", "foreign");
	assert_string_equal(kube_object_resource_version(o), foreign_rv_copy);
	json_decref(o);
	assert_true(fake_count("GET", "/api/v1/namespaces/apps/secrets/ts-sec", false) > 0);
	assert_true(fake_count("PUT", "/api/v1/namespaces/apps/configmaps/ts-cm", false) > 0);
	assert_int_equal(fake_count("DELETE", "/", false), 0);
	assert_int_equal(fake_count("PATCH", "/", false), 0);
	assert_int_equal(fake_count("GET", "/api/v1/configmaps", false), 0);
	assert_int_equal(fake_count("GET", "/api/v1/secrets", false), 0);
	assert_int_equal(fake_count("GET", "/api/v1/namespaces/apps/configmaps", true), 0);
	assert_int_equal(fake_count("GET", "/api/v1/namespaces/apps/secrets", true), 0);
	assert_int_equal(fake_count_status(403), 0);
	assert_true(fake_count("GET", "/apis/secrets.sigil.dev/v1alpha1/truststores", true) > 0);

	kube_client_free(c);
	fake_stop();
	free(cs.pem);
	json_decref(cs.errors);
	json_decref(cs.actions);
	pthread_mutex_destroy(&cs.lock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_ok),
	    cmocka_unit_test(test_spec_bad),
	    cmocka_unit_test(test_desired_configmap_pem),
	    cmocka_unit_test(test_desired_secret_and_pkcs12),
	    cmocka_unit_test(test_desired_bad_bundle),
	    cmocka_unit_test(test_pem_from_certs),
	    cmocka_unit_test(test_controller_by_name_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
