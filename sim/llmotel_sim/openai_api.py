"""OpenAI wire formats: chat.completions, legacy completions, responses and embeddings (bodies and SSE events).

Pure functions from a SimRequest to JSON-ready dicts; the server decides when to send them.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from typing import Any

from llmotel_sim.engine import SimRequest, resolved_model
from llmotel_sim.tokens import output_token, stable_hash

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _seed(req: SimRequest) -> int:
    return stable_hash(req.id)


def token_text(req: SimRequest, i: int) -> str:
    return output_token(_seed(req), i)


def tool_arguments(req: SimRequest, tool_index: int, n_tokens: int) -> str:
    words = "".join(output_token(_seed(req) + tool_index, i) for i in range(n_tokens)).strip()
    return json.dumps({"input": words})


def split_tool_tokens(req: SimRequest) -> list[int]:
    """How many visible tokens each tool call's arguments take (spread evenly, at least one each)."""
    n = len(req.tool_calls)
    total = max(req.visible_tokens, n)
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def tool_call_id(req: SimRequest, i: int) -> str:
    return f"call_{stable_hash(req.id + str(i)):08x}{i:04d}"


def usage(req: SimRequest, wrong_type: bool = False) -> dict[str, Any]:
    out = req.visible_tokens + req.reasoning_tokens
    u: dict[str, Any] = {
        "prompt_tokens": req.input_tokens,
        "completion_tokens": out,
        "total_tokens": req.input_tokens + out,
        "prompt_tokens_details": {"cached_tokens": req.cache.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": req.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    if wrong_type:
        u["prompt_tokens"] = str(u["prompt_tokens"])
        u["completion_tokens"] = [out]
    return u


class ChatFormat:
    """chat.completion(.chunk) for one request."""

    def __init__(self, req: SimRequest, include_usage: bool) -> None:
        self.req = req
        self.include_usage = include_usage
        self.id = f"chatcmpl-{req.id}"
        self.created = int(time.time())
        self.model = resolved_model(req.model, req.revision)
        self._tool_split = split_tool_tokens(req) if req.tool_calls else []
        self._sse_pre: str | None = None
        self._sse_post = ""

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": self.req.revision.fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            c["usage"] = None
        return c

    def head(self) -> list[dict[str, Any]]:
        return [self._chunk({"role": "assistant", "content": None if self.req.tool_calls else "", "refusal": None})]

    def token_sse(self, i: int) -> str | None:
        """The text token's whole SSE event, byte-identical to encoding ``token(i)``; None for tool calls."""
        if self._tool_split:
            return None
        if self._sse_pre is None:
            probe = _dumps(self._chunk({"content": "\x00"}))
            pre, post = probe.split('"\\u0000"')
            self._sse_pre, self._sse_post = "data: " + pre, post + "\n\n"
        return f"{self._sse_pre}{_dumps(token_text(self.req, i))}{self._sse_post}"

    def token(self, i: int) -> dict[str, Any]:
        if not self._tool_split:
            return self._chunk({"content": token_text(self.req, i)})
        tool, start = 0, 0
        while tool < len(self._tool_split) - 1 and i >= start + self._tool_split[tool]:
            start += self._tool_split[tool]
            tool += 1
        n = self._tool_split[tool]
        args = tool_arguments(self.req, tool, n)
        per = -(-len(args) // n)
        piece = args[(i - start) * per : (i - start + 1) * per]
        call: dict[str, Any] = {"index": tool, "function": {"arguments": piece}}
        if i == start:
            call.update(id=tool_call_id(self.req, tool), type="function")
            call["function"]["name"] = self.req.tool_calls[tool]
        return self._chunk({"tool_calls": [call]})

    def tail(self, with_usage: bool, wrong_type: bool) -> list[dict[str, Any]]:
        out = [self._chunk({}, FINISH[self.req.finish])]
        if self.include_usage and with_usage:
            last = self._chunk({})
            last["choices"] = []
            last["usage"] = usage(self.req, wrong_type)
            out.append(last)
        return out

    def body(self, with_usage: bool, wrong_type: bool, huge: bool) -> dict[str, Any]:
        req = self.req
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
        if req.tool_calls:
            split = split_tool_tokens(req)
            message["tool_calls"] = [
                {
                    "id": tool_call_id(req, i),
                    "type": "function",
                    "function": {"name": name, "arguments": tool_arguments(req, i, split[i])},
                }
                for i, name in enumerate(req.tool_calls)
            ]
        else:
            message["content"] = "".join(token_text(req, i) for i in range(req.visible_tokens)).lstrip()
            if huge:
                message["content"] = message["content"] + " padding" * 200_000
        b: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH[req.finish]}],
            "service_tier": "default",
            "system_fingerprint": req.revision.fingerprint,
        }
        if with_usage:
            b["usage"] = usage(req, wrong_type)
        return b


