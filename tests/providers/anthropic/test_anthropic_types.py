"""The app gets the anthropic client's own objects: ``type(x)`` is the SDK's class for streams, async streams, raw
responses and the ``messages.stream()`` helpers (no proxy; instrument/streams.py)."""

from __future__ import annotations

import anthropic
from anthropic._response import APIResponse, AsyncAPIResponse
from anthropic.lib.streaming import AsyncMessageStream, MessageStream

from _anth import MODEL, MSGS, Telemetry, Wire, aclient, assert_tiles, client
from llmotel import _semconv as sc
from llmotel.instrument import streams
from llmotel_sim import SimServer

H = {"x-sim-output-tokens": "5"}


def _raw_types() -> tuple[type, ...]:
    try:
        from anthropic._legacy_response import LegacyAPIResponse

        return (APIResponse, LegacyAPIResponse)
    except ImportError:
        return (APIResponse,)


def test_stream_is_the_sdk_stream(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    stream = client(sim, wire).messages.create(model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=H)
    assert type(stream) is anthropic.Stream
    assert isinstance(vars(stream)["_iterator"], streams.HookedIterator)
    assert [e.type for e in stream][-1] == "message_stop"
    assert_tiles(*telemetry.one_call())


async def test_async_stream_is_the_sdk_stream(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    stream = await aclient(sim, wire).messages.create(
        model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=H
    )
    assert type(stream) is anthropic.AsyncStream
    assert [e async for e in stream]
    telemetry.one_call()


def test_raw_responses_are_the_sdk_objects(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = client(sim, wire)
    raw = c.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=H)
    assert type(raw) in _raw_types()
    stream = raw.parse()
    assert type(stream) is anthropic.Stream
    list(stream)
    with c.messages.with_streaming_response.create(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=H) as resp:
        assert type(resp) is APIResponse
        resp.parse()
    assert len(telemetry.llm_spans()) == 2


async def test_async_raw_response_is_the_sdk_object(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    async with aclient(sim, wire).messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=MSGS, stream=True, extra_headers=H
    ) as resp:
        assert type(resp) is AsyncAPIResponse
        stream = await resp.parse()
        assert type(stream) is anthropic.AsyncStream
        assert [e async for e in stream]
    telemetry.one_call()


def test_stream_helper_holds_the_sdk_stream(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    with client(sim, wire).messages.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=H) as helper:
        assert type(helper) is MessageStream
        assert type(helper._raw_stream) is anthropic.Stream
        "".join(helper.text_stream)
    telemetry.one_call()


async def test_async_stream_helper_holds_the_sdk_stream(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    async with aclient(sim, wire).messages.stream(model=MODEL, max_tokens=64, messages=MSGS, extra_headers=H) as helper:
        assert type(helper) is AsyncMessageStream
        assert type(helper._raw_stream) is anthropic.AsyncStream
        async for _ in helper.text_stream:
            pass
    telemetry.one_call()


def test_close_ends_the_call_once(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    stream = client(sim, wire).messages.create(
        model=MODEL, max_tokens=400, messages=MSGS, stream=True, extra_headers={"x-sim-output-tokens": "300"}
    )
    next(iter(stream))
    stream.close()
    stream.close()
    parent, kids = telemetry.one_call()
    assert (parent.attributes or {})[sc.LLMOTEL_STREAM_ABANDONED] is True
    assert_tiles(parent, kids)
