/* The MIT keytab file format, version 0x0502, read and written without
 * libkrb5 (so that `sigilctl inspect` and the node plugin need no Kerberos
 * configuration).
 *
 * File:  u16 version (0x0502), then entries until the end of the data:
 *        i32 size; size > 0: an entry of that many bytes; size < 0: a hole
 *        of -size bytes left by a deleted entry; size 0: end of entries.
 * Entry: u16 num_components (realm not counted), data realm,
 *        data component[num_components], u32 name_type, u32 timestamp,
 *        u8 kvno8, keyblock (u16 enctype, data contents), and an optional
 *        u32 kvno that, when present and non-zero, replaces kvno8.  Bytes
 *        after it are ignored.  A "data" is a u16 length and that many bytes.
 * All integers are big-endian (network order). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kerberos/principal.h"
#include "util/err.h"
#include "util/mem.h"

#define KERBEROS_KEYTAB_VERSION 0x0502
/* Limits on what a keytab read from anywhere may hold. */
#define KERBEROS_KEYTAB_MAX_SIZE       (1024 * 1024)
#define KERBEROS_KEYTAB_MAX_ENTRIES    4096
#define KERBEROS_KEYTAB_MAX_COMPONENTS 16
#define KERBEROS_KEYTAB_MAX_DATA_LEN   1024 /* one realm or component */
#define KERBEROS_KEYTAB_MAX_KEY_LEN    256  /* AES-256 keys are 32 bytes */

typedef struct kerberos_keytab_entry {
	char *realm;
	char **components;
	size_t n_components;
	uint32_t name_type; /* KRB5_NT_PRINCIPAL = 1 */
	uint32_t timestamp; /* unix seconds */
	uint32_t kvno;
	int32_t enctype;
	uint8_t *key; /* secret: wiped on free */
	size_t key_len;
} kerberos_keytab_entry;

typedef struct kerberos_keytab {
	kerberos_keytab_entry *entries;
	size_t n;
	size_t cap;
} kerberos_keytab;

#define KERBEROS_NT_PRINCIPAL 1

/* An empty keytab (NULL on OOM). */
kerberos_keytab *kerberos_keytab_new(void);
/* Wipes every key; accepts NULL. */
void kerberos_keytab_free(kerberos_keytab *kt);
SIGIL_DEFINE_CLEANUP(kerberos_keytab, kerberos_keytab_free)

/* Parses a keytab file image.  Malformed data is SIGIL_E_CORRUPT, a breach
 * of a limit above SIGIL_E_LIMIT. */
int kerberos_keytab_parse(const uint8_t *data, size_t len, kerberos_keytab **ret,
                          sigil_err *err) SIGIL_WUR;
/* The file image; the buffer holds keys, so free it with sigil_freezero. */
int kerberos_keytab_serialize(const kerberos_keytab *kt, uint8_t **ret, size_t *ret_len,
                              sigil_err *err) SIGIL_WUR;

/* Appends a deep copy of e (checked against the limits). */
int kerberos_keytab_add(kerberos_keytab *kt, const kerberos_keytab_entry *e,
                        sigil_err *err) SIGIL_WUR;
/* Appends the key of "{service}/{host}@{realm}" with name type
 * KRB5_NT_PRINCIPAL. */
int kerberos_keytab_add_key(kerberos_keytab *kt, const kerberos_principal *p, uint32_t timestamp,
                            uint32_t kvno, int32_t enctype, const uint8_t *key, size_t key_len,
                            sigil_err *err) SIGIL_WUR;

/* A new keytab with a's entries followed by those of b; an entry of b with
 * the same principal, kvno and enctype as one of a replaces it in place (b
 * is the newer extract). */
int kerberos_keytab_merge(const kerberos_keytab *a, const kerberos_keytab *b, kerberos_keytab **ret,
                          sigil_err *err) SIGIL_WUR;

/* True when both entries name the same principal (realm and components,
 * byte for byte). */
bool kerberos_keytab_entry_same_principal(const kerberos_keytab_entry *a,
                                          const kerberos_keytab_entry *b);
/* Writes the principal as text ("comp/comp@REALM"), escaping '/', '@', '\\'
 * inside components and any byte outside printable ASCII as \xNN, so that a
 * name from a hostile file is unambiguous and safe on a terminal.  Returns
 * 0, or SIGIL_E_LIMIT when buf (len bytes) is too small (buf then holds a
 * cut, NUL-terminated prefix). */
int kerberos_keytab_entry_principal(const kerberos_keytab_entry *e, char *buf, size_t len);
/* "aes256-cts-hmac-sha1-96" etc. (the names kadmin uses); NULL if unknown. */
const char *kerberos_enctype_name(int32_t enctype);
