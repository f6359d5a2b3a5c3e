"""Shipped reference data for the estimator: model sizes and grid carbon intensity (sources in each file's header).

The CSV files under ``llmotel/energy/data/`` are parsed once, on first use, into dicts; lookups after that are dict
hits or a bounded ``lru_cache``. Nothing here reads a file per call.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

SizeKind = Literal["model", "family", "proprietary", "unknown"]

WORLD = "world"


@dataclass(frozen=True, slots=True)
class ModelSize:
    """Parameter counts in billions; min == max when the size is published."""

    total_min: float
    total_max: float
    active_min: float
    active_max: float
    kind: SizeKind
    source: str

    def valid(self) -> bool:
        return 0 < self.total_min <= self.total_max and 0 < self.active_min <= self.active_max


@dataclass(frozen=True, slots=True)
class GridIntensity:
    gco2e_per_kwh: float
    region: str  # the label we report: ISO alpha-2 code, cloud region id, "EU" or "world"
    source: str
    provider: str = ""  # aws | gcp | azure for a cloud region, "" for a country


_SEPARATORS = re.compile(r"[\s_:/|@]+")
_LETTER_DIGIT = re.compile(r"(?<=[a-z])(?=\d)")
_WORD_DOT = re.compile(r"(?<=[a-z])\.|\.(?=[a-z])")  # "us.anthropic.claude" splits; "3.1" stays
_SIZE_TOKEN = re.compile(r"^(\d+(?:\.\d+)?)b$")


def normalise_model(name: str) -> tuple[str, ...]:
    """Tokens of a model name: lower case, the last path segment, letters split from a following digit.

    "meta-llama/Llama-3.1-8B-Instruct" -> ("llama", "3.1", "8b", "instruct"); "Qwen3-30B-A3B" -> ("qwen", "3", "30b",
    "a", "3b"); "us.anthropic.claude-3-opus" -> ("us", "anthropic", "claude", "3", "opus"). Keys in model_sizes.csv
    go through the same function, so either spelling matches.
    """
    text = name.strip().lower()
    text = text.rsplit("/", 1)[-1]
    text = _SEPARATORS.sub("-", text)
    text = _WORD_DOT.sub("-", text)
    text = _LETTER_DIGIT.sub("-", text)
    return tuple(t for t in text.split("-") if t)


def _read_rows(filename: str) -> list[list[str]]:
    text = resources.files("llmotel.energy.data").joinpath(filename).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [row for row in csv.reader(lines)]


class ModelTable:
    """Model and family sizes keyed by token tuples; lookups are the longest contiguous token match."""

    def __init__(self, rows: dict[tuple[str, ...], ModelSize], widest: ModelSize) -> None:
        self.rows = rows
        self.widest = widest
        self.max_key_len = max((len(k) for k in rows), default=1)

    @classmethod
    def shipped(cls) -> ModelTable:
        rows: dict[tuple[str, ...], ModelSize] = {}
        widest: ModelSize | None = None
        for key, kind, tmin, tmax, amin, amax, source in _read_rows("model_sizes.csv"):
            size = ModelSize(float(tmin), float(tmax), float(amin), float(amax), _kind(kind), source)
            if key == "_widest":
                widest = size
            else:
                rows[normalise_model(key)] = size
        if widest is None:  # pragma: no cover - the shipped file has it; a test checks
            raise ValueError("model_sizes.csv lacks the _widest row")
        return cls(rows, widest)

    def find(self, tokens: tuple[str, ...]) -> ModelSize | None:
        """The row whose key is the longest contiguous run of ``tokens``; None if no key matches."""
        n = len(tokens)
        for length in range(min(self.max_key_len, n), 0, -1):
            for start in range(n - length + 1):
                hit = self.rows.get(tokens[start : start + length])
                if hit is not None:
                    return hit
        return None


def _kind(raw: str) -> SizeKind:
    if raw in ("model", "family", "proprietary", "unknown"):
        return raw  # type: ignore[return-value]
    raise ValueError(f"model_sizes.csv: unknown kind {raw!r}")


def size_from_name(tokens: tuple[str, ...]) -> tuple[float, float] | None:
    """(total, active) in billions read from a name such as "foo-13b-chat" or "qwen3-30b-a3b"; None if absent.

    A bare "<N>b" token is taken as a dense model (active == total); "a" followed by "<N>b" is the active count.
    Names with an expert count ("8x7b") are ambiguous about the total and yield None.
    """
    total: float | None = None
    active: float | None = None
    for i, token in enumerate(tokens):
        match = _SIZE_TOKEN.match(token)
        if match is None:
            continue
        previous = tokens[i - 1] if i else ""
        if previous.endswith("x") and previous[:-1].isdigit():
            return None
        value = float(match.group(1))
        if value <= 0:
            continue
        if previous == "a":
            active = value
        elif total is None:
            total = value
    if total is None:
        return None
    if active is None or active > total:
        active = total
    return total, active


class GridTable:
    """Yearly grid intensity by cloud region id, ISO alpha-2 code or country name (all lower-cased keys)."""

    def __init__(self, by_key: dict[str, GridIntensity], world: GridIntensity) -> None:
        self.by_key = by_key
        self.world = world

    @classmethod
    def shipped(cls) -> GridTable:
        by_key: dict[str, GridIntensity] = {}
        world: GridIntensity | None = None
        # Cloud regions first so that a country name ("france") means the country, not Azure's region of that name.
        for region, provider, _location, value, source in _read_rows("grid_cloud_regions.csv"):
            by_key[region.lower()] = GridIntensity(
                float(value), region, f"Cloud Carbon Footprint ({provider}; {source}) (Apache-2.0)", provider
            )
        for iso2, _iso3, name, value, year in _read_rows("grid_countries.csv"):
            label = WORLD if iso2 == "WORLD" else iso2
            entry = GridIntensity(float(value), label, f"Our World in Data / Ember {year} (CC BY 4.0)")
            if iso2 == "WORLD":
                world = entry
            by_key[iso2.lower()] = entry
            by_key[name.lower()] = entry
        if world is None:  # pragma: no cover - the shipped file has it; a test checks
            raise ValueError("grid_countries.csv lacks the WORLD row")
        # Names the SDK's region detection produces that are not ISO codes (signals/region.py: "uk", "global").
        for alias, target in (("uk", "gb"), ("global", "world")):
            by_key[alias] = by_key[target]
        return cls(by_key, world)

    def find(self, region: str) -> GridIntensity | None:
        """The entry for ``region`` (case-insensitive; "East US" finds "eastus"); None if unknown."""
        key = region.strip().lower()
        if not key:
            return None
        hit = self.by_key.get(key)
        if hit is None:
            hit = self.by_key.get(key.replace(" ", "").replace("-", ""))
        return hit


@lru_cache(maxsize=1)
def model_table() -> ModelTable:
    return ModelTable.shipped()


@lru_cache(maxsize=1)
def grid_table() -> GridTable:
    return GridTable.shipped()
