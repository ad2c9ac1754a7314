"""Where recordings live: one table beside the checkpoints, in the same database.

A recording row is one model call or one tool call of a run: its input (canonical JSON and a
fingerprint of it), its output (the message, with tool calls and usage) or its error, keyed
by thread, the checkpoint its task ran from (``checkpoint_ns`` + ``checkpoint_id``), the
task (``task_id``, ``step``, ``node``) and its order within the task (``seq``).

The rows use the saver's own connection (SQLite: the ``AsyncSqliteSaver`` connection under
its lock, so ``:memory:`` databases work too; Postgres: the saver's pool), and they follow
their checkpoints out: a trigger on the checkpoint table deletes a checkpoint's recordings
with it, and a thread's remaining ones when its last checkpoint goes. So ``DELETE
/threads/{id}``, ``graphyard threads delete|prune`` and the TTL sweep need no change to
forget recordings, and nothing can leave them behind.

A model request is stored content-addressed: consecutive calls of a thread resend almost
the same window of messages, so each canonical message is stored once per thread in
``graphyard_recording_messages`` (keyed by thread and the sha256 of its canonical JSON, 32 hex digits) and
the row's ``input`` holds the model, the tools and the ordered list of message hashes
(``message_refs``). Reading rebuilds the whole canonical request, so the fingerprint
(taken of the whole request when recorded), matching and the divergence diff see what they
always saw; a row written before this (the whole request inline) reads as it is. A trigger
on the recordings table deletes a thread's messages when its last recording goes.

DynamoDB has no triggers: its recordings live in ``<table>-recordings`` and the DynamoDB
saver deletes a thread's partition there with the thread
(:mod:`graphyard.replay._store_dynamodb`). Other savers record nothing: the server says so
once, and a recorded replay refuses with a :class:`~graphyard.errors.ConfigError`.

This module must never block the event loop and never read or write checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

__all__ = ["CallKind", "Recording", "RecordingStore", "recording_store"]

CallKind = Literal["model", "tool"]
"""What a recording holds: a chat model call or a tool call."""

_READY: weakref.WeakSet[Any] = weakref.WeakSet()
"""Savers whose database already has the table and triggers (set up once per process)."""

_REFS = "message_refs"
"""The key of a stored request's ordered message hashes (in place of ``messages``)."""

_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, task_id, step, node, seq, kind, name, "
    "fingerprint, input, output, error, tier, model, cost_usd, input_tokens, output_tokens, "
    "run_id, created_at"
)


@dataclass(slots=True)
class Recording:
    """One recorded call."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str | None
    """The checkpoint the task ran from (None if LangGraph did not say)."""
    task_id: str
    step: int
    node: str
    seq: int
    """Order of this call among the task's calls of the same kind, from 0."""
    kind: CallKind
    name: str
    """The model's name or the tool's name."""
    fingerprint: str
    input: Any
    """The canonical request (see :func:`graphyard.replay.canonical_request`)."""
    output: Any = None
    """The model's message (``message_to_dict``) or the tool's output as text."""
    error: str | None = None
    """``"TypeName: message"`` if the call raised."""
    tier: str | None = None
    model: str | None = None
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    run_id: str | None = None
    created_at: float = field(default_factory=time.time)

    def row(self, input_json: str | None = None) -> tuple[Any, ...]:
        """The row's values in ``_COLUMNS`` order (``input_json`` in place of the input)."""
        return (
            self.thread_id,
            self.checkpoint_ns,
            self.checkpoint_id,
            self.task_id,
            self.step,
            self.node,
            self.seq,
            self.kind,
            self.name,
            self.fingerprint,
            json.dumps(self.input, default=str) if input_json is None else input_json,
            json.dumps(self.output, default=str),
            self.error,
            self.tier,
            self.model,
            self.cost_usd,
            self.input_tokens,
            self.output_tokens,
            self.run_id,
            self.created_at,
        )

    def stored(self) -> tuple[tuple[Any, ...], dict[str, str]]:
        """The row to write and the messages it refers to (hash -> canonical JSON)."""
        request = self.input
        if not (isinstance(request, dict) and isinstance(request.get("messages"), list)):
            return self.row(), {}
        bodies: dict[str, str] = {}
        refs: list[str] = []
        for message in request["messages"]:
            # key order kept (not sorted): the diff prints content lists as they were sent
            body = json.dumps(message, default=str, ensure_ascii=False)
            digest = hashlib.sha256(body.encode()).hexdigest()[:32]  # 128 bits, per thread
            bodies[digest] = body
            refs.append(digest)
        shell = {k: v for k, v in request.items() if k != "messages"}
        shell[_REFS] = refs
        return self.row(json.dumps(shell, default=str)), bodies

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Recording:
        values = list(row)
        values[10] = json.loads(values[10])
        values[11] = json.loads(values[11])
        values[6] = int(values[6])
        values[4] = int(values[4])
        return cls(*values)


