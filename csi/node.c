#include "csi/node.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ca/issue.h"
#include "csi/watcher.h"
#include "keystore/keystore.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/mem.h"

struct csi_node {
	csi_node_config cfg;
	char *node_id;
	/* Publishes and unpublishes of one target are serialised; different
	 * targets run in parallel. */
	pthread_mutex_t stripes[CSI_NODE_LOCK_STRIPES];
	struct csi_watcher *watcher; /* set before serving; may be NULL */
};

void csi_node_set_watcher(csi_node *n, struct csi_watcher *w)
{
	n->watcher = w;
}

bool csi_node_has_kube(const csi_node *n)
{
	return n->cfg.kube != NULL;
}

int csi_node_new(const csi_node_config *cfg, csi_node **ret, sigil_err *err)
{
	csi_node *n;

	if (!cfg->node_id || !*cfg->node_id)
		return sigil_err_set(err, SIGIL_E_INVALID, "the node id is required");
	n = calloc(1, sizeof(*n));
	if (!n)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	n->cfg = *cfg;
	n->node_id = strdup(cfg->node_id);
	if (!n->node_id) {
		free(n);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	n->cfg.node_id = n->node_id;
	for (int i = 0; i < CSI_NODE_LOCK_STRIPES; i++)
		pthread_mutex_init(&n->stripes[i], NULL);
	*ret = n;
	return 0;
}

void csi_node_free(csi_node *n)
{
	if (!n)
		return;
	for (int i = 0; i < CSI_NODE_LOCK_STRIPES; i++)
		pthread_mutex_destroy(&n->stripes[i]);
	free(n->node_id);
	free(n);
}

const char *csi_node_id(const csi_node *n)
{
	return n->node_id;
}

bool csi_node_ready(csi_node *n)
{
	return csi_issuer_ready(n->cfg.issuer);
}

size_t csi_node_volume_count(csi_node *n)
{
	return csi_state_count(n->cfg.state);
}

static pthread_mutex_t *stripe(csi_node *n, const char *target)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const char *p = target; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return &n->stripes[h % CSI_NODE_LOCK_STRIPES];
}

static int kv_cmp(const void *a, const void *b)
{
	const csi_kv *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : strcmp(x->value, y->value);
}

/* What makes two publishes of one target "the same" (CSI spec:
 * NodePublishVolume MUST be idempotent; an incompatible repeat is
 * ALREADY_EXISTS): volume id, target, readonly, fsGroup and the volume
 * context.  SHA-256 over a canonical encoding. */
