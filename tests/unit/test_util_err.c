#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "util/err.h"
#include "util/mem.h"

static void test_err_set_and_prefix(void **state)
{
	sigil_err err = {0};

	assert_int_equal(sigil_err_set(&err, SIGIL_E_INVALID, "bad %s", "thing"), SIGIL_E_INVALID);
	assert_string_equal(err.msg, "bad thing");
	sigil_err_prefix(&err, "volume %d: ", 7);
	assert_string_equal(err.msg, "volume 7: bad thing");
	assert_int_equal(err.code, SIGIL_E_INVALID);
	sigil_err_clear(&err);
	assert_int_equal(err.code, 0);
	/* NULL context is allowed everywhere. */
	assert_int_equal(sigil_err_set(NULL, SIGIL_E_IO, "x"), SIGIL_E_IO);
}

static void test_err_errno_maps(void **state)
{
	sigil_err err = {0};

	assert_int_equal(sigil_err_errno(&err, ENOENT, "open %s", "f"), SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "No such file"));
	assert_int_equal(sigil_err_errno(&err, EACCES, "x"), SIGIL_E_PERM);
	assert_int_equal(sigil_err_errno(&err, EIO, "x"), SIGIL_E_IO);
}

static void test_err_ssl_drains_queue(void **state)
{
	sigil_err err = {0};

	/* Provoke an OpenSSL error. */
	assert_null(EVP_get_digestbyname("no-such-digest"));
	ERR_raise(ERR_LIB_EVP, EVP_R_UNSUPPORTED_ALGORITHM);
	sigil_err_ssl(&err, SIGIL_E_CRYPTO, "hashing");
	assert_non_null(strstr(err.msg, "hashing: "));
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_err_long_messages_truncate(void **state)
{
	sigil_err err = {0};
	char big[2000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sigil_err_set(&err, SIGIL_E_INVALID, "%s", big);
	assert_int_equal(strlen(err.msg), SIGIL_ERR_MSG_MAX - 1);
	sigil_err_prefix(&err, "%s", big);
	assert_int_equal(strlen(err.msg), SIGIL_ERR_MSG_MAX - 1);
	assert_string_equal(sigil_errcode_name(SIGIL_E_UNAVAIL), "unavailable");
	assert_string_equal(sigil_errcode_name(12345), "unknown error");
}

static void test_secret_wipe(void **state)
{
	char *s = strdup("hunter2");
	char buf[8] = "secret!";

	sigil_wipe(buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0);
	sigil_secret_free(s);
	sigil_secret_free(NULL);
	sigil_freezero(NULL, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_set_and_prefix),
		cmocka_unit_test(test_err_errno_maps),
		cmocka_unit_test(test_err_ssl_drains_queue),
		cmocka_unit_test(test_err_long_messages_truncate),
		cmocka_unit_test(test_secret_wipe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
