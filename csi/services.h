/* The CSI Identity, Controller and Node services: protobuf in, calls into
 * csi_node, protobuf out.  Each RPC is a function named after it. */
#pragma once
#include <stddef.h>

#include "csi/node.h"
#include "csi/watch_report.h"
#include "rpc/server.h"

#define CSI_DEFAULT_DRIVER_NAME "secrets.sigil.dev"
#define CSI_MAX_VOLUMES_PER_NODE 0 /* 0 = no limit (CSI spec) */

typedef struct csi_services {
	const char *driver_name;
	const char *version;
	csi_node *node;
	csi_kube *kube;           /* borrowed; NULL without a Kubernetes API:
				   * CreateVolume then copies its parameters */
	int64_t max_volumes_per_node;
	csi_watch_report *report;  /* borrowed; NULL: no publish metrics */
} csi_services;

/* Fills methods (at least CSI_SERVICES_N_METHODS entries) for an rpc_server. */
#define CSI_SERVICES_N_METHODS 11
size_t csi_services_methods(csi_services *s, rpc_method *methods);
