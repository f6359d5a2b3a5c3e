"""Pre-fork servers and an exporter that is down for a while, with the real SDK providers and real clients.

- Fork: an app that `import llmotel.auto`s and makes calls (its batch processor's thread running), then forks
  workers (``os.fork`` as gunicorn / uWSGI pre-fork do, and ``multiprocessing`` with the 'fork' context). Every
  worker's calls must reach the OTLP receiver, each exactly once, and the parent's too. A worker of
  multiprocessing ends with ``os._exit`` (no atexit hooks): its last spans are exported only if something flushes
  them at the worker's exit.
- Outage: the OTLP endpoint goes down mid-run (its port closed) for several seconds and comes back on the same
  port: the app's calls keep their latency, the batch queue stays within its bound, and spans made after the
  endpoint is back are exported.
"""

from __future__ import annotations

import gc
import gzip
import logging
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest
from _otlp_receiver import OtlpReceiver
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import llmotel
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel.telemetry import spans
from llmotel_sim import SimServer

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
CALLS = 4

APP = textwrap.dedent(
    """
    import multiprocessing, os, sys
    import llmotel, llmotel.auto
    import openai

    base, mode = sys.argv[1], sys.argv[2]

    def work(tag):
        client = openai.OpenAI(base_url=base + "/v1", api_key="k", max_retries=0)
        with llmotel.tenant(tag):
            for _ in range({calls}):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}],
                                               extra_headers={{"x-sim-output-tokens": "3"}})
        client.close()

    work("parent")  # before the fork: the parent's exporter thread is running, its client pool open
    if mode == "os.fork":
        pids = []
        for k in range({workers}):
            pid = os.fork()
            if pid == 0:
                work(f"worker-{{k}}")
                sys.exit(0)  # a pre-fork worker's normal exit (gunicorn's): atexit hooks run
            pids.append(pid)
        codes = [os.waitpid(p, 0)[1] for p in pids]
    else:
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=work, args=(f"worker-{{k}}",)) for k in range({workers})]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        codes = [p.exitcode for p in procs]
    assert all(c == 0 for c in codes), codes
    work("parent-after")  # the parent still exports after its workers are gone
    """
).format(calls=CALLS, workers=WORKERS)


def tenants_exported(bodies: list[tuple[str, bytes]]) -> Counter[str]:
    """Chat spans per llmotel.tenant.id in what the receiver got (each body an OTLP/protobuf traces request)."""
    seen: Counter[str] = Counter()
    for path, body in bodies:
        if not path.endswith("/v1/traces"):
            continue
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    if s.kind != s.SPAN_KIND_CLIENT:
                        continue
                    tenant = next((a.value.string_value for a in s.attributes if a.key == "llmotel.tenant.id"), "")
                    seen[tenant] += 1
    return seen


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["os.fork", "multiprocessing-fork"])
def test_every_forked_worker_exports_its_spans(mode: str, sim: SimServer, tmp_path: Path) -> None:
    receiver = OtlpReceiver().start()
    app = tmp_path / "prefork_app.py"
    app.write_text(APP)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "5000",  # longer than a worker lives: only a flush at its exit exports
        "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
        "PATH": "/usr/bin:/bin",
    }
    try:
        done = subprocess.run([sys.executable, str(app), sim.base_url, mode], env=env, capture_output=True,
                              text=True, timeout=80)
        assert done.returncode == 0, done.stderr[-3000:]
        time.sleep(0.5)
        seen = tenants_exported(receiver.bodies)
    finally:
        receiver.close()
    expected = {"parent": CALLS, "parent-after": CALLS, **{f"worker-{k}": CALLS for k in range(WORKERS)}}
    assert dict(seen) == expected, f"{mode}: {dict(seen)}"


class _Endpoint:
    """An OTLP/HTTP endpoint on a fixed port that can go down (port closed) and come back on the same port."""

    def __init__(self) -> None:
        self.spans = 0
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def up(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                with endpoint._lock:
                    endpoint.spans += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def quiet_otel_logs() -> Iterator[None]:
    """Every failed export logs a warning; pytest would keep each record in memory (an app's handler does not)."""
    otel_log = logging.getLogger("opentelemetry")
    level = otel_log.level
    otel_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        otel_log.setLevel(level)


@pytest.mark.timeout(60)
def test_outage_then_back_never_blocks_and_stays_bounded(sim: SimServer, quiet_otel_logs: None) -> None:
    endpoint = _Endpoint()
    endpoint.up()
    queue = 512
    tp = TracerProvider()
    proc = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{endpoint.port}/v1/traces", timeout=2),
                              max_queue_size=queue, max_export_batch_size=128, schedule_delay_millis=100)
    tp.add_span_processor(proc)
    OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=MeterProvider(
        metric_readers=[InMemoryMetricReader()]))
    client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=0)

    def calls(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            with llmotel.tenant("acme"):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                               extra_headers={"x-sim-output-tokens": "2"})
            out.append(time.perf_counter() - t0)
        return out

    try:
        before = calls(40)
        proc.force_flush()
        exported_before = endpoint.spans
        endpoint.down()
        t_down = time.monotonic()
        during: list[float] = []
        while time.monotonic() - t_down < 6:  # latency first, without tracemalloc (it slows every allocation)
            during += calls(20)
        gc.collect()
        tracemalloc.start()
        heap = [tracemalloc.get_traced_memory()[0]]
        made: list[int] = []  # calls made in each window
        for until in (9, 12):  # 12 s down in all: the exporter's retries and back-off all run
            n = 0
            while time.monotonic() - t_down < until:
                n += len(calls(20))
            made.append(n)
            gc.collect()
            heap.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        growth = [heap[1] - heap[0], heap[2] - heap[1]]
        queued = len(proc._batch_processor._queue)
        endpoint.up()  # back, same port
        after = calls(40)
        deadline = time.monotonic() + 20
        while endpoint.spans < exported_before + 40 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        client.close()
        OpenAIInstrumentor().uninstrument()
        spans.configure()
        tp.shutdown()
    med = {k: statistics.median(v) * 1000 for k, v in (("before", before), ("down", during), ("after", after))}
    print(f"outage: call latency medians (ms) {med}, {len(during)} calls while down, queue {queued}/{queue}, "
          f"heap growth over 6-9 s and 9-12 s down {growth} B for {made} calls, "
          f"spans exported before {exported_before}, "
          f"after {endpoint.spans}")
    assert med["down"] <= med["before"] * 1.5 + 10, med  # the app never waits for the exporter
    assert queued <= queue
    # Bounded: the queue is full from the first seconds; the heap may still move by about a queue's worth (512 spans
    # of ~1.5 kB and a batch in flight) and its growth must slow, not keep pace with the calls made. Measured second
    # windows: 0.7, 1.5 and 1.7 MB (after 2.2-2.5 MB in the first) for ~360-1000 calls: NOT yet proven bounded over
    # minutes (docs/reliability.md); this holds the line against a regression.
    assert growth[1] < 3_000_000 and growth[1] < growth[0], (growth, made)
    assert endpoint.spans >= exported_before + 40, "spans made after the endpoint came back were not exported"
