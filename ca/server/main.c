/* sigil-ca: the in-cluster CA and KDC backend.  Holds every CA key; nodes
 * send CSRs over the issuer API (gRPC over TLS, bearer tokens). */
#include <dirent.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca/external.h"
#include "ca/issue.h"
#include "ca/secretclass.h"
#include "ca/server/auth_kube.h"
#include "ca/server/ca_metrics.h"
#include "ca/server/kube_classes.h"
#include "ca/server/kube_secrets.h"
#include "ca/server/truststore.h"
#include "ca/server/store_kube.h"
#include "ca/server/issuer_service.h"
#include "kerberos/kadm.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/jsonmem.h"
#include "metrics/httpd.h"
#include "metrics/webhook.h"
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
#define MAX_REFRESH_INTERVAL_SECS 86400
/* Alerts: the newest CA generation of a class expiring within this long
 * (or within a quarter of its lifetime, if that is shorter) means rotation
 * is not happening. */
#define CA_EXPIRY_ALERT_SECS (7LL * 86400)
/* A firing alert is re-sent at most this often (Alertmanager resolves
 * alerts it has not heard of for a while). */
#define ALERT_RESEND_SECS 300
/* How long startup waits for the first list of SecretClasses. */
#define CLASSES_READY_WAIT_MS 30000
/* Where nodes find the issuer CA in a cluster (mounted by sigil-csi). */
#define BUNDLE_CONFIGMAP "sigil-ca-bundle"
#define BUNDLE_CONFIGMAP_KEY "ca.crt"
#define BUNDLE_UPDATE_ATTEMPTS 5
/* --ca-store secret: Secrets and Leases "sigil-ca-<class>[-lock]". */
#define CA_SECRET_PREFIX "sigil-ca"

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
	/* Kubernetes (issue 6) */
	const char *kubeconfig;
	bool in_cluster;
	const char *token_audience;
	const char *namespace_;
	const char *node_accounts[CA_AUTH_KUBE_MAX_ACCOUNTS];
	size_t n_node_accounts;
	const char *admin_accounts[CA_AUTH_KUBE_MAX_ACCOUNTS];
	size_t n_admin_accounts;
	bool stackable_compat;
	bool store_secret; /* --ca-store secret */
	int64_t refresh_secs; /* CA rotation / store re-read schedule */
	/* Observability (issue 7) */
	const char *metrics_addr;
	const char *alert_webhook;
} opts;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sigil-ca --listen HOST:PORT --state-dir DIR\n"
		"                (--tokens-file FILE | --kubeconfig FILE | --in-cluster) [options]\n"
		"  --tokens-file FILE    static bearer tokens (tried first when TokenReview is on too)\n"
		"  --kubeconfig FILE     Kubernetes API from a kubeconfig: TokenReview authentication,\n"
		"                        pods resolved and checked against the caller's node\n"
		"  --in-cluster          the same with the pod's service account\n"
		"  --token-audience A    audience of the nodes' projected tokens (default sigil-ca)\n"
		"  --node-service-account NS/NAME  may act as a node (repeatable;\n"
		"                        default NAMESPACE/sigil-csi)\n"
		"  --admin-service-account NS/NAME may rotate CAs and read status (repeatable)\n"
		"  --namespace NS        sigil-ca's own namespace (default: from the configuration)\n"
		"  --classes-dir DIR     SecretClass YAML files (reloaded on change); default: the 'tls' class\n"
		"  --secrets-dir DIR     Secrets referenced by classes: DIR/<namespace>/<name>/<key>\n"
		"  --server-name NAME    extra DNS name or IP for the serving certificate (repeatable)\n"
		"  --workers N           signing threads (default 4)\n"
		"  --cluster-domain D    default cluster.local\n"
		"  --stackable-compat    also serve Stackable's secrets.stackable.tech SecretClasses\n"
		"                        and TrustStores\n"
		"  --metrics-addr H:P    Prometheus /metrics, /healthz and /readyz (plain HTTP)\n"
		"  --refresh-interval S  re-read the CA store, rotate and prune every S seconds (default 60)\n"
		"  --alert-webhook URL   Alertmanager (API v2): failed rotations, CAs expiring without\n"
		"                        a successor\n"
		"  --ca-store dir|secret where CA keys live: STATE_DIR/ca (default) or Secrets\n"
		"                        " CA_SECRET_PREFIX "-<class> in NAMESPACE, shared by replicas\n"
		"Nodes must trust STATE_DIR/issuer-ca.crt (in a cluster also published in\n"
		"ConfigMap " BUNDLE_CONFIGMAP " key " BUNDLE_CONFIGMAP_KEY " of its namespace).\n");
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
		{"kubeconfig", required_argument, 0, 'K'},
		{"in-cluster", no_argument, 0, 'I'},
		{"token-audience", required_argument, 0, 'A'},
		{"node-service-account", required_argument, 0, 'N'},
		{"admin-service-account", required_argument, 0, 'a'},
		{"namespace", required_argument, 0, 'm'},
		{"stackable-compat", no_argument, 0, 'C'},
		{"metrics-addr", required_argument, 0, 'M'},
		{"ca-store", required_argument, 0, 'T'},
		{"refresh-interval", required_argument, 0, 'R'},
		{"alert-webhook", required_argument, 0, 'W'},
		{"help", no_argument, 0, 'h'},
		{0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->workers = RPC_DEFAULT_HANDLER_THREADS;
	o->refresh_secs = REFRESH_INTERVAL_SECS;
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
		case 'K': o->kubeconfig = optarg; break;
		case 'I': o->in_cluster = true; break;
		case 'A':
			if (!optarg[0] || strlen(optarg) > CA_AUTH_KUBE_MAX_AUDIENCE) {
				fprintf(stderr, "sigil-ca: --token-audience must be 1..%d bytes\n",
					CA_AUTH_KUBE_MAX_AUDIENCE);
				return -1;
			}
			o->token_audience = optarg;
			break;
		case 'N':
		case 'a': {
			const char **list = c == 'N' ? o->node_accounts : o->admin_accounts;
			size_t *n = c == 'N' ? &o->n_node_accounts : &o->n_admin_accounts;

			if (!ca_auth_kube_account_ok(optarg)) {
				fprintf(stderr, "sigil-ca: '%s' is not NAMESPACE/NAME\n", optarg);
				return -1;
			}
			if (*n >= CA_AUTH_KUBE_MAX_ACCOUNTS) {
				fprintf(stderr, "sigil-ca: at most %d service accounts of a kind\n",
					CA_AUTH_KUBE_MAX_ACCOUNTS);
				return -1;
			}
			list[(*n)++] = optarg;
			break;
		}
		case 'm': o->namespace_ = optarg; break;
		case 'C': o->stackable_compat = true; break;
		case 'M': o->metrics_addr = optarg; break;
		case 'W': o->alert_webhook = optarg; break;
		case 'R':
			if (sigil_parse_int64(optarg, 1, MAX_REFRESH_INTERVAL_SECS, &o->refresh_secs) < 0) {
				fprintf(stderr, "sigil-ca: --refresh-interval must be 1..%d seconds\n",
					MAX_REFRESH_INTERVAL_SECS);
				return -1;
			}
			break;
		case 'T':
			if (!strcmp(optarg, "secret")) {
				o->store_secret = true;
			} else if (strcmp(optarg, "dir")) {
				fprintf(stderr, "sigil-ca: --ca-store is 'dir' or 'secret', not '%s'\n",
					optarg);
				return -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (!o->listen || !o->state_dir) {
		fprintf(stderr, "sigil-ca: --listen and --state-dir are required\n");
		usage(stderr);
		return -1;
	}
	if (o->store_secret && !o->kubeconfig && !o->in_cluster) {
		fprintf(stderr, "sigil-ca: --ca-store secret needs --kubeconfig or --in-cluster\n");
		return -1;
	}
	if (o->kubeconfig && o->in_cluster) {
		fprintf(stderr, "sigil-ca: --kubeconfig and --in-cluster exclude each other\n");
		return -1;
	}
	/* Without a Kubernetes API the tokens file is the only way in. */
	if (!o->tokens_file && !o->kubeconfig && !o->in_cluster) {
		fprintf(stderr, "sigil-ca: --tokens-file is required without --kubeconfig or "
				"--in-cluster\n");
		usage(stderr);
		return -1;
	}
	if (!o->kubeconfig && !o->in_cluster &&
	    (o->token_audience || o->namespace_ || o->n_node_accounts || o->n_admin_accounts)) {
		fprintf(stderr, "sigil-ca: --token-audience, --namespace and --*-service-account "
				"need --kubeconfig or --in-cluster\n");
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

/* shared: the CA store of the replicas (--ca-store secret), so that every
 * replica serves under the same internal CA and nodes trust one bundle;
 * NULL: a directory store under the state dir. */
static int serving_setup(const opts *o, ca_store *shared, serving *s, sigil_err *err)
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
	if (shared)
		r = 0;
	else
		r = ca_store_dir_open(dir, &s->store, err);
	if (r == 0)
		r = ca_set_open(shared ? shared : s->store, &sc, &s->set, err);
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

/* ---- Kubernetes ------------------------------------------------------------------ */

/* The API client, or NULL without --kubeconfig / --in-cluster.  One
 * client for the process: everything that talks to the API gets it. */
static int kube_setup(const opts *o, kube_client **ret, const char **ret_ns, sigil_err *err)
{
	char probe[KUBE_MAX_NAME + 16];
	kube_client_opts ko;
	kube_client *kc = NULL;
	const char *ns;
	int r;

	kube_client_opts_init(&ko);
	/* A node waits on us while we ask the API: fail over to UNAVAILABLE
	 * (the node retries) rather than sit out the default backoff. */
	ko.max_retries = 3;
	ko.timeout_ms = 10000;
	ko.connect_timeout_ms = 5000;
	r = kube_client_open(o->kubeconfig, o->in_cluster, &ko, &kc, NULL, err);
	if (r < 0 || !kc) {
		*ret = NULL;
		return r;
	}
	ns = o->namespace_ ? o->namespace_ : kube_client_namespace(kc);
	snprintf(probe, sizeof(probe), "%s/x", ns);
	if (!ca_auth_kube_account_ok(probe)) {
		kube_client_free(kc);
		return sigil_err_set(err, SIGIL_E_INVALID, "namespace '%s' is not a DNS label", ns);
	}
	*ret = kc;
	*ret_ns = ns;
	return 0;
}

/* Tokens file first (standalone, tests, break-glass), then TokenReview. */
static int auth_setup(const opts *o, kube_client *kc, const char *ns, ca_auth **ret,
		      sigil_err *err)
{
	ca_auth *members[2];
	size_t n = 0;
	int r;

	if (o->tokens_file) {
		r = ca_auth_tokens_open(o->tokens_file, &members[n], err);
		if (r < 0)
			return sigil_err_prefix(err, "tokens: ");
		n++;
	}
	if (kc) {
		ca_auth_kube_config kcfg = {
			.client = kc,
			.audience = o->token_audience,
			.node_accounts = o->node_accounts,
			.n_node_accounts = o->n_node_accounts,
			.admin_accounts = o->admin_accounts,
			.n_admin_accounts = o->n_admin_accounts,
			.namespace_ = ns,
		};
		r = ca_auth_kube_new(&kcfg, &members[n], err);
		if (r < 0) {
			for (size_t i = 0; i < n; i++)
				ca_auth_free(members[i]);
			return sigil_err_prefix(err, "TokenReview: ");
		}
		n++;
	}
	if (n == 1) {
		*ret = members[0];
		return 0;
	}
	return ca_auth_chain_new(members, n, ret, err);
}

typedef struct bundle_ctx {
	const char *pem;
} bundle_ctx;

static int bundle_mutate(json_t *obj, void *ctx, sigil_err *err)
{
	const bundle_ctx *b = ctx;
	json_t *data = json_object_get(obj, "data");
	const json_t *cur = json_object_get(data, BUNDLE_CONFIGMAP_KEY);

	if (json_is_string(cur) && !strcmp(json_string_value(cur), b->pem))
		return 1; /* already current */
	if (!json_is_object(data)) {
		data = json_object();
		if (!data || json_object_set_new(obj, "data", data) < 0)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	if (json_object_set_new(data, BUNDLE_CONFIGMAP_KEY, json_string(b->pem)) < 0)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	return 0;
}

/* Publishes STATE/issuer-ca.crt as ConfigMap sigil-ca-bundle (create or
 * update), so that nodes can mount what they must trust. */
static int bundle_publish(kube_client *kc, const char *ns, const char *state_dir, sigil_err *err)
{
	_cleanup_free_ char *path = sigil_path_join(state_dir, "issuer-ca.crt");
	_cleanup_free_ uint8_t *pem = NULL;
	json_t *cm;
	size_t len = 0;
	bundle_ctx b;
	int r;

	if (!path)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = sigil_fs_read_file(path, SIGIL_MAX_FILE_SIZE, &pem, &len, err);
	if (r < 0)
		return r;
	if (memchr(pem, '\0', len))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s holds a NUL byte", path);
	{
		char *z = realloc(pem, len + 1);

		if (!z)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		z[len] = '\0';
		pem = (uint8_t *)z;
	}
	b.pem = (const char *)pem;
	r = kube_client_update_retry(kc, &kube_res_configmaps, ns, BUNDLE_CONFIGMAP,
				     BUNDLE_UPDATE_ATTEMPTS, bundle_mutate, &b, NULL, err);
	if (r != SIGIL_E_NOTFOUND)
		return r;
	cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}}, s:{s:s}}", "apiVersion", "v1",
		       "kind", "ConfigMap", "metadata", "name", BUNDLE_CONFIGMAP, "namespace", ns,
		       "labels", "app.kubernetes.io/name", "sigil-ca",
		       "app.kubernetes.io/managed-by", "sigil-ca", "data", BUNDLE_CONFIGMAP_KEY,
		       b.pem);
	if (!cm)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = kube_client_create(kc, &kube_res_configmaps, ns, cm, NULL, err);
	json_decref(cm);
	/* Another replica made it between our GET and POST: update that. */
	if (r == SIGIL_E_EXISTS)
		r = kube_client_update_retry(kc, &kube_res_configmaps, ns, BUNDLE_CONFIGMAP,
					     BUNDLE_UPDATE_ATTEMPTS, bundle_mutate, &b, NULL, err);
	return r;
}

