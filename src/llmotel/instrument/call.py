"""One in-flight LLM call: request, capture, response and span, finished exactly once.

The active call is kept in a ContextVar while the provider method runs, so the per-attempt hook
(the client's HTTP send) can find it without arguments: ``attempt_sent`` / ``attempt_answered``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any, Protocol

from opentelemetry.trace import Span

from llmotel.config import Settings
from llmotel.instrument import capture, outcome
from llmotel.phases import server_timing
from llmotel.record import CallCapture, LLMRequest, LLMResponse
from llmotel.signals import ratelimit, region
from llmotel.telemetry import spans

_log = logging.getLogger(__name__)

ACTIVE: ContextVar[Call | None] = ContextVar("llmotel_active_call", default=None)

KEEP_HEADERS: frozenset[str] = server_timing.HEADER_NAMES | ratelimit.HEADER_NAMES | region.HEADER_NAMES
"""Lower-case response header names llmotel reads (request headers are never read)."""


class EventReader(Protocol):
    """Reads one stream event into ``response``; returns True if it carries content (hot path)."""

    def __call__(self, event: Any, response: LLMResponse, /) -> bool: ...


class ResultReader(Protocol):
    """Reads a complete (non-stream) result object into ``response``, under the instrumentor's ``settings``."""

    def __call__(self, result: Any, response: LLMResponse, settings: Settings, /) -> None: ...


class Call:
    __slots__ = (
        "_attempts",
        "capture",
        "finished",
        "read_event",
        "read_result",
        "request",
        "response",
        "settings",
        "span",
        "stall_ns",
    )

    def __init__(
        self,
        request: LLMRequest,
        cap: CallCapture,
        span: Span,
        read_result: ResultReader,
        read_event: EventReader | None,
        settings: Settings,
    ) -> None:
        self.request = request
        self.capture = cap
        self.span = span
        self.response = LLMResponse()
        self.read_result = read_result
        self.read_event = read_event
        self.settings = settings  # the instrumentor's, resolved once at instrument()
        self.stall_ns = settings.stall_threshold_ns
        self.finished = False
        self._attempts = 0

    def attempt_sent(self) -> None:
        capture.attempt_sent(self.capture, self._attempts)
        self._attempts += 1

    def attempt_answered(self, status_code: int, header_items: Iterable[tuple[str, str]]) -> None:
        """Response headers of one attempt arrived (later attempts overwrite earlier ones). Never raises."""
        capture.headers_received(self.capture)
        self.response.status_code = status_code
        try:
            keep = KEEP_HEADERS
            kept: dict[str, str] = {}
            for k, v in header_items:
                name = k.lower()
                if name in keep:
                    kept[name] = v
            self.response.headers = kept
        except Exception:
            _log.debug("llmotel could not read response headers", exc_info=True)

    def read(self, result: Any) -> None:
        """Read a complete result body, then finish. Never raises."""
        try:
            self.read_result(result, self.response, self.settings)
        except Exception:
            _log.debug("llmotel could not read the response", exc_info=True)
        self.finish()

    def finish(self, error: BaseException | None = None, abandoned: bool = False) -> None:
        """End the call (idempotent). ``abandoned``: closed or collected before the end of the stream."""
        if self.finished:
            return
        self.finished = True
        cap = self.capture
        if abandoned:
            cap.abandoned = True
        if error is not None and not self.response.status_code:
            status = getattr(error, "status_code", None)  # the SDKs' status errors carry it
            if isinstance(status, int):
                self.response.status_code = status
        capture.end(cap)
        result = outcome.compute(self.request, self.response, cap, error)
        spans.finish(self.span, self.request, self.response, cap, result, self.settings, error)

    def collected(self) -> None:
        """The stream was garbage-collected unfinished: end at the last thing observed, marked abandoned."""
        if self.finished:
            return
        cap = self.capture
        cap.end_ns = max(cap.last_chunk_ns, cap.headers_ns, cap.attempt_start_ns)
        self.finish(abandoned=True)


def attempt_sent() -> None:
    """Per-attempt hook for a provider's HTTP send: an attempt is about to go out. Never raises."""
    call = ACTIVE.get()
    if call is not None:
        call.attempt_sent()


def attempt_answered(status_code: int, header_items: Iterable[tuple[str, str]]) -> None:
    """Per-attempt hook: the attempt's response headers arrived. Never raises."""
    call = ACTIVE.get()
    if call is not None:
        call.attempt_answered(status_code, header_items)
