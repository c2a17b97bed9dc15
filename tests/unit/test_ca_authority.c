/* ca/authority.c: generated roots (extensions read back with OpenSSL),
 * company CA import (good and refused), PEM certificate lists, times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/authority.h"
#include "tests/helpers/ca_fixtures.h"
#include "util/fs.h"
#include "util/mem.h"

#define DAY 86400

static bool ext_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	assert_true(i >= 0);
	return X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 1;
}

static void assert_serial_ok(X509 *x)
{
	const ASN1_INTEGER *s = X509_get0_serialNumber(x);
	BIGNUM *bn = ASN1_INTEGER_to_BN(s, NULL);
	unsigned char *der = NULL;
	int der_len;

	assert_non_null(bn);
	assert_false(BN_is_negative(bn));
	assert_false(BN_is_zero(bn));
	assert_true(BN_num_bytes(bn) <= CA_SERIAL_BYTES);
	/* RFC 5280 4.1.2.2: at most 20 content octets in the DER INTEGER. */
	der_len = i2d_ASN1_INTEGER(s, &der);
	assert_true(der_len > 2 && der_len - 2 <= 20);
	assert_true(der[2] < 0x80); /* positive: no sign bit */
	OPENSSL_free(der);
	BN_free(bn);
}

static const char *name_entry(X509_NAME *name, int nid, char *buf, int len)
{
	if (X509_NAME_get_text_by_NID(name, nid, buf, len) < 0)
		return NULL;
	return buf;
}

static void check_root(ca_authority *ca, sigil_keyalg alg, time_t now, int64_t lifetime,
		       const char *cn, const char *org, int sig_nid)
{
	X509 *x = ca->cert;
	char buf[128];
	sigil_keyalg got;

	assert_non_null(x);
	assert_non_null(ca->key);
	assert_non_null(ca->chain);
	assert_int_equal(sk_X509_num(ca->chain), 0);
	assert_null(ca->root);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(X509_check_private_key(x, ca->key), 1);
	assert_int_equal(ca_key_alg(ca->key, &got), 0);
	assert_int_equal(got, alg);

	uint32_t flags = X509_get_extension_flags(x);
	assert_true(flags & EXFLAG_BCONS);
	assert_true(flags & EXFLAG_CA);
	assert_true(flags & EXFLAG_KUSAGE);
	assert_true(flags & EXFLAG_SS);
	assert_false(flags & EXFLAG_INVALID);
	assert_false(flags & EXFLAG_XKUSAGE);
	assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_true(ext_critical(x, NID_basic_constraints));
	assert_true(ext_critical(x, NID_key_usage));
	assert_false(ext_critical(x, NID_subject_key_identifier));
	assert_false(ext_critical(x, NID_authority_key_identifier));
	assert_int_equal(X509_get_pathlen(x), -1);
	assert_int_equal(X509_check_ca(x), 1);

	/* SKI is the SHA-1 of the public key, AKI keyid equals it. */
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	assert_int_equal(X509_pubkey_digest(x, EVP_sha1(), md, &md_len), 1);
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
	assert_non_null(ski);
	assert_non_null(aki);
	assert_int_equal(ASN1_STRING_length(ski), md_len);
	assert_memory_equal(ASN1_STRING_get0_data(ski), md, md_len);
	assert_int_equal(ASN1_OCTET_STRING_cmp(ski, aki), 0);

	assert_serial_ok(x);

	assert_int_equal(ca_authority_not_before(ca), now - CA_BACKDATE_SECS);
	assert_int_equal(ca_authority_not_after(ca), now + lifetime);

	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	assert_string_equal(name_entry(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf)), cn);
	if (org)
		assert_string_equal(
			name_entry(X509_get_subject_name(x), NID_organizationName, buf, sizeof(buf)), org);
	else
		assert_null(name_entry(X509_get_subject_name(x), NID_organizationName, buf, sizeof(buf)));

	assert_int_equal(X509_get_signature_nid(x), sig_nid);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
}

static void test_create_every_alg(void **state)
{
	static const struct {
		sigil_keyalg alg;
		int sig_nid;
	} cases[] = {
		{ SIGIL_KEY_RSA2048, NID_sha256WithRSAEncryption },
		{ SIGIL_KEY_RSA3072, NID_sha256WithRSAEncryption },
		{ SIGIL_KEY_RSA4096, NID_sha256WithRSAEncryption },
		{ SIGIL_KEY_ECDSA_P256, NID_ecdsa_with_SHA256 },
		{ SIGIL_KEY_ECDSA_P384, NID_ecdsa_with_SHA384 },
		{ SIGIL_KEY_ED25519, NID_ED25519 },
	};

	(void)state;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		sigil_err err = { 0 };
		ca_authority *ca = NULL;
		ca_create_opts opts = {
			.alg = cases[i].alg,
			.common_name = "sigil CA tls",
			.organization = "Example Org",
			.lifetime_secs = 30 * DAY,
			.now = FX_NOW,
		};

		assert_int_equal(ca_authority_create(&opts, &ca, &err), 0);
		check_root(ca, cases[i].alg, FX_NOW, 30 * DAY, "sigil CA tls", "Example Org",
			   cases[i].sig_nid);
		ca_authority_free(ca);
	}
}

static void test_create_defaults(void **state)
{
	sigil_err err = { 0 };
	ca_authority *ca = NULL;
	ca_create_opts opts = { .alg = SIGIL_KEY_ECDSA_P256, .now = FX_NOW };

	(void)state;
	assert_int_equal(ca_authority_create(&opts, &ca, &err), 0);
	check_root(ca, SIGIL_KEY_ECDSA_P256, FX_NOW, CA_DEFAULT_LIFETIME_SECS, "sigil CA", NULL,
		   NID_ecdsa_with_SHA256);
	ca_authority_free(ca);

	/* now = 0 means the wall clock. */
	opts.now = 0;
	time_t before = time(NULL);
	assert_int_equal(ca_authority_create(&opts, &ca, &err), 0);
	assert_true(ca_authority_not_before(ca) >= before - CA_BACKDATE_SECS);
	assert_true(ca_authority_not_before(ca) <= time(NULL) - CA_BACKDATE_SECS);
	ca_authority_free(ca);
}

