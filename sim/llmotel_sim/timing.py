"""Server timing reports in the shapes real servers use, computed from a request's wall-clock truth.

Values are wall milliseconds (what the client can compare with its own clock). Modes:
  tgi                    x-queue-time / x-inference-time / x-time-per-token ... headers (non-streaming only,
                         like text-generation-inference, which cannot know them when stream headers go out)
  llama_cpp              ``timings`` object in the body / final stream chunk
  vllm                   ``metrics`` object in the body / final stream chunk
  openai_processing_ms   ``openai-processing-ms`` header (stream headers then wait for the first token)
  none                   nothing (the hosted-API case)
"""

from __future__ import annotations

import time
from typing import Any

from llmotel_sim.engine import SimRequest


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def header_timing(mode: str, req: SimRequest, final: bool) -> dict[str, str]:
    w = req.wall
    if mode == "openai_processing_ms":
        return {"openai-processing-ms": str(max(0, round((time.perf_counter() - w.arrival) * 1000)))}
    if mode != "tgi" or not final:
        return {}
    ph = w.phases()
    decode_n = max(1, req.decode_tokens)
    inference = ph["prefill_s"] + ph["first_token_s"] + ph["decode_s"]
    total = time.perf_counter() - w.arrival
    return {
        "x-compute-type": "gpu+optimized",
        "x-compute-time": f"{total:.6f}",
        "x-compute-characters": str(len(req.prompt.text)),
        "x-total-time": str(round(total * 1000)),
        "x-validation-time": "0",
        "x-queue-time": str(round(ph["queue_s"] * 1000)),
        "x-inference-time": str(round(inference * 1000)),
        "x-time-per-token": str(round(inference * 1000 / decode_n)),
        "x-prompt-tokens": str(req.input_tokens),
        "x-generated-tokens": str(req.decode_tokens),
    }


def body_timing(mode: str, req: SimRequest) -> dict[str, Any]:
    w = req.wall
    ph = w.phases()
    if mode == "llama_cpp":
        prompt_n = req.uncached_tokens
        predicted_n = req.decode_tokens
        prompt_ms = _ms(ph["prefill_s"])
        predicted_ms = _ms(ph["first_token_s"] + ph["decode_s"])
        return {
            "timings": {
                "cache_n": req.cache.cached_tokens,
                "prompt_n": prompt_n,
                "prompt_ms": prompt_ms,
                "prompt_per_token_ms": round(prompt_ms / prompt_n, 4) if prompt_n else 0.0,
                "prompt_per_second": round(prompt_n / prompt_ms * 1000, 3) if prompt_ms else 0.0,
                "predicted_n": predicted_n,
                "predicted_ms": predicted_ms,
                "predicted_per_token_ms": round(predicted_ms / predicted_n, 4) if predicted_n else 0.0,
                "predicted_per_second": round(predicted_n / predicted_ms * 1000, 3) if predicted_ms else 0.0,
            }
        }
    if mode == "vllm":
        return {
            "metrics": {
                "arrival_time": round(time.time() - (time.perf_counter() - w.arrival), 6),
                "queue_time_ms": _ms(ph["queue_s"]),
                "prefill_time_ms": _ms(ph["prefill_s"]),
                "first_token_time_ms": _ms(max(0.0, w.first_token - w.arrival)),
                "decode_time_ms": _ms(ph["decode_s"]),
                "inference_time_ms": _ms(ph["prefill_s"] + ph["first_token_s"] + ph["decode_s"]),
                "num_cached_tokens": req.cache.cached_tokens,
            }
        }
    return {}
