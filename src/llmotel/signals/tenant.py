"""Which tenant a call was made for, carried in OpenTelemetry baggage so it flows downstream.

    with llmotel.tenant("acme"):          # or @llmotel.tenant("acme") on a sync or async function
        client.chat.completions.create(...)

Baggage lives in the OpenTelemetry context (contextvars), so it follows ``await`` and is copied into
``asyncio`` tasks created inside the block, and propagators send it to downstream services.
Resolution order for a call: baggage, then the configured resolver callable, then (only if
``tenant_from_user`` / LLMOTEL_TENANT_FROM_USER is on) the request's ``user`` / ``safety_identifier``.
With ``tenant_hash`` the id is replaced by a keyed hash (16 hex chars).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import baggage
from opentelemetry import context as otel_context

from llmotel import _semconv as sc
from llmotel.config import Settings

_log = logging.getLogger(__name__)
BAGGAGE_KEY = sc.LLMOTEL_TENANT_ID
F = TypeVar("F", bound=Callable[..., Any])


class tenant:  # lower-case: used like a function, `with llmotel.tenant("acme"):`
    """Context manager and decorator that sets the tenant id for the calls inside it."""

    def __init__(self, tenant_id: str) -> None:
        if not isinstance(tenant_id, str) or not tenant_id:
            raise ValueError(f"llmotel.tenant() needs a non-empty string, got {tenant_id!r}")
        self.tenant_id = tenant_id
        self._tokens: list[object] = []

    def __enter__(self) -> tenant:
        ctx = baggage.set_baggage(BAGGAGE_KEY, self.tenant_id)
        self._tokens.append(otel_context.attach(ctx))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel_context.detach(self._tokens.pop())  # type: ignore[arg-type]

    def __call__(self, func: F) -> F:
        tenant_id = self.tenant_id
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with tenant(tenant_id):
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tenant(tenant_id):
                return func(*args, **kwargs)

        return cast(F, wrapper)


def _hash(value: str, key: bytes) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]


# The context key under which the API keeps the baggage dict: read directly, ``baggage.get_baggage`` is three calls
# deep for the same look-up (on every call). A version without it gets ``get_baggage``.
_CONTEXT_BAGGAGE_KEY = getattr(baggage, "_BAGGAGE_KEY", None)


def _baggage_tenant() -> object | None:
    if _CONTEXT_BAGGAGE_KEY is None:
        return baggage.get_baggage(BAGGAGE_KEY)
    entries = otel_context.get_current().get(_CONTEXT_BAGGAGE_KEY)
    return entries.get(BAGGAGE_KEY) if isinstance(entries, dict) else None


def resolve(cfg: Settings, request_user: str = "") -> str:
    """The tenant of the current call under the instrumentor's settings ``cfg``, "" if unknown. Never raises (a
    failing resolver is logged at debug)."""
    value = _baggage_tenant()
    found = value if isinstance(value, str) and value else ""
    if not found and cfg.tenant_resolver is not None:
        try:
            resolved = cfg.tenant_resolver()
            found = resolved if isinstance(resolved, str) else ""
        except Exception:
            _log.debug("llmotel tenant resolver failed", exc_info=True)
    if not found and cfg.tenant_from_user:
        found = request_user
    if found and cfg.tenant_hash:
        found = _hash(found, cfg.fingerprint_key)
    return found
