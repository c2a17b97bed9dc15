/* ca/issue.c: leaves for every CA x leaf key type (checked with OpenSSL's
 * own chain verification in strict mode), names and limits, lifetime
 * capping and jitter, CSR parsing of good and hostile input (hand-built
 * requests whose signature is valid, so that each structural check is
 * what refuses them), and issuing from several threads. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "ca/issue.h"
#include "ca/names.h"
#include "tests/helpers/ca_fixtures.h"
#include "util/mem.h"

#define DAY 86400LL
#define HOUR 3600LL

static const sigil_keyalg all_algs[] = {
	SIGIL_KEY_RSA2048,    SIGIL_KEY_RSA3072,    SIGIL_KEY_RSA4096,
	SIGIL_KEY_ECDSA_P256, SIGIL_KEY_ECDSA_P384, SIGIL_KEY_ED25519,
};
#define N_ALGS SIGIL_ARRAY_SIZE(all_algs)

/* One CA and one leaf key per algorithm, made once (RSA-4096 is slow). */
typedef struct world {
	ca_authority *cas[N_ALGS];
	EVP_PKEY *keys[N_ALGS];
} world;

static int setup_world(void **state)
{
	world *w = calloc(1, sizeof(*w));

	for (size_t i = 0; i < N_ALGS; i++) {
		w->cas[i] = fx_make_ca(all_algs[i], FX_NOW, 365 * DAY);
		w->keys[i] = fx_make_key(all_algs[i]);
	}
	*state = w;
	return 0;
}

static int teardown_world(void **state)
{
	world *w = *state;

	for (size_t i = 0; i < N_ALGS; i++) {
		ca_authority_free(w->cas[i]);
		EVP_PKEY_free(w->keys[i]);
	}
	free(w);
	return 0;
}

/* OpenSSL's chain verification, strict RFC 5280 checks, at time `at`. */
static int verify_chain(X509 *leaf, X509 *root, STACK_OF(X509) *untrusted, time_t at, int purpose)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok, e;

	assert_int_equal(X509_STORE_add_cert(st, root), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, untrusted), 1);
	X509_STORE_CTX_set_time(ctx, 0, at);
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
	if (purpose)
		assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
	ok = X509_verify_cert(ctx);
	e = X509_STORE_CTX_get_error(ctx);
	if (ok != 1)
		print_error("verify: %s\n", X509_verify_cert_error_string(e));
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	return ok == 1 ? 0 : e;
}

static bool ext_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	assert_true(i >= 0);
	return X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 1;
}

static int sig_nid_for(sigil_keyalg alg)
{
	switch (alg) {
	case SIGIL_KEY_RSA2048:
	case SIGIL_KEY_RSA3072:
	case SIGIL_KEY_RSA4096:
		return NID_sha256WithRSAEncryption;
	case SIGIL_KEY_ECDSA_P256:
		return NID_ecdsa_with_SHA256;
	case SIGIL_KEY_ECDSA_P384:
		return NID_ecdsa_with_SHA384;
	case SIGIL_KEY_ED25519:
		return NID_ED25519;
	case SIGIL_KEY__COUNT:
	default:
		return NID_undef;
	}
}

static time_t not_after(X509 *x)
{
	return ca_asn1_time_to_time_t(X509_get0_notAfter(x));
}

static time_t not_before(X509 *x)
{
	return ca_asn1_time_to_time_t(X509_get0_notBefore(x));
}

static ca_leaf_request basic_req(void)
{
	static const char *dns[] = { "web.default.svc.cluster.local" };
	static const char *ips[] = { "10.1.2.3" };
	ca_leaf_request r = {
		.common_name = "web",
		.dns = dns,
		.n_dns = 1,
		.ips = ips,
		.n_ips = 1,
		.lifetime_secs = DAY,
		.ca_retirement_secs = HOUR,
		.now = FX_NOW,
	};
	return r;
}

/* The certificate's SubjectPublicKeyInfo is byte for byte key's. */
static void assert_spki_is(X509 *x, EVP_PKEY *key)
{
	unsigned char *a = NULL, *b = NULL;
	int na = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &a);
	int nb = i2d_PUBKEY(key, &b);

	assert_true(na > 0);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, (size_t)na);
	OPENSSL_free(a);
	OPENSSL_free(b);
}

static void test_every_ca_and_leaf_type(void **state)
{
	world *w = *state;

	for (size_t c = 0; c < N_ALGS; c++) {
		ca_authority *ca = w->cas[c];
		for (size_t l = 0; l < N_ALGS; l++) {
			sigil_err err = { 0 };
			ca_leaf_request req = basic_req();
			size_t csr_len = 0;
			uint8_t *csr = fx_make_csr(w->keys[l], "ignored-by-ca", &csr_len);
			X509 *leaf = NULL;
			int r = ca_issue_from_csr(ca, csr, csr_len, &req, &leaf, &err);

			if (r != 0)
				fail_msg("CA %s leaf %s: %s", ca_keyalg_name(all_algs[c]),
					 ca_keyalg_name(all_algs[l]), err.msg);
			/* Signed by the CA, for the CSR's key. */
			assert_int_equal(X509_verify(leaf, X509_get0_pubkey(ca->cert)), 1);
			assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), w->keys[l]), 1);
			/* The key is readable from the certificate as issued (the
			 * keystore writers check it against the private key), and
			 * its SubjectPublicKeyInfo is the key's own encoding. */
			assert_int_equal(X509_check_private_key(leaf, w->keys[l]), 1);
			assert_spki_is(leaf, w->keys[l]);
			assert_int_equal(X509_get_signature_nid(leaf), sig_nid_for(all_algs[c]));
			assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf),
						       X509_get_subject_name(ca->cert)),
					 0);
			assert_int_equal(X509_check_issued(ca->cert, leaf), X509_V_OK);
			assert_int_equal(verify_chain(leaf, ca->cert, NULL, FX_NOW + 60,
						      X509_PURPOSE_SSL_SERVER),
					 0);
			assert_int_equal(verify_chain(leaf, ca->cert, NULL, FX_NOW + 60,
						      X509_PURPOSE_SSL_CLIENT),
					 0);

			/* Extensions. */
			uint32_t flags = X509_get_extension_flags(leaf);
			assert_true(flags & EXFLAG_BCONS);
			assert_false(flags & EXFLAG_CA);
			assert_true(ext_critical(leaf, NID_basic_constraints));
			assert_true(flags & EXFLAG_KUSAGE);
			assert_true(ext_critical(leaf, NID_key_usage));
			assert_int_equal(X509_get_key_usage(leaf),
					 ca_keyalg_is_rsa(all_algs[l])
						 ? (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT)
						 : KU_DIGITAL_SIGNATURE);
			assert_true(flags & EXFLAG_XKUSAGE);
			assert_false(ext_critical(leaf, NID_ext_key_usage));
			assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
			assert_false(ext_critical(leaf, NID_subject_alt_name));
			assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
							       X509_get0_subject_key_id(ca->cert)),
					 0);
			unsigned char md[EVP_MAX_MD_SIZE];
			unsigned int md_len = 0;
			assert_int_equal(X509_pubkey_digest(leaf, EVP_sha1(), md, &md_len), 1);
			assert_memory_equal(ASN1_STRING_get0_data(X509_get0_subject_key_id(leaf)), md,
					    md_len);
			assert_int_equal(X509_check_host(leaf, "web.default.svc.cluster.local", 0, 0,
							 NULL),
					 1);
			assert_int_equal(X509_check_ip_asc(leaf, "10.1.2.3", 0), 1);
			assert_int_equal(X509_check_host(leaf, "ignored-by-ca", 0, 0, NULL), 0);

			/* Serial: positive, <= 20 octets. */
			BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
			assert_false(BN_is_negative(bn));
			assert_false(BN_is_zero(bn));
			assert_true(BN_num_bytes(bn) <= 20);
			BN_free(bn);

			assert_int_equal(not_before(leaf), FX_NOW - CA_BACKDATE_SECS);
			assert_int_equal(not_after(leaf), FX_NOW + DAY);

			X509_free(leaf);
			free(csr);
		}
	}
}

