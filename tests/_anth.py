"""Helpers for the Anthropic instrumentor tests: telemetry access, a wire recorder, clients, span checks."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx2
from anthropic import Anthropic, AnthropicVertex, AsyncAnthropic, AsyncAnthropicVertex
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _otel import PHASES, assert_tiles, children
from llmotel import _semconv as sc
from llmotel_sim import SimServer

MODEL = "claude-haiku-4-5"
MSGS = [{"role": "user", "content": "Say something short."}]
SDK_SCOPE = "com.anthropic.sdk.python"


# Operations that are one model call (tool and agent spans also carry gen_ai.operation.name).
LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "count_tokens"})
SDK_LLM_SPANS = frozenset({"anthropic.messages.create", "anthropic.messages.count_tokens"})


def is_llm_span(span: ReadableSpan) -> bool:
    attrs = span.attributes or {}
    return attrs.get(sc.GEN_AI_OPERATION_NAME) in LLM_OPERATIONS or span.name in SDK_LLM_SPANS


@dataclass
class Telemetry:
    exporter: InMemorySpanExporter
    tracer_provider: TracerProvider
    # Instrument again with other llmotel options (same providers), for tests comparing two settings in one run.
    reinstrument: Callable[..., None] = field(default=lambda **options: None)

    def spans(self) -> list[ReadableSpan]:
        gc.collect()
        return list(self.exporter.get_finished_spans())

    def llm_spans(self) -> list[ReadableSpan]:
        """Every span that claims to be an LLM call, from any scope (llmotel's or the SDK's own)."""
        return [s for s in self.spans() if is_llm_span(s)]

    def one_call(self) -> tuple[ReadableSpan, list[ReadableSpan]]:
        """The only LLM span of the export and its children in start order (fails on 0 or 2+ LLM spans)."""
        spans = self.spans()
        llm = [s for s in spans if is_llm_span(s)]
        assert len(llm) == 1, [(s.instrumentation_scope.name if s.instrumentation_scope else "", s.name) for s in llm]
        return llm[0], children(spans, llm[0])


@dataclass
class Wire:
    """What went over the loopback socket: request headers and response headers, per HTTP attempt."""

    requests: list[dict[str, str]] = field(default_factory=list)
    responses: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def on_request(self, request: httpx2.Request) -> None:
        self.requests.append({k.lower(): v for k, v in request.headers.items()})
        self.paths.append(request.url.path)

    def on_response(self, response: httpx2.Response) -> None:
        self.responses.append({k.lower(): v for k, v in response.headers.items()})

    async def aon_request(self, request: httpx2.Request) -> None:
        self.on_request(request)

    async def aon_response(self, response: httpx2.Response) -> None:
        self.on_response(response)

    @property
    def last_id(self) -> str:
        return self.responses[-1]["x-sim-request-id"]


def client(sim: SimServer, wire: Wire, native: TracerProvider | None = None, **kw: Any) -> Anthropic:
    """A real Anthropic client on loopback. ``native``: the SDK's own tracing on, into that provider."""
    hooks = {"request": [wire.on_request], "response": [wire.on_response]}
    otel: Any = {"tracer_provider": native} if native is not None else False
    return Anthropic(
        base_url=sim.base_url,
        api_key="tenant-acme",
        http_client=httpx2.Client(event_hooks=hooks),
        open_telemetry=otel,
        **kw,
    )


def aclient(sim: SimServer, wire: Wire, native: TracerProvider | None = None, **kw: Any) -> AsyncAnthropic:
    hooks = {"request": [wire.aon_request], "response": [wire.aon_response]}
    otel: Any = {"tracer_provider": native} if native is not None else False
    return AsyncAnthropic(
        base_url=sim.base_url,
        api_key="tenant-acme",
        http_client=httpx2.AsyncClient(event_hooks=hooks),
        open_telemetry=otel,
        **kw,
    )


