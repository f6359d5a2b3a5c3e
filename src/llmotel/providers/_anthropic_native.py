"""Living with the anthropic SDK's own tracing: one LLM span per call, and it is llmotel's (by default).

Since 2.x the SDK starts its own CLIENT span per API call (scope ``com.anthropic.sdk.python``, name
``anthropic.messages.create``) whenever it can get a tracer, i.e. whenever the client's
``open_telemetry`` option (or ``ANTHROPIC_OPEN_TELEMETRY=false``) does not switch it off and a tracer
provider loads. With llmotel also tracing the call, that would be two LLM spans for one call.

The setting ``anthropic_sdk_spans`` (``LLMOTEL_ANTHROPIC_SDK_SPANS``) chooses (docs/sdk.md, docs/anthropic.md):

``off`` (default): **the SDK's span is not made for the calls llmotel instruments, and only for those.** The SDK
decides per request, in ``SyncAPIClient.request`` / ``AsyncAPIClient.request``: ``if self._tracer is None`` it
sends the request untraced (no span, no ``ApiCall``, no per-attempt recording, no body observer), as with its
tracing off. ``BaseClient._tracer`` is a property; ``TracerHook`` puts a property in its place whose getter
answers ``None`` while an llmotel call is active (``llmotel.call.ACTIVE``) and the SDK's own getter otherwise,
so the SDK skips all of its tracing work for that call, not just the span. The client object is not touched (its
cached tracer, options and every other call keep their behaviour). Because the SDK then injects no
``traceparent``, llmotel injects it in the SDK's place when the SDK would have (the client's ``propagation``
option on and the client has a tracer): into the attempt's freshly built request, naming llmotel's span
(``sdk_propagates``, called from the provider's ``_build_request`` hook).
A fallback for a client class that defines its own ``_tracer`` (none in the SDK): ``start_api_call_span`` is
wrapped too, and inside an llmotel call returns, instead of a new recording span, a ``NonRecordingSpan`` on the
current span context (llmotel's) when the client's ``propagation`` is on, so the SDK injects ``traceparent``
naming llmotel's span and records nothing, or ``None`` otherwise.

``keep``: nothing here is patched; the SDK makes its span as without llmotel, as a child of llmotel's.

Every other SDK call (``models.list``, batches, sessions, tool runners' own spans) keeps the SDK's spans.
On SDKs without ``_tracer`` / ``start_api_call_span`` (0.x, no ``lib/_tracing``) there is nothing to patch.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

from llmotel.instrument.call import ACTIVE

log = logging.getLogger(__name__)

_MODULE = "anthropic._base_client"
_FUNCTION = "start_api_call_span"
_OWNER = "BaseClient"
_PROPERTY = "_tracer"

KEEP = "keep"  # the setting's value that keeps the SDK's span


def start_api_call_span_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """wrapt wrapper of ``start_api_call_span``: outside an llmotel call, the SDK's own behaviour;
    inside one (``llmotel.call.ACTIVE`` is set while the instrumented method sends), no SDK span.
    Never raises beyond what the SDK itself raises."""
    if ACTIVE.get() is None:
        return wrapped(*args, **kwargs)
    try:
        if not kwargs.get("propagation", True):
            return None
        context = trace.get_current_span().get_span_context()
        return trace.NonRecordingSpan(context) if context.is_valid else None
    except Exception:
        log.debug("llmotel: cannot withhold the anthropic SDK span; letting the SDK trace", exc_info=True)
        return wrapped(*args, **kwargs)


def patch_target() -> tuple[str, str] | None:
    """(module, name) to wrap, or None on SDKs that do not trace themselves."""
    try:
        import anthropic._base_client as base_client
    except Exception:
        return None
    return (_MODULE, _FUNCTION) if hasattr(base_client, _FUNCTION) else None


class TracerHook:
    """``BaseClient._tracer`` answering ``None`` inside llmotel calls (see the module docstring).

    ``install()`` puts the hooked property on ``anthropic._base_client.BaseClient`` (False when the SDK has no such
    property: nothing done); ``uninstall()`` puts the SDK's own back, unless something replaced ours since (then ours
    stays, answering as the SDK's own: ``uninstall`` turns it inert). Never raises."""

    __slots__ = ("_active", "_getter", "_hooked", "_original", "_owner")

    def __init__(self) -> None:
        self._owner: Any = None
        self._original: property | None = None
        self._hooked: property | None = None
        self._getter: Any = None
        self._active = False

    def install(self) -> bool:
        try:
            import anthropic._base_client as base_client

            owner = getattr(base_client, _OWNER, None)
            original = vars(owner).get(_PROPERTY) if isinstance(owner, type) else None
            if not isinstance(original, property) or original.fget is None:
                return False
            getter = original.fget
            hook = self

            def _tracer(client: Any) -> Any:
                if hook._active and ACTIVE.get() is not None:
                    return None  # the SDK sends this request untraced: llmotel's span is the call's one
                return getter(client)

            hooked = property(_tracer, original.fset, original.fdel, original.__doc__)
            setattr(owner, _PROPERTY, hooked)
            self._owner, self._original, self._hooked, self._getter = owner, original, hooked, getter
            self._active = True
            return True
        except Exception:
            log.debug("llmotel: cannot hook the anthropic SDK's tracer; withheld the slower way", exc_info=True)
            return False

    def uninstall(self) -> None:
        self._active = False
        owner, original, hooked = self._owner, self._original, self._hooked
        self._owner = self._original = self._hooked = self._getter = None
        if owner is None:
            return
        try:
            if vars(owner).get(_PROPERTY) is hooked:
                setattr(owner, _PROPERTY, original)
        except Exception:
            log.debug("llmotel: cannot restore the anthropic SDK's tracer property", exc_info=True)

    def sdk_propagates(self, client: Any) -> bool:
        """Whether the SDK would have injected ``traceparent`` into ``client``'s request had the hook not answered
        ``None``: its ``propagation`` option is on and it has a tracer (the SDK's own getter). False when the hook is
        not installed (then the SDK, untouched or through the fallback wrapper, propagates by itself)."""
        getter = self._getter
        if getter is None or not self._active:
            return False
        try:
            options = client._open_telemetry
            return bool(options["propagation"]) and getter(client) is not None
        except Exception:
            return False
