#include "rpc/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "util/mem.h"

/* Unix socket listeners one server may hold (CSI needs one). */
#define RPC_MAX_UNIX_LISTENERS 8
/* Longest grace period honoured by rpc_server_shutdown. */
#define RPC_MAX_GRACE_MS (3600 * 1000)
/* Pause between the last drained call and GOAWAY, so that clients read
 * their last responses on an open connection. */
#define RPC_SHUTDOWN_LINGER_MS 50
/* Least time given to gRPC's own shutdown before calls are cancelled. */
#define RPC_MIN_NOTIFY_MS 100
/* Catch-all pseudo method index. */
#define METHOD_UNKNOWN SIZE_MAX

enum server_state { SRV_NEW, SRV_RUNNING, SRV_STOPPED };
enum call_stage { CALL_REQUESTED, CALL_FINISHING };

struct server_method {
	char *path;
	rpc_handler_fn handler;
	void *ctx;
	void *handle; /* grpc_server_register_method */
};

struct rpc_worker {
	rpc_server *srv;
	grpc_completion_queue *cq;
	pthread_t thread;
	bool running;
};

struct unix_listener {
	char *path;
	dev_t dev;
	ino_t ino;
};

struct rpc_server {
	grpc_server *server;
	grpc_completion_queue *ctl_cq; /* shutdown notification only */
	struct server_method *methods;
	size_t n_methods;
	struct rpc_worker *workers;
	unsigned n_workers;
	pthread_t *handlers;
	unsigned n_handlers;
	unsigned n_handlers_running;
	/* Ring of accepted calls waiting for a handler thread (under lock). */
	struct rpc_call **queue;
	unsigned q_cap, q_head, q_len;
	bool q_stop;
	pthread_cond_t q_cond;
	size_t max_recv;
	size_t max_send;
	enum server_state state;
	unsigned n_listeners;
	struct unix_listener unix_listeners[RPC_MAX_UNIX_LISTENERS];
	size_t n_unix;
	atomic_bool draining;    /* shutdown began: refuse new calls */
	atomic_bool stop_arming; /* gRPC shutdown began: arm no requests */
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned live;   /* accepted calls whose final batch has not completed */
	unsigned guards; /* workers between accepting a call and re-arming */
	bool grpc_inited;
};

/* One armed request, then one accepted call.  It is its own completion
 * queue tag; stage says which operation completed. */
struct rpc_call {
	struct rpc_worker *w;
	size_t method;
	enum call_stage stage;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;
	grpc_call_details details; /* catch-all requests only */
	grpc_auth_context *auth;
	char *peer;
	const char *method_name;
	char unknown_path[RPC_MAX_METHOD_PATH + 1];
	grpc_byte_buffer *resp_bb;
	grpc_slice status_details;
	int cancelled;
};

/* ---- small helpers ---------------------------------------------------- */

static bool method_path_ok(const char *p)
{
	size_t len;
	const char *slash;

	if (!p || p[0] != '/')
		return false;
	len = strnlen(p, RPC_MAX_METHOD_PATH + 1);
	if (len > RPC_MAX_METHOD_PATH)
		return false;
	slash = strchr(p + 1, '/');
	/* "/Service/Method": a non-empty service and method, no third part. */
	if (!slash || slash == p + 1 || slash[1] == '\0' || strchr(slash + 1, '/'))
		return false;
	for (const char *c = p; *c; c++)
		if (*c <= ' ' || *c >= 0x7f)
			return false;
	return true;
}

static void server_count(rpc_server *srv, unsigned *counter, int delta)
{
	pthread_mutex_lock(&srv->lock);
	if (delta > 0)
		(*counter)++;
	else if (*counter > 0)
		(*counter)--;
	if (srv->live == 0 && srv->guards == 0)
		pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
}

static void server_live_inc(rpc_server *srv)
{
	server_count(srv, &srv->live, 1);
}

static void server_live_dec(rpc_server *srv)
{
	server_count(srv, &srv->live, -1);
}

