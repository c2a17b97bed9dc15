/* bench/publish: NodePublishVolume latency and throughput of a real
 * sigil-csi, driven over its unix socket exactly as the kubelet drives it,
 * and the daemon's memory with 1,000 live volumes.  Not a test: it prints
 * figures next to their targets.
 *
 * The benchmark starts its own sigil-csi (argument, or sigil-csi next to
 * this program) on a socket, state dir and targets dir under one mkdtemp
 * directory in /tmp, stops it with SIGTERM and removes that directory at the
 * end, also after a failure or a SIGINT.  Every volume it publishes it
 * unpublishes again (NodeUnpublishVolume), and it checks that no target
 * and no volume record is left.
 *
 * Scenarios, each at 1, 8 and 32 client threads that publish distinct
 * volumes (own volume id and target) as fast as they can (closed loop):
 *   (a) tls-pem ecdsa-p256, with one shared rpc_client and with one
 *       client (channel, connection) per thread;
 *   (b) tls-pem rsa-2048 from a warm key pool: sigil-csi runs with
 *       --key-pool rsa-2048=N, N = the publishes of one run; before each
 *       run the benchmark waits until the pool is full, which it sees
 *       from outside as the daemon going idle (its CPU time in
 *       /proc/PID/stat stops growing: the refill thread only sleeps once
 *       every pool is at depth).  After the run the daemon's own log line
 *       per publish (", pooled key") proves how many keys came from the
 *       pool;
 *   (c) tls-pem rsa-2048 with no pool (--key-pool rsa-2048=0): every
 *       publish generates its key inline;
 *   (d) tls-pkcs12 ecdsa-p256.
 * The same run measures RSA-2048 and ECDSA P-256 key generation in this
 * process (ca_key_generate) with no daemon running, for the warm-pool
 * ratio.
 *
 * usage: bench_publish [--quick] [--privileged] [--workers N] [--only LIST] [SIGIL_CSI]
 *   --quick       publish counts / 4 (smoke run)
 *   --workers N   passed to sigil-csi (threads running CSI calls)
 *   --privileged  run sigil-csi with --privileged: a tmpfs at every target,
 *                 as on a real node (needs root); leftovers are unmounted
 *   --only LIST   comma list of keygen,rss,pem-ec,p12-ec,rsa-warm,rsa-cold
 *                 (e.g. to profile one scenario with perf record -g) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ca/key.h"
#include "csi/attrs.h"
#include "csi/volume.h"
#include "proto/csi.pb-c.h"
#include "rpc/client.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/parse.h"

/* Publishes per run (one scenario at one concurrency).  Chosen so that the
 * whole benchmark stays under ~3 minutes on 2 cores; --quick divides them
 * by 4 for a smoke run. */
#define BP_N_ECDSA_PEM 400
#define BP_N_ECDSA_P12 200
#define BP_N_RSA_WARM 48
#define BP_N_RSA_COLD 32
#define BP_N_RSS_VOLUMES 1000
#define BP_RSS_THREADS 8
#define BP_N_KEYGEN_RSA 20
#define BP_N_KEYGEN_EC 200

#define BP_MAX_THREADS 32
#define BP_MAX_ROWS 32
#define BP_CALL_TIMEOUT_MS 60000
#define BP_PROBE_TIMEOUT_MS 1000
#define BP_READY_TIMEOUT_MS 30000
#define BP_STOP_TIMEOUT_MS 15000
/* The refill thread makes one RSA key at a time: 48 keys take 5-30 s. */
#define BP_POOL_TIMEOUT_MS 300000
/* Idle: at most this many clock ticks of daemon CPU in BP_IDLE_WINDOW
 * samples of BP_IDLE_SAMPLE_MS (one RSA key generation burns ~10x that). */
#define BP_IDLE_SAMPLE_MS 250
#define BP_IDLE_WINDOW 4
#define BP_IDLE_MAX_TICKS 3
#define BP_LOG_TAIL 3000

/* Targets, printed with PASS/MISS next to the figures. */
#define BP_TARGET_EC_P50_MS 2.0
#define BP_TARGET_EC_P99_MS 10.0
#define BP_TARGET_POOL_RATIO 20.0
#define BP_TARGET_RSS_IDLE_KB (16 * 1024)
#define BP_TARGET_RSS_1000_KB (32 * 1024)

static const int bp_concurrency[] = {1, 8, 32};
#define BP_N_CONC ((int)SIGIL_ARRAY_SIZE(bp_concurrency))

/* What to run (--only). */
enum {
	BP_STEP_KEYGEN = 1u << 0,
	BP_STEP_RSS = 1u << 1,
	BP_STEP_PEM_EC = 1u << 2,
	BP_STEP_P12_EC = 1u << 3,
	BP_STEP_RSA_WARM = 1u << 4,
	BP_STEP_RSA_COLD = 1u << 5,
	BP_STEP_ALL = (1u << 6) - 1,
};

static const struct {
	const char *name;
	unsigned bit;
} bp_steps[] = {
	{"keygen", BP_STEP_KEYGEN},
	{"rss", BP_STEP_RSS},
	{"pem-ec", BP_STEP_PEM_EC},
	{"p12-ec", BP_STEP_P12_EC},
	{"rsa-warm", BP_STEP_RSA_WARM},
	{"rsa-cold", BP_STEP_RSA_COLD},
};

typedef struct bp_opts {
	int scale;       /* counts are divided by this */
	bool privileged; /* sigil-csi --privileged: tmpfs per target */
	const char *workers; /* sigil-csi --workers, NULL: its default */
	unsigned steps;  /* BP_STEP_* */
} bp_opts;

static volatile sig_atomic_t bp_stop;

static void bp_on_signal(int sig)
{
	(void)sig;
	bp_stop = 1;
}

/* ---- small helpers -------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array, in ms. */
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

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !bp_stop)
		;
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
		const char *p = line + nl;
		if (strncmp(line, name, nl) || line[nl] != ':')
			continue;
		p++;
		if (!parse_u64(&p, &kb))
			kb = 0;
		break;
	}
	fclose(f);
	return kb;
}

typedef struct bp_mem {
	uint64_t rss, anon, file; /* kB: VmRSS = RssAnon + RssFile (+ RssShmem) */
} bp_mem;

static void mem_read(pid_t pid, bp_mem *m)
{
	m->rss = proc_status_kb(pid, "VmRSS");
	m->anon = proc_status_kb(pid, "RssAnon");
	m->file = proc_status_kb(pid, "RssFile");
}

/* The three load averages from /proc/loadavg, or "?". */
static void load_average(char *buf, size_t len)
{
	char line[128];
	size_t spaces = 0, i;
	FILE *f = fopen("/proc/loadavg", "re");

	snprintf(buf, len, "?");
	if (!f)
		return;
	if (fgets(line, sizeof(line), f)) {
		for (i = 0; line[i] && spaces < 3; i++)
			if (line[i] == ' ')
				spaces++;
		if (spaces == 3)
			snprintf(buf, len, "%.*s", (int)(i - 1), line);
	}
	fclose(f);
}

