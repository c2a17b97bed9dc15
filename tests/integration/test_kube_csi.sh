#!/bin/bash
# sigil-csi with a Kubernetes API (the fake apiserver, tests/fakes/): 
# CreateVolume copies PVC annotations (both prefixes) into the volume
# context and fails early on a gone PVC (NOT_FOUND), a broken annotation
# (INVALID_ARGUMENT naming the key) or an unreachable apiserver
# (UNAVAILABLE), driven by Python grpcio; embedded-CA publishes (sigilctl,
# as the kubelet) get their names from the API and are refused for pods
# on another node (PERMISSION_DENIED), with nothing written when refused
# or when the apiserver is down.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CSI="$SIGIL_BUILD_DIR/sigil-csi"
FAKE="$SIGIL_SOURCE_DIR/tests/fakes/kube_apiserver.py"
D="$T_DIR"
SOCK="$D/csi.sock"
PODS="$D/pods"
mkdir -p "$PODS"
[ -x "$CSI" ] || { echo "sigil-csi not built"; exit 1; }

# ---- the fake apiserver's serving certificate ----------------------------------
fake_kube_tls "$D/ca" "$D/srv"

# ---- objects as a cluster has them: two nodes, pods of a StatefulSet with a
# headless service (subdomain), PVCs of ephemeral volumeClaimTemplates ------------
/usr/bin/python3 - "$D/seed.json" <<'EOF'
import json, sys
def node(name, internal, external=None):
    addrs = [{"type": "InternalIP", "address": internal}, {"type": "Hostname", "address": name}]
    if external:
        addrs.append({"type": "ExternalIP", "address": external})
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"addresses": addrs, "conditions": [{"type": "Ready", "status": "True"}]}}
def pod(name, node_name, ip=None, subdomain="web"):
    spec = {"serviceAccountName": "web", "hostname": name, "subdomain": subdomain,
            "containers": [{"name": "app", "image": "nginx:1.25"}],
            "volumes": [{"name": "tls", "ephemeral": {"volumeClaimTemplate": {
                "metadata": {"annotations": {"secrets.sigil.dev/class": "tls"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "secrets.sigil.dev",
                         "resources": {"requests": {"storage": "1"}}}}}}]}
    if node_name:
        spec["nodeName"] = node_name
    status = {"phase": "Pending"}
    if ip:
        status.update({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": spec, "status": status}
def pvc(name, annotations, owner="web-0"):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": owner,
                                              "uid": "0b5e8f5e-2222-4d0e-8a0e-9c3b1b2a3c4d",
                                              "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "secrets.sigil.dev",
                     "resources": {"requests": {"storage": "1"}}},
            "status": {"phase": "Pending"}}
items = [
    node("node-a", "192.168.7.11", "203.0.113.7"), node("node-b", "192.168.7.12"),
    pod("web-0", "node-a", ip="10.244.1.7"), pod("web-1", "node-b", ip="10.244.2.9"),
    pod("web-2", None),
    pvc("web-0-tls", {"secrets.sigil.dev/class": "tls",
                      "secrets.stackable.tech/scope": "pod,node",
                      "secrets.stackable.tech/format": "tls-pem",
                      "volume.kubernetes.io/storage-provisioner": "secrets.sigil.dev",
                      "volume.kubernetes.io/selected-node": "node-a"}),
    pvc("web-0-broken", {"secrets.sigil.dev/class": "tls",
                         "secrets.sigil.dev/format": "tls-bogus"}),
    pvc("web-0-nokeys", {"volume.kubernetes.io/selected-node": "node-a"}),
]
json.dump({"items": items}, open(sys.argv[1], "w"))
EOF

/usr/bin/python3 "$FAKE" --cert "$D/srv.crt" --key "$D/srv.key" \
  --token csi-token=system:serviceaccount:sigil:sigil-csi \
  --seed "$D/seed.json" --port-file "$D/port" >"$D/fake.log" 2>&1 &
FAKE_PID=$!
T_PIDS+=("$FAKE_PID")
for _ in $(seq 1 100); do [ -s "$D/port" ] && break; sleep 0.05; done
PORT=$(cat "$D/port")
wait_port "$PORT" "$FAKE_PID" || { echo "fake apiserver did not start"; cat "$D/fake.log"; exit 1; }
URL="https://127.0.0.1:$PORT"
ctl() { curl -sS --fail --cacert "$D/ca.crt" -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$URL$2"; }

cat > "$D/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: $URL
    certificate-authority: $D/ca.crt
users:
- name: sigil-csi
  user:
    token: csi-token
contexts:
- name: fake
  context: {cluster: fake, user: sigil-csi, namespace: default}
current-context: fake
EOF

"$CSI" --endpoint "unix://$SOCK" --node-id node-a --state-dir "$D/state" --key-pool rsa-2048=0 \
  --kubeconfig "$D/kubeconfig" --stackable-compat >"$D/csi.log" 2>&1 &
CSI_PID=$!
T_PIDS+=("$CSI_PID")
for _ in $(seq 1 100); do
  [ -S "$SOCK" ] && "$SIGILCTL" info --endpoint "$SOCK" >/dev/null 2>&1 && break
  kill -0 "$CSI_PID" 2>/dev/null || break
  sleep 0.1
done
"$SIGILCTL" info --endpoint "$SOCK" >/dev/null 2>&1 || { echo "sigil-csi did not come up"; cat "$D/csi.log"; exit 1; }
check_grep "sigil-csi says it uses the Kubernetes API" "Kubernetes API" "$D/csi.log"

# ---- CreateVolume through an independent CSI client (Python grpcio) -------------
# Writes one "ok|FAIL - what" line per check.
cv_checks() { # PHASE: "up" or "down"
  /usr/bin/python3 - "$SOCK" "$D/py" "$1" <<'EOF'
import os, subprocess, sys
import grpc
sock, out, phase = sys.argv[1], sys.argv[2], sys.argv[3]
src = os.environ["SIGIL_SOURCE_DIR"]
os.makedirs(out, exist_ok=True)
subprocess.run(["protoc", "-I" + os.path.join(src, "proto"), "-I/usr/include", "--python_out=" + out,
                os.path.join(src, "proto", "csi.proto")], check=True)
sys.path.insert(0, out)
import csi_pb2 as pb
ch = grpc.insecure_channel("unix:" + sock)
grpc.channel_ready_future(ch).result(timeout=10)
create = ch.unary_unary("/csi.v1.Controller/CreateVolume",
                        request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=pb.CreateVolumeResponse.FromString)
cap = pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(),
                          access_mode=pb.VolumeCapability.AccessMode(
                              mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))
def check(cond, what):
    print(("ok   - " if cond else "FAIL - ") + what)
def call(name, params):
    req = pb.CreateVolumeRequest(name=name, volume_capabilities=[cap], parameters=params)
    try:
        return grpc.StatusCode.OK, "", create(req, timeout=60)
    except grpc.RpcError as e:
        return e.code(), e.details(), None
def meta(pvc):
    # what external-provisioner --extra-create-metadata adds
    return {"csi.storage.k8s.io/pvc/name": pvc, "csi.storage.k8s.io/pvc/namespace": "default",
            "csi.storage.k8s.io/pv/name": "pvc-" + pvc}
if phase == "up":
    # StorageClass parameters: the class and scope settings are overridden by
    # the PVC (scope under the other prefix), the lifetime stays.
    params = meta("web-0-tls")
    params.update({"secrets.sigil.dev/class": "other", "secrets.sigil.dev/scope": "node",
                   "secrets.sigil.dev/backend.autotls.cert.lifetime": "2d"})
    code, det, resp = call("pvc-web-0-tls", params)
    check(code == grpc.StatusCode.OK, "CreateVolume from PVC annotations: OK (%s %s)" % (code, det))
    ctx = dict(resp.volume.volume_context) if resp else {}
    check(ctx.get("secrets.sigil.dev/class") == "tls", "sigil-prefixed annotation in the context, over the parameter")
    check(ctx.get("secrets.stackable.tech/scope") == "pod,node", "Stackable-prefixed annotation in the context")
    check(ctx.get("secrets.stackable.tech/format") == "tls-pem", "second Stackable annotation in the context")
    check("secrets.sigil.dev/scope" not in ctx, "parameter for a setting the PVC sets under the other prefix is dropped")
    check(ctx.get("secrets.sigil.dev/backend.autotls.cert.lifetime") == "2d", "parameter the PVC does not set is kept")
    check(not any(k.startswith("volume.kubernetes.io/") for k in ctx), "foreign annotations stay out")
    check(not any(k.startswith("csi.storage.k8s.io/") for k in ctx), "provisioner metadata stays out")
    check(resp is not None and resp.volume.volume_id.startswith("sigil-"), "volume id")
    code, det, _ = call("pvc-gone", meta("web-0-gone"))
    check(code == grpc.StatusCode.NOT_FOUND, "gone PVC: NOT_FOUND (%s)" % code)
    check("web-0-gone" in det, "NOT_FOUND names the PVC (%s)" % det)
    code, det, _ = call("pvc-broken", meta("web-0-broken"))
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "broken annotation: INVALID_ARGUMENT (%s)" % code)
    check("secrets.sigil.dev/format" in det and "web-0-broken" in det,
          "INVALID_ARGUMENT names the key and the PVC (%s)" % det)
    code, det, _ = call("pvc-nokeys", meta("web-0-nokeys"))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "class" in det,
          "PVC without a class: INVALID_ARGUMENT at provisioning (%s)" % det)
    p = meta("web-0-tls"); del p["csi.storage.k8s.io/pvc/namespace"]
    code, det, _ = call("pvc-half", p)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "pvc/name without pvc/namespace: INVALID_ARGUMENT")
    p = meta("Web_0!"); 
    code, det, _ = call("pvc-badname", p)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "PVC name that is no Kubernetes name: INVALID_ARGUMENT (%s)" % code)
    # Without the provisioner metadata the parameters are copied as before.
    code, det, resp = call("inline", {"secrets.sigil.dev/class": "tls"})
    check(code == grpc.StatusCode.OK and dict(resp.volume.volume_context) == {"secrets.sigil.dev/class": "tls"},
          "CreateVolume without PVC metadata copies its parameters")
