#define _GNU_SOURCE
#include "csi/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "util/fs.h"
#include "util/mem.h"

typedef struct state_entry {
	char key[65]; /* hex SHA-256 of id \0 target */
	csi_volume_record rec;
	size_t next;  /* hash chain (entry index), SIZE_MAX ends it */
} state_entry;

struct csi_state {
	pthread_mutex_t lock;
	int dfd;
	state_entry *entries;
	size_t n, cap;
	/* Index by key, so that a get or put is O(1) with 10,000+ volumes
	 * (the watcher's trust refresh does one of each per volume). */
	size_t *buckets;
	size_t n_buckets;
};

static size_t key_bucket(const csi_state *st, const char *key)
{
	uint64_t h = 0;

	/* The key is hex SHA-256: its first 16 digits are a fine hash. */
	for (int i = 0; i < 16 && key[i]; i++) {
		char c = key[i];
		h = (h << 4) | (uint64_t)(c >= 'a' ? c - 'a' + 10 : c - '0');
	}
	return (size_t)(h & (st->n_buckets - 1));
}

static void index_link(csi_state *st, size_t i)
{
	size_t b = key_bucket(st, st->entries[i].key);

	st->entries[i].next = st->buckets[b];
	st->buckets[b] = i;
}

static void index_unlink(csi_state *st, size_t i)
{
	size_t *p = &st->buckets[key_bucket(st, st->entries[i].key)];

	while (*p != SIZE_MAX) {
		if (*p == i) {
			*p = st->entries[i].next;
			return;
		}
		p = &st->entries[*p].next;
	}
}

/* (Re)builds the index for at least cap entries. */
static int index_rebuild(csi_state *st)
{
	size_t nb = 64;
	size_t *b;

	while (nb < st->cap * 2)
		nb *= 2;
	b = malloc(nb * sizeof(*b));
	if (!b)
		return SIGIL_E_NOMEM;
	for (size_t i = 0; i < nb; i++)
		b[i] = SIZE_MAX;
	free(st->buckets);
	st->buckets = b;
	st->n_buckets = nb;
	for (size_t i = 0; i < st->n; i++)
		index_link(st, i);
	return 0;
}

