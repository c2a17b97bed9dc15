#!/usr/bin/python3
"""deploy/ checked against itself and against sigil.

No cluster (and no helm binary) exists here, so this test checks what can be
checked without one:
- every YAML file parses; kinds, apiVersions, names and namespaces agree;
  ServiceAccounts, Roles, volumes, ports, probes, selectors referenced exist;
- the CSIDriver name is the driver name sigil-csi reports (source constant
  and a live GetPluginInfo), the flags in the manifests are flags the
  programs have (their getopt tables), the paths they mount are the paths
  the flags name;
- RBAC: no wildcards, the rules each code path needs, nothing more than
  listed (an evaluator answers "may SA do VERB on RESOURCE");
- the CRD schemas are structural, their limits are sigil's limits, they
  accept the example SecretClasses and every field name that tests/ feeds to
  sigil's SecretClass parser (any name the CRD lacks must be one sigil
  itself rejects as an unknown field);
- the PrometheusRule uses only metric names the daemons export;
- the Helm chart renders (a tiny renderer for the few template constructs
  the chart may use; anything else fails) to exactly the plain manifests
  with the default values, and with every option on to consistent objects;
- the example SecretClasses and the default `tls` class load into a real
  sigil-ca, and the example pods' volume attributes publish through a real
  sigil-csi against it (sigilctl speaks CSI as the kubelet does).
"""
import copy
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

BUILD = os.environ["SIGIL_BUILD_DIR"]
SOURCE = os.environ.get("SIGIL_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(SOURCE, "deploy")
MANIFESTS = os.path.join(DEPLOY, "manifests")
CHART = os.path.join(DEPLOY, "helm", "sigil")
FAILURES = []
PASSES = [0]


def check(cond, what, detail=None):
    if cond:
        PASSES[0] += 1
        print("ok   -", what)
    else:
        FAILURES.append(what)
        print("FAIL -", what + (": " + str(detail) if detail is not None else ""))
    return cond


def read(path, errors="strict"):
    with open(path, encoding="utf-8", errors=errors) as f:
        return f.read()


def src(rel):
    return read(os.path.join(SOURCE, rel))


def c_define(rel, name):
    m = re.search(r"#define\s+" + name + r"\s+(\S+)", src(rel))
    if not m:
        raise SystemExit("cannot find #define %s in %s" % (name, rel))
    v = m.group(1).strip('"')
    return int(v) if v.isdigit() else v


def load_docs(path):
    return [d for d in yaml.safe_load_all(read(path)) if d is not None]


def yaml_files(root):
    out = []
    for d, _, files in os.walk(root):
        for f in sorted(files):
            if f.endswith((".yaml", ".yml")):
                out.append(os.path.join(d, f))
    return sorted(out)


def key(o):
    return (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])


# ---- facts from sigil's sources ---------------------------------------------

DRIVER = c_define("csi/services.h", "CSI_DEFAULT_DRIVER_NAME")
ATTR_PREFIX = c_define("csi/attrs.h", "CSI_ATTR_PREFIX")
ATTR_PREFIX_STACKABLE = c_define("csi/attrs.h", "CSI_ATTR_PREFIX_STACKABLE")
MAX_TRUST_ROOTS = c_define("ca/service.h", "CA_CLASS_MAX_TRUST_ROOTS")
MAX_DOMAINS = c_define("ca/service.h", "CA_CLASS_MAX_DOMAINS")
MAX_CLASS_LEN = c_define("ca/store.h", "CA_STORE_MAX_CLASS_LEN")
KEY_ALGS = re.findall(r'\{\s*SIGIL_KEY_\w+,\s*"([a-z0-9-]+)"', src("ca/key.c"))
# csi/attrs.c attr_table: name, secret, sigil_only
ATTRS = {m.group(1): m.group(2) == "true" for m in re.finditer(
    r'\[A_\w+\]\s*=\s*\{"([^"]+)",\s*(?:true|false),\s*(true|false)\}', src("csi/attrs.c"))}
PROGRAM_SOURCES = {"sigil-csi": "csi/main.c", "sigil-ca": "ca/server/main.c"}


def long_options(rel):
    return {m.group(1): m.group(2) for m in re.finditer(
        r'\{"([a-z0-9-]+)",\s*(no_argument|required_argument|optional_argument)', src(rel))}


# Names the daemons export (issue 7; the brief of this deploy/ directory).
METRICS = {
    "sigil_volume_not_after_seconds", "sigil_renewals_total", "sigil_evictions_total",
    "sigil_publishes_total", "sigil_publish_duration_seconds", "sigil_key_pool_depth",
    "sigil_trust_bundle_updates_total", "sigil_ca_issued_total",
    "sigil_ca_issue_duration_seconds", "sigil_ca_not_after_seconds", "sigil_ca_rotations_total",
}
HISTOGRAMS = {"sigil_publish_duration_seconds", "sigil_ca_issue_duration_seconds"}

# ---- 1. every YAML parses, kinds and apiVersions -------------------------------

