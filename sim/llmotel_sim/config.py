"""The simulator's configuration: a fleet, its tenants, revisions and faults, loadable from a scenario YAML.

Every duration in this module is in *simulated* seconds; the server divides them by ``speed`` when it sleeps.
Unknown keys are rejected with an error naming them, so a typo in a scenario never silently does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

ServerTimingMode = Literal[
    "tgi", "llama_cpp", "vllm", "sglang", "groq", "cerebras", "openai_processing_ms", "none"
]
SERVER_TIMING_MODES: tuple[ServerTimingMode, ...] = (
    "tgi", "llama_cpp", "vllm", "sglang", "groq", "cerebras", "openai_processing_ms", "none"
)
RoutingMode = Literal["cache_aware", "least_loaded", "least_busy", "round_robin", "random"]

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


class ConfigError(ValueError):
    """A scenario or config dict that cannot be used; the message names the field and the fix."""


@dataclass(slots=True)
class ReplicaSpec:
    """Cost model of one serving replica (continuous batching)."""

    max_batch: int = 32
    # Prefill of one request = uncached tokens x prefill_s_per_token (linear work: weights, MLP)
    #   + attention pairs / 1000 x prefill_s_per_kpair, pairs = uncached x cached + uncached^2 / 2 (each new token
    #   attends to the cached prefix and to the new tokens before it).
    # The default attention cost equals the linear one at a 4,000-token prompt (+2.5 % at 100 tokens, +50 % at
    # 2,000; a suffix after a 4,000-token cached prefix costs 3x a fresh token per token), the shape llama.cpp
    # shows on a CPU (bench/real: ~0.4 ms per token at 100 tokens, ~1 ms at 3,000, ~3 ms per suffix token after a
    # 1,500-token cached prefix). It is absolute, not relative to prefill_s_per_token: a scenario that makes the
    # linear term cheaper sets its own, and so does one with 100k+-token prompts (datacenter GPUs running 8B-70B
    # models cross over at tens of thousands of tokens; a 200k-token prompt here would prefill for ~500 s).
    prefill_s_per_token: float = 0.00005
    prefill_s_per_kpair: float = 0.000025
    # Reading a cached prefix is not free: llama.cpp restores it from its prompt cache, ~0.02 ms per cached token
    # against ~0.45 ms per uncached one on a CPU (bench/real prefix_sizes: least squares over 100 calls, 5 %).
    # 0 (off) by default; bench/phase_accuracy.py's scenarios set it.
    prefill_s_per_cached_token: float = 0.0
    # A real server's prefill of the same prompt is not the same twice: llama.cpp's prompt_ms scatters by 20-40 ms
    # (rms) around the best smooth model of 50-2,500-token prompts (bench/real, run seed2). Each request's prefill
    # work is multiplied by exp(N(0, prefill_jitter)), drawn from its own seeded randomness. 0 (off) by default.
    prefill_jitter: float = 0.0
    # A prefill pass shared with running decodes costs (1 + prefill_batch_factor * running batch size) times its
    # work: batching interference (the pass in turn stalls their next token: head-of-line blocking).
    prefill_batch_factor: float = 0.01
    # Decode: one step emits one token for every running sequence and costs base + per_seq * batch size
    #   + per_ktoken x the running sequences' context (prompt + tokens produced so far) / 1000: each sequence's
    #   next token attends over its whole context (llama.cpp on a CPU, one sequence: ~4.2 ms + ~1.6 ms per 1,000
    #   tokens of context, bench/real seeds 10-12). 0 (off) by default; bench/phase_accuracy.py's scenarios set it.
    decode_step_s: float = 0.02
    decode_step_s_per_seq: float = 0.0005
    decode_step_s_per_ktoken: float = 0.0
    # Prefix cache capacity in blocks of `block_tokens` tokens (LRU).
    cache_blocks: int = 8192
    block_tokens: int = 128
    # Cold start: the first request after `idle_s` of idleness waits `cold_start_s` (weights reload).
    cold_start_s: float = 0.0
    idle_s: float = 300.0


@dataclass(slots=True)
class RevisionSpec:
    """A model snapshot. Its behaviour (output length, speed) is what drifts during a rollout."""

    snapshot: str = "2025-01-01"  # appended to the requested model: gpt-4o -> gpt-4o-2025-01-01
    fingerprint: str = "fp_sim0000001"
    output_scale: float = 1.0  # multiplies the default output length
    decode_scale: float = 1.0  # multiplies the decode step cost


@dataclass(slots=True)
class RegionSpec:
    name: str = "us-east-1"
    iata: str = "IAD"  # cf-ray suffix
    geo: str = "us"  # Anthropic usage.inference_geo
    azure_name: str = ""  # when set, OpenAI-format responses carry Azure's x-ms-region header with it
    replicas: int = 2
    revision: str = "default"
    weight: float = 1.0  # share of unpinned traffic under region routing
    # Stream response headers go out with the first token (hosted APIs, llama-server) instead of on arrival
    # (vLLM, TGI); None: the fleet's headers_at_first_token.
    headers_at_first_token: bool | None = None


@dataclass(slots=True)
class TenantSpec:
    """Rate limits per tenant; None means unlimited. Windows are one simulated minute."""

    tpm: int | None = None  # input + output tokens per minute
    rpm: int | None = None
    itpm: int | None = None  # input tokens per minute (Anthropic reports it separately)
    otpm: int | None = None  # output tokens per minute
    region: str | None = None  # home region (pins routing unless the request pins another)
    # Instead of a 429 when the token budget runs short, clamp the output to what is left and report
    # finish_reason "length" / stop_reason "max_tokens": the silent truncation failure mode.
    truncate_on_quota: bool = False


@dataclass(slots=True)
class SimConfig:
    name: str = "default"
    description: str = ""
    seed: int = 1
    speed: float = 1.0
    server_timing: ServerTimingMode = "none"
    routing: RoutingMode = "cache_aware"
    replica: ReplicaSpec = field(default_factory=ReplicaSpec)
    regions: list[RegionSpec] = field(default_factory=lambda: [RegionSpec()])
    revisions: dict[str, RevisionSpec] = field(default_factory=lambda: {"default": RevisionSpec()})
    tenants: dict[str, TenantSpec] = field(default_factory=dict)
    default_tenant: TenantSpec = field(default_factory=TenantSpec)
    # Default output length when the request does not pin it: uniform in [min, max], seeded by the prompt.
    output_tokens_min: int = 16
    output_tokens_max: int = 64
    # OpenAI reports automatic prefix caching only for prompts of at least this many tokens.
    openai_min_cache_tokens: int = 1024
    anthropic_min_cache_tokens: int = 1024
    # Random fault rates (fault name -> probability per request), seeded.
    fault_rates: dict[str, float] = field(default_factory=dict)
    # Stream response headers wait for the first token (hosted APIs, llama-server) instead of going out on
    # arrival (vLLM, TGI); a region's own setting overrides it.
    headers_at_first_token: bool = False
    # Load generator description and the expected signature; opaque to the server.
    load: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)

    def tenant(self, name: str) -> TenantSpec:
        return self.tenants.get(name, self.default_tenant)

    def revision(self, name: str) -> RevisionSpec:
        return self.revisions.get(name) or RevisionSpec()

    def region(self, name: str) -> RegionSpec | None:
        return next((r for r in self.regions if r.name == name), None)


_T = TypeVar("_T")


def _build(cls: type[_T], data: Any, where: str) -> _T:
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    return cls(**data)


def config_from_dict(data: dict[str, Any]) -> SimConfig:
    """Build a SimConfig from plain data (a parsed YAML). Raises ConfigError naming the bad field."""
    data = dict(data)
    try:
        if "replica" in data:
            data["replica"] = _build(ReplicaSpec, data["replica"], "replica")
        if "regions" in data:
            data["regions"] = [_build(RegionSpec, r, f"regions[{i}]") for i, r in enumerate(data["regions"])]
        if "revisions" in data:
            data["revisions"] = {k: _build(RevisionSpec, v, f"revisions.{k}") for k, v in data["revisions"].items()}
        if "tenants" in data:
            data["tenants"] = {k: _build(TenantSpec, v or {}, f"tenants.{k}") for k, v in data["tenants"].items()}
        if "default_tenant" in data:
            data["default_tenant"] = _build(TenantSpec, data["default_tenant"], "default_tenant")
        cfg = _build(SimConfig, data, "config")
    except TypeError as exc:  # wrong value types surface here from the dataclass constructors
        raise ConfigError(str(exc)) from exc
    _validate(cfg)
    return cfg


def _validate(cfg: SimConfig) -> None:
    if cfg.speed <= 0:
        raise ConfigError("speed must be > 0 (it divides every simulated duration)")
    if cfg.server_timing not in SERVER_TIMING_MODES:
        raise ConfigError(f"server_timing must be one of {SERVER_TIMING_MODES}, got {cfg.server_timing!r}")
    if not cfg.regions:
        raise ConfigError("regions must list at least one region")
    for r in cfg.regions:
        if r.replicas < 1:
            raise ConfigError(f"regions.{r.name}.replicas must be >= 1")
        if r.revision not in cfg.revisions:
            raise ConfigError(f"regions.{r.name}.revision {r.revision!r} is not a key of revisions")
    if any(r.weight < 0 for r in cfg.regions) or sum(r.weight for r in cfg.regions) <= 0:
        raise ConfigError("regions[].weight must be >= 0 and at least one region needs weight > 0")
    if cfg.replica.max_batch < 1:
        raise ConfigError("replica.max_batch must be >= 1")
    for name in ("prefill_s_per_token", "prefill_s_per_kpair", "prefill_batch_factor", "prefill_s_per_cached_token",
                 "prefill_jitter"):
        if getattr(cfg.replica, name) < 0:
            raise ConfigError(f"replica.{name} must be >= 0, got {getattr(cfg.replica, name)!r}")
    if cfg.output_tokens_min < 1 or cfg.output_tokens_max < cfg.output_tokens_min:
        raise ConfigError("output_tokens_min must be >= 1 and <= output_tokens_max")


def load_scenario(name_or_path: str | Path) -> SimConfig:
    """Load a scenario by bundled name (``noisy_neighbour``) or by path to a YAML file."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        bundled = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
        raise ConfigError(f"scenario {str(name_or_path)!r} not found; bundled scenarios: {bundled}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a scenario must be a YAML mapping")
    return config_from_dict(cast(dict[str, Any], data))


