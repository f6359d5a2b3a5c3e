"""Every other wire mode: responses, legacy completions, embeddings, count_tokens, stream faults, server timing."""

from __future__ import annotations

import itertools
import time

import anthropic
import httpx2
import openai
import pytest

from llmotel_sim import SimServer

MODEL = "gpt-4o"
CLAUDE = "claude-sonnet-4-6"
MSGS = [{"role": "user", "content": "hello there"}]


def oai(sim: SimServer, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=retries)


def ant(sim: SimServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.base_url, api_key="tenant-acme", max_retries=0)


def test_responses_api_stream_and_not(sim: SimServer) -> None:
    client = oai(sim)
    resp = client.responses.create(model=MODEL, input="hi", extra_headers={"x-sim-output-tokens": "6"})
    assert resp.status == "completed" and resp.usage is not None and resp.usage.output_tokens == 6
    assert len(resp.output_text.split()) == 6
    events = list(
        client.responses.create(model=MODEL, input="hi", stream=True, extra_headers={"x-sim-output-tokens": "5"})
    )
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert types.count("response.output_text.delta") == 5
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1]
    assert done.response.usage is not None and done.response.usage.output_tokens == 5  # type: ignore[union-attr]


def test_responses_api_truncation_is_incomplete(sim: SimServer) -> None:
    resp = oai(sim).responses.create(
        model=MODEL, input="hi", max_output_tokens=3, extra_headers={"x-sim-output-tokens": "50"}
    )
    assert resp.status == "incomplete" and resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"


def test_legacy_completions(sim: SimServer) -> None:
    client = oai(sim)
    resp = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="say", max_tokens=40, extra_headers={"x-sim-output-tokens": "4"}
    )
    assert resp.usage is not None and resp.usage.completion_tokens == 4 and resp.choices[0].finish_reason == "stop"
    chunks = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="say", stream=True, extra_headers={"x-sim-output-tokens": "40"}
        )
    )
    # The legacy API's default max_tokens is 16.
    assert sum(1 for c in chunks if c.choices and c.choices[0].text) == 16
    assert chunks[-1].choices[0].finish_reason == "length"


def test_embeddings_base64_default_and_float(sim: SimServer) -> None:
    client = oai(sim)
    resp = client.embeddings.create(model="text-embedding-3-small", input=["a b c", "d e"])
    assert len(resp.data) == 2 and len(resp.data[0].embedding) == 64
    flt = client.embeddings.create(model="text-embedding-3-small", input="abc", encoding_format="float", dimensions=8)
    assert len(flt.data[0].embedding) == 8 and resp.usage.prompt_tokens > 0


def test_anthropic_count_tokens(sim: SimServer) -> None:
    n = ant(sim).messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "x" * 400}])
    assert 100 <= n.input_tokens <= 110


def test_openai_max_tokens_truncation(sim: SimServer) -> None:
    resp = oai(sim).chat.completions.create(
        model=MODEL,
        messages=MSGS,
        max_completion_tokens=5,  # type: ignore[arg-type]
        extra_headers={"x-sim-output-tokens": "30"},
    )
    assert resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 5  # type: ignore[union-attr]


def test_reasoning_tokens_are_counted_but_hidden(sim: SimServer) -> None:
    resp = oai(sim).chat.completions.create(
        model=MODEL,
        messages=MSGS,  # type: ignore[arg-type]
        extra_headers={"x-sim-output-tokens": "4", "x-sim-reasoning-tokens": "20"},
    )
    u = resp.usage
    assert u is not None and u.completion_tokens == 24
    assert u.completion_tokens_details is not None and u.completion_tokens_details.reasoning_tokens == 20
    assert len((resp.choices[0].message.content or "").split()) == 4


def test_disconnect_after_n_chunks(sim: SimServer) -> None:
    stream = oai(sim).chat.completions.create(
        model=MODEL,
        messages=MSGS,
        stream=True,  # type: ignore[arg-type]
        extra_headers={"x-sim-output-tokens": "20", "x-sim-fault": "disconnect_after:3"},
    )
    got = 0
    with pytest.raises((httpx2.HTTPError, openai.APIError)):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got += 1
    assert got == 3


def test_stall_is_visible_as_a_gap(sim: SimServer) -> None:
    stream = oai(sim).chat.completions.create(
        model=MODEL,
        messages=MSGS,
        stream=True,  # type: ignore[arg-type]
        extra_headers={"x-sim-output-tokens": "6", "x-sim-fault": "stall:2:0.3"},
    )
    stamps = [time.perf_counter() for c in stream if c.choices and c.choices[0].delta.content]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) == 6 and gaps[1] >= 0.28  # the stall sits between the 2nd and 3rd chunk


