/* bench/watch: what the expiry watcher costs with 10,000 tracked volumes
 * (issue 7).  Not a test: it prints figures.
 *
 * Setup: one mkdtemp directory under /tmp with the node state dir (on the
 * disk, as a hostPath state dir is) and the volume targets (on a tmpfs when
 * run as root, as the kubelet's pod volumes are; a plain directory
 * otherwise).  N volumes (default 10,000) are written straight into it:
 * files in the AtomicWriter layout (csi_volume_publish) and one volume
 * record each (csi_state_put), renewal=in-place with a 30-day certificate,
 * so that no deadline comes near during the run, and the trust bundle
 * version the embedded CA has now.
 *
 * Measurements:
 *  1. sigil-csi start with N records: exec until its CSI socket accepts
 *     (rebuilding the heap from the state dir).
 *  2. Idle: sigil-csi's CPU time (utime+stime from /proc/PID/stat) over
 *     IDLE seconds (default 30) with the default --bundle-check-interval
 *     of 30 s, and its RSS (VmRSS).
 *     Baseline, in the same window: a process holding one timerfd per
 *     volume (armed 30 days out) in an epoll set, the "per-volume timer"
 *     design the single heap replaces; its CPU time and RSS.
 *  3. CA rotation: sigil-csi restarted with --bundle-check-interval 1; the
 *     CA of class tls rotated in its store (what `sigilctl ca rotate`
 *     does); time until every volume's ca.crt holds the new bundle (two
 *     certificates), polled from outside every 50 ms.  Each refresh is the
 *     full atomic path: read the other files, write a new version
 *     directory, swap ..data, collect the old one, rewrite the record.
 *     Baseline: a plain loop writing the same bundle into every volume's
 *     ca.crt in place (open/O_TRUNC/write/close; no atomicity, no record),
 *     the least any tool could do.
 *
 * usage: bench_watch [--volumes N] [--idle SECONDS] [SIGIL_CSI]
 * The directory is removed (and the tmpfs unmounted) at the end, also after
 * a failure or SIGINT; sigil-csi is stopped with SIGTERM. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ca/caset.h"
#include "ca/store.h"
#include "csi/issuer.h"
#include "csi/state.h"
#include "csi/volume.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/parse.h"

#define BW_DEFAULT_VOLUMES 10000
#define BW_MAX_VOLUMES     100000
#define BW_DEFAULT_IDLE    30
#define BW_MAX_IDLE        3600
#define BW_TMPFS_SIZE      "size=512m,mode=0755"

static char g_dir[64];
static char g_targets[128];
static bool g_mounted;
static pid_t g_csi = -1, g_timers = -1;

static void cleanup(void)
{
	if (g_csi > 0) {
		kill(g_csi, SIGTERM);
		waitpid(g_csi, NULL, 0);
		g_csi = -1;
	}
	if (g_timers > 0) {
		kill(g_timers, SIGKILL);
		waitpid(g_timers, NULL, 0);
		g_timers = -1;
	}
	if (g_mounted && umount2(g_targets, MNT_DETACH) == 0)
		g_mounted = false;
	if (g_dir[0])
		(void)sigil_fs_remove_tree(g_dir, NULL);
	g_dir[0] = '\0';
}

static void on_signal(int sig)
{
	(void)sig;
	cleanup();
	_exit(130);
}

static void die(const char *what, const sigil_err *err)
{
	fprintf(stderr, "bench_watch: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
	cleanup();
	exit(1);
}

static double now_s(void)
{
	return (double)sigil_mono_ns() / 1e9;
}

/* utime+stime of pid in seconds. */
static double cpu_s(pid_t pid)
{
	char path[64], buf[2048];
	unsigned long long ut = 0, st = 0;
	ssize_t n;
	int fd;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* Fields after the ")" that ends comm: state is field 3; utime and
	 * stime are fields 14 and 15. */
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	p += 2;
	for (int field = 3; field < 14 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p)
		return -1;
	char *end;
	ut = strtoull(p, &end, 10);
	if (end == p || *end != ' ')
		return -1;
	p = end + 1;
	st = strtoull(p, &end, 10);
	if (end == p)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long rss_kib(pid_t pid)
{
	char path[64];
	char line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6)) {
			char *s = line + 6;
			while (*s == ' ' || *s == '\t')
				s++;
			char *e = s;
			while (*e >= '0' && *e <= '9')
				e++;
			*e = '\0';
			int64_t v;
			if (sigil_parse_int64(s, 0, INT64_MAX / 2, &v) == 0)
				kib = (long)v;
			break;
		}
	}
	fclose(f);
	return kib;
}

