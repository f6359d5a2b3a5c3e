"""Provider messages -> the GenAI content schema, as size-capped JSON. One job, run only with content capture on.

The schema is the OpenTelemetry GenAI semantic conventions' (open-telemetry/semantic-conventions-genai,
``model/gen-ai/gen-ai-{input-messages,output-messages,system-instructions}.json``):

- ``gen_ai.input.messages``: ``[{"role", "parts": [part, ...], "name"?}]`` in the order sent;
- ``gen_ai.output.messages``: the same, one message per choice, plus ``finish_reason``;
- ``gen_ai.system_instructions``: ``[part, ...]``, only for instructions given *separately* from the history
  (Anthropic ``system``, OpenAI Responses ``instructions``). System/developer messages inside a chat history
  stay in the input messages with their role, as the convention says.

A part is ``text`` {content}, ``tool_call`` {id, name, arguments}, ``tool_call_response`` {id, response},
``server_tool_call`` / ``server_tool_call_response``, ``blob`` {modality, mime_type, content (base64)},
``uri`` {modality, uri}, ``file`` {modality, file_id}, ``reasoning`` {content}, or a generic part
``{"type": <the provider's type>, ...its fields}`` for anything else: an unknown shape is recorded, never
dropped, and never raises. Every converter reads the SDKs' pydantic models and plain dicts alike.

The JSON form and its size cap: ``llmotel.content.cap``.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

_log = logging.getLogger(__name__)

Part = dict[str, Any]
Message = dict[str, Any]
_F = TypeVar("_F", bound=Callable[..., list[Any]])

# Provider finish/stop reasons -> the convention's FinishReason values (stop, length, content_filter,
# tool_call, error); anything else is kept as the provider said it (the schema allows any string).
_FINISH = {
    "tool_calls": "tool_call",  # OpenAI
    "function_call": "tool_call",  # OpenAI, legacy functions
    "end_turn": "stop",  # Anthropic
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
}
# Anthropic blocks in which the model called a tool that the provider runs (not the caller).
_SERVER_TOOL_USE = frozenset({"server_tool_use", "mcp_tool_use"})


# ---------------------------------------------------------------------------------------------- reading


def _get(obj: object, name: str) -> Any:
    """``obj[name]`` for a mapping, ``obj.name`` otherwise, None when absent. Never raises."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _plain(value: object, depth: int = 0) -> Any:
    """A JSON-able copy of ``value`` (pydantic models dumped, bytes as base64, other objects as str)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN / Infinity are not JSON
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if depth > 32:  # a self-referencing structure: stop, do not recurse forever
        return str(type(value).__name__)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return _plain(dump(mode="json", exclude_none=True), depth + 1)
        except Exception:
            pass
    return str(value)


def _string(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _text(value: object) -> Part:
    return {"type": "text", "content": _string(value)}


def _never_raises(convert: _F) -> _F:
    """The last line of defence of a public converter: an exception means no content, never a broken call."""

    @functools.wraps(convert)
    def safe(*args: Any) -> list[Any]:
        try:
            return convert(*args)
        except Exception:
            _log.debug("llmotel: content conversion failed", exc_info=True)
            return []

    return safe  # type: ignore[return-value]


def _generic(obj: object) -> Part:
    """A part for a shape this module does not know: the provider's type and fields, as given."""
    plain = _plain(obj)
    if isinstance(plain, dict):
        kind = plain.get("type")
        plain["type"] = kind if isinstance(kind, str) and kind else "unknown"
        return plain
    return {"type": type(obj).__name__, "content": plain}


def _arguments(value: object) -> Any:
    """Tool-call arguments as an object when they are a JSON string (OpenAI sends strings), else as given."""
    if isinstance(value, str):
        try:
            return json.loads(value, parse_constant=_not_json)
        except (ValueError, RecursionError):
            return value
    return _plain(value)


def _not_json(constant: str) -> Any:
    raise ValueError(constant)  # Python's json accepts NaN / Infinity; JSON does not


