#!/usr/bin/env bash
# Kerberos volumes end to end: sigilctl publish -> sigil-csi -> sigil-ca ->
# sigil-kadm-helper -> a real MIT kadmind/krb5kdc (tests/kdc/kdc.sh).  The
# volume's keytab and krb5.conf work as they are with kinit and kvno; a
# second publish hands out the same keys; service names x scope names give
# the principals; provision-parts=public creates none; the default format
# of a kerberosKeytab class is a keytab; sigilctl inspect lists the keys;
# every refusal (no 'e' privilege, wrong admin keytab, bad service name,
# TLS class, KDC or kadmind down) is a clear gRPC status and leaves nothing
# in the target.
source "$(dirname "$0")/lib.sh"

KDC_SH="$SIGIL_SOURCE_DIR/tests/kdc/kdc.sh"
KDIR="$T_DIR/kdc"
CA="$SIGIL_BUILD_DIR/sigil-ca"
CSI="$SIGIL_BUILD_DIR/sigil-csi"
CAS="$T_DIR/ca-state"; CLS="$T_DIR/classes"; SEC="$T_DIR/secrets"; PODS="$T_DIR/pods"
mkdir -p "$CLS" "$SEC/default/krb-admin" "$PODS"

krb_cleanup() {
  "$KDC_SH" stop "$KDIR" || true
  t_cleanup
}
trap krb_cleanup EXIT
trap 'exit 130' INT TERM

# One retry: a port picked as free can be taken by a parallel test
# before the daemons bind it (kdc.sh then refuses to share it).
if ! "$KDC_SH" start "$KDIR" > "$T_DIR/kdc-start.log" 2>&1 &&
   ! { cat "$T_DIR/kdc-start.log" >&2; "$KDC_SH" stop "$KDIR" >/dev/null 2>&1; rm -rf "$KDIR";
       "$KDC_SH" start "$KDIR" > "$T_DIR/kdc-start.log" 2>&1; }; then
  fail "kdc.sh start"; sed 's/^/     /' "$T_DIR/kdc-start.log" | tail -30
  t_finish; exit 1
fi
ok "kdc.sh start: throwaway realm up"
# shellcheck source=/dev/null
source "$KDIR/env"
export KRB5CCNAME="FILE:$T_DIR/ccache"   # never a user's ccache
export KRB5_KDC_PROFILE="$KDIR/kdc.conf" # for kadmin.local
KADMIN_LOCAL_CONF=$KRB5_CONFIG           # the realm's own krb5.conf, for kadmin.local
unset KRB5_CONFIG                        # pods use the volume's krb5.conf
klocal() { KRB5_CONFIG="$KADMIN_LOCAL_CONF" kadmin.local -r "$REALM" -q "$1" 2>&1; }
kadmind_requests() { grep -c "Request:" "$KDIR/kadmind.log" || true; }

# The admin keytab as a mounted Secret (SECRETS_DIR/<ns>/<name>/keytab) for
# one class; the others name a path.  "wrong" holds only another
# principal's key.
cp "$ADMIN_KEYTAB" "$SEC/default/krb-admin/keytab"; chmod 600 "$SEC/default/krb-admin/keytab"
cp "$NOE_KEYTAB" "$T_DIR/wrong.keytab"
# The admin's name and kvno with another key.
printf 'addent -password -p %s -k 1 -e aes256-cts-hmac-sha1-96\nnot-the-key\nwkt %s\nquit\n' \
  "$ADMIN_PRINCIPAL" "$T_DIR/badkey.keytab" | ktutil > /dev/null 2>&1 || true

TOKEN=node-a-token-0123456789abcdef
printf '%s node-a\n' "$TOKEN" > "$T_DIR/tokens"; chmod 600 "$T_DIR/tokens"
echo "$TOKEN" > "$T_DIR/node.token"

