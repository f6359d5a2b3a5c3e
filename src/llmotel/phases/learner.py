"""The phase model's online learner: per key, the lower envelope of latency against token counts.

Method (docs/phases.md has the long form):
- A key is (provider, server address, resolved model, region). Keys live in an LRU of at most
  ``max_keys``; a key's memory is bounded too (at most ``_MAX_BINS`` bins of ``_PER_BIN`` points).
- For streams, TTFT = overhead + queue + prefill. Calls that did not queue are the fastest for their
  size, so the *lower envelope* of TTFT against (uncached input tokens, cache-read tokens) is
  ``overhead + a * uncached + k * cached``: intercept = fixed overhead, slope ``a`` = prefill seconds per
  uncached token, ``k`` = the (small) cost of a cache read. Queue = what the envelope does not explain.
- The envelope is kept as binned minima (bins on a log scale of each token count, the few points with
  the smallest residual kept per bin; a full bin contributes its second-lowest) and fitted by a
  low-quantile regression (tau = 0.3, the intercept pulled toward 0) weighted by how often each bin was seen.
  Coefficients are kept non-negative, a cache read costs at most 5 % of an uncached token, and a slope the
  data cannot tell apart from the overhead (one prompt size, one cached size) stays at its cold-start prior.
- Decode: streams give time per output token directly; an exponentially weighted mean (recent load) is
  kept for non-streaming calls of the same key, and the second-lowest of the last few streams (the step
  without stalls) bounds the first decode step.
- Non-streaming calls see only the total, so they feed a second envelope of total time against
  (uncached, cached, output tokens); it is used for keys that never stream. For keys that do stream, a
  low percentile of what the stream model leaves unexplained in recent non-streaming calls is kept: the
  body's way back after the last token, part of their decode.
- Old points expire after ``_MAX_AGE`` calls of their key, so a server that became slower (diurnal
  contention) is followed, not hidden under an old minimum.

Thread-safe (one lock per learner; the work under it is O(bins) and a refit at most every few calls).
Never raises from ``observe_*``/``coefficients``; persistence errors are logged at debug and ignored.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from bisect import bisect_left, insort
from collections import OrderedDict, deque
from collections.abc import Iterable
from itertools import repeat
from operator import mul, sub
from typing import Any, NamedTuple

from llmotel import forksafe
from llmotel.phases.priors import Prior, prior

_log = logging.getLogger(__name__)

Key = tuple[str, str, str, str]  # provider, server address, resolved model, region

STATE_ENV = "LLMOTEL_PHASE_MODEL_STATE"
_STATE_VERSION = 2  # 2: attention work counts the pairs with the cached prefix (u*c)

# Quantile of the envelope fit over the per-bin floor points (each already a bin's second-lowest call): 0.3, not
# lower, because on llama.cpp a call that did not queue still scatters by +-20 ms around any smooth model of its
# prompt, and a line under 90 % of the floor booked that scatter as queue on every call (bench/real, eleven
# workloads in two runs: queue p90 <= 20 % of TTFT at 0.3, up to 44 % at 0.1).
_TAU = 0.3
_FIT_ITERATIONS = 12
_QUANTILE_EPS_S = 1e-5  # residuals below this count as this (keeps the reweighting finite)
_SPARSE_BIN = 4.0
# The intercept is the TTFT of a call with no work: the request path, the server's fixed work and, where no call
# ever found the server idle, the least wait. It is booked as queue, so where the data cannot tell it from a
# feature (a prefix-cache workload whose hits all share one cached size: intercept + k * cached is one number for
# them), the fit must not hand the hits' fixed cost to it. An L1 pull toward 0 settles such ties: lowering the
# intercept by 1 ms costs the fit this many ms of one well-sampled bin's loss. Chosen on bench/real's workloads
# (0.03-0.3 all met the targets; prefix_cache's queue p90 41 % of TTFT without it, 9-18 % with it) and the
# simulator's prefix_hits_hosted, where three cached sizes identify the intercept and 0.3 still moved it from 22
# to 8 ms (queue p90 30 % of TTFT; 7 % at 0.1).
_INTERCEPT_PULL = 0.1
# A cached token costs at most this share of an uncached one (the cache-read slope is capped at it). Reading a
# cached prefix skips the token's weight matmuls; what remains is cheap (llama.cpp restoring its prompt cache on a
# CPU: ~5 %, bench/real prefix_sizes; on GPUs with paged KV, ~0). Without the cap, two callers sharing one slot made
# the hits' floor hold their waits and the fit booked it as cache-read cost, hence prefill (queue p90 63 % of TTFT
# in bench/real's prefix_cache_2_callers; 14 % with the cap, every other workload unchanged within 1 point).
_CACHE_READ_MAX_SHARE = 0.05
_PRIOR_WEIGHT = 1e-6  # numerical only: coefficients the data cannot tell apart are pinned to the prior
_PER_BIN = 3
_MAX_BINS = 48
_MAX_AGE = 4096  # calls of a key after which a stored point expires
_EAGER_FIT_SAMPLES = 64  # below this many calls the fit is refreshed on every change
_LAZY_FIT_EVERY = 8  # above it, at most once per this many calls
_TPOT_ALPHA = 0.1
# A decode step grows with its context (each output token attends over the prompt and the tokens before it): on
# llama.cpp on a CPU, one caller, time per output token = ~4.2 ms + ~1.6 ms per 1,000 tokens of context (bench/real,
# every single-caller workload of seeds 10-12; residual p10-p90 within +-1.5 ms); on a GPU serving an 8B model the
# KV cache read is ~1 % of a step per 1,000 tokens. Streams measure it: per key, an exponentially weighted
# regression of their time per output token on their context (about the last 64 streams; a stream's time per
# token is clipped at _TPOT_CTX_CLIP x what the regression expects at its context first, so a stall behind another
# request's prefill cannot tilt it) gives the slope, used from _TPOT_CTX_MIN streams on to carry the recent time per
# token (``time_per_output_token_s``, at the recent streams' context) to a whole body's context.
_TPOT_CTX_ALPHA = 1.0 / 64.0
_TPOT_CTX_MIN = 16
_TPOT_CTX_CLIP = 3.0
# The idle decode step is a low percentile of the last _TPOT_RING streams' time per output token: not the
# minimum, because chunks that arrive in one burst make a single stream look impossibly fast.
_RING = 32
_SAVE_EVERY = 200  # learned calls between two writes of the state file
_HEADER_VOTES = 16  # saturating vote on whether this key's server sends stream headers before it works
# The non-streaming tail is the 20th percentile of the last _RING residuals (the calls that did not queue),
# reported once this many were seen (the lowest of one or two calls is still mostly noise).
_TAIL_MIN_CALLS = 4
# Calls a key keeps whose time held an unknown wait behind the app's own calls (the server's slot count not learned
# yet: own_queue.py), to take that wait out once the count is known (Calibrator.settle). Whole bodies need
# _BODY_MIN (24) such calls to learn a count, and bench/real's two slots took 24-48; older ones stay as taught.
_PENDING = 64
# "One token generally corresponds to ~4 characters of text for common English text" (OpenAI, "What are tokens
# and how to count them?", help.openai.com). Only used until a call of the key reports its input tokens.
DEFAULT_CHARS_PER_TOKEN = 4.0
_CPT_ALPHA = 0.02  # forgetting of the chars/token sums: the ratio varies with the text, not with load
# Attention work is counted in thousands of token pairs, so its coefficient is of the linear ones' order and
# the normal equations stay well scaled.
_PAIRS_SCALE = 1000.0


def attention_work(uncached: float, cached: float) -> float:
    """Token pairs the new tokens' attention scores, in thousands: each new token with the cached prefix and
    with the new tokens before it (u*c + u^2/2). A prompt's prefill grows faster than its length (llama.cpp on a
    CPU: ~0.5 ms per token at 100 tokens, ~0.8 ms at 1,500, bench/real), and a straight line in tokens booked
    the long prompts' extra as queue. The u*c pairs are what a turn of a multi-turn chat costs beyond its new
    tokens: without them bench/real's conversation workload (each turn resends the chat so far, a hit of up to
    4,000 tokens) had queue errors of median 57 % / p90 84 % of TTFT; with them 4 % / 13 %.
    """
    return (uncached * cached + 0.5 * uncached * uncached) / _PAIRS_SCALE


def cache_read_at_cap(cache_read_s_per_token: float, prefill_s_per_token: float) -> bool:
    """Whether a fitted cache-read cost sits at its cap (``_CACHE_READ_MAX_SHARE`` of an uncached token): the hits'
    floor asked for more fixed cost than a cache read may have, which is where the fit could not tell that cost from
    the intercept (the least wait, where no call found the server idle; model.py reaches the interval over it)."""
    cap = _CACHE_READ_MAX_SHARE * prefill_s_per_token
    return cache_read_s_per_token > 0.0 and cache_read_s_per_token >= 0.999 * cap


class Coefficients(NamedTuple):
    """What the learner believes about one key now, in seconds. ``samples`` counts learned calls. A named tuple,
    not a dataclass: one is built for every call, and a frozen dataclass costs twice as much to build."""

    overhead_s: float
    prefill_s_per_token: float
    cache_read_s_per_token: float
    time_per_output_token_s: float  # recent (exponentially weighted) time per output token of streams
    tpot_floor_s: float | None  # low percentile of recent streams' time per output token: the idle step
    # Of ``overhead_s``, the request path (send -> headers) measured on the calls that make the floor; 0 for
    # servers that send headers with the first token.
    overhead_request_path_s: float
    samples: int  # streaming calls in the TTFT envelope
    tpot_samples: int  # streams that taught a time per output token
    total_samples: int  # non-streaming calls in the total-time envelope
    confidence: float  # of the TTFT split, in [0, 1]
    # Non-streaming envelope: total = total_overhead + a*uncached + k*cached + per_output*output.
    total_overhead_s: float
    total_prefill_s_per_token: float
    total_cache_read_s_per_token: float
    total_s_per_output_token: float
    total_confidence: float
    uncached_range: tuple[float, float]  # span of uncached tokens the TTFT envelope has seen
    # True: this server sends stream headers on arrival (vLLM, TGI, llama.cpp), so send -> headers is the
    # request path measured per call and the envelope is of headers -> first content. False: headers come
    # with the first token (hosted APIs). None: no stream seen yet.
    headers_early: bool | None
    prior: Prior
    # Non-streaming calls of a key that streams: a low percentile of (total - the stream model's unqueued
    # prediction) over recent calls. The time from the last token to the end of the body (building, sending
    # and reading the whole response), which streams never show; None until a few such calls were seen.
    nonstream_tail_s: float | None = None
    # The second-lowest time per output token of the last _RING streams: the fastest decode step seen lately,
    # a stream without stalls for other requests' prefills (one burst-read stream cannot set it). The first
    # decode step is one such step, so it bounds first_token (model.py); None below two streams.
    step_floor_s: float | None = None
    # Prompt characters per input token, from this key's calls that reported both (a running mean of the
    # ratio); DEFAULT_CHARS_PER_TOKEN before any. Turns a prompt's size into tokens when usage never comes.
    # Seconds per thousand attention pairs (``attention_work``), on the streaming and the non-streaming envelope.
    prefill_s_per_kpair: float = 0.0
    total_prefill_s_per_kpair: float = 0.0
    chars_per_token: float = 4.0
    chars_per_token_samples: int = 0
    # The context (prompt + half the output, tokens) that ``time_per_output_token_s`` refers to (the same weighting
    # over recent streams), and how much a step grows per 1,000 tokens of it (seconds; 0 until _TPOT_CTX_MIN streams).
    tpot_context_tokens: float = 0.0
    tpot_s_per_ktoken: float = 0.0
    # The share of this key's input tokens the server's prefix cache served (decayed sums over the calls that reported
    # usage): a prompt known only by its characters (an own stream of the same pass, not split yet) is that cached.
    cached_share: float = 0.0


def _log_bin(value: float, per_octave: int) -> int:
    return 0 if value < 1.0 else 1 + int(per_octave * math.log2(value))


# The fit below runs its sums as C-level sum(map(...)) over columns instead of Python loops over points: the
# same products added in the same order, at a fraction of the interpreter's work (issue #19: the refits were
# most of the phase model's cost per call). On Python 3.11 sum() adds floats one after another, so the numbers
# are bit for bit those of the loops it replaced (bench/real's recordings replay identically); 3.12+ compensates
# float sums, which can move a last bit, as it already did in the fit's other sums.


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting on a small dense system; None if singular. ``matrix`` is
    eliminated in place (its caller builds a fresh one per solve)."""
    n = len(rhs)
    if n == 1:  # one free coefficient (one prompt size, e.g. a bench's canned calls): what the loops below compute
        head = matrix[0][0]
        return None if abs(head) < 1e-300 else [rhs[0] / head]
    m = matrix
    for row, value in zip(m, rhs, strict=True):
        row.append(value)
    for col in range(n):
        # The first row with the largest |entry| (what max() with a key picks), without a key call per row.
        pivot, size = col, abs(m[col][col])
        for r in range(col + 1, n):
            v = abs(m[r][col])
            if v > size:
                pivot, size = r, v
        if size < 1e-300:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        top = m[col]
        head = top[col]
        rest = top[col + 1 :]
        for r in range(col + 1, n):
            row = m[r]
            f = row[col] / head
            if f:
                # Column ``col`` itself is left as it is: below the diagonal, nothing reads it again.
                row[col + 1 :] = [a - f * b for a, b in zip(row[col + 1 :], rest, strict=True)]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        row = m[r]
        out[r] = (row[n] - sum(map(mul, row[r + 1 : n], out[r + 1 : n]))) / row[r]
    return out


