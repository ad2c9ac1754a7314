"""Open the checkpointer named by ``GRAPHYARD_CHECKPOINTER``.

One URL picks the backend; :func:`open_saver` dispatches on its scheme:

- ``sqlite:///path.db``: the official ``AsyncSqliteSaver`` (WAL mode, ``synchronous`` from
  settings), on ``aiosqlite``'s worker thread;
- ``postgresql://...``: the official ``AsyncPostgresSaver`` on a psycopg connection pool
  (see :mod:`graphyard.persistence._postgres`);
- ``dynamodb://table?region=...&endpoint_url=...&s3_bucket=...``: graphyard's own
  ``AsyncDynamoDBSaver`` (see :mod:`graphyard.persistence.dynamodb`), table created if missing.

The server path is async only: no saver opened here may block the event loop. This module
never reads the environment; it receives a URL and typed settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from langgraph.checkpoint.base import BaseCheckpointSaver

from graphyard.config import Settings, SqliteSynchronous
from graphyard.errors import ConfigError

__all__ = ["ThreadSummary", "list_threads", "open_saver", "saver_backend", "sqlite_path"]

SUPPORTED = (
    "sqlite:///path.db, sqlite:////abs/path.db, postgresql://user:pass@host:5432/db, "
    "dynamodb://table?region=us-east-1"
)
"""What the error for an unknown scheme lists; extend it with each new backend."""


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL: three slashes for a relative path, four for absolute.

    >>> sqlite_path("sqlite:///graphyard.db"), sqlite_path("sqlite:////var/lib/g.db")
    ('graphyard.db', '/var/lib/g.db')
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        raise ConfigError(
            f"checkpointer URL {url!r} is not a SQLite URL: use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ConfigError(f"checkpointer URL {url!r} has no file path")
    return path


def saver_backend(url: str) -> str:
    """The backend a checkpointer URL names: ``sqlite``, ``postgres`` (or ``dynamodb``).

    >>> saver_backend("postgresql://localhost/app"), saver_backend("sqlite:///g.db")
    ('postgres', 'sqlite')
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgres"
    if scheme == "dynamodb":
        return "dynamodb"
    raise ConfigError(f"unsupported checkpointer {url!r}; use one of: {SUPPORTED}")


@asynccontextmanager
async def open_saver(
    url: str,
    *,
    settings: Settings | None = None,
    synchronous: SqliteSynchronous | None = None,
) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Open the checkpointer for ``url``, create its schema if needed, close it on exit.

    ``settings`` carries the per-backend options (SQLite ``synchronous``, the Postgres pool);
    ``synchronous`` overrides ``settings.sqlite_synchronous``.

    >>> import asyncio
    >>> async def main() -> str:
    ...     async with open_saver("sqlite:///:memory:") as saver:
    ...         return type(saver).__name__
    >>> asyncio.run(main())
    'AsyncSqliteSaver'
    """
    settings = settings or Settings.model_construct()
    backend = saver_backend(url)
    opened: AbstractAsyncContextManager[BaseCheckpointSaver[str]]
    if backend == "sqlite":
        opened = _open_sqlite(url, synchronous or settings.sqlite_synchronous)
    elif backend == "postgres":
        from graphyard.persistence._postgres import open_postgres_saver

        opened = open_postgres_saver(url, settings.postgres)
    elif backend == "dynamodb":
        from graphyard.persistence.dynamodb.aio import open_dynamodb_saver

        opened = open_dynamodb_saver(url, ttl=getattr(settings, "dynamodb_ttl", None))
    else:  # pragma: no cover - saver_backend raised already
        raise ConfigError(f"unsupported checkpointer {url!r}; use one of: {SUPPORTED}")
    async with opened as saver:
        yield saver


@asynccontextmanager
async def _open_sqlite(
    url: str, synchronous: SqliteSynchronous
) -> AsyncIterator[BaseCheckpointSaver[str]]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = sqlite_path(url)
    if path != ":memory:":
        await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        await saver.setup()  # creates tables (idempotent) and turns on WAL
        await saver.conn.execute(f"PRAGMA synchronous={synchronous}")
        await saver.conn.execute("PRAGMA busy_timeout=10000")
        yield saver


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """One thread as ``graphyard threads list`` shows it."""

    thread_id: str
    checkpoints: int
    latest_checkpoint_id: str


async def list_threads(
    saver: BaseCheckpointSaver[str], *, limit: int = 50, offset: int = 0
) -> list[ThreadSummary]:
    """Threads with their checkpoint counts, most recently active first.

    Asks the backend's own index (one grouped query) rather than the saver's API, which can
    only list checkpoints: for a long thread that means reading and decoding every one.
    """
    from graphyard.persistence._stores import thread_store

    return await thread_store(saver).list_threads(limit=limit, offset=offset)
