/* bench/issuer: certificates per second of a real sigil-ca over the issuer
 * API (gRPC over TLS, bearer token), beside cfssl's `cfssl serve` signing
 * the very same CSRs over its HTTP API, beside `openssl speed ecdsap256`
 * measured in the same run.  Not a test: it prints figures next to their
 * targets.
 *
 * The benchmark starts its own sigil-ca (class "tls": ECDSA P-256 CA) and
 * its own cfssl (an ECDSA P-256 CA made for the run with the openssl CLI),
 * both on 127.0.0.1, with state, tokens and CA files under one mkdtemp
 * directory in /tmp.  Both processes are stopped and that directory is
 * removed at exit, also after a failure or a SIGINT; the children also get
 * PR_SET_PDEATHSIG so that a SIGKILLed benchmark leaves nothing running.
 *
 * One issuance = the server parses and verifies a P-256 CSR, builds and
 * signs a P-256 leaf.  The openssl per-core limit for that is one verify
 * plus one sign: 1 / (1/sign_per_s + 1/verify_per_s).  Requests are
 * serialized before the clock starts (protobuf for sigil, JSON for cfssl),
 * so the client measures the server, but it runs on the same cores: the
 * table also shows the server's own CPU time per certificate.
 *
 * Each measurement is closed-loop: C client threads issue back to back
 * for --seconds after a short warm-up; sigil's threads share one
 * rpc_client (one channel, HTTP/2), cfssl's threads have one CURL handle
 * each (one kept-alive HTTP/1.1 connection each, plain HTTP: cfssl gets
 * no TLS cost, sigil does).
 *
 * usage: bench_issuer [--workers N] [--seconds S] [--csrs N] [--conc LIST]
 *                     [--only sigil|cfssl] [--sigil-ca PATH] [--cfssl PATH]
 *   --workers N    sigil-ca --workers (default 2: this machine has 2 cores)
 *   --seconds S    measured seconds per run (default 3)
 *   --csrs N       distinct CSRs, used round robin (default 256)
 *   --conc LIST    client threads per run, comma list (default 1,8,32)
 *   --only X       run one system only (e.g. to profile sigil-ca with
 *                  perf record -g -p PID; its pid is printed)
 *   --sigil-ca P   default: sigil-ca next to this program
 *   --cfssl P      default: cfssl from PATH */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca/issue.h"
#include "ca/key.h"
#include "proto/issuer.pb-c.h"
#include "rpc/client.h"
#include "util/buf.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/parse.h"

#define BI_DEFAULT_WORKERS 2
#define BI_DEFAULT_SECONDS 3.0
#define BI_MAX_SECONDS 600.0
#define BI_DEFAULT_CSRS 256
#define BI_MAX_CSRS 100000
#define BI_MAX_CONC 8
#define BI_MAX_THREADS 256
#define BI_WARMUP_MS 300
#define BI_CALL_TIMEOUT_MS 30000
#define BI_READY_TIMEOUT_MS 30000
#define BI_STOP_TIMEOUT_MS 5000
#define BI_SPEED_SECONDS 2
#define BI_MAX_SPEED_OUTPUT (256 * 1024)
#define BI_MAX_RESPONSE (256 * 1024)
#define BI_MAX_WHY 256
#define BI_LOG_TAIL 2000
#define BI_LIFETIME_SECS 86400
#define BI_CORES 2

#define BI_NODE "bench-node"
#define BI_CLASS "tls"
#define BI_METHOD "/sigil.v1.Issuer/Issue"

/* Targets (README/product card). */
#define BI_TARGET_RATIO 10.0    /* sigil cert/s >= 10x cfssl's */
#define BI_TARGET_CORE_PCT 50.0 /* sigil cert/s >= 50% of the per-core limit */

typedef enum bi_system { BI_SIGIL, BI_CFSSL } bi_system;

typedef struct bi_opts {
	int64_t workers;
	double seconds;
	int64_t n_csrs;
	int conc[BI_MAX_CONC];
	size_t n_conc;
	bool run_sigil, run_cfssl;
	const char *sigil_ca;
	const char *cfssl;
} bi_opts;

/* What is running, for the exit-time cleanup. */
typedef struct bi_env {
	char root[64];
	pid_t ca_pid;
	pid_t cfssl_pid;
} bi_env;

static bi_env bi_g_env;
static volatile sig_atomic_t bi_stop;

static void bi_on_signal(int sig)
{
	(void)sig;
	bi_stop = 1;
}

/* ---- small helpers ------------------------------------------------------------ */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !bi_stop)
		;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array of ns, in ms. */
static double pct_ms(const int64_t *sorted, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0.0;
	rank = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1e6;
}

/* Parses the decimal number at *p (after blanks); advances *p past it. */
static bool parse_u64(const char **p, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;
	bool any = false;

	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
		any = true;
	}
	if (!any)
		return false;
	*p = s;
	*ret = v;
	return true;
}

/* A "Name:   1234 kB" line of /proc/PID/status, in kB; 0 if unreadable. */
static uint64_t proc_status_kb(pid_t pid, const char *name)
{
	char path[64], line[256];
	size_t nl = strlen(name);
	uint64_t kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = line + nl + 1;
		if (strncmp(line, name, nl) || line[nl] != ':')
			continue;
		if (!parse_u64(&p, &kb))
			kb = 0;
		break;
	}
	fclose(f);
	return kb;
}

/* utime + stime of a process in seconds (fields 14 and 15 of
 * /proc/PID/stat, counted after the parenthesised command name). */
