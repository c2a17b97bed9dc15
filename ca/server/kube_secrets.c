/* Mirror of referenced Secrets and ConfigMaps (see kube_secrets.h). */
#include "ca/server/kube_secrets.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util/fs.h"
#include "util/log.h"
#include "util/mem.h"

/* ---- base64 ------------------------------------------------------------------------ */

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int kube_secrets_b64_decode(const char *in, size_t len, size_t max, uint8_t **ret, size_t *ret_len,
                            sigil_err *err)
{
	size_t pad = 0, out_len;
	uint8_t *out;
	int n;

	if (!in && len)
		return sigil_err_set(err, SIGIL_E_INVALID, "no base64 input");
	if (len % 4)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "not base64: the length %zu is not a multiple of 4", len);
	if (len / 4 * 3 > max + 2)
		return sigil_err_set(err, SIGIL_E_LIMIT, "decodes to more than %zu bytes", max);
	if (len >= 1 && in[len - 1] == '=')
		pad++;
	if (len >= 2 && in[len - 2] == '=')
		pad++;
	for (size_t i = 0; i < len - pad; i++)
		if (!b64_char(in[i]))
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "not base64: bad character at offset %zu", i);
	out_len = len / 4 * 3 - pad;
	if (out_len > max)
		return sigil_err_set(err, SIGIL_E_LIMIT, "decodes to more than %zu bytes", max);
	out = malloc(len / 4 * 3 + 1);
	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (len) {
		n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
		if (n < 0 || (size_t)n != len / 4 * 3) {
			sigil_freezero(out, len / 4 * 3 + 1);
			return sigil_err_set(err, SIGIL_E_INVALID, "not base64");
		}
	}
	out[out_len] = '\0';
	*ret = out;
	*ret_len = out_len;
	return 0;
}

int kube_secrets_b64_encode(const uint8_t *in, size_t len, char **ret, sigil_err *err)
{
	size_t out_len;
	char *out;

	if (!in && len)
		return sigil_err_set(err, SIGIL_E_INVALID, "no input");
	if (len > INT_MAX / 4 * 3 - 3)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%zu bytes are too many to encode", len);
	out_len = (len + 2) / 3 * 4;
	out = malloc(out_len + 1);
	if (!out)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	if (len)
		EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	out[out_len] = '\0';
	*ret = out;
	return 0;
}

/* ---- keys and objects ----------------------------------------------------------------- */

