/* Fuzz target: the metrics HTTP listen address ("HOST:PORT", "[V6]:PORT").
 * What is accepted is a numeric address of the right family that prints
 * back to an address which parses to the same socket address. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss, ss2;
	socklen_t len = 0, len2 = 0;
	sigil_err err = {0};
	char *s, host[INET6_ADDRSTRLEN], again[INET6_ADDRSTRLEN + 16];
	unsigned port;
	int r;

	if (size > METRICS_HTTPD_MAX_LISTEN * 2)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	r = metrics_httpd_parse_listen(s, &ss, &len, &err);
	if (r < 0) {
		if (err.code != r || !err.msg[0])
			abort();
		free(s);
		return 0;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		if (len != sizeof(*a) || !inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)))
			abort();
		port = ntohs(a->sin_port);
		snprintf(again, sizeof(again), "%s:%u", host, port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		if (len != sizeof(*a) || s[0] != '[' ||
		    !inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)))
			abort();
		port = ntohs(a->sin6_port);
		snprintf(again, sizeof(again), "[%s]:%u", host, port);
	} else {
		abort();
	}
	if (metrics_httpd_parse_listen(again, &ss2, &len2, NULL) < 0 || len2 != len ||
	    memcmp(&ss, &ss2, len) != 0)
		abort();
	free(s);
	return 0;
}
