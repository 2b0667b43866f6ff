#!/usr/bin/env bash
# How close `pizza api`'s sliding request window comes to the ideal on a high-latency server,
# compared with a batch-and-sleep schedule like the PIZZA Python library's.
#
# Setup: `pizza serve` on stories260K behind pizza_fault_proxy --latency-ms 200 (every request
# takes >= 200 ms, like a remote API). Work: occlusion over a 40-word prompt (--unit word), i.e.
# 41 requests: the original completion, then one per word; --concurrency 8, --no-cache.
#   ideal           ceil(41 / 8) x 0.2 s (the latency bound with 8 in flight)
#   batch-and-sleep PIZZA's OpenAIAttributor.get_multiple_completions: the original completion,
#                   then groups of max_concurrent_requests (here 8) sent together, each group
#                   awaited whole, then asyncio.sleep(REQUEST_DELAY = 0.1 s) after every group.
#                   Computed as 0.2 + ceil(40 / 8) x (0.2 + 0.1) s, and measured by replaying
#                   that schedule with curl against the same proxy.
# pizza's own start-up (loading libtorch, ~1 s on a small machine) is timed with --dry-run and
# reported apart; the server's compute share is shown by the same run without the proxy.
#
# Usage: scripts/bench/api_concurrency.sh [BUILD_DIR]   (default: build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${1:-build}"
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
PIZZA="$BUILD/pizza"
PROXY="$BUILD/tests/pizza_fault_proxy"
MODEL="$ROOT/../shared/models/stories260K"
LATENCY_MS=200
CONCURRENCY=8
DELAY_S=0.1  # PIZZA's REQUEST_DELAY

for f in "$PIZZA" "$PROXY"; do
  [[ -x "$f" ]] || { echo "api_concurrency: $f not found (build targets pizza_cli and pizza_fault_proxy in $BUILD)" >&2; exit 1; }
done
[[ -d "$MODEL" ]] || { echo "api_concurrency: model directory $MODEL not found" >&2; exit 1; }
command -v curl >/dev/null || { echo "api_concurrency: curl not found" >&2; exit 1; }

TMP="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# start_server NAME VAR CMD...: starts CMD with stderr to $TMP/NAME.err and sets VAR to the port
# of its "listening on" line. (Not in a $(...) subshell: the pid must reach PIDS for cleanup.)
start_server() {
  local name="$1" var="$2"; shift 2
  "$@" 2>"$TMP/$name.err" >/dev/null &
  local pid=$! port=""
  PIDS+=("$pid")
  for _ in $(seq 1200); do
    port="$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/$name.err" | head -n1)"
    if [[ -n "$port" ]]; then printf -v "$var" '%s' "$port"; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "api_concurrency: $name did not start:" >&2
  cat "$TMP/$name.err" >&2
  exit 1
}

now() { date +%s.%N; }
received() { curl -sf "http://127.0.0.1:$PROXY_PORT/__proxy/stats" | sed -n 's/.*"received":\([0-9]*\).*/\1/p'; }

# One compute thread: on a small shared machine, torch's default (all cores) oversubscribes.
start_server serve SERVE_PORT "$PIZZA" serve --model "$MODEL" --port 0 --threads 1
start_server proxy PROXY_PORT "$PROXY" --upstream "http://127.0.0.1:$SERVE_PORT" --port 0 --latency-ms "$LATENCY_MS"
BASE="http://127.0.0.1:$PROXY_PORT/v1"

PROMPT="Once upon a time there was a little girl named Lily who lived in a small house near the woods with her mother and her old dog Max and every sunny day they walked down to the river to play"
read -r -a WORDS <<<"$PROMPT"
[[ ${#WORDS[@]} -eq 40 ]] || { echo "api_concurrency: prompt has ${#WORDS[@]} words, expected 40" >&2; exit 1; }
REQUESTS=$(( ${#WORDS[@]} + 1 ))

# The server's first answer pays one-time setup; not part of either schedule.
curl -sf -o /dev/null "http://127.0.0.1:$SERVE_PORT/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"stories260K","messages":[{"role":"user","content":"warm up"}],"max_completion_tokens":1}'

run_api() {
  "$PIZZA" api --base-url "$1" --model stories260K --prompt "$PROMPT" --unit word --max-tokens 1 \
    --concurrency "$CONCURRENCY" --no-cache --quiet --format json "${@:2}" >"$TMP/api.json"
}
d0="$(now)"; run_api "$BASE" --dry-run; d1="$(now)"
s0="$(now)"; run_api "http://127.0.0.1:$SERVE_PORT/v1"; s1="$(now)"

# pizza api: a sliding window of 8 requests in flight.
before="$(received)"
t0="$(now)"; run_api "$BASE"; t1="$(now)"
sent=$(( $(received) - before ))
[[ "$sent" -eq "$REQUESTS" ]] || { echo "api_concurrency: pizza api sent $sent requests, expected $REQUESTS" >&2; exit 1; }

# The batch-and-sleep schedule replayed with curl: same requests (chat, logprobs, top 20).
chat() {
  local body
  body="$(printf '{"model":"stories260K","messages":[{"role":"user","content":"%s"}],"max_completion_tokens":1,"logprobs":true,"top_logprobs":20,"temperature":0,"seed":0}' "$1")"
  curl -sf -o /dev/null "$BASE/chat/completions" -H 'Content-Type: application/json' -d "$body"
}
before="$(received)"
b0="$(now)"
chat "$PROMPT"
for (( start = 0; start < ${#WORDS[@]}; start += CONCURRENCY )); do
  group=()
  for (( i = start; i < start + CONCURRENCY && i < ${#WORDS[@]}; ++i )); do
    chat "$(echo "${WORDS[@]:0:i}" "${WORDS[@]:i+1}" | sed 's/^ *//')" &
    group+=($!)
  done
  wait "${group[@]}"
  sleep "$DELAY_S"
done
b1="$(now)"
replayed=$(( $(received) - before ))
[[ "$replayed" -eq "$REQUESTS" ]] || { echo "api_concurrency: the replay sent $replayed requests, expected $REQUESTS" >&2; exit 1; }

awk -v d0="$d0" -v d1="$d1" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" -v b0="$b0" -v b1="$b1" \
    -v n="$REQUESTS" -v c="$CONCURRENCY" -v lat="$LATENCY_MS" -v delay="$DELAY_S" 'BEGIN {
  l = lat / 1000
  startup = d1 - d0
  wall = t1 - t0
  req = wall - startup
  ideal = int((n + c - 1) / c) * l
  groups = int((n - 1 + c - 1) / c)
  computed = l + groups * (l + delay)
  measured = b1 - b0
  printf "requests: %d (occlusion over 40 words + the original), concurrency %d, added latency %d ms\n", n, c, lat
  printf "pizza api wall time:            %.3f s (start-up %.3f s, timed with --dry-run)\n", wall, startup
  printf "pizza api requests (sliding):   %.3f s = wall - start-up\n", req
  printf "same run without the proxy:     %.3f s wall (server compute + start-up)\n", s1 - s0
  printf "ideal ceil(%d/%d) x %.1f s:        %.3f s\n", n, c, l, ideal
  printf "ratio requests / ideal:         %.2f (goal <= 1.25); wall / ideal %.2f\n", req / ideal, wall / ideal
  printf "batch-and-sleep (PIZZA-like):   computed %.3f s, measured %.3f s (curl replay, no start-up)\n", computed, measured
  printf "batch-and-sleep / pizza requests: %.2f computed, %.2f measured\n", computed / req, measured / req
}'
