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
the call behind its own from one that batched it, and the interval says so. What such calls teach the fit keeps the
wait each count would imply, and loses the known count's wait once it is known (learner.py, Calibrator.settle).

Bounded: ``_MAX_GROUPS`` groups (least recently used dropped). Thread-safe; never raises.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict, deque

from llmotel import forksafe
from llmotel.phases.learner import _solve
from llmotel.phases.passes import OPEN, Group

_log = logging.getLogger(__name__)

MAX_SLOTS = 8
NONE = MAX_SLOTS + 1  # a slot count above every candidate: no own wait
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


def implied_waits_s(ends: list[int], attempt_ns: int) -> tuple[float, ...]:
    """The wait each slot count 1, 2, ... (up to ``MAX_SLOTS`` and the calls ahead) implies, in seconds; ``inf`` where
    the call it waited for was not seen to end."""
    waits = []
    for k in range(1, min(len(ends), MAX_SLOTS) + 1):
        wait = implied_wait_ns(ends, attempt_ns, k)
        waits.append(math.inf if wait is None else wait / _NS)
    return tuple(waits)


def ceiling_ns(ends: list[int], attempt_ns: int) -> int:
    """The most any slot count implies for a call sent at ``attempt_ns`` behind own calls ending at ``ends``
    (sorted, not empty): the wait for the last of them (one slot); ``OPEN`` when one was not seen to end."""
    end = ends[-1]
    return OPEN if end >= OPEN else max(end - attempt_ns, 0)


class _Counts:
    __slots__ = ("bodies", "body_slots", "refuted", "tests", "unfitted")

    def __init__(self) -> None:
        self.tests = [0.0] * (MAX_SLOTS + 1)  # index k: decayed count of streams that tested k slots
        self.refuted = [0.0] * (MAX_SLOTS + 1)
        self.bodies: deque[_Body] | None = None  # whole bodies sent behind own calls (body_slots), when any
        self.body_slots: int | None = None  # the slot count whole bodies imply (NONE: no wait), None while unknown
        self.unfitted = 0

    def slots(self) -> tuple[int, bool]:
        """(the smallest candidate not refuted, whether it has been tested enough to use); where streams have not
        tested it enough, what whole bodies imply (never a count streams refuted)."""
        k, tested = self._stream_slots()
        if not tested and self.body_slots is not None:
            return max(k, self.body_slots), True
        return k, tested

    def _stream_slots(self) -> tuple[int, bool]:
        for k in range(1, MAX_SLOTS + 1):
            tests = self.tests[k]
            if tests < MIN_TESTS or self.refuted[k] <= MAX_REFUTED * tests:
                return k, tests >= MIN_TESTS
        return NONE, True


# Whole bodies show no first token: the slot count is the hypothesis under which their own times (the total less
# the wait the count implies) are explained best by their sizes. Under the true count they are the calls' service
# times, a clean function of their tokens; a count too small takes part of the service away (some calls end before
# the call they "waited" for: refuted), one too large leaves waits in (scatter); a batching server's totals are
# explained best with no own wait at all (identical calls on a batching server explain as well under one slot: no
# wait is kept then). A count is used only where it explains the bodies far better than no wait does: one slot at
# most ``_BODY_CLEAR_ONE`` of no-wait's residual scatter (a call's service does not depend on the others'), two or
# more at most ``_BODY_CLEAR`` (calls share batches: each one's service stretches with its batch-mates'); no wait only
# where every count is refuted, or none comes close (``_BODY_NONE``) and no wait explains the bodies cleanly
# (``_BODY_CLEAN``: not two bad hypotheses, as behind other apps' calls); otherwise the count stays unknown and the
# interval says so. bench/real's llama.cpp recordings replayed as whole bodies (bench/real/as_bodies.py, seeds 6-8,
# best count's scatter / no-wait's at each refit): one slot 0.03-0.32; one slot with two callers of another app
# 0.31-1.19 (no count is clean: unknown, mostly); two and three slots 0.35-0.78. Batching servers with noise and
# stretch (as the unit tests build them) 1.2-2.4.
_BODY_WINDOW = 64
_BODY_MIN = 24  # whole bodies behind own calls before a count is chosen
_BODY_REFIT = 8  # refit after this many more
_BODY_CLEAR_ONE = 0.35  # one slot's residual scatter at most this share of no-wait's: one slot
_BODY_CLEAR = 0.7  # the same for two or more slots, whose calls' service stretches with their batch-mates'
_BODY_NONE = 0.9  # every count's at least this share, and no-wait's scatter clean: no own wait
_BODY_CLEAN = 0.15  # no-wait's residual scatter at most this share of the median total: clean
_BODY_REFUTED = 0.1  # a count under which more than this share of bodies served for less than nothing is refuted
_BODY_KEEP = 0.85  # a count already chosen is kept while it stays the best and at most this share of no-wait's


