/* Where the Kubernetes API is and how to authenticate to it.
 *
 * In a pod: the service account (KUBERNETES_SERVICE_HOST/_PORT, the
 * projected token, which the client re-reads when the kubelet rotates it,
 * ca.crt, namespace).  Outside a cluster: a kubeconfig file, with a bearer
 * token (inline or tokenFile) and/or a client certificate (file or inline
 * data), like kubectl.
 *
 * Not supported, refused with a message rather than silently ignored:
 * exec credential plugins, auth-provider, basic auth, impersonation,
 * proxy-url, tls-server-name.  KUBECONFIG naming several files is refused
 * too (no merging). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/mem.h"

/* The projected service account volume in every pod. */
#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
/* A kubeconfig file; real ones are a few KiB, with embedded certs maybe 50. */
#define KUBE_CONFIG_MAX_FILE (1024 * 1024)
/* A bearer token (service account JWTs are ~1 KiB; OIDC ones a few). */
#define KUBE_CONFIG_MAX_TOKEN (64 * 1024)
/* One scalar in a kubeconfig (inline certificate data is the largest). */
#define KUBE_CONFIG_MAX_SCALAR (256 * 1024)
/* The server URL. */
#define KUBE_CONFIG_MAX_URL 2048
/* Nesting and node count of a kubeconfig document. */
#define KUBE_CONFIG_MAX_DEPTH 24
#define KUBE_CONFIG_MAX_NODES 8192
/* A namespace is a DNS label. */
#define KUBE_CONFIG_MAX_NAMESPACE 63

typedef struct kube_config {
	char *server;     /* "https://host:port", no trailing '/' */
	char *ca_file;    /* PEM bundle to verify the server, or NULL */
	uint8_t *ca_data; /* PEM from certificate-authority-data, or NULL */
	size_t ca_data_len;
	bool insecure_skip_tls_verify;
	char *token;      /* bearer token (secret), or NULL */
	char *token_file; /* re-read by the client when it changes, or NULL */
	char *client_cert_file;
	char *client_key_file;
	uint8_t *client_cert_data; /* PEM */
	size_t client_cert_data_len;
	uint8_t *client_key_data; /* PEM (secret) */
	size_t client_key_data_len;
	char *namespace_; /* default namespace: the pod's, or the context's, or "default" */
	char *context;    /* the kubeconfig context used, or "in-cluster" */
} kube_config;

/* Frees and wipes the secrets; accepts NULL. */
void kube_config_free(kube_config *c);
SIGIL_DEFINE_CLEANUP(kube_config, kube_config_free)

/* In-cluster configuration: KUBERNETES_SERVICE_HOST and _PORT from the
 * environment, sa_dir/token (must be readable now; the client re-reads it
 * when it changes), sa_dir/ca.crt (required: we never fall back to the
 * system roots for the apiserver), sa_dir/namespace (optional).  sa_dir
 * NULL means KUBE_SA_DIR.  SIGIL_E_PRECOND when the variables are unset:
 * not running in a pod. */
int kube_config_load_in_cluster(const char *sa_dir, kube_config **ret, sigil_err *err) SIGIL_WUR;

/* Parses kubeconfig YAML text (no file access).  context NULL means
 * current-context.  Relative file names in it (certificate-authority,
 * client-certificate, client-key, tokenFile) are resolved against base_dir
 * as kubectl does (NULL leaves them relative). */
int kube_config_parse_kubeconfig(const char *text, size_t len, const char *base_dir,
                                 const char *context, kube_config **ret, sigil_err *err) SIGIL_WUR;

/* Reads and parses a kubeconfig file, then checks that the files it names
 * are readable and that a tokenFile holds a token. */
int kube_config_load_kubeconfig(const char *path, const char *context, kube_config **ret,
                                sigil_err *err) SIGIL_WUR;

/* What a daemon's --kubeconfig flag means: the given file if path is
 * non-NULL, else in-cluster when KUBERNETES_SERVICE_HOST is set, else
 * $KUBECONFIG (one file), else ~/.kube/config. */
int kube_config_load_default(const char *path, kube_config **ret, sigil_err *err) SIGIL_WUR;

/* Reads a token file: at most KUBE_CONFIG_MAX_TOKEN bytes, trailing white
 * space removed, non-empty, printable ASCII only (it goes into an HTTP
 * header).  *ret is wiped on free by sigil_secret_free. */
int kube_config_read_token(const char *path, char **ret, sigil_err *err) SIGIL_WUR;
