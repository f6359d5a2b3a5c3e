"""The fleet: regions of replicas, each running continuous batching over a simulated clock paced to real time.

A replica loops over steps. At each step boundary it admits waiting requests up to ``max_batch`` and prefills
them (the whole replica stalls meanwhile: head-of-line blocking). The pass samples each admitted request's first
token from its prompt's last position, as a real server's prefill does (vLLM's prefill step returns it;
llama.cpp's ``prompt_ms`` ends with it), so a request's first token leaves at the end of its pass. Then the
replica runs one decode step that emits one token for every running sequence, the newly admitted included (their
second). A prefill's cost is a linear term in its uncached tokens plus an attention term in the token pairs it
scores (``prefill_cost_s``), stretched by the decodes sharing the pass; the pass stretches their step in turn.
Every step's cost comes from the ReplicaSpec; the loop sleeps until the wall-clock instant that the simulated
clock maps to (``speed`` simulated seconds per wall second), so jitter never accumulates. Given the same
arrivals, the simulated timings are the same on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from llmotel_sim.cache import CacheResult, PrefixCache
from llmotel_sim.config import RegionSpec, ReplicaSpec, RevisionSpec, SimConfig
from llmotel_sim.tokens import Prompt, stable_hash

MAX_TRUTHS = 50_000  # ground truth kept for the most recent requests


def attention_pairs(uncached: int, cached: int) -> float:
    """Query-key pairs a prefill's attention scores: each of the ``uncached`` new tokens attends to the ``cached``
    prefix and to the new tokens before it (causal), u*c + u^2/2."""
    return uncached * cached + 0.5 * uncached * uncached


def prefill_cost_s(spec: ReplicaSpec, uncached: int, cached: int) -> float:
    """Seconds one request's prefill costs on an idle replica: its uncached tokens' linear work (weights, MLP),
    attention over every pair it scores, and reading its cached prefix. Grows faster than linearly with length,
    and a suffix after a cached prefix costs more per token than the same suffix alone (llama.cpp: bench/real,
    docs/simulator.md)."""
    return uncached * spec.prefill_s_per_token + attention_pairs(uncached, cached) * spec.prefill_s_per_kpair / 1000.0 \
        + cached * spec.prefill_s_per_cached_token


@dataclass(slots=True)
class Stamps:
    """Instants of one request, on one clock (simulated seconds or perf_counter seconds)."""

    arrival: float = 0.0
    admit: float = 0.0  # the prefill pass starts (after queueing and any cold start)
    prefill_end: float = 0.0  # the pass ends
    # prefill_end minus this request's own share of the pass (its uncached tokens under the pass's cost per
    # token); admit when it was alone in the pass. Below admit (never set) reads as admit.
    prefill_own_start: float = 0.0
    first_token: float = 0.0  # first decoded token (reasoning or visible)
    first_visible: float = 0.0
    last_token: float = 0.0

    def own_start(self) -> float:
        """prefill_own_start clamped into [admit, prefill_end]."""
        return min(max(self.prefill_own_start, self.admit), max(self.prefill_end, self.admit))

    def phases(self) -> dict[str, float]:
        own = self.own_start()
        return {
            # The server's definition (vLLM: queue = scheduled - arrival, prefill = first token - scheduled;
            # llama.cpp's prompt_ms): the whole pass and the step that sampled the first token.
            "queue_s": max(0.0, self.admit - self.arrival),
            "prefill_server_s": max(0.0, self.first_token - self.admit),
            # The whole pass: the shared prefill pass, without the step that sampled the first token.
            "prefill_s": max(0.0, self.prefill_end - self.admit),
            # The own-work definition (what a client-side model estimates): prefill is the cost of this
            # request's own uncached tokens; the pass's time spent on co-admitted requests is queue.
            "queue_own_s": max(0.0, own - self.arrival),
            "prefill_own_s": max(0.0, self.prefill_end - own),
            "prefill_others_s": max(0.0, own - self.admit),  # waiting on co-admitted requests' prefill
            "first_token_s": max(0.0, self.first_token - self.prefill_end),
            "decode_s": max(0.0, self.last_token - self.first_token),
            "ttft_s": max(0.0, self.first_visible - self.arrival),
            "total_s": max(0.0, self.last_token - self.arrival),
        }


@dataclass(slots=True)
class SimRequest:
    id: str
    tenant: str
    provider: str  # "openai" | "anthropic"
    endpoint: str
    model: str
    prompt: Prompt
    stream: bool
    visible_tokens: int  # tokens the client will receive
    reasoning_tokens: int = 0
    finish: str = "stop"  # neutral: "stop" | "length" | "tool_calls"
    tool_calls: list[str] = field(default_factory=list)
    region: RegionSpec | None = None
    revision_name: str = ""
    revision: RevisionSpec = field(default_factory=RevisionSpec)
    replica: str = ""
    fault: str = ""
    status: int = 200
    cache: CacheResult = field(default_factory=CacheResult)
    cold_start_s: float = 0.0
    pass_requests: int = 0  # requests admitted in this request's prefill pass (itself included)
    pass_uncached_tokens: int = 0  # their uncached tokens together
    prefill_work_s: float = 0.0  # this request's own prefill cost on an idle replica (prefill_cost_s())
    sim: Stamps = field(default_factory=Stamps)
    wall: Stamps = field(default_factory=Stamps)
    wall_first_chunk_sent: float = 0.0
    wall_end: float = 0.0
    produced: int = 0
    cancelled: bool = False
    done: bool = False
    rng: random.Random | None = None  # this request's own randomness (Fleet.request_rng)
    # Ground truth for blame: simulated seconds of its replica's work, by tenant, while this request waited in
    # the queue (arrival to admit). A prefill pass is split by the admitted requests' own prefill work, a decode
    # step equally over the sequences it advanced; cold starts belong to nobody.
    occupancy: dict[str, float] = field(default_factory=dict)
    _waiter: asyncio.Future[None] | None = None

    @property
    def input_tokens(self) -> int:
        return self.prompt.tokens

    @property
    def decode_tokens(self) -> int:
        return self.reasoning_tokens + self.visible_tokens

    @property
    def uncached_tokens(self) -> int:
        return max(0, self.input_tokens - self.cache.cached_tokens)

    def release(self) -> None:
        """Drop the prompt text once answered (truths are kept long; prompts can be megabytes)."""
        if self.prompt.text:
            self.prompt = Prompt("", [], self.prompt.tokens)

    def notify(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait_progress(self) -> None:
        """Wait until at least one more token is produced or the request completes."""
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter
        self._waiter = None

    def truth(self) -> dict[str, Any]:
        """The ground truth of this request, JSON-ready (stable keys; see docs/simulator.md)."""
        rev = self.revision
        return {
            "request_id": self.id,
            "done": self.done,
            "status": self.status,
            "tenant": self.tenant,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "stream": self.stream,
            "model": self.model,
            "resolved_model": resolved_model(self.model, rev, compact=self.provider == "anthropic"),
            "region": self.region.name if self.region else "",
            "geo": self.region.geo if self.region else "",
            "replica": self.replica,
            "revision": self.revision_name,
            "system_fingerprint": rev.fingerprint,
            "fault": self.fault,
            "input_tokens": self.input_tokens,
            "cached_tokens": self.cache.cached_tokens,
            "cache_hit": self.cache.cached_tokens > 0,
            "cache_write_tokens": self.cache.write_tokens,
            "cache_write_5m_tokens": self.cache.write_5m_tokens,
            "cache_write_1h_tokens": self.cache.write_1h_tokens,
            "output_tokens": self.visible_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "finish_reason": self.finish,
            "cold_start_s": self.cold_start_s,
            # The prefill pass this request was admitted in: how many requests and uncached tokens it held.
            "prefill_pass_requests": self.pass_requests,
            "prefill_pass_uncached_tokens": self.pass_uncached_tokens,
            "prefill_work_s": self.prefill_work_s,
            # Who occupied its replica while it waited, in simulated seconds by tenant (itself included).
            "occupied_while_waiting_s": dict(sorted(self.occupancy.items())),
            "sim": self.sim.phases(),
            "wall": self.wall.phases(),
            # perf_counter() seconds in the server's process (comparable with the client's in-process clock).
            "wall_ts": {
                "arrival": self.wall.arrival,
                "admit": self.wall.admit,
                "prefill_own_start": self.wall.own_start(),
                "prefill_end": self.wall.prefill_end,
                "first_token": self.wall.first_token,
                "first_visible": self.wall.first_visible,
                "last_token": self.wall.last_token,
                "first_chunk_sent": self.wall_first_chunk_sent,
                "end": self.wall_end,
            },
        }


def resolved_model(model: str, rev: RevisionSpec, compact: bool = False) -> str:
    """gpt-4o -> gpt-4o-2024-08-06 (compact, Anthropic-style: claude-x -> claude-x-20240806).

    A model that already names a dated snapshot is returned as is.
    """
    tail = model.rsplit("-", 1)[-1]
    if (tail.isdigit() and len(tail) == 8) or (model[-10:-6].isdigit() and model[-5:-3].isdigit()):
        return model
    snapshot = rev.snapshot.replace("-", "") if compact else rev.snapshot
    return f"{model}-{snapshot}"


class Clock:
    """Maps wall time to simulated time: sim = (perf_counter - origin) * speed."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.origin = time.perf_counter()

    def sim_now(self) -> float:
        return (time.perf_counter() - self.origin) * self.speed


