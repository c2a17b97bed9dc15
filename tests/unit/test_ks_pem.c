/* tls-pem output: file set, chain order, PKCS#8 key, trust bundle, and
 * `openssl verify` over the written files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "keystore/keystore.h"
#include "tests/helpers/ks_fixtures.h"

/* All certificates of a PEM buffer, in order. */
static STACK_OF(X509) *read_certs(const ks_file *f)
{
	BIO *bio = BIO_new_mem_buf(f->data, (int)f->len);
	STACK_OF(X509) *sk = sk_X509_new_null();
	X509 *x;

	assert_non_null(bio);
	assert_non_null(sk);
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		assert_true(sk_X509_push(sk, x) > 0);
	ERR_clear_error();
	BIO_free(bio);
	return sk;
}

static void render_ok(ks_format fmt, const ks_material *m, const ks_options *o, ks_fileset *fs)
{
	sigil_err err = {0};
	int r = ks_render(fmt, m, o, fs, &err);

	if (r != 0)
		fail_msg("ks_render: %s", err.msg);
}

static void check_roundtrip(ksf_alg alg)
{
	ksf_pki p;
	ks_material m;
	ks_fileset fs;
	const ks_file *crt, *key, *ca;
	STACK_OF(X509) *certs;
	BIO *bio;
	EVP_PKEY *k;
	char *dir, *out = NULL, cmd[1024];
	int rc;

	ksf_pki_new(alg, &p);
	m = ksf_material(&p);
	render_ok(KS_FORMAT_PEM, &m, NULL, &fs);
	assert_int_equal(fs.n, 3);
	crt = ksf_find(&fs, "tls.crt");
	key = ksf_find(&fs, "tls.key");
	ca = ksf_find(&fs, "ca.crt");
	assert_non_null(crt);
	assert_non_null(key);
	assert_non_null(ca);
	assert_false(crt->secret);
	assert_true(key->secret);
	assert_false(ca->secret);

	/* tls.crt: leaf first, then the intermediate, never the root. */
	certs = read_certs(crt);
	assert_int_equal(sk_X509_num(certs), 2);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 0), p.leaf), 0);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 1), p.inter), 0);
	sk_X509_pop_free(certs, X509_free);

	/* tls.key: unencrypted PKCS#8. */
	assert_true(key->len > 28);
	assert_memory_equal(key->data, "-----BEGIN PRIVATE KEY-----\n", 28);
	assert_false(ksf_contains(key->data, key->len, "ENCRYPTED"));
	assert_true(ksf_contains(key->data, key->len, "-----END PRIVATE KEY-----\n"));
	bio = BIO_new_mem_buf(key->data, (int)key->len);
	k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(k);
	assert_true(ksf_key_eq(k, p.leaf_key));
	assert_true(ksf_key_der_eq(k, p.leaf_key));
	EVP_PKEY_free(k);

	/* ca.crt: the whole trust bundle, in order. */
	certs = read_certs(ca);
	assert_int_equal(sk_X509_num(certs), 2);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 0), p.root), 0);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 1), p.other_root), 0);
	sk_X509_pop_free(certs, X509_free);

	/* A real peer's view: the served chain verifies against ca.crt, and
	 * the key file loads in the openssl tool. */
	dir = ksf_mkdtemp();
	for (size_t i = 0; i < fs.n; i++)
		free(ksf_write(dir, fs.files[i].name, fs.files[i].data, fs.files[i].len));
	snprintf(cmd, sizeof(cmd),
		 "openssl verify -CAfile %s/ca.crt -untrusted %s/tls.crt %s/tls.crt && "
		 "openssl pkey -in %s/tls.key -noout",
		 dir, dir, dir, dir);
	rc = ksf_run(cmd, &out);
	if (rc != 0)
		fail_msg("%s failed (%d): %s", cmd, rc, out);
	assert_non_null(strstr(out, ": OK"));
	free(out);
	ksf_rmdir(dir);

	ks_fileset_free(&fs);
	ksf_pki_free(&p);
}

static void test_pem_roundtrip_rsa(void **state)
{
	(void)state;
	check_roundtrip(KSF_RSA);
}

static void test_pem_roundtrip_ec(void **state)
{
	(void)state;
	check_roundtrip(KSF_EC);
}

static void test_pem_roundtrip_ed25519(void **state)
{
	(void)state;
	check_roundtrip(KSF_ED25519);
}

/* A chain that (wrongly) ends in the root still never puts it in tls.crt. */
static void test_pem_drops_root_from_chain(void **state)
{
	ksf_pki p;
	ks_material m;
	ks_fileset fs;
	STACK_OF(X509) *chain, *certs;

	(void)state;
	ksf_pki_new(KSF_EC, &p);
	chain = sk_X509_new_null();
	assert_true(sk_X509_push(chain, p.inter) > 0);
	assert_true(sk_X509_push(chain, p.root) > 0);
	assert_true(sk_X509_push(chain, p.other_root) > 0);
	m = ksf_material(&p);
	m.chain = chain;
	render_ok(KS_FORMAT_PEM, &m, NULL, &fs);
	certs = read_certs(ksf_find(&fs, "tls.crt"));
	assert_int_equal(sk_X509_num(certs), 2);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 0), p.leaf), 0);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 1), p.inter), 0);
	sk_X509_pop_free(certs, X509_free);
	ks_fileset_free(&fs);

	/* No chain at all: just the leaf. */
	m.chain = NULL;
	render_ok(KS_FORMAT_PEM, &m, NULL, &fs);
	certs = read_certs(ksf_find(&fs, "tls.crt"));
	assert_int_equal(sk_X509_num(certs), 1);
	sk_X509_pop_free(certs, X509_free);
	ks_fileset_free(&fs);

	sk_X509_free(chain);
	ksf_pki_free(&p);
}

