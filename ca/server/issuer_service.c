#include "ca/server/issuer_service.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/issue.h"
#include "ca/key.h"
#include "ca/server/ca_metrics.h"
#include "ca/server/keytab.h"
#include "kerberos/kadm.h"
#include "kube/podinfo.h"
#include "proto/issuer.pb-c.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/mem.h"

#define ISSUER_MAX_SCOPES 16
#define ISSUER_MAX_NAME 253
#define ISSUER_MAX_POD_UID 128
/* Time kept back from the caller's deadline to send an answer. */
#define ISSUER_ANSWER_MARGIN_MS 500

static int pack(const ProtobufCMessage *msg, uint8_t **resp, size_t *resp_len)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n ? n : 1);

	if (!buf)
		return SIGIL_E_NOMEM;
	protobuf_c_message_pack(msg, buf);
	*resp = buf;
	*resp_len = n;
	return 0;
}

/* Bearer token -> caller; UNAUTHENTICATED otherwise. */
static int authenticate(issuer_server *s, const rpc_call *call, ca_caller *who, rpc_status *st)
{
	const char *v, *tok;
	size_t vl, tl;
	sigil_err err = {0};
	int r;

	if (rpc_call_get_metadata(call, "authorization", &v, &vl) < 0 ||
	    ca_auth_bearer(v, vl, &tok, &tl) < 0) {
		rpc_status_set(st, RPC_UNAUTHENTICATED, "missing bearer token");
		return SIGIL_E_UNAUTH;
	}
	r = ca_auth_authenticate(s->auth, tok, tl, who, &err);
	if (r < 0) {
		log_warn("%s from %s: %s", rpc_call_method(call), rpc_call_peer(call), err.msg);
		switch (r) {
		case SIGIL_E_UNAVAIL:
			/* TokenReview could not be asked: retry, it is not the
			 * caller's credential that failed. */
			rpc_status_set(st, RPC_UNAVAILABLE, "cannot authenticate the caller now: %s",
				       err.msg);
			return r;
		case SIGIL_E_PERM:
			rpc_status_set(st, RPC_PERMISSION_DENIED, "%s", err.msg);
			return r;
		default:
			/* The messages of both authenticators name the reason,
			 * never the token. */
			rpc_status_set(st, RPC_UNAUTHENTICATED, "invalid bearer token%s%s",
				       strcmp(err.msg, "invalid bearer token") ? ": " : "",
				       strcmp(err.msg, "invalid bearer token") ? err.msg : "");
			return SIGIL_E_UNAUTH;
		}
	}
	return 0;
}

static int authorize(const ca_caller *who, const char *class_name, rpc_status *st)
{
	if (!ca_caller_may_use(who, class_name)) {
		rpc_status_set(st, RPC_PERMISSION_DENIED, "node %s may not use SecretClass '%s'",
			       who->node, class_name);
		return SIGIL_E_PERM;
	}
	return 0;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ISSUER_MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '.'))
			return false;
	return true;
}

/* Scopes from a request; service and listener names are checked here. */
static int scopes_from_proto(Sigil__V1__Scope *const *in, size_t n, ca_scope *out, rpc_status *st)
{
	if (n > ISSUER_MAX_SCOPES) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "more than %d scopes", ISSUER_MAX_SCOPES);
		return SIGIL_E_INVALID;
	}
	for (size_t i = 0; i < n; i++) {
		const Sigil__V1__Scope *sc = in[i];

		switch (sc->kind) {
		case SIGIL__V1__SCOPE__KIND__NODE: out[i].kind = CA_SCOPE_NODE; break;
		case SIGIL__V1__SCOPE__KIND__POD: out[i].kind = CA_SCOPE_POD; break;
		case SIGIL__V1__SCOPE__KIND__SERVICE: out[i].kind = CA_SCOPE_SERVICE; break;
		case SIGIL__V1__SCOPE__KIND__LISTENER_VOLUME: out[i].kind = CA_SCOPE_LISTENER_VOLUME; break;
		default:
			rpc_status_set(st, RPC_INVALID_ARGUMENT, "scope %zu has no kind", i);
			return SIGIL_E_INVALID;
		}
		out[i].name = NULL;
		if (out[i].kind == CA_SCOPE_SERVICE || out[i].kind == CA_SCOPE_LISTENER_VOLUME) {
			if (!name_ok(sc->name)) {
				rpc_status_set(st, RPC_INVALID_ARGUMENT, "scope %zu: '%.64s' is not a valid name",
					       i, sc->name);
				return SIGIL_E_INVALID;
			}
			out[i].name = sc->name;
		}
	}
	return 0;
}

