"""Fixtures for the Anthropic instrumentor tests (the simulator itself is tests/conftest.py's ``sim``).

llmotel options for one test: ``@pytest.mark.llmotel(capture_content=True)`` (passed to ``instrument()``; each
instrumentor resolves its own settings, so there is no global configuration to reset).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _anth import Telemetry, Wire
from _otel import instrumented
from llmotel.providers.anthropic import AnthropicInstrumentor


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llmotel(**options): llmotel options given to instrument() by the fixture")


@pytest.fixture
def telemetry(request: pytest.FixtureRequest) -> Iterator[Telemetry]:
    """llmotel's Anthropic instrumentation exporting into memory; the same provider is offered to the
    SDK's native tracing by tests that switch it on, so any second LLM span would land here too."""
    marker = request.node.get_closest_marker("llmotel")
    with instrumented(AnthropicInstrumentor, **(marker.kwargs if marker is not None else {})) as otel:
        yield Telemetry(otel.exporter, otel.tracer_provider, otel.reinstrument)


@pytest.fixture
def wire() -> Wire:
    return Wire()
