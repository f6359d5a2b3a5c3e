"""Anthropic Messages wire format: the message body and its SSE event sequence, as JSON-ready dicts."""

from __future__ import annotations

import json
from typing import Any

from llmotel_sim.engine import SimRequest, resolved_model
from llmotel_sim.openai_api import split_tool_tokens, token_text, tool_arguments
from llmotel_sim.tokens import stable_hash

STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def usage(req: SimRequest, output_tokens: int, wrong_type: bool = False) -> dict[str, Any]:
    c = req.cache
    u: dict[str, Any] = {
        # Anthropic's input_tokens EXCLUDES cache reads and writes.
        "input_tokens": max(0, req.input_tokens - c.cached_tokens - c.write_tokens),
        "cache_creation_input_tokens": c.write_tokens,
        "cache_read_input_tokens": c.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": c.write_5m_tokens,
            "ephemeral_1h_input_tokens": c.write_1h_tokens,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
        "inference_geo": req.region.geo if req.region else None,
    }
    if wrong_type:
        u["input_tokens"] = str(u["input_tokens"])
        u["output_tokens"] = {"value": output_tokens}
    return u


def tool_use_id(req: SimRequest, i: int) -> str:
    return f"toolu_{stable_hash(req.id + str(i)):08x}{i:04d}"


class MessageFormat:
    def __init__(self, req: SimRequest) -> None:
        self.req = req
        self.id = f"msg_{req.id}"
        self.model = resolved_model(req.model, req.revision, compact=True)
        self._split = split_tool_tokens(req) if req.tool_calls else []
        # Block index of visible token i: text is block 0; tool k is block k (or k+0 when there is no text).
        self._block = 0

    def _message(self, content: list[dict[str, Any]], stop: str | None, u: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": u,
        }

    def head(self) -> list[dict[str, Any]]:
        start = {"type": "message_start", "message": self._message([], None, usage(self.req, 1))}
        events: list[dict[str, Any]] = [start]
        if self.req.tool_calls:
            events.append(self._tool_start(0))
        else:
            events.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        events.append({"type": "ping"})
        return events

    def _tool_start(self, k: int) -> dict[str, Any]:
        block = {"type": "tool_use", "id": tool_use_id(self.req, k), "name": self.req.tool_calls[k], "input": {}}
        return {"type": "content_block_start", "index": k, "content_block": block}

    def token(self, i: int) -> list[dict[str, Any]]:
        if not self._split:
            return [
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": token_text(self.req, i)},
                }
            ]
        k, start = 0, 0
        while k < len(self._split) - 1 and i >= start + self._split[k]:
            start += self._split[k]
            k += 1
        events: list[dict[str, Any]] = []
        if k != self._block:
            events.append({"type": "content_block_stop", "index": self._block})
            events.append(self._tool_start(k))
            self._block = k
        args = tool_arguments(self.req, k, self._split[k])
        per = -(-len(args) // self._split[k])
        piece = args[(i - start) * per : (i - start + 1) * per]
        events.append(
            {"type": "content_block_delta", "index": k, "delta": {"type": "input_json_delta", "partial_json": piece}}
        )
        return events

    def tail(self, with_usage: bool, wrong_type: bool) -> list[dict[str, Any]]:
        req = self.req
        out_tokens = req.visible_tokens + req.reasoning_tokens
        delta_usage: dict[str, Any] = {
            "input_tokens": max(0, req.input_tokens - req.cache.cached_tokens - req.cache.write_tokens),
            "cache_creation_input_tokens": req.cache.write_tokens,
            "cache_read_input_tokens": req.cache.cached_tokens,
            "output_tokens": out_tokens,
        }
        if wrong_type:
            delta_usage["output_tokens"] = str(out_tokens)
        md: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": STOP[req.finish], "stop_sequence": None},
        }
        if with_usage:
            md["usage"] = delta_usage
        return [{"type": "content_block_stop", "index": self._block}, md, {"type": "message_stop"}]

    def body(self, with_usage: bool, wrong_type: bool, huge: bool) -> dict[str, Any]:
        req = self.req
        content: list[dict[str, Any]]
        if req.tool_calls:
            content = [
                {
                    "type": "tool_use",
                    "id": tool_use_id(req, k),
                    "name": name,
                    "input": json.loads(tool_arguments(req, k, self._split[k])),
                }
                for k, name in enumerate(req.tool_calls)
            ]
        else:
            text = "".join(token_text(req, i) for i in range(req.visible_tokens)).lstrip()
            if huge:
                text += " padding" * 200_000
            content = [{"type": "text", "text": text}]
        u = usage(req, req.visible_tokens + req.reasoning_tokens, wrong_type) if with_usage else None
        return self._message(content, STOP[req.finish], u)


def error_body(status: int, message: str, request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": request_id,
    }
