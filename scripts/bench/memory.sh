#!/usr/bin/env bash
# Memory of gradient attribution (#16 item 4): a random-weight 135M-shape Llama (hidden 576, 30
# layers, 9 heads, 3 KV heads, intermediate 1536, vocab 32000), saliency over prompts of 128, 512
# and 2048 tokens with 16 generated tokens, once with the default --max-memory (3/4 of the
# available memory plus the weights) and once with --max-memory 2G. Prints per run the budget,
# the rows per backward it allowed, pizza's estimated peak next to the measured peak RSS, and
# the attribution time per row; then per length the measured peak growth per extra row of a
# backward next to the estimate's (from the two runs' differences). A budget too small for one
# row prints pizza's one-line error instead. One run each (timings are noisy on a shared
# machine; the memory figures are not).
# Usage: scripts/bench/memory.sh [build-dir] [lengths, default "128 512 2048"] [threads]
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
build="${1:-$root/build}"
lengths="${2:-128 512 2048}"
threads="${3:-0}"
bench_build pizza_cli bench_engine_perturbation
bench_tmpdir
ckpt="$bench_tmp"
# Room for 2048 prompt tokens plus the generated ones.
bench_random_135m "$ckpt" 4096

cpuinfo() { grep -m1 "^$1" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }
echo "cpu: $(cpuinfo 'model name') (family $(cpuinfo 'cpu family') model $(cpuinfo 'model')), $(nproc) cores usable"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB total", $2/1048576} /MemAvailable/ {printf ", %.1f GiB available", $2/1048576}' /proc/meminfo)"
gib() { awk -v b="$1" 'BEGIN {printf "%.2f", b / 1073741824}'; }
field() { grep -o "\"$1\": [0-9.e+-]*" "$2" | head -1 | awk '{print $2}'; }

printf '%-7s %-8s %5s %10s %10s %10s\n' tokens budget rows "est GiB" "peak GiB" "s/row"
declare -A est peak rows
for n in $lengths; do
  # BOS + (n - 1) words that are one token each.
  prompt="$(printf "hello %.0s" $(seq 1 $((n - 1))))"
  for budget in default 2G; do
    out="$ckpt/out.json"
    args=(local -m "$ckpt" -p "$prompt" -n 16 -q -f json -o "$out")
    [ "$threads" != 0 ] && args+=(--threads "$threads")
    [ "$budget" != default ] && args+=(--max-memory "$budget")
    if ! err="$("$build/pizza" "${args[@]}" 2>&1)"; then
      printf '%-7s %-8s %s\n' "$n" "$budget" "$err"
      continue
    fi
    r="$(field rows_per_pass "$out")" e="$(field estimated_peak_bytes "$out")" p="$(field peak_rss_bytes "$out")"
    ms="$(field attribute_ms "$out")" b="$(field memory_budget_bytes "$out")"
    rows["$n,$budget"]=$r est["$n,$budget"]=$e peak["$n,$budget"]=$p
    printf '%-7s %-8s %5s %10s %10s %10s   (budget %s GiB, %s)\n' "$n" "$budget" "$r" "$(gib "$e")" "$(gib "$p")" \
      "$(awk -v m="$ms" 'BEGIN {printf "%.2f", m / 1000 / 16}')" "$(gib "$b")" \
      "$(grep -o '"blas": "[^"]*"' "$out" | cut -d'"' -f4)"
  done
  if [ -n "${rows[$n,default]:-}" ] && [ -n "${rows[$n,2G]:-}" ] && [ "${rows[$n,default]}" != "${rows[$n,2G]}" ]; then
    awk -v n="$n" -v r1="${rows[$n,default]}" -v r2="${rows[$n,2G]}" -v e1="${est[$n,default]}" -v e2="${est[$n,2G]}" \
        -v p1="${peak[$n,default]}" -v p2="${peak[$n,2G]}" \
        'BEGIN {printf "%-7s per extra row of a backward: estimate %.0f MiB, measured %.0f MiB\n", n, (e1 - e2) / (r1 - r2) / 1048576, (p1 - p2) / (r1 - r2) / 1048576}'
  fi
done
