#!/bin/bash
# The expiry watcher in sigil-csi (issue 7), end to end with lifetimes of a
# minute (attrs.c's minimum):
#  standalone sigil-csi (embedded CA, no API):
#   - renewal=in-place swaps the files atomically while readers race the
#     swap (a reader that resolves ..data once never sees a cert with the
#     wrong key); what a naive reader sees is measured and printed; notAfter
#     moves forward; the old key is gone
#   - renewal=restart without an API is renewed in place at expires-at,
#     not before
#  sigil-csi with the fake apiserver (--kubeconfig):
#   - the restarter annotation has the right RFC 3339 value; Issued Events
#   - a pod-scoped volume published before the pod had an IP is re-issued
#     with the IP once the pod has one
#   - kill -9 and restart keeps every deadline
#   - `sigilctl ca rotate` on the node's CA reaches every live volume
#     within seconds; cert and key stay byte-identical
#   - eviction at expires-at and not before
#   - a PodDisruptionBudget: 429 retried, EvictionBlocked and ExpiringSoon
#     Warning Events, an Alertmanager alert on the webhook; allowed later
#     -> evicted
#   - /metrics shows the volumes, evictions and PDB refusals
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CSI="$SIGIL_BUILD_DIR/sigil-csi"
FAKE="$SIGIL_SOURCE_DIR/tests/fakes/kube_apiserver.py"
PY=/usr/bin/python3
D="$T_DIR"
[ -x "$CSI" ] && [ -x "$SIGILCTL" ] || { echo "sigil-csi / sigilctl not built"; exit 1; }

# ---- helpers --------------------------------------------------------------------------
# certinfo FILE: JSON {notAfter (unix), ips, dns} of a PEM certificate.
cat > "$D/certinfo.py" <<'EOF'
import json, sys
from cryptography import x509
c = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
try:
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    dns = san.get_values_for_type(x509.DNSName)
except x509.ExtensionNotFound:
    ips, dns = [], []
print(json.dumps({"notAfter": int(c.not_valid_after.replace(tzinfo=__import__("datetime").timezone.utc).timestamp()),
                  "ips": ips, "dns": dns}))
