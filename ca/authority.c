/* Certificate authorities: generating a self-signed root, importing a
 * company CA (certificate, key, chain) and the certificate building blocks
 * that issue.c shares. */
#include "ca/authority.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "util/fs.h"
#include "util/mem.h"

/* A CA lifetime beyond this is a typo; it also keeps now + lifetime far
 * from time_t and ASN.1 GeneralizedTime (year 9999) limits. */
#define CA_MAX_LIFETIME_SECS (100LL * 365 * 86400)
/* A PEM file holding a CA certificate or a chain of CA_MAX_CHAIN of them. */
#define CA_MAX_CERT_PEM (1024u * 1024)
/* The passphrase file: only its first line is used. */
#define CA_MAX_PASSPHRASE_FILE 4096u
/* Human-readable names and dates in error messages. */
#define CA_NAME_BUF 256
#define CA_DATE_BUF 32

SIGIL_DEFINE_CLEANUP(BIO, BIO_free_all)
SIGIL_DEFINE_CLEANUP(X509, X509_free)
SIGIL_DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
SIGIL_DEFINE_CLEANUP(X509_NAME, X509_NAME_free)
SIGIL_DEFINE_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)
SIGIL_DEFINE_CLEANUP(ASN1_OCTET_STRING, ASN1_OCTET_STRING_free)
SIGIL_DEFINE_CLEANUP(ASN1_BIT_STRING, ASN1_BIT_STRING_free)
SIGIL_DEFINE_CLEANUP(BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free)
SIGIL_DEFINE_CLEANUP(AUTHORITY_KEYID, AUTHORITY_KEYID_free)
SIGIL_DEFINE_CLEANUP(ca_authority, ca_authority_free)

static void x509_stack_free(STACK_OF(X509) *s)
{
	sk_X509_pop_free(s, X509_free);
}
SIGIL_DEFINE_CLEANUP(STACK_OF(X509), x509_stack_free)

static void freep_secret_bytes(uint8_t **p, size_t len)
{
	sigil_freezero(*p, len);
	*p = NULL;
}

/* ---- small helpers ------------------------------------------------------- */

static const char *fmt_time(time_t t, char buf[CA_DATE_BUF])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, CA_DATE_BUF, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, CA_DATE_BUF, "@%lld", (long long)t);
	return buf;
}

static const char *fmt_name(const X509_NAME *name, char buf[CA_NAME_BUF])
{
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;

	snprintf(buf, CA_NAME_BUF, "(unprintable name)");
	if (!bio || !name)
		return buf;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0)
		return buf;
	n = BIO_get_mem_data(bio, &data);
	if (n == 0)
		snprintf(buf, CA_NAME_BUF, "(empty name)");
	else if (n > 0 && data)
		snprintf(buf, CA_NAME_BUF, "%.*s", (int)(n < CA_NAME_BUF ? n : CA_NAME_BUF - 1), data);
	return buf;
}

static const char *fmt_subject(X509 *x, char buf[CA_NAME_BUF])
{
	return fmt_name(X509_get_subject_name(x), buf);
}

time_t ca_asn1_time_to_time_t(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	/* 0 (1970) for an unreadable time, which makes any validity check fail. */
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

time_t ca_authority_not_after(const ca_authority *ca)
{
	if (!ca || !ca->cert)
		return 0;
	return ca_asn1_time_to_time_t(X509_get0_notAfter(ca->cert));
}

time_t ca_authority_not_before(const ca_authority *ca)
{
	if (!ca || !ca->cert)
		return 0;
	return ca_asn1_time_to_time_t(X509_get0_notBefore(ca->cert));
}

void ca_authority_free(ca_authority *ca)
{
	if (!ca)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	sk_X509_pop_free(ca->chain, X509_free);
	X509_free(ca->root);
	EVP_MD_CTX_free(ca->sign_ctx);
	free(ca);
}

/* ---- certificate building blocks ------------------------------------------ */

int ca_cert_set_random_serial(X509 *x, sigil_err *err)
{
	unsigned char raw[CA_SERIAL_BYTES];
	size_t skip = 0;

	/* RFC 5280 4.1.2.2: positive, at most 20 octets; CA/B Forum BR 7.1:
	 * at least 64 bits from a CSPRNG.  Clearing the top bit keeps the DER
	 * INTEGER at CA_SERIAL_BYTES octets at most (no 0x00 sign pad). */
	do {
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot draw a random serial");
		raw[0] &= 0x7f;
		for (skip = 0; skip < sizeof(raw) && raw[skip] == 0; skip++)
			;
	} while (skip == sizeof(raw));
	/* Written in place as the INTEGER's magnitude, without leading zero
	 * octets (DER minimal encoding), rather than through a BIGNUM and a
	 * copy. */
	if (!ASN1_STRING_set(X509_get_serialNumber(x), raw + skip, (int)(sizeof(raw) - skip)))
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot set serial number");
	return 0;
}

int ca_cert_set_validity(X509 *x, time_t not_before, time_t not_after, sigil_err *err)
{
	if (not_after <= not_before)
		return sigil_err_set(err, SIGIL_E_INVALID, "notAfter must be later than notBefore");
	/* ASN1_TIME_set picks UTCTime before 2050 and GeneralizedTime after,
	 * as RFC 5280 4.1.2.5 requires. */
	if (!ASN1_TIME_set(X509_getm_notBefore(x), not_before) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), not_after))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set validity");
	return 0;
}

