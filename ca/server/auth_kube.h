/* Callers of sigil-ca authenticated by the Kubernetes API (TokenReview).
 *
 * sigil-csi sends its projected service account token (audience
 * "sigil-ca").  The apiserver says whose it is; a token bound to a pod
 * also names the node that pod runs on (user.extra
 * authentication.kubernetes.io/node-name, Kubernetes 1.30+).  That node
 * binding, never anything in the request, is the caller's node.
 *
 *   service account in node_accounts, token with a node binding -> node
 *   service account in admin_accounts                           -> admin
 *   anything else the apiserver accepts                         -> SIGIL_E_PERM
 *   a token the apiserver refuses                               -> SIGIL_E_UNAUTH
 *   apiserver unreachable                                       -> SIGIL_E_UNAVAIL
 *
 * Answers are cached by SHA-256 of the token (the token itself is never
 * stored): accepted ones until the token's own "exp" claim but at most
 * CA_AUTH_KUBE_POSITIVE_TTL_SECS, refused ones CA_AUTH_KUBE_NEGATIVE_TTL_SECS;
 * at most CA_AUTH_KUBE_CACHE_MAX entries (the soonest to expire is evicted). */
#pragma once
#include <stdint.h>

#include "ca/server/auth.h"
#include "kube/client.h"
#include "util/clock.h"

#define CA_AUTH_KUBE_DEFAULT_AUDIENCE "sigil-ca"
#define CA_AUTH_KUBE_DEFAULT_NODE_SA "sigil-csi"
#define CA_AUTH_KUBE_MAX_ACCOUNTS 32
#define CA_AUTH_KUBE_MAX_AUDIENCE 256
#define CA_AUTH_KUBE_CACHE_MAX 4096
#define CA_AUTH_KUBE_POSITIVE_TTL_SECS 300
#define CA_AUTH_KUBE_NEGATIVE_TTL_SECS 10
/* The JWT payload we decode for "exp" (a service account token's payload
 * is a few hundred bytes). */
#define CA_AUTH_KUBE_MAX_JWT_PAYLOAD 3072

typedef struct ca_auth_kube_config {
	kube_client *client;               /* borrowed: must outlive the auth */
	const char *audience;              /* NULL: CA_AUTH_KUBE_DEFAULT_AUDIENCE */
	const char *const *node_accounts;  /* "namespace/name"; NULL/0: <namespace>/sigil-csi */
	size_t n_node_accounts;
	const char *const *admin_accounts; /* "namespace/name" */
	size_t n_admin_accounts;
	const char *namespace_;            /* sigil's own; NULL: the client's default */
	const sigil_clock *clock;          /* NULL: the real clock */
} ca_auth_kube_config;

int ca_auth_kube_new(const ca_auth_kube_config *cfg, ca_auth **ret, sigil_err *err) SIGIL_WUR;

/* Checks a "namespace/name" service account reference. */
bool ca_auth_kube_account_ok(const char *ref);

/* The "exp" claim of a JWT (no signature check: only used to bound how long
 * an answer the apiserver gave is cached).  SIGIL_E_INVALID when tok is not
 * a JWT or has no usable exp.  Exposed for tests and fuzzing. */
int ca_auth_kube_jwt_exp(const char *tok, size_t len, int64_t *ret) SIGIL_WUR;

/* How many TokenReviews this auth has sent (tests, metrics). */
uint64_t ca_auth_kube_reviews(const ca_auth *a);

/* Asks each auth in turn: the first that knows the token answers.  An
 * SIGIL_E_UNAUTH goes on to the next one; any other answer (a caller, a
 * refusal, the apiserver being down) is final.  Takes ownership of the
 * members, also on failure.  At most CA_AUTH_CHAIN_MAX. */
#define CA_AUTH_CHAIN_MAX 4
int ca_auth_chain_new(ca_auth *const *members, size_t n, ca_auth **ret, sigil_err *err) SIGIL_WUR;
