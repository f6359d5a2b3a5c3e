"""Nested agent runs from the real llmotel SDK, through the ocb-built otelcol-llmotel: the collector's per-agent
adherence must equal the SDK's in-process score on each invoke_agent span, although the sub-agent's spans arrive
first and tools sit under the user's own spans; a planning block whose planner call failed is not bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _otelcol import CONFIGS, Otelcol, Sample, free_port
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmotel
from llmotel import _semconv as sc
from llmotel import spans

ADHERENCE_SUM = "llmotel_sli_plan_adherence_sum"
ADHERENCE_COUNT = "llmotel_sli_plan_adherence_count"
REJECTED = "llmotel_sli_spans_rejected_total"
AGENT = sc.GEN_AI_AGENT_NAME.replace(".", "_")


@pytest.fixture
def collector() -> Iterator[tuple[Otelcol, int]]:
    http, prom = free_port(), free_port()
    env = {
        "LLMOTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMOTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
        "LLMOTEL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{prom}",
        "LLMOTEL_SLI_FLUSH_INTERVAL": "500ms",
        "LLMOTEL_COLLECTOR_LOG_LEVEL": "warn",
    }
    with Otelcol(CONFIGS / "sidecar.yaml", env, prometheus_port=prom) as col:
        yield col, http


def _nested_runs(otlp_http_port: int) -> list[ReadableSpan]:
    """An outer run that delegates to a sub-agent; tools wrapped in the user's spans; a failed planning block."""
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "collector-agents-test"}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{otlp_http_port}/v1/traces")))
    spans.configure(tracer_provider=tp)
    tracer = tp.get_tracer("user-code")
    try:
        with llmotel.agent_run("trip-planner") as outer:
            with pytest.raises(RuntimeError), outer.planning():
                raise RuntimeError("the planner LLM call failed")  # announces nothing
            outer.plan(["search", "hotel", "book"], tools=["search_flights", "delegate_hotel", "book_flight"])
            with tracer.start_as_current_span("retry search"), llmotel.tool("search_flights"):
                pass
            with llmotel.tool("delegate_hotel"), llmotel.agent_run("hotel-finder") as inner:
                inner.plan(["find", "reserve"], tools=["find_hotel", "reserve_hotel"])
                with tracer.start_as_current_span("cache lookup"), llmotel.tool("find_hotel"):
                    pass
                with llmotel.tool("reserve_hotel"):
                    pass
            with tracer.start_as_current_span("retry book"), llmotel.tool("book_flight"):
                pass
    finally:
        tp.force_flush()
        spans.configure()
        tp.shutdown()
    return list(memory.get_finished_spans())


def _total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_nested_runs_are_scored_per_agent(collector: tuple[Otelcol, int]) -> None:
    col, http_port = collector
    produced = _nested_runs(http_port)
    sdk = {
        str(a[sc.GEN_AI_AGENT_NAME]): float(a[sc.LLMOTEL_AGENT_ADHERENCE_ORDERED])  # type: ignore[arg-type]
        for s in produced
        if (a := s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME) == "invoke_agent"
    }
    assert set(sdk) == {"trip-planner", "hotel-finder"}
    # The sub-agent's span ends (and is exported) before its parent's: the case arrival order got wrong.
    order = [str((s.attributes or {}).get(sc.GEN_AI_AGENT_NAME)) for s in produced if s.name.startswith("invoke_agent")]
    assert order == ["hotel-finder", "trip-planner"]

    col.wait_until(lambda: _total(col.scrape(), ADHERENCE_COUNT) >= 2, 60, "both agent runs scored")
    samples = col.scrape()
    for agent, score in sdk.items():
        assert _total(samples, ADHERENCE_COUNT, **{AGENT: agent}) == 1, agent
        assert _total(samples, ADHERENCE_SUM, **{AGENT: agent}) == pytest.approx(score), agent
    assert _total(samples, REJECTED) == 0, [s for s in samples if s.name == REJECTED]
