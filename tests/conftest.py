"""Shared pytest fixtures: the fleet simulator on loopback.

- ``sim``: one SimServer per test session (per xdist worker) running the default fleet at speed 50, seed 1.
  Shared by many tests: do not rely on its cache being cold; pin what you need with x-sim-* headers.
- ``sim_factory``: ``sim_factory(scenario_or_config=None, *, seed=None, speed=None) -> SimServer``, started;
  every server it made is closed at the end of the test.

Markers by directory: every test under tests/collector is marked ``collector`` (needs the built collector binary),
every test under tests/e2e ``collector`` and ``prometheus``; ``make unit`` runs ``-m "not collector and not
prometheus"``, so a new test there is left out of it without marking itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmotel_sim import SimServer

SimFactory = Callable[..., SimServer]

TESTS = Path(__file__).resolve().parent
# What each top-level test directory needs beyond the Python venv (markers registered in pyproject.toml).
NEEDS = {"collector": ("collector",), "e2e": ("collector", "prometheus"), "fairness": ("collector", "prometheus"),
         "tier": ("collector", "prometheus", "tier")}


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            top = item.path.resolve().relative_to(TESTS).parts[0]
        except (ValueError, IndexError):
            continue
        for marker in NEEDS.get(top, ()):
            item.add_marker(marker)


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
