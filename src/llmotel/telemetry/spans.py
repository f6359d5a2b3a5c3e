"""The only module that creates spans and sets attributes. It never knows which provider it is.

One LLM call = one CLIENT span ``{gen_ai.operation.name} {gen_ai.request.model}``, started at call entry
(``start``) and made current by the caller, so trace-context propagation and nested spans work. At call
end (``finish``) its phase children — [retries], queue, prefill, first_token, decode — are emitted with
explicit timestamps computed from one CallCapture: they tile the parent exactly because the parent's
own start/end are taken from the same capture. Everything derived (phases, energy, cost, region, revision, rate
limits, repaired usage) arrives computed in a ``record.CallOutcome``; this module only presents it.

Attribute names come from ``llmotel._semconv``; with OTEL_SEMCONV_STABILITY_OPT_IN containing
gen_ai_latest_experimental (``Settings.latest_experimental``) the renamed GenAI names are emitted instead (both
tables computed once). The settings come with each call (``finish(..., settings)``); nothing here reads a global.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.context import get_current
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from llmotel import __version__
from llmotel import _semconv as sc
from llmotel.config import Settings
from llmotel.record import CallCapture, CallOutcome, EnergyEstimate, LLMRequest, LLMResponse, Phase, Usage
from llmotel.telemetry import finished_spans
from llmotel.telemetry.metrics import Instruments, Series

_log = logging.getLogger(__name__)
# (phase name, source) -> metric attributes, built once (at most 5 x 3 entries).
_PHASE_METRIC_ATTRS: dict[tuple[str, str], Series] = {}
# (operation, provider, request model, response model, server, error type) -> (call attributes, input-token
# attributes, output-token attributes) of the call metrics: built once per distinct key instead of three dicts
# per call, with their SDK keys (``metrics.Series``). Bounded: emptied when full (distinct keys are few in
# practice; a flood only costs a rebuild).
_MetricAttrs = tuple[Series, Series, Series]
_METRIC_ATTRS: dict[tuple[str, str, str, str, str, str], _MetricAttrs] = {}
_METRIC_ATTRS_MAX = 256


class _Names:
    """Attribute names that differ under the latest-experimental opt-in, resolved once."""

    def __init__(self, latest: bool) -> None:
        renames = sc.LATEST_EXPERIMENTAL_RENAMES if latest else {}
        self.cache_write = renames.get(
            sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
        )
        self.system_fingerprint = renames.get(
            sc.GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT, sc.GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT
        )
        self.service_tier = renames.get(sc.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER, sc.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER)


_STABLE_NAMES = _Names(False)
_LATEST_NAMES = _Names(True)


class _State:
    def __init__(self) -> None:
        self.tracer: trace.Tracer = trace.get_tracer("llmotel", __version__)
        self.instruments: Instruments | None = None


_state = _State()


def configure(tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None) -> None:
    """Bind spans and metrics to providers (None = the global ones)."""
    _state.tracer = trace.get_tracer("llmotel", __version__, tracer_provider=tracer_provider)
    _state.instruments = Instruments(meter_provider)


def _instruments() -> Instruments:
    if _state.instruments is None:
        _state.instruments = Instruments()
    return _state.instruments


def start(request: LLMRequest, capture: CallCapture, tenant_id: str, direct: bool = False) -> Span:
    """Start the CLIENT span of a call (not made current here). Attributes known at entry are set now.
    ``direct``: the SDK fast path where it applies (``finished_spans.start_parent``), else the tracer."""
    attrs: dict[str, AttributeValue] = {
        sc.GEN_AI_OPERATION_NAME: request.operation,
        sc.GEN_AI_PROVIDER_NAME: request.provider,
        sc.GEN_AI_REQUEST_MODEL: request.request_model,
        sc.GEN_AI_REQUEST_STREAM: request.stream,
    }
    if request.server_address:
        attrs[sc.SERVER_ADDRESS] = request.server_address
    if request.server_port:
        attrs[sc.SERVER_PORT] = request.server_port
    if request.max_tokens is not None:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
    if request.temperature is not None:
        attrs[sc.GEN_AI_REQUEST_TEMPERATURE] = request.temperature
    if request.prefix_fingerprint:
        attrs[sc.LLMOTEL_PROMPT_PREFIX_FINGERPRINT] = request.prefix_fingerprint
        attrs[sc.LLMOTEL_PROMPT_PREFIX_TOKENS] = request.prefix_tokens
    if tenant_id:
        attrs[sc.LLMOTEL_TENANT_ID] = tenant_id
    if request.input_messages_json:
        attrs[sc.GEN_AI_INPUT_MESSAGES] = request.input_messages_json
    if request.system_instructions_json:
        attrs[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = request.system_instructions_json
    name = f"{request.operation} {request.request_model}" if request.request_model else request.operation
    if direct:
        span = finished_spans.start_parent(_state.tracer, name, SpanKind.CLIENT, attrs, capture.start_wall_ns)
        if span is not None:
            return span
    return _state.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs, start_time=capture.start_wall_ns)


def _usage_attrs(usage: Usage, names: _Names, attrs: dict[str, AttributeValue]) -> None:
    if usage.input_tokens is not None:
        attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
    if usage.output_tokens is not None:
        attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
    if usage.reasoning_tokens is not None:
        attrs[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
    if usage.cache_write_tokens is not None:
        attrs[names.cache_write] = usage.cache_write_tokens
    if usage.cache_write_5m_tokens is not None:
        attrs[sc.LLMOTEL_USAGE_CACHE_WRITE_5M_INPUT_TOKENS] = usage.cache_write_5m_tokens
    if usage.cache_write_1h_tokens is not None:
        attrs[sc.LLMOTEL_USAGE_CACHE_WRITE_1H_INPUT_TOKENS] = usage.cache_write_1h_tokens
    if usage.input_tokens is not None or usage.output_tokens is not None:
        attrs[sc.LLMOTEL_USAGE_SOURCE] = usage.source
    cache_read = usage.cache_read_tokens
    if cache_read is not None:
        attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read
    if usage.input_tokens and cache_read is not None:  # unknown cache reads are not a miss
        ratio = cache_read / usage.input_tokens
        attrs[sc.LLMOTEL_CACHE_HIT_RATIO] = ratio
        attrs[sc.LLMOTEL_CACHE_STATE] = (
            sc.LLMOTEL_CACHE_STATE_HIT
            if ratio >= sc.CACHE_HIT_RATIO_THRESHOLD
            else sc.LLMOTEL_CACHE_STATE_PARTIAL
            if ratio > 0
            else sc.LLMOTEL_CACHE_STATE_MISS
        )


def _response_attrs(
    response: LLMResponse, capture: CallCapture, outcome: CallOutcome, names: _Names, attrs: dict[str, AttributeValue]
) -> None:
    if response.response_id:
        attrs[sc.GEN_AI_RESPONSE_ID] = response.response_id
    if response.response_model:
        attrs[sc.GEN_AI_RESPONSE_MODEL] = response.response_model
    if response.finish_reasons:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(response.finish_reasons)  # as the SDK stores sequences
    if response.system_fingerprint:
        attrs[names.system_fingerprint] = response.system_fingerprint
    if response.service_tier:
        attrs[names.service_tier] = response.service_tier
    if response.tool_names:
        attrs[sc.LLMOTEL_RESPONSE_TOOL_NAMES] = tuple(response.tool_names)
    attrs[sc.LLMOTEL_RESPONSE_TRUNCATED] = response.truncated
    if response.status_code:
        attrs[sc.HTTP_RESPONSE_STATUS_CODE] = response.status_code
    if response.output_messages_json:
        attrs[sc.GEN_AI_OUTPUT_MESSAGES] = response.output_messages_json
    if capture.first_content_ns:
        attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (capture.first_content_ns - capture.start_ns) / 1e9
    if capture.abandoned:
        attrs[sc.LLMOTEL_STREAM_ABANDONED] = True
    attrs.update(outcome.ratelimits)
    if outcome.region:
        attrs[sc.LLMOTEL_SERVER_REGION] = outcome.region
        attrs[sc.LLMOTEL_SERVER_REGION_SOURCE] = outcome.region_source
    if outcome.revision:
        attrs[sc.LLMOTEL_MODEL_REVISION] = outcome.revision
        attrs[sc.LLMOTEL_MODEL_REVISION_CHANGED] = bool(outcome.revision_previous)
        if outcome.revision_previous:
            attrs[sc.LLMOTEL_MODEL_REVISION_PREVIOUS] = outcome.revision_previous


def _wall(capture: CallCapture, t: int) -> int:
    return capture.start_wall_ns + (t - capture.start_ns)


def _phase_spans(
    parent: Span, phase_list: list[Phase], capture: CallCapture, response: LLMResponse, settings: Settings
) -> None:
    emit = finished_spans.emitter(_state.tracer, parent) if settings.phase_spans == "direct" else None
    if emit is None:
        ctx = trace.set_span_in_context(parent)
        tracer = _state.tracer
    # The collector derives phase histograms from these spans; the SDK-side histogram is opt-in (config).
    hist = _instruments().phase if settings.phase_metrics else None
    output_tokens = response.usage.output_tokens
    wall_offset = capture.start_wall_ns - capture.start_ns
    for phase in phase_list:
        attrs: dict[str, AttributeValue] = {
            sc.LLMOTEL_PHASE_NAME: phase.name,
            sc.LLMOTEL_PHASE_SOURCE: phase.source,
            sc.LLMOTEL_PHASE_CONFIDENCE: phase.confidence,
            sc.LLMOTEL_PHASE_MODEL_SAMPLES: phase.samples,
        }
        if phase.low_s is not None and phase.high_s is not None:
            attrs[sc.LLMOTEL_PHASE_INTERVAL_LOW] = phase.low_s
            attrs[sc.LLMOTEL_PHASE_INTERVAL_HIGH] = phase.high_s
        if phase.name == "first_token":
            attrs[sc.LLMOTEL_PHASE_FIRST_TOKEN_OBSERVED] = capture.first_content_ns != 0
        elif phase.name == "decode":
            if output_tokens is not None:
                attrs[sc.LLMOTEL_DECODE_OUTPUT_TOKENS] = output_tokens
                if output_tokens > 1:
                    attrs[sc.LLMOTEL_DECODE_TIME_PER_OUTPUT_TOKEN] = (
                        (phase.end_ns - phase.start_ns) / 1e9 / (output_tokens - 1)
                    )
            if capture.chunk_count:
                attrs[sc.LLMOTEL_DECODE_CHUNK_COUNT] = capture.content_chunk_count
                attrs[sc.LLMOTEL_DECODE_MAX_CHUNK_GAP] = capture.max_gap_ns / 1e9
                attrs[sc.LLMOTEL_DECODE_STALL_COUNT] = capture.stall_count
        start, end = wall_offset + phase.start_ns, wall_offset + phase.end_ns
        if emit is not None:
            emit(phase.name, attrs, start, end)
        else:
            child = tracer.start_span(phase.name, ctx, SpanKind.INTERNAL, attrs, start_time=start)
            child.end(end_time=end)
        if hist is None:
            continue
        key = (phase.name, phase.source)
        metric_attrs = _PHASE_METRIC_ATTRS.get(key)
        if metric_attrs is None:
            metric_attrs = Series({sc.LLMOTEL_PHASE_NAME: phase.name, sc.LLMOTEL_PHASE_SOURCE: phase.source})
            _PHASE_METRIC_ATTRS[key] = metric_attrs
        hist.record((phase.end_ns - phase.start_ns) / 1e9, metric_attrs)


def _energy_attrs(est: EnergyEstimate) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    _energy_into(est, attrs)
    return attrs


def _energy_into(est: EnergyEstimate, attrs: dict[str, Any]) -> None:
    """The estimate's attributes, added to ``attrs`` (in the order ``_energy_attrs`` gives them)."""
    attrs[sc.LLMOTEL_ENERGY_WH] = est.wh
    attrs[sc.LLMOTEL_ENERGY_WH_MIN] = est.wh_min
    attrs[sc.LLMOTEL_ENERGY_WH_MAX] = est.wh_max
    attrs[sc.LLMOTEL_ENERGY_PUE] = est.pue
    attrs[sc.LLMOTEL_ENERGY_METHOD] = est.method
    attrs[sc.LLMOTEL_ENERGY_SOURCE] = est.source
    attrs[sc.LLMOTEL_ENERGY_MODEL_SIZE_SOURCE] = est.model_size_source
    attrs[sc.LLMOTEL_ENERGY_GRID_INTENSITY_REGION] = est.grid_region
    if est.gco2e is not None:
        attrs[sc.LLMOTEL_CARBON_GCO2E] = est.gco2e
    if est.gco2e_min is not None:
        attrs[sc.LLMOTEL_CARBON_GCO2E_MIN] = est.gco2e_min
    if est.gco2e_max is not None:
        attrs[sc.LLMOTEL_CARBON_GCO2E_MAX] = est.gco2e_max
    if est.grid_intensity is not None:
        attrs[sc.LLMOTEL_ENERGY_GRID_INTENSITY] = est.grid_intensity


