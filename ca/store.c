/* What every CA store shares: class name rules, record (de)serialisation
 * and freeing.  The record parser is the gate between bytes on disk (or in
 * a Kubernetes Secret) and a CA key, so it accepts exactly what we write
 * and nothing else. */
#include "ca/store.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "util/buf.h"
#include "util/mem.h"

/* OpenSSL's PEM writer folds base64 at 64 columns (RFC 7468 section 2). */
#define RECORD_PEM_COLUMNS 64

SIGIL_DEFINE_CLEANUP(X509, X509_free)
SIGIL_DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
SIGIL_DEFINE_CLEANUP(PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free)

int ca_store_check_class(const char *class_name, sigil_err *err)
{
	size_t len;

	if (!class_name || !*class_name)
		return sigil_err_set(err, SIGIL_E_INVALID, "CA class name is empty");
	len = strlen(class_name);
	if (len > CA_STORE_MAX_CLASS_LEN)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "CA class name is %zu bytes long, the limit is %d", len,
				     CA_STORE_MAX_CLASS_LEN);
	/* [a-z0-9][a-z0-9.-]*: a Kubernetes object name, which can never be
	 * "..", contain '/' or start with '.', so it stays inside the store
	 * directory and never collides with ".lock" or temp files. */
	for (size_t i = 0; i < len; i++) {
		char c = class_name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (i > 0 && (c == '.' || c == '-'));
		if (!ok)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "invalid CA class name \"%.*s\": use lower-case letters, "
					     "digits, '.' and '-', starting with a letter or digit",
					     CA_STORE_MAX_CLASS_LEN, class_name);
	}
	return 0;
}

void ca_store_record_clear(ca_store_record *rec)
{
	if (!rec)
		return;
	free(rec->cert_pem);
	if (rec->key_pem)
		sigil_freezero(rec->key_pem, rec->key_len + 1);
	memset(rec, 0, sizeof(*rec));
}

void ca_store_records_free(ca_store_record *recs, size_t n)
{
	if (!recs)
		return;
	for (size_t i = 0; i < n; i++)
		ca_store_record_clear(&recs[i]);
	free(recs);
}

void ca_store_free(ca_store *s)
{
	if (s && s->ops && s->ops->free)
		s->ops->free(s);
}

/* One '\n'-terminated line; a missing '\n' means the data was truncated. */
static int record_get_line(sigil_rbuf *b, const char **line, size_t *len)
{
	const uint8_t *start = b->p + b->off;
	const uint8_t *nl = memchr(start, '\n', sigil_rbuf_remaining(b));
	const uint8_t *skip;

	if (!nl)
		return SIGIL_E_INVALID;
	*line = (const char *)start;
	*len = (size_t)(nl - start);
	return sigil_rbuf_get_bytes(b, *len + 1, &skip);
}

static bool line_is(const char *line, size_t len, const char *prefix, const char *label)
{
	size_t lp = strlen(prefix), ll = strlen(label);

	return len == lp + ll + 5 && !memcmp(line, prefix, lp) && !memcmp(line + lp, label, ll) &&
	       !memcmp(line + lp + ll, "-----", 5);
}

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Reads one PEM block labelled `label` at b.  On success *text and *text_len
 * cover the block's text (BEGIN line to END line and its '\n') and *der
 * holds the decoded body (free with sigil_freezero(*der, *der_len)). */