/* utime + stime of a process in clock ticks (fields 14 and 15 of
 * /proc/PID/stat, counted after the parenthesised command name). */
static bool proc_cpu_ticks(pid_t pid, uint64_t *ret)
{
	char path[64], buf[1024];
	const char *p;
	uint64_t ut = 0, st = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return false;
	p++;
	/* Fields 3..13 precede utime: skip 11 blank-separated fields. */
	for (int field = 3; field <= 13; field++) {
		while (*p == ' ')
			p++;
		while (*p && *p != ' ')
			p++;
	}
	if (!parse_u64(&p, &ut) || !parse_u64(&p, &st))
		return false;
	*ret = ut + st;
	return true;
}

/* CPU time (user + system) of this whole process, all threads. */
static int64_t self_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Occurrences of needle in path from byte offset from on. */
static long count_in_file(const char *path, off_t from, const char *needle)
{
	uint8_t *data = NULL;
	size_t len = 0;
	long n = 0;

	if (sigil_fs_read_file(path, SIGIL_MAX_FILE_SIZE, &data, &len, NULL) < 0)
		return -1;
	if ((size_t)from <= len)
		for (const char *p = (char *)data + from; (p = strstr(p, needle)) != NULL; p++)
			n++;
	free(data);
	return n;
}

static void print_log_tail(const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0;

	if (sigil_fs_read_file(path, SIGIL_MAX_FILE_SIZE, &data, &len, NULL) < 0)
		return;
	fprintf(stderr, "---- last lines of %s ----\n%s\n----\n", path,
		(char *)data + (len > BP_LOG_TAIL ? len - BP_LOG_TAIL : 0));
	free(data);
}

/* Entries of a directory other than . and ..; -1 if it cannot be read. */
static long count_entries(const char *path, const char *suffix)
{
	DIR *d = opendir(path);
	struct dirent *de;
	long n = 0;

	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name), sl = suffix ? strlen(suffix) : 0;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (suffix && (l < sl || strcmp(de->d_name + l - sl, suffix)))
			continue;
		n++;
	}
	closedir(d);
	return n;
}

/* ---- the environment and the daemon ---------------------------------------- */

typedef struct bp_env {
	char csi_path[PATH_MAX];
	char root[64];
	char state[128];
	char volumes[160];
	char targets[128];
	char log[128];
} bp_env;

typedef struct bp_server {
	pid_t pid;
	/* A new socket path per daemon: gRPC shares subchannels per address
	 * process-wide, so a new client to the old path would inherit the
	 * reconnect backoff left by the stopped daemon. */
	char sock[128];
	char endpoint[160];
	rpc_client *client; /* shared by all threads of a "shared" run */
	double ready_ms;
	bp_mem ready_mem; /* right after Probe said ready */
} bp_server;

typedef struct bp_kind {
	const char *name;   /* for the table */
	const char *tag;    /* for volume ids */
	const char *format; /* secrets.sigil.dev/format */
	const char *alg;    /* secrets.sigil.dev/key-algorithm */
} bp_kind;

static const bp_kind bp_pem_ec = {"tls-pem ecdsa-p256", "pem-ec", "tls-pem", "ecdsa-p256"};
static const bp_kind bp_pem_rsa_warm = {"tls-pem rsa-2048 warm pool", "pem-rsaw", "tls-pem",
					"rsa-2048"};
static const bp_kind bp_pem_rsa_cold = {"tls-pem rsa-2048 cold", "pem-rsac", "tls-pem",
					"rsa-2048"};
static const bp_kind bp_p12_ec = {"tls-pkcs12 ecdsa-p256", "p12-ec", "tls-pkcs12", "ecdsa-p256"};

/* Packs msg, calls method and (when ret_resp is given) hands the response
 * back.  0 only for a call that ended with status OK; why says what failed. */
static int bp_call(rpc_client *c, const char *method, const ProtobufCMessage *msg,
		   int64_t timeout_ms, uint8_t **ret_resp, size_t *ret_len, char *why,
		   size_t why_len)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	_cleanup_free_ uint8_t *buf = malloc(n ? n : 1);
	uint8_t *resp = NULL;
	size_t rl = 0;
	rpc_status st = {0};
	sigil_err err = {0};
	int r;

	if (!buf) {
		snprintf(why, why_len, "out of memory");
		return SIGIL_E_NOMEM;
	}
	protobuf_c_message_pack(msg, buf);
	r = rpc_client_call(c, method, buf, n, NULL, 0, timeout_ms, &st, &resp, &rl, &err);
	if (r < 0) {
		snprintf(why, why_len, "%s", err.msg);
		return r;
	}
	if (st.code != RPC_OK) {
		snprintf(why, why_len, "%s: %.400s", rpc_code_name(st.code), st.msg);
		return SIGIL_E_UNAVAIL;
	}
	if (ret_resp) {
		*ret_resp = resp;
		*ret_len = rl;
	} else {
		sigil_freezero(resp, rl);
	}
	return 0;
}

static int bp_probe(rpc_client *c, int64_t timeout_ms, bool *ready, char *why, size_t why_len)
{
	Csi__V1__ProbeRequest req = CSI__V1__PROBE_REQUEST__INIT;
	Csi__V1__ProbeResponse *pr;
	uint8_t *resp = NULL;
	size_t rl = 0;
	int r;

	r = bp_call(c, "/csi.v1.Identity/Probe", &req.base, timeout_ms, &resp, &rl, why, why_len);
	if (r < 0)
		return r;
	pr = csi__v1__probe_response__unpack(NULL, rl, resp);
	free(resp);
	if (!pr) {
		snprintf(why, why_len, "unparsable ProbeResponse");
		return SIGIL_E_CORRUPT;
	}
	*ready = pr->ready && pr->ready->value;
	csi__v1__probe_response__free_unpacked(pr, NULL);
	return 0;
}

static int bp_publish(rpc_client *c, const bp_kind *k, const char *vid, const char *target,
		      char *why, size_t why_len)
{
	/* What the kubelet sends for an inline CSI volume with
	 * podInfoOnMount: the volume attributes plus the pod's identity. */
	static const char *const keys[] = {
		CSI_ATTR_PREFIX "class",
		CSI_ATTR_PREFIX "scope",
		CSI_ATTR_PREFIX "format",
		CSI_ATTR_PREFIX "key-algorithm",
		CSI_ATTR_PREFIX_K8S "pod.name",
		CSI_ATTR_PREFIX_K8S "pod.namespace",
	};
	const char *vals[] = {"tls", "node", k->format, k->alg, "bench-0", "bench"};
	Csi__V1__NodePublishVolumeRequest req = CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__INIT;
	Csi__V1__VolumeCapability cap = CSI__V1__VOLUME_CAPABILITY__INIT;
	Csi__V1__VolumeCapability__MountVolume mnt = CSI__V1__VOLUME_CAPABILITY__MOUNT_VOLUME__INIT;
	Csi__V1__VolumeCapability__AccessMode mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__INIT;
	Csi__V1__NodePublishVolumeRequest__VolumeContextEntry e[SIGIL_ARRAY_SIZE(keys)];
	Csi__V1__NodePublishVolumeRequest__VolumeContextEntry *ep[SIGIL_ARRAY_SIZE(keys)];

	mode.mode = CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER;
	cap.access_type_case = CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT;
	cap.mount = &mnt;
	cap.access_mode = &mode;
	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(keys); i++) {
		Csi__V1__NodePublishVolumeRequest__VolumeContextEntry x =
			CSI__V1__NODE_PUBLISH_VOLUME_REQUEST__VOLUME_CONTEXT_ENTRY__INIT;
		x.key = (char *)keys[i];
		x.value = (char *)vals[i];
		e[i] = x;
		ep[i] = &e[i];
	}
	req.volume_id = (char *)vid;
	req.target_path = (char *)target;
	req.volume_capability = &cap;
	req.n_volume_context = SIGIL_ARRAY_SIZE(keys);
	req.volume_context = ep;
	return bp_call(c, "/csi.v1.Node/NodePublishVolume", &req.base, BP_CALL_TIMEOUT_MS, NULL,
		       NULL, why, why_len);
}

