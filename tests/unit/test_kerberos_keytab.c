#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kerberos/keytab.h"
#include "util/buf.h"
#include "util/mem.h"

/* Written by MIT ktutil 1.20 ("addent -password", then "wkt"):
 *   kvno 3 HTTP/web-0.default.svc.cluster.local@SIGIL.TEST aes256-cts-hmac-sha1-96
 *   kvno 3 HTTP/web-0.default.svc.cluster.local@SIGIL.TEST aes128-cts-hmac-sha1-96
 *   kvno 300 kafka/10.0.0.7@SIGIL.TEST aes256-cts-hmac-sha1-96 */
static const uint8_t mit_keytab[] = {
    0x05, 0x02, 0x00, 0x00, 0x00, 0x66, 0x00, 0x02, 0x00, 0x0a, 0x53, 0x49, 0x47, 0x49, 0x4c, 0x2e,
    0x54, 0x45, 0x53, 0x54, 0x00, 0x04, 0x48, 0x54, 0x54, 0x50, 0x00, 0x1f, 0x77, 0x65, 0x62, 0x2d,
    0x30, 0x2e, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6c, 0x74, 0x2e, 0x73, 0x76, 0x63, 0x2e, 0x63, 0x6c,
    0x75, 0x73, 0x74, 0x65, 0x72, 0x2e, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0x00, 0x00, 0x00, 0x01, 0x6b,
    0x07, 0x09, 0xd2, 0x03, 0x00, 0x12, 0x00, 0x20, 0x69, 0x24, 0xaa, 0xcb, 0xd9, 0x21, 0x76, 0x6b,
    0x34, 0xeb, 0x96, 0xae, 0x32, 0xa8, 0x61, 0xee, 0x19, 0x35, 0x48, 0x3c, 0x82, 0x6e, 0x86, 0x37,
    0xcf, 0xb1, 0x1a, 0xd8, 0xc2, 0x9a, 0xbb, 0xc5, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x56,
    0x00, 0x02, 0x00, 0x0a, 0x53, 0x49, 0x47, 0x49, 0x4c, 0x2e, 0x54, 0x45, 0x53, 0x54, 0x00, 0x04,
    0x48, 0x54, 0x54, 0x50, 0x00, 0x1f, 0x77, 0x65, 0x62, 0x2d, 0x30, 0x2e, 0x64, 0x65, 0x66, 0x61,
    0x75, 0x6c, 0x74, 0x2e, 0x73, 0x76, 0x63, 0x2e, 0x63, 0x6c, 0x75, 0x73, 0x74, 0x65, 0x72, 0x2e,
    0x6c, 0x6f, 0x63, 0x61, 0x6c, 0x00, 0x00, 0x00, 0x01, 0x6b, 0x07, 0x09, 0xd2, 0x03, 0x00, 0x11,
    0x00, 0x10, 0x8c, 0x3a, 0xba, 0x45, 0xa8, 0x3a, 0x25, 0xb3, 0x1d, 0xfa, 0xe2, 0x38, 0x5f, 0xaf,
    0x11, 0x3d, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x50, 0x00, 0x02, 0x00, 0x0a, 0x53, 0x49,
    0x47, 0x49, 0x4c, 0x2e, 0x54, 0x45, 0x53, 0x54, 0x00, 0x05, 0x6b, 0x61, 0x66, 0x6b, 0x61, 0x00,
    0x08, 0x31, 0x30, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x37, 0x00, 0x00, 0x00, 0x01, 0x6b, 0x07, 0x09,
    0xd2, 0x2c, 0x00, 0x12, 0x00, 0x20, 0xe6, 0xb5, 0xcf, 0xcb, 0x0a, 0xf7, 0x68, 0x77, 0x10, 0x40,
    0x7f, 0x9c, 0x30, 0x9f, 0xd1, 0xfb, 0x5c, 0x43, 0xc5, 0x3d, 0xe8, 0x80, 0x24, 0xe3, 0x46, 0xa7,
    0x69, 0x37, 0x28, 0x11, 0x83, 0x29, 0x00, 0x00, 0x01, 0x2c,
};
/* Offsets of the entry boundaries in mit_keytab. */
static const size_t mit_bounds[] = {2, 2 + 4 + 0x66, 2 + 4 + 0x66 + 4 + 0x56, sizeof(mit_keytab)};