static double proc_cpu_secs(pid_t pid)
{
	char path[64], buf[1024];
	const char *p;
	uint64_t ut = 0, st = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0.0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return 0.0;
	p++;
	/* Fields 3..13 precede utime: skip 11 blank-separated fields. */
	for (int field = 3; field <= 13; field++) {
		while (*p == ' ')
			p++;
		while (*p && *p != ' ')
			p++;
	}
	if (!parse_u64(&p, &ut) || !parse_u64(&p, &st))
		return 0.0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU time (user + system) of this whole process, all threads. */
static double self_cpu_secs(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
		return 0.0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_log_tail(const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;

	if (sigil_fs_read_file(path, SIGIL_MAX_FILE_SIZE, &data, &len, NULL) < 0)
		return;
	fprintf(stderr, "---- last lines of %s ----\n%s\n----\n", path,
		(char *)data + (len > BI_LOG_TAIL ? len - BI_LOG_TAIL : 0));
	free(data);
}

/* The first "model name" of /proc/cpuinfo, or "?". */
static void cpu_model(char *buf, size_t len)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "re");

	snprintf(buf, len, "?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		const char *colon = strchr(line, ':');
		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon++;
		while (*colon == ' ')
			colon++;
		snprintf(buf, len, "%.*s", (int)strcspn(colon, "\n"), colon);
		break;
	}
	fclose(f);
}

/* The three load averages from /proc/loadavg, or "?": the machine may be
 * shared, and the figures mean little under someone else's load. */
static void load_average(char *buf, size_t len)
{
	char line[128];
	FILE *f = fopen("/proc/loadavg", "re");
	const char *p = line;
	int spaces = 0;

	snprintf(buf, len, "?");
	if (!f)
		return;
	/* /proc files report size 0, so read them with stdio. */
	if (fgets(line, sizeof(line), f)) {
		for (; *p && spaces < 3; p++)
			if (*p == ' ')
				spaces++;
		if (spaces == 3)
			snprintf(buf, len, "%.*s", (int)(p - line - 1), line);
	}
	fclose(f);
}

/* ---- child processes -------------------------------------------------------------- */

/* fork + exec argv (PATH is searched) with stdout and stderr to log_path
 * (or to the write end out_fd of a pipe) and stdin from /dev/null.  The
 * child dies with this process (PR_SET_PDEATHSIG; the main thread forks
 * and lives to the end). */
static pid_t bi_spawn(char *const argv[], const char *log_path, int out_fd)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* Child: only async-signal-safe calls from here on. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(126);
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = out_fd >= 0 ? out_fd
			      : open(log_path ? log_path : "/dev/null",
				     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0)
		_exit(126);
	if (out_fd >= 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 2) < 0)
			_exit(126);
	} else if (dup2(out, 2) < 0) {
		_exit(126);
	}
	execvp(argv[0], argv);
	_exit(127);
}