def _tool_call(call_id: object, name: object, arguments: object) -> Part:
    part: Part = {"type": "tool_call"}
    if isinstance(call_id, str) and call_id:
        part["id"] = call_id
    part["name"] = name if isinstance(name, str) else ""
    if arguments is not None:
        part["arguments"] = _arguments(arguments)
    return part


def _tool_response(call_id: object, response: object) -> Part:
    part: Part = {"type": "tool_call_response"}
    if isinstance(call_id, str) and call_id:
        part["id"] = call_id
    part["response"] = _response_value(response)
    return part


def _response_value(content: object) -> Any:
    """A tool result: a string stays a string; a list of text blocks becomes their text; else its JSON."""
    if isinstance(content, (list, tuple)) and content:
        texts = [_get(block, "text") for block in content]
        if all(isinstance(t, str) for t in texts) and all(_get(b, "type") in ("text", None) for b in content):
            return "".join(texts)
    return _plain(content)


def _media(url: str, modality: str, mime_type: object = None) -> Part:
    """A data: URL becomes a blob part (base64 content), any other URL a uri part."""
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        mime = head[5:].split(";", 1)[0]
        if ";base64" not in head:  # percent-encoded payload; the schema wants base64
            data = base64.b64encode(unquote_to_bytes(data)).decode("ascii")
        part: Part = {"type": "blob", "modality": modality, "content": data}
        if mime:
            part["mime_type"] = mime
        return part
    part = {"type": "uri", "modality": modality, "uri": url}
    if isinstance(mime_type, str) and mime_type:
        part["mime_type"] = mime_type
    return part


def _blob(data: object, modality: str, mime_type: object) -> Part:
    part: Part = {"type": "blob", "modality": modality, "content": _plain(data) if data is not None else ""}
    if isinstance(mime_type, str) and mime_type:
        part["mime_type"] = mime_type
    return part


def _file(file_id: str, modality: str) -> Part:
    return {"type": "file", "modality": modality, "file_id": file_id}


def _finish(reason: object) -> str | None:
    if not isinstance(reason, str) or not reason:
        return None
    return _FINISH.get(reason, reason)


def _output(role: object, parts: list[Part], finish_reason: object) -> Message:
    message: Message = {"role": role if isinstance(role, str) and role else "assistant", "parts": parts}
    finish = _finish(finish_reason)
    if finish is not None:  # unknown is omitted, not guessed (the latest schema makes it optional)
        message["finish_reason"] = finish
    return message


def _each(items: object) -> list[Any]:
    if isinstance(items, (list, tuple)):
        return list(items)
    return [] if items is None else [items]


# ---------------------------------------------------------------------------------------------- OpenAI


def _openai_part(p: object) -> Part:
    """One content part of a Chat Completions message or a Responses message item."""
    if isinstance(p, str):
        return _text(p)
    kind = _get(p, "type")
    if kind in ("text", "input_text", "output_text"):
        return _text(_get(p, "text"))
    if kind == "refusal":
        return _text(_get(p, "refusal"))
    if kind == "image_url":  # chat: {"image_url": {"url": ..., "detail": ...}}
        url = _get(_get(p, "image_url"), "url")
        if isinstance(url, str):
            return _media(url, "image")
    elif kind == "input_image":  # responses: {"image_url": "..."} or {"file_id": "..."}
        url, file_id = _get(p, "image_url"), _get(p, "file_id")
        if isinstance(url, str) and url:
            return _media(url, "image")
        if isinstance(file_id, str) and file_id:
            return _file(file_id, "image")
    elif kind == "input_audio":
        audio = _get(p, "input_audio")
        fmt = _get(audio, "format")
        return _blob(_get(audio, "data"), "audio", f"audio/{fmt}" if isinstance(fmt, str) and fmt else None)
    elif kind in ("file", "input_file"):  # chat nests the fields under "file"; responses does not
        f = _get(p, "file") if kind == "file" else p
        file_id, data, url = _get(f, "file_id"), _get(f, "file_data"), _get(f, "file_url")
        if isinstance(file_id, str) and file_id:
            return _file(file_id, "document")
        if isinstance(data, str) and data:
            return _media(data, "document") if data.startswith("data:") else _blob(data, "document", None)
        if isinstance(url, str) and url:
            return _media(url, "document")
    return _generic(p)


