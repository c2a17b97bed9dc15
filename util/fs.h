/* File system helpers: crash-safe writes, bounded reads, safe names. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

/* Limit on any single file read by sigil (certificates, keys, YAML, state). */
#define SIGIL_MAX_FILE_SIZE (4u * 1024 * 1024)
/* Limit on a relative file name from a volume attribute. */
#define SIGIL_MAX_REL_PATH 255

/* Writes data to dir/name crash-safely: a temp file in the same directory,
 * fsync, rename over name, fsync of the directory.  mode is applied to the
 * new file before any byte is written.  On failure nothing is left behind
 * and an existing file is untouched. */
int sigil_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			  sigil_err *err) SIGIL_WUR;
/* Same, relative to an open directory fd (for staging dirs and stores). */
int sigil_fs_write_atomic_at(int dirfd, const char *name, const void *data, size_t len,
			     mode_t mode, sigil_err *err) SIGIL_WUR;

/* Writes data to a NEW file dir/name (O_EXCL, never follows links), with
 * mode set before any byte is written, then fsyncs it.  For directories
 * that nobody can see yet (a volume version before its ..data swap): no
 * temp file and rename are needed there, the caller syncs the directory
 * once.  On failure the partial file is removed. */
int sigil_fs_write_new_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
			  sigil_err *err) SIGIL_WUR;

/* Reads a whole regular file of at most max bytes; the result is
 * NUL-terminated (*len excludes the NUL).  ENOENT maps to SIGIL_E_NOTFOUND. */
int sigil_fs_read_file(const char *path, size_t max, uint8_t **ret, size_t *len,
		       sigil_err *err) SIGIL_WUR;
int sigil_fs_read_file_at(int dirfd, const char *name, size_t max, uint8_t **ret, size_t *len,
			  sigil_err *err) SIGIL_WUR;

/* mkdir -p with mode for every created component. */
int sigil_fs_mkdir_p(const char *path, mode_t mode, sigil_err *err) SIGIL_WUR;
int sigil_fs_fsync_dir(const char *path, sigil_err *err) SIGIL_WUR;
/* rm -rf that never follows symlinks; a missing path succeeds. */
int sigil_fs_remove_tree(const char *path, sigil_err *err);
int sigil_fs_remove_tree_at(int dirfd, const char *name, sigil_err *err);

/* A relative name that stays inside its directory: non-empty, no leading
 * '/', no "." or ".." component, no empty component, printable ASCII
 * without backslash, at most SIGIL_MAX_REL_PATH bytes. */
bool sigil_fs_rel_path_ok(const char *name);

/* Joins a and b with one '/' into a malloc'ed string (NULL on OOM). */
char *sigil_path_join(const char *a, const char *b);
