/* A CA set: the generations of CAs of one SecretClass, with rotation.
 *
 * Rules (issue #2, DESIGN.md):
 * - the signer for a leaf is the OLDEST CA that outlives the leaf's
 *   notAfter plus the retirement duration;
 * - a new CA is generated once the newest one has passed half of its
 *   active life (active life = lifetime - retirement);
 * - the trust bundle is every CA not yet retired (now < notAfter -
 *   retirement: no leaf it signed outlives that point) plus additional
 *   trust roots;
 * - expired CAs are pruned from the store;
 * - rotate-now forces a new generation.
 * All decisions take `now` from an injectable clock.
 *
 * A ca_set is not thread-safe: its owner serialises calls.  Several sets
 * (in one or several processes) may share a store; every change happens
 * under the store's class lock after re-reading the store. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "ca/authority.h"
#include "ca/store.h"
#include "util/clock.h"

/* Limit on additionalTrustRoots of one class. */
#define CA_SET_MAX_TRUST_ROOTS 64

typedef struct ca_set_config {
	const char *class_name;
	sigil_keyalg key_alg;         /* for generated CAs */
	const char *common_name;      /* default "sigil CA <class>" */
	int64_t ca_lifetime_secs;     /* default 365d */
	int64_t retirement_secs;      /* default 1h (Stackable caCertificateRetirementDuration) */
	bool auto_generate;           /* false: the store must already hold a CA */
	const sigil_clock *clock;     /* NULL = real clock */
} ca_set_config;

typedef struct ca_set {
	ca_set_config cfg;
	char *class_name;
	ca_store *store;              /* borrowed */
	ca_authority **cas;           /* ascending generation */
	uint64_t *generations;
	size_t n;
	STACK_OF(X509) *extra_trust;  /* additionalTrustRoots */
	uint64_t version;             /* changes whenever the set changes */
} ca_set;

/* Loads the class from the store, generating the first CA when the store is
 * empty and auto_generate is set, and performing any due rotation and
 * pruning (under the store lock). */
int ca_set_open(ca_store *store, const ca_set_config *cfg, ca_set **ret, sigil_err *err) SIGIL_WUR;
void ca_set_free(ca_set *set);

/* Re-reads the store and rotates/prunes when due; *changed tells whether
 * the set (and so its trust bundle) changed. */
int ca_set_refresh(ca_set *set, bool *changed, sigil_err *err) SIGIL_WUR;
/* Adds a new generation now, whatever the schedule. */
int ca_set_rotate_now(ca_set *set, sigil_err *err) SIGIL_WUR;

/* The signer for a leaf that would end at leaf_not_after; when none outlives
 * it, the newest CA (the caller then caps the leaf lifetime). Borrowed:
 * valid until the next refresh, rotate_now or free of the set. */
const ca_authority *ca_set_signer(const ca_set *set, time_t leaf_not_after);
/* Every CA not yet retired plus additional trust roots (new stack of
 * up-referenced certificates), CAs in ascending generation first.
 * SIGIL_E_PRECOND when every CA is retired (the set was not refreshed for
 * longer than half a CA lifetime). */
int ca_set_trust_bundle(const ca_set *set, STACK_OF(X509) **ret, sigil_err *err) SIGIL_WUR;
/* Takes a reference to each certificate. */
int ca_set_add_trust_roots(ca_set *set, STACK_OF(X509) *roots, sigil_err *err) SIGIL_WUR;
