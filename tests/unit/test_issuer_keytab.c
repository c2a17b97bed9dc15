/* ca/server/keytab.c: the CA's plan for a Kerberos volume (principals from
 * scopes x service names, krb5.conf, admin keytab location) and the error
 * mapping of the kadmind step, without a KDC (tests/integration/
 * test_kerberos_volume.sh runs the real thing).  Also ca_service_secret_file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/server/keytab.h"
#include "ca/service.h"
#include "ca/store.h"
#include "kerberos/kadm.h"
#include "kerberos/keytab.h"
#include "util/fs.h"
#include "util/mem.h"

typedef struct fixture {
	char dir[64];
	ca_store *store;
	ca_service *svc;
} fixture;

static void krb_class(ca_class_config *c, const char *name, const char *admin_keytab)
{
	ca_class_config_defaults(c, name);
	c->backend = CA_BACKEND_KERBEROS;
	c->auto_generate = false;
	snprintf(c->kerberos.realm, sizeof(c->kerberos.realm), "SIGIL.TEST");
	snprintf(c->kerberos.kdc, sizeof(c->kerberos.kdc), "127.0.0.1:1");
	snprintf(c->kerberos.admin_server, sizeof(c->kerberos.admin_server), "127.0.0.1:1");
	snprintf(c->kerberos.admin_principal, sizeof(c->kerberos.admin_principal),
	         "sigil/admin@SIGIL.TEST");
	snprintf(c->kerberos.admin_keytab, sizeof(c->kerberos.admin_keytab), "%s", admin_keytab);
}

static int open_service(fixture *f, const char *secrets_dir, const char *domain)
{
	static ca_class_config classes[4];
	sigil_err err = {0};

	krb_class(&classes[0], "krb", "/etc/sigil/admin.keytab");
	krb_class(&classes[1], "krb-secret", "kerberos/krb-admin");
	krb_class(&classes[2], "krb-bad-ref", "../etc");
	ca_class_config_defaults(&classes[3], "tls");
	ca_service_config cfg = {
	    .store = f->store,
	    .classes = classes,
	    .n_classes = 4,
	    .cluster_domain = domain,
	    .secrets_dir = secrets_dir,
	};
	if (ca_service_new(&cfg, &f->svc, &err) < 0) {
		print_error("ca_service_new: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	sigil_err err = {0};

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/sigil-test-krbplan-XXXXXX");
	if (!mkdtemp(f->dir) || ca_store_dir_open(f->dir, &f->store, &err) < 0)
		return -1;
	if (open_service(f, "/run/sigil/secrets", NULL) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	ca_service_free(f->svc);
	ca_store_free(f->store);
	sigil_fs_remove_tree(f->dir, NULL);
	free(f);
	return 0;
}

static const char *const http_kafka[] = {"HTTP", "kafka"};

static int plan(fixture *f, const char *cls, const ca_identity *id, const ca_scope *scopes,
                size_t n_scopes, const char *const *services, size_t n_services, bool public_only,
                issuer_keytab_plan **ret, sigil_err *err)
{
	issuer_keytab_request req = {
	    .class_name = cls,
	    .identity = id,
	    .scopes = scopes,
	    .n_scopes = n_scopes,
	    .service_names = services,
	    .n_service_names = n_services,
	    .public_only = public_only,
	};
	return issuer_keytab_plan_new(f->svc, &req, ret, err);
}

static const ca_identity web0 = {
    .node_name = "node-a", .pod_namespace = "default", .pod_name = "web-0"};

static void test_principals_services_x_names(void **state)
{
	fixture *f = *state;
	ca_scope scopes[] = {{CA_SCOPE_NODE, NULL}, {CA_SCOPE_SERVICE, "web"}};
	issuer_keytab_plan *p = NULL;
	sigil_err err = {0};

	assert_int_equal(plan(f, "krb", &web0, scopes, 2, http_kafka, 2, false, &p, &err), 0);
	assert_int_equal(p->n_principals, 4);
	/* Service names first, then scope order. */
	assert_string_equal(p->principals[0], "HTTP/node-a@SIGIL.TEST");
	assert_string_equal(p->principals[1], "HTTP/web.default.svc.cluster.local@SIGIL.TEST");
	assert_string_equal(p->principals[2], "kafka/node-a@SIGIL.TEST");
	assert_string_equal(p->principals[3], "kafka/web.default.svc.cluster.local@SIGIL.TEST");
	assert_string_equal(p->admin_keytab, "/etc/sigil/admin.keytab");
	assert_string_equal(p->class_name, "krb");
	assert_false(p->public_only);
	assert_non_null(strstr(p->krb5_conf, "default_realm = SIGIL.TEST\n"));
	assert_non_null(strstr(p->krb5_conf, "kdc = 127.0.0.1:1\n"));
	assert_non_null(strstr(p->krb5_conf, "admin_server = 127.0.0.1:1\n"));
	assert_non_null(strstr(p->krb5_conf, ".cluster.local = SIGIL.TEST\n"));
	assert_int_equal(p->krb5_conf_len, strlen(p->krb5_conf));
	issuer_keytab_plan_free(p);
}