static int build_service_with(const opts *o, ca_store *store, const ca_class_config *classes,
			      size_t n, ca_service **ret, sigil_err *err)
{
	ca_service_config cfg = {
		.store = store,
		.classes = classes,
		.n_classes = n,
		.cluster_domain = o->cluster_domain,
		.secrets_dir = o->secrets_dir,
		.external_sign = ca_external_sign,
	};

	return ca_service_new(&cfg, ret, err);
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
	if (r == 0)
		r = build_service_with(o, store, classes, n, ret, err);
	free(classes);
	return r;
}

/* ---- SecretClasses and TrustStores from the Kubernetes API (issue 6) ------ */

typedef struct cluster_classes {
	const opts *o;
	ca_store *store;
	issuer_server *srv;
	kube_client *kube;
	truststore *ts;          /* kicked when classes or bundles change; may be NULL */
	pthread_mutex_t lock;    /* guards cur/n_cur and serialises apply */
	ca_class_config *cur;    /* the last class set the API delivered */
	size_t n_cur;
	bool have;
	/* The last set did not build for a passing reason (the API down
	 * while a CA was loaded): the periodic apply tries again. */
	bool retry;
	/* The last mirror error, logged at warn once rather than on every
	 * refresh. */
	char last_sync_err[SIGIL_ERR_MSG_MAX];
} cluster_classes;