krb_class() { # krb_class NAME ADMIN_PRINCIPAL ADMIN_KEYTAB_YAML
  cat <<YAML
---
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: $1}
spec:
  backend:
    kerberosKeytab:
      realmName: $REALM
      kdc: $KDC
      admin:
        mit: {kadminServer: $KADMIN}
      adminKeytabSecret: $3
      adminPrincipal: $2
YAML
}
{
  krb_class kerberos "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB"
  krb_class kerberos-secret "$ADMIN_PRINCIPAL" "{name: krb-admin, namespace: default}"
  krb_class kerberos-noe "$NOE_PRINCIPAL" "$NOE_KEYTAB"
  krb_class kerberos-wrong "$ADMIN_PRINCIPAL" "$T_DIR/wrong.keytab"
  krb_class kerberos-badkey "$ADMIN_PRINCIPAL" "$T_DIR/badkey.keytab"
  krb_class kerberos-nokeytab "$ADMIN_PRINCIPAL" "$T_DIR/absent.keytab"
  cat <<'YAML'
---
apiVersion: secrets.sigil.dev/v1alpha1
kind: SecretClass
metadata: {name: tls}
spec:
  backend:
    autoTls:
      ca: {autoGenerate: true}
YAML
} > "$CLS/classes.yaml"

CA_PORT=$(free_port)
"$CA" --listen "127.0.0.1:$CA_PORT" --state-dir "$CAS" --classes-dir "$CLS" --secrets-dir "$SEC" \
  --tokens-file "$T_DIR/tokens" >>"$T_DIR/ca.log" 2>&1 &
T_PIDS+=($!)
if ! wait_port "$CA_PORT"; then fail "sigil-ca did not start"; cat "$T_DIR/ca.log"; t_finish; exit 1; fi
SOCK="$T_DIR/node-a.sock"
"$CSI" --endpoint "unix://$SOCK" --node-id node-a --state-dir "$T_DIR/node-a-state" --key-pool rsa-2048=0 \
  --ca-endpoint "127.0.0.1:$CA_PORT" --ca-bundle "$CAS/issuer-ca.crt" --token-file "$T_DIR/node.token" \
  >>"$T_DIR/csi.log" 2>&1 &
T_PIDS+=($!)
for _ in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] && ok "sigil-ca and sigil-csi up" || { fail "sigil-csi did not start"; cat "$T_DIR/csi.log"; t_finish; exit 1; }

pub() { # pub VOLUME ATTR...
  local vid=$1; shift
  local args=(); for a in "$@"; do args+=(--attr "$a"); done
  "$SIGILCTL" publish --endpoint "$SOCK" --volume-id "$vid" --target "$PODS/$vid" --pod web-0 \
    --namespace default "${args[@]}"
}
# expect_refusal DESCRIPTION PATTERN VOLUME ATTR...: the publish fails with
# output matching PATTERN and leaves no target behind.
expect_refusal() {
  local desc=$1 pat=$2 vid=$3; shift 3
  if pub "$vid" "$@" > "$T_DIR/.err" 2>&1; then
    fail "$desc (unexpectedly succeeded)"
  elif grep -qE -- "$pat" "$T_DIR/.err"; then
    ok "$desc"
  else
    fail "$desc: /$pat/ not in:"; sed 's/^/     /' "$T_DIR/.err"
  fi
  if [ -e "$PODS/$vid" ]; then fail "$desc: the target $vid exists"; fi
}

WEB="HTTP/web.default.svc.cluster.local@$REALM"
KAFKA="kafka/web.default.svc.cluster.local@$REALM"
NODE_HTTP="HTTP/node-a@$REALM"
NODE_KAFKA="kafka/node-a@$REALM"

# ---- publish and use ------------------------------------------------------------------
check "publish a kerberos volume (node + service=web, HTTP and kafka)" \
  pub v1 class=kerberos format=kerberos scope=node,service=web kerberos.service.names=HTTP,kafka