class Replica:
    def __init__(self, fleet: Fleet, region: RegionSpec, index: int) -> None:
        spec = fleet.config.replica
        self.fleet = fleet
        self.region = region
        self.name = f"{region.name}/{index}"
        self.spec = spec
        self.revision = fleet.config.revision(region.revision)
        self.cache = PrefixCache(spec.cache_blocks, spec.block_tokens)
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.v = 0.0  # this replica's simulated clock
        self._anchor_v = 0.0
        self._anchor_w = 0.0
        # A replica that never served is cold if cold starts are modelled at all.
        self.last_busy_v = float("-inf")
        self.steps = 0
        self.in_pass = 0  # requests admitted into the prefill pass now running (neither waiting nor running)

    @property
    def load(self) -> int:
        return len(self.waiting) + len(self.running)

    def submit(self, req: SimRequest) -> None:
        self.waiting.append(req)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _occupy(self, start_v: float, shares: dict[str, float]) -> None:
        """Credit [start_v, self.v) of replica work, split by shares, to every request waiting in the queue during
        it (from its arrival: one that arrived mid-pass waited only for the rest of it)."""
        for req in self.waiting:
            waited = self.v - max(start_v, req.sim.arrival)
            if waited <= 0:
                continue
            for tenant, share in shares.items():
                req.occupancy[tenant] = req.occupancy.get(tenant, 0.0) + waited * share

    async def _advance(self, sim_seconds: float) -> None:
        if sim_seconds <= 0:
            return
        self.v += sim_seconds
        target = self._anchor_w + (self.v - self._anchor_v) / self.fleet.clock.speed
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    def _resync(self) -> None:
        """Re-anchor an idle replica's clock at the arrival of the request that woke it.

        The model admits that request at its arrival (an idle replica has no queue); the real wake-up latency
        of the event loop shows only in the wall stamps and is caught up by the next sleeps.
        """
        first = self.waiting[0] if self.waiting else None
        speed = self.fleet.clock.speed
        if first is not None and first.sim.arrival >= self.v:
            self._anchor_v = self.v = first.sim.arrival
            self._anchor_w = first.wall.arrival
        else:
            self._anchor_w = time.perf_counter()
            self._anchor_v = self.v = max(self.v, (self._anchor_w - self.fleet.clock.origin) * speed)

    async def _run(self) -> None:
        self._resync()  # anchor the simulated clock to now before the first step
        while True:
            if not self.waiting and not self.running:
                self.last_busy_v = self.v
                self._wake.clear()
                await self._wake.wait()
                self._resync()
            await self._step()

    async def _step(self) -> None:
        spec = self.spec
        admitted: list[SimRequest] = []
        while self.waiting and len(self.running) + len(admitted) < spec.max_batch:
            req = self.waiting.popleft()
            if not req.cancelled:
                admitted.append(req)
        if admitted:
            cold = 0.0
            if spec.cold_start_s > 0 and not self.running and self.v - self.last_busy_v >= spec.idle_s:
                cold = spec.cold_start_s
                await self._advance(cold)
            now_w = time.perf_counter()
            uncached = 0
            work = 0.0
            for req in admitted:
                req.cold_start_s = cold
                req.sim.admit, req.wall.admit = self.v, now_w
                req.cache = self.fleet.cache_lookup(self.cache, req)
                req.prefill_work_s = prefill_cost_s(spec, req.uncached_tokens, req.cache.cached_tokens)
                if spec.prefill_jitter > 0:
                    req.prefill_work_s *= math.exp((req.rng or self.fleet.rng).gauss(0.0, spec.prefill_jitter))
                uncached += req.uncached_tokens
                work += req.prefill_work_s
            start_v, start_w = self.v, now_w
            # Batching interference: the running sequences' decode tokens share the pass and stretch it.
            self.in_pass = len(admitted)
            await self._advance(work * (1 + spec.prefill_batch_factor * len(self.running)))
            self.in_pass = 0
            self._occupy(start_v, _shares(admitted, lambda r: r.prefill_work_s))
            now_w = time.perf_counter()
            for req in admitted:
                req.sim.prefill_end, req.wall.prefill_end = self.v, now_w
                # One pass, one stretch: a request's own share is its own work's part of the pass (on the wall
                # clock too, so the shares still add up to the pass as it really ran).
                share = req.prefill_work_s / work if work > 0 else 1.0 / len(admitted)
                req.sim.prefill_own_start = self.v - (self.v - start_v) * share
                req.wall.prefill_own_start = now_w - (now_w - start_w) * share
                req.pass_requests, req.pass_uncached_tokens = len(admitted), uncached
                if req.decode_tokens > 0:
                    # The pass samples the first token from the prompt's last position, as real servers do
                    # (vLLM's prefill step returns it; llama.cpp's prompt_ms ends with it): the next decode step
                    # makes the second token.
                    self._produce(req, self.v, now_w)
                    if not req.done:
                        self.running.append(req)
                else:  # embeddings: prefill only
                    req.sim.first_token = req.sim.first_visible = req.sim.last_token = self.v
                    req.wall.first_token = req.wall.first_visible = req.wall.last_token = now_w
                    req.done = True
                    req.notify()
        if not self.running:
            return
        batch = len(self.running)
        step_v = self.v
        step = spec.decode_step_s + spec.decode_step_s_per_seq * batch
        if spec.decode_step_s_per_ktoken:
            context = sum(r.input_tokens + r.produced for r in self.running)
            step += spec.decode_step_s_per_ktoken * context / 1000.0
        await self._advance(step * self.revision.decode_scale)
        self._occupy(step_v, _shares(self.running, lambda r: 1.0))
        self.steps += 1
        now_w = time.perf_counter()
        still: list[SimRequest] = []
        for req in self.running:
            if req.cancelled:
                continue
            self._produce(req, self.v, now_w)
            if not req.done:
                still.append(req)
        self.running = still
        self.last_busy_v = self.v

    @staticmethod
    def _produce(req: SimRequest, v: float, now_w: float) -> None:
        """One more token of ``req`` exists at simulated ``v`` / wall ``now_w``."""
        if req.produced == 0:
            req.sim.first_token, req.wall.first_token = v, now_w
        req.produced += 1
        if req.produced == req.reasoning_tokens + 1:
            req.sim.first_visible, req.wall.first_visible = v, now_w
        if req.produced >= req.decode_tokens:
            req.sim.last_token, req.wall.last_token = v, now_w
            req.done = True
        req.notify()


