/* sigilctl inspect DIR [--password PW] [--json]: what a volume holds. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "keystore/inspect.h"
#include "tools/sigilctl.h"

static const char *kind_name(ks_entry_kind k)
{
	switch (k) {
	case KS_ENTRY_CERT: return "certificate";
	case KS_ENTRY_PRIVATE_KEY: return "private-key";
	case KS_ENTRY_KEY_PAIR: return "key-entry";
	case KS_ENTRY_TRUSTED_CERT: return "trusted-certificate";
	case KS_ENTRY_KEYTAB: return "keytab-entry";
	default: return "unknown";
	}
}

static void fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_cert(const ks_cert_info *c, const char *indent)
{
	char nb[32], na[32];
	time_t now = time(NULL);
	long long left = (long long)(c->not_after - now);

	fmt_time(c->not_before, nb, sizeof(nb));
	fmt_time(c->not_after, na, sizeof(na));
	printf("%ssubject:   %s\n", indent, c->subject[0] ? c->subject : "(empty)");
	printf("%sissuer:    %s\n", indent, c->issuer);
	if (c->n_sans) {
		printf("%sSANs:      ", indent);
		for (size_t i = 0; i < c->n_sans; i++)
			printf("%s%s", i ? ", " : "", c->sans[i]);
		printf("\n");
	}
	printf("%snotBefore: %s\n", indent, nb);
	if (left > 0)
		printf("%snotAfter:  %s (in %lldd %lldh %lldm)\n", indent, na, left / 86400,
		       left / 3600 % 24, left / 60 % 60);
	else
		printf("%snotAfter:  %s (EXPIRED)\n", indent, na);
	printf("%skey:       %s%s\n", indent, c->key_type, c->is_ca ? ", CA" : "");
	printf("%sserial:    %s\n", indent, c->serial);
}

static void print_text(const char *dir, const ks_inspection *in)
{
	printf("%s: %zu file(s)\n", dir, in->n_files);
	for (size_t i = 0; i < in->n_files; i++) {
		const ks_file_info *f = &in->files[i];

		printf("\n%s  [%s, mode %04o, %lld bytes]\n", f->name, f->format, (unsigned)f->mode,
		       (long long)f->size);
		if (f->error)
			printf("  error: %s\n", f->error);
		for (size_t j = 0; j < f->n_entries; j++) {
			const ks_entry *e = &f->entries[j];

			printf("  - %s", kind_name(e->kind));
			if (e->kind == KS_ENTRY_KEYTAB) {
				/* The enctype number too: a name alone hides
				 * an enctype this build does not know. */
				printf(" %s kvno %u %s (%d)\n", e->principal, (unsigned)e->kvno,
				       e->enctype_name[0] ? e->enctype_name : "unknown",
				       (int)e->enctype);
				continue;
			}
			if (e->alias[0])
				printf(" \"%s\"", e->alias);
			if (e->kind == KS_ENTRY_PRIVATE_KEY || e->kind == KS_ENTRY_KEY_PAIR)
				printf(" (%s%s", e->key_type,
				       e->kind == KS_ENTRY_KEY_PAIR ? ", chain " : ")");
			if (e->kind == KS_ENTRY_KEY_PAIR)
				printf("%zu)", e->chain_len);
			printf("\n");
			if (e->has_cert)
				print_cert(&e->cert, "      ");
		}
	}
}

static json_t *cert_json(const ks_cert_info *c)
{
	char nb[32], na[32];
	json_t *sans = json_array();

	fmt_time(c->not_before, nb, sizeof(nb));
	fmt_time(c->not_after, na, sizeof(na));
	for (size_t i = 0; i < c->n_sans; i++)
		json_array_append_new(sans, json_string(c->sans[i]));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:o, s:s}", "subject", c->subject,
			 "issuer", c->issuer, "serial", c->serial, "notBefore", nb, "notAfter", na,
			 "notAfterUnix", (json_int_t)c->not_after, "isCA", c->is_ca, "sans", sans,
			 "keyType", c->key_type);
}

static int print_json(const char *dir, const ks_inspection *in)
{
	json_t *root = json_object();
	json_t *files = json_array();
	char *s;

	json_object_set_new(root, "directory", json_string(dir));
	for (size_t i = 0; i < in->n_files; i++) {
		const ks_file_info *f = &in->files[i];
		json_t *jf = json_pack("{s:s, s:s, s:i, s:I}", "name", f->name, "format", f->format,
				       "mode", (int)f->mode, "size", (json_int_t)f->size);
		json_t *entries = json_array();

		if (f->error)
			json_object_set_new(jf, "error", json_string(f->error));
		for (size_t j = 0; j < f->n_entries; j++) {
			const ks_entry *e = &f->entries[j];
			json_t *je = json_pack("{s:s}", "kind", kind_name(e->kind));

			if (e->kind == KS_ENTRY_KEYTAB) {
				json_object_set_new(je, "principal", json_string(e->principal));
				json_object_set_new(je, "kvno", json_integer((json_int_t)e->kvno));
				if (e->enctype_name[0])
					json_object_set_new(je, "enctype", json_string(e->enctype_name));
				json_object_set_new(je, "enctypeNumber", json_integer(e->enctype));
				json_object_set_new(je, "timestampUnix",
						    json_integer((json_int_t)e->timestamp));
			}
			if (e->alias[0])
				json_object_set_new(je, "alias", json_string(e->alias));
			if (e->key_type[0])
				json_object_set_new(je, "keyType", json_string(e->key_type));
			if (e->kind == KS_ENTRY_KEY_PAIR)
				json_object_set_new(je, "chainLength", json_integer((json_int_t)e->chain_len));
			if (e->has_cert)
				json_object_set_new(je, "certificate", cert_json(&e->cert));
			json_array_append_new(entries, je);
		}
		json_object_set_new(jf, "entries", entries);
		json_array_append_new(files, jf);
	}
	json_object_set_new(root, "files", files);
	s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!s)
		return -1;
	printf("%s\n", s);
	free(s);
	return 0;
}

int sigilctl_cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{"password", required_argument, 0, 'p'},
		{"json", no_argument, 0, 'j'},
		{"help", no_argument, 0, 'h'},
		{0},
	};
	const char *password = NULL;
	int json = 0, c, rc;
	ks_inspection in = {0};
	sigil_err err = {0};

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': password = optarg; break;
		case 'j': json = 1; break;
		case 'h':
			printf("usage: sigilctl inspect DIR [--password PW] [--json]\n");
			return SIGILCTL_EXIT_OK;
		default: return SIGILCTL_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: sigilctl inspect DIR [--password PW] [--json]\n");
		return SIGILCTL_EXIT_USAGE;
	}
	if (ks_inspect_dir(argv[optind], password, &in, &err) < 0) {
		fprintf(stderr, "sigilctl inspect: %s\n", err.msg);
		return SIGILCTL_EXIT_FAIL;
	}
	if (json)
		rc = print_json(argv[optind], &in) < 0 ? SIGILCTL_EXIT_FAIL : SIGILCTL_EXIT_OK;
	else {
		print_text(argv[optind], &in);
		rc = SIGILCTL_EXIT_OK;
	}
	ks_inspection_free(&in);
	return rc;
}
