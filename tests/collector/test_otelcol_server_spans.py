"""Self-hosted servers' own spans joined with llmotel's call spans in the real otelcol-llmotel (issue #17).

Real calls go through the instrumented OpenAI client to the simulator on loopback; llmotel's default
(``propagate_trace_context = self_hosted``) sends ``traceparent``, which the test reads off the wire. For each
request the test then builds the server span the way the server's own code does, with the parent taken from
that ``traceparent``:

- vLLM: ``vllm/v1/engine/output_processor.py`` ``do_tracing`` @ d07822605346f767b672503c9aae85aa23ef2d82
  (names from ``vllm/tracing/utils.py`` ``SpanAttributes``; notes: /work/notes/server_formats.md §1b): one SERVER
  span ``llm_request``, start = arrival time, context from ``TraceContextTextMapPropagator`` over the request
  headers, latencies in float seconds, ``gen_ai.response.finish_reasons`` a JSON-encoded string, no model name.
- SGLang (``--enable-trace``): the issue states it uses the same ``gen_ai.latency.*`` keys; the span name and the
  other attributes were NOT verified against SGLang's ``observability/trace.py`` (server_formats.md §2 marks it
  UNVERIFIED), so the SGLang-shaped span here carries only those keys.

The spans reach the collector in a chosen order (one server span before its call, two after, one with no call at
all) and the expected SLIs are computed in this file from the spans the SDK produced and the measured values
chosen below.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import httpx2
import openai
import pytest
from _otelcol import CONFIGS, Otelcol, Sample, free_port
from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llmotel import _semconv as sc
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel.telemetry import spans
from llmotel_sim import SimServer

MODEL = "gpt-4o-mini"
# Measured (queue, prefill, decode) per server span, seconds: hand-chosen.
MEASURED = {"A": (0.004, 0.010, 0.030), "B": (0.002, 0.020, 0.015), "C": (0.001, 0.005, 0.040)}
ORPHAN = (0.007, 0.012, 0.050)


@pytest.fixture
def held_collector() -> Iterator[tuple[Otelcol, int]]:
    """The sidecar config, calls held 3 s for their server span (server_spans.hold_calls)."""
    http, prom = free_port(), free_port()
    env = {
        "LLMOTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMOTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
        "LLMOTEL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{prom}",
        "LLMOTEL_SLI_FLUSH_INTERVAL": "500ms",
        "LLMOTEL_SLI_HOLD_CALLS": "3s",
        "LLMOTEL_COLLECTOR_LOG_LEVEL": "warn",
    }
    with Otelcol(CONFIGS / "sidecar.yaml", env, prometheus_port=prom) as col:
        yield col, http


def _calls(sim: SimServer) -> tuple[list[ReadableSpan], list[httpx2.Headers]]:
    """Four streamed calls through the real client; the SDK's spans (kept in memory) and the headers sent."""
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "app"}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    sent: list[httpx2.Headers] = []
    http = openai.DefaultHttpxClient(event_hooks={"request": [lambda r: sent.append(r.headers)]})
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp)  # default settings: traceparent goes to the loopback server
    spans.configure(tracer_provider=tp)
    try:
        client = OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", http_client=http)
        for _ in range(4):
            for _chunk in client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True,
                extra_headers={"x-sim-output-tokens": "8"},
            ):
                pass
    finally:
        inst.uninstrument()
        spans.configure()
    return list(memory.get_finished_spans()), sent


def _server_spans(headers: dict[str, httpx2.Headers]) -> list[ReadableSpan]:
    """vLLM- and SGLang-shaped server spans: A, B (vLLM), C (SGLang), and a vLLM span with no traceparent."""
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({
        "service.name": "vllm", "vllm.instrumenting_module_name": "vllm.llm_engine", "vllm.process_id": os.getpid(),
    }))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tp.get_tracer("vllm.llm_engine")
    propagator = TraceContextTextMapPropagator()
    arrival = time.time_ns()

    def vllm(key: str, queue: float, prefill: float, decode: float, carrier: dict[str, str]) -> None:
        ctx = propagator.extract(carrier)  # vllm extract_trace_context: traceparent / tracestate only
        ttft = queue + prefill + 0.001  # + frontend time: vLLM's TTFT is measured from arrival
        attrs = {
            "gen_ai.usage.prompt_tokens": 12, "gen_ai.usage.completion_tokens": 8,
            "gen_ai.request.id": f"chatcmpl-{key}", "gen_ai.response.finish_reasons": json.dumps(["stop"]),
            "gen_ai.request.max_tokens": 64,
            "gen_ai.latency.time_in_queue": queue, "gen_ai.latency.time_to_first_token": ttft,
            "gen_ai.latency.e2e": ttft + decode, "gen_ai.latency.time_in_model_prefill": prefill,
            "gen_ai.latency.time_in_model_decode": decode, "gen_ai.latency.time_in_model_inference": prefill + decode,
        }
        tracer.start_span("llm_request", context=ctx, kind=SpanKind.SERVER, attributes=attrs, start_time=arrival).end()

    def sglang(queue: float, prefill: float, decode: float, carrier: dict[str, str]) -> None:
        attrs = {"gen_ai.latency.time_in_queue": queue, "gen_ai.latency.time_in_model_prefill": prefill,
                 "gen_ai.latency.time_in_model_decode": decode}
        tracer.start_span("sglang_request", context=propagator.extract(carrier), kind=SpanKind.SERVER,
                          attributes=attrs, start_time=arrival).end()

    for key in ("A", "B"):
        vllm(key, *MEASURED[key], dict(headers[key]))
    sglang(*MEASURED["C"], dict(headers["C"]))
    vllm("orphan", *ORPHAN, {})
    return list(memory.get_finished_spans())


