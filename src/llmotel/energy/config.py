"""User overrides for the energy estimate: private models, own data centres, PUE and batch size.

The file named by ``LLMOTEL_ENERGY_CONFIG`` (JSON; YAML too when PyYAML is installed) looks like::

    {
      "models": {
        "acme-chat-13b": {"total_b": 13},
        "acme-moe":      {"total_b": 120, "active_b": 12, "source": "vendor data sheet"},
        "acme-secret":   {"total_b": [50, 200], "active_b": [10, 40]}
      },
      "regions": {
        "onprem-paris": {"gco2e_per_kwh": 52, "pue": 1.4},
        "FR":           {"gco2e_per_kwh": 30}
      },
      "pue": 1.2,
      "batch_size": 64,
      "region": "FR"
    }

``load`` raises ``EnergyConfigError`` listing every bad key and how to fix it. The file is checked when llmotel's
settings are resolved (``instrument()``, through the ``energy_config`` setting's parser and ``load_checked``),
not at the first call: a file that cannot be read or decoded is reported once and the shipped data is used; a file
with some bad entries is reported once and its valid entries are kept. ``from_env`` (what the estimator uses)
never raises and reuses that check (one read per version of the file).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmotel import config as llmotel_config
from llmotel.energy.reference import ModelSize, normalise_model

ENV_VAR = "LLMOTEL_ENERGY_CONFIG"  # the ``energy_config`` setting of ``llmotel.config.SETTINGS``

_log = logging.getLogger(__name__)
_TOP_KEYS = frozenset({"models", "regions", "pue", "batch_size", "region"})


class EnergyConfigError(ValueError):
    """The energy config file is unreadable or has invalid entries; the message names each key and the fix."""


@dataclass(frozen=True, slots=True)
class RegionOverride:
    gco2e_per_kwh: float | None = None
    pue: float | None = None


@dataclass(frozen=True, slots=True)
class EnergyOverrides:
    models: dict[tuple[str, ...], ModelSize] = field(default_factory=dict)
    regions: dict[str, RegionOverride] = field(default_factory=dict)
    pue: float | None = None
    batch_size: int | None = None
    region: str | None = None
    origin: str = ""
    errors: tuple[str, ...] = ()


EMPTY = EnergyOverrides()


def parse(data: object, origin: str = "<config>") -> EnergyOverrides:
    """Validate decoded config data. Never raises: invalid entries are skipped and described in ``errors``."""
    errors: list[str] = []
    if not isinstance(data, Mapping):
        return EnergyOverrides(
            origin=origin,
            errors=(
                f"{origin}: the top level must be an object with keys {sorted(_TOP_KEYS)}, got {type(data).__name__}",
            ),
        )
    for key in data:
        if key not in _TOP_KEYS:
            errors.append(f"{origin}: unknown key {key!r}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    models = _parse_models(data.get("models", {}), origin, errors)
    regions = _parse_regions(data.get("regions", {}), origin, errors)
    pue = _number(data.get("pue"), f"{origin}: pue", errors, low=1.0, high=3.0)
    batch = _number(data.get("batch_size"), f"{origin}: batch_size", errors, low=1, high=4096)
    region = data.get("region")
    if region is not None and not (isinstance(region, str) and region.strip()):
        errors.append(f'{origin}: region must be a non-empty string such as "FR" or "us-east-1"')
        region = None
    return EnergyOverrides(
        models=models,
        regions=regions,
        pue=pue,
        batch_size=int(batch) if batch is not None else None,
        region=region.strip() if isinstance(region, str) else None,
        origin=origin,
        errors=tuple(errors),
    )


def _parse_models(raw: object, origin: str, errors: list[str]) -> dict[tuple[str, ...], ModelSize]:
    out: dict[tuple[str, ...], ModelSize] = {}
    if not isinstance(raw, Mapping):
        errors.append(f'{origin}: models must be an object mapping a model name to {{"total_b": ..., ...}}')
        return out
    for name, spec in raw.items():
        where = f"{origin}: models.{name}"
        if not isinstance(spec, Mapping):
            errors.append(f'{where} must be an object such as {{"total_b": 13}} or {{"total_b": 120, "active_b": 12}}')
            continue
        unknown = set(spec) - {"total_b", "active_b", "source"}
        if unknown:
            errors.append(f"{where}: unknown key(s) {sorted(unknown)}; allowed: total_b, active_b, source")
        total = _bounds(spec.get("total_b"), f"{where}.total_b", errors, required=True)
        active = _bounds(spec.get("active_b"), f"{where}.active_b", errors, required=False)
        if total is None:
            continue
        active = active or total
        if active[1] > total[1]:
            errors.append(f"{where}: active_b {active} exceeds total_b {total}; active parameters are a subset")
            continue
        tokens = normalise_model(str(name))
        if not tokens:
            errors.append(f"{where}: the model name is empty")
            continue
        source = spec.get("source")
        label = f"override ({source})" if isinstance(source, str) and source else f"override ({origin})"
        out[tokens] = ModelSize(total[0], total[1], active[0], active[1], "model", label)
    return out


def _parse_regions(raw: object, origin: str, errors: list[str]) -> dict[str, RegionOverride]:
    out: dict[str, RegionOverride] = {}
    if not isinstance(raw, Mapping):
        errors.append(f'{origin}: regions must be an object mapping a region to {{"gco2e_per_kwh": ..., "pue": ...}}')
        return out
    for name, spec in raw.items():
        where = f"{origin}: regions.{name}"
        if not isinstance(spec, Mapping):
            errors.append(f'{where} must be an object such as {{"gco2e_per_kwh": 52, "pue": 1.4}}')
            continue
        unknown = set(spec) - {"gco2e_per_kwh", "pue"}
        if unknown:
            errors.append(f"{where}: unknown key(s) {sorted(unknown)}; allowed: gco2e_per_kwh, pue")
        grid = _number(spec.get("gco2e_per_kwh"), f"{where}.gco2e_per_kwh", errors, low=0.0, high=2000.0)
        pue = _number(spec.get("pue"), f"{where}.pue", errors, low=1.0, high=3.0)
        if grid is None and pue is None:
            errors.append(f"{where}: give gco2e_per_kwh (gCO2e per kWh, e.g. 52) and/or pue (e.g. 1.2)")
            continue
        out[str(name).strip().lower()] = RegionOverride(grid, pue)
    return out


def _number(raw: object, where: str, errors: list[str], *, low: float, high: float) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not low <= raw <= high:
        errors.append(f"{where} must be a number in [{low:g}, {high:g}], got {raw!r}")
        return None
    return float(raw)


def _bounds(raw: object, where: str, errors: list[str], *, required: bool) -> tuple[float, float] | None:
    """A size in billions: one number, or [min, max]."""
    if raw is None:
        if required:
            errors.append(f"{where} is required: parameters in billions, e.g. 13 or [50, 200] for a range")
        return None
    if isinstance(raw, (list, tuple)) and len(raw) == 2:
        low, high = raw
    else:
        low = high = raw
    for value in (low, high):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100_000:
            errors.append(f"{where} must be billions of parameters (a number > 0, or [min, max]), got {raw!r}")
            return None
    if low > high:
        errors.append(f"{where}: min {low} is above max {high}; write [min, max]")
        return None
    return float(low), float(high)


def _decode(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped,unused-ignore]
        except ImportError as exc:
            raise EnergyConfigError(
                f"{path}: YAML needs PyYAML (pip install pyyaml), or write the same content as JSON"
            ) from exc
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise EnergyConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EnergyConfigError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def load(path: str | os.PathLike[str]) -> EnergyOverrides:
    """Read and validate a config file. Raises EnergyConfigError naming every bad key and the fix."""
    file = Path(path)
    try:
        data = _decode(file)
    except OSError as exc:
        raise EnergyConfigError(f"{file}: cannot read the energy config ({exc.strerror}); check {ENV_VAR}") from exc
    overrides = parse(data, str(file))
    if overrides.errors:
        raise EnergyConfigError("invalid energy config:\n  " + "\n  ".join(overrides.errors))
    return overrides


# (path, mtime_ns, size) -> what load_checked found there: each version of the file is read and reported once.
_checked: dict[tuple[str, int, int], EnergyOverrides] = {}
_CHECKED_MAX = 16


def load_checked(path: str) -> EnergyOverrides:
    """The overrides in ``path``, read once per version of the file. Raises EnergyConfigError when it cannot be
    read or decoded; entries with errors are skipped and reported once at WARNING (the valid ones are kept)."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise EnergyConfigError(f"{path}: cannot read the energy config ({exc.strerror}); check {ENV_VAR}") from exc
    key = (path, stat.st_mtime_ns, stat.st_size)
    found = _checked.get(key)
    if found is not None:
        return found
    try:
        data = _decode(Path(path))
    except EnergyConfigError:
        raise
    except OSError as exc:
        raise EnergyConfigError(f"{path}: cannot read the energy config ({exc.strerror}); check {ENV_VAR}") from exc
    except Exception as exc:  # a decoder's own error: still a bad file, never a crash
        raise EnergyConfigError(f"{path}: {exc}") from exc
    overrides = parse(data, path)
    if overrides.errors:
        _log.warning("llmotel energy config %s: skipped invalid entries:\n  %s", path, "\n  ".join(overrides.errors))
    if len(_checked) >= _CHECKED_MAX:
        _checked.clear()
    _checked[key] = overrides
    return overrides


def from_env(env: Mapping[str, str] | None = None) -> EnergyOverrides:
    """Overrides from the file named by LLMOTEL_ENERGY_CONFIG (EMPTY if unset or unusable). Never raises.

    The file was checked when settings were resolved (``load_checked``, reported once there); a file that cannot
    be used gives EMPTY (the shipped data), a file with some bad entries gives its valid ones.
    """
    path: str = llmotel_config.env_value("energy_config", env)  # "" when the file cannot be used (reported)
    if not path:
        return EMPTY
    try:
        return load_checked(path)
    except Exception as exc:  # the file changed after it was checked; a config file must never break the app
        _log.warning("llmotel energy config ignored: %s", exc)
        return EMPTY


def main(argv: list[str] | None = None) -> int:
    """``python -m llmotel.energy.config FILE``: validate a config file; exit 1 with the errors if it is bad."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m llmotel.energy.config FILE", file=sys.stderr)
        return 2
    try:
        overrides = load(args[0])
    except EnergyConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"ok: {len(overrides.models)} model(s), {len(overrides.regions)} region(s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
