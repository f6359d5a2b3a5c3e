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

The parent (CLIENT) span takes a fast path too (``start_parent`` / ``DirectSpan``), where it changes nothing a
processor or exporter sees: the sampler is asked exactly as ``Tracer.start_span`` asks it, and the path applies only
when every span processor is the SDK's batch or simple export processor (they do nothing in ``on_start``) and no
attribute length limit is set. The span is then a light object while the call runs and becomes one ``ReadableSpan``
at its end; anything other than llmotel that touches it turns it into the SDK's own span first.

``LLMOTEL_PHASE_SPANS=tracer`` restores the tracer path for both. Anything this module does not recognise — a
tracer that is not the OpenTelemetry SDK's, a parent that is not a sampled SDK span — gets ``None`` from
``emitter`` and the caller uses the tracer.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace import _Span as SdkSpanImpl
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util.types import AttributeValue

# emit(name, attributes, start_ns, end_ns): the attribute dict is owned by the span afterwards.
Emit = Callable[[str, dict[str, AttributeValue], int, int], None]
Sink = Callable[[ReadableSpan], None]

# ---- building a finished span as the SDK's constructors would, without their call overhead -----------------------
#
# ``ReadableSpan(...)`` and ``SpanContext(...)`` are Python-level constructors taking keywords (about 8 k and 9 k
# instructions each under callgrind), for objects whose every field is known here. The finished spans are built
# field for field instead: the instance dict ``ReadableSpan.__init__`` fills, in its order (checked below against the
# installed SDK: any other set of fields turns the shortcut off, and the constructor is used), and the tuple
# ``SpanContext.__new__`` builds, with its validity computed the same way (``_context``). Spans handed to the SDK's
# BatchSpanProcessor go straight to its queue (``_sink``).

_SPAN_ID_MAX = 2**64 - 1
_new_tuple = tuple.__new__
_new_object = object.__new__
_DEFAULT_STATUS = inspect.signature(ReadableSpan.__init__).parameters["status"].default
_READABLE_FIELDS = (
    "_name", "_context", "_kind", "_instrumentation_info", "_instrumentation_scope", "_parent", "_start_time",
    "_end_time", "_attributes", "_events", "_links", "_resource", "_status",
)  # fmt: skip


def _readable_fields_match() -> bool:
    try:
        probe = ReadableSpan(
            name="", context=None, parent=None, resource=object(), attributes={}, events=(), links=(),  # type: ignore[arg-type]
            kind=SpanKind.INTERNAL, instrumentation_info=None, status=_DEFAULT_STATUS, start_time=0, end_time=0,
            instrumentation_scope=None,
        )  # fmt: skip
        return tuple(vars(probe)) == _READABLE_FIELDS and "__slots__" not in vars(ReadableSpan)
    except Exception:
        return False


_FAST_READABLE = _readable_fields_match()


_SAMPLED_BIT = int(TraceFlags.SAMPLED)


def _context(trace_id: int, span_id: int, flags: TraceFlags, state: Any) -> SpanContext:
    """``SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags, trace_state=state)``, as its ``__new__``
    builds it (a None state is the default one, validity computed the same way)."""
    if state is None:
        state = DEFAULT_TRACE_STATE
    valid = 0 < trace_id <= 2**128 - 1 and 0 < span_id <= _SPAN_ID_MAX
    return _new_tuple(SpanContext, (trace_id, span_id, False, flags, state, valid))


