#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kerberos/principal.h"

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_service_names(void **state)
{
	static const char *const good[] = {"HTTP",    "kafka", "host", "zookeeper-1",
	                                   "a.b_c-d", "X",     "0"};
	static const char *const bad[] = {"", "HTTP/x", "kafka@R", "with space", "tab\t", "ü", ".",
	                                  "..", "a\nb", "semi;colon", "star*",
	                                  /* the KDC's own principals */
	                                  "krbtgt", "KRBTGT", "kadmin", "kiprop", "K", "WELLKNOWN",
	                                  "changepw"};
	sigil_err err;
	char *s;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(kerberos_principal_check_service(good[i], &err), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sigil_err_clear(&err);
		assert_int_equal(kerberos_principal_check_service(bad[i], &err), SIGIL_E_INVALID);
		assert_int_equal(err.code, SIGIL_E_INVALID);
		assert_true(strlen(err.msg) > 0);
	}
	assert_int_equal(kerberos_principal_check_service(NULL, &err), SIGIL_E_INVALID);
	assert_int_equal(kerberos_principal_check_service("kadmin", &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "belongs to the KDC"));
	/* Only whole names are reserved. */
	assert_int_equal(kerberos_principal_check_service("kadmin-ui", &err), 0);
	assert_int_equal(kerberos_principal_check_service("k", &err), SIGIL_E_INVALID);
	s = repeat('a', KERBEROS_MAX_SERVICE_LEN);
	assert_int_equal(kerberos_principal_check_service(s, &err), 0);
	free(s);
	s = repeat('a', KERBEROS_MAX_SERVICE_LEN + 1);
	assert_int_equal(kerberos_principal_check_service(s, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "longer than 64"));
	free(s);
}

