"""How much of a prompt the server's prefix cache likely holds, where the response will not say.

Inference servers keep the attention state of prompts they served and reuse the longest cached prefix of a new one:
llama.cpp (each slot's last prompt and its host-memory prompt cache, ``--cache-ram``), vLLM's automatic prefix
caching and SGLang's radix cache (LRU over blocks of tokens), the hosted APIs' prompt caching. A call's usage reports
the hit (``prompt_tokens_details.cached_tokens``; llama.cpp's ``timings.cache_n``), but a stream without
``stream_options.include_usage`` reports no usage at all, and a hit prefills in a fraction of a miss's time: read as
a miss, a 1,500-token cached system prompt made the phase model book a hit's fast prefill as a fast call and the next
miss's second of prefill as queue (bench/real, prefix cache, headers on arrival, no usage: queue error median 38 %,
p90 92 % of TTFT; 2026-12-07).

The book keeps, per key, the message-boundary prefixes of the prompts this process sent recently without usage
(hashes only: ``LLMRequest.prompt_prefixes``, made by the provider modules; never the text, never exported) and
answers, for a new prompt, the characters of its longest prefix among them: the phase model takes those as cached
(an estimate, marked as such on the span). It cannot see a prefix another process sent (a hit it reads as a miss),
nor a server's eviction (a miss it reads as a hit: that prefill then runs long and the excess is booked as queue).

Bounded: ``_PER_KEY`` prefixes per key (the least recently used dropped) and ``_MAX_KEYS`` keys (the one added
first dropped). Thread-safe; never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from llmotel import forksafe

_log = logging.getLogger(__name__)

# A few hundred recent prefixes: every system prompt, tool set and conversation an app sends to one server in
# rotation (a conversation adds one per turn). Per entry ~100 bytes: at most ~1.6 MB for the whole book.
_PER_KEY = 256
_MAX_KEYS = 64


class PrefixBook:
    """Per key, the prompt prefixes sent recently (see the module docstring)."""

    def __init__(self, per_key: int = _PER_KEY, max_keys: int = _MAX_KEYS) -> None:
        # Plain dicts, in insertion order: a prefix sent again is moved to the end, the first one is the least
        # recently used.
        self._books: dict[Hashable, dict[int, int]] = {}
        self._per_key = per_key
        self._max_keys = max_keys
        self._lock = forksafe.lock(self)

    def cached_chars(self, key: Hashable, prefixes: tuple[tuple[int, int], ...]) -> int:
        """The characters of the longest of ``prefixes`` ((hash, characters so far), in prompt order) sent before on
        ``key``, 0 if none; then notes all of them as sent now.

        Lock-free past a key's first call, as residuals.py: each dict operation is atomic, and two threads noting
        the same key at once can at worst drop or keep one prefix too many (an eviction that meets a concurrent
        insert fails into the except: that call reads as a miss)."""
        if not prefixes:
            return 0
        try:
            book = self._books.get(key)
            if book is None:
                with self._lock:
                    books = self._books
                    book = books.setdefault(key, {})
                    if len(books) > self._max_keys:  # the key added first goes
                        del books[next(iter(books))]
            found = 0
            for h, chars in reversed(prefixes):
                if h in book:
                    found = chars
                    break
            pop = book.pop
            for h, chars in prefixes:
                pop(h, None)
                book[h] = chars
            if len(book) > self._per_key:
                for _ in range(len(book) - self._per_key):
                    del book[next(iter(book))]
            return found
        except Exception:
            _log.debug("llmotel: prefix book not consulted", exc_info=True)
            return 0
