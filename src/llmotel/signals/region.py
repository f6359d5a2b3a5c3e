"""Where a call was served, and which model revision served it.

Region sources, in order of trust: the response body (provider-specific, e.g. Anthropic
``usage.inference_geo``, set by the provider module), a response header (``x-ms-region``), the edge
location suffix of ``cf-ray`` (``8f1a2b3c4d5e6f70-FRA``), the data-residency prefix of the base URL
(``eu.api.openai.com``), then configuration. ``RevisionTracker`` remembers the last revision seen per
(request model, region) in bounded memory and says when it changed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from llmotel import _semconv as sc
from llmotel import forksafe

REGION_HEADERS: tuple[str, ...] = ("x-ms-region", "x-llmotel-region", "x-region")
HEADER_NAMES: frozenset[str] = frozenset((*REGION_HEADERS, "cf-ray"))

# Data-residency host prefixes the providers document (us.api.openai.com, eu.api.openai.com, ...).
_RESIDENCY_PREFIXES = frozenset({"us", "eu", "jp", "au", "ca", "in", "kr", "sg", "uk", "ch", "ae"})


def from_host(host: str) -> str:
    """Data-residency region of a provider host ("eu.api.openai.com" -> "eu"), "" for none."""
    first, _, rest = host.partition(".")
    return first if rest and first in _RESIDENCY_PREFIXES else ""


def from_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(region, source) from response headers (lower-case names); ("", "") if they say nothing."""
    for name in REGION_HEADERS:
        value = headers.get(name)
        if value:
            return value.strip(), sc.LLMOTEL_SERVER_REGION_SOURCE_HEADER
    ray = headers.get("cf-ray")
    if ray:
        _, sep, colo = ray.rpartition("-")
        if sep and colo.isalpha() and 2 <= len(colo) <= 4:
            return colo.upper(), sc.LLMOTEL_SERVER_REGION_SOURCE_CF_RAY
    return "", ""


class RevisionTracker:
    """Last resolved revision per (request model, region); at most ``capacity`` keys (LRU)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._last: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = forksafe.lock(self)

    def observe(self, request_model: str, region: str, revision: str) -> str:
        """Record ``revision``; return the previous revision if it differs, else ""."""
        key = (request_model, region)
        with self._lock:
            last = self._last
            previous = last.get(key)
            if previous is None:  # a new key goes in last
                last[key] = revision
                if len(last) > self._capacity:
                    last.popitem(last=False)
            else:
                if previous != revision:
                    last[key] = revision
                last.move_to_end(key)
        return previous if previous is not None and previous != revision else ""

    def clear(self) -> None:
        with self._lock:
            self._last.clear()


REVISIONS = RevisionTracker()
