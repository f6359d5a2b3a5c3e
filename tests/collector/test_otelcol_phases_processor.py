"""The llm_phases processor in the real otelcol-llmotel (collector/config/phases.yaml): the same traces as
test_otelcol_server_spans.py (real llmotel client spans, vLLM- and SGLang-shaped server spans built as there) go
through groupbytrace -> llm_phases to a loopback OTLP/HTTP receiver standing in for the user's trace backend.

Checked: for the calls whose server span arrived, queue and prefill carry the server's durations (scaled down in
proportion only when they exceed the room up to the client's first-token time, the processor's documented rule),
source server, the SDK's duration kept in llmotel.phase.estimated_duration, and the phases still tile the call;
every other span arrives exactly as it was sent.
"""

from __future__ import annotations

import gzip
import itertools
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from _otelcol import CONFIGS, Otelcol, free_port
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from test_otelcol_server_spans import MEASURED, _calls, _server_spans

from llmotel import _semconv as sc
from llmotel_sim import SimServer

Received = dict[bytes, Any]  # span id -> opentelemetry.proto Span


class _Backend(ThreadingHTTPServer):
    """A loopback OTLP/HTTP (protobuf) trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: Received = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Backend

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        req = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.server.spans[span.span_id] = span
        out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[_Backend]:
    srv = _Backend()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _value(v: AnyValue) -> object:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def _attrs(span: Any) -> dict[str, object]:
    return {kv.key: _value(kv.value) for kv in span.attributes}


def _sent_attrs(span: ReadableSpan) -> dict[str, object]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in (span.attributes or {}).items()}


def _received_plain(span: Any) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in _attrs(span).items():
        out[k] = [_value(e) for e in v.values] if hasattr(v, "values") else v
    return out


def test_processor_rewrites_phase_spans(sim: SimServer, backend: _Backend) -> None:
    http, prom = free_port(), free_port()
    env = {
        "LLMOTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
        "LLMOTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
        "LLMOTEL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{prom}",
        "LLMOTEL_TRACES_BACKEND": f"http://127.0.0.1:{backend.server_address[1]}",
        "LLMOTEL_PHASES_WAIT": "2s",
        "LLMOTEL_COLLECTOR_LOG_LEVEL": "warn",
    }
    produced, sent = _calls(sim)
    calls = sorted((s for s in produced if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    keys = dict(zip("ABCD", calls, strict=True))
    server = _server_spans({k: sent[i] for i, k in enumerate("ABC")})
    everything = produced + server
    with Otelcol(CONFIGS / "phases.yaml", env, prometheus_port=prom) as col:
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{http}/v1/traces")
        exporter.export(server[:1])  # A's server span first, then the app's spans, then the rest
        exporter.export(produced)
        exporter.export(server[1:])
        exporter.shutdown()
        col.wait_until(lambda: len(backend.spans) == len(everything), 30, "every span at the backend")

    got = {int.from_bytes(k, "big"): v for k, v in backend.spans.items()}
    changed: set[int] = set()
    for key in "ABC":
        call = keys[key]
        kids = sorted((s for s in produced if s.parent is not None and s.parent.span_id == call.context.span_id),
                      key=lambda s: s.start_time or 0)
        by_name = {str((s.attributes or {})[sc.LLMOTEL_PHASE_NAME]): s for s in kids}
        queue, prefill = by_name["queue"], by_name["prefill"]
        nxt = by_name.get("first_token") or by_name["decode"]
        # The processor's rule, computed here: measured from the queue's start, scaled into the room if needed.
        q, p = MEASURED[key][0] * 1e9, MEASURED[key][1] * 1e9
        room = (nxt.end_time or 0) - (queue.start_time or 0)
        if q + p > room:
            f = room / (q + p)
            q, p = q * f, p * f
        start, qn, pn = queue.start_time or 0, math.floor(q + 0.5), math.floor(p + 0.5)  # Go's math.Round
        expected = {queue: (start, start + qn), prefill: (start + qn, start + qn + pn)}
        for phase, (lo, hi) in expected.items():
            out = got[phase.context.span_id]
            # Go and Python scale the durations in float64 in a different order: a rounding may land 1 ns apart.
            assert abs(out.start_time_unix_nano - lo) <= 1 and abs(out.end_time_unix_nano - hi) <= 1, (out, lo, hi)
            a = _attrs(out)
            assert a[sc.LLMOTEL_PHASE_SOURCE] == "server"
            assert a["llmotel.phase.estimated_duration"] == pytest.approx(
                ((phase.end_time or 0) - (phase.start_time or 0)) / 1e9, abs=1e-9)
            changed.add(phase.context.span_id)
        # The next phase starts exactly where the rewritten prefill ends (tiling), within the 1 ns above of ours.
        prefill_end = got[prefill.context.span_id].end_time_unix_nano
        assert got[nxt.context.span_id].start_time_unix_nano == prefill_end
        assert abs(prefill_end - expected[prefill][1]) <= 1
        assert got[nxt.context.span_id].end_time_unix_nano == nxt.end_time
        changed.add(nxt.context.span_id)
        # Tiling: each phase ends where the next starts, from the call's start to its end.
        tiles = sorted((got[s.context.span_id] for s in kids), key=lambda s: s.start_time_unix_nano)
        assert tiles[0].start_time_unix_nano == call.start_time and tiles[-1].end_time_unix_nano == call.end_time
        for a_, b_ in itertools.pairwise(tiles):
            assert a_.end_time_unix_nano == b_.start_time_unix_nano
    assert len(changed) == 9
    for span in everything:  # every other span unchanged: times and attributes
        sid = span.context.span_id
        if sid in changed:
            continue
        out = got[sid]
        assert (out.start_time_unix_nano, out.end_time_unix_nano) == (span.start_time, span.end_time), span.name
        assert _received_plain(out) == _sent_attrs(span), span.name
