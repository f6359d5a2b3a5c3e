"""Real-server phase benchmark: llmotel's estimated queue / prefill against llama-server's own timing.

For each workload: start llama-server (llama.cpp, CPU, a tiny random-weight model written by model.py) and
the recording proxy (proxy.py) in front of it; drive the real ``openai`` client, instrumented by llmotel,
from one or more threads; read every call's phase spans back; score them against the server's truth that
the proxy kept and hid from the client. Definitions, workloads and the recording format: README.md here.

    .venv/bin/python bench/real/harness.py                     # every workload, writes recordings
    .venv/bin/python bench/real/harness.py --quick -w idle     # a smoke run of one workload
    .venv/bin/python bench/real/harness.py --write-results     # also replace the section in bench/RESULTS.md

LLAMA_SERVER=/path/to/llama-server skips the build (bench/real/build_llama.sh otherwise builds it once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Each workload must start from an empty phase model: never load or save learned state from a file.
os.environ.pop("LLMOTEL_PHASE_MODEL_STATE", None)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from model import Dims, write_model  # noqa: E402

CACHE = HERE.parent / ".cache" / "llama"
RECORDINGS = ROOT / "tests" / "data" / "real_server"
PHASES = ("retries", "queue", "prefill", "first_token", "decode")
CALL_HEADER = "x-bench-call"
# llama-server compute threads. One: the client and the proxy need a core for their timestamps, and ggml's
# threads meet at a barrier after every op, so two threads on a core shared with anything else make steps
# erratic (a 2-core machine measured decode steps of 40-470 ms instead of ~5 ms while a build ran).
THREADS = int(os.environ.get("BENCH_LLAMA_THREADS", "1"))
CTX_PER_SLOT = 8192


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    slots: int = 1
    callers: int = 1
    headers: str = "first_token"  # first_token (llama-server's own behaviour) | early (vLLM-like)
    stream: bool = True
    include_usage: bool = True
    prefix: bool = False  # shared long system prompts (prefix-cache hits) or fresh random text (misses)
    # Sizes (tokens) of the shared system prompts when ``prefix``; one of them per hit.
    prefix_sizes: tuple[int, ...] = (1500, 1500)
    # Multi-turn chats: each call resends the conversation so far (cached) plus the last reply and a new user
    # message; a chat ends once it passes ``conversation`` tokens and a new one starts.
    conversation: int = 0
    tokens: tuple[int, int] = (50, 2500)  # prompt tokens, log-uniform
    max_tokens: tuple[int, int] = (8, 40)
    # Callers llmotel does not see (another app on the same server): uninstrumented, straight to llama-server, for
    # as long as the recorded callers run. Their calls are load, never recorded.
    unseen: int = 0
    mixed: bool = False  # each call streams or not at random (half and half), on one key
    aio: bool = False  # the callers are asyncio tasks of one event loop with the AsyncOpenAI client, not threads


WORKLOADS: tuple[Workload, ...] = (
    Workload("idle", "1 slot, 1 caller, sequential; streams with usage; headers at the first token "
             "(llama-server's own behaviour)"),
    Workload("idle_early_headers", "as idle, but the proxy sends stream headers on arrival (like vLLM/TGI)",
             headers="early"),
    Workload("idle_no_usage", "as idle, streams without stream_options.include_usage (no token counts)",
             include_usage=False),
    Workload("idle_non_streaming", "as idle, non-streaming calls only (the key never streams)", stream=False),
    Workload("one_slot_4_callers", "1 slot, 4 concurrent callers (requests wait for the slot)", callers=4),
    Workload("one_slot_4_callers_early", "as one_slot_4_callers with stream headers on arrival", callers=4,
             headers="early"),
    Workload("two_slots_4_callers", "2 slots (continuous batching: prefills share batches with the other "
             "slot's prefill/decode), 4 concurrent callers", slots=2, callers=4),
    Workload("prefix_cache", "1 slot, 1 caller; 3 of 4 calls reuse one of two ~1500-token system prompts "
             "(cache hits), 1 of 4 sends a fresh one (miss); 20-400-token user messages", prefix=True,
             tokens=(20, 400)),
    Workload("prefix_sizes", "1 slot, 1 caller; 3 of 4 calls reuse one of four system prompts of 200-3,000 "
             "tokens (hits of many cached sizes), 1 of 4 a fresh one of those sizes; 20-400-token user messages",
             prefix=True, prefix_sizes=(200, 700, 1500, 3000), tokens=(20, 400)),
    Workload("conversation", "1 slot, 1 caller; multi-turn chats: each turn resends the chat so far (a cache "
             "hit of 0-4,000 tokens) plus a 20-300-token user message; a chat restarts past 4,000 tokens",
             conversation=4000, tokens=(20, 300)),
    # Combinations of the above, so that no part of the estimator is only checked where it was tuned.
    Workload("one_slot_4_callers_non_streaming", "1 slot, 4 concurrent callers, non-streaming calls only",
             callers=4, stream=False),
    Workload("two_slots_4_callers_early", "as two_slots_4_callers with stream headers on arrival", slots=2, callers=4,
             headers="early"),
    Workload("prefix_cache_2_callers", "as prefix_cache with 2 concurrent callers on the one slot", prefix=True,
             tokens=(20, 400), callers=2),
    Workload("one_prompt_size", "1 slot, 2 concurrent callers, every prompt ~800 tokens (one size: overhead and "
             "per-token prefill cannot be told apart)", callers=2, tokens=(800, 800)),
    # Added 2026-12-06 with the own-call wait (phases/own_queue.py): where it cannot be the whole queue, a slot
    # count other than 1 or 2, and whole bodies that learn nothing about the slots themselves.
    Workload("one_slot_2_callers_2_unseen", "1 slot, 2 concurrent callers and 2 more from another app (not "
             "instrumented, straight to the server): part of every wait is calls the client never saw",
             callers=2, unseen=2),
    Workload("three_slots_6_callers", "3 slots, 6 concurrent callers, stream headers on arrival", slots=3,
             callers=6, headers="early"),
    Workload("one_slot_4_callers_mixed", "1 slot, 4 concurrent callers; each call streams or returns a whole "
             "body at random (one key)", callers=4, mixed=True),
    # Added 2026-12-06 (session 8) with the slot count whole bodies imply: whole bodies that share batches, and
    # streams without usage behind own calls (token counts estimated, own wait measured).
    Workload("two_slots_4_callers_non_streaming", "2 slots, 4 concurrent callers, non-streaming calls only (whole "
             "bodies share batches: their steps stretch with each other's)", slots=2, callers=4, stream=False),
    Workload("one_slot_4_callers_no_usage", "1 slot, 4 concurrent callers, streams without "
             "stream_options.include_usage", callers=4, include_usage=False),
    # Added 2026-12-07 (session 13) with the prefix book (phases/prefix_book.py): prefix-cache hits that no usage
    # reports (a held-out trial of this combination missed the target by far: queue p90 92 % of TTFT).
    Workload("prefix_cache_no_usage", "as prefix_cache with stream headers on arrival and streams without "
             "stream_options.include_usage (no cached-token count)", prefix=True, tokens=(20, 400), headers="early",
             include_usage=False),
    Workload("conversation_no_usage", "as conversation, streams without stream_options.include_usage",
             conversation=4000, tokens=(20, 300), include_usage=False),
    # Added 2026-12-07 (session 13) with the restore of a cached prefix in the own-call band (model.py's
    # _RESTORE_SHARE): two chats alternating on one slot, each call's cached prefix restored before its prompt.
    Workload("conversation_2_callers", "as conversation with 2 concurrent callers on the one slot (each chat's "
             "cached prefix is restored when its turn comes)", conversation=4000, tokens=(20, 300), callers=2),
)


# ---- processes -------------------------------------------------------------------------------------


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def llama_server_binary() -> str:
    """LLAMA_SERVER, or what build_llama.sh built (or finds already built) in bench/.cache/llama."""
    out = subprocess.run(["bash", str(HERE / "build_llama.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def llama_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


class LlamaServer:
    """One llama-server process per workload: its own slots, an empty prompt cache, its own model alias."""

    def __init__(self, binary: str, model: Path, slots: int, alias: str, log: Path) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.args = [
            "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port), "--alias", alias,
            "-np", str(slots), "-c", str(CTX_PER_SLOT * slots), "--no-kv-unified",
            "-t", str(THREADS), "-tb", str(THREADS),
            # No spinning between batches: a polling thread would take a core from the client and proxy
            # whose timestamps are the measurement.
            "--poll", "0",
            "--jinja",
        ]
        self._log = log.open("w")
        self._proc = subprocess.Popen([binary, *self.args], stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self._proc.returncode}); see {log}")
            with contextlib.suppress(OSError, urllib.error.URLError), \
                    urllib.request.urlopen(self.base_url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
            time.sleep(0.2)
        self.close()
        raise RuntimeError(f"llama-server did not become healthy; see {log}")

    def tokenize(self, text: str) -> int:
        req = urllib.request.Request(self.base_url + "/tokenize", data=json.dumps({"content": text}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return len(json.load(r)["tokens"])

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()


class ProxyProcess:
    """proxy.py in a child process (no shared GIL with the measured client); stops when stdin closes."""

    def __init__(self, upstream: str, host: str, headers: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(HERE / "proxy.py"), "--upstream", upstream, "--host", host, "--headers", headers],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self._proc.stdout is not None
        self.base_url = self._proc.stdout.readline().strip()
        if not self.base_url.startswith("http://"):
            self.close()
            raise RuntimeError(f"proxy did not start: {self.base_url!r}")

    def truth(self) -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(self.base_url + "/_bench/truth", timeout=30) as r:
            data: dict[str, dict[str, Any]] = json.load(r)
            return data

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


# ---- llmotel, through its public instrumentor ----------------------------------------------------------


class Spans:
    """llmotel's OpenAI instrumentor on a private TracerProvider; finished spans indexed by trace id."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

        from llmotel.providers.openai import OpenAIInstrumentor

        by_trace: dict[int, list[ReadableSpan]] = {}
        lock = threading.Lock()

        class Index(SpanProcessor):
            def on_end(self, span: ReadableSpan) -> None:
                if span.context is not None:
                    with lock:
                        by_trace.setdefault(span.context.trace_id, []).append(span)

        self._by_trace, self._lock = by_trace, lock
        provider = TracerProvider()
        provider.add_span_processor(Index())
        self.tracer = provider.get_tracer("bench.real")
        self._instrumentor = OpenAIInstrumentor()
        self._instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider())

    def take(self, trace_id: int, wait_s: float = 2.0) -> dict[str, Any] | None:
        """The call span and its phase children: times relative to the call span's start (ns)."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                spans = list(self._by_trace.get(trace_id, []))
            call = next((s for s in spans if (s.attributes or {}).get("gen_ai.operation.name")), None)
            phases = [s for s in spans if s.name in PHASES and (s.attributes or {}).get("llmotel.phase.source")]
            if call is not None and phases:
                break
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)
        with self._lock:
            self._by_trace.pop(trace_id, None)
        t0 = call.start_time or 0
        out: dict[str, Any] = {"start": 0, "start_wall": t0, "end": (call.end_time or t0) - t0, "phases": {}}
        for s in phases:
            attrs = dict(s.attributes or {})
            out["phases"][s.name] = {
                "start": (s.start_time or t0) - t0,
                "end": (s.end_time or t0) - t0,
                "s": ((s.end_time or 0) - (s.start_time or 0)) / 1e9,
                "source": attrs.get("llmotel.phase.source"),
                "confidence": attrs.get("llmotel.phase.confidence"),
                "samples": attrs.get("llmotel.phase.model.samples"),
                # Interval attributes, whatever llmotel calls them (none yet): kept for the coverage column.
                "interval": {k: v for k, v in attrs.items() if "interval" in k},
            }
        return out

    def close(self) -> None:
        self._instrumentor.uninstrument()


# ---- prompts -----------------------------------------------------------------------------------------


class Text:
    """Random lowercase words from the model's own pieces; ``chars_per_token`` is measured with /tokenize."""

    def __init__(self, rng: random.Random) -> None:
        from model import vocabulary

        tokens, _, types = vocabulary()
        self.words = [t for t, ty in zip(tokens, types, strict=True) if ty == 1 and t.isalpha() and t.islower()]
        self.rng = rng
        self.chars_per_token = 2.0

    def make(self, n_tokens: int) -> str:
        want = max(1, round(n_tokens * self.chars_per_token))
        parts: list[str] = []
        size = 0
        while size < want:
            w = "".join(self.rng.choice(self.words) for _ in range(self.rng.randint(1, 3)))
            parts.append(w)
            size += len(w) + 1
        return " ".join(parts)[:want]

    def calibrate(self, server: LlamaServer) -> None:
        sample = self.make(4000)
        self.chars_per_token = len(sample) / max(server.tokenize(sample), 1)


