#!/usr/bin/env bash
# The demo: installs dependencies, builds, creates a CA in a state dir and
# mints a TLS volume in every format, then shows what it made.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash scripts/setup.sh >/dev/null
BUILD_DIR="$ROOT/build" bash scripts/build.sh >/dev/null
exec bash "$ROOT/scripts/demo-run.sh" "$ROOT/build"
