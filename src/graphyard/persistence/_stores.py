"""Thread-level storage operations the saver API lacks, one class per backend.

``BaseCheckpointSaver`` can list checkpoints and delete one thread, but not list threads,
find idle ones, drop a thread's old checkpoints or give disk space back. Those are a few
statements against each official saver's own tables, kept here behind one protocol,
:class:`ThreadStore`, so retention (:mod:`graphyard.persistence._retention`) and the CLI
never care which backend they run on.

Checkpoint IDs are UUIDv6: time-ordered, so ``MAX(checkpoint_id)`` is a thread's last
activity and "idle since T" is a string comparison with :func:`checkpoint_id_at` (T).

Rules every store keeps: never block the event loop (SQLite runs on aiosqlite's thread,
Postgres on psycopg's async connections); never delete a checkpoint newer than the one a
caller decided to keep (a run may be saving one right now); hold the saver's own lock on
SQLite, whose single connection the saver shares.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver

from graphyard.errors import ConfigError
from graphyard.persistence._savers import ThreadSummary

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

__all__ = [
    "Compaction",
    "ThreadStore",
    "checkpoint_id_at",
    "checkpoint_time",
    "thread_store",
]

_UUID_EPOCH_100NS = 0x01B21DD213814000  # 1582-10-15 to 1970-01-01 in 100 ns steps


def checkpoint_id_at(when: datetime) -> str:
    """The smallest UUIDv6 checkpoint ID a checkpoint saved at ``when`` could have.

    >>> checkpoint_id_at(datetime(2026, 1, 1, tzinfo=UTC))
    '1f0e6a4d-0c3c-6000-8000-000000000000'
    """
    ts = int(when.timestamp() * 10_000_000) + _UUID_EPOCH_100NS
    value = ((ts >> 12) & 0xFFFF_FFFF_FFFF) << 80 | (ts & 0x0FFF) << 64
    value |= 6 << 76 | 0b10 << 62  # version 6, RFC 4122 variant, the rest zero
    return str(uuid.UUID(int=value))


def checkpoint_time(checkpoint_id: str) -> datetime:
    """When a checkpoint was saved, read from its UUIDv6 ID.

    >>> checkpoint_time(checkpoint_id_at(datetime(2026, 1, 1, tzinfo=UTC))).isoformat()
    '2026-01-01T00:00:00+00:00'
    """
    value = uuid.UUID(checkpoint_id).int
    ts = ((value >> 80) & 0xFFFF_FFFF_FFFF) << 12 | ((value >> 64) & 0x0FFF)
    return datetime.fromtimestamp((ts - _UUID_EPOCH_100NS) / 10_000_000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Compaction:
    """Space given back after deletes."""

    bytes_before: int
    bytes_after: int


class ThreadStore(Protocol):
    """What retention needs from a backend, beyond ``BaseCheckpointSaver``."""

    async def list_threads(self, *, limit: int, offset: int) -> list[ThreadSummary]:
        """Threads, most recently active first."""
        ...

    async def idle_threads(self, before_id: str) -> list[ThreadSummary]:
        """Threads whose newest checkpoint (any namespace) is older than ``before_id``."""
        ...

    async def existing(self, thread_ids: Sequence[str]) -> list[str]:
        """Which of ``thread_ids`` have any checkpoint."""
        ...

    async def delete_threads(
        self, thread_ids: Sequence[str], *, idle_before: str | None = None
    ) -> list[str]:
        """Delete every row of these threads (only those still idle, if ``idle_before``)."""
        ...

    async def count_before(self, thread_id: str, keep_id: str) -> int:
        """Root-namespace checkpoints of the thread older than ``keep_id``."""
        ...

    async def drop_before(self, thread_id: str, keep_id: str) -> int:
        """Delete the thread's root-namespace checkpoints older than ``keep_id``, their
        writes and the blobs only they used; ``keep_id`` loses its parent link."""
        ...

    async def compact(self) -> Compaction | None:
        """Give freed space back (SQLite: VACUUM); None where the backend does it itself."""
        ...

    async def size_bytes(self) -> int:
        """Bytes the checkpoint tables take."""
        ...


def thread_store(saver: BaseCheckpointSaver[str]) -> ThreadStore:
    """The :class:`ThreadStore` for an opened saver.

    >>> import asyncio
    >>> from graphyard.persistence import open_saver
    >>> async def main() -> int:
    ...     async with open_saver("sqlite:///:memory:") as saver:
    ...         return len(await thread_store(saver).list_threads(limit=10, offset=0))
    >>> asyncio.run(main())
    0
    """
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    if isinstance(saver, AsyncSqliteSaver):
        return SqliteThreadStore(saver)
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError:  # the postgres extra is not installed
        pass
    else:
        if isinstance(saver, AsyncPostgresSaver):
            return PostgresThreadStore(saver)
    try:
        from graphyard.persistence.dynamodb import BaseDynamoDBSaver, DynamoDBThreadStore
    except ImportError:  # the dynamodb extra (boto3) is not installed
        pass
    else:
        if isinstance(saver, BaseDynamoDBSaver):
            return DynamoDBThreadStore(saver)
    raise ConfigError(
        f"thread listing and retention are not supported for {type(saver).__name__}; "
        "use a sqlite:/// or postgresql:// checkpointer"
    )


def _summaries(rows: Sequence[Sequence[Any]]) -> list[ThreadSummary]:
    return [ThreadSummary(str(t), int(n), str(c)) for t, n, c in rows]


class SqliteThreadStore:
    """The official ``AsyncSqliteSaver``'s tables: ``checkpoints`` and ``writes``."""

    def __init__(self, saver: AsyncSqliteSaver) -> None:
        self.saver = saver
        self.conn = saver.conn

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self.saver.lock:
            cursor = await self.conn.execute(sql, params)
            return list(await cursor.fetchall())

    async def list_threads(self, *, limit: int, offset: int) -> list[ThreadSummary]:
        return _summaries(
            await self._fetch(
                "SELECT thread_id, COUNT(*), MAX(checkpoint_id) FROM checkpoints"
                " WHERE checkpoint_ns = '' GROUP BY thread_id"
                " ORDER BY MAX(checkpoint_id) DESC LIMIT ? OFFSET ?",
                (limit, offset),
            )
        )

    async def idle_threads(self, before_id: str) -> list[ThreadSummary]:
        return _summaries(
            await self._fetch(
                "SELECT thread_id, SUM(checkpoint_ns = ''), MAX(checkpoint_id) FROM checkpoints"
                " GROUP BY thread_id HAVING MAX(checkpoint_id) < ?"
                " ORDER BY MAX(checkpoint_id)",
                (before_id,),
            )
        )

    async def existing(self, thread_ids: Sequence[str]) -> list[str]:
        marks = ",".join("?" * len(thread_ids))
        rows = await self._fetch(
            f"SELECT DISTINCT thread_id FROM checkpoints WHERE thread_id IN ({marks})",
            list(thread_ids),
        )
        return [str(r[0]) for r in rows]

    async def delete_threads(
        self, thread_ids: Sequence[str], *, idle_before: str | None = None
    ) -> list[str]:
        deleted: list[str] = []
        async with self.saver.lock:
            try:
                for thread_id in thread_ids:
                    if idle_before is not None:
                        cursor = await self.conn.execute(
                            "SELECT 1 FROM checkpoints WHERE thread_id = ?"
                            " AND checkpoint_id >= ? LIMIT 1",
                            (thread_id, idle_before),
                        )
                        if await cursor.fetchone() is not None:
                            continue  # active again since it was found idle
                    cursor = await self.conn.execute(
                        "DELETE FROM checkpoints WHERE thread_id = ?", (thread_id,)
                    )
                    if cursor.rowcount:
                        deleted.append(thread_id)
                    await self.conn.execute("DELETE FROM writes WHERE thread_id = ?", (thread_id,))
                await self.conn.commit()
            except BaseException:
                await self.conn.rollback()
                raise
        return deleted

    async def count_before(self, thread_id: str, keep_id: str) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ''"
            " AND checkpoint_id < ?",
            (thread_id, keep_id),
        )
        return int(rows[0][0])

    async def drop_before(self, thread_id: str, keep_id: str) -> int:
        async with self.saver.lock:
            try:
                cursor = await self.conn.execute(
                    "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ''"
                    " AND checkpoint_id < ?",
                    (thread_id, keep_id),
                )
                dropped = cursor.rowcount
                await self.conn.execute(
                    "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ''"
                    " AND checkpoint_id < ?",
                    (thread_id, keep_id),
                )
                await self.conn.execute(
                    "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ?"
                    " AND checkpoint_ns = '' AND checkpoint_id = ?",
                    (thread_id, keep_id),
                )
                await self.conn.commit()
            except BaseException:
                await self.conn.rollback()
                raise
        return int(dropped)

    async def compact(self) -> Compaction | None:
        """VACUUM, then truncate the WAL: SQLite keeps freed pages until it rewrites the file.

        VACUUM rewrites the whole file; it runs on aiosqlite's thread and holds the saver's
        lock, so runs wait (they are not refused) while it works.
        """
        before = await self.size_bytes()
        async with self.saver.lock:
            await self.conn.commit()
            await self.conn.execute("VACUUM")
            await self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return Compaction(before, await self.size_bytes())

    async def size_bytes(self) -> int:
        """The main database file's pages (the WAL beside it is not counted)."""
        rows = await self._fetch(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        )
        return int(rows[0][0])

    async def freed_fraction(self) -> float:
        """Share of the file's pages that deletes freed and only a VACUUM gives back."""
        rows = await self._fetch(
            "SELECT freelist_count, page_count FROM pragma_freelist_count(), pragma_page_count()"
        )
        free, total = rows[0]
        return float(free) / float(total) if total else 0.0


