"""Smoke check of the instrumentor on an older anthropic SDK, in its own venv (not collected by pytest).

Run by ``make old-sdk`` (part of ``make test``) in .venv-old/ with the oldest anthropic that pyproject.toml promises
(the ``anthropic`` extra's lower bound, 0.40.0, with ``-e . -e ./sim``), or by hand in any venv that has the SDK and
the sim:

    PYTHONPATH=src:sim python tests/providers/anthropic/old_sdk_smoke.py

(The full suite, ``tests/providers/anthropic``, also runs unchanged on anthropic 1.17.0, which uses httpx2.)
Asserts one span per call with the phase tree, the retry and the token counts the simulator sent. On 0.x the
``messages.stream()`` helper is left unpatched (docs/anthropic.md, Known gaps), so it is expected to have no span.
"""

from __future__ import annotations

import asyncio
import gc
import inspect

import anthropic
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmotel import _semconv as sc
from llmotel.providers.anthropic import AnthropicInstrumentor
from llmotel_sim import SimServer

MODEL = "claude-haiku-4-5"
MSGS = [{"role": "user", "content": "hi"}]
PHASES = ["queue", "prefill", "first_token", "decode"]


def main() -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    AnthropicInstrumentor().instrument(tracer_provider=tp)
    from anthropic.lib.streaming import MessageStream

    helper = "raw_stream" in inspect.signature(MessageStream.__init__).parameters
    with SimServer(seed=1, speed=50.0) as sim:
        c = anthropic.Anthropic(base_url=sim.base_url, api_key="tenant-acme", max_retries=2)
        retry = {"x-sim-output-tokens": "5", "x-sim-fault": "overloaded_529", "x-sim-fault-times": "1"}
        c.messages.create(model=MODEL, max_tokens=50, messages=MSGS, extra_headers=retry)  # type: ignore[arg-type]
        stream = c.messages.create(
            model=MODEL, max_tokens=50, messages=MSGS, stream=True, extra_headers={"x-sim-output-tokens": "5"}
        )  # type: ignore[arg-type]
        assert type(stream) is anthropic.Stream, type(stream)  # the client's own objects, not proxies
        for _ in stream:
            pass
        with c.messages.stream(
            model=MODEL, max_tokens=50, messages=MSGS, extra_headers={"x-sim-output-tokens": "5"}
        ) as s:  # type: ignore[arg-type]
            if helper:
                assert type(s._raw_stream) is anthropic.Stream, type(s._raw_stream)
            s.get_final_message()

        async def run_async() -> None:
            ac = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="tenant-acme")
            await ac.messages.create(
                model=MODEL, max_tokens=50, messages=MSGS, extra_headers={"x-sim-output-tokens": "4"}
            )  # type: ignore[arg-type]
            astream = await ac.messages.create(
                model=MODEL, max_tokens=50, messages=MSGS, stream=True, extra_headers={"x-sim-output-tokens": "4"}
            )  # type: ignore[arg-type]
            assert type(astream) is anthropic.AsyncStream, type(astream)
            async for _ in astream:
                pass

        asyncio.run(run_async())
    gc.collect()
    spans = exporter.get_finished_spans()
    calls = [s for s in spans if s.parent is None]
    assert len(calls) == (5 if helper else 4), [s.name for s in calls]
    for call in calls:
        kids = [k.name for k in spans if k.parent is not None and k.parent.span_id == call.context.span_id]
        a = call.attributes or {}
        retried = a.get(sc.HTTP_REQUEST_RESEND_COUNT) == 1
        assert kids == (["retries"] if retried else []) + PHASES, kids
        assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 200
        assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] in (4, 5)
    print(
        f"anthropic {anthropic.__version__}: {len(calls)} calls ok (stream() helper instrumented: {helper}); "
        "type() of streams, async streams and the helper's raw stream is the client's own"
    )


if __name__ == "__main__":
    main()
