"""The server's run store under cancellation, found through the HTTP tests.

``RunManager._execute`` cancels its event flusher when a run ends. A flush cancelled while
its ``BEGIN IMMEDIATE`` was queued on aiosqlite's thread (the store's connection then) used
to leave that transaction open on the store's only connection, and from then on every ``/chat`` answered 500
("cannot start a transaction within a transaction"). Over HTTP the race depends on
timing; here it is reproduced deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from graphyard.server._store import SqliteServerStore


async def test_a_write_cancelled_while_it_begins_leaves_the_store_usable(tmp_path: Path) -> None:
    store = SqliteServerStore(str(tmp_path / "server.db"))
    await store.open()
    try:
        flush = asyncio.create_task(store.append_events("run-1", [(1, "values", "{}")]))
        await asyncio.sleep(0)  # the flush now waits for its BEGIN IMMEDIATE
        flush.cancel()  # as RunManager._execute cancels its flusher when a run ends
        with contextlib.suppress(asyncio.CancelledError):
            await flush

        assert await store.create_thread("t1", "anonymous", {}) is not None
        assert not await store.call(lambda db: db.in_transaction)
    finally:
        await store.close()


async def test_no_cursor_leaves_the_store_thread(tmp_path: Path) -> None:
    """A cursor dropped on the event loop's thread resets its statement there while the
    store's thread may be running the same cached statement ("bad parameter or other API
    misuse", seen once in 1,200 streamed runs): a transaction returning one is refused and
    rolled back."""
    store = SqliteServerStore(str(tmp_path / "server.db"))
    await store.open()
    try:

        def leaky(db: sqlite3.Connection) -> sqlite3.Cursor:
            return db.execute("UPDATE graphyard_threads SET status = 'busy'")

        with pytest.raises(TypeError, match="cursor"):
            await store._tx(leaky)
        assert not await store.call(lambda db: db.in_transaction)
        assert await store.create_thread("t1", "anonymous", {}) is not None
    finally:
        await store.close()
