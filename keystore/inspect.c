#define _GNU_SOURCE
#include "keystore/inspect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "ca/authority.h"
#include "ca/key.h"
#include "kerberos/keytab.h"
#include "keystore/keystore.h"
#include "util/fs.h"
#include "util/mem.h"

static bool inet_ntop_v(int v, const unsigned char *d, char *buf, size_t len)
{
	return inet_ntop(v == 4 ? AF_INET : AF_INET6, d, buf, (socklen_t)len) != NULL;
}

static void cert_info_free(ks_cert_info *ci)
{
	for (size_t i = 0; i < ci->n_sans; i++)
		free(ci->sans[i]);
	free(ci->sans);
	ci->sans = NULL;
	ci->n_sans = 0;
}

static void name_oneline(const X509_NAME *n, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long l;

	buf[0] = '\0';
	if (!b)
		return;
	X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	l = BIO_get_mem_data(b, &p);
	if (l > 0)
		snprintf(buf, len, "%.*s", (int)l, p);
	BIO_free(b);
}

static int add_san(ks_cert_info *ci, const char *prefix, const char *v, size_t vlen)
{
	char **n;
	size_t len;

	if (ci->n_sans >= KS_INSPECT_MAX_SANS)
		return 0;
	n = realloc(ci->sans, (ci->n_sans + 1) * sizeof(*n));
	if (!n)
		return SIGIL_E_NOMEM;
	ci->sans = n;
	len = strlen(prefix) + vlen + 1;
	ci->sans[ci->n_sans] = malloc(len);
	if (!ci->sans[ci->n_sans])
		return SIGIL_E_NOMEM;
	snprintf(ci->sans[ci->n_sans], len, "%s%.*s", prefix, (int)vlen, v);
	ci->n_sans++;
	return 0;
}

static int cert_info_fill(X509 *x, ks_cert_info *ci)
{
	GENERAL_NAMES *gens;
	const ASN1_INTEGER *serial;
	BIGNUM *bn;
	EVP_PKEY *pk;
	int r = 0;

	memset(ci, 0, sizeof(*ci));
	name_oneline(X509_get_subject_name(x), ci->subject, sizeof(ci->subject));
	name_oneline(X509_get_issuer_name(x), ci->issuer, sizeof(ci->issuer));
	ci->not_before = ca_asn1_time_to_time_t(X509_get0_notBefore(x));
	ci->not_after = ca_asn1_time_to_time_t(X509_get0_notAfter(x));
	ci->is_ca = X509_check_ca(x) > 0;
	serial = X509_get0_serialNumber(x);
	bn = ASN1_INTEGER_to_BN(serial, NULL);
	if (bn) {
		char *hex = BN_bn2hex(bn);
		if (hex) {
			snprintf(ci->serial, sizeof(ci->serial), "%s", hex);
			OPENSSL_free(hex);
		}
		BN_free(bn);
	}
	pk = X509_get0_pubkey(x);
	if (pk)
		ca_key_describe(pk, ci->key_type, sizeof(ci->key_type));
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && r == 0; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *d;
		char ip[64];

		switch (g->type) {
		case GEN_DNS:
			d = ASN1_STRING_get0_data(g->d.dNSName);
			r = add_san(ci, "DNS:", (const char *)d, (size_t)ASN1_STRING_length(g->d.dNSName));
			break;
		case GEN_URI:
			d = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
			r = add_san(ci, "URI:", (const char *)d,
				    (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier));
			break;
		case GEN_IPADD: {
			int l = ASN1_STRING_length(g->d.iPAddress);
			d = ASN1_STRING_get0_data(g->d.iPAddress);
			if ((l == 4 && inet_ntop_v(4, d, ip, sizeof(ip))) ||
			    (l == 16 && inet_ntop_v(6, d, ip, sizeof(ip))))
				r = add_san(ci, "IP:", ip, strlen(ip));
			break;
		}
		default:
			break;
		}
	}
	GENERAL_NAMES_free(gens);
	return r;
}

