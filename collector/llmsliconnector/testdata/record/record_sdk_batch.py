"""Record a span batch from the real llmotel SDK for the connector's golden tests.

Drives the instrumented OpenAI and Anthropic clients against the fleet simulator (loopback, seed 1) through
the regional_rollout_drift scenario, plus agent runs, and writes the spans as one OTLP protobuf
ExportTraceServiceRequest to ../traces/sdk_recorded.pb. Regenerate, then `go test -run TestGoldenSDK -update .`
and review the golden diff:

    .venv/bin/python collector/llmsliconnector/testdata/record/record_sdk_batch.py
"""

from __future__ import annotations

from pathlib import Path

from anthropic import Anthropic
from openai import OpenAI
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmotel
from llmotel.providers.anthropic import AnthropicInstrumentor
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel.telemetry import spans
from llmotel_sim import SimServer

OUT = Path(__file__).resolve().parent.parent / "traces" / "sdk_recorded.pb"


def main() -> None:
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "llmotel-recorder"}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for inst in instrumentors:
        inst.instrument(tracer_provider=tp)
    spans.configure(tracer_provider=tp)
    msgs = [{"role": "user", "content": "summarise the quarterly report"}]
    try:
        with SimServer("regional_rollout_drift", seed=1, speed=50.0) as sim:
            for tenant in ("acme", "globex"):
                oai = OpenAI(base_url=sim.base_url + "/v1", api_key=f"tenant-{tenant}")
                ant = Anthropic(base_url=sim.base_url, api_key=f"tenant-{tenant}")
                with llmotel.tenant(tenant):
                    for i in range(3):
                        stream = oai.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=i % 2 == 0)
                        if i % 2 == 0:
                            for _ in stream:  # type: ignore[union-attr]
                                pass
                        ant.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=msgs)  # type: ignore[arg-type]
            with llmotel.agent_run("travel-planner") as run:
                run.plan(["search", "compare", "book"], tools=["search_flights", "compare", "book_flight"])
                with llmotel.tool("search_flights"):
                    pass
                run.plan(["book"], tools=["book_flight"])
                with llmotel.tool("book_flight"):
                    pass
            with llmotel.agent_run("researcher") as run:
                run.plan(["search", "read"], tools=["web_search", "read_page"])
                with llmotel.tool("read_page"):
                    pass
                with llmotel.tool("web_search"):
                    pass
    finally:
        for inst in instrumentors:
            inst.uninstrument()
        spans.configure()
    OUT.write_bytes(encode_spans(memory.get_finished_spans()).SerializeToString())
    print(f"wrote {len(memory.get_finished_spans())} spans to {OUT}")


if __name__ == "__main__":
    main()
