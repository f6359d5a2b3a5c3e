"""The HTTP face of the fleet: aiohttp routes speaking the OpenAI and Anthropic wire formats.

One handler flow for every endpoint: authenticate (the API key is the tenant), read the ``x-sim-*`` controls,
inject status faults, charge the tenant's quota, route into the fleet, then answer as a body or as SSE while
the replica produces tokens. ``SimServer`` runs all of it on a private event loop in a background thread.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from llmotel_sim import anthropic_api, openai_api
from llmotel_sim.config import SERVER_TIMING_MODES, ConfigError, SimConfig, default_config, resolve_config
from llmotel_sim.engine import Fleet, SimRequest
from llmotel_sim.faults import NO_FAULT, Fault, FaultError, parse_fault
from llmotel_sim.quota import Decision, Quotas
from llmotel_sim.timing import apply_body_timing, header_timing
from llmotel_sim.tokens import Prompt, anthropic_prompt, openai_chat_prompt, stable_hash, text_prompt

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class StreamFormat(Protocol):
    def head(self) -> list[dict[str, Any]]: ...
    def tail(self, with_usage: bool, wrong_type: bool) -> list[dict[str, Any]]: ...
    def body(self, with_usage: bool, wrong_type: bool, huge: bool) -> dict[str, Any]: ...


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.kind = kind


def _tenant(request: web.Request) -> str | None:
    key = request.headers.get("x-api-key") or request.headers.get("api-key")  # api-key: Azure OpenAI
    if not key:
        auth = request.headers.get("Authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if not key:
        return None
    return key[7:] if key.startswith("tenant-") else key


def _int_header(request: web.Request, name: str) -> int | None:
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {value!r}") from None


class SimApp:
    """State of one simulated provider endpoint: the fleet, the quotas and the request counter."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.fleet = Fleet(config)
        self.quotas = Quotas(config.tenants, config.default_tenant, self.fleet.clock)
        self._seq = itertools.count(1)

    def build(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._route("openai", "chat"))
        app.router.add_post("/v1/completions", self._route("openai", "completions"))
        app.router.add_post("/v1/responses", self._route("openai", "responses"))
        app.router.add_post("/v1/embeddings", self._route("openai", "embeddings"))
        app.router.add_post("/v1/messages", self._route("anthropic", "messages"))
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        # Azure-style deployments path: /openai/deployments/{d}/chat/completions
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._route("openai", "chat"))
        app.router.add_get("/truth/{request_id}", self._truth)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/v1/models", self._models)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.fleet.stop()

    # -- side channels ---------------------------------------------------------------------------------------

    def truth(self, request_id: str) -> dict[str, Any] | None:
        req = self.fleet.truths.get(request_id)
        return req.truth() if req is not None else None

    async def _truth(self, request: web.Request) -> web.Response:
        t = self.truth(request.match_info["request_id"])
        if t is None:
            return web.json_response({"error": "unknown request id"}, status=404)
        return web.json_response(t)

    async def _health(self, _request: web.Request) -> web.Response:
        reps = self.fleet.replicas()
        return web.json_response({"ok": True, "replicas": {r.name: r.load for r in reps}})

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    async def _count_tokens(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.json_response(anthropic_api.error_body(400, "body is not JSON", ""), status=400)
        return web.json_response({"input_tokens": anthropic_prompt(body).tokens})

    # -- the request flow ------------------------------------------------------------------------------------

    def _route(self, provider: str, endpoint: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, provider, endpoint)

        return handler

    def _error(
        self, provider: str, status: int, message: str, req_id: str, headers: dict[str, str], kind: str = ""
    ) -> web.Response:
        if provider == "anthropic":
            body = anthropic_api.error_body(status, message, f"req_{req_id}")
        else:
            body = openai_api.error_body(status, message, kind)
        return web.Response(status=status, body=_dumps(body), headers=headers, content_type="application/json")

    def _base_headers(self, provider: str, req: SimRequest) -> dict[str, str]:
        h = {"x-sim-request-id": req.id}
        region = req.region
        iata = region.iata if region else "LAX"
        h["cf-ray"] = f"{stable_hash(req.id):08x}{stable_hash(req.id[::-1]):08x}-{iata}"
        if provider == "anthropic":
            h["request-id"] = f"req_{req.id}"
        else:
            h["x-request-id"] = f"req_{req.id}"
            h["openai-version"] = "2020-10-01"
            if region and region.azure_name:
                h["x-ms-region"] = region.azure_name
        return h

    def _pick_fault(self, request: web.Request, rng: random.Random) -> Fault:
        spec = request.headers.get("x-sim-fault")
        if spec:
            times = request.headers.get("x-sim-fault-times")
            if times is not None:
                try:
                    retry = int(request.headers.get("x-stainless-retry-count", "0"))
                    if retry >= int(times):
                        return NO_FAULT
                except ValueError:
                    raise ApiError(400, f"x-sim-fault-times must be an integer, got {times!r}") from None
            try:
                return parse_fault(spec)
            except FaultError as exc:
                raise ApiError(400, str(exc)) from None
        for name, rate in self.config.fault_rates.items():
            if rate > 0 and rng.random() < rate:
                return parse_fault(name)
        return NO_FAULT

    def _prompt(self, provider: str, endpoint: str, body: dict[str, Any]) -> Prompt:
        if provider == "anthropic":
            return anthropic_prompt(body)
        if endpoint == "chat":
            return openai_chat_prompt(body)
        if endpoint == "completions":
            return text_prompt(body.get("prompt"))
        if endpoint == "responses":
            prompt = text_prompt(body.get("input"))
            if body.get("instructions"):
                prompt.text = str(body["instructions"]) + prompt.text
            return prompt
        return text_prompt(body.get("input"))

    @staticmethod
    def _max_tokens(provider: str, endpoint: str, body: dict[str, Any]) -> int | None:
        if provider == "anthropic":
            value = body.get("max_tokens")
            if not isinstance(value, int):
                raise ApiError(400, "max_tokens: Field required")
            return value
        if endpoint == "chat":
            value = body.get("max_completion_tokens", body.get("max_tokens"))
        elif endpoint == "completions":
            value = body.get("max_tokens", 16)  # the legacy API's real default
        elif endpoint == "responses":
            value = body.get("max_output_tokens")
        else:
            return None
        return value if isinstance(value, int) else None

    async def _handle(self, request: web.Request, provider: str, endpoint: str) -> web.StreamResponse:
        arrival_w = time.perf_counter()
        req_id = f"sim{next(self._seq):07d}"
        try:
            return await self._serve(request, provider, endpoint, arrival_w, req_id)
        except ApiError as err:
            return self._error(
                provider, err.status, err.message, req_id, {"x-sim-request-id": req_id, **err.headers}, err.kind
            )

    async def _serve(
        self, request: web.Request, provider: str, endpoint: str, arrival_w: float, req_id: str
    ) -> web.StreamResponse:
        cfg = self.config
        tenant = _tenant(request)
        if tenant is None:
            raise ApiError(401, "missing API key (Authorization: Bearer <key> or x-api-key)")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        stream = bool(body.get("stream")) and endpoint != "embeddings"
        prompt = self._prompt(provider, endpoint, body)
        prompt.extra_tokens = max(0, (_int_header(request, "x-sim-input-tokens") or 0) - prompt.tokens)
        rng = self.fleet.request_rng(tenant, prompt)
        fault = self._pick_fault(request, rng)
        tenant_spec = cfg.tenant(tenant)
        try:
            region = self.fleet.pick_region(request.headers.get("x-sim-region"), tenant_spec.region, rng)
        except KeyError as exc:
            raise ApiError(400, f"x-sim-region {exc.args[0]!r} is not a region of this fleet") from None
        revision = cfg.revision(region.revision)
        req = SimRequest(
            id=req_id,
            tenant=tenant,
            provider=provider,
            endpoint=endpoint,
            model=str(body.get("model", "")),
            prompt=prompt,
            stream=stream,
            visible_tokens=0,
            region=region,
            revision_name=region.revision,
            revision=revision,
            fault=fault.label(),
            rng=rng,
        )
        req.sim.arrival = (arrival_w - self.fleet.clock.origin) * self.fleet.clock.speed  # same instant as wall
        req.wall.arrival = arrival_w
        self._plan_output(request, req, provider, endpoint, body)
        if fault.status:
            req.status = fault.status
            req.done = True
            req.wall_end = time.perf_counter()
            self.fleet.remember(req)
            headers = self._base_headers(provider, req)
            if fault.status == 429:
                headers.update(self._fault_429_headers(provider))
            msg = {
                500: "The server had an error while processing your request.",
                529: "Overloaded",
                429: "Rate limit reached (simulated fault).",
            }[fault.status]
            return self._error(provider, fault.status, msg, req_id, headers, "requests")
        if request.headers.get("x-sim-dry-run") == "1":
            decision = Decision()
        else:
            decision = self.quotas.for_tenant(tenant).admit(provider, req.input_tokens, req.decode_tokens)
        if not decision.allowed:
            req.status = 429
            req.done = True
            req.wall_end = time.perf_counter()
            self.fleet.remember(req)
            headers = {**self._base_headers(provider, req), **decision.headers}
            msg = (
                f"Rate limit reached for {req.model} on {decision.limited_by} per min. "
                f"Please try again in {decision.retry_after_s:.3f}s."
            )
            return self._error(provider, 429, msg, req_id, headers, decision.limited_by)
        if decision.output_cap is not None and decision.output_cap < req.decode_tokens:
            req.reasoning_tokens = min(req.reasoning_tokens, decision.output_cap)
            req.visible_tokens = max(0, decision.output_cap - req.reasoning_tokens)
            req.finish = "length"
        if request.headers.get("x-sim-dry-run") == "1":
            # Answered at once, outside the fleet: no replica, cache, quota or truth is touched (client warm-up).
            now_w, now_s = time.perf_counter(), req.sim.arrival
            for stamps, now in ((req.wall, now_w), (req.sim, now_s)):
                stamps.admit = stamps.prefill_end = stamps.first_token = stamps.first_visible = now
                stamps.last_token = now
            req.produced = req.decode_tokens
            req.done = True
            req.replica = "dry-run"
        else:
            self.fleet.remember(req)
            self.fleet.dispatch(req, None, None)
        headers = {**self._base_headers(provider, req), **decision.headers}
        timing = request.headers.get("x-sim-server-timing", cfg.server_timing)
        if timing not in SERVER_TIMING_MODES:
            raise ApiError(400, f"x-sim-server-timing must be one of {SERVER_TIMING_MODES}, got {timing!r}")
        try:
            if endpoint == "embeddings":
                return await self._embeddings(req, body, headers, timing, fault)
            fmt = self._format(req, provider, endpoint, body)
            if stream:
                return await self._stream(request, req, fmt, headers, timing, fault)
            return await self._complete(req, fmt, headers, timing, fault)
        finally:
            req.wall_end = time.perf_counter()
            if not req.done:
                req.cancelled = True
            else:
                req.release()

    def _fault_429_headers(self, provider: str) -> dict[str, str]:
        if provider == "anthropic":
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            return {
                "retry-after": "1",
                "anthropic-ratelimit-requests-limit": "1",
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": now,
            }
        return {
            "retry-after": "1",
            "retry-after-ms": "20",
            "x-ratelimit-limit-requests": "1",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "20ms",
        }

    def _plan_output(
        self, request: web.Request, req: SimRequest, provider: str, endpoint: str, body: dict[str, Any]
    ) -> None:
        """Decide output length, reasoning, tool calls and finish reason before any work is queued."""
        if endpoint == "embeddings":
            return
        wanted = _int_header(request, "x-sim-output-tokens")
        visible = wanted if wanted is not None else self.fleet.default_output_tokens(req.prompt, req.revision)
        reasoning = _int_header(request, "x-sim-reasoning-tokens") or 0
        tools = [t.strip() for t in request.headers.get("x-sim-tool-calls", "").split(",") if t.strip()]
        req.tool_calls = tools
        req.finish = "tool_calls" if tools else "stop"
        if tools:
            visible = max(visible, len(tools))
        limit = self._max_tokens(provider, endpoint, body)
        if limit is not None and reasoning + visible > limit:
            reasoning = min(reasoning, limit)
            visible = max(0, limit - reasoning)
            req.finish = "length"
        req.visible_tokens = visible
        req.reasoning_tokens = reasoning
        if req.decode_tokens == 0:  # a model always decodes at least one token (the stop token)
            req.reasoning_tokens = 1

    @staticmethod
    def _format(req: SimRequest, provider: str, endpoint: str, body: dict[str, Any]) -> Any:
        opts = body.get("stream_options")
        include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
        if provider == "anthropic":
            return anthropic_api.MessageFormat(req)
        if endpoint == "completions":
            return openai_api.CompletionFormat(req, include_usage)
        if endpoint == "responses":
            return openai_api.ResponsesFormat(req)
        return openai_api.ChatFormat(req, include_usage)

    async def _wait_done(self, req: SimRequest) -> None:
        while not req.done:
            await req.wait_progress()

    async def _complete(
        self, req: SimRequest, fmt: Any, headers: dict[str, str], timing: str, fault: Fault
    ) -> web.StreamResponse:
        await self._wait_done(req)
        if fault.kind == "slow_first_byte":
            await asyncio.sleep(fault.seconds)
        body = fmt.body(fault.kind != "missing_usage", fault.kind == "wrong_type_usage", fault.kind == "huge_response")
        apply_body_timing(timing, req, body, stream=False)
        headers.update(header_timing(timing, req, final=True))
        raw = _dumps(body).encode()
        if fault.kind == "malformed_json":
            raw = raw[: max(1, len(raw) // 2)]
        req.wall_first_chunk_sent = time.perf_counter()
        return web.Response(body=raw, headers=headers, content_type="application/json")

    async def _embeddings(
        self, req: SimRequest, body: dict[str, Any], headers: dict[str, str], timing: str, fault: Fault
    ) -> web.StreamResponse:
        await self._wait_done(req)
        inputs = body.get("input")
        n = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
        dims = body.get("dimensions")
        out = openai_api.embedding_body(
            req, n, dims if isinstance(dims, int) and dims > 0 else 64, str(body.get("encoding_format") or "float")
        )
        headers.update(header_timing(timing, req, final=True))
        return web.Response(body=_dumps(out), headers=headers, content_type="application/json")

    async def _stream(
        self, request: web.Request, req: SimRequest, fmt: Any, headers: dict[str, str], timing: str, fault: Fault
    ) -> web.StreamResponse:
        named_events = req.provider == "anthropic" or req.endpoint == "responses"
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_type = "text/event-stream"
        resp.headers["Cache-Control"] = "no-cache"
        if fault.kind == "slow_first_byte":
            await asyncio.sleep(fault.seconds)
        if self._headers_at_first_token(req) or timing == "openai_processing_ms":
            while not req.done and req.produced <= req.reasoning_tokens:
                await req.wait_progress()
        resp.headers.update(header_timing(timing, req, final=False))

        def encode(events: list[dict[str, Any]]) -> str:
            if named_events:
                return "".join(f"event: {e['type']}\ndata: {_dumps(e)}\n\n" for e in events)
            return "".join(f"data: {_dumps(e)}\n\n" for e in events)

        # Hot path: formats that can pre-render a token's whole SSE event skip building and encoding a dict.
        token_sse: Callable[[int], str | None] = getattr(fmt, "token_sse", lambda _i: None)

        try:
            await resp.prepare(request)
            sent = 0
            head_sent = False
            while True:
                avail = min(req.visible_tokens, max(0, req.produced - req.reasoning_tokens))
                buf: list[str] = []
                if not head_sent and (avail > 0 or req.done):
                    buf.append(encode(fmt.head()))
                    head_sent = True
                while sent < avail:
                    if fault.kind in ("stall", "disconnect_after") and sent == fault.after_chunk:
                        if buf:
                            await resp.write("".join(buf).encode())
                            buf = []
                        if fault.kind == "disconnect_after":
                            self._disconnect(request, req)
                            return resp
                        await asyncio.sleep(fault.seconds)
                        fault = NO_FAULT
                    fast = token_sse(sent)
                    if fast is not None:
                        buf.append(fast)
                    else:
                        tok = fmt.token(sent)
                        buf.append(encode(tok if isinstance(tok, list) else [tok]))
                    sent += 1
                    if sent == 1 and fault.kind in ("malformed_sse", "error_event", "malformed_json"):
                        req.wall_first_chunk_sent = time.perf_counter()
                        await resp.write("".join(buf).encode())
                        await self._broken_stream(resp, req, fault)
                        return resp
                if buf:
                    if sent and not req.wall_first_chunk_sent:  # stamped before the write: it may yield
                        req.wall_first_chunk_sent = time.perf_counter()
                    await resp.write("".join(buf).encode())
                if req.done and sent >= req.visible_tokens:
                    break
                if req.done or min(req.visible_tokens, req.produced - req.reasoning_tokens) > sent:
                    continue  # tokens arrived while we were writing or stalling: no wake-up will come for them
                await req.wait_progress()
            tail = fmt.tail(fault.kind != "missing_usage", fault.kind == "wrong_type_usage")
            if tail:
                apply_body_timing(timing, req, tail[-1 if req.provider != "anthropic" else -2], stream=True)
            out = encode(tail)
            if not named_events:
                out += "data: [DONE]\n\n"
            await resp.write(out.encode())
            await resp.write_eof()
        except ConnectionResetError:  # the client went away; the replica drops the sequence at its next step
            req.cancelled = True
        except asyncio.CancelledError:
            req.cancelled = True
            raise
        return resp

    def _headers_at_first_token(self, req: SimRequest) -> bool:
        """The region's setting, else the fleet's: hosted APIs send stream headers with the first token."""
        own = req.region.headers_at_first_token if req.region is not None else None
        return self.config.headers_at_first_token if own is None else own

    @staticmethod
    def _disconnect(request: web.Request, req: SimRequest) -> None:
        """Cut the connection mid-body: the client sees an incomplete chunked response."""
        req.cancelled = True
        transport = request.transport
        if transport is not None:
            transport.close()

    async def _broken_stream(self, resp: web.StreamResponse, req: SimRequest, fault: Fault) -> None:
        if fault.kind == "error_event":
            if req.provider == "anthropic":
                err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
                await resp.write(f"event: error\ndata: {_dumps(err)}\n\n".encode())
            else:
                err2 = {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                await resp.write(f"data: {_dumps(err2)}\n\n".encode())
        elif req.provider == "anthropic" or req.endpoint == "responses":
            await resp.write(b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "del\n\n')
        else:
            await resp.write(b'data: {"id": "broken", "choices": [{"delta": {"content": "x"\n\n')
        req.cancelled = True
        await resp.write_eof()


class SimServer:
    """A simulated provider fleet on 127.0.0.1, served from a background thread.

    ``SimServer(scenario_or_config=None, seed=None, speed=None)``: a scenario name/path, a SimConfig or a dict;
    ``seed``/``speed`` override the scenario's (the default fleet runs at speed 20, seed 1).
    Use as a context manager or call ``start()``/``close()``. ``close()`` is idempotent.
    """

    def __init__(
        self,
        scenario_or_config: SimConfig | dict[str, Any] | str | Path | None = None,
        seed: int | None = None,
        speed: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        config = resolve_config(scenario_or_config) if scenario_or_config is not None else default_config()
        if scenario_or_config is None and speed is None:
            speed = 20.0
        if seed is not None:
            config.seed = seed
        if speed is not None:
            if speed <= 0:
                raise ConfigError("speed must be > 0")
            config.speed = speed
        self.config = config
        self.host = host
        self.port = port
        self.app = SimApp(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def fleet(self) -> Fleet:
        return self.app.fleet

    def truth(self, request_id: str) -> dict[str, Any]:
        """Ground truth of one request (KeyError if unknown). Thread-safe enough for tests: read-only copy."""
        t = self.app.truth(request_id)
        if t is None:
            raise KeyError(request_id)
        return t

    def truths(self) -> list[dict[str, Any]]:
        """Ground truth of every request seen so far, in arrival order."""
        return [r.truth() for r in list(self.app.fleet.truths.values())]

    def start(self) -> SimServer:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="llmotel-sim", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"simulator failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
            loop.run_forever()
        except BaseException as exc:  # surfaced to start()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._runner = await start_runner(self.app, self.host, self.port)
        sockets = self._runner.addresses
        self.port = int(sockets[0][1])
        self._ready.set()

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(10)
        self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()


async def start_runner(app: SimApp, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app.build(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    return runner
