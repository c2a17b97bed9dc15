#!/usr/bin/env bash
# Minted volumes checked with real tools: openssl verify/x509/pkcs12,
# a mutual-TLS handshake between openssl s_server and s_client, keytool.
source "$(dirname "$0")/lib.sh"

S="$T_DIR/state"
V="$T_DIR/vol"

check "ca init" "$SIGILCTL" ca init --state-dir "$S" --class tls
check "mint server tls-pem" "$SIGILCTL" mint --state-dir "$S" --out "$V/server" --cn server --dns localhost --ip 127.0.0.1 --ip ::1
check "mint client tls-pem (rsa-2048)" "$SIGILCTL" mint --state-dir "$S" --out "$V/client" --cn client --dns client.default.svc.cluster.local --key-algorithm rsa-2048

check "openssl verify server leaf" openssl verify -CAfile "$V/server/ca.crt" "$V/server/tls.crt"
check "openssl verify client leaf" openssl verify -CAfile "$V/client/ca.crt" "$V/client/tls.crt"

openssl x509 -in "$V/server/tls.crt" -noout -text > "$T_DIR/leaf.txt"
check_grep "leaf is not a CA" "CA:FALSE" "$T_DIR/leaf.txt"
check_grep "leaf EKU serverAuth+clientAuth" "TLS Web Server Authentication, TLS Web Client Authentication" "$T_DIR/leaf.txt"
check_grep "EC leaf keyUsage digitalSignature only" "^ +Digital Signature$" "$T_DIR/leaf.txt"
check_grep "leaf SANs" "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" "$T_DIR/leaf.txt"
check_grep "leaf has SKI" "Subject Key Identifier" "$T_DIR/leaf.txt"
check_grep "leaf has AKI" "Authority Key Identifier" "$T_DIR/leaf.txt"
openssl x509 -in "$V/client/tls.crt" -noout -text > "$T_DIR/rsaleaf.txt"
check_grep "RSA leaf keyUsage digitalSignature+keyEncipherment" "Digital Signature, Key Encipherment" "$T_DIR/rsaleaf.txt"

openssl x509 -in "$V/server/ca.crt" -noout -text > "$T_DIR/ca.txt"
check_grep "CA basicConstraints critical" "Basic Constraints: critical" "$T_DIR/ca.txt"
check_grep "CA:TRUE" "CA:TRUE" "$T_DIR/ca.txt"
check_grep "CA keyUsage critical" "Key Usage: critical" "$T_DIR/ca.txt"
check_grep "CA keyCertSign+cRLSign" "Certificate Sign, CRL Sign" "$T_DIR/ca.txt"
if [ "$(grep -c 'BEGIN CERTIFICATE' "$V/server/tls.crt")" -eq 1 ]; then ok "tls.crt holds the leaf, not the root"; else fail "tls.crt holds more than the leaf"; fi
check_grep "tls.key is PKCS#8" "BEGIN PRIVATE KEY" "$V/server/tls.key"
mode=$(stat -c %a "$V/server/tls.key")
if [ "$mode" = 640 ]; then ok "tls.key mode 0640"; else fail "tls.key mode $mode"; fi

# Mutual TLS between openssl s_server and s_client, each with a minted leaf.
# Another test may take a port between the check and the bind: try again.
for _ in 1 2 3; do
  port=$(free_port)
  openssl s_server -accept "127.0.0.1:$port" -cert "$V/server/tls.crt" -key "$V/server/tls.key" \
    -CAfile "$V/server/ca.crt" -Verify 1 -verify_return_error -naccept 2 -rev \
    > "$T_DIR/s_server.log" 2>&1 &
  T_PIDS+=($!)
  wait_port "$port" "$!" && break
done
wait_port "$port" || fail "s_server did not start"
(echo hello; sleep 1) | timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
  -verify_hostname localhost -CAfile "$V/client/ca.crt" -verify_return_error \
  -cert "$V/client/tls.crt" -key "$V/client/tls.key" > "$T_DIR/s_client.log" 2>&1 || true
check_grep "s_client verified the server (hostname localhost)" "Verify return code: 0 \(ok\)" "$T_DIR/s_client.log"
check_grep "s_server echoed through the mTLS channel" "olleh" "$T_DIR/s_client.log"
sleep 0.3
check_grep "s_server verified the client certificate" "Peer certificate: CN ?= ?client" "$T_DIR/s_server.log"

# A client with a certificate from another CA is refused.
check "second CA" "$SIGILCTL" mint --state-dir "$T_DIR/other-state" --out "$V/stranger" --cn stranger --dns stranger
(echo hello; sleep 1) | timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$V/client/ca.crt" \
  -cert "$V/stranger/tls.crt" -key "$V/stranger/tls.key" > "$T_DIR/s_client2.log" 2>&1 || true