/* Lifetimes that reach past 2049 switch to GeneralizedTime. */
static void test_create_long_lifetime(void **state)
{
	sigil_err err = { 0 };
	ca_authority *ca = NULL;
	ca_create_opts opts = {
		.alg = SIGIL_KEY_ED25519, .lifetime_secs = 40LL * 365 * DAY, .now = FX_NOW
	};

	(void)state;
	assert_int_equal(ca_authority_create(&opts, &ca, &err), 0);
	assert_int_equal(ASN1_STRING_type(X509_get0_notAfter(ca->cert)), V_ASN1_GENERALIZEDTIME);
	assert_int_equal(ASN1_STRING_type(X509_get0_notBefore(ca->cert)), V_ASN1_UTCTIME);
	assert_int_equal(ca_authority_not_after(ca), FX_NOW + 40LL * 365 * DAY);
	ca_authority_free(ca);
}

static void test_create_serials_differ(void **state)
{
	ca_authority *a = fx_make_ca(SIGIL_KEY_ED25519, FX_NOW, 0);
	ca_authority *b = fx_make_ca(SIGIL_KEY_ED25519, FX_NOW, 0);

	(void)state;
	assert_int_not_equal(
		ASN1_INTEGER_cmp(X509_get0_serialNumber(a->cert), X509_get0_serialNumber(b->cert)), 0);
	assert_int_not_equal(EVP_PKEY_eq(a->key, b->key), 1);
	ca_authority_free(a);
	ca_authority_free(b);
}

static void test_create_bad_opts(void **state)
{
	char long_cn[66];
	static const char ctrl_cn[] = "evil\nCN";
	struct {
		ca_create_opts opts;
		int rc;
		const char *msg;
	} cases[] = {
		{ { .alg = SIGIL_KEY_ED25519, .common_name = "" }, SIGIL_E_INVALID, "must not be empty" },
		{ { .alg = SIGIL_KEY_ED25519, .common_name = long_cn }, SIGIL_E_LIMIT, "65 bytes" },
		{ { .alg = SIGIL_KEY_ED25519, .common_name = ctrl_cn }, SIGIL_E_INVALID, "control" },
		{ { .alg = SIGIL_KEY_ED25519, .organization = long_cn }, SIGIL_E_LIMIT, "organization" },
		{ { .alg = SIGIL_KEY_ED25519, .lifetime_secs = -1 }, SIGIL_E_INVALID, "lifetime" },
		{ { .alg = SIGIL_KEY_ED25519, .lifetime_secs = CA_BACKDATE_SECS }, SIGIL_E_INVALID, "lifetime" },
		{ { .alg = SIGIL_KEY_ED25519, .lifetime_secs = 101LL * 365 * DAY }, SIGIL_E_INVALID, "lifetime" },
		{ { .alg = SIGIL_KEY__COUNT }, SIGIL_E_INVALID, "unknown key algorithm" },
	};

	(void)state;
	memset(long_cn, 'a', 65);
	long_cn[65] = '\0';
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		sigil_err err = { 0 };
		ca_authority *ca = NULL;

		cases[i].opts.now = FX_NOW;
		assert_int_equal(ca_authority_create(&cases[i].opts, &ca, &err), cases[i].rc);
		assert_null(ca);
		assert_non_null(strstr(err.msg, cases[i].msg));
	}
	/* 64 bytes is the RFC 5280 upper bound and is fine. */
	long_cn[64] = '\0';
	ca_authority *ca = NULL;
	ca_create_opts ok = { .alg = SIGIL_KEY_ED25519, .common_name = long_cn, .now = FX_NOW };
	assert_int_equal(ca_authority_create(&ok, &ca, NULL), 0);
	ca_authority_free(ca);
	assert_int_equal(ca_authority_create(NULL, &ca, NULL), SIGIL_E_INVALID);
}

/* ---- PEM lists and times ---------------------------------------------------- */