else:
    code, det, _ = call("pvc-web-0-tls", meta("web-0-tls"))
    check(code == grpc.StatusCode.UNAVAILABLE, "apiserver down: CreateVolume UNAVAILABLE (%s %s)" % (code, det))
EOF
}
# Feeds the python result lines into the harness counters.
tally() {
  local line
  while IFS= read -r line; do
    case "$line" in
      "ok   - "*) ok "${line#ok   - }" ;;
      "FAIL - "*) fail "${line#FAIL - }" ;;
      *) echo "$line" ;;
    esac
  done
}
cv_checks up > "$D/cv.txt" 2>&1 || true
tally < "$D/cv.txt"
grep -q "^ok   - CreateVolume from PVC" "$D/cv.txt" || { fail "python CreateVolume checks ran"; cat "$D/cv.txt"; }

# A transient apiserver failure (503 on every attempt) is UNAVAILABLE, which
# external-provisioner retries.
ctl POST /_fake/inject '{"status": 503, "count": 50, "path": "persistentvolumeclaims"}' >/dev/null
cv_checks down > "$D/cv503.txt" 2>&1 || true
sed 's/apiserver down/apiserver answering 503/' "$D/cv503.txt" | tally
ctl DELETE /_fake/inject >/dev/null

# ---- publishes by the embedded CA, checked against the API ------------------------
pub() { # VOLUME TARGET POD ATTR...
  local vid=$1 tgt=$2 podn=$3; shift 3
  local args=()
  for a in "$@"; do args+=(--attr "$a"); done
  "$SIGILCTL" publish --endpoint "$SOCK" --volume-id "$vid" --target "$tgt" --pod "$podn" \
    --namespace default "${args[@]}"
}
empty_target() { [ ! -e "$1" ] || [ -z "$(ls -A "$1")" ]; }

