"""Unit tests of the SDK's small parsers: config, server timing, rate limits, region/revision, tenant, fingerprint."""

from __future__ import annotations

import asyncio

import pytest

from llmotel import _semconv as sc
from llmotel import config
from llmotel.phases import server_timing
from llmotel.signals import fingerprint, ratelimit, region
from llmotel.signals.tenant import resolve, tenant


@pytest.fixture(autouse=True)
def _fresh_config() -> None:
    config.reset()
    yield
    config.reset()


# ---- config ------------------------------------------------------------------------------------


def test_config_defaults_and_env() -> None:
    cfg = config.from_env({})
    assert cfg.stall_threshold_s == 2.0 and not cfg.capture_content and not cfg.propagate_trace_context
    cfg = config.from_env(
        {
            "LLMOTEL_STALL_THRESHOLD_S": "0.5",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "True",
            "OTEL_SEMCONV_STABILITY_OPT_IN": "http, gen_ai_latest_experimental",
            "LLMOTEL_REGION": "eu",
        }
    )
    assert cfg.stall_threshold_ns == 500_000_000
    assert cfg.capture_content and cfg.latest_experimental and cfg.region == "eu"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"LLMOTEL_STALL_THRESHOLD_S": "soon"}, "LLMOTEL_STALL_THRESHOLD_S='soon' is not a number"),
        ({"LLMOTEL_STALL_THRESHOLD_S": "-1"}, "must be > 0"),
        ({"LLMOTEL_TENANT_HASH": "maybe"}, "LLMOTEL_TENANT_HASH='maybe' is not a boolean; use true or false"),
        ({"LLMOTEL_FINGERPRINT_KEY": "short"}, "LLMOTEL_FINGERPRINT_KEY is shorter than 16"),
        ({"LLMOTEL_CONTENT_MAX_CHARS": "lots"}, "LLMOTEL_CONTENT_MAX_CHARS='lots' is not an integer"),
    ],
)
def test_bad_config_names_key_and_fix(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(config.ConfigError, match=None) as err:
        config.from_env(env)
    assert fragment in str(err.value)


def test_configure_rejects_unknown_option() -> None:
    with pytest.raises(config.ConfigError, match="unknown llmotel option"):
        config.configure(stall_treshold_s=1)
    with pytest.raises(config.ConfigError, match="tenant_resolver must be a callable"):
        config.configure(tenant_resolver="acme")


# ---- server timing -----------------------------------------------------------------------------


def test_tgi_headers() -> None:
    t = server_timing.parse({"x-queue-time": "120", "x-inference-time": "800", "x-total-time": "950"}, {})
    assert t.format == "tgi"
    assert t.queue_s == pytest.approx(0.12) and t.inference_s == pytest.approx(0.8) and t.total_s == pytest.approx(0.95)
    assert t.prefill_s is None and t.time_per_token_s is None  # TGI does not split; never guessed here


def test_llama_cpp_and_vllm_bodies() -> None:
    t = server_timing.parse({}, {"timings": {"prompt_ms": 40.0, "predicted_ms": 500.0, "cache_n": 64}})
    assert (t.format, t.prefill_s, t.decode_s, t.cached_tokens) == ("llama_cpp", 0.04, 0.5, 64)
    t = server_timing.parse(
        {}, {"metrics": {"queue_time_ms": 10, "prefill_time_ms": 30, "decode_time_ms": 200, "num_cached_tokens": 5}}
    )
    assert (t.format, t.queue_s, t.prefill_s, t.decode_s, t.cached_tokens) == ("vllm", 0.01, 0.03, 0.2, 5)


def test_openai_processing_ms_and_none_and_malformed() -> None:
    assert server_timing.parse({"openai-processing-ms": "250"}, {}).total_s == pytest.approx(0.25)
    assert server_timing.parse({}, {}).format == "none"
    bad = server_timing.parse({"x-queue-time": "NaN", "openai-processing-ms": "-3"}, {"timings": "oops"})
    assert bad.format == "none"
    assert server_timing.parse({"x-queue-time": "abc"}, {"metrics": {"queue_time_ms": [1]}}).format == "none"


def test_every_format_has_a_registry_name() -> None:
    assert {f.name for f in server_timing.FORMATS} | {"none"} == {
        sc.LLMOTEL_SERVER_TIMING_FORMAT_TGI,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_LLAMA_CPP,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_VLLM,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_OPENAI_PROCESSING_MS,
        sc.LLMOTEL_SERVER_TIMING_FORMAT_NONE,
    }


# ---- rate limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"), [("6m0s", 360.0), ("1.5s", 1.5), ("20ms", 0.02), ("1h2m3s", 3723.0), ("12", 12.0)]
)
def test_reset_durations(raw: str, seconds: float) -> None:
    assert ratelimit.parse_reset(raw) == pytest.approx(seconds)


def test_reset_rfc3339_and_garbage() -> None:
    assert ratelimit.parse_reset("2026-01-01T00:00:10Z", now_s=1767225600.0) == pytest.approx(10.0)
    assert ratelimit.parse_reset("soon") is None
    assert ratelimit.parse_reset("2026-01-01T00:00:10") is None  # no zone: not guessed


