#!/bin/bash
# sigil-ca in a cluster (issue 6), against the fake apiserver over HTTPS:
# TokenReview authentication of projected service account tokens (node
# binding, audience, allow-lists, the cache), node authorization (a node
# only gets secrets for pods scheduled on it), names from the API for every
# scope (node IPs, pod subdomain/hostname/IPs, services, listener volumes),
# stale pod uids, the issuer CA published in a ConfigMap, and an apiserver
# that goes away (UNAVAILABLE, nothing issued).  Driven by Python grpcio.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CA="$SIGIL_BUILD_DIR/sigil-ca"
FAKE="$SIGIL_SOURCE_DIR/tests/fakes/kube_apiserver.py"
D="$T_DIR"
[ -x "$CA" ] || { echo "sigil-ca not built"; exit 1; }

# ---- the fake apiserver's TLS identity ---------------------------------------------
fake_kube_tls "$D/kca" "$D/srv"

# ---- the cluster: objects as a real one has them ---------------------------------------
# Projected tokens look like JWTs; sigil-ca reads only their "exp" (to bound
# its cache), the fake's TokenReview table says whose they are.
/usr/bin/python3 - "$D" <<'EOF'
import base64, json, sys, time
d = sys.argv[1]
def jwt(sub, exp, jti):
    b = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    return "%s.%s.%s" % (b({"alg": "RS256", "kid": "k1"}),
                         b({"aud": ["sigil-ca"], "exp": exp, "iat": exp - 3600, "sub": sub,
                            "jti": jti, "iss": "https://kubernetes.default.svc.cluster.local"}),
                         "c2lnbmF0dXJl")
now = int(time.time())
def sa_user(ns, sa, node=None, pod="sigil-csi-x", aud=("sigil-ca",)):
    u = {"username": "system:serviceaccount:%s:%s" % (ns, sa),
         "uid": "6f1c1f7e-1111-4c3a-9a59-%012d" % (hash(sa + str(node)) % 10**12),
         "groups": ["system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"],
         "audiences": list(aud)}
    if node:
        u["extra"] = {"authentication.kubernetes.io/pod-name": [pod],
                      "authentication.kubernetes.io/pod-uid": ["11111111-2222-3333-4444-%012d" % len(pod)],
                      "authentication.kubernetes.io/node-name": [node]}
    return u
tokens = {
    "node-a": (jwt("system:serviceaccount:sigil:sigil-csi", now + 3600, "node-a"), sa_user("sigil", "sigil-csi", "node-a", "sigil-csi-a")),
    "node-a2": (jwt("system:serviceaccount:sigil:sigil-csi", now + 3600, "node-a2"), sa_user("sigil", "sigil-csi", "node-a", "sigil-csi-a")),
    "node-b": (jwt("system:serviceaccount:sigil:sigil-csi", now + 3600, "node-b"), sa_user("sigil", "sigil-csi", "node-b", "sigil-csi-b")),
    "unbound": (jwt("system:serviceaccount:sigil:sigil-csi", now + 3600, "unbound"), sa_user("sigil", "sigil-csi")),
    "other-sa": (jwt("system:serviceaccount:shop:web", now + 3600, "other-sa"), sa_user("shop", "web", "node-a", "web-0")),
    "wrong-aud": (jwt("system:serviceaccount:sigil:sigil-csi", now + 3600, "wrong-aud"), sa_user("sigil", "sigil-csi", "node-a", aud=("https://kubernetes.default.svc",))),
    "admin": (jwt("system:serviceaccount:sigil:sigil-admin", now + 3600, "admin"), sa_user("sigil", "sigil-admin", "node-a", "ops")),
    "cold": (jwt("system:serviceaccount:sigil:sigil-csi", now + 3600, "cold"), sa_user("sigil", "sigil-csi", "node-a", "sigil-csi-a")),
}
reviews = {}
for name, (tok, user) in tokens.items():
    open("%s/tok-%s" % (d, name), "w").write(tok + "\n")
    reviews[tok] = user
# Not known to the apiserver: an invalid or expired token.
open("%s/tok-invalid" % d, "w").write(jwt("system:serviceaccount:sigil:sigil-csi", now - 60, "invalid") + "\n")
open("%s/tok-invalid2" % d, "w").write(jwt("system:serviceaccount:sigil:sigil-csi", now - 30, "invalid2") + "\n")