/* Waits for a child; 0 if it exited with status 0. */
static int bi_wait(pid_t pid)
{
	int status = 0;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Runs argv to completion with output to log_path. */
static int bi_run_cmd(char *const argv[], const char *log_path)
{
	pid_t pid = bi_spawn(argv, log_path, -1);

	if (pid < 0)
		return -1;
	return bi_wait(pid);
}

/* SIGTERM, then SIGKILL after BI_STOP_TIMEOUT_MS. */
static void bi_stop_child(pid_t *pidp)
{
	pid_t pid = *pidp;
	int64_t deadline;
	int status;

	if (pid <= 0)
		return;
	*pidp = 0;
	kill(pid, SIGTERM);
	deadline = now_ns() + BI_STOP_TIMEOUT_MS * 1000000LL;
	while (now_ns() < deadline) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return;
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

static void bi_cleanup(void)
{
	bi_stop_child(&bi_g_env.ca_pid);
	bi_stop_child(&bi_g_env.cfssl_pid);
	if (bi_g_env.root[0]) {
		sigil_err err = {0};
		if (sigil_fs_remove_tree(bi_g_env.root, &err) < 0)
			fprintf(stderr, "bench_issuer: cannot remove %s: %s\n", bi_g_env.root, err.msg);
		bi_g_env.root[0] = '\0';
	}
}

static void bi_die(const char *what)
{
	fprintf(stderr, "bench_issuer: %s\n", what);
	exit(1); /* bi_cleanup runs from atexit */
}

static bool bi_alive(pid_t pid)
{
	int status;

	return pid > 0 && waitpid(pid, &status, WNOHANG) == 0;
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static int bi_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static bool bi_port_open(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* ---- openssl speed ------------------------------------------------------------- */

typedef struct bi_speed {
	double sign;
	double verify;
} bi_speed;

/* Last two numbers on the first line containing needle. */
static int parse_speed(const char *out, const char *needle, bi_speed *ret)
{
	const char *line = strstr(out, needle);
	const char *end;
	double v[8];
	int n = 0;

	if (!line)
		return -1;
	end = strchr(line, '\n');
	if (!end)
		end = line + strlen(line);
	for (const char *p = line; p < end && n < 8;) {
		char *q;
		double d = strtod(p, &q);
		if (q != p && q <= end && (*q == ' ' || *q == '\n' || *q == '\0' || *q == '\t')) {
			v[n++] = d;
			p = q;
		} else {
			p++;
		}
	}
	if (n < 2 || v[n - 2] <= 0.0 || v[n - 1] <= 0.0)
		return -1;
	ret->sign = v[n - 2];
	ret->verify = v[n - 1];
	return 0;
}

static int bi_openssl_speed(bi_speed *ret)
{
	char secs[16];
	char *argv[] = {"openssl", "speed", "-seconds", secs, "ecdsap256", NULL};
	sigil_wbuf out;
	int fds[2];
	pid_t pid;
	int r;

	snprintf(secs, sizeof(secs), "%d", BI_SPEED_SECONDS);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	pid = bi_spawn(argv, NULL, fds[1]);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return -1;
	}
	sigil_wbuf_init(&out, BI_MAX_SPEED_OUTPUT, false);
	for (;;) {
		char buf[4096];
		ssize_t n = read(fds[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		(void)sigil_wbuf_put(&out, buf, (size_t)n);
	}
	close(fds[0]);
	r = bi_wait(pid);
	(void)sigil_wbuf_put_u8(&out, 0);
	if (r == 0)
		r = sigil_wbuf_status(&out);
	if (r == 0) {
		size_t len = 0;
		_cleanup_free_ uint8_t *text = sigil_wbuf_steal(&out, &len);
		r = text ? parse_speed((char *)text, "ecdsa (nistp256)", ret) : -1;
	} else {
		sigil_wbuf_free(&out);
	}
	return r;
}

/* ---- CSRs and requests ---------------------------------------------------------- */

typedef struct bi_csr {
	EVP_PKEY *pub;          /* the CSR's key, to check the issued leaf */
	uint8_t *sigil_req;     /* packed IssueRequest */
	size_t sigil_req_len;
	char *cfssl_req;        /* JSON body of /api/v1/cfssl/sign */
	size_t cfssl_req_len;
} bi_csr;

static char *csr_pem(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	char *data = NULL;
	long n;

	if (req && bio && PEM_write_bio_X509_REQ(bio, req) == 1) {
		n = BIO_get_mem_data(bio, &data);
		if (n > 0)
			pem = sigil_strndup(data, (size_t)n);
	}
	BIO_free(bio);
	X509_REQ_free(req);
	return pem;
}

static int bi_make_csr(int i, bi_csr *ret, sigil_err *err)
{
	EVP_PKEY *key = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	char cn[64];
	int r;

	snprintf(cn, sizeof(cn), "bench-%d", i);
	r = ca_key_generate(SIGIL_KEY_ECDSA_P256, &key, err);
	if (r == 0)
		r = ca_csr_create(key, cn, &der, &der_len, err);
	if (r < 0) {
		EVP_PKEY_free(key);
		return r;
	}

	/* sigil: the IssueRequest csi/issuer_remote.c sends for a node scope. */
	Sigil__V1__IssueRequest in = SIGIL__V1__ISSUE_REQUEST__INIT;
	Sigil__V1__PodIdentity pod = SIGIL__V1__POD_IDENTITY__INIT;
	Sigil__V1__Scope scope = SIGIL__V1__SCOPE__INIT;
	Sigil__V1__Scope *scopes[1] = {&scope};
	scope.kind = SIGIL__V1__SCOPE__KIND__NODE;
	pod.namespace_ = "default";
	pod.name = "web-0";
	in.class_name = BI_CLASS;
	in.pod = &pod;
	in.n_scopes = 1;
	in.scopes = scopes;
	in.csr.data = der;
	in.csr.len = der_len;
	in.lifetime_seconds = BI_LIFETIME_SECS;
	ret->sigil_req_len = protobuf_c_message_get_packed_size(&in.base);
	ret->sigil_req = malloc(ret->sigil_req_len ? ret->sigil_req_len : 1);
	if (ret->sigil_req)
		protobuf_c_message_pack(&in.base, ret->sigil_req);

	/* cfssl: the same CSR and the SAN sigil puts for a node scope. */
	_cleanup_free_ char *pem = csr_pem(der, der_len);
	json_t *body = pem ? json_pack("{s:s, s:[s]}", "certificate_request", pem, "hosts", BI_NODE)
			   : NULL;
	ret->cfssl_req = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	ret->cfssl_req_len = ret->cfssl_req ? strlen(ret->cfssl_req) : 0;

	free(der);
	ret->pub = key; /* the private half is unused but harmless */
	if (!ret->sigil_req || !ret->cfssl_req)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	return 0;
}

static void bi_csr_free(bi_csr *c)
{
	EVP_PKEY_free(c->pub);
	free(c->sigil_req);
	free(c->cfssl_req);
}

/* ---- one measurement ---------------------------------------------------------------- */

typedef struct bi_run bi_run;

typedef struct bi_worker {
	bi_run *run;
	pthread_t thread;
	int64_t *lat; /* ns, calls completed inside the measured window */
	size_t n_lat, cap_lat;
	long errors;
	bool checked; /* first response fully verified */
	char why[BI_MAX_WHY];
	/* cfssl */
	CURL *curl;
	struct curl_slist *headers;
	sigil_wbuf resp;
} bi_worker;

struct bi_run {
	bi_system sys;
	const bi_csr *csrs;
	size_t n_csrs;
	atomic_size_t next;
	pthread_barrier_t barrier;
	int64_t measure_start, deadline; /* set before the barrier opens */
	/* sigil */
	rpc_client *client;
	const char *auth;
	/* cfssl */
	const char *url;
};

typedef struct bi_result {
	bool ran;
	double rate;     /* cert/s */
	double p50, p99; /* ms */
	size_t count;
	long errors;
	double srv_cpu_us; /* server CPU per certificate */
	double cli_cpu_us; /* client (this process) CPU per certificate */
	char why[BI_MAX_WHY];
} bi_result;

static bool lat_push(bi_worker *w, int64_t ns)
{
	if (w->n_lat == w->cap_lat) {
		size_t cap = w->cap_lat ? w->cap_lat * 2 : 4096;
		int64_t *n = realloc(w->lat, cap * sizeof(*n));
		if (!n)
			return false;
		w->lat = n;
		w->cap_lat = cap;
	}
	w->lat[w->n_lat++] = ns;
	return true;
}

/* The issued leaf must carry the CSR's key. */
static int check_leaf(X509 *leaf, const bi_csr *csr, char *why, size_t why_len)
{
	EVP_PKEY *pk = leaf ? X509_get0_pubkey(leaf) : NULL;

	if (!pk) {
		snprintf(why, why_len, "the response holds no parsable certificate");
		return -1;
	}
	if (EVP_PKEY_eq(pk, csr->pub) != 1) {
		snprintf(why, why_len, "the issued certificate does not carry the CSR's key");
		return -1;
	}
	return 0;
}

static int sigil_check(const uint8_t *resp, size_t len, const bi_csr *csr, char *why,
		       size_t why_len)
{
	Sigil__V1__IssueResponse *out = sigil__v1__issue_response__unpack(NULL, len, resp);
	X509 *leaf = NULL;
	int r;

	if (!out || out->n_certificate_chain < 1) {
		snprintf(why, why_len, "malformed IssueResponse or empty chain");
		sigil__v1__issue_response__free_unpacked(out, NULL);
		return -1;
	}
	const unsigned char *p = out->certificate_chain[0].data;
	leaf = d2i_X509(NULL, &p, (long)out->certificate_chain[0].len);
	r = check_leaf(leaf, csr, why, why_len);
	X509_free(leaf);
	sigil__v1__issue_response__free_unpacked(out, NULL);
	return r;
}

static int cfssl_check(const char *body, size_t len, const bi_csr *csr, char *why, size_t why_len)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr);
	json_t *result = json_is_object(root) ? json_object_get(root, "result") : NULL;
	json_t *cert = json_is_object(result) ? json_object_get(result, "certificate") : NULL;
	X509 *leaf = NULL;
	int r = -1;

	if (!json_is_true(json_object_get(root, "success")) || !json_is_string(cert)) {
		snprintf(why, why_len, "cfssl answered without a certificate: %.160s", body);
	} else {
		BIO *bio = BIO_new_mem_buf(json_string_value(cert), (int)json_string_length(cert));
		leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		r = check_leaf(leaf, csr, why, why_len);
	}
	X509_free(leaf);
	json_decref(root);
	return r;
}

static int sigil_once(bi_worker *w, const bi_csr *csr)
{
	bi_run *run = w->run;
	rpc_metadata md = {"authorization", run->auth};
	rpc_status st = {0};
	sigil_err err = {0};
	uint8_t *resp = NULL;
	size_t rl = 0;
	int r;

	r = rpc_client_call(run->client, BI_METHOD, csr->sigil_req, csr->sigil_req_len, &md, 1,
			    BI_CALL_TIMEOUT_MS, &st, &resp, &rl, &err);
	if (r < 0) {
		snprintf(w->why, sizeof(w->why), "call failed: %.200s", err.msg);
		return -1;
	}
	if (st.code != RPC_OK) {
		snprintf(w->why, sizeof(w->why), "Issue: %s: %.200s", rpc_code_name(st.code), st.msg);
		sigil_freezero(resp, rl);
		return -1;
	}
	r = 0;
	if (!resp || rl == 0) {
		snprintf(w->why, sizeof(w->why), "Issue: empty response");
		r = -1;
	} else if (!w->checked) {
		r = sigil_check(resp, rl, csr, w->why, sizeof(w->why));
		w->checked = r == 0;
	}
	sigil_freezero(resp, rl);
	return r;
}

static size_t curl_write_cb(char *p, size_t size, size_t n, void *ud)
{
	sigil_wbuf *b = ud;

	if (sigil_wbuf_put(b, p, size * n) < 0)
		return 0;
	return size * n;
}

static int cfssl_setup(bi_worker *w)
{
	static const char *const fixed[] = {
		"Content-Type: application/json",
		"Accept: application/json",
		/* No "100-continue" round trip. */
		"Expect:",
	};

	sigil_wbuf_init(&w->resp, BI_MAX_RESPONSE, false);
	w->curl = curl_easy_init();
	if (!w->curl) {
		snprintf(w->why, sizeof(w->why), "cannot create a CURL handle");
		return -1;
	}
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(fixed); i++) {
		struct curl_slist *h = curl_slist_append(w->headers, fixed[i]);
		if (!h) {
			snprintf(w->why, sizeof(w->why), "out of memory");
			return -1;
		}
		w->headers = h;
	}
	if (curl_easy_setopt(w->curl, CURLOPT_URL, w->run->url) != CURLE_OK ||
	    curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(w->curl, CURLOPT_NOPROXY, "*") != CURLE_OK ||
	    curl_easy_setopt(w->curl, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, w->headers) != CURLE_OK ||
	    curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, curl_write_cb) != CURLE_OK ||
	    curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, &w->resp) != CURLE_OK ||
	    curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, (long)BI_CALL_TIMEOUT_MS) != CURLE_OK ||
	    curl_easy_setopt(w->curl, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK) {
		snprintf(w->why, sizeof(w->why), "cannot configure libcurl");
		return -1;
	}
	return 0;
}