static ks_entry *entry_add(ks_file_info *fi)
{
	ks_entry *n;

	if (fi->n_entries >= KS_INSPECT_MAX_ENTRIES)
		return NULL;
	n = realloc(fi->entries, (fi->n_entries + 1) * sizeof(*n));
	if (!n)
		return NULL;
	fi->entries = n;
	memset(&n[fi->n_entries], 0, sizeof(*n));
	return &n[fi->n_entries++];
}

static void file_error(ks_file_info *fi, const char *msg, const char *suffix)
{
	size_t len = strlen(msg) + strlen(suffix) + 1;
	char *e = malloc(len);

	if (!e)
		return;
	snprintf(e, len, "%s%s", msg, suffix);
	free(fi->error);
	fi->error = e;
}

static int entry_add_cert(ks_file_info *fi, ks_entry_kind kind, const char *alias, X509 *x,
			  size_t chain_len, EVP_PKEY *key)
{
	ks_entry *e = entry_add(fi);

	if (!e)
		return SIGIL_E_NOMEM;
	e->kind = kind;
	if (alias)
		snprintf(e->alias, sizeof(e->alias), "%s", alias);
	e->chain_len = chain_len;
	if (key)
		ca_key_describe(key, e->key_type, sizeof(e->key_type));
	if (x) {
		e->has_cert = true;
		return cert_info_fill(x, &e->cert);
	}
	return 0;
}

