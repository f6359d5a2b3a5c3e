"""What one LLM call looked like, as plain data: the contract between the modules.

Data flows one way:

    providers/<x>.py         (patch point; reads requests, responses, chunks)  -> LLMRequest / LLMResponse
    instrument/capture.py    (timestamps of one call)                           -> CallCapture
    phases/server_timing.py  (what the server said about its own timing)        -> ServerTiming
    phases/model.py          (the phase model)                                  -> list[Phase]
    energy/estimator.py      (energy/carbon)                                    -> EnergyEstimate
    instrument/outcome.py    (all of the above, once per call)                  -> CallOutcome
    telemetry/spans.py       (the only place that creates spans; presents the CallOutcome)

Nothing here imports OpenTelemetry or a provider SDK. All times are ``time.perf_counter_ns()``
values (monotonic) except ``CallCapture.start_wall_ns``, which anchors them to wall-clock time
so spans can be emitted with explicit timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PhaseName = Literal["retries", "queue", "prefill", "first_token", "decode"]
PhaseSource = Literal["server", "client", "estimated"]


@dataclass(slots=True)
class LLMRequest:
    """The request, as the provider module read it from the caller's arguments (never mutated)."""

    provider: str  # gen_ai.provider.name: openai, anthropic, azure.ai.openai, vllm, ...
    operation: str  # gen_ai.operation.name: chat, text_completion, embeddings, ...
    request_model: str
    server_address: str = ""
    server_port: int = 0
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    # Keyed hash of system prompt + tool definitions (never the text) and its approximate token length.
    prefix_fingerprint: str = ""
    prefix_tokens: int = 0
    # Region learned before the call (base URL data-residency prefix or configuration) and how.
    region: str = ""
    region_source: str = ""
    user: str = ""  # the request's user / safety_identifier; used as tenant only if configured
    # Only filled when content capture is on: GenAI-schema JSON (llmotel.content), size-capped.
    input_messages_json: str = ""
    system_instructions_json: str = ""  # instructions given apart from the messages (Anthropic system, ...)
    # False for calls that generate nothing (Anthropic count_tokens): the span gets no phase children.
    emit_phases: bool = True
    # Characters of text in the prompt (messages' text parts), 0 when not counted. The phase model turns it into
    # an input-token estimate, in its own attribute, for calls whose usage never comes (streams without
    # stream_options.include_usage); never into gen_ai.usage.*.
    prompt_chars: int = 0
    # Where usage will not come (a stream without include_usage): (hash, characters so far) at the end of each
    # message, in memory only (never exported), so the phase model can tell a prefix this process sent before
    # (phases/prefix_book.py). Empty otherwise.
    prompt_prefixes: tuple[tuple[int, int], ...] = ()


