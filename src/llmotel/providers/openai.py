"""OpenAI client (``openai`` 1.x-3.x): where to patch and how to read its requests, bodies and chunks.

Covers chat.completions (create / parse / the .stream() helper, which goes through create),
responses (create / parse / .stream()), completions.create, embeddings.create, sync and async,
with_raw_response / with_streaming_response, and the client's retries (per-attempt send hook).
Azure and OpenAI-compatible servers (vLLM, TGI, llama.cpp, SGLang) use the same path;
``gen_ai.provider.name`` is chosen from the base URL. No span logic here (see llmotel.wrapping).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable
from typing import Any

from llmotel import _semconv as sc
from llmotel import content
from llmotel.config import Settings
from llmotel.instrument.call import EventReader
from llmotel.instrument.wrapping import Endpoint, LLMInstrumentor, Provider, SendHook, read_httpx_response
from llmotel.phases import server_timing
from llmotel.record import LLMRequest, LLMResponse, Usage
from llmotel.signals import fingerprint, region

# Hosts (suffixes) and URL hints -> gen_ai.provider.name. One entry per server family.
_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("openai.azure.com", "azure.ai.openai"),
    ("cognitiveservices.azure.com", "azure.ai.openai"),
    ("services.ai.azure.com", "azure.ai.openai"),
    ("api.openai.com", "openai"),
)
_URL_HINTS: tuple[tuple[str, str], ...] = (
    ("vllm", "vllm"),
    ("tgi", "tgi"),
    ("text-generation-inference", "tgi"),
    ("llama", "llama_cpp"),
    ("sglang", "sglang"),
)


def _provider_name(host: str, url: str) -> str:
    for suffix, name in _HOST_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return name
    lowered = url.lower()
    for hint, name in _URL_HINTS:
        if hint in lowered:
            return name
    return "openai"


_AZURE_CLIENTS = frozenset({"AzureOpenAI", "AsyncAzureOpenAI"})
# Per client: (base_url object, provider, host, port, region) so the URL is parsed once, not per call.
_BASE: weakref.WeakKeyDictionary[Any, tuple[Any, str, str, int, str]] = weakref.WeakKeyDictionary()


def _base(instance: Any) -> tuple[str, str, int, str]:
    client = instance._client
    url = client.base_url
    cached = _BASE.get(client)
    if cached is not None and cached[0] is url:
        return cached[1:]
    host = str(url.host or "")
    port = url.port or (443 if url.scheme == "https" else 80)
    name = "azure.ai.openai" if type(client).__name__ in _AZURE_CLIENTS else _provider_name(host, str(url))
    entry = (url, name, host, int(port), region.from_host(host))
    with contextlib.suppress(TypeError):
        _BASE[client] = entry
    return entry[1:]


def _given(value: Any) -> bool:
    # openai's NOT_GIVEN / omit sentinels are falsy objects of their own classes; None means "not set" too.
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def _int(value: Any) -> int | None:
    # A count outside [0, 2**63) is a malformed body: negative counts break histograms, larger ones OTLP's int64.
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63 else None


def _text_parts(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]


def _usage_requested(options: Any) -> bool:
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _read_messages(messages: Any, chaining: bool) -> tuple[list[str], int, list[tuple[int, int]]]:
    """(the system and developer messages' texts, the characters of every message's text parts, and where
    ``chaining``, (hash, characters so far) at the end of each message). The hashes are Python's own (per process,
    salted) of each message's role and text, chained; kept in memory only, never exported. A message that is not a
    dict is not read: its text is not counted and the chain stops before it."""
    system: list[str] = []
    chars = 0
    chain: list[tuple[int, int]] = []
    if not isinstance(messages, (list, tuple)):
        return system, chars, chain
    h = 0
    for m in messages:
        if not isinstance(m, dict):
            chaining = False
            continue
        role = m.get("role")
        content = m.get("content")
        if isinstance(content, str):  # the common case: no generator; the string caches its own hash
            chars += len(content)
            if role in ("system", "developer"):
                system.append(content)
        else:
            texts = tuple(_text_parts(content))
            chars += sum(map(len, texts))
            if role in ("system", "developer"):
                system.extend(texts)
            content = texts
        if chaining:
            h = hash((h, role, content))
            chain.append((h, chars))
    return system, chars, chain


def _prefixes(chain: list[tuple[int, int]], tools: str) -> tuple[tuple[int, int], ...]:
    """The chain of ``_read_messages`` with the tools' fingerprint mixed in (they render ahead of the messages)."""
    if tools:
        return tuple((hash((tools, h)), n) for h, n in chain)
    return tuple(chain)


