"""Cache backends: LangGraph's ``BaseCache`` on SQLite, Postgres or process memory, plus counters.

Every backend is a ``langgraph.cache.base.BaseCache`` (so a compiled graph uses it for its
nodes' ``CachePolicy``) with a few extras graphyard needs: hit/miss/store counters and the
dollars hits saved (kept in the same database, updated atomically, so several server
processes add up), entry counts per namespace, and purging expired entries.

- SQLite: LangGraph's own ``SqliteCache`` (WAL, ``sqlite3`` behind a lock, async methods on
  a worker thread), in a *sibling file* of the checkpoint database (``graphyard.db`` ->
  ``graphyard.cache.db``). Why not the same file: a cache is disposable (delete the file
  at any time without touching a single thread), its write traffic (every miss writes an
  entry) does not queue behind SQLite's one-writer-per-file lock with checkpoint writes,
  and clearing it never leaves the checkpoint file to be VACUUMed.
- Postgres: LangGraph ships no Postgres cache, so :class:`PostgresCache` is ours: two
  tables (``graphyard_cache``, ``graphyard_cache_stats``) in the checkpointer's database,
  on the saver's psycopg pool when there is one.
- DynamoDB: :class:`graphyard.caching._dynamodb.DynamoDBCache` (ours), in a table of its
  own beside the checkpoint table; process memory if that table cannot be used (a startup
  warning says so).
- Memory: LangGraph's ``InMemoryCache``; per process, lost on restart. Used for
  ``sqlite:///:memory:`` checkpointers.

No backend may block the event loop: the async methods run ``sqlite3`` on a worker thread
and Postgres on psycopg's async driver.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.cache.base import BaseCache, FullKey, Namespace, ValueT
from langgraph.cache.memory import InMemoryCache
from langgraph.cache.sqlite import SqliteCache

__all__ = [
    "CacheCounts",
    "MemoryCacheBackend",
    "NamespaceEntries",
    "PostgresCache",
    "SqliteCacheBackend",
    "StatsBackend",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CacheCounts:
    """Counters of one cache (a node name, or ``answers``)."""

    name: str
    hits: int = 0
    misses: int = 0
    stores: int = 0
    saved_usd: float = 0.0
    """Dollars the hits did not spend: the original call's cost, once per hit."""

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


@dataclass(slots=True)
class NamespaceEntries:
    """Stored entries of one namespace."""

    namespace: str
    live: int
    expired: int
    bytes: int


def _now() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()


class StatsBackend(BaseCache[ValueT]):
    """A ``BaseCache`` that also keeps counters; the async methods are the ones graphyard uses."""

    kind: str = "base"
    location: str = ""

    async def acount(self, counts: Sequence[CacheCounts]) -> None:
        raise NotImplementedError

    async def astats(self) -> list[CacheCounts]:
        raise NotImplementedError

    async def aentries(self) -> list[NamespaceEntries]:
        raise NotImplementedError

    async def apurge_expired(self) -> int:
        raise NotImplementedError

    async def areset_stats(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class SqliteCacheBackend(SqliteCache[ValueT], StatsBackend[ValueT]):
    """LangGraph's ``SqliteCache`` plus a counters table, in its own file."""

    kind = "sqlite"

    def __init__(self, *, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path=path)
        self.location = path
        with self._lock, self._conn:
            self._conn.execute("PRAGMA busy_timeout=10000")
            # a cache may lose its last writes on power loss (they are recomputed); in WAL
            # mode NORMAL skips the fsync per commit that FULL pays on every miss
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                """CREATE TABLE IF NOT EXISTS cache_stats (
                    name TEXT PRIMARY KEY,
                    hits INTEGER NOT NULL DEFAULT 0,
                    misses INTEGER NOT NULL DEFAULT 0,
                    stores INTEGER NOT NULL DEFAULT 0,
                    saved_usd REAL NOT NULL DEFAULT 0
                )"""
            )

    def count(self, counts: Sequence[CacheCounts]) -> None:
        with self._lock, self._conn:
            self._conn.executemany(
                """INSERT INTO cache_stats (name, hits, misses, stores, saved_usd)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET hits = hits + excluded.hits,
                    misses = misses + excluded.misses, stores = stores + excluded.stores,
                    saved_usd = saved_usd + excluded.saved_usd""",
                [(c.name, c.hits, c.misses, c.stores, c.saved_usd) for c in counts],
            )

    def stats(self) -> list[CacheCounts]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, hits, misses, stores, saved_usd FROM cache_stats ORDER BY name"
            ).fetchall()
        return [CacheCounts(*row) for row in rows]

    def entries(self) -> list[NamespaceEntries]:
        now = _now()
        with self._lock:
            rows = self._conn.execute(
                """SELECT ns, SUM(expiry IS NULL OR expiry >= ?), SUM(expiry < ?),
                    SUM(LENGTH(val)) FROM cache GROUP BY ns ORDER BY ns""",
                (now, now),
            ).fetchall()
        return [
            NamespaceEntries(ns, int(live or 0), int(old or 0), int(b or 0))
            for ns, live, old, b in rows
        ]

    def purge_expired(self) -> int:
        with self._lock, self._conn:
            return self._conn.execute("DELETE FROM cache WHERE expiry < ?", (_now(),)).rowcount

    def reset_stats(self) -> None:
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM cache_stats")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    async def acount(self, counts: Sequence[CacheCounts]) -> None:
        await asyncio.to_thread(self.count, counts)

    async def astats(self) -> list[CacheCounts]:
        return await asyncio.to_thread(self.stats)

    async def aentries(self) -> list[NamespaceEntries]:
        return await asyncio.to_thread(self.entries)

    async def apurge_expired(self) -> int:
        return await asyncio.to_thread(self.purge_expired)

    async def areset_stats(self) -> None:
        await asyncio.to_thread(self.reset_stats)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


