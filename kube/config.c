/* Kubernetes client configuration: in-cluster service account and
 * kubeconfig files (see config.h).
 *
 * A kubeconfig is untrusted-ish input (users hand them around), so it is
 * parsed like every other YAML in sigil: libyaml events into a bounded
 * tree (no anchors, aliases or tags; depth, node and scalar limits applied
 * while the events arrive), then read field by field.  Fields we do not
 * know are ignored as kubectl ignores them; fields that would change how
 * we authenticate and that we do not implement are refused, because
 * ignoring them would silently talk to the cluster as someone else. */
#define _GNU_SOURCE /* memmem */
#include "kube/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "util/fs.h"
#include "util/parse.h"

#define KC_NONE UINT32_MAX
/* How much of a value or name a message quotes. */
#define KC_MAX_SHOW 64
/* Context, cluster and user names. */
#define KC_MAX_NAME 253
/* Entries in clusters/users/contexts. */
#define KC_MAX_ENTRIES 1024

typedef enum kc_kind {
	KC_SCALAR,
	KC_SEQ,
	KC_MAP,
} kc_kind;

typedef struct kc_node {
	kc_kind kind;
	bool plain;
	uint32_t line;
	uint32_t first; /* first child; a mapping's children alternate key, value */
	uint32_t last;
	uint32_t next; /* next sibling */
	char *value;   /* scalars */
	size_t len;
} kc_node;

typedef struct kc_tree {
	kc_node *nodes;
	size_t n;
	size_t cap;
} kc_tree;

static void kc_tree_free(kc_tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		/* Scalars may be tokens or key data. */
		if (t->nodes[i].value)
			sigil_freezero(t->nodes[i].value, t->nodes[i].len + 1);
	}
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}

static int kc_tree_add(kc_tree *t, kc_kind kind, uint32_t line, uint32_t parent, uint32_t *ret)
{
	kc_node *n;

	if (t->n >= KUBE_CONFIG_MAX_NODES)
		return SIGIL_E_LIMIT;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		kc_node *p = realloc(t->nodes, cap * sizeof(*p));

		if (!p)
			return SIGIL_E_NOMEM;
		t->nodes = p;
		t->cap = cap;
	}
	n = &t->nodes[t->n];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->line = line;
	n->first = n->last = n->next = KC_NONE;
	if (parent != KC_NONE) {
		kc_node *pn = &t->nodes[parent];

		if (pn->last == KC_NONE)
			pn->first = (uint32_t)t->n;
		else
			t->nodes[pn->last].next = (uint32_t)t->n;
		pn->last = (uint32_t)t->n;
	}
	*ret = (uint32_t)t->n++;
	return 0;
}

/* ---- the YAML stream ------------------------------------------------------ */

typedef struct kc_parse {
	yaml_parser_t yp;
	bool yp_ready;
	kc_tree tree;
	uint32_t stack[KUBE_CONFIG_MAX_DEPTH];
	size_t depth;
	size_t docs;
	bool stream_end;
	const char *text;
	size_t len;
	sigil_err *err;
} kc_parse;

static int kc_yaml_error(const kc_parse *p)
{
	const yaml_parser_t *y = &p->yp;
	const char *problem = y->problem ? y->problem : "unknown error";
	const char *hint = "";

	switch (y->error) {
	case YAML_MEMORY_ERROR:
		return sigil_err_set(p->err, SIGIL_E_NOMEM, "out of memory parsing kubeconfig");
	case YAML_READER_ERROR:
		return sigil_err_set(p->err, SIGIL_E_INVALID,
		                     "kubeconfig: invalid YAML text at byte %zu: %s",
		                     y->problem_offset, problem);
	case YAML_SCANNER_ERROR:
	case YAML_PARSER_ERROR:
		if (y->problem_mark.index < p->len && p->text[y->problem_mark.index] == '\t')
			hint = " (tabs cannot indent YAML; use spaces)";
		return sigil_err_set(p->err, SIGIL_E_INVALID,
		                     "kubeconfig line %zu, column %zu: YAML syntax error: %s%s",
		                     y->problem_mark.line + 1, y->problem_mark.column + 1, problem,
		                     hint);
	default:
		return sigil_err_set(p->err, SIGIL_E_INVALID, "kubeconfig: YAML error: %s",
		                     problem);
	}
}

