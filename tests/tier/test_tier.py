"""The gateway tier under faults (issue #21): agent tier (shipped agent-lb.yaml, persistent queue) -> 3 gateways
(shipped gateway.yaml) and a reference collector fed the same spans, the real SDK driving the simulator.

Each case runs ~25 s of load (several tenants, two agents every 0.5 s), injects its fault at fixed times into the
load, waits until every span the tier acknowledged to the app is at a gateway, then compares: spans sent, spans
that reached a gateway, duplicates, traces and agent runs split across gateways, and the SLIs of the gateways
(summed, counter resets taken out) against the reference's. The figures of each case are printed (``TIER {...}``,
run with -s) and appended to $LLMOTEL_TIER_RESULTS when set; docs/reliability.md holds a run of them.

What must hold, by case (tolerances in docs/reliability.md, "Tolerances"):
- always: no span the tier acknowledged is lost (gateways and reference both have every one);
- no gateway lost state (agent kill, slow, rejecting, Prometheus down, add/remove): the gateways' LLM call count is
  the reference's plus at most the duplicates; TTFT p50/p95 within 5 %; the scored runs' adherence equal;
- add/remove: every run is scored whole at one gateway or counted split where its root landed;
- a gateway killed: the SLIs it held die with it, so its calls may be missing, at most what it had not flushed;
- Prometheus down and back: the gateways' SLIs equal the reference's exactly, memory grows by < 64 MiB.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tier_support import (
    REJECT_OVERLAY,
    Reached,
    Tier,
    e2e,
    own_telemetry,
    read_spans,
    record,
    require_stack,
    rss_kib,
    slis,
    wait_reached,
)

from llmotel_sim import SimServer
from llmotel_sim.config import load_scenario

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def stack() -> Iterator[e2e.Stack]:
    require_stack()
    with e2e.Stack() as s:
        yield s


def build(stack: e2e.Stack, rejecting: str | None = None, spare: bool = False) -> Tier:
    """3 gateways (``rejecting`` refuses everything), the reference, optionally a 4th gateway (configured and
    scraped, started later by the case), Prometheus, the agent over gateway-0..2."""
    tier = Tier(stack)
    for i in range(3):
        name = f"gateway-{i}"
        tier.start(tier.gateway(name, overlays=[REJECT_OVERLAY] if name == rejecting else []))
    tier.start(tier.gateway("reference"))
    if spare:
        tier.gateway("gateway-3")
    tier.start_prometheus()
    tier.start(tier.agent_tier(_hosts(tier, ("gateway-0", "gateway-1", "gateway-2"))))
    return tier


def _hosts(tier: Tier, names: tuple[str, ...]) -> list[str]:
    return [f"127.0.0.1:{tier.gateways[n].grpc}" for n in names]


def run(tier: Tier, case: str, faults: Callable[[Tier, Callable[[float], None]], None]) -> dict[str, Any]:
    """Load through the tier while ``faults(tier, at)`` runs (``at(t)`` sleeps until t s after the load started);
    then drain, settle and measure. Returns the case's figures (also printed and recorded)."""
    config = load_scenario(e2e.ROOT / "tests" / "e2e" / "scenario.yaml")
    with SimServer(config, speed=6.0) as sim:
        app = tier.load(sim.base_url)
        t0 = time.monotonic()

        def at(t: float) -> None:
            time.sleep(max(0.0, t0 + t - time.monotonic()))

        errors: list[BaseException] = []

        def inject() -> None:
            try:
                faults(tier, at)
            except BaseException as exc:  # reported after the load, with the app's result
                errors.append(exc)

        th = threading.Thread(target=inject, name="faults")
        th.start()
        sent = tier.sent(app)
        th.join(120)
        assert not errors, errors
    r = wait_reached(tier, sent)
    assert tier.prom is not None and tier.reference is not None
    ref = read_spans(tier.reference.spans_file)
    prom = tier.prom

    def settled() -> bool:
        s = slis(prom, "single")
        return s["calls"] >= ref.llm_calls and sum(s["runs_scored"].values()) >= len(ref.agent_traces)

    # As long as the drain above (90 s): on a loaded 2-core CI machine the reference once needed more than 40 s after
    # every span had reached it to score every call and run (kill -9 a gateway, 2026-12-07); a reference that never
    # gets there still fails, and the counts below are compared exactly.
    e2e.wait_until(settled, 90, "the reference's SLIs of every call and run", interval=1)
    one = slis(prom, "single")
    # The gateways: until they have as many calls and runs as the reference, or stop changing for 5 s (a killed
    # gateway's lost state never arrives; a gateway that got its spans late, after retries, flushes them late).
    last, stable_since, deadline = None, time.monotonic(), time.monotonic() + 40
    while time.monotonic() < deadline:
        gw = slis(prom, "gateway")
        now = (gw["calls"], sum(gw["runs_scored"].values()) + gw["runs_split_counted"])
        if now == (one["calls"], sum(one["runs_scored"].values())) or time.monotonic() - stable_since > 5:
            break
        if now != last:
            last, stable_since = now, time.monotonic()
        time.sleep(1)
    time.sleep(2)  # one more flush and scrape: a late duplicate would show
    gw, one = slis(prom, "gateway"), slis(prom, "single")
    result = {"reached": dataclasses.asdict(r), "gateways": gw, "reference": one, "events": tier.events,
              "app": {k: sent[k] for k in ("llm_calls", "agent_runs", "errors")},
              "own": {n: own_telemetry(g) for n, g in tier.gateways.items()}}
    record(case, result)
    return result


