#!/usr/bin/env bash
# A throwaway MIT Kerberos realm for tests, confined to one directory.
#
#   kdc.sh start DIR [REALM]  create the realm in DIR (default SIGIL.TEST), start
#                             krb5kdc and kadmind on free 127.0.0.1 ports, wait
#                             until both answer, write DIR/env for tests to source
#   kdc.sh stop DIR           stop exactly the daemons that `start DIR` started
#
# DIR/env sets KRB5_CONFIG, REALM, KDC, KADMIN, ADMIN_PRINCIPAL, ADMIN_KEYTAB
# (kadm5.acl "*e": everything incl. key extraction), NOE_PRINCIPAL,
# NOE_KEYTAB (kadm5.acl "*": everything except extraction), KDC_PID,
# KADMIND_PID, KDC_DIR.  Nothing outside DIR is read or written: the
# daemons get KRB5_CONFIG and KRB5_KDC_PROFILE pointing into DIR.
set -euo pipefail

die() { echo "kdc.sh: $*" >&2; exit 1; }
usage() { echo "usage: $0 start DIR [REALM] | stop DIR" >&2; exit 2; }

# ---- ports ------------------------------------------------------------------
# krb5kdc and kadmind set SO_REUSEPORT, so starting one on a port that
# another process already uses succeeds and silently shares the traffic:
# check with ss first, and check the owners again once they run.
PICKED=" "
port_in_use() { ss -Hltun "sport = :$1" | grep -q .; }
pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( (RANDOM % 10000) + 20000 ))
    case "$PICKED" in *" $p "*) continue ;; esac
    if ! port_in_use "$p"; then PICKED="$PICKED$p "; echo "$p"; return 0; fi
  done
  return 1
}

# The pids listening on PORT (TCP and UDP), one per line.
port_owners() { ss -Hltunp "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }

# True when every listener on PORT is PID.
port_owned_by() {
  local port=$1 pid=$2 owners
  owners=$(port_owners "$port")
  [ -n "$owners" ] && [ "$owners" = "$pid" ]
}

# ---- process control ---------------------------------------------------------
# A pid file names our daemon only while /proc/PID/exe is still that binary.
pid_is() {
  local pid=$1 bin=$2 exe
  [ -n "$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$(basename "$exe")" = "$bin" ]
}

stop_one() {
  local dir=$1 name=$2 bin=$3 pid
  [ -f "$dir/$name.pid" ] || return 0
  pid=$(cat "$dir/$name.pid")
  if pid_is "$pid" "$bin"; then
    kill -CONT "$pid" 2>/dev/null || true   # a test may have stopped it with SIGSTOP
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      pid_is "$pid" "$bin" || break
      sleep 0.1
    done
    if pid_is "$pid" "$bin"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$dir/$name.pid"
}

cmd_stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  stop_one "$dir" kadmind kadmind
  stop_one "$dir" kdc krb5kdc
}

# ---- start ------------------------------------------------------------------
cmd_start() {
  local dir=$1 realm=$2
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ ! -e "$dir/principal" ] || die "$dir already holds a realm (stop it and use a fresh directory)"
  case "$realm" in *[!A-Z0-9.-]*|'') die "bad realm $realm" ;; esac
  for b in krb5kdc kadmind kdb5_util kadmin.local kinit kadmin ss; do
    command -v "$b" >/dev/null || die "$b not found (apt-get install krb5-kdc krb5-admin-server krb5-user iproute2)"
  done

  # Whatever goes wrong from here, leave no daemon behind.
  trap 'rc=$?; if [ $rc -ne 0 ]; then echo "kdc.sh: start failed; logs:" >&2; tail -n 20 "$dir"/*.log >&2 2>/dev/null || true; cmd_stop "$dir"; fi' EXIT

  local kdc_port kadmin_port kpasswd_port
  kdc_port=$(pick_port) && kadmin_port=$(pick_port) && kpasswd_port=$(pick_port) ||
    die "no free ports"

  export KRB5_CONFIG="$dir/krb5.conf"
  export KRB5_KDC_PROFILE="$dir/kdc.conf"
  export KRB5CCNAME="FILE:$dir/ccache"
  unset KRB5_KTNAME KRB5_CLIENT_KTNAME KRB5_TRACE || true

  cat > "$dir/krb5.conf" <<EOF
[libdefaults]
	default_realm = $realm
	dns_lookup_kdc = false
	dns_lookup_realm = false
	rdns = false
	dns_canonicalize_hostname = false
	udp_preference_limit = 1

[realms]
	$realm = {
		kdc = 127.0.0.1:$kdc_port
		admin_server = 127.0.0.1:$kadmin_port
		kpasswd_server = 127.0.0.1:$kpasswd_port
	}
EOF
  cat > "$dir/kdc.conf" <<EOF
[kdcdefaults]
	kdc_listen = 127.0.0.1:$kdc_port
	kdc_tcp_listen = 127.0.0.1:$kdc_port