def test_ratelimit_attributes() -> None:
    attrs = ratelimit.attributes(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-tokens": "2s",
            "x-ratelimit-remaining-tokens": "many",
            "anthropic-ratelimit-output-tokens-remaining": "16000",
        }
    )
    assert attrs == {
        sc.LLMOTEL_RATELIMIT_REQUESTS_LIMIT: 500,
        sc.LLMOTEL_RATELIMIT_REQUESTS_REMAINING: 499,
        sc.LLMOTEL_RATELIMIT_TOKENS_RESET: 2.0,
        sc.LLMOTEL_RATELIMIT_OUTPUT_TOKENS_REMAINING: 16000,
    }


# ---- region / revision -------------------------------------------------------------------------


def test_region_sources() -> None:
    assert region.from_host("eu.api.openai.com") == "eu"
    assert region.from_host("api.openai.com") == ""
    assert region.from_headers({"x-ms-region": "East US"}) == ("East US", "header")
    assert region.from_headers({"cf-ray": "8f1a2b3c4d5e6f70-FRA"}) == ("FRA", "cf_ray")
    assert region.from_headers({"cf-ray": "8f1a2b3c4d5e6f70"}) == ("", "")


def test_revision_tracker_flags_change_and_is_bounded() -> None:
    tracker = region.RevisionTracker(capacity=2)
    assert tracker.observe("gpt-4o", "eu", "fp_a") == ""
    assert tracker.observe("gpt-4o", "eu", "fp_a") == ""
    assert tracker.observe("gpt-4o", "eu", "fp_b") == "fp_a"
    assert tracker.observe("gpt-4o", "us", "fp_a") == ""  # per region
    tracker.observe("m2", "", "x")
    tracker.observe("m3", "", "y")
    assert len(tracker._last) == 2


# ---- tenant ------------------------------------------------------------------------------------


def test_tenant_context_decorator_and_tasks() -> None:
    assert resolve() == ""
    with tenant("acme"):
        assert resolve() == "acme"
        with tenant("inner"):
            assert resolve() == "inner"
        assert resolve() == "acme"
    assert resolve() == ""

    @tenant("globex")
    async def work() -> list[str]:
        async def child() -> str:
            await asyncio.sleep(0)
            return resolve()

        return list(await asyncio.gather(asyncio.create_task(child()), child()))

    assert asyncio.run(work()) == ["globex", "globex"]

    @tenant("sync")
    def f() -> str:
        return resolve()

    assert f() == "sync"
    with pytest.raises(ValueError, match="non-empty string"):
        tenant("")


def test_tenant_resolver_user_and_hash() -> None:
    assert resolve("u-1") == ""  # the request user is not a tenant by default
    config.configure(tenant_from_user=True)
    assert resolve("u-1") == "u-1"
    config.configure(tenant_resolver=lambda: "from-resolver")
    assert resolve("u-1") == "from-resolver"

    def broken() -> str:
        raise RuntimeError

    config.configure(tenant_resolver=broken)
    assert resolve("u-1") == "u-1"  # a failing resolver never breaks the call
    config.configure(tenant_hash=True, fingerprint_key="k" * 32)
    hashed = resolve("u-1")
    assert len(hashed) == 16 and hashed != "u-1" and hashed == resolve("u-1")


# ---- fingerprint -------------------------------------------------------------------------------


def test_prefix_fingerprint_is_keyed_and_stable() -> None:
    config.configure(fingerprint_key="a" * 32)
    tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    fp, tokens = fingerprint.prefix(["You are terse."], tools)
    assert len(fp) == 16 and tokens > 0
    assert "terse" not in fp
    assert fingerprint.prefix(["You are terse."], list(tools)) == (fp, tokens)  # equal content, equal fingerprint
    assert fingerprint.prefix(["You are verbose."], tools)[0] != fp  # prefix churn is visible
    config.configure(fingerprint_key="b" * 32)
    assert fingerprint.prefix(["You are terse."], tools)[0] != fp  # keyed
    assert fingerprint.prefix([], None) == ("", 0)


def test_chat_chunk_reader_content_rules() -> None:
    from openai.types.chat import ChatCompletionChunk

    from llmotel.providers.openai import read_chat_chunk
    from llmotel.record import LLMResponse

    def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate(
            {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m-2025", **extra,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        )

    r = LLMResponse()
    assert read_chat_chunk(chunk({"role": "assistant", "content": ""}, system_fingerprint="fp_1"), r) is False
    assert (r.response_id, r.response_model, r.system_fingerprint) == ("c1", "m-2025", "fp_1")
    assert read_chat_chunk(chunk({"reasoning_content": "thinking"}), r) is True  # vLLM-style reasoning delta
    assert read_chat_chunk(chunk({"tool_calls": [{"index": 0, "id": "t", "function": {"name": "search"}}]}), r)
    assert read_chat_chunk(chunk({"content": "hi"}), r) is True
    assert read_chat_chunk(chunk({}, "length", timings={"prompt_ms": 5.0}), r) is False
    assert r.tool_names == ["search"] and r.finish_reasons == ["length"] and r.truncated
    assert r.body_timing == {"timings": {"prompt_ms": 5.0}}