def _refs(recordings: Sequence[Recording]) -> set[str]:
    return {
        ref
        for r in recordings
        if isinstance(r.input, dict) and isinstance(r.input.get(_REFS), list)
        for ref in r.input[_REFS]
    }


def _inline(recordings: list[Recording], bodies: dict[str, str]) -> list[Recording]:
    """Put the stored messages back into each request (old inline rows stay as they are)."""
    for r in recordings:
        if isinstance(r.input, dict) and isinstance(r.input.get(_REFS), list):
            request = {k: v for k, v in r.input.items() if k != _REFS}
            request["messages"] = [
                json.loads(bodies[h])
                if h in bodies
                else {"role": "missing", "content": f"message {h[:12]} is not stored"}
                for h in r.input[_REFS]
            ]
            r.input = request
    return recordings


class RecordingStore(Protocol):
    """Reads and writes recordings for one checkpointer."""

    async def setup(self) -> None:
        """Create the table, its indexes and the triggers (idempotent)."""
        ...

    async def put(self, recording: Recording) -> None:
        """Store one call."""
        ...

    async def for_thread(
        self, thread_id: str, checkpoint_ids: Sequence[str] | None = None
    ) -> list[Recording]:
        """The thread's recordings (only those of these checkpoints, if given), in order."""
        ...

    async def count(self, thread_id: str | None = None) -> int:
        """How many recordings (of one thread, or all)."""
        ...

    async def count_messages(self, thread_id: str | None = None) -> int:
        """How many distinct request messages are stored (of one thread, or all)."""
        ...


def recording_store(saver: BaseCheckpointSaver[str]) -> RecordingStore | None:
    """The recording store on ``saver``'s database; ``None`` where recording is unsupported.

    >>> import asyncio
    >>> from graphyard.persistence import open_saver
    >>> async def main() -> int:
    ...     async with open_saver("sqlite:///:memory:") as saver:
    ...         store = recording_store(saver)
    ...         await store.setup()
    ...         return await store.count()
    >>> asyncio.run(main())
    0
    """
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    if isinstance(saver, AsyncSqliteSaver):
        return SqliteRecordingStore(saver)
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError:
        return None
    if isinstance(saver, AsyncPostgresSaver):
        return PostgresRecordingStore(saver)
    try:
        from graphyard.persistence.dynamodb.aio import AsyncDynamoDBSaver
    except ImportError:
        return None
    if isinstance(saver, AsyncDynamoDBSaver):
        from graphyard.replay._store_dynamodb import DynamoDBRecordingStore

        return DynamoDBRecordingStore(saver)
    return None


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS graphyard_recordings (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id     TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT,
    task_id       TEXT NOT NULL,
    step          INTEGER NOT NULL,
    node          TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    input         TEXT NOT NULL,
    output        TEXT NOT NULL,
    error         TEXT,
    tier          TEXT,
    model         TEXT,
    cost_usd      REAL NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    run_id        TEXT,
    created_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS graphyard_recordings_checkpoint
    ON graphyard_recordings(thread_id, checkpoint_id);
CREATE TRIGGER IF NOT EXISTS graphyard_recordings_follow_checkpoints
AFTER DELETE ON checkpoints
BEGIN
    DELETE FROM graphyard_recordings
        WHERE thread_id = OLD.thread_id AND checkpoint_id = OLD.checkpoint_id;
    DELETE FROM graphyard_recordings
        WHERE thread_id = OLD.thread_id
        AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE thread_id = OLD.thread_id);
END;
CREATE TABLE IF NOT EXISTS graphyard_recording_messages (
    thread_id TEXT NOT NULL,
    hash      TEXT NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (thread_id, hash)
);
CREATE TRIGGER IF NOT EXISTS graphyard_recording_messages_follow_recordings
AFTER DELETE ON graphyard_recordings
BEGIN
    DELETE FROM graphyard_recording_messages
        WHERE thread_id = OLD.thread_id
        AND NOT EXISTS (SELECT 1 FROM graphyard_recordings WHERE thread_id = OLD.thread_id);
