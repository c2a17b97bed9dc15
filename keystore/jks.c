/* tls-jks: Sun's JKS keystore format, written and read from its public
 * description.
 *
 *   u32 magic 0xFEEDFEED, u32 version (1 or 2), u32 entry count
 *   entry: u32 tag, UTF alias, u64 creation time (ms since the epoch)
 *     tag 1 (private key): u32 len + EncryptedPrivateKeyInfo DER,
 *                          u32 chain length, certificates
 *     tag 2 (trusted certificate): one certificate
 *   certificate: [v2 only: UTF type "X.509"] u32 len + DER
 *   SHA-1(password as UTF-16BE || "Mighty Aphrodite" || all bytes above)
 *
 * "UTF" is Java's DataOutput.writeUTF: u16 length + modified UTF-8 (NUL as
 * C0 80, supplementary characters as two 3-byte surrogates).  Passwords are
 * Java chars, so they are hashed as UTF-16BE code units.
 *
 * The private key is protected with Sun's KeyProtector (OID
 * 1.3.6.1.4.1.42.2.17.1.1): a SHA-1 keystream over the password and a random
 * salt XORed onto the PKCS#8 PrivateKeyInfo, followed by a SHA-1 check of
 * the plaintext.  It is weak by design; the format exists for old Java
 * runtimes, and the file is only ever written to a pod's tmpfs. */
#include "keystore/keystore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "util/buf.h"
#include "util/fs.h"
#include "util/mem.h"

#define JKS_MAGIC 0xFEEDFEEDu
#define JKS_TAG_KEY 1u
#define JKS_TAG_TRUSTED 2u
#define JKS_SHA1_LEN 20
#define JKS_SALT_LEN 20
#define JKS_KEY_PROTECTOR_OID "1.3.6.1.4.1.42.2.17.1.1"
#define JKS_CERT_TYPE "X.509"
#define JKS_WHITENER "Mighty Aphrodite"
/* Limit on a protected private key (an RSA-16384 PKCS#8 is ~9.5 KiB). */
#define JKS_MAX_KEY_LEN 32768
/* Limit on the certificate type string (Java writes "X.509"). */
#define JKS_MAX_CERT_TYPE_LEN 64
/* Limit on a written keystore: KS_MAX_CHAIN / KS_MAX_TRUST certificates. */
#define JKS_MAX_OUT SIGIL_MAX_FILE_SIZE
/* A password of KS_MAX_PASSWORD_LEN UTF-8 bytes has at most that many
 * UTF-16 code units. */
#define JKS_MAX_PW16 (2 * KS_MAX_PASSWORD_LEN)

SIGIL_DEFINE_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)
SIGIL_DEFINE_CLEANUP(X509_SIG, X509_SIG_free)
SIGIL_DEFINE_CLEANUP(ASN1_OBJECT, ASN1_OBJECT_free)
SIGIL_DEFINE_CLEANUP(PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free)
SIGIL_DEFINE_CLEANUP(X509, X509_free)
SIGIL_DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)

/* A password as Java hashes it: UTF-16BE code units.  Wiped on scope exit. */
typedef struct jks_pw {
	uint8_t b[JKS_MAX_PW16 * 2];
	size_t len;
} jks_pw;

static void jks_pw_wipe(jks_pw *pw)
{
	sigil_wipe(pw, sizeof(*pw));
}

/* Decodes one RFC 3629 UTF-8 scalar value from s[0..n); returns its length
 * or 0 when malformed (overlong, surrogate, beyond U+10FFFF, truncated). */