/* PEM: any number of certificates and private keys, in any order. */
static int inspect_pem(ks_file_info *fi, const uint8_t *data, size_t len)
{
	BIO *b = BIO_new_mem_buf(data, (int)len);
	int r = 0;
	bool any = false;

	if (!b)
		return SIGIL_E_NOMEM;
	for (;;) {
		char *name = NULL, *header = NULL;
		unsigned char *der = NULL;
		long dlen = 0;

		if (!PEM_read_bio(b, &name, &header, &der, &dlen)) {
			ERR_clear_error();
			break;
		}
		any = true;
		const unsigned char *p = der;
		if (!strcmp(name, "CERTIFICATE")) {
			X509 *x = d2i_X509(NULL, &p, dlen);
			if (x)
				r = entry_add_cert(fi, KS_ENTRY_CERT, NULL, x, 0, NULL);
			else
				file_error(fi, "unparsable certificate", "");
			X509_free(x);
		} else if (strstr(name, "PRIVATE KEY")) {
			EVP_PKEY *k = NULL;
			if (!strcmp(name, "PRIVATE KEY"))
				k = d2i_AutoPrivateKey(NULL, &p, dlen);
			ks_entry *e = entry_add(fi);
			if (!e) {
				r = SIGIL_E_NOMEM;
			} else {
				e->kind = KS_ENTRY_PRIVATE_KEY;
				if (k)
					ca_key_describe(k, e->key_type, sizeof(e->key_type));
				else
					snprintf(e->key_type, sizeof(e->key_type), "%s", name);
			}
			EVP_PKEY_free(k);
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		if (der) {
			OPENSSL_cleanse(der, (size_t)dlen);
			OPENSSL_free(der);
		}
		if (r < 0)
			break;
	}
	BIO_free(b);
	if (!any && r == 0)
		snprintf(fi->format, sizeof(fi->format), "other");
	return r;
}

static int inspect_pkcs12(ks_file_info *fi, const uint8_t *data, size_t len, const char *password)
{
	const unsigned char *p = data;
	PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	STACK_OF(X509) *ca = NULL;
	int r = 0;

	if (!p12) {
		ERR_clear_error();
		snprintf(fi->format, sizeof(fi->format), "other");
		return 0;
	}
	if (!PKCS12_parse(p12, password ? password : "", &key, &cert, &ca)) {
		sigil_err e = {0};
		sigil_err_ssl(&e, SIGIL_E_PERM, "cannot open PKCS#12 store");
		file_error(fi, e.msg, " (wrong password?)");
		PKCS12_free(p12);
		return 0;
	}
	if (key || cert) {
		int alen = 0;
		const unsigned char *a = cert ? X509_alias_get0(cert, &alen) : NULL;
		char alias[80] = "";
		if (a)
			snprintf(alias, sizeof(alias), "%.*s", alen, a);
		r = entry_add_cert(fi, KS_ENTRY_KEY_PAIR, alias, cert,
				   1 + (size_t)(key && ca ? sk_X509_num(ca) : 0), key);
	}
	/* Without a key, every certificate is a trusted entry; with a key the
	 * rest of the certificates are its chain. */
	for (int i = 0; !key && r == 0 && i < sk_X509_num(ca); i++) {
		X509 *x = sk_X509_value(ca, i);
		int alen = 0;
		const unsigned char *a = X509_alias_get0(x, &alen);
		char alias[80] = "";
		if (a)
			snprintf(alias, sizeof(alias), "%.*s", alen, a);
		r = entry_add_cert(fi, KS_ENTRY_TRUSTED_CERT, alias, x, 1, NULL);
	}
	EVP_PKEY_free(key);
	X509_free(cert);
	sk_X509_pop_free(ca, X509_free);
	PKCS12_free(p12);
	return r;
}

static int inspect_jks(ks_file_info *fi, const uint8_t *data, size_t len, const char *password)
{
	ks_jks j = {0};
	sigil_err e = {0};
	int r = 0;

	if (ks_jks_parse(data, len, password ? password : "", &j, &e) < 0) {
		file_error(fi, e.msg, "");
		return 0;
	}
	for (size_t i = 0; i < j.n && r == 0; i++)
		r = entry_add_cert(fi, j.entries[i].is_key ? KS_ENTRY_KEY_PAIR : KS_ENTRY_TRUSTED_CERT,
				   j.entries[i].alias, j.entries[i].cert, j.entries[i].n_certs,
				   j.entries[i].key);
	ks_jks_free(&j);
	return r;
}

/* Lists every key of a keytab, not the key itself.  More entries than
 * KS_INSPECT_MAX_ENTRIES are counted in the file's error. */
static int inspect_keytab(ks_file_info *fi, const uint8_t *data, size_t len)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = NULL;
	sigil_err e = {0};
	char more[96];

	if (kerberos_keytab_parse(data, len, &kt, &e) < 0) {
		file_error(fi, e.msg, "");
		return 0;
	}
	for (size_t i = 0; i < kt->n; i++) {
		const kerberos_keytab_entry *ke = &kt->entries[i];
		const char *name = kerberos_enctype_name(ke->enctype);
		ks_entry *en;

		if (fi->n_entries >= KS_INSPECT_MAX_ENTRIES) {
			snprintf(more, sizeof(more), "%zu more keytab entries are not listed",
				 kt->n - i);
			file_error(fi, more, "");
			break;
		}
		if (!(en = entry_add(fi)))
			return SIGIL_E_NOMEM;
		en->kind = KS_ENTRY_KEYTAB;
		if (kerberos_keytab_entry_principal(ke, en->principal, sizeof(en->principal)) < 0)
			memcpy(en->principal + sizeof(en->principal) - 4, "...", 4);
		en->kvno = ke->kvno;
		en->enctype = ke->enctype;
		snprintf(en->enctype_name, sizeof(en->enctype_name), "%s", name ? name : "");
		en->timestamp = (time_t)ke->timestamp;
	}
	return 0;
}