/* The CA decides the names: a CSR's subject and extensions are ignored. */
static void test_names_in_certificate(void **state)
{
	world *w = *state;
	static const char *dcs[] = { "local", "cluster" };
	static const char *dns[] = { "Web.Example.COM", "web.example.com", "*.apps.example.com",
				     "node-1" };
	static const char *ips[] = { "10.0.0.1", "fd00::1", "10.0.0.1" };
	static const char *uris[] = { "spiffe://cluster.local/ns/default/sa/web" };
	ca_leaf_request req = {
		.common_name = "web",
		.domain_components = dcs,
		.n_domain_components = 2,
		.dns = dns,
		.n_dns = 4,
		.ips = ips,
		.n_ips = 3,
		.uris = uris,
		.n_uris = 1,
		.allow_wildcards = true,
		.lifetime_secs = DAY,
		.now = FX_NOW,
	};
	sigil_err err = { 0 };
	X509 *leaf = NULL;
	char buf[256];

	assert_int_equal(ca_issue_from_pubkey(w->cas[3], w->keys[5], &req, &leaf, &err), 0);
	/* Subject: DC=local, DC=cluster, CN=web, in that order. */
	X509_NAME *subj = X509_get_subject_name(leaf);
	assert_int_equal(X509_NAME_entry_count(subj), 3);
	assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(subj, 0))),
			 NID_domainComponent);
	assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(subj, 2))),
			 NID_commonName);
	X509_NAME_oneline(subj, buf, sizeof(buf));
	assert_string_equal(buf, "/DC=local/DC=cluster/CN=web");

	/* SANs: DNS lower-cased and de-duplicated, IPs raw, the URI. */
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	assert_non_null(gens);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 3 + 2 + 1);
	static const char *want_dns[] = { "web.example.com", "*.apps.example.com", "node-1" };
	for (int i = 0; i < 3; i++) {
		int type;
		ASN1_STRING *s = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, i), &type);
		assert_int_equal(type, GEN_DNS);
		assert_int_equal(ASN1_STRING_length(s), strlen(want_dns[i]));
		assert_memory_equal(ASN1_STRING_get0_data(s), want_dns[i], strlen(want_dns[i]));
	}
	int type;
	ASN1_STRING *s = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, 3), &type);
	assert_int_equal(type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(s), 4);
	assert_memory_equal(ASN1_STRING_get0_data(s), "\x0a\x00\x00\x01", 4);
	s = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, 4), &type);
	assert_int_equal(type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(s), 16);
	s = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, 5), &type);
	assert_int_equal(type, GEN_URI);
	assert_memory_equal(ASN1_STRING_get0_data(s), uris[0], strlen(uris[0]));
	GENERAL_NAMES_free(gens);

	assert_int_equal(X509_check_host(leaf, "foo.apps.example.com", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(leaf, "fd00:0::1", 0), 1);
	assert_true(ca_cert_has_ip_san(leaf));
	assert_int_equal(verify_chain(leaf, w->cas[3]->cert, NULL, FX_NOW, 0), 0);
	X509_free(leaf);
}

static void test_empty_subject_critical_san(void **state)
{
	world *w = *state;
	static const char *uris[] = { "spiffe://cluster.local/ns/a/sa/b" };
	ca_leaf_request req = {
		.uris = uris,
		.n_uris = 1,
		.lifetime_secs = DAY,
		.now = FX_NOW,
	};
	sigil_err err = { 0 };
	X509 *leaf = NULL;

	assert_int_equal(ca_issue_from_pubkey(w->cas[4], w->keys[3], &req, &leaf, &err), 0);
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
	/* RFC 5280 4.2.1.6; X509_V_FLAG_X509_STRICT checks it too. */
	assert_true(ext_critical(leaf, NID_subject_alt_name));
	assert_false(ca_cert_has_ip_san(leaf)); /* a URI only */
	assert_int_equal(verify_chain(leaf, w->cas[4]->cert, NULL, FX_NOW, 0), 0);
	X509_free(leaf);

	/* CN only, no SAN: no SAN extension at all. */
	ca_leaf_request cn_only = { .common_name = "client", .lifetime_secs = DAY, .now = FX_NOW };
	assert_int_equal(ca_issue_from_pubkey(w->cas[4], w->keys[3], &cn_only, &leaf, &err), 0);
	assert_true(X509_get_ext_by_NID(leaf, NID_subject_alt_name, -1) < 0);
	assert_false(ca_cert_has_ip_san(leaf));
	X509_free(leaf);
	leaf = NULL;

	/* Neither: refused. An empty CN counts as none; DCs alone do not name it. */
	static const char *dcs[] = { "local" };
	ca_leaf_request none = {
		.common_name = "",
		.domain_components = dcs,
		.n_domain_components = 1,
		.lifetime_secs = DAY,
		.now = FX_NOW,
	};
	assert_int_equal(ca_issue_from_pubkey(w->cas[4], w->keys[3], &none, &leaf, &err),
			 SIGIL_E_INVALID);
	assert_null(leaf);
	assert_non_null(strstr(err.msg, "no name"));
}

