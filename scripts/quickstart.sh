#!/usr/bin/env bash
# The main job: installs what is missing, builds tdxvirt, and runs the local walk-through.
# Today it inspects the real TDX quotes in ../shared/testdata; it grows into the full simulated
# flow (admission, scheduling, TD launch, attestation) as those parts land (see docs/).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target tdxvirt
shared="${TDXVIRT_SHARED_DIR:-../shared}"
for q in "$shared"/testdata/quotes/tdx-*/quote.bin; do
  echo "== $q"
  build/src/tdxvirt quote inspect --compact "$q"
done
