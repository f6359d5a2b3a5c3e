"""Expected signatures of the scenarios, checked on rows that a client (or its spans) can see.

A row is anything with the attributes of ``Row``: the load generator's Results qualify, and so do rows
rebuilt from exported spans (see tests/sim). Each check returns named measurements with their thresholds,
so a failure says what was seen, not just that something was off.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Row(Protocol):
    @property
    def tenant(self) -> str: ...
    @property
    def sched_s(self) -> float: ...
    @property
    def status(self) -> int: ...
    @property
    def ttft_s(self) -> float | None: ...
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def cached_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...
    @property
    def finish_reason(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def edge(self) -> str: ...


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    value: float
    threshold: float
    detail: str = ""

    def __str__(self) -> str:
        mark = "PASS" if self.ok else "FAIL"
        return f"{mark} {self.name}: {self.value:.3f} (threshold {self.threshold:g}) {self.detail}".rstrip()


def p95(values: Sequence[float]) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(0.95 * (len(s) - 1))))]


def _ok(rows: Sequence[Row], tenant: str) -> list[Row]:
    return [r for r in rows if r.tenant == tenant and r.status == 200]


def _ttfts(rows: Sequence[Row]) -> list[float]:
    return [r.ttft_s for r in rows if r.ttft_s is not None]


def victim_slowdown(exp: dict[str, Any], rows: Sequence[Row]) -> list[Check]:
    """Victim's p95 TTFT while the aggressor is active vs before it started."""
    victim = _ok(rows, exp["victim"])
    start = float(exp["aggressor_starts_s"])
    stop = float(exp.get("aggressor_stops_s", float("inf")))
    warm = float(exp.get("baseline_from_s", 0.0))  # skip the clients' first calls (imports, connections)
    base = _ttfts([r for r in victim if warm <= r.sched_s < start])
    during = _ttfts([r for r in victim if start <= r.sched_s < stop])
    ratio = p95(during) / p95(base) if base and during else float("nan")
    checks = [
        Check(
            "victim_p95_ttft_ratio",
            ratio >= exp["min_p95_ttft_ratio"],
            ratio,
            exp["min_p95_ttft_ratio"],
            f"(p95 before {p95(base):.4f}s over {len(base)}, during {p95(during):.4f}s over {len(during)})",
        ),
    ]
    aggressor = _ok(rows, exp["aggressor"])
    for kind in ("input", "output"):
        bound = exp.get(f"min_aggressor_{kind}_tokens")
        if bound is not None:
            biggest = max((getattr(r, f"{kind}_tokens") or 0 for r in aggressor), default=0)
            checks.append(Check(f"aggressor_{kind}_tokens", biggest >= bound, biggest, bound))
    return checks


def _hit_ratio(rows: Sequence[Row]) -> float:
    inp = sum(r.input_tokens or 0 for r in rows)
    return sum(r.cached_tokens or 0 for r in rows) / inp if inp else float("nan")


def cache_collapse(exp: dict[str, Any], rows: Sequence[Row]) -> list[Check]:
    """Cache hit ratio high early, collapsed late, as prefixes grow past the cache."""
    mine = sorted(_ok(rows, exp["tenant"]), key=lambda r: r.sched_s)
    third = max(1, len(mine) // 3)
    early, late = _hit_ratio(mine[:third]), _hit_ratio(mine[-third:])
    return [
        Check("early_cache_hit_ratio", early >= exp["early_min_hit_ratio"], early, exp["early_min_hit_ratio"]),
        Check("late_cache_hit_ratio", late <= exp["late_max_hit_ratio"], late, exp["late_max_hit_ratio"]),
    ]


def rollout_drift(exp: dict[str, Any], rows: Sequence[Row]) -> list[Check]:
    """Two revisions served side by side, one per edge, with visibly different output length."""
    ok = [r for r in rows if r.status == 200 and r.fingerprint]
    by_fp: dict[str, list[Row]] = {}
    for r in ok:
        by_fp.setdefault(r.fingerprint, []).append(r)
    edges_per_fp = [len({r.edge for r in group}) for group in by_fp.values()]
    means = sorted(statistics.fmean(r.output_tokens or 0 for r in group) for group in by_fp.values())
    ratio = means[-1] / means[0] if len(means) >= 2 and means[0] > 0 else float("nan")
    models = {getattr(r, "model", "") for r in ok} - {""}  # resolved snapshots differ per region
    return [
        Check("fingerprints", len(by_fp) == exp["fingerprints"], len(by_fp), exp["fingerprints"]),
        Check("edges_per_fingerprint", bool(edges_per_fp) and max(edges_per_fp) == 1, max(edges_per_fp, default=0), 1),
        Check("output_tokens_ratio", ratio >= exp["min_output_ratio"], ratio, exp["min_output_ratio"]),
        Check("resolved_models", len(models) >= exp["fingerprints"], len(models), exp["fingerprints"]),
    ]


def quota_truncation(exp: dict[str, Any], rows: Sequence[Row]) -> list[Check]:
    """One tenant silently truncated (finish length without asking for it), another rate limited."""
    trunc = _ok(rows, exp["truncated_tenant"])
    length = sum(1 for r in trunc if r.finish_reason in ("length", "max_tokens"))
    frac = length / len(trunc) if trunc else float("nan")
    limited = sum(1 for r in rows if r.tenant == exp["limited_tenant"] and r.status == 429)
    return [
        Check("truncated_fraction", frac >= exp["min_length_fraction"], frac, exp["min_length_fraction"]),
        Check("rate_limited_responses", limited >= exp["min_429"], limited, exp["min_429"]),
    ]


def cold_start(exp: dict[str, Any], rows: Sequence[Row]) -> list[Check]:
    """Requests after an idle gap pay a cold start: their TTFT dwarfs the warm ones'."""
    mine = sorted(_ok(rows, exp["tenant"]), key=lambda r: r.sched_s)
    gap = float(exp["idle_gap_s"])
    cold: list[Row] = []
    warm: list[Row] = []
    prev = float("-inf")
    for r in mine:
        (cold if r.sched_s - prev >= gap else warm).append(r)
        prev = r.sched_s
    c, w = _ttfts(cold), _ttfts(warm)
    ratio = statistics.median(c) / statistics.median(w) if c and w else float("nan")
    return [
        Check("cold_requests", len(c) >= exp["min_cold_requests"], len(c), exp["min_cold_requests"]),
        Check("cold_vs_warm_median_ttft", ratio >= exp["min_cold_ratio"], ratio, exp["min_cold_ratio"]),
    ]


SIGNATURES: dict[str, Callable[[dict[str, Any], Sequence[Row]], list[Check]]] = {
    "victim_slowdown": victim_slowdown,
    "cache_collapse": cache_collapse,
    "rollout_drift": rollout_drift,
    "quota_truncation": quota_truncation,
    "cold_start": cold_start,
}


def evaluate(expected: dict[str, Any], rows: Sequence[Row]) -> list[Check]:
    """Run the scenario's expected signature on rows. Raises KeyError naming a missing field."""
    kind = expected.get("signature")
    if kind not in SIGNATURES:
        raise KeyError(f"expected.signature must be one of {sorted(SIGNATURES)}, got {kind!r}")
    return SIGNATURES[kind](expected, rows)