V1="$PODS/v1"
ls "$V1" > "$T_DIR/v1.ls" 2>&1 || true
if [ "$(grep -v '^\.' "$T_DIR/v1.ls" | sort | tr '\n' ' ')" = "keytab krb5.conf " ]; then
  ok "the volume holds keytab and krb5.conf"
else
  fail "volume files:"; cat "$T_DIR/v1.ls"
fi
for f in keytab krb5.conf; do
  m=$(stat -L -c %a "$V1/$f" 2>/dev/null || echo none)
  [ "$m" = 640 ] && ok "$f is mode 0640" || fail "$f mode $m"
done
check_grep "krb5.conf: default_realm" "default_realm = $REALM" "$V1/krb5.conf"
check_grep "krb5.conf: the realm's KDC" "kdc = $KDC\$" "$V1/krb5.conf"
check_grep "krb5.conf: admin_server" "admin_server = $KADMIN\$" "$V1/krb5.conf"
check_grep "krb5.conf: rdns = false" "rdns = false" "$V1/krb5.conf"
check_grep "krb5.conf: dns_canonicalize_hostname = false" "dns_canonicalize_hostname = false" "$V1/krb5.conf"
check_grep "krb5.conf: udp_preference_limit = 1" "udp_preference_limit = 1" "$V1/krb5.conf"
check_grep "krb5.conf: [domain_realm] for the cluster domain" "^[[:space:]]*\.?cluster\.local = $REALM" "$V1/krb5.conf"

export KRB5_CONFIG="$V1/krb5.conf"
check "kinit -kt keytab $WEB (with the volume's krb5.conf)" kinit -k -t "$V1/keytab" "$WEB"
kvno -k "$V1/keytab" "$KAFKA" > "$T_DIR/kvno1.txt" 2>&1 || true
check_grep "kvno -k validates the kafka key" "kvno = 1, keytab entry valid" "$T_DIR/kvno1.txt"
kvno -k "$V1/keytab" "$NODE_HTTP" > "$T_DIR/kvno2.txt" 2>&1 || true
check_grep "kvno -k validates the node principal's key" "kvno = 1, keytab entry valid" "$T_DIR/kvno2.txt"
check "kinit -kt keytab $NODE_KAFKA" kinit -k -t "$V1/keytab" "$NODE_KAFKA"
kdestroy >/dev/null 2>&1 || true

klist -k -e "$V1/keytab" > "$T_DIR/klist1.txt" 2>&1 || true
n_princ=$(awk 'NR>3 {print $2}' "$T_DIR/klist1.txt" | sort -u | wc -l)
[ "$n_princ" = 4 ] && ok "2 service names x 2 scope names = 4 principals" || { fail "principals: $n_princ"; cat "$T_DIR/klist1.txt"; }
for p in "$WEB" "$KAFKA" "$NODE_HTTP" "$NODE_KAFKA"; do
  grep -q " $p (aes256-cts-hmac-sha1-96)" "$T_DIR/klist1.txt" && grep -q " $p (aes128-cts-hmac-sha1-96)" "$T_DIR/klist1.txt" ||
    fail "keytab lacks both enctypes of $p"
done
ok "every principal has its aes256 and aes128 keys"
klocal listprincs > "$T_DIR/princs1.txt"
for p in "$WEB" "$KAFKA" "$NODE_HTTP" "$NODE_KAFKA"; do
  grep -qx "$p" "$T_DIR/princs1.txt" || fail "kadmind has no $p"
done
ok "the principals exist in the KDC database"

