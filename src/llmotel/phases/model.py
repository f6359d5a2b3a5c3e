"""The phase model: turn one call's capture (+ what the server said) into tiling phases.

Contract (telemetry/spans.py relies on it):
- ``PhaseModel.split`` returns phases in order [retries?], queue, prefill, first_token, decode whose
  intervals are contiguous: the first starts at ``capture.start_ns``, each starts where the previous
  ended, the last ends at ``capture.end_ns``. Durations are >= 0.
- Each phase says its source: ``server`` (reported by the server), ``client`` (measured between two
  observed events, or a measured interval minus server-reported parts) or ``estimated`` (inferred by
  the model; ``confidence`` < 1). ``samples`` says how many calls of the key the model had learned from.
- Never raises for odd input (missing usage, zero-length calls, clocks that went backwards).

Method (long form, with when not to trust it: docs/phases.md):
- TTFT (attempt sent -> first content chunk) = queue + prefill + first_token, where first_token is
  "end of prefill -> first content chunk": the first decode step plus network and framing overhead.
- Streams measure TTFT and decode directly. Server-reported parts are used exactly; the rest of TTFT
  is split with the learned lower envelope (learner.py): prefill = a*uncached + k*cached,
  first_token = fixed overhead (where headers come early: at most one decode step as recent streams
  measured it plus the request path, the round trip that bounds the way back), and queue = what is left,
  clipped at zero.
- Non-streaming calls see only the total: decode is estimated from the time per output token that
  streams of the same key taught (or the server's, or the non-streaming envelope's, or the prior),
  plus the body's learned tail after the last token, and the remainder is split as above.
"""

from __future__ import annotations

import atexit
import logging
import math
import sys
from typing import Any

from llmotel import config, forksafe
from llmotel.phases.learner import Calibrator, Coefficients, Key, attention_work, cache_read_at_cap
from llmotel.phases.own_queue import MAX_SLOTS, SlotCounts, ceiling_ns, implied_waits_s
from llmotel.phases.passes import MAX_TOLERANCE_S, OPEN, TOLERANCE_STEP_SHARE, PassBook
from llmotel.phases.prefix_book import PrefixBook
from llmotel.phases.residuals import Residuals
from llmotel.record import CallCapture, LLMRequest, LLMResponse, Phase, PhaseSource, ServerTiming

_log = logging.getLogger(__name__)

_NS = 1e9
# Below this many streaming samples of a key, non-streaming calls use the non-streaming envelope.
_MIN_STREAM_SAMPLES = 10
_EXTRAPOLATION_PENALTY = 0.7
_ESTIMATED_TOKENS_PENALTY = 0.7  # input tokens estimated from the prompt's characters (no usage reported)
# Headers count as "sent on arrival" when at least this share of TTFT lies between them and the first chunk.
_EARLY_HEADERS_SHARE = 0.25
_DERIVED_CONFIDENCE = 0.9  # a server-reported sum minus measured parts and one estimated decode step
# Interval widths (see _intervals): relative error of the envelope's prefill at full confidence, its growth
# as confidence falls, the share of an estimated queue that may be prefill stretched by other work, and how far
# below the estimate the prefill may lie as a multiple of how far above it the key's calls run (``excess``,
# residuals.py). Chosen by bench/real/interval_grid.py on the recorded llama.cpp runs (53 workload runs of seeds
# 7-9 replayed) together with the simulator's scenarios (one bench/phase_accuracy.py run captured the same way):
# the most runs whose mean queue/prefill coverage lies within 75-90 %, then the fewest below (docs/phases.md).
_REL_ERROR = 0.0
_REL_ERROR_COLD = 0.3
_STRETCH_SHARE = 0.1
_EXCESS_BELOW = 0.5
_TYPICAL_RUN_CAP = 0.2  # the most of a call's prefill its key's typical run above the floor may add (_book_typical_run)
# The same for a whole body's decode, as a share of the smaller of its decode and its prefill (_book_typical_decode).
_TYPICAL_DECODE_CAP = _TYPICAL_RUN_CAP
# The true queue against the wait own calls imply (bench/real, llama.cpp, 1-2 slots, 2-4 callers): a median 2-5 ms
# and a p90 6-16 ms above it (the server's turnaround between one request and the next, and the step under way when
# a slot freed), rarely more than a request path below. The interval's high side: a turnaround of 5 ms and half a
# decode step (chosen on seeds 4-5 of the recordings among 0-10 ms and 0-2 steps: 12 of 14 multi-caller workload
# runs within 75-90 % coverage; one_prompt_size sits 5 ms above the wait on every call, so it is 100 % or 0 %).
_OWN_TURNAROUND_S = 0.005
_OWN_STEPS = 0.5
# The low side where headers come late and the request path is not measured, in decode steps (seed 6's
# prefix_cache_2_callers, headers with the first token: the true queue 2-3 ms below the wait on many calls; queue
# coverage 37 % at a quarter step, 63 % at half, 70 % at one; no other workload moved below 75 %).
_OWN_PATH_STEPS = 0.5
# Where the call's prompt hit the server's prefix cache, the true queue may also hold the restore of that cached
# prefix, which the fit books as prefill: llama.cpp with one slot and two alternating callers saves the slot's state
# to its host-memory prompt cache and loads the next caller's before it starts the prompt (bench/real, 2026-12-07: a
# held-out trial of two callers in multi-turn chats, 4,000-6,000 cached tokens, true queue 10-47 ms above the
# wait on a third of the calls; coverage 65 / 63 %). The band's high side reaches over this share of a token's
# prefill per cached token (or the fit's own cache-read cost, if higher): half the learner's cap on a cached
# token's read (learner.py). 2.5 %: that trial 93 / 93 %, seed 13's prefix_cache_2_callers 73 -> 77 %; 1.25 %:
# 87 / 82 % and 73 % (seeds 11-14 and that trial's 8 workloads replayed, 84 runs: 43 within 75-90 %, 38 above, 3 below
# at 2.5 %; 44, 35 and 5 without it).
_RESTORE_SHARE = 0.025
_OWN_PATHS = 1.5  # the low side, in measured request paths (the simulator's full batch: 66 % coverage at 1, 89 at 1.5)
# A call whose fitted queue exceeds the own wait by at most this share of its fitted prefill was served when its
# blocker ended: the excess is the prompt running above the fit's floor (bench/real: 0.1 took the own-wait
# workloads' queue error from p90 1.4-6.7 % to 0.5-6.7 % of TTFT, median <= 1.6 %; 0.05 left the floor's excess).
_OWN_PREFILL_SLACK = 0.1
# Up to this share the excess is still taken for the prompt running above its floor, but the interval keeps the
# fit's split too (another client's short call ahead looks the same to the client). The floor is a key's
# second-fastest call in its size's bin, so a typical call runs above it by what the server's prefill scatter puts
# between the two: about exp(2.3 sigma) - 1 over ~100 calls, 0.35 at sigma 0.13 (bench/real/scatter.py: sigma
# 0.04-0.18 in the recorded single-caller runs). Where every call of a key waits behind an own one, no call ever
# teaches the key's typical run (residuals.py learns it from solo calls): bench/real seed 21's one_prompt_size, two
# callers on one slot, ~800-token prompts, the excess 0.05-0.38 of the prefill and all of it booked as queue at
# 0.1 (queue median 10.8 % of TTFT, +167 ms).
_OWN_PREFILL_RUN = 0.35
# A whole body's estimated decode (the streams' time per token x its tokens) may be off by this share of itself: on
# its prefill interval where the queue is the own wait (bench/real one_slot_4_callers_mixed, seeds 6-7 replayed:
# prefill coverage 62 / 55 % without it, 72 / 62 % at 5 %, 82 / 73 % at 10 %, 83 / 83 % at 15 %, 87 / 88 % at 20 %).
_DECODE_SPREAD = 0.15
# The same where the key never streams and its decode comes from the total-time envelope's output slope (the same
# replays, one_slot_4_callers_non_streaming: prefill coverage 73 / 83 / 77 % at 15 %, 80 / 88 / 80 at 25 %, 87 / 90
# / 85 at 35 %, 93 / 100 / 90 at 50 %).
_TOTAL_DECODE_SPREAD = 0.35
# The first chunk's way back as a share of the request path where headers come on arrival: that path (send ->
# headers) is a round trip plus the server's handling of the request, the way back one trip. On loopback the way back
# was 0.8 ms against a 1.6-2.5 ms path on bench/real's llama.cpp behind its proxy (seed 15), 0.5 ms against 2.6 on
# the simulator. The whole path (until session 14) read the first token 2 ms long on 6-10 ms TTFTs:
# bench/sim_trials.py's three pausing callers, queue p90 23.1-26.8 -> 14.1 % of TTFT, coverage 65-72 -> 85 %; the
# simulator's idle (seed 1) 18.9 -> 11.1 %, steady_load (seed 2, the same run before and after) 13.3 -> 10.7 %,
# coverage 73 / 79 -> 83 / 82 %.
# bench/real: no workload's median or p90 moved by more than 0.3 points (its early-header floors hold ~0 path).
_WAY_BACK_SHARE = 0.5
# The share of a stream's floor prefill its prompt surely took after its slot freed, in the slot test: the floor is a
# low quantile of the key's calls, so most prompts take longer; half leaves room for a scattering server and for the
# client seeing the slot's previous call end a little after the server freed it.
_SLOT_TEST_PREFILL_SHARE = 0.5
_SAMPLING_SHARE_8B = 0.066  # the output layer's share of a decode step on Llama-3.1-8B (see _sampling_share)
_SAMPLING_SPREAD = 0.3  # an estimated sampling may be off by this multiple of itself (_sampling_spread)


