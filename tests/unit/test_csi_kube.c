/* csi/kube: the restarter annotation key and value, PVC annotation
 * filtering (good, garbage, truncated, oversized), and the Event queue
 * (sent in order with the core/v1 Event shape, overflow drops and counts
 * without blocking) against a small gated HTTP server on 127.0.0.1. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "csi/kube.h"
#include "util/parse.h"

/* ---- restarter key and value ------------------------------------------------ */

static void test_restarter_key(void **state)
{
	char k1[128], k2[128], k3[128];
	const char *vol = "pvc-4a6f2c1e-0d7b-4c55-9e1a-2b3c4d5e6f70";

	/* Known answer: Python hashlib.sha256(b"secrets.stackable.tech/volume:"
	 * + vol).hexdigest()[:32], the tag Stackable's tag_pod() writes. */
	csi_kube_restarter_key(CSI_KUBE_STACKABLE_RESTARTER_PREFIX, vol, k1);
	assert_string_equal(k1, "restarter.stackable.tech/expires-at.26a3cb692d2f2119b4e68bdffe762329");
	csi_kube_restarter_key(CSI_KUBE_RESTARTER_PREFIX, vol, k2);
	assert_string_equal(k2, "restarter.sigil.dev/expires-at.26a3cb692d2f2119b4e68bdffe762329");
	/* Another volume, another tag. */
	csi_kube_restarter_key(CSI_KUBE_RESTARTER_PREFIX, "pvc-other", k3);
	assert_int_equal(strlen(k3), strlen(k2));
	assert_string_not_equal(k3, k2);
	/* The key is a valid annotation name: prefix/name with name <= 63. */
	const char *slash = strchr(k2, '/');
	assert_non_null(slash);
	assert_true(strlen(slash + 1) <= 63);
	/* An over-long prefix is cut, never overflows. */
	char longp[300];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	csi_kube_restarter_key(longp, vol, k3);
	assert_int_equal(strlen(k3), 127);
	assert_string_equal(k3 + 127 - 32, "26a3cb692d2f2119b4e68bdffe762329");
}

static void test_expiry_format(void **state)
{
	char ts[32];

	assert_int_equal(csi_kube_format_expiry(0, false, ts), 0);
	assert_string_equal(ts, "1970-01-01T00:00:00Z");
	/* 2030-06-15T12:34:56Z */
	assert_int_equal(csi_kube_format_expiry(1907757296, false, ts), 0);
	assert_string_equal(ts, "2030-06-15T12:34:56Z");
	assert_int_equal(csi_kube_format_expiry(1907757296, true, ts), 0);
	assert_string_equal(ts, "2030-06-15T12:34:56+00:00");
}

/* ---- PVC annotations ---------------------------------------------------------- */

static json_t *pvc_with(json_t *annotations)
{
	json_t *pvc = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
				"PersistentVolumeClaim", "metadata", "name", "web-0-tls", "namespace",
				"default");
	if (annotations)
		json_object_set_new(json_object_get(pvc, "metadata"), "annotations", annotations);
	return pvc;
}

static const char *kv_get(const csi_kv *kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(kv[i].key, key))
			return kv[i].value;
	return NULL;
}

static void test_pvc_filter_both_prefixes(void **state)
{
	json_t *pvc = pvc_with(json_pack(
		"{s:s, s:s, s:s, s:s, s:s}", "secrets.sigil.dev/class", "tls",
		"secrets.stackable.tech/scope", "pod,node", "volume.kubernetes.io/storage-provisioner",
		"secrets.sigil.dev", "kubectl.kubernetes.io/last-applied-configuration", "{}",
		"secrets.stackable.tech/format.compatibility.tls-pkcs12.password", "changeit"));
	csi_kv *kv = NULL;
	size_t n = 99;
	sigil_err err = {0};

	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(kv_get(kv, n, "secrets.sigil.dev/class"), "tls");
	assert_string_equal(kv_get(kv, n, "secrets.stackable.tech/scope"), "pod,node");
	assert_string_equal(
		kv_get(kv, n, "secrets.stackable.tech/format.compatibility.tls-pkcs12.password"),
		"changeit");
	assert_null(kv_get(kv, n, "volume.kubernetes.io/storage-provisioner"));
	csi_kube_kv_free(kv, n);
	json_decref(pvc);

	/* No annotations at all, or null: an empty list, not an error. */
	pvc = pvc_with(NULL);
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), 0);
	assert_int_equal(n, 0);
	csi_kube_kv_free(kv, n);
	json_decref(pvc);
	pvc = pvc_with(json_null());
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), 0);
	assert_int_equal(n, 0);
	csi_kube_kv_free(kv, n);
	json_decref(pvc);
}

