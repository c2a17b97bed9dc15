/* The caller's side of kadm5 provisioning: checks every name, starts
 * sigil-kadm-helper with a socket pair, enforces the deadline.  No kadm5
 * call is made in this process (see kadm.h). */
#define _GNU_SOURCE /* secure_getenv, posix_spawn_file_actions_addclosefrom_np */
#include "kerberos/kadm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kerberos/keytab.h"
#include "kerberos/krb5conf.h"
#include "kerberos/principal.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/mem.h"

extern char **environ;

#define QUOTE_LEN 80
/* Helpers per admin configuration: each serves one request at a time. */
#define KADM_POOL_MAX 4
/* An idle helper older than this is not reused (the helper itself exits
 * after 60 s without a request; stay clear of that race). */
#define KADM_POOL_IDLE_MS 50000
/* Nor one that has lived this long (its kadmind session is renewed). */
#define KADM_POOL_MAX_AGE_MS (10 * 60 * 1000)

static const uint8_t kadm_magic[4] = {'S', 'G', 'K', '1'};

/* ---- protocol ----------------------------------------------------------------------- */

static void put_str(sigil_wbuf *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n > KERBEROS_KADM_MAX_STR) {
		if (!w->failed)
			w->failed = SIGIL_E_LIMIT;
		return;
	}
	(void)sigil_wbuf_put_u16be(w, (uint16_t)n);
	(void)sigil_wbuf_put(w, s, n);
}

static int get_str(sigil_rbuf *b, const char *what, char **ret, sigil_err *err)
{
	uint16_t n;
	const uint8_t *p;

	if (sigil_rbuf_get_u16be(b, &n) < 0 || sigil_rbuf_get_bytes(b, n, &p) < 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm message: %s is truncated", what);
	if (n > KERBEROS_KADM_MAX_STR)
		return sigil_err_set(err, SIGIL_E_LIMIT, "kadm message: %s is longer than %d bytes",
		                     what, KERBEROS_KADM_MAX_STR);
	if (memchr(p, '\0', n))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm message: %s holds a NUL byte",
		                     what);
	if (!(*ret = sigil_strndup((const char *)p, n)))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	return 0;
}

/* Writes the body length into the 4 bytes reserved at the front. */
static int frame_finish(sigil_wbuf *w, uint8_t **ret, size_t *ret_len, sigil_err *err)
{
	size_t body;
	int r = sigil_wbuf_status(w);

	if (r < 0) {
		sigil_wbuf_free(w);
		if (r == SIGIL_E_LIMIT)
			return sigil_err_set(err, r, "kadm message larger than %d bytes",
			                     KERBEROS_KADM_MAX_FRAME);
		return sigil_err_set(err, r, "out of memory encoding a kadm message");
	}
	body = w->len - 4;
	w->p[0] = (uint8_t)(body >> 24);
	w->p[1] = (uint8_t)(body >> 16);
	w->p[2] = (uint8_t)(body >> 8);
	w->p[3] = (uint8_t)body;
	if (!(*ret = sigil_wbuf_steal(w, ret_len)))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory encoding a kadm message");
	return 0;
}

int kerberos_kadm_request_encode(const kerberos_kadm_request *rq, uint8_t **ret, size_t *ret_len,
                                 sigil_err *err)
{
	sigil_wbuf w;

	if (rq->n_principals > KERBEROS_MAX_PRINCIPALS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "at most %d principals per request",
		                     KERBEROS_MAX_PRINCIPALS);
	sigil_wbuf_init(&w, KERBEROS_KADM_MAX_FRAME + 4, false);
	(void)sigil_wbuf_put_u32be(&w, 0);
	(void)sigil_wbuf_put(&w, kadm_magic, sizeof(kadm_magic));
	(void)sigil_wbuf_put_u32be(&w, rq->timeout_ms);
	(void)sigil_wbuf_put_u8(&w, rq->create ? 1 : 0);
	put_str(&w, rq->realm);
	put_str(&w, rq->kdc);
	put_str(&w, rq->admin_server);
	put_str(&w, rq->admin_principal);
	put_str(&w, rq->admin_keytab);
	(void)sigil_wbuf_put_u16be(&w, (uint16_t)rq->n_principals);
	for (size_t i = 0; i < rq->n_principals; i++)
		put_str(&w, rq->principals[i]);
	return frame_finish(&w, ret, ret_len, err);
}

