/* A mirror of the Secrets and ConfigMaps that SecretClasses reference
 * (issue 6), for sigil-ca in a cluster.
 *
 * ca_service reads a referenced object as the files
 * SECRETS_DIR/<namespace>/<name>/<key> (the way a mounted Secret looks;
 * ca_service_secret_file in ca/service.h).  In a cluster the objects live
 * in the API: kube_secrets_sync GETs each one referenced by the class set
 * (autoTls ca.secret, additionalTrustRoots Secrets and ConfigMaps,
 * kerberosKeytab adminKeytabSecret) and writes its keys there:
 * - directories 0700, files 0600, crash-safe writes (util/fs.h), files
 *   rewritten only when their content changed;
 * - Secret data is base64-decoded, ConfigMap data copied and binaryData
 *   decoded; decoded bytes are wiped before they are freed;
 * - key names are checked as the apiserver checks them (no '/', no "..");
 *   sizes and counts are bounded;
 * - keys that disappeared from the object are removed;
 * - a referenced object that does not exist (404) has its directory
 *   removed, so that the class fails at issuance naming the files; any
 *   other error (apiserver down) keeps the last copy;
 * - directories mirrored before but no longer referenced are removed.
 *   Each mirrored directory carries the file KUBE_SECRETS_MARKER (a name
 *   no Secret key can have), and only such directories are ever removed,
 *   so anything else under SECRETS_DIR is left alone.
 *
 * The caller runs it when the class set changes and periodically (sigil-ca:
 * from the kube_classes on_change callback, before handing the classes to
 * ca_service, and every resync interval).  Not thread-safe against itself:
 * one caller at a time per SECRETS_DIR. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ca/service.h"
#include "kube/client.h"
#include "util/err.h"

/* Keys of one object, bytes of one value, bytes of one object (the
 * apiserver itself stores at most 1 MiB per object). */
#define KUBE_SECRETS_MAX_KEYS   256
#define KUBE_SECRETS_MAX_VALUE  (1024u * 1024)
#define KUBE_SECRETS_MAX_OBJECT (2u * 1024 * 1024)
/* A key is a file name: the apiserver's limit. */
#define KUBE_SECRETS_MAX_KEY 253
/* Objects referenced by one class set. */
#define KUBE_SECRETS_MAX_REFS (CA_SERVICE_MAX_CLASSES * (CA_CLASS_MAX_TRUST_ROOTS + 2))
/* Marks a directory as written by the mirror (starts with "..", which the
 * apiserver refuses in keys). */
#define KUBE_SECRETS_MARKER "..sigil-mirror"

typedef struct kube_secrets_stats {
	size_t objects;       /* referenced objects mirrored */
	size_t files_written; /* new or changed */
	size_t files_removed; /* keys that disappeared */
	size_t dirs_removed;  /* objects no longer referenced or gone */
} kube_secrets_stats;

/* Mirrors every object the classes reference into secrets_dir (created
 * 0700 if missing).  Every object is attempted even when one fails; then
 * the first failure is returned, its message naming the object and the
 * class that references it (and how many others failed).  ret may be
 * NULL; it is filled in after every object was attempted, also when one
 * failed, so that the caller sees what the others changed.  An autoTls
 * ca.secret is referenced only with autoGenerate false (otherwise sigil's
 * CA store holds the CA and the Secret is never read). */
int kube_secrets_sync(kube_client *c, const char *secrets_dir, const ca_class_config *classes,
                      size_t n, kube_secrets_stats *ret, sigil_err *err) SIGIL_WUR;

/* ---- the pure parts (unit-tested, fuzzed) ---------------------------------------- */

/* A ConfigMap/Secret key as the apiserver accepts it (IsConfigMapKey):
 * 1..KUBE_SECRETS_MAX_KEY bytes of [-._a-zA-Z0-9], not "." or "..", not
 * starting with "..". */
bool kube_secrets_key_ok(const char *key);

/* Strict standard base64 with padding (what the apiserver sends):
 * SIGIL_E_INVALID for anything else, SIGIL_E_LIMIT over max bytes
 * decoded.  *ret is malloc'ed (NUL-terminated, not counted in *ret_len);
 * free it with sigil_freezero. */
int kube_secrets_b64_decode(const char *in, size_t len, size_t max, uint8_t **ret, size_t *ret_len,
                            sigil_err *err) SIGIL_WUR;
/* Standard base64 with padding, NUL-terminated, malloc'ed. */
int kube_secrets_b64_encode(const uint8_t *in, size_t len, char **ret, sigil_err *err) SIGIL_WUR;

typedef struct kube_secrets_item {
	char *key;
	uint8_t *data; /* wiped on free */
	size_t len;
} kube_secrets_item;

/* The keys of a Secret (data, base64) or ConfigMap (data as is, binaryData
 * base64), checked and bounded as above, sorted by key.  what names the
 * object in messages ("Secret ns/name"). */
int kube_secrets_decode_object(const json_t *obj, bool config_map, const char *what,
                               kube_secrets_item **ret, size_t *n, sigil_err *err) SIGIL_WUR;
void kube_secrets_items_free(kube_secrets_item *items, size_t n);