int ca_cert_add_basic_constraints(X509 *x, bool is_ca, sigil_err *err)
{
	_cleanup_(BASIC_CONSTRAINTS_freep) BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();

	if (!bc)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot build basicConstraints");
	/* DER: a FALSE default is omitted, which ASN1_BOOLEAN 0 does. */
	bc->ca = is_ca ? 0xff : 0;
	/* RFC 5280 4.2.1.9: MUST be critical in CA certificates. */
	if (X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_REPLACE) != 1)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot add basicConstraints");
	return 0;
}

int ca_cert_add_key_usage(X509 *x, unsigned int ku_flags, sigil_err *err)
{
	/* KU_* flags are the first octet of the BIT STRING (bit 0 = 0x80) plus
	 * decipherOnly (bit 8) as 0x8000. */
	static const struct {
		unsigned int flag;
		int bit;
	} map[] = {
		{ KU_DIGITAL_SIGNATURE, 0 }, { KU_NON_REPUDIATION, 1 }, { KU_KEY_ENCIPHERMENT, 2 },
		{ KU_DATA_ENCIPHERMENT, 3 }, { KU_KEY_AGREEMENT, 4 },   { KU_KEY_CERT_SIGN, 5 },
		{ KU_CRL_SIGN, 6 },          { KU_ENCIPHER_ONLY, 7 },   { KU_DECIPHER_ONLY, 8 },
	};
	_cleanup_(ASN1_BIT_STRING_freep) ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	unsigned int seen = 0;

	if (!ku)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot build keyUsage");
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(map); i++) {
		if (!(ku_flags & map[i].flag))
			continue;
		if (!ASN1_BIT_STRING_set_bit(ku, map[i].bit, 1))
			return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot build keyUsage");
		seen |= map[i].flag;
	}
	if (seen == 0 || seen != ku_flags)
		return sigil_err_set(err, SIGIL_E_INTERNAL, "bad keyUsage flags 0x%x", ku_flags);
	/* RFC 5280 4.2.1.3: conforming CAs SHOULD mark it critical. */
	if (X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_REPLACE) != 1)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot add keyUsage");
	return 0;
}

static int pubkey_key_id(X509 *x, ASN1_OCTET_STRING **ret, sigil_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	ASN1_OCTET_STRING *os;

	/* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
	if (!X509_pubkey_digest(x, EVP_sha1(), md, &md_len))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot hash public key");
	os = ASN1_OCTET_STRING_new();
	if (!os || !ASN1_OCTET_STRING_set(os, md, (int)md_len)) {
		ASN1_OCTET_STRING_free(os);
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot build key identifier");
	}
	*ret = os;
	return 0;
}

int ca_cert_add_key_ids(X509 *x, X509 *issuer, sigil_err *err)
{
	_cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *ski = NULL;
	_cleanup_(AUTHORITY_KEYID_freep) AUTHORITY_KEYID *aki = AUTHORITY_KEYID_new();
	int r;

	if (!aki)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot build authorityKeyIdentifier");
	r = pubkey_key_id(x, &ski, err);
	if (r < 0)
		return r;
	if (X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, X509V3_ADD_REPLACE) != 1)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot add subjectKeyIdentifier");
	if (!issuer) {
		aki->keyid = TAKE_PTR(ski);
	} else {
		/* RFC 5280 4.2.1.1: the AKI keyid is the issuer's SKI when it has one. */
		const ASN1_OCTET_STRING *iski = X509_get0_subject_key_id(issuer);
		if (iski) {
			aki->keyid = ASN1_OCTET_STRING_dup(iski);
			if (!aki->keyid)
				return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot copy key identifier");
		} else {
			r = pubkey_key_id(issuer, &aki->keyid, err);
			if (r < 0)
				return r;
		}
	}
	if (X509_add1_ext_i2d(x, NID_authority_key_identifier, aki, 0, X509V3_ADD_REPLACE) != 1)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot add authorityKeyIdentifier");
	return 0;
}