static void test_certs_pem_round_trip(void **state)
{
	ca_authority *cas[3];
	X509 *xs[3];
	STACK_OF(X509) *sk = sk_X509_new_null();
	STACK_OF(X509) *back = NULL;
	sigil_err err = { 0 };
	char *pem = NULL;
	size_t len = 0;

	(void)state;
	for (int i = 0; i < 3; i++) {
		cas[i] = fx_make_ca(SIGIL_KEY_ECDSA_P256, FX_NOW, 0);
		xs[i] = cas[i]->cert;
		sk_X509_push(sk, xs[i]);
	}
	assert_int_equal(ca_certs_to_pem(sk, &pem, &len, &err), 0);
	assert_int_equal(strlen(pem), len);
	char *expect = fx_certs_pem(xs, 3);
	assert_string_equal(pem, expect);
	free(expect);

	assert_int_equal(ca_certs_from_pem(pem, len, 3, &back, &err), 0);
	assert_int_equal(sk_X509_num(back), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(X509_cmp(sk_X509_value(back, i), xs[i]), 0);
	sk_X509_pop_free(back, X509_free);
	back = NULL;

	/* Count limit. */
	assert_int_equal(ca_certs_from_pem(pem, len, 2, &back, &err), SIGIL_E_LIMIT);
	assert_null(back);
	assert_non_null(strstr(err.msg, "more than 2"));
	assert_int_equal(ca_certs_from_pem(pem, len, 0, &back, &err), SIGIL_E_INVALID);

	/* Text around and between the blocks (as "openssl x509 -text" writes) is fine. */
	size_t n1 = strlen("subject=CN = x\n");
	size_t big = len + 2 * n1 + 32;
	char *decorated = malloc(big);
	snprintf(decorated, big, "subject=CN = x\n%strailer\n", pem);
	assert_int_equal(ca_certs_from_pem(decorated, strlen(decorated), 3, &back, &err), 0);
	assert_int_equal(sk_X509_num(back), 3);
	sk_X509_pop_free(back, X509_free);
	back = NULL;
	free(decorated);

	/* Truncated anywhere inside the first certificate: no certificate. */
	size_t first_end = (size_t)(strstr(pem, "-----END CERTIFICATE-----") - pem);
	for (size_t cut = 0; cut < first_end + 20; cut += 13) {
		sigil_err_clear(&err);
		assert_true(ca_certs_from_pem(pem, cut, 3, &back, &err) < 0);
		assert_null(back);
		assert_true(err.msg[0] != '\0');
	}
	/* Truncated inside the second: refused, not silently shortened. */
	assert_int_equal(ca_certs_from_pem(pem, first_end + 26 + 100, 3, &back, &err),
			 SIGIL_E_INVALID);
	assert_null(back);

	/* Empty stack encodes to an empty string. */
	STACK_OF(X509) *empty = sk_X509_new_null();
	char *e = NULL;
	assert_int_equal(ca_certs_to_pem(empty, &e, &len, &err), 0);
	assert_int_equal(len, 0);
	assert_string_equal(e, "");
	free(e);
	sk_X509_free(empty);
	assert_int_equal(ca_certs_to_pem(NULL, &e, &len, &err), SIGIL_E_INVALID);

	free(pem);
	sk_X509_free(sk);
	for (int i = 0; i < 3; i++)
		ca_authority_free(cas[i]);
}

static void test_certs_pem_bad(void **state)
{
	ca_authority *ca = fx_make_ca(SIGIL_KEY_ECDSA_P256, FX_NOW, 0);
	STACK_OF(X509) *back = NULL;
	sigil_err err = { 0 };
	char *cert = fx_cert_pem(ca->cert);
	char *key = fx_key_pem(ca->key);
	size_t n;

	(void)state;
	/* Empty and garbage. */
	assert_int_equal(ca_certs_from_pem("", 0, 4, &back, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_certs_from_pem(NULL, 0, 4, &back, &err), SIGIL_E_INVALID);
	static const char garbage[] = "\x30\x82\x01\x00garbage\xff\xfe not pem at all";
	assert_int_equal(ca_certs_from_pem(garbage, sizeof(garbage), 4, &back, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "no PEM certificate"));
	/* A private key next to a certificate is refused, not skipped. */
	n = strlen(cert) + strlen(key) + 1;
	char *mixed = malloc(n);
	snprintf(mixed, n, "%s%s", cert, key);
	assert_int_equal(ca_certs_from_pem(mixed, n - 1, 4, &back, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "PRIVATE KEY"));
	assert_null(back);
	free(mixed);
	/* Valid PEM armour around a body that is not a certificate. */
	static const char notcert[] = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n"
				      "-----END CERTIFICATE-----\n";
	assert_int_equal(ca_certs_from_pem(notcert, strlen(notcert), 4, &back, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "not valid DER"));
	/* Trailing bytes after the DER certificate inside the block. */
	{
		unsigned char *der = NULL;
		int dl = i2d_X509(ca->cert, &der);
		unsigned char *der2 = malloc((size_t)dl + 3);
		memcpy(der2, der, (size_t)dl);
		memcpy(der2 + dl, "abc", 3);
		BIO *bio = BIO_new(BIO_s_mem());
		assert_true(PEM_write_bio(bio, "CERTIFICATE", "", der2, dl + 3) > 0);
		char *p = NULL;
		long pl = BIO_get_mem_data(bio, &p);
		assert_int_equal(ca_certs_from_pem(p, (size_t)pl, 4, &back, &err), SIGIL_E_INVALID);
		BIO_free(bio);
		free(der2);
		OPENSSL_free(der);
	}
	/* Oversized input. */
	size_t big = SIGIL_MAX_FILE_SIZE + 1;
	char *huge = malloc(big);
	memset(huge, '\n', big);
	memcpy(huge, cert, strlen(cert));
	assert_int_equal(ca_certs_from_pem(huge, big, 4, &back, &err), SIGIL_E_LIMIT);
	assert_null(back);
	free(huge);

	free(key);
	free(cert);
	ca_authority_free(ca);
}

static void test_asn1_time(void **state)
{
	ASN1_TIME *t = ASN1_TIME_new();

	(void)state;
	assert_non_null(ASN1_TIME_set(t, FX_NOW));
	assert_int_equal(ca_asn1_time_to_time_t(t), FX_NOW);
	/* 2051-01-01: GeneralizedTime. */
	assert_non_null(ASN1_TIME_set(t, (time_t)2556144000LL));
	assert_int_equal(ASN1_STRING_type(t), V_ASN1_GENERALIZEDTIME);
	assert_int_equal(ca_asn1_time_to_time_t(t), (time_t)2556144000LL);
	assert_int_equal(ASN1_TIME_set_string(t, "20240101000000Z"), 1);
	assert_int_equal(ca_asn1_time_to_time_t(t), FX_NOW);
	/* Garbage content. */
	assert_int_equal(ASN1_STRING_set(t, "garbage", 7), 1);
	assert_int_equal(ca_asn1_time_to_time_t(t), 0);
	assert_int_equal(ca_asn1_time_to_time_t(NULL), 0);
	ASN1_TIME_free(t);
	assert_int_equal(ca_authority_not_after(NULL), 0);
	assert_int_equal(ca_authority_not_before(NULL), 0);
}

/* ---- import ------------------------------------------------------------------- */

/* root (self-signed) -> inter1 -> inter2, all CAs; plus the PEMs. */
typedef struct pki {
	ca_authority *root;
	EVP_PKEY *k1, *k2;
	X509 *inter1, *inter2;
} pki;

static pki *pki_new(void)
{
	pki *p = calloc(1, sizeof(*p));

	p->root = fx_make_ca(SIGIL_KEY_ECDSA_P384, FX_NOW - 10 * DAY, 3650LL * DAY);
	p->k1 = fx_make_key(SIGIL_KEY_ECDSA_P256);
	p->k2 = fx_make_key(SIGIL_KEY_RSA2048);
	p->inter1 = fx_make_cert(&(fx_cert_opts){
		.cn = "Intermediate 1",
		.key = p->k1,
		.issuer = p->root->cert,
		.issuer_key = p->root->key,
		.bc = FX_BC_CA,
		.ku = KU_KEY_CERT_SIGN | KU_CRL_SIGN,
		.not_before = FX_NOW - 5 * DAY,
		.not_after = FX_NOW + 1000 * DAY,
	});
	p->inter2 = fx_make_cert(&(fx_cert_opts){
		.cn = "Intermediate 2",
		.key = p->k2,
		.issuer = p->inter1,
		.issuer_key = p->k1,
		.bc = FX_BC_CA,
		.ku = KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE,
		.not_before = FX_NOW - 4 * DAY,
		.not_after = FX_NOW + 500 * DAY,
	});
	return p;
}

static void pki_free(pki *p)
{
	ca_authority_free(p->root);
	EVP_PKEY_free(p->k1);
	EVP_PKEY_free(p->k2);
	X509_free(p->inter1);
	X509_free(p->inter2);
	free(p);
}

static int setup_pki(void **state)
{
	*state = pki_new();
	return 0;
}

static int teardown_pki(void **state)
{
	pki_free(*state);
	return 0;
}

static int import_pem(X509 *cert, EVP_PKEY *key, X509 *const *chain, size_t n_chain,
		      ca_authority **ret, sigil_err *err)
{
	char *c = fx_cert_pem(cert);
	char *k = fx_key_pem(key);
	char *ch = n_chain ? fx_certs_pem(chain, n_chain) : NULL;
	int r = ca_authority_from_pem(c, strlen(c), k, strlen(k), NULL, ch, ch ? strlen(ch) : 0,
				      FX_NOW, ret, err);

	free(c);
	free(k);
	free(ch);
	return r;
}

static void test_import_intermediate_with_chain(void **state)
{
	pki *p = *state;
	sigil_err err = { 0 };
	ca_authority *ca = NULL;

	/* Issuer order. */
	X509 *chain[] = { p->inter1, p->root->cert };
	assert_int_equal(import_pem(p->inter2, p->k2, chain, 2, &ca, &err), 0);
	assert_int_equal(X509_cmp(ca->cert, p->inter2), 0);
	assert_int_equal(EVP_PKEY_eq(ca->key, p->k2), 1);
	assert_int_equal(sk_X509_num(ca->chain), 1);
	assert_int_equal(X509_cmp(sk_X509_value(ca->chain, 0), p->inter1), 0);
	assert_non_null(ca->root);
	assert_int_equal(X509_cmp(ca->root, p->root->cert), 0);
	assert_int_equal(ca_authority_not_after(ca), FX_NOW + 500 * DAY);
	assert_int_equal(ca_authority_not_before(ca), FX_NOW - 4 * DAY);
	ca_authority_free(ca);

	/* Reverse order (root first) is put in order. */
	X509 *rev[] = { p->root->cert, p->inter1 };
	assert_int_equal(import_pem(p->inter2, p->k2, rev, 2, &ca, &err), 0);
	assert_int_equal(sk_X509_num(ca->chain), 1);
	assert_int_equal(X509_cmp(sk_X509_value(ca->chain, 0), p->inter1), 0);
	assert_int_equal(X509_cmp(ca->root, p->root->cert), 0);
	ca_authority_free(ca);

	/* Without the root: the chain stops at the last intermediate. */
	assert_int_equal(import_pem(p->inter2, p->k2, chain, 1, &ca, &err), 0);
	assert_int_equal(sk_X509_num(ca->chain), 1);
	assert_null(ca->root);
	ca_authority_free(ca);

	/* No chain at all. */
	assert_int_equal(import_pem(p->inter2, p->k2, NULL, 0, &ca, &err), 0);
	assert_int_equal(sk_X509_num(ca->chain), 0);
	assert_null(ca->root);
	ca_authority_free(ca);

	/* One-level intermediate with the root. */
	X509 *rootonly[] = { p->root->cert };
	assert_int_equal(import_pem(p->inter1, p->k1, rootonly, 1, &ca, &err), 0);
	assert_int_equal(sk_X509_num(ca->chain), 0);
	assert_int_equal(X509_cmp(ca->root, p->root->cert), 0);
	ca_authority_free(ca);

	/* The CA certificate file carries the chain itself (and the chain file
	 * repeats the CA certificate and the root: duplicates are dropped). */
	X509 *bundle[] = { p->inter2, p->inter1, p->root->cert };
	char *c = fx_certs_pem(bundle, 3);
	char *ch = fx_certs_pem((X509 *[]){ p->inter2, p->root->cert }, 2);
	char *k = fx_key_pem(p->k2);
	assert_int_equal(ca_authority_from_pem(c, strlen(c), k, strlen(k), NULL, ch, strlen(ch),
					       FX_NOW, &ca, &err),
			 0);
	assert_int_equal(X509_cmp(ca->cert, p->inter2), 0);
	assert_int_equal(sk_X509_num(ca->chain), 1);
	assert_int_equal(X509_cmp(ca->root, p->root->cert), 0);
	ca_authority_free(ca);
	free(c);
	free(ch);
	free(k);

	/* Importing a self-signed root as the CA: it anchors its own bundle,
	 * and a copy of it in the chain file is accepted. */
	assert_int_equal(import_pem(p->root->cert, p->root->key, NULL, 0, &ca, &err), 0);
	assert_int_equal(sk_X509_num(ca->chain), 0);
	assert_non_null(ca->root);
	assert_int_equal(X509_cmp(ca->root, p->root->cert), 0);
	ca_authority_free(ca);
	assert_int_equal(import_pem(p->root->cert, p->root->key, (X509 *[]){ p->root->cert }, 1, &ca,
				    &err),
			 0);
	assert_int_equal(sk_X509_num(ca->chain), 0);
	assert_int_equal(X509_cmp(ca->root, p->root->cert), 0);
	ca_authority_free(ca);
}

static void test_import_files_encrypted(void **state)
{
	pki *p = *state;
	char *dir = fx_tmpdir();
	char *c = fx_cert_pem(p->inter1);
	char *r = fx_cert_pem(p->root->cert);
	char *k = fx_key_pem_encrypted(p->k1, "company secret");
	char *cert_path = fx_write(dir, "ca.crt", c, strlen(c));
	char *chain_path = fx_write(dir, "chain.crt", r, strlen(r));
	char *key_path = fx_write(dir, "ca.key", k, strlen(k));
	char *pw_path = fx_write(dir, "pw", "company secret\nsecond line\n", 27);
	char *pw_crlf = fx_write(dir, "pw-crlf", "company secret\r\n", 16);
	char *pw_nonl = fx_write(dir, "pw-nonl", "company secret", 14);
	char *pw_bad = fx_write(dir, "pw-bad", "company secret \n", 16);
	char *missing = sigil_path_join(dir, "missing");
	sigil_err err = { 0 };
	ca_authority *ca = NULL;

	(void)state;
	assert_int_equal(ca_authority_import(cert_path, key_path, pw_path, chain_path, FX_NOW, &ca, &err),
			 0);
	assert_int_equal(EVP_PKEY_eq(ca->key, p->k1), 1);
	assert_int_equal(X509_cmp(ca->root, p->root->cert), 0);
	ca_authority_free(ca);
	ca = NULL;
	assert_int_equal(ca_authority_import(cert_path, key_path, pw_crlf, NULL, FX_NOW, &ca, &err), 0);
	assert_null(ca->root);
	ca_authority_free(ca);
	ca = NULL;
	assert_int_equal(ca_authority_import(cert_path, key_path, pw_nonl, NULL, FX_NOW, &ca, &err), 0);
	ca_authority_free(ca);
	ca = NULL;

	/* Wrong passphrase (a trailing space is part of it). */
	assert_int_equal(ca_authority_import(cert_path, key_path, pw_bad, NULL, FX_NOW, &ca, &err),
			 SIGIL_E_UNAUTH);
	assert_null(ca);
	assert_non_null(strstr(err.msg, "wrong passphrase"));
	/* No passphrase for an encrypted key. */
	assert_int_equal(ca_authority_import(cert_path, key_path, NULL, NULL, FX_NOW, &ca, &err),
			 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "no passphrase"));
	/* Missing files name the file. */
	assert_int_equal(ca_authority_import(cert_path, key_path, missing, NULL, FX_NOW, &ca, &err),
			 SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "passphrase"));
	assert_int_equal(ca_authority_import(missing, key_path, pw_path, NULL, FX_NOW, &ca, &err),
			 SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "missing"));
	assert_int_equal(ca_authority_import(cert_path, missing, pw_path, NULL, FX_NOW, &ca, &err),
			 SIGIL_E_NOTFOUND);
	assert_int_equal(ca_authority_import(cert_path, key_path, pw_path, missing, FX_NOW, &ca, &err),
			 SIGIL_E_NOTFOUND);
	assert_int_equal(ca_authority_import(NULL, key_path, NULL, NULL, FX_NOW, &ca, &err),
			 SIGIL_E_INVALID);
	/* The key file given as the certificate. */
	assert_int_equal(ca_authority_import(key_path, key_path, pw_path, NULL, FX_NOW, &ca, &err),
			 SIGIL_E_INVALID);
	assert_null(ca);

	free(missing);
	free(pw_bad);
	free(pw_nonl);
	free(pw_crlf);
	free(pw_path);
	free(key_path);
	free(chain_path);
	free(cert_path);
	free(k);
	free(r);
	free(c);
	fx_rmdir(dir);
}

