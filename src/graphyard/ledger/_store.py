"""The ledger table, in the same database as the checkpoints, written in batches.

Backends:

- SQLite: the checkpoint file, through the ledger's own ``aiosqlite`` connection in WAL mode
  (so ledger writes never wait behind the saver's connection, and never block the loop);
- Postgres: the checkpointer's database, through the saver's own connection pool when the
  server passes it, or a pool of one opened here (the CLI);
- DynamoDB: a table of its own beside the checkpoint table, ``<table>-ledger``
  (:mod:`graphyard.ledger._dynamodb`): each call is an item in its thread's partition and
  one in its user's, so a thread's cost and a user's day are each one ``Query``.

Records are appended to memory by :meth:`Ledger.record` (called from a callback handler,
on the path of a streaming model call) and written by a background task in one
transaction per batch. :meth:`Ledger.flush` writes whatever is pending: the server awaits
it before a run is marked finished, so a finished run's calls are always stored. Reads
(:meth:`Ledger.spend`, :meth:`Ledger.thread_cost`) add the pending records to the stored
ones under the same lock the flush holds, so a call is never counted twice or missed.

This module must never block the event loop, and never hold a lock across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, Protocol

from graphyard.config import PostgresConfig
from graphyard.errors import ConfigError
from graphyard.ledger._records import CallRecord, CostTotals, GroupBy, ThreadCost

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "Filter",
    "Ledger",
    "Rows",
    "connect_ledger",
    "open_ledger",
    "utc_day_start",
]

log = logging.getLogger(__name__)

COLUMNS = (
    "call_id",
    "run_id",
    "thread_id",
    "user_id",
    "tier",
    "model",
    "node",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_s",
    "started_at",
    "status",
)
"""The table's columns, in :class:`CallRecord` field order."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS graphyard_ledger (
    call_id            TEXT PRIMARY KEY,
    run_id             TEXT NOT NULL,
    thread_id          TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    tier               TEXT NOT NULL,
    model              TEXT NOT NULL,
    node               TEXT,
    input_tokens       BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cache_read_tokens  BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    cost_usd           DOUBLE PRECISION NOT NULL,
    latency_s          DOUBLE PRECISION NOT NULL,
    started_at         DOUBLE PRECISION NOT NULL,
    status             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS graphyard_ledger_thread ON graphyard_ledger (thread_id, started_at);
