"""Ground truth of a shared prefill pass: the server's definition (the whole pass is each request's prefill) and
the own-work definition (a request's prefill is its own uncached tokens' share; the rest of the pass is queue)."""

from __future__ import annotations

import threading
from typing import Any

import openai
import pytest

from llmotel_sim import SimServer

PREFILL_S_PER_TOKEN = 0.0001
BATCH_FACTOR = 0.01
# Decode steps of 2 simulated seconds (200 ms wall at speed 10): two requests sent together while another
# decodes arrive within one step on a busy machine, so the replica admits them in one prefill pass.
CONFIG = {
    "regions": [{"name": "r", "replicas": 1}],
    "replica": {
        "prefill_s_per_token": PREFILL_S_PER_TOKEN,
        "prefill_batch_factor": BATCH_FACTOR,
        "decode_step_s": 2.0,
        "decode_step_s_per_seq": 0.0,
    },
}
SIZES = (1000, 3000)  # uncached tokens of the two co-admitted requests


def _client(sim: SimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-share", max_retries=0)


def _pair_during_decode(sim: SimServer) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A long request decodes; two more are sent together meanwhile. Returns (long truth, pair truths, pair
    vLLM metrics)."""
    client = _client(sim)
    started = threading.Event()
    out: dict[str, Any] = {}
    together = threading.Barrier(2)

    def long_call() -> None:
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "long"}], stream=True,
            extra_headers={"x-sim-output-tokens": "4", "x-sim-input-tokens": "100"},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                started.set()
        out["long"] = sim.truth(stream.response.headers["x-sim-request-id"])

    def pair_call(i: int) -> None:
        together.wait(10)
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": f"pair {i}"}],
            extra_headers={"x-sim-output-tokens": "1", "x-sim-input-tokens": str(SIZES[i]),
                           "x-sim-server-timing": "vllm"},
        )
        out[i] = (sim.truth(raw.headers["x-sim-request-id"]), raw.http_response.json()["metrics"])

    long = threading.Thread(target=long_call)
    long.start()
    assert started.wait(10)
    pair = [threading.Thread(target=pair_call, args=(i,)) for i in range(2)]
    for t in pair:
        t.start()
    for t in [*pair, long]:
        t.join(20)
    return out["long"], [out[0][0], out[1][0]], [out[0][1], out[1][1]]


def test_shared_pass_splits_into_own_prefill_and_waiting_on_the_others(sim_factory: Any) -> None:
    for _ in range(3):  # a very busy machine may still deliver the two in different steps: try again
        sim = sim_factory(CONFIG, speed=10)
        _long, truths, metrics = _pair_during_decode(sim)
        if all(t["prefill_pass_requests"] == 2 for t in truths):
            break
    else:
        pytest.fail(f"the two requests were never admitted together: {truths}")
    a, b = truths
    assert a["wall_ts"]["admit"] == b["wall_ts"]["admit"] and a["wall_ts"]["prefill_end"] == b["wall_ts"]["prefill_end"]
    uncached = [t["input_tokens"] - t["cached_tokens"] for t in truths]
    assert a["prefill_pass_uncached_tokens"] == b["prefill_pass_uncached_tokens"] == sum(uncached)
    # One running sequence (the long request) raises the pass's cost per token by the batch factor.
    per_token = PREFILL_S_PER_TOKEN * (1 + BATCH_FACTOR)
    for t, n in zip(truths, uncached, strict=True):
        sim_ph = t["sim"]
        # Server definition: the whole pass. Own-work definition: this request's tokens; the rest is queue.
        assert sim_ph["prefill_s"] == pytest.approx(sum(uncached) * per_token, rel=1e-9)
        assert sim_ph["prefill_own_s"] == pytest.approx(n * per_token, rel=1e-9)
        assert sim_ph["prefill_others_s"] == pytest.approx((sum(uncached) - n) * per_token, rel=1e-9)
        assert sim_ph["queue_own_s"] == pytest.approx(sim_ph["queue_s"] + sim_ph["prefill_others_s"], abs=1e-9)
        # On the wall clock the pass is cut in the same proportion, inside [admit, prefill_end].
        ts, wall = t["wall_ts"], t["wall"]
        assert ts["admit"] <= ts["prefill_own_start"] <= ts["prefill_end"]
        assert wall["prefill_own_s"] == pytest.approx(wall["prefill_s"] * n / sum(uncached), abs=1e-6)
        assert wall["queue_own_s"] == pytest.approx(ts["prefill_own_start"] - ts["arrival"], abs=1e-6)
    # The shares tile the pass.
    assert a["sim"]["prefill_own_s"] + b["sim"]["prefill_own_s"] == pytest.approx(a["sim"]["prefill_s"], rel=1e-9)
    # What the server reports keeps vLLM's definition: the whole pass is each request's prefill.
    for t, m in zip(truths, metrics, strict=True):
        assert m["prefill_time_ms"] == pytest.approx(t["wall"]["prefill_s"] * 1000, abs=0.002)
        assert m["prefill_time_ms"] > t["wall"]["prefill_own_s"] * 1000


def test_alone_in_the_pass_both_definitions_agree(sim_factory: Any) -> None:
    sim = sim_factory(CONFIG, speed=10)
    raw = _client(sim).chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "alone"}],
        extra_headers={"x-sim-output-tokens": "1", "x-sim-input-tokens": "2000"},
    )
    t = sim.truth(raw.headers["x-sim-request-id"])
    assert t["prefill_pass_requests"] == 1
    for clock in ("sim", "wall"):
        ph = t[clock]
        assert ph["prefill_own_s"] == ph["prefill_s"] and ph["queue_own_s"] == ph["queue_s"]
        assert ph["prefill_others_s"] == 0.0
    assert t["wall_ts"]["prefill_own_start"] == t["wall_ts"]["admit"]
    assert t["sim"]["prefill_s"] == pytest.approx(2000 * PREFILL_S_PER_TOKEN, rel=1e-9)  # idle: no batch factor
