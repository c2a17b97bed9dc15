/* kerberos_provision without a KDC: the wire protocol, the checks made
 * before anything is sent, and the helper watchdog (with stand-in helper
 * scripts).  tests/integration/test_kerberos_kdc.sh runs it against a real
 * krb5kdc and kadmind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "kerberos/kadm.h"
#include "kerberos/keytab.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/mem.h"

static char tmpdir[64];
static char marker[128];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sigil-kadm-test-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(marker, sizeof(marker), "%s/helper-ran", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	sigil_err err;

	(void)sigil_fs_remove_tree(tmpdir, &err);
	return 0;
}

/* Writes an executable stand-in helper script and returns its path. */
static const char *script(const char *name, const char *body)
{
	static char path[256];
	char text[1024];
	sigil_err err = {0};
	int n;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	n = snprintf(text, sizeof(text), "#!/bin/sh\ntouch '%s'\n%s\n", marker, body);
	assert_int_equal(sigil_fs_write_atomic(path, text, (size_t)n, 0755, &err), 0);
	return path;
}

static const char *const web[] = {"HTTP/web-0.default.svc.cluster.local@SIGIL.TEST"};

static kerberos_admin_config base_config(const char *helper)
{
	kerberos_admin_config c = {
	    .realm = "SIGIL.TEST",
	    .kdc = "127.0.0.1:1",
	    .admin_server = "127.0.0.1:1",
	    .admin_principal = "sigil/admin",
	    .admin_keytab = "/nonexistent/admin.keytab",
	    .helper_path = helper,
	    .timeout_ms = 5000,
	};
	return c;
}

/* ---- protocol ------------------------------------------------------------------------ */

static void test_request_roundtrip_and_truncation(void **state)
{
	char *princs[] = {"HTTP/a@R", "kafka/b@R"};
	kerberos_kadm_request rq = {
	    .timeout_ms = 1234,
	    .create = true,
	    .realm = "R",
	    .kdc = "kdc:88",
	    .admin_server = "kdc:749",
	    .admin_principal = "sigil/admin",
	    .admin_keytab = "/etc/admin.keytab",
	    .principals = princs,
	    .n_principals = 2,
	};
	kerberos_kadm_request *back = NULL;
	sigil_err err = {0};
	uint8_t *frame = NULL;
	size_t len;

	assert_int_equal(kerberos_kadm_request_encode(&rq, &frame, &len, &err), 0);
	assert_int_equal(((size_t)frame[0] << 24 | frame[1] << 16 | frame[2] << 8 | frame[3]),
	                 len - 4);
	assert_int_equal(kerberos_kadm_request_decode(frame + 4, len - 4, &back, &err), 0);
	assert_int_equal(back->timeout_ms, 1234);
	assert_true(back->create);
	assert_string_equal(back->realm, "R");
	assert_string_equal(back->kdc, "kdc:88");
	assert_string_equal(back->admin_server, "kdc:749");
	assert_string_equal(back->admin_principal, "sigil/admin");
	assert_string_equal(back->admin_keytab, "/etc/admin.keytab");
	assert_int_equal(back->n_principals, 2);
	assert_string_equal(back->principals[1], "kafka/b@R");
	kerberos_kadm_request_free(back);

	/* Every shorter body fails, and so does a trailing byte. */
	for (size_t n = 0; n < len - 4; n++) {
		back = (kerberos_kadm_request *)0x1;
		assert_int_not_equal(kerberos_kadm_request_decode(frame + 4, n, &back, &err), 0);
		assert_ptr_equal(back, (kerberos_kadm_request *)0x1);
	}
	uint8_t *longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, frame, len);
	longer[len] = 0;
	assert_int_equal(kerberos_kadm_request_decode(longer + 4, len - 3, &back, &err),
	                 SIGIL_E_CORRUPT);
	/* Bad magic, bad create flag, a NUL inside a string. */
	longer[4] = 'X';
	assert_int_equal(kerberos_kadm_request_decode(longer + 4, len - 4, &back, &err),
	                 SIGIL_E_CORRUPT);
	memcpy(longer, frame, len);
	longer[4 + 4 + 4] = 2;
	assert_int_equal(kerberos_kadm_request_decode(longer + 4, len - 4, &back, &err),
	                 SIGIL_E_CORRUPT);
	memcpy(longer, frame, len);
	longer[4 + 4 + 4 + 1 + 2] = '\0'; /* first byte of the realm */
	assert_int_equal(kerberos_kadm_request_decode(longer + 4, len - 4, &back, &err),
	                 SIGIL_E_CORRUPT);
	free(longer);
	free(frame);
	assert_int_equal(
	    kerberos_kadm_request_decode(NULL, KERBEROS_KADM_MAX_FRAME + 1, &back, &err),
	    SIGIL_E_LIMIT);

	rq.n_principals = KERBEROS_MAX_PRINCIPALS + 1;
	assert_int_equal(kerberos_kadm_request_encode(&rq, &frame, &len, &err), SIGIL_E_LIMIT);
}

