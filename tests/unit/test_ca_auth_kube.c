/* ca/server/auth_kube: TokenReview answers turned into callers (node
 * binding, allow-lists, admins), the cache over a simulated clock (token
 * exp, the 5-minute ceiling, 10-second refusals, eviction when full), an
 * apiserver that is down, the JWT "exp" reader with truncated, oversized
 * and garbage tokens, and the authenticator chain.  The apiserver is a
 * small HTTP server on 127.0.0.1 that answers TokenReviews from a table. */
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
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "ca/server/auth_kube.h"

/* ---- a TokenReview server --------------------------------------------------------- */

#define MAX_USERS 8

static struct {
	int lfd, port;
	pthread_t th;
	atomic_int quit;
	atomic_uint reviews;
	const char *tokens[MAX_USERS];
	const char *users[MAX_USERS]; /* status.user JSON */
	size_t n;
} ts;

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

static void ts_serve(int fd)
{
	static char req[65536];
	char head[256], *end, *cl, *body;
	size_t got = 0, clen = 0;
	json_t *tr, *resp, *status;
	const char *tok;

	for (;;) {
		ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);

		if (n <= 0)
			return;
		got += (size_t)n;
		req[got] = '\0';
		end = strstr(req, "\r\n\r\n");
		if (!end)
			continue;
		cl = strcasestr(req, "\r\nContent-Length: ");
		clen = cl ? strtoul(cl + 18, NULL, 10) : 0;
		if (got >= (size_t)(end - req) + 4 + clen || got >= sizeof(req) - 1)
			break;
	}
	atomic_fetch_add(&ts.reviews, 1);
	tr = json_loadb(end + 4, clen, 0, NULL);
	tok = json_string_value(json_object_get(json_object_get(tr, "spec"), "token"));
	status = json_pack("{s:b}", "authenticated", 0);
	json_object_set_new(status, "error", json_string("[invalid bearer token]"));
	for (size_t i = 0; tok && i < ts.n; i++)
		if (!strcmp(ts.tokens[i], tok)) {
			json_decref(status);
			status = json_pack("{s:b, s:o}", "authenticated", 1, "user",
					   json_loads(ts.users[i], 0, NULL));
		}
	resp = json_pack("{s:s, s:s, s:o}", "kind", "TokenReview", "apiVersion",
			 "authentication.k8s.io/v1", "status", status);
	body = json_dumps(resp, JSON_COMPACT);
	snprintf(head, sizeof(head),
		 "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n",
		 strlen(body));
	send_all(fd, head, strlen(head));
	send_all(fd, body, strlen(body));
	free(body);
	json_decref(resp);
	json_decref(tr);
}

static void *ts_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&ts.quit)) {
		struct pollfd p = {.fd = ts.lfd, .events = POLLIN};
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(ts.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		ts_serve(fd);
		close(fd);
	}
	return NULL;
}

#define SA_USER(ns, sa, node)                                                                      \
	"{\"username\":\"system:serviceaccount:" ns ":" sa "\",\"uid\":\"u-1\","                   \
	"\"groups\":[\"system:serviceaccounts\"],\"extra\":{"                                      \
	"\"authentication.kubernetes.io/pod-name\":[\"p\"],"                                       \
	"\"authentication.kubernetes.io/node-name\":[\"" node "\"]}}"

static int ts_setup(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);

	(void)state;
	memset(&ts, 0, sizeof(ts));
	ts.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(ts.lfd >= 0);
	assert_int_equal(bind(ts.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ts.lfd, 16), 0);
	assert_int_equal(getsockname(ts.lfd, (struct sockaddr *)&a, &al), 0);
	ts.port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&ts.th, NULL, ts_main, NULL), 0);
	return 0;
}

static int ts_teardown(void **state)
{
	(void)state;
	atomic_store(&ts.quit, 1);
	pthread_join(ts.th, NULL);
	close(ts.lfd);
	return 0;
}

static void ts_user(const char *token, const char *user)
{
	ts.tokens[ts.n] = token;
	ts.users[ts.n++] = user;
}

static kube_client *client_for(int port)
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
	o.timeout_ms = 3000;
	o.connect_timeout_ms = 3000;
	assert_int_equal(kube_client_new(&cfg, &o, &c, &err), 0);
	return c;
}

/* ---- a clock the test moves ----------------------------------------------------------- */

static time_t fake_now = 1700000000;
static time_t fake_clock_fn(void *ctx)
{
	(void)ctx;
	return fake_now;
}
static const sigil_clock fake_clock = {fake_clock_fn, NULL};

