"""Issue #18, acceptance (e): with random independent loads, a tenant is named noisy neighbour in at most 5 % of at
least 200 randomized windows - through the real SDK and the real collector binary.

How: 200 windows side by side in one run. Each window is its own shared pool (llm_sli's pool: server address, model,
region; here one simulator region with one replica each, told apart by the region its responses reveal, `cf-ray`
suffix W + two letters) with three tenants whose rates and output lengths are drawn at random per pool and whose
prompt sizes are drawn per request from one common distribution (1k-100k tokens, log-uniform); no tenant's load
depends on another's. The simulator runs in this process; its own load generator, instrumented by the SDK
(random_windows_load.py: `import llmotel.auto`, real async openai clients), drives the tenants from two processes
(half the pools each: one process could not keep up on two cores) and exports OTLP to otelcol-llmotel (the e2e
sidecar config), which Prometheus scrapes every 2 s. The connector's window holds the whole run (~8 of its 16 slots
of 12 s), as an evaluation window would in production; each of its flushes (every 2 s) evaluates the rule.

A window is named when llm_sli set `llmotel_sli_noisy_neighbor` = 1 for any tenant of the pool at any scrape of the
run (every evaluation counts, those over part of the run included: stricter than reading only the last); that count
must be at most 5 % of the windows. The last evaluation - two slots after every call's SLIs landed (the newest slot
joins the rule's test once complete, then a verdict must persist a slot), while the window still held the whole
run - is reported too, with the number of named pools at each scrape after the load.

Nothing may be lost on the way: the SDK's batch span processor gets a queue that holds the whole run
(OTEL_BSP_MAX_QUEUE_SIZE; the default 2048 dropped spans at this rate), each load process flushes it before it exits,
and the collector must count exactly the calls the simulator answered, with no span rejected.

The test can fail: the simulator's truth must show tenants really waiting on each other, abnormally (p95 slowdown
>= 1.5), in at least a quarter of the windows (a bound over windows where nobody waits would say nothing), llm_sli
must blame someone in at least half as many windows, and more than 10 named windows fail it.

Second check, kept and folded into the same run (cheap: a Go test over these calls, ~1 s): the connector's rule
itself (internal/fairness, `TestSimulatorWindows`) evaluates each pool's calls as the simulator recorded them (its
wall-clock stamps, measured queue and prefill, tokens) as the binary does - the same window, slots and slowdown
floor, each call observed when it ended, every pool evaluated at every flush until as long after the load as the
binary's last evaluation, named at any of them - with the same bound; and, printed only, the same with start, end
and TTFT as the instrumented client measured them (the calls the binary sees: its spans' start, end, TTFT, queue,
prefill and tokens match these within a few ms, 2026-12-06). An offline check evaluated only at the end of the
last call's slot and one slot later named fewer (0-5): its first evaluation left out the slot holding every
pool's last calls (the newest slot joins the test once complete), so a verdict could not persist, whereas the
binary evaluates twice more over the complete slots before the last reading.

Measured (2 cores, 2026-12-06). At 45 calls/s (speed 0.75, 12 s slots) and the rule as it stood (persistence over 2
evaluations a slot apart) the binary named 4-9 windows in seven local runs and 14 in a CI run: too close to the
bound. Three changes since, each a rule a user would want anyway: a tenant must carry more than its equal part of
the others' waiting (1/(m-1) of m tenants, at least 1/2); a verdict persists only over new evidence (each evaluation
that advances it has tested a busy slot the last had not: re-reading a finished burst proves nothing); and 3 such
evaluations (persist_evaluations). With the load at 30 calls/s (speed 0.5, 18 s slots: the load processes no longer
fall behind), runs named 8 and 5 with the first change alone, 6 with the second, and 0 with all three (2 with two
busy loops beside the test) (3,660 calls in ~130 s of load, every SLI in the collector within ~2 s, collector peak
RSS ~250 MiB, ~94,000 samples per scrape, ~3m20s for the whole tests/fairness). The offline check, evaluated like
the binary, named the same pools as the binary in the runs before the third change (6 of 6) and 0 after it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import ascii_uppercase
from typing import Any

import pytest
import stack as e2e
import yaml
from e2e_support import require, require_stack
from fairness_support import (
    HERE,
    REGION,
    ROOT,
    TENANT,
    Truth,
    by_tenant,
    quantile,
    sim_slowdown,
    true_excess_blame,
    waited,
)

pytestmark = pytest.mark.timeout(480)

WINDOWS = 200
MAX_NAMED_SHARE = 0.05
SEED = 2026
SPEED = 0.5  # 60 simulated seconds in 120 s of wall time: ~30 calls/s, well within what two SDK processes sustain here
DURATION_S = 60.0
LOAD_PROCESSES = 2
SLOT_S = 18  # the run (~125 s) fills 7-8 slots, as in the Go check below (window = run x 10 / 7)
# 288 s: the window still holds the whole run two slots after its last SLIs landed, even when they land late on a
# busy machine (idle slots are no part of the rule's test: a longer window changes nothing else).
SLOTS = 16
FLUSH = "2s"  # and Prometheus scrapes every 2 s: a 1 s scrape of ~600 tenants' series timed out on a busy machine
# The SDK's batch span processor: a queue for the whole run, big batches, twice a second.
BSP_ENV = {"OTEL_BSP_MAX_QUEUE_SIZE": "200000", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1024",
           "OTEL_BSP_SCHEDULE_DELAY": "500"}
LOAD = HERE / "random_windows_load.py"
CONNECTOR = ROOT / "collector" / "llmsliconnector"
NAMED = "llmotel_sli_noisy_neighbor_ratio"


def iata(i: int) -> str:
    """The region code pool ``i`` reveals (the SDK reads 2-4 letters from the `cf-ray` suffix)."""
    return "W" + ascii_uppercase[i // 26] + ascii_uppercase[i % 26]


def random_windows(path: Path, windows: int = WINDOWS, seed: int = SEED) -> None:
    rng = random.Random(seed)
    regions = [{"name": f"w{i:03d}", "iata": iata(i), "geo": f"w{i:03d}", "replicas": 1} for i in range(windows)]
    tenants: list[dict[str, Any]] = []
    for i in range(windows):
        for k in "abc":
            tenants.append({"name": f"w{i:03d}{k}", "rate": round(rng.uniform(0.05, 0.15), 3), "region": f"w{i:03d}",
                            "input_tokens": 1000, "input_tokens_max": 100000, "output_tokens": rng.randint(10, 40),
                            "max_inflight": 1000})
    config = {
        "name": "llmotel_fairness_random",
        "description": "independent three-tenant pools with random loads (tests/fairness)",
        "seed": seed,
        "speed": SPEED,
        "server_timing": "vllm",
        "replica": {"max_batch": 8, "prefill_s_per_token": 0.00002, "prefill_s_per_kpair": 0.0000001,
                    "decode_step_s": 0.02, "decode_step_s_per_seq": 0.0005},
        "regions": regions,
        "load": {"duration_s": DURATION_S, "warm_up": False, "tenants": tenants},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@dataclass
class Run:
    truths: list[Truth]  # finished chat calls
    pools: dict[str, list[Truth]]  # by the region label llm_sli gives the pool
    load: list[dict[str, Any]]  # each load process's report
    load_wall_s: float
    landed_s: float  # from the end of the load until the collector had counted every call
    last_s: float  # from the end of the load until the last evaluation read
    counted: float  # calls in llmotel_sli_requests_total
    rejected: float  # llmotel_sli_spans_rejected_total
    named_any: set[str]  # pools with a tenant named at any scrape of the run
    named_tenants: dict[str, set[str]]  # those pools' named tenants
    named_any_check: set[str]  # the same, by region only
    named_last: set[str]  # ... at the last evaluation, one slot after the SLIs landed
    blamed_last: set[str]  # pools where some tenant had a blame share > 0 at the last evaluation
    regions_seen: set[str]  # pools in the collector's output
    pool_ids: dict[str, tuple[str, str]]  # by region label: the pool's server address and model in llm_sli's output
    timeline: list[tuple[float, int]]  # (seconds after the load, pools named) while waiting for the last evaluation
    client: dict[str, dict[str, Any]]  # by request id: start (unix s), TTFT and total as the SDK's client saw them
    collector_peak_mib: float  # the collector's VmHWM
    collector_cpu_s: float
    exporter_series: int  # lines of samples on the collector's Prometheus page at the end


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    require_stack()
    from llmotel_sim import SimServer
    from llmotel_sim.config import load_scenario

    tmp = tmp_path_factory.mktemp("fairness")
    path = tmp / "random_windows.yaml"
    random_windows(path)
    config = load_scenario(path)
    label = {r.name: str(r.iata) for r in config.regions}
    with e2e.Stack() as stack:
        otlp_http, otlp_grpc, exporter = e2e.free_port(), e2e.free_port(), e2e.free_port()
        env = e2e.sidecar_env(otlp_http, otlp_grpc, exporter, flush=FLUSH, window=f"{SLOT_S * SLOTS}s", slots=SLOTS,
                               speed=SPEED)
        stack.collector("sidecar", e2e.SIDECAR_CONFIG, env, ready_url=f"http://127.0.0.1:{exporter}/metrics")
        prom = stack.prometheus([f"127.0.0.1:{exporter}"], scrape_interval=FLUSH, rule_files=())
        app = {**e2e.app_env(f"http://127.0.0.1:{otlp_http}", "llmotel-fairness-random"), **BSP_ENV}
        with SimServer(config, speed=SPEED) as sim:
            started = time.time()
            procs = [stack.spawn(f"load{i}", [e2e.python(), str(LOAD), str(path), "--url", sim.base_url,
                                              "--part", f"{i}/{LOAD_PROCESSES}",
                                              "--calls", str(tmp / f"calls{i}.json")], env=app, stdout=subprocess.PIPE)
                     for i in range(LOAD_PROCESSES)]
            outs = [p.communicate(timeout=200)[0].decode(errors="replace") for p in procs]
            load_end = time.time()
            for i, (p, out) in enumerate(zip(procs, outs, strict=True)):
                assert p.returncode == 0, f"load{i} failed:\n{out}\n{stack.tail(f'load{i}')}"
            truths = [t for t in sim.truths() if t["endpoint"] != "count_tokens"]
        reports = [json.loads(out.strip().splitlines()[-1]) for out in outs]
        done = [t for t in truths if t["done"] and t["status"] == 200]
        assert len(done) == len(truths) == sum(r["calls"] for r in reports), (len(done), len(truths), reports)

        def counted() -> float:
            return prom.value("sum(llmotel_sli_requests_total)") or 0.0

        e2e.wait_until(lambda: counted() >= len(truths), 60, f"SLIs of {len(truths)} calls in Prometheus",
                       interval=0.5)
        landed = time.time()

        def regions(promql: str) -> set[str]:
            return {s.labels.get(REGION, "") for s in prom.query(promql)}

        # Two slots more: the newest slot joins the rule's test once complete, and a verdict must then persist over
        # two evaluations a slot apart. Meanwhile, how many pools are named at each scrape.
        timeline: list[tuple[float, int]] = []
        while time.time() < landed + 2 * SLOT_S + 4:
            time.sleep(float(FLUSH.rstrip("s")))
            timeline.append((round(time.time() - load_end), len(regions(f"max by ({REGION}) ({NAMED}) == 1"))))
        last = time.time()
        assert last - started < SLOT_S * (SLOTS - 1), (
            f"the last evaluation's window no longer held the whole run: load {load_end - started:.0f} s, SLIs landed "
            f"{landed - load_end:.0f} s later, read {last - landed:.0f} s after that")
        named_last = regions(f"max by ({REGION}) ({NAMED}) == 1")
        blamed_last = regions(f"max by ({REGION}) (llmotel_sli_tenant_blame_share_ratio) > 0")

        named_tenants: dict[str, set[str]] = {}
        for s in prom.query(f"max by ({REGION}, {TENANT}) (max_over_time({NAMED}[10m])) == 1"):
            named_tenants.setdefault(s.labels.get(REGION, ""), set()).add(s.labels.get(TENANT, ""))

        client = {c["request_id"]: c for i in range(LOAD_PROCESSES)
                  for c in json.loads((tmp / f"calls{i}.json").read_text())}
        collector = next(proc for name, proc in stack.procs if name == "sidecar")
        hwm = next(line for line in Path(f"/proc/{collector.pid}/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
        ticks = Path(f"/proc/{collector.pid}/stat").read_text().split()[13:15]
        cpu = sum(int(v) for v in ticks) / os.sysconf("SC_CLK_TCK")
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter}/metrics", timeout=30) as page:
            series = sum(1 for line in page.read().decode().splitlines() if line and not line.startswith("#"))
        pools: dict[str, list[Truth]] = {}
        for t in done:
            pools.setdefault(label[t["region"]], []).append(t)
        yield Run(
            truths=done, pools=pools, load=reports, load_wall_s=load_end - started, landed_s=landed - load_end,
            last_s=last - load_end,
            counted=counted(), rejected=prom.value("sum(llmotel_sli_spans_rejected_total)") or 0.0,
            named_any=set(named_tenants), named_tenants=named_tenants,
            named_any_check=regions(f"max by ({REGION}) (max_over_time({NAMED}[10m])) == 1"),
            named_last=named_last, blamed_last=blamed_last, timeline=timeline,
            regions_seen=regions(f"sum by ({REGION}) (llmotel_sli_requests_total)"),
            pool_ids={s.labels.get(REGION, ""): (s.labels.get("server_address", ""),
                                                 s.labels.get("gen_ai_request_model", ""))
                      for s in prom.query("llmotel_sli_pool_fairness_jain_index_ratio")},
            client=client, collector_peak_mib=int(hwm.split()[1]) / 1024, collector_cpu_s=cpu, exporter_series=series,
        )


def contended(pools: dict[str, list[Truth]]) -> set[str]:
    """Pools where, in the simulator's truth, tenants waited on each other abnormally (p95 slowdown >= 1.5)."""
    return {name for name, calls in pools.items()
            if len(by_tenant(calls)) > 1 and any(waited(t) for t in calls)
            and quantile((sim_slowdown(t) for t in calls), 0.95) >= 1.5}


