#!/usr/bin/env bash
# Probes every tdxvirt daemon as a hostile client would, on loopback only, and prints a table:
# slowloris, bare TLS connects, a chunked body over the limit, a header flood, 1,000 concurrent
# connections and pipelining against each HTTP daemon (attestation service, webhook, node agent,
# simulated PCS); half-sent requests against the QGS. Every probe is bounded in count and time.
# Each daemon must then stop cleanly on SIGTERM.
# Usage: scripts/abuse.sh [--short] [--bin PATH]   (--short: the CI form, smaller and faster)
set -euo pipefail
cd "$(dirname "$0")/.."

short=""
bin=build/src/tdxvirt
while (($#)); do
  case "$1" in
    --short) short=--short ;;
    --bin) bin=$2; shift ;;
    *) echo "usage: scripts/abuse.sh [--short] [--bin PATH]" >&2; exit 2 ;;
  esac
  shift
done
if [[ ! -x "$bin" ]]; then
  echo "abuse: $bin not built; run: cmake --build --preset default --target tdxvirt" >&2
  exit 2
fi
bin=$(readlink -f "$bin")
# Under AddressSanitizer, freed memory waits in a quarantine (256 MiB by default) and would count
# as the daemon's peak RSS; keep it small so the memory probes measure the daemon. No effect on
# other builds.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"

work=$(mktemp -d /tmp/tdxvirt-abuse.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "${ABUSE_KEEP:-}" ]]; then echo "abuse: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {  # PORT PID
  for _ in $(seq 1 200); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "abuse: daemon $2 exited at start" >&2; return 1; }
    sleep 0.05
  done
  echo "abuse: nothing listens on $1" >&2
  return 1
}

# Shared material: a simulated platform, a token signing key, a loopback TLS identity.
"$bin" sim init --dir "$work/sim" >/dev/null
"$bin" sim report --dir "$work/sim" --out "$work/report.bin" >/dev/null
"$bin" serve attestation --init-signing-key --signing-key "$work/sign.key" \
  --signing-chain "$work/sign.pem" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -days 1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
echo "abuse-key" >"$work/api-keys"

targets=()
start() {  # NAME LOG -- COMMAND...
  local name=$1 log=$2
  shift 3
  "$@" 2>"$log" &
  pids+=($!)
  last_pid=$!
}

p=$(free_port)
start attestation "$work/attestation.log" -- "$bin" serve attestation --listen "127.0.0.1:$p" \
  --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" --signing-key "$work/sign.key" \
  --signing-chain "$work/sign.pem" --collateral "$work/sim/collateral.json" \
  --root "$work/sim/root_ca.pem" --api-key-file "$work/api-keys"
wait_port "$p" "$last_pid"
targets+=("{\"name\":\"attestation\",\"port\":$p,\"pid\":$last_pid,\"tls\":true,\"probe\":\"/healthz\",\"post\":\"/appraisal/v2/attest\",\"header_timeout\":10}")

p=$(free_port)
start webhook "$work/webhook.log" -- "$bin" serve webhook --listen "127.0.0.1:$p" \
  --tls-cert "$work/tls.crt" --tls-key "$work/tls.key"
wait_port "$p" "$last_pid"
targets+=("{\"name\":\"webhook\",\"port\":$p,\"pid\":$last_pid,\"tls\":true,\"probe\":\"/healthz\",\"post\":\"/mutate\",\"header_timeout\":10}")

"$bin" node sim-host --root "$work/host" --keys 8 >/dev/null
mkdir -p "$work/plugins"
start sim-kubelet "$work/kubelet.log" -- sh -c 'exec "$0" node sim-kubelet --dir "$1" >"$2"' "$bin" "$work/plugins" "$work/kubelet.out"
p=$(free_port)
start node-agent "$work/node.log" -- "$bin" serve node-agent --host-root "$work/host" \
  --device-plugin-dir "$work/plugins" --listen "127.0.0.1:$p" --kubevirt-version 1.8
wait_port "$p" "$last_pid"
targets+=("{\"name\":\"node-agent\",\"port\":$p,\"pid\":$last_pid,\"probe\":\"/healthz\",\"post\":\"/healthz\",\"header_timeout\":10}")

p=$(free_port)
start sim-pcs "$work/pcs.log" -- "$bin" serve sim-pcs --sim "$work/sim" --listen "127.0.0.1:$p"
wait_port "$p" "$last_pid"
targets+=("{\"name\":\"sim-pcs\",\"port\":$p,\"pid\":$last_pid,\"probe\":\"/sgx/certification/v4/rootcacrl\",\"post\":\"/sgx/certification/v4/rootcacrl\",\"header_timeout\":10}")

p=$(free_port)
start qgs "$work/qgs.log" -- "$bin" serve qgs --tcp "127.0.0.1:$p" --sim-dir "$work/sim"
wait_port "$p" "$last_pid"
targets+=("{\"name\":\"qgs\",\"port\":$p,\"pid\":$last_pid,\"qgs\":true,\"bin\":\"$bin\",\"report\":\"$work/report.bin\",\"header_timeout\":10}")

(IFS=,; echo "[${targets[*]}]") >"$work/targets.json"
status=0
python3 scripts/abuse.py "$work/targets.json" $short || status=1

# Clean SIGTERM: every daemon exits 0 within its drain deadline.
for i in "${!pids[@]}"; do
  p=${pids[$i]}
  kill -TERM "$p" 2>/dev/null || true
  rc=0
  timeout 20 tail --pid="$p" -f /dev/null || rc=$?
  wait "$p" || rc=$?
  if ((rc != 0)); then
    echo "abuse: daemon $p did not stop cleanly on SIGTERM (exit $rc)" >&2
    status=1
  fi
done
pids=()
if ((status != 0)); then
  for f in "$work"/*.log; do echo "--- $f (last lines)"; tail -5 "$f"; done >&2
fi
exit $status