static int bp_unpublish(rpc_client *c, const char *vid, const char *target, char *why,
			size_t why_len)
{
	Csi__V1__NodeUnpublishVolumeRequest req = CSI__V1__NODE_UNPUBLISH_VOLUME_REQUEST__INIT;

	req.volume_id = (char *)vid;
	req.target_path = (char *)target;
	return bp_call(c, "/csi.v1.Node/NodeUnpublishVolume", &req.base, BP_CALL_TIMEOUT_MS, NULL,
		       NULL, why, why_len);
}

static int bp_client_new(const bp_server *srv, rpc_client **ret, char *why, size_t why_len)
{
	rpc_client_config cc = {.target = srv->endpoint};
	sigil_err err = {0};

	if (rpc_client_new(&cc, ret, &err) < 0) {
		snprintf(why, why_len, "%s", err.msg);
		return err.code ? err.code : SIGIL_E_INTERNAL;
	}
	return 0;
}

/* True once something accepts connections on the unix socket at path. */
static bool socket_accepts(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return r == 0;
}

/* Reaps the daemon within timeout_ms; false if it still runs. */
static bool server_reap(bp_server *srv, int64_t timeout_ms, int *status)
{
	int64_t deadline = sigil_mono_ms() + timeout_ms;

	for (;;) {
		pid_t r = waitpid(srv->pid, status, WNOHANG);
		if (r == srv->pid || (r < 0 && errno == ECHILD))
			return true;
		if (sigil_mono_ms() >= deadline)
			return false;
		sleep_ms(10);
	}
}

/* SIGTERM, then wait; SIGKILL after BP_STOP_TIMEOUT_MS.  0 when the
 * daemon exited cleanly with status 0. */
static int server_stop(bp_server *srv)
{
	int status = 0;

	rpc_client_free(srv->client);
	srv->client = NULL;
	if (srv->pid <= 0)
		return 0;
	kill(srv->pid, SIGTERM);
	if (!server_reap(srv, BP_STOP_TIMEOUT_MS, &status)) {
		fprintf(stderr, "bench_publish: sigil-csi did not stop within %d ms: killing it\n",
			BP_STOP_TIMEOUT_MS);
		kill(srv->pid, SIGKILL);
		waitpid(srv->pid, &status, 0);
		srv->pid = 0;
		return -1;
	}
	srv->pid = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench_publish: sigil-csi exited with status 0x%x\n", status);
		return -1;
	}
	return 0;
}

/* Starts sigil-csi (pool_arg: a --key-pool value, or NULL for the default)
 * and waits until its socket answers Probe with ready. */
static int server_start(const bp_env *env, const char *pool_arg, const bp_opts *o,
			bp_server *srv)
{
	static unsigned n_started;
	char *argv[16];
	int argc = 0, status = 0;
	int64_t t0 = sigil_mono_ns(), deadline = sigil_mono_ms() + BP_READY_TIMEOUT_MS;
	pid_t parent = getpid();
	char why[SIGIL_ERR_MSG_MAX] = "";
	bool ready = false;

	memset(srv, 0, sizeof(*srv));
	snprintf(srv->sock, sizeof(srv->sock), "%s/csi-%u.sock", env->root, ++n_started);
	snprintf(srv->endpoint, sizeof(srv->endpoint), "unix://%s", srv->sock);
	argv[argc++] = (char *)env->csi_path;
	argv[argc++] = (char *)"--endpoint";
	argv[argc++] = srv->endpoint;
	argv[argc++] = (char *)"--node-id";
	argv[argc++] = (char *)"bench-node";
	argv[argc++] = (char *)"--state-dir";
	argv[argc++] = (char *)env->state;
	if (pool_arg) {
		argv[argc++] = (char *)"--key-pool";
		argv[argc++] = (char *)pool_arg;
	}
	if (o->privileged)
		argv[argc++] = (char *)"--privileged";
	if (o->workers) {
		argv[argc++] = (char *)"--workers";
		argv[argc++] = (char *)o->workers;
	}
	argv[argc] = NULL;
	unlink(srv->sock);
	fflush(NULL);
	srv->pid = fork();
	if (srv->pid < 0) {
		fprintf(stderr, "bench_publish: fork: %s\n", strerror(errno));
		srv->pid = 0;
		return -1;
	}
	if (srv->pid == 0) {
		/* Child: only async-signal-safe calls until exec.  Its own
		 * process group keeps a terminal ^C away from it (the parent
		 * stops it in order); PDEATHSIG kills it if the parent dies
		 * without cleaning up. */
		int fd = open(env->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0)
			_exit(126);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(125);
		execv(env->csi_path, argv);
		_exit(127);
	}
	/* A listening socket first: a gRPC channel that connects before the
	 * daemon listens (the socket file exists from bind() on) backs off
	 * before it tries again. */
	while (!socket_accepts(srv->sock)) {
		if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
			srv->pid = 0;
			fprintf(stderr, "bench_publish: sigil-csi exited (status 0x%x) before listening\n",
				status);
			print_log_tail(env->log);
			return -1;
		}
		if (bp_stop || sigil_mono_ms() > deadline) {
			fprintf(stderr, "bench_publish: sigil-csi did not create %s in time\n", srv->sock);
			goto fail;
		}
		sleep_ms(2);
	}
	if (bp_client_new(srv, &srv->client, why, sizeof(why)) < 0) {
		fprintf(stderr, "bench_publish: %s\n", why);
		goto fail;
	}
	while (!ready) {
		if (bp_probe(srv->client, BP_PROBE_TIMEOUT_MS, &ready, why, sizeof(why)) < 0 || !ready) {
			if (bp_stop || sigil_mono_ms() > deadline) {
				fprintf(stderr, "bench_publish: sigil-csi not ready: %s\n",
					*why ? why : "Probe says not ready");
				goto fail;
			}
			sleep_ms(5);
		}
	}
	srv->ready_ms = (double)(sigil_mono_ns() - t0) / 1e6;
	mem_read(srv->pid, &srv->ready_mem);
	return 0;
