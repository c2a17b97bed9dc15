/* tls-pkcs12 output: both profiles parse back with OpenSSL, carry the right
 * algorithms (checked with `openssl pkcs12 -info`), and Java's keytool reads
 * the keystore as a PrivateKeyEntry and the truststore as trustedCertEntry
 * (with and without a password). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs12.h>

#include "keystore/keystore.h"
#include "tests/helpers/ks_fixtures.h"
#include "util/fs.h"

#define ORACLE_TRUSTED_KEY_USAGE "2.16.840.1.113894.746875.1.1"

static ksf_pki pki[3]; /* RSA, EC, Ed25519: RSA keys are slow, make them once */

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

	if (ks_render(KS_FORMAT_PKCS12, m, o, fs, &err) != 0)
		fail_msg("ks_render: %s", err.msg);
}

static PKCS12 *load(const ks_file *f)
{
	const unsigned char *p = f->data;
	PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)f->len);

	assert_non_null(p12);
	assert_ptr_equal(p, f->data + f->len);
	return p12;
}

/* All safe bags of a file, decrypting encrypted safes with pass. */
static STACK_OF(PKCS12_SAFEBAG) *all_bags(PKCS12 *p12, const char *pass)
{
	STACK_OF(PKCS7) *safes = PKCS12_unpack_authsafes(p12);
	STACK_OF(PKCS12_SAFEBAG) *all = sk_PKCS12_SAFEBAG_new_null();

	assert_non_null(safes);
	for (int i = 0; i < sk_PKCS7_num(safes); i++) {
		PKCS7 *p7 = sk_PKCS7_value(safes, i);
		STACK_OF(PKCS12_SAFEBAG) *bags = NULL;

		switch (OBJ_obj2nid(p7->type)) {
		case NID_pkcs7_data: bags = PKCS12_unpack_p7data(p7); break;
		case NID_pkcs7_encrypted: bags = PKCS12_unpack_p7encdata(p7, pass, -1); break;
		default: fail_msg("unexpected safe type"); break;
		}
		assert_non_null(bags);
		while (sk_PKCS12_SAFEBAG_num(bags) > 0)
			sk_PKCS12_SAFEBAG_push(all, sk_PKCS12_SAFEBAG_shift(bags));
		sk_PKCS12_SAFEBAG_free(bags);
	}
	sk_PKCS7_pop_free(safes, PKCS7_free);
	return all;
}

static void free_bags(STACK_OF(PKCS12_SAFEBAG) *bags)
{
	sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
}

static const ASN1_OCTET_STRING *local_key_id(const PKCS12_SAFEBAG *bag)
{
	const ASN1_TYPE *t = PKCS12_SAFEBAG_get0_attr(bag, NID_localKeyID);

	assert_non_null(t);
	assert_int_equal(t->type, V_ASN1_OCTET_STRING);
	return t->value.octet_string;
}

static void assert_friendly_name(const PKCS12_SAFEBAG *bag, const char *want)
{
	char *name = PKCS12_get_friendlyname((PKCS12_SAFEBAG *)bag);

	assert_non_null(name);
	assert_string_equal(name, want);
	OPENSSL_free(name);
}

/* Counts Java trust attributes on bag, checking that each is exactly
 * SET { anyExtendedKeyUsage }. */
static int trust_attrs(const PKCS12_SAFEBAG *bag)
{
	const STACK_OF(X509_ATTRIBUTE) *attrs = PKCS12_SAFEBAG_get0_attrs(bag);
	int found = 0;

	for (int i = 0; i < sk_X509_ATTRIBUTE_num(attrs); i++) {
		X509_ATTRIBUTE *a = sk_X509_ATTRIBUTE_value(attrs, i);
		char oid[64];
		ASN1_TYPE *v;

		OBJ_obj2txt(oid, sizeof(oid), X509_ATTRIBUTE_get0_object(a), 1);
		if (strcmp(oid, ORACLE_TRUSTED_KEY_USAGE) != 0)
			continue;
		found++;
		assert_int_equal(X509_ATTRIBUTE_count(a), 1);
		v = X509_ATTRIBUTE_get0_type(a, 0);
		assert_int_equal(v->type, V_ASN1_OBJECT);
		assert_int_equal(OBJ_obj2nid(v->value.object), NID_anyExtendedKeyUsage);
	}
	return found;
}