CREATE INDEX IF NOT EXISTS graphyard_ledger_user ON graphyard_ledger (user_id, started_at);
CREATE INDEX IF NOT EXISTS graphyard_ledger_time ON graphyard_ledger (started_at);
CREATE INDEX IF NOT EXISTS graphyard_ledger_run ON graphyard_ledger (run_id);
"""
"""The one table (same SQL on SQLite and Postgres). ``started_at`` is Unix seconds (UTC)."""

_SCHEMA_LOCK_KEY = 0x6C65_6467_6572_0001  # "ledger", Postgres advisory lock for CREATE TABLE
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM graphyard_ledger"
_SUMS = (
    "COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
    " COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cache_write_tokens), 0),"
    " COALESCE(SUM(cost_usd), 0)"
)
_GROUP_COLUMN = {"tier": "tier", "model": "model", "user": "user_id", "thread": "thread_id"}
_GROUP_COLUMN["run"] = "run_id"
FLUSH_SECONDS = 0.25
"""How often pending records are written (sooner when a batch fills)."""
BATCH = 200


class _Backend(Protocol):
    """A SQL connection: SQLite or Postgres."""

    dialect: str

    async def setup(self) -> None: ...
    async def write(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None: ...
    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    async def close(self) -> None: ...


class Rows(Protocol):
    """Where the ledger's rows live: the SQL table, or DynamoDB items. :class:`Ledger` adds
    the pending records and the locking on top."""

    kind: str

    async def setup(self) -> None: ...
    async def insert(self, records: Sequence[CallRecord]) -> None: ...
    async def spend(self, where: Filter) -> float: ...
    async def select(self, where: Filter) -> list[CallRecord]: ...
    async def group(self, by: GroupBy, where: Filter) -> list[tuple[str, CostTotals]]: ...
    async def delete_threads(self, thread_ids: Sequence[str]) -> int: ...
    async def delete_before(self, when: float) -> int: ...
    async def close(self) -> None: ...


class _Sqlite:
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: Any = None

    async def setup(self) -> None:
        import aiosqlite

        if self.path != ":memory:":
            await asyncio.to_thread(Path(self.path).parent.mkdir, parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=30)
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute("PRAGMA busy_timeout=30000")
        await self._conn.executescript(SCHEMA)

    async def write(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            await self._conn.executemany(sql, rows)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._conn.execute("ROLLBACK"))
            raise
        await asyncio.shield(self._conn.execute("COMMIT"))

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._conn.execute_fetchall(sql, tuple(args))]

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class _Postgres:
    dialect = "postgres"

    def __init__(self, pool: Any, *, owned: bool) -> None:
        self.pool = pool
        self.owned = owned

    async def setup(self) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            # CREATE TABLE IF NOT EXISTS races when two servers start together
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            for statement in filter(str.strip, SCHEMA.split(";")):
                await conn.execute(statement)

    async def write(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(sql.replace("?", "%s"), rows)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        from psycopg.rows import tuple_row

        async with self.pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(sql.replace("?", "%s"), tuple(args))
            return list(await cur.fetchall())

    async def close(self) -> None:
        if self.owned:
            await self.pool.close()


@dataclass(frozen=True, slots=True)
class Filter:
    run_id: str | None = None
    thread_id: str | None = None
    user_id: str | None = None
    since: float | None = None
    until: float | None = None

    def sql(self) -> tuple[str, list[Any]]:
        parts: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("run_id", self.run_id),
            ("thread_id", self.thread_id),
            ("user_id", self.user_id),
        ):
            if value is not None:
                parts.append(f"{column} = ?")
                args.append(value)
        if self.since is not None:
            parts.append("started_at >= ?")
            args.append(self.since)
        if self.until is not None:
            parts.append("started_at < ?")
            args.append(self.until)
        return (" WHERE " + " AND ".join(parts)) if parts else "", args

    def matches(self, r: CallRecord) -> bool:
        return (
            (self.run_id is None or r.run_id == self.run_id)
            and (self.thread_id is None or r.thread_id == self.thread_id)
            and (self.user_id is None or r.user_id == self.user_id)
            and (self.since is None or r.started_at >= self.since)
            and (self.until is None or r.started_at < self.until)
        )


class _SqlRows:
    """The ``graphyard_ledger`` table on SQLite or Postgres: sums and groups in SQL."""

    def __init__(self, db: _Backend) -> None:
        self.db = db
        self.kind = db.dialect
        self._insert = (
            f"INSERT INTO graphyard_ledger ({', '.join(COLUMNS)})"
            f" VALUES ({', '.join('?' * len(COLUMNS))}) ON CONFLICT (call_id) DO NOTHING"
        )

    async def setup(self) -> None:
        await self.db.setup()

    async def insert(self, records: Sequence[CallRecord]) -> None:
        await self.db.write(self._insert, [astuple(r) for r in records])

    async def spend(self, where: Filter) -> float:
        clause, args = where.sql()
        rows = await self.db.fetch(
            f"SELECT COALESCE(SUM(cost_usd), 0) FROM graphyard_ledger{clause}", args
        )
        return float(rows[0][0])

    async def select(self, where: Filter) -> list[CallRecord]:
        clause, args = where.sql()
        rows = await self.db.fetch(f"{_SELECT}{clause} ORDER BY started_at", args)
        return [CallRecord(*row) for row in rows]

    async def group(self, by: GroupBy, where: Filter) -> list[tuple[str, CostTotals]]:
        clause, args = where.sql()
        if by == "day":
            key = (
                "date(started_at, 'unixepoch')"
                if self.kind == "sqlite"
                else "to_char(to_timestamp(started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            )
        else:
            key = _GROUP_COLUMN[by]
        rows = await self.db.fetch(
            f"SELECT {key} AS k, {_SUMS} FROM graphyard_ledger{clause} GROUP BY k", args
        )
        return [
            (str(k), CostTotals(int(n), int(i), int(o), int(cr), int(cw), float(c)))
            for k, n, i, o, cr, cw, c in rows
        ]

    async def delete_threads(self, thread_ids: Sequence[str]) -> int:
        marks = ", ".join("?" * len(thread_ids))
        before = await self.db.fetch(
            f"SELECT COUNT(*) FROM graphyard_ledger WHERE thread_id IN ({marks})", thread_ids
        )
        await self.db.write(
            f"DELETE FROM graphyard_ledger WHERE thread_id IN ({marks})", [tuple(thread_ids)]
        )
        return int(before[0][0])

    async def delete_before(self, when: float) -> int:
        before = await self.db.fetch(
            "SELECT COUNT(*) FROM graphyard_ledger WHERE started_at < ?", [when]
        )
        await self.db.write("DELETE FROM graphyard_ledger WHERE started_at < ?", [(when,)])
        return int(before[0][0])

    async def close(self) -> None:
        await self.db.close()


class Ledger:
    """Every model call's tokens and dollars, stored beside the checkpoints.

    Open one with :func:`open_ledger` (or :func:`connect_ledger` and :meth:`close`).

    >>> import asyncio
    >>> from graphyard.ledger import CallRecord, open_ledger
    >>> async def main() -> float:
    ...     async with open_ledger("sqlite:///:memory:") as ledger:
    ...         ledger.record(CallRecord("c1", "r1", "t1", "alice", "mid", "scripted:mid",
    ...                                  "planner", 100, 20, 0, 0, 0.5, 0.2, 0.0))
    ...         await ledger.flush()
    ...         return await ledger.spend(user_id="alice")
    >>> asyncio.run(main())
    0.5
    """

    def __init__(self, rows: Rows) -> None:
        self._db = rows
        self._pending: list[CallRecord] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[CallRecord], None]] = []
        """Called with each record as it is queued (e.g. Prometheus counters); must be quick
        and must not block. A listener that raises is logged and skipped."""

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgres`` or ``dynamodb``."""
        return self._db.kind

    # --- writing ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the table if needed and start the background writer."""
        await self._db.setup()
        self._task = asyncio.create_task(self._flush_loop(), name="graphyard-ledger")

    def record(self, record: CallRecord) -> None:
        """Queue one call; returns at once (the background task writes it)."""
        self._pending.append(record)
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:
                log.exception("ledger listener %r failed", listener)
        if len(self._pending) >= BATCH:
            self._wake.set()

    async def flush(self) -> None:
        """Write every pending record now (the server awaits this before a run finishes)."""
        async with self._lock:
            if not self._pending:
                return
            batch = list(self._pending)
            await self._db.insert(batch)
            del self._pending[: len(batch)]

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=FLUSH_SECONDS)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # kept pending; the next flush tries again
                log.exception("could not store %d ledger record(s); will retry", len(self._pending))

    async def close(self) -> None:
        """Stop the writer, write what is pending, close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        finally:
            await self._db.close()

    # --- reading ---------------------------------------------------------------------------

    async def spend(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> float:
        """Dollars spent by the calls matching every given filter (stored and pending)."""
        where = Filter(run_id, thread_id, user_id, since, until)
        async with self._lock:
            stored = await self._db.spend(where)
            pending = sum(r.cost_usd for r in self._pending if where.matches(r))
        return stored + pending

    async def records(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[CallRecord]:
        """The calls matching every given filter, oldest first."""
        where = Filter(run_id, thread_id, user_id, since, until)
        async with self._lock:
            stored = await self._db.select(where)
            pending = [r for r in self._pending if where.matches(r)]
        return sorted([*stored, *pending], key=lambda r: r.started_at)

    async def thread_cost(self, thread_id: str, *, since: float | None = None) -> ThreadCost:
        """A thread's totals and its breakdowns by run, tier and model."""
        return ThreadCost.of(thread_id, await self.records(thread_id=thread_id, since=since))

    async def summary(
        self,
        by: GroupBy,
        *,
        since: float | None = None,
        until: float | None = None,
        user_id: str | None = None,
    ) -> list[tuple[str, CostTotals]]:
        """Totals grouped ``by`` day (UTC), tier, model, user, thread or run, largest cost first
        (days: newest first)."""
        await self.flush()
        async with self._lock:
            out = await self._db.group(by, Filter(user_id=user_id, since=since, until=until))
        if by == "day":
            return sorted(out, key=lambda kv: kv[0], reverse=True)
        return sorted(out, key=lambda kv: (-kv[1].cost_usd, kv[0]))

    # --- retention -------------------------------------------------------------------------

    async def delete_threads(self, thread_ids: Iterable[str]) -> int:
        """Erase the calls of these threads (for an erasure request); returns rows deleted.

        The server does NOT call this when a thread is deleted, pruned or swept: the ledger
        is the record of money spent (and what per-user daily budgets count)."""
        ids = list(thread_ids)
        if not ids:
            return 0
        await self.flush()
        async with self._lock:
            return await self._db.delete_threads(ids)

    async def delete_before(self, when: float) -> int:
        """Erase calls that started before Unix time ``when``; returns rows deleted."""
        await self.flush()
        async with self._lock:
            return await self._db.delete_before(when)


