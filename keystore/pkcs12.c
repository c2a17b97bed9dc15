/* tls-pkcs12: keystore.p12 (private key + leaf + intermediates under one
 * alias) and truststore.p12 (certificate bags Java lists as
 * trustedCertEntry).
 *
 * Built bag by bag with the PKCS12_* primitives rather than PKCS12_create,
 * which cannot attach Java's trusted-key-usage attribute. */
#include "keystore/keystore.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "util/mem.h"

/* Oracle's attribute that marks a certificate bag as a trusted certificate
 * entry in Java's PKCS12KeyStore; its value is a SET of key purposes, and
 * Java itself writes anyExtendedKeyUsage. */
#define P12_ORACLE_TRUSTED_KEY_USAGE "2.16.840.1.113894.746875.1.1"

/* Java 17's PKCS12 default (keystore.pkcs12.*IterationCount). */
#define P12_ITER 10000
/* Largest DER we hand out: a key and KS_MAX_CHAIN/KS_MAX_TRUST certs. */
#define P12_MAX_OUT (4u * 1024 * 1024)

SIGIL_DEFINE_CLEANUP(PKCS12, PKCS12_free)

static void p12_bags_freep(STACK_OF(PKCS12_SAFEBAG) **p)
{
	sk_PKCS12_SAFEBAG_pop_free(*p, PKCS12_SAFEBAG_free);
}

static void p12_safes_freep(STACK_OF(PKCS7) **p)
{
	sk_PKCS7_pop_free(*p, PKCS7_free);
}

typedef struct p12_profile {
	int key_nid;  /* shrouded key bag encryption */
	int cert_nid; /* encrypted certificate safe */
	const EVP_MD *(*mac_md)(void);
	const char *name;
} p12_profile;

/* A cipher NID selects PBES2 (PBKDF2, default PRF hmacWithSHA256 in
 * OpenSSL 3) with that cipher; a PBE NID selects the PKCS#12 v1 scheme. */
static const p12_profile p12_modern = {
	NID_aes_256_cbc, NID_aes_256_cbc, EVP_sha256, "modern (PBES2/AES-256-CBC, SHA-256 MAC)"};
/* 3DES for certificates too: RC2-40 lives in OpenSSL 3's legacy provider
 * and adds nothing for the old Java runtimes this profile is for. */
static const p12_profile p12_legacy = {NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
				       NID_pbe_WithSHA1And3_Key_TripleDES_CBC, EVP_sha1,
				       "legacy (PBE-SHA1-3DES, SHA-1 MAC)"};

static const char *p12_name(const char *v, const char *def)
{
	return v && *v ? v : def;
}

/* RFC 3629 UTF-8, for the alias (a BMPString friendlyName): OpenSSL's
 * UTF-8 to BMPString conversion silently falls back to Latin-1 on malformed
 * input. */
static bool p12_utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		uint32_t cp;
		int n;

		if (p[0] < 0x80) {
			p++;
			continue;
		} else if ((p[0] & 0xe0) == 0xc0) {
			cp = p[0] & 0x1f;
			n = 1;
		} else if ((p[0] & 0xf0) == 0xe0) {
			cp = p[0] & 0x0f;
			n = 2;
		} else if ((p[0] & 0xf8) == 0xf0) {
			cp = p[0] & 0x07;
			n = 3;
		} else {
			return false;
		}
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

/* Java derives the PKCS#12 MAC key through its "PBE" SecretKeyFactory,
 * which throws "Password is not ASCII" for any char outside U+0020..U+007E
 * (measured with Java 17 keytool: a MACed file with "p\u00e4" cannot be
 * opened, and keytool cannot write one either).  A store Java cannot open is
 * useless here, so such passwords are refused up front. */
static bool p12_password_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return false;
	return true;
}

/* DER of a finished PKCS12 into a malloc'ed buffer the file set owns. */
static int p12_encode(PKCS12 *p12, uint8_t **ret, size_t *ret_len, sigil_err *err)
{
	int n = i2d_PKCS12(p12, NULL);
	uint8_t *buf, *p;

	if (n <= 0)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "encoding PKCS#12");
	if ((unsigned)n > P12_MAX_OUT)
		return sigil_err_set(err, SIGIL_E_LIMIT, "PKCS#12 larger than %u bytes",
				     P12_MAX_OUT);
	buf = malloc((size_t)n);
	if (!buf)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	p = buf;
	if (i2d_PKCS12(p12, &p) != n) {
		sigil_freezero(buf, (size_t)n);
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "encoding PKCS#12");
	}
	*ret = buf;
	*ret_len = (size_t)n;
	return 0;
}