def _clamp(value: int, low: int, high: int) -> int:
    return low if value < low else high if value > high else value


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value >= 0.0 else None


class _Window:
    """queue / prefill / first_token durations (s) of the span before decode, with sources."""

    __slots__ = ("decoded", "f", "f_src", "moved", "own", "p", "p_src", "q", "q_src", "slots")

    def __init__(self) -> None:
        self.q = self.p = self.f = 0.0
        # Queue booked as prefill (by _book_typical_run, or by _at_least beyond the slack): the interval reaches back
        # over it.
        self.moved = 0.0
        self.decoded = 0.0  # queue booked as a whole body's decode by _book_typical_decode: the same
        self.own = False  # the queue is the wait the app's own calls imply (own_queue.py), not the fit's remainder
        self.slots = 0  # a whole body that shared its batches with own calls on a server of this many slots (>= 2)
        self.q_src: PhaseSource = "estimated"
        self.p_src: PhaseSource = "estimated"
        self.f_src: PhaseSource = "estimated"


def split_window(
    window_s: float,
    queue_srv: float | None,
    prefill_srv: float | None,
    prefill_est: float,
    first_token_est: float,
    server_bound_s: float | None,
    remainder_source: PhaseSource,
) -> _Window:
    """Split a measured interval into queue + prefill + first_token that add up to it exactly.

    Server-reported parts are used as reported (only shrunk if they exceed the interval); the model
    fills the rest; queue is what the model does not explain, clipped at zero. ``server_bound_s``
    (openai-processing-ms) caps queue + prefill. ``remainder_source`` labels first_token when both
    queue and prefill came from the server (the measured interval minus reported parts).
    """
    w = _Window()
    t = max(window_s, 0.0)
    prefill_est = max(prefill_est, 0.0)
    first_token_est = max(first_token_est, 0.0)
    if queue_srv is not None and prefill_srv is not None:
        w.q = min(queue_srv, t)
        w.p = min(prefill_srv, t - w.q)
        w.q_src = w.p_src = "server"
        w.f_src = remainder_source
    elif prefill_srv is not None:
        w.p = min(prefill_srv, t)
        w.q = max(0.0, t - w.p - first_token_est)
        w.p_src = "server"
    elif queue_srv is not None:
        w.q = min(queue_srv, t)
        rest = t - w.q
        model = prefill_est + first_token_est
        w.p = rest * prefill_est / model if model > 0 else 0.0
        w.q_src = "server"
    else:
        w.q = max(0.0, t - prefill_est - first_token_est)
        rest = t - w.q
        model = prefill_est + first_token_est
        w.p = prefill_est if model <= rest else (rest * prefill_est / model if model > 0 else 0.0)
    if server_bound_s is not None and w.q_src != "server":
        # The server cannot have queued and prefilled for longer than it says it worked.
        w.q = min(w.q, max(0.0, server_bound_s - w.p))
    w.f = max(0.0, t - w.q - w.p)
    return w


