#include "ca_fixtures.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca/issue.h"
#include "util/fs.h"
#include "util/mem.h"

static void fx_check(int r, const sigil_err *err, const char *what)
{
	if (r < 0) {
		print_error("%s: %s\n", what, err->msg);
		fail();
	}
}

X509 *fx_make_cert(const fx_cert_opts *o)
{
	sigil_err err = { 0 };
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509 *issuer = o->issuer;
	EVP_PKEY *signer = o->issuer ? o->issuer_key : o->key;

	assert_non_null(x);
	assert_non_null(name);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	fx_check(ca_cert_set_random_serial(x, &err), &err, "serial");
	assert_int_equal(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
						    (const unsigned char *)o->cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_set_subject_name(x, name), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
	X509_NAME_free(name);
	fx_check(ca_cert_set_validity(x, o->not_before, o->not_after, &err), &err, "validity");
	assert_int_equal(X509_set_pubkey(x, o->key), 1);
	if (o->bc != FX_BC_NONE)
		fx_check(ca_cert_add_basic_constraints(x, o->bc == FX_BC_CA, &err), &err, "bc");
	if (o->ku)
		fx_check(ca_cert_add_key_usage(x, o->ku, &err), &err, "ku");
	fx_check(ca_cert_add_key_ids(x, issuer, &err), &err, "key ids");
	fx_check(ca_cert_sign(x, signer, &err), &err, "sign");
	return x;
}

ca_authority *fx_make_ca(sigil_keyalg alg, time_t now, int64_t lifetime_secs)
{
	sigil_err err = { 0 };
	ca_authority *ca = NULL;
	ca_create_opts opts = {
		.alg = alg,
		.common_name = "fixture CA",
		.lifetime_secs = lifetime_secs,
		.now = now,
	};

	fx_check(ca_authority_create(&opts, &ca, &err), &err, "ca_authority_create");
	return ca;
}

EVP_PKEY *fx_make_key(sigil_keyalg alg)
{
	sigil_err err = { 0 };
	EVP_PKEY *key = NULL;

	fx_check(ca_key_generate(alg, &key, &err), &err, "ca_key_generate");
	return key;
}

uint8_t *fx_make_csr(EVP_PKEY *key, const char *cn, size_t *len)
{
	sigil_err err = { 0 };
	uint8_t *der = NULL;

	fx_check(ca_csr_create(key, cn, &der, len, &err), &err, "ca_csr_create");
	return der;
}

static char *bio_to_str(BIO *bio)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	char *s;

	assert_true(n >= 0);
	s = sigil_strndup(data ? data : "", (size_t)n);
	assert_non_null(s);
	BIO_free(bio);
	return s;
}

char *fx_certs_pem(X509 *const *xs, size_t n)
{
	BIO *bio = BIO_new(BIO_s_mem());

	assert_non_null(bio);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(PEM_write_bio_X509(bio, xs[i]), 1);
	return bio_to_str(bio);
}

char *fx_cert_pem(X509 *x)
{
	return fx_certs_pem(&x, 1);
}

char *fx_key_pem(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());

	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
	return bio_to_str(bio);
}

char *fx_key_pem_encrypted(EVP_PKEY *key, const char *passphrase)
{
	BIO *bio = BIO_new(BIO_s_mem());

	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_256_cbc(), passphrase,
						       (int)strlen(passphrase), NULL, NULL),
			 1);
	return bio_to_str(bio);
}

char *fx_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir;
	size_t n;

	if (!base || !*base)
		base = "/tmp";
	n = strlen(base) + sizeof("/sigil-ca-test-XXXXXX");
	dir = malloc(n);
	assert_non_null(dir);
	snprintf(dir, n, "%s/sigil-ca-test-XXXXXX", base);
	assert_non_null(mkdtemp(dir));
	return dir;
}

void fx_rmdir(char *dir)
{
	sigil_err err = { 0 };

	if (!dir)
		return;
	if (sigil_fs_remove_tree(dir, &err) < 0)
		print_error("cannot remove %s: %s\n", dir, err.msg);
	free(dir);
}

char *fx_write(const char *dir, const char *name, const void *data, size_t len)
{
	sigil_err err = { 0 };
	char *path = sigil_path_join(dir, name);

	assert_non_null(path);
	fx_check(sigil_fs_write_atomic(path, data, len, 0600, &err), &err, "write");
	return path;
}
