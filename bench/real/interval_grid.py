"""Choose the phase intervals' constants on the recorded real-server runs and, optionally, the simulator.

Replays every recording through the current phase model once, keeping for each call what
``llmotel.phases.model._intervals`` was given (the split, its confidence, the own-call band, the whole body's
decode estimate) and the server's truth; then rebuilds every call's intervals under each setting of the model's
constants (``_REL_ERROR_COLD``, ``_STRETCH_SHARE``, ``_EXCESS_BELOW``, ``_SAMPLING_SPREAD``: the last acts only
where the model's size is known, i.e. on the simulator; captures older than 2026-12-07 keep their spread fixed)
and of the residual share
(``llmotel.phases.residuals``: quantile, window, share), in call order per recording, without replaying again.
``--capture-simulator FILE`` runs bench/phase_accuracy.py (~11 min, writes its RESULTS.md section) with the same
spy and keeps its calls with the simulator's truth; ``--simulator FILE`` scores those beside the recordings.
Prints the current setting's coverage and the best settings: the most runs (workload runs and simulator
scenarios) whose mean queue/prefill coverage lies within 75-90 %, then the fewest below 75 %.

    .venv/bin/python bench/real/interval_grid.py                       # recordings only, ~1 min
    .venv/bin/python bench/real/interval_grid.py --capture-simulator /tmp/sim.pkl
    .venv/bin/python bench/real/interval_grid.py --simulator /tmp/sim.pkl --top 20
"""

from __future__ import annotations

import argparse
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
import llmotel.phases.residuals as residuals  # noqa: E402
from llmotel.record import Phase  # noqa: E402

MODEL_CONSTANTS = ("_REL_ERROR_COLD", "_STRETCH_SHARE", "_EXCESS_BELOW", "_SAMPLING_SPREAD")
RESIDUAL_CONSTANTS = ("_QUANTILE", "_WINDOW", "_SHARE")


def _copy(w: Any) -> Any:
    copy = phase_model._Window()
    for name in phase_model._Window.__slots__:
        setattr(copy, name, getattr(w, name))
    return copy


def capture(paths: list[Path]) -> list[dict[str, Any]]:
    """Every call's ``_intervals`` arguments (the window copied), in replay order, with its workload and truth."""
    rows: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []
    original = phase_model._intervals

    def spy(w: Any, conf: float, queue: Phase, prefill: Phase, first: Phase, *rest: Any) -> None:
        seen.append({"w": _copy(w), "conf": conf, "rest": rest, "sampling_spread": phase_model._SAMPLING_SPREAD})
        original(w, conf, queue, prefill, first, *rest)

    phase_model._intervals = spy  # type: ignore[assignment]
    try:
        for path in paths:
            rec = replay.load(path)
            seen.clear()
            calls = replay.replay(rec)
            if len(seen) != len(calls):
                raise SystemExit(f"{path}: {len(seen)} splits for {len(calls)} calls")
            for call, ingredients in zip(calls, seen, strict=True):
                rows.append({**ingredients, "workload": f"{path.parent.name}/{path.stem}",
                             "scored": call["order"] >= int(rec["meta"]["warmup"]),
                             "true_queue": call["truth"]["queue_s"], "true_prefill": call["truth"]["prefill_s"]})
    finally:
        phase_model._intervals = original
    return rows