def test_every_call_reached_the_collector(run: Run) -> None:
    print(f"\nload: {len(run.truths)} calls in {run.load_wall_s:.1f} s ({len(run.truths) / run.load_wall_s:.0f}/s), "
          f"processes {run.load}; all counted {run.landed_s:.1f} s after; collector peak RSS "
          f"{run.collector_peak_mib:.0f} MiB, CPU {run.collector_cpu_s:.0f} s, "
          f"{run.exporter_series} samples per scrape")
    assert all(r["flushed"] for r in run.load), run.load
    assert run.counted == len(run.truths), f"the collector counted {run.counted} of {len(run.truths)} calls"
    assert run.rejected == 0
    assert len(run.regions_seen) >= WINDOWS and set(run.pools) <= run.regions_seen, len(run.regions_seen)


def test_independent_loads_name_a_tenant_in_at_most_5_percent_of_windows(run: Run) -> None:
    hot = contended(run.pools)
    windows = len(run.pools)
    print(f"\n{windows} windows, {len(hot)} with abnormal waiting in the truth; llm_sli blamed someone in "
          f"{len(run.blamed_last)} (last evaluation), named a tenant in {len(run.named_any)} at any evaluation "
          f"{sorted(run.named_any)}, {len(run.named_last)} at the last {sorted(run.named_last)}; named after the load "
          f"(s, pools): {run.timeline}")
    assert windows >= WINDOWS, f"only {windows} windows had calls"
    assert len(hot) >= WINDOWS // 4, f"only {len(hot)} of {windows} windows had abnormal waiting"
    assert len(run.blamed_last) >= len(hot) // 2, "llm_sli saw no blame where the simulator saw waiting"
    assert run.named_last <= run.named_any == run.named_any_check
    for pool in sorted(run.named_any):  # what the simulator says about each named tenant
        calls = run.pools[pool]
        share = true_excess_blame(calls)
        others = {k: round(quantile((sim_slowdown(t) for t in ts), 0.95), 2) for k, ts in by_tenant(calls).items()}
        print(f"  {pool}: named {sorted(run.named_tenants[pool])}; truth: share of the others' waiting under the "
              f"rule {({k: round(v, 2) for k, v in share.items()})}, p95 slowdown {others}")
    assert len(run.named_any) <= MAX_NAMED_SHARE * windows, f"named in {len(run.named_any)} of {windows} windows"


