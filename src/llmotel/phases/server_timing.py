"""What a server said about its own timing -> ``record.ServerTiming``. Table-driven.

Adding a server is one ``TimingFormat`` entry in ``FORMATS``: where its report lives (response headers, or
an object in the response body / last stream chunk at ``path``), which keys fill which ``ServerTiming``
field with which scale to seconds, and which fields are the difference of two of the server's own
timestamps. The first format with any key present wins. Every definition below is the server's own, read
from its source at the version named (tests/phases/test_server_timing.py holds one response per server,
shaped as that code builds it):

- vLLM, ``--enable-per-request-metrics`` (vllm-project/vllm ``vllm/entrypoints/generate/base/serving.py``
  ``build_per_request_timing_metrics``, as in v0.27.1): top-level ``metrics`` of the body, of the final
  usage chunk of a stream, of ``response.completed``; milliseconds. ``queue_time_ms`` = scheduled - queued;
  ``time_to_first_token_ms`` = first token - *scheduled* (queue excluded: the prefill pass, which samples
  the first token) -> ``prefill_s``; ``generation_time_ms`` = last - first token -> ``decode_s``;
  ``mean_itl_ms`` = decode / (tokens - 1) -> ``time_per_token_s``. ``tokens_per_second`` is derived from
  the same stamps and not read. busy = prefill + decode (= last token - scheduled).
- SGLang (sgl-project/sglang ``python/sglang/srt/observability/req_time_stats.py`` and
  ``managers/tokenizer_manager.py``, 2026 main): ``meta_info`` of the native ``/generate`` answer (final
  chunk of a stream); seconds. ``queue_time`` = forward entry - wait-queue entry; prefill =
  ``prefill_finished_time`` - ``forward_entry_time`` (scheduler stamps, epoch seconds);
  ``inference_time`` = finished - forward entry (prefill + decode) -> ``inference_s`` and busy;
  ``e2e_latency`` = finished - received -> ``total_s``. The 2025 layout's ``decode_finished_ts`` -
  ``prefill_finished_ts`` (first output -> finish, tokenizer-manager stamps) -> ``decode_s``.
  ``weight_version`` (also ``metadata.weight_version`` on OpenAI-compatible non-streaming answers) ->
  ``revision``. SGLang has no ``first_token_latency`` key in meta_info (only a span attribute).
- Groq (groq/groq-python v1.6.0 ``src/groq/types/completion_usage.py``): ``usage`` (streams:
  ``x_groq.usage`` of the final chunk); seconds. ``queue_time``, ``prompt_time`` -> prefill,
  ``completion_time`` -> decode, ``total_time`` ("completion time and prompt time combined", queue not
  included) -> busy.
- Cerebras (Cerebras/cerebras-cloud-sdk-python 1.67.0 ``types/chat/chat_completion.py``): ``time_info``
  (body; final stream chunk); seconds. ``queue_time``, ``prompt_time`` -> prefill, ``completion_time`` ->
  decode, ``total_time`` (more than the three together: other overhead) -> ``total_s``. busy = prefill +
  decode.
- TGI (huggingface/text-generation-inference v3.3.7 ``router/src/server.rs``): non-streaming responses'
  headers, integer ms. ``x-queue-time`` = batch entry - queued; ``x-inference-time`` = end - batch entry
  (prefill + all decoding) -> ``inference_s`` and busy; ``x-total-time`` = end - handler entry.
  ``x-time-per-token`` is inference / generated tokens (prefill included, truncated to ms), not a decode
  step, so it is not read. Streams carry no timing headers.
- llama.cpp ``llama-server`` (ggml-org/llama.cpp@0c1e570 ``tools/server/server-common.cpp``
  ``server_slot_stats::to_json``): ``timings`` of the body / last stream chunk; ms. ``prompt_ms`` = slot
  start -> first sampled token -> prefill; ``predicted_ms`` = first -> last token -> decode;
  ``predicted_per_token_ms`` = predicted_ms / (n - 1); ``cache_n``. No queue. busy = prefill + decode.
- OpenAI: header ``openai-processing-ms`` ("time taken processing your API request") -> ``total_s`` only.

``parse`` never raises: a malformed value is ignored, not guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmotel import _semconv as sc
from llmotel.record import ServerTiming

_MS = 1e-3
_S = 1.0


@dataclass(frozen=True, slots=True)
class TimingFormat:
    name: str
    path: tuple[str, ...]  # () -> response headers; else the object's keys from the body's top level
    # (ServerTiming field, candidate keys (first present wins), scale to seconds or 1 for counts)
    fields: tuple[tuple[str, tuple[str, ...], float], ...]
    # (ServerTiming field, end key, start key): a duration reported as two of the server's timestamps (s)
    spans: tuple[tuple[str, str, str], ...] = ()
    busy_is_prefill_plus_decode: bool = False  # the server reports both parts, each of them measured


FORMATS: tuple[TimingFormat, ...] = (
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_TGI,
        (),
        (
            ("queue_s", ("x-queue-time",), _MS),
            ("inference_s", ("x-inference-time",), _MS),
            ("busy_s", ("x-inference-time",), _MS),
            ("total_s", ("x-total-time",), _MS),
        ),
    ),
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_LLAMA_CPP,
        ("timings",),
        (
            ("prefill_s", ("prompt_ms",), _MS),
            ("decode_s", ("predicted_ms",), _MS),
            ("time_per_token_s", ("predicted_per_token_ms",), _MS),
            ("cached_tokens", ("cache_n",), 1),
        ),
        busy_is_prefill_plus_decode=True,
    ),
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_VLLM,
        ("metrics",),
        (
            ("queue_s", ("queue_time_ms",), _MS),
            ("prefill_s", ("time_to_first_token_ms",), _MS),  # from scheduling, not arrival
            ("decode_s", ("generation_time_ms",), _MS),
            ("time_per_token_s", ("mean_itl_ms",), _MS),
        ),
        busy_is_prefill_plus_decode=True,
    ),
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_SGLANG,
        ("meta_info",),
        (
            ("queue_s", ("queue_time",), _S),
            ("inference_s", ("inference_time",), _S),
            ("busy_s", ("inference_time",), _S),
            ("total_s", ("e2e_latency",), _S),
        ),
        spans=(
            ("prefill_s", "prefill_finished_time", "forward_entry_time"),
            ("decode_s", "decode_finished_ts", "prefill_finished_ts"),
        ),
    ),
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_GROQ,
        ("usage",),
        (
            ("queue_s", ("queue_time",), _S),
            ("prefill_s", ("prompt_time",), _S),
            ("decode_s", ("completion_time",), _S),
            ("busy_s", ("total_time",), _S),
        ),
    ),
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_GROQ,
        ("x_groq", "usage"),
        (
            ("queue_s", ("queue_time",), _S),
            ("prefill_s", ("prompt_time",), _S),
            ("decode_s", ("completion_time",), _S),
            ("busy_s", ("total_time",), _S),
        ),
    ),
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_CEREBRAS,
        ("time_info",),
        (
            ("queue_s", ("queue_time",), _S),
            ("prefill_s", ("prompt_time",), _S),
            ("decode_s", ("completion_time",), _S),
            ("total_s", ("total_time",), _S),
        ),
        busy_is_prefill_plus_decode=True,
    ),
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_OPENAI_PROCESSING_MS,
        (),
        (("total_s", ("openai-processing-ms",), _MS),),
    ),
)

METADATA_KEY = "metadata"
"""Declared in newer openai types (so not an extra): a provider module copies it by attribute."""

# (object path, key) of the model-weights revision a server reports: SGLang's native meta_info, and the
# ``metadata`` of its OpenAI-compatible non-streaming answers (entrypoints/openai/serving_chat.py).
REVISIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("meta_info",), "weight_version"),
    ((METADATA_KEY,), "weight_version"),
)

USAGE_KEY = "usage"
"""Under this name a provider module puts the *undeclared* keys of the response's usage object (Groq's
timings ride there); ``usage`` itself is a declared field, so it is never among ``BODY_KEYS``."""

BODY_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys(
        p[0] for p in (*(f.path for f in FORMATS), *(r[0] for r in REVISIONS)) if p and p[0] != USAGE_KEY
    )
)
"""Top-level body / last-chunk objects a provider module should copy into ``LLMResponse.body_timing``."""


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
    elif isinstance(value, str):
        try:
            v = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return v if v >= 0 and v == v and v != float("inf") else None


def _find(body: Mapping[str, object], path: tuple[str, ...]) -> Mapping[str, Any] | None:
    obj: object = body
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, Mapping) else None


def _set(timing: ServerTiming | None, name: str, attr: str, value: float) -> ServerTiming:
    if timing is None:
        timing = ServerTiming(format=name)
    if getattr(timing, attr) is None:
        setattr(timing, attr, int(value) if attr == "cached_tokens" else value)
    return timing


def _apply(fmt: TimingFormat, src: Mapping[str, Any]) -> ServerTiming | None:
    timing: ServerTiming | None = None
    for attr, keys, scale in fmt.fields:
        for key in keys:
            value = _num(src.get(key))
            if value is not None:
                timing = _set(timing, fmt.name, attr, value if attr == "cached_tokens" else value * scale)
                break
    for attr, end_key, start_key in fmt.spans:
        end, start = _num(src.get(end_key)), _num(src.get(start_key))
        if end is not None and start is not None and start > 0 and end >= start:
            timing = _set(timing, fmt.name, attr, end - start)
    if (
        timing is not None
        and fmt.busy_is_prefill_plus_decode
        and timing.busy_s is None
        and timing.prefill_s is not None
        and timing.decode_s is not None
    ):
        timing.busy_s = timing.prefill_s + timing.decode_s
    return timing


def _revision(body_timing: Mapping[str, object]) -> str:
    for path, key in REVISIONS:
        src = _find(body_timing, path)
        if src is not None:
            value = src.get(key)
            if isinstance(value, str) and value:
                return value[:256]
    return ""


def parse(headers: Mapping[str, str], body_timing: Mapping[str, object]) -> ServerTiming:
    """The first format present in ``headers`` (lower-case names) or ``body_timing``; format "none" else.

    ``body_timing`` maps the top-level names of ``BODY_KEYS`` (and ``USAGE_KEY``) to the objects found
    under them; a whole parsed JSON body works as well. Never raises.
    """
    if not body_timing:
        # Headers only (most calls): walk just the header formats whose names came, in the table's order.
        present = HEADER_NAMES.intersection(headers)
        if not present:
            return ServerTiming()  # the hosted-API case, decided without walking the table
        try:
            for fmt, names in _HEADER_FORMATS:
                if not names.isdisjoint(present):
                    found = _apply(fmt, headers)
                    if found is not None:
                        return found
        except Exception:  # a malformed report never breaks the call
            pass
        return ServerTiming()
    try:
        timing: ServerTiming | None = None
        for fmt in FORMATS:
            src = _find(body_timing, fmt.path) if fmt.path else headers
            if src is not None:
                timing = _apply(fmt, src)
                if timing is not None:
                    break
        if timing is None:
            timing = ServerTiming()
        if body_timing:
            timing.revision = _revision(body_timing)
        return timing
    except Exception:  # a malformed report never breaks the call
        return ServerTiming()


HEADER_NAMES: frozenset[str] = frozenset(
    key for f in FORMATS if not f.path for _, keys, _ in f.fields for key in keys
)
"""Response headers the timing parsers read (the provider keeps only these and the other readers' names)."""

_HEADER_FORMATS: tuple[tuple[TimingFormat, frozenset[str]], ...] = tuple(
    (f, frozenset(key for _, keys, _ in f.fields for key in keys)) for f in FORMATS if not f.path
)
