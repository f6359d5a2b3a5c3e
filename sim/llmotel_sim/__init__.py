"""llmotel_sim: an OpenAI- and Anthropic-compatible LLM serving fleet on loopback, with ground truth and faults.

The SDK never imports this package. See docs/simulator.md.
"""

from __future__ import annotations

from llmotel_sim.config import ConfigError, SimConfig, default_config, load_scenario
from llmotel_sim.server import SimServer

__all__ = ["ConfigError", "SimConfig", "SimServer", "default_config", "load_scenario"]
