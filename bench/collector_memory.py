"""Peak RSS of the real otelcol-llmotel binary under 1,000,000 distinct tenants and prefixes, then under a
flood of agent traces that never complete.

Starts collector/build/otelcol-llmotel (`make collector-build`) on loopback with the llm_sli defaults
(cardinality caps 1000 / 5000 / 50000, trace buffer 10000 traces / 64 MiB) and no memory_limiter, which would
hide unbounded growth by refusing data. Sends OTLP/HTTP protobuf batches of 1,000 LLM call spans in the
llmotel shape (docs/semconv.md): call i carries tenant `tenant-i` and prefix fingerprint `prefix-i`, so
both take N distinct values. Then floods plan + execute_tool spans of agent traces whose invoke_agent
root never arrives. Samples VmRSS and VmHWM from /proc/<pid>/status. Writes the "collector-memory"
section of bench/RESULTS.md.

    .venv/bin/python bench/collector_memory.py [--keys 1000000] [--flood 300000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from _results import machine, write_section
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmotel import _semconv as sc

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "collector" / "build" / "otelcol-llmotel"
BATCH = 1000
NS = 1_000_000_000

CONFIG = """
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
connectors:
  llm_sli:
    flush_interval: 5s
exporters:
  prometheus:
    endpoint: 127.0.0.1:{prom}
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [llm_sli]
    metrics:
      receivers: [llm_sli]
      exporters: [prometheus]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM of pid, in KiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"VmRSS:\s+(\d+)", text)
    hwm = re.search(r"VmHWM:\s+(\d+)", text)
    assert rss and hwm
    return int(rss.group(1)), int(hwm.group(1))


def kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))  # type: ignore[arg-type]


def call_batch() -> tuple[ExportTraceServiceRequest, list[AnyValue], list[AnyValue]]:
    """BATCH call spans; returns the tenant and fingerprint values to rewrite per batch."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", string_value="memory-bench"))
    ss = rs.scope_spans.add()
    ss.scope.name = "llmotel"
    tenants, prefixes = [], []
    start = time.time_ns()
    for _ in range(BATCH):
        s = ss.spans.add()
        s.trace_id = os.urandom(16)
        s.span_id = os.urandom(8)
        s.name = "chat gpt-4o-mini"
        s.kind = Span.SPAN_KIND_CLIENT
        s.start_time_unix_nano = start
        s.end_time_unix_nano = start + NS
        s.attributes.extend([
            kv(sc.GEN_AI_OPERATION_NAME, string_value="chat"),
            kv(sc.GEN_AI_PROVIDER_NAME, string_value="openai"),
            kv(sc.GEN_AI_REQUEST_MODEL, string_value="gpt-4o-mini"),
            kv(sc.GEN_AI_RESPONSE_MODEL, string_value="gpt-4o-mini-2024-07-18"),
            kv(sc.LLMOTEL_MODEL_REVISION, string_value="fp_1"),
            kv(sc.LLMOTEL_SERVER_REGION, string_value="us"),
            kv(sc.LLMOTEL_TENANT_ID, string_value="t"),
            kv(sc.LLMOTEL_PROMPT_PREFIX_FINGERPRINT, string_value="p"),
            kv(sc.GEN_AI_USAGE_INPUT_TOKENS, int_value=1000),
            kv(sc.GEN_AI_USAGE_OUTPUT_TOKENS, int_value=100),
            kv(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, int_value=500),
            kv(sc.GEN_AI_REQUEST_STREAM, bool_value=True),
            kv(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, double_value=0.25),
        ])
        tenants.append(s.attributes[6].value)
        prefixes.append(s.attributes[7].value)
    return req, tenants, prefixes


def flood_batch() -> tuple[ExportTraceServiceRequest, list[Span]]:
    """BATCH incomplete agent traces: one plan and two execute_tool spans each, invoke_agent never sent."""
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    ss.scope.name = "llmotel"
    spans = []
    start = time.time_ns()
    for _ in range(BATCH):
        agent = os.urandom(8)
        plan = ss.spans.add(name="plan planner", span_id=os.urandom(8), parent_span_id=agent,
                            start_time_unix_nano=start, end_time_unix_nano=start + NS // 10)
        plan.attributes.extend([kv(sc.GEN_AI_OPERATION_NAME, string_value="plan"),
                                kv(sc.LLMOTEL_PLAN_REVISION, int_value=0)])
        tools = plan.attributes.add(key=sc.LLMOTEL_PLAN_TOOLS).value.array_value
        for name in ("search", "fetch", "summarise"):
            tools.values.add(string_value=name)
        spans.append(plan)
        for name in ("search", "fetch"):
            t = ss.spans.add(name=f"execute_tool {name}", span_id=os.urandom(8), parent_span_id=agent,
                             start_time_unix_nano=start, end_time_unix_nano=start + NS // 10)
            t.attributes.extend([kv(sc.GEN_AI_OPERATION_NAME, string_value="execute_tool"),
                                 kv(sc.GEN_AI_TOOL_NAME, string_value=name),
                                 kv(sc.LLMOTEL_PLAN_REVISION, int_value=0)])
            spans.append(t)
    return req, spans


def post(conn: http.client.HTTPConnection, body: bytes) -> None:
    conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        raise SystemExit(f"collector answered {resp.status}")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return str(r.read().decode())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--flood", type=int, default=300_000, help="incomplete agent traces")
    args = ap.parse_args()
    if not BINARY.exists():
        raise SystemExit("build the collector first: make collector-build")
    otlp, prom = free_port(), free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(CONFIG.format(otlp=otlp, prom=prom))
    proc = subprocess.Popen([str(BINARY), "--config", f.name], stderr=subprocess.DEVNULL)
    rows: list[tuple[str, int, int, float]] = []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", otlp, timeout=60)
        for _ in range(100):
            try:
                conn.connect()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        rss, hwm = status(proc.pid)
        rows.append(("0 keys (started)", rss, hwm, 0.0))
        req, tenants, prefixes = call_batch()
        marks = {args.keys // 4, args.keys // 2, 3 * args.keys // 4, args.keys}
        t0 = time.perf_counter()
        for base in range(0, args.keys, BATCH):
            for j in range(BATCH):
                k = str(base + j)
                tenants[j].string_value = "tenant-" + k
                prefixes[j].string_value = "prefix-" + k
            post(conn, req.SerializeToString())
            if base + BATCH in marks:
                rss, hwm = status(proc.pid)
                rate = (base + BATCH) / (time.perf_counter() - t0)
                rows.append((f"{base + BATCH:,} distinct tenants + prefixes", rss, hwm, rate))
                print(rows[-1], flush=True)
        time.sleep(6)  # one flush: the series are exported
        metrics = scrape(prom)
        requests = [line for line in metrics.splitlines() if line.startswith("llmotel_sli_requests_total{")]
        overflow = sum('otel_metric_overflow="true"' in line for line in requests)
        rss, hwm = status(proc.pid)
        rows.append(("after a flush", rss, hwm, 0.0))
        freq, spans = flood_batch()
        t0 = time.perf_counter()
        for sent in range(0, args.flood, BATCH):
            for s in spans:
                s.trace_id = sent.to_bytes(8, "big") + s.parent_span_id  # a fresh trace per agent
            post(conn, freq.SerializeToString())
            if (sent + BATCH) % (args.flood // 3) < BATCH:
                rss, hwm = status(proc.pid)
                rate = (sent + BATCH) / (time.perf_counter() - t0)
                rows.append((f"{sent + BATCH:,} incomplete agent traces", rss, hwm, rate))
                print(rows[-1], flush=True)
        time.sleep(6)
        evicted_line = next((x for x in scrape(prom).splitlines() if x.startswith("llmotel_sli_traces_evicted")), "")
        evicted = int(float(evicted_line.split()[-1])) if evicted_line else 0
        rss, hwm = status(proc.pid)
        rows.append(("after the flood and a flush", rss, hwm, 0.0))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        os.unlink(f.name)
    table = "\n".join(
        f"| {label} | {rss / 1024:.1f} | {hwm / 1024:.1f} | {f'{rate:,.0f}' if rate else '–'} |"
        for label, rss, hwm, rate in rows
    )
    md = f"""## collector-memory (bench/collector_memory.py)

