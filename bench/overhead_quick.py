"""Quick SDK overhead: client CPU per call, bare openai client vs llmotel-instrumented (plain and 50-chunk stream).

The server is a canned loopback server in a child process (answers at once with fixed bytes), so the client's
CPU (``time.thread_time``: the calling thread only) is what is measured. llmotel runs with an SDK tracer provider
whose processor drops spans after they end (span creation, attributes, the four or five phase children and metric
recording are all paid; export is not) and an SDK meter provider. Rounds alternate bare / instrumented; the
median of the rounds is reported.

Run: ``.venv/bin/python bench/overhead_quick.py [--calls 300] [--rounds 7]`` (writes the "sdk-overhead-quick"
section of bench/RESULTS.md). The peer comparison lives in bench/overhead.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section

CHUNKS = 50


def _serve() -> None:
    import asyncio

    from aiohttp import web

    def chunk(i: int, delta: dict[str, object], finish: str | None = None) -> str:
        body = {
            "id": "chatcmpl-q",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_q",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

    stream = (
        chunk(0, {"role": "assistant", "content": ""})
        + "".join(chunk(i, {"content": f" tok{i}"}) for i in range(CHUNKS))
        + chunk(CHUNKS, {}, "stop")
        + "data: [DONE]\n\n"
    ).encode()
    plain = json.dumps(
        {
            "id": "chatcmpl-q",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_q",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hello " * 40}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60},
        }
    ).encode()
    headers = {
        "x-request-id": "req_q",
        "openai-processing-ms": "12",
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29000",
        "x-ratelimit-reset-tokens": "2s",
    }

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("stream"):
            return web.Response(body=stream, headers={**headers, "content-type": "text/event-stream"})
        return web.Response(body=plain, headers={**headers, "content-type": "application/json"})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"PORT {port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def _measure(client: object, stream: bool, calls: int) -> float:
    """Client CPU microseconds per call (this thread only)."""
    create = client.chat.completions.create  # type: ignore[attr-defined]
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]
    start = time.thread_time_ns()
    for _ in range(calls):
        if stream:
            for _chunk in create(model="gpt-4o-mini", messages=msgs, stream=True):
                pass
        else:
            create(model="gpt-4o-mini", messages=msgs)
    return (time.thread_time_ns() - start) / calls / 1e3


def _direct(
    calls: int, traces: bool = True, metrics: bool = True, client: object = None, rounds: int = 5
) -> dict[str, float]:
    """llmotel's own CPU per call with no I/O: the call lifecycle driven with real openai response objects.

    Stable on a busy machine (no sockets, no server): request read, span start, one attempt with response
    headers, body read or 50 chunk events, span end with phases, metrics. Also the per-chunk cost.
    With ``client`` (a bare openai client on the canned server): the same plain-call lifecycle interleaved
    with real bare client calls ("plain_interleaved" = (client call + lifecycle) - client call).
    """
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from llmotel import config
    from llmotel.instrument import call as call_mod
    from llmotel.instrument import capture, streams
    from llmotel.providers import openai as provider
    from llmotel.record import LLMRequest
    from llmotel.telemetry import spans

    settings = config.resolve()  # resolved once, as instrument() does
    tp = TracerProvider()
    tp.add_span_processor(SpanProcessor())
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    spans.configure(
        tp if traces else NoOpTracerProvider(),
        MeterProvider(metric_readers=[InMemoryMetricReader()]) if metrics else NoOpMeterProvider(),
    )
    chunk = ChatCompletionChunk.model_validate(
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": " tok"}, "finish_reason": None}]}
    )
    body = ChatCompletion.model_validate(
        {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "system_fingerprint": "fp",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60}}
    )
    headers = [("x-request-id", "r"), ("openai-processing-ms", "12"), ("x-ratelimit-remaining-requests", "499"),
               ("x-ratelimit-reset-requests", "120ms"), ("content-type", "application/json"), ("date", "now")]

    class _Resource:  # what a resource method's ``self`` offers the request reader
        class _client:
            base_url = __import__("httpx2").URL("https://api.openai.com/v1/")

    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]

    def one(stream: bool) -> None:
        cap = capture.begin()
        kwargs = {"model": "gpt-4o-mini", "messages": msgs, "stream": stream}
        req = provider.read_chat_request(_Resource(), (), kwargs, settings)
        call = call_mod.Call(
            req, cap, spans.start(req, cap, ""), provider.read_chat_result, provider.read_chat_chunk, settings
        )
        call.attempt_sent()
        call.attempt_answered(200, headers)
        if stream:
            for _ in range(CHUNKS):
                streams._on_chunk(call, chunk, time.perf_counter_ns())
            call.finish()
        else:
            call.read(body)

    out: dict[str, float] = {}
    for stream in (False, True):
        for _ in range(100):
            one(stream)
        start = time.thread_time_ns()
        for _ in range(calls):
            one(stream)
        out["stream" if stream else "plain"] = (time.thread_time_ns() - start) / calls / 1e3
    if client is not None:
        create = client.chat.completions.create  # type: ignore[attr-defined]
        bare: list[float] = []
        mixed: list[float] = []
        for _ in range(rounds):
            for with_lifecycle, into in ((False, bare), (True, mixed)):
                start = time.thread_time_ns()
                for _ in range(calls):
                    create(model="gpt-4o-mini", messages=msgs)
                    if with_lifecycle:
                        one(False)
                into.append((time.thread_time_ns() - start) / calls / 1e3)
        out["plain_interleaved"] = statistics.median(mixed) - statistics.median(bare)
    req = LLMRequest(provider="openai", operation="chat", request_model="m")
    cap = capture.begin()
    call = call_mod.Call(
        req, cap, spans.start(req, cap, ""), provider.read_chat_result, provider.read_chat_chunk, settings
    )
    n = 200_000
    start = time.thread_time_ns()
    for _ in range(n):
        streams._on_chunk(call, chunk, time.perf_counter_ns())
    out["chunk_ns"] = (time.thread_time_ns() - start) / n
    return out


def _lowest(run: Callable[[], dict[str, float]], repeats: int = 7) -> dict[str, float]:
    """Per key, the lowest of ``repeats`` runs: a run only ever gets slower from interference (other processes,
    a collection landing in it), so the lowest is the steadiest estimate of the code's own cost."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        for key, value in run().items():
            best[key] = min(best.get(key, value), value)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only; do not update bench/RESULTS.md")
    args = parser.parse_args()
    if args.serve:
        _serve()
        return

    from openai import OpenAI
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from llmotel.providers.openai import OpenAIInstrumentor

    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline() if server.stdout else ""
        port = int(line.split()[1])
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0)
        tp = TracerProvider()
        tp.add_span_processor(SpanProcessor())  # spans are built and ended; nothing is exported
        mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
        inst = OpenAIInstrumentor()
        results: dict[tuple[str, bool], list[float]] = {}
        for stream in (False, True):
            _measure(client, stream, 30)  # warm-up
            for _ in range(args.rounds):
                results.setdefault(("bare", stream), []).append(_measure(client, stream, args.calls))
                inst.instrument(tracer_provider=tp, meter_provider=mp)
                _measure(client, stream, 5)
                results.setdefault(("llmotel", stream), []).append(_measure(client, stream, args.calls))
                inst.uninstrument()
        # The same plain-call rounds with the cyclic garbage collector paused: separates llmotel's own CPU
        # from the extra collector passes its (and the OTel SDK's) allocations trigger.
        for _ in range(args.rounds):
            gc.collect()
            gc.disable()
            try:
                results.setdefault(("bare-nogc", False), []).append(_measure(client, False, args.calls))
                inst.instrument(tracer_provider=tp, meter_provider=mp)
                results.setdefault(("llmotel-nogc", False), []).append(_measure(client, False, args.calls))
                inst.uninstrument()
            finally:
                gc.enable()
        interleaved = _direct(args.calls, client=client, rounds=args.rounds)["plain_interleaved"]
    finally:
        server.terminate()
        server.wait()

    rows = []
    for stream, label in ((False, "plain chat call"), (True, f"{CHUNKS}-chunk stream")):
        bare = statistics.median(results[("bare", stream)])
        ours = statistics.median(results[("llmotel", stream)])
        rows.append(f"| {label} | {bare:.0f} | {ours:.0f} | {ours - bare:+.0f} | {(ours - bare) / bare * 100:+.1f} % |")
    bare_nogc = statistics.median(results[("bare-nogc", False)])
    ours_nogc = statistics.median(results[("llmotel-nogc", False)])
    rows.append(
        f"| plain chat call, GC paused | {bare_nogc:.0f} | {ours_nogc:.0f} | {ours_nogc - bare_nogc:+.0f} | "
        f"{(ours_nogc - bare_nogc) / bare_nogc * 100:+.1f} % |"
    )
    direct = _lowest(lambda: _direct(1000))
    no_metrics = _lowest(lambda: _direct(1000, metrics=False))
    bare_logic = _lowest(lambda: _direct(1000, traces=False, metrics=False))
    load = os.getloadavg()[0]
    table = "\n".join(
        [
            "## SDK overhead (quick): client CPU per call, bare openai vs llmotel",
            "",
            f"Machine: {machine()}. openai client over loopback to a canned server in a child process;",
            "CPU of the calling thread (`time.thread_time`), median of "
            f"{args.rounds} alternating rounds of {args.calls} calls. llmotel: SDK tracer provider (spans built, "
            "not exported) + SDK meter provider, all phase children on.",
            "Reproduce: `.venv/bin/python bench/overhead_quick.py`.",
            "",
            "| call | bare µs | llmotel µs | added µs | added |",
            "| --- | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            "llmotel's own work, no I/O (the call lifecycle driven directly with real openai response objects;",
            "lowest of 7 runs of 1,000 calls): "
            f"**{direct['plain']:.0f} µs** per plain call, **{direct['stream']:.0f} µs** per 50-chunk stream call, "
            f"**{direct['chunk_ns']:.0f} ns** per stream chunk (clock read + event reader + counters). Of the plain "
            f"call: OTel SDK metric recording ≈ {direct['plain'] - no_metrics['plain']:.0f} µs, "
            f"OTel SDK spans (parent + 4 phases) ≈ {no_metrics['plain'] - bare_logic['plain']:.0f} µs, "
            f"llmotel logic incl. the phase model and energy estimate ≈ {bare_logic['plain']:.0f} µs "
            "(no-op providers swapped in).",
            "",
            "The loopback figure is 2-3.5x the no-I/O figure in every run. It is not the garbage collector (row",
            "\"GC paused\"; llmotel creates no reference cycles, checked with gc.DEBUG_SAVEALL) and not hidden work:",
            "interleaved with real bare client calls (each lifecycle right after a client call, as",
            f"in production), the identical plain-call lifecycle costs **{interleaved:.0f} µs** instead of its",
            "tight-loop figure — consistent with CPU caches and branch predictors being refilled by the client's code",
            "between our calls (not measured directly). Treat the loopback table as the user-visible cost.",
            "",
            f"Load average during the run: {load:.1f} on {os.cpu_count()} cores (a shared machine: the loopback",
            "table is noisy).",
        ]
    )
    print(table)
    if not args.no_write:
        write_section("sdk-overhead-quick", table)


if __name__ == "__main__":
    main()
