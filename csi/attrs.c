#include "csi/attrs.h"

#include <stdlib.h>
#include <string.h>

#include "util/duration.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/parse.h"

typedef enum attr_id {
	A_CLASS,
	A_SCOPE,
	A_FORMAT,
	A_PROVISION_PARTS,
	A_KRB_SERVICE_NAMES,
	A_PASSWORD,
	A_KEYSTORE_NAME,
	A_TRUSTSTORE_NAME,
	A_PEM_CERT_NAME,
	A_PEM_KEY_NAME,
	A_PEM_CA_NAME,
	A_LIFETIME,
	A_RESTART_BUFFER,
	A_JITTER,
	A_KEY_ALG,
	A_RENEWAL,
	A__COUNT
} attr_id;

static const struct {
	const char *name;
	bool secret;
	bool sigil_only;
} attr_table[A__COUNT] = {
	[A_CLASS] = {"class", false, false},
	[A_SCOPE] = {"scope", false, false},
	[A_FORMAT] = {"format", false, false},
	[A_PROVISION_PARTS] = {"provision-parts", false, false},
	[A_KRB_SERVICE_NAMES] = {"kerberos.service.names", false, false},
	[A_PASSWORD] = {"format.compatibility.tls-pkcs12.password", true, false},
	[A_KEYSTORE_NAME] = {"format.tls-pkcs12.keystore-name", false, false},
	[A_TRUSTSTORE_NAME] = {"format.tls-pkcs12.truststore-name", false, false},
	[A_PEM_CERT_NAME] = {"format.tls-pem.cert-name", false, false},
	[A_PEM_KEY_NAME] = {"format.tls-pem.key-name", false, false},
	[A_PEM_CA_NAME] = {"format.tls-pem.ca-name", false, false},
	[A_LIFETIME] = {"backend.autotls.cert.lifetime", false, false},
	[A_RESTART_BUFFER] = {"backend.autotls.cert.restart-buffer", false, false},
	[A_JITTER] = {"backend.autotls.cert.jitter-factor", false, false},
	[A_KEY_ALG] = {"key-algorithm", false, true},
	[A_RENEWAL] = {"renewal", false, true},
};

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int dup_str(char **dst, const char *v, sigil_err *err)
{
	char *d = strdup(v);

	if (!d)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	free(*dst);
	*dst = d;
	return 0;
}

/* A Kubernetes object name (RFC 1123 subdomain, as services and listener
 * volumes are named). */
static bool k8s_name_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > CSI_MAX_NAME_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && c != '-' && c != '.')
			return false;
		if ((i == 0 || i == len - 1) && !alnum)
			return false;
	}
	return true;
}

/* Kerberos service names: the first component of a principal. */
static bool service_name_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* Splits a comma list into trimmed, non-empty items; calls fn on each. */
typedef int (*item_fn)(csi_attrs *a, const char *item, const char *key, sigil_err *err);