static void test_request_limits(void **state)
{
	char *big = malloc(KERBEROS_KADM_MAX_STR + 2);
	char *princs[1] = {"HTTP/a@R"};
	kerberos_kadm_request rq = {
	    .realm = "R",
	    .kdc = "k",
	    .admin_server = "k",
	    .admin_principal = "a",
	    .admin_keytab = big,
	    .principals = princs,
	    .n_principals = 1,
	};
	kerberos_kadm_request *back = NULL;
	sigil_err err = {0};
	uint8_t *frame = NULL;
	size_t len;

	assert_non_null(big);
	memset(big, 'a', KERBEROS_KADM_MAX_STR + 1);
	big[KERBEROS_KADM_MAX_STR + 1] = '\0';
	assert_int_equal(kerberos_kadm_request_encode(&rq, &frame, &len, &err), SIGIL_E_LIMIT);
	big[KERBEROS_KADM_MAX_STR] = '\0';
	assert_int_equal(kerberos_kadm_request_encode(&rq, &frame, &len, &err), 0);
	/* A decoder sees a claimed count above the limit before any string. */
	size_t count_at = len - (2 + strlen(princs[0])) - 2;
	frame[count_at] = 0xff;
	frame[count_at + 1] = 0xff;
	assert_int_equal(kerberos_kadm_request_decode(frame + 4, len - 4, &back, &err),
	                 SIGIL_E_LIMIT);
	free(frame);
	free(big);
}

static void test_response_roundtrip(void **state)
{
	static const uint8_t kt[] = {0x05, 0x02};
	sigil_err err = {0};
	uint8_t *frame = NULL;
	const uint8_t *ktp;
	size_t len, ktlen;
	char msg[64];
	int code;

	assert_int_equal(kerberos_kadm_response_encode(0, "", kt, sizeof(kt), &frame, &len, &err),
	                 0);
	assert_int_equal(kerberos_kadm_response_decode(frame + 4, len - 4, &code, msg, sizeof(msg),
	                                               &ktp, &ktlen, &err),
	                 0);
	assert_int_equal(code, 0);
	assert_int_equal(ktlen, 2);
	assert_memory_equal(ktp, kt, 2);
	for (size_t n = 0; n < len - 4; n++)
		assert_int_not_equal(kerberos_kadm_response_decode(frame + 4, n, &code, msg,
		                                                   sizeof(msg), &ktp, &ktlen, &err),
		                     0);
	sigil_freezero(frame, len);

	assert_int_equal(kerberos_kadm_response_encode(SIGIL_E_PRECOND, "needs 'e'", NULL, 0,
	                                               &frame, &len, &err),
	                 0);
	assert_int_equal(
	    kerberos_kadm_response_decode(frame + 4, len - 4, &code, msg, 5, &ktp, &ktlen, &err),
	    0);
	assert_int_equal(code, SIGIL_E_PRECOND);
	assert_string_equal(msg, "need"); /* cut to the buffer */
	/* A code that is not a sigil code is refused on both ends. */
	frame[8] = 0x7f;
	assert_int_equal(kerberos_kadm_response_decode(frame + 4, len - 4, &code, msg, sizeof(msg),
	                                               &ktp, &ktlen, &err),
	                 SIGIL_E_CORRUPT);
	sigil_freezero(frame, len);
	assert_int_equal(kerberos_kadm_response_encode(12345, "x", NULL, 0, &frame, &len, &err),
	                 SIGIL_E_INTERNAL);
	/* An error with a keytab is not a valid answer. */
	assert_int_equal(
	    kerberos_kadm_response_encode(SIGIL_E_UNAVAIL, "x", kt, 2, &frame, &len, &err),
	    SIGIL_E_LIMIT);
}

