/* Kubernetes Status objects as sigil errors (see status.h for the mapping).
 *
 * Error bodies come from the apiserver or from anything in between (a
 * load balancer, a proxy): they are decoded with a size cap, and only
 * printable ASCII of them ever reaches a message. */
#include "kube/status.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A Status body bigger than this is not a Status we want to quote. */
#define KUBE_STATUS_MAX_BODY (256 * 1024)
/* How much of a non-Status body a message quotes. */
#define KUBE_STATUS_EXCERPT 120

/* Copies printable ASCII of src[0..len) into dst, folding runs of white
 * space and control characters into one space and replacing other bytes
 * with '?', so that a message never carries terminal escapes or newlines. */
static void status_copy_printable(char *dst, size_t cap, const char *src, size_t len)
{
	size_t o = 0;
	bool space = false;

	if (cap == 0)
		return;
	for (size_t i = 0; i < len && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c <= 0x20 || c == 0x7f) {
			space = o > 0;
			continue;
		}
		if (space && o + 2 < cap)
			dst[o++] = ' ';
		space = false;
		dst[o++] = c < 0x7f ? (char)c : '?';
	}
	dst[o] = '\0';
}

static void status_copy_str(char *dst, size_t cap, const json_t *v)
{
	if (json_is_string(v))
		status_copy_printable(dst, cap, json_string_value(v), json_string_length(v));
}

int kube_status_errcode(long http_code, const char *reason)
{
	if (!reason)
		reason = "";
	switch (http_code) {
	case 400: return SIGIL_E_INVALID;
	case 401: return SIGIL_E_UNAUTH;
	case 403: return SIGIL_E_PERM;
	case 404: return SIGIL_E_NOTFOUND;
	case 409: return strcmp(reason, "AlreadyExists") == 0 ? SIGIL_E_EXISTS : SIGIL_E_BUSY;
	case 410: return KUBE_E_GONE;
	case 413: return SIGIL_E_LIMIT;
	case 422: return SIGIL_E_INVALID;
	case 429: return SIGIL_E_UNAVAIL;
	case 504: return strcmp(reason, "Timeout") == 0 ? SIGIL_E_TIMEOUT : SIGIL_E_UNAVAIL;
	default:
		if (http_code >= 500 && http_code <= 599)
			return SIGIL_E_UNAVAIL;
		if (http_code >= 400 && http_code <= 499)
			return SIGIL_E_INVALID;
		return SIGIL_E_INTERNAL;
	}
}

void kube_status_from_json(const json_t *obj, long http_code, kube_status *ret)
{
	const json_t *code, *details, *causes, *cause, *ra;

	memset(ret, 0, sizeof(*ret));
	ret->code = http_code;
	if (!json_is_object(obj))
		return;
	code = json_object_get(obj, "code");
	/* The HTTP status is authoritative; a watch ERROR event has only the
	 * object's code.  Accept it only in the HTTP error range. */
	if (http_code == 0 && json_is_integer(code) && json_integer_value(code) >= 100 &&
	    json_integer_value(code) <= 599)
		ret->code = (long)json_integer_value(code);
	status_copy_str(ret->reason, sizeof(ret->reason), json_object_get(obj, "reason"));
	status_copy_str(ret->message, sizeof(ret->message), json_object_get(obj, "message"));
	details = json_object_get(obj, "details");
	if (!json_is_object(details))
		return;
	ra = json_object_get(details, "retryAfterSeconds");
	if (json_is_integer(ra) && json_integer_value(ra) > 0 && json_integer_value(ra) < 86400)
		ret->retry_after_secs = (long)json_integer_value(ra);
	causes = json_object_get(details, "causes");
	cause = json_is_array(causes) ? json_array_get(causes, 0) : NULL;
	if (json_is_object(cause)) {
		char r[KUBE_STATUS_MAX_REASON] = "", m[KUBE_STATUS_MAX_MESSAGE] = "", f[96] = "";

		/* StatusCause: JSON "reason" holds the cause type. */
		status_copy_str(r, sizeof(r), json_object_get(cause, "reason"));
		status_copy_str(m, sizeof(m), json_object_get(cause, "message"));
		status_copy_str(f, sizeof(f), json_object_get(cause, "field"));
		snprintf(ret->cause, sizeof(ret->cause), "%s%s%s%s%s", r,
		         r[0] && (f[0] || m[0]) ? ": " : "", f, f[0] && m[0] ? ": " : "", m);
	}
}

void kube_status_parse(long http_code, const char *body, size_t len, kube_status *ret)
{
	json_t *obj = NULL;
	const json_t *kind;

	memset(ret, 0, sizeof(*ret));
	ret->code = http_code;
	if (body && len > 0 && len <= KUBE_STATUS_MAX_BODY)
		obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	kind = json_object_get(obj, "kind");
	if (json_is_string(kind) && strcmp(json_string_value(kind), "Status") == 0) {
		kube_status_from_json(obj, http_code, ret);
	} else if (body && len > 0) {
		status_copy_printable(ret->message, sizeof(ret->message), body,
		                      len < KUBE_STATUS_EXCERPT ? len : KUBE_STATUS_EXCERPT);
	}
	json_decref(obj);
}

int kube_status_to_err(const kube_status *st, const char *what, sigil_err *err)
{
	int code = kube_status_errcode(st->code, st->reason);
	char tail[KUBE_STATUS_MAX_MESSAGE + 8] = "";

	if (st->cause[0])
		snprintf(tail, sizeof(tail), "; %s", st->cause);
	if (st->message[0])
		return sigil_err_set(err, code, "%s: %s (HTTP %ld%s%s)%s", what, st->message,
		                     st->code, st->reason[0] ? " " : "", st->reason, tail);
	return sigil_err_set(err, code, "%s: HTTP %ld%s%s%s", what, st->code,
	                     st->reason[0] ? " " : "", st->reason, tail);
}

const char *kube_errcode_name(int code)
{
	return code == KUBE_E_GONE ? "gone" : sigil_errcode_name(code);
}
