#!/usr/bin/env bash
# kerberos_provision against a real MIT krb5kdc + kadmind (tests/kdc/kdc.sh):
# keytabs that kinit and kvno accept, idempotent provisioning that never
# re-keys, every kvno, the kadm5.acl 'e' hint, refusal of bad names before
# kadmind is contacted, a wrong admin keytab, a hung and a stopped kadmind.
source "$(dirname "$0")/lib.sh"

KDC_SH="$SIGIL_SOURCE_DIR/tests/kdc/kdc.sh"
KDIR="$T_DIR/kdc"
PROVISION="$SIGIL_BUILD_DIR/tests/krb_provision"
export SIGIL_KADM_HELPER="$SIGIL_BUILD_DIR/sigil-kadm-helper"

# The realm goes down with the test, whatever happens to it.
kdc_cleanup() {
  "$KDC_SH" stop "$KDIR" || true
  t_cleanup
}
trap kdc_cleanup EXIT
trap 'exit 130' INT TERM

# One retry: a port picked as free can be taken by a parallel test
# before the daemons bind it (kdc.sh then refuses to share it).
if ! "$KDC_SH" start "$KDIR" > "$T_DIR/kdc-start.log" 2>&1 &&
   ! { cat "$T_DIR/kdc-start.log" >&2; "$KDC_SH" stop "$KDIR" >/dev/null 2>&1; rm -rf "$KDIR";
       "$KDC_SH" start "$KDIR" > "$T_DIR/kdc-start.log" 2>&1; }; then
  fail "kdc.sh start"
  sed 's/^/     /' "$T_DIR/kdc-start.log" | tail -30
  t_finish
  exit 1
fi
ok "kdc.sh start: throwaway realm up"
# shellcheck source=/dev/null
source "$KDIR/env"
export KRB5_CONFIG
export KRB5CCNAME="FILE:$T_DIR/ccache"   # never a user's ccache
export KRB5_KDC_PROFILE="$KDIR/kdc.conf" # for kadmin.local checks

check_grep "env names the realm" "^REALM=SIGIL.TEST$" "$KDIR/env"
if port_pids=$(ss -Hltnp "sport = :${KDC##*:}" | grep -o 'pid=[0-9]*'); [ "$port_pids" = "pid=$KDC_PID" ]; then
  ok "the KDC port belongs to our krb5kdc alone"
else
  fail "KDC port listeners: $port_pids (expected pid=$KDC_PID)"
fi

WEB="HTTP/web-0.default.svc.cluster.local@$REALM"
KAFKA="kafka/kafka-0.kafka-headless.default.svc.cluster.local@$REALM"

# prov ADMIN_PRINCIPAL ADMIN_KEYTAB OUT [extra args] PRINCIPAL...
prov() {
  local ap=$1 ak=$2 out=$3; shift 3
  "$PROVISION" --realm "$REALM" --kdc "$KDC" --admin-server "$KADMIN" \
    --admin-principal "$ap" --admin-keytab "$ak" --out "$out" "$@"
}
# expect_error DESCRIPTION PATTERN COMMAND...: the command fails and its
# stderr matches PATTERN.
expect_error() {
  local desc=$1 pat=$2; shift 2
  if "$@" > "$T_DIR/.err" 2>&1; then
    fail "$desc (unexpectedly succeeded)"
  elif grep -qE -- "$pat" "$T_DIR/.err"; then
    ok "$desc"
  else
    fail "$desc: /$pat/ not in:"; sed 's/^/     /' "$T_DIR/.err"
  fi
}
kadmind_requests() { grep -c "Request:" "$KDIR/kadmind.log" || true; }

# ---- create and use -----------------------------------------------------------
check "provision $WEB and $KAFKA (create)" prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/kt1" "$WEB" "$KAFKA"
klist -k -e "$T_DIR/kt1" > "$T_DIR/klist1.txt" 2>&1 || true
check_grep "MIT klist reads the sigil keytab (HTTP, aes256)" "1 $WEB \(aes256-cts-hmac-sha1-96\)" "$T_DIR/klist1.txt"
check_grep "MIT klist reads the sigil keytab (kafka, aes128)" "1 $KAFKA \(aes128-cts-hmac-sha1-96\)" "$T_DIR/klist1.txt"
mode=$(stat -c %a "$T_DIR/kt1")
if [ "$mode" = 600 ]; then ok "keytab written 0600"; else fail "keytab mode $mode"; fi