static void record_key(const char *id, const char *target, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, id, strlen(id) + 1);
	EVP_DigestUpdate(c, target, strlen(target));
	EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void csi_record_free(csi_volume_record *r)
{
	if (!r)
		return;
	free(r->volume_id);
	free(r->target_path);
	free(r->fingerprint);
	for (size_t i = 0; i < r->n_attrs; i++) {
		free(r->attr_keys ? r->attr_keys[i] : NULL);
		sigil_secret_free(r->attr_values ? r->attr_values[i] : NULL);
	}
	free(r->attr_keys);
	free(r->attr_values);
	for (size_t i = 0; i < r->n_files; i++)
		free(r->files[i]);
	free(r->files);
	memset(r, 0, sizeof(*r));
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int csi_record_copy(const csi_volume_record *s, csi_volume_record *d)
{
	csi_volume_record r = *s;
	bool ok = true;

	r.volume_id = xstrdup(s->volume_id);
	r.target_path = xstrdup(s->target_path);
	r.fingerprint = xstrdup(s->fingerprint);
	r.attr_keys = sigil_calloc(s->n_attrs, sizeof(char *));
	r.attr_values = sigil_calloc(s->n_attrs, sizeof(char *));
	r.files = sigil_calloc(s->n_files, sizeof(char *));
	ok = r.volume_id && r.target_path && r.attr_keys && r.attr_values && r.files &&
	     (!s->fingerprint || r.fingerprint);
	for (size_t i = 0; ok && i < s->n_attrs; i++) {
		r.attr_keys[i] = strdup(s->attr_keys[i]);
		r.attr_values[i] = strdup(s->attr_values[i]);
		ok = r.attr_keys[i] && r.attr_values[i];
	}
	for (size_t i = 0; ok && i < s->n_files; i++) {
		r.files[i] = strdup(s->files[i]);
		ok = r.files[i] != NULL;
	}
	if (!ok) {
		csi_record_free(&r);
		return SIGIL_E_NOMEM;
	}
	*d = r;
	return 0;
}

int csi_record_to_json(const csi_volume_record *r, char **ret, sigil_err *err)
{
	json_t *o = json_object(), *attrs = json_object(), *files = json_array();
	char *s;

	if (!o || !attrs || !files) {
		json_decref(o);
		json_decref(attrs);
		json_decref(files);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < r->n_attrs; i++)
		json_object_set_new(attrs, r->attr_keys[i], json_string(r->attr_values[i]));
	for (size_t i = 0; i < r->n_files; i++)
		json_array_append_new(files, json_string(r->files[i]));
	json_object_set_new(o, "version", json_integer(1));
	json_object_set_new(o, "volumeId", json_string(r->volume_id));
	json_object_set_new(o, "targetPath", json_string(r->target_path));
	if (r->fingerprint)
		json_object_set_new(o, "fingerprint", json_string(r->fingerprint));
	json_object_set_new(o, "readonly", json_boolean(r->readonly));
	json_object_set_new(o, "notAfter", json_integer(r->not_after));
	json_object_set_new(o, "publishedAt", json_integer(r->published_at));
	json_object_set_new(o, "renewedAt", json_integer(r->renewed_at));
	if (r->has_fs_group)
		json_object_set_new(o, "fsGroup", json_integer(r->fs_group));
	if (r->trust_version)
		json_object_set_new(o, "trustVersion", json_integer((json_int_t)r->trust_version));
	if (r->awaiting_pod_ip)
		json_object_set_new(o, "awaitingPodIp", json_true());
	if (r->annotated_expires_at)
		json_object_set_new(o, "annotatedExpiresAt", json_integer(r->annotated_expires_at));
	json_object_set_new(o, "attributes", attrs);
	json_object_set_new(o, "files", files);
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	/* The attributes may hold a password: wipe jansson's copies. */
	const char *k;
	json_t *v;
	json_object_foreach(attrs, k, v) {
		const char *sv = json_string_value(v);
		if (sv)
			sigil_wipe((void *)sv, strlen(sv));
	}
	json_decref(o);
	if (!s)
		return sigil_err_set(err, SIGIL_E_NOMEM, "cannot encode volume record");
	*ret = s;
	return 0;
}

static int get_str(json_t *o, const char *name, bool required, char **dst, sigil_err *err)
{
	json_t *v = json_object_get(o, name);

	if (!v) {
		if (!required)
			return 0;
		return sigil_err_set(err, SIGIL_E_CORRUPT, "field '%s' is missing", name);
	}
	if (!json_is_string(v) || json_string_length(v) > CSI_STATE_MAX_STR ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "field '%s' is not a valid string", name);
	*dst = strdup(json_string_value(v));
	return *dst ? 0 : sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
}

static int get_int(json_t *o, const char *name, int64_t *dst, sigil_err *err)
{
	json_t *v = json_object_get(o, name);

	if (!v)
		return 0;
	if (!json_is_integer(v))
		return sigil_err_set(err, SIGIL_E_CORRUPT, "field '%s' is not an integer", name);
	*dst = json_integer_value(v);
	return 0;
}

int csi_record_from_json(const char *text, size_t len, csi_volume_record *ret, sigil_err *err)
{
	json_error_t je;
	json_t *o, *attrs, *files, *ver;
	csi_volume_record r = {0};
	int rc = 0;

	if (len > CSI_STATE_MAX_RECORD)
		return sigil_err_set(err, SIGIL_E_LIMIT, "record larger than %d bytes", CSI_STATE_MAX_RECORD);
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return sigil_err_set(err, SIGIL_E_CORRUPT, "invalid JSON at line %d: %s", je.line, je.text);
	if (!json_is_object(o)) {
		rc = sigil_err_set(err, SIGIL_E_CORRUPT, "record is not a JSON object");
		goto out;
	}
	ver = json_object_get(o, "version");
	if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
		rc = sigil_err_set(err, SIGIL_E_CORRUPT, "unknown record version");
		goto out;
	}
	if ((rc = get_str(o, "volumeId", true, &r.volume_id, err)) < 0 ||
	    (rc = get_str(o, "targetPath", true, &r.target_path, err)) < 0 ||
	    (rc = get_str(o, "fingerprint", false, &r.fingerprint, err)) < 0 ||
	    (rc = get_int(o, "notAfter", &r.not_after, err)) < 0 ||
	    (rc = get_int(o, "publishedAt", &r.published_at, err)) < 0 ||
	    (rc = get_int(o, "renewedAt", &r.renewed_at, err)) < 0 ||
	    (rc = get_int(o, "annotatedExpiresAt", &r.annotated_expires_at, err)) < 0)
		goto out;
	r.readonly = json_is_true(json_object_get(o, "readonly"));
	r.awaiting_pod_ip = json_is_true(json_object_get(o, "awaitingPodIp"));
	if (json_object_get(o, "fsGroup")) {
		if ((rc = get_int(o, "fsGroup", &r.fs_group, err)) < 0)
			goto out;
		if (r.fs_group < 0 || r.fs_group > CSI_STATE_MAX_GID) {
			rc = sigil_err_set(err, SIGIL_E_CORRUPT, "field 'fsGroup' is out of range");
			goto out;
		}
		r.has_fs_group = true;
	}
	if (json_object_get(o, "trustVersion")) {
		int64_t tv = 0;
		if ((rc = get_int(o, "trustVersion", &tv, err)) < 0)
			goto out;
		/* An opaque 64-bit version stored bit for bit in JSON's int64. */
		r.trust_version = (uint64_t)tv;
	}
	attrs = json_object_get(o, "attributes");
	files = json_object_get(o, "files");
	if (!json_is_object(attrs) || !json_is_array(files)) {
		rc = sigil_err_set(err, SIGIL_E_CORRUPT, "attributes or files missing");
		goto out;
	}
	if (json_object_size(attrs) > CSI_STATE_MAX_ATTRS || json_array_size(files) > CSI_STATE_MAX_FILES) {
		rc = sigil_err_set(err, SIGIL_E_LIMIT, "too many attributes or files");
		goto out;
	}
	r.attr_keys = sigil_calloc(json_object_size(attrs), sizeof(char *));
	r.attr_values = sigil_calloc(json_object_size(attrs), sizeof(char *));
	r.files = sigil_calloc(json_array_size(files), sizeof(char *));
	if (!r.attr_keys || !r.attr_values || !r.files) {
		rc = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		goto out;
	}
	const char *k;
	json_t *v;
	json_object_foreach(attrs, k, v) {
		if (!json_is_string(v) || strlen(k) > CSI_STATE_MAX_STR ||
		    json_string_length(v) > CSI_STATE_MAX_STR) {
			rc = sigil_err_set(err, SIGIL_E_CORRUPT, "attribute '%.64s' is not a string", k);
			goto out;
		}
		r.attr_keys[r.n_attrs] = strdup(k);
		r.attr_values[r.n_attrs] = strdup(json_string_value(v));
		r.n_attrs++;
		if (!r.attr_keys[r.n_attrs - 1] || !r.attr_values[r.n_attrs - 1]) {
			rc = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			goto out;
		}
	}
	for (size_t i = 0; i < json_array_size(files); i++) {
		json_t *f = json_array_get(files, i);
		if (!json_is_string(f) || !sigil_fs_rel_path_ok(json_string_value(f))) {
			rc = sigil_err_set(err, SIGIL_E_CORRUPT, "file entry %zu is not a safe name", i);
			goto out;
		}
		r.files[r.n_files] = strdup(json_string_value(f));
		if (!r.files[r.n_files++]) {
			rc = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			goto out;
		}
	}
	if (r.target_path[0] != '/') {
		rc = sigil_err_set(err, SIGIL_E_CORRUPT, "target path is not absolute");
		goto out;
	}
out:
	json_decref(o);
	if (rc < 0) {
		csi_record_free(&r);
		return rc;
	}
	*ret = r;
	return 0;
}

