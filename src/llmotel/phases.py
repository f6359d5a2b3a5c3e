"""The phase model: turn one call's capture (+ what the server said) into tiling phases.

Contract (spans.py relies on it):
- ``PhaseModel.split`` returns phases in order [retries?], queue, prefill, first_token, decode whose
  intervals are contiguous: the first starts at ``capture.start_ns``, each starts where the previous
  ended, the last ends at ``capture.end_ns``. Durations are >= 0.
- Each phase says its source: ``server`` (reported by the server), ``client`` (measured between two
  observed events) or ``estimated`` (inferred; ``confidence`` < 1).
- Never raises for odd input (missing usage, zero-length calls, clocks that went backwards).

This first version uses cold-start priors only; the learned model (issue: phase model) replaces the
internals of ``PhaseModel`` behind the same signature.
"""

from __future__ import annotations

from llmotel.record import CallCapture, LLMRequest, LLMResponse, Phase, PhaseSource, ServerTiming

# Cold-start priors, low confidence. Placeholder figures until the phase-model issue lands.
_PRIOR_PREFILL_S_PER_TOKEN = 0.0002
_PRIOR_TPOT_S = 0.02
_PRIOR_CONFIDENCE = 0.2


class PhaseModel:
    def split(
        self,
        request: LLMRequest,
        response: LLMResponse,
        capture: CallCapture,
        server: ServerTiming,
    ) -> list[Phase]:
        """Never raises; see the module docstring for the tiling guarantee."""
        start = capture.start_ns
        end = max(capture.end_ns, start)
        phases: list[Phase] = []
        attempt = min(max(capture.attempt_start_ns, start), end)
        if attempt > start:
            phases.append(Phase("retries", start, attempt, "client", 1.0))
        usage = response.usage
        first = capture.first_content_ns
        decode_source: PhaseSource
        if attempt <= first <= end:
            decode_start, decode_source = first, "client"
        else:
            tokens = usage.output_tokens or 0
            decode_start, decode_source = max(attempt, end - int(tokens * _PRIOR_TPOT_S * 1e9)), "estimated"
        uncached = max(0, (usage.input_tokens or 0) - (usage.cache_read_tokens or 0))
        prefill_ns = min(int(uncached * _PRIOR_PREFILL_S_PER_TOKEN * 1e9), decode_start - attempt)
        # Without the learned model there is no queue evidence: queue is empty, the rest of TTFT is first_token.
        prefill_end = attempt + prefill_ns
        low = _PRIOR_CONFIDENCE
        phases.append(Phase("queue", attempt, attempt, "estimated", low))
        phases.append(Phase("prefill", attempt, prefill_end, "estimated", low))
        phases.append(Phase("first_token", prefill_end, decode_start, "estimated", low))
        phases.append(Phase("decode", decode_start, end, decode_source, 1.0 if decode_source == "client" else low))
        return phases


DEFAULT_MODEL = PhaseModel()
