#!/usr/bin/env bash
# `pizza eval` vs the brute force it replaces, side by side in one run, on stories260K:
#   eval:        pizza eval over the first SAMPLE prompts of ../shared/eval/stories_prompts.jsonl
#                (--unit word -n 8, every method but random);
#   brute force: the same numbers without eval: each method once per prompt (pizza local
#                --prompts, one batch process per method) and then one pizza local
#                --target-text run per distinct perturbed prompt (one batch process), which is
#                what a user scripts today. Perturbed prompts are rebuilt from eval's JSON
#                (rankings, curve points, top-k and LDS masks), so both sides score the same sets.
# Prints both wall times and their ratio (the goal is >= 10), plus the whole 40-prompt eval.
# Usage: scripts/bench/eval.sh [build-dir]   (SAMPLE=4 THREADS=<all> to change)
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
. "$(dirname "$0")/common.sh"
build="${1:-$root/build}"
pizza="$build/pizza"
model="$root/../shared/models/stories260K"
prompts="$root/../shared/eval/stories_prompts.jsonl"
sample="${SAMPLE:-4}"
threads="${THREADS:-$(nproc)}"
methods="saliency,input-x-gradient,integrated-gradients,occlusion,hierarchical"
bench_build pizza_cli
bench_tmpdir
tmp="$bench_tmp"

echo "CPU: $(bench_cpu); kernel $(uname -r);" \
     "OpenBLAS core: ${OPENBLAS_CORETYPE:-auto}; --threads $threads"
now() { date +%s.%N; }
head -n "$sample" "$prompts" >"$tmp/sample.jsonl"

t0=$(now)
"$pizza" eval -m "$model" --prompts "$tmp/sample.jsonl" --unit word -n 8 --methods "$methods" \
  --threads "$threads" -q -f json -o "$tmp/eval.json"
t1=$(now)

# Brute force, part 1: each method's attribution of each prompt.
for m in ${methods//,/ }; do
  "$pizza" local -m "$model" --prompts "$tmp/sample.jsonl" --unit word -n 8 --method "$m" \
    --threads "$threads" -q -o "$tmp/method-$m.jsonl"
done
# Part 2: every distinct perturbed prompt, teacher-forced on the explained output.
python3 - "$tmp/eval.json" "$tmp/perturbed.jsonl" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
ks_topk = doc["k"]
out = open(sys.argv[2], "w")
total = skipped = 0
for p in doc["prompts"]:
    U = len(p["units"])
    ks = list(range(U + 1)) if U <= 20 else [(2 * i * U + 20) // 40 for i in range(21)]
    sets = {()}
    for m in p["methods"]:
        order = m["ranking"]
        rev = order[::-1]
        for k in ks:
            sets.add(tuple(sorted(order[:k])))
            sets.add(tuple(sorted(rev[:k])))
            sets.add(tuple(sorted(order[k:])))
        for k in ks_topk:
            sets.add(tuple(sorted(order[:min(k, U)])))
    for mask in p.get("lds_masks", []):
        sets.add(tuple(u for u in range(U) if mask[u] == "0"))
    assert len(sets) == p["scored_prompts"], (len(sets), p["scored_prompts"])
    for s in sorted(sets):
        text, cursor = "", 0
        for u in s:
            b, e = p["units"][u]["span"]
            text += p["prompt"][cursor:b]  # spans are bytes; these prompts are ASCII
            cursor = e
        text += p["prompt"][cursor:]
        if not text:
            # Every unit removed: eval scores the output after BOS alone, but pizza local refuses
            # an empty prompt, so the brute force leaves these out (in its favour).
            skipped += 1
            continue
        total += 1
        out.write(json.dumps({"id": f"{p['id']}-{total}", "prompt": text, "target_text": p["output_text"]}) + "\n")
print(f"perturbed prompts to score: {total} (+{skipped} empty ones eval scores and pizza local cannot)", file=sys.stderr)
EOF
"$pizza" local -m "$model" --prompts "$tmp/perturbed.jsonl" --threads "$threads" -q -o "$tmp/perturbed.out.jsonl"
t2=$(now)

# The literal brute force, one pizza local process per perturbed prompt, timed on the first
# SINGLE (default 20) of them; the total for all is extrapolated from their mean (and says so).
single="${SINGLE:-20}"
head -n "$single" "$tmp/perturbed.jsonl" >"$tmp/single.jsonl"
ts0=$(now)
while IFS= read -r line; do
  text=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["prompt"], end="")' "$line")
  target=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["target_text"], end="")' "$line")
  "$pizza" local -m "$model" --prompt "$text" --target-text "$target" --threads "$threads" -q -f json >/dev/null
done <"$tmp/single.jsonl"
ts1=$(now)
n_perturbed=$(wc -l <"$tmp/perturbed.jsonl")

ta=$(now)
"$pizza" eval -m "$model" --prompts "$prompts" --unit word -n 8 --threads "$threads" -q -o "$tmp/all.json"
t3=$(now)

python3 - "$t0" "$t1" "$t2" "$t3" "$sample" "$ts0" "$ts1" "$single" "$n_perturbed" "$ta" <<'EOF'
import sys
t0, t1, t2, t3 = map(float, sys.argv[1:5])
n = sys.argv[5]
ts0, ts1, single, n_perturbed = float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
e, b = t1 - t0, t2 - t1
per_process = (ts1 - ts0) / single
print(f"{n} prompts, 5 methods, word units, 8 output tokens, {n_perturbed} distinct perturbed prompts:")
print(f"  pizza eval                                        {e:8.2f} s")
print(f"  brute force, pizza local batch runs (measured)    {b:8.2f} s   ratio {b / e:6.1f} x  (goal: >= 10)")
print(f"  brute force, one pizza local per perturbed prompt: {per_process * 1000:.0f} ms each over {single} runs;"
      f" x {n_perturbed} = {per_process * n_perturbed:.0f} s (extrapolated), ratio {per_process * n_perturbed / e:.0f} x")
print(f"all 40 prompts, 6 methods (random included): pizza eval {t3 - float(sys.argv[10]):.2f} s")
EOF
