#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/mem.h"

static char tmpdir[64];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sigil-test-fs-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	return sigil_fs_remove_tree(tmpdir, NULL);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_write_atomic_and_read(void **state)
{
	_cleanup_free_ char *path = sigil_path_join(tmpdir, "a.txt");
	uint8_t *data = NULL;
	size_t len;
	struct stat st;
	sigil_err err = {0};

	assert_int_equal(sigil_fs_write_atomic(path, "hello", 5, 0640, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(sigil_fs_read_file(path, 100, &data, &len, &err), 0);
	assert_int_equal(len, 5);
	assert_string_equal((char *)data, "hello");
	free(data);
	/* Overwrite replaces content and mode, and leaves no temp file. */
	assert_int_equal(sigil_fs_write_atomic(path, "bye", 3, 0600, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(count_entries(tmpdir), 1);
	/* Too large for the given limit. */
	assert_int_equal(sigil_fs_read_file(path, 2, &data, &len, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "too large"));
}

static void test_write_atomic_failure_leaves_nothing(void **state)
{
	_cleanup_free_ char *path = sigil_path_join(tmpdir, "missing-dir/a.txt");
	sigil_err err = {0};

	assert_true(sigil_fs_write_atomic(path, "x", 1, 0640, &err) < 0);
	assert_non_null(strstr(err.msg, "missing-dir"));
	assert_int_equal(count_entries(tmpdir), 0);
}

static void test_write_atomic_at_subdir(void **state)
{
	_cleanup_free_ char *sub = sigil_path_join(tmpdir, "x/y");
	int dfd;
	sigil_err err = {0};
	uint8_t *data;
	size_t len;

	assert_int_equal(sigil_fs_mkdir_p(sub, 0750, &err), 0);
	dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(sigil_fs_write_atomic_at(dfd, "x/y/f", "abc", 3, 0640, &err), 0);
	assert_int_equal(sigil_fs_read_file_at(dfd, "x/y/f", 10, &data, &len, &err), 0);
	assert_int_equal(len, 3);
	free(data);
	assert_int_equal(count_entries(sub), 1);
	close(dfd);
}

static void test_read_errors(void **state)
{
	uint8_t *data = (uint8_t *)"unchanged";
	size_t len = 7;
	sigil_err err = {0};

	assert_int_equal(sigil_fs_read_file("/nonexistent/file", 10, &data, &len, &err),
			 SIGIL_E_NOTFOUND);
	assert_string_equal((char *)data, "unchanged");
	assert_int_equal(sigil_fs_read_file(tmpdir, 10, &data, &len, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "not a regular file"));
}

static void test_remove_tree_does_not_follow_symlinks(void **state)
{
	char outside[64], link[400], victim[256], tree[300];
	sigil_err err = {0};
	struct stat st;

	snprintf(outside, sizeof(outside), "/tmp/sigil-test-outside-XXXXXX");
	assert_non_null(mkdtemp(outside));
	snprintf(victim, sizeof(victim), "%s/keep", outside);
	assert_int_equal(sigil_fs_write_atomic(victim, "k", 1, 0600, &err), 0);
	snprintf(tree, sizeof(tree), "%s/tree", tmpdir);
	assert_int_equal(sigil_fs_mkdir_p(tree, 0700, &err), 0);
	snprintf(link, sizeof(link), "%s/link", tree);
	assert_int_equal(symlink(outside, link), 0);
	assert_int_equal(sigil_fs_remove_tree(tree, &err), 0);
	assert_int_equal(stat(victim, &st), 0); /* still there */
	assert_true(stat(tree, &st) < 0);
	assert_int_equal(sigil_fs_remove_tree(tree, &err), 0); /* missing is fine */
	assert_int_equal(sigil_fs_remove_tree(outside, &err), 0);
}

static void test_rel_path(void **state)
{
	static const char *const good[] = {"tls.crt", "a/b/c.pem", "keystore.p12", ".hidden",
					   "a..b", "..a"};
	static const char *const bad[] = {"", "/etc/passwd", "../x", "a/../b", "a/..", ".",
					  "a//b", "a/", "a/./b", "a\\b", "a b", "a\nb", "\x80"};
	char longname[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(sigil_fs_rel_path_ok(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(sigil_fs_rel_path_ok(bad[i]));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(sigil_fs_rel_path_ok(longname));
	assert_false(sigil_fs_rel_path_ok(NULL));
}

static void test_path_join(void **state)
{
	char *p = sigil_path_join("/a/b//", "c");

	assert_string_equal(p, "/a/b/c");
	free(p);
	p = sigil_path_join("/", "c");
	assert_string_equal(p, "/c");
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_atomic_and_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_failure_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic_at_subdir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_tree_does_not_follow_symlinks, setup, teardown),
		cmocka_unit_test(test_rel_path),
		cmocka_unit_test(test_path_join),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
