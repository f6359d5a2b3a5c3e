"""Parse a captured GenAI content attribute and validate it against the official JSON schemas.

The schemas are upstream's files in tests/data/genai_schema (sources and licence in its README). Each helper
returns the parsed value so tests can compare its structure with what was sent or returned.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).parent / "data" / "genai_schema"


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(name: str, value: Any) -> list[str]:
    """Every schema violation of ``value`` against schema file ``name`` (empty: valid)."""
    return [f"{list(e.absolute_path)}: {e.message}" for e in _validator(name).iter_errors(value)]


def _parse(name: str, attribute: object) -> Any:
    assert isinstance(attribute, str), f"expected a JSON string attribute, got {type(attribute).__name__}"
    value = json.loads(attribute)
    problems = errors(name, value)
    assert not problems, problems
    return value


def input_messages(attribute: object) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = _parse("gen-ai-input-messages.json", attribute)
    return value


def output_messages(attribute: object) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = _parse("gen-ai-output-messages.json", attribute)
    return value


def system_instructions(attribute: object) -> list[dict[str, Any]]:
    """Valid against both the last released schema and the newer genai-repo one (stricter about text parts)."""
    _parse("gen-ai-system-instructions.genai.json", attribute)
    value: list[dict[str, Any]] = _parse("gen-ai-system-instructions.json", attribute)
    return value


def arguments(raw: str) -> Any:
    """What a tool_call part's ``arguments`` should hold for the JSON string the provider returned."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw
