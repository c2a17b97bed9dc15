/* Kerberos principal names for volumes: "{service}/{host}@{REALM}".
 *
 * kadmind accepts almost any string as a principal name, so every component
 * is checked here before anything is sent to it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* The first component: a service name such as HTTP or kafka. */
#define KERBEROS_MAX_SERVICE_LEN 64
/* The second component: an RFC 1123 host name or an IP address. */
#define KERBEROS_MAX_HOST_LEN  253
#define KERBEROS_MAX_LABEL_LEN 63
#define KERBEROS_MAX_REALM_LEN 255
/* service + '/' + host + '@' + realm */
#define KERBEROS_MAX_PRINCIPAL_LEN                                                                 \
	(KERBEROS_MAX_SERVICE_LEN + 1 + KERBEROS_MAX_HOST_LEN + 1 + KERBEROS_MAX_REALM_LEN)
/* Looser names (the admin principal from configuration): any number of
 * components up to this many bytes in all. */
#define KERBEROS_MAX_NAME_LEN        512
#define KERBEROS_MAX_NAME_COMPONENTS 4

typedef struct kerberos_principal {
	char service[KERBEROS_MAX_SERVICE_LEN + 1];
	char host[KERBEROS_MAX_HOST_LEN + 1];
	char realm[KERBEROS_MAX_REALM_LEN + 1];
} kerberos_principal;

/* [A-Za-z0-9._-]{1,64}, not "." or "..", and none of the KDC's own service
 * names (krbtgt, kadmin, kiprop, K, WELLKNOWN, changepw; any case). */
int kerberos_principal_check_service(const char *service, sigil_err *err) SIGIL_WUR;
/* A lower-case RFC 1123 host name (labels of [a-z0-9-], no leading or
 * trailing '-', 1..63 bytes each, at most 253 in all, no trailing dot), or
 * an IPv4 dotted quad, or lower-case IPv6 text. */
int kerberos_principal_check_host(const char *host, sigil_err *err) SIGIL_WUR;
/* [A-Z0-9.-]{1,255} with no empty dot-separated label. */
int kerberos_principal_check_realm(const char *realm, sigil_err *err) SIGIL_WUR;

/* Checks the three parts and writes "{service}/{host}@{realm}" into buf
 * (len >= KERBEROS_MAX_PRINCIPAL_LEN + 1 is always enough). */
int kerberos_principal_build(const char *service, const char *host, const char *realm, char *buf,
                             size_t len, sigil_err *err) SIGIL_WUR;
/* Parses and checks "{service}/{host}@{REALM}".  When realm is not NULL the
 * name's realm must be exactly that one. */
int kerberos_principal_parse(const char *name, const char *realm, kerberos_principal *ret,
                             sigil_err *err) SIGIL_WUR;
/* A configured principal such as the admin principal: 1..4 '/'-separated
 * components of [A-Za-z0-9._-] (a host component may hold ':' for IPv6), an
 * optional "@REALM" checked like kerberos_principal_check_realm, at most
 * KERBEROS_MAX_NAME_LEN bytes.  No escapes, spaces or control bytes. */
int kerberos_principal_check_name(const char *name, sigil_err *err) SIGIL_WUR;

/* A copy of untrusted text fit for an error message: bytes outside
 * printable ASCII become '?', long text is cut with "..." (len >= 4). */
const char *kerberos_quote(const char *text, char *buf, size_t len);
