#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (ctest), then smoke-tests the fuzz targets.
# This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
JOBS="${JOBS:-$(nproc)}"
# Tests run one at a time on small machines: several of them use every core themselves.
cd build
ctest --output-on-failure -j"${CTEST_JOBS:-1}"
# Every libFuzzer target of tests/fuzz for 3 s on its seeds (clang ASan + UBSan build in
# build-fuzz/): a crash, sanitizer report, leak or hang fails CI. About 2 minutes on 2 cores.
cd ..
scripts/fuzz.sh all 3
