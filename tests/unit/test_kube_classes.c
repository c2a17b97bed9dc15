/* ca/server/kube_classes: SecretClass objects from the API -> class set. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ca/server/kube_classes.h"

/* A SecretClass as a real apiserver returns it (metadata it adds, no
 * status). */
static const char sigil_obj[] =
    "{\"apiVersion\":\"secrets.sigil.dev/v1alpha1\",\"kind\":\"SecretClass\","
    "\"metadata\":{\"name\":\"company\",\"uid\":\"0c0b4f5e-1\",\"resourceVersion\":\"812\","
    "\"generation\":1,\"creationTimestamp\":\"2024-05-01T10:00:00Z\","
    "\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\"},"
    "\"managedFields\":[{\"manager\":\"kubectl\",\"operation\":\"Apply\","
    "\"fieldsV1\":{\"f:spec\":{}}}]},"
    "\"spec\":{\"backend\":{\"autoTls\":{\"ca\":{\"secret\":{\"name\":\"company-ca\","
    "\"namespace\":\"sigil\"},\"autoGenerate\":false},\"maxCertificateLifetime\":\"2d\","
    "\"additionalTrustRoots\":[{\"configMap\":{\"name\":\"roots\",\"namespace\":\"sigil\"}}]}}}}";

/* Stackable's v1alpha2 with its own key generation field. */
static const char stackable_obj[] =
    "{\"apiVersion\":\"secrets.stackable.tech/v1alpha2\",\"kind\":\"SecretClass\","
    "\"metadata\":{\"name\":\"tls\",\"uid\":\"u2\",\"resourceVersion\":\"9\"},"
    "\"spec\":{\"backend\":{\"autoTls\":{\"ca\":{\"secret\":{\"name\":\"secret-provisioner-tls-"
    "ca\","
    "\"namespace\":\"stackable-operators\"},\"autoGenerate\":true,"
    "\"caCertificateLifetime\":\"730d\",\"keyGeneration\":{\"rsa\":{\"length\":3072}}}}}}}";

static const char kerberos_obj[] =
    "{\"metadata\":{\"name\":\"kerberos\"},"
    "\"spec\":{\"backend\":{\"kerberosKeytab\":{\"realmName\":\"EXAMPLE.COM\","
    "\"kdc\":\"kdc.example.com\",\"admin\":{\"mit\":{\"kadminServer\":\"kdc.example.com\"}},"
    "\"adminKeytabSecret\":{\"name\":\"kadmin-keytab\",\"namespace\":\"sigil\"},"
    "\"adminPrincipal\":\"sigil/admin\"}}}}";

static json_t *load(const char *s)
{
	json_error_t jerr;
	json_t *j = json_loads(s, 0, &jerr);

	if (!j)
		fail_msg("bad test JSON: %s", jerr.text);
	return j;
}

static void test_parse_sigil(void **state)
{
	json_t *o = load(sigil_obj);
	ca_class_config c;
	sigil_err err = {0};

	(void)state;
	assert_int_equal(kube_classes_parse_object(&kube_res_secretclasses, o, &c, &err), 0);
	assert_string_equal(c.name, "company");
	assert_int_equal(c.backend, CA_BACKEND_AUTOTLS);
	assert_true(c.has_ca_secret);
	assert_false(c.auto_generate);
	assert_string_equal(c.ca_secret.name, "company-ca");
	assert_string_equal(c.ca_secret.namespace_, "sigil");
	assert_int_equal(c.max_leaf_lifetime_secs, 2 * 86400);
	assert_int_equal(c.n_trust_roots, 1);
	assert_true(c.trust_roots[0].config_map);
	assert_string_equal(c.trust_roots[0].name, "roots");
	json_decref(o);
}