def prompt_prefixes(messages: Any, tools_fingerprint: str = "") -> tuple[tuple[int, int], ...]:
    """The prefixes ``read_chat_request`` gives a stream without usage (bench/real records them for its replays)."""
    return _prefixes(_read_messages(messages, True)[2], tools_fingerprint)


def _request(
    operation: str, instance: Any, kwargs: dict[str, Any], system: list[str], tools: Any, settings: Settings
) -> LLMRequest:
    provider, host, port, where = _base(instance)
    model = kwargs.get("model")
    max_tokens = kwargs.get("max_completion_tokens")
    if not _given(max_tokens):
        max_tokens = kwargs.get("max_tokens")
    if not _given(max_tokens):
        max_tokens = kwargs.get("max_output_tokens")
    temperature = kwargs.get("temperature")
    user = kwargs.get("user")
    if not _given(user):
        user = kwargs.get("safety_identifier")
    req = LLMRequest(
        provider=provider,
        operation=operation,
        request_model=model if isinstance(model, str) else "",
        server_address=host,
        server_port=port,
        stream=kwargs.get("stream") is True,
        max_tokens=_int(max_tokens),
        temperature=float(temperature) if isinstance(temperature, (int, float)) and _given(temperature) else None,
        user=user if isinstance(user, str) else "",
    )
    if where:
        req.region, req.region_source = where, sc.LLMOTEL_SERVER_REGION_SOURCE_BASE_URL
    if system or (_given(tools) and tools):
        req.prefix_fingerprint, req.prefix_tokens = fingerprint.prefix(
            system, tools if _given(tools) else None, settings.fingerprint_key
        )
    return req


# ---- chat.completions ---------------------------------------------------------------------------


def read_chat_request(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], settings: Settings
) -> LLMRequest:
    messages = kwargs.get("messages")
    # No usage will come, so no cached-token count either: the phase model guesses the cache from the prompts this
    # process sent before (phases/prefix_book.py), by the prompt's prefix hashes, made in the same pass.
    chaining = kwargs.get("stream") is True and not _usage_requested(kwargs.get("stream_options"))
    system, chars, chain = _read_messages(messages, chaining)
    tools = kwargs.get("tools")
    req = _request("chat", instance, kwargs, system, tools, settings)
    req.prompt_chars = chars
    if chain:
        req.prompt_prefixes = _prefixes(chain, req.prefix_fingerprint if _given(tools) and tools else "")
    if settings.capture_content:
        req.input_messages_json = content.to_json(content.openai_chat_input(messages), settings.content_max_chars)
    return req


def _body_timing(obj: Any, response: LLMResponse, undeclared_metadata: bool = False) -> None:
    """Server timing objects of a body or a final chunk, by reference (no copy): the top-level extras named in
    ``server_timing.BODY_KEYS`` (``timings``, ``metrics``, ``meta_info``, ``time_info``, ``x_groq``, ...) and
    the usage object's undeclared keys (Groq's ``queue_time``...). Only called on bodies and final chunks.
    ``undeclared_metadata``: ``obj`` is of a model that may lack the ``metadata`` field (chunks, legacy completions)."""
    extra = getattr(obj, "model_extra", None)
    if extra:
        for key in server_timing.BODY_KEYS:
            value = extra.get(key)
            if isinstance(value, dict):
                response.body_timing[key] = value
    usage = getattr(obj, "usage", None)
    if usage is not None:
        usage_extra = getattr(usage, "model_extra", None)
        if usage_extra:
            response.body_timing[server_timing.USAGE_KEY] = usage_extra
    # SGLang's weight_version rides in ``metadata``, a declared field of newer openai types (not an extra). Chunk
    # models have no such field: ``getattr`` would take pydantic's path for a missing attribute (its ``__getattr__``
    # raises and catches an AttributeError, ~4 µs, most of a stream's last chunk) to return the extra of that name,
    # which is one of ``BODY_KEYS`` and was read above.
    if undeclared_metadata and _metadata_is_extra(type(obj)):
        return
    metadata = getattr(obj, server_timing.METADATA_KEY, None)
    if isinstance(metadata, dict) and metadata:
        response.body_timing[server_timing.METADATA_KEY] = metadata


