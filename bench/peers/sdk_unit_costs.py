"""Instructions per OpenTelemetry SDK operation, the unit costs an instrumentation's per-call budget is made of.

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python bench/peers/sdk_unit_costs.py      # then: grep -H "^desc: Trigger\\|^summary" /tmp/cg.*.*

Needs bench/.venvs/cgmark.so (built by `bench/overhead.py --callgrind`). Same pipeline as the overhead workers:
SDK TracerProvider + BatchSpanProcessor into a counting exporter (flushed inside the measured window, so export is
counted), SDK MeterProvider with an InMemoryMetricReader. Each case is warmed up, then counted over N operations;
instructions per operation = summary / N.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from worker import CountingExporter

N = 200


def main() -> None:
    lib = ctypes.CDLL(str(Path(__file__).resolve().parent.parent / ".venvs" / "cgmark.so"))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(CountingExporter(), max_queue_size=1 << 20))
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracer = provider.get_tracer("bench")
    hist = meters.get_meter("bench").create_histogram("bench")
    attrs10 = {f"gen_ai.attr{i}": (i if i % 2 else f"v{i}") for i in range(10)}
    attrs5 = {f"gen_ai.attr{i}": f"v{i}" for i in range(5)}
    ctx = trace.set_span_in_context(tracer.start_span("parent"))
    cases: dict[str, Callable[[], None]] = {
        "span, no attributes": lambda: tracer.start_span("s").end(),
        "span, 10 attributes": lambda: tracer.start_span("s", attributes=attrs10).end(),
        "child span, 5 attributes, explicit times": lambda: tracer.start_span(
            "c", context=ctx, attributes=attrs5, start_time=1
        ).end(end_time=2),
        "histogram record, 5 attributes": lambda: hist.record(1.0, attrs5),
    }
    # llmotel's shortcuts for the same operations (telemetry/metrics.py, telemetry/finished_spans.py), same pipeline:
    # what they save against the rows above. Skipped on a checkout without them.
    try:
        from llmotel.telemetry import finished_spans
        from llmotel.telemetry.metrics import Recorder, Series

        recorder, series = Recorder(hist), Series(dict(attrs5))
        parent = tracer.start_span("parent")
        emit = finished_spans.emitter(tracer, parent)
        if emit is not None:
            cases["llmotel: histogram record, 5 attributes (Recorder)"] = lambda: recorder.record(1.0, series)
            cases["llmotel: child span, 5 attributes, explicit times (emitter)"] = lambda: emit("c", dict(attrs5), 1, 2)
    except ImportError:
        pass
    for fn in cases.values():
        for _ in range(300):
            fn()
    provider.force_flush()
    lib.cg_start()
    for name, fn in cases.items():
        for _ in range(50):
            fn()
        provider.force_flush()
        lib.cg_zero()
        for _ in range(N):
            fn()
        provider.force_flush()
        lib.cg_dump(f"{name}|{N}".encode())


if __name__ == "__main__":
    main()