static void test_duplicates_dropped(void **state)
{
	fixture *f = *state;
	ca_scope scopes[] = {{CA_SCOPE_SERVICE, "web"}, {CA_SCOPE_SERVICE, "web"}};
	const char *const svcs[] = {"HTTP", "HTTP"};
	issuer_keytab_plan *p = NULL;
	sigil_err err = {0};

	assert_int_equal(plan(f, "krb", &web0, scopes, 2, svcs, 2, false, &p, &err), 0);
	assert_int_equal(p->n_principals, 1);
	assert_string_equal(p->principals[0], "HTTP/web.default.svc.cluster.local@SIGIL.TEST");
	issuer_keytab_plan_free(p);
}

static void test_ips_skipped(void **state)
{
	fixture *f = *state;
	const char *ips[] = {"10.0.0.7", "fd00::7"};
	ca_identity id = web0;
	ca_scope node[] = {{CA_SCOPE_NODE, NULL}};
	issuer_keytab_plan *p = NULL;
	sigil_err err = {0};

	id.node_ips = ips;
	id.n_node_ips = 2;
	assert_int_equal(plan(f, "krb", &id, node, 1, http_kafka, 1, false, &p, &err), 0);
	assert_int_equal(p->n_principals, 1);
	assert_string_equal(p->principals[0], "HTTP/node-a@SIGIL.TEST");
	issuer_keytab_plan_free(p);

	/* A node known only by its address gives no principal at all. */
	id.node_name = "10.0.0.7";
	id.n_node_ips = 0;
	p = NULL;
	assert_int_equal(plan(f, "krb", &id, node, 1, http_kafka, 1, false, &p, &err),
	                 SIGIL_E_INVALID);
	assert_null(p);
	assert_non_null(strstr(err.msg, "no host name"));
}

static void test_public_only(void **state)
{
	fixture *f = *state;
	issuer_keytab_plan *p = NULL;
	uint8_t *kt = (uint8_t *)"x";
	size_t len = 99;
	sigil_err err = {0};

	/* No scope, no service name: public parts need neither. */
	assert_int_equal(plan(f, "krb", &web0, NULL, 0, NULL, 0, true, &p, &err), 0);
	assert_true(p->public_only);
	assert_int_equal(p->n_principals, 0);
	assert_null(p->admin_keytab);
	assert_non_null(strstr(p->krb5_conf, "[libdefaults]"));
	/* Nothing to ask kadmind (its address is a closed port here). */
	assert_int_equal(issuer_keytab_run(p, 0, &kt, &len, &err), 0);
	assert_null(kt);
	assert_int_equal(len, 0);
	issuer_keytab_plan_free(p);
}

