"""How much of each call's queue the app's own calls explain, on the recorded llama.cpp runs (an analysis for
issue #16's next step, not part of the estimator).

A call sent while n of the app's own calls to the same server were in flight, on a server with k slots, waits
until the (n - k + 1)-th of them ends (0 when n < k). The client sees every one of those ends, so where the app's
own calls are the only load and k is known, that wait is measured, not inferred. This script computes it from each
recording's per-call start (format 2 runs) and capture times and scores it against the server's truth as the
scoreboard does (|estimate - true queue| / TTFT, streams only), beside the estimate the live phase model of each
run made (its commit: bench/RESULTS.md). The slot count is the harness's (bench/real/harness.py workloads); the
estimator learns it from the calls (src/llmotel/phases/own_queue.py).

    .venv/bin/python bench/real/own_overlap.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import replay  # noqa: E402

WORKLOADS = {  # workload -> the server's slots in the harness, for recordings whose meta does not say
    "one_slot_4_callers": 1, "one_slot_4_callers_early": 1, "one_slot_4_callers_non_streaming": 1,
    "prefix_cache_2_callers": 1, "two_slots_4_callers": 2, "two_slots_4_callers_early": 2, "one_prompt_size": 1,
}


def _quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[(9 * len(ordered)) // 10]


def own_overlap_queue(calls: list[dict[str, Any]], slots: int) -> dict[str, float]:
    """By call id: the wait the app's own in-flight calls imply on a server with ``slots`` slots, in seconds."""
    spans = [(c["start_ns"], c["start_ns"] + c["capture_ns"]["end"], c["call"]) for c in calls]
    out: dict[str, float] = {}
    for start, _, name in spans:
        ends = sorted(end for other_start, end, other in spans if other != name and other_start < start < end)
        ahead = len(ends) - slots
        out[name] = (ends[ahead] - start) / 1e9 if ahead >= 0 else 0.0
    return out


def main() -> None:
    print(f"{'run/workload':48} {'own-overlap queue: median / p90':>32} {'live estimate: median / p90':>30}")
    for path in replay.recordings():
        rec = replay.load(path)
        slots = rec["meta"].get("slots", WORKLOADS.get(path.stem)) if rec["meta"].get("callers", 1) > 1 else None
        calls = rec["calls"]
        if slots is None or not calls or "start_ns" not in calls[0]:
            continue  # not a shared-slot workload, or a format-1 run without per-call starts
        implied = own_overlap_queue(calls, slots)
        warmup = int(rec["meta"]["warmup"])
        ours, live = [], []
        for c in calls:
            if c["order"] < warmup:
                continue
            ttft = c["capture_ns"]["first_content"] / 1e9
            if ttft <= 0:
                continue  # non-streaming: no first token seen
            truth = c["truth"]["queue_s"]
            ours.append(abs(implied[c["call"]] - truth) / ttft)
            if c.get("live"):
                live.append(abs(c["live"]["queue"]["s"] - truth) / ttft)
        if not ours:
            continue
        o50, o90 = _quantiles(ours)
        line = f"{path.parent.name + '/' + path.stem:48} {100 * o50:14.1f} / {100 * o90:5.1f} %"
        if live:
            l50, l90 = _quantiles(live)
            line += f" {100 * l50:19.1f} / {100 * l90:5.1f} %"
        print(line)


if __name__ == "__main__":
    main()
