"""Fixtures for the OpenAI instrumentor tests: an instrumented tracer/meter (the simulator is tests/conftest.py's)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _oai import Telemetry
from llmotel import config
from llmotel.providers.openai import OpenAIInstrumentor


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    config.reset()
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        yield Telemetry(exporter, reader)
    finally:
        inst.uninstrument()
        gc.collect()
        config.reset()
