"""The fault-suite harness: run one scenario with and without llmotel and compare what the user sees.

A ``Case`` is a function ``run(env)`` (sync or async) that does what an application would do and returns
what the application would get. ``check(case, tel)`` runs it ``reps`` times bare and ``reps`` times
instrumented, alternating, each run against a FRESH simulator with the same seed (so request ids, texts
and timings are the same in both variants), and asserts:

- the outcome is identical: the returned value (models compared as JSON dumps) or the exception's type
  and message;
- the fastest wall time of each variant is the same within noise (``|inst - bare| <= 0.25 s + 50 %``; the
  simulator's clock and retry jitter are the noise, not llmotel, whose overhead is microseconds);
- the instrumented run exported ``case.spans`` LLM spans (0 only with ``case.no_span`` saying why), and
  every exported LLM span that has phase children is tiled by them exactly.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import itertools
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmotel import _semconv as sc
from llmotel.providers.anthropic import AnthropicInstrumentor
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel_sim import SimServer

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
MSGS = [{"role": "user", "content": "Say something short."}]
PHASE_ORDER = {n: i for i, n in enumerate(["retries", "queue", "prefill", "first_token", "decode"])}


# Loading the CA bundle costs ~80 ms per client; every client here shares one context (loopback is plain HTTP).
_SSL = ssl.create_default_context()


@dataclass
class Env:
    """What one run of a case may use: a fresh simulator, the canned-bytes server, client factories."""

    sim: SimServer
    canned_url: str
    instrumented: bool
    tel: Tel
    clients: list[Any] = field(default_factory=list)
    aclients: list[Any] = field(default_factory=list)

    def openai(self, *, canned: bool = False, **kw: Any) -> openai.OpenAI:
        kw.setdefault("max_retries", 0)
        kw.setdefault("http_client", openai.DefaultHttpxClient(verify=_SSL))
        base = (self.canned_url if canned else self.sim.base_url) + "/v1"
        c = openai.OpenAI(base_url=base, api_key="tenant-acme", **kw)
        self.clients.append(c)
        return c

    def aopenai(self, *, canned: bool = False, **kw: Any) -> openai.AsyncOpenAI:
        kw.setdefault("max_retries", 0)
        kw.setdefault("http_client", openai.DefaultAsyncHttpxClient(verify=_SSL))
        base = (self.canned_url if canned else self.sim.base_url) + "/v1"
        c = openai.AsyncOpenAI(base_url=base, api_key="tenant-acme", **kw)
        self.aclients.append(c)
        return c

    def anthropic(self, *, canned: bool = False, **kw: Any) -> anthropic.Anthropic:
        kw.setdefault("max_retries", 0)
        kw.setdefault("open_telemetry", False)
        kw.setdefault("http_client", anthropic.DefaultHttpxClient(verify=_SSL))
        c = anthropic.Anthropic(base_url=self.canned_url if canned else self.sim.base_url, api_key="tenant-acme", **kw)
        self.clients.append(c)
        return c

    def aanthropic(self, *, canned: bool = False, **kw: Any) -> anthropic.AsyncAnthropic:
        kw.setdefault("max_retries", 0)
        kw.setdefault("open_telemetry", False)
        kw.setdefault("http_client", anthropic.DefaultAsyncHttpxClient(verify=_SSL))
        c = anthropic.AsyncAnthropic(
            base_url=self.canned_url if canned else self.sim.base_url, api_key="tenant-acme", **kw
        )
        self.aclients.append(c)
        return c


@dataclass
class Tel:
    """llmotel's two instrumentors, toggled per run, exporting into memory (plus optional extra processors)."""

    exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)
    tp: TracerProvider = field(default_factory=TracerProvider)
    on: bool = False

    def __post_init__(self) -> None:
        self.tp.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.mp = MeterProvider(metric_readers=[self.reader])

    def add_processor(self, processor: SpanProcessor) -> None:
        self.tp.add_span_processor(processor)

    def instrument(self) -> None:
        OpenAIInstrumentor().instrument(tracer_provider=self.tp, meter_provider=self.mp)
        AnthropicInstrumentor().instrument(tracer_provider=self.tp, meter_provider=self.mp)
        self.on = True

    def uninstrument(self) -> None:
        OpenAIInstrumentor().uninstrument()
        AnthropicInstrumentor().uninstrument()
        self.on = False

    def take(self) -> list[ReadableSpan]:
        gc.collect()
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return spans


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[Env], Any]
    spans: int = 1  # LLM spans the instrumented run must export
    no_span: str = ""  # required when spans == 0: why none is exported
    reps: int = 2
    before: Callable[[Tel], Any] | None = None  # set-up around both variants (e.g. another instrumentation)
    after: Callable[[Tel, Any], None] | None = None
    timed: bool = True

    def __post_init__(self) -> None:
        assert self.spans > 0 or self.no_span, f"{self.name}: explain why no span is exported"


