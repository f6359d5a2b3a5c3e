"""Ground truth agrees with what a client measures on loopback, and the simulated clock is paced correctly."""

from __future__ import annotations

import statistics
import time

import openai

from llmotel.sim import SimServer

SPEC = {
    "regions": [{"name": "r", "replicas": 1}],
    "replica": {"prefill_s_per_token": 0.00005, "decode_step_s": 0.02, "decode_step_s_per_seq": 0.0},
}


def _one(server: SimServer, client: openai.OpenAI, i: int) -> tuple[float, float, float, dict]:  # type: ignore[type-arg]
    t0 = time.perf_counter()
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": f"trial {i}"}],
        stream=True,
        extra_headers={"x-sim-output-tokens": "10", "x-sim-input-tokens": "4000"},
    )
    first = None
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None
    return t0, first, end, server.truth(stream.response.headers["x-sim-request-id"])


def test_truth_matches_client_measurements(sim_factory) -> None:  # type: ignore[no-untyped-def]
    server = sim_factory(SPEC, speed=10)
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="tenant-t", max_retries=0)
    _one(server, client, -1)  # warm up imports and the connection
    ttft_err, total_err, sent_to_seen = [], [], []
    for i in range(8):
        t0, first, end, truth = _one(server, client, i)
        ts = truth["wall_ts"]
        # Same process, same perf_counter clock: client send <= server arrival <= server send <= client receive.
        assert t0 <= ts["arrival"] <= ts["first_chunk_sent"] <= first
        ttft_err.append(abs((first - t0) - truth["wall"]["ttft_s"]))
        total_err.append(abs((end - t0) - truth["wall"]["total_s"]))
        sent_to_seen.append(first - ts["first_chunk_sent"])
        # Model: 4000 tokens * 50us = 0.2 s prefill, one 20 ms step to the first token, 9 more steps of decode.
        assert abs(truth["sim"]["prefill_s"] - 0.2) < 1e-6
        assert abs(truth["sim"]["decode_s"] - 0.18) < 1e-6
        # The wall clock follows the model at speed 10 (scheduling jitter only, never accumulating).
        assert abs(truth["wall"]["prefill_s"] - 0.02) < 0.005
    assert statistics.median(ttft_err) < 0.005, ttft_err
    assert statistics.median(total_err) < 0.005, total_err
    assert statistics.median(sent_to_seen) < 0.005, sent_to_seen


def test_same_seed_same_plan_and_outputs() -> None:
    from llmotel.sim.config import load_scenario
    from llmotel.sim.loadgen import LoadSpec, plan

    cfg = load_scenario("regional_rollout_drift")
    a = [(x.at_s, x.tenant.name, x.session) for x in plan(LoadSpec.from_config(cfg), cfg.seed)]
    b = [(x.at_s, x.tenant.name, x.session) for x in plan(LoadSpec.from_config(cfg), cfg.seed)]
    c = [(x.at_s, x.tenant.name, x.session) for x in plan(LoadSpec.from_config(cfg), cfg.seed + 1)]
    assert a == b and a != c

    def texts(seed: int) -> list[str]:
        with SimServer(None, seed=seed, speed=200) as s:
            client = openai.OpenAI(base_url=s.base_url + "/v1", api_key="tenant-x", max_retries=0)
            return [
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"q{i}"}])
                .choices[0]
                .message.content
                or ""
                for i in range(3)
            ]

    assert texts(4) == texts(4)
    assert [len(t.split()) for t in texts(4)] != [len(t.split()) for t in texts(5)]