EOF
certinfo() { $PY "$D/certinfo.py" "$1"; }
# pyj JSON-FILE EXPR
pyj() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# log_ms FILE REGEX: unix ms of the first log line matching REGEX (empty if none).
log_ms() {
  $PY - "$1" "$2" <<'EOF'
import re, sys, datetime
for line in open(sys.argv[1], errors="replace"):
    if re.search(sys.argv[2], line):
        ts = line.split(" ", 1)[0]
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        print(int(t.timestamp() * 1000)); break
EOF
}
# wait_for SECONDS CMD...: until CMD succeeds (polling every 0.2 s).
wait_for() {
  local n=$(( $1 * 5 )); shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# The race reader: resolves ..data once per read (as Kubernetes' own
# AtomicWriter readers do), or (naive) opens tls.crt and tls.key through
# their top-level links separately.  Counts pairs whose certificate does
# not belong to the key.
cat > "$D/reader.py" <<'EOF'
import json, os, sys, time
from cryptography import x509
from cryptography.hazmat.primitives import serialization
target, mode, seconds, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
cache = {}
reads = mismatches = vanished = 0
certs = set()
end = time.time() + seconds
def match(c, k):
    key = (c, k)
    if key not in cache:
        cert = x509.load_pem_x509_certificate(c)
        priv = serialization.load_pem_private_key(k, None)
        fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        cache[key] = cert.public_key().public_bytes(*fmt) == priv.public_key().public_bytes(*fmt)
    return cache[key]
while time.time() < end:
    try:
        if mode == "atomic":
            d = os.path.join(target, os.readlink(os.path.join(target, "..data")))
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            try:
                with open(os.open("tls.crt", os.O_RDONLY, dir_fd=fd), "rb") as f: c = f.read()
                with open(os.open("tls.key", os.O_RDONLY, dir_fd=fd), "rb") as f: k = f.read()
            finally:
                os.close(fd)
        else:
            with open(os.path.join(target, "tls.crt"), "rb") as f: c = f.read()
            with open(os.path.join(target, "tls.key"), "rb") as f: k = f.read()
    except FileNotFoundError:
        # The old version directory was removed between resolving and
        # reading: the reader retries (never a mixed pair).
        vanished += 1
        continue
    reads += 1
    certs.add(c)
    if not match(c, k):
        mismatches += 1
json.dump({"reads": reads, "mismatches": mismatches, "vanished": vanished,
           "certs": len(certs)}, open(out, "w"))
EOF

start_csi() { # NAME ARGS...: starts sigil-csi, socket $D/NAME.sock, log $D/NAME.log
  local name=$1; shift
  SIGIL_LOG_LEVEL=info "$CSI" --endpoint "unix://$D/$name.sock" --key-pool rsa-2048=0 "$@" \
    >>"$D/$name.log" 2>&1 &
  local pid=$!
  T_PIDS+=($pid)
  eval "PID_$name=$pid"
  for _ in $(seq 1 100); do [ -S "$D/$name.sock" ] && "$SIGILCTL" info --endpoint "$D/$name.sock" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "sigil-csi $name did not come up"; tail -20 "$D/$name.log"; return 1
}
# pub SOCKNAME VOLUME-ID TARGET POD [KEY=VALUE...]
pub() {
  local sock=$1 vid=$2 tgt=$3 pod=$4; shift 4
  local args=()
  for a in "$@"; do args+=(--attr "$a"); done
  "$SIGILCTL" publish --endpoint "$D/$sock.sock" --volume-id "$vid" --target "$tgt" \
    --pod "$pod" --namespace default "${args[@]}"
}
SHORT=(backend.autotls.cert.lifetime=1m backend.autotls.cert.jitter-factor=0 key-algorithm=ecdsa-p256)

mkdir -p "$D/pods"

# =========================================================================================
# Standalone: in-place renewal racing readers; restart without an API.
# =========================================================================================
start_csi solo --node-id node-1 --state-dir "$D/solo-state" --renew-fraction 0.05 || exit 1
check "publish in-place volume" pub solo vol-ip "$D/pods/ip" web-0 class=tls scope=node renewal=in-place "${SHORT[@]}"
NA0=$(certinfo "$D/pods/ip/tls.crt" | $PY -c 'import json,sys; print(json.load(sys.stdin)["notAfter"])')
cp "$D/pods/ip/tls.key" "$D/ip-key0"
# renewal=restart with a buffer of 50 s: expires-at is 10 s after issue.
check "publish restart volume (no API)" pub solo vol-sr "$D/pods/sr" web-0 class=tls scope=node "${SHORT[@]}" backend.autotls.cert.restart-buffer=50s
SR_EXP=$(( $(certinfo "$D/pods/sr/tls.crt" | $PY -c 'import json,sys; print(json.load(sys.stdin)["notAfter"])') - 50 ))

# Renewal at 5% of 60 s = every ~3 s: race both readers for 14 s.
$PY "$D/reader.py" "$D/pods/ip" atomic 14 "$D/race-atomic.json" &
RA=$!
$PY "$D/reader.py" "$D/pods/ip" naive 14 "$D/race-naive.json" &
RN=$!
T_PIDS+=($RA $RN)
wait $RA; wait $RN
pyj "$D/race-atomic.json" 'd' > "$D/race-a.txt"; pyj "$D/race-naive.json" 'd' > "$D/race-n.txt"
echo "     atomic reader (resolves ..data once): $(cat "$D/race-a.txt")"
echo "     naive reader (tls.crt, tls.key separately): $(cat "$D/race-n.txt")"
[ "$(pyj "$D/race-atomic.json" 'd["reads"] >= 1000 and d["certs"] >= 3')" = True ] \
  && ok "race: thousands of reads across several renewals" || fail "race: too few reads or renewals: $(cat "$D/race-a.txt")"
[ "$(pyj "$D/race-atomic.json" 'd["mismatches"]')" = 0 ] \
  && ok "race: a reader resolving ..data never sees a cert with another key" \
  || fail "race: mismatched pairs: $(cat "$D/race-a.txt")"
# Renewals go on every ~3 s: stop sigil-csi (SIGTERM waits for the action
# in flight) so that files and record hold still for the checks.
wait_for 30 grep -q 'vol-sr.*renewed' "$D/solo.log"
kill "$PID_solo"; wait "$PID_solo" 2>/dev/null || true
NA1=$(certinfo "$D/pods/ip/tls.crt" | $PY -c 'import json,sys; print(json.load(sys.stdin)["notAfter"])')
[ "$NA1" -gt "$NA0" ] && ok "in-place: notAfter moved forward ($NA0 -> $NA1)" || fail "in-place: notAfter $NA0 -> $NA1"
REC=$(grep -l '"vol-ip"' "$D"/solo-state/volumes/*.json)
[ "$(pyj "$REC" 'd["notAfter"] == '"$NA1"' and d["renewedAt"] > d["publishedAt"]')" = True ] \
  && ok "in-place: the state record has the new notAfter and renewedAt" || fail "in-place: record $(cat "$REC")"
if grep -rqF -- "$(sed -n 2p "$D/ip-key0")" "$D/pods/ip/"; then fail "in-place: the old key is still in the volume"; else ok "in-place: the old key is gone"; fi
[ "$(ls -d "$D"/pods/ip/..2* | wc -l)" = 1 ] && ok "in-place: one version directory left" || fail "in-place: old versions left: $(ls -a "$D/pods/ip")"

# renewal=restart without an API: renewed in place at expires-at, not before.
SR_MS=$(log_ms "$D/solo.log" 'vol-sr.*: renewed')
if [ -n "$SR_MS" ] && [ "$SR_MS" -ge $(( SR_EXP * 1000 )) ]; then ok "restart without API: renewed in place at expires-at, not before"
else fail "restart without API: renewal at ${SR_MS:-never} ms, expires-at ${SR_EXP}000"; tail -5 "$D/solo.log"; fi
check_grep "standalone: the log says why restart volumes are renewed in place" "no Kubernetes API: renewal=restart" "$D/solo.log"

# =========================================================================================
# With the fake apiserver.
# =========================================================================================
fake_kube_tls "$D/ca" "$D/srv"

$PY - "$D/seed.json" <<'EOF'
import json, sys
def pod(name, labels, ip=None, phase="Running"):
    st = {"phase": phase, "hostIP": "192.168.1.11"}
    if ip:
        st.update({"podIP": ip, "podIPs": [{"ip": ip}]})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels,
                         "uid": "00000000-0000-4000-8000-%012d" % (abs(hash(name)) % 10**12)},
            "spec": {"nodeName": "node-1", "serviceAccountName": "app",
                     "containers": [{"name": "app", "image": "nginx:1.25"}],
                     "volumes": [{"name": "tls", "csi": {"driver": "secrets.sigil.dev",
                                 "volumeAttributes": {"secrets.sigil.dev/class": "tls"}}}]},
            "status": st}
items = [
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
     "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.11"}]}},
    pod("web-0", {"app": "web"}, "10.244.1.7"),
    pod("guarded-0", {"app": "guarded"}, "10.244.1.8"),
    # The kubelet mounts volumes before the sandbox has its IP.
    pod("nip-0", {"app": "nip"}, None, "Pending"),
    {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
     "metadata": {"name": "guarded-pdb", "namespace": "default"},
     "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
     "status": {"currentHealthy": 1, "desiredHealthy": 1, "disruptionsAllowed": 0, "expectedPods": 1}},
]
json.dump({"items": items}, open(sys.argv[1], "w"))
EOF
$PY "$FAKE" --cert "$D/srv.crt" --key "$D/srv.key" --token admin-token=admin \
  --token csi-token=system:serviceaccount:sigil:sigil-csi --seed "$D/seed.json" \
  --port-file "$D/port" >"$D/fake.log" 2>&1 &
T_PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$D/port" ] && break; sleep 0.05; done
PORT=$(cat "$D/port")
wait_port "$PORT" || { echo "fake apiserver did not start"; cat "$D/fake.log"; exit 1; }
URL="https://127.0.0.1:$PORT"
api() { # METHOD PATH [JSON [CONTENT-TYPE]]
  if [ $# -ge 3 ]; then
    curl -sS --fail --cacert "$D/ca.crt" -H "Authorization: Bearer admin-token" -X "$1" \
      -H "Content-Type: ${4:-application/json}" -d "$3" "$URL$2"
  else
    curl -sS --fail --cacert "$D/ca.crt" -H "Authorization: Bearer admin-token" -X "$1" "$URL$2"
  fi
}
ctl() { curl -sS --fail --cacert "$D/ca.crt" -X "$1" "$URL$2"; }
cat > "$D/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "$URL/", certificate-authority: "$D/ca.crt"}
users:
- name: csi
  user: {token: csi-token}
contexts:
- name: fake
  context: {cluster: fake, user: csi}
current-context: fake
EOF
# events REASON POD: Events about POD with REASON, as JSON list in $D/ev.json
events() {
  ctl GET /_fake/objects > "$D/objs.json"
  $PY - "$D/objs.json" "$1" "$2" > "$D/ev.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
items = d["items"] if isinstance(d, dict) else d
print(json.dumps([o for o in items if o.get("_resource") == "events" and o.get("reason") == sys.argv[2]
                  and o["involvedObject"]["name"] == sys.argv[3]]))
EOF
}
has_event() { events "$1" "$2"; [ "$(pyj "$D/ev.json" 'len(d) > 0')" = True ]; }
evictions() { # POD STATUS: count of eviction requests for POD answered STATUS
  ctl GET /_fake/requests > "$D/req.json"
  pyj "$D/req.json" 'len([r for r in d["items"] if r["method"]=="POST" and r["path"]=="/api/v1/namespaces/default/pods/'"$1"'/eviction" and r["status"]=='"$2"'])'
}
evicted() { [ "$(evictions "$1" 201)" = 1 ]; }          # POD
refused_twice() { [ "$(evictions "$1" 429)" -ge 2 ]; }   # POD

# A test Alertmanager: records every POST body.
WPORT=$(free_port)
$PY - "$WPORT" "$D/alerts.jsonl" > "$D/webhook.log" 2>&1 <<'EOF' &
import http.server, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "a") as f:
            f.write(self.path + " " + body.decode() + "\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
T_PIDS+=($!)
wait_port "$WPORT" || { echo "webhook receiver did not start"; exit 1; }
MPORT=$(free_port)

KARGS=(--node-id node-1 --state-dir "$D/k-state" --kubeconfig "$D/kubeconfig" --bundle-check-interval 1
       --max-evictions-per-minute 60 --metrics-addr "127.0.0.1:$MPORT" --alert-webhook "http://127.0.0.1:$WPORT")
start_csi kc "${KARGS[@]}" || exit 1

# restart volumes: lifetime 60 s, buffer 20 s -> expires-at 40 s after issue.
RB=(backend.autotls.cert.restart-buffer=20s)
check "publish restart volume for web-0" pub kc vol-r1 "$D/pods/r1" web-0 class=tls scope=node "${SHORT[@]}" "${RB[@]}"
check "publish restart volume for guarded-0 (PDB)" pub kc vol-g1 "$D/pods/g1" guarded-0 class=tls scope=node "${SHORT[@]}" "${RB[@]}"
check "publish pod-scoped volume before the pod has an IP" pub kc vol-p1 "$D/pods/p1" nip-0 class=tls scope=pod,node renewal=in-place key-algorithm=ecdsa-p256
check "publish a long-lived in-place volume" pub kc vol-x1 "$D/pods/x1" web-0 class=tls scope=node renewal=in-place key-algorithm=ecdsa-p256
check "publish a PKCS#12 volume with a store password" pub kc vol-k1 "$D/pods/k1" web-0 class=tls scope=node renewal=in-place key-algorithm=ecdsa-p256 format=tls-pkcs12 format.compatibility.tls-pkcs12.password=changeit
check "publish a JKS volume with a store password" pub kc vol-j1 "$D/pods/j1" web-0 class=tls scope=node renewal=in-place key-algorithm=ecdsa-p256 format=tls-jks format.compatibility.tls-pkcs12.password=changeit
R1_NA=$(certinfo "$D/pods/r1/tls.crt" | $PY -c 'import json,sys; print(json.load(sys.stdin)["notAfter"])')
G1_NA=$(certinfo "$D/pods/g1/tls.crt" | $PY -c 'import json,sys; print(json.load(sys.stdin)["notAfter"])')
R1_EXP=$(( R1_NA - 20 ))

# The restarter annotation: key hash of the volume id, RFC 3339 value.
api GET /api/v1/namespaces/default/pods/web-0 > "$D/web0.json"
# Stackable's tag: the first 16 bytes of SHA-256("secrets.stackable.tech/volume:" + id).
KEY="restarter.sigil.dev/expires-at.$(printf %s secrets.stackable.tech/volume:vol-r1 | sha256sum | cut -c1-32)"
WANT=$(date -u -d "@$R1_EXP" +%Y-%m-%dT%H:%M:%SZ)
GOT=$(pyj "$D/web0.json" 'd["metadata"].get("annotations", {}).get("'"$KEY"'")')
[ "$GOT" = "$WANT" ] && ok "restarter annotation $KEY = $WANT (notAfter - restart-buffer)" || fail "annotation: got '$GOT', want '$WANT'"
REC=$(grep -l '"vol-r1"' "$D"/k-state/volumes/*.json)
[ "$(pyj "$REC" 'd.get("annotatedExpiresAt")')" = "$R1_EXP" ] && ok "the record notes the annotation" || fail "record: $(cat "$REC")"
wait_for 10 has_event Issued web-0 && ok "Issued Event on the pod" || fail "no Issued Event for web-0"
[ "$(certinfo "$D/pods/p1/tls.crt" | $PY -c 'import json,sys; print(json.load(sys.stdin)["ips"])')" = "['192.168.1.11']" ] \
  && ok "pod without an IP: only the node IP at first" || fail "p1 IPs: $(certinfo "$D/pods/p1/tls.crt")"

# The pod gets its IP (the sandbox is up): the volume is re-issued with it.
api PATCH /api/v1/namespaces/default/pods/nip-0/status \
  '{"status":{"phase":"Running","podIP":"10.244.1.9","podIPs":[{"ip":"10.244.1.9"}]}}' \
  application/merge-patch+json >/dev/null
p1_has_ip() { certinfo "$D/pods/p1/tls.crt" | grep -q '10.244.1.9'; }
wait_for 30 p1_has_ip && ok "re-issued with the pod IP once the pod had one" || fail "p1 never got the pod IP: $(certinfo "$D/pods/p1/tls.crt")"
wait_for 10 has_event Renewed nip-0 && ok "Renewed Event on the pod" || fail "no Renewed Event for nip-0"

# kill -9 and restart: the state dir keeps every deadline.
cp "$D/pods/x1/tls.crt" "$D/x1.crt"; cp "$D/pods/x1/tls.key" "$D/x1.key"
cp "$D/pods/r1/ca.crt" "$D/r1-ca0.crt"
cp "$D/pods/k1/keystore.p12" "$D/k1.p12"; cp "$D/pods/j1/keystore.jks" "$D/j1.jks"
kill -9 "$PID_kc"; wait "$PID_kc" 2>/dev/null || true
rm -f "$D/kc.sock"
start_csi kc "${KARGS[@]}" || exit 1
check_grep "restarted sigil-csi re-adopts its 6 volumes" "6 known volumes" "$D/kc.log"

# CA rotation on the node's embedded CA: every live volume gets the new
# bundle within seconds; certificates and keys stay byte-identical.
check "sigilctl ca rotate" "$SIGILCTL" ca rotate --state-dir "$D/k-state/ca" --class tls
rotated() {
  for v in r1 g1 p1 x1; do
    [ "$(grep -c 'BEGIN CERTIFICATE' "$D/pods/$v/ca.crt")" -ge 2 ] || return 1
  done
}
wait_for 20 rotated && ok "the rotated trust bundle reached every live volume" || { fail "trust bundle not everywhere"; grep -c 'BEGIN CERT' "$D"/pods/*/ca.crt; }
cmp -s "$D/x1.crt" "$D/pods/x1/tls.crt" && cmp -s "$D/x1.key" "$D/pods/x1/tls.key" \
  && ok "trust refresh kept tls.crt and tls.key byte-identical" || fail "trust refresh changed tls.crt or tls.key"
cmp -s "$D/r1-ca0.crt" "$D/pods/r1/ca.crt" && fail "r1 ca.crt unchanged" || ok "ca.crt rewritten"
# Truststores are rewritten with the record's store password (read back
# by openssl and by Java's keytool); the keystores stay byte-identical.
p12_trusted() { [ "$(openssl pkcs12 -in "$D/pods/k1/truststore.p12" -passin pass:changeit -nokeys 2>/dev/null | grep -c 'BEGIN CERTIFICATE')" -ge 2 ]; }
jks_trusted() { [ "$(keytool -list -keystore "$D/pods/j1/truststore.jks" -storepass changeit -storetype JKS 2>/dev/null | grep -c trustedCertEntry)" -ge 2 ]; }
wait_for 20 p12_trusted && ok "PKCS#12 truststore holds both CAs (password kept)" || fail "PKCS#12 truststore not refreshed"
wait_for 20 jks_trusted && ok "JKS truststore holds both CAs (keytool, password kept)" || fail "JKS truststore not refreshed"
cmp -s "$D/k1.p12" "$D/pods/k1/keystore.p12" && cmp -s "$D/j1.jks" "$D/pods/j1/keystore.jks" \
  && ok "keystores byte-identical after the trust refresh" || fail "a keystore changed in the trust refresh"

# Eviction at expires-at, not before.
NOW=$(date +%s)
if [ "$NOW" -lt $(( R1_EXP - 1 )) ]; then
  sleep $(( R1_EXP - 1 - NOW ))
  [ "$(evictions web-0 201)" = 0 ] && ok "no eviction before expires-at" || fail "evicted before expires-at"
fi
wait_for 30 evicted web-0 && ok "web-0 evicted" || { fail "web-0 not evicted"; tail -20 "$D/kc.log"; }
EV_MS=$(log_ms "$D/kc.log" 'vol-r1.*: evicted')
[ -n "$EV_MS" ] && [ "$EV_MS" -ge $(( R1_EXP * 1000 )) ] && ok "eviction at or after expires-at (+$(( EV_MS - R1_EXP * 1000 )) ms)" \
  || fail "eviction at ${EV_MS:-?} ms before expires-at ${R1_EXP}000"
wait_for 10 has_event Evicted web-0 && ok "Evicted Event" || fail "no Evicted Event"

# The PDB: 429s, retried; EvictionBlocked at once; ExpiringSoon (and an
# alert) in the last quarter of the restart buffer; allowed -> evicted.
wait_for 20 refused_twice guarded-0 && ok "PDB: eviction answered 429 and retried" || fail "PDB: $(evictions guarded-0 429) refusals"
wait_for 10 has_event EvictionBlocked guarded-0 && ok "PDB: Warning Event EvictionBlocked" || fail "no EvictionBlocked Event"
[ "$(pyj "$D/ev.json" 'd[0]["type"]')" = Warning ] && ok "EvictionBlocked is a Warning" || fail "EvictionBlocked type"
[ "$(evictions guarded-0 201)" = 0 ] && ok "PDB respected: guarded-0 still there" || fail "guarded-0 evicted despite the PDB"
wait_for 30 has_event ExpiringSoon guarded-0 && ok "ExpiringSoon Warning Event near expiry" || fail "no ExpiringSoon Event"
wait_for 10 grep -q SigilCertificateExpiringSoon "$D/alerts.jsonl" && ok "webhook received the SigilCertificateExpiringSoon alert" || fail "no alert on the webhook"
grep SigilCertificateExpiringSoon "$D/alerts.jsonl" | head -1 | cut -d' ' -f2- > "$D/alert.json"
[ "$(pyj "$D/alert.json" 'd[0]["labels"]["pod"]=="guarded-0" and d[0]["labels"]["severity"]=="critical" and "startsAt" in d[0]')" = True ] \
  && ok "alert JSON is Alertmanager v2 with pod and severity" || fail "alert: $(cat "$D/alert.json")"
api PATCH /apis/policy/v1/namespaces/default/poddisruptionbudgets/guarded-pdb '{"spec":{"minAvailable":0}}' application/merge-patch+json >/dev/null
wait_for 20 evicted guarded-0 && ok "PDB relaxed: guarded-0 evicted" || fail "guarded-0 not evicted after the PDB allowed it"
[ "$(date +%s)" -le "$G1_NA" ] || echo "     (note: guarded-0's certificate expired before the PDB allowed it)"

# /metrics
curl -sS "http://127.0.0.1:$MPORT/metrics" > "$D/metrics.txt"
check_grep "metrics: notAfter gauge per volume" "^sigil_volume_not_after_seconds\\{namespace=\"default\",pod=\"nip-0\",volume=\"vol-p1\",class=\"tls\"\\} " "$D/metrics.txt"
check_grep "metrics: evictions" "^sigil_evictions_total\\{result=\"success\"\\} 2$" "$D/metrics.txt"
check_grep "metrics: PDB refusals" "^sigil_evictions_total\\{result=\"blocked\"\\} [1-9]" "$D/metrics.txt"
check_grep "metrics: trust refreshes" "^sigil_trust_bundle_updates_total\\{class=\"tls\"\\} [6-9]" "$D/metrics.txt"
check_grep "metrics: watched volumes" "^sigil_watched_volumes [56]$" "$D/metrics.txt"
check_grep "metrics: key pool depth" "^sigil_key_pool_depth\\{algorithm=\"rsa-2048\"\\} [0-9]" "$D/metrics.txt"

# Unpublish (as the kubelet does after the eviction): forgotten.
check "unpublish r1" "$SIGILCTL" unpublish --endpoint "$D/kc.sock" --volume-id vol-r1 --target "$D/pods/r1"
curl -sS "http://127.0.0.1:$MPORT/metrics" > "$D/metrics2.txt"
if grep -q 'volume="vol-r1"' "$D/metrics2.txt"; then fail "unpublished volume still has a gauge"; else ok "unpublished volume's gauge is gone"; fi
# Publishes of this process (counters start at its last restart): one good, one refused.
check "publish after the scrape" pub kc vol-m1 "$D/pods/m1" nip-0 class=tls "${SHORT[@]}"
check_fails "a bad publish" pub kc vol-m2 "$D/pods/m2" nip-0 class=tls format=nope
curl -sS "http://127.0.0.1:$MPORT/metrics" > "$D/metrics3.txt"
check_grep "metrics: publishes counted (success)" "^sigil_publishes_total\\{result=\"success\"\\} [1-9]" "$D/metrics3.txt"
check_grep "metrics: publishes counted (failure)" "^sigil_publishes_total\\{result=\"failure\"\\} 1$" "$D/metrics3.txt"
check_grep "metrics: publish latency histogram" "^sigil_publish_duration_seconds_count [2-9]" "$D/metrics3.txt"
check "unpublish m1" "$SIGILCTL" unpublish --endpoint "$D/kc.sock" --volume-id vol-m1 --target "$D/pods/m1"
# W_DEBUG=DIR keeps a copy of the logs and files for debugging.
[ -n "${W_DEBUG:-}" ] && cp -r "$D" "$W_DEBUG"
t_finish
