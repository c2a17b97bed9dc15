/* keystore/inspect.c on Kerberos keytabs: every key is listed with its
 * principal, kvno and enctype (never the key); truncated, garbage and
 * oversized keytabs are reported on the file, not as a failure. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kerberos/keytab.h"
#include "keystore/inspect.h"
#include "util/fs.h"
#include "util/mem.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/sigil-test-inspect-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	return sigil_fs_remove_tree(dir, NULL);
}

static void write_file(const char *name, const uint8_t *data, size_t len)
{
	_cleanup_free_ char *p = sigil_path_join(dir, name);
	sigil_err err = {0};

	assert_non_null(p);
	assert_int_equal(sigil_fs_write_atomic(p, data, len, 0640, &err), 0);
}

static void add_key(kerberos_keytab *kt, const char *service, const char *host, uint32_t kvno,
                    int32_t enctype)
{
	kerberos_principal p = {0};
	uint8_t key[32];
	sigil_err err = {0};

	snprintf(p.service, sizeof(p.service), "%s", service);
	snprintf(p.host, sizeof(p.host), "%s", host);
	snprintf(p.realm, sizeof(p.realm), "SIGIL.TEST");
	memset(key, 0xa5, sizeof(key));
	assert_int_equal(kerberos_keytab_add_key(kt, &p, 1700000000, kvno, enctype, key,
	                                         enctype == 17 ? 16 : 32, &err),
	                 0);
}

/* The keytab's file image; free with sigil_freezero. */
static uint8_t *image(kerberos_keytab *kt, size_t *len)
{
	uint8_t *img = NULL;
	sigil_err err = {0};

	assert_int_equal(kerberos_keytab_serialize(kt, &img, len, &err), 0);
	return img;
}

static const ks_file_info *inspect_one(ks_inspection *in, const char *name)
{
	sigil_err err = {0};

	assert_int_equal(ks_inspect_dir(dir, NULL, in, &err), 0);
	for (size_t i = 0; i < in->n_files; i++)
		if (!strcmp(in->files[i].name, name))
			return &in->files[i];
	fail_msg("%s not inspected", name);
	return NULL;
}

static void test_keytab_entries(void **state)
{
	kerberos_keytab *kt = kerberos_keytab_new();
	ks_inspection in = {0};
	size_t len;
	uint8_t *img;

	assert_non_null(kt);
	add_key(kt, "HTTP", "web.default.svc.cluster.local", 1, 18);
	add_key(kt, "HTTP", "web.default.svc.cluster.local", 1, 17);
	add_key(kt, "kafka", "node-a", 3, 18);
	add_key(kt, "kafka", "node-a", 300, 99); /* kvno beyond 8 bits; unknown enctype */
	img = image(kt, &len);
	kerberos_keytab_free(kt);
	write_file("keytab", img, len);

	const ks_file_info *f = inspect_one(&in, "keytab");
	assert_string_equal(f->format, "keytab");
	assert_null(f->error);
	assert_int_equal(f->mode, 0640);
	assert_int_equal(f->size, (off_t)len);
	assert_int_equal(f->n_entries, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(f->entries[i].kind, KS_ENTRY_KEYTAB);
		assert_false(f->entries[i].has_cert);
		assert_int_equal(f->entries[i].timestamp, 1700000000);
	}
	assert_string_equal(f->entries[0].principal,
	                    "HTTP/web.default.svc.cluster.local@SIGIL.TEST");
	assert_int_equal(f->entries[0].kvno, 1);
	assert_int_equal(f->entries[0].enctype, 18);
	assert_string_equal(f->entries[0].enctype_name, "aes256-cts-hmac-sha1-96");
	assert_string_equal(f->entries[1].enctype_name, "aes128-cts-hmac-sha1-96");
	assert_string_equal(f->entries[2].principal, "kafka/node-a@SIGIL.TEST");
	assert_int_equal(f->entries[2].kvno, 3);
	assert_int_equal(f->entries[3].kvno, 300);
	assert_int_equal(f->entries[3].enctype, 99);
	assert_string_equal(f->entries[3].enctype_name, "");
	/* No key byte (0xa5) anywhere in what inspect reports. */
	assert_null(memchr(&f->entries[0], 0xa5, sizeof(f->entries[0])));
	ks_inspection_free(&in);
	sigil_freezero(img, len);
}

static void test_hostile_principal_is_escaped(void **state)
{
	kerberos_keytab *kt = kerberos_keytab_new();
	char *comps[] = {"HTTP", "we/b\x1b[31m"};
	uint8_t key[16] = {0};
	kerberos_keytab_entry e = {
	    .realm = "SIGIL.TEST",
	    .components = comps,
	    .n_components = 2,
	    .name_type = KERBEROS_NT_PRINCIPAL,
	    .kvno = 2,
	    .enctype = 17,
	    .key = key,
	    .key_len = sizeof(key),
	};
	ks_inspection in = {0};
	sigil_err err = {0};
	size_t len;
	uint8_t *img;

	assert_non_null(kt);
	assert_int_equal(kerberos_keytab_add(kt, &e, &err), 0);
	img = image(kt, &len);
	kerberos_keytab_free(kt);
	write_file("odd.keytab", img, len);
	sigil_freezero(img, len);

	const ks_file_info *f = inspect_one(&in, "odd.keytab");
	assert_int_equal(f->n_entries, 1);
	assert_string_equal(f->entries[0].principal, "HTTP/we\\/b\\x1b[31m@SIGIL.TEST");
	ks_inspection_free(&in);
}

