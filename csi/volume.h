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
 * new one, never a new certificate with an old key.
 *
 * The reader contract (in-place renewal, trust bundle refresh), the same
 * as for Kubernetes' own AtomicWriter volumes:
 *  - a reader that resolves ..data once (readlink, or open the directory
 *    it names) and reads every file relative to that directory always
 *    gets a matching set.  The old directory is removed right after the
 *    swap, so such a read can fail with ENOENT; the reader retries.
 *    Measured (tests/integration/test_watcher.sh, 6 renewals): 0 pairs
 *    with a certificate of another key in ~460,000 reads, ENOENT 0-2 times;
 *  - a reader that opens TARGET/tls.crt and TARGET/tls.key separately
 *    (each through its own link) can get the certificate of one version
 *    and the key of the other when a swap falls between the two opens:
 *    1-4 mismatched pairs in ~110,000-530,000 reads in the same test.  Such
 *    readers (most TLS servers reading two paths at start or on a file
 *    watch) should re-read when the pair does not match, or watch ..data
 *    and read through it. */
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

/* Reads the named files of the version ..data points at now (trust
 * bundle refresh keeps every other file byte-identical).  Never follows a
 * symlink inside the volume other than ..data itself, which must name a
 * hidden version directory of target: a pod that can write its volume
 * must not make sigil copy a host file into it.  Every file is marked
 * secret (wiped on free).  Files larger than CSI_VOLUME_MAX_FILE are
 * refused. */
#define CSI_VOLUME_MAX_FILE (1024 * 1024)
int csi_volume_read_files(const char *target, const char *const *names, size_t n,
			  ks_fileset *out, sigil_err *err) SIGIL_WUR;

/* The group that owns the current version directory (for records written
 * before the fsGroup was recorded); SIGIL_E_NOTFOUND without one. */
int csi_volume_data_gid(const char *target, gid_t *ret) SIGIL_WUR;

/* Unmounts (if mounted) and removes target.  A missing target succeeds
 * (CSI spec: NodeUnpublishVolume MUST be idempotent). */
int csi_volume_unpublish(const char *target, sigil_err *err) SIGIL_WUR;

/* Whether target is a mount point of its own (different device than its
 * parent). */
bool csi_volume_is_mountpoint(const char *target);
