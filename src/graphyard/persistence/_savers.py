"""Open the checkpointer named by ``GRAPHYARD_CHECKPOINTER``.

SQLite is the embedded default and uses the official ``AsyncSqliteSaver`` (WAL mode,
``synchronous`` from settings). The server path is async only: the saver runs on
``aiosqlite``'s worker thread, never blocking the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from langgraph.checkpoint.base import BaseCheckpointSaver

from graphyard.config import SqliteSynchronous
from graphyard.errors import ConfigError

__all__ = ["ThreadSummary", "list_threads", "open_saver", "sqlite_path"]


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


@asynccontextmanager
async def open_saver(
    url: str, *, synchronous: SqliteSynchronous = "FULL"
) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Open, set up and yield the checkpointer for ``url``; close it on exit."""
    scheme = urlsplit(url).scheme
    if scheme != "sqlite":
        raise ConfigError(f"unsupported checkpointer {url!r}; supported: sqlite:///path.db")
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = sqlite_path(url)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        await saver.setup()  # creates tables and turns on WAL
        await saver.conn.execute(f"PRAGMA synchronous={synchronous}")
        await saver.conn.execute("PRAGMA busy_timeout=10000")
        yield saver


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    thread_id: str
    checkpoints: int
    latest_checkpoint_id: str


async def list_threads(
    saver: BaseCheckpointSaver[str], *, limit: int = 50, offset: int = 0
) -> list[ThreadSummary]:
    """Threads with their checkpoint counts, most recently active first.

    Reads the official SQLite saver's table directly: its API can only list checkpoints,
    which for a long thread means reading every one of them.
    """
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    if not isinstance(saver, AsyncSqliteSaver):
        raise ConfigError(f"listing threads is not supported for {type(saver).__name__}")
    async with saver.lock:
        cursor = await saver.conn.execute(
            "SELECT thread_id, COUNT(*), MAX(checkpoint_id) FROM checkpoints"
            " WHERE checkpoint_ns = '' GROUP BY thread_id"
            " ORDER BY MAX(checkpoint_id) DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        rows = await cursor.fetchall()
    return [ThreadSummary(str(t), int(n), str(c)) for t, n, c in rows]
