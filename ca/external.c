/* externalCa backends: cfssl and Vault PKI over HTTPS (libcurl + jansson).
 *
 * The CA is a peer we do not control: every answer is size-limited, parsed
 * strictly and checked against the CSR before it is believed. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "ca/external.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca/issue.h"
#include "ca/names.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/mem.h"

/* cfssl auth keys are hex; 512 bytes is far beyond any sane HMAC key. */
#define EXT_MAX_HMAC_KEY 512
/* Request bodies we build: a CSR PEM plus CA_MAX_SANS names. */
#define EXT_MAX_REQUEST (256 * 1024)
#define EXT_MAX_URL (CA_CLASS_MAX_URL + 256)
#define EXT_MAX_PATH_PART 127
#define EXT_MAX_PROFILE 63
/* Clock skew tolerated on a fresh certificate's notBefore. */
#define EXT_SKEW_SECS 300
#define EXT_DEFAULT_MOUNT "pki"
#define EXT_USER_AGENT "sigil-ca"
/* Names quoted in messages. */
#define EXT_QUOTE_BUF 96

SIGIL_DEFINE_CLEANUP(X509, X509_free)
SIGIL_DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
SIGIL_DEFINE_CLEANUP(BIO, BIO_free)
SIGIL_DEFINE_CLEANUP(CURL, curl_easy_cleanup)
SIGIL_DEFINE_CLEANUP(CURLU, curl_url_cleanup)

static void certs_free(STACK_OF(X509) *s)
{
	sk_X509_pop_free(s, X509_free);
}
SIGIL_DEFINE_CLEANUP(STACK_OF(X509), certs_free)

/* A header list that may hold a token: wiped before curl frees it. */
static void headers_free(struct curl_slist *h)
{
	for (struct curl_slist *i = h; i; i = i->next)
		if (i->data)
			OPENSSL_cleanse(i->data, strlen(i->data));
	curl_slist_free_all(h);
}
SIGIL_DEFINE_CLEANUP(struct curl_slist, headers_free)

/* A secret read from a file; p holds cap bytes that are wiped on free. */
typedef struct ext_secret {
	uint8_t *p;
	size_t len;
	size_t cap;
} ext_secret;

static void ext_secret_free(ext_secret *s)
{
	if (s->p)
		sigil_freezero(s->p, s->cap);
	s->p = NULL;
	s->len = s->cap = 0;
}

typedef struct ext_response {
	long status;
	uint8_t *body;
	size_t len;
} ext_response;

static void ext_response_free(ext_response *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* ---- libcurl setup ---------------------------------------------------------- */

static pthread_once_t ext_curl_once = PTHREAD_ONCE_INIT;
static CURLcode ext_curl_init_rc = CURLE_FAILED_INIT;

static void ext_curl_global_init(void)
{
	/* curl_global_init is not thread-safe on every libcurl: run it once. */
	ext_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int ext_curl_init(sigil_err *err)
{
	pthread_once(&ext_curl_once, ext_curl_global_init);
	if (ext_curl_init_rc != CURLE_OK)
		return sigil_err_set(err, SIGIL_E_INTERNAL, "libcurl initialisation failed: %s",
				     curl_easy_strerror(ext_curl_init_rc));
	return 0;
}

/* ---- configuration checks --------------------------------------------------- */

static bool ext_is_loopback_host(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
	       strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/* https:// anywhere; http:// only to this machine (tests and sidecars):
 * a CSR and token must never cross a network in clear text.  No user info
 * (it would end up in error messages), query or fragment: paths are
 * appended to this URL. */
static int ext_check_url(const char *url, sigil_err *err)
{
	_cleanup_(curl_url_cleanupp) CURLU *u = NULL;
	char q[EXT_QUOTE_BUF];
	char *scheme = NULL, *host = NULL, *part = NULL;
	size_t n = strnlen(url, CA_CLASS_MAX_URL);
	int r = 0;

	if (n == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "external CA URL is empty");
	if (n >= CA_CLASS_MAX_URL)
		return sigil_err_set(err, SIGIL_E_LIMIT, "external CA URL exceeds %d bytes",
				     CA_CLASS_MAX_URL - 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= 0x20 || c >= 0x7f)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "external CA URL \"%s\" contains a space or control character",
					     ca_names_quote(url, q, sizeof(q)));
	}
	u = curl_url();
	if (!u)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "external CA URL \"%s\" is not an absolute URL",
				     ca_names_quote(url, q, sizeof(q)));
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		r = sigil_err_set(err, SIGIL_E_INVALID, "external CA URL \"%s\" has no host",
				  ca_names_quote(url, q, sizeof(q)));
		goto out;
	}
	if (strcmp(scheme, "https") != 0 &&
	    !(strcmp(scheme, "http") == 0 && ext_is_loopback_host(host))) {
		r = sigil_err_set(err, SIGIL_E_INVALID,
				  "external CA URL \"%s\" must use https:// (http:// only to 127.0.0.1 or localhost)",
				  ca_names_quote(url, q, sizeof(q)));
		goto out;
	}
	static const struct {
		CURLUPart part;
		const char *name;
	} banned[] = {
		{ CURLUPART_USER, "user info or a password (use token or key files)" },
		{ CURLUPART_PASSWORD, "user info or a password (use token or key files)" },
		{ CURLUPART_QUERY, "a query" },
		{ CURLUPART_FRAGMENT, "a fragment" },
	};
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(banned); i++) {
		if (curl_url_get(u, banned[i].part, &part, 0) == CURLUE_OK) {
			/* Not quoted: user info may hold a password. */
			r = sigil_err_set(err, SIGIL_E_INVALID,
					  "external CA URL must not contain %s", banned[i].name);
			goto out;
		}
	}
out:
	curl_free(part);
	curl_free(host);
	curl_free(scheme);
	return r;
}