static void test_cluster_domain(void **state)
{
	fixture *f = *state;
	ca_scope scopes[] = {{CA_SCOPE_SERVICE, "web"}};
	issuer_keytab_plan *p = NULL;
	sigil_err err = {0};

	ca_service_free(f->svc);
	f->svc = NULL;
	assert_int_equal(open_service(f, NULL, "corp.example"), 0);
	assert_int_equal(plan(f, "krb", &web0, scopes, 1, http_kafka, 1, false, &p, &err), 0);
	assert_string_equal(p->principals[0], "HTTP/web.default.svc.corp.example@SIGIL.TEST");
	assert_non_null(strstr(p->krb5_conf, ".corp.example = SIGIL.TEST\n"));
	issuer_keytab_plan_free(p);

	/* Without a secrets dir a Secret reference cannot be resolved. */
	p = NULL;
	assert_int_equal(plan(f, "krb-secret", &web0, scopes, 1, http_kafka, 1, false, &p, &err),
	                 SIGIL_E_PRECOND);
	assert_null(p);
	assert_non_null(strstr(err.msg, "adminKeytabSecret"));
	assert_non_null(strstr(err.msg, "no secrets directory"));
}

static void test_admin_keytab_secret_ref(void **state)
{
	fixture *f = *state;
	ca_scope scopes[] = {{CA_SCOPE_SERVICE, "web"}};
	issuer_keytab_plan *p = NULL;
	sigil_err err = {0};

	assert_int_equal(plan(f, "krb-secret", &web0, scopes, 1, http_kafka, 1, false, &p, &err),
	                 0);
	assert_string_equal(p->admin_keytab, "/run/sigil/secrets/kerberos/krb-admin/keytab");
	issuer_keytab_plan_free(p);
	p = NULL;
	assert_int_equal(plan(f, "krb-bad-ref", &web0, scopes, 1, http_kafka, 1, false, &p, &err),
	                 SIGIL_E_INVALID);
	assert_null(p);
}

static void test_refusals(void **state)
{
	fixture *f = *state;
	ca_scope web[] = {{CA_SCOPE_SERVICE, "web"}};
	ca_scope pod[] = {{CA_SCOPE_POD, NULL}};
	ca_scope node[] = {{CA_SCOPE_NODE, NULL}};
	char long_name[KERBEROS_MAX_SERVICE_LEN + 2];
	const char *const bad[] = {"krbtgt", "kadmin", "K",   "..",          ".",      "",
	                           "a/b",    "a@b",    "a b", "caf\xc3\xa9", long_name};
	const char *many[ISSUER_KEYTAB_MAX_SERVICE_NAMES + 1];
	const char *const with_null[] = {"HTTP", NULL};
	issuer_keytab_plan *p = NULL;
	sigil_err err = {0};

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(bad); i++) {
		const char *one[] = {bad[i]};
		assert_int_equal(plan(f, "krb", &web0, web, 1, one, 1, false, &p, &err),
		                 SIGIL_E_INVALID);
		assert_null(p);
		assert_non_null(strstr(err.msg, "kerberos.service.names"));
	}
	assert_int_equal(plan(f, "krb", &web0, web, 1, with_null, 2, false, &p, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(plan(f, "krb", &web0, web, 1, NULL, 0, false, &p, &err), SIGIL_E_INVALID);
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(many); i++)
		many[i] = "HTTP";
	assert_int_equal(
	    plan(f, "krb", &web0, web, 1, many, SIGIL_ARRAY_SIZE(many), false, &p, &err),
	    SIGIL_E_LIMIT);

	/* Unknown class, TLS class. */
	assert_int_equal(plan(f, "nope", &web0, web, 1, http_kafka, 1, false, &p, &err),
	                 SIGIL_E_NOTFOUND);
	assert_int_equal(plan(f, "tls", &web0, web, 1, http_kafka, 1, false, &p, &err),
	                 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "not kerberosKeytab"));
	assert_int_equal(plan(f, "", &web0, web, 1, http_kafka, 1, false, &p, &err),
	                 SIGIL_E_INVALID);

	/* A pod without a subdomain has only addresses. */
	assert_int_equal(plan(f, "krb", &web0, pod, 1, http_kafka, 1, false, &p, &err),
	                 SIGIL_E_INVALID);
	/* Scopes without the facts they need. */
	ca_identity anon = {.node_name = "node-a"};
	assert_int_equal(plan(f, "krb", &anon, web, 1, http_kafka, 1, false, &p, &err),
	                 SIGIL_E_PRECOND);
	/* kadmind would take an upper-case host; the plan does not. */
	ca_identity upper = web0;
	upper.node_name = "Node-A";
	assert_int_equal(plan(f, "krb", &upper, node, 1, http_kafka, 1, false, &p, &err),
	                 SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "Node-A"));
	/* No scope at all. */
	assert_int_equal(plan(f, "krb", &web0, NULL, 0, http_kafka, 1, false, &p, &err),
	                 SIGIL_E_INVALID);
	assert_null(p);
}