static void test_import_key_mismatch(void **state)
{
	pki *p = *state;
	sigil_err err = { 0 };
	ca_authority *ca = NULL;

	assert_int_equal(import_pem(p->inter1, p->k2, NULL, 0, &ca, &err), SIGIL_E_INVALID);
	assert_null(ca);
	assert_non_null(strstr(err.msg, "key does not match certificate"));
	/* Same algorithm, other key. */
	EVP_PKEY *other = fx_make_key(SIGIL_KEY_ECDSA_P256);
	assert_int_equal(import_pem(p->inter1, other, NULL, 0, &ca, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "key does not match certificate"));
	EVP_PKEY_free(other);
}

static void test_import_validity(void **state)
{
	pki *p = *state;
	sigil_err err = { 0 };
	ca_authority *ca = NULL;
	EVP_PKEY *k = fx_make_key(SIGIL_KEY_ECDSA_P256);
	fx_cert_opts o = {
		.cn = "Old CA",
		.key = k,
		.issuer = p->root->cert,
		.issuer_key = p->root->key,
		.bc = FX_BC_CA,
		.ku = KU_KEY_CERT_SIGN,
		.not_before = FX_NOW - 100 * DAY,
		.not_after = FX_NOW - 1,
	};
	X509 *expired = fx_make_cert(&o);
	o.cn = "Future CA";
	o.not_before = FX_NOW + 60;
	o.not_after = FX_NOW + 100 * DAY;
	X509 *future = fx_make_cert(&o);
	o.cn = "Edge CA";
	o.not_before = FX_NOW - 1;
	o.not_after = FX_NOW;
	X509 *edge = fx_make_cert(&o);

	assert_int_equal(import_pem(expired, k, NULL, 0, &ca, &err), SIGIL_E_EXPIRED);
	assert_null(ca);
	assert_non_null(strstr(err.msg, "CA certificate \"CN=Old CA\" has expired on 2023-12-31 23:59:59 UTC"));
	assert_int_equal(import_pem(future, k, NULL, 0, &ca, &err), SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "not valid until 2024-01-01 00:01:00 UTC"));
	/* notAfter itself is still inside the validity period. */
	assert_int_equal(import_pem(edge, k, NULL, 0, &ca, &err), 0);
	ca_authority_free(ca);
	ca = NULL;

	/* An expired certificate in the chain breaks every leaf: refused. */
	EVP_PKEY *k2 = fx_make_key(SIGIL_KEY_ED25519);
	X509 *below = fx_make_cert(&(fx_cert_opts){
		.cn = "Below Old",
		.key = k2,
		.issuer = expired,
		.issuer_key = k,
		.bc = FX_BC_CA,
		.ku = KU_KEY_CERT_SIGN,
		.not_before = FX_NOW - 10 * DAY,
		.not_after = FX_NOW + 10 * DAY,
	});
	assert_int_equal(import_pem(below, k2, &expired, 1, &ca, &err), SIGIL_E_EXPIRED);
	assert_non_null(strstr(err.msg, "chain certificate \"CN=Old CA\" has expired"));

	X509_free(below);
	EVP_PKEY_free(k2);
	X509_free(edge);
	X509_free(future);
	X509_free(expired);
	EVP_PKEY_free(k);
}

