/* Who is calling sigil-ca.  Every call carries "authorization: Bearer
 * TOKEN".  Standalone, tokens come from a file; in a cluster TokenReview
 * (issue 6) answers the same question behind the same interface. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define CA_AUTH_MAX_TOKEN 4096
#define CA_AUTH_MIN_TOKEN 16
#define CA_AUTH_MAX_TOKENS 10000
#define CA_AUTH_MAX_CLASSES 16
#define CA_AUTH_ADMIN "@admin"

typedef struct ca_caller {
	char node[254];       /* the node the token belongs to */
	bool admin;           /* may rotate CAs */
	size_t n_classes;     /* 0: every class */
	char classes[CA_AUTH_MAX_CLASSES][64];
} ca_caller;

typedef struct ca_auth ca_auth;
typedef struct ca_auth_ops {
	/* SIGIL_E_UNAUTH for an unknown token. */
	int (*authenticate)(ca_auth *a, const char *token, size_t len, ca_caller *ret, sigil_err *err);
	void (*free)(ca_auth *a);
} ca_auth_ops;
struct ca_auth {
	const ca_auth_ops *ops;
};

/* Tokens file: one "TOKEN NODE-NAME [CLASS,CLASS...]" per line; '#'
 * comments; NODE-NAME "@admin" makes an admin token.  Tokens are compared
 * as SHA-256 digests in constant time.  The file is re-read when it
 * changes (checked at most once a second), so tokens rotate without a
 * restart; a file that becomes unreadable keeps the last good set. */
int ca_auth_tokens_open(const char *path, ca_auth **ret, sigil_err *err) SIGIL_WUR;
/* Parses tokens-file text (exposed for tests and fuzzing); *n entries. */
int ca_auth_tokens_parse(const char *text, size_t len, size_t *n, sigil_err *err) SIGIL_WUR;

static inline int ca_auth_authenticate(ca_auth *a, const char *tok, size_t len, ca_caller *ret,
				       sigil_err *err)
{
	return a->ops->authenticate(a, tok, len, ret, err);
}
void ca_auth_free(ca_auth *a);
bool ca_caller_may_use(const ca_caller *c, const char *class_name);
/* Extracts the token from an "authorization" metadata value ("Bearer X"). */
int ca_auth_bearer(const char *value, size_t len, const char **tok, size_t *tok_len) SIGIL_WUR;
