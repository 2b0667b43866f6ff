#!/usr/bin/env bash
# Greedy decoding against the memory-bandwidth bound (issue #16 item 3), on a random-weight
# 135M-shape Llama (float32): for 1 and 2 threads, decode ms/token next to the goal
# 1.25 x (bytes one token streams / measured read bandwidth), and prefill tokens/s (128-token
# prompt). The bound: a decode step reads every weight once (the embedding table only as the
# tied lm_head); bandwidth is a read-only sum over 1 GiB with the same thread count.
# Usage: scripts/bench/generate.sh [build-dir]
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
build="${1:-$root/build}"
bench_build bench_model_generate bench_engine_perturbation
bench_cached_135m
ckpt="$bench_ckpt"
echo "CPU: $(bench_cpu);" \
     "BLAS: $("$build/bench_model_generate" blas)"
printf '%-8s %10s %10s %8s %12s %12s %14s\n' threads ms/token goal ratio "read GB/s" "weights MB" "prefill tok/s"
for t in 1 2; do
  bw=$("$build/bench_model_generate" bandwidth "$t" | sed -n 's/.*read_gbs=\([0-9.]*\).*/\1/p')
  line=$("$build/bench_model_generate" run "$ckpt" "$t")
  ms=$(sed -n 's/.*ms_per_token=\([0-9.]*\).*/\1/p' <<<"$line")
  bytes=$(sed -n 's/.*weight_bytes=\([0-9]*\).*/\1/p' <<<"$line")
  prefill=$(sed -n 's/.*prefill_tokens_per_s=\([0-9.]*\).*/\1/p' <<<"$line")
  awk -v t="$t" -v ms="$ms" -v bw="$bw" -v b="$bytes" -v p="$prefill" 'BEGIN {
    goal = 1.25 * b / (bw * 1e9) * 1e3
    printf "%-8s %10.1f %10.1f %8.2f %12.1f %12.0f %14.0f\n", t, ms, goal, ms / goal, bw, b / 1e6, p }'
done
