"""Energy and carbon per call (method and sources: docs/energy.md).

    E = PUE x (E_prefill + E_decode + E_server)                                   [Wh]
    E_prefill = uncached input tokens x 2 x P_active x J_per_FLOP / 3600          (we add this; EcoLogits omits it)
    E_decode  = output tokens x GPUs x (ALPHA x exp(BETA x B) x P_active + GAMMA) (EcoLogits fit of ML.ENERGY, H100)
    E_server  = dT x W_server x GPUs / SERVER_GPUS / B                            (non-GPU share of the server)
    carbon    = E x grid intensity of the serving region                          [gCO2e]

P_active/P_total in billions; GPUs = H100-80GB count holding the 16-bit weights (power of two); B = batch size;
dT = the call's server time (reported, or estimated with the EcoLogits latency fit).

Contract (telemetry/spans.py relies on it): ``estimate`` returns an EnergyEstimate, or None when the token counts needed
are missing. Never raises; never invents a point value for an unknown model (a range by family, or the widest
range, with model_size_source saying so). Cheap: data files are parsed once, per-model and per-region work is
cached in bounded LRU caches, and a call does a few dict hits and a dozen float operations.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from functools import lru_cache

from llmotel import forksafe
from llmotel.energy import config as energy_config
from llmotel.energy import reference as energy_data
from llmotel.energy.reference import ModelSize
from llmotel.record import EnergyEstimate, Usage

METHOD = "llmotel-energy/1"

_log = logging.getLogger(__name__)

# --- Decode: EcoLogits' fit of ML.ENERGY leaderboard measurements (vLLM, H100 80GB), Wh per output token per GPU,
# f_E(P_active, B) = ALPHA * exp(BETA * B) * P_active + GAMMA. Source: EcoLogits methodology "Environmental Impacts of
# LLM Inference", section "Modeling GPU energy consumption" (https://ecologits.ai/latest/methodology/llm_inference/,
# genai-impact/ecologits docs/methodology/llm_inference.md, commit 79e5b1f 2025-10-09).
ALPHA_WH = 1.17e-6
BETA = -1.12e-2
GAMMA_WH = 4.05e-5
# EcoLogits fixes B = 64 ("From now on, we consider that the batch size is fixed to B = 64"); overridable.
DEFAULT_BATCH_SIZE = 64

# --- Latency fit from the same source (s per output token), used only when the server reported no time:
# f_L(P_active, B) = LAT_A * P_active + LAT_B * B + LAT_C.
LAT_A = 6.78e-4
LAT_B = 3.12e-4
LAT_C = 1.94e-2

# --- Hardware, as in the EcoLogits methodology: H100 80 GB, 16-bit weights with a 1.2 memory overhead
# (EleutherAI "Transformer Math 101"), GPU count rounded up to a power of two; an 8-GPU server
# (AWS p5.48xlarge) whose non-GPU part draws 1.2 kW (BoaviztAPI estimate quoted by EcoLogits).
GPU_MEMORY_GB = 80.0
BYTES_PER_PARAM = 2.0
MEMORY_OVERHEAD = 1.2
SERVER_GPUS = 8
SERVER_POWER_W = 1200.0

# --- Prefill (our addition): compute-bound, 2 x P_active FLOPs per token (Kaplan et al. 2020, arXiv:2001.08361,
# forward pass). Energy per FLOP = H100 SXM board power 700 W / (989.4e12 dense BF16 FLOP/s x utilisation), both
# from NVIDIA's H100 datasheet; the 0.5 utilisation is OUR ASSUMPTION for compute-bound prefill (docs/energy.md).
H100_POWER_W = 700.0
H100_BF16_FLOPS = 989.4e12
PREFILL_UTILISATION = 0.5
J_PER_FLOP = H100_POWER_W / (H100_BF16_FLOPS * PREFILL_UTILISATION)

# --- PUE when neither the region nor the user says: EcoLogits' hyperscaler default (methodology v1.0).
# Cloud providers' fleet PUE as quoted by Cloud Carbon Footprint (Methodology, Appendix I; Apache-2.0).
DEFAULT_PUE = 1.2
PROVIDER_PUE = {"aws": 1.135, "gcp": 1.1, "azure": 1.125}

_WH_PER_J = 1.0 / 3600.0


@dataclass(frozen=True, slots=True)
class _Bound:
    """Per-token coefficients for one model size (Wh, GPU energy before PUE)."""

    decode_wh_per_token: float
    prefill_wh_per_token: float
    server_wh_per_s: float
    latency_s_per_token: float


@dataclass(frozen=True, slots=True)
class _ModelCoeffs:
    low: _Bound
    mid: _Bound
    high: _Bound
    size_source: str


@dataclass(frozen=True, slots=True)
class _Grid:
    intensity: float | None
    region: str
    pue: float


def gpu_count(total_b: float) -> int:
    """H100-80GB GPUs needed for 16-bit weights with 20 % overhead, rounded up to a power of two (>= 1)."""
    needed = math.ceil(MEMORY_OVERHEAD * total_b * BYTES_PER_PARAM / GPU_MEMORY_GB)
    return 1 if needed <= 1 else 2 ** math.ceil(math.log2(needed))


def decode_wh_per_token(active_b: float, total_b: float, batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """GPU energy (Wh, no PUE, no server share) per output token over all GPUs serving the model."""
    per_gpu = ALPHA_WH * math.exp(BETA * batch_size) * active_b + GAMMA_WH
    return gpu_count(total_b) * per_gpu


def prefill_wh_per_token(active_b: float) -> float:
    """GPU energy (Wh, no PUE) to prefill one uncached input token."""
    return 2.0 * active_b * 1e9 * J_PER_FLOP * _WH_PER_J


def _bound(total_b: float, active_b: float, batch: int) -> _Bound:
    gpus = gpu_count(total_b)
    return _Bound(
        decode_wh_per_token=decode_wh_per_token(active_b, total_b, batch),
        prefill_wh_per_token=prefill_wh_per_token(active_b),
        server_wh_per_s=SERVER_POWER_W * _WH_PER_J * gpus / SERVER_GPUS / batch,
        latency_s_per_token=LAT_A * active_b + LAT_B * batch + LAT_C,
    )


class _State:
    """Overrides and caches; replaced wholesale by ``reload``."""

    def __init__(self, overrides: energy_config.EnergyOverrides) -> None:
        self.overrides = overrides
        self.batch = overrides.batch_size or DEFAULT_BATCH_SIZE
        self.override_table = energy_data.ModelTable(overrides.models, energy_data.model_table().widest)
        self.coeffs = lru_cache(maxsize=512)(self._coeffs)
        self.grid = lru_cache(maxsize=256)(self._grid)

    def _resolve_size(self, model: str) -> tuple[ModelSize, str]:
        tokens = energy_data.normalise_model(model)
        hit = self.override_table.find(tokens)
        if hit is not None:
            return hit, "override"
        table = energy_data.model_table()
        hit = table.find(tokens)
        if hit is not None and hit.kind == "model":
            return hit, "table"
        from_name = energy_data.size_from_name(tokens)
        if from_name is not None:
            total, active = from_name
            return ModelSize(total, total, active, active, "model", "model name"), "name"
        if hit is not None and hit.kind == "family":
            return hit, "family"
        if hit is not None:  # proprietary: sizes undisclosed
            return hit, "undisclosed"
        return table.widest, "unknown"

    def _coeffs(self, model: str) -> _ModelCoeffs:
        size, source = self._resolve_size(model)
        total_mid = math.sqrt(size.total_min * size.total_max)
        active_mid = min(math.sqrt(size.active_min * size.active_max), total_mid)
        return _ModelCoeffs(
            low=_bound(size.total_min, size.active_min, self.batch),
            mid=_bound(total_mid, active_mid, self.batch),
            high=_bound(size.total_max, size.active_max, self.batch),
            size_source=source,
        )

    def _grid(self, region: str) -> _Grid:
        overrides = self.overrides
        wanted = region.strip() or (overrides.region or "")
        user = overrides.regions.get(wanted.lower()) if wanted else None
        found = energy_data.grid_table().find(wanted) if wanted else None
        if found is None and user is None and overrides.region and wanted != overrides.region:
            # The call's region is unknown to us: fall back to the user's default region before the world average.
            wanted = overrides.region
            user = overrides.regions.get(wanted.lower())
            found = energy_data.grid_table().find(wanted)
        pue = overrides.pue or DEFAULT_PUE
        if found is not None and overrides.pue is None:
            pue = PROVIDER_PUE.get(found.provider, pue)
        if user is not None:
            if user.pue is not None:
                pue = user.pue
            if user.gco2e_per_kwh is not None:
                return _Grid(user.gco2e_per_kwh, wanted, pue)
        if found is not None:
            return _Grid(found.gco2e_per_kwh, found.region, pue)
        world = energy_data.grid_table().world
        return _Grid(world.gco2e_per_kwh, world.region, pue)


_state: _State | None = None
_state_lock = forksafe.lock(sys.modules[__name__], "_state_lock")


def _get_state() -> _State:
    state = _state
    if state is None:
        state = reload()
    return state


def reload(overrides: energy_config.EnergyOverrides | None = None) -> _State:
    """Re-read LLMOTEL_ENERGY_CONFIG (or use ``overrides``) and drop every cache. Never raises."""
    global _state
    with _state_lock:
        try:
            state = _State(overrides if overrides is not None else energy_config.from_env())
        except Exception:  # a broken override must not disable the shipped data
            _log.warning("llmotel energy: overrides rejected, using shipped data only", exc_info=True)
            state = _State(energy_config.EMPTY)
        _state = state
        return state


def preload() -> None:
    """Parse the shipped tables and the user config now (a few ms) instead of on the first call. Never raises."""
    try:
        state = _get_state()
        energy_data.grid_table()
        state.coeffs("")
    except Exception:
        _log.debug("llmotel energy preload failed", exc_info=True)


def estimate(model: str, region: str, usage: Usage, server_time_s: float | None) -> EnergyEstimate | None:
    """Energy and carbon of one call; None when input or output token counts are missing. Never raises."""
    try:
        return _estimate(model, region, usage, server_time_s)
    except Exception:
        _log.debug("llmotel energy estimate failed", exc_info=True)
        return None


def _it_wh(bound: _Bound, uncached: int, output_tokens: int, server_s: float | None) -> float:
    """IT energy (Wh, before PUE) of one call for one model-size bound."""
    seconds = output_tokens * bound.latency_s_per_token if server_s is None else server_s
    return (
        uncached * bound.prefill_wh_per_token
        + output_tokens * bound.decode_wh_per_token
        + seconds * bound.server_wh_per_s
    )


def _estimate(model: str, region: str, usage: Usage, server_time_s: float | None) -> EnergyEstimate | None:
    input_tokens = usage.input_tokens
    output_tokens = usage.output_tokens
    if input_tokens is None or output_tokens is None or input_tokens < 0 or output_tokens < 0:
        return None
    # Cache reads skip prefill compute (the KV entries are loaded, not recomputed); cache writes are computed.
    uncached = max(input_tokens - (usage.cache_read_tokens or 0), 0)
    state = _get_state()
    coeffs = state.coeffs(model or "")
    grid = state.grid(region or "")
    server_s = server_time_s if server_time_s is not None and 0 <= server_time_s < math.inf else None

    pue = grid.pue
    # _it_wh for the three bounds, inlined (same expression, same floats): this runs on every call.
    b = coeffs.low
    seconds = output_tokens * b.latency_s_per_token if server_s is None else server_s
    low = (
        uncached * b.prefill_wh_per_token + output_tokens * b.decode_wh_per_token + seconds * b.server_wh_per_s
    ) * pue
    b = coeffs.mid
    seconds = output_tokens * b.latency_s_per_token if server_s is None else server_s
    mid = (
        uncached * b.prefill_wh_per_token + output_tokens * b.decode_wh_per_token + seconds * b.server_wh_per_s
    ) * pue
    b = coeffs.high
    seconds = output_tokens * b.latency_s_per_token if server_s is None else server_s
    high = (
        uncached * b.prefill_wh_per_token + output_tokens * b.decode_wh_per_token + seconds * b.server_wh_per_s
    ) * pue
    wh_min, wh_max = min(low, mid, high), max(low, mid, high)
    intensity = grid.intensity
    kwh_factor = None if intensity is None else intensity / 1000.0
    return EnergyEstimate(
        wh=mid,
        wh_min=wh_min,
        wh_max=wh_max,
        gco2e=None if kwh_factor is None else mid * kwh_factor,
        gco2e_min=None if kwh_factor is None else wh_min * kwh_factor,
        gco2e_max=None if kwh_factor is None else wh_max * kwh_factor,
        grid_intensity=intensity,
        grid_region=grid.region,
        pue=pue,
        method=METHOD,
        model_size_source=coeffs.size_source,
    )
