"""The recorded multi-caller runs replayed as if every call had been a whole body (non-streaming): what the slot
count whole bodies imply (src/llmotel/phases/own_queue.py) does on servers of one, two and three slots, where the
harness recorded streams. An analysis for issue #16, not part of the estimator or of ``make test``.

Each stream is turned into the whole body it would have been: no first token, headers with the body, usage from
the server's truth (prompt, cached and predicted tokens). Scored as the scoreboard scores non-streaming calls.

    .venv/bin/python bench/real/as_bodies.py [seed ...]
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "src"))

import replay  # noqa: E402
from score import score_workload  # noqa: E402


def as_bodies(recording: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``recording`` whose calls are whole bodies."""
    rec = copy.deepcopy(recording)
    for call in rec["calls"]:
        cap, truth = call["capture_ns"], call["truth"]
        call["request"]["stream"] = False
        cap.update(first_content=0, last_chunk=0, chunk_count=0, content_chunk_count=0, headers=cap["end"])
        call["response"]["usage"] = {"input": truth["prompt_n"] + truth["cache_n"], "output": truth["predicted_n"],
                                     "cached": truth["cache_n"]}
    return rec


def main() -> None:
    import llmotel.phases.own_queue as own_queue

    seeds = sys.argv[1:]
    print(f"{'run/workload':52} slots {'queue med / p90':>16} {'prefill med / p90':>18} {'coverage':>10}  "
          "counts chosen")
    for path in replay.recordings():
        if seeds and not any(f"seed{s}" in path.parent.name for s in seeds):
            continue
        rec = replay.load(path)
        if rec["meta"].get("callers", 1) <= 1 or "start_ns" not in rec["calls"][0]:
            continue
        chosen: list[int | None] = []
        choose = own_queue._body_slots

        def spy(bodies: Any, kept: int | None = None, choose: Any = choose,
                chosen: list[int | None] = chosen) -> int | None:
            k: int | None = choose(bodies, kept)
            chosen.append(k)
            return k

        own_queue._body_slots = spy
        try:
            row = score_workload(rec["meta"]["workload"], replay.replay(as_bodies(rec)), int(rec["meta"]["warmup"]),
                                 "replay")[0]
        finally:
            own_queue._body_slots = choose
        counts = ",".join("-" if k is None else "none" if k > own_queue.MAX_SLOTS else str(k) for k in chosen)
        print(f"{path.parent.name + '/' + path.stem:52} {rec['meta'].get('slots', '?'):>5} "
              f"{100 * row['queue_median']:7.1f} / {100 * row['queue_p90']:5.1f} "
              f"{100 * row['prefill_median']:8.1f} / {100 * row['prefill_p90']:5.1f} "
              f"{100 * row['queue_coverage']:4.0f} / {100 * row['prefill_coverage']:3.0f}  {counts}")


if __name__ == "__main__":
    main()
