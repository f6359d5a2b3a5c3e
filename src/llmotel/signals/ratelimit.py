"""Rate-limit response headers -> span attributes. Table-driven (one row per header).

OpenAI-style ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (reset as "6m0s", "1.5s", "20ms")
and Anthropic ``anthropic-ratelimit-*`` (reset as RFC 3339). Never raises; unparsable values are skipped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from llmotel import _semconv as sc

Kind = Literal["int", "reset"]

HEADERS: tuple[tuple[str, str, Kind], ...] = (
    ("x-ratelimit-limit-requests", sc.LLMOTEL_RATELIMIT_REQUESTS_LIMIT, "int"),
    ("x-ratelimit-remaining-requests", sc.LLMOTEL_RATELIMIT_REQUESTS_REMAINING, "int"),
    ("x-ratelimit-reset-requests", sc.LLMOTEL_RATELIMIT_REQUESTS_RESET, "reset"),
    ("x-ratelimit-limit-tokens", sc.LLMOTEL_RATELIMIT_TOKENS_LIMIT, "int"),
    ("x-ratelimit-remaining-tokens", sc.LLMOTEL_RATELIMIT_TOKENS_REMAINING, "int"),
    ("x-ratelimit-reset-tokens", sc.LLMOTEL_RATELIMIT_TOKENS_RESET, "reset"),
    ("anthropic-ratelimit-requests-limit", sc.LLMOTEL_RATELIMIT_REQUESTS_LIMIT, "int"),
    ("anthropic-ratelimit-requests-remaining", sc.LLMOTEL_RATELIMIT_REQUESTS_REMAINING, "int"),
    ("anthropic-ratelimit-requests-reset", sc.LLMOTEL_RATELIMIT_REQUESTS_RESET, "reset"),
    ("anthropic-ratelimit-tokens-limit", sc.LLMOTEL_RATELIMIT_TOKENS_LIMIT, "int"),
    ("anthropic-ratelimit-tokens-remaining", sc.LLMOTEL_RATELIMIT_TOKENS_REMAINING, "int"),
    ("anthropic-ratelimit-tokens-reset", sc.LLMOTEL_RATELIMIT_TOKENS_RESET, "reset"),
    ("anthropic-ratelimit-input-tokens-remaining", sc.LLMOTEL_RATELIMIT_INPUT_TOKENS_REMAINING, "int"),
    ("anthropic-ratelimit-output-tokens-remaining", sc.LLMOTEL_RATELIMIT_OUTPUT_TOKENS_REMAINING, "int"),
)
HEADER_NAMES: frozenset[str] = frozenset(h for h, _, _ in HEADERS)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3}


def _decimal(text: str) -> bool:
    """Whether ``text`` is ``\\d+(\\.\\d+)?`` (what the duration pattern and ``float`` both read the same way)."""
    head, dot, tail = text.partition(".")
    return head.isdecimal() and (not dot or tail.isdecimal())


# RFC 3339 reset values already read -> their POSIX time (None: not a time with a zone). A reset time stays the
# same for every call until the window resets, so each distinct value is parsed once. Bounded: emptied when full.
_RESET_AT: dict[str, float | None] = {}
_RESET_AT_MAX = 64
# Reset values that are durations ("6m0s", "20ms", "12"), as received -> their seconds: unlike a time, a duration
# reads the same on every call. Bounded: emptied when full.
_DURATION_S: dict[str, float] = {}
_DURATION_S_MAX = 256


def parse_reset(value: str, now_s: float | None = None) -> float | None:
    """Seconds until reset from "6m0s" / "1.5s" / "20ms" / "12" / RFC 3339. None when unparsable."""
    v = value.strip()
    if not v:
        return None
    # The common shapes first, without raising (each gives what the general path below gives for it).
    if _decimal(v):
        return float(v)
    if v[-1] == "s":
        if v[-2:] == "ms" and _decimal(v[:-2]):
            return float(v[:-2]) * _UNIT_S["ms"]
        if _decimal(v[:-1]):
            return float(v[:-1])
    elif v in _RESET_AT:
        return _until(_RESET_AT[v], now_s)
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    parts = _DURATION.findall(v)
    if parts and "".join(n + u for n, u in parts) == v:
        return sum(float(n) * _UNIT_S[u] for n, u in parts)
    try:
        when = datetime.fromisoformat(v.replace("Z", "+00:00"))
        at = when.timestamp() if when.tzinfo is not None else None
    except ValueError:
        return None
    if len(_RESET_AT) >= _RESET_AT_MAX:
        _RESET_AT.clear()
    _RESET_AT[v] = at
    return _until(at, now_s)


def _until(at: float | None, now_s: float | None) -> float | None:
    if at is None:
        return None
    return max(0.0, at - (time.time() if now_s is None else now_s))


# The rows of ``HEADERS`` (in its order) whose names are among a response's header names, per distinct tuple of
# those names: a provider sends the same set on every call, so the 14 rows are scanned once per set, not per call.
# Bounded: emptied when full.
_ROWS: dict[tuple[str, ...], tuple[tuple[str, str, Kind], ...]] = {}
_ROWS_MAX = 64


def _rows(names: tuple[str, ...]) -> tuple[tuple[str, str, Kind], ...]:
    rows = tuple(row for row in HEADERS if row[0] in names)
    if len(_ROWS) >= _ROWS_MAX:
        _ROWS.clear()
    _ROWS[names] = rows
    return rows


def attributes(headers: Mapping[str, str]) -> dict[str, int | float]:
    """Rate-limit attributes present in ``headers`` (lower-case names). Never raises."""
    out: dict[str, int | float] = {}
    if not headers:
        return out
    names = tuple(headers)
    rows = _ROWS.get(names)
    if rows is None:
        rows = _rows(names)
    for name, attr, kind in rows:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            if kind == "int":
                # int(float(raw)) is exact for decimal strings up to 15 digits: read those directly.
                out[attr] = int(raw) if len(raw) <= 15 and raw.isdecimal() else int(float(raw))
            else:
                reset = _DURATION_S.get(raw)  # a duration already read (the same text always reads the same)
                if reset is None:
                    reset = parse_reset(raw)
                    if reset is not None and raw.strip() not in _RESET_AT:  # a duration: the text alone decides
                        if len(_DURATION_S) >= _DURATION_S_MAX:
                            _DURATION_S.clear()
                        _DURATION_S[raw] = reset
                if reset is not None:
                    out[attr] = reset
        except (ValueError, OverflowError):
            continue
    return out
