/* sigil-csi: the node plugin.  Parses flags, wires the pieces together and
 * serves until SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csi/issuer.h"
#include "csi/keypool.h"
#include "csi/kube.h"
#include "csi/node.h"
#include "csi/services.h"
#include "csi/state.h"
#include "csi/watch_report.h" /* expiry watcher (helper W, issue 7) */
#include "csi/watcher.h"
#include "metrics/httpd.h"
#include "metrics/metrics.h"
#include "metrics/webhook.h"
#include "kube/client.h"
#include "kube/config.h"
#include "rpc/server.h"
#include "util/log.h"
#include "util/parse.h"

#define SIGIL_VERSION "0.1.0"

typedef struct opts {
	const char *endpoint;
	const char *node_id;
	const char *state_dir;
	const char *driver_name;
	const char *cluster_domain;
	const char *ca_endpoint;
	const char *ca_bundle;
	const char *token_file;
	const char *ca_server_name;
	bool privileged;
	int64_t tmpfs_size;
	int64_t workers;
	int64_t max_volumes;
	size_t pool[SIGIL_KEY__COUNT];
	/* ---- Kubernetes API (helper C, issue 6) ---- */
	const char *kubeconfig;
	bool in_cluster;
	bool stackable_compat;
	bool no_events;
	/* ---- end Kubernetes API ---- */
	/* ---- expiry watcher (helper W, issue 7) ---- */
	double renew_fraction;
	int64_t bundle_check_secs;
	double renewals_per_sec;
	double evictions_per_min;
	const char *metrics_addr;
	const char *alert_webhook;
	/* ---- end expiry watcher ---- */
} opts;

/* ---- Kubernetes API (helper C, issue 6): long options without short forms ---- */
enum {
	OPT_KUBECONFIG = 0x200,
	OPT_IN_CLUSTER,
	OPT_STACKABLE_COMPAT,
	OPT_NO_EVENTS,
	/* ---- expiry watcher (helper W, issue 7) ---- */
	OPT_RENEW_FRACTION = 0x300,
	OPT_BUNDLE_CHECK_INTERVAL,
	OPT_MAX_RENEWALS,
	OPT_MAX_EVICTIONS,
	OPT_METRICS_ADDR,
	OPT_ALERT_WEBHOOK,
	/* ---- end expiry watcher ---- */
};
/* ---- end Kubernetes API ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sigil-csi --endpoint unix:///path/csi.sock --node-id NAME --state-dir DIR [options]\n"
		"  --driver-name NAME      CSI driver name (default " CSI_DEFAULT_DRIVER_NAME ")\n"
		"  --privileged            mount a tmpfs at every target (needs CAP_SYS_ADMIN)\n"
		"  --tmpfs-size BYTES      size of each tmpfs (default 1 MiB)\n"
		"  --key-pool ALG=N        keep N keys of ALG ready (repeatable; default rsa-2048=8)\n"
		"  --workers N             threads running CSI calls (default 4)\n"
		"  --max-volumes N         max volumes per node reported to the kubelet (0: no limit)\n"
		"  --cluster-domain NAME   default cluster.local\n"
		"  --ca-endpoint HOST:PORT use a remote sigil-ca instead of the embedded CA\n"
		"  --ca-bundle FILE        CA bundle sigil-ca's serving certificate verifies against\n"
		"  --token-file FILE       bearer token for sigil-ca (re-read on every call)\n"
		"  --ca-server-name NAME   name to verify in sigil-ca's certificate (default: the host)\n"
		"  --kubeconfig FILE       use the Kubernetes API described by FILE (pod checks and\n"
		"                          names, PVC annotations, restarter annotation, Events)\n"
		"  --in-cluster            use the Kubernetes API through the pod's service account\n"
		"  --stackable-compat      also write restarter.stackable.tech/expires-at.* annotations\n"
		"  --no-events             do not post Kubernetes Events\n"
		/* ---- expiry watcher (helper W, issue 7) ---- */
		"  --max-renewals-per-second R   in-place renewals per second on this node (default 5)\n"
		"  --max-evictions-per-minute R  pod evictions per minute on this node (default 10)\n"
		"  --bundle-check-interval SECS  how often to ask for each class's trust bundle (default 30)\n"
		"  --renew-fraction F      renew in place at F of the lifetime (default 0.667, 0.05..0.95)\n"
		"  --metrics-addr HOST:PORT  serve /metrics, /healthz and /readyz (e.g. 0.0.0.0:9090)\n"
		"  --alert-webhook URL     POST expiry and rotation alerts to an Alertmanager (API v2)\n"
		"Without a Kubernetes API, renewal=restart volumes are renewed in place at their\n"
		"expires-at time (notAfter - restart-buffer): there is no Eviction API to restart pods.\n"
		/* ---- end expiry watcher ---- */
		"The node id defaults to $KUBERNETES_NODE_NAME.\n");
}