static bool uid_ok(const char *s)
{
	size_t n = strnlen(s, ISSUER_MAX_POD_UID + 1);

	if (n > ISSUER_MAX_POD_UID)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return false;
	return true;
}

/* The pod's namespace, name and uid, NULL when not given. */
static int pod_from_proto(const Sigil__V1__PodIdentity *pod, const char **ret_ns,
			  const char **ret_name, const char **ret_uid, rpc_status *st)
{
	const char *ns = pod && *pod->namespace_ ? pod->namespace_ : NULL;
	const char *name = pod && *pod->name ? pod->name : NULL;
	const char *uid = pod && *pod->uid ? pod->uid : NULL;

	if ((ns && !name_ok(ns)) || (name && !name_ok(name)) || (uid && !uid_ok(uid))) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "pod name, namespace or uid is not valid");
		return SIGIL_E_INVALID;
	}
	*ret_ns = ns;
	*ret_name = name;
	*ret_uid = uid;
	return 0;
}

/* Node authorization (issue 6; Stackable has no such check): with a
 * Kubernetes API the pod is looked up, and a node may only obtain secrets
 * for pods scheduled on it.  The facts the scopes need (node and pod IPs,
 * subdomain, listener addresses) come from the same lookup, so the names
 * in the certificate are the API's word, not the node's.
 *
 * The pod alone is read first and checked, so that a node asking for a
 * pod elsewhere learns nothing about that pod's listeners or node; then,
 * only if a node or listener scope needs them, everything is read again
 * and checked again (the pod may have been replaced in between). */
static int resolve_pod(issuer_server *s, const ca_caller *who, const char *ns, const char *name,
		       const char *uid, const ca_scope *scopes, size_t n_scopes,
		       kube_pod_info **ret, rpc_status *st)
{
	_cleanup_(kube_pod_info_freep) kube_pod_info *pi = NULL;
	const char *lvs[KUBE_POD_MAX_LISTENERS];
	size_t nl = 0;
	bool want_node = false;
	sigil_err err = {0};
	int r;

	if (who->admin) {
		rpc_status_set(st, RPC_PERMISSION_DENIED,
			       "admin credentials may not obtain certificates or keytabs for pods");
		return SIGIL_E_PERM;
	}
	if (!ns || !name) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT,
			       "the pod's namespace and name are required (is podInfoOnMount set "
			       "on the CSIDriver?)");
		return SIGIL_E_INVALID;
	}
	for (size_t i = 0; i < n_scopes; i++) {
		if (scopes[i].kind == CA_SCOPE_NODE)
			want_node = true;
		if (scopes[i].kind != CA_SCOPE_LISTENER_VOLUME)
			continue;
		if (nl >= KUBE_POD_MAX_LISTENERS) {
			rpc_status_set(st, RPC_INVALID_ARGUMENT, "more than %d listener-volume scopes",
				       KUBE_POD_MAX_LISTENERS);
			return SIGIL_E_INVALID;
		}
		lvs[nl++] = scopes[i].name;
	}
	for (int pass = 0; pass < 2; pass++) {
		kube_pod_info_free(TAKE_PTR(pi));
		if (pass == 0)
			r = kube_pod_info_get(s->kube, ns, name, false, NULL, 0, &pi, &err);
		else
			r = kube_pod_info_get(s->kube, ns, name, want_node, lvs, nl, &pi, &err);
		if (r < 0) {
			log_warn("node %s, pod %s/%s: %s", who->node, ns, name, err.msg);
			/* A Pod object sigil cannot read is not data loss here. */
			rpc_status_from_err(st, r == SIGIL_E_CORRUPT ? SIGIL_E_PRECOND : r, &err);
			return r;
		}
		if (!pi->node_name || strcmp(pi->node_name, who->node) != 0) {
			log_warn("refused: node %s asked for pod %s/%s, which is scheduled on %s",
				 who->node, ns, name, pi->node_name ? pi->node_name : "no node");
			rpc_status_set(st, RPC_PERMISSION_DENIED,
				       "node %s may not obtain secrets for pod %s/%s: it is scheduled "
				       "on %s",
				       who->node, ns, name,
				       pi->node_name ? pi->node_name : "no node yet");
			return SIGIL_E_PERM;
		}
		/* The pod with this name is another one than the node meant:
		 * a stale publish for a pod that was deleted and re-created. */
		if (uid && (!pi->uid || strcmp(pi->uid, uid) != 0)) {
			rpc_status_set(st, RPC_FAILED_PRECONDITION,
				       "pod %s/%s has uid %s, not %s: the pod was replaced", ns, name,
				       pi->uid ? pi->uid : "(none)", uid);
			return SIGIL_E_PRECOND;
		}
		if (kube_pod_info_terminated(pi)) {
			rpc_status_set(st, RPC_FAILED_PRECONDITION,
				       "pod %s/%s has terminated (phase %s): no new secrets for it", ns,
				       name, pi->phase);
			return SIGIL_E_PRECOND;
		}
		if (!want_node && nl == 0)
			break;
	}
	*ret = TAKE_PTR(pi);
	return 0;
}

