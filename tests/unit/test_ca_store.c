/* The directory CA store: round trips, modes, strict record parsing,
 * crash leftovers, class name rules, unwritable directories, limits and
 * locking between processes and threads. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "ca/authority.h"
#include "ca/key.h"
#include "ca/store.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/mem.h"

#define CLASS "tls"
#define GEN1 "gen-0000000000000001.pem"
#define GEN2 "gen-0000000000000002.pem"

typedef struct fixture {
	char root[64];     /* mkdtemp dir, removed on teardown */
	char dir[128];     /* store dir (root/state/ca), not created yet */
	char mnt[128];     /* read-only mount point when one was made */
	bool mounted;
} fixture;

/* ---- helpers ---------------------------------------------------------- */

/* A fresh CA as a store record (cert PEM + PKCS#8 key PEM). */
static void make_record(uint64_t gen, ca_store_record *rec)
{
	ca_authority *ca = NULL;
	STACK_OF(X509) *one = sk_X509_new_null();
	ca_create_opts o = {.alg = SIGIL_KEY_ECDSA_P256, .common_name = "store test", .now = 0};
	sigil_err err = {0};

	assert_int_equal(ca_authority_create(&o, &ca, &err), 0);
	assert_non_null(one);
	assert_true(sk_X509_push(one, ca->cert) > 0);
	memset(rec, 0, sizeof(*rec));
	rec->generation = gen;
	assert_int_equal(ca_certs_to_pem(one, &rec->cert_pem, &rec->cert_len, &err), 0);
	assert_int_equal(ca_key_to_pkcs8_pem(ca->key, &rec->key_pem, &rec->key_len, &err), 0);
	sk_X509_free(one);
	ca_authority_free(ca);
}

static char *record_bytes(const ca_store_record *rec, size_t *len)
{
	char *p = malloc(rec->cert_len + rec->key_len + 1);

	assert_non_null(p);
	memcpy(p, rec->cert_pem, rec->cert_len);
	memcpy(p + rec->cert_len, rec->key_pem, rec->key_len);
	p[rec->cert_len + rec->key_len] = '\0';
	*len = rec->cert_len + rec->key_len;
	return p;
}

static char *path3(const char *a, const char *b, const char *c)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s/%s", a, b, c) > 0);
	return p;
}

static void write_raw(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static char *read_raw(const char *path, size_t *len)
{
	uint8_t *p = NULL;
	sigil_err err = {0};

	assert_int_equal(sigil_fs_read_file(path, SIGIL_MAX_FILE_SIZE, &p, len, &err), 0);
	return (char *)p;
}

static size_t count_entries(const char *dir)
{
	char cmd[512];
	FILE *f;
	size_t n = 0;
	char line[512];

	snprintf(cmd, sizeof(cmd), "find '%s' -mindepth 1 2>/dev/null", dir);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n++;
	pclose(f);
	return n;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void open_store(fixture *fx, ca_store **s)
{
	sigil_err err = {0};

	assert_int_equal(ca_store_dir_open(fx->dir, s, &err), 0);
}

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->root, sizeof(fx->root), "/tmp/sigil-test-store-XXXXXX");
	if (!mkdtemp(fx->root))
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "%s/state/ca", fx->root);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;
	sigil_err err = {0};

	if (fx->mounted)
		umount2(fx->mnt, MNT_DETACH);
	else if (fx->mnt[0])
		chmod(fx->mnt, 0700); /* undo a test's chmod 0500 */
	(void)sigil_fs_remove_tree(fx->root, &err);
	free(fx);
	return 0;
}

/* ---- round trip ------------------------------------------------------- */

