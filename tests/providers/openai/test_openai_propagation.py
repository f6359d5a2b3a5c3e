"""W3C trace-context propagation (``propagate_trace_context``) through the real openai client.

The request reaches the simulator in every case; a transport in front of it rewrites the URL, so the client
believes it talks to the host under test (a hosted API or a self-hosted server) and llmotel decides from that
host exactly as it would in production. Each test checks the header the server received.
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from openai import OpenAI

from _oai import Telemetry
from llmotel.config import ConfigError, resolve
from llmotel.instrument.wrapping import is_self_hosted, propagates
from llmotel_sim import SimServer

MODEL = "gpt-4o-mini"
MSGS = [{"role": "user", "content": "hi"}]


class _ToSim(httpx2.HTTPTransport):
    """Sends every request to the simulator, whatever host the client addressed; remembers the headers sent."""

    def __init__(self, sim: SimServer) -> None:
        super().__init__()
        self.sim = httpx2.URL(sim.base_url)
        self.seen: list[httpx2.Headers] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(request.headers)
        request.url = self.sim.copy_with(path="/v1/chat/completions")  # whatever path the API's base URL has
        return super().handle_request(request)


def _call(sim: SimServer, base_url: str) -> tuple[httpx2.Headers, Any]:
    transport = _ToSim(sim)
    client = OpenAI(base_url=base_url, api_key="k", http_client=openai.DefaultHttpxClient(transport=transport))
    client.chat.completions.create(model=MODEL, messages=MSGS, extra_headers={"x-sim-output-tokens": "2"})  # type: ignore[arg-type]
    return transport.seen[-1], client


SELF_HOSTED = ["http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "http://10.1.2.3:8000/v1",
               "http://vllm:8000/v1", "http://gpu-box.local/v1", "https://llm.corp.example.com/v1",
               "http://[::1]:8000/v1"]
HOSTED = ["https://api.openai.com/v1", "https://myres.openai.azure.com/openai", "https://api.groq.com/openai/v1",
          "https://openrouter.ai/api/v1"]


@pytest.mark.parametrize("base_url", SELF_HOSTED)
def test_default_propagates_to_self_hosted(sim: SimServer, telemetry: Telemetry, base_url: str) -> None:
    headers, _ = _call(sim, base_url)
    (span, _), = telemetry.calls()
    ctx = span.context
    # the call span is the server span's parent (flags: sampled, and the SDK's random-trace-id bit)
    assert headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


@pytest.mark.parametrize("base_url", HOSTED)
def test_default_keeps_context_from_hosted_apis(sim: SimServer, telemetry: Telemetry, base_url: str) -> None:
    headers, _ = _call(sim, base_url)
    assert len(telemetry.calls()) == 1  # the call is recorded all the same
    assert "traceparent" not in headers and "baggage" not in headers


@pytest.mark.parametrize(("mode", "base_url", "expected"), [
    ("always", "https://api.openai.com/v1", True), ("always", "http://127.0.0.1:8000/v1", True),
    ("never", "http://127.0.0.1:8000/v1", False), ("never", "https://api.openai.com/v1", False),
    (True, "https://api.openai.com/v1", True), (False, "http://127.0.0.1:8000/v1", False),
])
def test_modes(sim: SimServer, telemetry: Telemetry, mode: object, base_url: str, expected: bool) -> None:
    telemetry.reinstrument(propagate_trace_context=mode)
    headers, _ = _call(sim, base_url)
    assert ("traceparent" in headers) is expected


def test_caller_headers_are_kept_and_not_mutated(sim: SimServer, telemetry: Telemetry) -> None:
    transport = _ToSim(sim)
    http = openai.DefaultHttpxClient(transport=transport)
    client = OpenAI(base_url="http://127.0.0.1:1/v1", api_key="k", http_client=http)
    mine = {"x-sim-output-tokens": "2", "x-app": "a"}
    client.chat.completions.create(model=MODEL, messages=MSGS, extra_headers=mine)  # type: ignore[arg-type]
    assert mine == {"x-sim-output-tokens": "2", "x-app": "a"}
    assert transport.seen[-1]["x-app"] == "a" and "traceparent" in transport.seen[-1]


def test_setting_parses_and_names_the_fix() -> None:
    assert resolve({}, {}).propagate_trace_context == "self_hosted"
    env = {"LLMOTEL_PROPAGATE_TRACE_CONTEXT": "true"}
    assert resolve({}, env).propagate_trace_context == "always"
    assert resolve({}, {"LLMOTEL_PROPAGATE_TRACE_CONTEXT": "Self-Hosted"}).propagate_trace_context == "self_hosted"
    assert resolve({}, {"LLMOTEL_PROPAGATE_TRACE_CONTEXT": "off"}).propagate_trace_context == "never"
    with pytest.raises(ConfigError, match=r"LLMOTEL_PROPAGATE_TRACE_CONTEXT='sometimes'.*self_hosted"):
        resolve({}, {"LLMOTEL_PROPAGATE_TRACE_CONTEXT": "sometimes"})


def test_host_classification() -> None:
    assert not is_self_hosted("") and not propagates("self_hosted", None)
    assert is_self_hosted("192.168.0.4") and is_self_hosted("fe80::1") and is_self_hosted("vllm.internal")
    assert not is_self_hosted("8.8.8.8")  # a public address is not assumed to be yours
    assert not is_self_hosted("API.OpenAI.com.") and not is_self_hosted("bedrock-runtime.us-east-1.amazonaws.com")
