/* Kubernetes API errors: metav1.Status objects and HTTP status codes turned
 * into sigil error codes with a message that names the object.
 *
 * Code mapping (HTTP status, Status.reason):
 *   400 BadRequest, 422 Invalid, other 4xx  SIGIL_E_INVALID
 *   401 Unauthorized                        SIGIL_E_UNAUTH
 *   403 Forbidden                           SIGIL_E_PERM
 *   404 NotFound                            SIGIL_E_NOTFOUND
 *   409 AlreadyExists                       SIGIL_E_EXISTS
 *   409 Conflict (stale resourceVersion, failed precondition)
 *                                           SIGIL_E_BUSY (gRPC Aborted: a
 *                                           read-modify-write lost a race;
 *                                           re-read and retry)
 *   410 Gone / Expired                      KUBE_E_GONE
 *   413 RequestEntityTooLarge               SIGIL_E_LIMIT
 *   429 TooManyRequests, 5xx                SIGIL_E_UNAVAIL (after retries)
 *   504 with reason Timeout                 SIGIL_E_TIMEOUT */
#pragma once
#include <stddef.h>

#include <jansson.h>

#include "util/err.h"

/* HTTP 410: a watch resourceVersion or a list continue token is older than
 * the history the apiserver keeps (etcd compaction).  The client handles it
 * itself (relist); only kube_client_list_page hands it out.  It lives here,
 * not in util/err.h, because nothing but the Kubernetes client makes it. */
#define KUBE_E_GONE (-1100)

#define KUBE_STATUS_MAX_REASON  64
#define KUBE_STATUS_MAX_MESSAGE 320

typedef struct kube_status {
	long code;                             /* HTTP status code */
	char reason[KUBE_STATUS_MAX_REASON];   /* "NotFound", "Conflict"; "" if none */
	char message[KUBE_STATUS_MAX_MESSAGE]; /* printable ASCII, truncated; "" if none */
	char cause[KUBE_STATUS_MAX_MESSAGE];   /* details.causes[0]: "reason: message" */
	long retry_after_secs;                 /* details.retryAfterSeconds, 0 if none */
} kube_status;

/* The sigil error code for an HTTP status code and a Status reason (NULL
 * or "" when the body had none). */
int kube_status_errcode(long http_code, const char *reason);

/* Reads an error response body.  A metav1.Status fills every field; any
 * other body (a proxy's HTML page, plain text) leaves code and a printable
 * excerpt of the body in message.  Never fails. */
void kube_status_parse(long http_code, const char *body, size_t len, kube_status *ret);

/* Same from an already decoded object (a watch ERROR event); http_code is
 * used when the object has no numeric "code". */
void kube_status_from_json(const json_t *obj, long http_code, kube_status *ret);

/* Fills err with "<what>: <message> (HTTP <code> <reason>)" plus the first
 * cause, and returns the mapped code.  what names the request and object,
 * e.g. "get Pod default/web-0". */
int kube_status_to_err(const kube_status *st, const char *what, sigil_err *err);

/* sigil_errcode_name that also knows KUBE_E_GONE ("gone"). */
const char *kube_errcode_name(int code);
