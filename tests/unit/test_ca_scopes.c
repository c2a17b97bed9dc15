#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ca/scopes.h"

static void test_all_scopes(void **state)
{
	const char *node_ips[] = {"192.168.1.10", "2001:db8::10"};
	const char *pod_ips[] = {"10.244.1.7"};
	const char *laddr[] = {"lb.example.com", "203.0.113.5"};
	ca_listener l = {.volume_name = "web-lb", .addresses = laddr, .n_addresses = 2};
	ca_identity id = {
		.node_name = "node-a", .node_ips = node_ips, .n_node_ips = 2,
		.pod_namespace = "default", .pod_name = "web-0", .pod_subdomain = "web",
		.pod_ips = pod_ips, .n_pod_ips = 1, .listeners = &l, .n_listeners = 1,
		.cluster_domain = "corp.local",
	};
	ca_scope scopes[] = {
		{CA_SCOPE_NODE, NULL}, {CA_SCOPE_POD, NULL}, {CA_SCOPE_SERVICE, "api"},
		{CA_SCOPE_LISTENER_VOLUME, "web-lb"}, {CA_SCOPE_SERVICE, "api"},
	};
	ca_names n;
	sigil_err err = {0};

	assert_int_equal(ca_scopes_to_names(&id, scopes, 5, &n, &err), 0);
	assert_string_equal(n.common_name, "web-0");
	assert_int_equal(n.n_dns, 5);
	assert_string_equal(n.dns[0], "node-a");
	assert_string_equal(n.dns[1], "web.default.svc.corp.local");
	assert_string_equal(n.dns[2], "web-0.web.default.svc.corp.local");
	assert_string_equal(n.dns[3], "api.default.svc.corp.local");
	assert_string_equal(n.dns[4], "lb.example.com");
	assert_int_equal(n.n_ips, 4);
	assert_string_equal(n.ips[0], "192.168.1.10");
	assert_string_equal(n.ips[2], "10.244.1.7");
	assert_string_equal(n.ips[3], "203.0.113.5");
	ca_names_free(&n);
}

static void test_pod_without_subdomain_and_default_domain(void **state)
{
	ca_identity id = {.node_name = "n", .pod_namespace = "ns", .pod_name = "p"};
	ca_scope scopes[] = {{CA_SCOPE_POD, NULL}, {CA_SCOPE_SERVICE, "svc"}};
	ca_names n;

	assert_int_equal(ca_scopes_to_names(&id, scopes, 2, &n, NULL), 0);
	assert_int_equal(n.n_dns, 1);
	assert_string_equal(n.dns[0], "svc.ns.svc.cluster.local");
	assert_int_equal(n.n_ips, 0);
	ca_names_free(&n);
}

static void test_missing_facts(void **state)
{
	ca_identity id = {.node_name = "n"};
	ca_scope pod[] = {{CA_SCOPE_POD, NULL}};
	ca_scope lv[] = {{CA_SCOPE_LISTENER_VOLUME, "nope"}};
	ca_names n;
	sigil_err err = {0};

	assert_int_equal(ca_scopes_to_names(&id, pod, 1, &n, &err), SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "scope pod"));
	assert_int_equal(ca_scopes_to_names(&id, lv, 1, &n, &err), SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "listener-volume=nope"));
}

static void test_name_too_long(void **state)
{
	char ns[300];
	ca_identity id = {.pod_namespace = ns, .pod_name = "p"};
	ca_scope s[] = {{CA_SCOPE_SERVICE, "svc"}};
	ca_names n;
	sigil_err err = {0};

	memset(ns, 'a', sizeof(ns) - 1);
	ns[sizeof(ns) - 1] = '\0';
	assert_int_equal(ca_scopes_to_names(&id, s, 1, &n, &err), SIGIL_E_LIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_scopes),
		cmocka_unit_test(test_pod_without_subdomain_and_default_domain),
		cmocka_unit_test(test_missing_facts),
		cmocka_unit_test(test_name_too_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
