"""Server records in Postgres: threads, runs, run events and the per-thread lock, in the
checkpointer's own database, on the saver's connection pool.

The same records, rules and SQL as :class:`graphyard.server._store.SqliteServerStore` (both
are :class:`~graphyard.server._store.SqlServerStore`; this one only runs its transactions on
a pooled connection, with ``%s`` placeholders), so every
server process pointed at one Postgres database shares them: the run lock (a conditional
``UPDATE ... WHERE active_run_id IS NULL``, which Postgres serializes on the thread's row:
a second claimer waits for the first to commit, re-reads the row and finds it taken),
the events a client resumes with ``Last-Event-ID`` from any process, thread ownership, and
the orphaned runs a restarted server marks ``error``. Before this store the server kept
these in a SQLite file beside each process, so two machines on one Postgres each admitted
a run on the same thread.

Event batches of one process are written one at a time, in the order they were taken
(an ``asyncio.Lock`` is FIFO): two batches of a run committed out of order would let a
reader in another process skip the earlier one for good.

This module must never hold a Python-level lock across processes or trust memory for
anything another process needs to see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from graphyard.server._store import Body, SqliteServerStore, SqlServerStore, _single, schema

__all__ = ["PostgresServerStore", "ServerStore"]

_T = TypeVar("_T")
_SCHEMA_LOCK_KEY = 0x6779_7365_7276_0001  # "gyserv": advisory lock for CREATE TABLE


def _pg(sql: str) -> str:
    """The store's ``?`` placeholders as psycopg's (no statement has a literal ``?``)."""
    return sql.replace("?", "%s")


class PostgresServerStore(SqlServerStore):
    """Threads, runs, events and locks in the Postgres checkpoint database.

    ``pool``: a ``psycopg_pool.AsyncConnectionPool`` (the saver's: autocommit, dict rows);
    the store never closes it.
    """

    _SEQ = "rid"
    _LOCK_THREAD = "SELECT 1 FROM graphyard_threads WHERE thread_id = ? FOR UPDATE"

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._events = asyncio.Lock()

    async def open(self) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            # CREATE TABLE IF NOT EXISTS races when two servers start together
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            for statement in filter(str.strip, schema("postgres").split(";")):
                await conn.execute(statement)

    async def close(self) -> None:
        """Nothing to close: the pool is the saver's."""

    async def _run(self, body: Body[_T]) -> _T:
        """The transaction's statements on one pooled connection, in one transaction."""
        from psycopg.rows import tuple_row

        async with (
            self.pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            answer: Any = None
            try:
                while True:
                    kind, sql, args = body.send(answer)
                    if kind == "many":
                        await cur.executemany(_pg(sql), args)
                    else:
                        await cur.execute(_pg(sql), args)
                    answer = await cur.fetchall() if kind == "rows" else int(cur.rowcount)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        from psycopg.rows import tuple_row

        async with self.pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(_pg(sql), tuple(args))
            return list(await cur.fetchall())

    async def _run_sql(self, sql: str, args: Sequence[Any]) -> int:
        """One statement in its own transaction; its row count (maintenance and tests)."""
        return await self._run(_single("exec", sql, args))  # type: ignore[no-any-return]

    def _metadata_clause(self, key: str, value: Any) -> tuple[str, list[Any]]:
        import json

        return "(metadata::jsonb -> ?) = ?::jsonb", [key, json.dumps(value)]

    async def append_events_many(
        self, batches: Sequence[tuple[str, Sequence[tuple[int, str, str]]]]
    ) -> None:
        """Batches in the order taken: the lock is FIFO and entered before any await (two
        pooled connections could otherwise commit a run's later batch first)."""
        async with self._events:
            await super().append_events_many(batches)


ServerStore = SqliteServerStore | PostgresServerStore
"""Either store: the server's records in the checkpointer's own database."""
