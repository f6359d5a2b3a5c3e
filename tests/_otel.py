"""One in-memory OpenTelemetry setup for tests: llmotel's instrumentors bound to a fresh TracerProvider.

``with instrumented(OpenAIInstrumentor, AnthropicInstrumentor, metrics=True) as otel:`` resets llmotel's config,
instruments (re-instrumenting one left instrumented) with a provider whose spans land in ``otel.exporter`` (and
metrics in ``otel.metrics`` when asked), and on exit uninstruments, collects garbage (so proxied streams that
were dropped unread end their spans while the test can still see them) and resets the config again.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmotel import config


@dataclass
class InMemory:
    exporter: InMemorySpanExporter
    tracer_provider: TracerProvider
    metrics: InMemoryMetricReader | None = None

    def spans(self) -> list[ReadableSpan]:
        """Every finished span, after a garbage collection has ended the spans of dropped streams."""
        gc.collect()
        return list(self.exporter.get_finished_spans())

    def roots(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.parent is None]


@contextmanager
def instrumented(*instrumentors: type[BaseInstrumentor], metrics: bool = False) -> Iterator[InMemory]:
    config.reset()
    otel = InMemory(InMemorySpanExporter(), TracerProvider(), InMemoryMetricReader() if metrics else None)
    otel.tracer_provider.add_span_processor(SimpleSpanProcessor(otel.exporter))
    kwargs: dict[str, Any] = {"tracer_provider": otel.tracer_provider}
    if otel.metrics is not None:
        kwargs["meter_provider"] = MeterProvider(metric_readers=[otel.metrics])
    done: list[BaseInstrumentor] = []
    try:
        for cls in instrumentors:
            inst = cls()
            if inst.is_instrumented_by_opentelemetry:  # left over (e.g. llmotel.auto): rebind to this provider
                inst.uninstrument()
            inst.instrument(**kwargs)
            done.append(inst)
        yield otel
    finally:
        for inst in reversed(done):
            inst.uninstrument()
        gc.collect()
        config.reset()
