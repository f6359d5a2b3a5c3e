"""Smoke run of the OpenAI instrumentor against an older openai (1.x/2.x), which the test venv cannot hold next to 3.x.

Run:
    python3 -m venv /tmp/oai1 && /tmp/oai1/bin/pip install "openai>=1.60,<2" "httpx<0.28" opentelemetry-sdk \
        opentelemetry-instrumentation opentelemetry-exporter-otlp wrapt aiohttp pyyaml
    PYTHONPATH=src /tmp/oai1/bin/python tests/openai/old_sdk_smoke.py

Prints each call span with its phase children, output tokens, resend count and status, and exits 1 if a call lacks
its phases. Verified on openai 1.109.1: every call has the four phases; the 429-then-retry call has a retries child
and resend_count 1 (per-attempt hooks on _build_request / _process_response where _send_request does not exist).
"""

from __future__ import annotations

import gc
import sys

import openai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmotel import _semconv as sc
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel_sim import SimServer

MODEL = "gpt-4o-mini"
HEADERS = {"x-sim-output-tokens": "4"}
MESSAGES = [{"role": "user", "content": "hi"}]


def main() -> int:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    retry = {**HEADERS, "x-sim-fault": "rate_limit_429", "x-sim-fault-times": "1"}
    with SimServer(seed=1, speed=50.0) as sim:
        client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=2)
        client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=HEADERS)
        list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, extra_headers=HEADERS))
        client.responses.create(model=MODEL, input="hi", extra_headers=HEADERS)
        client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, extra_headers=HEADERS).parse()
        list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, extra_headers=retry))
        with client.chat.completions.stream(model=MODEL, messages=MESSAGES, extra_headers=HEADERS) as stream:
            for _ in stream:
                pass
        client.embeddings.create(model="text-embedding-3-small", input="x")
    gc.collect()
    instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    parents = [s for s in spans if s.parent is None]
    print("openai", openai.__version__, "calls", len(parents))
    ok = len(parents) == 7
    for p in parents:
        kids = [s.name for s in spans if s.parent is not None and s.parent.span_id == p.context.span_id]
        a = p.attributes or {}
        print(p.name, kids, a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS), a.get(sc.HTTP_REQUEST_RESEND_COUNT),
              a.get(sc.HTTP_RESPONSE_STATUS_CODE))
        ok = ok and kids[-4:] == ["queue", "prefill", "first_token", "decode"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
