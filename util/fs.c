#define _GNU_SOURCE
#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/mem.h"

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int sigil_fs_write_atomic_at(int dirfd, const char *name, const void *data, size_t len,
			     mode_t mode, sigil_err *err)
{
	char tmp[SIGIL_MAX_REL_PATH + 64];
	const char *base = strrchr(name, '/');
	int fd, r;
	unsigned rnd;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		rnd = (unsigned)getpid() ^ (unsigned)time(NULL);
	/* The temp file lives in the same directory, so rename() is atomic. */
	if (base)
		r = snprintf(tmp, sizeof(tmp), "%.*s.tmp-%s-%08x", (int)(base - name + 1), name,
			     base + 1, rnd);
	else
		r = snprintf(tmp, sizeof(tmp), ".tmp-%s-%08x", name, rnd);
	if (r < 0 || (size_t)r >= sizeof(tmp))
		return sigil_err_set(err, SIGIL_E_LIMIT, "file name too long: %s", name);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot create %s", tmp);
	/* umask may have narrowed the mode; set it exactly before writing. */
	if (fchmod(fd, mode & 07777) < 0) {
		r = errno;
		goto fail;
	}
	r = -write_all(fd, data, len);
	if (r > 0)
		goto fail;
	if (fsync(fd) < 0) {
		r = errno;
		goto fail;
	}
	if (close(fd) < 0) {
		r = errno;
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		r = errno;
		goto fail;
	}
	/* The rename is durable only once its directory is synced. */
	if (base) {
		char sub[SIGIL_MAX_REL_PATH + 1];
		int sfd;

		snprintf(sub, sizeof(sub), "%.*s", (int)(base - name), name);
		sfd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sfd < 0)
			return sigil_err_errno(err, errno, "cannot open directory of %s", name);
		r = fsync(sfd) < 0 && errno != EINVAL ? errno : 0;
		close(sfd);
		if (r)
			return sigil_err_errno(err, r, "cannot fsync directory of %s", name);
	} else if (fsync(dirfd) < 0 && errno != EINVAL) {
		return sigil_err_errno(err, errno, "cannot fsync directory of %s", name);
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	return sigil_err_errno(err, r, "cannot write %s", name);
}

int sigil_fs_write_new_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
			  sigil_err *err)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
	int r;

	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot create %s", name);
	if (fchmod(fd, mode & 07777) < 0)
		r = errno;
	else
		r = -write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = errno;
	if (close(fd) < 0 && r == 0)
		r = errno;
	if (r == 0)
		return 0;
	unlinkat(dirfd, name, 0);
	return sigil_err_errno(err, r, "cannot write %s", name);
}

int sigil_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			  sigil_err *err)
{
	_cleanup_free_ char *dir = NULL;
	const char *slash = strrchr(path, '/');
	int dfd, r;

	if (slash)
		dir = sigil_strndup(path, slash == path ? 1 : (size_t)(slash - path));
	else
		dir = strdup(".");
	if (!dir)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return sigil_err_errno(err, errno, "cannot open directory %s", dir);
	r = sigil_fs_write_atomic_at(dfd, slash ? slash + 1 : path, data, len, mode, err);
	close(dfd);
	if (r < 0)
		sigil_err_prefix(err, "%s: ", dir);
	return r;
}

static int read_fd(int fd, const char *name, size_t max, uint8_t **ret, size_t *len,
		   sigil_err *err)
{
	struct stat st;
	uint8_t *buf;
	size_t cap, used = 0;

	if (fstat(fd, &st) < 0)
		return sigil_err_errno(err, errno, "cannot stat %s", name);
	if (!S_ISREG(st.st_mode))
		return sigil_err_set(err, SIGIL_E_INVALID, "%s is not a regular file", name);
	if ((uint64_t)st.st_size > max)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s is too large (%lld bytes, limit %zu)",
				     name, (long long)st.st_size, max);
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap + 1);
	if (!buf)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory reading %s", name);
	for (;;) {
		ssize_t n = read(fd, buf + used, cap - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			sigil_freezero(buf, cap + 1);
			return sigil_err_errno(err, e, "cannot read %s", name);
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used == cap) { /* grew while reading */
			sigil_freezero(buf, cap + 1);
			return sigil_err_set(err, SIGIL_E_LIMIT, "%s changed size while read", name);
		}
	}
	buf[used] = '\0';
	*ret = buf;
	if (len)
		*len = used;
	return 0;
}

