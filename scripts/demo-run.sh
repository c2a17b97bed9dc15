#!/usr/bin/env bash
# Runs the demo against an existing build dir: starts sigil-ca and sigil-csi
# as separate processes, mints real volumes through the CSI socket exactly
# as the kubelet would (sigilctl publish), and shows what each holds.
set -euo pipefail
BUILD=${1:?usage: demo-run.sh BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${SIGIL_DEMO_OUT:-$ROOT/demo-out}
CTL="$BUILD/sigilctl"
PIDS=()
KDIR=""
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$KDIR" ]; then bash "$ROOT/tests/kdc/kdc.sh" stop "$KDIR" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

rm -rf "$OUT"
mkdir -p "$OUT"/{pods,classes,secrets}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

step "Standalone: sigil-csi with only --endpoint, --node-id and --state-dir (embedded CA, class 'tls')"
"$BUILD/sigil-csi" --endpoint "unix://$OUT/standalone.sock" --node-id node-1 --state-dir "$OUT/standalone-state" \
  2>"$OUT/standalone.log" & PIDS+=($!)
for _ in $(seq 50); do [ -S "$OUT/standalone.sock" ] && break; sleep 0.1; done
"$CTL" info --endpoint "$OUT/standalone.sock"
"$CTL" publish --endpoint "$OUT/standalone.sock" --volume-id demo-standalone --target "$OUT/pods/standalone" \
  --pod web-0 --namespace default --attr class=tls --attr scope=node,pod,service=web
"$CTL" inspect "$OUT/pods/standalone"

step "A throwaway MIT Kerberos realm (krb5kdc + kadmind on 127.0.0.1) for keytab volumes"
KDIR="$OUT/kdc"
bash "$ROOT/tests/kdc/kdc.sh" start "$KDIR" > "$OUT/kdc.log" 2>&1
# shellcheck disable=SC1091
( source "$KDIR/env"; echo "realm $REALM, KDC $KDC, kadmind $KADMIN, admin $ADMIN_PRINCIPAL" )
( source "$KDIR/env"; cat > "$OUT/classes/kerberos.yaml" <<YAML
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: kerberos}
spec:
  backend:
    kerberosKeytab:
      realmName: $REALM
      kdc: $KDC
      admin:
        mit: {kadminServer: $KADMIN}
      adminKeytabSecret: $ADMIN_KEYTAB
      adminPrincipal: $ADMIN_PRINCIPAL
YAML
)

step "In-cluster layout: sigil-ca holds every CA key, sigil-csi only sends CSRs"
cat > "$OUT/classes/tls.yaml" <<'YAML'
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: tls}
spec:
  backend:
    autoTls:
      ca: {autoGenerate: true, caCertificateLifetime: 365d}
      maxCertificateLifetime: 15d
YAML
TOKEN=$(openssl rand -hex 24)
printf '%s node-1\n' "$TOKEN" > "$OUT/tokens"; chmod 600 "$OUT/tokens"
echo "$TOKEN" > "$OUT/node.token"; chmod 600 "$OUT/node.token"
PORT=$(free_port)
CA_METRICS=$(free_port)
CSI_METRICS=$(free_port)
"$BUILD/sigil-ca" --listen "127.0.0.1:$PORT" --state-dir "$OUT/ca-state" --classes-dir "$OUT/classes" \
  --secrets-dir "$OUT/secrets" --tokens-file "$OUT/tokens" --metrics-addr "127.0.0.1:$CA_METRICS" \
  2>"$OUT/sigil-ca.log" & PIDS+=($!)
for _ in $(seq 50); do [ -s "$OUT/ca-state/issuer-ca.crt" ] && break; sleep 0.1; done
sleep 0.3
"$BUILD/sigil-csi" --endpoint "unix://$OUT/csi.sock" --node-id node-1 --state-dir "$OUT/node-state" \
  --ca-endpoint "127.0.0.1:$PORT" --ca-bundle "$OUT/ca-state/issuer-ca.crt" --token-file "$OUT/node.token" \
  --metrics-addr "127.0.0.1:$CSI_METRICS" --renew-fraction 0.25 --bundle-check-interval 2 \
  2>"$OUT/sigil-csi.log" & PIDS+=($!)
for _ in $(seq 50); do [ -S "$OUT/csi.sock" ] && break; sleep 0.1; done
echo "sigil-ca on 127.0.0.1:$PORT (TLS, bearer tokens), metrics :$CA_METRICS; sigil-csi on $OUT/csi.sock, metrics :$CSI_METRICS"
echo "(sigil-csi renews in-place volumes at 1/4 of their lifetime here, so that the demo can show one)"
"$CTL" info --endpoint "$OUT/csi.sock"

pub() { local vid=$1; shift; local a=(); for x in "$@"; do a+=(--attr "$x"); done
  "$CTL" publish --endpoint "$OUT/csi.sock" --volume-id "$vid" --target "$OUT/pods/$vid" --pod web-0 --namespace default "${a[@]}"; }

step "tls-pem, ECDSA P-256 key made on the node"
pub pem class=tls scope=node,pod,service=web format=tls-pem
"$CTL" inspect "$OUT/pods/pem"
echo; echo "openssl verify: $(openssl verify -CAfile "$OUT/pods/pem/ca.crt" "$OUT/pods/pem/tls.crt")"

