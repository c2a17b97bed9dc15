/* rpc server and client: a real gRPC server on a temp unix socket (and TLS
 * on loopback) called through the blocking client, in process. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rpc/client.h"
#include "rpc/server.h"
#include "util/fs.h"
#include "util/mem.h"

#define CALL_TIMEOUT_MS 10000

struct test_ctx {
	atomic_int entered;
	atomic_int finished;
	int sleep_ms;
	/* What the echo handler saw. */
	int auth_rc;
	char auth[256];
	bool peer_auth;
	int san_rc;
	char sans[512];
	char method[RPC_MAX_METHOD_PATH + 1];
	int64_t remaining_ms;
};

/* LeakSanitizer hook: Debian 12's libcares (1.18) leaks a few bytes when
 * gRPC's DNS resolver looks up "localhost" (the TLS test does).  Not ours;
 * everything else stays checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libcares.so\n";
}

static char g_dir[64];
static struct test_ctx g_ctx;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *tpath(const char *name)
{
	static char buf[4][256];
	static int i;
	char *p = buf[i++ % 4];

	snprintf(p, 256, "%s/%s", g_dir, name);
	return p;
}

/* ---- handlers ----------------------------------------------------------- */

static uint8_t *prefixed(const char *prefix, const uint8_t *req, size_t req_len, size_t *len)
{
	size_t plen = strlen(prefix);
	uint8_t *p = malloc(plen + req_len);

	assert_non_null(p);
	memcpy(p, prefix, plen);
	if (req_len)
		memcpy(p + plen, req, req_len);
	*len = plen + req_len;
	return p;
}

static void copy_bounded(char *dst, size_t dstsz, const char *src, size_t len)
{
	if (len >= dstsz)
		len = dstsz - 1;
	if (len > 0)
		memcpy(dst, src, len);
	dst[len] = '\0';
}

static int h_echo(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
                  uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	struct test_ctx *t = ctx;
	const char *v;
	size_t vlen;

	t->auth_rc = rpc_call_get_metadata(call, "authorization", &v, &vlen);
	if (t->auth_rc == 0)
		copy_bounded(t->auth, sizeof(t->auth), v, vlen);
	t->peer_auth = rpc_call_peer_authenticated(call);
	t->sans[0] = '\0';
	t->san_rc = SIGIL_E_NOTFOUND;
	for (size_t i = 0;
	     rpc_call_get_peer_property(call, "x509_subject_alternative_name", i, &v, &vlen) == 0;
	     i++) {
		size_t cur = strlen(t->sans);
		t->san_rc = 0;
		if (cur + vlen + 2 < sizeof(t->sans)) {
			memcpy(t->sans + cur, v, vlen);
			t->sans[cur + vlen] = ',';
			t->sans[cur + vlen + 1] = '\0';
		}
	}
	copy_bounded(t->method, sizeof(t->method), rpc_call_method(call),
	             strlen(rpc_call_method(call)));
	t->remaining_ms = rpc_call_remaining_ms(call);
	*resp = prefixed("echo:", req, req_len, resp_len);
	return 0;
}

static int h_fail(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
                  uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	/* A response set on failure must be dropped, not sent. */
	*resp = prefixed("nope", req, req_len, resp_len);
	rpc_status_set(st, RPC_FAILED_PRECONDITION, "volume %s is not staged", "vol-1");
	return SIGIL_E_PRECOND;
}

static int h_errcode(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
                     uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	return SIGIL_E_NOTFOUND;
}

static int h_empty(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
                   uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	if (req_len != 0)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "expected empty request"), -1;
	*resp = NULL;
	*resp_len = 0;
	return 0;
}

static int h_big(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
                 uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	*resp = calloc(1, 8192);
	assert_non_null(*resp);
	*resp_len = 8192;
	return 0;
}

static int h_slow(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
                  uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	struct test_ctx *t = ctx;

	atomic_fetch_add(&t->entered, 1);
	usleep((useconds_t)t->sleep_ms * 1000);
	atomic_fetch_add(&t->finished, 1);
	*resp = prefixed("slow:", req, req_len, resp_len);
	return 0;
}

static int h_dupmd(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
                   uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	const char *v;
	size_t vlen;
	int r = rpc_call_get_metadata(call, "x-token", &v, &vlen);

	if (r == SIGIL_E_INVALID)
		return rpc_status_set(st, RPC_UNAUTHENTICATED, "duplicate x-token"), r;
	*resp = prefixed("single", NULL, 0, resp_len);
	return 0;
}

static const rpc_method g_methods[] = {
    {"/sigil.test.Echo/Echo", h_echo, &g_ctx},       {"/sigil.test.Echo/Fail", h_fail, &g_ctx},
    {"/sigil.test.Echo/ErrCode", h_errcode, &g_ctx}, {"/sigil.test.Echo/Empty", h_empty, &g_ctx},
    {"/sigil.test.Echo/Big", h_big, &g_ctx},         {"/sigil.test.Echo/Slow", h_slow, &g_ctx},
    {"/sigil.test.Echo/DupMd", h_dupmd, &g_ctx},
};

/* ---- fixtures ----------------------------------------------------------- */

static int setup(void **state)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/sigil-rpc-XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	memset(&g_ctx, 0, sizeof(g_ctx));
	return 0;
}

static int teardown(void **state)
{
	sigil_err err;

	return sigil_fs_remove_tree(g_dir, &err) < 0 ? -1 : 0;
}

/* cfg carries the knobs under test; the method table is filled in here. */
static rpc_server *server_new_ex(rpc_server_config cfg)
{
	rpc_server *srv = NULL;
	sigil_err err = {0};

	cfg.methods = g_methods;
	cfg.n_methods = SIGIL_ARRAY_SIZE(g_methods);
	if (rpc_server_new(&cfg, &srv, &err) != 0)
		fail_msg("rpc_server_new: %s", err.msg);
	return srv;
}