fail:
	print_log_tail(env->log);
	(void)server_stop(srv);
	return -1;
}

/* Waits until the daemon's CPU time stops growing: its key pool refill
 * thread is then asleep because every pool is full.  *busy_ms: from the
 * call to the last sample that saw CPU use (the fill time). */
static int server_wait_idle(const bp_server *srv, double *busy_ms)
{
	uint64_t ring[BP_IDLE_WINDOW + 1];
	int64_t start = sigil_mono_ms(), last_busy = start;
	size_t n = 0;

	for (;;) {
		uint64_t t;
		if (!proc_cpu_ticks(srv->pid, &t)) {
			fprintf(stderr, "bench_publish: cannot read /proc/%d/stat\n", (int)srv->pid);
			return -1;
		}
		if (n > 0 && t != ring[(n - 1) % (BP_IDLE_WINDOW + 1)])
			last_busy = sigil_mono_ms();
		ring[n % (BP_IDLE_WINDOW + 1)] = t;
		n++;
		if (n > BP_IDLE_WINDOW &&
		    t - ring[(n - 1 - BP_IDLE_WINDOW) % (BP_IDLE_WINDOW + 1)] <= BP_IDLE_MAX_TICKS)
			break;
		if (bp_stop)
			return -1;
		if (sigil_mono_ms() - start > BP_POOL_TIMEOUT_MS) {
			fprintf(stderr, "bench_publish: sigil-csi still busy after %d ms\n",
				BP_POOL_TIMEOUT_MS);
			return -1;
		}
		sleep_ms(BP_IDLE_SAMPLE_MS);
	}
	if (busy_ms)
		*busy_ms = (double)(last_busy - start);
	return 0;
}

/* ---- one run: N publishes (then N unpublishes) from `conc` threads --------- */

typedef struct bp_phase {
	const bp_env *env;
	bp_server *srv;
	const bp_kind *kind;
	const char *prefix; /* volume ids: <prefix>-<i> */
	bool unpublish;
	bool own_client;
	size_t count;
	atomic_size_t next;
	atomic_size_t failures;
	int64_t *lat;       /* ns per call; -1: not attempted */
	bool *attempted;    /* publish was sent (unpublish these) */
	bool *ok;           /* publish succeeded */
	/* Start gate: threads connect first, then all start together. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	int n_ready;
	bool go;
	pthread_mutex_t lock;
	char first_err[SIGIL_ERR_MSG_MAX + 64];
} bp_phase;

static void phase_fail(bp_phase *ph, const char *vid, const char *why)
{
	atomic_fetch_add(&ph->failures, 1);
	pthread_mutex_lock(&ph->lock);
	if (!ph->first_err[0])
		snprintf(ph->first_err, sizeof(ph->first_err), "%.96s: %.460s", vid, why);
	pthread_mutex_unlock(&ph->lock);
}

static void *phase_thread(void *arg)
{
	bp_phase *ph = arg;
	rpc_client *own = NULL, *c = ph->srv->client;
	char why[SIGIL_ERR_MSG_MAX] = "";

	if (ph->own_client) {
		bool ready = false;
		/* Connect and warm the channel before the clock starts. */
		if (bp_client_new(ph->srv, &own, why, sizeof(why)) < 0 ||
		    bp_probe(own, BP_CALL_TIMEOUT_MS, &ready, why, sizeof(why)) < 0) {
			phase_fail(ph, "(client)", why);
			rpc_client_free(own);
			own = NULL;
		}
		c = own;
	}
	pthread_mutex_lock(&ph->gate_lock);
	ph->n_ready++;
	pthread_cond_broadcast(&ph->gate_cond);
	while (!ph->go)
		pthread_cond_wait(&ph->gate_cond, &ph->gate_lock);
	pthread_mutex_unlock(&ph->gate_lock);
	for (;;) {
		size_t i = atomic_fetch_add(&ph->next, 1);
		char vid[96], target[256];
		int64_t t0;
		int r;

		/* Unpublishing is cleanup: it goes on after a ^C. */
		if (i >= ph->count || (bp_stop && !ph->unpublish) || !c)
			break;
		snprintf(vid, sizeof(vid), "%s-%zu", ph->prefix, i);
		snprintf(target, sizeof(target), "%s/%s", ph->env->targets, vid);
		if (ph->unpublish && !ph->attempted[i])
			continue;
		t0 = sigil_mono_ns();
		if (ph->unpublish) {
			r = bp_unpublish(c, vid, target, why, sizeof(why));
		} else {
			ph->attempted[i] = true;
			r = bp_publish(c, ph->kind, vid, target, why, sizeof(why));
		}
		ph->lat[i] = sigil_mono_ns() - t0;
		if (r < 0) {
			ph->lat[i] = -1;
			phase_fail(ph, vid, why);
		} else if (!ph->unpublish) {
			ph->ok[i] = true;
		}
	}
	rpc_client_free(own);
	return NULL;
}

typedef struct bp_stats {
	size_t n;        /* successful calls */
	size_t failures;
	double p50, p99, max, mean;
	double wall_s;
	double rate;     /* successful calls per second of wall time */
} bp_stats;

/* Runs one phase with conc threads; fills st.  -1 only when threads could
 * not be started (failed calls are counted, not fatal). */
static int phase_run(bp_phase *ph, int conc, bp_stats *st)
{
	pthread_t th[BP_MAX_THREADS];
	int64_t t0, t1, *sorted;
	int started = 0;
	size_t n = 0;
	double sum = 0;

	memset(st, 0, sizeof(*st));
	atomic_store(&ph->next, 0);
	atomic_store(&ph->failures, 0);
	ph->first_err[0] = '\0';
	for (size_t i = 0; i < ph->count; i++)
		ph->lat[i] = -1;
	ph->n_ready = 0;
	ph->go = false;
	for (; started < conc && started < BP_MAX_THREADS; started++)
		if (pthread_create(&th[started], NULL, phase_thread, ph) != 0)
			break;
	if (started < conc) {
		/* The threads that did start leave at once once released. */
		fprintf(stderr, "bench_publish: cannot start %d threads\n", conc);
		bp_stop = 1;
	}
	pthread_mutex_lock(&ph->gate_lock);
	while (ph->n_ready < started)
		pthread_cond_wait(&ph->gate_cond, &ph->gate_lock);
	ph->go = true;
	pthread_cond_broadcast(&ph->gate_cond);
	pthread_mutex_unlock(&ph->gate_lock);
	t0 = sigil_mono_ns();
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	t1 = sigil_mono_ns();
	if (started < conc)
		return -1;

	sorted = sigil_calloc(ph->count, sizeof(*sorted));
	if (!sorted)
		return -1;
	for (size_t i = 0; i < ph->count; i++)
		if (ph->lat[i] >= 0) {
			sorted[n++] = ph->lat[i];
			sum += (double)ph->lat[i];
		}
	qsort(sorted, n, sizeof(*sorted), cmp_i64);
	st->n = n;
	st->failures = atomic_load(&ph->failures);
	st->p50 = pct_ms(sorted, n, 50);
	st->p99 = pct_ms(sorted, n, 99);
	st->max = n ? (double)sorted[n - 1] / 1e6 : 0;
	st->mean = n ? sum / (double)n / 1e6 : 0;
	st->wall_s = (double)(t1 - t0) / 1e9;
	st->rate = st->wall_s > 0 ? (double)n / st->wall_s : 0;
	free(sorted);
	return 0;
}