class PhaseModel:
    """Splits calls into phases and learns, per key, from every call it splits. Thread-safe."""

    def __init__(self, calibrator: Calibrator | None = None, *, learn: bool = True) -> None:
        self.calibrator = calibrator if calibrator is not None else Calibrator()
        self.learn = learn
        # Streams begun (the instrumentors note them): which of this process's calls shared a prefill pass.
        self.passes = PassBook()
        # The server's slot count per group as own streams show it, and the wait own calls imply (own_queue.py).
        self.slots = SlotCounts()
        # Per key, how far above the fit a call that queued behind nothing of the app's ran (residuals.py).
        self.residuals = Residuals()
        # Per key, the prompt prefixes sent without usage: which part of a prompt the server likely has cached.
        self.prefixes = PrefixBook()

    def forget(self) -> None:
        """Drop everything learned: a fresh calibrator, books, slot counts, residuals (benchmarks: one per scenario)."""
        self.calibrator = Calibrator()
        self.passes = PassBook()
        self.slots = SlotCounts()
        self.residuals = Residuals()
        self.prefixes = PrefixBook()

    def split(
        self,
        request: LLMRequest,
        response: LLMResponse,
        capture: CallCapture,
        server: ServerTiming,
    ) -> list[Phase]:
        """Never raises; see the module docstring for the tiling guarantee."""
        return self.split_and_prompt(request, response, capture, server)[0]

    def split_and_prompt(
        self, request: LLMRequest, response: LLMResponse, capture: CallCapture, server: ServerTiming
    ) -> tuple[list[Phase], tuple[int, int | None] | None]:
        """``split``, and the prompt as it assumed it where the usage reported no input tokens: (input tokens, of
        them cached, from the prefixes this process sent before (prefix_book.py); None where the server reported
        the cached count or the prompt's prefixes were not hashed); None where the usage reported input tokens or
        the prompt's size is unknown. Never raises."""
        try:
            return self._split(request, response, capture, server)
        except Exception:
            _log.debug("llmotel: phase model failed; emitting one estimated phase set", exc_info=True)
            return _fallback(capture), None

    def _split(
        self, request: LLMRequest, response: LLMResponse, capture: CallCapture, server: ServerTiming
    ) -> tuple[list[Phase], tuple[int, int | None] | None]:
        start = capture.start_ns
        end = max(capture.end_ns, start)
        attempt = _clamp(capture.attempt_start_ns or start, start, end)
        phases: list[Phase] = []
        if attempt > start:
            phases.append(Phase("retries", start, attempt, "client", 1.0))

        key: Key = (
            request.provider,
            request.server_address,
            response.response_model or request.request_model,
            response.region or request.region,
        )
        usage = response.usage
        co = self.calibrator.coefficients(key)
        estimated_tokens = usage.input_tokens is None
        cached_est = 0
        prompt: tuple[int, int | None] | None = None
        if usage.input_tokens is not None:
            input_tokens = max(usage.input_tokens, 0)
            if self.learn and request.prompt_chars > 0:
                hit = usage.cache_read_tokens if usage.cache_read_tokens is not None else server.cached_tokens
                self.calibrator.observe_prompt_size(key, request.prompt_chars, input_tokens, hit or 0)
        else:
            # No usage (a stream without include_usage): the prompt's size in tokens, as this key's calls taught
            # it, and the part of it the server likely has cached. Without it every such call would have prefill 0
            # and its whole prefill booked as queue.
            input_tokens, cached_est = self._prompt(key, co, request)
        cached = usage.cache_read_tokens if usage.cache_read_tokens is not None else server.cached_tokens
        if estimated_tokens and request.prompt_chars > 0:
            # The cached part is the book's only where nothing reported it and the prompt's prefixes were hashed.
            prompt = (input_tokens, cached_est if cached is None and request.prompt_prefixes else None)
        if cached is None:
            cached = cached_est
        cached = max(min(cached or 0, input_tokens), 0)
        uncached = input_tokens - cached
        output = usage.output_tokens if usage.output_tokens is not None else capture.content_chunk_count
        output = max(output or 0, 0)
        queue_srv = _finite(server.queue_s)
        prefill_srv = _finite(server.prefill_s)
        bound = _finite(server.total_s)
        # prefill + every decode step, when a server reports only the sum (TGI x-inference-time).
        inference = _finite(getattr(server, "inference_s", None)) if prefill_srv is None else None

        first = capture.first_content_ns
        if first > 0 and attempt <= first <= end:
            reasoning = usage.reasoning_tokens or 0
            return self._split_stream(phases, key, co, request, capture, attempt, first, end, uncached, cached,
                                      output, reasoning, queue_srv, prefill_srv, inference, bound,
                                      estimated_tokens), prompt
        return self._split_total(phases, key, co, server, request, capture, attempt, end, uncached, cached, output,
                                 queue_srv, prefill_srv, inference, bound, estimated_tokens), prompt

    def _prompt(self, key: Key, co: Coefficients, request: LLMRequest) -> tuple[int, int]:
        """(input tokens, cached tokens) from the prompt's characters and the prefixes this process sent before."""
        tokens = _tokens_from_chars(request.prompt_chars, co)
        cached_chars = self.prefixes.cached_chars(key, request.prompt_prefixes) if request.prompt_prefixes else 0
        return tokens, min(_tokens_from_chars(cached_chars, co), tokens)

    def _split_stream(
        self,
        phases: list[Phase],
        key: Key,
        co: Coefficients,
        request: LLMRequest,
        capture: CallCapture,
        attempt: int,
        first: int,
        end: int,
        uncached: int,
        cached: int,
        output: int,
        reasoning: int,
        queue_srv: float | None,
        prefill_srv: float | None,
        inference: float | None,
        bound: float | None,
        estimated_tokens: bool = False,
    ) -> list[Phase]:
        ttft = (first - attempt) / _NS
        solo = not capture.ahead  # nothing of the app's own was in flight to this server when the call was sent
        # Servers that answer stream headers on arrival (vLLM, TGI, llama.cpp) let the client measure the
        # request path (send -> headers) on every call. The floor's overhead then holds the request path of
        # the calls that make the floor: that part is queue (it comes before the server), not first_token.
        headers = capture.headers_ns
        early_now = attempt < headers < first and (first - headers) >= _EARLY_HEADERS_SHARE * (first - attempt)
        early = early_now if co.headers_early is None else co.headers_early
        floor_path = min(co.overhead_request_path_s, co.overhead_s) if early else 0.0
        last = capture.last_chunk_ns if first <= capture.last_chunk_ns <= end else end
        # Hidden reasoning tokens (OpenAI reasoning models) are decoded before the first visible chunk.
        hidden = min(max(reasoning, 0), output)
        visible = output - hidden
        tpot = (last - first) / _NS / (visible - 1) if visible >= 3 and last > first else None
        hidden_s = hidden * (tpot if tpot is not None else co.time_per_output_token_s)
        sampling, way_back = _first_token_parts(co, floor_path, early)
        spread = _sampling_spread(co, sampling)
        first_token_est = way_back + hidden_s
        own = _prefill(co, uncached, cached)
        # Own streams whose first token came from the same server step shared this call's prefill pass.
        shared = self._shared_pass(co, request, capture, own) if queue_srv is None and prefill_srv is None else 0.0
        prefill_est = own + shared + sampling
        conf = _confidence(co.confidence, co, uncached, estimated_tokens)
        if inference is not None:
            # Server inference minus the decode the client watched minus one decode step: measured parts
            # but for that one step, so an estimate with high confidence rather than a server value.
            step = co.tpot_floor_s or co.time_per_output_token_s
            prefill_est = max(0.0, inference - (last - first) / _NS - step - hidden_s)
            conf = max(conf, _DERIVED_CONFIDENCE)
        known = prefill_srv if inference is None else prefill_est
        w = split_window(ttft, queue_srv, known, prefill_est, first_token_est, bound, "client")
        if inference is not None:
            w.p_src = "estimated"
            w.f_src = "estimated"
        # Once the key's floor is learned, a stream behind own calls had its prompt run for at least a share of the
        # floor's own prefill after its slot freed: the slot test's margin (own_queue.py, SlotCounts.observe).
        least = _SLOT_TEST_PREFILL_SHARE * own if co.samples >= _MIN_STREAM_SAMPLES else 0.0
        own_wait, ceiling, _, waits = self._own_wait(request, capture, attempt, first,
                                                     queue_srv is None and prefill_srv is None, prefill_s=least)
        if own_wait is not None:
            _at_least(w, own_wait, ttft)
        band = _own_band(co, own_wait, ceiling, cached)
        share, typical = self.residuals.share_then_observe(
            key, w.q, w.p, _teaches_residuals(self.learn, capture, band, w), solo)
        if solo and typical > 0.0 and band is None:
            _book_typical_run(w, typical)
        if band is None and cached > 0 and cache_read_at_cap(co.cache_read_s_per_token, co.prefill_s_per_token):
            _tie_cache_read(w, co.cache_read_s_per_token * cached)
        self._emit(phases, attempt, first, w, conf, co.samples, known is not None, spread, band, excess=share * w.p)
        phases.append(Phase("decode", first, end, "client", 1.0, co.samples))
        if self.learn and not capture.abandoned:
            path = (headers - attempt) / _NS if early_now else None
            # The envelope learns the call's own work: the pass's other members' work and the wait behind the app's
            # own calls are taken out (a floor learned from calls that all waited holds that wait otherwise).
            own = ttft - hidden_s - shared
            if own_wait is not None and own_wait < own:
                own -= own_wait
            self.calibrator.observe_stream(key, uncached, cached, own, tpot, early_now, path,
                                           uncached + cached + 0.5 * visible, waits)
            if own_wait is not None and not solo:  # the count is learned behind own calls: known only then
                self._settle(key, request)
        return phases

    def _own_wait(
        self, request: LLMRequest, capture: CallCapture, attempt: int, first: int, use: bool,
        body: tuple[int, int, int] | None = None, prefill_s: float = 0.0,
    ) -> tuple[float | None, float | None, int, tuple[float, ...] | None]:
        """(the wait the app's own calls in flight imply for this call (own_queue.py), the most it can be, in
        seconds, after learning the server's slot count from it (a stream: ``first`` > 0). The wait is None when
        the slot count is unknown (the most is then the one-slot wait, ``inf`` when a call ahead was not seen to
        end) or ``use`` is False (both None); ``prefill_s``: the least a stream's own prompt took (the slot test,
        own_queue.py); and, where own calls were in flight on a server of a few slots, which
        runs them in the same batches as this one, its slot count (0 otherwise); and, while the count is unknown,
        the wait each count 1, 2, ... would imply (``inf`` where its call was not seen to end), for the learner to
        take out once it is known (Calibrator.settle). ``body``: a whole body's (uncached, cached, output)
        tokens."""
        if not capture.ahead:  # nothing of the app's own was in flight (the common case: keep it cheap)
            capture.ahead = None
            return (0.0 if use else None), None, 0, None
        group = (request.provider, request.server_address, request.request_model)
        ends = self.passes.ahead(capture)
        if self.learn and not capture.abandoned:
            if first > 0:
                self.slots.observe(group, ends, attempt, first, round(prefill_s * _NS))
            elif body is not None:
                self.slots.observe_body(group, ends, attempt, capture.end_ns, *body)
        if not use:
            return None, None, 0, None
        wait, slots = self.slots.own_wait(group, ends, attempt)
        if wait is not None or not ends:
            return wait, None, slots if 2 <= slots <= MAX_SLOTS and ends else 0, None
        most = ceiling_ns(ends, attempt)
        return None, (math.inf if most >= OPEN else most / _NS), 0, implied_waits_s(ends, attempt)

    def _settle(self, key: Key, request: LLMRequest) -> None:
        """Once the server's slot count is known, take the wait it implies out of what the key learned while it
        was not (Calibrator.settle)."""
        if self.calibrator.unsettled(key):
            slots = self.slots.slots((request.provider, request.server_address, request.request_model))
            if slots is not None:
                self.calibrator.settle(key, slots)

    def _shared_pass(self, co: Coefficients, request: LLMRequest, capture: CallCapture, own: float) -> float:
        """The summed own prefill of the other streams in this call's pass (passes.py), 0 when it had none."""
        step = co.step_floor_s if co.step_floor_s is not None else co.time_per_output_token_s
        tolerance = min(MAX_TOLERANCE_S, step * TOLERANCE_STEP_SHARE) if step > 0 else MAX_TOLERANCE_S
        shared = 0.0
        for peer in self.passes.peers(request, capture, round(tolerance * _NS), own):
            if peer.own_s >= 0.0:
                shared += peer.own_s
            else:  # not split yet: its prompt's characters, as cached as this key's prompts are
                # (all uncached, a 5,000-token cached prefix read as prefill took all of a call's TTFT and its
                # queue of 50-350 ms: bench/sim_trials.py's four callers on cached prefixes, queue p90 33 %)
                tokens = _tokens_from_chars(peer.chars, co)
                cached = round(tokens * co.cached_share)
                shared += _prefill(co, tokens - cached, cached)
        return shared

    def _split_total(
        self,
        phases: list[Phase],
        key: Key,
        co: Coefficients,
        server: ServerTiming,
        request: LLMRequest,
        capture: CallCapture,
        attempt: int,
        end: int,
        uncached: int,
        cached: int,
        output: int,
        queue_srv: float | None,
        prefill_srv: float | None,
        inference: float | None,
        bound: float | None,
        estimated_tokens: bool = False,
    ) -> list[Phase]:
        total = (end - attempt) / _NS
        solo = not capture.ahead  # nothing of the app's own was in flight to this server when the call was sent
        steps = max(output - 1, 0)
        decode_srv = _finite(server.decode_s)
        tpot_srv = _finite(server.time_per_token_s)
        streams_taught = co.samples >= _MIN_STREAM_SAMPLES or co.total_samples == 0
        # The streams' recent time per token, carried from their context to this body's (learner.py,
        # _TPOT_CTX_ALPHA): a step over a long prompt takes longer than the recent streams' typical one.
        tpot = co.time_per_output_token_s
        if co.tpot_s_per_ktoken > 0.0:
            context = uncached + cached + 0.5 * output
            tpot = max(0.5 * tpot, tpot + co.tpot_s_per_ktoken * (context - co.tpot_context_tokens) / 1000.0)
        decode_src: PhaseSource = "server"
        if decode_srv is not None:
            decode = decode_srv
        elif tpot_srv is not None:
            decode = tpot_srv * steps
        else:
            decode_src = "estimated"
            decode = (tpot if streams_taught else co.total_s_per_output_token) * steps
            if streams_taught and co.nonstream_tail_s is not None:
                # The last token's way back in a whole body, which no stream shows: without it, every
                # non-streaming call would carry those milliseconds as queue.
                decode += max(co.nonstream_tail_s, 0.0)
        decode = min(max(decode, 0.0), total)
        if streams_taught:
            # As for streams: the floor's request path (servers that send headers on arrival) is queue.
            floor_path = min(co.overhead_request_path_s, co.overhead_s) if co.headers_early else 0.0
            sampling, _ = _first_token_parts(co, floor_path, bool(co.headers_early))
            spread = _sampling_spread(co, sampling)
            # A whole body's first token is never seen: its way back is part of the body's, in decode.
            first_token_est = 0.0
            prefill_est = _prefill(co, uncached, cached) + sampling
            conf, samples = _confidence(co.confidence, co, uncached, estimated_tokens), co.samples
        else:
            # Keys that never stream: the envelope's intercept holds the request path, the first token's
            # sampling (about one output token's time) and the server's fixed work; the sampling is prefill.
            first_token_est = 0.0
            sampling = min(co.total_s_per_output_token, max(co.total_overhead_s, 0.0))
            spread = 0.0
            prefill_est = co.total_prefill_s_per_token * uncached + co.total_cache_read_s_per_token * cached \
                + co.total_prefill_s_per_kpair * attention_work(uncached, cached) + sampling
            conf, samples = co.total_confidence, co.total_samples
        if inference is not None:
            step = co.tpot_floor_s or co.time_per_output_token_s
            prefill_est = max(0.0, inference - decode - step)
            if decode_src == "server":
                conf = max(conf, _DERIVED_CONFIDENCE)
        bound_window = None if bound is None else max(0.0, bound - decode)
        known = prefill_srv if inference is None else prefill_est
        w = split_window(total - decode, queue_srv, known, prefill_est, first_token_est, bound_window, "estimated")
        if inference is not None:
            w.p_src = "estimated"
        body = (uncached, cached, output)
        own_wait, ceiling, slots, waits = self._own_wait(request, capture, attempt, 0,
                                                           queue_srv is None and prefill_srv is None, body)
        if own_wait is not None:
            _at_least(w, own_wait, total - decode)
            if slots and decode_src == "estimated" and inference is None and w.q_src == "estimated" \
                    and w.p_src == "estimated":
                # Own calls shared this call's batches (a server of a few slots): each of their prefills stalled
                # this call's decode steps for as long as it ran (llama.cpp runs a prompt's chunk and the other
                # slots' next tokens in one batch), which a whole body cannot see (no first token). The decode is
                # then no function of this call's tokens: on bench/real's two slots it ran 12-17 ms per token plus
                # the other calls' prefill time that fell inside it, up to 150 ms per token in all, and the
                # envelope's output slope (which learns from such calls) sat at 25-50. So the queue is the wait the
                # client measured, the prefill the fit's estimate of this prompt's, and decode what is left.
                w.q = min(own_wait, total)
                rest = total - w.q
                w.p = min(prefill_est, rest)
                w.f = 0.0
                w.own = True
                w.slots = slots
                decode = rest - w.p
        band = _own_band(co, own_wait, ceiling, cached)
        share, typical = self.residuals.share_then_observe(
            key, w.q, w.p, _teaches_residuals(self.learn, capture, band, w), solo)
        if solo and typical > 0.0 and band is None:
            _book_typical_run(w, typical)
            if decode_src == "estimated":
                decode = _book_typical_decode(w, typical, decode)
        # The first-token boundary was not observed: never claim more than an estimate for it.
        decode_start = end - round(decode * _NS)
        self._emit(phases, attempt, decode_start, w, conf, samples, known is not None, spread, band,
                   decode if decode_src == "estimated" else 0.0,
                   _DECODE_SPREAD if streams_taught else _TOTAL_DECODE_SPREAD, share * w.p)
        decode_conf = 1.0 if decode_src == "server" else conf
        phases.append(Phase("decode", decode_start, end, decode_src, decode_conf, samples))
        if self.learn:
            tail = None
            if co.samples >= _MIN_STREAM_SAMPLES:
                # What the stream model leaves unexplained (queue + the body's tail); its low percentile
                # over calls is the tail of the calls that did not queue.
                tail = total - co.overhead_s - _prefill(co, uncached, cached) - tpot * steps
            if own_wait is not None and own_wait < total:
                # As for streams: the envelope learns the call's own time, without the wait behind own calls.
                total -= own_wait
                tail = None if tail is None else tail - own_wait
            self.calibrator.observe_total(key, uncached, cached, output, total, tail, waits)
            if own_wait is not None and not solo:  # the count is learned behind own calls: known only then
                self._settle(key, request)
        return phases

    @staticmethod
    def _emit(
        phases: list[Phase], begin: int, window_end: int, w: _Window, conf: float, samples: int,
        prefill_known: bool, spread: float = 0.0,
        own_band: tuple[float, float, float, float] | None = None, decode_est: float = 0.0,
        decode_share: float = _DECODE_SPREAD, excess: float = 0.0,
    ) -> None:
        q_end = _clamp(begin + round(w.q * _NS), begin, window_end)
        p_end = _clamp(q_end + round(w.p * _NS), q_end, window_end)
        q_conf = 1.0 if w.q_src == "server" else ((1.0 + conf) / 2.0 if prefill_known else conf)
        f_conf = 1.0 if w.f_src != "estimated" else (q_conf if prefill_known else conf)
        queue = Phase("queue", begin, q_end, w.q_src, q_conf, samples)
        prefill = Phase("prefill", q_end, p_end, w.p_src, 1.0 if w.p_src == "server" else conf, samples)
        first = Phase("first_token", p_end, window_end, w.f_src, f_conf, samples)
        _intervals(w, conf, queue, prefill, first, spread, own_band, decode_est, decode_share, excess)
        phases.append(queue)
        phases.append(prefill)
        phases.append(first)