void kerberos_kadm_request_free(kerberos_kadm_request *rq)
{
	if (!rq)
		return;
	free(rq->realm);
	free(rq->kdc);
	free(rq->admin_server);
	free(rq->admin_principal);
	free(rq->admin_keytab);
	if (rq->principals)
		for (size_t i = 0; i < rq->n_principals; i++)
			free(rq->principals[i]);
	free(rq->principals);
	free(rq);
}

static int check_magic(sigil_rbuf *b, sigil_err *err)
{
	const uint8_t *m;

	if (sigil_rbuf_get_bytes(b, sizeof(kadm_magic), &m) < 0 ||
	    memcmp(m, kadm_magic, sizeof(kadm_magic)) != 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT,
		                     "kadm message: bad magic (helper and caller from different "
		                     "builds?)");
	return 0;
}

int kerberos_kadm_request_decode(const uint8_t *body, size_t len, kerberos_kadm_request **ret,
                                 sigil_err *err)
{
	_cleanup_(kerberos_kadm_request_freep) kerberos_kadm_request *rq = NULL;
	sigil_rbuf b;
	uint8_t create;
	uint16_t n;
	int r;

	if (len > KERBEROS_KADM_MAX_FRAME)
		return sigil_err_set(err, SIGIL_E_LIMIT, "kadm request larger than %d bytes",
		                     KERBEROS_KADM_MAX_FRAME);
	sigil_rbuf_init(&b, body, len);
	if ((r = check_magic(&b, err)) < 0)
		return r;
	if (!(rq = calloc(1, sizeof(*rq))))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (sigil_rbuf_get_u32be(&b, &rq->timeout_ms) < 0 || sigil_rbuf_get_u8(&b, &create) < 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm request is truncated");
	if (create > 1)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm request: bad create flag %u",
		                     (unsigned)create);
	rq->create = create;
	if ((r = get_str(&b, "realm", &rq->realm, err)) < 0 ||
	    (r = get_str(&b, "kdc", &rq->kdc, err)) < 0 ||
	    (r = get_str(&b, "admin server", &rq->admin_server, err)) < 0 ||
	    (r = get_str(&b, "admin principal", &rq->admin_principal, err)) < 0 ||
	    (r = get_str(&b, "admin keytab", &rq->admin_keytab, err)) < 0)
		return r;
	if (sigil_rbuf_get_u16be(&b, &n) < 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm request is truncated");
	if (n > KERBEROS_MAX_PRINCIPALS)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "kadm request: %u principals, more than %d", (unsigned)n,
		                     KERBEROS_MAX_PRINCIPALS);
	if (!(rq->principals = calloc(n ? n : 1, sizeof(char *))))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (uint16_t i = 0; i < n; i++) {
		if ((r = get_str(&b, "principal", &rq->principals[i], err)) < 0)
			return r;
		rq->n_principals++;
	}
	if (sigil_rbuf_remaining(&b) != 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm request: %zu trailing bytes",
		                     sigil_rbuf_remaining(&b));
	*ret = TAKE_PTR(rq);
	return 0;
}

static bool code_known(int code)
{
	return code == 0 || (code <= SIGIL_E_INVALID && code >= SIGIL_E_BUSY);
}