API_OF_KIND = {
    "Namespace": "v1", "ServiceAccount": "v1", "Service": "v1", "Pod": "v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1", "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1", "CSIDriver": "storage.k8s.io/v1",
    "StorageClass": "storage.k8s.io/v1", "Deployment": "apps/v1", "DaemonSet": "apps/v1",
    "PodDisruptionBudget": "policy/v1", "SecretClass": "secrets.sigil.dev/v1alpha1",
    "TrustStore": "secrets.sigil.dev/v1alpha1", "PodMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "CSIDriver", "StorageClass", "SecretClass"}

plain_files = [p for p in yaml_files(DEPLOY) if "/helm/sigil/templates/" not in p]
ALL = {}  # path -> docs
for p in plain_files:
    rel = os.path.relpath(p, SOURCE)
    try:
        docs = load_docs(p)
    except yaml.YAMLError as e:
        check(False, "%s parses as YAML" % rel, e)
        continue
    ALL[p] = docs
    bad = []
    for d in docs:
        if os.path.basename(p) == "values.yaml" or p.endswith("Chart.yaml") or "/files/" in p:
            continue
        if not isinstance(d, dict) or "kind" not in d or "metadata" not in d or "name" not in d["metadata"]:
            bad.append("not an object with kind and metadata.name")
            continue
        want = API_OF_KIND.get(d["kind"])
        if want is None:
            bad.append("unexpected kind %s" % d["kind"])
        elif d.get("apiVersion") != want:
            bad.append("%s %s has apiVersion %s, want %s" % (d["kind"], d["metadata"]["name"], d.get("apiVersion"), want))
        ns = d["metadata"].get("namespace")
        if d["kind"] in CLUSTER_SCOPED and ns is not None:
            bad.append("%s %s is cluster-scoped but has a namespace" % (d["kind"], d["metadata"]["name"]))
        if d["kind"] not in CLUSTER_SCOPED and ns is None:
            bad.append("%s %s has no namespace" % (d["kind"], d["metadata"]["name"]))
    check(not bad and docs, "%s: %d documents parse, kinds and apiVersions known" % (rel, len(docs)), bad)

MAN = []  # the plain manifests applied by `kubectl apply -f deploy/manifests/`
for p in sorted(os.listdir(MANIFESTS)):
    if p.endswith(".yaml"):
        MAN += ALL.get(os.path.join(MANIFESTS, p), [])
OPTIONAL = ALL.get(os.path.join(MANIFESTS, "optional", "stackable-compat.yaml"), [])
EXAMPLES = {os.path.basename(p): ALL[p] for p in ALL if "/deploy/examples/" in p}
ALERTS = {os.path.basename(p): ALL[p] for p in ALL if "/deploy/alerts/" in p}
keys = [key(o) for o in MAN]
check(len(keys) == len(set(keys)), "no object is defined twice in deploy/manifests",
      [k for k in keys if keys.count(k) > 1])

NAMESPACE = [o for o in MAN if o["kind"] == "Namespace"]
check(len(NAMESPACE) == 1, "deploy/manifests has one Namespace")
NS = NAMESPACE[0]["metadata"]["name"]
check(NAMESPACE[0]["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "privileged",
      "the namespace admits the privileged sigil-csi (Pod Security Admission)")
check(all(o["metadata"].get("namespace") in (None, NS) for o in MAN),
      "every namespaced manifest object is in namespace %s" % NS)


def find(objs, kind, name=None, ns=None):
    out = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
           and (ns is None or o["metadata"].get("namespace") == ns)]
    return out


# ---- 2. CSIDriver, StorageClass, driver name ---------------------------------

def check_driver(objs, label):
    drv = find(objs, "CSIDriver")
    check(len(drv) == 1 and drv[0]["metadata"]["name"] == DRIVER,
          "%s: CSIDriver is named %s (csi/services.h CSI_DEFAULT_DRIVER_NAME)" % (label, DRIVER))
    if drv:
        s = drv[0]["spec"]
        check(s.get("podInfoOnMount") is True and s.get("attachRequired") is False,
              "%s: CSIDriver podInfoOnMount true, attachRequired false" % label)
        check(sorted(s.get("volumeLifecycleModes", [])) == ["Ephemeral", "Persistent"],
              "%s: CSIDriver serves inline (Ephemeral) and volumeClaimTemplate (Persistent) volumes" % label)
        # The kubelet passes fsGroup to a VOLUME_MOUNT_GROUP driver only under File.
        check(s.get("fsGroupPolicy") == "File" and
              "NODE_SERVICE_CAPABILITY__RPC__TYPE__VOLUME_MOUNT_GROUP" in src("csi/services.c"),
              "%s: fsGroupPolicy File matches sigil-csi's VOLUME_MOUNT_GROUP capability" % label)
    sc = [o for o in find(objs, "StorageClass") if o["metadata"]["name"] == DRIVER]
    check(len(sc) == 1 and sc[0]["provisioner"] == DRIVER and sc[0].get("volumeBindingMode") == "WaitForFirstConsumer",
          "%s: StorageClass %s is provisioned by the driver, WaitForFirstConsumer" % (label, DRIVER))


check_driver(MAN, "manifests")
check(len(OPTIONAL) == 1 and OPTIONAL[0]["kind"] == "StorageClass" and
      OPTIONAL[0]["metadata"]["name"] == "secrets.stackable.tech" and OPTIONAL[0]["provisioner"] == DRIVER,
      "optional/stackable-compat.yaml: StorageClass secrets.stackable.tech provisioned by sigil")

# ---- 3. RBAC ------------------------------------------------------------------


def rbac_problems(objs):
    """Wildcards and dangerous verbs anywhere, and dangling references."""
    bad = []
    sas = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in find(objs, "ServiceAccount")}
    for o in objs:
        if o["kind"] in ("ClusterRole", "Role"):
            for r in o.get("rules", []):
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    for v in r.get(field, []):
                        if "*" in v:
                            bad.append("%s %s: wildcard in %s" % (o["kind"], o["metadata"]["name"], field))
                if "nonResourceURLs" in r:
                    bad.append("%s %s: nonResourceURLs" % (o["kind"], o["metadata"]["name"]))
                for v in r.get("verbs", []):
                    if v in ("escalate", "bind", "impersonate", "deletecollection"):
                        bad.append("%s %s: verb %s" % (o["kind"], o["metadata"]["name"], v))
                if not r.get("verbs") or not r.get("resources") or "apiGroups" not in r:
                    bad.append("%s %s: incomplete rule %s" % (o["kind"], o["metadata"]["name"], r))
            if "aggregationRule" in o:
                bad.append("%s %s: aggregationRule" % (o["kind"], o["metadata"]["name"]))
        if o["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            ref = o["roleRef"]
            if o["kind"] == "RoleBinding" and ref["kind"] == "Role":
                target = find(objs, "Role", ref["name"], o["metadata"]["namespace"])
            else:
                target = find(objs, ref["kind"], ref["name"])
            if not target:
                bad.append("%s %s: roleRef %s %s does not exist" % (o["kind"], o["metadata"]["name"], ref["kind"], ref["name"]))
            for s in o.get("subjects", []):
                if s["kind"] != "ServiceAccount":
                    bad.append("%s %s: subject kind %s" % (o["kind"], o["metadata"]["name"], s["kind"]))
                elif (s.get("namespace"), s["name"]) not in sas:
                    bad.append("%s %s: ServiceAccount %s/%s does not exist" % (o["kind"], o["metadata"]["name"], s.get("namespace"), s["name"]))
    return bad


def allowed(objs, sa_ns, sa, group, resource, verb, ns=None, name=None):
    """Would the apiserver's RBAC authorizer allow it?  ns None: a
    cluster-wide request (list all namespaces, or a cluster-scoped object)."""
    for b in objs:
        if b["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa and s.get("namespace") == sa_ns
                   for s in b.get("subjects", [])):
            continue
        if b["kind"] == "RoleBinding" and b["metadata"]["namespace"] != ns:
            continue
        ref = b["roleRef"]
        roles = (find(objs, "Role", ref["name"], b["metadata"]["namespace"]) if ref["kind"] == "Role"
                 else find(objs, "ClusterRole", ref["name"]))
        for role in roles:
            for r in role.get("rules", []):
                if group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]:
                    if "resourceNames" in r and (name is None or name not in r["resourceNames"]):
                        continue
                    return True
    return False


def check_rbac(objs, label, ns):
    check(not rbac_problems(objs), "%s: RBAC has no wildcards, no dangerous verbs, no dangling references" % label,
          rbac_problems(objs))
    A = lambda sa, *a, **k: allowed(objs, ns, sa, *a, **k)  # noqa: E731
    need_csi = [("", "pods", "get"), ("", "pods", "patch"), ("", "pods/eviction", "create"),
                ("", "nodes", "get"), ("", "persistentvolumeclaims", "get"), ("", "events", "create"),
                # external-provisioner sidecar
                ("", "persistentvolumes", "create"), ("", "persistentvolumes", "delete"),
                ("", "persistentvolumeclaims", "watch"), ("", "persistentvolumeclaims", "update"),
                ("storage.k8s.io", "storageclasses", "watch"), ("storage.k8s.io", "csinodes", "get"),
                ("", "nodes", "list")]
    missing = [n for n in need_csi if not A("sigil-csi", *n, ns="default")]
    check(not missing, "%s: sigil-csi may do what its code paths and the provisioner need" % label, missing)
    need_ca = [("authentication.k8s.io", "tokenreviews", "create"), ("", "pods", "get"), ("", "nodes", "get"),
               ("", "persistentvolumeclaims", "get"), ("listeners.stackable.tech", "listeners", "get"),
               ("secrets.sigil.dev", "secretclasses", "get"), ("secrets.sigil.dev", "secretclasses", "list"),
               ("secrets.sigil.dev", "secretclasses", "watch"), ("secrets.stackable.tech", "secretclasses", "watch"),
               ("secrets.sigil.dev", "truststores", "list"), ("secrets.sigil.dev", "truststores", "watch"),
               ("secrets.stackable.tech", "truststores", "watch"), ("", "events", "create")]
    missing = [n for n in need_ca if not A("sigil-ca", *n)]
    for verb in ("get", "create", "update"):  # TrustStore targets in any namespace
        for res in ("configmaps", "secrets"):
            if not A("sigil-ca", "", res, verb, ns="team-a", name="tls-trust"):
                missing.append((res, verb, "team-a"))
    # TrustStore targets are read by name (ca/server/truststore.c): no list,
    # watch or delete of ConfigMaps and Secrets; see the forbidden list.
    # The CA store (Secret sigil-ca-<class>) and its Lease sigil-ca-<class>-lock.
    for n in [("", "secrets", "get"), ("", "secrets", "create"), ("", "secrets", "update"),
              ("coordination.k8s.io", "leases", "get"), ("coordination.k8s.io", "leases", "create"),
              ("coordination.k8s.io", "leases", "update")]:
        if not A("sigil-ca", *n, ns=ns, name="sigil-ca-tls" if n[1] == "secrets" else "sigil-ca-tls-lock"):
            missing.append(n + (ns,))
    if not A("sigil-ca", "", "configmaps", "update", ns=ns, name="sigil-ca-bundle"):
        missing.append(("configmaps", "update", "sigil-ca-bundle"))
    check(not missing, "%s: sigil-ca may do what its code paths need" % label, missing)
    # Least privilege: what they must not do.
    forbidden = [("sigil-csi", "", "secrets", "get", "default"), ("sigil-csi", "", "pods", "delete", "default"),
                 ("sigil-csi", "", "configmaps", "get", "default"), ("sigil-csi", "", "pods", "list", None),
                 ("sigil-csi", "coordination.k8s.io", "leases", "create", ns),
                 ("sigil-ca", "", "secrets", "patch", ns), ("sigil-ca", "", "pods", "patch", "default"),
                 ("sigil-ca", "", "pods/eviction", "create", "default"), ("sigil-ca", "", "pods", "list", None),
                 ("sigil-ca", "coordination.k8s.io", "leases", "create", "default"),
                 ("sigil-ca", "coordination.k8s.io", "leases", "delete", ns),
                 ("sigil-ca", "secrets.sigil.dev", "secretclasses", "update", None),
                 ("sigil-ca", "secrets.sigil.dev", "truststores", "update", "default")]
    forbidden += [("sigil-admin", g, r, v, n) for (g, r, v) in need_ca for n in (None, ns)]
    granted = [f for f in forbidden if allowed(objs, ns, f[0], f[1], f[2], f[3], ns=f[4])]
    check(not granted, "%s: nothing beyond that (no Secrets for sigil-csi, no pod writes or "
          "Leases elsewhere for sigil-ca, no permissions for sigil-admin)" % label, granted)
    # sigil-ca must not be able to read every Secret in the cluster: no list
    # or watch of ConfigMaps or Secrets anywhere (not even its own
    # namespace: the CA store reads its Secrets by name), and no delete.
    no_read_all = [("sigil-ca", "", r, v, n) for r in ("secrets", "configmaps")
                   for v in ("list", "watch", "delete", "deletecollection", "patch")
                   for n in (None, "team-a", ns)]
    granted = [f for f in no_read_all if allowed(objs, ns, f[0], f[1], f[2], f[3], ns=f[4], name="tls-trust")]
    granted += [f for f in no_read_all if f[4] is not None and
                allowed(objs, ns, f[0], f[1], f[2], f[3], ns=f[4])]
    check(not granted, "%s: sigil-ca may not list, watch, delete or patch ConfigMaps and Secrets "
          "(TrustStore targets and the CA store are read by name)" % label, granted)