class MemoryCacheBackend(InMemoryCache[ValueT], StatsBackend[ValueT]):
    """LangGraph's ``InMemoryCache`` plus counters in a dict (this process only)."""

    kind = "memory"
    location = "process memory"

    def __init__(self) -> None:
        super().__init__()
        self._counts: dict[str, CacheCounts] = {}
        self._count_lock = threading.Lock()

    async def acount(self, counts: Sequence[CacheCounts]) -> None:
        with self._count_lock:
            for c in counts:
                mine = self._counts.setdefault(c.name, CacheCounts(c.name))
                mine.hits += c.hits
                mine.misses += c.misses
                mine.stores += c.stores
                mine.saved_usd += c.saved_usd

    async def astats(self) -> list[CacheCounts]:
        with self._count_lock:
            return [
                CacheCounts(c.name, c.hits, c.misses, c.stores, c.saved_usd)
                for c in sorted(self._counts.values(), key=lambda c: c.name)
            ]

    async def aentries(self) -> list[NamespaceEntries]:
        now = _now()
        with self._lock:
            out = []
            for ns, entries in sorted(self._cache.items()):
                live = sum(1 for _, _, exp in entries.values() if exp is None or exp >= now)
                size = sum(len(val) for _, val, _ in entries.values())
                out.append(NamespaceEntries(",".join(ns), live, len(entries) - live, size))
            return out

    async def apurge_expired(self) -> int:
        now = _now()
        removed = 0
        with self._lock:
            for entries in self._cache.values():
                for key in [
                    k for k, (_, _, exp) in entries.items() if exp is not None and exp < now
                ]:
                    del entries[key]
                    removed += 1
        return removed

    async def areset_stats(self) -> None:
        with self._count_lock:
            self._counts.clear()


