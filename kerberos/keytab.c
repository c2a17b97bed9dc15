#include "kerberos/keytab.h"

#include <stdio.h>
#include <string.h>

#include "util/buf.h"

static void entry_clear(kerberos_keytab_entry *e)
{
	if (e->components) {
		for (size_t i = 0; i < e->n_components; i++)
			free(e->components[i]);
		free(e->components);
	}
	free(e->realm);
	sigil_freezero(e->key, e->key_len);
	memset(e, 0, sizeof(*e));
}

kerberos_keytab *kerberos_keytab_new(void)
{
	return calloc(1, sizeof(kerberos_keytab));
}

void kerberos_keytab_free(kerberos_keytab *kt)
{
	if (!kt)
		return;
	for (size_t i = 0; i < kt->n; i++)
		entry_clear(&kt->entries[i]);
	free(kt->entries);
	free(kt);
}

/* Checks e against the limits that the parser enforces too, so that what
 * sigil writes it can always read back. */
static int entry_check(const kerberos_keytab_entry *e, sigil_err *err)
{
	if (!e->realm || !*e->realm)
		return sigil_err_set(err, SIGIL_E_INVALID, "keytab entry without a realm");
	if (strlen(e->realm) > KERBEROS_KEYTAB_MAX_DATA_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "keytab realm longer than %d bytes",
		                     KERBEROS_KEYTAB_MAX_DATA_LEN);
	if (e->n_components == 0 || !e->components)
		return sigil_err_set(err, SIGIL_E_INVALID, "keytab entry without a principal name");
	if (e->n_components > KERBEROS_KEYTAB_MAX_COMPONENTS)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "keytab principal with more than %d components",
		                     KERBEROS_KEYTAB_MAX_COMPONENTS);
	for (size_t i = 0; i < e->n_components; i++) {
		if (!e->components[i])
			return sigil_err_set(err, SIGIL_E_INVALID, "keytab component %zu missing",
			                     i);
		if (strlen(e->components[i]) > KERBEROS_KEYTAB_MAX_DATA_LEN)
			return sigil_err_set(err, SIGIL_E_LIMIT,
			                     "keytab principal component longer than %d bytes",
			                     KERBEROS_KEYTAB_MAX_DATA_LEN);
	}
	if (e->key_len == 0 || !e->key)
		return sigil_err_set(err, SIGIL_E_INVALID, "keytab entry without a key");
	if (e->key_len > KERBEROS_KEYTAB_MAX_KEY_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "keytab key longer than %d bytes",
		                     KERBEROS_KEYTAB_MAX_KEY_LEN);
	/* The file holds the enctype in 16 bits (MIT reads it as signed). */
	if (e->enctype < INT16_MIN || e->enctype > INT16_MAX)
		return sigil_err_set(err, SIGIL_E_INVALID, "enctype %d does not fit a keytab",
		                     (int)e->enctype);
	return 0;
}

/* Deep copy of a checked entry into dst (zeroed on failure). */
static int entry_copy(kerberos_keytab_entry *dst, const kerberos_keytab_entry *src, sigil_err *err)
{
	kerberos_keytab_entry e = {
	    .n_components = src->n_components,
	    .name_type = src->name_type,
	    .timestamp = src->timestamp,
	    .kvno = src->kvno,
	    .enctype = src->enctype,
	    .key_len = src->key_len,
	};

	e.realm = strdup(src->realm);
	e.components = calloc(src->n_components, sizeof(char *));
	e.key = malloc(src->key_len);
	if (!e.realm || !e.components || !e.key)
		goto oom;
	for (size_t i = 0; i < src->n_components; i++)
		if (!(e.components[i] = strdup(src->components[i])))
			goto oom;
	memcpy(e.key, src->key, src->key_len);
	*dst = e;
	return 0;
oom:
	entry_clear(&e);
	return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory copying a keytab entry");
}

static int keytab_reserve(kerberos_keytab *kt, sigil_err *err)
{
	kerberos_keytab_entry *n;
	size_t cap;

	if (kt->n >= KERBEROS_KEYTAB_MAX_ENTRIES)
		return sigil_err_set(err, SIGIL_E_LIMIT, "a keytab may hold at most %d entries",
		                     KERBEROS_KEYTAB_MAX_ENTRIES);
	if (kt->n < kt->cap)
		return 0;
	cap = kt->cap ? kt->cap * 2 : 8;
	/* Entries hold pointers to keys, not keys: a plain realloc is fine. */
	n = realloc(kt->entries, cap * sizeof(*n));
	if (!n)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory growing a keytab");
	kt->entries = n;
	kt->cap = cap;
	return 0;
}

