"""What opt-in content capture costs per call: provider messages -> GenAI-schema JSON (llmotel.content).

Runs the converters on fixed, realistic inputs (a five-message chat history with a tool round trip, a one-choice
ChatCompletion model, a 100k-character prompt over the cap) and prints the best-of-5 mean per call next to what
the raw ``json.dumps`` of the same input cost. Only runs when content capture is on; the default path is untouched.

    .venv/bin/python bench/content_cost.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import json
import timeit
from typing import Any

from _results import machine
from openai.types.chat import ChatCompletion

from llmotel import content

HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful assistant. " * 10},
    {"role": "user", "content": "What is the weather in Paris? " * 5},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "rainy, 14 C"},
    {"role": "user", "content": [{"type": "text", "text": "And tomorrow? " * 5}]},
]
ANSWER = ChatCompletion.model_validate(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Tomorrow it will be sunny. " * 20},
            }
        ],
    }
)
LONG = [{"role": "user", "content": "x" * 100_000}]
LIMIT = 16384


def _us(fn: Any, calls: int) -> float:
    return min(timeit.repeat(fn, number=calls, repeat=5)) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    calls = parser.parse_args().calls
    rows = [
        (
            f"chat input, 5 messages ({len(json.dumps(HISTORY))} chars)",
            _us(lambda: content.to_json(content.openai_chat_input(HISTORY), LIMIT), calls),
            _us(lambda: json.dumps(HISTORY, default=str), calls),
        ),
        (
            "chat output, 1 choice (pydantic model)",
            _us(lambda: content.to_json(content.openai_chat_output(ANSWER.choices), LIMIT), calls),
            _us(lambda: json.dumps([c.message.model_dump(exclude_none=True) for c in ANSWER.choices]), calls),
        ),
        (
            f"100k-char prompt capped at {LIMIT}",
            _us(lambda: content.to_json(content.openai_chat_input(LONG), LIMIT), max(calls // 100, 10)),
            _us(lambda: json.dumps(LONG)[:LIMIT], max(calls // 100, 10)),
        ),
    ]
    print(machine())
    print("| input | GenAI schema (us/call) | raw json.dumps (us/call) |\n| --- | ---: | ---: |")
    for name, schema_us, raw_us in rows:
        print(f"| {name} | {schema_us:.1f} | {raw_us:.1f} |")


if __name__ == "__main__":
    main()
