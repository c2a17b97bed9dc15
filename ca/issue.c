/* Issuing leaf certificates from a CSR or a bare public key, and building
 * and parsing CSRs. */
#include "ca/issue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/names.h"
#include "util/mem.h"

#define CA_QUOTE_LEN 80
#define CA_DATE_BUF 32

SIGIL_DEFINE_CLEANUP(X509, X509_free)
SIGIL_DEFINE_CLEANUP(X509_REQ, X509_REQ_free)
SIGIL_DEFINE_CLEANUP(X509_NAME, X509_NAME_free)
SIGIL_DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
SIGIL_DEFINE_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
SIGIL_DEFINE_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)
SIGIL_DEFINE_CLEANUP(BIGNUM, BN_free)
SIGIL_DEFINE_CLEANUP(GENERAL_NAMES, GENERAL_NAMES_free)
SIGIL_DEFINE_CLEANUP(GENERAL_NAME, GENERAL_NAME_free)

static void eku_free(EXTENDED_KEY_USAGE *eku)
{
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
}
SIGIL_DEFINE_CLEANUP(EXTENDED_KEY_USAGE, eku_free)

static void sigil_openssl_free(unsigned char *p)
{
	OPENSSL_free(p);
}
SIGIL_DEFINE_CLEANUP(unsigned char, sigil_openssl_free)

static const char *fmt_time(time_t t, char buf[CA_DATE_BUF])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, CA_DATE_BUF, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, CA_DATE_BUF, "@%lld", (long long)t);
	return buf;
}

/* ---- CSRs ---------------------------------------------------------------- */

/* The subject text of a certificate: printable, at most CA_MAX_CN_LEN bytes
 * (RFC 5280 ub-common-name), no control characters. */
static int check_cn(const char *cn, sigil_err *err)
{
	char q[CA_QUOTE_LEN];
	size_t n = strlen(cn);

	if (n > CA_MAX_CN_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "common name \"%s\" is %zu bytes long, the limit is %d",
				     ca_names_quote(cn, q, sizeof(q)), n, CA_MAX_CN_LEN);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)cn[i];
		if (c < 0x20 || c == 0x7f)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "common name \"%s\" contains a control character",
					     ca_names_quote(cn, q, sizeof(q)));
	}
	return 0;
}

int ca_csr_create(EVP_PKEY *key, const char *common_name, uint8_t **ret_der, size_t *ret_len,
		  sigil_err *err)
{
	_cleanup_(X509_REQ_freep) X509_REQ *req = NULL;
	_cleanup_(X509_NAME_freep) X509_NAME *name = NULL;
	const EVP_MD *md = NULL;
	unsigned char *der, *p;
	int n, r;

	if (!key)
		return sigil_err_set(err, SIGIL_E_INVALID, "no key for the CSR");
	r = ca_key_sign_digest(key, &md, err);
	if (r < 0)
		return r;
	if (common_name && common_name[0] != '\0') {
		r = check_cn(common_name, err);
		if (r < 0)
			return r;
	}
	req = X509_REQ_new();
	name = X509_NAME_new();
	if (!req || !name)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set CSR version");
	if (common_name && common_name[0] != '\0' &&
	    !X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
					(const unsigned char *)common_name, -1, -1, 0))
		return sigil_err_ssl(err, SIGIL_E_INVALID, "bad common name for the CSR");
	if (!X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, key))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot build CSR");
	if (X509_REQ_sign(req, key, md) <= 0)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot sign CSR");
	n = i2d_X509_REQ(req, NULL);
	if (n <= 0)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot encode CSR");
	if ((size_t)n > CA_MAX_CSR_DER)
		return sigil_err_set(err, SIGIL_E_LIMIT, "CSR of %d bytes exceeds the limit of %d bytes", n,
				     CA_MAX_CSR_DER);
	der = malloc((size_t)n);
	if (!der)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	p = der;
	if (i2d_X509_REQ(req, &p) != n) {
		free(der);
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot encode CSR");
	}
	*ret_der = der;
	*ret_len = (size_t)n;
	return 0;
}

/* PKCS#10 (RFC 2986) through ASN.1 templates of our own rather than
 * X509_REQ: OpenSSL 3.0 decodes an X509_PUBKEY eagerly through its provider
 * decoders, which costs several times the signature check.  Here the
 * SubjectPublicKeyInfo stays raw (algorithm + bits, checked below) and the
 * CertificationRequestInfo keeps its DER, over which the signature is
 * verified as received.  The structure and the types are X509_REQ's, so
 * everything its decoder refuses is still refused. */
typedef struct csr_spki {
	X509_ALGOR *algor;
	ASN1_BIT_STRING *public_key;
} csr_spki;

typedef struct csr_info {
	ASN1_ENCODING enc;
	ASN1_INTEGER *version;
	X509_NAME *subject;
	csr_spki *spki;
	STACK_OF(X509_ATTRIBUTE) *attributes;
} csr_info;

typedef struct csr_asn1 {
	csr_info *info;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *signature;
} csr_asn1;

/* RSAPublicKey (RFC 8017 A.1.1). */
typedef struct rsa_pub_der {
	ASN1_INTEGER *n;
	ASN1_INTEGER *e;
} rsa_pub_der;

