"""Loopback recording proxy in front of llama-server: keeps the server's ``timings`` as truth, hides them.

Runs in its own process (``python bench/real/proxy.py --upstream URL``; prints its base URL on the first
line of stdout and serves until stdin closes), so its event loop shares no GIL with the measured client.
All its timestamps are ``time.perf_counter_ns()``, i.e. CLOCK_MONOTONIC, the same clock as the client's
in another process on the same Linux machine, so they can be placed on the client's timeline directly.

Per call (matched by the ``x-bench-call`` request header the harness sets) it records:

- ``arrival_ns``: the handler ran (request line and headers parsed), before the body was read;
- ``upstream_headers_ns``, ``first_byte_ns``: llama-server's response headers / first body bytes;
- ``first_event_ns`` / ``first_content_ns``: the first SSE data event / the first with non-empty content;
- ``client_headers_ns``: when the client was sent its response headers; ``end_ns``: upstream finished;
- ``first_timings`` (the ``timings`` object of the first event: ``prompt_ms`` is final once the first token
  is sampled) and ``timings`` (the last one seen: the final ``predicted_*``).

What the client sees: the same body with every ``timings`` object removed (each stream chunk carries one
in this llama.cpp), and no upstream headers but the content type. Header modes:

- ``first_token``: the client's response headers are sent with the first SSE data event. This is what
  llama-server itself does (``tools/server/server-context.cpp``: a stream waits for its first result
  before answering) and what hosted APIs do.
- ``early``: for streams, the client gets ``200`` and ``text/event-stream`` headers as soon as the request
  arrived, before the server has done anything (what vLLM and TGI do). Non-streaming responses always get
  their headers with the body.

``GET /_bench/truth`` returns every recorded call (``{call id: record}``) and clears the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web

CALL_HEADER = "x-bench-call"
_STRIPPED = ("timings",)


def _now() -> int:
    return time.perf_counter_ns()


def _strip(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Remove the server's timing objects in place; return the (last) ``timings`` that was there."""
    found = None
    for key in _STRIPPED:
        value = obj.pop(key, None)
        if isinstance(value, dict):
            found = value
    return found


def _has_content(obj: dict[str, Any]) -> bool:
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"):
            return True
    return False


