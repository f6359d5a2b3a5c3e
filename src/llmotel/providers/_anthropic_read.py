"""Pure readers for the Anthropic Messages API: caller kwargs, Message bodies, stream events, headers.

No patching and no spans here (providers/anthropic.py patches, telemetry/spans.py emits). Every reader accepts
both the SDK's pydantic models and plain decoded JSON (``with_raw_response`` bodies, 1.x SDKs, or
fields the installed SDK does not model), and never raises: a malformed body yields fewer fields,
never an exception in the caller's code path.

Token meaning (the GenAI convention, not the API's): the API's ``usage.input_tokens`` EXCLUDES
cache reads and cache writes, so ``Usage.input_tokens`` is the sum of the three.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from llmotel import _semconv as sc
from llmotel import content
from llmotel.record import LLMRequest, LLMResponse, Usage
from llmotel.signals import fingerprint

log = logging.getLogger(__name__)
_MISSING: Any = object()

PROVIDER = "anthropic"
CHAT = "chat"
COUNT_TOKENS = "count_tokens"

# stop_reason values that mean "the answer was cut short, not finished" (HTTP 200 nonetheless).
TRUNCATING_STOP_REASONS = frozenset({"max_tokens", "model_context_window_exceeded"})
# Content blocks that are the model asking for a tool call.
_TOOL_USE_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
# Stream deltas that carry generated output; the first one ends the first-token phase.
_CONTENT_DELTAS = frozenset({"text_delta", "thinking_delta", "input_json_delta", "citations_delta"})


def field(obj: object, name: str) -> Any:
    """``obj.name`` for a model, ``obj[name]`` for a mapping, else None. Never raises."""
    if type(obj) is dict:
        return obj.get(name)
    try:
        value = getattr(obj, name, _MISSING)
        if value is not _MISSING:
            return value
        if isinstance(obj, Mapping):
            return obj.get(name)
    except Exception:
        pass
    return None


def _int(value: object) -> int | None:
    # bool is an int subclass; a boolean token count is a malformed body, not 1. So is a count outside
    # [0, 2**63): negative counts break histograms, larger ones do not fit OTLP's int64.
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63 else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------------------------------------- request


def system_parts(system: object) -> list[str]:
    """The text of ``system``: a string, or a list of text blocks (dicts or models). Never raises."""
    if isinstance(system, str):
        return [system] if system else []
    parts: list[str] = []
    if isinstance(system, (list, tuple)):
        for block in system:
            text = field(block, "text")
            if isinstance(text, str):
                parts.append(text)
    return parts


def prefix_fingerprint(kwargs: Mapping[str, Any], key: bytes) -> tuple[str, int]:
    """(fingerprint keyed with ``key``, approximate tokens) of the cacheable prefix: system text + tool definitions.

    The API caches tools, then system, then messages; a change to either changes the fingerprint,
    messages never do. ("", 0) when the request has neither. Never raises.
    """
    system = kwargs.get("system")
    tools = kwargs.get("tools")
    if not system and not tools:
        return "", 0
    return fingerprint.prefix(system_parts(system), _plain(tools) if tools else None, key)


def _plain(value: object) -> object:
    """Tool and system params may be TypedDicts, lists, iterables or pydantic models; make them JSON-able."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def read_request(
    kwargs: Mapping[str, Any],
    *,
    operation: str = CHAT,
    provider: str = PROVIDER,
    server_address: str = "",
    server_port: int = 0,
    stream: bool | None = None,
) -> LLMRequest:
    """The request as the caller wrote it (never mutated). ``stream`` overrides ``kwargs["stream"]``
    (the ``messages.stream()`` helper always streams). Never raises."""
    request = LLMRequest(provider=provider, operation=operation, request_model="")
    try:
        request.request_model = _str(kwargs.get("model"))
        request.server_address = server_address
        request.server_port = server_port
        request.stream = bool(kwargs.get("stream")) if stream is None else stream
        if operation == CHAT:
            max_tokens = kwargs.get("max_tokens")
            request.max_tokens = _int(max_tokens)
            temperature = kwargs.get("temperature")
            if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
                request.temperature = float(temperature)
        # metadata.user_id is Anthropic's per-end-user id (used as tenant only when configured).
        request.user = _str(field(kwargs.get("metadata"), "user_id"))
    except Exception:
        log.debug("anthropic: cannot read request", exc_info=True)
    return request


