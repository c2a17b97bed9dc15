#define _GNU_SOURCE
#include "csi/volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/mem.h"

#define VOLUME_FILE_MODE 0640
#define VOLUME_DIR_MODE 0750

bool csi_volume_is_mountpoint(const char *target)
{
	struct stat st, pst;
	_cleanup_free_ char *parent = sigil_path_join(target, "..");

	if (!parent || lstat(target, &st) < 0 || stat(parent, &pst) < 0)
		return false;
	return S_ISDIR(st.st_mode) && (st.st_dev != pst.st_dev || st.st_ino == pst.st_ino);
}

static int set_owner(int dfd, const char *name, const csi_volume_opts *o, sigil_err *err)
{
	if (!o || !o->has_gid)
		return 0;
	if (fchownat(dfd, name, (uid_t)-1, o->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return sigil_err_errno(err, errno, "cannot set group %u on %s", (unsigned)o->gid, name);
	return 0;
}

/* mkdir -p of the directory part of rel inside dfd. */
static int mkdirs_at(int dfd, const char *rel, const csi_volume_opts *o, sigil_err *err)
{
	char buf[SIGIL_MAX_REL_PATH + 1];
	char *s;

	snprintf(buf, sizeof(buf), "%s", rel);
	for (s = strchr(buf, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdirat(dfd, buf, VOLUME_DIR_MODE) < 0) {
			if (errno != EEXIST)
				return sigil_err_errno(err, errno, "cannot create directory %s", buf);
		} else {
			if (fchmodat(dfd, buf, VOLUME_DIR_MODE, 0) < 0 || set_owner(dfd, buf, o, err) < 0)
				return sigil_err_errno(err, errno, "cannot set mode of %s", buf);
		}
		*s = '/';
	}
	return 0;
}

static void top_component(const char *name, char *buf, size_t len)
{
	const char *slash = strchr(name, '/');
	size_t n = slash ? (size_t)(slash - name) : strlen(name);

	snprintf(buf, len, "%.*s", (int)n, name);
}

/* Writes every file of fs into a new hidden directory of target; returns
 * its name in dirname. */
static int write_version(int tfd, const ks_fileset *fs, const csi_volume_opts *o, char *dirname,
			 size_t dlen, sigil_err *err)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	unsigned rnd = 0;
	int vfd, r = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y_%m_%d_%H_%M_%S", &tm);
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		rnd = (unsigned)ts.tv_nsec;
	snprintf(dirname, dlen, "..%s.%08x", stamp, rnd);
	if (mkdirat(tfd, dirname, VOLUME_DIR_MODE) < 0)
		return sigil_err_errno(err, errno, "cannot create %s", dirname);
	if (fchmodat(tfd, dirname, VOLUME_DIR_MODE, 0) < 0 || set_owner(tfd, dirname, o, err) < 0) {
		r = sigil_err_errno(err, errno, "cannot set mode of %s", dirname);
		goto fail;
	}
	vfd = openat(tfd, dirname, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (vfd < 0) {
		r = sigil_err_errno(err, errno, "cannot open %s", dirname);
		goto fail;
	}
	for (size_t i = 0; i < fs->n && r == 0; i++) {
		const ks_file *f = &fs->files[i];

		if (!sigil_fs_rel_path_ok(f->name)) {
			r = sigil_err_set(err, SIGIL_E_INVALID, "unsafe file name '%s'", f->name);
			break;
		}
		r = mkdirs_at(vfd, f->name, o, err);
		if (r == 0)
			r = sigil_fs_write_new_at(vfd, f->name, f->data, f->len, VOLUME_FILE_MODE, err);
		if (r == 0)
			r = set_owner(vfd, f->name, o, err);
	}
	if (r == 0 && fsync(vfd) < 0)
		r = sigil_err_errno(err, errno, "cannot sync %s", dirname);
	close(vfd);
	if (r == 0)
		return 0;
fail:
	(void)sigil_fs_remove_tree_at(tfd, dirname, NULL);
	return r;
}

/* Points ..data at dirname with one atomic rename, and makes sure every
 * top-level name has its symlink into ..data. */
static int swap_data_link(int tfd, const char *dirname, const ks_fileset *fs, sigil_err *err)
{
	static const char tmp_link[] = "..data_tmp";

	unlinkat(tfd, tmp_link, 0);
	if (symlinkat(dirname, tfd, tmp_link) < 0)
		return sigil_err_errno(err, errno, "cannot create %s", tmp_link);
	if (renameat(tfd, tmp_link, tfd, CSI_VOLUME_DATA_LINK) < 0) {
		int e = errno;
		unlinkat(tfd, tmp_link, 0);
		return sigil_err_errno(err, e, "cannot publish %s", CSI_VOLUME_DATA_LINK);
	}
	for (size_t i = 0; i < fs->n; i++) {
		char top[SIGIL_MAX_REL_PATH + 1], dest[SIGIL_MAX_REL_PATH + 16];
		struct stat st;

		top_component(fs->files[i].name, top, sizeof(top));
		snprintf(dest, sizeof(dest), CSI_VOLUME_DATA_LINK "/%s", top);
		if (fstatat(tfd, top, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			char cur[sizeof(dest)];
			ssize_t n = readlinkat(tfd, top, cur, sizeof(cur) - 1);
			if (n >= 0) {
				cur[n] = '\0';
				if (!strcmp(cur, dest))
					continue;
			}
			/* Something that is not our link: never follow or overwrite it blindly. */
			return sigil_err_set(err, SIGIL_E_EXISTS,
					     "target already holds '%s' that sigil did not write", top);
		}
		if (symlinkat(dest, tfd, top) < 0 && errno != EEXIST)
			return sigil_err_errno(err, errno, "cannot link %s", top);
	}
	if (fsync(tfd) < 0 && errno != EINVAL)
		return sigil_err_errno(err, errno, "cannot sync target directory");
	return 0;
}

/* After a swap: remove old version directories and links to names that
 * the new version does not have. */
static void collect_garbage(int tfd, const char *current, const ks_fileset *fs)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(tfd);

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		struct stat st;

		if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, CSI_VOLUME_DATA_LINK) ||
		    !strcmp(n, current))
			continue;
		if (fstatat(tfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (n[0] == '.' && n[1] == '.' && S_ISDIR(st.st_mode)) {
			(void)sigil_fs_remove_tree_at(tfd, n, NULL);
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			char cur[PATH_MAX];
			ssize_t len = readlinkat(tfd, n, cur, sizeof(cur) - 1);
			bool wanted = false;
			if (len < 0 || strncmp(cur, CSI_VOLUME_DATA_LINK "/", 7))
				continue; /* not ours */
			for (size_t i = 0; i < fs->n && !wanted; i++) {
				char top[SIGIL_MAX_REL_PATH + 1];
				top_component(fs->files[i].name, top, sizeof(top));
				wanted = !strcmp(top, n);
			}
			if (!wanted)
				unlinkat(tfd, n, 0);
		}
	}
	closedir(d);
}

static int write_files(const char *target, const ks_fileset *fs, const csi_volume_opts *o,
		       sigil_err *err)
{
	char dirname[64];
	int tfd, r;

	tfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (tfd < 0)
		return sigil_err_errno(err, errno, "cannot open target %s", target);
	r = write_version(tfd, fs, o, dirname, sizeof(dirname), err);
	if (r == 0) {
		r = swap_data_link(tfd, dirname, fs, err);
		if (r == 0)
			collect_garbage(tfd, dirname, fs);
	}
	close(tfd);
	return r;
}

static int mount_tmpfs(const char *target, const csi_volume_opts *o, sigil_err *err)
{
	char data[128];
	size_t size = o->tmpfs_size ? o->tmpfs_size : CSI_VOLUME_DEFAULT_TMPFS_SIZE;

	if (o->has_gid)
		snprintf(data, sizeof(data), "size=%zu,mode=0750,gid=%u", size, (unsigned)o->gid);
	else
		snprintf(data, sizeof(data), "size=%zu,mode=0750", size);
	if (mount("sigil", target, "tmpfs", MS_NODEV | MS_NOSUID | MS_NOEXEC, data) < 0)
		return sigil_err_errno(err, errno, "cannot mount tmpfs at %s", target);
	return 0;
}

int csi_volume_publish(const char *target, const ks_fileset *files, const csi_volume_opts *opts,
		       sigil_err *err)
{
	static const csi_volume_opts none = {0};
	const csi_volume_opts *o = opts ? opts : &none;
	bool created = false, mounted = false;
	struct stat st;
	int r;

	if (!target || target[0] != '/')
		return sigil_err_set(err, SIGIL_E_INVALID, "target path must be absolute");
	if (lstat(target, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return sigil_err_set(err, SIGIL_E_INVALID, "target %s is not a directory", target);
	} else if (errno == ENOENT) {
		if (mkdir(target, VOLUME_DIR_MODE) < 0)
			return sigil_err_errno(err, errno, "cannot create target %s", target);
		created = true;
	} else {
		return sigil_err_errno(err, errno, "cannot stat target %s", target);
	}
	if (o->mount_tmpfs && !csi_volume_is_mountpoint(target)) {
		r = mount_tmpfs(target, o, err);
		if (r < 0)
			goto fail;
		mounted = true;
	} else if (!o->mount_tmpfs) {
		if (chmod(target, VOLUME_DIR_MODE) < 0 ||
		    (o->has_gid && chown(target, (uid_t)-1, o->gid) < 0)) {
			r = sigil_err_errno(err, errno, "cannot set mode of target %s", target);
			goto fail;
		}
	}
	r = write_files(target, files, o, err);
	if (r == 0)
		return 0;
fail:
	if (mounted)
		umount2(target, MNT_DETACH);
	if (created)
		(void)sigil_fs_remove_tree(target, NULL);
	return r;
}

int csi_volume_update(const char *target, const ks_fileset *files, const csi_volume_opts *opts,
		      sigil_err *err)
{
	return write_files(target, files, opts, err);
}

/* Opens the directory ..data points at, refusing anything but a hidden
 * version directory directly inside target. */
static int open_data_dir(int tfd, sigil_err *err)
{
	char link[NAME_MAX + 1];
	ssize_t n = readlinkat(tfd, CSI_VOLUME_DATA_LINK, link, sizeof(link) - 1);
	int fd;

	if (n < 0)
		return sigil_err_errno(err, errno, "cannot read %s", CSI_VOLUME_DATA_LINK);
	link[n] = '\0';
	if (n < 3 || link[0] != '.' || link[1] != '.' || strchr(link, '/') ||
	    !strcmp(link, CSI_VOLUME_DATA_LINK))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s points at '%s', not a version directory",
				     CSI_VOLUME_DATA_LINK, link);
	fd = openat(tfd, link, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot open %s", link);
	return fd;
}

/* Reads dir-relative name, every component opened with O_NOFOLLOW. */
static int read_nofollow(int dfd, const char *name, ks_fileset *out, sigil_err *err)
{
	char buf[SIGIL_MAX_REL_PATH + 1];
	char *p = buf, *slash;
	int cur = dfd, fd, r;
	uint8_t *data = NULL;
	size_t len = 0;
	struct stat st;

	if (!sigil_fs_rel_path_ok(name))
		return sigil_err_set(err, SIGIL_E_INVALID, "unsafe file name '%s'", name);
	snprintf(buf, sizeof(buf), "%s", name);
	while ((slash = strchr(p, '/')) != NULL) {
		*slash = '\0';
		fd = openat(cur, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (cur != dfd)
			close(cur);
		if (fd < 0)
			return sigil_err_errno(err, errno, "cannot open directory of %s", name);
		cur = fd;
		p = slash + 1;
	}
	fd = openat(cur, p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (cur != dfd)
		close(cur);
	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot open %s", name);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CSI_VOLUME_MAX_FILE) {
		close(fd);
		return sigil_err_set(err, SIGIL_E_CORRUPT, "%s is not a regular file of at most %d bytes",
				     name, CSI_VOLUME_MAX_FILE);
	}
	data = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!data) {
		close(fd);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	while (len < (size_t)st.st_size) {
		ssize_t k = read(fd, data + len, (size_t)st.st_size - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(fd);
	if (len != (size_t)st.st_size) {
		sigil_freezero(data, (size_t)st.st_size);
		return sigil_err_set(err, SIGIL_E_IO, "short read of %s", name);
	}
	r = ks_fileset_add(out, name, data, len, true, err);
	return r;
}

int csi_volume_read_files(const char *target, const char *const *names, size_t n,
			  ks_fileset *out, sigil_err *err)
{
	ks_fileset fs = {0};
	int tfd, dfd, r = 0;

	if (n > KS_MAX_FILES)
		return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d files", KS_MAX_FILES);
	tfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (tfd < 0)
		return sigil_err_errno(err, errno, "cannot open target %s", target);
	dfd = open_data_dir(tfd, err);
	close(tfd);
	if (dfd < 0)
		return dfd;
	for (size_t i = 0; i < n && r == 0; i++)
		r = read_nofollow(dfd, names[i], &fs, err);
	close(dfd);
	if (r < 0) {
		ks_fileset_free(&fs);
		return r;
	}
	*out = fs;
	return 0;
}

int csi_volume_data_gid(const char *target, gid_t *ret)
{
	struct stat st;
	int tfd, dfd;

	tfd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (tfd < 0)
		return SIGIL_E_NOTFOUND;
	dfd = open_data_dir(tfd, NULL);
	close(tfd);
	if (dfd < 0)
		return SIGIL_E_NOTFOUND;
	if (fstat(dfd, &st) < 0) {
		close(dfd);
		return SIGIL_E_NOTFOUND;
	}
	close(dfd);
	*ret = st.st_gid;
	return 0;
}

int csi_volume_unpublish(const char *target, sigil_err *err)
{
	struct stat st;

	if (lstat(target, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return sigil_err_errno(err, errno, "cannot stat target %s", target);
	}
	while (csi_volume_is_mountpoint(target)) {
		if (umount2(target, 0) < 0 && umount2(target, MNT_DETACH) < 0)
			return sigil_err_errno(err, errno, "cannot unmount %s", target);
	}
	return sigil_fs_remove_tree(target, err);
}
