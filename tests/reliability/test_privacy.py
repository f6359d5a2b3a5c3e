"""Secrets and privacy, checked on the wire: raw OTLP/HTTP protobuf bytes captured at a loopback receiver.

A canary API key, a canary user prompt and a canary system prompt go through real openai and anthropic
clients (plain, streamed, helper, error and malformed-response paths, so llmotel's debug logs fire too);
spans, metrics and logs are exported with the real OTLP/HTTP exporters and every byte is grepped.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from _canned import CannedServer
from _otlp_receiver import OtlpReceiver
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import llmotel
from llmotel import _semconv as sc
from llmotel import config
from llmotel.providers.anthropic import AnthropicInstrumentor
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel_sim import SimServer

API_KEY = "sk-canary-APIKEY-5f1e9d27c3b84a60"
PROMPT = "CANARY-PROMPT-8c41aa0e: what is my bank password?"
SYSTEM = "CANARY-SYSTEM-3b9f0e11: you are a secret agent"
TENANT = "canary-tenant-d00d"
FINGERPRINT_KEY = "reliability-suite-fingerprint-key-0123456789"


class Wire:
    """Real OTLP/HTTP exporters for traces, metrics and logs into one byte-capturing receiver."""

    def __init__(self) -> None:
        self.receiver = OtlpReceiver().start()
        url = self.receiver.url
        self.tp = TracerProvider()
        self.tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces")))
        self.reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=url + "/v1/metrics"), export_interval_millis=3_600_000
        )
        self.mp = MeterProvider(metric_readers=[self.reader])
        self.lp = LoggerProvider()
        self.lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=url + "/v1/logs")))
        # The app ships every log record at DEBUG, llmotel's included: the worst case for a leak.
        self.handler = LoggingHandler(level=logging.DEBUG, logger_provider=self.lp)
        self.logger = logging.getLogger("llmotel")
        self.old_level = self.logger.level

    def __enter__(self) -> Wire:
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        return self

    def flush(self) -> bytes:
        self.tp.force_flush()
        self.reader.collect()
        self.mp.force_flush()
        self.lp.force_flush()
        return self.receiver.all_bytes()

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.old_level)
        self.tp.shutdown()
        self.mp.shutdown()
        self.lp.shutdown()
        self.receiver.close()


@pytest.fixture
def wire() -> Iterator[Wire]:
    with Wire() as w:
        yield w


def _instrument(w: Wire, **options: Any) -> None:
    OpenAIInstrumentor().instrument(tracer_provider=w.tp, meter_provider=w.mp, **options)
    AnthropicInstrumentor().instrument(tracer_provider=w.tp, meter_provider=w.mp, **options)


def _uninstrument() -> None:
    OpenAIInstrumentor().uninstrument()
    AnthropicInstrumentor().uninstrument()


def _traffic(sim: SimServer, canned: CannedServer, prompt: str = PROMPT) -> int:
    """Every path a prompt and a key travel through; returns how many calls were made."""
    oai = openai.OpenAI(base_url=sim.base_url + "/v1", api_key=API_KEY, max_retries=0)
    oai_bad = openai.OpenAI(base_url=canned.base_url + "/v1", api_key=API_KEY, max_retries=0)
    ant = anthropic.Anthropic(base_url=sim.base_url, api_key=API_KEY, max_retries=0, open_telemetry=False)
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    tools = [{"type": "function", "function": {"name": "lookup", "description": SYSTEM, "parameters": {}}}]
    calls = 0
    with llmotel.tenant(TENANT):
        oai.chat.completions.create(model="gpt-4o-mini", messages=msgs, tools=tools, user=TENANT)  # type: ignore[arg-type]
        list(oai.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True))  # type: ignore[arg-type]
        oai.responses.create(model="gpt-4o-mini", instructions=SYSTEM, input=prompt)
        ant.messages.create(
            model="claude-haiku-4-5", max_tokens=32, system=SYSTEM, messages=[{"role": "user", "content": prompt}]
        )
        with ant.messages.stream(
            model="claude-haiku-4-5", max_tokens=32, system=SYSTEM, messages=[{"role": "user", "content": prompt}]
        ) as s:
            s.get_final_message()
        calls += 5
        for fault in ("rate_limit_429", "malformed_json"):
            with pytest.raises((openai.RateLimitError, ValueError)):
                oai.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=msgs,  # type: ignore[arg-type]
                    extra_headers={"x-sim-fault": fault},
                )
            calls += 1
        # Malformed stream events make llmotel's readers log at debug (with tracebacks).
        list(
            oai_bad.chat.completions.create(
                model="gpt-4o-mini",
                messages=msgs,
                stream=True,  # type: ignore[arg-type]
                extra_headers={"x-canned": "oai_wrong_types_stream"},
            )
        )
        calls += 1
    for c in (oai, oai_bad, ant):
        c.close()
    return calls


def _decode_traces(w: Wire) -> list[dict[str, Any]]:
    """The exported spans' attributes, decoded from the captured protobuf (to check what IS there)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    out = []
    for path, body in w.receiver.bodies:
        if path != "/v1/traces":
            continue
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs: dict[str, Any] = {}
                    for kv in span.attributes:
                        v = kv.value
                        attrs[kv.key] = getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
                    out.append({"name": span.name, "attrs": attrs})
    return out