step "tls-pkcs12, RSA-2048 from the node's key pool, password 'changeit'"
pub p12 class=tls scope=node,service=web format=tls-pkcs12 key-algorithm=rsa-2048 format.compatibility.tls-pkcs12.password=changeit
"$CTL" inspect "$OUT/pods/p12" --password changeit
echo; keytool -list -storetype PKCS12 -keystore "$OUT/pods/p12/truststore.p12" -storepass changeit | sed -n '1,12p'

step "tls-jks with an Ed25519 key (Stackable attribute prefix)"
"$CTL" publish --endpoint "$OUT/csi.sock" --volume-id jks --target "$OUT/pods/jks" --pod web-0 --namespace default \
  --attr secrets.stackable.tech/class=tls --attr secrets.stackable.tech/format=tls-jks \
  --attr secrets.stackable.tech/scope=node --attr secrets.stackable.tech/format.compatibility.tls-pkcs12.password=changeit \
  --attr secrets.sigil.dev/key-algorithm=ed25519
"$CTL" inspect "$OUT/pods/jks" --password changeit
echo; keytool -list -storetype JKS -keystore "$OUT/pods/jks/keystore.jks" -storepass changeit 2>/dev/null | sed -n '1,12p'

step "provision-parts=public: only the trust bundle"
pub public class=tls provision-parts=public
ls -lL "$OUT/pods/public/"

step "kerberos: principals created on the fly by sigil-ca through kadm5, keytab made for the pod"
pub krb class=kerberos scope=node,service=web kerberos.service.names=HTTP,kafka
"$CTL" inspect "$OUT/pods/krb"
echo; echo "krb5.conf written for the pod:"; sed 's/^/    /' "$OUT/pods/krb/krb5.conf"
( source "$KDIR/env"
  export KRB5_CONFIG="$OUT/pods/krb/krb5.conf" KRB5CCNAME="FILE:$OUT/krb-ccache"
  p="HTTP/web.default.svc.cluster.local@$REALM"
  kinit -kt "$OUT/pods/krb/keytab" "$p" && echo "kinit -kt keytab $p: OK"
  klist | sed 's/^/    /'
  kvno -k "$OUT/pods/krb/keytab" "$p" | sed 's/^/    /' )

step "Expiry watcher: a 1-minute certificate with renewal=in-place, renewed and swapped atomically"
pub short class=tls scope=node format=tls-pem renewal=in-place backend.autotls.cert.lifetime=1m \
  backend.autotls.cert.jitter-factor=0
show_cert() { openssl x509 -in "$OUT/pods/short/tls.crt" -noout -serial -enddate | tr '\n' ' ';
  echo " key $(openssl pkey -in "$OUT/pods/short/tls.key" -pubout | sha256sum | cut -c1-16)"; }
echo "published: $(show_cert)"
echo "   ..data -> $(readlink "$OUT/pods/short/..data")"
first=$(readlink "$OUT/pods/short/..data")
for _ in $(seq 60); do [ "$(readlink "$OUT/pods/short/..data")" != "$first" ] && break; sleep 0.5; done
echo "renewed:   $(show_cert)"
echo "   ..data -> $(readlink "$OUT/pods/short/..data")  (new version dir, swapped in one rename)"
grep -m1 "volume short" "$OUT/sigil-csi.log" | sed 's/^/    log: /' || true

step "CA rotation reaches live volumes: sigilctl ca rotate against sigil-ca (admin token)"
ADMIN=$(openssl rand -hex 24)
printf '%s @admin\n' "$ADMIN" >> "$OUT/tokens"
echo "$ADMIN" > "$OUT/admin.token"; chmod 600 "$OUT/admin.token"
sleep 1.2 # the tokens file is re-read at most once a second
"$CTL" ca rotate --ca-endpoint "127.0.0.1:$PORT" --ca-bundle "$OUT/ca-state/issuer-ca.crt" \
  --token-file "$OUT/admin.token" --class tls
for _ in $(seq 40); do [ "$(grep -c BEGIN "$OUT/pods/pem/ca.crt" 2>/dev/null || echo 0)" -ge 2 ] && break; sleep 0.5; done
echo "ca.crt of volume 'pem' now holds $(grep -c BEGIN "$OUT/pods/pem/ca.crt") CA certificates (old and new generation)"

step "Prometheus metrics: sigil-csi (:$CSI_METRICS/metrics) and sigil-ca (:$CA_METRICS/metrics)"
curl -s "http://127.0.0.1:$CSI_METRICS/metrics" | grep -E '^sigil_(volume_not_after_seconds|renewals_total|publishes_total|publish_duration_seconds_count|key_pool_depth|trust_bundle_updates_total|watched_volumes)' | sed 's/^/    /'
curl -s "http://127.0.0.1:$CA_METRICS/metrics" | grep -E '^sigil_ca_(issued_total|not_after_seconds|rotations_total|generations|issue_duration_seconds_count)' | sed 's/^/    /'
echo "    /readyz: sigil-csi $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CSI_METRICS/readyz"), sigil-ca $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CA_METRICS/readyz")"

step "What the kubelet sees on a bad request: INVALID_ARGUMENT naming the attribute"
pub bad class=tls format=pfx || true

step "Unpublish"
"$CTL" unpublish --endpoint "$OUT/csi.sock" --volume-id pem --target "$OUT/pods/pem"

bash "$ROOT/scripts/demo-cluster.sh" "$BUILD" "$OUT"

step "Done: everything is under $OUT (logs: sigil-ca.log, sigil-csi.log)"
