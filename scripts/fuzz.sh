#!/usr/bin/env bash
# Runs one libFuzzer target of tests/fuzz (ASan + UBSan, clang) for a while, on its seeds.
#
#   scripts/fuzz.sh --list             the targets
#   scripts/fuzz.sh TARGET SECONDS     fuzz TARGET (e.g. tokenizer_json) for SECONDS
#   scripts/fuzz.sh all SECONDS        every target in turn, SECONDS each (CI smoke: all 3)
#
# Extra arguments after SECONDS go to libFuzzer (e.g. -jobs=2, -runs=N). Configures and builds
# build-fuzz/ (PIZZA_FUZZ=ON, clang++-15) when needed. Seeds: tests/fuzz/corpus/TARGET/ (in the
# repository) and files derived from ../shared here at run time (build-fuzz/seeds/TARGET/);
# what the fuzzer finds goes to build-fuzz/corpus/TARGET/ and is reused by the next run. A
# finding leaves its input in build-fuzz/artifacts/ and fails the script. Prints, per target,
# the executions and exec/s libFuzzer reports.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${PIZZA_FUZZ_BUILD:-$ROOT/build-fuzz}
SHARED=$(cd "$ROOT/.." && pwd)/shared

targets() { for f in tests/fuzz/*.cpp; do basename "$f" .cpp; done; }

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

if [ "${1:-}" = "--list" ]; then targets; exit 0; fi
[ $# -ge 2 ] || usage
TARGET=$1 RUN_SECONDS=$2
shift 2
[[ $RUN_SECONDS =~ ^[0-9]+$ ]] || usage
if [ "$TARGET" != all ] && [ ! -f "tests/fuzz/$TARGET.cpp" ]; then
  echo "fuzz: no target '$TARGET' (scripts/fuzz.sh --list)" >&2
  exit 2
fi

build() {
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S . -B "$BUILD" -G Ninja -DPIZZA_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-15 \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" --target "$@"
}

need() { [ -e "$1" ] || { echo "fuzz: seed source $1 is missing (../shared must be present)" >&2; exit 1; }; }

# The little-endian bytes of a number (4 or 8 of them), as printf escapes.
le() { local v=$1 n=$2 i out=""; for ((i = 0; i < n; i++)); do out+=$(printf '\\x%02x' $(((v >> (8 * i)) & 255))); done; printf "$out"; }

# Seeds derived from ../shared (never copied into the repository), written to $1.
shared_seeds() {
  local target=$1 out=$2 f i=0
  case $target in
    checkpoint_safetensors)  # header + the 4-byte length of the (sparse) data section
      for f in "$SHARED"/fixtures/*/reference.safetensors "$SHARED"/models/stories260K/model.safetensors; do
        need "$f"
        local hlen size
        hlen=$(od -An -t u8 -N 8 "$f" | tr -d ' ')
        size=$(stat -c %s "$f")
        { head -c $((8 + hlen)) "$f"; le $((size - 8 - hlen)) 4; } >"$out/shared_$((i++))"
      done ;;
    checkpoint_llama2c)  # the 28-byte header + the 4-byte length of the weights
      f="$SHARED/models/stories260K-llama2c/stories260K.bin"; need "$f"
      { head -c 28 "$f"; le $(($(stat -c %s "$f") - 28)) 4; } >"$out/stories260K" ;;
    checkpoint_config)
      for f in "$SHARED"/fixtures/*/config.json "$SHARED"/models/stories260K/config.json; do
        need "$f"
        { cat "$f"; printf '\n@@@\n'; cat "$(dirname "$f")/generation_config.json"; } >"$out/shared_$((i++))"
      done ;;
    tokenizer_json)  # GPT-2's tokenizer.json cut to its first 300 pieces and 40 merges
      f="$SHARED/tokenizers/gpt2/tokenizer.json"; need "$f"
      jq -c '.model.vocab |= (to_entries | .[:300] | from_entries) | .model.merges |= .[:40]
             | .added_tokens |= map(.id = 299)' "$f" >"$out/gpt2_small" ;;
    tokenizer_vocab_merges)
      need "$SHARED/tokenizers/gpt2/vocab.json"
      { jq -c 'to_entries | .[:300] | from_entries' "$SHARED/tokenizers/gpt2/vocab.json"; printf '\n@@@\n'
        head -n 41 "$SHARED/tokenizers/gpt2/merges.txt"; } >"$out/gpt2_small" ;;
    tokenizer_tiktoken)
      for f in "$SHARED"/tokenizers/tiktoken/*.tiktoken; do need "$f"; head -n 300 "$f" >"$out/$(basename "$f" .tiktoken)"; done ;;
    tokenizer_sentencepiece)  # the small models (the 250 KB+ ones would slow every mutation)
      f="$SHARED/models/stories260K/tokenizer.model"; need "$f"; cp "$f" "$out/stories260K" ;;
    batch_records)
      for f in "$SHARED"/eval/stories_prompts.jsonl "$SHARED"/reference/tokenizers/*.jsonl; do
        need "$f"; head -c 4096 "$f" >"$out/$(basename "$f")"
      done ;;
    api_response|diff_results) ;;  # ../shared holds neither: the seeds come from the tests
    openai_request)  # request bodies come from the tests; the target loads this tokenizer itself
      need "$SHARED/models/stories260K/tokenizer.model" ;;
    *) echo "fuzz: no seed recipe for $target" >&2; exit 1 ;;
  esac
}

run_one() {
  local target=$1 seconds=$2
  shift 2
  local seeds="$BUILD/seeds/$target" corpus="$BUILD/corpus/$target" log="$BUILD/logs/$target.log"
  rm -rf "$seeds"
  mkdir -p "$seeds" "$corpus" "$BUILD/artifacts" "$BUILD/logs"
  shared_seeds "$target" "$seeds"
  local dirs=("$corpus" "$seeds")
  [ -d "tests/fuzz/corpus/$target" ] && dirs+=("tests/fuzz/corpus/$target")
  local rc=0 start=$SECONDS
  # -timeout: an input taking over 10 s is a hang; -rss_limit_mb/-malloc_limit_mb: a parser
  # allocating gigabytes for a small input is a finding (sizes must be checked first).
  "$BUILD/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$target-" "$@" \
    "${dirs[@]}" >"$log" 2>&1 || rc=$?
  local execs rate
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target FAILED (exit $rc) after ${execs:-?} executions; log $log, input in $BUILD/artifacts/" >&2
    return 1
  fi
  printf '%-24s %10s executions %7s exec/s %6ss\n' "$target" "${execs:-?}" "${rate:-?}" $((SECONDS - start))
}

if [ "$TARGET" = all ]; then
  mapfile -t list < <(targets)
  build "${list[@]/#/fuzz_}"
  failed=0
  for t in "${list[@]}"; do run_one "$t" "$RUN_SECONDS" "$@" || failed=1; done
  exit $failed
fi
build "fuzz_$TARGET"
run_one "$TARGET" "$RUN_SECONDS" "$@"
