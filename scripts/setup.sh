#!/usr/bin/env bash
# Installs every Debian package that sigil's build, tests, benchmarks and
# demo need.  Idempotent: does nothing when everything is present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libssl-dev openssl
  libkrb5-dev krb5-kdc krb5-admin-server krb5-user
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotobuf-dev
  libcurl4-openssl-dev libjansson-dev libyaml-dev libmicrohttpd-dev libcmocka-dev
  golang-cfssl python3 python3-grpcio python3-protobuf openjdk-17-jdk-headless
  util-linux procps iproute2 curl
  python3-yaml  # deploy/ checks (tests/integration/test_deploy.py)
  python3-prometheus-client  # metrics tests: independent exposition parser
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
