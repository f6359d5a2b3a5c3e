"""Cost per call (llmotel.cost): the price library's own numbers, cache reads and writes at their rates, nothing for
an unknown model, and on the span of a real client call."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import anthropic
import genai_prices
import openai
import pytest
from genai_prices import data_snapshot

from _otel import instrumented
from llmotel import _semconv as sc
from llmotel import cost
from llmotel.instrument import outcome
from llmotel.providers.anthropic import AnthropicInstrumentor
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel.record import CallCapture, LLMRequest, LLMResponse, Usage
from llmotel_sim import SimServer

WHEN = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _library(provider_id: str, model: str, usage: Usage, tier: str = "") -> genai_prices.types.PriceCalculation:
    """What genai-prices itself says, through its public calc_price and its own Usage."""
    fields = {
        k: getattr(usage, k)
        for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                  "cache_write_5m_tokens", "cache_write_1h_tokens")
        if getattr(usage, k) is not None
    }
    return genai_prices.calc_price(
        genai_prices.Usage(**fields), model, provider_id=provider_id, genai_request_timestamp=WHEN,
        price_context={"service_tier": tier} if tier else None,
    )


def _same(mine: cost.Price | None, theirs: genai_prices.types.PriceCalculation) -> None:
    assert mine is not None
    for a, b in ((mine.usd, theirs.total_price), (mine.input_usd, theirs.input_price),
                 (mine.output_usd, theirs.output_price)):
        assert math.isclose(a, float(b), rel_tol=1e-12, abs_tol=1e-15), (mine, theirs)
    assert mine.source == f"genai-prices {genai_prices.__version__}"


def test_openai_with_cache_reads_is_the_librarys_price() -> None:
    usage = Usage(input_tokens=12_000, output_tokens=800, cache_read_tokens=10_240)
    mine = cost.price("openai", "gpt-4o-2024-08-06", usage, when=WHEN)
    _same(mine, _library("openai", "gpt-4o-2024-08-06", usage))
    # Hand check with the library's rates: cache reads are cheaper than uncached input.
    no_cache = cost.price("openai", "gpt-4o-2024-08-06", Usage(input_tokens=12_000, output_tokens=800), when=WHEN)
    assert mine is not None and no_cache is not None and mine.input_usd < no_cache.input_usd
    assert mine.output_usd == no_cache.output_usd


def test_openai_service_tier_is_priced_as_reported() -> None:
    usage = Usage(input_tokens=5_000, output_tokens=1_000, cache_read_tokens=2_048)
    for tier in ("flex", "priority", "default"):
        _same(cost.price("openai", "gpt-5", usage, tier, when=WHEN), _library("openai", "gpt-5", usage, tier))
    flex = cost.price("openai", "gpt-5", usage, "flex", when=WHEN)
    standard = cost.price("openai", "gpt-5", usage, when=WHEN)
    assert flex is not None and standard is not None and flex.usd < standard.usd


def test_anthropic_with_cache_reads_and_writes_is_the_librarys_price() -> None:
    model = "claude-sonnet-4-20250514"
    reads = Usage(input_tokens=20_000, output_tokens=600, cache_read_tokens=15_000, cache_write_tokens=0)
    _same(cost.price("anthropic", model, reads, when=WHEN), _library("anthropic", model, reads))
    writes = Usage(input_tokens=20_000, output_tokens=600, cache_read_tokens=8_000, cache_write_tokens=6_000,
                   cache_write_5m_tokens=4_000, cache_write_1h_tokens=2_000)
    _same(cost.price("anthropic", model, writes, when=WHEN), _library("anthropic", model, writes))
    only_total = Usage(input_tokens=20_000, output_tokens=600, cache_read_tokens=8_000, cache_write_tokens=6_000)
    _same(cost.price("anthropic", model, only_total, when=WHEN), _library("anthropic", model, only_total))


def test_random_usages_agree_with_the_library() -> None:
    rng = random.Random(7)
    models = [("openai", "gpt-4o-mini-2024-07-18"), ("openai", "o3"), ("anthropic", "claude-3-5-haiku-latest"),
              ("anthropic", "claude-opus-4-1-20250805"), ("gcp.gemini", "gemini-2.5-pro")]  # the last is tiered
    for _ in range(120):
        provider, model = rng.choice(models)
        total = rng.randint(1, 400_000)
        read = rng.randint(0, total)
        write = rng.randint(0, total - read) if provider == "anthropic" else None
        write_1h = rng.randint(0, write) if write is not None and rng.random() < 0.5 else None
        usage = Usage(input_tokens=total, output_tokens=rng.randint(0, 8_000), cache_read_tokens=read,
                      cache_write_tokens=write, cache_write_1h_tokens=write_1h)
        _same(cost.price(provider, model, usage, when=WHEN),
              _library(cost.PROVIDER_IDS[provider], model, usage))


@pytest.mark.parametrize(
    ("provider", "model", "usage"),
    [
        ("openai", "gpt-no-such-model-9", Usage(input_tokens=10, output_tokens=10)),
        ("acme", "gpt-4o", Usage(input_tokens=10, output_tokens=10)),
        ("vllm", "meta-llama/Llama-3.1-8B-Instruct", Usage(input_tokens=10, output_tokens=10)),
        ("openai", "gpt-4o", Usage(input_tokens=10)),
        ("openai", "gpt-4o", Usage(output_tokens=10)),
        ("openai", "", Usage(input_tokens=10, output_tokens=10)),
    ],
)
def test_unknown_model_provider_or_counts_give_no_price(provider: str, model: str, usage: Usage) -> None:
    assert cost.price(provider, model, usage) is None


def test_a_broken_library_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> object:
        raise RuntimeError("broken price data")

    monkeypatch.setattr(cost, "_library", cost._Library())
    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", boom)
    assert cost.price("openai", "gpt-4o", Usage(input_tokens=10, output_tokens=10)) is None


def _outcome(usage: Usage, status: int = 200, error: BaseException | None = None) -> outcome.CallOutcome:
    request = LLMRequest(provider="anthropic", operation="chat", request_model="claude-sonnet-4-0")
    response = LLMResponse(response_model="claude-sonnet-4-20250514", usage=usage, status_code=status)
    return outcome.compute(request, response, CallCapture(), error)


def test_outcome_prices_reported_usage_only() -> None:
    usage = Usage(input_tokens=3_000, output_tokens=200, cache_read_tokens=2_000, cache_write_tokens=0)
    out = _outcome(usage)
    expected = cost.price("anthropic", "claude-sonnet-4-20250514", usage)
    assert expected is not None and out.cost_usd == pytest.approx(expected.usd, rel=1e-12)
    assert (out.cost_input_usd, out.cost_output_usd) == pytest.approx((expected.input_usd, expected.output_usd))
    assert out.cost_source.startswith("genai-prices ")
    estimated = Usage(input_tokens=3_000, output_tokens=200, source="estimated")
    assert _outcome(estimated).cost_usd is None  # a count llmotel estimated is not priced
    assert _outcome(usage, 500, RuntimeError("x")).cost_usd is None


def test_openai_call_span_carries_its_cost(sim: SimServer) -> None:
    model = "gpt-4o-mini-2024-07-18"  # a dated snapshot: the simulator answers with it as is
    with instrumented(OpenAIInstrumentor) as otel:
        client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="k")
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"x-sim-output-tokens": "7", "x-sim-input-tokens": "900"})
        (span,) = [s for s in otel.spans() if s.name == f"chat {model}"]
    attrs = span.attributes or {}
    usage = Usage(input_tokens=attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], output_tokens=attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS],
                  cache_read_tokens=attrs.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS))
    expected = _library("openai", model, usage, str(attrs.get(sc.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER, "")))
    assert attrs[sc.LLMOTEL_COST_USD] == pytest.approx(float(expected.total_price), rel=1e-12)
    assert attrs[sc.LLMOTEL_COST_INPUT_USD] + attrs[sc.LLMOTEL_COST_OUTPUT_USD] == pytest.approx(
        attrs[sc.LLMOTEL_COST_USD], rel=1e-12
    )
    assert attrs[sc.LLMOTEL_COST_SOURCE] == f"genai-prices {genai_prices.__version__}"


def test_anthropic_call_span_carries_its_cost(sim: SimServer) -> None:
    model = "claude-sonnet-4-20250514"
    with instrumented(AnthropicInstrumentor) as otel:
        client = anthropic.Anthropic(base_url=sim.base_url, api_key="k")
        client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}],
                               extra_headers={"x-sim-output-tokens": "7"})
        spans = [s for s in otel.spans() if (s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME)]
    (span,) = spans
    attrs = span.attributes or {}
    assert attrs[sc.LLMOTEL_COST_USD] > 0
    assert span.name.endswith(model)


def test_unknown_model_span_has_no_cost(sim: SimServer) -> None:
    with instrumented(OpenAIInstrumentor) as otel:
        client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="k")
        client.chat.completions.create(model="acme-private-13b", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"x-sim-output-tokens": "3"})
        (span,) = [s for s in otel.spans() if s.name.startswith("chat ")]
    assert sc.LLMOTEL_COST_USD not in (span.attributes or {})


def test_tiered_price_is_the_librarys_below_and_above_the_first_tier() -> None:
    # claude-sonnet-4-5 has long-context rates from 200k input tokens: below the first tier llmotel multiplies the
    # base rates (checked against the library once), at or above it the library prices the call itself.
    model = "claude-sonnet-4-5-20250929"
    for usage in (Usage(input_tokens=1_000, output_tokens=100, cache_read_tokens=200),
                  Usage(input_tokens=199_999, output_tokens=100),
                  Usage(input_tokens=250_000, output_tokens=100, cache_read_tokens=50_000)):
        _same(cost.price("anthropic", model, usage, when=WHEN), _library("anthropic", model, usage))
