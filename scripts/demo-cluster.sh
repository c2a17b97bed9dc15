#!/usr/bin/env bash
# The cluster part of the demo (called by demo-run.sh): sigil-ca and
# sigil-csi against a Kubernetes API.  No kube-apiserver can run here, so
# the API is the fake one the tests use (tests/fakes/kube_apiserver.py:
# real paths, JSON, resourceVersions, watches, TokenReview), seeded with the
# objects a cluster would have: two nodes, pods, a SecretClass CRD object,
# a TrustStore, and the TokenReview answers for the nodes' projected tokens.
set -euo pipefail
BUILD=${1:?usage: demo-cluster.sh BUILD_DIR OUT_DIR}
OUT=${2:?usage: demo-cluster.sh BUILD_DIR OUT_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CTL="$BUILD/sigilctl"
D="$OUT/cluster"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
mkdir -p "$D/pods"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The apiserver's TLS identity.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/kube-ca.key" \
  -out "$D/kube-ca.crt" -days 1 -subj /CN=demo-kubernetes-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/apiserver.key" \
  -out "$D/apiserver.csr" -subj /CN=kube-apiserver 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$D/apiserver.ext"
openssl x509 -req -in "$D/apiserver.csr" -CA "$D/kube-ca.crt" -CAkey "$D/kube-ca.key" -CAcreateserial \
  -days 1 -extfile "$D/apiserver.ext" -out "$D/apiserver.crt" 2>/dev/null

# The cluster's objects, and projected service account tokens for the two
# nodes' sigil-csi pods (bound tokens carry the node name).
python3 - "$D" <<'EOF'
import base64, json, sys, time
d = sys.argv[1]
now = int(time.time())
def jwt(sub, jti):
    b = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    return "%s.%s.%s" % (b({"alg": "RS256", "kid": "demo"}),
                         b({"aud": ["sigil-ca"], "exp": now + 3600, "iat": now, "sub": sub, "jti": jti}),
                         "c2lnbmF0dXJl")
def csi_user(node):
    return {"username": "system:serviceaccount:sigil:sigil-csi", "uid": "uid-sigil-csi-" + node,
            "groups": ["system:serviceaccounts", "system:serviceaccounts:sigil", "system:authenticated"],
            "audiences": ["sigil-ca"],
            "extra": {"authentication.kubernetes.io/pod-name": ["sigil-csi-" + node],
                      "authentication.kubernetes.io/node-name": [node]}}
reviews = {}
for node in ("node-a", "node-b"):
    t = jwt("system:serviceaccount:sigil:sigil-csi", node)
    open("%s/%s.token" % (d, node), "w").write(t + "\n")
    reviews[t] = csi_user(node)
def ns(n):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
def node(n, addrs):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n},
            "status": {"addresses": [{"type": t, "address": a} for t, a in addrs]}}
def pod(n, node_name, ip, uid):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": n, "namespace": "shop", "uid": uid, "labels": {"app": n.split("-")[0]}},
            "spec": {"nodeName": node_name, "hostname": n, "subdomain": n.split("-")[0],
                     "containers": [{"name": "app", "image": "nginx:1.25"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}
items = [
    ns("sigil"), ns("shop"),
    node("node-a", [("InternalIP", "192.168.1.11"), ("ExternalIP", "203.0.113.11"), ("Hostname", "node-a")]),
    node("node-b", [("InternalIP", "192.168.1.12"), ("Hostname", "node-b")]),
    pod("web-0", "node-a", "10.244.1.7", "0b7a3c52-0000-4000-8000-000000000001"),
    pod("db-0", "node-b", "10.244.2.9", "0b7a3c52-0000-4000-8000-000000000002"),
    {"apiVersion": "secrets.sigil.dev/v1alpha1", "kind": "SecretClass", "metadata": {"name": "tls"},
     "spec": {"backend": {"autoTls": {"ca": {"autoGenerate": True, "caCertificateLifetime": "365d"},
                                      "maxCertificateLifetime": "7d"}}}},
    {"apiVersion": "secrets.sigil.dev/v1alpha1", "kind": "TrustStore",
     "metadata": {"name": "web-trust", "namespace": "shop"},
     "spec": {"secretClassName": "tls", "targetKind": "ConfigMap"}},
]
json.dump({"items": items, "tokenReviews": reviews}, open(d + "/seed.json", "w"))
EOF

step "Cluster mode: a Kubernetes API (the tests' fake apiserver) seeded with nodes, pods, a SecretClass and a TrustStore"
python3 "$ROOT/tests/fakes/kube_apiserver.py" --cert "$D/apiserver.crt" --key "$D/apiserver.key" \
  --token ca-token=system:serviceaccount:sigil:sigil-ca --token csi-token=system:serviceaccount:sigil:sigil-csi \
  --seed "$D/seed.json" --port-file "$D/kube.port" 2>"$D/apiserver.log" & PIDS+=($!)
for _ in $(seq 100); do [ -s "$D/kube.port" ] && break; sleep 0.1; done
KPORT=$(cat "$D/kube.port")
api() { curl -sS --cacert "$D/kube-ca.crt" -H "Authorization: Bearer ca-token" "https://127.0.0.1:$KPORT$1"; }
kubeconfig() { cat <<EOF
apiVersion: v1
kind: Config
clusters: [{name: demo, cluster: {server: "https://127.0.0.1:$KPORT", certificate-authority: "$D/kube-ca.crt"}}]
users: [{name: u, user: {token: $1}}]
contexts: [{name: demo, context: {cluster: demo, user: u, namespace: sigil}}]
current-context: demo
EOF
}
kubeconfig ca-token > "$D/sigil-ca.kubeconfig"
kubeconfig csi-token > "$D/sigil-csi.kubeconfig"
echo "apiserver on https://127.0.0.1:$KPORT"

CPORT=$(free_port)
POD_NAME=sigil-ca-0 "$BUILD/sigil-ca" --listen "127.0.0.1:$CPORT" --state-dir "$D/ca-state" \
  --kubeconfig "$D/sigil-ca.kubeconfig" --ca-store secret --namespace sigil --refresh-interval 2 \
  2>"$D/sigil-ca.log" & PIDS+=($!)
for _ in $(seq 100); do api /api/v1/namespaces/sigil/configmaps/sigil-ca-bundle 2>/dev/null | grep -q ca.crt && break; sleep 0.2; done
api /api/v1/namespaces/sigil/configmaps/sigil-ca-bundle |
  python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)["data"]["ca.crt"])' > "$D/sigil-ca-bundle.crt"