static int inspect_file(int dirfd, const char *rel, const char *name, const char *password,
			ks_file_info *fi, sigil_err *err)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	struct stat st;
	sigil_err e = {0};

	fi->name = strdup(rel);
	if (!fi->name)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	/* Report the file itself: volume entries are links into ..data, which
	 * walk() has already checked to stay inside the volume. */
	if (fstatat(dirfd, name, &st, 0) == 0) {
		fi->mode = st.st_mode & 07777;
		fi->size = st.st_size;
	}
	if (sigil_fs_read_file_at(dirfd, name, SIGIL_MAX_FILE_SIZE, &data, &len, &e) < 0) {
		file_error(fi, e.msg, "");
		return 0;
	}
	if (len >= 4 && data[0] == 0xfe && data[1] == 0xed && data[2] == 0xfe && data[3] == 0xed) {
		snprintf(fi->format, sizeof(fi->format), "jks");
		int r = inspect_jks(fi, data, len, password);
		sigil_wipe(data, len);
		return r < 0 ? sigil_err_set(err, r, "out of memory") : 0;
	}
	if (len >= 2 && data[0] == 0x05 && data[1] == 0x02) {
		snprintf(fi->format, sizeof(fi->format), "keytab");
		int r = inspect_keytab(fi, data, len);
		sigil_wipe(data, len);
		return r < 0 ? sigil_err_set(err, r, "out of memory") : 0;
	}
	if (len > 0 && data[0] == 0x30) {
		snprintf(fi->format, sizeof(fi->format), "pkcs12");
		int r = inspect_pkcs12(fi, data, len, password);
		sigil_wipe(data, len);
		return r < 0 ? sigil_err_set(err, r, "out of memory") : 0;
	}
	snprintf(fi->format, sizeof(fi->format), "pem");
	int r = inspect_pem(fi, data, len);
	sigil_wipe(data, len);
	return r < 0 ? sigil_err_set(err, r, "out of memory") : 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const ks_file_info *)a)->name, ((const ks_file_info *)b)->name);
}

static int walk(int dirfd, const char *prefix, const char *password, ks_inspection *in,
		int depth, sigil_err *err)
{
	DIR *d;
	struct dirent *de;
	int r = 0;
	int fd = dup(dirfd);

	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot read directory");
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return sigil_err_errno(err, errno, "cannot read directory");
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		struct stat st;
		char rel[512];

		if (de->d_name[0] == '.')
			continue; /* ., .., staging and temp files */
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			/* Volumes use the AtomicWriter layout (name -> ..data/name):
			 * follow only relative links that stay inside the volume. */
			char lt[512];
			ssize_t ln = readlinkat(dirfd, de->d_name, lt, sizeof(lt) - 1);
			if (ln <= 0)
				continue;
			lt[ln] = '\0';
			if (!sigil_fs_rel_path_ok(lt) || fstatat(dirfd, de->d_name, &st, 0) < 0)
				continue;
		}
		snprintf(rel, sizeof(rel), "%s%s%s", prefix, *prefix ? "/" : "", de->d_name);
		if (S_ISDIR(st.st_mode) && depth < 8) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (sub >= 0) {
				r = walk(sub, rel, password, in, depth + 1, err);
				close(sub);
			}
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (in->n_files >= KS_INSPECT_MAX_FILES) {
			r = sigil_err_set(err, SIGIL_E_LIMIT, "more than %d files", KS_INSPECT_MAX_FILES);
			break;
		}
		ks_file_info *n = realloc(in->files, (in->n_files + 1) * sizeof(*n));
		if (!n) {
			r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			break;
		}
		in->files = n;
		memset(&n[in->n_files], 0, sizeof(*n));
		in->n_files++;
		r = inspect_file(dirfd, rel, de->d_name, password, &n[in->n_files - 1], err);
	}
	closedir(d);
	return r;
}

int ks_inspect_dir(const char *dir, const char *password, ks_inspection *ret, sigil_err *err)
{
	ks_inspection in = {0};
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot open %s", dir);
	r = walk(fd, "", password, &in, 0, err);
	close(fd);
	if (r < 0) {
		ks_inspection_free(&in);
		return r;
	}
	if (in.n_files > 1)
		qsort(in.files, in.n_files, sizeof(*in.files), name_cmp);
	*ret = in;
	return 0;
}

void ks_inspection_free(ks_inspection *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < in->n_files; i++) {
		ks_file_info *fi = &in->files[i];
		for (size_t j = 0; j < fi->n_entries; j++)
			cert_info_free(&fi->entries[j].cert);
		free(fi->entries);
		free(fi->name);
		free(fi->error);
	}
	free(in->files);
	in->files = NULL;
	in->n_files = 0;
}