/* Errors that say "try again later" rather than "this class is wrong". */
static bool err_transient(int r)
{
	return r == SIGIL_E_UNAVAIL || r == SIGIL_E_TIMEOUT || r == SIGIL_E_BUSY || r == SIGIL_E_NOMEM;
}

/* A service over the classes that open.  One class that does not (its CA
 * Secret not created yet, a broken company CA) is left out and logged:
 * it must not hold every other class change back.  A passing failure (the
 * API down while a CA set loads) fails the whole build instead, so that
 * no class is dropped for it. */
static int build_usable_service(cluster_classes *cc, ca_service **ret, sigil_err *err)
{
	_cleanup_free_ ca_class_config *ok = NULL;
	size_t n_ok = 0;
	int r = build_service_with(cc->o, cc->store, cc->cur, cc->n_cur, ret, err);

	if (r == 0 || err_transient(r) || cc->n_cur == 0)
		return r;
	ok = calloc(cc->n_cur, sizeof(*ok));
	if (!ok)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (size_t i = 0; i < cc->n_cur; i++) {
		ca_service *one = NULL;
		sigil_err e = {0};
		int r1 = build_service_with(cc->o, cc->store, &cc->cur[i], 1, &one, &e);

		ca_service_free(one);
		if (r1 == 0) {
			ok[n_ok++] = cc->cur[i];
		} else if (err_transient(r1)) {
			if (err)
				*err = e;
			return r1;
		} else {
			log_error("SecretClass %s is left out: %s", cc->cur[i].name, e.msg);
		}
	}
	/* None opens: an empty list would mean the built-in default. */
	if (n_ok == 0)
		return r;
	return build_service_with(cc->o, cc->store, ok, n_ok, ret, err);
}

