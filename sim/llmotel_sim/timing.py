"""Server timing reports in the shapes real servers build, computed from a request's wall-clock truth.

Each mode applies the server's own definition (its source file and version below) to the simulated
timeline: ``admit`` is when the request was scheduled (its prefill pass starts), ``first_token`` when its
first token came out, ``last_token`` its last. Wall seconds, in the server's unit.

  vllm                  ``metrics`` object (``--enable-per-request-metrics``; vllm/entrypoints/generate/base/
                        serving.py ``build_per_request_timing_metrics``, v0.27.1) in the body, the final usage
                        chunk of a chat stream (only with ``stream_options.include_usage``, as vLLM), the
                        ``response`` of ``response.completed``. ``time_to_first_token_ms`` is measured from
                        scheduling (admit -> first token), not from arrival.
  llama_cpp             ``timings`` (tools/server/server-common.cpp ``server_slot_stats::to_json`` at
                        ggml-org/llama.cpp@0c1e570) in the body / last stream chunk; per-token values divide
                        by the n - 1 decode steps, as that revision does.
  tgi                   x-queue-time / x-inference-time / x-total-time ... headers, integer ms truncated
                        (router/src/server.rs, TGI v3.3.7); streams get only x-compute-type and
                        x-compute-characters, since TGI sends stream headers before it knows any timing.
  sglang                what SGLang's OpenAI-compatible server adds (entrypoints/openai/serving_chat.py):
                        ``metadata: {"weight_version": ...}`` on non-streaming bodies; no timing (SGLang's
                        timing lives in the native /generate ``meta_info`` only).
  groq                  ``usage.queue_time/prompt_time/completion_time/total_time`` (s) in the body; streams:
                        ``x_groq: {id, usage}`` on the final chunk (groq-python v1.6.0 types).
  cerebras              ``time_info`` (s) in the body / final stream chunk (cerebras-cloud-sdk-python 1.67.0).
  openai_processing_ms  ``openai-processing-ms`` header (stream headers then wait for the first token)
  none                  nothing (the hosted-API case)
"""

from __future__ import annotations

import time
from typing import Any

from llmotel_sim.engine import SimRequest


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _intervals(req: SimRequest) -> tuple[float, float, float]:
    """(queue, scheduled -> first token, first -> last token) in wall seconds."""
    w = req.wall
    queue = max(0.0, w.admit - w.arrival)
    to_first = max(0.0, w.first_token - w.admit)
    generation = max(0.0, w.last_token - w.first_token)
    return queue, to_first, generation


def header_timing(mode: str, req: SimRequest, final: bool) -> dict[str, str]:
    w = req.wall
    if mode == "openai_processing_ms":
        return {"openai-processing-ms": str(max(0, round((time.perf_counter() - w.arrival) * 1000)))}
    if mode != "tgi":
        return {}
    compute = {"x-compute-type": "gpu+optimized", "x-compute-characters": str(len(req.prompt.text))}
    if not final:
        return compute
    queue, to_first, generation = _intervals(req)
    inference = to_first + generation
    total = time.perf_counter() - w.arrival
    generated = max(1, req.decode_tokens)
    return {
        **compute,
        "x-compute-time": repr(total),  # Rust's f64 to_string: shortest round-trip digits
        "x-total-time": str(int(total * 1000)),  # Duration::as_millis truncates
        "x-validation-time": "0",
        "x-queue-time": str(int(queue * 1000)),
        "x-inference-time": str(int(inference * 1000)),
        "x-time-per-token": str(int(inference / generated * 1000)),
        "x-prompt-tokens": str(req.input_tokens),
        "x-generated-tokens": str(req.decode_tokens),
    }


def _llama_cpp(req: SimRequest) -> dict[str, Any]:
    _, to_first, generation = _intervals(req)
    prompt_n = req.uncached_tokens
    predicted_n = req.decode_tokens
    prompt_ms = _ms(to_first)  # slot start -> first sampled token
    predicted_ms = _ms(generation) if predicted_n else 0.0  # first -> last token
    steps = predicted_n - 1
    return {
        "cache_n": req.cache.cached_tokens,
        "prompt_n": prompt_n,
        "prompt_ms": prompt_ms,
        "prompt_per_token_ms": prompt_ms / prompt_n if prompt_n else 0.0,
        "prompt_per_second": 1e3 / prompt_ms * prompt_n if prompt_ms else 0.0,
        "predicted_n": predicted_n,
        "predicted_ms": predicted_ms,
        "predicted_per_token_ms": predicted_ms / steps if steps > 0 else 0.0,
        "predicted_per_second": 1e3 / predicted_ms * steps if predicted_ms and steps > 0 else 0.0,
    }


def _vllm(req: SimRequest) -> dict[str, Any]:
    queue, to_first, generation = _intervals(req)
    n = req.decode_tokens
    inference = to_first + generation
    return {
        "time_to_first_token_ms": _ms(to_first),
        "generation_time_ms": _ms(generation),
        "queue_time_ms": _ms(queue),
        "mean_itl_ms": _ms(generation / (n - 1)) if n > 1 else None,
        "tokens_per_second": n / inference if inference > 0 else None,
    }


def _seconds(req: SimRequest) -> dict[str, float]:
    queue, to_first, generation = _intervals(req)
    return {"queue_time": queue, "prompt_time": to_first, "completion_time": generation}


def apply_body_timing(mode: str, req: SimRequest, obj: dict[str, Any], stream: bool) -> None:
    """Add ``mode``'s body report to ``obj``: a whole body, or the final event/chunk of a stream."""
    if obj.get("type") == "response.completed" and isinstance(obj.get("response"), dict):
        obj = obj["response"]  # vLLM's Responses stream carries it inside the completed response
    if mode == "llama_cpp":
        obj["timings"] = _llama_cpp(req)
    elif mode == "vllm":
        if stream and req.endpoint == "chat" and obj.get("choices"):
            return  # vLLM puts metrics only on the usage chunk (choices: []), sent with include_usage
        obj["metrics"] = _vllm(req)
    elif mode == "sglang":
        if not stream and req.endpoint in ("chat", "completions"):
            obj["metadata"] = {"weight_version": req.revision_name or "default"}
    elif mode == "groq":
        t = _seconds(req)
        t["total_time"] = t["prompt_time"] + t["completion_time"]  # "completion time and prompt time combined"
        if stream:
            usage = {"prompt_tokens": req.input_tokens, "completion_tokens": req.decode_tokens,
                     "total_tokens": req.input_tokens + req.decode_tokens}
            obj["x_groq"] = {"id": f"req_{req.id}", "usage": {**usage, **t}}
        elif isinstance(obj.get("usage"), dict):
            obj["usage"].update(t)
    elif mode == "cerebras":
        t = _seconds(req)
        t["total_time"] = time.perf_counter() - req.wall.arrival  # end to end: more than the three parts
        obj["time_info"] = {**t, "created": int(time.time())}
