#!/usr/bin/env bash
# sigil-ca + sigil-csi + sigilctl end to end over TLS: tokens, classes,
# company intermediate, cfssl as an external CA, CA down then up.
source "$(dirname "$0")/lib.sh"

CA="$SIGIL_BUILD_DIR/sigil-ca"
CSI="$SIGIL_BUILD_DIR/sigil-csi"
CAS="$T_DIR/ca-state"; CLS="$T_DIR/classes"; SEC="$T_DIR/secrets"; PODS="$T_DIR/pods"
mkdir -p "$CLS" "$SEC" "$PODS"
NODE_TOKEN=node-a-token-0123456789abcdef
LIMITED_TOKEN=node-b-token-0123456789abcdef
ADMIN_TOKEN=admin-token-0123456789abcdef0
printf '%s node-a\n%s node-b tls\n%s @admin\n' "$NODE_TOKEN" "$LIMITED_TOKEN" "$ADMIN_TOKEN" > "$T_DIR/tokens"
chmod 600 "$T_DIR/tokens"
echo "$NODE_TOKEN" > "$T_DIR/node.token"
echo "$LIMITED_TOKEN" > "$T_DIR/limited.token"
echo "wrong-token-0123456789abcdef" > "$T_DIR/bad.token"
: > "$T_DIR/empty.token"

# A company root and intermediate, made with the openssl CLI.
co="$T_DIR/company"; mkdir -p "$co" "$SEC/default/company-ca" "$SEC/default/company-root"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$co/root.key" -out "$co/root.crt" \
  -subj "/O=Example Corp/CN=Example Root CA" -days 3650 -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$co/int.key" -out "$co/int.csr" \
  -subj "/O=Example Corp/CN=Example Issuing CA" 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' > "$co/ext.cnf"
openssl x509 -req -in "$co/int.csr" -CA "$co/root.crt" -CAkey "$co/root.key" -CAcreateserial -days 1825 \
  -extfile "$co/ext.cnf" -out "$co/int.crt" 2>/dev/null
cp "$co/int.crt" "$SEC/default/company-ca/ca.crt"; cp "$co/int.key" "$SEC/default/company-ca/ca.key"
cp "$co/root.crt" "$SEC/default/company-ca/chain.crt"; cp "$co/root.crt" "$SEC/default/company-root/ca.crt"

# cfssl serve as the company's external CA.
cf="$T_DIR/cfssl"; mkdir -p "$cf" "$SEC/default/cfssl-root"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$cf/ca-key.pem" -out "$cf/ca.pem" \
  -subj "/O=Example Corp/CN=cfssl CA" -days 3650 -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
cp "$cf/ca.pem" "$SEC/default/cfssl-root/ca.crt"
cat > "$cf/config.json" <<'JSON'
{"signing": {"default": {"expiry": "24h", "usages": ["digital signature", "server auth", "client auth"]}}}
JSON
CF_PORT=$(free_port)
cfssl serve -address 127.0.0.1 -port "$CF_PORT" -ca "$cf/ca.pem" -ca-key "$cf/ca-key.pem" -config "$cf/config.json" \
  > "$T_DIR/cfssl.log" 2>&1 &
T_PIDS+=($!)
wait_port "$CF_PORT" || fail "cfssl serve did not start"

cat > "$CLS/classes.yaml" <<'YAML'
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: tls}
spec:
  backend:
    autoTls:
      ca:
        autoGenerate: true
        caCertificateLifetime: 365d
      maxCertificateLifetime: 15d
---
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: restricted}
spec:
  backend:
    autoTls:
      ca: {autoGenerate: true}
  namePolicy:
    allowedDomains: [svc.cluster.local]
---
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: company}
spec:
  backend:
    autoTls:
      ca:
        secret: {name: company-ca, namespace: default}
        autoGenerate: false
---
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: cfssl}
spec:
  backend:
    externalCa:
      cfssl: {url: "http://127.0.0.1:CF_PORT", timeout: 10s}
      additionalTrustRoots:
        - secret: {name: cfssl-root, namespace: default}
YAML
sed -i "s/CF_PORT/$CF_PORT/" "$CLS/classes.yaml"

CA_PORT=$(free_port)
start_ca() {
  "$CA" --listen "127.0.0.1:$CA_PORT" --state-dir "$CAS" --classes-dir "$CLS" --secrets-dir "$SEC" \
    --tokens-file "$T_DIR/tokens" >>"$T_DIR/ca.log" 2>&1 &
  CA_PID=$!; T_PIDS+=("$CA_PID")
  wait_port "$CA_PORT" || { echo "sigil-ca did not start"; cat "$T_DIR/ca.log"; return 1; }
}
start_csi() { # start_csi NAME TOKENFILE
  local sock="$T_DIR/$1.sock"
  "$CSI" --endpoint "unix://$sock" --node-id "$1" --state-dir "$T_DIR/$1-state" --key-pool rsa-2048=0 \
    --ca-endpoint "127.0.0.1:$CA_PORT" --ca-bundle "$CAS/issuer-ca.crt" --token-file "$2" >>"$T_DIR/$1.log" 2>&1 &
  T_PIDS+=($!)
  for _ in $(seq 1 100); do [ -S "$sock" ] && return 0; sleep 0.1; done
  return 1
}
pub() { # pub NODE VOLUME ATTR...
  local node=$1 vid=$2; shift 2
  local args=(); for a in "$@"; do args+=(--attr "$a"); done
  "$SIGILCTL" publish --endpoint "$T_DIR/$node.sock" --volume-id "$vid" --target "$PODS/$vid" --pod web-0 --namespace default "${args[@]}"
}

