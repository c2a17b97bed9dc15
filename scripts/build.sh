#!/usr/bin/env bash
# Configures and builds sigil into BUILD_DIR (default build/).  Extra
# arguments go to cmake's configure step (e.g. -DSIGIL_SANITIZE=ON).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" -- --no-print-directory
