#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

__attribute__((format(printf, 3, 0))) static void err_vformat(sigil_err *err, int code,
							 const char *fmt, va_list ap)
{
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int sigil_err_set(sigil_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	va_start(ap, fmt);
	err_vformat(err, code, fmt, ap);
	va_end(ap);
	return code;
}

static void err_append(sigil_err *err, const char *s)
{
	size_t len = strlen(err->msg);

	if (len < sizeof(err->msg) - 1)
		snprintf(err->msg + len, sizeof(err->msg) - len, "%s", s);
}

int sigil_err_ssl(sigil_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	unsigned long e;
	char buf[256];
	int first = 1;

	if (!err) {
		ERR_clear_error();
		return code;
	}
	va_start(ap, fmt);
	err_vformat(err, code, fmt, ap);
	va_end(ap);
	/* Report the innermost reason only once per distinct entry. */
	while ((e = ERR_get_error()) != 0) {
		const char *reason = ERR_reason_error_string(e);
		if (!reason) {
			ERR_error_string_n(e, buf, sizeof(buf));
			reason = buf;
		}
		err_append(err, first ? ": " : "; ");
		err_append(err, reason);
		first = 0;
	}
	return code;
}

int sigil_err_errno(sigil_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	int code = errnum == ENOMEM ? SIGIL_E_NOMEM : SIGIL_E_IO;

	if (errnum == EACCES || errnum == EPERM || errnum == EROFS)
		code = SIGIL_E_PERM;
	else if (errnum == ENOENT)
		code = SIGIL_E_NOTFOUND;
	else if (errnum == EWOULDBLOCK)
		code = SIGIL_E_BUSY;
	if (!err)
		return code;
	va_start(ap, fmt);
	err_vformat(err, code, fmt, ap);
	va_end(ap);
	err_append(err, ": ");
	err_append(err, strerror(errnum));
	return code;
}

int sigil_err_prefix(sigil_err *err, const char *fmt, ...)
{
	va_list ap;
	char prefix[SIGIL_ERR_MSG_MAX];
	char old[SIGIL_ERR_MSG_MAX];

	if (!err)
		return SIGIL_E_INTERNAL;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation is fine: the message is for people. */
	size_t pl = strnlen(prefix, sizeof(err->msg) - 1);
	memcpy(err->msg, prefix, pl);
	size_t ol = strnlen(old, sizeof(err->msg) - 1 - pl);
	memcpy(err->msg + pl, old, ol);
	err->msg[pl + ol] = '\0';
	return err->code;
}

void sigil_err_clear(sigil_err *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

const char *sigil_errcode_name(int code)
{
	switch (code) {
	case SIGIL_OK: return "ok";
	case SIGIL_E_INVALID: return "invalid argument";
	case SIGIL_E_NOTFOUND: return "not found";
	case SIGIL_E_EXISTS: return "already exists";
	case SIGIL_E_PERM: return "permission denied";
	case SIGIL_E_UNAUTH: return "unauthenticated";
	case SIGIL_E_UNAVAIL: return "unavailable";
	case SIGIL_E_CORRUPT: return "corrupt data";
	case SIGIL_E_CRYPTO: return "cryptographic failure";
	case SIGIL_E_IO: return "i/o error";
	case SIGIL_E_NOMEM: return "out of memory";
	case SIGIL_E_LIMIT: return "limit exceeded";
	case SIGIL_E_PRECOND: return "failed precondition";
	case SIGIL_E_INTERNAL: return "internal error";
	case SIGIL_E_EXPIRED: return "expired";
	case SIGIL_E_TIMEOUT: return "timeout";
	case SIGIL_E_BUSY: return "busy";
	default: return "unknown error";
	}
}

const char *sigil_err_show(const char *text, char *buf, size_t cap)
{
	size_t i, o = 0;

	if (!buf || cap < 4)
		return "";
	if (!text) {
		snprintf(buf, cap, "(null)");
		return buf;
	}
	for (i = 0; text[i] && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)text[i];
		buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	buf[o] = '\0';
	if (text[i]) /* cut: mark it */
		memcpy(buf + cap - 4, "...", 4);
	return buf;
}
