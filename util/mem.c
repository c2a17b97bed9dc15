#include "util/mem.h"

#include <string.h>

#include <openssl/crypto.h>

void sigil_wipe(void *p, size_t len)
{
	if (p && len)
		OPENSSL_cleanse(p, len);
}

void sigil_freezero(void *p, size_t len)
{
	if (!p)
		return;
	sigil_wipe(p, len);
	free(p);
}

void sigil_secret_free(char *s)
{
	if (!s)
		return;
	sigil_freezero(s, strlen(s));
}

void *sigil_calloc(size_t n, size_t size)
{
	if (n == 0 || size == 0)
		n = size = 1;
	return calloc(n, size);
}

char *sigil_strndup(const char *s, size_t n)
{
	char *r = malloc(n + 1);

	if (!r)
		return NULL;
	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}
