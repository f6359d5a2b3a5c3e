"""Scenarios (part 2): rollout drift, quota truncation, cold start — client, spans and truth."""

from __future__ import annotations

from sim_scenario_support import run_checked


def test_regional_rollout_drift() -> None:
    run, _ = run_checked("regional_rollout_drift")
    # Truth: fingerprint <-> region is one-to-one, and the client saw the region's edge and geo.
    for r in run.results:
        t = r.truth
        assert t is not None
        assert r.edge == {"us-east-1": "IAD", "eu-west-1": "DUB"}[t["region"]]
        if r.provider == "openai":
            assert r.fingerprint == t["system_fingerprint"] and r.model == t["resolved_model"]
        else:
            assert r.geo == t["geo"]


def test_quota_exhaustion_truncation() -> None:
    run, _ = run_checked("quota_exhaustion_truncation")
    limited = [r for r in run.results if r.status == 429]
    assert all("retry-after" in r.headers for r in limited)
    assert any("x-ratelimit-remaining-tokens" in r.headers for r in limited)
    claude = [r for r in run.results if r.provider == "anthropic"]
    assert claude and all("anthropic-ratelimit-tokens-remaining" in r.headers for r in claude)
    truncated = [r for r in run.results if r.tenant == "batch" and r.finish_reason == "length"]
    assert all(
        r.truth and r.truth["finish_reason"] == "length" and r.output_tokens == r.truth["output_tokens"]
        for r in truncated
    )


def test_cold_start() -> None:
    run, msg = run_checked("cold_start")
    cold = [r for r in run.results if r.truth and r.truth["cold_start_s"] > 0]
    assert len(cold) >= 3, msg
    firsts = {min(r.sched_s for r in run.results if a <= r.sched_s < b) for a, b in ((0, 10), (30, 40), (60, 70))}
    assert firsts <= {r.sched_s for r in cold}
