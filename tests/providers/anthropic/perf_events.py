"""Per-event cost of the Anthropic stream path, in-process (not collected by pytest; the peer comparison is bench/'s):

    .venv/bin/python tests/anthropic/perf_events.py

Feeds pre-built SDK event models (message_start, block start, ping, N text deltas, block stop, message_delta,
message_stop) through (a) a bare iterator and (b) llmotel's stream hook (what it puts in a stream's ``_iterator``)
with the Anthropic event reader, a real span start/finish (SDK TracerProvider, no exporter) and the phase model,
for N = 50 and N = 1050. Reports CPU time
(``process_time_ns``) per stream, the added CPU per 50-delta stream, and the added CPU per extra event (the slope).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from anthropic._models import construct_type
from anthropic.types import RawMessageStreamEvent
from opentelemetry.sdk.trace import TracerProvider

from llmotel import config
from llmotel.instrument import capture
from llmotel.instrument.call import Call
from llmotel.instrument.streams import HookedIterator
from llmotel.providers import anthropic as provider
from llmotel.providers._anthropic_read import read_request
from llmotel.telemetry import spans

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench._results import machine


def _events(n: int) -> list[Any]:
    start = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": 0},
    }
    raw: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    raw += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}}] * n
    raw += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": n}},
        {"type": "message_stop"},
    ]
    return [construct_type(type_=RawMessageStreamEvent, value=e) for e in raw]


class _Stream:
    def __init__(self, events: list[Any]) -> None:
        self._it = iter(events)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._it)


def _cpu_ns(fn: Callable[[], None], reps: int = 200, rounds: int = 7) -> float:
    samples = []
    for _ in range(rounds):
        t = time.process_time_ns()
        for _ in range(reps):
            fn()
        samples.append((time.process_time_ns() - t) / reps)
    return statistics.median(samples)


def main() -> None:
    spans.configure(TracerProvider())
    settings = config.resolve()
    results: dict[int, tuple[float, float]] = {}
    for n in (50, 1050):
        events = _events(n)

        def bare(events: list[Any] = events) -> None:
            for _ in _Stream(events):
                pass

        def instrumented(events: list[Any] = events) -> None:
            request = read_request({"model": "claude-haiku-4-5", "max_tokens": 64}, stream=True)
            cap = capture.begin()
            call = Call(
                request, cap, spans.start(request, cap, ""), provider.read_message_result, provider.read_event, settings
            )
            for _ in HookedIterator(iter(_Stream(events)), call):
                pass

        results[n] = (_cpu_ns(bare), _cpu_ns(instrumented))
    print(machine())
    for n, (b, i) in results.items():
        print(f"{n:5d} deltas: bare {b / 1e3:8.1f} us/stream, instrumented {i / 1e3:8.1f} us/stream")
    added_50 = results[50][1] - results[50][0]
    slope = ((results[1050][1] - results[1050][0]) - added_50) / 1000
    print(f"added CPU per 50-delta stream (span + 4 phases + reader): {added_50 / 1e3:.1f} us")
    print(f"added CPU per extra event (hook + capture + reader): {slope:.0f} ns")


if __name__ == "__main__":
    main()
