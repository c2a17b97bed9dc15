#!/bin/bash
# The Kubernetes Secret CA store (ca/server/store_kube.c) against the fake
# apiserver: replicas (processes of tests/tools/ca_store_probe) racing to
# create the first CA of a class and to rotate, with and without the Lease
# lock; 409 conflicts from a concurrent writer; injected 500s; apiserver
# down; a corrupt key; an unmanaged Secret; kill -9 mid-rotation.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROBE="$SIGIL_BUILD_DIR/tests/ca_store_probe"
FAKE="$SIGIL_SOURCE_DIR/tests/fakes/kube_apiserver.py"
D="$T_DIR"
NS=sigil
[ -x "$PROBE" ] || { echo "ca_store_probe not built"; exit 1; }

# ---- the fake apiserver over HTTPS ---------------------------------------------------
fake_kube_tls "$D/ca" "$D/srv"

# sigil-ca's namespace, and objects a real cluster has that are not ours:
# an Opaque Secret that happens to have the name of a class's store.
cat > "$D/seed.json" <<EOF
{"items": [
  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "$NS"}},
  {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
   "metadata": {"name": "sigil-ca-foreign", "namespace": "$NS", "labels": {"app": "other"}},
   "data": {"password": "aHVudGVyMg=="}}
]}
EOF

/usr/bin/python3 "$FAKE" --cert "$D/srv.crt" --key "$D/srv.key" \
  --token ca-token=system:serviceaccount:sigil:sigil-ca \
  --seed "$D/seed.json" --port-file "$D/port" >"$D/fake.log" 2>&1 &
FAKE_PID=$!
T_PIDS+=("$FAKE_PID")
for _ in $(seq 1 100); do [ -s "$D/port" ] && break; sleep 0.05; done
PORT=$(cat "$D/port")
wait_port "$PORT" "$FAKE_PID" || { echo "fake apiserver did not start"; cat "$D/fake.log"; exit 1; }
URL="https://127.0.0.1:$PORT"

ctl() {
  if [ $# -ge 3 ]; then
    curl -sS --fail --cacert "$D/ca.crt" -X "$1" -H 'Content-Type: application/json' -d "$3" "$URL$2"
  else
    curl -sS --fail --cacert "$D/ca.crt" -X "$1" "$URL$2"
  fi
}
objects() { ctl GET /_fake/objects > "$D/objects.json"; }

kubeconfig() { # FILE SERVER
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: $2
    certificate-authority: $D/ca.crt
users:
- name: u
  user:
    token: ca-token
contexts:
- name: fake
  context: {cluster: fake, user: u, namespace: $NS}
current-context: fake
EOF
}
kubeconfig "$D/kc.yaml" "$URL"
DEAD_PORT=$(free_port)
kubeconfig "$D/kc-down.yaml" "https://127.0.0.1:$DEAD_PORT"

# P HOLDER [OPTIONS...] COMMAND ARGS: one replica.  Run in the background
# as "P ... &", the function's subshell execs the probe, so that $! is the
# probe itself (kill -9 must hit the replica, not a shell around it).
TOP_SUBSHELL=$BASH_SUBSHELL
P() {
  local holder=$1; shift
  if [ "$BASH_SUBSHELL" -gt "$TOP_SUBSHELL" ]; then
    exec "$PROBE" --kubeconfig "$D/kc.yaml" --namespace "$NS" --prefix sigil-ca --holder "$holder" \
      --backoff-ms 50 "$@"
  fi
  "$PROBE" --kubeconfig "$D/kc.yaml" --namespace "$NS" --prefix sigil-ca --holder "$holder" \
    --backoff-ms 50 "$@"
}

# py SCRIPT ARGS: a Python check over the fake's objects ($D/objects.json as
# objs) and replica outputs; exits non-zero (with a message) when it fails.
py() { /usr/bin/python3 - "$D/objects.json" "$@"; }

# The generations and certificate fingerprints in a class's Secret.
cat > "$D/lib.py" <<'EOF'
import base64, hashlib, json, ssl, sys
def secret(objs, name, ns="sigil"):
    for o in objs:
        md = o.get("metadata", {})
        if o.get("_resource") == "secrets" and md.get("name") == name and md.get("namespace") == ns:
            return o
    return None
def gens(sec):
    """{generation: sha256(DER of the CA certificate)}"""
    out = {}
    for k, v in (sec.get("data") or {}).items():
        pem = base64.b64decode(v).decode()
        cert = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")]
        out[int(k[4:20], 16)] = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert)).hexdigest()
    return out
