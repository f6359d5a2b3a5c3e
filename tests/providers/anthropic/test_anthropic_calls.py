"""The real anthropic client over loopback HTTP against the simulator: span trees, tiling, token counts.

Every test counts ALL spans carrying gen_ai.operation.name in the export (ours and the SDK's), so a
second LLM span for one call fails it; tests marked ``native`` switch the SDK's own tracing on, into
the same tracer provider.
"""

from __future__ import annotations

import gc
from typing import Any

import anthropic
import pytest

from _anth import (
    MODEL,
    MSGS,
    PHASES,
    Telemetry,
    Wire,
    aclient,
    assert_tiles,
    async_vertex_client,
    check_chat,
    client,
    vertex_client,
)
from _genai_content import input_messages, output_messages, system_instructions
from llmotel import _semconv as sc
from llmotel_sim import SimServer

NATIVE = pytest.mark.parametrize("native", [True, False], ids=["sdk_tracing_on", "sdk_tracing_off"])


def _h(n: int = 6, **extra: str) -> dict[str, str]:
    return {"x-sim-output-tokens": str(n), **extra}


def _tp(telemetry: Telemetry, native: bool) -> Any:
    return telemetry.tracer_provider if native else None


# ---- messages.create -----------------------------------------------------------------------------------------


@NATIVE
def test_create_sync(sim: SimServer, telemetry: Telemetry, wire: Wire, native: bool) -> None:
    message = client(sim, wire, _tp(telemetry, native)).messages.create(
        model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(7)
    )
    truth = sim.truth(wire.last_id)
    parent, kids = telemetry.one_call()
    a = check_chat(parent, kids, truth, sim, stream=False)
    # What the caller got is what the span says (input = uncached + cache read + cache write).
    u = message.usage
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == u.input_tokens + (u.cache_read_input_tokens or 0) + (
        u.cache_creation_input_tokens or 0
    )
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == u.output_tokens == 7
    # Rate-limit headers of the answering attempt, as the server sent them.
    headers = wire.responses[-1]
    if "anthropic-ratelimit-requests-remaining" in headers:
        assert a[sc.LLMOTEL_RATELIMIT_REQUESTS_REMAINING] == int(headers["anthropic-ratelimit-requests-remaining"])


@NATIVE
async def test_create_async(sim: SimServer, telemetry: Telemetry, wire: Wire, native: bool) -> None:
    message = await aclient(sim, wire, _tp(telemetry, native)).messages.create(
        model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5)
    )
    assert isinstance(message, anthropic.types.Message)
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=False)


@NATIVE
def test_create_stream_sync(sim: SimServer, telemetry: Telemetry, wire: Wire, native: bool) -> None:
    stream = client(sim, wire, _tp(telemetry, native)).messages.create(
        model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(12)
    )
    assert isinstance(stream, anthropic.Stream)
    events = list(stream)
    assert events[0].type == "message_start"
    parent, kids = telemetry.one_call()
    a = check_chat(parent, kids, sim.truth(wire.last_id), sim, stream=True)
    # message_start's placeholder output count (1) is not added to message_delta's final 12.
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 12
    assert kids[-1].attributes is not None
    assert kids[-1].attributes[sc.LLMOTEL_DECODE_CHUNK_COUNT] == sum(e.type == "content_block_delta" for e in events)


@NATIVE
async def test_create_stream_async(sim: SimServer, telemetry: Telemetry, wire: Wire, native: bool) -> None:
    stream = await aclient(sim, wire, _tp(telemetry, native)).messages.create(
        model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(9)
    )
    assert isinstance(stream, anthropic.AsyncStream)
    n = 0
    async for _ in stream:
        n += 1
    assert n > 9
    a = check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=True)
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 9