static void test_parse_stackable_and_list_items(void **state)
{
	json_t *o = load(stackable_obj);
	ca_class_config c;
	sigil_err err = {0};

	(void)state;
	assert_int_equal(kube_classes_parse_object(&kube_res_stackable_secretclasses, o, &c, &err),
	                 0);
	assert_string_equal(c.name, "tls");
	assert_true(c.auto_generate);
	assert_int_equal(c.ca_key_alg, SIGIL_KEY_RSA3072);
	assert_int_equal(c.ca_lifetime_secs, 730 * 86400);
	json_decref(o);

	/* A List's items may come without apiVersion/kind: the resource
	 * watched says what they are. */
	o = load(kerberos_obj);
	assert_int_equal(kube_classes_parse_object(&kube_res_secretclasses, o, &c, &err), 0);
	assert_int_equal(c.backend, CA_BACKEND_KERBEROS);
	assert_string_equal(c.kerberos.admin_keytab, "sigil/kadmin-keytab");
	assert_string_equal(c.kerberos.realm, "EXAMPLE.COM");
	json_decref(o);
}

static void expect_fail(const char *text, int code, const char *needle)
{
	json_t *o = load(text);
	ca_class_config c;
	sigil_err err = {0};

	assert_int_equal(kube_classes_parse_object(&kube_res_secretclasses, o, &c, &err), code);
	if (needle && !strstr(err.msg, needle))
		fail_msg("'%s' not in '%s'", needle, err.msg);
	json_decref(o);
}

static void test_parse_broken(void **state)
{
	(void)state;
	/* A typo names the class and the field. */
	expect_fail("{\"metadata\":{\"name\":\"typo\"},\"spec\":{\"backend\":{\"autoTls\":"
	            "{\"maxCertificateLifetim\":\"2d\"}}}}",
	            SIGIL_E_INVALID, "SecretClass typo (secrets.sigil.dev)");
	expect_fail("{\"metadata\":{\"name\":\"typo\"},\"spec\":{\"backend\":{\"autoTls\":"
	            "{\"maxCertificateLifetim\":\"2d\"}}}}",
	            SIGIL_E_INVALID, "maxCertificateLifetim");
	/* Truncated: no backend, no spec, no name. */
	expect_fail("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"backend\":{}}}", SIGIL_E_INVALID,
	            NULL);
	expect_fail("{\"metadata\":{\"name\":\"x\"}}", SIGIL_E_INVALID, "spec");
	expect_fail("{\"metadata\":{},\"spec\":{}}", SIGIL_E_INVALID, "metadata.name");
	/* Garbage types. */
	expect_fail("{\"metadata\":{\"name\":\"x\"},\"spec\":[1,2]}", SIGIL_E_INVALID, NULL);
	expect_fail("{\"metadata\":{\"name\":7},\"spec\":{}}", SIGIL_E_INVALID, NULL);
	expect_fail("{\"metadata\":{\"name\":\"UPPER\"},\"spec\":{\"backend\":{\"autoTls\":{}}}}",
	            SIGIL_E_INVALID, NULL);
	expect_fail("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"backend\":{\"autoTls\":{\"ca\":"
	            "{\"autoGenerate\":\"yes please\"}}}}}",
	            SIGIL_E_INVALID, NULL);
	/* k8sSearch is Stackable's, not sigil's (yet): an error, not a crash. */
	expect_fail("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"backend\":{\"k8sSearch\":"
	            "{\"searchNamespace\":{\"pod\":{}}}}}}",
	            SIGIL_E_INVALID, NULL);
	/* Non-ASCII is escaped into the YAML and refused as a name. */
	expect_fail(
	    "{\"metadata\":{\"name\":\"caf\\u00e9\"},\"spec\":{\"backend\":{\"autoTls\":{}}}}",
	    SIGIL_E_INVALID, NULL);

	/* Not an object at all. */
	{
		ca_class_config c;
		sigil_err err = {0};
		json_t *a = json_array();

		assert_int_equal(kube_classes_parse_object(&kube_res_secretclasses, a, &c, &err),
		                 SIGIL_E_INVALID);
		assert_int_equal(kube_classes_parse_object(&kube_res_secretclasses, NULL, &c, &err),
		                 SIGIL_E_INVALID);
		json_decref(a);
	}
}