def lines(path):
    return [json.loads(l) for l in open(path) if l.startswith("{")]
def load_objs(path):
    d = json.load(open(path))
    return d["items"] if isinstance(d, dict) and "items" in d else d
EOF
export PYTHONPATH="$D"

# every_cert_kept CLASS OUT...: every CA certificate any replica was handed is
# still in the Secret under the same generation, and generations are 1..n.
every_cert_kept() {
  local cls=$1; shift
  objects
  py "$cls" "$@" <<'EOF'
import sys
from lib import *
objs = load_objs(sys.argv[1]); cls = sys.argv[2]
sec = secret(objs, "sigil-ca-" + cls)
assert sec is not None, "no Secret sigil-ca-%s" % cls
assert sec["type"] == "sigil.dev/ca-store", sec["type"]
assert sec["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sigil"
stored = gens(sec)
seen = {}
for out in sys.argv[3:]:
    for ev in lines(out):
        for g, fp in zip(ev["generations"], ev["certs"]):
            if g in seen and seen[g] != fp:
                sys.exit("generation %d was handed out with two different certificates" % g)
            seen[g] = fp
for g, fp in seen.items():
    if stored.get(g) != fp:
        sys.exit("generation %d (%s) handed to a replica is not in the Secret (has %s)"
                 % (g, fp[:12], (stored.get(g) or "nothing")[:12]))
assert sorted(stored) == list(range(1, len(stored) + 1)), "generations %s" % sorted(stored)
print("ok: %d generations, %d handed out" % (len(stored), len(seen)))
EOF
}

# same_view OUT_A OUT_B: the last states two replicas report are the same.
same_view() {
  py "$@" <<'EOF'
import sys
from lib import *
a, b = lines(sys.argv[2])[-1], lines(sys.argv[3])[-1]
assert (a["generations"], a["certs"]) == (b["generations"], b["certs"]), (a, b)
EOF
}

# ---- 1. racing for the first CA, with the Lease lock ------------------------------------
for h in a b c; do P "$h" open tls >"$D/first-$h.out" 2>"$D/first-$h.err" & done
wait_ok=1
for _ in 1 2 3; do wait -n || wait_ok=0; done
[ "$wait_ok" = 1 ] && ok "three replicas open class tls at once" || { fail "a replica failed"; cat "$D"/first-*.err; }
check "all three got generation 1 and it is the one in the Secret" every_cert_kept tls "$D"/first-{a,b,c}.out
check "replicas a and b see the same CA" same_view "$D/first-a.out" "$D/first-b.out"
check "replicas a and c see the same CA" same_view "$D/first-a.out" "$D/first-c.out"
objects
check "the Lease is released after use" py <<'EOF'
import sys
from lib import *
objs = load_objs(sys.argv[1])
l = [o for o in objs if o.get("_resource") == "leases.coordination.k8s.io" and o["metadata"]["name"] == "sigil-ca-tls-lock"]
assert l, "no Lease"
assert l[0]["spec"].get("holderIdentity", "") == "", l[0]["spec"]
assert l[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sigil"
EOF

# ---- 2. racing rotations, with the lock --------------------------------------------------
P a rotate tls 4 >"$D/rot-a.out" 2>"$D/rot-a.err" & pa=$!
P b rotate tls 4 >"$D/rot-b.out" 2>"$D/rot-b.err" & pb=$!
ra=0; rb=0; wait $pa || ra=$?; wait $pb || rb=$?
[ $ra = 0 ] && [ $rb = 0 ] && ok "two replicas rotate 4 times each, with the lock" \
  || { fail "rotation with lock failed"; cat "$D/rot-a.err" "$D/rot-b.err"; }
check "9 generations and no CA handed out was lost or replaced" every_cert_kept tls \
  "$D"/first-{a,b,c}.out "$D/rot-a.out" "$D/rot-b.out"
objects
check "the Secret holds exactly generations 1..9" py <<'EOF'
import sys
from lib import *
assert sorted(gens(secret(load_objs(sys.argv[1]), "sigil-ca-tls"))) == list(range(1, 10))
EOF
P a open tls >"$D/final-a.out" 2>&1; P b open tls >"$D/final-b.out" 2>&1
check "both replicas end with the same generations" same_view "$D/final-a.out" "$D/final-b.out"

# Two processes holding the lock never overlap.
P a lock tls 1500 >"$D/lock-a.out" 2>&1 & pa=$!
P b lock tls 1500 >"$D/lock-b.out" 2>&1 & pb=$!
wait $pa; wait $pb
check "the Lease excludes a second process" py "$D/lock-a.out" "$D/lock-b.out" <<'EOF'
import sys
from lib import *
a, b = lines(sys.argv[2])[0], lines(sys.argv[3])[0]
assert a["to"] <= b["from"] or b["to"] <= a["from"], (a, b)
EOF

# ---- 3. no lock at all: the Secret's resourceVersion alone must keep every CA --------------
# Latency on Secret writes widens the window between read and write, so
# that the replicas really do collide.
ctl POST /_fake/inject '{"latencyMs": 150, "count": 40, "method": "PUT", "path": "/secrets/sigil-ca-race$"}' >/dev/null
for h in a b c; do P "$h" --no-lock 1 rotate race 3 >"$D/race-$h.out" 2>"$D/race-$h.err" & done
wait_ok=1
for _ in 1 2 3; do wait -n || wait_ok=0; done
ctl DELETE /_fake/inject >/dev/null
[ "$wait_ok" = 1 ] && ok "three unlocked replicas race to create and rotate class race" \
  || { fail "an unlocked replica failed"; cat "$D"/race-*.err; }
check "no CA handed to any unlocked replica was lost or overwritten" every_cert_kept race \
  "$D"/race-{a,b,c}.out
echo "     (replicas adopted another's generation $(cat "$D"/race-*.err | grep -c adopting) times)"

# ---- 4. a 409 Conflict from a concurrent writer ------------------------------------------------
# Replica a reads the Secret, its write is held back 2 s; meanwhile b writes
# the same generation.  a must get Conflict, re-read, and answer EXISTS.
ctl POST /_fake/inject '{"latencyMs": 2000, "count": 1, "method": "PUT", "path": "/secrets/sigil-ca-tls$"}' >/dev/null
P a put tls 20 >"$D/c-a.out" 2>"$D/c-a.err" & pa=$!
sleep 0.5
check "b writes generation 20 while a waits" P b put tls 20
cp "$T_DIR/.out" "$D/c-b.out"
ra=0; wait $pa || ra=$?
[ $ra = 1 ] && ok "a's stale write fails" || fail "a's stale write: exit $ra"
check_grep "a gets EXISTS after the conflict, naming the Secret" "error \(already exists\):.*sigil/sigil-ca-tls.*gen-0000000000000014.pem" "$D/c-a.err"
objects
check "generation 20 is b's CA, not a's" py "$D/c-a.out" "$D/c-b.out" <<'EOF'
import sys
from lib import *
stored = gens(secret(load_objs(sys.argv[1]), "sigil-ca-tls"))
a, b = lines(sys.argv[2])[0]["certs"][0], lines(sys.argv[3])[0]["certs"][0]
assert stored[20] == b and stored[20] != a
EOF
# A conflict over a different generation is retried and both survive.
ctl POST /_fake/inject '{"latencyMs": 2000, "count": 1, "method": "PUT", "path": "/secrets/sigil-ca-tls$"}' >/dev/null
P a put tls 21 >"$D/d-a.out" 2>"$D/d-a.err" & pa=$!
sleep 0.5
check "b writes generation 22 while a waits" P b put tls 22
ra=0; wait $pa || ra=$?
[ $ra = 0 ] && ok "a re-reads after the conflict and writes generation 21" || { fail "a: exit $ra"; cat "$D/d-a.err"; }
ctl GET /_fake/requests > "$D/req.json"
check "a's first write was answered 409" py "$D/req.json" <<'EOF'
import sys, json
reqs = json.load(open(sys.argv[2]))
reqs = reqs.get("items", reqs) if isinstance(reqs, dict) else reqs
assert any(r["method"] == "PUT" and r["path"].endswith("/secrets/sigil-ca-tls") and r["status"] == 409
           for r in reqs), "no 409"
EOF
objects
check "generations 21 and 22 are both there" py <<'EOF'
import sys
from lib import *
stored = gens(secret(load_objs(sys.argv[1]), "sigil-ca-tls"))
assert 21 in stored and 22 in stored
EOF
check "remove deletes one generation" P a remove tls 22
check "removing it again succeeds" P a remove tls 22
P a load tls >"$D/after-rm.out" 2>&1
check "generation 22 is gone, 21 stays" py "$D/after-rm.out" <<'EOF'
import sys
from lib import *
g = lines(sys.argv[2])[0]["generations"]
assert 22 not in g and 21 in g and 20 in g, g
EOF
check_fails "put of an existing generation fails" P a put tls 21
check_grep "... with EXISTS" "error \(already exists\)" "$T_DIR/.out"

# ---- 5. injected 500s are retried ---------------------------------------------------------
ctl POST /_fake/inject '{"status": 500, "count": 2, "path": "/secrets/sigil-ca-tls$"}' >/dev/null
check "load succeeds through two injected 500s" P a load tls
ctl POST /_fake/inject '{"status": 503, "count": 2, "method": "PUT", "path": "/secrets/sigil-ca-tls$"}' >/dev/null
check "put succeeds through two injected 503s" P a put tls 23
ctl DELETE /_fake/inject >/dev/null

# ---- 6. apiserver down -----------------------------------------------------------------------
down() { "$PROBE" --kubeconfig "$D/kc-down.yaml" --namespace "$NS" --prefix sigil-ca --holder a \
  --retries 1 --backoff-ms 20 "$@"; }
check_fails "load with the apiserver down fails" down load tls
check_grep "... with UNAVAIL" "error \(unavailable\)" "$T_DIR/.out"
check_fails "open with the apiserver down fails" down open tls
check_grep "... with UNAVAIL" "error \(unavailable\)" "$T_DIR/.out"

# ---- 7. a corrupt key: refused, nothing written ------------------------------------------------
objects
/usr/bin/python3 - "$D/objects.json" "$D/corrupt-seed.json" <<'EOF'
import base64, json, sys, copy
from lib import *
sec = secret(load_objs(sys.argv[1]), "sigil-ca-tls")
def variant(name, key, value):
    s = {"apiVersion": "v1", "kind": "Secret", "type": sec["type"],
         "metadata": {"name": name, "namespace": "sigil", "labels": sec["metadata"]["labels"]},
         "data": dict(sec["data"])}
    s["data"][key] = value
    return s
good = sec["data"]["gen-0000000000000001.pem"]
pem = base64.b64decode(good).decode()
flipped = pem.replace("A", "B", 1)  # one base64 character changed inside the certificate
items = [variant("sigil-ca-bad1", "gen-0000000000000030.pem", base64.b64encode(flipped.encode()).decode()),
         variant("sigil-ca-bad2", "gen-0000000000000030.pem", base64.b64encode(pem[:len(pem)//2].encode()).decode()),
         variant("sigil-ca-bad3", "README", base64.b64encode(b"hello").decode()),
         variant("sigil-ca-bad4", "gen-0000000000000030.pem", "!!not base64!!")]
json.dump({"items": items}, open(sys.argv[2], "w"))
EOF
ctl POST /_fake/seed "$(cat "$D/corrupt-seed.json")" >/dev/null
rv_of() { objects; py "$1" <<'EOF'
import sys
from lib import *
print(secret(load_objs(sys.argv[1]), sys.argv[2])["metadata"]["resourceVersion"])
EOF
}
for b in bad1 bad2 bad3 bad4; do
  before=$(rv_of "sigil-ca-$b")
  check_fails "load of class $b fails" P a load "$b"
  check_grep "... with CORRUPT naming the Secret and key" "error \(corrupt data\): class $b: CA store Secret sigil/sigil-ca-$b key (gen-0000000000000030.pem|README)" "$T_DIR/.out"
  check_fails "open of class $b fails (no CA regenerated)" P a open "$b"
  check_grep "... with CORRUPT" "error \(corrupt data\)" "$T_DIR/.out"
  check_fails "rotate of class $b fails" P a rotate "$b" 1
  after=$(rv_of "sigil-ca-$b")
  [ "$before" = "$after" ] && ok "Secret sigil-ca-$b was not written" || fail "sigil-ca-$b changed: $before -> $after"
done

# ---- 8. a Secret that is not ours -----------------------------------------------------------
before=$(rv_of sigil-ca-foreign)
check_fails "open of a class whose Secret is not managed by sigil fails" P a open foreign
check_grep "... saying it is not managed by sigil" "error \(failed precondition\):.*sigil/sigil-ca-foreign.*not managed by sigil" "$T_DIR/.out"
check_fails "put into it fails" P a put foreign 1
check_fails "remove from it fails" P a remove foreign 1
after=$(rv_of sigil-ca-foreign)
[ "$before" = "$after" ] && ok "the foreign Secret was never written" || fail "foreign Secret changed"
check_fails "a class name Kubernetes cannot take is refused" P a load tls-
check_grep "... with a clear message" "error \(invalid argument\):.*must end with a letter or digit" "$T_DIR/.out"

# ---- 9. kill -9 mid-rotation --------------------------------------------------------------------
# Replica a rotates (RSA keys: slow enough to be killed mid-way) and is
# killed at a random moment; b must always load a whole store.  a restarts
# under the same holder identity, as a restarted container does, and takes
# its dead predecessor's Lease over at once.
check "a creates class crash" P a --alg rsa-2048 open crash
cp "$T_DIR/.out" "$D/crash-a.out"
crash_ok=1
for i in 1 2 3 4 5 6; do
  P a --alg rsa-2048 rotate crash 50 >>"$D/crash-a.out" 2>>"$D/crash-a.err" &
  pa=$!
  sleep "$(( RANDOM % 2 )).$(( (RANDOM % 7) + 3 ))"
  kill -9 $pa 2>/dev/null || true
  wait $pa 2>/dev/null || true
  if ! P b load crash >>"$D/crash-b.out" 2>"$D/crash-b.err"; then crash_ok=0; cat "$D/crash-b.err"; fi
done
[ $crash_ok = 1 ] && ok "b loads the store after each of 6 kill -9s of a mid-rotation" || fail "b could not load after a crash"
check "every CA a was handed before dying is still in the Secret" every_cert_kept crash "$D/crash-a.out"
check "a did rotate between the kills" py "$D/crash-a.out" <<'EOF'
import sys
from lib import *
assert any(ev["event"] == "rotate" for ev in lines(sys.argv[2])), "no rotation finished"
EOF
# The last kill may have left the Lease held by a dead "a": then b takes it
# over once it runs out (CA_STORE_KUBE_LEASE_SECONDS, by its renewTime).
objects
check "b rotates after taking over the dead holder's Lease" P b rotate crash 1
cp "$T_DIR/.out" "$D/crash-b2.out"
check "still no CA lost" every_cert_kept crash "$D/crash-a.out" "$D/crash-b2.out"

t_finish