static int parse_pool(const char *arg, size_t pool[SIGIL_KEY__COUNT])
{
	char alg[32];
	const char *eq = strchr(arg, '=');
	sigil_keyalg a;
	int64_t n;

	if (!eq || (size_t)(eq - arg) >= sizeof(alg))
		return -1;
	memcpy(alg, arg, (size_t)(eq - arg));
	alg[eq - arg] = '\0';
	if (ca_keyalg_parse(alg, &a) < 0 || sigil_parse_int64(eq + 1, 0, CSI_KEYPOOL_MAX_DEPTH, &n) < 0)
		return -1;
	pool[a] = (size_t)n;
	return 0;
}

static int parse_opts(int argc, char **argv, opts *o)
{
	static const struct option lo[] = {
		{"endpoint", required_argument, 0, 'e'},
		{"node-id", required_argument, 0, 'n'},
		{"state-dir", required_argument, 0, 's'},
		{"driver-name", required_argument, 0, 'd'},
		{"cluster-domain", required_argument, 0, 'c'},
		{"privileged", no_argument, 0, 'P'},
		{"tmpfs-size", required_argument, 0, 't'},
		{"key-pool", required_argument, 0, 'k'},
		{"workers", required_argument, 0, 'w'},
		{"max-volumes", required_argument, 0, 'm'},
		{"ca-endpoint", required_argument, 0, 'E'},
		{"ca-bundle", required_argument, 0, 'B'},
		{"token-file", required_argument, 0, 'T'},
		{"ca-server-name", required_argument, 0, 'N'},
		/* ---- Kubernetes API (helper C, issue 6) ---- */
		{"kubeconfig", required_argument, 0, OPT_KUBECONFIG},
		{"in-cluster", no_argument, 0, OPT_IN_CLUSTER},
		{"stackable-compat", no_argument, 0, OPT_STACKABLE_COMPAT},
		{"no-events", no_argument, 0, OPT_NO_EVENTS},
		/* ---- end Kubernetes API ---- */
		/* ---- expiry watcher (helper W, issue 7) ---- */
		{"renew-fraction", required_argument, 0, OPT_RENEW_FRACTION},
		{"bundle-check-interval", required_argument, 0, OPT_BUNDLE_CHECK_INTERVAL},
		{"max-renewals-per-second", required_argument, 0, OPT_MAX_RENEWALS},
		{"max-evictions-per-minute", required_argument, 0, OPT_MAX_EVICTIONS},
		{"metrics-addr", required_argument, 0, OPT_METRICS_ADDR},
		{"alert-webhook", required_argument, 0, OPT_ALERT_WEBHOOK},
		/* ---- end expiry watcher ---- */
		{"help", no_argument, 0, 'h'},
		{0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->driver_name = CSI_DEFAULT_DRIVER_NAME;
	o->node_id = getenv("KUBERNETES_NODE_NAME");
	o->workers = RPC_DEFAULT_HANDLER_THREADS;
	o->pool[SIGIL_KEY_RSA2048] = 8;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'e': o->endpoint = optarg; break;
		case 'n': o->node_id = optarg; break;
		case 's': o->state_dir = optarg; break;
		case 'd': o->driver_name = optarg; break;
		case 'c': o->cluster_domain = optarg; break;
		case 'P': o->privileged = true; break;
		case 'E': o->ca_endpoint = optarg; break;
		case 'B': o->ca_bundle = optarg; break;
		case 'T': o->token_file = optarg; break;
		case 'N': o->ca_server_name = optarg; break;
		case 't':
			if (sigil_parse_int64(optarg, 4096, 64LL << 20, &o->tmpfs_size) < 0) {
				fprintf(stderr, "sigil-csi: --tmpfs-size must be 4096..64MiB bytes\n");
				return -1;
			}
			break;
		case 'k':
			if (parse_pool(optarg, o->pool) < 0) {
				fprintf(stderr, "sigil-csi: --key-pool wants ALG=N (e.g. rsa-2048=8), got '%s'\n", optarg);
				return -1;
			}
			break;
		case 'w':
			if (sigil_parse_int64(optarg, 1, RPC_MAX_WORKERS, &o->workers) < 0) {
				fprintf(stderr, "sigil-csi: --workers must be 1..%d\n", RPC_MAX_WORKERS);
				return -1;
			}
			break;
		case 'm':
			if (sigil_parse_int64(optarg, 0, 1000000, &o->max_volumes) < 0) {
				fprintf(stderr, "sigil-csi: bad --max-volumes\n");
				return -1;
			}
			break;
		/* ---- Kubernetes API (helper C, issue 6) ---- */
		case OPT_KUBECONFIG: o->kubeconfig = optarg; break;
		case OPT_IN_CLUSTER: o->in_cluster = true; break;
		case OPT_STACKABLE_COMPAT: o->stackable_compat = true; break;
		case OPT_NO_EVENTS: o->no_events = true; break;
		/* ---- end Kubernetes API ---- */
		/* ---- expiry watcher (helper W, issue 7) ---- */
		case OPT_RENEW_FRACTION:
			if (sigil_parse_double(optarg, CSI_WATCH_MIN_RENEW_FRACTION,
					       CSI_WATCH_MAX_RENEW_FRACTION, &o->renew_fraction) < 0) {
				fprintf(stderr, "sigil-csi: --renew-fraction must be 0.05..0.95\n");
				return -1;
			}
			break;
		case OPT_BUNDLE_CHECK_INTERVAL:
			if (sigil_parse_int64(optarg, 1, CSI_WATCH_MAX_BUNDLE_CHECK_SECS,
					      &o->bundle_check_secs) < 0) {
				fprintf(stderr, "sigil-csi: --bundle-check-interval must be 1..%d seconds\n",
					CSI_WATCH_MAX_BUNDLE_CHECK_SECS);
				return -1;
			}
			break;
		case OPT_MAX_RENEWALS:
		case OPT_MAX_EVICTIONS:
			if (sigil_parse_double(optarg, 0.001, CSI_WATCH_MAX_RATE,
					       c == OPT_MAX_RENEWALS ? &o->renewals_per_sec
								     : &o->evictions_per_min) < 0) {
				fprintf(stderr, "sigil-csi: --max-renewals-per-second and "
						"--max-evictions-per-minute must be 0.001..%g\n",
					CSI_WATCH_MAX_RATE);
				return -1;
			}
			break;
		case OPT_METRICS_ADDR: o->metrics_addr = optarg; break;
		case OPT_ALERT_WEBHOOK: o->alert_webhook = optarg; break;
		/* ---- end expiry watcher ---- */
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (!o->endpoint || !o->node_id || !*o->node_id || !o->state_dir) {
		fprintf(stderr, "sigil-csi: --endpoint, --node-id (or $KUBERNETES_NODE_NAME) and --state-dir are required\n");
		usage(stderr);
		return -1;
	}
	/* ---- Kubernetes API (helper C, issue 6) ---- */
	if (o->kubeconfig && o->in_cluster) {
		fprintf(stderr, "sigil-csi: --kubeconfig and --in-cluster exclude each other\n");
		return -1;
	}
	/* ---- end Kubernetes API ---- */
	return 0;
}

/* ---- Kubernetes API (helper C, issue 6) ---- */
/* Without --kubeconfig or --in-cluster sigil-csi stays standalone: no API,
 * *ret_kube stays NULL. */
static int kube_setup(const opts *o, kube_client **ret_client, csi_kube **ret_kube,
		      sigil_err *err)
{
	_cleanup_free_ char *server = NULL;
	kube_client *client = NULL;
	csi_kube *k = NULL;
	int r;

	r = kube_client_open(o->kubeconfig, o->in_cluster, NULL, &client, &server, err);
	if (r < 0 || !client)
		return r;
	csi_kube_config kc = {
		.client = client,
		.node_name = o->node_id,
		.component = "sigil-csi",
		.stackable_compat = o->stackable_compat,
		.events = !o->no_events,
	};
	r = csi_kube_new(&kc, &k, err);
	if (r < 0) {
		kube_client_free(client);
		return r;
	}
	log_info("using the Kubernetes API at %s", server);
	*ret_client = client;
	*ret_kube = k;
	return 0;
}
/* ---- end Kubernetes API ---- */

/* ---- expiry watcher (helper W, issue 7): /readyz follows the CSI Probe ---- */
static bool metrics_ready(void *userdata, char *reason, size_t reason_size)
{
	if (csi_node_ready(userdata))
		return true;
	snprintf(reason, reason_size, "the CA is not usable yet");
	return false;
}
/* ---- end expiry watcher ---- */

/* "unix:///a/b", "unix:/a/b" or "/a/b" -> "/a/b". */
static const char *socket_path(const char *endpoint)
{
	if (!strncmp(endpoint, "unix://", 7))
		return endpoint + 7;
	if (!strncmp(endpoint, "unix:", 5))
		return endpoint + 5;
	return endpoint;
}

int main(int argc, char **argv)
{
	opts o;
	sigset_t sigs;
	sigil_err err = {0};
	csi_state *state = NULL;
	csi_issuer *issuer = NULL;
	csi_keypool *pool = NULL;
	csi_node *node = NULL;
	kube_client *kclient = NULL; /* Kubernetes API (helper C, issue 6) */
	csi_kube *kube = NULL;
	/* ---- expiry watcher (helper W, issue 7) ---- */
	csi_watcher *watcher = NULL;
	metrics_registry *registry = NULL;
	metrics_httpd *httpd = NULL;
	metrics_webhook *webhook = NULL;
	csi_watch_report *report = NULL;
	/* ---- end expiry watcher ---- */
	rpc_server *srv = NULL;
	rpc_method methods[CSI_SERVICES_N_METHODS];
	int rc = 1, sig;

	sigil_log_init_from_env("sigil-csi");
	if (parse_opts(argc, argv, &o) < 0)
		return 2;
	/* DESIGN.md gotcha: block SIGTERM before grpc_init starts threads. */
	if (rpc_server_block_signals(&sigs, &err) < 0) {
		log_error("%s", err.msg);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (csi_state_open(o.state_dir, &state, &err) < 0) {
		log_error("cannot open the state dir: %s", err.msg);
		goto out;
	}
	/* ---- Kubernetes API (helper C, issue 6) ---- */
	if (kube_setup(&o, &kclient, &kube, &err) < 0) {
		log_error("cannot use the Kubernetes API: %s", err.msg);
		goto out;
	}
	/* ---- end Kubernetes API ---- */
	if (o.ca_endpoint) {
		csi_remote_config rc_cfg = {
			.endpoint = o.ca_endpoint,
			.ca_bundle_file = o.ca_bundle,
			.token_file = o.token_file,
			.server_name = o.ca_server_name,
		};
		if (csi_issuer_remote_new(&rc_cfg, &issuer, &err) < 0) {
			log_error("cannot use the CA at %s: %s", o.ca_endpoint, err.msg);
			goto out;
		}
	} else if (csi_issuer_local_new_kube(o.state_dir, NULL, 0, o.cluster_domain, kube, &issuer,
					     &err) < 0) {
		log_error("cannot start the embedded CA: %s", err.msg);
		goto out;
	}
	if (csi_keypool_new(o.pool, &pool, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	csi_node_config nc = {
		.node_id = o.node_id,
		.issuer = issuer,
		.keypool = pool,
		.state = state,
		.kube = kube,
		.privileged = o.privileged,
		.tmpfs_size = (size_t)o.tmpfs_size,
	};
	if (csi_node_new(&nc, &node, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	/* ---- expiry watcher (helper W, issue 7): rebuilt from the state dir ---- */
	registry = metrics_registry_new();
	if (!registry) {
		log_error("out of memory");
		goto out;
	}
	if (o.alert_webhook) {
		metrics_webhook_config whc = {.url = o.alert_webhook, .registry = registry};
		if (metrics_webhook_start(&whc, &webhook, &err) < 0) {
			log_error("--alert-webhook: %s", err.msg);
			goto out;
		}
	}
	csi_watch_report_config rpc_cfg = {.registry = registry, .webhook = webhook,
					   .node_name = o.node_id};
	if (csi_watch_report_new(&rpc_cfg, &report, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	csi_watcher_config wc = {
		.node = node,
		.state = state,
		.issuer = issuer,
		.kube = kube,
		.renew_fraction = o.renew_fraction,
		.bundle_check_secs = o.bundle_check_secs,
		.renewals_per_sec = o.renewals_per_sec,
		.evictions_per_min = o.evictions_per_min,
		.notify = csi_watch_report_notify,
		.notify_ctx = report,
	};
	if (csi_watcher_new(&wc, &watcher, &err) < 0 || csi_watcher_start(watcher, &err) < 0) {
		log_error("cannot start the expiry watcher: %s", err.msg);
		goto out;
	}
	csi_node_set_watcher(node, watcher);
	csi_watch_report_sources(report, watcher, pool);
	if (o.metrics_addr) {
		metrics_httpd_config hc = {.listen = o.metrics_addr, .registry = registry,
					   .ready = metrics_ready, .ready_userdata = node};
		if (metrics_httpd_start(&hc, &httpd, &err) < 0) {
			log_error("--metrics-addr %s: %s", o.metrics_addr, err.msg);
			goto out;
		}
		log_info("metrics on http://%s/metrics (port %u)", o.metrics_addr,
			 (unsigned)metrics_httpd_port(httpd));
	}
	if (!kube)
		log_info("no Kubernetes API: renewal=restart volumes are renewed in place at their "
			 "expires-at time, as there is no Eviction API to restart their pods with");
	/* ---- end expiry watcher ---- */
	csi_services svcs = {
		.driver_name = o.driver_name,
		.version = SIGIL_VERSION,
		.node = node,
		.kube = kube,
		.max_volumes_per_node = o.max_volumes,
		.report = report,
	};
	rpc_server_config sc = {
		.methods = methods,
		.n_methods = csi_services_methods(&svcs, methods),
		.handler_threads = (unsigned)o.workers,
	};
	if (rpc_server_new(&sc, &srv, &err) < 0 ||
	    rpc_server_listen_unix(srv, socket_path(o.endpoint), &err) < 0 ||
	    rpc_server_start(srv, &err) < 0) {
		log_error("cannot serve on %s: %s", o.endpoint, err.msg);
		goto out;
	}
	log_info("serving CSI %s %s on %s for node %s (%s %s, %zu known volumes%s%s)",
		 o.driver_name, SIGIL_VERSION, o.endpoint, o.node_id,
		 o.ca_endpoint ? "CA at" : "embedded CA", o.ca_endpoint ? o.ca_endpoint : "",
		 csi_state_count(state),
		 o.privileged ? ", privileged" : "", kube ? ", Kubernetes API" : "");
	sig = rpc_server_wait_signal(&sigs);
	log_info("got signal %d: finishing calls in flight", sig);
	rpc_server_shutdown(srv, 10000);
	/* ---- Kubernetes API (helper C, issue 6): Events about the last calls ---- */
	if (kube && csi_kube_flush_events(kube, 2000, &err) < 0)
		log_warn("%s", err.msg);
	/* ---- end Kubernetes API ---- */
	rc = 0;
out:
	rpc_server_free(srv);
	/* ---- expiry watcher (helper W, issue 7): stopped before what it uses ---- */
	metrics_httpd_stop(httpd);
	if (report)
		csi_watch_report_sources(report, NULL, NULL);
	if (node)
		csi_node_set_watcher(node, NULL);
	csi_watcher_free(watcher);
	if (webhook && rc == 0 && metrics_webhook_flush(webhook, 2000) < 0)
		log_warn("alerts still queued at exit were dropped");
	metrics_webhook_stop(webhook);
	csi_watch_report_free(report);
	metrics_registry_free(registry);
	/* ---- end expiry watcher ---- */
	csi_node_free(node);
	csi_keypool_free(pool);
	csi_issuer_free(issuer);
	csi_kube_free(kube); /* after everything that borrows it */
	kube_client_free(kclient);
	csi_state_free(state);
	if (rc == 0)
		log_info("stopped");
	return rc;
}