bool kube_secrets_key_ok(const char *key)
{
	size_t len;

	if (!key)
		return false;
	len = strnlen(key, KUBE_SECRETS_MAX_KEY + 1);
	if (len == 0 || len > KUBE_SECRETS_MAX_KEY)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = key[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	/* "." and ".." would leave the directory; "..x" is what a mounted
	 * volume uses for its own bookkeeping (and our marker). */
	return !(key[0] == '.' && (len == 1 || key[1] == '.'));
}

void kube_secrets_items_free(kube_secrets_item *items, size_t n)
{
	if (!items)
		return;
	for (size_t i = 0; i < n; i++) {
		free(items[i].key);
		sigil_freezero(items[i].data, items[i].len + 1);
	}
	free(items);
}

static int item_cmp(const void *a, const void *b)
{
	return strcmp(((const kube_secrets_item *)a)->key, ((const kube_secrets_item *)b)->key);
}

/* Adds the members of one map (data or binaryData). */
static int decode_map(const json_t *map, bool base64, const char *field, const char *what,
                      kube_secrets_item *items, size_t *n, size_t *total, sigil_err *err)
{
	const char *key;
	json_t *v;

	if (!map || json_is_null(map))
		return 0;
	if (!json_is_object(map))
		return sigil_err_set(err, SIGIL_E_INVALID, "%s: %s is not an object", what, field);
	json_object_foreach((json_t *)map, key, v)
	{
		kube_secrets_item *it;
		const char *s = json_string_value(v);
		size_t slen = json_string_length(v);
		int r;

		if (!kube_secrets_key_ok(key))
			return sigil_err_set(
			    err, SIGIL_E_INVALID,
			    "%s: %s key \"%.64s\" is not a valid file name (letters, "
			    "digits, '-', '_' and '.', at most %d bytes)",
			    what, field, key, KUBE_SECRETS_MAX_KEY);
		if (!s)
			return sigil_err_set(err, SIGIL_E_INVALID, "%s: %s.%s is not a string",
			                     what, field, key);
		for (size_t i = 0; i < *n; i++)
			if (!strcmp(items[i].key, key))
				return sigil_err_set(err, SIGIL_E_INVALID,
				                     "%s: key %s is in both data and binaryData",
				                     what, key);
		if (*n >= KUBE_SECRETS_MAX_KEYS)
			return sigil_err_set(err, SIGIL_E_LIMIT, "%s has more than %d keys", what,
			                     KUBE_SECRETS_MAX_KEYS);
		it = &items[*n];
		if (base64) {
			r = kube_secrets_b64_decode(s, slen, KUBE_SECRETS_MAX_VALUE, &it->data,
			                            &it->len, err);
			if (r < 0)
				return sigil_err_prefix(err, "%s: %s.%s: ", what, field, key);
		} else {
			if (slen > KUBE_SECRETS_MAX_VALUE)
				return sigil_err_set(err, SIGIL_E_LIMIT,
				                     "%s: %s.%s is longer than %u bytes", what,
				                     field, key, KUBE_SECRETS_MAX_VALUE);
			it->data = malloc(slen + 1);
			if (!it->data)
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			memcpy(it->data, s, slen);
			it->data[slen] = '\0';
			it->len = slen;
		}
		it->key = strdup(key);
		(*n)++;
		if (!it->key)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		*total += it->len;
		if (*total > KUBE_SECRETS_MAX_OBJECT)
			return sigil_err_set(err, SIGIL_E_LIMIT, "%s holds more than %u bytes",
			                     what, KUBE_SECRETS_MAX_OBJECT);
	}
	return 0;
}

int kube_secrets_decode_object(const json_t *obj, bool config_map, const char *what,
                               kube_secrets_item **ret, size_t *n, sigil_err *err)
{
	kube_secrets_item *items;
	size_t k = 0, total = 0;
	int r;

	if (!json_is_object(obj))
		return sigil_err_set(err, SIGIL_E_INVALID, "%s is not a JSON object", what);
	items = calloc(KUBE_SECRETS_MAX_KEYS, sizeof(*items));
	if (!items)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = decode_map(json_object_get(obj, "data"), !config_map, "data", what, items, &k, &total,
	               err);
	if (r == 0 && config_map)
		r = decode_map(json_object_get(obj, "binaryData"), true, "binaryData", what, items,
		               &k, &total, err);
	if (r < 0) {
		kube_secrets_items_free(items, k);
		return r;
	}
	qsort(items, k, sizeof(*items), item_cmp);
	*ret = items;
	*n = k;
	return 0;
}

/* ---- the mirror ------------------------------------------------------------------------ */

typedef struct ms_ref {
	char ns[64];
	char name[CA_CLASS_MAX_NAME];
	bool config_map;
	const char *class_name; /* the first class referencing it */
	const char *field;      /* which field */
} ms_ref;

static void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static int add_ref(ms_ref *refs, size_t *n, const char *ns, const char *name, bool config_map,
                   const char *class_name, const char *field, sigil_err *err)
{
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(refs[i].ns, ns) || strcmp(refs[i].name, name))
			continue;
		if (refs[i].config_map != config_map)
			/* Both would be mirrored into the same directory. */
			return sigil_err_set(
			    err, SIGIL_E_INVALID,
			    "SecretClass %s: %s names %s/%s, which is also used as "
			    "a %s (by SecretClass %s); a Secret and a ConfigMap of "
			    "the same name cannot both be referenced",
			    class_name, field, ns, name,
			    refs[i].config_map ? "ConfigMap" : "Secret", refs[i].class_name);
		return 0;
	}
	if (*n >= KUBE_SECRETS_MAX_REFS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d referenced objects",
		                     KUBE_SECRETS_MAX_REFS);
	if (!kube_name_ok(ns) || !kube_name_ok(name) || strlen(ns) >= sizeof(refs[0].ns) ||
	    strlen(name) >= sizeof(refs[0].name))
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "SecretClass %s: %s: bad name %.64s/%.64s", class_name, field,
		                     ns, name);
	snprintf(refs[*n].ns, sizeof(refs[*n].ns), "%s", ns);
	snprintf(refs[*n].name, sizeof(refs[*n].name), "%s", name);
	refs[*n].config_map = config_map;
	refs[*n].class_name = class_name;
	refs[*n].field = field;
	(*n)++;
	return 0;
}

