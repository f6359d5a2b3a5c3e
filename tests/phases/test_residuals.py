"""The residual share (llmotel/phases/residuals.py): how far above its estimate a key's prefill interval reaches."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from llmotel.phases import residuals
from llmotel.phases.residuals import Residuals

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "real"))

import replay  # noqa: E402


def test_no_share_until_the_key_has_enough_calls() -> None:
    book = Residuals()
    for _ in range(residuals._MIN_CALLS - 1):
        book.observe("k", 0.02, 0.1)
    assert book.share("k") == 0.0
    book.observe("k", 0.02, 0.1)
    assert book.share("k") == pytest.approx(residuals._SHARE * 0.2)


def test_the_share_is_half_the_median_of_recent_calls_per_key() -> None:
    book = Residuals()
    # Hand-computed: ratios 0.00, 0.05, ..., 0.55 (twelve calls; the share is updated at the 8th and every 4th
    # call); the median by index int(0.5 * 12) = 6 is 0.30; half of it is 0.15. Another key's calls do not move it.
    for i in range(12):
        book.observe("steady", 0.0, 1.0)
        book.observe("noisy", 0.05 * i, 1.0)
    assert book.share("noisy") == pytest.approx(0.15)
    assert book.share("steady") == 0.0
    # Only the last _WINDOW calls count: after 32 calls at 0.1 the old ones are gone.
    for _ in range(residuals._WINDOW):
        book.observe("noisy", 0.1, 1.0)
    assert book.share("noisy") == pytest.approx(0.05)


def test_bad_values_are_ignored_and_keys_are_bounded() -> None:
    book = Residuals(max_keys=2)
    for bad in ((0.1, 0.0), (-0.1, 1.0), (math.nan, 1.0), (0.1, math.nan), (0.1, -1.0)):
        book.observe("k", *bad)
    assert book._rings.get("k") is None or not book._rings["k"].values
    for key in ("a", "b", "c"):
        for _ in range(residuals._MIN_CALLS):
            book.observe(key, 0.1, 1.0)
    assert len(book._rings) == 2 and book.share("a") == 0.0 and book.share("c") > 0.0


def test_a_noisy_real_run_is_covered_because_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama.cpp on a busy 2-core CPU (seed 9's idle_no_usage): small prompts ran 10-25 ms above the floor with a
    true queue of 5-10 ms. The key's own calls teach how far; without the share the intervals miss those calls."""
    path = replay.RECORDINGS / "run-2026-12-06-seed9" / "idle_no_usage.json"
    if not path.exists():
        pytest.skip("recording not present")
    rec = replay.load(path)
    with_share = replay.score(rec)[0]
    monkeypatch.setattr(residuals, "_SHARE", 0.0)
    without = replay.score(rec)[0]
    mean = (with_share["queue_coverage"] + with_share["prefill_coverage"]) / 2.0
    assert mean >= 0.75 and with_share["queue_coverage"] >= 0.70, with_share
    assert without["queue_coverage"] < 0.75 and without["queue_coverage"] < with_share["queue_coverage"], without
    # The estimates themselves do not move: only their intervals.
    assert without["queue_median"] == with_share["queue_median"]