/* Mirrors the Secrets the classes reference, builds a service over them
 * and swaps it in.  A set that does not build keeps the old service. */
static void cluster_classes_apply(cluster_classes *cc, bool only_if_secrets_changed)
{
	kube_secrets_stats st = {0};
	ca_service *svc = NULL;
	sigil_err err = {0};
	int r;

	pthread_mutex_lock(&cc->lock);
	if (!cc->have)
		goto out;
	if (kube_secrets_sync(cc->kube, cc->o->secrets_dir, cc->cur, cc->n_cur, &st, &err) < 0) {
		if (strcmp(err.msg, cc->last_sync_err)) {
			log_warn("Secrets referenced by SecretClasses: %s", err.msg);
			snprintf(cc->last_sync_err, sizeof(cc->last_sync_err), "%s", err.msg);
		} else {
			log_debug("Secrets referenced by SecretClasses: %s", err.msg);
		}
	} else {
		cc->last_sync_err[0] = '\0';
	}
	if (only_if_secrets_changed && !cc->retry && !st.files_written && !st.files_removed &&
	    !st.dirs_removed)
		goto out;
	err = (sigil_err){0};
	r = build_usable_service(cc, &svc, &err);
	cc->retry = r < 0 && err_transient(r);
	if (r < 0) {
		log_error("SecretClasses from the API do not load, keeping the old ones%s: %s",
			  cc->retry ? " (will retry)" : "", err.msg);
		goto out;
	}
	issuer_server_swap(cc->srv, svc);
	log_info("SecretClasses from the API: %zu classes in force", ca_service_class_count(svc));
	if (cc->ts)
		truststore_kick(cc->ts);
out:
	pthread_mutex_unlock(&cc->lock);
}

