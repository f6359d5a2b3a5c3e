"""``import llmotel.auto``: export telemetry the standard way and instrument every installed client.

1. For each signal (traces, metrics) whose provider the application has not set yet, set the OpenTelemetry
   SDK's own, built by the SDK's configuration code (``opentelemetry.sdk._configuration``, what
   ``opentelemetry-instrument`` runs) from the standard variables: exporters by entry-point name
   (``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` / ``OTEL_LOGS_EXPORTER``: otlp, console, none, ...),
   sampler, id generator, resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), and each exporter's own
   endpoint, headers, timeout and compression variables. Two differences from ``opentelemetry-instrument``, both
   for the new user: ``otlp`` is the default traces and metrics exporter, and the default OTLP protocol is
   ``http/protobuf`` (gRPC is an extra, ``llmotel[grpc]``). ``OTEL_EXPORTER_OTLP[_<SIGNAL>]_PROTOCOL`` picks
   ``grpc`` or ``http/json`` when their exporter is installed; when not, one warning names the package and
   ``http/protobuf`` is used. ``OTEL_SDK_DISABLED=true`` sets nothing.
2. Instrument each supported client library (openai, anthropic) when the application imports it; one it never
   imports is never imported.
3. Export failures are logged once (then at most every 5 minutes), and exit waits at most ``EXIT_WAIT_S`` for the
   last export, not at all once an export has failed: nothing listening costs one line and no exit delay.

Importing twice does nothing more. Never raises: a failure is logged and the app runs uninstrumented.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import logging
import os
import sys
import threading
import time
from importlib.metadata import entry_points
from typing import Any

import wrapt
from opentelemetry import metrics, trace

from llmotel.providers import INSTRUMENTORS

_log = logging.getLogger("llmotel")
instrumentors: list[Any] = []

EXIT_WAIT_S = 1.0  # the most the last export may add to the app's exit
QUIET_S = 300.0  # after an export error is logged, the next ones are not for this long
# OTLP protocol -> the exporter entry-point name that speaks it, and the package that registers it.
_OTLP = {
    "http/protobuf": ("otlp_proto_http", "opentelemetry-exporter-otlp-proto-http"),
    "grpc": ("otlp_proto_grpc", "'llmotel[grpc]' (opentelemetry-exporter-otlp-proto-grpc)"),
    "http/json": ("otlp_json_http", "'llmotel[json]' (opentelemetry-exporter-otlp-json-http)"),
}
_GROUPS = {"traces": "opentelemetry_traces_exporter", "metrics": "opentelemetry_metrics_exporter",
           "logs": "opentelemetry_logs_exporter"}
_warned: set[str] = set()


def _warn_once(message: str, *args: object) -> None:
    text = message % args
    if text not in _warned:
        _warned.add(text)
        _log.warning("%s", text)


def _otlp_name(signal: str) -> str:
    """The entry point that speaks the configured OTLP protocol, or http/protobuf's with one warning."""
    var = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
    key = var if os.environ.get(var) else "OTEL_EXPORTER_OTLP_PROTOCOL"
    protocol = (os.environ.get(key) or "http/protobuf").strip().lower()
    if protocol not in _OTLP:
        _warn_once("llmotel.auto: %s=%r is not an OTLP protocol; use http/protobuf (default), grpc or http/json. "
                   "Exporting over http/protobuf instead", key, protocol)
        return _OTLP["http/protobuf"][0]
    name, package = _OTLP[protocol]
    if protocol != "http/protobuf" and not any(True for _ in entry_points(group=_GROUPS[signal], name=name)):
        _warn_once("llmotel.auto: %s=%s needs an exporter that is not installed: pip install %s. Exporting over "
                   "http/protobuf instead", key, protocol, package)
        return _OTLP["http/protobuf"][0]
    return name


def _exporters(signal: str, default: str) -> dict[str, type]:
    """The exporter classes OTEL_<SIGNAL>_EXPORTER names (comma list; ``none`` = none); unknown names are
    reported once and skipped."""
    names = [n.strip() for n in os.environ.get(f"OTEL_{signal.upper()}_EXPORTER", default).split(",") if n.strip()]
    found: dict[str, type] = {}
    for name in names:
        if name.lower() == "none":
            return {}
        if name == "otlp":
            name = _otlp_name(signal)
        eps = list(entry_points(group=_GROUPS[signal], name=name))
        try:
            found[name] = eps[0].load()
        except Exception as exc:  # not installed (IndexError) or broken: that exporter only is left out
            reason = "no installed package provides it" if not eps else f"it failed to load ({exc!r})"
            _warn_once("llmotel.auto: OTEL_%s_EXPORTER names %r but %s (entry point group %s); install its "
                       "exporter or remove it", signal.upper(), name, reason, _GROUPS[signal])
    return found