static void test_principal_limit(void **state)
{
	fixture *f = *state;
	enum { N_SCOPES = 17 };
	ca_scope scopes[N_SCOPES];
	char names[N_SCOPES][16];
	const char *svcs[ISSUER_KEYTAB_MAX_SERVICE_NAMES];
	char svc_names[ISSUER_KEYTAB_MAX_SERVICE_NAMES][16];
	issuer_keytab_plan *p = NULL;
	sigil_err err = {0};

	for (int i = 0; i < N_SCOPES; i++) {
		snprintf(names[i], sizeof(names[i]), "svc%d", i);
		scopes[i] = (ca_scope){CA_SCOPE_SERVICE, names[i]};
	}
	for (int i = 0; i < ISSUER_KEYTAB_MAX_SERVICE_NAMES; i++) {
		snprintf(svc_names[i], sizeof(svc_names[i]), "s%d", i);
		svcs[i] = svc_names[i];
	}
	/* 16 x 16 = 256 = KERBEROS_MAX_PRINCIPALS is fine, 16 x 17 is not. */
	assert_int_equal(plan(f, "krb", &web0, scopes, 16, svcs, 16, false, &p, &err), 0);
	assert_int_equal(p->n_principals, KERBEROS_MAX_PRINCIPALS);
	issuer_keytab_plan_free(p);
	p = NULL;
	assert_int_equal(plan(f, "krb", &web0, scopes, N_SCOPES, svcs, 16, false, &p, &err),
	                 SIGIL_E_LIMIT);
	assert_null(p);
	assert_non_null(strstr(err.msg, "principals"));
}

/* The kadmind step maps what kerberos_provision says: a KDC that does not
 * answer is Unavailable, credentials of the CA's own that do not work are
 * FailedPrecondition (not Unauthenticated, which would blame the node). */
