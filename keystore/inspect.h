/* Reading back what a volume holds, for `sigilctl inspect` and the demo:
 * certificates (subject, SANs, issuer, validity, key type), private keys,
 * PKCS#12 and JKS stores (entries, with the store password), Kerberos
 * keytabs (principal, kvno and enctype of every key; never the key). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "util/err.h"

#define KS_INSPECT_MAX_FILES 64
#define KS_INSPECT_MAX_ENTRIES 128
#define KS_INSPECT_MAX_SANS 128
#define KS_INSPECT_MAX_PRINCIPAL 512

typedef enum ks_entry_kind {
	KS_ENTRY_CERT,         /* a certificate in a PEM file */
	KS_ENTRY_PRIVATE_KEY,  /* a private key in a PEM file */
	KS_ENTRY_KEY_PAIR,     /* a key entry with its chain in a store */
	KS_ENTRY_TRUSTED_CERT, /* a trusted certificate entry in a store */
	KS_ENTRY_KEYTAB,       /* a key of a principal in a Kerberos keytab */
} ks_entry_kind;

typedef struct ks_cert_info {
	char subject[256];
	char issuer[256];
	char serial[64];
	char key_type[32];
	time_t not_before;
	time_t not_after;
	bool is_ca;
	char **sans; /* "DNS:x", "IP:1.2.3.4", "URI:..." */
	size_t n_sans;
} ks_cert_info;

typedef struct ks_entry {
	ks_entry_kind kind;
	char alias[80];
	char key_type[32];    /* private keys and key pairs */
	size_t chain_len;     /* key pairs */
	bool has_cert;
	ks_cert_info cert;    /* leaf / trusted cert when has_cert */
	/* keytab entries: the principal as text (escaped as
	 * kerberos_keytab_entry_principal does, cut with "..." if longer), key
	 * version, encryption type and its kadmin name ("" if unknown) */
	char principal[KS_INSPECT_MAX_PRINCIPAL];
	uint32_t kvno;
	int32_t enctype;
	char enctype_name[40];
	time_t timestamp;
} ks_entry;

typedef struct ks_file_info {
	char *name;           /* relative to the inspected directory */
	char format[16];      /* "pem", "pkcs12", "jks", "keytab", "other" */
	mode_t mode;
	off_t size;
	ks_entry *entries;
	size_t n_entries;
	char *error;          /* set when the file could not be read */
} ks_file_info;

typedef struct ks_inspection {
	ks_file_info *files;
	size_t n_files;
} ks_inspection;

/* Inspects every regular file under dir (recursively, no symlinks followed,
 * names sorted).  password opens PKCS#12/JKS stores (NULL = empty).  A file
 * that cannot be parsed is reported in its ->error, not as a failure. */
int ks_inspect_dir(const char *dir, const char *password, ks_inspection *ret,
		   sigil_err *err) SIGIL_WUR;
void ks_inspection_free(ks_inspection *in);
