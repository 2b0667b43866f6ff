#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (ctest). This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
JOBS="${JOBS:-$(nproc)}"
# Tests run one at a time on small machines: several of them use every core themselves.
cd build
ctest --output-on-failure -j"${CTEST_JOBS:-1}"