/* clang-format off */
ASN1_SEQUENCE(csr_spki) = {
	ASN1_SIMPLE(csr_spki, algor, X509_ALGOR),
	ASN1_SIMPLE(csr_spki, public_key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(csr_spki)

ASN1_SEQUENCE_enc(csr_info, enc, NULL) = {
	ASN1_SIMPLE(csr_info, version, ASN1_INTEGER),
	ASN1_SIMPLE(csr_info, subject, X509_NAME),
	ASN1_SIMPLE(csr_info, spki, csr_spki),
	/* Optional as in OpenSSL's X509_REQ_INFO: some encoders omit an
	 * empty attribute set. */
	ASN1_IMP_SET_OF_OPT(csr_info, attributes, X509_ATTRIBUTE, 0),
} static_ASN1_SEQUENCE_END_ref(csr_info, csr_info)

ASN1_SEQUENCE(csr_asn1) = {
	ASN1_SIMPLE(csr_asn1, info, csr_info),
	ASN1_SIMPLE(csr_asn1, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(csr_asn1, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(csr_asn1)

ASN1_SEQUENCE(rsa_pub_der) = {
	ASN1_SIMPLE(rsa_pub_der, n, ASN1_INTEGER),
	ASN1_SIMPLE(rsa_pub_der, e, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(rsa_pub_der)
/* clang-format on */

static void csr_asn1_free(csr_asn1 *c)
{
	ASN1_item_free((ASN1_VALUE *)c, ASN1_ITEM_rptr(csr_asn1));
}
SIGIL_DEFINE_CLEANUP(csr_asn1, csr_asn1_free)

static void rsa_pub_der_free(rsa_pub_der *r)
{
	ASN1_item_free((ASN1_VALUE *)r, ASN1_ITEM_rptr(rsa_pub_der));
}
SIGIL_DEFINE_CLEANUP(rsa_pub_der, rsa_pub_der_free)

/* A public key as it goes into a certificate: its algorithm, the contents
 * of its subjectPublicKey BIT STRING, and the key itself. */
typedef struct leaf_key {
	sigil_keyalg alg;
	const uint8_t *bits;
	size_t len;
	EVP_PKEY *pkey;
} leaf_key;

/* ---- EC key templates ------------------------------------------------------ */

/* Making an EC key from scratch builds its curve (Montgomery constants and
 * all): ~25 us a key in OpenSSL 3.0.  Keys copied from a template share the
 * work.  Two templates per curve, built once per process and only read
 * afterwards (EVP_PKEY_dup does not modify its source), so threads share
 * them without locking:
 * - params: a provider key holding only the curve; a copy given the point
 *   through OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY verifies signatures;
 * - legacy: a legacy key on the curve (its point: the generator); a copy
 *   given the point by d2i_PublicKey goes into a certificate through the
 *   legacy pub_encode method, where a provider key would take the 3.0
 *   encoder and decoder (~300 us) to end up in the certificate's cache. */
typedef struct ec_curve {
	sigil_keyalg alg;
	const char *group;
	size_t field_len; /* bytes of one coordinate */
	EVP_PKEY *params;
	EVP_PKEY *legacy;
} ec_curve;

/* Uncompressed point of the largest curve we take: 0x04 || X || Y. */
#define CA_MAX_EC_POINT (1 + 2 * 48)

static ec_curve ec_curves[] = {
	{ SIGIL_KEY_ECDSA_P256, "prime256v1", 32, NULL, NULL },
	{ SIGIL_KEY_ECDSA_P384, "secp384r1", 48, NULL, NULL },
};
static pthread_mutex_t ec_curves_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool ec_curves_ready;

static int ec_curve_init(ec_curve *c, sigil_err *err)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *params = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *legacy = NULL;
	OSSL_PARAM p[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)c->group, 0),
		OSSL_PARAM_construct_end(),
	};
	uint8_t gen[CA_MAX_EC_POINT];
	size_t gen_len = 0;
	const unsigned char *q = gen;

	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &params, EVP_PKEY_KEY_PARAMETERS, p) != 1 ||
	    !EVP_PKEY_get_octet_string_param(params, OSSL_PKEY_PARAM_EC_GENERATOR, gen, sizeof(gen),
					     &gen_len))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set up curve %s", c->group);
	legacy = EVP_PKEY_dup(params);
	if (!legacy || !d2i_PublicKey(EVP_PKEY_EC, &legacy, &q, (long)gen_len))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set up curve %s", c->group);
	c->params = TAKE_PTR(params);
	c->legacy = TAKE_PTR(legacy);
	return 0;
}

/* The template of alg's curve, built on first use (retried after a failure). */
static int ec_curve_get(sigil_keyalg alg, const ec_curve **ret, sigil_err *err)
{
	const ec_curve *found = NULL;
	int r = 0;

	if (!atomic_load_explicit(&ec_curves_ready, memory_order_acquire)) {
		pthread_mutex_lock(&ec_curves_lock);
		for (size_t i = 0; r == 0 && i < SIGIL_ARRAY_SIZE(ec_curves); i++)
			if (!ec_curves[i].legacy)
				r = ec_curve_init(&ec_curves[i], err);
		if (r == 0)
			atomic_store_explicit(&ec_curves_ready, true, memory_order_release);
		pthread_mutex_unlock(&ec_curves_lock);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(ec_curves); i++)
		if (ec_curves[i].alg == alg)
			found = &ec_curves[i];
	if (!found)
		return sigil_err_set(err, SIGIL_E_INTERNAL, "%s is not an EC key type", ca_keyalg_name(alg));
	*ret = found;
	return 0;
}

/* RFC 5480 2.2: 0x04 || X || Y, or 0x02/0x03 || X; "the public key MUST
 * be rejected if any other value is included in the first octet" (0x00,
 * the point at infinity, which OpenSSL would take, and hybrid forms). */
static bool ec_point_form_ok(const ec_curve *c, const uint8_t *bits, size_t len)
{
	if (len == 0)
		return false;
	switch (bits[0]) {
	case 0x04:
		return len == 1 + 2 * c->field_len;
	case 0x02:
	case 0x03:
		return len == 1 + c->field_len;
	default:
		return false;
	}
}

/* ---- public keys from raw bits ------------------------------------------------ */

/* A key to verify with, from the subjectPublicKey bits of a known type
 * (already checked by spki_read). */
static int key_from_bits(sigil_keyalg alg, const uint8_t *bits, size_t len, EVP_PKEY **ret,
			 sigil_err *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	const unsigned char *p = bits;
	const ec_curve *c;
	int r;

	switch (alg) {
	case SIGIL_KEY_RSA2048:
	case SIGIL_KEY_RSA3072:
	case SIGIL_KEY_RSA4096:
		pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
		if (!pkey || p != bits + len)
			return sigil_err_ssl(err, SIGIL_E_INVALID, "CSR RSA public key cannot be read");
		break;
	case SIGIL_KEY_ECDSA_P256:
	case SIGIL_KEY_ECDSA_P384:
		r = ec_curve_get(alg, &c, err);
		if (r < 0)
			return r;
		pkey = EVP_PKEY_dup(c->params);
		if (!pkey)
			return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
		/* Checks that the point is on the curve (EC_POINT_oct2point). */
		if (EVP_PKEY_set_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
						    (unsigned char *)bits, len) != 1)
			return sigil_err_ssl(err, SIGIL_E_INVALID,
					     "CSR public key is not a point on curve %s", c->group);
		break;
	case SIGIL_KEY_ED25519:
		pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, bits, len);
		if (!pkey)
			return sigil_err_ssl(err, SIGIL_E_INVALID, "CSR Ed25519 public key cannot be read");
		break;
	case SIGIL_KEY__COUNT:
	default:
		return sigil_err_set(err, SIGIL_E_INTERNAL, "unknown key algorithm %d", (int)alg);
	}
	*ret = TAKE_PTR(pkey);
	return 0;
}

