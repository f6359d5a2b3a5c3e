"""Prompt-prefix fingerprint: a keyed hash of the system prompt + tool definitions, never the text.

HMAC-SHA256 with a per-process random key (or LLMOTEL_FINGERPRINT_KEY to compare across processes),
truncated to 16 hex chars: equal prefixes give equal fingerprints, so prefix churn that defeats the
provider's prompt cache shows up as many distinct values; the text cannot be recovered or dictionary-
guessed without the key. The token length is approximate (UTF-8 bytes / 4; no tokenizer is loaded).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

from llmotel import config


def prefix(system_parts: Iterable[str], tools: object | None) -> tuple[str, int]:
    """(fingerprint, approximate tokens) of the cacheable prefix; ("", 0) when there is none. Never raises."""
    try:
        data = "\x1e".join(system_parts).encode()
        if tools:
            data += b"\x1f" + json.dumps(tools, sort_keys=True, separators=(",", ":"), default=str).encode()
        if not data:
            return "", 0
        digest = hmac.new(config.get().fingerprint_key, data, hashlib.sha256).hexdigest()[:16]
        return digest, len(data) // 4
    except Exception:
        return "", 0
