"""How much of an estimated queue may be the call's own prefill running slow, learned per key.

The envelope is a floor (learner.py): a call that did not queue still runs above it by a share of its prefill that
varies with the server (llama.cpp on a busy CPU: tens of ms on a 50 ms prompt; a steady GPU: almost nothing). What a
split books beyond the floor is queue, and the client cannot tell that from the prompt running slow. The calls that
had none of the app's own calls ahead show that share directly: their estimated queue over their estimated prefill.
Its recent median, times 0.4, is how far above the estimate the prefill's interval reaches (model.py's
``_intervals``; half as far below) on every call of the key: wide where this server's calls scatter, narrow where
they do not.

Chosen with model.py's interval constants by bench/real/interval_grid.py on bench/real's recordings (seeds 7-9, 53
workload runs replayed) and one simulator run (bench/phase_accuracy.py, 11 scenarios): without it, 24 real runs had
a mean queue/prefill coverage within 75-90 % and 5 below (the idle workloads of noisy runs: small prompts 10-25 ms
above the floor booked as queue, true queue 5-10 ms); with it 28 within and none below, and on the simulator none
below (3 before). Quantiles 0.5-0.8, halved or whole, over the last 16-64 calls were tried (docs/phases.md).
Re-chosen 2026-12-07 with the simulator's sampling spread (model.py) on seeds 11-13 (57 runs) and one simulator run:
0.4 instead of 0.5 put 38 real runs within 75-90 % (37), 17 above (18), the same 2 below, pooled 89.0 / 87.0 %
(89.4 / 87.2), and the simulator's pooled coverage at 87.9 / 87.0 % (89.5 / 88.2).

The same ratio over the key's calls sent while nothing of the app's own was in flight to the server (``solo``) has a
median too, the key's typical run above the floor: model.py books it as prefill on such calls (``_book_typical_run``;
no own call can have made them wait, and the real servers' prefill scatters that far).

Bounded: ``_MAX_KEYS`` keys (the oldest dropped). Thread-safe; never raises.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Hashable

from llmotel import forksafe

_log = logging.getLogger(__name__)

_WINDOW = 32  # the key's last calls without own calls ahead
_MIN_CALLS = 8  # below this the share is 0: the interval is the fit's alone
_QUANTILE = 0.5
_SHARE = 0.4  # 0.5 until 2026-12-07 (see the module docstring)
_MAX_KEYS = 256
_EVERY = 4  # calls between two updates of a key's share
# A solo call whose estimated queue exceeds its prefill did not just run slow (no real server's prefill scattered by
# 2x: sigma <= 0.18, bench/real/scatter.py): it waited for something (a cold start, another client), and is left out
# of the typical run.
_MAX_RUN = 1.0


class _Ring:
    __slots__ = ("seen", "share", "solo", "solo_seen", "typical", "values")

    def __init__(self) -> None:
        self.values: deque[float] = deque(maxlen=_WINDOW)
        self.share = 0.0
        self.seen = 0
        # The calls sent while nothing of the app's own was in flight to the server: their median ratio is the key's
        # typical run above the floor where no own call can have made it wait (model.py's _book_typical_run).
        self.solo: deque[float] = deque(maxlen=_WINDOW)
        self.typical = 0.0
        self.solo_seen = 0


_NONE = (0.0, 0.0)


class Residuals:
    """Per key, the share of its estimated prefill by which the prefill's interval reaches above it."""

    def __init__(self, max_keys: int = _MAX_KEYS) -> None:
        self._rings: dict[Hashable, _Ring] = {}
        self._max_keys = max_keys
        self._lock = forksafe.lock(self)  # taken only to add a key: a call's update touches its own ring

    def share(self, key: Hashable) -> float:
        ring = self._rings.get(key)
        return ring.share if ring is not None else 0.0

    def typical(self, key: Hashable) -> float:
        ring = self._rings.get(key)
        return ring.typical if ring is not None else 0.0

    def share_then_observe(
        self, key: Hashable, queue_s: float, prefill_s: float, observe: bool, solo: bool = False
    ) -> tuple[float, float]:
        """(the key's share, its typical run) before this call, then (if ``observe``) this call's split learned
        (``solo``: sent while none of the app's own calls to the server was in flight): one lookup of the key for
        all of it, on every call's path (callgrind, OpenAI plain: at parity with the cheapest peer)."""
        ring = self._rings.get(key)
        got = _NONE if ring is None else (ring.share, ring.typical)
        if observe:
            self._observe(ring, key, queue_s, prefill_s, solo)
        return got

    def observe(self, key: Hashable, queue_s: float, prefill_s: float, solo: bool = False) -> None:
        """An estimated split of a call that had none of the app's own calls ahead of it."""
        self._observe(self._rings.get(key), key, queue_s, prefill_s, solo)

    def _observe(self, ring: _Ring | None, key: Hashable, queue_s: float, prefill_s: float, solo: bool) -> None:
        """Lock-free past a key's first call (this runs on every such call: callgrind, OpenAI plain, 807 k instructions
        against the cheapest peer's 804 with a lock and LRU order here): a deque's append is atomic, a share is one
        assignment, and a sort that meets a concurrent append fails into the except and waits for the next update.
        """
        try:
            if not prefill_s > 0.0 or not queue_s >= 0.0:
                return
            if ring is None:
                with self._lock:
                    ring = self._rings.setdefault(key, _Ring())
                    if len(self._rings) > self._max_keys:  # the oldest key goes
                        del self._rings[next(iter(self._rings))]
            ratio = queue_s / prefill_s
            values = ring.values
            values.append(ratio)
            ring.seen += 1
            n = len(values)
            # Sorting on every call would cost ~2 k instructions per call; every _EVERY calls, 0.5 k.
            if n >= _MIN_CALLS and (n == _MIN_CALLS or ring.seen % _EVERY == 0):
                ring.share = _SHARE * sorted(values)[min(n - 1, int(_QUANTILE * n))]
            if solo and ratio <= _MAX_RUN:
                values = ring.solo
                values.append(ratio)
                ring.solo_seen += 1
                n = len(values)
                if n >= _MIN_CALLS and (n == _MIN_CALLS or ring.solo_seen % _EVERY == 0):
                    ring.typical = sorted(values)[n // 2]
        except Exception:
            _log.debug("llmotel: residuals not updated", exc_info=True)
