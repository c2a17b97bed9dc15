#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/buf.h"

static void test_rbuf_reads_and_never_advances_on_failure(void **state)
{
	const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
	sigil_rbuf b;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	const uint8_t *p;

	sigil_rbuf_init(&b, data, sizeof(data));
	assert_int_equal(sigil_rbuf_get_u8(&b, &u8), 0);
	assert_int_equal(u8, 1);
	assert_int_equal(sigil_rbuf_get_u16be(&b, &u16), 0);
	assert_int_equal(u16, 0x0203);
	/* 4 left: a u64 must fail and leave the cursor where it was. */
	assert_int_equal(sigil_rbuf_get_u64be(&b, &u64), SIGIL_E_INVALID);
	assert_int_equal(sigil_rbuf_remaining(&b), 4);
	assert_int_equal(sigil_rbuf_get_u32be(&b, &u32), 0);
	assert_int_equal(u32, 0x04050607);
	assert_int_equal(sigil_rbuf_get_u8(&b, &u8), SIGIL_E_INVALID);
	assert_int_equal(sigil_rbuf_get_bytes(&b, 0, &p), 0);
	assert_int_equal(sigil_rbuf_get_bytes(&b, SIZE_MAX, &p), SIGIL_E_INVALID);
}

static void test_rbuf_null(void **state)
{
	sigil_rbuf b;
	uint8_t u8;

	sigil_rbuf_init(&b, NULL, 100);
	assert_int_equal(sigil_rbuf_remaining(&b), 0);
	assert_int_equal(sigil_rbuf_get_u8(&b, &u8), SIGIL_E_INVALID);
}

static void test_wbuf_grows_and_limits(void **state)
{
	sigil_wbuf b;
	size_t len;
	uint8_t *p;

	sigil_wbuf_init(&b, 16, true);
	assert_int_equal(sigil_wbuf_put_u32be(&b, 0xdeadbeef), 0);
	assert_int_equal(sigil_wbuf_put_u16be(&b, 0x0102), 0);
	assert_int_equal(sigil_wbuf_put_u64be(&b, 0x1122334455667788ULL), 0);
	assert_int_equal(b.len, 14);
	/* 3 more bytes would pass the 16-byte limit. */
	assert_int_equal(sigil_wbuf_put(&b, "abc", 3), SIGIL_E_LIMIT);
	/* The failure sticks: later appends are refused too. */
	assert_int_equal(sigil_wbuf_put_u8(&b, 1), SIGIL_E_LIMIT);
	assert_int_equal(sigil_wbuf_status(&b), SIGIL_E_LIMIT);
	sigil_wbuf_free(&b);

	sigil_wbuf_init(&b, 1 << 20, false);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(sigil_wbuf_putf(&b, "%04d", i), 0);
	assert_int_equal(sigil_wbuf_status(&b), 0);
	p = sigil_wbuf_steal(&b, &len);
	assert_int_equal(len, 4000);
	assert_memory_equal(p, "0000000100020003", 16);
	assert_int_equal(p[len], '\0');
	assert_null(b.p);
	free(p);
	sigil_wbuf_free(&b);
}

static void test_wbuf_overflowing_size(void **state)
{
	sigil_wbuf b;

	sigil_wbuf_init(&b, SIZE_MAX, false);
	assert_int_equal(sigil_wbuf_put(&b, "x", 1), 0);
	assert_int_equal(sigil_wbuf_put(&b, "x", SIZE_MAX), SIGIL_E_LIMIT);
	sigil_wbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rbuf_reads_and_never_advances_on_failure),
		cmocka_unit_test(test_rbuf_null),
		cmocka_unit_test(test_wbuf_grows_and_limits),
		cmocka_unit_test(test_wbuf_overflowing_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