def _sink(sdk: SdkTracer) -> Sink:
    """What the tracer's span processor does with a finished, sampled span: ``on_end`` of each processor; for the
    SDK's BatchSpanProcessor, its own ``on_end`` minus the sampled check (the caller's spans are sampled): the
    queue's ``emit``."""
    multi = sdk.span_processor
    if type(multi) is not SynchronousMultiSpanProcessor:
        return multi.on_end
    processors = multi._span_processors
    cached = _SINKS.get(id(multi))
    if cached is not None and cached[0] is processors:
        return cached[1]
    sink: Sink = multi.on_end
    if len(processors) == 1:
        only = processors[0]
        sink = only.on_end
        queue = getattr(only, "_batch_processor", None)
        if (
            type(only) is BatchSpanProcessor
            and type(only).on_end is _BSP_ON_END
            and callable(getattr(queue, "emit", None))
        ):
            sink = queue.emit  # type: ignore[union-attr]
    _SINKS[id(multi)] = (processors, sink)
    return sink


_BSP_ON_END = BatchSpanProcessor.on_end
_SINKS: dict[int, tuple[tuple[object, ...], Sink]] = {}


def sdk_tracer(tracer: trace.Tracer) -> SdkTracer | None:
    """The SDK tracer behind ``tracer`` (also through the API's proxy once a provider is set), else None."""
    if isinstance(tracer, SdkTracer):
        return tracer
    real = getattr(tracer, "_real_tracer", None)  # trace.ProxyTracer, resolved on its first span
    return real if isinstance(real, SdkTracer) else None


def emitter(tracer: trace.Tracer, parent: trace.Span) -> Emit | None:
    """A function that emits finished INTERNAL children of ``parent``; None when the direct path does not apply."""
    sdk = sdk_tracer(tracer)
    if sdk is None or not (type(parent) is DirectSpan or isinstance(parent, SdkSpan)) or not parent.is_recording():
        return None
    parent_ctx = parent.get_span_context()
    if not parent_ctx.trace_flags & _SAMPLED_BIT:
        return None  # record-only parents: only the sampler knows what their children should be
    trace_id, flags, state = parent_ctx.trace_id, parent_ctx.trace_flags, parent_ctx.trace_state
    new_span_id = sdk.id_generator.generate_span_id
    resource, scope, info = parent.resource, parent.instrumentation_scope, sdk.instrumentation_info
    if _FAST_READABLE:
        sink = _sink(sdk)
        new_object, new_tuple, internal, status = _new_object, _new_tuple, SpanKind.INTERNAL, _DEFAULT_STATUS
        trace_valid = 0 < trace_id <= 2**128 - 1

        def emit_fast(name: str, attributes: dict[str, AttributeValue], start_ns: int, end_ns: int) -> None:
            span_id = new_span_id()
            span = new_object(ReadableSpan)
            # ReadableSpan.__init__'s fields in its order (the same instance dict); the context as SpanContext makes it.
            span._name = name
            span._context = new_tuple(
                SpanContext, (trace_id, span_id, False, flags, state, trace_valid and 0 < span_id <= _SPAN_ID_MAX)
            )
            span._kind = internal
            span._instrumentation_info = info
            span._instrumentation_scope = scope
            span._parent = parent_ctx
            span._start_time = start_ns
            span._end_time = end_ns
            span._attributes = attributes
            span._events = ()
            span._links = ()
            span._resource = resource
            span._status = status
            sink(span)

        return emit_fast
    on_end = sdk.span_processor.on_end

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


# ---- the parent span: decided like the SDK decides, built once at its end ------------------------------------------

_PLAIN_VALUES = frozenset({str, bool, int, float, tuple})
_UNSET = Status(StatusCode.UNSET)


def _all_plain(attributes: Mapping[str, AttributeValue]) -> bool:
    """Whether every value is one the SDK would keep as it is (no None, no list to turn into a tuple)."""
    return _PLAIN_VALUES.issuperset(map(type, attributes.values()))  # the loop in C: half a Python loop's cost