/* ---- checks before the helper starts --------------------------------------------------- */

static void test_invalid_input_never_starts_the_helper(void **state)
{
	const char *helper = script("h-never", "exit 0");
	const char *bad_name[] = {"HTTP/Web-0@SIGIL.TEST"};
	const char *other_realm[] = {"HTTP/web@OTHER.TEST"};
	const char *nonsense[] = {"kadmin/admin@SIGIL.TEST/x"};
	/* The KDC's own keys are never extracted for a volume. */
	const char *kdc_own[] = {web[0], "kadmin/admin@SIGIL.TEST"};
	const char *tgt[] = {"krbtgt/sigil.test@SIGIL.TEST"};
	const char *many[KERBEROS_MAX_PRINCIPALS + 1];
	kerberos_admin_config c;
	sigil_err err = {0};
	uint8_t *kt = (uint8_t *)0x1;
	size_t len = 7;

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(many); i++)
		many[i] = web[0];

	c = base_config(helper);
	assert_int_equal(kerberos_provision(&c, bad_name, 1, true, &kt, &len, &err),
	                 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "lower case"));
	assert_int_equal(kerberos_provision(&c, other_realm, 1, true, &kt, &len, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(kerberos_provision(&c, nonsense, 1, true, &kt, &len, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(kerberos_provision(&c, kdc_own, 2, true, &kt, &len, &err),
	                 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "belongs to the KDC"));
	assert_int_equal(kerberos_provision(&c, tgt, 1, true, &kt, &len, &err), SIGIL_E_INVALID);
	assert_int_equal(kerberos_provision(&c, web, 0, true, &kt, &len, &err), SIGIL_E_INVALID);
	assert_int_equal(
	    kerberos_provision(&c, many, SIGIL_ARRAY_SIZE(many), true, &kt, &len, &err),
	    SIGIL_E_LIMIT);
	c.realm = "sigil.test";
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INVALID);
	c = base_config(helper);
	c.kdc = "kdc\n[realms]";
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INVALID);
	c = base_config(helper);
	c.admin_server = "";
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INVALID);
	c = base_config(helper);
	c.admin_principal = "sigil admin";
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INVALID);
	c.admin_principal = "sigil/admin@OTHER.TEST";
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INVALID);
	c = base_config(helper);
	c.admin_keytab = "relative/admin.keytab";
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INVALID);
	c.admin_keytab = "MEMORY:x";
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INVALID);
	c = base_config(helper);
	c.timeout_ms = KERBEROS_KADM_MAX_TIMEOUT_MS + 1;
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INVALID);
	assert_int_equal(kerberos_provision(NULL, web, 1, true, &kt, &len, &err), SIGIL_E_INVALID);

	assert_int_equal(access(marker, F_OK), -1);
	assert_ptr_equal(kt, (uint8_t *)0x1);
	assert_int_equal(len, 7);
}

static void test_missing_helper(void **state)
{
	kerberos_admin_config c = base_config("/nonexistent/sigil-kadm-helper");
	sigil_err err = {0};
	uint8_t *kt = NULL;
	size_t len;

	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, KERBEROS_KADM_HELPER_ENV));
}

/* ---- the watchdog and broken helpers --------------------------------------------------- */

static void test_watchdog_kills_a_hung_helper(void **state)
{
	/* Reads nothing and never answers, like a helper stuck on a dead kadmind. */
	kerberos_admin_config c = base_config(script("h-hang", "exec sleep 30"));
	sigil_err err = {0};
	uint8_t *kt = NULL;
	size_t len;
	int64_t t0;

	c.timeout_ms = 300;
	t0 = sigil_mono_ms();
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_UNAVAIL);
	assert_true(sigil_mono_ms() - t0 < 300 + 2000);
	assert_true(sigil_mono_ms() - t0 >= 300);
	assert_non_null(strstr(err.msg, "did not answer within 300 ms"));
	assert_int_equal(access(marker, F_OK), 0);
	unlink(marker);
}