static int kc_node_event(kc_parse *p, const yaml_event_t *ev, kc_kind kind)
{
	uint32_t line = (uint32_t)(ev->start_mark.line + 1);
	uint32_t parent = p->depth ? p->stack[p->depth - 1] : KC_NONE;
	const yaml_char_t *anchor = NULL, *tag = NULL;
	uint32_t idx;
	int r;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	default:
		return sigil_err_set(p->err, SIGIL_E_INTERNAL, "unexpected YAML event %d",
		                     (int)ev->type);
	}
	/* Aliases let a few bytes expand without bound (billion laughs);
	 * kubeconfigs written by kubectl and cloud CLIs use neither them nor
	 * tags. */
	if (anchor)
		return sigil_err_set(p->err, SIGIL_E_INVALID,
		                     "kubeconfig line %u: YAML anchors and aliases are not allowed",
		                     line);
	if (tag)
		return sigil_err_set(p->err, SIGIL_E_INVALID,
		                     "kubeconfig line %u: YAML tags are not allowed", line);
	if (p->docs > 1)
		return sigil_err_set(p->err, SIGIL_E_INVALID,
		                     "kubeconfig line %u: more than one YAML document", line);
	if (kind != KC_SCALAR && p->depth >= KUBE_CONFIG_MAX_DEPTH)
		return sigil_err_set(p->err, SIGIL_E_LIMIT,
		                     "kubeconfig line %u: nested more than %d levels deep", line,
		                     KUBE_CONFIG_MAX_DEPTH);
	if (kind == KC_SCALAR && ev->data.scalar.length > KUBE_CONFIG_MAX_SCALAR)
		return sigil_err_set(p->err, SIGIL_E_LIMIT,
		                     "kubeconfig line %u: a value is longer than %d bytes", line,
		                     KUBE_CONFIG_MAX_SCALAR);
	r = kc_tree_add(&p->tree, kind, line, parent, &idx);
	if (r == SIGIL_E_LIMIT)
		return sigil_err_set(p->err, r, "kubeconfig line %u: more than %d YAML nodes", line,
		                     KUBE_CONFIG_MAX_NODES);
	if (r < 0)
		return sigil_err_set(p->err, r, "out of memory parsing kubeconfig");
	if (kind == KC_SCALAR) {
		kc_node *n = &p->tree.nodes[idx];
		const char *v = (const char *)ev->data.scalar.value;
		size_t len = ev->data.scalar.length;

		/* A "\0" escape would cut a C string short. */
		if (memchr(v, '\0', len))
			return sigil_err_set(p->err, SIGIL_E_INVALID,
			                     "kubeconfig line %u: NUL characters are not allowed",
			                     line);
		n->value = sigil_strndup(v, len);
		if (!n->value)
			return sigil_err_set(p->err, SIGIL_E_NOMEM,
			                     "out of memory parsing kubeconfig");
		n->len = len;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	} else {
		p->stack[p->depth++] = idx;
	}
	return 0;
}

static int kc_event(kc_parse *p, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		p->docs++;
		p->depth = 0;
		return 0;
	case YAML_ALIAS_EVENT:
		return sigil_err_set(
		    p->err, SIGIL_E_INVALID,
		    "kubeconfig line %zu: YAML anchors and aliases are not allowed",
		    ev->start_mark.line + 1);
	case YAML_SCALAR_EVENT: return kc_node_event(p, ev, KC_SCALAR);
	case YAML_SEQUENCE_START_EVENT: return kc_node_event(p, ev, KC_SEQ);
	case YAML_MAPPING_START_EVENT: return kc_node_event(p, ev, KC_MAP);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (p->depth == 0)
			return sigil_err_set(p->err, SIGIL_E_INTERNAL, "unbalanced YAML events");
		p->depth--;
		return 0;
	case YAML_STREAM_END_EVENT: p->stream_end = true; return 0;
	case YAML_DOCUMENT_END_EVENT:
	case YAML_STREAM_START_EVENT:
	case YAML_NO_EVENT:
	default: return 0;
	}
}

static int kc_parse_yaml(kc_parse *p, const char *text, size_t len)
{
	int r = 0;

	p->text = text;
	p->len = len;
	if (!yaml_parser_initialize(&p->yp))
		return sigil_err_set(p->err, SIGIL_E_NOMEM, "out of memory");
	p->yp_ready = true;
	/* libyaml asserts on a NULL input, even an empty one. */
	yaml_parser_set_input_string(&p->yp, (const unsigned char *)(len ? text : ""), len);
	yaml_parser_set_encoding(&p->yp, YAML_UTF8_ENCODING);
	while (r == 0 && !p->stream_end) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&p->yp, &ev))
			return kc_yaml_error(p);
		r = kc_event(p, &ev);
		yaml_event_delete(&ev);
	}
	return r;
}