def coverage(
    rows: list[dict[str, Any]], model: dict[str, float], resid: dict[str, float] | None
) -> dict[str, tuple[float, float, int]]:
    """Per workload run: the shares of scored calls whose true queue / prefill lie inside their intervals, and how
    many calls were scored."""
    saved = {k: getattr(phase_model, k) for k in model} | {f"r{k}": getattr(residuals, k) for k in resid or {}}
    for k, v in model.items():
        setattr(phase_model, k, v)
    for k, v in (resid or {}).items():
        setattr(residuals, k, int(v) if k == "_WINDOW" else v)
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    books: dict[str, residuals.Residuals] = defaultdict(residuals.Residuals)
    try:
        for r in rows:
            w, (spread, band, decode_est, decode_share, *_) = r["w"], r["rest"]
            if r.get("sampling_spread"):
                # The spread was captured as the sampling x the constant of its day: rescaled to the one scored.
                spread *= phase_model._SAMPLING_SPREAD / r["sampling_spread"]
            book = books[r["workload"]]
            excess = book.share("key") * w.p if resid is not None else 0.0
            q, p = Phase("queue", 0, 0, w.q_src), Phase("prefill", 0, 0, w.p_src)
            f = Phase("first_token", 0, 0, w.f_src)
            phase_model._intervals(w, r["conf"], q, p, f, spread, band, decode_est, decode_share, excess)
            if band is None and w.q_src == "estimated" and w.p_src == "estimated":
                # The book learns the floor's split, before the typical run was booked as prefill (w.moved).
                moved = getattr(w, "moved", 0.0)
                book.observe("key", w.q + moved, w.p - moved)
            if not r["scored"]:
                continue
            c = per[r["workload"]]
            c[0] += 1
            # 1 ns: the spans' interval is what _intervals computed; the truth is compared as recorded.
            c[1] += _inside(q, r["true_queue"])
            c[2] += _inside(p, r["true_prefill"])
    finally:
        for k, v in saved.items():
            if k.startswith("r_"):
                setattr(residuals, k[1:], v)
            else:
                setattr(phase_model, k, v)
    return {k: (c[1] / c[0], c[2] / c[0], c[0]) for k, c in per.items() if c[0]}


def capture_simulator(out: Path) -> None:
    """Run bench/phase_accuracy.py with the spy; keep every scored-or-not call with the simulator's truth."""
    import json
    import pickle
    import tempfile

    sys.path.insert(0, str(HERE.parent))
    import phase_accuracy

    rows: list[dict[str, Any]] = []
    scenario = {"name": ""}
    original, run = phase_model._intervals, phase_accuracy.Runner.run

    def spy(w: Any, conf: float, queue: Phase, prefill: Phase, first: Phase, *rest: Any) -> None:
        original(w, conf, queue, prefill, first, *rest)
        rows.append({"sc": scenario["name"], "w": _copy(w), "conf": conf, "rest": rest,
                     "sampling_spread": phase_model._SAMPLING_SPREAD,
                     "out": (queue.low_s, queue.high_s, prefill.low_s, prefill.high_s)})

    def named(self: Any) -> Any:
        scenario["name"] = self.scenario.name
        return run(self)

    phase_model._intervals = spy  # type: ignore[assignment]
    phase_accuracy.Runner.run = named  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "dump.json"
        sys.argv = ["phase_accuracy.py", "--dump", str(dump)]
        try:
            phase_accuracy.main()
        finally:
            phase_model._intervals = original
            phase_accuracy.Runner.run = run  # type: ignore[method-assign]
        samples = json.loads(dump.read_text())
    # A sample's spans carry the intervals the spy saw: match on them, in order, per scenario.
    def key(values: Any) -> tuple[Any, ...]:
        return tuple(None if v is None else round(v, 6) for v in values)
    matched: list[dict[str, Any]] = []
    for name, calls in samples.items():
        mine = [r for r in rows if r["sc"] == name]
        by: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for r in mine:
            by[key(r["out"])].append(r)
        for s in calls:
            iv = s["intervals"]
            if not iv.get("queue") or not iv.get("prefill"):
                continue
            found = by.get(key((*iv["queue"], *iv["prefill"])))
            if found:
                r = found.pop(0)
                r.update(workload=f"sim/{name}" + ("" if s["stream"] else " (non-streaming)"),
                         scored=s["index"] >= 100, true_queue=s["truth"]["queue_s"],
                         true_prefill=s["truth"]["prefill_s"])
        for r in mine:  # unmatched calls still teach the residual share, in order; they are not scored
            r.setdefault("workload", f"sim/{name}")
            r.setdefault("scored", False)
        matched += mine
    out.write_bytes(pickle.dumps(matched))
    print(f"{out}: {sum(r['scored'] for r in matched)} scored calls of {len(matched)}")


