"""Opt-in content capture with the real anthropic client over loopback: the GenAI parts schema, checked two ways.

Every captured attribute is validated against the official JSON schema (tests/data/genai_schema) and compared
with what the test sent and what the client returned.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from _anth import MODEL, Telemetry, Wire, aclient, client
from _genai_content import input_messages, output_messages, system_instructions
from llmotel import _semconv as sc
from llmotel_sim import SimServer

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really an image").decode()
PDF = base64.b64encode(b"%PDF-1.4 not really a pdf").decode()
HISTORY: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture and this file?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "The user wants a lookup.", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "opaque=="},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a cat"}]},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "failed", "is_error": True},
            {"type": "future_block", "payload": {"x": 1}},
        ],
    },
]
SYSTEM_BLOCKS = [
    {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "Answer in French."},
]


def _h(n: int, **extra: str) -> dict[str, str]:
    return {"x-sim-output-tokens": str(n), **extra}


@pytest.fixture
def capture(telemetry: Telemetry) -> Telemetry:
    telemetry.reinstrument(capture_content=True)
    return telemetry


def _attrs(telemetry: Telemetry) -> dict[str, Any]:
    return dict(telemetry.one_call()[0].attributes or {})


def test_history_every_block_shape(sim: SimServer, capture: Telemetry, wire: Wire) -> None:
    message = client(sim, wire).messages.create(
        model=MODEL, max_tokens=64, system=SYSTEM_BLOCKS, messages=HISTORY, extra_headers=_h(4)  # type: ignore[arg-type]
    )
    a = _attrs(capture)
    # system goes to its own attribute, one text part per block.
    assert system_instructions(a[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": b["text"]} for b in SYSTEM_BLOCKS
    ]
    sent = input_messages(a[sc.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in sent] == [m["role"] for m in HISTORY]
    blocks = HISTORY[0]["content"]
    src = [b.get("source", {}) for b in blocks]
    assert sent[0]["parts"] == [
        {"type": "text", "content": blocks[0]["text"]},
        {"type": "blob", "modality": "image", "content": src[1]["data"], "mime_type": src[1]["media_type"]},
        {"type": "uri", "modality": "image", "uri": src[2]["url"]},
        {"type": "blob", "modality": "document", "content": src[3]["data"], "mime_type": src[3]["media_type"]},
        {"type": "text", "content": src[4]["data"]},
    ]
    thinking, _redacted, text, tool_use = HISTORY[1]["content"]
    assert sent[1]["parts"] == [
        {"type": "reasoning", "content": thinking["thinking"]},
        {"type": "redacted_thinking"},  # encrypted: recorded as present, its data is not
        {"type": "text", "content": text["text"]},
        {"type": "tool_call", "id": tool_use["id"], "name": tool_use["name"], "arguments": tool_use["input"]},
    ]
    ok, failed, future = HISTORY[2]["content"]
    assert sent[2]["parts"] == [
        {"type": "tool_call_response", "id": ok["tool_use_id"], "response": ok["content"][0]["text"]},
        {"type": "tool_call_response", "id": failed["tool_use_id"], "response": failed["content"], "is_error": True},
        future,  # an unknown block is recorded as given, never dropped
    ]
    assert output_messages(a[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": message.role,
            "parts": [{"type": "text", "content": b.text} for b in message.content],  # type: ignore[union-attr]
            "finish_reason": "stop",  # the convention's value for end_turn
        }
    ]
    assert message.stop_reason == "end_turn"


def test_tool_use_loop_with_the_returned_blocks(sim: SimServer, capture: Telemetry, wire: Wire) -> None:
    """The agent loop: the model asks for tools; its pydantic content blocks go back into the history as is."""
    c = client(sim, wire)
    question = {"role": "user", "content": "Weather in Paris and Rome?"}
    message = c.messages.create(
        model=MODEL,
        max_tokens=64,
        system="Use tools.",
        messages=[question],  # type: ignore[list-item]
        extra_headers=_h(8, **{"x-sim-tool-calls": "weather,weather"}),
    )
    a = _attrs(capture)
    assert system_instructions(a[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Use tools."}]
    uses = [b for b in message.content if b.type == "tool_use"]
    assert len(uses) == 2 and message.stop_reason == "tool_use"
    [out] = output_messages(a[sc.GEN_AI_OUTPUT_MESSAGES])
    answered_parts = out["parts"]
    assert [out] == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": b.id, "name": b.name, "arguments": b.input} for b in uses],
            "finish_reason": "tool_call",
        }
    ]
    capture.exporter.clear()
    results = [{"type": "tool_result", "tool_use_id": b.id, "content": f"sunny in {i}"} for i, b in enumerate(uses)]
    c.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=[question, {"role": "assistant", "content": message.content}, {"role": "user", "content": results}],  # type: ignore[list-item]
        extra_headers=_h(3),
    )
    a = _attrs(capture)
    sent = input_messages(a[sc.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["parts"] == answered_parts  # the model's blocks read exactly like the response did
    assert sent[2]["parts"] == [
        {"type": "tool_call_response", "id": r["tool_use_id"], "response": r["content"]} for r in results
    ]
    assert sc.GEN_AI_SYSTEM_INSTRUCTIONS not in a  # no system this time


async def test_async_and_stream_helper_record_input(sim: SimServer, capture: Telemetry, wire: Wire) -> None:
    # The stream helper: input and system recorded; streamed output is not accumulated (per-delta cost).
    msgs = [{"role": "user", "content": "Say something short."}]
    async with aclient(sim, wire).messages.stream(
        model=MODEL, max_tokens=64, system="Be brief.", messages=msgs, extra_headers=_h(5)  # type: ignore[arg-type]
    ) as s:
        await s.get_final_message()
    a = _attrs(capture)
    assert input_messages(a[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": msgs[0]["content"]}]}
    ]
    assert system_instructions(a[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert sc.GEN_AI_OUTPUT_MESSAGES not in a


def test_count_tokens_records_no_content(sim: SimServer, capture: Telemetry, wire: Wire) -> None:
    client(sim, wire).messages.count_tokens(model=MODEL, system="Be brief.", messages=HISTORY[:1])  # type: ignore[arg-type]
    a = _attrs(capture)
    assert not {sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS} & set(a)