static void test_import_not_a_ca(void **state)
{
	pki *p = *state;
	EVP_PKEY *k = fx_make_key(SIGIL_KEY_ECDSA_P256);
	static const struct {
		enum fx_bc bc;
		unsigned int ku;
		const char *msg;
	} cases[] = {
		{ FX_BC_LEAF, KU_DIGITAL_SIGNATURE, "is not a CA (basicConstraints CA:FALSE)" },
		{ FX_BC_NONE, KU_KEY_CERT_SIGN, "is not a CA (no basicConstraints extension)" },
		{ FX_BC_CA, KU_DIGITAL_SIGNATURE | KU_CRL_SIGN, "is not a CA (keyUsage lacks keyCertSign)" },
	};

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		sigil_err err = { 0 };
		ca_authority *ca = NULL;
		X509 *x = fx_make_cert(&(fx_cert_opts){
			.cn = "Leafy",
			.key = k,
			.issuer = p->root->cert,
			.issuer_key = p->root->key,
			.bc = cases[i].bc,
			.ku = cases[i].ku,
			.not_before = FX_NOW - DAY,
			.not_after = FX_NOW + DAY,
		});
		assert_int_equal(import_pem(x, k, NULL, 0, &ca, &err), SIGIL_E_INVALID);
		assert_null(ca);
		assert_non_null(strstr(err.msg, cases[i].msg));
		X509_free(x);
	}
	/* CA:TRUE without any keyUsage is acceptable (RFC 5280 allows it). */
	sigil_err err = { 0 };
	ca_authority *ca = NULL;
	X509 *x = fx_make_cert(&(fx_cert_opts){
		.cn = "No KU CA",
		.key = k,
		.issuer = p->root->cert,
		.issuer_key = p->root->key,
		.bc = FX_BC_CA,
		.not_before = FX_NOW - DAY,
		.not_after = FX_NOW + DAY,
	});
	assert_int_equal(import_pem(x, k, NULL, 0, &ca, &err), 0);
	ca_authority_free(ca);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_import_broken_chain(void **state)
{
	pki *p = *state;
	sigil_err err = { 0 };
	ca_authority *ca = NULL;
	ca_authority *stranger = fx_make_ca(SIGIL_KEY_ECDSA_P256, FX_NOW, 0);

	/* inter2's issuer (inter1) is missing; only the root is there. */
	X509 *skip[] = { p->root->cert };
	assert_int_equal(import_pem(p->inter2, p->k2, skip, 1, &ca, &err), SIGIL_E_INVALID);
	assert_null(ca);
	assert_non_null(strstr(err.msg, "chain does not link"));
	assert_non_null(strstr(err.msg, "Intermediate 2"));

	/* A certificate that is not on the path. */
	X509 *extra[] = { p->inter1, p->root->cert, stranger->cert };
	assert_int_equal(import_pem(p->inter2, p->k2, extra, 3, &ca, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "is not on the path"));

	/* An impostor with the right name but another key. */
	EVP_PKEY *ik = fx_make_key(SIGIL_KEY_ECDSA_P256);
	X509 *impostor = fx_make_cert(&(fx_cert_opts){
		.cn = "Intermediate 1",
		.key = ik,
		.issuer = p->root->cert,
		.issuer_key = p->root->key,
		.bc = FX_BC_CA,
		.ku = KU_KEY_CERT_SIGN,
		.not_before = FX_NOW - DAY,
		.not_after = FX_NOW + DAY,
	});
	X509 *imp[] = { impostor, p->root->cert };
	assert_int_equal(import_pem(p->inter2, p->k2, imp, 2, &ca, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "chain does not link"));

	/* Same name and same key identifier but a forged signature: build an
	 * "inter1" signed by the stranger, which inter2 does not verify under. */
	X509 *mangled = X509_dup(p->inter2);
	const ASN1_BIT_STRING *sig = NULL;
	X509_get0_signature(&sig, NULL, mangled);
	unsigned char *d = (unsigned char *)ASN1_STRING_get0_data(sig);
	d[ASN1_STRING_length(sig) / 2] ^= 0x01;
	X509 *good[] = { p->inter1, p->root->cert };
	assert_int_equal(import_pem(mangled, p->k2, good, 2, &ca, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "does not verify"));

	/* An issuer in the chain that is not a CA. */
	EVP_PKEY *lk = fx_make_key(SIGIL_KEY_ED25519);
	X509 *leafish = fx_make_cert(&(fx_cert_opts){
		.cn = "Leaf Issuer",
		.key = lk,
		.issuer = p->root->cert,
		.issuer_key = p->root->key,
		.bc = FX_BC_LEAF,
		.not_before = FX_NOW - DAY,
		.not_after = FX_NOW + DAY,
	});
	EVP_PKEY *ck = fx_make_key(SIGIL_KEY_ED25519);
	X509 *child = fx_make_cert(&(fx_cert_opts){
		.cn = "Child CA",
		.key = ck,
		.issuer = leafish,
		.issuer_key = lk,
		.bc = FX_BC_CA,
		.not_before = FX_NOW - DAY,
		.not_after = FX_NOW + DAY,
	});
	assert_int_equal(import_pem(child, ck, &leafish, 1, &ca, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "chain certificate \"CN=Leaf Issuer\" is not a CA"));

	/* Chain file of garbage. */
	char *c = fx_cert_pem(p->inter2);
	char *k = fx_key_pem(p->k2);
	assert_int_equal(ca_authority_from_pem(c, strlen(c), k, strlen(k), NULL, "junk", 4, FX_NOW,
					       &ca, &err),
			 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "CA chain: "));
	/* Too many chain certificates. */
	X509 *many[CA_MAX_CHAIN + 1];
	for (int i = 0; i <= CA_MAX_CHAIN; i++)
		many[i] = p->root->cert;
	char *mp = fx_certs_pem(many, CA_MAX_CHAIN + 1);
	assert_int_equal(ca_authority_from_pem(c, strlen(c), k, strlen(k), NULL, mp, strlen(mp),
					       FX_NOW, &ca, &err),
			 SIGIL_E_LIMIT);
	free(mp);
	/* Garbage key and certificate. */
	assert_int_equal(ca_authority_from_pem(c, strlen(c), "junk", 4, NULL, NULL, 0, FX_NOW, &ca, &err),
			 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "CA key: "));
	assert_int_equal(ca_authority_from_pem("junk", 4, k, strlen(k), NULL, NULL, 0, FX_NOW, &ca, &err),
			 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "CA certificate: "));
	assert_null(ca);
	free(k);
	free(c);

	X509_free(child);
	EVP_PKEY_free(ck);
	X509_free(leafish);
	EVP_PKEY_free(lk);
	X509_free(mangled);
	X509_free(impostor);
	EVP_PKEY_free(ik);
	ca_authority_free(stranger);
}