int sigil_fs_read_file_at(int dirfd, const char *name, size_t max, uint8_t **ret, size_t *len,
			  sigil_err *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int r;

	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot open %s", name);
	r = read_fd(fd, name, max, ret, len, err);
	close(fd);
	return r;
}

int sigil_fs_read_file(const char *path, size_t max, uint8_t **ret, size_t *len, sigil_err *err)
{
	return sigil_fs_read_file_at(AT_FDCWD, path, max, ret, len, err);
}

int sigil_fs_mkdir_p(const char *path, mode_t mode, sigil_err *err)
{
	_cleanup_free_ char *p = strdup(path);
	char *s;

	if (!p)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return sigil_err_errno(err, errno, "cannot create directory %s", p);
		*s = c;
		if (c == '\0')
			break;
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return sigil_err_errno(err, errno, "cannot stat %s", path);
	if (!S_ISDIR(st.st_mode))
		return sigil_err_set(err, SIGIL_E_INVALID, "%s is not a directory", path);
	return 0;
}

int sigil_fs_fsync_dir(const char *path, sigil_err *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot open directory %s", path);
	if (fsync(fd) < 0 && errno != EINVAL) {
		int e = errno;
		close(fd);
		return sigil_err_errno(err, e, "cannot fsync %s", path);
	}
	close(fd);
	return 0;
}

static int remove_at(int dfd, const char *name, sigil_err *err)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : sigil_err_errno(err, errno, "cannot stat %s", name);
	if (S_ISDIR(st.st_mode)) {
		int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		DIR *d;
		struct dirent *de;
		int r = 0;

		if (fd < 0)
			return sigil_err_errno(err, errno, "cannot open %s", name);
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			return sigil_err_errno(err, errno, "cannot list %s", name);
		}
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			r = remove_at(dirfd(d), de->d_name, err);
			if (r < 0)
				break;
		}
		closedir(d);
		if (r < 0)
			return r;
		if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return sigil_err_errno(err, errno, "cannot remove directory %s", name);
		return 0;
	}
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return sigil_err_errno(err, errno, "cannot remove %s", name);
	return 0;
}

int sigil_fs_remove_tree(const char *path, sigil_err *err)
{
	return remove_at(AT_FDCWD, path, err);
}

int sigil_fs_remove_tree_at(int dirfd, const char *name, sigil_err *err)
{
	return remove_at(dirfd, name, err);
}

bool sigil_fs_rel_path_ok(const char *name)
{
	size_t len, i, start = 0;

	if (!name)
		return false;
	len = strlen(name);
	if (len == 0 || len > SIGIL_MAX_REL_PATH || name[0] == '/')
		return false;
	for (i = 0; i <= len; i++) {
		char c = name[i];
		if (c == '/' || c == '\0') {
			size_t n = i - start;
			if (n == 0)
				return false;
			if (n == 1 && name[start] == '.')
				return false;
			if (n == 2 && name[start] == '.' && name[start + 1] == '.')
				return false;
			start = i + 1;
			continue;
		}
		if (c < 0x21 || c > 0x7e || c == '\\')
			return false;
	}
	return true;
}

char *sigil_path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *r;

	while (la > 1 && a[la - 1] == '/')
		la--;
	r = malloc(la + lb + 2);
	if (!r)
		return NULL;
	memcpy(r, a, la);
	if (la > 0 && a[la - 1] == '/') /* a is "/" */
		la--;
	r[la] = '/';
	memcpy(r + la + 1, b, lb + 1);
	return r;
}
