/* The TrustStore controller (issue 6), for sigil-ca.
 *
 * A TrustStore (namespaced; secrets.sigil.dev/v1alpha1 and, in
 * compatibility mode, Stackable's secrets.stackable.tech/v1alpha1 with the
 * same fields) asks for a SecretClass's trust bundle to be published:
 *
 *     apiVersion: secrets.sigil.dev/v1alpha1
 *     kind: TrustStore
 *     metadata: {name: my-ca, namespace: apps}
 *     spec:
 *       secretClassName: tls
 *       targetKind: ConfigMap   # or Secret; default ConfigMap
 *       format: tls-pem         # or tls-pkcs12; default tls-pem
 *
 * The controller writes an object of the TrustStore's kind targetKind, name
 * and namespace holding "ca.crt" (tls-pem: the PEM bundle) or
 * "truststore.p12" (tls-pkcs12: a PKCS#12 truststore with an empty
 * password, Java's trustedCertEntry bags; ConfigMaps carry it in
 * binaryData), labelled app.kubernetes.io/managed-by=sigil and
 * secrets.sigil.dev/truststore=true, with an ownerReference to the
 * TrustStore (so the garbage collector removes it with the TrustStore) and
 * the annotation secrets.sigil.dev/bundle-sha256.
 *
 * It keeps the object current: whenever a TrustStore changes (a watch on
 * TrustStores only), when the caller says that bundles changed
 * (truststore_kick), and every resync interval, it GETs each TrustStore's
 * target by name, compares it with the desired object and writes it when
 * they differ (a new bundle, an edit by someone else, a deleted object).
 * Updates carry the resourceVersion read (409 -> re-read and retry).  It
 * never lists, watches or deletes ConfigMaps or Secrets, so sigil-ca's RBAC
 * grants only get, create and update on them.  When targetKind changes,
 * the object of the old kind is left in place: its ownerReference makes
 * the garbage collector remove it with the TrustStore.
 *
 * An object of that name that sigil does not manage (without both labels)
 * is never overwritten.  That, an unknown class, a class without a trust
 * bundle (kerberosKeytab) and a bad spec are errors reported through
 * on_error and as a Warning Event on the TrustStore, once per TrustStore
 * version and message.
 *
 * Run it on one sigil-ca replica at a time (the leader): two controllers
 * would both write, which is harmless (same content) but wasteful.
 *
 * Typical use in sigil-ca's main():
 *
 *     static int bundle(const char *cls, char **pem, size_t *len, uint64_t *ver, void *ctx,
 *                       sigil_err *err) {
 *             STACK_OF(X509) *certs = NULL;
 *             int r = ca_service_trust_bundle(ctx, cls, &certs, ver, err);
 *             if (r == 0) r = truststore_pem_from_certs(certs, pem, len, err);
 *             sk_X509_pop_free(certs, X509_free);
 *             return r;
 *     }
 *     truststore_opts o = {.client = kc, .compat_stackable = compat,
 *                          .get_bundle = bundle, .on_error = log_ts_error, .ctx = svc};
 *     r = truststore_start(&o, &ts, &err);
 *     ... after ca_service_refresh() reports a changed bundle: truststore_kick(ts);
 *     truststore_stop(ts);
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "ca/service.h"
#include "kube/client.h"
#include "util/err.h"
#include "util/mem.h"

/* A TrustStore object as text (fuzzing, tests). */
#define TRUSTSTORE_MAX_OBJECT (1024u * 1024)
/* A trust bundle handed to the controller. */
#define TRUSTSTORE_MAX_BUNDLE (512u * 1024)
/* Certificates in one bundle. */
#define TRUSTSTORE_MAX_CERTS 64

#define TRUSTSTORE_LABEL_MANAGED_BY  "app.kubernetes.io/managed-by"
#define TRUSTSTORE_LABEL_TRUSTSTORE  "secrets.sigil.dev/truststore"
#define TRUSTSTORE_ANNOTATION_BUNDLE "secrets.sigil.dev/bundle-sha256"

typedef enum truststore_target {
	TRUSTSTORE_TARGET_CONFIGMAP,
	TRUSTSTORE_TARGET_SECRET,
} truststore_target;

