"""Retention: delete threads, prune idle ones, keep only the latest checkpoint, a TTL sweep.

Keeping only a thread's latest checkpoint is where the official savers stop short. A
``DeltaChannel`` (graphyard's ``messages``) stores no value in most checkpoints: a thread's
messages are rebuilt by replaying the writes of the checkpoint's ancestors back to the last
``_DeltaSnapshot``. Drop the ancestors and the messages read back empty, with no error
(``PostgresSaver.prune(strategy="keep_latest")`` refuses such threads; the SQLite saver has
no prune at all). :func:`prune_threads` with ``keep_latest=True`` therefore first rebuilds
each delta channel's value at the kept checkpoint (the saver's own
``aget_delta_channel_history``, replayed through the graph's own channel), writes it into
that checkpoint as a ``_DeltaSnapshot`` (what LangGraph itself writes every
``snapshot_frequency`` updates), and only then deletes the ancestors. Rebuilding needs the
channel's reducer, so it needs the graph's channels; without them a thread that uses a
delta channel is refused, never emptied.

Only the root namespace is compacted; subgraph namespaces are kept whole (their channels
belong to graphs this module is not given). Deleting threads needs no graph.

Nothing here may block the event loop: the server runs :func:`ttl_sweeps` in its lifespan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from langgraph.channels.base import BaseChannel
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple, copy_checkpoint
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from graphyard.config import parse_duration
from graphyard.errors import ConfigError
from graphyard.persistence._stores import ThreadStore, checkpoint_id_at, thread_store

__all__ = [
    "PruneStrategy",
    "RetentionReport",
    "delete_threads",
    "prune_threads",
    "snapshot_delta_channels",
    "sweep_idle_threads",
    "ttl_sweeps",
]

log = logging.getLogger(__name__)

PruneStrategy = Literal["delete", "keep_latest"]
"""What pruning does to a selected thread: delete all of it, or keep its latest checkpoint."""

SWEEP_VACUUM_FRACTION = 0.25
"""The TTL sweep VACUUMs SQLite only once deletes have freed this share of the file:
VACUUM rewrites the whole file while runs wait."""

_COUNTERS = "counters_since_delta_snapshot"


@dataclass(slots=True)
class RetentionReport:
    """What a retention command did (or, with ``dry_run``, would do)."""

    strategy: PruneStrategy
    dry_run: bool = False
    threads: list[str] = field(default_factory=list)
    """Threads deleted, or compacted to their latest checkpoint."""
    checkpoints_deleted: int = 0
    """Root-namespace checkpoints removed (or to be removed)."""
    snapshots: dict[str, list[str]] = field(default_factory=dict)
    """Per thread, the delta channels written into its kept checkpoint as a snapshot."""
    bytes_before: int | None = None
    """Size of the checkpoint storage before, when it was compacted."""
    bytes_after: int | None = None
    """Size after compaction (SQLite: after VACUUM)."""

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--json`` prints this)."""
        return asdict(self)


async def delete_threads(
    saver: BaseCheckpointSaver[str],
    thread_ids: Sequence[str],
    *,
    dry_run: bool = False,
    compact: bool = True,
) -> RetentionReport:
    """Delete every checkpoint, write and blob of these threads; nothing of any other.

    >>> import asyncio
    >>> from graphyard.persistence import open_saver
    >>> async def main() -> list[str]:
    ...     async with open_saver("sqlite:///:memory:") as saver:
    ...         return (await delete_threads(saver, ["nobody"])).threads
    >>> asyncio.run(main())
    []
    """
    store = thread_store(saver)
    report = RetentionReport("delete", dry_run=dry_run)
    existing = await store.existing(list(thread_ids))
    if dry_run:
        report.threads = sorted(existing)
        return report
    before = await store.size_bytes()
    report.threads = sorted(await store.delete_threads(existing))
    if report.threads and compact:
        await _compact(store, report, before)
    return report


