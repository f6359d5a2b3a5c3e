"""Measure the client CPU of one instrumentation configuration, in whatever venv runs this script.

Started by bench/overhead.py, once per configuration and round, with the interpreter of the venv that has the
configuration's packages. It needs only the standard library, `openai`/`anthropic` and the OpenTelemetry SDK, so the
same file serves the project venv and every peer venv.

Every configuration, bare included, runs under the same telemetry pipeline: an SDK `TracerProvider` with a
`BatchSpanProcessor` into an exporter that counts spans and drops them, and an SDK `MeterProvider` with an
`InMemoryMetricReader` (instruments aggregate, nothing is exported). The instrumentor is instantiated explicitly —
never through entry points, several packages register the same entry-point name — and instrumented once.

Transport (`--transport`): `loopback` sends every call over HTTP to bench/canned_server.py in another process;
`inproc` gives each client an `httpx2` client whose transport is an `httpx2.MockTransport` answering in this process
with the same bytes (canned_server's builders): request building, response parsing, SSE decoding and every
instrumentation's wrappers run as they do over a socket, only the socket (and the other process's scheduling) is gone.
A stream arrives as one chunk per SSE event, decoded incrementally by the SDK.

For each cell (provider x plain/stream) it runs `--prime` calls per state, then `--pairs` pairs of (bare, instrumented)
batches of `--calls` calls (each batch after `--warmup` calls on its fresh client), and reports the process CPU time
(`time.process_time`, all threads, so the span processor's export thread is counted; `getrusage` user/sys alongside)
per call of each batch. The span processor is flushed inside each batch so the export work of the batch's spans lands
in it. Output: one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

SYSTEM = (
    "You are a terse assistant for a logistics company. Answer in at most two sentences, cite the order id when one "
    "is given, never invent tracking numbers, and refuse anything unrelated to shipping, returns or invoices. "
) * 3
CLAUDE = "claude-opus-4-5"
INPROC_BASE_URL = "http://127.0.0.1:8000"  # never connected to: the in-process transport answers

USER = "Where is order 81723? It was due yesterday and the tracking page has not changed since Monday."


class CountingExporter(SpanExporter):
    """Counts what it is given and drops it: export cost is the SDK's batching, not a wire format."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


PATCHED_PACKAGES = ("openai", "anthropic", "httpx2", "httpcore2", "httpx", "httpcore")


def _patch_owners() -> dict[int, tuple[Any, dict[str, Any]]]:
    """Every loaded module of the patched packages and every class they define, with a copy of its namespace."""
    owners: dict[int, tuple[Any, dict[str, Any]]] = {}
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in PATCHED_PACKAGES:
            continue
        owners[id(module)] = (module, dict(vars(module)))
        for value in list(vars(module).values()):
            # type(value), not isinstance: isinstance would load a lazy module proxy (openai.chat, ...).
            package = str(vars(value).get("__module__", "")).split(".")[0] if issubclass(type(value), type) else ""
            if package in PATCHED_PACKAGES:
                owners.setdefault(id(value), (value, dict(vars(value))))
    return owners


def _load_client_modules() -> None:
    """Import what the clients load lazily, so the snapshot sees it before any instrumentor patches it."""
    import anthropic
    import openai

    oai = openai.OpenAI(api_key="sk-bench", base_url="http://127.0.0.1:9/v1")
    ant = anthropic.Anthropic(api_key="sk-ant-bench", base_url="http://127.0.0.1:9")
    for owner, names in (
        (oai, ("chat", "completions", "embeddings", "responses", "beta")),
        (ant, ("messages", "beta", "completions")),
    ):
        for name in names:
            resource_obj = getattr(owner, name, None)
            for sub in ("completions", "messages", "parse", "stream"):
                getattr(resource_obj, sub, None)


