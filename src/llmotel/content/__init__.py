"""Content capture (opt-in): provider messages -> the GenAI content schema, as size-capped JSON.

Owns: ``convert`` (one converter per provider message shape, never raising) and ``cap`` (the JSON form within
``content_max_chars``, still valid JSON). Runs only when content capture is on.
May import: the standard library; never OpenTelemetry, a provider SDK or another room.
"""

from __future__ import annotations

from llmotel.content.cap import to_json
from llmotel.content.convert import (
    anthropic_input,
    anthropic_output,
    instructions,
    openai_chat_input,
    openai_chat_output,
    openai_completion_output,
    openai_prompt_input,
    openai_responses_input,
    openai_responses_output,
)

__all__ = [
    "anthropic_input",
    "anthropic_output",
    "instructions",
    "openai_chat_input",
    "openai_chat_output",
    "openai_completion_output",
    "openai_prompt_input",
    "openai_responses_input",
    "openai_responses_output",
    "to_json",
]
