"""The wait the app's own calls imply: on a server with k slots, a call sent while n of the app's own calls to it
were in flight waits until the (n - k + 1)-th of them ends (none when n < k).

The client sees every one of those ends, so where the slot count is known that part of the queue is measured
by the client, not inferred from a fit. It matters where the fit cannot see it: a floor learned from calls that
all waited behind the app's own others (one slot, four callers: the fit booked ~100 ms of every call's wait as
prefill), and prompts whose no-wait time the fit gets wrong (prefix-cache hits behind another caller: up to 28 %
of TTFT at p90). On bench/real's llama.cpp recordings the implied wait matched the server's own queue within a
median 0.1-0.5 % and p90 1.8 % of TTFT in every shared-slot workload (bench/real/own_overlap.py).

The slot count is learned per group (provider, server, requested model) from the app's own streams: for each
candidate k (1 .. ``MAX_SLOTS``) a stream whose first token arrived before the call that k says it waited for had
ended refutes k (under first-come-first-served a call cannot be served before it got a slot). The group's k is the
smallest candidate not refuted in more than ``MAX_REFUTED`` of its recent tests; it is used once it has been tested
``MIN_TESTS`` times. Servers that batch many sequences (vLLM, SGLang, hosted APIs, with several replicas) refute
every small k: no own wait is implied there beyond 0 (calls with fewer own calls ahead than k cannot have waited
for them). Other clients' load is invisible to this: the implied wait is a lower bound of the queue, and the rest
stays the fit's (model.py).

When it misleads: a server that does not serve in arrival order (priorities, a scheduler that admits short prompts
first) lets a later call overtake; such calls refute every k and the bound switches itself off. Two replicas behind
one address with one slot each read as k = 2, which is what they are to the client.

While a group's slot count is unknown (its first tests, and for good where the app never streams to it: a whole
body shows no first token to test k with) the estimate stays the fit's, but the queue's interval reaches up to the
wait one slot implies (``ceiling_ns``, the most any slot count does): the client cannot tell a server that queued
the call behind its own from one that batched it, and the interval says so.

Bounded: ``_MAX_GROUPS`` groups (least recently used dropped). Thread-safe; never raises.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from llmotel import forksafe
from llmotel.phases.passes import OPEN, Group

_log = logging.getLogger(__name__)

MAX_SLOTS = 8
MIN_TESTS = 10.0
MAX_REFUTED = 0.2  # bench/real: the true k refuted in 0-2 % of calls, k one too small in 93-97 % (two slots)
_DECAY = 1.0 - 1.0 / 64.0  # about the last 64 tests per candidate count
_MAX_GROUPS = 256
_NS = 1e9


def implied_wait_ns(ends: list[int], attempt_ns: int, slots: int) -> int | None:
    """The wait ``slots`` slots imply for a call sent at ``attempt_ns`` behind own calls ending at ``ends`` (sorted;
    ``OPEN`` where not seen to end): 0 when fewer than ``slots`` were ahead, None when the call it waited for has
    not been seen to end."""
    ahead = len(ends) - slots
    if ahead < 0:
        return 0
    end = ends[ahead]
    return None if end >= OPEN else max(end - attempt_ns, 0)


def ceiling_ns(ends: list[int], attempt_ns: int) -> int:
    """The most any slot count implies for a call sent at ``attempt_ns`` behind own calls ending at ``ends``
    (sorted, not empty): the wait for the last of them (one slot); ``OPEN`` when one was not seen to end."""
    end = ends[-1]
    return OPEN if end >= OPEN else max(end - attempt_ns, 0)


class _Counts:
    __slots__ = ("refuted", "tests")

    def __init__(self) -> None:
        self.tests = [0.0] * (MAX_SLOTS + 1)  # index k: decayed count of streams that tested k slots
        self.refuted = [0.0] * (MAX_SLOTS + 1)

    def slots(self) -> tuple[int, bool]:
        """(the smallest candidate not refuted, whether it has been tested enough to use)."""
        for k in range(1, MAX_SLOTS + 1):
            tests = self.tests[k]
            if tests < MIN_TESTS or self.refuted[k] <= MAX_REFUTED * tests:
                return k, tests >= MIN_TESTS
        return MAX_SLOTS + 1, True


class SlotCounts:
    """Per group, the server's slot count as the app's own streams show it, and the wait it implies."""

    def __init__(self, max_groups: int = _MAX_GROUPS) -> None:
        self._groups: OrderedDict[Group, _Counts] = OrderedDict()
        self._max_groups = max_groups
        self._lock = forksafe.lock(self)

    def observe(self, group: Group, ends: list[int], attempt_ns: int, first_ns: int) -> None:
        """A stream sent at ``attempt_ns`` behind own calls ending at ``ends`` got its first token at ``first_ns``:
        every candidate k it tests is refuted when the call k says it waited for ended after that token."""
        try:
            n = len(ends)
            if n == 0:
                return
            with self._lock:
                counts = self._groups.get(group)
                if counts is None:
                    counts = self._groups[group] = _Counts()
                    if len(self._groups) > self._max_groups:
                        self._groups.popitem(last=False)
                else:
                    self._groups.move_to_end(group)
                for k in range(1, min(n, MAX_SLOTS) + 1):
                    counts.tests[k] = counts.tests[k] * _DECAY + 1.0
                    counts.refuted[k] = counts.refuted[k] * _DECAY + (1.0 if ends[n - k] >= first_ns else 0.0)
        except Exception:
            _log.debug("llmotel: slot counts could not learn from a call", exc_info=True)

    def own_wait_s(self, group: Group, ends: list[int], attempt_ns: int) -> float | None:
        """The wait the group's learned slot count implies for this call, in seconds; None while the count is not
        known well enough for a call with this many own calls ahead (or the call it waited for was not seen)."""
        try:
            if not ends:
                return 0.0
            with self._lock:
                counts = self._groups.get(group)
                slots, tested = counts.slots() if counts is not None else (1, False)
            if len(ends) < slots:
                return 0.0
            if not tested:
                return None
            wait = implied_wait_ns(ends, attempt_ns, slots)
            return None if wait is None else wait / _NS
        except Exception:
            _log.debug("llmotel: no own-call wait", exc_info=True)
            return None

    def slots(self, group: Group) -> int | None:
        """The group's learned slot count (``MAX_SLOTS + 1``: more than any candidate), None while unknown."""
        with self._lock:
            counts = self._groups.get(group)
            if counts is None:
                return None
            slots, tested = counts.slots()
        return slots if tested else None
