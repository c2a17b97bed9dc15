#include "ca/scopes.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/names.h"

const char *ca_scope_kind_name(ca_scope_kind k)
{
	switch (k) {
	case CA_SCOPE_NODE: return "node";
	case CA_SCOPE_POD: return "pod";
	case CA_SCOPE_SERVICE: return "service";
	case CA_SCOPE_LISTENER_VOLUME: return "listener-volume";
	default: return "unknown";
	}
}

void ca_names_free(ca_names *n)
{
	if (!n)
		return;
	free(n->common_name);
	for (size_t i = 0; i < n->n_dns; i++)
		free(n->dns[i]);
	for (size_t i = 0; i < n->n_ips; i++)
		free(n->ips[i]);
	free(n->dns);
	free(n->ips);
	memset(n, 0, sizeof(*n));
}

static int push(char ***arr, size_t *n, const char *v, sigil_err *err)
{
	char **na;

	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*arr)[i], v))
			return 0;
	if (*n >= CA_MAX_SANS)
		return sigil_err_set(err, SIGIL_E_LIMIT, "more than %d names", CA_MAX_SANS);
	na = realloc(*arr, (*n + 1) * sizeof(char *));
	if (!na)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	*arr = na;
	na[*n] = strdup(v);
	if (!na[*n])
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	(*n)++;
	return 0;
}

static bool is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int push_addr(ca_names *out, const char *v, sigil_err *err)
{
	return is_ip(v) ? push(&out->ips, &out->n_ips, v, err) : push(&out->dns, &out->n_dns, v, err);
}

static int push_fmt(ca_names *out, sigil_err *err, const char *fmt, ...) SIGIL_PRINTF(3, 4);
static int push_fmt(ca_names *out, sigil_err *err, const char *fmt, ...)
{
	char buf[CA_MAX_DNS_NAME_LEN + 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n > CA_MAX_DNS_NAME_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "name '%.64s...' is longer than %d bytes",
				     buf, CA_MAX_DNS_NAME_LEN);
	return push(&out->dns, &out->n_dns, buf, err);
}

int ca_scopes_to_names(const ca_identity *id, const ca_scope *scopes, size_t n_scopes,
		       ca_names *ret, sigil_err *err)
{
	ca_names out = {0};
	const char *domain = id->cluster_domain ? id->cluster_domain : CA_DEFAULT_CLUSTER_DOMAIN;
	int r = 0;

	for (size_t i = 0; i < n_scopes && r == 0; i++) {
		const ca_scope *s = &scopes[i];

		switch (s->kind) {
		case CA_SCOPE_NODE:
			if (!id->node_name) {
				r = sigil_err_set(err, SIGIL_E_PRECOND, "scope node: the node name is unknown");
				break;
			}
			r = push_addr(&out, id->node_name, err);
			for (size_t j = 0; r == 0 && j < id->n_node_ips; j++)
				r = push(&out.ips, &out.n_ips, id->node_ips[j], err);
			break;
		case CA_SCOPE_POD:
			if (!id->pod_namespace || !id->pod_name) {
				r = sigil_err_set(err, SIGIL_E_PRECOND,
						  "scope pod: the pod's name and namespace are unknown "
						  "(is podInfoOnMount set on the CSIDriver?)");
				break;
			}
			if (id->pod_subdomain) {
				r = push_fmt(&out, err, "%s.%s.svc.%s", id->pod_subdomain, id->pod_namespace, domain);
				/* helper A (issue 6): Kubernetes DNS names the pod
				 * by spec.hostname when set, else by its name. */
				if (r == 0)
					r = push_fmt(&out, err, "%s.%s.%s.svc.%s",
						     id->pod_hostname ? id->pod_hostname : id->pod_name,
						     id->pod_subdomain, id->pod_namespace, domain);
			}
			for (size_t j = 0; r == 0 && j < id->n_pod_ips; j++)
				r = push(&out.ips, &out.n_ips, id->pod_ips[j], err);
			break;
		case CA_SCOPE_SERVICE:
			if (!id->pod_namespace) {
				r = sigil_err_set(err, SIGIL_E_PRECOND,
						  "scope service=%s: the pod's namespace is unknown", s->name);
				break;
			}
			r = push_fmt(&out, err, "%s.%s.svc.%s", s->name, id->pod_namespace, domain);
			break;
		case CA_SCOPE_LISTENER_VOLUME: {
			const ca_listener *l = NULL;
			for (size_t j = 0; j < id->n_listeners; j++)
				if (!strcmp(id->listeners[j].volume_name, s->name))
					l = &id->listeners[j];
			if (!l) {
				r = sigil_err_set(err, SIGIL_E_PRECOND,
						  "scope listener-volume=%s: no listener is known for "
						  "that volume", s->name);
				break;
			}
			for (size_t j = 0; r == 0 && j < l->n_addresses; j++)
				r = push_addr(&out, l->addresses[j], err);
			break;
		}
		default:
			r = sigil_err_set(err, SIGIL_E_INVALID, "unknown scope kind %d", (int)s->kind);
			break;
		}
	}
	if (r == 0) {
		const char *cn = id->pod_name ? id->pod_name : id->node_name;
		if (cn) {
			out.common_name = strndup(cn, CA_MAX_CN_LEN);
			if (!out.common_name)
				r = sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
		}
	}
	if (r < 0) {
		ca_names_free(&out);
		return r;
	}
	*ret = out;
	return 0;
}