static void kc_parse_done(kc_parse *p)
{
	if (p->yp_ready)
		yaml_parser_delete(&p->yp);
	kc_tree_free(&p->tree);
}

/* ---- reading the tree ----------------------------------------------------- */

typedef struct kc_ctx {
	const kc_tree *t;
	sigil_err *err;
} kc_ctx;

static const kc_node *kc_at(const kc_ctx *c, uint32_t i)
{
	return i == KC_NONE ? NULL : &c->t->nodes[i];
}

/* Kubernetes semantics: a field set to null is unset. */
static bool kc_is_null(const kc_node *n)
{
	return !n || (n->kind == KC_SCALAR && n->plain &&
	              (n->len == 0 || !strcmp(n->value, "null") || !strcmp(n->value, "~") ||
	               !strcmp(n->value, "Null") || !strcmp(n->value, "NULL")));
}

/* Quotes at most KC_MAX_SHOW printable characters of s. */
static const char *kc_show(const char *s, char *buf, size_t cap)
{
	return sigil_err_show(s, buf, cap < KC_MAX_SHOW + 4 ? cap : KC_MAX_SHOW + 4);
}

/* Finds key in a mapping; duplicate keys are an error (YAML 1.2 forbids
 * them, and which one wins differs between parsers). */
static int kc_field(const kc_ctx *c, const kc_node *map, const char *where, const char *key,
                    const kc_node **ret)
{
	const kc_node *found = NULL;

	*ret = NULL;
	if (!map || map->kind != KC_MAP)
		return 0;
	for (const kc_node *k = kc_at(c, map->first); k;) {
		const kc_node *v = kc_at(c, k->next);

		if (!v)
			break; /* libyaml always pairs them; be safe anyway */
		if (k->kind == KC_SCALAR && !strcmp(k->value, key)) {
			if (found)
				return sigil_err_set(c->err, SIGIL_E_INVALID,
				                     "kubeconfig line %u: %s%s%s is given twice",
				                     k->line, where, where[0] ? "." : "", key);
			found = v;
		}
		k = kc_at(c, v->next);
	}
	*ret = kc_is_null(found) ? NULL : found;
	return 0;
}

static int kc_want_map(const kc_ctx *c, const kc_node *n, const char *what)
{
	if (n && n->kind != KC_MAP)
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig line %u: %s must be a mapping", n->line, what);
	return 0;
}

/* A string field: *ret points into the tree, NULL when unset. */
static int kc_str(const kc_ctx *c, const kc_node *map, const char *where, const char *key,
                  const char **ret)
{
	const kc_node *n;
	int r = kc_field(c, map, where, key, &n);

	*ret = NULL;
	if (r < 0)
		return r;
	if (!n)
		return 0;
	if (n->kind != KC_SCALAR)
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig line %u: %s.%s must be a string", n->line, where,
		                     key);
	*ret = n->value;
	return 0;
}

static int kc_bool(const kc_ctx *c, const kc_node *map, const char *where, const char *key,
                   bool *ret)
{
	const kc_node *n;
	int r = kc_field(c, map, where, key, &n);

	if (r < 0)
		return r;
	*ret = false;
	if (!n)
		return 0;
	if (n->kind == KC_SCALAR && n->plain &&
	    (!strcmp(n->value, "true") || !strcmp(n->value, "True")))
		*ret = true;
	else if (!(n->kind == KC_SCALAR && n->plain &&
	           (!strcmp(n->value, "false") || !strcmp(n->value, "False"))))
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig line %u: %s.%s must be true or false", n->line,
		                     where, key);
	return 0;
}

/* Finds the entry called name in a clusters/users/contexts list and hands
 * out its body (the "cluster"/"user"/"context" mapping). */
