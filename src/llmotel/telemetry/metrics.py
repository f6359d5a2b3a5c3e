"""SDK metrics: the GenAI client histograms and llmotel.phase.duration, built from the registry's descriptors.

Recorded once per call at call end (never per chunk): time per output chunk is the mean gap of the
call's stream, so the hot path stays free of metric work. Names, units, descriptions and bucket
boundaries all come from the generated descriptors (semconv/registry/metrics.yaml), never retyped here.

Recording (``Recorder.record``). A call records 3 (plain) to 5 (stream) points on attribute sets that repeat from
call to call. ``Histogram.record`` redoes, per point, work whose outcome is fixed per attribute set: it cleans the
attributes into a new dict (``Measurement``), copies that dict again and hashes it into its aggregation key
(``_ViewInstrumentMatch.consume_measurement``): most of the SDK's cost per record (bench/RESULTS.md). llmotel's
attribute sets are built once per key (``Series``: plain str values, never mutated afterwards) with their SDK key,
and a record on the OpenTelemetry SDK's own histogram hands the measurement to the aggregation the SDK made for that
key: the same ``aggregate(measurement, should_sample_exemplar)`` call, the same exemplar filter, context and
timestamp, so the exported points and exemplars are the SDK's. Anything else goes through ``Histogram.record``:
an instrument that is not the SDK's (or not yet bound to it), a disabled meter, a negative or non-finite value,
a view that filters attribute keys, any storage or match of a type not known here, and the first point of a
series (the SDK creates its aggregation, with its lock and cardinality limit). A key scheme other than the one
computed here never matches an aggregation, so every record then takes the SDK's path: slower, never different.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from time import time_ns
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.context import get_current
from opentelemetry.metrics import Histogram, MeterProvider
from opentelemetry.util.types import AttributeValue

from llmotel import __version__
from llmotel import _semconv as sc

try:  # the SDK's internals the fast path relies on (opentelemetry-sdk 1.45); absent or moved: no fast path
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes, _ViewInstrumentMatch
    from opentelemetry.sdk.metrics._internal.exemplar.exemplar_filter import (
        AlwaysOffExemplarFilter,
        AlwaysOnExemplarFilter,
        TraceBasedExemplarFilter,
    )
    from opentelemetry.sdk.metrics._internal.instrument import _Histogram as _SdkHistogram
    from opentelemetry.sdk.metrics._internal.measurement import Measurement as _Measurement
    from opentelemetry.sdk.metrics._internal.measurement_consumer import SynchronousMeasurementConsumer
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage

    _FAST_OK = all(
        hasattr(_ViewInstrumentMatch, name) for name in ("consume_measurement", "_get_or_create_aggregation")
    ) and "__slots__" not in vars(_Measurement)
    # Measurement is a frozen dataclass whose __init__ sets these five fields in this order and whose __post_init__
    # only cleans the attributes: a measurement is then built as that __init__ leaves it (the frozen __setattr__
    # per field is most of its cost), with attributes already clean.
    _FAST_MEASUREMENT = tuple(f.name for f in dataclasses.fields(_Measurement)) == (
        "value",
        "time_unix_nano",
        "instrument",
        "context",
        "attributes",
    )
    # The SDK's exemplar filters whose decision depends on the context only (not on the value, time or attributes):
    # one decision serves every point a call records in one context (``Recorder.decision``).
    _CONTEXT_FILTERS: frozenset[type] = frozenset(
        {AlwaysOffExemplarFilter, AlwaysOnExemplarFilter, TraceBasedExemplarFilter}
    )
except ImportError:  # pragma: no cover - depends on the installed SDK
    _FAST_OK = _FAST_MEASUREMENT = False
    _CONTEXT_FILTERS = frozenset()

_INF = math.inf
_new_object = object.__new__
_NO_KEY: Any = object()  # a series whose SDK key could not be computed: never matches an aggregation


class Series:
    """One attribute set of the call metrics: the mapping handed to the SDK (never mutated after construction) and
    its SDK aggregation key, computed on first use."""

    __slots__ = ("_key", "attributes")

    def __init__(self, attributes: dict[str, AttributeValue]) -> None:
        self.attributes: Mapping[str, AttributeValue] = attributes
        self._key: Any = None

    @property
    def key(self) -> Any:
        key = self._key
        if key is None:
            try:
                key = _hash_attributes(dict(self.attributes)) if _FAST_OK else _NO_KEY
            except Exception:
                key = _NO_KEY
            self._key = key
        return key


class Recorder:
    """One histogram; ``record(value, series)`` as ``Histogram.record(value, series.attributes)``, faster on the
    SDK's own histogram (module docstring)."""

    __slots__ = ("_sdk", "histogram")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self._sdk: Any = None  # the SDK histogram once resolved; False: never (not the SDK's)

    def _resolve(self) -> Any:
        hist: Any = self.histogram
        if not _FAST_OK:
            return False
        if type(hist) is not _SdkHistogram:
            real = getattr(hist, "_real_instrument", None)  # the API's proxy, bound once an SDK provider is set
            if real is None:
                return None if hasattr(hist, "_real_instrument") else False
            hist = real
            if type(hist) is not _SdkHistogram:
                return False
        if type(getattr(hist, "_measurement_consumer", None)) is not SynchronousMeasurementConsumer:
            return False
        return hist

    def _bound(self) -> Any:
        sdk = self._sdk
        if sdk is None:
            sdk = self._resolve()
            if sdk is not None:
                self._sdk = sdk
        return sdk

    def decision(self, context: Any) -> tuple[Any, bool] | None:
        """(exemplar filter, its decision) for points recorded in ``context`` when this histogram's filter is one of
        the SDK's that decide by the context alone; None otherwise (each ``record`` then asks the filter)."""
        sdk = self._bound()
        if not sdk:
            return None
        filt = sdk._measurement_consumer._sdk_config.exemplar_filter
        if type(filt) not in _CONTEXT_FILTERS:
            return None
        return filt, bool(filt.should_sample(0.0, 0, None, context))

    def record(
        self, value: float, series: Series, context: Any = None, decision: tuple[Any, bool] | None = None
    ) -> None:
        """``context``: the current context when the caller already has it; ``decision``: from ``decision(context)``
        (the same context), reused when this histogram has the same filter."""
        sdk = self._sdk
        if sdk is None:
            sdk = self._bound()
        if not sdk or not (0 <= value < _INF) or not sdk._is_enabled():
            self.histogram.record(value, series.attributes)
            return
        key = series.key
        attributes = series.attributes
        consumer = sdk._measurement_consumer
        if context is None:
            context = get_current()
            decision = None
        now = time_ns()
        # The measurement the SDK would build, with the attributes it would have cleaned to an equal dict.
        if _FAST_MEASUREMENT:
            measurement = _new_object(_Measurement)
            fields = measurement.__dict__
            fields["value"] = value
            fields["time_unix_nano"] = now
            fields["instrument"] = sdk
            fields["context"] = context
            fields["attributes"] = attributes
        else:
            measurement = _Measurement(value, now, sdk, context, None)
            object.__setattr__(measurement, "attributes", attributes)
        filt = consumer._sdk_config.exemplar_filter
        if decision is not None and decision[0] is filt:
            sample = decision[1]
        else:
            sample = filt.should_sample(value, now, attributes, context)
        for storage in consumer._reader_storages.values():
            matches = (
                storage._instrument_view_instrument_matches.get(sdk) if type(storage) is MetricReaderStorage else None
            )
            if matches is None:
                storage.consume_measurement(measurement, sample)
                continue
            for match in matches:
                if type(match) is not _ViewInstrumentMatch or match._view._attribute_keys is not None:
                    match.consume_measurement(measurement, sample)
                    continue
                if match._reset_on_collect:  # delta: collect() swaps the aggregations under this lock
                    with match._lock:
                        aggregation = match._attributes_aggregation.get(key)
                        if aggregation is None:
                            aggregation = match._get_or_create_aggregation(key, dict(attributes))
                        aggregation.aggregate(measurement, sample)
                    continue
                aggregation = match._attributes_aggregation.get(key)
                if aggregation is None:
                    match.consume_measurement(measurement, sample)
                else:
                    aggregation.aggregate(measurement, sample)


def _histogram(meter: otel_metrics.Meter, desc: sc.HistogramDescriptor) -> Histogram:
    return meter.create_histogram(
        desc.name,
        unit=desc.unit,
        description=desc.description,
        explicit_bucket_boundaries_advisory=list(desc.buckets),
    )


class Instruments:
    """The histograms of one meter provider, each behind its ``Recorder``."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = otel_metrics.get_meter("llmotel", __version__, meter_provider=meter_provider)
        self.duration = Recorder(_histogram(meter, sc.HISTOGRAM_GEN_AI_CLIENT_OPERATION_DURATION))
        self.tokens = Recorder(_histogram(meter, sc.HISTOGRAM_GEN_AI_CLIENT_TOKEN_USAGE))
        self.ttfc = Recorder(_histogram(meter, sc.HISTOGRAM_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK))
        self.tpoc = Recorder(_histogram(meter, sc.HISTOGRAM_GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK))
        self.phase = Recorder(_histogram(meter, sc.HISTOGRAM_LLMOTEL_PHASE_DURATION))
