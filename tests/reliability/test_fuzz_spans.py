"""Property tests over span building: arbitrary timestamps (out of order, zero, equal), token counts, response
headers llmotel reads (server timing, rate limits, region) and body timing objects go into ``outcome.compute`` and
``spans.finish``.
It never raises, exports exactly one call span, and the phase children tile it exactly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _fuzz import FUZZ, TRIED, Pipeline, assert_one_tiled_call, json_values
from hypothesis import given
from hypothesis import strategies as st

from llmotel import config
from llmotel.instrument import call as call_mod
from llmotel.instrument import outcome
from llmotel.phases import server_timing
from llmotel.record import CallCapture, LLMRequest, LLMResponse, Usage
from llmotel.telemetry import spans

HEADERS = sorted(call_mod.KEEP_HEADERS)
_NUMBERISH = st.one_of(
    st.text(max_size=12),
    st.integers(-10, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1ms", "20ms", "1m3s", "0.5s", "6m0s", "-1", "", "NaN", "queue;dur=12, inference;dur=40"]),
)
_OFFSET = st.one_of(st.just(0), st.integers(-(10**9), 10**10))  # ns relative to the call start; 0 = "not seen"
_COUNT = st.one_of(st.none(), st.integers(0, 10**7), st.sampled_from([0, 1, 2**63 - 1]))


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    p = Pipeline()
    yield p
    spans.configure()


@st.composite
def calls(draw: st.DrawFn) -> tuple[LLMRequest, LLMResponse, CallCapture, bool]:
    stream = draw(st.booleans())
    start = 10**12
    rel = {name: draw(_OFFSET) for name in ("attempt", "headers", "first", "last", "end")}
    cap = CallCapture(
        start_wall_ns=1_700_000_000 * 10**9,
        start_ns=start,
        attempt_start_ns=start + rel["attempt"] if rel["attempt"] else start,
        headers_ns=start + rel["headers"] if rel["headers"] else 0,
        first_content_ns=start + rel["first"] if rel["first"] else 0,
        last_chunk_ns=start + rel["last"] if rel["last"] else 0,
        end_ns=start + rel["end"] if rel["end"] else 0,
        chunk_count=draw(st.integers(0, 10**6)),
        content_chunk_count=draw(st.integers(0, 10**6)),
        max_gap_ns=draw(st.integers(0, 10**10)),
        stall_count=draw(st.integers(0, 100)),
        resend_count=draw(st.integers(0, 5)),
        abandoned=draw(st.booleans()),
    )
    req = LLMRequest(
        provider=draw(st.sampled_from(["openai", "anthropic", "vllm", "tgi"])),
        operation=draw(st.sampled_from(["chat", "text_completion", "embeddings", "count_tokens"])),
        request_model=draw(st.text(max_size=30)),
        server_address="127.0.0.1",
        server_port=1,
        stream=stream,
        region=draw(st.text(max_size=10)),
        emit_phases=draw(st.booleans()),
    )
    headers = draw(st.dictionaries(st.sampled_from(HEADERS), _NUMBERISH, max_size=8))
    body_timing = draw(
        st.dictionaries(
            st.sampled_from(list(server_timing.BODY_KEYS) or ["timings"]),
            json_values(["queue", "prompt_ms", "predicted_ms", "prompt_n", "cache_n"]),
            max_size=2,
        )
    )
    resp = LLMResponse(
        response_id=draw(st.text(max_size=10)),
        response_model=draw(st.text(max_size=30)),
        finish_reasons=draw(st.lists(st.text(max_size=8), max_size=3)),
        usage=Usage(
            input_tokens=draw(_COUNT),
            output_tokens=draw(_COUNT),
            cache_read_tokens=draw(_COUNT),
            cache_write_tokens=draw(_COUNT),
            reasoning_tokens=draw(_COUNT),
        ),
        system_fingerprint=draw(st.text(max_size=10)),
        status_code=draw(st.sampled_from([200, 200, 200, 201, 429, 500, 0])),
        headers=headers,
        body_timing={k: v for k, v in body_timing.items()},
    )
    error = draw(st.booleans())
    return req, resp, cap, error


@FUZZ
@given(c=calls())
def test_span_building_never_raises_and_tiles(pipeline: Pipeline, c: tuple[Any, ...]) -> None:
    req, resp, cap, error = c
    TRIED["span builds"] += 1
    span = spans.start(req, cap, "t")
    due = 200 <= resp.status_code < 300 and req.emit_phases
    err = RuntimeError("x") if error else None
    spans.finish(span, req, resp, cap, outcome.compute(req, resp, cap, err), config.resolve(), err)
    assert_one_tiled_call(pipeline.take(), phases_expected=due)


@FUZZ
@given(headers=st.dictionaries(st.sampled_from(HEADERS), _NUMBERISH, max_size=10), body=json_values(["x"]))
def test_header_and_body_timing_parsers_never_raise(headers: dict[str, str], body: Any) -> None:
    TRIED["header parses"] += 1
    timing = server_timing.parse(headers, body if isinstance(body, dict) else {})
    assert timing.format
    for v in (timing.queue_s, timing.prefill_s, timing.decode_s, timing.total_s):
        assert v is None or isinstance(v, float)