def test_cache_reads_and_writes_are_inside_input_tokens(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    """Same cacheable prefix three times on one pinned region: writes then reads, never double counted."""
    system = [{"type": "text", "text": "You are a careful assistant. " * 120, "cache_control": {"type": "ephemeral"}}]
    tools = [
        {
            "name": "lookup",
            "description": "Look a thing up. " * 60,
            "input_schema": {"type": "object"},
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    c = client(sim, wire, telemetry.tracer_provider)
    truths = []
    for _ in range(3):
        telemetry.exporter.clear()
        c.messages.create(
            model=MODEL,
            max_tokens=32,
            system=system,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            messages=MSGS,  # type: ignore[arg-type]
            extra_headers=_h(3, **{"x-sim-region": sim.truth(wire.last_id)["region"]} if wire.responses else {}),
        )
        truth = sim.truth(wire.last_id)
        truths.append(truth)
        parent, kids = telemetry.one_call()
        a = check_chat(parent, kids, truth, sim, stream=False)
        assert (
            a[sc.GEN_AI_USAGE_INPUT_TOKENS]
            >= a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] + a[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS]
        )
        assert a[sc.LLMOTEL_PROMPT_PREFIX_TOKENS] > 0
    # The check above is only meaningful if the cache was both written and read.
    assert any(t["cache_write_tokens"] > 0 for t in truths)
    assert any(t["cached_tokens"] > 0 for t in truths)


def test_tool_use_and_max_tokens_truncation(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = client(sim, wire)
    message = c.messages.create(
        model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(8, **{"x-sim-tool-calls": "get_weather,get_time"})
    )
    a = check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=False)
    assert message.stop_reason == "tool_use"
    assert list(a[sc.LLMOTEL_RESPONSE_TOOL_NAMES]) == [b.name for b in message.content if b.type == "tool_use"]
    assert list(a[sc.LLMOTEL_RESPONSE_TOOL_NAMES]) == ["get_weather", "get_time"]

    telemetry.exporter.clear()
    stream = c.messages.create(model=MODEL, max_tokens=4, messages=MSGS, stream=True, extra_headers=_h(50))
    for _ in stream:
        pass
    a = check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=True)
    assert a[sc.LLMOTEL_RESPONSE_TRUNCATED] is True and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4


# ---- the messages.stream() helper -------------------------------------------------------------------------


@NATIVE
def test_stream_helper_text_stream_and_final_message(
    sim: SimServer, telemetry: Telemetry, wire: Wire, native: bool
) -> None:
    c = client(sim, wire, _tp(telemetry, native))
    with c.messages.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(10)) as stream:
        assert isinstance(stream, anthropic.lib.streaming.MessageStream)
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens == 10
    a = check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=True)
    assert a[sc.GEN_AI_RESPONSE_ID] == final.id
    assert sc.LLMOTEL_STREAM_ABANDONED not in a


async def test_stream_helper_async(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = aclient(sim, wire, telemetry.tracer_provider)
    async with c.messages.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(6)) as stream:
        chunks = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert chunks and final.usage.output_tokens == 6
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=True)