/* Puts the key into x so that X509_get0_pubkey(x) works on the result.
 * RSA and EC go through a legacy key and its pub_encode method (~15 us);
 * X509_set_pubkey with a provider key runs the 3.0 encoder and then the
 * decoder (~300 us), which Ed25519 keys still need: OpenSSL 3.0 has no
 * public way to make a legacy Ed25519 key. */
static int cert_set_key(X509 *x, const leaf_key *k, sigil_err *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *legacy = NULL;
	const unsigned char *p = k->bits;
	const ec_curve *c;
	int r;

	switch (k->alg) {
	case SIGIL_KEY_RSA2048:
	case SIGIL_KEY_RSA3072:
	case SIGIL_KEY_RSA4096:
		legacy = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)k->len);
		break;
	case SIGIL_KEY_ECDSA_P256:
	case SIGIL_KEY_ECDSA_P384:
		r = ec_curve_get(k->alg, &c, err);
		if (r < 0)
			return r;
		legacy = EVP_PKEY_dup(c->legacy);
		if (legacy && !d2i_PublicKey(EVP_PKEY_EC, &legacy, &p, (long)k->len)) {
			EVP_PKEY_free(legacy);
			legacy = NULL;
		}
		break;
	case SIGIL_KEY_ED25519:
		if (!X509_set_pubkey(x, k->pkey))
			return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set public key");
		return 0;
	case SIGIL_KEY__COUNT:
	default:
		return sigil_err_set(err, SIGIL_E_INTERNAL, "unknown key algorithm %d", (int)k->alg);
	}
	if (!legacy || p != k->bits + k->len || !X509_set_pubkey(x, legacy))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set public key");
	return 0;
}

/* RSAPublicKey DER of an RSA key, from its two numbers: i2d_PublicKey
 * would run the 3.0 encoder on a provider key. */
static int rsa_pub_der_of(EVP_PKEY *pkey, unsigned char **ret, size_t *ret_len, sigil_err *err)
{
	_cleanup_(rsa_pub_der_freep) rsa_pub_der *rp = NULL;
	_cleanup_(BN_freep) BIGNUM *n = NULL;
	_cleanup_(BN_freep) BIGNUM *e = NULL;
	unsigned char *der = NULL;
	int len;

	rp = (rsa_pub_der *)ASN1_item_new(ASN1_ITEM_rptr(rsa_pub_der));
	if (!rp)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
	    !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) ||
	    !BN_to_ASN1_INTEGER(n, rp->n) || !BN_to_ASN1_INTEGER(e, rp->e))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot read the RSA public key");
	len = ASN1_item_i2d((ASN1_VALUE *)rp, &der, ASN1_ITEM_rptr(rsa_pub_der));
	if (len <= 0)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot encode the RSA public key");
	*ret = der;
	*ret_len = (size_t)len;
	return 0;
}

/* ---- reading a CSR ----------------------------------------------------------- */

#define CA_OID_TEXT 80