static void test_parse_mit_keytab(void **state)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = NULL;
	sigil_err err = {0};
	char name[256];
	const kerberos_keytab_entry *e;

	assert_int_equal(kerberos_keytab_parse(mit_keytab, sizeof(mit_keytab), &kt, &err), 0);
	assert_int_equal(kt->n, 3);
	e = &kt->entries[0];
	assert_string_equal(e->realm, "SIGIL.TEST");
	assert_int_equal(e->n_components, 2);
	assert_string_equal(e->components[0], "HTTP");
	assert_string_equal(e->components[1], "web-0.default.svc.cluster.local");
	assert_int_equal(e->name_type, KERBEROS_NT_PRINCIPAL);
	assert_int_equal(e->timestamp, 0x6b0709d2);
	assert_int_equal(e->kvno, 3);
	assert_int_equal(e->enctype, 18);
	assert_int_equal(e->key_len, 32);
	assert_int_equal(e->key[0], 0x69);
	assert_int_equal(e->key[31], 0xc5);
	assert_int_equal(kt->entries[1].enctype, 17);
	assert_int_equal(kt->entries[1].key_len, 16);
	/* kvno 300 does not fit the 8-bit field: the trailing u32 carries it. */
	e = &kt->entries[2];
	assert_int_equal(e->kvno, 300);
	assert_int_equal(kerberos_keytab_entry_principal(e, name, sizeof(name)), 0);
	assert_string_equal(name, "kafka/10.0.0.7@SIGIL.TEST");
	assert_string_equal(kerberos_enctype_name(e->enctype), "aes256-cts-hmac-sha1-96");
}

static void test_roundtrip_is_byte_exact(void **state)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = NULL;
	sigil_err err = {0};
	uint8_t *out = NULL;
	size_t len;

	assert_int_equal(kerberos_keytab_parse(mit_keytab, sizeof(mit_keytab), &kt, &err), 0);
	assert_int_equal(kerberos_keytab_serialize(kt, &out, &len, &err), 0);
	/* sigil writes exactly what MIT writes for the same entries. */
	assert_int_equal(len, sizeof(mit_keytab));
	assert_memory_equal(out, mit_keytab, len);
	sigil_freezero(out, len);
}

static void test_build_and_read_back(void **state)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = kerberos_keytab_new();
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *back = NULL;
	kerberos_principal p = {"HTTP", "web-0.default.svc.cluster.local", "SIGIL.TEST"};
	uint8_t key32[32], key16[16];
	sigil_err err = {0};
	uint8_t *out = NULL, *out2 = NULL;
	size_t len, len2;

	for (size_t i = 0; i < sizeof(key32); i++)
		key32[i] = (uint8_t)i;
	memset(key16, 0xab, sizeof(key16));
	assert_non_null(kt);
	assert_int_equal(kerberos_keytab_add_key(kt, &p, 1700000000, 1, 18, key32, 32, &err), 0);
	assert_int_equal(kerberos_keytab_add_key(kt, &p, 1700000000, 70000, 17, key16, 16, &err),
	                 0);
	assert_int_equal(kerberos_keytab_serialize(kt, &out, &len, &err), 0);
	assert_int_equal(out[0], 0x05);
	assert_int_equal(out[1], 0x02);
	assert_int_equal(kerberos_keytab_parse(out, len, &back, &err), 0);
	assert_int_equal(back->n, 2);
	assert_true(kerberos_keytab_entry_same_principal(&back->entries[0], &kt->entries[0]));
	assert_int_equal(back->entries[0].kvno, 1);
	assert_int_equal(back->entries[1].kvno, 70000);
	assert_int_equal(back->entries[1].timestamp, 1700000000);
	assert_memory_equal(back->entries[0].key, key32, 32);
	assert_memory_equal(back->entries[1].key, key16, 16);
	assert_int_equal(kerberos_keytab_serialize(back, &out2, &len2, &err), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(out, out2, len);
	sigil_freezero(out, len);
	sigil_freezero(out2, len2);

	/* An empty keytab is just the version. */
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *empty = kerberos_keytab_new();
	assert_int_equal(kerberos_keytab_serialize(empty, &out, &len, &err), 0);
	assert_int_equal(len, 2);
	sigil_freezero(out, len);
}