# Per class: a pydantic model without a ``metadata`` field or class attribute whose missing attributes go to
# pydantic's own ``__getattr__`` (the extras, else AttributeError): its ``metadata`` can only be an extra.
_METADATA_IS_EXTRA: dict[type, bool] = {}


def _metadata_is_extra(cls: type) -> bool:
    known = _METADATA_IS_EXTRA.get(cls)
    if known is None:
        known = False
        with contextlib.suppress(Exception):
            import pydantic

            base_hook = vars(pydantic.BaseModel).get("__getattr__")
            mro = cls.__mro__
            hook = next((vars(k)["__getattr__"] for k in mro if "__getattr__" in vars(k)), None)
            fields = getattr(cls, "__pydantic_fields__", None)
            known = (
                base_hook is not None
                and hook is base_hook
                and isinstance(fields, dict)
                and server_timing.METADATA_KEY not in fields
                and not any(server_timing.METADATA_KEY in vars(k) for k in mro)
            )
        _METADATA_IS_EXTRA[cls] = known
    return known


def _usage(input_tokens: Any, output_tokens: Any, in_details: Any, out_details: Any) -> Usage:
    """Chat and Responses report the same counts under different names; OpenAI's input count includes cache reads."""
    u = Usage(input_tokens=_int(input_tokens), output_tokens=_int(output_tokens))
    if in_details is not None:
        u.cache_read_tokens = _int(getattr(in_details, "cached_tokens", None))
    if out_details is not None:
        u.reasoning_tokens = _int(getattr(out_details, "reasoning_tokens", None))
    return u


def _chat_usage(usage: Any, response: LLMResponse) -> None:
    response.usage = _usage(
        usage.prompt_tokens,
        usage.completion_tokens,
        getattr(usage, "prompt_tokens_details", None),
        getattr(usage, "completion_tokens_details", None),
    )


def _common(obj: Any, response: LLMResponse) -> None:
    response.response_id = getattr(obj, "id", None) or ""
    response.response_model = getattr(obj, "model", None) or ""
    response.system_fingerprint = getattr(obj, "system_fingerprint", None) or ""
    tier = getattr(obj, "service_tier", None)
    response.service_tier = tier if isinstance(tier, str) else ""


def _finish_reason(reason: Any, response: LLMResponse) -> None:
    if reason:
        response.finish_reasons.append(str(reason))
        if reason == "length":
            response.truncated = True


def read_chat_result(result: Any, response: LLMResponse, settings: Settings) -> None:
    _common(result, response)
    for choice in result.choices or ():
        _finish_reason(choice.finish_reason, response)
        message = choice.message
        for tc in getattr(message, "tool_calls", None) or ():
            fn = getattr(tc, "function", None)
            if fn is not None and fn.name:
                response.tool_names.append(fn.name)
    if result.usage is not None:
        _chat_usage(result.usage, response)
    _body_timing(result, response)
    if settings.capture_content:
        response.output_messages_json = content.to_json(
            content.openai_chat_output(result.choices), settings.content_max_chars
        )


def _other_content(delta: Any) -> bool:
    """Refusal text, or reasoning text that compatible servers stream as an extra delta field."""
    if getattr(delta, "refusal", None):
        return True
    extra = delta.model_extra
    return bool(extra and (extra.get("reasoning_content") or extra.get("reasoning")))


def read_chat_chunk(chunk: Any, response: LLMResponse) -> bool:
    """Hot path: one chat.completion.chunk. True if it carries content or a tool-call delta.

    The bulk of a stream is one kind of chunk: after the first (``response_id`` read), exactly one choice whose delta
    has text and no tool calls, no finish reason, no usage. That one is recognised from the models' field dicts (the
    SDK's pydantic models define ``__getattr__``, so no attribute read of theirs is specialised by the interpreter;
    a field dict read costs about what one attribute read does, and each gives two fields). Anything else (the first
    and the last chunk, tool calls, refusal and reasoning deltas, usage chunks, a model without these fields) takes
    the general path, ``_read_chat_chunk``, which reads everything as before."""
    if response.response_id:
        try:
            fields = chunk.__dict__
            (choice,) = fields["choices"]
            if fields["usage"] is None:
                choice = choice.__dict__
                if not choice["finish_reason"]:
                    delta = choice["delta"].__dict__
                    if delta["content"] and not delta["tool_calls"]:
                        return True
        except (AttributeError, KeyError, TypeError, ValueError):  # not the shape above: the general path
            pass
    return _read_chat_chunk(chunk, response)


