"""Recording and replay on each checkpointer (SQLite file, real Postgres, DynamoDB on moto_server),
on the reference agent.

The reference agent keeps ``messages`` in a ``DeltaChannel``: a replay's first checkpoint
must carry the full history although the original checkpoint holds only deltas.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from graphyard.agent import build_graph
from graphyard.agent._shop import DemoShop
from graphyard.config import Settings
from graphyard.persistence import delete_threads, open_saver
from graphyard.replay import Recording, RecordingHandler, recording_store, replay, thread_history
from graphyard.testing import ScriptedChatModel, scripted_tiers


async def ask(graph: Any, thread: str, text: str) -> None:
    store = recording_store(graph.checkpointer)
    config: Any = {"configurable": {"thread_id": thread}}
    config["callbacks"] = [RecordingHandler(store, thread, prices={})]
    await graph.ainvoke({"messages": [HumanMessage(text)]}, config)


async def test_a_recorded_reference_agent_thread_replays_whole_on_each_backend(
    backend_url: str, tmp_path: Path
) -> None:
    model = ScriptedChatModel(responses=["Order A1003 is on its way.", "You are welcome."])
    settings = Settings(shop_db=str(tmp_path / "shop.db"))
    async with open_saver(backend_url, settings=settings) as saver:
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


@pytest.mark.dynamodb
async def test_dynamodb_recordings_hold_payloads_over_an_items_limit_and_go_with_the_thread(
    dynamodb_url: str,
) -> None:
    async with open_saver(dynamodb_url) as saver:
        store = recording_store(saver)
        assert store is not None
        await store.setup()
        big = os.urandom(600_000).hex()  # 1.2 MB that compresses to ~0.7 MB: two items' worth
        request = {"model": "m", "messages": [{"role": "user", "content": big}, {"role": "ai"}]}

        def call(seq: int, checkpoint: str) -> Recording:
            return Recording(
                thread_id="t", checkpoint_ns="", checkpoint_id=checkpoint, task_id="task",
                step=seq, node="agent", seq=seq, kind="model", name="m", fingerprint=f"f{seq}",
                input=request, output={"content": big}, run_id="r",
            )  # fmt: skip

        await store.put(call(0, "c1"))
        await store.put(call(1, "c2"))  # the same request messages: stored once
        first, second = await store.for_thread("t")
        assert (first.seq, second.seq) == (0, 1)  # in the order recorded
        assert first.input == request and first.output == {"content": big}
        assert [r.checkpoint_id for r in await store.for_thread("t", ["c2"])] == ["c2"]
        assert await store.for_thread("t", []) == []
        assert (await store.count("t"), await store.count_messages("t")) == (2, 2)
        assert await store.count() == 2
        pages = saver.client.get_paginator("scan").paginate(  # type: ignore[attr-defined]
            TableName="checkpoints-recordings", ProjectionExpression="sk"
        )
        keys = [i["sk"]["S"] for page in pages for i in page["Items"]]
        chunked = {k[:2] for k in keys if "#x" in k}
        assert chunked == {"m#", "r#"}  # both the message and the recording were split

        await saver.adelete_thread("t")  # the thread goes, and its recordings with it
        assert (await store.count(), await store.count_messages()) == (0, 0)
