#!/usr/bin/env bash
# Start-up times (issue #16 item 1), side by side in one run: the front end's own commands
# (--version, tokenize, diff, api --dry-run: goal <= 50 ms each), pizza local on stories260K
# (goal <= libtorch's start-up + 0.15 s), the engine started directly (what every command cost
# when pizza was one program), and the floor: a minimal libtorch program that creates one
# tensor, built here. Each figure is the median wall time of N runs (default 11).
# Usage: scripts/bench/startup.sh [build-dir] [runs]
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
build="${1:-$root/build}"
runs="${2:-11}"
shared="$root/../shared"
model="$shared/models/stories260K"
[ -d "$model" ] || { echo "startup.sh: $model is missing" >&2; exit 1; }
bench_build pizza_cli
pizza="$build/pizza"
bench_tmpdir
dir="$bench_tmp"

# The floor: libtorch's own start-up (Debian's libtorch-dev layout).
cat >"$dir/floor.cpp" <<'EOF'
#include <torch/torch.h>
int main() { return torch::ones({2}).sum().item<float>() == 2.0F ? 0 : 1; }
EOF
g++ -std=c++17 -O1 "$dir/floor.cpp" -I/usr/include/torch/csrc/api/include -ltorch -ltorch_cpu -lc10 -o "$dir/floor"

# A saved result for diff, made once (not timed).
"$pizza" local --model "$model" -p "Once upon a time" -n 8 -f json -o "$dir/a.json" --quiet

# Median wall milliseconds of `runs` runs of the command (output discarded; it must succeed).
median_ms() {
  local times=() start end
  for ((i = 0; i < runs; i++)); do
    start=$EPOCHREALTIME
    "$@" >/dev/null 2>&1 || { echo "startup.sh: failed: $*" >&2; exit 1; }
    end=$EPOCHREALTIME
    times+=("$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", (e - s) * 1000 }')")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

echo "CPU: $(bench_cpu); $("$pizza" --version);" \
     "median of $runs runs"
floor=$(median_ms "$dir/floor")
printf '%-44s %10s %12s\n' command "wall ms" goal
row() { printf '%-44s %10s %12s\n' "$1" "$2" "$3"; }
row "pizza --version" "$(median_ms "$pizza" --version)" "<= 50"
row "pizza tokenize (sentencepiece)" "$(median_ms "$pizza" tokenize --model "$model" -p "Once upon a time")" "<= 50"
row "pizza diff a.json a.json" "$(median_ms "$pizza" diff "$dir/a.json" "$dir/a.json")" "<= 50"
row "pizza api --dry-run (word occlusion)" "$(median_ms "$pizza" api --base-url http://127.0.0.1:9/v1 --model m \
  -p "Once upon a time there was" --unit word --no-cache --dry-run)" "<= 50"
local_ms=$(median_ms "$pizza" local --model "$model" -p "Once upon a time" -n 8 --quiet)
row "pizza local stories260K -n 8" "$local_ms" "<= $(awk -v f="$floor" 'BEGIN { printf "%.0f", f + 150 }')"
row "pizza-engine --version (one-program pizza)" "$(median_ms "$build/pizza-engine" --version)" "-"
row "floor: libtorch program, one tensor" "$floor" "-"
awk -v l="$local_ms" -v f="$floor" 'BEGIN { printf "pizza local - floor: %.0f ms (goal <= 150)\n", l - f }'