static void test_name_limits_and_errors(void **state)
{
	world *w = *state;
	EVP_PKEY *key = w->keys[3];
	ca_authority *ca = w->cas[3];
	const char *many[CA_MAX_SANS + 1];
	char names[CA_MAX_SANS + 1][32];
	const char *dcs[CA_MAX_DC + 1];
	char cn65[66];
	sigil_err err = { 0 };
	X509 *leaf = NULL;

	for (int i = 0; i <= CA_MAX_SANS; i++) {
		snprintf(names[i], sizeof(names[i]), "host%d.example", i);
		many[i] = names[i];
	}
	for (int i = 0; i <= CA_MAX_DC; i++)
		dcs[i] = "dc";
	memset(cn65, 'c', 65);
	cn65[65] = '\0';

	/* CA_MAX_SANS names are fine, one more is not. */
	ca_leaf_request req = { .dns = many, .n_dns = CA_MAX_SANS, .lifetime_secs = DAY, .now = FX_NOW };
	assert_int_equal(ca_issue_from_pubkey(ca, key, &req, &leaf, &err), 0);
	X509_free(leaf);
	leaf = NULL;
	req.n_dns = CA_MAX_SANS + 1;
	assert_int_equal(ca_issue_from_pubkey(ca, key, &req, &leaf, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "101 DNS"));
	/* The total counts across kinds. */
	static const char *ip[] = { "10.0.0.1" };
	req.n_dns = CA_MAX_SANS;
	req.ips = ip;
	req.n_ips = 1;
	assert_int_equal(ca_issue_from_pubkey(ca, key, &req, &leaf, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "limit is 100 in total"));
	/* Huge counts do not wrap the sum. */
	req.n_dns = 1;
	req.n_ips = SIZE_MAX;
	assert_int_equal(ca_issue_from_pubkey(ca, key, &req, &leaf, &err), SIGIL_E_LIMIT);
	assert_null(leaf);

	static const char *one[] = { "ok.example" };
	struct {
		ca_leaf_request req;
		int rc;
		const char *msg;
	} cases[] = {
		{ { .common_name = cn65 }, SIGIL_E_LIMIT, "is 65 bytes long, the limit is 64" },
		{ { .common_name = "tab\there" }, SIGIL_E_INVALID, "control character" },
		{ { .common_name = "bad\xff utf8" }, SIGIL_E_INVALID, "not valid UTF-8" },
		{ { .common_name = "x", .domain_components = dcs, .n_domain_components = CA_MAX_DC + 1 },
		  SIGIL_E_LIMIT, "17 domain components, the limit is 16" },
		{ { .common_name = "x", .domain_components = (const char *[]){ "a.b" }, .n_domain_components = 1 },
		  SIGIL_E_INVALID, "domain component \"a.b\"" },
		{ { .common_name = "x", .domain_components = (const char *[]){ "" }, .n_domain_components = 1 },
		  SIGIL_E_INVALID, "domain component" },
		{ { .common_name = "x", .domain_components = (const char *[]){ "*" }, .n_domain_components = 1 },
		  SIGIL_E_INVALID, "domain component" },
		{ { .dns = (const char *[]){ "bad_name.example" }, .n_dns = 1 }, SIGIL_E_INVALID,
		  "\"bad_name.example\"" },
		{ { .dns = (const char *[]){ "*.example.com" }, .n_dns = 1 }, SIGIL_E_INVALID,
		  "not allowed by the name policy" },
		{ { .ips = (const char *[]){ "10.0.0.256" }, .n_ips = 1 }, SIGIL_E_INVALID,
		  "\"10.0.0.256\" is not a valid IPv4 address" },
		{ { .ips = (const char *[]){ "::g" }, .n_ips = 1 }, SIGIL_E_INVALID, "IPv6" },
		{ { .uris = (const char *[]){ "no scheme" }, .n_uris = 1 }, SIGIL_E_INVALID, "URI" },
		{ { .dns = NULL, .n_dns = 1 }, SIGIL_E_INVALID, "without a list" },
		{ { .dns = (const char *[]){ "a.example", NULL }, .n_dns = 2 }, SIGIL_E_INVALID,
		  "DNS name 2 is missing" },
		{ { .common_name = "x", .lifetime_secs = -5 }, SIGIL_E_INVALID, "must be positive" },
		{ { .dns = one, .n_dns = 1, .max_lifetime_secs = -1 }, SIGIL_E_INVALID, "maximum lifetime" },
		{ { .dns = one, .n_dns = 1, .ca_retirement_secs = -1 }, SIGIL_E_INVALID, "retirement" },
		{ { .dns = one, .n_dns = 1, .jitter_factor = 1.0 }, SIGIL_E_INVALID, "jitter factor" },
		{ { .dns = one, .n_dns = 1, .jitter_factor = -0.1 }, SIGIL_E_INVALID, "jitter factor" },
		{ { .dns = one, .n_dns = 1, .jitter_factor = NAN }, SIGIL_E_INVALID, "jitter factor" },
	};
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		sigil_err_clear(&err);
		if (cases[i].req.lifetime_secs == 0)
			cases[i].req.lifetime_secs = DAY;
		cases[i].req.now = FX_NOW;
		int r = ca_issue_from_pubkey(ca, key, &cases[i].req, &leaf, &err);
		if (r != cases[i].rc || !strstr(err.msg, cases[i].msg))
			fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, r, err.msg, cases[i].rc,
				 cases[i].msg);
		assert_null(leaf);
	}
	/* 64 bytes of CN is the bound itself. */
	cn65[64] = '\0';
	ca_leaf_request ok = { .common_name = cn65, .lifetime_secs = DAY, .now = FX_NOW };
	assert_int_equal(ca_issue_from_pubkey(ca, key, &ok, &leaf, &err), 0);
	X509_free(leaf);
	leaf = NULL;
	/* Wildcards with the policy. */
	ca_leaf_request wc = { .dns = (const char *[]){ "*.example.com" }, .n_dns = 1,
			       .allow_wildcards = true, .lifetime_secs = DAY, .now = FX_NOW };
	assert_int_equal(ca_issue_from_pubkey(ca, key, &wc, &leaf, &err), 0);
	X509_free(leaf);
	leaf = NULL;

	/* Bad arguments. */
	assert_int_equal(ca_issue_from_pubkey(NULL, key, &ok, &leaf, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_issue_from_pubkey(ca, NULL, &ok, &leaf, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_issue_from_pubkey(ca, key, NULL, &leaf, &err), SIGIL_E_INVALID);
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	assert_int_equal(ca_issue_from_pubkey(ca, weak, &ok, &leaf, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "RSA 1024 is not supported"));
	EVP_PKEY_free(weak);
	assert_null(leaf);
}

static int64_t issued_lifetime(const ca_authority *ca, EVP_PKEY *key, ca_leaf_request *req,
			       int *rc, sigil_err *err)
{
	X509 *leaf = NULL;
	int64_t life;

	*rc = ca_issue_from_pubkey(ca, key, req, &leaf, err);
	if (*rc < 0)
		return -1;
	life = (int64_t)(not_after(leaf) - req->now);
	assert_true(X509_verify(leaf, X509_get0_pubkey(ca->cert)) == 1);
	X509_free(leaf);
	return life;
}

static void test_lifetime_capping(void **state)
{
	world *w = *state;
	EVP_PKEY *key = w->keys[3];
	ca_authority *ca = w->cas[3]; /* FX_NOW - 300 .. FX_NOW + 365d */
	static const char *dns[] = { "a.example" };
	ca_leaf_request req = { .dns = dns, .n_dns = 1, .now = FX_NOW, .ca_retirement_secs = HOUR };
	sigil_err err = { 0 };
	int rc;

	/* Requested below every cap. */
	req.lifetime_secs = 2 * DAY;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), 2 * DAY);
	/* Capped by the class maximum. */
	req.lifetime_secs = 10 * DAY;
	req.max_lifetime_secs = 5 * DAY;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), 5 * DAY);
	/* 0 means Stackable's default maximum of 15 days. */
	req.lifetime_secs = 30 * DAY;
	req.max_lifetime_secs = 0;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), CA_DEFAULT_MAX_LEAF_LIFETIME_SECS);
	/* Capped by the CA's notAfter minus the retirement. */
	req.now = FX_NOW + 360 * DAY;
	req.lifetime_secs = 10 * DAY;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), 5 * DAY - HOUR);
	/* One second of room left still signs, for one second. */
	req.now = FX_NOW + 365 * DAY - HOUR - 1;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), 1);
	/* No room: refused, naming the CA and its expiry. */
	req.now = FX_NOW + 365 * DAY - HOUR;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), -1);
	assert_int_equal(rc, SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "fixture CA"));
	assert_non_null(strstr(err.msg, "expires on 2024-12-31 00:00:00 UTC"));
	assert_non_null(strstr(err.msg, "too close to expiry"));
	/* After the CA expired. */
	req.now = FX_NOW + 400 * DAY;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), -1);
	assert_int_equal(rc, SIGIL_E_PRECOND);
	/* A retirement longer than anything: refused, no overflow. */
	req.now = FX_NOW;
	req.ca_retirement_secs = INT64_MAX;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), -1);
	assert_int_equal(rc, SIGIL_E_PRECOND);
	req.now = FX_NOW + 400 * DAY;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), -1);
	assert_int_equal(rc, SIGIL_E_PRECOND);
	req.ca_retirement_secs = HOUR;
	/* Huge requested and maximum lifetimes are capped by the CA. */
	req.now = FX_NOW;
	req.lifetime_secs = INT64_MAX;
	req.max_lifetime_secs = INT64_MAX;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), 365 * DAY - HOUR);
	req.max_lifetime_secs = 0;
	req.lifetime_secs = 10 * DAY;
	/* Before the CA is valid. */
	req.now = FX_NOW - DAY;
	assert_int_equal(issued_lifetime(ca, key, &req, &rc, &err), -1);
	assert_int_equal(rc, SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "not valid until"));

	/* A CA whose whole life is inside the retirement window never signs. */
	ca_authority *short_ca = fx_make_ca(SIGIL_KEY_ED25519, FX_NOW, HOUR);
	req.now = FX_NOW;
	req.lifetime_secs = DAY;
	assert_int_equal(issued_lifetime(short_ca, key, &req, &rc, &err), -1);
	assert_int_equal(rc, SIGIL_E_PRECOND);
	req.ca_retirement_secs = 0;
	assert_int_equal(issued_lifetime(short_ca, key, &req, &rc, &err), HOUR);
	ca_authority_free(short_ca);

	/* notBefore is backdated, but not before the CA's own notBefore. */
	X509 *leaf = NULL;
	req.now = FX_NOW - 100;
	req.ca_retirement_secs = HOUR;
	assert_int_equal(ca_issue_from_pubkey(ca, key, &req, &leaf, &err), 0);
	assert_int_equal(not_before(leaf), FX_NOW - CA_BACKDATE_SECS);
	assert_int_equal(verify_chain(leaf, ca->cert, NULL, FX_NOW - 100, 0), 0);
	X509_free(leaf);
	leaf = NULL;
	req.now = FX_NOW + DAY;
	assert_int_equal(ca_issue_from_pubkey(ca, key, &req, &leaf, &err), 0);
	assert_int_equal(not_before(leaf), FX_NOW + DAY - CA_BACKDATE_SECS);
	X509_free(leaf);
}

static void test_jitter_bounds(void **state)
{
	world *w = *state;
	static const char *dns[] = { "a.example" };
	ca_leaf_request req = {
		.dns = dns, .n_dns = 1, .now = FX_NOW, .lifetime_secs = 10000, .jitter_factor = 0.5
	};
	sigil_err err = { 0 };
	int64_t lo = INT64_MAX, hi = 0;
	int rc;

	/* 0.5: lifetime in (5000, 10000]; 300 draws cover both halves. */
	for (int i = 0; i < 300; i++) {
		int64_t l = issued_lifetime(w->cas[3], w->keys[3], &req, &rc, &err);
		assert_int_equal(rc, 0);
		assert_true(l > 5000 && l <= 10000);
		if (l < lo)
			lo = l;
		if (l > hi)
			hi = l;
	}
	assert_true(lo < 6000);
	assert_true(hi > 9000);
	/* Jitter applies after capping: a capped lifetime is shortened too. */
	req.max_lifetime_secs = 1000;
	req.jitter_factor = 0.2;
	for (int i = 0; i < 50; i++) {
		int64_t l = issued_lifetime(w->cas[3], w->keys[3], &req, &rc, &err);
		assert_true(l > 800 && l <= 1000);
	}
	/* Close to 1: never zero. */
	req.max_lifetime_secs = 0;
	req.lifetime_secs = 1;
	req.jitter_factor = 0.999999;
	for (int i = 0; i < 50; i++)
		assert_int_equal(issued_lifetime(w->cas[3], w->keys[3], &req, &rc, &err), 1);
	/* 0: exact. */
	req.lifetime_secs = 7777;
	req.jitter_factor = 0;
	assert_int_equal(issued_lifetime(w->cas[3], w->keys[3], &req, &rc, &err), 7777);
}

