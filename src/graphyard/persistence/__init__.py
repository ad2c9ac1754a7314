"""Persistence: checkpointers for thread state, opened from one URL, and their retention."""

from graphyard.persistence._retention import (
    PruneStrategy,
    RetentionReport,
    delete_threads,
    prune_threads,
    snapshot_delta_channels,
    sweep_idle_threads,
    ttl_sweeps,
)
from graphyard.persistence._rollback import RunMark, mark_thread, rollback_to
from graphyard.persistence._savers import (
    ThreadSummary,
    list_threads,
    open_saver,
    saver_backend,
    sqlite_path,
)
from graphyard.persistence._stores import ThreadStore, thread_store

__all__ = [
    "PruneStrategy",
    "RetentionReport",
    "RunMark",
    "ThreadStore",
    "ThreadSummary",
    "delete_threads",
    "list_threads",
    "mark_thread",
    "open_saver",
    "prune_threads",
    "rollback_to",
    "saver_backend",
    "snapshot_delta_channels",
    "sqlite_path",
    "sweep_idle_threads",
    "thread_store",
    "ttl_sweeps",
]
