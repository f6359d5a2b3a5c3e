"""Anthropic client (``anthropic`` 2.x; 1.x where the methods exist): where to patch, how to read.

Covers ``messages.create`` (stream and not), the ``messages.stream()`` context-manager helper
(``text_stream``, ``get_final_message()``, early exit from the ``with`` block), ``messages.parse``,
``messages.count_tokens`` (a span without phases), the same four on ``beta.messages``, sync and async,
``with_raw_response`` / ``with_streaming_response``, and the Bedrock / Vertex clients of the same
package (they share the resource classes; their beta classes copy the functions, so they are patched
too). Retries inside the client are seen per attempt (``_attempt_request``).

No span logic here (llmotel.wrapping). Readers: ``_anthropic_read``. The SDK's own tracing:
``_anthropic_native`` (one LLM span per call, llmotel's, unless ``anthropic_sdk_spans = keep``; see
docs/anthropic.md).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import weakref
from collections.abc import Callable, Generator, Iterable
from typing import Any

import wrapt
from opentelemetry import propagate

from llmotel import _semconv as sc
from llmotel.config import Settings
from llmotel.instrument import call as call_mod
from llmotel.instrument import wrapping
from llmotel.instrument.call import ACTIVE
from llmotel.instrument.wrapping import Endpoint, LLMInstrumentor, Provider, SendHook
from llmotel.providers import _anthropic_native as native
from llmotel.providers import _anthropic_read as read
from llmotel.record import LLMRequest, LLMResponse
from llmotel.signals import region

_log = logging.getLogger(__name__)

# ---- request side ----------------------------------------------------------------------------------

# Per client: (base_url object, provider name, host, port, region, region source); parsed once per client.
_BASE: weakref.WeakKeyDictionary[Any, tuple[Any, str, str, int, str, str]] = weakref.WeakKeyDictionary()

_PROVIDER_BY_CLASS = (("Bedrock", "aws.bedrock"), ("Vertex", "gcp.vertex_ai"))


def _provider_name(client: Any) -> str:
    name = getattr(client, "_gen_ai_provider_name", None)  # 2.x clients say it themselves
    if isinstance(name, str) and name:
        return name
    cls = type(client).__name__
    for marker, provider in _PROVIDER_BY_CLASS:
        if marker in cls:
            return provider
    return read.PROVIDER


def _host_region(host: str) -> str:
    """Serving region implied by the host: Bedrock ``bedrock-runtime.<region>.amazonaws.com``, Vertex
    ``<region>-aiplatform.googleapis.com``, or a data-residency prefix (``region.from_host``)."""
    if host.endswith(".amazonaws.com"):
        parts = host.split(".")
        return parts[1] if len(parts) >= 4 and parts[0].startswith("bedrock") else ""
    if host.endswith("-aiplatform.googleapis.com"):
        return host[: -len("-aiplatform.googleapis.com")]
    return region.from_host(host)


def _base(instance: Any) -> tuple[str, str, int, str, str]:
    client = instance._client
    url = client.base_url
    cached = _BASE.get(client)
    if cached is not None and cached[0] is url:
        return cached[1:]
    host = str(url.host or "")
    port = int(url.port or (443 if url.scheme == "https" else 80))
    where = _host_region(host)
    source = sc.LLMOTEL_SERVER_REGION_SOURCE_BASE_URL if where else ""
    entry = (url, _provider_name(client), host, port, where, source)
    with contextlib.suppress(TypeError):
        _BASE[client] = entry
    return entry[1:]


def _request(
    instance: Any, kwargs: dict[str, Any], operation: str, stream: bool | None, settings: Settings
) -> LLMRequest:
    provider, host, port, where, source = _base(instance)
    req = read.read_request(
        kwargs, operation=operation, provider=provider, server_address=host, server_port=port, stream=stream
    )
    if where:
        req.region, req.region_source = where, source
    req.prefix_fingerprint, req.prefix_tokens = read.prefix_fingerprint(kwargs, settings.fingerprint_key)
    if operation == read.CHAT and settings.capture_content:
        req.input_messages_json = read.messages_json(kwargs, settings.content_max_chars)
        req.system_instructions_json = read.system_json(kwargs, settings.content_max_chars)
    return req


def read_create_request(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], settings: Settings
) -> LLMRequest:
    """``messages.create`` / ``messages.parse`` (parse never streams)."""
    return _request(instance, kwargs, read.CHAT, None, settings)


def read_stream_helper_request(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], settings: Settings
) -> LLMRequest:
    """``messages.stream()``: always a streaming chat call."""
    return _request(instance, kwargs, read.CHAT, True, settings)


def read_count_tokens_request(
    instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], settings: Settings
) -> LLMRequest:
    req = _request(instance, kwargs, read.COUNT_TOKENS, False, settings)
    req.emit_phases = False  # nothing is generated: a span without queue/prefill/first_token/decode
    return req


# ---- response side ---------------------------------------------------------------------------------


def read_message_result(result: Any, response: LLMResponse, settings: Settings) -> None:
    read.read_message(result, response)
    if settings.capture_content:
        response.output_messages_json = read.message_content_json(result, settings.content_max_chars)


def read_count_tokens_result(result: Any, response: LLMResponse, settings: Settings) -> None:
    read.read_token_count(result, response)


# The stream-event reader itself, not a forwarding function: one call less per event on the hot path.
read_event = read.read_stream_event


def _attempt_response(result: Any) -> tuple[int, Iterable[tuple[str, str]]]:
    """``_attempt_request`` returns (httpx2.Response, prepared options)."""
    response = result[0] if isinstance(result, tuple) else result
    return wrapping.read_httpx_response(response)


# ---- wiring ----------------------------------------------------------------------------------------

_MESSAGES = "anthropic.resources.messages.messages"
_MESSAGES_0X = "anthropic.resources.messages"  # 0.x: a module; since then a package re-exporting the same class
_BETA = "anthropic.resources.beta.messages.messages"
# Bedrock / Vertex beta resources copy the first-party functions at import time: patch their copies too.
_PLATFORM_BETA = ("anthropic.lib.bedrock._beta_messages", "anthropic.lib.vertex._beta_messages")


def _modules() -> tuple[str, ...]:
    """Modules defining Messages / AsyncMessages, each class listed once (wrapping one twice would nest)."""
    try:
        importlib.import_module(_MESSAGES)
        first_party = _MESSAGES
    except ImportError:
        first_party = _MESSAGES_0X
    return (first_party, _BETA, *_PLATFORM_BETA)


def _endpoints() -> tuple[Endpoint, ...]:
    eps: list[Endpoint] = []
    methods = (
        ("create", read_create_request, read_message_result, read_event),
        ("parse", read_create_request, read_message_result, read_event),
        ("count_tokens", read_count_tokens_request, read_count_tokens_result, None),
    )
    for module in _modules():
        for method, req, res, ev in methods:
            eps.append(Endpoint(module, f"Messages.{method}", req, res, ev))
            eps.append(Endpoint(module, f"AsyncMessages.{method}", req, res, ev, is_async=True))
    return tuple(eps)


def _stream_helper_endpoints() -> tuple[Endpoint, ...]:
    """``messages.stream()`` returns a context manager that sends the request on enter; these endpoints
    describe that request (patched by ``_patch_stream_helpers``, not by the generic machinery)."""
    eps: list[Endpoint] = []
    for module in _modules():
        eps.append(Endpoint(module, "Messages.stream", read_stream_helper_request, read_message_result, read_event))
        eps.append(
            Endpoint(module, "AsyncMessages.stream", read_stream_helper_request, read_message_result, read_event, True)
        )
    return tuple(eps)


def build_provider() -> Provider:
    """The anthropic client's description (its readers take the settings per call: nothing to bind here)."""
    import anthropic
    from anthropic import _response

    candidates: list[object] = [getattr(_response, "APIResponse", None), getattr(_response, "AsyncAPIResponse", None)]
    with contextlib.suppress(ImportError):  # older SDKs return a LegacyAPIResponse from with_raw_response
        candidates.append(getattr(importlib.import_module("anthropic._legacy_response"), "LegacyAPIResponse", None))
    raw_types = tuple(t for t in candidates if isinstance(t, type))
    return Provider(
        name="anthropic",
        endpoints=_endpoints(),
        send_hooks=(
            SendHook("anthropic._base_client", "SyncAPIClient._attempt_request", _attempt_response),
            SendHook("anthropic._base_client", "AsyncAPIClient._attempt_request", _attempt_response, is_async=True),
        ),
        stream_types=(anthropic.Stream,),
        async_stream_types=(anthropic.AsyncStream,),
        raw_types=raw_types,
    )


_Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


def _manager_request_attr(manager: Any) -> str | None:
    """The name-mangled ``__api_request`` attribute of a (Beta)(Async)MessageStreamManager."""
    names: dict[str, Any] = vars(manager)
    for name in names:
        if name.endswith("__api_request"):
            return name
    return None


def _stream_helper_reads_raw_stream() -> bool:
    """Whether the SDK's MessageStream iterates the raw stream it is given (1.x+). 0.x helpers re-read the
    HTTP response themselves, bypassing any proxy: there the helper is left unpatched (no span rather
    than a wrong one)."""
    try:
        from anthropic.lib.streaming import MessageStream

        return "raw_stream" in inspect.signature(MessageStream.__init__).parameters
    except Exception:
        return False


class _Deferred:
    """An awaitable that creates its coroutine only when awaited: a manager that is never entered leaves
    no extra never-awaited coroutine behind (only the SDK's own, as without llmotel)."""

    __slots__ = ("_factory",)

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory

    def __await__(self) -> Generator[Any, None, Any]:
        return self._factory().__await__()  # type: ignore[no-any-return]


def _stream_helper_wrapper(provider: Provider, ep: Endpoint, settings: Settings) -> _Wrapper:
    """Wraps ``Messages.stream``: the returned manager is the SDK's own; only the request it sends on
    ``__enter__`` is routed through the generic call wrapper, so the raw stream it wraps in a
    ``MessageStream`` is llmotel's stream proxy. ``text_stream``, ``get_final_message()`` and
    ``close()`` (early exit from ``with``) all go through that proxy. Never breaks the caller: any
    failure here returns the untouched manager."""
    core = (wrapping._async_wrapper if ep.is_async else wrapping._sync_wrapper)(provider, ep, settings)

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        try:
            attr = _manager_request_attr(manager)
            if attr is None:
                return manager
            original = getattr(manager, attr)

            def send(*_args: Any, **_kwargs: Any) -> Any:
                # The SDK built the request already (sync: a partial; async: an un-awaited coroutine).
                return original() if callable(original) else original

            if ep.is_async:
                setattr(manager, attr, _Deferred(lambda: core(send, instance, args, kwargs)))
            else:
                setattr(manager, attr, lambda: core(send, instance, args, kwargs))
        except Exception:
            _log.debug("llmotel could not instrument messages.stream()", exc_info=True)
        return manager

    return wrapper


