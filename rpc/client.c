#include "rpc/client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

struct rpc_client {
	grpc_channel *channel;
	size_t max_recv;
	bool grpc_inited;
};

int rpc_client_new(const rpc_client_config *cfg, rpc_client **ret, sigil_err *err)
{
	_cleanup_(rpc_client_freep) rpc_client *c = NULL;
	grpc_channel_credentials *creds;
	grpc_arg args[5];
	grpc_channel_args chargs;

	if (!cfg || !cfg->target || !cfg->target[0])
		return sigil_err_set(err, SIGIL_E_INVALID, "rpc client: no target address");
	if (strnlen(cfg->target, RPC_MAX_ADDRESS) >= RPC_MAX_ADDRESS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "rpc client: target longer than %d bytes",
		                     RPC_MAX_ADDRESS - 1);
	if (!cfg->tls_cert_pem != !cfg->tls_key_pem)
		return sigil_err_set(
		    err, SIGIL_E_INVALID,
		    "rpc client: a client certificate needs its key and vice versa");
	if ((cfg->tls_cert_pem || cfg->tls_server_name) && !cfg->tls_root_pem)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "rpc client: TLS options given without TLS root certificates");
	if (cfg->max_recv_bytes > RPC_MAX_MESSAGE_LIMIT)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "rpc client: message limit above the ceiling of %u bytes",
		                     RPC_MAX_MESSAGE_LIMIT);
	c = calloc(1, sizeof(*c));
	if (!c)
		return sigil_err_set(err, SIGIL_E_NOMEM, "rpc client: out of memory");
	c->max_recv = cfg->max_recv_bytes ? cfg->max_recv_bytes : RPC_DEFAULT_MAX_MESSAGE;
	/* The system resolver: Debian's c-ares build leaks on every lookup of
	 * "localhost", which LeakSanitizer reports at exit. */
	setenv("GRPC_DNS_RESOLVER", "native", 0);
	grpc_init();
	c->grpc_inited = true;

	if (cfg->tls_root_pem) {
		grpc_ssl_pem_key_cert_pair pair = {.private_key = cfg->tls_key_pem,
		                                   .cert_chain = cfg->tls_cert_pem};

		creds = grpc_ssl_credentials_create_ex(
		    cfg->tls_root_pem, cfg->tls_cert_pem ? &pair : NULL, NULL, NULL);
	} else {
		creds = grpc_insecure_credentials_create();
	}
	if (!creds)
		return sigil_err_set(err, SIGIL_E_INVALID, "rpc client: cannot create credentials");

	memset(args, 0, sizeof(args));
	chargs.num_args = 0;
	chargs.args = args;
	args[chargs.num_args].type = GRPC_ARG_INTEGER;
	args[chargs.num_args].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[chargs.num_args].value.integer = (int)c->max_recv;
	chargs.num_args++;
	/* A peer that comes back (sigil-ca restarted) must be reachable within
	 * a couple of seconds, not after gRPC's default backoff of up to 120 s:
	 * the kubelet retries a failed publish, and every retry would fail
	 * fast against a channel still waiting out its backoff. */
	args[chargs.num_args].type = GRPC_ARG_INTEGER;
	args[chargs.num_args].key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
	args[chargs.num_args].value.integer = 200;
	chargs.num_args++;
	args[chargs.num_args].type = GRPC_ARG_INTEGER;
	args[chargs.num_args].key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
	args[chargs.num_args].value.integer = 200;
	chargs.num_args++;
	args[chargs.num_args].type = GRPC_ARG_INTEGER;
	args[chargs.num_args].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
	args[chargs.num_args].value.integer = 2000;
	chargs.num_args++;
	if (cfg->tls_server_name) {
		args[chargs.num_args].type = GRPC_ARG_STRING;
		args[chargs.num_args].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
		args[chargs.num_args].value.string = (char *)cfg->tls_server_name;
		chargs.num_args++;
	}
	/* An unparsable target still yields a (lame) channel whose calls
	 * fail with a status, so there is no error to report here. */
	c->channel = grpc_channel_create(cfg->target, creds, &chargs);
	grpc_channel_credentials_release(creds);
	if (!c->channel)
		return sigil_err_set(err, SIGIL_E_INTERNAL,
		                     "rpc client: cannot create a channel to %s", cfg->target);
	*ret = TAKE_PTR(c);
	return 0;
}

void rpc_client_free(rpc_client *c)
{
	if (!c)
		return;
	if (c->channel)
		grpc_channel_destroy(c->channel);
	if (c->grpc_inited)
		grpc_shutdown();
	free(c);
}