def check_chat(
    parent: ReadableSpan,
    kids: list[ReadableSpan],
    truth: dict[str, Any],
    sim: SimServer,
    *,
    stream: bool,
    retries: int = 0,
    provider: str = "anthropic",
) -> dict[str, Any]:
    """The span tree and every token count against the simulator's ground truth. Returns the attributes."""
    assert parent.name == f"chat {MODEL}"
    assert parent.kind.name == "CLIENT"
    assert parent.instrumentation_scope is not None and parent.instrumentation_scope.name == "llmotel"
    assert [k.name for k in kids] == (["retries"] if retries else []) + PHASES
    assert_tiles(parent, kids)
    a = dict(parent.attributes or {})
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert a[sc.GEN_AI_PROVIDER_NAME] == provider
    assert a[sc.GEN_AI_REQUEST_MODEL] == MODEL
    assert a[sc.GEN_AI_REQUEST_STREAM] is stream
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1" and a[sc.SERVER_PORT] == sim.port
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert a[sc.GEN_AI_RESPONSE_ID] == f"msg_{truth['request_id']}"
    assert a[sc.GEN_AI_RESPONSE_MODEL] == truth["resolved_model"]
    # GenAI meaning: input INCLUDES cache reads and writes (the API's input_tokens excludes them).
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == truth["input_tokens"]
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == truth["cached_tokens"]
    assert a[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == truth["cache_write_tokens"]
    assert a[sc.LLMOTEL_USAGE_CACHE_WRITE_5M_INPUT_TOKENS] == truth["cache_write_5m_tokens"]
    assert a[sc.LLMOTEL_USAGE_CACHE_WRITE_1H_INPUT_TOKENS] == truth["cache_write_1h_tokens"]
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == truth["output_tokens"] + truth["reasoning_tokens"]
    assert a[sc.LLMOTEL_USAGE_SOURCE] == "provider"
    assert a[sc.LLMOTEL_SERVER_REGION] == truth["geo"]
    assert a[sc.LLMOTEL_SERVER_REGION_SOURCE] == "usage"
    stop = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}[truth["finish_reason"]]
    assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == (stop,)
    assert a[sc.LLMOTEL_RESPONSE_TRUNCATED] is (stop == "max_tokens")
    assert a.get(sc.HTTP_REQUEST_RESEND_COUNT, 0) == retries
    first_token = kids[-2]
    assert first_token.attributes is not None
    assert first_token.attributes[sc.LLMOTEL_PHASE_FIRST_TOKEN_OBSERVED] is stream
    assert (sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a) is stream
    for k in kids:
        assert k.attributes is not None and k.attributes[sc.LLMOTEL_PHASE_SOURCE] in ("server", "client", "estimated")
    # Privacy by default: no content.
    assert sc.GEN_AI_INPUT_MESSAGES not in a and sc.GEN_AI_OUTPUT_MESSAGES not in a
    return a


def _vertex_to_first_party(request: httpx2.Request) -> httpx2.Request:
    """Map a Vertex AI ``…/publishers/anthropic/models/{model}:rawPredict`` request onto the first-party path the
    simulator speaks: the model goes back into the body, ``anthropic_version`` out. Everything else is unchanged."""
    path = request.url.path
    if "/publishers/anthropic/models/" not in path:
        return request
    model, _, _ = unquote(path.rsplit("/", 1)[1]).partition(":")
    body = json.loads(request.read() or b"{}")
    body.pop("anthropic_version", None)
    if model == "count-tokens":
        target = "/v1/messages/count_tokens"
    else:
        body["model"] = model
        target = "/v1/messages"
    headers = [(k, v) for k, v in request.headers.items() if k.lower() != "content-length"]
    return httpx2.Request(request.method, request.url.copy_with(path=target), headers=headers, content=json.dumps(body))


class VertexFace(httpx2.BaseTransport):
    """Loopback transport that lets the simulator answer the Vertex client (it speaks only first-party paths)."""

    def __init__(self) -> None:
        self._inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._inner.handle_request(_vertex_to_first_party(request))

    def close(self) -> None:
        self._inner.close()


class AsyncVertexFace(httpx2.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        return await self._inner.handle_async_request(_vertex_to_first_party(request))

    async def aclose(self) -> None:
        await self._inner.aclose()


def vertex_client(sim: SimServer, wire: Wire, native: TracerProvider | None = None) -> AnthropicVertex:
    hooks = {"request": [wire.on_request], "response": [wire.on_response]}
    otel: Any = {"tracer_provider": native} if native is not None else False
    return AnthropicVertex(
        region="us-east5",
        project_id="proj",
        access_token="tenant-acme",
        base_url=sim.base_url,
        http_client=httpx2.Client(transport=VertexFace(), event_hooks=hooks),
        open_telemetry=otel,
    )


def async_vertex_client(sim: SimServer, wire: Wire) -> AsyncAnthropicVertex:
    hooks = {"request": [wire.aon_request], "response": [wire.aon_response]}
    return AsyncAnthropicVertex(
        region="us-east5",
        project_id="proj",
        access_token="tenant-acme",
        base_url=sim.base_url,
        http_client=httpx2.AsyncClient(transport=AsyncVertexFace(), event_hooks=hooks),
        open_telemetry=False,
    )