class Toggle:
    """Switches a configuration's instrumentation on and off, so bare and instrumented batches alternate in one process.

    Alternating in one process cancels what drifts between processes and over time (CPU frequency, other load on the
    machine, heap growth): the added cost is taken batch pair by batch pair. The instrumentor is instrumented ONCE;
    switching swaps the attributes it patched (found by diffing every module and class of the client packages, and of
    httpx/httpcore, before and after `instrument()`) between the original and the patched object. This does not rely on
    `uninstrument()`, which some peers get wrong (OpenLLMetry's OpenAI `_uninstrument` unwraps nothing on openai 3.x),
    and it is the same mechanism for every configuration. The worker checks the result: bare batches export no span.
    """

    def __init__(self, config: str) -> None:
        self.config = config
        self.providers = ["openai", "anthropic"]
        self.anthropic_tracing = False  # the Anthropic SDK's own spans, in the instrumented batches
        self.patched: list[tuple[Any, str, Any, Any]] = []  # (owner, name, original or MISSING, patched or MISSING)
        self.unrestorable: list[str] = []
        self.missing: dict[str, str] = {}  # provider -> why the configuration cannot instrument it here
        instrumentors: list[Any] = []
        if config == "anthropic-sdk":
            self.providers = ["anthropic"]
            self.anthropic_tracing = True
        elif config.startswith("llmotel"):
            import importlib

            # Each provider plugs in as soon as its module imports; a missing one is reported, not fatal.
            self.providers = []
            for provider, cls in (("openai", "OpenAIInstrumentor"), ("anthropic", "AnthropicInstrumentor")):
                try:
                    instrumentors.append(getattr(importlib.import_module(f"llmotel.providers.{provider}"), cls)())
                    self.providers.append(provider)
                except (ImportError, AttributeError) as exc:
                    self.missing[provider] = f"{type(exc).__name__}: {exc}"
            # llmotel decides what happens to the SDK's spans; its default is what a user gets.
            self.anthropic_tracing = config == "llmotel"
        elif config == "traceloop":
            from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as TraceloopAnthropic
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor as TraceloopOpenAI

            instrumentors = [TraceloopOpenAI(), TraceloopAnthropic()]
        elif config == "genai":
            from opentelemetry.instrumentation.genai.anthropic import AnthropicInstrumentor as GenaiAnthropic
            from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as GenaiOpenAI

            instrumentors = [GenaiOpenAI(), GenaiAnthropic()]
        elif config == "openai-v2":
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2

            instrumentors = [OpenAIV2()]
            self.providers = ["openai"]
        elif config != "bare":
            raise SystemExit(f"unknown config {config!r}")
        self._instrument(instrumentors)

    def _instrument(self, instrumentors: list[Any]) -> None:
        _load_client_modules()
        before = _patch_owners()
        for inst in instrumentors:
            inst.instrument()
        missing = object()
        for owner, old in before.values():
            now = vars(owner)
            for name in set(old) | set(now):
                if name == "__warningregistry__":
                    continue
                was, has = old.get(name, missing), now.get(name, missing)
                if was is not has:
                    self.patched.append((owner, name, was, has))
        self.unrestorable = sorted(
            name
            for name, module in sys.modules.items()
            if name.split(".")[0] in PATCHED_PACKAGES and id(module) not in before
        )
        self._missing = missing
        self.off()

    def _apply(self, on: bool) -> None:
        for owner, name, was, has in self.patched:
            value = has if on else was
            if value is self._missing:
                if name in vars(owner):
                    delattr(owner, name)
            else:
                setattr(owner, name, value)

    def on(self) -> None:
        self._apply(True)

    def off(self) -> None:
        self._apply(False)


class CannedTransport:
    """The in-process stand-in for bench/canned_server.py: same status, headers and body bytes, no socket.

    The answers are built once; per request it only checks whether a stream was asked for (a byte search, not a JSON
    parse: this runs in the measured process, in bare and instrumented batches alike) and wraps the prepared chunks
    in a fresh `httpx2.Response`.
    """

    def __init__(self) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        import httpx2
        from canned_server import canned, sse_chunks, wants_stream

        self._httpx2 = httpx2
        self._wants_stream = wants_stream
        self._answers: dict[tuple[str, bool], tuple[int, list[tuple[str, str]], list[bytes]]] = {}
        for path in ("/v1/chat/completions", "/v1/messages"):
            for stream in (False, True):
                status, headers, body = canned(path, stream)
                items = [*headers.items(), ("Content-Length", str(len(body)))]
                self._answers[path, stream] = (status, items, sse_chunks(body) if stream else [body])

        class Chunks(httpx2.SyncByteStream):
            """The body as a socket would hand it over: a plain answer in one read, a stream one event per read."""

            def __init__(self, chunks: list[bytes]) -> None:
                self._chunks = chunks

            def __iter__(self) -> Iterator[bytes]:
                yield from self._chunks

        self._chunks_cls = Chunks

    def handle(self, request: Any) -> Any:
        key = (request.url.path, self._wants_stream(request.content))
        if key not in self._answers:
            return self._httpx2.Response(404, content=b"not a canned path")
        status, headers, chunks = self._answers[key]
        return self._httpx2.Response(status, headers=headers, stream=self._chunks_cls(chunks))

    def http_client(self, sdk: Any) -> Any:
        """A fresh `http_client` for one SDK client: the SDK's own `DefaultHttpxClient` (its timeouts, limits and
        redirect policy) on the mock transport."""
        return sdk.DefaultHttpxClient(transport=self._httpx2.MockTransport(self.handle))


