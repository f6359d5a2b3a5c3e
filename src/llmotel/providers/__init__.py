"""One module per client library: where to patch and how to read its requests, responses and stream events.

Provider modules build no spans; they describe their library with ``llmotel.wrapping.Provider`` and
subclass ``llmotel.wrapping.LLMInstrumentor`` (see that module's docstring for the plug-in contract).
"""

from __future__ import annotations

INSTRUMENTORS: tuple[tuple[str, str, str], ...] = (
    # (client package, provider module, instrumentor class)
    ("openai", "llmotel.providers.openai", "OpenAIInstrumentor"),
    ("anthropic", "llmotel.providers.anthropic", "AnthropicInstrumentor"),
)