check_rbac(MAN, "manifests", NS)
rule_comments = re.findall(r"\n(\s*#[^\n]*\n)+\s*- apiGroups:", src("deploy/manifests/03-rbac-csi.yaml") +
                           src("deploy/manifests/04-rbac-ca.yaml"))
n_rules = sum(len(o.get("rules", [])) for o in MAN if o["kind"] in ("ClusterRole", "Role"))
check(len(rule_comments) >= n_rules - 6,  # a few consecutive rules share one comment
      "RBAC rules are commented with the code path that needs them (%d comments, %d rules)"
      % (len(rule_comments), n_rules))

# ---- 4. workloads: flags, mounts, ports, identities ------------------------------


def args_of(c):
    out = {}
    for a in c.get("args", []):
        if a.startswith("--"):
            k, _, v = a[2:].partition("=")
            out.setdefault(k, []).append(v if "=" in a else None)
    return out


def container(objs, kind, name, cname):
    w = find(objs, kind, name)
    if not w:
        return None, None
    for c in w[0]["spec"]["template"]["spec"]["containers"]:
        if c["name"] == cname:
            return w[0], c
    return w[0], None


def mount_for(pod, c, path):
    """The volume a file path inside container c comes from."""
    m = None
    for cand in c.get("volumeMounts", []):
        mp = cand["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if m is None or len(mp) > len(m["mountPath"].rstrip("/")):
                m = cand
    if m is None:
        return None, None
    vols = [v for v in pod.get("volumes", []) if v["name"] == m["name"]]
    return m, (vols[0] if vols else None)


def check_workloads(objs, label, ns, domain="cluster.local"):
    ds, csi = container(objs, "DaemonSet", "sigil-csi", "sigil-csi")
    dep, ca = container(objs, "Deployment", "sigil-ca", "sigil-ca")
    if not check(csi is not None and ca is not None, "%s: DaemonSet sigil-csi and Deployment sigil-ca exist" % label):
        return
    for w, c, prog in ((ds, csi, "sigil-csi"), (dep, ca, "sigil-ca")):
        spec = w["spec"]["template"]["spec"]
        check(find(objs, "ServiceAccount", spec["serviceAccountName"], ns) != [],
              "%s: %s's ServiceAccount %s exists" % (label, prog, spec["serviceAccountName"]))
        sel = w["spec"]["selector"]["matchLabels"]
        check(all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items()),
              "%s: %s's selector matches its pod labels" % (label, prog))
        check(c["command"] == ["/usr/local/bin/" + prog], "%s: %s runs /usr/local/bin/%s" % (label, prog, prog))
        opts = long_options(PROGRAM_SOURCES[prog])
        bad = []
        for k, vals in args_of(c).items():
            if k not in opts:
                bad.append("--%s is not an option of %s (%s)" % (k, prog, PROGRAM_SOURCES[prog]))
                continue
            for v in vals:
                if (v is None) != (opts[k] == "no_argument"):
                    bad.append("--%s %s" % (k, "needs a value" if v is None else "takes no value"))
        check(not bad, "%s: every %s flag in the manifest is one %s accepts" % (label, prog, prog), bad)
        names = {m["name"] for m in c.get("volumeMounts", [])}
        vols = {v["name"] for v in spec.get("volumes", [])}
        check(names <= vols, "%s: %s mounts only volumes its pod defines" % (label, prog), names - vols)
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        probes = [c.get(p) for p in ("livenessProbe", "readinessProbe") if c.get(p)]
        check(all(p["httpGet"]["port"] in ports for p in probes) and probes,
              "%s: %s's probes use its named ports" % (label, prog))
        maddr = args_of(c).get("metrics-addr", [None])[0]
        check(maddr is not None and int(maddr.rsplit(":", 1)[1]) == ports.get("metrics"),
              "%s: %s's --metrics-addr is its metrics port" % (label, prog))
        # Read-only root: everything it writes is a mounted volume.
        check(c["securityContext"].get("readOnlyRootFilesystem") is True and
              mount_for(spec, c, "/tmp")[1] is not None,
              "%s: %s has a read-only root and a writable /tmp" % (label, prog))
        state = args_of(c)["state-dir"][0]
        m, v = mount_for(spec, c, state)
        check(m is not None and not m.get("readOnly"), "%s: %s's --state-dir is a writable volume" % (label, prog))
    a = args_of(csi)
    pod = ds["spec"]["template"]["spec"]
    # Identity: the projected token sigil-ca reviews.
    tok = a.get("token-file", [None])[0]
    m, v = mount_for(pod, csi, tok or "/nonexistent")
    src_ = (v or {}).get("projected", {}).get("sources", [{}])
    sat = [s["serviceAccountToken"] for s in src_ if "serviceAccountToken" in s]
    ca_args = args_of(ca)
    check(sat and tok == m["mountPath"].rstrip("/") + "/" + sat[0]["path"] and
          sat[0].get("audience") == ca_args.get("token-audience", [None])[0] == "sigil-ca" and
          sat[0].get("expirationSeconds") == 3600,
          "%s: --token-file is the pod's projected token, audience sigil-ca, 3600s" % label)
    check(ca_args.get("node-service-account") == ["%s/%s" % (ns, pod["serviceAccountName"])],
          "%s: sigil-ca trusts sigil-csi's ServiceAccount (--node-service-account)" % label)
    adm = ca_args.get("admin-service-account", [""])[0].split("/")
    check(len(adm) == 2 and adm[0] == ns and find(objs, "ServiceAccount", adm[1], ns) != [],
          "%s: --admin-service-account names an existing ServiceAccount" % label)
    bundle = a.get("ca-bundle", [None])[0]
    m, v = mount_for(pod, csi, bundle or "/nonexistent")
    cm = (v or {}).get("configMap", {})
    check(cm.get("name") == "sigil-ca-bundle" and bundle == m["mountPath"].rstrip("/") + "/ca.crt" and
          any(i["key"] == "ca.crt" and i["path"] == "ca.crt" for i in cm.get("items", [{"key": "ca.crt", "path": "ca.crt"}])),
          "%s: --ca-bundle is key ca.crt of ConfigMap sigil-ca-bundle" % label)
    ep = a.get("ca-endpoint", [""])[0]
    host, _, port = ep.rpartition(":")
    svc = find(objs, "Service", "sigil-ca", ns)
    check(host == "sigil-ca.%s.svc" % ns and svc and
          any(p["port"] == int(port) and p["targetPort"] == "grpc" for p in svc[0]["spec"]["ports"]) and
          ca_args["listen"][0].endswith(":" + port),
          "%s: --ca-endpoint is the sigil-ca Service's grpc port" % label)
    check(host in ca_args.get("server-name", []) and "%s.%s" % (host, domain) in ca_args.get("server-name", []),
          "%s: sigil-ca's serving certificate names what sigil-csi dials" % label)
    check(svc and all(dep["spec"]["template"]["metadata"]["labels"].get(k) == v
                      for k, v in svc[0]["spec"]["selector"].items()),
          "%s: Service sigil-ca selects the sigil-ca pods" % label)
    pdb = find(objs, "PodDisruptionBudget", "sigil-ca", ns)
    check(pdb and pdb[0]["spec"]["selector"] == dep["spec"]["selector"], "%s: PDB sigil-ca selects its pods" % label)
    check(a.get("cluster-domain") == [domain] and ca_args.get("cluster-domain") == [domain],
          "%s: both daemons use cluster domain %s" % (label, domain))
    # CSI plumbing
    env = {e["name"]: e for e in csi.get("env", [])}
    check(env.get("KUBERNETES_NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName"
          and "KUBERNETES_NODE_NAME" in src("csi/main.c"),
          "%s: the node id comes from spec.nodeName ($KUBERNETES_NODE_NAME)" % label)
    sock = a["endpoint"][0].replace("unix://", "")
    m, v = mount_for(pod, csi, sock)
    plugin_host = v["hostPath"]["path"].rstrip("/")
    _, reg = container(objs, "DaemonSet", "sigil-csi", "node-driver-registrar")
    _, prov = container(objs, "DaemonSet", "sigil-csi", "external-provisioner")
    ra, pa = args_of(reg), args_of(prov)
    check(plugin_host.endswith("/plugins/" + DRIVER) and
          ra["kubelet-registration-path"] == [plugin_host + sock[len(m["mountPath"].rstrip("/")):]] and
          ra["csi-address"] == [sock] and pa["csi-address"] == [sock] and
          mount_for(pod, reg, sock)[1]["name"] == v["name"] == mount_for(pod, prov, sock)[1]["name"],
          "%s: sigil-csi, registrar and provisioner share the socket the kubelet is told about" % label)
    m, v = mount_for(pod, reg, "/registration")
    check(v and v["hostPath"]["path"].rstrip("/").endswith("/plugins_registry"),
          "%s: the registrar writes into the kubelet's plugins_registry" % label)
    penv = {e["name"]: e for e in prov.get("env", [])}
    check("extra-create-metadata" in pa and "node-deployment" in pa and
          penv.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName",
          "%s: external-provisioner: --extra-create-metadata, per-node (--node-deployment, NODE_NAME)" % label)
    check("CSI_KUBE_PARAM_PVC_NAME" in src("csi/kube.h"),
          "%s: sigil-csi reads the --extra-create-metadata PVC parameters (csi/kube.h)" % label)
    bidi = [mm for mm in csi["volumeMounts"] if mm.get("mountPropagation") == "Bidirectional"]
    check(len(bidi) == 1 and csi["securityContext"].get("privileged") is True and "privileged" in a and
          [vv for vv in pod["volumes"] if vv["name"] == bidi[0]["name"]][0]["hostPath"]["path"].rstrip("/") ==
          bidi[0]["mountPath"].rstrip("/") and bidi[0]["mountPath"].rstrip("/").endswith("/pods"),
          "%s: the kubelet's pods dir is mounted at its host path, Bidirectional, privileged --privileged" % label)
    m, v = mount_for(pod, csi, a["state-dir"][0])
    check(v and v.get("hostPath", {}).get("path", "").rstrip("/") == a["state-dir"][0].rstrip("/"),
          "%s: sigil-csi's state dir is on the node (restarts keep every deadline)" % label)
    # sigil-ca hardening
    psc = dep["spec"]["template"]["spec"]["securityContext"]
    check(dep["spec"]["replicas"] == 2 and psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) > 0 and
          ca["securityContext"].get("allowPrivilegeEscalation") is False and
          ca["securityContext"].get("capabilities", {}).get("drop") == ["ALL"],
          "%s: sigil-ca: 2 replicas, non-root, no privilege escalation, no capabilities" % label)
    check(ca.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz" and
          csi.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
          "%s: sigil-ca readiness on /readyz, sigil-csi liveness on /healthz" % label)
    check(ca_args.get("ca-store") == ["secret"] and "in-cluster" in ca_args and "in-cluster" in a,
          "%s: both daemons use the in-cluster API; sigil-ca keeps CAs in Secrets" % label)