class _Envelope:
    """Binned minima of t against features x, and the low-quantile line through them.

    Features are non-negative token counts; ``theta`` = [intercept, slope per feature]. Every
    coefficient is kept >= 0; ``cap`` pairs (i, j) keep theta[i] <= _CACHE_READ_MAX_SHARE * theta[j] (cache read).
    """

    __slots__ = (
        "_anchor", "_bins", "_cap", "_counts", "_dirty", "_last_fit", "_last_key", "_last_x", "_per_octave", "_prior",
        "_worst", "aux_floor", "count", "theta",
    )

    def __init__(self, prior_theta: list[float], per_octave: tuple[int, ...], cap: tuple[int, int] | None) -> None:
        self._prior = prior_theta
        self._per_octave = per_octave
        self._cap = cap
        # Per bin: (features, t, sequence number, aux). ``aux`` is a part of t measured on that call (the
        # request path); ``aux_floor`` is its median over the points nearest the floor.
        self._bins: dict[tuple[int, ...], list[tuple[tuple[float, ...], float, int, float]]] = {}
        self.aux_floor = 0.0
        self._counts: dict[tuple[int, ...], int] = {}  # calls seen per bin (while it lives)
        # Per full bin: (theta, index, residual) of its point farthest above the line, as the last call into the
        # bin found it. Valid while theta is that same list (a refit makes a new one) and the bin is unchanged:
        # then the next call into the bin need not recompute its points' residuals.
        self._worst: dict[tuple[int, ...], tuple[list[float], int, float]] = {}
        # The last call's features and their bin: a key's calls often repeat a size (one prompt template), and a
        # tuple comparison is cheaper than the logarithms.
        self._last_x: tuple[float, ...] = ()
        self._last_key: tuple[int, ...] = ()
        self._dirty = False
        self._anchor = 0.0
        self._last_fit = 0
        self.count = 0
        self.theta = list(prior_theta)

    def _residual(self, x: tuple[float, ...], t: float) -> float:
        r = t
        for s, v in zip(self.theta[1:], x, strict=True):  # a plain loop: a generator costs twice as much
            r -= s * v
        return r

    def add(self, x: tuple[float, ...], t: float, aux: float = 0.0, seq: int = 0) -> int:
        """Admit one call's point; returns its sequence number. ``seq``: a point added before and since lost from
        its bin, admitted again (``amend``): not counted again."""
        counted = not seq
        if counted:
            self.count += 1
            seq = self.count
        if x == self._last_x:
            key = self._last_key
        else:
            # _log_bin inlined (this runs on every call); a feature without bins of its own (0 per octave) only
            # tells sizes below one token from the rest, without a logarithm.
            key = tuple([
                0 if v < 1.0 else 1 if not p else 1 + int(p * math.log2(v))
                for v, p in zip(x, self._per_octave, strict=True)
            ])
            self._last_x, self._last_key = x, key
        bins = self._bins
        points = bins.get(key)
        counts = self._counts
        if counted:
            counts[key] = counts.get(key, 0) + 1
        if points is None:
            if len(bins) >= _MAX_BINS:
                # Evict the bin whose newest point is oldest: it describes a size no longer sent.
                stale = min(bins, key=lambda k: max(p[2] for p in bins[k]))
                del bins[stale]
                counts.pop(stale, None)
                self._worst.pop(stale, None)
            bins[key] = [(x, t, seq, aux)]
            self._dirty = True
            return seq
        if points and points[0][2] < seq - _MAX_AGE:
            points[:] = [p for p in points if p[2] >= seq - _MAX_AGE]
            self._worst.pop(key, None)
        if len(points) < _PER_BIN:
            points.append((x, t, seq, aux))
            self._dirty = True
            return seq
        theta = self.theta
        slopes = theta[1:]
        known = self._worst.get(key)
        if known is not None and known[0] is theta:
            _, worst, r_worst = known
        else:
            worst, r_worst = 0, -math.inf
            for i, (px, pt, _, _) in enumerate(points):
                r = pt
                for s, v in zip(slopes, px, strict=True):
                    r -= s * v
                if r > r_worst:
                    worst, r_worst = i, r
            self._worst[key] = (theta, worst, r_worst)
        r = t
        for s, v in zip(slopes, x, strict=True):
            r -= s * v
        if r < r_worst:
            points[worst] = (x, t, seq, aux)
            del self._worst[key]
            self._dirty = True
        return seq

    def amend(self, seq: int, x: tuple[float, ...], t: float, aux: float = 0.0) -> None:
        """Lower the point ``seq`` (features ``x``) to ``t``: in place where its bin still holds it, else admitted
        afresh as any point is (a lower time may displace its bin's worst), not counted again. Rare (once per
        learned slot count): a scan of the bins, not a binning of ``x``."""
        for key, points in self._bins.items():
            for i, p in enumerate(points):
                if p[2] == seq:
                    points[i] = (p[0], min(t, p[1]), seq, p[3])
                    self._worst.pop(key, None)
                    self._dirty = True
                    return
        if seq > self.count - _MAX_AGE:
            self.add(x, t, aux, seq)

    def _residuals(self, ts: list[float], cols: list[list[float]]) -> list[float]:
        """``_residual`` of every point, column by column (the same subtractions in the same order)."""
        res = ts
        for s, col in zip(self.theta[1:], cols, strict=True):
            res = list(map(sub, res, map(mul, repeat(s), col)))
        return res

    def refresh(self) -> bool:
        """Refit if the envelope changed (every change while young, then at most every few calls). True if it
        refitted (the coefficients may have moved)."""
        if not self._dirty:
            return False
        if self.count > _EAGER_FIT_SAMPLES and self.count - self._last_fit < _LAZY_FIT_EVERY:
            return False
        self._dirty = False
        self._last_fit = self.count
        # A full bin contributes its second-lowest point: one call that was impossibly fast (a late clock,
        # a burst) cannot pull the floor down, at the price of a floor a little above the very fastest call.
        # A bin seen only a few times has a minimum that still holds some queueing (the luckiest of two
        # calls is rarely unqueued): it weighs n / (n + _SPARSE_BIN) of a well-sampled bin.
        xs: list[tuple[float, ...]] = []
        ts: list[float] = []
        aux: list[float] = []
        trust: list[float] = []
        counts = self._counts
        residual = self._residual
        for key, pts in self._bins.items():
            if len(pts) >= _PER_BIN:
                ranks = [residual(p[0], p[1]) for p in pts]
                chosen = [pts[sorted(range(len(pts)), key=ranks.__getitem__)[1]]]
            else:
                chosen = pts
            n = counts.get(key, 1)
            weight = n / (n + _SPARSE_BIN)
            for x, t, _, a in chosen:
                xs.append(x)
                ts.append(t)
                aux.append(a)
                trust.append(weight)
        # The features as columns: the fit's sums run over them (see _solve's note).
        cols = [list(col) for col in zip(*xs, strict=True)] if xs else [[] for _ in self._per_octave]
        # A slope is told apart from the fixed overhead only when its token count varies: with one prompt
        # size the prefill slope stays at its prior, and so does the cache-read cost while every call has the
        # same cached size (hits and misses are two sizes: then the intercept's pull settles the tie).
        pinned: dict[int, float] = {}
        for i, col in enumerate(cols):
            # Bins are monotone in the count, so the smallest and the largest count tell whether two differ.
            if not col or _log_bin(min(col), 2) == _log_bin(max(col), 2):
                if i == 0:
                    # One prompt size: intercept and prefill slope are one number. The overhead's prior (a few
                    # ms on a private address, a public host's round trip) is a far safer guess than a slope
                    # derived from the model's size (off 5x for a model on a CPU), so the intercept is the one
                    # pinned, and the prompt's time is learned as its prefill.
                    pinned[0] = self._prior[0]
                else:
                    pinned[i + 1] = self._prior[i + 1]
        fitted = self._fit(ts, cols, pinned, trust)
        if fitted is None:
            return False
        self.theta = fitted[0]
        residuals = self._residuals(ts, cols)
        self.aux_floor = self._floor_aux(residuals, aux)
        return True

    def _floor_aux(self, residuals: list[float], aux: list[float]) -> float:
        """The lower quartile of ``aux`` over the half of the fitted points nearest the floor.

        Calls on the floor did the same work in the same time, so their true request paths are alike and
        what varies is the stamp: send -> headers is mostly stretched (the client stamping the headers late
        while the server already works, so the call still makes the floor). Hence a low quantile, not a
        mean, and not weighted by the fit's weights (which pile onto the one or two points nearest the
        line): late stamps must not move into every call's split. Not the minimum either: a send stamped
        late shortens it. ``residuals``: each point's ``_residual`` on the fitted line.
        """
        if not residuals:
            return 0.0
        ranked = sorted(range(len(residuals)), key=residuals.__getitem__)
        near = sorted([aux[i] for i in ranked[: max(1, (len(ranked) + 1) // 2)]])
        return near[len(near) // 4]

    def points(self) -> Iterable[tuple[tuple[float, ...], float]]:
        for pts in self._bins.values():
            for x, t, _, _ in pts:
                yield x, t

    def points_aux(self) -> Iterable[tuple[tuple[float, ...], float, float]]:
        for pts in self._bins.values():
            for x, t, _, a in pts:
                yield x, t, a

    def _fit(
        self, ts: list[float], cols: list[list[float]], pinned: dict[int, float], trust: list[float]
    ) -> tuple[list[float], list[float]] | None:
        """(theta, final weights): a low-quantile regression (tau = _TAU) by iteratively reweighted least
        squares. Absolute, not squared, loss: one call that queued for a second cannot tilt the floor.
        ``ts``: the points' times; ``cols``: their features, one list per feature. None if singular."""
        n = len(ts)
        if not n:
            return None
        # Scale of each feature, so the prior's pull is "a fraction of one typical point" whatever the units.
        scale = [1.0] + [max(1.0, sum(col) / n) for col in cols]
        # The design matrix's columns (a leading 1 for the intercept), raw and divided by their scale: both
        # stay the same through the reweighting, so they are built once per fit, not once per round and point.
        raw = [[1.0] * n, *cols]
        scaled = [raw[0]] + [[v / s for v in col] for col, s in zip(cols, scale[1:], strict=True)]
        rests: dict[tuple[tuple[int, float], ...], list[float]] = {}
        weights = list(trust)
        theta = list(self._prior)
        previous: list[float] | None = None
        below = 1.0 - _TAU  # the reweighting's side for points on or below the line (read here: tuning sets _TAU)
        for _ in range(_FIT_ITERATIONS):
            # The intercept's L1 pull, as a pseudo-observation in the reweighting (see _INTERCEPT_PULL).
            self._anchor = _INTERCEPT_PULL / max(abs(theta[0]), 10 * _QUANTILE_EPS_S)
            solved = self._weighted_solve(ts, raw, scaled, weights, scale, pinned, rests)
            if solved is None:
                return None
            theta = solved
            # t - theta[0] - (theta[1] * x[0] + theta[2] * x[1] + ...), per point.
            terms = [map(mul, repeat(s), col) for s, col in zip(theta[1:], cols, strict=True)]
            fitted = map(sum, zip(*terms, strict=True))
            residuals = list(map(sub, map(sub, ts, repeat(theta[0])), fitted))
            eps = max(_QUANTILE_EPS_S, 0.01 * sorted(map(abs, residuals))[n // 2])
            weights = [
                (_TAU if r > 0 else below) * tr / max(abs(r), eps)
                for r, tr in zip(residuals, trust, strict=True)
            ]
            # Converged: another reweighting would move no coefficient by a part in a million. (The reweighting
            # of a quantile fit often alternates between two vertices, so most fits still take all 12 rounds.)
            if previous is not None and all(
                abs(new - old) <= 1e-6 * abs(new) + 1e-12 for new, old in zip(theta, previous, strict=True)
            ):
                break
            previous = theta
        return theta, weights

    def _weighted_solve(
        self,
        ts: list[float],
        raw: list[list[float]],
        scaled: list[list[float]],
        weights: list[float],
        scale: list[float],
        pinned: dict[int, float],
        rests: dict[tuple[tuple[int, float], ...], list[float]],
    ) -> list[float] | None:
        """One weighted least-squares solve, with an active set for the sign constraints. ``rests`` caches,
        per set of fixed coefficients, what of each t they leave to the free ones (it does not depend on the
        weights, so the rounds of one fit share it)."""
        dims = len(self._prior)
        fixed = dict(pinned)
        for _ in range(dims + 1):  # active set: pin negative coefficients to 0 and solve again
            free = [i for i in range(dims) if i not in fixed]
            token = tuple(fixed.items())
            rest = rests.get(token)
            if rest is None:
                # t - sum(value * x_i over the fixed coefficients), per point.
                if fixed:
                    pinned_terms = [map(mul, repeat(value), raw[i]) for i, value in token]
                    rest = list(map(sub, ts, map(sum, zip(*pinned_terms, strict=True))))
                else:
                    rest = ts
                rests[token] = rest
            # Normal equations in features divided by their typical size: token counts span 1..1e6 and the
            # reweighting spans 1e5, so unscaled normal equations lose precision. Entry (r, c) sums
            # w * x_r * x_c over the points in their order.
            weighted = [list(map(mul, weights, scaled[i])) for i in free]
            b = [sum(map(mul, wr, rest)) for wr in weighted]
            a = [[sum(map(mul, wr, scaled[i])) for i in free] for wr in weighted]
            # A whisper of the prior keeps the system solvable; identifiability is handled by pinning.
            lam = _PRIOR_WEIGHT * max((a[r][r] for r in range(len(free))), default=0.0)
            for r, i in enumerate(free):
                a[r][r] += lam
                b[r] += lam * self._prior[i] * scale[i]
                if i == 0:
                    a[r][r] += self._anchor  # the intercept's pull toward 0 (target 0: nothing added to b)
            solved = _solve(a, b) if free else []
            if solved is None:
                return None
            solved = [v / scale[i] for v, i in zip(solved, free, strict=True)]
            theta = [0.0] * dims
            for i, value in fixed.items():
                theta[i] = value
            for r, i in enumerate(free):
                theta[i] = solved[r]
            negative = [i for i in free if theta[i] < 0.0]
            if not negative:
                if self._cap is not None:
                    lo, hi = self._cap
                    theta[lo] = min(theta[lo], _CACHE_READ_MAX_SHARE * theta[hi])
                return theta
            fixed.update(dict.fromkeys(negative, 0.0))
        return None


class _LowRing:
    """The last few values of a per-call measurement, a low percentile of them and their second-lowest.

    ``values`` is the ring (oldest overwritten first); ``_ordered`` the same values kept sorted as they come and
    go (a bisect and a short memmove per value), so reading the percentile is an index, not a sort per change."""

    __slots__ = ("_low_at", "_ordered", "_quantile", "n", "values")

    def __init__(self, quantile: float) -> None:
        self._quantile = quantile
        self.values: list[float] = []
        self._ordered: list[float] = []
        self._low_at = 0  # where the percentile sits in ``_ordered``: it moves only while the ring fills
        self.n = 0

    def add(self, value: float) -> None:
        values, ordered = self.values, self._ordered
        if len(values) < _RING:
            values.append(value)
            self._low_at = int(self._quantile * (len(values) - 1))  # len(values) == len(ordered) after insort
        else:
            slot = self.n % _RING
            del ordered[bisect_left(ordered, values[slot])]
            values[slot] = value
        insort(ordered, value)
        self.n += 1

    def low(self) -> float | None:
        ordered = self._ordered
        return ordered[self._low_at] if ordered else None

    def second_lowest(self) -> float | None:
        """The second-lowest value (None below two): the fastest seen, but never one outlier alone."""
        ordered = self._ordered
        return ordered[1] if len(ordered) >= 2 else None


class _KeyState:
    __slots__ = (
        "cached_tokens", "coefficients", "cpt", "cpt_chars", "cpt_n", "cpt_tokens", "ctx_cov", "ctx_mean", "ctx_n",
        "ctx_tpot", "ctx_var", "header_votes", "pending", "prior", "tail_ring", "total", "tpot", "tpot_ctx", "tpot_n",
        "tpot_ring", "ttft", "tu_max", "tu_min", "u_max", "u_min",
    )

    def __init__(self, p: Prior) -> None:
        self.prior = p
        # What Calibrator.coefficients last returned, until anything it is built from changes (every observe_*
        # and a refit clear it): a call without usage asks twice in a row (its input-token estimate, then split).
        self.coefficients: Coefficients | None = None
        # TTFT envelope: [overhead, s/uncached token, s/cached token, s per unit of attention work]; bins
        # 2/octave on uncached, 1 on cached, none of their own on the attention work (it follows the two).
        self.ttft = _Envelope(
            [p.overhead_s, p.prefill_s_per_token, p.cache_read_s_per_token, 0.0], (2, 1, 0), (2, 1)
        )
        # Total-time envelope of non-streaming calls: + s/output token (bins 1/octave on output).
        self.total = _Envelope(
            [p.overhead_s, p.prefill_s_per_token, p.cache_read_s_per_token, p.time_per_output_token_s, 0.0],
            (2, 1, 1, 0),
            (2, 1),
        )
        self.tpot = p.time_per_output_token_s
        self.tpot_n = 0
        # Time per output token of recent streams: not the minimum, because chunks read in one burst make
        # a single stream look impossibly fast.
        self.tpot_ring = _LowRing(0.2)
        self.tpot_ctx = 0.0  # the context of ``tpot``'s streams (same weighting)
        # The regression of time per output token on context (_TPOT_CTX_ALPHA): weighted means and (co)variance.
        self.ctx_n = 0
        self.ctx_mean = self.ctx_tpot = self.ctx_var = self.ctx_cov = 0.0
        self.tail_ring = _LowRing(0.2)  # non-streaming residuals against the stream model (see Coefficients)
        self.header_votes = 0
        self.u_min = math.inf
        self.u_max = 0.0
        self.tu_min = math.inf  # the same for the non-streaming envelope
        self.tu_max = 0.0
        self.cpt = DEFAULT_CHARS_PER_TOKEN
        self.cpt_n = 0
        self.cpt_chars = 0.0  # decayed sums of prompt characters and input tokens of calls that reported both
        self.cpt_tokens = 0.0
        self.cached_tokens = 0.0  # the same sum of those calls' cached input tokens
        # Points taught with an unknown own wait in them (Calibrator.settle): (envelope, seq, features, time, aux,
        # the wait each slot count 1, 2, ... implies). Made on the first such call.
        self.pending: deque[tuple[_Envelope, int, tuple[float, ...], float, float, tuple[float, ...]]] | None = None


def _snapshot(state: _KeyState) -> Coefficients:
    """The key's Coefficients now. Built positionally, in field order, straight through tuple.__new__: a keyword
    call of 26 fields costs several times as much as the tuple it makes, and this runs for every call (issue #19).
    A field added to Coefficients must be added here, in its place (see the check below the function)."""
    p = state.prior
    ttft, total = state.ttft, state.total
    overhead, prefill, cache_read, per_kpair = ttft.theta
    t_overhead, t_prefill, t_cache_read, t_per_output, t_per_kpair = total.theta
    n, tn = ttft.count, total.count
    spread = state.u_max / max(state.u_min, 1.0) if n else 1.0
    t_spread = state.tu_max / max(state.tu_min, 1.0) if tn else 1.0
    votes = state.header_votes
    return tuple.__new__(Coefficients, (
        overhead,  # overhead_s
        prefill,  # prefill_s_per_token
        cache_read,  # cache_read_s_per_token
        state.tpot,  # time_per_output_token_s
        state.tpot_ring.low(),  # tpot_floor_s
        ttft.aux_floor,  # overhead_request_path_s
        n,  # samples
        state.tpot_n,  # tpot_samples
        tn,  # total_samples
        _confidence(n, p.confidence, spread),  # confidence
        t_overhead,  # total_overhead_s
        t_prefill,  # total_prefill_s_per_token
        t_cache_read,  # total_cache_read_s_per_token
        t_per_output,  # total_s_per_output_token
        _confidence(tn, p.confidence, t_spread),  # total_confidence
        (state.u_min if n else 0.0, state.u_max),  # uncached_range
        None if votes == 0 else votes > 0,  # headers_early
        p,  # prior
        state.tail_ring.low() if state.tail_ring.n >= _TAIL_MIN_CALLS else None,  # nonstream_tail_s
        state.tpot_ring.second_lowest(),  # step_floor_s
        per_kpair,  # prefill_s_per_kpair
        t_per_kpair,  # total_prefill_s_per_kpair
        state.cpt,  # chars_per_token
        state.cpt_n,  # chars_per_token_samples
        state.tpot_ctx,  # tpot_context_tokens
        _ctx_slope(state),  # tpot_s_per_ktoken
        state.cached_tokens / state.cpt_tokens if state.cpt_tokens > 0.0 else 0.0,  # cached_share
    ))


def _ctx_slope(state: _KeyState) -> float:
    """Seconds per output token per 1,000 tokens of context, from the key's streams (never negative); 0 before
    _TPOT_CTX_MIN streams or while their contexts have not varied."""
    if state.ctx_n < _TPOT_CTX_MIN or state.ctx_var <= 0.0:
        return 0.0
    return max(0.0, state.ctx_cov / state.ctx_var) * 1000.0


assert len(Coefficients._fields) == 27, "Coefficients changed: build the new field in _snapshot"


def _confidence(samples: int, base: float, spread: float) -> float:
    """Grows from the prior's confidence to ~0.9 with samples; halved while all sizes look alike."""
    if samples <= 0:
        return base
    learned = 0.9 * samples / (samples + 30.0)
    coverage = 1.0 if spread >= 4.0 else 0.5 + 0.5 * max(0.0, math.log2(max(spread, 1.0))) / 2.0
    return max(base, learned * coverage)


def _keep_pending(
    state: _KeyState, envelope: _Envelope, seq: int, x: tuple[float, ...], t: float, aux: float,
    waits: tuple[float, ...],
) -> None:
    if state.pending is None:
        state.pending = deque(maxlen=_PENDING)
    state.pending.append((envelope, seq, x, t, aux, waits))


def _observe_context(state: _KeyState, context: float, tpot_s: float) -> None:
    """One stream's (context, time per output token) into the key's weighted regression (see _TPOT_CTX_ALPHA)."""
    state.tpot_ctx = context if state.tpot_n <= 1 else state.tpot_ctx + _TPOT_ALPHA * (context - state.tpot_ctx)
    # Clipped against what the regression expects at this context (a long prompt's step is several idle steps on a
    # small model: clipping against the idle step alone flattened the slope, 6.95 against 7.58 ms per 1,000 tokens
    # on the simulator's idle scenario), or the idle step while there is no slope yet.
    expected = state.tpot_ring.low() or 0.0
    if state.ctx_n >= 2 and state.ctx_var > 0.0:
        expected = max(expected, state.ctx_tpot + max(0.0, state.ctx_cov / state.ctx_var) * (context - state.ctx_mean))
    y = min(tpot_s, _TPOT_CTX_CLIP * expected) if expected > 0.0 else tpot_s
    if state.ctx_n == 0:
        state.ctx_mean, state.ctx_tpot = context, y
    else:
        a = _TPOT_CTX_ALPHA
        dx, dy = context - state.ctx_mean, y - state.ctx_tpot
        state.ctx_mean += a * dx
        state.ctx_tpot += a * dy
        state.ctx_var = (1.0 - a) * (state.ctx_var + a * dx * dx)
        state.ctx_cov = (1.0 - a) * (state.ctx_cov + a * dx * dy)
    state.ctx_n += 1


class Calibrator:
    """Bounded per-key learner. ``observe_*`` teach it; ``coefficients`` reads it. Never raises."""

    def __init__(self, max_keys: int = 128, state_path: str | None = None) -> None:
        self._keys: OrderedDict[Key, _KeyState] = OrderedDict()
        self._max_keys = max(1, max_keys)
        self._lock = forksafe.lock(self)
        self._state_path: str | None = None
        self._unsaved = 0
        if state_path:
            self.load(state_path)
        self._state_path = state_path

    def __len__(self) -> int:
        return len(self._keys)

    def _state(self, key: Key) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = _KeyState(prior(key[2], key[1]))
            self._keys[key] = state
            if len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        return state

    def observe_stream(
        self, key: Key, uncached: int, cached: int, ttft_s: float, tpot_s: float | None,
        headers_early: bool | None = None, request_path_s: float | None = None, context: float | None = None,
        waits: tuple[float, ...] | None = None,
    ) -> None:
        """Teach one streaming call: its TTFT (send -> first content), time per output token, whether
        headers came before the server worked and, if so, send -> headers (the request path); ``context``: the
        tokens its decode attended over (prompt + half its output), for the time per token's growth with it;
        ``waits``: where the TTFT holds a wait behind own calls that is not known yet, the wait each slot count
        implies (``settle`` takes it out later)."""
        if not (ttft_s >= 0.0 and math.isfinite(ttft_s)):
            return
        with self._lock:
            state = self._state(key)
            state.coefficients = None
            if headers_early is not None:
                vote = state.header_votes + (1 if headers_early else -1)
                state.header_votes = max(-_HEADER_VOTES, min(_HEADER_VOTES, vote))
            if request_path_s is not None and not (request_path_s >= 0.0 and math.isfinite(request_path_s)):
                request_path_s = None
            u, c = float(max(uncached, 0)), float(max(cached, 0))
            x = (u, c, attention_work(u, c))
            seq = state.ttft.add(x, ttft_s, request_path_s or 0.0)
            if waits:
                _keep_pending(state, state.ttft, seq, x, ttft_s, request_path_s or 0.0, waits)
            size = float(uncached)
            if size < state.u_min:  # min() and max() without their calls
                state.u_min = size
            if size > state.u_max:
                state.u_max = size
            if tpot_s is not None and tpot_s >= 0.0 and math.isfinite(tpot_s):
                state.tpot = tpot_s if state.tpot_n == 0 else state.tpot + _TPOT_ALPHA * (tpot_s - state.tpot)
                state.tpot_ring.add(tpot_s)
                state.tpot_n += 1
                if context is not None and context >= 0.0 and math.isfinite(context):
                    _observe_context(state, context, tpot_s)
        if self._state_path:
            self._maybe_save()

    def observe_total(
        self, key: Key, uncached: int, cached: int, output: int, total_s: float, tail_s: float | None = None,
        waits: tuple[float, ...] | None = None,
    ) -> None:
        """Teach one non-streaming call: send -> body read, with its token counts, and (for keys that stream)
        ``tail_s``: the total minus what the stream model predicts for it without queueing; ``waits`` as for
        ``observe_stream``."""
        if not (total_s >= 0.0 and math.isfinite(total_s)):
            return
        with self._lock:
            state = self._state(key)
            state.coefficients = None
            if tail_s is not None and math.isfinite(tail_s):
                state.tail_ring.add(tail_s)
            u, c = float(max(uncached, 0)), float(max(cached, 0))
            x = (u, c, float(max(output, 0)), attention_work(u, c))
            seq = state.total.add(x, total_s)
            if waits:
                _keep_pending(state, state.total, seq, x, total_s, 0.0, waits)
            size = float(uncached)
            if size < state.tu_min:
                state.tu_min = size
            if size > state.tu_max:
                state.tu_max = size
        if self._state_path:  # _maybe_save's own test, without its call
            self._maybe_save()

    def settle(self, key: Key, slots: int) -> None:
        """The server's slot count is known now (own_queue.py; more than any candidate: no own wait): take the
        wait it implies out of the points taught while it was not. Without this, a key whose callers all share a
        few slots learns its floor from calls that all waited, for as long as those points live: bench/real's two
        slots with four whole-body callers, 24 of the first 40 calls taught so, read prefill at twice the
        server's on half the scored calls of one run (seed 17: p90 35.8 % of TTFT)."""
        with self._lock:
            state = self._keys.get(key)
            if state is None or not state.pending:
                return
            pending = state.pending
            for envelope, seq, x, t, aux, waits in pending:
                wait = waits[slots - 1] if slots <= len(waits) else 0.0
                if 0.0 < wait < t:
                    envelope.amend(seq, x, t - wait, aux)
            pending.clear()
            state.coefficients = None

    def unsettled(self, key: Key) -> bool:
        """Whether the key holds points with an own wait not yet taken out (``settle``)."""
        state = self._keys.get(key)
        return state is not None and bool(state.pending)

    def observe_prompt_size(self, key: Key, chars: int, input_tokens: int, cached_tokens: int = 0) -> None:
        """Teach one call that reported its input tokens: how many prompt characters make a token here, and how
        many of its tokens the server had cached. The count includes the chat template's tokens, so the ratio
        carries them too."""
        if chars <= 0 or input_tokens <= 0:
            return
        with self._lock:
            state = self._state(key)
            state.coefficients = None
            # A ratio of (slowly forgotten) sums, not a mean of ratios: long prompts, whose prefill matters, weigh
            # by their size, and a short prompt's chat-template tokens cannot swing it.
            keep = 1.0 - _CPT_ALPHA
            state.cpt_chars = state.cpt_chars * keep + chars
            state.cpt_tokens = state.cpt_tokens * keep + input_tokens
            state.cached_tokens = state.cached_tokens * keep + min(max(cached_tokens, 0), input_tokens)
            state.cpt = state.cpt_chars / state.cpt_tokens
            state.cpt_n += 1

    def coefficients(self, key: Key) -> Coefficients:
        with self._lock:
            state = self._state(key)
            ttft, total = state.ttft, state.total
            # refresh() does nothing unless its envelope changed: then its call is skipped (this runs every call).
            refit = ttft._dirty and ttft.refresh()
            if (total._dirty and total.refresh()) or refit:
                state.coefficients = None
            co = state.coefficients
            if co is None:
                co = state.coefficients = _snapshot(state)
            return co

    def prefill_rates(self) -> list[tuple[Key, float]]:
        """(key, learned prefill s/token) for every key with streaming samples; for the gauge."""
        with self._lock:
            out = []
            for key, state in self._keys.items():
                if state.ttft.refresh():
                    state.coefficients = None
                if state.ttft.count:
                    out.append((key, state.ttft.theta[1]))
            return out

    # --- opt-in persistence -------------------------------------------------------------------

    def _maybe_save(self) -> None:
        if not self._state_path:
            return
        self._unsaved += 1
        if self._unsaved >= _SAVE_EVERY:
            self.save(self._state_path)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            keys = []
            for key, state in self._keys.items():
                keys.append(
                    {
                        "key": list(key),
                        "ttft": [[list(x), t, a] for x, t, a in state.ttft.points_aux()],
                        "total": [[list(x), t] for x, t in state.total.points()],
                        "tpot": state.tpot,
                        "tpot_n": state.tpot_n,
                        "tpot_ring": list(state.tpot_ring.values),
                        "tail_ring": list(state.tail_ring.values),
                        "header_votes": state.header_votes,
                        "chars_per_token": [state.cpt, state.cpt_n],
                        "ttft_count": state.ttft.count,
                        "total_count": state.total.count,
                    }
                )
            return {"version": _STATE_VERSION, "keys": keys}

    def save(self, path: str) -> None:
        """Write the learned points atomically (temp file + rename). Never raises."""
        try:
            data = json.dumps(self.to_json(), separators=(",", ":"))
            directory = os.path.dirname(os.path.abspath(path))
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".llmotel-phase-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                f.write(data)
            os.replace(tmp, path)
            self._unsaved = 0
        except Exception:
            _log.debug("llmotel: could not save phase model state to %s", path, exc_info=True)

    def load(self, path: str) -> None:
        """Re-teach points from a state file; a missing or malformed file is ignored. Never raises."""
        try:
            with open(path) as f:
                data = json.load(f)
            if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
                return
            for entry in data.get("keys", [])[-self._max_keys :]:
                raw_key = entry["key"]
                if not (isinstance(raw_key, list) and len(raw_key) == 4):
                    continue
                key: Key = (str(raw_key[0]), str(raw_key[1]), str(raw_key[2]), str(raw_key[3]))
                tpot_n = int(entry.get("tpot_n", 0))
                tpot = float(entry.get("tpot", 0.0))
                rings = {}
                for name in ("tpot_ring", "tail_ring"):
                    values = [float(v) for v in entry.get(name, []) if isinstance(v, (int, float))]
                    # A residual may be negative (a call a little faster than the model); a time per token not.
                    rings[name] = [v for v in values if math.isfinite(v) and (v >= 0.0 or name == "tail_ring")]
                    rings[name] = rings[name][:_RING]
                for point in entry.get("ttft", []):
                    x, t = point[0], point[1]
                    request_path = float(point[2]) if len(point) > 2 else None
                    self.observe_stream(key, int(x[0]), int(x[1]), float(t), None, None, request_path)
                for x, t in entry.get("total", []):
                    self.observe_total(key, int(x[0]), int(x[1]), int(x[2]), float(t))
                if tpot_n > 0 and math.isfinite(tpot) and tpot >= 0.0:
                    with self._lock:
                        state = self._state(key)
                        state.coefficients = None
                        state.tpot, state.tpot_n = tpot, tpot_n
                with self._lock:
                    state = self._state(key)
                    state.coefficients = None  # set below, not through observe_*
                    for value in rings["tpot_ring"]:
                        state.tpot_ring.add(value)
                    for value in rings["tail_ring"]:
                        state.tail_ring.add(value)
                    for envelope, name in ((state.ttft, "ttft_count"), (state.total, "total_count")):
                        count = entry.get(name, 0)
                        if isinstance(count, int) and count > envelope.count:
                            envelope.count = count  # calls learned from, not just the points kept
                    votes = entry.get("header_votes", 0)
                    if isinstance(votes, int):
                        state.header_votes = max(-_HEADER_VOTES, min(_HEADER_VOTES, votes))
                    cpt = entry.get("chars_per_token")
                    if isinstance(cpt, list) and len(cpt) == 2 and isinstance(cpt[1], int) and cpt[1] > 0:
                        ratio = float(cpt[0])
                        if math.isfinite(ratio) and ratio > 0.0:
                            state.cpt, state.cpt_n = ratio, cpt[1]
                            state.cpt_chars, state.cpt_tokens = ratio, 1.0
        except FileNotFoundError:
            return
        except Exception:
            _log.debug("llmotel: ignoring unreadable phase model state %s", path, exc_info=True)
