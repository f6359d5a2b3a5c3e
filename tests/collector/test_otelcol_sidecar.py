"""The ocb-built otelcol-llmotel, started from collector/config/sidecar.yaml, receives OTLP/HTTP from the
real llmotel SDK (OpenAI client -> fleet simulator on loopback) and exposes the llm_sli SLIs on its
Prometheus endpoint. Expected values come from the spans the SDK produced, not from constants."""

from __future__ import annotations

from collections import Counter

import pytest
from _otelcol import Otelcol, Sample, tee_provider
from openai import OpenAI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

import llmotel
from llmotel import _semconv as sc
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel.telemetry import spans
from llmotel_sim import SimServer

# Prometheus names of the SLIs (the exporter maps dots to underscores and appends unit suffixes).
REQUESTS = "llmotel_sli_requests_total"
TTFT_COUNT = "llmotel_sli_time_to_first_token_seconds_count"
PHASE_COUNT = "llmotel_sli_phase_duration_seconds_count"
ADHERENCE_SUM = "llmotel_sli_plan_adherence_sum"
ADHERENCE_COUNT = "llmotel_sli_plan_adherence_count"
REJECTED = "llmotel_sli_spans_rejected_total"
REVISIONS = "llmotel_sli_revision_distinct"


def _label(name: str) -> str:
    return name.replace(".", "_")


def _run_workload(sim: SimServer, otlp_http_port: int) -> list[ReadableSpan]:
    """Real calls through the instrumented OpenAI client and one agent run; returns the spans the SDK made."""
    tp, memory = tee_provider("collector-test", otlp_http_port)
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp)
    spans.configure(tracer_provider=tp)
    try:
        for tenant, stream, n in (("acme", True, 3), ("beta", False, 2)):
            client = OpenAI(base_url=sim.base_url + "/v1", api_key=f"tenant-{tenant}")
            with llmotel.tenant(tenant):
                for _ in range(n):
                    msgs = [{"role": "user", "content": "plan a trip"}]
                    if stream:
                        for _chunk in client.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True):
                            pass
                    else:
                        client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        # A deviating agent run: skips "book_flight", runs an unplanned tool.
        with llmotel.agent_run("travel-planner") as run:
            run.plan(["search", "book"], tools=["search_flights", "book_flight"])
            with llmotel.tool("search_flights"):
                pass
            with llmotel.tool("send_email"):
                pass
    finally:
        tp.force_flush()
        inst.uninstrument()
        spans.configure()
        tp.shutdown()
    return list(memory.get_finished_spans())


def _total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_sidecar_turns_sdk_spans_into_slis(sim: SimServer, collector: tuple[Otelcol, int]) -> None:
    col, http_port = collector
    produced = _run_workload(sim, http_port)
    calls = [s for s in produced if s.kind == SpanKind.CLIENT]
    by_tenant = Counter(str((s.attributes or {}).get(sc.LLMOTEL_TENANT_ID)) for s in calls)
    agent = next(s for s in produced if (s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME) == "invoke_agent")
    sdk_adherence = float((agent.attributes or {})[sc.LLMOTEL_AGENT_ADHERENCE_ORDERED])  # type: ignore[arg-type]
    assert len(calls) == 5 and sdk_adherence < 1

    def complete() -> bool:
        s = col.scrape()
        return _total(s, REQUESTS) >= len(calls) and _total(s, ADHERENCE_COUNT) >= 1

    col.wait_until(complete, 60, "the SLIs of every call and the agent run")
    samples = col.scrape()

    tenant = _label(sc.LLMOTEL_TENANT_ID)
    for name, n in by_tenant.items():
        assert _total(samples, REQUESTS, **{tenant: name}) == n
    # Every call has a TTFT (streams: measured; others: from the phase spans) and one decode phase.
    assert _total(samples, TTFT_COUNT) == len(calls)
    assert _total(samples, PHASE_COUNT, **{_label(sc.LLMOTEL_PHASE_NAME): "decode"}) == len(calls)
    # The collector recomputes adherence from the spans alone; it must agree with the SDK's in-process score.
    assert _total(samples, ADHERENCE_COUNT) == 1
    assert _total(samples, ADHERENCE_SUM) == pytest.approx(sdk_adherence)
    # Revision drift sees the revision the SDK resolved.
    revision = str((calls[0].attributes or {})[sc.LLMOTEL_MODEL_REVISION])
    assert any(s.name == REVISIONS and s.labels.get(_label(sc.LLMOTEL_MODEL_REVISION)) == revision for s in samples)
    # The SDK's span model is exactly what the connector expects: nothing rejected.
    assert _total(samples, REJECTED) == 0, [s for s in samples if s.name == REJECTED]