check_workloads(MAN, "manifests", NS)

# ---- 5. Dockerfile --------------------------------------------------------------

dockerfile = read(os.path.join(DEPLOY, "Dockerfile"))
froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
base = re.search(r"^ARG DEBIAN_IMAGE=(\S+)", dockerfile, re.M)
check(len(froms) == 2 and base and base.group(1).startswith("debian:12"),
      "Dockerfile: two stages on Debian 12", froms)
targets = re.search(r"--target ([a-z -]+)", dockerfile).group(1).split()
cmake_exes = set(re.findall(r"add_executable\(([a-z-]+)", "".join(
    src(p) for p in ("CMakeLists.txt", "csi/CMakeLists.txt", "kerberos/CMakeLists.txt", "ca/server/CMakeLists.txt")
    if os.path.exists(os.path.join(SOURCE, p)))))
check(set(targets) <= cmake_exes and {"sigil-ca", "sigil-csi", "sigil-kadm-helper"} <= set(targets),
      "Dockerfile builds sigil-ca, sigil-csi and the kadm helper, all CMake targets", (targets, cmake_exes))
user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
check(user and user[-1].split(":")[0] not in ("0", "root") and
      "runAsUser: %s" % user[-1].split(":")[0] in src("deploy/manifests/06-sigil-ca.yaml"),
      "Dockerfile: the runtime user is non-root and is sigil-ca's runAsUser")
check("COPY --from=build /out/bin/ /usr/local/bin/" in dockerfile and "KERBEROS_KADM_HELPER_NAME" in src("kerberos/kadm.h"),
      "Dockerfile: the programs land in /usr/local/bin, the kadm helper next to sigil-ca")

# ---- 6. CRDs ---------------------------------------------------------------------

crds = {o["metadata"]["name"]: o for o in find(MAN, "CustomResourceDefinition")}
check(set(crds) == {"secretclasses.secrets.sigil.dev", "truststores.secrets.sigil.dev"},
      "CRDs secretclasses and truststores of secrets.sigil.dev", sorted(crds))
check(read(os.path.join(CHART, "crds", "crds.yaml")) == read(os.path.join(MANIFESTS, "01-crds.yaml")),
      "the Helm chart's crds/crds.yaml is the manifests' 01-crds.yaml")
SC_CRD = crds["secretclasses.secrets.sigil.dev"]
TS_CRD = crds["truststores.secrets.sigil.dev"]
check(SC_CRD["spec"]["scope"] == "Cluster" and TS_CRD["spec"]["scope"] == "Namespaced" and
      SC_CRD["spec"]["names"]["kind"] == "SecretClass" and TS_CRD["spec"]["names"]["kind"] == "TrustStore" and
      all(c["metadata"]["name"] == c["spec"]["names"]["plural"] + "." + c["spec"]["group"] for c in crds.values()),
      "CRD names, kinds and scopes")
for c in crds.values():
    vers = c["spec"]["versions"]
    check(len(vers) == 1 and vers[0]["name"] == "v1alpha1" and vers[0]["served"] and vers[0]["storage"],
          "%s: v1alpha1 served and stored" % c["metadata"]["name"])
SC_SCHEMA = SC_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
TS_SCHEMA = TS_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def structural_problems(s, path="", in_logic=False):
    """apiextensions.k8s.io/v1 structural schema rules that matter here."""
    bad = []
    if not isinstance(s, dict):
        return [path + ": not a mapping"]
    if "$ref" in s:
        bad.append(path + ": $ref is not allowed")
    if not in_logic and "type" not in s:
        bad.append(path + ": no type")
    if in_logic:
        for k in ("type", "default", "description", "nullable", "additionalProperties"):
            if k in s:
                bad.append(path + ": %s inside allOf/anyOf/oneOf/not" % k)
    if "properties" in s and "additionalProperties" in s:
        bad.append(path + ": properties and additionalProperties")
    if s.get("type") == "array" and "items" not in s:
        bad.append(path + ": array without items")
    for k, v in s.get("properties", {}).items():
        if in_logic:
            continue
        bad += structural_problems(v, path + "." + k)
    if "items" in s:
        bad += structural_problems(s["items"], path + "[]", in_logic)
    for k in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(k, [])):
            for pk in sub.get("properties", {}):
                if pk not in s.get("properties", {}):
                    bad.append(path + ": %s[%d] names property %s the schema does not define" % (k, i, pk))
            bad += structural_problems(sub, "%s.%s[%d]" % (path, k, i), True)
    if "not" in s:
        bad += structural_problems(s["not"], path + ".not", True)
    return bad


for name, sch in (("secretclasses", SC_SCHEMA), ("truststores", TS_SCHEMA)):
    probs = structural_problems(sch)
    meta = sch["properties"].get("metadata", {})
    if set(meta.get("properties", {})) - {"name", "generateName"}:
        probs.append("metadata may only restrict name and generateName")
    check(not probs, "%s CRD schema is structural" % name, probs)


def schema_at(s, path):
    for part in path:
        s = s.get("properties", {}).get(part)
        if s is None:
            return None
    return s


for c in crds.values():
    sch = c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    bad = []
    for col in c["spec"]["versions"][0].get("additionalPrinterColumns", []):
        p = col["jsonPath"].lstrip(".").split(".")
        t = {"name": "string", "creationTimestamp": "string"}.get(p[-1]) if p[0] == "metadata" else \
            (schema_at(sch, p) or {}).get("type")
        if t is None or (col["type"] == "date") != (p[-1] == "creationTimestamp") or \
                (col["type"] not in ("date",) and t != col["type"]):
            bad.append(col["jsonPath"])
    check(not bad and c["spec"]["versions"][0].get("additionalPrinterColumns"),
          "%s: printer columns point at scalar fields of the schema" % c["metadata"]["name"], bad)

