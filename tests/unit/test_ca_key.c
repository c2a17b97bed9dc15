/* ca/key.c: algorithm names, generation, PKCS#8 PEM round trips, key
 * classification and PEM parsing of good, encrypted and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ca/key.h"
#include "tests/helpers/ca_fixtures.h"
#include "util/mem.h"

static const sigil_keyalg all_algs[] = {
	SIGIL_KEY_RSA2048,    SIGIL_KEY_RSA3072,    SIGIL_KEY_RSA4096,
	SIGIL_KEY_ECDSA_P256, SIGIL_KEY_ECDSA_P384, SIGIL_KEY_ED25519,
};

static void test_keyalg_names(void **state)
{
	static const char *names[] = { "rsa-2048",   "rsa-3072",   "rsa-4096",
				       "ecdsa-p256", "ecdsa-p384", "ed25519" };
	static const char *bad[] = { "",         "RSA-2048", "rsa-1024",  "rsa-2048 ",
				     "ecdsa-p521", "ed448",  "rsa",       "ecdsa",
				     "ed25519\n",  "x25519", "rsa-20480", "p256" };
	sigil_keyalg alg;

	(void)state;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(all_algs); i++) {
		assert_int_equal(ca_keyalg_parse(names[i], &alg), 0);
		assert_int_equal(alg, all_algs[i]);
		assert_string_equal(ca_keyalg_name(all_algs[i]), names[i]);
		assert_int_equal(ca_keyalg_is_rsa(all_algs[i]), i < 3);
	}
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(bad); i++) {
		alg = SIGIL_KEY__COUNT;
		assert_int_equal(ca_keyalg_parse(bad[i], &alg), SIGIL_E_INVALID);
		assert_int_equal(alg, SIGIL_KEY__COUNT); /* untouched on failure */
	}
	assert_int_equal(ca_keyalg_parse(NULL, &alg), SIGIL_E_INVALID);
	assert_string_equal(ca_keyalg_name(SIGIL_KEY__COUNT), "unknown");
	assert_false(ca_keyalg_is_rsa(SIGIL_KEY__COUNT));
}

static void test_generate_round_trip(void **state)
{
	static const char *descr[] = { "RSA 2048",    "RSA 3072",    "RSA 4096",
				       "ECDSA P-256", "ECDSA P-384", "Ed25519" };
	static const int bits[] = { 2048, 3072, 4096, 256, 384, 256 };

	(void)state;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(all_algs); i++) {
		sigil_err err = { 0 };
		EVP_PKEY *key = NULL, *back = NULL;
		sigil_keyalg alg;
		char *pem = NULL;
		size_t len = 0;
		char buf[64];

		assert_int_equal(ca_key_generate(all_algs[i], &key, &err), 0);
		assert_int_equal(EVP_PKEY_get_bits(key), bits[i]);
		assert_int_equal(ca_key_alg(key, &alg), 0);
		assert_int_equal(alg, all_algs[i]);
		assert_string_equal(ca_key_describe(key, buf, sizeof(buf)), descr[i]);

		assert_int_equal(ca_key_to_pkcs8_pem(key, &pem, &len, &err), 0);
		assert_int_equal(strlen(pem), len);
		assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
		assert_non_null(strstr(pem, "-----END PRIVATE KEY-----\n"));

		assert_int_equal(ca_key_from_pem(pem, len, NULL, &back, &err), 0);
		assert_int_equal(EVP_PKEY_eq(key, back), 1);
		assert_int_equal(ca_key_alg(back, &alg), 0);
		assert_int_equal(alg, all_algs[i]);

		/* The same key encrypted and decrypted again. */
		char *enc = fx_key_pem_encrypted(key, "s3cret pass");
		EVP_PKEY *dec = NULL;
		assert_non_null(strstr(enc, "ENCRYPTED PRIVATE KEY"));
		assert_int_equal(ca_key_from_pem(enc, strlen(enc), "s3cret pass", &dec, &err), 0);
		assert_int_equal(EVP_PKEY_eq(key, dec), 1);

		EVP_PKEY_free(dec);
		free(enc);
		sigil_freezero(pem, len);
		EVP_PKEY_free(back);
		EVP_PKEY_free(key);
	}
}

static void test_generate_two_keys_differ(void **state)
{
	EVP_PKEY *a = fx_make_key(SIGIL_KEY_ECDSA_P256);
	EVP_PKEY *b = fx_make_key(SIGIL_KEY_ECDSA_P256);

	(void)state;
	assert_int_not_equal(EVP_PKEY_eq(a, b), 1);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
}