/* "h.<base64url(payload)>.sig" */
static char *make_jwt(const char *payload)
{
	unsigned char b64[4096];
	int n = EVP_EncodeBlock(b64, (const unsigned char *)payload, (int)strlen(payload));
	char *out;

	while (n > 0 && b64[n - 1] == '=')
		n--;
	for (int i = 0; i < n; i++)
		if (b64[i] == '+')
			b64[i] = '-';
		else if (b64[i] == '/')
			b64[i] = '_';
	assert_true(asprintf(&out, "eyJhbGciOiJSUzI1NiJ9.%.*s.c2ln", n, b64) > 0);
	return out;
}

static int authn(ca_auth *a, const char *tok, ca_caller *who, sigil_err *err)
{
	memset(who, 0, sizeof(*who));
	return ca_auth_authenticate(a, tok, strlen(tok), who, err);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_jwt_exp(void **state)
{
	char *t;
	int64_t exp = 0;
	char big[6000];

	(void)state;
	t = make_jwt("{\"exp\":1700003600,\"sub\":\"x\"}");
	assert_int_equal(ca_auth_kube_jwt_exp(t, strlen(t), &exp), 0);
	assert_int_equal(exp, 1700003600);
	/* Truncated inside the payload: no longer decodes to JSON. */
	assert_int_equal(ca_auth_kube_jwt_exp(t, strlen(t) - 9, &exp), SIGIL_E_INVALID);
	free(t);
	/* Every padding length decodes (payloads of 3n, 3n+1, 3n+2 bytes). */
	for (int pad = 0; pad < 3; pad++) {
		char p[64];

		snprintf(p, sizeof(p), "{\"exp\":42%.*s}", pad, "   ");
		t = make_jwt(p);
		exp = 0;
		assert_int_equal(ca_auth_kube_jwt_exp(t, strlen(t), &exp), 0);
		assert_int_equal(exp, 42);
		free(t);
	}
	t = make_jwt("{\"sub\":\"no exp\"}");
	assert_int_equal(ca_auth_kube_jwt_exp(t, strlen(t), &exp), SIGIL_E_INVALID);
	free(t);
	t = make_jwt("{\"exp\":\"1700003600\"}");
	assert_int_equal(ca_auth_kube_jwt_exp(t, strlen(t), &exp), SIGIL_E_INVALID);
	free(t);
	t = make_jwt("{\"exp\":1700003600.75}"); /* NumericDate with a fraction */
	assert_int_equal(ca_auth_kube_jwt_exp(t, strlen(t), &exp), 0);
	assert_int_equal(exp, 1700003600);
	free(t);
	t = make_jwt("{\"exp\":0.1}"); /* found by fuzz_auth_jwt */
	assert_int_equal(ca_auth_kube_jwt_exp(t, strlen(t), &exp), SIGIL_E_INVALID);
	free(t);
	exp = 42;
	t = make_jwt("{\"exp\":-5}");
	assert_int_equal(ca_auth_kube_jwt_exp(t, strlen(t), &exp), SIGIL_E_INVALID);
	free(t);
	t = make_jwt("{\"exp\":1,\"exp\":2}"); /* duplicate claims */
	assert_int_equal(ca_auth_kube_jwt_exp(t, strlen(t), &exp), SIGIL_E_INVALID);
	free(t);
	t = make_jwt("[1,2]");
	assert_int_equal(ca_auth_kube_jwt_exp(t, strlen(t), &exp), SIGIL_E_INVALID);
	free(t);
	assert_int_equal(ca_auth_kube_jwt_exp("opaque-static-token", 19, &exp), SIGIL_E_INVALID);
	assert_int_equal(ca_auth_kube_jwt_exp("a..b", 4, &exp), SIGIL_E_INVALID);
	assert_int_equal(ca_auth_kube_jwt_exp("a.$$$$.b", 8, &exp), SIGIL_E_INVALID);
	assert_int_equal(ca_auth_kube_jwt_exp("a.eyJ.b", 7, &exp), SIGIL_E_INVALID);
	assert_int_equal(ca_auth_kube_jwt_exp("a.e.b", 5, &exp), SIGIL_E_INVALID); /* 4n+1 */
	assert_int_equal(ca_auth_kube_jwt_exp(NULL, 0, &exp), SIGIL_E_INVALID);
	/* Oversized: longer than a token may be. */
	memset(big, 'A', sizeof(big));
	big[1] = '.';
	big[sizeof(big) - 3] = '.';
	assert_int_equal(ca_auth_kube_jwt_exp(big, sizeof(big), &exp), SIGIL_E_INVALID);
	assert_int_equal(exp, 42); /* never written on failure */
}

static void test_account_refs(void **state)
{
	(void)state;
	assert_true(ca_auth_kube_account_ok("sigil/sigil-csi"));
	assert_true(ca_auth_kube_account_ok("kube-system/a.b"));
	assert_false(ca_auth_kube_account_ok("sigil"));
	assert_false(ca_auth_kube_account_ok("/sigil-csi"));
	assert_false(ca_auth_kube_account_ok("sigil/"));
	assert_false(ca_auth_kube_account_ok("Sigil/x"));
	assert_false(ca_auth_kube_account_ok("a.b/x")); /* a namespace is a label */
	assert_false(ca_auth_kube_account_ok("ns/x/y"));
	assert_false(ca_auth_kube_account_ok(NULL));
}

static void test_callers(void **state)
{
	kube_client *c;
	ca_auth *a = NULL;
	ca_caller who;
	sigil_err err = {0};
	const char *admins[] = {"ops/sigil-admin"};
	const char *nodes[] = {"sigil/sigil-csi", "other/csi"};

	(void)state;
	ts_user("tok-node-a", SA_USER("sigil", "sigil-csi", "node-a"));
	ts_user("tok-other-csi", SA_USER("other", "csi", "node-b"));
	ts_user("tok-unbound", "{\"username\":\"system:serviceaccount:sigil:sigil-csi\"}");
	ts_user("tok-web", SA_USER("shop", "web", "node-a"));
	ts_user("tok-admin", "{\"username\":\"system:serviceaccount:ops:sigil-admin\"}");
	ts_user("tok-human", "{\"username\":\"alice\",\"groups\":[\"system:masters\"]}");
	ts_user("tok-badnode", SA_USER("sigil", "sigil-csi", "Node_A!"));
	c = client_for(ts.port);
	ca_auth_kube_config cfg = {.client = c,
				   .admin_accounts = admins,
				   .n_admin_accounts = 1,
				   .node_accounts = nodes,
				   .n_node_accounts = 2,
				   .clock = &fake_clock};
	assert_int_equal(ca_auth_kube_new(&cfg, &a, &err), 0);

	assert_int_equal(authn(a, "tok-node-a", &who, &err), 0);
	assert_string_equal(who.node, "node-a");
	assert_false(who.admin);
	assert_int_equal(who.n_classes, 0);
	assert_int_equal(authn(a, "tok-other-csi", &who, &err), 0);
	assert_string_equal(who.node, "node-b");
	assert_int_equal(authn(a, "tok-admin", &who, &err), 0);
	assert_true(who.admin);
	assert_string_equal(who.node, CA_AUTH_ADMIN);
	assert_int_equal(authn(a, "tok-unbound", &who, &err), SIGIL_E_UNAUTH);
	assert_non_null(strstr(err.msg, "not bound to a node"));
	assert_int_equal(authn(a, "tok-web", &who, &err), SIGIL_E_PERM);
	assert_non_null(strstr(err.msg, "shop/web may not act as a node"));
	assert_int_equal(authn(a, "tok-human", &who, &err), SIGIL_E_PERM);
	assert_int_equal(authn(a, "tok-badnode", &who, &err), SIGIL_E_UNAUTH);
	assert_int_equal(authn(a, "tok-nobody", &who, &err), SIGIL_E_UNAUTH);
	assert_non_null(strstr(err.msg, "not accepted by the Kubernetes API"));
	/* Tokens are header values: no spaces or control bytes. */
	assert_int_equal(authn(a, "tok node-a", &who, &err), SIGIL_E_UNAUTH);
	assert_int_equal(ca_auth_authenticate(a, "", 0, &who, &err), SIGIL_E_UNAUTH);
	ca_auth_free(a);

	/* Default node account: <namespace>/sigil-csi. */
	cfg.node_accounts = NULL;
	cfg.n_node_accounts = 0;
	cfg.namespace_ = "other";
	assert_int_equal(ca_auth_kube_new(&cfg, &a, &err), 0);
	assert_int_equal(authn(a, "tok-node-a", &who, &err), SIGIL_E_PERM);
	ca_auth_free(a);
	cfg.namespace_ = NULL; /* the client's: sigil */
	assert_int_equal(ca_auth_kube_new(&cfg, &a, &err), 0);
	assert_int_equal(authn(a, "tok-node-a", &who, &err), 0);
	ca_auth_free(a);

	/* Bad configuration. */
	cfg.admin_accounts = nodes;
	cfg.n_admin_accounts = CA_AUTH_KUBE_MAX_ACCOUNTS + 1;
	assert_int_equal(ca_auth_kube_new(&cfg, &a, &err), SIGIL_E_LIMIT);
	const char *bad[] = {"no-slash"};
	cfg.admin_accounts = bad;
	cfg.n_admin_accounts = 1;
	assert_int_equal(ca_auth_kube_new(&cfg, &a, &err), SIGIL_E_INVALID);
	cfg.n_admin_accounts = 0;
	cfg.audience = "";
	assert_int_equal(ca_auth_kube_new(&cfg, &a, &err), SIGIL_E_INVALID);
	cfg.client = NULL;
	assert_int_equal(ca_auth_kube_new(&cfg, &a, &err), SIGIL_E_INVALID);
	kube_client_free(c);
}

static void test_cache(void **state)
{
	kube_client *c;
	ca_auth *a = NULL;
	ca_caller who;
	sigil_err err = {0};
	char payload[128], *short_lived, *long_lived;
	char tok[64];

	(void)state;
	fake_now = 1700000000;
	snprintf(payload, sizeof(payload), "{\"exp\":%lld}", (long long)fake_now + 60);
	short_lived = make_jwt(payload);
	snprintf(payload, sizeof(payload), "{\"exp\":%lld}", (long long)fake_now + 86400);
	long_lived = make_jwt(payload);
	ts_user(short_lived, SA_USER("sigil", "sigil-csi", "node-a"));
	ts_user(long_lived, SA_USER("sigil", "sigil-csi", "node-a"));
	ts_user("opaque-token", SA_USER("sigil", "sigil-csi", "node-a"));
	c = client_for(ts.port);
	ca_auth_kube_config cfg = {.client = c, .clock = &fake_clock};
	assert_int_equal(ca_auth_kube_new(&cfg, &a, &err), 0);

	/* Until the token's own exp. */
	assert_int_equal(authn(a, short_lived, &who, &err), 0);
	assert_int_equal(authn(a, short_lived, &who, &err), 0);
	assert_int_equal(ca_auth_kube_reviews(a), 1);
	assert_int_equal(ts.reviews, 1);
	fake_now += 59;
	assert_int_equal(authn(a, short_lived, &who, &err), 0);
	assert_int_equal(ts.reviews, 1);
	fake_now += 1;
	assert_int_equal(authn(a, short_lived, &who, &err), 0);
	assert_int_equal(ts.reviews, 2);

	/* A token that lives a day is still asked about every 5 minutes. */
	assert_int_equal(authn(a, long_lived, &who, &err), 0);
	fake_now += CA_AUTH_KUBE_POSITIVE_TTL_SECS - 1;
	assert_int_equal(authn(a, long_lived, &who, &err), 0);
	assert_int_equal(ts.reviews, 3);
	fake_now += 1;
	assert_int_equal(authn(a, long_lived, &who, &err), 0);
	assert_int_equal(ts.reviews, 4);
	/* Not a JWT: the ceiling. */
	assert_int_equal(authn(a, "opaque-token", &who, &err), 0);
	assert_int_equal(authn(a, "opaque-token", &who, &err), 0);
	assert_int_equal(ts.reviews, 5);

	/* Refusals for 10 s. */
	assert_int_equal(authn(a, "refused-token", &who, &err), SIGIL_E_UNAUTH);
	assert_int_equal(authn(a, "refused-token", &who, &err), SIGIL_E_UNAUTH);
	assert_non_null(strstr(err.msg, "not accepted"));
	assert_int_equal(ts.reviews, 6);
	fake_now += CA_AUTH_KUBE_NEGATIVE_TTL_SECS;
	assert_int_equal(authn(a, "refused-token", &who, &err), SIGIL_E_UNAUTH);
	assert_int_equal(ts.reviews, 7);

	/* Full: more distinct tokens than slots; the cache stays bounded and
	 * keeps working (a refused token costs one review each). */
	for (int i = 0; i < CA_AUTH_KUBE_CACHE_MAX + 10; i++) {
		snprintf(tok, sizeof(tok), "junk-%d", i);
		assert_int_equal(authn(a, tok, &who, &err), SIGIL_E_UNAUTH);
	}
	assert_int_equal(ts.reviews, 7 + CA_AUTH_KUBE_CACHE_MAX + 10);
	/* The newest refusal is still cached after the evictions. */
	assert_int_equal(authn(a, tok, &who, &err), SIGIL_E_UNAUTH);
	assert_int_equal(ts.reviews, 7 + CA_AUTH_KUBE_CACHE_MAX + 10);
	ca_auth_free(a);
	kube_client_free(c);
	free(short_lived);
	free(long_lived);
}

static void test_apiserver_down(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	kube_client *c;
	ca_auth *a = NULL;
	ca_caller who;
	sigil_err err = {0};

	(void)state;
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &al), 0);
	close(fd);
	c = client_for(ntohs(sa.sin_port));
	ca_auth_kube_config cfg = {.client = c};
	assert_int_equal(ca_auth_kube_new(&cfg, &a, &err), 0);
	assert_int_equal(authn(a, "some-token-value", &who, &err), SIGIL_E_UNAVAIL);
	/* Not cached: asked again. */
	assert_int_equal(authn(a, "some-token-value", &who, &err), SIGIL_E_UNAVAIL);
	assert_int_equal(ca_auth_kube_reviews(a), 2);
	assert_int_equal(ca_auth_kube_reviews(NULL), 0);
	ca_auth_free(a);
	kube_client_free(c);
}