int kerberos_keytab_add(kerberos_keytab *kt, const kerberos_keytab_entry *e, sigil_err *err)
{
	int r;

	if ((r = entry_check(e, err)) < 0 || (r = keytab_reserve(kt, err)) < 0)
		return r;
	if ((r = entry_copy(&kt->entries[kt->n], e, err)) < 0)
		return r;
	kt->n++;
	return 0;
}

int kerberos_keytab_add_key(kerberos_keytab *kt, const kerberos_principal *p, uint32_t timestamp,
                            uint32_t kvno, int32_t enctype, const uint8_t *key, size_t key_len,
                            sigil_err *err)
{
	char *comps[2] = {(char *)p->service, (char *)p->host};
	kerberos_keytab_entry e = {
	    .realm = (char *)p->realm,
	    .components = comps,
	    .n_components = 2,
	    .name_type = KERBEROS_NT_PRINCIPAL,
	    .timestamp = timestamp,
	    .kvno = kvno,
	    .enctype = enctype,
	    .key = (uint8_t *)key,
	    .key_len = key_len,
	};

	return kerberos_keytab_add(kt, &e, err);
}

/* ---- reading ----------------------------------------------------------------------- */

/* A u16-counted byte string that must not hold NUL (principal text). */
static int read_data(sigil_rbuf *b, bool allow_empty, const char *what, size_t idx, char **ret,
                     sigil_err *err)
{
	uint16_t n;
	const uint8_t *p;
	char *s;

	if (sigil_rbuf_get_u16be(b, &n) < 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "keytab entry %zu: %s is truncated", idx,
		                     what);
	if (n > KERBEROS_KEYTAB_MAX_DATA_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "keytab entry %zu: %s is %u bytes, more than %d", idx, what,
		                     (unsigned)n, KERBEROS_KEYTAB_MAX_DATA_LEN);
	if (sigil_rbuf_get_bytes(b, n, &p) < 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "keytab entry %zu: %s is truncated", idx,
		                     what);
	if (n == 0 && !allow_empty)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "keytab entry %zu: empty %s", idx, what);
	if (memchr(p, '\0', n))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "keytab entry %zu: %s holds a NUL byte",
		                     idx, what);
	s = sigil_strndup((const char *)p, n);
	if (!s)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory reading a keytab");
	*ret = s;
	return 0;
}

static int read_entry(sigil_rbuf *b, size_t idx, kerberos_keytab_entry *ret, sigil_err *err)
{
	kerberos_keytab_entry e = {0};
	uint16_t ncomp, enctype, keylen;
	uint8_t kvno8;
	uint32_t kvno32;
	const uint8_t *key;
	int r;

	if (sigil_rbuf_get_u16be(b, &ncomp) < 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "keytab entry %zu is truncated", idx);
	if (ncomp == 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT,
		                     "keytab entry %zu has no name components", idx);
	if (ncomp > KERBEROS_KEYTAB_MAX_COMPONENTS)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "keytab entry %zu has %u name components, more than %d", idx,
		                     (unsigned)ncomp, KERBEROS_KEYTAB_MAX_COMPONENTS);
	if ((r = read_data(b, false, "realm", idx, &e.realm, err)) < 0)
		goto fail;
	e.components = calloc(ncomp, sizeof(char *));
	if (!e.components) {
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory reading a keytab");
		goto fail;
	}
	for (uint16_t i = 0; i < ncomp; i++) {
		/* Count as we go, so that entry_clear frees exactly what exists. */
		if ((r = read_data(b, true, "name component", idx, &e.components[i], err)) < 0)
			goto fail;
		e.n_components++;
	}
	if (sigil_rbuf_get_u32be(b, &e.name_type) < 0 ||
	    sigil_rbuf_get_u32be(b, &e.timestamp) < 0 || sigil_rbuf_get_u8(b, &kvno8) < 0 ||
	    sigil_rbuf_get_u16be(b, &enctype) < 0 || sigil_rbuf_get_u16be(b, &keylen) < 0) {
		r = sigil_err_set(err, SIGIL_E_CORRUPT, "keytab entry %zu is truncated", idx);
		goto fail;
	}
	if (keylen == 0) {
		r = sigil_err_set(err, SIGIL_E_CORRUPT, "keytab entry %zu has an empty key", idx);
		goto fail;
	}
	if (keylen > KERBEROS_KEYTAB_MAX_KEY_LEN) {
		r = sigil_err_set(err, SIGIL_E_LIMIT,
		                  "keytab entry %zu has a %u-byte key, more than %d", idx,
		                  (unsigned)keylen, KERBEROS_KEYTAB_MAX_KEY_LEN);
		goto fail;
	}
	if (sigil_rbuf_get_bytes(b, keylen, &key) < 0) {
		r = sigil_err_set(err, SIGIL_E_CORRUPT, "keytab entry %zu: key is truncated", idx);
		goto fail;
	}
	e.key = malloc(keylen);
	if (!e.key) {
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory reading a keytab");
		goto fail;
	}
	memcpy(e.key, key, keylen);
	e.key_len = keylen;
	e.enctype = (int16_t)enctype; /* MIT reads the enctype as a signed 16-bit value */
	e.kvno = kvno8;
	/* The 32-bit kvno is optional (older writers stop after the key). */
	if (sigil_rbuf_remaining(b) >= 4 && sigil_rbuf_get_u32be(b, &kvno32) == 0 && kvno32 != 0)
		e.kvno = kvno32;
	*ret = e;
	return 0;
