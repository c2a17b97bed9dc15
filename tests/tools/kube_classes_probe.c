/* kube_classes_probe: runs sigil-ca's Kubernetes controllers
 * (ca/server/kube_classes.h, kube_secrets.h, truststore.h) against an
 * apiserver (the fake one in tests), for
 * tests/integration/test_kube_classes.sh.  Prints one JSON line per thing
 * they did on stdout:
 *   {"event":"classes","names":[...],"backends":[...]}   a delivered class set
 *   {"event":"class-error","name":N,"group":G,"message":M}
 *   {"event":"mirror","objects":..,"written":..,"removed":..,"dirs":..}
 *   {"event":"mirror-error","message":M}
 *   {"event":"truststore","ns":..,"name":..,"kind":..,"action":..}
 *   {"event":"truststore-error","ns":..,"name":..,"message":M}
 *   {"event":"stopped","stopMs":N}                      after SIGTERM/SIGINT
 * SIGUSR1 re-reads the bundles (truststore_kick). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ca/server/kube_classes.h"
#include "ca/server/kube_secrets.h"
#include "ca/server/truststore.h"
#include "kube/client.h"
#include "kube/config.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/parse.h"

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t got_stop, got_kick;

typedef struct probe {
	kube_client *client;
	const char *secrets_dir;
	const char *bundle_dir;
	pthread_mutex_t lock; /* the class set and the mirror */
	ca_class_config classes[CA_SERVICE_MAX_CLASSES];
	size_t n;
	bool have;
} probe;

static void emit(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	pthread_mutex_lock(&out_lock);
	printf("%s\n", s ? s : "null");
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	free(s);
	json_decref(j);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: kube_classes_probe --kubeconfig FILE [--compat] [--secrets-dir DIR]\n"
	        "       [--bundle-dir DIR] [--resync-ms N] [--backoff-ms N] [--retries N]\n"
	        "  --bundle-dir enables the TrustStore controller: the bundle of class C\n"
	        "  is DIR/C.pem (missing: unknown class), its version the file's mtime.\n");
	exit(2);
}

static long num_arg(const char *s, long min, long max)
{
	int64_t v;

	if (sigil_parse_int64(s, min, max, &v) < 0) {
		fprintf(stderr, "bad number %s\n", s);
		exit(2);
	}
	return (long)v;
}

/* Called with p->lock held. */
static void mirror_locked(probe *p)
{
	kube_secrets_stats st;
	sigil_err err = {0};

	if (!p->secrets_dir || !p->have)
		return;
	if (kube_secrets_sync(p->client, p->secrets_dir, p->classes, p->n, &st, &err) < 0) {
		emit(json_pack("{s:s, s:s, s:s}", "event", "mirror-error", "code",
		               sigil_errcode_name(err.code), "message", err.msg));
		return;
	}
	emit(json_pack("{s:s, s:I, s:I, s:I, s:I}", "event", "mirror", "objects",
	               (json_int_t)st.objects, "written", (json_int_t)st.files_written, "removed",
	               (json_int_t)st.files_removed, "dirs", (json_int_t)st.dirs_removed));
}

static void on_change(const ca_class_config *classes, size_t n, void *ctx)
{
	probe *p = ctx;
	json_t *names = json_array(), *backends = json_array();

	for (size_t i = 0; i < n; i++) {
		json_array_append_new(names, json_string(classes[i].name));
		json_array_append_new(backends, json_string(ca_backend_name(classes[i].backend)));
	}
	emit(
	    json_pack("{s:s, s:o, s:o}", "event", "classes", "names", names, "backends", backends));
	pthread_mutex_lock(&p->lock);
	memcpy(p->classes, classes, n * sizeof(*classes));
	p->n = n;
	p->have = true;
	mirror_locked(p);
	pthread_mutex_unlock(&p->lock);
}

static void on_class_error(const char *name, const char *group, const sigil_err *why, void *ctx)
{
	(void)ctx;
	emit(json_pack("{s:s, s:s, s:s, s:s}", "event", "class-error", "name", name, "group", group,
	               "message", why->msg));
}

static int get_bundle(const char *class_name, char **pem, size_t *pem_len, uint64_t *version,
                      void *ctx, sigil_err *err)
{
	probe *p = ctx;
	char path[4096];
	struct stat st;
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "%s/%s.pem", p->bundle_dir, class_name);
	if (stat(path, &st) < 0)
		return sigil_err_set(err, SIGIL_E_NOTFOUND, "no SecretClass named %s", class_name);
	r = sigil_fs_read_file(path, TRUSTSTORE_MAX_BUNDLE, &data, &len, err);
	if (r < 0)
		return r;
	*pem = (char *)data;
	*pem_len = len;
	*version = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
	return 0;
}