backend = SC_SCHEMA["properties"]["spec"]["properties"]["backend"]
tls_s = backend["properties"]["autoTls"]
check(tls_s["properties"]["additionalTrustRoots"]["maxItems"] == MAX_TRUST_ROOTS and
      backend["properties"]["externalCa"]["properties"]["additionalTrustRoots"]["maxItems"] == MAX_TRUST_ROOTS and
      SC_SCHEMA["properties"]["spec"]["properties"]["namePolicy"]["properties"]["allowedDomains"]["maxItems"] == MAX_DOMAINS and
      SC_SCHEMA["properties"]["metadata"]["properties"]["name"]["maxLength"] == MAX_CLASS_LEN,
      "CRD limits are sigil's (CA_CLASS_MAX_TRUST_ROOTS %d, CA_CLASS_MAX_DOMAINS %d, CA_STORE_MAX_CLASS_LEN %d)"
      % (MAX_TRUST_ROOTS, MAX_DOMAINS, MAX_CLASS_LEN))
alg_enums = [tls_s["properties"]["keyAlgorithm"]["enum"], tls_s["properties"]["ca"]["properties"]["keyAlgorithm"]["enum"],
             backend["properties"]["externalCa"]["properties"]["keyAlgorithm"]["enum"]]
check(KEY_ALGS and all(sorted(e) == sorted(KEY_ALGS) for e in alg_enums),
      "CRD keyAlgorithm values are ca/key.c's algorithm names", KEY_ALGS)
check(sorted(TS_SCHEMA["properties"]["spec"]["properties"]["format"]["enum"]) ==
      sorted(set(re.findall(r'return "(tls-[a-z0-9]+|kerberos)"', src("csi/attrs.c")))),
      "TrustStore formats are sigil's format names")


def validate(s, v, path="", strict=True):
    """A small OpenAPI v3 validator for the constructs the CRDs use.  strict:
    unknown fields are errors (the apiserver prunes them silently; for
    examples that would be a typo)."""
    errs = []
    t = s.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if t == "integer":
        if not isinstance(v, int) or isinstance(v, bool):
            return [path + ": not an integer"]
    elif t in types and not isinstance(v, types[t]):
        return [path + ": not a " + t]
    if "enum" in s and v not in s["enum"]:
        errs.append("%s: %r not in %s" % (path, v, s["enum"]))
    if isinstance(v, str):
        if "maxLength" in s and len(v) > s["maxLength"]:
            errs.append(path + ": too long")
        if "pattern" in s and not re.search(s["pattern"], v):
            errs.append("%s: %r does not match %s" % (path, v, s["pattern"]))
    if isinstance(v, list):
        if "maxItems" in s and len(v) > s["maxItems"]:
            errs.append(path + ": too many items")
        if "minItems" in s and len(v) < s["minItems"]:
            errs.append(path + ": too few items")
        for i, item in enumerate(v):
            errs += validate(s["items"], item, "%s[%d]" % (path, i), strict)
    if isinstance(v, dict):
        for r in s.get("required", []):
            if r not in v:
                errs.append("%s.%s: required" % (path, r))
        props = s.get("properties")
        for k, item in v.items():
            if props is not None and k in props:
                errs += validate(props[k], item, path + "." + k, strict)
            elif props is not None and strict and t == "object" and props:
                errs.append("%s.%s: unknown field" % (path, k))
    if "oneOf" in s:
        n = sum(1 for sub in s["oneOf"] if not validate(sub, v, path, strict))
        if n != 1:
            errs.append("%s: matches %d of oneOf %s" % (path, n, [x.get("required") for x in s["oneOf"]]))
    if "not" in s and not validate(s["not"], v, path, strict):
        errs.append("%s: matches a forbidden combination %s" % (path, s["not"]))
    return errs


def validate_object(o):
    sch = SC_SCHEMA if o["kind"] == "SecretClass" else TS_SCHEMA
    body = {k: v for k, v in o.items() if k != "metadata"}
    body["metadata"] = {k: v for k, v in o["metadata"].items() if k in ("name",)}
    return validate(sch, body, o["kind"])


example_classes = find(MAN, "SecretClass") + find(EXAMPLES.get("secretclasses.yaml", []), "SecretClass")
check(len(example_classes) >= 6 and {"autoTls", "externalCa", "kerberosKeytab"} <=
      {list(c["spec"]["backend"])[0] for c in example_classes},
      "example SecretClasses cover autoTls, externalCa and kerberosKeytab")
for o in example_classes + find(EXAMPLES.get("truststore.yaml", []), "TrustStore"):
    e = validate_object(o)
    check(not e, "CRD schema accepts example %s %s" % (o["kind"], o["metadata"]["name"]), e)
bad_classes = {
    "two backends": {"autoTls": {}, "kerberosKeytab": {"realmName": "R", "kdc": "k", "admin": {"mit": {"kadminServer": "k"}},
                                                       "adminKeytabSecret": {"name": "a", "namespace": "b"}, "adminPrincipal": "p"}},
    "no backend": {},
    "unknown key algorithm": {"autoTls": {"keyAlgorithm": "dsa-1024"}},
    "keyGeneration and keyAlgorithm": {"autoTls": {"ca": {"keyGeneration": {"rsa": {"length": 2048}}, "keyAlgorithm": "ed25519"}}},
    "RSA length 1024": {"autoTls": {"ca": {"keyGeneration": {"rsa": {"length": 1024}}}}},
    "milliseconds": {"autoTls": {"maxCertificateLifetime": "500ms"}},
    "duration without unit": {"autoTls": {"maxCertificateLifetime": "15"}},
    "trust root with both kinds": {"autoTls": {"additionalTrustRoots": [{"secret": {"name": "a", "namespace": "b"},
                                                                         "configMap": {"name": "a", "namespace": "b"}}]}},
    "too many trust roots": {"autoTls": {"additionalTrustRoots": [{"secret": {"name": "a", "namespace": "b"}}] * (MAX_TRUST_ROOTS + 1)}},
    "externalCa with cfssl and vault": {"externalCa": {"cfssl": {"url": "https://a"}, "vault": {"url": "https://b", "tokenFile": "/t", "role": "r"},
                                                       "additionalTrustRoots": [{"secret": {"name": "a", "namespace": "b"}}]}},
    "vault role with a slash": {"externalCa": {"vault": {"url": "https://b", "tokenFile": "/t", "role": "../r"},
                                               "additionalTrustRoots": [{"secret": {"name": "a", "namespace": "b"}}]}},
    "secret in a bad namespace": {"autoTls": {"ca": {"secret": {"name": "a", "namespace": "../x"}}}},
}
for what, be in bad_classes.items():
    o = {"apiVersion": "secrets.sigil.dev/v1alpha1", "kind": "SecretClass", "metadata": {"name": "x"},
         "spec": {"backend": be}}
    check(validate_object(o) != [], "CRD schema refuses a SecretClass with %s" % what)
o = {"apiVersion": "secrets.sigil.dev/v1alpha1", "kind": "SecretClass", "metadata": {"name": "a" * (MAX_CLASS_LEN + 1)},
     "spec": {"backend": {"autoTls": {}}}}
check(validate_object(o) != [], "CRD schema refuses a class name longer than sigil's limit")

# Every field name that tests/ feeds to sigil's SecretClass parser.


def spec_paths(v, prefix=("spec",)):
    out = [prefix]
    if isinstance(v, dict):
        for k, item in v.items():
            out += spec_paths(item, prefix + (str(k),))
    elif isinstance(v, list):
        for item in v:
            out += spec_paths(item, prefix + ("[]",))
    return out


def schema_has(path):
    s = SC_SCHEMA
    for part in path:
        if part == "[]":
            s = s.get("items")
        else:
            if s.get("type") == "object" and "properties" not in s:
                return True  # free-form object (k8sSearch.searchNamespace.pod)
            s = s.get("properties", {}).get(part)
        if s is None:
            return False
    return True


def c_string_docs(text):
    """YAML documents written as C string literals ("a\\n" "b\\n" ...)."""
    out = []
    for run in re.finditer(r'(?:"(?:[^"\\\n]|\\.)*"\s*){2,}', text):
        lits = re.findall(r'"((?:[^"\\\n]|\\.)*)"', run.group(0))
        s = "".join(lits)
        s = s.encode().decode("unicode_escape", errors="replace")
        if "SecretClass" in s:
            out.append(s)
    return out


