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
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"
threads="${2:-0}"
reps="${3:-5}"
cmake --build "$build" --target bench_engine_gradient bench_engine_perturbation >/dev/null
ckpt="$(mktemp -d)"
trap 'rm -rf "$ckpt"' EXIT
"$build/bench_engine_perturbation" make-checkpoint "$ckpt"
cp "$root/../shared/tokenizers/llama2/tokenizer.model" "$ckpt/"
# Room for the 2048-token prompt and its 16 rows.
sed -i 's/"max_position_embeddings": 2048/"max_position_embeddings": 4096/' "$ckpt/config.json"
"$build/bench_engine_gradient" "$ckpt" "$threads" "$reps"