start_ca
[ -s "$CAS/issuer-ca.crt" ] && ok "sigil-ca wrote issuer-ca.crt" || fail "no issuer-ca.crt"
start_csi node-a "$T_DIR/node.token"
start_csi node-b "$T_DIR/limited.token"
start_csi node-x "$T_DIR/bad.token"
start_csi node-e "$T_DIR/empty.token"

check "publish through sigil-ca over TLS" pub node-a v1 class=tls scope=node,service=web
check "leaf verifies against the bundle" openssl verify -CAfile "$PODS/v1/ca.crt" "$PODS/v1/tls.crt"
openssl x509 -in "$PODS/v1/tls.crt" -noout -text > "$T_DIR/v1.txt"
check_grep "the CA took the node name from the token" "DNS:node-a" "$T_DIR/v1.txt"
check_grep "issued by the sigil-ca class CA" "Issuer: CN ?= ?sigil CA tls" "$T_DIR/v1.txt"
[ -e "$T_DIR/node-a-state/ca" ] && fail "node created a local CA" || ok "no CA key on the node"

if pub node-x v2 class=tls scope=node > "$T_DIR/o.txt" 2>&1; then fail "bad token accepted"; else check_grep "bad token: UNAUTHENTICATED" "UNAUTHENTICATED" "$T_DIR/o.txt"; fi
if pub node-e v3 class=tls scope=node > "$T_DIR/o.txt" 2>&1; then fail "no token accepted"; else check_grep "no token: UNAUTHENTICATED" "UNAUTHENTICATED" "$T_DIR/o.txt"; fi
if pub node-b v4 class=company scope=node > "$T_DIR/o.txt" 2>&1; then fail "class outside the token's list accepted"; else check_grep "wrong class: PERMISSION_DENIED" "PERMISSION_DENIED.*company" "$T_DIR/o.txt"; fi
check "limited token may use its class" pub node-b v5 class=tls scope=node
if pub node-a v6 class=restricted scope=node > "$T_DIR/o.txt" 2>&1; then fail "name outside the policy accepted"; else check_grep "name outside namePolicy: PERMISSION_DENIED" "PERMISSION_DENIED.*allowedDomains" "$T_DIR/o.txt"; fi
check "name inside the policy" pub node-a v7 class=restricted scope=service=web
for v in v2 v3 v4 v6; do [ -e "$PODS/$v" ] && fail "failed publish $v left files"; done; ok "failed publishes left nothing"

# Company intermediate: the leaf chains through it to the company root.
check "publish from the company intermediate" pub node-a v8 class=company scope=node
check "company leaf verifies to the company root" openssl verify -CAfile "$co/root.crt" -untrusted "$PODS/v8/tls.crt" "$PODS/v8/tls.crt"
[ "$(grep -c 'BEGIN CERTIFICATE' "$PODS/v8/tls.crt")" = 2 ] && ok "tls.crt = leaf + intermediate" || fail "tls.crt chain length"
cmp -s <(openssl x509 -in "$PODS/v8/ca.crt" -noout -fingerprint) <(openssl x509 -in "$co/root.crt" -noout -fingerprint) \
  && ok "ca.crt is the company root" || fail "ca.crt is not the company root"

# cfssl signs: the key stays on the node, the CSR goes through sigil-ca to cfssl.
check "publish through the cfssl external CA" pub node-a v11 class=cfssl scope=node,service=web
check "cfssl-signed leaf verifies to the cfssl root" openssl verify -CAfile "$cf/ca.pem" "$PODS/v11/tls.crt"
openssl x509 -in "$PODS/v11/tls.crt" -noout -text > "$T_DIR/v11.txt"
check_grep "cfssl leaf issued by the cfssl CA" "Issuer: O ?= ?Example Corp, CN ?= ?cfssl CA" "$T_DIR/v11.txt"
check_grep "cfssl leaf has the names sigil-ca decided" "DNS:web.default.svc.cluster.local" "$T_DIR/v11.txt"

# CA down: UNAVAILABLE, nothing written; CA back: success.
kill -TERM "$CA_PID"; wait "$CA_PID" 2>/dev/null || true
if pub node-a v9 class=tls scope=node > "$T_DIR/o.txt" 2>&1; then fail "publish with the CA down succeeded"; else check_grep "CA down: UNAVAILABLE" "UNAVAILABLE" "$T_DIR/o.txt"; fi
[ -e "$PODS/v9" ] && fail "CA down left files" || ok "CA down left nothing"
start_ca
sleep 2.5 # the node's channel reconnects within its 2 s maximum backoff
check "CA back: the same publish succeeds" pub node-a v9 class=tls scope=node
check "after the restart the CA is the same" openssl verify -CAfile "$PODS/v1/ca.crt" "$PODS/v9/tls.crt"

# Classes reload on change.
sed -i 's/maxCertificateLifetime: 15d/maxCertificateLifetime: 2d/' "$CLS/classes.yaml"
sleep 3
check "publish after a class reload" pub node-a v10 class=tls scope=node backend.autotls.cert.lifetime=7d
na=$(openssl x509 -in "$PODS/v10/tls.crt" -noout -enddate | cut -d= -f2)
left=$(( $(date -d "$na" +%s) - $(date +%s) ))
[ "$left" -le $((2*86400)) ] && ok "reloaded class caps the lifetime at 2d ($left s)" || fail "lifetime $left s exceeds the reloaded 2d cap"
check_grep "sigil-ca logged the reload" "reloaded SecretClasses" "$T_DIR/ca.log"
t_finish
