/* ca_store_probe: drives the Kubernetes Secret CA store (ca/server/
 * store_kube.h), alone and under a CA set (ca/caset.h), from the command
 * line, for tests/integration/test_ca_store_kube.sh against the fake
 * apiserver.  Each process is one "replica".
 *
 * Output: one JSON line per state a replica saw:
 *   {"event":"open|rotate|adopt|load","holder":ID,"generations":[...],
 *    "certs":[sha256 of each CA certificate's DER, hex],"version":"N"}
 * Errors go to stderr as "error (<code name>): <message>", exit status 1. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ca/authority.h"
#include "ca/caset.h"
#include "ca/key.h"
#include "ca/server/store_kube.h"
#include "kube/client.h"
#include "kube/config.h"
#include "util/mem.h"
#include "util/parse.h"

#define PROBE_MAX_ROTATIONS 10000
/* Tries of one CA set operation that loses the race to another replica
 * (SIGIL_E_EXISTS: reload, adopt, try again). */
#define PROBE_MAX_ADOPT 50

static const char *g_holder = "";
static sigil_keyalg g_alg = SIGIL_KEY_ECDSA_P256;

static void usage(void)
{
	fprintf(stderr,
		"usage: ca_store_probe --kubeconfig FILE --namespace NS --prefix P --holder ID\n"
		"                      [--retries N] [--backoff-ms N] [--alg ALG] [--no-lock 1]\n"
		"                      COMMAND ARGS...\n"
		"commands:\n"
		"  load CLASS              the raw store contents\n"
		"  open CLASS              ca_set_open (creates the first CA when empty)\n"
		"  rotate CLASS N          open, then N forced rotations\n"
		"  put CLASS GEN           a new CA record as generation GEN\n"
		"  remove CLASS GEN\n"
		"  lock CLASS HOLD_MS      lock, hold, unlock; prints wall-clock ms of both\n"
		"--no-lock 1 makes lock/unlock no-ops, so that the Secret's optimistic\n"
		"concurrency alone has to keep replicas from losing CAs.\n");
	exit(2);
}

static int fail(int r, const sigil_err *err)
{
	fprintf(stderr, "error (%s): %s\n", kube_errcode_name(r), err->msg);
	return 1;
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

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a store without locking ------------------------------------------------------ */

typedef struct nolock_store {
	ca_store base;
	ca_store *inner;
} nolock_store;

static int nolock_lock(ca_store *s, const char *c, sigil_err *e)
{
	return 0;
}
static void nolock_unlock(ca_store *s, const char *c)
{
}
static int nolock_load(ca_store *s, const char *c, ca_store_record **r, size_t *n, sigil_err *e)
{
	return ca_store_load(((nolock_store *)s)->inner, c, r, n, e);
}
static int nolock_put(ca_store *s, const char *c, const ca_store_record *r, sigil_err *e)
{
	return ca_store_put(((nolock_store *)s)->inner, c, r, e);
}
static int nolock_remove(ca_store *s, const char *c, uint64_t g, sigil_err *e)
{
	return ca_store_remove(((nolock_store *)s)->inner, c, g, e);
}
static void nolock_free(ca_store *s)
{
	if (s)
		ca_store_free(((nolock_store *)s)->inner);
	free(s);
}
static const ca_store_ops nolock_ops = {
	.lock = nolock_lock,
	.unlock = nolock_unlock,
	.load = nolock_load,
	.put = nolock_put,
	.remove = nolock_remove,
	.free = nolock_free,
};

/* ---- output ----------------------------------------------------------------------- */

static void print_fp(const unsigned char *der, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL);
	putchar('"');
	for (unsigned i = 0; i < mdlen; i++)
		printf("%02x", md[i]);
	putchar('"');
}

static void print_cert_fp(X509 *x)
{
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);

	if (len <= 0) {
		printf("\"?\"");
		return;
	}
	print_fp(der, (size_t)len);
	OPENSSL_free(der);
}

static void print_set(const char *event, const ca_set *set)
{
	printf("{\"event\":\"%s\",\"holder\":\"%s\",\"generations\":[", event, g_holder);
	for (size_t i = 0; i < set->n; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)set->generations[i]);
	printf("],\"certs\":[");
	for (size_t i = 0; i < set->n; i++) {
		if (i)
			putchar(',');
		print_cert_fp(set->cas[i]->cert);
	}
	printf("],\"version\":\"%llu\"}\n", (unsigned long long)set->version);
	fflush(stdout);
}