def test_stream_helper_early_exit(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = client(sim, wire, telemetry.tracer_provider)
    with c.messages.stream(model=MODEL, max_tokens=400, messages=MSGS, extra_headers=_h(300)) as stream:
        for _ in stream.text_stream:
            break
    parent, kids = telemetry.one_call()
    assert [k.name for k in kids] == PHASES
    assert_tiles(parent, kids)
    a = dict(parent.attributes or {})
    assert a[sc.LLMOTEL_STREAM_ABANDONED] is True
    # No message_delta was read: the output count is the content chunks seen, and says it is estimated.
    assert a[sc.LLMOTEL_USAGE_SOURCE] == "estimated"
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 1
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == sim.truth(wire.last_id)["input_tokens"]  # from message_start
    assert sc.GEN_AI_RESPONSE_FINISH_REASONS not in a


async def test_stream_helper_early_exit_async(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = aclient(sim, wire)
    async with c.messages.stream(model=MODEL, max_tokens=400, messages=MSGS, extra_headers=_h(300)) as stream:
        async for _ in stream.text_stream:
            break
    parent, kids = telemetry.one_call()
    assert_tiles(parent, kids)
    assert (parent.attributes or {})[sc.LLMOTEL_STREAM_ABANDONED] is True


def test_abandoned_stream_is_ended_when_collected(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    stream = client(sim, wire).messages.create(
        model=MODEL, max_tokens=400, messages=MSGS, stream=True, extra_headers=_h(300)
    )
    it = iter(stream)
    kinds = [next(it).type for _ in range(4)]
    assert "content_block_delta" in kinds
    assert telemetry.llm_spans() == []  # still open while referenced
    del it, stream
    gc.collect()
    parent, kids = telemetry.one_call()
    assert_tiles(parent, kids)
    a = dict(parent.attributes or {})
    assert a[sc.LLMOTEL_STREAM_ABANDONED] is True
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == sim.truth(wire.last_id)["input_tokens"]


# ---- errors, retries ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("helper", [False, True], ids=["create_stream", "stream_helper"])
def test_mid_stream_error_event(sim: SimServer, telemetry: Telemetry, wire: Wire, helper: bool) -> None:
    c = client(sim, wire, telemetry.tracer_provider)
    headers = _h(40, **{"x-sim-fault": "error_event"})
    with pytest.raises(anthropic.APIStatusError) as info:
        if helper:
            with c.messages.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=headers) as s:
                s.until_done()
        else:
            for _ in c.messages.create(model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=headers):
                pass
    parent, kids = telemetry.one_call()
    assert parent.status.status_code.name == "ERROR"
    a = dict(parent.attributes or {})
    assert a[sc.ERROR_TYPE] == type(info.value).__qualname__
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 200  # the stream opened fine; the error came as an event
    assert [k.name for k in kids] == PHASES  # the answer started, so its phases are known
    assert_tiles(parent, kids)


async def test_mid_stream_error_event_async(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = aclient(sim, wire, telemetry.tracer_provider)
    stream = await c.messages.create(
        model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(40, **{"x-sim-fault": "error_event"})
    )
    with pytest.raises(anthropic.APIStatusError):
        async for _ in stream:
            pass
    parent, _ = telemetry.one_call()
    assert parent.status.status_code.name == "ERROR"


@pytest.mark.parametrize("fault", ["rate_limit_429", "overloaded_529"])
def test_retry_then_success(sim: SimServer, telemetry: Telemetry, wire: Wire, fault: str) -> None:
    c = client(sim, wire, telemetry.tracer_provider, max_retries=2)
    c.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=MSGS,
        extra_headers=_h(4, **{"x-sim-fault": fault, "x-sim-fault-times": "1"}),
    )
    assert len(wire.requests) == 2 and [r.get("x-stainless-retry-count") for r in wire.requests] == ["0", "1"]
    parent, kids = telemetry.one_call()
    a = check_chat(parent, kids, sim.truth(wire.last_id), sim, stream=False, retries=1)
    # The retries phase ends when the answering attempt was sent (after the SDK's backoff).
    assert kids[0].name == "retries" and (kids[0].end_time or 0) > (kids[0].start_time or 0)
    assert a[sc.HTTP_REQUEST_RESEND_COUNT] == 1


async def test_retry_then_success_async_stream(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = aclient(sim, wire, max_retries=2)
    headers = _h(4, **{"x-sim-fault": "overloaded_529", "x-sim-fault-times": "1"})
    async with c.messages.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=headers) as s:
        await s.until_done()
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=True, retries=1)


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [("overloaded_529", anthropic.OverloadedError, 529), ("rate_limit_429", anthropic.RateLimitError, 429)],
)
def test_status_error_without_retries(
    sim: SimServer, telemetry: Telemetry, wire: Wire, fault: str, error: type[Exception], status: int
) -> None:
    c = client(sim, wire, telemetry.tracer_provider, max_retries=0)
    with pytest.raises(error):
        c.messages.create(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(4, **{"x-sim-fault": fault}))
    parent, kids = telemetry.one_call()
    a = dict(parent.attributes or {})
    assert parent.status.status_code.name == "ERROR"
    assert a[sc.ERROR_TYPE] == error.__qualname__
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == status
    assert kids == []  # nothing was generated: no phases
    if status == 429:
        assert a[sc.LLMOTEL_RATELIMIT_REQUESTS_REMAINING] == 0
        assert a[sc.LLMOTEL_RATELIMIT_REQUESTS_LIMIT] == 1


