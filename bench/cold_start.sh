#!/usr/bin/env bash
# Cold start of one-shot tdxvirt commands against `openssl version` as the yardstick.
#   bench/cold_start.sh [TDXVIRT] [ROUNDS]      (or TDXVIRT_BIN=..., ROUNDS=... in the environment)
# TDXVIRT defaults to build-release/src/tdxvirt, ROUNDS to 41. Each round runs the yardstick and
# every command once, in an order that alternates between rounds (drift and a busy machine hit both
# sides alike); the table gives medians of wall time and ratio = median(command) / median(openssl).
# Goals (issue 17): --version <= 1.3 x, quote verify <= 2.0 x. Exit 1 when a goal fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-${TDXVIRT_BIN:-build-release/src/tdxvirt}}
rounds=${2:-${ROUNDS:-41}}
testdata=${TDXVIRT_TESTDATA:-$(cd .. && pwd)/shared/testdata}
quote=$testdata/quotes/tdx-v4-uptodate/quote.bin
collateral=$testdata/quotes/tdx-v4-uptodate/collateral.json
[[ -x $bin ]] || { echo "cold_start: $bin is not an executable (build it: cmake --build --preset release)" >&2; exit 2; }
[[ -r $quote && -r $collateral ]] || { echo "cold_start: no labeled quote under $testdata (set TDXVIRT_TESTDATA)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "cold_start: openssl not found" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" sim init --dir "$work/sim" >/dev/null

cmds=(
  "openssl version"
  "$bin --version"
  "$bin quote inspect --quote $quote"
  "$bin quote verify --quote $quote --collateral $collateral --at 2025-07-19T10:00:34Z"
  "$bin attest quote --provider sim --sim-dir $work/sim --report-data 00 --out $work/q.bin"
)
labels=("openssl version" "tdxvirt --version" "tdxvirt quote inspect" "tdxvirt quote verify (v4)"
        "tdxvirt attest quote --provider sim")
# Every command must succeed before timing it (a failing command would be fast for nothing).
for c in "${cmds[@]}"; do
  $c >/dev/null 2>"$work/err" || { echo "cold_start: failed: $c" >&2; cat "$work/err" >&2; exit 2; }
done

declare -A samples
n=${#cmds[@]}
for ((r = 0; r < rounds; r++)); do
  for ((k = 0; k < n; k++)); do
    if ((r % 2)); then i=$((n - 1 - k)); else i=$k; fi
    t0=$EPOCHREALTIME
    ${cmds[i]} >/dev/null 2>&1
    t1=$EPOCHREALTIME
    samples[$i]+="$(( (${t1/./} - ${t0/./}) )) "
  done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
declare -a med
for ((i = 0; i < n; i++)); do med[i]=$(echo "${samples[$i]}" | median); done

echo "cold start, $rounds paired rounds, medians of wall time; $(uname -m), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binary: $bin ($(stat -c %s "$bin") bytes)"
printf '%-40s %10s %8s\n' command "median µs" ratio
status=0
goals=
for ((i = 0; i < n; i++)); do
  ratio=$(awk -v a="${med[i]}" -v b="${med[0]}" 'BEGIN {printf "%.2f", a / b}')
  printf '%-40s %10s %8s\n' "${labels[i]}" "${med[i]}" "$ratio"
  case $i in
    1) goal=1.3 ;;
    3) goal=2.0 ;;
    *) goal= ;;
  esac
  if [[ -n $goal ]]; then
    if awk -v r="$ratio" -v g="$goal" 'BEGIN {exit !(r <= g)}'; then verdict=ok; else verdict=FAIL; status=1; fi
    goals+="  ${labels[i]}: $ratio x (goal <= $goal x) $verdict"$'\n'
  fi
done
echo "goals:"
printf '%s' "$goals"
exit $status
