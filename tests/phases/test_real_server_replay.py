"""Recorded llama-server runs, replayed through llmotel's phase model (no llama.cpp needed).

    .venv/bin/python -m pytest -q tests/phases/test_real_server_replay.py

The recordings (tests/data/real_server/<run>/<workload>.json) come from bench/real/harness.py; README.md here defines
their truth. Three kinds of checks:

- the recordings are consistent (token counts add up, the client never sees a token before the server
  sampled it, so the two processes' clocks agree);
- replaying a recording with the llmotel that recorded it reproduces the live estimates (the replay builds
  what the instrumentor built); only run while ``src/llmotel`` is unchanged since recording;
- the replayed estimate's accuracy per workload against the simulator scoreboard's target (median <= 10 %,
  p90 <= 25 % of TTFT for queue and prefill). Workloads llmotel misses today are ``xfail`` with the
  numbers measured at recording, so a fix shows up as XPASS.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The same file works from bench/real/ or moved into tests/: find the repository root above it.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "bench" / "real" / "replay.py").exists())
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench" / "real"))

import replay  # noqa: E402
from score import samples, ttft_s  # noqa: E402

PATHS = replay.recordings()
TARGET_MEDIAN, TARGET_P90 = 0.10, 0.25
# Workloads whose replayed scores miss the target, as {"<run folder>/<workload>": the numbers and why}. A fix
# makes its test XPASS: then remove it (docs/phases.md has every run's figures).
KNOWN_MISSES: dict[str, str] = {
    "run-2026-12-07-seed21/conversation": "queue / prefill p90 25.9 / 25.6 % (median 3.9 / 4.4 %): one chat grew to "
    "4,000-5,900 tokens of context, beyond what the key had sent before, and the envelope's fit had just moved to "
    "a vertex with a lower per-token slope (0.41 -> 0.29 ms) and a higher intercept (8 -> 26 ms): those ten calls' "
    "prefill read 20-30 % low (seeds 11, 12, 14: p90 20.9, 15.3, 8.3 %).",
    "trial6-2026-12-07-seed91/h6_prefix_cache_1_unseen": "queue / prefill median 14.0 / 14.4 %, p90 22.7 / 23.2 % "
    "(bench/real trial 6, held out: a prefix cache on one slot shared with a caller llmotel does not see): every call "
    "waited 70-320 ms for the unseen caller, so no call shows the server idle; with one cached size and misses of one "
    "size the least wait and the hits' fixed cost are one number to the fit, which books it as cache read up to its "
    "cap and the rest into the per-token cost: the hits' prefill reads 10-70 ms long. The interval reaches over it "
    "(coverage 78 / 75 %, test_the_interval_of_a_hit_reaches_over_a_cache_read_cost_at_its_cap).",
}
# Interval coverage below the test's floor (mean of queue's and prefill's 75 %, each 70 %; the target is 75-90 %).
KNOWN_COVERAGE_MISSES: dict[str, str] = {
    "run-2026-12-07-seed11/one_slot_4_callers_mixed": "coverage queue / prefill 83 / 63 %: the key's whole bodies "
    "take their decode from its streams' time per token (carried to their context), and in this run the streams ran "
    "21 % slower per token than the bodies (estimated / true decode 1.21; seeds 10 and 12: 0.97 and 1.00, coverage "
    "88 / 90 and 85 / 90 %), more "
    "than the 15 % of the estimated decode the prefill's interval allows for it.",
    "run-2026-12-07-seed23/one_slot_2_callers_2_unseen": "coverage queue / prefill 22 / 18 % (live at d8c95ff; "
    "accuracy within, queue p90 8.9 %): the two unseen callers kept the one slot busy, the calls that taught the floor "
    "held their waits, and the fit spread them over the prompt's tokens (per-token slope 0.78-0.86 ms against ~0.45; "
    "seed 22: 0.48), so small prompts read their prefill 12-40 ms long, outside an own-wait band that lets the queue "
    "run ~7 ms above the measured wait (seeds 11, 12, 14, 21: 83-90 %).",
    "run-2026-12-07-seed21/prefix_cache": "coverage queue / prefill 70 / 73 %: the envelope's per-token slope and "
    "attention term trade places between refits (0.44 / 0.43 -> 0.74 / 0.10 -> 0.56 / 0.26 ms per token / per "
    "1,000 token pairs) on two clusters of calls (hits of ~1,500 cached tokens, misses of ~1,600 fresh), and the "
    "hits' interval is the fit's at full confidence (seeds 11, 12, 14: 100 / 100, 93 / 95, 82 / 82 %).",
}
IDS = [p.relative_to(replay.RECORDINGS).with_suffix("").as_posix() for p in PATHS]

pytestmark = pytest.mark.skipif(not PATHS, reason="no recordings in tests/data/real_server")


def _load(path: Path) -> dict[str, Any]:
    return replay.load(path)


def _id(path: Path) -> str:
    return path.relative_to(replay.RECORDINGS).with_suffix("").as_posix()


@pytest.fixture(scope="module", params=PATHS, ids=IDS)
def recording(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


def test_recordings_are_small() -> None:
    # About 2.6 MB per harness run of nineteen workloads of 100 calls (format 2), 3.0 MB of twenty-two: keep four runs
    # at most. Seeds 11 and 12 each hold a real behaviour a test names (a scattering idle server; one caller's whole
    # bodies decoding slow in spells), 14 a quiet server (session 12's held-out live run), 21 the live run of
    # session 15's estimator (seeds 13 and 15, earlier live runs, are in git history); seed 17
    # only its two_slots_4_callers_non_streaming (136 kB), whose floor was learned from calls that waited behind own
    # calls before the slot count was known (Calibrator.settle); trial 6 (held out, session 17) only its prefix cache
    # shared with an unseen caller (138 kB), whose fit cannot tell the least wait from the hits' cache read; seed 23
    # (session 17's live run) only its one_slot_2_callers_2_unseen (140 kB), whose floor held the unseen waits.
    total = sum(p.stat().st_size for p in PATHS)
    assert total < 11_500_000, f"{total} bytes of recordings: keep four runs at most"


def test_recording_is_consistent(recording: dict[str, Any]) -> None:
    meta, calls = recording["meta"], recording["calls"]
    assert len(calls) > int(meta["warmup"]) + 20
    assert len({c["order"] for c in calls}) == len(calls)
    for c in calls:
        truth, cap = c["truth"], c["capture_ns"]
        assert truth["prefill_s"] > 0, c["call"]
        # The proxy's clock and the client's are the same CLOCK_MONOTONIC: a request reaches the proxy
        # after it was sent, and the server cannot start before the request arrived.
        assert truth["request_path_s"] >= 0, c["call"]
        assert truth["server_queue_s"] >= -0.001, c["call"]
        assert 0 <= cap["attempt_start"] <= cap["end"]
        if c["request"]["stream"]:
            # The client cannot see the first token before the server sampled it (1 ms of slack for the
            # proxy's stamp being taken after the bytes arrived).
            assert truth["first_token_s"] >= -0.001, c["call"]
            ttft = ttft_s(c)
            assert abs(truth["queue_s"] + truth["prefill_s"] + truth["first_token_s"] - ttft) < 1e-5
        usage = c["response"]["usage"]
        if usage is not None and truth["prompt_n"] is not None:
            assert usage["input"] == truth["prompt_n"] + truth["cache_n"], c["call"]
            assert usage["cached"] == truth["cache_n"], c["call"]
            assert usage["output"] == truth["predicted_n"] == c["request"]["max_tokens"], c["call"]


def test_replay_reproduces_live_estimates(recording: dict[str, Any]) -> None:
    """Same code, same inputs, same order: the replay must give the spans' estimates back."""
    recorded_with = recording["meta"].get("llmotel_src_sha256")
    if recorded_with != replay.llmotel_source_hash():
        pytest.skip("src/llmotel changed since this recording: live estimates are the old code's")
    replayed = replay.replay(recording)
    off = 0
    for call in replayed:
        t = ttft_s(call)
        for phase in ("queue", "prefill", "first_token", "decode"):
            if abs(call["replay"][phase]["s"] - call["live"][phase]["s"]) > 0.01 * t + 1e-4:
                off += 1
                break
    # The headers stamp is the harness's, not llmotel's (tens of us apart): allow a call or two to differ.
    assert off <= max(2, len(replayed) // 50), f"{off} of {len(replayed)} calls replay differently"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_replayed_accuracy(path: Path, request: pytest.FixtureRequest) -> None:
    rec = _load(path)
    name = _id(path)
    if name in KNOWN_MISSES:
        # Not pytest.xfail(): the check must still run, so that meeting the target shows as XPASS.
        request.applymarker(pytest.mark.xfail(reason=KNOWN_MISSES[name], strict=False))
    row = replay.score(rec)[0]
    assert row["n"] >= 20
    misses = [f"{k} {row[k]:.1%}" for k, limit in (("queue_median", TARGET_MEDIAN), ("queue_p90", TARGET_P90),
                                                   ("prefill_median", TARGET_MEDIAN), ("prefill_p90", TARGET_P90))
              if not row[k] <= limit]
    assert not misses, f"{name}: " + ", ".join(misses)


def test_estimate_uses_what_the_client_saw(recording: dict[str, Any]) -> None:
    """The proxy hid the server's timing: every queue / prefill phase must be an estimate, never 'server'."""
    for s in samples(recording["calls"]):
        assert s["est_queue"] >= 0 and s["est_prefill"] >= 0
    for c in recording["calls"]:
        assert c["live"]["queue"]["source"] == "estimated"
        assert c["live"]["prefill"]["source"] == "estimated"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_replayed_intervals_cover_the_truth(path: Path, request: pytest.FixtureRequest) -> None:
    """Every estimated queue / prefill carries an 80 % interval. The target is 75-90 % coverage; measured on
    these recordings: a mean of queue's and prefill's within 75-90 % in most runs, above 90 % in many, below 75 % in
    one (listed above); each phase 70-100 % (docs/phases.md has each workload's figure). This test holds the floor
    that must not regress: the mean of the two at least 75 %, each at least 70 % (a run scores 60 calls: one call is
    1.7 %), and the estimate inside its interval."""
    rec = _load(path)
    name = _id(path)
    reason = KNOWN_COVERAGE_MISSES.get(name)
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))
    replayed = replay.replay(rec)[int(rec["meta"]["warmup"]):]
    for call in replayed:
        for phase in ("queue", "prefill"):
            iv = call["replay"][phase].get("interval")
            assert iv is not None, f"{call['call']}: {phase} has no interval"
            # Phases are whole nanoseconds, the interval is not rounded: 1 ns of slack either side.
            assert 0.0 <= iv["low"] <= call["replay"][phase]["s"] + 1e-9 <= iv["high"] + 2e-9, call["call"]
    row = replay.score(rec)[0]
    mean = (row["queue_coverage"] + row["prefill_coverage"]) / 2.0
    assert mean >= 0.75 and row["queue_coverage"] >= 0.70 and row["prefill_coverage"] >= 0.70, (
        f"{name}: coverage queue {row['queue_coverage']:.0%}, prefill {row['prefill_coverage']:.0%}"
    )


def test_the_interval_of_a_hit_reaches_over_a_cache_read_cost_at_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial 6's prefix cache shared with an unseen caller: the fit's cache-read cost sits at its cap, and what it
    holds may be the least wait (model._tie_cache_read). Without the interval reaching over it, the truth fell
    outside it on 4 calls in 10 (coverage 62 / 58 %, measured at 5284bcc); with it, 78 / 75 %."""
    path = replay.RECORDINGS / "trial6-2026-12-07-seed91" / "h6_prefix_cache_1_unseen.json"
    if not path.exists():
        pytest.skip("recording not present")
    import llmotel.phases.model as phase_model

    rec = _load(path)
    row = replay.score(rec)[0]
    assert row["queue_coverage"] >= 0.75 and row["prefill_coverage"] >= 0.73
    monkeypatch.setattr(phase_model, "_tie_cache_read", lambda w, cache_read_s: None)
    without = replay.score(rec)[0]
    assert without["queue_coverage"] < 0.65 and without["prefill_coverage"] < 0.65