int kerberos_kadm_response_encode(int code, const char *message, const uint8_t *keytab,
                                  size_t keytab_len, uint8_t **ret, size_t *ret_len, sigil_err *err)
{
	sigil_wbuf w;
	char msg[SIGIL_ERR_MSG_MAX];

	if (!code_known(code))
		return sigil_err_set(err, SIGIL_E_INTERNAL, "kadm response: unknown code %d", code);
	if (keytab_len > KERBEROS_KEYTAB_MAX_SIZE || (code != 0 && keytab_len))
		return sigil_err_set(err, SIGIL_E_LIMIT, "kadm response: bad keytab length %zu",
		                     keytab_len);
	snprintf(msg, sizeof(msg), "%s", message ? message : "");
	sigil_wbuf_init(&w, KERBEROS_KADM_MAX_FRAME + 4, true);
	(void)sigil_wbuf_put_u32be(&w, 0);
	(void)sigil_wbuf_put(&w, kadm_magic, sizeof(kadm_magic));
	(void)sigil_wbuf_put_u32be(&w, (uint32_t)code);
	put_str(&w, msg);
	(void)sigil_wbuf_put_u32be(&w, (uint32_t)keytab_len);
	(void)sigil_wbuf_put(&w, keytab, keytab_len);
	return frame_finish(&w, ret, ret_len, err);
}

int kerberos_kadm_response_decode(const uint8_t *body, size_t len, int *ret_code, char *message,
                                  size_t message_len, const uint8_t **ret_keytab,
                                  size_t *ret_keytab_len, sigil_err *err)
{
	_cleanup_free_ char *msg = NULL;
	sigil_rbuf b;
	uint32_t code, ktlen;
	const uint8_t *kt;
	int r;

	if (len > KERBEROS_KADM_MAX_FRAME)
		return sigil_err_set(err, SIGIL_E_LIMIT, "kadm response larger than %d bytes",
		                     KERBEROS_KADM_MAX_FRAME);
	sigil_rbuf_init(&b, body, len);
	if ((r = check_magic(&b, err)) < 0)
		return r;
	if (sigil_rbuf_get_u32be(&b, &code) < 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm response is truncated");
	if (!code_known((int32_t)code))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm response: unknown code %d",
		                     (int32_t)code);
	if ((r = get_str(&b, "message", &msg, err)) < 0)
		return r;
	if (sigil_rbuf_get_u32be(&b, &ktlen) < 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm response is truncated");
	if (ktlen > KERBEROS_KEYTAB_MAX_SIZE || (code != 0 && ktlen != 0))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm response: bad keytab length %u",
		                     ktlen);
	if (sigil_rbuf_get_bytes(&b, ktlen, &kt) < 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm response: keytab is truncated");
	if (sigil_rbuf_remaining(&b) != 0)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "kadm response: %zu trailing bytes",
		                     sigil_rbuf_remaining(&b));
	if (message && message_len)
		snprintf(message, message_len, "%s", msg);
	*ret_code = (int32_t)code;
	*ret_keytab = kt;
	*ret_keytab_len = ktlen;
	return 0;
}

/* ---- checks before anything is sent ------------------------------------------------- */

static int check_path(const char *path, sigil_err *err)
{
	char q[QUOTE_LEN];
	size_t len;

	if (!path || !*path)
		return sigil_err_set(err, SIGIL_E_INVALID, "no admin keytab given");
	len = strnlen(path, KERBEROS_MAX_PATH_LEN + 1);
	if (len > KERBEROS_MAX_PATH_LEN)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "admin keytab path is longer than %d bytes",
		                     KERBEROS_MAX_PATH_LEN);
	/* Absolute, so that libkrb5 never reads a "TYPE:" prefix out of it. */
	if (path[0] != '/')
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "admin keytab path \"%s\" must be absolute",
		                     kerberos_quote(path, q, sizeof(q)));
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "admin keytab path \"%s\" holds a control character",
			                     kerberos_quote(path, q, sizeof(q)));
	return 0;
}

