#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kerberos/krb5conf.h"

static void test_render_exact(void **state)
{
	kerberos_krb5conf c = {
	    .realm = "SIGIL.TEST",
	    .kdc = "krb5-kdc.default.svc.cluster.local:88",
	    .admin_server = "krb5-kdc.default.svc.cluster.local",
	};
	sigil_err err = {0};
	char *out = NULL;
	size_t len;

	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), 0);
	assert_string_equal(out, "[libdefaults]\n"
	                         "\tdefault_realm = SIGIL.TEST\n"
	                         "\trdns = false\n"
	                         "\tdns_canonicalize_hostname = false\n"
	                         "\tudp_preference_limit = 1\n"
	                         "\tdns_lookup_kdc = false\n"
	                         "\tdns_lookup_realm = false\n"
	                         "\n"
	                         "[realms]\n"
	                         "\tSIGIL.TEST = {\n"
	                         "\t\tkdc = krb5-kdc.default.svc.cluster.local:88\n"
	                         "\t\tadmin_server = krb5-kdc.default.svc.cluster.local\n"
	                         "\t}\n"
	                         "\n"
	                         "[domain_realm]\n"
	                         "\tcluster.local = SIGIL.TEST\n"
	                         "\t.cluster.local = SIGIL.TEST\n");
	assert_int_equal(len, strlen(out));
	free(out);
}

static void test_render_domain_and_no_admin(void **state)
{
	kerberos_krb5conf c = {
	    .realm = "EXAMPLE.COM",
	    .kdc = "[fd00::5]:750",
	    .cluster_domain = "k8s.example.com",
	};
	sigil_err err = {0};
	char *out = NULL;
	size_t len;

	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), 0);
	assert_non_null(strstr(out, "\t\tkdc = [fd00::5]:750\n"));
	assert_null(strstr(out, "admin_server"));
	assert_non_null(
	    strstr(out, "\tk8s.example.com = EXAMPLE.COM\n\t.k8s.example.com = EXAMPLE.COM\n"));
	assert_null(strstr(out, "cluster.local"));
	free(out);
}

static void test_servers(void **state)
{
	static const char *const good[] = {
	    "kdc",          "kdc:88", "KDC.Example.COM:88", "10.0.0.1",
	    "10.0.0.1:749", "[::1]",  "[fd00::1]:88",       "a.b.c:65535",
	};
	static const char *const bad[] = {
	    "",         ":88",    "kdc:",          "kdc:0",      "kdc:65536", "kdc:088",
	    "kdc:+88",  "kdc:8a", "kdc:123456",    "fd00::1",    "[fd00::1",  "[fd00::1]x",
	    "[kdc]:88", "kdc 88", "kdc\n[realms]", "kdc:88\n",   "kdc:\n88",  "kdc:88:99",
	    "kdc/88",   "kdc}",   "-kdc",          "kdc..local", "kdc;x",
	};
	sigil_err err;
	char longname[400];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		sigil_err_clear(&err);
		if (kerberos_krb5conf_check_server(good[i], &err) != 0)
			fail_msg("%s: %s", good[i], err.msg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (kerberos_krb5conf_check_server(bad[i], &err) != SIGIL_E_INVALID)
			fail_msg("accepted bad server \"%s\"", bad[i]);
	assert_int_equal(kerberos_krb5conf_check_server(NULL, &err), SIGIL_E_INVALID);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(kerberos_krb5conf_check_server(longname, &err), SIGIL_E_INVALID);
}

static void test_render_refuses_injection(void **state)
{
	kerberos_krb5conf c = {.realm = "R", .kdc = "kdc"};
	sigil_err err = {0};
	char *out = (char *)0x1;
	size_t len = 99;

	c.realm = "R\n[libdefaults]";
	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), SIGIL_E_INVALID);
	c.realm = "lower";
	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), SIGIL_E_INVALID);
	c.realm = "R";
	c.kdc = "kdc\n\tadmin_server = evil";
	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "kdc: "));
	c.kdc = NULL;
	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), SIGIL_E_INVALID);
	c.kdc = "kdc";
	c.admin_server = "x y";
	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "admin server: "));
	c.admin_server = NULL;
	c.cluster_domain = "Cluster.Local";
	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), SIGIL_E_INVALID);
	c.cluster_domain = ".cluster.local";
	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), SIGIL_E_INVALID);
	c.cluster_domain = "10.0.0.1";
	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), SIGIL_E_INVALID);
	c.cluster_domain = "fd00::1";
	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), SIGIL_E_INVALID);
	c.cluster_domain = "";
	assert_int_equal(kerberos_krb5conf_render(&c, &out, &len, &err), SIGIL_E_INVALID);
	/* Out-parameters untouched on failure. */
	assert_ptr_equal(out, (char *)0x1);
	assert_int_equal(len, 99);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render_exact),
	    cmocka_unit_test(test_render_domain_and_no_admin),
	    cmocka_unit_test(test_servers),
	    cmocka_unit_test(test_render_refuses_injection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