static int fingerprint(const csi_publish_request *req, char out[65], sigil_err *err)
{
	csi_kv *sorted = sigil_calloc(req->n_attrs, sizeof(*sorted));
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c;
	char hdr[64];

	if (!sorted)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	memcpy(sorted, req->attrs, req->n_attrs * sizeof(*sorted));
	qsort(sorted, req->n_attrs, sizeof(*sorted), kv_cmp);
	c = EVP_MD_CTX_new();
	if (!c) {
		free(sorted);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, req->volume_id, strlen(req->volume_id) + 1);
	EVP_DigestUpdate(c, req->target_path, strlen(req->target_path) + 1);
	snprintf(hdr, sizeof(hdr), "ro=%d;gid=%d:%u;", req->readonly, req->has_fs_group,
		 (unsigned)req->fs_group);
	EVP_DigestUpdate(c, hdr, strlen(hdr) + 1);
	for (size_t i = 0; i < req->n_attrs; i++) {
		EVP_DigestUpdate(c, sorted[i].key, strlen(sorted[i].key) + 1);
		EVP_DigestUpdate(c, sorted[i].value, strlen(sorted[i].value) + 1);
	}
	EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	free(sorted);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int check_request(const csi_publish_request *req, sigil_err *err)
{
	if (!req->volume_id || !*req->volume_id)
		return sigil_err_set(err, SIGIL_E_INVALID, "volume_id is required");
	if (strlen(req->volume_id) > CSI_MAX_VOLUME_ID_LEN)
		return sigil_err_set(err, SIGIL_E_INVALID, "volume_id is longer than %d bytes",
				     CSI_MAX_VOLUME_ID_LEN);
	if (!req->target_path || !*req->target_path)
		return sigil_err_set(err, SIGIL_E_INVALID, "target_path is required");
	if (strlen(req->target_path) > CSI_MAX_TARGET_PATH_LEN)
		return sigil_err_set(err, SIGIL_E_INVALID, "target_path is too long");
	if (req->target_path[0] != '/')
		return sigil_err_set(err, SIGIL_E_INVALID, "target_path '%s' is not absolute",
				     req->target_path);
	/* No "..": the target must be exactly where the kubelet says. */
	if (strstr(req->target_path, "/../") || strstr(req->target_path, "/./") ||
	    (strlen(req->target_path) >= 3 &&
	     !strcmp(req->target_path + strlen(req->target_path) - 3, "/..")))
		return sigil_err_set(err, SIGIL_E_INVALID, "target_path '%s' is not canonical",
				     req->target_path);
	return 0;
}

/* Builds the record kept in the state dir. */
static int make_record(const csi_publish_request *req, const char *fp, const ks_fileset *fs,
		       time_t not_after, csi_volume_record *rec, sigil_err *err)
{
	memset(rec, 0, sizeof(*rec));
	rec->volume_id = (char *)req->volume_id;
	rec->target_path = (char *)req->target_path;
	rec->fingerprint = (char *)fp;
	rec->readonly = req->readonly;
	rec->n_attrs = req->n_attrs;
	rec->attr_keys = sigil_calloc(req->n_attrs, sizeof(char *));
	rec->attr_values = sigil_calloc(req->n_attrs, sizeof(char *));
	rec->files = sigil_calloc(fs->n, sizeof(char *));
	if (!rec->attr_keys || !rec->attr_values || !rec->files) {
		free(rec->attr_keys);
		free(rec->attr_values);
		free(rec->files);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < req->n_attrs; i++) {
		rec->attr_keys[i] = (char *)req->attrs[i].key;
		rec->attr_values[i] = (char *)req->attrs[i].value;
	}
	for (size_t i = 0; i < fs->n; i++)
		rec->files[i] = fs->files[i].name;
	rec->n_files = fs->n;
	rec->not_after = not_after;
	rec->published_at = time(NULL);
	return 0;
}

/* Borrowed-pointer record: only the arrays were allocated. */
static void record_release(csi_volume_record *rec)
{
	free(rec->attr_keys);
	free(rec->attr_values);
	free(rec->files);
}

/* What one mint produced (publish and renewal share it). */
typedef struct minted {
	ks_fileset fs;
	time_t not_after;          /* 0: nothing expires (keytab) */
	uint64_t bundle_version;
	bool from_pool;
	bool awaiting_pod_ip;      /* pod scope, and the pod has no IP yet */
} minted;

static void minted_free(minted *m)
{
	ks_fileset_free(&m->fs);
}

static bool has_scope(const csi_attrs *a, ca_scope_kind k)
{
	for (size_t i = 0; i < a->n_scopes; i++)
		if (a->scopes[i].kind == k)
			return true;
	return false;
}

/* Whether a pod-scoped volume is issued before its pod has an IP (the
 * normal case: the kubelet mounts volumes before the sandbox has its IP).
 * The CA looks the pod up itself and puts in what it finds; this only tells
 * the watcher to re-issue once the IP is there.  Asked before the issue,
 * so that a pod seen with an IP here had it for the CA too.  When the API
 * cannot say, assume no IP: the watcher's check is bounded. */
/* A pod-scoped certificate made before the pod had an IP (the kubelet
 * mounts volumes before the sandbox gets one) is re-issued by the watcher
 * once the pod has one.  Decided from what the CA issued, without asking
 * the API on the publish path: a pod scope alone with an IP SAN already
 * holds the pod's IP; with a node scope too the node's IPs make it
 * ambiguous, so the watcher checks the pod (off the publish path). */
static bool awaits_pod_ip(const csi_node *n, const csi_attrs *a, X509 *leaf)
{
	if (!n->cfg.kube || !leaf || !has_scope(a, CA_SCOPE_POD) || !a->pod_namespace ||
	    !a->pod_name)
		return false;
	return has_scope(a, CA_SCOPE_NODE) || !ca_cert_has_ip_san(leaf);
}

/* Mints the files of a TLS volume: key on this node, CSR to the issuer,
 * rendering in the requested format. */
static int mint_tls(csi_node *n, const csi_attrs *a, minted *out, sigil_err *err)
{
	ca_class_config cls;
	ca_issue_result res = {0};
	EVP_PKEY *key = NULL;
	uint8_t *csr = NULL;
	size_t csr_len = 0;
	ks_format kf;
	ks_options ko;
	sigil_keyalg alg;
	int r;

	r = csi_issuer_class(n->cfg.issuer, a->class_name, &cls, err);
	if (r < 0)
		return r;
	if (cls.backend != CA_BACKEND_AUTOTLS && cls.backend != CA_BACKEND_EXTERNAL)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "SecretClass '%s' is not a TLS class; format %s needs one",
				     a->class_name, csi_format_name(a->format));
	if (!csi_format_to_ks(a->format, &kf))
		return sigil_err_set(err, SIGIL_E_INVALID, "format %s is not a TLS format",
				     csi_format_name(a->format));
	alg = a->has_key_alg ? a->key_alg : cls.leaf_key_alg;
	ca_identity id = {
		.node_name = n->node_id,
		.pod_namespace = a->pod_namespace,
		.pod_name = a->pod_name,
	};
	ca_issue_request req = {
		.class_name = a->class_name,
		.identity = &id,
		.scopes = a->scopes,
		.n_scopes = a->n_scopes,
		.lifetime_secs = a->lifetime_secs,
		.jitter_factor = a->jitter_factor,
	};
	if (!a->public_only) {
		r = csi_keypool_take(n->cfg.keypool, alg, &key, &out->from_pool, err);
		if (r == 0)
			r = ca_csr_create(key, a->pod_name, &csr, &csr_len, err);
		if (r < 0)
			goto out;
		req.csr_der = csr;
		req.csr_len = csr_len;
	}
	r = csi_issuer_issue(n->cfg.issuer, &req, &res, err);
	if (r < 0)
		goto out;
	csi_attrs_ks_options(a, &ko);
	ks_material m = {.key = key, .leaf = res.leaf, .chain = res.chain, .trust = res.trust};
	r = ks_render(kf, &m, &ko, &out->fs, err);
	if (r == 0) {
		out->not_after = res.not_after;
		out->bundle_version = res.bundle_version;
		out->awaiting_pod_ip = awaits_pod_ip(n, a, res.leaf);
	}
out:
	ca_issue_result_free(&res);
	free(csr);
	EVP_PKEY_free(key);
	return r;
}

