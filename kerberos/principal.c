#include "kerberos/principal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define QUOTE_LEN 80

const char *kerberos_quote(const char *text, char *buf, size_t len)
{
	return sigil_err_show(text, buf, len);
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static const char *const reserved_services[] = {"krbtgt", "kadmin",    "kiprop",
                                                "K",      "WELLKNOWN", "changepw"};

static bool is_service_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int kerberos_principal_check_service(const char *service, sigil_err *err)
{
	char q[QUOTE_LEN];
	size_t len;

	if (!service || !*service)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "a Kerberos service name must not be empty");
	len = strnlen(service, KERBEROS_MAX_SERVICE_LEN + 1);
	if (len > KERBEROS_MAX_SERVICE_LEN)
		return sigil_err_set(
		    err, SIGIL_E_INVALID, "Kerberos service name \"%s\" is longer than %d bytes",
		    kerberos_quote(service, q, sizeof(q)), KERBEROS_MAX_SERVICE_LEN);
	for (size_t i = 0; i < len; i++)
		if (!is_service_char(service[i]))
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "Kerberos service name \"%s\" may hold only letters, "
			                     "digits, '.', '_' and '-'",
			                     kerberos_quote(service, q, sizeof(q)));
	if (!strcmp(service, ".") || !strcmp(service, ".."))
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "Kerberos service name \"%s\" is reserved", service);
	/* The KDC's own principals: extracting their keys (the admin principal
	 * may hold 'e' on "*") would let a pod forge tickets or impersonate
	 * kadmind.  Compared without case, to refuse look-alikes too. */
	for (size_t i = 0; i < sizeof(reserved_services) / sizeof(reserved_services[0]); i++)
		if (!strcasecmp(service, reserved_services[i]))
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "Kerberos service name \"%s\" belongs to the KDC and "
			                     "is never provisioned",
			                     service);
	return 0;
}

/* RFC 1123 2.1 host name, lower case only: the instance of a service
 * principal is compared byte for byte by the KDC, and Kubernetes names are
 * lower case. */
static int check_dns(const char *host, size_t len, sigil_err *err)
{
	char q[QUOTE_LEN];
	size_t label = 0;

	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? host[i] : '.';

		if (c == '.') {
			if (label == 0)
				return sigil_err_set(err, SIGIL_E_INVALID,
				                     "host name \"%s\" has an empty label",
				                     kerberos_quote(host, q, sizeof(q)));
			if (host[i - 1] == '-')
				return sigil_err_set(
				    err, SIGIL_E_INVALID,
				    "host name \"%s\": a label must not end with '-'",
				    kerberos_quote(host, q, sizeof(q)));
			label = 0;
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "host name \"%s\" must be lower case",
			                     kerberos_quote(host, q, sizeof(q)));
		if (!is_lower_alnum(c) && c != '-')
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "host name \"%s\" may hold only a-z, 0-9, '-' and '.'",
			                     kerberos_quote(host, q, sizeof(q)));
		if (label == 0 && c == '-')
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "host name \"%s\": a label must not start with '-'",
			                     kerberos_quote(host, q, sizeof(q)));
		if (++label > KERBEROS_MAX_LABEL_LEN)
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "host name \"%s\" has a label longer than %d bytes",
			                     kerberos_quote(host, q, sizeof(q)),
			                     KERBEROS_MAX_LABEL_LEN);
	}
	return 0;
}

int kerberos_principal_check_host(const char *host, sigil_err *err)
{
	char q[QUOTE_LEN];
	unsigned char ip[16];
	size_t len;

	if (!host || !*host)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "the host part of a Kerberos principal must not be empty");
	len = strnlen(host, KERBEROS_MAX_HOST_LEN + 1);
	if (len > KERBEROS_MAX_HOST_LEN)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "host name \"%s\" is longer than %d bytes",
		                     kerberos_quote(host, q, sizeof(q)), KERBEROS_MAX_HOST_LEN);
	if (inet_pton(AF_INET, host, ip) == 1)
		return 0;
	if (strchr(host, ':')) {
		for (size_t i = 0; i < len; i++)
			if (host[i] >= 'A' && host[i] <= 'F')
				return sigil_err_set(err, SIGIL_E_INVALID,
				                     "IPv6 address \"%s\" must be lower case",
				                     kerberos_quote(host, q, sizeof(q)));
		if (inet_pton(AF_INET6, host, ip) == 1)
			return 0;
		return sigil_err_set(err, SIGIL_E_INVALID, "\"%s\" is not a valid IPv6 address",
		                     kerberos_quote(host, q, sizeof(q)));
	}
	return check_dns(host, len, err);
}

int kerberos_principal_check_realm(const char *realm, sigil_err *err)
{
	char q[QUOTE_LEN];
	size_t len;

	if (!realm || !*realm)
		return sigil_err_set(err, SIGIL_E_INVALID, "a Kerberos realm must not be empty");
	len = strnlen(realm, KERBEROS_MAX_REALM_LEN + 1);
	if (len > KERBEROS_MAX_REALM_LEN)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "Kerberos realm \"%s\" is longer than %d bytes",
		                     kerberos_quote(realm, q, sizeof(q)), KERBEROS_MAX_REALM_LEN);
	for (size_t i = 0; i < len; i++) {
		char c = realm[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
			return sigil_err_set(
			    err, SIGIL_E_INVALID,
			    "Kerberos realm \"%s\" may hold only A-Z, 0-9, '.' and '-' "
			    "(realms are upper case by convention)",
			    kerberos_quote(realm, q, sizeof(q)));
		if (c == '.' && (i == 0 || i == len - 1 || realm[i - 1] == '.'))
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "Kerberos realm \"%s\" has an empty label",
			                     kerberos_quote(realm, q, sizeof(q)));
	}
	return 0;
}

