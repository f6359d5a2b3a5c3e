"""`import llmotel.auto` end to end: a fresh process exports OTLP/HTTP to a loopback receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points

import pytest

from llmotel_sim import SimServer

SCRIPT = """
import llmotel.auto
from opentelemetry import metrics, trace
from openai import OpenAI

client = OpenAI(base_url={base!r} + "/v1", api_key="tenant-acme")
client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}],
                               extra_headers={{"x-sim-output-tokens": "3"}})
trace.get_tracer_provider().force_flush()
metrics.get_meter_provider().force_flush()
print("instrumentors", len(llmotel.auto.instrumentors))
"""


class _Receiver(BaseHTTPRequestHandler):
    posts: list[tuple[str, bytes]] = []  # noqa: RUF012 - shared by the test's single server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).posts.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    _Receiver.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.posts
    finally:
        server.shutdown()


def test_import_auto_exports_spans_and_metrics(sim: SimServer, receiver: tuple[str, list[tuple[str, bytes]]]) -> None:
    endpoint, posts = receiver
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "auto-test",
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(base=sim.base_url)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "instrumentors" in out.stdout and int(out.stdout.split()[-1]) >= 1
    traces = b"".join(body for path, body in posts if path == "/v1/traces")
    assert b"chat gpt-4o-mini" in traces
    for phase in (b"queue", b"prefill", b"first_token", b"decode"):
        assert phase in traces
    assert b"auto-test" in traces
    metrics = b"".join(body for path, body in posts if path == "/v1/metrics")
    assert b"gen_ai.client.operation.duration" in metrics


def test_entry_point_loads_the_instrumentor() -> None:
    from llmotel.providers.openai import OpenAIInstrumentor

    eps = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}
    assert eps["llmotel_openai"].load() is OpenAIInstrumentor
