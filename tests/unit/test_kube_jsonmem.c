/* The wiping jansson free: blocks are wiped whole, and jansson works on
 * top of it (parse, build, dump, free with free()). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kube/jsonmem.h"

static void test_wipe_block(void **state)
{
	size_t sizes[] = {1, 15, 16, 17, 4096, 100000};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		uint8_t *p = malloc(n);
		assert_non_null(p);
		memset(p, 0xA5, n);
		kube_jsonmem_wipe(p);
		for (size_t j = 0; j < n; j++)
			assert_int_equal(p[j], 0);
		kube_jsonmem_free(p);
	}
	kube_jsonmem_free(NULL);
	kube_jsonmem_wipe(NULL);
}

static void test_jansson_on_top(void **state)
{
	json_error_t e;
	const char *doc = "{\"kind\":\"Secret\",\"data\":{\"ca.key\":\"c2VjcmV0\"},\"n\":[1,2.5,true,null]}";
	json_t *o, *again;
	char *s;

	/* A block jansson allocated before the switch is freed by the new
	 * function: it must cope. */
	json_t *before = json_string("made before init");
	kube_jsonmem_init();
	kube_jsonmem_init(); /* idempotent */
	json_decref(before);
	o = json_loads(doc, 0, &e);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "data"), "ca.key")),
			    "c2VjcmV0");
	json_object_set_new(o, "extra", json_string("x"));
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	assert_non_null(s);
	again = json_loads(s, 0, &e);
	assert_non_null(again);
	assert_true(json_equal(o, again));
	free(s); /* jansson still allocates with malloc */
	json_decref(again);
	json_decref(o);
	/* Truncated and garbage input still fail cleanly on top of it. */
	assert_null(json_loads("{\"kind\":\"Sec", 0, &e));
	assert_null(json_loads("\xff\xfe garbage", 0, &e));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wipe_block),
		cmocka_unit_test(test_jansson_on_top),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
