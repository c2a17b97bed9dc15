/* Validation of the names that go into certificates: DNS host names, IP
 * addresses and URIs. */
#include "ca/names.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Longest IP text we hand to inet_pton (INET6_ADDRSTRLEN minus its NUL). */
#define CA_MAX_IP_TEXT 45
/* How much of a rejected name an error message shows. */
#define CA_QUOTE_LEN 80

const char *ca_names_quote(const char *text, char *buf, size_t len)
{
	return sigil_err_show(text, buf, len);
}

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int ca_names_check_dns(const char *name, bool allow_wildcard, sigil_err *err)
{
	char q[CA_QUOTE_LEN];
	const char *p;
	size_t len, labels = 0;
	bool all_digits = true, wildcard = false;

	if (!name || name[0] == '\0')
		return sigil_err_set(err, SIGIL_E_INVALID, "empty DNS name");
	len = strlen(name);
	if (len > CA_MAX_DNS_NAME_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT,
				     "DNS name \"%s\" is %zu bytes long, the limit is %d",
				     ca_names_quote(name, q, sizeof(q)), len, CA_MAX_DNS_NAME_LEN);
	p = name;
	/* RFC 6125 6.4.3: a wildcard only as the complete left-most label. */
	if (p[0] == '*' && p[1] == '.') {
		if (!allow_wildcard)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "wildcard DNS name \"%s\" is not allowed by the name policy",
					     ca_names_quote(name, q, sizeof(q)));
		p += 2;
		wildcard = true;
	}
	for (;;) {
		const char *start = p;
		size_t n;

		all_digits = true;
		while (*p != '\0' && *p != '.') {
			unsigned char c = (unsigned char)*p;
			if (c == '*')
				return sigil_err_set(err, SIGIL_E_INVALID,
						     "DNS name \"%s\": a wildcard may only be the whole left-most label",
						     ca_names_quote(name, q, sizeof(q)));
			if (!is_alnum(c) && c != '-')
				return sigil_err_set(err, SIGIL_E_INVALID,
						     "DNS name \"%s\" contains an invalid character at offset %zu (RFC 1123: letters, digits and '-')",
						     ca_names_quote(name, q, sizeof(q)), (size_t)(p - name));
			if (c < '0' || c > '9')
				all_digits = false;
			p++;
		}
		n = (size_t)(p - start);
		if (n == 0)
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "DNS name \"%s\" has an empty label%s",
					     ca_names_quote(name, q, sizeof(q)),
					     *p == '\0' ? " (no trailing dot allowed)" : "");
		if (n > CA_MAX_DNS_LABEL_LEN)
			return sigil_err_set(err, SIGIL_E_LIMIT,
					     "DNS name \"%s\" has a label of %zu bytes, the limit is %d",
					     ca_names_quote(name, q, sizeof(q)), n, CA_MAX_DNS_LABEL_LEN);
		if (start[0] == '-' || start[n - 1] == '-')
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "DNS name \"%s\" has a label that starts or ends with '-'",
					     ca_names_quote(name, q, sizeof(q)));
		labels++;
		if (*p == '\0')
			break;
		p++; /* '.' */
	}
	/* RFC 1123 2.1: the top-level label is alphabetic, so a name never
	 * looks like a dotted-decimal address. */
	if (all_digits)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "DNS name \"%s\" ends in a numeric label (an IP address belongs in an IP SAN)",
				     ca_names_quote(name, q, sizeof(q)));
	/* "*.com" would cover a whole top-level domain. */
	if (wildcard && labels < 2)
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "wildcard DNS name \"%s\" needs at least two labels after \"*.\"",
				     ca_names_quote(name, q, sizeof(q)));
	return 0;
}

int ca_names_parse_ip(const char *text, unsigned char out[16], size_t *out_len, sigil_err *err)
{
	char q[CA_QUOTE_LEN];
	unsigned char buf[16];
	size_t len;

	if (!text || text[0] == '\0')
		return sigil_err_set(err, SIGIL_E_INVALID, "empty IP address");
	len = strlen(text);
	if (len > CA_MAX_IP_TEXT)
		return sigil_err_set(err, SIGIL_E_LIMIT, "IP address \"%s\" is %zu bytes long, the limit is %d",
				     ca_names_quote(text, q, sizeof(q)), len, CA_MAX_IP_TEXT);
	/* inet_pton is strict: dotted quad only (no octal, hex or short forms)
	 * for IPv4, RFC 4291 text without a zone index for IPv6. */
	if (strchr(text, ':')) {
		if (inet_pton(AF_INET6, text, buf) != 1)
			return sigil_err_set(err, SIGIL_E_INVALID, "\"%s\" is not a valid IPv6 address",
					     ca_names_quote(text, q, sizeof(q)));
		memcpy(out, buf, 16);
		*out_len = 16;
		return 0;
	}
	if (inet_pton(AF_INET, text, buf) != 1)
		return sigil_err_set(err, SIGIL_E_INVALID, "\"%s\" is not a valid IPv4 address",
				     ca_names_quote(text, q, sizeof(q)));
	memcpy(out, buf, 4);
	*out_len = 4;
	return 0;
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int ca_names_check_uri(const char *uri, sigil_err *err)
{
	char q[CA_QUOTE_LEN];
	size_t len, i;

	if (!uri || uri[0] == '\0')
		return sigil_err_set(err, SIGIL_E_INVALID, "empty URI");
	len = strlen(uri);
	if (len > CA_MAX_URI_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "URI \"%s\" is %zu bytes long, the limit is %d",
				     ca_names_quote(uri, q, sizeof(q)), len, CA_MAX_URI_LEN);
	/* RFC 3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
	if (!((uri[0] >= 'a' && uri[0] <= 'z') || (uri[0] >= 'A' && uri[0] <= 'Z')))
		return sigil_err_set(err, SIGIL_E_INVALID, "URI \"%s\" does not start with a scheme",
				     ca_names_quote(uri, q, sizeof(q)));
	for (i = 1; i < len && uri[i] != ':'; i++) {
		unsigned char c = (unsigned char)uri[i];
		if (!is_alnum(c) && c != '+' && c != '-' && c != '.')
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "URI \"%s\" does not start with a scheme (\"scheme:...\")",
					     ca_names_quote(uri, q, sizeof(q)));
	}
	if (i == len)
		return sigil_err_set(err, SIGIL_E_INVALID, "URI \"%s\" has no scheme (\"scheme:...\")",
				     ca_names_quote(uri, q, sizeof(q)));
	if (i + 1 == len)
		return sigil_err_set(err, SIGIL_E_INVALID, "URI \"%s\" is only a scheme",
				     ca_names_quote(uri, q, sizeof(q)));
	/* RFC 3986 2: only unreserved, reserved and %HH; no spaces, controls,
	 * non-ASCII or the excluded characters "<>\"{}|\\^`". */
	for (i++; i < len; i++) {
		unsigned char c = (unsigned char)uri[i];
		if (c <= 0x20 || c >= 0x7f || strchr("<>\"{}|\\^`", c))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "URI \"%s\" contains an invalid character at offset %zu",
					     ca_names_quote(uri, q, sizeof(q)), i);
		if (c == '%' && (i + 2 >= len || !is_hex((unsigned char)uri[i + 1]) ||
				 !is_hex((unsigned char)uri[i + 2])))
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "URI \"%s\" has a bad percent-escape at offset %zu",
					     ca_names_quote(uri, q, sizeof(q)), i);
	}
	return 0;
}