def _read_chat_chunk(chunk: Any, response: LLMResponse) -> bool:
    """Every chat.completion.chunk (``read_chat_chunk`` takes the common text chunk's shortcut first)."""
    if not response.response_id:
        _common(chunk, response)
    content = False
    choices = chunk.choices
    if choices:
        for choice in choices:
            delta = choice.delta
            if delta is not None:
                if delta.content or _other_content(delta):
                    content = True
                tool_calls = delta.tool_calls
                if tool_calls:
                    content = True
                    for tc in tool_calls:
                        fn = tc.function
                        if fn is not None and fn.name:
                            response.tool_names.append(fn.name)
            if choice.finish_reason:
                _finish_reason(choice.finish_reason, response)
                _body_timing(chunk, response, True)
    else:
        _body_timing(chunk, response, True)
    if chunk.usage is not None:
        _chat_usage(chunk.usage, response)
    return content


# ---- completions (legacy) -----------------------------------------------------------------------


def read_completion_request(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], settings: Settings
) -> LLMRequest:
    req = _request("text_completion", instance, kwargs, [], None, settings)
    if settings.capture_content:
        req.input_messages_json = content.to_json(
            content.openai_prompt_input(kwargs.get("prompt")), settings.content_max_chars
        )
    return req


def read_completion_result(result: Any, response: LLMResponse, settings: Settings) -> None:
    _common(result, response)
    for choice in result.choices or ():
        _finish_reason(choice.finish_reason, response)
    if result.usage is not None:
        _chat_usage(result.usage, response)
    _body_timing(result, response, True)
    if settings.capture_content:
        response.output_messages_json = content.to_json(
            content.openai_completion_output(result.choices), settings.content_max_chars
        )


def read_completion_chunk(chunk: Any, response: LLMResponse) -> bool:
    if not response.response_id:
        _common(chunk, response)
    content = False
    choices = chunk.choices
    if choices:
        for choice in choices:
            if choice.text:
                content = True
            if choice.finish_reason:
                _finish_reason(choice.finish_reason, response)
                _body_timing(chunk, response, True)
    else:  # the final usage chunk (vLLM puts its metrics there)
        _body_timing(chunk, response, True)
    if chunk.usage is not None:
        _chat_usage(chunk.usage, response)
    return content


# ---- embeddings ---------------------------------------------------------------------------------


def read_embeddings_request(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], settings: Settings
) -> LLMRequest:
    return _request("embeddings", instance, kwargs, [], None, settings)


def read_embeddings_result(result: Any, response: LLMResponse, settings: Settings) -> None:
    response.response_model = getattr(result, "model", None) or ""
    usage = getattr(result, "usage", None)
    if usage is not None:
        response.usage = Usage(input_tokens=_int(usage.prompt_tokens))


# ---- responses ----------------------------------------------------------------------------------


def read_responses_request(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], settings: Settings
) -> LLMRequest:
    instructions = kwargs.get("instructions")
    system = [instructions] if isinstance(instructions, str) else []
    items = kwargs.get("input")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and item.get("role") in ("system", "developer"):
                system.extend(_text_parts(item.get("content")))
    req = _request("chat", instance, kwargs, system, kwargs.get("tools"), settings)
    if settings.capture_content:
        limit = settings.content_max_chars
        req.input_messages_json = content.to_json(
            content.openai_responses_input(items if _given(items) else None), limit
        )
        req.system_instructions_json = content.to_json(
            content.instructions(instructions if _given(instructions) else None), limit
        )
    return req


def read_responses_result(result: Any, response: LLMResponse, settings: Settings) -> None:
    response.response_id = getattr(result, "id", None) or ""
    response.response_model = getattr(result, "model", None) or ""
    tier = getattr(result, "service_tier", None)
    response.service_tier = tier if isinstance(tier, str) else ""
    status = getattr(result, "status", None)
    incomplete = getattr(result, "incomplete_details", None)
    reason = getattr(incomplete, "reason", None) if incomplete is not None else None
    if reason == "max_output_tokens":
        response.finish_reasons = ["length"]
        response.truncated = True
    elif status:
        response.finish_reasons = ["stop" if status == "completed" else str(reason or status)]
    response.tool_names = [
        item.name for item in getattr(result, "output", None) or () if getattr(item, "type", "") == "function_call"
    ]
    usage = getattr(result, "usage", None)
    if usage is not None:
        response.usage = _usage(
            usage.input_tokens,
            usage.output_tokens,
            getattr(usage, "input_tokens_details", None),
            getattr(usage, "output_tokens_details", None),
        )
    _body_timing(result, response)
    if settings.capture_content:  # also reached once per stream, from its final event
        finish = response.finish_reasons[0] if response.finish_reasons else None
        response.output_messages_json = content.to_json(
            content.openai_responses_output(getattr(result, "output", None), finish), settings.content_max_chars
        )


