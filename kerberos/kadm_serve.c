/* The helper's side of kadm5 provisioning (runs in sigil-kadm-helper, one
 * process serving request batches one at a time, so one kadm5 handle per
 * process and no locks:
 * DESIGN.md "kadm5: a handle is not thread-safe").  Every kadm5 call of
 * sigil is in this file. */
#define _GNU_SOURCE /* memfd_create */
#include "kerberos/kadm.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kadm5/admin.h>
#include <krb5.h>

#include "kerberos/keytab.h"
#include "kerberos/krb5conf.h"
#include "kerberos/principal.h"
#include "util/fs.h"
#include "util/mem.h"

/* The caller writes its request right after starting us. */
#define REQUEST_READ_TIMEOUT_S 10
/* Backstop past the caller's own deadline, in case the caller is gone. */
#define BACKSTOP_EXTRA_S 5
/* A pooled helper with no request for this long closes its session and
 * exits (kerberos_provision notices the end of file and starts another). */
#define IDLE_EXIT_MS 60000

#define ACL_HINT_EXTRACT "the admin principal needs the 'e' (extract) privilege in kadm5.acl"

/* ---- blocking I/O on the socket ---------------------------------------------------- */

static int read_full(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n > 0) {
		ssize_t r = read(fd, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t r = write(fd, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ---- kadm5 errors -------------------------------------------------------------------- */

/* Which sigil error a kadm5 or krb5 code is (the call site adds the hint). */
static int map_code(long code)
{
	switch (code) {
	case KADM5_AUTH_GET:
	case KADM5_AUTH_ADD:
	case KADM5_AUTH_MODIFY:
	case KADM5_AUTH_INSUFFICIENT:
	case KADM5_AUTH_EXTRACT:
	case KADM5_AUTH_LIST:
	case KADM5_AUTH_SETKEY:
	case KADM5_AUTH_CHANGEPW:
	case KADM5_PROTECT_KEYS:
	case KADM5_PROTECT_PRINCIPAL: return SIGIL_E_PRECOND;
	case KADM5_UNK_PRINC: return SIGIL_E_NOTFOUND;
	case KADM5_BAD_PRINCIPAL: return SIGIL_E_INVALID;
	case KADM5_RPC_ERROR:
	case KADM5_NO_SRV:
	case KADM5_CANT_RESOLVE:
	case KRB5_KDC_UNREACH:
	case KRB5_REALM_CANT_RESOLVE:
	case KRB5_REALM_UNKNOWN:
	case ECONNREFUSED:
	case ECONNRESET:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EPIPE: return SIGIL_E_UNAVAIL;
	case KRB5KDC_ERR_PREAUTH_FAILED:
	case KRB5KRB_AP_ERR_BAD_INTEGRITY:
	case KRB5KRB_AP_ERR_MODIFIED:
	case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
	case KRB5KDC_ERR_CLIENT_REVOKED:
	case KRB5KDC_ERR_KEY_EXP:
	case KRB5_KT_NOTFOUND:
	case KRB5_KT_KVNONOTFOUND:
	case KRB5_KT_END:
	case KADM5_GSS_ERROR: return SIGIL_E_UNAUTH;
	default: return SIGIL_E_INTERNAL;
	}
}

/* Sets err to "<what>: <krb5 message> (<hint>)". */
SIGIL_PRINTF(5, 6)
static int kadm_fail(krb5_context ctx, long code, const char *hint, sigil_err *err, const char *fmt,
                     ...)
{
	char what[SIGIL_ERR_MSG_MAX];
	const char *m = ctx ? krb5_get_error_message(ctx, (krb5_error_code)code) : NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	sigil_err_set(err, map_code(code), "%s: %s (kadm5 code %ld)%s%s", what,
	              m ? m : "unknown error", code, hint ? "; " : "", hint ? hint : "");
	if (m)
		krb5_free_error_message(ctx, m);
	return err ? err->code : map_code(code);
}

/* ---- one session --------------------------------------------------------------------- */

typedef struct kadm_session {
	krb5_context ctx;
	void *handle;
	int conf_fd;
	char admin[KERBEROS_MAX_NAME_LEN + KERBEROS_MAX_REALM_LEN + 2];
	/* What the open session was made for: a request for anything else, or
	 * a changed admin keytab file, gets a new session. */
	char *id;
	struct stat kt_st;
} kadm_session;

static void session_close(kadm_session *s)
{
	if (s->handle)
		kadm5_destroy(s->handle);
	if (s->ctx)
		krb5_free_context(s->ctx);
	if (s->conf_fd >= 0)
		close(s->conf_fd);
	free(s->id);
	s->id = NULL;
	s->handle = NULL;
	s->ctx = NULL;
	s->conf_fd = -1;
}

static char *session_id(const kerberos_kadm_request *rq)
{
	size_t n = strlen(rq->realm) + strlen(rq->kdc) + strlen(rq->admin_server) +
	           strlen(rq->admin_principal) + strlen(rq->admin_keytab) + 6;
	char *id = malloc(n);

	if (id)
		snprintf(id, n, "%s\n%s\n%s\n%s\n%s", rq->realm, rq->kdc, rq->admin_server,
		         rq->admin_principal, rq->admin_keytab);
	return id;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The request is re-checked here: the helper trusts no input. */
static int check_request(const kerberos_kadm_request *rq, sigil_err *err)
{
	kerberos_principal p;
	int r;

	if ((r = kerberos_principal_check_realm(rq->realm, err)) < 0 ||
	    (r = kerberos_krb5conf_check_server(rq->kdc, err)) < 0 ||
	    (r = kerberos_krb5conf_check_server(rq->admin_server, err)) < 0 ||
	    (r = kerberos_principal_check_name(rq->admin_principal, err)) < 0)
		return r;
	if (rq->admin_keytab[0] != '/')
		return sigil_err_set(err, SIGIL_E_INVALID, "admin keytab path must be absolute");
	if (rq->n_principals == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "no principals to provision");
	for (size_t i = 0; i < rq->n_principals; i++)
		if ((r = kerberos_principal_parse(rq->principals[i], rq->realm, &p, err)) < 0)
			return r;
	return 0;
}

/* A clear message for the common mistakes, before libkrb5 gives a vague
 * one: the keytab is missing, unreadable, or lacks the admin principal. */
static int check_admin_keytab(const char *path, const char *admin, sigil_err *err)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = NULL;
	sigil_err e = {0};
	uint8_t *data = NULL;
	size_t len;
	int r;

	r = sigil_fs_read_file(path, KERBEROS_KEYTAB_MAX_SIZE, &data, &len, &e);
	if (r < 0)
		return sigil_err_set(err, SIGIL_E_UNAUTH, "cannot read the admin keytab: %s",
		                     e.msg);
	r = kerberos_keytab_parse(data, len, &kt, &e);
	sigil_freezero(data, len);
	if (r < 0)
		return sigil_err_set(err, SIGIL_E_UNAUTH, "admin keytab %s: %s", path, e.msg);
	for (size_t i = 0; i < kt->n; i++) {
		char name[KERBEROS_MAX_NAME_LEN + KERBEROS_MAX_REALM_LEN + 2];

		if (kerberos_keytab_entry_principal(&kt->entries[i], name, sizeof(name)) == 0 &&
		    !strcmp(name, admin))
			return 0;
	}
	return sigil_err_set(err, SIGIL_E_UNAUTH, "admin keytab %s holds no key for %s", path,
	                     admin);
}

/* krb5.conf for the target realm in an anonymous memory file: nothing on
 * disk to leak when the caller kills us, and the caller's KRB5_CONFIG is
 * left alone (we are our own process). */
static int setup_config(const kerberos_kadm_request *rq, kadm_session *s, sigil_err *err)
{
	kerberos_krb5conf c = {
	    .realm = rq->realm,
	    .kdc = rq->kdc,
	    .admin_server = rq->admin_server,
	};
	_cleanup_free_ char *text = NULL;
	char path[64];
	size_t len;
	int r;

	if ((r = kerberos_krb5conf_render(&c, &text, &len, err)) < 0)
		return r;
	s->conf_fd = memfd_create("sigil-krb5.conf", MFD_CLOEXEC);
	if (s->conf_fd < 0)
		return sigil_err_errno(err, errno, "memfd_create for krb5.conf");
	if (write_full(s->conf_fd, text, len) < 0)
		return sigil_err_errno(err, errno, "writing krb5.conf");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->conf_fd);
	if (access(path, R_OK) < 0)
		return sigil_err_errno(err, errno, "krb5.conf at %s (is /proc mounted?)", path);
	/* The admin credentials live in a memory ccache; never touch a user's. */
	if (setenv("KRB5_CONFIG", path, 1) < 0 || setenv("KRB5CCNAME", "MEMORY:sigil-kadm", 1) < 0)
		return sigil_err_errno(err, errno, "setenv");
	return 0;
}

static int session_open(const kerberos_kadm_request *rq, kadm_session *s, sigil_err *err)
{
	kadm5_config_params params;
	char ktname[KERBEROS_MAX_PATH_LEN + 8];
	krb5_error_code kr;
	kadm5_ret_t ret;
	int r;

	if (strchr(rq->admin_principal, '@'))
		snprintf(s->admin, sizeof(s->admin), "%s", rq->admin_principal);
	else
		snprintf(s->admin, sizeof(s->admin), "%s@%s", rq->admin_principal, rq->realm);
	if ((r = check_admin_keytab(rq->admin_keytab, s->admin, err)) < 0)
		return r;
	if ((r = setup_config(rq, s, err)) < 0)
		return r;
	if ((kr = kadm5_init_krb5_context(&s->ctx)) != 0) {
		s->ctx = NULL;
		return kadm_fail(NULL, kr, NULL, err, "initialising libkrb5");
	}
	memset(&params, 0, sizeof(params));
	params.mask = KADM5_CONFIG_REALM;
	params.realm = rq->realm;
	snprintf(ktname, sizeof(ktname), "FILE:%s", rq->admin_keytab);
	ret = kadm5_init_with_skey(s->ctx, s->admin, ktname, KADM5_ADMIN_SERVICE, &params,
	                           KADM5_STRUCT_VERSION, KADM5_API_VERSION_4, NULL, &s->handle);
	if (ret == 0)
		return 0;
	s->handle = NULL;
	switch (map_code(ret)) {
	case SIGIL_E_UNAVAIL:
		return kadm_fail(s->ctx, ret, NULL, err,
		                 "cannot reach kadmind at %s (KDC %s) for realm %s",
		                 rq->admin_server, rq->kdc, rq->realm);
	case SIGIL_E_UNAUTH:
		return kadm_fail(s->ctx, ret,
		                 "check that the admin keytab holds the current keys of the admin "
		                 "principal",
		                 err, "cannot authenticate to kadmind at %s as %s with keytab %s",
		                 rq->admin_server, s->admin, rq->admin_keytab);
	default:
		return kadm_fail(s->ctx, ret, NULL, err, "cannot open a kadmin session at %s as %s",
		                 rq->admin_server, s->admin);
	}
}

/* Makes sure one principal exists and appends all its keys to kt. */
static int provision_one(kadm_session *s, const char *name, bool create, kerberos_keytab *kt,
                         sigil_err *err)
{
	const long mask = KADM5_PRINCIPAL | KADM5_KVNO | KADM5_LAST_PWD_CHANGE;
	kerberos_principal parts;
	krb5_principal kp = NULL;
	kadm5_principal_ent_rec ent;
	kadm5_key_data *keys = NULL;
	int n_keys = 0, r = 0;
	uint32_t stamp;
	kadm5_ret_t ret;

	if ((r = kerberos_principal_parse(name, NULL, &parts, err)) < 0)
		return r;
	if ((ret = krb5_parse_name(s->ctx, name, &kp)) != 0)
		return kadm_fail(s->ctx, ret, NULL, err, "parsing %s", name);

	memset(&ent, 0, sizeof(ent));
	ret = kadm5_get_principal(s->handle, kp, &ent, mask);
	if (ret == KADM5_UNK_PRINC && create) {
		kadm5_principal_ent_rec nent;

		/* A NULL password asks kadmind (>= 1.11) for random keys in the same
		 * call, so the principal never exists with a known or empty key
		 * (kadmin's addprinc -randkey does the same). */
		memset(&nent, 0, sizeof(nent));
		nent.principal = kp;
		ret = kadm5_create_principal(s->handle, &nent, KADM5_PRINCIPAL, NULL);
		if (ret == EINVAL) {
			r = kadm_fail(s->ctx, ret,
			              "kadmind is older than MIT krb5 1.11 and cannot create "
			              "principals with random keys",
			              err, "creating %s", name);
			if (err)
				err->code = r = SIGIL_E_PRECOND;
			goto out;
		}
		/* KADM5_DUP: another sigil-ca replica was faster; use its keys. */
		if (ret != 0 && ret != KADM5_DUP) {
			r = kadm_fail(s->ctx, ret,
			              ret == KADM5_AUTH_ADD
			                  ? "the admin principal needs the 'a' (add) privilege "
			                    "in kadm5.acl"
			                  : NULL,
			              err, "creating %s", name);
			goto out;
		}
		memset(&ent, 0, sizeof(ent));
		ret = kadm5_get_principal(s->handle, kp, &ent, mask);
	}
	if (ret == KADM5_UNK_PRINC) {
		r = sigil_err_set(err, SIGIL_E_NOTFOUND,
		                  "principal %s does not exist and creating principals is off",
		                  name);
		goto out;
	}
	if (ret != 0) {
		r = kadm_fail(s->ctx, ret,
		              ret == KADM5_AUTH_GET
		                  ? "the admin principal needs the 'i' (inquire) privilege in "
		                    "kadm5.acl"
		                  : NULL,
		              err, "looking up %s", name);
		goto out;
	}
	/* The last key change, not the time of this extract: provisioning the
	 * same keys twice gives the same keytab bytes. */
	stamp = (uint32_t)ent.last_pwd_change;
	kadm5_free_principal_ent(s->handle, &ent);

	/* kvno 0: every key the KDC holds, so keytabs of older kvnos still in
	 * pods and tickets issued under them keep working. */
	ret = kadm5_get_principal_keys(s->handle, kp, 0, &keys, &n_keys);
	if (ret != 0) {
		const char *hint = NULL;

		if (ret == KADM5_AUTH_EXTRACT || ret == KADM5_AUTH_GET)
			hint = ACL_HINT_EXTRACT;
		else if (ret == KADM5_PROTECT_KEYS)
			hint = "the principal has the lockdown_keys attribute";
		r = kadm_fail(s->ctx, ret, hint, err, "extracting the keys of %s", name);
		if (hint && err)
			err->code = r = SIGIL_E_PRECOND;
		goto out;
	}
	if (n_keys <= 0) {
		r = sigil_err_set(err, SIGIL_E_PRECOND, "principal %s has no keys", name);
		goto out;
	}
	for (int i = 0; i < n_keys; i++) {
		r = kerberos_keytab_add_key(kt, &parts, stamp, (uint32_t)keys[i].kvno,
		                            keys[i].key.enctype, keys[i].key.contents,
		                            keys[i].key.length, err);
		if (r < 0)
			goto out;
	}
out:
	if (keys)
		kadm5_free_kadm5_key_data(s->ctx, n_keys, keys); /* zeroes the key contents */
	krb5_free_principal(s->ctx, kp);
	return r;
}

/* Runs one request on the session s, opening (or re-opening) it as needed.
 * *ret_keep is cleared when the session must not serve another request. */
static int kadm_run(kadm_session *s, const kerberos_kadm_request *rq, uint8_t **ret,
                    size_t *ret_len, bool *ret_keep, sigil_err *err)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = NULL;
	_cleanup_free_ char *id = NULL;
	struct stat st;
	int r;

	*ret_keep = true;
	if ((r = check_request(rq, err)) < 0)
		return r;
	if (!(kt = kerberos_keytab_new()) || !(id = session_id(rq)))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (stat(rq->admin_keytab, &st) < 0)
		memset(&st, 0, sizeof(st));
	if (s->handle && (strcmp(s->id, id) != 0 || !same_file(&s->kt_st, &st)))
		session_close(s);
	if (!s->handle) {
		session_close(s);
		r = session_open(rq, s, err);
		if (r < 0) {
			session_close(s);
			*ret_keep = false;
			return r;
		}
		s->id = TAKE_PTR(id);
		s->kt_st = st;
	}
	for (size_t i = 0; r == 0 && i < rq->n_principals; i++) {
		bool dup = false;

		for (size_t j = 0; j < i && !dup; j++)
			dup = !strcmp(rq->principals[i], rq->principals[j]);
		if (!dup)
			r = provision_one(s, rq->principals[i], rq->create, kt, err);
	}
	if (r < 0) {
		int code = err && err->code ? err->code : r;

		/* A broken session (kadmind restarted, credentials gone) is not
		 * reused: the caller retries on a fresh helper. */
		if (code != SIGIL_E_NOTFOUND && code != SIGIL_E_PRECOND &&
		    code != SIGIL_E_INVALID && code != SIGIL_E_LIMIT) {
			session_close(s);
			*ret_keep = false;
		}
		return r;
	}
	return kerberos_keytab_serialize(kt, ret, ret_len, err);
}

/* Reads one frame body: 1 read, 0 end of file or idle timeout, -1 error. */
static int read_request(int fd, int idle_ms, uint8_t **ret, uint32_t *ret_len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	uint8_t hdr[4], *body;
	uint32_t len;
	int r;

	alarm(0);
	do
		r = poll(&p, 1, idle_ms);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r == 0 ? 0 : -1;
	/* The rest of the frame follows the header at once. */
	alarm(REQUEST_READ_TIMEOUT_S);
	if (read_full(fd, hdr, 1) < 0)
		return 0;
	if (read_full(fd, hdr + 1, sizeof(hdr) - 1) < 0)
		return -1;
	len =
	    ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) | hdr[3];
	if (len > KERBEROS_KADM_MAX_FRAME)
		return -1;
	if (!(body = malloc(len ? len : 1)))
		return -1;
	if (read_full(fd, body, len) < 0) {
		free(body);
		return -1;
	}
	*ret = body;
	*ret_len = len;
	return 1;
}

