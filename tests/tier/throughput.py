"""Throughput of the tier on this machine: OTLP/HTTP -> agent (shipped agent-lb.yaml, persistent queue) -> 3
gateways (shipped gateway.yaml: groupbytrace + llm_sli + span_metrics), all on loopback.

    LLMOTEL_TIER=1 .venv/bin/python tests/tier/throughput.py [--seconds 20] [--senders 2]

Senders post pre-encoded requests (100 traces of 4 spans each, shaped like llmotel's: an agent root, a chat
call, a tool, a plan) as fast as the agent accepts them for --seconds; then the run goes on until the gateways
accepted every span the agent acknowledged (its persistent queue absorbs the burst). Reported: spans/s end to end
(spans the gateways accepted, their own ``otelcol_receiver_accepted_spans``, over the time until drained), the CPU
seconds the four collectors used (/proc), and so spans per collector CPU second, the per-core figure (the
senders' CPU is not counted; they share the 2 cores). One JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from tier_support import Tier, e2e


def _kv(key: str, value: str | int) -> KeyValue:
    v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
    return KeyValue(key=key, value=v)


def body(rng: random.Random, traces: int = 100) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", "throughput"))
    ss = rs.scope_spans.add()
    ss.scope.name = "llmotel"
    now = time.time_ns()
    for _ in range(traces):
        tid = rng.randbytes(16)
        root = rng.randbytes(8)
        tenant = f"tenant-{rng.randrange(20)}"

        def span(name: str, parent: bytes, kind: int, attrs: list[KeyValue], tid: bytes = tid) -> None:
            s = ss.spans.add()
            s.trace_id, s.span_id, s.parent_span_id = tid, rng.randbytes(8), parent
            s.name, s.kind = name, kind
            s.start_time_unix_nano, s.end_time_unix_nano = now - 900_000_000, now
            s.attributes.extend(attrs)

        span("plan travel", root, Span.SPAN_KIND_INTERNAL, [
            _kv("gen_ai.operation.name", "plan"), _kv("gen_ai.agent.name", "travel"), _kv("llmotel.plan.revision", 0)])
        span("chat gpt-4o-mini", root, Span.SPAN_KIND_CLIENT, [
            _kv("gen_ai.operation.name", "chat"), _kv("gen_ai.request.model", "gpt-4o-mini"),
            _kv("gen_ai.provider.name", "openai"), _kv("llmotel.tenant.id", tenant),
            _kv("gen_ai.usage.input_tokens", 300), _kv("gen_ai.usage.output_tokens", 30)])
        span("execute_tool search", root, Span.SPAN_KIND_INTERNAL, [
            _kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", "search")])
        s = ss.spans.add()
        s.trace_id, s.span_id, s.name, s.kind = tid, root, "invoke_agent travel", Span.SPAN_KIND_INTERNAL
        s.start_time_unix_nano, s.end_time_unix_nano = now - 1_000_000_000, now
        s.attributes.extend([_kv("gen_ai.operation.name", "invoke_agent"), _kv("gen_ai.agent.name", "travel")])
    return req.SerializeToString()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def accepted(port: int) -> float:
    text = e2e._get(f"http://127.0.0.1:{port}/metrics").decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("otelcol_receiver_accepted_spans"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--senders", type=int, default=2)
    args = ap.parse_args()
    rng = random.Random(1)
    bodies = [body(rng) for _ in range(300)]
    with e2e.Stack() as stack:
        tier = Tier(stack)
        for i in range(3):
            g = tier.gateway(f"gateway-{i}")
            g.argv = g.argv[:3]  # the shipped gateway.yaml alone: no span file to write
            tier.start(g)
        tier.reference = tier.gateway("reference")  # configured, never started: the agent needs an address
        tier.gateways.pop("reference", None)
        agent = tier.agent_tier([f"127.0.0.1:{g.grpc}" for g in tier.gateways.values()])
        # No reference pipeline here: the overlay's second pipeline would double the agent's work.
        agent.argv = [*agent.argv[:3], "--config", str(_overlay_without_reference(stack, tier))]
        tier.start(agent)
        telemetry = {n: int(g.env["LLMOTEL_TELEMETRY_PORT"]) for n, g in tier.gateways.items()}
        procs = {n: c.proc for n, c in [*tier.gateways.items(), ("agent", agent)]}
        url = f"http://127.0.0.1:{tier.agent_http}/v1/traces"
        stop = threading.Event()
        sent = [0] * args.senders

        def send(k: int) -> None:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            i = k
            while not stop.is_set():
                req = urllib.request.Request(url, data=bodies[i % len(bodies)],
                                             headers={"content-type": "application/x-protobuf"})
                try:
                    with opener.open(req, timeout=30) as resp:
                        resp.read()
                    sent[k] += 400
                except OSError:
                    time.sleep(0.05)  # refused (memory_limiter / queue full): back off like an SDK
                i += args.senders

        cpu0 = {n: cpu_seconds(p.pid) for n, p in procs.items() if p is not None}
        acc0 = sum(accepted(p) for p in telemetry.values())
        t0 = time.monotonic()
        threads = [threading.Thread(target=send, args=(k,)) for k in range(args.senders)]
        for th in threads:
            th.start()
        time.sleep(args.seconds)
        stop.set()
        for th in threads:
            th.join(60)
        sending = time.monotonic() - t0
        # The agent acknowledges a span once it is in its persistent queue: the queue grows while the gateways
        # lag. The tier's throughput is end to end: until the gateways accepted every acknowledged span.
        deadline = time.monotonic() + 300
        while sum(accepted(p) for p in telemetry.values()) - acc0 < sum(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        acc = sum(accepted(p) for p in telemetry.values()) - acc0
        cpu = {n: round(cpu_seconds(p.pid) - cpu0[n], 2) for n, p in procs.items() if p is not None}
        total_cpu = sum(cpu.values())
        print(json.dumps({
            "sending_s": round(sending, 1), "until_drained_s": round(elapsed, 1), "senders": args.senders,
            "spans_acknowledged_by_agent": sum(sent),
            "spans_accepted_by_gateways": int(acc), "spans_per_s": round(acc / elapsed),
            "collector_cpu_s": cpu, "spans_per_cpu_s": round(acc / total_cpu) if total_cpu else None,
            "cores": os.cpu_count(),
        }), flush=True)
    return 0


def _overlay_without_reference(stack: e2e.Stack, tier: Tier) -> Path:
    hosts = "\n".join(f"          - 127.0.0.1:{g.grpc}" for g in tier.gateways.values())
    path = stack.workdir / "agent-overlay-throughput.yaml"
    path.write_text(f"exporters:\n  load_balancing:\n    resolver:\n      static:\n        hostnames:\n{hosts}\n")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