typedef struct bp_row {
	const bp_kind *kind;
	const char *client;
	int conc;
	size_t count;
	bp_stats pub;
	bp_stats unpub;
	long pooled; /* publishes that took a pooled key; -1: not counted */
	double daemon_cpu_ms; /* sigil-csi CPU per successful publish */
	double client_cpu_ms; /* this process's CPU per successful publish */
	char first_err[SIGIL_ERR_MSG_MAX + 64];
} bp_row;

/* Publishes count volumes of kind from conc threads, then unpublishes
 * them all again (also those whose publish failed: unpublish is
 * idempotent and a timed-out publish may still have landed). */
static int scenario_run(const bp_env *env, bp_server *srv, const bp_kind *k, int conc,
			bool own_client, size_t count, bool count_pooled, bp_row *row)
{
	char prefix[64];
	bp_phase ph = {
		.env = env,
		.srv = srv,
		.kind = k,
		.prefix = prefix,
		.own_client = own_client,
		.count = count,
	};
	off_t mark = file_size(env->log);
	uint64_t ticks0 = 0, ticks1 = 0;
	int64_t client0;
	int r = -1;

	memset(row, 0, sizeof(*row));
	row->kind = k;
	row->client = own_client ? "per-thread" : "shared";
	row->conc = conc;
	row->count = count;
	row->pooled = -1;
	snprintf(prefix, sizeof(prefix), "%s-%s-c%d", k->tag, own_client ? "own" : "shr", conc);
	fprintf(stderr, "bench_publish: %-28s %-10s x%-2d %4zu publishes...\n", k->name, row->client,
		conc, count);
	ph.lat = sigil_calloc(count, sizeof(*ph.lat));
	ph.attempted = sigil_calloc(count, sizeof(bool));
	ph.ok = sigil_calloc(count, sizeof(bool));
	pthread_mutex_init(&ph.lock, NULL);
	pthread_mutex_init(&ph.gate_lock, NULL);
	pthread_cond_init(&ph.gate_cond, NULL);
	if (!ph.lat || !ph.attempted || !ph.ok)
		goto out;
	if (!proc_cpu_ticks(srv->pid, &ticks0))
		goto out;
	client0 = self_cpu_ns();
	if (phase_run(&ph, conc, &row->pub) < 0)
		goto out;
	if (row->pub.n && proc_cpu_ticks(srv->pid, &ticks1)) {
		row->daemon_cpu_ms = (double)(ticks1 - ticks0) * 1000.0 /
				     (double)sysconf(_SC_CLK_TCK) / (double)row->pub.n;
		row->client_cpu_ms = (double)(self_cpu_ns() - client0) / 1e6 / (double)row->pub.n;
	}
	snprintf(row->first_err, sizeof(row->first_err), "%s", ph.first_err);
	if (count_pooled)
		row->pooled = count_in_file(env->log, mark, ", pooled key");
	ph.unpublish = true;
	if (phase_run(&ph, conc, &row->unpub) < 0)
		goto out;
	if (!row->first_err[0])
		snprintf(row->first_err, sizeof(row->first_err), "%s", ph.first_err);
	r = 0;
out:
	pthread_cond_destroy(&ph.gate_cond);
	pthread_mutex_destroy(&ph.gate_lock);
	pthread_mutex_destroy(&ph.lock);
	free(ph.lat);
	free(ph.attempted);
	free(ph.ok);
	return r;
}

/* ---- in-process key generation ---------------------------------------------- */

typedef struct bp_keygen {
	size_t n;
	double mean, p50, min, max;
} bp_keygen;

static int keygen_measure(sigil_keyalg alg, size_t n, bp_keygen *ret)
{
	int64_t *lat = sigil_calloc(n, sizeof(*lat));
	sigil_err err = {0};
	double sum = 0;

	if (!lat)
		return -1;
	for (size_t i = 0; i < n; i++) {
		EVP_PKEY *k = NULL;
		int64_t t0 = sigil_mono_ns();
		if (ca_key_generate(alg, &k, &err) < 0) {
			fprintf(stderr, "bench_publish: %s\n", err.msg);
			free(lat);
			return -1;
		}
		lat[i] = sigil_mono_ns() - t0;
		sum += (double)lat[i];
		EVP_PKEY_free(k);
	}
	qsort(lat, n, sizeof(*lat), cmp_i64);
	ret->n = n;
	ret->mean = sum / (double)n / 1e6;
	ret->p50 = pct_ms(lat, n, 50);
	ret->min = (double)lat[0] / 1e6;
	ret->max = (double)lat[n - 1] / 1e6;
	free(lat);
	return 0;
}

/* ---- the benchmark ------------------------------------------------------------ */

typedef struct bp_results {
	unsigned done; /* BP_STEP_* measured */
	char load_start[64], load_end[64];
	double elapsed_s;
	bp_keygen kg_rsa, kg_ec;
	double ready_ms[3];
	bp_mem ready_mem[3];
	bool ran[3];
	double pool8_fill_ms, pool_fill_ms[BP_N_CONC];
	size_t pool_depth;
	bp_mem mem_idle, mem_live, mem_after;
	uint64_t hwm_end;
	bp_stats rss_pub, rss_unpub;
	long live_records;
	bp_row rows[BP_MAX_ROWS];
	int n_rows;
	long left_targets, left_records;
} bp_results;

static const char *pass_mark(bool pass)
{
	return pass ? "PASS" : "MISS";
}

static const bp_row *find_row(const bp_results *r, const bp_kind *k, const char *client, int conc)
{
	for (int i = 0; i < r->n_rows; i++)
		if (r->rows[i].kind == k && r->rows[i].conc == conc && !strcmp(r->rows[i].client, client))
			return &r->rows[i];
	return NULL;
}

static double mib(uint64_t kb)
{
	return (double)kb / 1024.0;
}