check "kinit -kt keytab $KAFKA" kinit -k -t "$T_DIR/kt1" "$KAFKA"
kvno -k "$T_DIR/kt1" "$WEB" > "$T_DIR/kvno1.txt" 2>&1 || true
check_grep "kvno -k validates the HTTP key" "kvno = 1, keytab entry valid" "$T_DIR/kvno1.txt"
check "kinit -kt keytab $WEB" kinit -k -t "$T_DIR/kt1" "$WEB"
kvno -k "$T_DIR/kt1" "$KAFKA" > "$T_DIR/kvno2.txt" 2>&1 || true
check_grep "kvno -k validates the kafka key" "kvno = 1, keytab entry valid" "$T_DIR/kvno2.txt"
kdestroy >/dev/null 2>&1 || true

# ---- idempotent, never re-keys ------------------------------------------------
check "provision again" prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/kt2" "$WEB" "$KAFKA"
if cmp -s "$T_DIR/kt1" "$T_DIR/kt2"; then ok "second keytab is byte-identical (same keys, kvnos, stamps)"; else fail "second keytab differs"; fi
kadmin.local -r "$REALM" -q "getprinc $WEB" > "$T_DIR/getprinc.txt" 2>&1 || true
check_grep "the principal is still at kvno 1" "^Key: vno 1, aes256-cts-hmac-sha1-96" "$T_DIR/getprinc.txt"
check "the first keytab still works (kinit)" kinit -k -t "$T_DIR/kt1" "$WEB"
check "provision only the web principal" prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/kt-web" --no-create "$WEB"
"$PROVISION" --list "$T_DIR/kt-web" > "$T_DIR/list-web.txt"
if [ "$(wc -l < "$T_DIR/list-web.txt")" -eq 2 ] && ! grep -q kafka "$T_DIR/list-web.txt"; then
  ok "a single-principal keytab holds just its two keys"
else
  fail "single-principal keytab:"; cat "$T_DIR/list-web.txt"
fi

# ---- every kvno after an outside re-key ---------------------------------------
kadmin.local -r "$REALM" -q "cpw -randkey -keepold $WEB" > "$T_DIR/cpw.txt" 2>&1
check "provision after an outside re-key" prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/kt3" "$WEB"
klist -k "$T_DIR/kt3" > "$T_DIR/klist3.txt" 2>&1 || true
if grep -q "^ *1 $WEB" "$T_DIR/klist3.txt" && grep -q "^ *2 $WEB" "$T_DIR/klist3.txt"; then
  ok "the keytab holds kvno 1 and kvno 2"
else
  fail "kvnos in keytab:"; cat "$T_DIR/klist3.txt"
fi
kinit -k -t "$T_DIR/kt3" "$WEB" >/dev/null 2>&1 || true
kvno -k "$T_DIR/kt3" "$WEB" > "$T_DIR/kvno3.txt" 2>&1 || true
check_grep "kvno -k validates the new kvno 2 key" "kvno = 2, keytab entry valid" "$T_DIR/kvno3.txt"
kdestroy >/dev/null 2>&1 || true

# ---- refusals --------------------------------------------------------------------
expect_error "no-create: a missing principal is NotFound" "^error: not found: .*does not exist" \
  prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/x" --no-create "HTTP/absent.default.svc.cluster.local@$REALM"
kadmin.local -r "$REALM" -q "getprinc HTTP/absent.default.svc.cluster.local@$REALM" > "$T_DIR/absent.txt" 2>&1 || true
check_grep "and it was not created" "Principal does not exist" "$T_DIR/absent.txt"

expect_error "admin without 'e': FailedPrecondition with the kadm5.acl hint" \
  "^error: failed precondition: .*needs the 'e' \(extract\) privilege in kadm5.acl" \
  prov "$NOE_PRINCIPAL" "$NOE_KEYTAB" "$T_DIR/x" "$WEB"

