/* kube/status: Status objects and HTTP codes as sigil errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kube/status.h"

static void test_errcode_mapping(void **state)
{
	static const struct {
		long http;
		const char *reason;
		int code;
	} cases[] = {
	    {400, "BadRequest", SIGIL_E_INVALID},
	    {401, "Unauthorized", SIGIL_E_UNAUTH},
	    {403, "Forbidden", SIGIL_E_PERM},
	    {404, "NotFound", SIGIL_E_NOTFOUND},
	    {405, "MethodNotAllowed", SIGIL_E_INVALID},
	    {409, "AlreadyExists", SIGIL_E_EXISTS},
	    {409, "Conflict", SIGIL_E_BUSY},
	    {409, NULL, SIGIL_E_BUSY},
	    {410, "Expired", KUBE_E_GONE},
	    {410, "Gone", KUBE_E_GONE},
	    {413, "RequestEntityTooLarge", SIGIL_E_LIMIT},
	    {415, "UnsupportedMediaType", SIGIL_E_INVALID},
	    {422, "Invalid", SIGIL_E_INVALID},
	    {429, "TooManyRequests", SIGIL_E_UNAVAIL},
	    {500, "InternalError", SIGIL_E_UNAVAIL},
	    {502, "", SIGIL_E_UNAVAIL},
	    {503, "ServiceUnavailable", SIGIL_E_UNAVAIL},
	    {504, "Timeout", SIGIL_E_TIMEOUT},
	    {504, "", SIGIL_E_UNAVAIL},
	    {302, "", SIGIL_E_INTERNAL},
	    {0, NULL, SIGIL_E_INTERNAL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (kube_status_errcode(cases[i].http, cases[i].reason) != cases[i].code)
			fail_msg("HTTP %ld %s", cases[i].http,
			         cases[i].reason ? cases[i].reason : "(null)");
	assert_string_equal(kube_errcode_name(KUBE_E_GONE), "gone");
	assert_string_equal(kube_errcode_name(SIGIL_E_NOTFOUND), "not found");
}

static int to_err(long http, const char *body, const char *what, sigil_err *err, kube_status *st)
{
	kube_status_parse(http, body, body ? strlen(body) : 0, st);
	return kube_status_to_err(st, what, err);
}

static void test_real_status_objects(void **state)
{
	kube_status st;
	sigil_err err = {0};

	assert_int_equal(
	    to_err(
	        404,
	        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
	        "\"message\":\"pods \\\"web-0\\\" not found\",\"reason\":\"NotFound\","
	        "\"details\":{\"name\":\"web-0\",\"kind\":\"pods\"},\"code\":404}",
	        "get Pod default/web-0", &err, &st),
	    SIGIL_E_NOTFOUND);
	assert_string_equal(st.reason, "NotFound");
	assert_string_equal(err.msg,
	                    "get Pod default/web-0: pods \"web-0\" not found (HTTP 404 NotFound)");

	assert_int_equal(
	    to_err(409,
	           "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":"
	           "\"Operation cannot be fulfilled on leases.coordination.k8s.io \\\"l\\\": the "
	           "object "
	           "has been modified; please apply your changes to the latest version and try "
	           "again\","
	           "\"reason\":\"Conflict\",\"details\":{\"name\":\"l\",\"group\":\"coordination."
	           "k8s.io\","
	           "\"kind\":\"leases\"},\"code\":409}",
	           "update Lease default/l", &err, &st),
	    SIGIL_E_BUSY);
	assert_non_null(strstr(err.msg, "the object has been modified"));

	assert_int_equal(
	    to_err(
	        429,
	        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
	        "\"message\":\"Cannot evict pod as it would violate the pod's disruption budget.\","
	        "\"reason\":\"TooManyRequests\",\"details\":{\"causes\":[{\"reason\":"
	        "\"DisruptionBudget\",\"message\":\"The disruption budget web-pdb needs 2 healthy "
	        "pods and has 2 currently\"}]},\"code\":429}",
	        "evict Pod default/web-0", &err, &st),
	    SIGIL_E_UNAVAIL);
	assert_string_equal(st.cause, "DisruptionBudget: The disruption budget web-pdb needs 2 "
	                              "healthy pods and has 2 currently");
	assert_string_equal(
	    err.msg,
	    "evict Pod default/web-0: Cannot evict pod as it would violate the pod's disruption "
	    "budget. (HTTP 429 TooManyRequests); DisruptionBudget: The disruption budget web-pdb "
	    "needs 2 healthy pods and has 2 currently");

	assert_int_equal(to_err(429,
	                        "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"Too "
	                        "many requests, please "
	                        "try again later.\",\"reason\":\"TooManyRequests\",\"details\":"
	                        "{\"retryAfterSeconds\":3},\"code\":429}",
	                        "list pods", &err, &st),
	                 SIGIL_E_UNAVAIL);
	assert_int_equal(st.retry_after_secs, 3);

	assert_int_equal(
	    to_err(
	        422,
	        "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"ConfigMap \\\"A\\\" is "
	        "invalid\","
	        "\"reason\":\"Invalid\",\"details\":{\"causes\":[{\"reason\":\"FieldValueInvalid\","
	        "\"message\":\"Invalid value: "
	        "\\\"A\\\"\",\"field\":\"metadata.name\"}]},\"code\":422}",
	        "create ConfigMap default/A", &err, &st),
	    SIGIL_E_INVALID);
	assert_string_equal(st.cause, "FieldValueInvalid: metadata.name: Invalid value: \"A\"");

	/* The HTTP status wins over a body that claims otherwise. */
	assert_int_equal(
	    to_err(403,
	           "{\"kind\":\"Status\",\"code\":200,\"reason\":\"Forbidden\",\"message\":\"no\"}",
	           "x", &err, &st),
	    SIGIL_E_PERM);
	assert_int_equal(st.code, 403);

	assert_int_equal(
	    to_err(401,
	           "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
	           "\"Failure\",\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":"
	           "401}",
	           "get Pod a/b", &err, &st),
	    SIGIL_E_UNAUTH);
	assert_string_equal(err.msg, "get Pod a/b: Unauthorized (HTTP 401 Unauthorized)");
}