/* Stackable's service name when a volume names none. */
#define CSI_DEFAULT_KRB_SERVICE "HTTP"

/* Mints the files of a Kerberos volume: "keytab" and "krb5.conf" (only
 * krb5.conf for provision-parts=public).  The CA decides the principals
 * and makes sure they exist; the keys never change after creation, so a
 * keytab has no expiry to watch (not_after stays 0). */
static int mint_kerberos(csi_node *n, const csi_attrs *a, ks_fileset *out, sigil_err *err)
{
	static const char *const default_service[] = {CSI_DEFAULT_KRB_SERVICE};
	csi_keytab_result res = {0};
	ca_class_config *cls;
	ks_fileset fs = {0};
	uint8_t *conf;
	int r;

	if (!(cls = malloc(sizeof(*cls))))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = csi_issuer_class(n->cfg.issuer, a->class_name, cls, err);
	if (r == 0 && cls->backend != CA_BACKEND_KERBEROS)
		r = sigil_err_set(err, SIGIL_E_INVALID,
				  "SecretClass '%s' is %s; format kerberos needs a kerberosKeytab "
				  "class", a->class_name, ca_backend_name(cls->backend));
	free(cls);
	if (r < 0)
		return r;
	ca_identity id = {
		.node_name = n->node_id,
		.pod_namespace = a->pod_namespace,
		.pod_name = a->pod_name,
	};
	csi_keytab_request req = {
		.class_name = a->class_name,
		.identity = &id,
		.scopes = a->scopes,
		.n_scopes = a->n_scopes,
		.service_names = a->n_service_names ? (const char *const *)a->service_names
						    : default_service,
		.n_service_names = a->n_service_names ? a->n_service_names : 1,
		.public_only = a->public_only,
	};
	r = csi_issuer_provision_keytab(n->cfg.issuer, &req, &res, err);
	if (r < 0)
		return r;
	if (res.keytab) {
		r = ks_fileset_add(&fs, "keytab", res.keytab, res.keytab_len, true, err);
		res.keytab = NULL; /* owned by fs, even on failure */
		res.keytab_len = 0;
	}
	if (r == 0) {
		conf = (uint8_t *)res.krb5_conf;
		res.krb5_conf = NULL;
		r = ks_fileset_add(&fs, "krb5.conf", conf, res.krb5_conf_len, false, err);
	}
	csi_keytab_result_free(&res);
	if (r < 0) {
		ks_fileset_free(&fs);
		return r;
	}
	*out = fs;
	return 0;
}