/* An imported intermediate signs leaves that verify up to the root. */
static void test_issue_from_intermediate(void **state)
{
	ca_authority *root = fx_make_ca(SIGIL_KEY_ECDSA_P384, FX_NOW - DAY, 3650 * DAY);
	EVP_PKEY *ik = fx_make_key(SIGIL_KEY_ECDSA_P256);
	X509 *inter = fx_make_cert(&(fx_cert_opts){
		.cn = "Company Issuing CA",
		.key = ik,
		.issuer = root->cert,
		.issuer_key = root->key,
		.bc = FX_BC_CA,
		.ku = KU_KEY_CERT_SIGN | KU_CRL_SIGN,
		.not_before = FX_NOW - DAY,
		.not_after = FX_NOW + 100 * DAY,
	});
	char *c = fx_cert_pem(inter), *k = fx_key_pem(ik), *r = fx_cert_pem(root->cert);
	sigil_err err = { 0 };
	ca_authority *ca = NULL;
	X509 *leaf = NULL;
	EVP_PKEY *lk = fx_make_key(SIGIL_KEY_ED25519);
	ca_leaf_request req = basic_req();

	(void)state;
	assert_int_equal(ca_authority_from_pem(c, strlen(c), k, strlen(k), NULL, r, strlen(r), FX_NOW,
					       &ca, &err),
			 0);
	assert_int_equal(ca_issue_from_pubkey(ca, lk, &req, &leaf, &err), 0);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(inter)), 0);
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	sk_X509_push(untrusted, ca->cert);
	assert_int_equal(verify_chain(leaf, ca->root, untrusted, FX_NOW, X509_PURPOSE_SSL_SERVER), 0);
	/* Without the intermediate the leaf does not verify. */
	assert_int_not_equal(verify_chain(leaf, ca->root, NULL, FX_NOW, 0), 0);
	/* Capped by the intermediate's notAfter minus retirement. */
	X509_free(leaf);
	leaf = NULL;
	req.now = FX_NOW + 99 * DAY;
	req.lifetime_secs = 10 * DAY;
	assert_int_equal(ca_issue_from_pubkey(ca, lk, &req, &leaf, &err), 0);
	assert_int_equal(not_after(leaf), FX_NOW + 100 * DAY - HOUR);

	sk_X509_free(untrusted);
	X509_free(leaf);
	EVP_PKEY_free(lk);
	ca_authority_free(ca);
	free(c);
	free(k);
	free(r);
	X509_free(inter);
	EVP_PKEY_free(ik);
	ca_authority_free(root);
}

/* ---- CSRs ------------------------------------------------------------------ */

static void test_csr_round_trip(void **state)
{
	world *w = *state;

	for (size_t i = 0; i < N_ALGS; i++) {
		sigil_err err = { 0 };
		uint8_t *der = NULL;
		size_t len = 0;
		EVP_PKEY *pub = NULL;

		assert_int_equal(ca_csr_create(w->keys[i], i % 2 ? "node-a" : NULL, &der, &len, &err), 0);
		assert_true(len > 0 && len <= CA_MAX_CSR_DER);
		assert_int_equal(ca_csr_parse(der, len, &pub, &err), 0);
		assert_int_equal(EVP_PKEY_eq(pub, w->keys[i]), 1);
		/* The CSR is a normal PKCS#10 request. */
		const unsigned char *p = der;
		X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
		assert_non_null(req);
		assert_int_equal(X509_REQ_get_version(req), 0);
		assert_int_equal(X509_REQ_get_attr_count(req), 0);
		assert_int_equal(X509_NAME_entry_count(X509_REQ_get_subject_name(req)), i % 2 ? 1 : 0);
		X509_REQ_free(req);
		EVP_PKEY_free(pub);
		free(der);
	}
}

static void test_csr_bad_input(void **state)
{
	world *w = *state;
	sigil_err err = { 0 };
	EVP_PKEY *pub = NULL;
	X509 *leaf = NULL;
	ca_leaf_request req = basic_req();

	for (size_t k = 0; k < N_ALGS; k++) {
		size_t len = 0;
		uint8_t *der = fx_make_csr(w->keys[k], "node", &len);
		uint8_t *buf = malloc(CA_MAX_CSR_DER + 2);

		/* Empty. */
		assert_int_equal(ca_csr_parse(der, 0, &pub, &err), SIGIL_E_INVALID);
		assert_string_equal(err.msg, "empty CSR");
		assert_int_equal(ca_csr_parse(NULL, len, &pub, &err), SIGIL_E_INVALID);
		/* Every truncation. */
		for (size_t cut = 1; cut < len; cut++) {
			if (ca_csr_parse(der, cut, &pub, &err) != SIGIL_E_INVALID)
				fail_msg("%s CSR truncated to %zu bytes was accepted",
					 ca_keyalg_name(all_algs[k]), cut);
		}
		assert_null(pub);
		/* Trailing data. */
		memcpy(buf, der, len);
		buf[len] = 0;
		assert_int_equal(ca_csr_parse(buf, len + 1, &pub, &err), SIGIL_E_INVALID);
		assert_non_null(strstr(err.msg, "trailing"));
		/* Oversized. */
		memset(buf + len, 0, CA_MAX_CSR_DER + 2 - len);
		assert_int_equal(ca_csr_parse(buf, CA_MAX_CSR_DER + 1, &pub, &err), SIGIL_E_LIMIT);
		assert_non_null(strstr(err.msg, "16385 bytes"));
		/* Bad signature: flip a bit in the last byte (inside the signature). */
		memcpy(buf, der, len);
		buf[len - 1] ^= 0x01;
		assert_int_equal(ca_csr_parse(buf, len, &pub, &err), SIGIL_E_INVALID);
		assert_non_null(strstr(err.msg, "does not verify"));
		assert_int_equal(ca_issue_from_csr(w->cas[3], buf, len, &req, &leaf, &err),
				 SIGIL_E_INVALID);
		assert_null(leaf);
		/* Tampered content: the CN "node" becomes "nodf". */
		memcpy(buf, der, len);
		uint8_t *hit = memmem(buf, len, "node", 4);
		assert_non_null(hit);
		hit[3] = 'f';
		assert_int_equal(ca_csr_parse(buf, len, &pub, &err), SIGIL_E_INVALID);
		assert_non_null(strstr(err.msg, "does not verify"));
		/* Random single-byte corruption anywhere never crashes or passes
		 * unless the byte is don't-care (there are none in DER). */
		for (size_t pos = 0; pos < len; pos += 3) {
			memcpy(buf, der, len);
			buf[pos] ^= 0x5a;
			int r = ca_csr_parse(buf, len, &pub, &err);
			if (r == 0)
				fail_msg("%s CSR with byte %zu corrupted was accepted",
					 ca_keyalg_name(all_algs[k]), pos);
		}
		free(buf);
		free(der);
	}
	/* Garbage. */
	static const uint8_t garbage[] = "\x30\x82\xff\xff garbage that is not DER";
	assert_int_equal(ca_csr_parse(garbage, sizeof(garbage), &pub, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "not valid DER"));
	static const uint8_t pem[] = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n";
	assert_int_equal(ca_csr_parse(pem, sizeof(pem) - 1, &pub, &err), SIGIL_E_INVALID);
	/* A certificate is not a CSR. */
	unsigned char *cder = NULL;
	int clen = i2d_X509(w->cas[3]->cert, &cder);
	assert_int_equal(ca_csr_parse(cder, (size_t)clen, &pub, &err), SIGIL_E_INVALID);
	OPENSSL_free(cder);
	assert_null(pub);
}