static void on_classes(const ca_class_config *classes, size_t n, void *ctx)
{
	cluster_classes *cc = ctx;
	ca_class_config *copy = n ? calloc(n, sizeof(*copy)) : NULL;

	if (n && !copy) {
		log_error("SecretClasses changed but there is no memory to apply them");
		return;
	}
	if (n)
		memcpy(copy, classes, n * sizeof(*copy));
	pthread_mutex_lock(&cc->lock);
	free(cc->cur);
	cc->cur = copy;
	cc->n_cur = n;
	cc->have = true;
	pthread_mutex_unlock(&cc->lock);
	cluster_classes_apply(cc, false);
}

static void on_class_error(const char *name, const char *group, const sigil_err *why, void *ctx)
{
	log_error("SecretClass %s (%s) is left out: %s", *name ? name : "(unnamed)", group, why->msg);
}

/* Every replica runs the TrustStore controller.  One whose CA set is
 * behind the shared store (another replica rotated, its own periodic
 * refresh has not come yet) would write its older bundle over the newer
 * one, the other replica would write the newer one back on the watch
 * event, and so on: hundreds of writes a second until the refresh, and
 * clients reading the old bundle meanwhile.  So the store is re-read
 * before a bundle is handed out, at most once per TS_STORE_REREAD_MS. */
#define TS_STORE_REREAD_MS 1000

typedef struct ts_bundle_ctx {
	issuer_server *is;
	int64_t last_reread_ms; /* only the controller's one worker thread uses it */
} ts_bundle_ctx;

static int64_t monotonic_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The TrustStore controller's view of a class's bundle. */
static int truststore_bundle(const char *class_name, char **pem, size_t *pem_len, uint64_t *version,
			     void *ctx, sigil_err *err)
{
	ts_bundle_ctx *tc = ctx;
	issuer_server *is = tc->is;
	STACK_OF(X509) *certs = NULL;
	int64_t now = monotonic_ms();
	int r;

	pthread_rwlock_rdlock(&is->lock);
	if (now - tc->last_reread_ms >= TS_STORE_REREAD_MS) {
		sigil_err e = {0};
		bool changed = false;

		tc->last_reread_ms = now;
		/* A store that cannot be read now: the bundle in memory is
		 * still the best there is; the reloader logs the failure. */
		if (ca_service_refresh(is->svc, &changed, &e) < 0)
			log_debug("TrustStores: re-reading the CA store: %s", e.msg);
	}
	r = ca_service_trust_bundle(is->svc, class_name, &certs, version, err);
	pthread_rwlock_unlock(&is->lock);
	if (r == 0)
		r = truststore_pem_from_certs(certs, pem, pem_len, err);
	sk_X509_pop_free(certs, X509_free);
	return r;
}

static void on_truststore_error(const char *ns, const char *name, const sigil_err *why, void *ctx)
{
	log_warn("TrustStore %s/%s: %s", ns, name, why->msg);
}

static void on_truststore_action(const char *ns, const char *name, const char *kind,
				 const char *action, void *ctx)
{
	log_info("TrustStore %s/%s: %s %s", ns, name, action, kind);
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
	kube_client *kube;  /* NULL standalone */
	const char *kube_ns;
	bool bundle_published;
	cluster_classes *cc; /* SecretClasses from the API; NULL otherwise */
	truststore *ts;      /* may be NULL */
	metrics_webhook *webhook; /* may be NULL */
	time_t refresh_alert_at;  /* last SigilCARotationFailed sent; 0: not firing */
	time_t expiry_alert_at[CA_SERVICE_MAX_CLASSES];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
} reloader;

static void send_alert(metrics_webhook *wh, const char *name, const char *severity,
		       const char *class_name, const char *summary, const char *description,
		       bool resolved)
{
	metrics_label labels[] = {
		{"alertname", name},
		{"severity", severity},
		{"component", "sigil-ca"},
		{"class", class_name ? class_name : ""},
	};
	metrics_alert a = {
		.labels = labels,
		.n_labels = class_name ? 4 : 3,
		.summary = summary,
		.description = description,
		.ends_at = resolved ? time(NULL) : 0,
	};
	sigil_err err = {0};

	if (wh && metrics_webhook_send(wh, &a, &err) < 0)
		log_warn("alert %s not sent: %s", name, err.msg);
}

/* Rotation failing, or a class's newest CA expiring soon (rotation should
 * have made a successor at half its life). */