class _Body:
    __slots__ = ("features", "total", "waits")

    def __init__(self, features: tuple[float, float, float], total: float, waits: tuple[float, ...]) -> None:
        self.features = features  # uncached tokens, cached tokens, output tokens
        self.total = total
        self.waits = waits  # index k - 1: the wait k slots imply (inf: the call k says it waited for never ended)


def _residual_scatter(bodies: deque[_Body], k: int) -> float:
    """The median absolute residual of a least-squares line (intercept, uncached, cached, output tokens) through the
    bodies' own times under k slots (``NONE``: no wait); inf when k is refuted."""
    rows: list[tuple[float, float, float, float]] = []
    ys: list[float] = []
    bad = 0
    for b in bodies:
        wait = b.waits[k - 1] if k <= len(b.waits) else 0.0
        own = b.total - wait
        if own < 0.0:
            bad += 1
            continue
        rows.append((1.0, *b.features))
        ys.append(own)
    if bad > _BODY_REFUTED * len(bodies) or len(ys) < 8:
        return math.inf
    n = 4
    scale = [max(max(abs(r[j]) for r in rows), 1e-9) for j in range(n)]
    a = [[0.0] * n for _ in range(n)]
    v = [0.0] * n
    for r, y in zip(rows, ys, strict=True):
        x = [r[j] / scale[j] for j in range(n)]
        for i in range(n):
            v[i] += x[i] * y
            for j in range(n):
                a[i][j] += x[i] * x[j]
    for i in range(n):
        a[i][i] += 1e-6 * len(ys)  # a feature that never varies (no cache) leaves the system singular
    coef = _solve(a, v)
    if coef is None:
        return math.inf
    residuals = sorted(abs(y - sum(coef[j] * r[j] / scale[j] for j in range(n))) for r, y in zip(rows, ys, strict=True))
    return residuals[len(residuals) // 2]


def _body_slots(bodies: deque[_Body], chosen: int | None = None) -> int | None:
    """The slot count the bodies imply (``NONE``: no own wait); None when they do not tell. ``chosen``: the count an
    earlier window chose, kept while it stays the best and within ``_BODY_KEEP`` of no-wait's scatter.

    Without that, a true count whose ratio hovers about ``_BODY_CLEAR`` came and went between refits, and every
    body in between lost its wait (bench/real/trials.py 5, two slots, four callers of whole bodies on a prefix
    cache: two slots at 0.69 of no-wait's scatter after 24 bodies, 0.73-0.81 for the next 32, 0.55-0.63 after;
    queue p90 42 % of TTFT, all of it in the bodies between)."""
    baseline = _residual_scatter(bodies, NONE)
    top = max(len(b.waits) for b in bodies)
    scatters = [_residual_scatter(bodies, k) for k in range(1, min(top, MAX_SLOTS) + 1)]
    best = min(scatters)
    best_k = scatters.index(best) + 1 if best < math.inf else NONE
    if best <= (_BODY_CLEAR_ONE if best_k == 1 else _BODY_CLEAR) * baseline:
        return best_k
    if chosen is not None and chosen == best_k and best <= _BODY_KEEP * baseline:
        return best_k
    if best == math.inf:
        return NONE  # every count refuted: calls overtook the ones they would have waited for
    totals = sorted(b.total for b in bodies)
    clean = baseline <= _BODY_CLEAN * totals[len(totals) // 2]
    return NONE if clean and best >= _BODY_NONE * baseline else None


class SlotCounts:
    """Per group, the server's slot count as the app's own streams show it, and the wait it implies."""

    def __init__(self, max_groups: int = _MAX_GROUPS) -> None:
        self._groups: OrderedDict[Group, _Counts] = OrderedDict()
        self._max_groups = max_groups
        self._lock = forksafe.lock(self)

    def _counts(self, group: Group) -> _Counts:
        counts = self._groups.get(group)
        if counts is None:
            counts = self._groups[group] = _Counts()
            if len(self._groups) > self._max_groups:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(group)
        return counts

    def observe(self, group: Group, ends: list[int], attempt_ns: int, first_ns: int, prefill_ns: int = 0) -> None:
        """A stream sent at ``attempt_ns`` behind own calls ending at ``ends`` got its first token at ``first_ns``:
        every candidate k it tests is refuted when the call k says it waited for ended less than ``prefill_ns``
        before that token (the least the call's own prompt took once it had the slot; 0: at or after that token).

        Without the prompt's time, a server that queues calls for a *pass* (one prefill pass at a time, decode
        steps between) but never for a *slot* passed for one slot whenever its calls were short: a call's first
        token came after the call ahead had ended (a few decode steps after its own first token), but sooner after
        that end than its own prompt could run (bench/sim_trials.py's four callers on cached prefixes with 5
        output tokens: in one run of three one slot was taken, every wait read 25-50 ms long, queue median 25-33 %
        of TTFT)."""
        try:
            n = len(ends)
            if n == 0:
                return
            with self._lock:
                counts = self._counts(group)
                for k in range(1, min(n, MAX_SLOTS) + 1):
                    counts.tests[k] = counts.tests[k] * _DECAY + 1.0
                    counts.refuted[k] = counts.refuted[k] * _DECAY + (
                        1.0 if ends[n - k] + prefill_ns >= first_ns else 0.0)
        except Exception:
            _log.debug("llmotel: slot counts could not learn from a call", exc_info=True)

    def observe_body(
        self, group: Group, ends: list[int], attempt_ns: int, end_ns: int, uncached: int, cached: int, output: int
    ) -> None:
        """A whole body sent at ``attempt_ns`` behind own calls ending at ``ends`` ended at ``end_ns``: kept with the
        waits each candidate count implies; every ``_BODY_REFIT`` bodies the count they imply is chosen afresh."""
        try:
            n = len(ends)
            if n == 0 or end_ns <= attempt_ns:
                return
            body = _Body((float(uncached), float(cached), float(output)), (end_ns - attempt_ns) / _NS,
                         implied_waits_s(ends, attempt_ns))
            with self._lock:
                counts = self._counts(group)
                if counts.bodies is None:
                    counts.bodies = deque(maxlen=_BODY_WINDOW)
                counts.bodies.append(body)
                counts.unfitted += 1
                if len(counts.bodies) < _BODY_MIN or counts.unfitted < _BODY_REFIT:
                    return
                counts.unfitted = 0
                bodies = deque(counts.bodies)
                chosen = counts.body_slots
            slots = _body_slots(bodies, chosen)  # outside the lock: a few thousand operations every 8 bodies
            with self._lock:
                counts.body_slots = slots
        except Exception:
            _log.debug("llmotel: slot counts could not learn from a whole body", exc_info=True)

    def own_wait_s(self, group: Group, ends: list[int], attempt_ns: int) -> float | None:
        """The wait the group's learned slot count implies for this call, in seconds; None while the count is not
        known well enough for a call with this many own calls ahead (or the call it waited for was not seen)."""
        return self.own_wait(group, ends, attempt_ns)[0]

    def own_wait(self, group: Group, ends: list[int], attempt_ns: int) -> tuple[float | None, int]:
        """(``own_wait_s``, the slot count it used: 0 where none was needed or known)."""
        try:
            if not ends:
                return 0.0, 0
            with self._lock:
                counts = self._groups.get(group)
                slots, tested = counts.slots() if counts is not None else (1, False)
            if len(ends) < slots:
                return 0.0, slots if tested else 0
            if not tested:
                return None, 0
            wait = implied_wait_ns(ends, attempt_ns, slots)
            return (None, 0) if wait is None else (wait / _NS, slots)
        except Exception:
            _log.debug("llmotel: no own-call wait", exc_info=True)
            return None, 0

    def slots(self, group: Group) -> int | None:
        """The group's learned slot count (``MAX_SLOTS + 1``: more than any candidate), None while unknown."""
        with self._lock:
            counts = self._groups.get(group)
            if counts is None:
                return None
            slots, tested = counts.slots()
        return slots if tested else None