def _teaches_residuals(
    learn: bool, capture: CallCapture, own_band: tuple[float, float, float, float] | None, w: _Window
) -> bool:
    """Whether a call's split teaches the residual share: an estimated split of a call with none of the app's own
    calls ahead, learned from."""
    return learn and own_band is None and not capture.abandoned and w.q_src == "estimated" \
        and w.p_src == "estimated"


def _book_typical_run(w: _Window, typical: float) -> None:
    """Book the key's typical run above the floor as prefill, on a call sent while nothing of the app's own was in
    flight to the server (the caller checks): up to ``typical`` (residuals.py: the median estimated queue / estimated
    prefill of such calls), never more than ``_TYPICAL_RUN_CAP`` of the prefill, never more than the queue.

    The envelope is a floor, so a call that did not wait still runs above it by however much this server's prefill
    scatters; the fit booked that as queue. On bench/real's llama.cpp (one caller, nothing else on the server) the true
    queue was a median 0.2-0.5 of the estimated one (seeds 8-11), so the typical run was the prompt's, not a wait.
    Other clients' calls ahead look the same to the client: the cap bounds what a real wait loses to prefill by the
    most a real server's prefill scattered (lognormal sigma up to 0.18 in bench/real/scatter.py: the median call
    ~1.3 sigma, about 0.2, above the fit's low points). The prefill's interval still reaches down to the floor's split
    (``w.moved``, _intervals): the client cannot tell which it was."""
    if w.q_src != "estimated" or w.p_src != "estimated" or w.own:
        return
    moved = min(w.q, min(typical, _TYPICAL_RUN_CAP) * w.p)
    if moved > 0.0:
        w.q -= moved
        w.p += moved
        w.moved = moved