/* ---- the chain ------------------------------------------------------------------------------ */

typedef struct fake_auth {
	ca_auth base;
	const char *token;
	int refusal; /* for other tokens */
	const char *node;
	int *freed;
} fake_auth;

static int fake_authenticate(ca_auth *a, const char *tok, size_t len, ca_caller *ret,
			     sigil_err *err)
{
	fake_auth *f = (fake_auth *)a;

	if (strlen(f->token) == len && !memcmp(f->token, tok, len)) {
		memset(ret, 0, sizeof(*ret));
		snprintf(ret->node, sizeof(ret->node), "%s", f->node);
		return 0;
	}
	return sigil_err_set(err, f->refusal, "refused by %s", f->node);
}

static void fake_free(ca_auth *a)
{
	(*((fake_auth *)a)->freed)++;
	free(a);
}

static const ca_auth_ops fake_ops = {fake_authenticate, fake_free};

static ca_auth *fake_new(const char *token, int refusal, const char *node, int *freed)
{
	fake_auth *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	*f = (fake_auth){{&fake_ops}, token, refusal, node, freed};
	return &f->base;
}

static void test_chain(void **state)
{
	int freed = 0;
	ca_auth *m[3], *chain = NULL;
	ca_caller who;
	sigil_err err = {0};

	(void)state;
	m[0] = fake_new("file-token", SIGIL_E_UNAUTH, "from-file", &freed);
	m[1] = fake_new("review-token", SIGIL_E_UNAVAIL, "from-review", &freed);
	assert_int_equal(ca_auth_chain_new(m, 2, &chain, &err), 0);
	assert_int_equal(authn(chain, "file-token", &who, &err), 0);
	assert_string_equal(who.node, "from-file");
	assert_int_equal(authn(chain, "review-token", &who, &err), 0);
	assert_string_equal(who.node, "from-review");
	/* The last one's answer is final: here the apiserver is down. */
	assert_int_equal(authn(chain, "other", &who, &err), SIGIL_E_UNAVAIL);
	assert_string_equal(err.msg, "refused by from-review");
	ca_auth_free(chain);
	assert_int_equal(freed, 2);

	/* A refusal other than "unknown token" stops the chain. */
	freed = 0;
	m[0] = fake_new("a-token", SIGIL_E_PERM, "first", &freed);
	m[1] = fake_new("b-token", SIGIL_E_UNAUTH, "second", &freed);
	assert_int_equal(ca_auth_chain_new(m, 2, &chain, &err), 0);
	assert_int_equal(authn(chain, "b-token", &who, &err), SIGIL_E_PERM);
	ca_auth_free(chain);
	assert_int_equal(freed, 2);

	/* Bad sizes free what they were given. */
	freed = 0;
	for (int i = 0; i < 3; i++)
		m[i] = fake_new("t", SIGIL_E_UNAUTH, "x", &freed);
	assert_int_equal(ca_auth_chain_new(m, 0, &chain, &err), SIGIL_E_INVALID);
	assert_int_equal(ca_auth_chain_new(m, 3, &chain, &err), 0);
	ca_auth_free(chain);
	assert_int_equal(freed, 3);
	ca_auth_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jwt_exp),
	    cmocka_unit_test(test_account_refs),
	    cmocka_unit_test_setup_teardown(test_callers, ts_setup, ts_teardown),
	    cmocka_unit_test_setup_teardown(test_cache, ts_setup, ts_teardown),
	    cmocka_unit_test(test_apiserver_down),
	    cmocka_unit_test(test_chain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
