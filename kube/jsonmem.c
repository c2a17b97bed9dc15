#include "kube/jsonmem.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include <jansson.h>

#include "util/mem.h"

void kube_jsonmem_wipe(void *p)
{
	if (p)
		sigil_wipe(p, malloc_usable_size(p));
}

void kube_jsonmem_free(void *p)
{
	kube_jsonmem_wipe(p);
	free(p);
}

static void jsonmem_setup(void)
{
	json_set_alloc_funcs(malloc, kube_jsonmem_free);
}

void kube_jsonmem_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, jsonmem_setup);
}
