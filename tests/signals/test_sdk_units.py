"""Unit tests of the SDK's small parsers: config, server timing, rate limits, region/revision, tenant, fingerprint."""

from __future__ import annotations

import asyncio

import pytest

from llmotel import _semconv as sc
from llmotel import config
from llmotel.signals import fingerprint, ratelimit, region
from llmotel.signals.tenant import resolve, tenant

DEFAULTS = config.resolve(env={})


# ---- config ------------------------------------------------------------------------------------


def test_config_defaults_and_env() -> None:
    cfg = config.resolve(env={})
    assert cfg.stall_threshold_s == 2.0 and not cfg.capture_content and cfg.propagate_trace_context == "self_hosted"
    cfg = config.resolve(env=
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
        config.resolve(env=env)
    assert fragment in str(err.value)


def test_options_reject_unknown_keys_and_bad_values() -> None:
    with pytest.raises(config.ConfigError, match="unknown llmotel option"):
        config.resolve({"stall_treshold_s": 1})
    with pytest.raises(config.ConfigError, match="tenant_resolver must be a callable"):
        config.resolve({"tenant_resolver": "acme"})
    # The keyword path goes through the same parsers as the variables.
    with pytest.raises(config.ConfigError, match="stall_threshold_s='soon' is not a number"):
        config.resolve({"stall_threshold_s": "soon"})
    with pytest.raises(config.ConfigError, match="fingerprint_key is shorter than 16"):
        config.resolve({"fingerprint_key": "short"})
    with pytest.raises(config.ConfigError, match="capture_content='maybe' is not a boolean"):
        config.resolve({"capture_content": "maybe"})
    s = config.resolve({"stall_threshold_s": 5, "capture_content": "true", "fingerprint_key": "k" * 32}, env={})
    assert (s.stall_threshold_ns, s.capture_content, s.fingerprint_key) == (5_000_000_000, True, b"k" * 32)


def test_options_override_the_environment() -> None:
    env = {"LLMOTEL_STALL_THRESHOLD_S": "0.5", "LLMOTEL_REGION": "eu"}
    s = config.resolve({"stall_threshold_s": 3.0}, env=env)
    assert (s.stall_threshold_s, s.region) == (3.0, "eu")
    assert config.resolve(env={}).fingerprint_key == config.resolve(env={}).fingerprint_key  # one per process


def test_every_setting_in_the_registry_is_a_settings_field() -> None:
    import dataclasses

    fields = [f.name for f in dataclasses.fields(config.Settings) if f.init]
    assert [s.name for s in config.SETTINGS] == fields
    assert set(config.SETTING) == set(fields)


def test_process_wide_settings_keep_their_variables() -> None:
    from llmotel.energy import config as energy_config
    from llmotel.phases import learner

    assert config.SETTING["phase_model_state"].env == learner.STATE_ENV == "LLMOTEL_PHASE_MODEL_STATE"
    assert config.SETTING["energy_config"].env == energy_config.ENV_VAR == "LLMOTEL_ENERGY_CONFIG"
    assert config.env_value("phase_model_state", {"LLMOTEL_PHASE_MODEL_STATE": " /tmp/s.json "}) == "/tmp/s.json"
    assert config.env_value("energy_config", {"LLMOTEL_STALL_THRESHOLD_S": "bad"}) == ""  # others are not read


def test_configure_sets_the_default_instrumentors_start_from(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmotel
    from llmotel.providers.openai import OpenAIInstrumentor

    monkeypatch.setattr(config, "_current", config.resolve(env={}))  # restored after the test
    llmotel.configure(region="eu-west-1")
    inst = OpenAIInstrumentor()
    inst.instrument(stall_threshold_s=7)
    try:
        assert inst.settings is not None
        assert (inst.settings.region, inst.settings.stall_threshold_s) == ("eu-west-1", 7.0)
        assert config.get().stall_threshold_s == 2.0  # instrument() options stay the instrumentor's own
    finally:
        inst.uninstrument()
    with pytest.raises(config.ConfigError, match="unknown llmotel option"):
        config.configure(stall_treshold_s=1)


def test_docs_settings_table_is_current() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "sdk.md").read_text(encoding="utf-8")
    assert config.with_table(text) == text, "docs/sdk.md is stale: python -m llmotel.config --write-docs docs/sdk.md"


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
    assert resolve(DEFAULTS) == ""
    with tenant("acme"):
        assert resolve(DEFAULTS) == "acme"
        with tenant("inner"):
            assert resolve(DEFAULTS) == "inner"
        assert resolve(DEFAULTS) == "acme"
    assert resolve(DEFAULTS) == ""

    @tenant("globex")
    async def work() -> list[str]:
        async def child() -> str:
            await asyncio.sleep(0)
            return resolve(DEFAULTS)

        return list(await asyncio.gather(asyncio.create_task(child()), child()))

    assert asyncio.run(work()) == ["globex", "globex"]

    @tenant("sync")
    def f() -> str:
        return resolve(DEFAULTS)

    assert f() == "sync"
    with pytest.raises(ValueError, match="non-empty string"):
        tenant("")


def test_tenant_resolver_user_and_hash() -> None:
    assert resolve(DEFAULTS, "u-1") == ""  # the request user is not a tenant by default
    s = config.override(DEFAULTS, {"tenant_from_user": True})
    assert resolve(s, "u-1") == "u-1"
    s = config.override(s, {"tenant_resolver": lambda: "from-resolver"})
    assert resolve(s, "u-1") == "from-resolver"

    def broken() -> str:
        raise RuntimeError

    s = config.override(s, {"tenant_resolver": broken})
    assert resolve(s, "u-1") == "u-1"  # a failing resolver never breaks the call
    s = config.override(s, {"tenant_hash": True, "fingerprint_key": "k" * 32})
    hashed = resolve(s, "u-1")
    assert len(hashed) == 16 and hashed != "u-1" and hashed == resolve(s, "u-1")


# ---- fingerprint -------------------------------------------------------------------------------


def test_prefix_fingerprint_is_keyed_and_stable() -> None:
    key = config.resolve({"fingerprint_key": "a" * 32}).fingerprint_key
    tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    fp, tokens = fingerprint.prefix(["You are terse."], tools, key)
    assert len(fp) == 16 and tokens > 0
    assert "terse" not in fp
    assert fingerprint.prefix(["You are terse."], list(tools), key) == (fp, tokens)  # equal content, equal fingerprint
    assert fingerprint.prefix(["You are verbose."], tools, key)[0] != fp  # prefix churn is visible
    other = config.resolve({"fingerprint_key": "b" * 32}).fingerprint_key
    assert fingerprint.prefix(["You are terse."], tools, other)[0] != fp  # keyed
    assert fingerprint.prefix([], None, key) == ("", 0)


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