def _log_uniform(rng: random.Random, lo: int, hi: int) -> int:
    return round(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# ---- one workload ------------------------------------------------------------------------------------


@dataclass
class Call:
    """What the harness did and saw for one call (see README.md, 'Recording format')."""

    call: str
    index: int  # order issued
    worker: int
    stream: bool
    include_usage: bool
    max_tokens: int
    prompt_chars: int
    messages: int
    target_tokens: int
    t0_ns: int = 0  # perf_counter_ns just before the call (aligns the proxy's clock with the client's)
    t0_wall_ns: int = 0  # time_ns read with it: where llmotel's call span started relative to t0_ns
    headers_rel: int = 0
    last_chunk_rel: int = 0
    end_rel: int = 0
    first_content_rel: int = 0
    chunk_count: int = 0
    content_chunk_count: int = 0
    usage: dict[str, int] | None = None
    model: str = ""
    error: str = ""
    reply: str = ""  # the generated text (conversation workloads send it back; never recorded)
    # Streams without usage: the prompt's message-prefix hashes as llmotel made them (this process's salted hash, so
    # equal within one recording only), for the replay's prefix book.
    prefixes: list[list[int]] = field(default_factory=list)
    spans: dict[str, Any] | None = None
    proxy: dict[str, Any] = field(default_factory=dict)


class Runner:
    def __init__(self, wl: Workload, spans: Spans, server: LlamaServer, proxy: ProxyProcess, text: Text,
                 calls: int, seed: int) -> None:
        self.wl, self.spans, self.server, self.proxy, self.text = wl, spans, server, proxy, text
        self.calls = calls
        self.seed = seed
        self.alias = f"tiny-random-{wl.name}"
        self.results: list[Call] = []
        self._lock = threading.Lock()
        self._issued = 0
        self.prefixes = [text.make(n) for n in wl.prefix_sizes] if wl.prefix else []

    def run(self) -> list[Call]:
        per = [self.calls // self.wl.callers + (1 if i < self.calls % self.wl.callers else 0)
               for i in range(self.wl.callers)]
        threads = [] if self.wl.aio else \
            [threading.Thread(target=self._worker, args=(i, n), daemon=True) for i, n in enumerate(per)]
        stop = threading.Event()
        unseen = [threading.Thread(target=self._unseen, args=(i, stop), daemon=True) for i in range(self.wl.unseen)]
        for t in [*unseen, *threads]:
            t.start()
        if self.wl.aio:
            asyncio.run(self._async_workers(per))
        for t in threads:
            t.join()
        stop.set()
        for t in unseen:
            t.join()
        truth = self.proxy.truth()
        for c in self.results:
            c.proxy = truth.get(c.call, {})
        return self.results

    def _unseen(self, worker: int, stop: threading.Event) -> None:
        """Another app's caller: the same kind of calls, uninstrumented, straight to llama-server, until ``stop``."""
        from openai import OpenAI
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        rng = random.Random(self.seed * 1000 + 500 + worker)
        text = Text(rng)
        text.chars_per_token = self.text.chars_per_token
        client = OpenAI(base_url=self.server.base_url + "/v1", api_key="bench", max_retries=0, timeout=900)
        while not stop.is_set():
            messages = [{"role": "user", "content": text.make(_log_uniform(rng, *self.wl.tokens))}]
            with suppress_instrumentation(), contextlib.suppress(Exception):
                for _ in client.chat.completions.create(
                    model=self.alias, messages=messages, max_tokens=rng.randint(*self.wl.max_tokens), stream=True,
                    extra_body={"ignore_eos": True},
                ):
                    pass

    def _worker(self, worker: int, n: int) -> None:
        from openai import OpenAI

        client = OpenAI(base_url=self.proxy.base_url + "/v1", api_key="bench", max_retries=0, timeout=900)
        for call, messages in self._calls(worker, n):
            self._one(client, call, messages)

    async def _async_workers(self, per: list[int]) -> None:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=self.proxy.base_url + "/v1", api_key="bench", max_retries=0, timeout=900)

        async def worker(i: int, n: int) -> None:
            for call, messages in self._calls(i, n):
                await self._one_async(client, call, messages)

        await asyncio.gather(*(worker(i, n) for i, n in enumerate(per)))
        await client.close()

    def _calls(self, worker: int, n: int) -> Iterator[tuple[Call, list[dict[str, str]]]]:
        """A caller's calls in order, each yielded to be made; taken back (its reply in a chat, the result) when
        the next one is asked for."""
        rng = random.Random(self.seed * 1000 + worker)
        text = Text(rng)
        text.chars_per_token = self.text.chars_per_token
        chat: list[dict[str, str]] = []  # the conversation so far (``conversation`` workloads)
        chat_tokens = 0
        for _ in range(n):
            with self._lock:
                index, self._issued = self._issued, self._issued + 1
            n_tokens = _log_uniform(rng, *self.wl.tokens)
            messages: list[dict[str, str]] = []
            prefix_tokens = 0
            if self.wl.prefix:
                # One call in four sends a fresh system prompt: a prefix-cache miss.
                pick = rng.randrange(len(self.prefixes))
                prefix_tokens = self.wl.prefix_sizes[pick]
                system = text.make(prefix_tokens) if rng.random() < 0.25 else self.prefixes[pick]
                messages.append({"role": "system", "content": system})
            if self.wl.conversation:
                if chat_tokens > self.wl.conversation:
                    chat, chat_tokens = [], 0
                messages.extend(chat)
                prefix_tokens = chat_tokens
            messages.append({"role": "user", "content": text.make(n_tokens)})
            max_tokens = rng.randint(*self.wl.max_tokens)
            stream = rng.random() < 0.5 if self.wl.mixed else self.wl.stream
            call = Call(call=f"{self.wl.name}-{index}", index=index, worker=worker, stream=stream,
                        include_usage=stream and self.wl.include_usage, max_tokens=max_tokens,
                        prompt_chars=sum(len(m["content"]) for m in messages), messages=len(messages),
                        target_tokens=n_tokens + prefix_tokens)
            if call.stream and not call.include_usage:
                from llmotel.providers.openai import prompt_prefixes

                call.prefixes = [list(p) for p in prompt_prefixes(messages)]
            yield call, messages
            if self.wl.conversation:
                # The reply goes back as the assistant's turn (random weights: its text is noise; the server
                # caches the tokens it generated, so the next turn hits on all of it but the template's tail).
                chat = [*messages, {"role": "assistant", "content": call.reply or text.make(call.max_tokens)}]
                chat_tokens = call.target_tokens + call.max_tokens
            with self._lock:
                self.results.append(call)

    def _kwargs(self, call: Call, messages: list[dict[str, str]]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.alias, "messages": messages, "max_tokens": call.max_tokens,
            # Exactly max_tokens tokens: random weights may sample </s> (model.py keeps the others out).
            "extra_body": {"ignore_eos": True},
            "extra_headers": {CALL_HEADER: call.call},
        }
        if call.stream:
            kwargs["stream"] = True
            if call.include_usage:
                kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    @staticmethod
    def _chunk(call: Call, chunk: Any, now: int) -> None:
        call.chunk_count += 1
        call.last_chunk_rel = now
        call.model = chunk.model or call.model
        if chunk.choices and (chunk.choices[0].delta.content or chunk.choices[0].delta.tool_calls):
            call.reply += chunk.choices[0].delta.content or ""
            call.content_chunk_count += 1
            call.first_content_rel = call.first_content_rel or now
        if chunk.usage is not None:
            call.usage = _usage(chunk.usage)

    @staticmethod
    def _body(call: Call, result: Any) -> None:
        call.model = result.model
        call.reply = (result.choices[0].message.content or "") if result.choices else ""
        call.usage = _usage(result.usage) if result.usage is not None else None

    @contextlib.contextmanager
    def _timed(self, call: Call) -> Iterator[int]:
        """One call under a root span of its own, stamped from the t0 it yields; an error is recorded on the call
        and left out of the scores, never fatal to the run."""
        with self.spans.tracer.start_as_current_span("bench call") as root:
            call.t0_wall_ns = time.time_ns()
            t0 = time.perf_counter_ns()
            call.t0_ns = t0
            try:
                yield t0
            except Exception as exc:
                call.error = f"{type(exc).__name__}: {exc}"[:300]
            call.end_rel = time.perf_counter_ns() - t0
            trace_id = root.get_span_context().trace_id
        call.spans = self.spans.take(trace_id)

    async def _one_async(self, client: Any, call: Call, messages: list[dict[str, str]]) -> None:
        """As ``_one``, with the AsyncOpenAI client on the run's event loop."""
        kwargs = self._kwargs(call, messages)
        with self._timed(call) as t0:
            if call.stream:
                stream = await client.chat.completions.create(**kwargs)
                call.headers_rel = time.perf_counter_ns() - t0
                async for chunk in stream:
                    self._chunk(call, chunk, time.perf_counter_ns() - t0)
            else:
                result = await client.chat.completions.create(**kwargs)
                call.headers_rel = time.perf_counter_ns() - t0
                self._body(call, result)

    def _one(self, client: Any, call: Call, messages: list[dict[str, str]]) -> None:
        kwargs = self._kwargs(call, messages)
        with self._timed(call) as t0:
            if call.stream:
                stream = client.chat.completions.create(**kwargs)
                call.headers_rel = time.perf_counter_ns() - t0
                for chunk in stream:
                    self._chunk(call, chunk, time.perf_counter_ns() - t0)
            else:
                result = client.chat.completions.create(**kwargs)
                call.headers_rel = time.perf_counter_ns() - t0
                self._body(call, result)