static int kc_find_entry(const kc_ctx *c, const kc_node *root, const char *list, const char *body,
                         const char *name, const kc_node **ret)
{
	const kc_node *seq, *found = NULL;
	char q[KC_MAX_SHOW + 4];
	size_t count = 0;
	int r = kc_field(c, root, "", list, &seq);

	*ret = NULL;
	if (r < 0)
		return r;
	if (seq && seq->kind != KC_SEQ)
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig line %u: %s must be a list", seq->line, list);
	for (const kc_node *e = seq ? kc_at(c, seq->first) : NULL; e; e = kc_at(c, e->next)) {
		const char *n;

		if (++count > KC_MAX_ENTRIES)
			return sigil_err_set(c->err, SIGIL_E_LIMIT, "kubeconfig: more than %d %s",
			                     KC_MAX_ENTRIES, list);
		if (e->kind != KC_MAP)
			return sigil_err_set(c->err, SIGIL_E_INVALID,
			                     "kubeconfig line %u: each of %s must be a mapping",
			                     e->line, list);
		r = kc_str(c, e, list, "name", &n);
		if (r < 0)
			return r;
		if (!n || strcmp(n, name) != 0)
			continue;
		if (found)
			return sigil_err_set(c->err, SIGIL_E_INVALID,
			                     "kubeconfig line %u: %s has two entries named \"%s\"",
			                     e->line, list, kc_show(name, q, sizeof(q)));
		r = kc_field(c, e, list, body, &found);
		if (r < 0)
			return r;
		if (!found)
			return sigil_err_set(c->err, SIGIL_E_INVALID,
			                     "kubeconfig line %u: %s entry \"%s\" has no %s",
			                     e->line, list, kc_show(name, q, sizeof(q)), body);
		r = kc_want_map(c, found, body);
		if (r < 0)
			return r;
	}
	if (!found)
		return sigil_err_set(c->err, SIGIL_E_NOTFOUND,
		                     "kubeconfig: no %s entry named \"%s\"", list,
		                     kc_show(name, q, sizeof(q)));
	*ret = found;
	return 0;
}

static int kc_b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Standard base64 with padding (Go's base64.StdEncoding, which also skips
 * line breaks), strictly: anything else is an error. */
static int kc_b64_decode(const char *s, size_t len, bool secret, uint8_t **ret, size_t *ret_len)
{
	uint8_t *out = malloc(len / 4 * 3 + 4);
	uint32_t acc = 0;
	size_t o = 0, nchars = 0, pad = 0;

	if (!out)
		return SIGIL_E_NOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		int v;

		if (ch == '\r' || ch == '\n')
			continue;
		if (ch == '=') {
			pad++;
			nchars++;
			continue;
		}
		v = kc_b64_value(ch);
		if (v < 0 || pad)
			goto bad;
		acc = (acc << 6) | (uint32_t)v;
		nchars++;
		if (nchars % 4 == 0) {
			out[o++] = (uint8_t)(acc >> 16);
			out[o++] = (uint8_t)(acc >> 8);
			out[o++] = (uint8_t)acc;
			acc = 0;
		}
	}
	if (nchars == 0 || nchars % 4 != 0 || pad > 2)
		goto bad;
	if (pad == 1) {
		out[o++] = (uint8_t)(acc >> 10);
		out[o++] = (uint8_t)(acc >> 2);
	} else if (pad == 2) {
		out[o++] = (uint8_t)(acc >> 4);
	}
	out[o] = '\0';
	*ret = out;
	*ret_len = o;
	return 0;
bad:
	if (secret)
		sigil_freezero(out, len / 4 * 3 + 4);
	else
		free(out);
	return SIGIL_E_INVALID;
}

/* name-data: base64 of PEM. */
static int kc_data(const kc_ctx *c, const kc_node *map, const char *where, const char *key,
                   bool secret, uint8_t **ret, size_t *ret_len)
{
	const char *v;
	uint8_t *out;
	size_t n;
	int r = kc_str(c, map, where, key, &v);

	if (r < 0 || !v)
		return r;
	r = kc_b64_decode(v, strlen(v), secret, &out, &n);
	if (r == SIGIL_E_NOMEM)
		return sigil_err_set(c->err, r, "out of memory");
	if (r < 0)
		return sigil_err_set(c->err, r, "kubeconfig: %s.%s is not valid base64", where,
		                     key);
	if (n < 11 || !memmem(out, n, "-----BEGIN ", 11)) {
		if (secret)
			sigil_freezero(out, n + 1);
		else
			free(out);
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig: %s.%s does not hold PEM data (-----BEGIN ...)",
		                     where, key);
	}
	*ret = out;
	*ret_len = n;
	return 0;
}

/* A file name from the kubeconfig, made absolute against base_dir. */
static int kc_path(const kc_ctx *c, const kc_node *map, const char *where, const char *key,
                   const char *base_dir, char **ret)
{
	const char *v;
	int r = kc_str(c, map, where, key, &v);

	if (r < 0 || !v)
		return r;
	if (!v[0])
		return 0;
	if (strlen(v) > 4096)
		return sigil_err_set(c->err, SIGIL_E_LIMIT,
		                     "kubeconfig: %s.%s is longer than 4096 bytes", where, key);
	*ret = (v[0] == '/' || !base_dir) ? strdup(v) : sigil_path_join(base_dir, v);
	if (!*ret)
		return sigil_err_set(c->err, SIGIL_E_NOMEM, "out of memory");
	return 0;
}