static int fill_der_list(STACK_OF(X509) *certs, X509 *first, ProtobufCBinaryData **ret, size_t *n)
{
	size_t total = (size_t)(certs ? sk_X509_num(certs) : 0) + (first ? 1 : 0), k = 0;
	ProtobufCBinaryData *out = sigil_calloc(total, sizeof(*out));

	if (!out)
		return SIGIL_E_NOMEM;
	for (size_t i = 0; i < total; i++) {
		X509 *x = first ? (i == 0 ? first : sk_X509_value(certs, (int)i - 1))
				: sk_X509_value(certs, (int)i);
		unsigned char *der = NULL;
		int l = i2d_X509(x, &der);
		if (l <= 0) {
			for (size_t j = 0; j < k; j++)
				OPENSSL_free(out[j].data);
			free(out);
			return SIGIL_E_CRYPTO;
		}
		out[k].data = der;
		out[k].len = (size_t)l;
		k++;
	}
	*ret = out;
	*n = k;
	return 0;
}

static void free_der_list(ProtobufCBinaryData *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++)
		OPENSSL_free(l[i].data);
	free(l);
}

static int Issue(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
		 uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	issuer_server *s = ctx;
	Sigil__V1__IssueRequest *in;
	Sigil__V1__IssueResponse out = SIGIL__V1__ISSUE_RESPONSE__INIT;
	ca_scope scopes[ISSUER_MAX_SCOPES];
	ca_listener listeners[KUBE_POD_MAX_LISTENERS];
	_cleanup_(kube_pod_info_freep) kube_pod_info *pi = NULL;
	ca_issue_result res = {0};
	ca_caller who;
	sigil_err err = {0};
	int64_t t0 = sigil_mono_ns();
	bool counted = false;
	int r;

	r = authenticate(s, call, &who, st);
	if (r < 0)
		return r;
	in = sigil__v1__issue_request__unpack(NULL, req_len, req);
	if (!in)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "malformed IssueRequest"), SIGIL_E_INVALID;
	r = SIGIL_E_INVALID;
	if (!*in->class_name) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "class_name is required");
		goto out;
	}
	if ((r = authorize(&who, in->class_name, st)) < 0)
		goto out;
	/* Counted from here: the caller is authenticated and allowed to use
	 * the class (bounds the label values to what tokens permit). */
	counted = true;
	r = SIGIL_E_INVALID;
	if (in->csr.len > CA_MAX_CSR_DER) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "CSR larger than %d bytes", CA_MAX_CSR_DER);
		goto out;
	}
	if (!(in->jitter_factor >= 0.0 && in->jitter_factor < 1.0) || in->lifetime_seconds < 0) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "lifetime or jitter out of range");
		goto out;
	}
	if ((r = scopes_from_proto(in->scopes, in->n_scopes, scopes, st)) < 0)
		goto out;
	const char *pod_ns, *pod_name, *pod_uid;
	if ((r = pod_from_proto(in->pod, &pod_ns, &pod_name, &pod_uid, st)) < 0)
		goto out;
	/* The node name comes from the credential, never from the request.
	 * Standalone, the pod's identity is the authenticated node's word;
	 * with a Kubernetes API it is checked against spec.nodeName. */
	ca_identity id = {.node_name = who.node, .pod_namespace = pod_ns, .pod_name = pod_name};
	if (s->kube) {
		if ((r = resolve_pod(s, &who, pod_ns, pod_name, pod_uid, scopes, in->n_scopes, &pi,
				     st)) < 0)
			goto out;
		kube_pod_info_identity(pi, &id, listeners);
	}
	ca_issue_request ir = {
		.class_name = in->class_name,
		.identity = &id,
		.scopes = scopes,
		.n_scopes = in->n_scopes,
		.csr_der = in->csr.len ? in->csr.data : NULL,
		.csr_len = in->csr.len,
		.lifetime_secs = in->lifetime_seconds,
		.jitter_factor = in->jitter_factor,
	};
	pthread_rwlock_rdlock(&s->lock);
	r = ca_service_issue(s->svc, &ir, &res, &err);
	pthread_rwlock_unlock(&s->lock);
	if (r < 0) {
		log_warn("Issue %s for node %s pod %s/%s: %s", in->class_name, who.node,
			 pod_ns ? pod_ns : "-", pod_name ? pod_name : "-", err.msg);
		rpc_status_from_err(st, r, &err);
		goto out;
	}
	r = fill_der_list(res.chain, res.leaf, &out.certificate_chain, &out.n_certificate_chain);
	if (r == 0)
		r = fill_der_list(res.trust, NULL, &out.trust_bundle, &out.n_trust_bundle);
	out.not_after = res.not_after;
	out.bundle_version = res.bundle_version;
	if (r == 0)
		r = pack(&out.base, resp, resp_len);
	if (r == 0 && res.leaf)
		log_info("issued %s certificate for node %s pod %s/%s, notAfter %lld", in->class_name,
			 who.node, pod_ns ? pod_ns : "-", pod_name ? pod_name : "-",
			 (long long)res.not_after);
	free_der_list(out.certificate_chain, out.n_certificate_chain);
	free_der_list(out.trust_bundle, out.n_trust_bundle);
