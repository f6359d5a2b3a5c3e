"""Own streams that shared a prefill pass (phases/passes.py): the others' work in the pass is prefill, not queue.

Hand-built timelines: a model trained on a server with a known floor (4 ms + 50 us per token + one 20 ms step),
then two streams whose first tokens left the server in one step. The numbers below follow from the floor.
"""

from __future__ import annotations

import random

from test_phases import NS, _durations, _request, _response, _stream_capture, _train, assert_tiles

from llmotel.phases.model import PhaseModel
from llmotel.phases.passes import PassBook
from llmotel.record import CallCapture, LLMRequest, ServerTiming


def _trained() -> PhaseModel:
    model = PhaseModel()
    _train(model, 150, random.Random(7), queue_share=0.3)
    return model


def _req(chars: int) -> LLMRequest:
    r = _request()
    r.prompt_chars = chars
    return r


def test_a_stream_that_shared_its_pass_books_the_others_work_as_prefill() -> None:
    model = _trained()
    t0 = 10_000 * NS
    # A: 200 tokens; B: 4,000 tokens sent at the same instant. One pass: 4 ms + 50 us x 4,200 + one 20 ms step =
    # 234 ms; both first tokens leave with it (B's chunk read 0.4 ms after A's).
    ra, rb = _req(800), _req(16_000)
    a = _stream_capture(t0, 0.234, 0.02, 40)
    b = _stream_capture(t0, 0.2344, 0.02, 60)
    model.passes.began(ra, a)
    model.passes.began(rb, b)
    # A ends first: B has not reported usage yet, so its work comes from its 16,000 characters (4 per token).
    pa = model.split(ra, _response(200, 40), a, ServerTiming())
    assert_tiles(pa, a)
    d = _durations(pa)
    # Alone, A's own prefill is ~14 ms (4 ms + 200 x 50 us) and ~220 ms would be queue; with B's ~200 ms it is not.
    assert d["prefill"] > 0.18, d
    assert d["queue"] < 0.04, d
    # B ends later and uses A's own estimate, written when A was split.
    pb = model.split(rb, _response(4000, 60), b, ServerTiming())
    assert_tiles(pb, b)
    db = _durations(pb)
    assert db["queue"] < 0.04, db
    assert abs(d["prefill"] - db["prefill"]) < 0.03  # one pass: about the same prefill for both


def test_streams_one_step_apart_did_not_share_a_pass() -> None:
    model = _trained()
    t0 = 10_000 * NS
    ra, rb = _req(800), _req(16_000)
    a = _stream_capture(t0, 0.234, 0.02, 40)
    b = _stream_capture(t0 + round(0.02 * NS), 0.234, 0.02, 60)  # first token one 20 ms step later
    model.passes.began(ra, a)
    model.passes.began(rb, b)
    d = _durations(model.split(ra, _response(200, 40), a, ServerTiming()))
    # A's own prefill only (~14 ms + the step): the rest of its 234 ms is queue.
    assert d["prefill"] < 0.06, d
    assert d["queue"] > 0.17, d


def test_a_call_not_noted_and_server_timing_are_left_alone() -> None:
    model = _trained()
    t0 = 10_000 * NS
    ra, rb = _req(800), _req(16_000)
    a = _stream_capture(t0, 0.234, 0.02, 40)
    b = _stream_capture(t0, 0.2341, 0.02, 60)
    model.passes.began(rb, b)  # A itself was never noted (not instrumented as a stream): still grouped by B
    d = _durations(model.split(ra, _response(200, 40), a, ServerTiming()))
    assert d["prefill"] > 0.18
    # The server said how long it queued and prefilled: its figures win, the pass book is not consulted.
    c = _stream_capture(t0, 0.234, 0.02, 40)
    model.passes.began(ra, c)
    served = model.split(ra, _response(200, 40), c, ServerTiming(format="vllm", queue_s=0.2, prefill_s=0.03))
    ds = _durations(served)
    assert abs(ds["queue"] - 0.2) < 1e-6 and abs(ds["prefill"] - 0.03) < 1e-6


def test_the_book_is_bounded() -> None:
    book = PassBook(per_group=4, max_groups=3)
    for g in range(10):
        r = _request()
        r.request_model = f"m{g}"
        for _ in range(10):
            book.began(r, _stream_capture(0, 0.1, 0.01, 5))
    assert len(book._groups) == 3
    assert all(len(g.ring) == 4 for g in book._groups.values())
    # Calls in flight: only those not ended when the newest began (all of these end at 0.14 s, after it began),
    # at most 64 per group.
    never_end = _request()
    for _ in range(100):
        book.began(never_end, CallCapture(start_ns=1, attempt_start_ns=1))
    assert len(book._groups[("openai", "127.0.0.1", "test-lm")].open) == 64


def test_a_pass_mate_not_split_yet_is_as_cached_as_the_keys_prompts() -> None:
    # Every prompt of this key is a 4,000-token cached system prompt and 100-800 new tokens (the calls report the
    # hit). Two streams sent together wait 100 ms behind other clients' work, then share one pass: 4 ms + one 20 ms
    # step + 50 us per new token (200 + 400) + 2 us per cached token read (8,000) = 70 ms; TTFT 170 ms. A ends first,
    # while B (16,000 + 1,600 characters) has reported nothing: read all uncached, B's 4,400 tokens were 224 ms of
    # prefill, more than A's whole TTFT, and A's 100 ms queue became prefill (bench/sim_trials.py's four callers on
    # cached prefixes: queue p90 33 % of TTFT; 17.6 % with the key's cached share).
    model = PhaseModel()
    rng = random.Random(11)
    for i in range(150):
        u = rng.choice([100, 200, 400, 800])
        queue = rng.expovariate(1 / 0.05) if rng.random() < 0.3 else 0.0
        cap = _stream_capture(i * 10 * NS, 0.004 + 0.02 + 5e-5 * u + 2e-6 * 4000 + queue, 0.02, 40)
        model.split(_req(4 * (4000 + u)), _response(4000 + u, 40, 4000), cap, ServerTiming())
    t0 = 10_000 * NS
    ra, rb = _req(4 * 4200), _req(4 * 4400)
    a = _stream_capture(t0, 0.170, 0.02, 40)
    b = _stream_capture(t0, 0.1704, 0.02, 60)
    model.passes.began(ra, a)
    model.passes.began(rb, b)
    d = _durations(model.split(ra, _response(4200, 40, 4000), a, ServerTiming()))
    assert 0.07 < d["queue"] < 0.13, d
    assert 0.04 < d["prefill"] < 0.1, d