def _shares(reqs: list[SimRequest], weight: Any) -> dict[str, float]:
    """Each tenant's fraction of a pass or step, by weight(request) (equal split when all weigh 0)."""
    total = sum(weight(r) for r in reqs)
    out: dict[str, float] = {}
    for r in reqs:
        out[r.tenant] = out.get(r.tenant, 0.0) + (weight(r) / total if total > 0 else 1.0 / len(reqs))
    return out


class Fleet:
    """All regions and replicas of one SimServer, plus routing and the ground-truth store."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.clock = Clock(config.speed)
        self.rng = random.Random(config.seed)
        self.regions: dict[str, list[Replica]] = {}
        for region in config.regions:
            self.regions[region.name] = [Replica(self, region, i) for i in range(region.replicas)]
        self._rr = itertools.count()
        self.truths: OrderedDict[str, SimRequest] = OrderedDict()
        self._seen: dict[tuple[str, int], int] = {}

    def request_rng(self, tenant: str, prompt: Prompt) -> random.Random:
        """Randomness for one request (region, replica, random faults) keyed by the seed, the tenant, the prompt
        and how many identical requests that tenant sent before — not by arrival order, which the wall clock
        decides. So the same seeded plan makes the same choices on every run."""
        key = (tenant, stable_hash(prompt.text) ^ prompt.extra_tokens)
        if len(self._seen) > 200_000:  # bounded; only determinism across such long runs is lost
            self._seen.clear()
        n = self._seen.get(key, 0)
        self._seen[key] = n + 1
        return random.Random(f"{self.config.seed}|{tenant}|{key[1]}|{n}")

    def replicas(self) -> list[Replica]:
        return [r for reps in self.regions.values() for r in reps]

    def remember(self, req: SimRequest) -> None:
        self.truths[req.id] = req
        if len(self.truths) > MAX_TRUTHS:
            self.truths.popitem(last=False)

    def pick_region(
        self, pinned: str | None, tenant_region: str | None, rng: random.Random | None = None
    ) -> RegionSpec:
        for name in (pinned, tenant_region):
            if name:
                region = self.config.region(name)
                if region is None:
                    raise KeyError(name)
                return region
        regions = self.config.regions
        if len(regions) == 1:
            return regions[0]
        return (rng or self.rng).choices(regions, weights=[r.weight for r in regions])[0]

    def pick_replica(self, region: RegionSpec, req: SimRequest) -> Replica:
        reps = self.regions[region.name]
        mode = self.config.routing
        if len(reps) == 1:
            return reps[0]
        if mode == "round_robin":
            return reps[next(self._rr) % len(reps)]
        if mode == "random":
            return reps[(req.rng or self.rng).randrange(len(reps))]
        if mode == "cache_aware":
            if req.provider == "anthropic":
                scores = [r.cache.explicit_match(req.prompt) for r in reps]
            else:
                hashes = req.prompt.block_hashes(self.config.replica.block_tokens)
                scores = [r.cache.match_blocks(hashes) for r in reps]
            best = max(scores)
            if best > 0:
                candidates = [r for r, s in zip(reps, scores, strict=False) if s == best]
                return min(candidates, key=lambda r: r.load)
        if mode == "least_busy":  # least_loaded that also sees a replica busy with a prefill pass
            return min(reps, key=lambda r: r.load + r.in_pass)
        return min(reps, key=lambda r: r.load)

    def cache_lookup(self, cache: PrefixCache, req: SimRequest) -> CacheResult:
        cfg = self.config
        if req.provider == "anthropic":
            return cache.explicit(req.prompt, cfg.anthropic_min_cache_tokens)
        if req.endpoint == "embeddings":
            return CacheResult()
        hashes = req.prompt.block_hashes(cfg.replica.block_tokens)
        return cache.automatic(hashes, req.input_tokens, cfg.openai_min_cache_tokens)

    def default_output_tokens(self, prompt: Prompt, revision: RevisionSpec) -> int:
        cfg = self.config
        h = stable_hash(prompt.text[:4096]) ^ (cfg.seed * 2654435761 & 0xFFFFFFFF)
        base = cfg.output_tokens_min + h % (cfg.output_tokens_max - cfg.output_tokens_min + 1)
        return max(1, round(base * revision.output_scale))

    def dispatch(self, req: SimRequest, pinned_region: str | None, tenant_region: str | None) -> None:
        """Route and enqueue; the request's ``region``/``replica`` fields say where it went."""
        region = req.region or self.pick_region(pinned_region, tenant_region)
        req.region = region
        replica = self.pick_replica(region, req)
        req.replica = replica.name
        replica.submit(req)

    async def stop(self) -> None:
        for rep in self.replicas():
            await rep.stop()
