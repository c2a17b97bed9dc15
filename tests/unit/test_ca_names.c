/* ca/names.c: DNS (RFC 1123, wildcards), IPv4/IPv6 and URI validation
 * tables, limits and error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ca/names.h"
#include "util/mem.h"

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_dns_table(void **state)
{
	static const struct {
		const char *name;
		bool wildcard; /* policy */
		int rc;
	} cases[] = {
		/* good */
		{ "example.com", false, 0 },
		{ "a", false, 0 },
		{ "localhost", false, 0 },
		{ "my-svc.my-ns.svc.cluster.local", false, 0 },
		{ "Pod-1.Default.SVC", false, 0 },
		{ "1node.example", false, 0 }, /* RFC 1123 allows a leading digit */
		{ "x--y.example", false, 0 },
		{ "*.example.com", true, 0 },
		{ "*.svc.cluster.local", true, 0 },
		/* wildcard without the policy */
		{ "*.example.com", false, SIGIL_E_INVALID },
		/* bad wildcards even with the policy */
		{ "*", true, SIGIL_E_INVALID },
		{ "*.", true, SIGIL_E_INVALID },
		{ "*.com", true, SIGIL_E_INVALID },
		{ "**.example.com", true, SIGIL_E_INVALID },
		{ "a*.example.com", true, SIGIL_E_INVALID },
		{ "*a.example.com", true, SIGIL_E_INVALID },
		{ "a.*.example.com", true, SIGIL_E_INVALID },
		{ "*.*.example.com", true, SIGIL_E_INVALID },
		{ "example.*", true, SIGIL_E_INVALID },
		/* bad */
		{ "", false, SIGIL_E_INVALID },
		{ ".", false, SIGIL_E_INVALID },
		{ "example.com.", false, SIGIL_E_INVALID },
		{ ".example.com", false, SIGIL_E_INVALID },
		{ "a..b", false, SIGIL_E_INVALID },
		{ "-a.example", false, SIGIL_E_INVALID },
		{ "a-.example", false, SIGIL_E_INVALID },
		{ "a.-b.example", false, SIGIL_E_INVALID },
		{ "under_score.example", false, SIGIL_E_INVALID },
		{ "sp ace.example", false, SIGIL_E_INVALID },
		{ "tab\t.example", false, SIGIL_E_INVALID },
		{ "ex\xc3\xa4mple.com", false, SIGIL_E_INVALID }, /* IDNs must come as A-labels */
		{ "xn--exmple-cua.com", false, 0 },
		{ "a/b.example", false, SIGIL_E_INVALID },
		{ "example.com:443", false, SIGIL_E_INVALID },
		{ "10.0.0.1", false, SIGIL_E_INVALID },     /* an IP belongs in an IP SAN */
		{ "123", false, SIGIL_E_INVALID },
		{ "host.123", false, SIGIL_E_INVALID },
		{ "::1", false, SIGIL_E_INVALID },
	};

	(void)state;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		sigil_err err = { 0 };
		int r = ca_names_check_dns(cases[i].name, cases[i].wildcard, &err);
		if (r != cases[i].rc)
			fail_msg("\"%s\" (wildcards %d): got %d (%s), want %d", cases[i].name,
				 cases[i].wildcard, r, err.msg, cases[i].rc);
		if (r < 0) {
			assert_int_equal(err.code, r);
			assert_non_null(strstr(err.msg, "DNS name") ? err.msg : strstr(err.msg, "empty"));
		}
	}
	assert_int_equal(ca_names_check_dns(NULL, true, NULL), SIGIL_E_INVALID);
}

static void test_dns_messages(void **state)
{
	sigil_err err = { 0 };

	(void)state;
	assert_int_equal(ca_names_check_dns("*.example.com", false, &err), SIGIL_E_INVALID);
	assert_string_equal(err.msg,
			    "wildcard DNS name \"*.example.com\" is not allowed by the name policy");
	assert_int_equal(ca_names_check_dns("bad_name.example", false, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "\"bad_name.example\""));
	assert_non_null(strstr(err.msg, "offset 3"));
	assert_int_equal(ca_names_check_dns("a.example.", false, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "trailing dot"));
	/* Control characters are not echoed into messages. */
	assert_int_equal(ca_names_check_dns("evil\n\x1b[31m.example", false, &err), SIGIL_E_INVALID);
	assert_null(strchr(err.msg, '\n'));
	assert_null(strchr(err.msg, '\x1b'));
	assert_non_null(strstr(err.msg, "evil??[31m.example"));
}

