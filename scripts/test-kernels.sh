#!/usr/bin/env bash
# Runs pizza's numeric tests once per OpenBLAS kernel this CPU can execute, with 1 and 2 threads,
# and prints a pass/fail report per kernel and thread count; exits 1 if any test failed.
# Not part of CI (scripts/test.sh): 9 kernels x 2 thread counts take about 35 minutes on 2 cores.
#
# Needs an existing build/ (scripts/setup.sh makes one); the script only rebuilds what changed.
#
# The numeric tests are every ctest test whose result goes through BLAS matrix products:
#   model:*, attribution:*, local_perturbation:*, perturbation:*, serve:*
#   cli: the thread-count, generate, batch/shard/resume byte-identity and pizza-api-vs-local tests
# (blas, batch, report, diff, tokenizer, api, hub, checkpoint, util multiply no matrices).
#
# Kernel: OpenBLAS (a DYNAMIC_ARCH build) reads OPENBLAS_CORETYPE when it loads. The test
# executables never re-exec, and pizza's start-up re-exec never overrides a value the user set,
# so exporting OPENBLAS_CORETYPE pins the kernel of the test processes and of every `pizza` they
# spawn. (An unknown name is not rejected by OpenBLAS 0.3.21 but mapped to its last core, so
# each pass first checks that `pizza local` reports the core it asked for.)
#
# Threads: pizza's default --threads is the number of CPUs in the process's affinity mask
# (lib/model/model.cpp), and OpenBLAS and libgomp size their default pools the same way, so each
# pass runs under `taskset -c <first N allowed CPUs>`; OMP_NUM_THREADS and OPENBLAS_NUM_THREADS
# are set to N as well for code that never calls apply_runtime. Tests that pass an explicit
# thread count (--threads 3, apply_runtime({..., 2})) keep it: they test that count. Each pass
# checks that `pizza local` reports `"threads": N`.
#
# Which kernels: from /proc/cpuinfo's flags, one OpenBLAS core per SIMD generation this CPU can
# execute: Prescott (SSE3), Core2 (SSSE3), Nehalem (SSE4.2), Barcelona (AMD SSE4a),
# Sandybridge (AVX), Haswell and Zen (AVX2+FMA; Zen is Haswell's kernels with AMD blocking),
# SkylakeX (AVX-512 F/CD/BW/DQ/VL), Cooperlake (SkylakeX + AVX512_BF16). The Bulldozer family
# needs FMA4/XOP and is run only where the CPU has them.
#
# Environment: KERNELS="Haswell Zen" and THREADS="1" restrict the passes; TESTS=<ctest regex>
# replaces the test selection; JOBS (default 2) is the rebuild's parallelism. Logs go to
# build/test-kernels/<kernel>-t<N>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f build/CMakeCache.txt ]; then
  echo "test-kernels: no build/ here; run scripts/setup.sh first" >&2
  exit 2
fi
cmake --build build -j"${JOBS:-2}" >/dev/null

flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
runnable=()
has sse2 pni && runnable+=(Prescott)
has ssse3 && runnable+=(Core2)
has sse4_2 popcnt && runnable+=(Nehalem)
has sse4a 3dnowprefetch && runnable+=(Barcelona)
has avx && runnable+=(Sandybridge)
has fma4 xop && runnable+=(Bulldozer)
has avx2 fma && runnable+=(Haswell Zen)
has avx512f avx512cd avx512bw avx512dq avx512vl && runnable+=(SkylakeX)
has avx512f avx512cd avx512bw avx512dq avx512vl avx512_bf16 && runnable+=(Cooperlake)
read -r -a kernels <<<"${KERNELS:-${runnable[*]}}"
read -r -a thread_counts <<<"${THREADS:-1 2}"

# ctest names are "<folder>:<TEST_CASE name>" (tests/CMakeLists.txt's TEST_PREFIX, trimmed).
cli_numeric='cli:(cli: (local gradient attribution|generate|batch output|shard outputs|batch killed|a batch record)|api: (teacher-forced occlusion|free-running prob-diff, cosine|with 20% faults))'
selection="${TESTS:-^(model|attribution|local_perturbation|perturbation|serve):|^${cli_numeric}}"

mapfile -t allowed < <(taskset -pc $$ | sed 's/.*: //' | tr ',' '\n' |
  awk -F- '{ if (NF == 2) for (i = $1; i <= $2; ++i) print i; else print $1 }')
logs=build/test-kernels
mkdir -p "$logs"
report=()
failed_passes=0
for kernel in "${kernels[@]}"; do
  for n in "${thread_counts[@]}"; do
    label="$(printf '%-12s %d thread(s)' "$kernel" "$n")"
    if ((n > ${#allowed[@]})); then
      report+=("$label  SKIPPED (only ${#allowed[@]} CPUs allowed)")
      continue
    fi
    cpus="$(IFS=,; echo "${allowed[*]:0:n}")"
    run() { env OPENBLAS_CORETYPE="$kernel" OMP_NUM_THREADS="$n" OPENBLAS_NUM_THREADS="$n" taskset -c "$cpus" "$@"; }
    log="$logs/$kernel-t$n.log"
    run_info="$(run build/pizza local --model ../shared/models/stories260K -p "Once upon" -n 1 -q --format json |
      jq -c '.run | {threads, blas}')"
    if ! jq -e --arg core "core $kernel)" --argjson n "$n" '.threads == $n and (.blas | endswith($core))' \
      <<<"$run_info" >/dev/null; then
      report+=("$label  FAILED: pizza runs with $run_info")
      failed_passes=$((failed_passes + 1))
      continue
    fi
    echo "test-kernels: $label ..." >&2
    if run ctest --test-dir build -R "$selection" -j1 --output-on-failure >"$log" 2>&1; then
      status=ok
    else
      status=FAILED
      failed_passes=$((failed_passes + 1))
    fi
    summary="$(grep -E 'tests passed, [0-9]+ tests failed out of' "$log" || echo "no ctest summary")"
    report+=("$label  $status  $summary")
    if [ "$status" != ok ]; then
      while read -r line; do report+=("      $line"); done < <(grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess|Exception|Not Run)' "$log" || true)
    fi
  done
done

echo
echo "OpenBLAS kernels x threads ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); logs in $logs/)"
printf '%s\n' "${report[@]}"
if ((failed_passes)); then
  echo "test-kernels: $failed_passes pass(es) failed" >&2
  exit 1
fi
