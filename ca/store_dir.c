/* The directory CA store: DIR/<class>/gen-<16 hex>.pem, one file per
 * generation, plus DIR/<class>/.lock.
 *
 * Crash safety comes from never modifying a record in place: a new
 * generation is written to a temp file, fsync'ed, renamed into place and
 * the directory fsync'ed (sigil_fs_write_atomic_at), so after a crash a
 * generation is either completely there or not there at all.  A crash can
 * leave a temp file (".tmp-*") behind; load ignores it and removes it when
 * the caller holds the class lock (so it cannot be a write in progress).
 *
 * Locking: flock() locks belong to an open file description, so each lock
 * call opens .lock afresh and keeps that fd until unlock (a shared fd
 * would make a second flock by the same process succeed at once).  A
 * per-class mutex taken before the flock makes the lock exclusive between
 * threads of one process too, and lets a thread that locks twice get an
 * error instead of blocking on itself forever. */
#define _GNU_SOURCE
#include "ca/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/mem.h"

#define LOCK_NAME ".lock"
/* sigil_fs_write_atomic_at names its temp files ".tmp-<name>-<random>". */
#define TEMP_PREFIX ".tmp-"
/* Bound on the entries scanned in one class directory (generations, temp
 * leftovers and anything else somebody put there). */
#define DIR_MAX_ENTRIES 4096
/* Bound on distinct classes locked through one store. */
#define DIR_MAX_LOCKS 1024

typedef struct dir_lock {
	struct dir_lock *next;
	char class_name[CA_STORE_MAX_CLASS_LEN + 1];
	pthread_mutex_t mutex; /* held from lock to unlock: excludes threads */
	/* The fields below are guarded by dir_store.locks_mutex. */
	int fd;                /* the flock'ed .lock, -1 when not held */
	bool held;
	pthread_t owner;
} dir_lock;

typedef struct dir_store {
	ca_store base;
	char *path;
	int dirfd;
	pthread_mutex_t locks_mutex;
	dir_lock *locks;
	size_t nlocks;
} dir_store;

static void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static dir_store *to_dir(ca_store *s)
{
	return (dir_store *)s;
}

/* Opens DIR/<class>; with create, makes it (0700) when missing.  A missing
 * directory without create is SIGIL_E_NOTFOUND (err untouched). */
static int dir_open_class(dir_store *ds, const char *class_name, bool create, int *ret,
			  sigil_err *err)
{
	int fd = openat(ds->dirfd, class_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		if (!create)
			return SIGIL_E_NOTFOUND;
		if (mkdirat(ds->dirfd, class_name, 0700) < 0 && errno != EEXIST)
			return sigil_err_errno(err, errno, "cannot create CA store directory %s/%s",
					       ds->path, class_name);
		/* The new directory entry must survive a crash like the files in it. */
		if (fsync(ds->dirfd) < 0 && errno != EINVAL)
			return sigil_err_errno(err, errno, "cannot fsync %s", ds->path);
		fd = openat(ds->dirfd, class_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* umask may have narrowed 0700; it must not have widened it. */
		if (fd >= 0 && fchmod(fd, 0700) < 0) {
			int e = errno;
			close(fd);
			return sigil_err_errno(err, e, "cannot chmod %s/%s", ds->path, class_name);
		}
	}
	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot open CA store directory %s/%s",
				       ds->path, class_name);
	*ret = fd;
	return 0;
}

static dir_lock *dir_find_lock(dir_store *ds, const char *class_name)
{
	for (dir_lock *l = ds->locks; l; l = l->next)
		if (!strcmp(l->class_name, class_name))
			return l;
	return NULL;
}