async def prune_threads(
    saver: BaseCheckpointSaver[str],
    *,
    older_than: timedelta | None = None,
    keep_latest: bool = False,
    channels: Mapping[str, BaseChannel] | None = None,
    dry_run: bool = False,
    compact: bool = True,
    now: datetime | None = None,
) -> RetentionReport:
    """Prune threads idle longer than ``older_than`` (every thread if None).

    Selected threads are deleted, or with ``keep_latest`` cut down to their latest
    checkpoint with their full state still readable. ``channels`` are the graph's channels
    (``compiled_graph.channels``), needed to keep a ``DeltaChannel`` thread readable.

    >>> import asyncio
    >>> from datetime import timedelta
    >>> from graphyard.persistence import open_saver
    >>> async def main() -> int:
    ...     async with open_saver("sqlite:///:memory:") as saver:
    ...         report = await prune_threads(saver, older_than=timedelta(days=7))
    ...         return len(report.threads)
    >>> asyncio.run(main())
    0
    """
    if older_than is None and not keep_latest:
        raise ConfigError(
            "refusing to delete every thread: give an age (--older-than 7d), "
            "or name threads to `graphyard threads delete`"
        )
    store = thread_store(saver)
    now = now or datetime.now(UTC)
    if older_than is not None:
        selected = await store.idle_threads(checkpoint_id_at(now - older_than))
    else:
        selected = []
        while page := await store.list_threads(limit=1000, offset=len(selected)):
            selected += page
    strategy: PruneStrategy = "keep_latest" if keep_latest else "delete"
    report = RetentionReport(strategy, dry_run=dry_run)
    before = await store.size_bytes()
    if strategy == "delete":
        report.threads = [t.thread_id for t in selected]
        report.checkpoints_deleted = sum(t.checkpoints for t in selected)
        if not dry_run and selected:
            cutoff = checkpoint_id_at(now - older_than) if older_than is not None else None
            deleted = set(await store.delete_threads(report.threads, idle_before=cutoff))
            report.checkpoints_deleted = sum(
                t.checkpoints for t in selected if t.thread_id in deleted
            )
            report.threads = [t for t in report.threads if t in deleted]
    else:
        for summary in selected:
            await _keep_latest(saver, store, summary.thread_id, channels, report)
    if not dry_run and compact and (report.threads or report.checkpoints_deleted):
        await _compact(store, report, before)
    return report


async def _keep_latest(
    saver: BaseCheckpointSaver[str],
    store: ThreadStore,
    thread_id: str,
    channels: Mapping[str, BaseChannel] | None,
    report: RetentionReport,
) -> None:
    latest = await saver.aget_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    if latest is None:
        return
    keep_id = latest.config["configurable"]["checkpoint_id"]
    older = await store.count_before(thread_id, keep_id)
    if older == 0:
        return
    needed = _delta_channels_to_snapshot(latest, channels)
    if report.dry_run:
        written = needed
    else:
        written = await snapshot_delta_channels(saver, latest, channels or {})
        older = await store.drop_before(thread_id, keep_id)
    report.threads.append(thread_id)
    report.checkpoints_deleted += older
    if written:
        report.snapshots[thread_id] = written


def _delta_channels_to_snapshot(
    latest: CheckpointTuple, channels: Mapping[str, BaseChannel] | None
) -> list[str]:
    """Delta channels whose value at ``latest`` lives only in its ancestors' writes."""
    values = latest.checkpoint["channel_values"]
    versions = latest.checkpoint["channel_versions"]
    # LangGraph counts updates since the last snapshot for every delta channel of a graph.
    counted = set((latest.metadata or {}).get(_COUNTERS) or {})
    declared = {k for k, spec in (channels or {}).items() if isinstance(spec, DeltaChannel)}
    needed = sorted(k for k in counted | declared if k in versions and k not in values)
    unknown = [k for k in needed if k not in declared]
    if unknown:
        thread_id = latest.config["configurable"]["thread_id"]
        raise ConfigError(
            f"thread {thread_id!r} keeps {', '.join(unknown)} in a DeltaChannel, rebuilt from "
            "the checkpoints that keep_latest would delete; pass the graph's channels "
            "(`graphyard threads prune --keep-latest` loads the configured graph) or prune "
            "without --keep-latest"
        )
    return needed