static int for_each_item(csi_attrs *a, const char *value, const char *key, item_fn fn,
			 sigil_err *err)
{
	const char *p = value;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char item[CSI_MAX_NAME_LEN + 32];
		size_t s = 0, e = n;
		int r;

		while (s < e && p[s] == ' ')
			s++;
		while (e > s && p[e - 1] == ' ')
			e--;
		if (e - s >= sizeof(item))
			return sigil_err_set(err, SIGIL_E_LIMIT, "%s: item '%.*s...' is too long", key,
					     32, p + s);
		if (e > s) {
			memcpy(item, p + s, e - s);
			item[e - s] = '\0';
			r = fn(a, item, key, err);
			if (r < 0)
				return r;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

static int add_scope(csi_attrs *a, const char *item, const char *key, sigil_err *err)
{
	ca_scope sc = {0};
	const char *eq = strchr(item, '=');

	if (a->n_scopes >= CSI_MAX_SCOPES)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s: more than %d scopes", key, CSI_MAX_SCOPES);
	if (!strcmp(item, "node"))
		sc.kind = CA_SCOPE_NODE;
	else if (!strcmp(item, "pod"))
		sc.kind = CA_SCOPE_POD;
	else if (eq && (size_t)(eq - item) == 7 && !strncmp(item, "service", 7))
		sc.kind = CA_SCOPE_SERVICE;
	else if (eq && (size_t)(eq - item) == 15 && !strncmp(item, "listener-volume", 15))
		sc.kind = CA_SCOPE_LISTENER_VOLUME;
	else
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "%s: unknown scope '%s' (expected node, pod, service=NAME or "
				     "listener-volume=NAME)", key, item);
	if (sc.kind == CA_SCOPE_SERVICE || sc.kind == CA_SCOPE_LISTENER_VOLUME) {
		if (!k8s_name_ok(eq + 1))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s: '%s' is not a valid Kubernetes object name", key,
					     eq + 1);
		sc.name = strdup(eq + 1);
		if (!sc.name)
			return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	/* A repeated scope adds nothing. */
	for (size_t i = 0; i < a->n_scopes; i++)
		if (a->scopes[i].kind == sc.kind &&
		    ((!sc.name && !a->scopes[i].name) ||
		     (sc.name && a->scopes[i].name && !strcmp(sc.name, a->scopes[i].name)))) {
			free(sc.name);
			return 0;
		}
	a->scopes[a->n_scopes++] = sc;
	return 0;
}

static int add_service_name(csi_attrs *a, const char *item, const char *key, sigil_err *err)
{
	if (a->n_service_names >= CSI_MAX_SERVICE_NAMES)
		return sigil_err_set(err, SIGIL_E_LIMIT, "%s: more than %d service names", key,
				     CSI_MAX_SERVICE_NAMES);
	if (!service_name_ok(item))
		return sigil_err_set(err, SIGIL_E_INVALID, "%s: '%s' is not a valid service name", key,
				     item);
	for (size_t i = 0; i < a->n_service_names; i++)
		if (!strcmp(a->service_names[i], item))
			return 0;
	a->service_names[a->n_service_names] = strdup(item);
	if (!a->service_names[a->n_service_names])
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	a->n_service_names++;
	return 0;
}

static int set_file_name(char **dst, const char *v, const char *key, sigil_err *err)
{
	if (!sigil_fs_rel_path_ok(v))
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "%s: '%s' is not a safe file name (relative, no '..', no "
				     "leading '/')", key, v);
	return dup_str(dst, v, err);
}

static int apply(csi_attrs *a, attr_id id, const char *key, const char *v, sigil_err *err)
{
	sigil_err e2 = {0};

	switch (id) {
	case A_CLASS:
		if (!k8s_name_ok(v))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s: '%s' is not a valid SecretClass name", key, v);
		return dup_str(&a->class_name, v, err);
	case A_SCOPE:
		return for_each_item(a, v, key, add_scope, err);
	case A_FORMAT:
		if (!strcmp(v, "tls-pem"))
			a->format = CSI_FORMAT_TLS_PEM;
		else if (!strcmp(v, "tls-pkcs12"))
			a->format = CSI_FORMAT_TLS_PKCS12;
		else if (!strcmp(v, "tls-jks"))
			a->format = CSI_FORMAT_TLS_JKS;
		else if (!strcmp(v, "kerberos"))
			a->format = CSI_FORMAT_KERBEROS;
		else
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s: unknown format '%s' (expected tls-pem, tls-pkcs12, "
					     "tls-jks or kerberos)", key, v);
		return 0;
	case A_PROVISION_PARTS:
		if (!strcmp(v, "public"))
			a->public_only = true;
		else if (!strcmp(v, "public-private"))
			a->public_only = false;
		else
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s: '%s' (expected public or public-private)", key, v);
		return 0;
	case A_KRB_SERVICE_NAMES:
		return for_each_item(a, v, key, add_service_name, err);
	case A_PASSWORD:
		if (strlen(v) > KS_MAX_PASSWORD_LEN)
			return sigil_err_set(err, SIGIL_E_LIMIT, "%s: longer than %d bytes", key,
					     KS_MAX_PASSWORD_LEN);
		sigil_secret_free(a->password);
		a->password = strdup(v);
		return a->password ? 0 : sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	case A_KEYSTORE_NAME: return set_file_name(&a->keystore_name, v, key, err);
	case A_TRUSTSTORE_NAME: return set_file_name(&a->truststore_name, v, key, err);
	case A_PEM_CERT_NAME: return set_file_name(&a->pem_cert_name, v, key, err);
	case A_PEM_KEY_NAME: return set_file_name(&a->pem_key_name, v, key, err);
	case A_PEM_CA_NAME: return set_file_name(&a->pem_ca_name, v, key, err);
	case A_LIFETIME:
	case A_RESTART_BUFFER: {
		int64_t secs;
		if (sigil_duration_parse(v, &secs, &e2) < 0)
			return sigil_err_set(err, SIGIL_E_INVALID, "%s: %s", key, e2.msg);
		if (id == A_LIFETIME && secs < 60)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s: '%s' is shorter than the minimum of 1m", key, v);
		if (id == A_LIFETIME)
			a->lifetime_secs = secs;
		else
			a->restart_buffer_secs = secs;
		return 0;
	}
	case A_JITTER:
		if (sigil_parse_double(v, 0.0, 1.0, &a->jitter_factor) < 0)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s: '%s' is not a number with 0 <= f < 1", key, v);
		return 0;
	case A_KEY_ALG:
		if (ca_keyalg_parse(v, &a->key_alg) < 0)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s: unknown key algorithm '%s' (expected rsa-2048, "
					     "rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384 or ed25519)",
					     key, v);
		a->has_key_alg = true;
		return 0;
	case A_RENEWAL:
		if (!strcmp(v, "restart"))
			a->renewal = CSI_RENEWAL_RESTART;
		else if (!strcmp(v, "in-place"))
			a->renewal = CSI_RENEWAL_IN_PLACE;
		else
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s: '%s' (expected restart or in-place)", key, v);
		return 0;
	default:
		return sigil_err_set(err, SIGIL_E_INTERNAL, "unhandled attribute %s", key);
	}
}

