"""Recording and replay in one process: keys, isolation, enforcement, retention, fingerprints."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode

from graphyard.persistence import delete_threads, open_saver, prune_threads
from graphyard.replay import (
    RecordingHandler,
    canonical_request,
    fingerprint,
    recording_store,
    replay,
    thread_history,
)
from graphyard.testing import ScriptedChatModel


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def lookup(order_id: str) -> str:
    """Look an order up."""
    return f"{order_id} shipped"


def respond(messages: list[Any]) -> AIMessage:
    if isinstance(messages[-1], ToolMessage):
        return AIMessage(f"Done: {messages[-1].content}")
    return AIMessage("", tool_calls=[{"name": "lookup", "args": {"order_id": "A1"}, "id": "c1"}])


def build(model: Any, prompt: str = "Be brief.") -> StateGraph[State]:
    async def agent(state: State, config: RunnableConfig) -> dict[str, Any]:
        answer = await model.ainvoke([SystemMessage(prompt), *state["messages"]], config)
        return {"messages": [answer]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([lookup]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges(
        "agent", lambda s: "tools" if s["messages"][-1].tool_calls else END, ["tools", END]
    )
    graph.add_edge("tools", "agent")
    return graph


def scripted(**kwargs: Any) -> ScriptedChatModel:
    model = ScriptedChatModel(**kwargs)
    model.responses = [respond]
    return model


async def record(graph: Any, thread: str, text: str = "where is A1?") -> None:
    store = recording_store(graph.checkpointer)
    config: Any = {"configurable": {"thread_id": thread}}
    config["callbacks"] = [RecordingHandler(store, thread)]
    await graph.ainvoke({"messages": [HumanMessage(text)]}, config)


async def test_each_call_is_recorded_under_the_checkpoint_its_task_ran_from(
    tmp_path: Path,
) -> None:
    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        graph = build(scripted()).compile(checkpointer=saver)
        await record(graph, "t1")
        recordings = await recording_store(saver).for_thread("t1")  # type: ignore[union-attr]
        assert [(r.kind, r.node, r.step, r.seq) for r in recordings] == [
            ("model", "agent", 1, 0),
            ("tool", "tools", 2, 0),
            ("model", "agent", 3, 0),
        ]
        history = {r.checkpoint_id: r for r in await thread_history(graph, "t1")}
        for r in recordings:
            ran_from = history[r.checkpoint_id]  # type: ignore[index]
            assert ran_from.step == r.step - 1 and ran_from.nodes == [r.node]
        assert recordings[1].output == {"content": "A1 shipped", "status": "success"}
        assert recordings[2].output["data"]["content"] == "Done: A1 shipped"
        assert recordings[0].output["data"]["tool_calls"][0]["name"] == "lookup"
        assert recordings[0].input_tokens > 0


async def test_a_recorded_replay_serves_every_call_while_a_live_run_beside_it_calls_its_model(
    tmp_path: Path,
) -> None:
    model = scripted(delay=0.01)
    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        graph = build(model).compile(checkpointer=saver)
        await record(graph, "recorded")
        assert len(model.calls) == 2

        live = graph.ainvoke(
            {"messages": [HumanMessage("and A2?")]}, {"configurable": {"thread_id": "live"}}
        )
        result, values = await asyncio.gather(replay(graph, "recorded", fork=True), live)
        assert (result.model_calls_served, result.model_calls_live) == (2, 0)
        assert result.error is None and result.divergence is None and result.diff == []
        assert values["messages"][-1].content == "Done: A1 shipped"
        assert len(model.calls) == 4  # the live run's two calls, none for the replay


async def test_a_model_that_bypasses_the_cache_fails_a_recorded_replay(tmp_path: Path) -> None:
    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        await record(build(scripted()).compile(checkpointer=saver), "t1")
        uncached = scripted(cache=False)
        result = await replay(build(uncached).compile(checkpointer=saver), "t1")
        assert result.error is not None and result.error.startswith("ModelCallForbidden")
        assert result.model_calls_served == 0


async def test_a_changed_prompt_diverges_at_the_first_model_call_and_live_mode_goes_on(
    tmp_path: Path,
) -> None:
    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        await record(build(scripted()).compile(checkpointer=saver), "t1")
        model = scripted()
        compiled = build(model, "Be thorough.").compile(checkpointer=saver)

        stopped = await replay(compiled, "t1", fork=True)
        assert stopped.divergence is not None
        assert (stopped.divergence["step"], stopped.divergence["node"]) == (1, "agent")
        assert "-system: Be brief." in stopped.divergence["diff"]
        assert "+system: Be thorough." in stopped.divergence["diff"]
        assert model.calls == []

        went_on = await replay(compiled, "t1", fork=True, live=True)
        assert went_on.error is None and went_on.model_calls_live == 2
        assert went_on.diff == []  # the scripted model answers the same either way


async def test_deleting_or_pruning_a_thread_takes_its_recordings_with_it(tmp_path: Path) -> None:
    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        graph = build(scripted()).compile(checkpointer=saver)
        store = recording_store(saver)
        assert store is not None
        for thread in ("a", "b", "c"):
            await record(graph, thread)
        await record(graph, "c", "and again?")
        assert [await store.count(t) for t in "abc"] == [3, 3, 6]
        assert all([await store.count_messages(t) > 0 for t in "abc"])

        await delete_threads(saver, ["a"])
        assert [await store.count(t) for t in "abc"] == [0, 3, 6]
        assert await store.count_messages("a") == 0
        assert all([await store.count_messages(t) > 0 for t in "bc"])

        await prune_threads(saver, keep_latest=True, channels=graph.channels)
        # only the latest checkpoint is kept: no task ran from it, so no call is left
        assert [await store.count(t) for t in "bc"] == [0, 0]
        assert await store.count_messages() == 0  # no recording refers to any message now


def test_a_request_fingerprint_ignores_message_and_tool_call_ids_but_not_text() -> None:
    def request(call_id: str, text: str = "A1 shipped") -> Any:
        return canonical_request(
            [
                HumanMessage("where?", id="h1" + call_id),
                AIMessage(
                    "", tool_calls=[{"name": "lookup", "args": {"order_id": "A1"}, "id": call_id}]
                ),
                ToolMessage(text, tool_call_id=call_id, name="lookup"),
            ],
            model="m",
        )

    assert fingerprint(request("c1")) == fingerprint(request("c2"))
    assert fingerprint(request("c1")) != fingerprint(request("c1", "A1 lost"))


async def test_a_replay_of_an_unknown_checkpoint_says_how_to_find_one(tmp_path: Path) -> None:
    from graphyard.errors import ConfigError

    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        graph = build(scripted()).compile(checkpointer=saver)
        await record(graph, "t1")
        with pytest.raises(ConfigError, match="graphyard threads history t1"):
            await replay(graph, "t1", checkpoint_id="1f0e6a4d-0c3c-6000-8000-000000000000")


def test_the_replay_package_exports_are_pinned() -> None:
    import graphyard.replay

    assert sorted(graphyard.replay.__all__) == [
        "Divergence",
        "HistoryRow",
        "ModelCallForbidden",
        "Recording",
        "RecordingHandler",
        "RecordingStore",
        "ReplayCache",
        "ReplayDivergence",
        "ReplayGuard",
        "ReplayResult",
        "ReplaySession",
        "canonical_request",
        "diff_requests",
        "diff_states",
        "find_lineage",
        "fingerprint",
        "message_lines",
        "recorded_answer_cache_hit",
        "recording_handlers",
        "recording_store",
        "replay",
        "replay_answers",
        "replay_events",
        "thread_history",
    ]
    for name in graphyard.replay.__all__:
        assert hasattr(graphyard.replay, name)


async def test_a_fork_made_by_a_replay_can_itself_be_replayed(tmp_path: Path) -> None:
    model = scripted()
    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        graph = build(model).compile(checkpointer=saver)
        await record(graph, "t1")
        store = recording_store(saver)
        fork_config: Any = {"callbacks": [RecordingHandler(store, "t1-fork")]}  # type: ignore[arg-type]
        first = await replay(graph, "t1", fork="t1-fork", config=fork_config)
        assert first.model_calls_served == 2
        again = await replay(graph, "t1-fork")
        assert (again.model_calls_served, again.model_calls_live) == (2, 0)
        assert again.error is None and again.diff == []
        assert len(model.calls) == 2


async def test_the_ttl_sweep_takes_the_recordings_of_the_threads_it_deletes(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    from graphyard.persistence import sweep_idle_threads

    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        graph = build(scripted()).compile(checkpointer=saver)
        await record(graph, "idle")
        store = recording_store(saver)
        assert store is not None and await store.count("idle") == 3
        later = datetime.now(UTC) + timedelta(days=31)
        report = await sweep_idle_threads(saver, timedelta(days=30), now=later)
        assert report.threads == ["idle"]
        assert await store.count() == 0 and await store.count_messages() == 0


async def test_a_thread_stores_each_prompt_message_once_and_reads_whole_requests_back(
    tmp_path: Path,
) -> None:
    import json

    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        graph = build(scripted()).compile(checkpointer=saver)
        await record(graph, "c")
        await record(graph, "c", "and again?")
        store = recording_store(saver)
        assert store is not None
        calls = [r for r in await store.for_thread("c") if r.kind == "model"]
        sent = [m for r in calls for m in r.input["messages"]]
        assert [len(r.input["messages"]) for r in calls] == [2, 4, 6, 8]
        for r in calls:  # the whole request is back, and it is what was fingerprinted
            assert fingerprint(r.input) == r.fingerprint and set(r.input) == {
                "model",
                "tools",
                "messages",
            }
        distinct = {json.dumps(m, sort_keys=True) for m in sent}
        assert await store.count_messages("c") == len(distinct) < len(sent)
        async with saver.lock:
            cursor = await saver.conn.execute(
                "SELECT input FROM graphyard_recordings WHERE kind = 'model' ORDER BY id"
            )
            stored = [json.loads(row[0]) for row in await cursor.fetchall()]
        assert all("messages" not in row and len(row["message_refs"]) for row in stored)

        # a row written before messages were stored apart (the request inline) still reads
        old = {"model": "m", "tools": [], "messages": [{"role": "human", "content": "hi"}]}
        async with saver.lock:
            await saver.conn.execute(
                "INSERT INTO graphyard_recordings (thread_id, checkpoint_ns, checkpoint_id,"
                " task_id, step, node, seq, kind, name, fingerprint, input, output, created_at)"
                " VALUES ('old', '', 'k', 't', 1, 'agent', 0, 'model', 'm', ?, ?, 'null', 0)",
                (fingerprint(old), json.dumps(old)),
            )
            await saver.conn.commit()
        [read] = await store.for_thread("old")
        assert read.input == old and fingerprint(read.input) == read.fingerprint


async def test_a_thread_over_its_budget_replays_and_the_replay_adds_nothing_to_the_ledger(
    tmp_path: Path,
) -> None:
    from graphyard.ledger import Budgets, CallRecord, LedgerHandler, open_ledger

    async with (
        open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver,
        open_ledger(f"sqlite:///{tmp_path / 'g.db'}") as ledger,
    ):
        await record(build(scripted()).compile(checkpointer=saver), "t1")
        # the thread has spent its budget (the run that did is what one wants to replay)
        spent = CallRecord("c0", "r0", "t1", "alice", "mid", "m", None, 10, 1, 0, 0, 1.0, 0.1, 0.0)
        ledger.record(spent)

        def config() -> Any:
            handler = LedgerHandler(
                ledger, run_id="replay", thread_id="t1", user_id="alice",
                budgets=Budgets(thread_usd=0.5),
            )  # fmt: skip
            return {"callbacks": [handler]}

        served = await replay(build(scripted()).compile(checkpointer=saver), "t1", config=config())
        assert served.error is None and served.model_calls_served == 2
        changed = build(scripted(), "Be thorough.").compile(checkpointer=saver)
        refused = await replay(changed, "t1", config=config())
        assert refused.divergence is not None and "ReplayDivergence" in (refused.error or "")
        await ledger.flush()
        assert [r.call_id for r in await ledger.records(thread_id="t1")] == ["c0"]


async def test_a_replay_tells_an_answer_cache_whether_the_recording_was_answered_from_it(
    tmp_path: Path,
) -> None:
    from graphyard.replay import recorded_answer_cache_hit

    seen: list[bool | None] = []
    hit = {"now": False}

    def build_cached(model: Any) -> StateGraph[State]:
        async def agent(state: State, config: RunnableConfig) -> dict[str, Any]:
            seen.append(recorded_answer_cache_hit())
            if hit["now"]:  # what graphyard.caching does on a hit: a stand-in model
                stand_in = {"metadata": {"graphyard_cache_hit": True}}
                answer = await scripted().ainvoke(state["messages"], {**config, **stand_in})
            else:
                answer = await model.ainvoke([SystemMessage("Be brief."), *state["messages"]])
            return {"messages": [answer]}

        graph = StateGraph(State)
        graph.add_node("agent", agent)
        graph.add_node("tools", ToolNode([lookup]))
        graph.add_edge(START, "agent")
        graph.add_conditional_edges(
            "agent", lambda s: "tools" if s["messages"][-1].tool_calls else END, ["tools", END]
        )
        graph.add_edge("tools", "agent")
        return graph

    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        graph = build_cached(scripted()).compile(checkpointer=saver)
        await record(graph, "miss")
        hit["now"] = True
        await record(graph, "hit")
        store = recording_store(saver)
        assert store is not None
        assert {r.tier for r in await store.for_thread("hit") if r.kind == "model"} == {"cache"}
        assert "cache" not in {r.tier for r in await store.for_thread("miss")}
        assert set(seen) == {None}  # not replaying: use the cache as usual

        seen.clear()
        assert (await replay(graph, "hit", fork=True)).model_calls_served == 2
        assert seen == [True, True]
        seen.clear()
        diverged = await replay(graph, "miss", fork=True)  # the cache answers now, not then
        assert seen == [False]
        assert diverged.divergence is not None
        assert "the answer cache answered this turn now" in diverged.divergence["reason"]


async def test_a_replay_branch_records_its_served_answers_as_costing_nothing(
    tmp_path: Path,
) -> None:
    from graphyard.config import ModelPrice

    prices = {"scripted": ModelPrice(input=1_000_000, output=1_000_000)}  # $1 per token
    async with open_saver(f"sqlite:///{tmp_path / 'g.db'}") as saver:
        graph = build(scripted()).compile(checkpointer=saver)
        store = recording_store(saver)
        assert store is not None
        config: Any = {"configurable": {"thread_id": "t1"}}
        config["callbacks"] = [RecordingHandler(store, "t1", prices=prices)]
        await graph.ainvoke({"messages": [HumanMessage("where is A1?")]}, config)
        recorder = RecordingHandler(store, "fork", prices=prices)
        result = await replay(graph, "t1", fork="fork", config={"callbacks": [recorder]})
        assert result.model_calls_served == 2

        original = await thread_history(graph, "t1")
        branch = await thread_history(graph, "fork")
        assert sum(r.model_calls for r in original) == sum(r.model_calls for r in branch) == 2
        assert sum(r.cost_usd for r in original) > 0
        assert sum(r.cost_usd for r in branch) == 0
