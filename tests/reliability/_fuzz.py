"""Shared pieces of the hypothesis property tests: JSON-ish values, a real span pipeline, the tiling check.

Example counts: ``LLMOTEL_FUZZ_EXAMPLES`` (default 150 per property in the test suite; ``make fuzz`` runs
many more). Every example that reached llmotel is counted in ``TRIED`` (reported by ``make fuzz``).
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmotel import _semconv as sc
from llmotel.telemetry import spans

EXAMPLES = int(os.environ.get("LLMOTEL_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("LLMOTEL_FUZZ_RANDOM", "") == "",  # CI: the same inputs every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    database=None,
)
TRIED: Counter[str] = Counter()

_ints = st.one_of(
    st.integers(-5, 5000), st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([0, 1, 2**63 - 1, 2**63])
)
_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e6, 1e6))
SCALARS = st.one_of(st.none(), st.booleans(), _ints, _floats, st.text(max_size=20))


def json_values(keys: list[str]) -> st.SearchStrategy[Any]:
    """Arbitrary JSON-ish values whose dict keys are mostly the real field names of the API."""
    key = st.one_of(st.sampled_from(keys), st.text(max_size=8))
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=6)),
        max_leaves=25,
    )


class Pipeline:
    """A real tracer provider exporting into memory, bound to llmotel's span module."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tp = TracerProvider()
        self.tp.add_span_processor(SimpleSpanProcessor(self.exporter))
        spans.configure(self.tp)

    def take(self) -> list[ReadableSpan]:
        out = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return out


PHASES = ("retries", "queue", "prefill", "first_token", "decode")


def assert_one_tiled_call(exported: list[ReadableSpan], phases_expected: bool) -> None:
    """Exactly one LLM span; its phase children (if any were due) tile it exactly, in order."""
    parents = [s for s in exported if s.attributes and sc.GEN_AI_OPERATION_NAME in s.attributes]
    assert len(parents) == 1, [s.name for s in exported]
    parent = parents[0]
    kids = [s for s in exported if s.parent is not None and s.parent.span_id == parent.context.span_id]
    assert all(k.name in PHASES for k in kids), [k.name for k in kids]
    if not phases_expected:
        assert not kids
        return
    assert kids, "no phase children"
    kids.sort(key=lambda s: (s.start_time or 0, PHASES.index(s.name)))
    assert [k.name for k in kids if k.name != "retries"] == ["queue", "prefill", "first_token", "decode"]
    assert kids[0].start_time == parent.start_time
    for a, b in itertools.pairwise(kids):
        assert a.end_time == b.start_time, (a.name, b.name)
    for k in kids:
        assert (k.end_time or 0) >= (k.start_time or 0), k.name
        assert k.attributes and k.attributes[sc.LLMOTEL_PHASE_SOURCE] in ("server", "client", "estimated")
    assert kids[-1].end_time == parent.end_time