static rpc_server *server_new_cfg(unsigned workers, size_t max_recv, size_t max_send)
{
	return server_new_ex((rpc_server_config){
	    .workers = workers, .max_recv_bytes = max_recv, .max_send_bytes = max_send});
}

static rpc_server *unix_server_ex(const char *path, rpc_server_config cfg)
{
	rpc_server *srv = server_new_ex(cfg);
	sigil_err err = {0};

	if (rpc_server_listen_unix(srv, path, &err) != 0)
		fail_msg("listen: %s", err.msg);
	assert_int_equal(rpc_server_start(srv, &err), 0);
	return srv;
}

static rpc_server *unix_server(const char *path, unsigned workers, size_t max_recv, size_t max_send)
{
	rpc_server *srv = server_new_cfg(workers, max_recv, max_send);
	sigil_err err = {0};

	if (rpc_server_listen_unix(srv, path, &err) != 0)
		fail_msg("listen: %s", err.msg);
	assert_int_equal(rpc_server_start(srv, &err), 0);
	return srv;
}

static rpc_client *unix_client(const char *path)
{
	char target[300];
	rpc_client_config cfg = {.target = target};
	rpc_client *c = NULL;
	sigil_err err = {0};

	snprintf(target, sizeof(target), "unix:%s", path);
	assert_int_equal(rpc_client_new(&cfg, &c, &err), 0);
	return c;
}

/* Calls method with a string request; returns the status code. */
static int call_str(rpc_client *c, const char *method, const char *req, const rpc_metadata *md,
                    size_t n_md, rpc_status *st, char *out, size_t outsz)
{
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	sigil_err err = {0};
	int r;

	r = rpc_client_call(c, method, (const uint8_t *)req, req ? strlen(req) : 0, md, n_md,
	                    CALL_TIMEOUT_MS, st, &resp, &resp_len, &err);
	if (r != 0)
		fail_msg("rpc_client_call: %s", err.msg);
	if (out) {
		copy_bounded(out, outsz, (const char *)resp, resp_len);
	}
	if (st->code != RPC_OK)
		assert_null(resp);
	sigil_freezero(resp, resp_len);
	return st->code;
}

/* The client has its status slightly before the server's final batch
 * completes; the live count drops right after. */
static void wait_live_zero(rpc_server *srv)
{
	int64_t t0 = now_ms();

	while (rpc_server_live_calls(srv) != 0) {
		assert_true(now_ms() - t0 < 5000);
		usleep(1000);
	}
}

/* ---- basic calls ---------------------------------------------------------- */

static void test_echo_success(void **state)
{
	const char *path = tpath("csi.sock");
	_cleanup_(rpc_server_freep) rpc_server *srv = unix_server(path, 2, 0, 0);
	(void)srv; /* held for its cleanup */
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	rpc_metadata md[] = {{"authorization", "Bearer abc.def"}};
	rpc_status st;
	char out[128];

	assert_int_equal(
	    call_str(c, "/sigil.test.Echo/Echo", "hello", md, 1, &st, out, sizeof(out)), RPC_OK);
	assert_string_equal(out, "echo:hello");
	assert_int_equal(g_ctx.auth_rc, 0);
	assert_string_equal(g_ctx.auth, "Bearer abc.def");
	assert_string_equal(g_ctx.method, "/sigil.test.Echo/Echo");
	/* Insecure unix socket: nobody authenticated the peer. */
	assert_false(g_ctx.peer_auth);
	assert_int_equal(g_ctx.san_rc, SIGIL_E_NOTFOUND);
	assert_true(g_ctx.remaining_ms > 0 && g_ctx.remaining_ms <= CALL_TIMEOUT_MS);

	/* No metadata: the handler sees NOTFOUND. */
	assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "x", NULL, 0, &st, out, sizeof(out)),
	                 RPC_OK);
	assert_int_equal(g_ctx.auth_rc, SIGIL_E_NOTFOUND);
}

static void test_empty_messages(void **state)
{
	const char *path = tpath("csi.sock");
	_cleanup_(rpc_server_freep) rpc_server *srv = unix_server(path, 1, 0, 0);
	(void)srv; /* held for its cleanup */
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	uint8_t *resp = (uint8_t *)"sentinel";
	size_t resp_len = 99;
	rpc_status st;
	sigil_err err;

	assert_int_equal(rpc_client_call(c, "/sigil.test.Echo/Empty", NULL, 0, NULL, 0,
	                                 CALL_TIMEOUT_MS, &st, &resp, &resp_len, &err),
	                 0);
	assert_int_equal(st.code, RPC_OK);
	assert_null(resp);
	assert_int_equal(resp_len, 0);
}

static void test_handler_error_propagated(void **state)
{
	const char *path = tpath("csi.sock");
	_cleanup_(rpc_server_freep) rpc_server *srv = unix_server(path, 1, 0, 0);
	(void)srv; /* held for its cleanup */
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	rpc_status st;

	assert_int_equal(call_str(c, "/sigil.test.Echo/Fail", "x", NULL, 0, &st, NULL, 0),
	                 RPC_FAILED_PRECONDITION);
	assert_string_equal(st.msg, "volume vol-1 is not staged");

	/* A bare sigil code is mapped as util/err.h documents. */
	assert_int_equal(call_str(c, "/sigil.test.Echo/ErrCode", "x", NULL, 0, &st, NULL, 0),
	                 RPC_NOT_FOUND);
	assert_string_equal(st.msg, "not found");
}