static const char *oid_text(const ASN1_OBJECT *obj, char buf[CA_OID_TEXT])
{
	if (OBJ_obj2txt(buf, CA_OID_TEXT, obj, 0) <= 0)
		snprintf(buf, CA_OID_TEXT, "(unreadable OID)");
	return buf;
}

static int unsupported_key(const char *what, sigil_err *err)
{
	return sigil_err_set(err, SIGIL_E_INVALID,
			     "CSR key type %s is not supported (use rsa-2048/3072/4096, ecdsa-p256/p384 or ed25519)",
			     what);
}

/* RSAPublicKey inside the BIT STRING: both integers positive, an odd
 * modulus of one of our sizes, an odd exponent above 1 (e = 1 would make
 * any "signature" verify). */
static int spki_read_rsa(const uint8_t *bits, size_t len, sigil_keyalg *ret, sigil_err *err)
{
	_cleanup_(rsa_pub_der_freep) rsa_pub_der *rp = NULL;
	_cleanup_(BN_freep) BIGNUM *n = NULL;
	_cleanup_(BN_freep) BIGNUM *e = NULL;
	const unsigned char *p = bits;
	char what[32];

	rp = (rsa_pub_der *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(rsa_pub_der));
	if (!rp || p != bits + len)
		return sigil_err_ssl(err, SIGIL_E_INVALID, "CSR RSA public key is not a valid RSAPublicKey");
	if (ASN1_STRING_type(rp->n) != V_ASN1_INTEGER || ASN1_STRING_type(rp->e) != V_ASN1_INTEGER)
		return sigil_err_set(err, SIGIL_E_INVALID, "CSR RSA public key has a negative number");
	n = ASN1_INTEGER_to_BN(rp->n, NULL);
	e = ASN1_INTEGER_to_BN(rp->e, NULL);
	if (!n || !e)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	switch (BN_num_bits(n)) {
	case 2048:
		*ret = SIGIL_KEY_RSA2048;
		break;
	case 3072:
		*ret = SIGIL_KEY_RSA3072;
		break;
	case 4096:
		*ret = SIGIL_KEY_RSA4096;
		break;
	default:
		snprintf(what, sizeof(what), "RSA %d", BN_num_bits(n));
		return unsupported_key(what, err);
	}
	if (!BN_is_odd(n) || !BN_is_odd(e) || BN_is_one(e))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "CSR RSA public key is malformed (even modulus or exponent, or exponent 1)");
	return 0;
}

/* Identifies the key of a SubjectPublicKeyInfo and checks its encoding:
 * RFC 3279 2.3.1 (RSA), RFC 5480 2.1.1 and 2.2 (EC, named curves only),
 * RFC 8410 3 and 4 (Ed25519). */
static int spki_read(const csr_spki *spki, leaf_key *ret, sigil_err *err)
{
	const ASN1_OBJECT *oid = NULL;
	const void *pval = NULL;
	int ptype = V_ASN1_UNDEF;
	const ASN1_BIT_STRING *bs = spki->public_key;
	const uint8_t *bits = ASN1_STRING_get0_data(bs);
	size_t len = (size_t)ASN1_STRING_length(bs);
	char txt[CA_OID_TEXT], what[CA_OID_TEXT + 8];
	leaf_key k = { .bits = bits, .len = len };
	const ec_curve *c;
	int nid, r;

	X509_ALGOR_get0(&oid, &ptype, &pval, spki->algor);
	nid = OBJ_obj2nid(oid);
	/* Every key we take is a whole number of octets. */
	if ((bs->flags & ASN1_STRING_FLAG_BITS_LEFT) && (bs->flags & 0x07))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "CSR public key is not a whole number of octets");
	switch (nid) {
	case NID_rsaEncryption:
		/* RFC 3279: parameters NULL; absent is tolerated as OpenSSL does. */
		if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "CSR RSA key has unexpected algorithm parameters");
		r = spki_read_rsa(bits, len, &k.alg, err);
		if (r < 0)
			return r;
		break;
	case NID_X9_62_id_ecPublicKey:
		if (ptype != V_ASN1_OBJECT)
			return unsupported_key("EC with explicit or missing curve parameters", err);
		switch (OBJ_obj2nid(pval)) {
		case NID_X9_62_prime256v1:
			k.alg = SIGIL_KEY_ECDSA_P256;
			break;
		case NID_secp384r1:
			k.alg = SIGIL_KEY_ECDSA_P384;
			break;
		default:
			snprintf(what, sizeof(what), "EC %s", oid_text(pval, txt));
			return unsupported_key(what, err);
		}
		r = ec_curve_get(k.alg, &c, err);
		if (r < 0)
			return r;
		if (!ec_point_form_ok(c, bits, len))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "CSR EC public key is not an uncompressed or compressed point of curve %s (RFC 5480 2.2)",
					     c->group);
		break;
	case NID_ED25519:
		if (ptype != V_ASN1_UNDEF)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "CSR Ed25519 key has algorithm parameters (RFC 8410: absent)");
		if (len != 32)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "CSR Ed25519 public key is %zu bytes long, not 32", len);
		k.alg = SIGIL_KEY_ED25519;
		break;
	default:
		return unsupported_key(nid != NID_undef ? OBJ_nid2sn(nid) : oid_text(oid, txt), err);
	}
	*ret = k;
	return 0;
}

/* The signature algorithms a CSR may use, by key kind. */
enum key_kind { KIND_RSA, KIND_EC, KIND_ED25519 };