/* A correctly signed CSR for a key type sigil does not issue for. */
static void test_csr_unsupported_key(void **state)
{
	static const struct {
		const char *type;
		const char *param;
		size_t bits;
		const char *msg;
	} cases[] = {
		{ "RSA", NULL, 1024, "RSA 1024" },
		{ "EC", "P-521", 0, "EC secp521r1" },
		{ "ED448", NULL, 0, "ED448" },
	};

	(void)state;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		EVP_PKEY *key = cases[i].bits ? EVP_PKEY_Q_keygen(NULL, NULL, cases[i].type, cases[i].bits)
				: cases[i].param ? EVP_PKEY_Q_keygen(NULL, NULL, cases[i].type, cases[i].param)
						 : EVP_PKEY_Q_keygen(NULL, NULL, cases[i].type);
		X509_REQ *r = X509_REQ_new();
		unsigned char *der = NULL;
		int len;
		sigil_err err = { 0 };
		EVP_PKEY *pub = NULL;

		assert_non_null(key);
		X509_REQ_set_pubkey(r, key);
		assert_true(X509_REQ_sign(r, key, strcmp(cases[i].type, "ED448") ? EVP_sha256() : NULL) > 0);
		len = i2d_X509_REQ(r, &der);
		assert_int_equal(ca_csr_parse(der, (size_t)len, &pub, &err), SIGIL_E_INVALID);
		assert_non_null(strstr(err.msg, cases[i].msg));
		assert_non_null(strstr(err.msg, "not supported"));
		OPENSSL_free(der);
		X509_REQ_free(r);
		EVP_PKEY_free(key);
	}
}

static void test_csr_create_bad(void **state)
{
	world *w = *state;
	sigil_err err = { 0 };
	uint8_t *der = NULL;
	size_t len = 0;
	char cn[CA_MAX_CN_LEN + 2];

	memset(cn, 'n', sizeof(cn) - 1);
	cn[sizeof(cn) - 1] = '\0';
	assert_int_equal(ca_csr_create(NULL, "x", &der, &len, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_csr_create(w->keys[3], cn, &der, &len, &err), SIGIL_E_LIMIT);
	assert_int_equal(ca_csr_create(w->keys[3], "a\nb", &der, &len, &err), SIGIL_E_INVALID);
	assert_null(der);
	EVP_PKEY *x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	assert_int_equal(ca_csr_create(x, NULL, &der, &len, &err), SIGIL_E_INVALID);
	EVP_PKEY_free(x);
	assert_null(der);
}

/* ---- the public-key path and the certificate's key ------------------------- */

/* ca_issue_from_pubkey gives the same key encoding as the CSR path, from
 * provider keys and from the legacy keys a certificate hands out. */
static void test_pubkey_path_every_type(void **state)
{
	world *w = *state;

	for (size_t c = 0; c < N_ALGS; c += 2) {
		for (size_t l = 0; l < N_ALGS; l++) {
			sigil_err err = { 0 };
			ca_leaf_request req = basic_req();
			X509 *leaf = NULL, *again = NULL;

			if (ca_issue_from_pubkey(w->cas[c], w->keys[l], &req, &leaf, &err) != 0)
				fail_msg("CA %s leaf %s: %s", ca_keyalg_name(all_algs[c]),
					 ca_keyalg_name(all_algs[l]), err.msg);
			assert_int_equal(X509_verify(leaf, X509_get0_pubkey(w->cas[c]->cert)), 1);
			assert_int_equal(X509_check_private_key(leaf, w->keys[l]), 1);
			assert_spki_is(leaf, w->keys[l]);
			assert_int_equal(verify_chain(leaf, w->cas[c]->cert, NULL, FX_NOW + 60,
						      X509_PURPOSE_SSL_SERVER),
					 0);
			/* The key read back from a certificate issues the same. */
			assert_int_equal(ca_issue_from_pubkey(w->cas[c], X509_get0_pubkey(leaf), &req,
							      &again, &err),
					 0);
			assert_spki_is(again, w->keys[l]);
			X509_free(again);
			X509_free(leaf);
		}
	}
}

/* An authority put together by hand (as ca/caset.c shares a generation)
 * has no signing context: signing falls back to setting one up. */
static void test_issue_with_handmade_authority(void **state)
{
	world *w = *state;

	for (size_t c = 0; c < N_ALGS; c++) {
		ca_authority hand = { .cert = w->cas[c]->cert, .key = w->cas[c]->key };
		ca_leaf_request req = basic_req();
		sigil_err err = { 0 };
		size_t len = 0;
		uint8_t *csr = fx_make_csr(w->keys[3], NULL, &len);
		X509 *leaf = NULL;

		assert_non_null(w->cas[c]->sign_ctx);
		assert_int_equal(ca_issue_from_csr(&hand, csr, len, &req, &leaf, &err), 0);
		assert_int_equal(X509_verify(leaf, X509_get0_pubkey(hand.cert)), 1);
		assert_int_equal(X509_get_signature_nid(leaf), sig_nid_for(all_algs[c]));
		X509_free(leaf);
		free(csr);
	}
}

/* ---- hand-built CSRs -------------------------------------------------------- */

/* A small DER writer, so that each field of a CSR can be made wrong on its
 * own while the signature over it stays valid. */
typedef struct der_buf {
	uint8_t b[8192];
	size_t n;
} der_buf;

static void der_raw(der_buf *d, const void *p, size_t n)
{
	assert_true(d->n + n <= sizeof(d->b));
	if (n > 0)
		memcpy(d->b + d->n, p, n);
	d->n += n;
}

static void der_tlv(der_buf *d, uint8_t tag, const void *p, size_t n)
{
	uint8_t hdr[4];
	size_t h = 0;

	hdr[h++] = tag;
	if (n < 0x80) {
		hdr[h++] = (uint8_t)n;
	} else if (n < 0x100) {
		hdr[h++] = 0x81;
		hdr[h++] = (uint8_t)n;
	} else {
		assert_true(n < 0x10000);
		hdr[h++] = 0x82;
		hdr[h++] = (uint8_t)(n >> 8);
		hdr[h++] = (uint8_t)n;
	}
	der_raw(d, hdr, h);
	der_raw(d, p, n);
}

static void der_bits(der_buf *d, uint8_t unused, const void *p, size_t n)
{
	der_buf c = { .b = { unused }, .n = 1 };

	der_raw(&c, p, n);
	der_tlv(d, 0x03, c.b, c.n);
}

/* An AlgorithmIdentifier; param_nid is an OID parameter when ptype is
 * V_ASN1_OBJECT. */
static void der_algid(der_buf *d, int nid, int ptype, int param_nid)
{
	X509_ALGOR *a = X509_ALGOR_new();
	unsigned char *p = NULL;
	int n;

	assert_int_equal(X509_ALGOR_set0(a, OBJ_nid2obj(nid), ptype,
					 ptype == V_ASN1_OBJECT ? OBJ_nid2obj(param_nid) : NULL),
			 1);
	n = i2d_X509_ALGOR(a, &p);
	assert_true(n > 0);
	der_raw(d, p, (size_t)n);
	OPENSSL_free(p);
	X509_ALGOR_free(a);
}

/* A positive INTEGER from big-endian magnitude bytes (negative: as is). */
static void der_int(der_buf *d, const uint8_t *mag, size_t n, bool negative)
{
	der_buf c = { 0 };

	if (!negative && (mag[0] & 0x80))
		der_raw(&c, "", 1);
	der_raw(&c, mag, n);
	der_tlv(d, 0x02, c.b, c.n);
}

/* RSAPublicKey with the given modulus and exponent. */
static void der_rsa_pub(der_buf *d, const BIGNUM *n, const BIGNUM *e, bool negative_n)
{
	uint8_t nb[600], eb[16];
	der_buf c = { 0 };
	int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);

	der_int(&c, nb, (size_t)nl, negative_n);
	der_int(&c, eb, (size_t)el, false);
	der_tlv(d, 0x30, c.b, c.n);
}

/* SubjectPublicKeyInfo from an AlgorithmIdentifier and key bits. */
static void der_spki(der_buf *d, const der_buf *algid, uint8_t unused, const void *bits, size_t n)
{
	der_buf c = { 0 };

	der_raw(&c, algid->b, algid->n);
	der_bits(&c, unused, bits, n);
	der_tlv(d, 0x30, c.b, c.n);
}

typedef struct csr_spec {
	EVP_PKEY *key;          /* signs the request */
	const der_buf *spki;    /* NULL: key's own SubjectPublicKeyInfo */
	uint8_t version;
	const der_buf *attrs;   /* NULL: an empty [0] attribute set */
	bool no_attrs;          /* leave the attributes field out */
	const der_buf *extra;   /* appended inside CertificationRequestInfo */
	int sig_nid;
	int sig_ptype;
	const EVP_MD *md;
	uint8_t sig_unused;
	const der_buf *trailer; /* appended inside CertificationRequest */
} csr_spec;

