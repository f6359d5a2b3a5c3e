"""How much a real server's prefill of a prompt scatters from call to call, per recorded run.

For each recorded single-caller run (the idle workloads, prefix_sizes: no queue to muddle the truth), the server's
own prefill (llama.cpp ``prompt_ms``) against a power law in uncached prompt tokens, fitted by least squares in
log-log over calls with more than 200 uncached tokens; the spread of the log residuals, p90 - p10, and the
lognormal sigma that spread implies (p90 - p10 of a normal is 2.563 sigma). The simulator's ``prefill_jitter``
(bench/phase_accuracy.py's ``_replica``, 0.067) is that sigma's median over seeds 8-10 (15 runs, 2026-12-07); with
seed 11 in place of seed 8 it reads 0.101.

    .venv/bin/python bench/real/scatter.py
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import replay  # noqa: E402

WORKLOADS = ("idle", "idle_early_headers", "idle_no_usage", "idle_non_streaming", "prefix_sizes")
MIN_UNCACHED = 200  # below this llama.cpp's fixed per-call work dominates the power law
NORMAL_P90_P10 = 2.563


def spread(calls: list[dict[str, object]]) -> tuple[int, float] | None:
    """(points, p90 - p10 of the log residual about the log-log least-squares line) or None if too few."""
    pts = []
    for call in calls:
        truth = call["truth"]
        assert isinstance(truth, dict)
        uncached = int(truth["prompt_n"]) - int(truth.get("cache_n") or 0)
        if uncached > MIN_UNCACHED and truth["prefill_s"] > 0:
            pts.append((math.log(uncached), math.log(float(truth["prefill_s"]))))
    if len(pts) < 10:
        return None
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx <= 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx
    res = sorted(y - (my + b * (x - mx)) for x, y in pts)
    def q(p: float) -> float:
        return res[int(p * (len(res) - 1))]
    return len(pts), q(0.9) - q(0.1)


def main() -> None:
    sigmas = []
    for path in replay.recordings():
        if path.stem not in WORKLOADS:
            continue
        got = spread(replay.load(path)["calls"])
        if got is None:
            continue
        n, s = got
        sigmas.append(s / NORMAL_P90_P10)
        print(f"{path.parent.name}/{path.stem:20s} {n:3d} calls  p90-p10 {s:.3f}  sigma {s / NORMAL_P90_P10:.3f}")
    if sigmas:
        print(f"median sigma over {len(sigmas)} runs: {statistics.median(sigmas):.3f} "
              f"(range {min(sigmas):.3f}-{max(sigmas):.3f})")


if __name__ == "__main__":
    main()
