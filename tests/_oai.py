"""Helpers for the OpenAI instrumentor tests: span-tree access and the tiling check."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

PHASES = ["queue", "prefill", "first_token", "decode"]


@dataclass
class Telemetry:
    exporter: InMemorySpanExporter
    metrics: InMemoryMetricReader
    # Instrument again with other llmotel options (same providers), for tests comparing two settings in one run.
    reinstrument: Callable[..., None] = field(default=lambda **options: None)

    def spans(self) -> list[ReadableSpan]:
        gc.collect()
        return list(self.exporter.get_finished_spans())

    def calls(self) -> list[tuple[ReadableSpan, list[ReadableSpan]]]:
        """(parent, children in start order) for every LLM call span, in start order."""
        spans = self.spans()
        parents = [s for s in spans if s.parent is None or s.name not in (*PHASES, "retries")]
        out = []
        for p in sorted(parents, key=lambda s: s.start_time or 0):
            kids = [s for s in spans if s.parent is not None and s.parent.span_id == p.context.span_id]
            out.append((p, sorted(kids, key=lambda s: (s.start_time or 0, PHASE_ORDER.get(s.name, 9)))))
        return out

    def one_call(self) -> tuple[ReadableSpan, list[ReadableSpan]]:
        calls = self.calls()
        assert len(calls) == 1, [c[0].name for c in calls]
        return calls[0]


PHASE_ORDER = {n: i for i, n in enumerate(["retries", *PHASES])}


def assert_tiles(parent: ReadableSpan, children: list[ReadableSpan]) -> None:
    """The children are contiguous, start with the parent and end with it."""
    assert children, "no phase children"
    assert children[0].start_time == parent.start_time
    for a, b in itertools.pairwise(children):
        assert a.end_time == b.start_time, (a.name, b.name)
        assert (a.end_time or 0) >= (a.start_time or 0)
    assert children[-1].end_time == parent.end_time


