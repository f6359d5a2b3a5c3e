"""Timestamps of one call, taken on the hot path: O(1) per stream chunk, no allocation (unless per-chunk
metrics are opted into: then one list append per chunk).

All values are ``time.perf_counter_ns()``; ``begin`` also anchors them to wall-clock time once.
Every function here only assigns integers on the given CallCapture; none can raise for valid input.
"""

from __future__ import annotations

import time

from llmotel.record import CallCapture

_now = time.perf_counter_ns


# A stream's gaps kept for per-chunk metrics (chunk_metrics="each"); past this many, the rest are recorded as one mean.
MAX_GAPS = 10_000


def begin(keep_gaps: bool = False) -> CallCapture:
    """A capture whose call starts now; ``keep_gaps`` keeps every inter-chunk gap (bounded by MAX_GAPS)."""
    start = _now()
    return CallCapture(
        start_wall_ns=time.time_ns(), start_ns=start, attempt_start_ns=start, gaps=[] if keep_gaps else None
    )


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
        gaps = cap.gaps
        if gaps is not None and cap.first_content_ns and len(gaps) < MAX_GAPS:
            gaps.append(gap)
    cap.last_chunk_ns = now
    cap.chunk_count += 1
    if content:
        cap.content_chunk_count += 1
        if not cap.first_content_ns:
            cap.first_content_ns = now
            cap.first_content_chunk = cap.chunk_count


def end(cap: CallCapture) -> None:
    """The call is over (body read, stream ended or closed, error raised). Idempotent."""
    if not cap.end_ns:
        cap.end_ns = _now()