static void test_round_trip(void **state)
{
	fixture *fx = *state;
	ca_store *s = NULL;
	ca_store_record r1, r2, r5, *got = NULL;
	size_t n = 99;
	sigil_err err = {0};

	make_record(1, &r1);
	make_record(2, &r2);
	make_record(5, &r5);
	open_store(fx, &s);

	/* An empty class loads as zero generations and creates nothing. */
	assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), 0);
	assert_int_equal(n, 0);
	ca_store_records_free(got, n);
	{
		char *cdir = NULL;
		assert_true(asprintf(&cdir, "%s/%s", fx->dir, CLASS) > 0);
		assert_false(exists(cdir));
		free(cdir);
	}

	/* Out of order on purpose: load sorts by generation. */
	assert_int_equal(ca_store_put(s, CLASS, &r5, &err), 0);
	assert_int_equal(ca_store_put(s, CLASS, &r1, &err), 0);
	assert_int_equal(ca_store_put(s, CLASS, &r2, &err), 0);
	assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(got[0].generation, 1);
	assert_int_equal(got[1].generation, 2);
	assert_int_equal(got[2].generation, 5);
	assert_int_equal(got[0].cert_len, r1.cert_len);
	assert_memory_equal(got[0].cert_pem, r1.cert_pem, r1.cert_len);
	assert_int_equal(got[0].key_len, r1.key_len);
	assert_memory_equal(got[0].key_pem, r1.key_pem, r1.key_len);
	assert_memory_equal(got[2].key_pem, r5.key_pem, r5.key_len);
	assert_int_equal(strlen(got[2].cert_pem), got[2].cert_len);
	ca_store_records_free(got, n);

	/* The file holds exactly cert PEM + key PEM. */
	{
		char *p = path3(fx->dir, CLASS, GEN1), *data;
		size_t len, elen;
		char *expect = record_bytes(&r1, &elen);
		data = read_raw(p, &len);
		assert_int_equal(len, elen);
		assert_memory_equal(data, expect, len);
		free(data);
		free(expect);
		free(p);
	}

	/* A generation is never overwritten. */
	assert_int_equal(ca_store_put(s, CLASS, &r2, &err), SIGIL_E_EXISTS);
	assert_non_null(strstr(err.msg, GEN2));

	/* Another class is independent. */
	assert_int_equal(ca_store_load(s, "other", &got, &n, &err), 0);
	assert_int_equal(n, 0);
	ca_store_records_free(got, n);

	/* remove: a present one goes, a missing one succeeds. */
	assert_int_equal(ca_store_remove(s, CLASS, 2, &err), 0);
	assert_int_equal(ca_store_remove(s, CLASS, 2, &err), 0);
	assert_int_equal(ca_store_remove(s, CLASS, 77, &err), 0);
	assert_int_equal(ca_store_remove(s, "nothing-here", 1, &err), 0);
	assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(got[0].generation, 1);
	assert_int_equal(got[1].generation, 5);
	ca_store_records_free(got, n);

	/* A second store object on the same directory sees the same. */
	{
		ca_store *s2 = NULL;
		open_store(fx, &s2);
		assert_int_equal(ca_store_load(s2, CLASS, &got, &n, &err), 0);
		assert_int_equal(n, 2);
		ca_store_records_free(got, n);
		ca_store_free(s2);
	}

	/* Large generation numbers use all 16 hex digits. */
	{
		ca_store_record big = r1;
		char *p = path3(fx->dir, CLASS, "gen-fedcba9876543210.pem");
		big.generation = 0xfedcba9876543210ULL;
		assert_int_equal(ca_store_put(s, CLASS, &big, &err), 0);
		assert_true(exists(p));
		free(p);
		assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), 0);
		assert_int_equal(n, 3);
		assert_true(got[2].generation == 0xfedcba9876543210ULL);
		ca_store_records_free(got, n);
	}

	ca_store_free(s);
	ca_store_free(NULL);
	ca_store_records_free(NULL, 0);
	ca_store_record_clear(&r1);
	ca_store_record_clear(&r2);
	ca_store_record_clear(&r5);
}

/* ---- permissions ------------------------------------------------------ */

static mode_t mode_of(const char *p)
{
	struct stat st;

	assert_int_equal(lstat(p, &st), 0);
	return st.st_mode & 07777;
}

static void test_permissions(void **state)
{
	fixture *fx = *state;
	ca_store *s = NULL;
	ca_store_record r1;
	sigil_err err = {0};
	char *state_dir = NULL, *cdir = NULL, *gen = path3(fx->dir, CLASS, GEN1),
	     *lock = path3(fx->dir, CLASS, ".lock");
	mode_t old = umask(0);

	make_record(1, &r1);
	/* Even with a permissive umask nothing is readable by others. */
	open_store(fx, &s);
	assert_true(asprintf(&state_dir, "%s/state", fx->root) > 0);
	assert_true(asprintf(&cdir, "%s/%s", fx->dir, CLASS) > 0);
	assert_int_equal(mode_of(state_dir), 0700);
	assert_int_equal(mode_of(fx->dir), 0700);
	assert_int_equal(ca_store_put(s, CLASS, &r1, &err), 0);
	assert_int_equal(mode_of(cdir), 0700);
	assert_int_equal(mode_of(gen), 0600);
	assert_int_equal(ca_store_lock(s, CLASS, &err), 0);
	assert_int_equal(mode_of(lock), 0600);
	ca_store_unlock(s, CLASS);
	/* A restrictive umask does not break anything either. */
	umask(0277);
	{
		ca_store_record r2 = r1;
		char *g2 = path3(fx->dir, "second", GEN2);
		char *c2 = NULL;
		r2.generation = 2;
		assert_int_equal(ca_store_put(s, "second", &r2, &err), 0);
		assert_true(asprintf(&c2, "%s/second", fx->dir) > 0);
		assert_int_equal(mode_of(c2), 0700);
		assert_int_equal(mode_of(g2), 0600);
		free(c2);
		free(g2);
	}
	umask(old);
	ca_store_free(s);
	ca_store_record_clear(&r1);
	free(state_dir);
	free(cdir);
	free(gen);
	free(lock);
}