/* A Vault mount or role: [A-Za-z0-9_.-/]+ with no empty, "." or ".."
 * component, so that it cannot climb out of the API path. */
static int ext_check_path_part(const char *what, const char *s, size_t cap, sigil_err *err)
{
	char q[EXT_QUOTE_BUF];
	size_t n = strnlen(s, cap);
	const char *c;

	if (n == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "Vault %s is empty", what);
	if (n >= cap || n > EXT_MAX_PATH_PART)
		return sigil_err_set(err, SIGIL_E_LIMIT, "Vault %s exceeds %d bytes", what,
				     EXT_MAX_PATH_PART);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-' ||
			  ch == '/';
		if (!ok)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "Vault %s \"%s\" may only contain A-Z a-z 0-9 _ . - /",
					     what, ca_names_quote(s, q, sizeof(q)));
	}
	for (c = s;;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (len == 0 || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "Vault %s \"%s\" has an empty, \".\" or \"..\" component",
					     what, ca_names_quote(s, q, sizeof(q)));
		if (!slash)
			break;
		c = slash + 1;
	}
	return 0;
}

static int ext_check_profile(const char *p, size_t cap, sigil_err *err)
{
	char q[EXT_QUOTE_BUF];
	size_t n = strnlen(p, cap);

	if (n >= cap || n > EXT_MAX_PROFILE)
		return sigil_err_set(err, SIGIL_E_LIMIT, "cfssl profile exceeds %d bytes",
				     EXT_MAX_PROFILE);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c >= 0x7f)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "cfssl profile \"%s\" contains a non-printable character",
					     ca_names_quote(p, q, sizeof(q)));
	}
	return 0;
}

static int ext_check_path(const char *what, const char *path, size_t cap, sigil_err *err)
{
	size_t n = strnlen(path, cap);

	if (n == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "no %s configured", what);
	if (n >= cap)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s path exceeds %zu bytes", what, cap - 1);
	return 0;
}

static int ext_timeout_ms(const ca_external_config *cfg, long *ret, sigil_err *err)
{
	int64_t t = cfg->timeout_ms;

	if (t <= 0)
		t = CA_EXTERNAL_DEFAULT_TIMEOUT_MS;
	if (t > CA_EXTERNAL_MAX_TIMEOUT_MS)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "external CA timeout of %lld ms exceeds the limit of %d ms",
				     (long long)t, CA_EXTERNAL_MAX_TIMEOUT_MS);
	*ret = (long)t;
	return 0;
}

/* ---- secrets ------------------------------------------------------------------- */

static bool ext_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Reads a secret file (bounded), trims surrounding white space (the usual
 * trailing newline) in place.  The contents never appear in a message. */
static int ext_read_secret(const char *what, const char *path, ext_secret *ret, sigil_err *err)
{
	uint8_t *p = NULL;
	size_t len = 0, start = 0, end;
	int r;

	r = sigil_fs_read_file(path, CA_EXTERNAL_MAX_SECRET_FILE, &p, &len, err);
	if (r < 0) {
		sigil_err_prefix(err, "reading the %s: ", what);
		return r;
	}
	end = len;
	while (start < end && ext_is_space(p[start]))
		start++;
	while (end > start && ext_is_space(p[end - 1]))
		end--;
	if (start > 0)
		memmove(p, p + start, end - start);
	sigil_wipe(p + (end - start), len - (end - start));
	ret->p = p;
	ret->cap = len + 1;
	ret->len = end - start;
	p[ret->len] = '\0';
	if (ret->len == 0) {
		ext_secret_free(ret);
		return sigil_err_set(err, SIGIL_E_INVALID, "the %s %s is empty", what, path);
	}
	if (memchr(ret->p, '\0', ret->len)) {
		ext_secret_free(ret);
		return sigil_err_set(err, SIGIL_E_INVALID, "the %s %s contains a NUL byte", what,
				     path);
	}
	return 0;
}

static int ext_hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* cfssl auth.Standard: the key is hex (cfssl's "key" field). */
static int ext_read_hmac_key(const char *path, ext_secret *ret, sigil_err *err)
{
	_cleanup_(ext_secret_free) ext_secret hex = {0};
	ext_secret key = {0};
	int r;

	r = ext_read_secret("cfssl auth key file", path, &hex, err);
	if (r < 0)
		return r;
	if (hex.len % 2 != 0 || hex.len / 2 > EXT_MAX_HMAC_KEY)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "cfssl auth key file %s must hold an even number of hex digits (at most %d bytes)",
				     path, EXT_MAX_HMAC_KEY);
	key.cap = hex.len / 2;
	key.p = malloc(key.cap);
	if (!key.p)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (size_t i = 0; i < key.cap; i++) {
		int hi = ext_hexval(hex.p[2 * i]), lo = ext_hexval(hex.p[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			ext_secret_free(&key);
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "cfssl auth key file %s is not hexadecimal", path);
		}
		key.p[i] = (uint8_t)(hi << 4 | lo);
	}
	key.len = key.cap;
	*ret = key;
	return 0;
}

/* Vault tokens go into an HTTP header: visible ASCII only, so that a
 * stray CR/LF cannot add headers. */
static int ext_read_token(const char *path, ext_secret *ret, sigil_err *err)
{
	ext_secret tok = {0};
	int r;

	r = ext_read_secret("Vault token file", path, &tok, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < tok.len; i++)
		if (tok.p[i] <= 0x20 || tok.p[i] >= 0x7f) {
			ext_secret_free(&tok);
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "Vault token file %s contains white space or non-ASCII bytes inside the token",
					     path);
		}
	*ret = tok;
	return 0;
}

/* ---- HTTP ----------------------------------------------------------------------- */