static void test_parse_oversized(void **state)
{
	json_t *o =
	    load("{\"metadata\":{\"name\":\"big\"},\"spec\":{\"backend\":{\"autoTls\":{}}}}");
	size_t n = 300 * 1024;
	char *s = malloc(n + 1);
	ca_class_config c;
	sigil_err err = {0};

	(void)state;
	memset(s, 'a', n);
	s[n] = '\0';
	json_object_set_new(
	    json_object_get(json_object_get(json_object_get(o, "spec"), "backend"), "autoTls"),
	    "maxCertificateLifetime", json_string(s));
	assert_int_equal(kube_classes_parse_object(&kube_res_secretclasses, o, &c, &err),
	                 SIGIL_E_LIMIT);
	free(s);
	json_decref(o);
}

static ca_class_config mk(const char *name, int64_t lifetime)
{
	ca_class_config c;

	ca_class_config_defaults(&c, name);
	c.max_leaf_lifetime_secs = lifetime;
	return c;
}

static void test_merge(void **state)
{
	ca_class_config sig[2] = {mk("zeta", 1), mk("shared", 2)};
	ca_class_config stk[2] = {mk("shared", 3), mk("alpha", 4)};
	ca_class_config out[8];
	kube_class_error dropped[4];
	size_t n = 0, nd = 0;
	sigil_err err = {0};

	(void)state;
	assert_int_equal(
	    kube_classes_merge(sig, 2, stk, 2, NULL, 0, out, 8, &n, dropped, 4, &nd, &err), 0);
	/* sorted, built-in tls added, the sigil "shared" wins */
	assert_int_equal(n, 4);
	assert_string_equal(out[0].name, "alpha");
	assert_string_equal(out[1].name, "shared");
	assert_int_equal(out[1].max_leaf_lifetime_secs, 2);
	assert_string_equal(out[2].name, "tls");
	assert_true(out[2].auto_generate);
	assert_string_equal(out[3].name, "zeta");
	assert_int_equal(nd, 1);
	assert_string_equal(dropped[0].name, "shared");
	assert_string_equal(dropped[0].group, "secrets.stackable.tech");
	assert_int_equal(dropped[0].err.code, SIGIL_E_EXISTS);

	/* A "tls" object that did not parse: no silent fallback. */
	{
		const char *taken[] = {"tls"};

		assert_int_equal(kube_classes_merge(sig, 1, NULL, 0, taken, 1, out, 8, &n, dropped,
		                                    4, &nd, &err),
		                 0);
		assert_int_equal(n, 1);
		assert_string_equal(out[0].name, "zeta");
		assert_int_equal(nd, 0);
	}
	/* A defined tls replaces the built-in one. */
	{
		ca_class_config t = mk("tls", 99);

		assert_int_equal(
		    kube_classes_merge(NULL, 0, &t, 1, NULL, 0, out, 8, &n, NULL, 0, &nd, &err), 0);
		assert_int_equal(n, 1);
		assert_int_equal(out[0].max_leaf_lifetime_secs, 99);
	}
	/* Over the cap: the last names are reported, not silently lost. */
	assert_int_equal(
	    kube_classes_merge(sig, 2, stk, 2, NULL, 0, out, 2, &n, dropped, 4, &nd, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[1].name, "shared");
	assert_int_equal(nd, 3); /* shadowed shared, tls, zeta */
	assert_int_equal(dropped[2].err.code, SIGIL_E_LIMIT);
	assert_string_equal(dropped[2].name, "zeta");
	/* Empty cluster: only tls. */
	assert_int_equal(
	    kube_classes_merge(NULL, 0, NULL, 0, NULL, 0, out, 8, &n, NULL, 0, NULL, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(out[0].name, "tls");
	/* Bad arguments. */
	assert_int_equal(
	    kube_classes_merge(NULL, 1, NULL, 0, NULL, 0, out, 8, &n, NULL, 0, NULL, &err),
	    SIGIL_E_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_sigil),
	    cmocka_unit_test(test_parse_stackable_and_list_items),
	    cmocka_unit_test(test_parse_broken),
	    cmocka_unit_test(test_parse_oversized),
	    cmocka_unit_test(test_merge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