typedef enum truststore_format {
	TRUSTSTORE_FORMAT_PEM,    /* tls-pem: ca.crt */
	TRUSTSTORE_FORMAT_PKCS12, /* tls-pkcs12: truststore.p12 */
} truststore_format;

typedef struct truststore_spec {
	char name[KUBE_MAX_NAME + 1];
	char namespace_[64];
	char uid[128];
	char api_version[64]; /* of the TrustStore (for the ownerReference) */
	char class_name[CA_CLASS_MAX_NAME];
	truststore_target target;
	truststore_format format;
} truststore_spec;

/* ---- the pure part (unit-tested, fuzzed) ----------------------------------------- */

/* A TrustStore object (as the API returns it) -> spec.  The apiVersion is
 * taken from res (list items may lack it).  Unknown spec fields are
 * errors naming the field (a typo must not silently pick a default). */
int truststore_spec_from_json(const kube_resource *res, const json_t *obj, truststore_spec *ret,
                              sigil_err *err) SIGIL_WUR;
/* Same from JSON text (at most TRUSTSTORE_MAX_OBJECT bytes). */
int truststore_spec_parse(const kube_resource *res, const char *text, size_t len,
                          truststore_spec *ret, sigil_err *err) SIGIL_WUR;

/* The object the controller wants for spec and a bundle: a ConfigMap or
 * Secret as JSON (labels, annotations, ownerReference, data).  pem is the
 * PEM bundle (at most TRUSTSTORE_MAX_BUNDLE bytes, 1..TRUSTSTORE_MAX_CERTS
 * certificates). */
int truststore_desired_object(const truststore_spec *spec, const char *pem, size_t pem_len,
                              json_t **ret, sigil_err *err) SIGIL_WUR;

/* Whether an existing ConfigMap/Secret carries both sigil labels. */
bool truststore_object_managed(const json_t *obj);

/* Whether the existing object already holds what desired holds (same
 * data keys and bytes, or for tls-pkcs12 the same bundle hash and an
 * untouched file, our labels and the ownerReference). */
bool truststore_object_current(const json_t *existing, const json_t *desired);

/* PEM of a certificate stack, for get_bundle callbacks. */
int truststore_pem_from_certs(STACK_OF(X509) * certs, char **ret, size_t *ret_len,
                              sigil_err *err) SIGIL_WUR;

/* ---- the controller ----------------------------------------------------------------- */

/* The class's trust bundle as PEM (malloc'ed, freed by the controller)
 * and its version.  SIGIL_E_NOTFOUND for an unknown class. */
typedef int (*truststore_bundle_fn)(const char *class_name, char **pem, size_t *pem_len,
                                    uint64_t *version, void *ctx, sigil_err *err);
/* A TrustStore that could not be served (called once per TrustStore
 * version and message, on the controller thread). */
typedef void (*truststore_error_fn)(const char *ns, const char *name, const sigil_err *why,
                                    void *ctx);
/* What the controller did: action is "created" or "updated";
 * kind "ConfigMap" or "Secret".  May be NULL. */
typedef void (*truststore_action_fn)(const char *ns, const char *name, const char *kind,
                                     const char *action, void *ctx);

typedef struct truststore_opts {
	kube_client *client;             /* borrowed; must outlive the controller */
	bool compat_stackable;           /* also secrets.stackable.tech/v1alpha1 TrustStores */
	truststore_bundle_fn get_bundle; /* required */
	truststore_error_fn on_error;    /* may be NULL */
	truststore_action_fn on_action;  /* may be NULL */
	void *ctx;
	bool no_events;           /* do not post Kubernetes Events */
	long resync_ms;           /* GET every target this often; 0: 60000 */
	long backoff_min_ms;      /* the TrustStore watch; 0: 500 */
	long backoff_max_ms;      /* 0: 30000 */
	unsigned watch_timeout_s; /* 0: 300 */
} truststore_opts;

typedef struct truststore truststore;

int truststore_start(const truststore_opts *o, truststore **ret, sigil_err *err) SIGIL_WUR;
/* Stops within about a second (a write in flight finishes first) and
 * frees; accepts NULL. */
void truststore_stop(truststore *ts);
SIGIL_DEFINE_CLEANUP(truststore, truststore_stop)
/* Bundles changed: reconcile every TrustStore now. */
void truststore_kick(truststore *ts);
