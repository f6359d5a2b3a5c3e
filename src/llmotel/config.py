"""llmotel settings: one registry (``SETTINGS``) drives the environment, the keyword options and the docs table.

Each ``Setting`` names its keyword option, its variable (``LLMOTEL_*``, or the OpenTelemetry one where a
standard exists; None for code-only settings), the parser both paths go through, its default and its doc.
``resolve(options, env)`` reads the variables, then applies the keyword options, into a frozen ``Settings``.

Settings are resolved once per instrumentor: ``instrument(**options)`` resolves them (starting from the
process default below) and every call it records carries them (``Call.settings``); nothing on the call path
reads a global. The process default — ``get()``, changed by ``configure(**options)`` (the public
``llmotel.configure``) — is what ``instrument()`` starts from and what code not tied to an instrumentor uses
(agent runs). Bad values are found when settings are resolved, never during an LLM call, and named with the
key, the value and the fix (``_invalid``): a bad *variable* is a deployment mistake that must not switch
llmotel off, so ``get()`` (what ``instrument()`` starts from) logs it once at WARNING on the ``llmotel``
logger and that setting falls back to its default; a bad *keyword option* is a programming error in the
caller's code and raises ``ConfigError`` at ``instrument()`` / ``configure()``, like any bad argument.
``resolve()`` is strict by default (tests and tools checking a configuration get the ``ConfigError``).

``python -m llmotel.config --markdown`` prints the table; ``--write-docs docs/sdk.md`` rewrites it between the
``<!-- settings-table -->`` markers (a test fails when the docs are stale).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

TenantResolver = Callable[[], "str | None"]


class ConfigError(ValueError):
    """A setting has a value llmotel cannot use; the message names the key, the value and the fix."""


@dataclass(frozen=True, slots=True)
class Settings:
    """One instrumentor's resolved settings (see ``SETTINGS`` for each field's meaning). Build with ``resolve``."""

    stall_threshold_s: float
    region: str
    tenant_from_user: bool
    tenant_hash: bool
    tenant_resolver: TenantResolver | None
    fingerprint_key: bytes = field(repr=False)  # a secret: kept out of logs
    propagate_trace_context: str
    capture_content: bool
    content_max_chars: int
    latest_experimental: bool
    phase_metrics: bool
    phase_spans: str
    chunk_metrics: str
    phase_model_state: str
    energy_config: str
    anthropic_sdk_spans: str
    # Derived once here so the per-call path reads one attribute.
    stall_threshold_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stall_threshold_ns", int(self.stall_threshold_s * 1e9))


# ---- parsers: (key, raw) -> value; raw is the variable's text or the keyword option's value -------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _bool(key: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{key}={raw!r} is not a boolean; use true or false")


def _positive_float(key: str, raw: object) -> float:
    try:
        value = float(str(raw))
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a number; use seconds, e.g. {key}=2.0") from None
    if not value > 0:
        raise ConfigError(f"{key}={raw!r} must be > 0; use seconds, e.g. {key}=2.0")
    return value


def _positive_int(key: str, raw: object) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not an integer; e.g. {key}=16384") from None
    if value <= 0:
        raise ConfigError(f"{key}={raw!r} must be > 0; e.g. {key}=16384")
    return value


def _choice(allowed: tuple[str, ...]) -> Callable[[str, object], str]:
    """A parser accepting one of ``allowed`` (the first is the default), normalised."""

    def parse(key: str, raw: object) -> str:
        value = str(raw).strip().lower()
        if value not in allowed:
            raise ConfigError(
                f"{key}={raw!r} is not one of {' or '.join(allowed)}; use {allowed[0]} (default) or "
                + " or ".join(allowed[1:])
            )
        return value

    return parse


def _text(key: str, raw: object) -> str:
    return str(raw).strip()


_PROCESS_KEY = secrets.token_bytes(32)  # the default fingerprint key: random, the same for the whole process


def _fingerprint_key(key: str, raw: object) -> bytes:
    if raw == "":  # an empty variable means unset
        return _PROCESS_KEY
    value = raw if isinstance(raw, bytes) else str(raw).encode()
    if len(value) < 16:
        raise ConfigError(f"{key} is shorter than 16 characters; use a random secret of 32+ chars")
    return value


def _resolver(key: str, raw: object) -> TenantResolver | None:
    if raw is not None and not callable(raw):
        raise ConfigError(f"{key} must be a callable returning the tenant id (str) or None")
    return raw


def _energy_file(key: str, raw: object) -> str:
    """A readable energy override file, loaded (and its bad entries reported) now, when settings are resolved,
    rather than at the first call that estimates energy."""
    path = str(raw).strip()
    if path:
        from llmotel.energy import config as energy_config  # here: llmotel.energy imports this module

        try:
            energy_config.load_checked(path)
        except energy_config.EnergyConfigError as exc:
            raise ConfigError(
                f"{key}={raw!r} cannot be used: {exc}; fix the file (`python -m llmotel.energy.config FILE` lists "
                f"every problem) or unset {key}: the shipped energy data is used until then"
            ) from None
    return path


def _opt_in(key: str, raw: object) -> bool:
    """OTEL_SEMCONV_STABILITY_OPT_IN is a comma list; as a keyword option, a boolean."""
    if isinstance(raw, bool):
        return raw
    return "gen_ai_latest_experimental" in {part.strip() for part in str(raw).split(",")}


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: keyword ``name``, variable ``env`` (None: code only), ``parse(key, raw)``, default, docs."""

    name: str
    env: str | None
    parse: Callable[[str, object], Any]
    default: Any
    doc: str
    default_doc: str = ""  # the default as the docs table shows it ("" = the default's own text)

    def shown_default(self) -> str:
        if self.default_doc:
            return self.default_doc
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return "" if self.default in ("", None) else str(self.default)


