#include "csi/keypool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct csi_keypool {
	pthread_mutex_t lock;
	pthread_cond_t need;   /* signalled when a key was taken or on stop */
	pthread_cond_t filled; /* signalled when a key was added */
	pthread_t thread;
	bool running;
	bool stop;
	size_t depth[SIGIL_KEY__COUNT];
	EVP_PKEY **keys[SIGIL_KEY__COUNT];
	size_t n[SIGIL_KEY__COUNT];
};

/* The first algorithm that is below its depth, or SIGIL_KEY__COUNT. */
static int next_missing(const csi_keypool *p)
{
	for (int a = 0; a < SIGIL_KEY__COUNT; a++)
		if (p->n[a] < p->depth[a])
			return a;
	return SIGIL_KEY__COUNT;
}

static void *refill_main(void *arg)
{
	csi_keypool *p = arg;

	/* Refilling must never compete with publishes for the CPU: this
	 * thread runs at the lowest priority (Linux nice is per thread). */
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		int a = next_missing(p);
		EVP_PKEY *k = NULL;

		if (a == SIGIL_KEY__COUNT) {
			pthread_cond_wait(&p->need, &p->lock);
			continue;
		}
		/* Generate outside the lock: takers must not wait for it. */
		pthread_mutex_unlock(&p->lock);
		if (ca_key_generate((sigil_keyalg)a, &k, NULL) < 0)
			k = NULL;
		pthread_mutex_lock(&p->lock);
		if (!k) {
			/* Out of entropy or memory: back off instead of spinning. */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&p->need, &p->lock, &ts);
			continue;
		}
		if (p->n[a] < p->depth[a] && !p->stop) {
			p->keys[a][p->n[a]++] = k;
			pthread_cond_broadcast(&p->filled);
		} else {
			EVP_PKEY_free(k);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int csi_keypool_new(const size_t depth[SIGIL_KEY__COUNT], csi_keypool **ret, sigil_err *err)
{
	csi_keypool *p = calloc(1, sizeof(*p));
	bool any = false;

	if (!p)
		return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->need, NULL);
	pthread_cond_init(&p->filled, NULL);
	for (int a = 0; a < SIGIL_KEY__COUNT; a++) {
		size_t d = depth ? depth[a] : 0;
		if (d > CSI_KEYPOOL_MAX_DEPTH) {
			csi_keypool_free(p);
			return sigil_err_set(err, SIGIL_E_LIMIT, "key pool depth %zu for %s exceeds %d", d,
					     ca_keyalg_name((sigil_keyalg)a), CSI_KEYPOOL_MAX_DEPTH);
		}
		p->depth[a] = d;
		if (d) {
			p->keys[a] = calloc(d, sizeof(EVP_PKEY *));
			if (!p->keys[a]) {
				csi_keypool_free(p);
				return sigil_err_set(err, SIGIL_E_NOMEM, "out of memory");
			}
			any = true;
		}
	}
	if (any) {
		int e = pthread_create(&p->thread, NULL, refill_main, p);
		if (e) {
			csi_keypool_free(p);
			return sigil_err_errno(err, e, "cannot start the key pool thread");
		}
		p->running = true;
	}
	*ret = p;
	return 0;
}

void csi_keypool_free(csi_keypool *p)
{
	if (!p)
		return;
	if (p->running) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_cond_broadcast(&p->need);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
	}
	for (int a = 0; a < SIGIL_KEY__COUNT; a++) {
		for (size_t i = 0; i < p->n[a]; i++)
			EVP_PKEY_free(p->keys[a][i]); /* OpenSSL clears key material on free */
		free(p->keys[a]);
	}
	pthread_cond_destroy(&p->need);
	pthread_cond_destroy(&p->filled);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int csi_keypool_take(csi_keypool *p, sigil_keyalg alg, EVP_PKEY **ret, bool *from_pool,
		     sigil_err *err)
{
	EVP_PKEY *k = NULL;

	if ((int)alg < 0 || alg >= SIGIL_KEY__COUNT)
		return sigil_err_set(err, SIGIL_E_INVALID, "unknown key algorithm");
	if (p) {
		pthread_mutex_lock(&p->lock);
		if (p->n[alg] > 0) {
			k = p->keys[alg][--p->n[alg]];
			pthread_cond_signal(&p->need);
		}
		pthread_mutex_unlock(&p->lock);
	}
	if (from_pool)
		*from_pool = k != NULL;
	if (k) {
		*ret = k;
		return 0;
	}
	return ca_key_generate(alg, ret, err);
}

size_t csi_keypool_ready(csi_keypool *p, sigil_keyalg alg)
{
	size_t n;

	if (!p || (int)alg < 0 || alg >= SIGIL_KEY__COUNT)
		return 0;
	pthread_mutex_lock(&p->lock);
	n = p->n[alg];
	pthread_mutex_unlock(&p->lock);
	return n;
}

bool csi_keypool_wait_full(csi_keypool *p, int timeout_ms)
{
	struct timespec ts;
	bool full;

	if (!p)
		return true;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	while (next_missing(p) != SIGIL_KEY__COUNT)
		if (pthread_cond_timedwait(&p->filled, &p->lock, &ts) == ETIMEDOUT)
			break;
	full = next_missing(p) == SIGIL_KEY__COUNT;
	pthread_mutex_unlock(&p->lock);
	return full;
}
