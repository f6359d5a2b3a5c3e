"""llmotel: OpenTelemetry for LLM calls that tells where the time, tokens, money and energy went."""

from __future__ import annotations

from llmotel.agent import AgentRun, agent_run, current_run, tool
from llmotel.agent.adherence import Adherence

__version__ = "0.1.0"

__all__ = ["Adherence", "AgentRun", "__version__", "agent_run", "current_run", "tool"]

from llmotel.config import configure as configure
from llmotel.signals.tenant import tenant as tenant
