/* The Kubernetes Secret CA store's parsers and argument checks: Secret
 * objects (managed label, type, strict keys and values: truncated,
 * oversized, garbage), metav1 times, and what ca_store_kube_open and the
 * operations refuse before any request.  The store against an apiserver
 * is tests/integration/test_ca_store_kube.sh. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "ca/authority.h"
#include "ca/key.h"
#include "ca/server/store_kube.h"
#include "kube/client.h"
#include "kube/config.h"
#include "util/mem.h"

#define WHAT "CA store Secret sigil/sigil-ca-tls"

/* A fresh CA record's bytes (cert PEM + key PEM), base64 as Secret data. */
static char *make_b64_record(char **raw, size_t *raw_len)
{
	ca_authority *ca = NULL;
	STACK_OF(X509) *one = sk_X509_new_null();
	ca_create_opts o = {.alg = SIGIL_KEY_ECDSA_P256, .common_name = "kube store test"};
	ca_store_record rec = {0};
	sigil_err err = {0};
	char *data = NULL, *b64;
	size_t len = 0;

	assert_int_equal(ca_authority_create(&o, &ca, &err), 0);
	assert_non_null(one);
	assert_true(sk_X509_push(one, ca->cert) > 0);
	assert_int_equal(ca_certs_to_pem(one, &rec.cert_pem, &rec.cert_len, &err), 0);
	assert_int_equal(ca_key_to_pkcs8_pem(ca->key, &rec.key_pem, &rec.key_len, &err), 0);
	assert_int_equal(ca_store_record_format(&rec, &data, &len, &err), 0);
	b64 = malloc((len + 2) / 3 * 4 + 1);
	assert_non_null(b64);
	EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)data, (int)len);
	if (raw) {
		*raw = data;
		*raw_len = len;
	} else {
		sigil_freezero(data, len + 1);
	}
	ca_store_record_clear(&rec);
	sk_X509_free(one);
	ca_authority_free(ca);
	return b64;
}

static json_t *make_secret(const char *type, bool labelled)
{
	json_t *s = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "Secret",
			      "metadata", "name", "sigil-ca-tls", "namespace", "sigil");

	assert_non_null(s);
	if (type)
		json_object_set_new(s, "type", json_string(type));
	if (labelled)
		json_object_set_new(json_object_get(s, "metadata"), "labels",
				    json_pack("{s:s}", CA_STORE_KUBE_MANAGED_LABEL,
					      CA_STORE_KUBE_MANAGED_VALUE));
	json_object_set_new(s, "data", json_object());
	return s;
}

static void add_key(json_t *s, const char *key, const char *value)
{
	json_object_set_new(json_object_get(s, "data"), key, json_string(value));
}

