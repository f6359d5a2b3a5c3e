"""Span capture for the agent tests: an in-memory exporter bound to the tracer llmotel uses."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmotel.agent.run as agent_module


class Captured:
    def __init__(self, exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
        self.exporter = exporter
        self.provider = provider

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"{name}: {[s.name for s in self.all()]}"
        return found[0]


def capture_spans() -> Iterator[Captured]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:  # the real path: agent spans use the tracer the LLM call spans use
        from llmotel.telemetry import spans

        spans.configure(tracer_provider=provider)
        restore = spans.configure
    except ImportError:  # SDK core not in this tree: bind the agent module alone
        original = agent_module._tracer
        agent_module._tracer = lambda: provider.get_tracer("llmotel")

        def restore() -> None:
            agent_module._tracer = original

    try:
        yield Captured(exporter, provider)
    finally:
        restore()
        provider.shutdown()


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    ctx = span.context
    assert ctx is not None
    return ctx.span_id