static size_t ext_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	sigil_wbuf *b = userdata;
	size_t n = size * nmemb;

	/* Returning less than n aborts the transfer (CURLE_WRITE_ERROR). */
	if (sigil_wbuf_put(b, ptr, n) < 0)
		return 0;
	return n;
}

static char *ext_url_join(const char *base, const char *path)
{
	sigil_wbuf b;
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	sigil_wbuf_init(&b, EXT_MAX_URL, false);
	sigil_wbuf_put(&b, base, n);
	sigil_wbuf_putf(&b, "%s", path);
	if (sigil_wbuf_status(&b) < 0) {
		sigil_wbuf_free(&b);
		return NULL;
	}
	return (char *)sigil_wbuf_steal(&b, NULL);
}

static int ext_curl_error(CURLcode rc, const char *url, long timeout_ms, const char *detail,
			  sigil_err *err)
{
	const char *msg = detail[0] ? detail : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return sigil_err_set(err, SIGIL_E_UNAVAIL,
				     "external CA at %s timed out after %ld ms: %s", url, timeout_ms,
				     msg);
	case CURLE_OUT_OF_MEMORY:
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory talking to %s", url);
	case CURLE_FILESIZE_EXCEEDED:
	case CURLE_WRITE_ERROR:
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "response from the external CA at %s exceeds %d bytes; transfer aborted",
				     url, CA_EXTERNAL_MAX_RESPONSE);
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return sigil_err_set(err, SIGIL_E_PRECOND,
				     "cannot use the CA file for %s: %s", url, msg);
	case CURLE_PEER_FAILED_VERIFICATION:
		return sigil_err_set(err, SIGIL_E_UNAVAIL,
				     "TLS certificate of the external CA at %s does not verify (check caFile): %s",
				     url, msg);
	default:
		/* Refused, unresolvable, reset, TLS handshake: the peer is not
		 * usable right now; the caller may retry. */
		return sigil_err_set(err, SIGIL_E_UNAVAIL, "cannot reach the external CA at %s: %s",
				     url, msg);
	}
}

/* POSTs a JSON body; any HTTP status is a success here (the API decides). */
static int ext_http_post(const ca_external_config *cfg, const char *url, const char *secret_header,
			 const char *body, size_t body_len, ext_response *ret, sigil_err *err)
{
	_cleanup_(curl_easy_cleanupp) CURL *c = NULL;
	_cleanup_(headers_freep) struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	const char *protocols;
	sigil_wbuf resp;
	long timeout_ms = 0, status = 0;
	CURLcode rc;
	int r;

	r = ext_curl_init(err);
	if (r < 0)
		return r;
	r = ext_timeout_ms(cfg, &timeout_ms, err);
	if (r < 0)
		return r;
	c = curl_easy_init();
	if (!c)
		return sigil_err_set(err, SIGIL_E_NOMEM, "cannot create a libcurl handle");
	static const char *const fixed[] = {
		"Content-Type: application/json",
		"Accept: application/json",
		/* No "100-continue" round trip: servers like Python's never
		 * answer it and curl would stall a second per request. */
		"Expect:",
	};
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(fixed); i++) {
		struct curl_slist *h = curl_slist_append(headers, fixed[i]);
		if (!h)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		headers = h;
	}
	if (secret_header) {
		struct curl_slist *h = curl_slist_append(headers, secret_header);
		if (!h)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		headers = h;
	}
	/* The URL was checked: http only to loopback. */
	protocols = strncmp(url, "https:", 6) == 0 ? "https" : "http";
	sigil_wbuf_init(&resp, CA_EXTERNAL_MAX_RESPONSE, false);
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_USERAGENT, EXT_USER_AGENT) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ext_write_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
			     (curl_off_t)CA_EXTERNAL_MAX_RESPONSE) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
	    (cfg->ca_file[0] != '\0' &&
	     curl_easy_setopt(c, CURLOPT_CAINFO, cfg->ca_file) != CURLE_OK)) {
		sigil_wbuf_free(&resp);
		return sigil_err_set(err, SIGIL_E_INTERNAL, "cannot configure libcurl for %s", url);
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		if (rc == CURLE_WRITE_ERROR && resp.failed == SIGIL_E_NOMEM)
			rc = CURLE_OUT_OF_MEMORY;
		sigil_wbuf_free(&resp);
		return ext_curl_error(rc, url, timeout_ms, errbuf, err);
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	ret->status = status;
	ret->body = sigil_wbuf_steal(&resp, &ret->len);
	if (!ret->body)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	return 0;
}

/* ---- JSON and error text ------------------------------------------------------ */

/* Appends untrusted text, made printable, to a bounded message buffer. */
static void ext_quote_append(char *buf, size_t cap, const char *s, size_t n)
{
	size_t o = strlen(buf);

	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[o++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : (c == '"' ? '\'' : '?');
	}
	buf[o] = '\0';
	if (o + 1 >= cap && cap > 4)
		memcpy(buf + cap - 4, "...", 4);
}

/* The CA's own words: Vault's "errors" are strings, cfssl's are objects
 * with "code" and "message". */
static void ext_errors_text(json_t *root, char *buf, size_t cap)
{
	json_t *errors = json_is_object(root) ? json_object_get(root, "errors") : NULL;
	size_t i;
	json_t *e;

	buf[0] = '\0';
	if (!json_is_array(errors))
		return;
	json_array_foreach(errors, i, e)
	{
		const char *s = NULL;
		size_t n = 0;
		json_t *m = json_is_object(e) ? json_object_get(e, "message") : e;
		if (json_is_string(m)) {
			s = json_string_value(m);
			n = json_string_length(m);
		}
		if (!s || n == 0)
			continue;
		if (buf[0] != '\0')
			ext_quote_append(buf, cap, "; ", 2);
		ext_quote_append(buf, cap, s, n);
	}
}

