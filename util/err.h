/* Error codes and a small error context that carries a message a user can
 * act on.  Fallible functions return 0 or a negative code from this enum (or
 * -errno), and fill a sigil_err when one is passed (OpenSSH ssherr.h). */
#pragma once
#include <stddef.h>

#define SIGIL_WUR __attribute__((warn_unused_result))
#define SIGIL_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum sigil_errcode {
	SIGIL_OK = 0,
	SIGIL_E_INVALID = -1000,  /* bad input from the caller: InvalidArgument */
	SIGIL_E_NOTFOUND = -1001, /* a named thing does not exist: NotFound */
	SIGIL_E_EXISTS = -1002,   /* conflicts with existing state: AlreadyExists */
	SIGIL_E_PERM = -1003,     /* not allowed: PermissionDenied */
	SIGIL_E_UNAUTH = -1004,   /* no or bad credentials: Unauthenticated */
	SIGIL_E_UNAVAIL = -1005,  /* a peer is down, retry later: Unavailable */
	SIGIL_E_CORRUPT = -1006,  /* stored state cannot be read: DataLoss */
	SIGIL_E_CRYPTO = -1007,   /* a cryptographic operation failed: Internal */
	SIGIL_E_IO = -1008,       /* a file system operation failed: Internal */
	SIGIL_E_NOMEM = -1009,    /* out of memory: ResourceExhausted */
	SIGIL_E_LIMIT = -1010,    /* input exceeds a named limit: InvalidArgument */
	SIGIL_E_PRECOND = -1011,  /* the system is not in a usable state: FailedPrecondition */
	SIGIL_E_INTERNAL = -1012, /* a bug: Internal */
	SIGIL_E_EXPIRED = -1013,  /* a certificate or CA has expired: FailedPrecondition */
	SIGIL_E_TIMEOUT = -1014,  /* a deadline passed: DeadlineExceeded */
	SIGIL_E_BUSY = -1015,     /* resource locked by someone else: Aborted */
};

#define SIGIL_ERR_MSG_MAX 512

typedef struct sigil_err {
	int code;
	char msg[SIGIL_ERR_MSG_MAX];
} sigil_err;

/* Records code and a formatted message in err (which may be NULL) and
 * returns code, so that callers can write `return sigil_err_set(...)`. */
int sigil_err_set(sigil_err *err, int code, const char *fmt, ...) SIGIL_PRINTF(3, 4);
/* Like sigil_err_set, with ": <OpenSSL error queue>" appended; drains the queue. */
int sigil_err_ssl(sigil_err *err, int code, const char *fmt, ...) SIGIL_PRINTF(3, 4);
/* Like sigil_err_set, with ": strerror(errnum)" appended. code is -errnum
 * mapped to SIGIL_E_IO unless given. */
int sigil_err_errno(sigil_err *err, int errnum, const char *fmt, ...) SIGIL_PRINTF(3, 4);
/* Prefixes an existing message with more context ("loading CA: " + msg). */
int sigil_err_prefix(sigil_err *err, const char *fmt, ...) SIGIL_PRINTF(2, 3);

/* Untrusted text for a message: printable ASCII only (anything else
 * becomes '?'), cut to fit cap with a trailing "..." when it is longer;
 * NULL shows as "(null)".  Values in messages come from requests, files
 * and the API and end up in logs and terminals.  Returns buf (cap >= 4). */
const char *sigil_err_show(const char *text, char *buf, size_t cap);
void sigil_err_clear(sigil_err *err);
const char *sigil_errcode_name(int code);
