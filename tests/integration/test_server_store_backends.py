"""The server's records (threads, runs, events, the per-thread lock) behave the same on
SQLite and on Postgres, and on Postgres they live in the checkpointer's database: two
stores on one database (two server processes, or two machines) share one lock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from graphyard.persistence import open_saver
from graphyard.server._store import RunRecord, SqliteServerStore, new_id
from graphyard.server._store_postgres import PostgresServerStore, ServerStore


@pytest.fixture
async def stores(checkpointer_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Opens stores on one database, as separate server processes would (Postgres: each
    with a pool of its own)."""
    async with AsyncExitStack() as stack:

        async def open_one() -> ServerStore:
            store: ServerStore
            if checkpointer_url.startswith("sqlite:"):
                store = SqliteServerStore(checkpointer_url.removeprefix("sqlite:///"))
            else:
                saver = await stack.enter_async_context(open_saver(checkpointer_url))
                store = PostgresServerStore(saver.conn)
            await store.open()
            stack.push_async_callback(store.close)
            return store

        yield open_one


def _run(thread_id: str, owner: str = "alice", **kw: Any) -> RunRecord:
    now = time.time()
    return RunRecord(new_id(), thread_id, "agent", owner, "pending", now, now, **kw)


async def test_threads_are_created_once_found_updated_searched_and_deleted(stores: Any) -> None:
    store = await stores()
    made = await store.create_thread("t1", "alice", {"team": "a", "n": 1})
    assert made is not None and made.metadata == {"team": "a", "n": 1}
    assert made.status == "idle" and made.active_run_id is None
    assert await store.create_thread("t1", "bob", {}) is None  # exists: the caller decides
    await store.create_thread("t2", "alice", {"team": "b"})
    await store.create_thread("t3", "bob", {"team": "a"})

    got = await store.get_thread("t1")
    assert got is not None and (got.owner, got.metadata) == ("alice", {"team": "a", "n": 1})
    await store.update_thread("t1", metadata={"team": "c"}, status="interrupted")
    got = await store.get_thread("t1")
    assert got is not None and (got.metadata, got.status) == ({"team": "c"}, "interrupted")

    found = await store.search_threads("alice", sort_by="thread_id", sort_order="asc")
    assert [t.thread_id for t in found] == ["t1", "t2"]
    assert [t.thread_id for t in await store.search_threads(None, metadata={"team": "a"})] == ["t3"]
    assert [t.thread_id for t in await store.search_threads("alice", ids=["t2", "t3"])] == ["t2"]
    assert [t.thread_id for t in await store.search_threads(None, status="interrupted")] == ["t1"]
    assert (await store.count_threads("alice"), await store.count_threads(None)) == (2, 3)

    run = _run("t2")
    await store.insert_run(run)
    await store.append_events(run.run_id, [(1, "metadata", "{}")])
    await store.delete_thread("t2")
    assert await store.get_thread("t2") is None
    assert await store.get_run(run.run_id) is None
    assert await store.read_events(run.run_id, 0) == []


async def test_twenty_runs_raced_from_two_stores_claim_the_thread_once(stores: Any) -> None:
    first, second = await stores(), await stores()
    await first.create_thread("t", "alice", {})
    runs = [_run("t") for _ in range(20)]
    claimed = await asyncio.gather(
        *(
            (first if i % 2 else second).insert_run(run, claim_for=f"worker-{i % 2}")
            for i, run in enumerate(runs)
        )
    )
    assert sum(claimed) == 1, claimed
    winner = runs[claimed.index(True)]
    thread = await second.get_thread("t")
    assert thread is not None and (thread.active_run_id, thread.status) == (
        winner.run_id,
        "busy",
    )
    active = await first.active_run_of("t")
    assert active is not None and active.status == "running"

    # the others wait, oldest first; finishing frees the lock and says work is pending
    pending = await first.next_pending("t")
    assert (
        pending is not None and pending.run_id == runs[[not c for c in claimed].index(True)].run_id
    )
    assert await second.pending_threads() == []  # the lock is held
    await first.finish(winner, "success", "idle", None)
    thread = await first.get_thread("t")
    assert thread is not None and (thread.active_run_id, thread.status) == (None, "busy")
    assert await second.pending_threads() == ["t"]
    assert await second.claim(pending.run_id, "t", "worker-x")
    assert not await first.claim(runs[-1].run_id, "t", "worker-y")  # held again


