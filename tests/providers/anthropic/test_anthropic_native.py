"""Living with the SDK's own tracing: exactly one LLM span per call, and the SDK's traceparent points at it."""

from __future__ import annotations

from typing import Any

import pytest
import wrapt
from anthropic import AnthropicBedrock, AnthropicVertex
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _anth import MODEL, MSGS, SDK_SCOPE, Telemetry, Wire, aclient, client
from llmotel import _semconv as sc
from llmotel.providers.anthropic import AnthropicInstrumentor
from llmotel_sim import SimServer

H = {"x-sim-output-tokens": "3"}


def _traceparent_span_id(headers: dict[str, str]) -> tuple[int, int] | None:
    value = headers.get("traceparent")
    if value is None:
        return None
    _, trace_id, span_id, _ = value.split("-")
    return int(trace_id, 16), int(span_id, 16)


def test_sdk_traces_itself_when_llmotel_is_off(sim: SimServer, wire: Wire) -> None:
    """The premise: in this setup the SDK's native tracing is live (so withholding it below is real)."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    client(sim, wire, tp).messages.create(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H)
    spans = exporter.get_finished_spans()
    assert [(s.instrumentation_scope.name if s.instrumentation_scope else "", s.name) for s in spans] == [
        (SDK_SCOPE, "anthropic.messages.create")
    ]
    assert _traceparent_span_id(wire.requests[-1]) == (spans[0].context.trace_id, spans[0].context.span_id)


@pytest.mark.parametrize("how", ["create", "stream", "stream_helper"])
def test_one_llm_span_and_sdk_traceparent_points_at_it(
    sim: SimServer, telemetry: Telemetry, wire: Wire, how: str
) -> None:
    c = client(sim, wire, telemetry.tracer_provider)
    if how == "create":
        c.messages.create(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H)
    elif how == "stream":
        for _ in c.messages.create(model=MODEL, max_tokens=16, messages=MSGS, stream=True, extra_headers=H):
            pass
    else:
        with c.messages.stream(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H) as s:
            s.until_done()
    parent, kids = telemetry.one_call()
    assert all(s.instrumentation_scope and s.instrumentation_scope.name == "llmotel" for s in telemetry.spans())
    assert len(kids) == 4
    # The SDK still propagates (its `propagation` option is on by default), now naming llmotel's span.
    assert _traceparent_span_id(wire.requests[-1]) == (parent.context.trace_id, parent.context.span_id)


async def test_one_llm_span_async_native(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = aclient(sim, wire, telemetry.tracer_provider)
    async with c.messages.stream(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H) as s:
        await s.until_done()
    parent, _ = telemetry.one_call()
    assert _traceparent_span_id(wire.requests[-1]) == (parent.context.trace_id, parent.context.span_id)


@pytest.mark.llmotel(propagate_trace_context="never")  # the loopback simulator is "self-hosted"
def test_sdk_propagation_off_sends_no_traceparent(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    c = client(sim, wire)
    c = c.with_options(open_telemetry={"tracer_provider": telemetry.tracer_provider, "propagation": False})
    c.messages.create(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H)
    telemetry.one_call()
    assert "traceparent" not in wire.requests[-1]


@pytest.mark.llmotel(propagate_trace_context="never")  # the loopback simulator is "self-hosted"
def test_sdk_tracing_off_by_env(
    sim: SimServer, telemetry: Telemetry, wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    import anthropic
    import httpx2

    c = anthropic.Anthropic(
        base_url=sim.base_url,
        api_key="tenant-acme",
        http_client=httpx2.Client(event_hooks={"request": [wire.on_request], "response": [wire.on_response]}),
    )
    c.messages.create(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H)
    telemetry.one_call()
    assert "traceparent" not in wire.requests[-1]  # llmotel's own propagation is set to never


@pytest.mark.llmotel(propagate_trace_context=True)
@pytest.mark.parametrize("is_async", [False, True])
async def test_llmotel_propagation_opt_in_reaches_stream_helper(
    sim: SimServer, telemetry: Telemetry, wire: Wire, is_async: bool
) -> None:
    """SDK tracing off, llmotel's propagate_trace_context on: even the stream() helper's prebuilt request
    carries llmotel's span, and the caller's extra_headers dict is left untouched."""
    headers = dict(H)
    if is_async:
        async with aclient(sim, wire).messages.stream(
            model=MODEL, max_tokens=16, messages=MSGS, extra_headers=headers
        ) as s:
            await s.until_done()
    else:
        with client(sim, wire).messages.stream(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=headers) as s:
            s.until_done()
    parent, _ = telemetry.one_call()
    assert _traceparent_span_id(wire.requests[-1]) == (parent.context.trace_id, parent.context.span_id)
    assert headers == H


def test_non_llm_sdk_calls_keep_the_sdk_span(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    client(sim, wire, telemetry.tracer_provider).models.list()
    spans = telemetry.spans()
    assert [s.instrumentation_scope.name for s in spans if s.instrumentation_scope] == [SDK_SCOPE]


def test_llm_span_is_child_of_the_callers_span(sim: SimServer, telemetry: Telemetry, wire: Wire) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle_request") as outer:
        client(sim, wire, telemetry.tracer_provider).messages.create(
            model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H
        )
    parent, _ = telemetry.one_call()
    assert parent.parent is not None and parent.parent.span_id == outer.get_span_context().span_id
    assert trace.get_current_span() is trace.INVALID_SPAN or not trace.get_current_span().is_recording()


def _patched_functions() -> list[Any]:
    import anthropic._base_client as base
    from anthropic.lib.bedrock import _beta_messages as bedrock_beta
    from anthropic.resources.beta.messages import messages as beta
    from anthropic.resources.messages import messages as first_party

    # Class attributes are read from the class dict: attribute access would bind the wrapper.
    out: list[Any] = [base.start_api_call_span, vars(base.BaseClient)["_build_request"]]
    out += [vars(base.SyncAPIClient)["_attempt_request"], vars(base.AsyncAPIClient)["_attempt_request"]]
    for module in (first_party, beta, bedrock_beta):
        for cls in (module.Messages, module.AsyncMessages):
            out += [vars(cls)[name] for name in ("create", "parse", "stream", "count_tokens") if name in vars(cls)]
    return out


def test_bedrock_and_vertex_share_the_patched_code_path(telemetry: Telemetry) -> None:
    bedrock = AnthropicBedrock(aws_region="eu-west-1", aws_access_key="k", aws_secret_key="s")
    vertex = AnthropicVertex(region="us-east5", project_id="p", access_token="t")
    for c in (bedrock, vertex):
        assert isinstance(vars(type(c.messages))["create"], wrapt.FunctionWrapper)
        assert isinstance(vars(type(c.beta.messages))["create"], wrapt.FunctionWrapper)
        assert isinstance(vars(type(c.beta.messages))["stream"], wrapt.FunctionWrapper)


def test_uninstrument_leaves_no_wrapper_and_the_sdk_span_returns(sim: SimServer, wire: Wire) -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = AnthropicInstrumentor()
    before = _patched_functions()
    assert not any(isinstance(f, wrapt.FunctionWrapper) for f in before)
    inst.instrument(tracer_provider=tp)
    assert all(isinstance(f, wrapt.FunctionWrapper) for f in _patched_functions())
    inst.uninstrument()
    after = _patched_functions()
    assert after == before
    client(sim, wire, tp).messages.create(model=MODEL, max_tokens=16, messages=MSGS, extra_headers=H)
    assert [s.instrumentation_scope.name for s in exporter.get_finished_spans() if s.instrumentation_scope] == [
        SDK_SCOPE
    ]


def test_tool_runner_turns_are_llm_spans_under_the_sdk_runner_span(
    sim: SimServer, telemetry: Telemetry, wire: Wire
) -> None:
    """The SDK's tool runner drives each turn through beta.messages.create: one llmotel LLM span per turn,
    nested in the SDK's own (non-LLM) runner span, next to its tool spans."""
    from anthropic import beta_tool

    @beta_tool
    def lookup(input: str) -> str:
        """Look something up."""
        return "found"

    runner = client(sim, wire, telemetry.tracer_provider).beta.messages.tool_runner(
        model=MODEL,
        max_tokens=64,
        messages=MSGS,  # type: ignore[arg-type]
        tools=[lookup],
        max_iterations=2,
        extra_headers={"x-sim-tool-calls": "lookup", "x-sim-output-tokens": "4"},
    )
    turns = list(runner)
    assert len(turns) == 2 and len(wire.requests) == 2
    spans = telemetry.spans()
    llm = telemetry.llm_spans()
    runner_span = [s for s in spans if s.name == "anthropic.messages.tool_runner"]
    assert len(runner_span) == 1 and len(llm) == 2
    assert all(s.instrumentation_scope and s.instrumentation_scope.name == "llmotel" for s in llm)
    assert all(s.parent is not None and s.parent.span_id == runner_span[0].context.span_id for s in llm)
    assert [list(s.attributes[sc.LLMOTEL_RESPONSE_TOOL_NAMES]) for s in llm if s.attributes] == [["lookup"]] * 2