static enum key_kind key_kind_of(sigil_keyalg alg)
{
	switch (alg) {
	case SIGIL_KEY_ECDSA_P256:
	case SIGIL_KEY_ECDSA_P384:
		return KIND_EC;
	case SIGIL_KEY_ED25519:
		return KIND_ED25519;
	case SIGIL_KEY_RSA2048:
	case SIGIL_KEY_RSA3072:
	case SIGIL_KEY_RSA4096:
	case SIGIL_KEY__COUNT:
	default:
		return KIND_RSA;
	}
}

static const struct {
	int nid;
	enum key_kind kind;
	const EVP_MD *(*md)(void); /* NULL: EdDSA hashes internally */
} csr_sig_algs[] = {
	{ NID_ecdsa_with_SHA256, KIND_EC, EVP_sha256 },
	{ NID_ecdsa_with_SHA384, KIND_EC, EVP_sha384 },
	{ NID_ecdsa_with_SHA512, KIND_EC, EVP_sha512 },
	{ NID_sha256WithRSAEncryption, KIND_RSA, EVP_sha256 },
	{ NID_sha384WithRSAEncryption, KIND_RSA, EVP_sha384 },
	{ NID_sha512WithRSAEncryption, KIND_RSA, EVP_sha512 },
	{ NID_ED25519, KIND_ED25519, NULL },
};

/* The digest for the CSR's signature algorithm, which must suit its key. */
static int sig_alg_read(const X509_ALGOR *alg, const leaf_key *k, const EVP_MD **ret,
			sigil_err *err)
{
	const ASN1_OBJECT *oid = NULL;
	const void *pval = NULL;
	int ptype = V_ASN1_UNDEF;
	char txt[CA_OID_TEXT];
	int nid;

	X509_ALGOR_get0(&oid, &ptype, &pval, alg);
	nid = OBJ_obj2nid(oid);
	if (nid == NID_rsassaPss)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "CSR is signed with RSASSA-PSS, which is not accepted: sign it with sha256WithRSAEncryption");
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(csr_sig_algs); i++) {
		if (csr_sig_algs[i].nid != nid)
			continue;
		if (csr_sig_algs[i].kind != key_kind_of(k->alg))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "CSR is signed with %s, which does not go with its %s key",
					     oid_text(oid, txt), ca_keyalg_name(k->alg));
		/* RFC 5758 3.2 and RFC 8410 3: ECDSA and EdDSA parameters are
		 * absent; RFC 4055 5: the RSA ones are NULL, absent accepted. */
		if (ptype != V_ASN1_UNDEF && !(csr_sig_algs[i].kind == KIND_RSA && ptype == V_ASN1_NULL))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "CSR signature algorithm %s has unexpected parameters",
					     oid_text(oid, txt));
		*ret = csr_sig_algs[i].md ? csr_sig_algs[i].md() : NULL;
		return 0;
	}
	return sigil_err_set(err, SIGIL_E_INVALID,
			     "CSR signature algorithm %s is not accepted (use ECDSA or RSA PKCS#1 v1.5 with SHA-256/384/512, or Ed25519)",
			     oid_text(oid, txt));
}

/* Decodes and verifies a CSR: *ret_csr holds the decoded structure that
 * ret_key->bits points into, ret_key->pkey the key that verified it. */
static int csr_read(const uint8_t *der, size_t len, csr_asn1 **ret_csr, leaf_key *ret_key,
		    sigil_err *err)
{
	_cleanup_(csr_asn1_freep) csr_asn1 *csr = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *mctx = NULL;
	const unsigned char *p = der;
	const EVP_MD *md = NULL;
	const ASN1_BIT_STRING *sig;
	leaf_key k;
	int64_t version = -1;
	int r;

	if (!der || len == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "empty CSR");
	if (len > CA_MAX_CSR_DER)
		return sigil_err_set(err, SIGIL_E_LIMIT, "CSR of %zu bytes exceeds the limit of %d bytes",
				     len, CA_MAX_CSR_DER);
	ERR_clear_error();
	csr = (csr_asn1 *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(csr_asn1));
	if (!csr)
		return sigil_err_ssl(err, SIGIL_E_INVALID, "CSR is not valid DER");
	if (p != der + len)
		return sigil_err_set(err, SIGIL_E_INVALID, "CSR has %zu bytes of trailing data",
				     len - (size_t)(p - der));
	/* RFC 2986 4.1: version is 0 (v1); nothing else is defined. */
	if (!ASN1_INTEGER_get_int64(&version, csr->info->version) || version != 0) {
		ERR_clear_error();
		return sigil_err_set(err, SIGIL_E_INVALID, "CSR version is not 0 (PKCS#10 v1)");
	}
	r = spki_read(csr->info->spki, &k, err);
	if (r < 0)
		return r;
	r = key_from_bits(k.alg, k.bits, k.len, &pkey, err);
	if (r < 0)
		return r;
	r = sig_alg_read(csr->sig_alg, &k, &md, err);
	if (r < 0)
		return r;
	sig = csr->signature;
	if ((sig->flags & ASN1_STRING_FLAG_BITS_LEFT) && (sig->flags & 0x07))
		return sigil_err_set(err, SIGIL_E_INVALID, "CSR signature is not a whole number of octets");
	/* Proof of possession: the CSR is signed by the key it carries, over
	 * the CertificationRequestInfo exactly as received. */
	mctx = EVP_MD_CTX_new();
	if (!mctx)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	if (EVP_DigestVerifyInit(mctx, NULL, md, NULL, pkey) != 1 ||
	    EVP_DigestVerify(mctx, ASN1_STRING_get0_data(sig), (size_t)ASN1_STRING_length(sig),
			     csr->info->enc.enc, (size_t)csr->info->enc.len) != 1)
		return sigil_err_ssl(err, SIGIL_E_INVALID, "CSR signature does not verify");
	ERR_clear_error();
	k.pkey = TAKE_PTR(pkey);
	*ret_key = k;
	*ret_csr = TAKE_PTR(csr);
	return 0;
}