static void test_not_a_status(void **state)
{
	kube_status st;
	sigil_err err = {0};

	/* A load balancer's page. */
	assert_int_equal(
	    to_err(502,
	           "<html>\r\n<head><title>502 Bad Gateway</title></head>\n<body></body></html>",
	           "get Pod a/b", &err, &st),
	    SIGIL_E_UNAVAIL);
	assert_string_equal(st.reason, "");
	assert_non_null(
	    strstr(err.msg, "<html> <head><title>502 Bad Gateway</title></head> <body>"));
	assert_null(strchr(err.msg, '\n'));

	/* "404 page not found" as text (an unknown path on the apiserver). */
	assert_int_equal(to_err(404, "404 page not found\n", "get X", &err, &st), SIGIL_E_NOTFOUND);
	assert_string_equal(err.msg, "get X: 404 page not found (HTTP 404)");

	/* No body at all. */
	assert_int_equal(to_err(503, NULL, "get X", &err, &st), SIGIL_E_UNAVAIL);
	assert_string_equal(err.msg, "get X: HTTP 503");

	/* JSON that is not a Status. */
	assert_int_equal(to_err(500, "{\"kind\":\"Pod\",\"message\":\"x\"}", "get X", &err, &st),
	                 SIGIL_E_UNAVAIL);
	assert_string_equal(st.reason, "");
}

#define STATUS_HEAD "{\"kind\":\"Status\",\"message\":\""