def _openai_content(content: object) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [_text(content)] if content else []
    if isinstance(content, (list, tuple)):
        return [_openai_part(p) for p in content]
    return [_generic(content)]


def _openai_tool_call(tc: object) -> Part:
    fn = _get(tc, "function")
    if fn is not None:
        return _tool_call(_get(tc, "id"), _get(fn, "name"), _get(fn, "arguments"))
    custom = _get(tc, "custom")  # custom tools: free-form input instead of JSON arguments
    if custom is not None:
        return _tool_call(_get(tc, "id"), _get(custom, "name"), _get(custom, "input"))
    return _generic(tc)


def _reasoning_extra(message: object) -> Any:
    """Reasoning text that compatible servers (vLLM, DeepSeek, ...) put in an extra message field."""
    extra = message if isinstance(message, Mapping) else _get(message, "model_extra")
    if not isinstance(extra, Mapping):
        return None
    return extra.get("reasoning_content") or extra.get("reasoning")


def _openai_message(m: object) -> Message:
    role = _get(m, "role")
    content = _get(m, "content")
    if not isinstance(role, str) or not role:
        return {"role": "unknown", "parts": _openai_content(content) if content is not None else [_generic(m)]}
    parts: list[Part]
    if role == "tool":
        parts = [_tool_response(_get(m, "tool_call_id"), content)]
    elif role == "function":  # legacy function result: no call id, the function's name instead
        parts = [_tool_response(None, content)]
    else:
        parts = _openai_content(content)
        if role == "assistant":
            refusal = _get(m, "refusal")
            if isinstance(refusal, str) and refusal:
                parts.append(_text(refusal))
            parts.extend(_openai_tool_call(tc) for tc in _each(_get(m, "tool_calls")))
            fc = _get(m, "function_call")
            if fc is not None:
                parts.append(_tool_call(None, _get(fc, "name"), _get(fc, "arguments")))
    message: Message = {"role": role, "parts": parts}
    name = _get(m, "name")
    if isinstance(name, str) and name:
        message["name"] = name
    return message


@_never_raises
def openai_chat_input(messages: object) -> list[Message]:
    """Chat Completions ``messages`` (system/developer messages keep their role: they are the history)."""
    if not messages:
        return []
    return [_safe_message(_openai_message, m) for m in _each(messages)]


@_never_raises
def openai_prompt_input(prompt: object) -> list[Message]:
    """Legacy Completions ``prompt``: a string, a list of strings (one message each) or token ids."""
    if not prompt:
        return []
    if isinstance(prompt, str):
        return [{"role": "user", "parts": [_text(prompt)]}]
    items = _each(prompt)
    if items and all(isinstance(t, int) for t in items):  # one prompt given as token ids
        return [{"role": "user", "parts": [{"type": "token_ids", "content": items}]}]
    out: list[Message] = []
    for p in items:
        if isinstance(p, str):
            out.append({"role": "user", "parts": [_text(p)]})
        elif isinstance(p, (list, tuple)) and all(isinstance(t, int) for t in p):
            out.append({"role": "user", "parts": [{"type": "token_ids", "content": list(p)}]})
        else:
            out.append({"role": "user", "parts": [_generic(p)]})
    return out


def _reasoning_item(item: object) -> Part:
    texts = [_get(s, "text") for s in _each(_get(item, "summary")) + _each(_get(item, "content"))]
    return {"type": "reasoning", "content": "\n".join(t for t in texts if isinstance(t, str))}