static size_t jks_utf8_next(const uint8_t *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t v;

	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		v = s[0] & 0x1f;
		len = 2;
	} else if ((s[0] & 0xf0) == 0xe0) {
		v = s[0] & 0x0f;
		len = 3;
	} else if ((s[0] & 0xf8) == 0xf0) {
		v = s[0] & 0x07;
		len = 4;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if ((len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
	    v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* Calls emit for each UTF-16 code unit of a UTF-8 string (Java's chars). */
typedef int (*jks_unit_fn)(void *ctx, uint16_t unit);

static int jks_utf8_to_units(const char *s, jks_unit_fn emit, void *ctx)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s);

	while (n > 0) {
		uint32_t cp;
		size_t l = jks_utf8_next(p, n, &cp);
		int r;

		if (l == 0)
			return SIGIL_E_INVALID;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			r = emit(ctx, (uint16_t)(0xd800 | (cp >> 10)));
			if (r == 0)
				r = emit(ctx, (uint16_t)(0xdc00 | (cp & 0x3ff)));
		} else {
			r = emit(ctx, (uint16_t)cp);
		}
		if (r < 0)
			return r;
		p += l;
		n -= l;
	}
	return 0;
}

static int jks_pw_emit(void *ctx, uint16_t unit)
{
	jks_pw *pw = ctx;

	if (pw->len + 2 > sizeof(pw->b))
		return SIGIL_E_LIMIT;
	pw->b[pw->len++] = (uint8_t)(unit >> 8);
	pw->b[pw->len++] = (uint8_t)unit;
	return 0;
}

/* NULL and "" are the empty password. */
static int jks_pw_init(jks_pw *pw, const char *password, sigil_err *err)
{
	int r;

	memset(pw, 0, sizeof(*pw));
	if (!password)
		return 0;
	if (strlen(password) > KS_MAX_PASSWORD_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "store password longer than %d bytes",
				     KS_MAX_PASSWORD_LEN);
	r = jks_utf8_to_units(password, jks_pw_emit, pw);
	if (r < 0) {
		jks_pw_wipe(pw);
		return sigil_err_set(err, r, "store password is not valid UTF-8");
	}
	return 0;
}

/* Java modified UTF-8 (DataOutput.writeUTF) of one code unit. */
static int jks_mutf8_emit(void *ctx, uint16_t u)
{
	sigil_wbuf *b = ctx;

	if (u != 0 && u < 0x80)
		return sigil_wbuf_put_u8(b, (uint8_t)u);
	if (u < 0x800) {
		sigil_wbuf_put_u8(b, (uint8_t)(0xc0 | (u >> 6)));
		return sigil_wbuf_put_u8(b, (uint8_t)(0x80 | (u & 0x3f)));
	}
	sigil_wbuf_put_u8(b, (uint8_t)(0xe0 | (u >> 12)));
	sigil_wbuf_put_u8(b, (uint8_t)(0x80 | ((u >> 6) & 0x3f)));
	return sigil_wbuf_put_u8(b, (uint8_t)(0x80 | (u & 0x3f)));
}

/* writeUTF: u16 byte length, then the modified UTF-8 bytes. */
static int jks_put_utf(sigil_wbuf *b, const char *s)
{
	sigil_wbuf tmp;
	int r;

	sigil_wbuf_init(&tmp, UINT16_MAX, false);
	r = jks_utf8_to_units(s, jks_mutf8_emit, &tmp);
	if (r == 0)
		r = sigil_wbuf_status(&tmp);
	if (r == 0) {
		sigil_wbuf_put_u16be(b, (uint16_t)tmp.len);
		r = sigil_wbuf_put(b, tmp.p, tmp.len);
	}
	sigil_wbuf_free(&tmp);
	return r;
}

/* SHA-1(pw || a || b), the shape of every digest in this format. */
static int jks_sha1(const jks_pw *pw, const void *a, size_t alen, const void *b2, size_t blen,
		    uint8_t out[JKS_SHA1_LEN])
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
	    !EVP_DigestUpdate(ctx, pw->b, pw->len) || !EVP_DigestUpdate(ctx, a, alen) ||
	    !EVP_DigestUpdate(ctx, b2, blen) || !EVP_DigestFinal_ex(ctx, out, NULL))
		return SIGIL_E_CRYPTO;
	return 0;
}

/* The keystream is symmetric: the same call encrypts and decrypts.
 * d_1 = SHA-1(pw || salt), d_i+1 = SHA-1(pw || d_i). */
static int jks_keystream_xor(const jks_pw *pw, const uint8_t salt[JKS_SALT_LEN],
			     const uint8_t *in, uint8_t *out, size_t len)
{
	uint8_t d[JKS_SHA1_LEN];
	int r = 0;

	memcpy(d, salt, JKS_SALT_LEN);
	for (size_t off = 0; off < len; off += JKS_SHA1_LEN) {
		size_t n = len - off < JKS_SHA1_LEN ? len - off : JKS_SHA1_LEN;

		r = jks_sha1(pw, d, sizeof(d), NULL, 0, d);
		if (r < 0)
			break;
		for (size_t i = 0; i < n; i++)
			out[off + i] = in[off + i] ^ d[i];
	}
	sigil_wipe(d, sizeof(d));
	return r;
}

static int jks_key_protector_obj(ASN1_OBJECT **ret, sigil_err *err)
{
	/* no_name=1: parse the dotted OID, never register a global NID. */
	ASN1_OBJECT *o = OBJ_txt2obj(JKS_KEY_PROTECTOR_OID, 1);

	if (!o)
		return sigil_err_ssl(err, SIGIL_E_INTERNAL, "cannot encode the JKS key protector OID");
	*ret = o;
	return 0;
}

