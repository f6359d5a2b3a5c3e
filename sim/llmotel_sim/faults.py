"""Fault injection: parse ``x-sim-fault`` (or a scenario's random fault rates) into one Fault.

Fault durations (stall, slow_first_byte) are *wall* seconds: they are what a test measures on the client.
"""

from __future__ import annotations

from dataclasses import dataclass

# Faults answered before any work is queued (status-only).
STATUS_FAULTS = {"http_500": 500, "overloaded_529": 529, "rate_limit_429": 429}
BODY_FAULTS = {"malformed_json", "missing_usage", "wrong_type_usage", "huge_response"}
STREAM_FAULTS = {"disconnect_after", "stall", "slow_first_byte", "malformed_sse", "error_event"}
ALL_FAULTS = set(STATUS_FAULTS) | BODY_FAULTS | STREAM_FAULTS


class FaultError(ValueError):
    pass


@dataclass(slots=True, frozen=True)
class Fault:
    kind: str = ""
    after_chunk: int = 0  # disconnect_after:N / stall:N:S — counted in content chunks sent
    seconds: float = 0.0  # stall / slow_first_byte

    def __bool__(self) -> bool:
        return bool(self.kind)

    @property
    def status(self) -> int:
        return STATUS_FAULTS.get(self.kind, 0)

    def label(self) -> str:
        if self.kind == "disconnect_after":
            return f"disconnect_after:{self.after_chunk}"
        if self.kind == "stall":
            return f"stall:{self.after_chunk}:{self.seconds:g}"
        if self.kind == "slow_first_byte":
            return f"slow_first_byte:{self.seconds:g}"
        return self.kind


NO_FAULT = Fault()


def parse_fault(value: str | None) -> Fault:
    """Parse a fault spec; raises FaultError with the list of valid faults for anything unknown."""
    if not value:
        return NO_FAULT
    kind, _, rest = value.strip().partition(":")
    args = rest.split(":") if rest else []
    try:
        if kind == "disconnect_after":
            return Fault(kind, after_chunk=int(args[0]))
        if kind == "stall":
            return Fault(kind, after_chunk=int(args[0]), seconds=float(args[1]))
        if kind == "slow_first_byte":
            return Fault(kind, seconds=float(args[0]))
    except (IndexError, ValueError) as exc:
        raise FaultError(f"bad x-sim-fault {value!r}: {exc}") from exc
    if kind in ALL_FAULTS and not args:
        return Fault(kind)
    raise FaultError(
        f"unknown x-sim-fault {value!r}; valid: {sorted(ALL_FAULTS)} "
        "(disconnect_after:N, stall:AFTER_CHUNK:SECONDS, slow_first_byte:SECONDS)"
    )
