"""The headline table of docs/phases.md from the recordings: the first seed's run in full, the other seeds' p90s and
coverage beside it, and on stderr per seed the workloads within the target and the coverage verdicts.

    .venv/bin/python bench/real/doc_table.py 14 13 12 11
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "src"))
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import replay  # noqa: E402

ORDER = [w.name for w in harness.WORKLOADS]  # the harness's order


def _run(seed: str) -> Path:
    found = sorted(replay.RECORDINGS.glob(f"run-*-seed{seed}"))
    if not found:
        raise SystemExit(f"no recording of seed {seed} in {replay.RECORDINGS}")
    return found[-1]


def _score(run: Path, workload: str) -> dict[str, Any] | None:
    """The workload's scores in ``run``; None where the run predates the workload."""
    path = run / f"{workload}.json"
    if not path.exists():
        return None
    scores: dict[str, Any] = replay.score(replay.load(path))[0]
    return scores


def _pc(x: float) -> str:
    return f"{100 * x:.1f}"


def main() -> None:
    seeds = sys.argv[1:]
    if not seeds:
        raise SystemExit(__doc__)
    runs = {s: _run(s) for s in seeds}
    head = ["workload", "median TTFT", "true queue share", "queue median / p90", "prefill median / p90",
            "coverage queue / prefill"]
    head += [f"seed {s}: queue / prefill p90, coverage" for s in seeds[1:]] + ["opaque span: queue median / p90"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    within = dict.fromkeys(seeds, 0)
    band = dict.fromkeys(seeds, 0)
    runs_of = dict.fromkeys(seeds, 0)
    below: dict[str, list[str]] = {s: [] for s in seeds}
    for workload in ORDER:
        first = _score(runs[seeds[0]], workload)
        if first is None:
            continue
        cells = [workload, f"{first['ttft_median_ms']:,.0f} ms", f"{100 * first['true_queue_share']:.0f} %",
                 f"{_pc(first['queue_median'])} / {_pc(first['queue_p90'])} %",
                 f"{_pc(first['prefill_median'])} / {_pc(first['prefill_p90'])} %",
                 f"{100 * first['queue_coverage']:.0f} / {100 * first['prefill_coverage']:.0f} %"]
        for seed in seeds:
            sc = first if seed == seeds[0] else _score(runs[seed], workload)
            if sc is None:
                cells.append("-")
                continue
            runs_of[seed] += 1
            within[seed] += max(sc["queue_median"], sc["prefill_median"]) <= 0.10 \
                and max(sc["queue_p90"], sc["prefill_p90"]) <= 0.25
            mean = (sc["queue_coverage"] + sc["prefill_coverage"]) / 2
            band[seed] += 0.75 <= mean <= 0.90
            if mean < 0.75:
                below[seed].append(f"{workload} {100 * sc['queue_coverage']:.0f}/{100 * sc['prefill_coverage']:.0f}")
            if seed != seeds[0]:
                cells.append(f"{_pc(sc['queue_p90'])} / {_pc(sc['prefill_p90'])}, "
                             f"{100 * sc['queue_coverage']:.0f} / {100 * sc['prefill_coverage']:.0f} %")
        cells.append(f"{_pc(first['opaque_queue_median'])} / {_pc(first['opaque_queue_p90'])} %")
        print("| " + " | ".join(cells) + " |")
    for seed in seeds:
        print(f"seed {seed} ({runs[seed].name}): {within[seed]} of {runs_of[seed]} within the target; coverage "
              f"(mean of queue and prefill) within 75-90 % in {band[seed]}, below in {below[seed] or 'none'}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
