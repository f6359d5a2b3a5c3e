"""Own streams that shared a prefill pass: the work of the others in the pass is prefill, not queue.

Servers that batch (vLLM, SGLang, TGI, llama.cpp with several slots) prefill the prompts admitted together in
one pass and sample their first tokens in the same step, so those first tokens leave the server at one instant.
The servers' own definition of prefill (vLLM: first token - scheduled; llama.cpp's ``prompt_ms``) then counts the
whole pass for every request in it. A client-side model that knows only the call's own prompt explains its own
share of the pass and books the rest as queue (the simulator's steady load with six callers: queue p90 error
~70 % of TTFT). The client cannot see other processes' requests, but it does see its own: streams of the same
server and model whose first content chunks arrived within a few milliseconds of each other came out of the same
step, so the calls' prefill estimate is the pass's summed own work.

The book holds the last ``_PER_GROUP`` calls begun per (provider, server, requested model), streams and whole
bodies (own_queue.py reads which of them were in flight when a call was sent), with each call's
capture (its first content chunk is stamped there while it streams) and the prompt's characters; a call that has
been split writes its own estimated prefill into its entry, so a later member of the pass uses it instead of a
characters-based guess. Bounded: ``_PER_GROUP`` entries per group, ``_MAX_GROUPS`` groups (least recently begun
dropped). Thread-safe; never raises.

When it misleads: two own streams on *different* replicas of a hosted API whose first chunks happen to arrive
within the tolerance would be taken for one pass (at 10 calls/s on one key and a 2 ms window, ~4 % of calls):
the estimate then moves that peer's work from queue to prefill, inside the call's measured TTFT (queue never
goes below zero). docs/phases.md ("Shared passes") has the measurements.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque

from llmotel import forksafe
from llmotel.record import CallCapture, LLMRequest

_log = logging.getLogger(__name__)

_PER_GROUP = 32
_MAX_GROUPS = 256
# First chunks of one step reach the client a little apart: the client reads them one stream at a time (the GIL,
# SSE parsing), ~0.2-0.5 ms per stream. Two steps of a batching server are at least one decode step apart (10-100
# ms), so the window is the smaller of 3 ms and a third of the key's fastest decode step.
MAX_TOLERANCE_S = 0.003
TOLERANCE_STEP_SHARE = 1.0 / 3.0

Group = tuple[str, str, str]
_MAX_CALL_NS = 600 * 10**9  # an own call not seen to end after this long is no longer taken to be in flight
_MAX_OPEN = 64  # own calls in flight per group that a new call is noted behind
OPEN = 1 << 62  # the end of an own call not seen to end (perf_counter_ns never gets there)


class _Entry:
    __slots__ = ("capture", "chars", "own_s")

    def __init__(self, capture: CallCapture, chars: int) -> None:
        self.capture = capture
        self.chars = chars
        self.own_s = -1.0  # the call's own prefill estimate once it was split; < 0 before


class _Group:
    __slots__ = ("open", "ring")

    def __init__(self, per_group: int) -> None:
        self.ring: deque[_Entry] = deque(maxlen=per_group)  # recent streams (shared passes)
        self.open: list[CallCapture] = []  # calls begun and not seen to end when the newest one began


class PassBook:
    """Recent own streams per group, to find the ones whose first token came from the same server step; and for
    every call, the own calls that were in flight when it was sent (own_queue.py)."""

    def __init__(self, per_group: int = _PER_GROUP, max_groups: int = _MAX_GROUPS) -> None:
        self._per_group = per_group
        self._max_groups = max_groups
        self._groups: OrderedDict[Group, _Group] = OrderedDict()
        self._lock = forksafe.lock(self)

    def began(self, request: LLMRequest, capture: CallCapture) -> None:
        """A call was sent (streams and whole bodies: both hold a slot of the server). Never raises."""
        try:
            group = (request.provider, request.server_address, request.request_model)
            now = capture.attempt_start_ns or capture.start_ns
            with self._lock:
                g = self._groups.get(group)
                if g is None:
                    g = self._groups[group] = _Group(self._per_group)
                    if len(self._groups) > self._max_groups:
                        self._groups.popitem(last=False)
                else:
                    self._groups.move_to_end(group)
                # The calls still in flight: a call that ended is ahead of no later call. (Compared with now, not
                # just "has an end": a replay knows every end in advance.) The list holds the in-flight calls only,
                # so its cost follows the app's concurrency, not its call rate.
                if g.open:
                    still = [c for c in g.open
                             if not 0 < c.end_ns <= now and now - (c.attempt_start_ns or c.start_ns) <= _MAX_CALL_NS]
                    if still:
                        capture.ahead = still.copy()
                    still.append(capture)
                    if len(still) > _MAX_OPEN:
                        del still[0]
                    g.open = still
                else:
                    g.open = [capture]
                if request.stream:
                    g.ring.append(_Entry(capture, request.prompt_chars))
        except Exception:
            _log.debug("llmotel: pass book could not note a call", exc_info=True)

    def peers(self, request: LLMRequest, capture: CallCapture, tolerance_ns: int, own_s: float) -> list[_Entry]:
        """The other streams of the group whose first content chunk came within ``tolerance_ns`` of this call's,
        and note ``own_s`` (this call's own prefill estimate) in its entry for members of its pass split later.
        Empty when the call was not noted or nothing matches."""
        first = capture.first_content_ns
        group = (request.provider, request.server_address, request.request_model)
        out: list[_Entry] = []
        with self._lock:
            g = self._groups.get(group)
            if g is None or not first:
                return out
            for entry in g.ring:
                other = entry.capture
                if other is capture:
                    entry.own_s = own_s
                    continue
                t = other.first_content_ns
                if t and -tolerance_ns <= t - first <= tolerance_ns:
                    out.append(entry)
        return out

    @staticmethod
    def ahead(capture: CallCapture) -> list[int]:
        """The ends (perf_counter ns, sorted) of the own calls of the call's group that were in flight when its
        answering attempt was sent; ``OPEN`` for one not seen to end by this call's end (a later end is unknown
        live, so a replay must not know it either). Empty when none were (or the call was not noted). Called once,
        when the call is split: it lets go of those calls (a chain of calls holding the calls ahead of them would
        keep every capture alive)."""
        others, capture.ahead = capture.ahead, None
        if not others:
            return []
        sent = capture.attempt_start_ns or capture.start_ns
        until = capture.end_ns
        ends: list[int] = []
        for other in others:
            if (other.attempt_start_ns or other.start_ns) >= sent:
                continue  # sent after this call's answering attempt (its earlier attempts failed)
            end = other.end_ns
            if end <= 0 or end > until:
                ends.append(OPEN)
            elif end > sent:
                ends.append(end)
        ends.sort()
        return ends
