/* The node's side of the issuer API: one reused TLS channel to sigil-ca,
 * bearer token, deadlines, retries with jittered backoff.  An unreachable
 * CA is SIGIL_E_UNAVAIL, which the CSI layer answers as UNAVAILABLE so the
 * kubelet retries. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "csi/issuer.h"
#include "kerberos/keytab.h"
#include "kerberos/krb5conf.h"
#include "proto/issuer.pb-c.h"
#include "rpc/client.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/mem.h"

#define REMOTE_MAX_TOKEN 8192
#define REMOTE_CLASS_CACHE_SECS 30
#define REMOTE_CLASS_CACHE_SIZE 16
#define CSI_REMOTE_MAX_SCOPES 16

typedef struct class_cache_entry {
	char name[CA_STORE_MAX_CLASS_LEN + 1];
	ca_backend_kind backend;
	sigil_keyalg leaf_alg;
	int64_t max_lifetime;
	time_t fetched;
} class_cache_entry;

typedef struct remote_issuer {
	csi_issuer base;
	rpc_client *client;
	char *token_file;
	int64_t timeout_ms;
	int attempts;
	pthread_mutex_t lock;
	class_cache_entry cache[REMOTE_CLASS_CACHE_SIZE];
} remote_issuer;

static int code_to_err(int code)
{
	switch (code) {
	case RPC_INVALID_ARGUMENT:
	case RPC_OUT_OF_RANGE: return SIGIL_E_INVALID;
	case RPC_NOT_FOUND: return SIGIL_E_NOTFOUND;
	case RPC_ALREADY_EXISTS: return SIGIL_E_EXISTS;
	case RPC_PERMISSION_DENIED: return SIGIL_E_PERM;
	case RPC_UNAUTHENTICATED: return SIGIL_E_UNAUTH;
	case RPC_FAILED_PRECONDITION: return SIGIL_E_PRECOND;
	case RPC_UNIMPLEMENTED: return SIGIL_E_PRECOND;
	case RPC_RESOURCE_EXHAUSTED: return SIGIL_E_UNAVAIL;
	default: return SIGIL_E_UNAVAIL; /* UNAVAILABLE, DEADLINE, INTERNAL...: retry later */
	}
}

static bool retryable(int code)
{
	return code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED ||
	       code == RPC_RESOURCE_EXHAUSTED || code == RPC_ABORTED;
}