out:
	if (counted)
		ca_metrics_issued(s->metrics, in->class_name, r == 0,
				  (double)(sigil_mono_ns() - t0) / 1e9);
	ca_issue_result_free(&res);
	sigil__v1__issue_request__free_unpacked(in, NULL);
	return r;
}

static int GetTrustBundle(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
			  uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	issuer_server *s = ctx;
	Sigil__V1__GetTrustBundleRequest *in;
	Sigil__V1__GetTrustBundleResponse out = SIGIL__V1__GET_TRUST_BUNDLE_RESPONSE__INIT;
	STACK_OF(X509) *trust = NULL;
	uint64_t version = 0;
	ca_caller who;
	sigil_err err = {0};
	int r;

	r = authenticate(s, call, &who, st);
	if (r < 0)
		return r;
	in = sigil__v1__get_trust_bundle_request__unpack(NULL, req_len, req);
	if (!in)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "malformed request"), SIGIL_E_INVALID;
	r = authorize(&who, in->class_name, st);
	if (r == 0) {
		pthread_rwlock_rdlock(&s->lock);
		r = ca_service_trust_bundle(s->svc, in->class_name, &trust, &version, &err);
		pthread_rwlock_unlock(&s->lock);
		if (r < 0)
			rpc_status_from_err(st, r, &err);
	}
	if (r == 0)
		r = fill_der_list(trust, NULL, &out.trust_bundle, &out.n_trust_bundle);
	out.version = version;
	if (r == 0)
		r = pack(&out.base, resp, resp_len);
	free_der_list(out.trust_bundle, out.n_trust_bundle);
	sk_X509_pop_free(trust, X509_free);
	sigil__v1__get_trust_bundle_request__free_unpacked(in, NULL);
	return r;
}

