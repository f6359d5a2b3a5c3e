"""Property tests: arbitrary JSON-ish response bodies and stream-event sequences, built into the SDKs' own
response types exactly as the SDKs build them (lenient ``construct``), go through llmotel's readers and the
call machinery (``Call.read``, the stream proxies' per-chunk hook, ``Call.finish``). llmotel never raises
and always exports one call span tiled by its phases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _fuzz import FUZZ, TRIED, Pipeline, assert_one_tiled_call, json_values
from hypothesis import given
from hypothesis import strategies as st

from llmotel import config
from llmotel.instrument import capture
from llmotel.instrument.call import Call
from llmotel.instrument.streams import _on_chunk
from llmotel.providers import _anthropic_read as ant_read
from llmotel.providers import anthropic as ant_provider
from llmotel.providers import openai as oai_provider
from llmotel.record import LLMRequest
from llmotel.telemetry import spans

OAI_KEYS = [
    "id",
    "object",
    "created",
    "model",
    "choices",
    "usage",
    "delta",
    "message",
    "content",
    "role",
    "finish_reason",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "index",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
    "cached_tokens",
    "reasoning_tokens",
    "system_fingerprint",
    "service_tier",
    "refusal",
    "text",
    "type",
    "response",
    "status",
    "output",
    "input_tokens",
    "output_tokens",
    "incomplete_details",
    "reason",
    "x_groq",
    "timings",
    "usage_details",
]
ANT_KEYS = [
    "type",
    "message",
    "id",
    "model",
    "content",
    "content_block",
    "delta",
    "text",
    "partial_json",
    "thinking",
    "stop_reason",
    "usage",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
    "service_tier",
    "inference_geo",
    "name",
    "index",
    "output_tokens_details",
    "thinking_tokens",
    "error",
]
OAI_TYPES = [
    "response.created",
    "response.output_text.delta",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "chat.completion.chunk",
    "x",
]
ANT_TYPES = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "future_event",
]


SETTINGS = config.resolve()  # what an instrumentor would resolve in this environment


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    p = Pipeline()
    yield p
    spans.configure()


def _typed(keys: list[str], types: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts that usually name a real event type, with arbitrary other fields."""
    return st.builds(
        lambda t, rest: {**rest, "type": t} if t is not None else rest,
        st.one_of(st.none(), st.sampled_from(types)),
        st.dictionaries(st.sampled_from(keys), json_values(keys), max_size=6),
    )


def _construct(type_: Any, value: Any, lib: str) -> Any:
    """What the SDK hands the caller for this decoded JSON (it never validates)."""
    if lib == "openai":
        from openai._models import construct_type
    else:
        from anthropic._models import construct_type  # type: ignore[no-redef]
    return construct_type(type_=type_, value=value)


def _call(stream: bool, read_result: Any, read_event: Any, provider: str = "openai") -> Call:
    cap = capture.begin()
    req = LLMRequest(
        provider=provider,
        operation="chat",
        request_model="fuzz-model",
        stream=stream,
        server_address="127.0.0.1",
        server_port=1,
    )
    call = Call(req, cap, spans.start(req, cap, ""), read_result, read_event, SETTINGS)
    call.attempt_answered(200, [("content-type", "application/json")])
    return call


def _run_stream(pipeline: Pipeline, events: list[Any], read_result: Any, read_event: Any, provider: str) -> None:
    call = _call(True, read_result, read_event, provider)
    for ev in events:
        _on_chunk(call, ev, capture._now())
    call.finish()
    assert_one_tiled_call(pipeline.take(), phases_expected=True)


@FUZZ
@given(events=st.lists(_typed(OAI_KEYS, OAI_TYPES), max_size=8))
def test_openai_chat_chunks(pipeline: Pipeline, events: list[dict[str, Any]]) -> None:
    from openai.types.chat import ChatCompletionChunk

    TRIED["openai chat chunk sequences"] += 1
    built = [_construct(ChatCompletionChunk, e, "openai") for e in events]
    _run_stream(pipeline, built, oai_provider.read_chat_result, oai_provider.read_chat_chunk, "openai")