async def snapshot_delta_channels(
    saver: BaseCheckpointSaver[str],
    latest: CheckpointTuple,
    channels: Mapping[str, BaseChannel],
) -> list[str]:
    """Write the full value of each delta channel into ``latest`` as a ``_DeltaSnapshot``.

    Afterwards the checkpoint reads back the same without any ancestor. Returns the channels
    written (none if the checkpoint already holds every value).

    >>> import asyncio
    >>> from graphyard.persistence import open_saver
    >>> async def main() -> None:  # doctest: +SKIP
    ...     async with open_saver("sqlite:///g.db") as saver:
    ...         latest = await saver.aget_tuple({"configurable": {"thread_id": "t1"}})
    ...         print(await snapshot_delta_channels(saver, latest, graph.channels))
    """
    todo = _delta_channels_to_snapshot(latest, channels)
    if not todo:
        return []
    config = latest.config
    history = await saver.aget_delta_channel_history(config=config, channels=todo)
    checkpoint = copy_checkpoint(latest.checkpoint)
    for name in todo:
        channel = channels[name].from_checkpoint(history[name].get("seed"))
        channel.replay_writes(history[name]["writes"])  # type: ignore[attr-defined]
        checkpoint["channel_values"][name] = _DeltaSnapshot(channel.get())
    metadata: dict[str, Any] = dict(latest.metadata or {})
    counters = {k: v for k, v in (metadata.get(_COUNTERS) or {}).items() if k not in todo}
    if counters:
        metadata[_COUNTERS] = counters
    else:
        metadata.pop(_COUNTERS, None)
    configurable = config["configurable"]
    # Stored without a parent: the kept checkpoint no longer depends on one.
    await saver.aput(
        {"configurable": {"thread_id": configurable["thread_id"], "checkpoint_ns": ""}},
        checkpoint,
        metadata,  # type: ignore[arg-type]
        {name: checkpoint["channel_versions"][name] for name in todo},
    )
    return todo


async def _compact(store: ThreadStore, report: RetentionReport, before: int) -> None:
    compaction = await store.compact()
    if compaction is not None:
        report.bytes_before, report.bytes_after = before, compaction.bytes_after


async def sweep_idle_threads(
    saver: BaseCheckpointSaver[str], ttl: timedelta, *, now: datetime | None = None
) -> RetentionReport:
    """One TTL sweep: delete threads idle longer than ``ttl``.

    SQLite is VACUUMed only once deletes have freed ``SWEEP_VACUUM_FRACTION`` of the file;
    Postgres is left to autovacuum.

    >>> import asyncio
    >>> from datetime import timedelta
    >>> from graphyard.persistence import open_saver
    >>> async def main() -> list[str]:
    ...     async with open_saver("sqlite:///:memory:") as saver:
    ...         return (await sweep_idle_threads(saver, timedelta(days=30))).threads
    >>> asyncio.run(main())
    []
    """
    report = await prune_threads(saver, older_than=ttl, compact=False, now=now)
    store = thread_store(saver)
    fraction = getattr(store, "freed_fraction", None)
    if report.threads and fraction is not None and await fraction() >= SWEEP_VACUUM_FRACTION:
        await _compact(store, report, await store.size_bytes())
    return report


@asynccontextmanager
async def ttl_sweeps(
    saver: BaseCheckpointSaver[str],
    ttl: str | None,
    every: str = "1h",
    *,
    on_deleted: Callable[[str], Awaitable[None]] | None = None,
) -> AsyncIterator[asyncio.Task[None] | None]:
    """Run :func:`sweep_idle_threads` every ``every`` in a background task while open.

    Does nothing when ``ttl`` is None. ``on_deleted`` is awaited with each deleted thread's
    ID (the server drops its own record of the thread). A failed sweep is logged and tried
    again next time; it never stops the server.

    >>> import asyncio
    >>> from graphyard.persistence import open_saver
    >>> async def main() -> bool:
    ...     async with open_saver("sqlite:///:memory:") as saver:
    ...         async with ttl_sweeps(saver, "30d", "1h") as task:
    ...             return task is not None
    >>> asyncio.run(main())
    True
    """
    if ttl is None:
        yield None
        return
    age, period = parse_duration(ttl), parse_duration(every).total_seconds()

    async def loop() -> None:
        while True:
            try:
                report = await sweep_idle_threads(saver, age)
            except Exception:
                log.exception("thread TTL sweep failed; trying again in %s", every)
            else:
                for thread_id in report.threads if on_deleted is not None else ():
                    try:
                        await on_deleted(thread_id)
                    except Exception:
                        log.exception("forgetting swept thread %s failed", thread_id)
                if report.threads:
                    log.info(
                        "TTL sweep deleted %d thread(s) idle longer than %s",
                        len(report.threads),
                        ttl,
                    )
            await asyncio.sleep(period)

    task = asyncio.create_task(loop(), name="graphyard-ttl-sweep")
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
