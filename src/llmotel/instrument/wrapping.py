"""Provider-agnostic patching: how a client library plugs into llmotel.

A provider module (``llmotel/providers/<x>.py``) builds no spans. It describes its client library with
a ``Provider`` and subclasses ``LLMInstrumentor``::

    class AcmeInstrumentor(LLMInstrumentor):
        dependencies = ("acme >= 1.0",)

        def provider(self) -> Provider:          # called at instrument() time; import the library here
            import acme
            return Provider(
                name="acme",
                endpoints=(
                    Endpoint("acme.resources.chat", "Chat.create", read_chat_request, read_chat_result,
                             read_chat_event),
                    Endpoint("acme.resources.chat", "AsyncChat.create", read_chat_request, read_chat_result,
                             read_chat_event, is_async=True),
                ),
                send_hooks=(SendHook("acme._base_client", "SyncAPIClient._send_request", read_httpx_response),
                            SendHook("acme._base_client", "AsyncAPIClient._send_request", read_httpx_response,
                                     is_async=True)),
                stream_types=(acme.Stream,), async_stream_types=(acme.AsyncStream,),
                raw_types=(acme._legacy_response.LegacyAPIResponse, acme._response.APIResponse, ...),
            )

What the provider supplies:
- Patch points (``Endpoint``): module + ``"Class.method"``; sync or async. Each call to one becomes one
  CLIENT span. Missing attributes (older library versions) are skipped.
- Request reader ``(instance, args, kwargs, settings) -> LLMRequest``: provider name (by base URL for compatible
  servers), operation, model, stream flag, server address/port, max_tokens, temperature, region from
  the base URL (``region.from_host``), prefix fingerprint (``fingerprint.prefix(system_parts, tools,
  settings.fingerprint_key)``), ``user`` (only used as tenant if configured), ``input_messages_json`` only if
  ``settings.capture_content``. ``settings`` are the instrumentor's (``llmotel.config.Settings``, resolved once
  in ``instrument()``); readers never read a global.
  It must not mutate the caller's arguments.
- Result reader ``(result, LLMResponse, settings) -> None`` for complete bodies: id, response model, finish
  reasons, ``truncated``, usage (GenAI meaning: input INCLUDES cache reads/writes), tool names,
  system fingerprint, service tier, body region, ``body_timing`` (the objects named in
  ``server_timing.BODY_KEYS`` when present).
- Stream-event reader ``(event, LLMResponse) -> bool`` (hot path, O(1), no settings argument: a reader that needs
  settings is built per instrumentor in ``provider(settings)``): accumulates the same fields as
  events arrive and returns True when the event carries content (text, tool-call or thinking delta —
  not the empty role chunk). The capture uses it for time-to-first-chunk and chunk counts. If the
  provider never fills ``usage.output_tokens`` for a stream, llmotel counts content chunks and marks
  ``llmotel.usage.source = estimated``.
- Send hooks (``SendHook``): the client's per-attempt HTTP send, so retries are seen
  (``http.request.resend_count``, phases of the attempt that answered) and response headers are read
  (kept: only the names in ``call.KEEP_HEADERS``). ``read_response(resp) -> (status, header items)``.
  Versions without a send method: ``kind="build"`` on the per-attempt request builder plus
  ``kind="process"`` on the function that receives the answering response (keyword ``response``).
- The library's stream classes (returned objects of these types are proxied) and raw-response classes
  (``with_raw_response`` / ``with_streaming_response``; their ``parse()`` is intercepted).
- Optionally ``helper_closers``: ``close`` methods of ``.stream()`` helper objects that close the HTTP
  response directly (they hold llmotel's proxy in ``_raw_stream``); the call then ends at that close.
- A provider may set ``LLMRequest.emit_phases = False`` for calls that generate nothing (token counting).

A call inside another llmotel call, under the suppression key, or under another instrumentation's GenAI
CLIENT span gets no span of its own (``_skip``). ``_sync_wrapper`` / ``_async_wrapper`` / ``_resolve`` are
used by providers that need a custom patch point (anthropic's ``messages.stream()``): keep their signatures
(``settings`` is the instrumentor's, passed down to every call the wrapper records).

Guarantees of the machinery: the caller's arguments are never mutated (trace-context propagation, when
enabled, injects into a copy of ``extra_headers``); return values, exceptions, streams, context managers
and async behave exactly as without llmotel; instrumentation errors are logged at debug and the call
proceeds; the OpenTelemetry suppression key is honoured, and while llmotel records a call it sets the
``suppress_language_model_instrumentation`` key so other GenAI instrumentations nested inside stay quiet.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import ipaddress
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context.context import Context
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llmotel import _semconv as sc
from llmotel import config, phases
from llmotel.config import Settings
from llmotel.instrument import call as call_mod
from llmotel.instrument import capture, streams
from llmotel.instrument.call import ACTIVE, Call, EventReader, ResultReader
from llmotel.record import LLMRequest
from llmotel.signals.tenant import resolve as resolve_tenant
from llmotel.telemetry import spans

# The key trace.set_span_in_context writes. Private: an opentelemetry-api without it takes the public path.
_SPAN_KEY: str | None
try:
    from opentelemetry.trace.propagation import _SPAN_KEY
except ImportError:  # pragma: no cover - depends on the installed opentelemetry-api
    _SPAN_KEY = None

_log = logging.getLogger(__name__)

RequestReader = Callable[[Any, tuple[Any, ...], dict[str, Any], Settings], LLMRequest]
ResponseHeadersReader = Callable[[Any], tuple[int, Iterable[tuple[str, str]]]]

# The key GenAI instrumentations (OpenLLMetry) check to stay quiet inside another LLM span.
SUPPRESS_LANGUAGE_MODEL_KEY = "suppress_language_model_instrumentation"


@dataclass(frozen=True, slots=True)
class Endpoint:
    module: str
    target: str  # "Class.method" inside module
    read_request: RequestReader
    read_result: ResultReader
    read_event: EventReader | None = None
    is_async: bool = False


@dataclass(frozen=True, slots=True)
class SendHook:
    """A per-attempt hook. ``kind``:

    - ``send`` (default): the function sends one attempt and returns its response (an attempt starts
      before it, its headers are read from the result).
    - ``build``: the function builds one attempt's request (an attempt starts; nothing is read).
    - ``process``: the function receives the answering response as keyword ``response`` (read before it
      runs). ``build`` + ``process`` replace ``send`` for library versions without a send method.
    """

    module: str
    target: str
    read_response: ResponseHeadersReader
    is_async: bool = False
    kind: str = "send"


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    endpoints: tuple[Endpoint, ...]
    send_hooks: tuple[SendHook, ...] = ()
    stream_types: tuple[type, ...] = ()
    async_stream_types: tuple[type, ...] = ()
    raw_types: tuple[type[Any], ...] = ()
    headers_kwarg: str = "extra_headers"
    # (module, "Class.close", is_async) of the library's helper streams (``.stream()`` managers) that close
    # the HTTP response directly instead of the raw stream they wrap (held in ``_raw_stream``): closing one
    # ends llmotel's call at once (abandoned if unfinished) instead of at garbage collection.
    helper_closers: tuple[tuple[str, str, bool], ...] = ()


# The names llmotel keeps, as the lower-case bytes httpx holds them (all ASCII, so the same in any header encoding).
_KEEP_RAW: frozenset[bytes] = frozenset(name.encode("ascii") for name in call_mod.KEEP_HEADERS)


def read_httpx_response(response: Any) -> tuple[int, Iterable[tuple[str, str]]]:
    """(status, header items) of an httpx / httpx2 response (the Stainless SDKs' transport): the items
    ``headers.items()`` gives (lower-case names, values decoded in the headers' encoding, a repeated name's values
    joined with ", ") for the names llmotel keeps (``call.KEEP_HEADERS``) only. ``items()`` decodes every header
    of the response, most of this hook's cost per attempt; here only the kept ones are decoded."""
    headers = response.headers
    try:
        encoding = headers.encoding
        kept: dict[str, str] = {}
        for raw_key, raw_value in headers.raw:
            key = raw_key.lower()
            if key in _KEEP_RAW:
                name, value = key.decode("ascii"), raw_value.decode(encoding)
                kept[name] = f"{kept[name]}, {value}" if name in kept else value
        items: Iterable[tuple[str, str]] = kept.items()
    except Exception:  # not the headers type this expects: all of them, as they come
        items = headers.items()
    return int(response.status_code), items


# Hosts (suffixes) of hosted LLM APIs: they export no server spans to the caller, so under the default
# ``self_hosted`` mode they are never sent the caller's trace context (trace ids, baggage).
_HOSTED_API_SUFFIXES: tuple[str, ...] = (
    "api.openai.com", "openai.azure.com", "cognitiveservices.azure.com", "services.ai.azure.com",
    "api.anthropic.com", "googleapis.com", "amazonaws.com", "api.mistral.ai", "api.groq.com", "api.together.xyz",
    "api.together.ai", "api.fireworks.ai", "api.deepseek.com", "openrouter.ai", "api.cohere.com", "api.cohere.ai",
    "api.perplexity.ai", "api.x.ai", "api.deepinfra.com", "inference.ai.azure.com", "api-inference.huggingface.co",
    "router.huggingface.co", "api.cerebras.ai", "api.sambanova.ai", "api.novita.ai", "api.hyperbolic.xyz",
)


@functools.lru_cache(maxsize=256)
def is_self_hosted(host: str) -> bool:
    """True when ``host`` is not a known hosted API: loopback, private or link-local addresses, ``localhost``,
    ``.local`` / ``.internal`` names, single-label names (a compose or Kubernetes service) and any other name
    not in ``_HOSTED_API_SUFFIXES`` (your own vLLM behind your own DNS). False for an empty host. Never raises."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if not host:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return not any(host == s or host.endswith("." + s) for s in _HOSTED_API_SUFFIXES)
    return ip.is_loopback or ip.is_private or ip.is_link_local


def propagates(mode: str, host: str | None) -> bool:
    """Whether a call to ``host`` carries the caller's trace context under ``propagate_trace_context = mode``."""
    if mode == "always":
        return True
    return mode == "self_hosted" and is_self_hosted(host or "")


_TRACEPARENT: str = TraceContextTextMapPropagator._TRACEPARENT_HEADER_NAME
_TRACESTATE: str = TraceContextTextMapPropagator._TRACESTATE_HEADER_NAME


def _inject(headers: dict[str, str], span: Span) -> None:
    """``propagate.inject(headers)`` in a context whose current span is ``span``. Under the default propagators
    (W3C trace context, then baggage, as OTEL_PROPAGATORS leaves them), the trace-context headers are written here as
    that propagator writes them, without its look-ups; anything else goes through ``propagate.inject``."""
    textmap = propagate.get_global_textmap()
    props = getattr(textmap, "_propagators", None) if type(textmap) is CompositePropagator else None
    if (
        type(props) is not list
        or len(props) != 2
        or type(props[0]) is not TraceContextTextMapPropagator
        or type(props[1]) is not W3CBaggagePropagator
    ):
        propagate.inject(headers)
        return
    ctx = span.get_span_context()
    if ctx != trace.INVALID_SPAN_CONTEXT:
        headers[_TRACEPARENT] = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        if ctx.trace_state:
            headers[_TRACESTATE] = ctx.trace_state.to_header()
    props[1].inject(headers)


def _begin(
    provider: Provider,
    ep: Endpoint,
    settings: Settings,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[Call, object, dict[str, Any]] | None:
    """Start a call under ``settings``: read the request, start + attach the span. None (call proceeds bare) on
    any error."""
    try:
        cap = capture.begin(settings.chunk_metrics == "each")
        request = ep.read_request(instance, args, kwargs, settings)
        if not request.region and settings.region:
            request.region, request.region_source = settings.region, sc.LLMOTEL_SERVER_REGION_SOURCE_CONFIG
        span = spans.start(request, cap, resolve_tenant(settings, request.user), settings.phase_spans == "direct")
        if request.emit_phases:
            # Own calls in flight: streams that share a prefill pass, and the wait own calls imply (phases/).
            phases.DEFAULT_MODEL.passes.began(request, cap)
        # otel_context.set_value(SUPPRESS_LANGUAGE_MODEL_KEY, True, trace.set_span_in_context(span)), one copy
        if _SPAN_KEY is not None:
            ctx = Context({**otel_context.get_current(), _SPAN_KEY: span, SUPPRESS_LANGUAGE_MODEL_KEY: True})
        else:
            ctx = otel_context.set_value(SUPPRESS_LANGUAGE_MODEL_KEY, True, trace.set_span_in_context(span))
        token = otel_context.attach(ctx)
        if propagates(settings.propagate_trace_context, request.server_address):
            headers = dict(kwargs.get(provider.headers_kwarg) or {})
            _inject(headers, span)
            kwargs = {**kwargs, provider.headers_kwarg: headers}
        return Call(request, cap, span, ep.read_result, ep.read_event, settings), token, kwargs
    except Exception:
        _log.debug("llmotel could not start a call", exc_info=True)
        return None


def _skip() -> bool:
    """True when this call must not get a span of its own.

    Inside another llmotel call; instrumentation suppressed; language-model instrumentation suppressed
    by an outer GenAI instrumentation; or the current span is already another instrumentation's GenAI
    CLIENT span for this very call (it wrapped the method outside llmotel) — no duplicate call spans.
    """
    if ACTIVE.get() is not None or not is_instrumentation_enabled():
        return True
    ctx = otel_context.get_current()  # read once for both look-ups below
    if ctx.get(SUPPRESS_LANGUAGE_MODEL_KEY):
        return True
    current = trace.get_current_span(ctx)
    if getattr(current, "kind", None) is SpanKind.CLIENT and current.is_recording():
        attrs = getattr(current, "attributes", None)
        if attrs and sc.GEN_AI_OPERATION_NAME in attrs:
            return True
    return False


def _raw_body_ready(raw: Any) -> bool:
    http = getattr(raw, "http_response", None)
    return bool(getattr(http, "is_closed", False))


def _result(provider: Provider, call: Call, result: Any) -> Any:
    """Hand the result back — the client's own object, its stream or raw response hooked (``streams``); finish now
    for complete bodies."""
    try:
        if provider.stream_types and isinstance(result, provider.stream_types):
            return streams.hook_stream(result, call, False)
        if provider.async_stream_types and isinstance(result, provider.async_stream_types):
            return streams.hook_stream(result, call, True)
        if provider.raw_types and isinstance(result, provider.raw_types):
            if not call.request.stream and _raw_body_ready(result) and not streams.is_async_parse(result):
                call.read(result.parse())  # the SDK caches parse(): the caller's own parse() costs nothing more
                return result
            return streams.hook_raw(result, call, provider.stream_types, provider.async_stream_types)
        call.read(result)
    except Exception:
        _log.debug("llmotel could not handle a result", exc_info=True)
        call.finish()
    return result


def _sync_wrapper(provider: Provider, ep: Endpoint, settings: Settings) -> Callable[..., Any]:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _skip():
            return wrapped(*args, **kwargs)
        started = _begin(provider, ep, settings, instance, args, kwargs)
        if started is None:
            return wrapped(*args, **kwargs)
        call, ctx_token, kwargs = started
        active = ACTIVE.set(call)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        finally:
            ACTIVE.reset(active)
            otel_context.detach(ctx_token)  # type: ignore[arg-type]
        return _result(provider, call, result)

    return wrapper


def _async_wrapper(provider: Provider, ep: Endpoint, settings: Settings) -> Callable[..., Any]:
    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _skip():
            return await wrapped(*args, **kwargs)
        started = _begin(provider, ep, settings, instance, args, kwargs)
        if started is None:
            return await wrapped(*args, **kwargs)
        call, ctx_token, kwargs = started
        active = ACTIVE.set(call)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        finally:
            ACTIVE.reset(active)
            otel_context.detach(ctx_token)  # type: ignore[arg-type]
        return _result(provider, call, result)

    return wrapper


def _send_wrapper(hook: SendHook) -> Callable[..., Any]:
    read = hook.read_response

    def answered(response: Any) -> None:
        try:
            status, items = read(response)
            call_mod.attempt_answered(status, items)
        except Exception:
            _log.debug("llmotel could not read an attempt's response", exc_info=True)

    if hook.kind == "build":

        def build(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
            if ACTIVE.get() is not None:
                call_mod.attempt_sent()
            return wrapped(*args, **kwargs)

        return build

    if hook.kind == "process":

        def before(kwargs: Any) -> None:
            if ACTIVE.get() is not None and "response" in kwargs:
                answered(kwargs["response"])

        if hook.is_async:

            async def async_process(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
                before(kwargs)
                return await wrapped(*args, **kwargs)

            return async_process

        def process(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
            before(kwargs)
            return wrapped(*args, **kwargs)

        return process

    if hook.is_async:

        async def async_send(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
            if ACTIVE.get() is None:
                return await wrapped(*args, **kwargs)
            call_mod.attempt_sent()
            response = await wrapped(*args, **kwargs)
            answered(response)
            return response

        return async_send

    def send(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if ACTIVE.get() is None:
            return wrapped(*args, **kwargs)
        call_mod.attempt_sent()
        response = wrapped(*args, **kwargs)
        answered(response)
        return response

    return send


def _finish_raw_stream(instance: Any) -> None:
    """A ``.stream()`` helper closed its HTTP response itself: end the call of the raw stream it iterates."""
    streams.closed(getattr(instance, "_raw_stream", None))


def _after_wrapper(is_async: bool, after: Callable[[Any], None]) -> Callable[..., Any]:
    """A wrapt wrapper that runs the method, then ``after(instance)`` (also when the method raised)."""
    if is_async:

        async def async_method(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
            try:
                return await wrapped(*args, **kwargs)
            finally:
                after(instance)

        return async_method

    def method(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            return wrapped(*args, **kwargs)
        finally:
            after(instance)

    return method


def _helper_close_wrapper(is_async: bool) -> Callable[..., Any]:
    return _after_wrapper(is_async, _finish_raw_stream)


def _raw_parse_wrapper(is_async: bool) -> Callable[..., Any]:
    """``parse`` of a raw-response class: what it returns goes through ``streams.raw_parsed`` (a hooked response's
    stream is hooked, its body read; any other response's result passes untouched)."""
    if is_async:

        async def async_parse(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
            return streams.raw_parsed(instance, await wrapped(*args, **kwargs))

        return async_parse

    def parse(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        return streams.raw_parsed(instance, wrapped(*args, **kwargs))

    return parse


def _class_hooks(provider: Provider) -> list[tuple[Any, str, Callable[..., Any]]]:
    """Class-level hook points that let streams and raw responses be returned unproxied (``streams``): each stream
    class's ``close`` (``aclose``), each raw-response class's ``parse`` and ``close``, where the class defines them
    (a subclass inherits the wrapper of its base)."""
    hooks: list[tuple[Any, str, Callable[..., Any]]] = []
    for cls in (*provider.stream_types, *provider.async_stream_types):
        for name in ("close", "aclose"):
            method = vars(cls).get(name)
            if method is not None:
                hooks.append((cls, name, _after_wrapper(inspect.iscoroutinefunction(method), streams.closed)))
    for cls in provider.raw_types:
        parse, close = vars(cls).get("parse"), vars(cls).get("close")
        if parse is not None:
            hooks.append((cls, "parse", _raw_parse_wrapper(inspect.iscoroutinefunction(parse))))
        if close is not None:
            hooks.append((cls, "close", _after_wrapper(inspect.iscoroutinefunction(close), streams.raw_closed)))
    return hooks


def _resolve(module: str, target: str) -> tuple[Any, str] | None:
    """(owner object, attribute) for "Class.method" in module, or None if this version lacks it."""
    try:
        owner: Any = importlib.import_module(module)
    except ImportError:
        return None
    *path, attr = target.split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return (owner, attr) if hasattr(owner, attr) else None


def patch(provider: Provider, settings: Settings) -> list[tuple[Any, str]]:
    """Wrap every patch point of ``provider`` that exists in the installed library, recording calls under
    ``settings``; return what was wrapped."""
    done: list[tuple[Any, str]] = []
    points: list[tuple[str, str, Callable[..., Any]]] = [
        (ep.module, ep.target, (_async_wrapper if ep.is_async else _sync_wrapper)(provider, ep, settings))
        for ep in provider.endpoints
    ]
    points += [(h.module, h.target, _send_wrapper(h)) for h in provider.send_hooks]
    points += [(m, t, _helper_close_wrapper(a)) for m, t, a in provider.helper_closers]
    resolved: list[tuple[tuple[Any, str] | None, str, Callable[..., Any]]] = [
        (_resolve(module, target), f"{module}.{target}", wrapper) for module, target, wrapper in points
    ]
    resolved += [((cls, name), f"{cls.__qualname__}.{name}", w) for cls, name, w in _class_hooks(provider)]
    for found, where, wrapper in resolved:
        if found is None:
            _log.debug("llmotel: %s not found; skipped", where)
            continue
        owner, attr = found
        if isinstance(getattr(owner, attr), wrapt.FunctionWrapper):
            _log.info("llmotel: %s is already wrapped by another instrumentation", where)
        wrapt.wrap_function_wrapper(owner, attr, wrapper)
        done.append((owner, attr))
    return done


def _is_ours(proxy: Any) -> bool:
    wrapper = getattr(proxy, "_self_wrapper", None)
    return str(getattr(wrapper, "__module__", "")).startswith("llmotel.")


def unwrap_ours(owner: Any, attr: str) -> None:
    """Remove llmotel's wrapper of ``owner.attr``, wherever it sits in a chain of wrapt wrappers.

    ``opentelemetry...unwrap`` removes the OUTERMOST wrapper: had another instrumentation wrapped the
    method after llmotel, it would remove theirs and leave ours active. Here another instrumentation's
    wrapper stays in place, now around what llmotel wrapped. Never raises.
    """
    try:
        node = vars(owner).get(attr, None)
        if node is None:
            node = getattr(owner, attr, None)
        parent: Any = None
        for _ in range(64):  # a chain of wrappers; (wrapt 2's proxies are not all wrapt.ObjectProxy instances)
            if node is None:
                return
            if _is_ours(node):
                if parent is None:
                    setattr(owner, attr, node.__wrapped__)
                else:
                    parent.__wrapped__ = node.__wrapped__
                return
            parent, node = node, getattr(node, "__wrapped__", None)
    except Exception:
        _log.debug("llmotel could not unwrap %r.%s", owner, attr, exc_info=True)


def unpatch(wrapped: Iterable[tuple[Any, str]]) -> None:
    """Undo ``patch``: only llmotel's wrappers are removed, other instrumentations' stay (``unwrap_ours``)."""
    for owner, attr in wrapped:
        unwrap_ours(owner, attr)


# Keyword arguments BaseInstrumentor and opentelemetry-instrument may pass that are not llmotel options.
_OTEL_INSTRUMENT_KWARGS = frozenset({"skip_dep_check", "raise_exception_on_conflict", "logger_provider"})


class LLMInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Base of the provider instrumentors: ``instrument(tracer_provider=, meter_provider=, **options)``.

    ``options`` are llmotel settings (see ``llmotel.config``), e.g. ``stall_threshold_s=5``: resolved once here,
    starting from the process default (``llmotel.configure``), kept in ``settings`` and carried by every call
    this instrumentor records. A bad value raises ``ConfigError``; unknown keys are logged and ignored.
    """

    dependencies: tuple[str, ...] = ()
    # BaseInstrumentor is a per-class singleton whose __init__ may run again: no state set in __init__.
    _patched: list[tuple[Any, str]] = []  # noqa: RUF012 - replaced per instance in _instrument
    settings: Settings | None = None  # set by instrument()

    def provider(self, settings: Settings) -> Provider:
        """The client library's description; readers that need ``settings`` on the hot path bind them here."""
        raise NotImplementedError

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.dependencies

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.pop("tracer_provider", None)
        meter_provider = kwargs.pop("meter_provider", None)
        options = {k: v for k, v in kwargs.items() if k in config.SETTING}
        unknown = set(kwargs) - set(options) - _OTEL_INSTRUMENT_KWARGS
        if unknown:
            _log.warning("llmotel: ignoring unknown instrument() option(s) %s", sorted(unknown))
        settings = config.override(config.get(), options)
        self.settings = settings
        spans.configure(tracer_provider, meter_provider)
        self._patched = patch(self.provider(settings), settings)

    def _uninstrument(self, **kwargs: Any) -> None:
        unpatch(self._patched)
        self._patched = []
