#!/usr/bin/env bash
# Installs dependencies, builds and runs every test. Usage: scripts/test.sh [--asan]
#   (default)  the RelWithDebInfo build in build/
#   --asan     the AddressSanitizer + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

preset=default
if [[ "${1:-}" == "--asan" ]]; then preset=asan; fi

scripts/install-deps.sh
extra=()
if [[ -n "${TDXVIRT_SHARED_DIR:-}" ]]; then extra+=("-DTDXVIRT_SHARED_DIR=$TDXVIRT_SHARED_DIR"); fi
cmake --preset "$preset" "${extra[@]}" >/dev/null
cmake --build --preset "$preset"
ctest --preset "$preset"