static void test_pem_custom_names(void **state)
{
	ksf_pki p;
	ks_material m;
	ks_fileset fs;
	ks_options o = {
		.pem_cert_name = "certs/server.pem",
		.pem_key_name = "private/server.key",
		.pem_ca_name = "ca-bundle.pem",
	};
	sigil_err err = {0};

	(void)state;
	ksf_pki_new(KSF_EC, &p);
	m = ksf_material(&p);
	render_ok(KS_FORMAT_PEM, &m, &o, &fs);
	assert_int_equal(fs.n, 3);
	assert_non_null(ksf_find(&fs, "certs/server.pem"));
	assert_true(ksf_find(&fs, "private/server.key")->secret);
	assert_non_null(ksf_find(&fs, "ca-bundle.pem"));
	ks_fileset_free(&fs);

	/* Escaping names and clashing names are refused; nothing is left. */
	o.pem_key_name = "../server.key";
	assert_int_equal(ks_render(KS_FORMAT_PEM, &m, &o, &fs, &err), SIGIL_E_INVALID);
	assert_int_equal(fs.n, 0);
	assert_non_null(strstr(err.msg, "../server.key"));
	o.pem_key_name = "/etc/server.key";
	assert_int_equal(ks_render(KS_FORMAT_PEM, &m, &o, &fs, &err), SIGIL_E_INVALID);
	assert_int_equal(fs.n, 0);
	o.pem_key_name = "ca-bundle.pem";
	assert_int_equal(ks_render(KS_FORMAT_PEM, &m, &o, &fs, &err), SIGIL_E_INVALID);
	assert_int_equal(fs.n, 0);
	assert_non_null(strstr(err.msg, "used twice"));
	ksf_pki_free(&p);
}

/* provision-parts=public: only the trust bundle. */
static void test_pem_public_only(void **state)
{
	ksf_pki p;
	ks_material m;
	ks_fileset fs;
	STACK_OF(X509) *certs;

	(void)state;
	ksf_pki_new(KSF_EC, &p);
	m = ksf_material(&p);
	m.key = NULL;
	m.leaf = NULL;
	render_ok(KS_FORMAT_PEM, &m, NULL, &fs);
	assert_int_equal(fs.n, 1);
	assert_string_equal(fs.files[0].name, "ca.crt");
	assert_false(fs.files[0].secret);
	certs = read_certs(&fs.files[0]);
	assert_int_equal(sk_X509_num(certs), 2);
	sk_X509_pop_free(certs, X509_free);
	ks_fileset_free(&fs);
	ksf_pki_free(&p);
}

static void test_pem_bad_material(void **state)
{
	ksf_pki p;
	ks_material m;
	ks_fileset fs;
	sigil_err err = {0};
	STACK_OF(X509) *empty = sk_X509_new_null();

	(void)state;
	ksf_pki_new(KSF_EC, &p);
	m = ksf_material(&p);
	m.trust = NULL;
	assert_int_equal(ks_render(KS_FORMAT_PEM, &m, NULL, &fs, &err), SIGIL_E_INVALID);
	m.trust = empty;
	assert_int_equal(ks_render(KS_FORMAT_PEM, &m, NULL, &fs, &err), SIGIL_E_INVALID);
	m = ksf_material(&p);
	m.leaf = NULL;
	assert_int_equal(ks_render(KS_FORMAT_PEM, &m, NULL, &fs, &err), SIGIL_E_INVALID);
	assert_int_equal(fs.n, 0);
	/* Direct calls check the same. */
	assert_int_equal(ks_pem_render(&m, NULL, &fs, &err), SIGIL_E_INVALID);
	assert_int_equal(ks_pem_render(NULL, NULL, &fs, &err), SIGIL_E_INVALID);
	sk_X509_free(empty);
	ksf_pki_free(&p);
}

static void test_format_names(void **state)
{
	ks_format f;

	(void)state;
	assert_int_equal(ks_format_parse("tls-pem", &f), 0);
	assert_int_equal(f, KS_FORMAT_PEM);
	assert_string_equal(ks_format_name(f), "tls-pem");
	assert_int_equal(ks_format_parse("tls-pkcs12", &f), 0);
	assert_int_equal(f, KS_FORMAT_PKCS12);
	assert_int_equal(ks_format_parse("tls-jks", &f), 0);
	assert_int_equal(f, KS_FORMAT_JKS);
	assert_int_equal(ks_format_parse("pem", &f), SIGIL_E_INVALID);
	assert_int_equal(ks_format_parse(NULL, &f), SIGIL_E_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pem_roundtrip_rsa),
		cmocka_unit_test(test_pem_roundtrip_ec),
		cmocka_unit_test(test_pem_roundtrip_ed25519),
		cmocka_unit_test(test_pem_drops_root_from_chain),
		cmocka_unit_test(test_pem_custom_names),
		cmocka_unit_test(test_pem_public_only),
		cmocka_unit_test(test_pem_bad_material),
		cmocka_unit_test(test_format_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