def _tie_cache_read(w: _Window, cache_read_s: float) -> None:
    """A prefix-cache hit whose key's cache-read cost sits at its cap (learner.cache_read_at_cap): the prefill's
    interval reaches back over the hit's cache-read cost (``cache_read_s``), booked as prefill, as it does over the
    typical run (``w.moved``, the larger of the two).

    With one cached size and misses of one size (a system prompt plus a short message), the intercept and a hit's
    fixed cost are one number to the fit; the learner's pull toward a small intercept books it as cache read, up to
    the cap. Where no call ever finds the server idle (another client's calls on a shared slot), that number holds
    the least wait, and the client cannot tell which it was. bench/real trial 6 (seed 91), a prefix cache with an
    unseen caller on one slot: every call waited 70-320 ms, the hits' prefill read 10-70 ms long, coverage 62 / 58
    % -> 78 / 75 %. Of the recorded single-caller prefix-cache runs (seeds 11-22), whose cost at the cap is the
    hits' own, one moved from within 75-90 % to above (seed 12's prefix_cache, 87 / 83 -> 93 / 95 %); the others
    kept their side of the band (seed 14's 82 / 82 %, seed 21's 70 / 72 -> 70 / 73 %, the prefix_sizes runs up 1-2
    points). Reaching over the sum of both bookings put the trial at 100 / 100 %."""
    if w.q_src != "estimated" or w.p_src != "estimated" or w.own:
        return
    w.moved = max(w.moved, min(w.p, cache_read_s))