int ca_csr_parse(const uint8_t *der, size_t len, EVP_PKEY **ret_pubkey, sigil_err *err)
{
	_cleanup_(csr_asn1_freep) csr_asn1 *csr = NULL;
	leaf_key k;
	int r;

	r = csr_read(der, len, &csr, &k, err);
	if (r < 0)
		return r;
	*ret_pubkey = k.pkey;
	return 0;
}

static int issue_leaf(const ca_authority *ca, const leaf_key *key, const ca_leaf_request *req,
		      X509 **ret, sigil_err *err);

int ca_issue_from_csr(const ca_authority *ca, const uint8_t *csr_der, size_t csr_len,
		      const ca_leaf_request *req, X509 **ret, sigil_err *err)
{
	_cleanup_(csr_asn1_freep) csr_asn1 *csr = NULL;
	leaf_key k;
	int r;

	r = csr_read(csr_der, csr_len, &csr, &k, err);
	if (r < 0)
		return r;
	r = issue_leaf(ca, &k, req, ret, err);
	EVP_PKEY_free(k.pkey);
	return r;
}

/* ---- names ----------------------------------------------------------------- */

static int check_list(const char *what, const char *const *list, size_t n, sigil_err *err)
{
	if (n > 0 && !list)
		return sigil_err_set(err, SIGIL_E_INVALID, "%zu %s names given without a list", n, what);
	for (size_t i = 0; i < n; i++)
		if (!list[i])
			return sigil_err_set(err, SIGIL_E_INVALID, "%s name %zu is missing", what, i + 1);
	return 0;
}

/* Appends a GENERAL_NAME unless an equal one is already there. */
static int push_name(GENERAL_NAMES *gens, int type, const unsigned char *data, size_t len,
		     sigil_err *err)
{
	_cleanup_(GENERAL_NAME_freep) GENERAL_NAME *gen = NULL;
	ASN1_STRING *s;

	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		int t;
		const ASN1_STRING *have = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, i), &t);
		if (t != type || (size_t)ASN1_STRING_length(have) != len)
			continue;
		/* DNS names compare case-insensitively (RFC 4343). */
		if (type == GEN_DNS ? strncasecmp((const char *)ASN1_STRING_get0_data(have),
						  (const char *)data, len) == 0
				    : memcmp(ASN1_STRING_get0_data(have), data, len) == 0)
			return 0;
	}
	s = type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
	gen = GENERAL_NAME_new();
	if (!s || !gen || !ASN1_STRING_set(s, data, (int)len)) {
		ASN1_STRING_free(s);
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	}
	GENERAL_NAME_set0_value(gen, type, s);
	if (!sk_GENERAL_NAME_push(gens, gen))
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	gen = NULL;
	return 0;
}

/* Validates every requested name and builds the SAN list (possibly empty). */
static int build_sans(const ca_leaf_request *req, GENERAL_NAMES **ret, sigil_err *err)
{
	_cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	size_t total;
	int r;

	if (!gens)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	/* Each count is bounded first so that the sum cannot wrap. */
	if (req->n_dns > CA_MAX_SANS || req->n_ips > CA_MAX_SANS || req->n_uris > CA_MAX_SANS ||
	    (total = req->n_dns + req->n_ips + req->n_uris) > CA_MAX_SANS)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "too many subject alternative names: %zu DNS + %zu IP + %zu URI, the limit is %d in total",
				     req->n_dns, req->n_ips, req->n_uris, CA_MAX_SANS);
	if ((r = check_list("DNS", req->dns, req->n_dns, err)) < 0 ||
	    (r = check_list("IP", req->ips, req->n_ips, err)) < 0 ||
	    (r = check_list("URI", req->uris, req->n_uris, err)) < 0)
		return r;
	for (size_t i = 0; i < req->n_dns; i++) {
		char lower[CA_MAX_DNS_NAME_LEN + 1];
		size_t n;

		r = ca_names_check_dns(req->dns[i], req->allow_wildcards, err);
		if (r < 0)
			return r;
		/* Canonical lower case: relying parties compare case-insensitively. */
		n = strlen(req->dns[i]);
		for (size_t j = 0; j < n; j++) {
			char c = req->dns[i][j];
			lower[j] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		lower[n] = '\0';
		r = push_name(gens, GEN_DNS, (const unsigned char *)lower, n, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < req->n_ips; i++) {
		unsigned char ip[16];
		size_t n = 0;

		r = ca_names_parse_ip(req->ips[i], ip, &n, err);
		if (r < 0)
			return r;
		r = push_name(gens, GEN_IPADD, ip, n, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < req->n_uris; i++) {
		r = ca_names_check_uri(req->uris[i], err);
		if (r < 0)
			return r;
		r = push_name(gens, GEN_URI, (const unsigned char *)req->uris[i], strlen(req->uris[i]),
			      err);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(gens);
	return 0;
}

/* Subject: DC=... (most significant first) then CN, added to name (the
 * certificate's own, which X509_set_subject_name would copy). May end up
 * empty. */
static int build_subject(const ca_leaf_request *req, X509_NAME *name, sigil_err *err)
{
	char q[CA_QUOTE_LEN];
	int r;

	if (req->n_domain_components > CA_MAX_DC)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%zu domain components, the limit is %d",
				     req->n_domain_components, CA_MAX_DC);
	r = check_list("domain component", req->domain_components, req->n_domain_components, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < req->n_domain_components; i++) {
		const char *dc = req->domain_components[i];

		/* RFC 4519 dc: one DNS label. */
		if (strchr(dc, '.') || ca_names_check_dns(dc, false, NULL) < 0)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "domain component \"%s\" is not a single DNS label",
					     ca_names_quote(dc, q, sizeof(q)));
		if (!X509_NAME_add_entry_by_NID(name, NID_domainComponent, MBSTRING_ASC,
						(const unsigned char *)dc, -1, -1, 0))
			return sigil_err_ssl(err, SIGIL_E_INVALID, "bad domain component \"%s\"",
					     ca_names_quote(dc, q, sizeof(q)));
	}
	if (req->common_name && req->common_name[0] != '\0') {
		r = check_cn(req->common_name, err);
		if (r < 0)
			return r;
		if (!X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
						(const unsigned char *)req->common_name, -1, -1, 0))
			return sigil_err_ssl(err, SIGIL_E_INVALID,
					     "common name \"%s\" is not valid UTF-8 text",
					     ca_names_quote(req->common_name, q, sizeof(q)));
	}
	return 0;
}