/* ---- corrupt files ---------------------------------------------------- */

/* Writes `data` as generation 2 next to a valid generation 1 and checks
 * that load refuses the class naming the file, and leaves it untouched. */
static void expect_corrupt(fixture *fx, ca_store *s, const void *data, size_t len,
			   const char *why)
{
	char *p = path3(fx->dir, CLASS, GEN2);
	ca_store_record *got = NULL;
	size_t n = 0, after_len;
	sigil_err err = {0};
	char *after;
	bool locked_pass;

	write_raw(p, data, len);
	for (int pass = 0; pass < 2; pass++) {
		locked_pass = pass == 1;
		if (locked_pass)
			assert_int_equal(ca_store_lock(s, CLASS, &err), 0);
		memset(&err, 0, sizeof(err));
		got = (ca_store_record *)(uintptr_t)0x1;
		n = 12345;
		int r = ca_store_load(s, CLASS, &got, &n, &err);
		if (locked_pass)
			ca_store_unlock(s, CLASS);
		if (r != SIGIL_E_CORRUPT)
			fail_msg("%s: load returned %d (%s)", why, r, err.msg);
		assert_int_equal(err.code, SIGIL_E_CORRUPT);
		if (!strstr(err.msg, p))
			fail_msg("%s: error does not name %s: %s", why, p, err.msg);
		/* Out-params untouched on failure. */
		assert_true(got == (ca_store_record *)(uintptr_t)0x1);
		assert_int_equal(n, 12345);
	}
	after = read_raw(p, &after_len);
	assert_int_equal(after_len, len);
	if (len)
		assert_memory_equal(after, data, len);
	free(after);
	assert_int_equal(unlink(p), 0);
	free(p);
}

static char *replace_once(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	char *out;
	size_t lf = strlen(from), lt = strlen(to), ls = strlen(s);

	assert_non_null(at);
	out = malloc(ls - lf + lt + 1);
	assert_non_null(out);
	memcpy(out, s, (size_t)(at - s));
	memcpy(out + (at - s), to, lt);
	memcpy(out + (at - s) + lt, at + lf, ls - (size_t)(at - s) - lf + 1);
	return out;
}