[realms]
	$realm = {
		database_name = $dir/principal
		key_stash_file = $dir/stash
		acl_file = $dir/kadm5.acl
		kdc_listen = 127.0.0.1:$kdc_port
		kdc_tcp_listen = 127.0.0.1:$kdc_port
		kadmind_listen = 127.0.0.1:$kadmin_port
		kpasswd_listen = 127.0.0.1:$kpasswd_port
		max_life = 1h
		supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
		default_principal_flags = +preauth
	}

[logging]
	kdc = FILE:$dir/kdc.log
	admin_server = FILE:$dir/kadmind.log
	default = FILE:$dir/krb5lib.log
EOF
  # The extract privilege 'e' is not part of '*' (kadm5.acl(5)).
  cat > "$dir/kadm5.acl" <<EOF
sigil/admin@$realm *e
sigil/noextract@$realm *
EOF
  chmod 0600 "$dir/kdc.conf" "$dir/kadm5.acl"

  # A random master password: the realm lives only as long as the test.
  local mpw
  mpw=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  kdb5_util -r "$realm" create -s -P "$mpw" > "$dir/kdb5_util.log" 2>&1 ||
    die "kdb5_util create failed"
  unset mpw

  local p
  for p in sigil/admin sigil/noextract; do
    kadmin.local -r "$realm" -q "addprinc -randkey $p@$realm" >> "$dir/kadmin.local.log" 2>&1 ||
      die "addprinc $p failed"
  done
  kadmin.local -r "$realm" -q "ktadd -k $dir/admin.keytab sigil/admin@$realm" >> "$dir/kadmin.local.log" 2>&1 ||
    die "ktadd sigil/admin failed"
  kadmin.local -r "$realm" -q "ktadd -k $dir/noe.keytab sigil/noextract@$realm" >> "$dir/kadmin.local.log" 2>&1 ||
    die "ktadd sigil/noextract failed"
  chmod 0600 "$dir/admin.keytab" "$dir/noe.keytab"

  # Foreground daemons, backgrounded here: their pids are ours to stop.
  # Output goes to files so that no caller waits on an inherited pipe.
  krb5kdc -n -r "$realm" < /dev/null >> "$dir/kdc.out" 2>&1 &
  echo $! > "$dir/kdc.pid"
  kadmind -nofork -r "$realm" < /dev/null >> "$dir/kadmind.out" 2>&1 &
  echo $! > "$dir/kadmind.pid"
  local kdc_pid kadmind_pid
  kdc_pid=$(cat "$dir/kdc.pid")
  kadmind_pid=$(cat "$dir/kadmind.pid")

  # Wait until the KDC issues a ticket and kadmind answers a query.
  local ok=
  for _ in $(seq 1 100); do
    pid_is "$kdc_pid" krb5kdc || die "krb5kdc exited"
    pid_is "$kadmind_pid" kadmind || die "kadmind exited"
    if port_in_use "$kdc_port" && port_in_use "$kadmin_port" &&
       kinit -k -t "$dir/admin.keytab" "sigil/admin@$realm" >/dev/null 2>&1 &&
       timeout 10 kadmin -r "$realm" -k -t "$dir/admin.keytab" -p "sigil/admin@$realm" \
         -q "getprinc sigil/admin@$realm" > "$dir/kadmin-probe.log" 2>&1 &&
       grep -q "^Principal: sigil/admin@$realm" "$dir/kadmin-probe.log"; then
      ok=1
      break
    fi
    sleep 0.1
  done
  [ -n "$ok" ] || die "krb5kdc/kadmind did not answer within 10 s"
  kdestroy >/dev/null 2>&1 || true

  # Nobody else shares our ports (SO_REUSEPORT, see above).
  port_owned_by "$kdc_port" "$kdc_pid" || die "port $kdc_port is shared: $(port_owners "$kdc_port" | tr '\n' ' ')"
  port_owned_by "$kadmin_port" "$kadmind_pid" || die "port $kadmin_port is shared: $(port_owners "$kadmin_port" | tr '\n' ' ')"

  cat > "$dir/env.tmp" <<EOF
KDC_DIR=$dir
KRB5_CONFIG=$dir/krb5.conf
REALM=$realm
KDC=127.0.0.1:$kdc_port
KADMIN=127.0.0.1:$kadmin_port
ADMIN_PRINCIPAL=sigil/admin@$realm
ADMIN_KEYTAB=$dir/admin.keytab
NOE_PRINCIPAL=sigil/noextract@$realm
NOE_KEYTAB=$dir/noe.keytab
KDC_PID=$kdc_pid
KADMIND_PID=$kadmind_pid
EOF
  mv "$dir/env.tmp" "$dir/env"
  trap - EXIT
  echo "kdc.sh: realm $realm up in $dir (kdc 127.0.0.1:$kdc_port, kadmind 127.0.0.1:$kadmin_port)"
}

[ $# -ge 2 ] || usage
case "$1" in
  start) [ $# -le 3 ] || usage; cmd_start "$2" "${3:-SIGIL.TEST}" ;;
  stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
  *) usage ;;
esac
