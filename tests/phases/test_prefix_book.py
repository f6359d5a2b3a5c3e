"""The prefix book: which part of a prompt sent without usage the server likely has cached (phases/prefix_book.py)."""

from __future__ import annotations

from llmotel.phases.prefix_book import PrefixBook


def _chain(*sizes: int, start: int = 0) -> tuple[tuple[int, int], ...]:
    """Prefixes of messages of these sizes; ``start`` tells chains apart (a stand-in for the hashes)."""
    out, chars = [], 0
    for i, n in enumerate(sizes):
        chars += n
        out.append((hash((start, i)), chars))
    return tuple(out)


def test_the_longest_prefix_sent_before_is_cached() -> None:
    book = PrefixBook()
    system_user = _chain(1000, 50)
    assert book.cached_chars("k", system_user) == 0  # never sent
    assert book.cached_chars("k", (*system_user[:1], (hash("other user"), 1080))) == 1000  # the system prompt
    assert book.cached_chars("k", system_user) == 1050  # the whole prompt again
    assert book.cached_chars("other key", system_user) == 0  # another server or model caches apart


def test_a_conversation_hits_on_every_earlier_turn() -> None:
    book = PrefixBook()
    turns = _chain(500, 40, 30, 60, 20, 70)
    assert book.cached_chars("k", turns[:2]) == 0
    assert book.cached_chars("k", turns[:4]) == 540  # system + first question; the reply was not sent by the app
    assert book.cached_chars("k", turns[:6]) == 630


def test_bounded_per_key_and_in_keys() -> None:
    book = PrefixBook(per_key=4, max_keys=2)
    first = _chain(100, start=1)
    book.cached_chars("k", first)
    for i in range(2, 6):  # four more prefixes push the first out
        book.cached_chars("k", _chain(100, start=i))
    assert book.cached_chars("k", first) == 0
    book.cached_chars("k2", first)
    book.cached_chars("k3", first)  # a third key drops the least recently used, "k"
    assert book.cached_chars("k2", first) == 100
    assert book.cached_chars("k", _chain(100, start=5)) == 0


def test_nothing_to_compare_and_odd_input_are_zero() -> None:
    book = PrefixBook()
    assert book.cached_chars("k", ()) == 0
    assert book.cached_chars(["unhashable key"], _chain(10)) == 0  # type: ignore[arg-type]