static void cfssl_teardown(bi_worker *w)
{
	if (w->curl)
		curl_easy_cleanup(w->curl);
	curl_slist_free_all(w->headers);
	sigil_wbuf_free(&w->resp);
	w->curl = NULL;
	w->headers = NULL;
}

static int cfssl_once(bi_worker *w, const bi_csr *csr)
{
	long status = 0;
	CURLcode rc;
	int r = 0;

	w->resp.len = 0; /* keep the buffer between calls */
	if (curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, csr->cfssl_req) != CURLE_OK ||
	    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)csr->cfssl_req_len) !=
		    CURLE_OK) {
		snprintf(w->why, sizeof(w->why), "cannot configure libcurl");
		return -1;
	}
	rc = curl_easy_perform(w->curl);
	if (rc != CURLE_OK) {
		snprintf(w->why, sizeof(w->why), "POST %s: %s", w->run->url, curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
	if (sigil_wbuf_put_u8(&w->resp, 0) < 0 || sigil_wbuf_status(&w->resp) < 0) {
		snprintf(w->why, sizeof(w->why), "response too large or out of memory");
		return -1;
	}
	const char *body = (const char *)w->resp.p;
	size_t len = w->resp.len - 1;
	if (status != 200 || !strstr(body, "\"success\":true")) {
		snprintf(w->why, sizeof(w->why), "HTTP %ld: %.160s", status, body);
		r = -1;
	} else if (!w->checked) {
		r = cfssl_check(body, len, csr, w->why, sizeof(w->why));
		w->checked = r == 0;
	}
	return r;
}

static void *bi_worker_main(void *arg)
{
	bi_worker *w = arg;
	bi_run *run = w->run;
	bool ready = run->sys == BI_SIGIL || cfssl_setup(w) == 0;

	pthread_barrier_wait(&run->barrier);
	if (!ready) {
		w->errors++;
		return NULL;
	}
	while (!bi_stop) {
		size_t i = atomic_fetch_add(&run->next, 1) % run->n_csrs;
		int64_t t0 = now_ns(), t1;
		int r;

		if (t0 >= run->deadline)
			break;
		r = run->sys == BI_SIGIL ? sigil_once(w, &run->csrs[i]) : cfssl_once(w, &run->csrs[i]);
		t1 = now_ns();
		if (r < 0) {
			w->errors++;
			break; /* w->why says why; one error fails the run */
		}
		if (t0 >= run->measure_start && t1 <= run->deadline && !lat_push(w, t1 - t0)) {
			snprintf(w->why, sizeof(w->why), "out of memory");
			w->errors++;
			break;
		}
	}
	if (run->sys == BI_CFSSL)
		cfssl_teardown(w);
	return NULL;
}

static void bi_measure(bi_run *run, int conc, double seconds, pid_t server, bi_result *res)
{
	bi_worker *w = calloc((size_t)conc, sizeof(*w));
	int64_t *all = NULL;
	size_t total = 0, k = 0;
	double srv0, cli0, srv1, cli1;
	int started = 0;

	memset(res, 0, sizeof(*res));
	if (!w)
		bi_die("out of memory");
	atomic_store(&run->next, 0);
	if (pthread_barrier_init(&run->barrier, NULL, (unsigned)conc + 1) != 0)
		bi_die("pthread_barrier_init failed");
	run->measure_start = now_ns() + BI_WARMUP_MS * 1000000LL;
	run->deadline = run->measure_start + (int64_t)(seconds * 1e9);
	for (int i = 0; i < conc; i++) {
		w[i].run = run;
		if (pthread_create(&w[i].thread, NULL, bi_worker_main, &w[i]) != 0)
			bi_die("pthread_create failed");
		started++;
	}
	pthread_barrier_wait(&run->barrier);
	/* Threads start at once; CPU is sampled at the window's edges. */
	{
		int64_t d = run->measure_start - now_ns();
		if (d > 0)
			sleep_ms(d / 1000000LL);
	}
	srv0 = proc_cpu_secs(server);
	cli0 = self_cpu_secs();
	{
		int64_t d = run->deadline - now_ns();
		if (d > 0)
			sleep_ms(d / 1000000LL);
	}
	srv1 = proc_cpu_secs(server);
	cli1 = self_cpu_secs();
	for (int i = 0; i < started; i++)
		pthread_join(w[i].thread, NULL);
	pthread_barrier_destroy(&run->barrier);

	for (int i = 0; i < conc; i++) {
		total += w[i].n_lat;
		res->errors += w[i].errors;
		if (w[i].errors && !res->why[0])
			snprintf(res->why, sizeof(res->why), "%s", w[i].why);
	}
	all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		bi_die("out of memory");
	for (int i = 0; i < conc; i++) {
		if (w[i].n_lat)
			memcpy(all + k, w[i].lat, w[i].n_lat * sizeof(*all));
		k += w[i].n_lat;
		free(w[i].lat);
	}
	qsort(all, total, sizeof(*all), cmp_i64);
	res->ran = true;
	res->count = total;
	res->rate = (double)total / seconds;
	res->p50 = pct_ms(all, total, 50.0);
	res->p99 = pct_ms(all, total, 99.0);
	if (total) {
		res->srv_cpu_us = (srv1 - srv0) * 1e6 / (double)total;
		res->cli_cpu_us = (cli1 - cli0) * 1e6 / (double)total;
	}
	free(all);
	free(w);
}

/* ---- the servers ----------------------------------------------------------------- */

typedef struct bi_sigil {
	pid_t pid;
	int port;
	char log[128];
	char *bundle;
	rpc_client *client;
	char auth[64];
} bi_sigil;

/* "... (port N)" in sigil-ca's log once it serves. */
static int sigil_log_port(const char *log)
{
	uint8_t *data = NULL;
	size_t len = 0;
	uint64_t port = 0;
	const char *p;

	if (sigil_fs_read_file(log, SIGIL_MAX_FILE_SIZE, &data, &len, NULL) < 0)
		return 0;
	p = strstr((char *)data, "(port ");
	if (p) {
		p += 6;
		if (!parse_u64(&p, &port) || port > 65535)
			port = 0;
	}
	free(data);
	return (int)port;
}

static void sigil_start(const bi_opts *o, bi_sigil *s)
{
	char state[128], tokens[128], bundle_path[160], workers[24], listen[32];
	uint8_t rnd[16];
	char token[sizeof(rnd) * 2 + 1];
	char line[160];
	sigil_err err = {0};
	uint8_t *data = NULL;
	size_t len = 0;
	int64_t deadline;

	snprintf(state, sizeof(state), "%s/ca-state", bi_g_env.root);
	snprintf(tokens, sizeof(tokens), "%s/tokens", bi_g_env.root);
	snprintf(s->log, sizeof(s->log), "%s/sigil-ca.log", bi_g_env.root);
	snprintf(bundle_path, sizeof(bundle_path), "%s/issuer-ca.crt", state);
	snprintf(workers, sizeof(workers), "%lld", (long long)o->workers);
	snprintf(listen, sizeof(listen), "127.0.0.1:0");
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		bi_die("getrandom failed");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	snprintf(line, sizeof(line), "%s %s\n", token, BI_NODE);
	if (sigil_fs_write_atomic(tokens, line, strlen(line), 0600, &err) < 0)
		bi_die(err.msg);
	sigil_wipe(line, sizeof(line));
	snprintf(s->auth, sizeof(s->auth), "Bearer %s", token);
	sigil_wipe(token, sizeof(token));

	char *argv[] = {(char *)o->sigil_ca, "--listen", listen, "--state-dir", state,
			"--tokens-file", tokens, "--workers", workers, NULL};
	s->pid = bi_spawn(argv, s->log, -1);
	if (s->pid < 0)
		bi_die("cannot fork sigil-ca");
	bi_g_env.ca_pid = s->pid;
	deadline = now_ns() + BI_READY_TIMEOUT_MS * 1000000LL;
	while ((s->port = sigil_log_port(s->log)) == 0) {
		if (bi_stop || now_ns() > deadline || !bi_alive(s->pid)) {
			print_log_tail(s->log);
			bi_die("sigil-ca did not start (see its log above)");
		}
		sleep_ms(20);
	}
	if (sigil_fs_read_file(bundle_path, SIGIL_MAX_FILE_SIZE, &data, &len, &err) < 0)
		bi_die(err.msg);
	s->bundle = (char *)data;

	char target[64];
	snprintf(target, sizeof(target), "127.0.0.1:%d", s->port);
	rpc_client_config cc = {
		.target = target,
		.tls_root_pem = s->bundle,
		.tls_server_name = "localhost",
	};
	if (rpc_client_new(&cc, &s->client, &err) < 0)
		bi_die(err.msg);
}

typedef struct bi_cfssl {
	pid_t pid;
	int port;
	char log[128];
	char url[96];
} bi_cfssl;

static void cfssl_start(const bi_opts *o, bi_cfssl *c)
{
	char dir[96], ca[128], key[128], cfg[128], port[16], genlog[128];
	static const char cfg_json[] =
		"{\"signing\":{\"default\":{\"expiry\":\"24h\",\"usages\":[\"digital signature\","
		"\"key encipherment\",\"server auth\",\"client auth\"]}}}\n";
	sigil_err err = {0};
	int64_t deadline;

	snprintf(dir, sizeof(dir), "%s/cfssl", bi_g_env.root);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(key, sizeof(key), "%s/ca-key.pem", dir);
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	snprintf(genlog, sizeof(genlog), "%s/openssl-req.log", dir);
	snprintf(c->log, sizeof(c->log), "%s/cfssl.log", dir);
	if (sigil_fs_mkdir_p(dir, 0700, &err) < 0 ||
	    sigil_fs_write_atomic(cfg, cfg_json, sizeof(cfg_json) - 1, 0600, &err) < 0)
		bi_die(err.msg);

	/* An ECDSA P-256 CA for this run, like sigil's "tls" class. */
	char *gen[] = {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
		       "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", ca, "-subj",
		       "/CN=bench cfssl CA", "-days", "30", "-addext",
		       "basicConstraints=critical,CA:TRUE", "-addext",
		       "keyUsage=critical,keyCertSign,cRLSign", NULL};
	if (bi_run_cmd(gen, genlog) < 0) {
		print_log_tail(genlog);
		bi_die("openssl req could not make the cfssl CA");
	}

	c->port = bi_free_port();
	if (c->port <= 0)
		bi_die("no free TCP port for cfssl");
	snprintf(port, sizeof(port), "%d", c->port);
	char *argv[] = {(char *)o->cfssl, "serve", "-address", "127.0.0.1", "-port", port,
			"-ca", ca, "-ca-key", key, "-config", cfg, NULL};
	c->pid = bi_spawn(argv, c->log, -1);
	if (c->pid < 0)
		bi_die("cannot fork cfssl");
	bi_g_env.cfssl_pid = c->pid;
	deadline = now_ns() + BI_READY_TIMEOUT_MS * 1000000LL;
	while (!bi_port_open(c->port)) {
		if (bi_stop || now_ns() > deadline || !bi_alive(c->pid)) {
			print_log_tail(c->log);
			bi_die("cfssl serve did not start (see its log above)");
		}
		sleep_ms(20);
	}
	snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d/api/v1/cfssl/sign", c->port);
}

/* ---- options -------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_issuer [--workers N] [--seconds S] [--csrs N] [--conc LIST]\n"
		   "                    [--only sigil|cfssl] [--sigil-ca PATH] [--cfssl PATH]\n");
}

static int parse_conc(const char *s, bi_opts *o)
{
	o->n_conc = 0;
	for (const char *p = s;;) {
		size_t n = strcspn(p, ",");
		char item[16];
		int64_t v;

		if (n == 0 || n >= sizeof(item) || o->n_conc >= BI_MAX_CONC)
			return -1;
		memcpy(item, p, n);
		item[n] = '\0';
		if (sigil_parse_int64(item, 1, BI_MAX_THREADS, &v) < 0)
			return -1;
		o->conc[o->n_conc++] = (int)v;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

static int parse_args(int argc, char **argv, bi_opts *o)
{
	static char self_dir_ca[PATH_MAX];
	ssize_t n;

	*o = (bi_opts){
		.workers = BI_DEFAULT_WORKERS,
		.seconds = BI_DEFAULT_SECONDS,
		.n_csrs = BI_DEFAULT_CSRS,
		.conc = {1, 8, 32},
		.n_conc = 3,
		.run_sigil = true,
		.run_cfssl = true,
		.cfssl = "cfssl",
	};
	n = readlink("/proc/self/exe", self_dir_ca, sizeof(self_dir_ca) - 1);
	if (n > 0) {
		self_dir_ca[n] = '\0';
		char *slash = strrchr(self_dir_ca, '/');
		if (slash && (size_t)(slash - self_dir_ca) + sizeof("/sigil-ca") < sizeof(self_dir_ca)) {
			memcpy(slash, "/sigil-ca", sizeof("/sigil-ca"));
			o->sigil_ca = self_dir_ca;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int r = 0;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (!v) {
			usage(stderr);
			return -1;
		}
		i++;
		if (!strcmp(a, "--workers"))
			r = sigil_parse_int64(v, 1, 64, &o->workers);
		else if (!strcmp(a, "--seconds"))
			r = sigil_parse_double(v, 0.1, BI_MAX_SECONDS, &o->seconds);
		else if (!strcmp(a, "--csrs"))
			r = sigil_parse_int64(v, 1, BI_MAX_CSRS, &o->n_csrs);
		else if (!strcmp(a, "--conc"))
			r = parse_conc(v, o);
		else if (!strcmp(a, "--only") && !strcmp(v, "sigil"))
			o->run_cfssl = false;
		else if (!strcmp(a, "--only") && !strcmp(v, "cfssl"))
			o->run_sigil = false;
		else if (!strcmp(a, "--sigil-ca"))
			o->sigil_ca = v;
		else if (!strcmp(a, "--cfssl"))
			o->cfssl = v;
		else
			r = -1;
		if (r < 0) {
			fprintf(stderr, "bench_issuer: bad option %s %s\n", a, v);
			usage(stderr);
			return -1;
		}
	}
	if (o->run_sigil && !o->sigil_ca) {
		fprintf(stderr, "bench_issuer: cannot find sigil-ca; pass --sigil-ca PATH\n");
		return -1;
	}
	return 0;
}

/* ---- report -------------------------------------------------------------------- */

static void fmt_rate(char *buf, size_t len, const bi_result *r)
{
	if (!r->ran)
		snprintf(buf, len, "-");
	else if (r->errors)
		snprintf(buf, len, "FAILED");
	else
		snprintf(buf, len, "%.0f", r->rate);
}

static const char *verdict(bool ok)
{
	return ok ? "PASS" : "MISS";
}

int main(int argc, char **argv)
{
	bi_opts o;
	bi_speed speed = {0};
	bool have_speed;
	double core_limit = 0.0;
	bi_sigil sg = {0};
	bi_cfssl cf = {0};
	bi_csr *csrs;
	bi_result sres[BI_MAX_CONC] = {0}, cres[BI_MAX_CONC] = {0};
	uint64_t rss_idle = 0, rss_end = 0, hwm_end = 0;
	int max_conc = 0, rc = 0;
	char model[128], load[64];
	sigil_err err = {0};

	if (parse_args(argc, argv, &o) < 0)
		return 2;
	struct sigaction sa = {.sa_handler = bi_on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		bi_die("curl_global_init failed");

	snprintf(bi_g_env.root, sizeof(bi_g_env.root), "/tmp/bench-issuer.XXXXXX");
	if (!mkdtemp(bi_g_env.root)) {
		bi_g_env.root[0] = '\0';
		bi_die("mkdtemp failed");
	}
	atexit(bi_cleanup);
	for (size_t i = 0; i < o.n_conc; i++)
		if (o.conc[i] > max_conc)
			max_conc = o.conc[i];

	cpu_model(model, sizeof(model));
	load_average(load, sizeof(load));
	printf("bench_issuer: %ld online CPUs (%s), load average %s; sigil-ca --workers %lld; "
	       "%.1f s per run after %d ms warm-up; %lld distinct CSRs (ECDSA P-256)\n",
	       sysconf(_SC_NPROCESSORS_ONLN), model, load, (long long)o.workers, o.seconds,
	       BI_WARMUP_MS, (long long)o.n_csrs);
	fflush(stdout);

	/* openssl first, with nothing else running. */
	have_speed = bi_openssl_speed(&speed) == 0;
	if (have_speed) {
		core_limit = 1.0 / (1.0 / speed.sign + 1.0 / speed.verify);
		printf("openssl speed -seconds %d ecdsap256: sign %.0f/s, verify %.0f/s\n"
		       "  per-core limit 1/(1/sign+1/verify) = %.0f cert/s; x%d cores = %.0f cert/s\n",
		       BI_SPEED_SECONDS, speed.sign, speed.verify, core_limit, BI_CORES,
		       core_limit * BI_CORES);
	} else {
		printf("openssl speed ecdsap256: could not run or parse it\n");
	}
	fflush(stdout);

	csrs = calloc((size_t)o.n_csrs, sizeof(*csrs));
	if (!csrs)
		bi_die("out of memory");
	for (int64_t i = 0; i < o.n_csrs; i++)
		if (bi_make_csr((int)i, &csrs[i], &err) < 0)
			bi_die(err.msg);

	if (o.run_sigil) {
		sigil_start(&o, &sg);
		rss_idle = proc_status_kb(sg.pid, "VmRSS");
		printf("sigil-ca pid %d on 127.0.0.1:%d (log %s)\n", (int)sg.pid, sg.port, sg.log);
	}
	if (o.run_cfssl) {
		cfssl_start(&o, &cf);
		printf("cfssl serve pid %d on 127.0.0.1:%d\n", (int)cf.pid, cf.port);
	}
	fflush(stdout);

	for (size_t i = 0; i < o.n_conc && !bi_stop; i++) {
		if (o.run_sigil) {
			bi_run run = {.sys = BI_SIGIL, .csrs = csrs, .n_csrs = (size_t)o.n_csrs,
				      .client = sg.client, .auth = sg.auth};
			bi_measure(&run, o.conc[i], o.seconds, sg.pid, &sres[i]);
			if (o.conc[i] == max_conc) {
				rss_end = proc_status_kb(sg.pid, "VmRSS");
				hwm_end = proc_status_kb(sg.pid, "VmHWM");
			}
			if (sres[i].errors) {
				fprintf(stderr, "sigil at %d threads: %ld errors: %s\n", o.conc[i],
					sres[i].errors, sres[i].why);
				rc = 1;
			}
		}
		if (o.run_cfssl && !bi_stop) {
			bi_run run = {.sys = BI_CFSSL, .csrs = csrs, .n_csrs = (size_t)o.n_csrs,
				      .url = cf.url};
			bi_measure(&run, o.conc[i], o.seconds, cf.pid, &cres[i]);
			if (cres[i].errors) {
				fprintf(stderr, "cfssl at %d threads: %ld errors: %s\n", o.conc[i],
					cres[i].errors, cres[i].why);
				rc = 1;
			}
		}
	}
	if (bi_stop)
		bi_die("interrupted");

	printf("\n%5s | %9s %7s %7s | %9s %7s %7s | %7s | %7s %7s | %-17s | %-17s\n", "conc",
	       "sigil/s", "p50 ms", "p99 ms", "cfssl/s", "p50 ms", "p99 ms", "ratio", "%1core",
	       "%2core", "srv/cli CPU sigil", "srv/cli CPU cfssl");
	printf("%5s | %25s | %25s | %7s | %15s | %-17s | %-17s\n", "", "", "", "", "",
	       "us/cert", "us/cert");
	for (size_t i = 0; i < o.n_conc; i++) {
		const bi_result *s = &sres[i], *c = &cres[i];
		char sr[16], cr[16], ratio[16] = "-", p1[16] = "-", p2[16] = "-";
		char scpu[32] = "-", ccpu[32] = "-";
		fmt_rate(sr, sizeof(sr), s);
		fmt_rate(cr, sizeof(cr), c);
		if (s->ran && c->ran && !s->errors && !c->errors && c->rate > 0)
			snprintf(ratio, sizeof(ratio), "%.1fx", s->rate / c->rate);
		if (s->ran && !s->errors && core_limit > 0) {
			snprintf(p1, sizeof(p1), "%.0f%%", 100.0 * s->rate / core_limit);
			snprintf(p2, sizeof(p2), "%.0f%%", 100.0 * s->rate / (core_limit * BI_CORES));
		}
		if (s->ran && s->count)
			snprintf(scpu, sizeof(scpu), "%.0f / %.0f", s->srv_cpu_us, s->cli_cpu_us);
		if (c->ran && c->count)
			snprintf(ccpu, sizeof(ccpu), "%.0f / %.0f", c->srv_cpu_us, c->cli_cpu_us);
		printf("%5d | %9s %7.2f %7.2f | %9s %7.2f %7.2f | %7s | %7s %7s | %-17s | %-17s\n",
		       o.conc[i], sr, s->p50, s->p99, cr, c->p50, c->p99, ratio, p1, p2, scpu, ccpu);
	}
	if (core_limit > 0)
		printf("(server CPU per cert at the openssl limit: %.0f us = 1 sign + 1 verify; "
		       "sigil's server CPU per cert as cert per CPU-second:",
		       1e6 / core_limit);
	for (size_t i = 0; core_limit > 0 && i < o.n_conc; i++)
		if (sres[i].ran && sres[i].srv_cpu_us > 0)
			printf(" %d thr %.0f/s = %.0f%%", o.conc[i], 1e6 / sres[i].srv_cpu_us,
			       100.0 * 1e6 / sres[i].srv_cpu_us / core_limit);
	if (core_limit > 0)
		printf(")\n");
	load_average(load, sizeof(load));
	printf("load average at the end: %s\n", load);

	printf("\ntargets:\n");
	for (size_t i = 0; i < o.n_conc; i++) {
		const bi_result *s = &sres[i], *c = &cres[i];
		bool sok = s->ran && !s->errors;
		bool cok = c->ran && !c->errors && c->rate > 0;
		if (sok && cok)
			printf("  %2d threads: sigil >= %.0fx cfssl: %.1fx %s\n", o.conc[i],
			       BI_TARGET_RATIO, s->rate / c->rate,
			       verdict(s->rate >= BI_TARGET_RATIO * c->rate));
		if (sok && core_limit > 0)
			printf("  %2d threads: sigil >= %.0f%% of the per-core openssl limit: %.0f%% %s\n",
			       o.conc[i], BI_TARGET_CORE_PCT, 100.0 * s->rate / core_limit,
			       verdict(100.0 * s->rate >= BI_TARGET_CORE_PCT * core_limit));
	}
	if (o.run_sigil)
		printf("\nsigil-ca memory: VmRSS idle %llu kB; after the %d-thread run VmRSS %llu kB, "
		       "peak VmHWM %llu kB\n",
		       (unsigned long long)rss_idle, max_conc, (unsigned long long)rss_end,
		       (unsigned long long)hwm_end);

	rpc_client_free(sg.client);
	free(sg.bundle);
	sigil_wipe(sg.auth, sizeof(sg.auth));
	for (int64_t i = 0; i < o.n_csrs; i++)
		bi_csr_free(&csrs[i]);
	free(csrs);
	bi_cleanup();
	curl_global_cleanup();
	return rc;
}