static void test_generate_bad_alg(void **state)
{
	sigil_err err = { 0 };
	EVP_PKEY *key = NULL;

	(void)state;
	assert_int_equal(ca_key_generate(SIGIL_KEY__COUNT, &key, &err), SIGIL_E_INVALID);
	assert_null(key);
	assert_int_equal(ca_key_generate((sigil_keyalg)-1, &key, &err), SIGIL_E_INVALID);
	assert_null(key);
}

/* Keys that are not one of ours: ca_key_alg refuses them, and
 * ca_key_sign_digest decides whether a CA could still sign with them. */
static void test_foreign_keys(void **state)
{
	static const struct {
		const char *type;
		const char *param;
		size_t bits;
		const char *describe;
		int sign_rc;
		const char *md; /* NULL: no digest */
	} cases[] = {
		{ "RSA", NULL, 1024, "RSA 1024", SIGIL_E_INVALID, NULL },
		{ "RSA", NULL, 2560, "RSA 2560", 0, "SHA256" },
		{ "EC", "P-521", 0, "EC secp521r1", 0, "SHA512" },
		{ "EC", "secp256k1", 0, "EC secp256k1", SIGIL_E_INVALID, NULL },
		{ "ED448", NULL, 0, "ED448", 0, NULL },
		{ "X25519", NULL, 0, "X25519", SIGIL_E_INVALID, NULL },
	};

	(void)state;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		sigil_err err = { 0 };
		EVP_PKEY *key;
		sigil_keyalg alg = SIGIL_KEY__COUNT;
		const EVP_MD *md = EVP_md5();
		char buf[64];

		if (cases[i].bits)
			key = EVP_PKEY_Q_keygen(NULL, NULL, cases[i].type, cases[i].bits);
		else if (cases[i].param)
			key = EVP_PKEY_Q_keygen(NULL, NULL, cases[i].type, cases[i].param);
		else
			key = EVP_PKEY_Q_keygen(NULL, NULL, cases[i].type);
		assert_non_null(key);
		assert_int_equal(ca_key_alg(key, &alg), SIGIL_E_INVALID);
		assert_int_equal(alg, SIGIL_KEY__COUNT);
		assert_string_equal(ca_key_describe(key, buf, sizeof(buf)), cases[i].describe);
		assert_int_equal(ca_key_sign_digest(key, &md, &err), cases[i].sign_rc);
		if (cases[i].sign_rc == 0) {
			if (cases[i].md)
				assert_true(EVP_MD_is_a(md, cases[i].md));
			else
				assert_null(md);
		} else {
			assert_non_null(strstr(err.msg, cases[i].describe));
		}
		EVP_PKEY_free(key);
	}
	assert_int_equal(ca_key_alg(NULL, &(sigil_keyalg){ 0 }), SIGIL_E_INVALID);
}

static void test_sign_digest_ours(void **state)
{
	static const struct {
		sigil_keyalg alg;
		const char *md;
	} cases[] = {
		{ SIGIL_KEY_RSA2048, "SHA256" },
		{ SIGIL_KEY_ECDSA_P256, "SHA256" },
		{ SIGIL_KEY_ECDSA_P384, "SHA384" },
		{ SIGIL_KEY_ED25519, NULL },
	};

	(void)state;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		sigil_err err = { 0 };
		EVP_PKEY *key = fx_make_key(cases[i].alg);
		const EVP_MD *md = EVP_md5();

		assert_int_equal(ca_key_sign_digest(key, &md, &err), 0);
		if (cases[i].md)
			assert_true(EVP_MD_is_a(md, cases[i].md));
		else
			assert_null(md);
		EVP_PKEY_free(key);
	}
}

static void test_describe_edge(void **state)
{
	char buf[8];

	(void)state;
	assert_string_equal(ca_key_describe(NULL, buf, sizeof(buf)), "no key");
	assert_string_equal(ca_key_describe(NULL, NULL, 0), "");
	/* Truncated, still terminated. */
	EVP_PKEY *key = fx_make_key(SIGIL_KEY_ECDSA_P256);
	assert_string_equal(ca_key_describe(key, buf, sizeof(buf)), "ECDSA P");
	EVP_PKEY_free(key);
}

static void test_from_pem_encrypted(void **state)
{
	EVP_PKEY *key = fx_make_key(SIGIL_KEY_ECDSA_P256);
	char *enc = fx_key_pem_encrypted(key, "right");
	sigil_err err = { 0 };
	EVP_PKEY *out = NULL;

	(void)state;
	assert_int_equal(ca_key_from_pem(enc, strlen(enc), "wrong", &out, &err), SIGIL_E_UNAUTH);
	assert_null(out);
	assert_non_null(strstr(err.msg, "wrong passphrase"));

	sigil_err_clear(&err);
	assert_int_equal(ca_key_from_pem(enc, strlen(enc), NULL, &out, &err), SIGIL_E_INVALID);
	assert_null(out);
	assert_non_null(strstr(err.msg, "encrypted but no passphrase"));

	assert_int_equal(ca_key_from_pem(enc, strlen(enc), "", &out, &err), SIGIL_E_UNAUTH);
	assert_null(out);

	assert_int_equal(ca_key_from_pem(enc, strlen(enc), "right", &out, &err), 0);
	assert_int_equal(EVP_PKEY_eq(key, out), 1);
	EVP_PKEY_free(out);
	free(enc);
	EVP_PKEY_free(key);
}