/* Every object the classes reference.  A class whose references cannot be
 * mirrored is reported (first error) but the others are still collected. */
static int collect_refs(const ca_class_config *classes, size_t n, ms_ref *refs, size_t *n_refs,
                        sigil_err *err)
{
	int first = 0;

	for (size_t i = 0; i < n; i++) {
		const ca_class_config *c = &classes[i];
		sigil_err e = {0};
		int r = 0;

		/* With autoGenerate the CA lives in sigil's own store and
		 * ca/service.c never reads ca.secret (Stackable's default class
		 * names one anyway): mirroring it would only report a missing
		 * object forever. */
		if (c->has_ca_secret && !c->auto_generate)
			r = add_ref(refs, n_refs,
			            c->ca_secret.namespace_[0] ? c->ca_secret.namespace_
			                                       : "default",
			            c->ca_secret.name, false, c->name, "autoTls.ca.secret", &e);
		for (size_t j = 0; r == 0 && j < c->n_trust_roots; j++) {
			const ca_object_ref *t = &c->trust_roots[j];

			r = add_ref(refs, n_refs, t->namespace_[0] ? t->namespace_ : "default",
			            t->name, t->config_map, c->name, "additionalTrustRoots", &e);
		}
		if (r == 0 && c->backend == CA_BACKEND_KERBEROS && c->kerberos.admin_keytab[0] &&
		    c->kerberos.admin_keytab[0] != '/') {
			/* "<namespace>/<name>" (ca/secretclass.c). */
			char ns[64];
			const char *slash = strchr(c->kerberos.admin_keytab, '/');
			size_t nl = slash ? (size_t)(slash - c->kerberos.admin_keytab) : 0;

			if (!slash || nl == 0 || nl >= sizeof(ns)) {
				r = sigil_err_set(&e, SIGIL_E_INVALID,
				                  "SecretClass %s: bad adminKeytabSecret %.80s",
				                  c->name, c->kerberos.admin_keytab);
			} else {
				memcpy(ns, c->kerberos.admin_keytab, nl);
				ns[nl] = '\0';
				r = add_ref(refs, n_refs, ns, slash + 1, false, c->name,
				            "kerberosKeytab.adminKeytabSecret", &e);
			}
		}
		if (r < 0 && first == 0) {
			first = r;
			if (err)
				*err = e;
		}
	}
	return first;
}

/* Opens (creating 0700 if needed) the directory name under dirfd, never
 * following a link. */
static int open_dir_at(int dirfd, const char *name, const char *shown, int *ret, sigil_err *err)
{
	int fd;

	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return sigil_err_errno(err, errno, "cannot create %s", shown);
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sigil_err_errno(err, errno, "cannot open %s", shown);
	/* Secrets: nobody else may even list them. */
	if (fchmod(fd, 0700) < 0) {
		int e = errno;
		close(fd);
		return sigil_err_errno(err, e, "cannot chmod %s", shown);
	}
	*ret = fd;
	return 0;
}

static bool has_marker(int dirfd, const char *name)
{
	_cleanup_(closep) int fd =
	    openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	return fd >= 0 && fstatat(fd, KUBE_SECRETS_MARKER, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode);
}

/* Writes a key unless the file already holds exactly that. */
static int write_key(int dfd, const kube_secrets_item *it, const char *shown, bool *written,
                     sigil_err *err)
{
	uint8_t *cur = NULL;
	size_t cur_len = 0;
	struct stat st;
	bool same = false;
	int r;

	*written = false;
	if (fstatat(dfd, it->key, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) == 0600 && (size_t)st.st_size == it->len &&
	    sigil_fs_read_file_at(dfd, it->key, KUBE_SECRETS_MAX_VALUE, &cur, &cur_len, NULL) ==
	        0) {
		same = cur_len == it->len && !memcmp(cur, it->data, it->len);
		sigil_freezero(cur, cur_len + 1);
	}
	if (same)
		return 0;
	r = sigil_fs_write_atomic_at(dfd, it->key, it->data, it->len, 0600, err);
	if (r < 0)
		return sigil_err_prefix(err, "%s: ", shown);
	*written = true;
	return 0;
}

