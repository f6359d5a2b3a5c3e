"""The phase model: where the time of one call went (queue, prefill, first token, decode), and who says so.

Owns: ``server_timing`` (what a server reported about its own timing, read exactly), ``model`` (the split of one
call into tiling phases: measured where the server said, estimated elsewhere), ``learner`` (the per-key online
fit the estimates come from, its bounded memory and persisted state) and ``priors`` (cold-start assumptions).
May import: ``llmotel.record``, ``llmotel._semconv`` and the standard library; never OpenTelemetry, a provider
module, ``instrument`` or ``telemetry``.
"""

from __future__ import annotations

from llmotel.phases.model import DEFAULT_MODEL, PhaseModel

__all__ = ["DEFAULT_MODEL", "PhaseModel"]