static void test_truncated_at_every_length(void **state)
{
	for (size_t n = 0; n < sizeof(mit_keytab); n++) {
		kerberos_keytab *kt = (kerberos_keytab *)0x1;
		sigil_err err = {0};
		int r = kerberos_keytab_parse(mit_keytab, n, &kt, &err);
		bool boundary = false;
		size_t entries = 0;

		for (size_t b = 0; b < sizeof(mit_bounds) / sizeof(mit_bounds[0]); b++)
			if (mit_bounds[b] == n) {
				boundary = true;
				entries = b;
			}
		if (boundary) {
			/* A cut between entries is a valid, shorter keytab. */
			assert_int_equal(r, 0);
			assert_int_equal(kt->n, entries);
			kerberos_keytab_free(kt);
		} else {
			if (r != SIGIL_E_CORRUPT)
				fail_msg("length %zu: %d", n, r);
			assert_ptr_equal(kt, (kerberos_keytab *)0x1); /* untouched */
			assert_true(strlen(err.msg) > 0);
		}
	}
}

/* Builds a file of one hand-made entry body (after the size field). */
static uint8_t *one_entry(const uint8_t *body, size_t body_len, int32_t size, size_t *len)
{
	sigil_wbuf w;

	sigil_wbuf_init(&w, 1 << 20, false);
	assert_int_equal(sigil_wbuf_put_u16be(&w, 0x0502), 0);
	assert_int_equal(sigil_wbuf_put_u32be(&w, (uint32_t)size), 0);
	assert_int_equal(sigil_wbuf_put(&w, body, body_len), 0);
	return sigil_wbuf_steal(&w, len);
}

/* An entry body: ncomp components "a", realm, key of key_len bytes. */
static uint8_t *entry_body(uint16_t ncomp, uint16_t realm_len, uint16_t comp_len, uint16_t key_len,
                           bool kvno32, size_t *len)
{
	sigil_wbuf w;

	sigil_wbuf_init(&w, 1 << 22, false);
	(void)sigil_wbuf_put_u16be(&w, ncomp);
	(void)sigil_wbuf_put_u16be(&w, realm_len);
	for (uint16_t i = 0; i < realm_len; i++)
		(void)sigil_wbuf_put_u8(&w, 'R');
	for (uint16_t c = 0; c < ncomp; c++) {
		(void)sigil_wbuf_put_u16be(&w, comp_len);
		for (uint16_t i = 0; i < comp_len; i++)
			(void)sigil_wbuf_put_u8(&w, 'a');
	}
	(void)sigil_wbuf_put_u32be(&w, 1);     /* name type */
	(void)sigil_wbuf_put_u32be(&w, 12345); /* timestamp */
	(void)sigil_wbuf_put_u8(&w, 7);        /* kvno8 */
	(void)sigil_wbuf_put_u16be(&w, 18);
	(void)sigil_wbuf_put_u16be(&w, key_len);
	for (uint16_t i = 0; i < key_len; i++)
		(void)sigil_wbuf_put_u8(&w, 0x42);
	if (kvno32)
		(void)sigil_wbuf_put_u32be(&w, 0);
	assert_int_equal(sigil_wbuf_status(&w), 0);
	return sigil_wbuf_steal(&w, len);
}

static int parse_body(uint8_t *body, size_t blen, sigil_err *err, kerberos_keytab **ret)
{
	size_t len;
	uint8_t *file = one_entry(body, blen, (int32_t)blen, &len);
	kerberos_keytab *kt = NULL;
	int r = kerberos_keytab_parse(file, len, &kt, err);

	free(file);
	free(body);
	if (ret)
		*ret = kt;
	else
		kerberos_keytab_free(kt);
	return r;
}