/* Removes every entry of the directory that is not a current key (nor
 * the marker). */
static int prune_keys(int dfd, const kube_secrets_item *items, size_t n, const char *shown,
                      size_t *removed, sigil_err *err)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int fd = dup(dfd);

	if (fd < 0 || !(d = fdopendir(fd))) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return sigil_err_errno(err, e, "cannot list %s", shown);
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		kube_secrets_item probe = {.key = de->d_name};

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, KUBE_SECRETS_MARKER))
			continue;
		if (n && bsearch(&probe, items, n, sizeof(*items), item_cmp))
			continue;
		if (sigil_fs_remove_tree_at(dfd, de->d_name, err) < 0)
			return sigil_err_prefix(err, "%s: ", shown);
		(*removed)++;
	}
	return 0;
}

static int mirror_object(int rootfd, const ms_ref *ref, const kube_secrets_item *items, size_t n,
                         const char *root, kube_secrets_stats *st, sigil_err *err)
{
	_cleanup_(closep) int nsfd = -1;
	_cleanup_(closep) int dfd = -1;
	char shown[PATH_MAX];
	int r;

	snprintf(shown, sizeof(shown), "%s/%s", root, ref->ns);
	r = open_dir_at(rootfd, ref->ns, shown, &nsfd, err);
	if (r < 0)
		return r;
	snprintf(shown, sizeof(shown), "%s/%s/%s", root, ref->ns, ref->name);
	r = open_dir_at(nsfd, ref->name, shown, &dfd, err);
	if (r < 0)
		return r;
	/* The marker first: a crash half-way leaves a directory that the next
	 * sync recognizes as its own. */
	if (faccessat(dfd, KUBE_SECRETS_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		static const char note[] = "mirrored by sigil-ca from the Kubernetes API\n";

		r = sigil_fs_write_atomic_at(dfd, KUBE_SECRETS_MARKER, note, sizeof(note) - 1, 0600,
		                             err);
		if (r < 0)
			return sigil_err_prefix(err, "%s: ", shown);
	}
	for (size_t i = 0; i < n; i++) {
		bool written;

		r = write_key(dfd, &items[i], shown, &written, err);
		if (r < 0)
			return r;
		st->files_written += written;
	}
	return prune_keys(dfd, items, n, shown, &st->files_removed, err);
}

/* Removes SECRETS_DIR/ns/name if the mirror wrote it. */
static int remove_mirror(int rootfd, const char *ns, const char *name, const char *root,
                         size_t *removed, sigil_err *err)
{
	_cleanup_(closep) int nsfd =
	    openat(rootfd, ns, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (nsfd < 0 || !has_marker(nsfd, name))
		return 0;
	if (sigil_fs_remove_tree_at(nsfd, name, err) < 0)
		return sigil_err_prefix(err, "%s/%s/%s: ", root, ns, name);
	(*removed)++;
	return 0;
}

static bool is_referenced(const ms_ref *refs, size_t n, const char *ns, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(refs[i].ns, ns) && !strcmp(refs[i].name, name))
			return true;
	return false;
}

/* Removes mirrored directories that no class references any more. */
static int remove_stale(int rootfd, const ms_ref *refs, size_t n_refs, const char *root,
                        size_t *removed, sigil_err *err)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int fd = dup(rootfd);

	if (fd < 0 || !(d = fdopendir(fd))) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return sigil_err_errno(err, e, "cannot list %s", root);
	}
	while ((de = readdir(d)) != NULL) {
		_cleanup_(closedirp) DIR *nd = NULL;
		struct dirent *ne;
		int nfd;

		if (de->d_name[0] == '.' || !kube_name_ok(de->d_name))
			continue;
		nfd = openat(rootfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0)
			continue;
		nd = fdopendir(nfd);
		if (!nd) {
			close(nfd);
			continue;
		}
		while ((ne = readdir(nd)) != NULL) {
			if (ne->d_name[0] == '.' || !kube_name_ok(ne->d_name) ||
			    is_referenced(refs, n_refs, de->d_name, ne->d_name) ||
			    !has_marker(dirfd(nd), ne->d_name))
				continue;
			if (sigil_fs_remove_tree_at(dirfd(nd), ne->d_name, err) < 0)
				return sigil_err_prefix(err, "%s/%s/%s: ", root, de->d_name,
				                        ne->d_name);
			(*removed)++;
		}
	}
	return 0;
}