def test_slow_first_byte(sim: SimServer) -> None:
    t0 = time.perf_counter()
    oai(sim).chat.completions.create(
        model=MODEL,
        messages=MSGS,  # type: ignore[arg-type]
        extra_headers={"x-sim-fault": "slow_first_byte:0.3", "x-sim-output-tokens": "1"},
    )
    assert time.perf_counter() - t0 >= 0.3


def _oai_stream(sim: SimServer, fault: str) -> list[object]:
    return list(
        oai(sim).chat.completions.create(
            model=MODEL, messages=MSGS, stream=True, extra_headers={"x-sim-fault": fault}  # type: ignore[arg-type]
        )
    )


def _ant_stream(sim: SimServer, fault: str) -> list[object]:
    return list(
        ant(sim).messages.create(
            model=CLAUDE, max_tokens=50, messages=MSGS, stream=True, extra_headers={"x-sim-fault": fault}  # type: ignore[arg-type]
        )
    )


def test_malformed_sse_and_error_event(sim: SimServer) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the SDK raises its own JSON decode error here
        _oai_stream(sim, "malformed_sse")
    with pytest.raises(openai.APIError):
        _oai_stream(sim, "error_event")
    with pytest.raises(anthropic.APIStatusError) as info:
        _ant_stream(sim, "error_event")
    assert "Overloaded" in str(info.value)


def test_missing_and_wrong_type_usage(sim: SimServer) -> None:
    resp = oai(sim).chat.completions.create(
        model=MODEL,
        messages=MSGS,  # type: ignore[arg-type]
        extra_headers={"x-sim-fault": "missing_usage"},
    )
    assert resp.usage is None
    raw = oai(sim).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=MSGS,  # type: ignore[arg-type]
        extra_headers={"x-sim-fault": "wrong_type_usage"},
    )
    assert isinstance(raw.http_response.json()["usage"]["prompt_tokens"], str)


def test_malformed_json_body(sim: SimServer) -> None:
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises for an unparsable body
        oai(sim).chat.completions.create(
            model=MODEL,
            messages=MSGS,  # type: ignore[arg-type]
            extra_headers={"x-sim-fault": "malformed_json"},
        )


def test_huge_response(sim: SimServer) -> None:
    resp = oai(sim).chat.completions.create(
        model=MODEL,
        messages=MSGS,  # type: ignore[arg-type]
        extra_headers={"x-sim-fault": "huge_response"},
    )
    assert len(resp.choices[0].message.content or "") > 1_000_000


@pytest.mark.parametrize("stream", [False, True])
def test_server_timing_modes(sim: SimServer, stream: bool) -> None:
    """Each mode in its server's own shape (sim/llmotel_sim/timing.py cites the server source of each)."""
    client = oai(sim)

    def call(mode: str) -> tuple[dict[str, str], dict]:  # type: ignore[type-arg]
        h = {"x-sim-server-timing": mode, "x-sim-output-tokens": "3"}
        if stream:
            with client.chat.completions.with_streaming_response.create(
                model=MODEL,
                messages=MSGS,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=h,  # type: ignore[arg-type]
            ) as r:
                import json

                datas = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
                return dict(r.headers), datas[-1]
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MSGS, extra_headers=h)  # type: ignore[arg-type]
        return dict(raw.headers), raw.http_response.json()

    headers, body = call("llama_cpp")
    t = body["timings"]
    assert list(t) == ["cache_n", "prompt_n", "prompt_ms", "prompt_per_token_ms", "prompt_per_second",
                       "predicted_n", "predicted_ms", "predicted_per_token_ms", "predicted_per_second"]
    assert t["predicted_n"] == 3 and t["prompt_ms"] >= 0
    assert t["predicted_per_token_ms"] == pytest.approx(t["predicted_ms"] / 2)  # n - 1 decode steps
    headers, body = call("vllm")
    m = body["metrics"]
    assert set(m) == {"time_to_first_token_ms", "generation_time_ms", "queue_time_ms", "mean_itl_ms",
                      "tokens_per_second"}
    assert m["mean_itl_ms"] == pytest.approx(m["generation_time_ms"] / 2, abs=0.002)
    if stream:
        assert body["choices"] == [] and body["usage"]["completion_tokens"] == 3  # the final usage chunk
    headers, body = call("openai_processing_ms")
    assert int(headers["openai-processing-ms"]) >= 0
    headers, body = call("tgi")
    assert headers["x-compute-type"] == "gpu+optimized" and "x-compute-characters" in headers
    if stream:  # TGI cannot know its timings when stream headers go out
        assert "x-queue-time" not in headers and "x-inference-time" not in headers
    else:
        assert {"x-queue-time", "x-inference-time", "x-time-per-token", "x-total-time"} <= set(headers)
        assert int(headers["x-inference-time"]) <= int(headers["x-total-time"])
    headers, body = call("groq")
    times = {"queue_time", "prompt_time", "completion_time", "total_time"}
    usage = body["x_groq"]["usage"] if stream else body["usage"]
    assert times <= set(usage)
    assert usage["total_time"] == pytest.approx(usage["prompt_time"] + usage["completion_time"])
    headers, body = call("cerebras")
    assert times | {"created"} == set(body["time_info"])
    headers, body = call("sglang")
    if stream:  # SGLang's OpenAI-compatible stream has no metadata field
        assert "metadata" not in body
    else:
        assert list(body["metadata"]) == ["weight_version"] and body["metadata"]["weight_version"]  # the revision
    headers, body = call("none")
    assert not {"timings", "metrics", "time_info", "x_groq", "metadata"} & set(body)
    assert "openai-processing-ms" not in headers