static void test_pvc_filter_garbage(void **state)
{
	csi_kv *kv = (csi_kv *)0x1;
	size_t n = 77;
	sigil_err err = {0};
	json_t *pvc;

	pvc = json_string("PersistentVolumeClaim");
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), SIGIL_E_INVALID);
	json_decref(pvc);

	pvc = json_pack("{s:[]}", "metadata");
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), SIGIL_E_INVALID);
	json_decref(pvc);

	pvc = pvc_with(json_pack("[s]", "secrets.sigil.dev/class"));
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "annotations"));
	json_decref(pvc);

	/* A value that is not a string names the key. */
	pvc = pvc_with(json_pack("{s:s, s:i}", "secrets.sigil.dev/class", "tls",
				 "secrets.sigil.dev/backend.autotls.cert.lifetime", 3600));
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "secrets.sigil.dev/backend.autotls.cert.lifetime"));
	json_decref(pvc);

	/* An embedded NUL would cut the value short further down. */
	pvc = pvc_with(json_pack("{s:s%}", "secrets.sigil.dev/class", "tls\0evil", (size_t)8));
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), SIGIL_E_INVALID);
	assert_non_null(strstr(err.msg, "secrets.sigil.dev/class"));
	json_decref(pvc);

	/* Out-params untouched on failure. */
	assert_ptr_equal(kv, (csi_kv *)0x1);
	assert_int_equal(n, 77);
}

static void test_pvc_filter_oversized(void **state)
{
	csi_kv *kv = NULL;
	size_t n = 0;
	sigil_err err = {0};
	char key[CSI_MAX_ATTR_KEY_LEN + 40];
	char *big = malloc(CSI_MAX_ATTR_LEN + 2);
	json_t *ann, *pvc;

	/* A value of exactly the limit passes, one byte more fails. */
	memset(big, 'x', CSI_MAX_ATTR_LEN + 1);
	big[CSI_MAX_ATTR_LEN] = '\0';
	pvc = pvc_with(json_pack("{s:s}", "secrets.sigil.dev/class", big));
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), 0);
	assert_int_equal(strlen(kv[0].value), CSI_MAX_ATTR_LEN);
	csi_kube_kv_free(kv, n);
	json_decref(pvc);
	big[CSI_MAX_ATTR_LEN] = 'x';
	big[CSI_MAX_ATTR_LEN + 1] = '\0';
	pvc = pvc_with(json_pack("{s:s}", "secrets.sigil.dev/class", big));
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), SIGIL_E_LIMIT);
	assert_non_null(strstr(err.msg, "secrets.sigil.dev/class"));
	json_decref(pvc);
	/* Huge values under other prefixes are not ours and are ignored. */
	pvc = pvc_with(json_pack("{s:s}", "example.com/blob", big));
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), 0);
	assert_int_equal(n, 0);
	csi_kube_kv_free(kv, n);
	json_decref(pvc);
	free(big);

	/* An over-long key. */
	snprintf(key, sizeof(key), "secrets.sigil.dev/%0*d", CSI_MAX_ATTR_KEY_LEN, 7);
	pvc = pvc_with(json_pack("{s:s}", key, "v"));
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), SIGIL_E_LIMIT);
	json_decref(pvc);

	/* CSI_MAX_ATTRS matching keys pass, one more fails. */
	ann = json_object();
	for (int i = 0; i < CSI_MAX_ATTRS; i++) {
		snprintf(key, sizeof(key), "secrets.sigil.dev/k%d", i);
		json_object_set_new(ann, key, json_string("v"));
	}
	pvc = pvc_with(ann);
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), 0);
	assert_int_equal(n, CSI_MAX_ATTRS);
	csi_kube_kv_free(kv, n);
	json_object_set_new(ann, "secrets.stackable.tech/one-more", json_string("v"));
	assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), SIGIL_E_LIMIT);
	json_decref(pvc);
}