static int apply_k8s(csi_attrs *a, const char *sub, const char *key, const char *v, sigil_err *err)
{
	if (!strcmp(sub, "pod.name") || !strcmp(sub, "pod.namespace") ||
	    !strcmp(sub, "serviceAccount.name")) {
		if (!k8s_name_ok(v))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "%s: '%s' is not a valid Kubernetes name", key, v);
		return dup_str(!strcmp(sub, "pod.name")        ? &a->pod_name
			       : !strcmp(sub, "pod.namespace") ? &a->pod_namespace
							       : &a->service_account,
			       v, err);
	}
	if (!strcmp(sub, "pod.uid")) {
		if (strlen(v) > 64)
			return sigil_err_set(err, SIGIL_E_LIMIT, "%s: too long", key);
		return dup_str(&a->pod_uid, v, err);
	}
	if (!strcmp(sub, "ephemeral")) {
		a->ephemeral = !strcmp(v, "true");
		return 0;
	}
	/* Other kubelet keys (serviceAccount.tokens, pvc/...) are not ours. */
	return 0;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int csi_attrs_parse(const csi_kv *kv, size_t n, csi_attrs *ret, sigil_err *err)
{
	csi_attrs a;
	const char *seen[A__COUNT] = {0};
	bool buffer_given = false;
	int r = 0;

	memset(&a, 0, sizeof(a));
	a.lifetime_secs = 24 * 3600;
	a.restart_buffer_secs = 6 * 3600;
	a.jitter_factor = 0.2;
	a.renewal = CSI_RENEWAL_RESTART;
	if (n > CSI_MAX_ATTRS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "too many volume attributes (%zu, limit %d)",
				     n, CSI_MAX_ATTRS);
	for (size_t i = 0; i < n && r == 0; i++) {
		const char *key = kv[i].key, *v = kv[i].value, *sub;
		bool stackable;
		attr_id id;

		if (!key || !v) {
			r = sigil_err_set(err, SIGIL_E_INVALID, "volume attribute without key or value");
			break;
		}
		if (strlen(key) > CSI_MAX_ATTR_KEY_LEN) {
			r = sigil_err_set(err, SIGIL_E_LIMIT, "volume attribute key '%.40s...' is too long",
					  key);
			break;
		}
		if (has_prefix(key, CSI_ATTR_PREFIX_K8S)) {
			if (strlen(v) > CSI_MAX_ATTR_LEN || !printable(v))
				r = sigil_err_set(err, SIGIL_E_INVALID, "%s: value is too long or not printable", key);
			else
				r = apply_k8s(&a, key + strlen(CSI_ATTR_PREFIX_K8S), key, v, err);
			continue;
		}
		if (has_prefix(key, CSI_ATTR_PREFIX)) {
			sub = key + strlen(CSI_ATTR_PREFIX);
			stackable = false;
		} else if (has_prefix(key, CSI_ATTR_PREFIX_STACKABLE)) {
			sub = key + strlen(CSI_ATTR_PREFIX_STACKABLE);
			stackable = true;
		} else {
			continue; /* not ours */
		}
		for (id = 0; id < A__COUNT; id++)
			if (!strcmp(sub, attr_table[id].name))
				break;
		if (id == A__COUNT || (stackable && attr_table[id].sigil_only)) {
			r = sigil_err_set(err, SIGIL_E_INVALID, "unknown volume attribute '%s'", key);
			break;
		}
		if (strlen(v) > CSI_MAX_ATTR_LEN) {
			r = sigil_err_set(err, SIGIL_E_LIMIT, "%s: value longer than %d bytes", key,
					  CSI_MAX_ATTR_LEN);
			break;
		}
		if (!printable(v)) {
			r = sigil_err_set(err, SIGIL_E_INVALID, "%s: value contains control characters",
					  key);
			break;
		}
		if (seen[id]) {
			if (strcmp(seen[id], v)) {
				r = sigil_err_set(err, SIGIL_E_INVALID,
						  "%s is given twice with different values (under "
						  "both prefixes?)", key);
				break;
			}
			continue;
		}
		seen[id] = v;
		if (id == A_RESTART_BUFFER)
			buffer_given = true;
		if (stackable)
			a.stackable_keys = true;
		r = apply(&a, id, key, v, err);
	}
	if (r == 0 && !a.class_name)
		r = sigil_err_set(err, SIGIL_E_INVALID,
				  "volume attribute '" CSI_ATTR_PREFIX "class' is required");
	/* A restart buffer as long as the lifetime would evict the pod as soon
	 * as it starts.  An explicit one is the user's mistake; the default
	 * (6h) shrinks to a quarter of a short lifetime. */
	if (r == 0 && a.restart_buffer_secs >= a.lifetime_secs) {
		if (buffer_given)
			r = sigil_err_set(err, SIGIL_E_INVALID,
					  "backend.autotls.cert.restart-buffer (%llds) must be shorter "
					  "than the certificate lifetime (%llds)",
					  (long long)a.restart_buffer_secs, (long long)a.lifetime_secs);
		else
			a.restart_buffer_secs = a.lifetime_secs / 4;
	}
	if (r < 0) {
		csi_attrs_free(&a);
		return r;
	}
	*ret = a;
	return 0;
}

