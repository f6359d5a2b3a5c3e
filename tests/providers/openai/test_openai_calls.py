"""The real openai client over loopback HTTP against the simulator: span tree, tiling, attribute values."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from _genai_content import input_messages, output_messages
from _oai import PHASES, Telemetry, assert_tiles
from llmotel import _semconv as sc
from llmotel_sim import SimServer

MODEL = "gpt-4o-mini"
MSGS = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]


def _client(sim: SimServer, **kw: object) -> OpenAI:
    return OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", **kw)  # type: ignore[arg-type]


def _aclient(sim: SimServer, **kw: object) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", **kw)  # type: ignore[arg-type]


def _hdr(n: int, **extra: str) -> dict[str, str]:
    return {"x-sim-output-tokens": str(n), **extra}


def _names(children: list) -> list[str]:  # type: ignore[type-arg]
    return [c.name for c in children]


def test_chat_non_stream_span_matches_response_and_truth(sim: SimServer, telemetry: Telemetry) -> None:
    raw = _client(sim).chat.completions.with_raw_response.create(model=MODEL, messages=MSGS, extra_headers=_hdr(7))
    r = raw.parse()
    truth = sim.truth(raw.headers["x-sim-request-id"])
    parent, kids = telemetry.one_call()
    assert parent.name == f"chat {MODEL}"
    assert parent.kind.name == "CLIENT"
    assert _names(kids) == PHASES
    assert_tiles(parent, kids)
    a = parent.attributes
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.GEN_AI_REQUEST_STREAM] is False
    assert a[sc.GEN_AI_RESPONSE_ID] == r.id
    assert a[sc.GEN_AI_RESPONSE_MODEL] == r.model == truth["resolved_model"]
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == r.usage.prompt_tokens == truth["input_tokens"]
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 7 == truth["output_tokens"]
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == truth["cached_tokens"]
    assert a[sc.LLMOTEL_USAGE_SOURCE] == "provider"
    assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == (r.choices[0].finish_reason,)
    assert a[sc.GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT] == truth["system_fingerprint"]
    assert a[sc.LLMOTEL_MODEL_REVISION] == truth["system_fingerprint"]
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert a[sc.SERVER_PORT] == sim.port
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert sc.HTTP_REQUEST_RESEND_COUNT not in a
    assert a[sc.LLMOTEL_RESPONSE_TRUNCATED] is False
    assert len(str(a[sc.LLMOTEL_PROMPT_PREFIX_FINGERPRINT])) == 16
    # Region: x-ms-region when the serving region has an Azure name, else the cf-ray colo.
    if "x-ms-region" in raw.headers:
        assert a[sc.LLMOTEL_SERVER_REGION] == raw.headers["x-ms-region"]
        assert a[sc.LLMOTEL_SERVER_REGION_SOURCE] == "header"
    else:
        assert a[sc.LLMOTEL_SERVER_REGION] == raw.headers["cf-ray"].rsplit("-", 1)[1]
        assert a[sc.LLMOTEL_SERVER_REGION_SOURCE] == "cf_ray"
    # Non-streaming: the first-token boundary was not observed.
    first_token = kids[PHASES.index("first_token")]
    assert first_token.attributes[sc.LLMOTEL_PHASE_FIRST_TOKEN_OBSERVED] is False
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a
    for k in kids:
        assert k.attributes[sc.LLMOTEL_PHASE_SOURCE] in ("server", "client", "estimated")
    # Privacy by default: no content, no request headers.
    assert sc.GEN_AI_INPUT_MESSAGES not in a and sc.GEN_AI_OUTPUT_MESSAGES not in a
    assert not any("x-sim" in str(v) for v in a.values())


def test_chat_stream_without_usage_counts_chunks(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    stream = client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(12))
    assert isinstance(stream, openai.Stream)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
    parent, kids = telemetry.one_call()
    assert _names(kids) == PHASES
    assert_tiles(parent, kids)
    a = parent.attributes
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 12
    assert a[sc.LLMOTEL_USAGE_SOURCE] == "estimated"
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a  # never invented
    ttfc = a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0 < ttfc < (parent.end_time - parent.start_time) / 1e9
    decode = kids[-1]
    assert decode.attributes[sc.LLMOTEL_DECODE_CHUNK_COUNT] == 12
    assert decode.attributes[sc.LLMOTEL_PHASE_SOURCE] in ("client", "server")
    # decode starts at the first content chunk: parent start + TTFC.
    assert abs((decode.start_time - parent.start_time) / 1e9 - ttfc) < 1e-6
    assert kids[PHASES.index("first_token")].attributes[sc.LLMOTEL_PHASE_FIRST_TOKEN_OBSERVED] is True
    assert sc.LLMOTEL_STREAM_ABANDONED not in a


def test_chat_stream_with_usage_uses_provider_usage(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MSGS, stream=True, stream_options={"include_usage": True}, extra_headers=_hdr(5)
        )
    )
    usage = chunks[-1].usage
    parent, _ = telemetry.one_call()
    assert parent.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == usage.completion_tokens == 5
    assert parent.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == usage.prompt_tokens
    assert parent.attributes[sc.LLMOTEL_USAGE_SOURCE] == "provider"


def test_stream_context_manager_returns_proxy_and_ends_span(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    with client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(4)) as s:
        assert isinstance(s, openai.Stream)
        assert s.response.status_code == 200
        n = sum(1 for _ in s)
    assert n >= 4
    parent, kids = telemetry.one_call()
    assert _names(kids) == PHASES
    assert sc.LLMOTEL_STREAM_ABANDONED not in parent.attributes


async def test_async_chat_non_stream_and_stream(sim: SimServer, telemetry: Telemetry) -> None:
    client = _aclient(sim)
    r = await client.chat.completions.create(model=MODEL, messages=MSGS, extra_headers=_hdr(3))
    stream = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(6))
    assert isinstance(stream, openai.AsyncStream)
    async with stream as s:
        got = [c async for c in s]
    assert got
    (p1, k1), (p2, k2) = telemetry.calls()
    assert p1.attributes[sc.GEN_AI_RESPONSE_ID] == r.id
    assert p1.attributes[sc.GEN_AI_REQUEST_STREAM] is False
    assert p2.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert p2.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 6
    for p, k in ((p1, k1), (p2, k2)):
        assert _names(k) == PHASES
        assert_tiles(p, k)


def test_chat_stream_helper(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    with client.chat.completions.stream(model=MODEL, messages=MSGS, extra_headers=_hdr(5)) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.GEN_AI_RESPONSE_ID] == final.id
    assert parent.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert _names(kids) == PHASES
    assert_tiles(parent, kids)


async def test_async_chat_stream_helper(sim: SimServer, telemetry: Telemetry) -> None:
    client = _aclient(sim)
    async with client.chat.completions.stream(model=MODEL, messages=MSGS, extra_headers=_hdr(5)) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.GEN_AI_RESPONSE_ID] == final.id
    assert _names(kids) == PHASES


def test_chat_parse(sim: SimServer, telemetry: Telemetry) -> None:
    r = _client(sim).chat.completions.parse(model=MODEL, messages=MSGS, extra_headers=_hdr(4))
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.GEN_AI_RESPONSE_ID] == r.id
    assert parent.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == r.usage.completion_tokens
    assert _names(kids) == PHASES


def test_tool_calls_recorded(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ("a", "b")]
    headers = _hdr(4, **{"x-sim-tool-calls": "search_flights,book_hotel"})
    r = client.chat.completions.create(model=MODEL, messages=MSGS, tools=tools, extra_headers=headers)
    names = [tc.function.name for tc in r.choices[0].message.tool_calls]
    list(client.chat.completions.create(model=MODEL, messages=MSGS, tools=tools, stream=True, extra_headers=headers))
    (p1, _), (p2, _) = telemetry.calls()
    assert list(p1.attributes[sc.LLMOTEL_RESPONSE_TOOL_NAMES]) == names == ["search_flights", "book_hotel"]
    assert list(p2.attributes[sc.LLMOTEL_RESPONSE_TOOL_NAMES]) == names
    # Same system prompt + tools -> same prefix fingerprint.
    assert p1.attributes[sc.LLMOTEL_PROMPT_PREFIX_FINGERPRINT] == p2.attributes[sc.LLMOTEL_PROMPT_PREFIX_FINGERPRINT]


def test_truncation_marked(sim: SimServer, telemetry: Telemetry) -> None:
    r = _client(sim).chat.completions.create(model=MODEL, messages=MSGS, max_tokens=3, extra_headers=_hdr(20))
    assert r.choices[0].finish_reason == "length"
    parent, _ = telemetry.one_call()
    assert parent.attributes[sc.LLMOTEL_RESPONSE_TRUNCATED] is True
    assert parent.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 3
    assert tuple(parent.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("length",)


def test_responses_create_parse_and_stream(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    r = client.responses.create(model=MODEL, input="hi", instructions="be brief", extra_headers=_hdr(4))
    p = client.responses.parse(model=MODEL, input="hi", extra_headers=_hdr(3))
    events = list(client.responses.create(model=MODEL, input="hi", stream=True, extra_headers=_hdr(6)))
    final = next(e for e in events if e.type == "response.completed").response
    with client.responses.stream(model=MODEL, input="hi", extra_headers=_hdr(2)) as s:
        for _ in s:
            pass
        streamed = s.get_final_response()
    calls = telemetry.calls()
    assert len(calls) == 4
    expected = [(r.id, r.usage.output_tokens), (p.id, p.usage.output_tokens), (final.id, 6), (streamed.id, 2)]
    for (parent, kids), (rid, out) in zip(calls, expected, strict=True):
        assert parent.attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
        assert parent.attributes[sc.GEN_AI_RESPONSE_ID] == rid
        assert parent.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == out
        assert parent.attributes[sc.LLMOTEL_USAGE_SOURCE] == "provider"
        assert _names(kids) == PHASES
        assert_tiles(parent, kids)
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in calls[2][0].attributes


async def test_async_responses_stream(sim: SimServer, telemetry: Telemetry) -> None:
    client = _aclient(sim)
    stream = await client.responses.create(model=MODEL, input="hi", stream=True, extra_headers=_hdr(5))
    n = 0
    async for _ in stream:
        n += 1
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert _names(kids) == PHASES


def test_completions_and_embeddings(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    c = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", max_tokens=8, extra_headers=_hdr(5))
    chunks = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="hi", max_tokens=8, stream=True, extra_headers=_hdr(5)
        )
    )
    e = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    (p1, k1), (p2, k2), (p3, k3) = telemetry.calls()
    assert p1.name == "text_completion gpt-3.5-turbo-instruct"
    assert p1.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == c.usage.completion_tokens
    assert p2.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == sum(1 for ch in chunks if ch.choices and ch.choices[0].text)
    assert p3.name == "embeddings text-embedding-3-small"
    assert p3.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == e.usage.prompt_tokens
    for p, k in ((p1, k1), (p2, k2), (p3, k3)):
        assert _names(k) == PHASES
        assert_tiles(p, k)


def test_with_raw_response_stream_and_streaming_response(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(4)
    )
    stream = raw.parse()
    assert isinstance(stream, openai.Stream)
    assert sum(1 for c in stream if c.choices and c.choices[0].delta.content) == 4
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MSGS, extra_headers=_hdr(3)
    ) as resp:
        body = resp.parse()
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(5)
    ) as resp:
        n = sum(1 for _ in resp.parse())
    assert n >= 5
    (p1, k1), (p2, k2), (p3, k3) = telemetry.calls()
    assert p1.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert p2.attributes[sc.GEN_AI_RESPONSE_ID] == body.id
    assert p3.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    for p, k in ((p1, k1), (p2, k2), (p3, k3)):
        assert _names(k) == PHASES
        assert_tiles(p, k)
        assert sc.LLMOTEL_STREAM_ABANDONED not in p.attributes


async def test_async_raw_and_streaming_response(sim: SimServer, telemetry: Telemetry) -> None:
    client = _aclient(sim)
    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS, extra_headers=_hdr(3))
    r = raw.parse()
    async with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(4)
    ) as resp:
        n = 0
        async for _ in await resp.parse():
            n += 1
    (p1, _), (p2, k2) = telemetry.calls()
    assert p1.attributes[sc.GEN_AI_RESPONSE_ID] == r.id
    assert p2.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert _names(k2) == PHASES


def test_429_then_retry_success(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim, max_retries=2)
    headers = _hdr(5, **{"x-sim-fault": "rate_limit_429", "x-sim-fault-times": "1"})
    list(client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=headers))
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.HTTP_REQUEST_RESEND_COUNT] == 1
    assert parent.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert sc.ERROR_TYPE not in parent.attributes
    assert _names(kids) == ["retries", *PHASES]
    assert_tiles(parent, kids)
    assert kids[0].attributes[sc.LLMOTEL_PHASE_SOURCE] == "client"
    assert kids[0].end_time > kids[0].start_time  # the failed attempt + back-off took time
    # Rate-limit headers of the attempt that answered (the 429's are not mixed in).
    assert parent.attributes.get(sc.LLMOTEL_RATELIMIT_REQUESTS_REMAINING) != 0


def test_429_exhausted_is_error_without_phases(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim, max_retries=1)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model=MODEL, messages=MSGS, extra_headers=_hdr(5, **{"x-sim-fault": "rate_limit_429"})
        )
    parent, kids = telemetry.one_call()
    assert kids == []
    assert parent.attributes[sc.ERROR_TYPE] == "RateLimitError"
    assert parent.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 429
    assert parent.attributes[sc.HTTP_REQUEST_RESEND_COUNT] == 1
    assert parent.attributes[sc.LLMOTEL_RATELIMIT_REQUESTS_REMAINING] == 0
    assert parent.attributes[sc.LLMOTEL_RATELIMIT_REQUESTS_LIMIT] == 1
    assert parent.attributes[sc.LLMOTEL_RATELIMIT_REQUESTS_RESET] == pytest.approx(0.02)
    assert parent.status.status_code.name == "ERROR"


def test_5xx_error(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim, max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=MSGS, extra_headers={"x-sim-fault": "http_500"})
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.ERROR_TYPE] == "InternalServerError"
    assert parent.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 500
    assert kids == []


def test_mid_stream_disconnect(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim, max_retries=0)
    got = 0
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(20, **{"x-sim-fault": "disconnect_after:3"})
        ):
            got += 1
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.ERROR_TYPE]
    assert parent.status.status_code.name == "ERROR"
    assert _names(kids) == PHASES  # the stream had started: phases of what was received
    assert_tiles(parent, kids)


def test_early_break_is_abandoned_on_gc(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    stream = client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(30))
    for i, _ in enumerate(stream):
        if i == 2:
            break
    assert telemetry.exporter.get_finished_spans() == ()  # still open while referenced
    stream.close()
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.LLMOTEL_STREAM_ABANDONED] is True
    assert _names(kids) == PHASES
    assert_tiles(parent, kids)


def test_abandoned_stream_collected(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)

    def consume_two() -> None:
        stream = client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(30))
        next(stream)
        next(stream)

    consume_two()
    gc.collect()
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.LLMOTEL_STREAM_ABANDONED] is True
    assert_tiles(parent, kids)


def test_exception_in_user_loop(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)

    class Boom(Exception):
        pass

    stream = client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(10))
    with pytest.raises(Boom), stream as s:
        for i, _ in enumerate(s):
            if i == 3:
                raise Boom
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.LLMOTEL_STREAM_ABANDONED] is True
    assert sc.ERROR_TYPE not in parent.attributes  # the user's error is not the call's
    assert_tiles(parent, kids)


@pytest.mark.llmotel(stall_threshold_s=0.05)
def test_stall_counted(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    # stall 0.2 wall seconds after content chunk 2.
    list(
        client.chat.completions.create(
            model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(6, **{"x-sim-fault": "stall:2:0.2"})
        )
    )
    _, kids = telemetry.one_call()
    decode = kids[-1].attributes
    assert decode[sc.LLMOTEL_DECODE_STALL_COUNT] == 1
    assert decode[sc.LLMOTEL_DECODE_MAX_CHUNK_GAP] >= 0.05


@pytest.mark.parametrize("mode", ["tgi", "llama_cpp", "vllm", "openai_processing_ms"])
def test_server_timing_formats(sim: SimServer, telemetry: Telemetry, mode: str) -> None:
    client = _client(sim)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MSGS, extra_headers=_hdr(5, **{"x-sim-server-timing": mode})
    )
    raw.parse()
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.LLMOTEL_SERVER_TIMING_FORMAT] == mode
    if mode in ("tgi",):
        assert parent.attributes[sc.LLMOTEL_SERVER_PROCESSING_TIME] == pytest.approx(
            int(raw.headers["x-total-time"]) / 1000
        )
    if mode == "openai_processing_ms":
        assert parent.attributes[sc.LLMOTEL_SERVER_PROCESSING_TIME] == pytest.approx(
            int(raw.headers["openai-processing-ms"]) / 1000
        )
    assert_tiles(parent, kids)


def test_tenant_context_and_async_tasks(sim: SimServer, telemetry: Telemetry) -> None:
    import llmotel

    client = _client(sim)
    with llmotel.tenant("acme"):
        client.chat.completions.create(model=MODEL, messages=MSGS, extra_headers=_hdr(2))

    @llmotel.tenant("globex")
    async def run() -> None:
        aclient = _aclient(sim)
        await asyncio.gather(
            *(asyncio.create_task(aclient.chat.completions.create(model=MODEL, messages=MSGS)) for _ in range(2))
        )

    asyncio.run(run())
    client.chat.completions.create(model=MODEL, messages=MSGS, user="u-1", extra_headers=_hdr(2))
    tenants = [p.attributes.get(sc.LLMOTEL_TENANT_ID) for p, _ in telemetry.calls()]
    assert tenants == ["acme", "globex", "globex", None]  # request user is not a tenant unless configured


def test_trace_context_propagation_opt_in_copies_headers(sim: SimServer, telemetry: Telemetry) -> None:
    import httpx2

    seen: list[httpx2.Headers] = []
    http = openai.DefaultHttpxClient(event_hooks={"request": [lambda req: seen.append(req.headers)]})
    client = _client(sim, http_client=http)
    mine = _hdr(2)
    telemetry.reinstrument(propagate_trace_context="never")
    client.chat.completions.create(model=MODEL, messages=MSGS, extra_headers=mine)
    assert "traceparent" not in seen[-1]  # off when set to never (test_openai_propagation.py: the modes)
    telemetry.reinstrument(propagate_trace_context=True)
    client.chat.completions.create(model=MODEL, messages=MSGS, extra_headers=mine)
    assert mine == _hdr(2)  # the caller's dict is never mutated
    (_, _), (p2, _) = telemetry.calls()
    traceparent = seen[-1]["traceparent"]
    assert format(p2.context.span_id, "016x") in traceparent
    assert format(p2.context.trace_id, "032x") in traceparent


def test_nested_user_span_is_parent(sim: SimServer, telemetry: Telemetry) -> None:
    from opentelemetry import trace

    tracer = trace.get_tracer("app", tracer_provider=telemetry_provider(telemetry))
    with tracer.start_as_current_span("handler") as handler:
        _client(sim).chat.completions.create(model=MODEL, messages=MSGS, extra_headers=_hdr(2))
    call = next(s for s in telemetry.spans() if s.name == f"chat {MODEL}")
    assert call.parent is not None and call.parent.span_id == handler.get_span_context().span_id


def telemetry_provider(telemetry: Telemetry):  # type: ignore[no-untyped-def]
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(telemetry.exporter))
    return tp


def test_suppression_key_honoured(sim: SimServer, telemetry: Telemetry) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        _client(sim).chat.completions.create(model=MODEL, messages=MSGS, extra_headers=_hdr(2))
    assert telemetry.spans() == []


def _metric_names(telemetry: Telemetry) -> dict[str, Any]:
    data = telemetry.metrics.get_metrics_data()
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_metrics_recorded(sim: SimServer, telemetry: Telemetry) -> None:
    list(_client(sim).chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(5)))
    names = _metric_names(telemetry)
    for name in (
        sc.METRIC_GEN_AI_CLIENT_OPERATION_DURATION,
        sc.METRIC_GEN_AI_CLIENT_TOKEN_USAGE,
        sc.METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
    ):
        assert name in names, name
    assert sc.METRIC_LLMOTEL_PHASE_DURATION not in names  # opt-in (config.phase_metrics)
    duration = names[sc.METRIC_GEN_AI_CLIENT_OPERATION_DURATION].data.data_points[0]
    assert tuple(duration.explicit_bounds) == sc.METRIC_BUCKETS[sc.METRIC_GEN_AI_CLIENT_OPERATION_DURATION]


@pytest.mark.llmotel(phase_metrics=True)
def test_phase_metrics_opt_in(sim: SimServer, telemetry: Telemetry) -> None:
    list(_client(sim).chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(5)))
    points = _metric_names(telemetry)[sc.METRIC_LLMOTEL_PHASE_DURATION].data.data_points
    phase_spans = [s for s in telemetry.spans() if s.attributes and sc.LLMOTEL_PHASE_NAME in s.attributes]
    assert phase_spans
    assert sum(p.count for p in points) == len(phase_spans)
    assert {p.attributes[sc.LLMOTEL_PHASE_NAME] for p in points} == {
        s.attributes[sc.LLMOTEL_PHASE_NAME] for s in phase_spans if s.attributes
    }


def test_uninstrument_leaves_no_wrapper(sim: SimServer) -> None:
    import wrapt
    from openai import _base_client
    from openai.resources import completions, embeddings, responses
    from openai.resources.chat.completions import completions as chat

    from llmotel.providers.openai import OpenAIInstrumentor

    targets = [
        (chat.Completions, "create"),
        (chat.Completions, "parse"),
        (chat.AsyncCompletions, "create"),
        (chat.AsyncCompletions, "parse"),
        (responses.Responses, "create"),
        (responses.AsyncResponses, "parse"),
        (completions.Completions, "create"),
        (embeddings.AsyncEmbeddings, "create"),
        (_base_client.SyncAPIClient, "_send_request"),
        (_base_client.AsyncAPIClient, "_send_request"),
    ]
    originals = {(cls, name): cls.__dict__[name] for cls, name in targets}
    inst = OpenAIInstrumentor()
    inst.instrument()
    for cls, name in targets:
        assert isinstance(cls.__dict__[name], wrapt.FunctionWrapper), (cls, name)
    inst.uninstrument()
    for cls, name in targets:
        assert cls.__dict__[name] is originals[(cls, name)], (cls, name)
        assert not isinstance(cls.__dict__[name], wrapt.FunctionWrapper)
    # The client still works, untouched.
    r = _client(sim).chat.completions.create(model=MODEL, messages=MSGS, extra_headers=_hdr(2))
    assert r.choices


def test_no_duplicate_span_under_another_genai_instrumentation(sim: SimServer, telemetry: Telemetry) -> None:
    """Another OpenAI instrumentation that wrapped the method outside llmotel already made the call span."""
    from opentelemetry.trace import SpanKind

    tracer = telemetry_provider(telemetry).get_tracer("other-openai-instrumentation")
    with tracer.start_as_current_span(
        f"chat {MODEL}", kind=SpanKind.CLIENT, attributes={sc.GEN_AI_OPERATION_NAME: "chat"}
    ):
        _client(sim).chat.completions.create(model=MODEL, messages=MSGS, extra_headers=_hdr(2))
    assert [s.name for s in telemetry.spans()] == [f"chat {MODEL}"]  # the other one's only


def test_inner_genai_instrumentation_sees_suppression_key(sim: SimServer, telemetry: Telemetry) -> None:
    """While llmotel records a call, the key OpenLLMetry-style instrumentations check is set."""
    import wrapt
    from openai._base_client import SyncAPIClient
    from opentelemetry import context

    from llmotel.instrument.wrapping import SUPPRESS_LANGUAGE_MODEL_KEY

    seen: list[object] = []

    def spy(wrapped, instance, args, kwargs):  # type: ignore[no-untyped-def]
        seen.append(context.get_value(SUPPRESS_LANGUAGE_MODEL_KEY))
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(SyncAPIClient, "request", spy)
    try:
        _client(sim).chat.completions.create(model=MODEL, messages=MSGS, extra_headers=_hdr(2))
    finally:
        from opentelemetry.instrumentation.utils import unwrap

        unwrap(SyncAPIClient, "request")
    assert seen == [True]
    assert context.get_value(SUPPRESS_LANGUAGE_MODEL_KEY) is None  # detached after the call


def test_azure_client_and_compatible_base_urls(sim: SimServer, telemetry: Telemetry) -> None:
    from llmotel.providers.openai import _provider_name

    azure = openai.AzureOpenAI(azure_endpoint=sim.base_url, azure_ad_token="tenant-acme", api_version="2024-10-21")
    r = azure.chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers=_hdr(3))
    parent, kids = telemetry.one_call()
    assert parent.attributes[sc.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert parent.attributes[sc.GEN_AI_RESPONSE_ID] == r.id
    assert_tiles(parent, kids)
    assert _provider_name("my-vllm.internal", "http://my-vllm.internal:8000/v1") == "vllm"
    assert _provider_name("x.openai.azure.com", "https://x.openai.azure.com/openai") == "azure.ai.openai"
    assert _provider_name("api.openai.com", "https://api.openai.com/v1") == "openai"
    assert _provider_name("gpu-box", "http://gpu-box:8080/tgi/v1") == "tgi"


def test_content_capture_opt_in_and_latest_names(sim: SimServer) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmotel.providers.openai import OpenAIInstrumentor

    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp, capture_content=True, latest_experimental=True)
    try:
        r = _client(sim).chat.completions.create(model=MODEL, messages=MSGS, extra_headers=_hdr(3))
    finally:
        inst.uninstrument()
    parent = next(s for s in exporter.get_finished_spans() if s.name == f"chat {MODEL}")
    # The GenAI parts schema (tests/openai/test_openai_content.py covers every shape).
    assert input_messages(parent.attributes[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in MSGS
    ]
    assert output_messages(parent.attributes[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": r.choices[0].message.content}],
            "finish_reason": r.choices[0].finish_reason,
        }
    ]
    assert parent.attributes[sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] == r.system_fingerprint
    assert sc.GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT not in parent.attributes


def test_instrumentation_error_never_breaks_the_call(sim: SimServer, telemetry: Telemetry, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from llmotel.providers import openai as provider

    def broken(*args: object) -> bool:
        raise RuntimeError("reader bug")

    monkeypatch.setattr(provider, "_common", broken)
    r = _client(sim).chat.completions.create(model=MODEL, messages=MSGS, extra_headers=_hdr(3))
    chunks = list(_client(sim).chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(3)))
    assert r.choices and chunks
    assert len(telemetry.calls()) == 2  # spans still end


def test_stream_helper_early_exit_ends_span_at_close(sim: SimServer, telemetry: Telemetry) -> None:
    client = _client(sim)
    with client.chat.completions.stream(model=MODEL, messages=MSGS, extra_headers=_hdr(30)) as stream:
        for i, _ in enumerate(stream):
            if i == 3:
                break
    # `stream` is still referenced: the span ended at the manager's close, not at collection.
    spans = telemetry.exporter.get_finished_spans()
    parent = next(s for s in spans if s.name == f"chat {MODEL}")
    assert parent.attributes[sc.LLMOTEL_STREAM_ABANDONED] is True
    assert stream is not None


@pytest.mark.parametrize("fault", ["malformed_json", "malformed_sse", "missing_usage", "wrong_type_usage"])
@pytest.mark.parametrize("stream", [False, True])
def test_malformed_responses_behave_as_without_llmotel(
    sim: SimServer, telemetry: Telemetry, fault: str, stream: bool
) -> None:
    """Whatever the bare client does with a broken response (return or raise), the instrumented one does too."""
    from llmotel.providers.openai import OpenAIInstrumentor

    def outcome() -> str:
        client = _client(sim, max_retries=0)
        try:
            r = client.chat.completions.create(
                model=MODEL, messages=MSGS, stream=stream, extra_headers=_hdr(4, **{"x-sim-fault": fault})
            )
            if stream:
                return f"ok:{sum(1 for _ in r)}"
            return f"ok:{r.choices[0].finish_reason}"
        except Exception as exc:
            return type(exc).__name__

    instrumented = outcome()
    assert len(telemetry.calls()) == 1  # the span ended either way
    OpenAIInstrumentor().uninstrument()
    bare = outcome()
    assert instrumented == bare


async def test_async_early_break_exception_and_collection(sim: SimServer, telemetry: Telemetry) -> None:
    client = _aclient(sim)

    class Boom(Exception):
        pass

    stream = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(20))
    with pytest.raises(Boom):
        async with stream as s:
            async for i, _ in _aenumerate(s):
                if i == 2:
                    raise Boom

    async def two() -> None:
        s2 = await client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(20))
        await s2.__anext__()
        await s2.__anext__()

    await two()
    gc.collect()
    calls = telemetry.calls()
    assert len(calls) == 2
    for parent, kids in calls:
        assert parent.attributes[sc.LLMOTEL_STREAM_ABANDONED] is True
        assert sc.ERROR_TYPE not in parent.attributes
        assert _names(kids) == PHASES
        assert_tiles(parent, kids)


async def _aenumerate(it):  # type: ignore[no-untyped-def]
    i = 0
    async for x in it:
        yield i, x
        i += 1


def test_server_reported_cache_fills_missing_usage_detail(sim: SimServer, telemetry: Telemetry) -> None:
    raw = _client(sim).chat.completions.with_raw_response.create(
        model=MODEL, messages=MSGS, extra_headers=_hdr(3, **{"x-sim-server-timing": "llama_cpp"})
    )
    body = raw.parse()
    parent, _ = telemetry.one_call()
    cached = body.usage.prompt_tokens_details.cached_tokens if body.usage.prompt_tokens_details else None
    truth = sim.truth(raw.headers["x-sim-request-id"])
    assert parent.attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == (
        cached if cached is not None else truth["cached_tokens"]
    )


def _tpoc_points(telemetry: Telemetry) -> Any:
    return _metric_names(telemetry)[sc.METRIC_GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK].data.data_points


def _decode(telemetry: Telemetry) -> Any:
    (decode,) = [s for s in telemetry.spans() if s.name == "decode"]
    return decode


def test_time_per_output_chunk_once_per_call_by_default(sim: SimServer, telemetry: Telemetry) -> None:
    list(_client(sim).chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(9)))
    (point,) = _tpoc_points(telemetry)
    decode = _decode(telemetry)
    chunks = decode.attributes[sc.LLMOTEL_DECODE_CHUNK_COUNT]
    assert chunks >= 5 and point.count == 1
    assert 0 < point.sum * (chunks - 1) <= (decode.end_time - decode.start_time) / 1e9 + 1e-6


@pytest.mark.llmotel(chunk_metrics="each")
def test_time_per_output_chunk_each_chunk_opt_in(sim: SimServer, telemetry: Telemetry) -> None:
    # 40 tokens: at the session simulator's speed a 9-token decode lasted ~1.5 ms, and a millisecond of scheduling
    # between the last chunk and the stream's end (a loaded machine) broke the "gaps are most of decode" bound.
    seen = list(_client(sim).chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(40)))
    first = next(i for i, c in enumerate(seen) if c.choices and c.choices[0].delta.content)
    (point,) = _tpoc_points(telemetry)
    decode = _decode(telemetry)
    # One point per chunk received after the first content chunk (where time_to_first_chunk is measured), as the
    # convention defines it: the finish chunk too.
    assert point.count == len(seen) - 1 - first > 5
    decode_s = (decode.end_time - decode.start_time) / 1e9
    assert 0.5 * decode_s < point.sum <= decode_s + 1e-6  # the gaps add up to first -> last chunk
    assert point.max >= decode.attributes[sc.LLMOTEL_DECODE_MAX_CHUNK_GAP] - 1e-9


@pytest.mark.llmotel(chunk_metrics="each")
def test_time_per_output_chunk_each_is_bounded(
    sim: SimServer, telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmotel.instrument import capture

    monkeypatch.setattr(capture, "MAX_GAPS", 3)
    list(_client(sim).chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=_hdr(9)))
    (point,) = _tpoc_points(telemetry)
    assert _decode(telemetry).attributes[sc.LLMOTEL_DECODE_CHUNK_COUNT] > 5
    assert point.count == 3 + 1  # the first three gaps, then the mean of the rest
    decode = _decode(telemetry)
    assert point.sum <= (decode.end_time - decode.start_time) / 1e9 + 1e-6


def test_chunk_metrics_bad_value_names_the_key() -> None:
    from llmotel import config

    with pytest.raises(config.ConfigError, match=r"LLMOTEL_CHUNK_METRICS='every'.*mean or each"):
        config.resolve(env={"LLMOTEL_CHUNK_METRICS": "every"})
