"""Everything llmotel remembers between calls is bounded: measured over many distinct keys.

Per-call state that outlives a call: the revision tracker (per model x region), the phase calibrator (per
provider x host x model x region), the energy coefficient and grid caches (per model / region), the
per-client base-URL cache (weak), and the phase-metric attribute cache. Each is driven past its cap with
distinct keys, then the whole pipeline's heap growth (tracemalloc) is measured between a checkpoint and
the end: a per-key leak of 100 bytes would show. ``LLMOTEL_MEMORY_CALLS`` raises the count
(``make fuzz`` runs 100,000).
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

from llmotel import config, energy, phases, region, spans
from llmotel.providers import openai as oai_provider
from llmotel.sim import SimServer

CALLS = int(os.environ.get("LLMOTEL_MEMORY_CALLS", "5000"))
# Heap growth allowed over the second half of the calls (every cap above is reached in the first half,
# and so is the OTel SDK's own per-instrument cardinality limit of 2000 series): < 100 B per new key.
GROWTH_LIMIT = 100 * (CALLS // 2)


@pytest.fixture
def pipeline() -> Iterator[InMemoryMetricReader]:
    config.reset()
    reader = InMemoryMetricReader()
    spans.configure(TracerProvider(), MeterProvider(metric_readers=[reader]))
    try:
        yield reader
    finally:
        spans.configure()
        config.reset()


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
        before = tracemalloc.get_traced_memory()[0]
        for i in range(checkpoint, CALLS):
            one_call(i)
        pipeline.collect()
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth = after - before
    assert growth < GROWTH_LIMIT, f"heap grew {growth} bytes over {CALLS - checkpoint} calls with distinct keys"
    # Each structure stays at its cap (and the caps are small).
    assert len(region.REVISIONS._last) <= region.REVISIONS._capacity <= 4096
    cal = phases.DEFAULT_MODEL.calibrator
    assert len(cal._keys) <= cal._max_keys <= 4096
    state = energy._get_state()
    assert state.coeffs.cache_info().currsize <= 512 and state.grid.cache_info().currsize <= 256
    assert len(spans._PHASE_METRIC_ATTRS) <= 5 * 3
    print(f"memory: {CALLS} distinct-key calls, growth after checkpoint {growth} B, tracemalloc peak {peak} B")


def test_same_key_calls_do_not_grow(pipeline: InMemoryMetricReader) -> None:
    # One key's calibration state fills its bins (48 x 3 points) within ~2000 calls of varied prompt sizes.
    for i in range(2000):
        one_call(i, distinct=False)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2000, 2800):
            one_call(i, distinct=False)
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert growth < 100_000, growth


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
        config.reset()
