#!/bin/bash
# A whole cluster end to end against the fake apiserver (issue 6):
# two sigil-ca replicas started at the same moment over one CA store in
# Secrets (--ca-store secret), SecretClasses and a TrustStore from the API
# (sigil and, with --stackable-compat, Stackable's), and two sigil-csi
# nodes in remote mode that authenticate with their projected tokens
# (TokenReview, node binding).  Publishes go through sigilctl exactly as
# the kubelet sends them (podInfoOnMount); certificates are checked with
# openssl.  Then: SecretClass objects created, deleted and broken while
# running; a rotation on one replica seen by the other, by the TrustStore
# and in /metrics; and the apiserver going away and coming back with the
# same objects.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CA="$SIGIL_BUILD_DIR/sigil-ca"
CSI="$SIGIL_BUILD_DIR/sigil-csi"
FAKE="$SIGIL_SOURCE_DIR/tests/fakes/kube_apiserver.py"
D="$T_DIR"
PODS="$D/pods"
mkdir -p "$PODS"
for b in "$CA" "$CSI" "$SIGILCTL"; do [ -x "$b" ] || { echo "$b not built"; exit 1; }; done

# Generous: the machine is shared, nothing here is timed.
WAIT_STEPS=300 # x 0.1 s
# wait_for DESCRIPTION COMMAND...: until the command succeeds.
wait_for() {
  local desc=$1; shift
  for _ in $(seq 1 "$WAIT_STEPS"); do
    if "$@" >"$D/.wait" 2>&1; then ok "$desc"; return 0; fi
    sleep 0.1
  done
  fail "$desc"; sed 's/^/     /' "$D/.wait" | tail -15
  return 0
}
# Bad exit paths must not leave the fake or a daemon behind: lib.sh's trap
# kills everything in T_PIDS; tmpfs mounts are not used (no --privileged).
# On failure the daemons' logs are shown (SIGIL_E2E_KEEP=DIR copies them).
e2e_cleanup() {
  local rc=$?
  if [ "$T_FAIL" -gt 0 ] || [ "$rc" -ne 0 ]; then
    for f in "$D"/ca1.log "$D"/ca2.log "$D"/csi-node-a.log "$D"/csi-node-b.log; do
      [ -f "$f" ] || continue
      echo "---- tail of $(basename "$f")"; tail -25 "$f" | sed 's/^/     /'
    done
  fi
  if [ -n "${SIGIL_E2E_KEEP:-}" ]; then
    mkdir -p "$SIGIL_E2E_KEEP" && cp -r "$D"/*.log "$SIGIL_E2E_KEEP"/ 2>/dev/null || true
  fi
  t_cleanup
}
trap e2e_cleanup EXIT

# ---- certificates made outside sigil ------------------------------------------------------
ossl_ec() { openssl req "$@" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes 2>/dev/null; }
# The fake apiserver's serving identity.
fake_kube_tls "$D/kca" "$D/srv"
# The company: a root kept offline and the intermediate it gives sigil.
ossl_ec -x509 -keyout "$D/root.key" -out "$D/root.crt" -days 30 -subj "/O=Example Corp/CN=Example Root CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
ossl_ec -keyout "$D/inter.key" -out "$D/inter.csr" -subj "/O=Example Corp/CN=Example sigil Intermediate"
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' > "$D/inter.ext"
openssl x509 -req -in "$D/inter.csr" -CA "$D/root.crt" -CAkey "$D/root.key" -CAcreateserial -days 20 \
  -extfile "$D/inter.ext" -out "$D/inter.crt" 2>/dev/null
check "company intermediate verifies to the company root (setup)" \
  openssl verify -CAfile "$D/root.crt" "$D/inter.crt"

# ---- the cluster, as a real one has it --------------------------------------------------------
/usr/bin/python3 - "$D" <<'EOF'
import base64, json, sys, time
d = sys.argv[1]
b64 = lambda s: base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()
now = int(time.time())

# Projected service account tokens (audience sigil-ca) as the kubelet
# mounts them into the sigil-csi DaemonSet pods; the fake's TokenReview
# table answers for them what a 1.30+ apiserver answers (the pod binding,
# node-name included).
def jwt(sub, jti, pod=None, node=None):
    b = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    claims = {"aud": ["sigil-ca"], "exp": now + 3600, "iat": now, "nbf": now, "sub": sub, "jti": jti,
              "iss": "https://kubernetes.default.svc.cluster.local"}
    if node:
        claims["kubernetes.io"] = {"namespace": "sigil", "node": {"name": node, "uid": "n-" + node},
                                   "pod": {"name": pod, "uid": "p-" + pod},
                                   "serviceaccount": {"name": "sigil-csi", "uid": "sa-csi"}}
    return "%s.%s.%s" % (b({"alg": "RS256", "kid": "k1"}), b(claims), "c2lnbmF0dXJl")
def user(sa, uid, pod=None, node=None):
    u = {"username": "system:serviceaccount:sigil:" + sa, "uid": uid,
         "groups": ["system:serviceaccounts", "system:serviceaccounts:sigil", "system:authenticated"],
         "audiences": ["sigil-ca"]}
    if node:
        u["extra"] = {"authentication.kubernetes.io/credential-id": ["JTI=" + pod],
                      "authentication.kubernetes.io/node-name": [node],
                      "authentication.kubernetes.io/node-uid": ["n-" + node],
                      "authentication.kubernetes.io/pod-name": [pod],
                      "authentication.kubernetes.io/pod-uid": ["p-" + pod]}
    return u
reviews = {}
for name, sa, pod, node in (("node-a", "sigil-csi", "sigil-csi-7x2kq", "node-a"),
                            ("node-b", "sigil-csi", "sigil-csi-m9d4w", "node-b"),
                            ("admin", "sigil-admin", None, None)):
    tok = jwt("system:serviceaccount:sigil:" + sa, "jti-" + name, pod, node)
    open("%s/tok-%s" % (d, name), "w").write(tok + "\n")
    reviews[tok] = user(sa, "5e1c0d2a-0000-4000-8000-%012d" % len(reviews), pod, node)

def ns(name):
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
def node(name, addrs, cidr):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "kubernetes.io/os": "linux"}},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": addrs + [{"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.30.2"}}}
def vol(name, attrs):
    return {"name": name, "csi": {"driver": "secrets.sigil.dev", "readOnly": True,
                                  "volumeAttributes": attrs}}
def pod(name, node_name, uid, ips, host_ip, volumes, subdomain):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "uid": uid,
                         "labels": {"app": name.rsplit("-", 1)[0],
                                    "statefulset.kubernetes.io/pod-name": name},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                              "name": name.rsplit("-", 1)[0], "uid": "ss-" + uid,
                                              "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"nodeName": node_name, "hostname": name, "subdomain": subdomain,
                     "serviceAccountName": "default", "restartPolicy": "Always",
                     "containers": [{"name": "app", "image": "nginx:1.25",
                                     "volumeMounts": [{"name": v["name"], "mountPath": "/" + v["name"]}
                                                      for v in volumes]}],
                     "volumes": volumes},
            "status": {"phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
                       "podIP": ips[0], "podIPs": [{"ip": i} for i in ips], "qosClass": "BestEffort"}}
tls = vol("tls", {"secrets.sigil.dev/class": "tls", "secrets.sigil.dev/scope": "node,pod,service=web"})
corp = vol("corp", {"secrets.sigil.dev/class": "company", "secrets.sigil.dev/scope": "pod"})
stk = vol("stk", {"secrets.stackable.tech/class": "stackable-tls", "secrets.stackable.tech/scope": "pod"})
secretclass = lambda name, backend, api="secrets.sigil.dev/v1alpha1": {
    "apiVersion": api, "kind": "SecretClass",
    "metadata": {"name": name, "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
    "spec": {"backend": backend}}
items = [
    ns("sigil"), ns("shop"),
    node("node-a", [{"type": "InternalIP", "address": "192.168.1.11"},
                    {"type": "ExternalIP", "address": "203.0.113.11"}], "10.244.1.0/24"),
    node("node-b", [{"type": "InternalIP", "address": "192.168.1.12"}], "10.244.2.0/24"),
    pod("web-0", "node-a", "a0000000-0000-4000-8000-0000000000a0", ["10.244.1.7", "fd00:10:244:1::7"],
        "192.168.1.11", [tls, corp, stk], "web"),
    pod("api-0", "node-a", "a0000000-0000-4000-8000-0000000000a1", ["10.244.1.8"], "192.168.1.11",
        [tls], "api"),
    pod("db-0", "node-b", "b0000000-0000-4000-8000-0000000000b0", ["10.244.2.9"], "192.168.1.12",
        [tls], "db"),
    # The default class, short-lived leaves.
    secretclass("tls", {"autoTls": {"ca": {"autoGenerate": True, "caCertificateLifetime": "30d"},
                                    "maxCertificateLifetime": "1h"}}),
    # The company intermediate, handed over in a Secret.
    secretclass("company", {"autoTls": {"ca": {"secret": {"name": "company-ca", "namespace": "sigil"},
                                               "autoGenerate": False},
                                        "maxCertificateLifetime": "1d"}}),
    # Stackable's chart default, as its operator installs it.
    secretclass("stackable-tls", {"autoTls": {"ca": {"secret": {"name": "secret-provisioner-tls-ca",
                                                                 "namespace": "sigil"},
                                                      "autoGenerate": True}}},
                "secrets.stackable.tech/v1alpha2"),
    {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
     "metadata": {"name": "company-ca", "namespace": "sigil"},
     "data": {"ca.crt": b64(open(d + "/inter.crt").read()), "ca.key": b64(open(d + "/inter.key").read()),
              "chain.crt": b64(open(d + "/root.crt").read())}},
    {"apiVersion": "secrets.sigil.dev/v1alpha1", "kind": "TrustStore",
     "metadata": {"name": "shop-ca", "namespace": "shop"},
     "spec": {"secretClassName": "tls", "targetKind": "ConfigMap"}},
]
json.dump({"items": items, "tokenReviews": reviews}, open(d + "/seed.json", "w"))
json.dump(reviews, open(d + "/reviews.json", "w"))
EOF

# The daemons' own API credentials (their service accounts' tokens).
API_TOKENS=(--token ca-token=system:serviceaccount:sigil:sigil-ca
            --token csi-a-token=system:serviceaccount:sigil:sigil-csi
            --token csi-b-token=system:serviceaccount:sigil:sigil-csi
            --token admin-token=admin)
start_fake() { # PORT SEED
  /usr/bin/python3 "$FAKE" --cert "$D/srv.crt" --key "$D/srv.key" --port "$1" "${API_TOKENS[@]}" \
    --seed "$2" >>"$D/fake.log" 2>&1 &
  FAKE_PID=$!
  T_PIDS+=("$FAKE_PID")
  wait_port "$1" "$FAKE_PID" || { echo "fake apiserver did not start"; cat "$D/fake.log"; exit 1; }
}
KPORT=$(free_port)
start_fake "$KPORT" "$D/seed.json"
URL="https://127.0.0.1:$KPORT"

# api METHOD PATH [JSON]: kubectl's part, as a cluster admin.
api() {
  local ct=application/json
  [ "$1" = PATCH ] && ct=application/merge-patch+json
  curl -sS --fail --cacert "$D/kca.crt" -H 'Authorization: Bearer admin-token' -X "$1" \
    -H "Content-Type: $ct" ${3:+-d "$3"} "$URL$2"
}
# jq-less JSON: pyj FILE EXPR succeeds when the expression over d holds.
pyj() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }
# obj PATH EXPR: prints an expression over the object at PATH (as o).
obj() {
  api GET "$1" | /usr/bin/python3 -c 'import base64,json,sys; o=json.load(sys.stdin); sys.stdout.write(str(eval(sys.argv[1])))' "$2"
}

kubeconfig() { # FILE USER TOKEN
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: $URL
    certificate-authority: $D/kca.crt
users:
- name: $2
  user:
    token: $3
contexts:
- name: fake
  context: {cluster: fake, user: $2, namespace: sigil}
current-context: fake
EOF
}
kubeconfig "$D/kc-ca" sigil-ca ca-token
kubeconfig "$D/kc-a" sigil-csi csi-a-token
kubeconfig "$D/kc-b" sigil-csi csi-b-token

# ---- two sigil-ca replicas, started at the same moment ----------------------------------------
P1=$(free_port); P2=$(free_port); M1=$(free_port); M2=$(free_port)
start_ca() { # N PORT METRICSPORT
  POD_NAME="sigil-ca-5d8f7c9b4-r$1" SIGIL_LOG_LEVEL=debug "$CA" --listen "127.0.0.1:$2" \
    --state-dir "$D/ca$1" --kubeconfig "$D/kc-ca" --ca-store secret --namespace sigil \
    --refresh-interval 2 --metrics-addr "127.0.0.1:$3" --stackable-compat \
    --admin-service-account sigil/sigil-admin >>"$D/ca$1.log" 2>&1 &
}
start_ca 1 "$P1" "$M1"; CA1=$!; start_ca 2 "$P2" "$M2"; CA2=$!
T_PIDS+=("$CA1" "$CA2")
for p in "$P1:$CA1:1" "$P2:$CA2:2"; do
  IFS=: read -r port pid n <<<"$p"
  wait_port "$port" "$pid" || wait_port "$port" "$pid" || {
    echo "sigil-ca $n did not start"; cat "$D/ca$n.log"; exit 1; }
done
ok "both sigil-ca replicas serve"

# ---- one CA set for both ------------------------------------------------------------------------
check "both replicas serve under the same internal CA (issuer-ca.crt identical)" \
  cmp "$D/ca1/issuer-ca.crt" "$D/ca2/issuer-ca.crt"
cm_bundle() { obj /api/v1/namespaces/sigil/configmaps/sigil-ca-bundle 'o["data"]["ca.crt"]' > "$D/bundle.crt"; }
wait_for "ConfigMap sigil/sigil-ca-bundle published" cm_bundle
check "... holding the issuer CA both replicas use" cmp "$D/bundle.crt" "$D/ca1/issuer-ca.crt"
BUNDLE="$D/bundle.crt"
for n in 1 2; do
  port=$P1; [ "$n" = 2 ] && port=$P2
  check "replica $n's serving certificate verifies against the ConfigMap's bundle" bash -c \
    "openssl s_client -connect 127.0.0.1:$port -CAfile '$BUNDLE' -verify_return_error -verify_ip 127.0.0.1 </dev/null 2>&1 | grep -q 'Verify return code: 0'"
done
gens() { # CLASS: generation keys in its CA Secret
  obj "/api/v1/namespaces/sigil/secrets/sigil-ca-$1" 'len([k for k in o["data"] if k.startswith("gen-")])'
}
wait_for "Secret sigil-ca-tls exists" gens tls
check "... with exactly one generation (no CA lost or doubled by the race)" test "$(gens tls)" = 1
check "... labelled managed-by sigil, typed sigil.dev/ca-store" test \
  "$(obj /api/v1/namespaces/sigil/secrets/sigil-ca-tls '(o["type"], o["metadata"]["labels"]["app.kubernetes.io/managed-by"])')" = \
  "('sigil.dev/ca-store', 'sigil')"
check "Secret sigil-ca-issuer (the internal CA) has one generation" test "$(gens issuer)" = 1

# ---- two sigil-csi nodes in remote mode ------------------------------------------------------------
start_csi() { # NODE CA_PORT
  "$CSI" --endpoint "unix://$D/$1.sock" --node-id "$1" --state-dir "$D/csi-$1" --key-pool rsa-2048=0 \
    --ca-endpoint "127.0.0.1:$2" --ca-bundle "$BUNDLE" --token-file "$D/tok-$1" \
    --kubeconfig "$D/kc-${1#node-}" >>"$D/csi-$1.log" 2>&1 &
  local pid=$!
  T_PIDS+=("$pid")
  for _ in $(seq 1 200); do
    "$SIGILCTL" info --endpoint "$D/$1.sock" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "sigil-csi $1 did not come up"; cat "$D/csi-$1.log"; exit 1
}
start_csi node-a "$P1"
start_csi node-b "$P2"
"$SIGILCTL" info --endpoint "$D/node-a.sock" > "$D/info-a.txt"
check_grep "node-a: Probe ready against sigil-ca" "ready: +yes" "$D/info-a.txt"

UID_WEB=a0000000-0000-4000-8000-0000000000a0
UID_DB=b0000000-0000-4000-8000-0000000000b0
# pub NODE VOLUME POD UID ATTR...: NodePublishVolume as the kubelet sends it
# (podInfoOnMount); output in $D/VOLUME.out, files in $PODS/VOLUME.
pub() {
  local node=$1 vid=$2 podn=$3 uid=$4; shift 4
  local args=()
  for a in "$@"; do args+=(--attr "$a"); done
  "$SIGILCTL" publish --endpoint "$D/$node.sock" --volume-id "$vid" --target "$PODS/$vid" \
    --pod "$podn" --namespace shop --attr "csi.storage.k8s.io/pod.uid=$uid" \
    --attr "csi.storage.k8s.io/ephemeral=true" --attr "csi.storage.k8s.io/serviceAccount.name=default" \
    "${args[@]}" >"$D/$vid.out" 2>&1
}
pub_ok() { # DESC NODE VOLUME POD UID ATTR...
  local desc=$1; shift
  if pub "$@"; then ok "$desc"; else fail "$desc"; sed 's/^/     /' "$D/$2.out"; fi
}
pub_fails() { # DESC CODE NODE VOLUME POD UID ATTR...
  local desc=$1 code=$2; shift 2
  if pub "$@"; then fail "$desc (unexpectedly published)"; return; fi
  check_grep "$desc" "$code" "$D/$2.out"
}
nothing_written() { [ ! -e "$PODS/$1" ] || [ -z "$(ls -A "$PODS/$1")" ]; }
# split_chain VOLUME: leaf.pem (first cert of tls.crt) and chain.pem (the rest).
split_chain() {
  rm -f "$PODS/$1.leaf.pem" "$PODS/$1.chain.pem"
  awk -v leaf="$PODS/$1.leaf.pem" -v rest="$PODS/$1.chain.pem" \
    '/BEGIN CERT/{n++} {print > (n == 1 ? leaf : rest)}' "$PODS/$1/tls.crt"
  [ -e "$PODS/$1.chain.pem" ] || : > "$PODS/$1.chain.pem"
}

# The tls class caps leaves at 1h; the volumes ask for that lifetime, so
# that the default 6h restart buffer shrinks with it (see the eviction
# check below for what happens when they do not).
pub_ok "node-a publishes for its pod web-0 (scopes node,pod,service=web)" node-a v-web web-0 "$UID_WEB" \
  class=tls scope=node,pod,service=web backend.autotls.cert.lifetime=1h
openssl x509 -in "$PODS/v-web/tls.crt" -noout -text > "$D/web.txt" 2>&1 || true
check_grep "node scope: the node name" "DNS:node-a" "$D/web.txt"
check_grep "node scope: node-a's InternalIP" "IP Address:192.168.1.11" "$D/web.txt"
check_grep "node scope: node-a's ExternalIP" "IP Address:203.0.113.11" "$D/web.txt"
check_grep "pod scope: {subdomain}.{ns}.svc" "DNS:web.shop.svc.cluster.local" "$D/web.txt"
check_grep "pod scope: {hostname}.{subdomain}.{ns}.svc" "DNS:web-0.web.shop.svc.cluster.local" "$D/web.txt"
check_grep "pod scope: the pod IP" "IP Address:10.244.1.7" "$D/web.txt"
check_grep "pod scope: the pod's IPv6 address" "IP Address:FD00:10:244:1:0:0:0:7" "$D/web.txt"
check_grep "service scope: web.shop.svc" "DNS:web.shop.svc.cluster.local" "$D/web.txt"
check_fails "no name of node-b in it" grep -qE "node-b|192\.168\.1\.12" "$D/web.txt"
check "the leaf verifies against the volume's ca.crt" openssl verify -CAfile "$PODS/v-web/ca.crt" "$PODS/v-web/tls.crt"
# The CA that signed it is the one in Secret sigil-ca-tls: both replicas
# hand out leaves of the same CA.
pub_ok "node-b publishes for its pod db-0 through replica 2" node-b v-db db-0 "$UID_DB" class=tls \
  scope=node,pod backend.autotls.cert.lifetime=1h
check "node-b's leaf (from replica 2) verifies against node-a's ca.crt (from replica 1)" \
  openssl verify -CAfile "$PODS/v-web/ca.crt" "$PODS/v-db/tls.crt"
check "both volumes got the same trust bundle" cmp "$PODS/v-web/ca.crt" "$PODS/v-db/ca.crt"
openssl x509 -in "$PODS/v-db/tls.crt" -noout -text > "$D/db.txt" 2>&1 || true
check_grep "node-b's leaf names node-b" "DNS:node-b" "$D/db.txt"
check_grep "node-b's leaf has db-0's pod IP" "IP Address:10.244.2.9" "$D/db.txt"
ca_secret_cert() { # CLASS: the newest generation's certificate, from the Secret
  api GET "/api/v1/namespaces/sigil/secrets/sigil-ca-$1" | /usr/bin/python3 -c '
import base64, json, re, sys
o = json.load(sys.stdin)
k = sorted(k for k in o["data"] if k.startswith("gen-"))[-1]
rec = base64.b64decode(o["data"][k]).decode()
print(re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", rec, re.S).group(0))'
}
ca_secret_cert tls > "$D/tls-gen1.crt" || true
ca_days() { # CERT: days between notBefore and notAfter
  local nb na
  nb=$(date -d "$(openssl x509 -in "$1" -noout -startdate | cut -d= -f2)" +%s)
  na=$(date -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s)
  echo $(( (na - nb + 43200) / 86400 ))
}
check "the tls CA has the SecretClass's caCertificateLifetime (30d), not the built-in default's" \
  test "$(ca_days "$D/tls-gen1.crt")" = 30
check "the leaves chain to the CA in Secret sigil-ca-tls" openssl verify -CAfile "$D/tls-gen1.crt" "$PODS/v-web/tls.crt"
check "... replica 2's too" openssl verify -CAfile "$D/tls-gen1.crt" "$PODS/v-db/tls.crt"
not_after_ok() { # a 1h maxCertificateLifetime from the tls class
  local na; na=$(date -d "$(openssl x509 -in "$PODS/v-web/tls.crt" -noout -enddate | cut -d= -f2)" +%s)
  [ "$na" -le $(( $(date +%s) + 3600 + 60 )) ]
}
check "the leaf lives 1h (maxCertificateLifetime)" not_after_ok

# The company intermediate.
pub_ok "class company (the company intermediate from a Secret)" node-a v-corp web-0 "$UID_WEB" \
  class=company scope=pod
split_chain v-corp
check "company leaf chains through the intermediate to the company root" \
  openssl verify -CAfile "$D/root.crt" -untrusted "$PODS/v-corp.chain.pem" "$PODS/v-corp.leaf.pem"
check "tls.crt carries the intermediate" openssl x509 -in "$PODS/v-corp.chain.pem" -noout -subject -nameopt compat
check_grep "... which is the company intermediate" "Example sigil Intermediate" "$D/.out"
check "the volume's ca.crt is the company root" \
  bash -c "openssl x509 -in '$PODS/v-corp/ca.crt' -noout -fingerprint | cmp - <(openssl x509 -in '$D/root.crt' -noout -fingerprint)"

# Stackable's class through Stackable's attribute keys.
pub_ok "Stackable v1alpha2 class through secrets.stackable.tech/ keys" node-a v-stk web-0 "$UID_WEB" \
  secrets.stackable.tech/class=stackable-tls secrets.stackable.tech/scope=pod \
  secrets.stackable.tech/format=tls-pem
check "Stackable-class leaf verifies" openssl verify -CAfile "$PODS/v-stk/ca.crt" "$PODS/v-stk/tls.crt"
openssl x509 -in "$PODS/v-stk/tls.crt" -noout -text > "$D/stk.txt" 2>&1 || true
check_grep "Stackable-class leaf has the pod names" "DNS:web-0.web.shop.svc.cluster.local" "$D/stk.txt"
check_fails "... and is not signed by the tls class's CA" openssl verify -CAfile "$D/tls-gen1.crt" "$PODS/v-stk/tls.crt"
wait_for "its CA is stored in Secret sigil-ca-stackable-tls" gens stackable-tls

# Node authorization: node-b asks for node-a's pod.
issued() { cat "$D/ca1.log" "$D/ca2.log" | grep -c "issued" || true; }
before=$(issued)
pub_fails "node-b asking for node-a's pod web-0: PERMISSION_DENIED" PERMISSION_DENIED \
  node-b v-steal web-0 "$UID_WEB" class=tls scope=node,pod
check_grep "... naming the pod's node" "node-a" "$D/v-steal.out"
check "... and nothing written" nothing_written v-steal
check "... and nothing issued" test "$(issued)" = "$before"

# A class whose maxCertificateLifetime (1h) is shorter than the default
# restart buffer (6h), and a volume that sets neither lifetime nor buffer
# (as every Stackable pod does): the pod must not be evicted as soon as it
# has started, nor on every restart after that.
UID_API=a0000000-0000-4000-8000-0000000000a1
pub_ok "volume of the 1h class with default lifetime and buffer" node-a v-api api-0 "$UID_API" \
  class=tls scope=pod
restarter_future() {
  api GET /api/v1/namespaces/shop/pods/api-0 > "$D/api-0.json" || return 1
  /usr/bin/python3 - "$D/api-0.json" <<'PY'
import calendar, json, sys, time
ann = json.load(open(sys.argv[1]))["metadata"].get("annotations", {})
v = [t for k, t in ann.items() if k.startswith("restarter.sigil.dev/expires-at.")]
assert v, "no restarter annotation"
t = calendar.timegm(time.strptime(v[0], "%Y-%m-%dT%H:%M:%SZ"))
assert t > time.time() + 60, "expires-at %s is not in the future" % v[0]
PY
}
check "the restarter deadline lies in the future, not before the pod started" restarter_future
sleep 2
check "the pod is still there (not evicted right after its volume was published)" \
  api GET /api/v1/namespaces/shop/pods/api-0

# ---- SecretClass objects while running -------------------------------------------------------------
SC=/apis/secrets.sigil.dev/v1alpha1/secretclasses
mkclass() { # NAME BACKEND-JSON
  api POST $SC "{\"apiVersion\":\"secrets.sigil.dev/v1alpha1\",\"kind\":\"SecretClass\",\"metadata\":{\"name\":\"$1\"},\"spec\":{\"backend\":$2}}" >/dev/null
}
# pub_works VOLUME CLASS: node-a publishes for web-0.
pub_works() { pub node-a "$1" web-0 "$UID_WEB" class="$2" scope=pod; }
pub_fails "a class that does not exist yet: NOT_FOUND" NOT_FOUND node-a v-fresh0 web-0 "$UID_WEB" class=fresh scope=pod
mkclass fresh '{"autoTls":{"ca":{"autoGenerate":true,"keyAlgorithm":"ecdsa-p384"},"maxCertificateLifetime":"2d"}}'
wait_for "a SecretClass created while running publishes within seconds" pub_works v-fresh fresh
check "its leaf verifies against its own CA" openssl verify -CAfile "$PODS/v-fresh/ca.crt" "$PODS/v-fresh/tls.crt"
check_fails "... which is not the tls class's CA" openssl verify -CAfile "$D/tls-gen1.crt" "$PODS/v-fresh/tls.crt"
check "... a P-384 CA as the class asks" bash -c "openssl x509 -in '$PODS/v-fresh/ca.crt' -noout -text | grep -q 'NIST CURVE: P-384'"
wait_for "replica 2 serves it too (node-b, its own pod)" \
  pub node-b v-fresh-b db-0 "$UID_DB" class=fresh scope=pod
check "both replicas hand out the same CA for it" cmp "$PODS/v-fresh/ca.crt" "$PODS/v-fresh-b/ca.crt"
api DELETE $SC/fresh >/dev/null
# A new volume each try: one published before the delete arrived would
# (rightly) be "already published" on the next try.
GONE_N=0
deleted_notfound() {
  GONE_N=$((GONE_N + 1))
  ! pub node-a "v-gone$GONE_N" web-0 "$UID_WEB" class=fresh scope=pod && grep -q "NOT_FOUND" "$D/v-gone$GONE_N.out"
}
wait_for "after deleting it, its publishes fail NOT_FOUND" deleted_notfound
check "... and write nothing" nothing_written "v-gone$GONE_N"

# Broken objects: one that does not parse, one whose CA Secret does not
# exist.  Each is left out; the others keep working and still follow
# changes.
mkclass broken-spec '{"autoTls":{"maxCertificateLifetim":"2d"}}'
mkclass broken-ref '{"autoTls":{"ca":{"secret":{"name":"not-there","namespace":"sigil"},"autoGenerate":false}}}'
wait_for "the unparsable class is reported by name and field" \
  grep -qE "SecretClass broken-spec.*maxCertificateLifetim" "$D/ca1.log"
wait_for "the class without its CA Secret is reported by name" grep -qE "broken-ref" "$D/ca1.log"
mkclass after-broken '{"autoTls":{}}'
wait_for "a class created next to broken ones still publishes" pub_works v-after after-broken
pub_ok "the tls class still publishes" node-a v-tls2 web-0 "$UID_WEB" class=tls scope=pod backend.autotls.cert.lifetime=1h
pub_fails "the unparsable class: NOT_FOUND" NOT_FOUND node-a v-bs web-0 "$UID_WEB" class=broken-spec scope=pod
pub_fails "the class without its CA Secret does not publish" "NOT_FOUND|FAILED_PRECONDITION" \
  node-a v-br web-0 "$UID_WEB" class=broken-ref scope=pod
check "... and writes nothing" nothing_written v-br
# The Secret appears: the class comes to life without a restart.
api POST /api/v1/namespaces/sigil/secrets "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"type\":\"Opaque\",\"metadata\":{\"name\":\"not-there\",\"namespace\":\"sigil\"},\"data\":{\"ca.crt\":\"$(base64 -w0 "$D/inter.crt")\",\"ca.key\":\"$(base64 -w0 "$D/inter.key")\",\"chain.crt\":\"$(base64 -w0 "$D/root.crt")\"}}" >/dev/null
wait_for "once its CA Secret exists, the class publishes" pub_works v-br2 broken-ref
split_chain v-br2
check "... chained to the company root" \
  openssl verify -CAfile "$D/root.crt" -untrusted "$PODS/v-br2.chain.pem" "$PODS/v-br2.leaf.pem"

# ---- rotation across replicas ------------------------------------------------------------------------
ctl_ca() { # PORT TOKEN ARGS...
  local port=$1 tok=$2; shift 2
  "$SIGILCTL" ca "$1" --ca-endpoint "127.0.0.1:$port" --ca-bundle "$BUNDLE" --token-file "$D/tok-$tok" "${@:2}"
}
ctl_ca "$P2" admin status --class tls --json > "$D/st0.json" 2>&1 || true
check "replica 2 reports one tls generation before" pyj "$D/st0.json" 'len(d["classes"][0]["generations"]) == 1'
# Prometheus has scraped replica 1 before (rotations are counted from the
# generations seen at the previous scrape).
check "replica 1 /metrics before the rotation" curl -sSf -o "$D/metrics0.txt" "http://127.0.0.1:$M1/metrics"
curl -sS --fail --cacert "$D/kca.crt" -X DELETE "$URL/_fake/requests" >/dev/null
check_fails "a node token may not rotate" ctl_ca "$P1" node-a rotate --class tls
check "sigilctl ca rotate --class tls on replica 1 (admin token)" ctl_ca "$P1" admin rotate --class tls
cp "$D/.out" "$D/rotate.txt"
check_grep "... reports generation 2" "2 CA generation" "$D/rotate.txt"
check "Secret sigil-ca-tls now holds 2 generations" test "$(gens tls)" = 2
two_gens_on_2() {
  ctl_ca "$P2" admin status --class tls --json > "$D/st2.json" && pyj "$D/st2.json" \
    '[g["generation"] for g in d["classes"][0]["generations"]] == [1, 2]'
}
wait_for "replica 2 reports generations 1 and 2 within seconds" two_gens_on_2
ctl_ca "$P1" admin status --class tls --json > "$D/st1.json" 2>&1 || true
check "both replicas report the same bundle version" /usr/bin/python3 -c '
import json, sys
a, b = (json.load(open(f))["classes"][0]["bundleVersion"] for f in sys.argv[1:])
sys.exit(a != b)' "$D/st1.json" "$D/st2.json"
ts_certs_2() {
  [ "$(obj /api/v1/namespaces/shop/configmaps/shop-ca 'o["data"]["ca.crt"].count("BEGIN CERTIFICATE")')" = 2 ]
}
wait_for "the TrustStore's ConfigMap shop/shop-ca gets the new bundle (2 certificates)" ts_certs_2
# Both replicas run the TrustStore controller: one that has not seen the
# new generation yet must not write its old bundle back (the two would
# then take turns, hundreds of writes a second).
sleep 3 # longer than --refresh-interval: both replicas have caught up
curl -sS --fail --cacert "$D/kca.crt" -X DELETE "$URL/_fake/requests" >/dev/null
sleep 5 # two refresh intervals and more: a fight would write many times
cm_writes() {
  curl -sS --fail --cacert "$D/kca.crt" "$URL/_fake/requests" | /usr/bin/python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin)["items"]
          if r["method"] in ("PUT", "PATCH", "POST") and r["path"].startswith("/api/v1/namespaces/shop/configmaps")))'
}
n_writes=$(cm_writes || echo 999)
check "once both replicas caught up, nobody rewrites the TrustStore's ConfigMap ($n_writes writes in 5 s)" test "$n_writes" -eq 0
check "... which still holds the new bundle" ts_certs_2
check "the TrustStore's ConfigMap is managed by sigil" test \
  "$(obj /api/v1/namespaces/shop/configmaps/shop-ca 'o["metadata"]["labels"]["app.kubernetes.io/managed-by"]')" = sigil
# A node publishing now gets the 2-certificate bundle, whichever replica.
pub_ok "node-b publishes after the rotation (replica 2)" node-b v-db2 db-0 "$UID_DB" class=tls scope=pod \
  backend.autotls.cert.lifetime=1h
check "... its ca.crt holds both generations" test "$(grep -c 'BEGIN CERTIFICATE' "$PODS/v-db2/ca.crt")" = 2
check "... and the leaf verifies against it" openssl verify -CAfile "$PODS/v-db2/ca.crt" "$PODS/v-db2/tls.crt"
curl -sS "http://127.0.0.1:$M1/metrics" > "$D/metrics1.txt" || true
check_grep "replica 1 /metrics: sigil_ca_rotations_total{class=\"tls\"} counts the rotation" \
  '^sigil_ca_rotations_total\{[^}]*class="tls"[^}]*\} [1-9]' "$D/metrics1.txt"
check_grep "replica 1 /metrics: expiry gauge of tls generation 1" \
  '^sigil_ca_not_after_seconds\{[^}]*class="tls"[^}]*generation="1"[^}]*\} [0-9.e+]+' "$D/metrics1.txt"
check_grep "replica 1 /metrics: expiry gauge of tls generation 2" \
  '^sigil_ca_not_after_seconds\{[^}]*class="tls"[^}]*generation="2"[^}]*\} [0-9.e+]+' "$D/metrics1.txt"
check "replica 2 /readyz" curl -sSf "http://127.0.0.1:$M2/readyz"

# ---- the apiserver goes away and comes back -------------------------------------------------------------
# Its state first, to restart it as if on the same etcd.
curl -sS --fail --cacert "$D/kca.crt" "$URL/_fake/objects" > "$D/objects.json"
curl -sS --fail --cacert "$D/kca.crt" "$URL/_fake/state" > "$D/state.json"
/usr/bin/python3 - "$D" <<'EOF'
import json, sys
d = sys.argv[1]
kinds = {"pods": ("v1", "Pod"), "nodes": ("v1", "Node"), "namespaces": ("v1", "Namespace"),
         "secrets": ("v1", "Secret"), "configmaps": ("v1", "ConfigMap"), "events": ("v1", "Event"),
         "leases.coordination.k8s.io": ("coordination.k8s.io/v1", "Lease"),
         "secretclasses.secrets.sigil.dev": ("secrets.sigil.dev/v1alpha1", "SecretClass"),
         "secretclasses.secrets.stackable.tech": ("secrets.stackable.tech/v1alpha2", "SecretClass"),
         "truststores.secrets.sigil.dev": ("secrets.sigil.dev/v1alpha1", "TrustStore")}
items = []
for o in json.load(open(d + "/objects.json"))["items"]:
    r = o.pop("_resource")
    if r not in kinds:
        raise SystemExit("unexpected resource %s in the fake: add it to the reseed" % r)
    if r == "namespaces" and o["metadata"]["name"] not in ("sigil", "shop"):
        continue
    o["apiVersion"], o["kind"] = kinds[r]
    items.append(o)
rv = int(json.load(open(d + "/state.json"))["resourceVersion"])
json.dump({"items": items, "resourceVersion": rv, "tokenReviews": json.load(open(d + "/reviews.json"))},
          open(d + "/reseed.json", "w"))
EOF
kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null || true
before=$(issued)
pub_fails "apiserver down: a new publish is UNAVAILABLE" UNAVAILABLE node-a v-down web-0 "$UID_WEB" \
  class=tls scope=pod backend.autotls.cert.lifetime=1h
check "... and writes nothing" nothing_written v-down
check "... and nothing was issued" test "$(issued)" = "$before"
pub_fails "apiserver down: node-b through replica 2 too" UNAVAILABLE node-b v-down-b db-0 "$UID_DB" \
  class=tls scope=pod backend.autotls.cert.lifetime=1h
check "... and writes nothing" nothing_written v-down-b
check "both replicas keep running" kill -0 "$CA1" "$CA2"
start_fake "$KPORT" "$D/reseed.json"
wait_for "apiserver back (same objects): node-a publishes again" \
  pub node-a v-back web-0 "$UID_WEB" class=tls scope=pod backend.autotls.cert.lifetime=1h
wait_for "... node-b too" pub node-b v-back-b db-0 "$UID_DB" class=tls scope=pod backend.autotls.cert.lifetime=1h
check "... from the same CA set (both generations)" cmp "$PODS/v-back/ca.crt" "$PODS/v-db2/ca.crt"
check "the CA Secret still holds 2 generations" test "$(gens tls)" = 2
mkclass after-restart '{"autoTls":{}}'
wait_for "SecretClasses are followed after the apiserver restart" pub_works v-after-restart after-restart

# ---- stop ------------------------------------------------------------------------------------------------------
for pid in "$CA1" "$CA2"; do kill -TERM "$pid"; done
for pid in "$CA1" "$CA2"; do
  rc=0; wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] && ok "sigil-ca $pid exits cleanly on SIGTERM" || fail "sigil-ca $pid exit $rc"
done
check "no replica logged a CA store corruption" bash -c "! grep -qiE 'corrupt|overwr' '$D/ca1.log' '$D/ca2.log'"

t_finish
