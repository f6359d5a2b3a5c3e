"""Instructions per part of llmotel's own work on one call, the share of each in the overhead table's llmotel row.

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cgp.%p \\
        .venv/bin/python bench/peers/llmotel_parts.py        # then: .venv/bin/python bench/peers/llmotel_parts.py
                                                               #         --read '/tmp/cgp.*'

Needs bench/.venvs/cgmark.so (built by `bench/overhead.py --callgrind`). The same pipeline as the overhead workers
(SDK TracerProvider + BatchSpanProcessor into a counting exporter, flushed inside each measured window; SDK
MeterProvider with an InMemoryMetricReader), llmotel's default settings. Inputs are the objects the real clients
return for bench/canned_server.py's answers (obtained once through the in-process transport, uninstrumented), so
every reader sees what it sees in the overhead table's calls. Each part runs N times after a warm-up; per part:
instructions / N. Parts that need a fresh span (finishing one) are measured as (start + part) - start.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import glob
import inspect
import itertools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


class _Detached:
    """Stands in a measured stream hook's call once its events are fed: collecting the hook ends nothing."""

    def collected(self) -> None:
        pass


_DETACHED = _Detached()


def _hook(streams: Any, events: Any, call: Any) -> Any:
    """What the checkout puts between a stream and the app: the hook on its iterator, or (before it) the proxy."""
    hooked = getattr(streams, "HookedIterator", None)
    return hooked(events, call) if hooked is not None else streams.StreamProxy(events, call)


def _detach(hooked: Any) -> None:
    if hasattr(hooked, "_self_call"):
        hooked._self_call = _DETACHED
    else:
        hooked.call = _DETACHED


N = int(__import__("os").environ.get("PARTS_N", "200"))


def _objects() -> dict[str, Any]:
    """Real SDK objects for the canned answers, and the request each client sent."""
    import anthropic
    import openai
    from canned_server import canned
    from worker import CLAUDE, SYSTEM, USER, CannedTransport

    transport = CannedTransport()
    oai = openai.OpenAI(
        api_key="k", base_url="http://127.0.0.1:8000/v1", max_retries=0, http_client=transport.http_client(openai)
    )
    ant = anthropic.Anthropic(
        api_key="k",
        base_url="http://127.0.0.1:8000",
        max_retries=0,
        open_telemetry=False,
        http_client=transport.http_client(anthropic),
    )
    o_kwargs = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        "max_tokens": 64,
    }
    a_kwargs = {"model": CLAUDE, "system": SYSTEM, "messages": [{"role": "user", "content": USER}], "max_tokens": 64}
    return {
        "openai": {
            "instance": oai.chat.completions,
            "kwargs": o_kwargs,
            "plain": oai.chat.completions.create(**o_kwargs),
            "events": list(oai.chat.completions.create(**o_kwargs, stream=True)),
            "headers": {s: list(canned("/v1/chat/completions", s)[1].items()) for s in (False, True)},
        },
        "anthropic": {
            "instance": ant.messages,
            "kwargs": a_kwargs,
            "plain": ant.messages.create(**a_kwargs),
            "events": list(ant.messages.create(**a_kwargs, stream=True)),
            "headers": {s: list(canned("/v1/messages", s)[1].items()) for s in (False, True)},
        },
    }