def _build_request_wrapper(legacy_attempts: bool, tracer_hook: native.TracerHook | None = None) -> _Wrapper:
    """Wraps ``BaseClient._build_request`` (called once per HTTP attempt, right before the send).

    - Opt-in trace-context propagation for requests the caller's kwargs cannot reach (the
      ``messages.stream()`` manager built its request before the span existed). Injects into the SDK's
      freshly built request, never into the caller's arguments.
    - With the SDK's span withheld (``tracer_hook``), the SDK's own propagation: ``traceparent`` naming llmotel's
      span when the SDK would have sent one (``TracerHook.sdk_propagates``).
    - ``legacy_attempts``: on 0.x SDKs, which have no ``_attempt_request``, this is the per-attempt send hook.
    """

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        request = wrapped(*args, **kwargs)
        call = ACTIVE.get()
        if call is not None:
            try:
                if legacy_attempts:
                    call_mod.attempt_sent()
                if wrapping.propagates(call.settings.propagate_trace_context, call.request.server_address) or (
                    tracer_hook is not None and tracer_hook.sdk_propagates(instance)
                ):
                    propagate.inject(request.headers)
            except Exception:
                _log.debug("llmotel could not prepare an anthropic request", exc_info=True)
        return request

    return wrapper


def _legacy_answered_wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    """0.x SDKs: ``_process_response(response=...)`` sees the answering attempt's response (2xx only)."""
    response = kwargs.get("response")
    if response is not None and ACTIVE.get() is not None:
        try:
            status, items = wrapping.read_httpx_response(response)
            call_mod.attempt_answered(status, items)
        except Exception:
            _log.debug("llmotel could not read an anthropic response", exc_info=True)
    return wrapped(*args, **kwargs)


