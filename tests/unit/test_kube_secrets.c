/* ca/server/kube_secrets: key names, base64, Secret/ConfigMap decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/server/kube_secrets.h"
#include "util/mem.h"

static void test_key_ok(void **state)
{
	char long_ok[KUBE_SECRETS_MAX_KEY + 1], too_long[KUBE_SECRETS_MAX_KEY + 2];

	(void)state;
	assert_true(kube_secrets_key_ok("ca.crt"));
	assert_true(kube_secrets_key_ok("tls.key"));
	assert_true(kube_secrets_key_ok("a-b_c.D9"));
	assert_true(kube_secrets_key_ok(".hidden")); /* the apiserver allows it */
	assert_false(kube_secrets_key_ok(NULL));
	assert_false(kube_secrets_key_ok(""));
	assert_false(kube_secrets_key_ok("."));
	assert_false(kube_secrets_key_ok(".."));
	assert_false(kube_secrets_key_ok("..data"));
	assert_false(kube_secrets_key_ok(KUBE_SECRETS_MARKER));
	assert_false(kube_secrets_key_ok("a/b"));
	assert_false(kube_secrets_key_ok("../etc/passwd"));
	assert_false(kube_secrets_key_ok("/abs"));
	assert_false(kube_secrets_key_ok("a b"));
	assert_false(kube_secrets_key_ok("a\\b"));
	assert_false(kube_secrets_key_ok("caf\xc3\xa9"));
	assert_false(kube_secrets_key_ok("a\nb"));
	memset(long_ok, 'k', sizeof(long_ok) - 1);
	long_ok[sizeof(long_ok) - 1] = '\0';
	assert_true(kube_secrets_key_ok(long_ok));
	memset(too_long, 'k', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';
	assert_false(kube_secrets_key_ok(too_long));
}

static void test_b64_roundtrip(void **state)
{
	uint8_t in[64];
	sigil_err err = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof(in); n++) {
		char *enc = NULL;
		uint8_t *dec = NULL;
		size_t dlen = 0;

		assert_int_equal(kube_secrets_b64_encode(in, n, &enc, &err), 0);
		assert_int_equal(strlen(enc), (n + 2) / 3 * 4);
		assert_int_equal(kube_secrets_b64_decode(enc, strlen(enc), 1024, &dec, &dlen, &err),
		                 0);
		assert_int_equal(dlen, n);
		assert_memory_equal(dec, in, n);
		assert_int_equal(dec[n], 0);
		sigil_freezero(dec, dlen + 1);
		free(enc);
	}
	/* Known vector (RFC 4648 section 10). */
	{
		uint8_t *dec = NULL;
		size_t dlen = 0;

		assert_int_equal(kube_secrets_b64_decode("Zm9vYmE=", 8, 16, &dec, &dlen, &err), 0);
		assert_int_equal(dlen, 5);
		assert_memory_equal(dec, "fooba", 5);
		sigil_freezero(dec, dlen + 1);
	}
}

static void test_b64_garbage(void **state)
{
	static const char *const bad[] = {
	    "Zm9",       /* truncated */
	    "Zm9vY",     /* truncated */
	    "Zm9v\n",    /* line break */
	    "Zm=v",      /* padding in the middle */
	    "Z===",      /* too much padding */
	    "====",      /* only padding */
	    "Zm9v YmE=", /* space */
	    "Zm9_YmE=",  /* base64url */
	    "Zm9-YmE=",  /* base64url */
	    "Zm9vYmE\x80",
	};
	uint8_t *dec = (uint8_t *)"untouched";
	size_t dlen = 42;
	sigil_err err = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = kube_secrets_b64_decode(bad[i], strlen(bad[i]), 1024, &dec, &dlen, &err);

		if (r != SIGIL_E_INVALID)
			fail_msg("'%s' gave %d", bad[i], r);
	}
	assert_string_equal((char *)dec, "untouched");
	assert_int_equal(dlen, 42);
	/* Oversized. */
	assert_int_equal(kube_secrets_b64_decode("Zm9vYmFy", 8, 5, &dec, &dlen, &err),
	                 SIGIL_E_LIMIT);
	assert_int_equal(kube_secrets_b64_decode("Zm9vYmE=", 8, 5, &dec, &dlen, &err), 0);
	sigil_freezero(dec, dlen + 1);
	assert_int_equal(kube_secrets_b64_decode(NULL, 4, 5, &dec, &dlen, &err), SIGIL_E_INVALID);
}

static json_t *load(const char *s)
{
	json_error_t jerr;
	json_t *j = json_loads(s, 0, &jerr);

	if (!j)
		fail_msg("bad test JSON: %s", jerr.text);
	return j;
}