int ca_cert_sign(X509 *x, EVP_PKEY *key, sigil_err *err)
{
	const EVP_MD *md = NULL;
	int r = ca_key_sign_digest(key, &md, err);

	if (r < 0)
		return r;
	if (X509_sign(x, key, md) <= 0)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot sign certificate");
	return 0;
}

/* A DigestSign context for key, for ca->sign_ctx. */
static int sign_ctx_new(EVP_PKEY *key, EVP_MD_CTX **ret, sigil_err *err)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const EVP_MD *md = NULL;
	int r;

	if (!ctx)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	r = ca_key_sign_digest(key, &md, err);
	if (r < 0)
		return r;
	if (EVP_DigestSignInit(ctx, NULL, md, NULL, key) != 1)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set up signing with the CA key");
	*ret = TAKE_PTR(ctx);
	return 0;
}

int ca_authority_prepare(ca_authority *ca, sigil_err *err)
{
	if (!ca || !ca->cert || !ca->key)
		return sigil_err_set(err, SIGIL_E_INVALID, "no CA certificate and key to prepare");
	if (ca->sign_ctx)
		return 0;
	return sign_ctx_new(ca->key, &ca->sign_ctx, err);
}

int ca_authority_sign_cert(const ca_authority *ca, X509 *x, sigil_err *err)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;

	if (!ca || !ca->key)
		return sigil_err_set(err, SIGIL_E_INVALID, "no CA to sign with");
	if (!ca->sign_ctx)
		return ca_cert_sign(x, ca->key, err);
	/* Setting up a DigestSign context fetches the signature and digest
	 * implementations by name each time (~10 us for ECDSA); a copy of
	 * one made up front skips that.  EVP_MD_CTX_copy_ex only reads its
	 * source (const), so concurrent issuers may share ca->sign_ctx. */
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	if (!EVP_MD_CTX_copy_ex(ctx, ca->sign_ctx))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set up signing with the CA key");
	if (X509_sign_ctx(x, ctx) <= 0)
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot sign certificate");
	return 0;
}

/* ---- PEM helpers ------------------------------------------------------------ */

int ca_certs_from_pem(const char *pem, size_t len, size_t max, STACK_OF(X509) **ret,
		      sigil_err *err)
{
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	_cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;

	if (!pem || len == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "no PEM certificate found (empty input)");
	if (len > SIGIL_MAX_FILE_SIZE)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "PEM input of %zu bytes exceeds the limit of %u bytes", len,
				     SIGIL_MAX_FILE_SIZE);
	if (max == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "no certificate allowed here");
	bio = BIO_new_mem_buf(pem, (int)len);
	certs = sk_X509_new_null();
	if (!bio || !certs)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	ERR_clear_error();
	for (;;) {
		char *name = NULL, *header = NULL;
		unsigned char *data = NULL;
		const unsigned char *p;
		long dlen = 0;
		X509 *x;
		int n = sk_X509_num(certs);

		if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
			unsigned long e = ERR_peek_last_error();
			bool eof = ERR_GET_LIB(e) == ERR_LIB_PEM &&
				   ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
			if (eof && n > 0) {
				ERR_clear_error();
				break;
			}
			if (eof)
				return sigil_err_ssl(err, SIGIL_E_INVALID, "no PEM certificate found");
			return sigil_err_ssl(err, SIGIL_E_INVALID,
					     "malformed PEM block after %d certificate(s)", n);
		}
		/* PEM_read_bio_X509 would silently skip other blocks, such as a
		 * private key pasted into a certificate file: refuse them. */
		if (strcmp(name, PEM_STRING_X509) != 0 && strcmp(name, PEM_STRING_X509_OLD) != 0) {
			int r = sigil_err_set(err, SIGIL_E_INVALID,
					      "unexpected PEM block \"%.40s\" (expected CERTIFICATE)", name);
			OPENSSL_free(name);
			OPENSSL_free(header);
			OPENSSL_clear_free(data, dlen > 0 ? (size_t)dlen : 0);
			return r;
		}
		OPENSSL_free(name);
		if (header[0] != '\0') {
			OPENSSL_free(header);
			OPENSSL_free(data);
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "certificate %d has unexpected PEM headers", n + 1);
		}
		OPENSSL_free(header);
		if ((size_t)n >= max) {
			OPENSSL_free(data);
			return sigil_err_set(err, SIGIL_E_LIMIT,
					     "more than %zu certificates in PEM input", max);
		}
		p = data;
		x = d2i_X509(NULL, &p, dlen);
		if (!x || p != data + dlen) {
			X509_free(x);
			OPENSSL_free(data);
			return sigil_err_ssl(err, SIGIL_E_INVALID, "certificate %d is not valid DER",
					     n + 1);
		}
		OPENSSL_free(data);
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
	}
	*ret = TAKE_PTR(certs);
	return 0;
}

