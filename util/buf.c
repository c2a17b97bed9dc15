#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"

void sigil_rbuf_init(sigil_rbuf *b, const void *p, size_t len)
{
	b->p = p;
	b->len = p ? len : 0;
	b->off = 0;
}

size_t sigil_rbuf_remaining(const sigil_rbuf *b)
{
	return b->len - b->off;
}

int sigil_rbuf_get_bytes(sigil_rbuf *b, size_t n, const uint8_t **ret)
{
	if (sigil_rbuf_remaining(b) < n)
		return SIGIL_E_INVALID;
	*ret = b->p + b->off;
	b->off += n;
	return 0;
}

int sigil_rbuf_get_u8(sigil_rbuf *b, uint8_t *ret)
{
	const uint8_t *p;

	if (sigil_rbuf_get_bytes(b, 1, &p) < 0)
		return SIGIL_E_INVALID;
	*ret = p[0];
	return 0;
}

int sigil_rbuf_get_u16be(sigil_rbuf *b, uint16_t *ret)
{
	const uint8_t *p;

	if (sigil_rbuf_get_bytes(b, 2, &p) < 0)
		return SIGIL_E_INVALID;
	*ret = (uint16_t)((p[0] << 8) | p[1]);
	return 0;
}

int sigil_rbuf_get_u32be(sigil_rbuf *b, uint32_t *ret)
{
	const uint8_t *p;

	if (sigil_rbuf_get_bytes(b, 4, &p) < 0)
		return SIGIL_E_INVALID;
	*ret = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
	return 0;
}

int sigil_rbuf_get_u64be(sigil_rbuf *b, uint64_t *ret)
{
	const uint8_t *p;
	uint64_t v = 0;

	if (sigil_rbuf_get_bytes(b, 8, &p) < 0)
		return SIGIL_E_INVALID;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	*ret = v;
	return 0;
}

void sigil_wbuf_init(sigil_wbuf *b, size_t max, bool secret)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
	b->secret = secret;
}

static int wbuf_reserve(sigil_wbuf *b, size_t n)
{
	size_t need, cap;
	uint8_t *np;

	if (b->failed)
		return b->failed;
	if (n > b->max || b->len > b->max - n)
		return b->failed = SIGIL_E_LIMIT;
	need = b->len + n + 1; /* room for a terminating NUL */
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	np = malloc(cap);
	if (!np)
		return b->failed = SIGIL_E_NOMEM;
	if (b->p) {
		memcpy(np, b->p, b->len);
		if (b->secret)
			sigil_wipe(b->p, b->cap);
		free(b->p);
	}
	b->p = np;
	b->cap = cap;
	return 0;
}

int sigil_wbuf_put(sigil_wbuf *b, const void *p, size_t n)
{
	int r = wbuf_reserve(b, n);

	if (r < 0)
		return r;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int sigil_wbuf_put_u8(sigil_wbuf *b, uint8_t v)
{
	return sigil_wbuf_put(b, &v, 1);
}

int sigil_wbuf_put_u16be(sigil_wbuf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	return sigil_wbuf_put(b, x, 2);
}

int sigil_wbuf_put_u32be(sigil_wbuf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	return sigil_wbuf_put(b, x, 4);
}

int sigil_wbuf_put_u64be(sigil_wbuf *b, uint64_t v)
{
	int r = sigil_wbuf_put_u32be(b, (uint32_t)(v >> 32));

	return r < 0 ? r : sigil_wbuf_put_u32be(b, (uint32_t)v);
}

int sigil_wbuf_putf(sigil_wbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	int r;

	if (b->failed)
		return b->failed;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return b->failed = SIGIL_E_INTERNAL;
	r = wbuf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int sigil_wbuf_status(const sigil_wbuf *b)
{
	return b->failed;
}

uint8_t *sigil_wbuf_steal(sigil_wbuf *b, size_t *len)
{
	uint8_t *p = b->p;

	if (!p)
		p = calloc(1, 1);
	if (len)
		*len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

void sigil_wbuf_free(sigil_wbuf *b)
{
	if (b->p) {
		if (b->secret)
			sigil_wipe(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
}