static int check_request(const kerberos_admin_config *cfg, const char *const *principals, size_t n,
                         sigil_err *err)
{
	kerberos_principal p;
	const char *at;
	int r;

	if ((r = kerberos_principal_check_realm(cfg->realm, err)) < 0)
		return r;
	if ((r = kerberos_krb5conf_check_server(cfg->kdc, err)) < 0)
		return sigil_err_prefix(err, "kdc: ");
	if ((r = kerberos_krb5conf_check_server(cfg->admin_server, err)) < 0)
		return sigil_err_prefix(err, "admin server: ");
	if ((r = kerberos_principal_check_name(cfg->admin_principal, err)) < 0)
		return sigil_err_prefix(err, "admin principal: ");
	at = strchr(cfg->admin_principal, '@');
	if (at && strcmp(at + 1, cfg->realm) != 0)
		return sigil_err_set(
		    err, SIGIL_E_INVALID,
		    "admin principal %s is not in realm %s (kadmind serves one realm)",
		    cfg->admin_principal, cfg->realm);
	if ((r = check_path(cfg->admin_keytab, err)) < 0)
		return r;
	if (cfg->timeout_ms < 0 || cfg->timeout_ms > KERBEROS_KADM_MAX_TIMEOUT_MS)
		return sigil_err_set(err, SIGIL_E_INVALID, "kadm timeout must be 0..%d ms",
		                     KERBEROS_KADM_MAX_TIMEOUT_MS);
	if (n == 0 || !principals)
		return sigil_err_set(err, SIGIL_E_INVALID, "no principals to provision");
	if (n > KERBEROS_MAX_PRINCIPALS)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "%zu principals in one request, at most %d are allowed", n,
		                     KERBEROS_MAX_PRINCIPALS);
	for (size_t i = 0; i < n; i++)
		if ((r = kerberos_principal_parse(principals[i], cfg->realm, &p, err)) < 0)
			return r;
	return 0;
}

static int resolve_helper(const kerberos_admin_config *cfg, char *buf, size_t len, sigil_err *err)
{
	const char *env = secure_getenv(KERBEROS_KADM_HELPER_ENV);
	char exe[PATH_MAX];
	ssize_t n;
	int w;

	if (cfg->helper_path && *cfg->helper_path) {
		w = snprintf(buf, len, "%s", cfg->helper_path);
	} else if (env && *env) {
		w = snprintf(buf, len, "%s", env);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n < 0)
			return sigil_err_errno(err, errno,
			                       "cannot find %s next to this program (set %s)",
			                       KERBEROS_KADM_HELPER_NAME, KERBEROS_KADM_HELPER_ENV);
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			slash[1] = '\0';
		w = snprintf(buf, len, "%s%s", exe, KERBEROS_KADM_HELPER_NAME);
	}
	if (w < 0 || (size_t)w >= len)
		return sigil_err_set(err, SIGIL_E_INVALID, "kadm helper path is too long");
	if (access(buf, X_OK) < 0) {
		sigil_err_errno(err, errno,
		                "kadm helper %s cannot be run (install %s next to the program or "
		                "set %s)",
		                buf, KERBEROS_KADM_HELPER_NAME, KERBEROS_KADM_HELPER_ENV);
		if (err)
			err->code = SIGIL_E_PRECOND;
		return SIGIL_E_PRECOND;
	}
	return 0;
}

/* ---- the helper process ------------------------------------------------------------ */

static int spawn_helper(const char *path, int child_fd, pid_t *ret, sigil_err *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	char *argv[] = {(char *)path, NULL};
	pid_t pid;
	int r;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory starting the kadm helper");
	if (posix_spawnattr_init(&attr) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory starting the kadm helper");
	}
	sigemptyset(&none);
	sigfillset(&all);
	/* Only fds 0-3 reach the helper: libgssrpc select()s on its sockets
	 * and aborts on any fd >= FD_SETSIZE, and an inherited descriptor of a
	 * busy daemon would also keep its peers' connections alive. */
	r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, child_fd, KERBEROS_KADM_HELPER_FD);
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, KERBEROS_KADM_HELPER_FD + 1);
	/* The caller may block or ignore signals (daemons block SIGTERM before
	 * starting gRPC): the helper starts with defaults. */
	if (!r)
		r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawnattr_setsigmask(&attr, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&attr, &all);
	if (!r)
		r = posix_spawn(&pid, path, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r != 0) {
		sigil_err_errno(err, r, "cannot start the kadm helper %s", path);
		if (err)
			err->code = SIGIL_E_PRECOND;
		return SIGIL_E_PRECOND;
	}
	*ret = pid;
	return 0;
}

/* Waits for pid; returns its wait status, or -1 when it is not ours to
 * reap (a SIGCHLD handler of the program got there first). */
