"""Cold-start priors for the phase model: what to assume about a key before any call of it was seen.

These numbers are ROUGH and are only used until the learner (learner.py) has samples; every
phase estimated from them carries a low ``llmotel.phase.confidence`` (<= 0.1). They are derived, not
measured, from two published facts and three stated assumptions:

Published facts (cited):
- A dense transformer forward pass costs about 2 FLOPs per parameter per token (Kaplan et al., "Scaling
  Laws for Neural Language Models", arXiv:2001.08361, section 2.1, C_forward ~= 2N).
- NVIDIA H100 SXM: 989 TFLOPS dense BF16 tensor throughput and 3.35 TB/s HBM3 bandwidth (NVIDIA H100
  Tensor Core GPU datasheet; the 1,979 TFLOPS headline figure assumes 2:4 sparsity, so it is halved).

Assumptions (NOT facts; stated so a reader can replace them):
- Prefill is compute-bound at ~40 % model-FLOPs utilisation; decode is bandwidth-bound, reading every
  BF16 weight (2 bytes/parameter) once per step at ~50 % of peak bandwidth.
- The model is sharded with tensor parallelism over the smallest power-of-two number of 80 GB GPUs that
  holds its BF16 weights with 25 % headroom, and sharding scales perfectly.
- The fixed overhead (network, HTTP framing, first decode step) is 5 ms on a loopback or private address
  and 150 ms on a public host: a guess, learned away after a few calls.
- A cache-read input token costs 1 % of an uncached one. It skips the weight matmuls (2 FLOPs per
  parameter); what remains is the new tokens' attention over its KV entries, about 4 * d_model * layers
  FLOPs per (new, cached) pair, i.e. ~3e-5 of a token's matmuls for an 8B model (d_model 4096, 32 layers),
  plus loading it if the cache is offloaded. A guess for the typical mix, learned when cached counts vary.

Cross-check (published measurement, same order of magnitude as the derivation): vLLM's nightly
benchmark (buildkite.com/vllm/performance-benchmark, build 9515) reports 833 ms end-to-end for Llama-3.1
8B on one H200 at batch 8, 32 input and 128 output tokens, i.e. ~6.5 ms per output token; the
derivation below gives ~9.6 ms on an H100 (the H200 has 4.8 TB/s).

Model size comes from the model name only when the name states it (``llama-3.1-8b``, ``qwen2.5-72b``,
``mixtral-8x7b``). Hosted models whose size is not published (gpt-4o, claude-*) fall back to a 70B-class
assumption with confidence 0.05: the priors then say "something happened", never how much.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

_H100_DENSE_BF16_FLOPS = 989e12
_H100_HBM_BYTES_PER_S = 3.35e12
_H100_MEMORY_BYTES = 80e9
_ASSUMED_PREFILL_MFU = 0.4
_ASSUMED_DECODE_BW_UTILISATION = 0.5
_BYTES_PER_PARAM = 2.0
_ASSUMED_CACHE_READ_RATIO = 0.01
_ASSUMED_OVERHEAD_LOCAL_S = 0.005
_ASSUMED_OVERHEAD_REMOTE_S = 0.150
_UNKNOWN_SIZE_PARAMS = 70e9

CONFIDENCE_SIZE_FROM_NAME = 0.1
CONFIDENCE_SIZE_UNKNOWN = 0.05

# "8b", "1.5b", "70B", "8x7b" (mixture of experts: the size is the active-parameter upper bound; the
# prior then over-estimates, which the learner corrects). Word boundaries keep "gpt-4o" from matching.
_SIZE_RE = re.compile(r"(?:^|[^a-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?:$|[^a-z0-9])")


@dataclass(frozen=True, slots=True)
class Prior:
    """Cold-start coefficients for one key, in seconds."""

    overhead_s: float
    prefill_s_per_token: float
    cache_read_s_per_token: float
    time_per_output_token_s: float
    confidence: float
    params: float
    size_known: bool


def model_params(model: str) -> float | None:
    """Parameter count stated in the model name, or None. Never raises."""
    match = _SIZE_RE.search(model.lower())
    if match is None:
        return None
    experts = int(match.group(1)) if match.group(1) else 1
    try:
        billions = float(match.group(2))
    except ValueError:
        return None
    if not 0.05 <= billions <= 3000:
        return None
    return experts * billions * 1e9


def _is_local(server_address: str) -> bool:
    host = server_address.lower()
    return (
        host in ("", "localhost", "::1")
        or host.startswith(("127.", "10.", "192.168.", "host.docker.internal"))
        or host.endswith((".local", ".internal", ".svc", ".cluster.local"))
    )


@lru_cache(maxsize=512)
def prior(model: str, server_address: str) -> Prior:
    """Cold-start prior for a (model, server) pair. Never raises; cached (bounded)."""
    params = model_params(model)
    size_known = params is not None
    n = params if params is not None else _UNKNOWN_SIZE_PARAMS
    weight_bytes = _BYTES_PER_PARAM * n
    gpus = 2 ** max(0, math.ceil(math.log2(max(1.0, 1.25 * weight_bytes / _H100_MEMORY_BYTES))))
    prefill = 2.0 * n / (_H100_DENSE_BF16_FLOPS * _ASSUMED_PREFILL_MFU * gpus)
    tpot = weight_bytes / (_H100_HBM_BYTES_PER_S * _ASSUMED_DECODE_BW_UTILISATION * gpus)
    network = _ASSUMED_OVERHEAD_LOCAL_S if _is_local(server_address) else _ASSUMED_OVERHEAD_REMOTE_S
    return Prior(
        overhead_s=network + tpot,
        prefill_s_per_token=prefill,
        cache_read_s_per_token=prefill * _ASSUMED_CACHE_READ_RATIO,
        time_per_output_token_s=tpot,
        confidence=CONFIDENCE_SIZE_FROM_NAME if size_known else CONFIDENCE_SIZE_UNKNOWN,
        params=n,
        size_known=size_known,
    )