static void test_pvc_filter_truncated(void **state)
{
	const char *text =
		"{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":"
		"\"web-0-tls\",\"namespace\":\"default\",\"annotations\":{\"secrets.sigil.dev/"
		"class\":\"tls\",\"secrets.stackable.tech/scope\":\"pod\"}},\"spec\":{}}";
	size_t len = strlen(text), parsed = 0;

	/* Every prefix of a real object: either jansson refuses it or the
	 * filter gives a clean answer; the whole object yields both keys. */
	for (size_t cut = 0; cut <= len; cut++) {
		json_t *pvc = json_loadb(text, cut, 0, NULL);
		csi_kv *kv = NULL;
		size_t n = 0;
		sigil_err err = {0};

		if (!pvc)
			continue;
		parsed++;
		assert_int_equal(csi_kube_pvc_filter(pvc, &kv, &n, &err), 0);
		if (cut == len)
			assert_int_equal(n, 2);
		csi_kube_kv_free(kv, n);
		json_decref(pvc);
	}
	assert_int_equal(parsed, 1);
}

/* ---- Events ------------------------------------------------------------------ */

#define MAX_EV_REQS 32

/* A gated HTTP server: reads requests, holds each answer until the gate
 * opens, then answers 201 with the body back (as the apiserver does). */
typedef struct ev_server {
	int lfd, port;
	pthread_t th;
	atomic_int quit, gate_open;
	pthread_mutex_t lock;
	char *bodies[MAX_EV_REQS];
	char *heads[MAX_EV_REQS];
	size_t n;
} ev_server;

static ev_server es;

static bool read_request(int fd, char **head, char **body)
{
	char buf[65536];
	size_t got = 0, clen = 0;
	char *end = NULL, *cl;

	while (!end && got < sizeof(buf) - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 50) == 0) {
			if (atomic_load(&es.quit))
				return false;
			continue;
		}
		ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (r <= 0)
			return false;
		got += (size_t)r;
		buf[got] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	if (!end)
		return false;
	cl = strcasestr(buf, "\r\nContent-Length:");
	if (cl && cl < end) {
		int64_t v;
		char num[16] = {0};
		const char *p = cl + 17;
		while (*p == ' ')
			p++;
		for (size_t i = 0; i < sizeof(num) - 1 && p[i] >= '0' && p[i] <= '9'; i++)
			num[i] = p[i];
		if (sigil_parse_int64(num, 0, (int64_t)sizeof(buf), &v) == 0)
			clen = (size_t)v;
	}
	size_t hl = (size_t)(end - buf) + 4;
	while (got < hl + clen && got < sizeof(buf) - 1) {
		ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	buf[got] = '\0';
	*head = strndup(buf, hl);
	*body = strndup(buf + hl, got - hl);
	return true;
}