static void test_unknown_method_unimplemented_fast(void **state)
{
	const char *path = tpath("csi.sock");
	_cleanup_(rpc_server_freep) rpc_server *srv = unix_server(path, 2, 0, 0);
	(void)srv; /* held for its cleanup */
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	rpc_status st;
	int64_t t0;

	/* Several in a row: the catch-all must be re-armed each time. */
	for (int i = 0; i < 5; i++) {
		t0 = now_ms();
		assert_int_equal(
		    call_str(c, "/csi.v1.Node/NoSuchMethod", "x", NULL, 0, &st, NULL, 0),
		    RPC_UNIMPLEMENTED);
		/* Far below the 10 s deadline: answered, not timed out. */
		assert_true(now_ms() - t0 < 2000);
		assert_non_null(strstr(st.msg, "/csi.v1.Node/NoSuchMethod"));
	}
	/* Registered methods still work afterwards. */
	assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "ok", NULL, 0, &st, NULL, 0), RPC_OK);
}

static void test_oversized_request_and_response(void **state)
{
	const char *path = tpath("csi.sock");
	_cleanup_(rpc_server_freep) rpc_server *srv = unix_server(path, 1, 1024, 4096);
	(void)srv; /* held for its cleanup */
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	char big[2048];
	rpc_status st;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", big, NULL, 0, &st, NULL, 0),
	                 RPC_RESOURCE_EXHAUSTED);
	/* Exactly at the limit is fine ("echo:" is added by the handler). */
	big[1024] = '\0';
	assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", big, NULL, 0, &st, NULL, 0), RPC_OK);
	/* A handler answering more than max_send is refused too. */
	assert_int_equal(call_str(c, "/sigil.test.Echo/Big", "x", NULL, 0, &st, NULL, 0),
	                 RPC_RESOURCE_EXHAUSTED);
	/* The server survives both. */
	assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "y", NULL, 0, &st, NULL, 0), RPC_OK);
	wait_live_zero(srv);
}

static void test_duplicate_metadata_refused(void **state)
{
	const char *path = tpath("csi.sock");
	_cleanup_(rpc_server_freep) rpc_server *srv = unix_server(path, 1, 0, 0);
	(void)srv; /* held for its cleanup */
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	rpc_metadata two[] = {{"x-token", "a"}, {"x-token", "b"}};
	rpc_status st;

	assert_int_equal(call_str(c, "/sigil.test.Echo/DupMd", "", two, 1, &st, NULL, 0), RPC_OK);
	assert_int_equal(call_str(c, "/sigil.test.Echo/DupMd", "", two, 2, &st, NULL, 0),
	                 RPC_UNAUTHENTICATED);
}

/* ---- unix socket handling ------------------------------------------------- */

static void test_socket_mode_0600_and_removed(void **state)
{
	const char *path = tpath("csi.sock");
	rpc_server *srv;
	struct stat st;
	mode_t old = umask(0);

	/* Even with a permissive umask the socket is private. */
	srv = unix_server(path, 1, 0, 0);
	umask(old);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	rpc_server_free(srv);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

static int make_socket_file(const char *path, bool do_listen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static void test_stale_socket_replaced(void **state)
{
	const char *path = tpath("csi.sock");
	rpc_status st;

	/* A socket file whose owner died: bound, never listening, closed. */
	close(make_socket_file(path, false));
	{
		_cleanup_(rpc_server_freep) rpc_server *srv = unix_server(path, 1, 0, 0);
		(void)srv; /* held for its cleanup */
		_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);

		assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "z", NULL, 0, &st, NULL, 0),
		                 RPC_OK);
	}
}

static void test_live_socket_refused(void **state)
{
	const char *path = tpath("csi.sock");
	struct stat before, after;
	sigil_err err = {0};
	int fd = make_socket_file(path, true);

	assert_int_equal(lstat(path, &before), 0);
	{
		_cleanup_(rpc_server_freep) rpc_server *srv = server_new_cfg(1, 0, 0);
		(void)srv; /* held for its cleanup */

		assert_int_equal(rpc_server_listen_unix(srv, path, &err), SIGIL_E_EXISTS);
		assert_non_null(strstr(err.msg, "another process is serving"));
	}
	/* Untouched: same inode, still accepting. */
	assert_int_equal(lstat(path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	close(fd);

	/* Same for a path held by a running rpc server. */
	{
		const char *p2 = tpath("csi2.sock");
		_cleanup_(rpc_server_freep) rpc_server *a = unix_server(p2, 1, 0, 0);
		(void)a; /* held for its cleanup */
		_cleanup_(rpc_server_freep) rpc_server *b = server_new_cfg(1, 0, 0);
		(void)b; /* held for its cleanup */
		_cleanup_(rpc_client_freep) rpc_client *c = unix_client(p2);
		rpc_status st;

		assert_int_equal(rpc_server_listen_unix(b, p2, &err), SIGIL_E_EXISTS);
		assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "a", NULL, 0, &st, NULL, 0),
		                 RPC_OK);
	}
}