/* A CA key that cannot sign (RSA-1024) is refused at import. */
static void test_import_weak_key(void **state)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	sigil_err err = { 0 };
	ca_authority *ca = NULL;

	(void)state;
	assert_non_null(k);
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8, (const unsigned char *)"weak", -1,
				   -1, 0);
	X509_set_version(x, X509_VERSION_3);
	assert_int_equal(ca_cert_set_random_serial(x, &err), 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	assert_int_equal(ca_cert_set_validity(x, FX_NOW - DAY, FX_NOW + DAY, &err), 0);
	X509_set_pubkey(x, k);
	assert_int_equal(ca_cert_add_basic_constraints(x, true, &err), 0);
	assert_int_not_equal(X509_sign(x, k, EVP_sha256()), 0);
	assert_int_equal(import_pem(x, k, NULL, 0, &ca, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "RSA 1024"));
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_building_blocks_bad(void **state)
{
	X509 *x = X509_new();
	sigil_err err = { 0 };

	(void)state;
	assert_int_equal(ca_cert_set_validity(x, FX_NOW, FX_NOW, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_cert_add_key_usage(x, 0, &err), SIGIL_E_INTERNAL);
	assert_int_equal(ca_cert_add_key_usage(x, 0x1000, &err), SIGIL_E_INTERNAL);
	/* decipherOnly lives in the second octet. */
	assert_int_equal(ca_cert_add_key_usage(x, KU_KEY_AGREEMENT | KU_DECIPHER_ONLY, &err), 0);
	ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, NULL, NULL);
	assert_non_null(ku);
	for (int bit = 0; bit < 10; bit++)
		assert_int_equal(ASN1_BIT_STRING_get_bit(ku, bit), bit == 4 || bit == 8);
	ASN1_BIT_STRING_free(ku);
	X509_free(x);
}

/* Serials are minimal DER (no leading zero octet unless the sign needs it)
 * and never zero, including when the random draw starts with zero octets
 * (1 in 128 draws: 3000 make it near certain that the path runs). */
static void test_serial_encoding(void **state)
{
	sigil_err err = { 0 };
	int leading_zero_drawn = 0;

	(void)state;
	for (int i = 0; i < 3000; i++) {
		X509 *x = X509_new();
		unsigned char *der = NULL;
		int n;

		assert_int_equal(ca_cert_set_random_serial(x, &err), 0);
		assert_serial_ok(x);
		n = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &der);
		assert_true(n >= 3);
		/* X.690 8.3.2: the first nine bits are not all zero. */
		assert_false(der[2] == 0x00 && n > 3 && !(der[3] & 0x80));
		if (n - 2 < CA_SERIAL_BYTES)
			leading_zero_drawn++;
		/* The encoding reads back as the same integer. */
		const unsigned char *p = der;
		ASN1_INTEGER *back = d2i_ASN1_INTEGER(NULL, &p, n);
		assert_non_null(back);
		assert_int_equal(ASN1_INTEGER_cmp(back, X509_get0_serialNumber(x)), 0);
		ASN1_INTEGER_free(back);
		OPENSSL_free(der);
		X509_free(x);
	}
	assert_true(leading_zero_drawn > 0);
}