static void *ev_server_main(void *arg)
{
	while (!atomic_load(&es.quit)) {
		struct pollfd p = {.fd = es.lfd, .events = POLLIN};
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(es.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		for (;;) { /* keep-alive: several requests per connection */
			char *head = NULL, *body = NULL, resp[65536 + 256];
			if (!read_request(fd, &head, &body))
				break;
			pthread_mutex_lock(&es.lock);
			if (es.n < MAX_EV_REQS) {
				es.heads[es.n] = head;
				es.bodies[es.n++] = body;
			} else {
				free(head);
				free(body);
				body = NULL;
			}
			pthread_mutex_unlock(&es.lock);
			while (!atomic_load(&es.gate_open) && !atomic_load(&es.quit))
				usleep(10000);
			int l = snprintf(resp, sizeof(resp),
					 "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
					 "Content-Length: %zu\r\n\r\n%s",
					 body ? strlen(body) : 2, body ? body : "{}");
			if (send(fd, resp, (size_t)l, MSG_NOSIGNAL) < 0)
				break;
		}
		close(fd);
	}
	return NULL;
}

static int ev_setup(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	memset(&es, 0, sizeof(es));
	pthread_mutex_init(&es.lock, NULL);
	es.lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (es.lfd < 0 || bind(es.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(es.lfd, 16) < 0 || getsockname(es.lfd, (struct sockaddr *)&a, &alen) < 0)
		return -1;
	es.port = ntohs(a.sin_port);
	return pthread_create(&es.th, NULL, ev_server_main, NULL) == 0 ? 0 : -1;
}

static int ev_teardown(void **state)
{
	atomic_store(&es.quit, 1);
	pthread_join(es.th, NULL);
	close(es.lfd);
	for (size_t i = 0; i < es.n; i++) {
		free(es.heads[i]);
		free(es.bodies[i]);
	}
	pthread_mutex_destroy(&es.lock);
	return 0;
}

static kube_client *ev_client(void)
{
	kube_config cfg = {0};
	kube_client_opts o;
	kube_client *c = NULL;
	char url[64];
	sigil_err err = {0};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", es.port);
	cfg.server = url;
	cfg.namespace_ = "default";
	kube_client_opts_init(&o);
	o.max_retries = 0;
	o.qps = 0;
	assert_int_equal(kube_client_new(&cfg, &o, &c, &err), 0);
	return c;
}

/* Waits (generously) until pred holds for the stats. */
static bool wait_stats(csi_kube *k, bool (*pred)(const csi_kube_stats *), csi_kube_stats *out)
{
	for (int i = 0; i < 2000; i++) {
		csi_kube_get_stats(k, out);
		if (pred(out))
			return true;
		usleep(10000);
	}
	return false;
}

static bool first_in_flight(const csi_kube_stats *s)
{
	return s->in_flight && s->queue_len == 0;
}

static void test_event_queue_overflow(void **state)
{
	kube_client *c = ev_client();
	csi_kube *k = NULL;
	csi_kube_stats st;
	sigil_err err = {0};
	csi_kube_config cfg = {
		.client = c,
		.node_name = "node-1",
		.component = "sigil-csi",
		.events = true,
		.event_queue_max = 4,
	};

	assert_int_equal(csi_kube_new(&cfg, &k, &err), 0);
	/* The first Event is taken by the sender, which then waits on the
	 * closed gate. */
	csi_kube_event(k, "default", "web-0", "0b5e8f5e-2222-4d0e-8a0e-9c3b1b2a3c4d",
		       CSI_KUBE_EVENT_NORMAL, "SecretIssued", "issued %s for volume %s", "tls",
		       "vol-0");
	assert_true(wait_stats(k, first_in_flight, &st));
	/* Four fit in the queue, the next three are dropped, and none of
	 * these calls waits for the apiserver. */
	for (int i = 1; i <= 7; i++)
		csi_kube_event(k, "default", "web-0", NULL, CSI_KUBE_EVENT_WARNING, "SecretFailed",
			       "failure %d", i);
	csi_kube_get_stats(k, &st);
	assert_int_equal(st.events_queued, 5);
	assert_int_equal(st.events_dropped, 3);
	assert_int_equal(st.queue_len, 4);
	assert_int_equal(st.events_sent, 0);
	/* Not flushed while the gate is closed. */
	assert_int_equal(csi_kube_flush_events(k, 50, &err), SIGIL_E_TIMEOUT);

	atomic_store(&es.gate_open, 1);
	assert_int_equal(csi_kube_flush_events(k, 20000, &err), 0);
	csi_kube_get_stats(k, &st);
	assert_int_equal(st.events_sent, 5);
	assert_int_equal(st.events_failed, 0);
	assert_int_equal(st.queue_len, 0);

	/* What the apiserver got: five Events, in order, shaped as core/v1. */
	pthread_mutex_lock(&es.lock);
	assert_int_equal(es.n, 5);
	assert_non_null(strstr(es.heads[0], "POST /api/v1/namespaces/default/events "));
	json_t *ev = json_loads(es.bodies[0], 0, NULL);
	assert_non_null(ev);
	const char *gn = NULL, *ik = NULL, *iname = NULL, *ins = NULL, *iuid = NULL, *iav = NULL;
	const char *reason = NULL, *msg = NULL, *type = NULL, *comp = NULL, *host = NULL;
	const char *first = NULL, *last = NULL, *rc = NULL, *ri = NULL, *kind = NULL, *mns = NULL;
	int count = 0;
	assert_int_equal(json_unpack(ev,
				     "{s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:s, "
				     "s:s, s:{s:s, s:s}, s:s, s:s, s:i, s:s, s:s}",
				     "kind", &kind, "metadata", "generateName", &gn, "namespace", &mns,
				     "involvedObject", "kind", &ik, "name", &iname, "namespace", &ins,
				     "uid", &iuid, "apiVersion", &iav, "reason", &reason, "message",
				     &msg, "type", &type, "source", "component", &comp, "host", &host,
				     "firstTimestamp", &first, "lastTimestamp", &last, "count", &count,
				     "reportingComponent", &rc, "reportingInstance", &ri),
			 0);
	assert_string_equal(kind, "Event");
	assert_string_equal(gn, "web-0.");
	assert_string_equal(mns, "default");
	assert_string_equal(ik, "Pod");
	assert_string_equal(iname, "web-0");
	assert_string_equal(ins, "default");
	assert_string_equal(iuid, "0b5e8f5e-2222-4d0e-8a0e-9c3b1b2a3c4d");
	assert_string_equal(iav, "v1");
	assert_string_equal(reason, "SecretIssued");
	assert_string_equal(msg, "issued tls for volume vol-0");
	assert_string_equal(type, "Normal");
	assert_string_equal(comp, "sigil-csi");
	assert_string_equal(host, "node-1");
	assert_int_equal(strlen(first), 20);
	assert_int_equal(first[19], 'Z');
	assert_string_equal(first, last);
	assert_int_equal(count, 1);
	assert_string_equal(rc, "sigil-csi");
	assert_string_equal(ri, "node-1");
	json_decref(ev);
	for (int i = 1; i < 5; i++) {
		char want[32];
		ev = json_loads(es.bodies[i], 0, NULL);
		assert_non_null(ev);
		snprintf(want, sizeof(want), "failure %d", i);
		assert_string_equal(json_string_value(json_object_get(ev, "message")), want);
		assert_string_equal(json_string_value(json_object_get(ev, "type")), "Warning");
		/* No uid given: none sent. */
		assert_null(json_object_get(json_object_get(ev, "involvedObject"), "uid"));
		json_decref(ev);
	}
	pthread_mutex_unlock(&es.lock);
	csi_kube_free(k);
	kube_client_free(c);
}

static bool any_sent(const csi_kube_stats *s)
{
	return s->events_sent >= 1;
}

static void test_event_bounds(void **state)
{
	kube_client *c = ev_client();
	csi_kube *k = NULL;
	csi_kube_stats st;
	sigil_err err = {0};
	csi_kube_config cfg = {.client = c, .node_name = "node-1", .events = true};
	char *huge = malloc(10000);

	atomic_store(&es.gate_open, 1);
	assert_int_equal(csi_kube_new(&cfg, &k, &err), 0);
	/* Names that cannot be Kubernetes names are not queued at all. */
	csi_kube_event(k, "default", "../etc", NULL, CSI_KUBE_EVENT_NORMAL, "X", "m");
	csi_kube_event(k, "", "web-0", NULL, CSI_KUBE_EVENT_NORMAL, "X", "m");
	csi_kube_get_stats(k, &st);
	assert_int_equal(st.events_queued, 0);
	/* An oversized message is cut to the limit; control characters and
	 * non-ASCII bytes become '?' (the JSON must be valid UTF-8). */
	memset(huge, 'm', 9999);
	huge[9999] = '\0';
	huge[0] = '\n';
	huge[1] = (char)0xff;
	csi_kube_event(k, "default", "web-0", NULL, CSI_KUBE_EVENT_WARNING, "SecretFailed", "%s",
		       huge);
	assert_true(wait_stats(k, any_sent, &st));
	pthread_mutex_lock(&es.lock);
	assert_int_equal(es.n, 1);
	json_t *ev = json_loads(es.bodies[0], 0, NULL);
	assert_non_null(ev);
	const char *msg = json_string_value(json_object_get(ev, "message"));
	assert_int_equal(strlen(msg), CSI_KUBE_EVENT_MAX_MESSAGE);
	assert_memory_equal(msg, "??mmm", 5);
	json_decref(ev);
	pthread_mutex_unlock(&es.lock);
	/* The default component is sigil-csi. */
	csi_kube_free(k);
	free(huge);

	/* Events off: nothing is queued, no thread. */
	cfg.events = false;
	assert_int_equal(csi_kube_new(&cfg, &k, &err), 0);
	csi_kube_event(k, "default", "web-0", NULL, CSI_KUBE_EVENT_NORMAL, "X", "m");
	csi_kube_get_stats(k, &st);
	assert_int_equal(st.events_queued, 0);
	assert_int_equal(csi_kube_flush_events(k, 10, &err), 0);
	csi_kube_free(k);
	kube_client_free(c);
}

static void test_new_checks(void **state)
{
	kube_client *c = ev_client();
	csi_kube *k = (csi_kube *)0x1;
	sigil_err err = {0};
	csi_kube_config cfg = {.client = NULL, .node_name = "node-1"};

	assert_int_equal(csi_kube_new(&cfg, &k, &err), SIGIL_E_INVALID);
	cfg.client = c;
	cfg.node_name = "bad/name";
	assert_int_equal(csi_kube_new(&cfg, &k, &err), SIGIL_E_INVALID);
	cfg.node_name = NULL;
	assert_int_equal(csi_kube_new(&cfg, &k, &err), SIGIL_E_INVALID);
	cfg.node_name = "node-1";
	cfg.event_queue_max = CSI_KUBE_EVENT_QUEUE_MAX + 1;
	assert_int_equal(csi_kube_new(&cfg, &k, &err), SIGIL_E_LIMIT);
	assert_ptr_equal(k, (csi_kube *)0x1);
	csi_kube_free(NULL);
	/* Names are checked before anything goes into a URL. */
	cfg.event_queue_max = 0;
	assert_int_equal(csi_kube_new(&cfg, &k, &err), 0);
	assert_string_equal(csi_kube_node_name(k), "node-1");
	csi_kv *kv = NULL;
	size_t n = 0;
	assert_int_equal(csi_kube_pvc_attributes(k, "default", "a/b", &kv, &n, &err), SIGIL_E_INVALID);
	assert_int_equal(csi_kube_annotate_expiry(k, "..", "web-0", "v", 0, &err), SIGIL_E_INVALID);
	assert_int_equal(csi_kube_annotate_expiry(k, "default", "web-0", "", 0, &err),
			 SIGIL_E_INVALID);
	assert_int_equal(csi_kube_evict(k, "default", "", &err), SIGIL_E_INVALID);
	kube_pod_info *pi = NULL;
	assert_int_equal(csi_kube_pod_info(k, "default", "a b", NULL, 0, &pi, &err), SIGIL_E_INVALID);
	assert_null(pi);
	csi_kube_free(k);
	kube_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restarter_key),
		cmocka_unit_test(test_expiry_format),
		cmocka_unit_test(test_pvc_filter_both_prefixes),
		cmocka_unit_test(test_pvc_filter_garbage),
		cmocka_unit_test(test_pvc_filter_oversized),
		cmocka_unit_test(test_pvc_filter_truncated),
		cmocka_unit_test_setup_teardown(test_event_queue_overflow, ev_setup, ev_teardown),
		cmocka_unit_test_setup_teardown(test_event_bounds, ev_setup, ev_teardown),
		cmocka_unit_test_setup_teardown(test_new_checks, ev_setup, ev_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
