"""Agent runs, announced plans and executed tools as GenAI spans, with in-process plan adherence.

    with llmotel.agent_run("travel-planner") as run:
        run.plan(["search", "compare", "book"], tools=["search_flights", None, "book_flight"])
        with llmotel.tool("search_flights", call_id=call.id):
            ...

* ``agent_run`` -> INTERNAL span ``invoke_agent {name}``; when it ends it carries the executed tools, the effective
  plan and the adherence scores (docs/agents.md), and ``run.adherence`` holds the same numbers in process.
* ``run.plan(...)`` -> a ``plan {name}`` span with the steps, the expected tools and a revision number (0, 1, ...).
  Wrap the planning LLM call in ``with run.planning():`` to make it the plan span's child (GenAI conventions).
* ``tool(...)`` / ``run.tool(...)`` -> INTERNAL span ``execute_tool {name}``, recorded on the innermost run.

The current run travels in a ContextVar, so asyncio tasks inherit it; a plain thread does not inherit context, so
pass the run explicitly (``run.tool(...)``) or run the thread's work in ``contextvars.copy_context()``.
Instrumentation errors are logged at debug and never reach the user's code; the user's exceptions pass through
unchanged (and mark the span as an error).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from llmotel import _semconv as sc
from llmotel import forksafe
from llmotel.agent.adherence import Adherence, Revision, score

_log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Attribute arrays on the run span are capped so a run of thousands of tool calls cannot make a huge span;
# the scores themselves are computed on everything.
MAX_RECORDED_NAMES = 256

_OP_INVOKE_AGENT = "invoke_agent"
_OP_PLAN = "plan"
_OP_EXECUTE_TOOL = "execute_tool"

_current_run: ContextVar[AgentRun | None] = ContextVar("llmotel_agent_run", default=None)
_current_planning: ContextVar[_Planning | None] = ContextVar("llmotel_agent_planning", default=None)


_spans_module: Any = None


def _tracer() -> trace.Tracer:
    """The tracer the LLM call spans use (so a tracer_provider given to the instrumentor covers agent spans too)."""
    global _spans_module
    if _spans_module is None:
        # Imported on first use: llmotel/__init__ imports this module before spans can be imported.
        from llmotel.telemetry import spans

        _spans_module = spans
    tracer: trace.Tracer = _spans_module._state.tracer
    return tracer


def _capture_content() -> tuple[bool, int]:
    """Whether content capture is on, and the size cap, from the process default settings (``llmotel.configure``):
    an agent run is not tied to one instrumentor. Never raises (a bad setting means off)."""
    try:
        from llmotel import config

        cfg = config.get()
        return cfg.capture_content, cfg.content_max_chars
    except Exception:
        return False, 0


def current_run() -> AgentRun | None:
    """The innermost agent run of the calling context, or None."""
    return _current_run.get()


@dataclass
class _Segment:
    planned: tuple[str, ...]
    tool_set: frozenset[str]
    executed: list[str] = field(default_factory=list)


@dataclass
class _Planning:
    run: AgentRun
    span: Span
    announced: bool = False


def _error_type(exc: BaseException) -> str:
    return type(exc).__qualname__


def _mark_error(span: Span, exc: BaseException) -> None:
    # The message may hold user content, so only the exception's class is recorded (error.type + status).
    span.set_attribute(sc.ERROR_TYPE, _error_type(exc))
    span.set_status(Status(StatusCode.ERROR, _error_type(exc)))


class AgentRun:
    """One agent run: its span, its plan revisions and the tools it executed. Thread- and task-safe."""

    def __init__(self, name: str, agent_id: str | None, span: Span) -> None:
        self.name = name
        self.agent_id = agent_id
        self.span = span
        self.adherence: Adherence | None = None
        """Set when the run ends (None before, or if the run never announced a plan)."""
        self._lock = forksafe.lock(self)
        self._unplanned: list[str] = []
        self._segments: list[_Segment] = []

    # -- plans -------------------------------------------------------------------------------------------------
    def plan(
        self,
        steps: Sequence[str],
        tools: Sequence[str | None] | None = None,
        arguments: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> int:
        """Announce the steps still to do (again to re-plan) and return the revision number (0, 1, ...).

        ``tools[i]`` is the tool step i expects (None or absent: the step name itself). ``arguments`` are recorded
        only when content capture is on. Raises TypeError/ValueError on malformed input before recording anything.
        """
        if isinstance(steps, (str, bytes)):
            raise TypeError("steps must be a sequence of step names, not a single string; use plan([step])")
        names = [str(s) for s in steps]
        if tools is not None and len(tools) != len(names):
            raise ValueError(f"tools has {len(tools)} entries for {len(names)} steps; give one per step (None = step)")
        if arguments is not None and len(arguments) != len(names):
            raise ValueError(f"arguments has {len(arguments)} entries for {len(names)} steps; give one per step")
        if tools is None:
            expected = tuple(names)
        else:
            expected = tuple(str(t) if t is not None else s for t, s in zip(tools, names, strict=True))
        with self._lock:
            revision = len(self._segments)
            self._segments.append(_Segment(expected, frozenset(expected)))
        try:
            self._emit_plan(revision, names, expected, arguments)
        except Exception:
            _log.debug("llmotel: recording the plan failed", exc_info=True)
        return revision

    def _emit_plan(
        self,
        revision: int,
        steps: list[str],
        expected: tuple[str, ...],
        arguments: Sequence[Mapping[str, Any] | None] | None,
    ) -> None:
        attrs: dict[str, AttributeValue] = {
            sc.GEN_AI_OPERATION_NAME: _OP_PLAN,
            sc.GEN_AI_AGENT_NAME: self.name,
            sc.LLMOTEL_PLAN_STEPS: steps,
            sc.LLMOTEL_PLAN_TOOLS: list(expected),
            sc.LLMOTEL_PLAN_REVISION: revision,
        }
        if self.agent_id is not None:
            attrs[sc.GEN_AI_AGENT_ID] = self.agent_id
        if arguments is not None:
            capture, max_chars = _capture_content()
            if capture:
                attrs[sc.LLMOTEL_PLAN_ARGUMENTS] = json.dumps(list(arguments), default=str)[:max_chars]
        planning = _current_planning.get()
        if planning is not None and planning.run is self and not planning.announced:
            planning.announced = True
            planning.span.set_attributes(attrs)
            return
        span = _tracer().start_span(
            f"{_OP_PLAN} {self.name}", context=self._parent_context(), kind=SpanKind.INTERNAL, attributes=attrs
        )
        span.end()

    @contextmanager
    def planning(self) -> Iterator[Span]:
        """Time the planning phase: a ``plan`` span whose children are the LLM calls made inside the block.

        The first ``plan()`` inside the block puts its steps on this span instead of a separate one.
        """
        span: Span = INVALID_SPAN
        token: object | None = None
        ptoken: Token[_Planning | None] | None = None
        try:
            attrs: dict[str, AttributeValue] = {sc.GEN_AI_OPERATION_NAME: _OP_PLAN, sc.GEN_AI_AGENT_NAME: self.name}
            span = _tracer().start_span(
                f"{_OP_PLAN} {self.name}", context=self._parent_context(), kind=SpanKind.INTERNAL, attributes=attrs
            )
            token = otel_context.attach(trace.set_span_in_context(span))
            ptoken = _current_planning.set(_Planning(self, span))
        except Exception:
            _log.debug("llmotel: starting the plan span failed", exc_info=True)
        try:
            yield span
        except BaseException as exc:
            _mark_error(span, exc)
            raise
        finally:
            _restore(token, ptoken, _current_planning)
            span.end()

    # -- tools -------------------------------------------------------------------------------------------------
    def tool(self, name: str | None = None, call_id: str | None = None) -> ToolScope:
        """Like the module-level ``tool()``, but recorded on this run even where the context lacks it (threads)."""
        return ToolScope(name, call_id, self)

    def _record_tool(self, name: str) -> tuple[int | None, bool]:
        """Append an executed tool; return the revision in force (None before any plan) and whether it is planned."""
        with self._lock:
            if not self._segments:
                self._unplanned.append(name)
                return None, False
            segment = self._segments[-1]
            segment.executed.append(name)
            return len(self._segments) - 1, name in segment.tool_set

    # -- results -----------------------------------------------------------------------------------------------
    @property
    def revision(self) -> int | None:
        """The revision in force, None before the first plan."""
        with self._lock:
            return len(self._segments) - 1 if self._segments else None

    @property
    def executed(self) -> tuple[str, ...]:
        """Every tool executed so far in this run, in start order."""
        with self._lock:
            return tuple(self._unplanned) + tuple(name for s in self._segments for name in s.executed)

    def score(self) -> Adherence:
        """The adherence of the run so far (the final numbers are in ``adherence`` once the run ends)."""
        with self._lock:
            revisions = [Revision(s.planned, tuple(s.executed)) for s in self._segments]
            unplanned = tuple(self._unplanned)
        return score(revisions, unplanned)

    def _parent_context(self) -> otel_context.Context:
        # Inside this run's own context keep the current span as parent (e.g. a tool span); elsewhere (another
        # thread) hang the span under the run so the trace stays one tree.
        if _current_run.get() is self:
            return otel_context.get_current()
        return trace.set_span_in_context(self.span)

    def _finish(self) -> None:
        with self._lock:
            planned_any = bool(self._segments)
        result = self.score()
        attrs: dict[str, AttributeValue] = {sc.LLMOTEL_AGENT_EXECUTED_TOOLS: list(result.executed[:MAX_RECORDED_NAMES])}
        if planned_any:
            self.adherence = result
            attrs.update(
                {
                    sc.LLMOTEL_AGENT_PLANNED_TOOLS: list(result.planned[:MAX_RECORDED_NAMES]),
                    sc.LLMOTEL_AGENT_ADHERENCE_ORDERED: result.ordered,
                    sc.LLMOTEL_AGENT_ADHERENCE_PRECISION: result.precision,
                    sc.LLMOTEL_AGENT_ADHERENCE_RECALL: result.recall,
                    sc.LLMOTEL_AGENT_STEPS_SKIPPED: result.skipped,
                    sc.LLMOTEL_AGENT_STEPS_EXTRA: result.extra,
                    sc.LLMOTEL_AGENT_STEPS_REORDERED: result.reordered,
                    sc.LLMOTEL_AGENT_REPLANS: result.replans,
                }
            )
        self.span.set_attributes(attrs)


def _restore(otel_token: object | None, token: Token[Any] | None, var: ContextVar[Any]) -> None:
    """Undo the context changes of a scope. Never raises (a scope exited in another context only logs)."""
    try:
        if token is not None:
            var.reset(token)
        if otel_token is not None:
            otel_context.detach(cast("Token[otel_context.Context]", otel_token))
    except Exception:
        _log.debug("llmotel: scope exited in a different context than it was entered in", exc_info=True)


class _Scope:
    """Shared machinery: a context manager (sync and async) that is also a decorator making a fresh scope per call."""

    def _fresh(self) -> _Scope:
        raise NotImplementedError

    def _enter(self) -> Any:
        raise NotImplementedError

    def _exit(self, exc: BaseException | None) -> None:
        raise NotImplementedError

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit(exc)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit(exc)

    def _decorate(self, func: F) -> F:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(f"{func.__qualname__} is a generator; wrap the loop that consumes it in a with-block")
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                scope = self._fresh()
                scope._enter()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    scope._exit(exc)
                    raise
                scope._exit(None)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = self._fresh()
            scope._enter()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                scope._exit(exc)
                raise
            scope._exit(None)
            return result

        return cast(F, wrapper)


class RunScope(_Scope):
    """Returned by ``agent_run``: ``with`` / ``async with`` it, or decorate a function (a new run per call)."""

    def __init__(self, name: str, agent_id: str | None) -> None:
        self.name = name
        self.agent_id = agent_id
        self._stack: list[tuple[AgentRun, object | None, Token[AgentRun | None] | None]] = []

    def _fresh(self) -> RunScope:
        return RunScope(self.name, self.agent_id)

    def _enter(self) -> AgentRun:
        span: Span = INVALID_SPAN
        token: object | None = None
        rtoken: Token[AgentRun | None] | None = None
        try:
            attrs: dict[str, AttributeValue] = {
                sc.GEN_AI_OPERATION_NAME: _OP_INVOKE_AGENT,
                sc.GEN_AI_AGENT_NAME: self.name,
            }
            if self.agent_id is not None:
                attrs[sc.GEN_AI_AGENT_ID] = self.agent_id
            span = _tracer().start_span(f"{_OP_INVOKE_AGENT} {self.name}", kind=SpanKind.INTERNAL, attributes=attrs)
            token = otel_context.attach(trace.set_span_in_context(span))
        except Exception:
            _log.debug("llmotel: starting the agent span failed", exc_info=True)
        run = AgentRun(self.name, self.agent_id, span)
        rtoken = _current_run.set(run)
        self._stack.append((run, token, rtoken))
        return run

    def _exit(self, exc: BaseException | None) -> None:
        if not self._stack:
            return
        run, token, rtoken = self._stack.pop()
        try:
            run._finish()
            if exc is not None:
                _mark_error(run.span, exc)
        except Exception:
            _log.debug("llmotel: finishing the agent span failed", exc_info=True)
        _restore(token, rtoken, _current_run)
        run.span.end()

    def __enter__(self) -> AgentRun:
        return self._enter()

    async def __aenter__(self) -> AgentRun:
        return self._enter()

    def __call__(self, func: F) -> F:
        return self._decorate(func)


class ToolScope(_Scope):
    """Returned by ``tool`` / ``AgentRun.tool``: ``with`` / ``async with`` it (yields the span), or decorate."""

    def __init__(self, name: str | None, call_id: str | None, run: AgentRun | None) -> None:
        self.name = name
        self.call_id = call_id
        self.run = run
        self._stack: list[tuple[Span, object | None]] = []

    def _fresh(self) -> ToolScope:
        return ToolScope(self.name, self.call_id, self.run)

    def _enter(self) -> Span:
        if self.name is None:
            raise TypeError("tool() needs a name in a with-block (the decorator form defaults to the function name)")
        span: Span = INVALID_SPAN
        token: object | None = None
        try:
            run = self.run if self.run is not None else _current_run.get()
            attrs: dict[str, AttributeValue] = {
                sc.GEN_AI_OPERATION_NAME: _OP_EXECUTE_TOOL,
                sc.GEN_AI_TOOL_NAME: self.name,
            }
            if self.call_id is not None:
                attrs[sc.GEN_AI_TOOL_CALL_ID] = self.call_id
            parent: otel_context.Context | None = None
            if run is not None:
                revision, planned = run._record_tool(self.name)
                if revision is not None:
                    attrs[sc.LLMOTEL_PLAN_REVISION] = revision
                attrs[sc.LLMOTEL_TOOL_PLANNED] = planned
                parent = run._parent_context()
            span = _tracer().start_span(
                f"{_OP_EXECUTE_TOOL} {self.name}", context=parent, kind=SpanKind.INTERNAL, attributes=attrs
            )
            token = otel_context.attach(trace.set_span_in_context(span, parent))
        except Exception:
            _log.debug("llmotel: starting the tool span failed", exc_info=True)
        self._stack.append((span, token))
        return span

    def _exit(self, exc: BaseException | None) -> None:
        if not self._stack:
            return
        span, token = self._stack.pop()
        try:
            if exc is not None:
                _mark_error(span, exc)
        except Exception:
            _log.debug("llmotel: marking the tool span failed", exc_info=True)
        _restore(token, None, _current_run)
        span.end()

    def __enter__(self) -> Span:
        return self._enter()

    async def __aenter__(self) -> Span:
        return self._enter()

    def __call__(self, func: F) -> F:
        scope = self if self.name is not None else ToolScope(func.__name__, self.call_id, self.run)
        return scope._decorate(func)


def agent_run(name: str, agent_id: str | None = None) -> RunScope:
    """An agent run: ``with agent_run("travel-planner") as run:``, ``async with``, or ``@agent_run("...")``.

    Runs nest (a sub-agent is a run inside a run; tools count toward the innermost one). The span ends, with the
    adherence attributes, when the block or decorated call ends, also on an exception (which propagates unchanged).
    """
    return RunScope(name, agent_id)


def tool(name: str | None = None, call_id: str | None = None) -> ToolScope:
    """A tool execution: ``with tool("search_flights", call_id=c.id):`` or ``@tool()`` (name = function name).

    Recorded on the innermost agent run of the calling context, if any; outside a run only the span is made.
    """
    return ToolScope(name, call_id, None)