/* Created and imported authorities carry a signing context; signing
 * through it gives the same signature algorithm as ca_cert_sign, for every
 * key type, and an authority without one (assembled by hand) still signs. */
static void test_sign_with_context(void **state)
{
	static const sigil_keyalg algs[] = { SIGIL_KEY_RSA2048, SIGIL_KEY_ECDSA_P256,
					     SIGIL_KEY_ECDSA_P384, SIGIL_KEY_ED25519 };
	sigil_err err = { 0 };

	(void)state;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(algs); i++) {
		ca_authority *ca = fx_make_ca(algs[i], FX_NOW, 30 * DAY);
		ca_authority *imported = NULL;
		EVP_PKEY *leaf_key = fx_make_key(SIGIL_KEY_ECDSA_P256);

		assert_non_null(ca->sign_ctx);
		assert_int_equal(import_pem(ca->cert, ca->key, NULL, 0, &imported, &err), 0);
		assert_non_null(imported->sign_ctx);
		ca_authority hand = { .cert = ca->cert, .key = ca->key };
		const ca_authority *signers[] = { ca, imported, &hand };
		for (size_t s = 0; s < SIGIL_ARRAY_SIZE(signers); s++) {
			X509 *x = fx_make_cert(&(fx_cert_opts){
				.cn = "leaf",
				.key = leaf_key,
				.issuer = ca->cert,
				.issuer_key = ca->key,
				.bc = FX_BC_LEAF,
				.ku = KU_DIGITAL_SIGNATURE,
				.not_before = FX_NOW,
				.not_after = FX_NOW + DAY,
			});
			X509 *ref = X509_dup(x);
			/* Twice through the same context: a copy is used each time. */
			for (int round = 0; round < 2; round++) {
				assert_int_equal(ca_authority_sign_cert(signers[s], x, &err), 0);
				assert_int_equal(X509_verify(x, X509_get0_pubkey(ca->cert)), 1);
			}
			assert_int_equal(ca_cert_sign(ref, ca->key, &err), 0);
			assert_int_equal(X509_get_signature_nid(x), X509_get_signature_nid(ref));
			assert_int_equal(X509_ALGOR_cmp(X509_get0_tbs_sigalg(x), X509_get0_tbs_sigalg(ref)), 0);
			X509_free(ref);
			X509_free(x);
		}
		EVP_PKEY_free(leaf_key);
		ca_authority_free(imported);
		ca_authority_free(ca);
	}
	X509 *x = X509_new();
	assert_int_equal(ca_authority_sign_cert(NULL, x, &err), SIGIL_E_INVALID);
	X509_free(x);
}