def finish(
    span: Span,
    request: LLMRequest,
    response: LLMResponse,
    capture: CallCapture,
    outcome: CallOutcome,
    settings: Settings,
    error: BaseException | None = None,
) -> None:
    """Present the call's outcome on its span, emit its phase children, end it at ``capture.end_ns``, record
    metrics.

    Phase children are emitted when a successful response started (HTTP 2xx headers seen), including
    streams that failed mid-way; calls that failed before that get the parent span with error.type only.
    ``settings`` are the calling instrumentor's (naming opt-in, phase span path, phase metrics). Never raises.
    """
    try:
        _finish(span, request, response, capture, outcome, settings, error)
    except Exception:
        _log.debug("llmotel could not finish the span", exc_info=True)
        try:
            span.end(end_time=_wall(capture, max(capture.end_ns, capture.start_ns)))
        except Exception:
            _log.debug("llmotel could not end the span", exc_info=True)


def _finish(
    span: Span,
    request: LLMRequest,
    response: LLMResponse,
    capture: CallCapture,
    outcome: CallOutcome,
    settings: Settings,
    error: BaseException | None,
) -> None:
    attrs: dict[str, AttributeValue] = {}
    if capture.resend_count:
        attrs[sc.HTTP_REQUEST_RESEND_COUNT] = capture.resend_count
    names = _LATEST_NAMES if settings.latest_experimental else _STABLE_NAMES
    _usage_attrs(response.usage, names, attrs)
    _response_attrs(response, capture, outcome, names, attrs)
    timing = outcome.timing
    attrs[sc.LLMOTEL_SERVER_TIMING_FORMAT] = timing.format
    if timing.total_s is not None:
        attrs[sc.LLMOTEL_SERVER_PROCESSING_TIME] = timing.total_s
    if error is not None:
        attrs[sc.ERROR_TYPE] = outcome.error_type
        span.set_status(Status(StatusCode.ERROR, outcome.error_type))
    if outcome.input_tokens_estimated is not None:
        attrs[sc.LLMOTEL_USAGE_INPUT_TOKENS_ESTIMATED] = outcome.input_tokens_estimated
    if outcome.cache_read_tokens_estimated is not None:
        attrs[sc.LLMOTEL_USAGE_CACHE_READ_INPUT_TOKENS_ESTIMATED] = outcome.cache_read_tokens_estimated
    if outcome.energy is not None:
        _energy_into(outcome.energy, attrs)
    if outcome.cost_usd is not None:
        attrs[sc.LLMOTEL_COST_USD] = outcome.cost_usd
        if outcome.cost_input_usd is not None:
            attrs[sc.LLMOTEL_COST_INPUT_USD] = outcome.cost_input_usd
        if outcome.cost_output_usd is not None:
            attrs[sc.LLMOTEL_COST_OUTPUT_USD] = outcome.cost_output_usd
        attrs[sc.LLMOTEL_COST_SOURCE] = outcome.cost_source
    if type(span) is finished_spans.DirectSpan:
        span.set_own_attributes(attrs)
    else:
        span.set_attributes(attrs)
    if outcome.phases:
        _phase_spans(span, outcome.phases, capture, response, settings)
    span.end(end_time=_wall(capture, max(capture.end_ns, capture.start_ns)))
    _record_metrics(request, response, capture, outcome.error_type, error)


