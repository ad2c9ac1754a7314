"""Recording and replay on each checkpointer (SQLite file, real Postgres), on the reference agent.

The reference agent keeps ``messages`` in a ``DeltaChannel``: a replay's first checkpoint
must carry the full history although the original checkpoint holds only deltas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage

from graphyard.agent import build_graph
from graphyard.agent._shop import DemoShop
from graphyard.config import Settings
from graphyard.persistence import delete_threads, open_saver
from graphyard.replay import RecordingHandler, recording_store, replay, thread_history
from graphyard.testing import ScriptedChatModel, scripted_tiers


async def ask(graph: Any, thread: str, text: str) -> None:
    store = recording_store(graph.checkpointer)
    config: Any = {"configurable": {"thread_id": thread}}
    config["callbacks"] = [RecordingHandler(store, thread, prices={})]
    await graph.ainvoke({"messages": [HumanMessage(text)]}, config)


async def test_a_recorded_reference_agent_thread_replays_whole_on_each_backend(
    checkpointer_url: str, tmp_path: Path
) -> None:
    model = ScriptedChatModel(responses=["Order A1003 is on its way.", "You are welcome."])
    settings = Settings(shop_db=str(tmp_path / "shop.db"))
    async with open_saver(checkpointer_url, settings=settings) as saver:
        store = recording_store(saver)
        assert store is not None
        await store.setup()
        graph = build_graph(
            scripted_tiers(model), settings, shop=DemoShop(settings.shop_db)
        ).compile(checkpointer=saver)
        await ask(graph, "t1", "Where is order A1003?")
        await ask(graph, "t1", "Thanks!")
        await ask(graph, "other", "Where is order A1003?")
        calls = len(model.calls)
        recorded = await store.count("t1")
        assert recorded >= 3  # two answers and the order lookup at least

        rows = await thread_history(graph, "t1")
        assert sum(r.model_calls for r in rows) == 2 and sum(r.tool_calls for r in rows) >= 1
        first_turn = next(r for r in rows if r.step == 0)

        result = await replay(graph, "t1", checkpoint_id=first_turn.checkpoint_id, fork=True)
        assert result.error is None and result.divergence is None, result.as_json()
        assert result.model_calls_served == 1 and result.model_calls_live == 0
        assert len(model.calls) == calls
        messages = result.values["messages"]
        assert [m.type for m in messages][:1] == ["human"]
        assert messages[-1].content == "Order A1003 is on its way."

        last_turn = await replay(graph, "t1")  # default: from the start of the last turn
        assert last_turn.error is None and last_turn.model_calls_served == 1
        # the same state, but for the id the router draws afresh for every turn
        assert [d["key"] for d in last_turn.diff] == ["task_id"] and len(model.calls) == calls
        assert [m.content for m in last_turn.values["messages"] if m.type == "human"] == [
            "Where is order A1003?",
            "Thanks!",
        ]

        assert await store.count_messages("t1") > 0
        await delete_threads(saver, ["t1"])
        assert await store.count("t1") == 0 and await store.count_messages("t1") == 0
        assert await store.count("other") >= 2 and await store.count_messages("other") > 0
