"""Run a scenario end to end in-process: start its fleet, drive its load, check its expected signature."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from llmotel_sim.config import SimConfig, resolve_config
from llmotel_sim.loadgen import LoadGenerator, LoadSpec, Result
from llmotel_sim.server import SimServer
from llmotel_sim.signatures import Check, evaluate


@dataclass(slots=True)
class ScenarioRun:
    config: SimConfig
    results: list[Result]
    checks: list[Check]
    wall_s: float
    origin_ns: int  # time.time_ns() at the plan's t=0: maps span start times back to plan time
    speed: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def lag_s(self) -> float:
        """p90 of how late (wall seconds) requests left after their planned time: ~0 on an idle machine.

        Simulated time follows the wall clock, so a client that falls behind its plan (a busy machine) sends
        requests at other simulated times than planned and measures its own stalls in every latency: a
        timing signature judged from such a run says more about the machine than about the scenario."""
        late = sorted(r.late_s for r in self.results)
        return late[int(0.9 * (len(late) - 1))] if late else 0.0


def run_scenario(
    scenario: SimConfig | dict[str, Any] | str | Path,
    speed: float | None = None,
    seed: int | None = None,
    progress: TextIO | None = None,
) -> ScenarioRun:
    """Start the scenario's SimServer, replay its load with the real async clients, evaluate ``expected``.

    Must not be called from a running event loop (it runs its own).
    """
    config = resolve_config(scenario)
    spec = LoadSpec.from_config(config)
    t0 = time.perf_counter()
    with SimServer(config, seed=seed, speed=speed) as sim:
        gen = LoadGenerator(
            sim.base_url, spec, sim.config.seed, sim.config.speed, truth=sim.app.truth, progress=progress
        )
        results = asyncio.run(gen.run())
        speed = sim.config.speed
    checks = evaluate(config.expected, results) if config.expected else []
    return ScenarioRun(config, results, checks, time.perf_counter() - t0, gen.origin_ns, speed)
