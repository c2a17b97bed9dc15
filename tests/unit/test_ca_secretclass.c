/* SecretClass YAML: every backend, Stackable's manifests, defaults, each
 * error with its document, path and line, limits, and directories. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/secretclass.h"
#include "util/fs.h"
#include "util/mem.h"

#define DAY 86400

static int parse(const char *yaml, ca_class_config *out, size_t max, size_t *n, sigil_err *err)
{
	return ca_secretclass_parse_yaml(yaml, strlen(yaml), out, max, n, err);
}

/* Parses exactly one class. */
static void parse_one(const char *yaml, ca_class_config *c)
{
	sigil_err err = {0};
	size_t n = 0;
	int r = parse(yaml, c, 1, &n, &err);

	if (r != 0)
		fail_msg("unexpected error: %s", err.msg);
	assert_int_equal(n, 1);
}

/* Expects code, every needle in the message, and untouched out-params. */
static void expect_error(const char *yaml, int code, const char *needle1, const char *needle2)
{
	ca_class_config c[2];
	sigil_err err = {0};
	size_t n = 99;
	int r;

	memset(c, 0xA5, sizeof(c));
	r = parse(yaml, c, 2, &n, &err);
	if (r != code)
		fail_msg("expected %s, got %s (%s) for:\n%s", sigil_errcode_name(code),
		         sigil_errcode_name(r), err.msg, yaml);
	assert_int_equal(n, 99);
	assert_int_equal(((unsigned char *)c)[0], 0xA5);
	assert_int_equal(((unsigned char *)c)[sizeof(c) - 1], 0xA5);
	if (needle1 && !strstr(err.msg, needle1))
		fail_msg("\"%s\" not in \"%s\"", needle1, err.msg);
	if (needle2 && !strstr(err.msg, needle2))
		fail_msg("\"%s\" not in \"%s\"", needle2, err.msg);
}

/* ---- backends, round trip ------------------------------------------------- */

static void test_autotls_all_fields(void **state)
{
	ca_class_config c;

	parse_one("apiVersion: secrets.sigil.dev/v1alpha1\n"
	          "kind: SecretClass\n"
	          "metadata:\n"
	          "  name: company-tls\n"
	          "spec:\n"
	          "  backend:\n"
	          "    autoTls:\n"
	          "      ca:\n"
	          "        secret: {name: secret-provisioner-tls-ca, namespace: default}\n"
	          "        autoGenerate: true\n"
	          "        caCertificateLifetime: 730d\n"
	          "        caCertificateRetirementDuration: 2h\n"
	          "        keyAlgorithm: ecdsa-p384\n"
	          "      additionalTrustRoots:\n"
	          "        - secret: {name: company-root, namespace: default}\n"
	          "        - configMap:\n"
	          "            name: partner-roots.v2\n"
	          "            namespace: kube-public\n"
	          "      maxCertificateLifetime: 7d\n"
	          "      keyAlgorithm: ed25519\n"
	          "  namePolicy:\n"
	          "    allowWildcards: true\n"
	          "    allowedDomains: [svc.cluster.local, example.com]\n",
	          &c);
	assert_string_equal(c.name, "company-tls");
	assert_int_equal(c.backend, CA_BACKEND_AUTOTLS);
	assert_true(c.has_ca_secret);
	assert_string_equal(c.ca_secret.name, "secret-provisioner-tls-ca");
	assert_string_equal(c.ca_secret.namespace_, "default");
	assert_false(c.ca_secret.config_map);
	assert_true(c.auto_generate);
	assert_int_equal(c.ca_lifetime_secs, 730 * DAY);
	assert_int_equal(c.retirement_secs, 2 * 3600);
	assert_int_equal(c.ca_key_alg, SIGIL_KEY_ECDSA_P384);
	assert_int_equal(c.leaf_key_alg, SIGIL_KEY_ED25519);
	assert_int_equal(c.max_leaf_lifetime_secs, 7 * DAY);
	assert_int_equal(c.n_trust_roots, 2);
	assert_string_equal(c.trust_roots[0].name, "company-root");
	assert_string_equal(c.trust_roots[0].namespace_, "default");
	assert_false(c.trust_roots[0].config_map);
	assert_string_equal(c.trust_roots[1].name, "partner-roots.v2");
	assert_string_equal(c.trust_roots[1].namespace_, "kube-public");
	assert_true(c.trust_roots[1].config_map);
	assert_true(c.allow_wildcards);
	assert_int_equal(c.n_allowed_domains, 2);
	assert_string_equal(c.allowed_domains[0], "svc.cluster.local");
	assert_string_equal(c.allowed_domains[1], "example.com");
}

static void test_autotls_key_generation(void **state)
{
	ca_class_config c;
	static const struct {
		const char *len;
		sigil_keyalg alg;
	} cases[] = {
	    {"2048", SIGIL_KEY_RSA2048},
	    {"3072", SIGIL_KEY_RSA3072},
	    {"4096", SIGIL_KEY_RSA4096},
	};

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(cases); i++) {
		char yaml[512];
		snprintf(yaml, sizeof(yaml),
		         "apiVersion: secrets.stackable.tech/v1alpha2\n"
		         "kind: SecretClass\n"
		         "metadata: {name: tls}\n"
		         "spec:\n"
		         "  backend:\n"
		         "    autoTls:\n"
		         "      ca:\n"
		         "        secret: {name: ca, namespace: default}\n"
		         "        keyGeneration:\n"
		         "          rsa:\n"
		         "            length: %s\n",
		         cases[i].len);
		parse_one(yaml, &c);
		assert_int_equal(c.ca_key_alg, cases[i].alg);
		/* Stackable makes leaf keys with keyGeneration too. */
		assert_int_equal(c.leaf_key_alg, cases[i].alg);
		assert_false(c.auto_generate); /* Stackable's default with ca.secret */
	}
	/* sigil's autoTls.keyAlgorithm wins for leaves. */
	parse_one("apiVersion: secrets.stackable.tech/v1alpha2\n"
	          "kind: SecretClass\n"
	          "metadata: {name: tls}\n"
	          "spec:\n"
	          "  backend:\n"
	          "    autoTls:\n"
	          "      keyAlgorithm: ecdsa-p256\n"
	          "      ca: {keyGeneration: {rsa: {length: 4096}}}\n",
	          &c);
	assert_int_equal(c.ca_key_alg, SIGIL_KEY_RSA4096);
	assert_int_equal(c.leaf_key_alg, SIGIL_KEY_ECDSA_P256);
}

