"""Tenant rate limits as continuously refilled buckets, and the rate-limit headers each provider really sends.

Buckets refill over one *simulated* minute; the reset and retry-after values in headers are *wall* seconds,
because that is the clock the client sleeps on.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field

from llmotel_sim.config import TenantSpec
from llmotel_sim.engine import Clock


@dataclass(slots=True)
class Bucket:
    limit: int
    level: float
    at: float  # sim time of `level`

    def refill(self, now: float) -> None:
        self.level = min(float(self.limit), self.level + (now - self.at) * self.limit / 60.0)
        self.at = now

    def seconds_until(self, amount: float) -> float:
        """Simulated seconds until the bucket holds ``amount``."""
        return max(0.0, (amount - self.level) * 60.0 / self.limit)


@dataclass(slots=True)
class Decision:
    allowed: bool = True
    retry_after_s: float = 0.0  # wall seconds
    limited_by: str = ""  # "requests" | "tokens" | "input-tokens" | "output-tokens"
    output_cap: int | None = None  # truncate_on_quota: the most output tokens the budget allows
    headers: dict[str, str] = field(default_factory=dict)


def _duration(seconds: float) -> str:
    """OpenAI's reset format: 1s, 6m0s, 120ms."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, secs = divmod(seconds, 60)
    if minutes >= 1:
        return f"{int(minutes)}m{secs:.0f}s"
    return f"{secs:.3g}s"


class TenantLimits:
    def __init__(self, spec: TenantSpec, clock: Clock) -> None:
        self.spec = spec
        self.clock = clock
        now = clock.sim_now()
        self.buckets: dict[str, Bucket] = {}
        for kind, limit in (
            ("requests", spec.rpm),
            ("tokens", spec.tpm),
            ("input-tokens", spec.itpm),
            ("output-tokens", spec.otpm),
        ):
            if limit:
                self.buckets[kind] = Bucket(limit, float(limit), now)

    def admit(self, provider: str, input_tokens: int, output_tokens: int) -> Decision:
        """Charge the request if every bucket can pay; otherwise say which limit and for how long."""
        if not self.buckets:
            return Decision()
        now = self.clock.sim_now()
        need = {
            "requests": 1,
            "tokens": input_tokens + output_tokens,
            "input-tokens": input_tokens,
            "output-tokens": output_tokens,
        }
        decision = Decision()
        for b in self.buckets.values():
            b.refill(now)
        for kind, b in self.buckets.items():
            if b.level >= need[kind]:
                continue
            # Silent truncation: never refuse, shrink the output to what the budget has left (at least one
            # token); the bucket may go negative, so the next requests are truncated harder.
            if self.spec.truncate_on_quota and kind in ("tokens", "output-tokens"):
                spare = max(1, int(b.level) - (input_tokens if kind == "tokens" else 0))
                decision.output_cap = min(spare, decision.output_cap or spare)
                continue
            decision.allowed = False
            decision.limited_by = kind
            decision.retry_after_s = max(decision.retry_after_s, b.seconds_until(need[kind]) / self.clock.speed)
        if decision.allowed:
            out = output_tokens if decision.output_cap is None else min(decision.output_cap, output_tokens)
            need["tokens"] = input_tokens + out
            need["output-tokens"] = out
            for kind, b in self.buckets.items():
                b.level -= need[kind]
        decision.headers = self.headers(provider, decision)
        return decision

    def headers(self, provider: str, decision: Decision) -> dict[str, str]:
        h: dict[str, str] = {}
        speed = self.clock.speed
        for kind, b in self.buckets.items():
            remaining = max(0, math.floor(b.level))
            reset_wall = b.seconds_until(b.limit) / speed
            if provider == "anthropic":
                reset_at = _dt.datetime.now(_dt.UTC) + _dt.timedelta(seconds=reset_wall)
                h[f"anthropic-ratelimit-{kind}-limit"] = str(b.limit)
                h[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
                h[f"anthropic-ratelimit-{kind}-reset"] = reset_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            elif kind in ("requests", "tokens"):
                h[f"x-ratelimit-limit-{kind}"] = str(b.limit)
                h[f"x-ratelimit-remaining-{kind}"] = str(remaining)
                h[f"x-ratelimit-reset-{kind}"] = _duration(reset_wall)
        if not decision.allowed:
            h["retry-after"] = str(max(1, math.ceil(decision.retry_after_s)))
            h["retry-after-ms"] = str(max(1, math.ceil(decision.retry_after_s * 1000)))
        return h


class Quotas:
    def __init__(self, tenants: dict[str, TenantSpec], default: TenantSpec, clock: Clock) -> None:
        self._specs = tenants
        self._default = default
        self._clock = clock
        self._limits: dict[str, TenantLimits] = {}

    def for_tenant(self, tenant: str) -> TenantLimits:
        lim = self._limits.get(tenant)
        if lim is None:
            lim = self._limits[tenant] = TenantLimits(self._specs.get(tenant, self._default), self._clock)
        return lim
