"""Choose the phase intervals' constants on the recorded real-server runs (no llama.cpp needed).

Replays every recording through the current phase model once, keeping for each scored call what
``llmotel.phases.model._intervals`` was given (the split, its confidence, the floor's scatter) and the server's
truth; then scores every setting of (_REL_ERROR, _REL_ERROR_COLD, _SCATTER_Z, _STRETCH_SHARE) on a grid for
queue/prefill coverage per workload, without replaying again. Prints the current setting's coverage and the best
settings: the most workloads within 75-90 %, then the fewest below 75 %, then overall nearest 85 % (a run whose
workload no setting brings near 75 %, seed 4's conversation, must not decide for the others).

    .venv/bin/python bench/real/interval_grid.py
"""

from __future__ import annotations

import itertools
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "src"))
sys.path.insert(0, str(HERE))

import replay  # noqa: E402

import llmotel.phases.model as phase_model  # noqa: E402


def capture(paths: list[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []
    original = phase_model._intervals

    def spy(w: Any, conf: float, scatter: float, queue: Any, prefill: Any, first: Any, spread: float = 0.0) -> None:
        seen.append({"q": w.q, "p": w.p, "conf": conf, "scatter": scatter, "spread": spread})
        original(w, conf, scatter, queue, prefill, first, spread)

    phase_model._intervals = spy  # type: ignore[assignment]
    try:
        for path in paths:
            rec = replay.load(path)
            seen.clear()
            calls = replay.replay(rec)
            if len(seen) != len(calls):
                raise SystemExit(f"{path}: {len(seen)} splits for {len(calls)} calls")
            for call, ingredients in zip(calls, seen, strict=True):
                if call["order"] < int(rec["meta"]["warmup"]):
                    continue
                rows.append({**ingredients, "workload": f"{path.parent.name}/{path.stem}",
                             "true_queue": call["truth"]["queue_s"], "true_prefill": call["truth"]["prefill_s"]})
    finally:
        phase_model._intervals = original  # type: ignore[assignment]
    return rows


def coverage(rows: list[dict[str, Any]], rel: float, cold: float, z: float, stretch: float) -> dict[str, float]:
    """Per workload: the share of (queue, prefill) truths inside their intervals, as _intervals builds them."""
    per: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        width = rel + cold * (1.0 - r["conf"])
        noise = z * r["scatter"]
        both = r["q"] + r["p"]
        lo = max(0.0, r["p"] * (1.0 - width) - noise - r["spread"])
        hi = min(both, r["p"] * (1.0 + width) + noise + stretch * r["q"] + r["spread"])
        if r["q"] <= phase_model._UNRESOLVED_QUEUE * r["scatter"]:
            hi = both
        covered = (lo <= r["true_prefill"] <= hi) + (both - hi <= r["true_queue"] <= both - lo)
        per[r["workload"]].append(covered / 2.0)
    return {k: sum(v) / len(v) for k, v in per.items()}


def main() -> None:
    rows = capture(replay.recordings())
    now = (phase_model._REL_ERROR, phase_model._REL_ERROR_COLD, phase_model._SCATTER_Z, phase_model._STRETCH_SHARE)
    ranked = []
    for setting in itertools.product([0.0, 0.02, 0.04, 0.06, 0.08], [0.0, 0.1, 0.2, 0.3],
                                     [0.0, 0.1, 0.25, 0.5, 0.75, 1.0], [0.0, 0.03, 0.06, 0.1, 0.15, 0.25]):
        covs = coverage(rows, *setting)
        overall = sum(covs.values()) / len(covs)
        within = sum(0.75 <= v <= 0.90 for v in covs.values())
        below = sum(v < 0.75 for v in covs.values())
        ranked.append((within, -below, -abs(overall - 0.85), setting, overall, covs))
    ranked.sort(key=lambda r: r[:3], reverse=True)
    covs = coverage(rows, *now)
    print(f"current {now}: overall {sum(covs.values()) / len(covs):.0%}")
    for name, value in sorted(covs.items()):
        print(f"  {name:55} {value:.0%}")
    print("best settings (rel, cold, z, stretch): workloads within 75-90 %, overall, lowest")
    for within, _, _, setting, overall, c in ranked[:8]:
        print(f"  {setting}  {within}/{len(c)}  {overall:.0%}  {min(c.values()):.0%}")


if __name__ == "__main__":
    main()