/* ---- lifetime ------------------------------------------------------------ */

/* Uniform in [0, 1) with 53 random bits. */
static int random_unit(double *ret, sigil_err *err)
{
	uint64_t v;

	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot draw random jitter");
	*ret = (double)(v >> 11) * (1.0 / 9007199254740992.0);
	return 0;
}

static const char *ca_subject_text(const ca_authority *ca, char buf[CA_QUOTE_LEN])
{
	if (!X509_NAME_oneline(X509_get_subject_name(ca->cert), buf, CA_QUOTE_LEN))
		snprintf(buf, CA_QUOTE_LEN, "(unprintable name)");
	return buf;
}

static int leaf_lifetime(const ca_authority *ca, const ca_leaf_request *req, time_t now,
			 int64_t *ret, sigil_err *err)
{
	char q[CA_QUOTE_LEN], d[CA_DATE_BUF];
	int64_t max = req->max_lifetime_secs ? req->max_lifetime_secs : CA_DEFAULT_MAX_LEAF_LIFETIME_SECS;
	int64_t lifetime = req->lifetime_secs;
	time_t ca_end = ca_authority_not_after(ca);
	time_t ca_start = ca_authority_not_before(ca);
	int64_t ca_room;
	double f = req->jitter_factor;

	if (lifetime <= 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "requested lifetime %lld s must be positive",
				     (long long)lifetime);
	if (max < 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "maximum lifetime %lld s must not be negative",
				     (long long)max);
	if (req->ca_retirement_secs < 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "CA retirement %lld s must not be negative",
				     (long long)req->ca_retirement_secs);
	if (!(f >= 0.0 && f < 1.0))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "jitter factor %g must be at least 0 and below 1", f);
	/* The CA's name is only formatted for an error. */
	if (now < ca_start)
		return sigil_err_set(err, SIGIL_E_PRECOND, "CA \"%s\" is not valid until %s",
				     ca_subject_text(ca, q), fmt_time(ca_start, d));
	/* A leaf must end `retirement` before its CA does (Stackable
	 * caCertificateRetirementDuration). */
	/* Subtracting in this order cannot overflow: both times are real
	 * dates, and the retirement is only subtracted when it is smaller. */
	ca_room = (int64_t)ca_end - (int64_t)now;
	ca_room = req->ca_retirement_secs < ca_room ? ca_room - req->ca_retirement_secs : 0;
	if (lifetime > max)
		lifetime = max;
	if (lifetime > ca_room)
		lifetime = ca_room;
	if (lifetime <= 0)
		return sigil_err_set(err, SIGIL_E_PRECOND,
				     "CA \"%s\" expires on %s: with a retirement of %lld s it is too close to expiry to sign (rotate the CA)",
				     ca_subject_text(ca, q), fmt_time(ca_end, d), (long long)req->ca_retirement_secs);
	if (f > 0.0) {
		double u = 0.0;
		int r = random_unit(&u, err);
		if (r < 0)
			return r;
		/* Spreads renewals of certificates issued together.  u < 1 and
		 * f < 1, so the cut is below the lifetime and at least 1 s stays. */
		int64_t cut = (int64_t)(u * f * (double)lifetime); /* >= 0: truncation is floor */
		if (cut >= lifetime)
			cut = lifetime - 1;
		lifetime -= cut;
	}
	*ret = lifetime;
	return 0;
}

/* ---- issuing ------------------------------------------------------------- */

static int add_eku(X509 *x, sigil_err *err)
{
	_cleanup_(eku_freep) EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();

	if (!eku || !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)) ||
	    !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)))
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	if (X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_REPLACE) != 1)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot add extendedKeyUsage");
	return 0;
}

