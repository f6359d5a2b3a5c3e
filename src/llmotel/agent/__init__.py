"""Agent runs, announced plans and executed tools as GenAI spans, with in-process plan adherence.

Owns: ``run`` (``agent_run``, ``tool``, the spans of a run) and ``adherence`` (the pure scoring, the same
definition as the collector's, both tested against ``semconv/adherence_cases.json``).
May import: ``llmotel._semconv``, OpenTelemetry's API and the standard library; never a provider module.
"""

from __future__ import annotations

from llmotel.agent.adherence import Adherence
from llmotel.agent.run import AgentRun, agent_run, current_run, tool

__all__ = ["Adherence", "AgentRun", "agent_run", "current_run", "tool"]
