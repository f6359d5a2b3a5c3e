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


class _SendClock:
    """Records when the transport sends each request (after the SDK built it): the client's own t0."""

    def __init__(self) -> None:
        self.sent = 0.0

    def hook(self, _request: object) -> None:
        self.sent = time.perf_counter()


def _one(
    server: SimServer, client: openai.OpenAI, clock: _SendClock, i: int
) -> tuple[float, float, float, float, dict]:  # type: ignore[type-arg]
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": f"trial {i}"}],
        stream=True,
        extra_headers={"x-sim-output-tokens": "10", "x-sim-input-tokens": "4000"},
    )
    first = last = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
    end = time.perf_counter()
    assert first is not None and last is not None
    return clock.sent, first, last, end, server.truth(stream.response.headers["x-sim-request-id"])


def test_truth_matches_client_measurements(sim_factory) -> None:  # type: ignore[no-untyped-def]
    server = sim_factory(SPEC, speed=10)
    clock = _SendClock()
    client = openai.OpenAI(
        base_url=server.base_url + "/v1",
        api_key="tenant-t",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(event_hooks={"request": [clock.hook]}),
    )
    _one(server, client, clock, -1)  # warm up imports and the connection
    ttft_err: list[float] = []
    decode_err: list[float] = []
    sent_to_seen: list[float] = []
    pace_err: list[float] = []
    for i in range(8):
        sent, first, last, end, truth = _one(server, client, clock, i)
        ts = truth["wall_ts"]
        # Same process, same perf_counter clock: client send <= server arrival <= server send <= client receive
        # (the transport's request hook may fire a few microseconds after the bytes left).
        assert sent <= ts["arrival"] + 0.001 and ts["arrival"] <= ts["first_chunk_sent"] <= first <= last <= end
        ttft_err.append(abs((first - sent) - truth["wall"]["ttft_s"]))
        decode_err.append(abs((last - first) - (ts["last_token"] - ts["first_visible"])))
        sent_to_seen.append(first - ts["first_chunk_sent"])
        # Model: 4000 tokens * 50us = 0.2 s prefill, one 20 ms step to the first token, 9 more steps of decode.
        assert abs(truth["sim"]["prefill_s"] - 0.2) < 1e-6
        assert abs(truth["sim"]["decode_s"] - 0.18) < 1e-6
        # The wall clock follows the model at speed 10 (scheduling jitter only, never accumulating).
        pace_err.append(abs(truth["wall"]["prefill_s"] - 0.02))
    assert statistics.median(ttft_err) < 0.005, ttft_err
    assert statistics.median(decode_err) < 0.005, decode_err
    assert statistics.median(sent_to_seen) < 0.005, sent_to_seen
    assert statistics.median(pace_err) < 0.005, pace_err


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
