"""The pure Anthropic readers, fed the SDK's own models and raw JSON (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic._models import construct_type
from anthropic.types import Message, RawMessageStreamEvent

from llmotel import config
from llmotel.providers import _anthropic_read as read
from llmotel.record import LLMResponse


def _as_event(raw: dict[str, Any]) -> object:
    """What the SDK's Stream yields for one SSE data payload (lenient construction, like the SDK)."""
    return construct_type(type_=RawMessageStreamEvent, value=raw)


def _message_json(**usage: Any) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "content": [
            {"type": "text", "text": "checking"},
            {"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "tu_2", "name": "get_time", "input": {}},
        ],
        "usage": {"input_tokens": 12, "output_tokens": 40, **usage},
    }


KEY = config.resolve({"fingerprint_key": "k" * 32}).fingerprint_key

CACHED_USAGE = {
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 300,
    "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 100},
    "inference_geo": "eu",
    "service_tier": "standard",
    "output_tokens_details": {"thinking_tokens": 25},
}


@pytest.mark.parametrize("as_model", [True, False], ids=["model", "raw_json"])
def test_message_usage_includes_cache_and_split(as_model: bool) -> None:
    body = _message_json(**CACHED_USAGE)
    message: object = Message.model_validate(body) if as_model else body
    response = read.read_message(message)
    usage = response.usage
    assert usage.input_tokens == 12 + 1000 + 300
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (1000, 300)
    assert (usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (200, 100)
    assert usage.output_tokens == 40
    assert usage.reasoning_tokens == 25
    assert usage.source == "provider"
    assert response.region == "eu" and response.region_source == "usage"
    assert response.service_tier == ""  # no Anthropic tier under an OpenAI attribute name
    assert response.tool_names == ["get_weather", "get_time"]
    assert response.finish_reasons == ["tool_use"] and not response.truncated
    assert (response.response_id, response.response_model) == ("msg_1", "claude-sonnet-4-5-20250929")


def test_max_tokens_is_truncation_and_missing_cache_fields_stay_none() -> None:
    body = _message_json()
    body["stop_reason"] = "max_tokens"
    response = read.read_message(Message.model_validate(body))
    assert response.truncated and response.finish_reasons == ["max_tokens"]
    assert response.usage.input_tokens == 12
    assert response.usage.cache_read_tokens is None and response.usage.cache_write_tokens is None
    assert response.region == "" and response.region_source == ""


@pytest.mark.parametrize(
    "body",
    [None, 42, "x", {"usage": "nope"}, {"usage": {"input_tokens": "7", "output_tokens": True}}, {"content": 5}],
)
def test_malformed_message_never_raises(body: object) -> None:
    response = read.read_message(body)
    assert response.usage.input_tokens is None and response.usage.output_tokens is None


def _events(usage_start: dict[str, Any], usage_delta: dict[str, Any], n_text: int, thinking: int = 0) -> list[Any]:
    raw: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {**_message_json(**usage_start), "content": [], "stop_reason": None, "usage": usage_start},
        },
        {"type": "ping"},
    ]
    index = 0
    if thinking:
        raw.append(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            }
        )
        raw += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "h"}}
        ] * thinking
        raw.append({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}})
        raw.append({"type": "content_block_stop", "index": 0})
        index = 1
    raw.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
    raw += [{"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": "a"}}] * n_text
    raw.append({"type": "content_block_stop", "index": index})
    raw.append(
        {
            "type": "content_block_start",
            "index": index + 1,
            "content_block": {"type": "tool_use", "id": "t", "name": "lookup", "input": {}},
        }
    )
    raw.append(
        {"type": "content_block_delta", "index": index + 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}
    )
    raw.append({"type": "content_block_stop", "index": index + 1})
    raw.append(
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None}, "usage": usage_delta}
    )
    raw.append({"type": "message_stop"})
    return raw


