"""SDK metrics: the GenAI client histograms and llmotel.phase.duration, with the registry's buckets.

Recorded once per call at call end (never per chunk): time per output chunk is the mean gap of the
call's stream, so the hot path stays free of metric work.
"""

from __future__ import annotations

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import Histogram, MeterProvider

from llmotel import __version__
from llmotel import _semconv as sc


def _histogram(meter: otel_metrics.Meter, name: str, unit: str, description: str) -> Histogram:
    buckets = sc.METRIC_BUCKETS.get(name)
    return meter.create_histogram(
        name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets) if buckets else None
    )


class Instruments:
    """The histograms of one meter provider."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = otel_metrics.get_meter("llmotel", __version__, meter_provider=meter_provider)
        self.duration = _histogram(meter, sc.METRIC_GEN_AI_CLIENT_OPERATION_DURATION, "s", "GenAI operation duration")
        self.tokens = _histogram(meter, sc.METRIC_GEN_AI_CLIENT_TOKEN_USAGE, "{token}", "Tokens used per operation")
        self.ttfc = _histogram(
            meter, sc.METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK, "s", "Time to the first content chunk"
        )
        self.tpoc = _histogram(
            meter, sc.METRIC_GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK, "s", "Mean time between stream chunks"
        )
        self.phase = _histogram(meter, sc.METRIC_LLMOTEL_PHASE_DURATION, "s", "Duration of each call phase")