# ---- parse, count_tokens, raw responses, beta -----------------------------------------------------------------


def test_parse_sync_and_beta(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = client(sim, wire, telemetry.tracer_provider)
    parsed = c.messages.parse(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5))
    assert isinstance(parsed, anthropic.types.ParsedMessage)
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=False)
    telemetry.exporter.clear()
    c.beta.messages.parse(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5))  # type: ignore[arg-type]
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=False)


async def test_parse_async(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    await aclient(sim, wire).messages.parse(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5))
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=False)


@NATIVE
def test_count_tokens_is_a_span_without_phases(sim: SimServer, telemetry: Telemetry, wire: Wire, native: bool) -> None:
    c = client(sim, wire, _tp(telemetry, native))
    for counter in (c.messages, c.beta.messages):
        telemetry.exporter.clear()
        result = counter.count_tokens(model=MODEL, messages=MSGS)  # type: ignore[arg-type]
        parent, kids = telemetry.one_call()
        assert kids == []
        a = dict(parent.attributes or {})
        assert parent.name == f"count_tokens {MODEL}"
        assert a[sc.GEN_AI_OPERATION_NAME] == "count_tokens"
        assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == result.input_tokens > 0
        assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 200


async def test_count_tokens_async(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    result = await aclient(sim, wire).messages.count_tokens(model=MODEL, messages=MSGS)  # type: ignore[arg-type]
    parent, kids = telemetry.one_call()
    assert kids == [] and (parent.attributes or {})[sc.GEN_AI_USAGE_INPUT_TOKENS] == result.input_tokens


def test_with_raw_response(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = client(sim, wire, telemetry.tracer_provider)
    raw = c.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5))
    assert raw.http_response.status_code == 200
    message = raw.parse()
    assert message.usage.output_tokens == 5
    check_chat(*telemetry.one_call(), sim.truth(raw.headers["x-sim-request-id"]), sim, stream=False)

    telemetry.exporter.clear()
    raw = c.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(5)
    )
    assert telemetry.llm_spans() == []  # a raw stream is not over until it is read
    for _ in raw.parse():
        pass
    check_chat(*telemetry.one_call(), sim.truth(raw.headers["x-sim-request-id"]), sim, stream=True)


def test_with_streaming_response(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = client(sim, wire, telemetry.tracer_provider)
    with c.messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(6)
    ) as response:
        events = list(response.parse())
    assert events[-1].type == "message_stop"
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=True)


async def test_with_streaming_response_async(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = aclient(sim, wire)
    async with c.messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(6)
    ) as response:
        message = await response.parse()
    assert message.usage.output_tokens == 6
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=False)


@pytest.mark.parametrize("how", ["create", "create_stream", "stream_helper"])
def test_beta_messages(sim: SimServer, telemetry: Telemetry, wire: Wire, how: str) -> None:
    beta = client(sim, wire, telemetry.tracer_provider).beta.messages
    if how == "create":
        beta.create(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5))  # type: ignore[arg-type]
    elif how == "create_stream":
        for _ in beta.create(model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(5)):  # type: ignore[arg-type]
            pass
    else:
        with beta.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5)) as s:  # type: ignore[arg-type]
            assert s.get_final_message().usage.output_tokens == 5
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=how != "create")