static void assert_trusted(const PKCS12_SAFEBAG *bag)
{
	assert_int_equal(trust_attrs(bag), 1);
}

static void assert_mac(PKCS12 *p12, int md_nid)
{
	const X509_ALGOR *macalg;
	const ASN1_OBJECT *obj;
	const ASN1_INTEGER *iter;

	PKCS12_get0_mac(NULL, &macalg, NULL, &iter, p12);
	assert_non_null(macalg);
	X509_ALGOR_get0(&obj, NULL, NULL, macalg);
	assert_int_equal(OBJ_obj2nid(obj), md_nid);
	assert_int_equal(ASN1_INTEGER_get(iter), 10000);
}

static void check_keystore(const ks_file *f, const ksf_pki *p, const char *pass, bool legacy,
			   const char *alias)
{
	PKCS12 *p12 = load(f);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *ca = NULL;
	STACK_OF(PKCS12_SAFEBAG) *bags;
	const PKCS12_SAFEBAG *key_bag = NULL, *leaf_bag = NULL;
	int n_certs = 0;

	assert_true(f->secret);
	assert_mac(p12, legacy ? NID_sha1 : NID_sha256);
	assert_int_equal(PKCS12_parse(p12, pass, &key, &cert, &ca), 1);
	assert_true(ksf_key_eq(key, p->leaf_key));
	assert_true(ksf_key_der_eq(key, p->leaf_key));
	assert_int_equal(X509_cmp(cert, p->leaf), 0);
	/* The chain is the intermediate only. */
	assert_int_equal(sk_X509_num(ca), 1);
	assert_int_equal(X509_cmp(sk_X509_value(ca, 0), p->inter), 0);
	EVP_PKEY_free(key);
	X509_free(cert);
	sk_X509_pop_free(ca, X509_free);

	/* Bag by bag: the key and the leaf share alias and localKeyID. */
	bags = all_bags(p12, pass);
	for (int i = 0; i < sk_PKCS12_SAFEBAG_num(bags); i++) {
		const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, i);

		switch (PKCS12_SAFEBAG_get_nid(bag)) {
		case NID_pkcs8ShroudedKeyBag: {
			const X509_ALGOR *alg;
			const ASN1_OBJECT *obj;

			key_bag = bag;
			X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg, NULL);
			X509_ALGOR_get0(&obj, NULL, NULL, alg);
			assert_int_equal(OBJ_obj2nid(obj), legacy
								   ? NID_pbe_WithSHA1And3_Key_TripleDES_CBC
								   : NID_pbes2);
			break;
		}
		case NID_certBag:
			n_certs++;
			if (PKCS12_SAFEBAG_get0_attr(bag, NID_localKeyID))
				leaf_bag = bag;
			/* Only the trust store marks certificates trusted. */
			assert_int_equal(trust_attrs(bag), 0);
			break;
		default: fail_msg("unexpected bag type"); break;
		}
	}
	assert_int_equal(n_certs, 2);
	assert_non_null(key_bag);
	assert_non_null(leaf_bag);
	assert_friendly_name(key_bag, alias);
	assert_friendly_name(leaf_bag, alias);
	assert_int_equal(ASN1_OCTET_STRING_cmp(local_key_id(key_bag), local_key_id(leaf_bag)), 0);
	free_bags(bags);

	/* A wrong password opens nothing. */
	key = NULL;
	cert = NULL;
	ca = NULL;
	assert_int_equal(PKCS12_verify_mac(p12, "wrong", -1), 0);
	assert_int_equal(PKCS12_parse(p12, "wrong", &key, &cert, &ca), 0);
	assert_null(key);
	ERR_clear_error();
	PKCS12_free(p12);
}

