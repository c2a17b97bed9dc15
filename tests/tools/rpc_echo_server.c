/* Test program: serves the real csi.v1.Identity service (GetPluginInfo,
 * GetPluginCapabilities, Probe) over a unix socket with the rpc layer, for
 * interop tests with independent clients (python3-grpcio).
 *
 *   rpc_echo_server --endpoint unix:/path/csi.sock [--name NAME] [--workers N]
 *
 * Prints "ready" on stdout once serving; exits 0 after SIGTERM or SIGINT
 * (graceful shutdown), non-zero on any setup error. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/csi.pb-c.h"
#include "rpc/server.h"
#include "util/mem.h"
#include "util/parse.h"

#define PLUGIN_VERSION "0.1.0-test"

struct identity {
	const char *name;
};

/* Unpacks the (empty) request so that garbage is refused like a real
 * plugin would. */
static int request_check(const ProtobufCMessageDescriptor *d, const uint8_t *req, size_t len,
                         rpc_status *st)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, req);

	if (!m)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "cannot parse %s", d->name),
		       SIGIL_E_INVALID;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

static int pack(const ProtobufCMessage *m, uint8_t **resp, size_t *resp_len)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *p = malloc(len ? len : 1);

	if (!p)
		return SIGIL_E_NOMEM;
	protobuf_c_message_pack(m, p);
	*resp = p;
	*resp_len = len;
	return 0;
}

static int h_get_plugin_info(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
                             uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	const struct identity *id = ctx;
	Csi__V1__GetPluginInfoResponse out = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;
	Csi__V1__GetPluginInfoResponse__ManifestEntry e =
	    CSI__V1__GET_PLUGIN_INFO_RESPONSE__MANIFEST_ENTRY__INIT;
	Csi__V1__GetPluginInfoResponse__ManifestEntry *entries[1] = {&e};
	int r = request_check(&csi__v1__get_plugin_info_request__descriptor, req, req_len, st);

	if (r < 0)
		return r;
	out.name = (char *)id->name;
	out.vendor_version = (char *)PLUGIN_VERSION;
	e.key = (char *)"implementation";
	e.value = (char *)"sigil-rpc-test";
	out.n_manifest = 1;
	out.manifest = entries;
	return pack(&out.base, resp, resp_len);
}

static int h_get_plugin_capabilities(void *ctx, const rpc_call *call, const uint8_t *req,
                                     size_t req_len, uint8_t **resp, size_t *resp_len,
                                     rpc_status *st)
{
	Csi__V1__GetPluginCapabilitiesResponse out =
	    CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__PluginCapability cap = CSI__V1__PLUGIN_CAPABILITY__INIT;
	Csi__V1__PluginCapability__Service svc = CSI__V1__PLUGIN_CAPABILITY__SERVICE__INIT;
	Csi__V1__PluginCapability *caps[1] = {&cap};
	int r =
	    request_check(&csi__v1__get_plugin_capabilities_request__descriptor, req, req_len, st);

	if (r < 0)
		return r;
	svc.type = CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__CONTROLLER_SERVICE;
	cap.type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
	cap.service = &svc;
	out.n_capabilities = 1;
	out.capabilities = caps;
	return pack(&out.base, resp, resp_len);
}

static int h_probe(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
                   uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	Csi__V1__ProbeResponse out = CSI__V1__PROBE_RESPONSE__INIT;
	Google__Protobuf__BoolValue ready = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
	int r = request_check(&csi__v1__probe_request__descriptor, req, req_len, st);

	if (r < 0)
		return r;
	ready.value = 1;
	out.ready = &ready;
	return pack(&out.base, resp, resp_len);
}

static void usage(void)
{
	fprintf(stderr, "usage: rpc_echo_server --endpoint unix:PATH [--name NAME] "
	                "[--workers N]\n");
}

int main(int argc, char **argv)
{
	struct identity id = {.name = "test.sigil.dev"};
	const char *endpoint = NULL;
	unsigned workers = 2;
	sigset_t sigs;
	sigil_err err = {0};
	rpc_server *srv = NULL;
	int sig;

	/* DESIGN.md gotcha: block SIGTERM before grpc_init starts threads. */
	if (rpc_server_block_signals(&sigs, &err) < 0) {
		fprintf(stderr, "rpc_echo_server: %s\n", err.msg);
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc) {
			endpoint = argv[++i];
		} else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
			id.name = argv[++i];
		} else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
			int64_t v;

			if (sigil_parse_int64(argv[++i], 1, RPC_MAX_WORKERS, &v) < 0) {
				fprintf(stderr, "rpc_echo_server: --workers must be 1..%d\n",
				        RPC_MAX_WORKERS);
				return 2;
			}
			workers = (unsigned)v;
		} else {
			usage();
			return 2;
		}
	}
	if (!endpoint || strncmp(endpoint, "unix:", 5) != 0) {
		usage();
		return 2;
	}

	const rpc_method methods[] = {
	    {"/csi.v1.Identity/GetPluginInfo", h_get_plugin_info, &id},
	    {"/csi.v1.Identity/GetPluginCapabilities", h_get_plugin_capabilities, &id},
	    {"/csi.v1.Identity/Probe", h_probe, &id},
	};
	rpc_server_config cfg = {
	    .methods = methods,
	    .n_methods = SIGIL_ARRAY_SIZE(methods),
	    .workers = workers,
	};
	if (rpc_server_new(&cfg, &srv, &err) < 0 ||
	    rpc_server_listen_unix(srv, endpoint + 5, &err) < 0 ||
	    rpc_server_start(srv, &err) < 0) {
		fprintf(stderr, "rpc_echo_server: %s\n", err.msg);
		rpc_server_free(srv);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	sig = rpc_server_wait_signal(&sigs);
	if (sig < 0) {
		fprintf(stderr, "rpc_echo_server: sigwait failed\n");
		rpc_server_free(srv);
		return 1;
	}
	fprintf(stderr, "rpc_echo_server: signal %d, shutting down\n", sig);
	rpc_server_shutdown(srv, 5000);
	rpc_server_free(srv);
	return 0;
}