check "publish for web-0 on this node (node,pod scopes)" pub vol-web0 "$PODS/web0" web-0 class=tls scope=node,pod
openssl x509 -in "$PODS/web0/tls.crt" -noout -text > "$D/web0.txt" 2>&1 || true
check_grep "node scope: node name" "DNS:node-a" "$D/web0.txt"
check_grep "node scope: node InternalIP from the Node object" "IP Address:192.168.7.11" "$D/web0.txt"
check_grep "node scope: node ExternalIP from the Node object" "IP Address:203.0.113.7" "$D/web0.txt"
check_grep "pod scope: subdomain name" "DNS:web.default.svc.cluster.local" "$D/web0.txt"
check_grep "pod scope: pod name under the subdomain" "DNS:web-0.web.default.svc.cluster.local" "$D/web0.txt"
check_grep "pod scope: pod IP from the Pod status" "IP Address:10.244.1.7" "$D/web0.txt"
check "the certificate verifies against the volume's CA" openssl verify -CAfile "$PODS/web0/ca.crt" "$PODS/web0/tls.crt"

# renewal=restart (the default): the restarter annotation, merge-patched onto
# the pod under both prefixes (--stackable-compat), keyed as Stackable keys it.
api() { curl -sS --fail --cacert "$D/ca.crt" -H "Authorization: Bearer csi-token" "$URL$1"; }
api /api/v1/namespaces/default/pods/web-0 > "$D/pod-web0.json"
openssl x509 -in "$PODS/web0/tls.crt" -noout -enddate | cut -d= -f2 > "$D/enddate.txt"
restarter_ok() {
  /usr/bin/python3 - "$D/pod-web0.json" "$(cat "$D/enddate.txt")" <<'EOF2'
import calendar, hashlib, json, sys, time
pod = json.load(open(sys.argv[1]))
ann = pod["metadata"]["annotations"]
tag = hashlib.sha256(b"secrets.stackable.tech/volume:vol-web0").hexdigest()[:32]
sigil = ann["restarter.sigil.dev/expires-at." + tag]
stk = ann["restarter.stackable.tech/expires-at." + tag]
not_after = calendar.timegm(time.strptime(sys.argv[2], "%b %d %H:%M:%S %Y GMT"))
t = calendar.timegm(time.strptime(sigil, "%Y-%m-%dT%H:%M:%SZ"))
assert stk == sigil[:-1] + "+00:00", (sigil, stk)
# notAfter minus the restart buffer (default 6h for the 24h default lifetime)
assert t == not_after - 6 * 3600, (t, not_after)
# the merge patch left the other annotations alone
assert pod["metadata"]["labels"] == {"app": "web"}
print("ok")
EOF2
}
check "restarter annotations on the pod (both prefixes, Stackable's tag, notAfter - buffer)" restarter_ok

