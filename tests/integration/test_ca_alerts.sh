#!/bin/bash
# sigil-ca's rotation alerts (--alert-webhook, Alertmanager API v2) against
# the fake receiver (tests/fakes/alert_receiver.py):
# - SigilCAExpiringSoon for a class whose newest CA is in the last quarter
#   of its life with no successor (an imported company CA nearing its end);
# - SigilCARotationFailed when the CA store (Secrets, through the fake
#   apiserver) cannot be read, and its resolution once it can again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CA="$SIGIL_BUILD_DIR/sigil-ca"
FAKE="$SIGIL_SOURCE_DIR/tests/fakes/kube_apiserver.py"
RECV="$SIGIL_SOURCE_DIR/tests/fakes/alert_receiver.py"
D="$T_DIR"
[ -x "$CA" ] || { echo "sigil-ca not built"; exit 1; }

/usr/bin/python3 "$RECV" --port-file "$D/recv.port" >"$D/recv.log" 2>&1 &
T_PIDS+=($!)
for _ in $(seq 100); do [ -s "$D/recv.port" ] && break; sleep 0.05; done
RPORT=$(cat "$D/recv.port")
alerts() { curl -sS "http://127.0.0.1:$RPORT/_fake/requests"; }
# count NAME [resolved]: alerts named NAME received (firing, or resolved).
count() {
  alerts | /usr/bin/python3 -c '
import json, sys, datetime
name, want_resolved = sys.argv[1], len(sys.argv) > 2
n = 0
for r in json.load(sys.stdin):
    for a in r["body"] or []:
        if a["labels"].get("alertname") != name:
            continue
        ends = a.get("endsAt")
        resolved = bool(ends) and datetime.datetime.fromisoformat(ends.replace("Z", "+00:00")) <= \
            datetime.datetime.now(datetime.timezone.utc)
        n += resolved == want_resolved
print(n)' "$@"
}
wait_count() { # wait_count SECONDS NAME [resolved]
  local s=$1; shift
  for _ in $(seq $((s * 5))); do [ "$(count "$@")" -ge 1 ] && return 0; sleep 0.2; done
  return 1
}

# ---- 1. a company CA in the last quarter of its life ------------------------------
# A CA valid from 3 days ago until 12 hours from now (openssl ca can set both).
mkdir -p "$D/ca-db" "$D/secrets/sigil/company-ca" "$D/classes"
: > "$D/ca-db/index.txt"
echo 1000 > "$D/ca-db/serial"
cat > "$D/ca-db/openssl.cnf" <<EOF
[ca]
default_ca = d
[d]
dir = $D/ca-db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
default_md = sha256
policy = p
copy_extensions = none
[p]
commonName = supplied
[ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/company.key" \
  -out "$D/company.csr" -subj "/CN=Company Root Ending" 2>/dev/null
START=$(date -u -d '3 days ago' +%Y%m%d%H%M%SZ)
END=$(date -u -d '12 hours' +%Y%m%d%H%M%SZ)
check "a CA valid from 3 days ago to 12 hours from now" \
  openssl ca -batch -selfsign -config "$D/ca-db/openssl.cnf" -keyfile "$D/company.key" -in "$D/company.csr" \
  -startdate "$START" -enddate "$END" -extensions ext -notext -out "$D/company.crt"
cp "$D/company.crt" "$D/secrets/sigil/company-ca/ca.crt"
cp "$D/company.key" "$D/secrets/sigil/company-ca/ca.key"
cp "$D/company.crt" "$D/secrets/sigil/company-ca/chain.crt"
cat > "$D/classes/company.yaml" <<'EOF'
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: company}
spec:
  backend:
    autoTls:
      ca:
        secret: {name: company-ca, namespace: sigil}
        autoGenerate: false
      maxCertificateLifetime: 1h
EOF
cat >> "$D/classes/company.yaml" <<'EOF'
---
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: tls}
spec:
  backend:
    autoTls:
      ca: {autoGenerate: true}
