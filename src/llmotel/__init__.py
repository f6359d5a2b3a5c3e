"""llmotel: OpenTelemetry for LLM calls that tells where the time, tokens, money and energy went."""

from __future__ import annotations

__version__ = "0.1.0"
