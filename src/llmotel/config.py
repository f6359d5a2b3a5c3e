"""llmotel settings: environment variables, overridable by keyword options.

Every setting has an ``LLMOTEL_*`` variable (or the OpenTelemetry GenAI one where a standard exists).
``load()`` reads them once; ``configure(**options)`` overrides them for this process (the instrumentors'
keyword arguments go through it). A bad value raises ``ConfigError`` naming the key and the fix, at
configuration time, never during an LLM call.

| option                  | variable                                           | default |
| ----------------------- | -------------------------------------------------- | ------- |
| stall_threshold_s       | LLMOTEL_STALL_THRESHOLD_S                          | 2.0     |
| region                  | LLMOTEL_REGION                                     | ""      |
| tenant_from_user        | LLMOTEL_TENANT_FROM_USER                           | false   |
| tenant_hash             | LLMOTEL_TENANT_HASH                                | false   |
| tenant_resolver         | (code only)                                        | None    |
| fingerprint_key         | LLMOTEL_FINGERPRINT_KEY                            | random per process |
| propagate_trace_context | LLMOTEL_PROPAGATE_TRACE_CONTEXT                    | false   |
| capture_content         | OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT | false   |
| content_max_chars       | LLMOTEL_CONTENT_MAX_CHARS                          | 16384   |
| latest_experimental     | OTEL_SEMCONV_STABILITY_OPT_IN (gen_ai_latest_experimental) | false |
| phase_metrics           | LLMOTEL_PHASE_METRICS                              | false   |
| phase_spans             | LLMOTEL_PHASE_SPANS (direct or tracer)             | direct  |
| chunk_metrics           | LLMOTEL_CHUNK_METRICS (mean or each)               | mean    |

``phase_metrics`` turns on the SDK-side ``llmotel.phase.duration`` histogram (four to five extra metric records
per call, ~8-10 µs each in the OpenTelemetry SDK); off by default because the phase spans carry the same
durations and the collector's ``llm_sli`` connector derives ``llmotel.sli.phase.duration`` from them.

``phase_spans="direct"`` hands the finished phase children straight to the SDK span processor
(``llmotel.finished_spans``: no sampler call, no ``on_start``, a quarter of the cost); ``"tracer"`` creates them
through ``Tracer.start_span`` like any other span.

``chunk_metrics="each"`` records ``gen_ai.client.operation.time_per_output_chunk`` once per chunk after the first, as
the GenAI convention defines it (one OTel SDK histogram record per chunk, ~10 µs each, plus a list append per chunk);
the default ``"mean"`` records the stream's mean gap once per call (stalls stay visible on the decode span and in the
collector's SLIs).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

TenantResolver = Callable[[], "str | None"]


class ConfigError(ValueError):
    """A setting has a value llmotel cannot use; the message names the key and the fix."""


@dataclass(frozen=True, slots=True)
class Config:
    stall_threshold_s: float = 2.0
    region: str = ""
    tenant_from_user: bool = False
    tenant_hash: bool = False
    tenant_resolver: TenantResolver | None = None
    fingerprint_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    propagate_trace_context: bool = False
    capture_content: bool = False
    content_max_chars: int = 16384
    latest_experimental: bool = False
    phase_metrics: bool = False
    phase_spans: str = "direct"
    chunk_metrics: str = "mean"

    @property
    def stall_threshold_ns(self) -> int:
        return int(self.stall_threshold_s * 1e9)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{key}={raw!r} is not a boolean; use true or false")


def _positive_float(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a number; use seconds, e.g. {key}=2.0") from None
    if not value > 0:
        raise ConfigError(f"{key}={raw!r} must be > 0; use seconds, e.g. {key}=2.0")
    return value


def _positive_int(key: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not an integer; e.g. {key}=16384") from None
    if value <= 0:
        raise ConfigError(f"{key}={raw!r} must be > 0; e.g. {key}=16384")
    return value


_PHASE_SPAN_PATHS = ("direct", "tracer")
_CHUNK_METRICS = ("mean", "each")


def _choice(key: str, raw: str, allowed: tuple[str, ...]) -> str:
    """``raw`` normalised if it is one of ``allowed`` (the first is the default); ConfigError otherwise."""
    value = raw.strip().lower()
    if value not in allowed:
        raise ConfigError(
            f"{key}={raw!r} is not one of {' or '.join(allowed)}; use {allowed[0]} (default) or "
            + " or ".join(allowed[1:])
        )
    return value


def from_env(env: Mapping[str, str] | None = None) -> Config:
    """Read the settings from ``env`` (default ``os.environ``). Raises ConfigError on a bad value."""
    env = os.environ if env is None else env
    kw: dict[str, Any] = {}
    if (v := env.get("LLMOTEL_STALL_THRESHOLD_S")) is not None:
        kw["stall_threshold_s"] = _positive_float("LLMOTEL_STALL_THRESHOLD_S", v)
    if v := env.get("LLMOTEL_REGION"):
        kw["region"] = v.strip()
    for key, name in (
        ("LLMOTEL_TENANT_FROM_USER", "tenant_from_user"),
        ("LLMOTEL_TENANT_HASH", "tenant_hash"),
        ("LLMOTEL_PROPAGATE_TRACE_CONTEXT", "propagate_trace_context"),
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "capture_content"),
        ("LLMOTEL_PHASE_METRICS", "phase_metrics"),
    ):
        if (v := env.get(key)) is not None:
            kw[name] = _bool(key, v)
    if v := env.get("LLMOTEL_FINGERPRINT_KEY"):
        if len(v) < 16:
            raise ConfigError("LLMOTEL_FINGERPRINT_KEY is shorter than 16 characters; use a random secret of 32+ chars")
        kw["fingerprint_key"] = v.encode()
    if (v := env.get("LLMOTEL_CONTENT_MAX_CHARS")) is not None:
        kw["content_max_chars"] = _positive_int("LLMOTEL_CONTENT_MAX_CHARS", v)
    if (v := env.get("LLMOTEL_PHASE_SPANS")) is not None:
        kw["phase_spans"] = _choice("LLMOTEL_PHASE_SPANS", v, _PHASE_SPAN_PATHS)
    if (v := env.get("LLMOTEL_CHUNK_METRICS")) is not None:
        kw["chunk_metrics"] = _choice("LLMOTEL_CHUNK_METRICS", v, _CHUNK_METRICS)
    opt_in = {part.strip() for part in env.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
    kw["latest_experimental"] = "gen_ai_latest_experimental" in opt_in
    return Config(**kw)


_FIELDS = frozenset(f.name for f in dataclasses.fields(Config))
_current: Config | None = None


def get() -> Config:
    """The active settings (read from the environment on first use)."""
    global _current
    if _current is None:
        _current = from_env()
    return _current


def configure(**options: Any) -> Config:
    """Override settings for this process; unknown keys and bad values raise ConfigError."""
    global _current
    unknown = set(options) - _FIELDS
    if unknown:
        raise ConfigError(f"unknown llmotel option(s) {sorted(unknown)}; valid options: {sorted(_FIELDS)}")
    if "stall_threshold_s" in options:
        options["stall_threshold_s"] = _positive_float("stall_threshold_s", str(options["stall_threshold_s"]))
    if "fingerprint_key" in options and isinstance(options["fingerprint_key"], str):
        options["fingerprint_key"] = options["fingerprint_key"].encode()
    if "chunk_metrics" in options:
        options["chunk_metrics"] = _choice("chunk_metrics", str(options["chunk_metrics"]), _CHUNK_METRICS)
    if "phase_spans" in options:
        options["phase_spans"] = _choice("phase_spans", str(options["phase_spans"]), _PHASE_SPAN_PATHS)
    resolver = options.get("tenant_resolver")
    if resolver is not None and not callable(resolver):
        raise ConfigError("tenant_resolver must be a callable returning the tenant id (str) or None")
    _current = dataclasses.replace(get(), **options)
    return _current


def reset() -> None:
    """Forget overrides; the next ``get()`` re-reads the environment (tests use this)."""
    global _current
    _current = None