static void ext_body_text(const ext_response *resp, char *buf, size_t cap)
{
	size_t n = resp->len;

	while (n > 0 && ext_is_space(resp->body[n - 1]))
		n--;
	buf[0] = '\0';
	ext_quote_append(buf, cap, (const char *)resp->body, n);
}

/* Parses a response body that must be a JSON object; NULL *ret (and no
 * error) when it is not, for the caller to phrase. */
static json_t *ext_json_load(const ext_response *resp, json_error_t *jerr)
{
	json_t *root;

	if (resp->len == 0)
		return NULL;
	root = json_loadb((const char *)resp->body, resp->len, JSON_REJECT_DUPLICATES, jerr);
	if (root && !json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/* A refused or failed request: the status says whose fault it is. */
static int ext_http_error(const char *url, const ext_response *resp, json_t *root,
			  bool auth_failure, sigil_err *err)
{
	char quote[CA_EXTERNAL_MAX_QUOTE + 1];
	int code;

	if (root)
		ext_errors_text(root, quote, sizeof(quote));
	else
		ext_body_text(resp, quote, sizeof(quote));
	if (resp->status >= 500 || resp->status == 429 || resp->status == 408)
		code = SIGIL_E_UNAVAIL;
	else if (resp->status == 401 || resp->status == 403 || auth_failure)
		code = SIGIL_E_PERM;
	else
		code = SIGIL_E_INVALID;
	return sigil_err_set(err, code, "external CA at %s refused the request (HTTP %ld): \"%s\"",
			     url, resp->status, quote);
}

/* ---- certificates --------------------------------------------------------------- */

/* Parses one or more concatenated PEM certificates, strictly: only white
 * space between them, nothing else. */
static int ext_parse_pem_certs(const char *what, const char *url, const char *pem, size_t len,
			       STACK_OF(X509) *out, sigil_err *err)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	size_t off = 0, count = 0;

	if (memchr(pem, '\0', len))
		return sigil_err_set(err, SIGIL_E_INVALID, "%s from %s contains a NUL byte", what, url);
	for (;;) {
		const char *stop;
		size_t blk;

		while (off < len && ext_is_space((unsigned char)pem[off]))
			off++;
		if (off == len)
			break;
		if (len - off < sizeof(begin) - 1 || memcmp(pem + off, begin, sizeof(begin) - 1) != 0)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s from %s is not a PEM certificate", what, url);
		stop = memmem(pem + off, len - off, end, sizeof(end) - 1);
		if (!stop)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s from %s is a truncated PEM certificate (no END line)",
					     what, url);
		blk = (size_t)(stop - (pem + off)) + sizeof(end) - 1;
		if (sk_X509_num(out) >= CA_EXTERNAL_MAX_CERTS)
			return sigil_err_set(err, SIGIL_E_LIMIT,
					     "response from %s holds more than %d certificates", url,
					     CA_EXTERNAL_MAX_CERTS);
		{
			_cleanup_(BIO_freep) BIO *b = NULL;
			_cleanup_(X509_freep) X509 *x = NULL;
			/* PEM_read wants the END line terminated. */
			_cleanup_free_ char *copy = malloc(blk + 2);

			if (!copy)
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			memcpy(copy, pem + off, blk);
			copy[blk] = '\n';
			copy[blk + 1] = '\0';
			ERR_clear_error();
			b = BIO_new_mem_buf(copy, (int)blk + 1);
			if (!b)
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			x = PEM_read_bio_X509(b, NULL, NULL, NULL);
			if (!x)
				return sigil_err_ssl(err, SIGIL_E_INVALID,
						     "%s from %s: PEM certificate %zu cannot be parsed",
						     what, url, count + 1);
			if (!sk_X509_push(out, x))
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			x = NULL;
		}
		off += blk;
		count++;
	}
	if (count == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "%s from %s is empty", what, url);
	return 0;
}

/* A JSON string field holding PEM certificates. */
static int ext_json_certs(json_t *obj, const char *field, const char *what, const char *url,
			  bool required, STACK_OF(X509) *out, sigil_err *err)
{
	json_t *v = json_object_get(obj, field);

	if (!v || json_is_null(v)) {
		if (required)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "response from %s has no \"%s\"", url, field);
		return 0;
	}
	if (!json_is_string(v))
		return sigil_err_set(err, SIGIL_E_INVALID, "\"%s\" in the response from %s is not a string",
				     field, url);
	if (!required && json_string_length(v) == 0)
		return 0;
	return ext_parse_pem_certs(what, url, json_string_value(v), json_string_length(v), out, err);
}

static const char *ext_subject(X509 *x, char *buf, size_t len)
{
	char tmp[256];

	if (!X509_NAME_oneline(X509_get_subject_name(x), tmp, sizeof(tmp)))
		return "?";
	return ca_names_quote(tmp, buf, len);
}

static bool ext_signed_by(X509 *child, X509 *parent)
{
	EVP_PKEY *pk = X509_get0_pubkey(parent);
	bool ok;

	ok = pk && X509_check_issued(parent, child) == X509_V_OK && X509_verify(child, pk) == 1;
	ERR_clear_error();
	return ok;
}

/* The leaf must be for the CSR's key (a CA answering with someone else's
 * certificate would hand a pod a key it does not hold), valid now, and not
 * a CA. */
static int ext_check_leaf(X509 *leaf, EVP_PKEY *csr_pub, const char *url, sigil_err *err)
{
	char s[EXT_QUOTE_BUF];
	time_t soon = time(NULL) + EXT_SKEW_SECS;

	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), csr_pub) != 1) {
		ERR_clear_error();
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "external CA at %s returned a certificate (%s) for a different public key than the CSR's",
				     url, ext_subject(leaf, s, sizeof(s)));
	}
	if (X509_check_ca(leaf) != 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "external CA at %s returned a CA certificate (%s) for a leaf request",
				     url, ext_subject(leaf, s, sizeof(s)));
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "external CA at %s returned an expired certificate (%s)", url,
				     ext_subject(leaf, s, sizeof(s)));
	if (X509_cmp_time(X509_get0_notBefore(leaf), &soon) > 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "external CA at %s returned a certificate (%s) that is not valid yet",
				     url, ext_subject(leaf, s, sizeof(s)));
	return 0;
}

