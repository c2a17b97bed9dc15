/* kube/podinfo: Pod, Node, PVC and Listener objects shaped as a cluster has
 * them, read into the facts the scopes turn into names; the lookups of
 * kube_pod_info_get against a small routed HTTP server on 127.0.0.1 (plain
 * http is allowed to loopback), including an apiserver that is down,
 * slow, failing or refusing sigil's credentials. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ca/scopes.h"
#include "kube/podinfo.h"

/* ---- objects as a cluster has them ---------------------------------------------- */

static const char POD_WEB[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-0\","
    "\"namespace\":\"shop\",\"uid\":\"0b5e8f5e-2222-4d0e-8a0e-9c3b1b2a3c4d\","
    "\"labels\":{\"app\":\"web\"}},"
    "\"spec\":{\"nodeName\":\"node-a\",\"hostname\":\"web-0\",\"subdomain\":\"web\","
    "\"serviceAccountName\":\"web\",\"containers\":[{\"name\":\"app\",\"image\":\"nginx\"}],"
    "\"volumes\":[{\"name\":\"tls\",\"csi\":{\"driver\":\"secrets.sigil.dev\"}},"
    "{\"name\":\"listener\",\"ephemeral\":{\"volumeClaimTemplate\":{\"metadata\":"
    "{\"annotations\":{\"listeners.stackable.tech/listener-class\":\"external-stable\"}},"
    "\"spec\":{\"storageClassName\":\"listeners.stackable.tech\"}}}},"
    "{\"name\":\"shared\",\"persistentVolumeClaim\":{\"claimName\":\"shared-claim\"}},"
    "{\"name\":\"scratch\",\"emptyDir\":{}}]},"
    "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.244.1.7\","
    "\"podIPs\":[{\"ip\":\"10.244.1.7\"},{\"ip\":\"fd00::7\"}]}}";

static const char NODE_A[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"node-a\"},"
    "\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"192.168.1.11\"},"
    "{\"type\":\"ExternalIP\",\"address\":\"203.0.113.11\"},"
    "{\"type\":\"Hostname\",\"address\":\"node-a\"},"
    "{\"type\":\"InternalDNS\",\"address\":\"node-a.internal\"}]}}";

static const char PVC_EPHEMERAL[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolumeClaim\",\"metadata\":"
    "{\"name\":\"web-0-listener\",\"namespace\":\"shop\",\"annotations\":"
    "{\"listeners.stackable.tech/listener-class\":\"external-stable\"}},"
    "\"spec\":{\"storageClassName\":\"listeners.stackable.tech\"},\"status\":{\"phase\":\"Bound\"}}";

static const char PVC_SHARED[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolumeClaim\",\"metadata\":"
    "{\"name\":\"shared-claim\",\"namespace\":\"shop\",\"annotations\":"
    "{\"listeners.stackable.tech/listener-name\":\"web-lb\"}},"
    "\"spec\":{\"storageClassName\":\"listeners.stackable.tech\"},\"status\":{\"phase\":\"Bound\"}}";

static const char LISTENER_EPHEMERAL[] =
    "{\"apiVersion\":\"listeners.stackable.tech/v1alpha1\",\"kind\":\"Listener\","
    "\"metadata\":{\"name\":\"web-0-listener\",\"namespace\":\"shop\"},"
    "\"spec\":{\"className\":\"external-stable\"},"
    "\"status\":{\"serviceName\":\"web-0-listener\",\"ingressAddresses\":["
    "{\"address\":\"203.0.113.11\",\"addressType\":\"IP\",\"ports\":{\"https\":31443}},"
    "{\"address\":\"node-a.example.com\",\"addressType\":\"Hostname\",\"ports\":{\"https\":31443}}]}}";

static const char LISTENER_LB[] =
    "{\"apiVersion\":\"listeners.stackable.tech/v1alpha1\",\"kind\":\"Listener\","
    "\"metadata\":{\"name\":\"web-lb\",\"namespace\":\"shop\"},"
    "\"spec\":{\"className\":\"external-unstable\"},"
    "\"status\":{\"ingressAddresses\":[{\"address\":\"web.example.com\","
    "\"addressType\":\"Hostname\",\"ports\":{\"https\":443}}]}}";

static json_t *J(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);

	if (!j)
		fail_msg("bad test JSON: %s", e.text);
	return j;
}

/* ---- a routed HTTP server ----------------------------------------------------------- */

#define MAX_ROUTES 16

typedef struct route {
	char path[256];
	int status; /* 0: hang until the client goes */
	char *body;
} route;

static struct {
	int lfd, port;
	pthread_t th;
	atomic_int quit;
	pthread_mutex_t lock;
	route routes[MAX_ROUTES];
	size_t n;
	unsigned hits;
} hs;

static void hs_route(const char *path, int status, const char *body)
{
	pthread_mutex_lock(&hs.lock);
	assert_true(hs.n < MAX_ROUTES);
	snprintf(hs.routes[hs.n].path, sizeof(hs.routes[hs.n].path), "%s", path);
	hs.routes[hs.n].status = status;
	hs.routes[hs.n].body = strdup(body ? body : "");
	hs.n++;
	pthread_mutex_unlock(&hs.lock);
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void hs_serve(int fd)
{
	char req[8192], path[256] = "", head[256];
	const route *rt = NULL;
	size_t got = 0;
	char *sp;

	while (got < sizeof(req) - 1) {
		ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);

		if (n <= 0)
			return;
		got += (size_t)n;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	sp = strchr(req, ' ');
	if (sp) {
		size_t l = strcspn(sp + 1, " ?");

		if (l < sizeof(path))
			snprintf(path, sizeof(path), "%.*s", (int)l, sp + 1);
	}
	pthread_mutex_lock(&hs.lock);
	hs.hits++;
	for (size_t i = 0; i < hs.n; i++)
		if (!strcmp(hs.routes[i].path, path))
			rt = &hs.routes[i];
	pthread_mutex_unlock(&hs.lock);
	if (rt && rt->status == 0) {
		while (!atomic_load(&hs.quit)) {
			struct pollfd p = {.fd = fd, .events = POLLIN};

			if (poll(&p, 1, 50) > 0) {
				char b[64];

				if (recv(fd, b, sizeof(b), 0) <= 0)
					return;
			}
		}
		return;
	}
	if (!rt) {
		char body[512];

		snprintf(body, sizeof(body),
			 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
			 "\"Failure\",\"message\":\"%s not found\",\"reason\":\"NotFound\",\"code\":404}",
			 path);
		snprintf(head, sizeof(head),
			 "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 strlen(body));
		send_all(fd, head, strlen(head));
		send_all(fd, body, strlen(body));
		return;
	}
	snprintf(head, sizeof(head),
		 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n",
		 rt->status, strlen(rt->body));
	send_all(fd, head, strlen(head));
	send_all(fd, rt->body, strlen(rt->body));
}

static void *hs_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&hs.quit)) {
		struct pollfd p = {.fd = hs.lfd, .events = POLLIN};
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(hs.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		hs_serve(fd);
		close(fd);
	}
	return NULL;
}

static int hs_setup(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);

	(void)state;
	memset(&hs, 0, sizeof(hs));
	pthread_mutex_init(&hs.lock, NULL);
	hs.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(hs.lfd >= 0);
	assert_int_equal(bind(hs.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(hs.lfd, 16), 0);
	assert_int_equal(getsockname(hs.lfd, (struct sockaddr *)&a, &al), 0);
	hs.port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&hs.th, NULL, hs_main, NULL), 0);
	return 0;
}

static int hs_teardown(void **state)
{
	(void)state;
	atomic_store(&hs.quit, 1);
	pthread_join(hs.th, NULL);
	close(hs.lfd);
	for (size_t i = 0; i < hs.n; i++)
		free(hs.routes[i].body);
	pthread_mutex_destroy(&hs.lock);
	return 0;
}

static kube_client *client_for(int port, long timeout_ms)
{
	char url[64];
	kube_config cfg = {0};
	kube_client_opts o;
	kube_client *c = NULL;
	sigil_err err = {0};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	cfg.server = url;
	cfg.token = "sigil-ca-token";
	cfg.namespace_ = "sigil";
	kube_client_opts_init(&o);
	o.qps = 0;
	o.max_retries = 0;
	o.timeout_ms = timeout_ms;
	o.connect_timeout_ms = timeout_ms;
	assert_int_equal(kube_client_new(&cfg, &o, &c, &err), 0);
	return c;
}

static void seed_cluster(void)
{
	hs_route("/api/v1/namespaces/shop/pods/web-0", 200, POD_WEB);
	hs_route("/api/v1/nodes/node-a", 200, NODE_A);
	hs_route("/api/v1/namespaces/shop/persistentvolumeclaims/web-0-listener", 200,
		 PVC_EPHEMERAL);
	hs_route("/api/v1/namespaces/shop/persistentvolumeclaims/shared-claim", 200, PVC_SHARED);
	hs_route("/apis/listeners.stackable.tech/v1alpha1/namespaces/shop/listeners/web-0-listener",
		 200, LISTENER_EPHEMERAL);
	hs_route("/apis/listeners.stackable.tech/v1alpha1/namespaces/shop/listeners/web-lb", 200,
		 LISTENER_LB);
}

/* ---- from_json ------------------------------------------------------------------------ */

static bool has(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static void test_pod_and_node(void **state)
{
	json_t *pod = J(POD_WEB), *node = J(NODE_A);
	kube_pod_info *pi = NULL;
	sigil_err err = {0};

	(void)state;
	assert_int_equal(kube_pod_info_from_json(pod, node, &pi, &err), 0);
	assert_string_equal(pi->namespace_, "shop");
	assert_string_equal(pi->name, "web-0");
	assert_string_equal(pi->uid, "0b5e8f5e-2222-4d0e-8a0e-9c3b1b2a3c4d");
	assert_string_equal(pi->node_name, "node-a");
	assert_string_equal(pi->subdomain, "web");
	assert_string_equal(pi->hostname, "web-0");
	assert_string_equal(pi->phase, "Running");
	assert_false(kube_pod_info_terminated(pi));
	/* podIPs wins over podIP; both families kept. */
	assert_int_equal(pi->n_pod_ips, 2);
	assert_string_equal(pi->pod_ips[0], "10.244.1.7");
	assert_string_equal(pi->pod_ips[1], "fd00::7");
	/* InternalIP and ExternalIP only, as Stackable's node scope. */
	assert_int_equal(pi->n_node_ips, 2);
	assert_true(has(pi->node_ips, pi->n_node_ips, "192.168.1.11"));
	assert_true(has(pi->node_ips, pi->n_node_ips, "203.0.113.11"));
	assert_int_equal(pi->n_listeners, 0);
	kube_pod_info_free(pi);
	json_decref(pod);
	json_decref(node);
}

static void test_identity_names(void **state)
{
	json_t *pod = J(POD_WEB), *node = J(NODE_A);
	json_t *l = J(LISTENER_EPHEMERAL);
	kube_pod_info *pi = NULL;
	ca_listener ls[KUBE_POD_MAX_LISTENERS];
	ca_identity id = {.cluster_domain = "cluster.example"};
	ca_scope scopes[] = {{CA_SCOPE_NODE, NULL},
			     {CA_SCOPE_POD, NULL},
			     {CA_SCOPE_SERVICE, "web"},
			     {CA_SCOPE_LISTENER_VOLUME, "listener"}};
	ca_names names = {0};
	sigil_err err = {0};

	(void)state;
	assert_int_equal(kube_pod_info_from_json(pod, node, &pi, &err), 0);
	pi->listeners = calloc(1, sizeof(*pi->listeners));
	assert_non_null(pi->listeners);
	assert_int_equal(kube_pod_listener_from_json(l, "listener", &pi->listeners[0], &err), 0);
	pi->n_listeners = 1;
	kube_pod_info_identity(pi, &id, ls);
	assert_string_equal(id.cluster_domain, "cluster.example"); /* left as it was */
	assert_string_equal(id.node_name, "node-a");
	assert_int_equal(ca_scopes_to_names(&id, scopes, 4, &names, &err), 0);
	assert_string_equal(names.common_name, "web-0");
	assert_true(has(names.dns, names.n_dns, "node-a"));
	assert_true(has(names.dns, names.n_dns, "web.shop.svc.cluster.example"));
	assert_true(has(names.dns, names.n_dns, "web-0.web.shop.svc.cluster.example"));
	assert_true(has(names.dns, names.n_dns, "node-a.example.com"));
	assert_true(has(names.ips, names.n_ips, "192.168.1.11"));
	assert_true(has(names.ips, names.n_ips, "203.0.113.11"));
	assert_true(has(names.ips, names.n_ips, "10.244.1.7"));
	assert_true(has(names.ips, names.n_ips, "fd00::7"));
	assert_int_equal(names.n_dns, 4);
	assert_int_equal(names.n_ips, 4);
	ca_names_free(&names);
	kube_pod_info_free(pi);
	json_decref(pod);
	json_decref(node);
	json_decref(l);
}

/* spec.hostname names the pod in DNS: host.sub.ns.svc, not pod.sub. */
static void test_hostname_differs(void **state)
{
	json_t *pod = J("{\"kind\":\"Pod\",\"metadata\":{\"name\":\"db-x7\",\"namespace\":\"ns\"},"
			"\"spec\":{\"hostname\":\"host\",\"subdomain\":\"sub\"},"
			"\"status\":{\"podIP\":\"10.0.0.9\"}}");
	kube_pod_info *pi = NULL;
	ca_listener ls[KUBE_POD_MAX_LISTENERS];
	ca_identity id = {0};
	ca_scope sc = {CA_SCOPE_POD, NULL};
	ca_names names = {0};
	sigil_err err = {0};

	(void)state;
	assert_int_equal(kube_pod_info_from_json(pod, NULL, &pi, &err), 0);
	assert_null(pi->node_name); /* not scheduled */
	assert_int_equal(pi->n_pod_ips, 1); /* the older podIP field */
	kube_pod_info_identity(pi, &id, ls);
	assert_int_equal(ca_scopes_to_names(&id, &sc, 1, &names, &err), 0);
	assert_int_equal(names.n_dns, 2);
	assert_string_equal(names.dns[0], "sub.ns.svc.cluster.local");
	assert_string_equal(names.dns[1], "host.sub.ns.svc.cluster.local");
	assert_string_equal(names.ips[0], "10.0.0.9");
	ca_names_free(&names);
	kube_pod_info_free(pi);
	json_decref(pod);
}

static void expect_pod_fails(const char *text, int code)
{
	json_t *pod = J(text);
	kube_pod_info *pi = NULL;
	sigil_err err = {0};

	assert_int_equal(kube_pod_info_from_json(pod, NULL, &pi, &err), code);
	assert_null(pi);
	assert_int_equal(err.code, code);
	assert_true(err.msg[0] != '\0');
	json_decref(pod);
}

static void test_bad_pods(void **state)
{
	char big[2048];
	size_t o;

	(void)state;
	expect_pod_fails("[]", SIGIL_E_CORRUPT);
	expect_pod_fails("{\"kind\":\"Node\",\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"kind\":\"Pod\"}", SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\"}}", SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"Bad_NS\"}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a/b\",\"namespace\":\"b\"}}", SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":7,\"namespace\":\"b\"}}", SIGIL_E_CORRUPT);
	/* An embedded NUL must not cut a name short. */
	expect_pod_fails("{\"metadata\":{\"name\":\"a\\u0000.evil\",\"namespace\":\"b\"}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\",\"uid\":\"x y\"}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},\"spec\":[]}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},"
			 "\"spec\":{\"nodeName\":\"node a\"}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},"
			 "\"spec\":{\"subdomain\":\"x.y\"}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},"
			 "\"spec\":{\"hostname\":\"-x\"}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},"
			 "\"status\":{\"podIPs\":[{\"ip\":\"10.0.0.300\"}]}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},"
			 "\"status\":{\"podIPs\":[\"10.0.0.3\"]}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},"
			 "\"status\":{\"podIPs\":{}}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},"
			 "\"status\":{\"podIP\":\"example.com\"}}",
			 SIGIL_E_CORRUPT);
	expect_pod_fails("{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},"
			 "\"status\":{\"phase\":\"Run ning\"}}",
			 SIGIL_E_CORRUPT);
	/* Oversized: a 254-byte name, and more pod IPs than the limit. */
	o = (size_t)snprintf(big, sizeof(big), "{\"metadata\":{\"namespace\":\"b\",\"name\":\"");
	memset(big + o, 'a', 254);
	o += 254;
	snprintf(big + o, sizeof(big) - o, "\"}}");
	expect_pod_fails(big, SIGIL_E_CORRUPT);
	o = (size_t)snprintf(big, sizeof(big),
			     "{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},\"status\":{"
			     "\"podIPs\":[");
	for (int i = 0; i <= KUBE_POD_MAX_IPS; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%s{\"ip\":\"10.0.0.%d\"}",
				      i ? "," : "", i + 1);
	snprintf(big + o, sizeof(big) - o, "]}}");
	expect_pod_fails(big, SIGIL_E_LIMIT);
}

static void test_terminated(void **state)
{
	const char *cases[][2] = {
		{"{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},\"status\":{\"phase\":\"Succeeded\"}}", "1"},
		{"{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},\"status\":{\"phase\":\"Failed\"}}", "1"},
		{"{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},\"status\":{\"phase\":\"Pending\"}}", "0"},
		{"{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"}}", "0"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *pod = J(cases[i][0]);
		kube_pod_info *pi = NULL;
		sigil_err err = {0};

		assert_int_equal(kube_pod_info_from_json(pod, NULL, &pi, &err), 0);
		assert_int_equal(kube_pod_info_terminated(pi), cases[i][1][0] == '1');
		kube_pod_info_free(pi);
		json_decref(pod);
	}
}

static void expect_node_fails(const char *node_text, int code)
{
	json_t *pod = J(POD_WEB), *node = J(node_text);
	kube_pod_info *pi = NULL;
	sigil_err err = {0};

	assert_int_equal(kube_pod_info_from_json(pod, node, &pi, &err), code);
	assert_null(pi);
	assert_true(err.msg[0] != '\0');
	json_decref(pod);
	json_decref(node);
}

static void test_bad_nodes(void **state)
{
	char big[8192];
	size_t o;

	(void)state;
	expect_node_fails("[]", SIGIL_E_CORRUPT);
	expect_node_fails("{\"metadata\":{}}", SIGIL_E_CORRUPT);
	/* A node that is not the pod's. */
	expect_node_fails("{\"metadata\":{\"name\":\"node-b\"}}", SIGIL_E_INVALID);
	expect_node_fails("{\"metadata\":{\"name\":\"node-a\"},\"status\":{\"addresses\":{}}}",
			  SIGIL_E_CORRUPT);
	expect_node_fails("{\"metadata\":{\"name\":\"node-a\"},\"status\":{\"addresses\":["
			  "{\"type\":\"InternalIP\",\"address\":\"192.168.1.x\"}]}}",
			  SIGIL_E_CORRUPT);
	expect_node_fails("{\"metadata\":{\"name\":\"node-a\"},\"status\":{\"addresses\":["
			  "{\"type\":\"InternalIP\"}]}}",
			  SIGIL_E_CORRUPT);
	expect_node_fails("{\"metadata\":{\"name\":\"node-a\"},\"status\":{\"addresses\":[7]}}",
			  SIGIL_E_CORRUPT);
	o = (size_t)snprintf(big, sizeof(big),
			     "{\"metadata\":{\"name\":\"node-a\"},\"status\":{\"addresses\":[");
	for (int i = 0; i < 65; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o,
				      "%s{\"type\":\"Hostname\",\"address\":\"h%d\"}", i ? "," : "",
				      i);
	snprintf(big + o, sizeof(big) - o, "]}}");
	expect_node_fails(big, SIGIL_E_LIMIT);
	/* A node without addresses is fine: just no IPs. */
	{
		json_t *pod = J(POD_WEB), *node = J("{\"metadata\":{\"name\":\"node-a\"}}");
		kube_pod_info *pi = NULL;
		sigil_err err = {0};

		assert_int_equal(kube_pod_info_from_json(pod, node, &pi, &err), 0);
		assert_int_equal(pi->n_node_ips, 0);
		kube_pod_info_free(pi);
		json_decref(pod);
		json_decref(node);
	}
}

static void test_volume_claim_names(void **state)
{
	json_t *pod = J(POD_WEB);
	char *name = NULL;
	sigil_err err = {0};
	char big[600];
	json_t *bp;

	(void)state;
	assert_int_equal(kube_pod_volume_claim_name(pod, "listener", &name, &err), 0);
	assert_string_equal(name, "web-0-listener");
	free(name);
	assert_int_equal(kube_pod_volume_claim_name(pod, "shared", &name, &err), 0);
	assert_string_equal(name, "shared-claim");
	free(name);
	name = NULL;
	assert_int_equal(kube_pod_volume_claim_name(pod, "nope", &name, &err), SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "nope"));
	assert_int_equal(kube_pod_volume_claim_name(pod, "scratch", &name, &err), SIGIL_E_PRECOND);
	assert_int_equal(kube_pod_volume_claim_name(pod, "Bad/Name", &name, &err),
			 SIGIL_E_INVALID);
	assert_null(name);
	/* <pod>-<volume> longer than a name may be. */
	/* A valid 250-byte pod name: DNS labels of 49 joined by dots. */
	memset(big, 'p', 250);
	for (size_t i = 49; i < 249; i += 50)
		big[i] = '.';
	big[250] = '\0';
	bp = json_pack("{s:{s:s,s:s},s:{s:[{s:s,s:{}}]}}", "metadata", "name", big, "namespace",
		       "ns", "spec", "volumes", "name", "listener", "ephemeral");
	assert_non_null(bp);
	assert_int_equal(kube_pod_volume_claim_name(bp, "listener", &name, &err), SIGIL_E_LIMIT);
	json_decref(bp);
	bp = J("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"volumes\":[{\"name\":\"v\","
	       "\"persistentVolumeClaim\":{\"claimName\":\"../x\"}}]}}");
	assert_int_equal(kube_pod_volume_claim_name(bp, "v", &name, &err), SIGIL_E_CORRUPT);
	json_decref(bp);
	bp = J("{\"metadata\":{\"name\":\"a\"},\"spec\":{\"volumes\":7}}");
	assert_int_equal(kube_pod_volume_claim_name(bp, "v", &name, &err), SIGIL_E_CORRUPT);
	json_decref(bp);
	json_decref(pod);
}

static void expect_listener(const char *text, int code)
{
	json_t *l = J(text);
	kube_pod_listener out = {0};
	sigil_err err = {0};

	assert_int_equal(kube_pod_listener_from_json(l, "lv", &out, &err), code);
	assert_null(out.addresses);
	assert_true(err.msg[0] != '\0');
	json_decref(l);
}

static void test_listeners(void **state)
{
	json_t *l = J(LISTENER_EPHEMERAL);
	kube_pod_listener out = {0};
	sigil_err err = {0};
	char big[4096];
	size_t o;

	(void)state;
	assert_int_equal(kube_pod_listener_from_json(l, "listener", &out, &err), 0);
	assert_string_equal(out.volume_name, "listener");
	assert_int_equal(out.n_addresses, 2);
	assert_string_equal(out.addresses[0], "203.0.113.11");
	assert_string_equal(out.addresses[1], "node-a.example.com");
	kube_pod_listener_clear(&out);
	kube_pod_listener_clear(NULL);
	json_decref(l);
	/* Duplicates (one per port in some setups) are kept once. */
	l = J("{\"metadata\":{\"name\":\"x\"},\"status\":{\"ingressAddresses\":["
	      "{\"address\":\"10.1.2.3\",\"addressType\":\"IP\"},"
	      "{\"address\":\"10.1.2.3\",\"addressType\":\"IP\"},{\"address\":\"h.example\"}]}}");
	assert_int_equal(kube_pod_listener_from_json(l, "lv", &out, &err), 0);
	assert_int_equal(out.n_addresses, 2);
	kube_pod_listener_clear(&out);
	json_decref(l);

	expect_listener("{\"metadata\":{\"name\":\"x\"}}", SIGIL_E_PRECOND);
	expect_listener("{\"metadata\":{\"name\":\"x\"},\"status\":{\"ingressAddresses\":[]}}",
			SIGIL_E_PRECOND);
	expect_listener("{\"metadata\":{\"name\":\"x\"},\"status\":{\"ingressAddresses\":{}}}",
			SIGIL_E_CORRUPT);
	expect_listener("{\"metadata\":{\"name\":\"x\"},\"status\":{\"ingressAddresses\":["
			"{\"address\":\"h.example\",\"addressType\":\"IP\"}]}}",
			SIGIL_E_CORRUPT);
	expect_listener("{\"metadata\":{\"name\":\"x\"},\"status\":{\"ingressAddresses\":["
			"{\"address\":\"bad host!\",\"addressType\":\"Hostname\"}]}}",
			SIGIL_E_CORRUPT);
	expect_listener("{\"metadata\":{\"name\":\"x\"},\"status\":{\"ingressAddresses\":["
			"{\"addressType\":\"Hostname\"}]}}",
			SIGIL_E_CORRUPT);
	expect_listener("[1]", SIGIL_E_CORRUPT);
	o = (size_t)snprintf(big, sizeof(big),
			     "{\"metadata\":{\"name\":\"x\"},\"status\":{\"ingressAddresses\":[");
	for (int i = 0; i <= KUBE_POD_MAX_LISTENER_ADDRS; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%s{\"address\":\"10.9.0.%d\"}",
				      i ? "," : "", i + 1);
	snprintf(big + o, sizeof(big) - o, "]}}");
	expect_listener(big, SIGIL_E_LIMIT);
}

/* ---- kube_pod_info_get -------------------------------------------------------------------- */

static void test_get_everything(void **state)
{
	kube_client *c;
	kube_pod_info *pi = NULL;
	const char *vols[] = {"listener", "shared", "listener"};
	sigil_err err = {0};

	(void)state;
	seed_cluster();
	c = client_for(hs.port, 5000);
	assert_int_equal(kube_pod_info_get(c, "shop", "web-0", true, vols, 3, &pi, &err), 0);
	assert_string_equal(pi->node_name, "node-a");
	assert_int_equal(pi->n_node_ips, 2);
	assert_int_equal(pi->n_listeners, 2); /* the repeated volume once */
	assert_string_equal(pi->listeners[0].volume_name, "listener");
	assert_int_equal(pi->listeners[0].n_addresses, 2);
	/* The PVC's listener-name annotation points at a shared Listener. */
	assert_string_equal(pi->listeners[1].volume_name, "shared");
	assert_int_equal(pi->listeners[1].n_addresses, 1);
	assert_string_equal(pi->listeners[1].addresses[0], "web.example.com");
	kube_pod_info_free(pi);
	pi = NULL;
	/* Without want_node the node is not read. */
	pthread_mutex_lock(&hs.lock);
	hs.hits = 0;
	pthread_mutex_unlock(&hs.lock);
	assert_int_equal(kube_pod_info_get(c, "shop", "web-0", false, NULL, 0, &pi, &err), 0);
	assert_int_equal(pi->n_node_ips, 0);
	assert_int_equal(hs.hits, 1);
	kube_pod_info_free(pi);
	kube_client_free(c);
}

static void test_get_errors(void **state)
{
	kube_client *c;
	kube_pod_info *pi = NULL;
	const char *nope[] = {"nope"}, *lis[] = {"listener"}, *shared[] = {"shared"};
	const char *many[KUBE_POD_MAX_LISTENERS + 1];
	sigil_err err = {0};

	(void)state;
	hs_route("/api/v1/namespaces/shop/pods/web-0", 200, POD_WEB);
	hs_route("/api/v1/namespaces/shop/pods/pending", 200,
		 "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"pending\",\"namespace\":\"shop\"},"
		 "\"spec\":{},\"status\":{\"phase\":\"Pending\"}}");
	hs_route("/api/v1/namespaces/shop/pods/liar", 200, POD_WEB);
	hs_route("/api/v1/namespaces/shop/persistentvolumeclaims/shared-claim", 200, PVC_SHARED);
	hs_route("/apis/listeners.stackable.tech/v1alpha1/namespaces/shop/listeners/web-lb", 200,
		 "{\"metadata\":{\"name\":\"web-lb\",\"namespace\":\"shop\"},\"status\":{}}");
	hs_route("/api/v1/namespaces/shop/pods/flaky", 503,
		 "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"etcd down\","
		 "\"reason\":\"ServiceUnavailable\",\"code\":503}");
	hs_route("/api/v1/namespaces/shop/pods/secret", 403,
		 "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"pods is forbidden\","
		 "\"reason\":\"Forbidden\",\"code\":403}");
	hs_route("/api/v1/namespaces/shop/pods/slow", 0, "");
	c = client_for(hs.port, 1500);

	assert_int_equal(kube_pod_info_get(c, "shop", "gone", false, NULL, 0, &pi, &err),
			 SIGIL_E_NOTFOUND);
	assert_int_equal(kube_pod_info_get(c, "shop", "web-0", true, NULL, 0, &pi, &err),
			 SIGIL_E_PRECOND); /* the node object is missing */
	assert_int_equal(kube_pod_info_get(c, "shop", "pending", true, NULL, 0, &pi, &err),
			 SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "not scheduled"));
	assert_int_equal(kube_pod_info_get(c, "shop", "liar", false, NULL, 0, &pi, &err),
			 SIGIL_E_CORRUPT);
	assert_int_equal(kube_pod_info_get(c, "shop", "web-0", false, nope, 1, &pi, &err),
			 SIGIL_E_PRECOND);
	assert_int_equal(kube_pod_info_get(c, "shop", "web-0", false, lis, 1, &pi, &err),
			 SIGIL_E_PRECOND); /* PVC not made yet */
	assert_non_null(strstr(err.msg, "listener-volume=listener"));
	assert_int_equal(kube_pod_info_get(c, "shop", "web-0", false, shared, 1, &pi, &err),
			 SIGIL_E_PRECOND); /* Listener has no address yet */
	assert_int_equal(kube_pod_info_get(c, "shop", "flaky", false, NULL, 0, &pi, &err),
			 SIGIL_E_UNAVAIL);
	assert_int_equal(kube_pod_info_get(c, "shop", "secret", false, NULL, 0, &pi, &err),
			 SIGIL_E_PRECOND);
	assert_non_null(strstr(err.msg, "RBAC"));
	/* No answer in time is the apiserver being unavailable, not a
	 * deadline of the caller's. */
	assert_int_equal(kube_pod_info_get(c, "shop", "slow", false, NULL, 0, &pi, &err),
			 SIGIL_E_UNAVAIL);
	assert_int_equal(err.code, SIGIL_E_UNAVAIL);
	for (size_t i = 0; i <= KUBE_POD_MAX_LISTENERS; i++)
		many[i] = "listener";
	assert_int_equal(kube_pod_info_get(c, "shop", "web-0", false, many,
					   KUBE_POD_MAX_LISTENERS + 1, &pi, &err),
			 SIGIL_E_LIMIT);
	assert_int_equal(kube_pod_info_get(c, "Bad NS", "web-0", false, NULL, 0, &pi, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(kube_pod_info_get(c, NULL, "web-0", false, NULL, 0, &pi, &err),
			 SIGIL_E_INVALID);
	assert_null(pi);
	kube_client_free(c);
}

static void test_apiserver_down(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;
	kube_client *c;
	kube_pod_info *pi = NULL;
	sigil_err err = {0};

	(void)state;
	/* A port that was just free: nothing listens there. */
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	port = ntohs(a.sin_port);
	close(fd);
	c = client_for(port, 2000);
	assert_int_equal(kube_pod_info_get(c, "shop", "web-0", true, NULL, 0, &pi, &err),
			 SIGIL_E_UNAVAIL);
	assert_non_null(strstr(err.msg, "cannot reach"));
	assert_null(pi);
	kube_client_free(c);
	kube_pod_info_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_terminated),
		cmocka_unit_test(test_pod_and_node),
	    cmocka_unit_test(test_identity_names),
	    cmocka_unit_test(test_hostname_differs),
	    cmocka_unit_test(test_bad_pods),
	    cmocka_unit_test(test_bad_nodes),
	    cmocka_unit_test(test_volume_claim_names),
	    cmocka_unit_test(test_listeners),
	    cmocka_unit_test_setup_teardown(test_get_everything, hs_setup, hs_teardown),
	    cmocka_unit_test_setup_teardown(test_get_errors, hs_setup, hs_teardown),
	    cmocka_unit_test(test_apiserver_down),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