static void print_records(const ca_store_record *recs, size_t n)
{
	printf("{\"event\":\"load\",\"holder\":\"%s\",\"generations\":[", g_holder);
	for (size_t i = 0; i < n; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)recs[i].generation);
	printf("],\"certs\":[");
	for (size_t i = 0; i < n; i++) {
		BIO *b = BIO_new_mem_buf(recs[i].cert_pem, (int)recs[i].cert_len);
		X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

		if (i)
			putchar(',');
		if (x)
			print_cert_fp(x);
		else
			printf("\"?\"");
		X509_free(x);
		BIO_free(b);
	}
	printf("]}\n");
	fflush(stdout);
}

/* ---- commands ---------------------------------------------------------------------- */

static void set_config(const char *class_name, ca_set_config *cfg)
{
	*cfg = (ca_set_config){
		.class_name = class_name,
		.key_alg = g_alg,
		.ca_lifetime_secs = 365LL * 86400,
		.retirement_secs = 3600,
		.auto_generate = true,
	};
}

/* ca_set_open; a replica that lost the race for the first CA
 * (SIGIL_E_EXISTS) opens again and adopts the winner's. */
static int open_set(ca_store *store, const char *class_name, ca_set **ret, sigil_err *err)
{
	ca_set_config cfg;
	int r = 0;

	set_config(class_name, &cfg);
	for (int i = 0; i < PROBE_MAX_ADOPT; i++) {
		sigil_err_clear(err);
		r = ca_set_open(store, &cfg, ret, err);
		if (r != SIGIL_E_EXISTS)
			return r;
		fprintf(stderr, "lost the race for the first CA, adopting: %s\n", err->msg);
	}
	return r;
}

static int cmd_rotate(ca_store *store, const char *class_name, long n, sigil_err *err)
{
	ca_set *set = NULL;
	int r = open_set(store, class_name, &set, err);

	if (r < 0)
		return r;
	print_set("open", set);
	for (long i = 0; i < n; i++) {
		int tries = 0;

		for (;;) {
			r = ca_set_rotate_now(set, err);
			if (r != SIGIL_E_EXISTS || ++tries >= PROBE_MAX_ADOPT)
				break;
			/* Another replica wrote the generation we meant to: adopt
			 * it (refresh), then rotate again on top of it. */
			fprintf(stderr, "generation taken by another replica, adopting: %s\n",
				err->msg);
			bool changed = false;
			sigil_err_clear(err);
			r = ca_set_refresh(set, &changed, err);
			if (r < 0)
				break;
			print_set("adopt", set);
		}
		if (r < 0)
			break;
		print_set("rotate", set);
	}
	ca_set_free(set);
	return r;
}

