/* A gRPC server on the gRPC C core API for unary methods with raw protobuf
 * bytes in and out.
 *
 * Design: a method table maps full paths ("/csi.v1.Node/NodePublishVolume")
 * to handlers.  Each of N worker threads owns a completion queue with one
 * request armed per registered method plus one catch-all that answers
 * UNIMPLEMENTED (gRPC core 1.51 otherwise leaves unknown methods hanging to
 * their deadline).  Workers never block: they re-arm at once and queue the
 * call for a pool of handler threads.  (Running handlers on the workers
 * would let gRPC match a new call, say a Probe, to a request armed on a
 * worker stuck in a slow NodePublishVolume while other workers idle.)
 * Handlers unpack and pack their messages with protobuf-c themselves, so
 * this layer stays independent of any .proto.  A handler gets an rpc_call
 * as well, to read request metadata (bearer tokens) and the TLS peer
 * identity without seeing a gRPC type.
 *
 * Lifecycle: rpc_server_new, rpc_server_listen_* (before start),
 * rpc_server_start, rpc_server_shutdown (graceful), rpc_server_free.
 * The functions themselves are not thread-safe against each other; call
 * them from one controlling thread. */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/status.h"
#include "util/err.h"
#include "util/mem.h"

#define RPC_DEFAULT_WORKERS         2
#define RPC_DEFAULT_HANDLER_THREADS 4
#define RPC_MAX_WORKERS             64
#define RPC_DEFAULT_MAX_QUEUED      256
#define RPC_MAX_QUEUED_LIMIT        65536
#define RPC_MAX_METHODS             128
/* Grace period used by rpc_server_free for a server still running. */
#define RPC_DEFAULT_GRACE_MS 5000

typedef struct rpc_server rpc_server;
/* One in-flight call, valid only during the handler invocation. */
typedef struct rpc_call rpc_call;

/* Handles one unary call on a handler thread (handlers may block, and run
 * concurrently with each other).  req/req_len is the serialized request (may be
 * empty: an all-default proto3 message is zero bytes); it is wiped after the
 * handler returns, since CSI requests carry secrets.
 * Success: return 0, leave st->code RPC_OK and set *resp to a malloc'ed
 * serialized response (NULL with *resp_len 0 for an empty message); the
 * server wipes and frees it.
 * Failure: set st (rpc_status_set / rpc_status_from_err) and return a
 * negative SIGIL_E_* code, or just return the code and let the server map it
 * with rpc_status_from_err.  *resp is ignored (and freed) on failure. */
typedef int (*rpc_handler_fn)(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
                              uint8_t **resp, size_t *resp_len, rpc_status *st);

typedef struct rpc_method {
	const char *path; /* "/package.Service/Method" */
	rpc_handler_fn handler;
	void *ctx;
} rpc_method;

typedef struct rpc_server_config {
	const rpc_method *methods; /* copied; need not outlive rpc_server_new */
	size_t n_methods;
	unsigned workers;         /* completion queue threads; 0: default */
	unsigned handler_threads; /* threads running handlers; 0: default */
	/* Calls accepted but waiting for a handler thread; beyond this a call
	 * is refused with RESOURCE_EXHAUSTED.  0: default. */
	unsigned max_queued;
	size_t max_recv_bytes; /* per request message; 0: RPC_DEFAULT_MAX_MESSAGE */
	size_t max_send_bytes; /* per response message; 0: RPC_DEFAULT_MAX_MESSAGE */
} rpc_server_config;

typedef struct rpc_tls_server_config {
	const char *cert_chain_pem; /* server certificate, then intermediates */
	const char *key_pem;        /* secret; copied by gRPC, caller may wipe */
	/* NULL: no client certificates.  Otherwise every client must present
	 * a certificate that verifies against these roots (mTLS). */
	const char *client_ca_pem;
} rpc_tls_server_config;

int rpc_server_new(const rpc_server_config *cfg, rpc_server **ret, sigil_err *err) SIGIL_WUR;

