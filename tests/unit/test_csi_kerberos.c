/* csi/node.c on Kerberos volumes, against a fake issuer: what the node asks
 * the CA for (scopes, service names, identity, public parts), the files it
 * writes (keytab and krb5.conf, 0640), the backend's native format, and
 * that a refusal leaves nothing behind.  Also the embedded CA's refusal.
 * The real path through sigil-ca and kadmind is
 * tests/integration/test_kerberos_volume.sh. */
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

#include "csi/issuer.h"
#include "csi/node.h"
#include "csi/state.h"
#include "kerberos/keytab.h"
#include "util/fs.h"
#include "util/mem.h"

#define CONF_TEXT "[libdefaults]\n\tdefault_realm = SIGIL.TEST\n"

typedef struct fake_issuer {
	csi_issuer base;
	int keytab_rc; /* what provision_keytab answers */
	int calls;
	int issue_calls;
	/* the last request */
	char services[CSI_MAX_SERVICE_NAMES][80];
	size_t n_services;
	ca_scope_kind scope_kinds[CSI_MAX_SCOPES];
	size_t n_scopes;
	bool public_only;
	char node[64];
	char pod_ns[64];
	char pod_name[64];
	uint8_t *keytab; /* what it hands out */
	size_t keytab_len;
} fake_issuer;

static int fake_issue(csi_issuer *is, const ca_issue_request *req, ca_issue_result *ret,
                      sigil_err *err)
{
	((fake_issuer *)is)->issue_calls++;
	return sigil_err_set(err, SIGIL_E_INTERNAL, "no certificates here");
}

static int fake_bundle(csi_issuer *is, const char *c, STACK_OF(X509) * *ret, uint64_t *v,
                       sigil_err *err)
{
	return sigil_err_set(err, SIGIL_E_INTERNAL, "no bundles here");
}

static int fake_class(csi_issuer *is, const char *c, ca_class_config *ret, sigil_err *err)
{
	if (strcmp(c, "krb") && strcmp(c, "tls"))
		return sigil_err_set(err, SIGIL_E_NOTFOUND, "SecretClass '%s' does not exist", c);
	ca_class_config_defaults(ret, c);
	if (!strcmp(c, "krb"))
		ret->backend = CA_BACKEND_KERBEROS;
	return 0;
}

static bool fake_ready(csi_issuer *is)
{
	return true;
}

static void fake_free(csi_issuer *is)
{
}

static int fake_keytab(csi_issuer *is, const csi_keytab_request *req, csi_keytab_result *ret,
                       sigil_err *err)
{
	fake_issuer *f = (fake_issuer *)is;
	csi_keytab_result res = {0};

	f->calls++;
	f->n_services = req->n_service_names;
	for (size_t i = 0; i < req->n_service_names && i < CSI_MAX_SERVICE_NAMES; i++)
		snprintf(f->services[i], sizeof(f->services[i]), "%s", req->service_names[i]);
	f->n_scopes = req->n_scopes;
	for (size_t i = 0; i < req->n_scopes && i < CSI_MAX_SCOPES; i++)
		f->scope_kinds[i] = req->scopes[i].kind;
	f->public_only = req->public_only;
	snprintf(f->node, sizeof(f->node), "%s",
	         req->identity->node_name ? req->identity->node_name : "");
	snprintf(f->pod_ns, sizeof(f->pod_ns), "%s",
	         req->identity->pod_namespace ? req->identity->pod_namespace : "");
	snprintf(f->pod_name, sizeof(f->pod_name), "%s",
	         req->identity->pod_name ? req->identity->pod_name : "");
	if (f->keytab_rc < 0)
		return sigil_err_set(err, f->keytab_rc, "kadmind is down (fake)");
	if (!req->public_only) {
		res.keytab = malloc(f->keytab_len);
		assert_non_null(res.keytab);
		memcpy(res.keytab, f->keytab, f->keytab_len);
		res.keytab_len = f->keytab_len;
	}
	res.krb5_conf = strdup(CONF_TEXT);
	assert_non_null(res.krb5_conf);
	res.krb5_conf_len = strlen(CONF_TEXT);
	res.n_principals = req->public_only ? 0 : 1;
	*ret = res;
	return 0;
}