unsigned rpc_server_live_calls(rpc_server *srv)
{
	unsigned n;

	pthread_mutex_lock(&srv->lock);
	n = srv->live;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

static void call_free(struct rpc_call *c)
{
	if (!c)
		return;
	if (c->auth)
		grpc_auth_context_release(c->auth);
	gpr_free(c->peer);
	grpc_metadata_array_destroy(&c->md);
	grpc_call_details_destroy(&c->details);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	if (c->resp_bb)
		grpc_byte_buffer_destroy(c->resp_bb);
	grpc_slice_unref(c->status_details);
	if (c->call)
		grpc_call_unref(c->call);
	free(c);
}

/* Arms one request on w's queue: for a registered method, or the catch-all. */
static bool worker_arm(struct rpc_worker *w, size_t method)
{
	rpc_server *srv = w->srv;
	struct rpc_call *c = calloc(1, sizeof(*c));
	grpc_call_error e;

	if (!c)
		return false;
	c->w = w;
	c->method = method;
	c->stage = CALL_REQUESTED;
	c->status_details = grpc_empty_slice();
	grpc_metadata_array_init(&c->md);
	grpc_call_details_init(&c->details);
	if (method == METHOD_UNKNOWN)
		e = grpc_server_request_call(srv->server, &c->call, &c->details, &c->md, w->cq,
		                             w->cq, c);
	else
		e = grpc_server_request_registered_call(srv->server, srv->methods[method].handle,
		                                        &c->call, &c->deadline, &c->md, &c->payload,
		                                        w->cq, w->cq, c);
	if (e != GRPC_CALL_OK) {
		call_free(c);
		return false;
	}
	return true;
}

/* Starts the final batch: initial metadata, the response (only with OK),
 * the status, and the close notification that tells us the call is over.
 * Takes ownership of resp. */
static bool call_start_reply(struct rpc_call *c, rpc_status *st, uint8_t *resp, size_t resp_len)
{
	grpc_op ops[4];
	size_t n = 0;

	if (st->code < RPC_OK || st->code > RPC_UNAUTHENTICATED)
		rpc_status_set(st, RPC_INTERNAL, "handler returned invalid status %d", st->code);
	memset(ops, 0, sizeof(ops));
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].data.send_initial_metadata.count = 0;
	n++;
	if (st->code == RPC_OK) {
		grpc_slice s;

		if (resp && resp_len > 0) {
			/* The slice owns resp and wipes it once gRPC is done. */
			s = grpc_slice_new_with_len(resp, resp_len, sigil_freezero);
		} else {
			free(resp);
			s = grpc_empty_slice();
		}
		resp = NULL;
		c->resp_bb = grpc_raw_byte_buffer_create(&s, 1);
		grpc_slice_unref(s);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = c->resp_bb;
		n++;
	} else if (resp) {
		sigil_freezero(resp, resp_len);
	}
	grpc_slice_unref(c->status_details);
	c->status_details = grpc_slice_from_copied_string(st->msg);
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.trailing_metadata_count = 0;
	ops[n].data.send_status_from_server.status = (grpc_status_code)st->code;
	ops[n].data.send_status_from_server.status_details = &c->status_details;
	n++;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
	n++;
	c->stage = CALL_FINISHING;
	return grpc_call_start_batch(c->call, ops, n, c, NULL) == GRPC_CALL_OK;
}

static void wipe_byte_buffer(grpc_byte_buffer *bb)
{
	if (!bb || bb->type != GRPC_BB_RAW)
		return;
	for (size_t i = 0; i < bb->data.raw.slice_buffer.count; i++) {
		grpc_slice *s = &bb->data.raw.slice_buffer.slices[i];
		sigil_wipe(GRPC_SLICE_START_PTR(*s), GRPC_SLICE_LENGTH(*s));
	}
}

/* Runs the handler of a registered method and starts the reply. */
static bool call_dispatch(struct rpc_call *c)
{
	rpc_server *srv = c->w->srv;
	const struct server_method *m = &srv->methods[c->method];
	rpc_status st = {.code = RPC_OK};
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	grpc_byte_buffer_reader reader;

	c->method_name = m->path;
	c->auth = grpc_call_auth_context(c->call);
	c->peer = grpc_call_get_peer(c->call);
	if (rpc_call_remaining_ms(c) == 0) {
		/* Expired while queued: the client gave up, skip the work. */
		rpc_status_set(&st, RPC_DEADLINE_EXCEEDED, "deadline passed before the call ran");
	} else if (!c->payload) {
		/* Client half-closed without a message: not a unary request. */
		rpc_status_set(&st, RPC_INVALID_ARGUMENT, "request message missing");
	} else if (!grpc_byte_buffer_reader_init(&reader, c->payload)) {
		rpc_status_set(&st, RPC_INTERNAL, "cannot read the request message");
	} else {
		grpc_slice req = grpc_byte_buffer_reader_readall(&reader);
		int r;

		grpc_byte_buffer_reader_destroy(&reader);
		r = m->handler(m->ctx, c, GRPC_SLICE_START_PTR(req), GRPC_SLICE_LENGTH(req), &resp,
		               &resp_len, &st);
		/* CSI requests carry secrets (NodePublishVolume.secrets). */
		sigil_wipe(GRPC_SLICE_START_PTR(req), GRPC_SLICE_LENGTH(req));
		grpc_slice_unref(req);
		if (r < 0 && st.code == RPC_OK)
			rpc_status_from_err(&st, r, NULL);
		if (st.code == RPC_OK && !resp && resp_len > 0)
			rpc_status_set(&st, RPC_INTERNAL, "handler returned no response bytes");
		if (st.code == RPC_OK && resp_len > srv->max_send)
			rpc_status_set(&st, RPC_RESOURCE_EXHAUSTED,
			               "response of %zu bytes exceeds the limit of %zu bytes",
			               resp_len, srv->max_send);
	}
	wipe_byte_buffer(c->payload);
	if (c->payload) {
		grpc_byte_buffer_destroy(c->payload);
		c->payload = NULL;
	}
	return call_start_reply(c, &st, resp, resp_len);
}

