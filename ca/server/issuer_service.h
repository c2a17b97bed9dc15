/* The sigil.v1.Issuer gRPC service: authentication, authorisation and
 * protobuf around ca_service.  Each RPC is a function named after it. */
#pragma once
#include <pthread.h>

#include "ca/server/auth.h"
#include "ca/service.h"
#include "kube/client.h"
#include "rpc/server.h"

#define ISSUER_N_METHODS 6

typedef struct issuer_server {
	pthread_rwlock_t lock; /* guards svc against a class reload swapping it */
	ca_service *svc;
	ca_auth *auth;
	/* With a Kubernetes API (borrowed; NULL standalone), Issue and
	 * ProvisionKeytab resolve the pod themselves: it must exist, run on
	 * the caller's node, and match the request's uid; its names come from
	 * the API, not from the node. */
	kube_client *kube;
	/* Prometheus metrics (ca/server/ca_metrics.h); NULL: none. */
	struct ca_metrics *metrics;
} issuer_server;

size_t issuer_server_methods(issuer_server *s, rpc_method *methods);
/* Replaces the service (class reload); frees the old one once no call uses it. */
void issuer_server_swap(issuer_server *s, ca_service *svc);