/* What a well-behaved client sends for key. */
static csr_spec spec_for(EVP_PKEY *key)
{
	csr_spec s = { .key = key, .sig_ptype = V_ASN1_UNDEF };

	if (EVP_PKEY_is_a(key, "RSA")) {
		s.sig_nid = NID_sha256WithRSAEncryption;
		s.sig_ptype = V_ASN1_NULL;
		s.md = EVP_sha256();
	} else if (EVP_PKEY_is_a(key, "ED25519")) {
		s.sig_nid = NID_ED25519;
	} else if (EVP_PKEY_get_bits(key) == 384) {
		s.sig_nid = NID_ecdsa_with_SHA384;
		s.md = EVP_sha384();
	} else {
		s.sig_nid = NID_ecdsa_with_SHA256;
		s.md = EVP_sha256();
	}
	return s;
}

static uint8_t *csr_build(const csr_spec *s, size_t *len)
{
	der_buf c = { 0 }, info = { 0 }, outc = { 0 }, out = { 0 };
	X509_NAME *name = X509_NAME_new();
	unsigned char *p = NULL, sig[1024];
	size_t sig_len = sizeof(sig);
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	int n;

	der_tlv(&c, 0x02, &s->version, 1);
	assert_int_equal(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC,
						    (const unsigned char *)"node", -1, -1, 0),
			 1);
	n = i2d_X509_NAME(name, &p);
	der_raw(&c, p, (size_t)n);
	OPENSSL_free(p);
	p = NULL;
	if (s->spki) {
		der_raw(&c, s->spki->b, s->spki->n);
	} else {
		n = i2d_PUBKEY(s->key, &p);
		assert_true(n > 0);
		der_raw(&c, p, (size_t)n);
		OPENSSL_free(p);
	}
	if (s->attrs)
		der_raw(&c, s->attrs->b, s->attrs->n);
	else if (!s->no_attrs)
		der_tlv(&c, 0xa0, NULL, 0);
	if (s->extra)
		der_raw(&c, s->extra->b, s->extra->n);
	der_tlv(&info, 0x30, c.b, c.n);

	assert_int_equal(EVP_DigestSignInit(mctx, NULL, s->md, NULL, s->key), 1);
	assert_int_equal(EVP_DigestSign(mctx, sig, &sig_len, info.b, info.n), 1);
	der_raw(&outc, info.b, info.n);
	der_algid(&outc, s->sig_nid, s->sig_ptype, 0);
	der_bits(&outc, s->sig_unused, sig, sig_len);
	if (s->trailer)
		der_raw(&outc, s->trailer->b, s->trailer->n);
	der_tlv(&out, 0x30, outc.b, outc.n);

	EVP_MD_CTX_free(mctx);
	X509_NAME_free(name);
	*len = out.n;
	p = malloc(out.n);
	assert_non_null(p);
	memcpy(p, out.b, out.n);
	return p;
}

/* Parses a hand-built CSR; NULL want: must be accepted (then a leaf is
 * issued for it and checked against check_key when given). */
static void expect_csr(world *w, const csr_spec *s, int want_code, const char *want_msg,
		       EVP_PKEY *check_key)
{
	size_t len = 0;
	uint8_t *der = csr_build(s, &len);
	sigil_err err = { 0 };
	EVP_PKEY *pub = NULL;
	int r = ca_csr_parse(der, len, &pub, &err);

	if (r != want_code)
		fail_msg("CSR parse gave %d (%s), expected %d (%s)", r, err.msg, want_code,
			 want_msg ? want_msg : "accepted");
	if (want_code == 0) {
		X509 *leaf = NULL;
		ca_leaf_request req = basic_req();

		assert_non_null(pub);
		assert_int_equal(ca_issue_from_csr(w->cas[3], der, len, &req, &leaf, &err), 0);
		assert_int_equal(X509_verify(leaf, X509_get0_pubkey(w->cas[3]->cert)), 1);
		if (check_key) {
			assert_int_equal(EVP_PKEY_eq(pub, check_key), 1);
			assert_int_equal(X509_check_private_key(leaf, check_key), 1);
		}
		X509_free(leaf);
		EVP_PKEY_free(pub);
	} else {
		assert_null(pub);
		if (want_msg && !strstr(err.msg, want_msg))
			fail_msg("error \"%s\" does not mention \"%s\"", err.msg, want_msg);
		/* The issuing path refuses it the same way. */
		X509 *leaf = NULL;
		ca_leaf_request req = basic_req();
		assert_int_equal(ca_issue_from_csr(w->cas[3], der, len, &req, &leaf, &err), want_code);
		assert_null(leaf);
	}
	free(der);
}

/* The structure of PKCS#10: version, attributes, trailing data. */
static void test_csr_structure(void **state)
{
	world *w = *state;
	der_buf b = { 0 };

	/* The builder itself makes acceptable requests of every key type. */
	for (size_t k = 0; k < N_ALGS; k++) {
		csr_spec s = spec_for(w->keys[k]);
		expect_csr(w, &s, 0, NULL, w->keys[k]);
	}
	csr_spec s = spec_for(w->keys[3]);
	/* RFC 2986: version 0 only. */
	s.version = 1;
	expect_csr(w, &s, SIGIL_E_INVALID, "version", NULL);
	s.version = 0;
	/* A missing attribute set is tolerated, as OpenSSL does. */
	s.no_attrs = true;
	expect_csr(w, &s, 0, NULL, w->keys[3]);
	s.no_attrs = false;
	/* Well-formed attributes are ignored: challengePassword. */
	static const uint8_t pw_attr[] = { 0xa0, 0x17, 0x30, 0x15, 0x06, 0x09, 0x2a, 0x86, 0x48,
					   0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07, 0x31, 0x08, 0x0c,
					   0x06, 's', 'e', 'c', 'r', 'e', 't' };
	der_raw(&b, pw_attr, sizeof(pw_attr));
	s.attrs = &b;
	expect_csr(w, &s, 0, NULL, w->keys[3]);
	/* Attribute garbage: not an Attribute, an Attribute without its SET of
	 * values, a value SET that overruns. */
	static const uint8_t garbage1[] = { 0xa0, 0x03, 0x02, 0x01, 0x05 };
	static const uint8_t garbage2[] = { 0xa0, 0x0e, 0x30, 0x0c, 0x06, 0x09, 0x2a, 0x86, 0x48,
					    0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07, 0x05, 0x00 };
	static const uint8_t garbage3[] = { 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48,
					    0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07, 0x31, 0x09, 0x0c };
	const struct {
		const uint8_t *p;
		size_t n;
	} garbage[] = { { garbage1, sizeof(garbage1) },
			{ garbage2, sizeof(garbage2) },
			{ garbage3, sizeof(garbage3) } };
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(garbage); i++) {
		b.n = 0;
		der_raw(&b, garbage[i].p, garbage[i].n);
		expect_csr(w, &s, SIGIL_E_INVALID, "not valid DER", NULL);
	}
	s.attrs = NULL;
	/* An extra field inside CertificationRequestInfo, or a fourth one in
	 * CertificationRequest: both are trailing data DER forbids. */
	static const uint8_t null_der[] = { 0x05, 0x00 };
	b.n = 0;
	der_raw(&b, null_der, sizeof(null_der));
	s.extra = &b;
	expect_csr(w, &s, SIGIL_E_INVALID, "not valid DER", NULL);
	s.extra = NULL;
	s.trailer = &b;
	expect_csr(w, &s, SIGIL_E_INVALID, "not valid DER", NULL);
}