def _close(a: float | None, b: float | None, rel: float) -> bool:
    return a is not None and b is not None and abs(a - b) <= rel * max(abs(b), 1e-9)


def check_nothing_lost(r: dict[str, Any]) -> Reached:
    reached = Reached(**r["reached"])
    assert reached.sent > 0 and reached.app_failed == 0, reached
    assert reached.lost == 0, f"{reached.lost} acknowledged spans reached no gateway: {reached}"
    assert reached.reference_unique == reached.sent, reached
    return reached


def check_slis_match(r: dict[str, Any], reached: Reached) -> None:
    gw, one = r["gateways"], r["reference"]
    # A duplicated span is counted again by the collector that receives it (nothing deduplicates spans). The reference
    # gets duplicates too where the agent tier that feeds it replays its queue after a kill (CI at 91e63cd: 40
    # duplicate spans, reference 668 calls against the gateways' 662 from the app's 652).
    assert one["calls"] - reached.reference_duplicates <= gw["calls"] <= one["calls"] + reached.gateway_duplicates, (
        gw, one)
    assert _close(gw["ttft_p50_s"], one["ttft_p50_s"], 0.05) and _close(gw["ttft_p95_s"], one["ttft_p95_s"], 0.05)
    # Split or late runs are not scored; the scored ones give the reference's adherence (a re-sent tool span counts
    # once in llm_sli).
    assert gw["adherence_mean"] == one["adherence_mean"], (gw, one)


def test_kill_a_gateway_and_restart_it(stack: e2e.Stack) -> None:
    tier = build(stack)

    def faults(t: Tier, at: Callable[[float], None]) -> None:
        at(8)
        t.kill(t.gateways["gateway-1"])
        at(13)
        t.start(t.gateways["gateway-1"])

    r = run(tier, "kill -9 a gateway for 5 s", faults)
    reached = check_nothing_lost(r)
    gw, one = r["gateways"], r["reference"]
    # What the killed gateway acknowledged but had not yet turned into scraped SLIs is gone: bounded by its share
    # of the calls during groupbytrace's wait + the trace buffer's wait + one flush and scrape (~5 s of its third).
    assert 0.85 * one["calls"] <= gw["calls"] <= one["calls"] + reached.gateway_duplicates, (gw, one)
    assert _close(gw["ttft_p95_s"], one["ttft_p95_s"], 0.10)


def test_kill_the_agent_tier_and_restart_it(stack: e2e.Stack) -> None:
    tier = build(stack)

    def faults(t: Tier, at: Callable[[float], None]) -> None:
        assert t.agent is not None
        at(8)
        t.kill(t.agent)
        at(10)
        t.start(t.agent)  # the same queue directory: what it had acknowledged is replayed

    r = run(tier, "kill -9 the agent tier for 2 s", faults)
    check_slis_match(r, check_nothing_lost(r))


def test_kill_the_agent_tier_while_its_queue_holds_spans(stack: e2e.Stack) -> None:
    tier = build(stack)
    queued: dict[str, float] = {}

    def faults(t: Tier, at: Callable[[float], None]) -> None:
        assert t.agent is not None
        g = t.gateways["gateway-1"]
        at(6)
        t.pause(g, True)  # gateway-1 stalls: its spans wait in the agent (queue and in-flight retries)
        t.note("gateway-1 stalled (SIGSTOP)")
        at(9)
        queued.update(own_telemetry(t.agent, "queue_size"))
        t.kill(t.agent)
        at(11)
        t.start(t.agent)  # replays the queue: the spans held for gateway-1 too
        at(13)
        t.pause(g, False)
        t.note("gateway-1 resumed (SIGCONT)")

    r = run(tier, "kill -9 the agent tier for 2 s while gateway-1 is stalled", faults)
    record("agent killed with a backlog: its queue just before the kill", queued)
    assert queued.get("otelcol_exporter_queue_size", 0) > 0, queued  # the kill hit a queue holding spans
    reached = check_nothing_lost(r)
    gw, one = r["gateways"], r["reference"]
    # Batches in flight at the kill are sent again after the replay: duplicates are possible and reported. They add
    # to the call counters (nothing deduplicates spans in general) but not to adherence (llm_sli drops re-sent
    # agent spans).
    assert one["calls"] <= gw["calls"] <= one["calls"] + reached.gateway_duplicates, (gw, one)
    assert gw["adherence_mean"] == one["adherence_mean"], (gw, one)


