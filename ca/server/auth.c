#include "ca/server/auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/fs.h"
#include "util/mem.h"

typedef struct token_entry {
	unsigned char digest[32];
	ca_caller caller;
} token_entry;

typedef struct tokens_auth {
	ca_auth base;
	char *path;
	pthread_mutex_t lock;
	token_entry *entries;
	size_t n;
	struct timespec mtime;
	time_t last_check;
} tokens_auth;

static void digest(const char *tok, size_t len, unsigned char out[32])
{
	unsigned int l = 0;

	EVP_Digest(tok, len, out, &l, EVP_sha256(), NULL);
}

static bool node_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return false;
	if (n == strlen(CA_AUTH_ADMIN) && !memcmp(s, CA_AUTH_ADMIN, n))
		return true;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* Parses text into entries (NULL: count and validate only). */
static int parse(const char *text, size_t len, token_entry **ret, size_t *n, sigil_err *err)
{
	token_entry *out = NULL;
	size_t count = 0, cap = 0, line = 0;
	const char *p = text, *end = text + len;
	int r = 0;

	while (p < end && r == 0) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end;
		const char *f[4];
		size_t fl[4];
		int nf = 0;

		line++;
		for (const char *q = p; q < le && nf < 4;) {
			while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
				q++;
			if (q >= le || *q == '#')
				break;
			f[nf] = q;
			while (q < le && *q != ' ' && *q != '\t' && *q != '\r')
				q++;
			fl[nf] = (size_t)(q - f[nf]);
			nf++;
		}
		p = eol ? eol + 1 : end;
		if (nf == 0)
			continue;
		if (nf < 2 || nf > 3) {
			r = sigil_err_set(err, SIGIL_E_INVALID,
					  "tokens file line %zu: expected 'TOKEN NODE-NAME [CLASSES]'", line);
			break;
		}
		if (fl[0] < CA_AUTH_MIN_TOKEN || fl[0] > CA_AUTH_MAX_TOKEN) {
			r = sigil_err_set(err, SIGIL_E_INVALID,
					  "tokens file line %zu: a token must be %d..%d characters", line,
					  CA_AUTH_MIN_TOKEN, CA_AUTH_MAX_TOKEN);
			break;
		}
		if (!node_name_ok(f[1], fl[1])) {
			r = sigil_err_set(err, SIGIL_E_INVALID,
					  "tokens file line %zu: '%.*s' is not a node name", line,
					  (int)(fl[1] > 64 ? 64 : fl[1]), f[1]);
			break;
		}
		if (count >= CA_AUTH_MAX_TOKENS) {
			r = sigil_err_set(err, SIGIL_E_LIMIT, "more than %d tokens", CA_AUTH_MAX_TOKENS);
			break;
		}
		if (ret && count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			token_entry *ne = realloc(out, nc * sizeof(*ne));
			if (!ne) {
				r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
				break;
			}
			out = ne;
			cap = nc;
		}
		token_entry e;
		memset(&e, 0, sizeof(e));
		digest(f[0], fl[0], e.digest);
		memcpy(e.caller.node, f[1], fl[1]);
		e.caller.admin = fl[1] == strlen(CA_AUTH_ADMIN) && !memcmp(f[1], CA_AUTH_ADMIN, fl[1]);
		if (nf == 3) {
			const char *c = f[2], *ce = f[2] + fl[2];
			while (c < ce && r == 0) {
				const char *comma = memchr(c, ',', (size_t)(ce - c));
				size_t cl = (size_t)((comma ? comma : ce) - c);
				if (cl == 0 || cl >= sizeof(e.caller.classes[0]) ||
				    e.caller.n_classes >= CA_AUTH_MAX_CLASSES)
					r = sigil_err_set(err, SIGIL_E_INVALID,
							  "tokens file line %zu: bad class list", line);
				else
					memcpy(e.caller.classes[e.caller.n_classes++], c, cl);
				c = comma ? comma + 1 : ce;
			}
		}
		if (r == 0 && ret)
			out[count] = e;
		if (r == 0)
			count++;
		sigil_wipe(&e, sizeof(e));
	}
	if (r < 0) {
		if (out)
			sigil_freezero(out, cap * sizeof(*out));
		return r;
	}
	if (ret)
		*ret = out;
	*n = count;
	return 0;
}

