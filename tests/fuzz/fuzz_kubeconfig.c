/* Fuzz target: kubeconfig YAML (kube_config_parse_kubeconfig). */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t max)
{
	if (s && strnlen(s, max + 1) > max)
		abort();
}

/* What the parser accepts must be usable by the client as it is. */
static void check_config(const kube_config *c)
{
	if (!c->server || (strncmp(c->server, "https://", 8) && strncmp(c->server, "http://", 7)))
		abort();
	check_str(c->server, KUBE_CONFIG_MAX_URL);
	for (const char *p = c->server; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			abort();
	if (!c->namespace_ || !c->namespace_[0] ||
	    strlen(c->namespace_) > KUBE_CONFIG_MAX_NAMESPACE)
		abort();
	if (!c->context)
		abort();
	if (c->token) {
		if (!c->token[0] || strlen(c->token) > KUBE_CONFIG_MAX_TOKEN)
			abort();
		for (const char *p = c->token; *p; p++)
			if (*p <= 0x20 || *p >= 0x7f)
				abort();
	}
	if ((c->ca_file && c->ca_data) ||
	    (c->insecure_skip_tls_verify && (c->ca_file || c->ca_data)))
		abort();
	if ((c->client_cert_file || c->client_cert_data) !=
	    (c->client_key_file || c->client_key_data))
		abort();
	/* Inline data is decoded PEM. */
	if (c->ca_data && !memmem(c->ca_data, c->ca_data_len, "-----BEGIN ", 11))
		abort();
	if (c->client_key_data &&
	    !memmem(c->client_key_data, c->client_key_data_len, "-----BEGIN ", 11))
		abort();
	/* Relative names were made absolute against the base directory. */
	if (c->ca_file && c->ca_file[0] != '/')
		abort();
	if (c->token_file && c->token_file[0] != '/')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kube_config *c = NULL;
	sigil_err err = {0};
	int r = kube_config_parse_kubeconfig((const char *)data, size, "/fuzz", NULL, &c, &err);

	if (r == 0) {
		if (!c)
			abort();
		check_config(c);
		kube_config_free(c);
	} else if (c || err.code != r || !err.msg[0]) {
		abort();
	}
	return 0;
}