def _book_typical_decode(w: _Window, typical: float, decode: float) -> float:
    """The whole body's decode with the key's typical run above the floor booked onto it as well (the caller checks
    as for _book_typical_run, which booked the prefill's share first): a whole body shows no first token, so its
    decode is an estimate too, and it runs above its floor as the prefill does. On bench/real's one-caller whole
    bodies the estimated decode fell short of the server's by 20-30 % in spells (steps slowed, and grew with the
    context), all of it booked as queue: idle_non_streaming, seeds 10 / 11 / 12 replayed, queue p90 16.9 / 21.1 /
    30.7 -> 15.9 / 18.6 / 21.8 % of TTFT. At most ``_TYPICAL_DECODE_CAP`` of the smaller of the decode and the
    prefill: a whole body's decode can be many times its TTFT, and a share of the decode alone took all of a real
    100 ms wait (behind callers the client cannot see) on a 60-token body in the unit tests' world. Never more than
    the queue left; the intervals keep the floor's split within them (``w.decoded``). Returns the new decode."""
    if w.q_src != "estimated" or w.own:
        return decode
    extra = min(w.q, min(typical, _TYPICAL_DECODE_CAP) * min(decode, w.p))
    if extra > 0.0:
        w.q -= extra
        w.decoded = extra
        decode += extra
    return decode


def _at_least(w: _Window, own_wait: float, window_s: float) -> None:
    """Raise an estimated queue to the wait the app's own calls imply (a lower bound of it, measured by the client
    where the slot count is right): the rest of the window is the call's own time, first_token kept if it fits.

    Where the fit finds a little more queue than that wait, no more than a prefill's own variation (the fit is a
    floor: a typical prompt runs above it), the call was served when its own blocker ended and the excess is its
    prefill running above the floor; up to ``_OWN_PREFILL_RUN`` of it as well, but then the interval reaches back
    to the fit's queue (``w.moved``); more than that is other clients' calls ahead of it, and stays queue."""
    if w.q_src != "estimated" or w.p_src != "estimated" or own_wait <= 0.0:
        return
    excess = w.q - own_wait
    if excess > _OWN_PREFILL_RUN * w.p:
        return
    if excess > _OWN_PREFILL_SLACK * w.p:
        w.moved = excess
    w.q = min(own_wait, max(window_s, 0.0))
    w.own = True
    rest = max(window_s, 0.0) - w.q
    w.f = min(w.f, rest)
    w.p = rest - w.f


def _own_band(
    co: Coefficients, own_wait: float | None, ceiling: float | None = None, cached: int = 0
) -> tuple[float, float, float, float] | None:
    """(the wait own calls imply, how far the true queue may lie below it, and above it (a turnaround, half a step
    and the restore of the ``cached`` prefix, ``_RESTORE_SHARE``), -1) in seconds; where
    the slot count is unknown, (-1, 0, 0, the most the queue may be: the one-slot ``ceiling`` and the margin above
    it); None when there is neither (see _intervals)."""
    if own_wait is None:
        if ceiling is None:
            return None
        step = co.step_floor_s if co.step_floor_s is not None else co.time_per_output_token_s
        return -1.0, 0.0, 0.0, ceiling + _OWN_TURNAROUND_S + _OWN_STEPS * step
    if own_wait <= 0.0:
        return None
    step = co.step_floor_s if co.step_floor_s is not None else co.time_per_output_token_s
    path = _OWN_PATHS * co.overhead_request_path_s if co.overhead_request_path_s > 0 else _OWN_PATH_STEPS * step
    restore = max(co.cache_read_s_per_token, _RESTORE_SHARE * co.prefill_s_per_token) * cached
    return own_wait, path, _OWN_TURNAROUND_S + _OWN_STEPS * step + restore, -1.0


