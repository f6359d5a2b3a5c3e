"""The tier suite's app: examples/multi_tenant_app.py (several tenants, two agents with plans) through `import
llmotel.auto`, with the OTLP exporter's results counted.

    drive.py --base-url URL --scenario YAML --duration SIM_S --speed X --agent-period S

Prints one JSON line on stdout: the app's own summary plus ``spans_ok`` (spans the agent tier acknowledged: what
the tier must not lose) and ``spans_failed`` (spans the SDK gave up on after its retries: lost before the tier).
The count wraps the exporter class's ``export`` (not a span processor, which would change the SDK's path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

ROOT = Path(__file__).resolve().parents[2]
COUNTS = {"ok": 0, "failed": 0}
_lock = threading.Lock()
_export = OTLPSpanExporter.export


def _counting_export(self: OTLPSpanExporter, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    result = _export(self, spans)
    with _lock:
        COUNTS["ok" if result is SpanExportResult.SUCCESS else "failed"] += len(spans)
    return result


OTLPSpanExporter.export = _counting_export  # type: ignore[method-assign]
sys.path.insert(0, str(ROOT / "examples"))

import multi_tenant_app as app  # noqa: E402  (imports llmotel.auto, which builds the exporter)
from opentelemetry import trace  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--speed", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--agent-period", type=float, default=0.5)
    parser.add_argument("--step-delay", type=float, default=0.0,
                        help="seconds an agent thinks after each LLM call (longer runs: more runs in flight)")
    parser.add_argument("--agent-loops", type=int, default=1, help="agent loops running side by side")
    args = parser.parse_args()
    if args.agent_loops > 1:
        every = app.AgentRunner.every

        async def loops(self: app.AgentRunner, period_s: float, until: float) -> None:
            await asyncio.gather(*(every(self, period_s, until) for _ in range(args.agent_loops)))

        app.AgentRunner.every = loops  # type: ignore[method-assign]
    if args.step_delay > 0:
        ask = app.AgentRunner.ask

        async def slower(self: app.AgentRunner, agent: app.Agent, tools: tuple[str, ...]) -> list[str]:
            out: list[str] = await ask(self, agent, tools)
            await asyncio.sleep(args.step_delay)
            return out

        app.AgentRunner.ask = slower  # type: ignore[method-assign]
    ns = argparse.Namespace(scenario=args.scenario, duration=args.duration, speed=args.speed, seed=None,
                            base_url=args.base_url, agent_period=args.agent_period, quiet=True)
    sent = asyncio.run(app.main_async(ns))
    provider: Any = trace.get_tracer_provider()
    provider.force_flush(60_000)
    print(json.dumps({"llm_calls": sent.llm_calls, "agent_runs": sent.agent_runs, "tenants": sent.tenants,
                      "errors": sent.errors, "spans_ok": COUNTS["ok"], "spans_failed": COUNTS["failed"]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