static void test_dns_limits(void **state)
{
	sigil_err err = { 0 };
	char *label63 = repeat('a', 63);
	char *label64 = repeat('b', 64);
	char name[300];

	(void)state;
	assert_int_equal(ca_names_check_dns(label63, false, &err), 0);
	assert_int_equal(ca_names_check_dns(label64, false, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "label of 64 bytes"));
	/* 4 x 63 + 3 dots = 255 > 253; 253 exactly is fine. */
	snprintf(name, sizeof(name), "%s.%s.%s.%s", label63, label63, label63, label63);
	assert_int_equal(strlen(name), 255);
	assert_int_equal(ca_names_check_dns(name, false, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "255 bytes long, the limit is 253"));
	/* The quoted name is cut, not the whole 255 bytes. */
	assert_non_null(strstr(err.msg, "...\""));
	name[253] = '\0';
	assert_int_equal(ca_names_check_dns(name, false, &err), 0);
	/* Wildcard counts towards the length too. */
	char *w = malloc(260);
	snprintf(w, 260, "*.%s.%s.%s.%s", label63, label63, label63, label63);
	assert_int_equal(strlen(w), 2 + 63 * 4 + 3);
	assert_int_equal(ca_names_check_dns(w, true, &err), SIGIL_E_LIMIT);
	free(w);
	/* Oversized garbage of 1 MiB is refused on length before anything else. */
	char *huge = repeat('\xff', 1 << 20);
	assert_int_equal(ca_names_check_dns(huge, false, &err), SIGIL_E_LIMIT);
	free(huge);
	free(label64);
	free(label63);
}

static void test_ip_table(void **state)
{
	static const struct {
		const char *text;
		size_t len; /* 0: invalid */
		unsigned char bytes[16];
	} cases[] = {
		{ "10.0.0.1", 4, { 10, 0, 0, 1 } },
		{ "0.0.0.0", 4, { 0 } },
		{ "255.255.255.255", 4, { 255, 255, 255, 255 } },
		{ "192.168.1.20", 4, { 192, 168, 1, 20 } },
		{ "::1", 16, { [15] = 1 } },
		{ "::", 16, { 0 } },
		{ "fe80::1", 16, { 0xfe, 0x80, [15] = 1 } },
		{ "2001:DB8::a:B", 16, { 0x20, 0x01, 0x0d, 0xb8, [13] = 0x0a, [15] = 0x0b } },
		{ "2001:db8:0:0:0:0:0:1", 16, { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } },
		{ "::ffff:10.1.2.3", 16, { [10] = 0xff, [11] = 0xff, [12] = 10, [13] = 1, [14] = 2, [15] = 3 } },
		/* bad */
		{ "", 0, { 0 } },
		{ "10.0.0", 0, { 0 } },
		{ "10.0.0.1.", 0, { 0 } },
		{ "10.0.0.256", 0, { 0 } },
		{ "010.0.0.1", 0, { 0 } }, /* no octal */
		{ "0x0a.0.0.1", 0, { 0 } },
		{ "10.0.0.1/24", 0, { 0 } },
		{ " 10.0.0.1", 0, { 0 } },
		{ "10.0.0.1 ", 0, { 0 } },
		{ "167772161", 0, { 0 } },
		{ "1.2.3.-4", 0, { 0 } },
		{ "localhost", 0, { 0 } },
		{ "fe80::1%eth0", 0, { 0 } }, /* no zone index in certificates */
		{ "1:2:3:4:5:6:7:8:9", 0, { 0 } },
		{ "2001:db8:::1", 0, { 0 } },
		{ "12345::1", 0, { 0 } },
		{ ":", 0, { 0 } },
		{ "[::1]", 0, { 0 } },
		{ "g::1", 0, { 0 } },
	};

	(void)state;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		sigil_err err = { 0 };
		unsigned char out[16];
		size_t len = 99;
		int r;

		memset(out, 0xaa, sizeof(out));
		r = ca_names_parse_ip(cases[i].text, out, &len, &err);
		if (cases[i].len == 0) {
			if (r != SIGIL_E_INVALID)
				fail_msg("\"%s\": got %d, want invalid", cases[i].text, r);
			assert_int_equal(len, 99); /* untouched */
			assert_true(out[0] == 0xaa);
			continue;
		}
		if (r != 0)
			fail_msg("\"%s\": %s", cases[i].text, err.msg);
		assert_int_equal(len, cases[i].len);
		assert_memory_equal(out, cases[i].bytes, len);
	}
}