static void test_entry_fields_and_limits(void **state)
{
	kerberos_keytab *kt = NULL;
	sigil_err err = {0};
	uint8_t *b;
	size_t bl;

	/* A well-formed entry; a zero u32 kvno leaves kvno8 in force. */
	b = entry_body(2, 4, 3, 32, true, &bl);
	assert_int_equal(parse_body(b, bl, &err, &kt), 0);
	assert_int_equal(kt->n, 1);
	assert_int_equal(kt->entries[0].kvno, 7);
	assert_int_equal(kt->entries[0].timestamp, 12345);
	kerberos_keytab_free(kt);
	/* Old writers stop after the key. */
	b = entry_body(2, 4, 3, 32, false, &bl);
	assert_int_equal(parse_body(b, bl, &err, &kt), 0);
	assert_int_equal(kt->entries[0].kvno, 7);
	kerberos_keytab_free(kt);

	b = entry_body(0, 4, 3, 32, true, &bl);
	assert_int_equal(parse_body(b, bl, &err, NULL), SIGIL_E_CORRUPT);
	b = entry_body(KERBEROS_KEYTAB_MAX_COMPONENTS + 1, 4, 3, 32, true, &bl);
	assert_int_equal(parse_body(b, bl, &err, NULL), SIGIL_E_LIMIT);
	b = entry_body(KERBEROS_KEYTAB_MAX_COMPONENTS, 4, 3, 32, true, &bl);
	assert_int_equal(parse_body(b, bl, &err, NULL), 0);
	b = entry_body(2, 0, 3, 32, true, &bl);
	assert_int_equal(parse_body(b, bl, &err, NULL), SIGIL_E_CORRUPT);
	assert_non_null(strstr(err.msg, "empty realm"));
	b = entry_body(2, KERBEROS_KEYTAB_MAX_DATA_LEN + 1, 3, 32, true, &bl);
	assert_int_equal(parse_body(b, bl, &err, NULL), SIGIL_E_LIMIT);
	b = entry_body(2, 4, KERBEROS_KEYTAB_MAX_DATA_LEN + 1, 32, true, &bl);
	assert_int_equal(parse_body(b, bl, &err, NULL), SIGIL_E_LIMIT);
	b = entry_body(2, 4, 0, 32, true, &bl); /* empty components are legal */
	assert_int_equal(parse_body(b, bl, &err, NULL), 0);
	b = entry_body(2, 4, 3, 0, true, &bl);
	assert_int_equal(parse_body(b, bl, &err, NULL), SIGIL_E_CORRUPT);
	b = entry_body(2, 4, 3, KERBEROS_KEYTAB_MAX_KEY_LEN + 1, true, &bl);
	assert_int_equal(parse_body(b, bl, &err, NULL), SIGIL_E_LIMIT);
	b = entry_body(2, 4, 3, KERBEROS_KEYTAB_MAX_KEY_LEN, true, &bl);
	assert_int_equal(parse_body(b, bl, &err, NULL), 0);

	/* A NUL inside a component. */
	b = entry_body(2, 4, 3, 32, true, &bl);
	b[2 + 2 + 4 + 2 + 1] = '\0';
	assert_int_equal(parse_body(b, bl, &err, NULL), SIGIL_E_CORRUPT);
}

static void test_sizes_holes_and_garbage(void **state)
{
	kerberos_keytab *kt = NULL;
	sigil_err err = {0};
	uint8_t *b, *file;
	size_t bl, len;
	sigil_wbuf w;

	/* Size larger than what is left. */
	b = entry_body(2, 4, 3, 32, true, &bl);
	file = one_entry(b, bl, (int32_t)bl + 1, &len);
	assert_int_equal(kerberos_keytab_parse(file, len, &kt, &err), SIGIL_E_CORRUPT);
	free(file);
	file = one_entry(b, bl, INT32_MAX, &len);
	assert_int_equal(kerberos_keytab_parse(file, len, &kt, &err), SIGIL_E_CORRUPT);
	free(file);
	/* A hole that runs past the end, including the most negative size. */
	file = one_entry(b, bl, -(int32_t)bl - 1, &len);
	assert_int_equal(kerberos_keytab_parse(file, len, &kt, &err), SIGIL_E_CORRUPT);
	free(file);
	file = one_entry(b, bl, INT32_MIN, &len);
	assert_int_equal(kerberos_keytab_parse(file, len, &kt, &err), SIGIL_E_CORRUPT);
	free(file);
	/* An entry smaller than its own fields. */
	file = one_entry(b, bl, 10, &len);
	assert_int_equal(kerberos_keytab_parse(file, len, &kt, &err), SIGIL_E_CORRUPT);
	free(file);

	/* entry, hole (a deleted entry), entry, zero size (end), junk */
	sigil_wbuf_init(&w, 1 << 20, false);
	(void)sigil_wbuf_put_u16be(&w, 0x0502);
	(void)sigil_wbuf_put_u32be(&w, (uint32_t)bl);
	(void)sigil_wbuf_put(&w, b, bl);
	(void)sigil_wbuf_put_u32be(&w, (uint32_t) - (int32_t)bl);
	(void)sigil_wbuf_put(&w, b, bl);
	(void)sigil_wbuf_put_u32be(&w, (uint32_t)bl);
	(void)sigil_wbuf_put(&w, b, bl);
	(void)sigil_wbuf_put_u32be(&w, 0);
	(void)sigil_wbuf_put(&w, "junk", 4);
	file = sigil_wbuf_steal(&w, &len);
	assert_int_equal(kerberos_keytab_parse(file, len, &kt, &err), 0);
	assert_int_equal(kt->n, 2);
	kerberos_keytab_free(kt);
	/* Stray bytes that are not a size. */
	assert_int_equal(kerberos_keytab_parse(file, 2 + 4 + bl + 3, &kt, &err), SIGIL_E_CORRUPT);
	free(file);
	free(b);

	/* Versions and garbage. */
	static const uint8_t v501[] = {0x05, 0x01, 0, 0, 0, 0};
	static const uint8_t v999[] = {0x09, 0x09};
	static const uint8_t one[] = {0x05};
	static const uint8_t text[] = "HTTP/web@SIGIL.TEST aes256 0123456789abcdef";
	assert_int_equal(kerberos_keytab_parse(v501, sizeof(v501), &kt, &err), SIGIL_E_CORRUPT);
	assert_non_null(strstr(err.msg, "0x0501"));
	assert_int_equal(kerberos_keytab_parse(v999, sizeof(v999), &kt, &err), SIGIL_E_CORRUPT);
	assert_int_equal(kerberos_keytab_parse(one, sizeof(one), &kt, &err), SIGIL_E_CORRUPT);
	assert_int_equal(kerberos_keytab_parse(NULL, 0, &kt, &err), SIGIL_E_CORRUPT);
	assert_int_equal(kerberos_keytab_parse(text, sizeof(text), &kt, &err), SIGIL_E_CORRUPT);
	/* A file larger than the limit is refused before it is read. */
	assert_int_equal(kerberos_keytab_parse(mit_keytab, KERBEROS_KEYTAB_MAX_SIZE + 1, &kt, &err),
	                 SIGIL_E_LIMIT);
}