static void test_corrupt_files(void **state)
{
	fixture *fx = *state;
	ca_store *s = NULL;
	ca_store_record r1, other;
	sigil_err err = {0};
	size_t len;
	char *good, *buf;

	make_record(1, &r1);
	make_record(2, &other);
	open_store(fx, &s);
	assert_int_equal(ca_store_put(s, CLASS, &r1, &err), 0);
	good = record_bytes(&r1, &len);

	expect_corrupt(fx, s, "", 0, "empty file");
	expect_corrupt(fx, s, "this is not a CA\n\x01\x02\xff", 19, "garbage");
	expect_corrupt(fx, s, good, len / 2, "truncated in the middle");
	expect_corrupt(fx, s, good, r1.cert_len + 40, "truncated in the key");
	expect_corrupt(fx, s, good, len - 1, "missing final newline");
	expect_corrupt(fx, s, r1.cert_pem, r1.cert_len, "cert without key");
	expect_corrupt(fx, s, r1.key_pem, r1.key_len, "key without cert");
	/* Key order reversed. */
	buf = malloc(len + 1);
	memcpy(buf, r1.key_pem, r1.key_len);
	memcpy(buf + r1.key_len, r1.cert_pem, r1.cert_len);
	expect_corrupt(fx, s, buf, len, "key before cert");
	free(buf);
	/* Someone else's key. */
	buf = malloc(r1.cert_len + other.key_len);
	memcpy(buf, r1.cert_pem, r1.cert_len);
	memcpy(buf + r1.cert_len, other.key_pem, other.key_len);
	expect_corrupt(fx, s, buf, r1.cert_len + other.key_len, "key not matching");
	free(buf);
	/* Two certificates. */
	buf = malloc(len + r1.cert_len);
	memcpy(buf, r1.cert_pem, r1.cert_len);
	memcpy(buf + r1.cert_len, good, len);
	expect_corrupt(fx, s, buf, len + r1.cert_len, "two certificates");
	free(buf);
	/* Trailing data. */
	buf = malloc(len + 6);
	memcpy(buf, good, len);
	memcpy(buf + len, "extra\n", 6);
	expect_corrupt(fx, s, buf, len + 6, "trailing data");
	free(buf);
	/* Flipped base64 inside the certificate: DER no longer parses or the
	 * signature/key match fails. */
	buf = strdup(good);
	buf[40] = buf[40] == 'A' ? 'B' : 'A';
	buf[41] = '!';
	expect_corrupt(fx, s, buf, len, "bad base64 char");
	free(buf);
	/* CRLF line endings are not what we write. */
	buf = replace_once(good, "-----\n", "-----\r\n");
	expect_corrupt(fx, s, buf, strlen(buf), "CRLF");
	free(buf);
	/* A different key label (traditional EC key, encrypted PKCS#8). */
	buf = replace_once(good, "BEGIN PRIVATE KEY", "BEGIN EC PRIVATE KEY");
	expect_corrupt(fx, s, buf, strlen(buf), "EC PRIVATE KEY label");
	free(buf);
	buf = replace_once(good, "-----END PRIVATE KEY-----", "-----END PRIVATE KEX-----");
	expect_corrupt(fx, s, buf, strlen(buf), "wrong END label");
	free(buf);
	/* Headers inside a block. */
	buf = replace_once(good, "-----BEGIN CERTIFICATE-----\n",
			   "-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n");
	expect_corrupt(fx, s, buf, strlen(buf), "PEM header");
	free(buf);
	/* A long line (two lines joined). */
	{
		const char *first = strchr(good, '\n') + 1;
		const char *nl = strchr(first, '\n');
		size_t off = (size_t)(nl - good);
		buf = strdup(good);
		memmove(buf + off, buf + off + 1, len - off);
		expect_corrupt(fx, s, buf, len - 1, "65+ column line");
		free(buf);
	}
	/* Oversized. */
	buf = malloc(CA_STORE_MAX_RECORD_SIZE + 10);
	memset(buf, 'A', CA_STORE_MAX_RECORD_SIZE + 10);
	memcpy(buf, good, len);
	expect_corrupt(fx, s, buf, CA_STORE_MAX_RECORD_SIZE + 10, "oversized");
	free(buf);

	/* Not a regular file: a directory and a symlink with a generation name. */
	{
		char *p = path3(fx->dir, CLASS, GEN2);
		ca_store_record *got = NULL;
		size_t n = 0;
		assert_int_equal(mkdir(p, 0700), 0);
		assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), SIGIL_E_CORRUPT);
		assert_non_null(strstr(err.msg, p));
		assert_int_equal(rmdir(p), 0);
		char *target = path3(fx->dir, CLASS, GEN1);
		assert_int_equal(symlink(target, p), 0);
		assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), SIGIL_E_CORRUPT);
		assert_non_null(strstr(err.msg, p));
		assert_int_equal(unlink(p), 0);
		free(target);
		free(p);
	}
	/* Unreadable file (permission): only meaningful when not root. */
	if (geteuid() != 0) {
		char *p = path3(fx->dir, CLASS, GEN2);
		ca_store_record *got = NULL;
		size_t n = 0;
		write_raw(p, good, len);
		assert_int_equal(chmod(p, 0), 0);
		assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), SIGIL_E_CORRUPT);
		assert_non_null(strstr(err.msg, p));
		assert_int_equal(unlink(p), 0);
		free(p);
	}

	/* With the bad file gone, the class loads again. */
	{
		ca_store_record *got = NULL;
		size_t n = 0;
		assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), 0);
		assert_int_equal(n, 1);
		ca_store_records_free(got, n);
	}
	free(good);
	ca_store_free(s);
	ca_store_record_clear(&r1);
	ca_store_record_clear(&other);
}

/* ---- record parser directly -------------------------------------------- */