static void test_garbage_and_hostile(void **state)
{
	kube_status st;
	sigil_err err = {0};
	char *big;
	static const char ctl[] =
	    "{\"kind\":\"Status\",\"message\":\"evil\\u001b[31mred\\nline\\u00e9\","
	    "\"reason\":\"Bad\\u0007\",\"code\":400}";
	static const char truncated[] = "{\"kind\":\"Status\",\"message\":\"half";
	static const char dup[] =
	    "{\"kind\":\"Status\",\"message\":\"a\",\"message\":\"b\",\"code\":400}";
	static const char wrong_types[] =
	    "{\"kind\":\"Status\",\"message\":5,\"reason\":[],\"details\":"
	    "{\"causes\":\"x\",\"retryAfterSeconds\":-4},\"code\":\"x\"}";
	static const char binary[] = "\x00\x01\x02\xff\xfe garbage";

	/* Terminal escapes and newlines never reach a message. */
	assert_int_equal(to_err(400, ctl, "w", &err, &st), SIGIL_E_INVALID);
	assert_string_equal(st.message, "evil [31mred line??");
	assert_string_equal(st.reason, "Bad");
	for (const char *p = err.msg; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);

	kube_status_parse(400, truncated, strlen(truncated), &st);
	assert_string_equal(st.reason, "");
	assert_non_null(strstr(st.message, "{\"kind\":\"Status\""));

	/* Duplicate keys: not believed as a Status. */
	kube_status_parse(400, dup, strlen(dup), &st);
	assert_string_equal(st.reason, "");

	kube_status_parse(400, wrong_types, strlen(wrong_types), &st);
	assert_int_equal(st.code, 400);
	assert_string_equal(st.message, "");
	assert_string_equal(st.reason, "");
	assert_int_equal(st.retry_after_secs, 0);

	kube_status_parse(500, binary, sizeof(binary) - 1, &st);
	for (const char *p = st.message; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);

	/* An oversized body is quoted, not decoded, and the quote is bounded. */
	big = malloc(1024 * 1024);
	memset(big, 'x', 1024 * 1024);
	memcpy(big, STATUS_HEAD, strlen(STATUS_HEAD));
	kube_status_parse(500, big, 1024 * 1024, &st);
	assert_true(strlen(st.message) <= 120);
	free(big);

	/* A huge message is truncated to the field. */
	big = malloc(20000);
	memset(big, 'm', 20000);
	memcpy(big, STATUS_HEAD, strlen(STATUS_HEAD));
	memcpy(big + 20000 - 13, "\",\"code\":500}", 13);
	kube_status_parse(500, big, 20000, &st);
	assert_int_equal(strlen(st.message), KUBE_STATUS_MAX_MESSAGE - 1);
	assert_int_equal(kube_status_to_err(&st, "get X", &err), SIGIL_E_UNAVAIL);
	/* Truncated message, but the code still shows. */
	assert_non_null(strstr(err.msg, "mmm (HTTP 500)"));
	free(big);

	/* Every prefix of a real Status is handled. */
	for (size_t n = 0; n < sizeof(ctl); n++) {
		kube_status_parse(400, ctl, n, &st);
		assert_int_equal(st.code, 400);
	}
}

static void test_watch_error_event(void **state)
{
	kube_status st;
	json_t *obj = json_loads(
	    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
	    "\"message\":\"too old resource version: 5 (10)\",\"reason\":\"Expired\","
	    "\"code\":410}",
	    0, NULL);
	sigil_err err = {0};

	assert_non_null(obj);
	kube_status_from_json(obj, 0, &st);
	assert_int_equal(st.code, 410);
	assert_int_equal(kube_status_to_err(&st, "watch pods", &err), KUBE_E_GONE);
	assert_string_equal(err.msg,
	                    "watch pods: too old resource version: 5 (10) (HTTP 410 Expired)");
	json_decref(obj);

	/* A code outside HTTP's error range is ignored. */
	obj = json_loads("{\"kind\":\"Status\",\"code\":99999}", 0, NULL);
	kube_status_from_json(obj, 0, &st);
	assert_int_equal(st.code, 0);
	assert_int_equal(kube_status_to_err(&st, "watch", &err), SIGIL_E_INTERNAL);
	json_decref(obj);

	kube_status_from_json(NULL, 500, &st);
	assert_int_equal(st.code, 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_errcode_mapping),   cmocka_unit_test(test_real_status_objects),
	    cmocka_unit_test(test_not_a_status),      cmocka_unit_test(test_garbage_and_hostile),
	    cmocka_unit_test(test_watch_error_event),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