static int record_read_block(sigil_rbuf *b, const char *label, const char *what, uint8_t **der,
			     size_t *der_len, const char **text, size_t *text_len, sigil_err *err)
{
	sigil_rbuf cur = *b;
	const char *line, *begin = (const char *)cur.p + cur.off;
	size_t len, prev_len = RECORD_PEM_COLUMNS, pad = 0, nlines = 0, out_cap;
	sigil_wbuf b64;
	uint8_t *out;
	int n;

	if (record_get_line(&cur, &line, &len) < 0 ||
	    !line_is(line, len, "-----BEGIN ", label))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: expected \"-----BEGIN %s-----\"",
				     what, label);
	sigil_wbuf_init(&b64, CA_STORE_MAX_RECORD_SIZE, true);
	for (;;) {
		if (record_get_line(&cur, &line, &len) < 0) {
			sigil_wbuf_free(&b64);
			return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: %s block is truncated", what,
					     label);
		}
		if (len >= 5 && !memcmp(line, "-----", 5))
			break;
		/* Only the last body line may be short, and only it may pad. */
		if (prev_len != RECORD_PEM_COLUMNS || pad > 0 || len == 0 ||
		    len > RECORD_PEM_COLUMNS) {
			sigil_wbuf_free(&b64);
			return sigil_err_set(err, SIGIL_E_CORRUPT,
					     "%s: malformed base64 line %zu in %s block", what,
					     nlines + 1, label);
		}
		for (size_t i = 0; i < len; i++) {
			/* '=' only as the final one or two characters. */
			bool bad;
			if (line[i] == '=')
				bad = ++pad > 2;
			else
				bad = pad > 0 || !is_b64(line[i]);
			if (bad) {
				sigil_wbuf_free(&b64);
				return sigil_err_set(err, SIGIL_E_CORRUPT,
						     "%s: invalid base64 in line %zu of %s block", what,
						     nlines + 1, label);
			}
		}
		sigil_wbuf_put(&b64, line, len);
		prev_len = len;
		nlines++;
	}
	if (!line_is(line, len, "-----END ", label)) {
		sigil_wbuf_free(&b64);
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: expected \"-----END %s-----\"", what,
				     label);
	}
	if (sigil_wbuf_status(&b64) < 0 || b64.len == 0 || b64.len % 4 != 0) {
		sigil_wbuf_free(&b64);
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: %s block has a bad base64 length",
				     what, label);
	}
	out_cap = b64.len / 4 * 3;
	out = malloc(out_cap + 1);
	if (!out) {
		sigil_wbuf_free(&b64);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	n = EVP_DecodeBlock(out, b64.p, (int)b64.len);
	sigil_wbuf_free(&b64);
	if (n < 0 || (size_t)n != out_cap || (size_t)n < pad) {
		sigil_freezero(out, out_cap + 1);
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: %s block is not valid base64",
				     what, label);
	}
	*der = out;
	*der_len = (size_t)n - pad;
	*text = begin;
	*text_len = cur.off - b->off;
	*b = cur;
	return 0;
}

int ca_store_record_parse(const char *what, const char *data, size_t len, ca_store_record *ret,
			  sigil_err *err)
{
	sigil_rbuf b;
	uint8_t *cert_der = NULL, *key_der = NULL;
	size_t cert_der_len = 0, key_der_len = 0, cert_text_len, key_text_len;
	const char *cert_text, *key_text;
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_(PKCS8_PRIV_KEY_INFO_freep) PKCS8_PRIV_KEY_INFO *p8 = NULL;
	const unsigned char *p;
	ca_store_record rec = {0};
	int r;

	if (!data || len == 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s: empty CA record", what);
	if (len > CA_STORE_MAX_RECORD_SIZE)
		return sigil_err_set(err, SIGIL_E_CORRUPT,
				     "%s: CA record is %zu bytes, the limit is %u", what, len,
				     CA_STORE_MAX_RECORD_SIZE);
	sigil_rbuf_init(&b, data, len);
	r = record_read_block(&b, "CERTIFICATE", what, &cert_der, &cert_der_len, &cert_text,
			      &cert_text_len, err);
	if (r < 0)
		return r;
	r = record_read_block(&b, "PRIVATE KEY", what, &key_der, &key_der_len, &key_text,
			      &key_text_len, err);
	if (r < 0)
		goto out;
	if (sigil_rbuf_remaining(&b) != 0) {
		r = sigil_err_set(err, SIGIL_E_CORRUPT,
				  "%s: unexpected data after the PRIVATE KEY block", what);
		goto out;
	}
	p = cert_der;
	x = d2i_X509(NULL, &p, (long)cert_der_len);
	if (!x || p != cert_der + cert_der_len) {
		r = sigil_err_ssl(err, SIGIL_E_CORRUPT, "%s: the CERTIFICATE block is not one DER "
							"certificate", what);
		goto out;
	}
	p = key_der;
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)key_der_len);
	if (!p8 || p != key_der + key_der_len || !(pkey = EVP_PKCS82PKEY(p8))) {
		r = sigil_err_ssl(err, SIGIL_E_CORRUPT,
				  "%s: the PRIVATE KEY block is not one PKCS#8 key", what);
		goto out;
	}
	if (X509_check_private_key(x, pkey) != 1) {
		r = sigil_err_ssl(err, SIGIL_E_CORRUPT,
				  "%s: the private key does not match the certificate", what);
		goto out;
	}
	/* A PKCS#8 key carries its public half next to the private one; a
	 * damaged private half would still "match" above. */
	{
		EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
		int ok = kctx && EVP_PKEY_pairwise_check(kctx) == 1;
		EVP_PKEY_CTX_free(kctx);
		if (!ok) {
			r = sigil_err_ssl(err, SIGIL_E_CORRUPT,
					  "%s: the private key is damaged (pairwise check failed)",
					  what);
			goto out;
		}
	}
	/* Our generations are self-signed roots: a damaged one no longer
	 * verifies under its own key. */
	if (X509_check_issued(x, x) == X509_V_OK && X509_verify(x, pkey) != 1) {
		r = sigil_err_ssl(err, SIGIL_E_CORRUPT,
				  "%s: the certificate's self-signature does not verify", what);
		goto out;
	}
	rec.cert_pem = sigil_strndup(cert_text, cert_text_len);
	rec.key_pem = sigil_strndup(key_text, key_text_len);
	if (!rec.cert_pem || !rec.key_pem) {
		if (rec.key_pem)
			sigil_freezero(rec.key_pem, key_text_len + 1);
		free(rec.cert_pem);
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		goto out;
	}
	rec.cert_len = cert_text_len;
	rec.key_len = key_text_len;
	*ret = rec;
	r = 0;