static void test_record_parse(void **state)
{
	ca_store_record r1, got, bad;
	sigil_err err = {0};
	char *good, *out = NULL;
	size_t len, out_len = 0;
	(void)state;

	make_record(1, &r1);
	good = record_bytes(&r1, &len);
	assert_int_equal(ca_store_record_parse("x", good, len, &got, &err), 0);
	assert_int_equal(got.generation, 0);
	assert_int_equal(got.cert_len, r1.cert_len);
	assert_int_equal(got.key_len, r1.key_len);
	assert_memory_equal(got.key_pem, r1.key_pem, r1.key_len);
	ca_store_record_clear(&got);
	assert_null(got.key_pem);

	/* Every strict prefix is refused (truncation anywhere). */
	for (size_t i = 0; i < len; i++) {
		int r = ca_store_record_parse("prefix", good, i, &got, &err);
		if (r != SIGIL_E_CORRUPT)
			fail_msg("prefix of %zu bytes: %d", i, r);
		assert_non_null(strstr(err.msg, "prefix"));
	}
	/* Every byte value at a few positions: the DER structure of the key,
	 * the middle of the key's first line (its private scalar, behind
	 * which the public key would still match) and the certificate's
	 * signature (its last base64 line).  Any change must be refused. */
	{
		const char *last_cert_line = r1.cert_pem + r1.cert_len - 27 - 10;
		size_t positions[] = {
			r1.cert_len + 30,
			r1.cert_len + 28 + 60,
			(size_t)(last_cert_line - r1.cert_pem),
		};
		for (size_t k = 0; k < SIGIL_ARRAY_SIZE(positions); k++) {
			for (int c = 0; c < 256; c++) {
				char *b = strdup(good);
				size_t pos = positions[k];
				if (c == (unsigned char)b[pos]) {
					free(b);
					continue;
				}
				b[pos] = (char)c;
				int r = ca_store_record_parse("g", b, len, &got, &err);
				if (r != SIGIL_E_CORRUPT)
					fail_msg("byte %zu set to 0x%02x: %d", pos, c, r);
				free(b);
			}
		}
	}
	/* Embedded NUL. */
	{
		char *b = strdup(good);
		b[5] = '\0';
		assert_int_equal(ca_store_record_parse("nul", b, len, &got, &err), SIGIL_E_CORRUPT);
		free(b);
	}
	assert_int_equal(ca_store_record_parse("null", NULL, 0, &got, &err), SIGIL_E_CORRUPT);
	assert_int_equal(ca_store_record_parse("big", good, CA_STORE_MAX_RECORD_SIZE + 1, &got, &err),
			 SIGIL_E_CORRUPT);
	assert_non_null(strstr(err.msg, "limit"));

	/* format: round trip, and refusal of anything load would refuse. */
	assert_int_equal(ca_store_record_format(&r1, &out, &out_len, &err), 0);
	assert_int_equal(out_len, len);
	assert_memory_equal(out, good, len);
	sigil_freezero(out, out_len + 1);
	bad = r1;
	bad.key_len = 0;
	assert_int_equal(ca_store_record_format(&bad, &out, &out_len, &err), SIGIL_E_INVALID);
	bad = r1;
	bad.cert_len -= 2;
	assert_int_equal(ca_store_record_format(&bad, &out, &out_len, &err), SIGIL_E_INVALID);
	bad = r1;
	bad.key_pem = NULL;
	assert_int_equal(ca_store_record_format(&bad, &out, &out_len, &err), SIGIL_E_INVALID);

	free(good);
	ca_store_record_clear(&r1);
}

/* The fuzz corpus doubles as interop data: records assembled from
 * `openssl req -x509` output (ECDSA, Ed25519, RSA) must parse, every other
 * file must be refused. */
static void test_record_corpus(void **state)
{
	const char *src = getenv("SIGIL_SOURCE_DIR");
	char *dir = NULL;
	DIR *d;
	struct dirent *de;
	int valid = 0, invalid = 0;
	(void)state;

	if (!src)
		fail_msg("SIGIL_SOURCE_DIR is not set (ctest sets it)");
	assert_true(asprintf(&dir, "%s/tests/fuzz/corpus/store_record", src) > 0);
	d = opendir(dir);
	if (!d)
		fail_msg("cannot open %s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char *p = NULL, *data;
		size_t len;
		ca_store_record rec;
		sigil_err err = {0};
		int r;

		if (de->d_name[0] == '.')
			continue;
		assert_true(asprintf(&p, "%s/%s", dir, de->d_name) > 0);
		data = read_raw(p, &len);
		r = ca_store_record_parse(de->d_name, data, len, &rec, &err);
		if (!strncmp(de->d_name, "valid-", 6)) {
			if (r != 0)
				fail_msg("%s: %s", de->d_name, err.msg);
			ca_store_record_clear(&rec);
			valid++;
		} else {
			if (r != SIGIL_E_CORRUPT)
				fail_msg("%s: accepted or wrong code %d", de->d_name, r);
			assert_non_null(strstr(err.msg, de->d_name));
			invalid++;
		}
		free(data);
		free(p);
	}
	closedir(d);
	free(dir);
	assert_true(valid >= 3);
	assert_true(invalid >= 10);
}

/* ---- crash leftovers and unrelated names ------------------------------- */