/* Traditional (SEC1) encoding, as older tooling writes it. */
static void test_from_pem_traditional(void **state)
{
	EVP_PKEY *key = fx_make_key(SIGIL_KEY_ECDSA_P384);
	BIO *bio = BIO_new(BIO_s_mem());
	sigil_err err = { 0 };
	EVP_PKEY *out = NULL;
	char *data = NULL;
	long n;

	(void)state;
	assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &data);
	assert_non_null(strstr(data, "BEGIN EC PRIVATE KEY"));
	assert_int_equal(ca_key_from_pem(data, (size_t)n, NULL, &out, &err), 0);
	assert_int_equal(EVP_PKEY_eq(key, out), 1);
	EVP_PKEY_free(out);
	BIO_free(bio);
	EVP_PKEY_free(key);
}

static void test_from_pem_bad(void **state)
{
	EVP_PKEY *key = fx_make_key(SIGIL_KEY_ECDSA_P256);
	char *pem = fx_key_pem(key);
	size_t len = strlen(pem);
	sigil_err err = { 0 };
	EVP_PKEY *out = NULL;
	char *big;

	(void)state;
	/* Empty. */
	assert_int_equal(ca_key_from_pem("", 0, NULL, &out, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_key_from_pem(NULL, 10, NULL, &out, &err), SIGIL_E_INVALID);
	/* Garbage. */
	static const char garbage[] = "this is not a key\n\x01\x02\xff";
	assert_int_equal(ca_key_from_pem(garbage, sizeof(garbage), NULL, &out, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "cannot read PEM private key"));
	/* Truncated at every 7th length. */
	for (size_t cut = 1; cut < len - 30; cut += 7)
		assert_int_equal(ca_key_from_pem(pem, cut, NULL, &out, &err), SIGIL_E_INVALID);
	/* Corrupted base64 body. */
	char *bad = sigil_strndup(pem, len);
	bad[40] = bad[40] == 'A' ? 'B' : 'A';
	bad[41] = '*';
	assert_int_equal(ca_key_from_pem(bad, len, NULL, &out, &err), SIGIL_E_INVALID);
	free(bad);
	/* Oversized: a valid key followed by padding beyond the limit. */
	big = malloc(64 * 1024 + 2);
	memset(big, '\n', 64 * 1024 + 2);
	memcpy(big, pem, len);
	assert_int_equal(ca_key_from_pem(big, 64 * 1024 + 1, NULL, &out, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "65537"));
	/* Exactly at the limit it is still read. */
	assert_int_equal(ca_key_from_pem(big, 64 * 1024, NULL, &out, &err), 0);
	EVP_PKEY_free(out);
	out = NULL;
	free(big);
	/* A certificate is not a key. */
	ca_authority *ca = fx_make_ca(SIGIL_KEY_ECDSA_P256, FX_NOW, 0);
	char *cert = fx_cert_pem(ca->cert);
	assert_int_equal(ca_key_from_pem(cert, strlen(cert), NULL, &out, &err), SIGIL_E_INVALID);
	assert_null(out);
	free(cert);
	ca_authority_free(ca);

	free(pem);
	EVP_PKEY_free(key);
}

static void test_to_pem_bad(void **state)
{
	sigil_err err = { 0 };
	char *pem = (char *)"untouched";
	size_t len = 42;

	(void)state;
	assert_int_equal(ca_key_to_pkcs8_pem(NULL, &pem, &len, &err), SIGIL_E_INVALID);
	assert_string_equal(pem, "untouched");
	assert_int_equal(len, 42);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyalg_names),
		cmocka_unit_test(test_generate_round_trip),
		cmocka_unit_test(test_generate_two_keys_differ),
		cmocka_unit_test(test_generate_bad_alg),
		cmocka_unit_test(test_foreign_keys),
		cmocka_unit_test(test_sign_digest_ours),
		cmocka_unit_test(test_describe_edge),
		cmocka_unit_test(test_from_pem_encrypted),
		cmocka_unit_test(test_from_pem_traditional),
		cmocka_unit_test(test_from_pem_bad),
		cmocka_unit_test(test_to_pem_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
