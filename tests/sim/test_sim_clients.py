"""The real, unmodified openai and anthropic clients talk to the simulator in every mode (sync/async, stream/not)."""

from __future__ import annotations

import anthropic
import openai
import pytest

from llmotel_sim import SimServer

MODEL = "gpt-4o"
CLAUDE = "claude-sonnet-4-6"
MSGS = [{"role": "user", "content": "hello there"}]


def oai(sim: SimServer, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=0, **kw)  # type: ignore[arg-type]


def ant(sim: SimServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.base_url, api_key="tenant-acme", max_retries=0)


def test_openai_chat_sync(sim: SimServer) -> None:
    raw = oai(sim).chat.completions.with_raw_response.create(
        model=MODEL, messages=MSGS, extra_headers={"x-sim-output-tokens": "7"}
    )
    resp = raw.parse()
    rid = raw.headers["x-sim-request-id"]
    truth = sim.truth(rid)
    assert resp.usage is not None and resp.usage.completion_tokens == 7 == truth["output_tokens"]
    assert len(resp.choices[0].message.content.split()) == 7  # type: ignore[union-attr]
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == truth["resolved_model"] and resp.model.startswith(MODEL + "-")
    assert resp.system_fingerprint == truth["system_fingerprint"]
    assert raw.headers["cf-ray"].endswith("-IAD")
    assert raw.headers["x-ms-region"] == "East US"
    assert truth["tenant"] == "acme" and truth["done"]


def test_openai_chat_stream_without_include_usage_has_no_usage_chunk(sim: SimServer) -> None:
    chunks = list(
        oai(sim).chat.completions.create(
            model=MODEL, messages=MSGS, stream=True, extra_headers={"x-sim-output-tokens": "5"}
        )
    )
    assert all(getattr(c, "usage", None) is None for c in chunks)
    assert all(c.choices for c in chunks)  # no choices-less usage chunk
    text = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(text) == 5
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_chat_stream_include_usage(sim: SimServer) -> None:
    chunks = list(
        oai(sim).chat.completions.create(
            model=MODEL,
            messages=MSGS,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-sim-output-tokens": "9"},
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 9
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_tool_calls_stream_and_not(sim: SimServer) -> None:
    client = oai(sim)
    headers = {"x-sim-tool-calls": "get_weather,lookup", "x-sim-output-tokens": "12"}
    resp = client.chat.completions.create(model=MODEL, messages=MSGS, extra_headers=headers)
    calls = resp.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "lookup"]  # type: ignore[union-attr]
    assert resp.choices[0].finish_reason == "tool_calls"
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    for chunk in client.chat.completions.create(model=MODEL, messages=MSGS, stream=True, extra_headers=headers):
        for tc in chunk.choices[0].delta.tool_calls or []:
            args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")  # type: ignore[union-attr]
            if tc.function and tc.function.name:
                names[tc.index] = tc.function.name
    assert names == {0: "get_weather", 1: "lookup"}
    import json

    assert all(isinstance(json.loads(a), dict) for a in args.values())


async def test_openai_async_stream_and_not(sim: SimServer) -> None:
    client = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=0)
    resp = await client.chat.completions.create(model=MODEL, messages=MSGS, extra_headers={"x-sim-output-tokens": "3"})
    assert resp.usage is not None and resp.usage.completion_tokens == 3
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=MSGS,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-sim-output-tokens": "4"},
    )
    n = 0
    usage = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            n += 1
        usage = chunk.usage or usage
    assert n == 4 and usage is not None and usage.completion_tokens == 4
    await client.close()


def test_anthropic_sync_message(sim: SimServer) -> None:
    raw = ant(sim).messages.with_raw_response.create(
        model=CLAUDE,
        max_tokens=100,
        messages=MSGS,
        extra_headers={"x-sim-output-tokens": "6"},  # type: ignore[arg-type]
    )
    msg = raw.parse()
    truth = sim.truth(raw.headers["x-sim-request-id"])
    assert msg.usage.output_tokens == 6 and msg.stop_reason == "end_turn"
    assert msg.usage.inference_geo == "us" == truth["geo"]
    assert msg.model == truth["resolved_model"] and msg.model.startswith(CLAUDE + "-20")
    assert msg.usage.cache_creation is not None
    assert raw.headers["request-id"].startswith("req_")


def test_anthropic_stream_event_sequence(sim: SimServer) -> None:
    with ant(sim).messages.stream(
        model=CLAUDE,
        max_tokens=100,
        messages=MSGS,
        extra_headers={"x-sim-output-tokens": "4"},  # type: ignore[arg-type]
    ) as stream:
        types = [e.type for e in stream]
        final = stream.get_final_message()
    raw_types = [t for t in types if t not in ("text", "input_json")]
    assert raw_types[:2] == ["message_start", "content_block_start"]
    assert raw_types.count("content_block_delta") == 4
    assert raw_types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert final.usage.output_tokens == 4 and final.usage.inference_geo == "us"