def as_seen(t: Truth, client: dict[str, Any] | None = None) -> dict[str, Any]:
    """A call as llm_sli sees it: start and end, measured queue and prefill (vLLM's definitions, which the SDK reads
    from the response), TTFT and tokens; start, end and TTFT as the simulator recorded them, or as the client
    measured them (``client``)."""
    wall, ts = t["wall"], t["wall_ts"]
    start, end, ttft = ts["arrival"], ts["end"], wall["ttft_s"]
    if client is not None:
        start, end, ttft = client["start"], client["start"] + client["total"], client["ttft"]
    return {"Tenant": t["tenant"], "Start": start, "End": end, "Wait": wall["queue_s"],
            "Prefill": wall["prefill_server_s"], "TTFT": ttft,
            "UncachedInput": t["input_tokens"] - t["cached_tokens"], "Output": t["output_tokens"]}


@pytest.mark.parametrize("view", ["simulator", "client"])
def test_the_connectors_rule_on_the_simulators_calls_agrees(run: Run, tmp_path: Path, view: str) -> None:
    """The same windows evaluated by internal/fairness directly (TestSimulatorWindows), from the simulator's record
    of each call instead of the SDK's spans: also at most 5 % named, and blame where the truth saw waiting. The
    ``client`` view takes each call's start, end and TTFT from the instrumented client instead (queue and prefill
    are the server's either way): printed, to tell where the binary's count differs from the simulator view's;
    only the simulator view is held to the bound."""
    go = shutil.which("go")
    require("go", go is not None, "install Go (the collector's toolchain)")
    assert go is not None
    seen = {name: [as_seen(t, run.client[t["request_id"]] if view == "client" else None) for t in calls]
            for name, calls in sorted(run.pools.items())}
    # The collector's window, slots, flushes and slowdown floor, evaluated from the first call until as long after the
    # last as the binary's last evaluation came after the load (e2e.sidecar_env: the floor is 50 ms of model time).
    windows, result = tmp_path / "windows.json", tmp_path / "result.json"
    windows.write_text(json.dumps({
        "window_s": SLOT_S * SLOTS, "slots": SLOTS, "flush_s": float(FLUSH.rstrip("s")), "tail_s": run.last_s,
        "slowdown_floor_s": 0.050 / SPEED,
        "max_named_share": MAX_NAMED_SHARE if view == "simulator" else 1.0,
        # The pool's server and model as llm_sli named it: the permutation test's random stream is seeded by the pool.
        "windows": [{"pool": name, "server": run.pool_ids.get(name, ("", ""))[0],
                     "model": run.pool_ids.get(name, ("", ""))[1], "calls": calls} for name, calls in seen.items()],
    }))
    go_run = subprocess.run([go, "test", "./internal/fairness", "-run", "TestSimulatorWindows", "-count=1", "-v"],
                            cwd=CONNECTOR, capture_output=True, text=True, timeout=180,
                            env={**os.environ, "LLMOTEL_FAIRNESS_SIM_WINDOWS": str(windows),
                                 "LLMOTEL_FAIRNESS_SIM_RESULT": str(result)})
    print(go_run.stdout[-3000:])
    assert go_run.returncode == 0, go_run.stdout[-3000:] + go_run.stderr[-2000:]
    counts = json.loads(result.read_text())
    print(f"Go rule, {view} view: {counts}; the binary named {sorted(run.named_any)}")
    assert counts["Windows"] >= WINDOWS
    assert counts["Blamed"] >= len(contended(run.pools)) // 2, "the rule saw no blame where the simulator saw waiting"