static void test_temp_leftovers(void **state)
{
	fixture *fx = *state;
	ca_store *s = NULL;
	ca_store_record r1, *got = NULL;
	size_t n = 0;
	sigil_err err = {0};
	const char *ignored[] = {
		"README",
		"gen-1.pem",
		"gen-00000000000000AB.pem",     /* upper-case hex */
		"gen-0000000000000001.pem.bak", /* suffix */
		"gen-000000000000000g.pem",     /* not hex */
		"Gen-0000000000000003.pem",
		"gen-00000000000000003.pem", /* 17 digits */
	};
	char *tmp1 = path3(fx->dir, CLASS, ".tmp-" GEN2 "-deadbeef");
	char *tmp2 = path3(fx->dir, CLASS, ".tmp-x");

	make_record(1, &r1);
	open_store(fx, &s);
	assert_int_equal(ca_store_put(s, CLASS, &r1, &err), 0);
	/* A crash between create and rename leaves a partial temp file. */
	write_raw(tmp1, "-----BEGIN CERTIFICATE-----\nMIIB", 32);
	write_raw(tmp2, "", 0);
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(ignored); i++) {
		char *p = path3(fx->dir, CLASS, ignored[i]);
		write_raw(p, "garbage", 7);
		free(p);
	}
	/* Without the lock: ignored, not removed (it could be a write in
	 * progress by the lock holder). */
	assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].generation, 1);
	ca_store_records_free(got, n);
	assert_true(exists(tmp1));
	assert_true(exists(tmp2));
	/* With the lock: removed. */
	assert_int_equal(ca_store_lock(s, CLASS, &err), 0);
	assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), 0);
	ca_store_unlock(s, CLASS);
	assert_int_equal(n, 1);
	ca_store_records_free(got, n);
	assert_false(exists(tmp1));
	assert_false(exists(tmp2));
	/* Other names are none of our business and stay. */
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(ignored); i++) {
		char *p = path3(fx->dir, CLASS, ignored[i]);
		assert_true(exists(p));
		free(p);
	}
	free(tmp1);
	free(tmp2);
	ca_store_free(s);
	ca_store_record_clear(&r1);
}

/* ---- class names --------------------------------------------------------- */

static void test_class_names(void **state)
{
	fixture *fx = *state;
	ca_store *s = NULL;
	ca_store_record r1, *got = NULL;
	size_t n = 0;
	sigil_err err = {0};
	char long_ok[CA_STORE_MAX_CLASS_LEN + 1], too_long[CA_STORE_MAX_CLASS_LEN + 2];
	const char *good[] = {"tls", "a", "0", "my-class.v2", "a..b", long_ok};
	const char *bad[] = {"", "../x", "..", ".", "a/b", "/abs", "Tls", "TLS", ".hidden",
			     "-dash", "a b", "a\\b", "a\nb", "tls\xc3\xa9", "a_b", too_long};

	memset(long_ok, 'a', sizeof(long_ok) - 1);
	long_ok[sizeof(long_ok) - 1] = '\0';
	memset(too_long, 'a', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(good); i++)
		assert_int_equal(ca_store_check_class(good[i], &err), 0);
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(bad); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(ca_store_check_class(bad[i], &err), SIGIL_E_INVALID);
		assert_true(err.msg[0] != '\0');
	}
	assert_int_equal(ca_store_check_class(NULL, &err), SIGIL_E_INVALID);

	make_record(1, &r1);
	open_store(fx, &s);
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(bad); i++) {
		assert_int_equal(ca_store_put(s, bad[i], &r1, &err), SIGIL_E_INVALID);
		assert_int_equal(ca_store_load(s, bad[i], &got, &n, &err), SIGIL_E_INVALID);
		assert_int_equal(ca_store_lock(s, bad[i], &err), SIGIL_E_INVALID);
		assert_int_equal(ca_store_remove(s, bad[i], 1, &err), SIGIL_E_INVALID);
		ca_store_unlock(s, bad[i]); /* harmless */
	}
	/* Nothing escaped the store directory, nothing was created in it. */
	{
		char *esc = NULL;
		assert_true(asprintf(&esc, "%s/state/x", fx->root) > 0);
		assert_false(exists(esc));
		free(esc);
	}
	assert_int_equal(count_entries(fx->dir), 0);
	assert_int_equal(count_entries(fx->root), 2); /* state, state/ca */
	ca_store_free(s);
	ca_store_record_clear(&r1);
}

/* ---- unwritable state directory ---------------------------------------- */

