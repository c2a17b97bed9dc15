/* SecretClass objects (DESIGN.md "SecretClass"), from YAML files outside
 * Kubernetes or from the CRD's JSON (issue 6).  Same field names as
 * Stackable's secrets.stackable.tech/v1alpha2 SecretClass, so manifests port
 * by changing apiVersion; sigil adds keyAlgorithm, externalCa and
 * namePolicy. */
#pragma once
#include <stddef.h>

#include "ca/service.h"

#define CA_SECRETCLASS_MAX_YAML (256 * 1024)
#define CA_SECRETCLASS_MAX_DOCS 64
#define CA_SECRETCLASS_API_SIGIL "secrets.sigil.dev/v1alpha1"
#define CA_SECRETCLASS_API_STACKABLE "secrets.stackable.tech/v1alpha2"
/* Stackable's older version, still used by most of its documentation. */
#define CA_SECRETCLASS_API_STACKABLE_V1 "secrets.stackable.tech/v1alpha1"

/* Parses one YAML stream (one or more documents, each a SecretClass) into
 * up to max classes.  Unknown fields under spec are errors naming the
 * field path (a typo must not silently change how certificates are made);
 * unknown metadata fields are ignored.  Errors name the document, the path
 * and the line. */
int ca_secretclass_parse_yaml(const char *text, size_t len, ca_class_config *ret, size_t max,
			      size_t *n, sigil_err *err) SIGIL_WUR;

/* Reads every *.yaml / *.yml file of dir (sorted by name) into classes.
 * A class defined twice is an error naming both files. */
int ca_secretclass_load_dir(const char *dir, ca_class_config *ret, size_t max, size_t *n,
			    sigil_err *err) SIGIL_WUR;