def ns(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
def node(name, addrs):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"addresses": addrs + [{"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}
def pod(name, node_name, uid, volumes, spec_extra=None, ips=None):
    spec = {"nodeName": node_name, "serviceAccountName": "web", "restartPolicy": "Always",
            "containers": [{"name": "app", "image": "nginx:1.25",
                            "volumeMounts": [{"name": v["name"], "mountPath": "/" + v["name"]} for v in volumes]}],
            "volumes": volumes}
    spec.update(spec_extra or {})
    st = {"phase": "Pending", "hostIP": "192.168.1.11", "qosClass": "BestEffort"}
    if ips:
        st.update({"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": i} for i in ips]})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "uid": uid, "labels": {"app": name.split("-")[0]}},
            "spec": spec, "status": st}
tls_vol = {"name": "tls", "csi": {"driver": "secrets.sigil.dev", "readOnly": True,
                                  "volumeAttributes": {"secrets.sigil.dev/class": "tls",
                                                       "secrets.sigil.dev/scope": "node,pod"}}}
listener_vol = {"name": "listener", "ephemeral": {"volumeClaimTemplate": {
    "metadata": {"annotations": {"listeners.stackable.tech/listener-class": "external-stable"}},
    "spec": {"storageClassName": "listeners.stackable.tech", "accessModes": ["ReadWriteMany"],
             "resources": {"requests": {"storage": "1"}}}}}}
items = [
    ns("sigil"), ns("shop"),
    node("node-a", [{"type": "InternalIP", "address": "192.168.1.11"},
                    {"type": "ExternalIP", "address": "203.0.113.11"}]),
    node("node-b", [{"type": "InternalIP", "address": "192.168.1.12"}]),
    pod("web-0", "node-a", "a0000000-0000-4000-8000-000000000001", [tls_vol],
        {"hostname": "host", "subdomain": "sub"}, ["10.244.1.7", "fd00:10:244:1::7"]),
    pod("kafka-0", "node-a", "a0000000-0000-4000-8000-000000000002", [tls_vol, listener_vol]),
    pod("db-0", "node-b", "a0000000-0000-4000-8000-000000000003", [tls_vol]),
    # A Job's pod that ran to completion on node-a.
    dict(pod("batch-0", "node-a", "a0000000-0000-4000-8000-000000000004", [tls_vol]),
         status={"phase": "Succeeded", "hostIP": "192.168.1.11", "qosClass": "BestEffort"}),
    # What Kubernetes makes for the ephemeral volume, and listener-operator for the PVC.
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
     "metadata": {"name": "kafka-0-listener", "namespace": "shop",
                  "annotations": {"listeners.stackable.tech/listener-class": "external-stable",
                                  "volume.kubernetes.io/storage-provisioner": "listeners.stackable.tech"},
                  "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "kafka-0",
                                       "uid": "a0000000-0000-4000-8000-000000000002",
                                       "controller": True, "blockOwnerDeletion": True}]},
     "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1"}},
              "storageClassName": "listeners.stackable.tech", "volumeName": "pvc-1234"},
     "status": {"phase": "Bound"}},
    {"apiVersion": "listeners.stackable.tech/v1alpha1", "kind": "Listener",
     "metadata": {"name": "kafka-0-listener", "namespace": "shop",
                  "ownerReferences": [{"apiVersion": "v1", "kind": "PersistentVolume", "name": "pvc-1234",
                                       "uid": "b0000000-0000-4000-8000-000000000009", "controller": True}]},
     "spec": {"className": "external-stable", "ports": [{"name": "kafka", "port": 9093, "protocol": "TCP"}],
              "extraPodSelectorLabels": {"listeners.stackable.tech/mnt.1234": "1234"}},
     "status": {"serviceName": "kafka-0-listener",
                "ingressAddresses": [{"address": "kafka-0.example.com", "addressType": "Hostname",
                                      "ports": {"kafka": 31093}},
                                     {"address": "203.0.113.11", "addressType": "IP",
                                      "ports": {"kafka": 31093}}],
                "nodePorts": {"kafka": 31093}}},
]
json.dump({"items": items, "tokenReviews": reviews}, open(d + "/seed.json", "w"))
EOF

