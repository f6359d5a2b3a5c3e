"""Load generator: drive a scenario's tenants through the real (and, if available, instrumented) async clients.

Arrivals are a seeded Poisson process per tenant (optionally modulated by a diurnal sine), planned in
simulated seconds and replayed at ``speed``; so a scenario produces the same request plan on every run.
Each request records what the *client* measured (TTFT, total, usage, headers) and, after the run, the
server's ground truth for the same request id.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TextIO

from llmotel_sim.config import ConfigError, SimConfig

TruthFn = Callable[[str], "dict[str, Any] | None"]


@dataclass(slots=True)
class TenantLoad:
    name: str
    provider: str = "openai"  # openai | anthropic
    model: str = ""
    stream: bool = True
    rate: float = 1.0  # requests per simulated second (mean)
    max_inflight: int = 64
    start_s: float = 0.0
    stop_s: float | None = None
    windows: list[list[float]] = field(default_factory=list)  # [[start, stop], ...] overrides start/stop
    input_tokens: int = 0  # extra uncacheable prompt tokens per request (declared with x-sim-input-tokens)
    # When above input_tokens: each request's extra tokens are drawn log-uniformly in [input_tokens,
    # input_tokens_max] from the plan's seeded randomness (requests of one tenant that differ in size).
    input_tokens_max: int = 0
    system_prompt_tokens: int = 0  # a shared, cacheable system prompt
    sessions: int = 1  # conversations served round-robin
    prefix_growth_tokens: int = 0  # each turn appends this much history to its session
    output_tokens: int | None = None
    reasoning_tokens: int = 0
    max_tokens: int | None = None
    region: str | None = None
    cache_control: bool = True  # Anthropic: mark system prompt and history as cacheable
    server_timing: str | None = None

    def active(self, t: float) -> bool:
        if self.windows:
            return any(a <= t < b for a, b in self.windows)
        return t >= self.start_s and (self.stop_s is None or t < self.stop_s)


@dataclass(slots=True)
class LoadSpec:
    duration_s: float = 30.0
    tenants: list[TenantLoad] = field(default_factory=list)
    diurnal_period_s: float = 0.0  # 0 = flat load
    diurnal_amplitude: float = 0.0  # rate multiplier 1 + A*sin(2*pi*t/period)
    # Exercise every tenant's client once before the plan (LoadGenerator.warm_up); off for plans with hundreds of
    # tenants, where it would cost more than the run.
    warm_up: bool = True

    @staticmethod
    def from_config(cfg: SimConfig) -> LoadSpec:
        data = dict(cfg.load)
        if not data.get("tenants"):
            raise ConfigError(f"scenario {cfg.name!r} has no load.tenants to drive")
        allowed = {f.name for f in fields(TenantLoad)}
        tenants = []
        for i, t in enumerate(data.pop("tenants")):
            unknown = sorted(set(t) - allowed)
            if unknown:
                raise ConfigError(f"load.tenants[{i}]: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
            tenants.append(TenantLoad(**t))
        allowed_top = {f.name for f in fields(LoadSpec)} - {"tenants"}
        unknown = sorted(set(data) - allowed_top)
        if unknown:
            raise ConfigError(f"load: unknown key(s) {unknown}; allowed: {sorted(allowed_top)}")
        return LoadSpec(tenants=tenants, **data)


@dataclass(slots=True)
class Arrival:
    at_s: float  # simulated seconds from the start
    tenant: TenantLoad
    session: int
    turn: int
    input_tokens: int | None = None  # this request's own size (TenantLoad.input_tokens_max); None: the tenant's


@dataclass(slots=True)
class Result:
    tenant: str
    provider: str
    session: int
    turn: int
    sched_s: float
    status: int = 0
    error: str = ""
    start_wall: float = 0.0  # perf_counter at send
    ttft_s: float | None = None  # wall seconds to first content
    total_s: float | None = None
    chunks: int = 0
    input_tokens: int | None = None  # as the provider counts it (OpenAI: incl. cached)
    cached_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str = ""
    model: str = ""
    fingerprint: str = ""
    edge: str = ""  # cf-ray suffix
    geo: str = ""  # Anthropic usage.inference_geo
    request_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    truth: dict[str, Any] | None = None
    late_s: float = 0.0  # wall seconds the request was dispatched after its planned time (a busy client)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


def plan(spec: LoadSpec, seed: int) -> list[Arrival]:
    """The deterministic arrival plan: thinning of a Poisson process at the peak diurnal rate."""
    out: list[Arrival] = []
    peak = 1.0 + max(0.0, spec.diurnal_amplitude)
    for index, tenant in enumerate(spec.tenants):
        rng = random.Random(seed * 1_000_003 + index)
        t = 0.0
        count = 0
        if tenant.rate <= 0:
            continue
        while True:
            t += rng.expovariate(tenant.rate * peak)
            if t >= spec.duration_s:
                break
            factor = 1.0
            if spec.diurnal_period_s > 0:
                factor = 1.0 + spec.diurnal_amplitude * math.sin(2 * math.pi * t / spec.diurnal_period_s)
            if rng.random() * peak > factor or not tenant.active(t):
                continue
            session = count % max(1, tenant.sessions)
            size = None
            if tenant.input_tokens_max > tenant.input_tokens > 0:
                low, high = math.log(tenant.input_tokens), math.log(tenant.input_tokens_max)
                size = round(math.exp(rng.uniform(low, high)))
            out.append(Arrival(t, tenant, session, count // max(1, tenant.sessions), size))
            count += 1
    out.sort(key=lambda a: a.at_s)
    return out


def _text(tag: str, tokens: int) -> str:
    """Deterministic filler of ~``tokens`` tokens whose content depends on ``tag`` from the first block on."""
    if tokens <= 0:
        return ""
    unit = f"[{tag}] "
    return (unit * (tokens * 4 // len(unit) + 1))[: tokens * 4]


class _Progress:
    def __init__(self, total: int, out: TextIO | None) -> None:
        self.total = total
        self.out = out
        self.done = 0
        self.ok = 0
        self.limited = 0
        self.failed = 0
        self._last = 0.0

    def add(self, r: Result) -> None:
        self.done += 1
        if r.ok:
            self.ok += 1
        elif r.status == 429:
            self.limited += 1
        else:
            self.failed += 1
        self.draw()

    def draw(self, force: bool = False) -> None:
        if self.out is None:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.2 and self.done < self.total:
            return
        self._last = now
        width = 30
        filled = int(width * self.done / max(1, self.total))
        self.out.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"ok={self.ok} 429={self.limited} err={self.failed}"
        )
        self.out.flush()


class LoadGenerator:
    """Runs a LoadSpec against ``base_url``. Clients are the real async openai/anthropic clients."""

    def __init__(
        self,
        base_url: str,
        spec: LoadSpec,
        seed: int,
        speed: float,
        truth: TruthFn | None = None,
        progress: TextIO | None = None,
    ) -> None:
        self.base_url = base_url
        self.spec = spec
        self.seed = seed
        self.speed = speed
        self.truth = truth
        self.progress_out = progress
        self._clients: dict[tuple[str, str], Any] = {}
        self.origin_ns = 0  # time.time_ns() when the plan's t=0 was replayed (after warm-up)

    def _client(self, provider: str, tenant: str) -> Any:
        key = (provider, tenant)
        client = self._clients.get(key)
        if client is None:
            if provider == "anthropic":
                import anthropic

                client = anthropic.AsyncAnthropic(
                    base_url=self.base_url, api_key=f"tenant-{tenant}", max_retries=0, timeout=600
                )
            else:
                import openai

                client = openai.AsyncOpenAI(
                    base_url=self.base_url + "/v1", api_key=f"tenant-{tenant}", max_retries=0, timeout=600
                )
            self._clients[key] = client
        return client

    async def warm_up(self) -> None:
        """Exercise every client (and its instrumentation) once, streaming and not, with ``x-sim-dry-run`` so
        no replica, cache or quota of the scenario is touched. Like every call of the run, inside the tenant's
        ``llmotel.tenant`` context: an untenanted warm-up series would skew fairness SLIs downstream."""
        for t in self.spec.tenants:
            for stream in (False, True):
                warm = TenantLoad(name=t.name, provider=t.provider, model=t.model, stream=stream, output_tokens=2)
                arrival = Arrival(0.0, warm, -1, 0)
                await self._call(arrival, {"x-sim-dry-run": "1"})

    async def run(self) -> list[Result]:
        if self.spec.warm_up:
            await self.warm_up()
        arrivals = plan(self.spec, self.seed)
        progress = _Progress(len(arrivals), self.progress_out)
        limits = {t.name: asyncio.Semaphore(max(1, t.max_inflight)) for t in self.spec.tenants}
        origin = time.perf_counter()
        self.origin_ns = time.time_ns()
        tasks: list[asyncio.Task[Result]] = []

        async def one(a: Arrival, late_s: float) -> Result:
            async with limits[a.tenant.name]:
                r = await self._call(a)
            r.late_s = late_s
            progress.add(r)
            return r

        for a in arrivals:
            delay = origin + a.at_s / self.speed - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
                delay = origin + a.at_s / self.speed - time.perf_counter()
            tasks.append(asyncio.create_task(one(a, max(0.0, -delay))))
        results = list(await asyncio.gather(*tasks))
        progress.draw(force=True)
        if self.progress_out is not None:
            self.progress_out.write("\n")
        for client in self._clients.values():
            await client.close()
        if self.truth is not None:
            for r in results:
                if r.request_id:
                    r.truth = self.truth(r.request_id)
        return results

    def _headers(self, t: TenantLoad) -> dict[str, str]:
        h: dict[str, str] = {}
        if t.output_tokens is not None:
            h["x-sim-output-tokens"] = str(t.output_tokens)
        if t.reasoning_tokens:
            h["x-sim-reasoning-tokens"] = str(t.reasoning_tokens)
        if t.region:
            h["x-sim-region"] = t.region
        if t.server_timing:
            h["x-sim-server-timing"] = t.server_timing
        return h

    async def _call(self, a: Arrival, extra_headers: dict[str, str] | None = None) -> Result:
        t = a.tenant
        r = Result(tenant=t.name, provider=t.provider, session=a.session, turn=a.turn, sched_s=a.at_s)
        system = _text(f"{t.name} system prompt", t.system_prompt_tokens)
        history = _text(f"{t.name} session {a.session}", t.prefix_growth_tokens * (a.turn + 1))
        question = f"question {a.turn} for session {a.session} of {t.name}"
        headers = self._headers(t)
        headers.update(extra_headers or {})
        extra = t.input_tokens if a.input_tokens is None else a.input_tokens
        if extra:
            real = (len(system) + len(history) + len(question)) // 4 + 8
            headers["x-sim-input-tokens"] = str(real + extra)
        ctx = _tenant_context(t.name)
        try:
            with ctx:
                if t.provider == "anthropic":
                    await self._anthropic(r, t, system, history, question, headers)
                else:
                    await self._openai(r, t, system, history, question, headers)
        except Exception as exc:  # a failed call is a result, not a crash of the run
            status = getattr(exc, "status_code", 0)
            r.status = status if isinstance(status, int) else 0
            r.error = type(exc).__name__
            response = getattr(exc, "response", None)
            if response is not None:
                r.headers = {k.lower(): v for k, v in response.headers.items()}
                r.request_id = r.headers.get("x-sim-request-id", "")
        if r.total_s is None:
            r.total_s = time.perf_counter() - r.start_wall
        return r

    def _record_headers(self, r: Result, headers: Any) -> None:
        r.headers = {k.lower(): v for k, v in headers.items()}
        r.request_id = r.headers.get("x-sim-request-id", "")
        ray = r.headers.get("cf-ray", "")
        r.edge = ray.rsplit("-", 1)[-1] if "-" in ray else ""

    async def _openai(
        self, r: Result, t: TenantLoad, system: str, history: str, question: str, headers: dict[str, str]
    ) -> None:
        client = self._client("openai", t.name)
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": history + question})
        kw: dict[str, Any] = {"model": t.model or "gpt-4o", "messages": messages, "extra_headers": headers}
        if t.max_tokens is not None:
            kw["max_completion_tokens"] = t.max_tokens
        r.start_wall = time.perf_counter()
        if t.stream:
            stream = await client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw)
            self._record_headers(r, stream.response.headers)
            async for chunk in stream:
                if chunk.choices:
                    choice = chunk.choices[0]
                    if choice.delta and (choice.delta.content or choice.delta.tool_calls):
                        r.chunks += 1
                        if r.ttft_s is None:
                            r.ttft_s = time.perf_counter() - r.start_wall
                    if choice.finish_reason:
                        r.finish_reason = choice.finish_reason
                r.model = chunk.model or r.model
                r.fingerprint = chunk.system_fingerprint or r.fingerprint
                if chunk.usage is not None:
                    self._openai_usage(r, chunk.usage)
        else:
            raw = await client.chat.completions.with_raw_response.create(**kw)
            self._record_headers(r, raw.headers)
            resp = raw.parse()
            if inspect.isawaitable(resp):
                resp = await resp
            r.ttft_s = time.perf_counter() - r.start_wall
            r.finish_reason = resp.choices[0].finish_reason or ""
            r.model, r.fingerprint = resp.model, resp.system_fingerprint or ""
            if resp.usage is not None:
                self._openai_usage(r, resp.usage)
        r.total_s = time.perf_counter() - r.start_wall
        r.status = 200

    @staticmethod
    def _openai_usage(r: Result, usage: Any) -> None:
        r.input_tokens = usage.prompt_tokens
        r.output_tokens = usage.completion_tokens
        details = usage.prompt_tokens_details
        r.cached_tokens = (details.cached_tokens or 0) if details is not None else 0

    async def _anthropic(
        self, r: Result, t: TenantLoad, system: str, history: str, question: str, headers: dict[str, str]
    ) -> None:
        client = self._client("anthropic", t.name)
        cc = {"type": "ephemeral"} if t.cache_control else None
        sys_blocks: list[dict[str, Any]] = []
        if system:
            sys_blocks.append({"type": "text", "text": system, **({"cache_control": cc} if cc else {})})
        content: list[dict[str, Any]] = []
        if history:
            content.append({"type": "text", "text": history, **({"cache_control": cc} if cc else {})})
        content.append({"type": "text", "text": question})
        kw: dict[str, Any] = {
            "model": t.model or "claude-sonnet-4-6",
            "max_tokens": t.max_tokens or 4096,
            "messages": [{"role": "user", "content": content}],
            "extra_headers": headers,
        }
        if sys_blocks:
            kw["system"] = sys_blocks
        r.start_wall = time.perf_counter()
        if t.stream:
            stream = await client.messages.create(stream=True, **kw)
            self._record_headers(r, stream.response.headers)
            async for event in stream:
                if event.type == "content_block_delta":
                    r.chunks += 1
                    if r.ttft_s is None:
                        r.ttft_s = time.perf_counter() - r.start_wall
                elif event.type == "message_start":
                    r.model = event.message.model
                    self._anthropic_usage(r, event.message.usage)
                elif event.type == "message_delta":
                    r.finish_reason = event.delta.stop_reason or ""
                    r.output_tokens = event.usage.output_tokens
        else:
            raw = await client.messages.with_raw_response.create(**kw)
            self._record_headers(r, raw.headers)
            msg = raw.parse()
            if inspect.isawaitable(msg):  # anthropic's async raw response parses asynchronously
                msg = await msg
            r.ttft_s = time.perf_counter() - r.start_wall
            r.model, r.finish_reason = msg.model, msg.stop_reason or ""
            self._anthropic_usage(r, msg.usage)
            r.output_tokens = msg.usage.output_tokens
        r.total_s = time.perf_counter() - r.start_wall
        r.status = 200

    @staticmethod
    def _anthropic_usage(r: Result, usage: Any) -> None:
        read = usage.cache_read_input_tokens or 0
        write = usage.cache_creation_input_tokens or 0
        r.input_tokens = usage.input_tokens + read + write
        r.cached_tokens = read
        r.geo = usage.inference_geo or ""


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _tenant_context(name: str) -> Any:
    """llmotel.tenant(name) when the SDK is importable (so spans carry the tenant), else a no-op."""
    try:
        from llmotel.signals.tenant import tenant
    except ImportError:
        return _Null()
    return tenant(name)


def instrument_if_available() -> list[str]:
    """Instrument the openai/anthropic clients with llmotel when those instrumentors exist. Never raises."""
    done: list[str] = []
    for module, cls in (
        ("llmotel.providers.openai", "OpenAIInstrumentor"),
        ("llmotel.providers.anthropic", "AnthropicInstrumentor"),
    ):
        try:
            mod = __import__(module, fromlist=[cls])
            inst = getattr(mod, cls)()
            if not inst.is_instrumented_by_opentelemetry:
                inst.instrument()
            done.append(cls)
        except Exception as exc:  # optional: the simulator works without the SDK
            print(f"llmotel-sim: {cls} not used ({type(exc).__name__}: {exc})", file=sys.stderr)
    return done