def _record_metrics(
    request: LLMRequest, response: LLMResponse, capture: CallCapture, error_type: str, error: BaseException | None
) -> None:
    inst = _instruments()
    key = (
        request.operation,
        request.provider,
        request.request_model,
        response.response_model,
        request.server_address,
        error_type,
    )
    cached = _METRIC_ATTRS.get(key)
    if cached is None:
        cached = _metric_attrs(key)
    attrs, input_attrs, output_attrs = cached
    # Every point of the call is recorded in the same context: its exemplar decision is taken once where the
    # filter decides by the context alone (``Recorder.decision``).
    context = get_current()
    duration = inst.duration
    decision = duration.decision(context)
    duration.record((capture.end_ns - capture.start_ns) / 1e9, attrs, context, decision)
    if error is not None:
        return
    usage = response.usage
    if usage.input_tokens is not None:
        inst.tokens.record(usage.input_tokens, input_attrs, context, decision)
    if usage.output_tokens is not None:
        inst.tokens.record(usage.output_tokens, output_attrs, context, decision)
    if capture.first_content_ns:
        inst.ttfc.record((capture.first_content_ns - capture.start_ns) / 1e9, attrs, context, decision)
        if capture.gaps:  # chunk_metrics="each": one point per chunk after the first, as the convention defines
            record = inst.tpoc.record
            for gap in capture.gaps:
                record(gap / 1e9, attrs, context, decision)
            rest = capture.chunk_count - capture.first_content_chunk - len(capture.gaps)
            if rest > 0:  # past MAX_GAPS: the remaining gaps as one mean, so memory stays bounded
                rest_ns = capture.last_chunk_ns - capture.first_content_ns - sum(capture.gaps)
                record(rest_ns / 1e9 / rest, attrs, context, decision)
        elif capture.chunk_count > 1 and capture.last_chunk_ns > capture.first_content_ns:
            gaps = max(capture.content_chunk_count - 1, 1)
            inst.tpoc.record(
                (capture.last_chunk_ns - capture.first_content_ns) / 1e9 / gaps, attrs, context, decision
            )


def _metric_attrs(key: tuple[str, str, str, str, str, str]) -> _MetricAttrs:
    """Build and cache the call-metric attribute dicts of ``key`` (never mutated after this)."""
    operation, provider, request_model, response_model, server, error_type = key
    attrs: dict[str, AttributeValue] = {
        sc.GEN_AI_OPERATION_NAME: operation,
        sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_REQUEST_MODEL: request_model,
    }
    if response_model:
        attrs[sc.GEN_AI_RESPONSE_MODEL] = response_model
    if server:
        attrs[sc.SERVER_ADDRESS] = server
    if error_type:
        attrs[sc.ERROR_TYPE] = error_type
    built = (
        Series(attrs),
        Series({**attrs, sc.GEN_AI_TOKEN_TYPE: "input"}),
        Series({**attrs, sc.GEN_AI_TOKEN_TYPE: "output"}),
    )
    if len(_METRIC_ATTRS) >= _METRIC_ATTRS_MAX:
        _METRIC_ATTRS.clear()
    _METRIC_ATTRS[key] = built
    return built