start_fake() {
  rm -f "$D/port"
  /usr/bin/python3 "$FAKE" --cert "$D/srv.crt" --key "$D/srv.key" --port "$1" \
    --token ca-token=system:serviceaccount:sigil:sigil-ca --seed "$D/seed.json" \
    --port-file "$D/port" >>"$D/fake.log" 2>&1 &
  FAKE_PID=$!
  T_PIDS+=("$FAKE_PID")
  wait_port "$1" "$FAKE_PID" || { echo "fake apiserver did not start"; cat "$D/fake.log"; exit 1; }
}
KPORT=$(free_port)
start_fake "$KPORT"
URL="https://127.0.0.1:$KPORT"

ctl() {
  if [ $# -ge 3 ]; then
    curl -sS --fail --cacert "$D/kca.crt" -H "Authorization: Bearer ca-token" -X "$1" \
      -H 'Content-Type: application/json' -d "$3" "$URL$2"
  else
    curl -sS --fail --cacert "$D/kca.crt" -H "Authorization: Bearer ca-token" -X "$1" "$URL$2"
  fi
}
# reviews: how many TokenReviews sigil-ca has sent since the last clear.
reviews() {
  ctl GET /_fake/requests | /usr/bin/python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["items"] if r["method"]=="POST" and r["path"].endswith("/tokenreviews")))'
}

cat > "$D/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: $URL
    certificate-authority: $D/kca.crt
users:
- name: sigil-ca
  user:
    token: ca-token
contexts:
- name: fake
  context:
    cluster: fake
    user: sigil-ca
    namespace: sigil
current-context: fake
EOF

# A static token too: both authenticators at once (tokens file first).
STATIC=static-node-a-token-0123456789
printf '%s node-a\n' "$STATIC" > "$D/tokens"
chmod 600 "$D/tokens"
printf '%s\n' "$STATIC" > "$D/tok-static"

CA_PORT=$(free_port)
"$CA" --listen "127.0.0.1:$CA_PORT" --state-dir "$D/state" --kubeconfig "$D/kubeconfig" \
  --tokens-file "$D/tokens" --admin-service-account sigil/sigil-admin >"$D/ca.log" 2>&1 &
CA_PID=$!
T_PIDS+=("$CA_PID")
wait_port "$CA_PORT" "$CA_PID" || { echo "sigil-ca did not start"; cat "$D/ca.log"; exit 1; }
check "sigil-ca started with --kubeconfig" kill -0 "$CA_PID"

# ---- the grpcio client ----------------------------------------------------------------------
mkdir -p "$D/py"
protoc -I"$SIGIL_SOURCE_DIR/proto" --python_out="$D/py" "$SIGIL_SOURCE_DIR/proto/issuer.proto"
cat > "$D/client.py" <<'EOF'
"""client.py PORT BUNDLE TOKENFILE METHOD [NS POD UID SCOPES OUT]: one Issuer
call; prints the status code name and details; writes the leaf as PEM."""
import os, ssl, subprocess, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
import grpc
import issuer_pb2 as pb
port, bundle, tokfile, method = sys.argv[1:5]
token = open(tokfile).read().strip()
ch = grpc.secure_channel("localhost:%s" % port,
                         grpc.ssl_channel_credentials(root_certificates=open(bundle, "rb").read()))
def call(m, req, resp):
    f = ch.unary_unary("/sigil.v1.Issuer/" + m, request_serializer=lambda x: x.SerializeToString(),
                       response_deserializer=resp.FromString)
    try:
        return "OK", f(req, metadata=[("authorization", "Bearer " + token)], timeout=60), ""
    except grpc.RpcError as e:
        return e.code().name, None, e.details()
if method == "Issue":
    ns, pod, uid, scopes, out = sys.argv[5:10]
    key = out + ".key"
    der = subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-nodes", "-keyout", key, "-subj", "/CN=ignored", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    sc = []
    for s in filter(None, scopes.split(",")):
        k, _, n = s.partition("=")
        sc.append(pb.Scope(kind={"node": pb.Scope.NODE, "pod": pb.Scope.POD, "service": pb.Scope.SERVICE,
                                 "listener-volume": pb.Scope.LISTENER_VOLUME}[k], name=n))
    req = pb.IssueRequest(class_name="tls", pod=pb.PodIdentity(namespace=ns if ns != "-" else "",
                                                               name=pod if pod != "-" else "",
                                                               uid=uid if uid != "-" else ""),
                          scopes=sc, csr=der, lifetime_seconds=3600)
    code, r, det = call("Issue", req, pb.IssueResponse)
    if r is not None:
        open(out, "w").write(ssl.DER_cert_to_PEM_cert(r.certificate_chain[0]))