# ---- sigilctl inspect ----------------------------------------------------------------------
"$SIGILCTL" inspect "$V1" > "$T_DIR/inspect.txt" 2>&1 || true
check_grep "inspect: keytab file" "^keytab  \[keytab, mode 0640" "$T_DIR/inspect.txt"
check_grep "inspect: principal, kvno, enctype" "keytab-entry $WEB kvno 1 aes256-cts-hmac-sha1-96 \(18\)" "$T_DIR/inspect.txt"
check_grep "inspect: aes128 key of kafka" "keytab-entry $NODE_KAFKA kvno 1 aes128-cts-hmac-sha1-96 \(17\)" "$T_DIR/inspect.txt"
[ "$(grep -c 'keytab-entry' "$T_DIR/inspect.txt")" = 8 ] && ok "inspect lists 8 keys" || fail "inspect key count"
"$SIGILCTL" inspect --json "$V1" > "$T_DIR/inspect.json" 2>&1 || true
if python3 - "$T_DIR/inspect.json" "$KAFKA" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
kt = [f for f in d["files"] if f["name"] == "keytab"][0]
assert kt["format"] == "keytab", kt
es = [e for e in kt["entries"] if e["principal"] == sys.argv[2]]
assert len(es) == 2 and all(e["kind"] == "keytab-entry" and e["kvno"] == 1 for e in es), es
assert sorted(e["enctype"] for e in es) == ["aes128-cts-hmac-sha1-96", "aes256-cts-hmac-sha1-96"], es
assert sorted(e["enctypeNumber"] for e in es) == [17, 18], es
PY
then ok "inspect --json: principal, kvno, enctype"; else fail "inspect --json"; cat "$T_DIR/inspect.json"; fi

# ---- again: the same keys ------------------------------------------------------------------
check "publish the same principals to another target" \
  pub v2 class=kerberos format=kerberos scope=node,service=web kerberos.service.names=HTTP,kafka
if cmp -s "$V1/keytab" "$PODS/v2/keytab"; then ok "the second keytab is byte-identical (same keys, kvnos)"; else fail "the second keytab differs"; fi
klocal "getprinc $WEB" > "$T_DIR/getprinc.txt"
check_grep "the principal is still at kvno 1" "^Key: vno 1, aes256-cts-hmac-sha1-96" "$T_DIR/getprinc.txt"
check "the first keytab still works (kinit)" kinit -k -t "$V1/keytab" "$WEB"
kdestroy >/dev/null 2>&1 || true
check "a class whose admin keytab is a Secret reference (SECRETS_DIR/default/krb-admin/keytab)" \
  pub v3 class=kerberos-secret format=kerberos scope=service=web kerberos.service.names=HTTP
KRB5_CONFIG="$PODS/v3/krb5.conf" klist -k "$PODS/v3/keytab" > "$T_DIR/klist3.txt" 2>&1 || true
if [ "$(awk 'NR>3 {print $2}' "$T_DIR/klist3.txt" | sort -u)" = "$WEB" ]; then ok "one service name x one scope: just $WEB"; else fail "v3 principals:"; cat "$T_DIR/klist3.txt"; fi

# ---- the backend's native format; default service name -------------------------------------
check "no format attribute: a kerberosKeytab class gives a keytab" pub v4 class=kerberos scope=service=native
DEF="HTTP/native.default.svc.cluster.local@$REALM"
[ -s "$PODS/v4/keytab" ] && [ -s "$PODS/v4/krb5.conf" ] && ok "v4 holds keytab and krb5.conf" || fail "v4 files"
check "default service name HTTP: kinit $DEF" kinit -k -t "$PODS/v4/keytab" "$DEF"
kdestroy >/dev/null 2>&1 || true

# ---- provision-parts=public ------------------------------------------------------------------
check "provision-parts=public" pub v5 class=kerberos format=kerberos scope=service=pubonly provision-parts=public
[ -s "$PODS/v5/krb5.conf" ] && ok "public: krb5.conf written" || fail "public: no krb5.conf"
[ -e "$PODS/v5/keytab" ] && fail "public: a keytab was written" || ok "public: no keytab"
klocal listprincs > "$T_DIR/princs5.txt"
grep -q pubonly "$T_DIR/princs5.txt" && fail "public: a principal was created" || ok "public: no principal created"

