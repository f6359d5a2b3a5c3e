"""The app gets the openai client's own objects: ``type(x)`` is the SDK's class for streams, async streams, raw
responses and the ``.stream()`` helpers (no proxy; instrument/streams.py), and every way a call ends still ends it
exactly once."""

from __future__ import annotations

import gc

import openai
from openai import AsyncOpenAI, OpenAI
from openai._legacy_response import LegacyAPIResponse
from openai._response import APIResponse, AsyncAPIResponse
from openai.lib.streaming.chat import AsyncChatCompletionStream, ChatCompletionStream

from _oai import PHASES, Telemetry, assert_tiles
from llmotel import _semconv as sc
from llmotel.instrument import streams
from llmotel_sim import SimServer

MODEL = "gpt-4o-mini"
MSGS = [{"role": "user", "content": "hi"}]
H = {"x-sim-output-tokens": "4"}


def _client(sim: SimServer) -> OpenAI:
    return OpenAI(base_url=sim.base_url + "/v1", api_key="k")


def _aclient(sim: SimServer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="k")


def test_stream_is_the_sdk_stream(sim: SimServer, telemetry: Telemetry) -> None:
    stream = _client(sim).chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=H)
    assert type(stream) is openai.Stream
    assert isinstance(vars(stream)["_iterator"], streams.HookedIterator)  # the only attribute llmotel touched
    assert sum(1 for _ in stream) >= 4
    parent, kids = telemetry.one_call()
    assert [k.name for k in kids] == PHASES
    assert_tiles(parent, kids)


async def test_async_stream_is_the_sdk_stream(sim: SimServer, telemetry: Telemetry) -> None:
    stream = await _aclient(sim).chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=H)
    assert type(stream) is openai.AsyncStream
    assert [c async for c in stream]
    telemetry.one_call()


def test_raw_responses_are_the_sdk_objects(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS, stream=True, extra_headers=H)
    assert type(raw) is LegacyAPIResponse
    stream = raw.parse()
    assert type(stream) is openai.Stream
    assert raw.parse() is stream  # the SDK's cache, untouched
    list(stream)
    with client.chat.completions.with_streaming_response.create(model=MODEL, messages=MSGS, extra_headers=H) as resp:
        assert type(resp) is APIResponse
        resp.parse()
    assert len(telemetry.calls()) == 2


async def test_async_raw_response_is_the_sdk_object(sim: SimServer, telemetry: Telemetry) -> None:
    async with _aclient(sim).chat.completions.with_streaming_response.create(
        model=MODEL, messages=MSGS, stream=True, extra_headers=H
    ) as resp:
        assert type(resp) is AsyncAPIResponse
        stream = await resp.parse()
        assert type(stream) is openai.AsyncStream
        assert [c async for c in stream]
    telemetry.one_call()


def test_stream_helpers_hold_the_sdk_stream(sim: SimServer, telemetry: Telemetry) -> None:
    with _client(sim).chat.completions.stream(model=MODEL, messages=MSGS, extra_headers=H) as helper:
        assert type(helper) is ChatCompletionStream
        assert type(helper._raw_stream) is openai.Stream
        list(helper)
    telemetry.one_call()


async def test_async_stream_helper_holds_the_sdk_stream(sim: SimServer, telemetry: Telemetry) -> None:
    async with _aclient(sim).chat.completions.stream(model=MODEL, messages=MSGS, extra_headers=H) as helper:
        assert type(helper) is AsyncChatCompletionStream
        assert type(helper._raw_stream) is openai.AsyncStream
        async for _ in helper:
            pass
    telemetry.one_call()


def test_close_and_with_exit_end_the_call_once(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    big = {"x-sim-output-tokens": "200"}
    stream = client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=big)
    next(iter(stream))
    stream.close()
    ((parent, _),) = telemetry.calls()
    assert parent.attributes[sc.LLMOTEL_STREAM_ABANDONED] is True
    stream.close()  # again: nothing more
    del stream
    gc.collect()
    assert len(telemetry.calls()) == 1
    telemetry.exporter.clear()
    with client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=big) as s:
        next(iter(s))
    ((parent, kids),) = telemetry.calls()
    assert parent.attributes[sc.LLMOTEL_STREAM_ABANDONED] is True
    assert_tiles(parent, kids)


def test_raw_response_closed_or_collected_unparsed_ends_the_call(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MSGS, stream=True, extra_headers=H
    ):
        pass  # closed without parse()
    assert len(telemetry.calls()) == 1
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS, stream=True, extra_headers=H)
    assert type(raw) is LegacyAPIResponse
    del raw
    gc.collect()
    assert len(telemetry.calls()) == 2