static int kc_refuse(const kc_ctx *c, const kc_node *map, const char *where, const char *key,
                     const char *why)
{
	const kc_node *n;
	int r = kc_field(c, map, where, key, &n);

	if (r < 0)
		return r;
	if (n)
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig line %u: %s.%s is not supported%s%s", n->line,
		                     where, key, why[0] ? ": " : "", why);
	return 0;
}

/* Printable ASCII without spaces: it ends up in a URL or an HTTP header. */
static bool kc_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static int kc_server(const kc_ctx *c, const char *v, char **ret)
{
	char q[KC_MAX_SHOW + 4];
	size_t n = strlen(v), host;

	if (n >= KUBE_CONFIG_MAX_URL)
		return sigil_err_set(c->err, SIGIL_E_LIMIT,
		                     "kubeconfig: server URL exceeds %d bytes",
		                     KUBE_CONFIG_MAX_URL - 1);
	if (!kc_printable(v) || (strncmp(v, "https://", 8) && strncmp(v, "http://", 7)))
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig: server \"%s\" is not an https:// URL",
		                     kc_show(v, q, sizeof(q)));
	host = (size_t)(strstr(v, "://") - v) + 3;
	if (v[host] == '\0' || v[host] == '/')
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig: server \"%s\" has no host",
		                     kc_show(v, q, sizeof(q)));
	/* A trailing '/' would double up with the API paths appended. */
	while (n > host && v[n - 1] == '/')
		n--;
	*ret = sigil_strndup(v, n);
	return *ret ? 0 : sigil_err_set(c->err, SIGIL_E_NOMEM, "out of memory");
}

static bool kc_dns_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > KUBE_CONFIG_MAX_NAMESPACE || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static int kc_set_namespace(kube_config *cfg, const char *ns, const char *origin, sigil_err *err)
{
	char q[KC_MAX_SHOW + 4];

	if (!kc_dns_label(ns))
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "%s: namespace \"%s\" is not a DNS label (lower case letters, "
		                     "digits, '-', at most %d)",
		                     origin, kc_show(ns, q, sizeof(q)), KUBE_CONFIG_MAX_NAMESPACE);
	free(cfg->namespace_);
	cfg->namespace_ = strdup(ns);
	return cfg->namespace_ ? 0 : sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
}

static int kc_cluster(const kc_ctx *c, const kc_node *cl, const char *base_dir, kube_config *cfg)
{
	const char *server;
	int r;

	if ((r = kc_refuse(c, cl, "cluster", "proxy-url", "")) < 0 ||
	    (r = kc_refuse(c, cl, "cluster", "tls-server-name", "")) < 0)
		return r;
	if ((r = kc_str(c, cl, "cluster", "server", &server)) < 0)
		return r;
	if (!server || !server[0])
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig: the cluster has no server");
	if ((r = kc_server(c, server, &cfg->server)) < 0)
		return r;
	if ((r = kc_path(c, cl, "cluster", "certificate-authority", base_dir, &cfg->ca_file)) < 0 ||
	    (r = kc_data(c, cl, "cluster", "certificate-authority-data", false, &cfg->ca_data,
	                 &cfg->ca_data_len)) < 0 ||
	    (r = kc_bool(c, cl, "cluster", "insecure-skip-tls-verify",
	                 &cfg->insecure_skip_tls_verify)) < 0)
		return r;
	/* client-go's validation refuses these combinations too. */
	if (cfg->ca_file && cfg->ca_data)
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig: the cluster has both certificate-authority and "
		                     "certificate-authority-data");
	if (cfg->insecure_skip_tls_verify && (cfg->ca_file || cfg->ca_data))
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig: the cluster has insecure-skip-tls-verify and a "
		                     "certificate authority");
	return 0;
}