/* Answers a call to a method nobody registered: UNIMPLEMENTED right away. */
static bool call_reply_unknown(struct rpc_call *c)
{
	rpc_status st;
	size_t len = GRPC_SLICE_LENGTH(c->details.method);
	const uint8_t *p = GRPC_SLICE_START_PTR(c->details.method);

	if (len > RPC_MAX_METHOD_PATH)
		len = RPC_MAX_METHOD_PATH;
	/* The path comes from the client: keep it printable in our message. */
	for (size_t i = 0; i < len; i++)
		c->unknown_path[i] = (p[i] > ' ' && p[i] < 0x7f) ? (char)p[i] : '?';
	c->unknown_path[len] = '\0';
	c->method_name = c->unknown_path;
	c->deadline = c->details.deadline;
	rpc_status_set(&st, RPC_UNIMPLEMENTED, "unknown method %s", c->unknown_path);
	return call_start_reply(c, &st, NULL, 0);
}

/* While draining for shutdown: a retryable refusal instead of a handler
 * that may be cut off half way. */
static bool call_reply_draining(struct rpc_call *c)
{
	rpc_status st;

	c->method_name = c->w->srv->methods[c->method].path;
	rpc_status_set(&st, RPC_UNAVAILABLE, "server is shutting down; retry");
	return call_start_reply(c, &st, NULL, 0);
}

/* Hands an accepted call to the handler threads; false if the queue is
 * full. */
static bool server_enqueue(rpc_server *srv, struct rpc_call *c)
{
	bool ok = false;

	pthread_mutex_lock(&srv->lock);
	if (srv->q_len < srv->q_cap) {
		srv->queue[(srv->q_head + srv->q_len) % srv->q_cap] = c;
		srv->q_len++;
		pthread_cond_signal(&srv->q_cond);
		ok = true;
	}
	pthread_mutex_unlock(&srv->lock);
	return ok;
}

static void *handler_main(void *arg)
{
	rpc_server *srv = arg;

	for (;;) {
		struct rpc_call *c;

		pthread_mutex_lock(&srv->lock);
		while (srv->q_len == 0 && !srv->q_stop)
			pthread_cond_wait(&srv->q_cond, &srv->lock);
		if (srv->q_len == 0) {
			pthread_mutex_unlock(&srv->lock);
			break;
		}
		c = srv->queue[srv->q_head];
		srv->q_head = (srv->q_head + 1) % srv->q_cap;
		srv->q_len--;
		pthread_mutex_unlock(&srv->lock);
		if (!call_dispatch(c)) {
			call_free(c);
			server_live_dec(srv);
		}
	}
	return NULL;
}

/* Runs on a worker thread; never blocks on a handler. */
static void worker_on_event(struct rpc_worker *w, struct rpc_call *c, bool ok)
{
	rpc_server *srv = w->srv;
	size_t method = c->method;
	bool started;

	if (c->stage == CALL_FINISHING) {
		call_free(c);
		server_live_dec(srv);
		return;
	}
	if (!ok) {
		/* The request was cancelled: the server is shutting down. */
		call_free(c);
		return;
	}
	/* Count the call, and guard this function until the re-arm below is
	 * done, whatever a handler thread does with c meanwhile. */
	server_count(srv, &srv->guards, 1);
	server_live_inc(srv);
	if (method == METHOD_UNKNOWN) {
		started = call_reply_unknown(c);
	} else if (atomic_load(&srv->draining)) {
		started = call_reply_draining(c);
	} else if (server_enqueue(srv, c)) {
		/* c belongs to a handler thread now. */
		started = true;
	} else {
		rpc_status st;

		c->method_name = srv->methods[method].path;
		rpc_status_set(&st, RPC_RESOURCE_EXHAUSTED, "server busy: %u calls already waiting",
		               srv->q_cap);
		started = call_start_reply(c, &st, NULL, 0);
	}
	/* Re-arm at once so this queue keeps taking calls.  The guard count
	 * keeps shutdown from shutting this queue down under our feet. */
	if (!atomic_load(&srv->stop_arming))
		(void)worker_arm(w, method);
	if (!started) {
		call_free(c);
		server_live_dec(srv);
	}
	server_count(srv, &srv->guards, -1);
}