def test_anthropic_raw_stream_has_ping(sim: SimServer) -> None:
    # The SDK hides ping events, so read the SSE lines through its streaming-response API.
    with ant(sim).messages.with_streaming_response.create(
        model=CLAUDE,
        max_tokens=100,
        messages=MSGS,
        stream=True,  # type: ignore[arg-type]
        extra_headers={"x-sim-output-tokens": "2"},
    ) as resp:
        types = [line[len("event: ") :] for line in resp.iter_lines() if line.startswith("event: ")]
    assert types == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


async def test_anthropic_async_stream_and_not(sim: SimServer) -> None:
    client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="tenant-acme", max_retries=0)
    msg = await client.messages.create(
        model=CLAUDE,
        max_tokens=2,
        messages=MSGS,
        extra_headers={"x-sim-output-tokens": "10"},  # type: ignore[arg-type]
    )
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 2
    async with client.messages.stream(
        model=CLAUDE,
        max_tokens=50,
        messages=MSGS,
        extra_headers={"x-sim-tool-calls": "search"},  # type: ignore[arg-type]
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].type == "tool_use"
    await client.close()


def test_anthropic_cache_control_ephemeral_split(sim_factory) -> None:  # type: ignore[no-untyped-def]
    server = sim_factory({"anthropic_min_cache_tokens": 100, "regions": [{"name": "r", "replicas": 1}]})
    client = ant(server)
    system = [
        {"type": "text", "text": "A" * 2000, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "B" * 1000, "cache_control": {"type": "ephemeral"}},
    ]
    first = client.messages.create(model=CLAUDE, max_tokens=5, system=system, messages=MSGS)  # type: ignore[arg-type]
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 500
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 250
    assert first.usage.cache_creation_input_tokens == 750
    second = client.messages.create(model=CLAUDE, max_tokens=5, system=system, messages=MSGS)  # type: ignore[arg-type]
    assert second.usage.cache_read_input_tokens == 750 and second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens


def test_openai_automatic_prefix_cache(sim_factory) -> None:  # type: ignore[no-untyped-def]
    server = sim_factory({"regions": [{"name": "r", "replicas": 1}]})
    client = oai(server)
    msgs = [{"role": "system", "content": "S" * 8000}, {"role": "user", "content": "q"}]
    first = client.chat.completions.create(model=MODEL, messages=msgs)  # type: ignore[arg-type]
    second = client.chat.completions.create(model=MODEL, messages=msgs)  # type: ignore[arg-type]
    assert first.usage and first.usage.prompt_tokens_details and first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    assert cached is not None and cached >= 1024 and cached % 128 == 0


@pytest.mark.parametrize(
    ("fault", "status", "exc"),
    [
        ("http_500", 500, openai.InternalServerError),
        ("overloaded_529", 529, openai.APIStatusError),
        ("rate_limit_429", 429, openai.RateLimitError),
    ],
)
def test_openai_status_faults(sim: SimServer, fault: str, status: int, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        oai(sim).chat.completions.create(model=MODEL, messages=MSGS, extra_headers={"x-sim-fault": fault})
    err = info.value
    assert err.status_code == status  # type: ignore[attr-defined]
    if status == 429:
        assert err.response.headers["x-ratelimit-remaining-requests"] == "0"  # type: ignore[attr-defined]
        assert "retry-after" in err.response.headers  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("fault", "exc"),
    [
        ("http_500", anthropic.InternalServerError),
        ("overloaded_529", anthropic.OverloadedError),
        ("rate_limit_429", anthropic.RateLimitError),
    ],
)
def test_anthropic_status_faults(sim: SimServer, fault: str, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        ant(sim).messages.create(
            model=CLAUDE,
            max_tokens=5,
            messages=MSGS,
            extra_headers={"x-sim-fault": fault},  # type: ignore[arg-type]
        )
    if fault == "rate_limit_429":
        headers = info.value.response.headers  # type: ignore[attr-defined]
        assert headers["anthropic-ratelimit-requests-remaining"] == "0" and "retry-after" in headers


def test_fault_times_lets_the_retry_succeed(sim: SimServer) -> None:
    client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=2)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MSGS, extra_headers={"x-sim-fault": "http_500", "x-sim-fault-times": "1"}
    )
    assert raw.retries_taken == 1
    assert sim.truth(raw.headers["x-sim-request-id"])["status"] == 200


def test_region_pin_reports_other_revision_and_edge(sim: SimServer) -> None:
    raw = oai(sim).chat.completions.with_raw_response.create(
        model=MODEL, messages=MSGS, extra_headers={"x-sim-region": "eu-west-1"}
    )
    resp = raw.parse()
    assert raw.headers["cf-ray"].endswith("-DUB") and raw.headers["x-ms-region"] == "West Europe"
    assert resp.system_fingerprint == "fp_sim2411old"
    msg = ant(sim).messages.create(
        model=CLAUDE,
        max_tokens=5,
        messages=MSGS,
        extra_headers={"x-sim-region": "eu-west-1"},  # type: ignore[arg-type]
    )
    assert msg.usage.inference_geo == "eu"


def test_unknown_fault_is_a_clear_400(sim: SimServer) -> None:
    with pytest.raises(openai.BadRequestError, match="valid"):
        oai(sim).chat.completions.create(model=MODEL, messages=MSGS, extra_headers={"x-sim-fault": "nope"})