before=$(kadmind_requests)
expect_error "malformed name (upper case host) is InvalidArgument" "^error: invalid argument: .*lower case" \
  prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/x" "HTTP/Web-0.default@$REALM"
expect_error "three components are InvalidArgument" "^error: invalid argument" \
  prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/x" "HTTP/a/b@$REALM"
expect_error "the KDC's own principals are refused" "^error: invalid argument: .*belongs to the KDC" \
  prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/x" "kadmin/admin@$REALM"
expect_error "another realm is refused" "^error: invalid argument: .*not in realm" \
  prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/x" "HTTP/web@EVIL.TEST"
after=$(kadmind_requests)
if [ "$before" = "$after" ]; then ok "kadmind saw no request for the refused names ($after in its log)"; else fail "kadmind log grew from $before to $after"; fi
kadmin.local -r "$REALM" -q "listprincs" > "$T_DIR/princs.txt" 2>&1 || true
if grep -qi "web-0.default@" "$T_DIR/princs.txt"; then fail "a refused principal exists"; else ok "no refused principal exists"; fi

# A keytab with the admin's name and kvno but another key.
printf 'addent -password -p %s -k 2 -e aes256-cts-hmac-sha1-96\nnot-the-key\nwkt %s\nquit\n' \
  "$ADMIN_PRINCIPAL" "$T_DIR/wrong.keytab" | ktutil > /dev/null 2>&1 || true
expect_error "wrong admin keytab is Unauthenticated with the KDC's reason" \
  "^error: unauthenticated: cannot authenticate .*as $ADMIN_PRINCIPAL.*Preauthentication failed" \
  prov "$ADMIN_PRINCIPAL" "$T_DIR/wrong.keytab" "$T_DIR/x" "$WEB"
expect_error "keytab without the admin principal is Unauthenticated" \
  "^error: unauthenticated: .*holds no key for $ADMIN_PRINCIPAL" \
  prov "$ADMIN_PRINCIPAL" "$NOE_KEYTAB" "$T_DIR/x" "$WEB"
expect_error "missing admin keytab is Unauthenticated" "^error: unauthenticated: cannot read the admin keytab" \
  prov "$ADMIN_PRINCIPAL" "$T_DIR/none.keytab" "$T_DIR/x" "$WEB"

# ---- a hung kadmind: the watchdog ----------------------------------------------
kill -STOP "$KADMIND_PID"
t0=$(date +%s%N)
expect_error "hung kadmind: Unavailable from the watchdog" "^error: unavailable: kadmind at $KADMIN .*did not answer within 3000 ms" \
  prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/x" --timeout-ms 3000 "$WEB"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -CONT "$KADMIND_PID"
if [ "$ms" -ge 3000 ] && [ "$ms" -lt 6000 ]; then ok "watchdog fired after ${ms} ms"; else fail "watchdog took ${ms} ms"; fi
# Only orphans count: sigil-ca in a parallel test keeps pooled helpers alive
# on purpose, but a helper whose caller is gone has been reparented to init.
if pgrep -P 1 -f "^$SIGIL_KADM_HELPER" > /dev/null; then fail "a kadm helper outlived its watchdog"; else ok "no kadm helper left behind"; fi
check "kadmind answers again after SIGCONT" prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/kt4" "$WEB"

# ---- a stopped kadmind ----------------------------------------------------------
kill -TERM "$KADMIND_PID"
for _ in $(seq 1 50); do [ -e "/proc/$KADMIND_PID/exe" ] || break; sleep 0.1; done
t0=$(date +%s%N)
expect_error "stopped kadmind: Unavailable" "^error: unavailable: cannot reach kadmind at $KADMIN" \
  prov "$ADMIN_PRINCIPAL" "$ADMIN_KEYTAB" "$T_DIR/x" "$WEB"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$ms" -lt 15000 ]; then ok "Unavailable within the watchdog (${ms} ms)"; else fail "took ${ms} ms"; fi

# ---- stop ------------------------------------------------------------------------
check "kdc.sh stop" "$KDC_SH" stop "$KDIR"
if [ -e "/proc/$KDC_PID/exe" ]; then fail "krb5kdc still running"; else ok "krb5kdc stopped"; fi
t_finish
