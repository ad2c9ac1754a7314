"""Crash safety: a writer process running the reference agent is killed with SIGKILL at
random points, 30 times, on SQLite and on Postgres. After every kill the database is intact
and every checkpoint the writer acknowledged is still there with its messages; at the end
the thread resumes and completes.
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from checkpointer_support import config, scripted_models, settings_for, transcript

from graphyard import open_runtime

HERE = Path(__file__).resolve().parent
KILLS = 30
TARGET = 80
"""Human turns the thread must reach; more than the kill loop gets through."""


class Writers:
    """``crash_writer.py`` as a fork server in a subprocess; its stdout read by a thread, so
    every wait has a timeout. Each writer it forks is a process of its own, killed for real."""

    def __init__(self, work: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(HERE), "PYTHONUNBUFFERED": "1"}
        self.errors = work / "writers.stderr"
        with self.errors.open("w") as errors:  # a file, so a chatty writer never blocks
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "crash_writer.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                env=env,
                cwd=work,
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next_line() == "zygote", self.stderr()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self, timeout: float = 120.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output from the writer for {timeout}s: {self.stderr()}")
        if line is None:
            pytest.fail(f"the fork server died: {self.stderr()}")
        return line

    def stderr(self) -> str:
        return self.errors.read_text()[-3000:]

    def start(self, url: str, work: Path) -> int:
        """Fork a writer; return its pid once it has opened the checkpointer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"run {url} crash {TARGET} {work}\n")
        self.proc.stdin.flush()
        pid, ready = 0, False
        while not (pid and ready):
            line = self.next_line()
            if line.startswith("pid "):
                pid = int(line.split()[1])
            elif line == "ready":
                ready = True
            else:
                pytest.fail(f"unexpected {line!r} from a starting writer: {self.stderr()}")
        return pid

    def until_exit(self, pid: int) -> tuple[list[str], int]:
        """The writer's remaining lines, up to its exit, and its wait status."""
        lines = []
        while not (line := self.next_line()).startswith(f"exit {pid} "):
            lines.append(line)
        return lines, int(line.split()[2])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _acks(lines: list[str]) -> list[tuple[str, int]]:
    return [(p[1], int(p[2])) for p in (line.split() for line in lines) if p[0] == "ack"]


async def _check_acknowledged(runtime: Any, acked: list[tuple[str, int]]) -> None:
    for checkpoint_id, count in acked:
        state = await runtime.graph.aget_state(config("crash", checkpoint_id))
        assert state.config["configurable"]["checkpoint_id"] == checkpoint_id, "lost"
        assert len(state.values["messages"]) == count


async def _check_every_checkpoint_loads(runtime: Any) -> None:
    """The whole history reads back, and never loses a message from one step to the next."""
    counts = [
        len(s.values.get("messages", []))
        async for s in runtime.graph.aget_state_history(config("crash"))
    ]
    assert counts, "the thread has no checkpoints"
    assert counts == sorted(counts, reverse=True), counts


def _postgres_intact(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        indexes = conn.execute(
            "SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid IN"
            " ('checkpoints'::regclass, 'checkpoint_blobs'::regclass,"
            " 'checkpoint_writes'::regclass)"
        ).fetchall()
        for (index,) in indexes:
            conn.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
        orphans = conn.execute(
            "SELECT COUNT(*) FROM checkpoints c WHERE c.parent_checkpoint_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM checkpoints p WHERE p.thread_id = c.thread_id"
            " AND p.checkpoint_ns = c.checkpoint_ns AND p.checkpoint_id = c.parent_checkpoint_id)"
        ).fetchone()
    assert len(indexes) >= 3
    assert orphans == (0,)


@pytest.mark.timeout(900)
async def test_kill_9_at_random_points_loses_no_acknowledged_checkpoint(
    checkpointer_url: str, tmp_path: Path
) -> None:
    rng = random.Random(20261125)
    settings = settings_for(checkpointer_url, tmp_path)
    acked: list[tuple[str, int]] = []
    writers = Writers(tmp_path)
    try:
        final = await _crash_loop(writers, checkpointer_url, settings, rng, acked)
    finally:
        if writers.proc.poll() is None:
            writers.proc.kill()
            writers.proc.wait(timeout=30)
    kills_mid_write = final.pop()
    print(
        f"{KILLS} kills, {len(acked)} acknowledged checkpoints, {kills_mid_write} kills inside a run"
    )

    expected = []
    for n in range(1, TARGET + 1):
        expected += [("human", f"turn {n}"), ("ai", f"Answer {n}.")]
    state = final[0]
    assert transcript(state.values["messages"]) == expected  # every turn once, answered once
    assert state.next == () and state.tasks == ()
    assert len(acked) >= KILLS // 2, "the writer rarely got to acknowledge anything"
    assert kills_mid_write > 0, "no kill landed inside a run; the loop tested nothing"


async def _crash_loop(
    writers: Writers,
    checkpointer_url: str,
    settings: Any,
    rng: random.Random,
    acked: list[tuple[str, int]],
) -> list[Any]:
    """Kill a writer ``KILLS`` times, checking after each; then let one finish. Returns the
    final state and how many kills cut a run short."""
    kills_mid_write = 0
    async with open_runtime(settings, models=scripted_models()) as runtime:
        for _ in range(KILLS):
            pid = writers.start(checkpointer_url, settings.shop_db.parent)
            lines: list[str] = []
            for _ in range(rng.randint(0, 2)):  # let it finish a few turns, then strike
                line = writers.next_line()
                assert line.startswith("ack"), (line, writers.stderr())
                lines.append(line)
            await asyncio.sleep(rng.uniform(0.0, 0.08))
            os.kill(pid, signal.SIGKILL)
            rest, status = writers.until_exit(pid)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                status,
                writers.stderr(),
            )
            new = _acks(lines + rest)
            acked += new

            if checkpointer_url.startswith("sqlite:"):
                db = sqlite3.connect(checkpointer_url.removeprefix("sqlite:///"))
                try:
                    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                finally:
                    db.close()
            await _check_acknowledged(runtime, new or acked[-1:])
            latest = await runtime.graph.aget_state(config("crash"))
            kills_mid_write += bool(latest.tasks)  # the kill cut a run short

        await _check_acknowledged(runtime, acked)
        await _check_every_checkpoint_loads(runtime)
        if checkpointer_url.startswith("postgres"):
            _postgres_intact(checkpointer_url)

        pid = writers.start(checkpointer_url, settings.shop_db.parent)  # now let one finish
        tail, status = writers.until_exit(pid)
        writers.close()
        assert status == 0 and tail[-1:] == ["done"], (tail[-3:], writers.stderr())
        return [await runtime.graph.aget_state(config("crash")), kills_mid_write]
