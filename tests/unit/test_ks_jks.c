/* tls-jks: the writer against its own reader, an independent digest
 * computation and Java's keytool (both directions); the reader against
 * truncated, oversized, garbage and tampered input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <setjmp.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include "keystore/keystore.h"
#include "tests/helpers/ks_fixtures.h"
#include "util/buf.h"
#include "util/fs.h"

/* "pä€😀": 1-, 2-, 3- and 4-byte UTF-8; the last is a surrogate pair. */
#define PW_UNICODE "p\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80"
static const uint8_t pw_unicode_utf16be[] = {0x00, 0x70, 0x00, 0xe4, 0x20, 0xac,
					     0xd8, 0x3d, 0xde, 0x00};

static ksf_pki pki[3];

static int setup(void **state)
{
	(void)state;
	ksf_pki_new(KSF_RSA, &pki[KSF_RSA]);
	ksf_pki_new(KSF_EC, &pki[KSF_EC]);
	ksf_pki_new(KSF_ED25519, &pki[KSF_ED25519]);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		ksf_pki_free(&pki[i]);
	return 0;
}

static void render_ok(const ks_material *m, const ks_options *o, ks_fileset *fs)
{
	sigil_err err = {0};

	if (ks_render(KS_FORMAT_JKS, m, o, fs, &err) != 0)
		fail_msg("ks_render: %s", err.msg);
}

static void parse_ok(const uint8_t *d, size_t len, const char *pw, ks_jks *j)
{
	sigil_err err = {0};

	if (ks_jks_parse(d, len, pw, j, &err) != 0)
		fail_msg("ks_jks_parse: %s", err.msg);
}

/* Expects failure with code and a message containing what; checks that
 * the result was not touched. */
static void parse_fails(const uint8_t *d, size_t len, const char *pw, int code, const char *what)
{
	sigil_err err = {0};
	ks_jks j = {.entries = (void *)&j, .n = 12345};
	int r = ks_jks_parse(d, len, pw, &j, &err);

	if (r != code)
		fail_msg("len %zu: want %s, got %d (%s)", len, sigil_errcode_name(code), r, err.msg);
	assert_ptr_equal(j.entries, (void *)&j);
	assert_int_equal(j.n, 12345);
	if (what && !strstr(err.msg, what))
		fail_msg("message '%s' does not mention '%s'", err.msg, what);
}

/* SHA-1(pw16 || "Mighty Aphrodite" || body), computed here independently. */
static void jks_digest(const uint8_t *pw16, size_t pw16_len, const uint8_t *body, size_t len,
		       uint8_t out[20])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha1(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, pw16, pw16_len), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, "Mighty Aphrodite", 16), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, body, len), 1);
	assert_int_equal(EVP_DigestFinal_ex(ctx, out, NULL), 1);
	EVP_MD_CTX_free(ctx);
}

/* Recomputes the trailing digest of d for an ASCII password. */
static void redigest(uint8_t *d, size_t len, const char *ascii_pw)
{
	uint8_t pw16[2 * 64];
	size_t n = strlen(ascii_pw);

	assert_true(len >= 20 && n <= 64);
	for (size_t i = 0; i < n; i++) {
		pw16[2 * i] = 0;
		pw16[2 * i + 1] = (uint8_t)ascii_pw[i];
	}
	jks_digest(pw16, 2 * n, d, len - 20, d + len - 20);
}

static uint8_t *dup_file(const ks_file *f)
{
	uint8_t *d = malloc(f->len);

	assert_non_null(d);
	memcpy(d, f->data, f->len);
	return d;
}

static void check_roundtrip(ksf_alg alg)
{
	const ksf_pki *p = &pki[alg];
	ks_material m = ksf_material(p);
	ks_options o = {.password = "changeit", .alias = "server"};
	ks_fileset fs;
	const ks_file *ks, *ts;
	ks_jks j;
	int64_t now_ms = (int64_t)time(NULL) * 1000;

	render_ok(&m, &o, &fs);
	assert_int_equal(fs.n, 2);
	ks = ksf_find(&fs, "keystore.jks");
	ts = ksf_find(&fs, "truststore.jks");
	assert_non_null(ks);
	assert_non_null(ts);
	assert_true(ks->secret);
	assert_false(ts->secret);

	parse_ok(ks->data, ks->len, "changeit", &j);
	assert_int_equal(j.n, 1);
	assert_string_equal(j.entries[0].alias, "server");
	assert_true(j.entries[0].is_key);
	assert_int_equal(j.entries[0].n_certs, 2);
	assert_int_equal(X509_cmp(j.entries[0].cert, p->leaf), 0);
	assert_true(ksf_key_eq(j.entries[0].key, p->leaf_key));
	assert_true(ksf_key_der_eq(j.entries[0].key, p->leaf_key));
	assert_true(j.entries[0].created_ms > now_ms - 60000 &&
		    j.entries[0].created_ms < now_ms + 60000);
	ks_jks_free(&j);
	assert_int_equal(j.n, 0);

	parse_ok(ts->data, ts->len, "changeit", &j);
	assert_int_equal(j.n, 2);
	for (size_t i = 0; i < 2; i++) {
		char alias[8];

		snprintf(alias, sizeof(alias), "ca-%zu", i);
		assert_string_equal(j.entries[i].alias, alias);
		assert_false(j.entries[i].is_key);
		assert_null(j.entries[i].key);
		assert_int_equal(j.entries[i].n_certs, 1);
		assert_int_equal(X509_cmp(j.entries[i].cert, i == 0 ? p->root : p->other_root), 0);
	}
	ks_jks_free(&j);

	parse_fails(ks->data, ks->len, "wrong", SIGIL_E_PERM,
		    "keystore password incorrect or file tampered");
	parse_fails(ts->data, ts->len, "", SIGIL_E_PERM, "password incorrect");
	ks_fileset_free(&fs);
}