void csi_attrs_free(csi_attrs *a)
{
	if (!a)
		return;
	free(a->class_name);
	for (size_t i = 0; i < a->n_scopes; i++)
		free(a->scopes[i].name);
	for (size_t i = 0; i < a->n_service_names; i++)
		free(a->service_names[i]);
	sigil_secret_free(a->password);
	free(a->keystore_name);
	free(a->truststore_name);
	free(a->pem_cert_name);
	free(a->pem_key_name);
	free(a->pem_ca_name);
	free(a->pod_name);
	free(a->pod_namespace);
	free(a->pod_uid);
	free(a->service_account);
	memset(a, 0, sizeof(*a));
}

const char *csi_format_name(csi_format f)
{
	switch (f) {
	case CSI_FORMAT_DEFAULT: return "default";
	case CSI_FORMAT_TLS_PEM: return "tls-pem";
	case CSI_FORMAT_TLS_PKCS12: return "tls-pkcs12";
	case CSI_FORMAT_TLS_JKS: return "tls-jks";
	case CSI_FORMAT_KERBEROS: return "kerberos";
	default: return "unknown";
	}
}

bool csi_format_to_ks(csi_format f, ks_format *ret)
{
	switch (f) {
	case CSI_FORMAT_DEFAULT:
	case CSI_FORMAT_TLS_PEM: *ret = KS_FORMAT_PEM; return true;
	case CSI_FORMAT_TLS_PKCS12: *ret = KS_FORMAT_PKCS12; return true;
	case CSI_FORMAT_TLS_JKS: *ret = KS_FORMAT_JKS; return true;
	default: return false;
	}
}

void csi_attrs_ks_options(const csi_attrs *a, ks_options *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->password = a->password;
	ret->keystore_name = a->keystore_name;
	ret->truststore_name = a->truststore_name;
	ret->pem_cert_name = a->pem_cert_name;
	ret->pem_key_name = a->pem_key_name;
	ret->pem_ca_name = a->pem_ca_name;
}

int64_t csi_attrs_restart_buffer(const csi_attrs *a, int64_t issued_at, int64_t not_after)
{
	int64_t life = not_after - issued_at;

	if (life <= 0 || a->restart_buffer_secs < life)
		return a->restart_buffer_secs;
	return life / 4;
}