static void test_unwritable_dir(void **state)
{
	fixture *fx = *state;
	ca_store *s = NULL;
	ca_store_record r1, *got = NULL;
	size_t n = 0;
	sigil_err err = {0};
	char *file = NULL, *under = NULL;

	make_record(1, &r1);

	/* 1. A store path below a regular file: mkdir fails whoever we are. */
	assert_true(asprintf(&file, "%s/plainfile", fx->root) > 0);
	assert_true(asprintf(&under, "%s/plainfile/ca", fx->root) > 0);
	write_raw(file, "x", 1);
	assert_int_not_equal(ca_store_dir_open(under, &s, &err), 0);
	assert_null(s);
	assert_non_null(strstr(err.msg, "plainfile"));
	assert_non_null(strstr(err.msg, "Not a directory"));
	assert_int_equal(count_entries(fx->root), 1);
	assert_int_equal(ca_store_dir_open("", &s, &err), SIGIL_E_INVALID);

	/* 2. An existing, read-only store directory: as root chmod does not
	 * stop writes, so a read-only tmpfs mount stands in for it. */
	snprintf(fx->mnt, sizeof(fx->mnt), "%s/ro", fx->root);
	assert_int_equal(mkdir(fx->mnt, 0700), 0);
	if (geteuid() == 0) {
		if (mount("tmpfs", fx->mnt, "tmpfs", MS_RDONLY, "size=1m,mode=0700") != 0) {
			print_message("cannot mount a read-only tmpfs as root (%s): "
				      "skipping the read-only directory half\n",
				      strerror(errno));
			skip();
		}
		fx->mounted = true;
	} else {
		assert_int_equal(chmod(fx->mnt, 0500), 0);
	}
	assert_int_equal(ca_store_dir_open(fx->mnt, &s, &err), 0);
	memset(&err, 0, sizeof(err));
	assert_true(ca_store_put(s, CLASS, &r1, &err) < 0);
	assert_true(err.code == SIGIL_E_PERM);
	assert_non_null(strstr(err.msg, fx->mnt));
	memset(&err, 0, sizeof(err));
	assert_true(ca_store_lock(s, CLASS, &err) < 0);
	assert_non_null(strstr(err.msg, fx->mnt));
	/* Reading an unwritable, empty store still works. */
	assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), 0);
	assert_int_equal(n, 0);
	ca_store_records_free(got, n);
	assert_int_equal(count_entries(fx->mnt), 0);
	ca_store_free(s);

	free(file);
	free(under);
	ca_store_record_clear(&r1);
}

/* A class directory that became read-only after records were written:
 * put fails and leaves no temp file behind. */
static void test_unwritable_class_dir(void **state)
{
	fixture *fx = *state;
	ca_store *s = NULL;
	ca_store_record r1, r2, *got = NULL;
	size_t n = 0;
	sigil_err err = {0};
	char *cdir = NULL;

	make_record(1, &r1);
	make_record(2, &r2);
	open_store(fx, &s);
	assert_int_equal(ca_store_put(s, CLASS, &r1, &err), 0);
	assert_true(asprintf(&cdir, "%s/%s", fx->dir, CLASS) > 0);
	if (geteuid() == 0) {
		/* Bind the class dir read-only over itself. */
		snprintf(fx->mnt, sizeof(fx->mnt), "%s", cdir);
		if (mount(cdir, cdir, NULL, MS_BIND, NULL) != 0 ||
		    mount(NULL, cdir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) {
			print_message("cannot bind-mount read-only (%s): skipping\n",
				      strerror(errno));
			skip();
		}
		fx->mounted = true;
	} else {
		snprintf(fx->mnt, sizeof(fx->mnt), "%s", cdir);
		assert_int_equal(chmod(cdir, 0500), 0);
	}
	assert_true(ca_store_put(s, CLASS, &r2, &err) < 0);
	assert_int_equal(err.code, SIGIL_E_PERM);
	assert_non_null(strstr(err.msg, cdir));
	assert_int_equal(count_entries(cdir), 1); /* gen 1 only: no temp file */
	assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), 0);
	assert_int_equal(n, 1);
	ca_store_records_free(got, n);
	free(cdir);
	ca_store_free(s);
	ca_store_record_clear(&r1);
	ca_store_record_clear(&r2);
}

/* ---- limits --------------------------------------------------------------- */

static void test_generation_limit(void **state)
{
	fixture *fx = *state;
	ca_store *s = NULL;
	ca_store_record r, *got = NULL;
	size_t n = 0;
	sigil_err err = {0};

	make_record(1, &r);
	open_store(fx, &s);
	for (uint64_t g = 1; g <= CA_STORE_MAX_GENERATIONS; g++) {
		r.generation = g;
		assert_int_equal(ca_store_put(s, CLASS, &r, &err), 0);
	}
	r.generation = CA_STORE_MAX_GENERATIONS + 1;
	assert_int_equal(ca_store_put(s, CLASS, &r, &err), SIGIL_E_LIMIT);
	assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), 0);
	assert_int_equal(n, CA_STORE_MAX_GENERATIONS);
	ca_store_records_free(got, n);
	/* One more file put there by hand: load refuses rather than truncates. */
	{
		char *src = path3(fx->dir, CLASS, GEN1);
		char *dst = path3(fx->dir, CLASS, "gen-00000000000000ff.pem");
		size_t len;
		char *data = read_raw(src, &len);
		write_raw(dst, data, len);
		assert_int_equal(ca_store_load(s, CLASS, &got, &n, &err), SIGIL_E_LIMIT);
		assert_non_null(strstr(err.msg, "64"));
		free(data);
		free(src);
		free(dst);
	}
	ca_store_free(s);
	ca_store_record_clear(&r);
}