static void test_too_many_entries(void **state)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = kerberos_keytab_new();
	kerberos_keytab *parsed = NULL;
	kerberos_principal p = {"h", "a", "R"};
	uint8_t key[16] = {1};
	sigil_err err = {0};
	uint8_t *b, *file;
	size_t bl, len;
	sigil_wbuf w;

	for (int i = 0; i < KERBEROS_KEYTAB_MAX_ENTRIES; i++)
		assert_int_equal(
		    kerberos_keytab_add_key(kt, &p, 0, (uint32_t)i + 1, 17, key, 16, &err), 0);
	assert_int_equal(kerberos_keytab_add_key(kt, &p, 0, 1, 17, key, 16, &err), SIGIL_E_LIMIT);
	assert_int_equal(kt->n, KERBEROS_KEYTAB_MAX_ENTRIES);

	b = entry_body(1, 1, 1, 16, false, &bl);
	sigil_wbuf_init(&w, 1 << 22, false);
	(void)sigil_wbuf_put_u16be(&w, 0x0502);
	for (int i = 0; i <= KERBEROS_KEYTAB_MAX_ENTRIES; i++) {
		(void)sigil_wbuf_put_u32be(&w, (uint32_t)bl);
		(void)sigil_wbuf_put(&w, b, bl);
	}
	file = sigil_wbuf_steal(&w, &len);
	assert_int_equal(kerberos_keytab_parse(file, len, &parsed, &err), SIGIL_E_LIMIT);
	assert_int_equal(kerberos_keytab_parse(file, len - 4 - bl, &parsed, &err), 0);
	assert_int_equal(parsed->n, KERBEROS_KEYTAB_MAX_ENTRIES);
	kerberos_keytab_free(parsed);
	free(file);
	free(b);
}

