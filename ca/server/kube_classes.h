/* SecretClasses from the Kubernetes API (issue 6), for sigil-ca.
 *
 * Watches secrets.sigil.dev/v1alpha1 SecretClasses and, in compatibility
 * mode, Stackable's secrets.stackable.tech/v1alpha2 ones too, parses each
 * object with the same parser as the YAML files (ca/secretclass.h), and
 * hands the whole class set to a callback whenever it changes.
 *
 * The rules:
 * - A class that does not parse is left out and its error kept (see
 *   kube_classes_errors and on_error); it never takes the others down.
 * - A name defined in both groups: the sigil object wins (the Stackable
 *   one is reported as shadowed).
 * - The built-in class "tls" (autoTls, generated CA: like Stackable, so a
 *   first volume needs no configuration) is offered when no object is
 *   named "tls".  An object named "tls" that does not parse leaves "tls"
 *   out rather than silently falling back to a different CA.
 * - Classes are sorted by name; at most CA_SERVICE_MAX_CLASSES (the rest,
 *   by name, are reported as errors).
 * - Nothing is delivered before every watched group has been listed once
 *   (a group whose CRD is not installed counts as listed and empty), and
 *   afterwards only when the set actually changed.  While the apiserver is
 *   down the last set stays in force.
 *
 * Typical use in sigil-ca's main():
 *
 *     kube_classes_opts o = {.client = kc, .compat_stackable = compat,
 *                            .on_change = reload_classes, .on_error = log_class_error,
 *                            .ctx = svc};
 *     r = kube_classes_start(&o, &classes, &err);
 *     ... kube_classes_wait_ready(classes, 30000, &err) before serving ...
 *     kube_classes_stop(classes);
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "ca/service.h"
#include "kube/client.h"
#include "util/err.h"
#include "util/mem.h"

/* Errors kept for classes that were left out. */
#define KUBE_CLASSES_MAX_ERRORS 64

typedef struct kube_classes kube_classes;

/* The full class set, sorted by name; both pointers valid for the call
 * only.  Called on a watcher thread, never concurrently with itself or
 * on_error; must not call kube_classes_stop. */
typedef void (*kube_classes_change_fn)(const ca_class_config *classes, size_t n, void *ctx);
/* A class left out: name (may be "" for an unnamed object), the API group
 * it came from, and why.  Called once per object version (not on every
 * recomputation). */
typedef void (*kube_classes_error_fn)(const char *name, const char *group, const sigil_err *why,
                                      void *ctx);

typedef struct kube_classes_opts {
	kube_client *client;              /* borrowed; must outlive the watcher */
	bool compat_stackable;            /* also secrets.stackable.tech/v1alpha2 */
	kube_classes_change_fn on_change; /* required */
	kube_classes_error_fn on_error;   /* may be NULL */
	void *ctx;
	long backoff_min_ms;      /* after a failed watch; 0: 500 */
	long backoff_max_ms;      /* 0: 30000 */
	unsigned watch_timeout_s; /* per WATCH request; 0: 300 */
} kube_classes_opts;

typedef struct kube_class_error {
	char name[CA_CLASS_MAX_NAME];
	char group[64];
	sigil_err err;
} kube_class_error;

int kube_classes_start(const kube_classes_opts *o, kube_classes **ret, sigil_err *err) SIGIL_WUR;
/* Stops the watches within about a second and frees; accepts NULL.  No
 * callback runs after it returns. */
void kube_classes_stop(kube_classes *kc);
SIGIL_DEFINE_CLEANUP(kube_classes, kube_classes_stop)

/* Waits until the first class set was delivered.  SIGIL_E_TIMEOUT with
 * the watch's last error when it was not within timeout_ms. */
int kube_classes_wait_ready(kube_classes *kc, long timeout_ms, sigil_err *err) SIGIL_WUR;

/* The classes currently left out (sorted by name); returns how many were
 * written (at most max). */
size_t kube_classes_errors(kube_classes *kc, kube_class_error *ret, size_t max);

/* ---- the pure part (unit-tested) ------------------------------------------------- */

/* One SecretClass object as the API returns it -> ca_class_config.  The
 * apiVersion checked is the one of the resource watched (a List's items
 * may lack it); metadata other than the name, and status, are ignored. */
int kube_classes_parse_object(const kube_resource *res, const json_t *obj, ca_class_config *ret,
                              sigil_err *err) SIGIL_WUR;

/* Merges parsed classes: sigil ones (n_sigil) win over Stackable ones of
 * the same name, the built-in "tls" is added unless a parsed class or a
 * name in taken[] (objects that exist but did not parse) is "tls", the
 * result is sorted by name and capped at max.  Classes left out (shadowed,
 * over the cap) are described in dropped[] (at most max_dropped, counted
 * in *n_dropped). */
int kube_classes_merge(const ca_class_config *sigil, size_t n_sigil,
                       const ca_class_config *stackable, size_t n_stackable,
                       const char *const *taken, size_t n_taken, ca_class_config *ret, size_t max,
                       size_t *n, kube_class_error *dropped, size_t max_dropped, size_t *n_dropped,
                       sigil_err *err) SIGIL_WUR;
