"""Erase what one run wrote to a thread (``multitask_strategy="rollback"``).

The official savers can delete a whole thread but not "everything after checkpoint X";
rollback needs exactly that. A :class:`RunMark` taken before the run starts records the
thread's latest checkpoint and the pending writes already stored against it; rolling back
deletes newer checkpoints and any write the run added to the marked checkpoint (a resumed
``interrupt()`` writes there), leaving the thread exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunMark", "mark_thread", "rollback_to"]


@dataclass(frozen=True, slots=True)
class RunMark:
    thread_id: str
    checkpoint_id: str | None
    writes: frozenset[tuple[str, int]] = field(default_factory=frozenset)


def _kind(saver: Any) -> str:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    name = type(saver).__name__
    if isinstance(saver, AsyncSqliteSaver):  # subclasses too, as the other stores do
        return "sqlite"
    if name in ("AsyncPostgresSaver", "PostgresSaver"):
        return "postgres"
    raise NotImplementedError(f"rollback is not supported for {name}")


async def mark_thread(saver: Any, thread_id: str) -> RunMark:
    """Remember where ``thread_id`` stands now."""
    kind = _kind(saver)
    if kind == "sqlite":
        # one statement, one trip to aiosqlite's thread (every run starts with this)
        async with saver.lock:
            rows = await saver.conn.execute_fetchall(
                "SELECT c.latest, w.task_id, w.idx FROM (SELECT MAX(checkpoint_id) AS latest"
                " FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '') AS c"
                " LEFT JOIN writes AS w ON w.thread_id = ? AND w.checkpoint_id = c.latest",
                (thread_id, thread_id),
            )
        rows = list(rows)
        latest = rows[0][0] if rows else None
        writes = frozenset((str(t), int(i)) for _, t, i in rows if t is not None)
        return RunMark(thread_id, latest, writes)
    async with saver._cursor() as cur:
        await cur.execute(
            "SELECT MAX(checkpoint_id) AS c FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''",
            (thread_id,),
        )
        latest = (await cur.fetchone())["c"]
        await cur.execute(
            "SELECT task_id, idx FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id = %s",
            (thread_id, latest),
        )
        writes = frozenset((str(r["task_id"]), int(r["idx"])) for r in await cur.fetchall())
    return RunMark(thread_id, latest, writes)


async def rollback_to(saver: Any, mark: RunMark) -> None:
    """Delete every checkpoint and write of ``mark.thread_id`` made after ``mark``."""
    kind = _kind(saver)
    after = mark.checkpoint_id or ""
    if kind == "sqlite":
        async with saver.lock:
            conn = saver.conn
            await conn.execute(
                "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id > ?",
                (mark.thread_id, after),
            )
            await conn.execute(
                "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id > ?",
                (mark.thread_id, after),
            )
            if mark.checkpoint_id is not None:
                cursor = await conn.execute(
                    "SELECT task_id, idx FROM writes WHERE thread_id = ? AND checkpoint_id = ?",
                    (mark.thread_id, mark.checkpoint_id),
                )
                for task_id, idx in await cursor.fetchall():
                    if (str(task_id), int(idx)) not in mark.writes:
                        await conn.execute(
                            "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id = ?"
                            " AND task_id = ? AND idx = ?",
                            (mark.thread_id, mark.checkpoint_id, task_id, idx),
                        )
            await conn.commit()
        return
    async with saver._cursor() as cur:
        await cur.execute(
            "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_id > %s",
            (mark.thread_id, after),
        )
        await cur.execute(
            "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id > %s",
            (mark.thread_id, after),
        )
        if mark.checkpoint_id is not None:
            await cur.execute(
                "SELECT task_id, idx FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id = %s",
                (mark.thread_id, mark.checkpoint_id),
            )
            for row in await cur.fetchall():
                if (str(row["task_id"]), int(row["idx"])) not in mark.writes:
                    await cur.execute(
                        "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id = %s"
                        " AND task_id = %s AND idx = %s",
                        (mark.thread_id, mark.checkpoint_id, row["task_id"], row["idx"]),
                    )