static int GetClass(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
		    uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	issuer_server *s = ctx;
	Sigil__V1__GetClassRequest *in;
	Sigil__V1__GetClassResponse out = SIGIL__V1__GET_CLASS_RESPONSE__INIT;
	ca_class_config *cfg = malloc(sizeof(*cfg));
	ca_caller who;
	sigil_err err = {0};
	int r;

	if (!cfg)
		return SIGIL_E_NOMEM;
	r = authenticate(s, call, &who, st);
	if (r < 0)
		goto done;
	in = sigil__v1__get_class_request__unpack(NULL, req_len, req);
	if (!in) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "malformed request");
		r = SIGIL_E_INVALID;
		goto done;
	}
	r = authorize(&who, in->class_name, st);
	if (r == 0) {
		pthread_rwlock_rdlock(&s->lock);
		r = ca_service_class(s->svc, in->class_name, cfg, &err);
		pthread_rwlock_unlock(&s->lock);
		if (r < 0)
			rpc_status_from_err(st, r, &err);
	}
	if (r == 0) {
		out.name = cfg->name;
		out.backend = (char *)ca_backend_name(cfg->backend);
		out.leaf_key_algorithm = (char *)ca_keyalg_name(cfg->leaf_key_alg);
		out.max_lifetime_seconds = cfg->max_leaf_lifetime_secs;
		r = pack(&out.base, resp, resp_len);
	}
	sigil__v1__get_class_request__free_unpacked(in, NULL);
done:
	free(cfg);
	return r;
}

static int Status(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
		  uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	issuer_server *s = ctx;
	Sigil__V1__StatusRequest *in;
	Sigil__V1__StatusResponse out = SIGIL__V1__STATUS_RESPONSE__INIT;
	ca_class_status *cs = NULL;
	Sigil__V1__ClassStatus *classes = NULL, **cptrs = NULL;
	Sigil__V1__CaGeneration *gens = NULL, **gptrs = NULL;
	ca_caller who;
	sigil_err err = {0};
	size_t n, ng = 0, k = 0;
	int r;

	r = authenticate(s, call, &who, st);
	if (r < 0)
		return r;
	in = sigil__v1__status_request__unpack(NULL, req_len, req);
	if (!in)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "malformed request"), SIGIL_E_INVALID;
	pthread_rwlock_rdlock(&s->lock);
	n = ca_service_class_count(s->svc);
	cs = sigil_calloc(n, sizeof(*cs));
	classes = sigil_calloc(n, sizeof(*classes));
	cptrs = sigil_calloc(n, sizeof(*cptrs));
	r = cs && classes && cptrs ? 0 : SIGIL_E_NOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = ca_service_status(s->svc, i, &cs[i], &err);
		ng += cs[i].n_gens;
	}
	pthread_rwlock_unlock(&s->lock);
	if (r == 0) {
		gens = sigil_calloc(ng, sizeof(*gens));
		gptrs = sigil_calloc(ng, sizeof(*gptrs));
		if (!gens || !gptrs)
			r = SIGIL_E_NOMEM;
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (*in->class_name && strcmp(in->class_name, cs[i].name))
			continue;
		if (!ca_caller_may_use(&who, cs[i].name))
			continue;
		Sigil__V1__ClassStatus c = SIGIL__V1__CLASS_STATUS__INIT;
		c.name = cs[i].name;
		c.backend = (char *)ca_backend_name(cs[i].backend);
		c.bundle_version = cs[i].bundle_version;
		c.generations = &gptrs[k];
		for (size_t j = 0; j < cs[i].n_gens; j++) {
			Sigil__V1__CaGeneration g = SIGIL__V1__CA_GENERATION__INIT;
			g.generation = cs[i].gens[j].generation;
			g.subject = cs[i].gens[j].subject;
			g.key_type = cs[i].gens[j].key_type;
			g.not_before = cs[i].gens[j].not_before;
			g.not_after = cs[i].gens[j].not_after;
			g.retired = cs[i].gens[j].retired;
			gens[k] = g;
			gptrs[k] = &gens[k];
			k++;
			c.n_generations++;
		}
		classes[out.n_classes] = c;
		cptrs[out.n_classes] = &classes[out.n_classes];
		out.n_classes++;
	}
	out.classes = cptrs;
	if (r == 0)
		r = pack(&out.base, resp, resp_len);
	else
		rpc_status_from_err(st, r, &err);
	free(gens);
	free(gptrs);
	free(classes);
	free(cptrs);
	free(cs);
	sigil__v1__status_request__free_unpacked(in, NULL);
	return r;
}