/* PKCS#8 PrivateKeyInfo DER of key in a malloc'ed buffer (wipe it). */
static int jks_key_to_pkcs8(EVP_PKEY *key, uint8_t **ret, size_t *ret_len, sigil_err *err)
{
	_cleanup_(PKCS8_PRIV_KEY_INFO_freep) PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
	uint8_t *buf, *p;
	int n;

	if (!p8)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "encoding the private key as PKCS#8");
	n = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL);
	if (n <= 0 || n > JKS_MAX_KEY_LEN - 2 * JKS_SHA1_LEN)
		return sigil_err_ssl(err, SIGIL_E_LIMIT, "private key too large for JKS");
	buf = malloc((size_t)n);
	if (!buf)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	p = buf;
	if (i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != n) {
		sigil_freezero(buf, (size_t)n);
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "encoding the private key as PKCS#8");
	}
	*ret = buf;
	*ret_len = (size_t)n;
	return 0;
}

/* EncryptedPrivateKeyInfo { {KeyProtector OID, NULL}, salt || c || check }. */
static int jks_protect_key(EVP_PKEY *key, const jks_pw *pw, uint8_t **ret, size_t *ret_len,
			   sigil_err *err)
{
	_cleanup_(X509_SIG_freep) X509_SIG *sig = X509_SIG_new();
	_cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = NULL;
	uint8_t *plain = NULL, *prot = NULL, *der = NULL, *p;
	size_t plain_len = 0, prot_len;
	X509_ALGOR *alg;
	ASN1_OCTET_STRING *oct;
	int r, n;

	if (!sig)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = jks_key_protector_obj(&oid, err);
	if (r < 0)
		return r;
	r = jks_key_to_pkcs8(key, &plain, &plain_len, err);
	if (r < 0)
		return r;
	prot_len = JKS_SALT_LEN + plain_len + JKS_SHA1_LEN;
	prot = malloc(prot_len);
	if (!prot) {
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		goto out;
	}
	if (RAND_bytes(prot, JKS_SALT_LEN) != 1) {
		r = sigil_err_ssl(err, SIGIL_E_CRYPTO, "no randomness for the JKS key salt");
		goto out;
	}
	if (jks_keystream_xor(pw, prot, plain, prot + JKS_SALT_LEN, plain_len) < 0 ||
	    jks_sha1(pw, plain, plain_len, NULL, 0, prot + JKS_SALT_LEN + plain_len) < 0) {
		r = sigil_err_ssl(err, SIGIL_E_CRYPTO, "protecting the JKS private key");
		goto out;
	}
	X509_SIG_getm(sig, &alg, &oct);
	if (!X509_ALGOR_set0(alg, oid, V_ASN1_NULL, NULL)) {
		r = sigil_err_ssl(err, SIGIL_E_CRYPTO, "encoding the JKS key algorithm");
		goto out;
	}
	oid = NULL; /* owned by alg now */
	if (!ASN1_OCTET_STRING_set(oct, prot, (int)prot_len)) {
		r = sigil_err_ssl(err, SIGIL_E_NOMEM, "encoding the JKS private key");
		goto out;
	}
	n = i2d_X509_SIG(sig, NULL);
	if (n <= 0 || n > JKS_MAX_KEY_LEN) {
		r = sigil_err_ssl(err, SIGIL_E_LIMIT, "private key too large for JKS");
		goto out;
	}
	der = malloc((size_t)n);
	if (!der) {
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		goto out;
	}
	p = der;
	if (i2d_X509_SIG(sig, &p) != n) {
		sigil_freezero(der, (size_t)n);
		r = sigil_err_ssl(err, SIGIL_E_CRYPTO, "encoding the JKS private key");
		goto out;
	}
	*ret = der;
	*ret_len = (size_t)n;
	r = 0;
out:
	sigil_freezero(plain, plain_len);
	sigil_freezero(prot, prot ? prot_len : 0);
	return r;
}

static int jks_put_cert(sigil_wbuf *b, X509 *x, sigil_err *err)
{
	int n = i2d_X509(x, NULL);
	uint8_t *der, *p;

	if (n <= 0)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "encoding a certificate");
	if (n > KS_JKS_MAX_CERT_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "certificate larger than %d bytes",
				     KS_JKS_MAX_CERT_LEN);
	der = malloc((size_t)n);
	if (!der)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	p = der;
	if (i2d_X509(x, &p) != n) {
		free(der);
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "encoding a certificate");
	}
	jks_put_utf(b, JKS_CERT_TYPE);
	sigil_wbuf_put_u32be(b, (uint32_t)n);
	sigil_wbuf_put(b, der, (size_t)n);
	free(der);
	return 0;
}

static int64_t jks_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return (int64_t)time(NULL) * 1000;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void jks_put_header(sigil_wbuf *b, uint32_t count)
{
	sigil_wbuf_put_u32be(b, JKS_MAGIC);
	sigil_wbuf_put_u32be(b, 2);
	sigil_wbuf_put_u32be(b, count);
}