def test_vllm_metrics_stay_off_streams_without_include_usage(sim: SimServer) -> None:
    # vLLM sends metrics only on the usage chunk (upstream test_streaming_metrics_absent_without_include_usage).
    with oai(sim).chat.completions.with_streaming_response.create(
        model=MODEL, messages=MSGS, stream=True, extra_headers={"x-sim-server-timing": "vllm"}  # type: ignore[arg-type]
    ) as r:
        assert not any('"metrics"' in line for line in r.iter_lines())


def test_tenant_quota_429_headers_openai_and_anthropic(sim_factory) -> None:  # type: ignore[no-untyped-def]
    server = sim_factory(
        {"tenants": {"tiny": {"tpm": 200, "rpm": 100}}, "regions": [{"name": "r", "replicas": 1}]}, speed=20
    )
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="tenant-tiny", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=MSGS,  # type: ignore[arg-type]
        extra_headers={"x-sim-output-tokens": "100"},
    )
    assert raw.headers["x-ratelimit-limit-tokens"] == "200"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 200
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=MSGS,  # type: ignore[arg-type]
            extra_headers={"x-sim-output-tokens": "150"},
        )
    h = info.value.response.headers
    assert h["x-ratelimit-remaining-tokens"] != "200" and float(h["retry-after-ms"]) > 0
    assert h["x-ratelimit-reset-tokens"].endswith("s")
    aclient = anthropic.Anthropic(base_url=server.base_url, api_key="tenant-tiny", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as ainfo:
        aclient.messages.create(
            model=CLAUDE,
            max_tokens=500,
            messages=MSGS,  # type: ignore[arg-type]
            extra_headers={"x-sim-output-tokens": "150"},
        )
    ah = ainfo.value.response.headers
    assert ah["anthropic-ratelimit-tokens-limit"] == "200" and "retry-after" in ah
    assert ah["anthropic-ratelimit-tokens-reset"].endswith("Z")


def test_quota_silent_truncation(sim_factory) -> None:  # type: ignore[no-untyped-def]
    server = sim_factory(
        {"tenants": {"t": {"tpm": 60, "truncate_on_quota": True}}, "regions": [{"name": "r", "replicas": 1}]}, speed=1
    )
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="tenant-t", max_retries=0)
    resp = client.chat.completions.create(
        model=MODEL,
        messages=MSGS,  # type: ignore[arg-type]
        extra_headers={"x-sim-output-tokens": "200"},
    )
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and 0 < resp.usage.completion_tokens < 60


def test_azure_openai_client_deployment_path(sim: SimServer) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=sim.base_url, api_key="tenant-azure", api_version="2024-10-21", max_retries=0
    )
    raw = client.chat.completions.with_raw_response.create(model="my-deployment", messages=MSGS)  # type: ignore[arg-type]
    assert raw.headers["x-ms-region"] == "East US"
    assert sim.truth(raw.headers["x-sim-request-id"])["tenant"] == "azure"


def test_anthropic_malformed_sse(sim: SimServer) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the SDK's JSON decode error
        _ant_stream(sim, "malformed_sse")


def test_prerendered_token_events_equal_the_encoded_dicts() -> None:
    from llmotel_sim.engine import SimRequest
    from llmotel_sim.openai_api import ChatFormat, _dumps
    from llmotel_sim.tokens import Prompt

    req = SimRequest(
        id="r1",
        tenant="t",
        provider="openai",
        endpoint="chat",
        model="m",
        prompt=Prompt("hi"),
        stream=True,
        visible_tokens=40,
    )
    for include_usage in (False, True):
        fmt = ChatFormat(req, include_usage)
        assert all(fmt.token_sse(i) == f"data: {_dumps(fmt.token(i))}\n\n" for i in range(40))