static void expect_code(json_t *s, int code, const char *needle)
{
	ca_store_record *recs = (ca_store_record *)0x1;
	size_t n = 12345;
	sigil_err err = {0};

	assert_int_equal(ca_store_kube_parse_secret(s, WHAT, &recs, &n, &err), code);
	/* Out-parameters are written only on success. */
	assert_ptr_equal(recs, (ca_store_record *)0x1);
	assert_int_equal(n, 12345);
	if (needle && !strstr(err.msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
}

/* ---- Secret parsing ------------------------------------------------------ */

static void test_parse_valid_sorted(void **state)
{
	json_t *s = make_secret(CA_STORE_KUBE_SECRET_TYPE, true);
	char *raw = NULL, *b1, *b2, *b3;
	size_t raw_len = 0, n = 0;
	ca_store_record *recs = NULL;
	sigil_err err = {0};

	b1 = make_b64_record(&raw, &raw_len);
	b2 = make_b64_record(NULL, NULL);
	b3 = make_b64_record(NULL, NULL);
	/* Inserted out of order: load returns ascending generations. */
	add_key(s, "gen-0000000000000010.pem", b3);
	add_key(s, "gen-0000000000000001.pem", b1);
	add_key(s, "gen-0000000000000002.pem", b2);
	assert_int_equal(ca_store_kube_parse_secret(s, WHAT, &recs, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(recs[0].generation, 1);
	assert_int_equal(recs[1].generation, 2);
	assert_int_equal(recs[2].generation, 16);
	/* Byte for byte what was stored. */
	assert_int_equal(recs[0].cert_len + recs[0].key_len, raw_len);
	assert_memory_equal(recs[0].cert_pem, raw, recs[0].cert_len);
	assert_memory_equal(recs[0].key_pem, raw + recs[0].cert_len, recs[0].key_len);
	ca_store_records_free(recs, n);
	sigil_freezero(raw, raw_len + 1);
	free(b1);
	free(b2);
	free(b3);
	json_decref(s);
}

static void test_parse_empty(void **state)
{
	json_t *s = make_secret(CA_STORE_KUBE_SECRET_TYPE, true);
	ca_store_record *recs = (ca_store_record *)0x1;
	size_t n = 7;
	sigil_err err = {0};

	/* The apiserver drops an empty data map: both mean no generations. */
	assert_int_equal(ca_store_kube_parse_secret(s, WHAT, &recs, &n, &err), 0);
	assert_null(recs);
	assert_int_equal(n, 0);
	json_object_del(s, "data");
	n = 7;
	assert_int_equal(ca_store_kube_parse_secret(s, WHAT, &recs, &n, &err), 0);
	assert_int_equal(n, 0);
	json_decref(s);
}

static void test_parse_not_ours(void **state)
{
	json_t *s = make_secret("Opaque", false);

	expect_code(s, SIGIL_E_PRECOND, "not managed by sigil");
	json_decref(s);
	/* Labelled but of another type: somebody else's, or tampered with. */
	s = make_secret("Opaque", true);
	expect_code(s, SIGIL_E_PRECOND, "type is not sigil.dev/ca-store");
	json_decref(s);
	s = make_secret(NULL, true);
	expect_code(s, SIGIL_E_PRECOND, "type");
	json_decref(s);
	/* The label with another value. */
	s = make_secret(CA_STORE_KUBE_SECRET_TYPE, false);
	json_object_set_new(json_object_get(s, "metadata"), "labels",
			    json_pack("{s:s}", CA_STORE_KUBE_MANAGED_LABEL, "helm"));
	expect_code(s, SIGIL_E_PRECOND, "not managed by sigil");
	json_decref(s);
	/* Not an object at all. */
	s = json_string("Secret");
	expect_code(s, SIGIL_E_CORRUPT, "not an object");
	json_decref(s);
}

static void test_parse_bad_keys(void **state)
{
	static const char *bad[] = {
	    "README",
	    "gen-1.pem",
	    "gen-000000000000001.pem",   /* 15 digits: truncated */
	    "gen-00000000000000001.pem", /* 17 digits: oversized */
	    "gen-000000000000000A.pem",  /* upper case: a second name for a generation */
	    "gen-0000000000000001.crt",
	    "gen-0000000000000001.pem.bak",
	    "xgen-0000000000000001.pem",
	    "",
	};
	char *b = make_b64_record(NULL, NULL);

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(bad); i++) {
		json_t *s = make_secret(CA_STORE_KUBE_SECRET_TYPE, true);
		char needle[128];

		add_key(s, "gen-0000000000000001.pem", b);
		add_key(s, bad[i], b);
		snprintf(needle, sizeof(needle), WHAT " key %s: not a CA generation", bad[i]);
		expect_code(s, SIGIL_E_CORRUPT, needle);
		json_decref(s);
	}
	free(b);
}

static void test_parse_bad_values(void **state)
{
	char *raw = NULL;
	size_t raw_len = 0;
	char *b = make_b64_record(&raw, &raw_len);
	size_t blen = strlen(b);
	char *half, *ws, *midpad, *badchar, *big, *trunc_b64, *rec_garbage;
	json_t *s;

	/* Record truncated in the middle (valid base64 of half the bytes). */
	half = malloc(raw_len);
	assert_non_null(half);
	EVP_EncodeBlock((unsigned char *)half, (unsigned char *)raw, (int)(raw_len / 2 / 3 * 3));
	/* Base64 with a line break, '=' in the middle, a bad character, a
	 * length that is not a multiple of 4. */
	assert_true(asprintf(&ws, "%.*s\n%s", 8, b, b + 8) > 0);
	midpad = strdup(b);
	midpad[4] = '=';
	badchar = strdup(b);
	badchar[10] = '*';
	trunc_b64 = strndup(b, blen - 1);
	/* A base64 value whose bytes are not a record. */
	rec_garbage = strdup("aGVsbG8gd29ybGQ=");
	/* Larger than any record may be. */
	big = malloc(CA_STORE_MAX_RECORD_SIZE * 2);
	assert_non_null(big);
	memset(big, 'A', CA_STORE_MAX_RECORD_SIZE * 2 - 1);
	big[CA_STORE_MAX_RECORD_SIZE * 2 - 1] = '\0';

	const char *cases[] = {half, ws, midpad, badchar, trunc_b64, rec_garbage, big, ""};
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		s = make_secret(CA_STORE_KUBE_SECRET_TYPE, true);
		add_key(s, "gen-0000000000000001.pem", b);
		add_key(s, "gen-0000000000000002.pem", cases[i]);
		expect_code(s, SIGIL_E_CORRUPT, WHAT " key gen-0000000000000002.pem");
		json_decref(s);
	}
	/* A value that is not a string. */
	s = make_secret(CA_STORE_KUBE_SECRET_TYPE, true);
	json_object_set_new(json_object_get(s, "data"), "gen-0000000000000001.pem", json_integer(1));
	expect_code(s, SIGIL_E_CORRUPT, "not a string");
	json_decref(s);
	/* data that is not a map. */
	s = make_secret(CA_STORE_KUBE_SECRET_TYPE, true);
	json_object_set_new(s, "data", json_array());
	expect_code(s, SIGIL_E_CORRUPT, "data is not a map");
	json_decref(s);
	free(half);
	free(ws);
	free(midpad);
	free(badchar);
	free(trunc_b64);
	free(rec_garbage);
	free(big);
	free(b);
	sigil_freezero(raw, raw_len + 1);
}

static void test_parse_too_many(void **state)
{
	json_t *s = make_secret(CA_STORE_KUBE_SECRET_TYPE, true);
	char *b = make_b64_record(NULL, NULL);

	for (int i = 0; i <= CA_STORE_MAX_GENERATIONS; i++) {
		char key[32];
		snprintf(key, sizeof(key), "gen-%016x.pem", i + 1);
		add_key(s, key, b);
	}
	expect_code(s, SIGIL_E_LIMIT, "more than 64 CA generations");
	json_decref(s);
	free(b);
}

/* ---- time parsing ----------------------------------------------------------- */

static void test_parse_time(void **state)
{
	time_t t = 0;
	static const char *bad[] = {
	    "",
	    "2024-01-01",
	    "2024-01-01T00:00:00",          /* no zone */
	    "2024-01-01T00:00:00z",
	    "2024-01-01 00:00:00Z",
	    "2024-13-01T00:00:00Z",
	    "2024-02-31T00:00:00Z",         /* normalised by timegm: refused */
	    "2024-01-01T24:00:00Z",
	    "2024-01-01T00:00:00.Z",
	    "2024-01-01T00:00:00.1234567890Z", /* more than 9 fraction digits */
	    "2024-01-01T00:00:00Zjunk",
	    "2024-01-01T00:00:00+0100",
	    "2024-01-01T00:00:00+24:00",
	    "x024-01-01T00:00:00Z",
	    "2024-01-01T00:00:00.123456Z\n",
	};

	assert_int_equal(ca_store_kube_parse_time("2024-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 1704067200);
	assert_int_equal(ca_store_kube_parse_time("2024-01-01T00:00:05.123456Z", &t), 0);
	assert_int_equal(t, 1704067205);
	assert_int_equal(ca_store_kube_parse_time("2024-01-01T01:00:00+01:00", &t), 0);
	assert_int_equal(t, 1704067200);
	assert_int_equal(ca_store_kube_parse_time("2023-12-31T22:30:00.5-01:30", &t), 0);
	assert_int_equal(t, 1704067200);
	assert_int_equal(ca_store_kube_parse_time("2024-02-29T00:00:00Z", &t), 0);
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(bad); i++) {
		t = 42;
		if (ca_store_kube_parse_time(bad[i], &t) != SIGIL_E_INVALID)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(t, 42);
	}
	assert_int_equal(ca_store_kube_parse_time(NULL, &t), SIGIL_E_INVALID);
}

/* ---- open and argument checks ----------------------------------------------------- */

static kube_client *make_client(void)
{
	/* Port 1 on loopback: nothing listens, every request is refused. */
	kube_config cfg = {.server = (char *)"http://127.0.0.1:1", .token = (char *)"t"};
	kube_client_opts o;
	kube_client *c = NULL;
	sigil_err err = {0};

	kube_client_opts_init(&o);
	o.max_retries = 0;
	o.backoff_base_ms = 1;
	o.backoff_max_ms = 1;
	assert_int_equal(kube_client_new(&cfg, &o, &c, &err), 0);
	return c;
}

static void test_open_args(void **state)
{
	kube_client *c = make_client();
	ca_store *s = (ca_store *)0x1;
	sigil_err err = {0};
	char long_prefix[CA_STORE_KUBE_MAX_PREFIX + 2];

	memset(long_prefix, 'a', sizeof(long_prefix) - 1);
	long_prefix[sizeof(long_prefix) - 1] = '\0';
	assert_int_equal(ca_store_kube_open(NULL, "sigil", "sigil-ca", "pod-0", &s, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(ca_store_kube_open(c, "", "sigil-ca", "pod-0", &s, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_store_kube_open(c, "Sigil", "sigil-ca", "pod-0", &s, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(ca_store_kube_open(c, "a.b", "sigil-ca", "pod-0", &s, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(ca_store_kube_open(c, "sigil", "", "pod-0", &s, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_store_kube_open(c, "sigil", "sigil-", "pod-0", &s, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(ca_store_kube_open(c, "sigil", "Sigil", "pod-0", &s, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(ca_store_kube_open(c, "sigil", long_prefix, "pod-0", &s, &err),
			 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "name prefix"));
	assert_int_equal(ca_store_kube_open(c, "sigil", "sigil-ca", "", &s, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_store_kube_open(c, "sigil", "sigil-ca", "pod 0", &s, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(ca_store_kube_open(c, "sigil", "sigil-ca", NULL, &s, &err),
			 SIGIL_E_INVALID);
	assert_ptr_equal(s, (ca_store *)0x1);
	/* The longest prefix still leaves room for the longest class. */
	long_prefix[CA_STORE_KUBE_MAX_PREFIX] = '\0';
	assert_int_equal(ca_store_kube_open(c, "sigil", long_prefix, "pod-0", &s, &err), 0);
	ca_store_free(s);
	kube_client_free(c);
}

static void test_ops_refused_or_unavailable(void **state)
{
	kube_client *c = make_client();
	ca_store *s = NULL;
	ca_store_record *recs = NULL;
	size_t n = 0;
	sigil_err err = {0};

	assert_int_equal(ca_store_kube_open(c, "sigil", "sigil-ca", "pod-0", &s, &err), 0);
	/* Class names are checked before any request. */
	assert_int_equal(ca_store_load(s, "Bad", &recs, &n, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_store_load(s, "tls-", &recs, &n, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "must end with a letter or digit"));
	/* Valid class names, but not as part of an object name (RFC 1123
	 * labels start and end with an alphanumeric). */
	assert_int_equal(ca_store_lock(s, "tls.", &err), SIGIL_E_INVALID);
	assert_int_equal(ca_store_load(s, "a..b", &recs, &n, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_store_load(s, "a.-b", &recs, &n, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_store_load(s, "a-.b", &recs, &n, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_store_remove(s, "", 1, &err), SIGIL_E_INVALID);
	/* Nobody listening: the apiserver is unavailable, nothing loaded. */
	assert_int_equal(ca_store_load(s, "tls", &recs, &n, &err), SIGIL_E_UNAVAIL);
	assert_null(recs);
	assert_int_equal(ca_store_lock(s, "tls", &err), SIGIL_E_UNAVAIL);
	assert_non_null(strstr(err.msg, "locking CA class tls"));
	/* A failed lock is not held: unlock is a no-op and locking again
	 * fails the same way instead of deadlocking. */
	ca_store_unlock(s, "tls");
	assert_int_equal(ca_store_lock(s, "tls", &err), SIGIL_E_UNAVAIL);
	ca_store_free(s);
	ca_store_free(NULL);
	kube_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_valid_sorted),
	    cmocka_unit_test(test_parse_empty),
	    cmocka_unit_test(test_parse_not_ours),
	    cmocka_unit_test(test_parse_bad_keys),
	    cmocka_unit_test(test_parse_bad_values),
	    cmocka_unit_test(test_parse_too_many),
	    cmocka_unit_test(test_parse_time),
	    cmocka_unit_test(test_open_args),
	    cmocka_unit_test(test_ops_refused_or_unavailable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