static void *worker_main(void *arg)
{
	struct rpc_worker *w = arg;

	for (;;) {
		grpc_event ev =
		    grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE)
			worker_on_event(w, ev.tag, ev.success != 0);
	}
	return NULL;
}

static void cq_drain_destroy(grpc_completion_queue *cq)
{
	grpc_event ev;

	if (!cq)
		return;
	grpc_completion_queue_shutdown(cq);
	do {
		ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		/* Only cancelled requests can remain here (no thread ever ran). */
		if (ev.type == GRPC_OP_COMPLETE && ev.tag)
			call_free(ev.tag);
	} while (ev.type != GRPC_QUEUE_SHUTDOWN);
	grpc_completion_queue_destroy(cq);
}

/* ---- lifecycle -------------------------------------------------------- */

static int server_config_check(const rpc_server_config *cfg, sigil_err *err)
{
	if (!cfg)
		return sigil_err_set(err, SIGIL_E_INVALID, "rpc server: no configuration");
	if (cfg->n_methods > RPC_MAX_METHODS)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "rpc server: %zu methods exceed the limit of %d",
		                     cfg->n_methods, RPC_MAX_METHODS);
	if (cfg->n_methods > 0 && !cfg->methods)
		return sigil_err_set(err, SIGIL_E_INVALID, "rpc server: method table missing");
	if (cfg->workers > RPC_MAX_WORKERS || cfg->handler_threads > RPC_MAX_WORKERS)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "rpc server: more than %d worker or handler threads",
		                     RPC_MAX_WORKERS);
	if (cfg->max_queued > RPC_MAX_QUEUED_LIMIT)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "rpc server: a queue of %u calls exceeds the limit of %d",
		                     cfg->max_queued, RPC_MAX_QUEUED_LIMIT);
	if (cfg->max_recv_bytes > RPC_MAX_MESSAGE_LIMIT ||
	    cfg->max_send_bytes > RPC_MAX_MESSAGE_LIMIT)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "rpc server: message limit above the ceiling of %u bytes",
		                     RPC_MAX_MESSAGE_LIMIT);
	for (size_t i = 0; i < cfg->n_methods; i++) {
		const rpc_method *m = &cfg->methods[i];

		if (!method_path_ok(m->path))
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "rpc server: method %zu: path must look like "
			                     "\"/package.Service/Method\"",
			                     i);
		if (!m->handler)
			return sigil_err_set(err, SIGIL_E_INVALID, "rpc server: %s has no handler",
			                     m->path);
		for (size_t j = 0; j < i; j++)
			if (strcmp(cfg->methods[j].path, m->path) == 0)
				return sigil_err_set(err, SIGIL_E_INVALID,
				                     "rpc server: method %s registered twice",
				                     m->path);
	}
	return 0;
}

