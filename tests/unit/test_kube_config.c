/* kube/config: kubeconfig parsing, in-cluster configuration, token files. */
#define _GNU_SOURCE /* asprintf */
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

#include "kube/config.h"
#include "util/fs.h"
#include "util/mem.h"

static char tmpdir[64];

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sigil-test-kubecfg-XXXXXX");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	unsetenv("KUBECONFIG");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	unsetenv("KUBECONFIG");
	return sigil_fs_remove_tree(tmpdir, NULL);
}

static void write_file(const char *name, const char *content)
{
	_cleanup_free_ char *path = sigil_path_join(tmpdir, name);
	char *slash = strrchr(path, '/');

	*slash = '\0';
	assert_int_equal(sigil_fs_mkdir_p(path, 0755, NULL), 0);
	*slash = '/';
	assert_int_equal(sigil_fs_write_atomic(path, content, strlen(content), 0600, NULL), 0);
}

static int parse(const char *yaml, const char *context, kube_config **ret, sigil_err *err)
{
	return kube_config_parse_kubeconfig(yaml, strlen(yaml), "/etc/kube", context, ret, err);
}

/* A kubeconfig as kind/kubectl write it. */
static const char KC_FULL[] = "apiVersion: v1\n"
                              "kind: Config\n"
                              "preferences: {}\n"
                              "clusters:\n"
                              "- cluster:\n"
                              "    certificate-authority: pki/ca.crt\n"
                              "    server: https://10.0.0.1:6443/\n"
                              "    extensions:\n"
                              "    - name: client.authentication.k8s.io/exec\n"
                              "      extension: {foo: bar}\n"
                              "  name: prod\n"
                              "- cluster:\n"
                              "    insecure-skip-tls-verify: true\n"
                              "    server: https://127.0.0.1:8443\n"
                              "  name: dev\n"
                              "contexts:\n"
                              "- context:\n"
                              "    cluster: prod\n"
                              "    user: admin\n"
                              "    namespace: sigil\n"
                              "  name: prod-admin\n"
                              "- context: {cluster: dev, user: dev-user}\n"
                              "  name: dev\n"
                              "current-context: prod-admin\n"
                              "users:\n"
                              "- name: admin\n"
                              "  user:\n"
                              "    token: abc.def-ghi\n"
                              "- name: dev-user\n"
                              "  user:\n"
                              "    tokenFile: /var/run/token\n"
                              "    client-certificate: certs/dev.crt\n"
                              "    client-key: /abs/dev.key\n";

static void test_kubeconfig_full(void **state)
{
	_cleanup_(kube_config_freep) kube_config *c = NULL;
	sigil_err err = {0};

	assert_int_equal(parse(KC_FULL, NULL, &c, &err), 0);
	assert_string_equal(c->server, "https://10.0.0.1:6443");
	assert_string_equal(c->ca_file, "/etc/kube/pki/ca.crt");
	assert_null(c->ca_data);
	assert_false(c->insecure_skip_tls_verify);
	assert_string_equal(c->token, "abc.def-ghi");
	assert_null(c->token_file);
	assert_null(c->client_cert_file);
	assert_string_equal(c->namespace_, "sigil");
	assert_string_equal(c->context, "prod-admin");
}

static void test_kubeconfig_other_context(void **state)
{
	_cleanup_(kube_config_freep) kube_config *c = NULL;
	sigil_err err = {0};

	assert_int_equal(parse(KC_FULL, "dev", &c, &err), 0);
	assert_string_equal(c->server, "https://127.0.0.1:8443");
	assert_true(c->insecure_skip_tls_verify);
	assert_null(c->ca_file);
	assert_null(c->token);
	assert_string_equal(c->token_file, "/var/run/token");
	assert_string_equal(c->client_cert_file, "/etc/kube/certs/dev.crt");
	assert_string_equal(c->client_key_file, "/abs/dev.key");
	assert_string_equal(c->namespace_, "default");
	kube_config_free(TAKE_PTR(c));

	/* Without a base directory relative names stay relative. */
	assert_int_equal(
	    kube_config_parse_kubeconfig(KC_FULL, strlen(KC_FULL), NULL, "dev", &c, &err), 0);
	assert_string_equal(c->client_cert_file, "certs/dev.crt");
}

