"""``mark_thread`` on SQLite reads the thread's latest checkpoint and the writes already
stored against it in one statement; it must find exactly what the two plain queries find."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.types import interrupt

from graphyard.persistence import mark_thread


class State(TypedDict, total=False):
    asked: str
    answer: str


def _graph():  # type: ignore[no-untyped-def]
    graph = StateGraph(State)
    graph.add_node("ask", lambda state: {"asked": "yes"})
    graph.add_node("wait", lambda state: {"answer": interrupt("approve?")})
    graph.add_edge(START, "ask")
    graph.add_edge("ask", "wait")
    return graph


async def _plain(
    saver: AsyncSqliteSaver, thread_id: str
) -> tuple[str | None, set[tuple[str, int]]]:
    rows = await saver.conn.execute_fetchall(
        "SELECT MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ''",
        (thread_id,),
    )
    latest = next(iter(rows))[0]
    writes = await saver.conn.execute_fetchall(
        "SELECT task_id, idx FROM writes WHERE thread_id = ? AND checkpoint_id = ?",
        (thread_id, latest),
    )
    return latest, {(str(t), int(i)) for t, i in writes}


async def test_the_mark_has_the_latest_checkpoint_and_its_writes(tmp_path: Path) -> None:
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "c.db")) as saver:
        await saver.setup()
        graph = _graph().compile(checkpointer=saver)
        empty = await mark_thread(saver, "t")
        assert (empty.checkpoint_id, empty.writes) == (None, frozenset())

        config = {"configurable": {"thread_id": "t"}}
        await graph.ainvoke({}, config)  # stops at the interrupt: writes on the latest
        mark = await mark_thread(saver, "t")
        latest, writes = await _plain(saver, "t")
        assert mark.checkpoint_id == latest is not None
        assert set(mark.writes) == writes
        assert writes, "the interrupt left no pending write: the test tests nothing"

        other = await mark_thread(saver, "another thread")
        assert (other.checkpoint_id, other.writes) == (None, frozenset())
