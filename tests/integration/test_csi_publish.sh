#!/usr/bin/env bash
# sigil-csi end to end through sigilctl (which speaks CSI like the kubelet):
# every format verified with openssl and keytool, idempotency, invalid
# arguments, restart with re-adoption, privileged tmpfs, SIGTERM during
# in-flight publishes.
source "$(dirname "$0")/lib.sh"

CSI="$SIGIL_BUILD_DIR/sigil-csi"
SOCK="$T_DIR/csi.sock"
STATE="$T_DIR/state"
PODS="$T_DIR/pods"
mkdir -p "$PODS"

start_csi() {
  "$CSI" --endpoint "unix://$SOCK" --node-id node-a --state-dir "$STATE" --key-pool rsa-2048=2 "$@" \
    >>"$T_DIR/csi.log" 2>&1 &
  CSI_PID=$!
  T_PIDS+=("$CSI_PID")
  for _ in $(seq 1 100); do
    [ -S "$SOCK" ] && "$SIGILCTL" info --endpoint "$SOCK" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "sigil-csi did not come up"; cat "$T_DIR/csi.log"; return 1
}
stop_csi() {
  kill -TERM "$CSI_PID"
  local rc=0
  wait "$CSI_PID" || rc=$?
  return $rc
}
pub() { # pub VOLUME TARGET ATTR...
  local vid=$1 tgt=$2; shift 2
  local args=()
  for a in "$@"; do args+=(--attr "$a"); done
  "$SIGILCTL" publish --endpoint "$SOCK" --volume-id "$vid" --target "$tgt" --pod web-0 --namespace default "${args[@]}"
}

start_csi
"$SIGILCTL" info --endpoint "$SOCK" > "$T_DIR/info.txt"
check_grep "GetPluginInfo names the driver" "driver: +secrets.sigil.dev" "$T_DIR/info.txt"
check_grep "Probe is ready with the embedded CA" "ready: +yes" "$T_DIR/info.txt"
check_grep "NodeGetInfo topology" "topology: secrets.sigil.dev/node=node-a" "$T_DIR/info.txt"

# tls-pem, default format, with scopes from the volume context.
check "publish tls-pem" pub vol-pem "$PODS/pem" class=tls scope=node,pod,service=web
check "openssl verify tls-pem volume" openssl verify -CAfile "$PODS/pem/ca.crt" "$PODS/pem/tls.crt"
openssl x509 -in "$PODS/pem/tls.crt" -noout -text > "$T_DIR/pem.txt"
check_grep "node scope gives the node name" "DNS:node-a" "$T_DIR/pem.txt"
check_grep "service scope gives the service name" "DNS:web.default.svc.cluster.local" "$T_DIR/pem.txt"
check_grep "CN is the pod name" "Subject: CN ?= ?web-0" "$T_DIR/pem.txt"
m=$(stat -L -c %a "$PODS/pem/tls.key")
[ "$m" = 640 ] && ok "tls.key 0640" || fail "tls.key mode $m"

# tls-pkcs12 (RSA from the pool) and tls-jks, with the Stackable prefix too.
check "publish tls-pkcs12 rsa-2048" pub vol-p12 "$PODS/p12" class=tls scope=pod format=tls-pkcs12 \
  key-algorithm=rsa-2048 format.compatibility.tls-pkcs12.password=changeit
check "keytool lists keystore.p12" keytool -list -storetype PKCS12 -keystore "$PODS/p12/keystore.p12" -storepass changeit
keytool -list -storetype PKCS12 -keystore "$PODS/p12/truststore.p12" -storepass changeit > "$T_DIR/kt.txt" 2>&1 || true
check_grep "truststore.p12 holds trusted entries" "trustedCertEntry" "$T_DIR/kt.txt"
check "publish tls-jks via the Stackable prefix" "$SIGILCTL" publish --endpoint "$SOCK" --volume-id vol-jks --target "$PODS/jks" \
  --pod web-0 --namespace default --attr secrets.stackable.tech/class=tls --attr secrets.stackable.tech/format=tls-jks \
  --attr secrets.stackable.tech/scope=node --attr secrets.stackable.tech/format.compatibility.tls-pkcs12.password=changeit
keytool -list -storetype JKS -keystore "$PODS/jks/keystore.jks" -storepass changeit > "$T_DIR/ktj.txt" 2>&1 || true
check_grep "keystore.jks holds a PrivateKeyEntry" "PrivateKeyEntry" "$T_DIR/ktj.txt"
check "publish ed25519 with custom file names" pub vol-ed "$PODS/ed" class=tls scope=node key-algorithm=ed25519 \
  format.tls-pem.cert-name=certs/server.pem format.tls-pem.key-name=certs/server.key format.tls-pem.ca-name=trust.pem
check "custom names verify" openssl verify -CAfile "$PODS/ed/trust.pem" "$PODS/ed/certs/server.pem"
check "provision-parts=public" pub vol-pub "$PODS/pub" class=tls provision-parts=public
if [ -e "$PODS/pub/tls.key" ] || [ ! -e "$PODS/pub/ca.crt" ]; then fail "public volume holds a key or no bundle"; else ok "public volume holds only ca.crt"; fi
"$SIGILCTL" inspect "$PODS/p12" --password changeit > "$T_DIR/inspect.txt"
check_grep "inspect shows the keystore key entry" "key-entry" "$T_DIR/inspect.txt"

