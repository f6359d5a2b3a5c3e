"""The smallest llmotel program: one import, then the OpenAI and Anthropic clients as usual.

    .venv/bin/python examples/plain_script.py                       # against the built-in simulator, spans printed
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OPENAI_BASE_URL=... OPENAI_API_KEY=... \
        ANTHROPIC_BASE_URL=... ANTHROPIC_API_KEY=... python examples/plain_script.py   # real endpoints, OTLP export

Each call becomes one GenAI span whose children tile it: queue, prefill, first_token, decode, each with its source.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

if "OTEL_EXPORTER_OTLP_ENDPOINT" not in os.environ:
    # No collector given: print each span instead. llmotel.auto keeps a tracer provider the app set itself.

    class PrintSpans(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            for span in spans:  # type: ignore[attr-defined]
                assert isinstance(span, ReadableSpan)
                a = span.attributes or {}
                ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
                extra = {k: a[k] for k in ("llmotel.tenant.id", "llmotel.phase.source", "llmotel.server.region",
                                            "gen_ai.usage.output_tokens") if k in a}
                print(f"{'  ' if span.parent else ''}{span.name:<40} {ms:8.1f} ms  {extra}")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(PrintSpans()))
    trace.set_tracer_provider(provider)
    os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")

import anthropic
import openai

import llmotel
import llmotel.auto  # instruments both clients: the only line llmotel needs


def main() -> None:
    with ExitStack() as stack:
        if "OPENAI_BASE_URL" in os.environ:
            oai, claude = openai.OpenAI(), anthropic.Anthropic()
        else:
            from llmotel_sim import SimServer

            sim = stack.enter_context(SimServer(None, seed=1, speed=20.0))
            oai = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="sk-sim")
            claude = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-sim")
        with llmotel.tenant("acme"):  # optional: which customer this call is for
            stream = oai.chat.completions.create(
                model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), stream=True,
                messages=[{"role": "user", "content": "Say hello in five words."}])
            print("openai:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices)[:60])
            msg = claude.messages.create(
                model=os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6"), max_tokens=64,
                messages=[{"role": "user", "content": "Say hello in five words."}])
            print("anthropic:", "".join(b.text for b in msg.content if b.type == "text")[:60])
    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is not None:
        flush()


if __name__ == "__main__":
    main()