test_texts = []
tests_dir = os.path.join(SOURCE, "tests")
for d, _, files in os.walk(tests_dir):
    for f in sorted(files):
        p = os.path.join(d, f)
        if f.endswith((".yaml", ".yml")):
            test_texts.append((os.path.relpath(p, SOURCE), read(p, "replace") if os.path.getsize(p) < 300000 else ""))
        elif f.endswith(".sh") or f.endswith(".py"):
            t = read(p, "replace")
            for m in re.finditer(r"<<-?\s*'?(\w+)'?[^\n]*\n(.*?)\n\1\n", t, re.S):
                test_texts.append(("%s (heredoc)" % os.path.relpath(p, SOURCE), m.group(2)))
        elif f.endswith(".c"):
            for s in c_string_docs(read(p, "replace")):
                test_texts.append(("%s (string)" % os.path.relpath(p, SOURCE), s))
test_classes = []
for where, text in test_texts:
    if re.search(r"(^|[\s\[{,])[&*][A-Za-z]|<<:", text):
        continue  # anchors, aliases, merge keys: sigil refuses them outright
    try:
        docs = list(yaml.safe_load_all(text))
    except (yaml.YAMLError, ValueError, RecursionError):
        continue  # the parser tests' garbage and bombs
    for d in docs:
        if isinstance(d, dict) and d.get("kind") == "SecretClass" and isinstance(d.get("spec"), dict) and \
                str(d.get("apiVersion", "")).startswith("secrets."):
            test_classes.append((where, d))
check(len(test_classes) >= 10, "found the SecretClass documents used by tests/ (%d)" % len(test_classes))
unknown = {}  # path -> [(where, doc)]
n_paths = set()
for where, d in test_classes:
    for p in spec_paths(d["spec"]):
        n_paths.add(p)
        if not schema_has(p):
            unknown.setdefault(p, []).append((where, d))
check(len(n_paths) >= 40, "tests/ SecretClasses use %d distinct field paths" % len(n_paths))
print("#   field paths of tests/ SecretClasses the CRD does not define:", sorted(".".join(p) for p in unknown))

# ---- 7. PrometheusRule metric names --------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan", "time", "rate", "increase", "sum", "min", "max", "avg", "count",
                "absent", "histogram_quantile", "max_over_time", "min_over_time", "avg_over_time", "clamp_min",
                "topk", "bottomk", "vector", "scalar", "abs", "delta", "deriv", "irate", "changes", "resets"}


def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        w = m.group(0)
        rest = e[m.end():].lstrip()
        if w in PROMQL_WORDS or rest.startswith("("):
            continue
        if re.match(r"[0-9]", e[m.start() - 1:m.start()] or " "):
            continue  # a unit of a number (7d)
        names.add(w)
    return names


rules = ALERTS.get("prometheusrule.yaml", [{}])[0]
groups = rules.get("spec", {}).get("groups", [])
records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
used, bad = set(), []
for g in groups:
    for r in g["rules"]:
        for n in metric_names(r["expr"]):
            used.add(n)
            base = re.sub(r"_(bucket|sum|count)$", "", n)
            ok = n in METRICS or n in records or n == "up" or (base in HISTOGRAMS and n != base)
            if not ok:
                bad.append((r.get("alert") or r.get("record"), n))
        if "alert" in r:
            if r.get("labels", {}).get("severity") not in ("info", "warning", "critical") or \
                    not r.get("annotations", {}).get("summary") or not r.get("annotations", {}).get("description"):
                bad.append((r["alert"], "severity, summary and description"))
check(groups and not bad, "PrometheusRule uses only the daemons' metric names (%d used)" % len(used), bad)
check(not (used & HISTOGRAMS), "histograms are used through _bucket/_sum/_count only", used & HISTOGRAMS)
# The names are what the daemons register, not only what this file expects.
registered = set()
for d in ("csi", "ca/server", "metrics"):
    for f in sorted(os.listdir(os.path.join(SOURCE, d))):
        if f.endswith(".c"):
            registered |= set(re.findall(r'metrics_(?:counter|gauge|histogram)\(\s*\w+,\s*"(sigil_[a-z0-9_]+)"',
                                         src(os.path.join(d, f))))
check(METRICS <= registered, "every metric the rules use is registered by a daemon (%d registered)" % len(registered),
      sorted(METRICS - registered))
for needed, pattern in (("certificate expiring within 1h", r"sigil_volume_not_after_seconds.*< 3600"),
                        ("certificate expiring within 10m (critical)", r"sigil_volume_not_after_seconds.*< 600"),
                        ("renewals failing", r"sigil_renewals_total\{result=\"failure\"\}"),
                        ("evictions blocked by PDBs", r"sigil_evictions_total\{result=\"blocked\"\}"),
                        ("CA expiring in 7d without successor", r"max by \(class\) \(sigil_ca_not_after_seconds\).*7 \* 86400"),
                        ("sigil-ca down", r"up\{job=\"sigil-ca\"\}"), ("sigil-csi down", r"up\{job=\"sigil-csi\"\}"),
                        ("issuance error ratio", r"sigil_ca_issued_total\{result!=\"success\"\}.*/.*sigil_ca_issued_total")):
    hits = [a for a, r in alerts.items() if re.search(pattern, " ".join(r["expr"].split()))]
    check(hits, "an alert for %s (%s)" % (needed, ", ".join(hits)))
crit = [a for a, r in alerts.items() if "< 600" in r["expr"]]
check(crit and all(alerts[a]["labels"]["severity"] == "critical" for a in crit), "the 10-minute expiry alert is critical")
pm = ALERTS.get("podmonitor.yaml", [{}])[0]
check(pm.get("spec", {}).get("jobLabel") == "app.kubernetes.io/name" and
      all(e["port"] == "metrics" and e.get("honorLabels") is True for e in pm["spec"]["podMetricsEndpoints"]) and
      set(pm["spec"]["selector"]["matchExpressions"][0]["values"]) == {"sigil-ca", "sigil-csi"},
      "PodMonitor: job = app name (what the alerts select), port metrics, the workload's namespace/pod labels kept")

# ---- 8. examples: attribute keys ----------------------------------------------------


def volume_attrs(pod):
    out = []
    for v in pod["spec"].get("volumes", []):
        if "csi" in v:
            check(v["csi"]["driver"] == DRIVER, "%s: inline volume %s uses driver %s" % (pod["metadata"]["name"], v["name"], DRIVER))
            out.append((v["name"], v["csi"].get("volumeAttributes", {}), None))
        elif "ephemeral" in v:
            t = v["ephemeral"]["volumeClaimTemplate"]
            out.append((v["name"], t["metadata"].get("annotations", {}), t["spec"].get("storageClassName")))
    return out


EXAMPLE_PODS = [d for docs in EXAMPLES.values() for d in docs if d["kind"] == "Pod"]
check(len(EXAMPLE_PODS) >= 3, "example pods: inline, ephemeral and Stackable-compatible")
storage_classes = {o["metadata"]["name"] for o in find(MAN + OPTIONAL, "StorageClass")}
for pod in EXAMPLE_PODS:
    for vname, attrs, sc in volume_attrs(pod):
        bad = []
        for k in attrs:
            if k.startswith(ATTR_PREFIX):
                sub, sigil = k[len(ATTR_PREFIX):], True
            elif k.startswith(ATTR_PREFIX_STACKABLE):
                sub, sigil = k[len(ATTR_PREFIX_STACKABLE):], False
            else:
                bad.append(k)
                continue
            if sub not in ATTRS or (ATTRS[sub] and not sigil):
                bad.append(k)
        check(not bad and attrs, "%s/%s: every attribute key is one sigil knows (csi/attrs.c)" % (pod["metadata"]["name"], vname), bad)
        if sc is not None:
            check(sc in storage_classes, "%s/%s: StorageClass %s is shipped" % (pod["metadata"]["name"], vname, sc))

# ---- 9. Helm chart -----------------------------------------------------------------


class TemplateError(Exception):
    pass


def lookup(ctx, path):
    cur = ctx
    for part in path.lstrip(".").split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise TemplateError("%s is not defined" % path)
        cur = cur[part]
    return cur