static void test_jks_roundtrip_rsa(void **state)
{
	(void)state;
	check_roundtrip(KSF_RSA);
}

static void test_jks_roundtrip_ec(void **state)
{
	(void)state;
	check_roundtrip(KSF_EC);
}

static void test_jks_roundtrip_ed25519(void **state)
{
	(void)state;
	check_roundtrip(KSF_ED25519);
}

/* The bytes on disk, field by field, against the format description. */
static void test_jks_layout(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	ks_options o = {.password = PW_UNICODE, .alias = "k"};
	ks_fileset fs;
	const ks_file *ks, *ts;
	sigil_rbuf b;
	uint32_t u32;
	uint16_t u16;
	uint64_t u64;
	const uint8_t *p;
	uint8_t want[20];
	X509_SIG *sig;
	const X509_ALGOR *alg;
	const ASN1_OCTET_STRING *oct;
	const ASN1_OBJECT *obj;
	int ptype;
	char oid[64];
	unsigned char *leaf_der = NULL;
	int leaf_len = i2d_X509(pki[KSF_EC].leaf, &leaf_der);
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pki[KSF_EC].leaf_key);
	int p8_len = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL);

	(void)state;
	PKCS8_PRIV_KEY_INFO_free(p8);
	render_ok(&m, &o, &fs);
	ks = ksf_find(&fs, "keystore.jks");
	ts = ksf_find(&fs, "truststore.jks");

	sigil_rbuf_init(&b, ks->data, ks->len);
	assert_int_equal(sigil_rbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(u32, 0xFEEDFEEDu);
	assert_int_equal(sigil_rbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(u32, 2);
	assert_int_equal(sigil_rbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(u32, 1);
	assert_int_equal(sigil_rbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(u32, 1); /* private key entry */
	assert_int_equal(sigil_rbuf_get_u16be(&b, &u16), 0);
	assert_int_equal(u16, 1);
	assert_int_equal(sigil_rbuf_get_bytes(&b, 1, &p), 0);
	assert_memory_equal(p, "k", 1);
	assert_int_equal(sigil_rbuf_get_u64be(&b, &u64), 0);
	assert_int_equal(sigil_rbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(sigil_rbuf_get_bytes(&b, u32, &p), 0);
	/* EncryptedPrivateKeyInfo { {1.3.6.1.4.1.42.2.17.1.1, NULL},
	 * salt(20) || ciphertext(len of PKCS#8) || check(20) }. */
	{
		const unsigned char *q = p;

		sig = d2i_X509_SIG(NULL, &q, (long)u32);
		assert_non_null(sig);
		assert_ptr_equal(q, p + u32);
	}
	X509_SIG_get0(sig, &alg, &oct);
	X509_ALGOR_get0(&obj, &ptype, NULL, alg);
	OBJ_obj2txt(oid, sizeof(oid), obj, 1);
	assert_string_equal(oid, "1.3.6.1.4.1.42.2.17.1.1");
	assert_int_equal(ptype, V_ASN1_NULL);
	assert_int_equal(ASN1_STRING_length(oct), 20 + p8_len + 20);
	X509_SIG_free(sig);
	assert_int_equal(sigil_rbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(u32, 2); /* leaf + intermediate */
	assert_int_equal(sigil_rbuf_get_u16be(&b, &u16), 0);
	assert_int_equal(u16, 5);
	assert_int_equal(sigil_rbuf_get_bytes(&b, 5, &p), 0);
	assert_memory_equal(p, "X.509", 5);
	assert_int_equal(sigil_rbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(u32, (uint32_t)leaf_len);
	assert_int_equal(sigil_rbuf_get_bytes(&b, u32, &p), 0);
	assert_memory_equal(p, leaf_der, (size_t)leaf_len);
	OPENSSL_free(leaf_der);

	/* The keyed digest uses the password as UTF-16BE code units,
	 * supplementary characters as surrogate pairs (Java chars). */
	jks_digest(pw_unicode_utf16be, sizeof(pw_unicode_utf16be), ks->data, ks->len - 20, want);
	assert_memory_equal(ks->data + ks->len - 20, want, 20);
	jks_digest(pw_unicode_utf16be, sizeof(pw_unicode_utf16be), ts->data, ts->len - 20, want);
	assert_memory_equal(ts->data + ts->len - 20, want, 20);

	/* Trusted entry: tag 2, alias "ca-0", date, "X.509", DER. */
	sigil_rbuf_init(&b, ts->data, ts->len);
	assert_int_equal(sigil_rbuf_get_bytes(&b, 8, &p), 0);
	assert_int_equal(sigil_rbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(u32, 2);
	assert_int_equal(sigil_rbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(u32, 2);
	assert_int_equal(sigil_rbuf_get_u16be(&b, &u16), 0);
	assert_int_equal(u16, 4);
	assert_int_equal(sigil_rbuf_get_bytes(&b, 4, &p), 0);
	assert_memory_equal(p, "ca-0", 4);
	ks_fileset_free(&fs);
}

static void test_jks_passwords(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	ks_options o = {0};
	ks_fileset fs;
	ks_jks j;
	sigil_err err = {0};
	char longpw[KS_MAX_PASSWORD_LEN + 2];
	const ks_file *ks;

	(void)state;
	/* NULL and "" are the same empty password. */
	render_ok(&m, &o, &fs);
	ks = ksf_find(&fs, "keystore.jks");
	parse_ok(ks->data, ks->len, "", &j);
	assert_true(ksf_key_eq(j.entries[0].key, pki[KSF_EC].leaf_key));
	ks_jks_free(&j);
	parse_ok(ks->data, ks->len, NULL, &j);
	ks_jks_free(&j);
	parse_fails(ks->data, ks->len, "x", SIGIL_E_PERM, "password");
	ks_fileset_free(&fs);

	o.password = PW_UNICODE;
	render_ok(&m, &o, &fs);
	ks = ksf_find(&fs, "keystore.jks");
	parse_ok(ks->data, ks->len, PW_UNICODE, &j);
	assert_true(ksf_key_der_eq(j.entries[0].key, pki[KSF_EC].leaf_key));
	ks_jks_free(&j);
	/* Same first three characters without the emoji: wrong. */
	parse_fails(ks->data, ks->len, "p\xc3\xa4\xe2\x82\xac", SIGIL_E_PERM, "password");
	/* Malformed UTF-8 passwords (bad lead, overlong, surrogate, cut). */
	parse_fails(ks->data, ks->len, "\xff", SIGIL_E_INVALID, "UTF-8");
	parse_fails(ks->data, ks->len, "\xc0\xaf", SIGIL_E_INVALID, "UTF-8");
	parse_fails(ks->data, ks->len, "\xed\xa0\x80", SIGIL_E_INVALID, "UTF-8");
	parse_fails(ks->data, ks->len, "ab\xe2\x82", SIGIL_E_INVALID, "UTF-8");
	ks_fileset_free(&fs);
	o.password = "\xf4\x90\x80\x80"; /* beyond U+10FFFF */
	assert_int_equal(ks_render(KS_FORMAT_JKS, &m, &o, &fs, &err), SIGIL_E_INVALID);
	assert_int_equal(fs.n, 0);

	memset(longpw, 'x', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	o.password = longpw;
	assert_int_equal(ks_render(KS_FORMAT_JKS, &m, &o, &fs, &err), SIGIL_E_LIMIT);
	assert_int_equal(ks_jks_render(&m, &o, &fs, &err), SIGIL_E_LIMIT);
	assert_int_equal(ks_jks_parse((const uint8_t *)"", 0, longpw, &j, &err), SIGIL_E_LIMIT);
	/* The longest password, all 4-byte characters: 128 code units. */
	for (size_t i = 0; i + 4 <= KS_MAX_PASSWORD_LEN; i += 4)
		memcpy(longpw + i, "\xf0\x9f\x98\x80", 4);
	longpw[KS_MAX_PASSWORD_LEN] = '\0';
	render_ok(&m, &o, &fs);
	ks = ksf_find(&fs, "keystore.jks");
	parse_ok(ks->data, ks->len, longpw, &j);
	ks_jks_free(&j);
	ks_fileset_free(&fs);
}

static void test_jks_aliases(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	/* é (2 bytes), 😀 (surrogate pair: two 3-byte modified UTF-8). */
	ks_options o = {.alias = "s\xc3\xa9rveur\xf0\x9f\x98\x80", .keystore_name = "a/b.jks"};
	ks_fileset fs;
	ks_jks j;
	sigil_err err = {0};
	const ks_file *ks;
	char alias[KS_MAX_ALIAS_LEN + 2];

	(void)state;
	render_ok(&m, &o, &fs);
	ks = ksf_find(&fs, "a/b.jks");
	assert_non_null(ks);
	/* u16 length = 1 + 2 + 5 + 6: the emoji as CESU-8 surrogates. */
	assert_int_equal(ks->data[16], 0);
	assert_int_equal(ks->data[17], 14);
	assert_memory_equal(ks->data + 18 + 8, "\xed\xa0\xbd\xed\xb8\x80", 6);
	parse_ok(ks->data, ks->len, NULL, &j);
	assert_string_equal(j.entries[0].alias, o.alias);
	ks_jks_free(&j);
	ks_fileset_free(&fs);

	memset(alias, 'a', sizeof(alias) - 1);
	alias[sizeof(alias) - 1] = '\0';
	o.alias = alias;
	assert_int_equal(ks_render(KS_FORMAT_JKS, &m, &o, &fs, &err), SIGIL_E_INVALID);
	alias[KS_MAX_ALIAS_LEN] = '\0';
	render_ok(&m, &o, &fs);
	ks_fileset_free(&fs);
	o.alias = "bad\xed\xa0\x80";
	assert_int_equal(ks_render(KS_FORMAT_JKS, &m, &o, &fs, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "alias"));
}

static void test_jks_public_only(void **state)
{
	ks_material m = ksf_material(&pki[KSF_ED25519]);
	ks_options o = {.password = "changeit", .truststore_name = "trust.jks"};
	ks_fileset fs;
	ks_jks j;

	(void)state;
	m.key = NULL;
	m.leaf = NULL;
	render_ok(&m, &o, &fs);
	assert_int_equal(fs.n, 1);
	assert_string_equal(fs.files[0].name, "trust.jks");
	assert_false(fs.files[0].secret);
	parse_ok(fs.files[0].data, fs.files[0].len, "changeit", &j);
	assert_int_equal(j.n, 2);
	ks_jks_free(&j);
	ks_fileset_free(&fs);
}

static void test_jks_bad_material(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	STACK_OF(X509) *chain = sk_X509_new_null();
	ks_fileset fs;
	ks_jks j;
	sigil_err err = {0};

	(void)state;
	m.key = pki[KSF_EC].root_key;
	assert_int_equal(ks_render(KS_FORMAT_JKS, &m, NULL, &fs, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "does not match"));
	assert_non_null(strstr(err.msg, "JKS keystore: "));
	/* Without an error context the code is the same. */
	assert_int_equal(ks_render(KS_FORMAT_JKS, &m, NULL, &fs, NULL), SIGIL_E_INVALID);
	assert_int_equal(ks_jks_parse((const uint8_t *)"x", 1, NULL, &j, NULL), SIGIL_E_INVALID);
	m = ksf_material(&pki[KSF_EC]);
	m.trust = NULL;
	assert_int_equal(ks_jks_render(&m, NULL, &fs, &err), SIGIL_E_INVALID);
	/* A root at the end of the chain is dropped. */
	m = ksf_material(&pki[KSF_EC]);
	assert_true(sk_X509_push(chain, pki[KSF_EC].inter) > 0);
	assert_true(sk_X509_push(chain, pki[KSF_EC].root) > 0);
	m.chain = chain;
	render_ok(&m, NULL, &fs);
	parse_ok(fs.files[0].data, fs.files[0].len, NULL, &j);
	assert_int_equal(j.entries[0].n_certs, 2);
	ks_jks_free(&j);
	ks_fileset_free(&fs);
	sk_X509_free(chain);
}

/* Every proper prefix of a valid file is refused as malformed (never as a
 * wrong password, never an over-read: run under ASan). */
static void test_jks_truncated(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	ks_options o = {.password = "changeit"};
	ks_fileset fs;

	(void)state;
	render_ok(&m, &o, &fs);
	for (size_t f = 0; f < fs.n; f++) {
		const ks_file *file = &fs.files[f];

		for (size_t len = 0; len < file->len; len++) {
			/* A heap copy of exactly len bytes, so that ASan
			 * catches any read past the end. */
			uint8_t *d = malloc(len ? len : 1);

			assert_non_null(d);
			memcpy(d, file->data, len);
			parse_fails(d, len, "changeit", SIGIL_E_INVALID, len < 12 ? "header" : NULL);
			free(d);
		}
	}
	parse_fails(NULL, 0, "changeit", SIGIL_E_INVALID, "truncated header");
	ks_fileset_free(&fs);
}

static void put_header(sigil_wbuf *b, uint32_t version, uint32_t count)
{
	sigil_wbuf_put_u32be(b, 0xFEEDFEEDu);
	sigil_wbuf_put_u32be(b, version);
	sigil_wbuf_put_u32be(b, count);
}

static void put_trusted(sigil_wbuf *b, uint32_t version, const char *alias, X509 *x)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);

	assert_true(n > 0);
	sigil_wbuf_put_u32be(b, 2);
	sigil_wbuf_put_u16be(b, (uint16_t)strlen(alias));
	sigil_wbuf_put(b, alias, strlen(alias));
	sigil_wbuf_put_u64be(b, 1700000000000ull);
	if (version == 2) {
		sigil_wbuf_put_u16be(b, 5);
		sigil_wbuf_put(b, "X.509", 5);
	}
	sigil_wbuf_put_u32be(b, (uint32_t)n);
	sigil_wbuf_put(b, der, (size_t)n);
	OPENSSL_free(der);
}

/* Appends a digest for ascii_pw and hands out the file. */
static uint8_t *finish(sigil_wbuf *b, const char *ascii_pw, size_t *len)
{
	uint8_t zero[20] = {0};
	uint8_t *d;

	sigil_wbuf_put(b, zero, sizeof(zero));
	assert_int_equal(sigil_wbuf_status(b), 0);
	d = sigil_wbuf_steal(b, len);
	redigest(d, *len, ascii_pw);
	return d;
}

/* Version 1 files have no certificate type strings; still readable. */
static void test_jks_version1_and_empty(void **state)
{
	sigil_wbuf b;
	uint8_t *d;
	size_t len;
	ks_jks j;

	(void)state;
	sigil_wbuf_init(&b, 1 << 20, false);
	put_header(&b, 1, 2);
	put_trusted(&b, 1, "Root", pki[KSF_RSA].root);
	put_trusted(&b, 1, "other", pki[KSF_RSA].other_root);
	d = finish(&b, "changeit", &len);
	parse_ok(d, len, "changeit", &j);
	assert_int_equal(j.n, 2);
	assert_string_equal(j.entries[0].alias, "Root");
	assert_int_equal(j.entries[0].created_ms, 1700000000000ll);
	assert_int_equal(X509_cmp(j.entries[0].cert, pki[KSF_RSA].root), 0);
	assert_int_equal(X509_cmp(j.entries[1].cert, pki[KSF_RSA].other_root), 0);
	ks_jks_free(&j);
	/* The same bytes claimed as version 2 are malformed. */
	d[7] = 2;
	redigest(d, len, "changeit");
	parse_fails(d, len, "changeit", SIGIL_E_INVALID, NULL);
	free(d);

	/* An empty keystore. */
	sigil_wbuf_init(&b, 1 << 20, false);
	put_header(&b, 2, 0);
	d = finish(&b, "", &len);
	parse_ok(d, len, "", &j);
	assert_int_equal(j.n, 0);
	ks_jks_free(&j);
	free(d);
}

static void test_jks_bad_headers(void **state)
{
	static const uint8_t jceks[] = {0xce, 0xce, 0xce, 0xce, 0, 0, 0, 2, 0, 0, 0, 0};
	static const uint8_t der[] = {0x30, 0x82, 0x0a, 0x00, 0x02, 0x01, 0x03, 0x30, 0, 0, 0, 0};
	static const uint8_t pem[] = "-----BEGIN CERTIFICATE-----";
	sigil_wbuf b;
	uint8_t *d;
	size_t len;

	(void)state;
	parse_fails(jceks, sizeof(jceks), "", SIGIL_E_INVALID, "JCEKS");
	parse_fails(der, sizeof(der), "", SIGIL_E_INVALID, "PKCS#12");
	parse_fails(pem, sizeof(pem), "", SIGIL_E_INVALID, "PEM");

	for (uint32_t v = 0; v < 5; v += 3) {
		sigil_wbuf_init(&b, 1024, false);
		put_header(&b, v, 0);
		d = finish(&b, "", &len);
		parse_fails(d, len, "", SIGIL_E_INVALID, "unsupported version");
		free(d);
	}
	/* Entry counts beyond the limit, even when the file is short. */
	sigil_wbuf_init(&b, 1024, false);
	put_header(&b, 2, 0xffffffffu);
	d = finish(&b, "", &len);
	parse_fails(d, len, "", SIGIL_E_LIMIT, "entries");
	free(d);
	sigil_wbuf_init(&b, 1024, false);
	put_header(&b, 2, KS_JKS_MAX_ENTRIES + 1);
	d = finish(&b, "", &len);
	parse_fails(d, len, "", SIGIL_E_LIMIT, "entries");
	free(d);
	/* More entries claimed than present. */
	sigil_wbuf_init(&b, 1 << 20, false);
	put_header(&b, 2, 3);
	put_trusted(&b, 2, "a", pki[KSF_EC].root);
	d = finish(&b, "", &len);
	parse_fails(d, len, "", SIGIL_E_INVALID, "entry 1");
	free(d);
}

/* Oversized lengths and counts inside entries. */
static void test_jks_oversized(void **state)
{
	sigil_wbuf b;
	uint8_t *d;
	size_t len;
	char alias[KS_MAX_ALIAS_LEN + 2];

	(void)state;
	/* Certificate length over KS_JKS_MAX_CERT_LEN. */
	sigil_wbuf_init(&b, 1 << 20, false);
	put_header(&b, 2, 1);
	sigil_wbuf_put_u32be(&b, 2);
	sigil_wbuf_put_u16be(&b, 1);
	sigil_wbuf_put(&b, "a", 1);
	sigil_wbuf_put_u64be(&b, 0);
	sigil_wbuf_put_u16be(&b, 5);
	sigil_wbuf_put(&b, "X.509", 5);
	sigil_wbuf_put_u32be(&b, 0x7fffffffu);
	d = finish(&b, "", &len);
	parse_fails(d, len, "", SIGIL_E_LIMIT, "certificate");
	free(d);

	/* Key length over the limit, and a chain over KS_JKS_MAX_CHAIN. */
	for (int which = 0; which < 3; which++) {
		sigil_wbuf_init(&b, 1 << 20, false);
		put_header(&b, 2, 1);
		sigil_wbuf_put_u32be(&b, 1);
		sigil_wbuf_put_u16be(&b, 1);
		sigil_wbuf_put(&b, "k", 1);
		sigil_wbuf_put_u64be(&b, 0);
		if (which == 0) {
			sigil_wbuf_put_u32be(&b, 1u << 20);
		} else {
			sigil_wbuf_put_u32be(&b, 4);
			sigil_wbuf_put(&b, "\x30\x02\x05\x00", 4);
			sigil_wbuf_put_u32be(&b, which == 1 ? KS_JKS_MAX_CHAIN + 1 : 0);
		}
		d = finish(&b, "", &len);
		parse_fails(d, len, "", which == 2 ? SIGIL_E_INVALID : SIGIL_E_LIMIT,
			    which == 0 ? "private key" : "chain");
		free(d);
	}

	/* Alias longer than KS_MAX_ALIAS_LEN. */
	memset(alias, 'a', sizeof(alias) - 1);
	alias[sizeof(alias) - 1] = '\0';
	sigil_wbuf_init(&b, 1 << 20, false);
	put_header(&b, 2, 1);
	put_trusted(&b, 2, alias, pki[KSF_EC].root);
	d = finish(&b, "", &len);
	parse_fails(d, len, "", SIGIL_E_LIMIT, "alias");
	free(d);
}

/* Structurally valid files with something wrong inside. */
static void test_jks_bad_entries(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	ks_options o = {.password = "changeit"};
	ks_fileset fs;
	const ks_file *ks, *ts;
	uint8_t *d;
	size_t len;
	sigil_wbuf b;

	(void)state;
	render_ok(&m, &o, &fs);
	ks = ksf_find(&fs, "keystore.jks");
	ts = ksf_find(&fs, "truststore.jks");

	/* Flipped digest byte; flipped body byte (digest not recomputed). */
	d = dup_file(ks);
	d[ks->len - 1] ^= 1;
	parse_fails(d, ks->len, "changeit", SIGIL_E_PERM, "password incorrect or file tampered");
	d[ks->len - 1] ^= 1;
	{
		/* The leaf's DER starts after header(12) tag(4) alias(2+1)
		 * date(8) key(4+n) chain count(4) type(2+5) length(4). */
		size_t key_len = ((size_t)d[27] << 24) | ((size_t)d[28] << 16) |
				 ((size_t)d[29] << 8) | d[30];
		size_t leaf_off = 31 + key_len + 4 + 7 + 4;

		assert_int_equal(d[leaf_off], 0x30);
		d[leaf_off] = 0x31;
	}
	parse_fails(d, ks->len, "changeit", SIGIL_E_PERM, "tampered");
	/* The same change with a matching digest: the certificate is bad. */
	redigest(d, ks->len, "changeit");
	parse_fails(d, ks->len, "changeit", SIGIL_E_INVALID, "certificate is not valid DER");
	free(d);

	/* A flipped ciphertext byte of the key fails its check digest. */
	d = dup_file(ks);
	d[12 + 4 + 2 + 1 + 8 + 4 + 30 + 25] ^= 1;
	redigest(d, ks->len, "changeit");
	parse_fails(d, ks->len, "changeit", SIGIL_E_PERM, "private key");
	free(d);

	/* Key protected with another password than the store. */
	d = dup_file(ks);
	redigest(d, ks->len, "other");
	parse_fails(d, ks->len, "other", SIGIL_E_PERM, "private key password differs");
	free(d);

	/* Trailing bytes after the digest. */
	d = malloc(ts->len + 1);
	assert_non_null(d);
	memcpy(d, ts->data, ts->len);
	d[ts->len] = 0;
	parse_fails(d, ts->len + 1, "changeit", SIGIL_E_INVALID, "trailing");
	free(d);

	/* Unknown entry tag (3: a JCEKS secret key). */
	d = dup_file(ts);
	d[15] = 3;
	redigest(d, ts->len, "changeit");
	parse_fails(d, ts->len, "changeit", SIGIL_E_INVALID, "unknown entry tag 3");
	free(d);

	/* Certificate type other than X.509. */
	d = dup_file(ts);
	assert_memory_equal(d + 12 + 4 + 2 + 4 + 8 + 2, "X.509", 5);
	d[12 + 4 + 2 + 4 + 8 + 2] = 'Y';
	redigest(d, ts->len, "changeit");
	parse_fails(d, ts->len, "changeit", SIGIL_E_INVALID, "unsupported certificate type 'Y.509'");
	free(d);

	/* Alias with a NUL (modified UTF-8 C0 80) or an unpaired surrogate. */
	for (int i = 0; i < 3; i++) {
		static const char *const aliases[] = {"a\xc0\x80", "\xed\xa0\xbd", "\xed\xb8\x80"};

		sigil_wbuf_init(&b, 1 << 20, false);
		put_header(&b, 2, 1);
		put_trusted(&b, 2, aliases[i], pki[KSF_EC].root);
		d = finish(&b, "", &len);
		parse_fails(d, len, "", SIGIL_E_INVALID, "alias");
		free(d);
	}

	/* A key entry whose "key" is not an EncryptedPrivateKeyInfo, and one
	 * with another algorithm. */
	for (int i = 0; i < 2; i++) {
		static const uint8_t not_epki[] = {0x30, 0x02, 0x05, 0x00};
		/* { {1.2.3, NULL}, OCTET STRING of 41 bytes } */
		uint8_t other_alg[2 + 2 + 4 + 2 + 2 + 41] = {0x30, 51,   0x30, 6, 0x06, 2,
							     0x2a,  0x03, 0x05, 0, 0x04, 41};
		unsigned char *leaf = NULL;
		int leaf_len = i2d_X509(pki[KSF_EC].leaf, &leaf);

		sigil_wbuf_init(&b, 1 << 20, false);
		put_header(&b, 2, 1);
		sigil_wbuf_put_u32be(&b, 1);
		sigil_wbuf_put_u16be(&b, 1);
		sigil_wbuf_put(&b, "k", 1);
		sigil_wbuf_put_u64be(&b, 0);
		if (i == 0) {
			sigil_wbuf_put_u32be(&b, sizeof(not_epki));
			sigil_wbuf_put(&b, not_epki, sizeof(not_epki));
		} else {
			sigil_wbuf_put_u32be(&b, sizeof(other_alg));
			sigil_wbuf_put(&b, other_alg, sizeof(other_alg));
		}
		sigil_wbuf_put_u32be(&b, 1);
		sigil_wbuf_put_u16be(&b, 5);
		sigil_wbuf_put(&b, "X.509", 5);
		sigil_wbuf_put_u32be(&b, (uint32_t)leaf_len);
		sigil_wbuf_put(&b, leaf, (size_t)leaf_len);
		OPENSSL_free(leaf);
		d = finish(&b, "", &len);
		parse_fails(d, len, "", SIGIL_E_INVALID,
			    i == 0 ? "not an EncryptedPrivateKeyInfo" : "KeyProtector");
		free(d);
	}
	ks_fileset_free(&fs);
}

/* Deterministic pseudo-random garbage, raw and behind a valid header. */
static void test_jks_garbage(void **state)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(round % 300);
		uint8_t *d = malloc(len + 12);
		sigil_err err = {0};
		ks_jks j;
		int r;

		assert_non_null(d);
		for (size_t i = 0; i < len + 12; i++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			d[i] = (uint8_t)s;
		}
		if (round % 2) {
			/* Valid magic, version and a small count. */
			memcpy(d, "\xfe\xed\xfe\xed\x00\x00\x00\x02\x00\x00\x00", 11);
			d[11] &= 3;
		}
		r = ks_jks_parse(d, len + 12, "changeit", &j, &err);
		if (r == 0)
			ks_jks_free(&j);
		assert_true(r == SIGIL_E_INVALID || r == SIGIL_E_LIMIT || r == SIGIL_E_PERM);
		assert_true(err.msg[0] != '\0');
		free(d);
	}
}

static char *write_file(const char *dir, const char *name, const ks_file *f)
{
	return ksf_write(dir, name, f->data, f->len);
}

/* Java's keytool reads what we write, and we read what it writes.  Six
 * keytool runs (~0.5 s each). */
static void test_jks_keytool(void **state)
{
	char *dir, *ks, *ts, *out = NULL, args[2048];
	ks_fileset fs;
	int rc;

	(void)state;
	if (!ksf_have("keytool"))
		skip();
	dir = ksf_mkdtemp();

	/* RSA keystore with a password, truststore without one. */
	{
		ks_material m = ksf_material(&pki[KSF_RSA]);
		ks_options o = {.password = "changeit", .alias = "server"};
		ks_options o_empty = {.password = ""};

		render_ok(&m, &o, &fs);
		ks = write_file(dir, "keystore.jks", ksf_find(&fs, "keystore.jks"));
		ks_fileset_free(&fs);
		render_ok(&m, &o_empty, &fs);
		ts = write_file(dir, "truststore.jks", ksf_find(&fs, "truststore.jks"));
		ks_fileset_free(&fs);

		snprintf(args, sizeof(args),
			 "-list -v -storetype JKS -keystore %s -storepass:env KSF_PW", ks);
		rc = ksf_keytool(args, "changeit", &out);
		if (rc != 0)
			fail_msg("keytool %s: %s", args, out);
		assert_non_null(strstr(out, "Keystore type: JKS"));
		assert_non_null(strstr(out, "Your keystore contains 1 entry"));
		assert_non_null(strstr(out, "Alias name: server"));
		assert_non_null(strstr(out, "Entry type: PrivateKeyEntry"));
		assert_non_null(strstr(out, "Certificate chain length: 2"));
		assert_non_null(strstr(out, "Owner: CN=sigil test intermediate"));
		free(out);

		snprintf(args, sizeof(args),
			 "-list -storetype JKS -keystore %s -storepass:env KSF_PW", ts);
		rc = ksf_keytool(args, "", &out);
		if (rc != 0)
			fail_msg("keytool %s: %s", args, out);
		assert_non_null(strstr(out, "Your keystore contains 2 entries"));
		assert_int_equal(ksf_count(out, "trustedCertEntry"), 2);
		assert_non_null(strstr(out, "ca-0,"));
		assert_non_null(strstr(out, "ca-1,"));
		free(out);

		snprintf(args, sizeof(args),
			 "-list -storetype JKS -keystore %s -storepass:env KSF_PW", ks);
		rc = ksf_keytool(args, "changeiT", &out);
		assert_int_not_equal(rc, 0);
		assert_non_null(strstr(out, "password was incorrect"));
		free(out);
		free(ks);
		free(ts);
	}

	/* Ed25519 key under a non-ASCII password: Java recovers it (which
	 * -list does not) when copying it into a PKCS#12, which OpenSSL then
	 * opens; the key must be ours. */
	{
		ks_material m = ksf_material(&pki[KSF_ED25519]);
		ks_options o = {.password = PW_UNICODE};
		char *p12_path = sigil_path_join(dir, "copy.p12");
		unsigned char *data;
		const unsigned char *p;
		size_t len;
		PKCS12 *p12;
		EVP_PKEY *key = NULL;
		X509 *cert = NULL;
		STACK_OF(X509) *ca = NULL;

		render_ok(&m, &o, &fs);
		ks = write_file(dir, "ed.jks", ksf_find(&fs, "keystore.jks"));
		ks_fileset_free(&fs);
		snprintf(args, sizeof(args),
			 "-importkeystore -noprompt -srckeystore %s -srcstoretype JKS "
			 "-srcstorepass:env KSF_PW -destkeystore %s -deststoretype PKCS12 "
			 "-deststorepass changeit",
			 ks, p12_path);
		rc = ksf_keytool(args, PW_UNICODE, &out);
		if (rc != 0)
			fail_msg("keytool %s: %s", args, out);
		assert_non_null(strstr(out, "1 entries successfully imported"));
		free(out);
		data = ksf_read(p12_path, &len);
		p = data;
		p12 = d2i_PKCS12(NULL, &p, (long)len);
		assert_non_null(p12);
		assert_int_equal(PKCS12_parse(p12, "changeit", &key, &cert, &ca), 1);
		assert_true(ksf_key_eq(key, pki[KSF_ED25519].leaf_key));
		assert_int_equal(X509_cmp(cert, pki[KSF_ED25519].leaf), 0);
		assert_int_equal(sk_X509_num(ca), 1);
		EVP_PKEY_free(key);
		X509_free(cert);
		sk_X509_pop_free(ca, X509_free);
		PKCS12_free(p12);
		free(data);
		free(p12_path);
		free(ks);
	}

	/* keytool writes a JKS (a key pair of its own, then a trusted CA);
	 * our reader verifies it and recovers Java's protected key. */
	{
		char *jks = sigil_path_join(dir, "keytool.jks");
		char *root_pem = sigil_path_join(dir, "root.pem");
		FILE *f = fopen(root_pem, "w");
		unsigned char *data;
		size_t len;
		ks_jks j;
		sigil_err err = {0};
		const ks_jks_entry *key_e = NULL, *ca_e = NULL;

		assert_non_null(f);
		assert_int_equal(PEM_write_X509(f, pki[KSF_RSA].root), 1);
		assert_int_equal(fclose(f), 0);
		snprintf(args, sizeof(args),
			 "-genkeypair -keyalg EC -groupname secp256r1 -alias MyKey "
			 "-dname CN=keytool.example -validity 2 -storetype JKS -keystore %s "
			 "-storepass:env KSF_PW -keypass:env KSF_PW",
			 jks);
		rc = ksf_keytool(args, "changeit", &out);
		if (rc != 0)
			fail_msg("keytool %s: %s", args, out);
		free(out);
		snprintf(args, sizeof(args),
			 "-importcert -noprompt -alias sigil-root -file %s -storetype JKS "
			 "-keystore %s -storepass:env KSF_PW",
			 root_pem, jks);
		rc = ksf_keytool(args, "changeit", &out);
		if (rc != 0)
			fail_msg("keytool %s: %s", args, out);
		free(out);

		data = ksf_read(jks, &len);
		if (ks_jks_parse(data, len, "changeit", &j, &err) != 0)
			fail_msg("ks_jks_parse of keytool's JKS: %s", err.msg);
		assert_int_equal(j.n, 2);
		for (size_t i = 0; i < j.n; i++) {
			if (j.entries[i].is_key)
				key_e = &j.entries[i];
			else
				ca_e = &j.entries[i];
		}
		assert_non_null(key_e);
		assert_non_null(ca_e);
		/* JKS stores aliases lower-cased. */
		assert_string_equal(key_e->alias, "mykey");
		assert_int_equal(key_e->n_certs, 1);
		assert_true(EVP_PKEY_is_a(key_e->key, "EC"));
		assert_true(X509_check_private_key(key_e->cert, key_e->key));
		assert_string_equal(ca_e->alias, "sigil-root");
		assert_int_equal(X509_cmp(ca_e->cert, pki[KSF_RSA].root), 0);
		ks_jks_free(&j);
		parse_fails(data, len, "changeme", SIGIL_E_PERM, "password incorrect");
		/* Every prefix of Java's file is refused too. */
		for (size_t l = 0; l < len; l++)
			parse_fails(data, l, "changeit", SIGIL_E_INVALID, NULL);
		free(data);
		free(jks);
		free(root_pem);
	}
	ksf_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jks_roundtrip_rsa),
		cmocka_unit_test(test_jks_roundtrip_ec),
		cmocka_unit_test(test_jks_roundtrip_ed25519),
		cmocka_unit_test(test_jks_layout),
		cmocka_unit_test(test_jks_passwords),
		cmocka_unit_test(test_jks_aliases),
		cmocka_unit_test(test_jks_public_only),
		cmocka_unit_test(test_jks_bad_material),
		cmocka_unit_test(test_jks_truncated),
		cmocka_unit_test(test_jks_version1_and_empty),
		cmocka_unit_test(test_jks_bad_headers),
		cmocka_unit_test(test_jks_oversized),
		cmocka_unit_test(test_jks_bad_entries),
		cmocka_unit_test(test_jks_garbage),
		cmocka_unit_test(test_jks_keytool),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