def messages_json(kwargs: Mapping[str, Any], limit: int) -> str:
    """``messages`` as GenAI input-messages JSON, capped at ``limit``; for opt-in content capture only. Never
    raises."""
    try:
        return content.to_json(content.anthropic_input(kwargs.get("messages")), limit)
    except Exception:
        return ""


def system_json(kwargs: Mapping[str, Any], limit: int) -> str:
    """``system`` as GenAI system-instructions JSON, capped at ``limit``; for opt-in content capture only. Never
    raises."""
    try:
        return content.to_json(content.instructions(kwargs.get("system")), limit)
    except Exception:
        return ""


# ---------------------------------------------------------------------------------------------- response


def apply_usage(usage_obj: object, usage: Usage) -> None:
    """Copy an API usage object (Usage, MessageDeltaUsage or dict) onto ``usage``, overwriting.

    API counts are cumulative (``message_delta`` repeats totals, it never sends increments), so
    overwrite is the only correct merge: adding would double count. A field the object lacks keeps
    its previous value. ``input_tokens`` is recomputed as uncached + cache read + cache write.
    Never raises.
    """
    if usage_obj is None:
        return
    try:
        previous_uncached = (
            None
            if usage.input_tokens is None
            else usage.input_tokens - (usage.cache_read_tokens or 0) - (usage.cache_write_tokens or 0)
        )
        uncached = _int(field(usage_obj, "input_tokens"))
        cache_read = _int(field(usage_obj, "cache_read_input_tokens"))
        cache_write = _int(field(usage_obj, "cache_creation_input_tokens"))
        if cache_read is not None:
            usage.cache_read_tokens = cache_read
        if cache_write is not None:
            usage.cache_write_tokens = cache_write
        base = uncached if uncached is not None else previous_uncached
        if base is not None:
            usage.input_tokens = base + (usage.cache_read_tokens or 0) + (usage.cache_write_tokens or 0)
        split = field(usage_obj, "cache_creation")
        if split is not None:
            five = _int(field(split, "ephemeral_5m_input_tokens"))
            hour = _int(field(split, "ephemeral_1h_input_tokens"))
            if five is not None:
                usage.cache_write_5m_tokens = five
            if hour is not None:
                usage.cache_write_1h_tokens = hour
        output = _int(field(usage_obj, "output_tokens"))
        if output is not None:
            usage.output_tokens = output
        thinking = _int(field(field(usage_obj, "output_tokens_details"), "thinking_tokens"))
        if thinking is not None:
            usage.reasoning_tokens = thinking
    except Exception:
        log.debug("anthropic: malformed usage", exc_info=True)


def apply_usage_extras(usage_obj: object, response: LLMResponse) -> None:
    """``usage.inference_geo`` is the serving region. Never raises.

    ``usage.service_tier`` is deliberately not copied: the only service-tier attribute in the registry is
    OpenAI's (``gen_ai.openai.response.service_tier``), and an Anthropic value under that name would mislead.
    """
    geo = _str(field(usage_obj, "inference_geo"))
    if geo:
        response.region = geo
        response.region_source = sc.LLMOTEL_SERVER_REGION_SOURCE_USAGE


def apply_stop_reason(stop_reason: object, response: LLMResponse) -> None:
    reason = _str(stop_reason)
    if reason:
        response.finish_reasons = [reason]
        response.truncated = reason in TRUNCATING_STOP_REASONS


