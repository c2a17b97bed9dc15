/* jansson keeps copies of everything it parses or builds (Secret data, CA
 * keys read from a Secret store, volume records holding store passwords,
 * bearer tokens in TokenReview bodies) and frees them without wiping.
 * kube_jsonmem_init makes jansson wipe every block it frees.
 *
 * jansson still allocates with plain malloc, so strings it hands out
 * (json_dumps) are freed with free() as before, and blocks allocated before
 * the call are handled too: the free function wipes malloc_usable_size()
 * bytes (glibc) and then frees.  Safe to call at any time, any number of
 * times; the daemons call it first thing in main(). */
#pragma once
#include <stddef.h>

void kube_jsonmem_init(void);

/* The free function itself, exposed for tests. */
void kube_jsonmem_free(void *p);
/* Wipes a malloc'ed block without freeing it (what the free does first). */
void kube_jsonmem_wipe(void *p);