# Events on the pod, posted by the background sender.
events_ok() {
  for _ in $(seq 1 100); do
    api "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dweb-0" > "$D/ev.json" || true
    /usr/bin/python3 - "$D/ev.json" <<'EOF2' && return 0
import json, sys
d = json.load(open(sys.argv[1]))
ok = [e for e in d.get("items", [])
      if e["involvedObject"] == {**e["involvedObject"], "kind": "Pod", "name": "web-0", "namespace": "default"}
      and e["source"] == {"component": "sigil-csi", "host": "node-a"}
      and e["metadata"]["name"].startswith("web-0.") and e["count"] == 1
      and e["type"] == "Normal" and e["reportingInstance"] == "node-a"]
sys.exit(0 if ok else 1)
EOF2
    sleep 0.1
  done
  return 1
}
check "an Event about the issued volume on pod web-0" events_ok

if pub vol-web1 "$PODS/web1" web-1 class=tls scope=node,pod > "$D/web1.txt" 2>&1; then
  fail "publish for a pod on node-b accepted"
else
  check_grep "pod on another node: PERMISSION_DENIED" "PERMISSION_DENIED" "$D/web1.txt"
  check_grep "the refusal names the pod's node" "node-b" "$D/web1.txt"
fi
check "nothing written for the refused pod" empty_target "$PODS/web1"

if pub vol-web2 "$PODS/web2" web-2 class=tls scope=pod > "$D/web2.txt" 2>&1; then
  fail "publish for an unscheduled pod accepted"
else
  # Not a node's pod at all yet: refused as a state the pod is in, as
  # kube/podinfo.h reports it (a kubelet never mounts for such a pod).
  check_grep "unscheduled pod: FAILED_PRECONDITION" "FAILED_PRECONDITION.*not scheduled" "$D/web2.txt"
fi
check "nothing written for the unscheduled pod" empty_target "$PODS/web2"

if pub vol-ghost "$PODS/ghost" ghost-0 class=tls scope=pod > "$D/ghost.txt" 2>&1; then
  fail "publish for a pod the API does not know accepted"
else
  check_grep "unknown pod: NOT_FOUND" "NOT_FOUND" "$D/ghost.txt"
fi
check "nothing written for the unknown pod" empty_target "$PODS/ghost"

# ---- the apiserver goes away ------------------------------------------------------------
kill "$FAKE_PID"
wait "$FAKE_PID" 2>/dev/null || true
if pub vol-down "$PODS/down" web-0 class=tls scope=node,pod > "$D/down.txt" 2>&1; then
  fail "publish with the apiserver down accepted"
else
  check_grep "apiserver down at publish: UNAVAILABLE" "UNAVAILABLE" "$D/down.txt"
fi
check "nothing written with the apiserver down" empty_target "$PODS/down"
cv_checks down > "$D/cvdown.txt" 2>&1 || true
tally < "$D/cvdown.txt"
check "sigil-csi still serves after the apiserver went away" "$SIGILCTL" info --endpoint "$SOCK"

kill -TERM "$CSI_PID"
rc=0
wait "$CSI_PID" || rc=$?
[ "$rc" -eq 0 ] && ok "sigil-csi stops cleanly on SIGTERM" || { fail "sigil-csi exit $rc"; tail -20 "$D/csi.log"; }
t_finish