/* Appends the keyed digest and hands the bytes out. */
static int jks_finish(sigil_wbuf *b, const jks_pw *pw, uint8_t **ret, size_t *ret_len,
		      sigil_err *err)
{
	uint8_t d[JKS_SHA1_LEN];
	int r = sigil_wbuf_status(b);

	if (r < 0)
		return sigil_err_set(err, r, "JKS output exceeds %u bytes or out of memory",
				     JKS_MAX_OUT);
	if (jks_sha1(pw, JKS_WHITENER, strlen(JKS_WHITENER), b->p, b->len, d) < 0)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "computing the JKS integrity digest");
	r = sigil_wbuf_put(b, d, sizeof(d));
	if (r < 0)
		return sigil_err_set(err, r, "JKS output exceeds %u bytes or out of memory",
				     JKS_MAX_OUT);
	*ret = sigil_wbuf_steal(b, ret_len);
	if (!*ret)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	return 0;
}

static int jks_render_keystore(const ks_material *m, const char *alias, const jks_pw *pw,
			       uint8_t **ret, size_t *ret_len, sigil_err *err)
{
	sigil_wbuf b;
	uint8_t *key = NULL;
	size_t key_len = 0;
	int n_chain = m->chain ? sk_X509_num(m->chain) : 0;
	uint32_t n_certs = 1;
	int r;

	if (n_chain > KS_MAX_CHAIN)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "certificate chain has more than %d certificates", KS_MAX_CHAIN);
	if (!X509_check_private_key(m->leaf, m->key))
		return sigil_err_ssl(err, SIGIL_E_INVALID,
				     "the private key does not match the certificate");
	/* The chain stops below the root, as in tls.crt. */
	for (int i = 0; i < n_chain; i++)
		if (X509_self_signed(sk_X509_value(m->chain, i), 1) != 1)
			n_certs++;
	r = jks_protect_key(m->key, pw, &key, &key_len, err);
	if (r < 0)
		return r;

	sigil_wbuf_init(&b, JKS_MAX_OUT, true);
	jks_put_header(&b, 1);
	sigil_wbuf_put_u32be(&b, JKS_TAG_KEY);
	jks_put_utf(&b, alias);
	sigil_wbuf_put_u64be(&b, (uint64_t)jks_now_ms());
	sigil_wbuf_put_u32be(&b, (uint32_t)key_len);
	sigil_wbuf_put(&b, key, key_len);
	sigil_freezero(key, key_len);
	sigil_wbuf_put_u32be(&b, n_certs);
	r = jks_put_cert(&b, m->leaf, err);
	for (int i = 0; r == 0 && i < n_chain; i++) {
		X509 *x = sk_X509_value(m->chain, i);

		if (X509_self_signed(x, 1) != 1)
			r = jks_put_cert(&b, x, err);
	}
	if (r == 0)
		r = jks_finish(&b, pw, ret, ret_len, err);
	sigil_wbuf_free(&b);
	return r;
}

static int jks_render_truststore(const ks_material *m, const jks_pw *pw, uint8_t **ret,
				 size_t *ret_len, sigil_err *err)
{
	sigil_wbuf b;
	int64_t now = jks_now_ms();
	int n = sk_X509_num(m->trust);
	int r = 0;

	sigil_wbuf_init(&b, JKS_MAX_OUT, false);
	jks_put_header(&b, (uint32_t)n);
	for (int i = 0; r == 0 && i < n; i++) {
		char alias[32];

		snprintf(alias, sizeof(alias), "ca-%d", i);
		sigil_wbuf_put_u32be(&b, JKS_TAG_TRUSTED);
		jks_put_utf(&b, alias);
		sigil_wbuf_put_u64be(&b, (uint64_t)now);
		r = jks_put_cert(&b, sk_X509_value(m->trust, i), err);
	}
	if (r == 0)
		r = jks_finish(&b, pw, ret, ret_len, err);
	sigil_wbuf_free(&b);
	return r;
}

static bool jks_alias_ok(const char *alias)
{
	size_t n = strlen(alias);
	uint32_t cp;

	if (n == 0 || n > KS_MAX_ALIAS_LEN)
		return false;
	for (size_t i = 0, l; i < n; i += l) {
		l = jks_utf8_next((const uint8_t *)alias + i, n - i, &cp);
		if (l == 0)
			return false;
	}
	return true;
}

static const char *jks_name(const char *v, const char *def)
{
	return v && *v ? v : def;
}