static int reap(pid_t pid)
{
	int status;

	for (;;) {
		if (waitpid(pid, &status, 0) == pid)
			return status;
		if (errno != EINTR)
			return -1;
	}
}

static void describe_exit(int status, char *buf, size_t len)
{
	if (status < 0)
		snprintf(buf, len, "exited");
	else if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
		         strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "stopped");
}

/* Waits until fd is ready for events or the deadline passes: 1 ready, 0
 * timeout, -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - sigil_mono_ms();
		struct pollfd p = {.fd = fd, .events = events};
		int r;

		if (left <= 0)
			return 0;
		r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int send_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		int r = wait_fd(fd, POLLOUT, deadline);
		ssize_t w;

		if (r <= 0)
			return r == 0 ? SIGIL_E_TIMEOUT : r;
		/* MSG_NOSIGNAL: a dead helper must not kill the caller with SIGPIPE. */
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads exactly n bytes: 0, SIGIL_E_TIMEOUT, SIGIL_E_IO on end of file, -errno. */
static int recv_all(int fd, uint8_t *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		int r = wait_fd(fd, POLLIN, deadline);
		ssize_t got;

		if (r <= 0)
			return r == 0 ? SIGIL_E_TIMEOUT : r;
		got = recv(fd, p, n, MSG_DONTWAIT);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (got == 0)
			return SIGIL_E_IO;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

typedef struct {
	uint8_t *p;
	size_t len;
} secret_buf;

static void secret_buf_free(secret_buf *b)
{
	sigil_freezero(b->p, b->len);
	b->p = NULL;
	b->len = 0;
}

static int recv_frame(int fd, int64_t deadline, secret_buf *ret)
{
	uint8_t hdr[4];
	uint32_t len;
	int r;

	if ((r = recv_all(fd, hdr, sizeof(hdr), deadline)) < 0)
		return r;
	len =
	    ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) | hdr[3];
	if (len > KERBEROS_KADM_MAX_FRAME)
		return SIGIL_E_LIMIT;
	if (!(ret->p = malloc(len ? len : 1)))
		return SIGIL_E_NOMEM;
	ret->len = len;
	if ((r = recv_all(fd, ret->p, len, deadline)) < 0) {
		secret_buf_free(ret);
		return r;
	}
	return 0;
}

/* ---- the helper pool -------------------------------------------------------------
 * Up to KADM_POOL_MAX helpers per admin configuration (realm, servers,
 * admin principal, admin keytab path and its identity on disk, helper
 * path) keep their kadm5 session open between requests.  A helper serves
 * one request at a time; a caller takes an idle one, starts one below the
 * cap, or waits. */

typedef struct kadm_helper {
	struct kadm_helper *next;
	pid_t pid;
	int fd;
	int64_t born, last_used;
} kadm_helper;

typedef struct kadm_pool {
	struct kadm_pool *next;
	char *key;
	kadm_helper *idle;
	int n_total; /* idle and busy */
	int n_waiting;
} kadm_pool;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static kadm_pool *pools;

static void pool_init(void)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&pool_cv, &a);
	pthread_condattr_destroy(&a);
}

/* Stops a helper that left (or never joined) the pool: returns its wait
 * status like reap(). */
static int helper_discard(kadm_helper *h)
{
	int status = -1;

	if (!h)
		return -1;
	if (h->fd >= 0)
		close(h->fd);
	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		status = reap(h->pid);
	}
	free(h);
	return status;
}

/* Under pool_mu: moves the idle helpers that are gone, too old or idle too
 * long (in any pool) to *dead, and frees pools nobody uses. */
static void pool_sweep_locked(kadm_helper **dead)
{
	int64_t now = sigil_mono_ms();

	for (kadm_pool **pp = &pools; *pp;) {
		kadm_pool *p = *pp;

		for (kadm_helper **hp = &p->idle; *hp;) {
			kadm_helper *h = *hp;
			int st;
			pid_t w = waitpid(h->pid, &st, WNOHANG);

			if (w != 0 || now - h->last_used > KADM_POOL_IDLE_MS ||
			    now - h->born > KADM_POOL_MAX_AGE_MS) {
				if (w != 0)
					h->pid = -1; /* reaped (or not ours) */
				*hp = h->next;
				h->next = *dead;
				*dead = h;
				p->n_total--;
				continue;
			}
			hp = &h->next;
		}
		if (p->n_total == 0 && p->n_waiting == 0) {
			*pp = p->next;
			free(p->key);
			free(p);
			continue;
		}
		pp = &p->next;
	}
}

