/* Validation of the names that go into certificates. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* RFC 1035 / 1123 limits. */
#define CA_MAX_DNS_NAME_LEN 253
#define CA_MAX_DNS_LABEL_LEN 63
#define CA_MAX_URI_LEN 1024
/* Names per certificate, and per name kind. */
#define CA_MAX_SANS 100
#define CA_MAX_CN_LEN 64 /* RFC 5280 ub-common-name */
#define CA_MAX_DC 16

/* RFC 1123 host name: labels of [a-z0-9-] (case-insensitive), not starting
 * or ending with '-', 1..63 bytes each, total <= 253, no trailing dot.  A
 * leading "*." label is accepted only with allow_wildcard. */
int ca_names_check_dns(const char *name, bool allow_wildcard, sigil_err *err) SIGIL_WUR;
/* Dotted-quad IPv4 or RFC 4291 IPv6 text; writes the 4 or 16 raw bytes. */
int ca_names_parse_ip(const char *text, unsigned char out[16], size_t *out_len,
		      sigil_err *err) SIGIL_WUR;
/* An absolute URI with a scheme, printable ASCII, no spaces (e.g. spiffe://). */
int ca_names_check_uri(const char *uri, sigil_err *err) SIGIL_WUR;
/* A copy of untrusted text fit for an error message: bytes outside printable
 * ASCII become '?', and long text is cut with "..." (buf of len >= 4). */
const char *ca_names_quote(const char *text, char *buf, size_t len);
