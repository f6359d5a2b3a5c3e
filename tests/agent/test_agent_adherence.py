"""The shared adherence case table (also read by the Go tests) and properties of the scoring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmotel.agent.adherence import Revision, effective_plan, lcs, matched, score

CASES_PATH = Path(__file__).resolve().parents[2] / "semconv" / "adherence_cases.json"
TABLE: dict[str, Any] = json.loads(CASES_PATH.read_text())
CASES: list[dict[str, Any]] = TABLE["cases"]


def test_table_is_big_enough_and_names_are_unique() -> None:
    names = [c["name"] for c in CASES]
    assert len(names) >= 15
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_case(case: dict[str, Any]) -> None:
    revisions = [Revision(r["planned"], r["executed"]) for r in case["revisions"]]
    got = score(revisions, case["unplanned"])
    want = case["expect"]
    tol = TABLE["tolerance"]
    for key in ("ordered", "precision", "recall"):
        assert getattr(got, key) == pytest.approx(want[key], abs=tol), key
    for key in ("skipped", "extra", "repeated", "reordered", "replans"):
        assert getattr(got, key) == want[key], key


def test_lcs_known_values() -> None:
    assert lcs("ABCBDAB", "BDCABA") == 4  # the textbook example (CLRS)
    assert lcs([], ["a"]) == 0
    assert lcs(["a", "b"], ["b", "a"]) == 1


def reference_lcs(a: list[str], b: list[str]) -> int:
    """The textbook quadratic DP, to check the bit-parallel implementation against."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = table[i - 1][j - 1] + 1 if x == y else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


@given(
    st.lists(st.sampled_from("abcdefg"), max_size=40),
    st.lists(st.sampled_from("abcdefgh"), max_size=150),
)
def test_bit_parallel_lcs_equals_the_dp(a: list[str], b: list[str]) -> None:
    assert lcs(a, b) == reference_lcs(a, b) == lcs(b, a)


def test_long_run_scores_fast() -> None:
    import time

    plan = [f"t{i % 50}" for i in range(500)]
    executed = [f"t{(i * 7) % 60}" for i in range(20_000)]
    t0 = time.process_time()  # CPU time: immune to a busy machine, not to a slower algorithm
    got = score([Revision(plan, executed)])
    assert time.process_time() - t0 < 2.0  # the quadratic DP takes ~10^7 cell updates here (~15 ms)
    assert got.skipped + (len(executed) - got.extra) == len(plan)


def test_effective_plan_cuts_after_last_executed_step() -> None:
    assert list(effective_plan(["a", "b", "c", "d"], ["a", "b"])) == ["a", "b"]
    assert list(effective_plan(["a", "b", "c"], ["c"])) == ["a", "b", "c"]
    assert list(effective_plan(["a", "a", "b"], ["a"])) == ["a"]
    assert list(effective_plan(["a", "b"], [])) == []


names = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=8)


@given(st.lists(st.tuples(names, names), max_size=4), names)
def test_invariants(pairs: list[tuple[list[str], list[str]]], unplanned: list[str]) -> None:
    got = score([Revision(p, e) for p, e in pairs], unplanned)
    assert 0.0 <= got.ordered <= 1.0
    assert 0.0 <= got.precision <= 1.0
    assert 0.0 <= got.recall <= 1.0
    assert min(got.skipped, got.extra, got.reordered, got.replans) >= 0
    executed_total = len(unplanned) + sum(len(e) for _, e in pairs)
    assert len(got.executed) == executed_total
    # Every effective step is either matched or skipped; every executed tool either matched or extra.
    matched_total = len(got.planned) - got.skipped
    assert matched_total == executed_total - got.extra
    assert got.reordered <= matched_total
    # The final revision is never cut.
    if pairs:
        assert list(got.planned[len(got.planned) - len(pairs[-1][0]) :]) == pairs[-1][0] or not pairs[-1][0]


@given(names, names)
def test_single_revision_perfect_iff_identical(planned: list[str], executed: list[str]) -> None:
    got = score([Revision(planned, executed)])
    perfect = got.ordered == 1.0 and got.skipped == 0 and got.extra == 0 and got.reordered == 0
    assert perfect == (planned == executed)
    assert matched(planned, executed) == matched(executed, planned)