static void test_kubeconfig_unknown_context(void **state)
{
	kube_config *c = NULL;
	sigil_err err = {0};

	assert_int_equal(parse(KC_FULL, "staging", &c, &err), SIGIL_E_NOTFOUND);
	assert_null(c);
	assert_non_null(strstr(err.msg, "no contexts entry named \"staging\""));
}

static void test_kubeconfig_no_current_context(void **state)
{
	kube_config *c = NULL;
	sigil_err err = {0};
	const char *y = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n";

	assert_int_equal(parse(y, NULL, &c, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "no current-context"));
}

static void test_kubeconfig_missing_cluster_and_user(void **state)
{
	kube_config *c = NULL;
	sigil_err err = {0};
	const char *y =
	    "contexts:\n- name: a\n  context: {cluster: nope, user: u}\ncurrent-context: a\n";
	const char *y2 =
	    "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n"
	    "contexts:\n- name: a\n  context: {cluster: c, user: ghost}\ncurrent-context: a\n";
	const char *y3 = "clusters:\n- name: c\n  cluster: {certificate-authority: /ca}\n"
	                 "contexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n";

	assert_int_equal(parse(y, NULL, &c, &err), SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "no clusters entry named \"nope\""));
	assert_int_equal(parse(y2, NULL, &c, &err), SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "no users entry named \"ghost\""));
	assert_int_equal(parse(y3, NULL, &c, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "no server"));
	assert_null(c);
}

static void test_kubeconfig_anonymous(void **state)
{
	_cleanup_(kube_config_freep) kube_config *c = NULL;
	sigil_err err = {0};
	/* No user in the context, null fields: anonymous, like kubectl. */
	const char *y =
	    "clusters:\n- name: c\n  cluster:\n    server: https://k\n    certificate-authority: "
	    "~\n"
	    "contexts:\n- name: a\n  context: {cluster: c, user: null, namespace: null}\n"
	    "current-context: a\n";

	assert_int_equal(parse(y, NULL, &c, &err), 0);
	assert_null(c->token);
	assert_null(c->ca_file);
	assert_string_equal(c->namespace_, "default");
}