static void check_alerts(reloader *rl, int refresh_r, const sigil_err *refresh_err)
{
	ca_class_status *cs;
	time_t now = time(NULL);
	size_t n;

	if (!rl->webhook)
		return;
	if (refresh_r < 0) {
		if (!rl->refresh_alert_at || now - rl->refresh_alert_at >= ALERT_RESEND_SECS) {
			send_alert(rl->webhook, "SigilCARotationFailed", "critical", NULL,
				   "sigil-ca cannot rotate or re-read its CAs", refresh_err->msg, false);
			rl->refresh_alert_at = now;
		}
	} else if (rl->refresh_alert_at) {
		send_alert(rl->webhook, "SigilCARotationFailed", "critical", NULL,
			   "sigil-ca cannot rotate or re-read its CAs", "resolved", true);
		rl->refresh_alert_at = 0;
	}
	if (!(cs = malloc(sizeof(*cs))))
		return;
	pthread_rwlock_rdlock(&rl->srv->lock);
	n = ca_service_class_count(rl->srv->svc);
	for (size_t i = 0; i < n && i < CA_SERVICE_MAX_CLASSES; i++) {
		if (ca_service_status(rl->srv->svc, i, cs, NULL) < 0 || !cs->n_gens)
			continue;
		time_t newest = cs->gens[cs->n_gens - 1].not_after;
		time_t life = newest - cs->gens[cs->n_gens - 1].not_before;
		/* Generated CAs get a successor at half their active life: a
		 * quarter left means rotation is not happening.  A week is
		 * enough warning for long-lived (and imported) ones. */
		time_t limit = life / 4 < CA_EXPIRY_ALERT_SECS ? life / 4 : CA_EXPIRY_ALERT_SECS;
		char desc[256];
		if (newest - now < limit) {
			if (!rl->expiry_alert_at[i] || now - rl->expiry_alert_at[i] >= ALERT_RESEND_SECS) {
				snprintf(desc, sizeof(desc),
					 "the newest CA of class %s expires in %lld s and has no successor",
					 cs->name, (long long)(newest - now));
				send_alert(rl->webhook, "SigilCAExpiringSoon", "critical", cs->name,
					   "a CA expires soon and no newer generation exists", desc, false);
				rl->expiry_alert_at[i] = now;
			}
		} else if (rl->expiry_alert_at[i]) {
			send_alert(rl->webhook, "SigilCAExpiringSoon", "critical", cs->name,
				   "a CA expires soon and no newer generation exists", "resolved", true);
			rl->expiry_alert_at[i] = 0;
		}
	}
	pthread_rwlock_unlock(&rl->srv->lock);
	free(cs);
}

/* A value that changes whenever any class's trust bundle does (scheduled
 * rotation, pruning, or a Rotate call between two checks). */
static uint64_t bundles_stamp(issuer_server *is)
{
	ca_class_status *cs = malloc(sizeof(*cs));
	uint64_t h = 1469598103934665603ULL;

	if (!cs)
		return 0;
	pthread_rwlock_rdlock(&is->lock);
	for (size_t i = 0, n = ca_service_class_count(is->svc); i < n; i++)
		if (ca_service_status(is->svc, i, cs, NULL) == 0)
			h = (h ^ cs->bundle_version) * 1099511628211ULL;
	pthread_rwlock_unlock(&is->lock);
	free(cs);
	return h;
}

static void *reload_main(void *arg)
{
	reloader *rl = arg;
	int64_t stamp = rl->o->classes_dir ? dir_stamp(rl->o->classes_dir) : 0;
	time_t last_refresh = time(NULL);
	uint64_t stamp_bundles = rl->ts ? bundles_stamp(rl->srv) : 0;

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
		if (time(NULL) - last_refresh >= rl->o->refresh_secs) {
			if (rl->kube && !rl->bundle_published) {
				sigil_err err = {0};

				if (bundle_publish(rl->kube, rl->kube_ns, rl->o->state_dir, &err) == 0) {
					rl->bundle_published = true;
					log_info("published the issuer CA in ConfigMap %s/%s",
						 rl->kube_ns, BUNDLE_CONFIGMAP);
				} else {
					log_debug("ConfigMap %s/%s: %s", rl->kube_ns,
						  BUNDLE_CONFIGMAP, err.msg);
				}
			}
			sigil_err err = {0};
			bool changed = false;
			last_refresh = time(NULL);
			pthread_rwlock_rdlock(&rl->srv->lock);
			int rr = ca_service_refresh(rl->srv->svc, &changed, &err);
			if (rr < 0)
				log_error("CA refresh failed: %s", err.msg);
			else if (changed)
				log_info("CA set changed (rotation or pruning)");
			pthread_rwlock_unlock(&rl->srv->lock);
			check_alerts(rl, rr, &err);
			if (rl->ts) {
				uint64_t now_bundles = bundles_stamp(rl->srv);
				if (changed || now_bundles != stamp_bundles)
					truststore_kick(rl->ts);
				stamp_bundles = now_bundles;
			}
			/* Referenced Secrets change without the classes changing
			 * (a company CA renewed): re-mirror, rebuild if they did. */
			if (rl->cc)
				cluster_classes_apply(rl->cc, true);
		}
		pthread_mutex_lock(&rl->lock);
	}
	pthread_mutex_unlock(&rl->lock);
	return NULL;
}