int kerberos_kadm_serve(int fd)
{
	kadm_session s = {.conf_fd = -1};
	struct stat st;
	int status = 0;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr,
		        "%s is started by sigil-ca with a socket on fd %d; it is not a command\n",
		        KERBEROS_KADM_HELPER_NAME, fd);
		return 2;
	}
	/* DESIGN.md: ignore SIGPIPE (libgssrpc writes to kadmind's socket). */
	signal(SIGPIPE, SIG_IGN);
	/* Die with the caller.  PR_SET_PDEATHSIG follows the thread that
	 * started us: when it exits we die too, and the pool sees end of file
	 * and starts another helper (a retry, not an error).
	 * No getppid() == 1 test: sigil-ca may well be PID 1 in its container.
	 * A caller that died before this line shows as end of file on the
	 * socket below. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);

	/* Requests one at a time until end of file: one kadm5 handle, one
	 * thread, no locks. */
	for (bool first = true;; first = false) {
		_cleanup_(kerberos_kadm_request_freep) kerberos_kadm_request *rq = NULL;
		uint8_t *body = NULL, *kt = NULL, *resp = NULL;
		size_t kt_len = 0, resp_len = 0;
		uint32_t len = 0;
		sigil_err err = {0};
		bool keep = false;
		int r;

		r = read_request(fd, first ? REQUEST_READ_TIMEOUT_S * 1000 : IDLE_EXIT_MS, &body,
		                 &len);
		if (r <= 0) {
			status = r < 0 ? 1 : 0;
			break;
		}
		r = kerberos_kadm_request_decode(body, len, &rq, &err);
		free(body);
		if (r == 0) {
			unsigned secs = rq->timeout_ms / 1000 + BACKSTOP_EXTRA_S;

			alarm(secs);
			r = kadm_run(&s, rq, &kt, &kt_len, &keep, &err);
		}
		if (r < 0 && err.code == 0)
			sigil_err_set(&err, r, "kadm helper failed (%s)", sigil_errcode_name(r));
		r = kerberos_kadm_response_encode(r < 0 ? err.code : 0, r < 0 ? err.msg : "", kt,
		                                  kt_len, &resp, &resp_len, &err);
		sigil_freezero(kt, kt_len);
		if (r < 0) {
			status = 1;
			break;
		}
		r = write_full(fd, resp, resp_len);
		sigil_freezero(resp, resp_len);
		if (r < 0) {
			status = 1;
			break;
		}
		if (!keep)
			break;
	}
	alarm(BACKSTOP_EXTRA_S);
	session_close(&s);
	return status;
}
