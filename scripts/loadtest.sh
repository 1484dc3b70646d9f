#!/bin/sh
# Attestation service load test: attest requests/s and p50/p99 over loopback next to the raw
# quote-verify and PS384-sign rates measured in the same run (see docs/service.md).
# Usage: scripts/loadtest.sh [BUILD_DIR] [SECONDS] [CONNECTIONS]
set -eu
build=${1:-build}
seconds=${2:-10}
connections=${3:-4}
bin="$build/bench/bench_service"
if [ ! -x "$bin" ]; then
  echo "loadtest: $bin not built; run: cmake --build $build --target bench_service" >&2
  exit 2
fi
exec "$bin" --benchmark_min_time=1 --load_seconds="$seconds" --load_connections="$connections"
