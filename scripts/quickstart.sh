#!/usr/bin/env bash
# The main job: installs what is missing, builds tdxvirt, and runs `tdxvirt quickstart`: the whole
# flow on the simulator (admission, placement on a node with a free TDX key, the TD's libvirt
# domain, boot, quote through the QGS, token, the relying party's check, refused bad TDs).
# Options are passed on: scripts/quickstart.sh [--dir DIR] [--keys N] [--json] [--verbose] ...
# Everything runs in one process on loopback and stops with it (also on Ctrl-C). Builds the release
# preset (build-release/, no debug info); scripts/test.sh keeps its RelWithDebInfo build in build/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
extra=()
if [[ -n "${TDXVIRT_SHARED_DIR:-}" ]]; then extra+=("-DTDXVIRT_SHARED_DIR=$TDXVIRT_SHARED_DIR"); fi
cmake --preset release "${extra[@]}" >/dev/null
cmake --build --preset release --target tdxvirt  # and tdxvirt-daemon, which runs quickstart
exec build-release/src/tdxvirt quickstart "$@"
