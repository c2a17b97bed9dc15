#!/bin/bash
# The Kubernetes client (kube/) against the fake apiserver
# (tests/fakes/kube_apiserver.py) over HTTPS on 127.0.0.1: kubeconfig and
# in-cluster configuration, token and client-certificate auth, token
# rotation, GET/LIST/WATCH/create/update/patch/delete, eviction, TokenReview,
# Status errors, retries, timeouts, size and rate limits.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROBE="$SIGIL_BUILD_DIR/tests/kube_probe"
FAKE="$SIGIL_SOURCE_DIR/tests/fakes/kube_apiserver.py"
D="$T_DIR"
[ -x "$PROBE" ] || { echo "kube_probe not built"; exit 1; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---- certificates: server (IP SAN 127.0.0.1), a client CA and a client ----------
fake_kube_tls "$D/ca" "$D/srv"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/cca.key" \
  -out "$D/cca.crt" -days 1 -subj /CN=client-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/alice.key" \
  -out "$D/alice.csr" -subj "/O=system:masters/CN=alice" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > "$D/alice.ext"
openssl x509 -req -in "$D/alice.csr" -CA "$D/cca.crt" -CAkey "$D/cca.key" -CAcreateserial -days 1 \
  -extfile "$D/alice.ext" -out "$D/alice.crt" 2>/dev/null

# ---- objects as a cluster has them --------------------------------------------------
/usr/bin/python3 - "$D/seed.json" <<'EOF'
import json, sys
def pod(name, ns="default", labels=None, node="node-1", phase="Running"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {},
                         "annotations": {"kubectl.kubernetes.io/default-container": "app"}},
            "spec": {"nodeName": node, "serviceAccountName": "web",
                     "containers": [{"name": "app", "image": "nginx:1.25"}],
                     "volumes": [{"name": "tls", "csi": {"driver": "secrets.sigil.dev",
                                 "volumeAttributes": {"secrets.sigil.dev/class": "tls",
                                                      "secrets.sigil.dev/scope": "pod,node"}}}]},
            "status": {"phase": phase, "podIP": "10.244.1.7", "hostIP": "192.168.1.11"}}
items = [
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
     "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.11"},
                              {"type": "Hostname", "address": "node-1"}]}},
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2"},
     "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.12"}]}},
    pod("web-0", labels={"app": "web"}), pod("web-1", labels={"app": "web"}, node="node-2"),
    pod("batch-1", labels={"app": "batch"}),
    {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
     "metadata": {"name": "web-pdb", "namespace": "default"},
     "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
     "status": {"currentHealthy": 2, "desiredHealthy": 2, "disruptionsAllowed": 0, "expectedPods": 2}},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
     "metadata": {"name": "data-web-0", "namespace": "default",
                  "annotations": {"secrets.sigil.dev/class": "tls"}},
     "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}},
              "storageClassName": "secrets.sigil.dev"}, "status": {"phase": "Bound"}},
    {"apiVersion": "secrets.sigil.dev/v1alpha1", "kind": "SecretClass", "metadata": {"name": "tls"},
     "spec": {"backend": {"autoTls": {"ca": {"secret": {"name": "secret-provisioner-tls-ca",
                                                          "namespace": "sigil"},
                                               "autoGenerate": True}}}}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big", "namespace": "default"},
     "data": {"blob": "x" * 200000}},
]
items += [pod("p-%d" % i, ns="paged", labels={"batch": "b%d" % (i % 2)}) for i in range(7)]
json.dump({"items": items, "tokenReviews": {
    "pod-token-1": {"username": "system:serviceaccount:default:web",
                    "uid": "6f1c1f7e-1111-4c3a-9a59-3a0d2c1f0a01",
                    "groups": ["system:serviceaccounts", "system:serviceaccounts:default",
                               "system:authenticated"],
                    "extra": {"authentication.kubernetes.io/pod-name": ["web-0"],
                              "authentication.kubernetes.io/pod-uid": ["0b5e8f5e-2222-4d0e-8a0e-9c3b1b2a3c4d"],
                              "authentication.kubernetes.io/node-name": ["node-1"]},
                    "audiences": ["sigil"]}}}, open(sys.argv[1], "w"))
EOF