static void print_results(const bp_results *res, const bp_opts *o)
{
	static const char *const daemon_names[] = {"default pool", "warm pool", "rsa-2048=0"};
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	printf("\nbench_publish: sigil-csi NodePublishVolume over its unix socket, %ld CPU(s)%s\n",
	       cpus, o->scale > 1 ? " (--quick: counts / 4)" : "");
	printf("load average (1/5/15 min) at start %s, at end %s; whole run %.0f s\n",
	       res->load_start, res->load_end, res->elapsed_s);
	printf("closed loop: each client thread publishes its next distinct volume as soon as the\n"
	       "previous one returns; latency = one rpc_client_call in this process; vol/s =\n"
	       "successful publishes / wall time of the run.  Every run's volumes are then\n"
	       "unpublished by the same threads (unpub p50).  sigil-csi: embedded CA (ecdsa-p256\n"
	       "CA key), --workers %s.  State dir and targets in /tmp;\n"
	       "%s.\n"
	       "p99 is nearest-rank: for n <= 100 it is the largest sample.  srvCPU / cliCPU:\n"
	       "CPU ms per publish of sigil-csi (all threads, incl. a pool refill) and of this\n"
	       "client process, during the publish phase; pooled: publishes whose key came\n"
	       "from the pool, counted from sigil-csi's log.\n\n",
	       o->workers ? o->workers : "default", o->privileged ? "--privileged: a tmpfs is mounted at every target"
			     : "targets are plain directories (not --privileged, no tmpfs)");
	if (res->n_rows) {
		printf("%-27s %-10s %4s %5s %8s %8s %8s %7s %9s %6s %6s %6s %s\n", "scenario", "client",
		       "conc", "n", "p50 ms", "p99 ms", "max ms", "vol/s", "unpub p50", "errors",
		       "srvCPU", "cliCPU", "pooled");
		for (int i = 0; i < res->n_rows; i++) {
			const bp_row *r = &res->rows[i];
			char pooled[32] = "-";
			if (r->pooled >= 0)
				snprintf(pooled, sizeof(pooled), "%ld/%zu", r->pooled, r->pub.n);
			printf("%-27s %-10s %4d %5zu %8.2f %8.2f %8.2f %7.1f %9.2f %6zu %6.2f %6.2f %s\n",
			       r->kind->name, r->client, r->conc, r->count, r->pub.p50, r->pub.p99,
			       r->pub.max, r->pub.rate, r->unpub.p50, r->pub.failures + r->unpub.failures,
			       r->daemon_cpu_ms, r->client_cpu_ms, pooled);
			if (r->first_err[0])
				printf("    first error: %s\n", r->first_err);
		}
	}
	if (res->done & BP_STEP_KEYGEN) {
		printf("\nin-process key generation (ca_key_generate, no daemon running):\n");
		printf("  rsa-2048   n=%-3zu mean %7.2f ms  p50 %7.2f ms  min %7.2f  max %7.2f\n",
		       res->kg_rsa.n, res->kg_rsa.mean, res->kg_rsa.p50, res->kg_rsa.min,
		       res->kg_rsa.max);
		printf("  ecdsa-p256 n=%-3zu mean %7.3f ms  p50 %7.3f ms  min %7.3f  max %7.3f\n",
		       res->kg_ec.n, res->kg_ec.mean, res->kg_ec.p50, res->kg_ec.min, res->kg_ec.max);
	}
	printf("\nsigil-csi start to Probe ready, and VmRSS (anon + file-backed) at that moment:\n");
	for (int d = 0; d < 3; d++)
		if (res->ran[d])
			printf("  %-13s %5.0f ms  %5.1f MiB (%.1f anon + %.1f file)\n", daemon_names[d],
			       res->ready_ms[d], mib(res->ready_mem[d].rss), mib(res->ready_mem[d].anon),
			       mib(res->ready_mem[d].file));
	if (res->ran[0])
		printf("key pool fill (daemon CPU busy until idle): default rsa-2048=8 in ~%.1f s\n",
		       res->pool8_fill_ms / 1000);
	if (res->done & BP_STEP_RSA_WARM) {
		printf("key pool fill: rsa-2048=%zu in ~%.1f s after start (~%.0f ms per key in the "
		       "daemon's refill thread)",
		       res->pool_depth, res->pool_fill_ms[0] / 1000,
		       res->pool_depth ? res->pool_fill_ms[0] / (double)res->pool_depth : 0.0);
		for (int c = 1; c < BP_N_CONC; c++)
			printf(", refill before x%d ~%.1f s", bp_concurrency[c],
			       res->pool_fill_ms[c] / 1000);
		printf("\n");
	}
	if (res->done & BP_STEP_RSS) {
		printf("\nmemory of sigil-csi (default key pool), VmRSS = anon + file-backed (shared "
		       "libraries):\n");
		printf("  idle (pool full, no volume)  %5.1f MiB (%.1f anon + %.1f file)\n",
		       mib(res->mem_idle.rss), mib(res->mem_idle.anon), mib(res->mem_idle.file));
		printf("  %zu live volumes           %5.1f MiB (%.1f anon + %.1f file), %ld volume "
		       "records on disk\n",
		       res->rss_pub.n, mib(res->mem_live.rss), mib(res->mem_live.anon),
		       mib(res->mem_live.file), res->live_records);
		printf("  after unpublishing them      %5.1f MiB (%.1f anon + %.1f file)\n",
		       mib(res->mem_after.rss), mib(res->mem_after.anon), mib(res->mem_after.file));
		printf("  VmHWM of that daemon at its end: %.1f MiB\n", mib(res->hwm_end));
		printf("  (the %zu publishes, %d threads: p50 %.2f ms, p99 %.2f ms, %.1f vol/s; "
		       "unpublish p50 %.2f ms, %.1f vol/s; %zu errors)\n",
		       res->rss_pub.n, BP_RSS_THREADS, res->rss_pub.p50, res->rss_pub.p99,
		       res->rss_pub.rate, res->rss_unpub.p50, res->rss_unpub.rate,
		       res->rss_pub.failures + res->rss_unpub.failures);
	}
	printf("left behind after all unpublishes: %ld target dirs, %ld volume records\n",
	       res->left_targets, res->left_records);

	printf("\ntargets:\n");
	for (int m = 0; m < 2; m++) {
		const char *client = m ? "per-thread" : "shared";
		const bp_row *ec32 = find_row(res, &bp_pem_ec, client, 32);
		if (!ec32)
			continue;
		printf("  tls-pem ecdsa-p256 x32 (%s client): p50 %6.2f ms <= %.0f ms %s;  "
		       "p99 %6.2f ms <= %.0f ms %s\n",
		       client, ec32->pub.p50, BP_TARGET_EC_P50_MS,
		       pass_mark(ec32->pub.n && !ec32->pub.failures &&
				 ec32->pub.p50 <= BP_TARGET_EC_P50_MS),
		       ec32->pub.p99, BP_TARGET_EC_P99_MS,
		       pass_mark(ec32->pub.n && !ec32->pub.failures &&
				 ec32->pub.p99 <= BP_TARGET_EC_P99_MS));
	}
	for (int c = 0; c < BP_N_CONC && (res->done & BP_STEP_KEYGEN); c++) {
		const bp_row *w = find_row(res, &bp_pem_rsa_warm, "shared", bp_concurrency[c]);
		double ratio;
		if (!w || !w->pub.n || w->pub.p50 <= 0)
			continue;
		ratio = res->kg_rsa.p50 / w->pub.p50;
		printf("  rsa-2048 warm-pool publish x%-2d p50 %6.2f ms vs inline keygen p50 %.2f ms: "
		       "%5.1fx faster (>= %.0fx) %s\n",
		       bp_concurrency[c], w->pub.p50, res->kg_rsa.p50, ratio, BP_TARGET_POOL_RATIO,
		       pass_mark(ratio >= BP_TARGET_POOL_RATIO && !w->pub.failures));
	}
	if (res->done & BP_STEP_RSS)
		printf("  RSS idle %.1f MiB <= %d MiB %s;  with %zu volumes %.1f MiB <= %d MiB %s\n",
		       mib(res->mem_idle.rss), BP_TARGET_RSS_IDLE_KB / 1024,
		       pass_mark(res->mem_idle.rss && res->mem_idle.rss <= BP_TARGET_RSS_IDLE_KB),
		       res->rss_pub.n, mib(res->mem_live.rss), BP_TARGET_RSS_1000_KB / 1024,
		       pass_mark(res->mem_live.rss && res->rss_pub.n == (size_t)BP_N_RSS_VOLUMES &&
				 res->mem_live.rss <= BP_TARGET_RSS_1000_KB));
}