def _intervals(
    w: _Window, conf: float, queue: Phase, prefill: Phase, first: Phase, spread: float = 0.0,
    own_band: tuple[float, float, float, float] | None = None, decode_est: float = 0.0,
    decode_share: float = _DECODE_SPREAD, excess: float = 0.0,
) -> None:
    """The 80 % intervals of the estimated phases before decode.

    Three errors make them. The envelope's prefill is off by a share of itself (the fit; prompts the key
    rarely sends): ``_REL_ERROR`` at full confidence, wider as confidence drops. A call runs above the fit even
    when it did not queue (the fit is a floor; timer noise, work the features do not see): by ``excess`` seconds,
    which the key's own calls teach (residuals.py), and by half that below it. And a call that waited may have had
    its prefill stretched by other requests' work in the same batches (llama.cpp counts those steps in
    ``prompt_ms``, vLLM in the whole pass), which the client cannot tell from queueing: up to ``_STRETCH_SHARE`` of
    the estimated queue may be prefill. Queue is the complement of prefill in the same measured window, so its
    interval mirrors prefill's. first_token: the relative part. Calibrated on bench/real's llama.cpp recordings
    and the simulator (coverage in docs/phases.md).
    """
    rel = _REL_ERROR + _REL_ERROR_COLD * (1.0 - conf)
    both = w.q + w.p
    # A whole body's typical run booked as decode (_book_typical_decode) may have been queue or prefill after all:
    # the intervals are the floor's split's, whose window held it.
    floor_q = w.q + w.decoded
    if w.p_src == "server":
        p_lo = p_hi = w.p
    else:
        p_lo = max(0.0, w.p * (1.0 - rel) - spread - _EXCESS_BELOW * excess)
        p_hi = min(both + w.decoded, w.p * (1.0 + rel) + _STRETCH_SHARE * floor_q + spread + excess)
        if w.moved > 0.0:
            # The typical run booked as prefill may have been a wait for other clients' calls: the client cannot
            # tell, so the interval reaches back to the floor's split.
            p_lo = min(p_lo, max(0.0, w.p - w.moved))
        prefill.low_s, prefill.high_s = p_lo, p_hi
    if w.q_src != "server":
        queue.low_s, queue.high_s = max(0.0, both - p_hi), max(0.0, both + w.decoded - p_lo)
    if own_band is not None and own_band[0] < 0.0:
        if w.q_src != "server" and w.p_src != "server":
            # Own calls were in flight but the server's slot count is unknown: the server may have queued this call
            # behind them (up to the wait one slot implies, or more with other clients' calls) or batched it with
            # them (no wait). The fit cannot tell (it learned from such calls): the interval spans both. A whole
            # body's estimated decode (``decode_est``) may be any part of either phase too.
            q_hi = min(both + decode_est, max(queue.high_s if queue.high_s is not None else 0.0, own_band[3]))
            queue.low_s, queue.high_s = 0.0, q_hi
            prefill.low_s, prefill.high_s = max(0.0, both - q_hi), both + decode_est
        own_band = None
    if own_band is not None and w.q_src != "server" and w.p_src != "server":
        # The call waited behind own calls the client saw end: the queue is at least that wait, off only by the
        # two request paths (the blocking call's end back to the client, this call's way in). Where the wait is
        # the estimate, the true queue lies above it by no more than the server's turnaround between one request
        # and the next (which the wait does not hold) and other clients' calls ahead (none, or the fit would
        # have found more queue).
        own_wait, below, above, _ = own_band
        q_lo = min(max(0.0, own_wait - below), w.q)
        q_hi = min(both, w.q + max(above, w.moved)) if w.own else (queue.high_s if queue.high_s is not None else both)
        q_lo = max(q_lo, queue.low_s or 0.0) if not w.own else q_lo
        queue.low_s, queue.high_s = q_lo, q_hi
        # A whole body's window ends where its estimated decode begins: the prefill also carries that estimate's
        # error, which the queue (measured from the call's start) does not.
        decode_spread = decode_share * decode_est
        prefill.low_s = max(0.0, min(both - q_hi - decode_spread, w.p))
        prefill.high_s = max(both - q_lo + decode_spread, w.p)
        if w.slots:
            # A whole body on a server of k slots that ran it with own calls (_split_total): its prefill is the
            # fit's, which learned from bodies whose own time held the other slots' work, and the server's lands on
            # either side of it (bench/real, two slots, seeds 10-12: truth / estimate p10 0.6-1.0, p90 1.7-3.3; the
            # high side already reaches over a share of the decode). The low side reaches down to the estimate /
            # sqrt(k) (chosen on those recordings and their multi-slot streams replayed as bodies, among / k^0,
            # / k^0.5 and / k, with x k^0 or x k on the high side: the others put prefill coverage at 72-78 % or
            # 90-98 % in most of those 12 runs).
            prefill.low_s = min(prefill.low_s, w.p / math.sqrt(w.slots))
    if w.f_src == "estimated":
        first.low_s, first.high_s = max(0.0, w.f * (1.0 - rel)), w.f * (1.0 + rel)


def _prefill(co: Coefficients, uncached: int, cached: int) -> float:
    """The no-wait prefill of a prompt on the learned envelope (tokens and attention work)."""
    return co.prefill_s_per_token * uncached + co.cache_read_s_per_token * cached \
        + co.prefill_s_per_kpair * attention_work(uncached, cached)


def _tokens_from_chars(chars: int, co: Coefficients) -> int:
    return round(chars / co.chars_per_token) if chars > 0 and co.chars_per_token > 0 else 0


