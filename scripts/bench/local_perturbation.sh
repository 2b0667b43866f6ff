#!/usr/bin/env bash
# Occlusion over a 64-word prompt, 8 output tokens, on a random-weight 135M-shape Llama:
# batched teacher-forced scoring vs one-perturbation-at-a-time free-running generation.
# Usage: scripts/bench/local_perturbation.sh [build-dir] [cpu|cuda]
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
build="${1:-$root/build}"
device="${2:-cpu}"
bench_build bench_engine_perturbation
bench_cached_135m
"$build/bench_engine_perturbation" run "$bench_ckpt" "$device"