echo "sigil-ca: TokenReview authentication, SecretClasses from the CRD, CA keys in Secrets;"
echo "          its issuer CA published in ConfigMap sigil/sigil-ca-bundle, which sigil-csi trusts"
"$BUILD/sigil-csi" --endpoint "unix://$D/node-a.sock" --node-id node-a --state-dir "$D/node-a-state" \
  --ca-endpoint "localhost:$CPORT" --ca-bundle "$D/sigil-ca-bundle.crt" --token-file "$D/node-a.token" \
  --kubeconfig "$D/sigil-csi.kubeconfig" --stackable-compat 2>"$D/sigil-csi.log" & PIDS+=($!)
for _ in $(seq 100); do [ -S "$D/node-a.sock" ] && break; sleep 0.1; done

step "node-a publishes a volume for pod shop/web-0 (scopes node,pod): the names come from the API"
"$CTL" publish --endpoint "$D/node-a.sock" --volume-id web-tls --target "$D/pods/web-tls" \
  --pod web-0 --namespace shop --attr class=tls --attr scope=node,pod --attr format=tls-pem
openssl x509 -in "$D/pods/web-tls/tls.crt" -noout -subject -ext subjectAltName | sed 's/^/    /'

step "renewal=restart (the default): the restarter annotation on the pod, and an Event"
api /api/v1/namespaces/shop/pods/web-0 | python3 -c '
import json,sys
for k, v in sorted(json.load(sys.stdin)["metadata"].get("annotations", {}).items()):
    print("    %s: %s" % (k, v))'
sleep 1
api /api/v1/namespaces/shop/events | python3 -c '
import json,sys
for e in json.load(sys.stdin)["items"]:
    print("    %s %s %s/%s: %s" % (e["type"], e["reason"], e["involvedObject"]["namespace"], e["involvedObject"]["name"], e["message"]))'

step "node-a asks for pod shop/db-0, which runs on node-b: refused"
"$CTL" publish --endpoint "$D/node-a.sock" --volume-id db-tls --target "$D/pods/db-tls" \
  --pod db-0 --namespace shop --attr class=tls --attr scope=node || true
[ -e "$D/pods/db-tls/tls.crt" ] && echo "    (unexpected: files were written)" || echo "    nothing was written"

step "The CA lives in Secret sigil/sigil-ca-tls (shared by sigil-ca replicas); the TrustStore got a ConfigMap"
api /api/v1/namespaces/sigil/secrets/sigil-ca-tls | python3 -c '
import json,sys
s = json.load(sys.stdin)
print("    Secret %s (type %s, resourceVersion %s): keys %s" % (s["metadata"]["name"], s["type"], s["metadata"]["resourceVersion"], ", ".join(sorted(s["data"]))))'
for _ in $(seq 50); do api /api/v1/namespaces/shop/configmaps/web-trust 2>/dev/null | grep -q ca.crt && break; sleep 0.2; done
api /api/v1/namespaces/shop/configmaps/web-trust | python3 -c '
import json,sys
c = json.load(sys.stdin)
print("    ConfigMap shop/%s: ca.crt with %d certificate(s), owner %s" % (c["metadata"]["name"], c["data"]["ca.crt"].count("BEGIN CERTIFICATE"), c["metadata"]["ownerReferences"][0]["kind"]))'
echo "    (logs: $D/sigil-ca.log, $D/sigil-csi.log, $D/apiserver.log)"
