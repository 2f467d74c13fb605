#!/usr/bin/env bash
# Installs every Debian package Tappa needs to build, test and run.
# Idempotent: when everything is present it prints nothing and returns fast.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  clang libclang-rt-14-dev clang-format
  libgrpc++-dev libgrpc-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libhiredis-dev libevent-dev libjemalloc-dev
  libabsl-dev
  prometheus-cpp-dev
  libyaml-cpp-dev
  libre2-dev
  libssl-dev
  nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-tools
  prometheus
  openssl
  python3  # loadtests/run's report and its test
)

# Node.js and npm (for buf) are usually present; install Debian's only when absent,
# since a vendor-installed nodejs conflicts with Debian's npm package.
if ! command -v npm >/dev/null 2>&1; then PACKAGES+=(nodejs npm); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# buf (protobuf linter) comes from npm into a project-local tools directory.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
if [[ ! -x "$TOOLS/node_modules/.bin/buf" ]]; then
  echo "setup: installing @bufbuild/buf into .tools/" >&2
  mkdir -p "$TOOLS"
  (cd "$TOOLS" && npm install --silent --no-audit --no-fund --prefix "$TOOLS" @bufbuild/buf >/dev/null 2>&1) \
    || echo "setup: warning: could not install @bufbuild/buf; buf lint will be skipped" >&2
fi