static int kc_user(const kc_ctx *c, const kc_node *u, const char *base_dir, kube_config *cfg)
{
	static const struct {
		const char *key;
		const char *why;
	} refused[] = {
	    {"exec",
	     "credential plugins cannot be run; use a token, tokenFile or client certificate"},
	    {"auth-provider", "use a token, tokenFile or client certificate"},
	    {"username", "basic authentication was removed from Kubernetes"},
	    {"password", "basic authentication was removed from Kubernetes"},
	    {"as", "impersonation"},
	    {"as-uid", "impersonation"},
	    {"as-groups", "impersonation"},
	    {"as-user-extra", "impersonation"},
	};
	const char *token;
	int r;

	for (size_t i = 0; i < SIGIL_ARRAY_SIZE(refused); i++)
		if ((r = kc_refuse(c, u, "user", refused[i].key, refused[i].why)) < 0)
			return r;
	if ((r = kc_str(c, u, "user", "token", &token)) < 0 ||
	    (r = kc_path(c, u, "user", "tokenFile", base_dir, &cfg->token_file)) < 0 ||
	    (r = kc_path(c, u, "user", "client-certificate", base_dir, &cfg->client_cert_file)) <
	        0 ||
	    (r = kc_path(c, u, "user", "client-key", base_dir, &cfg->client_key_file)) < 0 ||
	    (r = kc_data(c, u, "user", "client-certificate-data", false, &cfg->client_cert_data,
	                 &cfg->client_cert_data_len)) < 0 ||
	    (r = kc_data(c, u, "user", "client-key-data", true, &cfg->client_key_data,
	                 &cfg->client_key_data_len)) < 0)
		return r;
	if (token && token[0]) {
		if (strlen(token) > KUBE_CONFIG_MAX_TOKEN)
			return sigil_err_set(c->err, SIGIL_E_LIMIT,
			                     "kubeconfig: user.token exceeds %d bytes",
			                     KUBE_CONFIG_MAX_TOKEN);
		/* Not quoted: it is a secret. */
		if (!kc_printable(token))
			return sigil_err_set(
			    c->err, SIGIL_E_INVALID,
			    "kubeconfig: user.token contains spaces or control characters");
		cfg->token = strdup(token);
		if (!cfg->token)
			return sigil_err_set(c->err, SIGIL_E_NOMEM, "out of memory");
	}
	if (cfg->client_cert_file && cfg->client_cert_data)
		return sigil_err_set(
		    c->err, SIGIL_E_INVALID,
		    "kubeconfig: the user has both client-certificate and client-certificate-data");
	if (cfg->client_key_file && cfg->client_key_data)
		return sigil_err_set(
		    c->err, SIGIL_E_INVALID,
		    "kubeconfig: the user has both client-key and client-key-data");
	if (!!(cfg->client_cert_file || cfg->client_cert_data) !=
	    !!(cfg->client_key_file || cfg->client_key_data))
		return sigil_err_set(
		    c->err, SIGIL_E_INVALID,
		    "kubeconfig: a client certificate needs its key and a key its certificate");
	return 0;
}

static int kc_build(const kc_ctx *c, const char *base_dir, const char *want_context,
                    kube_config *cfg)
{
	const kc_node *root = c->t->n ? &c->t->nodes[0] : NULL;
	const kc_node *ctx, *cl, *u = NULL;
	const char *cur, *kind, *cluster_name, *user_name, *ns;
	char q[KC_MAX_SHOW + 4];
	int r;

	if (kc_is_null(root))
		return sigil_err_set(c->err, SIGIL_E_INVALID, "kubeconfig is empty");
	if (root->kind != KC_MAP)
		return sigil_err_set(c->err, SIGIL_E_INVALID, "kubeconfig line %u: not a mapping",
		                     root->line);
	if ((r = kc_str(c, root, "", "kind", &kind)) < 0)
		return r;
	if (kind && strcmp(kind, "Config") != 0)
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig: kind is \"%s\", not Config",
		                     kc_show(kind, q, sizeof(q)));
	if ((r = kc_str(c, root, "", "current-context", &cur)) < 0)
		return r;
	if (want_context && want_context[0])
		cur = want_context;
	if (!cur || !cur[0])
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig has no current-context; name a context");
	if (strlen(cur) > KC_MAX_NAME)
		return sigil_err_set(c->err, SIGIL_E_LIMIT,
		                     "kubeconfig: context name exceeds %d bytes", KC_MAX_NAME);
	if ((r = kc_find_entry(c, root, "contexts", "context", cur, &ctx)) < 0)
		return r;
	cfg->context = strdup(cur);
	if (!cfg->context)
		return sigil_err_set(c->err, SIGIL_E_NOMEM, "out of memory");
	if ((r = kc_str(c, ctx, "context", "cluster", &cluster_name)) < 0 ||
	    (r = kc_str(c, ctx, "context", "user", &user_name)) < 0 ||
	    (r = kc_str(c, ctx, "context", "namespace", &ns)) < 0)
		return r;
	if (!cluster_name || !cluster_name[0])
		return sigil_err_set(c->err, SIGIL_E_INVALID,
		                     "kubeconfig: context \"%s\" names no cluster",
		                     kc_show(cur, q, sizeof(q)));
	if ((r = kc_find_entry(c, root, "clusters", "cluster", cluster_name, &cl)) < 0)
		return r;
	if (user_name && user_name[0] &&
	    (r = kc_find_entry(c, root, "users", "user", user_name, &u)) < 0)
		return r;
	if ((r = kc_cluster(c, cl, base_dir, cfg)) < 0)
		return r;
	if (u && (r = kc_user(c, u, base_dir, cfg)) < 0)
		return r;
	return kc_set_namespace(cfg, ns && ns[0] ? ns : "default", "kubeconfig", c->err);
}