out:
	if (cert_der)
		sigil_freezero(cert_der, cert_der_len);
	if (key_der)
		sigil_freezero(key_der, key_der_len);
	return r;
}

int ca_store_record_format(const ca_store_record *rec, char **ret, size_t *len, sigil_err *err)
{
	sigil_wbuf w;
	ca_store_record check = {0};
	char what[64];
	size_t n;
	uint8_t *p;
	int r;

	if (!rec || !rec->cert_pem || !rec->key_pem)
		return sigil_err_set(err, SIGIL_E_INVALID, "incomplete CA record");
	snprintf(what, sizeof(what), "CA record of generation %llu",
		 (unsigned long long)rec->generation);
	sigil_wbuf_init(&w, CA_STORE_MAX_RECORD_SIZE, true);
	sigil_wbuf_put(&w, rec->cert_pem, rec->cert_len);
	sigil_wbuf_put(&w, rec->key_pem, rec->key_len);
	r = sigil_wbuf_status(&w);
	if (r < 0) {
		sigil_wbuf_free(&w);
		return sigil_err_set(err, r, "%s is larger than %u bytes", what,
				     CA_STORE_MAX_RECORD_SIZE);
	}
	/* Never write a record that load would refuse. */
	r = ca_store_record_parse(what, (const char *)w.p, w.len, &check, err);
	if (r < 0) {
		sigil_wbuf_free(&w);
		if (r == SIGIL_E_CORRUPT && err)
			err->code = SIGIL_E_INVALID;
		return r == SIGIL_E_CORRUPT ? SIGIL_E_INVALID : r;
	}
	ca_store_record_clear(&check);
	p = sigil_wbuf_steal(&w, &n);
	if (!p)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	*ret = (char *)p;
	*len = n;
	return 0;
}

#define GEN_PREFIX "gen-"
#define GEN_SUFFIX ".pem"
#define GEN_HEX_DIGITS 16
_Static_assert(CA_STORE_GEN_NAME_LEN ==
		       sizeof(GEN_PREFIX) - 1 + GEN_HEX_DIGITS + sizeof(GEN_SUFFIX) - 1,
	       "generation name length");

void ca_store_gen_name(uint64_t generation, char buf[CA_STORE_GEN_NAME_LEN + 1])
{
	snprintf(buf, CA_STORE_GEN_NAME_LEN + 1, GEN_PREFIX "%016llx" GEN_SUFFIX,
		 (unsigned long long)generation);
}

bool ca_store_gen_parse(const char *name, uint64_t *ret)
{
	const char *hex = name + sizeof(GEN_PREFIX) - 1;
	uint64_t v = 0;

	if (strlen(name) != CA_STORE_GEN_NAME_LEN ||
	    strncmp(name, GEN_PREFIX, sizeof(GEN_PREFIX) - 1) ||
	    strcmp(hex + GEN_HEX_DIGITS, GEN_SUFFIX))
		return false;
	for (int i = 0; i < GEN_HEX_DIGITS; i++) {
		char c = hex[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return false;
		v = (v << 4) | d;
	}
	*ret = v;
	return true;
}