async def test_beta_messages_async(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    beta = aclient(sim, wire, telemetry.tracer_provider).beta.messages
    async with beta.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5)) as s:  # type: ignore[arg-type]
        await s.get_final_message()
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=True)
    telemetry.exporter.clear()
    await beta.create(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5))  # type: ignore[arg-type]
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=False)


def test_content_only_when_opted_in(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = client(sim, wire)
    c.messages.create(model=MODEL, max_tokens=64, system="Be brief.", messages=MSGS, extra_headers=_h(3))
    a = dict(telemetry.one_call()[0].attributes or {})
    assert sc.GEN_AI_INPUT_MESSAGES not in a and sc.GEN_AI_OUTPUT_MESSAGES not in a
    telemetry.exporter.clear()
    telemetry.reinstrument(capture_content=True)
    message = c.messages.create(model=MODEL, max_tokens=64, system="Be brief.", messages=MSGS, extra_headers=_h(3))
    a = dict(telemetry.one_call()[0].attributes or {})
    # The GenAI parts schema (tests/anthropic/test_anthropic_content.py covers every block shape).
    assert system_instructions(a[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert input_messages(a[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in MSGS
    ]
    assert output_messages(a[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": message.role,
            "parts": [{"type": "text", "content": block.text} for block in message.content],  # type: ignore[union-attr]
            "finish_reason": "stop",  # end_turn in the convention's words
        }
    ]


# ---- Vertex (same code path; the simulator answers through a path-mapping loopback transport) -----------------


@pytest.mark.parametrize("how", ["create", "create_stream", "stream_helper", "count_tokens"])
def test_vertex_client(sim: SimServer, telemetry: Telemetry, wire: Wire, how: str) -> None:
    c = vertex_client(sim, wire, telemetry.tracer_provider)
    if how == "create":
        c.messages.create(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5))  # type: ignore[arg-type]
    elif how == "create_stream":
        for _ in c.messages.create(model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(5)):  # type: ignore[arg-type]
            pass
    elif how == "stream_helper":
        with c.beta.messages.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5)) as s:  # type: ignore[arg-type]
            s.until_done()
    else:
        result = c.messages.count_tokens(model=MODEL, messages=MSGS)  # type: ignore[arg-type]
        parent, kids = telemetry.one_call()
        assert kids == [] and (parent.attributes or {})[sc.GEN_AI_USAGE_INPUT_TOKENS] == result.input_tokens
        assert (parent.attributes or {})[sc.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
        return
    # The client really spoke Vertex: /projects/proj/locations/us-east5/publishers/anthropic/models/{model}:…
    assert wire.paths[-1].endswith(f"/models/{MODEL}:{'rawPredict' if how == 'create' else 'streamRawPredict'}")
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=how != "create", provider="gcp.vertex_ai")


async def test_vertex_client_async(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = async_vertex_client(sim, wire)
    async with c.messages.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5)) as s:  # type: ignore[arg-type]
        await s.until_done()
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=True, provider="gcp.vertex_ai")


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
@pytest.mark.parametrize("kind", ["with_raw_response", "with_streaming_response"])
async def test_raw_matrix_async(sim: SimServer, telemetry: Telemetry, wire: Wire, kind: str, stream: bool) -> None:
    messages = getattr(aclient(sim, wire, telemetry.tracer_provider).messages, kind)
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": MSGS, "extra_headers": _h(5)}
    if stream:
        kwargs["stream"] = True

    async def consume(response: Any) -> None:
        parsed = await response.parse()
        if stream:
            async for _ in parsed:
                pass
        else:
            assert parsed.usage.output_tokens == 5

    if kind == "with_raw_response":
        await consume(await messages.create(**kwargs))
    else:
        async with messages.create(**kwargs) as response:
            await consume(response)
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=stream)


def test_with_streaming_response_body(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = client(sim, wire)
    with c.messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(6)
    ) as response:
        assert response.parse().usage.output_tokens == 6
    check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=False)