int ks_jks_render(const ks_material *m, const ks_options *opts, ks_fileset *out, sigil_err *err)
{
	static const ks_options no_opts;
	const ks_options *o = opts ? opts : &no_opts;
	_cleanup_(jks_pw_wipe) jks_pw pw;
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	memset(&pw, 0, sizeof(pw));
	if (!m || !m->trust || sk_X509_num(m->trust) == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "no trust bundle to write");
	if ((m->key == NULL) != (m->leaf == NULL))
		return sigil_err_set(err, SIGIL_E_INVALID, "a key needs its certificate");
	if (sk_X509_num(m->trust) > KS_MAX_TRUST)
		return sigil_err_set(err, SIGIL_E_LIMIT, "trust bundle has more than %d certificates",
				     KS_MAX_TRUST);
	r = jks_pw_init(&pw, o->password, err);
	if (r < 0)
		return r;

	if (m->key) {
		const char *alias = jks_name(o->alias, "1");

		/* Checked here so that a bad alias is a clear error rather
		 * than a failed write. */
		if (!jks_alias_ok(alias))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "key alias must be UTF-8 of at most %d bytes",
					     KS_MAX_ALIAS_LEN);
		r = jks_render_keystore(m, alias, &pw, &data, &len, err);
		if (r < 0) {
			sigil_err_prefix(err, "JKS keystore: ");
			return r;
		}
		r = ks_fileset_add(out, jks_name(o->keystore_name, "keystore.jks"), data, len, true,
				   err);
		if (r < 0)
			return r;
	}
	r = jks_render_truststore(m, &pw, &data, &len, err);
	if (r < 0) {
		sigil_err_prefix(err, "JKS truststore: ");
		return r;
	}
	return ks_fileset_add(out, jks_name(o->truststore_name, "truststore.jks"), data, len, false,
			      err);
}

/* ---- reader ------------------------------------------------------------- */

/* One entry as found by the structural pass: pointers into the input. */
typedef struct jks_raw_cert {
	const uint8_t *der;
	size_t len;
} jks_raw_cert;

typedef struct jks_raw_entry {
	uint32_t tag;
	char alias[KS_MAX_ALIAS_LEN + 1];
	int64_t created_ms;
	const uint8_t *key;
	size_t key_len;
	size_t n_certs;
	jks_raw_cert certs[KS_JKS_MAX_CHAIN];
} jks_raw_entry;

/* Modified UTF-8 (Java readUTF) to UTF-8, into out[KS_MAX_ALIAS_LEN + 1].
 * NUL and unpaired surrogates are refused: an alias is a C string. */
static int jks_mutf8_to_utf8(const uint8_t *s, size_t n, char *out, sigil_err *err,
			     size_t entry)
{
	size_t o = 0, i = 0;
	uint32_t pending_high = 0;

	while (i < n) {
		uint32_t u;
		uint8_t tmp[4];
		size_t tl;

		if (s[i] < 0x80) {
			u = s[i];
			i += 1;
		} else if ((s[i] & 0xe0) == 0xc0 && i + 1 < n && (s[i + 1] & 0xc0) == 0x80) {
			u = ((uint32_t)(s[i] & 0x1f) << 6) | (s[i + 1] & 0x3f);
			i += 2;
		} else if ((s[i] & 0xf0) == 0xe0 && i + 2 < n && (s[i + 1] & 0xc0) == 0x80 &&
			   (s[i + 2] & 0xc0) == 0x80) {
			u = ((uint32_t)(s[i] & 0x0f) << 12) | ((uint32_t)(s[i + 1] & 0x3f) << 6) |
			    (s[i + 2] & 0x3f);
			i += 3;
		} else {
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "JKS entry %zu: alias is not modified UTF-8", entry);
		}
		if (u == 0)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "JKS entry %zu: alias contains NUL", entry);
		if (pending_high) {
			if (u < 0xdc00 || u > 0xdfff)
				return sigil_err_set(err, SIGIL_E_INVALID,
						     "JKS entry %zu: alias has an unpaired surrogate",
						     entry);
			u = 0x10000 + ((pending_high - 0xd800) << 10) + (u - 0xdc00);
			pending_high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			pending_high = u;
			continue;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "JKS entry %zu: alias has an unpaired surrogate", entry);
		}
		if (u < 0x80) {
			tmp[0] = (uint8_t)u;
			tl = 1;
		} else if (u < 0x800) {
			tmp[0] = (uint8_t)(0xc0 | (u >> 6));
			tmp[1] = (uint8_t)(0x80 | (u & 0x3f));
			tl = 2;
		} else if (u < 0x10000) {
			tmp[0] = (uint8_t)(0xe0 | (u >> 12));
			tmp[1] = (uint8_t)(0x80 | ((u >> 6) & 0x3f));
			tmp[2] = (uint8_t)(0x80 | (u & 0x3f));
			tl = 3;
		} else {
			tmp[0] = (uint8_t)(0xf0 | (u >> 18));
			tmp[1] = (uint8_t)(0x80 | ((u >> 12) & 0x3f));
			tmp[2] = (uint8_t)(0x80 | ((u >> 6) & 0x3f));
			tmp[3] = (uint8_t)(0x80 | (u & 0x3f));
			tl = 4;
		}
		if (o + tl > KS_MAX_ALIAS_LEN)
			return sigil_err_set(err, SIGIL_E_LIMIT,
					     "JKS entry %zu: alias longer than %d bytes", entry,
					     KS_MAX_ALIAS_LEN);
		memcpy(out + o, tmp, tl);
		o += tl;
	}
	if (pending_high)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "JKS entry %zu: alias has an unpaired surrogate", entry);
	out[o] = '\0';
	return 0;
}

