"""Plan adherence: how far the tools an agent executed are from the plans it announced.

Pure functions, no telemetry. The definition is written once in docs/agents.md; the Go package
collector/llmsliconnector/internal/adherence implements the same one and both are tested against
semconv/adherence_cases.json.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Revision:
    """One announced plan and the tools executed while it was in force (until the next re-plan or the run's end)."""

    planned: Sequence[str]
    executed: Sequence[str]


@dataclass(frozen=True)
class Adherence:
    """Scores of one agent run. See docs/agents.md for the definition of every field."""

    ordered: float
    precision: float
    recall: float
    skipped: int
    extra: int
    repeated: int
    """Extra executions of a tool its revision planned (retries, loops); counted in `extra` too."""
    reordered: int
    replans: int
    planned: tuple[str, ...]
    """The effective plan the run was held to: every revision's plan, superseded ones cut after their last executed
    step, concatenated in order."""
    executed: tuple[str, ...]
    """Every executed tool in order, those run before the first plan included."""


def effective_plan(planned: Sequence[str], executed: Sequence[str]) -> Sequence[str]:
    """A superseded revision's plan, cut after the last step that was executed while it was in force.

    Step i counts as executed when its occurrence number among planned[:i+1] is at most the number of times that
    tool appears in `executed`. Steps after the last such step were dropped by the re-plan, not skipped.
    """
    available = Counter(executed)
    seen: Counter[str] = Counter()
    end = 0
    for i, step in enumerate(planned):
        seen[step] += 1
        if seen[step] <= available[step]:
            end = i + 1
    return planned[:end]


def matched(planned: Sequence[str], executed: Sequence[str]) -> int:
    """Size of the multiset intersection of the two sequences."""
    available = Counter(executed)
    count = 0
    for step in planned:
        if available[step] > 0:
            available[step] -= 1
            count += 1
    return count


def repeated(planned: Sequence[str], executed: Sequence[str]) -> int:
    """Executions of a planned tool beyond the number of times the plan lists it: a retry or a loop."""
    want = Counter(planned)
    return sum(k - want[name] for name, k in Counter(executed).items() if 0 < want[name] < k)


def lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence: exact, bit-parallel over b (Hyyro 2004), O(len(a) * len(b) / 64).

    A long run (thousands of tools) is scored at its end in milliseconds instead of the quadratic DP's seconds.
    """
    if not a or not b:
        return 0
    positions: dict[str, int] = {}
    for i, y in enumerate(b):
        positions[y] = positions.get(y, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full  # a zero bit marks a column where the LCS grew
    for x in a:
        u = v & positions.get(x, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def score(revisions: Sequence[Revision], unplanned: Sequence[str] = ()) -> Adherence:
    """Score a run from its plan revisions (in announcement order) and the tools executed before any plan.

    Pure and deterministic; never raises for well-typed input.
    """
    planned_total = 0
    lcs_total = 0
    matched_total = 0
    skipped = 0
    extra = len(unplanned)
    repeats = 0
    reordered = 0
    effective: list[str] = []
    executed: list[str] = list(unplanned)
    last = len(revisions) - 1
    for r, rev in enumerate(revisions):
        plan = rev.planned if r == last else effective_plan(rev.planned, rev.executed)
        m = matched(plan, rev.executed)
        length = lcs(plan, rev.executed)
        planned_total += len(plan)
        matched_total += m
        lcs_total += length
        skipped += len(plan) - m
        extra += len(rev.executed) - m
        repeats += repeated(plan, rev.executed)
        reordered += m - length
        effective.extend(plan)
        executed.extend(rev.executed)

    # Repeats of planned steps lengthen the denominator: an agent looping on its plan is not in order.
    # Nothing planned: vacuously perfect if nothing ran either, else nothing that ran was planned.
    denominator = planned_total + repeats
    ordered = lcs_total / denominator if denominator else (0.0 if executed else 1.0)
    return Adherence(
        ordered=ordered,
        precision=matched_total / len(executed) if executed else 1.0,
        recall=matched_total / planned_total if planned_total else 1.0,
        skipped=skipped,
        extra=extra,
        repeated=repeats,
        reordered=reordered,
        replans=max(len(revisions) - 1, 0),
        planned=tuple(effective),
        executed=tuple(executed),
    )