class CompletionFormat:
    """Legacy text_completion for one request."""

    def __init__(self, req: SimRequest, include_usage: bool) -> None:
        self.req = req
        self.include_usage = include_usage
        self.id = f"cmpl-{req.id}"
        self.created = int(time.time())
        self.model = resolved_model(req.model, req.revision)

    def _chunk(self, text: str, finish: str | None = None) -> dict[str, Any]:
        c: dict[str, Any] = {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.req.revision.fingerprint,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            c["usage"] = None
        return c

    def head(self) -> list[dict[str, Any]]:
        return []

    def token(self, i: int) -> dict[str, Any]:
        return self._chunk(token_text(self.req, i))

    def tail(self, with_usage: bool, wrong_type: bool) -> list[dict[str, Any]]:
        out = [self._chunk("", "length" if self.req.finish == "length" else "stop")]
        if self.include_usage and with_usage:
            last = self._chunk("")
            last["choices"] = []
            u = usage(self.req, wrong_type)
            u.pop("prompt_tokens_details")
            last["usage"] = u
            out.append(last)
        return out

    def body(self, with_usage: bool, wrong_type: bool, huge: bool) -> dict[str, Any]:
        text = "".join(token_text(self.req, i) for i in range(self.req.visible_tokens))
        if huge:
            text += " padding" * 200_000
        b: dict[str, Any] = self._chunk(text, "length" if self.req.finish == "length" else "stop")
        b.pop("usage", None)
        if with_usage:
            b["usage"] = usage(self.req, wrong_type)
        return b


class ResponsesFormat:
    """The responses API: a Response object and its typed stream events (with sequence numbers)."""

    def __init__(self, req: SimRequest) -> None:
        self.req = req
        self.id = f"resp_{req.id}"
        self.item_id = f"msg_{req.id}"
        self.created = int(time.time())
        self.model = resolved_model(req.model, req.revision)
        self.seq = 0

    def _event(self, type_: str, **fields: Any) -> dict[str, Any]:
        e = {"type": type_, "sequence_number": self.seq, **fields}
        self.seq += 1
        return e

    def _text(self) -> str:
        return "".join(token_text(self.req, i) for i in range(self.req.visible_tokens))

    def _usage(self, wrong_type: bool) -> dict[str, Any]:
        req = self.req
        out = req.visible_tokens + req.reasoning_tokens
        u: dict[str, Any] = {
            "input_tokens": req.input_tokens,
            "input_tokens_details": {"cached_tokens": req.cache.cached_tokens},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": req.reasoning_tokens},
            "total_tokens": req.input_tokens + out,
        }
        if wrong_type:
            u["input_tokens"] = str(u["input_tokens"])
        return u

    def _message(self, status: str, text: str | None) -> dict[str, Any]:
        content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant", "content": content}

    def response(
        self, status: str, with_usage: bool = True, wrong_type: bool = False, huge: bool = False
    ) -> dict[str, Any]:
        final = status != "in_progress"
        text = self._text() + (" padding" * 200_000 if huge else "")
        r: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": None,
            "max_output_tokens": None,
            "model": self.model,
            "output": [self._message("completed" if status == "completed" else status, text)] if final else [],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": self._usage(wrong_type) if final and with_usage else None,
            "metadata": {},
        }
        return r

    def head(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self.response("in_progress")),
            self._event("response.in_progress", response=self.response("in_progress")),
            self._event("response.output_item.added", output_index=0, item=self._message("in_progress", None)),
            self._event(
                "response.content_part.added",
                item_id=self.item_id,
                output_index=0,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            ),
        ]

    def token(self, i: int) -> dict[str, Any]:
        return self._event(
            "response.output_text.delta",
            item_id=self.item_id,
            output_index=0,
            content_index=0,
            delta=token_text(self.req, i),
            logprobs=[],
        )

    def tail(self, with_usage: bool, wrong_type: bool) -> list[dict[str, Any]]:
        text = self._text()
        status = "incomplete" if self.req.finish == "length" else "completed"
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return [
            self._event(
                "response.output_text.done",
                item_id=self.item_id,
                output_index=0,
                content_index=0,
                text=text,
                logprobs=[],
            ),
            self._event("response.content_part.done", item_id=self.item_id, output_index=0, content_index=0, part=part),
            self._event("response.output_item.done", output_index=0, item=self._message(status, text)),
            self._event(f"response.{status}", response=self.response(status, with_usage, wrong_type)),
        ]

    def body(self, with_usage: bool, wrong_type: bool, huge: bool) -> dict[str, Any]:
        status = "incomplete" if self.req.finish == "length" else "completed"
        return self.response(status, with_usage, wrong_type, huge)


def embedding_body(req: SimRequest, inputs: int, dimensions: int, encoding: str) -> dict[str, Any]:
    """Deterministic pseudo-embeddings; base64 (the client's default) is little-endian float32 like the API."""
    data = []
    seed = _seed(req)
    for i in range(inputs):
        vec = [((seed * 31 + i * 17 + d * 7) % 997) / 997.0 - 0.5 for d in range(dimensions)]
        emb: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vec)).decode() if encoding == "base64" else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {
        "object": "list",
        "data": data,
        "model": resolved_model(req.model, req.revision),
        "usage": {"prompt_tokens": req.input_tokens, "total_tokens": req.input_tokens},
    }


def error_body(status: int, message: str, kind: str = "") -> dict[str, Any]:
    type_, code = {
        429: ("tokens" if kind == "tokens" else "requests", "rate_limit_exceeded"),
        500: ("server_error", None),
        529: ("server_error", "overloaded"),
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        404: ("invalid_request_error", "not_found"),
    }.get(status, ("server_error", None))
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}