# ---- refusals --------------------------------------------------------------------------------
before=$(kadmind_requests)
expect_refusal "reserved service name (krbtgt): INVALID_ARGUMENT from sigil-ca" \
  "INVALID_ARGUMENT.*krbtgt" v10 class=kerberos scope=service=web kerberos.service.names=HTTP,krbtgt
expect_refusal "service name \"..\": INVALID_ARGUMENT" \
  "INVALID_ARGUMENT" v11 class=kerberos scope=service=web kerberos.service.names=..
expect_refusal "service name with '/': INVALID_ARGUMENT from the node" \
  "INVALID_ARGUMENT.*service name" v12 class=kerberos scope=service=web "kerberos.service.names=HTTP/x"
expect_refusal "pod scope without subdomain gives no host: INVALID_ARGUMENT" \
  "INVALID_ARGUMENT.*no host name" v13 class=kerberos scope=pod
expect_refusal "format kerberos on a TLS class: INVALID_ARGUMENT" \
  "INVALID_ARGUMENT.*kerberosKeytab" v14 class=tls format=kerberos scope=node
expect_refusal "unknown class: NOT_FOUND" "NOT_FOUND" v15 class=nope format=kerberos scope=node
after=$(kadmind_requests)
[ "$before" = "$after" ] && ok "kadmind saw none of the refused requests" || fail "kadmind log grew from $before to $after"
klocal listprincs > "$T_DIR/princs10.txt"
grep -qi krbtgt/web "$T_DIR/princs10.txt" && fail "a refused principal exists" || ok "no refused principal exists"

expect_refusal "admin without the 'e' privilege: FAILED_PRECONDITION with the kadm5.acl hint" \
  "FAILED_PRECONDITION.*'e' \(extract\) privilege in kadm5.acl" v20 class=kerberos-noe scope=service=noe
expect_refusal "wrong admin keytab: FAILED_PRECONDITION, sigil-ca cannot log in" \
  "FAILED_PRECONDITION.*cannot log in to kadmind.*holds no key for $ADMIN_PRINCIPAL" v21 class=kerberos-wrong scope=service=web
expect_refusal "admin keytab with a wrong key: FAILED_PRECONDITION with the KDC's reason" \
  "FAILED_PRECONDITION.*cannot log in to kadmind.*Preauthentication failed" v23 class=kerberos-badkey scope=service=web
expect_refusal "missing admin keytab: FAILED_PRECONDITION naming it" \
  "FAILED_PRECONDITION.*cannot read the admin keytab" v22 class=kerberos-nokeytab scope=service=web

# ---- kadmind down, then the KDC down too ---------------------------------------------------------
kill -TERM "$KADMIND_PID"
for _ in $(seq 1 50); do [ -e "/proc/$KADMIND_PID/exe" ] || break; sleep 0.1; done
expect_refusal "kadmind down: UNAVAILABLE naming kadmind" "UNAVAILABLE.*cannot reach kadmind at $KADMIN" \
  v30 class=kerberos scope=service=web
grep -q "v30" "$T_DIR/csi.log" && ok "sigil-csi logged the failure" || fail "no log line for v30"
kill -TERM "$KDC_PID"
for _ in $(seq 1 50); do [ -e "/proc/$KDC_PID/exe" ] || break; sleep 0.1; done
expect_refusal "KDC down: UNAVAILABLE naming the KDC" "UNAVAILABLE.*Cannot contact any KDC" \
  v31 class=kerberos scope=service=web
check "the first keytab is still on disk and unchanged" cmp "$V1/keytab" "$PODS/v2/keytab"

# ---- unpublish --------------------------------------------------------------------------------
check "unpublish v1" "$SIGILCTL" unpublish --endpoint "$SOCK" --volume-id v1 --target "$V1"
[ -e "$V1" ] && fail "v1 target left behind" || ok "v1 removed"
t_finish
