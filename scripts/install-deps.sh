#!/usr/bin/env bash
# Installs every Debian 12 package tdxvirt needs to build and test. Idempotent: when all packages are
# present it changes nothing and does not touch the network. Usage: scripts/install-deps.sh [--fuzz]
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libssl-dev            # OpenSSL 3: all crypto, X.509, TLS
  nlohmann-json3-dev    # JSON
  libcli11-dev          # command line
  libcpp-httplib-dev    # HTTP(S) client (PCS/PCCS, Kubernetes API) and test peers
  libboost-dev          # Boost.Beast/Asio: the daemons' HTTP(S) server (src/http)
  libyaml-cpp-dev       # YAML (manifests, policies)
  libpugixml-dev        # libvirt domain XML
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc  # kubelet + KubeVirt hooks
  libprotoc-dev         # tests/proto: parses .proto files at run time to compare with upstream
  libhiredis-dev        # Redis client: the attestation service's shared replay memory
  redis-server          # a real Redis for the replay-store tests
  libxml2-utils         # xmllint: checks domain XML against libvirt's RelaxNG schema
  openssl               # the openssl tool: a webhook test makes its serving certificate with it
  python3               # scripts/abuse.py: the hostile-client probes (CTest abuse_short)
  python3-cryptography python3-jwt  # tests/ita/python_way.py: verifies tokens with the libraries Intel's Python client uses
  systemd-boot-efi      # tests/measure: a real EFI application (linuxx64.efi.stub) for the Authenticode hash
  libgtest-dev libgmock-dev libbenchmark-dev
)
if [[ "${1:-}" == "--fuzz" ]]; then
  packages+=(clang libclang-rt-14-dev)  # libFuzzer
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