/* Publishes BP_N_RSS_VOLUMES ecdsa-p256 volumes, measures memory with all
 * of them live, unpublishes them, measures again. */
static int rss_run(const bp_env *env, bp_server *srv, bp_results *res)
{
	bp_phase ph = {
		.env = env,
		.srv = srv,
		.kind = &bp_pem_ec,
		.prefix = "rss",
		.count = BP_N_RSS_VOLUMES,
	};
	int r = -1;

	fprintf(stderr, "bench_publish: publishing %d live volumes for the RSS figure...\n",
		BP_N_RSS_VOLUMES);
	ph.lat = sigil_calloc(ph.count, sizeof(*ph.lat));
	ph.attempted = sigil_calloc(ph.count, sizeof(bool));
	ph.ok = sigil_calloc(ph.count, sizeof(bool));
	pthread_mutex_init(&ph.lock, NULL);
	pthread_mutex_init(&ph.gate_lock, NULL);
	pthread_cond_init(&ph.gate_cond, NULL);
	if (!ph.lat || !ph.attempted || !ph.ok)
		goto out;
	if (phase_run(&ph, BP_RSS_THREADS, &res->rss_pub) < 0)
		goto out;
	if (ph.first_err[0])
		fprintf(stderr, "bench_publish: RSS publishes: first error: %s\n", ph.first_err);
	/* Let the daemon settle: handler threads finish logging, gRPC drops
	 * finished calls. */
	sleep_ms(500);
	mem_read(srv->pid, &res->mem_live);
	res->live_records = count_entries(env->volumes, ".json");
	ph.unpublish = true;
	if (phase_run(&ph, BP_RSS_THREADS, &res->rss_unpub) < 0)
		goto out;
	if (ph.first_err[0])
		fprintf(stderr, "bench_publish: RSS unpublishes: first error: %s\n", ph.first_err);
	sleep_ms(500);
	mem_read(srv->pid, &res->mem_after);
	r = 0;
out:
	pthread_cond_destroy(&ph.gate_cond);
	pthread_mutex_destroy(&ph.gate_lock);
	pthread_mutex_destroy(&ph.lock);
	free(ph.lat);
	free(ph.attempted);
	free(ph.ok);
	return r;
}

static bp_row *next_row(bp_results *res)
{
	return res->n_rows < BP_MAX_ROWS ? &res->rows[res->n_rows++] : NULL;
}

/* One scenario at every concurrency, shared client (and per-thread
 * clients when both_clients). */
static int scenario_all(const bp_env *env, bp_server *srv, bp_results *res, const bp_kind *k,
			size_t count, bool both_clients, bool count_pooled)
{
	for (int m = 0; m < (both_clients ? 2 : 1); m++)
		for (int c = 0; c < BP_N_CONC && !bp_stop; c++) {
			bp_row *row = next_row(res);
			if (!row || scenario_run(env, srv, k, bp_concurrency[c], m == 1, count,
						 count_pooled, row) < 0)
				return -1;
		}
	return bp_stop ? -1 : 0;
}

static int bench_all(const bp_env *env, bp_server *srv, bp_results *res, const bp_opts *o)
{
	size_t n_pem = BP_N_ECDSA_PEM / (size_t)o->scale, n_p12 = BP_N_ECDSA_P12 / (size_t)o->scale;
	size_t n_warm = BP_N_RSA_WARM / (size_t)o->scale, n_cold = BP_N_RSA_COLD / (size_t)o->scale;
	char pool_arg[64];

	/* Key generation first, on a quiet machine. */
	if (o->steps & BP_STEP_KEYGEN) {
		fprintf(stderr, "bench_publish: %d inline rsa-2048 key generations...\n",
			BP_N_KEYGEN_RSA);
		if (keygen_measure(SIGIL_KEY_RSA2048, BP_N_KEYGEN_RSA, &res->kg_rsa) < 0 ||
		    keygen_measure(SIGIL_KEY_ECDSA_P256, BP_N_KEYGEN_EC, &res->kg_ec) < 0)
			return -1;
		res->done |= BP_STEP_KEYGEN;
	}

	/* Daemon 1, as deployed (default pool rsa-2048=8): memory, then the
	 * ecdsa scenarios, which never touch the RSA pool. */
	if (o->steps & (BP_STEP_RSS | BP_STEP_PEM_EC | BP_STEP_P12_EC)) {
		if (server_start(env, NULL, o, srv) < 0)
			return -1;
		res->ran[0] = true;
		res->ready_ms[0] = srv->ready_ms;
		res->ready_mem[0] = srv->ready_mem;
		if (server_wait_idle(srv, &res->pool8_fill_ms) < 0)
			return -1;
		if (o->steps & BP_STEP_RSS) {
			mem_read(srv->pid, &res->mem_idle);
			if (rss_run(env, srv, res) < 0 || bp_stop)
				return -1;
			res->done |= BP_STEP_RSS;
		}
		if ((o->steps & BP_STEP_PEM_EC) &&
		    scenario_all(env, srv, res, &bp_pem_ec, n_pem, true, false) < 0)
			return -1;
		if ((o->steps & BP_STEP_P12_EC) &&
		    scenario_all(env, srv, res, &bp_p12_ec, n_p12, false, false) < 0)
			return -1;
		res->hwm_end = proc_status_kb(srv->pid, "VmHWM");
		if (server_stop(srv) < 0 || bp_stop)
			return -1;
	}

	/* Daemon 2: a pool as deep as one run; full before every run. */
	if (o->steps & BP_STEP_RSA_WARM) {
		res->pool_depth = n_warm;
		snprintf(pool_arg, sizeof(pool_arg), "rsa-2048=%zu", n_warm);
		if (server_start(env, pool_arg, o, srv) < 0)
			return -1;
		res->ran[1] = true;
		res->ready_ms[1] = srv->ready_ms;
		res->ready_mem[1] = srv->ready_mem;
		for (int c = 0; c < BP_N_CONC && !bp_stop; c++) {
			bp_row *row;
			fprintf(stderr, "bench_publish: waiting for the rsa-2048 pool of %zu to fill...\n",
				n_warm);
			if (server_wait_idle(srv, &res->pool_fill_ms[c]) < 0)
				return -1;
			row = next_row(res);
			if (!row || scenario_run(env, srv, &bp_pem_rsa_warm, bp_concurrency[c], false,
						 n_warm, true, row) < 0)
				return -1;
		}
		if (server_stop(srv) < 0 || bp_stop)
			return -1;
		res->done |= BP_STEP_RSA_WARM;
	}

	/* Daemon 3: no pool, every RSA key generated inline. */
	if (o->steps & BP_STEP_RSA_COLD) {
		if (server_start(env, "rsa-2048=0", o, srv) < 0)
			return -1;
		res->ran[2] = true;
		res->ready_ms[2] = srv->ready_ms;
		res->ready_mem[2] = srv->ready_mem;
		if (scenario_all(env, srv, res, &bp_pem_rsa_cold, n_cold, false, true) < 0)
			return -1;
		if (server_stop(srv) < 0 || bp_stop)
			return -1;
		res->done |= BP_STEP_RSA_COLD;
	}

	res->left_targets = count_entries(env->targets, NULL);
	res->left_records = count_entries(env->volumes, ".json");
	return 0;
}