_PORT = re.compile(r"127\.0\.0\.1:\d+")
_VOLATILE = frozenset({"created", "created_at"})


def norm(value: Any) -> Any:
    """A comparable form of what the user got: models as JSON-ish dumps, ports and timestamps removed."""
    if isinstance(value, BaseException):
        return (
            "raised",
            f"{type(value).__module__}.{type(value).__qualname__}",
            norm(str(value)),
            getattr(value, "status_code", None),
        )
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            value = dump(mode="json", warnings=False)
        except Exception:
            value = repr(value)
    if isinstance(value, dict):
        return {str(k): norm(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, (list, tuple)):
        return [norm(v) for v in value]
    if isinstance(value, str):
        return _PORT.sub("HOST", value)
    if isinstance(value, float) and value != value:
        return "nan"
    return value


async def _async_run(case: Case, env: Env) -> Any:
    try:
        return await case.run(env)
    finally:
        for c in env.aclients:
            await c.close()


def _once(case: Case, env: Env) -> tuple[Any, float]:
    t0 = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(case.run):
            got: Any = asyncio.run(_async_run(case, env))
        else:
            got = case.run(env)
        out = ("returned", norm(got))
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        out = norm(exc)
    return out, time.perf_counter() - t0


def llm_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.instrumentation_scope is not None
        and s.instrumentation_scope.name == "llmotel"
        and s.attributes
        and sc.GEN_AI_OPERATION_NAME in s.attributes
    ]


def assert_tiled(spans: list[ReadableSpan]) -> None:
    for parent in llm_spans(spans):
        kids = sorted(
            (s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id),
            key=lambda s: (s.start_time or 0, PHASE_ORDER.get(s.name, 9)),
        )
        if not kids:
            continue
        assert kids[0].start_time == parent.start_time, parent.name
        for a, b in itertools.pairwise(kids):
            assert a.end_time == b.start_time, (a.name, b.name)
            assert (a.end_time or 0) >= (a.start_time or 0)
        assert kids[-1].end_time == parent.end_time
        for k in kids:
            assert k.attributes and k.attributes[sc.LLMOTEL_PHASE_SOURCE] in ("server", "client", "estimated")


@dataclass
class Report:
    bare: list[Any]
    inst: list[Any]
    bare_s: list[float]
    inst_s: list[float]
    spans: list[list[ReadableSpan]]


def check(case: Case, tel: Tel, canned_url: str) -> Report:
    state = case.before(tel) if case.before else None
    rep = Report([], [], [], [], [])
    try:
        for i in range(case.reps):
            for instrumented in (False, True) if i % 2 == 0 else (True, False):
                if instrumented:
                    tel.instrument()
                try:
                    with SimServer(None, seed=1, speed=50.0) as sim:
                        env = Env(sim, canned_url, instrumented, tel)
                        out, dt = _once(case, env)
                        spans = tel.take()  # inside: abandoned streams are collected while the sim is up
                        for c in env.clients:
                            c.close()
                finally:
                    if instrumented:
                        tel.uninstrument()
                (rep.inst if instrumented else rep.bare).append(out)
                (rep.inst_s if instrumented else rep.bare_s).append(dt)
                if instrumented:
                    rep.spans.append(spans)
                else:
                    assert not llm_spans(spans), "an uninstrumented run exported llmotel spans"
    finally:
        if case.after:
            case.after(tel, state)
    assert rep.inst[0] == rep.bare[0], (
        f"{case.name}: user-visible outcome changed\nbare: {rep.bare[0]}\ninst: {rep.inst[0]}"
    )
    assert all(o == rep.bare[0] for o in rep.bare + rep.inst), f"{case.name}: outcome not deterministic"
    if case.timed:
        # min, not median, of the runs: the first run of a case pays the SDK's lazy imports (up to 2 s).
        bare, inst = min(rep.bare_s), min(rep.inst_s)
        assert abs(inst - bare) <= 0.25 + 0.5 * max(bare, inst), (
            f"{case.name}: timing changed bare={bare:.3f}s inst={inst:.3f}s"
        )
    for spans in rep.spans:
        found = llm_spans(spans)
        assert len(found) == case.spans, (case.name, [s.name for s in found])
        assert_tiled(spans)
    return rep