static void test_non_socket_refused(void **state)
{
	const char *path = tpath("not-a-socket");
	const char *lnk = tpath("link.sock");
	_cleanup_(rpc_server_freep) rpc_server *srv = server_new_cfg(1, 0, 0);
	(void)srv; /* held for its cleanup */
	sigil_err err = {0};
	struct stat st;
	int fd = open(path, O_CREAT | O_WRONLY, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(rpc_server_listen_unix(srv, path, &err), SIGIL_E_EXISTS);
	assert_non_null(strstr(err.msg, "not a socket"));
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_size, 4);
	/* A symlink is not followed or replaced either. */
	assert_int_equal(symlink(path, lnk), 0);
	assert_int_equal(rpc_server_listen_unix(srv, lnk, &err), SIGIL_E_EXISTS);
	assert_int_equal(lstat(lnk, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
}

static void test_bad_arguments(void **state)
{
	rpc_server *srv = NULL;
	sigil_err err = {0};
	char longpath[200];
	rpc_method bad_path[] = {{"NoSlash", h_echo, NULL}};
	rpc_method no_handler[] = {{"/a.B/C", NULL, NULL}};
	rpc_method dup[] = {{"/a.B/C", h_echo, NULL}, {"/a.B/C", h_echo, NULL}};
	rpc_method three[] = {{"/a/B/C", h_echo, NULL}};
	rpc_server_config cfg = {0};

	cfg.methods = bad_path;
	cfg.n_methods = 1;
	assert_int_equal(rpc_server_new(&cfg, &srv, &err), SIGIL_E_INVALID);
	cfg.methods = three;
	assert_int_equal(rpc_server_new(&cfg, &srv, &err), SIGIL_E_INVALID);
	cfg.methods = no_handler;
	assert_int_equal(rpc_server_new(&cfg, &srv, &err), SIGIL_E_INVALID);
	cfg.methods = dup;
	cfg.n_methods = 2;
	assert_int_equal(rpc_server_new(&cfg, &srv, &err), SIGIL_E_INVALID);
	cfg.n_methods = RPC_MAX_METHODS + 1;
	assert_int_equal(rpc_server_new(&cfg, &srv, &err), SIGIL_E_LIMIT);
	cfg.n_methods = 0;
	cfg.workers = RPC_MAX_WORKERS + 1;
	assert_int_equal(rpc_server_new(&cfg, &srv, &err), SIGIL_E_LIMIT);
	cfg.workers = 1;
	cfg.handler_threads = RPC_MAX_WORKERS + 1;
	assert_int_equal(rpc_server_new(&cfg, &srv, &err), SIGIL_E_LIMIT);
	cfg.handler_threads = 0;
	cfg.max_queued = RPC_MAX_QUEUED_LIMIT + 1;
	assert_int_equal(rpc_server_new(&cfg, &srv, &err), SIGIL_E_LIMIT);
	cfg.max_queued = 0;
	cfg.max_recv_bytes = RPC_MAX_MESSAGE_LIMIT + 1;
	assert_int_equal(rpc_server_new(&cfg, &srv, &err), SIGIL_E_LIMIT);
	assert_null(srv);

	srv = server_new_cfg(1, 0, 0);
	/* No listener: refuse to start. */
	assert_int_equal(rpc_server_start(srv, &err), SIGIL_E_INVALID);
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(rpc_server_listen_unix(srv, longpath, &err), SIGIL_E_LIMIT);
	assert_int_equal(rpc_server_listen_unix(srv, "", &err), SIGIL_E_INVALID);
	assert_int_equal(rpc_server_listen_tcp(srv, "unix:/x", NULL, NULL, &err), SIGIL_E_INVALID);
	assert_int_equal(rpc_server_listen_unix(srv, "/nonexistent-dir/x/csi.sock", &err),
	                 SIGIL_E_IO);
	assert_int_equal(rpc_server_listen_unix(srv, tpath("csi.sock"), &err), 0);
	assert_int_equal(rpc_server_start(srv, &err), 0);
	assert_int_equal(rpc_server_listen_unix(srv, tpath("late.sock"), &err), SIGIL_E_PRECOND);
	assert_int_equal(rpc_server_start(srv, &err), SIGIL_E_PRECOND);
	rpc_server_free(srv);

	/* A server that listened but never started is torn down cleanly. */
	srv = server_new_cfg(1, 0, 0);
	assert_int_equal(rpc_server_listen_unix(srv, tpath("never.sock"), &err), 0);
	rpc_server_free(srv);
	assert_int_equal(access(tpath("never.sock"), F_OK), -1);
}

static void test_client_bad_arguments(void **state)
{
	const char *path = tpath("csi.sock");
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	rpc_client *c2 = NULL;
	rpc_client_config cfg = {0};
	rpc_metadata upper[] = {{"Authorization", "x"}};
	rpc_metadata ctl[] = {{"authorization", "a\nb"}};
	rpc_metadata bin[] = {{"x-bin", "abc"}};
	rpc_status st = {.code = 77};
	uint8_t *resp = NULL;
	size_t len = 0;
	sigil_err err;

	assert_int_equal(rpc_client_new(&cfg, &c2, &err), SIGIL_E_INVALID);
	cfg.target = "localhost:1";
	cfg.tls_cert_pem = "x";
	assert_int_equal(rpc_client_new(&cfg, &c2, &err), SIGIL_E_INVALID);
	assert_null(c2);

	assert_int_equal(rpc_client_call(c, "bad", NULL, 0, NULL, 0, 1000, &st, &resp, &len, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(rpc_client_call(c, "/a.B/C", NULL, 0, NULL, 0, 0, &st, &resp, &len, &err),
	                 SIGIL_E_INVALID);
	assert_int_equal(
	    rpc_client_call(c, "/a.B/C", NULL, 0, upper, 1, 1000, &st, &resp, &len, &err),
	    SIGIL_E_INVALID);
	assert_int_equal(
	    rpc_client_call(c, "/a.B/C", NULL, 0, ctl, 1, 1000, &st, &resp, &len, &err),
	    SIGIL_E_INVALID);
	assert_int_equal(
	    rpc_client_call(c, "/a.B/C", NULL, 0, bin, 1, 1000, &st, &resp, &len, &err),
	    SIGIL_E_INVALID);
	assert_int_equal(
	    rpc_client_call(c, "/a.B/C", NULL, 5, NULL, 0, 1000, &st, &resp, &len, &err),
	    SIGIL_E_LIMIT);
	/* Out-parameters untouched on failure. */
	assert_int_equal(st.code, 77);

	/* Nobody listening: a status, quickly, not an error. */
	int64_t t0 = now_ms();
	assert_int_equal(
	    rpc_client_call(c, "/a.B/C", NULL, 0, NULL, 0, 5000, &st, &resp, &len, &err), 0);
	assert_int_equal(st.code, RPC_UNAVAILABLE);
	assert_true(now_ms() - t0 < 4000);
}

/* ---- concurrency and shutdown --------------------------------------------- */

struct bg_call {
	rpc_client *c;
	const char *method;
	const char *req;
	rpc_status st;
	char out[64];
	int64_t t_done;
};

static void *bg_call_main(void *arg)
{
	struct bg_call *b = arg;
	uint8_t *resp = NULL;
	size_t len = 0;
	sigil_err err;

	if (rpc_client_call(b->c, b->method, (const uint8_t *)b->req, strlen(b->req), NULL, 0,
	                    CALL_TIMEOUT_MS, &b->st, &resp, &len, &err) != 0)
		b->st.code = -1;
	copy_bounded(b->out, sizeof(b->out), (const char *)resp, len);
	free(resp);
	b->t_done = now_ms();
	return NULL;
}

static void wait_entered(int n)
{
	int64_t t0 = now_ms();

	while (atomic_load(&g_ctx.entered) < n) {
		assert_true(now_ms() - t0 < 5000);
		usleep(1000);
	}
}

static void test_workers_run_concurrently(void **state)
{
	const char *path = tpath("csi.sock");
	_cleanup_(rpc_server_freep) rpc_server *srv =
	    unix_server_ex(path, (rpc_server_config){.workers = 2, .handler_threads = 4});
	(void)srv; /* held for its cleanup */
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	struct bg_call calls[8];
	pthread_t th[8];
	int64_t t0;

	g_ctx.sleep_ms = 300;
	t0 = now_ms();
	for (int i = 0; i < 8; i++) {
		calls[i] = (struct bg_call){.c = c, .method = "/sigil.test.Echo/Slow", .req = "p"};
		assert_int_equal(pthread_create(&th[i], NULL, bg_call_main, &calls[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(calls[i].st.code, RPC_OK);
		assert_string_equal(calls[i].out, "slow:p");
	}
	/* 8 x 300 ms on 4 handler threads: ~600 ms, far from 2400 ms. */
	assert_true(now_ms() - t0 < 1800);
	assert_int_equal(atomic_load(&g_ctx.finished), 8);
}

static void test_slow_handler_does_not_block_others(void **state)
{
	const char *path = tpath("csi.sock");
	/* One queue and two handler threads: the fast call must not wait for
	 * the slow one even though both were matched on the same queue. */
	_cleanup_(rpc_server_freep) rpc_server *srv =
	    unix_server_ex(path, (rpc_server_config){.workers = 1, .handler_threads = 2});
	(void)srv; /* held for its cleanup */
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	struct bg_call slow = {.c = c, .method = "/sigil.test.Echo/Slow", .req = "s"};
	pthread_t th;
	rpc_status st;
	int64_t t0;

	g_ctx.sleep_ms = 1500;
	assert_int_equal(pthread_create(&th, NULL, bg_call_main, &slow), 0);
	wait_entered(1);
	t0 = now_ms();
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    call_str(c, "/sigil.test.Echo/Echo", "fast", NULL, 0, &st, NULL, 0), RPC_OK);
	assert_true(now_ms() - t0 < 700);
	assert_int_equal(atomic_load(&g_ctx.finished), 0);
	pthread_join(th, NULL);
	assert_int_equal(slow.st.code, RPC_OK);
}

static void test_queue_full_refused(void **state)
{
	const char *path = tpath("csi.sock");
	_cleanup_(rpc_server_freep) rpc_server *srv = unix_server_ex(
	    path, (rpc_server_config){.workers = 1, .handler_threads = 1, .max_queued = 1});
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	struct bg_call a = {.c = c, .method = "/sigil.test.Echo/Slow", .req = "a"};
	struct bg_call b = {.c = c, .method = "/sigil.test.Echo/Slow", .req = "b"};
	pthread_t ta, tb;
	rpc_status st;

	g_ctx.sleep_ms = 600;
	assert_int_equal(pthread_create(&ta, NULL, bg_call_main, &a), 0);
	wait_entered(1);
	/* b waits in the queue (the only handler thread is busy) ... */
	assert_int_equal(pthread_create(&tb, NULL, bg_call_main, &b), 0);
	while (rpc_server_live_calls(srv) < 2)
		usleep(1000);
	/* ... so a third call finds the queue full. */
	assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "c", NULL, 0, &st, NULL, 0),
	                 RPC_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(st.msg, "server busy"));
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.st.code, RPC_OK);
	assert_int_equal(b.st.code, RPC_OK);
	assert_string_equal(b.out, "slow:b");
}

static void test_expired_queued_call_skipped(void **state)
{
	const char *path = tpath("csi.sock");
	_cleanup_(rpc_server_freep) rpc_server *srv =
	    unix_server_ex(path, (rpc_server_config){.workers = 1, .handler_threads = 1});
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	struct bg_call slow = {.c = c, .method = "/sigil.test.Echo/Slow", .req = "s"};
	uint8_t *resp = NULL;
	size_t len = 0;
	rpc_status st;
	sigil_err err;
	pthread_t th;

	g_ctx.sleep_ms = 800;
	assert_int_equal(pthread_create(&th, NULL, bg_call_main, &slow), 0);
	wait_entered(1);
	g_ctx.method[0] = '\0';
	/* Queued behind the slow call; its 200 ms run out before a handler
	 * thread is free. */
	assert_int_equal(rpc_client_call(c, "/sigil.test.Echo/Echo", (const uint8_t *)"e", 1, NULL,
	                                 0, 200, &st, &resp, &len, &err),
	                 0);
	assert_int_equal(st.code, RPC_DEADLINE_EXCEEDED);
	pthread_join(th, NULL);
	assert_int_equal(slow.st.code, RPC_OK);
	wait_live_zero(srv);
	/* The echo handler never ran for the expired call. */
	assert_string_equal(g_ctx.method, "");
}

static void test_shutdown_completes_inflight(void **state)
{
	const char *path = tpath("csi.sock");
	rpc_server *srv = unix_server(path, 2, 0, 0);
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	struct bg_call calls[2];
	pthread_t th[2];
	rpc_status st;
	int64_t t_shut;

	g_ctx.sleep_ms = 500;
	for (int i = 0; i < 2; i++) {
		calls[i] = (struct bg_call){.c = c, .method = "/sigil.test.Echo/Slow", .req = "q"};
		assert_int_equal(pthread_create(&th[i], NULL, bg_call_main, &calls[i]), 0);
	}
	wait_entered(2);
	assert_int_equal(rpc_server_live_calls(srv), 2);
	rpc_server_shutdown(srv, 5000);
	t_shut = now_ms();
	/* Both handlers ran to the end and their answers reached the client. */
	assert_int_equal(atomic_load(&g_ctx.finished), 2);
	assert_int_equal(rpc_server_live_calls(srv), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		if (calls[i].st.code != RPC_OK)
			fail_msg("in-flight call %d: %s: %s", i, rpc_code_name(calls[i].st.code),
			         calls[i].st.msg);
		assert_string_equal(calls[i].out, "slow:q");
		assert_true(calls[i].t_done - t_shut < 1000);
	}
	/* The socket is gone and new calls fail. */
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "late", NULL, 0, &st, NULL, 0),
	                 RPC_UNAVAILABLE);
	rpc_server_shutdown(srv, 0); /* idempotent */
	rpc_server_free(srv);
}

struct bg_shutdown {
	rpc_server *srv;
	int64_t t_done;
};

static void *bg_shutdown_main(void *arg)
{
	struct bg_shutdown *b = arg;

	rpc_server_shutdown(b->srv, 5000);
	b->t_done = now_ms();
	return NULL;
}

static void test_shutdown_drain_refuses_new_calls(void **state)
{
	const char *path = tpath("csi.sock");
	rpc_server *srv = unix_server(path, 2, 0, 0);
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	struct bg_call slow = {.c = c, .method = "/sigil.test.Echo/Slow", .req = "s"};
	struct bg_shutdown sd = {.srv = srv};
	pthread_t th_call, th_sd;
	rpc_status st;
	int64_t t0;

	g_ctx.sleep_ms = 800;
	assert_int_equal(pthread_create(&th_call, NULL, bg_call_main, &slow), 0);
	wait_entered(1);
	assert_int_equal(pthread_create(&th_sd, NULL, bg_shutdown_main, &sd), 0);
	usleep(150 * 1000);
	/* Draining: a new call is refused at once, with a retryable code. */
	t0 = now_ms();
	assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "new", NULL, 0, &st, NULL, 0),
	                 RPC_UNAVAILABLE);
	assert_string_equal(st.msg, "server is shutting down; retry");
	assert_true(now_ms() - t0 < 500);
	/* The call in flight still gets its answer. */
	pthread_join(th_call, NULL);
	if (slow.st.code != RPC_OK)
		fail_msg("in-flight call: %s: %s", rpc_code_name(slow.st.code), slow.st.msg);
	assert_string_equal(slow.out, "slow:s");
	pthread_join(th_sd, NULL);
	assert_true(sd.t_done >= slow.t_done);
	rpc_server_free(srv);
}

