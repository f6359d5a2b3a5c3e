"""Hand already-finished child spans straight to the OpenTelemetry SDK's span processor.

A call's phase children are known only once the call has ended, with explicit start and end times and
attribute values that are str/bool/int/float by construction. ``Tracer.start_span`` would redo, for each of
them, work whose outcome is already fixed: the sampler (under the SDK's default ParentBased sampler a child
of a sampled parent is sampled), context look-ups, attribute cleaning and limits, span-processor
``on_start`` for a span that is already over, and the lock dance of ``end``. That is about three quarters of
llmotel's span cost per call (bench/RESULTS.md). This module builds the ``ReadableSpan`` the SDK would
have built and gives it to the processor's ``on_end`` — the export path of BatchSpanProcessor and
SimpleSpanProcessor — directly.

Deliberate differences from the tracer path (docs/sdk.md, "Phase spans"):

- the sampler is not asked about children: they follow their parent's sampled flag, as ParentBased does;
- span processors see them in ``on_end`` only (a processor that copies baggage in ``on_start`` does not
  see them; the parent span goes through the full tracer path);
- the SDK's internal span metrics (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``) do not count them.

``LLMOTEL_PHASE_SPANS=tracer`` restores the tracer path. Anything this module does not recognise — a
tracer that is not the OpenTelemetry SDK's, a parent that is not a sampled SDK span — gets ``None`` from
``emitter`` and the caller uses the tracer.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.util.types import AttributeValue

# emit(name, attributes, start_ns, end_ns): the attribute dict is owned by the span afterwards.
Emit = Callable[[str, dict[str, AttributeValue], int, int], None]


def sdk_tracer(tracer: trace.Tracer) -> SdkTracer | None:
    """The SDK tracer behind ``tracer`` (also through the API's proxy once a provider is set), else None."""
    if isinstance(tracer, SdkTracer):
        return tracer
    real = getattr(tracer, "_real_tracer", None)  # trace.ProxyTracer, resolved on its first span
    return real if isinstance(real, SdkTracer) else None


def emitter(tracer: trace.Tracer, parent: trace.Span) -> Emit | None:
    """A function that emits finished INTERNAL children of ``parent``; None when the direct path does not apply."""
    sdk = sdk_tracer(tracer)
    if sdk is None or not isinstance(parent, SdkSpan) or not parent.is_recording():
        return None
    parent_ctx = parent.get_span_context()
    if not parent_ctx.trace_flags.sampled:
        return None  # record-only parents: only the sampler knows what their children should be
    trace_id, flags, state = parent_ctx.trace_id, parent_ctx.trace_flags, parent_ctx.trace_state
    new_span_id = sdk.id_generator.generate_span_id
    on_end = sdk.span_processor.on_end
    resource, scope, info = parent.resource, parent.instrumentation_scope, sdk.instrumentation_info

    def emit(name: str, attributes: dict[str, AttributeValue], start_ns: int, end_ns: int) -> None:
        on_end(
            ReadableSpan(
                name=name,
                context=SpanContext(trace_id, new_span_id(), is_remote=False, trace_flags=flags, trace_state=state),
                parent=parent_ctx,
                resource=resource,
                attributes=attributes,
                kind=SpanKind.INTERNAL,
                instrumentation_info=info,
                instrumentation_scope=scope,
                start_time=start_ns,
                end_time=end_ns,
            )
        )

    return emit
