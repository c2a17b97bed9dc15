/* sigil-ca: the in-cluster CA and KDC backend.  Holds every CA key; nodes
 * send CSRs over the issuer API (gRPC over TLS, bearer tokens). */
#include <dirent.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/external.h"
#include "ca/issue.h"
#include "ca/secretclass.h"
#include "ca/server/issuer_service.h"
#include "kerberos/kadm.h"
#include "rpc/server.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/parse.h"

#define SIGIL_VERSION "0.1.0"
#define MAX_SERVER_NAMES 16
#define INTERNAL_CLASS "issuer"
#define SERVING_LIFETIME_SECS (365LL * 86400)
#define INTERNAL_CA_LIFETIME_SECS (3650LL * 86400)
#define RELOAD_INTERVAL_SECS 2
#define REFRESH_INTERVAL_SECS 60

typedef struct opts {
	const char *listen;
	const char *state_dir;
	const char *classes_dir;
	const char *tokens_file;
	const char *secrets_dir;
	const char *cluster_domain;
	const char *names[MAX_SERVER_NAMES];
	size_t n_names;
	int64_t workers;
} opts;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sigil-ca --listen HOST:PORT --state-dir DIR --tokens-file FILE [options]\n"
		"  --classes-dir DIR     SecretClass YAML files (reloaded on change); default: the 'tls' class\n"
		"  --secrets-dir DIR     Secrets referenced by classes: DIR/<namespace>/<name>/<key>\n"
		"  --server-name NAME    extra DNS name or IP for the serving certificate (repeatable)\n"
		"  --workers N           signing threads (default 4)\n"
		"  --cluster-domain D    default cluster.local\n"
		"Nodes must trust STATE_DIR/issuer-ca.crt.\n");
}