/* cands are in order from the issuer of the leaf upwards; each must sign
 * the one below.  A self-signed root may only come last and is left out of
 * the returned chain. */
static int ext_link_chain(X509 *leaf, STACK_OF(X509) *cands, const char *url,
			  STACK_OF(X509) **ret, sigil_err *err)
{
	_cleanup_(certs_freep) STACK_OF(X509) *chain = sk_X509_new_null();
	char a[EXT_QUOTE_BUF], b[EXT_QUOTE_BUF];
	X509 *cur = leaf;
	int n = sk_X509_num(cands);

	if (!chain)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		X509 *c = sk_X509_value(cands, i);
		bool root;

		if (!ext_signed_by(cur, c))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "chain from the external CA at %s does not link: %s did not issue %s",
					     url, ext_subject(c, a, sizeof(a)),
					     ext_subject(cur, b, sizeof(b)));
		if (X509_check_ca(c) == 0)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "chain certificate %s from %s is not a CA",
					     ext_subject(c, a, sizeof(a)), url);
		root = X509_self_signed(c, 1) == 1;
		ERR_clear_error();
		if (root) {
			if (i != n - 1)
				return sigil_err_set(err, SIGIL_E_INVALID,
						     "chain from %s has the root %s before its end", url,
						     ext_subject(c, a, sizeof(a)));
			break;
		}
		if (!X509_up_ref(c))
			return sigil_err_set(err, SIGIL_E_INTERNAL, "X509_up_ref failed");
		if (!sk_X509_push(chain, c)) {
			X509_free(c);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
		cur = c;
	}
	*ret = TAKE_PTR(chain);
	return 0;
}

/* ---- request pieces ------------------------------------------------------------- */

static int ext_check_request(const ca_external_request *req, EVP_PKEY **ret_pub, sigil_err *err)
{
	char q[EXT_QUOTE_BUF];
	unsigned char ip[16];
	size_t iplen;
	int r;

	if (!req)
		return sigil_err_set(err, SIGIL_E_INVALID, "no request");
	if ((req->n_dns && !req->dns) || (req->n_ips && !req->ips))
		return sigil_err_set(err, SIGIL_E_INVALID, "name counts given without name lists");
	if (req->n_dns > CA_MAX_SANS || req->n_ips > CA_MAX_SANS - req->n_dns)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%zu names exceed the limit of %d",
				     req->n_dns + req->n_ips, CA_MAX_SANS);
	if (req->common_name) {
		size_t n = strlen(req->common_name);
		if (n > CA_MAX_CN_LEN)
			return sigil_err_set(err, SIGIL_E_LIMIT, "common name exceeds %d bytes",
					     CA_MAX_CN_LEN);
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)req->common_name[i];
			if (c < 0x20 || c == 0x7f)
				return sigil_err_set(err, SIGIL_E_INVALID,
						     "common name \"%s\" contains a control character",
						     ca_names_quote(req->common_name, q, sizeof(q)));
		}
		/* JSON carries UTF-8 only; jansson refuses anything else. */
		json_t *t = json_string(req->common_name);
		if (!t)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "common name \"%s\" is not valid UTF-8",
					     ca_names_quote(req->common_name, q, sizeof(q)));
		json_decref(t);
	}
	/* RFC 1123 names and IP text contain no ',' (Vault joins on it). */
	for (size_t i = 0; i < req->n_dns; i++) {
		if (!req->dns[i])
			return sigil_err_set(err, SIGIL_E_INVALID, "DNS name %zu is missing", i + 1);
		r = ca_names_check_dns(req->dns[i], true, err);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < req->n_ips; i++) {
		if (!req->ips[i])
			return sigil_err_set(err, SIGIL_E_INVALID, "IP address %zu is missing", i + 1);
		r = ca_names_parse_ip(req->ips[i], ip, &iplen, err);
		if (r < 0)
			return r;
	}
	if (req->lifetime_secs > 100LL * 365 * 86400)
		return sigil_err_set(err, SIGIL_E_LIMIT, "lifetime of %lld s is beyond any CA's",
				     (long long)req->lifetime_secs);
	return ca_csr_parse(req->csr_der, req->csr_len, ret_pub, err);
}

static char *ext_csr_pem(const uint8_t *der, size_t len)
{
	_cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *out;
	long n;

	if (!b || PEM_write_bio(b, "CERTIFICATE REQUEST", "", der, (long)len) <= 0)
		return NULL;
	n = BIO_get_mem_data(b, &data);
	if (n <= 0)
		return NULL;
	out = sigil_strndup(data, (size_t)n);
	return out;
}

static int ext_json_set(json_t *obj, const char *key, json_t *v, sigil_err *err)
{
	if (!v || json_object_set_new(obj, key, v) < 0)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory building the request");
	return 0;
}

static int ext_json_dump(json_t *obj, char **ret, size_t *ret_len, sigil_err *err)
{
	char *s = json_dumps(obj, JSON_COMPACT);

	if (!s)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory building the request");
	*ret_len = strlen(s);
	if (*ret_len > EXT_MAX_REQUEST) {
		free(s);
		return sigil_err_set(err, SIGIL_E_LIMIT, "request exceeds %d bytes", EXT_MAX_REQUEST);
	}
	*ret = s;
	return 0;
}