class _ExportErrorGate(logging.Filter):
    """On the exporters' loggers: lets one error through, then none for ``QUIET_S``; notes when one happened."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_at = float("-inf")  # time.monotonic() of the last error seen
        self._quiet_until = 0.0
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = self.failed_at = time.monotonic()
        if now < self._quiet_until:
            self._dropped += 1
            return False
        note = f" ({self._dropped} more since)" if self._dropped else ""
        record.msg = (f"{record.getMessage()}{note} [llmotel.auto: further OTLP export errors are not logged for "
                      f"{QUIET_S / 60:g} min]")
        record.args = None
        self._quiet_until, self._dropped = now + QUIET_S, 0
        return True


_gate = _ExportErrorGate()


def _quiet(exporter_classes: list[type]) -> None:
    """Gate the loggers of these exporters' modules (and their base classes', where the retry loop logs)."""
    for cls in exporter_classes:
        for base in cls.__mro__:
            if base.__module__.startswith("opentelemetry.exporter."):
                logger = logging.getLogger(base.__module__)
                if _gate not in logger.filters:
                    logger.addFilter(_gate)


def _shutdown_at_exit(providers: list[Any]) -> None:
    """Shut ``providers`` down at exit (their last export) for at most EXIT_WAIT_S, and stop waiting once an export
    fails: the exporters' retries and back-off would otherwise hold the exit for ~10 s with nothing listening."""
    if not providers:
        return
    for provider in providers:
        atexit.unregister(provider.shutdown)  # the SDK's own exit hook: replaced by the bounded one below

    def shutdown() -> None:
        threads = [threading.Thread(target=p.shutdown, name="llmotel-exit", daemon=True) for p in providers]
        started = time.monotonic()
        deadline = started + EXIT_WAIT_S
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive() and _gate.failed_at < started and (left := deadline - time.monotonic()) > 0:
                thread.join(min(left, 0.01))
        if _gate.failed_at >= started:
            time.sleep(0.02)  # let the thread that logged the failure finish writing its line

    atexit.register(shutdown)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=lambda: _flush_in_forked_workers(shutdown))


_fork_hook_set = False


class _ForkHook:
    """The (weak-referenceable) owner of the after-fork hook in multiprocessing's registry."""


_fork_hook = _ForkHook()


def _flush_in_forked_workers(shutdown: Any) -> None:
    """Before a fork: a multiprocessing worker (the 'fork' start method) ends with ``os._exit``, so no atexit hook
    runs and its last spans would stay in the batch queue. multiprocessing runs its own finalizers at that exit:
    register the bounded shutdown there, in the worker (its after-fork hooks run after it clears the parent's
    finalizers). A plain ``os.fork`` child that exits normally (gunicorn's workers) uses the atexit hook."""
    global _fork_hook_set
    util = sys.modules.get("multiprocessing.util")
    if _fork_hook_set or util is None:  # no multiprocessing imported: a plain os.fork
        return
    _fork_hook_set = True
    util.register_after_fork(_fork_hook, lambda _: util.Finalize(None, shutdown, exitpriority=0))


def configure_sdk() -> list[Any]:
    """Set SDK providers for the signals that have none, from the standard variables; return those set."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.sdk.resources import Resource

    sdk: Any = importlib.import_module("opentelemetry.sdk._configuration")  # the SDK's own configuration code
    resource = Resource.create()
    classes: list[type] = []
    providers: list[Any] = []
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        exporters = _exporters("traces", "otlp")
        if exporters:
            sdk._init_tracing(
                exporters=exporters,
                id_generator=sdk._import_id_generator(sdk._get_id_generator()),
                sampler=sdk._import_sampler(sdk._get_sampler()),
                resource=resource,
            )
            classes += exporters.values()
            providers.append(trace.get_tracer_provider())
    if isinstance(metrics.get_meter_provider(), metrics_internal._ProxyMeterProvider):
        readers = _exporters("metrics", "otlp")
        if readers:
            sdk._init_metrics(exporters_or_readers=readers, resource=resource)
            classes += readers.values()
            providers.append(metrics.get_meter_provider())
    if os.environ.get("OTEL_LOGS_EXPORTER"):  # llmotel emits no logs; the app's own, if it asks for them
        from opentelemetry import _logs

        if type(_logs.get_logger_provider()).__name__ == "ProxyLoggerProvider":
            log_exporters = _exporters("logs", "none")
            if log_exporters:
                sdk._init_logging(log_exporters, resource, False)
                classes += log_exporters.values()
                providers.append(_logs.get_logger_provider())
    _quiet(classes)
    _shutdown_at_exit(providers)
    return providers


def _instrument(package: str, module: str, cls_name: str) -> Any:
    try:
        instrumentor = getattr(importlib.import_module(module), cls_name)()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
        return instrumentor
    except Exception:
        _log.warning("llmotel could not instrument %s", package, exc_info=True)
        return None


def instrument_installed() -> list[Any]:
    """Instrument every installed client library llmotel supports, now; return the instrumentors used."""
    done = [_instrument(*entry) for entry in INSTRUMENTORS if importlib.util.find_spec(entry[0]) is not None]
    return [instrumentor for instrumentor in done if instrumentor is not None]


def instrument_on_import() -> None:
    """Instrument each supported client library when the application imports it (at once if it already has), so
    a library the application never imports is never imported (anthropic alone takes ~1 s); each instrumentor
    used is appended to ``instrumentors``."""

    def hook(entry: tuple[str, str, str]) -> Any:
        def on_import(_module: object) -> None:
            instrumentor = _instrument(*entry)
            if instrumentor is not None:
                instrumentors.append(instrumentor)

        return on_import

    for entry in INSTRUMENTORS:
        if importlib.util.find_spec(entry[0]) is not None:
            wrapt.register_post_import_hook(hook(entry), entry[0])


def _main() -> None:
    try:
        configure_sdk()
    except Exception:
        _log.warning("llmotel.auto could not configure OpenTelemetry export", exc_info=True)
    instrument_on_import()


_main()