/* ---- public ------------------------------------------------------------------ */

void kube_config_free(kube_config *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->ca_file);
	free(c->ca_data);
	sigil_secret_free(c->token);
	free(c->token_file);
	free(c->client_cert_file);
	free(c->client_key_file);
	free(c->client_cert_data);
	if (c->client_key_data)
		sigil_freezero(c->client_key_data, c->client_key_data_len + 1);
	free(c->namespace_);
	free(c->context);
	free(c);
}

int kube_config_parse_kubeconfig(const char *text, size_t len, const char *base_dir,
                                 const char *context, kube_config **ret, sigil_err *err)
{
	_cleanup_(kube_config_freep) kube_config *cfg = NULL;
	kc_parse p = {.err = err};
	int r;

	if (!text && len)
		return sigil_err_set(err, SIGIL_E_INVALID, "no kubeconfig text");
	if (len > KUBE_CONFIG_MAX_FILE)
		return sigil_err_set(err, SIGIL_E_LIMIT,
		                     "kubeconfig is %zu bytes long, the limit is %d", len,
		                     KUBE_CONFIG_MAX_FILE);
	cfg = sigil_calloc(1, sizeof(*cfg));
	if (!cfg)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = kc_parse_yaml(&p, text, len);
	if (r == 0) {
		kc_ctx c = {.t = &p.tree, .err = err};

		r = kc_build(&c, base_dir, context, cfg);
	}
	kc_parse_done(&p);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(cfg);
	return 0;
}

int kube_config_read_token(const char *path, char **ret, sigil_err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0, cap;
	int r = sigil_fs_read_file(path, KUBE_CONFIG_MAX_TOKEN, &buf, &len, err);

	if (r < 0)
		return sigil_err_prefix(err, "bearer token");
	cap = len + 1;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
	                   buf[len - 1] == '\t'))
		buf[--len] = '\0';
	if (len == 0) {
		sigil_freezero(buf, cap);
		return sigil_err_set(err, SIGIL_E_INVALID, "bearer token file %s is empty", path);
	}
	/* Not quoted: it is a secret. */
	if (!kc_printable((const char *)buf)) {
		sigil_freezero(buf, cap);
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "bearer token file %s holds spaces or control characters",
		                     path);
	}
	*ret = (char *)buf;
	return 0;
}

static int kc_check_readable(const char *what, const char *path, sigil_err *err)
{
	if (path && access(path, R_OK) < 0)
		return sigil_err_errno(err, errno, "%s %s", what, path);
	return 0;
}

static int kc_check_files(const kube_config *cfg, sigil_err *err)
{
	int r;

	if ((r = kc_check_readable("certificate authority", cfg->ca_file, err)) < 0 ||
	    (r = kc_check_readable("client certificate", cfg->client_cert_file, err)) < 0 ||
	    (r = kc_check_readable("client key", cfg->client_key_file, err)) < 0)
		return r;
	if (cfg->token_file) {
		char *tok = NULL;

		r = kube_config_read_token(cfg->token_file, &tok, err);
		sigil_secret_free(tok);
		if (r < 0)
			return r;
	}
	return 0;
}

int kube_config_load_kubeconfig(const char *path, const char *context, kube_config **ret,
                                sigil_err *err)
{
	_cleanup_(kube_config_freep) kube_config *cfg = NULL;
	_cleanup_free_ char *dir = NULL;
	uint8_t *text = NULL;
	size_t len = 0;
	char *slash;
	int r;

	r = sigil_fs_read_file(path, KUBE_CONFIG_MAX_FILE, &text, &len, err);
	if (r < 0)
		return sigil_err_prefix(err, "kubeconfig");
	dir = strdup(path);
	if (!dir) {
		sigil_freezero(text, len + 1);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		memcpy(dir, ".", 2); /* path has at least one byte, so dir has two */
	r = kube_config_parse_kubeconfig((const char *)text, len, dir, context, &cfg, err);
	/* It may hold tokens and keys. */
	sigil_freezero(text, len + 1);
	if (r < 0)
		return sigil_err_prefix(err, "%s", path);
	r = kc_check_files(cfg, err);
	if (r < 0)
		return sigil_err_prefix(err, "%s", path);
	*ret = TAKE_PTR(cfg);
	return 0;
}

/* KUBERNETES_SERVICE_HOST: an IP address or a DNS name. */
static bool kc_host_ok(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = h[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == ':'))
			return false;
	}
	return true;
}