def main() -> None:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from worker import CountingExporter

    from llmotel import config
    from llmotel.energy import estimator
    from llmotel.instrument import call as call_mod
    from llmotel.instrument import capture, outcome, streams
    from llmotel.phases import DEFAULT_MODEL, server_timing
    from llmotel.providers import anthropic as p_anthropic
    from llmotel.providers import openai as p_openai
    from llmotel.signals import ratelimit
    from llmotel.telemetry import spans

    # The outcome's helpers as this checkout has them (their signatures moved while the SDK was re-housed).
    def server_time(timing: Any) -> Any:
        helper = getattr(outcome, "_server_time", None)
        return helper(timing) if helper is not None else timing.total_s

    where_takes_timing = len(inspect.signature(outcome._where).parameters) == 4
    start_takes_direct = len(inspect.signature(spans.start).parameters) == 4  # the parent's fast path exists
    usage_takes_names = len(inspect.signature(spans._usage_attrs).parameters) == 3

    def where(request: Any, response: Any, timing: Any) -> None:
        out = outcome.CallOutcome(timing=timing, answered=True)
        if where_takes_timing:
            outcome._where(request, response, timing, out)
        else:
            outcome._where(request, response, out)

    def start_span(req: Any, cap: Any) -> Any:
        if start_takes_direct:  # as wrapping does
            return spans.start(req, cap, "", settings.phase_spans == "direct")
        return spans.start(req, cap, "")

    def attributes(response: Any, cap: Any, out: Any) -> None:
        """The parent's end attributes as spans._finish builds them (usage, response, energy), without the SDK."""
        attrs: dict[str, Any] = {}
        names = getattr(spans, "_STABLE_NAMES", None)
        if usage_takes_names:
            spans._usage_attrs(response.usage, names, attrs)
            spans._response_attrs(response, cap, out, names, attrs)
        else:
            spans._usage_attrs(response.usage, attrs)
            spans._response_attrs(response, cap, out, attrs)
        if out.energy is not None:
            attrs.update(spans._energy_attrs(out.energy))

    lib = ctypes.CDLL(str(HERE.parent / ".venvs" / "cgmark.so"))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(CountingExporter(), max_queue_size=1 << 20))
    trace.set_tracer_provider(provider)
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    spans.configure(provider, meters)
    settings = config.resolve()
    objects = _objects()
    readers = {
        "openai": (p_openai.read_chat_request, p_openai.read_chat_result, p_openai.read_chat_chunk),
        "anthropic": (p_anthropic.read_create_request, p_anthropic.read_message_result, p_anthropic.read_event),
    }
    cases: dict[str, Callable[[], None]] = {}
    for name, obj in objects.items():
        read_request, read_result, read_event = readers[name]
        for stream in (False, True):
            kwargs = {**obj["kwargs"], **({"stream": True} if stream else {})}
            headers = obj["headers"][stream]
            events = obj["events"]
            cell = f"{name}:{'stream' if stream else 'plain'}"

            def new_call(
                read_request: Any = read_request,
                kwargs: Any = kwargs,
                obj: Any = obj,
                read_result: Any = read_result,
                read_event: Any = read_event,
            ) -> Any:
                cap = capture.begin()
                req = read_request(obj["instance"], (), kwargs, settings)
                return call_mod.Call(
                    req,
                    cap,
                    start_span(req, cap),
                    read_result,
                    read_event,
                    settings,
                )

            def fed(
                stream: bool = stream,
                headers: Any = headers,
                events: Any = events,
                obj: Any = obj,
                new_call: Any = new_call,
            ) -> Any:
                """A call up to its end: request read, span started, headers and body (or events) read."""
                call = new_call()
                call.attempt_sent()
                call.attempt_answered(200, headers)
                if stream:
                    hooked = _hook(streams, iter(events), call)
                    # As the SDK's Stream.__iter__ takes them (``for item in self._iterator``), all but the end.
                    for _ in itertools.islice(iter(hooked), len(events)):
                        pass
                    _detach(hooked)
                else:
                    call.read_result(obj["plain"], call.response, settings)
                return call

            def whole(fed: Any = fed) -> None:
                fed().finish()

            def span_start(read_request: Any = read_request, kwargs: Any = kwargs, obj: Any = obj) -> None:
                cap = capture.begin()
                req = read_request(obj["instance"], (), kwargs, settings)
                start_span(req, cap).end()

            def request_only(read_request: Any = read_request, kwargs: Any = kwargs, obj: Any = obj) -> None:
                capture.begin()
                read_request(obj["instance"], (), kwargs, settings)

            def context(obj: Any = obj) -> None:
                span = trace.INVALID_SPAN
                token = otel_context.attach(otel_context.set_value("k", True, trace.set_span_in_context(span)))
                active = call_mod.ACTIVE.set(None)
                call_mod.ACTIVE.reset(active)
                otel_context.detach(token)

            done = fed()
            done.finish()
            finished_response, finished_cap, request = done.response, done.capture, done.request
            timing = server_timing.parse(finished_response.headers, finished_response.body_timing)
            out = outcome.compute(request, finished_response, finished_cap, None)

            def fed_and_outcome(fed: Any = fed) -> None:
                call = fed()
                capture.end(call.capture)
                outcome.compute(call.request, call.response, call.capture, None)
                call.finished = True  # ended bare: the stream hook's collection must not finish it again
                call.span.end()

            def fed_only(fed: Any = fed) -> None:
                call = fed()
                call.finished = True
                call.span.end()

            def span_bare(q: Any = request, c: Any = finished_cap) -> None:
                start_span(q, c).end()

            def span_children(
                q: Any = request, c: Any = finished_cap, r: Any = finished_response, o: Any = out
            ) -> None:
                span = start_span(q, c)
                spans._phase_spans(span, o.phases, c, r, settings)
                span.end()

            def span_attributes(
                q: Any = request, c: Any = finished_cap, r: Any = finished_response, o: Any = out
            ) -> None:
                """The parent's end attributes built and set, as spans._finish does before its children."""
                span = start_span(q, c)
                attrs: dict[str, Any] = {}
                names = getattr(spans, "_STABLE_NAMES", None)
                spans._usage_attrs(r.usage, names, attrs)
                spans._response_attrs(r, c, o, names, attrs)
                if o.energy is not None:
                    attrs.update(spans._energy_attrs(o.energy))
                setter = getattr(span, "set_own_attributes", span.set_attributes)
                setter(attrs)
                span.end()

            cases |= {
                f"{cell}|whole call, no I/O": whole,
                f"{cell}|up to the end (request, span start, headers, body/events; span ended bare)": fed_only,
                f"{cell}|  + outcome.compute": fed_and_outcome,
                f"{cell}|request read + capture": request_only,
                f"{cell}|request read + span start + bare end": span_start,
                f"{cell}|context attach/detach + ACTIVE": context,
                f"{cell}|span start + bare end (the parent alone)": span_bare,
                f"{cell}|span start + phase children + bare end": span_children,
                f"{cell}|span start + end attributes built and set + bare end": span_attributes,
                f"{cell}|outcome: server timing": lambda r=finished_response: server_timing.parse(
                    r.headers, r.body_timing
                ),
                f"{cell}|outcome: rate limits": lambda r=finished_response: ratelimit.attributes(r.headers),
                f"{cell}|outcome: energy": lambda r=finished_response, q=request, o=out, t=timing: estimator.estimate(
                    r.response_model or q.request_model, o.region, r.usage, server_time(t)
                ),
                f"{cell}|outcome: phases": lambda q=request, r=finished_response, c=finished_cap, t=timing: (
                    DEFAULT_MODEL.split(q, r, c, t)
                ),
                f"{cell}|outcome: region + revision": lambda q=request, r=finished_response, t=timing: where(q, r, t),
                f"{cell}|end: call metrics": lambda q=request, r=finished_response, c=finished_cap: (
                    spans._record_metrics(q, r, c, "", None)
                ),
                f"{cell}|end: parent attributes built (not set)": lambda r=finished_response, c=finished_cap, o=out: (
                    attributes(r, c, o)
                ),
            }
    for fn in cases.values():
        for _ in range(30):
            fn()
    provider.force_flush()
    # As the overhead workers: the import-time heap moves to the permanent generation, and each window starts after
    # a collection, so a full collection of the whole heap never lands in one part's count.
    gc.collect()
    gc.freeze()
    lib.cg_start()
    for label, fn in cases.items():
        for _ in range(20):
            fn()
        provider.force_flush()
        gc.collect()
        lib.cg_zero()
        for _ in range(N):
            fn()
        provider.force_flush()
        lib.cg_dump(f"{label}|{N}".encode())


def read(pattern: str) -> None:
    rows: list[tuple[str, float]] = []
    for path in sorted(glob.glob(pattern)):
        text = Path(path).read_text(errors="replace")
        desc = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
        summary = re.search(r"^summary: (\d+)$", text, re.M)
        if desc and summary:
            label, n = desc.group(1).strip().rsplit("|", 1)
            rows.append((label, int(summary.group(1)) / int(n) / 1e3))
    for label, k in rows:
        print(f"| {label.replace('|', ' | ')} | {k:,.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--read", help="print the per-part table from these callgrind dumps (a glob)")
    args = parser.parse_args()
    if args.read:
        read(args.read)
    else:
        main()
