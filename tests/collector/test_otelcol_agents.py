"""Nested agent runs from the real llmotel SDK, through the ocb-built otelcol-llmotel: the collector's per-agent
adherence must equal the SDK's in-process score on each invoke_agent span, although the sub-agent's spans arrive
first and tools sit under the user's own spans; a planning block whose planner call failed is not bad input."""

from __future__ import annotations

import pytest
from _otelcol import Otelcol, Sample, tee_provider
from opentelemetry.sdk.trace import ReadableSpan

import llmotel
from llmotel import _semconv as sc
from llmotel.telemetry import spans

ADHERENCE_SUM = "llmotel_sli_plan_adherence_sum"
ADHERENCE_COUNT = "llmotel_sli_plan_adherence_count"
REJECTED = "llmotel_sli_spans_rejected_total"
AGENT = sc.GEN_AI_AGENT_NAME.replace(".", "_")


def _nested_runs(otlp_http_port: int) -> list[ReadableSpan]:
    """An outer run that delegates to a sub-agent; tools wrapped in the user's spans; a failed planning block."""
    tp, memory = tee_provider("collector-agents-test", otlp_http_port)
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
