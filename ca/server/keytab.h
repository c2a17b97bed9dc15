/* Kerberos volumes on the CA side (the ProvisionKeytab RPC): which
 * principals a volume gets, the krb5.conf that goes next to its keytab,
 * and the keytab itself from kadmind.
 *
 * Principals are "{service}/{name}@{REALM}" for every service name and
 * every DNS name the volume's scopes give (DESIGN.md "Volume API"; IP
 * addresses are skipped: a principal names a host, and MIT clients never
 * ask for service tickets to an address once rdns is off).  The CA decides
 * the names from the scopes and the authenticated node, as it does for
 * certificates; the node never names a principal.
 *
 * Two steps, so that the slow one runs without the service lock (a class
 * reload must not wait for a kadmind that hangs): issuer_keytab_plan reads
 * the class and decides and checks everything, so that nothing malformed
 * ever reaches kadmind; issuer_keytab_run talks to kadmind. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ca/scopes.h"
#include "ca/service.h"
#include "util/err.h"
#include "util/mem.h"

/* Service names per volume (kerberos.service.names). */
#define ISSUER_KEYTAB_MAX_SERVICE_NAMES 16

typedef struct issuer_keytab_request {
	const char *class_name;
	const ca_identity *identity; /* cluster_domain is taken from the service */
	const ca_scope *scopes;
	size_t n_scopes;
	const char *const *service_names; /* at least one */
	size_t n_service_names;
	bool public_only; /* provision-parts=public: krb5.conf only */
} issuer_keytab_request;

typedef struct issuer_keytab_plan {
	char class_name[CA_STORE_MAX_CLASS_LEN + 1];
	ca_kerberos_config kerberos;
	char *admin_keytab; /* resolved absolute path */
	char *krb5_conf;    /* rendered, NUL-terminated */
	size_t krb5_conf_len;
	char **principals; /* "{service}/{host}@{REALM}"; none when public_only */
	size_t n_principals;
	bool public_only;
} issuer_keytab_plan;

/* Errors: SIGIL_E_NOTFOUND for an unknown class; SIGIL_E_INVALID for a
 * class that is not kerberosKeytab, a malformed service name, scopes that
 * give no host name, or a name kadmind must not see (SIGIL_E_LIMIT for too
 * many); SIGIL_E_PRECOND for a scope the CA lacks facts for or an admin
 * keytab it cannot locate. */
int issuer_keytab_plan_new(ca_service *svc, const issuer_keytab_request *req,
                           issuer_keytab_plan **ret, sigil_err *err) SIGIL_WUR;
void issuer_keytab_plan_free(issuer_keytab_plan *p);
SIGIL_DEFINE_CLEANUP(issuer_keytab_plan, issuer_keytab_plan_free)

/* Makes sure every principal of the plan exists (created with random keys
 * when missing, never re-keyed) and returns a keytab with all their keys
 * (every enctype and kvno).  *ret_keytab is secret: free it with
 * sigil_freezero.  A public_only plan returns NULL/0 without contacting
 * anyone.  timeout_ms bounds the whole kadmind exchange (0: default).
 *
 * Errors: SIGIL_E_UNAVAIL when the KDC or kadmind is down or does not
 * answer; SIGIL_E_PRECOND when the admin credentials of the class are
 * wrong or kadm5.acl lacks a privilege (the message says which); others as
 * kerberos_provision. */
int issuer_keytab_run(const issuer_keytab_plan *p, int64_t timeout_ms, uint8_t **ret_keytab,
                      size_t *ret_len, sigil_err *err) SIGIL_WUR;