static void test_truncated_and_garbage(void **state)
{
	kerberos_keytab *kt = kerberos_keytab_new();
	static const uint8_t garbage[] = {0x05, 0x02, 0x00, 0x00, 0x00,
	                                  0x40, 0xff, 0xff, 0x13, 0x37};
	static const uint8_t huge_count[] = {0x05, 0x02, 0x00, 0x00, 0x00, 0x0e, 0xff,
	                                     0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
	ks_inspection in = {0};
	size_t len;
	uint8_t *img;

	assert_non_null(kt);
	add_key(kt, "HTTP", "web", 1, 18);
	img = image(kt, &len);
	kerberos_keytab_free(kt);
	/* Every cut of a valid keytab: reported on the file, never a crash or
	 * a failure of the whole inspection. */
	for (size_t cut = 3; cut < len; cut++) {
		ks_inspection ci = {0};
		write_file("cut.keytab", img, cut);
		const ks_file_info *f = inspect_one(&ci, "cut.keytab");
		assert_string_equal(f->format, "keytab");
		assert_non_null(f->error);
		assert_int_equal(f->n_entries, 0);
		ks_inspection_free(&ci);
	}
	sigil_freezero(img, len);

	write_file("garbage.keytab", garbage, sizeof(garbage));
	write_file("count.keytab", huge_count, sizeof(huge_count));
	const ks_file_info *g = inspect_one(&in, "garbage.keytab");
	assert_string_equal(g->format, "keytab");
	assert_non_null(g->error);
	assert_int_equal(g->n_entries, 0);
	const ks_file_info *c = NULL;
	for (size_t i = 0; i < in.n_files; i++)
		if (!strcmp(in.files[i].name, "count.keytab"))
			c = &in.files[i];
	assert_non_null(c);
	assert_non_null(c->error);
	assert_int_equal(c->n_entries, 0);
	ks_inspection_free(&in);
}

static void test_more_entries_than_listed(void **state)
{
	kerberos_keytab *kt = kerberos_keytab_new();
	const size_t n = KS_INSPECT_MAX_ENTRIES + 72;
	ks_inspection in = {0};
	char host[32], expect[64];
	size_t len;
	uint8_t *img;

	assert_non_null(kt);
	for (size_t i = 0; i < n; i++) {
		snprintf(host, sizeof(host), "h%zu", i);
		add_key(kt, "HTTP", host, 1, 18);
	}
	img = image(kt, &len);
	kerberos_keytab_free(kt);
	write_file("big.keytab", img, len);
	sigil_freezero(img, len);

	const ks_file_info *f = inspect_one(&in, "big.keytab");
	assert_int_equal(f->n_entries, KS_INSPECT_MAX_ENTRIES);
	assert_non_null(f->error);
	snprintf(expect, sizeof(expect), "%zu more keytab entries", n - KS_INSPECT_MAX_ENTRIES);
	assert_non_null(strstr(f->error, expect));
	assert_string_equal(f->entries[KS_INSPECT_MAX_ENTRIES - 1].principal,
	                    "HTTP/h127@SIGIL.TEST");
	ks_inspection_free(&in);
}

static void test_long_principal_is_cut(void **state)
{
	kerberos_keytab *kt = kerberos_keytab_new();
	char comp[KERBEROS_KEYTAB_MAX_DATA_LEN + 1];
	char *comps[] = {comp};
	uint8_t key[16] = {0};
	kerberos_keytab_entry e = {
	    .realm = "SIGIL.TEST",
	    .components = comps,
	    .n_components = 1,
	    .name_type = KERBEROS_NT_PRINCIPAL,
	    .kvno = 1,
	    .enctype = 17,
	    .key = key,
	    .key_len = sizeof(key),
	};
	ks_inspection in = {0};
	sigil_err err = {0};
	size_t len;
	uint8_t *img;

	/* Control bytes become \xNN: 4 bytes each, far past the buffer. */
	memset(comp, 0x01, sizeof(comp) - 1);
	comp[sizeof(comp) - 1] = '\0';
	assert_non_null(kt);
	assert_int_equal(kerberos_keytab_add(kt, &e, &err), 0);
	img = image(kt, &len);
	kerberos_keytab_free(kt);
	write_file("long.keytab", img, len);
	sigil_freezero(img, len);

	const ks_file_info *f = inspect_one(&in, "long.keytab");
	assert_int_equal(f->n_entries, 1);
	size_t pl = strlen(f->entries[0].principal);
	assert_int_equal(pl, KS_INSPECT_MAX_PRINCIPAL - 1);
	assert_string_equal(f->entries[0].principal + pl - 3, "...");
	assert_memory_equal(f->entries[0].principal, "\\x01\\x01", 8);
	ks_inspection_free(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_keytab_entries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_principal_is_escaped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncated_and_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_more_entries_than_listed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_principal_is_cut, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