def test_add_a_gateway_then_remove_one(stack: e2e.Stack) -> None:
    tier = build(stack, spare=True)
    grown = ("gateway-0", "gateway-1", "gateway-2", "gateway-3")
    shrunk = ("gateway-0", "gateway-2", "gateway-3")

    def faults(t: Tier, at: Callable[[float], None]) -> None:
        assert t.agent is not None
        at(5)
        t.start(t.gateways["gateway-3"])
        # The static resolver reads its list at start: each change is a restart of the agent (SIGTERM; the
        # persistent queue carries what it holds over). Four changes while agent runs are in flight, so that some
        # runs are re-routed mid-run: scale up, scale down, and the same again.
        for k, hosts in enumerate((grown, shrunk, grown, shrunk)):
            at(6 + 5 * k)
            t.stop(t.agent)
            t.agent_tier(_hosts(t, hosts))
            t.start(t.agent)
        # gateway-1 keeps running (drained, no new traces): its SLIs stay scrapeable, as in a scale-down that
        # waits for the drain.

    r = run(tier, "add a 4th gateway, remove one, twice (agent restarts with the new list)", faults)
    reached = check_nothing_lost(r)
    assert reached.per_gateway["gateway-3"] > 0
    gw, one = r["gateways"], r["reference"]
    assert one["calls"] <= gw["calls"] <= one["calls"] + reached.gateway_duplicates, (gw, one)
    # Every run is either scored whole at one gateway or counted split at the gateway that got its root: none is
    # scored from a part (which would bias adherence), none disappears.
    assert sum(gw["runs_scored"].values()) + gw["runs_split_counted"] == sum(one["runs_scored"].values()), (gw, one)
    assert gw["runs_split_counted"] <= reached.agent_runs_split, (gw, reached)


def test_a_slow_gateway(stack: e2e.Stack) -> None:
    tier = build(stack)

    def faults(t: Tier, at: Callable[[float], None]) -> None:
        g = t.gateways["gateway-1"]
        t.note("gateway-1 runs 25 % of the time (SIGSTOP 1.5 s / SIGCONT 0.5 s) for 12 s")
        for i in range(6):
            at(5 + 2 * i)
            t.pause(g, True)
            at(5 + 2 * i + 1.5)
            t.pause(g, False)
        t.note("gateway-1 back to full speed")

    r = run(tier, "a slow gateway (paused 75 % of 12 s)", faults)
    check_slis_match(r, check_nothing_lost(r))


def test_a_rejecting_gateway(stack: e2e.Stack) -> None:
    tier = build(stack, rejecting="gateway-1")

    refused: dict[str, float] = {}

    def faults(t: Tier, at: Callable[[float], None]) -> None:
        g = t.gateways["gateway-1"]
        at(12)
        refused.update(own_telemetry(g, "receiver_refused_spans"))
        t.stop(g)
        g.argv = g.argv[:-2]  # without the refusing overlay
        t.start(g)  # accepts again

    r = run(tier, "a gateway refusing every span for 12 s (memory_limiter), then accepting", faults)
    record("rejecting gateway: spans it refused while refusing", refused)
    assert sum(refused.values()) > 0, "the refusing gateway accepted everything: the case tested nothing"
    check_slis_match(r, check_nothing_lost(r))


def test_prometheus_down_and_back(stack: e2e.Stack) -> None:
    tier = build(stack)
    rss: dict[str, list[int]] = {}

    def faults(t: Tier, at: Callable[[float], None]) -> None:
        at(6)
        rss["before"] = [rss_kib(g) for g in t.gateways.values()]
        t.kill_prometheus()
        at(16)
        rss["down"] = [rss_kib(g) for g in t.gateways.values()]
        t.restart_prometheus()

    r = run(tier, "Prometheus down for 10 s", faults)
    check_nothing_lost(r)
    assert tier.prom is not None
    gaps = tier.prom.query('count_over_time(up{job="gateway"}[10m])')
    rss["after"] = [rss_kib(g) for g in tier.gateways.values()]
    record("prometheus down: scrape samples per gateway, RSS KiB",
           {"samples": [s.value for s in gaps], "rss_kib": rss})
    gw, one = r["gateways"], r["reference"]
    assert gw["calls"] == one["calls"] and gw["ttft_p95_s"] == one["ttft_p95_s"], (gw, one)
    for before, after in zip(rss["before"], rss["after"], strict=True):
        assert after - before < 64 * 1024, rss
