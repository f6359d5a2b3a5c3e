"""The chat chunk reader's shortcut for the common text chunk reads what the general path reads, on the SDK's own
models (built from JSON as the SDK builds a stream's chunks), and the body-timing reader's way around pydantic's
missing-attribute path finds what ``getattr`` finds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from openai._models import construct_type
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llmotel.providers import openai as reader
from llmotel.record import LLMResponse


def _chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, choices: int = 1, **top: Any
) -> ChatCompletionChunk:
    data: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": i, "delta": delta or {}, "finish_reason": finish} for i in range(choices)],
    }
    data.update(top)
    chunk: ChatCompletionChunk = construct_type(type_=ChatCompletionChunk, value=data)
    return chunk


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "queue_time": 0.01}
TOOL = {"index": 0, "id": "c", "type": "function", "function": {"name": "lookup", "arguments": ""}}
STREAMS: dict[str, list[ChatCompletionChunk]] = {
    "text": [
        _chunk({"role": "assistant", "content": ""}),
        *[_chunk({"content": w}) for w in ("a", " b", " c")],
        _chunk({}, "stop"),
    ],
    "tool calls": [_chunk({"role": "assistant"}), _chunk({"tool_calls": [TOOL]}), _chunk({}, "tool_calls")],
    "text with a tool call": [
        _chunk({"content": ""}),
        _chunk({"content": "x", "tool_calls": [TOOL]}),
        _chunk({}, "stop"),
    ],
    "refusal": [_chunk({"content": ""}), _chunk({"refusal": "no"}), _chunk({}, "stop")],
    "reasoning extras": [_chunk({"content": ""}), _chunk({"reasoning_content": "hm"}), _chunk({"content": "x"})],
    "usage on every chunk": [_chunk({"content": "a"}, usage=USAGE), _chunk({"content": "b"}, usage=USAGE)],
    "last token with the finish reason": [_chunk({"content": ""}), _chunk({"content": "x"}, "length")],
    "usage chunk": [_chunk({"content": "a"}), _chunk({"content": "b"}), _chunk(choices=0, usage=USAGE)],
    "two choices": [_chunk({"content": ""}, choices=2), _chunk({"content": "x"}, choices=2)],
    "timing extras": [
        _chunk({"content": ""}),
        _chunk({"content": "x"}),
        _chunk({}, "stop", metadata={"weight_version": "v7"}, timings={"prompt_ms": 3.0}),
    ],
}


def _read(read_one: Any, chunks: list[Any]) -> tuple[LLMResponse, list[bool]]:
    response = LLMResponse()
    return response, [read_one(chunk, response) for chunk in chunks]


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_shortcut_reads_what_the_general_path_reads(name: str) -> None:
    fast, fast_flags = _read(reader.read_chat_chunk, STREAMS[name])
    slow, slow_flags = _read(reader._read_chat_chunk, STREAMS[name])
    assert fast == slow
    assert fast_flags == slow_flags


def test_what_the_streams_read() -> None:
    text, flags = _read(reader.read_chat_chunk, STREAMS["text"])
    assert flags == [False, True, True, True, False]
    assert (text.response_id, text.finish_reasons) == ("chatcmpl-1", ["stop"])
    tools, flags = _read(reader.read_chat_chunk, STREAMS["text with a tool call"])
    assert flags == [False, True, False] and tools.tool_names == ["lookup"]
    _, flags = _read(reader.read_chat_chunk, STREAMS["reasoning extras"])
    assert flags == [False, True, True]
    usage, _ = _read(reader.read_chat_chunk, STREAMS["usage on every chunk"])
    assert (usage.usage.input_tokens, usage.usage.output_tokens) == (5, 2)
    timed, _ = _read(reader.read_chat_chunk, STREAMS["timing extras"])
    assert timed.body_timing == {"metadata": {"weight_version": "v7"}, "timings": {"prompt_ms": 3.0}}


def test_body_timing_metadata_as_getattr_finds_it() -> None:
    """A declared ``metadata`` field (ChatCompletion), an extra of that name (a chunk) and none at all."""
    body = construct_type(
        type_=ChatCompletion,
        value={
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [],
            "metadata": {"weight_version": "v1"},
            "usage": USAGE,
        },
    )
    for obj, undeclared in ((body, False), (STREAMS["timing extras"][-1], True), (STREAMS["text"][-1], True)):
        expected: dict[str, object] = {}
        extra = obj.model_extra or {}
        for key in reader.server_timing.BODY_KEYS:
            if isinstance(extra.get(key), dict):
                expected[key] = extra[key]
        usage = getattr(obj, "usage", None)
        if usage is not None and usage.model_extra:
            expected[reader.server_timing.USAGE_KEY] = usage.model_extra
        metadata = getattr(obj, "metadata", None)
        if isinstance(metadata, dict) and metadata:
            expected["metadata"] = metadata
        response = LLMResponse()
        reader._body_timing(obj, response, undeclared)
        assert response.body_timing == expected
        response = LLMResponse()
        reader._body_timing(obj, response)  # the getattr path
        assert response.body_timing == expected
    assert reader._metadata_is_extra(ChatCompletionChunk) and not reader._metadata_is_extra(ChatCompletion)


def test_objects_other_than_the_sdks_models_take_getattr() -> None:
    """Not a pydantic model: every value through getattr, as before (a stand-in with ``model_extra``)."""
    obj = SimpleNamespace(model_extra={"timings": {"a": 1}}, usage=None, metadata={"weight_version": "v2"})
    assert not reader._metadata_is_extra(SimpleNamespace)
    response = LLMResponse()
    reader._body_timing(obj, response, True)
    assert response.body_timing == {"timings": {"a": 1}, "metadata": {"weight_version": "v2"}}