static const csi_issuer_ops fake_ops = {
    .issue = fake_issue,
    .trust_bundle = fake_bundle,
    .class_info = fake_class,
    .ready = fake_ready,
    .free = fake_free,
    .provision_keytab = fake_keytab,
};

typedef struct fixture {
	char dir[64];
	char targets[128];
	fake_issuer fake;
	csi_state *state;
	csi_node *node;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	kerberos_keytab *kt = kerberos_keytab_new();
	kerberos_principal p = {.service = "HTTP", .host = "web", .realm = "SIGIL.TEST"};
	uint8_t key[32] = {7, 7, 7};
	_cleanup_free_ char *sd = NULL;
	sigil_err err = {0};

	if (!f || !kt)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/sigil-test-csikrb-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->targets, sizeof(f->targets), "%s/pods", f->dir);
	if (mkdir(f->targets, 0750) < 0 || !(sd = sigil_path_join(f->dir, "state")))
		return -1;
	if (kerberos_keytab_add_key(kt, &p, 1, 1, 18, key, sizeof(key), &err) < 0 ||
	    kerberos_keytab_serialize(kt, &f->fake.keytab, &f->fake.keytab_len, &err) < 0)
		return -1;
	kerberos_keytab_free(kt);
	f->fake.base.ops = &fake_ops;
	if (csi_state_open(sd, &f->state, &err) < 0)
		return -1;
	csi_node_config cfg = {.node_id = "node-a", .issuer = &f->fake.base, .state = f->state};
	if (csi_node_new(&cfg, &f->node, &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	csi_node_free(f->node);
	csi_state_free(f->state);
	sigil_freezero(f->fake.keytab, f->fake.keytab_len);
	sigil_fs_remove_tree(f->dir, NULL);
	free(f);
	return 0;
}

static int publish(fixture *f, const char *vid, const csi_kv *attrs, size_t n,
                   csi_publish_result *res, sigil_err *err)
{
	char target[256];

	snprintf(target, sizeof(target), "%s/%s", f->targets, vid);
	csi_publish_request req = {
	    .volume_id = vid,
	    .target_path = target,
	    .attrs = attrs,
	    .n_attrs = n,
	};
	return csi_node_publish(f->node, &req, res, err);
}

static uint8_t *read_target(fixture *f, const char *vid, const char *name, size_t *len,
                            mode_t *mode)
{
	char path[256];
	uint8_t *d = NULL;
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s/%s", f->targets, vid, name);
	if (sigil_fs_read_file(path, 1 << 20, &d, len, NULL) < 0)
		return NULL;
	if (mode) {
		assert_int_equal(stat(path, &st), 0);
		*mode = st.st_mode & 07777;
	}
	return d;
}

static bool target_exists(fixture *f, const char *vid)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", f->targets, vid);
	return access(path, F_OK) == 0;
}

#define P   "secrets.sigil.dev/"
#define K8S "csi.storage.k8s.io/"