def resolve_config(scenario_or_config: SimConfig | dict[str, Any] | str | Path | None) -> SimConfig:
    if scenario_or_config is None:
        return SimConfig()
    if isinstance(scenario_or_config, SimConfig):
        return scenario_or_config
    if isinstance(scenario_or_config, dict):
        return config_from_dict(scenario_or_config)
    return load_scenario(scenario_or_config)


def default_config() -> SimConfig:
    """The fleet behind the shared ``sim`` fixture: two regions on different revisions, no quotas.

    Unpinned traffic goes to us-east-1 only (eu-west-1 has weight 0), so repeated prompts hit the prefix
    cache; pin eu-west-1 with ``x-sim-region`` to see the other revision, geo and edge.
    """
    return SimConfig(
        name="default",
        description="two regions, staged rollout (us-east-1 new, eu-west-1 old), cache-aware routing",
        regions=[
            RegionSpec(name="us-east-1", iata="IAD", geo="us", azure_name="East US", replicas=2, revision="new"),
            RegionSpec(
                name="eu-west-1", iata="DUB", geo="eu", azure_name="West Europe", replicas=1, revision="old", weight=0.0
            ),
        ],
        revisions={
            "new": RevisionSpec(snapshot="2025-06-01", fingerprint="fp_sim2506new"),
            "old": RevisionSpec(snapshot="2024-11-20", fingerprint="fp_sim2411old"),
        },
    )
