#!/bin/bash
# sigil-ca's Kubernetes controllers against the fake apiserver
# (tests/fakes/kube_apiserver.py), driven by tests/tools/kube_classes_probe:
# - SecretClasses (sigil and, in compatibility mode, Stackable v1alpha2)
#   created / modified / deleted reach the callback; a broken class is
#   reported and skipped while the others load; the built-in tls class;
#   410 resume (compact + close-watches); an apiserver restart;
# - the mirror of referenced Secrets/ConfigMaps: files written 0600 in
#   0700 directories, updated, removed;
# - TrustStores: ConfigMap and Secret targets, PEM and PKCS#12, a bundle
#   change rewrites, a deleted or edited target is restored by the resync,
#   a foreign object is never overwritten, an unknown class is reported, a
#   changed targetKind leaves the old object to the garbage collector.
# The probe runs as sigil-ca's service account, which the fake forbids to
# list, watch or delete ConfigMaps and Secrets (sigil-ca's RBAC grants
# only get, create and update on them); /_fake/requests shows that it never
# tried.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROBE="$SIGIL_BUILD_DIR/tests/kube_classes_probe"
FAKE="$SIGIL_SOURCE_DIR/tests/fakes/kube_apiserver.py"
D="$T_DIR"
[ -x "$PROBE" ] || { echo "kube_classes_probe not built"; exit 1; }

# ---- certificates: the fake's server certificate, two CA bundles ----------------------
fake_kube_tls "$D/ca" "$D/srv"
for n in bundle1 bundle2 company; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/$n.key" \
    -out "$D/$n.crt" -days 30 -subj "/CN=sigil test $n" 2>/dev/null
done
mkdir -p "$D/bundles" "$D/secrets"
cp "$D/bundle1.crt" "$D/bundles/tls.pem"

# ---- objects as a cluster has them --------------------------------------------------------
/usr/bin/python3 - "$D" <<'EOF'
import base64, json, sys
d = sys.argv[1]
b64 = lambda s: base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()
crt = open(d + "/company.crt").read()
key = open(d + "/company.key").read()
items = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sigil"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}},
    {"apiVersion": "secrets.sigil.dev/v1alpha1", "kind": "SecretClass",
     "metadata": {"name": "company", "annotations": {
         "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
     "spec": {"backend": {"autoTls": {
         "ca": {"secret": {"name": "company-ca", "namespace": "sigil"}, "autoGenerate": False},
         "additionalTrustRoots": [{"configMap": {"name": "roots", "namespace": "sigil"}}],
         "maxCertificateLifetime": "7d"}}}},
    {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
     "metadata": {"name": "company-ca", "namespace": "sigil"},
     "data": {"ca.crt": b64(crt), "ca.key": b64(key)}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "roots", "namespace": "sigil"},
     "data": {"ca.crt": crt}, "binaryData": {"extra.der": b64(b"\x00\x01\x02\xff")}},
    # Not referenced by any class: never mirrored.
    {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
     "metadata": {"name": "unrelated", "namespace": "sigil"}, "data": {"x": b64("y")}},
    # Someone else's ConfigMap that a TrustStore will name.
    {"apiVersion": "v1", "kind": "ConfigMap",
     "metadata": {"name": "foreign", "namespace": "apps", "labels": {"app": "other"}},
     "data": {"ca.crt": "not sigil's"}},
]
json.dump({"items": items}, open(d + "/seed.json", "w"))
EOF

CA_USER=system:serviceaccount:sigil:sigil-ca
start_fake() { # [extra args...]
  rm -f "$D/port"
  /usr/bin/python3 "$FAKE" --cert "$D/srv.crt" --key "$D/srv.key" --token admin-token=admin \
    --token "ca-token=$CA_USER" --port-file "$D/port" "$@" >>"$D/fake.log" 2>&1 &
  FAKE_PID=$!
  T_PIDS+=($FAKE_PID)
  for _ in $(seq 1 100); do [ -s "$D/port" ] && break; sleep 0.05; done
  PORT=$(cat "$D/port")
  wait_port "$PORT" "$FAKE_PID" || { echo "fake apiserver did not start"; cat "$D/fake.log"; exit 1; }
}
start_fake --seed "$D/seed.json"
URL="https://127.0.0.1:$PORT"

