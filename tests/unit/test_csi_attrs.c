#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "csi/attrs.h"

#define KV(k, v) {k, v}

static int parse(const csi_kv *kv, size_t n, csi_attrs *a, sigil_err *err)
{
	return csi_attrs_parse(kv, n, a, err);
}

static void test_defaults(void **state)
{
	csi_kv kv[] = {KV("secrets.sigil.dev/class", "tls")};
	csi_attrs a;
	sigil_err err = {0};

	assert_int_equal(parse(kv, 1, &a, &err), 0);
	assert_string_equal(a.class_name, "tls");
	assert_int_equal(a.format, CSI_FORMAT_DEFAULT);
	assert_int_equal(a.lifetime_secs, 86400);
	assert_int_equal(a.restart_buffer_secs, 6 * 3600);
	assert_true(a.jitter_factor > 0.19 && a.jitter_factor < 0.21);
	assert_false(a.public_only);
	assert_false(a.has_key_alg);
	assert_int_equal(a.renewal, CSI_RENEWAL_RESTART);
	assert_int_equal(a.n_scopes, 0);
	csi_attrs_free(&a);
}

static void test_full(void **state)
{
	csi_kv kv[] = {
		KV("secrets.sigil.dev/class", "tls"),
		KV("secrets.sigil.dev/scope", "node, pod,service=web ,listener-volume=lv-1,pod"),
		KV("secrets.sigil.dev/format", "tls-pkcs12"),
		KV("secrets.sigil.dev/provision-parts", "public"),
		KV("secrets.sigil.dev/kerberos.service.names", "HTTP,kafka"),
		KV("secrets.sigil.dev/format.compatibility.tls-pkcs12.password", "changeit"),
		KV("secrets.sigil.dev/format.tls-pkcs12.keystore-name", "ks/keystore.p12"),
		KV("secrets.sigil.dev/format.tls-pkcs12.truststore-name", "ts.p12"),
		KV("secrets.sigil.dev/format.tls-pem.cert-name", "a.crt"),
		KV("secrets.sigil.dev/format.tls-pem.key-name", "a.key"),
		KV("secrets.sigil.dev/format.tls-pem.ca-name", "a-ca.crt"),
		KV("secrets.sigil.dev/backend.autotls.cert.lifetime", "7d"),
		KV("secrets.sigil.dev/backend.autotls.cert.restart-buffer", "1d"),
		KV("secrets.sigil.dev/backend.autotls.cert.jitter-factor", "0.1"),
		KV("secrets.sigil.dev/key-algorithm", "ed25519"),
		KV("secrets.sigil.dev/renewal", "in-place"),
		KV("csi.storage.k8s.io/pod.name", "web-0"),
		KV("csi.storage.k8s.io/pod.namespace", "default"),
		KV("csi.storage.k8s.io/pod.uid", "0b5d6b2c-1111-2222-3333-444455556666"),
		KV("csi.storage.k8s.io/serviceAccount.name", "web"),
		KV("csi.storage.k8s.io/ephemeral", "true"),
		KV("other.example.com/ignored", "anything"),
	};
	csi_attrs a;
	sigil_err err = {0};

	assert_int_equal(parse(kv, sizeof(kv) / sizeof(kv[0]), &a, &err), 0);
	assert_int_equal(a.n_scopes, 4); /* the repeated pod scope is dropped */
	assert_int_equal(a.scopes[0].kind, CA_SCOPE_NODE);
	assert_int_equal(a.scopes[1].kind, CA_SCOPE_POD);
	assert_int_equal(a.scopes[2].kind, CA_SCOPE_SERVICE);
	assert_string_equal(a.scopes[2].name, "web");
	assert_int_equal(a.scopes[3].kind, CA_SCOPE_LISTENER_VOLUME);
	assert_string_equal(a.scopes[3].name, "lv-1");
	assert_int_equal(a.format, CSI_FORMAT_TLS_PKCS12);
	assert_true(a.public_only);
	assert_int_equal(a.n_service_names, 2);
	assert_string_equal(a.service_names[1], "kafka");
	assert_string_equal(a.password, "changeit");
	assert_string_equal(a.keystore_name, "ks/keystore.p12");
	assert_int_equal(a.lifetime_secs, 7 * 86400);
	assert_int_equal(a.restart_buffer_secs, 86400);
	assert_true(a.has_key_alg);
	assert_int_equal(a.key_alg, SIGIL_KEY_ED25519);
	assert_int_equal(a.renewal, CSI_RENEWAL_IN_PLACE);
	assert_string_equal(a.pod_name, "web-0");
	assert_string_equal(a.pod_namespace, "default");
	assert_true(a.ephemeral);
	assert_false(a.stackable_keys);
	ks_options o;
	csi_attrs_ks_options(&a, &o);
	assert_string_equal(o.pem_ca_name, "a-ca.crt");
	ks_format f;
	assert_true(csi_format_to_ks(a.format, &f));
	assert_int_equal(f, KS_FORMAT_PKCS12);
	csi_attrs_free(&a);
}

