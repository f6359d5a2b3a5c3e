"""An application instrumented by ANOTHER GenAI instrumentation (not llmotel), for test_otelcol_peer_spans.py.

Runs in a peer venv (bench/.venvs/<peer>, made by bench/peers/setup.sh): the real `openai` client, the peer's
instrumentor and the OpenTelemetry SDK, nothing of llmotel. It makes streamed chat calls to the simulator and
sends the peer's spans to the collector over OTLP/HTTP; it prints the response ids (one JSON line) so the test
can read the simulator's truth of each call.

The peer venvs pin no OTLP exporter package (bench/peers/*.txt are the overhead bench's, kept identical to the
project's client stack), so the spans go out as OTLP/HTTP JSON encoded here from the SDK's ReadableSpan, with
the standard library: every attribute keeps its type (bool, int, double, string, arrays), events keep their
timestamps. The collector's OTLP receiver decodes it like any exporter's.

The tenant: the peers record none, so the app sets it as an OpenTelemetry user would: `user.id` or `enduser.id`
on every span it starts (what a BaggageSpanProcessor does), or, for OpenLLMetry, the request's `user`
parameter, which it records as `gen_ai.user`.

    <peer-venv>/bin/python tests/collector/_peer_app.py --peer genai --base-url http://127.0.0.1:PORT \
        --otlp http://127.0.0.1:PORT/v1/traces --tenant acme --tenant-via user.id --calls 3
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

SYSTEM = ("You are a terse assistant for a logistics company. Answer in at most two sentences, cite the order id "
          "when one is given, never invent tracking numbers, and refuse anything unrelated to shipping. ")


def _value(v: Any) -> dict[str, Any]:
    """An attribute value as OTLP JSON AnyValue (bool before int: bool is an int in Python)."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _attrs(attrs: Any) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in (attrs or {}).items()]


class OtlpJsonExporter(SpanExporter):
    """POSTs spans as one OTLP/HTTP JSON ExportTraceServiceRequest per export."""

    def __init__(self, url: str) -> None:
        self.url = url

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        scopes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        resource = spans[0].resource if spans else Resource.create({})
        for s in spans:
            ctx = s.context
            assert ctx is not None
            out: dict[str, Any] = {
                "traceId": f"{ctx.trace_id:032x}", "spanId": f"{ctx.span_id:016x}", "name": s.name,
                "kind": s.kind.value + 1,  # SDK INTERNAL=0..CONSUMER=4; OTLP SPAN_KIND_INTERNAL=1..
                "startTimeUnixNano": str(s.start_time), "endTimeUnixNano": str(s.end_time),
                "attributes": _attrs(s.attributes),
                "events": [{"name": e.name, "timeUnixNano": str(e.timestamp), "attributes": _attrs(e.attributes)}
                           for e in s.events],
                "status": {"code": {"UNSET": 0, "OK": 1, "ERROR": 2}[s.status.status_code.name]},
            }
            if s.parent is not None:
                out["parentSpanId"] = f"{s.parent.span_id:016x}"
            scope = s.instrumentation_scope
            key = (scope.name, scope.version or "") if scope is not None else ("", "")
            scopes.setdefault(key, []).append(out)
        body = {"resourceSpans": [{
            "resource": {"attributes": _attrs(resource.attributes)},
            "scopeSpans": [{"scope": {"name": n, "version": v}, "spans": ss} for (n, v), ss in scopes.items()],
        }]}
        req = urllib.request.Request(self.url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return SpanExportResult.SUCCESS if r.status == 200 else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


class TenantProcessor(SpanProcessor):
    """Sets the tenant attribute on every span at start, as a user's own processor would."""

    def __init__(self, key: str, tenant: str) -> None:
        self.key, self.tenant = key, tenant

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        span.set_attribute(self.key, self.tenant)


def instrumentor(peer: str) -> Any:
    if peer == "genai":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as GenaiOpenAI

        return GenaiOpenAI()
    if peer == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2

        return OpenAIV2()
    if peer == "traceloop":
        os.environ.setdefault("TRACELOOP_TRACE_CONTENT", "false")  # no prompt or answer text in the spans
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as TraceloopOpenAI

        return TraceloopOpenAI()
    raise SystemExit(f"unknown peer {peer!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", required=True)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--otlp", required=True, help="the collector's OTLP/HTTP traces URL")
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--tenant-via", choices=["user.id", "enduser.id", "user_param"], required=True)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--output-tokens", type=int, default=12)
    ap.add_argument("--system-repeat", type=int, default=0,
                    help="a system prompt of this many sentences, the same on every call (the server's prefix cache)")
    args = ap.parse_args()

    import openai

    tp = TracerProvider(resource=Resource.create({"service.name": f"peer-{args.peer}"}))
    if args.tenant_via != "user_param":
        tp.add_span_processor(TenantProcessor(args.tenant_via, args.tenant))
    tp.add_span_processor(SimpleSpanProcessor(OtlpJsonExporter(args.otlp)))
    trace.set_tracer_provider(tp)
    inst = instrumentor(args.peer)
    inst.instrument(tracer_provider=tp)
    client = openai.OpenAI(base_url=args.base_url + "/v1", api_key=f"tenant-{args.tenant}", max_retries=0)
    extra: dict[str, Any] = {"user": args.tenant} if args.tenant_via == "user_param" else {}
    headers = {"x-sim-output-tokens": str(args.output_tokens)}
    messages: list[dict[str, str]] = [{"role": "user", "content": "Where is order 81723?"}]
    if args.system_repeat:
        messages.insert(0, {"role": "system", "content": SYSTEM * args.system_repeat})
    ids = []
    for _ in range(args.calls):
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True,
            stream_options={"include_usage": True}, extra_headers=headers, **extra,
        )
        rid = ""
        for chunk in stream:
            rid = rid or chunk.id
        ids.append(rid)
    inst.uninstrument()
    tp.shutdown()
    print(json.dumps({"ids": ids}))


if __name__ == "__main__":
    main()
