# Shared helpers for integration tests (sourced).
set -euo pipefail

: "${SIGIL_BUILD_DIR:?SIGIL_BUILD_DIR must point at the build directory}"
: "${SIGIL_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
SIGILCTL="$SIGIL_BUILD_DIR/sigilctl"

T_PASS=0
T_FAIL=0
T_PIDS=()
T_DIR=$(mktemp -d /tmp/sigil-it-XXXXXX)

t_cleanup() {
  local pid
  for pid in "${T_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$T_DIR"
}
trap t_cleanup EXIT

ok()   { T_PASS=$((T_PASS + 1)); echo "ok   - $*"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "FAIL - $*"; }

# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() {
  local desc=$1; shift
  if "$@" >"$T_DIR/.out" 2>&1; then ok "$desc"; else fail "$desc"; sed 's/^/     /' "$T_DIR/.out" | tail -20; fi
}
# check_fails DESCRIPTION COMMAND...: passes when the command fails.
check_fails() {
  local desc=$1; shift
  if "$@" >"$T_DIR/.out" 2>&1; then fail "$desc (unexpectedly succeeded)"; else ok "$desc"; fi
}
# check_grep DESCRIPTION PATTERN FILE
check_grep() {
  if grep -qE -- "$2" "$3"; then ok "$1"; else fail "$1: /$2/ not in $3"; sed 's/^/     /' "$3" | tail -30; fi
}

# A TCP port on 127.0.0.1 that no socket uses.  Below the kernel's
# ephemeral range (32768+), so an outgoing connection cannot take it
# between this check and the bind.
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$(( (RANDOM % 12000) + 20000 ))
    if ! ss -Htan "sport = :$p" | grep -q .; then echo "$p"; return 0; fi
  done
  return 1
}

# wait_port PORT [PID]: until something listens on PORT; gives up early
# when PID (the process expected to listen) has exited.
wait_port() {
  local port=$1 pid=${2:-}
  for _ in $(seq 1 100); do
    if ss -Hltn "sport = :$port" | grep -q .; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}

t_finish() {
  echo "$T_PASS passed, $T_FAIL failed"
  [ "$T_FAIL" -eq 0 ]
}

# fake_kube_tls CA SRV: TLS identity for the fake apiserver
# (tests/fakes/kube_apiserver.py): a throwaway CA (CA.key, CA.crt; what
# kubeconfigs name as certificate-authority) and a serving certificate
# (SRV.key, SRV.crt) for 127.0.0.1 and localhost signed by it.
fake_kube_tls() {
  local ca=$1 srv=$2
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$ca.key" \
    -out "$ca.crt" -days 1 -subj /CN=fake-kubernetes-ca 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$srv.key" \
    -out "$srv.csr" -subj /CN=kube-apiserver 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$srv.ext"
  openssl x509 -req -in "$srv.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial -days 1 \
    -extfile "$srv.ext" -out "$srv.crt" 2>/dev/null
}