static void test_decode_secret(void **state)
{
	/* As the apiserver returns a Secret. */
	json_t *o = load("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"type\":\"Opaque\","
	                 "\"metadata\":{\"name\":\"ca\",\"namespace\":\"sigil\"},"
	                 "\"data\":{\"tls.key\":\"a2V5\",\"ca.crt\":\"Y2VydA==\",\"empty\":\"\"}}");
	kube_secrets_item *it = NULL;
	size_t n = 0;
	sigil_err err = {0};

	(void)state;
	assert_int_equal(kube_secrets_decode_object(o, false, "Secret sigil/ca", &it, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(it[0].key, "ca.crt"); /* sorted */
	assert_int_equal(it[0].len, 4);
	assert_memory_equal(it[0].data, "cert", 4);
	assert_string_equal(it[1].key, "empty");
	assert_int_equal(it[1].len, 0);
	assert_string_equal(it[2].key, "tls.key");
	assert_memory_equal(it[2].data, "key", 3);
	kube_secrets_items_free(it, n);
	json_decref(o);

	/* No data at all: an empty Secret. */
	o = load("{\"metadata\":{\"name\":\"e\"}}");
	assert_int_equal(kube_secrets_decode_object(o, false, "Secret x/e", &it, &n, &err), 0);
	assert_int_equal(n, 0);
	kube_secrets_items_free(it, n);
	json_decref(o);
}

static void test_decode_configmap(void **state)
{
	json_t *o = load("{\"metadata\":{\"name\":\"roots\"},\"data\":{\"ca.crt\":\"-----BEGIN\"},"
	                 "\"binaryData\":{\"truststore.p12\":\"AAEC\"}}");
	kube_secrets_item *it = NULL;
	size_t n = 0;
	sigil_err err = {0};

	(void)state;
	assert_int_equal(kube_secrets_decode_object(o, true, "ConfigMap x/roots", &it, &n, &err),
	                 0);
	assert_int_equal(n, 2);
	assert_string_equal(it[0].key, "ca.crt");
	assert_memory_equal(it[0].data, "-----BEGIN", 10);
	assert_string_equal(it[1].key, "truststore.p12");
	assert_int_equal(it[1].len, 3);
	assert_memory_equal(it[1].data, "\0\1\2", 3);
	kube_secrets_items_free(it, n);
	json_decref(o);
}

static void expect_bad(const char *text, bool cm, int code, const char *needle)
{
	json_t *o = load(text);
	kube_secrets_item *it = NULL;
	size_t n = 0;
	sigil_err err = {0};

	assert_int_equal(kube_secrets_decode_object(o, cm, "Secret ns/x", &it, &n, &err), code);
	assert_null(it);
	if (needle && !strstr(err.msg, needle))
		fail_msg("'%s' not in '%s'", needle, err.msg);
	json_decref(o);
}

static void test_decode_garbage(void **state)
{
	(void)state;
	expect_bad("{\"data\":{\"../x\":\"YQ==\"}}", false, SIGIL_E_INVALID, "../x");
	expect_bad("{\"data\":{\"a/b\":\"YQ==\"}}", false, SIGIL_E_INVALID, "Secret ns/x");
	expect_bad("{\"data\":{\"..data\":\"YQ==\"}}", true, SIGIL_E_INVALID, NULL);
	expect_bad("{\"data\":{\"k\":\"not base64!\"}}", false, SIGIL_E_INVALID, "data.k");
	expect_bad("{\"data\":{\"k\":5}}", false, SIGIL_E_INVALID, "not a string");
	expect_bad("{\"data\":[1]}", false, SIGIL_E_INVALID, NULL);
	expect_bad("{\"data\":{\"k\":\"YQ==\"},\"binaryData\":{\"k\":\"YQ==\"}}", true,
	           SIGIL_E_INVALID, "both");
	expect_bad("{\"binaryData\":{\"k\":\"@@@@\"}}", true, SIGIL_E_INVALID, NULL);
	{
		json_t *a = json_array();
		kube_secrets_item *it = NULL;
		size_t n = 0;

		assert_int_equal(kube_secrets_decode_object(a, false, "x", &it, &n, NULL),
		                 SIGIL_E_INVALID);
		json_decref(a);
	}
}

static void test_decode_oversized(void **state)
{
	json_t *o = json_object(), *data = json_object();
	kube_secrets_item *it = NULL;
	size_t n = 0, big = KUBE_SECRETS_MAX_VALUE + 1;
	char *s;
	sigil_err err = {0};

	(void)state;
	json_object_set_new(o, "data", data);
	/* Too many keys. */
	for (int i = 0; i <= KUBE_SECRETS_MAX_KEYS; i++) {
		char k[16];

		snprintf(k, sizeof(k), "k%d", i);
		json_object_set_new(data, k, json_string("YQ=="));
	}
	assert_int_equal(kube_secrets_decode_object(o, false, "Secret", &it, &n, &err),
	                 SIGIL_E_LIMIT);
	json_object_clear(data);
	/* One value too large (base64 in a Secret, text in a ConfigMap). */
	s = malloc(2 * (size_t)KUBE_SECRETS_MAX_VALUE);
	memset(s, 'A', 2 * (size_t)KUBE_SECRETS_MAX_VALUE);
	s[(KUBE_SECRETS_MAX_VALUE / 3 + 1) * 4] = '\0';
	json_object_set_new(data, "k", json_string(s));
	assert_int_equal(kube_secrets_decode_object(o, false, "Secret", &it, &n, &err),
	                 SIGIL_E_LIMIT);
	s[big] = '\0';
	json_object_set_new(data, "k", json_string(s));
	assert_int_equal(kube_secrets_decode_object(o, true, "ConfigMap", &it, &n, &err),
	                 SIGIL_E_LIMIT);
	/* Values each within the limit, together over the object limit. */
	json_object_clear(data);
	s[KUBE_SECRETS_MAX_VALUE] = '\0';
	for (int i = 0; i < 3; i++) {
		char k[16];

		snprintf(k, sizeof(k), "k%d", i);
		json_object_set_new(data, k, json_string(s));
	}
	assert_int_equal(kube_secrets_decode_object(o, true, "ConfigMap", &it, &n, &err),
	                 SIGIL_E_LIMIT);
	assert_null(it);
	free(s);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_ok),           cmocka_unit_test(test_b64_roundtrip),
	    cmocka_unit_test(test_b64_garbage),      cmocka_unit_test(test_decode_secret),
	    cmocka_unit_test(test_decode_configmap), cmocka_unit_test(test_decode_garbage),
	    cmocka_unit_test(test_decode_oversized),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
