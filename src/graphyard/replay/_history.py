"""A thread's checkpoints as a table: step, the node(s) that ran from each, tier, cost, time.

Each row is one checkpoint of the root graph, oldest first, every branch included (a replay
branch is marked with the checkpoint it copies). The node(s) are the tasks that ran (or
will run) from that checkpoint, so ``graphyard threads replay --checkpoint ID`` re-runs
exactly them; tier, model calls and cost come from the recordings of those tasks. Read-only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from langgraph.pregel import Pregel

from graphyard.replay._branches import REPLAY_MARK
from graphyard.replay._replay import _error_text
from graphyard.replay._store import recording_store

__all__ = ["HistoryRow", "thread_history"]


@dataclass(slots=True)
class HistoryRow:
    """One checkpoint of a thread."""

    checkpoint_id: str
    parent_checkpoint_id: str | None
    step: int
    source: str
    nodes: list[str]
    """The tasks that ran from this checkpoint (or will: ``next`` of the newest)."""
    created_at: str | None
    tiers: list[str] = field(default_factory=list)
    model_calls: int = 0
    tool_calls: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    interrupted: bool = False
    replay_of: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def thread_history(graph: Pregel, thread_id: str) -> list[HistoryRow]:
    """The thread's checkpoints, oldest first.

    >>> import asyncio
    >>> async def main(graph) -> None:  # doctest: +SKIP
    ...     for row in await thread_history(graph, "t1"):
    ...         print(row.step, row.nodes, row.cost_usd)
    """
    store = recording_store(graph.checkpointer) if graph.checkpointer else None  # type: ignore[arg-type]
    recordings = await store.for_thread(thread_id) if store is not None else []
    by_checkpoint: dict[str, list[Any]] = {}
    for r in recordings:
        if not r.checkpoint_ns and r.checkpoint_id:
            by_checkpoint.setdefault(r.checkpoint_id, []).append(r)
    rows: list[HistoryRow] = []
    async for snap in graph.aget_state_history({"configurable": {"thread_id": thread_id}}):
        meta = snap.metadata or {}
        checkpoint_id = snap.config["configurable"]["checkpoint_id"]
        parent = (snap.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        calls = by_checkpoint.get(checkpoint_id, [])
        models = [c for c in calls if c.kind == "model"]
        errors = [t.error for t in snap.tasks if t.error is not None]
        rows.append(
            HistoryRow(
                checkpoint_id=checkpoint_id,
                parent_checkpoint_id=parent,
                step=int(meta.get("step", -1)),
                source=str(meta.get("source", "")),
                nodes=[t.name for t in snap.tasks] or list(snap.next),
                created_at=snap.created_at,
                tiers=sorted({str(c.tier) for c in models if c.tier}),
                model_calls=len(models),
                tool_calls=len(calls) - len(models),
                cost_usd=round(sum(c.cost_usd for c in models), 10),
                error=_error_text(errors[0]) if errors else None,
                interrupted=any(t.interrupts for t in snap.tasks),
                replay_of=meta.get(REPLAY_MARK),
            )
        )
    return rows[::-1]
