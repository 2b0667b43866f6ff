#!/usr/bin/env bash
# Builds pizza with AddressSanitizer + UndefinedBehaviorSanitizer (CMAKE_BUILD_TYPE=Sanitize,
# g++) into build-sanitize/ and runs the test suite there. Not part of CI: the build alone takes
# about half an hour on 2 cores (see README, "Reliability under bad input").
#
#   scripts/test-sanitize.sh                   build everything, run every test
#   scripts/test-sanitize.sh -R 'tokenizer:'   arguments go to ctest (here: one folder)
#
# Every sanitizer report is fatal (-fno-sanitize-recover) and exits with status 86, so a test
# that expects pizza's exit 1 cannot mistake a sanitizer abort for a clean error.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"
if [ ! -f build-sanitize/CMakeCache.txt ]; then
  cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Sanitize
fi
cmake --build build-sanitize -j"$JOBS"
export ASAN_OPTIONS="exitcode=86:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="exitcode=86:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
cd build-sanitize
# Excluded: the allocator test reads glibc's malloc statistics (mallinfo2), which ASan's own
# allocator leaves at zero: it tests glibc, and cannot pass or fail meaningfully here.
ctest --output-on-failure -j"${CTEST_JOBS:-1}" -E 'keep_freed_tensor_memory' "$@"
