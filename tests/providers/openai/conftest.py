"""Fixtures for the OpenAI instrumentor tests: an instrumented tracer/meter (the simulator is tests/conftest.py's).

llmotel options for one test: ``@pytest.mark.llmotel(capture_content=True)`` (passed to ``instrument()``; each
instrumentor resolves its own settings, so there is no global configuration to reset).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _oai import Telemetry
from llmotel.providers.openai import OpenAIInstrumentor


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llmotel(**options): llmotel options given to instrument() by the fixture")


def llmotel_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The options of the test's ``@pytest.mark.llmotel(...)`` marker, {} without one."""
    marker = request.node.get_closest_marker("llmotel")
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def telemetry(request: pytest.FixtureRequest) -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp, meter_provider=mp, **llmotel_options(request))

    def reinstrument(**options: Any) -> None:
        inst.uninstrument()
        inst.instrument(tracer_provider=tp, meter_provider=mp, **options)

    try:
        yield Telemetry(exporter, reader, reinstrument)
    finally:
        inst.uninstrument()
        gc.collect()
