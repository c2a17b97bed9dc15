/* sigil-csi: the node plugin.  Parses flags, wires the pieces together and
 * serves until SIGTERM. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csi/issuer.h"
#include "csi/keypool.h"
#include "csi/node.h"
#include "csi/services.h"
#include "csi/state.h"
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
} opts;

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
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (!o->endpoint || !o->node_id || !*o->node_id || !o->state_dir) {
		fprintf(stderr, "sigil-csi: --endpoint, --node-id (or $KUBERNETES_NODE_NAME) and --state-dir are required\n");
		usage(stderr);
		return -1;
	}
	return 0;
}

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
	} else if (csi_issuer_local_new(o.state_dir, NULL, 0, o.cluster_domain, &issuer, &err) < 0) {
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
		.privileged = o.privileged,
		.tmpfs_size = (size_t)o.tmpfs_size,
	};
	if (csi_node_new(&nc, &node, &err) < 0) {
		log_error("%s", err.msg);
		goto out;
	}
	csi_services svcs = {
		.driver_name = o.driver_name,
		.version = SIGIL_VERSION,
		.node = node,
		.max_volumes_per_node = o.max_volumes,
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
	log_info("serving CSI %s %s on %s for node %s (%s %s, %zu known volumes%s)",
		 o.driver_name, SIGIL_VERSION, o.endpoint, o.node_id,
		 o.ca_endpoint ? "CA at" : "embedded CA", o.ca_endpoint ? o.ca_endpoint : "",
		 csi_state_count(state),
		 o.privileged ? ", privileged" : "");
	sig = rpc_server_wait_signal(&sigs);
	log_info("got signal %d: finishing calls in flight", sig);
	rpc_server_shutdown(srv, 10000);
	rc = 0;
out:
	rpc_server_free(srv);
	csi_node_free(node);
	csi_keypool_free(pool);
	csi_issuer_free(issuer);
	csi_state_free(state);
	if (rc == 0)
		log_info("stopped");
	return rc;
}