/* Listens on a unix socket at path with mode 0600.  A stale socket left by a
 * dead process is replaced; a socket with a live listener, or any other kind
 * of file, is refused with SIGIL_E_EXISTS.  The socket file is removed again
 * by rpc_server_free.  Call before rpc_server_start and before starting
 * other threads that create files (the umask is narrowed around the bind). */
int rpc_server_listen_unix(rpc_server *srv, const char *path, sigil_err *err) SIGIL_WUR;

/* Listens on "host:port" (port 0 picks a free one, returned in *ret_port if
 * not NULL); plaintext if tls is NULL.  SO_REUSEPORT is off, so a port that
 * another server holds is an error instead of a silently shared port. */
int rpc_server_listen_tcp(rpc_server *srv, const char *addr, const rpc_tls_server_config *tls,
                          int *ret_port, sigil_err *err) SIGIL_WUR;

/* Starts serving; needs at least one listener. */
int rpc_server_start(rpc_server *srv, sigil_err *err) SIGIL_WUR;

/* Graceful shutdown.  First drains: calls in flight finish on open
 * connections for up to grace_ms while new calls are answered UNAVAILABLE
 * ("server is shutting down; retry").  Then gRPC shuts down (GOAWAY; calls
 * still running when grace_ms is over are cancelled on the wire, though
 * their handlers run to their end), waits until no call is live, stops the
 * workers and removes the unix sockets.  Idempotent. */
void rpc_server_shutdown(rpc_server *srv, int64_t grace_ms);

/* Shuts down if needed (RPC_DEFAULT_GRACE_MS), releases everything and
 * removes the unix socket files this server created.  Accepts NULL. */
void rpc_server_free(rpc_server *srv);
SIGIL_DEFINE_CLEANUP(rpc_server, rpc_server_free)

/* Number of calls accepted and not yet completed (for tests and metrics). */
unsigned rpc_server_live_calls(rpc_server *srv);

/* ---- per-call accessors, valid inside a handler ---------------------- */

/* The method path of the call. */
const char *rpc_call_method(const rpc_call *call);
/* Finds request metadata by (lower-case) key, e.g. "authorization".  *ret
 * points into call-owned memory and is not NUL-terminated.  Returns 0,
 * SIGIL_E_NOTFOUND, or SIGIL_E_INVALID when the key is present more than
 * once (ambiguous credentials are refused rather than guessed). */
int rpc_call_get_metadata(const rpc_call *call, const char *key, const char **ret,
                          size_t *ret_len) SIGIL_WUR;
/* True if the transport authenticated the peer (TLS with a verified client
 * certificate). */
bool rpc_call_peer_authenticated(const rpc_call *call);
/* The index-th value of an auth context property of the peer, e.g.
 * "x509_subject_alternative_name" (one value per SAN), "x509_common_name",
 * "transport_security_type".  Returns 0 or SIGIL_E_NOTFOUND. */
int rpc_call_get_peer_property(const rpc_call *call, const char *name, size_t index,
                               const char **ret, size_t *ret_len) SIGIL_WUR;
/* The peer address as gRPC reports it ("unix:...", "ipv4:1.2.3.4:5678"). */
const char *rpc_call_peer(const rpc_call *call);
/* Milliseconds until the client's deadline (0 if passed), INT64_MAX if none. */
int64_t rpc_call_remaining_ms(const rpc_call *call);

/* ---- process signals ------------------------------------------------- */

/* Blocks SIGTERM and SIGINT in the calling thread and stores the set in
 * *ret_set.  Call first thing in main(), before rpc_server_new (which calls
 * grpc_init and so starts gRPC's threads): threads inherit the mask, so the
 * signals are left for rpc_server_wait_signal instead of being delivered to
 * an arbitrary gRPC thread. */
int rpc_server_block_signals(sigset_t *ret_set, sigil_err *err) SIGIL_WUR;
/* Waits for one of the signals in set; returns its number or -errno. */
int rpc_server_wait_signal(const sigset_t *set);
