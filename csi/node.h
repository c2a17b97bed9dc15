/* The node side of a volume's life: publish (mint and write), unpublish,
 * and the bookkeeping that makes both idempotent and crash-safe.  The CSI
 * gRPC handlers translate protobuf to these calls. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "csi/attrs.h"
#include "csi/issuer.h"
#include "csi/keypool.h"
#include "csi/kube.h"
#include "csi/state.h"
#include "csi/volume.h"
#include "util/err.h"

#define CSI_MAX_VOLUME_ID_LEN 256
#define CSI_MAX_TARGET_PATH_LEN 4096
#define CSI_NODE_LOCK_STRIPES 64

typedef struct csi_node_config {
	const char *node_id;
	csi_issuer *issuer;       /* borrowed */
	csi_keypool *keypool;     /* borrowed; may be NULL */
	csi_state *state;         /* borrowed */
	csi_kube *kube;           /* borrowed; NULL without a Kubernetes API */
	bool privileged;          /* mount a tmpfs at each target */
	size_t tmpfs_size;        /* 0: default */
} csi_node_config;

typedef struct csi_node csi_node;

int csi_node_new(const csi_node_config *cfg, csi_node **ret, sigil_err *err) SIGIL_WUR;
void csi_node_free(csi_node *n);

typedef struct csi_publish_request {
	const char *volume_id;
	const char *target_path;
	bool readonly;
	bool has_fs_group;
	gid_t fs_group;
	const csi_kv *attrs;      /* volume_context */
	size_t n_attrs;
} csi_publish_request;

typedef struct csi_publish_result {
	bool already_published;   /* idempotent repeat: nothing minted */
	bool key_from_pool;
	time_t not_after;
	size_t n_files;
} csi_publish_result;

/* Errors: SIGIL_E_INVALID (bad request or attributes), SIGIL_E_EXISTS (the
 * target holds an incompatible publish), SIGIL_E_NOTFOUND (unknown class),
 * SIGIL_E_UNAVAIL (the CA is down), others.  After a failure nothing is
 * left in the target. */
int csi_node_publish(csi_node *n, const csi_publish_request *req, csi_publish_result *ret,
		     sigil_err *err) SIGIL_WUR;
/* Idempotent: an unknown volume or a missing target succeeds. */
int csi_node_unpublish(csi_node *n, const char *volume_id, const char *target_path,
		       sigil_err *err) SIGIL_WUR;
/* ---- the expiry watcher's side (csi/watcher.h) --------------------------- */
struct csi_watcher;
/* Publish and unpublish tell w about volumes (NULL: nobody).  Set it before
 * serving. */
void csi_node_set_watcher(csi_node *n, struct csi_watcher *w);
bool csi_node_has_kube(const csi_node *n);

/* Re-issues a published TLS volume with its recorded attributes (new key,
 * new CSR) and swaps its files atomically (csi_volume_update); then writes
 * the record (not_after, renewed_at) crash-safely: a crash between the two
 * leaves the old not_after, so the volume is renewed once more, early.
 * On failure the old files stay.  *ret (optional) is a copy of the updated
 * record.  SIGIL_E_NOTFOUND when the volume is not published (any more);
 * SIGIL_E_PRECOND for a volume with nothing to renew (keytab). */
int csi_node_renew(csi_node *n, const char *volume_id, const char *target_path,
		   csi_volume_record *ret, sigil_err *err) SIGIL_WUR;
/* Rewrites the trust files (ca.crt / truststore, with the record's store
 * password) of a published TLS volume from trust, keeping every other file
 * byte-identical, with the same atomic swap; records version.  Nothing
 * happens when the record already has version.  *ret as above. */
int csi_node_refresh_trust(csi_node *n, const char *volume_id, const char *target_path,
			   STACK_OF(X509) *trust, uint64_t version, csi_volume_record *ret,
			   sigil_err *err) SIGIL_WUR;
/* renewal=restart with a Kubernetes API: (re)writes the restarter
 * annotation for the record's notAfter and records it.  *ret as above. */
int csi_node_annotate_expiry(csi_node *n, const char *volume_id, const char *target_path,
			     csi_volume_record *ret, sigil_err *err) SIGIL_WUR;
/* The attributes a record was published with, parsed. */
int csi_node_record_attrs(const csi_volume_record *rec, csi_attrs *ret, sigil_err *err) SIGIL_WUR;
/* Posts an Event about the volume's pod (no-op without a Kubernetes API or
 * pod information).  Best effort. */
void csi_node_pod_event(csi_node *n, const csi_attrs *a, const char *type, const char *reason,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The CA is usable (Probe). */
bool csi_node_ready(csi_node *n);
const char *csi_node_id(const csi_node *n);
size_t csi_node_volume_count(csi_node *n);