/* base64 of a PEM certificate-ish text. */
static char *b64(const char *s)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s), o = 0;
	char *out = malloc(n / 3 * 4 + 5);

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
		size_t rem = n - i;

		if (rem > 1)
			v |= (uint32_t)(unsigned char)s[i + 1] << 8;
		if (rem > 2)
			v |= (unsigned char)s[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = rem > 1 ? tbl[(v >> 6) & 63] : '=';
		out[o++] = rem > 2 ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static const char PEM_CERT[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
static const char PEM_KEY[] = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

static char *kc_with_user(const char *cluster_extra, const char *user_body)
{
	char *s = NULL;

	assert_true(asprintf(&s,
	                     "clusters:\n- name: c\n  cluster:\n    server: https://k:6443\n%s"
	                     "users:\n- name: u\n  user:\n%s"
	                     "contexts:\n- name: a\n  context: {cluster: c, user: u}\n"
	                     "current-context: a\n",
	                     cluster_extra, user_body) > 0);
	return s;
}

static void test_kubeconfig_inline_data(void **state)
{
	_cleanup_(kube_config_freep) kube_config *c = NULL;
	_cleanup_free_ char *ca = b64(PEM_CERT), *key = b64(PEM_KEY),
	                    *crt = b64("-----BEGIN CERTIFICATE-----\nx");
	_cleanup_free_ char *cl = NULL, *us = NULL, *y = NULL;
	sigil_err err = {0};

	assert_true(asprintf(&cl, "    certificate-authority-data: %s\n", ca) > 0);
	assert_true(asprintf(&us, "    client-certificate-data: %s\n    client-key-data: %s\n", crt,
	                     key) > 0);
	y = kc_with_user(cl, us);
	assert_int_equal(parse(y, NULL, &c, &err), 0);
	assert_int_equal(c->ca_data_len, strlen(PEM_CERT));
	assert_memory_equal(c->ca_data, PEM_CERT, strlen(PEM_CERT));
	assert_int_equal(c->client_key_data_len, strlen(PEM_KEY));
	assert_memory_equal(c->client_key_data, PEM_KEY, strlen(PEM_KEY));
	assert_int_equal(c->client_cert_data_len, strlen("-----BEGIN CERTIFICATE-----\nx"));
}

static void expect_user_error(const char *cluster_extra, const char *user_body, int code,
                              const char *needle)
{
	_cleanup_free_ char *y = kc_with_user(cluster_extra, user_body);
	kube_config *c = NULL;
	sigil_err err = {0};
	int r = parse(y, NULL, &c, &err);

	if (r != code || !strstr(err.msg, needle))
		fail_msg("want %d /%s/, got %d: %s\n%s", code, needle, r, err.msg, y);
	assert_null(c);
}

static void test_kubeconfig_bad_data(void **state)
{
	_cleanup_free_ char *notpem = b64("hello world, not a certificate");
	_cleanup_free_ char *ca = b64(PEM_CERT);
	_cleanup_free_ char *l1 = NULL, *l2 = NULL, *l3 = NULL;

	expect_user_error("    certificate-authority-data: '!!notbase64'\n", "    token: t\n",
	                  SIGIL_E_INVALID, "certificate-authority-data is not valid base64");
	expect_user_error("    certificate-authority-data: QUJD=A==\n", "    token: t\n",
	                  SIGIL_E_INVALID, "not valid base64");
	expect_user_error("    certificate-authority-data: QUJ\n", "    token: t\n",
	                  SIGIL_E_INVALID, "not valid base64");
	assert_true(asprintf(&l1, "    certificate-authority-data: %s\n", notpem) > 0);
	expect_user_error(l1, "    token: t\n", SIGIL_E_INVALID, "does not hold PEM data");
	assert_true(asprintf(&l2,
	                     "    certificate-authority-data: %s\n    certificate-authority: /ca\n",
	                     ca) > 0);
	expect_user_error(l2, "    token: t\n", SIGIL_E_INVALID,
	                  "both certificate-authority and certificate-authority-data");
	assert_true(
	    asprintf(&l3,
	             "    certificate-authority-data: %s\n    insecure-skip-tls-verify: true\n",
	             ca) > 0);
	expect_user_error(l3, "    token: t\n", SIGIL_E_INVALID,
	                  "insecure-skip-tls-verify and a certificate authority");
	expect_user_error("    insecure-skip-tls-verify: maybe\n", "    token: t\n",
	                  SIGIL_E_INVALID, "must be true or false");
}

static void test_kubeconfig_refused_auth(void **state)
{
	expect_user_error("",
	                  "    exec:\n      command: aws\n      apiVersion: "
	                  "client.authentication.k8s.io/v1beta1\n",
	                  SIGIL_E_INVALID, "user.exec is not supported: credential plugins");
	expect_user_error("", "    auth-provider: {name: gcp}\n", SIGIL_E_INVALID,
	                  "auth-provider is not supported");
	expect_user_error("", "    username: admin\n    password: secret\n", SIGIL_E_INVALID,
	                  "basic authentication");
	expect_user_error("", "    token: t\n    as: someone-else\n", SIGIL_E_INVALID,
	                  "impersonation");
	expect_user_error("    proxy-url: http://proxy:3128\n", "    token: t\n", SIGIL_E_INVALID,
	                  "cluster.proxy-url is not supported");
	expect_user_error("    tls-server-name: api.internal\n", "    token: t\n", SIGIL_E_INVALID,
	                  "tls-server-name is not supported");
	expect_user_error("", "    client-certificate: /c.crt\n", SIGIL_E_INVALID, "needs its key");
	expect_user_error("", "    client-key: /c.key\n", SIGIL_E_INVALID, "needs its key");
	expect_user_error("",
	                  "    client-certificate: /c.crt\n    client-certificate-data: QUJD\n    "
	                  "client-key: /k\n",
	                  SIGIL_E_INVALID, "does not hold PEM data");
	{
		_cleanup_free_ char *crt = b64(PEM_CERT), *key = b64(PEM_KEY);
		_cleanup_free_ char *u1 = NULL, *u2 = NULL;

		assert_true(
		    asprintf(&u1,
		             "    client-certificate: /c.crt\n    client-certificate-data: %s\n"
		             "    client-key: /k\n",
		             crt) > 0);
		expect_user_error("", u1, SIGIL_E_INVALID,
		                  "both client-certificate and client-certificate-data");
		assert_true(asprintf(&u2,
		                     "    client-certificate: /c.crt\n    client-key-data: %s\n"
		                     "    client-key: /k\n",
		                     key) > 0);
		expect_user_error("", u2, SIGIL_E_INVALID, "both client-key and client-key-data");
	}
	expect_user_error("", "    token: \"a b\"\n", SIGIL_E_INVALID, "token contains spaces");
	expect_user_error("", "    token: \"a\\u0001b\"\n", SIGIL_E_INVALID,
	                  "token contains spaces");
	expect_user_error("", "    token: [a, b]\n", SIGIL_E_INVALID,
	                  "user.token must be a string");
	expect_user_error("", "    token: \"a\\0b\"\n", SIGIL_E_INVALID, "NUL characters");
}

static void expect_error(const char *yaml, size_t len, int code, const char *needle)
{
	kube_config *c = NULL;
	sigil_err err = {0};
	int r = kube_config_parse_kubeconfig(yaml, len, "/d", NULL, &c, &err);

	if (r != code || !strstr(err.msg, needle))
		fail_msg("want %d /%s/, got %d: %s", code, needle, r, err.msg);
	assert_null(c);
}

static void test_kubeconfig_structure_errors(void **state)
{
	static const char dup_key[] = "current-context: a\ncurrent-context: b\n";
	static const char dup_entry[] =
	    "clusters:\n- name: c\n  cluster: {server: 'https://a'}\n"
	    "- name: c\n  cluster: {server: 'https://b'}\n"
	    "contexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n";
	static const char anchors[] = "clusters:\n- name: c\n  cluster: &x {server: 'https://a'}\n"
	                              "- name: d\n  cluster: *x\n";
	static const char tags[] = "current-context: !!str a\n";
	static const char two_docs[] = "current-context: a\n---\ncurrent-context: b\n";
	static const char not_map[] = "- a\n- b\n";
	static const char wrong_kind[] = "kind: Pod\ncurrent-context: a\n";
	static const char bad_server[] =
	    "clusters:\n- name: c\n  cluster: {server: 'ftp://a'}\n"
	    "contexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n";
	static const char space_server[] =
	    "clusters:\n- name: c\n  cluster: {server: 'https://a b'}\n"
	    "contexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n";
	/* Found by the fuzzer: "https://" alone once became "https:". */
	static const char no_host[] =
	    "clusters:\n- name: c\n  cluster: {server: 'https:///'}\n"
	    "contexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n";
	static const char bad_ns[] =
	    "clusters:\n- name: c\n  cluster: {server: 'https://a'}\n"
	    "contexts:\n- name: a\n  context: {cluster: c, namespace: 'Bad_NS'}\n"
	    "current-context: a\n";
	static const char list_not_seq[] =
	    "clusters: {c: 1}\ncontexts:\n- name: a\n  context: {cluster: c}\n"
	    "current-context: a\n";
	static const char entry_not_map[] =
	    "clusters: [c]\ncontexts:\n- name: a\n  context: {cluster: c}\n"
	    "current-context: a\n";
	static const char body_not_map[] =
	    "clusters:\n- name: c\n  cluster: https://a\n"
	    "contexts:\n- name: a\n  context: {cluster: c}\ncurrent-context: a\n";
	static const char tab[] = "clusters:\n\t- name: c\n";

	expect_error("", 0, SIGIL_E_INVALID, "kubeconfig is empty");
	expect_error("# only a comment\n", 17, SIGIL_E_INVALID, "kubeconfig is empty");
	expect_error(dup_key, strlen(dup_key), SIGIL_E_INVALID, "current-context is given twice");
	expect_error(dup_entry, strlen(dup_entry), SIGIL_E_INVALID, "two entries named \"c\"");
	expect_error(anchors, strlen(anchors), SIGIL_E_INVALID, "anchors and aliases");
	expect_error(tags, strlen(tags), SIGIL_E_INVALID, "tags are not allowed");
	expect_error(two_docs, strlen(two_docs), SIGIL_E_INVALID, "more than one YAML document");
	expect_error(not_map, strlen(not_map), SIGIL_E_INVALID, "not a mapping");
	expect_error(wrong_kind, strlen(wrong_kind), SIGIL_E_INVALID,
	             "kind is \"Pod\", not Config");
	expect_error(bad_server, strlen(bad_server), SIGIL_E_INVALID, "is not an https:// URL");
	expect_error(space_server, strlen(space_server), SIGIL_E_INVALID, "is not an https:// URL");
	expect_error(no_host, strlen(no_host), SIGIL_E_INVALID, "has no host");
	expect_error(bad_ns, strlen(bad_ns), SIGIL_E_INVALID, "is not a DNS label");
	expect_error(list_not_seq, strlen(list_not_seq), SIGIL_E_INVALID,
	             "clusters must be a list");
	expect_error(entry_not_map, strlen(entry_not_map), SIGIL_E_INVALID,
	             "each of clusters must be a mapping");
	expect_error(body_not_map, strlen(body_not_map), SIGIL_E_INVALID,
	             "cluster must be a mapping");
	expect_error(tab, strlen(tab), SIGIL_E_INVALID, "tabs cannot indent YAML");
}

static void test_kubeconfig_garbage(void **state)
{
	static const char *const garbage[] = {
	    "{{{{",
	    "]]",
	    "clusters: [",
	    "\"unterminated",
	    "key: 'unterminated\n",
	    "\xff\xfe\x00\x01",
	    "%YAML 9.9\n---\na: b\n",
	    "? complex\n: key\n",
	    "a: b: c\n",
	    ": :\n",
	};
	/* Binary noise with a NUL in it. */
	static const char noise[] = "clusters:\x00\x01\x02\x80\xc3\x28 server";

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(garbage); i++) {
		kube_config *c = NULL;
		sigil_err err = {0};
		int r = kube_config_parse_kubeconfig(garbage[i], strlen(garbage[i]), "/d", NULL, &c,
		                                     &err);

		assert_true(r < 0);
		assert_int_equal(err.code, r);
		assert_true(err.msg[0] != '\0');
		assert_null(c);
	}
	expect_error(noise, sizeof(noise) - 1, SIGIL_E_INVALID, "kubeconfig");
	expect_error(NULL, 5, SIGIL_E_INVALID, "no kubeconfig text");
}

/* Every prefix of a good file parses or fails cleanly, never crashes. */
static void test_kubeconfig_truncated(void **state)
{
	size_t n = strlen(KC_FULL);
	size_t ok = 0;

	for (size_t len = 0; len < n; len++) {
		kube_config *c = NULL;
		sigil_err err = {0};
		char *copy = malloc(len + 1);
		int r;

		memcpy(copy, KC_FULL, len);
		copy[len] = '\0';
		r = kube_config_parse_kubeconfig(copy, len, "/d", NULL, &c, &err);
		if (r == 0) {
			assert_non_null(c->server);
			ok++;
			kube_config_free(c);
		} else {
			assert_null(c);
			assert_int_equal(err.code, r);
			assert_true(err.msg[0] != '\0');
		}
		free(copy);
	}
	/* Short prefixes lack a context; only near-complete ones work. */
	assert_true(ok < n);
}

static void test_kubeconfig_limits(void **state)
{
	size_t big = KUBE_CONFIG_MAX_FILE + 1;
	char *s = malloc(big + 1);
	char *deep, *wide;
	size_t o = 0;

	memset(s, '#', big);
	s[big] = '\0';
	expect_error(s, big, SIGIL_E_LIMIT, "the limit is");
	free(s);

	/* Deep flow nesting. */
	deep = malloc(4 * KUBE_CONFIG_MAX_DEPTH + 64);
	memcpy(deep, "a: ", 3);
	o = 3;
	for (int i = 0; i < KUBE_CONFIG_MAX_DEPTH + 2; i++)
		deep[o++] = '[';
	for (int i = 0; i < KUBE_CONFIG_MAX_DEPTH + 2; i++)
		deep[o++] = ']';
	deep[o++] = '\n';
	expect_error(deep, o, SIGIL_E_LIMIT, "nested more than");
	free(deep);

	/* Too many nodes. */
	wide = malloc((size_t)KUBE_CONFIG_MAX_NODES * 4 + 64);
	memcpy(wide, "a: [", 4);
	o = 4;
	for (int i = 0; i < KUBE_CONFIG_MAX_NODES + 10; i++) {
		memcpy(wide + o, "1, ", 3);
		o += 3;
	}
	memcpy(wide + o, "1]\n", 3);
	o += 3;
	expect_error(wide, o, SIGIL_E_LIMIT, "YAML nodes");
	free(wide);

	/* One scalar over the limit. */
	s = malloc(KUBE_CONFIG_MAX_SCALAR + 64);
	memcpy(s, "current-context: ", 17);
	o = 17;
	memset(s + o, 'x', KUBE_CONFIG_MAX_SCALAR + 1);
	o += KUBE_CONFIG_MAX_SCALAR + 1;
	s[o++] = '\n';
	expect_error(s, o, SIGIL_E_LIMIT, "longer than");
	free(s);
}

/* ---- files ------------------------------------------------------------------ */

static void test_read_token(void **state)
{
	_cleanup_free_ char *p = sigil_path_join(tmpdir, "tok");
	_cleanup_free_ char *missing = sigil_path_join(tmpdir, "missing");
	char *tok = NULL;
	sigil_err err = {0};
	char *big;

	write_file("tok", "eyJhbGciOi.payload.sig\r\n\n");
	assert_int_equal(kube_config_read_token(p, &tok, &err), 0);
	assert_string_equal(tok, "eyJhbGciOi.payload.sig");
	sigil_secret_free(tok);
	tok = NULL;

	write_file("tok", "\n \n");
	assert_int_equal(kube_config_read_token(p, &tok, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "is empty"));
	write_file("tok", "two words");
	assert_int_equal(kube_config_read_token(p, &tok, &err), SIGIL_E_INVALID);
	assert_null(strstr(err.msg, "two")); /* never quoted */
	write_file("tok", "ctl\x1b[31m");
	assert_int_equal(kube_config_read_token(p, &tok, &err), SIGIL_E_INVALID);
	assert_int_equal(kube_config_read_token(missing, &tok, &err), SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "bearer token"));

	big = malloc(KUBE_CONFIG_MAX_TOKEN + 2);
	memset(big, 'a', KUBE_CONFIG_MAX_TOKEN + 1);
	big[KUBE_CONFIG_MAX_TOKEN + 1] = '\0';
	write_file("tok", big);
	free(big);
	assert_int_equal(kube_config_read_token(p, &tok, &err), SIGIL_E_LIMIT);
	assert_null(tok);
}

