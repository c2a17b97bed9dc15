#include "tests/helpers/ks_fixtures.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "util/fs.h"

const char *ksf_alg_name(ksf_alg alg)
{
	switch (alg) {
	case KSF_RSA: return "RSA";
	case KSF_EC: return "EC";
	case KSF_ED25519: return "Ed25519";
	default: return "?";
	}
}

static EVP_PKEY *ksf_keygen(ksf_alg alg)
{
	EVP_PKEY *k = NULL;

	switch (alg) {
	case KSF_RSA: k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048); break;
	case KSF_EC: k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); break;
	case KSF_ED25519: k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"); break;
	default: break;
	}
	if (!k) {
		ERR_print_errors_fp(stderr);
		fail_msg("key generation failed for %s", ksf_alg_name(alg));
	}
	return k;
}

static void ksf_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key, signed by issuer_key (issuer NULL: self-signed). */
static X509 *ksf_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
		      bool ca)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	ASN1_INTEGER *serial;
	unsigned char sn[16];
	BIGNUM *bn;
	const EVP_MD *md;

	assert_non_null(x);
	assert_non_null(name);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(RAND_bytes(sn, sizeof(sn)), 1);
	sn[0] &= 0x7f;
	bn = BN_bin2bn(sn, sizeof(sn), NULL);
	serial = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	assert_int_equal(X509_set_serialNumber(x, serial), 1);
	ASN1_INTEGER_free(serial);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
						    (const unsigned char *)cn, -1, -1, 0),
			 1);
	assert_int_equal(X509_set_subject_name(x, name), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name),
			 1);
	X509_NAME_free(name);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	if (ca) {
		ksf_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
		ksf_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		ksf_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
		ksf_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
		ksf_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
		ksf_ext(x, issuer, NID_subject_alt_name, "DNS:leaf.example");
	}
	ksf_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
	ksf_ext(x, issuer ? issuer : x, NID_authority_key_identifier, "keyid:always");
	/* Ed25519 signs without a separate digest. */
	md = EVP_PKEY_is_a(issuer_key, "ED25519") ? NULL : EVP_sha256();
	if (X509_sign(x, issuer_key, md) <= 0) {
		ERR_print_errors_fp(stderr);
		fail_msg("signing %s failed", cn);
	}
	return x;
}

void ksf_pki_new(ksf_alg alg, ksf_pki *p)
{
	EVP_PKEY *other_key;

	memset(p, 0, sizeof(*p));
	p->alg = alg;
	p->root_key = ksf_keygen(alg);
	p->inter_key = ksf_keygen(alg);
	p->leaf_key = ksf_keygen(alg);
	p->root = ksf_cert("sigil test root", p->root_key, NULL, p->root_key, true);
	p->inter = ksf_cert("sigil test intermediate", p->inter_key, p->root, p->root_key, true);
	p->leaf = ksf_cert("leaf.example", p->leaf_key, p->inter, p->inter_key, false);
	other_key = ksf_keygen(KSF_EC);
	p->other_root = ksf_cert("sigil other root", other_key, NULL, other_key, true);
	EVP_PKEY_free(other_key);
	p->chain = sk_X509_new_null();
	p->trust = sk_X509_new_null();
	assert_non_null(p->chain);
	assert_non_null(p->trust);
	assert_true(sk_X509_push(p->chain, p->inter) > 0);
	assert_true(sk_X509_push(p->trust, p->root) > 0);
	assert_true(sk_X509_push(p->trust, p->other_root) > 0);
}

void ksf_pki_free(ksf_pki *p)
{
	sk_X509_free(p->chain);
	sk_X509_free(p->trust);
	X509_free(p->root);
	X509_free(p->inter);
	X509_free(p->leaf);
	X509_free(p->other_root);
	EVP_PKEY_free(p->root_key);
	EVP_PKEY_free(p->inter_key);
	EVP_PKEY_free(p->leaf_key);
	memset(p, 0, sizeof(*p));
}

