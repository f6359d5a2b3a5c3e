"""A multi-tenant LLM app instrumented with one import: `import llmotel.auto`.

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
        python examples/multi_tenant_app.py --base-url http://127.0.0.1:8000 --scenario examples/e2e/demo_scenario.yaml

What it does (all through the real, unmodified `openai` and `anthropic` async clients):
* every tenant of the scenario's `load:` section sends its traffic (OpenAI and Anthropic, streaming), each call
  inside `llmotel.tenant(name)`, with a progress bar on stderr;
* meanwhile two agents run with an announced plan and tools: `support-triage` (Anthropic) does what it planned;
  `travel-planner` (OpenAI) skips a step and does one nobody planned, so its plan adherence is below 1.

`import llmotel.auto` instruments both clients and, as no tracer provider is set, exports OTLP to the endpoint in
OTEL_* (here the otelcol-llmotel sidecar). At the end it flushes and prints one JSON line on stdout saying what it sent,
so a caller (examples/demo.py, tests/e2e) can check the SLIs against it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

import llmotel
import llmotel.auto  # all the instrumentation this app needs: both clients, OTLP export from OTEL_*
from llmotel_sim.config import load_scenario
from llmotel_sim.loadgen import LoadGenerator, LoadSpec


@dataclass(frozen=True)
class Agent:
    name: str
    provider: str  # openai | anthropic
    tenant: str
    plan: tuple[str, ...]
    executed: tuple[str, ...]  # what the model will actually ask for, one tool per turn (scripted in the simulator)


AGENTS = (
    Agent("support-triage", "anthropic", "globex", ("lookup_account", "check_invoice", "draft_reply"),
          ("lookup_account", "check_invoice", "draft_reply")),
    # Skips compare_prices, then e-mails the user although nobody planned it.
    Agent("travel-planner", "openai", "acme", ("search_flights", "compare_prices", "book_flight"),
          ("search_flights", "book_flight", "send_email")),
)


@dataclass
class Sent:
    llm_calls: int = 0
    agent_runs: dict[str, int] = field(default_factory=dict)
    tenants: dict[str, int] = field(default_factory=dict)
    errors: int = 0


def run_tool(name: str) -> dict[str, Any]:
    """Stand-in tools: what they return does not matter to the telemetry, only that they ran."""
    return {"tool": name, "ok": True}


class AgentRunner:
    """Plan-and-execute loops over the real async clients; the simulator plays the model via x-sim-tool-calls."""

    def __init__(self, base_url: str, sent: Sent) -> None:
        import anthropic
        import openai

        self.sent = sent
        self.clients: dict[tuple[str, str], Any] = {}
        self._openai, self._anthropic = openai, anthropic
        self.base_url = base_url

    def client(self, provider: str, tenant: str) -> Any:
        key = (provider, tenant)
        if key not in self.clients:
            if provider == "anthropic":
                self.clients[key] = self._anthropic.AsyncAnthropic(
                    base_url=self.base_url, api_key=f"tenant-{tenant}", max_retries=0)
            else:
                self.clients[key] = self._openai.AsyncOpenAI(
                    base_url=self.base_url + "/v1", api_key=f"tenant-{tenant}", max_retries=0)
        return self.clients[key]

    async def ask(self, agent: Agent, tools: tuple[str, ...]) -> list[str]:
        """One LLM call; returns the tool names the model asked for."""
        headers = {"x-sim-tool-calls": ",".join(tools), "x-sim-output-tokens": "12"} if tools else \
            {"x-sim-output-tokens": "12"}
        client = self.client(agent.provider, agent.tenant)
        self.sent.llm_calls += 1
        self.sent.tenants[agent.tenant] = self.sent.tenants.get(agent.tenant, 0) + 1
        specs = [{"name": t, "description": t, "input_schema": {"type": "object", "properties": {}}}
                 for t in agent.plan + agent.executed]
        if agent.provider == "anthropic":
            msg = await client.messages.create(
                model="claude-sonnet-4-6", max_tokens=256, tools=specs, extra_headers=headers,
                messages=[{"role": "user", "content": f"{agent.name}: next step?"}])
            return [b.name for b in msg.content if b.type == "tool_use"]
        resp = await client.chat.completions.create(
            model="gpt-4o-mini", extra_headers=headers,
            tools=[{"type": "function", "function": {"name": s["name"], "parameters": s["input_schema"]}}
                   for s in specs],
            messages=[{"role": "user", "content": f"{agent.name}: next step?"}])
        return [c.function.name for c in resp.choices[0].message.tool_calls or []]

    async def run(self, agent: Agent) -> None:
        with llmotel.tenant(agent.tenant), llmotel.agent_run(agent.name) as run:
            with run.planning():
                planned = await self.ask(agent, agent.plan)
                run.plan(planned)
            for step in agent.executed:
                for name in await self.ask(agent, (step,)):
                    with llmotel.tool(name):
                        run_tool(name)
            await self.ask(agent, ())  # the model answers in text: the run is done
        self.sent.agent_runs[agent.name] = self.sent.agent_runs.get(agent.name, 0) + 1

    async def every(self, period_s: float, until: float) -> None:
        """Both agents, once per period, until the wall-clock deadline."""
        while time.monotonic() < until:
            results = await asyncio.gather(*(self.run(a) for a in AGENTS), return_exceptions=True)
            self.sent.errors += sum(isinstance(r, BaseException) for r in results)
            await asyncio.sleep(period_s)

    async def close(self) -> None:
        for c in self.clients.values():
            await c.close()


async def main_async(args: argparse.Namespace) -> Sent:
    config = load_scenario(args.scenario)
    if args.duration:
        config.load["duration_s"] = args.duration
    spec = LoadSpec.from_config(config)
    speed = args.speed or config.speed
    sent = Sent()
    # Each tenant's traffic, warm-up included, runs inside llmotel.tenant(name) (the load generator does that).
    load = LoadGenerator(args.base_url, spec, args.seed or config.seed, speed,
                         progress=None if args.quiet else sys.stderr)
    agents = AgentRunner(args.base_url, sent)
    deadline = time.monotonic() + spec.duration_s / speed
    results, _ = await asyncio.gather(load.run(), agents.every(args.agent_period, deadline))
    await agents.close()
    for r in results:
        sent.llm_calls += 1
        sent.tenants[r.tenant] = sent.tenants.get(r.tenant, 0) + 1
        sent.errors += 0 if r.ok else 1
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True, help="the LLM endpoint (the simulator: http://127.0.0.1:PORT)")
    parser.add_argument("--scenario", required=True, help="scenario YAML whose load: section says who sends what")
    parser.add_argument("--speed", type=float, default=None, help="simulator speed factor (default: the scenario's)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="simulated seconds of load (default: scenario's)")
    parser.add_argument("--agent-period", type=float, default=2.0, help="wall seconds between agent rounds")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    sent = asyncio.run(main_async(args))
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if flush is not None:
        flush()
    agents = {a.name: {"plan": list(a.plan), "executed": list(a.executed)} for a in AGENTS}
    print(json.dumps({"llm_calls": sent.llm_calls, "agent_runs": sent.agent_runs, "tenants": sent.tenants,
                      "errors": sent.errors, "agents": agents}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