static bool dir_lock_held_by_self(dir_store *ds, const char *class_name)
{
	dir_lock *l;
	bool held;

	pthread_mutex_lock(&ds->locks_mutex);
	l = dir_find_lock(ds, class_name);
	held = l && l->held && pthread_equal(l->owner, pthread_self());
	pthread_mutex_unlock(&ds->locks_mutex);
	return held;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The generations present in a class directory, ascending.  With
 * remove_temps (only under the class lock) crash leftovers are deleted. */
static int dir_list(dir_store *ds, const char *class_name, int classfd, bool remove_temps,
		    uint64_t gens[CA_STORE_MAX_GENERATIONS], size_t *ret_n, sigil_err *err)
{
	int fd = dup(classfd);
	DIR *d;
	struct dirent *de;
	size_t n = 0, entries = 0;
	bool removed = false;
	int r = 0;

	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot list %s/%s", ds->path, class_name);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return sigil_err_errno(err, errno, "cannot list %s/%s", ds->path, class_name);
	}
	/* fdopendir shares the offset of the dup'ed fd; start from the top. */
	rewinddir(d);
	for (;;) {
		uint64_t g;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				r = sigil_err_errno(err, errno, "cannot list %s/%s", ds->path,
						    class_name);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (++entries > DIR_MAX_ENTRIES) {
			r = sigil_err_set(err, SIGIL_E_LIMIT,
					  "%s/%s holds more than %d entries", ds->path, class_name,
					  DIR_MAX_ENTRIES);
			break;
		}
		if (!strncmp(de->d_name, TEMP_PREFIX, sizeof(TEMP_PREFIX) - 1)) {
			if (remove_temps) {
				if (unlinkat(classfd, de->d_name, 0) < 0 && errno != ENOENT) {
					r = sigil_err_errno(err, errno, "cannot remove %s/%s/%s",
							    ds->path, class_name, de->d_name);
					break;
				}
				removed = true;
			}
			continue;
		}
		/* Anything else that is not a generation (".lock", a README an
		 * operator left) is not ours to judge. */
		if (!ca_store_gen_parse(de->d_name, &g))
			continue;
		if (n == CA_STORE_MAX_GENERATIONS) {
			r = sigil_err_set(err, SIGIL_E_LIMIT,
					  "%s/%s holds more than %d CA generations", ds->path,
					  class_name, CA_STORE_MAX_GENERATIONS);
			break;
		}
		gens[n++] = g;
	}
	closedir(d);
	if (r < 0)
		return r;
	if (removed && fsync(classfd) < 0 && errno != EINVAL)
		return sigil_err_errno(err, errno, "cannot fsync %s/%s", ds->path, class_name);
	qsort(gens, n, sizeof(gens[0]), cmp_u64);
	*ret_n = n;
	return 0;
}

