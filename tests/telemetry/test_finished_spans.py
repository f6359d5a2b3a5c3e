"""Phase children handed straight to the span processor equal the ones the tracer path builds.

Real openai calls over loopback against the simulator, once per path (``phase_spans`` = direct / tracer), on
providers that differ in sampler and processors: the exported spans must carry the same names, parentage,
trace, kind, attributes, resource, scope and (phase-model aside) tiling; unsampled parents export nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from openai import OpenAI
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, SamplingResult, TraceIdRatioBased

from _otel import PHASES, assert_tiles, children
from llmotel import _semconv as sc
from llmotel import config
from llmotel.config import ConfigError
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel.telemetry import finished_spans
from llmotel_sim import SimServer

MSGS = [{"role": "user", "content": "hi"}]


class _CountingStarts(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span: object, parent_context: object = None) -> None:
        self.started.append(span.name)  # type: ignore[attr-defined]


@contextmanager
def _provider(path: str, sampler: Sampler | None = None) -> Iterator[tuple[InMemorySpanExporter, _CountingStarts]]:
    exporter = InMemorySpanExporter()
    starts = _CountingStarts()
    tp = TracerProvider(resource=Resource.create({"service.name": "finished-spans-test"}), sampler=sampler)
    tp.add_span_processor(starts)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp, phase_spans=path)
    try:
        yield exporter, starts
    finally:
        inst.uninstrument()
        gc.collect()


def _call(sim: SimServer, stream: bool) -> None:
    client = OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=0)
    hdr = {"x-sim-output-tokens": "6"}
    if stream:
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True, extra_headers=hdr):
            pass
    else:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers=hdr)


def _shape(span: ReadableSpan) -> tuple[object, ...]:
    # Phase values (durations, confidence, samples) depend on this call's timing; their presence must not.
    return (
        span.name,
        span.kind,
        sorted(span.attributes or {}),
        span.attributes.get(sc.LLMOTEL_PHASE_SOURCE) if span.attributes else None,
        dict(span.resource.attributes),
        span.instrumentation_scope.name if span.instrumentation_scope else None,
        span.status.status_code,
        span.dropped_attributes,
        len(span.events),
        len(span.links),
    )


@pytest.mark.parametrize("stream", [False, True])
def test_direct_children_equal_tracer_children(sim: SimServer, stream: bool) -> None:
    trees: dict[str, list[tuple[object, ...]]] = {}
    for path in ("tracer", "direct"):
        with _provider(path) as (exporter, starts):
            _call(sim, stream)
            got = list(exporter.get_finished_spans())
        (parent,) = [s for s in got if s.parent is None]
        kids = children(got, parent)
        assert [k.name for k in kids] == PHASES
        assert_tiles(parent, kids)
        assert parent.context is not None
        for kid in kids:
            assert kid.context is not None and kid.parent is not None
            assert kid.context.trace_id == parent.context.trace_id
            assert kid.parent.span_id == parent.context.span_id
            assert kid.context.trace_flags == parent.context.trace_flags
            assert kid.context.span_id not in (parent.context.span_id, 0)
        assert len({k.context.span_id for k in kids if k.context}) == len(kids)
        # The parent takes the tracer path either way (its attributes depend on what the process saw before).
        trees[path] = [_shape(parent)[:2] + _shape(parent)[4:], *[_shape(s) for s in kids]]
        # Processors' on_start sees every span on the tracer path, only the parent on the direct path.
        assert starts.started == ([parent.name, *PHASES] if path == "tracer" else [parent.name])
    assert trees["direct"] == trees["tracer"]


def test_unsampled_parent_exports_nothing(sim: SimServer) -> None:
    with _provider("direct", ParentBased(ALWAYS_OFF)) as (exporter, _):
        _call(sim, False)
        assert exporter.get_finished_spans() == ()


def test_ratio_sampler_keeps_whole_trees(sim: SimServer) -> None:
    with _provider("direct", ParentBased(TraceIdRatioBased(0.5))) as (exporter, _):
        for _ in range(30):
            _call(sim, False)
        got = list(exporter.get_finished_spans())
    roots = [s for s in got if s.parent is None]
    assert 0 < len(roots) < 30  # the sampler really decided (p of 0 or 30 roots at 0.5: ~2e-9)
    assert len(got) == 5 * len(roots)  # every sampled call has its four children, no orphan child


class _RecordOnly(Sampler):
    """Records the call span without sampling it: the direct path must leave the children to this sampler."""

    def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
        from opentelemetry.sdk.trace.sampling import Decision

        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "record-only"


def test_record_only_parent_uses_the_tracer_path(sim: SimServer) -> None:
    with _provider("direct", _RecordOnly()) as (_, starts):
        _call(sim, False)
    assert starts.started[1:] == PHASES  # the children went through start_span (the sampler's call)


def test_proxy_tracer_resolves_to_the_sdk_tracer() -> None:
    proxy = trace.ProxyTracer("llmotel")
    assert finished_spans.sdk_tracer(proxy) is None  # unresolved: no provider behind it yet
    tp = TracerProvider()
    proxy._real_tracer = tp.get_tracer("llmotel")
    assert finished_spans.sdk_tracer(proxy) is proxy._real_tracer
    assert finished_spans.emitter(trace.NoOpTracer(), trace.INVALID_SPAN) is None


def test_bad_phase_spans_value_names_the_key_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"LLMOTEL_PHASE_SPANS='sdk'.*direct \(default\) or tracer"):
        config.resolve(env={"LLMOTEL_PHASE_SPANS": "sdk"})
    with pytest.raises(ConfigError, match="phase_spans"):
        config.resolve({"phase_spans": "fast"})
    assert config.resolve(env={"LLMOTEL_PHASE_SPANS": " Tracer "}).phase_spans == "tracer"


# ---- the parent span's fast path (finished_spans.start_parent / DirectSpan) ----------------------------------------


@contextmanager
def _plain_provider(path: str, **provider_kw: object) -> Iterator[InMemorySpanExporter]:
    """Only the SDK's simple export processor: the parent may take the fast path."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "finished-spans-test"}), **provider_kw)  # type: ignore[arg-type]
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp, phase_spans=path)
    try:
        yield exporter
    finally:
        inst.uninstrument()
        gc.collect()


