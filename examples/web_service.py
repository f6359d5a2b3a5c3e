"""A multi-tenant web service (aiohttp) instrumented with llmotel: the tenant comes from the request, per call.

    .venv/bin/python examples/web_service.py --demo        # simulator + service + a few requests as two tenants
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 LLM_BASE_URL=http://127.0.0.1:8000 \
        python examples/web_service.py --port 8080         # serve; POST /chat with header X-Tenant: acme

A middleware puts every request's work inside ``llmotel.tenant(...)`` (from the X-Tenant header here; use your
auth), so each LLM call's span carries llmotel.tenant.id and the collector's fairness SLIs see every tenant.
``import llmotel.auto`` does the rest. (The same middleware is a dependency in FastAPI or a decorator in Flask.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import openai
from aiohttp import ClientSession, web
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmotel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SPANS = InMemorySpanExporter()

if "OTEL_EXPORTER_OTLP_ENDPOINT" not in os.environ:
    # No collector given (the --demo run): keep spans in memory and print a summary at the end.
    _provider = TracerProvider()
    _provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(_provider)
    os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")

import llmotel.auto  # noqa: E402  (after the provider choice above; instruments both clients)


@web.middleware
async def tenant_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    tenant = request.headers.get("X-Tenant")
    if not tenant:
        raise web.HTTPUnauthorized(text="X-Tenant header required")
    with llmotel.tenant(tenant):
        return await handler(request)


async def chat(request: web.Request) -> web.Response:
    """POST {"question": "..."} -> the answer of the configured OpenAI-compatible model."""
    body = await request.json()
    client: openai.AsyncOpenAI = request.app["openai"]
    resp = await client.chat.completions.create(
        model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        messages=[{"role": "user", "content": str(body.get("question", ""))}])
    return web.json_response({"answer": resp.choices[0].message.content})


async def summarize(request: web.Request) -> web.Response:
    """POST {"text": "..."} -> a summary by the configured Anthropic model (streamed from the API)."""
    body = await request.json()
    client: anthropic.AsyncAnthropic = request.app["anthropic"]
    parts: list[str] = []
    stream = await client.messages.create(
        model=os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-6"), max_tokens=256, stream=True,
        messages=[{"role": "user", "content": f"Summarize: {body.get('text', '')}"}])
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            parts.append(event.delta.text)
    return web.json_response({"summary": "".join(parts)})


def make_app(llm_base_url: str, api_key: str) -> web.Application:
    app = web.Application(middlewares=[tenant_middleware])
    app["openai"] = openai.AsyncOpenAI(base_url=llm_base_url + "/v1", api_key=api_key)
    app["anthropic"] = anthropic.AsyncAnthropic(base_url=llm_base_url, api_key=api_key)
    app.router.add_post("/chat", chat)
    app.router.add_post("/summarize", summarize)
    return app


async def demo() -> None:
    """Simulator + this service on loopback, two tenants calling it; prints which tenant each LLM span carries."""
    from llmotel_sim import SimServer

    with SimServer(None, seed=1, speed=20.0) as sim:
        runner = web.AppRunner(make_app(sim.base_url, "sk-service"))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with ClientSession() as http:
            for tenant, path, payload in (("acme", "/chat", {"question": "hi"}),
                                          ("globex", "/summarize", {"text": "a long report"}),
                                          ("acme", "/summarize", {"text": "minutes"})):
                async with http.post(f"http://127.0.0.1:{port}{path}", json=payload,
                                     headers={"X-Tenant": tenant}) as resp:
                    print(f"{tenant:<7} {path:<11} -> HTTP {resp.status}")
        await runner.cleanup()
    for span in SPANS.get_finished_spans():
        a: Any = span.attributes or {}
        if "gen_ai.operation.name" in a:
            print(f"span {span.name:<28} tenant={a.get('llmotel.tenant.id')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", action="store_true", help="run against the built-in simulator and exit")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    if args.demo:
        asyncio.run(demo())
        return
    base_url = os.environ.get("LLM_BASE_URL")
    if not base_url:
        parser.error("set LLM_BASE_URL (an endpoint serving both the OpenAI and Anthropic APIs, e.g. llmotel-sim "
                     "serve) or use --demo")
    web.run_app(make_app(base_url, os.environ.get("LLM_API_KEY", "")), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