static unsigned int leaf_key_usage(sigil_keyalg alg)
{
	/* RFC 5280 4.2.1.3 and RFC 8446: RSA key transport needs
	 * keyEncipherment; ECDSA and EdDSA keys only sign. */
	return ca_keyalg_is_rsa(alg) ? KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT : KU_DIGITAL_SIGNATURE;
}

static int check_signer(const ca_authority *ca, sigil_err *err)
{
	if (!ca || !ca->cert || !ca->key)
		return sigil_err_set(err, SIGIL_E_INVALID, "no CA to sign with");
	return 0;
}

int ca_issue_from_pubkey(const ca_authority *ca, EVP_PKEY *pubkey, const ca_leaf_request *req,
			 X509 **ret, sigil_err *err)
{
	_cleanup_(sigil_openssl_freep) unsigned char *rsa_der = NULL;
	_cleanup_(sigil_openssl_freep) unsigned char *point = NULL;
	leaf_key k = { .pkey = pubkey };
	char desc[64];
	int r;

	r = check_signer(ca, err);
	if (r < 0)
		return r;
	if (!pubkey || !req)
		return sigil_err_set(err, SIGIL_E_INVALID, "no public key or request to sign");
	if (ca_key_alg(pubkey, &k.alg) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "key type %s is not supported (use rsa-2048/3072/4096, ecdsa-p256/p384 or ed25519)",
				     ca_key_describe(pubkey, desc, sizeof(desc)));
	/* The raw key bits, for the same path as a CSR's key. */
	switch (k.alg) {
	case SIGIL_KEY_RSA2048:
	case SIGIL_KEY_RSA3072:
	case SIGIL_KEY_RSA4096:
		r = rsa_pub_der_of(pubkey, &rsa_der, &k.len, err);
		if (r < 0)
			return r;
		k.bits = rsa_der;
		break;
	case SIGIL_KEY_ECDSA_P256:
	case SIGIL_KEY_ECDSA_P384:
		k.len = EVP_PKEY_get1_encoded_public_key(pubkey, &point);
		if (k.len == 0)
			return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot read the EC public key");
		k.bits = point;
		break;
	case SIGIL_KEY_ED25519:
		break;
	case SIGIL_KEY__COUNT:
	default:
		return sigil_err_set(err, SIGIL_E_INTERNAL, "unknown key algorithm %d", (int)k.alg);
	}
	return issue_leaf(ca, &k, req, ret, err);
}

static int issue_leaf(const ca_authority *ca, const leaf_key *key, const ca_leaf_request *req,
		      X509 **ret, sigil_err *err)
{
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *sans = NULL;
	X509_NAME *subject;
	time_t now, not_before;
	int64_t lifetime = 0;
	int r;

	r = check_signer(ca, err);
	if (r < 0)
		return r;
	if (!req)
		return sigil_err_set(err, SIGIL_E_INVALID, "no public key or request to sign");
	x = X509_new();
	if (!x)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	subject = X509_get_subject_name(x);
	r = build_subject(req, subject, err);
	if (r < 0)
		return r;
	r = build_sans(req, &sans, err);
	if (r < 0)
		return r;
	/* Domain components alone do not name a TLS peer. */
	if (sk_GENERAL_NAME_num(sans) == 0 && !(req->common_name && req->common_name[0]))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "the certificate would carry no name: give a common name or at least one DNS, IP or URI name");
	/* now == 0 (1970) is never a sensible issuance time: take the wall clock. */
	now = req->now ? req->now : time(NULL);
	r = leaf_lifetime(ca, req, now, &lifetime, err);
	if (r < 0)
		return r;
	/* Backdated for clock skew, but never before the CA itself. */
	not_before = now - CA_BACKDATE_SECS;
	if (not_before < ca_authority_not_before(ca))
		not_before = ca_authority_not_before(ca);

	if (!X509_set_version(x, X509_VERSION_3))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set certificate version");
	r = ca_cert_set_random_serial(x, err);
	if (r < 0)
		return r;
	if (!X509_set_issuer_name(x, X509_get_subject_name(ca->cert)))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set the issuer name");
	r = ca_cert_set_validity(x, not_before, now + (time_t)lifetime, err);
	if (r < 0)
		return r;
	r = cert_set_key(x, key, err);
	if (r < 0)
		return r;
	r = ca_cert_add_basic_constraints(x, false, err);
	if (r < 0)
		return r;
	r = ca_cert_add_key_usage(x, leaf_key_usage(key->alg), err);
	if (r < 0)
		return r;
	r = add_eku(x, err);
	if (r < 0)
		return r;
	if (sk_GENERAL_NAME_num(sans) > 0) {
		/* RFC 5280 4.2.1.6: critical when the subject is empty. */
		int critical = X509_NAME_entry_count(subject) == 0;
		if (X509_add1_ext_i2d(x, NID_subject_alt_name, sans, critical, X509V3_ADD_REPLACE) != 1)
			return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot add subjectAltName");
	}
	r = ca_cert_add_key_ids(x, ca->cert, err);
	if (r < 0)
		return r;
	r = ca_authority_sign_cert(ca, x, err);
	if (r < 0)
		return sigil_err_prefix(err, "signing with the CA key: ");
	*ret = TAKE_PTR(x);
	return 0;
}

bool ca_cert_has_ip_san(X509 *cert)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	bool found = false;

	for (int i = 0; gens && !found && i < sk_GENERAL_NAME_num(gens); i++)
		found = sk_GENERAL_NAME_value(gens, i)->type == GEN_IPADD;
	GENERAL_NAMES_free(gens);
	return found;
}
