/* Where CA generations are kept.  An interface: the directory store lives
 * in ca/store_dir.c; a Kubernetes Secret store comes later behind the same
 * operations.
 *
 * Each generation is one record: the CA certificate and its private key in
 * PEM, and a generation number that only grows.  A record is written
 * atomically; a store that cannot be read completely is refused with an
 * error naming the file, never replaced (a silently regenerated CA would
 * break every client's trust). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define CA_STORE_MAX_GENERATIONS 64
#define CA_STORE_MAX_CLASS_LEN 63
/* Limit on one record (CA certificate + key PEM); an RSA-4096 record is
 * about 6 KiB. */
#define CA_STORE_MAX_RECORD_SIZE (64u * 1024)

typedef struct ca_store_record {
	uint64_t generation;
	char *cert_pem; /* NUL-terminated */
	size_t cert_len;
	char *key_pem; /* secret, NUL-terminated; wiped on free */
	size_t key_len;
} ca_store_record;

typedef struct ca_store ca_store;

typedef struct ca_store_ops {
	/* Exclusive lock for a class, held across load..save of a rotation, so
	 * two processes never rotate at once.  Blocks until acquired. */
	int (*lock)(ca_store *s, const char *class_name, sigil_err *err);
	void (*unlock)(ca_store *s, const char *class_name);
	/* All generations of a class, ascending.  An empty class is *n = 0.
	 * A record that cannot be read or parsed fails the whole load with
	 * SIGIL_E_CORRUPT naming it.  Under the lock, crash leftovers of
	 * interrupted writes are removed. */
	int (*load)(ca_store *s, const char *class_name, ca_store_record **ret, size_t *n,
		    sigil_err *err);
	/* Adds one new generation: SIGIL_E_EXISTS if it exists already,
	 * SIGIL_E_LIMIT if the class holds CA_STORE_MAX_GENERATIONS. */
	int (*put)(ca_store *s, const char *class_name, const ca_store_record *rec, sigil_err *err);
	/* Removes one generation (pruning); a missing one succeeds. */
	int (*remove)(ca_store *s, const char *class_name, uint64_t generation, sigil_err *err);
	void (*free)(ca_store *s);
} ca_store_ops;

struct ca_store {
	const ca_store_ops *ops;
};

/* Directory store: DIR/<class>/gen-<NNNNNNNNNNNNNNNN>.pem (0600, cert+key),
 * DIR/<class>/.lock (flock).  Every write is temp + fsync + rename + fsync
 * of the directory.  The directory is created 0700 if missing. */
int ca_store_dir_open(const char *dir, ca_store **ret, sigil_err *err) SIGIL_WUR;

/* Checks a class name: [a-z0-9][a-z0-9.-]*, at most CA_STORE_MAX_CLASS_LEN. */
int ca_store_check_class(const char *class_name, sigil_err *err) SIGIL_WUR;

static inline int ca_store_lock(ca_store *s, const char *c, sigil_err *e)
{
	return s->ops->lock(s, c, e);
}
static inline void ca_store_unlock(ca_store *s, const char *c)
{
	s->ops->unlock(s, c);
}
static inline int ca_store_load(ca_store *s, const char *c, ca_store_record **r, size_t *n,
				sigil_err *e)
{
	return s->ops->load(s, c, r, n, e);
}
static inline int ca_store_put(ca_store *s, const char *c, const ca_store_record *r, sigil_err *e)
{
	return s->ops->put(s, c, r, e);
}
static inline int ca_store_remove(ca_store *s, const char *c, uint64_t g, sigil_err *e)
{
	return s->ops->remove(s, c, g, e);
}
void ca_store_free(ca_store *s);
void ca_store_records_free(ca_store_record *recs, size_t n);

/* The bytes of one record exactly as a store keeps them: one CERTIFICATE
 * PEM block followed by one PRIVATE KEY (unencrypted PKCS#8) PEM block,
 * 64-column base64, '\n' line ends, nothing else.  Parsing is strict: the
 * DER inside each block must decode completely and the key must match the
 * certificate; anything else is SIGIL_E_CORRUPT with `what` (a file name)
 * in the message.  ret->generation is left 0 for the caller to set. */
int ca_store_record_parse(const char *what, const char *data, size_t len, ca_store_record *ret,
			  sigil_err *err) SIGIL_WUR;
/* Serialises rec (cert_pem then key_pem) and checks that the result parses
 * back, so that a store never writes what it could not load.  The result is
 * secret: free it with sigil_freezero(p, len + 1). */
int ca_store_record_format(const ca_store_record *rec, char **ret, size_t *len,
			   sigil_err *err) SIGIL_WUR;
/* The name of a generation in every store (file name, Secret data key):
 * exactly gen-<16 lower-case hex digits>.pem, so that every generation has
 * one name and no two names map to one generation. */
#define CA_STORE_GEN_NAME_LEN 24
void ca_store_gen_name(uint64_t generation, char buf[CA_STORE_GEN_NAME_LEN + 1]);
/* false for anything that is not exactly such a name. */
bool ca_store_gen_parse(const char *name, uint64_t *ret);
/* Wipes and frees the fields of one record (not the record itself). */
void ca_store_record_clear(ca_store_record *rec);