int ca_certs_to_pem(STACK_OF(X509) *certs, char **ret, size_t *len, sigil_err *err)
{
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;
	char *out;

	if (!certs)
		return sigil_err_set(err, SIGIL_E_INVALID, "no certificates");
	if (!bio)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot allocate BIO");
	for (int i = 0; i < sk_X509_num(certs); i++)
		if (!PEM_write_bio_X509(bio, sk_X509_value(certs, i)))
			return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot encode certificate %d", i + 1);
	n = BIO_get_mem_data(bio, &data);
	if (n < 0)
		return sigil_err_set(err, SIGIL_E_INTERNAL, "cannot read PEM buffer");
	out = malloc((size_t)n + 1);
	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (n > 0)
		memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*ret = out;
	*len = (size_t)n;
	return 0;
}

/* ---- creating a root -------------------------------------------------------- */

/* Printable text without control characters: it ends up in logs and in
 * every relying party's UI. */
static int check_name_value(const char *what, const char *v, size_t max, sigil_err *err)
{
	size_t n = strlen(v);

	if (n == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "CA %s must not be empty", what);
	if (n > max)
		return sigil_err_set(err, SIGIL_E_LIMIT, "CA %s \"%.64s...\" is %zu bytes, the limit is %zu",
				     what, v, n, max);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c == 0x7f)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "CA %s contains a control character at offset %zu", what, i);
	}
	return 0;
}

int ca_authority_create(const ca_create_opts *opts, ca_authority **ret, sigil_err *err)
{
	/* ub-common-name and ub-organization-name (RFC 5280 appendix A). */
	const size_t max_name = 64;
	const char *cn;
	int64_t lifetime;
	time_t now;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_(X509_NAME_freep) X509_NAME *name = NULL;
	_cleanup_(ca_authority_freep) ca_authority *ca = NULL;
	int r;

	if (!opts)
		return sigil_err_set(err, SIGIL_E_INVALID, "no CA options");
	cn = opts->common_name ? opts->common_name : "sigil CA";
	r = check_name_value("common name", cn, max_name, err);
	if (r < 0)
		return r;
	if (opts->organization) {
		r = check_name_value("organization", opts->organization, max_name, err);
		if (r < 0)
			return r;
	}
	lifetime = opts->lifetime_secs ? opts->lifetime_secs : CA_DEFAULT_LIFETIME_SECS;
	if (lifetime <= CA_BACKDATE_SECS || lifetime > CA_MAX_LIFETIME_SECS)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "CA lifetime of %lld seconds is out of range (%d s .. %lld s)",
				     (long long)lifetime, CA_BACKDATE_SECS + 1,
				     (long long)CA_MAX_LIFETIME_SECS);
	/* now == 0 (1970) is never a sensible notBefore: take the wall clock. */
	now = opts->now ? opts->now : time(NULL);

	r = ca_key_generate(opts->alg, &key, err);
	if (r < 0)
		return r;
	x = X509_new();
	name = X509_NAME_new();
	if (!x || !name)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	if (!X509_set_version(x, X509_VERSION_3))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set certificate version");
	r = ca_cert_set_random_serial(x, err);
	if (r < 0)
		return r;
	if (opts->organization &&
	    !X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
					(const unsigned char *)opts->organization, -1, -1, 0))
		return sigil_err_ssl(err, SIGIL_E_INVALID, "bad CA organization");
	if (!X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0))
		return sigil_err_ssl(err, SIGIL_E_INVALID, "bad CA common name");
	if (!X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set CA name");
	/* Backdated so that relying parties with slightly slow clocks accept it. */
	r = ca_cert_set_validity(x, now - CA_BACKDATE_SECS, now + (time_t)lifetime, err);
	if (r < 0)
		return r;
	if (!X509_set_pubkey(x, key))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set CA public key");
	r = ca_cert_add_basic_constraints(x, true, err);
	if (r < 0)
		return r;
	r = ca_cert_add_key_usage(x, KU_KEY_CERT_SIGN | KU_CRL_SIGN, err);
	if (r < 0)
		return r;
	r = ca_cert_add_key_ids(x, NULL, err);
	if (r < 0)
		return r;
	r = ca_cert_sign(x, key, err);
	if (r < 0)
		return r;

	ca = calloc(1, sizeof(*ca));
	if (!ca)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	ca->chain = sk_X509_new_null();
	if (!ca->chain)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = sign_ctx_new(key, &ca->sign_ctx, err);
	if (r < 0)
		return r;
	ca->cert = TAKE_PTR(x);
	ca->key = TAKE_PTR(key);
	*ret = TAKE_PTR(ca);
	return 0;
}

