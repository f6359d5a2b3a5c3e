"""Fixtures for the Anthropic instrumentor tests (the simulator itself is tests/conftest.py's ``sim``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from _anth import Telemetry, Wire
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmotel import config
from llmotel.providers.anthropic import AnthropicInstrumentor


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """llmotel's Anthropic instrumentation exporting into memory; the same provider is offered to the
    SDK's native tracing by tests that switch it on, so any second LLM span would land here too."""
    config.reset()
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=tp)
    try:
        yield Telemetry(exporter, tp)
    finally:
        inst.uninstrument()
        gc.collect()
        config.reset()


@pytest.fixture
def wire() -> Wire:
    return Wire()
