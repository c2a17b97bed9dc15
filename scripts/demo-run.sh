#!/usr/bin/env bash
# Runs the demo against an existing build dir: a CA in a state dir, a TLS
# volume in every format, and what each holds.
set -euo pipefail
BUILD=${1:?usage: demo-run.sh BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${SIGIL_DEMO_OUT:-$ROOT/demo-out}
CTL="$BUILD/sigilctl"

rm -rf "$OUT"
mkdir -p "$OUT"
STATE="$OUT/state"
VOL="$OUT/volumes"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Create the CA of class 'tls' in $STATE"
"$CTL" ca init --state-dir "$STATE" --class tls --ca-key-algorithm ecdsa-p256 --ca-lifetime 365d

NAMES=(--cn web-0 --dns web-0.web.default.svc.cluster.local --dns web.default.svc.cluster.local --ip 10.244.1.7)

step "Mint a tls-pem volume (ECDSA P-256 key made on the node)"
"$CTL" mint --state-dir "$STATE" --out "$VOL/pem" --format tls-pem --key-algorithm ecdsa-p256 "${NAMES[@]}" --lifetime 24h
"$CTL" inspect "$VOL/pem"
echo; echo "openssl verify: $(openssl verify -CAfile "$VOL/pem/ca.crt" "$VOL/pem/tls.crt")"

step "Mint a tls-pkcs12 volume (RSA-2048, modern PBES2/AES-256/SHA-256, password 'changeit')"
"$CTL" mint --state-dir "$STATE" --out "$VOL/pkcs12" --format tls-pkcs12 --key-algorithm rsa-2048 "${NAMES[@]}" --password changeit
"$CTL" inspect "$VOL/pkcs12" --password changeit
echo; keytool -list -storetype PKCS12 -keystore "$VOL/pkcs12/truststore.p12" -storepass changeit | sed -n '1,20p'

step "Mint a tls-pkcs12 volume with the legacy profile (SHA1/3DES for old Java)"
"$CTL" mint --state-dir "$STATE" --out "$VOL/pkcs12-legacy" --format tls-pkcs12 --pkcs12-legacy --key-algorithm ecdsa-p384 "${NAMES[@]}" --password changeit
openssl pkcs12 -in "$VOL/pkcs12-legacy/keystore.p12" -info -noout -passin pass:changeit -legacy 2>&1 | sed 's/^/  /'

step "Mint a tls-jks volume (Ed25519 key, password 'changeit')"
"$CTL" mint --state-dir "$STATE" --out "$VOL/jks" --format tls-jks --key-algorithm ed25519 "${NAMES[@]}" --password changeit
"$CTL" inspect "$VOL/jks" --password changeit
echo; keytool -list -storetype JKS -keystore "$VOL/jks/keystore.jks" -storepass changeit 2>/dev/null | sed -n '1,20p'

step "provision-parts=public: only the trust bundle"
"$CTL" mint --state-dir "$STATE" --out "$VOL/public" --format tls-pem --public-only
ls -l "$VOL/public"

step "Rotate the CA: the bundle now holds both generations"
"$CTL" ca rotate --state-dir "$STATE" --class tls
"$CTL" mint --state-dir "$STATE" --out "$VOL/after-rotation" --format tls-pem "${NAMES[@]}"
echo "ca.crt holds $(grep -c 'BEGIN CERTIFICATE' "$VOL/after-rotation/ca.crt") CA certificate(s)"
echo "openssl verify: $(openssl verify -CAfile "$VOL/after-rotation/ca.crt" "$VOL/after-rotation/tls.crt")"

step "Done: everything is under $OUT"
