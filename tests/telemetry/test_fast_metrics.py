"""llmotel's metric fast path (``telemetry.metrics.Recorder``) exports what ``Histogram.record`` exports.

The same points are recorded twice, through a Recorder and through the SDK's own ``record``, into two identical
meter providers; the collected data (attributes, counts, sums, min/max, buckets, exemplars' values) must be equal, for
cumulative and delta readers, a view that filters attribute keys, values the SDK refuses, a meter provider set after
the instrument was made (the API's proxy), and a sampled span in the context (exemplars).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import TracerProvider

from llmotel.telemetry import metrics

A = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "server.address": "h"}
B = {**A, "gen_ai.token.type": "input"}
VALUES = [0.5, 2.0, 0.0, 7, 0.25, 1e-9, 300.0]


def _points(reader: InMemoryMetricReader) -> list[tuple[Any, ...]]:
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    exemplars = tuple(sorted(e.value for e in p.exemplars))
                    out.append(
                        (metric.name, tuple(sorted(p.attributes.items())), p.count, p.sum, p.min, p.max,
                         tuple(p.bucket_counts), exemplars)
                    )  # fmt: skip
    return sorted(out)


def _provider(**kwargs: Any) -> tuple[MeterProvider, InMemoryMetricReader]:
    views = kwargs.pop("views", ())
    reader = InMemoryMetricReader(**kwargs)
    return MeterProvider(metric_readers=[reader], views=views), reader


def _record_both(reader_kwargs: dict[str, Any], values: list[float], collect_between: bool = False) -> None:
    fast_provider, fast_reader = _provider(**reader_kwargs)
    slow_provider, slow_reader = _provider(**reader_kwargs)
    fast = metrics.Recorder(
        fast_provider.get_meter("t").create_histogram("h", explicit_bucket_boundaries_advisory=[1, 10])
    )
    slow = slow_provider.get_meter("t").create_histogram("h", explicit_bucket_boundaries_advisory=[1, 10])
    series = [metrics.Series(dict(A)), metrics.Series(dict(B))]
    for round_ in range(2):
        for i, value in enumerate(values):
            s = series[i % 2]
            fast.record(value, s)
            slow.record(value, s.attributes)
        if collect_between or round_:
            assert _points(fast_reader) == _points(slow_reader)


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_recorder_equals_record(temporality: AggregationTemporality) -> None:
    _record_both({"preferred_temporality": {SdkHistogram: temporality}}, VALUES, collect_between=True)


def test_recorder_takes_the_fast_path_on_the_sdk_histogram() -> None:
    provider, reader = _provider()
    recorder = metrics.Recorder(provider.get_meter("t").create_histogram("h"))
    series = metrics.Series(dict(A))
    recorder.record(1.0, series)  # the SDK makes the aggregation
    (match,) = next(
        iter(recorder._sdk._measurement_consumer._reader_storages.values())
    )._instrument_view_instrument_matches[recorder._sdk]
    assert series.key in match._attributes_aggregation  # so later records find it: the key scheme is the SDK's
    recorder.record(2.0, series)
    ((_, _, count, total, *_),) = _points(reader)
    assert count == 2 and total == 3.0


def test_view_filtering_keys_and_refused_values() -> None:
    view = View(instrument_name="h", attribute_keys={"gen_ai.request.model"})
    _record_both({"views": [view]}, VALUES)
    _record_both({}, [1.0, -1.0, math.inf, math.nan, 2.0])  # refused by the SDK's record (a warning each)


def test_proxy_instrument_bound_later() -> None:
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    proxy_provider = _ProxyMeterProvider()
    recorder = metrics.Recorder(proxy_provider.get_meter("t").create_histogram("h"))
    recorder.record(1.0, metrics.Series(dict(A)))  # no SDK yet: dropped, as by the proxy itself
    provider, reader = _provider()
    proxy_provider.on_set_meter_provider(provider)
    recorder.record(3.0, metrics.Series(dict(A)))
    (point,) = _points(reader)
    assert point[2] == 1 and point[3] == 3.0


def test_exemplars_of_a_sampled_span() -> None:
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("call"):
        assert trace.get_current_span().get_span_context().trace_flags.sampled
        _record_both({}, VALUES)
    token = otel_context.attach(otel_context.Context())
    try:
        _record_both({}, VALUES)
    finally:
        otel_context.detach(token)
