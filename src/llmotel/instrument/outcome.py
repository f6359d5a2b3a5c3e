"""What one call came to, computed once when it ends: usage, server timing, region, revision, rate limits,
phases, energy and cost (``record.CallOutcome``). The telemetry layer only presents it; it computes nothing of its
own.

``compute`` runs each feature room in turn (``phases``, ``energy``, ``cost``, ``signals``) on the plain records of
the call (``record``): data flows one way, from the capture through here to ``telemetry``. Never raises: a room that
fails leaves its part empty and the rest of the outcome stands.
"""

from __future__ import annotations

import logging

from llmotel import cost, phases
from llmotel.energy import estimator
from llmotel.phases import server_timing
from llmotel.record import CallCapture, CallOutcome, LLMRequest, LLMResponse, ServerTiming
from llmotel.signals import ratelimit, region

_log = logging.getLogger(__name__)


def compute(
    request: LLMRequest, response: LLMResponse, capture: CallCapture, error: BaseException | None
) -> CallOutcome:
    """The outcome of a finished call. Never raises."""
    try:
        timing = server_timing.parse(response.headers, response.body_timing)
    except Exception:
        _log.debug("llmotel could not read server timing", exc_info=True)
        timing = ServerTiming()
    out = CallOutcome(
        timing=timing,
        answered=200 <= response.status_code < 300,
        error_type=type(error).__qualname__ if error is not None else "",
    )
    try:
        _repair_usage(request, response, capture, timing)
        out.ratelimits = ratelimit.attributes(response.headers)
        _where(request, response, timing, out)
        if out.answered and error is None:
            out.energy = estimator.estimate(
                response.response_model or request.request_model, out.region, response.usage, _server_time(timing)
            )
            _price(request, response, out)
    except Exception:
        _log.debug("llmotel could not compute the call's outcome", exc_info=True)
    if out.answered and request.emit_phases:
        try:
            out.phases, prompt = phases.DEFAULT_MODEL.split_and_prompt(request, response, capture, timing)
            if prompt is not None:
                out.input_tokens_estimated, out.cache_read_tokens_estimated = prompt
        except Exception:
            _log.debug("llmotel phase model failed", exc_info=True)
    return out


def _repair_usage(request: LLMRequest, response: LLMResponse, capture: CallCapture, timing: ServerTiming) -> None:
    """Fill what the usage left out from what was observed, marking estimates as such."""
    usage = response.usage
    if request.stream and usage.output_tokens is None and capture.content_chunk_count:
        usage.output_tokens = capture.content_chunk_count
        usage.source = "estimated"
    if usage.cache_read_tokens is None and timing.cached_tokens is not None:
        usage.cache_read_tokens = timing.cached_tokens  # llama.cpp cache_n


def _price(request: LLMRequest, response: LLMResponse, out: CallOutcome) -> None:
    """The call's price from the tokens the provider reported (an estimated count is not priced)."""
    if response.usage.source != "provider":
        return
    model = response.response_model or request.request_model
    price = cost.price(request.provider, model, response.usage, response.service_tier)
    if price is not None:
        out.cost_usd, out.cost_input_usd, out.cost_output_usd, out.cost_source = price


def _server_time(timing: ServerTiming) -> float | None:
    """The server's measured work on this call for the energy estimate (prefill + decode as llama.cpp, vLLM,
    SGLang, Groq, Cerebras and TGI report it); else its own end-to-end bound (openai-processing-ms)."""
    return timing.busy_s if timing.busy_s is not None else timing.total_s


def _where(request: LLMRequest, response: LLMResponse, timing: ServerTiming, out: CallOutcome) -> None:
    """Region (what the response said beats what the request implied) and the resolved revision."""
    where, source = response.region, response.region_source
    if not where:
        where, source = region.from_headers(response.headers)
    if not where:
        where, source = request.region, request.region_source
    out.region, out.region_source = where, source
    # SGLang's weight_version names the weights that served the call; its unset value is the word "default".
    served = timing.revision if timing.revision != "default" else ""
    revision = response.system_fingerprint or served or response.response_model
    if revision:
        out.revision = revision
        out.revision_previous = region.REVISIONS.observe(request.request_model, where, revision)


