"""Server records beside the checkpoints: threads, runs, run events and the per-thread lock.

They live in the checkpointer's own database, never in process memory, so that

- two server processes sharing a database admit exactly one active run per thread: the
  lock is a conditional ``UPDATE ... WHERE active_run_id IS NULL`` that the database
  serializes;
- a client can resume a stream with ``Last-Event-ID`` after a reconnect, from any process;
- a run that was active when its server died is found and marked ``error`` on restart.

SQLite (WAL, its own connection to the checkpoint file) is implemented here. This module
must never hold a Python-level lock across processes or trust memory for anything another
process needs to see.

The connection lives on one thread of its own, and each operation (a whole transaction,
BEGIN IMMEDIATE to COMMIT) is one function run there: one thread round trip per
transaction. aiosqlite, used before, makes every statement, BEGIN and COMMIT a round trip
of its own; creating and claiming a run took six, and the write lock was held across all of
them while the other 199 clients of ``benchmarks/server_load.py`` queued behind it. A
transaction also can no longer be cut in half by a cancelled task: it runs to its end or
never starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "RunRecord",
    "RunStatus",
    "SqlServerStore",
    "SqliteServerStore",
    "ThreadRecord",
    "ThreadStatus",
]

RunStatus = Literal["pending", "running", "error", "success", "timeout", "interrupted"]
"""The LangGraph SDK's run statuses."""
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
"""The LangGraph SDK's thread statuses."""
ACTIVE: tuple[RunStatus, ...] = ("pending", "running")
_T = TypeVar("_T")

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS graphyard_threads (
    thread_id     TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{{}}',
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
    metadata      TEXT NOT NULL DEFAULT '{{}}',
    kwargs        TEXT NOT NULL DEFAULT '{{}}',
    multitask_strategy TEXT NOT NULL DEFAULT 'reject',
    worker        TEXT,
    heartbeat_at  DOUBLE PRECISION,
    cancel        TEXT,
    error         TEXT{run_seq}
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
){events_options};
"""


def schema(dialect: str) -> str:
    """The store's tables, written once for both databases (``DOUBLE PRECISION`` is
    SQLite's ``REAL``): Postgres adds the ``rid`` insertion order SQLite's ``rowid`` gives,
    SQLite keeps events ``WITHOUT ROWID``.

    >>> "WITHOUT ROWID" in schema("sqlite"), "rid" in schema("postgres")
    (True, True)
    """
    if dialect == "postgres":
        return _SCHEMA_SQL.format(
            run_seq=",\n    rid           BIGINT GENERATED ALWAYS AS IDENTITY", events_options=""
        )
    return _SCHEMA_SQL.format(run_seq="", events_options=" WITHOUT ROWID")


@dataclass(slots=True)
class ThreadRecord:
    thread_id: str
    owner: str
    created_at: float
    updated_at: float
    metadata: dict[str, Any]
    status: ThreadStatus
    active_run_id: str | None


@dataclass(slots=True)
class RunRecord:
    run_id: str
    thread_id: str
    assistant_id: str
    owner: str
    status: RunStatus
    created_at: float
    updated_at: float
    metadata: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    multitask_strategy: str = "reject"
    worker: str | None = None
    heartbeat_at: float | None = None
    cancel: str | None = None
    error: str | None = None


def _thread(row: Sequence[Any]) -> ThreadRecord:
    return ThreadRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6])


_RUN_COLUMNS = (
    "run_id, thread_id, assistant_id, owner, status, created_at, updated_at, metadata, kwargs,"
    " multitask_strategy, worker, heartbeat_at, cancel, error"
)


def _run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        json.loads(row[7]),
        json.loads(row[8]),
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
    )


Step = tuple[Literal["exec", "rows", "many"], str, Sequence[Any]]
"""One statement of a transaction: ``exec`` answers its row count, ``rows`` its rows,
``many`` (``executemany``) its row count. SQL uses ``?`` placeholders on every backend."""
Body = Generator[Step, Any, _T]
"""A transaction: yields its statements, receives each one's answer, returns its result.
Written once here; each backend drives it (a thread for SQLite, a pooled async connection
for Postgres)."""

_THREAD_COLUMNS = "thread_id, owner, created_at, updated_at, metadata, status, active_run_id"
_INSERT_EVENTS = (
    "INSERT INTO graphyard_run_events (run_id, seq, event, data) VALUES (?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class SqlServerStore:
    """Threads, runs, events and locks as SQL, the same on every SQL backend. A subclass
    says how a transaction (:meth:`_run`) and a read (:meth:`_all`) reach its database."""

    _SEQ = "rowid"
    """A column that orders runs by insertion (ties of ``created_at``)."""
    _LOCK_THREAD: str | None = None
    """SQL that locks a thread's row for the transaction, where rows lock one by one."""

    async def _run(self, body: Body[_T]) -> _T:
        raise NotImplementedError

    async def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _metadata_clause(self, key: str, value: Any) -> tuple[str, list[Any]]:
        """A WHERE clause: the thread's metadata at ``key`` equals JSON ``value``."""
        raise NotImplementedError

    async def _one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        return next(iter(await self._all(sql, args)), None)

    def _lock_thread(self, thread_id: str) -> Body[None]:
        """Lock the thread's row first. Every transaction that touches a thread and its runs
        takes the thread's row before any run's (a claim updates the thread, then the run),
        so two of them never wait on each other in a cycle (Postgres would abort one)."""
        if self._LOCK_THREAD:
            yield ("rows", self._LOCK_THREAD, (thread_id,))

    # --- threads -------------------------------------------------------------------------

    async def create_thread(
        self,
        thread_id: str,
        owner: str,
        metadata: dict[str, Any],
        *,
        if_exists: str = "raise",
        created_at: float | None = None,
    ) -> ThreadRecord | None:
        """Create a thread; ``None`` if it exists (the caller decides what that means).
        ``created_at``: when it was first created (a record rebuilt from elsewhere)."""
        now = time.time() if created_at is None else created_at
        text = json.dumps(metadata)

        def insert() -> Body[int]:
            return (
                yield (
                    "exec",
                    "INSERT INTO graphyard_threads"
                    " (thread_id, owner, created_at, updated_at, metadata) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (thread_id) DO NOTHING",
                    (thread_id, owner, now, now, text),
                )
            )

        if await self._run(insert()) != 1:
            return None
        return ThreadRecord(thread_id, owner, now, now, json.loads(text), "idle", None)

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        row = await self._one(
            f"SELECT {_THREAD_COLUMNS} FROM graphyard_threads WHERE thread_id = ?", (thread_id,)
        )
        return _thread(row) if row else None

    async def update_thread(
        self, thread_id: str, *, metadata: dict[str, Any] | None = None, status: str | None = None
    ) -> None:
        sets, args = ["updated_at = ?"], [time.time()]
        if metadata is not None:
            sets.append("metadata = ?")
            args.append(json.dumps(metadata))
        if status is not None:
            sets.append("status = ?")
            args.append(status)
        sql = f"UPDATE graphyard_threads SET {', '.join(sets)} WHERE thread_id = ?"
        await self._run(_single("exec", sql, (*args, thread_id)))

    async def delete_thread(self, thread_id: str) -> None:
        def delete() -> Body[None]:
            yield from self._lock_thread(thread_id)
            yield (
                "exec",
                "DELETE FROM graphyard_run_events WHERE run_id IN"
                " (SELECT run_id FROM graphyard_runs WHERE thread_id = ?)",
                (thread_id,),
            )
            yield ("exec", "DELETE FROM graphyard_runs WHERE thread_id = ?", (thread_id,))
            yield ("exec", "DELETE FROM graphyard_threads WHERE thread_id = ?", (thread_id,))

        await self._run(delete())

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
            where.append("owner = ?")
            args.append(owner)
        if status:
            where.append("status = ?")
            args.append(status)
        if ids:
            where.append(f"thread_id IN ({_marks(len(ids))})")
            args.extend(ids)
        for key, value in (metadata or {}).items():
            clause, clause_args = self._metadata_clause(key, value)
            where.append(clause)
            args.extend(clause_args)
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
            + f" ORDER BY {column} {order} LIMIT ? OFFSET ?"
        )
        return [_thread(r) for r in await self._all(sql, (*args, limit, offset))]

    async def count_threads(self, owner: str | None) -> int:
        if owner is None:
            row = await self._one("SELECT COUNT(*) FROM graphyard_threads")
        else:
            row = await self._one(
                "SELECT COUNT(*) FROM graphyard_threads WHERE owner = ?", (owner,)
            )
        return int(row[0])

    # --- runs and the thread lock --------------------------------------------------------

    async def insert_run(self, run: RunRecord, *, claim_for: str | None = None) -> bool:
        """Store a new run; with ``claim_for``, also try to claim it for that worker in the
        same transaction (one commit instead of two on the path to a run's first event).
        True if it was claimed: it is then ``running`` and holds its thread's lock."""
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

        def insert() -> Body[bool]:
            yield (
                "exec",
                f"INSERT INTO graphyard_runs ({_RUN_COLUMNS}) VALUES ({_marks(14)})",
                row,
            )
            yield (
                "exec",
                "UPDATE graphyard_threads SET updated_at = ? WHERE thread_id = ?",
                (run.created_at, run.thread_id),
            )
            if claim_for is None:
                return False
            return (yield from _claim_in(run.run_id, run.thread_id, claim_for))

        return await self._run(insert())

    async def get_run(self, run_id: str) -> RunRecord | None:
        row = await self._one(
            f"SELECT {_RUN_COLUMNS} FROM graphyard_runs WHERE run_id = ?", (run_id,)
        )
        return _run(row) if row else None

    async def list_runs(
        self, thread_id: str, *, status: str | None = None, limit: int = 10, offset: int = 0
    ) -> list[RunRecord]:
        sql = f"SELECT {_RUN_COLUMNS} FROM graphyard_runs WHERE thread_id = ?"
        args: list[Any] = [thread_id]
        if status:
            sql += " AND status = ?"
            args.append(status)
        sql += f" ORDER BY created_at DESC, {self._SEQ} DESC LIMIT ? OFFSET ?"
        return [_run(r) for r in await self._all(sql, (*args, limit, offset))]

    async def delete_run(self, run_id: str) -> None:
        def delete() -> Body[None]:
            yield ("exec", "DELETE FROM graphyard_run_events WHERE run_id = ?", (run_id,))
            yield ("exec", "DELETE FROM graphyard_runs WHERE run_id = ?", (run_id,))

        await self._run(delete())

    async def claim(self, run_id: str, thread_id: str, worker: str) -> bool:
        """Take the thread's lock for a pending run and mark it running; False if held."""
        return await self._run(_claim_in(run_id, thread_id, worker))

    async def finish(
        self, run: RunRecord, status: RunStatus, thread_status: ThreadStatus, error: str | None
    ) -> None:
        """Record a run's end and release its thread's lock, in one transaction."""
        now = time.time()

        def finish() -> Body[None]:
            yield from self._lock_thread(run.thread_id)
            yield (
                "exec",
                "UPDATE graphyard_runs SET status = ?, error = ?, updated_at = ?,"
                " heartbeat_at = NULL WHERE run_id = ?",
                (status, error, now, run.run_id),
            )
            pending = yield (
                "rows",
                "SELECT 1 FROM graphyard_runs WHERE thread_id = ? AND status = 'pending' LIMIT 1",
                (run.thread_id,),
            )
            yield (
                "exec",
                "UPDATE graphyard_threads SET active_run_id = NULL, status = ?, updated_at = ?"
                " WHERE thread_id = ? AND active_run_id = ?",
                ("busy" if pending else thread_status, now, run.thread_id, run.run_id),
            )

        await self._run(finish())

    async def next_pending(self, thread_id: str) -> RunRecord | None:
        row = await self._one(
            f"SELECT {_RUN_COLUMNS} FROM graphyard_runs WHERE thread_id = ? AND status = 'pending'"
            f" ORDER BY created_at, {self._SEQ} LIMIT 1",
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

        def request() -> Body[None]:
            yield (
                "exec",
                "UPDATE graphyard_runs SET cancel = ?, updated_at = ? WHERE run_id = ?"
                " AND status IN ('pending', 'running')",
                (action, now, run_id),
            )
            yield (
                "exec",
                "UPDATE graphyard_runs SET status = 'interrupted' WHERE run_id = ?"
                " AND status = 'pending'",
                (run_id,),
            )

        await self._run(request())
        return await self.get_run(run_id)

    async def heartbeat(self, run_ids: Sequence[str]) -> dict[str, str | None]:
        """Refresh the lease of our running runs; returns each one's cancel request."""
        if not run_ids:
            return {}
        now, ids = time.time(), sorted(run_ids)  # one lock order for every process
        marks = _marks(len(ids))

        def beat() -> Body[list[Any]]:
            yield (
                "exec",
                f"UPDATE graphyard_runs SET heartbeat_at = ? WHERE run_id IN ({marks})",
                (now, *ids),
            )
            return (
                yield (
                    "rows",
                    f"SELECT run_id, cancel FROM graphyard_runs WHERE run_id IN ({marks})",
                    ids,
                )
            )

        return {r[0]: r[1] for r in await self._run(beat())}

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
            " (SELECT active_run_id FROM graphyard_threads WHERE thread_id = ?)",
            (thread_id,),
        )
        return _run(row) if row else None

    # --- events --------------------------------------------------------------------------

    async def append_events(self, run_id: str, events: Sequence[tuple[int, str, str]]) -> None:
        await self.append_events_many([(run_id, events)])

    async def append_events_many(
        self, batches: Sequence[tuple[str, Sequence[tuple[int, str, str]]]]
    ) -> None:
        """Store events of many runs in one transaction (one commit for all live runs)."""
        rows = [(rid, seq, event, data) for rid, events in batches for seq, event, data in events]
        if rows:
            await self._run(_single("many", _INSERT_EVENTS, rows))

    async def prune_events(self, since: float, before: float, *, batch: int = 500) -> int:
        """Delete the events of runs that ended between ``since`` and ``before`` (epoch
        seconds), ``batch`` runs per transaction so no lock is held long. Returns how many
        events were deleted."""
        total = 0
        while True:
            deleted, seen, last = await self._run(_prune_batch(since, before, batch))
            total += deleted
            if seen < batch or last <= since:  # done, or a whole batch ended at one instant
                return total
            since = last  # the boundary run is looked at again: it has no events left

    async def read_events(self, run_id: str, after: int) -> list[tuple[int, str, str]]:
        rows = await self._all(
            "SELECT seq, event, data FROM graphyard_run_events WHERE run_id = ? AND seq > ?"
            " ORDER BY seq",
            (run_id, after),
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def _single(kind: Literal["exec", "rows", "many"], sql: str, args: Sequence[Any]) -> Body[Any]:
    """A transaction of one statement."""
    return (yield (kind, sql, args))


def _claim_in(run_id: str, thread_id: str, worker: str) -> Body[bool]:
    """Inside a write transaction: take ``thread_id``'s lock for ``run_id``."""
    now = time.time()
    taken = yield (
        "exec",
        "UPDATE graphyard_threads SET active_run_id = ?, status = 'busy', updated_at = ?"
        " WHERE thread_id = ? AND active_run_id IS NULL",
        (run_id, now, thread_id),
    )
    if taken != 1:
        return False
    started = yield (
        "exec",
        "UPDATE graphyard_runs SET status = 'running', worker = ?, heartbeat_at = ?,"
        " updated_at = ? WHERE run_id = ? AND status = 'pending'",
        (worker, now, now, run_id),
    )
    if started != 1:  # cancelled or deleted meanwhile: give the lock back
        yield (
            "exec",
            "UPDATE graphyard_threads SET active_run_id = NULL, status = 'idle'"
            " WHERE thread_id = ? AND active_run_id = ?",
            (thread_id, run_id),
        )
        return False
    return True


def _prune_batch(since: float, before: float, batch: int) -> Body[tuple[int, int, float]]:
    """Events deleted, runs looked at, and the last run's end time."""
    runs = yield (
        "rows",
        "SELECT run_id, updated_at FROM graphyard_runs WHERE updated_at >= ? AND updated_at < ?"
        " AND status NOT IN ('pending', 'running') ORDER BY updated_at LIMIT ?",
        (since, before, batch),
    )
    if not runs:
        return 0, 0, since
    deleted = yield (
        "exec",
        f"DELETE FROM graphyard_run_events WHERE run_id IN ({_marks(len(runs))})",
        [r[0] for r in runs],
    )
    return deleted, len(runs), float(runs[-1][1])


def _drive(db: sqlite3.Connection, body: Body[_T]) -> _T:
    """Run a transaction's statements on ``db`` (on the store's thread)."""
    answer: Any = None
    try:
        while True:
            kind, sql, args = body.send(answer)
            cursor = db.executemany(sql, args) if kind == "many" else db.execute(sql, args)
            answer = cursor.fetchall() if kind == "rows" else cursor.rowcount
            cursor.close()  # on this thread: see SqliteServerStore._tx
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class SqliteServerStore(SqlServerStore):
    """Threads, runs, events and locks in the SQLite checkpoint file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphyard-store")

        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=30, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.executescript(schema("sqlite"))
            return db

        self._db = await self._call(connect)

    async def close(self) -> None:
        if self._thread is None:
            return
        db, self._db = self._db, None
        if db is not None:
            await self._call(db.close)
        self._thread.shutdown(wait=False)  # nothing is queued after the close
        self._thread = None

    def _call(self, fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Run ``fn(*args)`` on the store's thread. Queued at once (not at the first await),
        in call order: operations run in the order they were asked for."""
        assert self._thread is not None, "store is not open"
        return asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def call(self, fn: Callable[[sqlite3.Connection], _T]) -> asyncio.Future[_T]:
        """Run ``fn(connection)`` on the store's thread (for tests and maintenance)."""
        return self._call(lambda: fn(self._connection()))

    def _connection(self) -> sqlite3.Connection:
        assert self._db is not None, "store is not open"
        return self._db

    def _tx(self, fn: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """``fn(connection, *args)`` as one write transaction. BEGIN IMMEDIATE takes the
        write lock up front, so two processes never both read-then-write the same lock row."""

        def transaction() -> _T:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db, *args)
                # A cursor dropped on the event loop's thread resets its statement there,
                # while this thread may be running the same cached statement: sqlite3 then
                # fails with "bad parameter or other API misuse" (seen under load).
                if isinstance(result, sqlite3.Cursor):
                    raise TypeError("a store transaction returned a cursor: return rows")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
            return result

        return self._call(transaction)

    def _run(self, body: Body[_T]) -> asyncio.Future[_T]:  # type: ignore[override]
        return self._tx(_drive, body)

    def _all(self, sql: str, args: Iterable[Any] = ()) -> asyncio.Future[list[Any]]:  # type: ignore[override]
        params = tuple(args)
        return self._call(lambda: self._connection().execute(sql, params).fetchall())

    def _metadata_clause(self, key: str, value: Any) -> tuple[str, list[Any]]:
        return "json_extract(metadata, ?) = json_extract(?, '$')", [f'$."{key}"', json.dumps(value)]


def new_id() -> str:
    return str(uuid.uuid4())