int ca_auth_tokens_parse(const char *text, size_t len, size_t *n, sigil_err *err)
{
	return parse(text, len, NULL, n, err);
}

static int reload(tokens_auth *t, sigil_err *err)
{
	uint8_t *data = NULL;
	size_t len = 0, n = 0;
	token_entry *e = NULL;
	struct stat st;
	int r;

	if (stat(t->path, &st) < 0)
		return sigil_err_errno(err, errno, "cannot stat tokens file %s", t->path);
	if (st.st_mode & 0007)
		return sigil_err_set(err, SIGIL_E_PERM,
				     "tokens file %s is readable by others: chmod o-rwx it", t->path);
	r = sigil_fs_read_file(t->path, SIGIL_MAX_FILE_SIZE, &data, &len, err);
	if (r < 0)
		return r;
	r = parse((char *)data, len, &e, &n, err);
	sigil_freezero(data, len);
	if (r < 0)
		return sigil_err_prefix(err, "%s: ", t->path);
	if (t->entries)
		sigil_freezero(t->entries, t->n * sizeof(*t->entries));
	t->entries = e;
	t->n = n;
	t->mtime = st.st_mtim;
	return 0;
}

static int tokens_authenticate(ca_auth *a, const char *tok, size_t len, ca_caller *ret,
			       sigil_err *err)
{
	tokens_auth *t = (tokens_auth *)a;
	unsigned char d[32];
	int found = -1;
	time_t now = time(NULL);

	if (len < CA_AUTH_MIN_TOKEN || len > CA_AUTH_MAX_TOKEN)
		return sigil_err_set(err, SIGIL_E_UNAUTH, "invalid bearer token");
	digest(tok, len, d);
	pthread_mutex_lock(&t->lock);
	if (now != t->last_check) {
		struct stat st;
		t->last_check = now;
		if (stat(t->path, &st) == 0 && (st.st_mtim.tv_sec != t->mtime.tv_sec ||
						st.st_mtim.tv_nsec != t->mtime.tv_nsec))
			(void)reload(t, NULL); /* a bad new file keeps the old tokens */
	}
	/* Look at every entry, so timing does not tell where a match was. */
	for (size_t i = 0; i < t->n; i++)
		if (CRYPTO_memcmp(d, t->entries[i].digest, sizeof(d)) == 0)
			found = (int)i;
	if (found >= 0)
		*ret = t->entries[found].caller;
	pthread_mutex_unlock(&t->lock);
	if (found < 0)
		return sigil_err_set(err, SIGIL_E_UNAUTH, "invalid bearer token");
	return 0;
}

static void tokens_free(ca_auth *a)
{
	tokens_auth *t = (tokens_auth *)a;

	if (t->entries)
		sigil_freezero(t->entries, t->n * sizeof(*t->entries));
	pthread_mutex_destroy(&t->lock);
	free(t->path);
	free(t);
}

static const ca_auth_ops tokens_ops = {tokens_authenticate, tokens_free};

int ca_auth_tokens_open(const char *path, ca_auth **ret, sigil_err *err)
{
	tokens_auth *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	t->base.ops = &tokens_ops;
	pthread_mutex_init(&t->lock, NULL);
	t->path = strdup(path);
	if (!t->path) {
		tokens_free(&t->base);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	r = reload(t, err);
	if (r < 0) {
		tokens_free(&t->base);
		return r;
	}
	t->last_check = time(NULL);
	*ret = &t->base;
	return 0;
}

void ca_auth_free(ca_auth *a)
{
	if (a)
		a->ops->free(a);
}

bool ca_caller_may_use(const ca_caller *c, const char *class_name)
{
	if (c->n_classes == 0)
		return true;
	for (size_t i = 0; i < c->n_classes; i++)
		if (!strcmp(c->classes[i], class_name))
			return true;
	return false;
}

int ca_auth_bearer(const char *value, size_t len, const char **tok, size_t *tok_len)
{
	static const char prefix[] = "Bearer ";

	if (len <= sizeof(prefix) - 1 || strncasecmp(value, prefix, sizeof(prefix) - 1))
		return SIGIL_E_UNAUTH;
	*tok = value + sizeof(prefix) - 1;
	*tok_len = len - (sizeof(prefix) - 1);
	return 0;
}