def read_message(message: object, response: LLMResponse | None = None) -> LLMResponse:
    """Fill ``response`` (or a new one) from a Message / BetaMessage / ParsedMessage or its JSON. Never raises."""
    out = response if response is not None else LLMResponse()
    try:
        out.response_id = _str(field(message, "id")) or out.response_id
        out.response_model = _str(field(message, "model")) or out.response_model
        apply_stop_reason(field(message, "stop_reason"), out)
        usage_obj = field(message, "usage")
        apply_usage(usage_obj, out.usage)
        apply_usage_extras(usage_obj, out)
        content = field(message, "content")
        if isinstance(content, (list, tuple)):
            for block in content:
                if field(block, "type") in _TOOL_USE_BLOCKS:
                    name = _str(field(block, "name"))
                    if name:
                        out.tool_names.append(name)
    except Exception:
        log.debug("anthropic: malformed message", exc_info=True)
    return out


def read_token_count(body: object, response: LLMResponse | None = None) -> LLMResponse:
    """``messages.count_tokens`` answers ``{"input_tokens": N}`` (cache-inclusive by construction). Never raises."""
    out = response if response is not None else LLMResponse()
    count = _int(field(body, "input_tokens"))
    if count is not None:
        out.usage.input_tokens = count
    return out


def message_content_json(message: object, limit: int) -> str:
    """The Message (content blocks + stop_reason) as GenAI output-messages JSON, capped at ``limit``; for opt-in
    content capture only. Never raises."""
    return content.to_json(
        content.anthropic_output(field(message, "content"), field(message, "stop_reason"), field(message, "role")),
        limit,
    )


# ---------------------------------------------------------------------------------------------- stream


def read_stream_event(event: object, response: LLMResponse) -> bool:
    """Fold one raw stream event (``RawMessageStreamEvent`` model or decoded dict) into ``response``.

    Hot path: O(1), no allocation for the common ``content_block_delta``. Returns whether the event
    carries generated content (text, thinking, tool-input JSON or citations), so the first True marks
    the first token; ``message_start``, ``ping`` and block starts/stops never count. Usage:
    ``message_start`` carries input + cache counts (its output count is a placeholder and is dropped),
    ``message_delta`` carries the final cumulative output count and may repeat the cumulative input
    counts; both are applied by overwrite, never added. A stream cut before ``message_delta`` leaves
    ``usage.output_tokens`` None (the caller estimates it from content chunks). Never raises.
    """
    if type(event) is not dict:
        # Fast path for what the SDK's Stream yields (models) and the bulk of a stream: one delta.
        try:
            if event.type == "content_block_delta":  # type: ignore[attr-defined]
                # signature_delta and unknown deltas are not generated tokens.
                return event.delta.type in _CONTENT_DELTAS  # type: ignore[attr-defined]
        except AttributeError:
            pass
    return _read_other_event(event, response)


def _read_other_event(event: object, response: LLMResponse) -> bool:
    try:
        kind = field(event, "type")
        if kind == "content_block_delta":
            return field(field(event, "delta"), "type") in _CONTENT_DELTAS
        if kind == "message_delta":
            apply_stop_reason(field(field(event, "delta"), "stop_reason"), response)
            apply_usage(field(event, "usage"), response.usage)
        elif kind == "content_block_start":
            block = field(event, "content_block")
            if field(block, "type") in _TOOL_USE_BLOCKS:
                name = _str(field(block, "name"))
                if name:
                    response.tool_names.append(name)
        elif kind == "message_start":
            message = field(event, "message")
            response.response_id = _str(field(message, "id")) or response.response_id
            response.response_model = _str(field(message, "model")) or response.response_model
            usage_obj = field(message, "usage")
            apply_usage(usage_obj, response.usage)
            # message_start's output_tokens is a placeholder (typically 1); only message_delta's is final.
            response.usage.output_tokens = None
            apply_usage_extras(usage_obj, response)
    except Exception:
        log.debug("anthropic: malformed stream event", exc_info=True)
    return False