static void test_shutdown_grace_expires(void **state)
{
	const char *path = tpath("csi.sock");
	rpc_server *srv = unix_server(path, 1, 0, 0);
	_cleanup_(rpc_client_freep) rpc_client *c = unix_client(path);
	struct bg_call call = {.c = c, .method = "/sigil.test.Echo/Slow", .req = "r"};
	pthread_t th;
	int64_t t0;

	g_ctx.sleep_ms = 1200;
	assert_int_equal(pthread_create(&th, NULL, bg_call_main, &call), 0);
	wait_entered(1);
	t0 = now_ms();
	rpc_server_shutdown(srv, 100);
	/* The call was cancelled on the wire after the grace period ... */
	pthread_join(th, NULL);
	assert_int_not_equal(call.st.code, RPC_OK);
	assert_true(call.t_done - t0 < 1000);
	/* ... but shutdown still waited for the handler to return. */
	assert_int_equal(atomic_load(&g_ctx.finished), 1);
	assert_int_equal(rpc_server_live_calls(srv), 0);
	rpc_server_free(srv);
}

/* ---- TLS ------------------------------------------------------------------- */

static void run_sh(const char *cmd)
{
	char full[4096];

	snprintf(full, sizeof(full), "cd '%s' && (%s) >/dev/null 2>&1", g_dir, cmd);
	if (system(full) != 0)
		fail_msg("command failed: %s", cmd);
}