ctl() {
  if [ $# -ge 3 ]; then
    curl -sS --fail --cacert "$D/ca.crt" -X "$1" -H 'Content-Type: application/json' -d "$3" "$URL$2"
  else
    curl -sS --fail --cacert "$D/ca.crt" -X "$1" "$URL$2"
  fi
}
# api METHOD PATH [JSON]: the Kubernetes API as an admin (merge patch for PATCH).
api() {
  local ct=application/json
  [ "$1" = PATCH ] && ct=application/merge-patch+json
  if [ $# -ge 3 ]; then
    curl -sS --fail --cacert "$D/ca.crt" -H 'Authorization: Bearer admin-token' -X "$1" \
      -H "Content-Type: $ct" -d "$3" "$URL$2"
  else
    curl -sS --fail --cacert "$D/ca.crt" -H 'Authorization: Bearer admin-token' -X "$1" "$URL$2"
  fi
}
SC=/apis/secrets.sigil.dev/v1alpha1/secretclasses
SSC=/apis/secrets.stackable.tech/v1alpha2/secretclasses
TS=/apis/secrets.sigil.dev/v1alpha1/namespaces/apps/truststores
STS=/apis/secrets.stackable.tech/v1alpha1/namespaces/apps/truststores
CM=/api/v1/namespaces/apps/configmaps
SEC=/api/v1/namespaces/apps/secrets

cat > "$D/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: $URL
    certificate-authority: $D/ca.crt
users:
- name: sigil-ca
  user:
    token: ca-token
contexts:
- name: fake
  context: {cluster: fake, user: sigil-ca}
current-context: fake
EOF

# What RBAC would refuse sigil-ca: list, watch and delete of ConfigMaps
# and Secrets, in any namespace.
forbid_ca() {
  ctl POST /_fake/forbid "$(/usr/bin/python3 -c '
import json, sys
print(json.dumps([{"user": sys.argv[1], "verb": v, "resource": r}
                  for v in ("list", "watch", "delete") for r in ("configmaps", "secrets")]))' "$CA_USER")" >/dev/null
}
forbid_ca
check_fails "the fake refuses sigil-ca a LIST of Secrets (the rules bite)" \
  curl -sS --fail --cacert "$D/ca.crt" -H 'Authorization: Bearer ca-token' "$URL/api/v1/secrets"
check "a GET by name is still allowed" \
  curl -sS --fail --cacert "$D/ca.crt" -H 'Authorization: Bearer ca-token' "$URL$CM/foreign"
ctl DELETE /_fake/requests >/dev/null
# ca_requests_clean: sigil-ca (the probe) sent no LIST, WATCH or DELETE on
# ConfigMaps or Secrets and got no 403; prints the offenders otherwise.
ca_requests_clean() {
  ctl GET /_fake/requests | /usr/bin/python3 -c '
import json, re, sys
items = [r for r in json.load(sys.stdin)["items"] if r.get("user") == sys.argv[1]]
coll = re.compile(r"^/api/v1/(namespaces/[^/]+/)?(configmaps|secrets)$")
obj = re.compile(r"^/api/v1/(namespaces/[^/]+/)?(configmaps|secrets)(/|$)")
bad = [r for r in items if (r["method"] == "GET" and coll.match(r["path"]))
       or (r["method"] == "DELETE" and obj.match(r["path"])) or r.get("status") == 403]
for r in bad:
    print(r["method"], r["path"], r.get("status"))
sys.exit(1 if bad or not items else 0)' "$CA_USER"
}
# ca_gets PATH: how often sigil-ca read PATH by name.
ca_gets() {
  ctl GET /_fake/requests | /usr/bin/python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin)["items"]
          if r.get("user") == sys.argv[1] and r["method"] == "GET" and r["path"] == sys.argv[2]))' "$CA_USER" "$1"
}
# ca_got N PATH: sigil-ca read PATH by name at least N times.
ca_got() { [ "$(ca_gets "$2")" -ge "$1" ]; }

OUT="$D/probe.out"
"$PROBE" --kubeconfig "$D/kubeconfig" --compat --secrets-dir "$D/secrets" \
  --bundle-dir "$D/bundles" --resync-ms 500 --backoff-ms 100 --retries 2 >"$OUT" 2>"$D/probe.err" &