def _usage(u: Any) -> dict[str, int]:
    details = getattr(u, "prompt_tokens_details", None)
    return {"input": int(u.prompt_tokens or 0), "output": int(u.completion_tokens or 0),
            "cached": int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0}


# ---- truth and records -------------------------------------------------------------------------------


def record(wl: Workload, c: Call, order: int, origin_ns: int = 0) -> dict[str, Any] | None:
    """One call as committed test data: request facts, the client-side capture, what the client was told,
    the server's truth on the client's timeline, and llmotel's live estimate. None if unusable. ``start_ns``
    places the call on the run's monotonic clock (``origin_ns``: the first call's t0), so a replay sees which
    calls overlapped (format 2; own streams that shared a prefill pass, phases/passes.py)."""
    p, s = c.proxy, c.spans
    timings = p.get("timings") or {}
    first_timings = p.get("first_timings") or timings
    if c.error or not s or "prompt_ms" not in first_timings or "first_byte_ns" not in p:
        return None
    phases = s["phases"]
    # llmotel's call started ``offset`` ns after the harness's t0 (a few us; ms when the thread was
    # descheduled in between on a loaded machine): its span's wall start against the harness's wall t0.
    offset = s["start_wall"] - c.t0_wall_ns
    end = s["end"]

    def own(rel: int) -> int:
        return min(max(rel - offset, 0), end)

    # The capture llmotel itself used: its spans' boundaries (start, attempt sent, first content, end);
    # headers and the last chunk from the harness's stamps around the same call, moved to llmotel's origin.
    attempt = phases["queue"]["start"]
    capture = {
        "start": 0,
        "attempt_start": attempt,
        "headers": own(c.headers_rel),
        "first_content": phases["decode"]["start"] if c.stream and c.first_content_rel else 0,
        "last_chunk": own(c.last_chunk_rel) if c.stream else 0,
        "end": end,
        "chunk_count": c.chunk_count,
        "content_chunk_count": c.content_chunk_count,
    }
    prompt_s = float(first_timings["prompt_ms"]) / 1e3
    predicted_s = float(timings.get("predicted_ms", 0.0)) / 1e3
    send = c.t0_ns + offset + attempt  # llmotel's attempt start on the shared monotonic clock
    # Stream: the first event leaves the server right after the first token was sampled, where prompt_ms
    # ends. Non-stream: the body leaves after the last token was sampled, where predicted_ms ends.
    server_done = p["first_byte_ns"]
    prefill_start = server_done - round((prompt_s + (0.0 if c.stream else predicted_s)) * 1e9)
    truth = {
        "queue_s": (prefill_start - send) / 1e9,
        "prefill_s": prompt_s,
        "decode_s": predicted_s,
        "request_path_s": (p["arrival_ns"] - send) / 1e9,
        "server_queue_s": (prefill_start - p["arrival_ns"]) / 1e9,
        "prompt_n": timings.get("prompt_n"),
        "cache_n": timings.get("cache_n"),
        "predicted_n": timings.get("predicted_n"),
    }
    if c.stream:
        truth["first_token_s"] = (capture["first_content"] - attempt) / 1e9 - truth["queue_s"] - prompt_s
    live = {name: {"s": round(ph["s"], 6), "source": ph["source"], "confidence": ph["confidence"],
                   "samples": ph["samples"], **({"interval": ph["interval"]} if ph["interval"] else {})}
            for name, ph in phases.items()}
    return {
        "call": c.call, "index": c.index, "order": order, "worker": c.worker, "offset_ns": offset,
        "start_ns": c.t0_ns + offset - origin_ns,
        "request": {"stream": c.stream, "include_usage": c.include_usage, "max_tokens": c.max_tokens,
                    "prompt_chars": c.prompt_chars, "messages": c.messages, "target_tokens": c.target_tokens,
                    **({"prefixes": c.prefixes} if c.prefixes else {})},
        "capture_ns": capture,
        "response": {"model": c.model, "usage": c.usage},
        "truth": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in truth.items()},
        "live": live,
        "proxy_headers_mode": wl.headers,
    }