/usr/bin/python3 "$FAKE" --cert "$D/srv.crt" --key "$D/srv.key" --client-ca "$D/cca.crt" \
  --token admin-token=admin --token tok-a=system:serviceaccount:sigil:sigil-csi \
  --seed "$D/seed.json" --port-file "$D/port" >"$D/fake.log" 2>&1 &
T_PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$D/port" ] && break; sleep 0.05; done
PORT=$(cat "$D/port")
wait_port "$PORT" || { echo "fake apiserver did not start"; cat "$D/fake.log"; exit 1; }
URL="https://127.0.0.1:$PORT"

# ctl METHOD PATH [JSON]: the fake's control API.
ctl() {
  if [ $# -ge 3 ]; then
    curl -sS --fail --cacert "$D/ca.crt" -X "$1" -H 'Content-Type: application/json' -d "$3" "$URL$2"
  else
    curl -sS --fail --cacert "$D/ca.crt" -X "$1" "$URL$2"
  fi
}
# pyj FILE EXPR: evaluates a Python expression over the JSON in FILE (as d).
pyj() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# requests: the fake's request log into $D/req.json.
requests() { ctl GET /_fake/requests > "$D/req.json"; }
clear_requests() { ctl DELETE /_fake/requests >/dev/null; }

# ---- kubeconfigs ------------------------------------------------------------------------
mkdir -p "$D/kube"
cp "$D/ca.crt" "$D/kube/ca.crt"
kubeconfig() { # FILE USER-YAML
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: $URL/
    certificate-authority: ca.crt
users:
- name: u
  user:
$2
contexts:
- name: fake
  context:
    cluster: fake
    user: u
    namespace: default
current-context: fake
preferences: {}
EOF
}
kubeconfig "$D/kube/token.yaml" "    token: admin-token"
kubeconfig "$D/kube/wrong.yaml" "    token: not-a-valid-token"
kubeconfig "$D/kube/cert.yaml" "    client-certificate: $D/alice.crt
    client-key: $D/alice.key"
kubeconfig "$D/kube/certdata.yaml" "    client-certificate-data: $(base64 -w0 "$D/alice.crt")
    client-key-data: $(base64 -w0 "$D/alice.key")"
printf 'admin-token\n' > "$D/kube/admin.token"
kubeconfig "$D/kube/tokenfile.yaml" "    tokenFile: admin.token"

KC="$D/kube/token.yaml"
P() { "$PROBE" --kubeconfig "$KC" --backoff-ms 50 "$@"; }

# expect_ok DESC CMD...: succeeds; stdout in $D/out.
expect_ok() {
  local desc=$1; shift
  if "$@" >"$D/out" 2>"$D/err"; then ok "$desc"; else fail "$desc"; sed 's/^/     /' "$D/err" | tail -5; fi
}
# expect_err DESC CODE REGEX CMD...: fails with "error (CODE): ...REGEX...".
expect_err() {
  local desc=$1 code=$2 re=$3; shift 3
  if "$@" >"$D/out" 2>"$D/err"; then fail "$desc (unexpectedly succeeded)"; return; fi
  if grep -q "^error ($code): " "$D/err" && grep -qE -- "$re" "$D/err"; then ok "$desc"
  else fail "$desc: want ($code) /$re/"; sed 's/^/     /' "$D/err" | tail -5; fi
}
# expect_py DESC FILE EXPR: the Python expression over the JSON in FILE is true.
expect_py() {
  if [ "$(pyj "$2" "$3" 2>&1)" = "True" ]; then ok "$1"; else fail "$1: $3"; head -c 600 "$2" | sed 's/^/     /'; echo; fi
}

# ---- GET and Status errors -------------------------------------------------------------------
clear_requests
expect_ok "GET pod" P get pods default web-0
expect_py "GET pod: real Pod JSON" "$D/out" \
  'd["kind"]=="Pod" and d["apiVersion"]=="v1" and d["metadata"]["name"]=="web-0" and int(d["metadata"]["resourceVersion"])>0 and d["spec"]["nodeName"]=="node-1"'
requests
expect_py "GET sent bearer token, Accept and User-Agent" "$D/req.json" \
  'd["items"][-1]["authorization"]=="Bearer admin-token" and d["items"][-1]["accept"]=="application/json" and d["items"][-1]["userAgent"].startswith("sigil/") and d["items"][-1]["path"]=="/api/v1/namespaces/default/pods/web-0"'
expect_ok "GET node (cluster-scoped)" P get nodes - node-1
expect_py "node addresses" "$D/out" 'd["status"]["addresses"][0]["address"]=="192.168.1.11"'
expect_err "404 Status names the object" "not found" \
  'get Pod default/nope: pods "nope" not found \(HTTP 404 NotFound\)' P get pods default nope
expect_err "404 of a CRD object" "not found" \
  'get SecretClass nope: secretclasses.secrets.sigil.dev "nope" not found' P get secretclasses - nope
expect_err "404 namespace" "not found" 'namespaces "nowhere" not found' \
  P create configmaps nowhere '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}'
expect_err "bad name refused before the request" "invalid argument" 'not a valid Pod name' \
  P get pods default '../../secrets'
expect_err "wrong token: 401 Unauthorized" "unauthenticated" 'Unauthorized \(HTTP 401 Unauthorized\)' \
  "$PROBE" --kubeconfig "$D/kube/wrong.yaml" get pods default web-0

# ---- LIST ----------------------------------------------------------------------------------------
clear_requests
expect_ok "LIST with limit follows continue" P list pods paged 3
expect_py "LIST: all 7 pods, PodList" "$D/out" 'd["count"]==7 and d["kind"]=="PodList" and d["names"]==sorted(d["names"])'
requests
expect_py "LIST: 3 pages, 2 with continue" "$D/req.json" \
  'len([r for r in d["items"] if r["path"]=="/api/v1/namespaces/paged/pods"])==3 and len([r for r in d["items"] if "continue" in r["query"]])==2 and all(r["query"]["limit"]=="3" for r in d["items"])'
expect_ok "LIST label selector" P list pods - 100 app=web
expect_py "LIST label selector: web pods" "$D/out" 'd["names"]==["web-0","web-1"]'
expect_ok "LIST field selector" P list pods default 100 "" spec.nodeName=node-2
expect_py "LIST field selector: node-2 pods" "$D/out" 'd["names"]==["web-1"]'
expect_ok "LIST page" P list-page pods paged 2
CONT=$(pyj "$D/out" 'd["metadata"]["continue"]')
expect_py "LIST page: items without kind, continue, remainingItemCount" "$D/out" \
  'len(d["items"])==2 and "kind" not in d["items"][0] and d["metadata"]["remainingItemCount"]==5'
# etcd still serves the compaction revision itself: write once more first.
P patch pods paged p-0 '{"metadata":{"annotations":{"touched":"yes"}}}' >/dev/null
ctl POST /_fake/compact >/dev/null
expect_err "expired continue token: 410" "gone" 'too old to display a consistent list' \
  P list-page pods paged 2 "$CONT"
ctl POST /_fake/inject '{"status":410,"count":1,"query":"continue="}' >/dev/null
clear_requests
expect_ok "LIST restarts after a 410 mid-way" P list pods paged 3
expect_py "LIST restart: all 7 pods" "$D/out" 'd["count"]==7'
requests
expect_py "LIST restart: 1 page + 410 + 3 pages" "$D/req.json" \
  '[r["status"] for r in d["items"]]==[200,410,200,200,200]'

# ---- create / update / 409 / delete ---------------------------------------------------------------
CM='{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1","namespace":"default","labels":{"app":"web"}},"data":{"k":"v1"}}'
expect_ok "create ConfigMap" P create configmaps default "$CM"
expect_py "create: uid, resourceVersion, creationTimestamp" "$D/out" \
  'bool(d["metadata"]["uid"] and d["metadata"]["resourceVersion"] and d["metadata"]["creationTimestamp"])'
cp "$D/out" "$D/cm1.json"
expect_err "create again: AlreadyExists" "already exists" 'configmaps "cm1" already exists' \
  P create configmaps default "$CM"
UPD=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["data"]["k"]="v2"; print(json.dumps(d))' "$D/cm1.json")
expect_ok "update with current resourceVersion" P update configmaps default "$UPD"
expect_py "update: new resourceVersion, new data" "$D/out" \
  'd["data"]["k"]=="v2" and int(d["metadata"]["resourceVersion"]) > '"$(pyj "$D/cm1.json" 'd["metadata"]["resourceVersion"]')"
NEWRV=$(pyj "$D/out" 'd["metadata"]["resourceVersion"]')
expect_err "update with a stale resourceVersion: 409 Conflict" "busy" \
  'Operation cannot be fulfilled on configmaps "cm1": the object has been modified.*HTTP 409 Conflict' \
  P update configmaps default "$UPD"
expect_err "delete with a stale precondition: 409" "busy" 'Precondition failed' \
  P delete configmaps default cm1 "$(pyj "$D/cm1.json" 'd["metadata"]["resourceVersion"]')"
expect_ok "delete with the current precondition" P delete configmaps default cm1 "$NEWRV"
expect_err "deleted object is gone" "not found" 'configmaps "cm1" not found' P get configmaps default cm1
expect_err "delete again: 404" "not found" 'delete ConfigMap default/cm1' P delete configmaps default cm1
expect_ok "update with conflict retry (no race)" P annotate pods default web-1 sigil.dev/a one
expect_py "one attempt" "$D/out" 'd["attempts"]==1'
expect_ok "update with conflict retry (a competing write)" P annotate-race pods default web-1 sigil.dev/b two
expect_py "conflict retried: two attempts" "$D/out" 'd["attempts"]==2'
expect_ok "GET after conflict retry" P get pods default web-1
expect_py "both writes kept" "$D/out" \
  'd["metadata"]["annotations"]["sigil.dev/b"]=="two" and d["metadata"]["annotations"]["racer"]=="was-here" and d["metadata"]["annotations"]["sigil.dev/a"]=="one"'
expect_ok "create Event with generateName" P create events default \
  '{"apiVersion":"v1","kind":"Event","metadata":{"generateName":"web-0.","namespace":"default"},"involvedObject":{"kind":"Pod","name":"web-0","namespace":"default"},"reason":"CertificateRenewed","message":"renewed","type":"Normal"}'
expect_py "Event name generated" "$D/out" 'd["metadata"]["name"].startswith("web-0.") and len(d["metadata"]["name"])==11'
expect_ok "create Lease" P create leases default \
  '{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"sigil-ca"},"spec":{"holderIdentity":"sigil-ca-0","leaseDurationSeconds":15}}'
LEASE=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["spec"]["holderIdentity"]="sigil-ca-1"; print(json.dumps(d))' "$D/out")
expect_ok "Lease taken over with its resourceVersion" P update leases default "$LEASE"
expect_err "second takeover with the same resourceVersion loses" "busy" 'leases.coordination.k8s.io "sigil-ca"' \
  P update leases default "$LEASE"
expect_err "Lease in a missing namespace" "not found" 'namespaces' \
  P create leases nowhere '{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l"}}'

# ---- JSON merge patch -------------------------------------------------------------------------------
clear_requests
expect_ok "merge patch of pod annotations" P patch pods default web-0 \
  '{"metadata":{"annotations":{"restarter.sigil.dev/expires-at.1a2b3c":"2030-01-01T00:00:00Z"}}}'
expect_py "patch: annotation added, others kept" "$D/out" \
  'd["metadata"]["annotations"]["restarter.sigil.dev/expires-at.1a2b3c"]=="2030-01-01T00:00:00Z" and d["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]=="app" and d["metadata"]["labels"]=={"app":"web"} and d["spec"]["nodeName"]=="node-1"'
requests
expect_py "patch sent as application/merge-patch+json" "$D/req.json" \
  'd["items"][-1]["method"]=="PATCH" and d["items"][-1]["contentType"]=="application/merge-patch+json"'
expect_ok "merge patch null removes a key" P patch pods default web-0 \
  '{"metadata":{"annotations":{"restarter.sigil.dev/expires-at.1a2b3c":null}}}'
expect_py "annotation removed" "$D/out" '"restarter.sigil.dev/expires-at.1a2b3c" not in d["metadata"]["annotations"]'
expect_err "conditional patch with a stale resourceVersion" "busy" 'has been modified' \
  P patch pods default web-0 '{"metadata":{"resourceVersion":"1","annotations":{"x":"y"}}}'

# ---- CRDs ------------------------------------------------------------------------------------------------
expect_ok "GET seeded SecretClass (secrets.sigil.dev/v1alpha1)" P get secretclasses - tls
expect_py "SecretClass JSON" "$D/out" \
  'd["apiVersion"]=="secrets.sigil.dev/v1alpha1" and d["kind"]=="SecretClass" and "namespace" not in d["metadata"] and d["spec"]["backend"]["autoTls"]["ca"]["autoGenerate"] is True'
expect_ok "create Stackable SecretClass (v1alpha2)" P create secretclasses.secrets.stackable.tech - \
  '{"apiVersion":"secrets.stackable.tech/v1alpha2","kind":"SecretClass","metadata":{"name":"kerberos"},"spec":{"backend":{"kerberosKeytab":{"realmName":"EXAMPLE.COM","kdc":"kdc.example.com","admin":{"mit":{"kadminServer":"kdc.example.com"}},"adminKeytabSecret":{"name":"kadm","namespace":"default"},"adminPrincipal":"stackable-secret-operator"}}}}'
expect_py "Stackable SecretClass stored" "$D/out" 'd["apiVersion"]=="secrets.stackable.tech/v1alpha2" and d["metadata"]["generation"]==1'
expect_ok "create TrustStore (namespaced)" P create truststores default \
  '{"apiVersion":"secrets.sigil.dev/v1alpha1","kind":"TrustStore","metadata":{"name":"ts"},"spec":{"secretClassName":"tls","format":"tls-pem"}}'
expect_ok "LIST SecretClasses (CRD list items keep kind)" P list-page secretclasses - 10
expect_py "SecretClassList" "$D/out" 'd["kind"]=="SecretClassList" and d["items"][0]["kind"]=="SecretClass"'
expect_err "kind mismatch refused by the apiserver" "invalid argument" 'does not match the expected kind' \
  P create truststores default '{"apiVersion":"secrets.sigil.dev/v1alpha1","kind":"SecretClass","metadata":{"name":"t2"}}'

# ---- PVCs and Secrets -------------------------------------------------------------------------------
expect_ok "GET PVC of an ephemeral volume" P get persistentvolumeclaims default data-web-0
expect_py "PVC annotations and phase" "$D/out" \
  'd["kind"]=="PersistentVolumeClaim" and d["metadata"]["annotations"]["secrets.sigil.dev/class"]=="tls" and d["status"]["phase"]=="Bound"'
expect_ok "create Secret with stringData" P create secrets default \
  '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"secret-provisioner-tls-ca"},"type":"kubernetes.io/tls","stringData":{"ca.crt":"CERT"}}'
expect_py "stringData stored as base64 data" "$D/out" \
  'd["data"]["ca.crt"]=="Q0VSVA==" and "stringData" not in d and d["type"]=="kubernetes.io/tls"'
expect_err "Secret data must be base64" "invalid argument" 'illegal base64 data' \
  P create secrets default '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"bad"},"data":{"k":"%%%"}}'

# ---- eviction -------------------------------------------------------------------------------------------
clear_requests
expect_err "eviction blocked by a PodDisruptionBudget: 429, not retried" "unavailable" \
  "evict Pod default/web-0: Cannot evict pod as it would violate the pod's disruption budget.*DisruptionBudget: The disruption budget web-pdb needs 2 healthy pods and has 2 currently" \
  P evict default web-0
requests
expect_py "exactly one eviction request" "$D/req.json" \
  'len(d["items"])==1 and d["items"][0]["path"]=="/api/v1/namespaces/default/pods/web-0/eviction" and d["items"][0]["body"]["kind"]=="Eviction" and d["items"][0]["body"]["apiVersion"]=="policy/v1" and d["items"][0]["status"]==429'
expect_ok "eviction of an unprotected pod" P evict default batch-1
expect_err "evicted pod is gone" "not found" 'pods "batch-1" not found' P get pods default batch-1
expect_err "evicting a missing pod" "not found" 'evict Pod default/batch-1' P evict default batch-1

# ---- TokenReview -------------------------------------------------------------------------------------
expect_ok "TokenReview of a bound pod token" P review pod-token-1 sigil
expect_py "identity: service account, pod, node" "$D/out" \
  'd["username"]=="system:serviceaccount:default:web" and d["saNamespace"]=="default" and d["saName"]=="web" and d["podName"]=="web-0" and d["nodeName"]=="node-1" and d["podUid"].startswith("0b5e8f5e")'
expect_err "TokenReview: wrong audience" "unauthenticated" 'audiences' P review pod-token-1 vault
expect_err "TokenReview: unknown token" "unauthenticated" 'invalid bearer token' P review bogus-token

# ---- WATCH -----------------------------------------------------------------------------------------------
RV0=$(P list pods default | pyj /dev/stdin 'd["resourceVersion"]')
P patch pods default web-1 '{"metadata":{"annotations":{"step":"1"}}}' >/dev/null
P create pods default '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-2","labels":{"app":"web"}},"spec":{"nodeName":"node-1","containers":[{"name":"app","image":"nginx"}]}}' >/dev/null
P delete pods default web-2 >/dev/null
expect_ok "WATCH resumed from a resourceVersion" P watch pods default --rv "$RV0" --events 3
head -3 "$D/out" | /usr/bin/python3 -c 'import sys,json; print(json.dumps([json.loads(l) for l in sys.stdin]))' > "$D/w.json"
expect_py "WATCH: MODIFIED, ADDED, DELETED in order, versions increasing" "$D/w.json" \
  '[(e["type"],e["name"]) for e in d]==[("MODIFIED","web-1"),("ADDED","web-2"),("DELETED","web-2")] and d[0]["annotations"]["step"]=="1" and [int(e["rv"]) for e in d]==sorted(int(e["rv"]) for e in d) and int(d[0]["rv"])>'"$RV0"

# Streaming: a LIST (SYNC), then live changes as they happen.
P watch pods default --events 4 --max-ms 15000 >"$D/stream.out" 2>"$D/stream.err" &
WPID=$!
for _ in $(seq 1 100); do grep -q SYNC "$D/stream.out" 2>/dev/null && break; sleep 0.05; done
P create pods default '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-3"},"spec":{"nodeName":"node-2","containers":[{"name":"app","image":"nginx"}]}}' >/dev/null
P patch pods default web-3 '{"metadata":{"labels":{"app":"web"}}}' >/dev/null
P delete pods default web-3 >/dev/null
if wait $WPID; then ok "WATCH stream ends after 4 events"; else fail "WATCH stream"; cat "$D/stream.err"; fi
head -4 "$D/stream.out" | /usr/bin/python3 -c 'import sys,json; print(json.dumps([json.loads(l) for l in sys.stdin]))' > "$D/w.json"
expect_py "WATCH stream: SYNC then ADDED, MODIFIED, DELETED" "$D/w.json" \
  '[e["type"] for e in d]==["SYNC","ADDED","MODIFIED","DELETED"] and "web-0" in d[0]["names"] and all(e.get("name")=="web-3" for e in d[1:])'

# A selector watch sees objects enter and leave it.
P watch pods default --selector app=canary --events 3 --max-ms 15000 >"$D/sel.out" 2>"$D/sel.err" &
WPID=$!
for _ in $(seq 1 100); do grep -q SYNC "$D/sel.out" 2>/dev/null && break; sleep 0.05; done
P patch pods default web-1 '{"metadata":{"labels":{"app":"canary"}}}' >/dev/null
P patch pods default web-1 '{"metadata":{"labels":{"app":"web"}}}' >/dev/null
if wait $WPID; then ok "WATCH with a label selector"; else fail "WATCH selector"; cat "$D/sel.err"; fi
head -3 "$D/sel.out" | /usr/bin/python3 -c 'import sys,json; print(json.dumps([json.loads(l) for l in sys.stdin]))' > "$D/w.json"
expect_py "selector: web-1 ADDED when it matches, DELETED when it leaves" "$D/w.json" \
  '[(e["type"],e.get("name")) for e in d]==[("SYNC",None),("ADDED","web-1"),("DELETED","web-1")]'

# 410 Gone: the version was compacted away; the client relists (SYNC).
ctl POST /_fake/compact >/dev/null
clear_requests
expect_ok "WATCH from a compacted resourceVersion restarts with a LIST" P watch pods default --rv "$RV0" --events 1
head -1 "$D/out" > "$D/w1.json"
expect_py "after 410: SYNC of the current pods" "$D/w1.json" 'd["type"]=="SYNC" and "web-0" in d["names"] and "web-3" not in d["names"]'
requests
expect_py "410: watch from the old version, then a LIST" "$D/req.json" \
  'd["items"][0]["query"].get("watch")=="1" and d["items"][0]["query"]["resourceVersion"]=="'"$RV0"'" and "watch" not in d["items"][1]["query"]'

# A stream that ends (timeoutSeconds) is resumed from the BOOKMARK version.
clear_requests
expect_ok "WATCH resumes after the server ends the stream" P watch pods default --timeout-s 1 --max-ms 2600
requests
expect_py "resumed watches carry the last resourceVersion and bookmarks" "$D/req.json" \
  'len([r for r in d["items"] if r["query"].get("watch")=="1"])>=2 and all(r["query"].get("allowWatchBookmarks")=="true" and r["query"].get("timeoutSeconds")=="1" for r in d["items"] if r["query"].get("watch")) and [r for r in d["items"] if r["query"].get("watch")][1]["query"]["resourceVersion"]!=""'

# A dropped connection (no terminating chunk) is resumed too, without losing events.
P watch pods default --events 2 --max-ms 15000 >"$D/drop.out" 2>"$D/drop.err" &
WPID=$!
for _ in $(seq 1 100); do grep -q SYNC "$D/drop.out" 2>/dev/null && break; sleep 0.05; done
sleep 0.3
ctl POST /_fake/close-watches '{"abrupt":true}' >/dev/null
P patch pods default web-0 '{"metadata":{"annotations":{"after":"drop"}}}' >/dev/null
if wait $WPID; then ok "WATCH survives a dropped connection"; else fail "WATCH drop"; cat "$D/drop.err"; fi
sed -n 2p "$D/drop.out" > "$D/w1.json"
expect_py "event after the drop delivered" "$D/w1.json" 'd["type"]=="MODIFIED" and d["annotations"]["after"]=="drop"'

# ---- retries, Retry-After, timeouts, size and rate limits ----------------------------------------------
clear_requests
ctl POST /_fake/inject '{"status":429,"count":2,"retryAfter":1,"path":"/pods/web-0$"}' >/dev/null
T0=$(now_ms)
expect_ok "429 with Retry-After is retried, then succeeds" P get pods default web-0
T1=$(now_ms)
if [ $((T1 - T0)) -ge 1800 ]; then ok "Retry-After honoured ($((T1 - T0)) ms for two 1 s waits)"; else fail "Retry-After not honoured: $((T1 - T0)) ms"; fi
requests
expect_py "429, 429, 200" "$D/req.json" '[r["status"] for r in d["items"]]==[429,429,200]'

clear_requests
ctl POST /_fake/inject '{"status":500,"count":2}' >/dev/null
expect_ok "500 is retried, then succeeds" P get pods default web-0
requests
expect_py "500, 500, 200" "$D/req.json" '[r["status"] for r in d["items"]]==[500,500,200]'

ctl POST /_fake/inject '{"status":503,"count":10}' >/dev/null
expect_err "503 beyond the retry budget" "unavailable" 'HTTP 503 ServiceUnavailable.*gave up after 3 attempts' \
  "$PROBE" --kubeconfig "$KC" --retries 2 --backoff-ms 20 get pods default web-0
ctl DELETE /_fake/inject >/dev/null

ctl POST /_fake/inject '{"latencyMs":3000,"count":1}' >/dev/null
T0=$(now_ms)
expect_err "per-request timeout" "timeout" 'no answer from the Kubernetes API .* within 500 ms' \
  "$PROBE" --kubeconfig "$KC" --timeout-ms 500 --retries 0 get pods default web-0
T1=$(now_ms)
if [ $((T1 - T0)) -lt 2500 ]; then ok "timeout cut the request short ($((T1 - T0)) ms)"; else fail "timeout took $((T1 - T0)) ms"; fi

expect_err "response size limit" "limit exceeded" 'exceeds the 65536-byte limit' \
  "$PROBE" --kubeconfig "$KC" --max-response 65536 get configmaps default big
expect_ok "the same object within the default limit" P get configmaps default big

T0=$(now_ms)
expect_ok "QPS limit: 6 requests at 5/s, burst 1" "$PROBE" --kubeconfig "$KC" --qps 5 --burst 1 repeat 6 pods default web-0
T1=$(now_ms)
if [ $((T1 - T0)) -ge 900 ]; then ok "QPS limit observable ($((T1 - T0)) ms >= ~1000 ms)"; else fail "QPS limit not applied: $((T1 - T0)) ms"; fi

# ---- authorization and authentication ---------------------------------------------------------------------
ctl POST /_fake/forbid '[{"user":"admin","verb":"delete","resource":"pods"}]' >/dev/null
expect_err "403 Forbidden" "permission denied" \
  'pods "web-0" is forbidden: User "admin" cannot delete resource "pods" in API group "" in the namespace "default"' \
  P delete pods default web-0
ctl POST /_fake/forbid '[]' >/dev/null

clear_requests
expect_ok "client certificate authentication (files)" "$PROBE" --kubeconfig "$D/kube/cert.yaml" get pods default web-0
expect_ok "client certificate authentication (inline data)" "$PROBE" --kubeconfig "$D/kube/certdata.yaml" get pods default web-0
requests
expect_py "the apiserver saw user alice, no bearer token" "$D/req.json" \
  'all(r["user"]=="alice" and r["authorization"] is None for r in d["items"])'
expect_ok "tokenFile in a kubeconfig (relative to it)" "$PROBE" --kubeconfig "$D/kube/tokenfile.yaml" get pods default web-0

# In-cluster: service account directory and environment.
SA="$D/sa"
mkdir -p "$SA"
cp "$D/ca.crt" "$SA/ca.crt"
printf 'sigil\n' > "$SA/namespace"
printf 'tok-a' > "$SA/token"
export KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$PORT"
expect_ok "in-cluster: namespace from the service account" "$PROBE" --in-cluster "$SA" ns
if [ "$(cat "$D/out")" = sigil ]; then ok "in-cluster namespace is sigil"; else fail "in-cluster namespace: $(cat "$D/out")"; fi

# Rotation the kubelet way: a new file renamed over the old one.
clear_requests
rm -f "$D/go1"
"$PROBE" --in-cluster "$SA" get2 pods default web-0 "$D/go1" >"$D/rot.out" 2>"$D/rot.err" &
RPID=$!
for _ in $(seq 1 100); do grep -q "get 1 ok" "$D/rot.out" 2>/dev/null && break; sleep 0.05; done
printf 'tok-b' > "$SA/token.new" && mv "$SA/token.new" "$SA/token"
ctl POST /_fake/tokens '{"tokens":{"tok-b":"system:serviceaccount:sigil:sigil-csi","admin-token":"admin"}}' >/dev/null
touch "$D/go1"
if wait $RPID && grep -q "get 2 ok" "$D/rot.out"; then ok "token rotation: second request succeeds"; else fail "token rotation"; cat "$D/rot.err"; fi
requests
expect_py "rotated token re-read from the file" "$D/req.json" \
  '[r["authorization"] for r in d["items"]]==["Bearer tok-a","Bearer tok-b"] and [r["status"] for r in d["items"]]==[200,200]'

# Rotation the stat cannot see (same inode, size and mtime): the 401 makes
# the client read the file again.
clear_requests
rm -f "$D/go2"
"$PROBE" --in-cluster "$SA" get2 pods default web-0 "$D/go2" >"$D/rot.out" 2>"$D/rot.err" &
RPID=$!
for _ in $(seq 1 100); do grep -q "get 1 ok" "$D/rot.out" 2>/dev/null && break; sleep 0.05; done
touch -r "$SA/token" "$D/mtime.ref"
printf 'tok-c' > "$SA/token"
touch -r "$D/mtime.ref" "$SA/token"
ctl POST /_fake/tokens '{"tokens":{"tok-c":"system:serviceaccount:sigil:sigil-csi","admin-token":"admin"}}' >/dev/null
touch "$D/go2"
if wait $RPID && grep -q "get 2 ok" "$D/rot.out"; then ok "token rotation behind a 401"; else fail "token rotation behind a 401"; cat "$D/rot.err"; fi
requests
expect_py "401 with the old token, then 200 with the re-read one" "$D/req.json" \
  '[(r["authorization"],r["status"]) for r in d["items"]]==[("Bearer tok-b",200),("Bearer tok-b",401),("Bearer tok-c",200)]'
unset KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT

sed -i "s|certificate-authority: ca.crt|certificate-authority: $D/cca.crt|" "$D/kube/wrong.yaml"
expect_err "server certificate from another CA is refused" "unavailable" 'not trusted' \
  "$PROBE" --kubeconfig "$D/kube/wrong.yaml" --retries 0 get pods default web-0

t_finish