@pytest.mark.parametrize("how", ["create_stream", "parse", "count_tokens"])
async def test_beta_messages_async_more(sim: SimServer, telemetry: Telemetry, wire: Wire, how: str) -> None:
    beta = aclient(sim, wire, telemetry.tracer_provider).beta.messages
    if how == "create_stream":
        async for _ in await beta.create(model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(5)):  # type: ignore[arg-type]
            pass
        check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=True)
    elif how == "parse":
        await beta.parse(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=_h(5))  # type: ignore[arg-type]
        check_chat(*telemetry.one_call(), sim.truth(wire.last_id), sim, stream=False)
    else:
        result = await beta.count_tokens(model=MODEL, messages=MSGS)  # type: ignore[arg-type]
        parent, kids = telemetry.one_call()
        assert kids == [] and (parent.attributes or {})[sc.GEN_AI_USAGE_INPUT_TOKENS] == result.input_tokens


# ---- the caller's own failures, broken connections, malformed bodies ------------------------------------------


def test_exception_in_the_callers_loop_propagates_and_ends_the_span(
    sim: SimServer, telemetry: Telemetry, wire: Wire
) -> None:
    c = client(sim, wire, telemetry.tracer_provider)
    with (
        pytest.raises(KeyError, match="mine"),
        c.messages.stream(model=MODEL, max_tokens=400, messages=MSGS, extra_headers=_h(300)) as s,
    ):
        for _ in s.text_stream:
            raise KeyError("mine")
    parent, kids = telemetry.one_call()
    assert_tiles(parent, kids)
    a = dict(parent.attributes or {})
    assert a[sc.LLMOTEL_STREAM_ABANDONED] is True
    assert sc.ERROR_TYPE not in a  # the caller's error is not the call's


@pytest.mark.parametrize("helper", [False, True], ids=["create_stream", "stream_helper"])
def test_mid_stream_disconnect(sim: SimServer, telemetry: Telemetry, wire: Wire, helper: bool) -> None:
    c = client(sim, wire, telemetry.tracer_provider, max_retries=0)
    headers = _h(40, **{"x-sim-fault": "disconnect_after:5"})
    seen = 0
    with pytest.raises(Exception) as info:
        if helper:
            with c.messages.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=headers) as s:
                for _ in s:
                    seen += 1
        else:
            for _ in c.messages.create(model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=headers):
                seen += 1
    assert seen > 0
    parent, kids = telemetry.one_call()
    a = dict(parent.attributes or {})
    assert parent.status.status_code.name == "ERROR"
    assert a[sc.ERROR_TYPE] == type(info.value).__qualname__
    assert [k.name for k in kids] == PHASES
    assert_tiles(parent, kids)


@pytest.mark.parametrize("fault", ["wrong_type_usage", "missing_usage"])
@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
def test_malformed_usage_never_breaks_the_call(
    sim: SimServer, telemetry: Telemetry, wire: Wire, fault: str, stream: bool
) -> None:
    c = client(sim, wire, telemetry.tracer_provider)
    headers = _h(7, **{"x-sim-fault": fault})
    if stream:
        events = list(c.messages.create(model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=headers))
        assert events[-1].type == "message_stop"
    else:
        c.messages.create(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=headers)
    parent, kids = telemetry.one_call()
    assert parent.status.status_code.name != "ERROR"
    assert [k.name for k in kids] == PHASES
    a = dict(parent.attributes or {})
    truth = sim.truth(wire.last_id)
    if stream:
        # missing: the content deltas are counted instead, and said to be estimated. wrong_type: the SDK's lenient
        # model construction turns message_delta's numeric string back into the provider's count.
        assert a[sc.LLMOTEL_USAGE_SOURCE] == ("estimated" if fault == "missing_usage" else "provider")
        assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == truth["output_tokens"]
    else:
        assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a  # a wrong-typed or absent count is not reported