def _inside(phase: Phase, truth: float) -> bool:
    return phase.low_s is not None and phase.high_s is not None and phase.low_s - 1e-9 <= truth <= phase.high_s + 1e-9


def verdict(cov: dict[str, tuple[float, float, int]]) -> tuple[int, int, int, list[str]]:
    """(runs within 75-90 % by mean coverage, runs above, runs with both phases within, the runs below)."""
    means = {k: (q + p) / 2 for k, (q, p, _) in cov.items()}
    below = sorted(f"{k} {100 * q:.0f}/{100 * p:.0f}" for k, (q, p, _) in cov.items() if means[k] < 0.75)
    return (sum(0.75 <= m <= 0.90 for m in means.values()), sum(m > 0.90 for m in means.values()),
            sum(0.75 <= q <= 0.90 and 0.75 <= p <= 0.90 for q, p, _ in cov.values()), below)


def pooled(cov: dict[str, tuple[float, float, int]], simulator: bool) -> str:
    """Queue / prefill coverage over every scored call of the recordings (or of the simulator), all runs pooled."""
    runs = [(q, p, n) for k, (q, p, n) in cov.items() if k.startswith("sim/") == simulator]
    calls = sum(n for _, _, n in runs)
    if not calls:
        return "-"
    return (f"{100 * sum(q * n for q, _, n in runs) / calls:.1f} / {100 * sum(p * n for _, p, n in runs) / calls:.1f} %"
            f" of {calls} calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--no-residuals", action="store_true", help="score settings without the residual share")
    parser.add_argument("--capture-simulator", type=Path, help="run bench/phase_accuracy.py and keep its calls here")
    parser.add_argument("--simulator", type=Path, help="score a --capture-simulator file beside the recordings")
    args = parser.parse_args()
    if args.capture_simulator:
        capture_simulator(args.capture_simulator)
        return
    rows = capture(replay.recordings())
    if args.simulator:
        import pickle

        rows += pickle.loads(args.simulator.read_bytes())
    now_model = {k: getattr(phase_model, k) for k in MODEL_CONSTANTS}
    now_resid = {k: getattr(residuals, k) for k in RESIDUAL_CONSTANTS}
    now = coverage(rows, now_model, now_resid)
    within, above, both, below = verdict(now)
    runs = len({r["workload"] for r in rows})
    print(f"now {now_model} {now_resid}: {within} of {runs} runs within 75-90 %, {above} above, {both} with both "
          f"phases within; below: {below}")
    print(f"now, pooled queue / prefill coverage: recordings {pooled(now, False)}; simulator {pooled(now, True)}")
    ranked = []
    resid_grid: list[dict[str, float] | None] = [None] if args.no_residuals else [
        dict(zip(RESIDUAL_CONSTANTS, s, strict=True))
        for s in itertools.product([0.5, 0.65], [32], [0.4, 0.5])]
    for values in itertools.product([0.1, 0.2, 0.3], [0.05, 0.1, 0.2], [0.0, 0.5, 1.0], [0.3, 1.5]):
        model = dict(zip(MODEL_CONSTANTS, values, strict=True))
        for resid in resid_grid:
            within, above, both, below = verdict(coverage(rows, model, resid))
            ranked.append((within, -len(below), both, model, resid, below))
    ranked.sort(key=lambda r: r[:3], reverse=True)
    for within, neg_below, both, model, resid, below in ranked[: args.top]:
        print(f"{within} within, {-neg_below} below, {both} both within: {model} {resid} {below}")


if __name__ == "__main__":
    main()