/* The signature algorithm must be one we accept and suit the key. */
static void test_csr_signature_algorithm(void **state)
{
	world *w = *state;
	static const struct {
		size_t key;
		int nid;
		int ptype;
		const EVP_MD *(*md)(void);
		int code;
		const char *msg;
	} cases[] = {
		/* Wrong family for the key. */
		{ 3, NID_sha256WithRSAEncryption, V_ASN1_NULL, EVP_sha256, SIGIL_E_INVALID, "does not go with" },
		{ 0, NID_ecdsa_with_SHA256, V_ASN1_UNDEF, EVP_sha256, SIGIL_E_INVALID, "does not go with" },
		{ 5, NID_ecdsa_with_SHA256, V_ASN1_UNDEF, NULL, SIGIL_E_INVALID, "does not go with" },
		{ 3, NID_ED25519, V_ASN1_UNDEF, EVP_sha256, SIGIL_E_INVALID, "does not go with" },
		/* Weak or unknown digests. */
		{ 3, NID_ecdsa_with_SHA1, V_ASN1_UNDEF, EVP_sha1, SIGIL_E_INVALID, "not accepted" },
		{ 0, NID_sha1WithRSAEncryption, V_ASN1_NULL, EVP_sha1, SIGIL_E_INVALID, "not accepted" },
		{ 0, NID_md5WithRSAEncryption, V_ASN1_NULL, EVP_md5, SIGIL_E_INVALID, "not accepted" },
		{ 3, NID_ecdsa_with_SHA224, V_ASN1_UNDEF, EVP_sha224, SIGIL_E_INVALID, "not accepted" },
		/* RSASSA-PSS is refused by name. */
		{ 0, NID_rsassaPss, V_ASN1_UNDEF, EVP_sha256, SIGIL_E_INVALID, "RSASSA-PSS" },
		/* Parameters: absent for ECDSA and EdDSA, NULL or absent for RSA. */
		{ 3, NID_ecdsa_with_SHA256, V_ASN1_NULL, EVP_sha256, SIGIL_E_INVALID, "parameters" },
		{ 5, NID_ED25519, V_ASN1_NULL, NULL, SIGIL_E_INVALID, "parameters" },
		{ 0, NID_sha256WithRSAEncryption, V_ASN1_UNDEF, EVP_sha256, 0, NULL },
		/* Any of SHA-256/384/512 with any of our keys. */
		{ 3, NID_ecdsa_with_SHA384, V_ASN1_UNDEF, EVP_sha384, 0, NULL },
		{ 3, NID_ecdsa_with_SHA512, V_ASN1_UNDEF, EVP_sha512, 0, NULL },
		{ 4, NID_ecdsa_with_SHA256, V_ASN1_UNDEF, EVP_sha256, 0, NULL },
		{ 1, NID_sha512WithRSAEncryption, V_ASN1_NULL, EVP_sha512, 0, NULL },
		{ 2, NID_sha384WithRSAEncryption, V_ASN1_NULL, EVP_sha384, 0, NULL },
		/* The OID says SHA-384, the signature was made over SHA-256. */
		{ 3, NID_ecdsa_with_SHA384, V_ASN1_UNDEF, EVP_sha256, SIGIL_E_INVALID, "does not verify" },
	};

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		csr_spec s = spec_for(w->keys[cases[i].key]);
		s.sig_nid = cases[i].nid;
		s.sig_ptype = cases[i].ptype;
		s.md = cases[i].md ? cases[i].md() : NULL;
		expect_csr(w, &s, cases[i].code, cases[i].msg,
			   cases[i].code == 0 ? w->keys[cases[i].key] : NULL);
	}
	/* A signature BIT STRING with unused bits. */
	csr_spec s = spec_for(w->keys[3]);
	s.sig_unused = 3;
	expect_csr(w, &s, SIGIL_E_INVALID, "whole number", NULL);
	/* Signed by another key than the one it carries. */
	EVP_PKEY *other = fx_make_key(SIGIL_KEY_ECDSA_P256);
	unsigned char *spki = NULL;
	der_buf b = { 0 };
	int n = i2d_PUBKEY(other, &spki);
	der_raw(&b, spki, (size_t)n);
	s = spec_for(w->keys[3]);
	s.spki = &b;
	expect_csr(w, &s, SIGIL_E_INVALID, "does not verify", NULL);
	OPENSSL_free(spki);
	EVP_PKEY_free(other);
}

