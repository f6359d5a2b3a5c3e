"""Fixtures shared by the tests that start the ocb-built otelcol-llmotel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _otelcol import CONFIGS, Otelcol, free_port


@pytest.fixture
def collector() -> Iterator[tuple[Otelcol, int]]:
    """The sidecar config on loopback ports; yields the running collector and its OTLP/HTTP port."""
    http, prom = free_port(), free_port()
    env = {
        "LLMOTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMOTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
        "LLMOTEL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{prom}",
        "LLMOTEL_SLI_FLUSH_INTERVAL": "500ms",
        "LLMOTEL_COLLECTOR_LOG_LEVEL": "warn",
    }
    with Otelcol(CONFIGS / "sidecar.yaml", env, prometheus_port=prom) as col:
        yield col, http