_PROPAGATION_MODES = ("self_hosted", "always", "never")
_propagation_choice = _choice(_PROPAGATION_MODES)


def _propagation(key: str, raw: object) -> str:
    """``self_hosted`` / ``always`` / ``never``; a boolean (the setting's former type) means always / never."""
    if isinstance(raw, bool):
        return "always" if raw else "never"
    value = str(raw).strip().lower().replace("-", "_")
    if value == "":
        return _PROPAGATION_MODES[0]
    if value in _TRUE:
        return "always"
    if value in _FALSE:
        return "never"
    return _propagation_choice(key, value)


_PHASE_SPAN_PATHS = ("direct", "tracer")
_CHUNK_METRICS = ("mean", "each")
_ANTHROPIC_SDK_SPANS = ("off", "keep")

SETTINGS: tuple[Setting, ...] = (
    Setting("stall_threshold_s", "LLMOTEL_STALL_THRESHOLD_S", _positive_float, 2.0,
            "an inter-chunk gap longer than this is a stall"),
    Setting("region", "LLMOTEL_REGION", _text, "",
            "serving region when nothing in the response says (`source = config`)"),
    Setting("tenant_from_user", "LLMOTEL_TENANT_FROM_USER", _bool, False,
            "use the request's `user` / `safety_identifier` as tenant"),
    Setting("tenant_hash", "LLMOTEL_TENANT_HASH", _bool, False, "replace tenant ids by a keyed hash"),
    Setting("tenant_resolver", None, _resolver, None,
            "`() -> str | None`, asked when no `llmotel.tenant()` is active"),
    Setting("fingerprint_key", "LLMOTEL_FINGERPRINT_KEY", _fingerprint_key, _PROCESS_KEY,
            "HMAC key of prefix fingerprints and hashed tenants (16+ chars)", "random per process"),
    Setting("propagate_trace_context", "LLMOTEL_PROPAGATE_TRACE_CONTEXT", _propagation, "self_hosted",
            "inject W3C `traceparent` (+ baggage) so a vLLM/SGLang/TGI server span joins the call's trace: "
            "`self_hosted` (only to hosts that are not a known hosted API: loopback, private, `.local`, your own "
            "names), `always`, `never`; `true`/`false` mean `always`/`never`. Not sent to hosted APIs by default: "
            "trace ids and baggage (which may carry tenant or user ids) would leave your infrastructure for a "
            "vendor that exports no spans back to you"),
    Setting("capture_content", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", _bool, False,
            "record messages"),
    Setting("content_max_chars", "LLMOTEL_CONTENT_MAX_CHARS", _positive_int, 16384, "cap per content attribute"),
    Setting("latest_experimental", "OTEL_SEMCONV_STABILITY_OPT_IN", _opt_in, False,
            "the variable contains `gen_ai_latest_experimental` → newest GenAI names"),
    Setting("phase_metrics", "LLMOTEL_PHASE_METRICS", _bool, False,
            "SDK-side `llmotel.phase.duration` histogram (4-5 extra metric records per call, ~8-10 µs each); "
            "the phase spans carry the same durations"),
    Setting("phase_spans", "LLMOTEL_PHASE_SPANS", _choice(_PHASE_SPAN_PATHS), "direct",
            "`direct`: finished phase children go straight to the span processor (no sampler, no `on_start`, "
            "a quarter of the cost); `tracer`: through `Tracer.start_span`"),
    Setting("chunk_metrics", "LLMOTEL_CHUNK_METRICS", _choice(_CHUNK_METRICS), "mean",
            "`mean`: time per output chunk recorded once per call as the stream's mean gap; `each`: once per "
            "chunk after the first, as the GenAI convention defines it (~10 µs per chunk)"),
    Setting("phase_model_state", "LLMOTEL_PHASE_MODEL_STATE", _text, "",
            "file the phase model's learned points are loaded from at import and saved to at exit "
            "(process-wide; read from the environment only)"),
    Setting("energy_config", "LLMOTEL_ENERGY_CONFIG", _energy_file, "",
            "energy override file (docs/energy.md; process-wide; read from the environment only; checked when "
            "settings are resolved: an unreadable file is reported once and the shipped data is used)"),
    Setting("anthropic_sdk_spans", "LLMOTEL_ANTHROPIC_SDK_SPANS", _choice(_ANTHROPIC_SDK_SPANS), "off",
            "the `anthropic` SDK's own span (2.x, `anthropic.messages.create`) for the calls llmotel instruments: "
            "`off`: not made, one CLIENT span per call, llmotel's (the SDK's tracing work for those calls is skipped "
            "too); `keep`: made as well, a child of llmotel's span (two LLM spans per call). The SDK's spans of calls "
            "llmotel does not instrument are kept either way"),
)