/* ---- importing a company CA ------------------------------------------------- */

/* A certificate that may sign others: basicConstraints CA:TRUE, and
 * keyCertSign when keyUsage is present (RFC 5280 4.2.1.3, 4.2.1.9). */
static int check_is_ca(X509 *x, const char *what, sigil_err *err)
{
	uint32_t flags = X509_get_extension_flags(x);
	char nbuf[CA_NAME_BUF];

	if (flags & EXFLAG_INVALID)
		return sigil_err_set(err, SIGIL_E_INVALID, "%s \"%s\" has malformed extensions", what,
				     fmt_subject(x, nbuf));
	if (!(flags & EXFLAG_BCONS))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "%s \"%s\" is not a CA (no basicConstraints extension)", what,
				     fmt_subject(x, nbuf));
	if (!(flags & EXFLAG_CA))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "%s \"%s\" is not a CA (basicConstraints CA:FALSE)", what,
				     fmt_subject(x, nbuf));
	if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "%s \"%s\" is not a CA (keyUsage lacks keyCertSign)", what,
				     fmt_subject(x, nbuf));
	return 0;
}

static int check_validity(X509 *x, const char *what, time_t now, sigil_err *err)
{
	time_t nb = ca_asn1_time_to_time_t(X509_get0_notBefore(x));
	time_t na = ca_asn1_time_to_time_t(X509_get0_notAfter(x));
	char nbuf[CA_NAME_BUF], dbuf[CA_DATE_BUF];

	if (nb == 0 || na == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "%s \"%s\" has an unreadable validity period",
				     what, fmt_subject(x, nbuf));
	/* RFC 5280 4.1.2.5: valid from notBefore through notAfter inclusive. */
	if (now > na)
		return sigil_err_set(err, SIGIL_E_EXPIRED, "%s \"%s\" has expired on %s", what,
				     fmt_subject(x, nbuf), fmt_time(na, dbuf));
	if (now < nb)
		return sigil_err_set(err, SIGIL_E_PRECOND, "%s \"%s\" is not valid until %s", what,
				     fmt_subject(x, nbuf), fmt_time(nb, dbuf));
	return 0;
}

/* Finds in pool the certificate that issued x (name, key identifier and
 * keyUsage via X509_check_issued, and the signature), removes it and
 * returns it. *ret = NULL when the pool holds none with the right name. */
