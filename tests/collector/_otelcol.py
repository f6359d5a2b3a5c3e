"""Run the ocb-built otelcol-llmotel binary on loopback ports and read its Prometheus endpoint.

Used by the collector tests (and usable by the end-to-end tests): ``Otelcol(config, env)`` starts the
binary with the given config file and environment overrides; ``scrape()`` parses the exposition text.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "collector" / "build" / "otelcol-llmotel"
CONFIGS = ROOT / "collector" / "config"

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_exposition(text: str) -> list[Sample]:
    """Parse Prometheus text exposition into samples (comments skipped)."""
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or line.startswith("#"):
            continue
        labels = dict(_LABEL.findall(m.group(2) or ""))
        out.append(Sample(m.group(1), labels, float(m.group(3))))
    return out


class Otelcol:
    """One collector process. ``with Otelcol(...) as col:`` starts it and stops it (SIGTERM, then kill)."""

    def __init__(self, config: Path, env: dict[str, str], prometheus_port: int | None = None) -> None:
        if not BINARY.exists():
            raise FileNotFoundError(f"{BINARY} is missing: run `make collector-build` first")
        self.config = config
        self.env = env
        self.prometheus_port = prometheus_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"otelcol-{os.getpid()}-{id(self)}.log"

    def __enter__(self) -> Otelcol:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(BINARY), "--config", str(self.config)],
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if self.prometheus_port is not None:
            self.wait_until(lambda: self.scrape_text() is not None, 30, "prometheus endpoint up")
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def scrape_text(self) -> str | None:
        """The exposition text, or None while the endpoint is not up."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"otelcol-llmotel exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.prometheus_port}/metrics", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def scrape(self) -> list[Sample]:
        return parse_exposition(self.scrape_text() or "")

    def wait_until(self, ready: object, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if callable(ready) and ready():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; collector log:\n{self.log()[-4000:]}")


def tee_provider(service_name: str, otlp_http_port: int) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A TracerProvider that keeps every span in memory (the expected values) and exports it to the collector."""
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": service_name}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{otlp_http_port}/v1/traces")))
    return tp, memory
