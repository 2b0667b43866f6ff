#!/usr/bin/env bash
# Loading against the memory-bandwidth bound (issue #16 item 2): writes a random-weight
# 1.1B-shape Llama in bfloat16 (2.2 GB) to a temporary directory, loads it as float32 (warm:
# the file in the page cache; best of 3) with 1 and 2 threads, prints load GB/s ((bytes read +
# bytes written) / s) next to memcpy GB/s (counted the same way), then deletes the checkpoint.
# Usage: scripts/bench/load.sh [build-dir]
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
build="${1:-$root/build}"
bench_build bench_model_load
bench_tmpdir
dir="$bench_tmp"
"$build/bench_model_load" make-checkpoint "$dir"
echo "CPU: $(bench_cpu); 1.1B bfloat16 -> float32;" \
     "goal <= 1.5 s"
printf '%-8s %8s %10s %12s %10s %10s\n' threads "load s" "load GB/s" "memcpy GB/s" "read GB" "written GB"
for t in 1 2; do
  line=$("$build/bench_model_load" run "$dir" "$t")
  get() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$line"; }
  printf '%-8s %8s %10s %12s %10s %10s\n' "$t" "$(get load_s)" "$(get load_gbs)" "$(get memcpy_gbs)" "$(get read_gb)" \
    "$(get written_gb)"
done