if grep -q olleh "$T_DIR/s_client2.log"; then fail "server accepted a client from a foreign CA"; else ok "server refused a client from a foreign CA"; fi

# PKCS#12, both profiles, and JKS, with keytool.
check "mint tls-pkcs12 modern" "$SIGILCTL" mint --state-dir "$S" --out "$V/p12" --format tls-pkcs12 --dns a.example --password s3cret
check "mint tls-pkcs12 legacy" "$SIGILCTL" mint --state-dir "$S" --out "$V/p12l" --format tls-pkcs12 --pkcs12-legacy --dns a.example --password s3cret --key-algorithm rsa-2048
check "mint tls-jks" "$SIGILCTL" mint --state-dir "$S" --out "$V/jks" --format tls-jks --dns a.example --password s3cret
check "mint tls-pkcs12 empty password" "$SIGILCTL" mint --state-dir "$S" --out "$V/p12e" --format tls-pkcs12 --dns a.example

openssl pkcs12 -in "$V/p12/keystore.p12" -info -noout -passin pass:s3cret > "$T_DIR/p12.txt" 2>&1 || true
check_grep "modern PKCS#12: PBES2/PBKDF2 AES-256-CBC" "PBES2, PBKDF2, AES-256-CBC" "$T_DIR/p12.txt"
check_grep "modern PKCS#12: SHA-256 MAC" "MAC: sha256" "$T_DIR/p12.txt"
openssl pkcs12 -in "$V/p12l/keystore.p12" -info -noout -passin pass:s3cret -legacy > "$T_DIR/p12l.txt" 2>&1 || true
check_grep "legacy PKCS#12: 3DES" "pbeWithSHA1And3-KeyTripleDES-CBC" "$T_DIR/p12l.txt"
check_grep "legacy PKCS#12: SHA-1 MAC" "MAC: sha1" "$T_DIR/p12l.txt"

kt() { keytool -list -v -storetype "$1" -keystore "$2" -storepass "$3" > "$T_DIR/kt.txt" 2>&1; }
check "keytool reads keystore.p12" kt PKCS12 "$V/p12/keystore.p12" s3cret
check_grep "keystore.p12 has a PrivateKeyEntry" "Entry type: PrivateKeyEntry" "$T_DIR/kt.txt"
check "keytool reads truststore.p12" kt PKCS12 "$V/p12/truststore.p12" s3cret
check_grep "truststore.p12 entries are trusted" "Entry type: trustedCertEntry" "$T_DIR/kt.txt"
check "keytool reads legacy keystore.p12" kt PKCS12 "$V/p12l/keystore.p12" s3cret
check "keytool reads keystore.jks" kt JKS "$V/jks/keystore.jks" s3cret
check_grep "keystore.jks has a PrivateKeyEntry" "Entry type: PrivateKeyEntry" "$T_DIR/kt.txt"
check "keytool reads truststore.jks" kt JKS "$V/jks/truststore.jks" s3cret
check_grep "truststore.jks entries are trusted" "Entry type: trustedCertEntry" "$T_DIR/kt.txt"
check_fails "keytool refuses keystore.p12 with a wrong password" kt PKCS12 "$V/p12/keystore.p12" wrong
check_fails "keytool refuses keystore.jks with a wrong password" kt JKS "$V/jks/keystore.jks" wrong

# sigilctl inspect reads every format back.
check "inspect jks" "$SIGILCTL" inspect --password s3cret "$V/jks"
check "inspect json" bash -c "'$SIGILCTL' inspect --json --password s3cret '$V/p12' > '$T_DIR/inspect.json'"
check "inspect json is valid and names the SAN" python3 -c "import json,sys; d=json.load(open('$T_DIR/inspect.json')); assert any('DNS:a.example' in e.get('certificate',{}).get('sans',[]) for f in d['files'] for e in f['entries'])"

# Bad input: a clear error, and nothing written.
if "$SIGILCTL" mint --state-dir "$S" --out "$V/bad1" --dns 'bad_name!' > "$T_DIR/bad.txt" 2>&1; then
  fail "bad DNS name accepted"
else
  check_grep "bad DNS name is named in the error" "bad_name!" "$T_DIR/bad.txt"
fi
if [ -e "$V/bad1" ]; then fail "bad request left $V/bad1 behind"; else ok "bad request wrote nothing"; fi
check_fails "bad IP refused" "$SIGILCTL" mint --state-dir "$S" --out "$V/bad2" --ip 300.1.2.3
check_fails "wildcard refused without policy" "$SIGILCTL" mint --state-dir "$S" --out "$V/bad3" --dns '*.example.com'
touch "$T_DIR/plainfile"
if "$SIGILCTL" ca init --state-dir "$T_DIR/plainfile/state" > "$T_DIR/unw.txt" 2>&1; then
  fail "state dir under a regular file accepted"
else
  check_grep "unwritable state dir: clear error" "plainfile" "$T_DIR/unw.txt"
fi

t_finish