static bool client_method_ok(const char *p)
{
	const char *slash;

	if (!p || p[0] != '/' || strnlen(p, RPC_MAX_METHOD_PATH + 1) > RPC_MAX_METHOD_PATH)
		return false;
	slash = strchr(p + 1, '/');
	if (!slash || slash == p + 1 || slash[1] == '\0' || strchr(slash + 1, '/'))
		return false;
	for (const char *c = p; *c; c++)
		if (*c <= ' ' || *c >= 0x7f)
			return false;
	return true;
}

static int client_metadata_check(const rpc_metadata *md, size_t n_md, sigil_err *err)
{
	if (n_md > RPC_CLIENT_MAX_METADATA)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "rpc client: more than %d metadata entries",
		                     RPC_CLIENT_MAX_METADATA);
	if (n_md > 0 && !md)
		return sigil_err_set(err, SIGIL_E_INVALID, "rpc client: metadata missing");
	for (size_t i = 0; i < n_md; i++) {
		size_t klen, vlen;

		if (!md[i].key || !md[i].value)
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "rpc client: metadata %zu incomplete", i);
		klen = strnlen(md[i].key, 256);
		vlen = strnlen(md[i].value, RPC_CLIENT_MAX_METADATA_VALUE + 1);
		if (klen == 0 || klen >= 256 || vlen > RPC_CLIENT_MAX_METADATA_VALUE)
			return sigil_err_set(err, SIGIL_E_LIMIT,
			                     "rpc client: metadata %zu key or value too long", i);
		if (!grpc_header_key_is_legal(grpc_slice_from_static_string(md[i].key)) ||
		    (klen >= 4 && strcmp(md[i].key + klen - 4, "-bin") == 0) || md[i].key[0] == ':')
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "rpc client: metadata key %zu is not a lower-case "
			                     "text header name",
			                     i);
		if (!grpc_header_nonbin_value_is_legal(grpc_slice_from_static_string(md[i].value)))
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "rpc client: metadata value for %s is not printable",
			                     md[i].key);
	}
	return 0;
}

static void client_wipe_bb(grpc_byte_buffer *bb)
{
	if (!bb || bb->type != GRPC_BB_RAW)
		return;
	for (size_t i = 0; i < bb->data.raw.slice_buffer.count; i++) {
		grpc_slice *s = &bb->data.raw.slice_buffer.slices[i];
		sigil_wipe(GRPC_SLICE_START_PTR(*s), GRPC_SLICE_LENGTH(*s));
	}
}

/* Copies the response message out of bb into a malloc'ed buffer. */
static int client_read_response(grpc_byte_buffer *bb, uint8_t **ret, size_t *ret_len)
{
	grpc_byte_buffer_reader reader;
	grpc_slice s;
	uint8_t *p = NULL;
	size_t len;

	if (!grpc_byte_buffer_reader_init(&reader, bb))
		return SIGIL_E_INTERNAL;
	s = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	len = GRPC_SLICE_LENGTH(s);
	if (len > 0) {
		p = malloc(len);
		if (!p) {
			grpc_slice_unref(s);
			return SIGIL_E_NOMEM;
		}
		memcpy(p, GRPC_SLICE_START_PTR(s), len);
		/* Responses may carry secrets (keytabs from sigil-ca). */
		sigil_wipe(GRPC_SLICE_START_PTR(s), len);
	}
	grpc_slice_unref(s);
	*ret = p;
	*ret_len = len;
	return 0;
}

