"""Shared pytest fixtures: the fleet simulator on loopback.

- ``sim``: one SimServer per test session (per xdist worker) running the default fleet at speed 50, seed 1.
  Shared by many tests: do not rely on its cache being cold; pin what you need with x-sim-* headers.
- ``sim_factory``: ``sim_factory(scenario_or_config=None, *, seed=None, speed=None) -> SimServer``, started;
  every server it made is closed at the end of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llmotel_sim import SimServer

SimFactory = Callable[..., SimServer]


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    with SimServer(None, seed=1, speed=50.0) as server:
        yield server


@pytest.fixture
def sim_factory() -> Iterator[SimFactory]:
    started: list[SimServer] = []

    def make(scenario_or_config: Any = None, *, seed: int | None = None, speed: float | None = None) -> SimServer:
        server = SimServer(scenario_or_config, seed=seed, speed=speed).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()
