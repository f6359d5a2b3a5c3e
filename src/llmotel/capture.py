"""Timestamps of one call, taken on the hot path: O(1) per stream chunk, no allocation.

All values are ``time.perf_counter_ns()``; ``begin`` also anchors them to wall-clock time once.
Every function here only assigns integers on the given CallCapture; none can raise for valid input.
"""

from __future__ import annotations

import time

from llmotel.record import CallCapture

_now = time.perf_counter_ns


def begin() -> CallCapture:
    """A capture whose call starts now."""
    start = _now()
    return CallCapture(start_wall_ns=time.time_ns(), start_ns=start, attempt_start_ns=start)


def attempt_sent(cap: CallCapture, retries_taken: int) -> None:
    """An HTTP attempt is about to be sent; the last one sent is the one that answered.

    The first attempt starts with the call (request preparation counts as queue time), so a
    ``retries`` phase exists only when the client re-sent.
    """
    if retries_taken:
        cap.attempt_start_ns = _now()
        cap.resend_count = retries_taken


def headers_received(cap: CallCapture) -> None:
    cap.headers_ns = _now()


def chunk(cap: CallCapture, now: int, content: bool, stall_threshold_ns: int) -> None:
    """One stream chunk arrived at ``now`` (one clock read by the caller): counters, running max gap, stalls."""
    last = cap.last_chunk_ns
    if last:
        gap = now - last
        if gap > cap.max_gap_ns:
            cap.max_gap_ns = gap
        if gap > stall_threshold_ns:
            cap.stall_count += 1
    cap.last_chunk_ns = now
    cap.chunk_count += 1
    if content:
        cap.content_chunk_count += 1
        if not cap.first_content_ns:
            cap.first_content_ns = now


def end(cap: CallCapture) -> None:
    """The call is over (body read, stream ended or closed, error raised). Idempotent."""
    if not cap.end_ns:
        cap.end_ns = _now()