static void check_truststore(const ks_file *f, const ksf_pki *p, const char *pass, bool legacy)
{
	PKCS12 *p12 = load(f);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *ca = NULL;
	STACK_OF(PKCS12_SAFEBAG) *bags;

	assert_false(f->secret);
	assert_mac(p12, legacy ? NID_sha1 : NID_sha256);
	assert_int_equal(PKCS12_parse(p12, pass, &key, &cert, &ca), 1);
	assert_null(key);
	assert_null(cert);
	assert_int_equal(sk_X509_num(ca), 2);
	sk_X509_pop_free(ca, X509_free);

	bags = all_bags(p12, pass);
	assert_int_equal(sk_PKCS12_SAFEBAG_num(bags), 2);
	for (int i = 0; i < 2; i++) {
		const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, i);
		X509 *x;
		char alias[8];

		assert_int_equal(PKCS12_SAFEBAG_get_nid(bag), NID_certBag);
		assert_null(PKCS12_SAFEBAG_get0_attr(bag, NID_localKeyID));
		snprintf(alias, sizeof(alias), "ca-%d", i);
		assert_friendly_name(bag, alias);
		assert_trusted(bag);
		x = PKCS12_SAFEBAG_get1_cert(bag);
		assert_int_equal(X509_cmp(x, i == 0 ? p->root : p->other_root), 0);
		X509_free(x);
	}
	free_bags(bags);
	assert_int_equal(PKCS12_verify_mac(p12, "wrong", -1), 0);
	ERR_clear_error();
	PKCS12_free(p12);
}

static void check_roundtrip(ksf_alg alg)
{
	const ksf_pki *p = &pki[alg];
	ks_material m = ksf_material(p);

	for (int legacy = 0; legacy <= 1; legacy++) {
		ks_options o = {.password = "changeit", .pkcs12_legacy = legacy, .alias = "server"};
		ks_fileset fs;

		render_ok(&m, &o, &fs);
		assert_int_equal(fs.n, 2);
		check_keystore(ksf_find(&fs, "keystore.p12"), p, "changeit", legacy, "server");
		check_truststore(ksf_find(&fs, "truststore.p12"), p, "changeit", legacy);
		ks_fileset_free(&fs);
	}
}

static void test_p12_roundtrip_rsa(void **state)
{
	(void)state;
	check_roundtrip(KSF_RSA);
}

static void test_p12_roundtrip_ec(void **state)
{
	(void)state;
	check_roundtrip(KSF_EC);
}

static void test_p12_roundtrip_ed25519(void **state)
{
	(void)state;
	check_roundtrip(KSF_ED25519);
}

/* NULL and "" are the same empty password; OpenSSL reads both back. */
static void test_p12_empty_password(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);

	(void)state;
	for (int legacy = 0; legacy <= 1; legacy++) {
		ks_options o = {.password = legacy ? "" : NULL, .pkcs12_legacy = legacy};
		ks_fileset fs;

		render_ok(&m, &o, &fs);
		check_keystore(ksf_find(&fs, "keystore.p12"), &pki[KSF_EC], "", legacy, "1");
		check_truststore(ksf_find(&fs, "truststore.p12"), &pki[KSF_EC], "", legacy);
		ks_fileset_free(&fs);
	}
}

/* `openssl pkcs12 -info` names the algorithms of each profile. */
static void test_p12_openssl_info(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	char *dir = ksf_mkdtemp();

	(void)state;
	for (int legacy = 0; legacy <= 1; legacy++) {
		ks_options o = {.password = "s3cret pw", .pkcs12_legacy = legacy};
		ks_fileset fs;
		const char *files[] = {"keystore.p12", "truststore.p12"};

		render_ok(&m, &o, &fs);
		for (int i = 0; i < 2; i++) {
			const ks_file *f = ksf_find(&fs, files[i]);
			char *path = ksf_write(dir, files[i], f->data, f->len);
			char cmd[1024], *out = NULL;
			int rc;

			/* OpenSSL 3.0 keeps 3DES and the PKCS#12 KDF in the
			 * default provider: the legacy profile needs no
			 * -legacy flag. */
			snprintf(cmd, sizeof(cmd),
				 "openssl pkcs12 -info -nokeys -in %s -passin 'pass:s3cret pw'",
				 path);
			rc = ksf_run(cmd, &out);
			if (rc != 0)
				fail_msg("%s: %s", cmd, out);
			if (legacy) {
				assert_non_null(strstr(out, "MAC: sha1, Iteration 10000"));
				assert_non_null(strstr(out, "PKCS7 Encrypted data: "
							    "pbeWithSHA1And3-KeyTripleDES-CBC"));
				assert_null(strstr(out, "AES"));
			} else {
				assert_non_null(strstr(out, "MAC: sha256, Iteration 10000"));
				assert_non_null(strstr(out, "PKCS7 Encrypted data: PBES2, PBKDF2, "
							    "AES-256-CBC, Iteration 10000, PRF "
							    "hmacWithSHA256"));
				assert_null(strstr(out, "TripleDES"));
			}
			if (i == 0) {
				assert_non_null(strstr(out, legacy ? "Shrouded Keybag: "
								     "pbeWithSHA1And3-KeyTripleDES-CBC"
								   : "Shrouded Keybag: PBES2, PBKDF2, "
								     "AES-256-CBC"));
				assert_non_null(strstr(out, "friendlyName: 1"));
			} else {
				assert_int_equal(ksf_count(out, ORACLE_TRUSTED_KEY_USAGE), 2);
				assert_non_null(strstr(out, "friendlyName: ca-1"));
			}
			free(out);
			/* The wrong password fails in the tool too. */
			snprintf(cmd, sizeof(cmd),
				 "openssl pkcs12 -info -nokeys -in %s -passin pass:wrong", path);
			assert_int_not_equal(ksf_run(cmd, &out), 0);
			free(out);
			free(path);
		}
		ks_fileset_free(&fs);
	}
	ksf_rmdir(dir);
}