static void test_helper_that_dies(void **state)
{
	kerberos_admin_config c = base_config(script("h-exit", "exit 3"));
	sigil_err err = {0};
	uint8_t *kt = NULL;
	size_t len;

	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INTERNAL);
	assert_non_null(strstr(err.msg, "exited with status 3"));

	c = base_config(script("h-kill", "kill -9 $$"));
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INTERNAL);
	assert_non_null(strstr(err.msg, "signal 9"));
}

static void test_helper_that_talks_nonsense(void **state)
{
	/* A frame length far above the limit, then a well-framed bad body. */
	kerberos_admin_config c = base_config(script("h-garbage", "printf 'garbage!' >&3"));
	sigil_err err = {0};
	uint8_t *kt = NULL;
	size_t len;

	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INTERNAL);
	c = base_config(script("h-badbody", "printf '\\000\\000\\000\\004XXXX' >&3"));
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_CORRUPT);
	/* A success frame whose keytab lacks the principal asked for. */
	c = base_config(script("h-wrongkt", "printf '\\000\\000\\000\\020SGK1\\000\\000\\000\\000"
	                                    "\\000\\000\\000\\000\\000\\002\\005\\002' >&3"));
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_INTERNAL);
	assert_non_null(strstr(err.msg, "no key for"));
}

/* The real helper, with nothing listening on the KDC and kadmind ports. */
static void test_real_helper_unreachable_kdc(void **state)
{
	const char *build = getenv("SIGIL_BUILD_DIR");
	char helper[512], ktpath[256];
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *admin = kerberos_keytab_new();
	kerberos_principal p = {"sigil", "admin", "SIGIL.TEST"};
	uint8_t key[32] = {1, 2, 3};
	uint8_t *bytes = NULL, *kt = NULL;
	size_t blen, len;
	sigil_err err = {0};
	kerberos_admin_config c;

	if (!build)
		skip();
	snprintf(helper, sizeof(helper), "%s/%s", build, KERBEROS_KADM_HELPER_NAME);
	snprintf(ktpath, sizeof(ktpath), "%s/admin.keytab", tmpdir);
	c = base_config(helper);
	c.admin_keytab = ktpath;

	/* No admin keytab: a clear message before libkrb5 is involved. */
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_UNAUTH);
	assert_non_null(strstr(err.msg, "cannot read the admin keytab"));

	/* A keytab for someone else. */
	kerberos_principal other = {"sigil", "other", "SIGIL.TEST"};
	assert_int_equal(kerberos_keytab_add_key(admin, &other, 0, 1, 18, key, 32, &err), 0);
	assert_int_equal(kerberos_keytab_serialize(admin, &bytes, &blen, &err), 0);
	assert_int_equal(sigil_fs_write_atomic(ktpath, bytes, blen, 0600, &err), 0);
	sigil_freezero(bytes, blen);
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_UNAUTH);
	assert_non_null(strstr(err.msg, "holds no key for sigil/admin@SIGIL.TEST"));

	/* The right principal, but the KDC is down. */
	assert_int_equal(kerberos_keytab_add_key(admin, &p, 0, 1, 18, key, 32, &err), 0);
	assert_int_equal(kerberos_keytab_serialize(admin, &bytes, &blen, &err), 0);
	assert_int_equal(sigil_fs_write_atomic(ktpath, bytes, blen, 0600, &err), 0);
	sigil_freezero(bytes, blen);
	assert_int_equal(kerberos_provision(&c, web, 1, true, &kt, &len, &err), SIGIL_E_UNAVAIL);
	assert_non_null(strstr(err.msg, "127.0.0.1:1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_roundtrip_and_truncation),
	    cmocka_unit_test(test_request_limits),
	    cmocka_unit_test(test_response_roundtrip),
	    cmocka_unit_test(test_invalid_input_never_starts_the_helper),
	    cmocka_unit_test(test_missing_helper),
	    cmocka_unit_test(test_watchdog_kills_a_hung_helper),
	    cmocka_unit_test(test_helper_that_dies),
	    cmocka_unit_test(test_helper_that_talks_nonsense),
	    cmocka_unit_test(test_real_helper_unreachable_kdc),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