@pytest.mark.parametrize("as_model", [True, False], ids=["model", "raw_json"])
def test_stream_usage_is_overwritten_never_added(as_model: bool) -> None:
    start = {
        "input_tokens": 9,
        "output_tokens": 1,
        "cache_read_input_tokens": 500,
        "cache_creation_input_tokens": 0,
        "inference_geo": "us",
    }
    # message_delta repeats cumulative input counts: adding them would double count.
    delta = {
        "output_tokens": 57,
        "input_tokens": 9,
        "cache_read_input_tokens": 500,
        "output_tokens_details": {"thinking_tokens": 20},
    }
    events = _events(start, delta, n_text=30, thinking=20)
    response = LLMResponse()
    flags = [read.read_stream_event(_as_event(e) if as_model else e, response) for e in events]
    first = flags.index(True)
    assert events[first]["type"] == "content_block_delta"
    assert not any(flags[:first])  # message_start, ping and block starts are not content
    assert sum(flags) == 20 + 30 + 1  # thinking + text + tool input json; not the signature delta
    assert response.usage.input_tokens == 509
    assert response.usage.cache_read_tokens == 500
    assert response.usage.output_tokens == 57
    assert response.usage.reasoning_tokens == 20
    assert response.usage.source == "provider"
    assert response.truncated and response.finish_reasons == ["max_tokens"]
    assert response.tool_names == ["lookup"]
    assert response.region == "us" and response.region_source == "usage"


def test_stream_cut_before_message_delta_leaves_output_unknown() -> None:
    events = _events({"input_tokens": 4, "output_tokens": 1}, {"output_tokens": 99}, n_text=7)
    response = LLMResponse()
    content = 0
    for event in events:
        if event["type"] == "message_delta":
            break
        content += read.read_stream_event(event, response)
    assert response.usage.input_tokens == 4
    # message_start's placeholder 1 is not an output count: unknown until message_delta (the core estimates).
    assert response.usage.output_tokens is None
    assert content == 8  # 7 text deltas + 1 tool-input delta
    assert response.finish_reasons == []


@pytest.mark.parametrize(
    "event",
    [
        None,
        3,
        {"type": "content_block_delta"},
        {"type": "message_delta", "usage": 5},
        {"type": "message_start", "message": []},
    ],
)
def test_malformed_events_never_raise(event: object) -> None:
    assert read.read_stream_event(event, LLMResponse()) is False


def test_request_reader_and_prefix() -> None:
    kwargs: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "temperature": 0.2,
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": "u-42"},
    }
    request = read.read_request(kwargs, server_address="127.0.0.1", server_port=8080)
    assert (request.provider, request.operation, request.request_model) == ("anthropic", "chat", "claude-haiku-4-5")
    assert (request.max_tokens, request.temperature, request.stream, request.user) == (256, 0.2, False, "u-42")
    assert read.read_request(kwargs, stream=True).stream
    fp, tokens = read.prefix_fingerprint(kwargs, KEY)
    assert len(fp) == 16 and tokens > 0
    changed = {**kwargs, "tools": [{"name": "lookup2", "description": "d", "input_schema": {"type": "object"}}]}
    assert read.prefix_fingerprint(changed, KEY)[0] != fp
    assert read.prefix_fingerprint({**kwargs, "system": "You are verbose."}, KEY)[0] != fp
    assert read.prefix_fingerprint({**kwargs, "messages": []}, KEY)[0] == fp  # messages are not part of the prefix
    assert read.prefix_fingerprint({"model": "m"}, KEY) == ("", 0)


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("bedrock-runtime.eu-west-1.amazonaws.com", "eu-west-1"),
        ("us-east5-aiplatform.googleapis.com", "us-east5"),
        ("aiplatform.googleapis.com", ""),
        ("api.anthropic.com", ""),
        ("127.0.0.1", ""),
        ("s3.amazonaws.com", ""),
    ],
)
def test_region_from_platform_hosts(host: str, region: str) -> None:
    from llmotel.providers.anthropic import _host_region

    assert _host_region(host) == region