EOF
printf 'node-token-0123456789abcdef node-a\n' > "$D/tokens"; chmod 600 "$D/tokens"
P1=$(free_port)
"$CA" --listen "127.0.0.1:$P1" --state-dir "$D/s1" --tokens-file "$D/tokens" --classes-dir "$D/classes" \
  --secrets-dir "$D/secrets" --refresh-interval 1 --alert-webhook "http://127.0.0.1:$RPORT" >"$D/ca1.log" 2>&1 &
CA1=$!
T_PIDS+=("$CA1")
wait_port "$P1" "$CA1" || { echo "sigil-ca did not start"; cat "$D/ca1.log"; exit 1; }
if wait_count 20 SigilCAExpiringSoon; then ok "SigilCAExpiringSoon for the ending company CA"; else fail "no SigilCAExpiringSoon"; alerts; fi
alerts > "$D/a1.json"
check "the alert names the class, is critical and says why" /usr/bin/python3 -c '
import json, sys
al = [a for r in json.load(open(sys.argv[1])) for a in r["body"] if a["labels"]["alertname"] == "SigilCAExpiringSoon"]
a = al[0]
assert a["labels"]["class"] == "company" and a["labels"]["severity"] == "critical", a
assert "no successor" in a["annotations"]["description"], a
assert all(x["labels"]["class"] == "company" for x in al), "the healthy tls class must not alert"' "$D/a1.json"
sleep 3
check "not re-sent every refresh (at most once per 5 minutes)" test "$(count SigilCAExpiringSoon)" = 1
kill "$CA1"; wait "$CA1" 2>/dev/null || true

# ---- 2. the CA store cannot be read: rotation failed, then resolved ----------------
fake_kube_tls "$D/kca" "$D/srv"
echo '{"items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sigil"}}]}' > "$D/seed.json"
start_fake() {
  rm -f "$D/kport"
  /usr/bin/python3 "$FAKE" --cert "$D/srv.crt" --key "$D/srv.key" --port "${1:-0}" \
    --token ca-token=system:serviceaccount:sigil:sigil-ca --seed "$D/seed.json" \
    --port-file "$D/kport" >>"$D/fake.log" 2>&1 &
  FAKE_PID=$!
  T_PIDS+=("$FAKE_PID")
  for _ in $(seq 100); do [ -s "$D/kport" ] && break; sleep 0.05; done
}
start_fake 0
KPORT=$(cat "$D/kport")
cat > "$D/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: f, cluster: {server: "https://127.0.0.1:$KPORT", certificate-authority: "$D/kca.crt"}}]
users: [{name: u, user: {token: ca-token}}]
contexts: [{name: f, context: {cluster: f, user: u, namespace: sigil}}]
current-context: f
EOF
curl -sS -X POST "http://127.0.0.1:$RPORT/_fake/config" -d '{"reset": true}' >/dev/null
P2=$(free_port)
"$CA" --listen "127.0.0.1:$P2" --state-dir "$D/s2" --tokens-file "$D/tokens" --kubeconfig "$D/kubeconfig" \
  --classes-dir "$D/classes" --secrets-dir "$D/secrets" --ca-store secret --refresh-interval 1 \
  --alert-webhook "http://127.0.0.1:$RPORT" >"$D/ca2.log" 2>&1 &
CA2=$!
T_PIDS+=("$CA2")
wait_port "$P2" "$CA2" || { echo "sigil-ca did not start"; cat "$D/ca2.log"; exit 1; }
sleep 3
check "no rotation alert while the store is healthy" test "$(count SigilCARotationFailed)" = 0
kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null || true
if wait_count 30 SigilCARotationFailed; then ok "SigilCARotationFailed once the store is unreachable"; else fail "no SigilCARotationFailed"; tail -5 "$D/ca2.log"; fi
start_fake "$KPORT"
if wait_count 30 SigilCARotationFailed resolved; then ok "resolved once the store is back"; else fail "no resolution"; tail -5 "$D/ca2.log"; fi
kill -TERM "$CA2"
check "sigil-ca exits 0 on SIGTERM" wait "$CA2"
t_finish
