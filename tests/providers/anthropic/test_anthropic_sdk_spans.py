"""The setting ``anthropic_sdk_spans`` (``LLMOTEL_ANTHROPIC_SDK_SPANS``): the anthropic SDK's own span for the calls
llmotel instruments. Default ``off``: exactly one CLIENT span per call, llmotel's, and the SDK skips its tracing work
for that call (``BaseClient._tracer`` answers None inside it); ``keep``: the SDK's span as well, under llmotel's.

Real ``anthropic`` clients with the SDK's tracing on (``open_telemetry={"tracer_provider": ...}``, the provider
llmotel exports into), over loopback HTTP to the simulator.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from _anth import MODEL, MSGS, SDK_SCOPE, Telemetry, Wire, aclient, client
from llmotel import config
from llmotel_sim import SimServer

H = {"x-sim-output-tokens": "3"}


def _client_spans(telemetry: Telemetry) -> list[tuple[str, str]]:
    return [
        (s.instrumentation_scope.name if s.instrumentation_scope else "", s.name)
        for s in telemetry.spans()
        if s.kind is SpanKind.CLIENT
    ]


def _traceparent(wire: Wire) -> tuple[int, int] | None:
    value = wire.requests[-1].get("traceparent")
    if value is None:
        return None
    _, trace_id, span_id, _ = value.split("-")
    return int(trace_id, 16), int(span_id, 16)


def _ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def _call(c: Any, how: str) -> None:
    if how == "create":
        c.messages.create(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H)
    elif how == "stream":
        for _ in c.messages.create(model=MODEL, max_tokens=16, messages=MSGS, stream=True, extra_headers=H):
            pass
    elif how == "stream_helper":
        with c.messages.stream(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H) as s:
            s.until_done()
    else:
        c.messages.count_tokens(model=MODEL, messages=MSGS)


@pytest.fixture
def sdk_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SDK call span that the SDK finished, by its name (its tracing work ends in ``finish_api_call_span``)."""
    import anthropic._base_client as base

    finished: list[str] = []
    original = base.finish_api_call_span

    def spy(client: Any, span: Any, result: Any) -> Any:
        finished.append(getattr(span, "name", type(span).__name__))
        return original(client, span, result)

    monkeypatch.setattr(base, "finish_api_call_span", spy)
    return finished


@pytest.mark.parametrize("how", ["create", "stream", "stream_helper", "count_tokens"])
def test_default_one_client_span_per_call_and_no_sdk_tracing_work(
    sim: SimServer, telemetry: Telemetry, wire: Wire, sdk_work: list[str], how: str
) -> None:
    c = client(sim, wire, telemetry.tracer_provider)
    for _ in range(2):
        _call(c, how)
    name = f"count_tokens {MODEL}" if how == "count_tokens" else f"chat {MODEL}"
    assert _client_spans(telemetry) == [("llmotel", name)] * 2
    assert sdk_work == []  # the SDK took its untraced path: no span, no ApiCall, nothing to finish
    # The SDK's propagation (its `propagation` option, on by default) is kept, naming llmotel's span.
    parent = [s for s in telemetry.spans() if s.name == name][-1]
    assert _traceparent(wire) == _ids(parent)
    # The client itself is untouched: outside llmotel's calls it traces as before.
    c.models.list()
    assert _client_spans(telemetry)[-1] == (SDK_SCOPE, "anthropic.models.list")
    assert sdk_work == ["anthropic.models.list"]


async def test_default_one_client_span_async(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = aclient(sim, wire, telemetry.tracer_provider)
    await c.messages.create(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H)
    stream = await c.messages.create(model=MODEL, max_tokens=16, messages=MSGS, stream=True, extra_headers=H)
    async for _ in stream:
        pass
    async with c.messages.stream(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H) as s:
        await s.until_done()
    assert _client_spans(telemetry) == [("llmotel", f"chat {MODEL}")] * 3


@pytest.mark.llmotel(propagate_trace_context="never")  # the loopback simulator is "self-hosted"
def test_default_sdk_propagation_off_sends_no_traceparent(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = client(sim, wire).with_options(
        open_telemetry={"tracer_provider": telemetry.tracer_provider, "propagation": False}
    )
    c.messages.create(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H)
    assert _client_spans(telemetry) == [("llmotel", f"chat {MODEL}")]
    assert "traceparent" not in wire.requests[-1]


@pytest.mark.llmotel(anthropic_sdk_spans="keep")
@pytest.mark.parametrize("how", ["create", "stream", "stream_helper"])
def test_keep_the_sdk_span_as_a_child_of_llmotels(
    sim: SimServer, telemetry: Telemetry, wire: Wire, sdk_work: list[str], how: str
) -> None:
    _call(client(sim, wire, telemetry.tracer_provider), how)
    spans = telemetry.spans()
    assert sorted(_client_spans(telemetry)) == [(SDK_SCOPE, "anthropic.messages.create"), ("llmotel", f"chat {MODEL}")]
    ours = next(s for s in spans if s.name == f"chat {MODEL}")
    sdk = next(s for s in spans if s.name == "anthropic.messages.create")
    assert sdk.parent is not None and sdk.parent.span_id == _ids(ours)[1]
    assert len([s for s in spans if s.parent is not None and s.parent.span_id == _ids(ours)[1]]) == 5  # + 4 phases
    assert sdk_work == ["anthropic.messages.create"]
    assert _traceparent(wire) == _ids(sdk)  # the SDK propagates its own span, as without llmotel


@pytest.mark.llmotel(anthropic_sdk_spans="keep")
def test_keep_patches_nothing_of_the_sdks_tracing(telemetry: Telemetry) -> None:
    import anthropic._base_client as base
    import wrapt

    assert not isinstance(base.start_api_call_span, wrapt.FunctionWrapper)
    assert vars(base.BaseClient)["_tracer"].fget.__module__.startswith("anthropic")


def test_default_hook_is_removed_by_uninstrument(telemetry: Telemetry) -> None:
    import anthropic._base_client as base

    from llmotel.providers.anthropic import AnthropicInstrumentor

    hooked = vars(base.BaseClient)["_tracer"]
    assert hooked.fget.__module__ == "llmotel.providers._anthropic_native"
    AnthropicInstrumentor().uninstrument()
    restored = vars(base.BaseClient)["_tracer"]
    assert restored is not hooked and restored.fget.__module__.startswith("anthropic")


def test_setting_values_and_a_bad_variable(caplog: pytest.LogCaptureFixture) -> None:
    assert config.resolve(env={}).anthropic_sdk_spans == "off"
    assert config.resolve(env={"LLMOTEL_ANTHROPIC_SDK_SPANS": " Keep "}).anthropic_sdk_spans == "keep"
    assert config.resolve({"anthropic_sdk_spans": "keep"}, env={}).anthropic_sdk_spans == "keep"
    with pytest.raises(config.ConfigError, match=r"LLMOTEL_ANTHROPIC_SDK_SPANS='both'.*off \(default\) or keep"):
        config.resolve(env={"LLMOTEL_ANTHROPIC_SDK_SPANS": "both"})
    with caplog.at_level(logging.WARNING, logger="llmotel"):
        settings = config.resolve(env={"LLMOTEL_ANTHROPIC_SDK_SPANS": "bogus-value"}, strict=False)
    assert settings.anthropic_sdk_spans == "off"
    assert any("LLMOTEL_ANTHROPIC_SDK_SPANS='bogus-value'" in r.getMessage() for r in caplog.records)
    with pytest.raises(config.ConfigError):
        config.resolve({"anthropic_sdk_spans": "both"}, env={})