static int entries_reserve(csi_state *st)
{
	state_entry *n;
	size_t cap;

	if (st->n < st->cap)
		return 0;
	if (st->n >= CSI_STATE_MAX_VOLUMES)
		return SIGIL_E_LIMIT;
	cap = st->cap ? st->cap * 2 : 64;
	n = realloc(st->entries, cap * sizeof(*n));
	if (!n)
		return SIGIL_E_NOMEM;
	st->entries = n;
	st->cap = cap;
	return index_rebuild(st);
}

static state_entry *find(csi_state *st, const char *key)
{
	if (!st->n_buckets)
		return NULL;
	for (size_t i = st->buckets[key_bucket(st, key)]; i != SIZE_MAX; i = st->entries[i].next)
		if (!strcmp(st->entries[i].key, key))
			return &st->entries[i];
	return NULL;
}

static int load_all(csi_state *st, sigil_err *err)
{
	int fd = dup(st->dfd);
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot read state directory");
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return sigil_err_errno(err, errno, "cannot read state directory");
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);
		uint8_t *data = NULL;
		size_t len;
		csi_volume_record rec;
		char key[65];

		if (de->d_name[0] == '.') {
			/* A temp file left by a crash mid-write. */
			if (!strncmp(de->d_name, ".tmp-", 5))
				unlinkat(st->dfd, de->d_name, 0);
			continue;
		}
		if (nl != 69 || strcmp(de->d_name + 64, ".json"))
			continue;
		r = sigil_fs_read_file_at(st->dfd, de->d_name, CSI_STATE_MAX_RECORD, &data, &len, err);
		if (r < 0)
			break;
		r = csi_record_from_json((char *)data, len, &rec, err);
		sigil_freezero(data, len);
		if (r < 0) {
			sigil_err_prefix(err, "volume record %s: ", de->d_name);
			break;
		}
		record_key(rec.volume_id, rec.target_path, key);
		if (memcmp(key, de->d_name, 64) != 0) {
			csi_record_free(&rec);
			r = sigil_err_set(err, SIGIL_E_CORRUPT,
					  "volume record %s does not match its file name", de->d_name);
			break;
		}
		r = entries_reserve(st);
		if (r < 0) {
			csi_record_free(&rec);
			sigil_err_set(err, r, "too many volume records");
			break;
		}
		memcpy(st->entries[st->n].key, key, sizeof(key));
		st->entries[st->n].rec = rec;
		index_link(st, st->n++);
	}
	closedir(d);
	return r;
}

