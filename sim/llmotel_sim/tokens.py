"""Token accounting without a tokenizer: 4 characters make one token, prompts hash into prefix blocks.

The simulator never needs real token ids: it needs counts that are stable for a given text and prefix hashes
that are equal exactly when two prompts share a prefix, which is what a prefix cache keys on.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

CHARS_PER_TOKEN = 4

_WORDS = (
    *("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "servers", "batch"),
    *("tokens", "and", "caches", "warm", "up", "again", "latency", "hides", "in", "queues", "prefill"),
    *("decode", "first", "token", "tail", "p95", "region", "revision", "tenant", "quota", "stream"),
)


def count_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (unlike ``hash(str)``), so runs are reproducible."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def output_token(seed: int, index: int) -> str:
    """The index-th token of a response: a word with its leading space (one stream chunk each)."""
    return " " + _WORDS[(seed + index * 7) % len(_WORDS)]


def output_text(seed: int, n: int) -> str:
    return "".join(output_token(seed, i) for i in range(n)).lstrip()


@dataclass(slots=True)
class Prompt:
    """A request's input as the cache sees it: one text plus the token offsets of explicit cache breakpoints."""

    text: str = ""
    # (token offset where the cacheable prefix ends, ttl "5m" | "1h") for Anthropic cache_control blocks.
    breakpoints: list[tuple[int, str]] = field(default_factory=list)
    extra_tokens: int = 0  # uncacheable padding declared with x-sim-input-tokens

    @property
    def tokens(self) -> int:
        return count_tokens(self.text) + self.extra_tokens

    def block_hashes(self, block_tokens: int) -> list[int]:
        """Chained hashes of every full block: equal lists <=> equal prefixes (up to crc collisions)."""
        step = block_tokens * CHARS_PER_TOKEN
        out: list[int] = []
        h = 0
        for start in range(0, len(self.text) - step + 1, step):
            h = zlib.crc32(self.text[start : start + step].encode("utf-8", "surrogatepass"), h)
            out.append(h)
        return out

    def prefix_hash(self, tokens: int) -> int:
        return stable_hash(self.text[: tokens * CHARS_PER_TOKEN])


class _PromptBuilder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.chars = 0
        self.breakpoints: list[tuple[int, str]] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.chars += len(text)

    def add_value(self, value: Any) -> None:
        """Append any JSON-ish content; strings verbatim (so shared prefixes stay shared)."""
        if isinstance(value, str):
            self.add(value)
        elif value is not None:
            self.add(json.dumps(value, sort_keys=True, separators=(",", ":")))

    def breakpoint(self, cache_control: Any) -> None:
        if isinstance(cache_control, dict):
            ttl = "1h" if cache_control.get("ttl") == "1h" else "5m"
            self.breakpoints.append(((self.chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN, ttl))

    def build(self, extra_tokens: int = 0) -> Prompt:
        return Prompt("".join(self.parts), self.breakpoints, extra_tokens)


def openai_chat_prompt(body: dict[str, Any]) -> Prompt:
    """Tools first, then messages in order: the order OpenAI's prefix caching sees them."""
    b = _PromptBuilder()
    if body.get("tools"):
        b.add_value(body["tools"])
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        b.add(f"<{msg.get('role', '')}>")
        content = msg.get("content")
        if isinstance(content, list):
            for part in content:
                b.add_value(part.get("text") if isinstance(part, dict) and "text" in part else part)
        else:
            b.add_value(content)
        if msg.get("tool_calls"):
            b.add_value(msg["tool_calls"])
    return b.build()


def text_prompt(value: Any) -> Prompt:
    """Legacy completions ``prompt``, responses ``input`` and embeddings ``input``: strings or lists of them."""
    b = _PromptBuilder()
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                content = item.get("content")
                if isinstance(content, list):
                    for part in content:
                        b.add_value(part.get("text") if isinstance(part, dict) else part)
                else:
                    b.add_value(content if content is not None else item)
            else:
                b.add_value(item)
    else:
        b.add_value(value)
    return b.build()


def _anthropic_blocks(b: _PromptBuilder, content: Any) -> None:
    if isinstance(content, str):
        b.add(content)
        return
    if not isinstance(content, list):
        return
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            b.add_value(block.get("text", ""))
        else:
            b.add_value({k: v for k, v in block.items() if k != "cache_control"})
        b.breakpoint(block.get("cache_control"))


def anthropic_prompt(body: dict[str, Any]) -> Prompt:
    """Anthropic's cache order: tools, then system, then messages; cache_control marks breakpoints."""
    b = _PromptBuilder()
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            b.add_value({k: v for k, v in tool.items() if k != "cache_control"})
            b.breakpoint(tool.get("cache_control"))
    _anthropic_blocks(b, body.get("system"))
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            b.add(f"<{msg.get('role', '')}>")
            _anthropic_blocks(b, msg.get("content"))
    return b.build()
