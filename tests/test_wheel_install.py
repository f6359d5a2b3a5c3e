"""What a new user installs: a fresh venv with only the built wheel and openai (from the package index; pip's cache
is used) pulls no grpcio, and `import llmotel.auto` exports to a loopback OTLP/HTTP receiver; with the `json` extra,
OTEL_EXPORTER_OTLP_PROTOCOL=http/json sends JSON there. About a minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from llmotel_sim import SimServer

ROOT = Path(__file__).resolve().parents[1]

APP = """
import llmotel.auto
from openai import OpenAI

client = OpenAI(base_url={base!r} + "/v1", api_key="k")
client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}],
                               extra_headers={{"x-sim-output-tokens": "3"}})
"""


class _Receiver(BaseHTTPRequestHandler):
    paths: list[str] = []  # noqa: RUF012 - one server per test
    bodies: list[bytes] = []  # noqa: RUF012
    types: list[str] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).paths.append(self.path)
        type(self).bodies.append(body)
        type(self).types.append(self.headers.get("content-type", ""))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.paths, _Receiver.bodies, _Receiver.types = [], [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _check(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, **kwargs)
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def test_fresh_venv_with_the_wheel_and_openai(tmp_path: Path, sim: SimServer, receiver: str) -> None:
    dist = tmp_path / "dist"
    _check([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)])
    (wheel,) = dist.glob("llmotel-*.whl")
    venv = tmp_path / "venv"
    _check([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _check([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel), "openai"])
    installed = _check([str(python), "-m", "pip", "list", "--format=freeze"]).stdout.lower()
    assert "grpcio" not in installed
    assert "opentelemetry-exporter-otlp-proto-http" in installed and "genai-prices" in installed

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMOTEL_", "PYTHON", "VIRTUAL_ENV"))}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver
    out = _check([str(python), "-c", APP.format(base=sim.base_url)], env=env, cwd=tmp_path)
    assert out.stderr.strip() == ""
    assert "/v1/traces" in _Receiver.paths and "/v1/metrics" in _Receiver.paths
    traces = b"".join(b for p, b in zip(_Receiver.paths, _Receiver.bodies, strict=True) if p == "/v1/traces")
    assert b"chat gpt-4o-mini" in traces and b"decode" in traces

    # The `json` extra: the OpenTelemetry project's OTLP/JSON exporter, then http/json is JSON on the wire.
    _check([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{wheel}[json]"])
    _Receiver.paths, _Receiver.bodies, _Receiver.types = [], [], []
    env.update(OTEL_EXPORTER_OTLP_PROTOCOL="http/json", OTEL_METRICS_EXPORTER="none")
    out = _check([str(python), "-c", APP.format(base=sim.base_url)], env=env, cwd=tmp_path)
    assert out.stderr.strip() == ""
    assert _Receiver.paths and set(_Receiver.paths) == {"/v1/traces"} and set(_Receiver.types) == {"application/json"}
    names = {
        span["name"]
        for body in _Receiver.bodies
        for resource_spans in json.loads(body)["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    }
    assert {"chat gpt-4o-mini", "queue", "prefill", "first_token", "decode"} <= names
