/* Issuing leaf certificates from a CSR or a bare public key, and building
 * and parsing CSRs. */
#include "ca/issue.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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
SIGIL_DEFINE_CLEANUP(GENERAL_NAMES, GENERAL_NAMES_free)
SIGIL_DEFINE_CLEANUP(GENERAL_NAME, GENERAL_NAME_free)

static void eku_free(EXTENDED_KEY_USAGE *eku)
{
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
}
SIGIL_DEFINE_CLEANUP(EXTENDED_KEY_USAGE, eku_free)

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

int ca_csr_parse(const uint8_t *der, size_t len, EVP_PKEY **ret_pubkey, sigil_err *err)
{
	_cleanup_(X509_REQ_freep) X509_REQ *req = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
	const unsigned char *p = der;
	sigil_keyalg alg;
	char desc[64];

	if (!der || len == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "empty CSR");
	if (len > CA_MAX_CSR_DER)
		return sigil_err_set(err, SIGIL_E_LIMIT, "CSR of %zu bytes exceeds the limit of %d bytes",
				     len, CA_MAX_CSR_DER);
	ERR_clear_error();
	req = d2i_X509_REQ(NULL, &p, (long)len);
	if (!req)
		return sigil_err_ssl(err, SIGIL_E_INVALID, "CSR is not valid DER");
	if (p != der + len)
		return sigil_err_set(err, SIGIL_E_INVALID, "CSR has %zu bytes of trailing data",
				     len - (size_t)(p - der));
	pub = X509_REQ_get_pubkey(req);
	if (!pub)
		return sigil_err_ssl(err, SIGIL_E_INVALID, "CSR public key cannot be read");
	if (ca_key_alg(pub, &alg) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "CSR key type %s is not supported (use rsa-2048/3072/4096, ecdsa-p256/p384 or ed25519)",
				     ca_key_describe(pub, desc, sizeof(desc)));
	/* Proof of possession: the CSR is signed by the key it carries. */
	if (X509_REQ_verify(req, pub) != 1)
		return sigil_err_ssl(err, SIGIL_E_INVALID, "CSR signature does not verify");
	ERR_clear_error();
	*ret_pubkey = TAKE_PTR(pub);
	return 0;
}

int ca_issue_from_csr(const ca_authority *ca, const uint8_t *csr_der, size_t csr_len,
		      const ca_leaf_request *req, X509 **ret, sigil_err *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
	int r;

	r = ca_csr_parse(csr_der, csr_len, &pub, err);
	if (r < 0)
		return r;
	return ca_issue_from_pubkey(ca, pub, req, ret, err);
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

/* Subject: DC=... (most significant first) then CN. May end up empty. */
static int build_subject(const ca_leaf_request *req, X509_NAME **ret, sigil_err *err)
{
	_cleanup_(X509_NAME_freep) X509_NAME *name = X509_NAME_new();
	char q[CA_QUOTE_LEN];
	int r;

	if (!name)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
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
	*ret = TAKE_PTR(name);
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
	X509_NAME_oneline(X509_get_subject_name(ca->cert), q, sizeof(q));
	if (now < ca_start)
		return sigil_err_set(err, SIGIL_E_PRECOND, "CA \"%s\" is not valid until %s", q,
				     fmt_time(ca_start, d));
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
				     q, fmt_time(ca_end, d), (long long)req->ca_retirement_secs);
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

int ca_issue_from_pubkey(const ca_authority *ca, EVP_PKEY *pubkey, const ca_leaf_request *req,
			 X509 **ret, sigil_err *err)
{
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_(X509_NAME_freep) X509_NAME *subject = NULL;
	_cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *sans = NULL;
	sigil_keyalg alg;
	time_t now, not_before;
	int64_t lifetime = 0;
	char desc[64];
	int r;

	if (!ca || !ca->cert || !ca->key)
		return sigil_err_set(err, SIGIL_E_INVALID, "no CA to sign with");
	if (!pubkey || !req)
		return sigil_err_set(err, SIGIL_E_INVALID, "no public key or request to sign");
	if (ca_key_alg(pubkey, &alg) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "key type %s is not supported (use rsa-2048/3072/4096, ecdsa-p256/p384 or ed25519)",
				     ca_key_describe(pubkey, desc, sizeof(desc)));
	r = build_subject(req, &subject, err);
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

	x = X509_new();
	if (!x)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "out of memory");
	if (!X509_set_version(x, X509_VERSION_3))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set certificate version");
	r = ca_cert_set_random_serial(x, err);
	if (r < 0)
		return r;
	if (!X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca->cert)))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set certificate names");
	r = ca_cert_set_validity(x, not_before, now + (time_t)lifetime, err);
	if (r < 0)
		return r;
	if (!X509_set_pubkey(x, pubkey))
		return sigil_err_ssl(err, SIGIL_E_CRYPTO, "cannot set public key");
	r = ca_cert_add_basic_constraints(x, false, err);
	if (r < 0)
		return r;
	r = ca_cert_add_key_usage(x, leaf_key_usage(alg), err);
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
	r = ca_cert_sign(x, ca->key, err);
	if (r < 0)
		return sigil_err_prefix(err, "signing with the CA key: ");
	*ret = TAKE_PTR(x);
	return 0;
}