# Idempotency (CSI spec): the same publish again succeeds without minting;
# an incompatible one is ALREADY_EXISTS.
before=$(sha256sum "$PODS/pem/tls.crt")
check "republish identical request" pub vol-pem "$PODS/pem" class=tls scope=node,pod,service=web
after=$(sha256sum "$PODS/pem/tls.crt")
[ "$before" = "$after" ] && ok "republish did not mint again" || fail "republish minted a new certificate"
if pub vol-pem "$PODS/pem" class=tls scope=node > "$T_DIR/ae.txt" 2>&1; then fail "incompatible republish accepted"; else check_grep "incompatible republish is ALREADY_EXISTS" "ALREADY_EXISTS" "$T_DIR/ae.txt"; fi

# Invalid arguments: each a clear INVALID_ARGUMENT and nothing in the target.
bad() { # bad DESCRIPTION PATTERN ATTR...
  local desc=$1 pat=$2; shift 2
  local tgt="$PODS/bad-$RANDOM"
  if pub "vol-bad-$RANDOM" "$tgt" "$@" > "$T_DIR/bad.txt" 2>&1; then fail "$desc: accepted"; return; fi
  if grep -qE "INVALID_ARGUMENT.*$pat" "$T_DIR/bad.txt"; then ok "$desc"; else fail "$desc: $(cat "$T_DIR/bad.txt")"; fi
  [ -e "$tgt" ] && fail "$desc: left $tgt behind" || true
}
bad "missing class" "class' is required" scope=pod
bad "unknown attribute" "secrets.sigil.dev/colour" class=tls colour=red
bad "bad format" "unknown format 'pfx'" class=tls format=pfx
bad "bad scope" "unknown scope 'cluster'" class=tls scope=cluster
bad "path traversal in a file name" "not a safe file name" class=tls scope=node format.tls-pem.key-name=../../etc/x
bad "bad lifetime" "backend.autotls.cert.lifetime" class=tls backend.autotls.cert.lifetime=forever
bad "bad key algorithm" "dsa-512" class=tls key-algorithm=dsa-512
if "$SIGILCTL" publish --endpoint "$SOCK" --volume-id v --target relative/path --attr class=tls > "$T_DIR/bad.txt" 2>&1; then fail "relative target accepted"; else check_grep "relative target is INVALID_ARGUMENT" "INVALID_ARGUMENT" "$T_DIR/bad.txt"; fi
if pub "" "$PODS/x" class=tls > "$T_DIR/bad.txt" 2>&1; then fail "empty volume id accepted"; else check_grep "empty volume id is INVALID_ARGUMENT" "INVALID_ARGUMENT.*volume_id" "$T_DIR/bad.txt"; fi
if pub vol-nc "$PODS/nc" class=nosuchclass > "$T_DIR/bad.txt" 2>&1; then fail "unknown class accepted"; else check_grep "unknown class is NOT_FOUND" "NOT_FOUND.*nosuchclass" "$T_DIR/bad.txt"; fi
[ -e "$PODS/nc" ] && fail "unknown class left its target" || ok "unknown class left nothing"

# Restart: the state dir brings every volume back.
check "SIGTERM exits 0" stop_csi
start_csi
check_grep "restarted sigil-csi knows its 5 volumes" "5 known volumes" "$T_DIR/csi.log"
check "republish after restart is idempotent" pub vol-pem "$PODS/pem" class=tls scope=node,pod,service=web
after2=$(sha256sum "$PODS/pem/tls.crt")
[ "$before" = "$after2" ] && ok "no new certificate after restart" || fail "restart caused a re-mint"
check "unpublish after restart" "$SIGILCTL" unpublish --endpoint "$SOCK" --volume-id vol-pem --target "$PODS/pem"
[ -e "$PODS/pem" ] && fail "unpublish left the target" || ok "unpublish removed the target"
check "unpublish is idempotent" "$SIGILCTL" unpublish --endpoint "$SOCK" --volume-id vol-pem --target "$PODS/pem"

# SIGTERM while publishes are in flight: exit 0, every publish is whole or absent.
for i in $(seq 1 12); do
  pub "vol-f$i" "$PODS/f$i" class=tls scope=node key-algorithm=rsa-3072 >"$T_DIR/f$i.log" 2>&1 &
done
sleep 0.3
check "SIGTERM with publishes in flight exits 0" stop_csi
wait 2>/dev/null || true
whole=0
for i in $(seq 1 12); do
  if [ -e "$PODS/f$i" ]; then
    if openssl verify -CAfile "$PODS/f$i/ca.crt" "$PODS/f$i/tls.crt" >/dev/null 2>&1; then whole=$((whole+1)); else fail "half-written volume f$i"; fi
  fi
done
ok "in-flight publishes: $whole of 12 complete, none half-written"

# Privileged: a tmpfs per target (root only; CI runs as root).
if [ "$(id -u)" = 0 ]; then
  start_csi --privileged
  check "privileged publish" pub vol-tmpfs "$PODS/tmpfs" class=tls scope=node
  if grep -E " $PODS/tmpfs tmpfs .*nosuid,nodev,noexec" /proc/mounts >/dev/null; then ok "tmpfs mounted nosuid,nodev,noexec"; else fail "no tmpfs at the target: $(grep "$PODS" /proc/mounts)"; fi
  check "privileged unpublish" "$SIGILCTL" unpublish --endpoint "$SOCK" --volume-id vol-tmpfs --target "$PODS/tmpfs"
  grep -q " $PODS/tmpfs " /proc/mounts && fail "tmpfs still mounted" || ok "tmpfs unmounted"
  stop_csi || true
else
  echo "skip - privileged tmpfs path needs root"
fi

t_finish
