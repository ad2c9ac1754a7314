"""Replay of a 50-step thread: recorded mode vs re-running it live, side by side.

A user graph (agent -> tool -> agent ..., 25 tool rounds = 51 steps) runs once on a
scripted model with recording on, into a SQLite checkpoint file. Then, ``--repeat`` times
each, in one process:

- live: the same turn re-run from scratch on the scripted model (what LangGraph's own
  replay does: every model call made again), recording on as in the server;
- recorded: ``graphyard.replay.replay`` of the whole turn onto a fork, every model call
  served from the recording (and recorded again for the fork, as the server does).

It prints the median wall time of each, the ratio, and the model calls each made (the
scripted model counts every prompt it receives; recorded mode must make 0). It also prints
the bytes the recording of the original thread's model requests takes per call: stored
content-addressed (each prompt message once per thread, each row the list of its hashes)
vs the whole canonical request inline in every row, as recordings were stored before. The scripted
model answers instantly, so the live column is the cheapest a live re-run can ever be: a
real model adds its latency and price to every one of its 26 calls.

Run: ``.venv/bin/python benchmarks/replay.py [--rounds 25] [--repeat 5] [--tool-bytes 0]``
(``--tool-bytes N`` pads every tool result to N characters, as real tool output is).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode

from graphyard.persistence import open_saver
from graphyard.replay import RecordingHandler, recording_store, replay
from graphyard.testing import ScriptedChatModel


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def build(model: ScriptedChatModel, rounds: int, tool_bytes: int = 0) -> StateGraph[State]:
    @tool
    def lookup(order_id: str) -> str:
        """Look an order up."""
        return f"Order {order_id} shipped.".ljust(tool_bytes, ".")

    def respond(messages: list[Any]) -> AIMessage:
        done = sum(isinstance(m, ToolMessage) for m in messages)
        if done < rounds:
            call = {"name": "lookup", "args": {"order_id": f"A{1000 + done}"}, "id": f"c{done}"}
            return AIMessage("", tool_calls=[call])
        return AIMessage(f"All {done} orders shipped.")

    model.responses = [respond]

    async def agent(state: State, config: RunnableConfig) -> dict[str, Any]:
        prompt = [SystemMessage("Look every order up."), *state["messages"]]
        return {"messages": [await model.ainvoke(prompt, config)]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([lookup]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges(
        "agent", lambda s: "tools" if s["messages"][-1].tool_calls else END, ["tools", END]
    )
    graph.add_edge("tools", "agent")
    return graph


async def request_bytes(saver: Any, store: Any, thread: str) -> tuple[int, int, int]:
    """(model calls, request bytes stored, request bytes if every row held it inline)."""
    calls = [r for r in await store.for_thread(thread) if r.kind == "model"]
    inline = sum(len(json.dumps(r.input, default=str).encode()) for r in calls)
    async with saver.lock:
        cursor = await saver.conn.execute(
            "SELECT COALESCE(SUM(length(CAST(input AS BLOB))), 0) FROM graphyard_recordings"
            " WHERE thread_id = ? AND kind = 'model'",
            (thread,),
        )
        rows = (await cursor.fetchone())[0]
        cursor = await saver.conn.execute(
            "SELECT COALESCE(SUM(length(CAST(hash AS BLOB)) + length(CAST(body AS BLOB))), 0)"
            " FROM graphyard_recording_messages WHERE thread_id = ?",
            (thread,),
        )
        messages = (await cursor.fetchone())[0]
    return len(calls), rows + messages, inline


async def main(rounds: int, repeat: int, tool_bytes: int) -> None:
    model = ScriptedChatModel()
    with tempfile.TemporaryDirectory() as tmp:
        async with open_saver(f"sqlite:///{Path(tmp) / 'bench.db'}") as saver:
            graph = build(model, rounds, tool_bytes).compile(checkpointer=saver)
            store = recording_store(saver)
            assert store is not None
            request = {"messages": [HumanMessage("Where are all my orders?")]}

            async def live(thread: str) -> None:
                config: Any = {
                    "configurable": {"thread_id": thread},
                    "callbacks": [RecordingHandler(store, thread)],
                    "recursion_limit": 4 * rounds + 10,
                }
                await graph.ainvoke(request, config)

            await live("original")
            steps = (
                len(
                    [
                        s
                        async for s in graph.aget_state_history(
                            {"configurable": {"thread_id": "original"}}
                        )
                    ]
                )
                - 2
            )  # the input checkpoint and the one before it ran nothing
            recorded_calls = await store.count("original")
            model_calls, stored_bytes, inline_bytes = await request_bytes(saver, store, "original")

            live_times, replay_times, live_calls, replay_calls = [], [], [], []
            for i in range(repeat):
                before = len(model.calls)
                start = time.perf_counter()
                await live(f"live-{i}")
                live_times.append(time.perf_counter() - start)
                live_calls.append(len(model.calls) - before)

                before = len(model.calls)
                start = time.perf_counter()
                result = await replay(
                    graph,
                    "original",
                    fork=f"replay-{i}",
                    config={
                        "recursion_limit": 4 * rounds + 10,
                        "callbacks": [RecordingHandler(store, f"replay-{i}")],  # as served
                    },
                )
                replay_times.append(time.perf_counter() - start)
                replay_calls.append(len(model.calls) - before)
                assert result.error is None and result.divergence is None, result.as_json()
                assert result.diff == [] and result.model_calls_live == 0

    live_t, replay_t = statistics.median(live_times), statistics.median(replay_times)
    print(
        f"thread: {steps} steps ({rounds} tool rounds), {recorded_calls} recorded calls; "
        f"median of {repeat} runs each"
    )
    print(f"{'':32} {'live re-run':>14} {'recorded replay':>16} {'ratio':>8}")
    print(f"{'wall time (s)':32} {live_t:14.3f} {replay_t:16.3f} {replay_t / live_t:8.2f}x")
    print(
        f"{'model calls made per run':32} {statistics.median(live_calls):14.0f} "
        f"{statistics.median(replay_calls):16.0f}"
    )
    print(f"{'model calls served from recording':32} {'0':>14} {result.model_calls_served:16d}")
    print()
    print(f"{'':32} {'inline':>14} {'content-addressed':>18} {'ratio':>8}")
    print(
        f"{'request bytes recorded per call':32} {inline_bytes / model_calls:14.0f} "
        f"{stored_bytes / model_calls:18.0f} {stored_bytes / inline_bytes:8.3f}x"
    )
    print(
        f"{'request bytes recorded, thread':32} {inline_bytes:14d} {stored_bytes:18d} "
        f"({model_calls} model calls)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25, help="tool rounds (2 steps each)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tool-bytes", type=int, default=0, help="pad tool results to N chars")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.repeat, args.tool_bytes))