ks_material ksf_material(const ksf_pki *p)
{
	ks_material m = {
		.key = p->leaf_key,
		.leaf = p->leaf,
		.chain = p->chain,
		.trust = p->trust,
	};
	return m;
}

const ks_file *ksf_find(const ks_fileset *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++)
		if (!strcmp(fs->files[i].name, name))
			return &fs->files[i];
	return NULL;
}

char *ksf_mkdtemp(void)
{
	char tmpl[] = "/tmp/sigil-ks-test.XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	d = strdup(d);
	assert_non_null(d);
	return d;
}

void ksf_rmdir(char *dir)
{
	sigil_err err = {0};

	if (!dir)
		return;
	assert_int_equal(sigil_fs_remove_tree(dir, &err), 0);
	free(dir);
}

char *ksf_write(const char *dir, const char *name, const void *data, size_t len)
{
	char *path = sigil_path_join(dir, name);
	FILE *f;

	assert_non_null(path);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

unsigned char *ksf_read(const char *path, size_t *len)
{
	sigil_err err = {0};
	uint8_t *data = NULL;

	if (sigil_fs_read_file(path, SIGIL_MAX_FILE_SIZE, &data, len, &err) < 0)
		fail_msg("reading %s: %s", path, err.msg);
	return data;
}

int ksf_run(const char *cmd, char **out)
{
	char full[8192];
	FILE *f;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int st;

	assert_non_null(buf);
	snprintf(full, sizeof(full), "%s 2>&1", cmd);
	f = popen(full, "r");
	if (!f) {
		free(buf);
		*out = strdup("");
		return -1;
	}
	for (;;) {
		size_t got;

		if (cap - n < 1024) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		if (got == 0)
			break;
		n += got;
	}
	buf[n] = '\0';
	st = pclose(f);
	*out = buf;
	if (st < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

bool ksf_have(const char *prog)
{
	char cmd[512];
	char *out = NULL;
	int r;

	snprintf(cmd, sizeof(cmd), "command -v %s", prog);
	r = ksf_run(cmd, &out);
	free(out);
	return r == 0;
}

size_t ksf_count(const char *hay, const char *needle)
{
	size_t n = 0;
	size_t l = strlen(needle);

	for (const char *p = strstr(hay, needle); p; p = strstr(p + l, needle))
		n++;
	return n;
}

bool ksf_key_eq(const EVP_PKEY *a, const EVP_PKEY *b)
{
	return a && b && EVP_PKEY_eq(a, b) == 1;
}

static size_t ksf_p8(EVP_PKEY *k, unsigned char **der)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(k);
	int n;

	assert_non_null(p8);
	*der = NULL;
	n = i2d_PKCS8_PRIV_KEY_INFO(p8, der);
	PKCS8_PRIV_KEY_INFO_free(p8);
	assert_true(n > 0);
	return (size_t)n;
}

bool ksf_key_der_eq(EVP_PKEY *a, EVP_PKEY *b)
{
	unsigned char *da, *db;
	size_t la = ksf_p8(a, &da), lb = ksf_p8(b, &db);
	bool eq = la == lb && memcmp(da, db, la) == 0;

	OPENSSL_clear_free(da, la);
	OPENSSL_clear_free(db, lb);
	return eq;
}

int ksf_keytool(const char *args, const char *password, char **out)
{
	char cmd[4096];
	int rc;

	assert_int_equal(setenv("KSF_PW", password ? password : "", 1), 0);
	/* keytool's locale decides how it decodes the password from the
	 * environment; pin it to UTF-8. */
	snprintf(cmd, sizeof(cmd), "LC_ALL=C.UTF-8 keytool %s", args);
	rc = ksf_run(cmd, out);
	assert_int_equal(unsetenv("KSF_PW"), 0);
	return rc;
}

bool ksf_contains(const void *d, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	const unsigned char *p = d;

	for (size_t i = 0; n <= len && i <= len - n; i++)
		if (memcmp(p + i, needle, n) == 0)
			return true;
	return false;
}