TRANSPORT: CannedTransport | None = None  # set in main() for --transport inproc


def _http_client(sdk: Any) -> dict[str, Any]:
    return {"http_client": TRANSPORT.http_client(sdk)} if TRANSPORT is not None else {}


def make_call(provider: str, stream: bool, base_url: str, sdk_tracing: bool) -> Callable[[], int]:
    """One call as an application makes it, on a fresh client (an instrumentation may hook client construction).

    Returns the number of chunks/events consumed (0 for plain).
    """
    if provider == "openai":
        import openai

        oai = openai.OpenAI(api_key="sk-bench", base_url=f"{base_url}/v1", max_retries=0, **_http_client(openai))
        messages: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]

        def openai_call() -> int:
            if not stream:
                resp = oai.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=64)
                assert resp.choices[0].message.content
                return 0
            n = 0
            for _chunk in oai.chat.completions.create(
                model="gpt-4o-mini", messages=messages, max_tokens=64, stream=True
            ):
                n += 1
            return n

        return openai_call

    import anthropic

    # None leaves the option to the environment (ANTHROPIC_OPEN_TELEMETRY, set by the driver per configuration).
    ant = anthropic.Anthropic(
        api_key="sk-ant-bench",
        base_url=base_url,
        max_retries=0,
        open_telemetry=None if sdk_tracing else False,
        **_http_client(anthropic),
    )
    msgs: Any = [{"role": "user", "content": USER}]

    def anthropic_call() -> int:
        if not stream:
            resp = ant.messages.create(model=CLAUDE, system=SYSTEM, messages=msgs, max_tokens=64)
            assert resp.content
            return 0
        n = 0
        for _event in ant.messages.create(model=CLAUDE, system=SYSTEM, messages=msgs, max_tokens=64, stream=True):
            n += 1
        return n

    return anthropic_call


