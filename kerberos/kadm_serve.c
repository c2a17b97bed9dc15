/* The helper's side of kadm5 provisioning (runs in sigil-kadm-helper, one
 * process per request batch, so one kadm5 handle per process and no locks:
 * DESIGN.md "kadm5: a handle is not thread-safe").  Every kadm5 call of
 * sigil is in this file. */
#define _GNU_SOURCE /* memfd_create */
#include "kerberos/kadm.h"

#include <errno.h>
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
} kadm_session;

static void session_close(kadm_session *s)
{
	if (s->handle)
		kadm5_destroy(s->handle);
	if (s->ctx)
		krb5_free_context(s->ctx);
	if (s->conf_fd >= 0)
		close(s->conf_fd);
	s->handle = NULL;
	s->ctx = NULL;
	s->conf_fd = -1;
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

static int kadm_run(const kerberos_kadm_request *rq, uint8_t **ret, size_t *ret_len, sigil_err *err)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = NULL;
	kadm_session s = {.conf_fd = -1};
	int r;

	if ((r = check_request(rq, err)) < 0)
		return r;
	if (!(kt = kerberos_keytab_new()))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = session_open(rq, &s, err);
	for (size_t i = 0; r == 0 && i < rq->n_principals; i++) {
		bool dup = false;

		for (size_t j = 0; j < i && !dup; j++)
			dup = !strcmp(rq->principals[i], rq->principals[j]);
		if (!dup)
			r = provision_one(&s, rq->principals[i], rq->create, kt, err);
	}
	/* Close the session before answering: after the answer the caller only
	 * waits for us to exit. */
	session_close(&s);
	if (r < 0)
		return r;
	return kerberos_keytab_serialize(kt, ret, ret_len, err);
}

int kerberos_kadm_serve(int fd)
{
	_cleanup_(kerberos_kadm_request_freep) kerberos_kadm_request *rq = NULL;
	uint8_t hdr[4], *body = NULL, *kt = NULL, *resp = NULL;
	size_t kt_len = 0, resp_len = 0;
	uint32_t len;
	struct stat st;
	sigil_err err = {0};
	int r;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr,
		        "%s is started by sigil-ca with a socket on fd %d; it is not a command\n",
		        KERBEROS_KADM_HELPER_NAME, fd);
		return 2;
	}
	/* DESIGN.md: ignore SIGPIPE (libgssrpc writes to kadmind's socket). */
	signal(SIGPIPE, SIG_IGN);
	/* Die with the caller (its calling thread waits for us, so the thread
	 * that PR_SET_PDEATHSIG watches outlives us).  No getppid() == 1 test:
	 * sigil-ca may well be PID 1 in its container.  A caller that died
	 * before this line shows as end of file on the socket below, and the
	 * alarm bounds a caller that never writes. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(REQUEST_READ_TIMEOUT_S);

	if (read_full(fd, hdr, sizeof(hdr)) < 0)
		return 1;
	len =
	    ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) | hdr[3];
	if (len > KERBEROS_KADM_MAX_FRAME)
		return 1;
	if (!(body = malloc(len ? len : 1)))
		return 1;
	if (read_full(fd, body, len) < 0) {
		free(body);
		return 1;
	}
	r = kerberos_kadm_request_decode(body, len, &rq, &err);
	free(body);
	if (r == 0) {
		unsigned secs = rq->timeout_ms / 1000 + BACKSTOP_EXTRA_S;

		alarm(secs);
		r = kadm_run(rq, &kt, &kt_len, &err);
	}
	if (r < 0 && err.code == 0)
		sigil_err_set(&err, r, "kadm helper failed (%s)", sigil_errcode_name(r));
	r = kerberos_kadm_response_encode(r < 0 ? err.code : 0, r < 0 ? err.msg : "", kt, kt_len,
	                                  &resp, &resp_len, &err);
	sigil_freezero(kt, kt_len);
	if (r < 0)
		return 1;
	r = write_full(fd, resp, resp_len);
	sigil_freezero(resp, resp_len);
	return r < 0 ? 1 : 0;
}