static void on_ts_error(const char *ns, const char *name, const sigil_err *why, void *ctx)
{
	(void)ctx;
	emit(json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "truststore-error", "ns", ns, "name",
	               name, "code", sigil_errcode_name(why->code), "message", why->msg));
}

static void on_ts_action(const char *ns, const char *name, const char *kind, const char *action,
                         void *ctx)
{
	(void)ctx;
	emit(json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "truststore", "ns", ns, "name", name,
	               "kind", kind, "action", action));
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_kick = 1;
	else
		got_stop = 1;
}

int main(int argc, char **argv)
{
	_cleanup_(kube_config_freep) kube_config *cfg = NULL;
	_cleanup_(kube_client_freep) kube_client *c = NULL;
	kube_classes *kc = NULL;
	truststore *ts = NULL;
	const char *kubeconfig = NULL;
	static probe p;
	kube_client_opts co;
	struct sigaction sa;
	long resync_ms = 0, backoff_ms = 0;
	bool compat = false;
	sigil_err err = {0};
	int64_t last_resync, t0;
	int r;

	kube_client_opts_init(&co);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--compat")) {
			compat = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--kubeconfig"))
			kubeconfig = argv[++i];
		else if (!strcmp(argv[i], "--secrets-dir"))
			p.secrets_dir = argv[++i];
		else if (!strcmp(argv[i], "--bundle-dir"))
			p.bundle_dir = argv[++i];
		else if (!strcmp(argv[i], "--resync-ms"))
			resync_ms = num_arg(argv[++i], 1, 3600000);
		else if (!strcmp(argv[i], "--backoff-ms")) {
			backoff_ms = num_arg(argv[++i], 1, 60000);
			co.backoff_base_ms = backoff_ms;
			co.backoff_max_ms = backoff_ms * 4;
		} else if (!strcmp(argv[i], "--retries"))
			co.max_retries = (unsigned)num_arg(argv[++i], 0, KUBE_MAX_RETRIES);
		else
			usage();
	}
	if (!kubeconfig)
		usage();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&p.lock, NULL);
	if ((r = kube_config_load_kubeconfig(kubeconfig, NULL, &cfg, &err)) < 0 ||
	    (r = kube_client_new(cfg, &co, &c, &err)) < 0) {
		fprintf(stderr, "error: %s\n", err.msg);
		return 1;
	}
	p.client = c;
	{
		kube_classes_opts o = {.client = c,
		                       .compat_stackable = compat,
		                       .on_change = on_change,
		                       .on_error = on_class_error,
		                       .ctx = &p,
		                       .backoff_min_ms = backoff_ms,
		                       .backoff_max_ms = backoff_ms * 4};

		r = kube_classes_start(&o, &kc, &err);
	}
	if (r == 0 && p.bundle_dir) {
		truststore_opts o = {.client = c,
		                     .compat_stackable = compat,
		                     .get_bundle = get_bundle,
		                     .on_error = on_ts_error,
		                     .on_action = on_ts_action,
		                     .ctx = &p,
		                     .resync_ms = resync_ms,
		                     .backoff_min_ms = backoff_ms,
		                     .backoff_max_ms = backoff_ms * 4};

		r = truststore_start(&o, &ts, &err);
	}
	if (r < 0) {
		fprintf(stderr, "error: %s\n", err.msg);
		kube_classes_stop(kc);
		return 1;
	}
	last_resync = sigil_mono_ms();
	while (!got_stop) {
		usleep(50000);
		if (got_kick) {
			got_kick = 0;
			truststore_kick(ts);
		}
		if (resync_ms > 0 && sigil_mono_ms() - last_resync >= resync_ms) {
			last_resync = sigil_mono_ms();
			pthread_mutex_lock(&p.lock);
			mirror_locked(&p);
			pthread_mutex_unlock(&p.lock);
		}
	}
	t0 = sigil_mono_ms();
	truststore_stop(ts);
	kube_classes_stop(kc);
	emit(json_pack("{s:s, s:I}", "event", "stopped", "stopMs",
	               (json_int_t)(sigil_mono_ms() - t0)));
	return 0;
}
