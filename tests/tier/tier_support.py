"""The gateway tier under faults, with the real binaries on loopback (tests/tier, docs/reliability.md).

app (tests/tier/drive.py: the real SDK, several tenants, agent runs) -> agent tier (the shipped
collector/config/agent-lb.yaml: persistent queue in a temporary directory) -> 3 gateways (the shipped
collector/config/gateway.yaml) and, from the same agent through its own persistent queue, one reference
collector (gateway.yaml too, alone: every trace on one instance). Each gateway and the reference also write every
span they acknowledge to a JSON-lines file (gateway-overlay.yaml): spans that reached a gateway, duplicates and
traces split across gateways are counted by span id. Prometheus scrapes the gateways (job "gateway") and the
reference (job "single"); a gateway's counters restart at 0 when it is restarted, so totals are summed over each
series' samples with the resets taken out (``Totals``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "examples" / "e2e"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import stack as e2e  # noqa: E402
from e2e_support import require_stack  # noqa: E402

__all__ = ["e2e", "require_stack"]

AGENT_CONFIG = ROOT / "collector" / "config" / "agent-lb.yaml"
GATEWAY_CONFIG = ROOT / "collector" / "config" / "gateway.yaml"
GATEWAY_OVERLAY = HERE / "gateway-overlay.yaml"
REJECT_OVERLAY = HERE / "gateway-reject-overlay.yaml"
SCENARIO = ROOT / "tests" / "e2e" / "scenario.yaml"
DRIVER = HERE / "drive.py"
# Load: the e2e scenario's tenants at speed 6 for 150 simulated seconds (25 s of wall time), both agents every 0.5 s.
SPEED = 6.0
SIM_SECONDS = 150.0
AGENT_PERIOD = 0.5
# Each agent thinks this long after each LLM call: a run lasts ~2 s, its spans leave the app in several exports,
# so a ring change while load runs catches runs in flight (what splits them).
STEP_DELAY = 0.4
AGENT_LOOPS = 4  # four loops of both agents side by side: ~8 runs in flight at any time


@dataclass
class Collector:
    """One otelcol-llmotel process of the tier; restartable with the same ports, files and queue."""

    name: str
    argv: list[str]
    env: dict[str, str]
    health: str
    grpc: int = 0
    prom: int = 0
    spans_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0


@dataclass
class Tier:
    """The running tier: start, kill -9, stop/continue and restart its parts; read what reached where."""

    stack: e2e.Stack
    gateways: dict[str, Collector] = field(default_factory=dict)
    reference: Collector | None = None
    agent: Collector | None = None
    prom: e2e.Prometheus | None = None
    prom_argv: list[str] = field(default_factory=list)
    agent_http: int = 0
    events: list[tuple[float, str]] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    # -- parts ------------------------------------------------------------------------------------------------------
    def gateway(self, name: str, overlays: Iterable[Path] = ()) -> Collector:
        grpc, prom = e2e.free_port(), e2e.free_port()
        health, telemetry = e2e.free_port(), e2e.free_port()
        spans = self.stack.workdir / f"{name}.spans.jsonl"
        env = {
            "LLMOTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}",
            "LLMOTEL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{prom}",
            "LLMOTEL_GATEWAY_ID": name,
            "LLMOTEL_GROUPBYTRACE_WAIT": "1s",
            "LLMOTEL_SLI_FLUSH_INTERVAL": "1s",
            "LLMOTEL_SLI_WINDOW": "2m",
            "LLMOTEL_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
            "LLMOTEL_TELEMETRY_PORT": str(telemetry),
            "LLMOTEL_TIER_SPANS_FILE": str(spans),
        }
        argv = [str(_binary()), "--config", str(GATEWAY_CONFIG), "--config", str(GATEWAY_OVERLAY)]
        argv += [a for o in overlays for a in ("--config", str(o))]
        c = Collector(name, argv, env, f"http://127.0.0.1:{health}/", grpc=grpc, prom=prom, spans_file=spans)
        if name == "reference":
            self.reference = c
        else:
            self.gateways[name] = c
        return c

    def agent_tier(self, hostnames: list[str]) -> Collector:
        """The agent: shipped agent-lb.yaml, a generated overlay with ``hostnames`` and the reference's pipeline."""
        assert self.reference is not None
        if self.agent is None:
            self.agent_http, health, telemetry = e2e.free_port(), e2e.free_port(), e2e.free_port()
            env = {
                "LLMOTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.agent_http}",
                "LLMOTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{e2e.free_port()}",
                "LLMOTEL_QUEUE_DIR": str(self.stack.workdir / "agent-queue"),
                "LLMOTEL_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
                "LLMOTEL_TELEMETRY_PORT": str(telemetry),
            }
            self.agent = Collector("agent", [], env, f"http://127.0.0.1:{health}/")
        overlay = self.stack.workdir / f"agent-overlay-{self.agent.starts}.yaml"
        overlay.write_text(_agent_overlay(hostnames, f"127.0.0.1:{self.reference.grpc}"))
        self.agent.argv = [str(_binary()), "--config", str(AGENT_CONFIG), "--config", str(overlay)]
        return self.agent

    def start(self, c: Collector) -> None:
        c.starts += 1
        log = c.name if c.starts == 1 else f"{c.name}.{c.starts}"
        c.proc = self.stack.spawn(log, c.argv, env=c.env)
        proc = c.proc

        def ready() -> bool:
            self.stack.check_alive(log, proc)
            e2e._get(c.health)
            return True

        e2e.wait_until(ready, 30, f"{c.name} ({self.stack.log_path(log)})")
        self.note(f"start {c.name}" + (f" (#{c.starts})" if c.starts > 1 else ""))

    def kill(self, c: Collector) -> None:
        """kill -9: no shutdown, nothing flushed."""
        assert c.proc is not None
        os.killpg(c.proc.pid, signal.SIGKILL)
        c.proc.wait(10)
        self.note(f"kill -9 {c.name}")

    def stop(self, c: Collector) -> None:
        """SIGTERM: a graceful stop (a rollout, a scale-down)."""
        assert c.proc is not None
        os.killpg(c.proc.pid, signal.SIGTERM)
        c.proc.wait(30)
        self.note(f"stop {c.name}")

    def pause(self, c: Collector, paused: bool) -> None:
        assert c.proc is not None
        os.killpg(c.proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def start_prometheus(self) -> e2e.Prometheus:
        """Scrapes every gateway configured so far (one not started yet is down until it is)."""
        assert self.reference is not None
        targets = [f"127.0.0.1:{g.prom}" for g in self.gateways.values()]
        self.prom = self.stack.prometheus({"gateway": targets, "single": [f"127.0.0.1:{self.reference.prom}"]},
                                          rule_files=())
        self.prom_argv = [str(a) for a in next(p for n, p in self.stack.procs if n == "prometheus").args]
        return self.prom

    def kill_prometheus(self) -> subprocess.Popen[bytes]:
        proc = next(p for n, p in reversed(self.stack.procs) if n.startswith("prometheus"))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self.note("kill -9 prometheus")
        return proc

    def restart_prometheus(self) -> None:
        assert self.prom is not None
        prom = self.prom
        proc = self.stack.spawn("prometheus.2", self.prom_argv)

        def ready() -> bool:
            self.stack.check_alive("prometheus.2", proc)
            e2e._get(f"{prom.url}/-/ready")
            return True

        e2e.wait_until(ready, 30, "prometheus restart")
        self.note("start prometheus (#2)")

    def note(self, what: str) -> None:
        self.events.append((round(time.monotonic() - self.t0, 1), what))

    # -- load -------------------------------------------------------------------------------------------------------
    def load(self, sim_base_url: str) -> subprocess.Popen[bytes]:
        env = e2e.app_env(f"http://127.0.0.1:{self.agent_http}", "llmotel-tier-app")
        env["OTEL_BSP_MAX_QUEUE_SIZE"] = "50000"  # the app's queue rides out an agent restart (spans, not memory)
        argv = [e2e.python(), str(DRIVER), "--base-url", sim_base_url, "--scenario", str(SCENARIO),
                "--speed", str(SPEED), "--duration", str(SIM_SECONDS), "--agent-period", str(AGENT_PERIOD),
                "--step-delay", str(STEP_DELAY), "--agent-loops", str(AGENT_LOOPS)]
        self.note("load starts")
        return self.stack.spawn("app", argv, env=env, stdout=subprocess.PIPE)

    def sent(self, app: subprocess.Popen[bytes]) -> dict[str, Any]:
        out, _ = app.communicate(timeout=180)
        assert app.returncode == 0, f"app failed:\n{self.stack.tail('app')}"
        self.note("load done")
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result


def _binary() -> Path:
    b = e2e.collector_binary()
    assert b is not None
    return b


def _agent_overlay(hostnames: list[str], reference: str) -> str:
    """The test's additions to agent-lb.yaml: its gateway list, and a second pipeline to the reference collector
    through the same persistent storage (so the reference, too, survives a kill of the agent)."""
    hosts = "\n".join(f"          - {h}" for h in hostnames)
    return f"""exporters:
  load_balancing:
    resolver:
      static:
        hostnames:
{hosts}
  otlp_grpc/reference:
    endpoint: {reference}
    tls: {{insecure: true}}
    timeout: 10s
    sending_queue: {{enabled: true, storage: file_storage/queue, queue_size: 20000, num_consumers: 4}}
    retry_on_failure: {{enabled: true, initial_interval: 200ms, max_interval: 2s, max_elapsed_time: 15m}}
service:
  pipelines:
    traces/reference:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [otlp_grpc/reference]
"""


# -- what reached where ---------------------------------------------------------------------------------------------
@dataclass
class Spans:
    """The spans one collector acknowledged, read from its JSON-lines file: (trace id, span id) -> times seen."""

    seen: Counter[tuple[str, str]] = field(default_factory=Counter)
    agent_traces: set[str] = field(default_factory=set)  # traces holding an invoke_agent span
    llm_calls: int = 0


def read_spans(path: Path | None) -> Spans:
    out = Spans()
    if path is None:
        return out
    for p in sorted(path.parent.glob(path.stem + "*" + path.suffix)):  # the file and any rotated backup
        for line in p.read_text(errors="replace").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill -9
            for rs in doc.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        key = (s.get("traceId", ""), s.get("spanId", ""))
                        out.seen[key] += 1
                        op = next((a["value"].get("stringValue") for a in s.get("attributes", [])
                                   if a.get("key") == "gen_ai.operation.name"), None)
                        if out.seen[key] == 1:
                            if op == "invoke_agent":
                                out.agent_traces.add(key[0])
                            elif op in ("chat", "text_completion", "generate_content"):
                                out.llm_calls += 1
    return out


@dataclass
class Reached:
    sent: int  # spans the agent tier acknowledged to the app (the SDK exporter's successes)
    app_failed: int  # spans the app's SDK gave up on (lost before the tier)
    gateway_unique: int
    gateway_duplicates: int  # extra copies of a span, at one gateway or at another
    lost: int  # acknowledged to the app, at no gateway
    reference_unique: int
    reference_duplicates: int
    traces_split: int  # traces whose spans reached more than one gateway
    agent_runs: int
    agent_runs_split: int
    per_gateway: dict[str, int]


def reached(tier: Tier, sent: Mapping[str, Any]) -> Reached:
    per = {name: read_spans(g.spans_file) for name, g in tier.gateways.items()}
    assert tier.reference is not None
    ref = read_spans(tier.reference.spans_file)
    total: Counter[tuple[str, str]] = Counter()
    where: dict[str, set[str]] = defaultdict(set)
    for name, s in per.items():
        total.update(s.seen)
        for trace_id, _ in s.seen:
            where[trace_id].add(name)
    agent_traces = set().union(*(s.agent_traces for s in per.values())) | ref.agent_traces
    split = {t for t, gws in where.items() if len(gws) > 1}
    return Reached(
        sent=int(sent["spans_ok"]), app_failed=int(sent["spans_failed"]),
        gateway_unique=len(total), gateway_duplicates=sum(total.values()) - len(total),
        lost=max(0, int(sent["spans_ok"]) - len(total)),
        reference_unique=len(ref.seen), reference_duplicates=sum(ref.seen.values()) - len(ref.seen),
        traces_split=len(split), agent_runs=len(agent_traces), agent_runs_split=len(split & agent_traces),
        per_gateway={n: len(s.seen) for n, s in per.items()},
    )


def wait_reached(tier: Tier, sent: Mapping[str, Any], timeout: float = 90) -> Reached:
    """Until every acknowledged span is at some gateway and at the reference (or the timeout: then what is there)."""
    deadline = time.monotonic() + timeout
    while True:
        r = reached(tier, sent)
        if (r.gateway_unique >= r.sent and r.reference_unique >= r.sent) or time.monotonic() > deadline:
            tier.note("drained" if r.gateway_unique >= r.sent else "drain timed out")
            return r
        time.sleep(1)


# -- SLIs from Prometheus, counter resets taken out ------------------------------------------------------------------
def series_totals(prom: e2e.Prometheus, selector: str, window: str = "30m") -> list[tuple[dict[str, str], float]]:
    """Each series' total over the window: its samples summed across counter resets (a restarted gateway)."""
    url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": f"{selector}[{window}]"})
    data = json.loads(e2e._get(url, timeout=20))
    out = []
    for r in data["data"]["result"]:
        values = [float(v) for _, v in r["values"]]
        total, last = 0.0, 0.0
        for v in values:
            total += v - last if v >= last else v
            last = v
        out.append((dict(r["metric"]), total))
    return out


def totals_by(prom: e2e.Prometheus, selector: str, *labels: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for lbl, v in series_totals(prom, selector):
        out[tuple(lbl.get(k, "") for k in labels)] += v
    return dict(out)


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative bucket counts {le: count}."""
    les = sorted(buckets)
    if not les or buckets[les[-1]] <= 0:
        return None
    rank = q * buckets[les[-1]]
    prev_le, prev_c = 0.0, 0.0
    for le in les:
        c = buckets[le]
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12)
        prev_le, prev_c = le, c
    return prev_le


def slis(prom: e2e.Prometheus, job: str) -> dict[str, Any]:
    sel = f'{{job="{job}"}}'
    calls = sum(totals_by(prom, f"llmotel_sli_requests_total{sel}").values())
    b = totals_by(prom, f"llmotel_sli_time_to_first_token_seconds_bucket{sel}", "le")
    buckets = {float(k[0]): v for k, v in b.items()}
    adh_sum = totals_by(prom, f"llmotel_sli_plan_adherence_sum{sel}", "gen_ai_agent_name")
    adh_n = totals_by(prom, f"llmotel_sli_plan_adherence_count{sel}", "gen_ai_agent_name")
    service = totals_by(prom, f"llmotel_sli_tenant_service_total{sel}", "llmotel_tenant_id")
    demand = totals_by(prom, f"llmotel_sli_tenant_demand_total{sel}", "llmotel_tenant_id")
    x = [service[k] / demand[k] for k in service if demand.get(k)]
    # Runs whose root reached this tier without all of its plans or tools (fragments expire only after max_age).
    split = sum(totals_by(prom, f'llmotel_sli_agent_runs_split_total{{job="{job}", llmotel_sli_split_part="root"}}')
                .values())
    rejected = sum(totals_by(prom, f"llmotel_sli_spans_rejected_total{sel}").values())
    evicted = sum(totals_by(prom, f"llmotel_sli_traces_evicted_total{sel}").values())
    return {
        "calls": round(calls),
        "spans_rejected": round(rejected),
        "traces_evicted": round(evicted),
        "ttft_p50_s": _r(quantile(0.5, buckets)),
        "ttft_p95_s": _r(quantile(0.95, buckets)),
        "runs_scored": {k[0]: round(v) for k, v in adh_n.items()},
        "adherence_mean": {k[0]: _r(adh_sum[k] / v) for k, v in adh_n.items() if v},
        "service_spread_jain": _r(sum(x) ** 2 / (len(x) * sum(v * v for v in x))) if x else None,
        "runs_split_counted": round(split),
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def settle(prom: e2e.Prometheus, check: Callable[[], bool], timeout: float = 40) -> None:
    """After the spans are in: until the SLIs of the last traces were flushed and scraped (then one more scrape)."""
    e2e.wait_until(check, timeout, "SLIs flushed and scraped", interval=1)
    time.sleep(2)


def own_telemetry(c: Collector, pattern: str = "groupbytrace|refused|dropped") -> dict[str, float]:
    """The collector's own metrics whose name matches ``pattern`` (summed over labels); {} when it is down."""
    import re

    try:
        text = e2e._get(f"http://127.0.0.1:{c.env['LLMOTEL_TELEMETRY_PORT']}/metrics").decode()
    except OSError:
        return {}
    out: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if line.startswith("#") or not re.search(pattern, line.split("{")[0]):
            continue
        name = line.split("{")[0].split(" ")[0]
        out[name] += float(line.rsplit(" ", 1)[1])
    return dict(out)


def rss_kib(c: Collector) -> int:
    assert c.proc is not None
    for line in Path(f"/proc/{c.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def record(case: str, result: dict[str, Any]) -> None:
    """Print the case's figures; append them to $LLMOTEL_TIER_RESULTS (JSON lines) when set."""
    line = json.dumps({"case": case, **result}, sort_keys=True)
    print(f"\nTIER {line}", flush=True)
    path = os.environ.get("LLMOTEL_TIER_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
