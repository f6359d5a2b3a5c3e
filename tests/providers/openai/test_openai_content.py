"""Opt-in content capture with the real openai client over loopback: the GenAI parts schema, checked two ways.

Each captured attribute is validated against the official JSON schema (tests/data/genai_schema) and its structure
is compared with what the test sent and what the client returned, so both a schema slip and a lost or altered
message fail.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from openai import OpenAI

from _genai_content import arguments, errors, input_messages, output_messages, system_instructions
from _oai import Telemetry
from llmotel import _semconv as sc
from llmotel_sim import SimServer

MODEL = "gpt-4o-mini"
IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n not really an image").decode()
AUDIO = base64.b64encode(b"RIFF....WAVEfmt ").decode()
HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
    {
        "role": "user",
        "name": "ana",
        "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": AUDIO, "format": "wav"}},
            {"type": "file", "file": {"file_id": "file-abc123"}},
            {"type": "future_part", "payload": {"x": 1}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"q": "cat"})}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "a cat, probably"},
    {"role": "user", "content": "thanks"},
]


def _client(sim: SimServer) -> OpenAI:
    return OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=0)


def _hdr(n: int, **extra: str) -> dict[str, str]:
    return {"x-sim-output-tokens": str(n), **extra}


@pytest.fixture
def capture(telemetry: Telemetry) -> Telemetry:
    telemetry.reinstrument(capture_content=True)
    return telemetry


def _attrs(telemetry: Telemetry) -> dict[str, Any]:
    return dict(telemetry.one_call()[0].attributes or {})


def test_schema_files_reject_the_raw_provider_json() -> None:
    # The validators can fail: the raw chat messages llmotel used to record are not the GenAI schema.
    assert errors("gen-ai-input-messages.json", HISTORY)
    assert errors("gen-ai-output-messages.json", [{"role": "assistant", "content": "hi"}])
    assert errors("gen-ai-system-instructions.genai.json", [{"type": "text"}])


def test_chat_history_every_part_shape(sim: SimServer, capture: Telemetry) -> None:
    r = _client(sim).chat.completions.create(model=MODEL, messages=HISTORY, extra_headers=_hdr(4))  # type: ignore[arg-type]
    a = _attrs(capture)
    sent = input_messages(a[sc.GEN_AI_INPUT_MESSAGES])
    # One message per message sent, in order, roles as sent (system/developer stay in the history).
    assert [m["role"] for m in sent] == [m["role"] for m in HISTORY]
    assert sc.GEN_AI_SYSTEM_INSTRUCTIONS not in a
    assert sent[0]["parts"] == [{"type": "text", "content": HISTORY[0]["content"]}]
    assert sent[1]["parts"] == [{"type": "text", "content": HISTORY[1]["content"][0]["text"]}]
    user, parts = sent[2], HISTORY[2]["content"]
    assert user["name"] == HISTORY[2]["name"]
    text, blob, uri, audio, file, unknown = user["parts"]
    assert text == {"type": "text", "content": parts[0]["text"]}
    mime, data = parts[1]["image_url"]["url"][len("data:") :].split(";base64,")
    assert blob == {"type": "blob", "modality": "image", "mime_type": mime, "content": data}
    assert uri == {"type": "uri", "modality": "image", "uri": parts[2]["image_url"]["url"]}
    sent_audio = parts[3]["input_audio"]
    assert audio == {
        "type": "blob",
        "modality": "audio",
        "mime_type": f"audio/{sent_audio['format']}",
        "content": sent_audio["data"],
    }
    assert file == {"type": "file", "modality": "document", "file_id": parts[4]["file"]["file_id"]}
    assert unknown == parts[5]  # an unknown part is recorded as given, never dropped
    call = HISTORY[3]["tool_calls"][0]
    assert sent[3]["parts"] == [
        {
            "type": "tool_call",
            "id": call["id"],
            "name": call["function"]["name"],
            "arguments": json.loads(call["function"]["arguments"]),
        }
    ]
    assert sent[4]["parts"] == [
        {"type": "tool_call_response", "id": HISTORY[4]["tool_call_id"], "response": HISTORY[4]["content"]}
    ]
    # The answer: one output message per choice, text and finish reason as returned.
    out = output_messages(a[sc.GEN_AI_OUTPUT_MESSAGES])
    assert out == [
        {"role": c.message.role, "parts": [{"type": "text", "content": c.message.content}], "finish_reason": "stop"}
        for c in r.choices
    ]
    assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == tuple(c.finish_reason for c in r.choices)


def test_tool_call_loop_with_the_returned_message_object(sim: SimServer, capture: Telemetry) -> None:
    """The agent loop: the model asks for tools; its pydantic message goes back into the history as is."""
    c = _client(sim)
    question = {"role": "user", "content": "Weather in Paris and Rome?"}
    first = c.chat.completions.create(
        model=MODEL, messages=[question], extra_headers=_hdr(8, **{"x-sim-tool-calls": "weather,weather"})  # type: ignore[list-item]
    )
    a = _attrs(capture)
    [out] = output_messages(a[sc.GEN_AI_OUTPUT_MESSAGES])
    calls = first.choices[0].message.tool_calls or []
    assert len(calls) == 2 and first.choices[0].finish_reason == "tool_calls"
    assert out == {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": t.id, "name": t.function.name, "arguments": arguments(t.function.arguments)}  # type: ignore[union-attr]
            for t in calls
        ],
        "finish_reason": "tool_call",  # the convention's value for OpenAI's "tool_calls"
    }
    capture.exporter.clear()
    results = [{"role": "tool", "tool_call_id": t.id, "content": f"sunny in {i}"} for i, t in enumerate(calls)]
    c.chat.completions.create(
        model=MODEL, messages=[question, first.choices[0].message, *results], extra_headers=_hdr(3)  # type: ignore[list-item]
    )
    sent = input_messages(_attrs(capture)[sc.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert sent[1]["parts"] == out["parts"]  # the model object reads exactly like the response did
    assert [m["parts"] for m in sent[2:]] == [
        [{"type": "tool_call_response", "id": r["tool_call_id"], "response": r["content"]}] for r in results
    ]


def test_responses_instructions_items_and_output(sim: SimServer, capture: Telemetry) -> None:
    items: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Describe this."},
                {"type": "input_image", "image_url": "https://example.com/dog.png"},
                {"type": "input_file", "file_id": "file-xyz"},
            ],
        },
        {"type": "function_call", "call_id": "fc_1", "name": "zoom", "arguments": json.dumps({"level": 2})},
        {"type": "function_call_output", "call_id": "fc_1", "output": "zoomed"},
        {"type": "item_reference", "id": "msg_earlier"},
    ]
    r = _client(sim).responses.create(
        model=MODEL, instructions="Be brief.", input=items, extra_headers=_hdr(5)  # type: ignore[arg-type]
    )
    a = _attrs(capture)
    assert system_instructions(a[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    sent = input_messages(a[sc.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    parts = items[0]["content"]
    assert sent[0]["parts"] == [
        {"type": "text", "content": parts[0]["text"]},
        {"type": "uri", "modality": "image", "uri": parts[1]["image_url"]},
        {"type": "file", "modality": "document", "file_id": parts[2]["file_id"]},
    ]
    assert sent[1]["parts"] == [
        {"type": "tool_call", "id": "fc_1", "name": items[1]["name"], "arguments": json.loads(items[1]["arguments"])}
    ]
    assert sent[2]["parts"] == [{"type": "tool_call_response", "id": "fc_1", "response": items[2]["output"]}]
    assert sent[3]["parts"] == [items[3]]  # an item type we do not model: kept, with its fields
    assert output_messages(a[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": r.output_text}], "finish_reason": "stop"}
    ]


def test_responses_string_input_and_stream_output(sim: SimServer, capture: Telemetry) -> None:
    """A streamed Response is captured from its final event (once per stream, not per delta)."""
    deltas = []
    with _client(sim).responses.stream(model=MODEL, input="Say hi.", extra_headers=_hdr(6)) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
    a = _attrs(capture)
    said = [{"role": "user", "parts": [{"type": "text", "content": "Say hi."}]}]
    assert input_messages(a[sc.GEN_AI_INPUT_MESSAGES]) == said
    assert sc.GEN_AI_SYSTEM_INSTRUCTIONS not in a
    [out] = output_messages(a[sc.GEN_AI_OUTPUT_MESSAGES])
    assert out["parts"] == [{"type": "text", "content": "".join(deltas)}] and deltas


def test_chat_stream_records_input_not_output(sim: SimServer, capture: Telemetry) -> None:
    # Streamed chat output is not accumulated (an allocation per chunk); the input is recorded.
    for _ in _client(sim).chat.completions.create(
        model=MODEL, messages=HISTORY[:1], stream=True, extra_headers=_hdr(4)  # type: ignore[arg-type]
    ):
        pass
    a = _attrs(capture)
    assert input_messages(a[sc.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] == HISTORY[0]["content"]
    assert sc.GEN_AI_OUTPUT_MESSAGES not in a


@pytest.mark.parametrize("prompt", ["Once upon a time", ["First prompt", "Second prompt"]])
def test_legacy_completion_prompt_and_choices(sim: SimServer, capture: Telemetry, prompt: Any) -> None:
    r = _client(sim).completions.create(model="gpt-3.5-turbo-instruct", prompt=prompt, extra_headers=_hdr(4))
    a = _attrs(capture)
    prompts = [prompt] if isinstance(prompt, str) else prompt
    assert input_messages(a[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": p}]} for p in prompts
    ]
    assert output_messages(a[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": c.text}], "finish_reason": c.finish_reason}
        for c in r.choices
    ]


def test_cap_keeps_valid_json_and_cuts_the_longest_strings_first(sim: SimServer, capture: Telemetry) -> None:
    capture.reinstrument(capture_content=True, content_max_chars=700)
    big_image = base64.b64encode(bytes(range(256)) * 40).decode()
    long_text = "START " + "lorem ipsum " * 200 + "PAST-THE-CAP"
    messages = [
        {"role": "system", "content": "Short rule."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "short question"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{big_image}"}},
            ],
        },
        {"role": "user", "content": long_text},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_kept_whole_by_the_cap",
                    "type": "function",
                    "function": {"name": "lookup_weather_by_city", "arguments": json.dumps({"city": "P" * 300})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_kept_whole_by_the_cap", "content": "R" * 300},
    ]
    _client(sim).chat.completions.create(model=MODEL, messages=messages, extra_headers=_hdr(60))  # type: ignore[arg-type]
    a = _attrs(capture)
    raw_in, raw_out = a[sc.GEN_AI_INPUT_MESSAGES], a[sc.GEN_AI_OUTPUT_MESSAGES]
    assert isinstance(raw_in, str) and isinstance(raw_out, str)
    assert len(raw_in) <= 700 and len(raw_out) <= 700
    sent = input_messages(raw_in)  # still valid JSON and still the schema
    assert [m["role"] for m in sent] == [m["role"] for m in messages]
    # Short strings survive whole; the long ones are cut to the same prefix length.
    assert sent[0]["parts"] == [{"type": "text", "content": "Short rule."}]
    assert sent[1]["parts"][0] == {"type": "text", "content": "short question"}
    blob = sent[1]["parts"][1]["content"]
    assert big_image.startswith(blob) and len(blob) < len(big_image)
    text = sent[2]["parts"][0]["content"]
    assert long_text.startswith(text) and text.startswith("START") and "PAST-THE-CAP" not in raw_in
    # Ids and tool names are never cut; arguments and results are text like any other.
    [call] = sent[3]["parts"]
    sent_call = messages[3]["tool_calls"][0]
    assert (call["id"], call["name"]) == (sent_call["id"], sent_call["function"]["name"])
    city = json.loads(sent_call["function"]["arguments"])["city"]
    assert city.startswith(call["arguments"]["city"]) and len(call["arguments"]["city"]) == len(text)
    [result] = sent[4]["parts"]
    assert result["id"] == messages[4]["tool_call_id"] and messages[4]["content"].startswith(result["response"])
    assert len(output_messages(raw_out)) == 1


def test_nothing_captured_by_default(sim: SimServer, telemetry: Telemetry) -> None:
    _client(sim).responses.create(model=MODEL, instructions="Be brief.", input="hi", extra_headers=_hdr(3))
    a = _attrs(telemetry)
    assert not {sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS} & set(a)


def test_responses_output_items_sent_back_as_input(sim: SimServer, capture: Telemetry) -> None:
    c = _client(sim)
    first = c.responses.create(model=MODEL, input="Say hi.", extra_headers=_hdr(4))
    capture.exporter.clear()
    c.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": "Say hi."}, *first.output, {"role": "user", "content": "Again."}],  # type: ignore[list-item]
        extra_headers=_hdr(3),
    )
    sent = input_messages(_attrs(capture)[sc.GEN_AI_INPUT_MESSAGES])
    assert sent == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hi."}]},
        {"role": "assistant", "parts": [{"type": "text", "content": first.output_text}]},
        {"role": "user", "parts": [{"type": "text", "content": "Again."}]},
    ]