fail:
	entry_clear(&e);
	return r;
}

int kerberos_keytab_parse(const uint8_t *data, size_t len, kerberos_keytab **ret, sigil_err *err)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = NULL;
	sigil_rbuf b;
	uint16_t version;
	int r;

	if (len > KERBEROS_KEYTAB_MAX_SIZE)
		return sigil_err_set(err, SIGIL_E_LIMIT, "keytab of %zu bytes is larger than %d",
		                     len, KERBEROS_KEYTAB_MAX_SIZE);
	sigil_rbuf_init(&b, data, len);
	if (sigil_rbuf_get_u16be(&b, &version) < 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "not a keytab: shorter than its header");
	if (version == 0x0501)
		return sigil_err_set(err, SIGIL_E_CORRUPT,
		                     "keytab version 0x0501 (host byte order) is not supported");
	if (version != KERBEROS_KEYTAB_VERSION)
		return sigil_err_set(err, SIGIL_E_CORRUPT,
		                     "not a keytab: version 0x%04x, expected 0x0502", version);
	kt = kerberos_keytab_new();
	if (!kt)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory reading a keytab");
	while (sigil_rbuf_remaining(&b) > 0) {
		size_t off = b.off, idx = kt->n;
		uint32_t raw;
		int32_t size;
		const uint8_t *body;
		sigil_rbuf eb;

		if (sigil_rbuf_get_u32be(&b, &raw) < 0)
			return sigil_err_set(err, SIGIL_E_CORRUPT,
			                     "keytab: %zu stray bytes at offset %zu", len - off,
			                     off);
		size = (int32_t)raw;
		/* MIT: a zero size ends the entries (a file cut to length). */
		if (size == 0)
			break;
		if (size < 0) {
			uint32_t hole = (uint32_t)(-(int64_t)size);

			if (sigil_rbuf_get_bytes(&b, hole, &body) < 0)
				return sigil_err_set(
				    err, SIGIL_E_CORRUPT,
				    "keytab: a hole of %u bytes at offset %zu runs "
				    "past the end",
				    hole, off);
			continue;
		}
		if (sigil_rbuf_get_bytes(&b, (uint32_t)size, &body) < 0)
			return sigil_err_set(err, SIGIL_E_CORRUPT,
			                     "keytab entry %zu claims %d bytes, only %zu are left",
			                     idx, (int)size, sigil_rbuf_remaining(&b));
		if ((r = keytab_reserve(kt, err)) < 0)
			return r;
		sigil_rbuf_init(&eb, body, (uint32_t)size);
		if ((r = read_entry(&eb, idx, &kt->entries[kt->n], err)) < 0)
			return r;
		kt->n++;
	}
	*ret = TAKE_PTR(kt);
	return 0;
}

/* ---- writing ------------------------------------------------------------------------ */

static void put_data(sigil_wbuf *w, const void *p, size_t n)
{
	(void)sigil_wbuf_put_u16be(w, (uint16_t)n);
	(void)sigil_wbuf_put(w, p, n);
}

int kerberos_keytab_serialize(const kerberos_keytab *kt, uint8_t **ret, size_t *ret_len,
                              sigil_err *err)
{
	sigil_wbuf w;
	int r;

	sigil_wbuf_init(&w, KERBEROS_KEYTAB_MAX_SIZE, true);
	(void)sigil_wbuf_put_u16be(&w, KERBEROS_KEYTAB_VERSION);
	for (size_t i = 0; i < kt->n; i++) {
		const kerberos_keytab_entry *e = &kt->entries[i];
		size_t size, rl;

		if ((r = entry_check(e, err)) < 0) {
			sigil_wbuf_free(&w);
			return r;
		}
		rl = strlen(e->realm);
		/* Bounded by the limits: 2 + 17 * (2 + 1024) + 15 + 256 + 4 fits an i32. */
		size = 2 + 2 + rl;
		for (size_t c = 0; c < e->n_components; c++)
			size += 2 + strlen(e->components[c]);
		size += 4 + 4 + 1 + 2 + 2 + e->key_len + 4;
		(void)sigil_wbuf_put_u32be(&w, (uint32_t)size);
		(void)sigil_wbuf_put_u16be(&w, (uint16_t)e->n_components);
		put_data(&w, e->realm, rl);
		for (size_t c = 0; c < e->n_components; c++)
			put_data(&w, e->components[c], strlen(e->components[c]));
		(void)sigil_wbuf_put_u32be(&w, e->name_type);
		(void)sigil_wbuf_put_u32be(&w, e->timestamp);
		/* MIT writes the low byte here and the full kvno at the end. */
		(void)sigil_wbuf_put_u8(&w, (uint8_t)(e->kvno & 0xff));
		(void)sigil_wbuf_put_u16be(&w, (uint16_t)(int16_t)e->enctype);
		put_data(&w, e->key, e->key_len);
		(void)sigil_wbuf_put_u32be(&w, e->kvno);
	}
	if ((r = sigil_wbuf_status(&w)) < 0) {
		sigil_wbuf_free(&w);
		if (r == SIGIL_E_LIMIT)
			return sigil_err_set(err, r, "keytab larger than %d bytes",
			                     KERBEROS_KEYTAB_MAX_SIZE);
		return sigil_err_set(err, r, "out of memory writing a keytab");
	}
	*ret = sigil_wbuf_steal(&w, ret_len);
	if (!*ret)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory writing a keytab");
	return 0;
}

