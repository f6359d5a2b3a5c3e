"""Agent runs, plans and tools: span shape, adherence on the run span, decorators, async, nesting, threads."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from agent_spans import Captured, capture_spans, parent_id, span_id
from opentelemetry.trace import SpanKind, StatusCode

import llmotel
from llmotel import _semconv as sc
from llmotel.agent import run as agent_module


@pytest.fixture
def captured() -> Iterator[Captured]:
    yield from capture_spans()


def test_deviating_run_shows_the_deviation_on_the_run_span(captured: Captured) -> None:
    with llmotel.agent_run("travel-planner", agent_id="tp-1") as run:
        assert llmotel.current_run() is run
        revision = run.plan(["search", "compare", "book"], tools=["search_flights", None, "book_flight"])
        with llmotel.tool("search_flights", call_id="call_1"):
            pass
        with llmotel.tool("book_flight", call_id="call_2"):
            pass
        with llmotel.tool("send_email"):
            pass
    assert revision == 0
    assert llmotel.current_run() is None

    agent = captured.one("invoke_agent travel-planner")
    assert agent.kind == SpanKind.INTERNAL
    a = agent.attributes or {}
    assert a[sc.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert a[sc.GEN_AI_AGENT_NAME] == "travel-planner"
    assert a[sc.GEN_AI_AGENT_ID] == "tp-1"
    assert list(a[sc.LLMOTEL_AGENT_PLANNED_TOOLS]) == ["search_flights", "compare", "book_flight"]  # type: ignore[arg-type]
    assert list(a[sc.LLMOTEL_AGENT_EXECUTED_TOOLS]) == ["search_flights", "book_flight", "send_email"]  # type: ignore[arg-type]
    assert a[sc.LLMOTEL_AGENT_ADHERENCE_ORDERED] == pytest.approx(2 / 3)
    assert a[sc.LLMOTEL_AGENT_ADHERENCE_PRECISION] == pytest.approx(2 / 3)
    assert a[sc.LLMOTEL_AGENT_ADHERENCE_RECALL] == pytest.approx(2 / 3)
    assert a[sc.LLMOTEL_AGENT_STEPS_SKIPPED] == 1
    assert a[sc.LLMOTEL_AGENT_STEPS_EXTRA] == 1
    assert a[sc.LLMOTEL_AGENT_STEPS_REORDERED] == 0
    assert a[sc.LLMOTEL_AGENT_REPLANS] == 0
    assert run.adherence is not None and run.adherence.skipped == 1

    plan = captured.one("plan travel-planner")
    p = plan.attributes or {}
    assert plan.kind == SpanKind.INTERNAL
    assert p[sc.GEN_AI_OPERATION_NAME] == "plan"
    assert list(p[sc.LLMOTEL_PLAN_STEPS]) == ["search", "compare", "book"]  # type: ignore[arg-type]
    assert list(p[sc.LLMOTEL_PLAN_TOOLS]) == ["search_flights", "compare", "book_flight"]  # type: ignore[arg-type]
    assert p[sc.LLMOTEL_PLAN_REVISION] == 0
    assert parent_id(plan) == span_id(agent)

    email = captured.one("execute_tool send_email")
    search = captured.one("execute_tool search_flights")
    assert (email.attributes or {})[sc.LLMOTEL_TOOL_PLANNED] is False
    s = search.attributes or {}
    assert s[sc.LLMOTEL_TOOL_PLANNED] is True
    assert s[sc.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert s[sc.GEN_AI_TOOL_NAME] == "search_flights"
    assert s[sc.GEN_AI_TOOL_CALL_ID] == "call_1"
    assert s[sc.LLMOTEL_PLAN_REVISION] == 0
    assert search.kind == SpanKind.INTERNAL
    assert parent_id(search) == span_id(agent)
    assert search.context is not None and agent.context is not None
    assert search.context.trace_id == agent.context.trace_id


def test_replans_are_numbered_and_tools_carry_the_revision_in_force(captured: Captured) -> None:
    with llmotel.agent_run("planner") as run:
        with run.tool("lookup"):
            pass
        assert run.plan(["a", "b", "c", "d"]) == 0
        for name in ("a", "b"):
            with run.tool(name):
                pass
        assert run.plan(["c", "d"]) == 1
        assert run.revision == 1
        for name in ("c", "d"):
            with run.tool(name):
                pass
    revisions = sorted((s.attributes or {})[sc.LLMOTEL_PLAN_REVISION] for s in captured.named("plan planner"))  # type: ignore[type-var]
    assert revisions == [0, 1]
    by_tool = {s.name: s.attributes or {} for s in captured.all() if s.name.startswith("execute_tool")}
    assert sc.LLMOTEL_PLAN_REVISION not in by_tool["execute_tool lookup"]
    assert by_tool["execute_tool a"][sc.LLMOTEL_PLAN_REVISION] == 0
    assert by_tool["execute_tool d"][sc.LLMOTEL_PLAN_REVISION] == 1
    assert run.adherence is not None
    # The re-plan of the remaining steps is not a skip; the tool run before any plan is an extra.
    assert (run.adherence.skipped, run.adherence.extra, run.adherence.replans) == (0, 1, 1)
    assert run.adherence.ordered == 1.0


def test_planning_block_parents_the_planner_call_and_carries_the_plan(captured: Captured) -> None:
    with llmotel.agent_run("p") as run:
        with run.planning():
            # Stand-in for the planner's LLM call: any span started here must be the plan span's child.
            captured.provider.get_tracer("test").start_span("chat planner-model").end()
            run.plan(["x"])
        with llmotel.tool("x"):
            pass
    plan = captured.one("plan p")
    assert (plan.attributes or {})[sc.LLMOTEL_PLAN_REVISION] == 0
    assert parent_id(plan) == span_id(captured.one("invoke_agent p"))
    assert parent_id(captured.one("chat planner-model")) == span_id(plan)
    assert run.adherence is not None and run.adherence.ordered == 1.0


def test_run_without_plan_has_executed_tools_but_no_scores(captured: Captured) -> None:
    with llmotel.agent_run("free") as run, llmotel.tool("x"):
        pass
    a = captured.one("invoke_agent free").attributes or {}
    assert list(a[sc.LLMOTEL_AGENT_EXECUTED_TOOLS]) == ["x"]  # type: ignore[arg-type]
    assert sc.LLMOTEL_AGENT_ADHERENCE_ORDERED not in a
    assert run.adherence is None


def test_decorators_sync_and_async_make_a_new_run_per_call(captured: Captured) -> None:
    @llmotel.tool()
    def search_flights(dest: str) -> str:
        return f"flights to {dest}"

    @llmotel.tool("book")
    async def book_flight() -> str:
        await asyncio.sleep(0)
        return "booked"

    @llmotel.agent_run("deco")
    def sync_agent(dest: str) -> str:
        run = llmotel.current_run()
        assert run is not None
        run.plan(["search_flights"])
        return search_flights(dest)

    @llmotel.agent_run("deco-async")
    async def async_agent() -> str:
        run = llmotel.current_run()
        assert run is not None
        run.plan(["book"])
        return await book_flight()

    assert sync_agent.__name__ == "sync_agent"
    assert sync_agent("NYC") == "flights to NYC"
    assert sync_agent("SFO") == "flights to SFO"
    assert asyncio.run(async_agent()) == "booked"
    runs = captured.named("invoke_agent deco")
    assert len(runs) == 2
    assert {s.context.trace_id for s in runs if s.context} and runs[0].context != runs[1].context
    for s in runs:
        assert (s.attributes or {})[sc.LLMOTEL_AGENT_ADHERENCE_ORDERED] == 1.0
    assert (captured.one("invoke_agent deco-async").attributes or {})[sc.LLMOTEL_AGENT_ADHERENCE_ORDERED] == 1.0
    assert len(captured.named("execute_tool search_flights")) == 2


def test_decorating_a_generator_is_refused() -> None:
    with pytest.raises(TypeError, match="generator"):

        @llmotel.agent_run("gen")
        def gen() -> Iterator[int]:
            yield 1


async def test_concurrent_async_runs_do_not_mix(captured: Captured) -> None:
    async def one(name: str, tools: list[str]) -> llmotel.AgentRun:
        async with llmotel.agent_run(name) as run:
            run.plan(tools)
            for t in tools:
                async with llmotel.tool(t):
                    await asyncio.sleep(0.001)
        return run

    runs = await asyncio.gather(*(one(f"r{i}", [f"t{i}a", f"t{i}b"]) for i in range(8)))
    for i, run in enumerate(runs):
        assert run.executed == (f"t{i}a", f"t{i}b")
        assert run.adherence is not None and run.adherence.ordered == 1.0
        agent = captured.one(f"invoke_agent r{i}")
        for t in (f"t{i}a", f"t{i}b"):
            assert parent_id(captured.one(f"execute_tool {t}")) == span_id(agent)


async def test_tools_in_parallel_tasks_record_on_the_run(captured: Captured) -> None:
    async def call(name: str) -> None:
        with llmotel.tool(name):
            await asyncio.sleep(0.001)

    async with llmotel.agent_run("fanout") as run:
        run.plan(["a", "b", "c"])
        await asyncio.gather(call("a"), call("b"), call("c"))
    assert sorted(run.executed) == ["a", "b", "c"]
    assert run.adherence is not None and run.adherence.skipped == 0 and run.adherence.extra == 0


def test_nested_sub_agent_counts_its_own_tools(captured: Captured) -> None:
    with llmotel.agent_run("parent") as parent:
        parent.plan(["research", "write"])
        with llmotel.tool("research"), llmotel.agent_run("researcher") as child:
            assert llmotel.current_run() is child
            child.plan(["web_search"])
            with llmotel.tool("web_search"):
                pass
            with llmotel.tool("fetch_page"):
                pass
        assert llmotel.current_run() is parent
        with llmotel.tool("write"):
            pass
    assert parent.executed == ("research", "write")
    assert child.executed == ("web_search", "fetch_page")
    assert parent.adherence is not None and parent.adherence.ordered == 1.0 and parent.adherence.extra == 0
    assert child.adherence is not None and child.adherence.extra == 1
    research = captured.one("execute_tool research")
    child_span = captured.one("invoke_agent researcher")
    assert parent_id(child_span) == span_id(research)
    assert parent_id(captured.one("execute_tool web_search")) == span_id(child_span)
    assert parent_id(research) == span_id(captured.one("invoke_agent parent"))


def test_threads_with_explicit_run_or_copied_context(captured: Captured) -> None:
    def work(run: llmotel.AgentRun, name: str) -> None:
        with run.tool(name):
            pass

    def work_in_context(name: str) -> None:
        with llmotel.tool(name):
            pass

    with llmotel.agent_run("threaded") as run:
        run.plan([f"t{i}" for i in range(16)] + ["ctx"])
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda i: work(run, f"t{i}"), range(16)))
            ctx = contextvars.copy_context()
            pool.submit(ctx.run, work_in_context, "ctx").result()
    assert sorted(run.executed) == sorted([f"t{i}" for i in range(16)] + ["ctx"])
    agent = captured.one("invoke_agent threaded")
    for s in captured.all():
        if s.name.startswith("execute_tool"):
            assert parent_id(s) == span_id(agent), s.name
    assert run.adherence is not None and run.adherence.skipped == 0 and run.adherence.extra == 0


def test_recording_is_thread_safe_under_contention(captured: Captured) -> None:
    n_threads, per_thread = 8, 200
    with llmotel.agent_run("contended") as run:
        run.plan(["t"])
        barrier = threading.Barrier(n_threads)

        def hammer() -> None:
            barrier.wait()
            for _ in range(per_thread):
                with run.tool("t"):
                    pass

        threads = [threading.Thread(target=hammer) for _ in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(run.executed) == n_threads * per_thread
    assert run.adherence is not None and run.adherence.extra == n_threads * per_thread - 1
    a = captured.one("invoke_agent contended").attributes or {}
    assert len(a[sc.LLMOTEL_AGENT_EXECUTED_TOOLS]) == agent_module.MAX_RECORDED_NAMES  # type: ignore[arg-type]


def test_exceptions_propagate_and_mark_spans(captured: Captured) -> None:
    class BookingFailed(RuntimeError):
        pass

    with pytest.raises(BookingFailed), llmotel.agent_run("failing") as run:
        run.plan(["book"])
        with llmotel.tool("book"):
            raise BookingFailed("card 4111 declined")
    agent = captured.one("invoke_agent failing")
    tool_span = captured.one("execute_tool book")
    for s in (agent, tool_span):
        assert s.status.status_code == StatusCode.ERROR
        assert (s.attributes or {})[sc.ERROR_TYPE] == "test_exceptions_propagate_and_mark_spans.<locals>.BookingFailed"
        assert "4111" not in str(s.status.description)  # the message may carry user data
    assert (agent.attributes or {})[sc.LLMOTEL_AGENT_ADHERENCE_ORDERED] == 1.0
    assert llmotel.current_run() is None


async def test_async_decorator_exception_propagates(captured: Captured) -> None:
    @llmotel.agent_run("async-fail")
    async def agent() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        await agent()
    assert captured.one("invoke_agent async-fail").status.status_code == StatusCode.ERROR


def test_bad_plan_input_raises_clearly_and_records_nothing(captured: Captured) -> None:
    with llmotel.agent_run("bad") as run:
        with pytest.raises(TypeError, match="single string"):
            run.plan("search")
        with pytest.raises(ValueError, match="one per step"):
            run.plan(["a", "b"], tools=["x"])
        assert run.revision is None
    assert captured.named("plan bad") == []
    with pytest.raises(TypeError, match="needs a name"), llmotel.tool():
        pass


def test_step_arguments_only_with_content_capture(captured: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    # Agent runs are not tied to an instrumentor: they read the process default (llmotel.configure), swapped here
    # for the length of the test (monkeypatch restores it).
    config = pytest.importorskip("llmotel.config")
    monkeypatch.setattr(config, "_current", config.resolve(env={}))
    with llmotel.agent_run("private") as run:
        run.plan(["search"], arguments=[{"to": "secret-destination"}])
    monkeypatch.setattr(config, "_current", config.resolve({"capture_content": True}, env={}))
    with llmotel.agent_run("captured") as run:
        run.plan(["search"], arguments=[{"to": "NYC"}])
    assert sc.LLMOTEL_PLAN_ARGUMENTS not in (captured.one("plan private").attributes or {})
    assert "secret-destination" not in str([dict(s.attributes or {}) for s in captured.all()])
    assert (captured.one("plan captured").attributes or {})[sc.LLMOTEL_PLAN_ARGUMENTS] == '[{"to": "NYC"}]'


def test_tool_outside_a_run_is_a_plain_span(captured: Captured) -> None:
    with llmotel.tool("lonely", call_id="c9"):
        pass
    a = captured.one("execute_tool lonely").attributes or {}
    assert a[sc.GEN_AI_TOOL_CALL_ID] == "c9"
    assert sc.LLMOTEL_TOOL_PLANNED not in a and sc.LLMOTEL_PLAN_REVISION not in a


def test_broken_tracer_never_breaks_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise RuntimeError("exporter misconfigured")

    monkeypatch.setattr(agent_module, "_tracer", boom)
    with llmotel.agent_run("resilient") as run:
        run.plan(["a"])
        with run.planning():
            pass
        with llmotel.tool("a"):
            result = 41 + 1
    assert result == 42
    assert run.adherence is not None and run.adherence.ordered == 1.0