PROBE_PID=$!
T_PIDS+=($PROBE_PID)

# wait_for DESCRIPTION COMMAND...: until the command succeeds (30 s at most).
wait_for() {
  local desc=$1; shift
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then ok "$desc"; return 0; fi
    sleep 0.2
  done
  fail "$desc"; echo "     --- probe output (tail):"; grep -v "\"event\":\"mirror" "$OUT" | tail -15 | sed 's/^/     /'
  return 0
}
# The names of the last delivered class set, comma-separated.
last_classes() {
  /usr/bin/python3 -c '
import json, sys
last = None
for l in open(sys.argv[1]):
    try: e = json.loads(l)
    except ValueError: continue
    if e.get("event") == "classes": last = e
print(",".join(last["names"]) if last else "")' "$OUT"
}
classes_are() { [ "$(last_classes)" = "$1" ]; }
out_has() { grep -qE -- "$1" "$OUT"; }
count() { grep -cE -- "$1" "$OUT" || true; }
fmode() { stat -c %a "$1"; }
# obj_field PATH PYEXPR: evaluates an expression over the object at PATH (as o).
obj_field() {
  api GET "$1" | /usr/bin/python3 -c 'import json,sys,base64; o=json.load(sys.stdin); sys.stdout.write(str(eval(sys.argv[1])))' "$2"
}

# ---- SecretClasses -------------------------------------------------------------------------
wait_for "initial class set: company + built-in tls" classes_are "company,tls"
check "only one initial delivery" test "$(count '"event":"classes"')" -eq 1

api POST $SC '{"apiVersion":"secrets.sigil.dev/v1alpha1","kind":"SecretClass","metadata":{"name":"extra"},"spec":{"backend":{"autoTls":{"maxCertificateLifetime":"1d"}}}}' >/dev/null
wait_for "created class reaches the callback" classes_are "company,extra,tls"
n_before=$(count '"event":"classes"')
api PATCH $SC/extra '{"spec":{"backend":{"autoTls":{"maxCertificateLifetime":"2d"}}}}' >/dev/null
wait_for "modified class is delivered again" bash -c "[ \$(grep -c '\"event\":\"classes\"' '$OUT') -gt $n_before ]"
# An edit that changes nothing the class means (an annotation) is not a change.
n_before=$(count '"event":"classes"')
api PATCH $SC/extra '{"metadata":{"annotations":{"note":"hello"}}}' >/dev/null

api POST $SC '{"apiVersion":"secrets.sigil.dev/v1alpha1","kind":"SecretClass","metadata":{"name":"broken"},"spec":{"backend":{"autoTls":{"maxCertificateLifetim":"2d"}}}}' >/dev/null
wait_for "broken class is reported with the bad field" out_has '"event":"class-error".*maxCertificateLifetim.*"name":"broken"|"name":"broken".*maxCertificateLifetim'
api POST $SC '{"apiVersion":"secrets.sigil.dev/v1alpha1","kind":"SecretClass","metadata":{"name":"zz-after-broken"},"spec":{"backend":{"autoTls":{}}}}' >/dev/null
wait_for "others still load next to a broken class" classes_are "company,extra,tls,zz-after-broken"
check "annotation-only edit and broken class posted nothing" \
  test "$(count '"event":"classes"')" -eq $((n_before + 1))

api POST $SSC '{"apiVersion":"secrets.stackable.tech/v1alpha2","kind":"SecretClass","metadata":{"name":"legacy"},"spec":{"backend":{"autoTls":{"ca":{"autoGenerate":true,"keyGeneration":{"rsa":{"length":3072}}}}}}}' >/dev/null
wait_for "Stackable v1alpha2 class accepted in compat mode" classes_are "company,extra,legacy,tls,zz-after-broken"
api POST $SSC '{"apiVersion":"secrets.stackable.tech/v1alpha2","kind":"SecretClass","metadata":{"name":"company"},"spec":{"backend":{"autoTls":{"ca":{"autoGenerate":true}}}}}' >/dev/null
wait_for "same name in both groups: the Stackable one is reported as shadowed" out_has '"event":"class-error".*"name":"company".*shadowed|shadowed.*"name":"company"'
check "the sigil company class stays (its secret is still mirrored)" test -f "$D/secrets/sigil/company-ca/ca.crt"