int rpc_server_new(const rpc_server_config *cfg, rpc_server **ret, sigil_err *err)
{
	_cleanup_(rpc_server_freep) rpc_server *srv = NULL;
	grpc_arg args[3];
	grpc_channel_args chargs;
	int r;

	r = server_config_check(cfg, err);
	if (r < 0)
		return r;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return sigil_err_set(err, SIGIL_E_NOMEM, "rpc server: out of memory");
	pthread_condattr_t cattr;

	pthread_mutex_init(&srv->lock, NULL);
	/* Shutdown waits with a deadline: measure it on the monotonic clock. */
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->idle, &cattr);
	pthread_condattr_destroy(&cattr);
	pthread_cond_init(&srv->q_cond, NULL);
	atomic_init(&srv->draining, false);
	atomic_init(&srv->stop_arming, false);
	srv->state = SRV_NEW;
	srv->max_recv = cfg->max_recv_bytes ? cfg->max_recv_bytes : RPC_DEFAULT_MAX_MESSAGE;
	srv->max_send = cfg->max_send_bytes ? cfg->max_send_bytes : RPC_DEFAULT_MAX_MESSAGE;
	srv->n_workers = cfg->workers ? cfg->workers : RPC_DEFAULT_WORKERS;
	srv->n_handlers = cfg->handler_threads ? cfg->handler_threads : RPC_DEFAULT_HANDLER_THREADS;
	srv->q_cap = cfg->max_queued ? cfg->max_queued : RPC_DEFAULT_MAX_QUEUED;

	srv->methods = sigil_calloc(cfg->n_methods, sizeof(*srv->methods));
	srv->workers = calloc(srv->n_workers, sizeof(*srv->workers));
	srv->handlers = calloc(srv->n_handlers, sizeof(*srv->handlers));
	srv->queue = calloc(srv->q_cap, sizeof(*srv->queue));
	if (!srv->methods || !srv->workers || !srv->handlers || !srv->queue)
		return sigil_err_set(err, SIGIL_E_NOMEM, "rpc server: out of memory");
	for (size_t i = 0; i < cfg->n_methods; i++) {
		srv->methods[i].path = strdup(cfg->methods[i].path);
		if (!srv->methods[i].path)
			return sigil_err_set(err, SIGIL_E_NOMEM, "rpc server: out of memory");
		srv->n_methods++;
		srv->methods[i].handler = cfg->methods[i].handler;
		srv->methods[i].ctx = cfg->methods[i].ctx;
	}

	/* The system resolver: Debian's c-ares build leaks on every lookup of
	 * "localhost", which LeakSanitizer reports at exit. */
	setenv("GRPC_DNS_RESOLVER", "native", 0);
	grpc_init();
	srv->grpc_inited = true;

	memset(args, 0, sizeof(args));
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = (int)srv->max_recv;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[1].value.integer = (int)srv->max_send;
	/* gRPC sets SO_REUSEPORT by default: a second server on our port
	 * would then share it silently. */
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
	args[2].value.integer = 0;
	chargs.num_args = SIGIL_ARRAY_SIZE(args);
	chargs.args = args;
	srv->server = grpc_server_create(&chargs, NULL);
	if (!srv->server)
		return sigil_err_set(err, SIGIL_E_INTERNAL,
		                     "rpc server: grpc_server_create failed");

	for (size_t i = 0; i < srv->n_methods; i++) {
		srv->methods[i].handle =
		    grpc_server_register_method(srv->server, srv->methods[i].path, NULL,
		                                GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
		if (!srv->methods[i].handle)
			return sigil_err_set(err, SIGIL_E_INTERNAL,
			                     "rpc server: cannot register %s",
			                     srv->methods[i].path);
	}
	for (unsigned i = 0; i < srv->n_workers; i++) {
		srv->workers[i].srv = srv;
		srv->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
		if (!srv->workers[i].cq)
			return sigil_err_set(err, SIGIL_E_NOMEM,
			                     "rpc server: cannot create a queue");
		grpc_server_register_completion_queue(srv->server, srv->workers[i].cq, NULL);
	}
	srv->ctl_cq = grpc_completion_queue_create_for_next(NULL);
	if (!srv->ctl_cq)
		return sigil_err_set(err, SIGIL_E_NOMEM, "rpc server: cannot create a queue");
	grpc_server_register_completion_queue(srv->server, srv->ctl_cq, NULL);

	*ret = TAKE_PTR(srv);
	return 0;
}

/* Decides whether path may be bound: nothing there, or a stale socket that
 * nobody accepts on (removed here).  gRPC itself unlinks any socket at the
 * path before binding, which would steal a live plugin's endpoint. */
static int unix_path_claim(const char *path, sigil_err *err)
{
	struct stat st;
	struct sockaddr_un sa;
	int fd, e;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		return sigil_err_errno(err, errno, "cannot inspect socket path %s", path);
	}
	if (!S_ISSOCK(st.st_mode))
		return sigil_err_set(err, SIGIL_E_EXISTS,
		                     "%s exists and is not a socket; refusing to replace it", path);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot create a probe socket");
	e = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
	close(fd);
	/* EAGAIN: a listener whose backlog is full is still alive. */
	if (e == 0 || e == EAGAIN)
		return sigil_err_set(err, SIGIL_E_EXISTS,
		                     "another process is serving on %s; stop it or choose another "
		                     "endpoint",
		                     path);
	if (e != ECONNREFUSED)
		return sigil_err_errno(err, e, "cannot probe existing socket %s", path);
	if (unlink(path) != 0 && errno != ENOENT)
		return sigil_err_errno(err, errno, "cannot remove stale socket %s", path);
	return 0;
}