static char *read_pem(const char *name)
{
	uint8_t *p = NULL;
	size_t len;
	sigil_err err;

	assert_int_equal(sigil_fs_read_file(tpath(name), SIGIL_MAX_FILE_SIZE, &p, &len, &err), 0);
	return (char *)p;
}

/* A CA with a server certificate (localhost, 127.0.0.1) and a client
 * certificate, plus an unrelated second CA. */
static void make_pki(void)
{
	static const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 %s -keyout ca.key -out ca.crt -subj /CN=sigil-test-ca -days 2 "
	         "&& openssl req -x509 %s -keyout other.key -out other.crt -subj /CN=other-ca "
	         "-days 2",
	         ec, ec);
	run_sh(cmd);
	run_sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
	       "extendedKeyUsage=serverAuth\\n' > server.ext && "
	       "printf 'subjectAltName=DNS:node-1.sigil.test,URI:spiffe://sigil/node-1\\n"
	       "basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > client.ext");
	snprintf(cmd, sizeof(cmd),
	         "openssl req -new %s -keyout server.key -out server.csr -subj /CN=localhost && "
	         "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
	         "-days 1 -extfile server.ext -out server.crt && "
	         "openssl req -new %s -keyout client.key -out client.csr -subj /CN=node-1 && "
	         "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
	         "-days 1 -extfile client.ext -out client.crt && "
	         "openssl req -new %s -keyout rogue.key -out rogue.csr -subj /CN=rogue && "
	         "openssl x509 -req -in rogue.csr -CA other.crt -CAkey other.key -CAcreateserial "
	         "-days 1 -extfile client.ext -out rogue.crt",
	         ec, ec, ec);
	run_sh(cmd);
}