def _parent_shape(span: ReadableSpan) -> tuple[object, ...]:
    # Revision history (changed / previous) depends on the calls the process made before: not compared.
    keys = sorted(k for k in (span.attributes or {}) if not k.startswith("llmotel.model.revision"))
    types = [type((span.attributes or {})[k]).__name__ for k in keys]
    return (*_shape(span)[:2], keys, types, *_shape(span)[4:])


@pytest.mark.parametrize("stream", [False, True])
def test_direct_parent_equals_tracer_parent(sim: SimServer, stream: bool) -> None:
    shapes: dict[str, list[tuple[object, ...]]] = {}
    for path in ("tracer", "direct"):
        with _plain_provider(path) as exporter:
            _call(sim, stream)
            got = list(exporter.get_finished_spans())
        (parent,) = [s for s in got if s.parent is None]
        kids = children(got, parent)
        assert_tiles(parent, kids)
        assert parent.context is not None and parent.context.trace_flags.sampled
        assert all(k.parent is not None and k.parent.span_id == parent.context.span_id for k in kids)
        shapes[path] = [_parent_shape(parent), *[_shape(k) for k in kids]]
    assert shapes["direct"] == shapes["tracer"]


def test_direct_parent_is_light_only_where_nothing_changes() -> None:
    from opentelemetry.sdk.trace import SpanLimits

    def parent(tp: TracerProvider) -> object:
        return finished_spans.start_parent(tp.get_tracer("t"), "chat m", trace.SpanKind.CLIENT, {"a": 1}, 1)

    plain = TracerProvider()
    plain.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert isinstance(parent(plain), finished_spans.DirectSpan)
    starts = TracerProvider()
    starts.add_span_processor(_CountingStarts())  # acts in on_start: the tracer path
    assert parent(starts) is None
    capped = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=8))
    capped.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert parent(capped) is None
    dropped = TracerProvider(sampler=ALWAYS_OFF)
    dropped.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    span = parent(dropped)
    assert isinstance(span, trace.NonRecordingSpan) and not span.get_span_context().trace_flags.sampled


def test_direct_parent_limits_and_foreign_writes_as_the_sdk() -> None:
    from opentelemetry.sdk.trace import SpanLimits

    exported: dict[str, ReadableSpan] = {}
    for direct in (False, True):
        exporter = InMemorySpanExporter()
        tp = TracerProvider(span_limits=SpanLimits(max_span_attributes=4))
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = tp.get_tracer("t")
        start = {"s1": "a", "s2": 2}
        span = (
            finished_spans.start_parent(tracer, "chat m", trace.SpanKind.CLIENT, start, 10)
            if direct
            else tracer.start_span("chat m", kind=trace.SpanKind.CLIENT, attributes=start, start_time=10)
        )
        assert span is not None
        span.set_attribute("foreign", [1, 2])  # someone else's value: the SDK's cleaning (a tuple)
        own = {"o1": 1.5, "o2": True, "o3": ("stop",)}
        if isinstance(span, finished_spans.DirectSpan):
            span.set_own_attributes(own)
        else:
            span.set_attributes(own)
        span.end(end_time=20)
        (exported["direct" if direct else "tracer"],) = exporter.get_finished_spans()
    a, b = exported["tracer"], exported["direct"]
    assert dict(a.attributes or {}) == dict(b.attributes or {})
    assert a.dropped_attributes == b.dropped_attributes == 2
    assert (a.start_time, a.end_time) == (b.start_time, b.end_time) == (10, 20)