/* u32 length-prefixed blob of at most max bytes; never advances on failure. */
static int jks_get_blob(sigil_rbuf *b, size_t max, const uint8_t **ret, size_t *ret_len,
			const char *what, size_t entry, sigil_err *err)
{
	sigil_rbuf save = *b;
	uint32_t n;

	if (sigil_rbuf_get_u32be(b, &n) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "JKS entry %zu: truncated %s length",
				     entry, what);
	if (n == 0) {
		*b = save;
		return sigil_err_set(err, SIGIL_E_INVALID, "JKS entry %zu: empty %s", entry, what);
	}
	if (n > max) {
		*b = save;
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "JKS entry %zu: %s of %u bytes exceeds the limit of %zu", entry,
				     what, n, max);
	}
	if (sigil_rbuf_get_bytes(b, n, ret) < 0) {
		size_t left = sigil_rbuf_remaining(b);

		*b = save;
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "JKS entry %zu: truncated %s (%u bytes, %zu left)", entry, what,
				     n, left);
	}
	*ret_len = n;
	return 0;
}

/* writeUTF string: u16 length + bytes; never advances on failure. */
static int jks_get_utf(sigil_rbuf *b, const uint8_t **ret, size_t *ret_len, const char *what,
		       size_t entry, sigil_err *err)
{
	sigil_rbuf save = *b;
	uint16_t n;

	if (sigil_rbuf_get_u16be(b, &n) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "JKS entry %zu: truncated %s", entry,
				     what);
	if (sigil_rbuf_get_bytes(b, n, ret) < 0) {
		*b = save;
		return sigil_err_set(err, SIGIL_E_INVALID, "JKS entry %zu: truncated %s", entry,
				     what);
	}
	*ret_len = n;
	return 0;
}

static int jks_get_cert(sigil_rbuf *b, uint32_t version, jks_raw_cert *c, size_t entry,
			sigil_err *err)
{
	sigil_rbuf save = *b;
	const uint8_t *type;
	size_t type_len;
	int r;

	if (version == 2) {
		r = jks_get_utf(b, &type, &type_len, "certificate type", entry, err);
		if (r < 0)
			return r;
		if (type_len != strlen(JKS_CERT_TYPE) ||
		    memcmp(type, JKS_CERT_TYPE, type_len) != 0) {
			*b = save;
			if (type_len > JKS_MAX_CERT_TYPE_LEN)
				type_len = JKS_MAX_CERT_TYPE_LEN;
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "JKS entry %zu: unsupported certificate type '%.*s'",
					     entry, (int)type_len, (const char *)type);
		}
	}
	r = jks_get_blob(b, KS_JKS_MAX_CERT_LEN, &c->der, &c->len, "certificate", entry, err);
	if (r < 0)
		*b = save;
	return r;
}

