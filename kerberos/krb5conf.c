#include "kerberos/krb5conf.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kerberos/principal.h"
#include "util/buf.h"
#include "util/parse.h"

#define QUOTE_LEN 80

static int check_port(const char *server, const char *port, sigil_err *err)
{
	char q[QUOTE_LEN];
	int64_t v;

	/* 1 to 5 digits and nothing else (strtoll would skip a leading newline,
	 * which would add a line to the file), no leading zero. */
	size_t n = strlen(port);
	bool digits = n >= 1 && n <= 5 && port[0] != '0';

	for (size_t i = 0; digits && i < n; i++)
		digits = port[i] >= '0' && port[i] <= '9';
	if (!digits || sigil_parse_int64(port, 1, 65535, &v) < 0)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "server \"%s\": the port must be a number from 1 to 65535",
		                     kerberos_quote(server, q, sizeof(q)));
	return 0;
}

int kerberos_krb5conf_check_server(const char *server, sigil_err *err)
{
	char q[QUOTE_LEN];
	char host[KERBEROS_MAX_SERVER_LEN + 1];
	const char *port = NULL;
	size_t len, hl;
	unsigned char ip[16];

	if (!server || !*server)
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "a KDC or admin server must not be empty");
	len = strnlen(server, KERBEROS_MAX_SERVER_LEN + 1);
	if (len > KERBEROS_MAX_SERVER_LEN)
		return sigil_err_set(err, SIGIL_E_INVALID, "server \"%s\" is longer than %d bytes",
		                     kerberos_quote(server, q, sizeof(q)), KERBEROS_MAX_SERVER_LEN);
	if (server[0] == '[') {
		const char *close = strchr(server, ']');

		if (!close)
			return sigil_err_set(err, SIGIL_E_INVALID, "server \"%s\": missing ']'",
			                     kerberos_quote(server, q, sizeof(q)));
		hl = (size_t)(close - server - 1);
		memcpy(host, server + 1, hl);
		host[hl] = '\0';
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "server \"%s\": expected ':port' after ']'",
			                     kerberos_quote(server, q, sizeof(q)));
		if (inet_pton(AF_INET6, host, ip) != 1)
			return sigil_err_set(err, SIGIL_E_INVALID,
			                     "server \"%s\": not an IPv6 address in brackets",
			                     kerberos_quote(server, q, sizeof(q)));
		return port ? check_port(server, port, err) : 0;
	}
	const char *colon = strchr(server, ':');
	if (colon && strchr(colon + 1, ':'))
		return sigil_err_set(
		    err, SIGIL_E_INVALID,
		    "server \"%s\": write an IPv6 address in brackets ([addr]:port)",
		    kerberos_quote(server, q, sizeof(q)));
	hl = colon ? (size_t)(colon - server) : len;
	for (size_t i = 0; i < hl; i++) /* DNS is case-insensitive */
		host[i] = (server[i] >= 'A' && server[i] <= 'Z') ? (char)(server[i] - 'A' + 'a')
		                                                 : server[i];
	host[hl] = '\0';
	if (kerberos_principal_check_host(host, err) < 0)
		return sigil_err_prefix(err,
		                        "server \"%s\": ", kerberos_quote(server, q, sizeof(q)));
	return colon ? check_port(server, colon + 1, err) : 0;
}

static int check_domain(const char *domain, sigil_err *err)
{
	char q[QUOTE_LEN];
	unsigned char ip[16];

	if (domain && (strchr(domain, ':') || inet_pton(AF_INET, domain, ip) == 1))
		return sigil_err_set(err, SIGIL_E_INVALID,
		                     "cluster domain \"%s\" is an address, not a DNS domain",
		                     kerberos_quote(domain, q, sizeof(q)));
	if (kerberos_principal_check_host(domain, err) < 0)
		return sigil_err_prefix(err, "cluster domain: ");
	return 0;
}

int kerberos_krb5conf_render(const kerberos_krb5conf *c, char **ret, size_t *ret_len,
                             sigil_err *err)
{
	const char *domain =
	    c->cluster_domain ? c->cluster_domain : KERBEROS_DEFAULT_CLUSTER_DOMAIN;
	sigil_wbuf w;
	int r;

	if ((r = kerberos_principal_check_realm(c->realm, err)) < 0)
		return r;
	if ((r = kerberos_krb5conf_check_server(c->kdc, err)) < 0)
		return sigil_err_prefix(err, "kdc: ");
	if (c->admin_server && (r = kerberos_krb5conf_check_server(c->admin_server, err)) < 0)
		return sigil_err_prefix(err, "admin server: ");
	if ((r = check_domain(domain, err)) < 0)
		return r;

	sigil_wbuf_init(&w, KERBEROS_KRB5CONF_MAX_SIZE, false);
	(void)sigil_wbuf_putf(&w,
	                      "[libdefaults]\n"
	                      "\tdefault_realm = %s\n"
	                      "\trdns = false\n"
	                      "\tdns_canonicalize_hostname = false\n"
	                      "\tudp_preference_limit = 1\n"
	                      "\tdns_lookup_kdc = false\n"
	                      "\tdns_lookup_realm = false\n"
	                      "\n"
	                      "[realms]\n"
	                      "\t%s = {\n"
	                      "\t\tkdc = %s\n",
	                      c->realm, c->realm, c->kdc);
	if (c->admin_server)
		(void)sigil_wbuf_putf(&w, "\t\tadmin_server = %s\n", c->admin_server);
	(void)sigil_wbuf_putf(&w,
	                      "\t}\n"
	                      "\n"
	                      "[domain_realm]\n"
	                      "\t%s = %s\n"
	                      "\t.%s = %s\n",
	                      domain, c->realm, domain, c->realm);
	if ((r = sigil_wbuf_status(&w)) < 0) {
		sigil_wbuf_free(&w);
		return sigil_err_set(err, r, "krb5.conf does not fit in %d bytes",
		                     KERBEROS_KRB5CONF_MAX_SIZE);
	}
	*ret = (char *)sigil_wbuf_steal(&w, ret_len);
	if (!*ret)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory rendering krb5.conf");
	return 0;
}