/* Wraps bag lists into a MACed PKCS12.  pass NULL is the empty password. */
static int p12_finish(STACK_OF(PKCS7) *safes, const p12_profile *prof, const char *pass,
		      uint8_t **ret, size_t *ret_len, sigil_err *err)
{
	_cleanup_(PKCS12_freep) PKCS12 *p12 = PKCS12_add_safes_ex(safes, 0, NULL, NULL);

	if (!p12)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "assembling PKCS#12");
	/* passlen 0 with "" gives the BMPString U+0000 (two zero bytes), the
	 * encoding Java's PKCS12KeyStore uses for an empty char[] too. */
	if (!PKCS12_set_mac(p12, pass, (int)strlen(pass), NULL, 0, P12_ITER, prof->mac_md()))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "computing the PKCS#12 MAC");
	return p12_encode(p12, ret, ret_len, err);
}

static int p12_add_safe(STACK_OF(PKCS7) **safes, STACK_OF(PKCS12_SAFEBAG) *bags, int nid,
			const char *pass, sigil_err *err)
{
	if (!PKCS12_add_safe_ex(safes, bags, nid, P12_ITER, pass, NULL, NULL))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "encrypting PKCS#12 contents");
	return 0;
}

static int p12_render_keystore(const ks_material *m, const char *alias, const p12_profile *prof,
			       const char *pass, uint8_t **ret, size_t *ret_len, sigil_err *err)
{
	_cleanup_(p12_bags_freep) STACK_OF(PKCS12_SAFEBAG) *cert_bags = NULL;
	_cleanup_(p12_bags_freep) STACK_OF(PKCS12_SAFEBAG) *key_bags = NULL;
	_cleanup_(p12_safes_freep) STACK_OF(PKCS7) *safes = NULL;
	unsigned char keyid[EVP_MAX_MD_SIZE];
	unsigned int keyid_len = 0;
	PKCS12_SAFEBAG *bag;
	int n_chain = m->chain ? sk_X509_num(m->chain) : 0;
	int r;

	if (n_chain > KS_MAX_CHAIN)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "certificate chain has more than %d certificates", KS_MAX_CHAIN);
	if (!X509_check_private_key(m->leaf, m->key))
		return sigil_err_ssl(err, SIGIL_E_INVALID,
				     "the private key does not match the certificate");
	/* localKeyID pairs the key with its certificate (RFC 7292 4.2); the
	 * certificate's SHA-1 fingerprint, as OpenSSL's own writer uses. */
	if (!X509_digest(m->leaf, EVP_sha1(), keyid, &keyid_len))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "hashing the certificate");

	bag = PKCS12_add_cert(&cert_bags, m->leaf);
	if (!bag || !PKCS12_add_friendlyname_utf8(bag, alias, -1) ||
	    !PKCS12_add_localkeyid(bag, keyid, (int)keyid_len))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "adding the certificate to PKCS#12");
	for (int i = 0; i < n_chain; i++) {
		X509 *x = sk_X509_value(m->chain, i);

		/* The chain stops below the root, as in tls.crt. */
		if (X509_self_signed(x, 1) == 1)
			continue;
		if (!PKCS12_add_cert(&cert_bags, x))
			return sigil_err_ssl(err, SIGIL_E_CRYPTO,
					     "adding a chain certificate to PKCS#12");
	}

	bag = PKCS12_add_key_ex(&key_bags, m->key, 0, P12_ITER, prof->key_nid, pass, NULL, NULL);
	if (!bag || !PKCS12_add_friendlyname_utf8(bag, alias, -1) ||
	    !PKCS12_add_localkeyid(bag, keyid, (int)keyid_len))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "adding the private key to PKCS#12");

	/* Certificates in an encrypted safe, the shrouded key in a plain one:
	 * the layout both OpenSSL and Java write. */
	r = p12_add_safe(&safes, cert_bags, prof->cert_nid, pass, err);
	if (r < 0)
		return r;
	r = p12_add_safe(&safes, key_bags, -1, pass, err);
	if (r < 0)
		return r;
	return p12_finish(safes, prof, pass, ret, ret_len, err);
}