static json_t *ext_joined(const char *const *list, size_t n)
{
	sigil_wbuf b;
	json_t *v;

	sigil_wbuf_init(&b, EXT_MAX_REQUEST, false);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sigil_wbuf_put(&b, ",", 1);
		sigil_wbuf_put(&b, list[i], strlen(list[i]));
	}
	if (sigil_wbuf_status(&b) < 0) {
		sigil_wbuf_free(&b);
		return NULL;
	}
	v = json_stringn(b.p ? (const char *)b.p : "", b.len);
	sigil_wbuf_free(&b);
	return v;
}

/* ---- cfssl ------------------------------------------------------------------------ */

static bool ext_cfssl_auth_error(json_t *root)
{
	char text[CA_EXTERNAL_MAX_QUOTE + 1];

	/* cfssl answers a bad token with HTTP 400 "invalid token" and a
	 * missing one with "authentication required". */
	ext_errors_text(root, text, sizeof(text));
	return strcasestr(text, "invalid token") || strcasestr(text, "authentication");
}

/* POSTs to a cfssl endpoint and returns its "result" object (a new
 * reference). */
static int ext_cfssl_call(const ca_external_config *cfg, const char *endpoint, const char *body,
			  size_t body_len, json_t **ret_root, json_t **ret_result, sigil_err *err)
{
	_cleanup_free_ char *url = NULL;
	_cleanup_(ext_response_free) ext_response resp = {0};
	_cleanup_(json_decrefp) json_t *root = NULL;
	json_error_t jerr;
	json_t *success, *result;
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/api/v1/cfssl/%s", endpoint);
	url = ext_url_join(cfg->url, path);
	if (!url)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = ext_http_post(cfg, url, NULL, body, body_len, &resp, err);
	if (r < 0)
		return r;
	root = ext_json_load(&resp, &jerr);
	if (resp.status < 200 || resp.status > 299)
		return ext_http_error(url, &resp, root, root && ext_cfssl_auth_error(root), err);
	if (!root)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "response from %s is not a JSON object (%s)", url,
				     resp.len ? jerr.text : "empty body");
	success = json_object_get(root, "success");
	if (!json_is_boolean(success))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "response from %s has no boolean \"success\" (not a cfssl API?)",
				     url);
	if (!json_is_true(success)) {
		char quote[CA_EXTERNAL_MAX_QUOTE + 1];
		ext_errors_text(root, quote, sizeof(quote));
		return sigil_err_set(err, ext_cfssl_auth_error(root) ? SIGIL_E_PERM : SIGIL_E_INVALID,
				     "external CA at %s refused the request: \"%s\"", url, quote);
	}
	result = json_object_get(root, "result");
	if (!json_is_object(result))
		return sigil_err_set(err, SIGIL_E_INVALID, "response from %s has no \"result\" object",
				     url);
	*ret_result = result;
	*ret_root = TAKE_PTR(root);
	return 0;
}

/* cfssl's info endpoint names the signer; its certificate is the leaf's
 * issuer, and (unless it is a root) the chain the pod must present. */
static int ext_cfssl_signer(const ca_external_config *cfg, STACK_OF(X509) *out, sigil_err *err)
{
	_cleanup_(json_decrefp) json_t *req = json_object();
	_cleanup_(json_decrefp) json_t *root = NULL;
	_cleanup_free_ char *body = NULL;
	json_t *result = NULL;
	size_t len;
	int r;

	if (!req)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (cfg->profile[0] != '\0') {
		r = ext_json_set(req, "profile", json_string(cfg->profile), err);
		if (r < 0)
			return r;
	}
	r = ext_json_dump(req, &body, &len, err);
	if (r < 0)
		return r;
	r = ext_cfssl_call(cfg, "info", body, len, &root, &result, err);
	if (r < 0) {
		sigil_err_prefix(err, "asking cfssl for its signer: ");
		return r;
	}
	return ext_json_certs(result, "certificate", "signer certificate", cfg->url, true, out,
			      err);
}