static bool socket_ready(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		close(fd);
		return false;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Starts sigil-csi; returns the seconds until its socket accepted. */
static double start_csi(const char *csi, const char *state, const char *interval)
{
	char sock[128], ep[160];
	double t0 = now_s();

	snprintf(sock, sizeof(sock), "%s/csi.sock", g_dir);
	snprintf(ep, sizeof(ep), "unix://%s", sock);
	unlink(sock);
	g_csi = fork();
	if (g_csi < 0)
		die("fork", NULL);
	if (g_csi == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		setenv("SIGIL_LOG_LEVEL", "warn", 1);
		execl(csi, csi, "--endpoint", ep, "--node-id", "bench-node", "--state-dir", state,
		      "--key-pool", "rsa-2048=0", "--bundle-check-interval", interval,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 6000; i++) {
		if (socket_ready(sock))
			return now_s() - t0;
		if (waitpid(g_csi, NULL, WNOHANG) == g_csi) {
			g_csi = -1;
			die("sigil-csi exited during start", NULL);
		}
		usleep(10000);
	}
	die("sigil-csi did not open its socket within 60 s", NULL);
	return 0;
}

static void stop_csi(void)
{
	if (g_csi > 0) {
		kill(g_csi, SIGTERM);
		waitpid(g_csi, NULL, 0);
		g_csi = -1;
	}
}

/* The per-volume-timer baseline: n timerfds armed 30 days out, in epoll. */
static pid_t start_timers(long n)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct itimerspec its = {.it_value = {.tv_sec = 30L * 86400}};
	for (long i = 0; i < n; i++) {
		int fd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
		if (fd < 0)
			_exit(2);
		timerfd_settime(fd, 0, &its, NULL);
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
	for (;;) {
		struct epoll_event evs[16];
		epoll_wait(ep, evs, 16, -1);
	}
}

static size_t count_certs(const char *path)
{
	char buf[16384];
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len;

	if (fd < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	for (char *p = buf; (p = strstr(p, "BEGIN CERTIFICATE")) != NULL; p++)
		n++;
	return n;
}

static uint8_t *dup_bytes(const char *s, size_t *len)
{
	*len = strlen(s);
	return (uint8_t *)sigil_strndup(s, *len);
}

int main(int argc, char **argv)
{
	const char *csi = NULL;
	int64_t n_vol = BW_DEFAULT_VOLUMES, idle = BW_DEFAULT_IDLE;
	char state[128], self[PATH_MAX], csi_default[PATH_MAX + 16];
	sigil_err err = {0};

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--volumes") && i + 1 < argc) {
			if (sigil_parse_int64(argv[++i], 1, BW_MAX_VOLUMES, &n_vol) < 0)
				die("--volumes must be 1..100000", NULL);
		} else if (!strcmp(argv[i], "--idle") && i + 1 < argc) {
			if (sigil_parse_int64(argv[++i], 1, BW_MAX_IDLE, &idle) < 0)
				die("--idle must be 1..3600 seconds", NULL);
		} else if (argv[i][0] == '-') {
			fprintf(stderr,
			        "usage: bench_watch [--volumes N] [--idle SECONDS] [SIGIL_CSI]\n");
			return 2;
		} else {
			csi = argv[i];
		}
	}
	if (!csi) {
		ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (k < 0)
			die("cannot find myself", NULL);
		self[k] = '\0';
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		snprintf(csi_default, sizeof(csi_default), "%s/sigil-csi", self);
		csi = csi_default;
	}
	if (access(csi, X_OK) < 0)
		die("sigil-csi not found (give its path)", NULL);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	snprintf(g_dir, sizeof(g_dir), "/tmp/sigil-bench-watch-XXXXXX");
	if (!mkdtemp(g_dir))
		die("mkdtemp", NULL);
	snprintf(state, sizeof(state), "%s/state", g_dir);
	snprintf(g_targets, sizeof(g_targets), "%s/pods", g_dir);
	if (mkdir(g_targets, 0755) < 0)
		die("mkdir", NULL);
	if (geteuid() == 0 &&
	    mount("bench", g_targets, "tmpfs", MS_NODEV | MS_NOSUID, BW_TMPFS_SIZE) == 0)
		g_mounted = true;
	printf("bench_watch: %lld volumes; state dir on disk, targets on %s; %ld CPUs; loadavg at "
	       "start: ",
	       (long long)n_vol, g_mounted ? "tmpfs" : "the same disk",
	       sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
	{
		char la[128];
		FILE *f = fopen("/proc/loadavg", "r");
		if (f && fgets(la, sizeof(la), f))
			printf("%s", la);
		else
			printf("?\n");
		if (f)
			fclose(f);
	}

	/* ---- setup: records and files written directly --------------------- */
	double t0 = now_s();
	csi_issuer *is = NULL;
	STACK_OF(X509) *trust = NULL;
	uint64_t version = 0;
	if (csi_issuer_local_new(state, NULL, 0, NULL, &is, &err) < 0 ||
	    csi_issuer_trust_bundle(is, "tls", &trust, &version, &err) < 0)
		die("embedded CA", &err);
	sk_X509_pop_free(trust, X509_free);
	csi_issuer_free(is);
	csi_state *st = NULL;
	if (csi_state_open(state, &st, &err) < 0)
		die("state dir", &err);
	/* The files' content does not matter to the watcher while idle or
	 * for a trust refresh (which carries tls.crt / tls.key over byte for
	 * byte): fixed blobs of realistic size. */
	char blob[1200];
	memset(blob, 'A', sizeof(blob) - 1);
	blob[sizeof(blob) - 1] = '\0';
	int64_t now = time(NULL);
	char *keys[] = {
	    "secrets.sigil.dev/class",     "secrets.sigil.dev/scope",
	    "secrets.sigil.dev/renewal",   "secrets.sigil.dev/backend.autotls.cert.lifetime",
	    "csi.storage.k8s.io/pod.name", "csi.storage.k8s.io/pod.namespace"};
	char *files[] = {"tls.crt", "tls.key", "ca.crt"};
	for (int64_t i = 0; i < n_vol; i++) {
		char id[64], target[192], pod[64];
		ks_fileset fs = {0};
		size_t len;
		snprintf(id, sizeof(id), "vol-%lld", (long long)i);
		snprintf(target, sizeof(target), "%s/%lld", g_targets, (long long)i);
		snprintf(pod, sizeof(pod), "app-%lld", (long long)i);
		for (int f = 0; f < 3; f++) {
			uint8_t *d = dup_bytes(blob, &len);
			if (!d || ks_fileset_add(&fs, files[f], d, len, f == 1, &err) < 0)
				die("fileset", &err);
		}
		if (csi_volume_publish(target, &fs, NULL, &err) < 0)
			die("writing a volume", &err);
		ks_fileset_free(&fs);
		char *vals[] = {"tls", "pod", "in-place", "30d", pod, "default"};
		csi_volume_record r = {
		    .volume_id = id,
		    .target_path = target,
		    .fingerprint = "bench",
		    .attr_keys = keys,
		    .attr_values = vals,
		    .n_attrs = 6,
		    .files = files,
		    .n_files = 3,
		    .not_after = now + 30 * 86400,
		    .published_at = now,
		    .trust_version = version,
		};
		if (csi_state_put(st, &r, &err) < 0)
			die("writing a record", &err);
	}
	csi_state_free(st);
	printf("setup: %lld volumes and records written in %.1f s\n", (long long)n_vol,
	       now_s() - t0);

	/* ---- 1 + 2: start and idle ------------------------------------------- */
	double start = start_csi(csi, state, "30");
	printf("sigil-csi start with %lld records (socket accepting): %.2f s\n", (long long)n_vol,
	       start);
	sleep(2); /* let the first bundle check and the key pool settle */
	g_timers = start_timers(n_vol);
	sleep(1);
	double c0 = cpu_s(g_csi), b0 = cpu_s(g_timers);
	printf("idle for %lld s ...\n", (long long)idle);
	fflush(stdout);
	sleep((unsigned)idle);
	double c1 = cpu_s(g_csi), b1 = cpu_s(g_timers);
	long rss = rss_kib(g_csi), brss = rss_kib(g_timers);
	printf("idle sigil-csi:            CPU %.3f s over %lld s (%.3f%% of a core), RSS %.1f MiB "
	       "(--bundle-check-interval 30)\n",
	       c1 - c0, (long long)idle, 100.0 * (c1 - c0) / (double)idle, rss / 1024.0);
	printf("baseline, %lld timerfds:   CPU %.3f s over %lld s (%.3f%% of a core), RSS %.1f MiB "
	       "(kernel memory of the timers not included)\n",
	       (long long)n_vol, b1 - b0, (long long)idle, 100.0 * (b1 - b0) / (double)idle,
	       brss / 1024.0);
	kill(g_timers, SIGKILL);
	waitpid(g_timers, NULL, 0);
	g_timers = -1;
	stop_csi();

	/* ---- 3: CA rotation pushed into every volume ------------------------- */
	start_csi(csi, state, "1");
	sleep(2);
	{
		_cleanup_free_ char *cadir = sigil_path_join(state, "ca");
		ca_store *store = NULL;
		ca_set *set = NULL;
		ca_set_config cfg = {.class_name = "tls",
		                     .key_alg = SIGIL_KEY_ECDSA_P256,
		                     .ca_lifetime_secs = 365LL * 86400,
		                     .retirement_secs = 3600,
		                     .auto_generate = true};
		if (!cadir || ca_store_dir_open(cadir, &store, &err) < 0 ||
		    ca_set_open(store, &cfg, &set, &err) < 0)
			die("opening the CA store", &err);
		double cpu_before = cpu_s(g_csi);
		t0 = now_s();
		if (ca_set_rotate_now(set, &err) < 0)
			die("rotate", &err);
		ca_set_free(set);
		ca_store_free(store);
		bool *done = calloc((size_t)n_vol, sizeof(bool));
		int64_t n_done = 0;
		double first = 0;
		if (!done)
			die("out of memory", NULL);
		while (n_done < n_vol && now_s() - t0 < 900) {
			for (int64_t i = 0; i < n_vol; i++) {
				char p[224];
				if (done[i])
					continue;
				snprintf(p, sizeof(p), "%s/%lld/ca.crt", g_targets, (long long)i);
				if (count_certs(p) >= 2) {
					done[i] = true;
					if (!n_done++)
						first = now_s() - t0;
				}
			}
			if (n_done < n_vol)
				usleep(50000);
		}
		double took = now_s() - t0;
		double cpu = cpu_s(g_csi) - cpu_before;
		free(done);
		if (n_done < n_vol)
			printf("rotation: only %lld of %lld volumes updated after %.0f s\n",
			       (long long)n_done, (long long)n_vol, took);
		else
			printf(
			    "rotation pushed by sigil-csi: first volume after %.2f s (bundle check "
			    "every 1 s), all %lld after %.2f s (%.0f volumes/s after the first); "
			    "sigil-csi CPU %.2f s\n",
			    first, (long long)n_vol, took,
			    took > first ? (double)(n_vol - 1) / (took - first) : 0.0, cpu);
	}
	stop_csi();
	/* Every ca.crt holds the new bundle now: write it again in place. */
	{
		char p[224];
		uint8_t *bundle = NULL;
		size_t blen = 0;
		snprintf(p, sizeof(p), "%s/0/ca.crt", g_targets);
		if (sigil_fs_read_file(p, 65536, &bundle, &blen, &err) < 0)
			die("reading a bundle", &err);
		t0 = now_s();
		for (int64_t i = 0; i < n_vol; i++) {
			snprintf(p, sizeof(p), "%s/%lld/ca.crt", g_targets, (long long)i);
			int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
			if (fd < 0 || write(fd, bundle, blen) != (ssize_t)blen)
				die("baseline write", NULL);
			close(fd);
		}
		double took = now_s() - t0;
		printf(
		    "baseline, plain in-place writes of ca.crt (no atomic swap, no record): %lld "
		    "volumes in %.2f s (%.0f volumes/s)\n",
		    (long long)n_vol, took, took > 0 ? (double)n_vol / took : 0.0);
		free(bundle);
	}
	cleanup();
	return 0;
}