static void test_load_kubeconfig_file(void **state)
{
	_cleanup_(kube_config_freep) kube_config *c = NULL;
	_cleanup_free_ char *path = sigil_path_join(tmpdir, "cfg/config");
	_cleanup_free_ char *want_ca = sigil_path_join(tmpdir, "cfg/ca.crt");
	_cleanup_free_ char *want_tok = sigil_path_join(tmpdir, "cfg/sub/token");
	sigil_err err = {0};
	static const char y[] =
	    "clusters:\n- name: c\n  cluster:\n    server: https://k:6443\n    "
	    "certificate-authority: ca.crt\n"
	    "users:\n- name: u\n  user:\n    tokenFile: sub/token\n"
	    "contexts:\n- name: a\n  context: {cluster: c, user: u, namespace: team-a}\n"
	    "current-context: a\n";

	write_file("cfg/config", y);
	/* The files it names must exist. */
	assert_int_equal(kube_config_load_kubeconfig(path, NULL, &c, &err), SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "certificate authority"));
	assert_non_null(strstr(err.msg, "cfg/config"));
	write_file("cfg/ca.crt", PEM_CERT);
	assert_int_equal(kube_config_load_kubeconfig(path, NULL, &c, &err), SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "bearer token"));
	write_file("cfg/sub/token", "tok\n");
	assert_int_equal(kube_config_load_kubeconfig(path, NULL, &c, &err), 0);
	assert_string_equal(c->ca_file, want_ca);
	assert_string_equal(c->token_file, want_tok);
	assert_string_equal(c->namespace_, "team-a");
	kube_config_free(TAKE_PTR(c));

	/* Through KUBECONFIG and kube_config_load_default. */
	setenv("KUBECONFIG", path, 1);
	assert_int_equal(kube_config_load_default(NULL, &c, &err), 0);
	assert_string_equal(c->namespace_, "team-a");
	kube_config_free(TAKE_PTR(c));
	setenv("KUBECONFIG", "/a:/b", 1);
	assert_int_equal(kube_config_load_default(NULL, &c, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "several files"));
	/* An explicit path wins over the environment. */
	assert_int_equal(kube_config_load_default(path, &c, &err), 0);
	kube_config_free(TAKE_PTR(c));
	unsetenv("KUBECONFIG");
	{
		_cleanup_free_ char *missing = sigil_path_join(tmpdir, "nope");

		assert_int_equal(kube_config_load_kubeconfig(missing, NULL, &c, &err),
		                 SIGIL_E_NOTFOUND);
		assert_non_null(strstr(err.msg, "kubeconfig"));
	}
}