/* /readyz: every autoTls class has a usable CA. */
static bool ready_cb(void *userdata, char *reason, size_t reason_size)
{
	issuer_server *is = userdata;
	bool ok;

	pthread_rwlock_rdlock(&is->lock);
	ok = is->svc && ca_service_ready(is->svc);
	pthread_rwlock_unlock(&is->lock);
	if (!ok)
		snprintf(reason, reason_size, "a SecretClass has no usable CA yet");
	return ok;
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
	kube_client *kube = NULL; /* to be handed to the CRD watch, Secret store, ... */
	const char *kube_ns = NULL;
	bool bundle_published = false;
	reloader rl = {0};
	pthread_t rl_thread;
	bool rl_started = false;
	metrics_registry *reg = NULL;
	metrics_httpd *httpd = NULL;
	metrics_webhook *webhook = NULL;
	cluster_classes cc = {0};
	bool cc_inited = false;
	kube_classes *classes_watch = NULL;
	truststore *trust_ctl = NULL;
	ts_bundle_ctx ts_ctx = {.is = &is, .last_reread_ms = INT64_MIN / 2};
	char *secrets_dir_buf = NULL;
	int rc = 1, port = 0;

	kube_jsonmem_init(); /* jansson wipes what it frees (CA keys, tokens) */
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
	if (kube_setup(&o, &kube, &kube_ns, &err) < 0) {
		log_error("Kubernetes API: %s", err.msg);
		goto out;
	}
	if (auth_setup(&o, kube, kube_ns, &is.auth, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	is.kube = kube;
	if (o.store_secret) {
		char holder[CA_STORE_KUBE_MAX_HOLDER + 1], host[128] = "";
		const char *pod = getenv("POD_NAME");
		/* Unique among live replicas: the pod name (or host) and pid. */
		if (!pod || !*pod) {
			if (gethostname(host, sizeof(host) - 1) < 0)
				snprintf(host, sizeof(host), "sigil-ca");
			pod = host;
		}
		snprintf(holder, sizeof(holder), "%.200s-%ld", pod, (long)getpid());
		if (ca_store_kube_open(kube, kube_ns, CA_SECRET_PREFIX, holder, &store, &err) < 0) {
			log_error("CA store in Secrets: %s", err.msg);
			goto out;
		}
		log_info("CA store: Secrets %s-<class> in namespace %s (holder %s)",
			 CA_SECRET_PREFIX, kube_ns, holder);
	} else {
		_cleanup_free_ char *cadir = sigil_path_join(o.state_dir, "ca");
		if (!cadir || ca_store_dir_open(cadir, &store, &err) < 0) {
			log_error("CA store: %s", err.msg);
			goto out;
		}
	}
	/* In a cluster without --classes-dir, SecretClasses come from the API
	 * and the Secrets they reference are mirrored under the state dir. */
	if (kube && !o.classes_dir) {
		if (!o.secrets_dir) {
			secrets_dir_buf = sigil_path_join(o.state_dir, "secrets");
			if (!secrets_dir_buf) {
				log_error("out of memory");
				goto out;
			}
			o.secrets_dir = secrets_dir_buf;
		}
		cc.o = &o;
		cc.kube = kube;
		cc.srv = &is;
		cc.store = store;
		pthread_mutex_init(&cc.lock, NULL);
		cc_inited = true;
	}
	/* From the API, the classes come first: building the built-in 'tls'
	 * class now would generate its CA (365d, ECDSA) in the shared store
	 * before the cluster's own 'tls' SecretClass (its lifetime, its key
	 * algorithm) is known, and that CA would then stay. */
	if (!cc_inited && build_service(&o, store, &is.svc, &err) < 0) {
		log_error("classes: %s", err.msg);
		goto out;
	}
	if (cc_inited) {
		ca_service *fallback = NULL;

		kube_classes_opts ko = {
			.client = kube,
			.compat_stackable = o.stackable_compat,
			.on_change = on_classes,
			.on_error = on_class_error,
			.ctx = &cc,
		};
		if (kube_classes_start(&ko, &classes_watch, &err) < 0) {
			log_error("SecretClass watch: %s", err.msg);
			goto out;
		}
		/* Serve with the classes the API has, not the built-in default,
		 * unless the API does not answer in time (then the watch
		 * delivers them later). */
		if (kube_classes_wait_ready(classes_watch, CLASSES_READY_WAIT_MS, &err) < 0)
			log_warn("SecretClasses not listed yet (%s); serving the built-in 'tls' "
				 "class until they are", err.msg);
		pthread_rwlock_rdlock(&is.lock);
		bool have_svc = is.svc != NULL;
		pthread_rwlock_unlock(&is.lock);
		/* Not listed in time, or the listed set did not build. */
		if (!have_svc) {
			err = (sigil_err){0};
			if (build_service(&o, store, &fallback, &err) < 0) {
				log_error("classes: %s", err.msg);
				goto out;
			}
			pthread_rwlock_wrlock(&is.lock);
			if (!is.svc) /* unless the watch delivered meanwhile */
				is.svc = TAKE_PTR(fallback);
			pthread_rwlock_unlock(&is.lock);
			ca_service_free(fallback);
		}
		truststore_opts to = {
			.client = kube,
			.compat_stackable = o.stackable_compat,
			.get_bundle = truststore_bundle,
			.on_error = on_truststore_error,
			.on_action = on_truststore_action,
			.ctx = &ts_ctx,
		};
		if (truststore_start(&to, &trust_ctl, &err) < 0) {
			log_error("TrustStore controller: %s", err.msg);
			goto out;
		}
		pthread_mutex_lock(&cc.lock);
		cc.ts = trust_ctl;
		pthread_mutex_unlock(&cc.lock);
	}
	if (serving_setup(&o, o.store_secret ? store : NULL, &sv, &err) < 0) {
		log_error("serving certificate: %s", err.msg);
		goto out;
	}
	if (kube) {
		/* Best effort: the reloader tries again if the API is down now. */
		if (bundle_publish(kube, kube_ns, o.state_dir, &err) < 0) {
			log_warn("cannot publish the issuer CA in ConfigMap %s/%s (will retry): %s",
				 kube_ns, BUNDLE_CONFIGMAP, err.msg);
		} else {
			bundle_published = true;
			log_info("published the issuer CA in ConfigMap %s/%s", kube_ns,
				 BUNDLE_CONFIGMAP);
		}
	}
	if (o.metrics_addr) {
		reg = metrics_registry_new();
		if (!reg) {
			log_error("metrics: out of memory");
			goto out;
		}
		metrics_httpd_config hc = {
			.listen = o.metrics_addr,
			.registry = reg,
			.ready = ready_cb,
			.ready_userdata = &is,
		};
		if (ca_metrics_new(reg, &is, &is.metrics, &err) < 0 ||
		    metrics_httpd_start(&hc, &httpd, &err) < 0) {
			log_error("metrics on %s: %s", o.metrics_addr, err.msg);
			goto out;
		}
		log_info("metrics, /healthz and /readyz on %s (port %u)", o.metrics_addr,
			 (unsigned)metrics_httpd_port(httpd));
	}
	if (o.alert_webhook) {
		metrics_webhook_config whc = {.url = o.alert_webhook, .registry = reg};
		if (metrics_webhook_start(&whc, &webhook, &err) < 0) {
			log_error("--alert-webhook: %s", err.msg);
			goto out;
		}
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
	rl.kube = kube;
	rl.kube_ns = kube_ns;
	rl.bundle_published = bundle_published;
	rl.cc = cc_inited ? &cc : NULL;
	rl.ts = trust_ctl;
	rl.webhook = webhook;
	pthread_mutex_init(&rl.lock, NULL);
	pthread_cond_init(&rl.cond, NULL);
	if (pthread_create(&rl_thread, NULL, reload_main, &rl) == 0)
		rl_started = true;
	/* The class watch may swap the service at any time. */
	pthread_rwlock_rdlock(&is.lock);
	size_t n_classes = ca_service_class_count(is.svc);
	pthread_rwlock_unlock(&is.lock);
	log_info("sigil-ca %s serving the issuer API on %s (port %d), %zu classes, workers %lld%s",
		 SIGIL_VERSION, o.listen, port, n_classes, (long long)o.workers,
		 kube ? ", Kubernetes API: TokenReview and node authorization" : "");
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
	/* The watchers call into the service: stop them before it goes. */
	kube_classes_stop(classes_watch);
	truststore_stop(trust_ctl);
	rpc_server_free(srv);
	metrics_httpd_stop(httpd); /* before what its scrapes read */
	metrics_webhook_stop(webhook); /* counts into reg */
	ca_metrics_free(is.metrics);
	metrics_registry_free(reg);
	ca_service_free(is.svc);
	ca_auth_free(is.auth);
	serving_free(&sv);
	ca_store_free(store);
	kube_client_free(kube); /* after every user of it (auth, store) has stopped */
	kerberos_kadm_pool_shutdown(); /* idle kadm5 helpers end with us */
	pthread_rwlock_destroy(&is.lock);
	if (cc_inited)
		pthread_mutex_destroy(&cc.lock);
	free(cc.cur);
	free(secrets_dir_buf);
	return rc;
}