static int ext_cfssl_sign(const ca_external_config *cfg, const ca_external_request *req,
			  const char *csr_pem, STACK_OF(X509) *leaf_certs, STACK_OF(X509) *cands,
			  sigil_err *err)
{
	_cleanup_(json_decrefp) json_t *sreq = json_object();
	_cleanup_(json_decrefp) json_t *hosts = json_array();
	_cleanup_(json_decrefp) json_t *root = NULL;
	_cleanup_free_ char *inner = NULL, *outer = NULL;
	json_t *result = NULL;
	size_t inner_len, outer_len;
	const char *endpoint = "sign";
	int r;

	if (!sreq || !hosts)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = ext_cfssl_signer(cfg, cands, err);
	if (r < 0)
		return r;
	/* cfssl signer.SignRequest: hosts override the CSR's SANs, subject
	 * overrides its subject; the CA decides, not the CSR. */
	for (size_t i = 0; i < req->n_dns; i++)
		if (json_array_append_new(hosts, json_string(req->dns[i])) < 0)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (size_t i = 0; i < req->n_ips; i++)
		if (json_array_append_new(hosts, json_string(req->ips[i])) < 0)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = ext_json_set(sreq, "certificate_request", json_string(csr_pem), err);
	if (r < 0)
		return r;
	r = ext_json_set(sreq, "hosts", json_incref(hosts), err);
	if (r < 0)
		return r;
	if (cfg->profile[0] != '\0') {
		r = ext_json_set(sreq, "profile", json_string(cfg->profile), err);
		if (r < 0)
			return r;
	}
	if (req->common_name && req->common_name[0] != '\0') {
		json_t *subject = json_object();
		if (!subject || json_object_set_new(subject, "CN", json_string(req->common_name)) < 0) {
			json_decref(subject);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
		r = ext_json_set(sreq, "subject", subject, err);
		if (r < 0)
			return r;
	}
	r = ext_json_dump(sreq, &inner, &inner_len, err);
	if (r < 0)
		return r;
	if (cfg->auth_key_file[0] != '\0') {
		/* cfssl auth.Standard: token = HMAC-SHA256(key, request bytes);
		 * both travel base64-encoded (Go []byte in JSON). */
		_cleanup_(ext_secret_free) ext_secret key = {0};
		_cleanup_(json_decrefp) json_t *areq = json_object();
		_cleanup_free_ char *b64req = NULL;
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int mac_len = 0;
		char b64mac[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];

		if (!areq)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		r = ext_read_hmac_key(cfg->auth_key_file, &key, err);
		if (r < 0)
			return r;
		if (!HMAC(EVP_sha256(), key.p, (int)key.len, (const unsigned char *)inner, inner_len,
			  mac, &mac_len))
			return sigil_err_ssl(err, SIGIL_E_CRYPTO, "HMAC-SHA256 failed");
		EVP_EncodeBlock((unsigned char *)b64mac, mac, (int)mac_len);
		OPENSSL_cleanse(mac, sizeof(mac));
		b64req = malloc(4 * ((inner_len + 2) / 3) + 1);
		if (!b64req)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		EVP_EncodeBlock((unsigned char *)b64req, (const unsigned char *)inner, (int)inner_len);
		r = ext_json_set(areq, "token", json_string(b64mac), err);
		if (r < 0)
			return r;
		r = ext_json_set(areq, "request", json_string(b64req), err);
		if (r < 0)
			return r;
		r = ext_json_dump(areq, &outer, &outer_len, err);
		if (r < 0)
			return r;
		endpoint = "authsign";
	}
	r = ext_cfssl_call(cfg, endpoint, outer ? outer : inner, outer ? outer_len : inner_len,
			   &root, &result, err);
	if (r < 0)
		return r;
	return ext_json_certs(result, "certificate", "certificate", cfg->url, true, leaf_certs,
			      err);
}

/* ---- Vault -------------------------------------------------------------------------- */

static int ext_vault_sign(const ca_external_config *cfg, const ca_external_request *req,
			  const char *csr_pem, STACK_OF(X509) *leaf_certs, STACK_OF(X509) *cands,
			  STACK_OF(X509) *issuing, sigil_err *err)
{
	_cleanup_(json_decrefp) json_t *vreq = json_object();
	_cleanup_(json_decrefp) json_t *root = NULL;
	_cleanup_(ext_secret_free) ext_secret token = {0};
	_cleanup_(ext_response_free) ext_response resp = {0};
	_cleanup_free_ char *body = NULL, *url = NULL;
	sigil_wbuf path, header;
	json_error_t jerr;
	json_t *data, *chain;
	const char *mount = cfg->mount[0] != '\0' ? cfg->mount : EXT_DEFAULT_MOUNT;
	size_t body_len;
	int r;

	if (!vreq)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = ext_check_path_part("mount", mount, sizeof(cfg->mount), err);
	if (r < 0)
		return r;
	r = ext_check_path_part("role", cfg->role, sizeof(cfg->role), err);
	if (r < 0)
		return r;
	r = ext_check_path("Vault token file", cfg->token_file, sizeof(cfg->token_file), err);
	if (r < 0)
		return r;

	/* Vault PKI "sign": POST /v1/:mount/sign/:role. */
	r = ext_json_set(vreq, "csr", json_string(csr_pem), err);
	if (r < 0)
		return r;
	r = ext_json_set(vreq, "format", json_string("pem"), err);
	if (r < 0)
		return r;
	/* The trust bundle carries roots; ask Vault to leave them out too
	 * (older Vaults ignore the field, and we drop roots anyway). */
	r = ext_json_set(vreq, "remove_roots_from_chain", json_true(), err);
	if (r < 0)
		return r;
	if (req->common_name && req->common_name[0] != '\0') {
		r = ext_json_set(vreq, "common_name", json_string(req->common_name), err);
		if (r < 0)
			return r;
	}
	if (req->n_dns > 0) {
		r = ext_json_set(vreq, "alt_names", ext_joined(req->dns, req->n_dns), err);
		if (r < 0)
			return r;
	}
	if (req->n_ips > 0) {
		r = ext_json_set(vreq, "ip_sans", ext_joined(req->ips, req->n_ips), err);
		if (r < 0)
			return r;
	}
	if (req->lifetime_secs > 0) {
		char ttl[32];
		snprintf(ttl, sizeof(ttl), "%llds", (long long)req->lifetime_secs);
		r = ext_json_set(vreq, "ttl", json_string(ttl), err);
		if (r < 0)
			return r;
	}
	r = ext_json_dump(vreq, &body, &body_len, err);
	if (r < 0)
		return r;

	sigil_wbuf_init(&path, EXT_MAX_URL, false);
	sigil_wbuf_putf(&path, "/v1/%s/sign/%s", mount, cfg->role);
	if (sigil_wbuf_status(&path) < 0) {
		sigil_wbuf_free(&path);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	url = ext_url_join(cfg->url, (const char *)path.p);
	sigil_wbuf_free(&path);
	if (!url)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");

	r = ext_read_token(cfg->token_file, &token, err);
	if (r < 0)
		return r;
	sigil_wbuf_init(&header, CA_EXTERNAL_MAX_SECRET_FILE + 64, true);
	sigil_wbuf_putf(&header, "X-Vault-Token: ");
	sigil_wbuf_put(&header, token.p, token.len);
	ext_secret_free(&token);
	if (sigil_wbuf_status(&header) < 0) {
		sigil_wbuf_free(&header);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	r = ext_http_post(cfg, url, (const char *)header.p, body, body_len, &resp, err);
	sigil_wbuf_free(&header);
	if (r < 0)
		return r;

	root = ext_json_load(&resp, &jerr);
	if (resp.status < 200 || resp.status > 299)
		return ext_http_error(url, &resp, root, false, err);
	if (!root)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "response from %s is not a JSON object (%s)", url,
				     resp.len ? jerr.text : "empty body");
	data = json_object_get(root, "data");
	if (!json_is_object(data)) {
		char quote[CA_EXTERNAL_MAX_QUOTE + 1];
		ext_errors_text(root, quote, sizeof(quote));
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "response from %s has no \"data\" object%s%s%s", url,
				     quote[0] ? " (\"" : "", quote, quote[0] ? "\")" : "");
	}
	r = ext_json_certs(data, "certificate", "certificate", url, true, leaf_certs, err);
	if (r < 0)
		return r;
	r = ext_json_certs(data, "issuing_ca", "issuing_ca", url, false, issuing, err);
	if (r < 0)
		return r;
	chain = json_object_get(data, "ca_chain");
	if (chain && !json_is_null(chain)) {
		size_t i;
		json_t *e;

		if (!json_is_array(chain))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "\"ca_chain\" in the response from %s is not a list", url);
		if (json_array_size(chain) > CA_EXTERNAL_MAX_CERTS)
			return sigil_err_set(err, SIGIL_E_LIMIT,
					     "\"ca_chain\" from %s holds more than %d certificates",
					     url, CA_EXTERNAL_MAX_CERTS);
		json_array_foreach(chain, i, e)
		{
			if (!json_is_string(e))
				return sigil_err_set(err, SIGIL_E_INVALID,
						     "\"ca_chain\" entry %zu from %s is not a string",
						     i + 1, url);
			r = ext_parse_pem_certs("ca_chain entry", url, json_string_value(e),
						json_string_length(e), cands, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* ---- entry point ------------------------------------------------------------------ */

int ca_external_sign(const ca_external_config *cfg, const ca_external_request *req,
		     X509 **ret_leaf, STACK_OF(X509) **ret_chain, sigil_err *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
	_cleanup_(certs_freep) STACK_OF(X509) *leaf_certs = sk_X509_new_null();
	_cleanup_(certs_freep) STACK_OF(X509) *cands = sk_X509_new_null();
	_cleanup_(certs_freep) STACK_OF(X509) *issuing = sk_X509_new_null();
	_cleanup_(certs_freep) STACK_OF(X509) *chain = NULL;
	_cleanup_free_ char *csr_pem = NULL;
	X509 *leaf;
	int r;

	if (!cfg || !ret_leaf || !ret_chain)
		return sigil_err_set(err, SIGIL_E_INVALID, "ca_external_sign: missing argument");
	if (!leaf_certs || !cands || !issuing)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = ext_check_url(cfg->url, err);
	if (r < 0)
		return r;
	if (cfg->ca_file[0] != '\0') {
		r = ext_check_path("CA file", cfg->ca_file, sizeof(cfg->ca_file), err);
		if (r < 0)
			return r;
	}
	r = ext_check_request(req, &pub, err);
	if (r < 0)
		return r;
	csr_pem = ext_csr_pem(req->csr_der, req->csr_len);
	if (!csr_pem)
		return sigil_err_ssl(err, SIGIL_E_NOMEM, "cannot encode the CSR as PEM");

	switch (cfg->kind) {
	case CA_EXTERNAL_CFSSL:
		r = ext_check_profile(cfg->profile, sizeof(cfg->profile), err);
		if (r < 0)
			return r;
		if (cfg->auth_key_file[0] != '\0') {
			r = ext_check_path("cfssl auth key file", cfg->auth_key_file,
					   sizeof(cfg->auth_key_file), err);
			if (r < 0)
				return r;
		}
		r = ext_cfssl_sign(cfg, req, csr_pem, leaf_certs, cands, err);
		break;
	case CA_EXTERNAL_VAULT:
		r = ext_vault_sign(cfg, req, csr_pem, leaf_certs, cands, issuing, err);
		break;
	default:
		return sigil_err_set(err, SIGIL_E_INVALID, "unknown external CA kind %d",
				     (int)cfg->kind);
	}
	if (r < 0)
		return r;

	/* The leaf comes first; anything after it in the same PEM is chain. */
	leaf = sk_X509_shift(leaf_certs);
	if (!leaf)
		return sigil_err_set(err, SIGIL_E_INVALID, "no certificate from %s", cfg->url);
	{
		_cleanup_(X509_freep) X509 *owned = leaf;
		X509 *x;

		r = ext_check_leaf(leaf, pub, cfg->url, err);
		if (r < 0)
			return r;
		if (sk_X509_num(leaf_certs) > 0) {
			/* The chain travelled with the leaf: it wins over any
			 * separately reported chain. */
			certs_free(cands);
			cands = TAKE_PTR(leaf_certs);
		}
		/* Vault: ca_chain starts with the issuer; without it, the
		 * issuing_ca alone.  Either way issuing_ca must have signed the
		 * leaf. */
		if (sk_X509_num(issuing) > 0) {
			X509 *iss = sk_X509_value(issuing, 0);
			char a[EXT_QUOTE_BUF];
			if (!ext_signed_by(leaf, iss))
				return sigil_err_set(err, SIGIL_E_INVALID,
						     "issuing_ca %s from %s did not issue the returned certificate",
						     ext_subject(iss, a, sizeof(a)), cfg->url);
			if (sk_X509_num(cands) == 0) {
				while ((x = sk_X509_shift(issuing)) != NULL)
					if (!sk_X509_push(cands, x)) {
						X509_free(x);
						return sigil_err_set(err, SIGIL_E_NOMEM,
								     "out of memory");
					}
			}
		}
		r = ext_link_chain(leaf, cands, cfg->url, &chain, err);
		if (r < 0)
			return r;
		*ret_leaf = TAKE_PTR(owned);
	}
	*ret_chain = TAKE_PTR(chain);
	return 0;
}