static void test_in_cluster(void **state)
{
	_cleanup_(kube_config_freep) kube_config *c = NULL;
	_cleanup_free_ char *sa = sigil_path_join(tmpdir, "sa");
	_cleanup_free_ char *want_tok = sigil_path_join(tmpdir, "sa/token");
	_cleanup_free_ char *ns_path = sigil_path_join(tmpdir, "sa/namespace");
	sigil_err err = {0};

	assert_int_equal(kube_config_load_in_cluster(sa, &c, &err), SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "KUBERNETES_SERVICE_HOST"));
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	assert_int_equal(kube_config_load_in_cluster(sa, &c, &err), SIGIL_E_PRECOND);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(kube_config_load_in_cluster(sa, &c, &err), SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "in-cluster"));
	write_file("sa/token", "jwt-token\n");
	assert_int_equal(kube_config_load_in_cluster(sa, &c, &err), SIGIL_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "ca.crt"));
	write_file("sa/ca.crt", PEM_CERT);
	assert_int_equal(kube_config_load_in_cluster(sa, &c, &err), 0);
	assert_string_equal(c->server, "https://10.96.0.1:443");
	assert_string_equal(c->token_file, want_tok);
	assert_null(c->token); /* the client reads the file, and re-reads it */
	assert_string_equal(c->namespace_, "default");
	assert_string_equal(c->context, "in-cluster");
	kube_config_free(TAKE_PTR(c));

	write_file("sa/namespace", "sigil-system\n");
	setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
	assert_int_equal(kube_config_load_in_cluster(sa, &c, &err), 0);
	assert_string_equal(c->server, "https://[fd00:10:96::1]:6443");
	assert_string_equal(c->namespace_, "sigil-system");
	kube_config_free(TAKE_PTR(c));

	/* kube_config_load_default picks in-cluster when the variables are set
	 * (and then reads the real service account directory, absent here). */
	if (kube_config_load_default(NULL, &c, &err) == 0)
		assert_string_equal(c->context, "in-cluster");
	else
		assert_non_null(strstr(err.msg, "in-cluster configuration"));
	kube_config_free(TAKE_PTR(c));

	write_file("sa/namespace", "Not_A_Label\n");
	assert_int_equal(kube_config_load_in_cluster(sa, &c, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, ns_path));
	unlink(ns_path);

	static const char *const bad_ports[] = {"0", "65536", "abc", "443 ", "-1", "+443"};
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(bad_ports); i++) {
		setenv("KUBERNETES_SERVICE_PORT", bad_ports[i], 1);
		assert_int_equal(kube_config_load_in_cluster(sa, &c, &err), SIGIL_E_INVALID);
		assert_non_null(strstr(err.msg, "KUBERNETES_SERVICE_PORT"));
	}
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	setenv("KUBERNETES_SERVICE_HOST", "evil/host?x", 1);
	assert_int_equal(kube_config_load_in_cluster(sa, &c, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "KUBERNETES_SERVICE_HOST"));
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kubeconfig_full),
	    cmocka_unit_test(test_kubeconfig_other_context),
	    cmocka_unit_test(test_kubeconfig_unknown_context),
	    cmocka_unit_test(test_kubeconfig_no_current_context),
	    cmocka_unit_test(test_kubeconfig_missing_cluster_and_user),
	    cmocka_unit_test(test_kubeconfig_anonymous),
	    cmocka_unit_test(test_kubeconfig_inline_data),
	    cmocka_unit_test(test_kubeconfig_bad_data),
	    cmocka_unit_test(test_kubeconfig_refused_auth),
	    cmocka_unit_test(test_kubeconfig_structure_errors),
	    cmocka_unit_test(test_kubeconfig_garbage),
	    cmocka_unit_test(test_kubeconfig_truncated),
	    cmocka_unit_test(test_kubeconfig_limits),
	    cmocka_unit_test_setup_teardown(test_read_token, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_kubeconfig_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_in_cluster, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
