"""Finished spans built field for field (``finished_spans``) export as the SDK's constructors build them.

The same children and parent are emitted through a BatchSpanProcessor (the queue shortcut, ``_sink``) and through a
SimpleSpanProcessor (``on_end``), and compared with spans built by ``ReadableSpan(...)`` / ``SpanContext(...)``:
every field an exporter reads must be equal, and the objects must pass the SDK's own ``to_json``.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind

from llmotel.telemetry import finished_spans


def _fields(span: ReadableSpan) -> tuple[Any, ...]:
    return (
        span.name, span.context, span.context.is_valid, span.parent, span.kind, dict(span.attributes or {}),
        span.status.status_code, span.status.description, span.start_time, span.end_time, span.resource,
        span.instrumentation_scope, tuple(span.events), tuple(span.links), span.dropped_attributes,
    )  # fmt: skip


@pytest.mark.parametrize("processor", [BatchSpanProcessor, SimpleSpanProcessor])
def test_emitted_children_and_direct_parent_equal_constructed_spans(processor: Any) -> None:
    assert finished_spans._FAST_READABLE  # the installed SDK's ReadableSpan has the fields the shortcut sets
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(processor(exporter))
    tracer = provider.get_tracer("t", "1")
    parent = finished_spans.start_parent(tracer, "chat m", SpanKind.CLIENT, {"a": "b"}, 10)
    assert isinstance(parent, finished_spans.DirectSpan)
    emit = finished_spans.emitter(tracer, parent)
    assert emit is not None
    emit("queue", {"llmotel.phase.name": "queue", "x": 1.5}, 11, 12)
    emit("decode", {"llmotel.phase.name": "decode", "ok": True}, 12, 20)
    parent.set_own_attributes({"gen_ai.usage.output_tokens": 3})
    parent.end(end_time=21)
    provider.force_flush()
    queue, decode, call = exporter.get_finished_spans()
    pctx = parent.get_span_context()
    for span, name, attrs, start, end in (
        (queue, "queue", {"llmotel.phase.name": "queue", "x": 1.5}, 11, 12),
        (decode, "decode", {"llmotel.phase.name": "decode", "ok": True}, 12, 20),
    ):
        built = ReadableSpan(
            name=name,
            context=SpanContext(
                pctx.trace_id, span.context.span_id, is_remote=False, trace_flags=pctx.trace_flags,
                trace_state=pctx.trace_state,
            ),
            parent=pctx, resource=provider.resource, attributes=attrs, kind=SpanKind.INTERNAL,
            instrumentation_info=tracer.instrumentation_info, instrumentation_scope=tracer._instrumentation_scope,
            start_time=start, end_time=end,
        )  # fmt: skip
        assert _fields(span) == _fields(built)
        assert vars(span).keys() == vars(built).keys()
        assert span.to_json() == built.to_json()
    built_parent = ReadableSpan(
        name="chat m", context=pctx, parent=None, resource=provider.resource,
        attributes={"a": "b", "gen_ai.usage.output_tokens": 3}, kind=SpanKind.CLIENT,
        instrumentation_info=tracer.instrumentation_info, instrumentation_scope=tracer._instrumentation_scope,
        start_time=10, end_time=21,
    )  # fmt: skip
    assert _fields(call) == _fields(built_parent)
    assert call.to_json() == built_parent.to_json()


def test_context_equals_span_context() -> None:
    for trace_id, span_id, state in ((1, 2, None), (2**128 - 1, 2**64 - 1, None), (5, 0, None), (0, 5, None)):
        flags = trace.TraceFlags(1)
        made = finished_spans._context(trace_id, span_id, flags, state)
        expected = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags, trace_state=state)
        assert made == expected and made.is_valid == expected.is_valid and type(made) is SpanContext
