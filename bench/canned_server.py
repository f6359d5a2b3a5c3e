"""A loopback HTTP server that answers OpenAI chat completions and Anthropic messages with canned bodies, at once.

The overhead benchmark measures the client's CPU, so the server must cost the client nothing but the bytes it reads:
every body is built once at start-up, a plain answer is one JSON document and a stream is exactly `STREAM_EVENTS` SSE
events sent in one write. The headers are the ones the real APIs send (request id, rate limits, processing time), so
an instrumentation that parses them pays for it here as it would in production.

Run: `python bench/canned_server.py [--port 0]`; it prints `PORT <n>` on stdout once it listens.

The same bytes serve the in-process transport of bench/peers/worker.py (no socket at all): `canned(path, stream)` gives
the (status, headers, body) of an answer and `sse_chunks(body)` splits a stream into its events. This module imports
`aiohttp` only to serve, so a peer venv without it can import the builders.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

STREAM_EVENTS = 50
MODEL = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-sonnet-4-5-20250929"
WORDS = [" token", " stream", " bench", " loop", " chunk", " reply", " text", " word"]


def _sse(events: list[tuple[str | None, object]]) -> bytes:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return "".join(out).encode()


def openai_plain() -> bytes:
    text = "".join(WORDS[i % len(WORDS)] for i in range(STREAM_EVENTS - 2))
    return json.dumps(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": 1_763_000_000,
            "model": MODEL,
            "system_fingerprint": "fp_bench01",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 180,
                "completion_tokens": STREAM_EVENTS - 2,
                "total_tokens": 180 + STREAM_EVENTS - 2,
                "prompt_tokens_details": {"cached_tokens": 128, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        }
    ).encode()


def openai_stream() -> bytes:
    """`STREAM_EVENTS` chunks: the role chunk, one chunk per word, the finish chunk; then `[DONE]` (not a chunk)."""

    def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
        return {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion.chunk",
            "created": 1_763_000_000,
            "model": MODEL,
            "system_fingerprint": "fp_bench01",
            "service_tier": "default",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    events: list[tuple[str | None, object]] = [(None, chunk({"role": "assistant", "content": "", "refusal": None}))]
    events += [(None, chunk({"content": WORDS[i % len(WORDS)]})) for i in range(STREAM_EVENTS - 2)]
    events.append((None, chunk({}, "stop")))
    events.append((None, "[DONE]"))
    return _sse(events)


def _claude_usage(output_tokens: int) -> dict[str, object]:
    return {
        "input_tokens": 52,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 128,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


# Around the deltas: message_start, content_block_start, ping | content_block_stop, message_delta, message_stop.
DELTAS = STREAM_EVENTS - 6


def anthropic_plain() -> bytes:
    text = "".join(WORDS[i % len(WORDS)] for i in range(DELTAS))
    return json.dumps(
        {
            "id": "msg_bench0001",
            "type": "message",
            "role": "assistant",
            "model": CLAUDE,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": _claude_usage(DELTAS),
        }
    ).encode()


def anthropic_stream() -> bytes:
    """Exactly `STREAM_EVENTS` events, as the Messages API orders them."""
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_bench0001",
            "type": "message",
            "role": "assistant",
            "model": CLAUDE,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _claude_usage(1),
        },
    }
    events: list[tuple[str | None, object]] = [
        ("message_start", start),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("ping", {"type": "ping"}),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": WORDS[i % len(WORDS)]}},
        )
        for i in range(DELTAS)
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": DELTAS},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    assert len(events) == STREAM_EVENTS
    return _sse(events)


OPENAI_HEADERS = {
    "x-request-id": "req_bench0001",
    "openai-processing-ms": "412",
    "openai-organization": "bench-org",
    "openai-version": "2020-10-01",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "1999820",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "5ms",
    "cf-ray": "8f1d2c3b4a5e6f70-AMS",
}
ANTHROPIC_HEADERS = {
    "request-id": "req_bench0001",
    "anthropic-organization-id": "bench-org",
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2026-11-22T00:00:01Z",
    "anthropic-ratelimit-input-tokens-limit": "2000000",
    "anthropic-ratelimit-input-tokens-remaining": "1999820",
    "anthropic-ratelimit-input-tokens-reset": "2026-11-22T00:00:01Z",
    "anthropic-ratelimit-output-tokens-limit": "400000",
    "anthropic-ratelimit-output-tokens-remaining": "399956",
    "anthropic-ratelimit-output-tokens-reset": "2026-11-22T00:00:01Z",
    "anthropic-ratelimit-tokens-limit": "2400000",
    "anthropic-ratelimit-tokens-remaining": "2399776",
    "anthropic-ratelimit-tokens-reset": "2026-11-22T00:00:01Z",
}


ROUTES = {
    "/v1/chat/completions": (openai_plain, openai_stream, OPENAI_HEADERS),
    "/v1/messages": (anthropic_plain, anthropic_stream, ANTHROPIC_HEADERS),
}
NOT_FOUND = (
    b'{"error":{"type":"not_found","message":"the canned server answers only '
    + b" ".join(path.encode() for path in ROUTES)
    + b'"}}'
)


@cache
def canned(path: str, stream: bool) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of the answer to a POST on `path`; built once per (path, stream), then shared.

    The headers are the API's plus `Content-Type`; the HTTP layer (aiohttp, or the in-process transport) adds
    `Content-Length`.
    """
    route = ROUTES.get(path)
    if route is None:
        return 404, {"Content-Type": "application/json"}, NOT_FOUND
    plain, streamed, headers = route
    content_type = "text/event-stream" if stream else "application/json"
    return 200, {**headers, "Content-Type": content_type}, streamed() if stream else plain()


def sse_chunks(body: bytes) -> list[bytes]:
    """A stream body cut after each event's blank line: what a server that flushes per event would send."""
    parts = body.split(b"\n\n")
    chunks = [part + b"\n\n" for part in parts[:-1]]
    return [*chunks, parts[-1]] if parts[-1] else chunks


def wants_stream(request_body: bytes) -> bool:
    """Whether a request body asks for a stream, without parsing it (the in-process transport runs in the client's
    process, whose CPU is measured). Both SDKs serialise with `json.dumps`' default separators."""
    return b'"stream": true' in request_body or b'"stream":true' in request_body


def make_app() -> web.Application:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        status, headers, payload = canned(request.path, bool(body.get("stream")))
        return web.Response(status=status, body=payload, headers=headers)

    app = web.Application()
    for path in ROUTES:
        app.router.add_post(path, handle)
    return app


async def _serve(port: int) -> None:
    from aiohttp import web

    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    try:
        asyncio.run(_serve(args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