static int jks_get_entry(sigil_rbuf *b, uint32_t version, jks_raw_entry *e, size_t entry,
			 sigil_err *err)
{
	sigil_rbuf save = *b;
	const uint8_t *alias;
	size_t alias_len;
	uint64_t date;
	uint32_t n;
	int r;

	if (sigil_rbuf_get_u32be(b, &e->tag) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "JKS entry %zu: truncated tag", entry);
	if (e->tag != JKS_TAG_KEY && e->tag != JKS_TAG_TRUSTED) {
		*b = save;
		/* Tag 3 is a JCEKS secret key. */
		return sigil_err_set(err, SIGIL_E_INVALID, "JKS entry %zu: unknown entry tag %u",
				     entry, e->tag);
	}
	r = jks_get_utf(b, &alias, &alias_len, "alias", entry, err);
	if (r == 0)
		r = jks_mutf8_to_utf8(alias, alias_len, e->alias, err, entry);
	if (r == 0 && sigil_rbuf_get_u64be(b, &date) < 0)
		r = sigil_err_set(err, SIGIL_E_INVALID, "JKS entry %zu: truncated date", entry);
	if (r < 0)
		goto fail;
	/* Java's long: two's complement. */
	e->created_ms = date > (uint64_t)INT64_MAX ? -(int64_t)(~date) - 1 : (int64_t)date;

	if (e->tag == JKS_TAG_TRUSTED) {
		e->n_certs = 1;
		r = jks_get_cert(b, version, &e->certs[0], entry, err);
		if (r < 0)
			goto fail;
		return 0;
	}
	r = jks_get_blob(b, JKS_MAX_KEY_LEN, &e->key, &e->key_len, "private key", entry, err);
	if (r < 0)
		goto fail;
	if (sigil_rbuf_get_u32be(b, &n) < 0) {
		r = sigil_err_set(err, SIGIL_E_INVALID, "JKS entry %zu: truncated chain length",
				  entry);
		goto fail;
	}
	if (n == 0) {
		r = sigil_err_set(err, SIGIL_E_INVALID,
				  "JKS entry %zu: private key without a certificate chain", entry);
		goto fail;
	}
	if (n > KS_JKS_MAX_CHAIN) {
		r = sigil_err_set(err, SIGIL_E_LIMIT,
				  "JKS entry %zu: chain of %u certificates exceeds the limit of %d",
				  entry, n, KS_JKS_MAX_CHAIN);
		goto fail;
	}
	e->n_certs = n;
	for (uint32_t i = 0; i < n; i++) {
		r = jks_get_cert(b, version, &e->certs[i], entry, err);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	*b = save;
	return r;
}

static int jks_parse_cert(const jks_raw_cert *c, X509 **ret, const char *alias, sigil_err *err)
{
	const unsigned char *p = c->der;
	X509 *x = d2i_X509(NULL, &p, (long)c->len);

	if (!x || p != c->der + c->len) {
		X509_free(x);
		return sigil_err_ssl(err, SIGIL_E_INVALID,
				     "JKS entry '%s': certificate is not valid DER", alias);
	}
	*ret = x;
	return 0;
}

/* KeyProtector.recover: checks the OID, strips the keystream, verifies the
 * plaintext's SHA-1 check, and parses the PKCS#8 inside. */
static int jks_recover_key(const jks_raw_entry *e, const jks_pw *pw, EVP_PKEY **ret,
			   sigil_err *err)
{
	_cleanup_(X509_SIG_freep) X509_SIG *sig = NULL;
	_cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *want = NULL;
	_cleanup_(PKCS8_PRIV_KEY_INFO_freep) PKCS8_PRIV_KEY_INFO *p8 = NULL;
	const unsigned char *p = e->key;
	const X509_ALGOR *alg;
	const ASN1_OCTET_STRING *oct;
	const ASN1_OBJECT *obj;
	const uint8_t *prot;
	uint8_t *plain = NULL;
	uint8_t check[JKS_SHA1_LEN];
	size_t prot_len, plain_len = 0;
	EVP_PKEY *key;
	int ptype, r;

	sig = d2i_X509_SIG(NULL, &p, (long)e->key_len);
	if (!sig || p != e->key + e->key_len)
		return sigil_err_ssl(err, SIGIL_E_INVALID,
				     "JKS entry '%s': private key is not an EncryptedPrivateKeyInfo",
				     e->alias);
	r = jks_key_protector_obj(&want, err);
	if (r < 0)
		return r;
	X509_SIG_get0(sig, &alg, &oct);
	X509_ALGOR_get0(&obj, &ptype, NULL, alg);
	if (OBJ_cmp(obj, want) != 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "JKS entry '%s': private key is not protected with Sun's "
				     "KeyProtector",
				     e->alias);
	if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "JKS entry '%s': unexpected KeyProtector parameters", e->alias);
	prot = ASN1_STRING_get0_data(oct);
	prot_len = (size_t)ASN1_STRING_length(oct);
	if (prot_len <= JKS_SALT_LEN + JKS_SHA1_LEN)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "JKS entry '%s': protected private key too short", e->alias);
	plain_len = prot_len - JKS_SALT_LEN - JKS_SHA1_LEN;
	plain = malloc(plain_len);
	if (!plain)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (jks_keystream_xor(pw, prot, prot + JKS_SALT_LEN, plain, plain_len) < 0 ||
	    jks_sha1(pw, plain, plain_len, NULL, 0, check) < 0) {
		r = sigil_err_ssl(err, SIGIL_E_CRYPTO, "JKS entry '%s': decrypting the private key",
				  e->alias);
		goto out;
	}
	if (CRYPTO_memcmp(check, prot + JKS_SALT_LEN + plain_len, JKS_SHA1_LEN) != 0) {
		r = sigil_err_set(err, SIGIL_E_PERM,
				  "JKS entry '%s': private key password differs from the store "
				  "password, or the entry is corrupt",
				  e->alias);
		goto out;
	}
	p = plain;
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)plain_len);
	if (!p8 || p != plain + plain_len) {
		r = sigil_err_ssl(err, SIGIL_E_INVALID,
				  "JKS entry '%s': private key is not valid PKCS#8", e->alias);
		goto out;
	}
	key = EVP_PKCS82PKEY(p8);
	if (!key) {
		r = sigil_err_ssl(err, SIGIL_E_INVALID,
				  "JKS entry '%s': unsupported or invalid private key", e->alias);
		goto out;
	}
	*ret = key;
	r = 0;
out:
	sigil_wipe(check, sizeof(check));
	sigil_freezero(plain, plain_len);
	return r;
}

