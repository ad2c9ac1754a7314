"""The cost ledger: rows in the checkpoint database (SQLite and Postgres), sums, breakdowns,
the callback handler on a real LangGraph graph with a priced scripted model, and budgets."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, MessagesState, StateGraph

import graphyard.ledger
from graphyard.config import ModelPrice
from graphyard.ledger import (
    Budgets,
    CallRecord,
    Ledger,
    LedgerHandler,
    OverBudget,
    open_ledger,
    utc_day_start,
)
from graphyard.models import call_cost
from graphyard.persistence import open_saver
from graphyard.testing import ScriptedChatModel

PRICES = {"scripted:mid": ModelPrice(input=1_000, output=10_000)}
"""$0.001 per prompt token and $0.01 per output token."""


def rec(
    call: str,
    *,
    run: str = "r1",
    thread: str = "t1",
    user: str = "alice",
    tier: str = "mid",
    model: str = "scripted:mid",
    cost: float = 0.01,
    at: float | None = None,
    tokens: tuple[int, int, int, int] = (100, 10, 0, 0),
) -> CallRecord:
    return CallRecord(
        call, run, thread, user, tier, model, "planner", *tokens, cost, 0.5,
        time.time() if at is None else at,
    )  # fmt: skip


@pytest.fixture
async def ledger(backend_url: str) -> AsyncIterator[Ledger]:
    async with open_ledger(backend_url) as opened:
        yield opened


def test_the_public_api_is_pinned() -> None:
    assert sorted(graphyard.ledger.__all__) == sorted(
        [
            "COLUMNS",
            "SCHEMA",
            "BudgetName",
            "Budgets",
            "CallRecord",
            "CallStatus",
            "CostTotals",
            "GroupBy",
            "Ledger",
            "LedgerHandler",
            "OverBudget",
            "RunIdentity",
            "ThreadCost",
            "connect_ledger",
            "handler_factory",
            "open_ledger",
            "utc_day_start",
        ]
    )


async def test_records_are_stored_in_the_checkpoint_database_and_read_back_whole(
    ledger: Ledger, backend_url: str
) -> None:
    first = rec("c1", tokens=(120, 30, 40, 5), cost=0.25)
    ledger.record(first)
    await ledger.flush()
    ledger.record(first)  # the same call twice (a retried flush) is stored once
    await ledger.flush()
    assert await ledger.records(thread_id="t1") == [first]
    # the same database the checkpoints live in: the saver sees the table beside its own
    async with open_saver(backend_url) as saver:
        if backend_url.startswith("dynamodb"):
            # a table of its own beside the checkpoint table: the call under its thread and
            # under its user, and nothing of the ledger's in the checkpoint table
            client = saver.client  # type: ignore[attr-defined]
            items = client.scan(TableName="checkpoints-ledger")["Items"]
            assert sorted((i["pk"]["S"], i["call_id"]["S"]) for i in items) == [
                ("t#t1", "c1"),
                ("u#alice", "c1"),
            ]
            assert client.scan(TableName="checkpoints")["Items"] == []
        elif backend_url.startswith("sqlite"):
            rows = await saver.conn.execute_fetchall(
                "SELECT call_id, cost_usd FROM graphyard_ledger"
            )  # type: ignore[attr-defined]
            assert [tuple(r) for r in rows] == [("c1", 0.25)]
        else:
            async with saver.conn.connection() as conn:  # type: ignore[attr-defined]
                row = await (
                    await conn.execute("SELECT call_id, cost_usd FROM graphyard_ledger")
                ).fetchone()
            assert (row["call_id"], row["cost_usd"]) == ("c1", 0.25)


async def test_spend_counts_pending_and_stored_calls_once_with_every_filter(ledger: Ledger) -> None:
    ledger.record(rec("c1", cost=0.10))
    await ledger.flush()
    ledger.record(rec("c2", run="r2", cost=0.20))  # pending, not yet written
    ledger.record(rec("c3", thread="t2", cost=0.40))
    ledger.record(rec("c4", user="bob", thread="t3", cost=0.80))
    ledger.record(rec("old", cost=1.60, at=utc_day_start() - 60))
    assert await ledger.spend(thread_id="t1") == pytest.approx(1.90)
    assert await ledger.spend(run_id="r2") == pytest.approx(0.20)
    assert await ledger.spend(user_id="alice", since=utc_day_start()) == pytest.approx(0.70)
    await ledger.flush()
    assert await ledger.spend(user_id="alice", since=utc_day_start()) == pytest.approx(0.70)
    assert await ledger.spend() == pytest.approx(3.10)


async def test_thread_cost_breaks_totals_down_by_run_tier_and_model(ledger: Ledger) -> None:
    ledger.record(rec("c1", run="r1", tier="cheap", model="local:smollm2", cost=0.0))
    ledger.record(rec("c2", run="r1", tier="mid", cost=0.02, tokens=(200, 20, 50, 0)))
    ledger.record(rec("c3", run="r2", tier="mid", cost=0.03))
    ledger.record(rec("x", thread="other", cost=5.0))
    report = (await ledger.thread_cost("t1")).as_json()
    assert report["totals"] == {
        "calls": 3,
        "input_tokens": 400,
        "output_tokens": 40,
        "cache_read_tokens": 50,
        "cache_write_tokens": 0,
        "cost_usd": 0.05,
    }
    assert {k: v["calls"] for k, v in report["by_run"].items()} == {"r1": 2, "r2": 1}
    assert {k: v["cost_usd"] for k, v in report["by_tier"].items()} == {"cheap": 0.0, "mid": 0.05}
    assert list(report["by_model"]) == ["local:smollm2", "scripted:mid"]


async def test_summary_groups_by_day_tier_model_user_thread_and_run(ledger: Ledger) -> None:
    day = 86400.0 * 20000  # 2024-10-04 UTC
    ledger.record(rec("c1", at=day + 10, cost=0.1))
    ledger.record(rec("c2", at=day + 86400 + 10, cost=0.2, user="bob", thread="t2"))
    ledger.record(rec("c3", at=day + 86400 + 20, cost=0.4, tier="strong", model="scripted:strong"))
    by_day = await ledger.summary("day")
    assert [(k, round(t.cost_usd, 6), t.calls) for k, t in by_day] == [
        ("2024-10-05", 0.6, 2),
        ("2024-10-04", 0.1, 1),
    ]
    assert [k for k, _ in await ledger.summary("tier")] == ["strong", "mid"]
    assert [k for k, _ in await ledger.summary("user")] == ["alice", "bob"]
    assert [k for k, _ in await ledger.summary("thread")] == ["t1", "t2"]
    assert [k for k, _ in await ledger.summary("model", since=day + 86400)] == [
        "scripted:strong",
        "scripted:mid",
    ]
    assert [k for k, _ in await ledger.summary("run", user_id="bob")] == ["r1"]


async def test_listeners_see_each_call_as_it_is_recorded_and_cannot_break_recording(
    ledger: Ledger,
) -> None:
    seen: list[str] = []
    ledger.listeners.append(lambda r: seen.append(r.call_id))
    ledger.listeners.append(lambda r: 1 / 0)  # type: ignore[func-returns-value]
    ledger.record(rec("c1"))
    assert seen == ["c1"]
    assert [r.call_id for r in await ledger.records()] == ["c1"]


async def test_erasing_a_threads_calls_leaves_every_other_thread(ledger: Ledger) -> None:
    for call, thread in (("a", "t1"), ("b", "t1"), ("c", "t2")):
        ledger.record(rec(call, thread=thread))
    assert await ledger.delete_threads(["t1"]) == 2
    assert [r.call_id for r in await ledger.records()] == ["c"]
    assert await ledger.delete_before(time.time() + 1) == 1


# --- the handler on a real graph -------------------------------------------------------


def one_model_graph(model: ScriptedChatModel, *, model_id: str = "scripted:mid") -> Any:
    async def answer(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        meta = {"graphyard_tier": "mid", "graphyard_model": model_id}
        return {"messages": [await model.ainvoke(state["messages"], {**config, "metadata": meta})]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    return builder


def handler(ledger: Ledger, budgets: Budgets | None = None, run: str = "r1") -> LedgerHandler:
    return LedgerHandler(
        ledger, run_id=run, thread_id="t1", user_id="alice", budgets=budgets, prices=PRICES
    )


async def test_every_model_call_is_recorded_with_its_tier_model_node_tokens_and_dollars(
    tmp_path: Any,
) -> None:
    model = ScriptedChatModel(responses=["Hello there, how can I help?"])
    url = f"sqlite:///{tmp_path / 'g.db'}"
    async with open_ledger(url) as ledger, open_saver(url) as saver:
        graph = one_model_graph(model).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "t1"}, "callbacks": [handler(ledger)]}
        async for _ in graph.astream(
            {"messages": [("user", "hi")]}, config, stream_mode="messages"
        ):
            pass
        state = await graph.aget_state(config)
        [row] = await ledger.records()
    usage = state.values["messages"][-1].usage_metadata
    assert (row.tier, row.model, row.node, row.status) == ("mid", "scripted:mid", "answer", "ok")
    assert (row.input_tokens, row.output_tokens) == (usage["input_tokens"], usage["output_tokens"])
    assert row.cost_usd == pytest.approx(call_cost("scripted:mid", usage, PRICES))
    assert row.cost_usd > 0 and row.latency_s >= 0


async def test_a_user_graph_without_graphyard_metadata_is_recorded_under_its_langchain_name(
    tmp_path: Any,
) -> None:
    model = ScriptedChatModel(responses=["ok"], model_name="my-model")
    async with open_ledger(f"sqlite:///{tmp_path / 'g.db'}") as ledger:
        await model.ainvoke("hi", {"callbacks": [handler(ledger)]})
        [row] = await ledger.records()
    assert row.tier == "unknown"
    assert row.model.endswith("my-model")


async def test_exhaustion_mid_stream_stops_the_graph_and_keeps_its_last_checkpoint(
    tmp_path: Any,
) -> None:
    model = ScriptedChatModel(responses=["one two three four five six seven eight nine ten"])
    url = f"sqlite:///{tmp_path / 'g.db'}"
    async with open_ledger(url) as ledger, open_saver(url) as saver:
        graph = one_model_graph(model).compile(checkpointer=saver)
        config: dict[str, Any] = {"configurable": {"thread_id": "t1"}}
        budgets = Budgets(run_usd=0.05)  # prompt ~$0.005, then $0.01 per token streamed
        streamed: list[str] = []
        with pytest.raises(OverBudget) as stopped:
            async for chunk, _ in graph.astream(
                {"messages": [("user", "hi")]},
                {**config, "callbacks": [handler(ledger, budgets)]},
                stream_mode="messages",
            ):
                streamed.append(chunk.content)
        assert stopped.value.budget == "run"
        assert stopped.value.spent_usd > 0.05
        assert "per-run budget of $0.0500" in str(stopped.value)
        assert 0 < len("".join(streamed).split()) < 10  # stopped part-way through
        state = await graph.aget_state(config)
        assert [m.type for m in state.values["messages"]] == ["human"]  # no partial answer
        assert state.next == ("answer",)
        [aborted] = await ledger.records()
        assert aborted.status == "aborted" and aborted.cost_usd > 0.05

        # resumed with a larger budget, the same thread finishes from where it stopped
        async for _ in graph.astream(
            None, {**config, "callbacks": [handler(ledger, Budgets(run_usd=1.0), run="r2")]}
        ):
            pass
        state = await graph.aget_state(config)
    assert [m.type for m in state.values["messages"]] == ["human", "ai"]
    assert isinstance(state.values["messages"][-1], AIMessage)
    assert state.next == ()


async def test_a_call_whose_prompt_alone_is_over_budget_is_refused_before_it_starts(
    tmp_path: Any,
) -> None:
    model = ScriptedChatModel(responses=["never"])
    async with open_ledger(f"sqlite:///{tmp_path / 'g.db'}") as ledger:
        ledger.record(rec("earlier", cost=0.999))
        with pytest.raises(OverBudget) as refused:
            await model.ainvoke(
                "x " * 50,
                {
                    "callbacks": [handler(ledger, Budgets(thread_usd=1.0))],
                    "metadata": {"graphyard_model": "scripted:mid"},
                },
            )
        assert refused.value.budget == "thread"
        assert [r.call_id for r in await ledger.records()] == ["earlier"]  # nothing spent
    assert model.calls == []  # the model never saw the prompt


async def test_the_user_day_budget_counts_the_users_other_threads_but_not_yesterday(
    tmp_path: Any,
) -> None:
    model = ScriptedChatModel(responses=["a b c d e f"])
    config = {"metadata": {"graphyard_model": "scripted:mid"}}
    async with open_ledger(f"sqlite:///{tmp_path / 'g.db'}") as ledger:
        ledger.record(rec("yesterday", thread="t9", cost=50.0, at=utc_day_start() - 1))
        ledger.record(rec("today", thread="t8", cost=0.95))
        ledger.record(rec("bob", thread="t7", user="bob", cost=50.0))
        h = handler(ledger, Budgets(user_day_usd=1.0))
        with pytest.raises(OverBudget) as stopped:
            async for _ in model.astream("hi", {**config, "callbacks": [h]}):
                pass
        assert stopped.value.budget == "user_day"
        assert 0.95 < stopped.value.spent_usd < 1.1
        # a call not streamed is checked before it starts: the day's budget is spent now
        with pytest.raises(OverBudget):
            await model.ainvoke("hi", {**config, "callbacks": [h]})


async def test_without_budgets_nothing_is_ever_refused(tmp_path: Any) -> None:
    model = ScriptedChatModel(responses=["a b c d e f g h"])
    async with open_ledger(f"sqlite:///{tmp_path / 'g.db'}") as ledger:
        ledger.record(rec("huge", cost=1e6))
        h = handler(ledger)
        out = await model.ainvoke(
            "hi", {"callbacks": [h], "metadata": {"graphyard_model": "scripted:mid"}}
        )
        assert out.content == "a b c d e f g h"
        assert h.spent_usd > 0


def test_budgets_come_from_settings() -> None:
    from graphyard.config import Settings

    budgets = Budgets.from_settings(
        Settings(budget_run_usd=0.5, budget_thread_usd=2, budget_user_day_usd=10)
    )
    assert budgets.limits() == [("run", 0.5), ("thread", 2.0), ("user_day", 10.0)]
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Settings(budget_run_usd=-1)


@pytest.mark.dynamodb
async def test_a_dynamodb_ledger_is_shared_by_every_process_on_the_table(
    dynamodb_url: str,
) -> None:
    # two Lambda instances: two ledgers opened apart; each sees what the other stored
    async with open_ledger(dynamodb_url) as first, open_ledger(dynamodb_url) as second:
        first.record(rec("c1", cost=0.30))
        second.record(rec("c2", thread="t2", cost=0.50))
        await first.flush()
        await second.flush()
        assert await first.spend(user_id="alice", since=utc_day_start()) == pytest.approx(0.80)
        assert await second.spend(thread_id="t1") == pytest.approx(0.30)
        assert first.backend == "dynamodb"
    # the stored numbers come back exactly, and a call older than the window is not counted
    async with open_ledger(dynamodb_url) as third:
        third.record(rec("old", cost=1.0, at=utc_day_start() - 0.000001))
        await third.flush()
        assert await third.spend(user_id="alice", since=utc_day_start()) == pytest.approx(0.80)
        (c1,) = await third.records(thread_id="t1", since=utc_day_start())
        assert c1 == rec("c1", cost=0.30, at=c1.started_at)


async def test_an_answer_served_by_a_replay_from_its_recording_costs_nothing(
    tmp_path: Any,
) -> None:
    from uuid import uuid4

    from langchain_core.outputs import ChatGeneration, LLMResult

    from graphyard.models import REPLAYED_KEY

    async with open_ledger(f"sqlite:///{tmp_path / 'g.db'}") as ledger:
        h = handler(ledger)
        for replayed in (True, False):
            call = uuid4()
            await h.on_chat_model_start(
                {}, [[]], run_id=call, metadata={"graphyard_model": "scripted:mid"}
            )
            answer = AIMessage(
                "recorded answer",
                usage_metadata={"input_tokens": 50, "output_tokens": 5, "total_tokens": 55},
                response_metadata={REPLAYED_KEY: True} if replayed else {},
            )
            await h.on_llm_end(
                LLMResult(generations=[[ChatGeneration(message=answer)]]), run_id=call
            )
        await ledger.flush()
        rows = await ledger.records()
    assert len(rows) == 1  # only the real call
    assert rows[0].input_tokens == 50