static void test_add_refuses_bad_entries(void **state)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = kerberos_keytab_new();
	char *comps[KERBEROS_KEYTAB_MAX_COMPONENTS + 1];
	uint8_t key[16] = {0};
	sigil_err err = {0};
	kerberos_keytab_entry e = {
	    .realm = "R",
	    .components = comps,
	    .n_components = 1,
	    .enctype = 17,
	    .key = key,
	    .key_len = 16,
	};

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(comps); i++)
		comps[i] = "x";
	assert_int_equal(kerberos_keytab_add(kt, &e, &err), 0);
	e.key_len = 0;
	assert_int_equal(kerberos_keytab_add(kt, &e, &err), SIGIL_E_INVALID);
	e.key_len = KERBEROS_KEYTAB_MAX_KEY_LEN + 1;
	assert_int_equal(kerberos_keytab_add(kt, &e, &err), SIGIL_E_LIMIT);
	e.key_len = 16;
	e.enctype = 70000;
	assert_int_equal(kerberos_keytab_add(kt, &e, &err), SIGIL_E_INVALID);
	e.enctype = 17;
	e.n_components = KERBEROS_KEYTAB_MAX_COMPONENTS + 1;
	assert_int_equal(kerberos_keytab_add(kt, &e, &err), SIGIL_E_LIMIT);
	e.n_components = 0;
	assert_int_equal(kerberos_keytab_add(kt, &e, &err), SIGIL_E_INVALID);
	e.n_components = 1;
	e.realm = "";
	assert_int_equal(kerberos_keytab_add(kt, &e, &err), SIGIL_E_INVALID);
	assert_int_equal(kt->n, 1);
}

static void test_merge(void **state)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *a = kerberos_keytab_new();
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *b = kerberos_keytab_new();
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *m = NULL;
	kerberos_principal web = {"HTTP", "web", "R"}, kafka = {"kafka", "k", "R"};
	uint8_t k1[16], k2[16], k3[16];
	sigil_err err = {0};

	memset(k1, 1, 16);
	memset(k2, 2, 16);
	memset(k3, 3, 16);
	assert_int_equal(kerberos_keytab_add_key(a, &web, 1, 1, 17, k1, 16, &err), 0);
	assert_int_equal(kerberos_keytab_add_key(a, &kafka, 1, 1, 17, k1, 16, &err), 0);
	/* Same principal, kvno and enctype: b's key replaces a's in place. */
	assert_int_equal(kerberos_keytab_add_key(b, &web, 2, 1, 17, k2, 16, &err), 0);
	/* New kvno: appended. */
	assert_int_equal(kerberos_keytab_add_key(b, &web, 3, 2, 17, k3, 16, &err), 0);
	assert_int_equal(kerberos_keytab_merge(a, b, &m, &err), 0);
	assert_int_equal(m->n, 3);
	assert_string_equal(m->entries[0].components[0], "HTTP");
	assert_memory_equal(m->entries[0].key, k2, 16);
	assert_int_equal(m->entries[0].timestamp, 2);
	assert_string_equal(m->entries[1].components[0], "kafka");
	assert_int_equal(m->entries[2].kvno, 2);
	/* The inputs are untouched. */
	assert_int_equal(a->n, 2);
	assert_memory_equal(a->entries[0].key, k1, 16);
}

static void test_principal_text_is_escaped(void **state)
{
	char *comps[2] = {"a/b@c\\d", "x\ny\xff"};
	uint8_t key[1] = {0};
	kerberos_keytab_entry e = {
	    .realm = "R@S",
	    .components = comps,
	    .n_components = 2,
	    .key = key,
	    .key_len = 1,
	};
	char buf[64], small[6];

	assert_int_equal(kerberos_keytab_entry_principal(&e, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "a\\/b\\@c\\\\d/x\\x0ay\\xff@R\\@S");
	assert_int_equal(kerberos_keytab_entry_principal(&e, small, sizeof(small)), SIGIL_E_LIMIT);
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void test_enctype_names(void **state)
{
	assert_string_equal(kerberos_enctype_name(17), "aes128-cts-hmac-sha1-96");
	assert_string_equal(kerberos_enctype_name(20), "aes256-cts-hmac-sha384-192");
	assert_string_equal(kerberos_enctype_name(23), "arcfour-hmac");
	assert_null(kerberos_enctype_name(0));
	assert_null(kerberos_enctype_name(-1));
	assert_null(kerberos_enctype_name(999));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_mit_keytab),
	    cmocka_unit_test(test_roundtrip_is_byte_exact),
	    cmocka_unit_test(test_build_and_read_back),
	    cmocka_unit_test(test_truncated_at_every_length),
	    cmocka_unit_test(test_entry_fields_and_limits),
	    cmocka_unit_test(test_sizes_holes_and_garbage),
	    cmocka_unit_test(test_too_many_entries),
	    cmocka_unit_test(test_add_refuses_bad_entries),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_principal_text_is_escaped),
	    cmocka_unit_test(test_enctype_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
