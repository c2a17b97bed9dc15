/* gRPC status codes, messages and shared limits as plain values, so that
 * code outside rpc/ never includes a gRPC header (STYLE.md: only one folder
 * talks to each outside library).  The numeric codes are the wire values of
 * the gRPC protocol (grpc/status.h), which never change. */
#pragma once
#include <stddef.h>

#include "util/err.h"

enum rpc_code {
	RPC_OK = 0,
	RPC_CANCELLED = 1,
	RPC_UNKNOWN = 2,
	RPC_INVALID_ARGUMENT = 3,
	RPC_DEADLINE_EXCEEDED = 4,
	RPC_NOT_FOUND = 5,
	RPC_ALREADY_EXISTS = 6,
	RPC_PERMISSION_DENIED = 7,
	RPC_RESOURCE_EXHAUSTED = 8,
	RPC_FAILED_PRECONDITION = 9,
	RPC_ABORTED = 10,
	RPC_OUT_OF_RANGE = 11,
	RPC_UNIMPLEMENTED = 12,
	RPC_INTERNAL = 13,
	RPC_UNAVAILABLE = 14,
	RPC_DATA_LOSS = 15,
	RPC_UNAUTHENTICATED = 16,
};

/* Longest status message kept; longer ones are truncated. */
#define RPC_STATUS_MSG_MAX 512
/* Default limit on one message in either direction. */
#define RPC_DEFAULT_MAX_MESSAGE (4u * 1024 * 1024)
/* Ceiling for a configured message limit (gRPC takes an int). */
#define RPC_MAX_MESSAGE_LIMIT (64u * 1024 * 1024)
/* Longest method path, "/package.Service/Method". */
#define RPC_MAX_METHOD_PATH 256
/* Longest target or listen address ("unix:/path", "host:port"). */
#define RPC_MAX_ADDRESS 512
/* sockaddr_un.sun_path holds 108 bytes including the NUL. */
#define RPC_MAX_UNIX_PATH 107

typedef struct rpc_status {
	int code; /* enum rpc_code */
	char msg[RPC_STATUS_MSG_MAX];
} rpc_status;

/* Sets code and a formatted message; returns code. */
int rpc_status_set(rpc_status *st, int code, const char *fmt, ...) SIGIL_PRINTF(3, 4);
/* Maps a sigil error (SIGIL_E_* or -errno) to the gRPC code documented next
 * to it in util/err.h and copies its message; err may be NULL, then a
 * generic message naming the error is used.  Returns the gRPC code. */
int rpc_status_from_err(rpc_status *st, int sigil_code, const sigil_err *err);
/* The canonical upper-case name ("UNIMPLEMENTED"); "CODE_<n>" otherwise. */
const char *rpc_code_name(int code);
