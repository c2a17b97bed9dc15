#include "keystore/keystore.h"

#include <stdlib.h>
#include <string.h>

#include "util/fs.h"
#include "util/mem.h"

int ks_format_parse(const char *s, ks_format *ret)
{
	if (!s)
		return SIGIL_E_INVALID;
	if (!strcmp(s, "tls-pem"))
		*ret = KS_FORMAT_PEM;
	else if (!strcmp(s, "tls-pkcs12"))
		*ret = KS_FORMAT_PKCS12;
	else if (!strcmp(s, "tls-jks"))
		*ret = KS_FORMAT_JKS;
	else
		return SIGIL_E_INVALID;
	return 0;
}

const char *ks_format_name(ks_format f)
{
	switch (f) {
	case KS_FORMAT_PEM: return "tls-pem";
	case KS_FORMAT_PKCS12: return "tls-pkcs12";
	case KS_FORMAT_JKS: return "tls-jks";
	default: return "unknown";
	}
}

int ks_fileset_add(ks_fileset *fs, const char *name, uint8_t *data, size_t len, bool secret,
		   sigil_err *err)
{
	char *n;

	if (fs->n >= KS_MAX_FILES) {
		if (secret)
			sigil_freezero(data, len);
		else
			free(data);
		return sigil_err_set(err, SIGIL_E_LIMIT, "too many output files");
	}
	if (!sigil_fs_rel_path_ok(name)) {
		if (secret)
			sigil_freezero(data, len);
		else
			free(data);
		return sigil_err_set(err, SIGIL_E_INVALID,
				     "file name '%s' is not a safe relative path", name);
	}
	for (size_t i = 0; i < fs->n; i++)
		if (!strcmp(fs->files[i].name, name)) {
			if (secret)
				sigil_freezero(data, len);
			else
				free(data);
			return sigil_err_set(err, SIGIL_E_INVALID,
					     "file name '%s' is used twice", name);
		}
	n = strdup(name);
	if (!n) {
		if (secret)
			sigil_freezero(data, len);
		else
			free(data);
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	}
	fs->files[fs->n++] = (ks_file){.name = n, .data = data, .len = len, .secret = secret};
	return 0;
}

void ks_fileset_free(ks_fileset *fs)
{
	if (!fs)
		return;
	for (size_t i = 0; i < fs->n; i++) {
		if (fs->files[i].secret)
			sigil_freezero(fs->files[i].data, fs->files[i].len);
		else
			free(fs->files[i].data);
		free(fs->files[i].name);
	}
	fs->n = 0;
}

int ks_render(ks_format f, const ks_material *m, const ks_options *opts, ks_fileset *out,
	      sigil_err *err)
{
	int r;

	memset(out, 0, sizeof(*out));
	if (!m || !m->trust || sk_X509_num(m->trust) == 0)
		return sigil_err_set(err, SIGIL_E_INVALID, "no trust bundle to write");
	if ((m->key == NULL) != (m->leaf == NULL))
		return sigil_err_set(err, SIGIL_E_INVALID, "a key needs its certificate");
	if (opts && opts->password && strlen(opts->password) > KS_MAX_PASSWORD_LEN)
		return sigil_err_set(err, SIGIL_E_LIMIT, "store password longer than %d bytes",
				     KS_MAX_PASSWORD_LEN);
	switch (f) {
	case KS_FORMAT_PEM: r = ks_pem_render(m, opts, out, err); break;
	case KS_FORMAT_PKCS12: r = ks_pkcs12_render(m, opts, out, err); break;
	case KS_FORMAT_JKS: r = ks_jks_render(m, opts, out, err); break;
	default: r = sigil_err_set(err, SIGIL_E_INVALID, "unknown format"); break;
	}
	if (r < 0)
		ks_fileset_free(out);
	return r;
}
