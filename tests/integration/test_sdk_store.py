"""The server's records in the SQLite checkpoint file, seen from a second process: its write
lock, and the run events it reads (``test_server_store.py`` covers a write cancelled
half-way).

These drive :class:`graphyard.server._store.SqliteServerStore` and the run manager
directly, with a second connection standing in for the other process (SQLite's locks are
per file, so it is the same thing), because the interleavings they need are too narrow to
hit reliably through HTTP. ``test_sdk_concurrency.py`` shows what the same faults look like
to a client: some of twenty concurrent requests answer 500, and a stream resumed on the
other process could end early.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from graphyard.server._runs import RunManager
from graphyard.server._store import RunRecord, SqliteServerStore


async def test_a_write_waits_for_the_other_processs_lock_even_while_a_read_is_in_flight(
    tmp_path: Path,
) -> None:
    path = tmp_path / "graphyard.db"
    store = SqliteServerStore(str(path))
    await store.open()
    try:
        await store.create_thread("t", "alice", {})
        now = time.time()
        await store.insert_run(RunRecord("r1", "t", "a", "alice", "success", now, now))

        other = sqlite3.connect(path, isolation_level=None)  # another process's connection
        other.execute("BEGIN IMMEDIATE")  # it holds the write lock for a moment
        try:
            read = asyncio.create_task(store.get_run("r1"))  # a request reading...
            write = asyncio.create_task(  # ...while another one writes
                store.insert_run(RunRecord("r2", "t", "a", "alice", "pending", now, now))
            )
            await asyncio.sleep(0.5)
            assert not write.done() or write.exception() is None, write.exception()
        finally:
            other.execute("COMMIT")
            other.close()
        assert (await read).run_id == "r1"
        await write  # went through once the other process let go
        assert (await store.get_run("r2")) is not None
    finally:
        await store.close()


class Steps(TypedDict):
    steps: list[str]


def three_steps() -> StateGraph[Steps]:
    graph = StateGraph(Steps)
    previous = START
    for name in ("one", "two", "three"):
        graph.add_node(name, lambda state, name=name: {"steps": [*state["steps"], name]})
        graph.add_edge(previous, name)
        previous = name
    return graph


class SlowEventStore(SqliteServerStore):
    """A store whose event writes take a while, as on a slow or busy disk."""

    async def append_events(self, run_id: str, events: Sequence[tuple[int, str, str]]) -> None:
        await asyncio.sleep(0.3)
        await super().append_events(run_id, events)


async def test_a_reader_in_another_process_gets_every_event_up_to_end_when_writes_lag(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "graphyard.db")
    writer_store, reader_store = SlowEventStore(path), SqliteServerStore(path)
    await writer_store.open()
    await reader_store.open()
    graph = three_steps().compile(checkpointer=InMemorySaver())
    writer = RunManager(graph, writer_store, assistant_id="a")
    reader = RunManager(graph, reader_store, assistant_id="a")  # another process: no live runs
    try:
        await writer_store.create_thread("t", "alice", {})
        run = await writer.create(
            "t", "alice", {"input": {"steps": []}, "stream_mode": ["updates"]}
        )

        seen = [event async for event in reader.events(run)]

        await writer.wait(run)
        await writer.stop()
        stored = await reader_store.read_events(run.run_id, 0)
        assert [e[1] for e in stored] == ["metadata", "updates", "updates", "updates", "end"]
        assert seen == stored
    finally:
        await writer_store.close()
        await reader_store.close()


class SlowClaimStore(SqliteServerStore):
    """A store whose lock claims come a moment after the run is stored (as when the thread
    was busy at insert time), so another process's dispatcher can claim the run first."""

    async def insert_run(self, run: RunRecord, *, claim_for: str | None = None) -> bool:
        await super().insert_run(run)
        if claim_for is None:
            return False
        await asyncio.sleep(2.5)
        return await self.claim(run.run_id, run.thread_id, claim_for)


async def test_a_run_on_a_free_thread_is_accepted_even_if_another_process_starts_it(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "graphyard.db")
    mine, theirs = SlowClaimStore(path), SqliteServerStore(path)
    await mine.open()
    await theirs.open()
    graph = three_steps().compile(checkpointer=InMemorySaver())  # one saver: one "database"
    here = RunManager(graph, mine, assistant_id="a")
    there = RunManager(graph, theirs, assistant_id="a")
    await there.start()  # its dispatch loop looks for pending runs every second
    try:
        await mine.create_thread("t", "alice", {})
        run = await here.create(
            "t", "alice", {"input": {"steps": []}, "stream_mode": ["updates"]}
        )  # the thread is free: this must be accepted
        done = await here.wait(run)
        assert done.status == "success"
        state = await graph.aget_state({"configurable": {"thread_id": "t"}})
        assert state.values == {"steps": ["one", "two", "three"]}
    finally:
        await there.stop()
        await mine.close()
        await theirs.close()


async def test_a_finished_runs_events_are_deleted_once_their_ttl_has_passed(
    tmp_path: Path,
) -> None:
    store = SqliteServerStore(str(tmp_path / "graphyard.db"))
    await store.open()
    graph = three_steps().compile(checkpointer=InMemorySaver())
    runs = RunManager(graph, store, assistant_id="a", events_ttl=2.0)  # swept every second
    await runs.start()
    try:
        await store.create_thread("t", "alice", {})
        run = await runs.create("t", "alice", {"input": {"steps": []}, "stream_mode": ["updates"]})
        await runs.wait(run)
        stored = await store.read_events(run.run_id, 0)
        assert [e[1] for e in stored] == ["metadata", "updates", "updates", "updates", "end"]
        for _ in range(50):  # swept within ~3 s; 10 s at most
            if not await store.read_events(run.run_id, 0):
                break
            await asyncio.sleep(0.2)
        assert await store.read_events(run.run_id, 0) == []
        finished = await store.get_run(run.run_id)
        assert finished is not None and finished.status == "success"  # the run is kept
    finally:
        await runs.stop()
        await store.close()
