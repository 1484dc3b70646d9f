#!/usr/bin/env bash
# The main job: installs what is missing, builds tdxvirt, and walks through what exists today on
# the simulator: a simulated TDX platform, a Quote Generation Service, an in-TD quote over the QGS,
# its DCAP verification (and a tampered quote refused), then the real Intel quotes in ../shared.
# It grows into the full flow (admission, scheduling, TD launch, token) as those parts land.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target tdxvirt
tdxvirt="$PWD/build/src/tdxvirt"
shared="${TDXVIRT_SHARED_DIR:-../shared}"

work="$(mktemp -d "${TMPDIR:-/tmp}/tdxvirt-quickstart.XXXXXX")"
qgs_pid=""
cleanup() { if [[ -n "$qgs_pid" ]]; then kill "$qgs_pid" 2>/dev/null || true; wait "$qgs_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT INT TERM
step() { printf '\n== %s\n' "$*"; }

step "1. simulated TDX platform (test PKI, collateral) in $work/sim"
"$tdxvirt" sim init --dir "$work/sim"

step "2. Quote Generation Service on unix:$work/qgs.sock"
"$tdxvirt" serve qgs --unix "$work/qgs.sock" --sim-dir "$work/sim" 2>"$work/qgs.log" &
qgs_pid=$!
for _ in $(seq 50); do [[ -S "$work/qgs.sock" ]] && break; sleep 0.1; done
[[ -S "$work/qgs.sock" ]] || { echo "quickstart: step 2 failed: QGS did not start:" >&2; cat "$work/qgs.log" >&2; exit 1; }

step "3. in the TD: a quote for a fresh nonce, through the QGS"
printf '{"mr_config_id":"%s"}\n' "$(printf 'c0ffee%.0s' $(seq 16))" > "$work/td.json"
nonce="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
"$tdxvirt" attest quote --provider qgs --qgs "unix:$work/qgs.sock" --sim-dir "$work/sim" \
  --td "$work/td.json" --report-data "$nonce" --out "$work/quote.bin"

step "4. relying party: DCAP verification under the simulator's root"
"$tdxvirt" quote verify --compact --quote "$work/quote.bin" --collateral "$work/sim/collateral.json" \
  --root "$work/sim/root_ca.pem" > "$work/verify.json"
grep -o '"verified":[a-z]*,"tcb_status":"[A-Za-z]*"' "$work/verify.json"
"$tdxvirt" quote inspect --compact "$work/quote.bin" | grep -o '"mr_config_id":"[0-9a-f]*"'

step "5. the same quote under Intel's root, and with one MRTD bit flipped: both refused"
if "$tdxvirt" quote verify --compact --quote "$work/quote.bin" --collateral "$work/sim/collateral.json" >"$work/intel.json"; then
  echo "quickstart: step 5 failed: simulated evidence verified under Intel's root" >&2; exit 1
fi
grep -o '"error":.*' "$work/intel.json" | cut -c1-200
cp "$work/quote.bin" "$work/tampered.bin"
printf '\x01' | dd of="$work/tampered.bin" bs=1 seek=184 conv=notrunc status=none
if "$tdxvirt" quote verify --compact --quote "$work/tampered.bin" --collateral "$work/sim/collateral.json" \
  --root "$work/sim/root_ca.pem" >"$work/tampered.json"; then
  echo "quickstart: step 5 failed: a tampered quote verified" >&2; exit 1
fi
grep -o '"error":.*' "$work/tampered.json" | cut -c1-200

step "6. a real Intel TDX quote, verified to Intel's root (collateral window 2025-07-19)"
"$tdxvirt" quote verify --compact --quote "$shared/testdata/quotes/tdx-v4-uptodate/quote.bin" \
  --collateral "$shared/testdata/quotes/tdx-v4-uptodate/collateral.json" --at 2025-07-19T10:00:34Z |
  grep -o '"verified":[a-z]*,"tcb_status":"[A-Za-z]*","tcb_date":"[^"]*"'

echo
echo "quickstart: done; artefacts (quote, verification JSON, QGS log) in $work"