static int p12_render_truststore(const ks_material *m, const p12_profile *prof, const char *pass,
				 uint8_t **ret, size_t *ret_len, sigil_err *err)
{
	_cleanup_(p12_bags_freep) STACK_OF(PKCS12_SAFEBAG) *bags = NULL;
	_cleanup_(p12_safes_freep) STACK_OF(PKCS7) *safes = NULL;
	/* A built-in object: static, never freed. */
	const ASN1_OBJECT *any_eku = OBJ_nid2obj(NID_anyExtendedKeyUsage);
	int r;

	if (!any_eku)
		return sigil_err_ssl(err, SIGIL_E_INTERNAL, "no OID for anyExtendedKeyUsage");
	bags = sk_PKCS12_SAFEBAG_new_null();
	if (!bags)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (int i = 0; i < sk_X509_num(m->trust); i++) {
		PKCS12_SAFEBAG *bag = PKCS12_SAFEBAG_create_cert(sk_X509_value(m->trust, i));
		char alias[32];

		if (!bag)
			return sigil_err_ssl(err, SIGIL_E_CRYPTO, "adding a CA certificate to PKCS#12");
		if (!sk_PKCS12_SAFEBAG_push(bags, bag)) {
			PKCS12_SAFEBAG_free(bag);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
		/* The same aliases as truststore.jks. */
		snprintf(alias, sizeof(alias), "ca-%d", i);
		/* len -1 with a non-string type: the value is the ASN1_OBJECT
		 * itself, so the attribute is SET { OBJECT IDENTIFIER }. */
		if (!PKCS12_add_friendlyname_utf8(bag, alias, -1) ||
		    !PKCS12_add1_attr_by_txt(bag, P12_ORACLE_TRUSTED_KEY_USAGE, V_ASN1_OBJECT,
					     (const unsigned char *)any_eku, -1))
			return sigil_err_ssl(err, SIGIL_E_CRYPTO,
					     "marking a CA certificate as trusted");
	}
	r = p12_add_safe(&safes, bags, prof->cert_nid, pass, err);
	if (r < 0)
		return r;
	return p12_finish(safes, prof, pass, ret, ret_len, err);
}

int ks_pkcs12_render(const ks_material *m, const ks_options *opts, ks_fileset *out,
		     sigil_err *err)
{
	static const ks_options no_opts;
	const ks_options *o = opts ? opts : &no_opts;
	const p12_profile *prof = o->pkcs12_legacy ? &p12_legacy : &p12_modern;
	const char *pass = o->password ? o->password : "";
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if (!m || !m->trust || sk_X509_num(m->trust) == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "no trust bundle to write");
	if ((m->key == NULL) != (m->leaf == NULL))
		return sigil_err_set(err, SIGIL_E_INVALID, "a key needs its certificate");
	if (sk_X509_num(m->trust) > KS_MAX_TRUST)
		return sigil_err_set(err, SIGIL_E_LIMIT, "trust bundle has more than %d certificates",
				     KS_MAX_TRUST);
	if (strlen(pass) > KS_MAX_PASSWORD_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "store password longer than %d bytes",
				     KS_MAX_PASSWORD_LEN);
	if (!p12_password_ok(pass))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "PKCS#12 store password must be printable ASCII: Java's "
				     "PKCS12 keystore cannot open files with other passwords "
				     "(use tls-jks or an ASCII password)");

	if (m->key) {
		const char *alias = p12_name(o->alias, "1");

		if (strlen(alias) > KS_MAX_ALIAS_LEN || !p12_utf8_ok(alias))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "key alias must be UTF-8 of at most %d bytes",
					     KS_MAX_ALIAS_LEN);
		r = p12_render_keystore(m, alias, prof, pass, &data, &len, err);
		if (r < 0) {
			sigil_err_prefix(err, "keystore (%s): ", prof->name);
			return r;
		}
		r = ks_fileset_add(out, p12_name(o->keystore_name, "keystore.p12"), data, len,
				   true, err);
		if (r < 0)
			return r;
	}
	r = p12_render_truststore(m, prof, pass, &data, &len, err);
	if (r < 0) {
		sigil_err_prefix(err, "truststore (%s): ", prof->name);
		return r;
	}
	return ks_fileset_add(out, p12_name(o->truststore_name, "truststore.p12"), data, len, false,
			      err);
}