END;
"""


class SqliteRecordingStore:
    """Recordings in the SQLite checkpoint file, on the saver's connection."""

    def __init__(self, saver: AsyncSqliteSaver) -> None:
        self.saver = saver
        self._ready = False

    async def setup(self) -> None:
        if self._ready or self.saver in _READY:
            return
        await self.saver.setup()  # the trigger needs the checkpoints table
        async with self.saver.lock:
            await self.saver.conn.executescript(_SQLITE_SCHEMA)
            await self.saver.conn.commit()
        self._ready = True
        _READY.add(self.saver)

    async def put(self, recording: Recording) -> None:
        await self.setup()
        marks = ",".join("?" * 20)
        row, bodies = recording.stored()
        async with self.saver.lock:
            await self.saver.conn.executemany(
                "INSERT OR IGNORE INTO graphyard_recording_messages (thread_id, hash, body)"
                " VALUES (?, ?, ?)",
                [(recording.thread_id, h, b) for h, b in bodies.items()],
            )
            await self.saver.conn.execute(
                f"INSERT INTO graphyard_recordings ({_COLUMNS}) VALUES ({marks})", row
            )
            await self.saver.conn.commit()

    async def for_thread(
        self, thread_id: str, checkpoint_ids: Sequence[str] | None = None
    ) -> list[Recording]:
        await self.setup()
        sql = f"SELECT {_COLUMNS} FROM graphyard_recordings WHERE thread_id = ?"
        args: list[Any] = [thread_id]
        if checkpoint_ids is not None:
            if not checkpoint_ids:
                return []
            sql += f" AND checkpoint_id IN ({','.join('?' * len(checkpoint_ids))})"
            args += list(checkpoint_ids)
        async with self.saver.lock:
            cursor = await self.saver.conn.execute(sql + " ORDER BY id", args)
            recordings = [Recording.from_row(r) for r in await cursor.fetchall()]
            bodies: dict[str, str] = {}
            refs = sorted(_refs(recordings))
            for i in range(0, len(refs), 500):  # under SQLite's bound-parameter limit
                chunk = refs[i : i + 500]
                cursor = await self.saver.conn.execute(
                    "SELECT hash, body FROM graphyard_recording_messages WHERE thread_id = ?"
                    f" AND hash IN ({','.join('?' * len(chunk))})",
                    [thread_id, *chunk],
                )
                bodies.update({h: b for h, b in await cursor.fetchall()})
        return _inline(recordings, bodies)

    async def count(self, thread_id: str | None = None) -> int:
        return await self._count("graphyard_recordings", thread_id)

    async def count_messages(self, thread_id: str | None = None) -> int:
        return await self._count("graphyard_recording_messages", thread_id)

    async def _count(self, table: str, thread_id: str | None) -> int:
        await self.setup()
        sql, args = f"SELECT COUNT(*) FROM {table}", ()
        if thread_id is not None:
            sql, args = sql + " WHERE thread_id = ?", (thread_id,)  # type: ignore[assignment]
        async with self.saver.lock:
            cursor = await self.saver.conn.execute(sql, args)
            row = await cursor.fetchone()
        return int(row[0]) if row else 0


_PG_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS graphyard_recordings (
        id            BIGSERIAL PRIMARY KEY,
        thread_id     TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        checkpoint_id TEXT,
        task_id       TEXT NOT NULL,
        step          INTEGER NOT NULL,
        node          TEXT NOT NULL,
        seq           INTEGER NOT NULL,
        kind          TEXT NOT NULL,
        name          TEXT NOT NULL,
        fingerprint   TEXT NOT NULL,
        input         TEXT NOT NULL,
        output        TEXT NOT NULL,
        error         TEXT,
        tier          TEXT,
        model         TEXT,
        cost_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
        input_tokens  INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        run_id        TEXT,
        created_at    DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS graphyard_recordings_checkpoint"
    " ON graphyard_recordings(thread_id, checkpoint_id)",
    """CREATE OR REPLACE FUNCTION graphyard_recordings_follow() RETURNS trigger AS $$
    BEGIN
        DELETE FROM graphyard_recordings
            WHERE thread_id = OLD.thread_id AND checkpoint_id = OLD.checkpoint_id;
        IF NOT EXISTS (SELECT 1 FROM checkpoints WHERE thread_id = OLD.thread_id) THEN
            DELETE FROM graphyard_recordings WHERE thread_id = OLD.thread_id;
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS graphyard_recordings_follow_checkpoints ON checkpoints",
    "CREATE TRIGGER graphyard_recordings_follow_checkpoints AFTER DELETE ON checkpoints"
    " FOR EACH ROW EXECUTE FUNCTION graphyard_recordings_follow()",
    """CREATE TABLE IF NOT EXISTS graphyard_recording_messages (
        thread_id TEXT NOT NULL,
        hash      TEXT NOT NULL,
        body      TEXT NOT NULL,
        PRIMARY KEY (thread_id, hash)
    )""",
    """CREATE OR REPLACE FUNCTION graphyard_recording_messages_follow() RETURNS trigger AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM graphyard_recordings WHERE thread_id = OLD.thread_id) THEN
            DELETE FROM graphyard_recording_messages WHERE thread_id = OLD.thread_id;
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS graphyard_recording_messages_follow_recordings ON graphyard_recordings",
    "CREATE TRIGGER graphyard_recording_messages_follow_recordings"
    " AFTER DELETE ON graphyard_recordings"
    " FOR EACH ROW EXECUTE FUNCTION graphyard_recording_messages_follow()",
]
_PG_TRIGGERS = (
    "graphyard_recordings_follow_checkpoints",
    "graphyard_recording_messages_follow_recordings",
)