def _inert_processors(sdk: SdkTracer) -> bool:
    """Whether every span processor of ``sdk`` ignores ``on_start`` and ``_on_ending`` (the SDK's batch and simple
    export processors, under the provider's synchronous multi-processor): only then may a span skip them."""
    multi = sdk.span_processor
    if type(multi) is not SynchronousMultiSpanProcessor:
        return False
    processors = multi._span_processors
    cached = _INERT.get(id(multi))
    if cached is not None and cached[0] is processors:
        return cached[1]
    inert = all(type(p) in (BatchSpanProcessor, SimpleSpanProcessor) for p in processors)
    _INERT[id(multi)] = (processors, inert)
    return inert


_INERT: dict[int, tuple[tuple[object, ...], bool]] = {}


def start_parent(
    tracer: trace.Tracer, name: str, kind: SpanKind, attributes: dict[str, AttributeValue], start_time: int
) -> trace.Span | None:
    """Start a span as ``tracer.start_span(name, kind=kind, attributes=attributes, start_time=start_time)`` would,
    in the current context, without building the SDK's span object: None when this does not apply (not the SDK's
    tracer; a processor that acts on ``on_start`` / ``_on_ending``; span attribute values capped in length), and the
    caller uses the tracer.

    Same as the SDK: the tracer's enabled flag, the parent from the current context, trace and span ids from the
    tracer's id generator, the sampler asked once with the same arguments (its attributes and trace state kept; a
    dropped span is a ``NonRecordingSpan``, as the SDK returns). Differences: processors' ``on_start`` is not called
    (only processors known to do nothing there allow this path), and the SDK's internal span metrics do not count it.
    """
    sdk = sdk_tracer(tracer)
    if sdk is None or not _inert_processors(sdk):
        return None
    limits = sdk._span_limits
    if limits.max_span_attribute_length is not None:
        return None
    enabled = getattr(sdk, "_is_enabled", None)
    current = trace.get_current_span().get_span_context()
    if enabled is not None and not enabled():
        return trace.NonRecordingSpan(current)
    parent: SpanContext | None = current
    if current is None or not current.is_valid:
        parent = None
        trace_id = sdk.id_generator.generate_trace_id()
        is_random = getattr(sdk.id_generator, "is_trace_id_random", None)
        random_id = is_random() if is_random is not None else False
    else:
        trace_id = current.trace_id
        random_id = getattr(current.trace_flags, "random_trace_id", False)
    result = sdk.sampler.should_sample(None, trace_id, name, kind, attributes, ())
    flags = TraceFlags.SAMPLED if result.decision.is_sampled() else TraceFlags.DEFAULT  # type: ignore[no-untyped-call]
    random_flag = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
    if random_id and random_flag:
        flags |= random_flag
    context = _context(trace_id, sdk.id_generator.generate_span_id(), TraceFlags(flags), result.trace_state)
    if not result.decision.is_recording():  # type: ignore[no-untyped-call]
        return trace.NonRecordingSpan(context)
    kept = dict(result.attributes or {})  # the SDK's samplers hand back the attributes they were given
    return DirectSpan(sdk, name, context, parent, kind, kept, start_time, plain=_all_plain(kept))