/* ---- merging and display ---------------------------------------------------------- */

bool kerberos_keytab_entry_same_principal(const kerberos_keytab_entry *a,
                                          const kerberos_keytab_entry *b)
{
	if (a->n_components != b->n_components || strcmp(a->realm, b->realm) != 0)
		return false;
	for (size_t i = 0; i < a->n_components; i++)
		if (strcmp(a->components[i], b->components[i]) != 0)
			return false;
	return true;
}

int kerberos_keytab_merge(const kerberos_keytab *a, const kerberos_keytab *b, kerberos_keytab **ret,
                          sigil_err *err)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = kerberos_keytab_new();
	int r;

	if (!kt)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory merging keytabs");
	for (size_t i = 0; i < a->n; i++)
		if ((r = kerberos_keytab_add(kt, &a->entries[i], err)) < 0)
			return r;
	for (size_t i = 0; i < b->n; i++) {
		const kerberos_keytab_entry *e = &b->entries[i];
		size_t j;

		for (j = 0; j < kt->n; j++)
			if (kt->entries[j].kvno == e->kvno &&
			    kt->entries[j].enctype == e->enctype &&
			    kerberos_keytab_entry_same_principal(&kt->entries[j], e))
				break;
		if (j == kt->n) {
			if ((r = kerberos_keytab_add(kt, e, err)) < 0)
				return r;
			continue;
		}
		kerberos_keytab_entry copy;
		if ((r = entry_check(e, err)) < 0 || (r = entry_copy(&copy, e, err)) < 0)
			return r;
		entry_clear(&kt->entries[j]);
		kt->entries[j] = copy;
	}
	*ret = TAKE_PTR(kt);
	return 0;
}

typedef struct {
	char *buf;
	size_t len, n;
	bool cut;
} text_out;

static void out_char(text_out *o, char c)
{
	if (o->n + 1 < o->len)
		o->buf[o->n++] = c;
	else
		o->cut = true;
}

static void out_escaped(text_out *o, const char *s, const char *specials)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f) {
			out_char(o, '\\');
			out_char(o, 'x');
			out_char(o, hex[c >> 4]);
			out_char(o, hex[c & 0xf]);
		} else {
			if (strchr(specials, (char)c))
				out_char(o, '\\');
			out_char(o, (char)c);
		}
	}
}

int kerberos_keytab_entry_principal(const kerberos_keytab_entry *e, char *buf, size_t len)
{
	text_out o = {buf, len, 0, false};

	if (!buf || len == 0)
		return SIGIL_E_LIMIT;
	for (size_t i = 0; i < e->n_components; i++) {
		if (i > 0)
			out_char(&o, '/');
		out_escaped(&o, e->components[i], "/@\\");
	}
	out_char(&o, '@');
	/* MIT krb5_unparse_name escapes only '@' and '\' in the realm. */
	out_escaped(&o, e->realm, "@\\");
	buf[o.n] = '\0';
	return o.cut ? SIGIL_E_LIMIT : 0;
}

const char *kerberos_enctype_name(int32_t enctype)
{
	switch (enctype) {
	case 1: return "des-cbc-crc";
	case 2: return "des-cbc-md4";
	case 3: return "des-cbc-md5";
	case 16: return "des3-cbc-sha1";
	case 17: return "aes128-cts-hmac-sha1-96";
	case 18: return "aes256-cts-hmac-sha1-96";
	case 19: return "aes128-cts-hmac-sha256-128";
	case 20: return "aes256-cts-hmac-sha384-192";
	case 23: return "arcfour-hmac";
	case 24: return "arcfour-hmac-exp";
	case 25: return "camellia128-cts-cmac";
	case 26: return "camellia256-cts-cmac";
	default: return NULL;
	}
}
