"""One in-memory OpenTelemetry setup for tests: llmotel's instrumentors bound to a fresh TracerProvider.

``with instrumented(OpenAIInstrumentor, AnthropicInstrumentor, metrics=True, **options) as otel:`` instruments
(re-instrumenting one left instrumented) with a provider whose spans land in ``otel.exporter`` (and metrics in
``otel.metrics`` when asked) and the llmotel ``options`` (each instrumentor resolves its own settings: no global
state to reset), and on exit uninstruments and collects garbage (so proxied streams that were dropped unread end
their spans while the test can still see them). ``otel.reinstrument(**options)`` instruments again with other
options, for tests that compare two settings in one run.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

PHASES = ["queue", "prefill", "first_token", "decode"]
PHASE_ORDER = {n: i for i, n in enumerate(["retries", *PHASES])}


@dataclass
class InMemory:
    exporter: InMemorySpanExporter
    tracer_provider: TracerProvider
    metrics: InMemoryMetricReader | None = None
    instrumentors: list[BaseInstrumentor] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def reinstrument(self, **options: Any) -> None:
        """Uninstrument, then instrument again with the same providers and these llmotel options."""
        for inst in reversed(self.instrumentors):
            inst.uninstrument()
        for inst in self.instrumentors:
            inst.instrument(**self.kwargs, **options)

    def spans(self) -> list[ReadableSpan]:
        """Every finished span, after a garbage collection has ended the spans of dropped streams."""
        gc.collect()
        return list(self.exporter.get_finished_spans())

    def roots(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.parent is None]


@contextmanager
def instrumented(
    *instrumentors: type[BaseInstrumentor], metrics: bool = False, **options: Any
) -> Iterator[InMemory]:
    otel = InMemory(InMemorySpanExporter(), TracerProvider(), InMemoryMetricReader() if metrics else None)
    otel.tracer_provider.add_span_processor(SimpleSpanProcessor(otel.exporter))
    otel.kwargs["tracer_provider"] = otel.tracer_provider
    if otel.metrics is not None:
        otel.kwargs["meter_provider"] = MeterProvider(metric_readers=[otel.metrics])
    done = otel.instrumentors
    try:
        for cls in instrumentors:
            inst = cls()
            if inst.is_instrumented_by_opentelemetry:  # left over (e.g. llmotel.auto): rebind to this provider
                inst.uninstrument()
            inst.instrument(**otel.kwargs, **options)
            done.append(inst)
        yield otel
    finally:
        for inst in reversed(done):
            if inst.is_instrumented_by_opentelemetry:
                inst.uninstrument()
        gc.collect()


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    """The parent's direct children in start order (phases of equal start in tiling order)."""
    parent_id = parent.context.span_id if parent.context is not None else None
    kids = [s for s in spans if s.parent is not None and s.parent.span_id == parent_id]
    return sorted(kids, key=lambda s: (s.start_time or 0, PHASE_ORDER.get(s.name, 9)))


def assert_tiles(parent: ReadableSpan, kids: list[ReadableSpan]) -> None:
    """The children are contiguous, start with the parent and end with it."""
    assert kids, "no phase children"
    assert kids[0].start_time == parent.start_time
    for a, b in itertools.pairwise(kids):
        assert a.end_time == b.start_time, (a.name, b.name)
        assert (a.end_time or 0) >= (a.start_time or 0)
    assert kids[-1].end_time == parent.end_time