static void test_external_cfssl(void **state)
{
	ca_class_config c;

	parse_one("apiVersion: secrets.sigil.dev/v1alpha1\n"
	          "kind: SecretClass\n"
	          "metadata:\n"
	          "  name: company\n"
	          "spec:\n"
	          "  backend:\n"
	          "    externalCa:\n"
	          "      cfssl:\n"
	          "        url: https://cfssl.example:8888\n"
	          "        caFile: /etc/sigil/cfssl-ca.pem\n"
	          "        authKeyFile: /etc/sigil/cfssl.key\n"
	          "        profile: server\n"
	          "        timeout: 30s\n"
	          "      keyAlgorithm: rsa-3072\n"
	          "      maxCertificateLifetime: 2d\n"
	          "  namePolicy:\n"
	          "    allowedDomains:\n"
	          "      - example.com\n",
	          &c);
	assert_string_equal(c.name, "company");
	assert_int_equal(c.backend, CA_BACKEND_EXTERNAL);
	assert_int_equal(c.external.kind, CA_EXTERNAL_CFSSL);
	assert_string_equal(c.external.url, "https://cfssl.example:8888");
	assert_string_equal(c.external.ca_file, "/etc/sigil/cfssl-ca.pem");
	assert_string_equal(c.external.auth_key_file, "/etc/sigil/cfssl.key");
	assert_string_equal(c.external.profile, "server");
	assert_int_equal(c.external.timeout_ms, 30000);
	assert_int_equal(c.leaf_key_alg, SIGIL_KEY_RSA3072);
	assert_int_equal(c.max_leaf_lifetime_secs, 2 * DAY);
	assert_false(c.auto_generate);
	assert_false(c.allow_wildcards);
	assert_int_equal(c.n_allowed_domains, 1);
	assert_string_equal(c.allowed_domains[0], "example.com");

	/* Only a URL: defaults. */
	parse_one("apiVersion: secrets.sigil.dev/v1alpha1\n"
	          "kind: SecretClass\n"
	          "metadata: {name: company}\n"
	          "spec: {backend: {externalCa: {cfssl: {url: 'http://127.0.0.1:8888'}}}}\n",
	          &c);
	assert_string_equal(c.external.url, "http://127.0.0.1:8888");
	assert_string_equal(c.external.ca_file, "");
	assert_string_equal(c.external.auth_key_file, "");
	assert_string_equal(c.external.profile, "");
	assert_int_equal(c.external.timeout_ms, 10000);
	assert_int_equal(c.leaf_key_alg, SIGIL_KEY_ECDSA_P256);
	assert_int_equal(c.max_leaf_lifetime_secs, 15 * DAY);
}

static void test_external_vault(void **state)
{
	ca_class_config c;

	parse_one("apiVersion: secrets.sigil.dev/v1alpha1\n"
	          "kind: SecretClass\n"
	          "metadata:\n"
	          "  name: vault\n"
	          "spec:\n"
	          "  backend:\n"
	          "    externalCa:\n"
	          "      vault:\n"
	          "        url: https://vault:8200\n"
	          "        caFile: /etc/sigil/vault-ca.pem\n"
	          "        tokenFile: /run/secrets/vault-token\n"
	          "        mount: pki/intermediate\n"
	          "        role: sigil_leaf-1.0\n"
	          "        timeout: 1m\n",
	          &c);
	assert_int_equal(c.backend, CA_BACKEND_EXTERNAL);
	assert_int_equal(c.external.kind, CA_EXTERNAL_VAULT);
	assert_string_equal(c.external.url, "https://vault:8200");
	assert_string_equal(c.external.ca_file, "/etc/sigil/vault-ca.pem");
	assert_string_equal(c.external.token_file, "/run/secrets/vault-token");
	assert_string_equal(c.external.mount, "pki/intermediate");
	assert_string_equal(c.external.role, "sigil_leaf-1.0");
	assert_int_equal(c.external.timeout_ms, 60000);

	parse_one("apiVersion: secrets.sigil.dev/v1alpha1\n"
	          "kind: SecretClass\n"
	          "metadata: {name: vault}\n"
	          "spec:\n"
	          "  backend:\n"
	          "    externalCa:\n"
	          "      vault: {url: 'https://vault:8200', tokenFile: /t, role: sigil}\n",
	          &c);
	assert_string_equal(c.external.mount, "pki");
	assert_int_equal(c.external.timeout_ms, 10000);
}

static void test_kerberos(void **state)
{
	ca_class_config c;

	parse_one("apiVersion: secrets.sigil.dev/v1alpha1\n"
	          "kind: SecretClass\n"
	          "metadata:\n"
	          "  name: kerberos\n"
	          "spec:\n"
	          "  backend:\n"
	          "    kerberosKeytab:\n"
	          "      realmName: EXAMPLE.COM\n"
	          "      kdc: kdc.example.com:88\n"
	          "      admin:\n"
	          "        mit:\n"
	          "          kadminServer: kadmin.example.com:749\n"
	          "      adminKeytabSecret: /etc/sigil/admin.keytab\n"
	          "      adminPrincipal: sigil/admin@EXAMPLE.COM\n",
	          &c);
	assert_int_equal(c.backend, CA_BACKEND_KERBEROS);
	assert_string_equal(c.kerberos.realm, "EXAMPLE.COM");
	assert_string_equal(c.kerberos.kdc, "kdc.example.com:88");
	assert_string_equal(c.kerberos.admin_server, "kadmin.example.com:749");
	assert_string_equal(c.kerberos.admin_keytab, "/etc/sigil/admin.keytab");
	assert_string_equal(c.kerberos.admin_principal, "sigil/admin@EXAMPLE.COM");
	assert_false(c.auto_generate);
}

/* ---- Stackable's own manifests --------------------------------------------- */

/* The classes of Stackable's documentation (the built-in `tls` class and a
 * kerberos class), as one multi-document file, with the v1alpha2 group. */
static const char stackable_manifests[] =
    "---\n"
    "apiVersion: secrets.stackable.tech/v1alpha2\n"
    "kind: SecretClass\n"
    "metadata:\n"
    "  name: tls\n"
    "  labels:\n"
    "    app.kubernetes.io/name: secret-operator\n"
    "  annotations:\n"
    "    meta.helm.sh/release-name: secret-operator\n"
    "spec:\n"
    "  backend:\n"
    "    autoTls:\n"
    "      ca:\n"
    "        secret:\n"
    "          name: secret-provisioner-tls-ca\n"
    "          namespace: stackable-operators\n"
    "        autoGenerate: true\n"
    "---\n"
    "apiVersion: secrets.stackable.tech/v1alpha2\n"
    "kind: SecretClass\n"
    "metadata:\n"
    "  name: kerberos-default\n"
    "spec:\n"
    "  backend:\n"
    "    kerberosKeytab:\n"
    "      realmName: CLUSTER.LOCAL\n"
    "      kdc: krb5-kdc.default.svc.cluster.local\n"
    "      admin:\n"
    "        mit:\n"
    "          kadminServer: krb5-kdc.default.svc.cluster.local\n"
    "      adminKeytabSecret:\n"
    "        namespace: default\n"
    "        name: secret-operator-keytab\n"
    "      adminPrincipal: stackable-secret-operator\n"
    "status:\n"
    "  conditions: []\n"
    "---\n";