static void backoff(int attempt)
{
	unsigned r = 0;
	long base_ms = 100L << attempt; /* 100, 200, 400 ms ... */
	long ms;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (unsigned)time(NULL);
	ms = base_ms + (long)(r % (unsigned)(base_ms / 2 + 1)); /* + up to 50% jitter */
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* One unary call with the token, up to `attempts` tries of timeout_ms
 * each on transient failures. */
static int remote_call_ex(remote_issuer *ri, const char *method, const ProtobufCMessage *req,
			  int attempts, int64_t timeout_ms, uint8_t **resp, size_t *resp_len,
			  sigil_err *err)
{
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = malloc(n ? n : 1);
	uint8_t *tok = NULL;
	size_t tok_len = 0;
	char *auth = NULL;
	size_t auth_len = 0;
	rpc_status st = {0};
	int r;

	if (!buf)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	protobuf_c_message_pack(req, buf);
	r = sigil_fs_read_file(ri->token_file, REMOTE_MAX_TOKEN, &tok, &tok_len, err);
	if (r < 0) {
		sigil_freezero(buf, n);
		return sigil_err_prefix(err, "bearer token: ");
	}
	while (tok_len > 0 && (tok[tok_len - 1] == '\n' || tok[tok_len - 1] == '\r' || tok[tok_len - 1] == ' '))
		tok[--tok_len] = '\0';
	auth_len = tok_len + 8;
	auth = malloc(auth_len);
	if (auth)
		snprintf(auth, auth_len, "Bearer %s", (char *)tok);
	sigil_freezero(tok, tok_len);
	if (!auth) {
		sigil_freezero(buf, n);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	rpc_metadata md = {"authorization", auth};
	for (int attempt = 0; attempt < attempts; attempt++) {
		if (attempt > 0)
			backoff(attempt - 1);
		r = rpc_client_call(ri->client, method, buf, n, &md, 1, timeout_ms, &st, resp,
				    resp_len, err);
		if (r < 0)
			break;
		if (st.code == RPC_OK || !retryable(st.code))
			break;
		log_debug("%s: %s (%s), attempt %d", method, rpc_code_name(st.code), st.msg, attempt + 1);
	}
	sigil_freezero(auth, auth_len);
	sigil_freezero(buf, n);
	if (r < 0)
		return r;
	if (st.code != RPC_OK) {
		int code = code_to_err(st.code);
		if (code == SIGIL_E_UNAVAIL)
			return sigil_err_set(err, code, "issuer unavailable: %s: %s", rpc_code_name(st.code), st.msg);
		return sigil_err_set(err, code, "%s", st.msg);
	}
	return 0;
}

static int remote_call(remote_issuer *ri, const char *method, const ProtobufCMessage *req,
		       uint8_t **resp, size_t *resp_len, sigil_err *err)
{
	return remote_call_ex(ri, method, req, ri->attempts, ri->timeout_ms, resp, resp_len, err);
}

static int certs_from_der(ProtobufCBinaryData *list, size_t n, size_t skip, STACK_OF(X509) **ret,
			  sigil_err *err)
{
	STACK_OF(X509) *s = sk_X509_new_null();

	if (!s)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (size_t i = skip; i < n; i++) {
		const unsigned char *p = list[i].data;
		X509 *x = d2i_X509(NULL, &p, (long)list[i].len);
		if (!x || p != list[i].data + list[i].len || !sk_X509_push(s, x)) {
			X509_free(x);
			sk_X509_pop_free(s, X509_free);
			return sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA sent a malformed certificate");
		}
	}
	*ret = s;
	return 0;
}

static int scope_to_proto(const ca_scope *in, Sigil__V1__Scope *out, sigil_err *err)
{
	switch (in->kind) {
	case CA_SCOPE_NODE: out->kind = SIGIL__V1__SCOPE__KIND__NODE; break;
	case CA_SCOPE_POD: out->kind = SIGIL__V1__SCOPE__KIND__POD; break;
	case CA_SCOPE_SERVICE: out->kind = SIGIL__V1__SCOPE__KIND__SERVICE; break;
	case CA_SCOPE_LISTENER_VOLUME: out->kind = SIGIL__V1__SCOPE__KIND__LISTENER_VOLUME; break;
	default: return sigil_err_set(err, SIGIL_E_INVALID, "unknown scope");
	}
	if (in->name)
		out->name = in->name;
	return 0;
}

/* The pod and scopes of a request in protobuf form; pointers borrow from
 * the request. */
static int request_to_proto(const ca_identity *id, const ca_scope *in_scopes, size_t n,
			    Sigil__V1__PodIdentity *pod, Sigil__V1__Scope *scopes,
			    Sigil__V1__Scope **sp, sigil_err *err)
{
	int r;

	if (n > CSI_REMOTE_MAX_SCOPES)
		return sigil_err_set(err, SIGIL_E_LIMIT, "too many scopes");
	for (size_t i = 0; i < n; i++) {
		Sigil__V1__Scope sc = SIGIL__V1__SCOPE__INIT;

		if ((r = scope_to_proto(&in_scopes[i], &sc, err)) < 0)
			return r;
		scopes[i] = sc;
		sp[i] = &scopes[i];
	}
	if (id->pod_namespace)
		pod->namespace_ = (char *)id->pod_namespace;
	if (id->pod_name)
		pod->name = (char *)id->pod_name;
	return 0;
}

static int remote_issue(csi_issuer *is, const ca_issue_request *req, ca_issue_result *ret,
			sigil_err *err)
{
	remote_issuer *ri = (remote_issuer *)is;
	Sigil__V1__IssueRequest in = SIGIL__V1__ISSUE_REQUEST__INIT;
	Sigil__V1__PodIdentity pod = SIGIL__V1__POD_IDENTITY__INIT;
	Sigil__V1__Scope scopes[CSI_REMOTE_MAX_SCOPES], *sp[CSI_REMOTE_MAX_SCOPES];
	Sigil__V1__IssueResponse *out = NULL;
	ca_issue_result res = {0};
	uint8_t *resp = NULL;
	size_t rl = 0;
	int r;

	r = request_to_proto(req->identity, req->scopes, req->n_scopes, &pod, scopes, sp, err);
	if (r < 0)
		return r;
	in.class_name = (char *)req->class_name;
	in.pod = &pod;
	in.n_scopes = req->n_scopes;
	in.scopes = sp;
	in.csr.data = (uint8_t *)req->csr_der;
	in.csr.len = req->csr_der ? req->csr_len : 0;
	in.lifetime_seconds = req->lifetime_secs;
	in.jitter_factor = req->jitter_factor;
	r = remote_call(ri, "/sigil.v1.Issuer/Issue", &in.base, &resp, &rl, err);
	if (r < 0)
		return r;
	out = sigil__v1__issue_response__unpack(NULL, rl, resp);
	free(resp);
	if (!out)
		return sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA sent a malformed IssueResponse");
	if (req->csr_der) {
		if (out->n_certificate_chain == 0) {
			r = sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA sent no certificate");
			goto out;
		}
		const unsigned char *p = out->certificate_chain[0].data;
		res.leaf = d2i_X509(NULL, &p, (long)out->certificate_chain[0].len);
		if (!res.leaf) {
			r = sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA sent a malformed certificate");
			goto out;
		}
	}
	r = certs_from_der(out->certificate_chain, out->n_certificate_chain, req->csr_der ? 1 : 0,
			   &res.chain, err);
	if (r == 0)
		r = certs_from_der(out->trust_bundle, out->n_trust_bundle, 0, &res.trust, err);
	if (r == 0 && sk_X509_num(res.trust) == 0)
		r = sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA sent an empty trust bundle");
	res.not_after = out->not_after;
	res.bundle_version = out->bundle_version;
out:
	sigil__v1__issue_response__free_unpacked(out, NULL);
	if (r < 0) {
		ca_issue_result_free(&res);
		return r;
	}
	*ret = res;
	return 0;
}

static int remote_bundle(csi_issuer *is, const char *class_name, STACK_OF(X509) **ret,
			 uint64_t *version, sigil_err *err)
{
	remote_issuer *ri = (remote_issuer *)is;
	Sigil__V1__GetTrustBundleRequest in = SIGIL__V1__GET_TRUST_BUNDLE_REQUEST__INIT;
	Sigil__V1__GetTrustBundleResponse *out;
	uint8_t *resp = NULL;
	size_t rl = 0;
	int r;

	in.class_name = (char *)class_name;
	r = remote_call(ri, "/sigil.v1.Issuer/GetTrustBundle", &in.base, &resp, &rl, err);
	if (r < 0)
		return r;
	out = sigil__v1__get_trust_bundle_response__unpack(NULL, rl, resp);
	free(resp);
	if (!out)
		return sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA sent a malformed response");
	r = certs_from_der(out->trust_bundle, out->n_trust_bundle, 0, ret, err);
	if (r == 0 && version)
		*version = out->version;
	sigil__v1__get_trust_bundle_response__free_unpacked(out, NULL);
	return r;
}

static int remote_class(csi_issuer *is, const char *class_name, ca_class_config *ret, sigil_err *err)
{
	remote_issuer *ri = (remote_issuer *)is;
	Sigil__V1__GetClassRequest in = SIGIL__V1__GET_CLASS_REQUEST__INIT;
	Sigil__V1__GetClassResponse *out;
	uint8_t *resp = NULL;
	size_t rl = 0;
	time_t now = time(NULL);
	class_cache_entry e = {0};
	int r;

	pthread_mutex_lock(&ri->lock);
	for (int i = 0; i < REMOTE_CLASS_CACHE_SIZE; i++)
		if (!strcmp(ri->cache[i].name, class_name) && now - ri->cache[i].fetched < REMOTE_CLASS_CACHE_SECS) {
			e = ri->cache[i];
			break;
		}
	pthread_mutex_unlock(&ri->lock);
	if (!e.name[0]) {
		in.class_name = (char *)class_name;
		r = remote_call(ri, "/sigil.v1.Issuer/GetClass", &in.base, &resp, &rl, err);
		if (r < 0)
			return r;
		out = sigil__v1__get_class_response__unpack(NULL, rl, resp);
		free(resp);
		if (!out)
			return sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA sent a malformed response");
		snprintf(e.name, sizeof(e.name), "%s", class_name);
		e.backend = !strcmp(out->backend, "kerberosKeytab") ? CA_BACKEND_KERBEROS
			    : !strcmp(out->backend, "externalCa")   ? CA_BACKEND_EXTERNAL
								    : CA_BACKEND_AUTOTLS;
		if (ca_keyalg_parse(out->leaf_key_algorithm, &e.leaf_alg) < 0)
			e.leaf_alg = SIGIL_KEY_ECDSA_P256;
		e.max_lifetime = out->max_lifetime_seconds;
		e.fetched = now;
		sigil__v1__get_class_response__free_unpacked(out, NULL);
		pthread_mutex_lock(&ri->lock);
		int slot = 0;
		for (int i = 0; i < REMOTE_CLASS_CACHE_SIZE; i++)
			if (!strcmp(ri->cache[i].name, class_name) || ri->cache[i].fetched < ri->cache[slot].fetched)
				slot = i;
		ri->cache[slot] = e;
		pthread_mutex_unlock(&ri->lock);
	}
	ca_class_config_defaults(ret, e.name);
	ret->backend = e.backend;
	ret->leaf_key_alg = e.leaf_alg;
	ret->max_leaf_lifetime_secs = e.max_lifetime;
	return 0;
}

static int remote_keytab(csi_issuer *is, const csi_keytab_request *req, csi_keytab_result *ret,
			 sigil_err *err)
{
	remote_issuer *ri = (remote_issuer *)is;
	Sigil__V1__ProvisionKeytabRequest in = SIGIL__V1__PROVISION_KEYTAB_REQUEST__INIT;
	Sigil__V1__PodIdentity pod = SIGIL__V1__POD_IDENTITY__INIT;
	Sigil__V1__Scope scopes[CSI_REMOTE_MAX_SCOPES], *sp[CSI_REMOTE_MAX_SCOPES];
	Sigil__V1__ProvisionKeytabResponse *out = NULL;
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = NULL;
	csi_keytab_result res = {0};
	uint8_t *resp = NULL;
	size_t rl = 0;
	int r;

	r = request_to_proto(req->identity, req->scopes, req->n_scopes, &pod, scopes, sp, err);
	if (r < 0)
		return r;
	in.class_name = (char *)req->class_name;
	in.pod = &pod;
	in.n_scopes = req->n_scopes;
	in.scopes = sp;
	in.n_service_names = req->n_service_names;
	in.service_names = (char **)req->service_names;
	in.public_only = req->public_only;
	r = remote_call(ri, "/sigil.v1.Issuer/ProvisionKeytab", &in.base, &resp, &rl, err);
	if (r < 0)
		return r;
	out = sigil__v1__provision_keytab_response__unpack(NULL, rl, resp);
	sigil_freezero(resp, rl);
	if (!out)
		return sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA sent a malformed ProvisionKeytabResponse");
	/* Check what goes into the pod: a keytab that parses and holds a key
	 * (none for public parts) and a krb5.conf of sane size. */
	if (req->public_only != (out->keytab.len == 0)) {
		r = sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA sent %s keytab",
				  req->public_only ? "a" : "no");
		goto out;
	}
	if (!*out->krb5_conf || strlen(out->krb5_conf) > KERBEROS_KRB5CONF_MAX_SIZE) {
		r = sigil_err_set(err, SIGIL_E_UNAVAIL, "the CA sent an empty or oversized krb5.conf");
		goto out;
	}
	if (out->keytab.len) {
		if ((r = kerberos_keytab_parse(out->keytab.data, out->keytab.len, &kt, err)) < 0 ||
		    kt->n == 0) {
			if (r == 0)
				sigil_err_set(err, SIGIL_E_UNAVAIL, "keytab without keys");
			sigil_err_prefix(err, "the CA sent a bad keytab: ");
			r = SIGIL_E_UNAVAIL;
			goto out;
		}
		if (!(res.keytab = malloc(out->keytab.len))) {
			r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			goto out;
		}
		memcpy(res.keytab, out->keytab.data, out->keytab.len);
		res.keytab_len = out->keytab.len;
	}
	res.krb5_conf_len = strlen(out->krb5_conf);
	if (!(res.krb5_conf = strdup(out->krb5_conf))) {
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		goto out;
	}
	res.n_principals = out->n_principals;
out:
	OPENSSL_cleanse(out->keytab.data, out->keytab.len);
	sigil__v1__provision_keytab_response__free_unpacked(out, NULL);
	if (r < 0) {
		csi_keytab_result_free(&res);
		return r;
	}
	*ret = res;
	return 0;
}

static bool remote_ready(csi_issuer *is)
{
	remote_issuer *ri = (remote_issuer *)is;
	Sigil__V1__StatusRequest in = SIGIL__V1__STATUS_REQUEST__INIT;
	uint8_t *resp = NULL;
	size_t rl = 0;
	int r;

	/* Probe must answer quickly: one short attempt. */
	r = remote_call_ex(ri, "/sigil.v1.Issuer/Status", &in.base, 1, 2000, &resp, &rl, NULL);
	free(resp);
	return r == 0;
}

static void remote_free(csi_issuer *is)
{
	remote_issuer *ri = (remote_issuer *)is;

	rpc_client_free(ri->client);
	pthread_mutex_destroy(&ri->lock);
	free(ri->token_file);
	free(ri);
}

static const csi_issuer_ops remote_ops = {
	.issue = remote_issue,
	.trust_bundle = remote_bundle,
	.class_info = remote_class,
	.ready = remote_ready,
	.free = remote_free,
	.provision_keytab = remote_keytab,
};

int csi_issuer_remote_new(const csi_remote_config *cfg, csi_issuer **ret, sigil_err *err)
{
	remote_issuer *ri;
	uint8_t *bundle = NULL;
	size_t blen = 0;
	int r;

	if (!cfg->endpoint || !cfg->ca_bundle_file || !cfg->token_file)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "a remote CA needs --ca-endpoint, --ca-bundle and --token-file");
	r = sigil_fs_read_file(cfg->ca_bundle_file, SIGIL_MAX_FILE_SIZE, &bundle, &blen, err);
	if (r < 0)
		return sigil_err_prefix(err, "CA bundle: ");
	ri = calloc(1, sizeof(*ri));
	if (!ri) {
		free(bundle);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	ri->base.ops = &remote_ops;
	pthread_mutex_init(&ri->lock, NULL);
	ri->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 10000;
	ri->attempts = cfg->attempts ? cfg->attempts : 3;
	ri->token_file = strdup(cfg->token_file);
	rpc_client_config cc = {
		.target = cfg->endpoint,
		.tls_root_pem = (char *)bundle,
		.tls_server_name = cfg->server_name,
	};
	r = ri->token_file ? rpc_client_new(&cc, &ri->client, err)
			   : sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	free(bundle);
	if (r < 0) {
		remote_free(&ri->base);
		return r;
	}
	*ret = &ri->base;
	return 0;
}