static void test_host_names(void **state)
{
	static const char *const good[] = {
	    "web-0.default.svc.cluster.local",
	    "node1",
	    "a",
	    "1a.example",
	    "10.0.0.1",
	    "255.255.255.255",
	    "fd00::1",
	    "::1",
	    "2001:db8::8a2e:370:7334",
	    "xn--bcher-kva.example",
	};
	static const char *const bad[] = {
	    "",
	    "Web-0.default",     /* upper case */
	    "web_0.default",     /* underscore */
	    "-web.default",      /* leading '-' */
	    "web-.default",      /* trailing '-' */
	    "web..default",      /* empty label */
	    ".web",              /* empty first label */
	    "web.",              /* trailing dot */
	    "web 0",             /* space */
	    "web/0",             /* a third component */
	    "web@R",             /* realm separator */
	    "FD00::1",           /* upper-case IPv6 */
	    "fd00::1::2",        /* invalid IPv6 */
	    "1.2.3.4:88",        /* a port is not a host */
	    "web\n.default",     /* control byte */
	    "\xc3\xa9t\xc3\xa9", /* UTF-8 */
	};
	sigil_err err;
	char *s;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		sigil_err_clear(&err);
		if (kerberos_principal_check_host(good[i], &err) != 0)
			fail_msg("%s: %s", good[i], err.msg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (kerberos_principal_check_host(bad[i], &err) != SIGIL_E_INVALID)
			fail_msg("accepted bad host %s", bad[i]);
	assert_int_equal(kerberos_principal_check_host("Web-0", &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "lower case"));

	/* Label and total limits (RFC 1123). */
	s = repeat('a', KERBEROS_MAX_LABEL_LEN);
	assert_int_equal(kerberos_principal_check_host(s, &err), 0);
	free(s);
	s = repeat('a', KERBEROS_MAX_LABEL_LEN + 1);
	assert_int_equal(kerberos_principal_check_host(s, &err), SIGIL_E_INVALID);
	free(s);
	s = repeat('a', KERBEROS_MAX_HOST_LEN);
	for (size_t i = 50; i < KERBEROS_MAX_HOST_LEN; i += 51)
		s[i] = '.';
	assert_int_equal(kerberos_principal_check_host(s, &err), 0);
	free(s);
	s = repeat('a', KERBEROS_MAX_HOST_LEN + 1);
	for (size_t i = 50; i < KERBEROS_MAX_HOST_LEN; i += 51)
		s[i] = '.';
	assert_int_equal(kerberos_principal_check_host(s, &err), SIGIL_E_INVALID);
	free(s);
}

static void test_realms(void **state)
{
	static const char *const good[] = {"SIGIL.TEST", "EXAMPLE.COM", "R", "MY-REALM.1"};
	static const char *const bad[] = {"",           "sigil.test", "SIGIL..TEST",
	                                  ".SIGIL",     "SIGIL.",     "SIGIL TEST",
	                                  "SIGIL@TEST", "SIGIL/TEST", "S\nT"};
	sigil_err err;
	char *s;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(kerberos_principal_check_realm(good[i], &err), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (kerberos_principal_check_realm(bad[i], &err) != SIGIL_E_INVALID)
			fail_msg("accepted bad realm %s", bad[i]);
	s = repeat('A', KERBEROS_MAX_REALM_LEN);
	assert_int_equal(kerberos_principal_check_realm(s, &err), 0);
	free(s);
	s = repeat('A', KERBEROS_MAX_REALM_LEN + 1);
	assert_int_equal(kerberos_principal_check_realm(s, &err), SIGIL_E_INVALID);
	free(s);
}

static void test_build(void **state)
{
	char buf[KERBEROS_MAX_PRINCIPAL_LEN + 1];
	char small[8];
	sigil_err err;

	assert_int_equal(kerberos_principal_build("HTTP", "web-0.default.svc.cluster.local",
	                                          "SIGIL.TEST", buf, sizeof(buf), &err),
	                 0);
	assert_string_equal(buf, "HTTP/web-0.default.svc.cluster.local@SIGIL.TEST");
	assert_int_equal(kerberos_principal_build("kafka", "10.1.2.3", "R", buf, sizeof(buf), &err),
	                 0);
	assert_string_equal(buf, "kafka/10.1.2.3@R");
	/* Each part is checked. */
	assert_int_equal(kerberos_principal_build("HT TP", "a", "R", buf, sizeof(buf), &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(kerberos_principal_build("HTTP", "A", "R", buf, sizeof(buf), &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(kerberos_principal_build("HTTP", "a", "r", buf, sizeof(buf), &err),
	                 SIGIL_E_INVALID);
	/* A buffer that is too small is an error, not a cut name. */
	assert_int_equal(kerberos_principal_build("HTTP", "abc", "R", small, sizeof(small), &err),
	                 SIGIL_E_LIMIT);
}

static void test_parse(void **state)
{
	static const char *const bad[] = {
	    "",
	    "HTTP",                    /* no host, no realm */
	    "HTTP/web",                /* no realm */
	    "HTTP@SIGIL.TEST",         /* no host */
	    "HTTP/web/x@SIGIL.TEST",   /* three components */
	    "HTTP/web@SIGIL.TEST@X",   /* two realms */
	    "HTTP@SIGIL.TEST/web",     /* realm before host */
	    "/web@SIGIL.TEST",         /* empty service */
	    "HTTP/@SIGIL.TEST",        /* empty host */
	    "HTTP/web@",               /* empty realm */
	    "HTTP/Web@SIGIL.TEST",     /* upper-case host */
	    "HTTP/web@sigil.test",     /* lower-case realm */
	    "HTTP/web\\@x@SIGIL.TEST", /* escapes are refused */
	    "HTTP/web@OTHER.TEST",     /* wrong realm */
	};
	kerberos_principal p;
	sigil_err err;
	char *s;

	assert_int_equal(kerberos_principal_parse("HTTP/web-0.default.svc.cluster.local@SIGIL.TEST",
	                                          "SIGIL.TEST", &p, &err),
	                 0);
	assert_string_equal(p.service, "HTTP");
	assert_string_equal(p.host, "web-0.default.svc.cluster.local");
	assert_string_equal(p.realm, "SIGIL.TEST");
	assert_int_equal(kerberos_principal_parse("kafka/fd00::1@R", NULL, &p, &err), 0);
	assert_string_equal(p.host, "fd00::1");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&p, 0x55, sizeof(p));
		if (kerberos_principal_parse(bad[i], "SIGIL.TEST", &p, &err) != SIGIL_E_INVALID)
			fail_msg("accepted bad principal %s", bad[i]);
		/* Out-parameters are written only on success. */
		assert_int_equal(((unsigned char *)&p)[0], 0x55);
	}
	assert_int_equal(kerberos_principal_parse("HTTP/web@OTHER.TEST", "SIGIL.TEST", &p, &err),
	                 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "not in realm SIGIL.TEST"));

	/* Oversized parts and names. */
	s = malloc(KERBEROS_MAX_PRINCIPAL_LEN + 100);
	assert_non_null(s);
	snprintf(s, KERBEROS_MAX_PRINCIPAL_LEN + 100, "%0*d/web@R", KERBEROS_MAX_SERVICE_LEN + 1,
	         0);
	assert_int_equal(kerberos_principal_parse(s, NULL, &p, &err), SIGIL_E_INVALID);
	memset(s, 'a', KERBEROS_MAX_PRINCIPAL_LEN + 50);
	s[KERBEROS_MAX_PRINCIPAL_LEN + 50] = '\0';
	assert_int_equal(kerberos_principal_parse(s, NULL, &p, &err), SIGIL_E_INVALID);
	free(s);
}

static void test_check_name(void **state)
{
	static const char *const good[] = {"sigil/admin", "sigil/admin@SIGIL.TEST",
	                                   "admin",       "kadmin/admin@R",
	                                   "a/b/c/d",     "host/fd00::1@R"};
	static const char *const bad[] = {
	    "",       "sigil/admin@",      "sigil//admin", "/admin", "sigil/",          "a/b/c/d/e",
	    "sp ace", "sigil/admin@lower", "x\"y",         "a\\/b",  "sigil/admin@R@S", "nl\n"};
	sigil_err err;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		sigil_err_clear(&err);
		if (kerberos_principal_check_name(good[i], &err) != 0)
			fail_msg("%s: %s", good[i], err.msg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (kerberos_principal_check_name(bad[i], &err) != SIGIL_E_INVALID)
			fail_msg("accepted bad name %s", bad[i]);
}

static void test_quote(void **state)
{
	char buf[8];

	assert_string_equal(kerberos_quote("ab\ncd", buf, sizeof(buf)), "ab?cd");
	assert_string_equal(kerberos_quote("abcdefghijkl", buf, sizeof(buf)), "abcd...");
	assert_string_equal(kerberos_quote(NULL, buf, sizeof(buf)), "(null)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_service_names), cmocka_unit_test(test_host_names),
	    cmocka_unit_test(test_realms),        cmocka_unit_test(test_build),
	    cmocka_unit_test(test_parse),         cmocka_unit_test(test_check_name),
	    cmocka_unit_test(test_quote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