int csi_state_open(const char *state_dir, csi_state **ret, sigil_err *err)
{
	_cleanup_free_ char *dir = sigil_path_join(state_dir, "volumes");
	csi_state *st;
	int r;

	if (!dir)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = sigil_fs_mkdir_p(dir, 0700, err);
	if (r < 0)
		return r;
	st = calloc(1, sizeof(*st));
	if (!st)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	pthread_mutex_init(&st->lock, NULL);
	st->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dfd < 0) {
		r = sigil_err_errno(err, errno, "cannot open %s", dir);
		csi_state_free(st);
		return r;
	}
	r = load_all(st, err);
	if (r < 0) {
		sigil_err_prefix(err, "%s: ", dir);
		csi_state_free(st);
		return r;
	}
	*ret = st;
	return 0;
}

void csi_state_free(csi_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++)
		csi_record_free(&st->entries[i].rec);
	free(st->entries);
	free(st->buckets);
	if (st->dfd >= 0)
		close(st->dfd);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

int csi_state_put(csi_state *st, const csi_volume_record *rec, sigil_err *err)
{
	char key[65], name[80];
	char *json = NULL;
	csi_volume_record copy;
	state_entry *e;
	int r;

	record_key(rec->volume_id, rec->target_path, key);
	snprintf(name, sizeof(name), "%s.json", key);
	r = csi_record_to_json(rec, &json, err);
	if (r < 0)
		return r;
	if (csi_record_copy(rec, &copy) < 0) {
		sigil_secret_free(json);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	pthread_mutex_lock(&st->lock);
	r = sigil_fs_write_atomic_at(st->dfd, name, json, strlen(json), 0600, err);
	if (r == 0) {
		e = find(st, key);
		if (e) {
			csi_record_free(&e->rec);
			e->rec = copy;
		} else if ((r = entries_reserve(st)) == 0) {
			memcpy(st->entries[st->n].key, key, sizeof(key));
			st->entries[st->n].rec = copy;
			index_link(st, st->n++);
		} else {
			sigil_err_set(err, r, "too many volumes");
		}
	}
	pthread_mutex_unlock(&st->lock);
	if (r < 0)
		csi_record_free(&copy);
	sigil_secret_free(json);
	return r;
}

int csi_state_get(csi_state *st, const char *volume_id, const char *target, csi_volume_record *ret)
{
	char key[65];
	state_entry *e;
	int r;

	record_key(volume_id, target, key);
	pthread_mutex_lock(&st->lock);
	e = find(st, key);
	r = e ? csi_record_copy(&e->rec, ret) : SIGIL_E_NOTFOUND;
	pthread_mutex_unlock(&st->lock);
	return r;
}

int csi_state_find_volume(csi_state *st, const char *volume_id, csi_volume_record *ret)
{
	int r = SIGIL_E_NOTFOUND;

	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < st->n; i++)
		if (!strcmp(st->entries[i].rec.volume_id, volume_id)) {
			r = csi_record_copy(&st->entries[i].rec, ret);
			break;
		}
	pthread_mutex_unlock(&st->lock);
	return r;
}

