"""A stream without usage (no stream_options.include_usage): the prompt's tokens are estimated from its size, in
their own attribute, so prefill is not 0 and the whole prefill is not booked as queue (issue: phase truth; on a
real llama.cpp server the no-usage workload went from queue error median 76 % to 6.5 % of TTFT, bench/real)."""

from __future__ import annotations

import openai

from _otel import children, instrumented
from llmotel import _semconv as sc
from llmotel import config
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


def _with_system(system_words: int, user_words: int, tag: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": " ".join(f"{tag}{i % 89}" for i in range(system_words))},
        {"role": "user", "content": " ".join(f"ask{i % 31}" for i in range(user_words))},
    ]


def test_stream_without_usage_assumes_a_prefix_sent_before_cached(sim: SimServer) -> None:
    """No usage, so no cached-token count: a system prompt this process sent before is taken as cached (its
    characters' tokens, in their own attribute), one it never sent as not."""
    client = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="k", max_retries=0)
    headers = {"x-sim-region": "us-east-1"}
    with instrumented(OpenAIInstrumentor) as otel:
        for words in (50, 400, 1500):  # the key's characters per token, from calls with usage
            for _chunk in client.chat.completions.create(
                model=MODEL, messages=_prompt(words), stream=True, stream_options={"include_usage": True},
                max_tokens=5, extra_headers=headers,
            ):
                pass
        otel.exporter.clear()
        for messages in (_with_system(1000, 30, "a"), _with_system(1000, 60, "a"), _with_system(1000, 30, "b")):
            for _chunk in client.chat.completions.create(
                model=MODEL, messages=messages, stream=True, max_tokens=5, extra_headers=headers,
            ):
                pass
        first, again, other = (s.attributes or {} for s in otel.roots())
        assert first[sc.LLMOTEL_USAGE_CACHE_READ_INPUT_TOKENS_ESTIMATED] == 0
        assert other[sc.LLMOTEL_USAGE_CACHE_READ_INPUT_TOKENS_ESTIMATED] == 0
        cached = int(again[sc.LLMOTEL_USAGE_CACHE_READ_INPUT_TOKENS_ESTIMATED])  # type: ignore[arg-type]
        total = int(again[sc.LLMOTEL_USAGE_INPUT_TOKENS_ESTIMATED])  # type: ignore[arg-type]
        system_share = len(_with_system(1000, 60, "a")[0]["content"]) / sum(
            len(m["content"]) for m in _with_system(1000, 60, "a"))
        assert abs(cached - system_share * total) <= 2  # the system prompt's share of the estimated tokens
        for attrs in (first, again, other):
            assert sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS not in attrs  # never an estimate in gen_ai.usage.*


def test_usage_requested_means_no_prefix_hashes() -> None:
    """The prefixes are hashed only where no usage will come: other calls pay nothing for them."""
    from llmotel.providers import openai as p

    messages = _with_system(10, 10, "a")
    assert p.prompt_prefixes(messages, "") == p.prompt_prefixes(list(messages), "")
    (h1, n1), (_, n2) = p.prompt_prefixes(messages, "")
    assert (n1, n2) == (len(messages[0]["content"]), len(messages[0]["content"]) + len(messages[1]["content"]))
    assert p.prompt_prefixes(_with_system(10, 11, "a"), "")[0] == (h1, n1)  # same system prompt, same first prefix
    assert p.prompt_prefixes(_with_system(10, 10, "b"), "")[0][0] != h1
    assert p.prompt_prefixes(messages, "tools")[0][0] != h1  # tools render ahead of the messages
    assert not p._usage_requested(None) and p._usage_requested({"include_usage": True})
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0)
    settings = config.resolve()

    def read(**kwargs: object) -> tuple[tuple[int, int], ...]:
        req = p.read_chat_request(client.chat.completions, (), {"model": MODEL, "messages": messages, **kwargs},
                                  settings)
        return req.prompt_prefixes

    assert read(stream=True) == p.prompt_prefixes(messages, "")
    assert read(stream=True, stream_options={"include_usage": True}) == ()
    assert read() == ()
