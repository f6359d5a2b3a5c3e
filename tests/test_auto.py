"""`import llmotel.auto` end to end, each in a fresh process: the standard OTEL_* variables choose the exporters
(OTLP/HTTP by default, console, none, http/json), a provider the app set is kept, and with nothing listening the
app prints at most one line about it and exits within a second of the bare app."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
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
    content_types: list[str] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).posts.append((self.path, body))
        type(self).content_types.append(self.headers.get("content-type", ""))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    _Receiver.posts = []
    _Receiver.content_types = []
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


CALL = """
from openai import OpenAI

client = OpenAI(base_url={base!r} + "/v1", api_key="k")
client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}],
                               extra_headers={{"x-sim-output-tokens": "3"}})
"""


def _run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMOTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", script], env={**full, **env}, capture_output=True, text=True, timeout=60
    )


def test_console_exporter_prints_llmotel_spans(sim: SimServer) -> None:
    out = _run("import llmotel.auto\n" + CALL.format(base=sim.base_url),
               OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_SERVICE_NAME="console-test")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == ""
    assert '"name": "chat gpt-4o-mini"' in out.stdout  # printed when the app exits
    for phase in ("queue", "prefill", "first_token", "decode"):
        assert f'"name": "{phase}"' in out.stdout
    assert '"service.name": "console-test"' in out.stdout


def test_sampler_and_resource_variables_are_the_sdks(sim: SimServer) -> None:
    out = _run("import llmotel.auto\n" + CALL.format(base=sim.base_url), OTEL_TRACES_EXPORTER="console",
               OTEL_METRICS_EXPORTER="none", OTEL_TRACES_SAMPLER="always_off",
               OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test")
    assert out.returncode == 0, out.stderr
    assert "chat gpt-4o-mini" not in out.stdout  # always_off: nothing sampled, nothing printed


HAS_JSON_EXPORTER = any(True for _ in entry_points(group="opentelemetry_traces_exporter", name="otlp_json_http"))


@pytest.mark.skipif(not HAS_JSON_EXPORTER, reason="opentelemetry-exporter-otlp-json-http is not installed")
def test_http_json_protocol_sends_json(sim: SimServer, receiver: tuple[str, list[tuple[str, bytes]]]) -> None:
    endpoint, posts = receiver
    out = _run("import llmotel.auto\n" + CALL.format(base=sim.base_url), OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
               OTEL_EXPORTER_OTLP_PROTOCOL="http/json", OTEL_METRICS_EXPORTER="none")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == ""
    traces = [body for path, body in posts if path == "/v1/traces"]
    assert traces and set(_Receiver.content_types) == {"application/json"}
    names = {
        span["name"]
        for body in traces
        for rs in json.loads(body)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    }
    assert {"chat gpt-4o-mini", "queue", "prefill", "first_token", "decode"} <= names


HIDE_JSON_EXPORTER = """
import importlib.metadata as md
_real = md.entry_points
md.entry_points = lambda **kw: [] if kw.get("name") == "otlp_json_http" else _real(**kw)
"""


def test_http_json_without_its_exporter_warns_once_and_uses_protobuf(
    sim: SimServer, receiver: tuple[str, list[tuple[str, bytes]]]
) -> None:
    endpoint, posts = receiver
    out = _run(HIDE_JSON_EXPORTER + "import llmotel.auto\n" + CALL.format(base=sim.base_url),
               OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/json")
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr  # traces and metrics: one warning
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/json" in lines[0]
    assert "pip install 'llmotel[json]' (opentelemetry-exporter-otlp-json-http)" in lines[0]
    traces = b"".join(body for path, body in posts if path == "/v1/traces")
    assert b"chat gpt-4o-mini" in traces and "application/x-protobuf" in _Receiver.content_types


def test_a_provider_the_app_set_is_kept(sim: SimServer) -> None:
    script = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "mine = TracerProvider(); memory = InMemorySpanExporter()\n"
        "mine.add_span_processor(SimpleSpanProcessor(memory)); trace.set_tracer_provider(mine)\n"
        "import llmotel.auto\n"
        + CALL.format(base=sim.base_url)
        + "assert trace.get_tracer_provider() is mine\n"
        "print(sorted(s.name for s in memory.get_finished_spans()))\n"
    )
    out = _run(script, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    assert out.returncode == 0, out.stderr
    assert "'chat gpt-4o-mini'" in out.stdout and '"name"' not in out.stdout  # not the console exporter


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exit_delay(script: str, **env: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Seconds from the script's last line to its process having exited: the interpreter's shutdown (atexit
    flushes, the exporter's retries), without its imports, which a loaded CI machine slows down by seconds.
    CLOCK_MONOTONIC is one clock for every process on the machine."""
    out = _run(script + "\nimport sys, time\nsys.stdout.write(repr(time.monotonic()))\n", **env)
    done = time.monotonic()
    return done - float(out.stdout.strip().splitlines()[-1]), out


def test_nothing_listening_costs_one_line_and_no_exit_delay(sim: SimServer) -> None:
    app = CALL.format(base=sim.base_url)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    bare = min(_exit_delay(app)[0] for _ in range(3))
    runs = [_exit_delay("import llmotel.auto\n" + app, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint) for _ in range(3)]
    instrumented = min(t for t, _ in runs)
    for _, out in runs:
        assert out.returncode == 0, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) <= 1, out.stderr
    # The fault this guards against is the exporter retrying a refused endpoint at exit (seconds of backoff); the
    # shutdown itself (flushing one span to a closed port) takes tens of milliseconds.
    assert instrumented - bare < 1.0, (bare, instrumented)