async def connect_ledger(
    checkpointer: str,
    *,
    saver: Any = None,
    postgres: PostgresConfig | None = None,
) -> Ledger:
    """Open (and start) the ledger for a checkpointer URL; close it with :meth:`Ledger.close`.

    ``saver``: the open checkpointer, whose Postgres pool or DynamoDB client the ledger then
    shares.

    >>> import asyncio
    >>> async def main() -> str:
    ...     ledger = await connect_ledger("sqlite:///:memory:")
    ...     await ledger.close()
    ...     return ledger.backend
    >>> asyncio.run(main())
    'sqlite'
    """
    from graphyard.persistence import saver_backend, sqlite_path

    kind = saver_backend(checkpointer)
    rows: Rows
    if kind == "sqlite":
        rows = _SqlRows(_Sqlite(sqlite_path(checkpointer)))
    elif kind == "postgres":
        pool = getattr(saver, "conn", None)
        if pool is not None and hasattr(pool, "connection"):
            rows = _SqlRows(_Postgres(pool, owned=False))
        else:
            rows = _SqlRows(_Postgres(await _open_pool(checkpointer, postgres), owned=True))
    else:
        from graphyard.ledger._dynamodb import DynamoDBRows

        rows = await DynamoDBRows.open(checkpointer, saver=saver)
    ledger = Ledger(rows)
    try:
        await ledger.start()
    except BaseException:
        await rows.close()
        raise
    return ledger