/* An authority assembled by hand gets its signing context on request. */
static void test_prepare_handmade(void **state)
{
	pki *p = *state;
	sigil_err err = { 0 };
	ca_authority *hand = calloc(1, sizeof(*hand));

	assert_non_null(hand);
	assert_int_equal(ca_authority_prepare(hand, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_authority_prepare(NULL, &err), SIGIL_E_INVALID);
	X509_up_ref(p->root->cert);
	EVP_PKEY_up_ref(p->root->key);
	hand->cert = p->root->cert;
	hand->key = p->root->key;
	assert_null(hand->sign_ctx);
	assert_int_equal(ca_authority_prepare(hand, &err), 0);
	assert_non_null(hand->sign_ctx);
	EVP_MD_CTX *first = hand->sign_ctx;
	assert_int_equal(ca_authority_prepare(hand, &err), 0);
	assert_ptr_equal(hand->sign_ctx, first);
	X509 *x = fx_make_cert(&(fx_cert_opts){ .cn = "leaf", .key = p->k1, .issuer = hand->cert,
					       .issuer_key = hand->key, .bc = FX_BC_LEAF,
					       .not_before = FX_NOW, .not_after = FX_NOW + DAY });
	assert_int_equal(ca_authority_sign_cert(hand, x, &err), 0);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(hand->cert)), 1);
	X509_free(x);
	ca_authority_free(hand);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_every_alg),
		cmocka_unit_test(test_create_defaults),
		cmocka_unit_test(test_create_long_lifetime),
		cmocka_unit_test(test_create_serials_differ),
		cmocka_unit_test(test_create_bad_opts),
		cmocka_unit_test(test_certs_pem_round_trip),
		cmocka_unit_test(test_certs_pem_bad),
		cmocka_unit_test(test_asn1_time),
		cmocka_unit_test(test_import_intermediate_with_chain),
		cmocka_unit_test(test_import_files_encrypted),
		cmocka_unit_test(test_import_key_mismatch),
		cmocka_unit_test(test_import_validity),
		cmocka_unit_test(test_import_not_a_ca),
		cmocka_unit_test(test_import_broken_chain),
		cmocka_unit_test(test_import_weak_key),
		cmocka_unit_test(test_building_blocks_bad),
		cmocka_unit_test(test_serial_encoding),
		cmocka_unit_test(test_sign_with_context),
		cmocka_unit_test(test_prepare_handmade),
	};
	/* One PKI for the group: the import tests only read it. */
	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
