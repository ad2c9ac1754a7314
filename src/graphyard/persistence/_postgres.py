"""The ``postgresql://`` checkpointer: the official ``AsyncPostgresSaver`` on a connection pool.

``AsyncPostgresSaver.from_conn_string`` opens one connection, which every run of the server
would share behind the saver's lock. Here the saver gets a ``psycopg_pool.AsyncConnectionPool``
instead, sized by :class:`graphyard.config.PostgresConfig`, with the connection settings the
saver requires (read from its wheel): ``autocommit=True`` (its ``setup()`` runs
``CREATE INDEX CONCURRENTLY``, which refuses a transaction), ``prepare_threshold=0`` (safe
behind PgBouncer in transaction mode) and ``row_factory=dict_row`` (it indexes rows by
column name). Connections are checked before use, so a restarted Postgres costs one
reconnect, not a failed request.

One deliberate change to the official saver: it takes an instance-wide ``asyncio.Lock``
around every statement, even on a pool, so a server's concurrent runs queue for one
connection at a time (langgraph issue #7259, measured there at 2.7x fewer operations per
second; the fix, PR #7269, is not released). With a pool each operation holds its own
connection, so the lock is replaced by a semaphore of the pool's size.

The schema is created on open, lazily and idempotently: a cheap read of the migrations table
skips the work when it is current, and otherwise the migrations run under a Postgres advisory
lock, so two servers starting together never race the same ``INSERT``.

This module must never log or raise a password: URLs are redacted before they are shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from graphyard.config import PostgresConfig
from graphyard.errors import ConfigError

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg import AsyncConnection

__all__ = ["ensure_schema", "open_postgres_saver", "redact"]

SETUP_LOCK_KEY = 0x6772_7970_6879_6172 & 0x7FFF_FFFF_FFFF_FFFF
"""Advisory lock held while migrations run ("grphyar" in ASCII, as a positive bigint)."""


def redact(url: str) -> str:
    """``url`` with its password replaced, fit for logs and error messages.

    >>> redact("postgresql://app:s3cret@db:5432/agents")
    'postgresql://app:***@db:5432/agents'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _require_extra() -> None:
    try:
        import langgraph.checkpoint.postgres.aio  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "postgresql:// checkpointers need the postgres extra: pip install 'graphyard[postgres]'"
        ) from exc


@asynccontextmanager
async def open_postgres_saver(
    url: str, config: PostgresConfig | None = None
) -> AsyncIterator[AsyncPostgresSaver]:
    """Open a pooled ``AsyncPostgresSaver`` for ``url`` with its schema in place.

    >>> async def main() -> None:  # doctest: +SKIP
    ...     async with open_postgres_saver("postgresql://localhost/agents") as saver:
    ...         print(await saver.aget_tuple({"configurable": {"thread_id": "t1"}}))
    """
    _require_extra()
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg import AsyncConnection, OperationalError
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool, PoolTimeout

    config = config or PostgresConfig()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "prepare_threshold": 0,
        "row_factory": dict_row,
    }
    try:
        # One direct connection first: its error says what is wrong (refused, auth, no
        # such database), where a pool only reports that it timed out.
        async with await AsyncConnection.connect(
            url, connect_timeout=max(1, int(config.timeout)), **kwargs
        ) as conn:
            await ensure_schema(conn)
    except OperationalError as exc:
        raise ConfigError(
            f"cannot use Postgres at {redact(url)}: {str(exc).strip()}; check that the server "
            "runs and accepts this user and database (GRAPHYARD_CHECKPOINTER)"
        ) from exc
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        kwargs=kwargs,
        min_size=config.min_size,
        max_size=config.max_size,
        timeout=config.timeout,
        max_idle=config.max_idle,
        check=AsyncConnectionPool.check_connection,
        name="graphyard-checkpoints",
        open=False,
    )
    try:
        await pool.open(wait=config.min_size > 0, timeout=config.timeout)
    except PoolTimeout as exc:
        await pool.close()
        raise ConfigError(
            f"cannot open {config.min_size} connection(s) to Postgres at {redact(url)} within "
            f"{config.timeout}s; lower GRAPHYARD_POSTGRES__MIN_SIZE or check the server's "
            "max_connections"
        ) from exc
    saver = AsyncPostgresSaver(pool)
    # The saver serializes every statement behind one asyncio.Lock, even on a pool
    # (langgraph issue #7259; fix proposed in PR #7269). Each operation takes its own pooled
    # connection, so the lock only needs to bound them to the pool's size.
    saver.lock = asyncio.Semaphore(config.max_size)  # type: ignore[assignment]
    try:
        yield saver
    finally:
        await pool.close()


async def ensure_schema(conn: AsyncConnection[Any], *, poll: float = 0.05) -> bool:
    """Bring the saver's tables up to date on ``conn``; return whether this call migrated.

    ``conn`` must be in autocommit mode with ``dict_row`` rows. Safe to call from many
    processes at once: one runs the migrations under an advisory lock while the others poll
    for it. (Waiting inside ``pg_advisory_lock`` would deadlock: the migrations'
    ``CREATE INDEX CONCURRENTLY`` waits for every open transaction, the waiting one too.)
    """
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    while not await _schema_is_current(conn):
        row = await (
            await conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (SETUP_LOCK_KEY,))
        ).fetchone()
        if not (row and row["got"]):
            await asyncio.sleep(poll)
            continue
        try:
            if await _schema_is_current(conn):
                return False
            # The saver's own setup() on this one connection, so it runs under the lock.
            await AsyncPostgresSaver(conn).setup()
            return True
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK_KEY,))
    return False


async def _schema_is_current(conn: AsyncConnection[Any]) -> bool:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg import errors

    try:
        cursor = await conn.execute("SELECT max(v) AS v FROM checkpoint_migrations")
        row = await cursor.fetchone()
    except errors.UndefinedTable:
        return False  # autocommit: the failed statement leaves no transaction behind
    return row is not None and row["v"] == len(AsyncPostgresSaver.MIGRATIONS) - 1
