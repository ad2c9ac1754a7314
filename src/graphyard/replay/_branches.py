"""A thread's branches: the original run's lineage of checkpoints, and self-standing copies.

A replay starts from a copy of a checkpoint, written as a new child of it (a new branch of
the same thread) or as the first checkpoint of a new thread (a fork), with its delta channels
materialized so the copy stands on its own. The copy's metadata names the checkpoint it
copies (:data:`REPLAY_MARK`), which is how :func:`find_lineage` skips earlier replays'
branches. This module never changes or deletes an existing checkpoint.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple, copy_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from langgraph.pregel import Pregel

__all__ = ["REPLAY_MARK", "find_lineage"]

REPLAY_MARK = "graphyard_replay_of"
"""Checkpoint metadata key on a replay's first checkpoint: the checkpoint it copies."""


async def _root_checkpoints(
    saver: BaseCheckpointSaver[str], thread_id: str
) -> dict[str, CheckpointTuple]:
    out: dict[str, CheckpointTuple] = {}
    async for tup in saver.alist({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}):
        out[tup.config["configurable"]["checkpoint_id"]] = tup
    return out


def _parent(tup: CheckpointTuple) -> str | None:
    return (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")


def find_lineage(checkpoints: Mapping[str, CheckpointTuple], start: str | None = None) -> list[str]:
    """The original run's checkpoints from ``start`` to its newest descendant, oldest first.

    Branches that earlier replays made are skipped; without ``start`` the whole original
    branch (ending at the thread's newest non-replay checkpoint) is returned.
    """
    for checkpoint_id in sorted(checkpoints, reverse=True):  # UUIDv6: newest first
        path: list[str] = []
        current: str | None = checkpoint_id
        while current is not None and current in checkpoints:
            path.append(current)
            if current == start:
                return path[::-1]
            parent = _parent(checkpoints[current])
            if parent is not None and (checkpoints[current].metadata or {}).get(REPLAY_MARK):
                break  # an earlier replay's branch (a fork's first checkpoint has no parent)
            current = parent
        else:
            if start is None:
                return path[::-1]
    return []


def _turn_start(checkpoints: Mapping[str, CheckpointTuple], lineage: list[str]) -> str:
    """The checkpoint where the lineage's last turn begins (its input already applied)."""
    for i in range(len(lineage) - 1, -1, -1):
        if (checkpoints[lineage[i]].metadata or {}).get("source") == "input":
            return lineage[min(i + 1, len(lineage) - 1)]
    return lineage[0]


async def _copy(
    saver: BaseCheckpointSaver[str],
    graph: Pregel,
    tup: CheckpointTuple,
    *,
    thread_id: str,
    parent_id: str | None,
    source_thread: str,
) -> RunnableConfig:
    """Write a self-standing copy of ``tup``: delta channels hold their full value."""
    checkpoint = copy_checkpoint(tup.checkpoint)
    checkpoint["id"] = str(uuid6())
    checkpoint["ts"] = datetime.datetime.now(datetime.UTC).isoformat()
    values, versions = checkpoint["channel_values"], checkpoint["channel_versions"]
    todo = [
        name
        for name, channel in graph.channels.items()
        if isinstance(channel, DeltaChannel) and name in versions and name not in values
    ]
    if todo:
        history = await saver.aget_delta_channel_history(config=tup.config, channels=todo)
        for name in todo:
            channel = graph.channels[name].from_checkpoint(history[name].get("seed"))
            channel.replay_writes(history[name]["writes"])  # type: ignore[attr-defined]
            values[name] = _DeltaSnapshot(channel.get())
    metadata: dict[str, Any] = dict(tup.metadata or {})
    metadata.pop("counters_since_delta_snapshot", None)
    metadata.update(
        {
            "source": "fork",
            REPLAY_MARK: tup.config["configurable"]["checkpoint_id"],
            "graphyard_replay_thread": source_thread,
        }
    )
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if parent_id is not None:
        configurable["checkpoint_id"] = parent_id
    return await saver.aput(
        {"configurable": configurable},
        checkpoint,
        metadata,
        dict(versions),  # type: ignore[arg-type]
    )
