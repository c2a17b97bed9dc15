#include "rpc/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int rpc_status_set(rpc_status *st, int code, const char *fmt, ...)
{
	va_list ap;

	if (!st)
		return code;
	st->code = code;
	va_start(ap, fmt);
	vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
	va_end(ap);
	return code;
}

static int status_code_for(int sigil_code)
{
	switch (sigil_code) {
	case SIGIL_OK: return RPC_OK;
	case SIGIL_E_INVALID: return RPC_INVALID_ARGUMENT;
	case SIGIL_E_NOTFOUND: return RPC_NOT_FOUND;
	case SIGIL_E_EXISTS: return RPC_ALREADY_EXISTS;
	case SIGIL_E_PERM: return RPC_PERMISSION_DENIED;
	case SIGIL_E_UNAUTH: return RPC_UNAUTHENTICATED;
	case SIGIL_E_UNAVAIL: return RPC_UNAVAILABLE;
	case SIGIL_E_CORRUPT: return RPC_DATA_LOSS;
	case SIGIL_E_CRYPTO: return RPC_INTERNAL;
	case SIGIL_E_IO: return RPC_INTERNAL;
	case SIGIL_E_NOMEM: return RPC_RESOURCE_EXHAUSTED;
	case SIGIL_E_LIMIT: return RPC_INVALID_ARGUMENT;
	case SIGIL_E_PRECOND: return RPC_FAILED_PRECONDITION;
	case SIGIL_E_INTERNAL: return RPC_INTERNAL;
	case SIGIL_E_EXPIRED: return RPC_FAILED_PRECONDITION;
	case SIGIL_E_TIMEOUT: return RPC_DEADLINE_EXCEEDED;
	case SIGIL_E_BUSY: return RPC_ABORTED;
	default:
		/* -errno values that escaped a sigil_err: treat as an I/O fault. */
		return RPC_INTERNAL;
	}
}

int rpc_status_from_err(rpc_status *st, int sigil_code, const sigil_err *err)
{
	int code = status_code_for(sigil_code);

	if (!st)
		return code;
	if (err && err->msg[0])
		return rpc_status_set(st, code, "%s", err->msg);
	return rpc_status_set(st, code, "%s", sigil_errcode_name(sigil_code));
}

const char *rpc_code_name(int code)
{
	static const char *const names[] = {
	    "OK",
	    "CANCELLED",
	    "UNKNOWN",
	    "INVALID_ARGUMENT",
	    "DEADLINE_EXCEEDED",
	    "NOT_FOUND",
	    "ALREADY_EXISTS",
	    "PERMISSION_DENIED",
	    "RESOURCE_EXHAUSTED",
	    "FAILED_PRECONDITION",
	    "ABORTED",
	    "OUT_OF_RANGE",
	    "UNIMPLEMENTED",
	    "INTERNAL",
	    "UNAVAILABLE",
	    "DATA_LOSS",
	    "UNAUTHENTICATED",
	};
	static _Thread_local char buf[24];

	if (code >= 0 && (size_t)code < sizeof(names) / sizeof(names[0]))
		return names[code];
	snprintf(buf, sizeof(buf), "CODE_%d", code);
	return buf;
}