static int Rotate(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
		  uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	issuer_server *s = ctx;
	Sigil__V1__RotateRequest *in;
	Sigil__V1__RotateResponse out = SIGIL__V1__ROTATE_RESPONSE__INIT;
	ca_caller who;
	sigil_err err = {0};
	uint64_t v = 0;
	int r;

	r = authenticate(s, call, &who, st);
	if (r < 0)
		return r;
	if (!who.admin)
		return rpc_status_set(st, RPC_PERMISSION_DENIED, "rotating a CA needs an admin token"),
		       SIGIL_E_PERM;
	in = sigil__v1__rotate_request__unpack(NULL, req_len, req);
	if (!in)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "malformed request"), SIGIL_E_INVALID;
	pthread_rwlock_rdlock(&s->lock);
	r = ca_service_rotate(s->svc, in->class_name, &err);
	if (r == 0) {
		STACK_OF(X509) *t = NULL;
		if (ca_service_trust_bundle(s->svc, in->class_name, &t, &v, NULL) == 0)
			sk_X509_pop_free(t, X509_free);
	}
	pthread_rwlock_unlock(&s->lock);
	if (r < 0) {
		rpc_status_from_err(st, r, &err);
	} else {
		log_info("rotated the CA of class %s (bundle version %llu)", in->class_name,
			 (unsigned long long)v);
		out.bundle_version = v;
		r = pack(&out.base, resp, resp_len);
	}
	sigil__v1__rotate_request__free_unpacked(in, NULL);
	return r;
}

/* How long kadmind may take: what is left of the caller's deadline, less
 * a margin to answer in, and never more than the kadm default. */
static int64_t kadm_timeout_ms(const rpc_call *call)
{
	int64_t left = rpc_call_remaining_ms(call);

	if (left == INT64_MAX || left - ISSUER_ANSWER_MARGIN_MS > KERBEROS_KADM_DEFAULT_TIMEOUT_MS)
		return KERBEROS_KADM_DEFAULT_TIMEOUT_MS;
	return left - ISSUER_ANSWER_MARGIN_MS;
}