static void test_stackable_manifests(void **state)
{
	ca_class_config c[4];
	sigil_err err = {0};
	size_t n = 0;

	assert_int_equal(parse(stackable_manifests, c, 4, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(c[0].name, "tls");
	assert_int_equal(c[0].backend, CA_BACKEND_AUTOTLS);
	assert_true(c[0].has_ca_secret);
	assert_string_equal(c[0].ca_secret.name, "secret-provisioner-tls-ca");
	assert_string_equal(c[0].ca_secret.namespace_, "stackable-operators");
	assert_true(c[0].auto_generate);
	assert_int_equal(c[0].ca_lifetime_secs, 365 * DAY);
	assert_int_equal(c[0].retirement_secs, 3600);
	assert_int_equal(c[0].max_leaf_lifetime_secs, 15 * DAY);

	assert_string_equal(c[1].name, "kerberos-default");
	assert_int_equal(c[1].backend, CA_BACKEND_KERBEROS);
	assert_string_equal(c[1].kerberos.realm, "CLUSTER.LOCAL");
	assert_string_equal(c[1].kerberos.kdc, "krb5-kdc.default.svc.cluster.local");
	assert_string_equal(c[1].kerberos.admin_server, "krb5-kdc.default.svc.cluster.local");
	/* A Secret reference is stored as "<namespace>/<name>". */
	assert_string_equal(c[1].kerberos.admin_keytab, "default/secret-operator-keytab");
	assert_string_equal(c[1].kerberos.admin_principal, "stackable-secret-operator");

	/* Porting means changing the group only. */
	char *sigil = strdup(stackable_manifests);
	char *p;
	assert_non_null(sigil);
	while ((p = strstr(sigil, "secrets.stackable.tech/v1alpha2")) != NULL)
		memcpy(p, "secrets.sigil.dev/v1alpha1     ", 31);
	assert_int_equal(parse(sigil, c, 4, &n, &err), 0);
	assert_int_equal(n, 2);
	free(sigil);
}

/* ---- defaults ----------------------------------------------------------------- */

static void test_defaults(void **state)
{
	ca_class_config c, d;

	parse_one("apiVersion: secrets.sigil.dev/v1alpha1\n"
	          "kind: SecretClass\n"
	          "metadata: {name: tls}\n"
	          "spec:\n"
	          "  backend:\n"
	          "    autoTls: {}\n",
	          &c);
	ca_class_config_defaults(&d, "tls");
	assert_memory_equal(&c, &d, sizeof(c));
	assert_true(c.auto_generate); /* no ca.secret: sigil generates */
	assert_false(c.has_ca_secret);
	assert_int_equal(c.ca_key_alg, SIGIL_KEY_ECDSA_P256);
	assert_int_equal(c.ca_lifetime_secs, 365 * DAY);
	assert_int_equal(c.retirement_secs, 3600);
	assert_int_equal(c.max_leaf_lifetime_secs, 15 * DAY);

	/* A ca.secret alone: Stackable's autoGenerate default, false. */
	parse_one("apiVersion: secrets.sigil.dev/v1alpha1\n"
	          "kind: SecretClass\n"
	          "metadata: {name: tls}\n"
	          "spec: {backend: {autoTls: {ca: {secret: {name: x, namespace: y}}}}}\n",
	          &c);
	assert_true(c.has_ca_secret);
	assert_false(c.auto_generate);

	/* Explicit false without a Secret: the store must hold a CA already. */
	parse_one("apiVersion: secrets.sigil.dev/v1alpha1\n"
	          "kind: SecretClass\n"
	          "metadata: {name: tls}\n"
	          "spec: {backend: {autoTls: {ca: {autoGenerate: false}}}}\n",
	          &c);
	assert_false(c.auto_generate);

	/* Null fields are unset fields (Kubernetes); unknown metadata ignored;
	 * comments, quoting styles and a BOM are plain YAML. */
	parse_one(
	    "\xEF\xBB\xBF# a comment\n"
	    "apiVersion: \"secrets.sigil.dev/v1alpha1\"\n"
	    "kind: 'SecretClass'\n"
	    "metadata:\n"
	    "  name: tls\n"
	    "  uid: 8d0c6f0e\n"
	    "  managedFields: [{manager: kubectl, fieldsV1: {\"f:spec\": {\"f:backend\": {}}}}]\n"
	    "spec:\n"
	    "  backend:\n"
	    "    autoTls:\n"
	    "      ca: ~\n"
	    "      maxCertificateLifetime: null\n"
	    "      additionalTrustRoots: []\n"
	    "    kerberosKeytab: null\n"
	    "  namePolicy: {allowWildcards: FALSE, allowedDomains: []}\n",
	    &c);
	assert_memory_equal(&c, &d, sizeof(c));
}

/* ---- errors --------------------------------------------------------------- */

#define HEAD                                                                                       \
	"apiVersion: secrets.sigil.dev/v1alpha1\n"                                                 \
	"kind: SecretClass\n"                                                                      \
	"metadata:\n"                                                                              \
	"  name: tls\n"                                                                            \
	"spec:\n"                                                                                  \
	"  backend:\n"

static void test_error_unknown_fields(void **state)
{
	expect_error(HEAD "    autoTls:\n"
	                  "      ca:\n"
	                  "        caCertificateLifetme: 10d\n",
	             SIGIL_E_INVALID, "spec.backend.autoTls.ca.caCertificateLifetme (line 9)",
	             "unknown field");
	expect_error(HEAD "    autoTls: {}\n"
	                  "  namePolicy: {allowWildcard: true}\n",
	             SIGIL_E_INVALID, "spec.namePolicy.allowWildcard (line 8)", "unknown field");
	expect_error(HEAD "    autoTls: {}\n"
	                  "  extra: 1\n",
	             SIGIL_E_INVALID, "spec.extra (line 8)", NULL);
	expect_error(HEAD "    autoTls: {}\n"
	                  "spek: {}\n",
	             SIGIL_E_INVALID, "document 1: spek (line 8)", "unknown field");
	expect_error(HEAD "    kerberosKeytab:\n"
	                  "      realmName: X\n"
	                  "      kdc: k\n"
	                  "      admin: {mit: {kadminServer: k, port: 1}}\n",
	             SIGIL_E_INVALID, "spec.backend.kerberosKeytab.admin.mit.port (line 10)", NULL);
	expect_error(HEAD "    externalCa: {cfssl: {url: 'https://x', caFil: /x}}\n",
	             SIGIL_E_INVALID, "spec.backend.externalCa.cfssl.caFil (line 7)", NULL);
	expect_error(HEAD "    autoTls:\n"
	                  "      additionalTrustRoots:\n"
	                  "        - secret: {name: a, namespace: b, key: ca.crt}\n",
	             SIGIL_E_INVALID, "additionalTrustRoots[0].secret.key (line 9)", NULL);
	/* Keys that print badly are shown safely. */
	expect_error(HEAD "    autoTls: {\"a\\e[31mb\": 1}\n", SIGIL_E_INVALID,
	             "spec.backend.autoTls.a?[31mb", NULL);
	/* Twice the same key is a typo waiting to happen. */
	expect_error(HEAD "    autoTls:\n"
	                  "      maxCertificateLifetime: 1d\n"
	                  "      maxCertificateLifetime: 2d\n",
	             SIGIL_E_INVALID, "spec.backend.autoTls.maxCertificateLifetime (line 9)",
	             "twice");
	expect_error("apiVersion: secrets.sigil.dev/v1alpha1\n"
	             "kind: SecretClass\n"
	             "metadata: {name: a, name: b}\n"
	             "spec: {backend: {autoTls: {}}}\n",
	             SIGIL_E_INVALID, "metadata.name (line 3)", "twice");
	expect_error(HEAD "    autoTls: {[a]: 1}\n", SIGIL_E_INVALID, "keys must be strings", NULL);
}

static void test_error_backends(void **state)
{
	expect_error(HEAD "    autoTls: {}\n"
	                  "    kerberosKeytab: {realmName: X}\n",
	             SIGIL_E_INVALID, "spec.backend (line 7)",
	             "only one backend may be set, found autoTls and kerberosKeytab");
	expect_error(HEAD "    {}\n", SIGIL_E_INVALID, "spec.backend", "no backend");
	expect_error(HEAD "    autoTls:\n", SIGIL_E_INVALID, "spec.backend", "no backend");
	expect_error("apiVersion: secrets.sigil.dev/v1alpha1\n"
	             "kind: SecretClass\n"
	             "metadata: {name: tls}\n"
	             "spec: {}\n",
	             SIGIL_E_INVALID, "spec.backend", "required");
	expect_error("apiVersion: secrets.sigil.dev/v1alpha1\n"
	             "kind: SecretClass\n"
	             "metadata: {name: tls}\n",
	             SIGIL_E_INVALID, "spec", "required");
	expect_error(HEAD "    k8sSearch:\n"
	                  "      searchNamespace: {pod: {}}\n",
	             SIGIL_E_INVALID, "spec.backend.k8sSearch (line 8)",
	             "k8sSearch backend is not supported by sigil yet");
	expect_error(HEAD "    experimentalCertManager: {issuer: {kind: Issuer, name: x}}\n",
	             SIGIL_E_INVALID, "not supported by sigil yet", NULL);
	expect_error(HEAD "    externalCa: {}\n", SIGIL_E_INVALID, "spec.backend.externalCa",
	             "exactly one of cfssl or vault");
	expect_error(HEAD "    externalCa:\n"
	                  "      cfssl: {url: 'https://a'}\n"
	                  "      vault: {url: 'https://b', tokenFile: /t, role: r}\n",
	             SIGIL_E_INVALID, "exactly one of cfssl or vault", NULL);
	expect_error(HEAD "    externalCa: {cfssl: {url: 'ftp://x'}}\n", SIGIL_E_INVALID,
	             "spec.backend.externalCa.cfssl.url", "https://");
	expect_error(HEAD "    externalCa: {cfssl: {profile: server}}\n", SIGIL_E_INVALID,
	             "spec.backend.externalCa.cfssl.url", "required");
	expect_error(HEAD "    externalCa: {cfssl: {url: 'https://x', timeout: 2h}}\n",
	             SIGIL_E_INVALID, "spec.backend.externalCa.cfssl.timeout", "between");
	expect_error(HEAD "    externalCa: {vault: {url: 'https://v', tokenFile: /t}}\n",
	             SIGIL_E_INVALID, "spec.backend.externalCa.vault.role", "required");
	/* Vault's mount and role are URL path segments. */
	expect_error(HEAD "    externalCa: {vault: {url: 'https://v', tokenFile: /t, role: a/b}}\n",
	             SIGIL_E_INVALID, "spec.backend.externalCa.vault.role", NULL);
	expect_error(HEAD "    externalCa: {vault: {url: 'https://v', tokenFile: /t, role: r,\n"
	                  "                          mount: ../sys}}\n",
	             SIGIL_E_INVALID, "spec.backend.externalCa.vault.mount", NULL);
	expect_error(HEAD "    externalCa: {vault: {url: 'https://v', tokenFile: /t, role: r,\n"
	                  "                          mount: pki/}}\n",
	             SIGIL_E_INVALID, "spec.backend.externalCa.vault.mount", NULL);
	expect_error(HEAD "    kerberosKeytab:\n"
	                  "      realmName: EXAMPLE.COM\n"
	                  "      kdc: kdc\n"
	                  "      admin: {activeDirectory: {ldapServer: dc}}\n"
	                  "      adminKeytabSecret: /k\n"
	                  "      adminPrincipal: p\n",
	             SIGIL_E_INVALID, "kerberosKeytab.admin.activeDirectory", "not supported");
	expect_error(HEAD "    kerberosKeytab:\n"
	                  "      realmName: EXAMPLE.COM\n"
	                  "      kdc: kdc\n"
	                  "      admin: {mit: {kadminServer: k}}\n"
	                  "      adminKeytabSecret: admin.keytab\n"
	                  "      adminPrincipal: p\n",
	             SIGIL_E_INVALID, "kerberosKeytab.adminKeytabSecret (line 11)", "absolute");
	expect_error(HEAD "    kerberosKeytab:\n"
	                  "      realmName: EXAMPLE.COM\n"
	                  "      kdc: kdc\n"
	                  "      admin: {mit: {kadminServer: k}}\n"
	                  "      adminKeytabSecret: /k\n",
	             SIGIL_E_INVALID, "kerberosKeytab.adminPrincipal", "required");
	expect_error(HEAD "    kerberosKeytab:\n"
	                  "      realmName: EXAMPLE COM\n",
	             SIGIL_E_INVALID, "kerberosKeytab.realmName", "spaces");
}

static void test_error_values(void **state)
{
	expect_error(HEAD "    autoTls:\n"
	                  "      ca:\n"
	                  "        caCertificateLifetime: 1 year\n",
	             SIGIL_E_INVALID, "spec.backend.autoTls.ca.caCertificateLifetime (line 9)",
	             "duration");
	expect_error(HEAD "    autoTls: {maxCertificateLifetime: 3600}\n", SIGIL_E_INVALID,
	             "spec.backend.autoTls.maxCertificateLifetime (line 7)", NULL);
	expect_error(HEAD "    autoTls: {maxCertificateLifetime: 0s}\n", SIGIL_E_INVALID,
	             "maxCertificateLifetime", "longer than 0s");
	expect_error(HEAD
	             "    autoTls:\n"
	             "      ca: {caCertificateLifetime: 1h, caCertificateRetirementDuration: 1h}\n",
	             SIGIL_E_INVALID, "caCertificateRetirementDuration", "shorter");
	expect_error(HEAD "    autoTls:\n"
	                  "      ca: {caCertificateLifetime: [1d]}\n",
	             SIGIL_E_INVALID, "caCertificateLifetime", "expected a string");
	expect_error(HEAD "    autoTls:\n"
	                  "      keyAlgorithm: rsa-1024\n",
	             SIGIL_E_INVALID, "spec.backend.autoTls.keyAlgorithm (line 8)",
	             "use one of rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384, ed25519");
	expect_error(HEAD "    autoTls:\n"
	                  "      ca:\n"
	                  "        keyAlgorithm: ecdsa-p256\n"
	                  "        keyGeneration: {rsa: {length: 2048}}\n",
	             SIGIL_E_INVALID, "spec.backend.autoTls.ca.keyAlgorithm",
	             "either keyGeneration or keyAlgorithm");
	expect_error(HEAD "    autoTls: {ca: {keyGeneration: {rsa: {length: 1024}}}}\n",
	             SIGIL_E_INVALID, "spec.backend.autoTls.ca.keyGeneration.rsa.length",
	             "2048, 3072 or 4096");
	expect_error(HEAD "    autoTls: {ca: {keyGeneration: {rsa: {length: \"2048\"}}}}\n",
	             SIGIL_E_INVALID, "keyGeneration.rsa.length", "expected a number");
	expect_error(HEAD "    autoTls: {ca: {keyGeneration: {rsa: {}}}}\n", SIGIL_E_INVALID,
	             "keyGeneration.rsa.length", "required");
	expect_error(HEAD "    autoTls: {ca: {keyGeneration: {ecdsa: {curve: p256}}}}\n",
	             SIGIL_E_INVALID, "keyGeneration.ecdsa", "unknown field");
	expect_error(HEAD "    autoTls: {ca: {autoGenerate: yes}}\n", SIGIL_E_INVALID,
	             "spec.backend.autoTls.ca.autoGenerate", "true or false");
	expect_error(HEAD "    autoTls: {ca: {autoGenerate: \"true\"}}\n", SIGIL_E_INVALID,
	             "autoGenerate", "true or false");
	expect_error(HEAD "    autoTls: {ca: {secret: {name: ca}}}\n", SIGIL_E_INVALID,
	             "spec.backend.autoTls.ca.secret.namespace", "required");
	/* Secret references become directories: no way out of them. */
	expect_error(HEAD "    autoTls: {ca: {secret: {name: ../../etc, namespace: default}}}\n",
	             SIGIL_E_INVALID, "spec.backend.autoTls.ca.secret.name", "object name");
	expect_error(HEAD "    autoTls: {ca: {secret: {name: ca, namespace: a/b}}}\n",
	             SIGIL_E_INVALID, "spec.backend.autoTls.ca.secret.namespace", NULL);
	expect_error(HEAD "    autoTls: {ca: {secret: {name: ca, namespace: ..}}}\n",
	             SIGIL_E_INVALID, "secret.namespace", NULL);
	expect_error(HEAD "    autoTls:\n"
	                  "      additionalTrustRoots:\n"
	                  "        - secret: {name: a, namespace: b}\n"
	                  "          configMap: {name: a, namespace: b}\n",
	             SIGIL_E_INVALID, "additionalTrustRoots[0] (line 9)", "exactly one");
	expect_error(HEAD "    autoTls:\n"
	                  "      additionalTrustRoots:\n"
	                  "        - secret: {name: a, namespace: b}\n"
	                  "        - {}\n",
	             SIGIL_E_INVALID, "additionalTrustRoots[1]", NULL);
	expect_error(HEAD "    autoTls: {additionalTrustRoots: {secret: {name: a}}}\n",
	             SIGIL_E_INVALID, "additionalTrustRoots", "expected a list");
	expect_error(HEAD "    autoTls: {}\n"
	                  "  namePolicy: {allowedDomains: [Example.COM]}\n",
	             SIGIL_E_INVALID, "spec.namePolicy.allowedDomains[0] (line 8)", "lower-case");
	expect_error(HEAD "    autoTls: {}\n"
	                  "  namePolicy: {allowedDomains: [ok.example, .example.com]}\n",
	             SIGIL_E_INVALID, "spec.namePolicy.allowedDomains[1]", NULL);
	expect_error(HEAD "    autoTls: {}\n"
	                  "  namePolicy: {allowedDomains: [~]}\n",
	             SIGIL_E_INVALID, "allowedDomains[0]", "empty");
	expect_error(HEAD "    autoTls: {}\n"
	                  "  namePolicy: {allowedDomains: [[a]]}\n",
	             SIGIL_E_INVALID, "allowedDomains[0]", "expected a string");
	/* Control characters and NULs never reach a C string. */
	expect_error(HEAD "    externalCa: {cfssl: {url: \"https://x\\nHost: evil\"}}\n",
	             SIGIL_E_INVALID, "externalCa.cfssl.url", "control character");
	expect_error(HEAD "    externalCa: {cfssl: {url: \"https://x\\0.evil\"}}\n",
	             SIGIL_E_INVALID, "NUL", NULL);
}

static void test_error_header(void **state)
{
	expect_error("apiVersion: secrets.sigil.dev/v1alpha1\n"
	             "kind: ConfigMap\n"
	             "metadata: {name: tls}\n"
	             "spec: {backend: {autoTls: {}}}\n",
	             SIGIL_E_INVALID, "kind (line 2)", "\"ConfigMap\" is not SecretClass");
	expect_error("apiVersion: secrets.stackable.tech/v1beta9\n"
	             "kind: SecretClass\n"
	             "metadata: {name: tls}\n"
	             "spec: {backend: {autoTls: {}}}\n",
	             SIGIL_E_INVALID, "apiVersion", "secrets.sigil.dev/v1alpha1");
	expect_error("apiVersion: v1\n"
	             "kind: SecretClass\n"
	             "metadata: {name: tls}\n"
	             "spec: {backend: {autoTls: {}}}\n",
	             SIGIL_E_INVALID, "apiVersion", "\"v1\" is not supported");
	expect_error("kind: SecretClass\n"
	             "metadata: {name: tls}\n"
	             "spec: {backend: {autoTls: {}}}\n",
	             SIGIL_E_INVALID, "apiVersion", "required");
	expect_error("apiVersion: secrets.sigil.dev/v1alpha1\n"
	             "kind: SecretClass\n"
	             "spec: {backend: {autoTls: {}}}\n",
	             SIGIL_E_INVALID, "metadata", "required");
	expect_error("apiVersion: secrets.sigil.dev/v1alpha1\n"
	             "kind: SecretClass\n"
	             "metadata: {labels: {a: b}}\n"
	             "spec: {backend: {autoTls: {}}}\n",
	             SIGIL_E_INVALID, "metadata.name", "required");
	/* 64 bytes: one more than ca_store_check_class allows. */
	expect_error("apiVersion: secrets.sigil.dev/v1alpha1\n"
	             "kind: SecretClass\n"
	             "metadata:\n"
	             "  name: a123456789012345678901234567890123456789012345678901234567890123\n"
	             "spec: {backend: {autoTls: {}}}\n",
	             SIGIL_E_LIMIT, "metadata.name (line 4)", "the limit is 63");
	expect_error("apiVersion: secrets.sigil.dev/v1alpha1\n"
	             "kind: SecretClass\n"
	             "metadata: {name: My_Class}\n"
	             "spec: {backend: {autoTls: {}}}\n",
	             SIGIL_E_INVALID, "metadata.name", "lower-case");
	expect_error("- apiVersion: secrets.sigil.dev/v1alpha1\n", SIGIL_E_INVALID,
	             "must be a mapping", NULL);
	expect_error("just a string\n", SIGIL_E_INVALID, "must be a mapping", NULL);
}

static void test_error_limits(void **state)
{
	char buf[8192];
	size_t o;

	/* 63 is fine, 64 is not. */
	ca_class_config c;
	parse_one("apiVersion: secrets.sigil.dev/v1alpha1\n"
	          "kind: SecretClass\n"
	          "metadata:\n"
	          "  name: a12345678901234567890123456789012345678901234567890123456789012\n"
	          "spec: {backend: {autoTls: {}}}\n",
	          &c);
	assert_int_equal(strlen(c.name), 63);

	/* Trust roots: the limit parses, one more does not. */
	for (int extra = 0; extra < 2; extra++) {
		o = (size_t)snprintf(buf, sizeof(buf),
		                     HEAD "    autoTls:\n"
		                          "      additionalTrustRoots:\n");
		for (int i = 0; i < CA_CLASS_MAX_TRUST_ROOTS + extra; i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o,
			                      "        - secret: {name: r%d, namespace: d}\n", i);
		if (extra) {
			expect_error(buf, SIGIL_E_LIMIT,
			             "spec.backend.autoTls.additionalTrustRoots",
			             "9 entries, the limit is 8");
		} else {
			parse_one(buf, &c);
			assert_int_equal(c.n_trust_roots, CA_CLASS_MAX_TRUST_ROOTS);
			assert_string_equal(c.trust_roots[7].name, "r7");
		}
	}
	/* Domains. */
	for (int extra = 0; extra < 2; extra++) {
		o = (size_t)snprintf(buf, sizeof(buf),
		                     HEAD "    autoTls: {}\n  namePolicy:\n    allowedDomains:\n");
		for (int i = 0; i < CA_CLASS_MAX_DOMAINS + extra; i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "      - d%d.example\n", i);
		if (extra) {
			expect_error(buf, SIGIL_E_LIMIT, "spec.namePolicy.allowedDomains",
			             "the limit is 16");
		} else {
			parse_one(buf, &c);
			assert_int_equal(c.n_allowed_domains, CA_CLASS_MAX_DOMAINS);
		}
	}
	/* Strings: never truncated. */
	o = (size_t)snprintf(buf, sizeof(buf), HEAD "    externalCa: {cfssl: {url: 'https://");
	memset(buf + o, 'a', CA_CLASS_MAX_URL);
	o += CA_CLASS_MAX_URL;
	snprintf(buf + o, sizeof(buf) - o, "'}}\n");
	expect_error(buf, SIGIL_E_LIMIT, "spec.backend.externalCa.cfssl.url (line 7)",
	             "the limit is 511");
	o = (size_t)snprintf(buf, sizeof(buf),
	                     HEAD
	                     "    externalCa: {vault: {url: 'https://v', tokenFile: /t, role: ");
	memset(buf + o, 'r', 128);
	o += 128;
	snprintf(buf + o, sizeof(buf) - o, "}}\n");
	expect_error(buf, SIGIL_E_LIMIT, "externalCa.vault.role", "the limit is 127");
	/* 253 + 1 + 63 does not fit the 255 of admin_keytab. */
	o = (size_t)snprintf(buf, sizeof(buf),
	                     HEAD "    kerberosKeytab:\n"
	                          "      realmName: R\n"
	                          "      kdc: k\n"
	                          "      admin: {mit: {kadminServer: k}}\n"
	                          "      adminPrincipal: p\n"
	                          "      adminKeytabSecret:\n"
	                          "        namespace: ");
	memset(buf + o, 'n', 63);
	o += 63;
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\n        name: ");
	for (int i = 0; i < 4; i++) {
		memset(buf + o, 'k', 62);
		o += 62;
		buf[o++] = i < 3 ? '.' : '\n';
	}
	buf[o] = '\0';
	expect_error(buf, SIGIL_E_LIMIT, "kerberosKeytab.adminKeytabSecret", "longer than 255");
}

static void test_error_yaml(void **state)
{
	/* billion laughs */
	expect_error("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	             "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	             "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
	             SIGIL_E_INVALID, "document 1 (line 1)", "anchors and aliases");
	expect_error(HEAD "    autoTls:\n"
	                  "      ca: {secret: {name: x, namespace: y}}\n"
	                  "      additionalTrustRoots:\n"
	                  "        - secret: *ref\n",
	             SIGIL_E_INVALID, "line 10", "anchors and aliases");
	expect_error(HEAD "    autoTls: &x {}\n", SIGIL_E_INVALID, "line 7", "anchors and aliases");
	expect_error(HEAD "    autoTls: !!map {}\n", SIGIL_E_INVALID, "line 7", "tags");
	/* Tabs cannot indent YAML. */
	expect_error("apiVersion: secrets.sigil.dev/v1alpha1\n"
	             "kind: SecretClass\n"
	             "metadata:\n"
	             "\tname: tls\n",
	             SIGIL_E_INVALID, "(line 4, column 1): YAML syntax error",
	             "tabs cannot indent");
	expect_error("}{][ ::: \"\n", SIGIL_E_INVALID, "YAML syntax error", NULL);
	expect_error("apiVersion: [secrets.sigil.dev/v1alpha1\n", SIGIL_E_INVALID,
	             "YAML syntax error", NULL);
	/* Truncated mid-key and mid-flow. */
	expect_error(HEAD "    autoTls:\n"
	                  "      ca:\n"
	                  "        secret: {name: x, namesp",
	             SIGIL_E_INVALID, "YAML syntax error", NULL);
	expect_error(HEAD "    autoTls:\n"
	                  "      ca:\n"
	                  "        caCertificateLifetime: \"36",
	             SIGIL_E_INVALID, "YAML syntax error", NULL);
	/* Truncated after a key: valid YAML, missing backend. */
	expect_error(HEAD, SIGIL_E_INVALID, "spec.backend", NULL);
	expect_error("", SIGIL_E_INVALID, "no SecretClass", NULL);
	expect_error("# only a comment\n\n", SIGIL_E_INVALID, "no SecretClass", NULL);
	expect_error("---\n---\n...\n", SIGIL_E_INVALID, "no SecretClass", NULL);
	/* Not UTF-8, NUL in the text. */
	expect_error("kind: \xff\xfe\n", SIGIL_E_INVALID, "UTF-8", NULL);
	{
		static const char nul[] = "kind: Secret\0Class\n";
		ca_class_config c;
		sigil_err err = {0};
		size_t n = 0;
		assert_int_equal(ca_secretclass_parse_yaml(nul, sizeof(nul) - 1, &c, 1, &n, &err),
		                 SIGIL_E_INVALID);
		assert_int_equal(n, 0);
	}
	/* Deep nesting stops at the depth limit, not at memory. */
	{
		size_t depth = 100000;
		char *deep = malloc(depth * 2 + 1);
		assert_non_null(deep);
		memset(deep, '[', depth);
		memset(deep + depth, ']', depth);
		deep[depth * 2] = '\0';
		expect_error(deep, SIGIL_E_LIMIT, "nested more than", NULL);
		for (size_t i = 0; i < 40; i++)
			memcpy(deep + i * 4, "{a: ", 4);
		deep[160] = '\0';
		expect_error(deep, SIGIL_E_LIMIT, "nested more than", NULL);
		free(deep);
	}
}

static void test_error_sizes(void **state)
{
	ca_class_config c;
	sigil_err err = {0};
	size_t n = 0;
	char *big = malloc(CA_SECRETCLASS_MAX_YAML + 2);
	size_t o;

	assert_non_null(big);
	/* Too long: refused before parsing. */
	memset(big, '#', CA_SECRETCLASS_MAX_YAML + 1);
	big[CA_SECRETCLASS_MAX_YAML + 1] = '\0';
	expect_error(big, SIGIL_E_LIMIT, "the limit is 262144", NULL);
	/* Within the size, too many nodes (labels are ignored, not free). */
	o = (size_t)snprintf(big, CA_SECRETCLASS_MAX_YAML,
	                     "apiVersion: secrets.sigil.dev/v1alpha1\n"
	                     "kind: SecretClass\n"
	                     "metadata:\n"
	                     "  name: tls\n"
	                     "  labels: {");
	for (int i = 0; o + 32 < CA_SECRETCLASS_MAX_YAML; i++)
		o += (size_t)snprintf(big + o, CA_SECRETCLASS_MAX_YAML - o, "l%d: v,", i);
	snprintf(big + o, CA_SECRETCLASS_MAX_YAML + 2 - o, "}\n");
	expect_error(big, SIGIL_E_LIMIT, "more than 16384 YAML nodes", NULL);
	/* Too many documents. */
	o = 0;
	for (int i = 0; i <= CA_SECRETCLASS_MAX_DOCS; i++)
		o += (size_t)snprintf(big + o, CA_SECRETCLASS_MAX_YAML - o, "--- ~\n");
	expect_error(big, SIGIL_E_LIMIT, "more than 64 YAML documents", NULL);
	/* More classes than the caller has room for. */
	o = 0;
	for (int i = 0; i < 3; i++)
		o += (size_t)snprintf(big + o, CA_SECRETCLASS_MAX_YAML - o,
		                      "---\napiVersion: secrets.sigil.dev/v1alpha1\n"
		                      "kind: SecretClass\nmetadata: {name: c%d}\n"
		                      "spec: {backend: {autoTls: {}}}\n",
		                      i);
	expect_error(big, SIGIL_E_LIMIT, "document 3", "limit of 2");
	n = 7;
	assert_int_equal(parse(big, &c, 0, &n, &err), SIGIL_E_LIMIT);
	assert_int_equal(n, 7);
	free(big);
	assert_int_equal(ca_secretclass_parse_yaml(NULL, 1, &c, 1, &n, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_secretclass_parse_yaml(NULL, 0, &c, 1, &n, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_secretclass_parse_yaml("x", 1, &c, 1, &n, NULL), SIGIL_E_INVALID);
}

static void test_multi_document(void **state)
{
	static const char two[] = "apiVersion: secrets.sigil.dev/v1alpha1\n"
	                          "kind: SecretClass\n"
	                          "metadata: {name: one}\n"
	                          "spec: {backend: {autoTls: {}}}\n"
	                          "---\n"
	                          "apiVersion: secrets.sigil.dev/v1alpha1\n"
	                          "kind: SecretClass\n"
	                          "metadata: {name: two}\n"
	                          "spec:\n"
	                          "  backend:\n"
	                          "    autoTls: {keyAlgorithm: rsa-512}\n";
	static const char dup[] = "apiVersion: secrets.sigil.dev/v1alpha1\n"
	                          "kind: SecretClass\n"
	                          "metadata: {name: one}\n"
	                          "spec: {backend: {autoTls: {}}}\n"
	                          "--- # nothing here\n"
	                          "---\n"
	                          "apiVersion: secrets.sigil.dev/v1alpha1\n"
	                          "kind: SecretClass\n"
	                          "metadata: {name: one}\n"
	                          "spec: {backend: {autoTls: {}}}\n";

	/* The second document's error names it, its path and its file line. */
	expect_error(two, SIGIL_E_INVALID,
	             "document 2: spec.backend.autoTls.keyAlgorithm (line 11)", "rsa-512");
	expect_error(dup, SIGIL_E_INVALID, "document 3: SecretClass \"one\"",
	             "already defined by document 1");
}

/* Every prefix of a valid file either parses or fails cleanly. */
static void test_truncation_sweep(void **state)
{
	size_t len = strlen(stackable_manifests), ok = 0;

	for (size_t i = 0; i <= len; i++) {
		ca_class_config c[4];
		sigil_err err = {0};
		size_t n = 0;
		int r = ca_secretclass_parse_yaml(stackable_manifests, i, c, 4, &n, &err);
		if (r == 0) {
			ok++;
			assert_true(n >= 1 && n <= 2);
		} else {
			assert_true(strlen(err.msg) > 0);
			assert_int_equal(n, 0);
		}
	}
	assert_true(ok > 0);
}

/* Seeded garbage: mutations of a valid file. */
static void test_garbage(void **state)
{
	size_t len = strlen(stackable_manifests);
	char *buf = malloc(len + 1);
	uint32_t seed = 12345;

	assert_non_null(buf);
	for (int round = 0; round < 3000; round++) {
		ca_class_config c[4];
		sigil_err err = {0};
		size_t n = 0;

		memcpy(buf, stackable_manifests, len + 1);
		for (int k = 0; k < 1 + round % 8; k++) {
			seed = seed * 1103515245u + 12345u;
			size_t pos = (seed >> 8) % len;
			seed = seed * 1103515245u + 12345u;
			buf[pos] = (char)(seed >> 16);
		}
		if (ca_secretclass_parse_yaml(buf, len, c, 4, &n, &err) == 0)
			assert_true(n >= 1 && n <= 2);
		else
			assert_true(strlen(err.msg) > 0);
	}
	free(buf);
}

/* ---- directories -------------------------------------------------------------- */

typedef struct dir_fixture {
	char path[64];
} dir_fixture;

static int dir_setup(void **state)
{
	dir_fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->path, sizeof(f->path), "/tmp/sigil-sc-XXXXXX");
	if (!mkdtemp(f->path))
		return -1;
	*state = f;
	return 0;
}

static int dir_teardown(void **state)
{
	dir_fixture *f = *state;

	(void)sigil_fs_remove_tree(f->path, NULL);
	free(f);
	return 0;
}

static void put(const dir_fixture *f, const char *name, const char *text)
{
	_cleanup_free_ char *p = sigil_path_join(f->path, name);
	sigil_err err = {0};

	assert_non_null(p);
	assert_int_equal(sigil_fs_write_atomic(p, text, strlen(text), 0644, &err), 0);
}

#define CLASS(name)                                                                                \
	"apiVersion: secrets.sigil.dev/v1alpha1\nkind: SecretClass\nmetadata: {name: " name        \
	"}\nspec: {backend: {autoTls: {}}}\n"

static void test_load_dir(void **state)
{
	dir_fixture *f = *state;
	ca_class_config c[8];
	sigil_err err = {0};
	size_t n = 0;
	char sub[128];

	put(f, "b.yml", CLASS("bravo"));
	put(f, "a.yaml", CLASS("alpha") "---\n" CLASS("alpha2"));
	put(f, "README.md", "not yaml: [");
	put(f, "notes.txt", "}{");
	put(f, ".a.yaml.swp", "}{");
	put(f, "c.yaml.bak", "}{");
	snprintf(sub, sizeof(sub), "%s/dir.yaml", f->path);
	assert_int_equal(mkdir(sub, 0755), 0);
	/* A mounted ConfigMap: visible names are links into "..data". */
	snprintf(sub, sizeof(sub), "%s/..data", f->path);
	assert_int_equal(mkdir(sub, 0755), 0);
	put(f, "..data/z.yaml", CLASS("zulu"));
	snprintf(sub, sizeof(sub), "%s/z.yaml", f->path);
	assert_int_equal(symlink("..data/z.yaml", sub), 0);

	assert_int_equal(ca_secretclass_load_dir(f->path, c, 8, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(c[0].name, "alpha");
	assert_string_equal(c[1].name, "alpha2");
	assert_string_equal(c[2].name, "bravo");
	assert_string_equal(c[3].name, "zulu");

	/* Room for fewer. */
	n = 42;
	assert_int_equal(ca_secretclass_load_dir(f->path, c, 3, &n, &err), SIGIL_E_LIMIT);
	assert_int_equal(n, 42);
	assert_non_null(strstr(err.msg, "z.yaml"));
}

static void test_load_dir_duplicate(void **state)
{
	dir_fixture *f = *state;
	ca_class_config c[8];
	sigil_err err = {0};
	size_t n = 42;

	put(f, "10-tls.yaml", CLASS("tls"));
	put(f, "20-more.yaml", CLASS("other") "---\n" CLASS("tls"));
	assert_int_equal(ca_secretclass_load_dir(f->path, c, 8, &n, &err), SIGIL_E_INVALID);
	assert_int_equal(n, 42);
	assert_non_null(strstr(err.msg, "\"tls\""));
	assert_non_null(strstr(err.msg, "10-tls.yaml"));
	assert_non_null(strstr(err.msg, "20-more.yaml"));
}

static void test_load_dir_errors(void **state)
{
	dir_fixture *f = *state;
	ca_class_config c[8];
	sigil_err err = {0};
	size_t n = 42;
	char path[128];

	/* Empty directory: no classes (the service then offers only "tls"). */
	assert_int_equal(ca_secretclass_load_dir(f->path, c, 8, &n, &err), 0);
	assert_int_equal(n, 0);

	snprintf(path, sizeof(path), "%s/missing", f->path);
	n = 42;
	assert_int_equal(ca_secretclass_load_dir(path, c, 8, &n, &err), SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "does not exist"));
	assert_int_equal(n, 42);

	/* A bad file is named with its document, path and line. */
	put(f, "a.yaml", CLASS("alpha"));
	put(f, "b.yaml", CLASS("bravo") "---\n" HEAD "    autoTls: {bogus: 1}\n");
	assert_int_equal(ca_secretclass_load_dir(f->path, c, 8, &n, &err), SIGIL_E_INVALID);
	assert_non_null(
	    strstr(err.msg, "/b.yaml: document 2: spec.backend.autoTls.bogus (line 12)"));
	assert_int_equal(n, 42);

	/* An empty file is a mistake worth reporting. */
	put(f, "b.yaml", "");
	assert_int_equal(ca_secretclass_load_dir(f->path, c, 8, &n, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "b.yaml"));

	/* Oversized file: refused by the bounded read. */
	char *big = malloc(CA_SECRETCLASS_MAX_YAML + 2);
	assert_non_null(big);
	memset(big, '#', CA_SECRETCLASS_MAX_YAML + 1);
	big[CA_SECRETCLASS_MAX_YAML + 1] = '\0';
	put(f, "b.yaml", big);
	free(big);
	assert_int_equal(ca_secretclass_load_dir(f->path, c, 8, &n, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "b.yaml"));

	/* Not a directory. */
	snprintf(path, sizeof(path), "%s/a.yaml", f->path);
	assert_true(ca_secretclass_load_dir(path, c, 8, &n, &err) < 0);
	assert_int_equal(n, 42);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_autotls_all_fields),
	    cmocka_unit_test(test_autotls_key_generation),
	    cmocka_unit_test(test_external_cfssl),
	    cmocka_unit_test(test_external_vault),
	    cmocka_unit_test(test_kerberos),
	    cmocka_unit_test(test_stackable_manifests),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_error_unknown_fields),
	    cmocka_unit_test(test_error_backends),
	    cmocka_unit_test(test_error_values),
	    cmocka_unit_test(test_error_header),
	    cmocka_unit_test(test_error_limits),
	    cmocka_unit_test(test_error_yaml),
	    cmocka_unit_test(test_error_sizes),
	    cmocka_unit_test(test_multi_document),
	    cmocka_unit_test(test_truncation_sweep),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test_setup_teardown(test_load_dir, dir_setup, dir_teardown),
	    cmocka_unit_test_setup_teardown(test_load_dir_duplicate, dir_setup, dir_teardown),
	    cmocka_unit_test_setup_teardown(test_load_dir_errors, dir_setup, dir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