static void test_publish_keytab(void **state)
{
	fixture *f = *state;
	const csi_kv attrs[] = {
	    {P "class", "krb"},
	    {P "format", "kerberos"},
	    {P "scope", "node,service=web"},
	    {P "kerberos.service.names", "HTTP,kafka"},
	    {K8S "pod.name", "web-0"},
	    {K8S "pod.namespace", "default"},
	};
	csi_publish_result res = {0};
	csi_volume_record rec;
	sigil_err err = {0};
	size_t len;
	mode_t mode;
	char target[256];

	assert_int_equal(publish(f, "v1", attrs, SIGIL_ARRAY_SIZE(attrs), &res, &err), 0);
	assert_int_equal(res.n_files, 2);
	assert_int_equal(res.not_after, 0);
	assert_int_equal(f->fake.calls, 1);
	assert_int_equal(f->fake.issue_calls, 0);
	assert_int_equal(f->fake.n_services, 2);
	assert_string_equal(f->fake.services[0], "HTTP");
	assert_string_equal(f->fake.services[1], "kafka");
	assert_int_equal(f->fake.n_scopes, 2);
	assert_int_equal(f->fake.scope_kinds[0], CA_SCOPE_NODE);
	assert_int_equal(f->fake.scope_kinds[1], CA_SCOPE_SERVICE);
	assert_false(f->fake.public_only);
	assert_string_equal(f->fake.node, "node-a");
	assert_string_equal(f->fake.pod_ns, "default");
	assert_string_equal(f->fake.pod_name, "web-0");

	uint8_t *kt = read_target(f, "v1", "keytab", &len, &mode);
	assert_non_null(kt);
	assert_int_equal(len, f->fake.keytab_len);
	assert_memory_equal(kt, f->fake.keytab, len);
	assert_int_equal(mode, 0640);
	sigil_freezero(kt, len);
	char *conf = (char *)read_target(f, "v1", "krb5.conf", &len, &mode);
	assert_non_null(conf);
	assert_int_equal(len, strlen(CONF_TEXT));
	assert_memory_equal(conf, CONF_TEXT, len);
	assert_int_equal(mode, 0640);
	free(conf);

	/* The record: both files, nothing to renew. */
	snprintf(target, sizeof(target), "%s/v1", f->targets);
	assert_int_equal(csi_state_get(f->state, "v1", target, &rec), 0);
	assert_int_equal(rec.not_after, 0);
	assert_int_equal(rec.n_files, 2);
	assert_string_equal(rec.files[0], "keytab");
	assert_string_equal(rec.files[1], "krb5.conf");
	csi_record_free(&rec);

	/* CSI: a repeat is idempotent and asks the CA for nothing. */
	memset(&res, 0, sizeof(res));
	assert_int_equal(publish(f, "v1", attrs, SIGIL_ARRAY_SIZE(attrs), &res, &err), 0);
	assert_true(res.already_published);
	assert_int_equal(f->fake.calls, 1);
}

static void test_native_format_and_default_service(void **state)
{
	fixture *f = *state;
	const csi_kv attrs[] = {
	    {P "class", "krb"},
	    {P "scope", "service=web"},
	    {K8S "pod.namespace", "default"},
	};
	csi_publish_result res = {0};
	sigil_err err = {0};
	size_t len;

	assert_int_equal(publish(f, "v2", attrs, SIGIL_ARRAY_SIZE(attrs), &res, &err), 0);
	assert_int_equal(f->fake.calls, 1);
	assert_int_equal(f->fake.issue_calls, 0);
	assert_int_equal(f->fake.n_services, 1);
	assert_string_equal(f->fake.services[0], "HTTP");
	uint8_t *kt = read_target(f, "v2", "keytab", &len, NULL);
	assert_non_null(kt);
	sigil_freezero(kt, len);
}

static void test_public_parts(void **state)
{
	fixture *f = *state;
	const csi_kv attrs[] = {
	    {P "class", "krb"},
	    {P "format", "kerberos"},
	    {P "provision-parts", "public"},
	};
	csi_publish_result res = {0};
	sigil_err err = {0};
	size_t len;

	assert_int_equal(publish(f, "v3", attrs, SIGIL_ARRAY_SIZE(attrs), &res, &err), 0);
	assert_true(f->fake.public_only);
	assert_int_equal(res.n_files, 1);
	assert_null(read_target(f, "v3", "keytab", &len, NULL));
	char *conf = (char *)read_target(f, "v3", "krb5.conf", &len, NULL);
	assert_non_null(conf);
	free(conf);
}

