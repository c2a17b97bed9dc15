/* Node state: every published volume is recorded in STATE_DIR/volumes/ so
 * that a restarted sigil-csi re-adopts its volumes (expiry watching,
 * idempotent re-publishes, unpublish after a crash).
 *
 * One JSON file per (volume id, target path), named by the SHA-256 of both,
 * mode 0600 (records hold the store password), written crash-safely. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define CSI_STATE_MAX_RECORD 65536
#define CSI_STATE_MAX_VOLUMES 100000
#define CSI_STATE_MAX_FILES 16
#define CSI_STATE_MAX_ATTRS 80
#define CSI_STATE_MAX_STR 4096
#define CSI_STATE_MAX_GID 0x7fffffff

typedef struct csi_volume_record {
	char *volume_id;
	char *target_path;
	char *fingerprint;    /* of the publish request, for CSI idempotency */
	char **attr_keys;     /* the volume context as published */
	char **attr_values;   /* may hold a secret (store password): wiped on free */
	size_t n_attrs;
	char **files;         /* names written into the volume */
	size_t n_files;
	int64_t not_after;    /* unix seconds; 0 when nothing expires (keytab) */
	int64_t published_at;
	int64_t renewed_at;
	bool readonly;
	/* Added for the expiry watcher (issue 7); optional in the JSON so that
	 * older records still load (absent = false / 0). */
	bool has_fs_group;    /* files are group-owned by fs_group */
	int64_t fs_group;
	uint64_t trust_version;       /* trust bundle version written; 0: unknown */
	bool awaiting_pod_ip;         /* pod scope issued before the pod had an IP */
	int64_t annotated_expires_at; /* restarter annotation last written; 0: none */
} csi_volume_record;

typedef struct csi_state csi_state;

/* Opens (creating 0700) STATE_DIR/volumes and loads every record.  A record
 * that cannot be parsed is refused with an error naming the file. */
int csi_state_open(const char *state_dir, csi_state **ret, sigil_err *err) SIGIL_WUR;
void csi_state_free(csi_state *st);

/* Stores a copy of rec (replacing one with the same id and target). */
int csi_state_put(csi_state *st, const csi_volume_record *rec, sigil_err *err) SIGIL_WUR;
/* Copies the record for (volume_id, target) into *ret; SIGIL_E_NOTFOUND. */
int csi_state_get(csi_state *st, const char *volume_id, const char *target,
		  csi_volume_record *ret) SIGIL_WUR;
/* Finds any record for volume_id (the first); SIGIL_E_NOTFOUND. */
int csi_state_find_volume(csi_state *st, const char *volume_id, csi_volume_record *ret) SIGIL_WUR;
/* Removes the record; a missing one succeeds. */
int csi_state_remove(csi_state *st, const char *volume_id, const char *target,
		     sigil_err *err) SIGIL_WUR;
size_t csi_state_count(csi_state *st);
/* Calls fn on a copy of each record (under no lock: fn may call back). */
typedef void (*csi_state_fn)(const csi_volume_record *rec, void *ctx);
void csi_state_foreach(csi_state *st, csi_state_fn fn, void *ctx);

/* Record (de)serialisation, exposed for tests and fuzzing. */
int csi_record_to_json(const csi_volume_record *rec, char **ret, sigil_err *err) SIGIL_WUR;
int csi_record_from_json(const char *json, size_t len, csi_volume_record *ret,
			 sigil_err *err) SIGIL_WUR;
int csi_record_copy(const csi_volume_record *src, csi_volume_record *dst) SIGIL_WUR;
void csi_record_free(csi_volume_record *rec);
