"""instrument() / uninstrument() twice, in any order: no double wrapping, no error, originals restored exactly."""

from __future__ import annotations

import importlib
from typing import Any

import anthropic
import openai
from _rel import CLAUDE, GPT, MSGS, Tel, llm_spans

from llmotel.providers.anthropic import AnthropicInstrumentor
from llmotel.providers.openai import OpenAIInstrumentor
from llmotel_sim import SimServer

_METHODS = [
    ("openai.resources.chat.completions.completions", "Completions", "create"),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "create"),
    ("openai.resources.responses.responses", "Responses", "create"),
    ("anthropic.resources.messages.messages", "Messages", "create"),
    ("anthropic.resources.messages.messages", "Messages", "stream"),
    ("anthropic.resources.messages.messages", "AsyncMessages", "create"),
]


def _originals() -> list[Any]:
    return [vars(getattr(importlib.import_module(m), c))[a] for m, c, a in _METHODS]


def _calls(sim: SimServer) -> None:
    oai = openai.OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=0)
    ant = anthropic.Anthropic(base_url=sim.base_url, api_key="tenant-acme", max_retries=0, open_telemetry=False)
    oai.chat.completions.create(model=GPT, messages=MSGS)  # type: ignore[arg-type]
    ant.messages.create(model=CLAUDE, max_tokens=16, messages=MSGS)  # type: ignore[arg-type]
    oai.close()
    ant.close()


def test_instrument_and_uninstrument_twice(sim: SimServer, tel: Tel) -> None:
    originals = _originals()
    tel.instrument()
    # A second instrument() is a no-op (BaseInstrumentor), never a second wrapper: one span per call.
    OpenAIInstrumentor().instrument(tracer_provider=tel.tp)
    AnthropicInstrumentor().instrument(tracer_provider=tel.tp)
    _calls(sim)
    assert len(llm_spans(tel.take())) == 2
    tel.uninstrument()
    tel.uninstrument()  # twice: nothing to undo, no error
    assert _originals() == originals  # the very same function objects
    _calls(sim)
    assert llm_spans(tel.take()) == []
    # And back on: works as the first time.
    tel.instrument()
    _calls(sim)
    assert len(llm_spans(tel.take())) == 2
    tel.uninstrument()
    assert _originals() == originals
