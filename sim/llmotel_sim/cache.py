"""A replica's prefix cache: LRU over prefix keys, sized in blocks, so a growing prompt evicts its own past."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from llmotel_sim.tokens import Prompt


@dataclass(slots=True)
class CacheResult:
    cached_tokens: int = 0  # served from cache (OpenAI cached_tokens / Anthropic cache_read_input_tokens)
    write_5m_tokens: int = 0  # Anthropic cache_creation split by ttl
    write_1h_tokens: int = 0

    @property
    def write_tokens(self) -> int:
        return self.write_5m_tokens + self.write_1h_tokens


class PrefixCache:
    """LRU of prefix keys. Each key costs the blocks it covers; inserting past capacity evicts the oldest."""

    def __init__(self, capacity_blocks: int, block_tokens: int) -> None:
        self.capacity = max(1, capacity_blocks)
        self.block_tokens = max(1, block_tokens)
        self._entries: OrderedDict[int, int] = OrderedDict()
        self._used = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._used = 0

    def _touch(self, key: int) -> bool:
        if key in self._entries:
            self._entries.move_to_end(key)
            return True
        return False

    def _put(self, key: int, cost: int) -> None:
        if self._touch(key):
            return
        self._entries[key] = cost
        self._used += cost
        while self._used > self.capacity and self._entries:
            _, old = self._entries.popitem(last=False)
            self._used -= old

    def match_blocks(self, hashes: list[int]) -> int:
        """Number of leading blocks present (read-only, for cache-aware routing)."""
        n = 0
        for h in hashes:
            if h not in self._entries:
                break
            n += 1
        return n

    def automatic(self, hashes: list[int], prompt_tokens: int, min_tokens: int) -> CacheResult:
        """OpenAI-style automatic prefix caching: longest cached run of whole blocks, then cache every block."""
        n = 0
        for h in hashes:
            if not self._touch(h):
                break
            n += 1
        for h in hashes[n:]:
            self._put(h, 1)
        cached = n * self.block_tokens if prompt_tokens >= min_tokens else 0
        return CacheResult(cached_tokens=min(cached, max(0, prompt_tokens - 1)))

    def explicit(self, prompt: Prompt, min_tokens: int) -> CacheResult:
        """Anthropic cache_control: read the longest cached breakpoint, write the rest up to the last one."""
        bps = [(off, ttl) for off, ttl in prompt.breakpoints if off >= min_tokens]
        if not bps:
            return CacheResult()
        keys = [prompt.prefix_hash(off) for off, _ in bps]
        read_i = -1
        for i in range(len(bps) - 1, -1, -1):
            if keys[i] in self._entries:
                read_i = i
                break
        res = CacheResult(cached_tokens=bps[read_i][0] if read_i >= 0 else 0)
        prev = res.cached_tokens
        for i in range(read_i + 1, len(bps)):
            off, ttl = bps[i]
            if ttl == "1h":
                res.write_1h_tokens += off - prev
            else:
                res.write_5m_tokens += off - prev
            prev = off
        for i, (off, _) in enumerate(bps):
            self._put(keys[i], -(-off // self.block_tokens))
        return res

    def explicit_match(self, prompt: Prompt) -> int:
        return max((off for off, _ in prompt.breakpoints if prompt.prefix_hash(off) in self._entries), default=0)