/* The SubjectPublicKeyInfo: every key type's encoding rules. */
static void test_csr_public_key_encoding(void **state)
{
	world *w = *state;
	uint8_t point[200];
	size_t point_len = 0;
	der_buf alg = { 0 }, spki = { 0 }, rsa = { 0 };
	csr_spec s;

	/* ---- EC (RFC 5480) ---- */
	assert_int_equal(EVP_PKEY_get_octet_string_param(w->keys[3], OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
							  point, sizeof(point), &point_len),
			 1);
	assert_int_equal(point_len, 65);
	der_algid(&alg, NID_X9_62_id_ecPublicKey, V_ASN1_OBJECT, NID_X9_62_prime256v1);
	s = spec_for(w->keys[3]);
	s.spki = &spki;
	/* The point at infinity, which OpenSSL alone would take. */
	static const uint8_t infinity[] = { 0x00 };
	der_spki(&spki, &alg, 0, infinity, sizeof(infinity));
	expect_csr(w, &s, SIGIL_E_INVALID, "uncompressed or compressed point", NULL);
	/* Hybrid form (0x06/0x07), and a compressed prefix on a full point. */
	uint8_t bad[200];
	memcpy(bad, point, point_len);
	bad[0] = 0x06;
	spki.n = 0;
	der_spki(&spki, &alg, 0, bad, point_len);
	expect_csr(w, &s, SIGIL_E_INVALID, "uncompressed or compressed point", NULL);
	bad[0] = 0x02;
	spki.n = 0;
	der_spki(&spki, &alg, 0, bad, point_len);
	expect_csr(w, &s, SIGIL_E_INVALID, "uncompressed or compressed point", NULL);
	/* Truncated point. */
	spki.n = 0;
	der_spki(&spki, &alg, 0, point, point_len - 1);
	expect_csr(w, &s, SIGIL_E_INVALID, "uncompressed or compressed point", NULL);
	/* Not on the curve. */
	memcpy(bad, point, point_len);
	bad[point_len - 1] ^= 0x01;
	spki.n = 0;
	der_spki(&spki, &alg, 0, bad, point_len);
	expect_csr(w, &s, SIGIL_E_INVALID, "not a point on curve", NULL);
	/* Unused bits in the key's BIT STRING. */
	spki.n = 0;
	der_spki(&spki, &alg, 1, point, point_len);
	expect_csr(w, &s, SIGIL_E_INVALID, "whole number of octets", NULL);
	/* The compressed form of the real key is accepted (RFC 5480 MAY). */
	uint8_t comp[33];
	comp[0] = (uint8_t)(0x02 | (point[64] & 1));
	memcpy(comp + 1, point + 1, 32);
	spki.n = 0;
	der_spki(&spki, &alg, 0, comp, sizeof(comp));
	expect_csr(w, &s, 0, NULL, w->keys[3]);
	/* Curve parameters other than a named curve, or none. */
	alg.n = 0;
	der_algid(&alg, NID_X9_62_id_ecPublicKey, V_ASN1_UNDEF, 0);
	spki.n = 0;
	der_spki(&spki, &alg, 0, point, point_len);
	expect_csr(w, &s, SIGIL_E_INVALID, "explicit or missing curve", NULL);
	static const uint8_t explicit_alg[] = { 0x30, 0x0e, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
						0x3d, 0x02, 0x01, 0x30, 0x03, 0x02, 0x01, 0x01 };
	alg.n = 0;
	der_raw(&alg, explicit_alg, sizeof(explicit_alg));
	spki.n = 0;
	der_spki(&spki, &alg, 0, point, point_len);
	expect_csr(w, &s, SIGIL_E_INVALID, "explicit or missing curve", NULL);
	/* A P-256 point declared as P-384. */
	alg.n = 0;
	der_algid(&alg, NID_X9_62_id_ecPublicKey, V_ASN1_OBJECT, NID_secp384r1);
	spki.n = 0;
	der_spki(&spki, &alg, 0, point, point_len);
	expect_csr(w, &s, SIGIL_E_INVALID, "secp384r1", NULL);

	/* ---- RSA (RFC 3279, RFC 8017) ---- */
	BIGNUM *n = NULL, *e = NULL;
	assert_int_equal(EVP_PKEY_get_bn_param(w->keys[0], OSSL_PKEY_PARAM_RSA_N, &n), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(w->keys[0], OSSL_PKEY_PARAM_RSA_E, &e), 1);
	s = spec_for(w->keys[0]);
	s.spki = &spki;
	/* Parameters absent: tolerated, and the certificate gets NULL. */
	alg.n = 0;
	der_algid(&alg, NID_rsaEncryption, V_ASN1_UNDEF, 0);
	der_rsa_pub(&rsa, n, e, false);
	spki.n = 0;
	der_spki(&spki, &alg, 0, rsa.b, rsa.n);
	expect_csr(w, &s, 0, NULL, w->keys[0]);
	{
		size_t len = 0;
		uint8_t *der = csr_build(&s, &len);
		ca_leaf_request req = basic_req();
		sigil_err err = { 0 };
		X509 *leaf = NULL;
		assert_int_equal(ca_issue_from_csr(w->cas[3], der, len, &req, &leaf, &err), 0);
		assert_spki_is(leaf, w->keys[0]);
		X509_free(leaf);
		free(der);
	}
	/* Other parameters. */
	alg.n = 0;
	der_algid(&alg, NID_rsaEncryption, V_ASN1_OBJECT, NID_sha256);
	spki.n = 0;
	der_spki(&spki, &alg, 0, rsa.b, rsa.n);
	expect_csr(w, &s, SIGIL_E_INVALID, "unexpected algorithm parameters", NULL);
	alg.n = 0;
	der_algid(&alg, NID_rsaEncryption, V_ASN1_NULL, 0);
	/* A byte after the RSAPublicKey, inside the BIT STRING. */
	der_raw(&rsa, "", 1);
	spki.n = 0;
	der_spki(&spki, &alg, 0, rsa.b, rsa.n);
	expect_csr(w, &s, SIGIL_E_INVALID, "not a valid RSAPublicKey", NULL);
	/* Truncated RSAPublicKey. */
	spki.n = 0;
	der_spki(&spki, &alg, 0, rsa.b, rsa.n - 10);
	expect_csr(w, &s, SIGIL_E_INVALID, "not a valid RSAPublicKey", NULL);
	/* Exponent 1, even exponent, even modulus, negative modulus. */
	BIGNUM *n2 = BN_dup(n), *e2 = BN_dup(e);
	assert_int_equal(BN_set_word(e2, 1), 1);
	rsa.n = 0;
	der_rsa_pub(&rsa, n2, e2, false);
	spki.n = 0;
	der_spki(&spki, &alg, 0, rsa.b, rsa.n);
	expect_csr(w, &s, SIGIL_E_INVALID, "malformed", NULL);
	assert_int_equal(BN_set_word(e2, 65536), 1);
	rsa.n = 0;
	der_rsa_pub(&rsa, n2, e2, false);
	spki.n = 0;
	der_spki(&spki, &alg, 0, rsa.b, rsa.n);
	expect_csr(w, &s, SIGIL_E_INVALID, "malformed", NULL);
	assert_int_equal(BN_clear_bit(n2, 0), 1);
	rsa.n = 0;
	der_rsa_pub(&rsa, n2, e, false);
	spki.n = 0;
	der_spki(&spki, &alg, 0, rsa.b, rsa.n);
	expect_csr(w, &s, SIGIL_E_INVALID, "malformed", NULL);
	rsa.n = 0;
	der_rsa_pub(&rsa, n, e, true);
	spki.n = 0;
	der_spki(&spki, &alg, 0, rsa.b, rsa.n);
	expect_csr(w, &s, SIGIL_E_INVALID, "negative", NULL);
	/* A 2047-bit modulus is not one of our sizes. */
	assert_int_equal(BN_rshift1(n2, n), 1);
	assert_int_equal(BN_set_bit(n2, 0), 1);
	rsa.n = 0;
	der_rsa_pub(&rsa, n2, e, false);
	spki.n = 0;
	der_spki(&spki, &alg, 0, rsa.b, rsa.n);
	expect_csr(w, &s, SIGIL_E_INVALID, "RSA 2047", NULL);
	/* Unused bits. */
	rsa.n = 0;
	der_rsa_pub(&rsa, n, e, false);
	spki.n = 0;
	der_spki(&spki, &alg, 2, rsa.b, rsa.n);
	expect_csr(w, &s, SIGIL_E_INVALID, "whole number of octets", NULL);
	BN_free(n2);
	BN_free(e2);
	BN_free(n);
	BN_free(e);

	/* ---- Ed25519 (RFC 8410) and others ---- */
	uint8_t raw[32];
	size_t raw_len = sizeof(raw);
	assert_int_equal(EVP_PKEY_get_raw_public_key(w->keys[5], raw, &raw_len), 1);
	s = spec_for(w->keys[5]);
	s.spki = &spki;
	alg.n = 0;
	der_algid(&alg, NID_ED25519, V_ASN1_NULL, 0);
	spki.n = 0;
	der_spki(&spki, &alg, 0, raw, sizeof(raw));
	expect_csr(w, &s, SIGIL_E_INVALID, "parameters", NULL);
	alg.n = 0;
	der_algid(&alg, NID_ED25519, V_ASN1_UNDEF, 0);
	spki.n = 0;
	der_spki(&spki, &alg, 0, raw, sizeof(raw) - 1);
	expect_csr(w, &s, SIGIL_E_INVALID, "not 32", NULL);
	static const struct {
		int nid;
		const char *name;
	} others[] = { { NID_X25519, "X25519" }, { NID_dsa, "DSA" }, { NID_rsassaPss, "RSASSA-PSS" } };
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(others); i++) {
		alg.n = 0;
		der_algid(&alg, others[i].nid, V_ASN1_UNDEF, 0);
		spki.n = 0;
		der_spki(&spki, &alg, 0, raw, sizeof(raw));
		expect_csr(w, &s, SIGIL_E_INVALID, others[i].name, NULL);
	}
}

/* ---- threads -------------------------------------------------------------- */

#define N_THREADS 4
#define ISSUES_PER_THREAD 12

typedef struct thread_job {
	const ca_authority *ca;
	uint8_t *csr[3];
	size_t csr_len[3];
	EVP_PKEY *keys[3];
	int failures;
} thread_job;

static void *issue_thread(void *arg)
{
	thread_job *j = arg;

	for (int i = 0; i < ISSUES_PER_THREAD; i++) {
		ca_leaf_request req = basic_req();
		sigil_err err = { 0 };
		X509 *leaf = NULL;
		int k = i % 3;

		if (ca_issue_from_csr(j->ca, j->csr[k], j->csr_len[k], &req, &leaf, &err) != 0 ||
		    X509_verify(leaf, X509_get0_pubkey(j->ca->cert)) != 1 ||
		    X509_check_private_key(leaf, j->keys[k]) != 1)
			j->failures++;
		X509_free(leaf);
	}
	return NULL;
}

/* Threads share one authority (its signing context) and the key
 * templates, which the first of them may be building. */
static void test_issue_from_threads(void **state)
{
	world *w = *state;
	/* RSA-2048, P-256 and Ed25519, as CAs and as leaves. */
	static const size_t cas[] = { 0, 3, 5 };

	for (size_t c = 0; c < SIGIL_ARRAY_SIZE(cas); c++) {
		pthread_t th[N_THREADS];
		thread_job jobs[N_THREADS];

		for (int t = 0; t < N_THREADS; t++) {
			jobs[t] = (thread_job){ .ca = w->cas[cas[c]] };
			for (int k = 0; k < 3; k++) {
				jobs[t].keys[k] = w->keys[cas[k]];
				jobs[t].csr[k] = fx_make_csr(jobs[t].keys[k], NULL, &jobs[t].csr_len[k]);
			}
		}
		for (int t = 0; t < N_THREADS; t++)
			assert_int_equal(pthread_create(&th[t], NULL, issue_thread, &jobs[t]), 0);
		for (int t = 0; t < N_THREADS; t++) {
			assert_int_equal(pthread_join(th[t], NULL), 0);
			assert_int_equal(jobs[t].failures, 0);
			for (int k = 0; k < 3; k++)
				free(jobs[t].csr[k]);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_ca_and_leaf_type),
		cmocka_unit_test(test_names_in_certificate),
		cmocka_unit_test(test_empty_subject_critical_san),
		cmocka_unit_test(test_name_limits_and_errors),
		cmocka_unit_test(test_lifetime_capping),
		cmocka_unit_test(test_jitter_bounds),
		cmocka_unit_test(test_issue_from_intermediate),
		cmocka_unit_test(test_csr_round_trip),
		cmocka_unit_test(test_csr_bad_input),
		cmocka_unit_test(test_csr_unsupported_key),
		cmocka_unit_test(test_csr_create_bad),
		cmocka_unit_test(test_pubkey_path_every_type),
		cmocka_unit_test(test_issue_with_handmade_authority),
		cmocka_unit_test(test_csr_structure),
		cmocka_unit_test(test_csr_signature_algorithm),
		cmocka_unit_test(test_csr_public_key_encoding),
		cmocka_unit_test(test_issue_from_threads),
	};
	return cmocka_run_group_tests(tests, setup_world, teardown_world);
}