int kerberos_principal_build(const char *service, const char *host, const char *realm, char *buf,
                             size_t len, sigil_err *err)
{
	int r, n;

	if ((r = kerberos_principal_check_service(service, err)) < 0 ||
	    (r = kerberos_principal_check_host(host, err)) < 0 ||
	    (r = kerberos_principal_check_realm(realm, err)) < 0)
		return r;
	n = snprintf(buf, len, "%s/%s@%s", service, host, realm);
	if (n < 0 || (size_t)n >= len)
		return sigil_err_set(err, SIGIL_E_LIMIT, "principal name does not fit in %zu bytes",
		                     len);
	return 0;
}

/* Copies s[0..n) into dst (cap bytes incl. NUL); false when it does not fit. */
static bool copy_part(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

int kerberos_principal_parse(const char *name, const char *realm, kerberos_principal *ret,
                             sigil_err *err)
{
	char q[QUOTE_LEN];
	kerberos_principal p;
	const char *slash, *at;
	size_t len;
	int r;

	if (!name || !*name)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "a Kerberos principal must not be empty");
	len = strnlen(name, KERBEROS_MAX_PRINCIPAL_LEN + 1);
	if (len > KERBEROS_MAX_PRINCIPAL_LEN)
		return sigil_err_set(
		    err, SIGIL_E_INVALID, "Kerberos principal \"%s\" is longer than %d bytes",
		    kerberos_quote(name, q, sizeof(q)), KERBEROS_MAX_PRINCIPAL_LEN);
	slash = strchr(name, '/');
	at = strchr(name, '@');
	if (!slash || !at || at < slash || strchr(slash + 1, '/') || strchr(at + 1, '@'))
		return sigil_err_set(
		    err, SIGIL_E_INVALID,
		    "Kerberos principal \"%s\" is not of the form service/host@REALM",
		    kerberos_quote(name, q, sizeof(q)));
	/* Too-long parts fail the copy; the checks below then name the rule. */
	if (!copy_part(p.service, sizeof(p.service), name, (size_t)(slash - name)) ||
	    !copy_part(p.host, sizeof(p.host), slash + 1, (size_t)(at - slash - 1)) ||
	    !copy_part(p.realm, sizeof(p.realm), at + 1, strlen(at + 1)))
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "a part of Kerberos principal \"%s\" is too long",
		                     kerberos_quote(name, q, sizeof(q)));
	if ((r = kerberos_principal_check_service(p.service, err)) < 0 ||
	    (r = kerberos_principal_check_host(p.host, err)) < 0 ||
	    (r = kerberos_principal_check_realm(p.realm, err)) < 0)
		return sigil_err_prefix(err,
		                        "principal \"%s\": ", kerberos_quote(name, q, sizeof(q)));
	if (realm && strcmp(realm, p.realm) != 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "principal \"%s\" is not in realm %s",
		                     kerberos_quote(name, q, sizeof(q)), realm);
	*ret = p;
	return 0;
}

int kerberos_principal_check_name(const char *name, sigil_err *err)
{
	char q[QUOTE_LEN];
	const char *at;
	size_t len, comps = 1, comp_len = 0;

	if (!name || !*name)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "a Kerberos principal must not be empty");
	len = strnlen(name, KERBEROS_MAX_NAME_LEN + 1);
	if (len > KERBEROS_MAX_NAME_LEN)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "Kerberos principal \"%s\" is longer than %d bytes",
		                     kerberos_quote(name, q, sizeof(q)), KERBEROS_MAX_NAME_LEN);
	at = strchr(name, '@');
	if (at) {
		int r = kerberos_principal_check_realm(at + 1, err);

		if (r < 0)
			return sigil_err_prefix(
			    err, "principal \"%s\": ", kerberos_quote(name, q, sizeof(q)));
		len = (size_t)(at - name);
	}
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? name[i] : '/';

		if (c == '/') {
			if (comp_len == 0)
				return sigil_err_set(
				    err, SIGIL_E_INVALID,
				    "Kerberos principal \"%s\" has an empty component",
				    kerberos_quote(name, q, sizeof(q)));
			if (i < len && ++comps > KERBEROS_MAX_NAME_COMPONENTS)
				return sigil_err_set(err, SIGIL_E_INVALID,
				                     "Kerberos principal \"%s\" has more than %d "
				                     "components",
				                     kerberos_quote(name, q, sizeof(q)),
				                     KERBEROS_MAX_NAME_COMPONENTS);
			comp_len = 0;
			continue;
		}
		if (!is_service_char(c) && c != ':')
			return sigil_err_set(
			    err, SIGIL_E_INVALID,
			    "Kerberos principal \"%s\" may hold only letters, digits, "
			    "'.', '_', '-', ':', '/' and one '@'",
			    kerberos_quote(name, q, sizeof(q)));
		comp_len++;
	}
	return 0;
}