def cpu_now() -> tuple[int, float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return time.process_time_ns(), ru.ru_utime, ru.ru_stime


class Markers:
    """Callgrind counter markers (bench/peers/cgmark.c) when running under `valgrind --tool=callgrind`, else nothing."""

    def __init__(self, library: str | None) -> None:
        self._lib: Any = None
        if library:
            import ctypes

            self._lib = ctypes.CDLL(library)
            if not self._lib.cg_on_valgrind():
                self._lib = None

    def start(self) -> None:
        if self._lib is not None:
            self._lib.cg_start()

    def zero(self) -> None:
        if self._lib is not None:
            self._lib.cg_zero()

    def dump(self, label: str) -> None:
        if self._lib is not None:
            self._lib.cg_dump(label.encode())


MARKERS = Markers(None)


def run_batch(
    call: Callable[[], int], provider: TracerProvider, exporter: CountingExporter, calls: int, label: str = ""
) -> dict[str, float]:
    provider.force_flush()
    gc.collect()
    spans0 = exporter.spans
    MARKERS.zero()
    cpu0, u0, s0 = cpu_now()
    wall0 = time.perf_counter_ns()
    for _ in range(calls):
        call()
    provider.force_flush()  # the export work of this batch's spans belongs to this batch
    cpu1, u1, s1 = cpu_now()
    wall1 = time.perf_counter_ns()
    MARKERS.dump(label)
    return {
        "cpu_us": (cpu1 - cpu0) / 1e3 / calls,
        "user_us": (u1 - u0) * 1e6 / calls,
        "sys_us": (s1 - s0) * 1e6 / calls,
        "wall_us": (wall1 - wall0) / 1e3 / calls,
        "spans_per_call": (exporter.spans - spans0) / calls,
        "calls": calls,
    }


def prime(provider_name: str, stream: bool, toggle: Toggle, args: argparse.Namespace) -> None:
    """Untimed calls in both states before anything is measured: one-time work (lazy imports, first metric
    instruments, the interpreter's specialisation of hot code) is not per-call cost. Under callgrind this runs before
    instrumentation starts, where it is cheap."""
    for instrumented in (True, False):
        if instrumented:
            toggle.on()
        call = make_call(provider_name, stream, args.base_url, instrumented and toggle.anthropic_tracing)
        for _ in range(args.prime):
            call()
        if instrumented:
            toggle.off()


def measure_cell(
    provider_name: str,
    stream: bool,
    toggle: Toggle,
    tracer_provider: TracerProvider,
    exporter: CountingExporter,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """`--pairs` (plain: `--plain-pairs`) pairs of (bare batch, instrumented batch), in ABBA order so a linear drift
    cancels."""
    bare: list[dict[str, float]] = []
    inst: list[dict[str, float]] = []
    chunks = 0
    pairs = args.pairs if stream or args.plain_pairs is None else args.plain_pairs
    for pair in range(pairs):
        order = (False, True) if pair % 2 == 0 else (True, False)
        for instrumented in order:
            if instrumented:
                toggle.on()
            call = make_call(provider_name, stream, args.base_url, instrumented and toggle.anthropic_tracing)
            for _ in range(args.warmup):
                chunks = call()
            label = f"{provider_name}:{'stream' if stream else 'plain'}|{int(instrumented)}|{pair}|{args.calls}"
            (inst if instrumented else bare).append(run_batch(call, tracer_provider, exporter, args.calls, label))
            if instrumented:
                toggle.off()
    return {"chunks": chunks, "bare": bare, "instrumented": inst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--transport", choices=("loopback", "inproc"), default="loopback")
    parser.add_argument("--base-url", default=None, help="the canned server's URL (loopback; required there)")
    parser.add_argument("--cells", default="openai:plain,openai:stream,anthropic:plain,anthropic:stream")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls on each batch's fresh client")
    parser.add_argument("--prime", type=int, default=10, help="untimed calls per state and cell, first")
    parser.add_argument("--calls", type=int, default=20, help="calls per batch")
    parser.add_argument("--pairs", type=int, default=20, help="(bare, instrumented) batch pairs per cell")
    parser.add_argument("--plain-pairs", type=int, default=None, help="pairs of a plain cell (default: --pairs)")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    parser.add_argument(
        "--gc-freeze", action=argparse.BooleanOptionalAction, default=True, help="gc.freeze() after priming"
    )
    parser.add_argument("--callgrind-markers", default=None, help="path of cgmark.so: label each batch for callgrind")
    args = parser.parse_args()
    global MARKERS, TRANSPORT
    MARKERS = Markers(args.callgrind_markers)
    if args.transport == "inproc":
        TRANSPORT = CannedTransport()
        args.base_url = args.base_url or INPROC_BASE_URL
    elif not args.base_url:
        parser.error("--transport loopback needs --base-url")
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})

    exporter = CountingExporter()
    tracer_provider = TracerProvider()
    # A queue large enough that no span is ever dropped: dropping would make a span-heavy configuration look cheap.
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1 << 20))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))

    t0 = time.process_time()
    toggle = Toggle(args.config)
    import_cpu_ms = (time.process_time() - t0) * 1e3
    cells = [cell for cell in args.cells.split(",") if cell.split(":")[0] in toggle.providers]
    for cell in cells:
        provider, mode = cell.split(":")
        prime(provider, mode == "stream", toggle, args)
    tracer_provider.force_flush()
    if args.gc_freeze:
        # Everything imported and primed so far (openai's and anthropic's many model classes) moves to the permanent
        # generation: the `gc.collect()` before each batch then costs microseconds instead of ~150 ms, and a full
        # collection that happens to fall inside a batch walks only what the calls allocated, not the import-time
        # heap (one such walk is ~15 ms per call of a 10-call batch: an outlier in one state only).
        gc.collect()
        gc.freeze()
    MARKERS.start()
    results: dict[str, Any] = {}
    for cell in cells:
        provider, mode = cell.split(":")
        if provider in toggle.providers:
            results[cell] = measure_cell(provider, mode == "stream", toggle, tracer_provider, exporter, args)
    json.dump(
        {
            "config": args.config,
            "transport": args.transport,
            "python": sys.version.split()[0],
            "import_cpu_ms": import_cpu_ms,
            "patched": sorted(f"{getattr(o, '__qualname__', o.__name__)}.{n}" for o, n, _, _ in toggle.patched),
            "unrestorable_modules": toggle.unrestorable,
            "missing": toggle.missing,
            "versions": versions(),
            "cells": results,
        },
        sys.stdout,
    )


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        lname = name.lower()
        if lname in ("openai", "anthropic", "opentelemetry-sdk", "llmotel") or (
            lname.startswith("opentelemetry-instrumentation-") or lname == "opentelemetry-util-genai"
        ):
            out[lname] = dist.version
    return dict(sorted(out.items()))


if __name__ == "__main__":
    main()