static void discard_list(kadm_helper *h)
{
	while (h) {
		kadm_helper *next = h->next;

		helper_discard(h);
		h = next;
	}
}

static int spawn_pooled(const char *path, kadm_helper **ret, sigil_err *err)
{
	kadm_helper *h;
	int sv[2], child_fd, r;

	if (!(h = calloc(1, sizeof(*h))))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	h->pid = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		free(h);
		return sigil_err_errno(err, errno, "socketpair for the kadm helper");
	}
	h->fd = sv[0];
	child_fd = sv[1];
	/* posix_spawn's dup2 onto the same number would keep FD_CLOEXEC set. */
	if (child_fd == KERBEROS_KADM_HELPER_FD) {
		int moved = fcntl(child_fd, F_DUPFD_CLOEXEC, KERBEROS_KADM_HELPER_FD + 1);

		if (moved < 0) {
			r = sigil_err_errno(err, errno, "fcntl for the kadm helper");
			close(child_fd);
			helper_discard(h);
			return r;
		}
		close(child_fd);
		child_fd = moved;
	}
	r = spawn_helper(path, child_fd, &h->pid, err);
	close(child_fd);
	if (r < 0) {
		h->pid = -1;
		helper_discard(h);
		return r;
	}
	h->born = h->last_used = sigil_mono_ms();
	*ret = h;
	return 0;
}

/* The pool key: the configuration and the admin keytab's identity, so a
 * rotated keytab gets fresh sessions. */