def _responses_item_part(item: object, kind: object) -> Part:
    """A non-message Responses item (input or output) as one part."""
    if kind == "function_call":
        return _tool_call(_get(item, "call_id"), _get(item, "name"), _get(item, "arguments"))
    if kind == "custom_tool_call":
        return _tool_call(_get(item, "call_id"), _get(item, "name"), _get(item, "input"))
    if kind in ("function_call_output", "custom_tool_call_output"):
        return _tool_response(_get(item, "call_id"), _get(item, "output"))
    if kind == "reasoning":
        return _reasoning_item(item)
    return _generic(item)


def _append(messages: list[Message], role: str, part: Part) -> None:
    """Consecutive items of one role (an assistant's text and its tool calls) are one message."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["parts"].append(part)
    else:
        messages.append({"role": role, "parts": [part]})


def _item_role(kind: object) -> str:
    # Items without a role: *_call items are the model's turn, *_output items the tool's.
    if isinstance(kind, str):
        if kind == "reasoning" or kind.endswith("_call"):
            return "assistant"
        if kind.endswith("_output"):
            return "tool"
    return "user"


@_never_raises
def openai_responses_input(value: object) -> list[Message]:
    """Responses ``input``: a string (one user message) or a list of items."""
    if not value:
        return []
    if isinstance(value, str):
        return [{"role": "user", "parts": [_text(value)]}]
    messages: list[Message] = []
    for item in _each(value):
        try:
            kind, role = _get(item, "type"), _get(item, "role")
            if isinstance(role, str) and role and kind in (None, "message"):
                messages.append({"role": role, "parts": _openai_content(_get(item, "content"))})
            else:
                _append(messages, _item_role(kind), _responses_item_part(item, kind))
        except Exception:
            _log.debug("llmotel: unreadable responses input item", exc_info=True)
            messages.append({"role": "unknown", "parts": [{"type": type(item).__name__}]})
    return messages


@_never_raises
def openai_chat_output(choices: object) -> list[Message]:
    """Chat Completions ``choices``: one output message per choice."""
    out: list[Message] = []
    for choice in _each(choices):
        try:
            message = _get(choice, "message")
            parts: list[Part] = []
            reasoning = _reasoning_extra(message)
            if isinstance(reasoning, str) and reasoning:
                parts.append({"type": "reasoning", "content": reasoning})
            converted = _openai_message(message) if message is not None else {"parts": []}
            parts.extend(converted["parts"])
            audio = _get(message, "audio")
            if audio is not None:
                parts.append(_blob(_get(audio, "data"), "audio", None))
            out.append(_output(_get(message, "role"), parts, _get(choice, "finish_reason")))
        except Exception:
            _log.debug("llmotel: unreadable chat choice", exc_info=True)
            out.append({"role": "assistant", "parts": [{"type": type(choice).__name__}]})
    return out


@_never_raises
def openai_completion_output(choices: object) -> list[Message]:
    """Legacy Completions ``choices``: one output message per choice."""
    return [
        _output("assistant", [_text(_get(c, "text"))], _get(c, "finish_reason")) for c in _each(choices)
    ]


@_never_raises
def openai_responses_output(items: object, finish_reason: object) -> list[Message]:
    """Responses ``output`` items: ONE output message (a response is one generation), all items' parts."""
    parts: list[Part] = []
    for item in _each(items):
        kind = _get(item, "type")
        if kind == "message":
            parts.extend(_openai_content(_get(item, "content")))
        else:
            parts.append(_responses_item_part(item, kind))
    return [_output("assistant", parts, finish_reason)] if parts else []


# ---------------------------------------------------------------------------------------------- Anthropic


def _anthropic_source(block: object, modality: str) -> Part:
    """An image or document block's ``source``: base64 -> blob, url -> uri, file -> file, text -> text."""
    source = _get(block, "source")
    kind = _get(source, "type")
    if kind == "base64":
        return _blob(_get(source, "data"), modality, _get(source, "media_type"))
    if kind == "url":
        url = _get(source, "url")
        if isinstance(url, str):
            return _media(url, modality)
    elif kind == "file":
        file_id = _get(source, "file_id")
        if isinstance(file_id, str):
            return _file(file_id, modality)
    elif kind == "text":
        return _text(_get(source, "data"))
    elif kind == "content":  # a document made of content blocks: their text when they are all text
        inner = _get(source, "content")
        text = inner if isinstance(inner, str) else _response_value(inner)
        if isinstance(text, str):
            return _text(text)
    return _generic(block)