int rpc_server_listen_unix(rpc_server *srv, const char *path, sigil_err *err)
{
	struct unix_listener *l;
	grpc_server_credentials *creds;
	char addr[RPC_MAX_ADDRESS];
	struct stat st;
	mode_t old_mask;
	size_t len;
	int port, r;

	if (!srv || srv->state != SRV_NEW)
		return sigil_err_set(err, SIGIL_E_PRECOND, "rpc server: listen after start");
	if (!path || !path[0])
		return sigil_err_set(err, SIGIL_E_INVALID, "unix socket path is empty");
	len = strnlen(path, RPC_MAX_UNIX_PATH + 1);
	if (len > RPC_MAX_UNIX_PATH)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "unix socket path is longer than %d bytes: %.64s...",
		                     RPC_MAX_UNIX_PATH, path);
	if (srv->n_unix >= RPC_MAX_UNIX_LISTENERS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "rpc server: more than %d unix sockets",
		                     RPC_MAX_UNIX_LISTENERS);
	r = unix_path_claim(path, err);
	if (r < 0)
		return r;
	snprintf(addr, sizeof(addr), "unix:%s", path);
	l = &srv->unix_listeners[srv->n_unix];
	l->path = strdup(path);
	if (!l->path)
		return sigil_err_set(err, SIGIL_E_NOMEM, "rpc server: out of memory");

	creds = grpc_insecure_server_credentials_create();
	/* gRPC binds here; the narrow umask makes the socket 0600 from its
	 * first moment, the chmod below makes sure of it. */
	old_mask = umask(0177);
	port = grpc_server_add_http2_port(srv->server, addr, creds);
	umask(old_mask);
	grpc_server_credentials_release(creds);
	if (port <= 0) {
		free(TAKE_PTR(l->path));
		return sigil_err_set(
		    err, SIGIL_E_IO,
		    "cannot listen on unix socket %s (does the directory exist and "
		    "is it writable?)",
		    path);
	}
	srv->n_listeners++;
	srv->n_unix++;
	if (lstat(path, &st) != 0)
		return sigil_err_errno(err, errno, "unix socket %s vanished after bind", path);
	if (!S_ISSOCK(st.st_mode))
		return sigil_err_set(err, SIGIL_E_IO, "%s is not a socket after bind", path);
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	if (chmod(path, 0600) != 0)
		return sigil_err_errno(err, errno, "cannot set mode 0600 on %s", path);
	return 0;
}

int rpc_server_listen_tcp(rpc_server *srv, const char *addr, const rpc_tls_server_config *tls,
                          int *ret_port, sigil_err *err)
{
	grpc_server_credentials *creds;
	int port;

	if (!srv || srv->state != SRV_NEW)
		return sigil_err_set(err, SIGIL_E_PRECOND, "rpc server: listen after start");
	if (!addr || !addr[0])
		return sigil_err_set(err, SIGIL_E_INVALID, "listen address is empty");
	if (strnlen(addr, RPC_MAX_ADDRESS) >= RPC_MAX_ADDRESS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "listen address is longer than %d bytes",
		                     RPC_MAX_ADDRESS - 1);
	if (strncmp(addr, "unix:", 5) == 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "%s: use rpc_server_listen_unix for unix sockets", addr);
	if (tls) {
		grpc_ssl_pem_key_cert_pair pair;

		if (!tls->cert_chain_pem || !tls->key_pem)
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "TLS listener %s needs a certificate and a key", addr);
		pair.private_key = tls->key_pem;
		pair.cert_chain = tls->cert_chain_pem;
		creds = grpc_ssl_server_credentials_create_ex(
		    tls->client_ca_pem, &pair, 1,
		    tls->client_ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
		                       : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
		    NULL);
	} else {
		creds = grpc_insecure_server_credentials_create();
	}
	if (!creds)
		return sigil_err_set(err, SIGIL_E_INVALID, "cannot create credentials for %s",
		                     addr);
	port = grpc_server_add_http2_port(srv->server, addr, creds);
	grpc_server_credentials_release(creds);
	if (port <= 0)
		return sigil_err_set(err, SIGIL_E_IO,
		                     "cannot listen on %s: the address is in use or invalid%s",
		                     addr, tls ? ", or the TLS certificate/key is unusable" : "");
	srv->n_listeners++;
	if (ret_port)
		*ret_port = port;
	return 0;
}

int rpc_server_start(rpc_server *srv, sigil_err *err)
{
	if (!srv || srv->state != SRV_NEW)
		return sigil_err_set(err, SIGIL_E_PRECOND, "rpc server: already started");
	if (srv->n_listeners == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "rpc server: no listener configured");
	grpc_server_start(srv->server);
	srv->state = SRV_RUNNING;
	for (unsigned i = 0; i < srv->n_handlers; i++) {
		int r = pthread_create(&srv->handlers[i], NULL, handler_main, srv);
		if (r != 0)
			return sigil_err_errno(err, r, "rpc server: cannot start handler thread");
		srv->n_handlers_running++;
	}
	for (unsigned i = 0; i < srv->n_workers; i++) {
		int r =
		    pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
		if (r != 0)
			return sigil_err_errno(err, r, "rpc server: cannot start worker thread");
		srv->workers[i].running = true;
	}
	/* Requests are armed only once every worker runs: a request on a
	 * queue without a thread would swallow calls. */
	for (unsigned i = 0; i < srv->n_workers; i++) {
		for (size_t m = 0; m < srv->n_methods; m++)
			if (!worker_arm(&srv->workers[i], m))
				return sigil_err_set(err, SIGIL_E_INTERNAL,
				                     "rpc server: cannot request calls for %s",
				                     srv->methods[m].path);
		if (!worker_arm(&srv->workers[i], METHOD_UNKNOWN))
			return sigil_err_set(err, SIGIL_E_INTERNAL,
			                     "rpc server: cannot request calls");
	}
	return 0;
}