/* ---- locking ------------------------------------------------------------- */

static int64_t now_ms(void)
{
	return sigil_mono_ms();
}

static void test_lock_processes(void **state)
{
	fixture *fx = *state;
	ca_store *s = NULL;
	sigil_err err = {0};
	int pipefd[2];
	pid_t pid;
	char c;
	int64_t t0, waited;
	char *lockp = path3(fx->dir, CLASS, ".lock");

	open_store(fx, &s);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		ca_store *cs = NULL;
		close(pipefd[0]);
		if (ca_store_dir_open(fx->dir, &cs, &err) < 0 || ca_store_lock(cs, CLASS, &err) < 0)
			_exit(1);
		if (write(pipefd[1], "L", 1) != 1)
			_exit(1);
		usleep(300 * 1000);
		ca_store_unlock(cs, CLASS);
		ca_store_free(cs);
		_exit(0);
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	close(pipefd[0]);
	/* The child holds it: a non-blocking flock on a fresh fd fails... */
	{
		int fd = open(lockp, O_RDWR | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
		assert_int_equal(errno, EWOULDBLOCK);
		close(fd);
	}
	/* ...and our lock blocks until the child lets go. */
	t0 = now_ms();
	assert_int_equal(ca_store_lock(s, CLASS, &err), 0);
	waited = now_ms() - t0;
	assert_true(waited >= 150);
	{
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	/* Now we hold it: the same probe fails; after unlock it succeeds. */
	{
		int fd = open(lockp, O_RDWR | O_CLOEXEC);
		assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
		ca_store_unlock(s, CLASS);
		assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
		close(fd);
	}
	/* A second lock by the same thread is an error, not a deadlock. */
	assert_int_equal(ca_store_lock(s, CLASS, &err), 0);
	assert_int_equal(ca_store_lock(s, CLASS, &err), SIGIL_E_INTERNAL);
	/* Different classes are independent. */
	assert_int_equal(ca_store_lock(s, "other", &err), 0);
	ca_store_unlock(s, "other");
	ca_store_unlock(s, CLASS);
	/* Unlock of something not held is harmless. */
	ca_store_unlock(s, CLASS);
	ca_store_unlock(s, "never-locked");
	free(lockp);
	ca_store_free(s);
}

typedef struct thread_arg {
	ca_store *s;
	int64_t acquired_ms;
	int rc;
} thread_arg;

static void *lock_thread(void *p)
{
	thread_arg *a = p;
	sigil_err err = {0};

	a->rc = ca_store_lock(a->s, CLASS, &err);
	a->acquired_ms = now_ms();
	if (a->rc == 0)
		ca_store_unlock(a->s, CLASS);
	return NULL;
}

static void *unlock_thread(void *p)
{
	ca_store_unlock(p, CLASS);
	return NULL;
}

static void test_lock_threads(void **state)
{
	fixture *fx = *state;
	ca_store *s = NULL;
	sigil_err err = {0};
	pthread_t th;
	thread_arg a = {0};
	int64_t released;
	char *lockp = path3(fx->dir, CLASS, ".lock");

	open_store(fx, &s);
	a.s = s;
	assert_int_equal(ca_store_lock(s, CLASS, &err), 0);
	/* A thread that does not hold the lock cannot release it. */
	assert_int_equal(pthread_create(&th, NULL, unlock_thread, s), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	{
		int fd = open(lockp, O_RDWR | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
		close(fd);
	}
	/* A second thread blocks until this one unlocks. */
	assert_int_equal(pthread_create(&th, NULL, lock_thread, &a), 0);
	usleep(200 * 1000);
	released = now_ms();
	ca_store_unlock(s, CLASS);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(a.rc, 0);
	assert_true(a.acquired_ms >= released);
	free(lockp);
	ca_store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_files, setup, teardown),
		cmocka_unit_test(test_record_parse),
		cmocka_unit_test(test_record_corpus),
		cmocka_unit_test_setup_teardown(test_temp_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_class_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_class_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generation_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