static int take_issuer(STACK_OF(X509) *pool, X509 *x, X509 **ret, sigil_err *err)
{
	char nbuf[CA_NAME_BUF], ibuf[CA_NAME_BUF];
	int why = X509_V_OK;
	X509 *cand = NULL;

	for (int i = 0; i < sk_X509_num(pool); i++) {
		X509 *c = sk_X509_value(pool, i);
		int rc = X509_check_issued(c, x);
		if (rc != X509_V_OK) {
			if (rc != X509_V_ERR_SUBJECT_ISSUER_MISMATCH)
				why = rc;
			continue;
		}
		if (X509_verify(x, X509_get0_pubkey(c)) != 1) {
			cand = c;
			ERR_clear_error();
			continue;
		}
		*ret = sk_X509_delete(pool, i);
		return 0;
	}
	if (cand)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "chain does not link: the signature of \"%s\" does not verify with the key of \"%s\"",
				     fmt_subject(x, nbuf), fmt_subject(cand, ibuf));
	if (why != X509_V_OK)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "chain does not link: \"%s\" was not issued by any chain certificate named \"%s\" (%s)",
				     fmt_subject(x, nbuf), fmt_name(X509_get_issuer_name(x), ibuf),
				     X509_verify_cert_error_string(why));
	*ret = NULL;
	return 0;
}

static bool is_self_signed(X509 *x)
{
	int r = X509_self_signed(x, 1);

	ERR_clear_error();
	return r == 1;
}

/* Orders pool into the path from cert up: intermediates into chain, a
 * self-signed root into *root.  Every certificate of pool must be on it. */
static int build_chain(X509 *cert, STACK_OF(X509) *pool, time_t now, STACK_OF(X509) *chain,
		       X509 **root, sigil_err *err)
{
	char nbuf[CA_NAME_BUF], ibuf[CA_NAME_BUF];
	X509 *cur = cert;
	int r;

	/* The company CA is itself a root: it anchors its own bundle (a copy
	 * of it in the chain file changes nothing). */
	if (is_self_signed(cert)) {
		for (int i = sk_X509_num(pool) - 1; i >= 0; i--)
			if (X509_cmp(sk_X509_value(pool, i), cert) == 0)
				X509_free(sk_X509_delete(pool, i));
		if (!X509_up_ref(cert))
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		*root = cert;
	}
	while (!is_self_signed(cur)) {
		X509 *issuer = NULL;

		if (sk_X509_num(pool) == 0)
			break; /* the root is optional: relying parties hold it */
		r = take_issuer(pool, cur, &issuer, err);
		if (r < 0)
			return r;
		if (!issuer)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "chain does not link: no chain certificate issued \"%s\" (its issuer is \"%s\")",
					     fmt_subject(cur, nbuf),
					     fmt_name(X509_get_issuer_name(cur), ibuf));
		r = check_is_ca(issuer, "chain certificate", err);
		if (r >= 0)
			r = check_validity(issuer, "chain certificate", now, err);
		if (r < 0) {
			X509_free(issuer);
			return r;
		}
		if (is_self_signed(issuer)) {
			*root = issuer;
			cur = issuer;
			break;
		}
		if (!sk_X509_push(chain, issuer)) {
			X509_free(issuer);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
		cur = issuer;
	}
	if (sk_X509_num(pool) > 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "chain certificate \"%s\" is not on the path from the CA certificate to its root",
				     fmt_subject(sk_X509_value(pool, 0), nbuf));
	return 0;
}

/* Appends the certificates of src to dst, skipping copies of cert and
 * duplicates; takes ownership of src's entries. */
static int pool_add(STACK_OF(X509) *dst, STACK_OF(X509) *src, X509 *cert, sigil_err *err)
{
	X509 *x;

	while ((x = sk_X509_shift(src)) != NULL) {
		bool dup = X509_cmp(x, cert) == 0;
		for (int i = 0; !dup && i < sk_X509_num(dst); i++)
			dup = X509_cmp(x, sk_X509_value(dst, i)) == 0;
		if (dup) {
			X509_free(x);
			continue;
		}
		if (sk_X509_num(dst) >= CA_MAX_CHAIN) {
			X509_free(x);
			return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d certificates in the CA chain",
					     CA_MAX_CHAIN);
		}
		if (!sk_X509_push(dst, x)) {
			X509_free(x);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
	}
	return 0;
}

