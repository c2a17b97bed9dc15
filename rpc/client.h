/* A small blocking unary gRPC client on the gRPC C core API (for sigilctl,
 * the node's calls to sigil-ca, and tests).  Bytes in, bytes out: callers
 * pack and unpack protobuf themselves.  One rpc_client holds one channel;
 * rpc_client_call may be used from several threads at once. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "rpc/status.h"
#include "util/err.h"
#include "util/mem.h"

/* Limits on what a caller may send with one call. */
#define RPC_CLIENT_MAX_METADATA       16
#define RPC_CLIENT_MAX_METADATA_VALUE 8192
/* Longest timeout accepted for one call (one day). */
#define RPC_CLIENT_MAX_TIMEOUT_MS (24LL * 3600 * 1000)

typedef struct rpc_client rpc_client;

typedef struct rpc_client_config {
	/* "unix:/run/csi/csi.sock" or "host:port". */
	const char *target;
	/* NULL: plaintext (unix sockets).  Otherwise TLS, and the server
	 * certificate must verify against these roots. */
	const char *tls_root_pem;
	/* Optional client certificate chain and key for mTLS (both or none). */
	const char *tls_cert_pem;
	const char *tls_key_pem; /* secret; copied by gRPC, caller may wipe */
	/* Optional name to verify the server certificate against instead of
	 * the target's host (e.g. target 127.0.0.1:443, name sigil-ca.svc). */
	const char *tls_server_name;
	size_t max_recv_bytes; /* 0: RPC_DEFAULT_MAX_MESSAGE */
} rpc_client_config;

/* One request metadata entry, e.g. {"authorization", "Bearer ..."}.  Keys
 * are lower-case; values printable ASCII (no "-bin" keys). */
typedef struct rpc_metadata {
	const char *key;
	const char *value;
} rpc_metadata;

int rpc_client_new(const rpc_client_config *cfg, rpc_client **ret, sigil_err *err) SIGIL_WUR;
void rpc_client_free(rpc_client *c);
SIGIL_DEFINE_CLEANUP(rpc_client, rpc_client_free)

/* Calls method ("/package.Service/Method") with the serialized request and
 * waits at most timeout_ms.  Returns 0 once the call has a final gRPC status,
 * which is stored in *ret_status (any code: an unreachable server gives
 * UNAVAILABLE, a timeout DEADLINE_EXCEEDED).  Only when that status is OK is
 * the response stored in *ret_resp and *ret_resp_len (malloc'ed, NULL/0 for an
 * empty message; free with sigil_freezero).  Returns a negative SIGIL_E_*
 * without touching the out-parameters when the call cannot be made at all
 * (bad method, metadata or timeout; out of memory). */
int rpc_client_call(rpc_client *c, const char *method, const uint8_t *req, size_t req_len,
                    const rpc_metadata *md, size_t n_md, int64_t timeout_ms, rpc_status *ret_status,
                    uint8_t **ret_resp, size_t *ret_resp_len, sigil_err *err) SIGIL_WUR;