static int ProvisionKeytab(void *ctx, const rpc_call *call, const uint8_t *req, size_t req_len,
			   uint8_t **resp, size_t *resp_len, rpc_status *st)
{
	issuer_server *s = ctx;
	Sigil__V1__ProvisionKeytabRequest *in;
	Sigil__V1__ProvisionKeytabResponse out = SIGIL__V1__PROVISION_KEYTAB_RESPONSE__INIT;
	_cleanup_(issuer_keytab_plan_freep) issuer_keytab_plan *plan = NULL;
	ca_scope scopes[ISSUER_MAX_SCOPES];
	ca_listener listeners[KUBE_POD_MAX_LISTENERS];
	_cleanup_(kube_pod_info_freep) kube_pod_info *pi = NULL;
	const char *pod_ns = NULL, *pod_name = NULL, *pod_uid = NULL;
	uint8_t *kt = NULL;
	size_t kt_len = 0;
	int64_t timeout;
	ca_caller who;
	sigil_err err = {0};
	int64_t t0 = sigil_mono_ns();
	bool counted = false;
	int r;

	r = authenticate(s, call, &who, st);
	if (r < 0)
		return r;
	in = sigil__v1__provision_keytab_request__unpack(NULL, req_len, req);
	if (!in)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "malformed ProvisionKeytabRequest"),
		       SIGIL_E_INVALID;
	r = SIGIL_E_INVALID;
	if (!*in->class_name) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "class_name is required");
		goto out;
	}
	if ((r = authorize(&who, in->class_name, st)) < 0)
		goto out;
	counted = true;
	if ((r = scopes_from_proto(in->scopes, in->n_scopes, scopes, st)) < 0 ||
	    (r = pod_from_proto(in->pod, &pod_ns, &pod_name, &pod_uid, st)) < 0)
		goto out;
	if (in->n_service_names > ISSUER_KEYTAB_MAX_SERVICE_NAMES) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "more than %d service names",
			       ISSUER_KEYTAB_MAX_SERVICE_NAMES);
		r = SIGIL_E_INVALID;
		goto out;
	}
	/* As for certificates: the node name comes from the credential, the
	 * principals from the CA's reading of the scopes. */
	ca_identity id = {.node_name = who.node, .pod_namespace = pod_ns, .pod_name = pod_name};
	if (s->kube) {
		if ((r = resolve_pod(s, &who, pod_ns, pod_name, pod_uid, scopes, in->n_scopes, &pi,
				     st)) < 0)
			goto out;
		kube_pod_info_identity(pi, &id, listeners);
	}
	issuer_keytab_request kr = {
		.class_name = in->class_name,
		.identity = &id,
		.scopes = scopes,
		.n_scopes = in->n_scopes,
		.service_names = (const char *const *)in->service_names,
		.n_service_names = in->n_service_names,
		.public_only = in->public_only,
	};
	pthread_rwlock_rdlock(&s->lock);
	r = issuer_keytab_plan_new(s->svc, &kr, &plan, &err);
	pthread_rwlock_unlock(&s->lock);
	if (r == 0) {
		timeout = kadm_timeout_ms(call);
		if (timeout <= 0)
			r = sigil_err_set(&err, SIGIL_E_TIMEOUT,
					  "the caller's deadline leaves no time to ask kadmind");
		else
			r = issuer_keytab_run(plan, timeout, &kt, &kt_len, &err);
	}
	if (r < 0) {
		log_warn("ProvisionKeytab %s for node %s pod %s/%s: %s", in->class_name, who.node,
			 pod_ns ? pod_ns : "-", pod_name ? pod_name : "-", err.msg);
		rpc_status_from_err(st, r, &err);
		goto out;
	}
	out.keytab.data = kt;
	out.keytab.len = kt_len;
	out.krb5_conf = plan->krb5_conf;
	out.principals = plan->principals;
	out.n_principals = plan->n_principals;
	r = pack(&out.base, resp, resp_len);
	if (r == 0)
		log_info("provisioned %s keytab for node %s pod %s/%s: %zu principal(s)%s",
			 in->class_name, who.node, pod_ns ? pod_ns : "-", pod_name ? pod_name : "-",
			 plan->n_principals, plan->public_only ? " (krb5.conf only)" : "");
out:
	if (counted)
		ca_metrics_keytab(s->metrics, in->class_name, r == 0,
				  (double)(sigil_mono_ns() - t0) / 1e9);
	sigil_freezero(kt, kt_len);
	sigil__v1__provision_keytab_request__free_unpacked(in, NULL);
	return r;
}

size_t issuer_server_methods(issuer_server *s, rpc_method *m)
{
	size_t n = 0;

#define M(name) m[n++] = (rpc_method){"/sigil.v1.Issuer/" #name, name, s}
	M(Issue);
	M(GetTrustBundle);
	M(GetClass);
	M(Status);
	M(Rotate);
	M(ProvisionKeytab);
#undef M
	return n;
}

void issuer_server_swap(issuer_server *s, ca_service *svc)
{
	ca_service *old;

	pthread_rwlock_wrlock(&s->lock);
	old = s->svc;
	s->svc = svc;
	pthread_rwlock_unlock(&s->lock);
	ca_service_free(old);
}