static int dir_lock_class(ca_store *s, const char *class_name, sigil_err *err)
{
	dir_store *ds = to_dir(s);
	dir_lock *l;
	_cleanup_close_ int classfd = -1;
	int lfd, r;

	r = ca_store_check_class(class_name, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&ds->locks_mutex);
	l = dir_find_lock(ds, class_name);
	if (!l) {
		pthread_mutexattr_t attr;

		if (ds->nlocks >= DIR_MAX_LOCKS) {
			pthread_mutex_unlock(&ds->locks_mutex);
			return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d CA classes locked",
					     DIR_MAX_LOCKS);
		}
		l = calloc(1, sizeof(*l));
		if (!l) {
			pthread_mutex_unlock(&ds->locks_mutex);
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
		snprintf(l->class_name, sizeof(l->class_name), "%s", class_name);
		/* Error-checking, so that a thread locking twice gets an error
		 * instead of deadlocking on itself. */
		pthread_mutexattr_init(&attr);
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
		pthread_mutex_init(&l->mutex, &attr);
		pthread_mutexattr_destroy(&attr);
		l->fd = -1;
		l->next = ds->locks;
		ds->locks = l;
		ds->nlocks++;
	}
	pthread_mutex_unlock(&ds->locks_mutex);

	r = pthread_mutex_lock(&l->mutex);
	if (r == EDEADLK)
		return sigil_err_set(err, SIGIL_E_INTERNAL,
				     "CA class %s is already locked by this thread", class_name);
	if (r != 0)
		return sigil_err_errno(err, r, "cannot lock CA class %s", class_name);
	r = dir_open_class(ds, class_name, true, &classfd, err);
	if (r < 0)
		goto fail;
	lfd = openat(classfd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lfd < 0) {
		r = sigil_err_errno(err, errno, "cannot open %s/%s/" LOCK_NAME, ds->path,
				    class_name);
		goto fail;
	}
	while (flock(lfd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		r = sigil_err_errno(err, errno, "cannot lock %s/%s/" LOCK_NAME, ds->path,
				    class_name);
		close(lfd);
		goto fail;
	}
	pthread_mutex_lock(&ds->locks_mutex);
	l->fd = lfd;
	l->held = true;
	l->owner = pthread_self();
	pthread_mutex_unlock(&ds->locks_mutex);
	return 0;
fail:
	pthread_mutex_unlock(&l->mutex);
	return r;
}

static void dir_unlock_class(ca_store *s, const char *class_name)
{
	dir_store *ds = to_dir(s);
	dir_lock *l;
	int fd = -1;

	pthread_mutex_lock(&ds->locks_mutex);
	l = dir_find_lock(ds, class_name);
	if (l && l->held && pthread_equal(l->owner, pthread_self())) {
		fd = l->fd;
		l->fd = -1;
		l->held = false;
	}
	pthread_mutex_unlock(&ds->locks_mutex);
	if (fd < 0)
		return; /* not held by this thread: nothing to release */
	/* Closing the only fd of the description releases the flock too; the
	 * explicit unlock documents the intent. */
	flock(fd, LOCK_UN);
	close(fd);
	pthread_mutex_unlock(&l->mutex);
}

static int dir_load(ca_store *s, const char *class_name, ca_store_record **ret, size_t *ret_n,
		    sigil_err *err)
{
	dir_store *ds = to_dir(s);
	_cleanup_close_ int classfd = -1;
	uint64_t gens[CA_STORE_MAX_GENERATIONS];
	ca_store_record *recs;
	size_t n, k = 0;
	int r;

	r = ca_store_check_class(class_name, err);
	if (r < 0)
		return r;
	r = dir_open_class(ds, class_name, false, &classfd, err);
	if (r == SIGIL_E_NOTFOUND) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	if (r < 0)
		return r;
	r = dir_list(ds, class_name, classfd, dir_lock_held_by_self(ds, class_name), gens, &n,
		     err);
	if (r < 0)
		return r;
	recs = sigil_calloc(n, sizeof(*recs));
	if (!recs)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		char name[CA_STORE_GEN_NAME_LEN + 1], what[1024];
		uint8_t *data = NULL;
		size_t len = 0;
		struct stat st;
		sigil_err rerr = {0};

		ca_store_gen_name(gens[i], name);
		snprintf(what, sizeof(what), "CA store file %s/%s/%s", ds->path, class_name, name);
		if (fstatat(classfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			/* Listed a moment ago: removed by a concurrent prune. */
			if (errno == ENOENT)
				continue;
			r = sigil_err_set(err, SIGIL_E_CORRUPT, "%s cannot be examined: %s", what,
					  strerror(errno));
			goto fail;
		}
		if (!S_ISREG(st.st_mode)) {
			r = sigil_err_set(err, SIGIL_E_CORRUPT, "%s is not a regular file", what);
			goto fail;
		}
		r = sigil_fs_read_file_at(classfd, name, CA_STORE_MAX_RECORD_SIZE, &data, &len,
					  &rerr);
		if (r == SIGIL_E_NOTFOUND)
			continue;
		if (r < 0) {
			r = sigil_err_set(err, SIGIL_E_CORRUPT, "%s cannot be read: %s", what,
					  rerr.msg);
			goto fail;
		}
		r = ca_store_record_parse(what, (const char *)data, len, &recs[k], err);
		sigil_freezero(data, len + 1);
		if (r < 0)
			goto fail;
		recs[k++].generation = gens[i];
	}
	*ret = recs;
	*ret_n = k;
	return 0;
fail:
	/* Refuse the whole class: a silently skipped generation could be the
	 * one that signed certificates in use. */
	if (err && r == SIGIL_E_CORRUPT)
		sigil_err_prefix(err, "class %s: ", class_name);
	ca_store_records_free(recs, k);
	return r;
}

static int dir_put(ca_store *s, const char *class_name, const ca_store_record *rec,
		   sigil_err *err)
{
	dir_store *ds = to_dir(s);
	_cleanup_close_ int classfd = -1;
	uint64_t gens[CA_STORE_MAX_GENERATIONS];
	char name[CA_STORE_GEN_NAME_LEN + 1];
	struct stat st;
	char *data = NULL;
	size_t n, len = 0;
	int r;

	r = ca_store_check_class(class_name, err);
	if (r < 0)
		return r;
	/* Serialise and check before touching the file system. */
	r = ca_store_record_format(rec, &data, &len, err);
	if (r < 0)
		return r;
	ca_store_gen_name(rec->generation, name);
	r = dir_open_class(ds, class_name, true, &classfd, err);
	if (r < 0)
		goto out;
	r = dir_list(ds, class_name, classfd, false, gens, &n, err);
	if (r < 0)
		goto out;
	if (n >= CA_STORE_MAX_GENERATIONS) {
		r = sigil_err_set(err, SIGIL_E_LIMIT,
				  "class %s already holds %d CA generations; prune some first",
				  class_name, CA_STORE_MAX_GENERATIONS);
		goto out;
	}
	if (fstatat(classfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		r = sigil_err_set(err, SIGIL_E_EXISTS, "%s/%s/%s already exists", ds->path,
				  class_name, name);
		goto out;
	}
	if (errno != ENOENT) {
		r = sigil_err_errno(err, errno, "cannot examine %s/%s/%s", ds->path, class_name,
				    name);
		goto out;
	}
	r = sigil_fs_write_atomic_at(classfd, name, data, len, 0600, err);
	if (r < 0)
		sigil_err_prefix(err, "CA store %s/%s: ", ds->path, class_name);
out:
	sigil_freezero(data, len + 1);
	return r;
}

static int dir_remove(ca_store *s, const char *class_name, uint64_t generation, sigil_err *err)
{
	dir_store *ds = to_dir(s);
	_cleanup_close_ int classfd = -1;
	char name[CA_STORE_GEN_NAME_LEN + 1];
	int r;

	r = ca_store_check_class(class_name, err);
	if (r < 0)
		return r;
	r = dir_open_class(ds, class_name, false, &classfd, err);
	if (r == SIGIL_E_NOTFOUND)
		return 0;
	if (r < 0)
		return r;
	ca_store_gen_name(generation, name);
	if (unlinkat(classfd, name, 0) < 0) {
		if (errno == ENOENT)
			return 0;
		return sigil_err_errno(err, errno, "cannot remove %s/%s/%s", ds->path, class_name,
				       name);
	}
	if (fsync(classfd) < 0 && errno != EINVAL)
		return sigil_err_errno(err, errno, "cannot fsync %s/%s", ds->path, class_name);
	return 0;
}

static void dir_free(ca_store *s)
{
	dir_store *ds = to_dir(s);
	dir_lock *l, *next;

	if (!ds)
		return;
	for (l = ds->locks; l; l = next) {
		next = l->next;
		/* A lock still held at free is released with its fd. */
		if (l->fd >= 0)
			close(l->fd);
		pthread_mutex_destroy(&l->mutex);
		free(l);
	}
	pthread_mutex_destroy(&ds->locks_mutex);
	if (ds->dirfd >= 0)
		close(ds->dirfd);
	free(ds->path);
	free(ds);
}

static const ca_store_ops dir_ops = {
	.lock = dir_lock_class,
	.unlock = dir_unlock_class,
	.load = dir_load,
	.put = dir_put,
	.remove = dir_remove,
	.free = dir_free,
};

int ca_store_dir_open(const char *dir, ca_store **ret, sigil_err *err)
{
	dir_store *ds;
	int r;

	if (!dir || !*dir)
		return sigil_err_set(err, SIGIL_E_INVALID, "CA store directory is empty");
	r = sigil_fs_mkdir_p(dir, 0700, err);
	if (r < 0) {
		sigil_err_prefix(err, "CA store: ");
		return r;
	}
	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	ds->base.ops = &dir_ops;
	ds->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ds->dirfd < 0) {
		r = sigil_err_errno(err, errno, "cannot open CA store directory %s", dir);
		free(ds);
		return r;
	}
	ds->path = strdup(dir);
	if (!ds->path) {
		close(ds->dirfd);
		free(ds);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	pthread_mutex_init(&ds->locks_mutex, NULL);
	*ret = &ds->base;
	return 0;
}
