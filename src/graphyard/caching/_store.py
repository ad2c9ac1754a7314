"""The cache a runtime opens beside its checkpointer, and the counters around it.

:class:`GraphCache` is the ``BaseCache`` handed to ``StateGraph.compile(cache=...)``: it
delegates to a backend (see :mod:`graphyard.caching._backends`) and counts, per node, how
many lookups hit and missed, so ``graphyard cache stats`` shows a node cache's hit rate for
any graph, not only the reference agent. The answer cache stores its entries through the
same backend under its own namespace and counts itself (with the dollars saved).

:func:`open_cache` picks the backend from the settings: ``GRAPHYARD_CACHE__URL`` when set,
else the one that matches the checkpointer. It must never open a network connection of its
own when the saver already has a pool it can share, and never block the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.cache.base import BaseCache, FullKey, Namespace

from graphyard.caching._backends import (
    CacheCounts,
    MemoryCacheBackend,
    NamespaceEntries,
    PostgresCache,
    SqliteCacheBackend,
    StatsBackend,
)
from graphyard.config import CacheConfig, Settings
from graphyard.errors import ConfigError

__all__ = ["GraphCache", "cache_location", "open_cache"]

log = logging.getLogger(__name__)

_NODE_NS = "__pregel_ns_writes"
"""LangGraph's namespace prefix for node results (``langgraph._internal._constants.CACHE_NS_WRITES``)."""


def _counter_name(ns: Namespace) -> str:
    """``node:<name>`` for a graph node, ``task:<name>`` for an ``@task``, else the namespace.

    >>> _counter_name(("__pregel_ns_writes", "pkg.mod.search", "search"))
    'node:search'
    >>> _counter_name(("__pregel_ns_writes", "pkg.mod.make.<locals>.kb_search"))
    'task:kb_search'
    >>> _counter_name(("graphyard", "answers"))
    'answers'
    """
    if ns and ns[0] == _NODE_NS:
        if len(ns) >= 3:
            return f"node:{ns[2]}"
        return f"task:{ns[-1].rpartition('.')[2]}"
    if len(ns) > 1 and ns[0] == "graphyard":  # graphyard's own caches: ("graphyard", "answers")
        return ":".join(ns[1:])
    return ":".join(ns)


def _fresh_ids(writes: Any) -> Any:
    """Cached node writes with new ids on their messages.

    LangGraph replays a hit's writes as stored, message ids included; the ``messages``
    channel replaces a message with the same id, so a hit on a later turn of the same
    thread would overwrite the earlier answer instead of adding one.

    >>> from langchain_core.messages import AIMessage
    >>> out = _fresh_ids([("messages", [AIMessage("hi", id="a")])])
    >>> out[0][0], out[0][1][0].id != "a", out[0][1][0].content
    ('messages', True, 'hi')
    """
    if not isinstance(writes, (list, deque)):  # LangGraph stores a task's deque of writes
        return writes
    out = []
    for write in writes:
        if isinstance(write, (list, tuple)) and len(write) == 2:
            channel, value = write
            out.append((channel, _renew(value)))
        else:
            out.append(write)
    return out


