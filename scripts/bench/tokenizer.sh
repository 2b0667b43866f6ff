#!/usr/bin/env bash
# Byte-level BPE throughput on 1 MB of synthetic text with GPT-2's tokenizer.json.
# Usage: scripts/bench/tokenizer.sh [build dir] [text file | size in MB]
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build}"
input="${2:-1}"
if [[ ! -f "$build/build.ninja" && ! -f "$build/Makefile" ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target bench_tokenizer_gpt2
"$build/bench_tokenizer_gpt2" ../shared/tokenizers/gpt2/tokenizer.json "$input"