api DELETE $SC/extra >/dev/null
wait_for "deleted class leaves the set" classes_are "company,legacy,tls,zz-after-broken"

# ---- 410 Gone: history compacted and watches cut ----------------------------------------
ctl POST /_fake/compact '{}' >/dev/null
ctl POST /_fake/close-watches '{"abrupt": false}' >/dev/null
api POST $SC '{"apiVersion":"secrets.sigil.dev/v1alpha1","kind":"SecretClass","metadata":{"name":"after-compact"},"spec":{"backend":{"autoTls":{}}}}' >/dev/null
wait_for "watch resumes after compaction (410 relist)" classes_are "after-compact,company,legacy,tls,zz-after-broken"

# ---- the mirror -------------------------------------------------------------------------------
M="$D/secrets/sigil"
wait_for "ca.secret mirrored" test -f "$M/company-ca/ca.key"
check "Secret data base64-decoded" cmp "$M/company-ca/ca.crt" "$D/company.crt"
check "secret key file is 0600" test "$(fmode "$M/company-ca/ca.key")" = 600
check "object directory is 0700" test "$(fmode "$M/company-ca")" = 700
check "namespace directory is 0700" test "$(fmode "$M")" = 700
check "ConfigMap data mirrored" cmp "$M/roots/ca.crt" "$D/company.crt"
check "ConfigMap binaryData decoded" bash -c "printf '\\x00\\x01\\x02\\xff' | cmp - '$M/roots/extra.der'"
check "unreferenced Secret not mirrored" test ! -e "$M/unrelated"
check "mirror summary reported" out_has '"event":"mirror".*"objects":2'

api PATCH /api/v1/namespaces/sigil/secrets/company-ca "{\"data\":{\"ca.crt\":\"$(base64 -w0 "$D/bundle2.crt")\",\"ca.key\":null,\"chain.crt\":\"$(base64 -w0 "$D/bundle1.crt")\"}}" >/dev/null
wait_for "changed key rewritten" cmp "$M/company-ca/ca.crt" "$D/bundle2.crt"
wait_for "removed key's file removed" test ! -e "$M/company-ca/ca.key"
check "new key written 0600" test "$(fmode "$M/company-ca/chain.crt")" = 600

api DELETE /api/v1/namespaces/sigil/configmaps/roots >/dev/null
wait_for "missing ConfigMap: the error names it" out_has '"event":"mirror-error".*ConfigMap sigil/roots.*does not exist'
wait_for "missing ConfigMap: its mirror is removed" test ! -e "$M/roots"
check "other objects still mirrored" test -f "$M/company-ca/ca.crt"

api PATCH $SC/company '{"spec":{"backend":{"autoTls":{"additionalTrustRoots":null}}}}' >/dev/null
mkdir -p "$D/secrets/keep/mine" && echo hello > "$D/secrets/keep/mine/file"
api DELETE $SC/company >/dev/null
wait_for "unreferenced mirror removed with its class" test ! -e "$M/company-ca"
check "the shadowed Stackable company class takes over" classes_are "after-compact,company,legacy,tls,zz-after-broken"
check "directories the mirror did not write are left alone" test -f "$D/secrets/keep/mine/file"

# ---- TrustStores ------------------------------------------------------------------------------
ts() { # NAME SPEC [GROUP-PATH]
  api POST "${3:-$TS}" "{\"apiVersion\":\"${4:-secrets.sigil.dev/v1alpha1}\",\"kind\":\"TrustStore\",\"metadata\":{\"name\":\"$1\",\"namespace\":\"apps\"},\"spec\":$2}" >/dev/null
}
cm_crt() { obj_field "$CM/$1" 'o["data"]["ca.crt"]' > "$D/got.pem" && cmp "$D/got.pem" "$2"; }
sec_crt() { obj_field "$SEC/$1" 'base64.b64decode(o["data"]["ca.crt"]).decode()' > "$D/got.pem" && cmp "$D/got.pem" "$2"; }