def _renew(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return value.model_copy(update={"id": str(uuid.uuid4())})
    if isinstance(value, list) and any(isinstance(v, BaseMessage) for v in value):
        return [_renew(v) for v in value]
    return value


class GraphCache(BaseCache[Any]):
    """A counting ``BaseCache`` over one backend; pass it to ``compile(cache=...)``.

    >>> import asyncio
    >>> cache = GraphCache(MemoryCacheBackend())
    >>> async def demo() -> list[tuple[str, int, int]]:
    ...     key = (("__pregel_ns_writes", "f", "search"), "k")
    ...     await cache.aget([key])                      # a miss
    ...     await cache.aset({key: ([("out", 1)], 60)})  # stored
    ...     await cache.aget([key])                      # a hit
    ...     return [(c.name, c.hits, c.misses) for c in await cache.astats()]
    >>> asyncio.run(demo())
    [('node:search', 1, 1)]
    """

    def __init__(self, backend: StatsBackend[Any], config: CacheConfig | None = None) -> None:
        super().__init__(serde=backend.serde)
        self.backend = backend
        self.config = config or CacheConfig()

    @property
    def kind(self) -> str:
        return self.backend.kind

    @property
    def location(self) -> str:
        return self.backend.location

    # --- BaseCache: the node cache ---------------------------------------------------------

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        # sync graphs (graph.invoke): same fresh message ids; counters are kept by aget only
        return {key: _fresh_ids(writes) for key, writes in self.backend.get(keys).items()}

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        try:
            found = await self.backend.aget(keys)
        except Exception:  # an unreadable cache is a miss: the node runs, the run goes on
            log.exception("could not read the node cache")
            found = {}
        found = {key: _fresh_ids(writes) for key, writes in found.items()}
        counts: dict[str, CacheCounts] = {}
        for key in keys:
            name = _counter_name(key[0])
            c = counts.setdefault(name, CacheCounts(name))
            if key in found:
                c.hits += 1
            else:
                c.misses += 1
        if counts:
            await self._count(counts.values())
        return found

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        self.backend.set(pairs)

    async def aset(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        try:
            await self.backend.aset(pairs)
        except Exception:
            log.exception("could not write the node cache")
            return
        counts: dict[str, CacheCounts] = {}
        for key in pairs:
            name = _counter_name(key[0])
            counts.setdefault(name, CacheCounts(name)).stores += 1
        await self._count(counts.values())

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        self.backend.clear(namespaces)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        await self.backend.aclear(namespaces)

    # --- counters --------------------------------------------------------------------------

    async def _count(self, counts: Any) -> None:
        try:
            await self.backend.acount(list(counts))
        except Exception:  # counters must never fail a run
            log.exception("could not update cache counters")

    async def acount(self, counts: Sequence[CacheCounts]) -> None:
        """Add to the counters (used by the answer cache)."""
        await self._count(counts)

    async def astats(self) -> list[CacheCounts]:
        """Counters per cache: hits, misses, stores and dollars saved."""
        return await self.backend.astats()

    async def aentries(self) -> list[NamespaceEntries]:
        """Stored entries per namespace, live and expired."""
        return await self.backend.aentries()

    async def apurge_expired(self) -> int:
        """Delete expired entries; returns how many."""
        return await self.backend.apurge_expired()

    async def areset_stats(self) -> None:
        await self.backend.areset_stats()


def cache_location(settings: Settings) -> str:
    """Where the cache lives for these settings: a URL, ``memory`` or ``none``.

    >>> from graphyard.config import Settings
    >>> cache_location(Settings(checkpointer="sqlite:///data/graphyard.db"))
    'sqlite:///data/graphyard.cache.db'
    >>> cache_location(Settings(checkpointer="postgresql://db/app"))
    'postgresql://db/app'
    """
    config = settings.cache
    if not config.enabled:
        return "none"
    if config.url:
        return config.url
    url = settings.checkpointer
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from graphyard.persistence import sqlite_path

        path = sqlite_path(url)
        if path == ":memory:":
            return "memory"
        p = Path(path)
        sibling = p.with_name(f"{p.stem}.cache{p.suffix or '.db'}")
        return f"sqlite:///{sibling}"
    if scheme in ("postgresql", "postgres"):
        return url
    if scheme == "dynamodb":
        return url  # entries go to a table of their own, "<table>-cache"
    raise ConfigError(
        f"no cache backend for checkpointer {url!r}; set GRAPHYARD_CACHE__URL to "
        "sqlite:///path.db, postgresql://..., dynamodb://table?region=..., memory or none"
    )


@asynccontextmanager
async def open_cache(settings: Settings, *, saver: Any = None) -> AsyncIterator[GraphCache | None]:
    """Open the cache for ``settings`` (``None`` when caching is off); close it on exit.

    ``saver`` is the open checkpointer: a Postgres cache shares its connection pool.

    >>> import asyncio
    >>> from graphyard.config import Settings
    >>> async def main() -> str:
    ...     async with open_cache(Settings(checkpointer="sqlite:///:memory:")) as cache:
    ...         return cache.kind
    >>> asyncio.run(main())
    'memory'
    """
    location = cache_location(settings)
    backend: StatsBackend[Any]
    if location == "none":
        yield None
        return
    if location == "memory":
        backend = MemoryCacheBackend()
    elif location.startswith("dynamodb:"):
        from graphyard.caching._dynamodb import DynamoDBCache

        try:
            backend = await asyncio.to_thread(DynamoDBCache.open, location)
        except Exception as exc:  # no permission to create the table, unreachable, ...
            log.warning(
                "cache: cannot use a DynamoDB cache table (%s); node and answer caches live "
                "in this process's memory (lost on restart, not shared between instances). "
                "Create the table <checkpoint table>-cache (pk/sk strings, TTL on 'ttl') or "
                "set GRAPHYARD_CACHE__URL=memory to silence this.",
                exc,
            )
            backend = MemoryCacheBackend()
    elif location.startswith("sqlite:"):
        from graphyard.persistence import sqlite_path

        backend = await asyncio.to_thread(SqliteCacheBackend, path=sqlite_path(location))
    elif location.partition(":")[0].lower() in ("postgresql", "postgres"):
        pool = getattr(saver, "conn", None) if location == settings.checkpointer else None
        from psycopg_pool import AsyncConnectionPool

        pg = PostgresCache(location, pool=pool if isinstance(pool, AsyncConnectionPool) else None)
        await pg.setup()
        backend = pg
    else:
        raise ConfigError(
            f"cache URL {location!r} is not understood; use sqlite:///path.db, "
            "postgresql://..., dynamodb://table?region=..., memory or none"
        )
    cache = GraphCache(backend, settings.cache)
    log.info("cache: %s at %s", backend.kind, backend.location)
    try:
        yield cache
    finally:
        await backend.aclose()
