"""The loopback observability stack of the demo and the end-to-end tests: otelcol-llmotel and a real Prometheus.

Every process listens on 127.0.0.1 only, on a free port, with its state in a temporary directory; ``Stack`` ends
every process it started (SIGTERM, then SIGKILL after a grace period) when its ``with`` block ends, also on
Ctrl-C, SIGTERM or an exception. Nothing here talks to any address outside loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COLLECTOR_BIN = ROOT / "collector" / "build" / "otelcol-llmotel"
SIDECAR_CONFIG = HERE / "collector-sidecar.yaml"
# The shipped recording and alerting rules (one file holds both); the stack's Prometheus evaluates them.
ALERT_RULES = ROOT / "examples" / "prometheus" / "alerts.yaml"
# How long a condition must hold before an alert fires in `make demo` (demo_rules): the demo's load lasts about 30 s.
DEMO_ALERT_HOLD = "2s"


class StackError(RuntimeError):
    """A part of the stack could not start or answer; the message says which and where its log is."""


# Sockets that keep the ports free_port handed out reserved (bound, never listening) while this process runs.
_RESERVED: deque[socket.socket] = deque(maxlen=256)


def free_port() -> int:
    """A free port on 127.0.0.1, kept reserved until this process ends (or 256 later ports are handed out).

    A port from bind(0) lies in the kernel's ephemeral range, where an outgoing connection of any process may take
    it before (or, after a kill, while) our collector binds it ("address already in use"; CI saw it once). A socket
    left bound to it keeps connect() from picking it; both set SO_REUSEADDR (Go's listeners do), so the collector,
    and Prometheus, can still listen on it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    if len(_RESERVED) == _RESERVED.maxlen:
        _RESERVED[0].close()
    _RESERVED.append(s)
    return port


def prometheus_binary() -> str | None:
    """$PROMETHEUS_BIN if set (None unless it is an executable), else `prometheus` on PATH."""
    explicit = os.environ.get("PROMETHEUS_BIN")
    if explicit is not None:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    return shutil.which("prometheus")


def collector_binary() -> Path | None:
    path = Path(os.environ.get("OTELCOL_LLMOTEL_BIN", COLLECTOR_BIN))
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _get(url: str, timeout: float = 2.0) -> bytes:
    # An explicit opener without proxy handlers: loopback requests must never go through an HTTP(S)_PROXY.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``check`` until it is true; StackError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Sample:
    labels: dict[str, str]
    value: float


@dataclass
class Prometheus:
    """A running Prometheus (the Debian package's binary) and a PromQL client for it."""

    url: str
    # Which rules it evaluates, for the report's heading.
    rules_note: str = "examples/prometheus/alerts.yaml, unchanged"

    def query(self, promql: str) -> list[Sample]:
        """Instant query; raises StackError with Prometheus' message on a bad query."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            data = json.loads(_get(url, timeout=10))
        except urllib.error.HTTPError as exc:
            raise StackError(f"PromQL {promql!r}: {exc.read().decode(errors='replace')}") from exc
        if data.get("status") != "success":
            raise StackError(f"PromQL {promql!r}: {data}")
        result = data["data"]["result"]
        if data["data"]["resultType"] == "scalar":
            return [Sample({}, float(result[1]))]
        return [Sample(dict(r["metric"]), float(r["value"][1])) for r in result]

    def rules(self) -> list[dict[str, Any]]:
        """Every alerting rule Prometheus evaluates (``/api/v1/rules?type=alert``): name, ``duration`` (its ``for``,
        in seconds), ``state`` (inactive, pending, firing) and ``alerts``, each with labels, annotations, value,
        state and activeAt, as Prometheus renders them."""
        data = json.loads(_get(f"{self.url}/api/v1/rules?type=alert", timeout=10))
        if data.get("status") != "success":
            raise StackError(f"/api/v1/rules: {data}")
        return [r for g in data["data"]["groups"] for r in g["rules"] if r.get("type") == "alerting"]

    def value(self, promql: str) -> float | None:
        """The single value of a query that yields at most one sample (None when empty)."""
        samples = self.query(promql)
        if len(samples) > 1:
            raise StackError(f"PromQL {promql!r} returned {len(samples)} series, expected at most one")
        return samples[0].value if samples else None


@dataclass
class Stack:
    """Starts processes, remembers them, and ends all of them on exit (idempotent)."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="llmotel-e2e-")))
    keep_workdir: bool = False
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    _old_handlers: dict[int, Any] = field(default_factory=dict)

    def __enter__(self) -> Stack:
        # SIGTERM (e.g. from CI's timeout) and SIGINT (even when inherited as ignored) unwind like Ctrl-C,
        # so the with blocks end every process.
        if _main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old_handlers[sig] = signal.signal(sig, _raise_interrupt)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def close(self) -> None:
        """End every started process, newest first: SIGTERM, then SIGKILL after 5 s. Never raises."""
        while self.procs:
            _, proc = self.procs.pop()
            _end(proc)
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        stdout: TextIO | int | None = None,
        stderr: TextIO | int | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a process in its own session (Ctrl-C reaches only us; we end it in order). Output to its log
        unless ``stdout``/``stderr`` say otherwise."""
        log = self.log_path(name).open("wb")
        proc = subprocess.Popen(
            list(argv),
            env={**os.environ, **(env or {})},
            stdout=stdout if stdout is not None else log,
            stderr=stderr if stderr is not None else log,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def check_alive(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            raise StackError(f"{name} exited with code {proc.returncode}; its log ({self.log_path(name)}):\n"
                             f"{self.tail(name)}")

    # -- the parts --------------------------------------------------------------------------------------------------

    def collector(self, name: str, config: Path, env: Mapping[str, str], ready_url: str | None) -> None:
        """Start otelcol-llmotel with ``config``; wait until ``ready_url`` (its Prometheus exporter) answers."""
        binary = collector_binary()
        if binary is None:
            raise StackError(f"{COLLECTOR_BIN} is missing: build it with `make collector-build`")
        proc = self.spawn(name, [str(binary), "--config", str(config)], env=env)

        def up() -> bool:
            self.check_alive(name, proc)
            if ready_url is None:
                return True
            _get(ready_url)
            return True

        wait_until(up, 30, f"collector {name} ({self.log_path(name)})")

    def demo_prometheus(self, scrape: Sequence[str]) -> Prometheus:
        """``prometheus`` for `make demo`: the shipped rules with every alert's ``for:`` cut to DEMO_ALERT_HOLD
        (``demo_rules``), so an alert can fire within the demo's minute (LLMNoisyNeighbor holds for 5m as shipped)."""
        prom = self.prometheus(scrape, rule_files=(demo_rules(self.workdir),))
        prom.rules_note = f"examples/prometheus/alerts.yaml, every `for:` cut to {DEMO_ALERT_HOLD} for this short run"
        return prom

    def prometheus(
        self,
        scrape: Sequence[str] | Mapping[str, Sequence[str]],
        scrape_interval: str = "1s",
        rule_files: Sequence[Path] = (ALERT_RULES,),
    ) -> Prometheus:
        """Start Prometheus on a free loopback port, scraping every interval either a list of targets (host:port,
        job ``otelcol-llmotel``) or {job: targets}. It also accepts remote write (--web.enable-remote-write-receiver).
        The exporter's own job/instance labels are kept as exported_job/exported_instance.

        It loads ``rule_files`` (default: the shipped recording and alerting rules, examples/prometheus/alerts.yaml,
        unchanged) and evaluates them every ``scrape_interval``, so ALERTS and ``Prometheus.rules()`` show which
        alerts fire during a run. A rule keeps its ``for:``: an alert that must hold for minutes stays pending in a
        one-minute run, and the report says so."""
        binary = prometheus_binary()
        if binary is None:
            raise StackError("prometheus is not installed: apt-get install prometheus (Debian package)")
        jobs = dict(scrape) if isinstance(scrape, Mapping) else {"otelcol-llmotel": list(scrape)}
        port = free_port()
        config = self.workdir / "prometheus.yml"
        lines = ["global:", f"  scrape_interval: {scrape_interval}", f"  evaluation_interval: {scrape_interval}"]
        if rule_files:
            lines += ["rule_files:"] + [f"  - {json.dumps(str(Path(f).resolve()))}" for f in rule_files]
        lines += ["scrape_configs:"]
        for job, targets in jobs.items():
            lines += [f"  - job_name: {job}", "    static_configs:", f"      - targets: {json.dumps(list(targets))}"]
        config.write_text("\n".join(lines) + "\n")
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
            "--storage.tsdb.retention.time=1d",
            # Lookback past the last sample: a finished run's series stay queryable while the report is read.
            "--query.lookback-delta=10m",
        ]
        proc = self.spawn("prometheus", argv)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            self.check_alive("prometheus", proc)
            _get(f"{url}/-/ready")
            return True

        wait_until(ready, 30, f"prometheus ({self.log_path('prometheus')})")
        return Prometheus(url)