static rpc_client *tls_client(int port, const char *root, const char *cert, const char *key,
                              const char *host)
{
	char target[64];
	rpc_client_config cfg = {
	    .target = target, .tls_root_pem = root, .tls_cert_pem = cert, .tls_key_pem = key};
	rpc_client *c = NULL;
	sigil_err err = {0};

	snprintf(target, sizeof(target), "%s:%d", host, port);
	assert_int_equal(rpc_client_new(&cfg, &c, &err), 0);
	return c;
}

static void test_tls_listener(void **state)
{
	_cleanup_free_ char *ca = NULL, *other = NULL, *crt = NULL, *key = NULL;
	rpc_tls_server_config tls;
	sigil_err err = {0};
	rpc_status st;
	char out[64];
	int port = 0;

	make_pki();
	ca = read_pem("ca.crt");
	other = read_pem("other.crt");
	crt = read_pem("server.crt");
	key = read_pem("server.key");
	tls = (rpc_tls_server_config){.cert_chain_pem = crt, .key_pem = key};

	_cleanup_(rpc_server_freep) rpc_server *srv = server_new_cfg(2, 0, 0);
	(void)srv; /* held for its cleanup */
	if (rpc_server_listen_tcp(srv, "127.0.0.1:0", &tls, &port, &err) != 0)
		fail_msg("listen: %s", err.msg);
	assert_true(port > 0);
	assert_int_equal(rpc_server_start(srv, &err), 0);

	{
		_cleanup_(rpc_client_freep) rpc_client *c =
		    tls_client(port, ca, NULL, NULL, "127.0.0.1");
		assert_int_equal(
		    call_str(c, "/sigil.test.Echo/Echo", "tls", NULL, 0, &st, out, sizeof(out)),
		    RPC_OK);
		assert_string_equal(out, "echo:tls");
		/* Server-only TLS: the client is not authenticated. */
		assert_false(g_ctx.peer_auth);
	}
	{
		/* Verification by DNS name works as well. */
		_cleanup_(rpc_client_freep) rpc_client *c =
		    tls_client(port, ca, NULL, NULL, "localhost");
		assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "dns", NULL, 0, &st, NULL, 0),
		                 RPC_OK);
	}
	{
		/* Wrong roots: the handshake fails, the call never arrives. */
		_cleanup_(rpc_client_freep) rpc_client *c =
		    tls_client(port, other, NULL, NULL, "127.0.0.1");
		g_ctx.method[0] = '\0';
		assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "bad", NULL, 0, &st, NULL, 0),
		                 RPC_UNAVAILABLE);
		assert_string_equal(g_ctx.method, "");
	}
	{
		/* Plaintext client against the TLS port. */
		char target[64];
		rpc_client_config cfg = {.target = target};
		_cleanup_(rpc_client_freep) rpc_client *c = NULL;

		snprintf(target, sizeof(target), "127.0.0.1:%d", port);
		assert_int_equal(rpc_client_new(&cfg, &c, &err), 0);
		assert_int_equal(
		    call_str(c, "/sigil.test.Echo/Echo", "plain", NULL, 0, &st, NULL, 0),
		    RPC_UNAVAILABLE);
	}
}

