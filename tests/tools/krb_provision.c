/* Test tool: provisions principals with kerberos_provision and writes the
 * keytab to a file, or lists a keytab file with the sigil keytab reader.
 *
 *   krb_provision --realm R --kdc H:P --admin-server H:P --admin-principal P
 *                 --admin-keytab F [--helper PATH] [--timeout-ms N]
 *                 [--no-create] --out FILE PRINCIPAL...
 *   krb_provision --list FILE
 *
 * On failure it prints "error: <code name>: <message>" and exits 1. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kerberos/kadm.h"
#include "kerberos/keytab.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/parse.h"

static int fail(const sigil_err *err)
{
	fprintf(stderr, "error: %s: %s\n", sigil_errcode_name(err->code), err->msg);
	return 1;
}

static int list_keytab(const char *path)
{
	_cleanup_(kerberos_keytab_freep) kerberos_keytab *kt = NULL;
	sigil_err err = {0};
	uint8_t *data = NULL;
	size_t len;
	int r;

	if (sigil_fs_read_file(path, KERBEROS_KEYTAB_MAX_SIZE, &data, &len, &err) < 0)
		return fail(&err);
	r = kerberos_keytab_parse(data, len, &kt, &err);
	sigil_freezero(data, len);
	if (r < 0)
		return fail(&err);
	for (size_t i = 0; i < kt->n; i++) {
		const kerberos_keytab_entry *e = &kt->entries[i];
		const char *et = kerberos_enctype_name(e->enctype);
		char name[2048];

		(void)kerberos_keytab_entry_principal(e, name, sizeof(name));
		printf("%u %s %s\n", e->kvno, et ? et : "unknown", name);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"realm", required_argument, NULL, 'r'},
	    {"kdc", required_argument, NULL, 'k'},
	    {"admin-server", required_argument, NULL, 'a'},
	    {"admin-principal", required_argument, NULL, 'p'},
	    {"admin-keytab", required_argument, NULL, 't'},
	    {"helper", required_argument, NULL, 'H'},
	    {"timeout-ms", required_argument, NULL, 'T'},
	    {"no-create", no_argument, NULL, 'n'},
	    {"out", required_argument, NULL, 'o'},
	    {"list", required_argument, NULL, 'l'},
	    {NULL, 0, NULL, 0},
	};
	kerberos_admin_config cfg = {0};
	const char *out = NULL;
	bool create = true;
	sigil_err err = {0};
	uint8_t *kt = NULL;
	size_t kt_len = 0;
	int64_t v;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': cfg.realm = optarg; break;
		case 'k': cfg.kdc = optarg; break;
		case 'a': cfg.admin_server = optarg; break;
		case 'p': cfg.admin_principal = optarg; break;
		case 't': cfg.admin_keytab = optarg; break;
		case 'H': cfg.helper_path = optarg; break;
		case 'n': create = false; break;
		case 'o': out = optarg; break;
		case 'l': return list_keytab(optarg);
		case 'T':
			if (sigil_parse_int64(optarg, 0, INT32_MAX, &v) < 0) {
				fprintf(stderr, "bad --timeout-ms\n");
				return 2;
			}
			cfg.timeout_ms = v;
			break;
		default:
			fprintf(stderr, "usage: see the comment at the top of krb_provision.c\n");
			return 2;
		}
	}
	if (!out) {
		fprintf(stderr, "--out is required\n");
		return 2;
	}
	r = kerberos_provision(&cfg, (const char *const *)(argv + optind), (size_t)(argc - optind),
	                       create, &kt, &kt_len, &err);
	kerberos_kadm_pool_shutdown();
	if (r < 0)
		return fail(&err);
	r = sigil_fs_write_atomic(out, kt, kt_len, 0600, &err);
	sigil_freezero(kt, kt_len);
	if (r < 0)
		return fail(&err);
	return 0;
}