def _first_token_parts(co: Coefficients, floor_path: float, early: bool) -> tuple[float, float]:
    """(sampling, way back): the two parts of the envelope's intercept that are not the request path.

    Servers define prefill as scheduled -> first token *sampled* (vLLM's time_to_first_token_ms, SGLang,
    llama.cpp's prompt_ms): the pass that reads the prompt also samples the first token, so that work is
    prefill, and ``first_token`` is only the first chunk's way back to the client. The sampling is the output
    layer at the last prompt position, a model-size-dependent share of one decode step (``_sampling_share``:
    most of a step on a tiny model, a few per cent on an 8B one); the step is measured apart from TTFT, as
    the second-lowest time per output token of recent streams (``step_floor_s``: one without stalls for
    other requests' prefills). The way back is one trip of the request path where headers come on arrival (a
    round trip, measured per call): ``_WAY_BACK_SHARE`` of it; where headers come with the first token (hosted
    APIs) it is not measured and is taken as 0: it then counts as queue, like the request path. What the
    intercept holds beyond these (the server's fixed work, and the wait for the current step when no call ever
    reached an idle server) is queue: had it been first_token, every call's shared-slot wait would have been
    (llama.cpp, one slot, four callers, headers at the first token: queue error median 26.6 -> 7.1 % of TTFT,
    bench/real).
    """
    way_back = _WAY_BACK_SHARE * floor_path if early else 0.0
    room = max(co.overhead_s - floor_path - way_back, 0.0)
    step = co.step_floor_s if co.step_floor_s is not None else co.time_per_output_token_s
    return min(max(step, 0.0) * _sampling_share(co), room), way_back


def _sampling_spread(co: Coefficients, sampling: float) -> float:
    """How far the first token's sampling may be off, in seconds, for the intervals: where the share comes from
    the model's size it is a physical estimate (output layer against a whole step) that ignores the server's
    sampler, batching and kernels, so the interval spans it by 0.3 times itself either way. Chosen on the simulator's
    scenarios, the only place it applies (bench/real/interval_grid.py, one captured bench/phase_accuracy.py run,
    2026-12-07, 11 scenarios): at 1.5 (first chosen when steady load's queue coverage was 55 % without it) the
    scenarios' pooled queue / prefill coverage read 92.9 / 94.7 %, above the 75-90 % band, 2 of 11 within; at 0.3,
    89.5 / 88.2 % and 6 within, none below by the mean of the two (idle_hosted's prefill 69 %, 100 % at 1.5; 0.0
    gives 87.5 / 86.5 % and 64 %), with the residual share at 0.5; with the share then re-chosen at 0.4
    (residuals.py), 87.9 / 87.0 % on that capture and 87.5 / 86.5 % on one made at the final constants
    (docs/phases.md). A model of unknown size takes one whole step, the value the interval constants were
    calibrated with (bench/real), so no more is added."""
    prior = co.prior
    if prior is None or not prior.size_known:
        return 0.0
    return sampling * _SAMPLING_SPREAD


def _sampling_share(co: Coefficients) -> float:
    """The first token's sampling as a share of one decode step: the output layer (vocabulary x width) at one
    position against a step's whole work. Llama-3.1-8B: 128,256 x 4,096 = 0.53 B of 8 B parameters, 6.6 %;
    70B: 1.5 %; 1B: ~21 %; bench/real's 36 M-parameter model (32,000 x 512 of it): ~45 %, plus llama.cpp's
    sampling over the vocabulary on a CPU. Scaled from the 8B figure as params^-0.6 (the Llama 3 family's
    width grows about as params^0.4 at a fixed vocabulary), capped at one step. A model of unknown size keeps
    one step: the client cannot tell, and a small local model is where it matters (bench/real).
    Where the model is large, what else the intercept holds is queue: on a busy server, the wait for the
    current step (the simulator's steady_load and noisy_neighbour booked it as prefill with a whole step)."""
    prior = co.prior
    if prior is None or not prior.size_known or prior.params <= 0:
        return 1.0
    share: float = _SAMPLING_SHARE_8B * math.pow(8e9 / prior.params, 0.6)
    return min(1.0, share)


def _confidence(base: float, co: Coefficients, uncached: int, estimated_tokens: bool = False) -> float:
    lo, hi = co.uncached_range
    if estimated_tokens:
        # The prompt's tokens come from its characters: a prompt denser or sparser than the key's average moves
        # its prefill, and the interval must say so (bench/real idle_no_usage, run seed2: coverage 68 % -> 75 %).
        base *= _ESTIMATED_TOKENS_PENALTY
    if co.samples and (uncached > 2.0 * hi or uncached < 0.5 * lo):
        return base * _EXTRAPOLATION_PENALTY
    return base


def _fallback(capture: CallCapture) -> list[Phase]:
    """A tiling set with everything before the end in the queue: only used if the model itself failed."""
    start = capture.start_ns
    end = max(capture.end_ns, start)
    return [
        Phase("queue", start, end, "estimated", 0.0),
        Phase("prefill", end, end, "estimated", 0.0),
        Phase("first_token", end, end, "estimated", 0.0),
        Phase("decode", end, end, "estimated", 0.0),
    ]


_gauge_lock = forksafe.lock(sys.modules[__name__], "_gauge_lock")
_gauge_registered: set[int] = set()


def register_prefill_gauge(meter: Any = None, model: PhaseModel | None = None) -> None:
    """Export ``llmotel.phase_model.prefill_time_per_token`` per key as an observable gauge.

    ``meter`` defaults to the global MeterProvider's meter (a proxy until the app sets a provider);
    ``model`` defaults to DEFAULT_MODEL. Idempotent per (meter, model). Never raises.
    """
    try:
        from opentelemetry import metrics

        from llmotel import _semconv as sc

        model = model if model is not None else DEFAULT_MODEL
        meter = meter if meter is not None else metrics.get_meter("llmotel")
        token = hash((id(meter), id(model)))
        with _gauge_lock:
            if token in _gauge_registered:
                return
            _gauge_registered.add(token)
        calibrator = model.calibrator

        def observe(_options: metrics.CallbackOptions) -> list[metrics.Observation]:
            return [
                metrics.Observation(
                    rate,
                    {
                        sc.GEN_AI_PROVIDER_NAME: key[0],
                        sc.SERVER_ADDRESS: key[1],
                        sc.GEN_AI_RESPONSE_MODEL: key[2],
                        sc.LLMOTEL_SERVER_REGION: key[3],
                    },
                )
                for key, rate in calibrator.prefill_rates()
            ]

        gauge = sc.GAUGE_LLMOTEL_PHASE_MODEL_PREFILL_TIME_PER_TOKEN
        meter.create_observable_gauge(
            gauge.name, callbacks=[observe], unit=gauge.unit, description=gauge.description
        )
    except Exception:
        _log.debug("llmotel: could not register the prefill gauge", exc_info=True)


def _default_model() -> PhaseModel:
    """The process-wide model; with LLMOTEL_PHASE_MODEL_STATE set it loads and saves that file."""
    path = config.env_value("phase_model_state") or None  # LLMOTEL_PHASE_MODEL_STATE, via the settings registry
    model = PhaseModel(Calibrator(state_path=path))
    if path:
        atexit.register(model.calibrator.save, path)
    return model


DEFAULT_MODEL = _default_model()
# Through the global MeterProvider's proxy: the gauge reports once the app sets a provider.
register_prefill_gauge()