static int parse_opts(int argc, char **argv, opts *o)
{
	static const struct option lo[] = {
		{"listen", required_argument, 0, 'l'},
		{"state-dir", required_argument, 0, 's'},
		{"classes-dir", required_argument, 0, 'c'},
		{"tokens-file", required_argument, 0, 't'},
		{"secrets-dir", required_argument, 0, 'S'},
		{"server-name", required_argument, 0, 'n'},
		{"workers", required_argument, 0, 'w'},
		{"cluster-domain", required_argument, 0, 'd'},
		{"help", no_argument, 0, 'h'},
		{0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->workers = RPC_DEFAULT_HANDLER_THREADS;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 's': o->state_dir = optarg; break;
		case 'c': o->classes_dir = optarg; break;
		case 't': o->tokens_file = optarg; break;
		case 'S': o->secrets_dir = optarg; break;
		case 'd': o->cluster_domain = optarg; break;
		case 'n':
			if (o->n_names >= MAX_SERVER_NAMES) {
				fprintf(stderr, "sigil-ca: at most %d --server-name\n", MAX_SERVER_NAMES);
				return -1;
			}
			o->names[o->n_names++] = optarg;
			break;
		case 'w':
			if (sigil_parse_int64(optarg, 1, RPC_MAX_WORKERS, &o->workers) < 0) {
				fprintf(stderr, "sigil-ca: --workers must be 1..%d\n", RPC_MAX_WORKERS);
				return -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (!o->listen || !o->state_dir || !o->tokens_file) {
		fprintf(stderr, "sigil-ca: --listen, --state-dir and --tokens-file are required\n");
		usage(stderr);
		return -1;
	}
	return 0;
}

/* The serving certificate: from an internal CA that only signs sigil-ca's
 * own TLS identity; its bundle is what nodes trust. */
typedef struct serving {
	ca_store *store;
	ca_set *set;
	char *chain_pem;
	char *key_pem;
	size_t key_len;
} serving;

static void serving_free(serving *s)
{
	ca_set_free(s->set);
	ca_store_free(s->store);
	free(s->chain_pem);
	if (s->key_pem)
		sigil_freezero(s->key_pem, s->key_len);
}

static bool is_ip(const char *s)
{
	return strchr(s, ':') != NULL || strspn(s, "0123456789.") == strlen(s);
}

static int serving_setup(const opts *o, serving *s, sigil_err *err)
{
	_cleanup_free_ char *dir = sigil_path_join(o->state_dir, "internal");
	_cleanup_free_ char *bundle_path = sigil_path_join(o->state_dir, "issuer-ca.crt");
	ca_set_config sc = {
		.class_name = INTERNAL_CLASS,
		.key_alg = SIGIL_KEY_ECDSA_P256,
		.common_name = "sigil-ca issuer",
		.ca_lifetime_secs = INTERNAL_CA_LIFETIME_SECS,
		.retirement_secs = 3600,
		.auto_generate = true,
	};
	const char *dns[MAX_SERVER_NAMES + 2], *ips[MAX_SERVER_NAMES + 3];
	size_t nd = 0, ni = 0;
	char host[256] = "";
	const char *colon = strrchr(o->listen, ':');
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	STACK_OF(X509) *bundle = NULL, *one = NULL;
	char *bundle_pem = NULL;
	size_t bundle_len = 0;
	int r;

	if (!dir || !bundle_path)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = ca_store_dir_open(dir, &s->store, err);
	if (r == 0)
		r = ca_set_open(s->store, &sc, &s->set, err);
	if (r < 0)
		return r;
	dns[nd++] = "localhost";
	ips[ni++] = "127.0.0.1";
	ips[ni++] = "::1";
	if (colon && colon > o->listen) {
		snprintf(host, sizeof(host), "%.*s", (int)(colon - o->listen), o->listen);
		if (host[0] == '[') { /* [::1]:443 */
			memmove(host, host + 1, strlen(host));
			host[strcspn(host, "]")] = '\0';
		}
		if (host[0] && strcmp(host, "0.0.0.0") && strcmp(host, "::") && strcmp(host, "127.0.0.1") &&
		    strcmp(host, "::1") && strcmp(host, "localhost")) {
			if (is_ip(host))
				ips[ni++] = host;
			else
				dns[nd++] = host;
		}
	}
	for (size_t i = 0; i < o->n_names; i++) {
		if (is_ip(o->names[i]))
			ips[ni++] = o->names[i];
		else
			dns[nd++] = o->names[i];
	}
	ca_leaf_request lr = {
		.common_name = "sigil-ca",
		.dns = dns, .n_dns = nd, .ips = ips, .n_ips = ni,
		.lifetime_secs = SERVING_LIFETIME_SECS,
		.max_lifetime_secs = SERVING_LIFETIME_SECS,
		.ca_retirement_secs = 3600,
		.now = time(NULL),
	};
	const ca_authority *signer = ca_set_signer(s->set, time(NULL) + SERVING_LIFETIME_SECS);
	r = ca_key_generate(SIGIL_KEY_ECDSA_P256, &key, err);
	if (r == 0)
		r = ca_issue_from_pubkey(signer, key, &lr, &leaf, err);
	if (r == 0)
		r = ca_key_to_pkcs8_pem(key, &s->key_pem, &s->key_len, err);
	if (r == 0) {
		one = sk_X509_new_null();
		if (!one || !sk_X509_push(one, leaf))
			r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		else
			leaf = NULL;
	}
	if (r == 0) {
		size_t l;
		r = ca_certs_to_pem(one, &s->chain_pem, &l, err);
	}
	/* Nodes trust every live generation of the internal CA. */
	if (r == 0)
		r = ca_set_trust_bundle(s->set, &bundle, err);
	if (r == 0)
		r = ca_certs_to_pem(bundle, &bundle_pem, &bundle_len, err);
	if (r == 0)
		r = sigil_fs_write_atomic(bundle_path, bundle_pem, bundle_len, 0644, err);
	free(bundle_pem);
	sk_X509_pop_free(bundle, X509_free);
	sk_X509_pop_free(one, X509_free);
	X509_free(leaf);
	EVP_PKEY_free(key);
	return r;
}

static int build_service(const opts *o, ca_store *store, ca_service **ret, sigil_err *err)
{
	ca_class_config *classes = NULL;
	size_t n = 0;
	int r = 0;

	if (o->classes_dir) {
		classes = calloc(CA_SERVICE_MAX_CLASSES, sizeof(*classes));
		if (!classes)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		r = ca_secretclass_load_dir(o->classes_dir, classes, CA_SERVICE_MAX_CLASSES, &n, err);
		if (r == 0 && n == 0)
			r = sigil_err_set(err, SIGIL_E_INVALID, "%s holds no SecretClass", o->classes_dir);
	}
	if (r == 0) {
		ca_service_config cfg = {
			.store = store,
			.classes = classes,
			.n_classes = n,
			.cluster_domain = o->cluster_domain,
			.secrets_dir = o->secrets_dir,
			.external_sign = ca_external_sign,
		};
		r = ca_service_new(&cfg, ret, err);
	}
	free(classes);
	return r;
}

/* Newest mtime of the classes dir and its files: the reload trigger. */
static int64_t dir_stamp(const char *dir)
{
	struct stat st;
	int64_t best = 0;
	DIR *d = opendir(dir);
	struct dirent *de;

	if (stat(dir, &st) == 0)
		best = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	while (d && (de = readdir(d)) != NULL) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (stat(p, &st) == 0) {
			int64_t t = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
			if (t > best)
				best = t;
		}
	}
	if (d)
		closedir(d);
	return best;
}

typedef struct reloader {
	const opts *o;
	ca_store *store;
	issuer_server *srv;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
} reloader;

static void *reload_main(void *arg)
{
	reloader *rl = arg;
	int64_t stamp = rl->o->classes_dir ? dir_stamp(rl->o->classes_dir) : 0;
	time_t last_refresh = time(NULL);

	pthread_mutex_lock(&rl->lock);
	while (!rl->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += RELOAD_INTERVAL_SECS;
		pthread_cond_timedwait(&rl->cond, &rl->lock, &ts);
		if (rl->stop)
			break;
		pthread_mutex_unlock(&rl->lock);
		if (rl->o->classes_dir) {
			int64_t now_stamp = dir_stamp(rl->o->classes_dir);
			if (now_stamp != stamp) {
				sigil_err err = {0};
				ca_service *svc = NULL;
				stamp = now_stamp;
				if (build_service(rl->o, rl->store, &svc, &err) < 0) {
					log_error("classes in %s changed but do not load, keeping the old ones: %s",
						  rl->o->classes_dir, err.msg);
				} else {
					issuer_server_swap(rl->srv, svc);
					log_info("reloaded SecretClasses from %s (%zu classes)",
						 rl->o->classes_dir, ca_service_class_count(svc));
				}
			}
		}
		/* Rotation runs on a schedule, not lazily on the next request. */
		if (time(NULL) - last_refresh >= REFRESH_INTERVAL_SECS) {
			sigil_err err = {0};
			bool changed = false;
			last_refresh = time(NULL);
			pthread_rwlock_rdlock(&rl->srv->lock);
			if (ca_service_refresh(rl->srv->svc, &changed, &err) < 0)
				log_error("CA refresh failed: %s", err.msg);
			else if (changed)
				log_info("CA set changed (rotation or pruning)");
			pthread_rwlock_unlock(&rl->srv->lock);
		}
		pthread_mutex_lock(&rl->lock);
	}
	pthread_mutex_unlock(&rl->lock);
	return NULL;
}

int main(int argc, char **argv)
{
	opts o;
	sigset_t sigs;
	sigil_err err = {0};
	serving sv = {0};
	ca_store *store = NULL;
	issuer_server is = {0};
	rpc_server *srv = NULL;
	rpc_method methods[ISSUER_N_METHODS];
	reloader rl = {0};
	pthread_t rl_thread;
	bool rl_started = false;
	int rc = 1, port = 0;

	sigil_log_init_from_env("sigil-ca");
	if (parse_opts(argc, argv, &o) < 0)
		return 2;
	if (rpc_server_block_signals(&sigs, &err) < 0) {
		log_error("%s", err.msg);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	pthread_rwlock_init(&is.lock, NULL);
	if (sigil_fs_mkdir_p(o.state_dir, 0700, &err) < 0) {
		log_error("state dir: %s", err.msg);
		goto out;
	}
	if (ca_auth_tokens_open(o.tokens_file, &is.auth, &err) < 0) {
		log_error("tokens: %s", err.msg);
		goto out;
	}
	{
		_cleanup_free_ char *cadir = sigil_path_join(o.state_dir, "ca");
		if (!cadir || ca_store_dir_open(cadir, &store, &err) < 0) {
			log_error("CA store: %s", err.msg);
			goto out;
		}
	}
	if (build_service(&o, store, &is.svc, &err) < 0) {
		log_error("classes: %s", err.msg);
		goto out;
	}
	if (serving_setup(&o, &sv, &err) < 0) {
		log_error("serving certificate: %s", err.msg);
		goto out;
	}
	rpc_server_config sc = {
		.methods = methods,
		.n_methods = issuer_server_methods(&is, methods),
		.handler_threads = (unsigned)o.workers,
	};
	rpc_tls_server_config tls = {.cert_chain_pem = sv.chain_pem, .key_pem = sv.key_pem};
	if (rpc_server_new(&sc, &srv, &err) < 0 ||
	    rpc_server_listen_tcp(srv, o.listen, &tls, &port, &err) < 0 ||
	    rpc_server_start(srv, &err) < 0) {
		log_error("cannot serve on %s: %s", o.listen, err.msg);
		goto out;
	}
	sigil_wipe(sv.key_pem, sv.key_len); /* gRPC holds its own copy */
	rl.o = &o;
	rl.store = store;
	rl.srv = &is;
	pthread_mutex_init(&rl.lock, NULL);
	pthread_cond_init(&rl.cond, NULL);
	if (pthread_create(&rl_thread, NULL, reload_main, &rl) == 0)
		rl_started = true;
	log_info("sigil-ca %s serving the issuer API on %s (port %d), %zu classes, workers %lld",
		 SIGIL_VERSION, o.listen, port, ca_service_class_count(is.svc), (long long)o.workers);
	int sig = rpc_server_wait_signal(&sigs);
	log_info("got signal %d: finishing calls in flight", sig);
	rpc_server_shutdown(srv, 10000);
	rc = 0;
out:
	if (rl_started) {
		pthread_mutex_lock(&rl.lock);
		rl.stop = true;
		pthread_cond_signal(&rl.cond);
		pthread_mutex_unlock(&rl.lock);
		pthread_join(rl_thread, NULL);
	}
	rpc_server_free(srv);
	ca_service_free(is.svc);
	ca_auth_free(is.auth);
	ca_store_free(store);
	kerberos_kadm_pool_shutdown(); /* idle kadm5 helpers end with us */
	serving_free(&sv);
	pthread_rwlock_destroy(&is.lock);
	return rc;
}
