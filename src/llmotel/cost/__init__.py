"""Price of one call in US dollars, from a maintained price library (genai-prices), never a table typed here.

Owns: ``price(provider, model, usage)``, the one place llmotel asks for a price, and the mapping of GenAI
``gen_ai.provider.name`` values to the library's provider ids.
May import: ``llmotel.record`` and the standard library; ``genai_prices`` (in a background thread started at
import: its price data takes ~0.3 s to load). Never OpenTelemetry, a provider module or another room.

Guarantees: ``price`` never raises; an unknown provider or model gives None (no cost attribute), never a guess;
the library's model look-up (regular expressions over its whole price data) runs once per (provider, model) and
its answer — found or not — is cached; the per-token rates of each price in force are taken from the library once
and checked against its own calculation, so per call only a few multiplications run (``price``).
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from typing import Any, NamedTuple

from llmotel import forksafe
from llmotel.record import Usage

_log = logging.getLogger(__name__)

LIBRARY = "genai-prices"

# gen_ai.provider.name -> the library's provider id. Names not here are passed as they are (the library matches
# aliases itself); self-hosted servers (vllm, tgi, llama_cpp, sglang) have no price.
PROVIDER_IDS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "perplexity": "perplexity",
}
_UNPRICED = frozenset({"vllm", "tgi", "llama_cpp", "sglang", "ollama", ""})


class Price(NamedTuple):
    """A call's price: total, input (cache reads and writes included), output, in USD; and where it came from."""

    usd: float
    input_usd: float
    output_usd: float
    source: str


class _Library:
    """genai-prices and its bundled price data, loaded once (in the background from import, so the first call does
    not pay the ~0.3 s), with a cache of model look-ups (bounded: emptied when full)."""

    MAX = 1024

    def __init__(self) -> None:
        self._lock = forksafe.lock(self)
        self._snapshot: Any = None
        self.failed = False
        self.source = ""
        # (provider id, model) -> (the library's provider, its model), or None when it has no such model.
        self.models: dict[tuple[str, str], tuple[Any, Any] | None] = {}

    def snapshot(self) -> Any:
        with self._lock:
            if self._snapshot is None and not self.failed:
                try:
                    from genai_prices import data_snapshot  # the bundled data; never fetched from the network

                    self._snapshot = data_snapshot.get_snapshot()
                    self.source = f"{LIBRARY} {version(LIBRARY)}"
                except Exception as exc:
                    self.failed = True
                    # One line for the user (a missing or broken install), the traceback at debug.
                    _log.warning("llmotel: %s could not be loaded (%s); calls get no cost", LIBRARY, exc)
                    _log.debug("llmotel: %s load failure", LIBRARY, exc_info=True)
            return self._snapshot

    def model(self, provider_id: str, model: str) -> tuple[Any, Any] | None:
        key = (provider_id, model)
        try:
            return self.models[key]
        except KeyError:
            pass
        snapshot = self.snapshot()
        found: tuple[Any, Any] | None = None
        if snapshot is not None:
            try:
                found = snapshot.find_provider_model(model, None, provider_id, None)
            except LookupError:
                found = None
        if len(self.models) >= self.MAX:
            self.models.clear()
        self.models[key] = found
        return found


_library = _Library()
threading.Thread(target=_library.snapshot, name="llmotel-prices", daemon=True).start()


class _Rates(NamedTuple):
    """USD per token of one model price, for the usage fields llmotel reports, valid below ``below`` input tokens
    (the first tier of a tiered price, e.g. Anthropic's long-context rates from 200k; infinite when untiered)."""

    input: float
    output: float
    cache_read: float
    cache_write_5m: float
    cache_write_1h: float
    below: float = math.inf


# Usages the rates are checked on against the library itself, one per shape of usage a provider reports.
_PROBES = (
    Usage(input_tokens=10_000, output_tokens=1_000),
    Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=3_000),
    Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=3_000, cache_write_tokens=2_000),
    Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=3_000, cache_write_tokens=2_000,
          cache_write_5m_tokens=1_500, cache_write_1h_tokens=500),
    Usage(input_tokens=10_000, output_tokens=500, cache_write_tokens=2_000, cache_write_1h_tokens=2_000),
)


