"""Server records in Postgres: threads, runs, run events and the per-thread lock, in the
checkpointer's own database, on the saver's connection pool.

The same records and rules as :class:`graphyard.server._store.SqliteServerStore`, so every
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
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from graphyard.server._store import (
    _RUN_COLUMNS,
    RunRecord,
    RunStatus,
    SqliteServerStore,
    ThreadRecord,
    ThreadStatus,
    _prune_in_batches,
    _run,
    _thread,
)

__all__ = ["PostgresServerStore", "ServerStore"]

_T = TypeVar("_T")
_SCHEMA_LOCK_KEY = 0x6779_7365_7276_0001  # "gyserv": advisory lock for CREATE TABLE

_SCHEMA = """
CREATE TABLE IF NOT EXISTS graphyard_threads (
    thread_id     TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL DEFAULT 'idle',
    active_run_id TEXT
);
CREATE INDEX IF NOT EXISTS graphyard_threads_owner ON graphyard_threads(owner, updated_at);
CREATE TABLE IF NOT EXISTS graphyard_runs (
    run_id        TEXT PRIMARY KEY,
    thread_id     TEXT NOT NULL,
    assistant_id  TEXT NOT NULL,
    owner         TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    kwargs        TEXT NOT NULL DEFAULT '{}',
    multitask_strategy TEXT NOT NULL DEFAULT 'reject',
    worker        TEXT,
    heartbeat_at  DOUBLE PRECISION,
    cancel        TEXT,
    error         TEXT,
    rid           BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX IF NOT EXISTS graphyard_runs_thread ON graphyard_runs(thread_id, created_at);
CREATE INDEX IF NOT EXISTS graphyard_runs_status ON graphyard_runs(status);
CREATE INDEX IF NOT EXISTS graphyard_runs_updated ON graphyard_runs(updated_at);
CREATE TABLE IF NOT EXISTS graphyard_run_events (
    run_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    event   TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
)
"""

_THREAD_COLUMNS = "thread_id, owner, created_at, updated_at, metadata, status, active_run_id"


class PostgresServerStore:
    """Threads, runs, events and locks in the Postgres checkpoint database.

    ``pool``: a ``psycopg_pool.AsyncConnectionPool`` (the saver's: autocommit, dict rows);
    the store never closes it.
    """

    path = "graphyard-server.db"
    """Where a side store with no table here would go (the ledger on DynamoDB only)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._events = asyncio.Lock()

    async def open(self) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            # CREATE TABLE IF NOT EXISTS races when two servers start together
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            for statement in filter(str.strip, _SCHEMA.split(";")):
                await conn.execute(statement)

    async def close(self) -> None:
        """Nothing to close: the pool is the saver's."""

    async def _tx(self, fn: Callable[[Any], Awaitable[_T]]) -> _T:
        """``fn(cursor)`` in one transaction on a pooled connection (tuple rows)."""
        from psycopg.rows import tuple_row

        async with (
            self.pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            return await fn(cur)

    async def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        params = tuple(args)

        async def fetch(cur: Any) -> list[Any]:
            await cur.execute(sql, params)
            return list(await cur.fetchall())

        return await self._tx(fetch)

    async def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        return next(iter(await self._all(sql, args)), None)

    async def _run_sql(self, sql: str, args: Sequence[Any]) -> int:
        async def run(cur: Any) -> int:
            await cur.execute(sql, args)
            return int(cur.rowcount)

        return await self._tx(run)

    # --- threads -------------------------------------------------------------------------

    async def create_thread(
        self, thread_id: str, owner: str, metadata: dict[str, Any], *, if_exists: str = "raise"
    ) -> ThreadRecord | None:
        """Create a thread; ``None`` if it exists (the caller decides what that means)."""
        now = time.time()
        text = json.dumps(metadata)
        created = await self._run_sql(
            "INSERT INTO graphyard_threads (thread_id, owner, created_at, updated_at, metadata)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (thread_id) DO NOTHING",
            (thread_id, owner, now, now, text),
        )
        if created != 1:
            return None
        return ThreadRecord(thread_id, owner, now, now, json.loads(text), "idle", None)

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        row = await self._one(
            f"SELECT {_THREAD_COLUMNS} FROM graphyard_threads WHERE thread_id = %s", (thread_id,)
        )
        return _thread(row) if row else None

    async def update_thread(
        self, thread_id: str, *, metadata: dict[str, Any] | None = None, status: str | None = None
    ) -> None:
        sets, args = ["updated_at = %s"], [time.time()]
        if metadata is not None:
            sets.append("metadata = %s")
            args.append(json.dumps(metadata))
        if status is not None:
            sets.append("status = %s")
            args.append(status)
        await self._run_sql(
            f"UPDATE graphyard_threads SET {', '.join(sets)} WHERE thread_id = %s",
            (*args, thread_id),
        )

    async def delete_thread(self, thread_id: str) -> None:
        async def delete(cur: Any) -> None:
            await _lock_thread(cur, thread_id)
            await cur.execute(
                "DELETE FROM graphyard_run_events WHERE run_id IN"
                " (SELECT run_id FROM graphyard_runs WHERE thread_id = %s)",
                (thread_id,),
            )
            await cur.execute("DELETE FROM graphyard_runs WHERE thread_id = %s", (thread_id,))
            await cur.execute("DELETE FROM graphyard_threads WHERE thread_id = %s", (thread_id,))

        await self._tx(delete)

    async def search_threads(
        self,
        owner: str | None,
        *,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
        ids: Sequence[str] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
    ) -> list[ThreadRecord]:
        where: list[str] = []
        args: list[Any] = []
        if owner is not None:
            where.append("owner = %s")
            args.append(owner)
        if status:
            where.append("status = %s")
            args.append(status)
        if ids:
            where.append("thread_id = ANY(%s)")
            args.append(list(ids))
        for key, value in (metadata or {}).items():
            # as SQLite's json_extract: the value at that key equals the given JSON value
            where.append("(metadata::jsonb -> %s) = %s::jsonb")
            args.extend([key, json.dumps(value)])
        column = {
            "created_at": "created_at",
            "updated_at": "updated_at",
            "thread_id": "thread_id",
            "status": "status",
        }.get(sort_by, "created_at")
        order = "ASC" if sort_order.lower() == "asc" else "DESC"
        sql = (
            f"SELECT {_THREAD_COLUMNS} FROM graphyard_threads"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {column} {order} LIMIT %s OFFSET %s"
        )
        return [_thread(r) for r in await self._all(sql, (*args, limit, offset))]

    async def count_threads(self, owner: str | None) -> int:
        if owner is None:
            row = await self._one("SELECT COUNT(*) FROM graphyard_threads")
        else:
            row = await self._one(
                "SELECT COUNT(*) FROM graphyard_threads WHERE owner = %s", (owner,)
            )
        return int(row[0])

    # --- runs and the thread lock --------------------------------------------------------

    async def insert_run(self, run: RunRecord, *, claim_for: str | None = None) -> bool:
        """Store a new run; with ``claim_for``, also try to claim it for that worker in the
        same transaction. True if it was claimed: it is then ``running`` and holds its
        thread's lock."""
        row = (
            run.run_id,
            run.thread_id,
            run.assistant_id,
            run.owner,
            run.status,
            run.created_at,
            run.updated_at,
            json.dumps(run.metadata),
            json.dumps(run.kwargs),
            run.multitask_strategy,
            run.worker,
            run.heartbeat_at,
            run.cancel,
            run.error,
        )

        async def insert(cur: Any) -> bool:
            await cur.execute(
                f"INSERT INTO graphyard_runs ({_RUN_COLUMNS}) VALUES ({', '.join(['%s'] * 14)})",
                row,
            )
            await cur.execute(
                "UPDATE graphyard_threads SET updated_at = %s WHERE thread_id = %s",
                (run.created_at, run.thread_id),
            )
            if claim_for is None:
                return False
            return await _claim_in(cur, run.run_id, run.thread_id, claim_for)

        return await self._tx(insert)

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self._one(
            f"SELECT {_RUN_COLUMNS} FROM graphyard_runs WHERE run_id = %s", (run_id,)
        )
        return _run(row) if row else None

    async def list_runs(
        self, thread_id: str, *, status: str | None = None, limit: int = 10, offset: int = 0
    ) -> list[RunRecord]:
        sql = f"SELECT {_RUN_COLUMNS} FROM graphyard_runs WHERE thread_id = %s"
        args: list[Any] = [thread_id]
        if status:
            sql += " AND status = %s"
            args.append(status)
        sql += " ORDER BY created_at DESC, rid DESC LIMIT %s OFFSET %s"
        return [_run(r) for r in await self._all(sql, (*args, limit, offset))]

    async def delete_run(self, run_id: str) -> None:
        async def delete(cur: Any) -> None:
            await cur.execute("DELETE FROM graphyard_run_events WHERE run_id = %s", (run_id,))
            await cur.execute("DELETE FROM graphyard_runs WHERE run_id = %s", (run_id,))

        await self._tx(delete)

    async def claim(self, run_id: str, thread_id: str, worker: str) -> bool:
        """Take the thread's lock for a pending run and mark it running; False if held."""
        return await self._tx(lambda cur: _claim_in(cur, run_id, thread_id, worker))

    async def finish(
        self, run: RunRecord, status: RunStatus, thread_status: ThreadStatus, error: str | None
    ) -> None:
        """Record a run's end and release its thread's lock, in one transaction."""
        now = time.time()

        async def finish(cur: Any) -> None:
            await _lock_thread(cur, run.thread_id)
            await cur.execute(
                "UPDATE graphyard_runs SET status = %s, error = %s, updated_at = %s,"
                " heartbeat_at = NULL WHERE run_id = %s",
                (status, error, now, run.run_id),
            )
            await cur.execute(
                "SELECT 1 FROM graphyard_runs WHERE thread_id = %s AND status = 'pending' LIMIT 1",
                (run.thread_id,),
            )
            pending = await cur.fetchone()
            await cur.execute(
                "UPDATE graphyard_threads SET active_run_id = NULL, status = %s, updated_at = %s"
                " WHERE thread_id = %s AND active_run_id = %s",
                ("busy" if pending else thread_status, now, run.thread_id, run.run_id),
            )

        await self._tx(finish)

    async def next_pending(self, thread_id: str) -> RunRecord | None:
        row = await self._one(
            f"SELECT {_RUN_COLUMNS} FROM graphyard_runs WHERE thread_id = %s AND"
            " status = 'pending' ORDER BY created_at, rid LIMIT 1",
            (thread_id,),
        )
        return _run(row) if row else None

    async def pending_threads(self) -> list[str]:
        """Threads with a pending run and a free lock: work any process may pick up."""
        rows = await self._all(
            "SELECT DISTINCT r.thread_id FROM graphyard_runs r JOIN graphyard_threads t"
            " ON t.thread_id = r.thread_id WHERE r.status = 'pending' AND t.active_run_id IS NULL"
        )
        return [r[0] for r in rows]

    async def request_cancel(self, run_id: str, action: str) -> RunRecord | None:
        """Ask whichever process runs ``run_id`` to stop it; a pending run stops at once."""
        now = time.time()

        async def request(cur: Any) -> None:
            await cur.execute(
                "UPDATE graphyard_runs SET cancel = %s, updated_at = %s WHERE run_id = %s"
                " AND status IN ('pending', 'running')",
                (action, now, run_id),
            )
            await cur.execute(
                "UPDATE graphyard_runs SET status = 'interrupted' WHERE run_id = %s"
                " AND status = 'pending'",
                (run_id,),
            )

        await self._tx(request)
        return await self.get_run(run_id)

    async def heartbeat(self, run_ids: Sequence[str]) -> dict[str, str | None]:
        """Refresh the lease of our running runs; returns each one's cancel request."""
        if not run_ids:
            return {}
        now, ids = time.time(), sorted(run_ids)  # one lock order for every process

        async def beat(cur: Any) -> list[Any]:
            await cur.execute(
                "UPDATE graphyard_runs SET heartbeat_at = %s WHERE run_id = ANY(%s)", (now, ids)
            )
            await cur.execute(
                "SELECT run_id, cancel FROM graphyard_runs WHERE run_id = ANY(%s)", (ids,)
            )
            return list(await cur.fetchall())

        return {r[0]: r[1] for r in await self._tx(beat)}

    async def orphaned_runs(self, lease: float, is_dead: Any) -> list[RunRecord]:
        """Running runs whose worker died: its process is gone, or its lease ran out."""
        rows = await self._all(
            f"SELECT {_RUN_COLUMNS} FROM graphyard_runs WHERE status = 'running'"
        )
        now = time.time()
        return [
            run
            for run in map(_run, rows)
            if is_dead(run.worker) or (run.heartbeat_at or 0) < now - lease
        ]

    async def active_run_of(self, thread_id: str) -> RunRecord | None:
        row = await self._one(
            f"SELECT {_RUN_COLUMNS} FROM graphyard_runs WHERE run_id ="
            " (SELECT active_run_id FROM graphyard_threads WHERE thread_id = %s)",
            (thread_id,),
        )
        return _run(row) if row else None

    # --- events --------------------------------------------------------------------------

    async def append_events(self, run_id: str, events: Sequence[tuple[int, str, str]]) -> None:
        await self.append_events_many([(run_id, events)])

    async def append_events_many(
        self, batches: Sequence[tuple[str, Sequence[tuple[int, str, str]]]]
    ) -> None:
        """Store events of many runs in one transaction, batches in the order taken."""
        rows = [(rid, seq, event, data) for rid, events in batches for seq, event, data in events]
        if not rows:
            return

        async def insert(cur: Any) -> None:
            await cur.executemany(
                "INSERT INTO graphyard_run_events (run_id, seq, event, data)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                rows,
            )

        async with self._events:  # FIFO, entered before any await: see the module docstring
            await self._tx(insert)

    async def prune_events(self, since: float, before: float, *, batch: int = 500) -> int:
        """Delete the events of runs that ended between ``since`` and ``before`` (epoch
        seconds), ``batch`` runs per transaction. Returns how many events were deleted."""

        def step(start: float) -> Awaitable[tuple[int, int, float]]:
            async def prune(cur: Any) -> tuple[int, int, float]:
                await cur.execute(
                    "SELECT run_id, updated_at FROM graphyard_runs WHERE updated_at >= %s"
                    " AND updated_at < %s AND status NOT IN ('pending', 'running')"
                    " ORDER BY updated_at LIMIT %s",
                    (start, before, batch),
                )
                runs = await cur.fetchall()
                if not runs:
                    return 0, 0, start
                await cur.execute(
                    "DELETE FROM graphyard_run_events WHERE run_id = ANY(%s)",
                    ([r[0] for r in runs],),
                )
                return int(cur.rowcount), len(runs), float(runs[-1][1])

            return self._tx(prune)

        return await _prune_in_batches(step, since, batch)

    async def read_events(self, run_id: str, after: int) -> list[tuple[int, str, str]]:
        rows = await self._all(
            "SELECT seq, event, data FROM graphyard_run_events WHERE run_id = %s AND seq > %s"
            " ORDER BY seq",
            (run_id, after),
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


async def _lock_thread(cur: Any, thread_id: str) -> None:
    """Lock the thread's row first. Every transaction that touches a thread and its runs
    takes the thread's row before any run's (a claim updates the thread, then the run), so
    two of them never wait on each other in a cycle (Postgres would abort one: deadlock)."""
    await cur.execute(
        "SELECT 1 FROM graphyard_threads WHERE thread_id = %s FOR UPDATE", (thread_id,)
    )


async def _claim_in(cur: Any, run_id: str, thread_id: str, worker: str) -> bool:
    """Inside a transaction: take ``thread_id``'s lock for ``run_id``."""
    now = time.time()
    await cur.execute(
        "UPDATE graphyard_threads SET active_run_id = %s, status = 'busy', updated_at = %s"
        " WHERE thread_id = %s AND active_run_id IS NULL",
        (run_id, now, thread_id),
    )
    if cur.rowcount != 1:
        return False
    await cur.execute(
        "UPDATE graphyard_runs SET status = 'running', worker = %s, heartbeat_at = %s,"
        " updated_at = %s WHERE run_id = %s AND status = 'pending'",
        (worker, now, now, run_id),
    )
    if cur.rowcount != 1:  # cancelled or deleted meanwhile: give the lock back
        await cur.execute(
            "UPDATE graphyard_threads SET active_run_id = NULL, status = 'idle'"
            " WHERE thread_id = %s AND active_run_id = %s",
            (thread_id, run_id),
        )
        return False
    return True


ServerStore = SqliteServerStore | PostgresServerStore
"""Either store: the server's records in the checkpointer's own database."""
