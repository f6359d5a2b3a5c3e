"""Faults the simulator does not make: a loopback server answering with exact canned bytes.

``x-canned: NAME`` picks the answer (``BODIES``). Used for truncated SSE (a clean end of body with no
terminator), unknown event types, wrong JSON types inside stream events and bodies, and bodies that are
not objects. The simulator (``llmotel_sim``) stays the source of every other fault.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import web

_OAI = {"id": "chatcmpl-c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
_ANT_START = {
    "type": "message_start",
    "message": {
        "id": "msg_c1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    },
}


def _chunk(**kw: Any) -> dict[str, Any]:
    return {**_OAI, **kw}


def _delta(text: str) -> dict[str, Any]:
    return _chunk(choices=[{"index": 0, "delta": {"content": text}, "finish_reason": None}])


def _sse(events: list[Any], named: bool = False) -> bytes:
    out = []
    for e in events:
        if isinstance(e, bytes):
            out.append(e)
            continue
        data = json.dumps(e)
        name = f"event: {e['type']}\n" if named and isinstance(e, dict) and "type" in e else ""
        out.append(f"{name}data: {data}\n\n".encode())
    return b"".join(out)


_ANT_BLOCK = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}


def _ant_delta(text: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}


# name -> (content type, body)
BODIES: dict[str, tuple[str, bytes]] = {
    # OpenAI chat streams
    "oai_truncated_sse": ("text/event-stream", _sse([_delta("Hel"), _delta("lo")])),
    "oai_truncated_mid_event": ("text/event-stream", _sse([_delta("Hel")]) + b'data: {"id": "chatcmpl-c1", "cho'),
    "oai_unknown_events": (
        "text/event-stream",
        _sse(
            [
                b": keep-alive comment\n\n",
                _chunk(object="chat.completion.chunk.v9", choices=[], future_field={"x": [1, 2]}),
                b'event: future.thing\ndata: {"type": "future.thing", "choices": []}\n\n',
                _delta("Hi"),
                _chunk(choices=[{"index": 0, "delta": {"future_delta": "z"}, "finish_reason": "future_reason"}]),
                b"data: [DONE]\n\n",
            ]
        ),
    ),
    "oai_wrong_types_stream": (
        "text/event-stream",
        _sse(
            [
                _chunk(id=None, model=7, choices="not-a-list"),
                _chunk(choices=[{"delta": "str-delta", "finish_reason": 3}]),
                _chunk(choices=[None, 5, {"delta": None}]),
                _delta("ok"),
                _chunk(
                    choices=[],
                    usage={
                        "prompt_tokens": 10**30,
                        "completion_tokens": -1,
                        "prompt_tokens_details": "x",
                        "completion_tokens_details": [1],
                    },
                ),
                _chunk(choices=[], usage="not-a-dict"),
                _chunk(choices=[], usage={"prompt_tokens": "3", "completion_tokens": 2**64}),
                b"data: [DONE]\n\n",
            ]
        ),
    ),
    "oai_body_wrong_types": (
        "application/json",
        json.dumps(
            {
                "id": 5,
                "object": "chat.completion",
                "created": "yesterday",
                "model": None,
                "system_fingerprint": [],
                "service_tier": {"t": 1},
                "choices": [{"index": 0, "message": "not-a-message", "finish_reason": {"r": 1}}, None],
                "usage": {
                    "prompt_tokens": 1e308,
                    "completion_tokens": True,
                    "prompt_tokens_details": {"cached_tokens": "9"},
                    "completion_tokens_details": None,
                },
            }
        ).encode(),
    ),
    "oai_body_not_object": ("application/json", b"[1, 2, 3]"),
    "oai_body_empty": ("application/json", b""),
    "oai_body_nan": (
        "application/json",
        b'{"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, '
        b'"message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}], '
        b'"usage": {"prompt_tokens": NaN, "completion_tokens": Infinity, "total_tokens": -Infinity}}',
    ),
    # OpenAI responses stream
    "oai_responses_unknown_events": (
        "text/event-stream",
        _sse(
            [
                {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_c1", "model": None}},
                {"type": "response.future_event", "sequence_number": 1, "payload": [1, 2]},
                {
                    "type": "response.output_text.delta",
                    "sequence_number": 2,
                    "delta": "Hi",
                    "item_id": "i",
                    "output_index": 0,
                    "content_index": 0,
                },
                {
                    "type": "response.completed",
                    "sequence_number": 3,
                    "response": {
                        "id": "resp_c1",
                        "status": 7,
                        "usage": {"input_tokens": "3", "output_tokens": None},
                        "output": "nope",
                        "incomplete_details": "x",
                    },
                },
            ],
            named=True,
        ),
    ),
    # Anthropic streams
    "ant_truncated_sse": (
        "text/event-stream",
        _sse([_ANT_START, _ANT_BLOCK, _ant_delta("Hel"), _ant_delta("lo")], named=True),
    ),
    "ant_truncated_mid_event": (
        "text/event-stream",
        _sse([_ANT_START, _ANT_BLOCK, _ant_delta("Hel")], named=True) + b'event: content_block_delta\ndata: {"ty',
    ),
    "ant_unknown_events": (
        "text/event-stream",
        _sse(
            [
                _ANT_START,
                {"type": "future_event", "payload": {"a": 1}},
                _ANT_BLOCK,
                {"type": "content_block_delta", "index": 0, "delta": {"type": "future_delta", "x": 1}},
                _ant_delta("Hi"),
                {"type": "content_block_stop", "index": 0},
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "future_reason"},
                    "usage": {"output_tokens": 2},
                    "future": True,
                },
                {"type": "message_stop"},
            ],
            named=True,
        ),
    ),
    "ant_wrong_types_stream": (
        "text/event-stream",
        _sse(
            [
                {"type": "message_start", "message": {"id": 5, "model": [], "usage": "nope"}},
                {"type": "content_block_start", "index": 0, "content_block": "str"},
                {"type": "content_block_delta", "index": 0, "delta": None},
                _ant_delta("ok"),
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": 5},
                    "usage": {
                        "output_tokens": 2**70,
                        "input_tokens": -3,
                        "cache_read_input_tokens": 1e300,
                        "cache_creation": "x",
                        "output_tokens_details": [1],
                    },
                },
                {"type": "message_stop"},
            ],
            named=True,
        ),
    ),
    "ant_body_wrong_types": (
        "application/json",
        json.dumps(
            {
                "id": None,
                "type": "message",
                "role": "assistant",
                "model": 3,
                "content": "not-a-list",
                "stop_reason": {"x": 1},
                "usage": [1, 2, 3],
            }
        ).encode(),
    ),
    "ant_body_not_object": ("application/json", b'"just a string"'),
}


class CannedServer:
    """``with CannedServer() as c: c.base_url``: answers every POST with ``BODIES[x-canned]``."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        name = request.headers.get("x-canned", "")
        if name not in BODIES:
            return web.json_response({"error": {"message": f"unknown x-canned {name!r}"}}, status=400)
        ctype, body = BODIES[name]
        if ctype == "text/event-stream":
            resp = web.StreamResponse(status=200, headers={"content-type": ctype, "request-id": "req_canned"})
            await resp.prepare(request)
            await resp.write(body)
            await resp.write_eof()
            return resp
        return web.Response(body=body, status=200, headers={"content-type": ctype, "request-id": "req_canned"})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> CannedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