def _linear(usage: Usage, r: _Rates) -> tuple[float, float] | None:
    """(input, output) USD of ``usage`` at rates ``r``; None when the counts do not add up (the library decides)."""
    read = usage.cache_read_tokens or 0
    write_1h = usage.cache_write_1h_tokens or 0
    write = usage.cache_write_tokens
    if write is None:
        write = (usage.cache_write_5m_tokens or 0) + write_1h
    uncached = (usage.input_tokens or 0) - read - write
    if uncached < 0 or write < write_1h:
        return None
    cost_in = (
        uncached * r.input + read * r.cache_read + (write - write_1h) * r.cache_write_5m + write_1h * r.cache_write_1h
    )
    return cost_in, (usage.output_tokens or 0) * r.output


def _rates(library_model: Any, library_provider: Any, when: datetime, context: Any) -> _Rates | None:
    """The per-token rates of the price in force, when the library's price is linear in llmotel's counts (no tiers,
    nothing per request) — checked on ``_PROBES`` against the library's own result; None otherwise."""
    prices = library_model.get_prices(when, context)
    below = math.inf

    def rate(*keys: str) -> float:
        nonlocal below
        for key in keys:
            value = getattr(prices, key, None)
            if value is not None:
                if not isinstance(value, Decimal):
                    # Tiered: the base rate holds below the first tier's start (the probes stay below it); a
                    # call at or above it is priced by the library itself.
                    base, tiers = getattr(value, "base", None), getattr(value, "tiers", None)
                    if not isinstance(base, Decimal) or not tiers:
                        raise TypeError(key)
                    below = min(below, float(min(t.start for t in tiers)))
                    value = base
                return float(value) / 1e6
        return 0.0

    try:
        rates = _Rates(
            rate("input_mtok"),
            rate("output_mtok"),
            rate("cache_read_mtok", "input_mtok"),
            rate("cache_write_5m_mtok", "cache_write_mtok", "input_mtok"),
            rate("cache_write_1h_mtok", "cache_write_mtok", "input_mtok"),
        )
    except TypeError:
        return None
    rates = rates._replace(below=below)
    for probe in _PROBES:
        exact = library_model.calc_price(probe, library_provider, genai_request_timestamp=when, price_context=context)
        mine = _linear(probe, rates)
        if mine is None or not (
            math.isclose(mine[0], float(exact.input_price), rel_tol=1e-9, abs_tol=1e-12)
            and math.isclose(mine[1], float(exact.output_price), rel_tol=1e-9, abs_tol=1e-12)
            and math.isclose(sum(mine), float(exact.total_price), rel_tol=1e-9, abs_tol=1e-12)
        ):
            return None
    return rates


_new_tuple = tuple.__new__

# (id of the price in force, service tier) -> its checked rates, or None (then the library prices each call).
_RATES: dict[tuple[int, str], tuple[Any, _Rates | None]] = {}


def price(
    provider: str, model: str, usage: Usage, service_tier: str = "", when: datetime | None = None
) -> Price | None:
    """The price of a call with this ``usage`` (GenAI meaning: input tokens include cache reads and writes) at
    ``when`` (default now), at the rates of ``service_tier`` as the response reported it (flex, priority, ...; ""
    for the standard rates). None when the provider, the model or the token counts are unknown. Never raises.

    The library's own calculation costs ~0.2 ms; so for each price in force (and service tier) llmotel takes its
    per-token rates once, checks them against the library on a few usages, and then only multiplies (~2 µs). A
    tiered price (Anthropic's long-context rates) is multiplied below its first tier and computed by the library
    at or above it; a price that is not linear in the token counts at all, on every call."""
    if usage.input_tokens is None or usage.output_tokens is None or provider in _UNPRICED or not model:
        return None
    try:
        found = _library.model(PROVIDER_IDS.get(provider, provider), model)
        if found is None:
            return None
        library_provider, library_model = found
        when = when or datetime.now(tz=UTC)
        context = {"service_tier": service_tier} if service_tier else None
        standard = library_model.get_prices(when)  # the same object while the same price is in force
        key = (id(standard), service_tier)
        cached = _RATES.get(key)
        if cached is None or cached[0] is not standard:
            if len(_RATES) >= _library.MAX:
                _RATES.clear()
            cached = _RATES[key] = (standard, _rates(library_model, library_provider, when, context))
        rates = cached[1]
        split = _linear(usage, rates) if rates is not None and usage.input_tokens < rates.below else None
        if split is not None:
            cost_in, cost_out = split
            return _new_tuple(Price, (cost_in + cost_out, cost_in, cost_out, _library.source))  # Price(...), faster
        calc = library_model.calc_price(usage, library_provider, genai_request_timestamp=when, price_context=context)
        return Price(float(calc.total_price), float(calc.input_price), float(calc.output_price), _library.source)
    except Exception:
        _log.debug("llmotel could not price %s %s", provider, model, exc_info=True)
        return None