def demo_rules(workdir: Path, hold: str = DEMO_ALERT_HOLD) -> Path:
    """A copy of the shipped rules (ALERT_RULES) in ``workdir`` whose alerts fire once their condition held for
    ``hold`` instead of their ``for:`` (minutes: a one-minute demo would only ever show them pending). Expressions,
    thresholds and labels are the shipped ones; the shipped file is never changed (promtool unit-tests it)."""
    import yaml

    rules = yaml.safe_load(ALERT_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule and "for" in rule:
                rule["for"] = hold
    path = workdir / "alerts_demo.yaml"
    path.write_text(f"# Generated by examples/e2e/stack.py (demo_rules) from {ALERT_RULES.name}: for: {hold}.\n"
                    + yaml.safe_dump(rules, sort_keys=False))
    return path


def sidecar_env(
    otlp_http: int, otlp_grpc: int, prom_port: int, flush: str = "2s", window: str = "5m", slots: int = 10,
    speed: float = 1.0,
) -> dict[str, str]:
    """Environment for collector-sidecar.yaml: its loopback ports, flush interval and SLI window. ``speed``: the
    simulator's model seconds per wall second; the bounded slowdown's 50 ms floor is model time, so it is 50 / speed
    ms on the collector's clock (at 6x a victim's 30 ms of wall-clock work is 180 ms of model time)."""
    return {
        "LLMOTEL_SLI_SLOWDOWN_FLOOR": f"{50.0 / max(speed, 1e-3):.3f}ms",
        "LLMOTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{otlp_http}",
        "LLMOTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{otlp_grpc}",
        "LLMOTEL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{prom_port}",
        "LLMOTEL_SLI_FLUSH_INTERVAL": flush,
        "LLMOTEL_SLI_WINDOW": window,
        "LLMOTEL_SLI_WINDOW_SLOTS": str(slots),
        # Series the connector stops emitting (a gauge's former top tenant) leave the scrape after this long.
        "LLMOTEL_PROMETHEUS_EXPIRATION": "15s",
    }


def app_env(otlp_http_endpoint: str, service: str) -> dict[str, str]:
    """Environment of an instrumented app process: OTLP/HTTP to the loopback collector, nothing else."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_http_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": service,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }


def rollout_after(sim: Any, region: str, revision: str, after_requests: int) -> threading.Event:
    """Staged rollout in a running SimServer: once the fleet has seen ``after_requests`` requests, ``region`` serves
    ``revision``. Counted in requests, not seconds, so a slow machine still sees both halves. Set the returned
    event to stop watching."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            if len(sim.fleet.truths) >= after_requests:
                spec = sim.config.region(region)
                if spec is not None:
                    # The simulator reads a region's revision on every request: this is the rollout moment.
                    spec.revision = revision
                    print(f"\n  >> rollout: {region} now serves revision {revision!r}", file=sys.stderr, flush=True)
                return

    threading.Thread(target=watch, name="rollout", daemon=True).start()
    return stop


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        proc.wait(timeout=5)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def python() -> str:
    return sys.executable
