"""Everything llmotel remembers between calls is bounded: measured over many distinct keys.

Per-call state that outlives a call: the revision tracker (per model x region), the phase calibrator (per
provider x host x model x region), the energy coefficient and grid caches (per model / region), the
per-client base-URL cache (weak), and the phase-metric attribute cache. Each is driven past its cap with
distinct keys, then the whole pipeline's heap growth (tracemalloc) is measured between a checkpoint and
the end, for what llmotel's own code allocated and for the process. ``LLMOTEL_MEMORY_CALLS`` raises the
count.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Iterator

import openai
import pytest
from _synthetic import one_call
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from llmotel import phases
from llmotel.energy import estimator
from llmotel.providers import openai as oai_provider
from llmotel.signals import region
from llmotel.telemetry import spans
from llmotel_sim import SimServer

CALLS = int(os.environ.get("LLMOTEL_MEMORY_CALLS", "5000"))


@pytest.fixture
def pipeline() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    spans.configure(TracerProvider(), MeterProvider(metric_readers=[reader]))
    try:
        yield reader
    finally:
        spans.configure()


_OURS = [tracemalloc.Filter(True, "*/llmotel/*"), tracemalloc.Filter(False, "*/llmotel/sim/*")]


def _llmotel_bytes(snap: tracemalloc.Snapshot) -> int:
    """Bytes alive that llmotel's own code allocated (the simulator, which may serve other tests, excluded)."""
    return sum(t.size for t in snap.filter_traces(_OURS).traces)


@pytest.mark.timeout(600)
def test_every_cache_is_capped_and_heap_flat_under_distinct_keys(pipeline: InMemoryMetricReader) -> None:
    checkpoint = CALLS // 2
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(checkpoint):
            one_call(i)
        pipeline.collect()  # a periodic export happens meanwhile in a real app
        gc.collect()
        before, snap0 = tracemalloc.get_traced_memory()[0], tracemalloc.take_snapshot()
        for i in range(checkpoint, CALLS):
            one_call(i)
        pipeline.collect()
        gc.collect()
        (after, peak), snap1 = tracemalloc.get_traced_memory(), tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held0, held1 = _llmotel_bytes(snap0), _llmotel_bytes(snap1)
    growth = after - before
    # Every cache is full by the checkpoint; what llmotel's code holds stays below a fixed size (caches that
    # clear when full oscillate under it), and does not grow with the new keys: 2,500 keys leaking 400 B
    # each would add 1 MB. The whole process (OTel SDK, other threads of the session): 2 MB.
    assert held1 < 8_000_000, f"llmotel holds {held1} bytes"  # incl. the shipped energy tables
    assert held1 - held0 < 1_000_000, f"llmotel holds {held1 - held0} more bytes after {CALLS - checkpoint} keys"
    assert growth < 2_000_000, f"heap grew {growth} bytes over {CALLS - checkpoint} calls with distinct keys"
    # Each structure stays at its cap (and the caps are small).
    assert len(region.REVISIONS._last) <= region.REVISIONS._capacity <= 4096
    cal = phases.DEFAULT_MODEL.calibrator
    assert len(cal._keys) <= cal._max_keys <= 4096
    state = estimator._get_state()
    assert state.coeffs.cache_info().currsize <= 512 and state.grid.cache_info().currsize <= 256
    assert len(spans._PHASE_METRIC_ATTRS) <= 5 * 3
    metric_attrs = getattr(spans, "_METRIC_ATTRS", {})
    assert len(metric_attrs) <= getattr(spans, "_METRIC_ATTRS_MAX", 4096) <= 4096
    print(f"memory: {CALLS} keys; llmotel holds {held0} then {held1} B; process +{growth} B; peak {peak} B")


def test_same_key_calls_do_not_grow(pipeline: InMemoryMetricReader) -> None:
    # One key's calibration state fills its bins (48 x 3 points) within ~2000 calls of varied prompt sizes.
    for i in range(2000):
        one_call(i, distinct=False)
    gc.collect()
    tracemalloc.start()
    try:
        before, snap0 = tracemalloc.get_traced_memory()[0], tracemalloc.take_snapshot()
        for i in range(2000, 2800):
            one_call(i, distinct=False)
        gc.collect()
        after, snap1 = tracemalloc.get_traced_memory()[0], tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    ours = _llmotel_bytes(snap1) - _llmotel_bytes(snap0)
    assert ours < 100_000, ours
    assert after - before < 1_000_000, after - before


def test_client_base_url_cache_is_weak(sim: SimServer) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmotel.providers.openai import OpenAIInstrumentor

    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    OpenAIInstrumentor().instrument(tracer_provider=tp)
    try:
        for _ in range(30):
            c = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=0)
            c.embeddings.create(model="text-embedding-3-small", input="x")
            c.close()
            del c
        gc.collect()
        assert len(oai_provider._BASE) <= 1  # only clients still alive are remembered
    finally:
        OpenAIInstrumentor().uninstrument()
