"""Fairness scenarios end to end: the fleet simulator, its own load generator instrumented by the real SDK
(`llmotel-sim load`, `import llmotel.auto`, real openai clients in their own process), the real otelcol-llmotel
binary and a real Prometheus, all on 127.0.0.1 (the harness of tests/e2e: examples/e2e/stack.py).

Expectations come from the simulator's truth (`/truth/{id}`: simulated queue time, TTFT, and who occupied the
replica while a call waited), never from the collector's output.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "examples" / "e2e", ROOT / "tests" / "e2e"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import stack as e2e  # noqa: E402
from e2e_support import require_stack  # noqa: E402

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios.yaml"
TENANT = "llmotel_tenant_id"
REGION = "llmotel_server_region"

Truth = dict[str, Any]


@dataclass
class FairnessRun:
    prom: e2e.Prometheus
    truths: list[Truth]  # finished chat calls only
    config: Any

    def iata(self, region: str) -> str:
        """The region label llm_sli gives a pool (OpenAI-style responses reveal the edge's IATA code)."""
        spec = self.config.region(region)
        assert spec is not None, region
        return str(spec.iata)

    def of(self, region: str) -> list[Truth]:
        return [t for t in self.truths if t["region"] == region]

    def gauge(self, metric: str, region: str, over_run: str = "") -> dict[str, float]:
        """Per tenant, the gauge's value now, or its max (``over_run="max"``) / min over the run."""
        sel = f'{metric}{{{REGION}="{self.iata(region)}"}}'
        if over_run:
            sel = f"{over_run}_over_time({sel}[10m])"
        return {s.labels.get(TENANT, ""): s.value for s in self.prom.query(f"max by ({TENANT}) ({sel})")}

    def slowdown(self, region: str, quantile: str) -> dict[str, float]:
        """Per tenant the connector's p50/p95 per-call slowdown (worst queue source)."""
        return self.gauge(f"llmotel_sli_tenant_slowdown_{quantile}_ratio", region)

    def pool_jain(self, region: str, over_run: str = "") -> float | None:
        sel = f'llmotel_sli_pool_fairness_jain_index_ratio{{{REGION}="{self.iata(region)}"}}'
        if over_run:
            sel = f"{over_run}_over_time({sel}[10m])"
        return self.prom.value(f"min({sel})")


def run_scenarios(stack: e2e.Stack, scenario: Path = SCENARIOS, window: str = "1m", slots: int = 30) -> FairnessRun:
    """One run of ``scenario``: sidecar collector (window long enough to hold the whole run, 1 s flushes), Prometheus
    scraping it every second, the simulator in this process and its load generator instrumented in another."""
    require_stack()
    from llmotel_sim import SimServer
    from llmotel_sim.config import load_scenario

    config = load_scenario(scenario)
    otlp_http, otlp_grpc, exporter = e2e.free_port(), e2e.free_port(), e2e.free_port()
    env = e2e.sidecar_env(otlp_http, otlp_grpc, exporter, flush="1s", window=window, slots=slots, speed=config.speed)
    stack.collector("sidecar", e2e.SIDECAR_CONFIG, env, ready_url=f"http://127.0.0.1:{exporter}/metrics")
    prom = stack.prometheus([f"127.0.0.1:{exporter}"])
    with SimServer(config, speed=config.speed) as sim:
        load = stack.spawn(
            "load",
            [e2e.python(), "-m", "llmotel_sim.cli", "load", str(scenario), "--url", sim.base_url],
            env=e2e.app_env(f"http://127.0.0.1:{otlp_http}", "llmotel-fairness"),
            stdout=subprocess.PIPE,
        )
        out, _ = load.communicate(timeout=180)
        assert load.returncode == 0, f"load generator failed:\n{out.decode(errors='replace')}\n{stack.tail('load')}"
        truths = [t for t in sim.truths() if t["endpoint"] != "count_tokens"]
    done = [t for t in truths if t["done"] and t["status"] == 200]
    assert len(done) == len(truths), "the simulator failed calls: the scenario is broken"

    def landed() -> bool:
        return (prom.value("sum(llmotel_sli_requests_total)") or 0) >= len(truths)

    e2e.wait_until(landed, 60, f"SLIs of {len(truths)} calls in Prometheus", interval=0.5)
    time.sleep(3)  # two more flushes and scrapes: the window's gauges include the last calls
    return FairnessRun(prom, done, config)


# -- the simulator's truth ---------------------------------------------------------------------------------------


WAIT_FLOOR_S = 0.010  # llm_sli's: a wait shorter than this is none (collector/README.md, Fairness)


def waited(t: Truth) -> bool:
    return bool(t["sim"]["queue_s"] > 0)


def sim_slowdown(t: Truth) -> float:
    """TTFT / (TTFT - queue) on the simulator's model clock (1: no wait)."""
    ttft, queue = t["sim"]["ttft_s"], t["sim"]["queue_s"]
    return float(ttft / (ttft - queue)) if ttft > queue else float("inf")


def quantile(values: Iterable[float], q: float) -> float:
    """Nearest-rank quantile (the connector's method)."""
    vals = sorted(values)
    assert vals, "no values"
    return vals[max(0, math.ceil(q * len(vals)) - 1)]


def true_blame(truths: list[Truth]) -> dict[str, tuple[float, float]]:
    """Per tenant of one pool, (share, median): its true share of the other tenants' waiting, from the simulator's
    ``occupied_while_waiting_s`` - the seconds of the replica's work by tenant while each call waited:
    share = sum over the others' calls that waited of its occupancy / their queue time; median = the median over
    those calls of its occupancy / that call's queue time."""
    tenants = {t["tenant"] for t in truths}
    out: dict[str, tuple[float, float]] = {}
    for k in sorted(tenants):
        # A wait under 10 ms is none, as llm_sli counts it (scheduling latency: it backlogs and blames nobody).
        victims = [t for t in truths if t["tenant"] != k and t["sim"]["queue_s"] > WAIT_FLOOR_S]
        if not victims:
            continue
        occ = [t["occupied_while_waiting_s"].get(k, 0.0) for t in victims]
        queue = [t["sim"]["queue_s"] for t in victims]
        out[k] = (sum(occ) / sum(queue), statistics.median(o / q for o, q in zip(occ, queue, strict=True)))
    return out


def waterfill(capacity: float, demands: list[float]) -> list[float]:
    """Max-min fair shares of ``capacity`` (equal weights; a demand of inf takes whatever it is given), in order."""
    shares = [0.0] * len(demands)
    left, order = capacity, sorted(range(len(demands)), key=lambda i: demands[i])
    for done, i in enumerate(order):
        level = left / (len(order) - done)
        if demands[i] > level:
            for j in order[done:]:
                shares[j] = level
            break
        shares[i] = demands[i]
        left -= demands[i]
    return shares


def true_excess_blame(truths: list[Truth]) -> dict[str, float]:
    """Per tenant of one pool, its share of the other tenants' waiting under llm_sli's blame rule applied to the
    simulator's occupancy instead of llm_sli's estimate of it: each waiting call's queue time goes to the other
    tenants in proportion to their occupancy above their water-filling share of it (the waiting tenant's demand
    unbounded: it waited); nobody when nobody exceeded (collector/README.md, "Fairness")."""
    tenants = {t["tenant"] for t in truths}
    blame = dict.fromkeys(tenants, 0.0)
    others_wait = dict.fromkeys(tenants, 0.0)
    for v in truths:
        if not waited(v):
            continue
        occ = v["occupied_while_waiting_s"]
        others = sorted(k for k, o in occ.items() if k != v["tenant"] and o > 0)
        shares = waterfill(sum(occ.values()), [occ[k] for k in others] + [math.inf])
        excess = {k: max(0.0, occ[k] - share) for k, share in zip(others, shares, strict=False)}
        total = sum(excess.values())
        for k in tenants - {v["tenant"]}:
            others_wait[k] += v["sim"]["queue_s"]
        for k, e in excess.items():
            if total > 0:
                blame[k] += v["sim"]["queue_s"] * e / total
    return {k: blame[k] / others_wait[k] for k in sorted(tenants) if others_wait[k] > 0}


def by_tenant(truths: list[Truth]) -> dict[str, list[Truth]]:
    out: dict[str, list[Truth]] = defaultdict(list)
    for t in truths:
        out[t["tenant"]].append(t)
    return out
