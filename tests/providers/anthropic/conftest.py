"""Fixtures for the Anthropic instrumentor tests (the simulator itself is tests/conftest.py's ``sim``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _anth import Telemetry, Wire
from _otel import instrumented
from llmotel.providers.anthropic import AnthropicInstrumentor


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """llmotel's Anthropic instrumentation exporting into memory; the same provider is offered to the
    SDK's native tracing by tests that switch it on, so any second LLM span would land here too."""
    with instrumented(AnthropicInstrumentor) as otel:
        yield Telemetry(otel.exporter, otel.tracer_provider)


@pytest.fixture
def wire() -> Wire:
    return Wire()
