"""The OTLP endpoint is down or slow: the app's calls take the same time and memory stays bounded.

Real OTLP/HTTP exporters behind the SDK's batching processors (what ``llmotel.auto`` installs) point at a
closed port ("down") or at a receiver that answers after 2 s ("slow"). Export happens on the processors'
threads; llmotel never exports on the caller's thread, so only GIL contention could show. The batch
queue (``max_queue_size``) drops spans beyond its size rather than growing.
"""

from __future__ import annotations

import gc
import logging
import statistics
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import openai
import pytest
from _otlp_receiver import OtlpReceiver, closed_port
from _synthetic import one_call
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmotel.providers.openai import OpenAIInstrumentor
from llmotel.telemetry import spans
from llmotel_sim import SimServer


@contextmanager
def _telemetry(kind: str, queue: int = 2048) -> Iterator[BatchSpanProcessor | None]:
    receiver = None
    tp = TracerProvider()
    proc: BatchSpanProcessor | None = None
    if kind == "memory":
        tp.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    else:
        if kind == "down":
            url = f"http://127.0.0.1:{closed_port()}"
        else:
            receiver = OtlpReceiver(delay_s=2.0).start()
            url = receiver.url
        proc = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=url + "/v1/traces", timeout=2),
            max_queue_size=queue,
            max_export_batch_size=min(512, queue // 2),
            schedule_delay_millis=100,
        )
        tp.add_span_processor(proc)
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=url + "/v1/metrics", timeout=2), export_interval_millis=200
        )
        mp = MeterProvider(metric_readers=[reader])
    OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    try:
        yield proc
    finally:
        OpenAIInstrumentor().uninstrument()
        spans.configure()
        # Shutting down a processor whose endpoint is down waits for its export timeout: do it off the clock.
        tp.shutdown()
        mp.shutdown(timeout_millis=500)
        if receiver is not None:
            receiver.close()


@pytest.mark.timeout(300)
def test_call_latency_unchanged_while_exporter_down_or_slow(sim: SimServer) -> None:
    client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=0)
    msgs = [{"role": "user", "content": "ping"}]
    lat: dict[str, list[float]] = {"memory": [], "down": [], "slow": []}
    for _ in range(3):
        for kind in lat:
            with _telemetry(kind):
                for _ in range(12):
                    t0 = time.perf_counter()
                    list(
                        client.chat.completions.create(
                            model="gpt-4o-mini",
                            messages=msgs,
                            stream=True,  # type: ignore[arg-type]
                            extra_headers={"x-sim-output-tokens": "4"},
                        )
                    )
                    lat[kind].append(time.perf_counter() - t0)
    client.close()
    med = {k: statistics.median(v) for k, v in lat.items()}
    print("exporter latency medians (ms):", {k: round(v * 1000, 2) for k, v in med.items()})
    for kind in ("down", "slow"):
        assert med[kind] <= med["memory"] * 1.5 + 0.010, med


@pytest.fixture
def quiet_otel_logs() -> Iterator[None]:
    """The SDK logs every failed export; pytest would keep each record in memory (an app's handler does not)."""
    otel_log = logging.getLogger("opentelemetry")
    level = otel_log.level
    otel_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        otel_log.setLevel(level)


def test_memory_bounded_while_exporter_down(quiet_otel_logs: None) -> None:
    calls = 3000
    with _telemetry("down", queue=256) as proc:
        assert proc is not None
        # One key: the metric series stay few, so what is measured is the span path while export fails
        # (distinct keys are test_memory_bounds.py's; the OTel SDK caps series at 2000 per instrument).
        for i in range(calls // 2):
            one_call(i, distinct=False)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(calls // 2, calls):
                one_call(i, distinct=False)
            gc.collect()
            growth = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        queued = len(proc._batch_processor._queue)
    print(f"exporter down: {calls} calls, queue {queued}/256 spans, heap growth over the last half {growth} B")
    assert queued <= 256
    # Bounded: the queue (256 spans) plus one batch in flight (128) at ~1.5 kB a span; unbounded would be
    # 1500 calls x 5 spans x ~1 kB = 7.5 MB.
    assert growth < 3_000_000, growth