ts ts-cm '{"secretClassName":"tls"}'
ts ts-sec '{"secretClassName":"tls","targetKind":"Secret"}'
ts ts-p12 '{"secretClassName":"tls","format":"tls-pkcs12"}'
ts ghost '{"secretClassName":"nope"}'
ts foreign '{"secretClassName":"tls"}'
ts stk '{"secretClassName":"tls"}' "$STS" secrets.stackable.tech/v1alpha1

wait_for "TrustStore -> ConfigMap with ca.crt" cm_crt ts-cm "$D/bundle1.crt"
wait_for "TrustStore -> Secret with ca.crt" sec_crt ts-sec "$D/bundle1.crt"
wait_for "Stackable v1alpha1 TrustStore served in compat mode" cm_crt stk "$D/bundle1.crt"
check "managed-by label set" test "$(obj_field $CM/ts-cm 'o["metadata"]["labels"]["app.kubernetes.io/managed-by"]')" = sigil
check "ownerReference to the TrustStore" test "$(obj_field $CM/ts-cm 'o["metadata"]["ownerReferences"][0]["uid"]')" = "$(obj_field $TS/ts-cm 'o["metadata"]["uid"]')"
check "ownerReference kind and controller" test "$(obj_field $CM/ts-cm '(o["metadata"]["ownerReferences"][0]["kind"], o["metadata"]["ownerReferences"][0]["controller"])')" = "('TrustStore', True)"
wait_for "PKCS#12 truststore in binaryData" bash -c "$(declare -f api obj_field); URL=$URL D=$D; obj_field $CM/ts-p12 'o[\"binaryData\"][\"truststore.p12\"]' | base64 -d > $D/ts.p12"
check "PKCS#12 truststore holds the bundle" bash -c "openssl pkcs12 -in '$D/ts.p12' -passin pass: -nokeys 2>/dev/null | openssl x509 -noout -subject | grep -q 'sigil test bundle1'"
wait_for "unknown class reported" out_has '"event":"truststore-error".*"name":"ghost".*nope|nope.*"name":"ghost"'
wait_for "foreign object reported" out_has '"event":"truststore-error".*not managed by sigil.*"name":"foreign"|"name":"foreign".*not managed by sigil'
check "foreign object not overwritten" test "$(obj_field $CM/foreign 'o["data"]["ca.crt"]')" = "not sigil's"
check "foreign object keeps its labels" test "$(obj_field $CM/foreign 'sorted(o["metadata"]["labels"])')" = "['app']"
wait_for "Warning Event posted on the TrustStore" bash -c "$(declare -f api); URL=$URL D=$D; api GET /api/v1/namespaces/apps/events | grep -q TargetNotManaged"

# Bundle rotation.
n_upd=$(count '"action":"updated"')
cp "$D/bundle2.crt" "$D/bundles/tls.pem"
kill -USR1 $PROBE_PID
wait_for "new bundle rewrites the ConfigMap" cm_crt ts-cm "$D/bundle2.crt"
wait_for "new bundle rewrites the Secret" sec_crt ts-sec "$D/bundle2.crt"
check "rewrites were updates (with resourceVersion)" test "$(count '"action":"updated"')" -ge $((n_upd + 2))

# Deleted and edited by someone else: nothing watches the targets, the
# resync (500 ms here) GETs them and repairs them.
n_cre=$(count '"name":"ts-cm".*"action":"created"|"action":"created".*"name":"ts-cm"')
check "someone deletes the ConfigMap" api DELETE $CM/ts-cm
wait_for "deleted target is recreated by the resync" cm_crt ts-cm "$D/bundle2.crt"
check "... by a create" test "$(count '"name":"ts-cm".*"action":"created"|"action":"created".*"name":"ts-cm"')" -gt "$n_cre"
check "someone edits the Secret" api PATCH $SEC/ts-sec "{\"data\":{\"ca.crt\":\"$(printf tampered | base64 -w0)\"}}"
wait_for "edited target is restored by the resync" sec_crt ts-sec "$D/bundle2.crt"
# Someone edits the foreign object: still not sigil's to touch.
n_get=$(ca_gets $CM/foreign)
check "someone edits the foreign ConfigMap" api PATCH $CM/foreign '{"data":{"ca.crt":"still not sigil'"'"'s"}}'
wait_for "sigil-ca reads the foreign ConfigMap again on resync" ca_got $((n_get + 2)) $CM/foreign
check "foreign object still not overwritten after resyncs" test "$(obj_field $CM/foreign 'o["data"]["ca.crt"]')" = "still not sigil's"