int ca_authority_from_pem(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
			  const char *passphrase, const char *chain_pem, size_t chain_len, time_t now,
			  ca_authority **ret, sigil_err *err)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;
	_cleanup_(x509_stack_freep) STACK_OF(X509) *extra = NULL;
	_cleanup_(x509_stack_freep) STACK_OF(X509) *pool = sk_X509_new_null();
	_cleanup_(x509_stack_freep) STACK_OF(X509) *chain = sk_X509_new_null();
	_cleanup_(X509_freep) X509 *cert = NULL;
	_cleanup_(X509_freep) X509 *root = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	const EVP_MD *md = NULL;
	ca_authority *ca;
	int r;

	if (!pool || !chain)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (now == 0)
		now = time(NULL);
	r = ca_certs_from_pem(cert_pem, cert_len, CA_MAX_CHAIN + 1, &certs, err);
	if (r < 0)
		return sigil_err_prefix(err, "CA certificate: ");
	cert = sk_X509_shift(certs);
	r = ca_key_from_pem(key_pem, key_len, passphrase, &key, err);
	if (r < 0)
		return sigil_err_prefix(err, "CA key: ");
	/* X509_check_private_key compares the public halves (EVP_PKEY_eq). */
	if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		return sigil_err_set(err, SIGIL_E_INVALID, "CA key does not match certificate");
	}
	r = ca_key_sign_digest(key, &md, err);
	if (r < 0)
		return sigil_err_prefix(err, "CA key: ");
	r = check_is_ca(cert, "CA certificate", err);
	if (r < 0)
		return r;
	r = check_validity(cert, "CA certificate", now, err);
	if (r < 0)
		return r;
	r = pool_add(pool, certs, cert, err);
	if (r < 0)
		return r;
	if (chain_pem && chain_len > 0) {
		r = ca_certs_from_pem(chain_pem, chain_len, CA_MAX_CHAIN, &extra, err);
		if (r < 0)
			return sigil_err_prefix(err, "CA chain: ");
		r = pool_add(pool, extra, cert, err);
		if (r < 0)
			return r;
	}
	r = build_chain(cert, pool, now, chain, &root, err);
	if (r < 0)
		return r;

	ca = calloc(1, sizeof(*ca));
	if (!ca)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = sign_ctx_new(key, &ca->sign_ctx, err);
	if (r < 0) {
		free(ca);
		return r;
	}
	ca->cert = TAKE_PTR(cert);
	ca->key = TAKE_PTR(key);
	ca->chain = TAKE_PTR(chain);
	ca->root = TAKE_PTR(root);
	*ret = ca;
	return 0;
}

/* The passphrase is the first line of the file, without its line ending. */
static int read_passphrase(const char *path, char **ret, sigil_err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0, n;
	char *pw;
	int r;

	r = sigil_fs_read_file(path, CA_MAX_PASSPHRASE_FILE, &buf, &len, err);
	if (r < 0)
		return sigil_err_prefix(err, "CA key passphrase: ");
	for (n = 0; n < len && buf[n] != '\n' && buf[n] != '\0'; n++)
		;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	pw = sigil_strndup((const char *)buf, n);
	freep_secret_bytes(&buf, len);
	if (!pw)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	*ret = pw;
	return 0;
}

int ca_authority_import(const char *cert_path, const char *key_path, const char *passphrase_path,
			const char *chain_path, time_t now, ca_authority **ret, sigil_err *err)
{
	_cleanup_free_ uint8_t *cert = NULL;
	_cleanup_free_ uint8_t *chain = NULL;
	_cleanup_secret_str_ char *pw = NULL;
	uint8_t *key = NULL;
	size_t cert_len = 0, key_len = 0, chain_len = 0;
	int r;

	if (!cert_path || !key_path)
		return sigil_err_set(err, SIGIL_E_INVALID, "CA import needs a certificate and a key file");
	r = sigil_fs_read_file(cert_path, CA_MAX_CERT_PEM, &cert, &cert_len, err);
	if (r < 0)
		return sigil_err_prefix(err, "CA certificate: ");
	if (chain_path) {
		r = sigil_fs_read_file(chain_path, CA_MAX_CERT_PEM, &chain, &chain_len, err);
		if (r < 0)
			return sigil_err_prefix(err, "CA chain: ");
	}
	if (passphrase_path) {
		r = read_passphrase(passphrase_path, &pw, err);
		if (r < 0)
			return r;
	}
	r = sigil_fs_read_file(key_path, CA_MAX_CERT_PEM, &key, &key_len, err);
	if (r < 0)
		return sigil_err_prefix(err, "CA key: ");
	r = ca_authority_from_pem((const char *)cert, cert_len, (const char *)key, key_len, pw,
				  (const char *)chain, chain_len, now, ret, err);
	freep_secret_bytes(&key, key_len);
	return r;
}
