# shellcheck shell=bash disable=SC2154  # $build is set by the sourcing script
# What the bench scripts share. Source it after `set -euo pipefail`:
#   # shellcheck source=common.sh source-path=SCRIPTDIR
#   . "$(dirname "$0")/common.sh"
#   build="${1:-$root/build}"
# It sets $root (the repository root) and defines the functions below, which read $build.

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# bench_build TARGET...: builds the targets in $build, quietly.
bench_build() { cmake --build "$build" --target "$@" >/dev/null; }

# bench_tmpdir: sets $bench_tmp to a new temporary directory, removed when the script exits.
bench_tmpdir() {
  bench_tmp="$(mktemp -d "${TMPDIR:-/tmp}/pizza-bench.XXXXXX")"
  trap 'rm -rf "$bench_tmp"' EXIT
}

# bench_cpu: "<model name>, <n> cores", for the scripts' first line.
bench_cpu() { echo "$(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1), $(nproc) cores"; }

# bench_random_135m DIR [MAX_POSITIONS]: writes the random-weight 135M-shape Llama of
# bench_engine_perturbation (float32, tied head) with llama2's tokenizer.model to DIR, its
# max_position_embeddings raised from 2048 to MAX_POSITIONS when given. Needs
# bench_engine_perturbation built.
bench_random_135m() {
  local dir="$1" positions="${2:-2048}"
  "$build/bench_engine_perturbation" make-checkpoint "$dir"
  cp "$root/../shared/tokenizers/llama2/tokenizer.model" "$dir/"
  sed -i "s/\"max_position_embeddings\": 2048/\"max_position_embeddings\": $positions/" "$dir/config.json"
}

# bench_cached_135m: sets $bench_ckpt to that checkpoint's directory kept between runs
# ($PIZZA_BENCH_CKPT, default $build/bench-random-135m), writing it first when it is missing or
# incomplete.
bench_cached_135m() {
  bench_ckpt="${PIZZA_BENCH_CKPT:-$build/bench-random-135m}"
  if [[ ! -f "$bench_ckpt/model.safetensors" || ! -f "$bench_ckpt/tokenizer.model" ]]; then
    bench_random_135m "$bench_ckpt"
  fi
}
