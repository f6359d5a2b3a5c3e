"""Stream and raw-response hooks: the app gets the client's own object, with its own type.

Streams (``hook_stream``). The Stainless SDKs' streams (``openai.Stream`` / ``AsyncStream``, ``anthropic.Stream`` /
``AsyncStream``) iterate through one instance attribute, ``_iterator``: ``__next__``, ``__iter__``, ``__anext__`` and
``__aiter__`` all read from it (openai >= 1.63 and anthropic 0.40 set it in ``__init__``; anthropic 2.x makes it on
first use, a ``cached_property`` whose value lives in the instance's ``__dict__``). The hook puts a ``HookedIterator``
(``AsyncHookedIterator``) around the original there: the object returned to the app is the SDK's own, ``type(x) is
openai.Stream`` holds, and nothing is subclassed or proxied. ``close()`` (and so ``with`` exit, which calls it) is
seen through the stream classes' ``close`` wrapped once at ``instrument()`` (``closed``). A stream with no such
attribute (a client version without it) gets today's fallback, the wrapt ``StreamProxy`` (docs/sdk.md, "Streams").

Raw responses (``hook_raw``). ``with_raw_response`` / ``with_streaming_response`` results are returned as they are;
the raw-response classes' ``parse`` and ``close`` are wrapped once at ``instrument()`` and look the call up in a weak
registry (``raw_parsed`` / ``raw_closed``): ``parse()`` hooks the stream it returns (the call ends with the stream)
or reads the parsed body (the call ends now). ``close()`` or collection before ``parse()`` ends the call with what
is known. Classes whose ``parse`` is not ours get the fallback ``RawResponseProxy``.

Guarantees (tests/providers prove them, for the hooks and the fallbacks alike):
- The call's span ends exactly once: on exhaustion, on an error raised by the stream, on ``close()`` /
  ``with`` exit (marked ``llmotel.stream.abandoned`` if the stream was not consumed to the end), or when
  the unfinished stream is garbage-collected (abandoned, ended at the last chunk seen).
- Per chunk: one ``perf_counter_ns``, the provider's event reader, counters; nothing allocated. Instrumentation
  errors are swallowed (logged at debug); the provider's own errors propagate unchanged.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

import wrapt

from llmotel.instrument import capture
from llmotel.instrument.call import Call

_log = logging.getLogger(__name__)
_now = time.perf_counter_ns
_chunk = capture.chunk


def _on_chunk(call: Call, event: Any, now: int) -> None:
    content = False
    reader = call.read_event
    if reader is not None:
        try:
            content = reader(event, call.response)
        except Exception:
            _log.debug("llmotel could not read a stream event", exc_info=True)
    _chunk(call.capture, now, content, call.stall_ns)


# ---- the hooks (no proxy) ------------------------------------------------------------------------------------------


class HookedIterator:
    """Stands in the SDK stream's ``_iterator``: forwards every item of the original, observing it on the way.

    The per-event work runs in a generator (``_observe``): the SDK's ``__iter__`` (``for item in self._iterator``)
    takes it from ``__iter__`` and resumes it per event, which costs about a third of calling a Python ``__next__``
    method per event; ``__next__`` (``next(stream)``) draws from the same generator. Ends the call on exhaustion or
    on the stream's error; ``__del__`` ends an unfinished call as collected (the stream, which owns it, was dropped).
    """

    __slots__ = ("_gen", "_next", "call")

    def __init__(self, inner: Iterator[Any], call: Call) -> None:
        self.call = call
        self._gen = _observe(inner, call)
        self._next = self._gen.__next__

    def __iter__(self) -> Iterator[Any]:
        return self._gen

    def __next__(self) -> Any:
        return self._next()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.call.collected()


def _no_content(event: Any, response: Any) -> bool:
    return False


def _observe(inner: Iterator[Any], call: Call) -> Iterator[Any]:
    """The generator that yields every item of ``inner`` for ``call``: ``_observe_each`` when per-chunk gaps are
    kept (``chunk_metrics="each"``), else ``_observe_mean``."""
    return (_observe_each if call.capture.gaps is not None else _observe_mean)(inner, call)


def _observe_mean(inner: Iterator[Any], call: Call) -> Iterator[Any]:
    """Yield every item of ``inner``; per item one clock read, the provider's reader and the capture's counters
    (``capture.chunk``, inlined: a call frame per event is most of what is left to cut). Ends ``call`` when
    ``inner`` ends or raises; a close (``GeneratorExit``) ends nothing: the owner's ``__del__`` does.

    What only this generator writes while the stream runs (last chunk, chunk counts, max gap, first content seen) is
    kept in locals and written through to the capture on every change, so the capture is always current (a close or
    a collection reads it between two events); the max-gap and stall checks share one comparison, with the smaller
    of the two bounds."""
    cap = call.capture
    reader = call.read_event or _no_content
    response = call.response
    stall_ns = call.stall_ns
    clock = _now
    last = cap.last_chunk_ns
    count = cap.chunk_count
    content_count = cap.content_chunk_count
    first_pending = not cap.first_content_ns
    max_gap = cap.max_gap_ns
    bound = max_gap if max_gap < stall_ns else stall_ns  # a gap above it is a new max gap, a stall or both
    try:
        for event in inner:
            now = clock()
            try:
                content = reader(event, response)
            except Exception:
                content = False
                _log.debug("llmotel could not read a stream event", exc_info=True)
            if now - last > bound and last:
                gap = now - last
                if gap > max_gap:
                    max_gap = cap.max_gap_ns = gap
                if gap > stall_ns:
                    cap.stall_count += 1
                bound = max_gap if max_gap < stall_ns else stall_ns
            last = cap.last_chunk_ns = now
            count += 1
            cap.chunk_count = count
            if content:
                content_count += 1
                cap.content_chunk_count = content_count
                if first_pending:
                    first_pending = False
                    cap.first_content_ns = now
                    cap.first_content_chunk = count
            yield event
    except GeneratorExit:
        raise
    except BaseException as exc:
        call.finish(error=exc)
        raise
    call.finish()


def _observe_each(inner: Iterator[Any], call: Call) -> Iterator[Any]:
    """``_observe`` with per-chunk metrics opted into: the general bookkeeping (``_on_chunk``) per event. Not inlined
    as ``_observe_mean`` is: this mode is opt-in and keeps every gap anyway; the benchmarks run the default."""
    try:
        for event in inner:
            _on_chunk(call, event, _now())
            yield event
    except GeneratorExit:
        raise
    except BaseException as exc:
        call.finish(error=exc)
        raise
    call.finish()


class AsyncHookedIterator:
    """The async counterpart of ``HookedIterator`` (stands in an ``AsyncStream``'s ``_iterator``)."""

    __slots__ = ("_anext", "call")

    def __init__(self, inner: AsyncIterator[Any], call: Call) -> None:
        self._anext = inner.__anext__
        self.call = call

    def __aiter__(self) -> AsyncHookedIterator:
        return self

    async def __anext__(self) -> Any:
        call = self.call
        try:
            event = await self._anext()
        except StopAsyncIteration:
            call.finish()
            raise
        except BaseException as exc:
            call.finish(error=exc)
            raise
        _on_chunk(call, event, _now())
        return event

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.call.collected()


def hook_stream(stream: Any, call: Call, is_async: bool) -> Any:
    """Observe ``stream`` for ``call``; return what the app gets: ``stream`` itself when its ``_iterator`` can be
    hooked (already hooked: left as it is), else a ``StreamProxy`` / ``AsyncStreamProxy``. Never raises."""
    try:
        own = vars(stream)
        current = own.get("_iterator")
        if isinstance(current, (HookedIterator, AsyncHookedIterator)):
            return stream
        inner = stream._iterator  # anthropic 2.x: made now (a cached_property), as the first next() would
        if is_async:
            if callable(getattr(inner, "__anext__", None)):
                own["_iterator"] = AsyncHookedIterator(inner, call)
                return stream
        elif callable(getattr(inner, "__next__", None)):
            own["_iterator"] = HookedIterator(inner, call)
            return stream
    except Exception:
        _log.debug("llmotel could not hook a stream; proxying it", exc_info=True)
    return AsyncStreamProxy(stream, call) if is_async else StreamProxy(stream, call)


def hooked_call(stream: Any) -> Call | None:
    """The call observing ``stream`` (hooked or proxied), else None."""
    if isinstance(stream, (StreamProxy, AsyncStreamProxy)):
        call: Call = stream._self_call
        return call
    current = getattr(stream, "__dict__", {}).get("_iterator")
    if isinstance(current, (HookedIterator, AsyncHookedIterator)):
        return current.call
    return None


def closed(stream: Any) -> None:
    """After the stream's ``close()`` ran (``with`` exit included): end its call as abandoned (a no-op when it
    already ended). Never raises."""
    try:
        call = hooked_call(stream)
        if call is not None:
            call.finish(abandoned=True)
    except Exception:
        _log.debug("llmotel could not end a closed stream's call", exc_info=True)


class _RawHook:
    """A raw response's call until ``parse()`` or ``close()`` hands it on; ends it if the response is collected
    first (its registry entry goes with the response)."""

    __slots__ = ("call", "done", "stream_types")

    def __init__(self, call: Call, stream_types: tuple[tuple[type, ...], tuple[type, ...]]) -> None:
        self.call = call
        self.stream_types = stream_types
        self.done = False

    def __del__(self) -> None:
        if not self.done:
            with contextlib.suppress(Exception):
                self.call.collected()


_RAW: weakref.WeakKeyDictionary[Any, _RawHook] = weakref.WeakKeyDictionary()


def hook_raw(raw: Any, call: Call, stream_types: tuple[type, ...], async_stream_types: tuple[type, ...]) -> Any:
    """Observe a raw response for ``call``: ``raw`` itself when its class's ``parse`` is llmotel's wrapper
    (``raw_parsed``), else a ``RawResponseProxy``. Never raises."""
    try:
        if _is_ours(getattr(type(raw), "parse", None)):
            _RAW[raw] = _RawHook(call, (stream_types, async_stream_types))
            return raw
    except Exception:
        _log.debug("llmotel could not hook a raw response; proxying it", exc_info=True)
    return raw_proxy(raw, call, stream_types, async_stream_types)


def _is_ours(function: Any) -> bool:
    wrapper = getattr(function, "_self_wrapper", None)
    return str(getattr(wrapper, "__module__", "")).startswith("llmotel.")


def raw_parsed(raw: Any, parsed: Any) -> Any:
    """After a hooked raw response's ``parse()`` returned ``parsed``: hook the stream it is (the call ends with the
    stream) or read the body (the call ends now). Returns what the app gets. Never raises."""
    try:
        hook = _RAW.get(raw)
        if hook is None:
            return parsed
        hook.done = True
        call = hook.call
        stream_types, async_stream_types = hook.stream_types
        if async_stream_types and isinstance(parsed, async_stream_types):
            return hook_stream(parsed, call, True)
        if stream_types and isinstance(parsed, stream_types):
            return hook_stream(parsed, call, False)
        if not call.finished:
            call.read(parsed)
    except Exception:
        _log.debug("llmotel could not read a parsed raw response", exc_info=True)
    return parsed


def raw_closed(raw: Any) -> None:
    """After a hooked raw response's ``close()``: a call not handed on by ``parse()`` ends now. Never raises."""
    try:
        hook = _RAW.get(raw)
        if hook is not None and not hook.done:
            hook.done = True
            hook.call.finish()
    except Exception:
        _log.debug("llmotel could not end a closed raw response's call", exc_info=True)


# ---- the fallback: wrapt proxies -----------------------------------------------------------------------------------


class StreamProxy(wrapt.ObjectProxy[Any]):
    """Fallback for a sync stream whose ``_iterator`` cannot be hooked."""

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
    """Fallback for an async stream whose ``_iterator`` cannot be hooked."""

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
        out: Any = hook_stream(parsed, call, True)
    elif stream_types and isinstance(parsed, stream_types):
        out = hook_stream(parsed, call, False)
    else:
        call.read(parsed)
        out = parsed
    proxy._self_parsed = (parsed, out)
    return out


class RawResponseProxy(wrapt.ObjectProxy[Any]):
    """Fallback for a ``with_raw_response`` / ``with_streaming_response`` result whose class's ``parse()`` (sync)
    is not hooked.

    ``parse()`` returns the stream (hooked; the call ends with it) or the parsed body (the call ends now).
    ``close()`` or collection without ``parse()`` ends the call with what is known.
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


def is_async_parse(raw: Any) -> bool:
    """Whether ``raw.parse()`` is a coroutine function (llmotel's class-level wrapper looked through)."""
    parse = getattr(type(raw), "parse", None)
    return inspect.iscoroutinefunction(getattr(parse, "__wrapped__", parse))


def raw_proxy(
    raw: Any, call: Call, stream_types: tuple[type, ...], async_stream_types: tuple[type, ...]
) -> RawResponseProxy:
    cls = AsyncRawResponseProxy if is_async_parse(raw) else RawResponseProxy
    return cls(raw, call, stream_types, async_stream_types)
