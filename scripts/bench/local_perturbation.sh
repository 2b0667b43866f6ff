#!/usr/bin/env bash
# Occlusion over a 64-word prompt, 8 output tokens, on a random-weight 135M-shape Llama:
# batched teacher-forced scoring vs one-perturbation-at-a-time free-running generation.
# Usage: scripts/bench/local_perturbation.sh [build-dir] [cpu|cuda]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build}"
device="${2:-cpu}"
cmake --build "$build" --target bench_engine_perturbation >/dev/null
ckpt="${PIZZA_BENCH_CKPT:-$build/bench-random-135m}"
if [[ ! -f "$ckpt/model.safetensors" ]]; then
  "$build/bench_engine_perturbation" make-checkpoint "$ckpt"
  cp "$root/../shared/tokenizers/llama2/tokenizer.model" "$ckpt/"
fi
"$build/bench_engine_perturbation" run "$ckpt" "$device"
