#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csi/state.h"
#include "util/fs.h"
#include "util/mem.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/sigil-test-state-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	return sigil_fs_remove_tree(dir, NULL);
}

static void make_record(csi_volume_record *r, const char *id, const char *target)
{
	static char *keys[] = {"secrets.sigil.dev/class", "secrets.sigil.dev/format.compatibility.tls-pkcs12.password"};
	static char *vals[] = {"tls", "hunter2"};
	static char *files[] = {"tls.crt", "tls.key", "ca.crt"};

	memset(r, 0, sizeof(*r));
	r->volume_id = (char *)id;
	r->target_path = (char *)target;
	r->fingerprint = "abc123";
	r->attr_keys = keys;
	r->attr_values = vals;
	r->n_attrs = 2;
	r->files = files;
	r->n_files = 3;
	r->not_after = 1800000000;
	r->published_at = 1700000000;
}

static void test_put_get_reload(void **state)
{
	csi_state *st = NULL;
	csi_volume_record r, got;
	sigil_err err = {0};
	struct stat sb;
	_cleanup_free_ char *vdir = sigil_path_join(dir, "volumes");

	assert_int_equal(csi_state_open(dir, &st, &err), 0);
	assert_int_equal(stat(vdir, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	make_record(&r, "vol-1", "/var/lib/kubelet/pods/x/volumes/a/mount");
	assert_int_equal(csi_state_put(st, &r, &err), 0);
	make_record(&r, "vol-2", "/var/lib/kubelet/pods/y/volumes/b/mount");
	r.not_after = 1900000000;
	assert_int_equal(csi_state_put(st, &r, &err), 0);
	/* Replacing keeps one record per (id, target). */
	assert_int_equal(csi_state_put(st, &r, &err), 0);
	assert_int_equal(csi_state_count(st), 2);
	csi_state_free(st);

	assert_int_equal(csi_state_open(dir, &st, &err), 0);
	assert_int_equal(csi_state_count(st), 2);
	assert_int_equal(csi_state_get(st, "vol-2", "/var/lib/kubelet/pods/y/volumes/b/mount", &got), 0);
	assert_int_equal(got.not_after, 1900000000);
	assert_int_equal(got.n_files, 3);
	assert_string_equal(got.attr_values[1], "hunter2");
	csi_record_free(&got);
	assert_int_equal(csi_state_get(st, "vol-2", "/other", &got), SIGIL_E_NOTFOUND);
	assert_int_equal(csi_state_find_volume(st, "vol-1", &got), 0);
	csi_record_free(&got);
	assert_int_equal(csi_state_remove(st, "vol-1", "/var/lib/kubelet/pods/x/volumes/a/mount", &err), 0);
	assert_int_equal(csi_state_remove(st, "vol-1", "/var/lib/kubelet/pods/x/volumes/a/mount", &err), 0);
	assert_int_equal(csi_state_count(st), 1);
	csi_state_free(st);
	assert_int_equal(csi_state_open(dir, &st, &err), 0);
	assert_int_equal(csi_state_count(st), 1);
	csi_state_free(st);
}

static void test_record_files_are_private(void **state)
{
	csi_state *st = NULL;
	csi_volume_record r;
	sigil_err err = {0};
	_cleanup_free_ char *vdir = sigil_path_join(dir, "volumes");
	DIR *d;
	struct dirent *de;
	int n = 0;

	assert_int_equal(csi_state_open(dir, &st, &err), 0);
	make_record(&r, "vol-1", "/t");
	assert_int_equal(csi_state_put(st, &r, &err), 0);
	d = opendir(vdir);
	while ((de = readdir(d)) != NULL) {
		struct stat sb;
		char p[512];
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", vdir, de->d_name);
		assert_int_equal(stat(p, &sb), 0);
		assert_int_equal(sb.st_mode & 07777, 0600);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 1);
	csi_state_free(st);
}

static void test_corrupt_record_refused(void **state)
{
	csi_state *st = NULL;
	sigil_err err = {0};
	_cleanup_free_ char *vdir = sigil_path_join(dir, "volumes");
	char p[512];

	assert_int_equal(sigil_fs_mkdir_p(vdir, 0700, &err), 0);
	snprintf(p, sizeof(p), "%s/%064d.json", vdir, 0);
	assert_int_equal(sigil_fs_write_atomic(p, "{\"version\":1,", 13, 0600, &err), 0);
	assert_int_equal(csi_state_open(dir, &st, &err), SIGIL_E_CORRUPT);
	assert_non_null(strstr(err.msg, "0000.json"));
	/* The file is left for the operator, not replaced. */
	struct stat sb;
	assert_int_equal(stat(p, &sb), 0);
}

static void expect_parse_error(const char *json)
{
	csi_volume_record r;
	sigil_err err = {0};

	if (csi_record_from_json(json, strlen(json), &r, &err) == 0) {
		csi_record_free(&r);
		fail_msg("accepted: %s", json);
	}
	assert_true(strlen(err.msg) > 0);
}

static void test_record_parse_bad(void **state)
{
	static char big[CSI_STATE_MAX_RECORD + 10];

	expect_parse_error("");
	expect_parse_error("[]");
	expect_parse_error("{\"version\":2}");
	expect_parse_error("{\"version\":1}");
	expect_parse_error("{\"version\":1,\"volumeId\":\"v\",\"targetPath\":\"/t\"}");
	expect_parse_error("{\"version\":1,\"volumeId\":\"v\",\"targetPath\":\"t\",\"attributes\":{},\"files\":[]}");
	expect_parse_error("{\"version\":1,\"volumeId\":\"v\",\"targetPath\":\"/t\",\"attributes\":{\"a\":1},\"files\":[]}");
	expect_parse_error("{\"version\":1,\"volumeId\":\"v\",\"targetPath\":\"/t\",\"attributes\":{},\"files\":[\"../x\"]}");
	expect_parse_error("{\"version\":1,\"volumeId\":\"v\",\"volumeId\":\"w\",\"targetPath\":\"/t\",\"attributes\":{},\"files\":[]}");
	expect_parse_error("{\"version\":1,\"volumeId\":\"v\\u0000x\",\"targetPath\":\"/t\",\"attributes\":{},\"files\":[]}");
	memset(big, ' ', sizeof(big) - 1);
	expect_parse_error(big);
}

static void test_record_json_round_trip(void **state)
{
	csi_volume_record r, back;
	char *json;
	sigil_err err = {0};

	make_record(&r, "vol-x", "/target");
	r.readonly = true;
	assert_int_equal(csi_record_to_json(&r, &json, &err), 0);
	assert_int_equal(csi_record_from_json(json, strlen(json), &back, &err), 0);
	assert_string_equal(back.volume_id, "vol-x");
	assert_true(back.readonly);
	assert_string_equal(back.fingerprint, "abc123");
	assert_int_equal(back.published_at, 1700000000);
	csi_record_free(&back);
	sigil_secret_free(json);
}

/* The key index (expiry watcher, issue 7): many volumes, removals that
 * move entries around, and lookups that must still find every one. */
#define N_MANY 3000
static void test_many_volumes_index(void **state)
{
	csi_state *st = NULL;
	csi_volume_record r, got;
	sigil_err err = {0};
	char id[32], target[64];

	assert_int_equal(csi_state_open(dir, &st, &err), 0);
	for (int i = 0; i < N_MANY; i++) {
		snprintf(id, sizeof(id), "vol-%d", i);
		snprintf(target, sizeof(target), "/pods/%d", i);
		make_record(&r, id, target);
		r.not_after = 1800000000 + i;
		assert_int_equal(csi_state_put(st, &r, &err), 0);
	}
	assert_int_equal(csi_state_count(st), N_MANY);
	/* Every third goes: each removal moves the last entry into the hole. */
	for (int i = 0; i < N_MANY; i += 3) {
		snprintf(id, sizeof(id), "vol-%d", i);
		snprintf(target, sizeof(target), "/pods/%d", i);
		assert_int_equal(csi_state_remove(st, id, target, &err), 0);
	}
	assert_int_equal(csi_state_count(st), N_MANY - (N_MANY + 2) / 3);
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < N_MANY; i++) {
			snprintf(id, sizeof(id), "vol-%d", i);
			snprintf(target, sizeof(target), "/pods/%d", i);
			int rc = csi_state_get(st, id, target, &got);
			if (i % 3 == 0) {
				assert_int_equal(rc, SIGIL_E_NOTFOUND);
				continue;
			}
			assert_int_equal(rc, 0);
			assert_string_equal(got.volume_id, id);
			assert_int_equal(got.not_after, 1800000000 + i);
			csi_record_free(&got);
		}
		/* ... and the same after a reload from disk. */
		csi_state_free(st);
		st = NULL;
		assert_int_equal(csi_state_open(dir, &st, &err), 0);
	}
	/* Replacing keeps one entry per key. */
	make_record(&r, "vol-1", "/pods/1");
	r.not_after = 42;
	assert_int_equal(csi_state_put(st, &r, &err), 0);
	assert_int_equal(csi_state_count(st), N_MANY - (N_MANY + 2) / 3);
	assert_int_equal(csi_state_get(st, "vol-1", "/pods/1", &got), 0);
	assert_int_equal(got.not_after, 42);
	csi_record_free(&got);
	csi_state_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_files_are_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_record_refused, setup, teardown),
		cmocka_unit_test(test_record_parse_bad),
		cmocka_unit_test(test_record_json_round_trip),
		cmocka_unit_test_setup_teardown(test_many_volumes_index, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
