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

#include "csi/volume.h"
#include "util/fs.h"
#include "util/mem.h"

static char base[64];
static char target[128];

static int setup(void **state)
{
	snprintf(base, sizeof(base), "/tmp/sigil-test-vol-XXXXXX");
	if (!mkdtemp(base))
		return -1;
	snprintf(target, sizeof(target), "%s/mount", base);
	return 0;
}

static int teardown(void **state)
{
	if (csi_volume_unpublish(target, NULL) < 0)
		return -1;
	return sigil_fs_remove_tree(base, NULL);
}

static void add(ks_fileset *fs, const char *name, const char *content, bool secret)
{
	sigil_err err = {0};
	assert_int_equal(ks_fileset_add(fs, name, (uint8_t *)strdup(content), strlen(content), secret, &err), 0);
}

static char *read_rel(const char *rel)
{
	_cleanup_free_ char *p = sigil_path_join(target, rel);
	uint8_t *d = NULL;
	size_t len;

	if (sigil_fs_read_file(p, 4096, &d, &len, NULL) < 0)
		return NULL;
	return (char *)d;
}

static int count_hidden_versions(void)
{
	DIR *d = opendir(target);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (!strncmp(de->d_name, "..2", 3))
			n++;
	closedir(d);
	return n;
}

static void test_publish_layout_and_modes(void **state)
{
	ks_fileset fs = {0};
	sigil_err err = {0};
	struct stat st;
	char *c;
	char link[256];
	_cleanup_free_ char *crt = sigil_path_join(target, "tls.crt");
	_cleanup_free_ char *data = sigil_path_join(target, "..data");

	add(&fs, "tls.crt", "CERT1", false);
	add(&fs, "tls.key", "KEY1", true);
	add(&fs, "sub/dir/ca.crt", "CA1", false);
	assert_int_equal(csi_volume_publish(target, &fs, NULL, &err), 0);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	c = read_rel("tls.crt");
	assert_string_equal(c, "CERT1");
	free(c);
	c = read_rel("sub/dir/ca.crt");
	assert_string_equal(c, "CA1");
	free(c);
	assert_int_equal(stat(crt, &st), 0); /* through the links */
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(lstat(crt, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	ssize_t n = readlink(crt, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, "..data/tls.crt");
	assert_int_equal(lstat(data, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(count_hidden_versions(), 1);
	ks_fileset_free(&fs);
}

static void test_update_swaps_and_collects(void **state)
{
	ks_fileset a = {0}, b = {0};
	sigil_err err = {0};
	char *c;
	struct stat st;
	_cleanup_free_ char *old = sigil_path_join(target, "old.txt");

	add(&a, "tls.crt", "CERT1", false);
	add(&a, "tls.key", "KEY1", true);
	add(&a, "old.txt", "gone soon", false);
	assert_int_equal(csi_volume_publish(target, &a, NULL, &err), 0);
	add(&b, "tls.crt", "CERT2", false);
	add(&b, "tls.key", "KEY2", true);
	assert_int_equal(csi_volume_update(target, &b, NULL, &err), 0);
	c = read_rel("tls.crt");
	assert_string_equal(c, "CERT2");
	free(c);
	c = read_rel("tls.key");
	assert_string_equal(c, "KEY2");
	free(c);
	assert_true(lstat(old, &st) < 0); /* link to a vanished name removed */
	assert_int_equal(count_hidden_versions(), 1); /* old version removed */
	ks_fileset_free(&a);
	ks_fileset_free(&b);
}

static void test_foreign_file_is_not_overwritten(void **state)
{
	ks_fileset fs = {0};
	sigil_err err = {0};
	_cleanup_free_ char *p = sigil_path_join(target, "tls.crt");

	assert_int_equal(mkdir(target, 0750), 0);
	assert_int_equal(sigil_fs_write_atomic(p, "mine", 4, 0600, &err), 0);
	add(&fs, "tls.crt", "CERT1", false);
	assert_int_equal(csi_volume_publish(target, &fs, NULL, &err), SIGIL_E_EXISTS);
	assert_non_null(strstr(err.msg, "tls.crt"));
	char *c = read_rel("tls.crt");
	assert_string_equal(c, "mine");
	free(c);
	ks_fileset_free(&fs);
}

static void test_failure_leaves_nothing(void **state)
{
	ks_fileset fs = {0};
	sigil_err err = {0};
	struct stat st;

	add(&fs, "tls.crt", "CERT1", false);
	/* Bypass ks_fileset_add's check to prove the writer checks too. */
	fs.files[0].name[0] = '/';
	assert_true(csi_volume_publish(target, &fs, NULL, &err) < 0);
	assert_true(lstat(target, &st) < 0);
	fs.files[0].name[0] = 't';
	ks_fileset_free(&fs);
	assert_int_equal(csi_volume_publish("relative/path", &fs, NULL, &err), SIGIL_E_INVALID);
}

static void test_unpublish_idempotent(void **state)
{
	ks_fileset fs = {0};
	sigil_err err = {0};
	struct stat st;

	add(&fs, "tls.crt", "CERT1", false);
	assert_int_equal(csi_volume_publish(target, &fs, NULL, &err), 0);
	assert_int_equal(csi_volume_unpublish(target, &err), 0);
	assert_true(lstat(target, &st) < 0);
	assert_int_equal(csi_volume_unpublish(target, &err), 0);
	ks_fileset_free(&fs);
}

static bool mounted_with(const char *path, const char *opt)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char line[1024];
	bool found = false;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, path) && strstr(line, "tmpfs") && strstr(line, opt))
			found = true;
	fclose(f);
	return found;
}

static void test_tmpfs_privileged(void **state)
{
	ks_fileset fs = {0};
	sigil_err err = {0};
	csi_volume_opts o = {.mount_tmpfs = true, .tmpfs_size = 256 * 1024, .has_gid = true, .gid = 4242};
	struct stat st;
	_cleanup_free_ char *key = sigil_path_join(target, "tls.key");

	if (geteuid() != 0)
		skip(); /* the privileged path needs root; CI runs as root */
	add(&fs, "tls.key", "KEY1", true);
	assert_int_equal(csi_volume_publish(target, &fs, &o, &err), 0);
	assert_true(csi_volume_is_mountpoint(target));
	assert_true(mounted_with(target, "nosuid"));
	assert_true(mounted_with(target, "nodev"));
	assert_true(mounted_with(target, "noexec"));
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_gid, 4242);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_gid, 4242);
	/* Publishing again over the mount does not stack a second tmpfs. */
	assert_int_equal(csi_volume_update(target, &fs, &o, &err), 0);
	assert_int_equal(csi_volume_unpublish(target, &err), 0);
	assert_false(mounted_with(target, "nosuid"));
	assert_true(lstat(target, &st) < 0);
	ks_fileset_free(&fs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_publish_layout_and_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_swaps_and_collects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_file_is_not_overwritten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpublish_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmpfs_privileged, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
