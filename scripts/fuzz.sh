#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and fuzzes one of them.
# Usage: scripts/fuzz.sh TARGET [SECONDS]
#   TARGET: quote | td_report | collateral | qgs_message | tdvf | service | kubevirt_review |
#           kubevirt_domain | node_host | http | tokenpki | token_chain | eventlog | authenticode |
#           kbs_transfer |
#           all (each target SECONDS in turn)
# Seeds come from ../shared/testdata and tests/*/seeds; the corpus grows in fuzz-corpus/TARGET.
# A crash leaves crash-* / leak-* / timeout-* in the current directory and a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}"
seconds="${2:-60}"
all_targets=(quote td_report collateral qgs_message tdvf service kubevirt_review kubevirt_domain node_host http
  tokenpki token_chain eventlog authenticode kbs_transfer)
if [[ "$target" == "all" ]]; then
  for t in "${all_targets[@]}"; do "$0" "$t" "$seconds"; done
  exit 0
fi
scripts/install-deps.sh --fuzz
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "fuzz_${target}"

corpus="fuzz-corpus/${target}"
max_len=32768
mkdir -p "$corpus"
shared="${TDXVIRT_SHARED_DIR:-../shared}"
case "$target" in
  quote | td_report)
    for q in "$shared"/testdata/quotes/tdx-*/quote.bin; do
      cp -n "$q" "$corpus/seed-$(basename "$(dirname "$q")")" || true
    done ;;
  collateral)
    cp -n "$shared"/testdata/quotes/tdx-v4-spr-e4-pcs-2023/sample_*_response "$corpus/" || true
    cp -n "$shared"/testdata/quotes/tdx-v4-uptodate/collateral.json "$corpus/seed-bundle.json" || true ;;
  qgs_message)
    cp -n tests/qgs/seeds/*.bin "$corpus/" || true ;;
  tdvf)
    cp -n tests/simulator/seeds/* "$corpus/" || true ;;
  service)
    cp -n tests/service/seeds/* "$corpus/" || true ;;
  kubevirt_review)
    cp -n tests/kubevirt/seeds/admission_review.json examples/*.yaml "$corpus/" || true
    for m in "$shared"/testdata/kubevirt/examples/*.yaml; do cp -n "$m" "$corpus/" || true; done ;;
  kubevirt_domain)
    cp -n tests/kubevirt/seeds/small_domain.xml "$shared"/testdata/libvirt-schemas/sample-tdx-valid.xml \
      "$shared"/testdata/kubevirt/domain-xml/*.xml "$corpus/" || true ;;
  node_host)
    cp -n tests/node/seeds/* "$shared"/testdata/kubevirt/domcapabilities/domcapabilities_tdx.xml "$corpus/" || true ;;
  http)
    cp -n tests/http/seeds/* "$corpus/" || true ;;
  tokenpki)
    cp -n tests/tokenpki/seeds/* "$corpus/" || true ;;
  token_chain)
    cp -n tests/service/token_chain_seeds/* "$corpus/" || true ;;
  kbs_transfer)
    cp -n tests/kbs/seeds/* "$corpus/" || true ;;
  eventlog)
    max_len=65536  # a real log up to its fill (the largest here is 50 KiB)
    cp -n tests/eventlog/seeds/*.bin "$corpus/" || true
    for l in "$shared"/testdata/eventlogs/*/ccel.bin; do
      cp -n "$l" "$corpus/seed-$(basename "$(dirname "$l")")" || true
    done ;;
  authenticode)
    cp -n tests/measure/seeds/*.bin "$corpus/" || true ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
if [[ "$target" == "td_report" ]]; then
  # A TDREPORT seed: report type TDX, the rest zero.
  printf '\x81' > "$corpus/seed-tdreport"; head -c 1023 /dev/zero >> "$corpus/seed-tdreport"
fi
"build-fuzz/fuzz/fuzz_${target}" -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 "$corpus"