@dataclass(slots=True)
class Usage:
    """Token counts with the GenAI convention's meaning: input_tokens INCLUDES cache reads and writes."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_5m_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int | None = None
    source: Literal["provider", "estimated"] = "provider"


@dataclass(slots=True)
class LLMResponse:
    """What the provider module read from the response body, stream events and headers."""

    response_id: str = ""
    response_model: str = ""
    finish_reasons: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    system_fingerprint: str = ""
    service_tier: str = ""
    region: str = ""  # region the response revealed (usage.inference_geo, x-ms-region, cf-ray suffix)
    region_source: str = ""
    tool_names: list[str] = field(default_factory=list)  # tools the model asked to call
    truncated: bool = False
    status_code: int = 0
    # Response headers, lower-cased names. Read for rate limits, server timing and region only;
    # never exported as such (request headers are never read at all).
    headers: dict[str, str] = field(default_factory=dict)
    # Server timing found in the body (llama.cpp "timings", vLLM "metrics"), raw.
    body_timing: dict[str, object] = field(default_factory=dict)
    output_messages_json: str = ""  # only filled when content capture is on


@dataclass(slots=True)
class CallCapture:
    """Timestamps of one call, in perf_counter_ns. 0 means "not observed"."""

    start_wall_ns: int = 0  # time.time_ns() at call start; anchors the monotonic values below
    start_ns: int = 0  # call entered
    attempt_start_ns: int = 0  # the attempt that answered was sent (== start_ns without retries)
    headers_ns: int = 0  # response headers received (stream object returned)
    first_content_ns: int = 0  # first chunk carrying content / tool-call / thinking delta
    last_chunk_ns: int = 0
    end_ns: int = 0  # body read / stream ended / error raised
    chunk_count: int = 0
    content_chunk_count: int = 0
    max_gap_ns: int = 0
    stall_count: int = 0
    resend_count: int = 0
    abandoned: bool = False
    # Gaps after the first content chunk, kept only with chunk_metrics="each" (None otherwise: no per-chunk work).
    gaps: list[int] | None = None
    first_content_chunk: int = 0  # 1-based index of the first content chunk among all chunks
    # The app's own calls to the same server and model in flight when this one was sent (phases/passes.py notes
    # them, phases/own_queue.py reads their ends); let go once the call is split.
    ahead: list[CallCapture] | None = None


@dataclass(slots=True)
class ServerTiming:
    """What a server said about its own timing, in seconds; None where it said nothing.

    Each field's definition per server is in ``phases/server_timing.py`` (with the server's source file).
    """

    format: str = "none"  # tgi | llama_cpp | vllm | sglang | groq | cerebras | openai_processing_ms | none
    queue_s: float | None = None  # waiting before the model first worked on the request
    prefill_s: float | None = None  # model start -> first token (the prompt pass, first token included)
    decode_s: float | None = None  # first token -> last token
    time_per_token_s: float | None = None  # decode time per decode step (vLLM mean_itl_ms, llama.cpp)
    # The server's own end-to-end time for the request, queue included: an upper bound of server time
    # (openai-processing-ms, TGI x-total-time, SGLang e2e_latency, Cerebras total_time).
    total_s: float | None = None
    inference_s: float | None = None  # prefill + all decoding, when only the sum is reported (TGI, SGLang)
    # Measured time the model worked on this request (prefill + decode, queue excluded): what energy uses.
    # vLLM ttft + generation, llama.cpp prompt_ms + predicted_ms, TGI x-inference-time, SGLang inference_time,
    # Groq total_time, Cerebras prompt_time + completion_time. None where no server reports it.
    busy_s: float | None = None
    cached_tokens: int | None = None
    revision: str = ""  # model-weights revision the server reported (SGLang weight_version); "" if none


@dataclass(slots=True)
class Phase:
    name: PhaseName
    start_ns: int  # perf_counter_ns
    end_ns: int
    source: PhaseSource
    confidence: float = 1.0
    # Calls of this key the phase model had learned from when it split this one (llmotel.phase.model.samples).
    samples: int = 0
    # The 80 % interval of an estimated duration, in seconds (llmotel.phase.interval.low / .high); None when
    # the duration was measured.
    low_s: float | None = None
    high_s: float | None = None


@dataclass(slots=True)
class EnergyEstimate:
    wh: float
    wh_min: float
    wh_max: float
    gco2e: float | None
    gco2e_min: float | None
    gco2e_max: float | None
    grid_intensity: float | None  # gCO2e/kWh
    grid_region: str
    pue: float
    method: str
    model_size_source: str
    source: str = "estimated"


@dataclass(slots=True)
class CallOutcome:
    """Everything derived from a finished call, once (``instrument.outcome.compute``); telemetry only presents it."""

    timing: ServerTiming
    # 2xx headers seen: the call was answered, so it has phases (if it generates) and energy (if it succeeded).
    answered: bool
    error_type: str = ""
    region: str = ""
    region_source: str = ""
    revision: str = ""
    revision_previous: str = ""  # the revision seen before for (request model, region), when it changed
    ratelimits: dict[str, int | float] = field(default_factory=dict)
    energy: EnergyEstimate | None = None
    phases: list[Phase] = field(default_factory=list)
    # The prompt's tokens as the phase model assumed them when usage reported none; never part of ``Usage``.
    input_tokens_estimated: int | None = None
    # Of those, the ones assumed cached: the longest prefix this process sent before (phases/prefix_book.py).
    cache_read_tokens_estimated: int | None = None
    # Price of the call in USD (``llmotel.cost``): None when the model, provider or usage is unknown, never a guess.
    cost_usd: float | None = None
    cost_input_usd: float | None = None
    cost_output_usd: float | None = None
    cost_source: str = ""  # the price library and version
