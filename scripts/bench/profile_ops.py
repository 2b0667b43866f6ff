#!/usr/bin/env python3
"""Sums a libtorch profiler trace (Chrome trace JSON, as RecordProfile writes it) by operator:
self time (an operator's time minus that of the operators it called on the same thread), calls
and share of the total; the top N.
Usage: scripts/bench/profile_ops.py TRACE.json [N]"""
import json
import sys
from collections import defaultdict


def main() -> None:
    events = json.load(open(sys.argv[1]))
    if isinstance(events, dict):
        events = events.get("traceEvents", [])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    by_thread = defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            by_thread[e.get("tid")].append(e)
    self_us, calls = defaultdict(float), defaultdict(int)
    for evs in by_thread.values():
        evs.sort(key=lambda e: (float(e["ts"]), -float(e["dur"])))
        stack, nodes = [], []
        for e in evs:
            ts, dur = float(e["ts"]), float(e["dur"])
            while stack and stack[-1]["end"] <= ts:
                stack.pop()
            if stack:
                stack[-1]["children"] += dur
            node = {"end": ts + dur, "name": e["name"], "dur": dur, "children": 0.0}
            stack.append(node)
            nodes.append(node)
        for n in nodes:
            self_us[n["name"]] += n["dur"] - n["children"]
            calls[n["name"]] += 1
    total = sum(self_us.values())
    print(f"{'operator':44s} {'self ms':>10s} {'share':>7s} {'calls':>8s}")
    for name, us in sorted(self_us.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{name[:44]:44s} {us / 1000:10.1f} {100 * us / total:6.1f}% {calls[name]:8d}")
    print(f"{'total':44s} {total / 1000:10.1f}")


if __name__ == "__main__":
    main()