SETTING: Mapping[str, Setting] = {s.name: s for s in SETTINGS}


_log = logging.getLogger("llmotel")
_warned: set[str] = set()  # messages already logged: one warning per key and value, however often it is read


def _invalid(setting: Setting, error: ConfigError, strict: bool) -> Any:
    """Every bad value ends here. ``strict`` (keyword options, ``resolve()``): raise ``error``. Otherwise (the
    variables behind ``get()`` and ``env_value()``): log ``error`` once at WARNING and use the default, so one
    bad variable never switches llmotel off."""
    if strict:
        raise error
    message = str(error)
    if message not in _warned:
        _warned.add(message)
        shown = setting.shown_default()
        _log.warning("llmotel: %s; using the default%s", message, f" ({shown})" if shown else " (unset)")
    return setting.default


def _parse(setting: Setting, key: str, raw: object, strict: bool) -> Any:
    try:
        return setting.parse(key, raw)
    except ConfigError as exc:
        return _invalid(setting, exc, strict)


def _from_env(env: Mapping[str, str], strict: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = env.get(s.env) if s.env is not None else None
        values[s.name] = s.default if raw is None else _parse(s, s.env or s.name, raw, strict)
    return values


def override(base: Settings, options: Mapping[str, Any] | None) -> Settings:
    """``base`` with keyword ``options`` applied (each through its setting's parser). Unknown keys and bad
    values raise ConfigError: options are code, and a bad argument is the caller's bug."""
    if not options:
        return base
    unknown = set(options) - set(SETTING)
    if unknown:
        raise ConfigError(f"unknown llmotel option(s) {sorted(unknown)}; valid options: {sorted(SETTING)}")
    parsed = {name: _parse(SETTING[name], name, raw, True) for name, raw in options.items()}
    return dataclasses.replace(base, **parsed)


def resolve(
    options: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None, *, strict: bool = True
) -> Settings:
    """Settings from ``env`` (default ``os.environ``), then keyword ``options``. A bad option or an unknown one
    raises ConfigError; so does a bad variable when ``strict`` (else it is logged once and defaulted)."""
    return override(Settings(**_from_env(os.environ if env is None else env, strict)), options)


def env_value(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One setting read from ``env`` (default ``os.environ``) alone, for process-wide settings read at a fixed
    time (``phase_model_state``, ``energy_config``); other variables are not looked at. Never raises: a bad
    value is logged once and the default is used."""
    s = SETTING[name]
    raw = (os.environ if env is None else env).get(s.env) if s.env is not None else None
    return s.default if raw is None else _parse(s, s.env or name, raw, False)


# ---- the process default ----------------------------------------------------------------------------

_current: Settings | None = None


def get() -> Settings:
    """The process default: the environment (read on first use; a bad variable is logged once and defaulted)
    plus ``configure()`` overrides. ``instrument()`` starts from it; code not tied to an instrumentor (agent
    runs) uses it. Never raises."""
    global _current
    if _current is None:
        _current = resolve(strict=False)
    return _current


def configure(**options: Any) -> Settings:
    """Override the process default (``llmotel.configure``): instrumentors created after this start from it.
    Unknown keys and bad values raise ConfigError."""
    global _current
    _current = override(get(), options)
    return _current


def reset() -> None:
    """Forget ``configure()`` overrides; the next ``get()`` re-reads the environment."""
    global _current
    _current = None


# ---- docs -------------------------------------------------------------------------------------------

DOCS_BEGIN = "<!-- settings-table: generated by `python -m llmotel.config --write-docs docs/sdk.md` -->"
DOCS_END = "<!-- /settings-table -->"


def markdown_table() -> str:
    """The settings table of docs/sdk.md, from ``SETTINGS``."""
    rows = ["| option | variable | default | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        env = f"`{s.env}`" if s.env else "(code)"
        doc = s.doc.replace("|", "\\|")
        rows.append(f"| `{s.name}` | {env} | {s.shown_default()} | {doc} |")
    return "\n".join(rows) + "\n"


def with_table(text: str) -> str:
    """``text`` with the part between the markers replaced by ``markdown_table()``. ValueError without markers."""
    begin, end = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if begin < 0 or end < begin:
        raise ValueError(f"markers {DOCS_BEGIN!r} ... {DOCS_END!r} not found; add them where the table goes")
    return text[: begin + len(DOCS_BEGIN)] + "\n" + markdown_table() + text[end:]


def main(argv: list[str] | None = None) -> int:
    """``--markdown``: print the table; ``--write-docs FILE``: rewrite the table in FILE between the markers."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--markdown"]:
        sys.stdout.write(markdown_table())
        return 0
    if len(args) == 2 and args[0] == "--write-docs":
        with open(args[1], encoding="utf-8") as f:
            text = f.read()
        updated = with_table(text)
        if updated != text:
            with open(args[1], "w", encoding="utf-8") as f:
                f.write(updated)
        return 0
    sys.stderr.write("usage: python -m llmotel.config --markdown | --write-docs docs/sdk.md\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