static char *pool_key(const kerberos_admin_config *cfg, const char *helper)
{
	struct stat st;
	char *key;
	int n;

	if (stat(cfg->admin_keytab, &st) < 0)
		memset(&st, 0, sizeof(st));
	n = snprintf(NULL, 0, "%s\n%s\n%s\n%s\n%s\n%s\n%llu:%llu:%lld:%lld.%ld", cfg->realm,
	             cfg->kdc, cfg->admin_server, cfg->admin_principal, cfg->admin_keytab, helper,
	             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
	             (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	if (n < 0 || !(key = malloc((size_t)n + 1)))
		return NULL;
	snprintf(key, (size_t)n + 1, "%s\n%s\n%s\n%s\n%s\n%s\n%llu:%llu:%lld:%lld.%ld", cfg->realm,
	         cfg->kdc, cfg->admin_server, cfg->admin_principal, cfg->admin_keytab, helper,
	         (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
	         (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	return key;
}

/* Takes an idle helper of the key's pool or starts one; *ret_fresh tells
 * which.  *ret_pool stays valid while the helper is out. */
static int pool_acquire(const char *key, const char *helper, int64_t deadline, kadm_pool **ret_pool,
                        kadm_helper **ret, bool *ret_fresh, sigil_err *err)
{
	kadm_helper *dead = NULL, *h = NULL;
	kadm_pool *p;
	int r = 0;

	pthread_once(&pool_once, pool_init);
	pthread_mutex_lock(&pool_mu);
	for (;;) {
		pool_sweep_locked(&dead);
		for (p = pools; p && strcmp(p->key, key) != 0; p = p->next)
			;
		if (!p) {
			if (!(p = calloc(1, sizeof(*p))) || !(p->key = strdup(key))) {
				free(p);
				pthread_mutex_unlock(&pool_mu);
				discard_list(dead);
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			}
			p->next = pools;
			pools = p;
		}
		if (p->idle) {
			h = p->idle;
			p->idle = h->next;
			h->next = NULL;
			*ret_fresh = false;
			break;
		}
		if (p->n_total < KADM_POOL_MAX) {
			p->n_total++;
			*ret_fresh = true;
			break;
		}
		int64_t left = deadline - sigil_mono_ms();
		if (left <= 0) {
			r = sigil_err_set(err, SIGIL_E_UNAVAIL,
			                  "all %d kadm helpers stayed busy until the deadline",
			                  KADM_POOL_MAX);
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		p->n_waiting++;
		pthread_cond_timedwait(&pool_cv, &pool_mu, &ts);
		p->n_waiting--;
	}
	pthread_mutex_unlock(&pool_mu);
	discard_list(dead);
	if (r < 0)
		return r;
	if (!h) {
		r = spawn_pooled(helper, &h, err);
		if (r < 0) {
			pthread_mutex_lock(&pool_mu);
			p->n_total--;
			pthread_cond_broadcast(&pool_cv);
			pthread_mutex_unlock(&pool_mu);
			return r;
		}
	}
	*ret_pool = p;
	*ret = h;
	return 0;
}

/* Gives a helper back: kept for the next request, or stopped.  Returns
 * the wait status of a stopped helper (reap()). */
static int pool_release(kadm_pool *p, kadm_helper *h, bool keep)
{
	int status = -1;

	pthread_mutex_lock(&pool_mu);
	if (keep) {
		h->last_used = sigil_mono_ms();
		h->next = p->idle;
		p->idle = h;
	} else {
		p->n_total--;
	}
	pthread_cond_broadcast(&pool_cv);
	pthread_mutex_unlock(&pool_mu);
	if (!keep)
		status = helper_discard(h);
	return status;
}

void kerberos_kadm_pool_shutdown(void)
{
	kadm_helper *dead = NULL;

	pthread_once(&pool_once, pool_init);
	pthread_mutex_lock(&pool_mu);
	for (kadm_pool *p = pools; p; p = p->next) {
		while (p->idle) {
			kadm_helper *h = p->idle;

			p->idle = h->next;
			h->next = dead;
			dead = h;
			p->n_total--;
		}
	}
	pool_sweep_locked(&dead);
	pthread_mutex_unlock(&pool_mu);
	discard_list(dead);
}

/* The response codes after which a helper's session is not reused. */
static bool code_keeps_helper(int code)
{
	return code == 0 || code == SIGIL_E_NOTFOUND || code == SIGIL_E_PRECOND ||
	       code == SIGIL_E_INVALID || code == SIGIL_E_LIMIT;
}

/* One request through the pool: on a reused helper, a transport failure
 * or a session error (kadmind restarted, credentials expired) is retried
 * once on a fresh helper.  The watchdog stops a helper that does not
 * answer in time. */
static int pool_transact(const kerberos_admin_config *cfg, const char *helper, const uint8_t *req,
                         size_t req_len, int64_t timeout, secret_buf *resp, sigil_err *err)
{
	_cleanup_free_ char *key = pool_key(cfg, helper);
	char how[96];

	if (!key)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (int attempt = 0;; attempt++) {
		int64_t deadline = sigil_mono_ms() + timeout;
		kadm_pool *p = NULL;
		kadm_helper *h = NULL;
		bool fresh = true;
		int r, code, status;

		if ((r = pool_acquire(key, helper, deadline, &p, &h, &fresh, err)) < 0)
			return r;
		r = send_all(h->fd, req, req_len, deadline);
		/* A helper may answer and exit before it read the whole request (a
		 * refusal); its answer is still queued on our end. */
		if (r == 0 || r == -EPIPE || r == -ECONNRESET)
			r = recv_frame(h->fd, deadline, resp);
		if (r == SIGIL_E_TIMEOUT) {
			pool_release(p, h, false);
			return sigil_err_set(
			    err, SIGIL_E_UNAVAIL,
			    "kadmind at %s (or the KDC at %s) did not answer within %lld ms; "
			    "the kadm helper was stopped",
			    cfg->admin_server, cfg->kdc, (long long)timeout);
		}
		if (r < 0) {
			/* The helper died or spoke nonsense. */
			status = pool_release(p, h, false);
			if (!fresh && attempt == 0)
				continue;
			describe_exit(status, how, sizeof(how));
			return sigil_err_set(err, SIGIL_E_INTERNAL,
			                     "the kadm helper %s %s before answering (%s)", helper, how,
			                     r == SIGIL_E_IO ? "no response" : sigil_errcode_name(r));
		}
		/* Peek at the code to decide whether the helper stays. */
		if (resp->len >= 8) {
			const uint8_t *c = resp->p + 4;

			code = (int32_t)(((uint32_t)c[0] << 24) | ((uint32_t)c[1] << 16) |
			                 ((uint32_t)c[2] << 8) | c[3]);
		} else {
			code = SIGIL_E_CORRUPT;
		}
		if (code_keeps_helper(code)) {
			pool_release(p, h, true);
			return 0;
		}
		pool_release(p, h, false);
		if (!fresh && attempt == 0) {
			secret_buf_free(resp);
			continue;
		}
		return 0; /* the caller reports the helper's error */
	}
}

static bool keytab_has(const kerberos_keytab *kt, const kerberos_principal *p)
{
	for (size_t i = 0; i < kt->n; i++) {
		const kerberos_keytab_entry *e = &kt->entries[i];

		if (e->n_components == 2 && !strcmp(e->realm, p->realm) &&
		    !strcmp(e->components[0], p->service) && !strcmp(e->components[1], p->host))
			return true;
	}
	return false;
}

int kerberos_provision(const kerberos_admin_config *cfg, const char *const *principals, size_t n,
                       bool create, uint8_t **ret_keytab, size_t *ret_len, sigil_err *err)
{
	_cleanup_free_ uint8_t *req = NULL;
	_cleanup_(secret_buf_free) secret_buf resp = {0};
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = NULL;
	char helper[PATH_MAX], msg[SIGIL_ERR_MSG_MAX];
	const uint8_t *ktp;
	size_t req_len, ktlen;
	int64_t timeout;
	int r, code;

	if (!cfg)
		return sigil_err_set(err, SIGIL_E_INVALID, "no Kerberos admin configuration");
	if ((r = check_request(cfg, principals, n, err)) < 0)
		return r;
	if ((r = resolve_helper(cfg, helper, sizeof(helper), err)) < 0)
		return r;
	timeout = cfg->timeout_ms ? cfg->timeout_ms : KERBEROS_KADM_DEFAULT_TIMEOUT_MS;

	kerberos_kadm_request rq = {
	    .timeout_ms = (uint32_t)timeout,
	    .create = create,
	    .realm = (char *)cfg->realm,
	    .kdc = (char *)cfg->kdc,
	    .admin_server = (char *)cfg->admin_server,
	    .admin_principal = (char *)cfg->admin_principal,
	    .admin_keytab = (char *)cfg->admin_keytab,
	    .principals = (char **)principals,
	    .n_principals = n,
	};
	if ((r = kerberos_kadm_request_encode(&rq, &req, &req_len, err)) < 0)
		return r;

	r = pool_transact(cfg, helper, req, req_len, timeout, &resp, err);
	if (r < 0)
		return r;

	if ((r = kerberos_kadm_response_decode(resp.p, resp.len, &code, msg, sizeof(msg), &ktp,
	                                       &ktlen, err)) < 0)
		return sigil_err_prefix(err, "kadm helper: ");
	if (code != 0)
		return sigil_err_set(err, code, "%s", msg);
	/* Trust, but check: the keytab must parse and hold every principal. */
	if ((r = kerberos_keytab_parse(ktp, ktlen, &kt, err)) < 0)
		return sigil_err_prefix(err, "keytab from the kadm helper: ");
	for (size_t i = 0; i < n; i++) {
		kerberos_principal p;

		if (kerberos_principal_parse(principals[i], cfg->realm, &p, err) < 0 ||
		    !keytab_has(kt, &p))
			return sigil_err_set(err, SIGIL_E_INTERNAL,
			                     "the kadm helper returned no key for %s",
			                     principals[i]);
	}
	uint8_t *out = malloc(ktlen ? ktlen : 1);
	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	memcpy(out, ktp, ktlen);
	*ret_keytab = out;
	*ret_len = ktlen;
	return 0;
}
