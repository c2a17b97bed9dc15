/* sigil-ca's Prometheus metrics (metrics/metrics.h): issuance counters and
 * latency, keytab provisioning, rotations, and the expiry of every CA
 * generation per class and the rotations seen (read from the CA service
 * at scrape time).  Every
 * function accepts a NULL ca_metrics, so callers need no `if`. */
#pragma once
#include <stdbool.h>

#include "ca/server/issuer_service.h"
#include "metrics/metrics.h"
#include "util/err.h"

typedef struct ca_metrics ca_metrics;

/* Registers the families in reg and a collector that reads the CA
 * generations of srv's service (under srv->lock) at every scrape. */
int ca_metrics_new(metrics_registry *reg, issuer_server *srv, ca_metrics **ret,
		   sigil_err *err) SIGIL_WUR;
/* Unregisters the collector; the families stay in the registry. */
void ca_metrics_free(ca_metrics *m);

/* One Issue call: result "success" or "failure", with its duration. */
void ca_metrics_issued(ca_metrics *m, const char *class_name, bool ok, double seconds);
/* One ProvisionKeytab call. */
void ca_metrics_keytab(ca_metrics *m, const char *class_name, bool ok, double seconds);