# targetKind switched: a Secret comes; the ConfigMap stays for the garbage
# collector (it names the TrustStore as its owner), sigil-ca deletes nothing.
api PATCH $TS/ts-p12 '{"spec":{"targetKind":"Secret","format":"tls-pem"}}' >/dev/null
wait_for "targetKind change writes the Secret" sec_crt ts-p12 "$D/bundle2.crt"
check "the old ConfigMap is left to the garbage collector (owned by the TrustStore)" \
  test "$(obj_field $CM/ts-p12 'o["metadata"]["ownerReferences"][0]["uid"]')" = "$(obj_field $TS/ts-p12 'o["metadata"]["uid"]')"
check "no deleted action reported" test "$(count '"action":"deleted"')" -eq 0

# Least privilege: every target was read by name, none listed or watched.
check "sigil-ca read its targets by name (GET)" ca_got 3 $CM/ts-cm
check "sigil-ca sent no LIST/WATCH/DELETE on ConfigMaps or Secrets and got no 403" ca_requests_clean

# ---- apiserver restart (same etcd: objects and revision survive) ------------------------------
ctl GET /_fake/objects > "$D/objects.json"
ctl GET /_fake/state > "$D/state.json"
/usr/bin/python3 - "$D" <<'EOF'
import json, sys
d = sys.argv[1]
objs = json.load(open(d + "/objects.json"))["items"]
rv = json.load(open(d + "/state.json"))["resourceVersion"]
kinds = {"namespaces": ("v1", "Namespace"), "secrets": ("v1", "Secret"),
         "configmaps": ("v1", "ConfigMap"), "events": ("v1", "Event"),
         "secretclasses.secrets.sigil.dev": ("secrets.sigil.dev/v1alpha1", "SecretClass"),
         "secretclasses.secrets.stackable.tech": ("secrets.stackable.tech/v1alpha2", "SecretClass"),
         "truststores.secrets.sigil.dev": ("secrets.sigil.dev/v1alpha1", "TrustStore"),
         "truststores.secrets.stackable.tech": ("secrets.stackable.tech/v1alpha1", "TrustStore")}
items = []
for o in objs:
    r = o.pop("_resource")
    if r not in kinds or o["metadata"]["name"] in ("default", "kube-system", "kube-public", "kube-node-lease"):
        continue
    o["apiVersion"], o["kind"] = kinds[r]
    items.append(o)
json.dump({"items": items, "resourceVersion": int(rv)}, open(d + "/reseed.json", "w"))
EOF
kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null || true
sleep 1
check "probe survives the apiserver going away" kill -0 $PROBE_PID
start_fake --port "$PORT" --seed "$D/reseed.json"
forbid_ca
api POST $SC '{"apiVersion":"secrets.sigil.dev/v1alpha1","kind":"SecretClass","metadata":{"name":"after-restart"},"spec":{"backend":{"autoTls":{}}}}' >/dev/null
wait_for "classes follow after an apiserver restart" classes_are "after-compact,after-restart,company,legacy,tls,zz-after-broken"
api DELETE $CM/ts-cm >/dev/null
wait_for "TrustStores follow after an apiserver restart" cm_crt ts-cm "$D/bundle2.crt"
check "after the restart too: no LIST/WATCH/DELETE on ConfigMaps or Secrets" ca_requests_clean

# ---- stop ---------------------------------------------------------------------------------------
kill -TERM $PROBE_PID
for _ in $(seq 1 100); do kill -0 $PROBE_PID 2>/dev/null || break; sleep 0.1; done
check "probe stopped after SIGTERM" bash -c "! kill -0 $PROBE_PID 2>/dev/null"
wait "$PROBE_PID" 2>/dev/null || true
check "controllers reported their stop" out_has '"event":"stopped"'
grep '"event":"stopped"' "$OUT" | sed 's/^/     /' || true
check "no errors on stderr" test ! -s "$D/probe.err"

t_finish
