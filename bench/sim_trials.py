"""Held-out simulator trials: scenarios outside bench/phase_accuracy.py's eleven, run through the same script.

The eleven scenarios were designed with the estimator (as bench/real's matrix was); these combinations were not.
Session 14 ran them to see whether the simulator's targets hold off the scenarios they were met on
(docs/phases.md, "Held-out trials"). Nothing is written to bench/RESULTS.md (a trial is a probe): the script
prints each scenario's row, coverage included.

    .venv/bin/python bench/sim_trials.py --seed 71      # ~6 min
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import phase_accuracy as pa  # noqa: E402
from phase_accuracy import Scenario  # noqa: E402

TRIAL: tuple[Scenario, ...] = (
    Scenario("s_two_seqs_6_callers_hosted", "6 callers on a replica of 2 sequences (a full batch), stream headers "
             "with the first token", pa._config("s_two_seqs_6_callers_hosted", pa._replica(max_batch=2),
                                                headers_at_first_token=True),
             clients=6, sizes=pa._uncached, headers_at_first_token=True),
    Scenario("s_mixed_load", "4 callers on one replica, half of the calls without streaming",
             pa._config("s_mixed_load"), clients=4, sizes=pa._uncached, nonstream_share=0.5,
             scored_nonstream_share=0.5),
    Scenario("s_slow_scatter", "1 caller; a replica 4x slower per token whose prefill scatters more (sigma 0.15)",
             pa._config("s_slow_scatter", pa._replica(prefill_s_per_token=0.0002, prefill_jitter=0.15)),
             sizes=pa._uncached),
    Scenario("s_cache_heavy_hosted_4", "4 callers; ~5k-token shared system prompts + 20-800 new tokens, stream "
             "headers with the first token", pa._config("s_cache_heavy_hosted_4", headers_at_first_token=True),
             clients=4, sizes=pa._cache_heavy, headers_at_first_token=True),
    Scenario("s_bursty_3_callers", "3 callers pausing 0-1 s between calls on one replica",
             pa._config("s_bursty_3_callers"), clients=3, think_s=(0.0, 1.0), sizes=pa._uncached),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=71)
    parser.add_argument("--scenario", action="append", help="run only these of the trial's (repeatable)")
    parser.add_argument("--dump", help="write every scored call to this JSON file (phase_accuracy.py --dump)")
    args = parser.parse_args()
    pa.SCENARIOS = pa.SCENARIOS + list(TRIAL)
    names = args.scenario or [s.name for s in TRIAL]
    sys.argv = [sys.argv[0], "--seed", str(args.seed)] + [a for n in names for a in ("--scenario", n)]
    if args.dump:
        sys.argv += ["--dump", args.dump]
    pa.main()


if __name__ == "__main__":
    main()
