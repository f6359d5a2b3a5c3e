"""Scenarios (part 1): each runs in under a minute, its signature shows in client measurements AND exported spans,
and the ground truth confirms the cause."""

from __future__ import annotations

import statistics

from sim_scenario_support import run_checked


def test_noisy_neighbour() -> None:
    run, msg = run_checked("noisy_neighbour")
    # Truth: the victims' extra time is time spent waiting behind the bully's prefill, not their own work.
    victims = [r.truth for r in run.results if r.tenant == "small" and r.truth and r.sched_s >= 20]
    slow = [t for t in victims if t["sim"]["ttft_s"] > 1.0]
    assert slow, msg
    assert all(t["sim"]["queue_s"] + t["sim"]["prefill_s"] > 0.9 * t["sim"]["ttft_s"] for t in slow)
    assert all(t["input_tokens"] < 1000 for t in slow)


def test_head_of_line_reasoning() -> None:
    run, msg = run_checked("head_of_line_reasoning")
    reasoner = [r.truth for r in run.results if r.tenant == "reasoner" and r.truth]
    assert all(t["reasoning_tokens"] == 1500 for t in reasoner)
    late = [r.truth for r in run.results if r.tenant == "interactive" and r.truth and r.sched_s >= 20]
    # Truth: interactive requests queue (batch slots held by reasoning decodes); their prefill stays tiny.
    assert max(t["sim"]["queue_s"] for t in late) > 5.0, msg
    assert max(t["sim"]["prefill_s"] for t in late) < 0.1


def test_prefix_growth_cache_collapse() -> None:
    run, _ = run_checked("prefix_growth_cache_collapse")
    # Truth and client agree on every request's cached tokens.
    for r in run.results:
        assert r.truth is not None and r.cached_tokens == r.truth["cached_tokens"]
    late = [r.truth for r in run.results[-20:] if r.truth]
    assert statistics.fmean(t["input_tokens"] for t in late) > 5000  # prompts really grew