async def test_runs_are_listed_cancelled_beaten_and_orphaned(stores: Any) -> None:
    store = await stores()
    await store.create_thread("t", "alice", {})
    first = _run("t", metadata={"m": 1}, kwargs={"input": {"x": [1, 2]}})
    assert await store.insert_run(first, claim_for="w1")
    queued = _run("t")
    queued.created_at += 1
    assert not await store.insert_run(queued, claim_for="w2")

    listed = await store.list_runs("t")
    assert [r.run_id for r in listed] == [queued.run_id, first.run_id]  # newest first
    assert listed[1].kwargs == {"input": {"x": [1, 2]}} and listed[1].metadata == {"m": 1}
    assert [r.run_id for r in await store.list_runs("t", status="pending")] == [queued.run_id]

    cancelled = await store.request_cancel(queued.run_id, "interrupt")
    assert cancelled is not None and cancelled.status == "interrupted"
    await store.request_cancel(first.run_id, "rollback")
    assert await store.heartbeat([first.run_id]) == {first.run_id: "rollback"}

    assert await store.orphaned_runs(60.0, lambda worker: False) == []
    orphans = await store.orphaned_runs(60.0, lambda worker: worker == "w1")
    assert [r.run_id for r in orphans] == [first.run_id]
    await store.delete_run(queued.run_id)
    assert await store.get_run(queued.run_id) is None


async def test_events_read_back_in_order_from_another_store(stores: Any) -> None:
    writer, reader = await stores(), await stores()
    await writer.create_thread("t", "alice", {})
    a, b = _run("t"), _run("t")
    await writer.insert_run(a)
    await writer.insert_run(b)
    await writer.append_events_many(
        [(a.run_id, [(1, "metadata", '{"run_id":"a"}'), (2, "values", "{}")]), (b.run_id, [])]
    )
    await writer.append_events(a.run_id, [(2, "values", "{}"), (3, "end", "null")])  # a retry
    # a flush after flush, fired without waiting, still lands in order
    await asyncio.gather(
        *(writer.append_events(b.run_id, [(i, "messages", f'["tok{i}"]')]) for i in range(1, 40))
    )
    assert await reader.read_events(a.run_id, 0) == [
        (1, "metadata", '{"run_id":"a"}'),
        (2, "values", "{}"),
        (3, "end", "null"),
    ]
    assert await reader.read_events(a.run_id, 2) == [(3, "end", "null")]
    assert [seq for seq, _, _ in await reader.read_events(b.run_id, 0)] == list(range(1, 40))


async def _set_updated_at(store: ServerStore, run_id: str, when: float) -> None:
    """Back-date a run, as if it had ended (or last changed) at ``when``."""
    if isinstance(store, SqliteServerStore):
        sql = "UPDATE graphyard_runs SET updated_at = ? WHERE run_id = ?"
        await store.call(lambda db: db.execute(sql, (when, run_id)).close())
    else:
        await store._run_sql(
            "UPDATE graphyard_runs SET updated_at = %s WHERE run_id = %s", (when, run_id)
        )


async def test_events_of_runs_ended_before_the_cutoff_are_pruned_in_batches(
    stores: Any,
) -> None:
    store = await stores()
    await store.create_thread("t", "alice", {})
    now = time.time()
    old = [_run("t") for _ in range(7)]
    recent, running = _run("t"), _run("t")
    for run in [*old, recent, running]:
        await store.insert_run(run)
        await store.append_events(run.run_id, [(1, "metadata", "{}"), (2, "end", "null")])
    for run in [*old, recent]:
        await store.finish(run, "success", "idle", None)
    await store.claim(running.run_id, "t", "w")
    for i, run in enumerate(old):  # ended an hour ago
        await _set_updated_at(store, run.run_id, now - 3600 + i)
    await _set_updated_at(store, running.run_id, 0.0)  # old, but it has not ended

    deleted = await store.prune_events(0.0, now - 60, batch=3)  # three batches
    assert deleted == 2 * len(old)
    for run in old:
        assert await store.read_events(run.run_id, 0) == []
        assert await store.get_run(run.run_id) is not None  # the run record stays
    assert len(await store.read_events(recent.run_id, 0)) == 2
    assert len(await store.read_events(running.run_id, 0)) == 2
    assert await store.prune_events(0.0, now - 60, batch=3) == 0


@pytest.mark.postgres
async def test_a_thread_deleted_while_a_claim_holds_its_row_does_not_deadlock(
    postgres_url: str,
) -> None:
    """A claim locks the thread's row, then the run's. A delete that took the run rows
    first and then waited for the thread's row made a cycle, and Postgres aborted one of
    the two ("deadlock detected"). Here a claim holds the thread row while the delete
    starts, then updates the run."""
    import psycopg

    async with open_saver(postgres_url) as saver:
        store = PostgresServerStore(saver.conn)
        await store.open()
        await store.create_thread("t", "alice", {})
        run = _run("t")
        await store.insert_run(run)
        await store.append_events(run.run_id, [(1, "metadata", "{}")])
        async with await psycopg.AsyncConnection.connect(postgres_url) as claim:
            async with claim.transaction():
                await claim.execute(
                    "UPDATE graphyard_threads SET active_run_id = %s WHERE thread_id = 't'",
                    (run.run_id,),
                )
                delete = asyncio.create_task(store.delete_thread("t"))
                await asyncio.sleep(0.5)  # the delete has started and waits for us
                assert not delete.done()
                await claim.execute(
                    "UPDATE graphyard_runs SET status = 'running' WHERE run_id = %s",
                    (run.run_id,),
                )
            await delete  # went through once the claim committed; nothing aborted
        assert await store.get_thread("t") is None
        assert await store.get_run(run.run_id) is None