class PostgresThreadStore:
    """The official ``AsyncPostgresSaver``'s tables: ``checkpoints``, ``checkpoint_blobs``
    and ``checkpoint_writes``. Each change runs in one transaction."""

    def __init__(self, saver: AsyncPostgresSaver) -> None:
        self.saver = saver

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self.saver._cursor() as cur:
            await cur.execute(sql, params)
            return list(await cur.fetchall())

    async def list_threads(self, *, limit: int, offset: int) -> list[ThreadSummary]:
        # Served from the primary key index (thread_id, checkpoint_ns, checkpoint_id).
        rows = await self._fetch(
            "SELECT thread_id, COUNT(*) AS n, MAX(checkpoint_id) AS latest FROM checkpoints"
            " WHERE checkpoint_ns = '' GROUP BY thread_id"
            " ORDER BY latest DESC LIMIT %s OFFSET %s",
            (limit, offset),
        )
        return _summaries([(r["thread_id"], r["n"], r["latest"]) for r in rows])

    async def idle_threads(self, before_id: str) -> list[ThreadSummary]:
        rows = await self._fetch(
            "SELECT thread_id, COUNT(*) FILTER (WHERE checkpoint_ns = '') AS n,"
            " MAX(checkpoint_id) AS latest FROM checkpoints GROUP BY thread_id"
            " HAVING MAX(checkpoint_id) < %s ORDER BY latest",
            (before_id,),
        )
        return _summaries([(r["thread_id"], r["n"], r["latest"]) for r in rows])

    async def existing(self, thread_ids: Sequence[str]) -> list[str]:
        rows = await self._fetch(
            "SELECT DISTINCT thread_id FROM checkpoints WHERE thread_id = ANY(%s)",
            (list(thread_ids),),
        )
        return [str(r["thread_id"]) for r in rows]

    async def delete_threads(
        self, thread_ids: Sequence[str], *, idle_before: str | None = None
    ) -> list[str]:
        ids = list(thread_ids)
        async with self.saver._cursor() as cur, cur.connection.transaction():
            if idle_before is not None:
                # Re-checked in the deleting transaction: a thread used since it was found
                # idle stays.
                await cur.execute(
                    "SELECT thread_id FROM checkpoints WHERE thread_id = ANY(%s)"
                    " GROUP BY thread_id HAVING MAX(checkpoint_id) < %s",
                    (ids, idle_before),
                )
                ids = [r["thread_id"] for r in await cur.fetchall()]
            await cur.execute(
                "DELETE FROM checkpoints WHERE thread_id = ANY(%s) RETURNING thread_id", (ids,)
            )
            deleted = sorted({r["thread_id"] for r in await cur.fetchall()})
            await cur.execute("DELETE FROM checkpoint_blobs WHERE thread_id = ANY(%s)", (ids,))
            await cur.execute("DELETE FROM checkpoint_writes WHERE thread_id = ANY(%s)", (ids,))
        return deleted

    async def count_before(self, thread_id: str, keep_id: str) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) AS n FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''"
            " AND checkpoint_id < %s",
            (thread_id, keep_id),
        )
        return int(rows[0]["n"])

    async def drop_before(self, thread_id: str, keep_id: str) -> int:
        async with self.saver._cursor() as cur, cur.connection.transaction():
            await cur.execute(
                "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''"
                " AND checkpoint_id < %s RETURNING checkpoint -> 'channel_versions' AS v",
                (thread_id, keep_id),
            )
            freed = {(k, str(v)) for r in await cur.fetchall() for k, v in (r["v"] or {}).items()}
            dropped = cur.rowcount
            await cur.execute(
                "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_ns = ''"
                " AND checkpoint_id < %s",
                (thread_id, keep_id),
            )
            await cur.execute(
                "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = %s"
                " AND checkpoint_ns = '' AND checkpoint_id = %s",
                (thread_id, keep_id),
            )
            # Blobs only the dropped checkpoints used: a blob a kept checkpoint (or one a run
            # is saving now, whose versions continue from the kept one) refers to stays.
            await cur.execute(
                "SELECT DISTINCT v.key AS channel, v.value AS version FROM checkpoints c"
                " CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') v"
                " WHERE c.thread_id = %s AND c.checkpoint_ns = ''",
                (thread_id,),
            )
            kept = {(r["channel"], r["version"]) for r in await cur.fetchall()}
            garbage: dict[str, list[str]] = {}
            for channel, version in freed - kept:
                garbage.setdefault(channel, []).append(version)
            for channel, versions in garbage.items():
                await cur.execute(
                    "DELETE FROM checkpoint_blobs WHERE thread_id = %s AND checkpoint_ns = ''"
                    " AND channel = %s AND version = ANY(%s)",
                    (thread_id, channel, versions),
                )
        return int(dropped)

    async def compact(self) -> Compaction | None:
        """Postgres reuses freed space after (auto)vacuum; a plain VACUUM makes it so now."""
        before = await self.size_bytes()
        async with self.saver._cursor() as cur:
            await cur.execute("VACUUM checkpoints, checkpoint_blobs, checkpoint_writes")
        return Compaction(before, await self.size_bytes())

    async def size_bytes(self) -> int:
        rows = await self._fetch(
            "SELECT pg_total_relation_size('checkpoints') + pg_total_relation_size("
            "'checkpoint_blobs') + pg_total_relation_size('checkpoint_writes') AS n"
        )
        return int(rows[0]["n"])