static void server_unlink_sockets(rpc_server *srv)
{
	for (size_t i = 0; i < srv->n_unix; i++) {
		struct unix_listener *l = &srv->unix_listeners[i];
		struct stat st;

		/* Only our own socket: another server may have replaced it. */
		if (l->path && lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    st.st_dev == l->dev && st.st_ino == l->ino)
			(void)unlink(l->path);
		free(TAKE_PTR(l->path));
	}
	srv->n_unix = 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until no call is live or deadline_ms (monotonic) passes. */
static bool server_wait_idle(rpc_server *srv, int64_t deadline_ms)
{
	struct timespec ts = {.tv_sec = deadline_ms / 1000,
	                      .tv_nsec = (deadline_ms % 1000) * 1000000};
	bool idle;

	pthread_mutex_lock(&srv->lock);
	while ((srv->live > 0 || srv->guards > 0) && mono_ms() < deadline_ms)
		pthread_cond_timedwait(&srv->idle, &srv->lock, &ts);
	idle = srv->live == 0 && srv->guards == 0;
	pthread_mutex_unlock(&srv->lock);
	return idle;
}

/* Shutdown happens in two phases.  Drain: calls in flight finish while
 * connections stay open and new calls get UNAVAILABLE.  Then gRPC's own
 * shutdown (GOAWAY, close).  Doing GOAWAY first loses answers: gRPC closes
 * a connection right after its last stream ends, and a client that writes
 * (a ping) before it has read the buffered trailers fails the call with
 * "Broken pipe". */
void rpc_server_shutdown(rpc_server *srv, int64_t grace_ms)
{
	grpc_event ev;
	int64_t deadline, notify_deadline;

	if (!srv || srv->state == SRV_STOPPED || !srv->server)
		return;
	if (grace_ms < 0)
		grace_ms = 0;
	if (grace_ms > RPC_MAX_GRACE_MS)
		grace_ms = RPC_MAX_GRACE_MS;
	deadline = mono_ms() + grace_ms;
	/* gRPC wants shutdown only on a started server; with no request
	 * armed, starting admits nothing. */
	if (srv->state == SRV_NEW)
		grpc_server_start(srv->server);

	atomic_store(&srv->draining, true);
	if (server_wait_idle(srv, deadline) && srv->state == SRV_RUNNING) {
		struct timespec linger = {.tv_nsec = RPC_SHUTDOWN_LINGER_MS * 1000000L};
		nanosleep(&linger, NULL);
	}

	atomic_store(&srv->stop_arming, true);
	grpc_server_shutdown_and_notify(srv->server, srv->ctl_cq, srv);
	notify_deadline = deadline;
	if (notify_deadline < mono_ms() + RPC_MIN_NOTIFY_MS)
		notify_deadline = mono_ms() + RPC_MIN_NOTIFY_MS;
	ev = grpc_completion_queue_next(
	    srv->ctl_cq,
	    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	                 gpr_time_from_millis(notify_deadline - mono_ms(), GPR_TIMESPAN)),
	    NULL);
	if (ev.type == GRPC_QUEUE_TIMEOUT) {
		/* Grace is over: fail the calls on the wire and drop idle
		 * connections.  Running handlers still finish (they are
		 * synchronous). */
		grpc_server_cancel_all_calls(srv->server);
		ev = grpc_completion_queue_next(srv->ctl_cq, gpr_inf_future(GPR_CLOCK_MONOTONIC),
		                                NULL);
	}
	/* DESIGN.md gotcha: wait for zero live calls before destroying. */
	pthread_mutex_lock(&srv->lock);
	while (srv->live > 0 || srv->guards > 0)
		pthread_cond_wait(&srv->idle, &srv->lock);
	/* No live call means an empty queue: the handlers can go. */
	srv->q_stop = true;
	pthread_cond_broadcast(&srv->q_cond);
	pthread_mutex_unlock(&srv->lock);
	for (unsigned i = 0; i < srv->n_handlers_running; i++)
		pthread_join(srv->handlers[i], NULL);
	srv->n_handlers_running = 0;

	for (unsigned i = 0; i < srv->n_workers; i++)
		if (srv->workers[i].running)
			grpc_completion_queue_shutdown(srv->workers[i].cq);
	for (unsigned i = 0; i < srv->n_workers; i++) {
		if (srv->workers[i].running) {
			pthread_join(srv->workers[i].thread, NULL);
			srv->workers[i].running = false;
			grpc_completion_queue_destroy(srv->workers[i].cq);
		} else {
			cq_drain_destroy(srv->workers[i].cq);
		}
		srv->workers[i].cq = NULL;
	}
	grpc_server_destroy(srv->server);
	srv->server = NULL;
	cq_drain_destroy(srv->ctl_cq);
	srv->ctl_cq = NULL;
	srv->state = SRV_STOPPED;
	server_unlink_sockets(srv);
}