/* The backend's native format (DESIGN.md "Volume API"): a keytab for a
 * kerberosKeytab class, PEM for the TLS backends. */
static int resolve_format(csi_node *n, csi_attrs *a, sigil_err *err)
{
	ca_class_config *cls;
	int r;

	if (a->format != CSI_FORMAT_DEFAULT)
		return 0;
	if (!(cls = malloc(sizeof(*cls))))
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = csi_issuer_class(n->cfg.issuer, a->class_name, cls, err);
	if (r == 0 && cls->backend == CA_BACKEND_KERBEROS)
		a->format = CSI_FORMAT_KERBEROS;
	free(cls);
	return r;
}

/* The whole mint step of the publish pipeline, shared by publish and
 * in-place renewal: the format resolved, then a TLS or Kerberos mint. */
static int mint_volume(csi_node *n, csi_attrs *a, minted *out, sigil_err *err)
{
	minted m = {0};
	int r;

	r = resolve_format(n, a, err);
	if (r < 0)
		return r;
	switch (a->format) {
	case CSI_FORMAT_DEFAULT:
	case CSI_FORMAT_TLS_PEM:
	case CSI_FORMAT_TLS_PKCS12:
	case CSI_FORMAT_TLS_JKS:
		r = mint_tls(n, a, &m, err);
		break;
	case CSI_FORMAT_KERBEROS:
		r = mint_kerberos(n, a, &m.fs, err);
		break;
	default:
		r = sigil_err_set(err, SIGIL_E_INTERNAL, "unknown format");
		break;
	}
	if (r < 0) {
		minted_free(&m);
		return r;
	}
	*out = m;
	return 0;
}

void csi_node_pod_event(csi_node *n, const csi_attrs *a, const char *type, const char *reason,
			const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!n->cfg.kube || !a || !a->pod_namespace || !a->pod_name)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	csi_kube_event(n->cfg.kube, a->pod_namespace, a->pod_name, a->pod_uid, type, reason, "%s",
		       msg);
}