The real `otelcol-llmotel` binary, llm_sli with its default caps (1,000 values per dimension, 5,000 series per
metric, 50,000 series; trace buffer 10,000 traces / 64 MiB), OTLP/HTTP protobuf on loopback, Prometheus
exporter, no memory_limiter. Call *i* carries tenant `tenant-i` and prefix fingerprint `prefix-i` (1,000 calls
per request), then {args.flood:,} agent traces whose `invoke_agent` root never arrives (a plan and two
execute_tool spans each). Rate = items per second sent by one Python client (the client is the bottleneck).

| point | VmRSS MiB | VmHWM (peak) MiB | rate (calls or traces / s) |
|---|---|---|---|
{table}

After the keys: {len(requests)} `llmotel_sli_requests_total` series, {overflow} of them the
`otel_metric_overflow="true"` series. After the flood: `llmotel_sli_traces_evicted` = {evicted:,}.
Reading: VmRSS is what the Go runtime holds, not the live state: with GOGC=100 the heap may grow to twice
the live set before a collection, and freed spans return to the OS lazily, so RSS rises while the
collector warms up and then stays flat from 500,000 to 1,000,000 keys; the flood's peak (VmHWM) is the
receiver's decode buffers plus the 64 MiB trace-buffer bound. The live heap of the connector alone is
measured by `go test -run TestMemory -v ./collector/llmsliconnector` (LLMOTEL_MEMORY_FULL=1 for 1M keys).
Machine: {machine()}.

Reproduce: `make collector-build && .venv/bin/python bench/collector_memory.py --keys {args.keys} --flood {args.flood}`
"""
    write_section("collector-memory", md)
    print(md)


if __name__ == "__main__":
    main()
