/* Fuzz target: SecretClass YAML (ca_secretclass_parse_yaml). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca/secretclass.h"
#include "ca/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t size)
{
	if (strnlen(s, size) >= size)
		abort();
}

/* What the parser accepts must be a class the rest of sigil can use. */
static void check_class(const ca_class_config *c)
{
	check_str(c->name, sizeof(c->name));
	if (ca_store_check_class(c->name, NULL) != 0)
		abort();
	if (c->n_trust_roots > CA_CLASS_MAX_TRUST_ROOTS ||
	    c->n_allowed_domains > CA_CLASS_MAX_DOMAINS)
		abort();
	if (c->ca_key_alg >= SIGIL_KEY__COUNT || c->leaf_key_alg >= SIGIL_KEY__COUNT)
		abort();
	if (c->ca_lifetime_secs <= 0 || c->retirement_secs >= c->ca_lifetime_secs ||
	    c->max_leaf_lifetime_secs <= 0)
		abort();
	for (size_t i = 0; i < c->n_trust_roots; i++) {
		check_str(c->trust_roots[i].name, sizeof(c->trust_roots[i].name));
		check_str(c->trust_roots[i].namespace_, sizeof(c->trust_roots[i].namespace_));
		/* Secret references become directories: never "..", never '/'. */
		if (!c->trust_roots[i].name[0] || strchr(c->trust_roots[i].name, '/') ||
		    strstr(c->trust_roots[i].name, ".."))
			abort();
	}
	if (c->has_ca_secret && (strchr(c->ca_secret.name, '/') || strstr(c->ca_secret.name, "..")))
		abort();
	for (size_t i = 0; i < c->n_allowed_domains; i++)
		check_str(c->allowed_domains[i], sizeof(c->allowed_domains[i]));
	switch (c->backend) {
	case CA_BACKEND_AUTOTLS: break;
	case CA_BACKEND_EXTERNAL:
		check_str(c->external.url, sizeof(c->external.url));
		check_str(c->external.role, sizeof(c->external.role));
		check_str(c->external.mount, sizeof(c->external.mount));
		if (strncmp(c->external.url, "http", 4) || c->external.timeout_ms <= 0)
			abort();
		if (c->external.kind == CA_EXTERNAL_VAULT &&
		    (strstr(c->external.mount, "..") || strchr(c->external.role, '/')))
			abort();
		break;
	case CA_BACKEND_KERBEROS:
		check_str(c->kerberos.realm, sizeof(c->kerberos.realm));
		check_str(c->kerberos.admin_keytab, sizeof(c->kerberos.admin_keytab));
		if (!c->kerberos.realm[0] || !c->kerberos.admin_keytab[0])
			abort();
		break;
	default: abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ca_class_config classes[CA_SECRETCLASS_MAX_DOCS];
	sigil_err err = {0};
	size_t n = 0;
	int r;

	r = ca_secretclass_parse_yaml((const char *)data, size, classes, CA_SECRETCLASS_MAX_DOCS,
	                              &n, &err);
	if (r == 0) {
		if (n == 0 || n > CA_SECRETCLASS_MAX_DOCS)
			abort();
		for (size_t i = 0; i < n; i++)
			check_class(&classes[i]);
	} else if (n != 0 || err.code != r || !err.msg[0]) {
		abort();
	}
	return 0;
}