elif method == "Rotate":
    code, r, det = call("Rotate", pb.RotateRequest(class_name="tls"), pb.RotateResponse)
else:
    code, r, det = call("Status", pb.StatusRequest(), pb.StatusResponse)
print(code, det)
sys.exit(0 if code == "OK" else 1)
EOF
BUNDLE="$D/state/issuer-ca.crt"
# cli TOKEN METHOD ...: stdout+stderr into $D/last
cli() { /usr/bin/python3 "$D/client.py" "$CA_PORT" "$BUNDLE" "$D/tok-$1" "${@:2}" >"$D/last" 2>&1; }
# issue_ok DESC TOKEN NS POD UID SCOPES NAME: issued; text of the leaf in $D/NAME.txt
issue_ok() {
  local desc=$1 name=$7
  if cli "$2" Issue "$3" "$4" "$5" "$6" "$D/$name.pem"; then
    openssl x509 -in "$D/$name.pem" -noout -text > "$D/$name.txt"; ok "$desc"
  else fail "$desc"; sed 's/^/     /' "$D/last"; : > "$D/$name.txt"; fi
}
# issue_fails DESC CODE REGEX TOKEN NS POD UID SCOPES
issue_fails() {
  local desc=$1 code=$2 re=$3; shift 3
  if cli "$1" Issue "$2" "$3" "$4" "$5" "$D/x.pem"; then fail "$desc (unexpectedly issued)"; return; fi
  if grep -qE "^$code " "$D/last" && grep -qE -- "$re" "$D/last"; then ok "$desc"
  else fail "$desc: want $code /$re/"; sed 's/^/     /' "$D/last"; fi
}
issued_count() { grep -c "issued tls certificate" "$D/ca.log" || true; }
UID_WEB=a0000000-0000-4000-8000-000000000001

# ---- names from the API, for each scope --------------------------------------------------
ctl DELETE /_fake/requests >/dev/null
issue_ok "node scope for a pod on node-a with node-a's token" node-a shop web-0 "$UID_WEB" node n1
check_grep "node scope: the node name" "DNS:node-a" "$D/n1.txt"
check_grep "node scope: the InternalIP" "IP Address:192.168.1.11" "$D/n1.txt"
check_grep "node scope: the ExternalIP" "IP Address:203.0.113.11" "$D/n1.txt"
check_fails "node scope: the node's Hostname entry is not an IP SAN" grep -q "node-a.internal" "$D/n1.txt"

issue_ok "pod scope" node-a shop web-0 - pod p1
check_grep "pod scope: {subdomain}.{ns}.svc" "DNS:sub.shop.svc.cluster.local" "$D/p1.txt"
check_grep "pod scope: {hostname}.{subdomain}.{ns}.svc" "DNS:host.sub.shop.svc.cluster.local" "$D/p1.txt"
check_grep "pod scope: the pod IP" "IP Address:10.244.1.7" "$D/p1.txt"
check_grep "pod scope: the pod's IPv6 address" "IP Address:FD00:10:244:1:0:0:0:7" "$D/p1.txt"
check_grep "pod scope: CN is the pod name" "Subject: CN ?= ?web-0" "$D/p1.txt"

issue_ok "service scope" node-a shop web-0 - service=web s1
check_grep "service=web -> web.shop.svc.cluster.local" "DNS:web.shop.svc.cluster.local" "$D/s1.txt"

issue_ok "listener-volume scope" node-a shop kafka-0 - listener-volume=listener l1
check_grep "listener-volume: the Listener's host name" "DNS:kafka-0.example.com" "$D/l1.txt"
check_grep "listener-volume: the Listener's IP" "IP Address:203.0.113.11" "$D/l1.txt"
issue_fails "listener-volume the pod does not have" FAILED_PRECONDITION "no volume named nope" \
  node-a shop kafka-0 - listener-volume=nope