def _wrap(module: str, target: str, wrapper: _Wrapper, done: list[tuple[Any, str]]) -> None:
    found = wrapping._resolve(module, target)
    if found is None:
        _log.debug("llmotel: %s.%s not found; skipped", module, target)
        return
    owner, attr = found
    wrapt.wrap_function_wrapper(owner, attr, wrapper)
    done.append((owner, attr))


class AnthropicInstrumentor(LLMInstrumentor):
    """``AnthropicInstrumentor().instrument(tracer_provider=..., meter_provider=..., **llmotel_options)``.

    While instrumented, the SDK's own per-call span is withheld for the calls llmotel traces, unless the setting
    ``anthropic_sdk_spans`` is ``keep`` (see ``_anthropic_native``); ``uninstrument()`` restores every patched
    function.
    """

    dependencies = ("anthropic >= 0.40",)
    _extra: list[tuple[Any, str]] = []  # noqa: RUF012 - replaced per instance in _instrument
    _tracer_hook: native.TracerHook | None = None

    def provider(self, settings: Settings) -> Provider:
        return build_provider()

    def _instrument(self, **kwargs: Any) -> None:
        super()._instrument(**kwargs)
        settings = self.settings
        done: list[tuple[Any, str]] = []
        hook: native.TracerHook | None = None
        try:
            provider = build_provider()
            if _stream_helper_reads_raw_stream() and settings is not None:
                for ep in _stream_helper_endpoints():
                    _wrap(ep.module, ep.target, _stream_helper_wrapper(provider, ep, settings), done)
            if settings is None or settings.anthropic_sdk_spans != native.KEEP:
                hook = native.TracerHook()
                if not hook.install():
                    hook = None
                target = native.patch_target()
                if target is not None:
                    _wrap(*target, native.start_api_call_span_wrapper, done)
            legacy = wrapping._resolve("anthropic._base_client", "SyncAPIClient._attempt_request") is None
            _wrap("anthropic._base_client", "BaseClient._build_request", _build_request_wrapper(legacy, hook), done)
            if legacy:
                for cls in ("SyncAPIClient", "AsyncAPIClient"):
                    _wrap("anthropic._base_client", f"{cls}._process_response", _legacy_answered_wrapper, done)
        except Exception:
            _log.debug("llmotel could not patch the anthropic helpers", exc_info=True)
        self._extra = done
        self._tracer_hook = hook

    def _uninstrument(self, **kwargs: Any) -> None:
        for owner, attr in self._extra:
            wrapping.unwrap_ours(owner, attr)  # another instrumentation's later wrapper stays in place
        self._extra = []
        if self._tracer_hook is not None:
            self._tracer_hook.uninstall()
            self._tracer_hook = None
        super()._uninstrument(**kwargs)