def _sum(samples: list[Sample], prefix: str, suffix: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name.startswith(prefix) and s.name.endswith(suffix)
               and all(s.labels.get(k) == v for k, v in labels.items()))


def _dur(span: ReadableSpan) -> float:
    return ((span.end_time or 0) - (span.start_time or 0)) / 1e9


def test_server_spans_replace_estimates(sim: SimServer, held_collector: tuple[Otelcol, int]) -> None:
    col, http_port = held_collector
    produced, sent = _calls(sim)
    calls = sorted((s for s in produced if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert len(calls) == 4 and len(sent) == 4
    for call, headers in zip(calls, sent, strict=True):  # the request's traceparent names its call span
        assert headers["traceparent"].split("-")[2] == f"{call.context.span_id:016x}"
    keys = dict(zip("ABCD", calls, strict=True))  # D gets no server span
    server = _server_spans({k: sent[i] for i, k in enumerate("ABC")})
    by_parent = {s.parent.span_id: s for s in server if s.parent is not None}
    assert by_parent[keys["A"].context.span_id].context.trace_id == keys["A"].context.trace_id

    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")
    a_server = by_parent[keys["A"].context.span_id]
    exporter.export([a_server])  # A: the server span before its call
    exporter.export(produced)  # every llmotel span (calls and phase children)
    exporter.export([s for s in server if s is not a_server])  # B, C after their calls; the orphan
    exporter.shutdown()

    # Expected, from the SDK's spans: each joined call's phases by name, its client TTFT.
    phases = {k: {str((p.attributes or {})[sc.LLMOTEL_PHASE_NAME]): p for p in produced
                  if p.parent is not None and p.parent.span_id == c.context.span_id} for k, c in keys.items()}
    error: dict[str, float] = {"queue": 0.0, "prefill": 0.0, "decode": 0.0}
    for k in "ABC":
        ttft = float((keys[k].attributes or {})[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK])  # type: ignore[arg-type]
        for name, measured in zip(("queue", "prefill", "decode"), MEASURED[k], strict=True):
            error[name] += (_dur(phases[k][name]) - measured) / ttft
    measured_sum = {
        n: sum(MEASURED[k][i] for k in "ABC") + ORPHAN[i] for i, n in enumerate(("queue", "prefill", "decode"))
    }

    def complete() -> bool:
        s = col.scrape()
        return (_sum(s, "llmotel_sli_phase_estimate_error", "_count", llmotel_phase_name="decode") == 3
                and _sum(s, "llmotel_sli_phase_duration_seconds_count", "", llmotel_phase_name="queue") == 5)

    col.wait_until(complete, 30, "all joined and held calls recorded")
    s = col.scrape()
    for name in ("queue", "prefill", "decode"):
        # The error histogram equals the differences computed here, call by call.
        assert _sum(s, "llmotel_sli_phase_estimate_error", "_count", llmotel_phase_name=name) == 3
        assert _sum(s, "llmotel_sli_phase_estimate_error", "_sum", llmotel_phase_name=name) == pytest.approx(
            error[name], abs=1e-9)
        # Measured phases replace the estimates for A, B, C (and the orphan counts alone) ...
        src = {"llmotel_phase_name": name, "llmotel_phase_source": "server"}
        assert _sum(s, "llmotel_sli_phase_duration_seconds_count", "", **src) == 4
        got = _sum(s, "llmotel_sli_phase_duration_seconds_sum", "", **src)
        assert got == pytest.approx(measured_sum[name], abs=1e-9)
        # ... while D, which got no server span, keeps the SDK's phase.
        d_source = str((phases["D"][name].attributes or {})[sc.LLMOTEL_PHASE_SOURCE])
        assert d_source != "server"
        assert _sum(s, "llmotel_sli_phase_duration_seconds_count", "", llmotel_phase_name=name,
                    llmotel_phase_source=d_source) == 1
    # The orphan's own TTFT (vLLM: from arrival), source server; the calls keep their client TTFT.
    assert _sum(s, "llmotel_sli_time_to_first_token_seconds_count", "", llmotel_phase_source="server") == 1
    assert _sum(s, "llmotel_sli_time_to_first_token_seconds_sum", "", llmotel_phase_source="server") == pytest.approx(
        ORPHAN[0] + ORPHAN[1] + 0.001, abs=1e-9)
    assert _sum(s, "llmotel_sli_time_to_first_token_seconds_count", "", llmotel_phase_source="client") == 4
    assert _sum(s, "llmotel_sli_spans_rejected_total", "") == 0