int kube_secrets_sync(kube_client *c, const char *secrets_dir, const ca_class_config *classes,
                      size_t n, kube_secrets_stats *ret, sigil_err *err)
{
	_cleanup_free_ ms_ref *refs = NULL;
	_cleanup_(closep) int rootfd = -1;
	kube_secrets_stats st = {0};
	size_t n_refs = 0, failed = 0;
	sigil_err first = {0};
	int r;

	if (!c || !secrets_dir || (n && !classes))
		return sigil_err_set(err, SIGIL_E_INVALID, "secret mirror: bad arguments");
	refs = calloc(KUBE_SECRETS_MAX_REFS, sizeof(*refs));
	if (!refs)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = collect_refs(classes, n, refs, &n_refs, &first);
	if (r < 0)
		failed++;
	r = sigil_fs_mkdir_p(secrets_dir, 0700, err);
	if (r < 0)
		return r;
	rootfd = open(secrets_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return sigil_err_errno(err, errno, "cannot open %s", secrets_dir);
	if (fchmod(rootfd, 0700) < 0)
		return sigil_err_errno(err, errno, "cannot chmod %s", secrets_dir);
	for (size_t i = 0; i < n_refs; i++) {
		const ms_ref *ref = &refs[i];
		const kube_resource *res =
		    ref->config_map ? &kube_res_configmaps : &kube_res_secrets;
		const char *kind = ref->config_map ? "ConfigMap" : "Secret";
		kube_secrets_item *items = NULL;
		char what[CA_CLASS_MAX_NAME + 96];
		json_t *obj = NULL;
		sigil_err e = {0};
		size_t k = 0;

		snprintf(what, sizeof(what), "%s %s/%s", kind, ref->ns, ref->name);
		r = kube_client_get(c, res, ref->ns, ref->name, &obj, &e);
		if (r == SIGIL_E_NOTFOUND) {
			/* Gone: so must the files be, or the class would keep
			 * issuing from a CA that was deleted on purpose. */
			sigil_err_set(&e, r, "%s (%s of SecretClass %s) does not exist", what,
			              ref->field, ref->class_name);
			(void)remove_mirror(rootfd, ref->ns, ref->name, secrets_dir,
			                    &st.dirs_removed, NULL);
		} else if (r == 0) {
			r = kube_secrets_decode_object(obj, ref->config_map, what, &items, &k, &e);
			if (r == 0)
				r = mirror_object(rootfd, ref, items, k, secrets_dir, &st, &e);
			if (r == 0)
				st.objects++;
			else
				sigil_err_prefix(&e, "SecretClass %s: ", ref->class_name);
		} else {
			sigil_err_prefix(&e, "SecretClass %s: ", ref->class_name);
		}
		kube_secrets_items_free(items, k);
		json_decref(obj);
		if (r < 0 && failed++ == 0)
			first = e;
	}
	r = remove_stale(rootfd, refs, n_refs, secrets_dir, &st.dirs_removed, err);
	if (r < 0)
		return r;
	/* The counts are filled in even when some objects failed: the
	 * caller rebuilds on what did change (one missing Secret must not
	 * hide another one's update). */
	if (ret)
		*ret = st;
	if (failed) {
		if (failed > 1)
			sigil_err_prefix(
			    &first, "%zu referenced objects cannot be mirrored; first: ", failed);
		if (err)
			*err = first;
		return first.code ? first.code : SIGIL_E_INTERNAL;
	}
	return 0;
}
