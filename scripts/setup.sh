#!/usr/bin/env bash
# Installs every Debian package pizza needs, then configures and builds build/ in Release.
# Idempotent: a second run installs nothing and only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake g++ make ninja-build ccache pkg-config
  libtorch-dev libcurl4-openssl-dev libsimdjson-dev
  libcli11-dev libspdlog-dev catch2 libpcre2-dev libopenblas0-pthread
  libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
  chromium jq libblas3 python3-jsonschema libicu-dev libsentencepiece-dev
  clang-15 libfuzzer-15-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_TYPE="${BUILD_TYPE:-Release}"
JOBS="${JOBS:-$(nproc)}"
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE"
fi
cmake --build build -j"$JOBS"
