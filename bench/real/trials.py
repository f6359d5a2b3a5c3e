"""Held-out trials: workloads outside bench/real's matrix, run on the real server through the same harness.

The matrix (harness.WORKLOADS) was designed together with the estimator; these combinations were not. Session 13 ran
them to find what the matrix missed (docs/phases.md, "Held-out trials (session 13)"): trial 1 found prefix-cache hits
that no usage reports (the prefix book) and two chats alternating on one slot (the restore allowance); both are in
the matrix since, as prefix_cache_no_usage and conversation_2_callers. Recordings go to bench/.cache/trials/ (not
committed: a trial is a probe, not test data); the harness prints its scoreboard. A workload's prompts are drawn with
the run's seed plus its index in the harness's list: trial 2 (seed 41) was run with the matrix of 22 workloads as it
is, so it draws the same prompts again; trial 1 (seed 31) ran beside 19, so a rerun draws others.

    LLAMA_SERVER=... .venv/bin/python bench/real/trials.py 1 --seed 31      # trial 1, ~10 min
    LLAMA_SERVER=... .venv/bin/python bench/real/trials.py 2 --seed 41      # trial 2, ~14 min
    LLAMA_SERVER=... .venv/bin/python bench/real/trials.py 3 --seed 51      # trial 3 (async callers), ~8 min
    LLAMA_SERVER=... .venv/bin/python bench/real/trials.py 4 --seed 61      # trial 4 (another model), ~10 min
    LLAMA_SERVER=... .venv/bin/python bench/real/trials.py 5 --seed 81      # trial 5 (session 15), ~12 min
    LLAMA_SERVER=... .venv/bin/python bench/real/trials.py 6 --seed 91      # trial 6 (session 17), ~15 min
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
from harness import Workload  # noqa: E402

TRIALS: dict[str, tuple[Workload, ...]] = {
    "1": (
        Workload("h_two_slots_8_callers", "2 slots, 8 callers", slots=2, callers=8),
        Workload("h_one_slot_2_callers_long_out", "1 slot, 2 callers, 80-200 output tokens", callers=2,
                 max_tokens=(80, 200)),
        Workload("h_idle_short", "idle, 10-150-token prompts, 4-16 output tokens", tokens=(10, 150),
                 max_tokens=(4, 16)),
        Workload("h_prefix_early_no_usage", "prefix cache, headers on arrival, no usage", prefix=True,
                 tokens=(20, 400), headers="early", include_usage=False),
        Workload("h_conversation_2_callers", "chats, 2 callers on one slot", conversation=4000, tokens=(20, 300),
                 callers=2),
        Workload("h_three_slots_3_callers", "3 slots, 3 callers: batching, no queue", slots=3, callers=3),
        Workload("h_two_slots_2_callers_1_unseen", "2 slots, 2 callers and 1 unseen", slots=2, callers=2, unseen=1),
        Workload("h_one_slot_3_callers_non_streaming_long", "1 slot, 3 callers, whole bodies of 500-3,000-token "
                 "prompts", callers=3, stream=False, tokens=(500, 3000)),
    ),
    "2": (
        Workload("h2_prefix_sizes_no_usage", "prefix sizes 200-3,000, no usage", prefix=True,
                 prefix_sizes=(200, 700, 1500, 3000), tokens=(20, 400), include_usage=False),
        Workload("h2_prefix_cache_2_callers_no_usage", "prefix cache, 2 callers, no usage", prefix=True,
                 tokens=(20, 400), callers=2, include_usage=False),
        Workload("h2_conversation_3_callers_early", "chats, 3 callers, headers on arrival", conversation=3000,
                 tokens=(20, 300), callers=3, headers="early"),
        Workload("h2_two_slots_conversation_4_callers", "chats, 2 slots, 4 callers", slots=2, conversation=3000,
                 tokens=(20, 300), callers=4),
        Workload("h2_idle_long_prompts", "idle, 1,500-5,000-token prompts", tokens=(1500, 5000), max_tokens=(8, 24)),
        Workload("h2_mixed_prefix_2_callers", "bodies and streams at random, prefix cache, 2 callers", prefix=True,
                 tokens=(20, 400), callers=2, mixed=True),
        Workload("h2_one_slot_4_callers_no_usage_early", "1 slot, 4 callers, no usage, headers on arrival", callers=4,
                 include_usage=False, headers="early"),
    ),
    # Session 14: every caller an asyncio task of one event loop with AsyncOpenAI (the matrix runs threads and
    # the sync client): the client reads many streams in one thread, between the app's own awaits.
    "3": (
        Workload("h3_async_idle", "idle, AsyncOpenAI", aio=True),
        Workload("h3_async_one_slot_4_callers", "1 slot, 4 async callers", callers=4, aio=True),
        Workload("h3_async_two_slots_6_callers_mixed", "2 slots, 6 async callers, bodies and streams at random",
                 slots=2, callers=6, mixed=True, aio=True),
        Workload("h3_async_prefix_2_callers_no_usage", "prefix cache, 2 async callers, no usage", prefix=True,
                 tokens=(20, 400), callers=2, include_usage=False, aio=True),
    ),
    # Session 14: another model than the matrix's (12 layers of width 384, 2 KV heads of 6: grouped-query attention,
    # half the KV state per token and twice the layers), on workloads of the matrix's kinds.
    "4": (
        Workload("h4_idle", "idle, another model"),
        Workload("h4_one_slot_4_callers", "1 slot, 4 callers, another model", callers=4),
        Workload("h4_two_slots_4_callers_non_streaming", "2 slots, 4 callers, bodies, another model", slots=2,
                 callers=4, stream=False),
        Workload("h4_conversation_2_callers", "chats, 2 callers on one slot, another model", conversation=4000,
                 tokens=(20, 300), callers=2),
        Workload("h4_prefix_cache_no_usage", "prefix cache, no usage, another model", prefix=True, tokens=(20, 400),
                 include_usage=False),
    ),
    # Session 15, after its two changes (points taught before the slot count was known lose its wait; a pass-mate
    # not split yet is as cached as the key's prompts): more slots for whole bodies, and own streams sharing passes
    # on cached system prompts, which the matrix has only on one slot or without a prefix.
    "5": (
        Workload("h5_three_slots_6_callers_non_streaming", "3 slots, 6 callers, whole bodies", slots=3, callers=6,
                 stream=False),
        Workload("h5_two_slots_4_callers_prefix", "2 slots, 4 callers, prefix cache", slots=2, callers=4,
                 prefix=True, tokens=(20, 400)),
        Workload("h5_two_slots_4_callers_prefix_non_streaming", "2 slots, 4 callers, prefix cache, whole bodies",
                 slots=2, callers=4, prefix=True, tokens=(20, 400), stream=False),
        Workload("h5_idle_non_streaming_long", "idle, whole bodies of 500-3,000-token prompts, 8-60 output tokens",
                 stream=False, tokens=(500, 3000), max_tokens=(8, 60)),
        Workload("h5_two_slots_6_callers_prefix_no_usage", "2 slots, 6 callers, prefix cache, no usage", slots=2,
                 callers=6, prefix=True, tokens=(20, 400), include_usage=False),
    ),
    # Session 17, designed before the run and not tuned on: prompts so short that the request path and the server's
    # fixed work are most of TTFT; a prefix cache of many sizes behind own calls; chats without usage with headers
    # on arrival; long prompts batched on two slots; a prefix cache with a caller llmotel does not see.
    "6": (
        Workload("h6_idle_tiny_prompts", "idle, 5-60-token prompts, 1-4 output tokens", tokens=(5, 60),
                 max_tokens=(1, 4)),
        Workload("h6_one_slot_2_callers_prefix_sizes", "1 slot, 2 callers, system prompts of 200-3,000 tokens",
                 callers=2, prefix=True, prefix_sizes=(200, 700, 1500, 3000), tokens=(20, 400)),
        Workload("h6_conversation_no_usage_early", "chats, no usage, headers on arrival", conversation=3000,
                 tokens=(20, 300), include_usage=False, headers="early"),
        Workload("h6_two_slots_3_callers_long_prompts", "2 slots, 3 callers, 1,000-4,000-token prompts", slots=2,
                 callers=3, tokens=(1000, 4000), max_tokens=(8, 24)),
        Workload("h6_prefix_cache_1_unseen", "prefix cache, 1 caller and 1 unseen", prefix=True, tokens=(20, 400),
                 unseen=1),
        Workload("h6_one_slot_3_callers_mixed_no_usage", "1 slot, 3 callers, bodies and streams at random, no usage",
                 callers=3, mixed=True, include_usage=False),
    ),
}
# Harness arguments a trial adds (its model).
TRIAL_ARGS: dict[str, list[str]] = {"4": ["--dims", "12,384,6,2,1024"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trial", choices=sorted(TRIALS))
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args()
    chosen = TRIALS[args.trial]
    harness.WORKLOADS = harness.WORKLOADS + chosen
    record_dir = HERE.parent / ".cache" / "trials" / f"trial{args.trial}-seed{args.seed}"
    sys.argv = [sys.argv[0], "--seed", str(args.seed), "--record-dir", str(record_dir)]
    sys.argv += [a for w in chosen for a in ("-w", w.name)] + TRIAL_ARGS.get(args.trial, [])
    harness.main()


if __name__ == "__main__":
    main()