/* Java cannot open a MACed PKCS#12 with a non-ASCII password, so none is
 * written; lengths are bounded. */
static void test_p12_password_rules(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	ks_options o = {0};
	ks_fileset fs;
	sigil_err err = {0};
	char longpw[KS_MAX_PASSWORD_LEN + 2];

	(void)state;
	o.password = "p\xc3\xa4ss";
	assert_int_equal(ks_render(KS_FORMAT_PKCS12, &m, &o, &fs, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "ASCII"));
	assert_int_equal(fs.n, 0);
	o.password = "tab\there";
	assert_int_equal(ks_render(KS_FORMAT_PKCS12, &m, &o, &fs, &err), SIGIL_E_INVALID);
	/* Public-only output is refused too: the truststore has a MAC. */
	m.key = NULL;
	m.leaf = NULL;
	o.password = "\xff";
	assert_int_equal(ks_render(KS_FORMAT_PKCS12, &m, &o, &fs, &err), SIGIL_E_INVALID);
	m = ksf_material(&pki[KSF_EC]);

	memset(longpw, 'x', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	o.password = longpw;
	assert_int_equal(ks_render(KS_FORMAT_PKCS12, &m, &o, &fs, &err), SIGIL_E_LIMIT);
	assert_int_equal(ks_pkcs12_render(&m, &o, &fs, &err), SIGIL_E_LIMIT);
	longpw[KS_MAX_PASSWORD_LEN] = '\0';
	render_ok(&m, &o, &fs);
	check_keystore(ksf_find(&fs, "keystore.p12"), &pki[KSF_EC], longpw, false, "1");
	ks_fileset_free(&fs);

	/* Aliases: UTF-8 (a BMPString friendlyName), bounded. */
	o.password = "changeit";
	o.alias = "s\xc3\xa9rveur";
	render_ok(&m, &o, &fs);
	check_keystore(ksf_find(&fs, "keystore.p12"), &pki[KSF_EC], "changeit", false,
		       "s\xc3\xa9rveur");
	ks_fileset_free(&fs);
	o.alias = "bad\xc3";
	assert_int_equal(ks_render(KS_FORMAT_PKCS12, &m, &o, &fs, &err), SIGIL_E_INVALID);
}

static void test_p12_public_only(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	ks_options o = {.password = "changeit", .truststore_name = "trust/ca.p12"};
	ks_fileset fs;

	(void)state;
	m.key = NULL;
	m.leaf = NULL;
	render_ok(&m, &o, &fs);
	assert_int_equal(fs.n, 1);
	assert_string_equal(fs.files[0].name, "trust/ca.p12");
	check_truststore(&fs.files[0], &pki[KSF_EC], "changeit", false);
	ks_fileset_free(&fs);
}

static void test_p12_names_and_chain(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	ks_options o = {.password = "changeit", .keystore_name = "ks/server.p12"};
	STACK_OF(X509) *chain = sk_X509_new_null();
	ks_fileset fs;

	(void)state;
	/* A root at the end of the chain is not written. */
	assert_true(sk_X509_push(chain, pki[KSF_EC].inter) > 0);
	assert_true(sk_X509_push(chain, pki[KSF_EC].root) > 0);
	m.chain = chain;
	render_ok(&m, &o, &fs);
	assert_int_equal(fs.n, 2);
	check_keystore(ksf_find(&fs, "ks/server.p12"), &pki[KSF_EC], "changeit", false, "1");
	assert_non_null(ksf_find(&fs, "truststore.p12"));
	ks_fileset_free(&fs);
	sk_X509_free(chain);
}

static void test_p12_bad_material(void **state)
{
	ks_material m = ksf_material(&pki[KSF_EC]);
	ks_fileset fs;
	sigil_err err = {0};

	(void)state;
	/* A key that is not the certificate's. */
	m.key = pki[KSF_EC].inter_key;
	assert_int_equal(ks_render(KS_FORMAT_PKCS12, &m, NULL, &fs, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "does not match"));
	assert_int_equal(fs.n, 0);
	assert_int_equal(ks_render(KS_FORMAT_PKCS12, &m, NULL, &fs, NULL), SIGIL_E_INVALID);
	m = ksf_material(&pki[KSF_EC]);
	m.trust = NULL;
	assert_int_equal(ks_render(KS_FORMAT_PKCS12, &m, NULL, &fs, &err), SIGIL_E_INVALID);
	assert_int_equal(ks_pkcs12_render(&m, NULL, &fs, &err), SIGIL_E_INVALID);
	m = ksf_material(&pki[KSF_EC]);
	m.key = NULL;
	assert_int_equal(ks_pkcs12_render(&m, NULL, &fs, &err), SIGIL_E_INVALID);
}

/* Java's own reader.  Six keytool runs (each ~0.5 s). */
static void test_p12_keytool(void **state)
{
	char *dir, *ks, *ts, *out = NULL, args[2048];
	ks_fileset fs;
	int rc;

	(void)state;
	if (!ksf_have("keytool"))
		skip();
	dir = ksf_mkdtemp();

	/* Modern profile, RSA, a password. */
	{
		ks_material m = ksf_material(&pki[KSF_RSA]);
		ks_options o = {.password = "changeit", .alias = "server"};

		render_ok(&m, &o, &fs);
		ks = ksf_write(dir, "modern-ks.p12", ksf_find(&fs, "keystore.p12")->data,
			       ksf_find(&fs, "keystore.p12")->len);
		ts = ksf_write(dir, "modern-ts.p12", ksf_find(&fs, "truststore.p12")->data,
			       ksf_find(&fs, "truststore.p12")->len);
		ks_fileset_free(&fs);

		snprintf(args, sizeof(args),
			 "-list -v -storetype PKCS12 -keystore %s -storepass:env KSF_PW", ks);
		rc = ksf_keytool(args, "changeit", &out);
		if (rc != 0)
			fail_msg("keytool %s: %s", args, out);
		assert_non_null(strstr(out, "Your keystore contains 1 entry"));
		assert_non_null(strstr(out, "Alias name: server"));
		assert_non_null(strstr(out, "Entry type: PrivateKeyEntry"));
		assert_non_null(strstr(out, "Certificate chain length: 2"));
		assert_non_null(strstr(out, "Owner: CN=leaf.example"));
		assert_non_null(strstr(out, "Owner: CN=sigil test intermediate"));
		free(out);

		snprintf(args, sizeof(args),
			 "-list -storetype PKCS12 -keystore %s -storepass:env KSF_PW", ts);
		rc = ksf_keytool(args, "changeit", &out);
		if (rc != 0)
			fail_msg("keytool %s: %s", args, out);
		assert_int_equal(ksf_count(out, "trustedCertEntry"), 2);
		assert_non_null(strstr(out, "ca-0,"));
		assert_non_null(strstr(out, "ca-1,"));
		free(out);

		snprintf(args, sizeof(args),
			 "-list -storetype PKCS12 -keystore %s -storepass:env KSF_PW", ks);
		rc = ksf_keytool(args, "wrong-password", &out);
		assert_int_not_equal(rc, 0);
		assert_non_null(strstr(out, "password was incorrect"));
		free(out);
		free(ks);
		free(ts);
	}

	/* Legacy profile, EC, empty password. */
	{
		ks_material m = ksf_material(&pki[KSF_EC]);
		ks_options o = {.password = "", .pkcs12_legacy = true};

		render_ok(&m, &o, &fs);
		ks = ksf_write(dir, "legacy-ks.p12", ksf_find(&fs, "keystore.p12")->data,
			       ksf_find(&fs, "keystore.p12")->len);
		ts = ksf_write(dir, "legacy-ts.p12", ksf_find(&fs, "truststore.p12")->data,
			       ksf_find(&fs, "truststore.p12")->len);
		ks_fileset_free(&fs);

		snprintf(args, sizeof(args),
			 "-list -v -storetype PKCS12 -keystore %s -storepass:env KSF_PW", ks);
		rc = ksf_keytool(args, "", &out);
		if (rc != 0)
			fail_msg("keytool %s: %s", args, out);
		assert_non_null(strstr(out, "Alias name: 1"));
		assert_non_null(strstr(out, "Entry type: PrivateKeyEntry"));
		assert_non_null(strstr(out, "Certificate chain length: 2"));
		free(out);

		snprintf(args, sizeof(args),
			 "-list -storetype PKCS12 -keystore %s -storepass:env KSF_PW", ts);
		rc = ksf_keytool(args, "", &out);
		if (rc != 0)
			fail_msg("keytool %s: %s", args, out);
		assert_int_equal(ksf_count(out, "trustedCertEntry"), 2);
		free(out);
		free(ks);
		free(ts);
	}

	/* Modern profile, Ed25519, empty password: Java must decrypt the
	 * PBES2 key, which -list does not do.  keytool copies it into a JKS,
	 * which our own reader opens and compares with the original key. */
	{
		ks_material m = ksf_material(&pki[KSF_ED25519]);
		ks_options o = {.password = NULL};
		char *jks;
		unsigned char *data;
		size_t len;
		ks_jks j;
		sigil_err err = {0};

		render_ok(&m, &o, &fs);
		ks = ksf_write(dir, "ed-ks.p12", ksf_find(&fs, "keystore.p12")->data,
			       ksf_find(&fs, "keystore.p12")->len);
		ks_fileset_free(&fs);
		jks = sigil_path_join(dir, "ed-copy.jks");
		snprintf(args, sizeof(args),
			 "-importkeystore -noprompt -srckeystore %s -srcstoretype PKCS12 "
			 "-srcstorepass:env KSF_PW -srcalias 1 -destalias copied "
			 "-destkeystore %s -deststoretype JKS -deststorepass changeit "
			 "-destkeypass changeit",
			 ks, jks);
		rc = ksf_keytool(args, "", &out);
		if (rc != 0)
			fail_msg("keytool %s: %s", args, out);
		free(out);
		data = ksf_read(jks, &len);
		if (ks_jks_parse(data, len, "changeit", &j, &err) != 0)
			fail_msg("ks_jks_parse: %s", err.msg);
		assert_int_equal(j.n, 1);
		assert_string_equal(j.entries[0].alias, "copied");
		assert_true(j.entries[0].is_key);
		assert_int_equal(j.entries[0].n_certs, 2);
		assert_int_equal(X509_cmp(j.entries[0].cert, pki[KSF_ED25519].leaf), 0);
		assert_true(ksf_key_eq(j.entries[0].key, pki[KSF_ED25519].leaf_key));
		ks_jks_free(&j);
		free(data);
		free(jks);
		free(ks);
	}
	ksf_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_p12_roundtrip_rsa),
		cmocka_unit_test(test_p12_roundtrip_ec),
		cmocka_unit_test(test_p12_roundtrip_ed25519),
		cmocka_unit_test(test_p12_empty_password),
		cmocka_unit_test(test_p12_openssl_info),
		cmocka_unit_test(test_p12_password_rules),
		cmocka_unit_test(test_p12_public_only),
		cmocka_unit_test(test_p12_names_and_chain),
		cmocka_unit_test(test_p12_bad_material),
		cmocka_unit_test(test_p12_keytool),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