static void test_ip_messages_limits(void **state)
{
	sigil_err err = { 0 };
	unsigned char out[16];
	size_t len;
	char *long_ip;

	(void)state;
	assert_int_equal(ca_names_parse_ip("10.0.0.300", out, &len, &err), SIGIL_E_INVALID);
	assert_string_equal(err.msg, "\"10.0.0.300\" is not a valid IPv4 address");
	assert_int_equal(ca_names_parse_ip("2001:zz::1", out, &len, &err), SIGIL_E_INVALID);
	assert_string_equal(err.msg, "\"2001:zz::1\" is not a valid IPv6 address");
	assert_int_equal(ca_names_parse_ip(NULL, out, &len, &err), SIGIL_E_INVALID);
	/* The longest valid text form is 45 bytes. */
	assert_int_equal(ca_names_parse_ip("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", out, &len,
					   &err),
			 0);
	long_ip = repeat('1', 46);
	assert_int_equal(ca_names_parse_ip(long_ip, out, &len, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "46 bytes"));
	free(long_ip);
}

static void test_uri_table(void **state)
{
	static const struct {
		const char *uri;
		int rc;
	} cases[] = {
		{ "spiffe://cluster.local/ns/default/sa/web", 0 },
		{ "https://example.com/path?q=1&r=%20x#frag", 0 },
		{ "urn:uuid:123e4567-e89b-12d3-a456-426614174000", 0 },
		{ "mailto:admin@example.com", 0 },
		{ "x-custom+v1.2:opaque", 0 },
		{ "", SIGIL_E_INVALID },
		{ "no-scheme", SIGIL_E_INVALID },
		{ "/just/a/path", SIGIL_E_INVALID },
		{ "://missing", SIGIL_E_INVALID },
		{ "1http://x", SIGIL_E_INVALID },
		{ "ht tp://x", SIGIL_E_INVALID },
		{ "http_x://y", SIGIL_E_INVALID },
		{ "spiffe:", SIGIL_E_INVALID },
		{ "https://exa mple.com", SIGIL_E_INVALID },
		{ "https://example.com/\n", SIGIL_E_INVALID },
		{ "https://example.com/<script>", SIGIL_E_INVALID },
		{ "https://example.com/\"q\"", SIGIL_E_INVALID },
		{ "https://example.com/\\", SIGIL_E_INVALID },
		{ "https://ex\xc3\xa4mple.com", SIGIL_E_INVALID },
		{ "https://example.com/%", SIGIL_E_INVALID },
		{ "https://example.com/%4", SIGIL_E_INVALID },
		{ "https://example.com/%zz", SIGIL_E_INVALID },
		{ "https://example.com/%41", 0 },
	};

	(void)state;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		sigil_err err = { 0 };
		int r = ca_names_check_uri(cases[i].uri, &err);
		if (r != cases[i].rc)
			fail_msg("\"%s\": got %d (%s), want %d", cases[i].uri, r, err.msg, cases[i].rc);
		if (r < 0)
			assert_non_null(strstr(err.msg, "URI"));
	}
	assert_int_equal(ca_names_check_uri(NULL, NULL), SIGIL_E_INVALID);
}

static void test_uri_limits(void **state)
{
	sigil_err err = { 0 };
	char *uri = malloc(CA_MAX_URI_LEN + 2);

	(void)state;
	memcpy(uri, "spiffe://", 9);
	memset(uri + 9, 'a', CA_MAX_URI_LEN + 1 - 9);
	uri[CA_MAX_URI_LEN] = '\0';
	assert_int_equal(ca_names_check_uri(uri, &err), 0);
	uri[CA_MAX_URI_LEN] = 'a';
	uri[CA_MAX_URI_LEN + 1] = '\0';
	assert_int_equal(ca_names_check_uri(uri, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "1025 bytes long, the limit is 1024"));
	free(uri);
}

static void test_quote(void **state)
{
	char buf[8];

	(void)state;
	assert_string_equal(ca_names_quote("abc", buf, sizeof(buf)), "abc");
	assert_string_equal(ca_names_quote("abcdefg", buf, sizeof(buf)), "abcdefg");
	assert_string_equal(ca_names_quote("abcdefgh", buf, sizeof(buf)), "abcd...");
	assert_string_equal(ca_names_quote("a\tb\xff", buf, sizeof(buf)), "a?b?");
	assert_string_equal(ca_names_quote(NULL, buf, sizeof(buf)), "(null)");
	assert_string_equal(ca_names_quote("abc", buf, 3), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dns_table),
		cmocka_unit_test(test_dns_messages),
		cmocka_unit_test(test_dns_limits),
		cmocka_unit_test(test_ip_table),
		cmocka_unit_test(test_ip_messages_limits),
		cmocka_unit_test(test_uri_table),
		cmocka_unit_test(test_uri_limits),
		cmocka_unit_test(test_quote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
