#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/duration.h"
#include "util/parse.h"

static void test_duration_good(void **state)
{
	static const struct {
		const char *in;
		int64_t secs;
	} cases[] = {
		{"1d", 86400}, {"6h", 21600}, {"30m", 1800}, {"45s", 45}, {"1d12h", 129600},
		{"2h30m", 9000}, {"7d", 604800}, {"24h", 86400}, {"1w", 604800}, {"0s", 0},
		{"15days", 1296000}, {"1h 30m", 5400}, {"90min", 5400}, {"365d", 31536000},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t v = -1;
		sigil_err err = {0};
		assert_int_equal(sigil_duration_parse(cases[i].in, &v, &err), 0);
		assert_int_equal(v, cases[i].secs);
	}
}

static void test_duration_bad(void **state)
{
	static const char *const bad[] = {
		"", "d", "1", "1x", "-1d", "1.5h", "1m1h", "1h1h", "99999999999999999999d",
		"36600000d", "1d2", "abc", " ", "1ms", "1hh",
		"1111111111111111111111111111111111111111111111111111111111111111111h",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = 42;
		sigil_err err = {0};
		assert_true(sigil_duration_parse(bad[i], &v, &err) < 0);
		assert_int_equal(v, 42); /* never written on failure */
		assert_true(strlen(err.msg) > 0);
	}
	assert_true(sigil_duration_parse(NULL, NULL, NULL) < 0);
}

static void test_duration_format(void **state)
{
	char buf[32];

	sigil_duration_format(129600 + 61, buf, sizeof(buf));
	assert_string_equal(buf, "1d12h1m1s");
	sigil_duration_format(0, buf, sizeof(buf));
	assert_string_equal(buf, "0s");
}

static void test_parse_numbers(void **state)
{
	int64_t v;
	double d;

	assert_int_equal(sigil_parse_int64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_true(sigil_parse_int64("101", 0, 100, &v) < 0);
	assert_true(sigil_parse_int64("4x", 0, 100, &v) < 0);
	assert_true(sigil_parse_int64("", 0, 100, &v) < 0);
	assert_true(sigil_parse_int64(" 4", 0, 100, &v) < 0);
	assert_true(sigil_parse_int64("99999999999999999999999", 0, INT64_MAX, &v) < 0);
	assert_int_equal(sigil_parse_double("0.2", 0, 1, &d), 0);
	assert_true(d > 0.19 && d < 0.21);
	assert_true(sigil_parse_double("1", 0, 1, &d) < 0);
	assert_true(sigil_parse_double("nan", 0, 1, &d) < 0);
	assert_true(sigil_parse_double("0x1p-1", 0, 1, &d) < 0);
	assert_true(sigil_parse_double("-0.1", 0, 1, &d) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_good),
		cmocka_unit_test(test_duration_bad),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_parse_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