static void format_time(time_t t, char buf[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* renewal=restart with an API: the restarter annotation (DESIGN.md).  Best
 * effort at publish: the watcher evicts at the deadline whether or not the
 * annotation is there, and retries it (CSI_WATCH_ANNOTATE). */
static bool annotate(csi_node *n, const csi_attrs *a, const char *volume_id, time_t not_after,
		     int64_t *annotated)
{
	sigil_err e = {0};
	time_t expires;

	if (!n->cfg.kube || a->renewal != CSI_RENEWAL_RESTART || !not_after || !a->pod_namespace ||
	    !a->pod_name)
		return false;
	expires = not_after - (time_t)csi_attrs_restart_buffer(a, time(NULL), not_after);
	if (csi_kube_annotate_expiry(n->cfg.kube, a->pod_namespace, a->pod_name, volume_id, expires,
				     &e) < 0) {
		log_debug("restarter annotation on %s/%s: %s", a->pod_namespace, a->pod_name, e.msg);
		return false;
	}
	*annotated = expires;
	return true;
}

static void tell_watcher(csi_node *n, const csi_volume_record *rec)
{
	if (n->watcher)
		csi_watcher_track(n->watcher, rec);
}

int csi_node_publish(csi_node *n, const csi_publish_request *req, csi_publish_result *ret,
		     sigil_err *err)
{
	csi_publish_result res = {0};
	csi_volume_record existing;
	csi_volume_record rec;
	csi_attrs a;
	minted m = {0};
	char fp[65];
	pthread_mutex_t *lk;
	struct stat st;
	int r;

	r = check_request(req, err);
	if (r < 0)
		return r;
	r = fingerprint(req, fp, err);
	if (r < 0)
		return r;
	lk = stripe(n, req->target_path);
	pthread_mutex_lock(lk);
	if (csi_state_get(n->cfg.state, req->volume_id, req->target_path, &existing) == 0) {
		bool same = existing.fingerprint && !strcmp(existing.fingerprint, fp);
		csi_record_free(&existing);
		if (!same) {
			r = sigil_err_set(err, SIGIL_E_EXISTS,
					  "volume %s is already published at %s with different "
					  "parameters", req->volume_id, req->target_path);
			goto unlock;
		}
		/* Same request again: fine if the files are still there;
		 * otherwise (e.g. a reboot wiped the tmpfs) publish anew. */
		_cleanup_free_ char *data = sigil_path_join(req->target_path, CSI_VOLUME_DATA_LINK);
		if (data && stat(data, &st) == 0) {
			res.already_published = true;
			goto done;
		}
	}
	r = csi_attrs_parse(req->attrs, req->n_attrs, &a, err);
	if (r < 0)
		goto unlock;
	r = mint_volume(n, &a, &m, err);
	if (r < 0)
		goto free_attrs;
	res.key_from_pool = m.from_pool;
	csi_volume_opts vo = {
		.mount_tmpfs = n->cfg.privileged,
		.tmpfs_size = n->cfg.tmpfs_size,
		.has_gid = req->has_fs_group,
		.gid = req->fs_group,
	};
	r = csi_volume_publish(req->target_path, &m.fs, &vo, err);
	if (r < 0)
		goto free_attrs;
	r = make_record(req, fp, &m.fs, m.not_after, &rec, err);
	if (r == 0) {
		rec.has_fs_group = req->has_fs_group;
		rec.fs_group = req->has_fs_group ? (int64_t)req->fs_group : 0;
		rec.trust_version = m.bundle_version;
		rec.awaiting_pod_ip = m.awaiting_pod_ip;
		annotate(n, &a, req->volume_id, m.not_after, &rec.annotated_expires_at);
		r = csi_state_put(n->cfg.state, &rec, err);
		if (r == 0)
			tell_watcher(n, &rec);
		record_release(&rec);
	}
	if (r < 0) {
		/* Unrecorded volumes would never be renewed or cleaned: undo. */
		if (csi_volume_unpublish(req->target_path, NULL) < 0)
			log_warn("could not undo the publish of %s", req->target_path);
		goto free_attrs;
	}
	if (m.not_after) {
		char when[32];
		format_time(m.not_after, when);
		csi_node_pod_event(n, &a, CSI_KUBE_EVENT_NORMAL, "Issued",
				   "sigil issued a %s certificate for volume %s, valid until %s",
				   a.format == CSI_FORMAT_DEFAULT ? "tls-pem" : csi_format_name(a.format),
				   req->volume_id, when);
	} else {
		csi_node_pod_event(n, &a, CSI_KUBE_EVENT_NORMAL, "Issued",
				   "sigil provisioned %s for volume %s",
				   m.fs.n > 1 ? "a keytab" : "krb5.conf", req->volume_id);
	}
	res.not_after = m.not_after;
	res.n_files = m.fs.n;
free_attrs:
	minted_free(&m);
	csi_attrs_free(&a);
done:
	if (r == 0 && ret)
		*ret = res;
unlock:
	pthread_mutex_unlock(lk);
	return r;
}

int csi_node_unpublish(csi_node *n, const char *volume_id, const char *target_path,
		       sigil_err *err)
{
	pthread_mutex_t *lk;
	int r;

	if (!volume_id || !*volume_id)
		return sigil_err_set(err, SIGIL_E_INVALID, "volume_id is required");
	if (!target_path || !*target_path)
		return sigil_err_set(err, SIGIL_E_INVALID, "target_path is required");
	if (target_path[0] != '/')
		return sigil_err_set(err, SIGIL_E_INVALID, "target_path '%s' is not absolute", target_path);
	lk = stripe(n, target_path);
	pthread_mutex_lock(lk);
	r = csi_volume_unpublish(target_path, err);
	if (r == 0)
		r = csi_state_remove(n->cfg.state, volume_id, target_path, err);
	if (r == 0 && n->watcher)
		csi_watcher_forget(n->watcher, volume_id, target_path);
	pthread_mutex_unlock(lk);
	return r;
}

/* ---- the expiry watcher's side ------------------------------------------ */

int csi_node_record_attrs(const csi_volume_record *rec, csi_attrs *ret, sigil_err *err)
{
	csi_kv kv[CSI_STATE_MAX_ATTRS];

	if (rec->n_attrs > CSI_STATE_MAX_ATTRS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "record has too many attributes");
	for (size_t i = 0; i < rec->n_attrs; i++) {
		kv[i].key = rec->attr_keys[i];
		kv[i].value = rec->attr_values[i];
	}
	return csi_attrs_parse(kv, rec->n_attrs, ret, err);
}

/* The files' group: recorded since the watcher exists; for older records
 * the group of the version directory publish created. */
static void record_volume_opts(const csi_volume_record *rec, csi_volume_opts *vo)
{
	gid_t gid;

	memset(vo, 0, sizeof(*vo));
	if (rec->has_fs_group) {
		vo->has_gid = true;
		vo->gid = (gid_t)rec->fs_group;
	} else if (csi_volume_data_gid(rec->target_path, &gid) == 0 && gid != getegid()) {
		vo->has_gid = true;
		vo->gid = gid;
	}
}

/* Replaces the record's file list by the names in fs. */
static int record_set_files(csi_volume_record *rec, const ks_fileset *fs)
{
	char **files = sigil_calloc(fs->n, sizeof(char *));

	if (!files)
		return SIGIL_E_NOMEM;
	for (size_t i = 0; i < fs->n; i++) {
		files[i] = strdup(fs->files[i].name);
		if (!files[i]) {
			while (i--)
				free(files[i]);
			free(files);
			return SIGIL_E_NOMEM;
		}
	}
	for (size_t i = 0; i < rec->n_files; i++)
		free(rec->files[i]);
	free(rec->files);
	rec->files = files;
	rec->n_files = fs->n;
	return 0;
}

/* Stores rec and hands a copy to *ret (optional). */
static int record_store(csi_node *n, csi_volume_record *rec, csi_volume_record *ret,
			sigil_err *err)
{
	int r = csi_state_put(n->cfg.state, rec, err);

	if (r == 0 && ret && csi_record_copy(rec, ret) < 0)
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	return r;
}

int csi_node_renew(csi_node *n, const char *volume_id, const char *target_path,
		   csi_volume_record *ret, sigil_err *err)
{
	csi_volume_record rec;
	csi_volume_opts vo;
	csi_attrs a;
	minted m = {0};
	pthread_mutex_t *lk;
	int r;

	lk = stripe(n, target_path);
	pthread_mutex_lock(lk);
	r = csi_state_get(n->cfg.state, volume_id, target_path, &rec);
	if (r < 0) {
		pthread_mutex_unlock(lk);
		return sigil_err_set(err, SIGIL_E_NOTFOUND, "volume %s is not published at %s",
				     volume_id, target_path);
	}
	r = csi_node_record_attrs(&rec, &a, err);
	if (r < 0) {
		sigil_err_prefix(err, "volume %s: ", volume_id);
		goto free_rec;
	}
	if (a.format == CSI_FORMAT_KERBEROS || !rec.not_after) {
		r = sigil_err_set(err, SIGIL_E_PRECOND, "volume %s has nothing that expires", volume_id);
		goto free_attrs;
	}
	r = mint_volume(n, &a, &m, err);
	if (r < 0)
		goto free_attrs;
	if (!m.not_after) {
		r = sigil_err_set(err, SIGIL_E_PRECOND, "volume %s has nothing that expires", volume_id);
		goto free_minted;
	}
	record_volume_opts(&rec, &vo);
	r = csi_volume_update(target_path, &m.fs, &vo, err);
	if (r < 0)
		goto free_minted;
	/* The files are swapped: the record follows (crash-safe rename). */
	if (record_set_files(&rec, &m.fs) < 0) {
		r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		goto free_minted;
	}
	rec.not_after = m.not_after;
	rec.renewed_at = time(NULL);
	rec.trust_version = m.bundle_version;
	rec.awaiting_pod_ip = m.awaiting_pod_ip;
	annotate(n, &a, volume_id, m.not_after, &rec.annotated_expires_at);
	r = record_store(n, &rec, ret, err);
free_minted:
	minted_free(&m);
free_attrs:
	csi_attrs_free(&a);
free_rec:
	csi_record_free(&rec);
	pthread_mutex_unlock(lk);
	return r;
}

static bool name_in(const ks_fileset *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++)
		if (!strcmp(fs->files[i].name, name))
			return true;
	return false;
}

int csi_node_refresh_trust(csi_node *n, const char *volume_id, const char *target_path,
			   STACK_OF(X509) *trust, uint64_t version, csi_volume_record *ret,
			   sigil_err *err)
{
	csi_volume_record rec;
	csi_volume_opts vo;
	csi_attrs a;
	ks_fileset tf = {0}, keep = {0};
	const char *names[KS_MAX_FILES];
	size_t n_names = 0;
	pthread_mutex_t *lk;
	ks_format kf;
	ks_options ko;
	int r;

	lk = stripe(n, target_path);
	pthread_mutex_lock(lk);
	r = csi_state_get(n->cfg.state, volume_id, target_path, &rec);
	if (r < 0) {
		pthread_mutex_unlock(lk);
		return sigil_err_set(err, SIGIL_E_NOTFOUND, "volume %s is not published at %s",
				     volume_id, target_path);
	}
	if (rec.trust_version == version) {
		r = ret ? (csi_record_copy(&rec, ret) < 0 ? SIGIL_E_NOMEM : 0) : 0;
		csi_record_free(&rec);
		pthread_mutex_unlock(lk);
		return r;
	}
	r = csi_node_record_attrs(&rec, &a, err);
	if (r < 0) {
		sigil_err_prefix(err, "volume %s: ", volume_id);
		goto free_rec;
	}
	/* A class with a trust bundle is a TLS class: its native format is
	 * PEM, no need to ask the issuer per volume. */
	if (a.format == CSI_FORMAT_DEFAULT)
		a.format = CSI_FORMAT_TLS_PEM;
	if (!csi_format_to_ks(a.format, &kf)) {
		r = sigil_err_set(err, SIGIL_E_PRECOND, "volume %s has no trust bundle", volume_id);
		goto free_attrs;
	}
	csi_attrs_ks_options(&a, &ko);
	ks_material mat = {.trust = trust};
	r = ks_render(kf, &mat, &ko, &tf, err);
	if (r < 0)
		goto free_attrs;
	/* Every other file is carried over byte for byte. */
	for (size_t i = 0; i < rec.n_files && n_names < KS_MAX_FILES; i++)
		if (!name_in(&tf, rec.files[i]))
			names[n_names++] = rec.files[i];
	r = csi_volume_read_files(target_path, names, n_names, &keep, err);
	if (r < 0)
		goto free_sets;
	for (size_t i = 0; i < tf.n && r == 0; i++) {
		r = ks_fileset_add(&keep, tf.files[i].name, tf.files[i].data, tf.files[i].len,
				   tf.files[i].secret, err);
		tf.files[i].data = NULL; /* owned by keep, even on failure */
		tf.files[i].len = 0;
	}
	if (r < 0)
		goto free_sets;
	record_volume_opts(&rec, &vo);
	r = csi_volume_update(target_path, &keep, &vo, err);
	if (r < 0)
		goto free_sets;
	rec.trust_version = version;
	r = record_store(n, &rec, ret, err);
free_sets:
	ks_fileset_free(&tf);
	ks_fileset_free(&keep);
free_attrs:
	csi_attrs_free(&a);
free_rec:
	csi_record_free(&rec);
	pthread_mutex_unlock(lk);
	return r;
}

int csi_node_annotate_expiry(csi_node *n, const char *volume_id, const char *target_path,
			     csi_volume_record *ret, sigil_err *err)
{
	csi_volume_record rec;
	csi_attrs a;
	pthread_mutex_t *lk;
	time_t expires;
	int r;

	if (!n->cfg.kube)
		return sigil_err_set(err, SIGIL_E_PRECOND, "no Kubernetes API to annotate pods in");
	lk = stripe(n, target_path);
	pthread_mutex_lock(lk);
	r = csi_state_get(n->cfg.state, volume_id, target_path, &rec);
	if (r < 0) {
		pthread_mutex_unlock(lk);
		return sigil_err_set(err, SIGIL_E_NOTFOUND, "volume %s is not published at %s",
				     volume_id, target_path);
	}
	r = csi_node_record_attrs(&rec, &a, err);
	if (r < 0)
		goto free_rec;
	if (a.renewal != CSI_RENEWAL_RESTART || !rec.not_after || !a.pod_namespace || !a.pod_name) {
		r = sigil_err_set(err, SIGIL_E_PRECOND, "volume %s is not restarted on expiry",
				  volume_id);
		goto free_attrs;
	}
	expires = (time_t)rec.not_after -
		  (time_t)csi_attrs_restart_buffer(&a, rec.renewed_at ? rec.renewed_at : rec.published_at,
						   rec.not_after);
	r = csi_kube_annotate_expiry(n->cfg.kube, a.pod_namespace, a.pod_name, volume_id, expires,
				     err);
	if (r == 0) {
		rec.annotated_expires_at = expires;
		r = record_store(n, &rec, ret, err);
	}
free_attrs:
	csi_attrs_free(&a);
free_rec:
	csi_record_free(&rec);
	pthread_mutex_unlock(lk);
	return r;
}