async def _open_pool(url: str, config: PostgresConfig | None) -> Any:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool, PoolTimeout

    from graphyard.persistence._postgres import _require_extra, redact

    _require_extra()
    config = config or PostgresConfig()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        min_size=1,
        max_size=2,
        timeout=config.timeout,
        name="graphyard-ledger",
        open=False,
    )
    try:
        await pool.open(wait=True, timeout=config.timeout)
    except PoolTimeout as exc:  # a pool only says it timed out: say where, without a password
        await pool.close()
        raise ConfigError(
            f"cannot reach Postgres at {redact(url)} within {config.timeout}s; check that the "
            "server runs and accepts this user and database (GRAPHYARD_CHECKPOINTER)"
        ) from exc
    return pool


@asynccontextmanager
async def open_ledger(
    checkpointer: str,
    *,
    saver: Any = None,
    postgres: PostgresConfig | None = None,
) -> AsyncIterator[Ledger]:
    """:func:`connect_ledger` as a context manager (pending records are written on exit).

    >>> import asyncio
    >>> async def main() -> list[str]:
    ...     async with open_ledger("sqlite:///:memory:") as ledger:
    ...         return [key for key, _ in await ledger.summary("tier")]
    >>> asyncio.run(main())
    []
    """
    ledger = await connect_ledger(checkpointer, saver=saver, postgres=postgres)
    try:
        yield ledger
    finally:
        await ledger.close()


def utc_day_start(now: float | None = None) -> float:
    """Unix time of the last UTC midnight (the per-user daily budget's window starts there).

    >>> utc_day_start(86400 * 3 + 5)
    259200.0
    """
    now = time.time() if now is None else now
    return float(int(now // 86400) * 86400)
