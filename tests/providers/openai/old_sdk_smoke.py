"""Smoke run of the OpenAI instrumentor against an older openai (1.x/2.x), which the test venv cannot hold next to 3.x.

Run by ``make old-sdk`` (part of ``make test``) in .venv-old/ with the oldest openai that pyproject.toml promises
(the ``openai`` extra's lower bound, with ``-e . -e ./sim``), or by hand in any venv that has the SDK and the sim:

    PYTHONPATH=src:sim python tests/providers/openai/old_sdk_smoke.py

Prints each call span with its phase children, output tokens, resend count and status, and exits 1 if a call lacks
its phases. Calls an endpoint only where the installed client has it: ``responses`` appears in 1.66, the
``chat.completions.stream()`` helper leaves ``beta`` in 1.92 (``beta.chat.completions.stream`` before; both go
through ``chat.completions.create``). The 429-then-retry call has a retries child and resend_count 1 (per-attempt
hooks on _build_request / _process_response where _send_request does not exist).
Before 1.63 ``chat.completions`` is a module, not the package llmotel patches, so chat calls get no span: the
``openai`` extra starts at 1.63.
"""

from __future__ import annotations

import asyncio
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
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, extra_headers=HEADERS)
        types = {"stream": type(stream) is openai.Stream}  # the client's own objects, not proxies
        list(stream)
        calls = 7
        if hasattr(client, "responses"):  # openai >= 1.66
            client.responses.create(model=MODEL, input="hi", extra_headers=HEADERS)
            calls += 1
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, extra_headers=HEADERS)
        types["raw response"] = type(raw) is openai._legacy_response.LegacyAPIResponse
        raw.parse()
        list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, extra_headers=retry))
        chat = client.chat.completions
        helper = chat.stream if hasattr(chat, "stream") else client.beta.chat.completions.stream  # beta before 1.92
        with helper(model=MODEL, messages=MESSAGES, extra_headers=HEADERS) as helper_stream:
            types["helper's raw stream"] = type(helper_stream._raw_stream) is openai.Stream
            for _ in helper_stream:
                pass

        async def run_async() -> None:
            aclient = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme")
            astream = await aclient.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, extra_headers=HEADERS
            )
            types["async stream"] = type(astream) is openai.AsyncStream
            async for _ in astream:
                pass

        asyncio.run(run_async())
        client.embeddings.create(model="text-embedding-3-small", input="x")
    gc.collect()
    instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    parents = [s for s in spans if s.parent is None]
    print("openai", openai.__version__, "calls", len(parents), "type() is the client's own:", types)
    ok = len(parents) == calls and all(types.values())
    if not ok:
        print(f"expected {calls} call spans, got {len(parents)}", file=sys.stderr)
    for p in parents:
        kids = [s.name for s in spans if s.parent is not None and s.parent.span_id == p.context.span_id]
        a = p.attributes or {}
        print(p.name, kids, a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS), a.get(sc.HTTP_REQUEST_RESEND_COUNT),
              a.get(sc.HTTP_RESPONSE_STATUS_CODE))
        if kids[-4:] != ["queue", "prefill", "first_token", "decode"]:
            print(f"{p.name}: missing phases, children {kids}", file=sys.stderr)
            ok = False
    resent = [p.name for p in parents if (p.attributes or {}).get(sc.HTTP_REQUEST_RESEND_COUNT) == 1]
    if len(resent) != 1:
        print(f"expected one call with resend_count 1 (the 429 retry), got {resent}", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