int rpc_client_call(rpc_client *c, const char *method, const uint8_t *req, size_t req_len,
                    const rpc_metadata *md, size_t n_md, int64_t timeout_ms, rpc_status *ret_status,
                    uint8_t **ret_resp, size_t *ret_resp_len, sigil_err *err)
{
	grpc_metadata mds[RPC_CLIENT_MAX_METADATA];
	grpc_metadata_array initial_md, trailing_md;
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_byte_buffer *req_bb, *resp_bb = NULL;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice(), req_slice, method_slice;
	const char *error_string = NULL;
	gpr_timespec deadline;
	grpc_op ops[6];
	grpc_event ev;
	rpc_status st;
	uint8_t *resp = NULL, *copy = NULL;
	size_t resp_len = 0, n = 0, dlen;
	int r;

	if (!c || !ret_status || !ret_resp || !ret_resp_len)
		return sigil_err_set(err, SIGIL_E_INVALID, "rpc client: missing argument");
	if (!client_method_ok(method))
		return sigil_err_set(
		    err, SIGIL_E_INVALID,
		    "rpc client: method must look like \"/package.Service/Method\"");
	if (req_len > RPC_MAX_MESSAGE_LIMIT || (req_len > 0 && !req))
		return sigil_err_set(err, SIGIL_E_LIMIT, "rpc client: request of %zu bytes refused",
		                     req_len);
	if (timeout_ms <= 0 || timeout_ms > RPC_CLIENT_MAX_TIMEOUT_MS)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "rpc client: timeout must be 1..%lld ms, got %lld",
		                     (long long)RPC_CLIENT_MAX_TIMEOUT_MS, (long long)timeout_ms);
	r = client_metadata_check(md, n_md, err);
	if (r < 0)
		return r;

	memset(mds, 0, sizeof(mds));
	for (size_t i = 0; i < n_md; i++) {
		mds[i].key = grpc_slice_from_static_string(md[i].key);
		mds[i].value = grpc_slice_from_static_string(md[i].value);
	}
	/* The request may carry secrets: gRPC gets a wiped-on-free copy. */
	if (req_len > 0) {
		copy = malloc(req_len);
		if (!copy)
			return sigil_err_set(err, SIGIL_E_NOMEM, "rpc client: out of memory");
		memcpy(copy, req, req_len);
		req_slice = grpc_slice_new_with_len(copy, req_len, sigil_freezero);
	} else {
		req_slice = grpc_empty_slice();
	}
	req_bb = grpc_raw_byte_buffer_create(&req_slice, 1);
	grpc_slice_unref(req_slice);

	cq = grpc_completion_queue_create_for_next(NULL);
	deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	                        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	method_slice = grpc_slice_from_static_string(method);
	call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method_slice,
	                                NULL, deadline, NULL);
	grpc_metadata_array_init(&initial_md);
	grpc_metadata_array_init(&trailing_md);

	memset(ops, 0, sizeof(ops));
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].data.send_initial_metadata.count = n_md;
	ops[n].data.send_initial_metadata.metadata = n_md ? mds : NULL;
	n++;
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = req_bb;
	n++;
	ops[n].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	n++;
	ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[n].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
	n++;
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n].data.recv_message.recv_message = &resp_bb;
	n++;
	ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[n].data.recv_status_on_client.trailing_metadata = &trailing_md;
	ops[n].data.recv_status_on_client.status = &status;
	ops[n].data.recv_status_on_client.status_details = &details;
	ops[n].data.recv_status_on_client.error_string = &error_string;
	n++;

	r = 0;
	if (!call || grpc_call_start_batch(call, ops, n, call, NULL) != GRPC_CALL_OK) {
		r = sigil_err_set(err, SIGIL_E_INTERNAL, "rpc client: cannot start call %s",
		                  method);
	} else {
		/* The call's deadline bounds this wait. */
		ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		if (ev.type != GRPC_OP_COMPLETE || !ev.success)
			r = sigil_err_set(err, SIGIL_E_INTERNAL,
			                  "rpc client: call %s did not complete", method);
	}
	if (r == 0) {
		dlen = GRPC_SLICE_LENGTH(details);
		if (dlen >= RPC_STATUS_MSG_MAX)
			dlen = RPC_STATUS_MSG_MAX - 1;
		rpc_status_set(&st, (int)status, "%.*s", (int)dlen,
		               (const char *)GRPC_SLICE_START_PTR(details));
		if (st.code == RPC_OK && !resp_bb) {
			rpc_status_set(&st, RPC_INTERNAL, "server sent no response message");
		} else if (st.code == RPC_OK) {
			r = client_read_response(resp_bb, &resp, &resp_len);
			if (r < 0)
				sigil_err_set(err, r, "rpc client: cannot read the response of %s",
				              method);
		}
	}
	client_wipe_bb(resp_bb);
	if (resp_bb)
		grpc_byte_buffer_destroy(resp_bb);
	grpc_byte_buffer_destroy(req_bb);
	grpc_metadata_array_destroy(&initial_md);
	grpc_metadata_array_destroy(&trailing_md);
	grpc_slice_unref(details);
	gpr_free((void *)error_string);
	if (call)
		grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	do
		ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	while (ev.type != GRPC_QUEUE_SHUTDOWN);
	grpc_completion_queue_destroy(cq);
	if (r < 0)
		return r;
	*ret_status = st;
	*ret_resp = resp;
	*ret_resp_len = resp_len;
	return 0;
}