def go_str(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return ""
    return str(v)


def truthy(v):
    return v not in (None, False, 0, "", [], {})


def eval_pipe(expr, ctx, used):
    stages = [s.strip() for s in expr.split("|")]
    head = stages[0]
    m = re.fullmatch(r"toYaml\s+(\.Values(?:\.\w+)+)", head)
    if m:
        used.add(m.group(1))
        val = yaml.safe_dump(lookup(ctx, m.group(1)), default_flow_style=False, sort_keys=False).rstrip("\n")
    elif re.fullmatch(r'\.Files\.Get\s+"[^"]+"', head):
        rel = re.search(r'"([^"]+)"', head).group(1)
        val = read(os.path.join(CHART, rel))
    elif re.fullmatch(r"\.(Values|Release|Chart)(\.\w+)+", head):
        if head.startswith(".Values"):
            used.add(head)
        val = lookup(ctx, head)
    elif re.fullmatch(r'"[^"]*"', head):
        val = head[1:-1]
    else:
        raise TemplateError("unsupported template expression {{ %s }}" % expr)
    for st in stages[1:]:
        if st == "quote":
            val = '"%s"' % go_str(val).replace("\\", "\\\\").replace('"', '\\"')
        elif re.fullmatch(r"(n?indent)\s+\d+", st):
            fn, n = st.split()
            pad = " " * int(n)
            val = "\n".join(pad + line if line else line for line in go_str(val).split("\n"))
            if fn == "nindent":
                val = "\n" + val
        else:
            raise TemplateError("unsupported template function %s" % st)
    return val


def render(text, ctx, used):
    out, stack = [], []  # stack of (active, parent_active)
    pos = 0
    tokens = list(re.finditer(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", text, re.S))
    trim_next = False
    for t in tokens:
        lit = text[pos:t.start()]
        if trim_next:
            lit = lit.lstrip(" \t\r\n")
        if t.group(1):
            lit = lit.rstrip(" \t\r\n")
        active = all(a for a, _ in stack)
        if active:
            out.append(lit)
        body = t.group(2)
        if body.startswith("/*"):
            raise TemplateError("comments are not supported")
        m = re.fullmatch(r"if\s+(.*)", body)
        if m:
            cond = truthy(eval_pipe(m.group(1), ctx, used)) if active else False
            stack.append((cond, active))
        elif body == "else":
            if not stack:
                raise TemplateError("else without if")
            cond, parent = stack.pop()
            stack.append((parent and not cond, parent))
        elif body == "end":
            if not stack:
                raise TemplateError("end without if")
            stack.pop()
        elif active:
            out.append(go_str(eval_pipe(body, ctx, used)))
        elif re.match(r"(range|with|define|template|include|block)\b", body):
            raise TemplateError("unsupported action {{ %s }}" % body)
        trim_next = bool(t.group(3))
        pos = t.end()
    if stack:
        raise TemplateError("if without end")
    lit = text[pos:]
    if trim_next:
        lit = lit.lstrip(" \t\r\n")
    out.append(lit)
    rendered = "".join(out)
    # Only Prometheus's own templates ({{ $labels.x }}, {{ $value }}, from
    # .Files.Get) may remain.
    if "{{" in re.sub(r"\{\{ \$(labels|value)\b", "", rendered):
        raise TemplateError("a template action was left unrendered")
    return rendered


CHART_META = load_docs(os.path.join(CHART, "Chart.yaml"))[0]
VALUES = load_docs(os.path.join(CHART, "values.yaml"))[0]
check(CHART_META["apiVersion"] == "v2" and CHART_META["name"] == "sigil" and CHART_META["version"] and
      VALUES["image"]["tag"] == CHART_META["appVersion"],
      "Chart.yaml: chart v2 named sigil, image tag = appVersion")


def render_chart(values, namespace):
    ctx = {"Values": values, "Release": {"Namespace": namespace, "Name": "sigil"},
           "Chart": {"AppVersion": CHART_META["appVersion"], "Version": CHART_META["version"], "Name": "sigil"}}
    used, objs, errors = set(), [], []
    tdir = os.path.join(CHART, "templates")
    for f in sorted(os.listdir(tdir)):
        text = read(os.path.join(tdir, f))
        if text.count("{{") != text.count("}}"):
            errors.append("%s: unbalanced braces" % f)
            continue
        try:
            out = render(text, ctx, used)
            objs += [d for d in yaml.safe_load_all(out) if d is not None]
        except (TemplateError, yaml.YAMLError) as e:
            errors.append("%s: %s" % (f, e))
    return objs, used, errors


def leaves(d, prefix=".Values"):
    out = set()
    for k, v in d.items():
        if isinstance(v, dict) and v and not k.endswith("resources"):
            out |= leaves(v, prefix + "." + k)
        else:
            out.add(prefix + "." + k)
    return out


objs, used, errors = render_chart(copy.deepcopy(VALUES), NS)
check(not errors, "Helm templates render with the default values (supported constructs only)", errors)
want = [o for o in MAN if o["kind"] not in ("Namespace", "CustomResourceDefinition")]
got = {key(o): o for o in objs}
diff = sorted(set(got) ^ {key(o) for o in want})
check(not diff, "Helm renders the same objects as deploy/manifests (defaults, namespace %s)" % NS, diff)
unequal = [key(o) for o in want if key(o) in got and got[key(o)] != o]
check(not unequal, "... and each of them is identical to its manifest", unequal)
all_vals = leaves(VALUES)
check(not (all_vals - used), "every value in values.yaml is used by a template", sorted(all_vals - used))

on = copy.deepcopy(VALUES)
on["stackableCompat"]["enabled"] = True
on["alerts"]["webhookUrl"] = "https://alertmanager.monitoring.svc:9093/api/v2/alerts"
on["metrics"]["podMonitor"]["enabled"] = True
on["metrics"]["prometheusRule"]["enabled"] = True
on["metrics"]["port"] = 9191
on["clusterDomain"] = "k8s.example.com"
on["csi"]["kubeletDir"] = "/var/lib/k0s/kubelet"
on["secretClasses"]["tls"]["create"] = False
objs2, _, errors = render_chart(on, "secrets")
check(not errors, "Helm templates render with every option on", errors)
if not errors:
    check(all(o["metadata"].get("namespace") in (None, "secrets") for o in objs2),
          "release namespace secrets: every namespaced object is in it")
    objs2_sa = objs2 + [{"kind": "Namespace", "metadata": {"name": "secrets"}}]
    check_rbac(objs2_sa, "helm(all options)", "secrets")
    check_workloads(objs2_sa, "helm(all options)", "secrets", "k8s.example.com")
    check_driver(objs2, "helm(all options)")
    _, c = container(objs2, "DaemonSet", "sigil-csi", "sigil-csi")
    a = args_of(c)
    check("stackable-compat" in a and a.get("alert-webhook") == [on["alerts"]["webhookUrl"]] and
          a.get("metrics-addr") == ["0.0.0.0:9191"],
          "helm(all options): sigil-csi gets --stackable-compat, --alert-webhook, the metrics port")
    check([o for o in find(objs2, "StorageClass") if o["metadata"]["name"] == "secrets.stackable.tech"] == OPTIONAL,
          "helm(all options): the Stackable StorageClass equals optional/stackable-compat.yaml")
    check(find(objs2, "SecretClass") == [], "helm: secretClasses.tls.create=false leaves the tls class out")
    pr = find(objs2, "PrometheusRule")
    check(pr and pr[0]["spec"] == rules["spec"], "helm: the PrometheusRule is deploy/alerts/prometheusrule.yaml")
    pm2 = find(objs2, "PodMonitor")
    check(pm2 and pm2[0]["spec"] == pm["spec"], "helm: the PodMonitor is deploy/alerts/podmonitor.yaml")
    _, reg = container(objs2, "DaemonSet", "sigil-csi", "node-driver-registrar")
    check(args_of(reg)["kubelet-registration-path"] == ["/var/lib/k0s/kubelet/plugins/%s/csi.sock" % DRIVER],
          "helm: kubeletDir moves the registration path")
    objs3, _, _ = render_chart(copy.deepcopy(VALUES), "sigil")
    check(not [o for o in objs3 if o["kind"] in ("PodMonitor", "PrometheusRule") or
               o["metadata"]["name"] == "secrets.stackable.tech"],
          "helm: monitoring objects and the Stackable StorageClass are off by default")
bad_tpl = "{{ .Values.nope.missing }}"
try:
    render(bad_tpl, {"Values": VALUES}, set())
    check(False, "the renderer refuses a value that values.yaml lacks")
except TemplateError:
    check(True, "the renderer refuses a value that values.yaml lacks")
try:
    render("{{ include \"x\" . }}", {"Values": VALUES}, set())
    check(False, "the renderer refuses constructs it does not implement")
except TemplateError:
    check(True, "the renderer refuses constructs it does not implement")

# ---- 10. sigil itself: the example classes load, the example pods publish -----------

TMP = tempfile.mkdtemp(prefix="sigil-deploy-")
PROCS = []


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    shutil.rmtree(TMP, ignore_errors=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(cond, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def port_open(port):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise SystemExit("openssl %s failed: %s" % (args, r.stdout))
    return r.stdout


def start_ca(classes_dir, secrets_dir, name):
    state = os.path.join(TMP, name + "-state")
    port = free_port()
    log = open(os.path.join(TMP, name + ".log"), "w+")
    p = subprocess.Popen([os.path.join(BUILD, "sigil-ca"), "--listen", "127.0.0.1:%d" % port, "--state-dir", state,
                          "--classes-dir", classes_dir, "--secrets-dir", secrets_dir,
                          "--tokens-file", os.path.join(TMP, "tokens")], stdout=log, stderr=subprocess.STDOUT)
    PROCS.append(p)
    up = wait_for(lambda: port_open(port), p)
    # The start-up line (with the class count) follows the listen.
    wait_for(lambda: "classes" in read(log.name, "replace"), p, 10 if up else 0)
    return p, port, state, up, read(log.name, "replace")


try:
    with open(os.path.join(TMP, "tokens"), "w") as f:
        f.write("node-a-token-0123456789abcdef node-a\n")
    os.chmod(os.path.join(TMP, "tokens"), 0o600)
    with open(os.path.join(TMP, "node.token"), "w") as f:
        f.write("node-a-token-0123456789abcdef\n")

    # Field names tests/ uses that the CRD lacks must be ones sigil refuses.
    for path, where_docs in sorted(unknown.items()):
        where, d = where_docs[0]
        cdir = os.path.join(TMP, "unknown-" + str(abs(hash(path))))
        os.makedirs(cdir)
        with open(os.path.join(cdir, "c.yaml"), "w") as f:
            yaml.safe_dump(d, f)
        p, _, _, up, log = start_ca(cdir, os.path.join(TMP, "none"), "unknown")
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
        leaf = path[-1] if path[-1] != "[]" else path[-2]
        check(not up and re.search(re.escape(leaf) + r" \(line \d+\): unknown field", log),
              "field %s (used in %s) is not in the CRD because sigil rejects it as unknown" % (".".join(path), where),
              log.strip().splitlines()[-1:] if log else "sigil-ca started")

    # A company root and intermediate for the company-ca example, made
    # with the openssl CLI; the same root serves the externalCa examples.
    classes, secrets = os.path.join(TMP, "classes"), os.path.join(TMP, "secrets")
    os.makedirs(classes)
    co = os.path.join(TMP, "company")
    os.makedirs(co)
    for ns_name in ("company-intermediate", "company-root"):
        os.makedirs(os.path.join(secrets, NS, ns_name))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", co + "/root.key", "-out", co + "/root.crt", "-subj", "/O=Example Corp/CN=Example Root CA",
            "-days", "3650", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", co + "/int.key",
            "-out", co + "/int.csr", "-subj", "/O=Example Corp/CN=Example Issuing CA")
    with open(co + "/ext.cnf", "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    openssl("x509", "-req", "-in", co + "/int.csr", "-CA", co + "/root.crt", "-CAkey", co + "/root.key",
            "-CAcreateserial", "-days", "1825", "-extfile", co + "/ext.cnf", "-out", co + "/int.crt")
    shutil.copy(co + "/int.crt", os.path.join(secrets, NS, "company-intermediate", "ca.crt"))
    shutil.copy(co + "/int.key", os.path.join(secrets, NS, "company-intermediate", "ca.key"))
    shutil.copy(co + "/root.crt", os.path.join(secrets, NS, "company-intermediate", "chain.crt"))
    shutil.copy(co + "/root.crt", os.path.join(secrets, NS, "company-root", "ca.crt"))
    shutil.copy(os.path.join(MANIFESTS, "08-secretclass-tls.yaml"), classes)
    shutil.copy(os.path.join(DEPLOY, "examples", "secretclasses.yaml"), classes)

    ca, ca_port, ca_state, up, log = start_ca(classes, secrets, "ca")
    n_classes = len(example_classes)
    check(up and re.search(r"\b%d classes\b" % n_classes, log),
          "sigil-ca loads the default class and the %d example classes" % (n_classes - 1),
          log.strip().splitlines()[-3:])

    sock = os.path.join(TMP, "csi.sock")
    os.makedirs(os.path.join(TMP, "pods"))
    csi_log = open(os.path.join(TMP, "csi.log"), "w")
    csi = subprocess.Popen([os.path.join(BUILD, "sigil-csi"), "--endpoint", "unix://" + sock, "--node-id", "node-a",
                            "--state-dir", os.path.join(TMP, "csi-state"), "--key-pool", "rsa-2048=0",
                            "--ca-endpoint", "127.0.0.1:%d" % ca_port, "--ca-bundle", os.path.join(ca_state, "issuer-ca.crt"),
                            "--token-file", os.path.join(TMP, "node.token")], stdout=csi_log, stderr=subprocess.STDOUT)
    PROCS.append(csi)
    sigilctl = os.path.join(BUILD, "sigilctl")

    def ctl(*args):
        return subprocess.run([sigilctl] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    csi_up = up and wait_for(lambda: os.path.exists(sock) and ctl("info", "--endpoint", sock).returncode == 0, csi)
    check(csi_up, "sigil-csi starts against that sigil-ca")
    info = ctl("info", "--endpoint", sock).stdout if csi_up else ""
    check(re.search(r"driver:\s+%s\b" % re.escape(find(MAN, "CSIDriver")[0]["metadata"]["name"]), info),
          "a live sigil-csi reports the CSIDriver's name in GetPluginInfo", info)

    def publish(vid, pod, ns, attrs, fs_group=None):
        target = os.path.join(TMP, "pods", vid)
        args = ["publish", "--endpoint", sock, "--volume-id", vid, "--target", target, "--pod", pod, "--namespace", ns]
        for k, v in attrs.items():
            args += ["--attr", "%s=%s" % (k, v)]
        if fs_group is not None:
            args += ["--fs-group", str(fs_group)]
        return ctl(*args), target

    for pod in EXAMPLE_PODS if csi_up else []:
        for vname, attrs, _ in volume_attrs(pod):
            name = "%s/%s" % (pod["metadata"]["name"], vname)
            fsg = pod["spec"].get("securityContext", {}).get("fsGroup")
            r, target = publish("%s-%s" % (pod["metadata"]["name"], vname), pod["metadata"]["name"],
                                pod["metadata"]["namespace"], attrs, fsg)
            if not check(r.returncode == 0, "example %s publishes through sigil-csi and sigil-ca" % name, r.stdout.strip()):
                continue
            fmt = attrs.get(ATTR_PREFIX + "format") or attrs.get(ATTR_PREFIX_STACKABLE + "format")
            if fmt == "tls-pem":
                v = subprocess.run(["openssl", "verify", "-CAfile", target + "/ca.crt", "-untrusted", target + "/tls.crt", target + "/tls.crt"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                txt = openssl("x509", "-in", target + "/tls.crt", "-noout", "-text")
                check(v.returncode == 0 and "DNS:web.default.svc.cluster.local" in txt and "DNS:node-a" in txt,
                      "%s: the certificate verifies and names the service and the node" % name, v.stdout)
                if fsg is not None:
                    st = os.stat(target + "/tls.key")
                    check(st.st_gid == fsg and st.st_mode & 0o040, "%s: tls.key is group %d and group-readable" % (name, fsg))
            elif fmt == "tls-pkcs12":
                pw = attrs.get(ATTR_PREFIX + "format.compatibility.tls-pkcs12.password") or \
                    attrs.get(ATTR_PREFIX_STACKABLE + "format.compatibility.tls-pkcs12.password")
                out = subprocess.run(["openssl", "pkcs12", "-in", target + "/keystore.p12", "-passin", "pass:" + pw,
                                      "-nokeys", "-clcerts"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                check(out.returncode == 0 and "BEGIN CERTIFICATE" in out.stdout and os.path.exists(target + "/truststore.p12"),
                      "%s: keystore.p12 opens with the example's password, truststore.p12 is there" % name, out.stdout[-300:])

    # Each example autoTls class is served; the name policy of
    # internal-services holds.
    for c in find(EXAMPLES.get("secretclasses.yaml", []), "SecretClass") if csi_up else []:
        if "autoTls" not in c["spec"]["backend"]:
            continue
        cname = c["metadata"]["name"]
        r, target = publish("class-" + cname, "web-0", "default", {"class": cname, "scope": "service=web"})
        ok = r.returncode == 0 and subprocess.run(
            ["openssl", "verify", "-CAfile", target + "/ca.crt", "-untrusted", target + "/tls.crt", target + "/tls.crt"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        check(ok, "example class %s issues a certificate that verifies against its ca.crt" % cname, r.stdout.strip())
        if cname == "company-ca" and ok:
            issuer = openssl("x509", "-in", target + "/tls.crt", "-noout", "-issuer")
            bundle = read(target + "/ca.crt")
            check("Example Issuing CA" in issuer and read(co + "/root.crt").strip() in bundle,
                  "company-ca: signed by the company intermediate, the company root in ca.crt", issuer)
    if csi_up and any(c["metadata"]["name"] == "internal-services" for c in example_classes):
        r, _ = publish("class-internal-node", "web-0", "default", {"class": "internal-services", "scope": "node"})
        check(r.returncode != 0, "internal-services refuses a node name outside svc.cluster.local", r.stdout.strip())
finally:
    cleanup()

print("%d passed, %d failed" % (PASSES[0], len(FAILURES)))
sys.exit(1 if FAILURES else 0)