def _anthropic_block(b: object) -> Part:
    if isinstance(b, str):
        return _text(b)
    kind = _get(b, "type")
    if kind == "text":
        return _text(_get(b, "text"))
    if kind == "image":
        return _anthropic_source(b, "image")
    if kind == "document":
        return _anthropic_source(b, "document")
    if kind == "tool_use":
        return _tool_call(_get(b, "id"), _get(b, "name"), _get(b, "input"))
    if kind == "tool_result":
        part = _tool_response(_get(b, "tool_use_id"), _get(b, "content"))
        if _get(b, "is_error") is True:
            part["is_error"] = True
        return part
    if kind in _SERVER_TOOL_USE:
        name = _get(b, "name")
        part = {"type": "server_tool_call", "name": name if isinstance(name, str) else ""}
        call_id = _get(b, "id")
        if isinstance(call_id, str) and call_id:
            part["id"] = call_id
        part["server_tool_call"] = {"type": part["name"] or str(kind), "input": _plain(_get(b, "input"))}
        return part
    if isinstance(kind, str) and kind.endswith("_tool_result"):  # web_search_tool_result, mcp_tool_result, ...
        part = {"type": "server_tool_call_response"}
        call_id = _get(b, "tool_use_id")
        if isinstance(call_id, str) and call_id:
            part["id"] = call_id
        part["server_tool_call_response"] = {"type": kind, "content": _plain(_get(b, "content"))}
        return part
    if kind == "thinking":
        return {"type": "reasoning", "content": _string(_get(b, "thinking"))}
    if kind == "redacted_thinking":  # encrypted: only its presence is worth recording
        return {"type": "redacted_thinking"}
    return _generic(b)


def _anthropic_blocks(content: object) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [_text(content)] if content else []
    return [_safe_part(_anthropic_block, b) for b in _each(content)]


@_never_raises
def anthropic_input(messages: object) -> list[Message]:
    """Messages API ``messages`` (``system`` goes to ``instructions``)."""
    if not messages:
        return []

    def convert(m: object) -> Message:
        role, content = _get(m, "role"), _get(m, "content")
        if not isinstance(role, str) or not role:
            return {"role": "unknown", "parts": _anthropic_blocks(content) if content is not None else [_generic(m)]}
        return {"role": role, "parts": _anthropic_blocks(content)}

    return [_safe_message(convert, m) for m in _each(messages)]


@_never_raises
def anthropic_output(content: object, stop_reason: object, role: object = "assistant") -> list[Message]:
    """A Message's content blocks and stop_reason: one output message (Anthropic has no choices)."""
    if content is None:
        return []
    return [_output(role, _anthropic_blocks(content), stop_reason)]


@_never_raises
def instructions(value: object) -> list[Part]:
    """System instructions given apart from the history (Anthropic ``system``, Responses ``instructions``):
    a string or a list of blocks. Only text parts and parts of another type (never a text part without text),
    as the system-instructions schema requires."""
    if not value:
        return []
    if isinstance(value, str):
        return [_text(value)]
    return [_safe_part(_anthropic_block, b) for b in _each(value)]


# ---------------------------------------------------------------------------------------------- safety + JSON


def _safe_part(convert: Any, obj: object) -> Part:
    try:
        part: Part = convert(obj)
        return part
    except Exception:
        _log.debug("llmotel: unreadable content part", exc_info=True)
        return {"type": type(obj).__name__}


def _safe_message(convert: Any, obj: object) -> Message:
    try:
        message: Message = convert(obj)
        return message
    except Exception:
        _log.debug("llmotel: unreadable message", exc_info=True)
        return {"role": "unknown", "parts": [{"type": type(obj).__name__}]}
