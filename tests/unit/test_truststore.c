/* ca/server/truststore: TrustStore spec parsing and the object it wants. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include "ca/server/kube_secrets.h"
#include "ca/server/truststore.h"
#include "tests/helpers/ca_fixtures.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_ok),
	    cmocka_unit_test(test_spec_bad),
	    cmocka_unit_test(test_desired_configmap_pem),
	    cmocka_unit_test(test_desired_secret_and_pkcs12),
	    cmocka_unit_test(test_desired_bad_bundle),
	    cmocka_unit_test(test_pem_from_certs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
