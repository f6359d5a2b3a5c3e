"""Synthetic calls through the real span pipeline (spans.start/finish: phases, calibration, energy, revision
tracking, metrics), without HTTP, so memory can be measured over 10^4-10^6 distinct keys quickly."""

from __future__ import annotations

import time

from llmotel import config
from llmotel.instrument import outcome
from llmotel.record import CallCapture, LLMRequest, LLMResponse, Usage
from llmotel.telemetry import spans

MS = 1_000_000
SETTINGS = config.resolve()  # what an instrumentor would resolve in this environment


def one_call(i: int, distinct: bool = True, stream: bool = True) -> None:
    """Call number ``i``; with ``distinct`` every key llmotel might remember (model, host, region, revision,
    tenant, prefix fingerprint) is new."""
    k = i if distinct else 0
    req = LLMRequest(
        provider="openai",
        operation="chat",
        request_model=f"model-{k}",
        server_address=f"host-{k}.example",
        server_port=443,
        stream=stream,
        region=f"region-{k}",
        region_source="config",
        prefix_fingerprint=f"{k:016x}",
        prefix_tokens=100,
    )
    now = time.perf_counter_ns()
    cap = CallCapture(
        start_wall_ns=time.time_ns(),
        start_ns=now,
        attempt_start_ns=now,
        headers_ns=now + 40 * MS,
        first_content_ns=now + 60 * MS if stream else 0,
        last_chunk_ns=now + 200 * MS if stream else 0,
        end_ns=now + 210 * MS,
        chunk_count=20 if stream else 0,
        content_chunk_count=20 if stream else 0,
    )
    resp = LLMResponse(
        response_id=f"id-{i}",
        response_model=f"model-{k}-rev-{i % 7}",
        finish_reasons=["stop"],
        status_code=200,
        usage=Usage(input_tokens=100 + i % 5000, output_tokens=20, cache_read_tokens=i % 100),
        system_fingerprint=f"fp-{i % 3}-{k}",
        headers={"x-ms-region": f"region-{k}"},
    )
    span = spans.start(req, cap, f"tenant-{k}")
    spans.finish(span, req, resp, cap, outcome.compute(req, resp, cap, None), SETTINGS)
