"""Ground truth for blame: the simulator records, for every call, who occupied its replica while it waited.

One replica admitting one sequence at a time (max_batch 1): tenant "hog" decodes 4 steps of 2 simulated seconds;
"victim" is sent once hog's first token arrived, so it waits for the rest of hog's decode. Hand-computed: every
simulated second of its wait belongs to hog (the only sequence running), so occupied_while_waiting_s has one
key, hog, equal to the victim's queue time, and hog itself, which never waited, has no occupancy.
"""

from __future__ import annotations

import threading
from typing import Any

import openai
import pytest

CONFIG = {
    "regions": [{"name": "r", "replicas": 1}],
    "replica": {"max_batch": 1, "decode_step_s": 2.0, "decode_step_s_per_seq": 0.0},
}


def _client(sim: Any, tenant: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url + "/v1", api_key=tenant, max_retries=0)


def test_the_victim_waited_on_the_hog_alone(sim_factory: Any) -> None:
    sim = sim_factory(CONFIG, speed=10.0)
    started = threading.Event()
    out: dict[str, str] = {}

    def hog() -> None:
        stream = _client(sim, "hog").chat.completions.create(
            model="m", messages=[{"role": "user", "content": "long"}], stream=True,
            extra_headers={"x-sim-output-tokens": "4", "x-sim-input-tokens": "100"},
        )
        out["hog"] = stream.response.headers["x-sim-request-id"]
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                started.set()

    thread = threading.Thread(target=hog)
    thread.start()
    assert started.wait(30)
    raw = _client(sim, "victim").chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "short"}],
        extra_headers={"x-sim-output-tokens": "1", "x-sim-input-tokens": "10"},
    )
    thread.join(30)
    victim = sim.truth(raw.headers["x-sim-request-id"])
    occupied = victim["occupied_while_waiting_s"]
    assert set(occupied) == {"hog"}, occupied
    assert victim["sim"]["queue_s"] > 0
    assert occupied["hog"] == pytest.approx(victim["sim"]["queue_s"], rel=1e-6, abs=1e-9)
    assert sim.truth(out["hog"])["occupied_while_waiting_s"] == {}
