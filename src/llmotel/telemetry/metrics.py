"""SDK metrics: the GenAI client histograms and llmotel.phase.duration, built from the registry's descriptors.

Recorded once per call at call end (never per chunk): time per output chunk is the mean gap of the
call's stream, so the hot path stays free of metric work. Names, units, descriptions and bucket
boundaries all come from the generated descriptors (semconv/registry/metrics.yaml), never retyped here.
"""

from __future__ import annotations

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import Histogram, MeterProvider

from llmotel import __version__
from llmotel import _semconv as sc


def _histogram(meter: otel_metrics.Meter, desc: sc.HistogramDescriptor) -> Histogram:
    return meter.create_histogram(
        desc.name,
        unit=desc.unit,
        description=desc.description,
        explicit_bucket_boundaries_advisory=list(desc.buckets),
    )


class Instruments:
    """The histograms of one meter provider."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = otel_metrics.get_meter("llmotel", __version__, meter_provider=meter_provider)
        self.duration = _histogram(meter, sc.HISTOGRAM_GEN_AI_CLIENT_OPERATION_DURATION)
        self.tokens = _histogram(meter, sc.HISTOGRAM_GEN_AI_CLIENT_TOKEN_USAGE)
        self.ttfc = _histogram(meter, sc.HISTOGRAM_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK)
        self.tpoc = _histogram(meter, sc.HISTOGRAM_GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK)
        self.phase = _histogram(meter, sc.HISTOGRAM_LLMOTEL_PHASE_DURATION)