static void test_run_error_mapping(void **state)
{
	fixture *f = *state;
	const char *build = getenv("SIGIL_BUILD_DIR");
	ca_scope web[] = {{CA_SCOPE_SERVICE, "web"}};
	issuer_keytab_plan *p = NULL;
	uint8_t *kt = NULL;
	size_t len = 0;
	char helper[512], ktpath[128];
	sigil_err err = {0};

	if (!build) {
		skip();
		return;
	}
	snprintf(helper, sizeof(helper), "%s/sigil-kadm-helper", build);
	if (access(helper, X_OK) < 0) {
		skip();
		return;
	}
	setenv(KERBEROS_KADM_HELPER_ENV, helper, 1);
	assert_int_equal(plan(f, "krb", &web0, web, 1, http_kafka, 1, false, &p, &err), 0);

	/* No admin keytab at the configured path. */
	assert_int_equal(issuer_keytab_run(p, 5000, &kt, &len, &err), SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "sigil-ca cannot log in to kadmind"));
	assert_non_null(strstr(err.msg, "SecretClass 'krb'"));
	assert_null(kt);

	/* A readable admin keytab, and nobody at the KDC's port. */
	kerberos_keytab *akt = kerberos_keytab_new();
	kerberos_principal admin = {.service = "sigil", .host = "admin", .realm = "SIGIL.TEST"};
	uint8_t key[32] = {1, 2, 3}, *img = NULL;
	size_t img_len = 0;
	assert_non_null(akt);
	assert_int_equal(kerberos_keytab_add_key(akt, &admin, 1, 1, 18, key, sizeof(key), &err), 0);
	assert_int_equal(kerberos_keytab_serialize(akt, &img, &img_len, &err), 0);
	kerberos_keytab_free(akt);
	snprintf(ktpath, sizeof(ktpath), "%s/admin.keytab", f->dir);
	assert_int_equal(sigil_fs_write_atomic(ktpath, img, img_len, 0600, &err), 0);
	sigil_freezero(img, img_len);
	free(p->admin_keytab);
	p->admin_keytab = strdup(ktpath);
	assert_non_null(p->admin_keytab);
	assert_int_equal(issuer_keytab_run(p, 5000, &kt, &len, &err), SIGIL_E_UNAVAIL);
	assert_non_null(strstr(err.msg, "SecretClass 'krb'"));
	assert_null(kt);
	issuer_keytab_plan_free(p);
}

static void test_secret_file(void **state)
{
	fixture *f = *state;
	char *path = NULL;
	sigil_err err = {0};
	char long_ns[80];
	char ref[200];
	const char *const bad[] = {"",
	                           "default",
	                           "default/",
	                           "ns//x",
	                           "default/a/b",
	                           "../x",
	                           "default/..",
	                           "default/.",
	                           ".ns/name",
	                           "Default/x",
	                           "default/x y",
	                           "ns/na\nme",
	                           "ns/n\xc3\xa9",
	                           long_ns};

	assert_string_equal(ca_service_cluster_domain(f->svc), "cluster.local");
	assert_int_equal(ca_service_secret_file(f->svc, "/abs/admin.keytab", "keytab", &path, &err),
	                 0);
	assert_string_equal(path, "/abs/admin.keytab");
	free(path);
	path = NULL;
	assert_int_equal(
	    ca_service_secret_file(f->svc, "kerberos/krb-admin", "keytab", &path, &err), 0);
	assert_string_equal(path, "/run/sigil/secrets/kerberos/krb-admin/keytab");
	free(path);
	path = NULL;

	memset(long_ns, 'n', 70);
	snprintf(long_ns + 70, sizeof(long_ns) - 70, "/name");
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(bad); i++) {
		assert_int_equal(ca_service_secret_file(f->svc, bad[i], "keytab", &path, &err),
		                 SIGIL_E_INVALID);
		assert_null(path);
	}
	/* The key must be a safe relative name too. */
	assert_int_equal(ca_service_secret_file(f->svc, "ns/name", "../keytab", &path, &err),
	                 SIGIL_E_INVALID);
	/* An over-long path is refused, not cut. */
	memset(ref, 'a', sizeof(ref) - 1);
	ref[0] = '/';
	ref[sizeof(ref) - 1] = '\0';
	char huge[CA_CLASS_MAX_PATH + 8];
	memset(huge, 'a', sizeof(huge) - 1);
	huge[0] = '/';
	huge[sizeof(huge) - 1] = '\0';
	assert_int_equal(ca_service_secret_file(f->svc, huge, "keytab", &path, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(ca_service_secret_file(f->svc, ref, "keytab", &path, &err), 0);
	assert_string_equal(path, ref);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_principals_services_x_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicates_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ips_skipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_public_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cluster_domain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_admin_keytab_secret_ref, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_principal_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_error_mapping, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_secret_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
