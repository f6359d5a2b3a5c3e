"""The SDK fault suite's cases: each runs with and without llmotel; what the user sees must not change.

See ``_rel.check`` for what is asserted per case. Cases are named ``<provider>_<fault>[_<variant>]``;
each runs real openai / anthropic clients over loopback against the simulator's ``x-sim-fault``
controls or, for faults the simulator does not make, ``_canned.CannedServer``'s exact bytes.
The test modules ``test_faults_openai.py`` / ``test_faults_anthropic.py`` run them (two files, so
``pytest -n 2 --dist loadfile`` spreads them over both workers).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import wrapt
from _rel import CLAUDE, GPT, MSGS, Case, Env, Tel, llm_spans

# ---- scenario builders ---------------------------------------------------------------------------


def _h(fault: str = "", tokens: int = 5, times: int = 0, canned: str = "") -> dict[str, str]:
    h = {"x-sim-output-tokens": str(tokens)}
    if fault:
        h["x-sim-fault"] = fault
    if times:
        h["x-sim-fault-times"] = str(times)
    if canned:
        h["x-canned"] = canned
    return h


def oai(
    fault: str = "",
    *,
    stream: bool = False,
    usage: bool = False,
    canned: str = "",
    times: int = 0,
    client: dict[str, Any] | None = None,
    endpoint: str = "chat",
) -> Any:
    def run(env: Env) -> Any:
        c = env.openai(canned=bool(canned), **(client or {}))
        headers = _h(fault, times=times, canned=canned)
        if endpoint == "responses":
            r: Any = c.responses.create(model=GPT, input="Say something short.", stream=stream, extra_headers=headers)
        else:
            kw: dict[str, Any] = {"stream_options": {"include_usage": True}} if usage else {}
            r = c.chat.completions.create(model=GPT, messages=MSGS, stream=stream, extra_headers=headers, **kw)
        return list(r) if stream else r

    return run


def aoai(fault: str = "", *, stream: bool = False, times: int = 0, client: dict[str, Any] | None = None) -> Any:
    async def run(env: Env) -> Any:
        c = env.aopenai(**(client or {}))
        r: Any = await c.chat.completions.create(
            model=GPT, messages=MSGS, stream=stream, extra_headers=_h(fault, times=times)
        )
        return [ch async for ch in r] if stream else r

    return run


def ant(
    fault: str = "", *, stream: bool = False, canned: str = "", times: int = 0, client: dict[str, Any] | None = None
) -> Any:
    def run(env: Env) -> Any:
        c = env.anthropic(canned=bool(canned), **(client or {}))
        r: Any = c.messages.create(
            model=CLAUDE,
            max_tokens=64,
            messages=MSGS,
            stream=stream,
            extra_headers=_h(fault, times=times, canned=canned),
        )
        return list(r) if stream else r

    return run


def aant(fault: str = "", *, stream: bool = False, times: int = 0, client: dict[str, Any] | None = None) -> Any:
    async def run(env: Env) -> Any:
        c = env.aanthropic(**(client or {}))
        r: Any = await c.messages.create(
            model=CLAUDE, max_tokens=64, messages=MSGS, stream=stream, extra_headers=_h(fault, times=times)
        )
        return [ev async for ev in r] if stream else r

    return run


def ant_helper(fault: str = "", *, early_exit: bool = False) -> Any:
    """The ``messages.stream()`` helper: text_stream, then the final message (or leave the block early)."""

    def run(env: Env) -> Any:
        c = env.anthropic()
        with c.messages.stream(model=CLAUDE, max_tokens=64, messages=MSGS, extra_headers=_h(fault, tokens=8)) as s:
            texts = []
            for t in s.text_stream:
                texts.append(t)
                if early_exit and len(texts) == 2:
                    return texts
            return texts, s.get_final_message()

    return run


# ---- user-side stream handling ------------------------------------------------------------------


def early_break(provider: str, close: bool) -> Any:
    def run(env: Env) -> Any:
        if provider == "openai":
            s: Any = env.openai().chat.completions.create(
                model=GPT, messages=MSGS, stream=True, extra_headers=_h(tokens=20)
            )
        else:
            s = env.anthropic().messages.create(
                model=CLAUDE, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(tokens=20)
            )
        got = []
        for ev in s:
            got.append(ev)
            if len(got) == 3:
                break
        if close:
            s.close()
        return got, getattr(s.response, "is_closed", None)

    return run


def abandoned(provider: str) -> Any:
    """Read one event, drop every reference; the stream is collected (the span ends at the last chunk seen)."""

    def run(env: Env) -> Any:
        if provider == "openai":
            s: Any = env.openai().chat.completions.create(
                model=GPT, messages=MSGS, stream=True, extra_headers=_h(tokens=20)
            )
        else:
            s = env.anthropic().messages.create(
                model=CLAUDE, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(tokens=20)
            )
        first = next(iter(s))
        del s
        gc.collect()
        return first

    return run


async def _aoai_abandoned(env: Env) -> Any:
    s: Any = await env.aopenai().chat.completions.create(
        model=GPT, messages=MSGS, stream=True, extra_headers=_h(tokens=20)
    )
    first = await s.__anext__()
    await s.close()  # an async stream cannot be closed from __del__; apps close it (or leak the socket)
    del s
    gc.collect()
    return first


class UserBug(Exception):
    pass


def user_raises(provider: str) -> Any:
    def run(env: Env) -> Any:
        if provider == "openai":
            s: Any = env.openai().chat.completions.create(
                model=GPT, messages=MSGS, stream=True, extra_headers=_h(tokens=9)
            )
        else:
            s = env.anthropic().messages.create(
                model=CLAUDE, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h(tokens=9)
            )
        for i, _ in enumerate(s):
            if i == 2:
                raise UserBug("bug in the user's loop at event 2")
        return "unreachable"

    return run


async def _aant_user_raises_in_with(env: Env) -> Any:
    c = env.aanthropic()
    async with c.messages.stream(model=CLAUDE, max_tokens=64, messages=MSGS, extra_headers=_h(tokens=9)) as s:
        async for i, _ in _aenumerate(s.text_stream):
            if i == 2:
                raise UserBug("bug inside async with at text 2")
    return "unreachable"


async def _aenumerate(it: Any) -> Any:
    i = 0
    async for x in it:
        yield i, x
        i += 1


def cancelled(provider: str) -> Any:
    """A task consuming a stream is cancelled while it awaits the next event (a client disconnect in a web app)."""

    async def run(env: Env) -> Any:
        got: list[Any] = []
        third = asyncio.Event()

        async def consume() -> None:
            if provider == "openai":
                s: Any = await env.aopenai().chat.completions.create(
                    model=GPT, messages=MSGS, stream=True, extra_headers=_h("stall:4:5", tokens=9)
                )
            else:
                s = await env.aanthropic().messages.create(
                    model=CLAUDE, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h("stall:4:5", tokens=9)
                )
            async for ev in s:
                got.append(ev)
                if len(got) == 3:
                    third.set()

        task = asyncio.create_task(consume())
        await third.wait()
        await asyncio.sleep(0.3)  # the consumer is now blocked in the stream, at the server's stall
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return ("cancelled", got)
        return ("finished", got)

    return run


def thread_pool(provider: str, n: int = 8) -> Any:
    def run(env: Env) -> Any:
        if provider == "openai":
            c: Any = env.openai()

            def one(i: int) -> Any:
                s = c.chat.completions.create(
                    model=GPT,
                    messages=[{"role": "user", "content": f"q{i}"}],
                    stream=i % 2 == 0,
                    extra_headers=_h(tokens=4 + i % 3),
                )
                # Texts depend on arrival order at the simulator (racy with or without llmotel): compare shapes.
                if i % 2 == 0:
                    return ["chunk" for ch in s if ch.choices]
                return len(s.choices[0].message.content.split())
        else:
            c = env.anthropic()

            def one(i: int) -> Any:
                r = c.messages.create(
                    model=CLAUDE,
                    max_tokens=64,
                    messages=[{"role": "user", "content": f"q{i}"}],
                    stream=i % 2 == 0,
                    extra_headers=_h(tokens=4 + i % 3),
                )
                return [ev.type for ev in r] if i % 2 == 0 else len(r.content[0].text.split())  # type: ignore[union-attr]

        with ThreadPoolExecutor(4) as pool:
            return sorted(map(json.dumps, pool.map(one, range(n))))

    return run


async def _gather(env: Env) -> Any:
    c = env.aopenai()

    async def one(i: int) -> Any:
        r = await c.chat.completions.create(
            model=GPT, messages=[{"role": "user", "content": f"g{i}"}], extra_headers=_h(tokens=3 + i)
        )
        return len(r.choices[0].message.content.split())

    return sorted(await asyncio.gather(*(one(i) for i in range(6))))


def forked(provider: str) -> Any:
    """fork() after instrumenting: the child calls, reports its outcome and its own span count over a pipe."""

    def run(env: Env) -> Any:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                got = (oai() if provider == "openai" else ant())(env)
                spans = len(llm_spans(env.tel.take()))
                out = {
                    "text": str(got.choices[0].message.content if provider == "openai" else got.content[0].text),
                    "spans_ok": spans == (1 if env.instrumented else 0),
                }
                os.write(w, json.dumps(out).encode())
            except BaseException as exc:
                os.write(w, json.dumps({"error": repr(exc)}).encode())
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        return json.loads(data), os.waitstatus_to_exitcode(status)

    return run


# ---- another instrumentation active ----------------------------------------------------------------

_TARGETS = {
    "openai": ("openai.resources.chat.completions.completions", "Completions"),
    "anthropic": ("anthropic.resources.messages.messages", "Messages"),
}
_calls_seen: list[str] = []


def _other_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    _calls_seen.append("other")
    return wrapped(*args, **kwargs)


def _other_wrap(when: str, provider: str = "openai") -> Any:
    """Another (non-llmotel) wrapt instrumentation of chat.completions.create, applied before or after llmotel."""

    def before(tel: Tel) -> Any:
        import importlib

        module, cls = _TARGETS[provider]
        owner = getattr(importlib.import_module(module), cls)
        original = owner.__dict__["create"]
        if when == "first":
            wrapt.wrap_function_wrapper(owner, "create", _other_wrapper)
        else:
            real = tel.instrument

            def instrument_then_wrap() -> None:
                real()
                wrapt.wrap_function_wrapper(owner, "create", _other_wrapper)

            tel.instrument = instrument_then_wrap  # type: ignore[method-assign]
        return owner, original

    return before


def _other_unwrap(tel: Tel, state: Any) -> None:
    owner, original = state
    owner.create = original
    tel.__dict__.pop("instrument", None)
    n = len(_calls_seen)
    _calls_seen.clear()
    assert n > 0, "the other instrumentation was bypassed"


def _native_on(env: Env) -> Any:
    """The anthropic SDK's own tracing on, into the same tracer provider as llmotel."""
    c = env.anthropic(open_telemetry={"tracer_provider": env.tel.tp})
    s = c.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS, stream=True, extra_headers=_h())
    return list(s)