def _rounded(rec: dict[str, Any]) -> str:
    return json.dumps(rec, separators=(",", ":"), sort_keys=False)


def write_recording(path: Path, meta: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    """One call per line: small diffs when re-recorded, still one JSON document."""
    lines = ["{", f'"meta": {json.dumps(meta, separators=(",", ":"))},', '"calls": [']
    lines += [_rounded(r) + ("," if i < len(calls) - 1 else "") for i, r in enumerate(calls)]
    lines += ["]", "}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


# ---- main --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _running(binary: str, model: Path, wl: Workload, host: str) -> Iterator[tuple[LlamaServer, ProxyProcess]]:
    server = LlamaServer(binary, model, wl.slots, f"tiny-random-{wl.name}", CACHE / f"server-{wl.name}.log")
    try:
        proxy = ProxyProcess(server.base_url, host, wl.headers)
        try:
            yield server, proxy
        finally:
            proxy.close()
    finally:
        server.close()


def main() -> None:
    from score import render, score_workload

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-w", "--workload", action="append", help="run only these (repeatable)")
    parser.add_argument("--warmup", type=int, default=40, help="calls per workload before scoring starts")
    parser.add_argument("--measured", type=int, default=60, help="scored calls per workload")
    parser.add_argument("--quick", action="store_true", help="10 + 10 calls; no recordings, no RESULTS.md")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dims", default=None, metavar="LAYERS,EMBD,HEADS,KV_HEADS,FF",
                        help="another random-weight model than the default 6,512,8,8,1536 (held-out trials)")
    parser.add_argument("--record-dir", type=Path, default=None,
                        help="where the recordings go (default: tests/data/real_server/run-<date>-seed<seed>)")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--write-results", action="store_true", help="replace the real-server section of "
                        "bench/RESULTS.md")
    args = parser.parse_args()
    names = {w.name for w in WORKLOADS}
    for n in args.workload or ():
        if n not in names:
            parser.error(f"unknown workload {n!r}; one of {', '.join(sorted(names))}")
    chosen = [w for w in WORKLOADS if not args.workload or w.name in args.workload]
    if args.record_dir is None:
        args.record_dir = RECORDINGS / f"run-{time.strftime('%Y-%m-%d', time.gmtime())}-seed{args.seed}"
    warmup, measured = (10, 10) if args.quick else (args.warmup, args.measured)

    from replay import llmotel_source_hash

    src_hash = llmotel_source_hash()  # before the run: the code the instrumentor imported
    binary = llama_server_binary()
    os.environ["LLAMA_SERVER"] = binary  # model.py finds the gguf package in the tree it was built from
    version = llama_version(binary)
    dims = Dims()
    if args.dims:
        layers, embd, heads, kv_heads, ff = (int(v) for v in args.dims.split(","))
        dims = Dims(n_embd=embd, n_layer=layers, n_head=heads, n_head_kv=kv_heads, n_ff=ff)
    gqa = f"-kv{dims.n_head_kv}" if dims.n_head_kv != dims.n_head else ""
    model = CACHE / "model" / f"tiny-random-{dims.n_layer}x{dims.n_embd}{gqa}.gguf"
    if not model.exists():
        write_model(model, dims)
    print(f"llama-server {version} ({binary}); model {model.name}", flush=True)

    spans = Spans()
    rows: list[dict[str, Any]] = []
    load_start = os.getloadavg()
    t_all = time.perf_counter()
    try:
        for i, wl in enumerate(WORKLOADS):
            if wl not in chosen:
                continue
            t = time.perf_counter()
            # A loopback address of its own: llmotel's learning key is (provider, server address, model,
            # region), so no workload's learned state reaches another one's calls.
            host = f"127.0.0.{20 + i}"
            with _running(binary, model, wl, host) as (server, proxy):
                text = Text(random.Random(args.seed))
                text.calibrate(server)
                runner = Runner(wl, spans, server, proxy, text, warmup + measured, args.seed + i)
                calls = runner.run()
                meta_args = server.args
            calls.sort(key=lambda c: c.t0_ns + c.end_rel)  # the order llmotel learned from them
            origin = min((c.t0_ns for c in calls), default=0)
            records = [r for r in (record(wl, c, k, origin) for k, c in enumerate(calls)) if r is not None]
            errors = [c.error for c in calls if c.error]
            row = score_workload(wl.name, records, warmup)
            rows.extend(row)
            main_row = row[0]
            print(f"{wl.name:26s} {time.perf_counter() - t:5.0f}s  calls={len(records)}/{len(calls)} "
                  f"ttft={main_row['ttft_median_ms']:.0f}ms q={main_row['queue_median']:.1%}/"
                  f"{main_row['queue_p90']:.1%} p={main_row['prefill_median']:.1%}/{main_row['prefill_p90']:.1%}"
                  + (f" errors={len(errors)}: {errors[0]}" if errors else ""), flush=True)
            if not args.quick and not args.no_record:
                meta = {
                    "workload": wl.name, "description": wl.description, "warmup": warmup,
                    "llama_cpp": version, "llama_server_args": [a for a in meta_args if not a.startswith("/")],
                    "model": {"alias": f"tiny-random-{wl.name}", "n_embd": dims.n_embd, "n_layer": dims.n_layer,
                              "n_ff": dims.n_ff, "n_head": dims.n_head, "n_head_kv": dims.n_head_kv,
                              "n_vocab": dims.n_vocab,
                              "weights": "random f16"},
                    "server_address": host, "proxy_headers": wl.headers, "slots": wl.slots, "callers": wl.callers,
                    "unseen_callers": wl.unseen,
                    "llmotel_src_sha256": src_hash, "format": 2,
                }
                write_recording(args.record_dir / f"{wl.name}.json", meta, records)
    finally:
        spans.close()
    seconds = time.perf_counter() - t_all
    model_text = (f"{THREADS} thread(s), a {dims.n_layer}-layer n_embd-{dims.n_embd} {dims.n_vocab}-token-vocabulary"
                  " random-weight llama model")
    table = render(rows, warmup, measured, seconds, version, load_start, os.getloadavg(), model_text)
    print()
    print(table)
    if args.write_results and not args.quick:
        from _results import write_section

        write_section("real-server-phases", table)
        print("wrote bench/RESULTS.md section real-server-phases")


if __name__ == "__main__":
    main()