static int env_create(bp_env *env, const char *csi_path)
{
	snprintf(env->csi_path, sizeof(env->csi_path), "%s", csi_path);
	snprintf(env->root, sizeof(env->root), "/tmp/sigil-bench-XXXXXX");
	if (!mkdtemp(env->root)) {
		fprintf(stderr, "bench_publish: mkdtemp: %s\n", strerror(errno));
		env->root[0] = '\0';
		return -1;
	}
	snprintf(env->state, sizeof(env->state), "%s/state", env->root);
	snprintf(env->volumes, sizeof(env->volumes), "%s/volumes", env->state);
	snprintf(env->targets, sizeof(env->targets), "%s/targets", env->root);
	snprintf(env->log, sizeof(env->log), "%s/sigil-csi.log", env->root);
	if (mkdir(env->state, 0700) < 0 || mkdir(env->targets, 0700) < 0) {
		fprintf(stderr, "bench_publish: mkdir under %s: %s\n", env->root, strerror(errno));
		return -1;
	}
	return 0;
}

/* With --privileged an interrupted run can leave tmpfs mounts at targets;
 * remove_tree would fail on them (EBUSY), so detach them first. */
static void env_unmount_targets(const bp_env *env)
{
	DIR *d = opendir(env->targets);
	struct dirent *de;
	long n = 0;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[sizeof(env->targets) + 256];
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", env->targets, de->d_name);
		for (int tries = 0; tries < 4 && csi_volume_is_mountpoint(path); tries++)
			if (umount2(path, MNT_DETACH) == 0)
				n++;
	}
	closedir(d);
	if (n)
		fprintf(stderr, "bench_publish: unmounted %ld leftover tmpfs mounts\n", n);
}

/* sigil-csi next to this program (its build directory). */
static int default_csi_path(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		return -1;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	return snprintf(buf, len, "%s/sigil-csi", self) < (int)len ? 0 : -1;
}

/* "rss,pem-ec" -> BP_STEP_RSS | BP_STEP_PEM_EC. */
static int parse_steps(const char *list, unsigned *ret)
{
	unsigned steps = 0;
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ",");
		bool found = false;
		for (size_t i = 0; i < SIGIL_ARRAY_SIZE(bp_steps); i++)
			if (strlen(bp_steps[i].name) == n && !strncmp(p, bp_steps[i].name, n)) {
				steps |= bp_steps[i].bit;
				found = true;
			}
		if (!found)
			return -1;
		p += n;
		if (*p == ',')
			p++;
	}
	if (!steps)
		return -1;
	*ret = steps;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_publish [--quick] [--privileged] [--workers N] [--only LIST] "
		   "[PATH/TO/sigil-csi]\n"
		   "  default sigil-csi: the one next to bench_publish\n"
		   "  --quick       publish counts / 4\n"
		   "  --workers N   sigil-csi --workers N (1..32; default: sigil-csi's)\n"
		   "  --privileged  sigil-csi --privileged (tmpfs per target; needs root)\n"
		   "  --only LIST   comma list of keygen,rss,pem-ec,p12-ec,rsa-warm,rsa-cold\n");
}

int main(int argc, char **argv)
{
	static bp_results res;
	bp_opts o = {.scale = 1, .steps = BP_STEP_ALL};
	bp_env env = {0};
	bp_server srv = {0};
	rpc_client *keeper = NULL;
	rpc_client_config kc = {.target = "unix:/nonexistent/sigil-bench-keeper"};
	sigil_err err = {0};
	char csi_path[PATH_MAX] = "";
	struct sigaction sa;
	int64_t t_start = sigil_mono_ms();
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			o.scale = 4;
		} else if (!strcmp(argv[i], "--privileged")) {
			o.privileged = true;
		} else if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
			int64_t w;
			if (sigil_parse_int64(argv[++i], 1, BP_MAX_THREADS, &w) < 0) {
				usage(stderr);
				return 2;
			}
			o.workers = argv[i];
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			if (parse_steps(argv[++i], &o.steps) < 0) {
				usage(stderr);
				return 2;
			}
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] != '-' && !csi_path[0]) {
			snprintf(csi_path, sizeof(csi_path), "%s", argv[i]);
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!csi_path[0] && default_csi_path(csi_path, sizeof(csi_path)) < 0) {
		fprintf(stderr, "bench_publish: cannot locate sigil-csi; pass its path\n");
		return 2;
	}
	if (access(csi_path, X_OK) < 0) {
		fprintf(stderr, "bench_publish: %s: %s\n", csi_path, strerror(errno));
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bp_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Holds one gRPC reference for the whole run, so that freeing the last
	 * client of one daemon does not tear gRPC down before the next.  Its
	 * channel never connects: it is never called. */
	if (rpc_client_new(&kc, &keeper, &err) < 0) {
		fprintf(stderr, "bench_publish: %s\n", err.msg);
		return 1;
	}
	load_average(res.load_start, sizeof(res.load_start));
	if (env_create(&env, csi_path) == 0) {
		fprintf(stderr, "bench_publish: sigil-csi %s, work dir %s\n", env.csi_path, env.root);
		if (bench_all(&env, &srv, &res, &o) == 0) {
			load_average(res.load_end, sizeof(res.load_end));
			res.elapsed_s = (double)(sigil_mono_ms() - t_start) / 1000.0;
			print_results(&res, &o);
			rc = res.left_targets == 0 && res.left_records == 0 ? 0 : 1;
		} else {
			fprintf(stderr, "bench_publish: %s\n", bp_stop ? "interrupted" : "failed");
			if (!bp_stop)
				print_log_tail(env.log);
		}
	}
	if (server_stop(&srv) < 0)
		rc = 1;
	if (env.root[0]) {
		if (o.privileged)
			env_unmount_targets(&env);
		if (sigil_fs_remove_tree(env.root, &err) < 0) {
			fprintf(stderr, "bench_publish: could not remove %s: %s\n", env.root, err.msg);
			rc = 1;
		}
	}
	rpc_client_free(keeper);
	return rc;
}