int csi_state_remove(csi_state *st, const char *volume_id, const char *target, sigil_err *err)
{
	char key[65], name[80];
	state_entry *e;
	int r = 0;

	record_key(volume_id, target, key);
	snprintf(name, sizeof(name), "%s.json", key);
	pthread_mutex_lock(&st->lock);
	if (unlinkat(st->dfd, name, 0) < 0 && errno != ENOENT)
		r = sigil_err_errno(err, errno, "cannot remove volume record %s", name);
	else if (fsync(st->dfd) < 0 && errno != EINVAL)
		r = sigil_err_errno(err, errno, "cannot sync state directory");
	if (r == 0 && (e = find(st, key)) != NULL) {
		size_t i = (size_t)(e - st->entries), last = st->n - 1;
		csi_record_free(&e->rec);
		index_unlink(st, i);
		if (i != last) {
			index_unlink(st, last);
			st->entries[i] = st->entries[last];
			index_link(st, i);
		}
		st->n--;
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

size_t csi_state_count(csi_state *st)
{
	size_t n;

	pthread_mutex_lock(&st->lock);
	n = st->n;
	pthread_mutex_unlock(&st->lock);
	return n;
}

void csi_state_foreach(csi_state *st, csi_state_fn fn, void *ctx)
{
	csi_volume_record *copies;
	size_t n = 0;

	pthread_mutex_lock(&st->lock);
	copies = sigil_calloc(st->n, sizeof(*copies));
	for (size_t i = 0; copies && i < st->n; i++)
		if (csi_record_copy(&st->entries[i].rec, &copies[n]) == 0)
			n++;
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; i < n; i++) {
		fn(&copies[i], ctx);
		csi_record_free(&copies[i]);
	}
	free(copies);
}
