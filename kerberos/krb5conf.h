/* krb5.conf for a Kerberos volume (and for the kadm helper's own use).
 *
 * What a pod needs to use the keytab next to it: the realm, where its KDC
 * and admin server are, and which DNS domain belongs to the realm.  Reverse
 * DNS and host name canonicalisation are off, because Kubernetes service
 * names do not survive a PTR round trip; TCP is preferred, because UDP
 * replies with PACs do not fit a datagram and Service load balancing of UDP
 * is unreliable. */
#pragma once
#include <stddef.h>

#include "util/err.h"

/* Stackable hard-codes this; sigil makes it configurable. */
#define KERBEROS_DEFAULT_CLUSTER_DOMAIN "cluster.local"
/* "[" + IPv6 text + "]:" + 5 digits, or a host name + ":" + 5 digits. */
#define KERBEROS_MAX_SERVER_LEN    (253 + 7)
#define KERBEROS_KRB5CONF_MAX_SIZE 4096

typedef struct kerberos_krb5conf {
	const char *realm;          /* checked like kerberos_principal_check_realm */
	const char *kdc;            /* host[:port], IPv4[:port] or [IPv6][:port] */
	const char *admin_server;   /* same forms; NULL: no admin_server line */
	const char *cluster_domain; /* NULL: KERBEROS_DEFAULT_CLUSTER_DOMAIN */
} kerberos_krb5conf;

/* host[:port] as above.  Host names are case-insensitive here (DNS); the
 * port is 1..65535.  Bare IPv6 text must be bracketed. */
int kerberos_krb5conf_check_server(const char *server, sigil_err *err) SIGIL_WUR;
/* Renders the file; every value is checked first, so nothing a caller
 * passes can add a line or a section.  *ret is NUL-terminated, malloc'ed. */
int kerberos_krb5conf_render(const kerberos_krb5conf *c, char **ret, size_t *ret_len,
                             sigil_err *err) SIGIL_WUR;