@FUZZ
@given(events=st.lists(_typed(OAI_KEYS, OAI_TYPES), max_size=8))
def test_openai_responses_events(pipeline: Pipeline, events: list[dict[str, Any]]) -> None:
    from openai.types.responses import ResponseStreamEvent

    TRIED["openai responses event sequences"] += 1
    built = [_construct(ResponseStreamEvent, e, "openai") for e in events]
    read_event = oai_provider.responses_event_reader(SETTINGS)
    _run_stream(pipeline, built, oai_provider.read_responses_result, read_event, "openai")


@FUZZ
@given(events=st.lists(_typed(OAI_KEYS, OAI_TYPES), max_size=8))
def test_openai_completion_chunks(pipeline: Pipeline, events: list[dict[str, Any]]) -> None:
    from openai.types import Completion

    TRIED["openai completion chunk sequences"] += 1
    built = [_construct(Completion, e, "openai") for e in events]
    _run_stream(pipeline, built, oai_provider.read_completion_result, oai_provider.read_completion_chunk, "openai")


@FUZZ
@given(events=st.lists(_typed(ANT_KEYS, ANT_TYPES), max_size=10), raw=st.booleans())
def test_anthropic_stream_events(pipeline: Pipeline, events: list[dict[str, Any]], raw: bool) -> None:
    from anthropic.types import RawMessageStreamEvent

    TRIED["anthropic stream event sequences"] += 1
    built = events if raw else [_construct(RawMessageStreamEvent, e, "anthropic") for e in events]
    _run_stream(pipeline, built, ant_provider.read_message_result, ant_provider.read_event, "anthropic")


@FUZZ
@given(body=json_values(OAI_KEYS), kind=st.sampled_from(["chat", "responses", "completion", "embeddings"]))
def test_openai_bodies(pipeline: Pipeline, body: Any, kind: str) -> None:
    from openai.types import Completion, CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion
    from openai.types.responses import Response

    TRIED["openai bodies"] += 1
    type_, reader = {
        "chat": (ChatCompletion, oai_provider.read_chat_result),
        "responses": (Response, oai_provider.read_responses_result),
        "completion": (Completion, oai_provider.read_completion_result),
        "embeddings": (CreateEmbeddingResponse, oai_provider.read_embeddings_result),
    }[kind]
    call = _call(False, reader, None)
    call.read(_construct(type_, body, "openai"))
    assert_one_tiled_call(pipeline.take(), phases_expected=True)


@FUZZ
@given(body=json_values(ANT_KEYS), raw=st.booleans())
def test_anthropic_bodies(pipeline: Pipeline, body: Any, raw: bool) -> None:
    from anthropic.types import Message

    TRIED["anthropic bodies"] += 1
    call = _call(False, ant_provider.read_message_result, None, "anthropic")
    call.read(body if raw else _construct(Message, body, "anthropic"))
    assert_one_tiled_call(pipeline.take(), phases_expected=True)


@FUZZ
@given(value=json_values(ANT_KEYS))
def test_anthropic_pure_readers_never_raise(value: Any) -> None:
    TRIED["anthropic pure reader inputs"] += 1
    from llmotel.record import LLMResponse, Usage

    r = LLMResponse()
    ant_read.read_stream_event(value, r)
    ant_read.read_message(value, r)
    ant_read.read_token_count(value, r)
    ant_read.apply_usage(value, Usage())
    ant_read.apply_usage_extras(value, r)
    assert isinstance(ant_read.message_content_json(value, SETTINGS.content_max_chars), str)
    for n in (r.usage.input_tokens, r.usage.output_tokens, r.usage.cache_read_tokens):
        assert n is None or 0 <= n < 2**64
