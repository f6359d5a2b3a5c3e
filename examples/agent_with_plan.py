"""A plain Python plan-and-execute agent loop, instrumented with llmotel, that drifts from its plan.

    .venv/bin/python examples/agent_with_plan.py            # against the built-in simulator on loopback
    OPENAI_BASE_URL=... OPENAI_API_KEY=... MODEL=... python examples/agent_with_plan.py   # against a real endpoint

The planner's LLM call answers with tool calls: that list is the announced plan. The executor then loops
"ask the model -> run the tools it asked for" until the model stops asking. The simulator plays the model: the
`x-sim-tool-calls` headers below script which tools it asks for (a real model ignores them). The script makes the
executor skip `compare_prices` and add `send_email`, then re-plan after finding no seats.

Printed at the end: the spans of the run (what an exporter would ship) and run.adherence. The deviation is visible on
the invoke_agent span (planned vs executed tools, skipped/extra counts) and on each tool span (llmotel.tool.planned).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from openai import OpenAI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmotel
from llmotel.providers.openai import OpenAIInstrumentor

MODEL = os.environ.get("MODEL", "gpt-4o-mini")


# -- the tools (plain functions; the agent decides which to run) -----------------------------------------------------
def search_flights(**_: Any) -> dict[str, Any]:
    return {"flights": [{"id": "AF22", "price": 420}, {"id": "DL45", "price": 380}]}


def compare_prices(**_: Any) -> dict[str, Any]:
    return {"cheapest": "DL45"}


def book_flight(**_: Any) -> dict[str, Any]:
    return {"status": "sold_out"}


def search_trains(**_: Any) -> dict[str, Any]:
    return {"trains": [{"id": "TGV9", "price": 90}]}


def book_train(**_: Any) -> dict[str, Any]:
    return {"status": "booked", "ref": "TGV9-7"}


def send_email(**_: Any) -> dict[str, Any]:
    return {"sent": True}


TOOLS: dict[str, Callable[..., dict[str, Any]]] = {
    f.__name__: f for f in (search_flights, compare_prices, book_flight, search_trains, book_train, send_email)
}
TOOL_SPECS: list[Any] = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
    for name in TOOLS
]


def script(*tools: str) -> dict[str, str]:
    """Simulator stand-in for the model's choice of tool calls (a real endpoint ignores this header)."""
    return {"x-sim-tool-calls": ",".join(tools)} if tools else {}


def ask(client: OpenAI, messages: list[Any], headers: dict[str, str]) -> Any:
    return client.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOL_SPECS, extra_headers=headers
    ).choices[0].message


def make_plan(run: llmotel.AgentRun, client: OpenAI, goal: str, headers: dict[str, str]) -> list[str]:
    """One planner call inside the plan span; the tools it asks for become the announced plan."""
    with run.planning():
        prompt = [{"role": "system", "content": "Plan the tool calls."}, {"role": "user", "content": goal}]
        msg = ask(client, prompt, headers)
        plan = [call.function.name for call in msg.tool_calls or []]
        run.plan(plan)
    return plan


def execute(client: OpenAI, goal: str, plan: Sequence[str], turns: Sequence[dict[str, str]]) -> list[Any]:
    """The executor loop: ask, run what the model asked for, feed the results back."""
    messages: list[Any] = [{"role": "user", "content": f"{goal}\nPlan: {', '.join(plan)}"}]
    results = []
    for headers in turns:
        msg = ask(client, messages, headers)
        if not msg.tool_calls:
            break
        messages.append(msg.model_dump(exclude_none=True))
        for call in msg.tool_calls:
            with llmotel.tool(call.function.name, call_id=call.id):
                result = TOOLS[call.function.name](**json.loads(call.function.arguments or "{}"))
            results.append(result)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    return results


@llmotel.agent_run("travel-planner")
def travel_agent(client: OpenAI, goal: str) -> list[Any]:
    run = llmotel.current_run()
    assert run is not None
    plan = make_plan(run, client, goal, script("search_flights", "compare_prices", "book_flight"))
    # The executor skips compare_prices; booking fails (sold out).
    results = execute(client, goal, plan, [script("search_flights"), script("book_flight")])
    if results[-1].get("status") == "sold_out":
        plan = make_plan(run, client, goal + " (flights sold out)", script("search_trains", "book_train"))
        # ... and it e-mails the user although nobody planned it.
        results += execute(client, goal, plan, [script("search_trains", "book_train"), script("send_email"), script()])
    return results


def show(spans: Sequence[ReadableSpan]) -> None:
    depth: dict[int, int] = {}
    # Only the GenAI operations; the phase children of each LLM call are left out to keep the view short.
    ops = [s for s in spans if "gen_ai.operation.name" in (s.attributes or {})]
    for span in sorted(ops, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent else None
        level = depth.get(parent, -1) + 1 if parent is not None else 0
        if span.context is not None:
            depth[span.context.span_id] = level
        keys = [k for k in (span.attributes or {}) if k.startswith(("llmotel.agent", "llmotel.plan", "llmotel.tool",
                                                                      "llmotel.response.tool", "gen_ai.tool.call"))]
        attrs = ", ".join(f"{k}={_fmt((span.attributes or {})[k])}" for k in keys)
        print(f"{'  ' * level}{span.name}  {attrs}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    with ExitStack() as stack:
        if "OPENAI_BASE_URL" in os.environ:
            client = OpenAI()
        else:
            from llmotel_sim import SimServer

            sim = stack.enter_context(SimServer(None, seed=1, speed=50.0))
            client = OpenAI(base_url=sim.base_url + "/v1", api_key="tenant-acme", max_retries=0)
        travel_agent(client, "Get me from Paris to Lyon on Friday.")
    instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    show(spans)
    agent = next(s for s in spans if s.name == "invoke_agent travel-planner")
    a = agent.attributes or {}
    summary = {k.rsplit(".", 1)[1]: _fmt(a[k]) for k in (
        "llmotel.agent.adherence.ordered", "llmotel.agent.steps.skipped", "llmotel.agent.steps.extra",
        "llmotel.agent.replans")}
    print("\n" + " ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