_PG_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS graphyard_cache (
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        expiry DOUBLE PRECISION,
        encoding TEXT NOT NULL,
        val BYTEA NOT NULL,
        PRIMARY KEY (ns, key)
    )""",
    """CREATE TABLE IF NOT EXISTS graphyard_cache_stats (
        name TEXT PRIMARY KEY,
        hits BIGINT NOT NULL DEFAULT 0,
        misses BIGINT NOT NULL DEFAULT 0,
        stores BIGINT NOT NULL DEFAULT 0,
        saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0
    )""",
)
_PG_COUNT = """INSERT INTO graphyard_cache_stats AS s (name, hits, misses, stores, saved_usd)
    VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (name) DO UPDATE SET hits = s.hits + excluded.hits,
        misses = s.misses + excluded.misses, stores = s.stores + excluded.stores,
        saved_usd = s.saved_usd + excluded.saved_usd"""
_PG_SET = """INSERT INTO graphyard_cache (ns, key, expiry, encoding, val) VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (ns, key) DO UPDATE SET expiry = excluded.expiry,
        encoding = excluded.encoding, val = excluded.val"""


class PostgresCache(StatsBackend[ValueT]):
    """A ``BaseCache`` in Postgres (LangGraph ships none): the checkpointer's database.

    Async methods use ``pool`` (the saver's ``AsyncConnectionPool``) when given, else one
    connection of their own; the sync methods (the CLI, sync graphs) open a short-lived
    connection to ``conninfo``.
    """

    kind = "postgres"

    def __init__(self, conninfo: str, *, pool: Any = None) -> None:
        super().__init__()
        from graphyard.persistence._postgres import redact

        self.conninfo = conninfo
        self.location = redact(conninfo)
        self._pool = pool
        self._conn: Any = None
        self._conn_lock = asyncio.Lock()
        self._ready = False

    # --- connections -----------------------------------------------------------------------

    async def _execute(
        self, query: str, params: Sequence[Any] | None = None, *, many: bool = False
    ) -> list[tuple[Any, ...]]:
        if self._pool is not None:
            async with self._pool.connection() as conn:
                return await self._run(conn, query, params, many=many)
        async with self._conn_lock:
            if self._conn is None or self._conn.closed:
                from psycopg import AsyncConnection

                self._conn = await AsyncConnection.connect(self.conninfo, autocommit=True)
            return await self._run(self._conn, query, params, many=many)

    async def _run(
        self, conn: Any, query: str, params: Sequence[Any] | None, *, many: bool
    ) -> list[tuple[Any, ...]]:
        async with conn.cursor(row_factory=_tuple_rows()) as cur:
            if many:
                await cur.executemany(query, params or [])
                return []
            await cur.execute(query, params)
            return list(await cur.fetchall()) if cur.description else []

    def _sync(
        self, query: str, params: Sequence[Any] | None = None, *, many: bool = False
    ) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True) as conn, conn.cursor() as cur:
            for statement in _PG_SCHEMA:
                cur.execute(statement)  # type: ignore[arg-type]
            if many:
                cur.executemany(query, params or [])  # type: ignore[arg-type]
                return []
            cur.execute(query, params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    async def setup(self) -> None:
        """Create the tables if missing (idempotent)."""
        if not self._ready:
            for statement in _PG_SCHEMA:
                await self._execute(statement)
            self._ready = True

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    # --- BaseCache -------------------------------------------------------------------------

    def _decode(self, rows: Sequence[tuple[Any, ...]]) -> dict[FullKey, ValueT]:
        now = _now()
        out: dict[FullKey, ValueT] = {}
        for ns, key, expiry, encoding, raw in rows:
            if expiry is None or expiry >= now:
                out[(tuple(ns.split(",")), key)] = self.serde.loads_typed((encoding, bytes(raw)))
        return out

    @staticmethod
    def _select(keys: Sequence[FullKey]) -> tuple[str, list[str]]:
        where = " OR ".join("(ns = %s AND key = %s)" for _ in keys)
        params = [p for ns, key in keys for p in (",".join(ns), key)]
        return f"SELECT ns, key, expiry, encoding, val FROM graphyard_cache WHERE {where}", params

    def _rows(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> list[tuple[Any, ...]]:
        now = _now()
        rows = []
        for (ns, key), (value, ttl) in pairs.items():
            encoding, raw = self.serde.dumps_typed(value)
            rows.append((",".join(ns), key, now + ttl if ttl is not None else None, encoding, raw))
        return rows

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        return self._decode(self._sync(*self._select(keys))) if keys else {}

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        if not keys:
            return {}
        await self.setup()
        return self._decode(await self._execute(*self._select(keys)))

    def set(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        if pairs:
            self._sync(_PG_SET, self._rows(pairs), many=True)

    async def aset(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        if pairs:
            await self.setup()
            await self._execute(_PG_SET, self._rows(pairs), many=True)

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        if namespaces is None:
            self._sync("DELETE FROM graphyard_cache")
        else:
            self._sync(
                "DELETE FROM graphyard_cache WHERE ns = ANY(%s)",
                [[",".join(n) for n in namespaces]],
            )

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        await self.setup()
        if namespaces is None:
            await self._execute("DELETE FROM graphyard_cache")
        else:
            await self._execute(
                "DELETE FROM graphyard_cache WHERE ns = ANY(%s)",
                [[",".join(n) for n in namespaces]],
            )

    # --- counters --------------------------------------------------------------------------

    async def acount(self, counts: Sequence[CacheCounts]) -> None:
        await self.setup()
        await self._execute(
            _PG_COUNT,
            [(c.name, c.hits, c.misses, c.stores, c.saved_usd) for c in counts],
            many=True,
        )

    async def astats(self) -> list[CacheCounts]:
        await self.setup()
        rows = await self._execute(
            "SELECT name, hits, misses, stores, saved_usd FROM graphyard_cache_stats ORDER BY name"
        )
        return [CacheCounts(n, int(h), int(m), int(s), float(d)) for n, h, m, s, d in rows]

    async def aentries(self) -> list[NamespaceEntries]:
        await self.setup()
        now = _now()
        rows = await self._execute(
            """SELECT ns, COUNT(*) FILTER (WHERE expiry IS NULL OR expiry >= %s),
                COUNT(*) FILTER (WHERE expiry < %s), COALESCE(SUM(LENGTH(val)), 0)
            FROM graphyard_cache GROUP BY ns ORDER BY ns""",
            (now, now),
        )
        return [NamespaceEntries(ns, int(a), int(b), int(c)) for ns, a, b, c in rows]

    async def apurge_expired(self) -> int:
        await self.setup()
        rows = await self._execute(
            "WITH gone AS (DELETE FROM graphyard_cache WHERE expiry < %s RETURNING 1) SELECT COUNT(*) FROM gone",
            (_now(),),
        )
        return int(rows[0][0]) if rows else 0

    async def areset_stats(self) -> None:
        await self.setup()
        await self._execute("DELETE FROM graphyard_cache_stats")


def _tuple_rows() -> Any:
    from psycopg.rows import tuple_row

    return tuple_row
