"""The size cap of captured content: GenAI-schema messages -> JSON within ``content_max_chars``, still valid JSON.

The convention allows truncating message contents "preserving JSON structure": the longest strings are cut first,
all to one prefix length (roles, types, ids, names, finish reasons never), and only when even empty strings do
not fit are the oldest messages left out. Never raises.
"""

from __future__ import annotations

import json
import logging
from typing import Any

_log = logging.getLogger(__name__)

# Fields of a message or part that the cap never shortens: discriminators and identifiers (short by nature), so a
# capped value still validates and still says which tool, which call, why it finished. Nested values (tool
# arguments, responses, unknown parts' fields) are cut like any text.
_UNCUT_KEYS = frozenset({"type", "role", "id", "name", "finish_reason", "modality", "mime_type", "file_id"})

def _dumps(value: object, ascii_only: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False, separators=(",", ":"), default=str)


def _kept(key: str, value: Any, structural: bool) -> bool:
    return structural and key in _UNCUT_KEYS and isinstance(value, str)


def _cut(value: Any, limit: int, structural: bool = True) -> Any:
    """Every string longer than ``limit`` cut to it, except the uncut fields of messages and parts.
    ``structural``: ``value`` is a message, a part, or a list of them (a message's ``parts``)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit]
    if isinstance(value, dict):
        return {
            k: v if _kept(k, v, structural) else _cut(v, limit, structural and k == "parts")
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_cut(v, limit, structural) for v in value]
    return value


def _cuttable(value: Any, out: list[int], structural: bool = True) -> list[int]:
    """The lengths of the strings ``_cut`` may shorten."""
    if isinstance(value, str):
        out.append(len(value))
    elif isinstance(value, dict):
        for k, v in value.items():
            if not _kept(k, v, structural):
                _cuttable(v, out, structural and k == "parts")
    elif isinstance(value, list):
        for v in value:
            _cuttable(v, out, structural)
    return out


def _widest_fit(lengths: list[int], room: int) -> int:
    """The largest L with sum(min(n, L) for n in lengths) <= room: an upper bound of the cut length, since
    escaping only ever makes the encoded strings longer than they are."""
    lengths = sorted(lengths)
    used = 0
    for i, n in enumerate(lengths):
        rest = len(lengths) - i  # strings still at least n long
        if used + n * rest > room:
            return (room - used) // rest
        used += n
    return lengths[-1] if lengths else 0


def _capped(items: list[Any], limit: int, ascii_only: bool) -> str:
    text = _dumps(items, ascii_only)
    if len(text) <= limit:
        return text
    # Oldest items out only while even empty strings do not fit; then the longest cut length L that fits.
    sizes = [len(_dumps(_cut(item, 0), ascii_only)) for item in items]
    total = sum(sizes) + len(sizes) + 1  # brackets and commas
    start = 0
    while start < len(items) and total > limit:
        total -= sizes[start] + 1
        start += 1
    kept = items[start:]
    if not kept:
        return ""
    base = len(_dumps(_cut(kept, 0), ascii_only))
    lo, hi = 0, _widest_fit(_cuttable(kept, []), limit - base)
    if len(_dumps(_cut(kept, hi), ascii_only)) <= limit:
        lo = hi  # the usual case (little to escape): one more encoding, no search
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(_dumps(_cut(kept, mid), ascii_only)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return _dumps(_cut(kept, lo), ascii_only)


def to_json(value: list[Any], limit: int) -> str:
    """``value`` as compact JSON of at most ``limit`` characters (the instrumentor's ``content_max_chars``), valid
    JSON even when capped; "" for an empty list or a value that cannot be encoded. Never raises."""
    if not value:
        return ""
    try:
        text = _capped(value, limit, False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: exporters cannot encode them; \u-escape instead
            text = _capped(value, limit, True)
        return text
    except Exception:
        _log.debug("llmotel: content not encodable", exc_info=True)
        return ""
