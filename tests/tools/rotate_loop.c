/* Test program for tests/integration/test_ca_crash.sh: rotates the CA of
 * class "tls" in a directory store in an endless loop, so that the script
 * can kill -9 it at random points and check that the store survives.
 *
 *   rotate_loop DIR          rotate forever (ECDSA P-256, 365-day CAs);
 *                            prints "gen N" once generation N is durable
 *                            and "prune N" before generation N may be
 *                            removed (whenever the set holds more than
 *                            PRUNE_ABOVE generations, the oldest are
 *                            removed down to PRUNE_KEEP, under the lock)
 *   rotate_loop --init DIR   opens the class (creating the first CA) and
 *                            prints "gen N" for each generation
 *   rotate_loop --check DIR  loads the class with autoGenerate off and
 *                            prints "gens: N N N" (ascending)
 *
 * Exit status 0 (only --init/--check return), 1 on any error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/caset.h"
#include "ca/store.h"

#define CLASS "tls"
#define PRUNE_ABOVE 8
#define PRUNE_KEEP 4

static int usage(void)
{
	fprintf(stderr, "usage: rotate_loop [--init|--check] DIR\n");
	return 1;
}

static int fail(const char *what, const sigil_err *err)
{
	fprintf(stderr, "rotate_loop: %s: %s (%s)\n", what, err->msg,
		sigil_errcode_name(err->code));
	return 1;
}

/* Line-buffered and flushed at once: the script reads whatever was
 * printed before the kill, and a line printed means the thing is done. */
static void say(const char *what, uint64_t gen)
{
	printf("%s %llu\n", what, (unsigned long long)gen);
	fflush(stdout);
}

static int prune_oldest(ca_store *store, sigil_err *err)
{
	ca_store_record *recs = NULL;
	size_t n = 0;
	int r;

	r = ca_store_lock(store, CLASS, err);
	if (r < 0)
		return r;
	/* Decide on a fresh load under the lock: another rotate_loop may be
	 * working on the same store. */
	r = ca_store_load(store, CLASS, &recs, &n, err);
	if (r >= 0 && n > PRUNE_ABOVE) {
		for (size_t i = 0; i + PRUNE_KEEP < n; i++) {
			say("prune", recs[i].generation);
			r = ca_store_remove(store, CLASS, recs[i].generation, err);
			if (r < 0)
				break;
		}
	}
	ca_store_unlock(store, CLASS);
	ca_store_records_free(recs, n);
	return r < 0 ? r : 0;
}

int main(int argc, char **argv)
{
	const char *mode = "loop", *dir;
	ca_store *store = NULL;
	ca_set *set = NULL;
	sigil_err err = {0};
	ca_set_config cfg = {
		.class_name = CLASS,
		.key_alg = SIGIL_KEY_ECDSA_P256,
		.ca_lifetime_secs = 365LL * 86400,
		.retirement_secs = 3600,
		.auto_generate = true,
		.clock = NULL,
	};

	if (argc == 3 && (!strcmp(argv[1], "--init") || !strcmp(argv[1], "--check")))
		mode = argv[1] + 2;
	else if (argc != 2 || argv[1][0] == '-')
		return usage();
	dir = argv[argc - 1];
	if (!strcmp(mode, "check"))
		cfg.auto_generate = false;

	if (ca_store_dir_open(dir, &store, &err) < 0)
		return fail("opening store", &err);
	if (ca_set_open(store, &cfg, &set, &err) < 0)
		return fail("opening CA set", &err);
	if (!strcmp(mode, "check")) {
		printf("gens:");
		for (size_t i = 0; i < set->n; i++)
			printf(" %llu", (unsigned long long)set->generations[i]);
		printf("\n");
		ca_set_free(set);
		ca_store_free(store);
		return 0;
	}
	for (size_t i = 0; i < set->n; i++)
		say("gen", set->generations[i]);
	if (!strcmp(mode, "init")) {
		ca_set_free(set);
		ca_store_free(store);
		return 0;
	}
	for (;;) {
		/* Keep the store small, so that a rotation (which re-reads
		 * every generation) stays fast and kills land in writes. */
		if (set->n > PRUNE_ABOVE) {
			bool changed;
			if (prune_oldest(store, &err) < 0)
				return fail("pruning", &err);
			if (ca_set_refresh(set, &changed, &err) < 0)
				return fail("refreshing", &err);
		}
		if (ca_set_rotate_now(set, &err) < 0)
			return fail("rotating", &err);
		say("gen", set->generations[set->n - 1]);
	}
}