class PostgresRecordingStore:
    """Recordings in the Postgres checkpoint database, on the saver's pool."""

    def __init__(self, saver: AsyncPostgresSaver) -> None:
        self.saver = saver
        self._ready = False

    async def setup(self) -> None:
        if self._ready or self.saver in _READY:
            return
        async with self.saver._cursor() as cur:
            await cur.execute(
                "SELECT COUNT(DISTINCT tgname) AS n FROM pg_trigger WHERE tgname = ANY(%s)",
                [list(_PG_TRIGGERS)],
            )
            row = await cur.fetchone()
            exists = row is not None and int(row["n"]) == len(_PG_TRIGGERS)
        if not exists:  # DDL on checkpoints locks it: only when the trigger is missing
            async with self.saver._cursor() as cur, cur.connection.transaction():
                # one creator at a time: several servers may start together
                await cur.execute("SELECT pg_advisory_xact_lock(7107)")
                for statement in _PG_SCHEMA:
                    await cur.execute(statement)  # type: ignore[arg-type]
        self._ready = True
        _READY.add(self.saver)

    async def put(self, recording: Recording) -> None:
        await self.setup()
        marks = ",".join(["%s"] * 20)
        row, bodies = recording.stored()
        async with self.saver._cursor() as cur, cur.connection.transaction():
            if bodies:
                await cur.executemany(
                    "INSERT INTO graphyard_recording_messages (thread_id, hash, body)"
                    " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    [(recording.thread_id, h, b) for h, b in bodies.items()],
                )
            await cur.execute(
                f"INSERT INTO graphyard_recordings ({_COLUMNS}) VALUES ({marks})",  # type: ignore[arg-type]
                row,
            )

    async def for_thread(
        self, thread_id: str, checkpoint_ids: Sequence[str] | None = None
    ) -> list[Recording]:
        await self.setup()
        sql = f"SELECT {_COLUMNS} FROM graphyard_recordings WHERE thread_id = %s"
        args: list[Any] = [thread_id]
        if checkpoint_ids is not None:
            sql += " AND checkpoint_id = ANY(%s)"
            args.append(list(checkpoint_ids))
        async with self.saver._cursor() as cur:
            await cur.execute(sql + " ORDER BY id", args)  # type: ignore[arg-type]
            rows = await cur.fetchall()
            names = [c.strip() for c in _COLUMNS.split(",")]
            recordings = [Recording.from_row([r[n] for n in names]) for r in rows]
            bodies: dict[str, str] = {}
            if refs := sorted(_refs(recordings)):
                await cur.execute(
                    "SELECT hash, body FROM graphyard_recording_messages"
                    " WHERE thread_id = %s AND hash = ANY(%s)",
                    [thread_id, refs],
                )
                bodies = {r["hash"]: r["body"] for r in await cur.fetchall()}
        return _inline(recordings, bodies)

    async def count(self, thread_id: str | None = None) -> int:
        return await self._count("graphyard_recordings", thread_id)

    async def count_messages(self, thread_id: str | None = None) -> int:
        return await self._count("graphyard_recording_messages", thread_id)

    async def _count(self, table: str, thread_id: str | None) -> int:
        await self.setup()
        sql, args = f"SELECT COUNT(*) AS n FROM {table}", []
        if thread_id is not None:
            sql, args = sql + " WHERE thread_id = %s", [thread_id]
        async with self.saver._cursor() as cur:
            await cur.execute(sql, args)  # type: ignore[arg-type]
            row = await cur.fetchone()
        return int(row["n"]) if row else 0
