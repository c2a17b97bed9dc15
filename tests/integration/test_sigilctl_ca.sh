#!/usr/bin/env bash
# sigilctl ca status|rotate against a running sigil-ca (issuer API Status
# and Rotate over TLS with a bearer token): text and JSON output, admin
# and node tokens, sigil-ca down; and the local --state-dir mode still.
source "$(dirname "$0")/lib.sh"

CA="$SIGIL_BUILD_DIR/sigil-ca"
CAS="$T_DIR/ca-state"; CLS="$T_DIR/classes"; SEC="$T_DIR/secrets"
mkdir -p "$CLS" "$SEC"
NODE_TOKEN=node-a-token-0123456789abcdef
ADMIN_TOKEN=admin-token-0123456789abcdef0
printf '%s node-a\n%s @admin\n' "$NODE_TOKEN" "$ADMIN_TOKEN" > "$T_DIR/tokens"
chmod 600 "$T_DIR/tokens"
echo "$NODE_TOKEN" > "$T_DIR/node.token"
echo "$ADMIN_TOKEN" > "$T_DIR/admin.token"
echo "wrong-token-0123456789abcdef" > "$T_DIR/bad.token"

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
---
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: internal}
spec:
  backend:
    autoTls:
      ca: {autoGenerate: true}
YAML

CA_PORT=$(free_port)
"$CA" --listen "127.0.0.1:$CA_PORT" --state-dir "$CAS" --classes-dir "$CLS" --secrets-dir "$SEC" \
  --tokens-file "$T_DIR/tokens" >>"$T_DIR/ca.log" 2>&1 &
CA_PID=$!; T_PIDS+=("$CA_PID")
wait_port "$CA_PORT" "$CA_PID" || { echo "sigil-ca did not start"; cat "$T_DIR/ca.log"; exit 1; }
for _ in $(seq 1 100); do [ -s "$CAS/issuer-ca.crt" ] && break; sleep 0.1; done

# ctl TOKENFILE ARGS...: sigilctl ca against the running sigil-ca.
ctl() {
  local tok=$1; shift
  "$SIGILCTL" ca "$1" --ca-endpoint "127.0.0.1:$CA_PORT" --ca-bundle "$CAS/issuer-ca.crt" \
    --token-file "$tok" "${@:2}"
}
# pyj FILE EXPR: a Python expression over the JSON in FILE (as d); fails when false.
pyj() { /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"; }

# ---- status --------------------------------------------------------------------------
check "status with an admin token" ctl "$T_DIR/admin.token" status
cp "$T_DIR/.out" "$T_DIR/status.txt"
check_grep "status shows class tls with its backend" "^class tls \(autoTls\): 1 CA generation\(s\), bundle version [0-9]+" "$T_DIR/status.txt"
check_grep "status shows class internal" "^class internal \(autoTls\)" "$T_DIR/status.txt"
check_grep "status shows generation 1 as active with its subject" "^  1 +active +ECDSA P-256 +[0-9T:Z-]+ +[0-9T:Z-]+ +/CN=sigil CA tls #1$" "$T_DIR/status.txt"

ctl "$T_DIR/node.token" status --class tls --json > "$T_DIR/s1.json" 2>"$T_DIR/s1.err" \
  && ok "status --class tls --json with a node token" || { fail "status --json"; cat "$T_DIR/s1.err"; }
check "JSON has exactly class tls" pyj "$T_DIR/s1.json" '[c["name"] for c in d["classes"]] == ["tls"]'
check "JSON lists generation 1, active, with RFC 3339 times" pyj "$T_DIR/s1.json" \
  'd["classes"][0]["generations"][0]["generation"] == 1 and d["classes"][0]["generations"][0]["state"] == "active" and d["classes"][0]["generations"][0]["notAfter"].endswith("Z")'
check "JSON bundle version is a decimal string" pyj "$T_DIR/s1.json" 'd["classes"][0]["bundleVersion"].isdigit()'
V1=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["classes"][0]["bundleVersion"])' "$T_DIR/s1.json")