static void test_refusal_leaves_nothing(void **state)
{
	fixture *f = *state;
	const csi_kv attrs[] = {
	    {P "class", "krb"},
	    {P "format", "kerberos"},
	    {P "scope", "node"},
	};
	const csi_kv tls[] = {
	    {P "class", "tls"},
	    {P "format", "kerberos"},
	    {P "scope", "node"},
	};
	const csi_kv unknown[] = {
	    {P "class", "nope"},
	    {P "scope", "node"},
	};
	const csi_kv bad_service[] = {
	    {P "class", "krb"},
	    {P "scope", "node"},
	    {P "kerberos.service.names", "HTTP/x"},
	};
	csi_publish_result res = {0};
	sigil_err err = {0};

	f->fake.keytab_rc = SIGIL_E_UNAVAIL;
	assert_int_equal(publish(f, "v4", attrs, SIGIL_ARRAY_SIZE(attrs), &res, &err),
	                 SIGIL_E_UNAVAIL);
	assert_non_null(strstr(err.msg, "kadmind is down"));
	assert_false(target_exists(f, "v4"));
	f->fake.keytab_rc = SIGIL_E_PRECOND;
	assert_int_equal(publish(f, "v4", attrs, SIGIL_ARRAY_SIZE(attrs), &res, &err),
	                 SIGIL_E_PRECOND);
	assert_false(target_exists(f, "v4"));
	assert_int_equal(f->fake.calls, 2);

	/* Refused on the node, before the CA is asked. */
	assert_int_equal(publish(f, "v5", tls, SIGIL_ARRAY_SIZE(tls), &res, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "kerberosKeytab"));
	assert_int_equal(publish(f, "v6", unknown, SIGIL_ARRAY_SIZE(unknown), &res, &err),
	                 SIGIL_E_NOTFOUND);
	assert_int_equal(publish(f, "v7", bad_service, SIGIL_ARRAY_SIZE(bad_service), &res, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(f->fake.calls, 2);
	assert_false(target_exists(f, "v5"));
	assert_false(target_exists(f, "v6"));
	assert_false(target_exists(f, "v7"));
	assert_int_equal(csi_node_volume_count(f->node), 0);
}

/* The embedded CA holds no admin credentials (DESIGN.md). */
static void test_embedded_ca_refuses(void **state)
{
	fixture *f = *state;
	ca_class_config cls;
	csi_issuer *local = NULL;
	csi_node *node = NULL;
	_cleanup_free_ char *sd = sigil_path_join(f->dir, "local");
	sigil_err err = {0};
	char target[256];
	const csi_kv attrs[] = {
	    {P "class", "krb"},
	    {P "scope", "node"},
	};

	ca_class_config_defaults(&cls, "krb");
	cls.backend = CA_BACKEND_KERBEROS;
	cls.auto_generate = false;
	snprintf(cls.kerberos.realm, sizeof(cls.kerberos.realm), "SIGIL.TEST");
	assert_non_null(sd);
	assert_int_equal(sigil_fs_mkdir_p(sd, 0700, &err), 0);
	assert_int_equal(csi_issuer_local_new(sd, &cls, 1, NULL, &local, &err), 0);
	csi_node_config cfg = {.node_id = "node-a", .issuer = local, .state = f->state};
	assert_int_equal(csi_node_new(&cfg, &node, &err), 0);
	snprintf(target, sizeof(target), "%s/v8", f->targets);
	csi_publish_request req = {
	    .volume_id = "v8",
	    .target_path = target,
	    .attrs = attrs,
	    .n_attrs = SIGIL_ARRAY_SIZE(attrs),
	};
	assert_int_equal(csi_node_publish(node, &req, NULL, &err), SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "need a sigil-ca (--ca-endpoint)"));
	assert_false(target_exists(f, "v8"));
	csi_node_free(node);
	csi_issuer_free(local);

	/* Freeing an empty or NULL result is fine. */
	csi_keytab_result_free(NULL);
	csi_keytab_result r = {0};
	csi_keytab_result_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_publish_keytab, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_native_format_and_default_service, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_public_parts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusal_leaves_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_embedded_ca_refuses, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