# ---- node authorization ---------------------------------------------------------------------
before=$(issued_count)
issue_fails "node-b's token for a pod on node-a" PERMISSION_DENIED "node node-b .*web-0.*scheduled on node-a" \
  node-b shop web-0 - node,pod
issue_fails "node-b's token, listener scope on node-a's pod: still refused first" PERMISSION_DENIED \
  "scheduled on node-a" node-b shop kafka-0 - listener-volume=nope
check "nothing issued for the refused requests" test "$(issued_count)" = "$before"
issue_ok "node-b's token for its own pod" node-b shop db-0 - node b1
check_grep "node-b's certificate names node-b" "DNS:node-b" "$D/b1.txt"
check_grep "node-b's certificate has node-b's IP" "IP Address:192.168.1.12" "$D/b1.txt"
issue_fails "missing pod" NOT_FOUND 'pods "ghost" not found' node-a shop ghost - pod
issue_fails "a pod that ran to completion gets nothing" FAILED_PRECONDITION "has terminated \\(phase Succeeded\\)" \
  node-a shop batch-0 - pod
issue_fails "stale pod uid" FAILED_PRECONDITION "was replaced" node-a shop web-0 \
  a0000000-0000-4000-8000-00000000dead pod
issue_fails "no pod given" INVALID_ARGUMENT "namespace and name are required" node-a - - - node
issue_ok "static tokens-file token works beside TokenReview" static shop web-0 - node st1
check_grep "static token: node from the tokens file" "DNS:node-a" "$D/st1.txt"
issue_fails "static token: node authorization applies too" PERMISSION_DENIED "scheduled on node-b" \
  static shop db-0 - node

# ---- authentication ---------------------------------------------------------------------------
issue_fails "invalid or expired token" UNAUTHENTICATED "not accepted by the Kubernetes API" \
  invalid shop web-0 - pod
issue_fails "token without a node binding" UNAUTHENTICATED "not bound to a node" unbound shop web-0 - pod
issue_fails "token of another service account" PERMISSION_DENIED "shop/web may not act as a node" \
  other-sa shop web-0 - pod
issue_fails "token for another audience" UNAUTHENTICATED "audiences" wrong-aud shop web-0 - pod
issue_fails "admin token may not issue for pods" PERMISSION_DENIED "admin credentials" admin shop web-0 - pod
check "admin token may rotate" cli admin Rotate
check_fails "node token may not rotate" cli node-a Rotate

ctl DELETE /_fake/requests >/dev/null
check "first call with a fresh token" cli node-a2 Issue shop web-0 - node "$D/c1.pem"
check "second call with the same token" cli node-a2 Issue shop web-0 - node "$D/c2.pem"
check "TokenReview cache: one review for two calls" test "$(reviews)" = 1
ctl DELETE /_fake/requests >/dev/null
check_fails "a refused token" cli invalid2 Status
check_fails "the same refused token again" cli invalid2 Status
check "negative cache: one review for two refusals" test "$(reviews)" = 1

# ---- the issuer CA in a ConfigMap ---------------------------------------------------------------
ctl GET /api/v1/namespaces/sigil/configmaps/sigil-ca-bundle > "$D/cm.json" || true
check "ConfigMap sigil/sigil-ca-bundle exists" test -s "$D/cm.json"
check "its ca.crt is the issuer CA" /usr/bin/python3 -c \
  'import json,sys; sys.exit(json.load(open(sys.argv[1]))["data"]["ca.crt"] != open(sys.argv[2]).read())' \
  "$D/cm.json" "$BUNDLE"

# ---- the apiserver goes away ----------------------------------------------------------------------
kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null || true
before=$(issued_count)
issue_fails "apiserver down, uncached token: UNAVAILABLE" UNAVAILABLE "cannot authenticate" cold shop web-0 - pod
issue_fails "apiserver down, cached token: UNAVAILABLE" UNAVAILABLE "Kubernetes API" node-a shop web-0 - pod
check "nothing issued while the apiserver is down" test "$(issued_count)" = "$before"
start_fake "$KPORT"
issue_ok "apiserver back: issuing again" cold shop web-0 - node back1

kill -TERM "$CA_PID"
for _ in $(seq 1 100); do kill -0 "$CA_PID" 2>/dev/null || break; sleep 0.1; done
check_fails "sigil-ca exits on SIGTERM" kill -0 "$CA_PID"
t_finish
