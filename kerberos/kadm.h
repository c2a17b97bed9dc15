/* Principals and keys from an MIT kadmind.
 *
 * libkadm5clnt is kept out of the calling process: request batches run in
 * helper processes, sigil-kadm-helper, that talk to kadmind and answer over
 * a socket pair.  A small pool per admin configuration keeps helpers (and
 * their kadm5 sessions) for later requests, one request at a time each.  That contains the library's hazards
 * (DESIGN.md "Known gotchas"): a kadm5 handle is not thread-safe and its
 * init/destroy race with other handles; libgssrpc uses select() and aborts
 * on a descriptor >= FD_SETSIZE, which a busy daemon reaches; a dead
 * kadmind can leave a call hanging forever.  The helper starts with four
 * descriptors, and the caller enforces a deadline and kills it when
 * kadmind does not answer.  The helper reads the realm's krb5.conf from a
 * memfd it writes itself, so the caller's environment is never touched. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/mem.h"

#define KERBEROS_KADM_HELPER_NAME "sigil-kadm-helper"
/* Environment variable naming the helper (else it is looked up next to
 * the running executable). */
#define KERBEROS_KADM_HELPER_ENV "SIGIL_KADM_HELPER"
/* The descriptor the helper talks on (stdin and stdout are /dev/null). */
#define KERBEROS_KADM_HELPER_FD          3
#define KERBEROS_KADM_DEFAULT_TIMEOUT_MS 15000
#define KERBEROS_KADM_MAX_TIMEOUT_MS     300000
/* Principals per request batch. */
#define KERBEROS_MAX_PRINCIPALS 256
#define KERBEROS_MAX_PATH_LEN   4096
/* Any one string in the wire protocol. */
#define KERBEROS_KADM_MAX_STR KERBEROS_MAX_PATH_LEN
/* A whole protocol frame: a keytab plus a message. */
#define KERBEROS_KADM_MAX_FRAME (1024 * 1024 + 8192)

typedef struct kerberos_admin_config {
	const char *realm;           /* SIGIL.TEST */
	const char *kdc;             /* host[:port] */
	const char *admin_server;    /* kadmind host[:port] */
	const char *admin_principal; /* e.g. sigil/admin or sigil/admin@SIGIL.TEST */
	const char *admin_keytab;    /* absolute path of a keytab holding its keys */
	const char *helper_path;     /* NULL: $SIGIL_KADM_HELPER, else next to the executable */
	int64_t timeout_ms;          /* 0: KERBEROS_KADM_DEFAULT_TIMEOUT_MS */
} kerberos_admin_config;

/* Makes sure each principal ("{service}/{host}@{realm}", all in cfg->realm)
 * exists, creating missing ones with random keys when create is set, and
 * returns a keytab file image (version 0x0502) with every key of every
 * principal, all kvnos.  An existing principal is never re-keyed, so
 * keytabs handed out earlier stay valid; a second call returns the same
 * bytes unless someone changed the keys in between (entry timestamps are the
 * principal's last key change).  Free *ret_keytab with sigil_freezero.
 *
 * Errors: SIGIL_E_INVALID for a malformed configuration or name (nothing is
 * sent then); SIGIL_E_UNAVAIL when the KDC or kadmind cannot be reached or
 * does not answer within the timeout; SIGIL_E_UNAUTH when the admin keytab
 * does not authenticate the admin principal; SIGIL_E_PRECOND when kadm5.acl
 * does not grant what is needed (the message names the privilege) or the
 * helper cannot be started; SIGIL_E_NOTFOUND for a missing principal when
 * create is false.
 *
 * Thread-safe: helpers come from a small pool per admin configuration
 * (each serves one request at a time and keeps its kadmin session open
 * between requests; see kadm.c). */
int kerberos_provision(const kerberos_admin_config *cfg, const char *const *principals, size_t n,
                       bool create, uint8_t **ret_keytab, size_t *ret_len,
                       sigil_err *err) SIGIL_WUR;

/* Stops every idle pooled helper (busy ones are stopped when their
 * request ends).  Safe to call at any time, from any thread, repeatedly;
 * later kerberos_provision calls start new helpers. */
void kerberos_kadm_pool_shutdown(void);

/* ---- wire protocol between kerberos_provision and sigil-kadm-helper ----------
 * A frame is a u32 (big-endian) body length and the body; strings are a u16
 * length and bytes without NUL.
 * request:  "SGK1" u32 timeout_ms, u8 create, str realm, kdc, admin_server,
 *           admin_principal, admin_keytab, u16 n, str principal[n]
 * response: "SGK1" i32 code (0 or SIGIL_E_*), str message, u32 len, keytab */

typedef struct kerberos_kadm_request {
	uint32_t timeout_ms;
	bool create;
	char *realm;
	char *kdc;
	char *admin_server;
	char *admin_principal;
	char *admin_keytab;
	char **principals;
	size_t n_principals;
} kerberos_kadm_request;

/* A whole frame (length prefix included). */
int kerberos_kadm_request_encode(const kerberos_kadm_request *rq, uint8_t **ret, size_t *ret_len,
                                 sigil_err *err) SIGIL_WUR;
/* A frame body (without the length prefix). */
int kerberos_kadm_request_decode(const uint8_t *body, size_t len, kerberos_kadm_request **ret,
                                 sigil_err *err) SIGIL_WUR;
void kerberos_kadm_request_free(kerberos_kadm_request *rq);
SIGIL_DEFINE_CLEANUP(kerberos_kadm_request, kerberos_kadm_request_free)

/* A whole frame; a secret buffer (free with sigil_freezero). */
int kerberos_kadm_response_encode(int code, const char *message, const uint8_t *keytab,
                                  size_t keytab_len, uint8_t **ret, size_t *ret_len,
                                  sigil_err *err) SIGIL_WUR;
/* A frame body.  *ret_keytab points into body; message is cut to fit. */
int kerberos_kadm_response_decode(const uint8_t *body, size_t len, int *ret_code, char *message,
                                  size_t message_len, const uint8_t **ret_keytab,
                                  size_t *ret_keytab_len, sigil_err *err) SIGIL_WUR;

/* The helper's side: reads requests from fd one at a time until end of
 * file (or 60 s without one, or a session error), runs each against
 * kadmind on one kadm5 session, writes each response.  Returns the process
 * exit status. */
int kerberos_kadm_serve(int fd);
