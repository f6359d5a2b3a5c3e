"""Property tests of llmotel.content: arbitrary message shapes never raise, and what is captured is valid JSON in
the GenAI schema and within the cap, whatever the provider sent.

(The real clients over loopback are in tests/openai/test_openai_content.py and tests/anthropic/...; these feed the
converters what no client would send, the way a malformed ``with_raw_response`` body or a future API would.)
"""

from __future__ import annotations

import json
from typing import Any

from _fuzz import FUZZ, TRIED, json_values
from hypothesis import given
from hypothesis import strategies as st

from _genai_content import errors
from llmotel import content

KEYS = [
    "role", "content", "type", "text", "image_url", "url", "input_audio", "data", "format", "file", "file_id",
    "file_data", "tool_calls", "id", "function", "name", "arguments", "tool_call_id", "refusal", "source",
    "media_type", "input", "tool_use_id", "thinking", "call_id", "output", "summary", "message", "finish_reason",
]  # fmt: skip
# Shapes close to real ones, with arbitrary values inside, reach the deeper branches.
_VALUE = json_values(KEYS)
_PART = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_image", "input_audio", "file", "input_file", "image",
                              "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
                              "server_tool_use", "web_search_tool_result", "function_call", "reasoning", "??"])},
    optional={k: _VALUE for k in ("text", "image_url", "source", "input", "content", "file", "id", "name")},
)  # fmt: skip
_MESSAGE = st.fixed_dictionaries(
    {"role": st.one_of(st.sampled_from(["system", "user", "assistant", "tool", "developer"]), _VALUE)},
    optional={"content": st.one_of(_VALUE, st.lists(st.one_of(_PART, _VALUE), max_size=4)), "tool_calls": _VALUE},
)
MESSAGES = st.one_of(_VALUE, st.lists(st.one_of(_MESSAGE, _PART, _VALUE), max_size=5))

INPUTS = (
    content.openai_chat_input,
    content.openai_prompt_input,
    content.openai_responses_input,
    content.anthropic_input,
)


def _no_constants(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _check(value: list[Any], schema: str, limit: int, reason: Any = None) -> None:
    text = content.to_json(value, limit)
    assert isinstance(text, str) and len(text) <= limit
    if not text:
        return
    parsed = json.loads(text, parse_constant=_no_constants)
    if schema == "gen-ai-output-messages.json" and not (isinstance(reason, str) and reason):
        # No finish reason was given, so none is recorded: optional in the current genai-repo schema, required
        # by the older file kept here, so fill it in to check everything else.
        assert all("finish_reason" not in m for m in parsed)
        parsed = [{**m, "finish_reason": "unset"} for m in parsed]
    assert errors(schema, parsed) == []


@FUZZ
@given(value=MESSAGES, limit=st.sampled_from([40, 300, 16384]))
def test_input_converters_never_raise_and_stay_in_schema(value: Any, limit: int) -> None:
    TRIED["content inputs"] += 1
    for convert in INPUTS:
        _check(convert(value), "gen-ai-input-messages.json", limit)
    _check(content.instructions(value), "gen-ai-system-instructions.genai.json", limit)


@FUZZ
@given(value=MESSAGES, reason=_VALUE, limit=st.sampled_from([40, 300, 16384]))
def test_output_converters_never_raise_and_stay_in_schema(value: Any, reason: Any, limit: int) -> None:
    TRIED["content outputs"] += 1
    choices = [{"message": value, "finish_reason": reason, "text": value}]
    for messages in (
        content.openai_chat_output(choices),
        content.openai_completion_output(choices),
        content.openai_responses_output(value, reason),
        content.anthropic_output(value, reason),
    ):
        _check(messages, "gen-ai-output-messages.json", limit, reason)


@FUZZ
@given(texts=st.lists(st.text(max_size=400), min_size=1, max_size=6), limit=st.integers(20, 2000))
def test_cap_cuts_text_not_structure(texts: list[str], limit: int) -> None:
    TRIED["content cap"] += 1
    messages = [{"role": "user", "parts": [{"type": "text", "content": t}]} for t in texts]
    text = content.to_json(messages, limit)
    assert len(text) <= limit
    if not text:  # only when not even one message with empty strings fits
        assert limit < len('[{"role":"user","parts":[{"type":"text","content":""}]}]')
        return
    kept = json.loads(text)
    assert kept and errors("gen-ai-input-messages.json", kept) == []
    # The newest messages are kept, each one a prefix of what was sent.
    sent = texts[len(texts) - len(kept) :]
    assert all(t.startswith(m["parts"][0]["content"]) for t, m in zip(sent, kept, strict=True))
