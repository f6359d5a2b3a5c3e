"""``import llmotel.auto``: export telemetry the standard way and instrument every installed client.

1. If no OpenTelemetry tracer / meter provider is set yet (and OTEL_SDK_DISABLED is not true), set SDK
   providers exporting OTLP as the standard ``OTEL_*`` variables say (endpoint, headers, protocol
   ``OTEL_EXPORTER_OTLP_PROTOCOL`` = http/protobuf (default) or grpc; ``OTEL_TRACES_EXPORTER`` /
   ``OTEL_METRICS_EXPORTER`` = none turn a signal off; the resource from ``OTEL_SERVICE_NAME`` /
   ``OTEL_RESOURCE_ATTRIBUTES``). An application that configured its own providers keeps them.
2. Instrument each client library that is installed (openai, anthropic); a missing one is skipped.

Importing twice does nothing more. Never raises: a failure is logged and the app runs uninstrumented.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from typing import Any

from opentelemetry import metrics, trace

from llmotel.providers import INSTRUMENTORS

_log = logging.getLogger(__name__)
instrumentors: list[Any] = []


def _protocol(signal: str) -> str:
    return os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )


def _configure_traces() -> None:
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter: Any
    if _protocol("TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        exporter = GrpcSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _configure_metrics() -> None:
    from opentelemetry.metrics import _internal as metrics_internal

    if not isinstance(metrics.get_meter_provider(), metrics_internal._ProxyMeterProvider):
        return
    if os.environ.get("OTEL_METRICS_EXPORTER", "otlp").strip().lower() == "none":
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    exporter: Any
    if _protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

        exporter = GrpcMetricExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter()
    metrics.set_meter_provider(
        MeterProvider(resource=Resource.create(), metric_readers=[PeriodicExportingMetricReader(exporter)])
    )


def instrument_installed() -> list[Any]:
    """Instrument every installed client library llmotel supports; return the instrumentors used."""
    done: list[Any] = []
    for package, module, cls_name in INSTRUMENTORS:
        if importlib.util.find_spec(package) is None:
            continue
        try:
            instrumentor = getattr(importlib.import_module(module), cls_name)()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument()
            done.append(instrumentor)
        except Exception:
            _log.warning("llmotel could not instrument %s", package, exc_info=True)
    return done


def _main() -> None:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true":
        try:
            _configure_traces()
            _configure_metrics()
        except Exception:
            _log.warning("llmotel could not configure OTLP export", exc_info=True)
    instrumentors.extend(instrument_installed())


_main()
