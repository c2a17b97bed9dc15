/* Ownership helpers: cleanup attributes, TAKE_PTR, and wiping of secrets
 * (systemd alloc-util.h, OpenSSH freezero). */
#pragma once
#include <stddef.h>
#include <stdlib.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(sigil_freep)
#define _cleanup_secret_str_ _cleanup_(sigil_secret_strp)

/* Hands ownership out of a cleanup variable. */
#define TAKE_PTR(p)                                                            \
	({                                                                     \
		__typeof__(p) _tp_ = (p);                                      \
		(p) = NULL;                                                    \
		_tp_;                                                          \
	})

#define SIGIL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Declares a cleanup function `namep(type **p)` that calls func(*p) for a
 * library destructor that accepts NULL. */
#define SIGIL_DEFINE_CLEANUP(type, func)                                       \
	static inline void func##p(type **p)                                   \
	{                                                                      \
		if (*p)                                                        \
			func(*p);                                              \
	}

static inline void sigil_freep(void *p)
{
	free(*(void **)p);
}

/* Overwrites len bytes in a way the compiler may not elide. */
void sigil_wipe(void *p, size_t len);
/* Wipes then frees; accepts NULL. */
void sigil_freezero(void *p, size_t len);
/* Wipes a NUL-terminated string and frees it; accepts NULL. */
void sigil_secret_free(char *s);
static inline void sigil_secret_strp(char **p)
{
	sigil_secret_free(*p);
}

/* Allocation wrappers that never return NULL for a zero size. */
void *sigil_calloc(size_t n, size_t size);
char *sigil_strndup(const char *s, size_t n);
