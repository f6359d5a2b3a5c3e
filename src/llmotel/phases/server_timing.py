"""What a server said about its own timing -> ``record.ServerTiming``. Table-driven.

Adding a server is one ``TimingFormat`` entry in ``FORMATS``: where its report lives (response headers,
or an object in the response body / last stream chunk under ``body_key``), and which keys fill which
``ServerTiming`` field with which scale to seconds. The first format with any key present wins.

Formats (as the servers document them):
- TGI: headers ``x-queue-time``, ``x-inference-time`` (prefill + all decoding), ``x-total-time`` (ms).
  Its ``x-time-per-token`` is inference time / generated tokens (prefill included), so it is not read
  as a decode time per token.
- llama.cpp: body/last chunk ``timings`` = {prompt_ms, predicted_ms, predicted_per_token_ms, cache_n};
  ``predicted_ms`` covers every generated token, the first included.
- vLLM: body/last chunk ``metrics`` = {queue_time_ms, prefill_time_ms, decode_time_ms, ...}
  (second-valued ``time_in_queue`` etc. accepted too).
- OpenAI: header ``openai-processing-ms`` bounds the server time (no split).

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
    body_key: str  # "" -> response headers
    # (ServerTiming field, candidate keys (first present wins), scale to seconds or 1 for counts)
    fields: tuple[tuple[str, tuple[str, ...], float], ...]


FORMATS: tuple[TimingFormat, ...] = (
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_TGI,
        "",
        (
            ("queue_s", ("x-queue-time",), _MS),
            ("inference_s", ("x-inference-time",), _MS),
            ("total_s", ("x-total-time",), _MS),
        ),
    ),
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_LLAMA_CPP,
        "timings",
        (
            ("prefill_s", ("prompt_ms",), _MS),
            ("decode_s", ("predicted_ms",), _MS),
            ("time_per_token_s", ("predicted_per_token_ms",), _MS),
            ("cached_tokens", ("cache_n",), 1),
        ),
    ),
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_VLLM,
        "metrics",
        (
            ("queue_s", ("queue_time_ms",), _MS),
            ("queue_s", ("time_in_queue",), _S),
            ("prefill_s", ("prefill_time_ms",), _MS),
            ("prefill_s", ("model_prefill_time",), _S),
            ("decode_s", ("decode_time_ms",), _MS),
            ("decode_s", ("model_decode_time",), _S),
            ("time_per_token_s", ("time_per_output_token_ms", "tpot_ms"), _MS),
            ("inference_s", ("inference_time_ms",), _MS),
            ("total_s", ("e2e_time_ms", "total_time_ms"), _MS),
            ("cached_tokens", ("num_cached_tokens", "cached_tokens"), 1),
        ),
    ),
    TimingFormat(
        sc.LLMOTEL_SERVER_TIMING_FORMAT_OPENAI_PROCESSING_MS,
        "",
        (("total_s", ("openai-processing-ms",), _MS),),
    ),
)

BODY_KEYS: tuple[str, ...] = tuple(dict.fromkeys(f.body_key for f in FORMATS if f.body_key))
"""Body / last-chunk object names a provider module should copy into ``LLMResponse.body_timing``."""

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


def _apply(fmt: TimingFormat, src: Mapping[str, Any]) -> ServerTiming | None:
    timing: ServerTiming | None = None
    for attr, keys, scale in fmt.fields:
        for key in keys:
            value = _num(src.get(key))
            if value is None:
                continue
            if timing is None:
                timing = ServerTiming(format=fmt.name)
            if getattr(timing, attr) is None:
                setattr(timing, attr, int(value) if attr == "cached_tokens" else value * scale)
            break
    return timing


def parse(headers: Mapping[str, str], body_timing: Mapping[str, object]) -> ServerTiming:
    """The first format present in ``headers`` (lower-case names) or ``body_timing``; format "none" else.

    Never raises.
    """
    if not body_timing and HEADER_NAMES.isdisjoint(headers):
        return ServerTiming()  # the hosted-API case, decided without walking the table
    try:
        for fmt in FORMATS:
            if fmt.body_key:
                src = body_timing.get(fmt.body_key)
                if not isinstance(src, Mapping):
                    continue
            else:
                src = headers
            timing = _apply(fmt, src)
            if timing is not None:
                return timing
    except Exception:  # a malformed report never breaks the call
        pass
    return ServerTiming()


HEADER_NAMES: frozenset[str] = frozenset(
    key for f in FORMATS if not f.body_key for _, keys, _ in f.fields for key in keys
)
"""Response headers the timing parsers read (the provider keeps only these and the other readers' names)."""
