"""Living with the anthropic SDK's own tracing: one LLM span per call, and it is llmotel's.

Since 2.x the SDK starts its own CLIENT span per API call (scope ``com.anthropic.sdk.python``, name
``anthropic.messages.create``) whenever it can get a tracer, i.e. whenever the client's
``open_telemetry`` option (or ``ANTHROPIC_OPEN_TELEMETRY=false``) does not switch it off and a tracer
provider loads. With llmotel also tracing the call, that would be two LLM spans for one call.

The behaviour chosen (docs/anthropic.md): **llmotel owns the span; the SDK's span is withheld for the
calls llmotel instruments, and only for those.** ``anthropic._base_client.start_api_call_span`` is
wrapped: inside an llmotel-instrumented call it returns, instead of a new recording span,

- a ``NonRecordingSpan`` carrying the current span context (llmotel's LLM span) when the client's
  ``propagation`` option is on, so the SDK still injects ``traceparent`` exactly as it would have,
  but pointing at the llmotel span, and records nothing;
- ``None`` otherwise (the SDK then sends the request untraced, as with its tracing off).

Every other SDK call (``models.list``, batches, sessions, tool runners' own spans) keeps the SDK's spans.
Clients whose SDK tracing is off are untouched (the SDK never calls ``start_api_call_span`` then), and
llmotel adds no ``traceparent`` of its own to Anthropic's hosted API unless ``propagate_trace_context`` is
``always`` (the default, ``self_hosted``, adds it only for self-hosted base URLs: docs/sdk.md).
On SDKs without ``lib/_tracing`` (1.x) there is nothing to patch and nothing to withhold.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace

from llmotel.instrument.call import ACTIVE

log = logging.getLogger(__name__)

_MODULE = "anthropic._base_client"
_FUNCTION = "start_api_call_span"


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
