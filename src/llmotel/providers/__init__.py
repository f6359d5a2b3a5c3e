"""One module per client library: where to patch and how to read its requests, responses and stream events.

Owns: ``openai`` and ``anthropic`` (patch points, request/response/event readers; ``_anthropic_read`` and
``_anthropic_native`` are the Anthropic module's readers and its truce with the SDK's own tracing).
Provider modules build no spans; they describe their library with ``llmotel.instrument.wrapping.Provider`` and
subclass ``llmotel.instrument.wrapping.LLMInstrumentor`` (see that module's docstring for the plug-in contract).
May import: ``instrument``, ``record``, ``config``, ``content``, ``signals``, ``_semconv`` and the client library.
"""

from __future__ import annotations

INSTRUMENTORS: tuple[tuple[str, str, str], ...] = (
    # (client package, provider module, instrumentor class)
    ("openai", "llmotel.providers.openai", "OpenAIInstrumentor"),
    ("anthropic", "llmotel.providers.anthropic", "AnthropicInstrumentor"),
)