class Proxy:
    def __init__(self, upstream: str, headers_mode: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.headers_mode = headers_mode
        self.truth: dict[str, dict[str, Any]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No total timeout: a 1-slot server with a long queue may take minutes for the last caller.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_read=600),
                # A new upstream connection per request: llama-server closes idle keep-alive connections,
                # and a request sent on one it just closed fails (seen once per ~100 calls). The connect
                # (~0.1 ms on loopback) is part of the request path, which the truth's queue includes.
                connector=aiohttp.TCPConnector(limit=0, force_close=True),
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def truth_handler(self, _request: web.Request) -> web.Response:
        data, self.truth = self.truth, {}
        return web.json_response(data)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrival = _now()
        call = request.headers.get(CALL_HEADER, "")
        raw = await request.read()
        rec: dict[str, Any] = {"arrival_ns": arrival, "body_read_ns": _now(), "path": request.path}
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        stream = isinstance(body, dict) and body.get("stream") is True
        rec["stream"] = stream
        if call:
            self.truth[call] = rec
        session = await self.session()
        # Only what the server needs: the client's own headers (auth, x-stainless-*, ours) stay here.
        fwd = {"content-type": request.headers.get("content-type", "application/json")}
        client_resp: web.StreamResponse | None = None
        if stream and self.headers_mode == "early":
            client_resp = await self._start_stream(request, rec)
        async with session.request(request.method, self.upstream + request.path_qs, data=raw, headers=fwd) as up:
            rec["upstream_headers_ns"] = _now()
            rec["status"] = up.status
            if not stream or not up.headers.get("content-type", "").startswith("text/event-stream"):
                return await self._whole(up, rec, client_resp)
            return await self._stream(request, up, rec, client_resp)

    async def _start_stream(self, request: web.Request, rec: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"content-type": "text/event-stream",
                                                       "cache-control": "no-cache"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)  # StreamResponse sends its headers immediately
        rec["client_headers_ns"] = _now()
        return resp

    async def _whole(self, up: aiohttp.ClientResponse, rec: dict[str, Any],
                     client_resp: web.StreamResponse | None) -> web.StreamResponse:
        data = b""
        async for piece in up.content.iter_any():
            if not data:
                rec["first_byte_ns"] = _now()
            data += piece
        rec["end_ns"] = _now()
        out = data
        try:
            obj = json.loads(data)
            if isinstance(obj, dict):
                timings = _strip(obj)
                if timings is not None:
                    rec["timings"] = rec["first_timings"] = timings
                rec["usage"] = obj.get("usage")
                out = json.dumps(obj, separators=(",", ":")).encode()
        except ValueError:
            pass
        if client_resp is not None:
            # Early headers already promised a stream: report the upstream error as an SSE error event.
            await client_resp.write(b"data: " + json.dumps({"error": {"status": up.status,
                                                                       "body": out.decode(errors="replace")}})
                                    .encode() + b"\n\n")
            await client_resp.write_eof()
            return client_resp
        ctype = up.headers.get("content-type", "application/json").split(";")[0]
        resp = web.Response(status=up.status, body=out, content_type=ctype)
        rec["client_headers_ns"] = _now()
        return resp

    async def _stream(self, request: web.Request, up: aiohttp.ClientResponse, rec: dict[str, Any],
                      client_resp: web.StreamResponse | None) -> web.StreamResponse:
        buf = b""
        events = 0
        async for piece in up.content.iter_any():
            now = _now()
            rec.setdefault("first_byte_ns", now)
            buf += piece
            out = b""
            # SSE events end with a blank line; a piece may hold several events or part of one.
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                out += self._event(event, rec, now, events)
                events += 1
            if out:
                if client_resp is None:
                    client_resp = await self._start_stream(request, rec)
                await client_resp.write(out)
        rec["end_ns"] = _now()
        rec["events"] = events
        if client_resp is None:
            client_resp = await self._start_stream(request, rec)
        # The openai client may close the connection as soon as it has read [DONE], before the chunked
        # terminator: the call is complete by then, so that is not an error.
        with contextlib.suppress(ConnectionError):  # aiohttp's ClientConnectionResetError is one
            if buf:
                await client_resp.write(buf)
            await client_resp.write_eof()
        return client_resp

    @staticmethod
    def _event(event: bytes, rec: dict[str, Any], now: int, index: int) -> bytes:
        lines = []
        for line in event.split(b"\n"):
            if line.startswith(b"data: ") and line[6:].strip() != b"[DONE]":
                try:
                    obj = json.loads(line[6:])
                except ValueError:
                    lines.append(line)
                    continue
                rec.setdefault("first_event_ns", now)
                if isinstance(obj, dict):
                    timings = _strip(obj)
                    if timings is not None:
                        rec.setdefault("first_timings", timings)
                        rec["timings"] = timings
                    if _has_content(obj):
                        rec.setdefault("first_content_ns", now)
                        rec["content_events"] = rec.get("content_events", 0) + 1
                    if obj.get("usage"):
                        rec["usage"] = obj["usage"]
                line = b"data: " + json.dumps(obj, separators=(",", ":")).encode()
            lines.append(line)
        return b"\n".join(lines) + b"\n\n"


async def _serve(args: argparse.Namespace) -> None:
    proxy = Proxy(args.upstream, args.headers)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/_bench/truth", proxy.truth_handler)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"http://{args.host}:{port}", flush=True)
    loop = asyncio.get_running_loop()
    # Serve until the parent closes our stdin (it never has to find and kill us).
    await loop.run_in_executor(None, sys.stdin.read)
    await proxy.close()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="llama-server base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.0.0.0/8)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--headers", choices=["first_token", "early"], default="first_token")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