static int make_record(uint64_t gen, ca_store_record *rec, sigil_err *err)
{
	ca_create_opts opts = {.alg = g_alg, .common_name = "probe CA", .lifetime_secs = 86400};
	ca_authority *ca = NULL;
	STACK_OF(X509) *one = NULL;
	int r;

	r = ca_authority_create(&opts, &ca, err);
	if (r < 0)
		return r;
	one = sk_X509_new_null();
	if (!one || !sk_X509_push(one, ca->cert)) {
		sk_X509_free(one);
		ca_authority_free(ca);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	X509_up_ref(ca->cert);
	memset(rec, 0, sizeof(*rec));
	rec->generation = gen;
	r = ca_certs_to_pem(one, &rec->cert_pem, &rec->cert_len, err);
	if (r == 0)
		r = ca_key_to_pkcs8_pem(ca->key, &rec->key_pem, &rec->key_len, err);
	if (r == 0) {
		printf("{\"event\":\"put\",\"holder\":\"%s\",\"generations\":[%llu],\"certs\":[",
		       g_holder, (unsigned long long)gen);
		print_cert_fp(ca->cert);
		printf("]}\n");
		fflush(stdout);
	}
	sk_X509_pop_free(one, X509_free);
	ca_authority_free(ca);
	return r;
}

static int run(ca_store *store, int argc, char **argv)
{
	sigil_err err = {0};
	const char *cmd, *cls;
	int r;

	if (argc < 2)
		usage();
	cmd = argv[0];
	cls = argv[1];
	if (!strcmp(cmd, "load")) {
		ca_store_record *recs = NULL;
		size_t n = 0;
		r = ca_store_load(store, cls, &recs, &n, &err);
		if (r < 0)
			return fail(r, &err);
		print_records(recs, n);
		ca_store_records_free(recs, n);
		return 0;
	}
	if (!strcmp(cmd, "open")) {
		ca_set *set = NULL;
		r = open_set(store, cls, &set, &err);
		if (r < 0)
			return fail(r, &err);
		print_set("open", set);
		ca_set_free(set);
		return 0;
	}
	if (!strcmp(cmd, "rotate") && argc == 3) {
		r = cmd_rotate(store, cls, num_arg(argv[2], 0, PROBE_MAX_ROTATIONS), &err);
		return r < 0 ? fail(r, &err) : 0;
	}
	if (!strcmp(cmd, "put") && argc == 3) {
		ca_store_record rec;
		r = make_record((uint64_t)num_arg(argv[2], 1, INT64_MAX), &rec, &err);
		if (r < 0)
			return fail(r, &err);
		r = ca_store_put(store, cls, &rec, &err);
		ca_store_record_clear(&rec);
		return r < 0 ? fail(r, &err) : 0;
	}
	if (!strcmp(cmd, "remove") && argc == 3) {
		r = ca_store_remove(store, cls, (uint64_t)num_arg(argv[2], 0, INT64_MAX), &err);
		return r < 0 ? fail(r, &err) : 0;
	}
	if (!strcmp(cmd, "lock") && argc == 3) {
		long hold = num_arg(argv[2], 0, 600000);
		struct timespec ts = {hold / 1000, (hold % 1000) * 1000000L};
		int64_t t0, t1;

		r = ca_store_lock(store, cls, &err);
		if (r < 0)
			return fail(r, &err);
		t0 = wall_ms();
		nanosleep(&ts, NULL);
		t1 = wall_ms();
		ca_store_unlock(store, cls);
		printf("{\"event\":\"lock\",\"holder\":\"%s\",\"from\":%lld,\"to\":%lld}\n", g_holder,
		       (long long)t0, (long long)t1);
		return 0;
	}
	usage();
	return 2;
}

int main(int argc, char **argv)
{
	_cleanup_(kube_config_freep) kube_config *cfg = NULL;
	_cleanup_(kube_client_freep) kube_client *c = NULL;
	const char *kubeconfig = NULL, *ns = NULL, *prefix = NULL, *holder = NULL;
	bool nolock = false;
	ca_store *store = NULL;
	kube_client_opts o;
	sigil_err err = {0};
	int i, r;

	signal(SIGPIPE, SIG_IGN);
	kube_client_opts_init(&o);
	for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--kubeconfig"))
			kubeconfig = argv[i + 1];
		else if (!strcmp(argv[i], "--namespace"))
			ns = argv[i + 1];
		else if (!strcmp(argv[i], "--prefix"))
			prefix = argv[i + 1];
		else if (!strcmp(argv[i], "--holder"))
			holder = argv[i + 1];
		else if (!strcmp(argv[i], "--retries"))
			o.max_retries = (unsigned)num_arg(argv[i + 1], 0, KUBE_MAX_RETRIES);
		else if (!strcmp(argv[i], "--backoff-ms")) {
			o.backoff_base_ms = num_arg(argv[i + 1], 0, 60000);
			o.backoff_max_ms = o.backoff_base_ms * 8;
		} else if (!strcmp(argv[i], "--alg")) {
			if (ca_keyalg_parse(argv[i + 1], &g_alg) < 0)
				usage();
		} else if (!strcmp(argv[i], "--no-lock"))
			nolock = num_arg(argv[i + 1], 0, 1) == 1;
		else
			usage();
	}
	if (i >= argc || !kubeconfig || !ns || !prefix || !holder)
		usage();
	g_holder = holder;
	r = kube_config_load_kubeconfig(kubeconfig, NULL, &cfg, &err);
	if (r < 0)
		return fail(r, &err);
	r = kube_client_new(cfg, &o, &c, &err);
	if (r < 0)
		return fail(r, &err);
	r = ca_store_kube_open(c, ns, prefix, holder, &store, &err);
	if (r < 0)
		return fail(r, &err);
	if (nolock) {
		nolock_store *nl = calloc(1, sizeof(*nl));
		if (!nl) {
			ca_store_free(store);
			return 1;
		}
		nl->base.ops = &nolock_ops;
		nl->inner = store;
		store = &nl->base;
	}
	r = run(store, argc - i, argv + i);
	ca_store_free(store);
	return r;
}