static void test_mtls_listener(void **state)
{
	_cleanup_free_ char *ca = NULL, *crt = NULL, *key = NULL, *ccrt = NULL, *ckey = NULL,
	                    *rcrt = NULL, *rkey = NULL;
	rpc_tls_server_config tls;
	sigil_err err = {0};
	rpc_status st;
	int port = 0;

	make_pki();
	ca = read_pem("ca.crt");
	crt = read_pem("server.crt");
	key = read_pem("server.key");
	ccrt = read_pem("client.crt");
	ckey = read_pem("client.key");
	rcrt = read_pem("rogue.crt");
	rkey = read_pem("rogue.key");
	tls = (rpc_tls_server_config){.cert_chain_pem = crt, .key_pem = key, .client_ca_pem = ca};

	_cleanup_(rpc_server_freep) rpc_server *srv = server_new_cfg(1, 0, 0);
	(void)srv; /* held for its cleanup */
	if (rpc_server_listen_tcp(srv, "127.0.0.1:0", &tls, &port, &err) != 0)
		fail_msg("listen: %s", err.msg);
	assert_int_equal(rpc_server_start(srv, &err), 0);
	{
		_cleanup_(rpc_client_freep) rpc_client *c =
		    tls_client(port, ca, ccrt, ckey, "127.0.0.1");
		assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "m", NULL, 0, &st, NULL, 0),
		                 RPC_OK);
		assert_true(g_ctx.peer_auth);
		assert_int_equal(g_ctx.san_rc, 0);
		assert_non_null(strstr(g_ctx.sans, "node-1.sigil.test,"));
		assert_non_null(strstr(g_ctx.sans, "spiffe://sigil/node-1,"));
	}
	{
		/* No client certificate. */
		_cleanup_(rpc_client_freep) rpc_client *c =
		    tls_client(port, ca, NULL, NULL, "127.0.0.1");
		assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "m", NULL, 0, &st, NULL, 0),
		                 RPC_UNAVAILABLE);
	}
	{
		/* A client certificate from another CA. */
		_cleanup_(rpc_client_freep) rpc_client *c =
		    tls_client(port, ca, rcrt, rkey, "127.0.0.1");
		assert_int_equal(call_str(c, "/sigil.test.Echo/Echo", "m", NULL, 0, &st, NULL, 0),
		                 RPC_UNAVAILABLE);
	}
}

static void test_tls_bad_material_refused(void **state)
{
	_cleanup_free_ char *crt = NULL, *key = NULL, *okey = NULL;
	rpc_tls_server_config tls;
	sigil_err err = {0};
	int port = 0;

	make_pki();
	crt = read_pem("server.crt");
	key = read_pem("server.key");
	okey = read_pem("other.key");
	_cleanup_(rpc_server_freep) rpc_server *srv = server_new_cfg(1, 0, 0);
	(void)srv; /* held for its cleanup */

	tls = (rpc_tls_server_config){.cert_chain_pem = crt, .key_pem = NULL};
	assert_int_equal(rpc_server_listen_tcp(srv, "127.0.0.1:0", &tls, &port, &err),
	                 SIGIL_E_INVALID);
	tls = (rpc_tls_server_config){.cert_chain_pem = "garbage", .key_pem = key};
	assert_int_equal(rpc_server_listen_tcp(srv, "127.0.0.1:0", &tls, &port, &err), SIGIL_E_IO);
	tls = (rpc_tls_server_config){.cert_chain_pem = crt,
	                              .key_pem = "-----BEGIN PRIVATE KEY-----\n"
	                                         "AAAA\n-----END PRIVATE KEY-----\n"};
	assert_int_equal(rpc_server_listen_tcp(srv, "127.0.0.1:0", &tls, &port, &err), SIGIL_E_IO);
	/* Key that does not match the certificate. */
	tls = (rpc_tls_server_config){.cert_chain_pem = crt, .key_pem = okey};
	assert_int_equal(rpc_server_listen_tcp(srv, "127.0.0.1:0", &tls, &port, &err), SIGIL_E_IO);
	assert_int_equal(port, 0);
}

static void test_tcp_port_not_shared(void **state)
{
	_cleanup_(rpc_server_freep) rpc_server *a = server_new_cfg(1, 0, 0);
	(void)a; /* held for its cleanup */
	_cleanup_(rpc_server_freep) rpc_server *b = server_new_cfg(1, 0, 0);
	(void)b; /* held for its cleanup */
	sigil_err err = {0};
	char addr[64];
	int port = 0;

	assert_int_equal(rpc_server_listen_tcp(a, "127.0.0.1:0", NULL, &port, &err), 0);
	assert_int_equal(rpc_server_start(a, &err), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	assert_int_equal(rpc_server_listen_tcp(b, addr, NULL, NULL, &err), SIGIL_E_IO);
}

static void test_status_helpers(void **state)
{
	rpc_status st;
	sigil_err err;
	char longmsg[RPC_STATUS_MSG_MAX * 2];

	assert_int_equal(rpc_status_from_err(&st, SIGIL_E_UNAUTH, NULL), RPC_UNAUTHENTICATED);
	sigil_err_set(&err, SIGIL_E_EXPIRED, "CA expired on %s", "2020-01-01");
	assert_int_equal(rpc_status_from_err(&st, err.code, &err), RPC_FAILED_PRECONDITION);
	assert_string_equal(st.msg, "CA expired on 2020-01-01");
	assert_int_equal(rpc_status_from_err(&st, -EIO, NULL), RPC_INTERNAL);
	assert_int_equal(rpc_status_from_err(&st, SIGIL_E_TIMEOUT, NULL), RPC_DEADLINE_EXCEEDED);
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	rpc_status_set(&st, RPC_INTERNAL, "%s", longmsg);
	assert_int_equal(strlen(st.msg), RPC_STATUS_MSG_MAX - 1);
	assert_string_equal(rpc_code_name(RPC_UNIMPLEMENTED), "UNIMPLEMENTED");
	assert_string_equal(rpc_code_name(99), "CODE_99");
	assert_string_equal(rpc_code_name(-1), "CODE_-1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_echo_success, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_messages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handler_error_propagated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_method_unimplemented_fast, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_oversized_request_and_response, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_metadata_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_socket_mode_0600_and_removed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_socket_replaced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_live_socket_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_non_socket_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_bad_arguments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_workers_run_concurrently, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slow_handler_does_not_block_others, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_queue_full_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expired_queued_call_skipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_completes_inflight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_drain_refuses_new_calls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_grace_expires, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_listener, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mtls_listener, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_bad_material_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tcp_port_not_shared, setup, teardown),
	    cmocka_unit_test(test_status_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