def _leaks(data: bytes, *secrets: str) -> list[str]:
    return [s for s in secrets if s.encode() in data or s.encode("utf-16-le") in data]


def test_canaries_never_exported_by_default(sim: SimServer, canned: CannedServer, wire: Wire) -> None:
    _instrument(wire)
    try:
        calls = _traffic(sim, canned)
    finally:
        _uninstrument()
    data = wire.flush()
    assert wire.receiver.paths() >= {"/v1/traces", "/v1/metrics", "/v1/logs"}, wire.receiver.paths()
    spans = _decode_traces(wire)
    llm = [s for s in spans if sc.GEN_AI_OPERATION_NAME in s["attrs"]]
    assert len(llm) == calls
    # The capture is live: model names, fingerprints and the tenant id made it (so absence below means something).
    assert b"gpt-4o-mini" in data and b"claude-haiku-4-5" in data
    assert any(sc.LLMOTEL_PROMPT_PREFIX_FINGERPRINT in s["attrs"] for s in llm)
    assert any(s["attrs"].get(sc.LLMOTEL_TENANT_ID) == TENANT for s in llm)
    assert _leaks(data, API_KEY, PROMPT, SYSTEM, "CANARY", "5f1e9d27c3b84a60") == []
    assert not any(sc.GEN_AI_INPUT_MESSAGES in s["attrs"] or sc.GEN_AI_OUTPUT_MESSAGES in s["attrs"] for s in llm)


def test_content_capture_opt_in_is_size_capped(sim: SimServer, canned: CannedServer, wire: Wire) -> None:
    long_prompt = PROMPT + " " + "x" * 5000 + " CANARY-TAIL-past-the-cap"
    _instrument(wire, capture_content=True, content_max_chars=300)
    try:
        _traffic(sim, canned, prompt=long_prompt)
    finally:
        _uninstrument()
    data = wire.flush()
    llm = [s for s in _decode_traces(wire) if sc.GEN_AI_OPERATION_NAME in s["attrs"]]
    captured = [s["attrs"][sc.GEN_AI_INPUT_MESSAGES] for s in llm if sc.GEN_AI_INPUT_MESSAGES in s["attrs"]]
    assert captured, "content capture was on but nothing was captured"
    assert all(len(c) <= 300 for c in captured)
    outputs = [s["attrs"][sc.GEN_AI_OUTPUT_MESSAGES] for s in llm if sc.GEN_AI_OUTPUT_MESSAGES in s["attrs"]]
    assert all(len(c) <= 300 for c in outputs)
    # Opted-in content is there (capped); the API key never is, nor anything past the cap.
    assert b"CANARY-PROMPT" in data
    assert _leaks(data, API_KEY, "CANARY-TAIL-past-the-cap") == []


def test_tenant_id_hashed_by_configuration(sim: SimServer, canned: CannedServer, wire: Wire) -> None:
    _instrument(wire, tenant_hash=True, fingerprint_key=FINGERPRINT_KEY)
    try:
        _traffic(sim, canned)
    finally:
        _uninstrument()
    data = wire.flush()
    llm = [s for s in _decode_traces(wire) if sc.GEN_AI_OPERATION_NAME in s["attrs"]]
    expected = hmac.new(FINGERPRINT_KEY.encode(), TENANT.encode(), hashlib.sha256).hexdigest()[:16]
    assert {s["attrs"].get(sc.LLMOTEL_TENANT_ID) for s in llm} == {expected}
    assert _leaks(data, TENANT, API_KEY, PROMPT) == []


def test_tenant_hash_env_variable() -> None:
    env = {"LLMOTEL_TENANT_HASH": "true", "LLMOTEL_FINGERPRINT_KEY": FINGERPRINT_KEY}
    cfg = config.resolve(env=env)
    assert cfg.tenant_hash is True and cfg.fingerprint_key == FINGERPRINT_KEY.encode()
    with pytest.raises(config.ConfigError, match="LLMOTEL_TENANT_HASH"):
        config.resolve(env={"LLMOTEL_TENANT_HASH": "maybe"})