static void test_stackable_prefix(void **state)
{
	csi_kv kv[] = {
		KV("secrets.stackable.tech/class", "tls"),
		KV("secrets.stackable.tech/scope", "pod,node"),
		KV("secrets.stackable.tech/format", "tls-pem"),
		KV("secrets.sigil.dev/class", "tls"), /* same value: fine */
	};
	csi_attrs a;
	sigil_err err = {0};

	assert_int_equal(parse(kv, 4, &a, &err), 0);
	assert_true(a.stackable_keys);
	assert_int_equal(a.n_scopes, 2);
	csi_attrs_free(&a);
}

static void expect_error(const csi_kv *kv, size_t n, int code, const char *needle)
{
	csi_attrs a;
	sigil_err err = {0};
	int r = parse(kv, n, &a, &err);

	if (r != code || !strstr(err.msg, needle))
		fail_msg("expected %d containing '%s', got %d: %s", code, needle, r, err.msg);
}

static void test_errors(void **state)
{
	csi_kv no_class[] = {KV("secrets.sigil.dev/format", "tls-pem")};
	expect_error(no_class, 1, SIGIL_E_INVALID, "class' is required");

	csi_kv unknown[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/colour", "red")};
	expect_error(unknown, 2, SIGIL_E_INVALID, "unknown volume attribute 'secrets.sigil.dev/colour'");

	/* sigil-only keys are unknown under the Stackable prefix. */
	csi_kv st_only[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.stackable.tech/renewal", "in-place")};
	expect_error(st_only, 2, SIGIL_E_INVALID, "secrets.stackable.tech/renewal");

	csi_kv conflict[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.stackable.tech/class", "other")};
	expect_error(conflict, 2, SIGIL_E_INVALID, "given twice");

	csi_kv bad_fmt[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/format", "pfx")};
	expect_error(bad_fmt, 2, SIGIL_E_INVALID, "unknown format 'pfx'");

	csi_kv bad_scope[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/scope", "cluster")};
	expect_error(bad_scope, 2, SIGIL_E_INVALID, "unknown scope 'cluster'");

	csi_kv bad_svc[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/scope", "service=Bad_Name")};
	expect_error(bad_svc, 2, SIGIL_E_INVALID, "'Bad_Name' is not a valid");

	csi_kv bad_dur[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/backend.autotls.cert.lifetime", "soon")};
	expect_error(bad_dur, 2, SIGIL_E_INVALID, "backend.autotls.cert.lifetime");

	csi_kv short_life[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/backend.autotls.cert.lifetime", "10s")};
	expect_error(short_life, 2, SIGIL_E_INVALID, "minimum");

	csi_kv buf[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/backend.autotls.cert.lifetime", "1h"),
			KV("secrets.sigil.dev/backend.autotls.cert.restart-buffer", "2h")};
	expect_error(buf, 3, SIGIL_E_INVALID, "restart-buffer");

	csi_kv jitter[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/backend.autotls.cert.jitter-factor", "1.0")};
	expect_error(jitter, 2, SIGIL_E_INVALID, "jitter-factor");

	csi_kv alg[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/key-algorithm", "dsa-1024")};
	expect_error(alg, 2, SIGIL_E_INVALID, "dsa-1024");

	csi_kv traversal[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/format.tls-pem.key-name", "../../etc/shadow")};
	expect_error(traversal, 2, SIGIL_E_INVALID, "not a safe file name");

	csi_kv abs[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/format.tls-pem.cert-name", "/etc/x")};
	expect_error(abs, 2, SIGIL_E_INVALID, "not a safe file name");

	csi_kv ctrl[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/scope", "pod\n")};
	expect_error(ctrl, 2, SIGIL_E_INVALID, "control characters");

	csi_kv pod[] = {KV("secrets.sigil.dev/class", "tls"), KV("csi.storage.k8s.io/pod.name", "../x")};
	expect_error(pod, 2, SIGIL_E_INVALID, "pod.name");

	csi_kv krb[] = {KV("secrets.sigil.dev/class", "kdc"), KV("secrets.sigil.dev/kerberos.service.names", "HTTP,bad/name")};
	expect_error(krb, 2, SIGIL_E_INVALID, "bad/name");
}

static void test_limits(void **state)
{
	static char big[CSI_MAX_ATTR_LEN + 2];
	static char scopes[4096];
	static char longkey[CSI_MAX_ATTR_KEY_LEN + 10];
	csi_kv many[CSI_MAX_ATTRS + 1];

	memset(big, 'a', sizeof(big) - 1);
	csi_kv k1[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/format.tls-pem.cert-name", big)};
	expect_error(k1, 2, SIGIL_E_LIMIT, "longer than");

	scopes[0] = '\0';
	for (int i = 0; i < CSI_MAX_SCOPES + 1; i++) {
		char item[32];
		snprintf(item, sizeof(item), "%sservice=s%d", i ? "," : "", i);
		strcat(scopes, item);
	}
	csi_kv k2[] = {KV("secrets.sigil.dev/class", "tls"), KV("secrets.sigil.dev/scope", scopes)};
	expect_error(k2, 2, SIGIL_E_LIMIT, "more than");

	for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++)
		many[i] = (csi_kv)KV("secrets.sigil.dev/class", "tls");
	expect_error(many, CSI_MAX_ATTRS + 1, SIGIL_E_LIMIT, "too many");

	memset(longkey, 'k', sizeof(longkey) - 1);
	csi_kv k3[] = {KV(longkey, "v")};
	expect_error(k3, 1, SIGIL_E_LIMIT, "too long");

	csi_kv k4[] = {KV(NULL, "v")};
	expect_error(k4, 1, SIGIL_E_INVALID, "without key");
}

static void test_default_restart_buffer_shrinks(void **state)
{
	csi_kv kv[] = {KV("secrets.sigil.dev/class", "tls"),
		       KV("secrets.sigil.dev/backend.autotls.cert.lifetime", "1h")};
	csi_attrs a;
	sigil_err err = {0};

	assert_int_equal(parse(kv, 2, &a, &err), 0);
	assert_int_equal(a.restart_buffer_secs, 900);
	csi_attrs_free(&a);
}

/* The CA capped the lifetime (class maxCertificateLifetime 1h) below the
 * default 6h buffer: the buffer that applies fits the issued certificate,
 * so the pod is not evicted as soon as it starts. */
static void test_restart_buffer_fits_issued_lifetime(void **state)
{
	csi_kv kv[] = {KV("secrets.sigil.dev/class", "tls")};
	csi_kv kv2[] = {KV("secrets.sigil.dev/class", "tls"),
			KV("secrets.sigil.dev/backend.autotls.cert.restart-buffer", "2h"),
			KV("secrets.sigil.dev/backend.autotls.cert.lifetime", "3d")};
	csi_attrs a;
	sigil_err err = {0};

	assert_int_equal(parse(kv, 1, &a, &err), 0);
	assert_int_equal(a.restart_buffer_secs, 6 * 3600);
	/* 24h issued: 6h applies. */
	assert_int_equal(csi_attrs_restart_buffer(&a, 1000, 1000 + 86400), 6 * 3600);
	/* 1h issued: a quarter of it. */
	assert_int_equal(csi_attrs_restart_buffer(&a, 1000, 1000 + 3600), 900);
	/* exactly 6h issued: would evict at once; a quarter. */
	assert_int_equal(csi_attrs_restart_buffer(&a, 0, 6 * 3600), 6 * 3600 / 4);
	/* nonsense times: the configured buffer, unchanged. */
	assert_int_equal(csi_attrs_restart_buffer(&a, 5000, 4000), 6 * 3600);
	csi_attrs_free(&a);
	/* An explicit buffer that the capped certificate cannot hold shrinks too. */
	assert_int_equal(parse(kv2, 3, &a, &err), 0);
	assert_int_equal(csi_attrs_restart_buffer(&a, 0, 86400), 2 * 3600);
	assert_int_equal(csi_attrs_restart_buffer(&a, 0, 3600), 900);
	csi_attrs_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_stackable_prefix),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_default_restart_buffer_shrinks),
		cmocka_unit_test(test_restart_buffer_fits_issued_lifetime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