_CONTENT_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.audio.delta",
    }
)
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def responses_event_reader(settings: Settings) -> EventReader:
    """The Responses stream-event reader under ``settings``, built once per instrumentor: the final event
    carries the whole result, read with the content setting, while every other event stays free of settings."""

    def read_responses_event(event: Any, response: LLMResponse) -> bool:
        kind = event.type
        if kind in _CONTENT_EVENTS:
            return True
        if kind in _FINAL_EVENTS:
            read_responses_result(event.response, response, settings)
        elif kind == "response.created":
            response.response_id = event.response.id or ""
            response.response_model = event.response.model or ""
        return False

    return read_responses_event


# ---- wiring -------------------------------------------------------------------------------------

_CHAT = "openai.resources.chat.completions.completions"
_RESPONSES = "openai.resources.responses.responses"
_COMPLETIONS = "openai.resources.completions"
_EMBEDDINGS = "openai.resources.embeddings"


def _endpoints(settings: Settings) -> tuple[Endpoint, ...]:
    eps: list[Endpoint] = []
    table = (
        (_CHAT, "Completions", ("create", "parse"), read_chat_request, read_chat_result, read_chat_chunk),
        (_RESPONSES, "Responses", ("create", "parse"), read_responses_request, read_responses_result,
         responses_event_reader(settings)),
        (_COMPLETIONS, "Completions", ("create",), read_completion_request, read_completion_result,
         read_completion_chunk),
        (_EMBEDDINGS, "Embeddings", ("create",), read_embeddings_request, read_embeddings_result, None),
    )
    for module, cls, methods, req, res, ev in table:
        for method in methods:
            eps.append(Endpoint(module, f"{cls}.{method}", req, res, ev))
            eps.append(Endpoint(module, f"Async{cls}.{method}", req, res, ev, is_async=True))
    return tuple(eps)


def _send_hooks() -> tuple[SendHook, ...]:
    from openai import _base_client

    base = "openai._base_client"
    if hasattr(_base_client.SyncAPIClient, "_send_request"):  # openai >= 3
        return (
            SendHook(base, "SyncAPIClient._send_request", read_httpx_response),
            SendHook(base, "AsyncAPIClient._send_request", read_httpx_response, is_async=True),
        )
    # openai 1.x / 2.x: attempts are built by _build_request; the answering response reaches _process_response.
    return (
        SendHook(base, "SyncAPIClient._build_request", read_httpx_response, kind="build"),
        SendHook(base, "AsyncAPIClient._build_request", read_httpx_response, kind="build"),
        SendHook(base, "SyncAPIClient._process_response", read_httpx_response, kind="process"),
        SendHook(base, "AsyncAPIClient._process_response", read_httpx_response, is_async=True, kind="process"),
    )


def build_provider(settings: Settings) -> Provider:
    """The openai client's description; the Responses event reader is bound to ``settings`` here."""
    import openai
    from openai import _legacy_response, _response

    raw_types: tuple[type, ...] = tuple(
        t
        for t in (
            getattr(_legacy_response, "LegacyAPIResponse", None),
            getattr(_response, "APIResponse", None),
            getattr(_response, "AsyncAPIResponse", None),
        )
        if isinstance(t, type)
    )
    return Provider(
        name="openai",
        endpoints=_endpoints(settings),
        send_hooks=_send_hooks(),
        stream_types=(openai.Stream,),
        async_stream_types=(openai.AsyncStream,),
        raw_types=raw_types,
        helper_closers=(
            ("openai.lib.streaming.chat._completions", "ChatCompletionStream.close", False),
            ("openai.lib.streaming.chat._completions", "AsyncChatCompletionStream.close", True),
            ("openai.lib.streaming.responses._responses", "ResponseStream.close", False),
            ("openai.lib.streaming.responses._responses", "AsyncResponseStream.close", True),
        ),
    )


class OpenAIInstrumentor(LLMInstrumentor):
    """``OpenAIInstrumentor().instrument(tracer_provider=..., meter_provider=..., **llmotel_options)``."""

    dependencies = ("openai >= 1.63",)

    def provider(self, settings: Settings) -> Provider:
        return build_provider(settings)