/* Certificates and keys of one structurally valid entry. */
static int jks_load_entry(const jks_raw_entry *raw, const jks_pw *pw, ks_jks_entry *e,
			  sigil_err *err)
{
	_cleanup_(X509_freep) X509 *first = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	int r;

	for (size_t i = 0; i < raw->n_certs; i++) {
		X509 *x = NULL;

		r = jks_parse_cert(&raw->certs[i], &x, raw->alias, err);
		if (r < 0)
			return r;
		if (i == 0)
			first = x;
		else
			X509_free(x);
	}
	if (raw->tag == JKS_TAG_KEY) {
		r = jks_recover_key(raw, pw, &key, err);
		if (r < 0)
			return r;
		if (!X509_check_private_key(first, key)) {
			ERR_clear_error();
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "JKS entry '%s': private key does not match its "
					     "certificate",
					     raw->alias);
		}
	}
	memcpy(e->alias, raw->alias, sizeof(e->alias));
	e->is_key = raw->tag == JKS_TAG_KEY;
	e->created_ms = raw->created_ms;
	e->n_certs = raw->n_certs;
	e->cert = TAKE_PTR(first);
	e->key = TAKE_PTR(key);
	return 0;
}

static const char *jks_magic_hint(uint32_t magic)
{
	if (magic == 0xCECECECEu)
		return " (a JCEKS keystore, which is not supported)";
	if ((magic >> 24) == 0x30)
		return " (looks like DER, perhaps PKCS#12)";
	if (magic == 0x2d2d2d2du)
		return " (looks like PEM)";
	return "";
}

int ks_jks_parse(const uint8_t *data, size_t len, const char *password, ks_jks *ret,
		 sigil_err *err)
{
	_cleanup_(jks_pw_wipe) jks_pw pw;
	_cleanup_free_ jks_raw_entry *raw = NULL;
	ks_jks out = {0};
	sigil_rbuf b;
	uint32_t magic, version, count;
	const uint8_t *digest;
	uint8_t want[JKS_SHA1_LEN];
	size_t body_len;
	int r;

	memset(&pw, 0, sizeof(pw));
	r = jks_pw_init(&pw, password, err);
	if (r < 0)
		return r;
	sigil_rbuf_init(&b, data, len);
	if (sigil_rbuf_get_u32be(&b, &magic) < 0 || sigil_rbuf_get_u32be(&b, &version) < 0 ||
	    sigil_rbuf_get_u32be(&b, &count) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "JKS: truncated header (%zu bytes, need 12)", len);
	if (magic != JKS_MAGIC)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "not a JKS keystore: bad magic 0x%08x%s", magic,
				     jks_magic_hint(magic));
	if (version != 1 && version != 2)
		return sigil_err_set(err, SIGIL_E_INVALID, "JKS: unsupported version %u",
				     version);
	if (count > KS_JKS_MAX_ENTRIES)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "JKS: %u entries exceed the limit of %d", count,
				     KS_JKS_MAX_ENTRIES);
	raw = sigil_calloc(count, sizeof(*raw));
	if (!raw)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");

	/* Pass 1: structure only, so that a truncated or malformed file is
	 * reported as such rather than as a digest mismatch. */
	for (size_t i = 0; i < count; i++) {
		r = jks_get_entry(&b, version, &raw[i], i, err);
		if (r < 0)
			return r;
	}
	body_len = b.off;
	if (sigil_rbuf_get_bytes(&b, JKS_SHA1_LEN, &digest) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "JKS: truncated integrity digest (%zu of %d bytes)",
				     sigil_rbuf_remaining(&b), JKS_SHA1_LEN);
	if (sigil_rbuf_remaining(&b) != 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "JKS: %zu trailing bytes after the integrity digest",
				     sigil_rbuf_remaining(&b));
	if (jks_sha1(&pw, JKS_WHITENER, strlen(JKS_WHITENER), data, body_len, want) < 0)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "computing the JKS integrity digest");
	if (CRYPTO_memcmp(want, digest, JKS_SHA1_LEN) != 0)
		return sigil_err_set(err, SIGIL_E_PERM,
				     "keystore password incorrect or file tampered");

	/* Pass 2: the authenticated contents. */
	out.entries = sigil_calloc(count, sizeof(*out.entries));
	if (!out.entries)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (size_t i = 0; i < count; i++) {
		r = jks_load_entry(&raw[i], &pw, &out.entries[i], err);
		if (r < 0) {
			ks_jks_free(&out);
			return r;
		}
		out.n++;
	}
	*ret = out;
	return 0;
}

void ks_jks_free(ks_jks *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		X509_free(j->entries[i].cert);
		/* EVP_PKEY_free clears the private key material. */
		EVP_PKEY_free(j->entries[i].key);
	}
	free(j->entries);
	j->entries = NULL;
	j->n = 0;
}
