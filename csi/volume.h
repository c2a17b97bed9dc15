/* Writing a volume's files into the pod's target directory.
 *
 * Layout (the Kubernetes AtomicWriter scheme, which pods already know from
 * Secret and ConfigMap volumes):
 *   TARGET/..<timestamp>-<rand>/   the real files, 0640, dirs 0750
 *   TARGET/..data -> ..<timestamp>-<rand>
 *   TARGET/<name> -> ..data/<name> for each top-level name
 * A new version is written into a fresh hidden directory and published by
 * renaming a new ..data symlink over the old one: one rename(2), so a
 * reader that resolves through ..data sees either every old file or every
 * new one, never a new certificate with an old key. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "keystore/keystore.h"
#include "util/err.h"

#define CSI_VOLUME_DEFAULT_TMPFS_SIZE (1024 * 1024) /* secrets are small */
#define CSI_VOLUME_DATA_LINK "..data"

typedef struct csi_volume_opts {
	bool mount_tmpfs;   /* privileged: mount a tmpfs at the target first */
	size_t tmpfs_size;  /* bytes; 0 = CSI_VOLUME_DEFAULT_TMPFS_SIZE */
	bool has_gid;       /* fsGroup: files group-owned by gid */
	gid_t gid;
} csi_volume_opts;

/* First publish: creates target if missing (its parent must exist), mounts
 * the tmpfs when asked, writes the files.  On any failure, everything this
 * call created is removed again (mount included). */
int csi_volume_publish(const char *target, const ks_fileset *files, const csi_volume_opts *opts,
		       sigil_err *err) SIGIL_WUR;

/* Replaces the files of a published volume atomically (renewal, trust
 * bundle refresh).  Names that disappear are removed after the swap. */
int csi_volume_update(const char *target, const ks_fileset *files, const csi_volume_opts *opts,
		      sigil_err *err) SIGIL_WUR;

/* Unmounts (if mounted) and removes target.  A missing target succeeds
 * (CSI spec: NodeUnpublishVolume MUST be idempotent). */
int csi_volume_unpublish(const char *target, sigil_err *err) SIGIL_WUR;

/* Whether target is a mount point of its own (different device than its
 * parent). */
bool csi_volume_is_mountpoint(const char *target);
