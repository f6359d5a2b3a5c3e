"""Energy and carbon per call (method: docs/energy.md).

Contract (spans.py relies on it): ``estimate`` returns an EnergyEstimate, or None when the token
counts needed are missing. Never raises; never invents a point value for an unknown model
(a range by family, or the widest range, with model_size_source saying so).

Placeholder until the energy issue lands: always None, so no energy attributes are emitted.
"""

from __future__ import annotations

from llmotel.record import EnergyEstimate, Usage


def estimate(model: str, region: str, usage: Usage, server_time_s: float | None) -> EnergyEstimate | None:
    """Never raises."""
    return None
