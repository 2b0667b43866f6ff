#!/usr/bin/env bash
# Gradient attribution: PIZZA's per-row algorithm vs pizza's batched one on a random-weight
# 135M-shape Llama (hidden 576, 30 layers, 9 heads, 3 KV heads, intermediate 1536, vocab
# 32000), 32-token prompt, 16 new tokens. Prints both times, the ratio, the attribution
# phase's GFLOP/s and the machine's sgemm GFLOP/s (best of 5 interleaved runs each), and for
# context the time of PIZZA's own per-token work; and attnlrp (logit target) next to fast
# saliency, timed interleaved with it, with their ratio; then fast saliency's GFLOP/s after
# prompts of 512 and 2048 tokens (one run each, within the default --max-memory budget).
# Usage: scripts/bench/local_gradient.sh [build-dir] [threads] [repetitions]
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
build="${1:-$root/build}"
threads="${2:-0}"
reps="${3:-5}"
bench_build bench_engine_gradient bench_engine_perturbation
bench_tmpdir
# Room for the 2048-token prompt and its rows.
bench_random_135m "$bench_tmp" 4096
"$build/bench_engine_gradient" "$bench_tmp" "$threads" "$reps"