int kube_config_load_in_cluster(const char *sa_dir, kube_config **ret, sigil_err *err)
{
	_cleanup_(kube_config_freep) kube_config *cfg = NULL;
	_cleanup_free_ char *ns_path = NULL;
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char q[KC_MAX_SHOW + 4];
	char url[KUBE_CONFIG_MAX_URL];
	int64_t portnum;
	uint8_t *ns = NULL;
	size_t ns_len = 0;
	int r;

	if (!sa_dir)
		sa_dir = KUBE_SA_DIR;
	if (!host || !host[0] || !port || !port[0])
		return sigil_err_set(
		    err, SIGIL_E_PRECOND,
		    "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and "
		    "KUBERNETES_SERVICE_PORT are not set (give a kubeconfig instead)");
	if (!kc_host_ok(host))
		return sigil_err_set(
		    err, SIGIL_E_INVALID,
		    "KUBERNETES_SERVICE_HOST \"%s\" is not a host name or IP address",
		    kc_show(host, q, sizeof(q)));
	if (sigil_parse_int64(port, 1, 65535, &portnum) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "KUBERNETES_SERVICE_PORT \"%s\" is not a port number",
		                     kc_show(port, q, sizeof(q)));
	cfg = sigil_calloc(1, sizeof(*cfg));
	if (!cfg)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	/* An IPv6 address goes in brackets (net.JoinHostPort in client-go). */
	snprintf(url, sizeof(url), strchr(host, ':') ? "https://[%s]:%lld" : "https://%s:%lld",
	         host, (long long)portnum);
	cfg->server = strdup(url);
	cfg->token_file = sigil_path_join(sa_dir, "token");
	cfg->ca_file = sigil_path_join(sa_dir, "ca.crt");
	cfg->context = strdup("in-cluster");
	ns_path = sigil_path_join(sa_dir, "namespace");
	if (!cfg->server || !cfg->token_file || !cfg->ca_file || !cfg->context || !ns_path)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	r = kc_check_files(cfg, err);
	if (r < 0)
		return sigil_err_prefix(err, "in-cluster configuration");
	r = sigil_fs_read_file(ns_path, KUBE_CONFIG_MAX_NAMESPACE + 2, &ns, &ns_len, err);
	if (r == SIGIL_E_NOTFOUND) {
		r = kc_set_namespace(cfg, "default", "in-cluster configuration", err);
	} else if (r == 0) {
		while (ns_len > 0 && (ns[ns_len - 1] == '\n' || ns[ns_len - 1] == '\r'))
			ns[--ns_len] = '\0';
		r = kc_set_namespace(cfg, (const char *)ns, ns_path, err);
		free(ns);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(cfg);
	return 0;
}

int kube_config_load_default(const char *path, kube_config **ret, sigil_err *err)
{
	_cleanup_free_ char *home_cfg = NULL;
	const char *env, *home;

	if (path && path[0])
		return kube_config_load_kubeconfig(path, NULL, ret, err);
	env = getenv("KUBERNETES_SERVICE_HOST");
	if (env && env[0])
		return kube_config_load_in_cluster(NULL, ret, err);
	env = getenv("KUBECONFIG");
	if (env && env[0]) {
		if (strchr(env, ':'))
			return sigil_err_set(
			    err, SIGIL_E_INVALID,
			    "KUBECONFIG names several files; sigil reads one (pass --kubeconfig)");
		return kube_config_load_kubeconfig(env, NULL, ret, err);
	}
	home = getenv("HOME");
	if (!home || !home[0])
		return sigil_err_set(err, SIGIL_E_PRECOND,
		                     "no Kubernetes configuration: not in a pod, and neither "
		                     "KUBECONFIG nor HOME is set");
	home_cfg = sigil_path_join(home, ".kube/config");
	if (!home_cfg)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	return kube_config_load_kubeconfig(home_cfg, NULL, ret, err);
}
