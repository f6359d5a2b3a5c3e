"""Prompt-prefix fingerprint: a keyed hash of the system prompt + tool definitions, never the text.

HMAC-SHA256 keyed with ``Settings.fingerprint_key`` (random per process, or LLMOTEL_FINGERPRINT_KEY to compare
across processes),
truncated to 16 hex chars: equal prefixes give equal fingerprints, so prefix churn that defeats the
provider's prompt cache shows up as many distinct values; the text cannot be recovered or dictionary-
guessed without the key. The token length is approximate (UTF-8 bytes / 4; no tokenizer is loaded).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

# (key, prefix bytes) -> fingerprint: the same system prompt repeats on most calls, so the HMAC runs once per
# distinct prefix. Bounded to ~1 MB: at most 64 prefixes of up to 16 KiB (longer ones are hashed every time),
# emptied when full (a flood of distinct prompts only costs the HMACs it would anyway).
_CACHE: dict[tuple[bytes, bytes], str] = {}
_CACHE_MAX = 64
_CACHE_MAX_BYTES = 16384


def prefix(system_parts: Iterable[str], tools: object | None, key: bytes) -> tuple[str, int]:
    """(fingerprint, approximate tokens) of the cacheable prefix, keyed with ``key`` (the instrumentor's
    ``fingerprint_key``); ("", 0) when there is none. Never raises."""
    try:
        data = "\x1e".join(system_parts).encode()
        if tools:
            data += b"\x1f" + json.dumps(tools, sort_keys=True, separators=(",", ":"), default=str).encode()
        if not data:
            return "", 0
        cache_key = (key, data)
        digest = _CACHE.get(cache_key)
        if digest is None:
            digest = hmac.digest(key, data, hashlib.sha256).hex()[:16]
            if len(data) <= _CACHE_MAX_BYTES:
                if len(_CACHE) >= _CACHE_MAX:
                    _CACHE.clear()
                _CACHE[cache_key] = digest
        return digest, len(data) // 4
    except Exception:
        return "", 0