check_fails "status of a class that does not exist fails" ctl "$T_DIR/admin.token" status --class nosuch
check_grep "... saying so" "has no class nosuch" "$T_DIR/.out"

# ---- rotate ----------------------------------------------------------------------------
check "rotate --class tls with an admin token" ctl "$T_DIR/admin.token" rotate --class tls
cp "$T_DIR/.out" "$T_DIR/rotate.txt"
check_grep "rotate reports the new bundle version" "^rotated class tls: bundle version [0-9]+" "$T_DIR/rotate.txt"
check_grep "rotate shows generation 2" "^class tls \(autoTls\): 2 CA generation\(s\)" "$T_DIR/rotate.txt"
ctl "$T_DIR/admin.token" status --class tls --json > "$T_DIR/s2.json"
check "generations are now 1 and 2" pyj "$T_DIR/s2.json" '[g["generation"] for g in d["classes"][0]["generations"]] == [1, 2]'
check "the bundle version changed" pyj "$T_DIR/s2.json" "d['classes'][0]['bundleVersion'] != '$V1'"
ctl "$T_DIR/admin.token" rotate --class tls --json > "$T_DIR/r3.json"
check "rotate --json names the class, the new version and 3 generations" pyj "$T_DIR/r3.json" \
  'd["rotated"] == "tls" and d["bundleVersion"] == d["classes"][0]["bundleVersion"] and len(d["classes"][0]["generations"]) == 3'
ctl "$T_DIR/admin.token" status --class internal --json > "$T_DIR/si.json"
check "the other class was not rotated" pyj "$T_DIR/si.json" 'len(d["classes"][0]["generations"]) == 1'

check_fails "rotate with a node token fails" ctl "$T_DIR/node.token" rotate --class tls
check_grep "... with PERMISSION_DENIED and why" "permission denied by sigil-ca \(PERMISSION_DENIED\): rotating a CA needs an admin token" "$T_DIR/.out"
ctl "$T_DIR/admin.token" status --class tls --json > "$T_DIR/s4.json"
check "... and no generation was added" pyj "$T_DIR/s4.json" 'len(d["classes"][0]["generations"]) == 3'
check_fails "a wrong token fails" ctl "$T_DIR/bad.token" status
check_grep "... with UNAUTHENTICATED naming the token file" "did not accept the token in .*bad.token \(UNAUTHENTICATED\)" "$T_DIR/.out"

# ---- usage errors --------------------------------------------------------------------------
check_fails "--ca-endpoint without --token-file is a usage error" \
  "$SIGILCTL" ca status --ca-endpoint "127.0.0.1:$CA_PORT" --ca-bundle "$CAS/issuer-ca.crt"
check_grep "... naming what is missing" "needs --ca-bundle and --token-file" "$T_DIR/.out"
check_fails "a missing token file fails" ctl "$T_DIR/nope.token" status
check_grep "... naming it" "token-file: .*nope.token" "$T_DIR/.out"

# ---- sigil-ca down --------------------------------------------------------------------------
kill "$CA_PID"; wait "$CA_PID" 2>/dev/null || true
check_fails "status with sigil-ca down fails" ctl "$T_DIR/admin.token" status
check_grep "... with a clear UNAVAILABLE error" "sigil-ca at 127.0.0.1:$CA_PORT is unavailable \(UNAVAILABLE\)" "$T_DIR/.out"
check_fails "rotate with sigil-ca down fails" ctl "$T_DIR/admin.token" rotate --class tls
check_grep "... with UNAVAILABLE" "is unavailable \(UNAVAILABLE\)" "$T_DIR/.out"

# ---- the local state-dir mode still works ------------------------------------------------------
check "local ca init" "$SIGILCTL" ca init --state-dir "$T_DIR/local" --class tls
check "local ca rotate" "$SIGILCTL" ca rotate --state-dir "$T_DIR/local" --class tls
check_grep "... shows 2 generations" "class tls: 2 CA generation" "$T_DIR/.out"
check_fails "--json needs --ca-endpoint" "$SIGILCTL" ca status --state-dir "$T_DIR/local" --json

t_finish