class DirectSpan(trace.Span):
    """A recording span that becomes one ``ReadableSpan`` handed to the processors' ``on_end`` when it ends.

    llmotel's own attribute values are plain (str, bool, int, float, tuples of str) by construction and are kept
    as they are (``set_own_attributes``); whatever else touches the span (another library's ``set_attribute``,
    ``add_event``, ``record_exception``, links, a new name) first turns it into the SDK's own span with the same
    context, attributes and start, so the SDK's cleaning and limits apply from then on.
    """

    def __init__(
        self,
        sdk: SdkTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        start_time: int,
        plain: bool = False,
    ) -> None:
        self._tracer = sdk
        self._plain = plain  # every value so far is one the SDK keeps as it is: no cleaning needed at the end
        self.name = name
        self._context = context
        self.parent = parent
        self.kind = kind
        self._attributes = attributes
        self.start_time = start_time
        self._status = _UNSET
        self._ended = False
        self._sdk: SdkSpan | None = None
        self.resource = sdk.resource
        self.instrumentation_scope = sdk._instrumentation_scope

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        return MappingProxyType(self._sdk.attributes if self._sdk is not None else self._attributes)  # type: ignore[arg-type]

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return not self._ended

    def set_own_attributes(self, attributes: dict[str, AttributeValue]) -> None:
        """llmotel's attributes. Past the tracer's attribute limit, the SDK's limits decide."""
        if self._sdk is not None:
            self._sdk.set_attributes(attributes)
            return
        if self._ended:
            return
        if self._plain and not _all_plain(attributes):
            self._plain = False
        self._attributes.update(attributes)
        limit = self._tracer._span_limits.max_span_attributes
        if limit is not None and len(self._attributes) > limit:
            self._materialise()

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._sdk is not None:
            self._sdk.set_status(status, description)
        elif not self._ended:
            new = status if isinstance(status, Status) else Status(status, description)
            # As the SDK: OK is final, UNSET never overrides.
            if self._status.status_code is not StatusCode.OK and new.status_code is not StatusCode.UNSET:
                self._status = new

    def end(self, end_time: int | None = None) -> None:
        if self._sdk is not None:
            self._sdk.end(end_time)
            return
        if self._ended:
            return
        if not self._plain:
            # A value the SDK would clean (None, a list): its span cleans and ends it.
            self._materialise().end(end_time)
            return
        self._ended = True
        end_ns = end_time if end_time is not None else time.time_ns()
        if _FAST_READABLE and self._context.trace_flags & _SAMPLED_BIT:
            span = _new_object(ReadableSpan)
            span._name = self.name  # the fields in ReadableSpan.__init__'s order, as emitter() builds its children
            span._context = self._context
            span._kind = self.kind
            span._instrumentation_info = self._tracer.instrumentation_info
            span._instrumentation_scope = self.instrumentation_scope
            span._parent = self.parent
            span._start_time = self.start_time
            span._end_time = end_ns
            span._attributes = self._attributes
            span._events = ()
            span._links = ()
            span._resource = self.resource
            span._status = self._status
            _sink(self._tracer)(span)
            return
        self._tracer.span_processor.on_end(
            ReadableSpan(
                name=self.name,
                context=self._context,
                parent=self.parent,
                resource=self.resource,
                attributes=self._attributes,
                kind=self.kind,
                status=self._status,
                start_time=self.start_time,
                end_time=end_ns,
                instrumentation_info=self._tracer.instrumentation_info,
                instrumentation_scope=self.instrumentation_scope,
            )
        )

    def _materialise(self) -> SdkSpan:
        """From now on, the SDK's own span with this context, attributes, status and start (already sampled and
        started: the sampler is not asked again, the inert processors not told again)."""
        if self._sdk is None:
            sdk = self._tracer
            span = SdkSpanImpl(
                name=self.name,
                context=self._context,
                parent=self.parent,
                sampler=sdk.sampler,
                resource=self.resource,
                attributes=self._attributes,
                span_processor=sdk.span_processor,
                kind=self.kind,
                instrumentation_info=sdk.instrumentation_info,
                limits=sdk._span_limits,
                instrumentation_scope=self.instrumentation_scope,
            )
            span._start_time = self.start_time
            if self._status.status_code is not StatusCode.UNSET:
                span.set_status(self._status)
            self._sdk = span
        return self._sdk

    # Anything else: the SDK's span from now on.
    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self._materialise().set_attributes(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._materialise().set_attribute(key, value)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        self._materialise().add_event(name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: Any = None) -> None:
        self._materialise().add_link(context, attributes)

    def update_name(self, name: str) -> None:
        self._materialise().update_name(name)

    def record_exception(
        self, exception: BaseException, attributes: Any = None, timestamp: int | None = None, escaped: bool = False
    ) -> None:
        self._materialise().record_exception(exception, attributes, timestamp, escaped)
