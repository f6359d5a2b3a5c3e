"""Proxies returned in place of the provider's stream and raw-response objects.

Guarantees (tests/openai prove them):
- The proxy is a ``wrapt.ObjectProxy``: ``isinstance``, attributes (``.response``, ``.close()``,
  ``.until_done()``...) and ``with`` behave as on the real object; ``with`` returns the proxy.
- The call's span ends exactly once: on exhaustion, on an error raised by the stream, on ``close()`` /
  ``with`` exit (marked ``llmotel.stream.abandoned`` if the stream was not consumed to the end), or when
  the unfinished stream is garbage-collected (abandoned, ended at the last chunk seen).
- Per chunk: one ``perf_counter_ns``, the provider's event reader, counters. Instrumentation errors are
  swallowed (logged at debug); the provider's own errors propagate unchanged.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from types import TracebackType
from typing import Any

import wrapt

from llmotel.instrument import capture
from llmotel.instrument.call import Call

_log = logging.getLogger(__name__)
_now = time.perf_counter_ns


def _on_chunk(call: Call, event: Any, now: int) -> None:
    content = False
    reader = call.read_event
    if reader is not None:
        try:
            content = reader(event, call.response)
        except Exception:
            _log.debug("llmotel could not read a stream event", exc_info=True)
    capture.chunk(call.capture, now, content, call.stall_ns)


class StreamProxy(wrapt.ObjectProxy[Any]):
    """Sync stream (``openai.Stream``, ``anthropic.Stream``...)."""

    def __init__(self, wrapped: Any, call: Call) -> None:
        super().__init__(wrapped)
        self._self_call = call

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        call: Call = self._self_call
        try:
            event = self.__wrapped__.__next__()
        except StopIteration:
            call.finish()
            raise
        except BaseException as exc:
            call.finish(error=exc)
            raise
        _on_chunk(call, event, _now())
        return event

    def __enter__(self) -> StreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_call.finish(abandoned=True)  # no-op when the stream already ended

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_call.finish(abandoned=True)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._self_call.collected()


class AsyncStreamProxy(wrapt.ObjectProxy[Any]):
    """Async stream (``openai.AsyncStream``, ``anthropic.AsyncStream``...)."""

    def __init__(self, wrapped: Any, call: Call) -> None:
        super().__init__(wrapped)
        self._self_call = call

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        call: Call = self._self_call
        try:
            event = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            call.finish()
            raise
        except BaseException as exc:
            call.finish(error=exc)
            raise
        _on_chunk(call, event, _now())
        return event

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_call.finish(abandoned=True)

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_call.finish(abandoned=True)

    async def aclose(self) -> Any:
        try:
            closer = getattr(self.__wrapped__, "aclose", None) or self.__wrapped__.close
            return await closer()
        finally:
            self._self_call.finish(abandoned=True)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._self_call.collected()


def _wrap_parsed(proxy: Any, parsed: Any, stream_types: tuple[type, ...], async_stream_types: tuple[type, ...]) -> Any:
    call: Call = proxy._self_call
    if proxy._self_parsed is not None and proxy._self_parsed[0] is parsed:
        return proxy._self_parsed[1]
    if async_stream_types and isinstance(parsed, async_stream_types):
        out: Any = AsyncStreamProxy(parsed, call)
    elif stream_types and isinstance(parsed, stream_types):
        out = StreamProxy(parsed, call)
    else:
        call.read(parsed)
        out = parsed
    proxy._self_parsed = (parsed, out)
    return out


class RawResponseProxy(wrapt.ObjectProxy[Any]):
    """``with_raw_response`` / ``with_streaming_response`` result whose ``parse()`` is sync.

    ``parse()`` returns a stream proxy for streams (the call ends with the stream) or the parsed body
    (the call ends now). ``close()`` or collection without ``parse()`` ends the call with what is known.
    """

    def __init__(
        self, wrapped: Any, call: Call, stream_types: tuple[type, ...], async_stream_types: tuple[type, ...]
    ) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_types = (stream_types, async_stream_types)
        self._self_parsed: tuple[Any, Any] | None = None

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self.__wrapped__.parse(*args, **kwargs)
        try:
            return _wrap_parsed(self, parsed, *self._self_types)
        except Exception:
            _log.debug("llmotel could not wrap a parsed raw response", exc_info=True)
            return parsed

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            if self._self_parsed is None:
                self._self_call.finish()

    def __del__(self) -> None:
        try:
            if self._self_parsed is None:
                self._self_call.collected()
        except Exception:
            pass


class AsyncRawResponseProxy(RawResponseProxy):
    """Async ``with_streaming_response`` result (``parse()``, ``close()`` are coroutines)."""

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = await self.__wrapped__.parse(*args, **kwargs)
        try:
            return _wrap_parsed(self, parsed, *self._self_types)
        except Exception:
            _log.debug("llmotel could not wrap a parsed raw response", exc_info=True)
            return parsed

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            if self._self_parsed is None:
                self._self_call.finish()


def raw_proxy(
    raw: Any, call: Call, stream_types: tuple[type, ...], async_stream_types: tuple[type, ...]
) -> RawResponseProxy:
    cls = AsyncRawResponseProxy if inspect.iscoroutinefunction(type(raw).parse) else RawResponseProxy
    return cls(raw, call, stream_types, async_stream_types)
