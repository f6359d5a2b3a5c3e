"""A stream without usage (no stream_options.include_usage): the prompt's tokens are estimated from its size, in
their own attribute, so prefill is not 0 and the whole prefill is not booked as queue (issue: phase truth; on a
real llama.cpp server the no-usage workload went from queue error median 76 % to 6.5 % of TTFT, bench/real)."""

from __future__ import annotations

import openai

from _otel import children, instrumented
from llmotel import _semconv as sc
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel_sim import SimServer

MODEL = "gpt-4o"


def _prompt(words: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": " ".join(f"word{i % 97}" for i in range(words))}]


def test_stream_without_usage_estimates_input_tokens_apart_from_usage(sim: SimServer) -> None:
    client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="k", max_retries=0)
    with instrumented(OpenAIInstrumentor) as otel:
        # Calls that report usage teach the key how many characters make a token ...
        for words in (50, 400, 1500):
            for _chunk in client.chat.completions.create(
                model=MODEL, messages=_prompt(words), stream=True, stream_options={"include_usage": True},
                max_tokens=5, extra_headers={"x-sim-region": "us-east-1"},
            ):
                pass
        taught = [s for s in otel.roots() if sc.GEN_AI_USAGE_INPUT_TOKENS in (s.attributes or {})]
        assert len(taught) == 3
        reported = int(taught[-1].attributes[sc.GEN_AI_USAGE_INPUT_TOKENS])  # type: ignore[index,arg-type]
        otel.exporter.clear()
        # ... so a call without usage gets an estimate near what the server would have reported.
        for _chunk in client.chat.completions.create(
            model=MODEL, messages=_prompt(1500), stream=True, max_tokens=5,
            extra_headers={"x-sim-region": "us-east-1"},
        ):
            pass
        (root,) = otel.roots()
        attrs = root.attributes or {}
        assert sc.GEN_AI_USAGE_INPUT_TOKENS not in attrs  # never an estimate in gen_ai.usage.*
        estimated = int(attrs[sc.LLMOTEL_USAGE_INPUT_TOKENS_ESTIMATED])  # type: ignore[arg-type]
        assert abs(estimated - reported) <= 0.1 * reported
        assert [s.name for s in children(otel.spans(), root)] == ["queue", "prefill", "first_token", "decode"]


def test_usage_reported_means_no_estimate_attribute(sim: SimServer) -> None:
    client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="k", max_retries=0)
    with instrumented(OpenAIInstrumentor) as otel:
        client.chat.completions.create(model=MODEL, messages=_prompt(20), max_tokens=5)
        (root,) = otel.roots()
        assert sc.LLMOTEL_USAGE_INPUT_TOKENS_ESTIMATED not in (root.attributes or {})