void rpc_server_free(rpc_server *srv)
{
	if (!srv)
		return;
	if (srv->state == SRV_RUNNING || (srv->state == SRV_NEW && srv->n_listeners > 0)) {
		rpc_server_shutdown(srv, RPC_DEFAULT_GRACE_MS);
	} else if (srv->state == SRV_NEW) {
		/* No listener, never started (maybe half constructed): gRPC
		 * allows destroying such a server without a shutdown. */
		if (srv->server)
			grpc_server_destroy(srv->server);
		if (srv->workers)
			for (unsigned i = 0; i < srv->n_workers; i++)
				cq_drain_destroy(srv->workers[i].cq);
		cq_drain_destroy(srv->ctl_cq);
	}
	server_unlink_sockets(srv);
	for (size_t i = 0; i < srv->n_methods; i++)
		free(srv->methods[i].path);
	free(srv->methods);
	free(srv->workers);
	free(srv->handlers);
	free(srv->queue);
	pthread_cond_destroy(&srv->q_cond);
	pthread_cond_destroy(&srv->idle);
	pthread_mutex_destroy(&srv->lock);
	if (srv->grpc_inited)
		grpc_shutdown();
	free(srv);
}

/* ---- per-call accessors ---------------------------------------------- */

const char *rpc_call_method(const rpc_call *call)
{
	return call->method_name ? call->method_name : "";
}

int rpc_call_get_metadata(const rpc_call *call, const char *key, const char **ret, size_t *ret_len)
{
	size_t klen = strlen(key);
	const grpc_metadata *found = NULL;

	for (size_t i = 0; i < call->md.count; i++) {
		const grpc_metadata *m = &call->md.metadata[i];

		if (GRPC_SLICE_LENGTH(m->key) != klen ||
		    strncasecmp((const char *)GRPC_SLICE_START_PTR(m->key), key, klen) != 0)
			continue;
		if (found)
			return SIGIL_E_INVALID;
		found = m;
	}
	if (!found)
		return SIGIL_E_NOTFOUND;
	*ret = (const char *)GRPC_SLICE_START_PTR(found->value);
	*ret_len = GRPC_SLICE_LENGTH(found->value);
	return 0;
}

bool rpc_call_peer_authenticated(const rpc_call *call)
{
	return call->auth && grpc_auth_context_peer_is_authenticated(call->auth);
}

int rpc_call_get_peer_property(const rpc_call *call, const char *name, size_t index,
                               const char **ret, size_t *ret_len)
{
	grpc_auth_property_iterator it;
	const grpc_auth_property *p;
	size_t i = 0;

	if (!call->auth)
		return SIGIL_E_NOTFOUND;
	it = grpc_auth_context_find_properties_by_name(call->auth, name);
	while ((p = grpc_auth_property_iterator_next(&it)) != NULL) {
		if (i++ == index) {
			*ret = p->value;
			*ret_len = p->value_length;
			return 0;
		}
	}
	return SIGIL_E_NOTFOUND;
}

const char *rpc_call_peer(const rpc_call *call)
{
	return call->peer ? call->peer : "";
}

int64_t rpc_call_remaining_ms(const rpc_call *call)
{
	gpr_timespec dl = gpr_convert_clock_type(call->deadline, GPR_CLOCK_MONOTONIC);
	gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
	gpr_timespec left;

	if (gpr_time_cmp(dl, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0)
		return INT64_MAX;
	if (gpr_time_cmp(dl, now) <= 0)
		return 0;
	left = gpr_time_sub(dl, now);
	return (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
}

/* ---- signals ---------------------------------------------------------- */

int rpc_server_block_signals(sigset_t *ret_set, sigil_err *err)
{
	sigset_t set;
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (r != 0)
		return sigil_err_errno(err, r, "cannot block SIGTERM/SIGINT");
	*ret_set = set;
	return 0;
}

int rpc_server_wait_signal(const sigset_t *set)
{
	for (;;) {
		int sig, r = sigwait(set, &sig);

		if (r == 0)
			return sig;
		if (r != EINTR)
			return -r;
	}
}