# ---- OTLP exporter down or slow -----------------------------------------------------------------------


def _otlp(kind: str) -> Any:
    """A real OTLP/HTTP exporter behind a BatchSpanProcessor pointed at a closed port ("down") or at a
    receiver that answers after 2 s ("slow"). The in-memory exporter still sees the span; the OTLP one
    cannot deliver it (down) or delivers it late (slow) — in both cases off the app's thread."""

    def before(tel: Tel) -> Any:
        from _otlp_receiver import OtlpReceiver, closed_port
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        receiver = None
        if kind == "down":
            endpoint = f"http://127.0.0.1:{closed_port()}/v1/traces"
        else:
            receiver = OtlpReceiver(delay_s=2.0).start()
            endpoint = receiver.url + "/v1/traces"
        proc = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=1), schedule_delay_millis=50)
        tel.add_processor(proc)
        return proc, receiver

    return before


def _otlp_after(tel: Tel, state: Any) -> None:
    proc, receiver = state
    proc.shutdown()
    if receiver is not None:
        receiver.close()


# ---- the cases -------------------------------------------------------------------------------------------

_TIMEOUT = {"timeout": 0.3}
_RETRY = {"max_retries": 2}

CASES: list[Case] = [
    # malformed JSON bodies
    Case("openai_malformed_json", oai("malformed_json")),
    Case("openai_malformed_json_async", aoai("malformed_json")),
    Case("anthropic_malformed_json", ant("malformed_json")),
    Case("anthropic_malformed_json_async", aant("malformed_json")),
    Case("openai_body_empty", oai(canned="oai_body_empty")),
    Case("openai_body_not_object", oai(canned="oai_body_not_object")),
    Case("openai_body_nan_usage", oai(canned="oai_body_nan")),
    Case("anthropic_body_not_object", ant(canned="ant_body_not_object")),
    # malformed and truncated SSE
    Case("openai_malformed_sse", oai("malformed_sse", stream=True)),
    Case("openai_responses_malformed_sse", oai("malformed_sse", stream=True, endpoint="responses")),
    Case("anthropic_malformed_sse", ant("malformed_sse", stream=True)),
    Case("openai_truncated_sse", oai(canned="oai_truncated_sse", stream=True)),
    Case("openai_truncated_mid_event", oai(canned="oai_truncated_mid_event", stream=True)),
    Case("anthropic_truncated_sse", ant(canned="ant_truncated_sse", stream=True)),
    Case("anthropic_truncated_mid_event", ant(canned="ant_truncated_mid_event", stream=True)),
    # unknown event types
    Case("openai_unknown_events", oai(canned="oai_unknown_events", stream=True)),
    Case(
        "openai_responses_unknown_events", oai(canned="oai_responses_unknown_events", stream=True, endpoint="responses")
    ),
    Case("anthropic_unknown_events", ant(canned="ant_unknown_events", stream=True)),
    # missing usage
    Case("openai_missing_usage", oai("missing_usage")),
    Case("openai_missing_usage_stream", oai("missing_usage", stream=True, usage=True)),
    Case("anthropic_missing_usage", ant("missing_usage")),
    Case("anthropic_missing_usage_stream", ant("missing_usage", stream=True)),
    # wrong types in usage and elsewhere
    Case("openai_wrong_type_usage", oai("wrong_type_usage")),
    Case("openai_wrong_type_usage_stream", oai("wrong_type_usage", stream=True, usage=True)),
    Case("openai_responses_wrong_type_usage", oai("wrong_type_usage", endpoint="responses")),
    Case("anthropic_wrong_type_usage", ant("wrong_type_usage")),
    Case("anthropic_wrong_type_usage_stream", ant("wrong_type_usage", stream=True)),
    Case("openai_wrong_types_stream", oai(canned="oai_wrong_types_stream", stream=True)),
    Case("openai_body_wrong_types", oai(canned="oai_body_wrong_types")),
    Case("anthropic_wrong_types_stream", ant(canned="ant_wrong_types_stream", stream=True)),
    Case("anthropic_body_wrong_types", ant(canned="ant_body_wrong_types")),
    # huge responses
    Case("openai_huge_response", oai("huge_response")),
    Case("openai_responses_huge_response", oai("huge_response", endpoint="responses")),
    Case("anthropic_huge_response", ant("huge_response")),
    # mid-stream disconnect and error events
    Case("openai_disconnect_mid_stream", oai("disconnect_after:2", stream=True)),
    Case("openai_disconnect_mid_stream_async", aoai("disconnect_after:2", stream=True)),
    Case("anthropic_disconnect_mid_stream", ant("disconnect_after:2", stream=True)),
    Case("anthropic_disconnect_mid_stream_async", aant("disconnect_after:2", stream=True)),
    Case("openai_error_event", oai("error_event", stream=True)),
    Case("anthropic_error_event", ant("error_event", stream=True)),
    Case("anthropic_error_event_helper", ant_helper("error_event")),
    # early break, abandoned streams, exceptions in the user's loop, cancellation
    Case("openai_early_break", early_break("openai", close=False)),
    Case("openai_early_break_close", early_break("openai", close=True)),
    Case("anthropic_early_break", early_break("anthropic", close=False)),
    Case("anthropic_helper_early_exit", ant_helper(early_exit=True)),
    Case("openai_abandoned_gc", abandoned("openai")),
    Case("openai_abandoned_async_closed", _aoai_abandoned),
    Case("anthropic_abandoned_gc", abandoned("anthropic")),
    Case("openai_user_exception_in_loop", user_raises("openai")),
    Case("anthropic_user_exception_in_loop", user_raises("anthropic")),
    Case("anthropic_user_exception_in_async_with", _aant_user_raises_in_with),
    Case("openai_cancelled_mid_stream", cancelled("openai")),
    Case("anthropic_cancelled_mid_stream", cancelled("anthropic")),
    # timeouts
    Case("openai_timeout_first_byte", oai("slow_first_byte:1", client=_TIMEOUT)),
    Case("openai_timeout_stream_stall", oai("stall:2:1", stream=True, client=_TIMEOUT)),
    Case("anthropic_timeout_first_byte", ant("slow_first_byte:1", client=_TIMEOUT)),
    Case("anthropic_timeout_stream_stall", ant("stall:2:1", stream=True, client=_TIMEOUT)),
    # retries and 429 / 5xx / 529
    Case("openai_429_retried", oai("rate_limit_429", times=1, client=_RETRY)),
    Case("openai_500_retried_stream", oai("http_500", times=1, stream=True, client=_RETRY)),
    Case("anthropic_529_retried", ant("overloaded_529", times=1, client=_RETRY)),
    Case("anthropic_500_retried_async_stream", aant("http_500", times=1, stream=True, client=_RETRY)),
    Case("openai_429", oai("rate_limit_429")),
    Case("openai_500", oai("http_500")),
    Case("openai_529", oai("overloaded_529")),
    Case("openai_529_retries_exhausted", oai("overloaded_529", client={"max_retries": 1})),
    Case("anthropic_429", ant("rate_limit_429")),
    Case("anthropic_500_async", aant("http_500")),
    Case("anthropic_529", ant("overloaded_529")),
    # concurrency and processes
    Case("openai_thread_pool", thread_pool("openai"), spans=8),
    Case("anthropic_thread_pool", thread_pool("anthropic"), spans=8),
    Case("openai_asyncio_gather", _gather, spans=6),
    Case(
        "openai_fork_after_instrument",
        forked("openai"),
        spans=0,
        reps=1,
        no_span="exported by the child process into its copy of the exporter; the child asserts it (spans_ok)",
    ),
    Case(
        "anthropic_fork_after_instrument",
        forked("anthropic"),
        spans=0,
        reps=1,
        no_span="exported by the child process into its copy of the exporter; the child asserts it (spans_ok)",
    ),
    # another instrumentation already active
    Case("openai_other_wrapt_wrapper_inside", oai(), before=_other_wrap("first"), after=_other_unwrap),
    Case("openai_other_wrapt_wrapper_outside", oai(stream=True), before=_other_wrap("last"), after=_other_unwrap),
    Case(
        "anthropic_other_wrapt_wrapper_outside",
        ant(stream=True),
        before=_other_wrap("last", "anthropic"),
        after=_other_unwrap,
    ),
    Case("anthropic_sdk_native_tracing_on", _native_on),
    # OTLP exporter endpoint down or slow
    Case("openai_otlp_exporter_down", oai(stream=True), before=_otlp("down"), after=_otlp_after),
    Case("anthropic_otlp_exporter_down", ant(), before=_otlp("down"), after=_otlp_after),
    Case("openai_otlp_exporter_slow", oai(), before=_otlp("slow"), after=_otlp_after),
]
