"""How checkpoint storage grows with a conversation: graphyard vs the official savers.

A 1-node chat graph (one scripted model call per turn) runs 10, 50 and 200 turns of ~200-token
messages (a human message and an answer per turn) on one thread, durability ``sync``, once
per setup, each run on a fresh, empty store:

- ``graphyard``: graphyard's state (``messages`` on a ``DeltaChannel``, each checkpoint
  stores only the step's new messages) on the saver ``graphyard.persistence.open_saver``
  opens for the backend (SQLite: WAL, ``synchronous=FULL``; Postgres: pooled);
- ``official``: the same graph on a plain ``add_messages`` list with the official saver
  opened the documented way (``AsyncSqliteSaver.from_conn_string`` /
  ``AsyncPostgresSaver.from_conn_string``, then ``setup()``), which re-stores the whole list
  in every checkpoint.

Reported per run: raw text (UTF-8 bytes of every message's content), bytes stored for the
thread (SQLite: the database file after a WAL checkpoint; Postgres: ``pg_total_relation_size``
of the saver's tables, indexes and TOAST included; both minus the same store empty, i.e. the
schema alone), their ratio, and the latency of each checkpoint write (``aput``, mean and
p95). Goal: at most 8x the raw text at 200 turns.

Backends are entries of ``BACKENDS``: a function that returns a :class:`Backend` (or None
with a reason when the backend is unavailable); add one there to get its columns.

Run::

    .venv/bin/python benchmarks/storage_growth.py                   # SQLite and Postgres
    .venv/bin/python benchmarks/storage_growth.py --backends sqlite --turns 10,50
    .venv/bin/python benchmarks/storage_growth.py --postgres-url postgresql://...

Postgres: ``--postgres-url`` (a database it may create databases in), else a throwaway
cluster started with ``scripts/postgres`` when the server binaries are installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict
from urllib.parse import urlsplit, urlunsplit

from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage
from langchain_core.messages.utils import count_tokens_approximately
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.pregel import Pregel

from graphyard.config import Settings
from graphyard.persistence import open_saver
from graphyard.state import AgentState
from graphyard.testing import ScriptedChatModel

ROOT = Path(__file__).resolve().parents[1]
Setup = Literal["graphyard", "official"]
SETUPS: tuple[Setup, ...] = ("graphyard", "official")
GOAL_RATIO = 8.0


@dataclass
class Backend:
    """One storage backend: how to open a fresh store per run and measure it."""

    name: str
    open: Callable[[Setup, str], AbstractAsyncContextManager[BaseCheckpointSaver[Any]]]
    """A fresh, empty store for run ``run_id`` (a new file, database or table)."""
    stored_bytes: Callable[[BaseCheckpointSaver[Any]], Awaitable[int]]
    """Bytes the store holds at the end of the run (it holds one thread)."""
    counters: Callable[[BaseCheckpointSaver[Any]], dict[str, float]] | None = None
    """Cumulative counters sampled after every turn, reported per turn at the first and
    the last turn (e.g. requests to a remote store)."""


# --- the graphs ----------------------------------------------------------------------------


class PlainState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


_WORDS = [
    "order",
    "shipping",
    "refund",
    "parcel",
    "address",
    "warehouse",
    "courier",
    "tracking",
    "invoice",
    "payment",
    "delivery",
    "customer",
    "account",
    "support",
    "return",
    "exchange",
    "package",
    "label",
    "status",
    "delay",
    "weather",
    "window",
    "kitchen",
    "garden",
    "table",
    "window",
    "planet",
    "river",
    "mountain",
    "yellow",
    "quickly",
]


def text_of_tokens(rng: random.Random, tokens: int) -> str:
    """Plain English-like text of about ``tokens`` tokens (langchain's approximate count)."""
    words: list[str] = []
    while count_tokens_approximately([HumanMessage(" ".join(words))]) < tokens:
        words.extend(rng.choices(_WORDS, k=10))
    return " ".join(words)


def delta_state(snapshot_frequency: int) -> type:
    """A state like ``AgentState``'s ``messages`` with another snapshot frequency (what-if)."""
    from langgraph.channels.delta import DeltaChannel
    from langgraph.graph.message import _messages_delta_reducer

    channel = DeltaChannel(_messages_delta_reducer, snapshot_frequency=snapshot_frequency)
    return TypedDict("DeltaState", {"messages": Annotated[list[AnyMessage], channel]})  # type: ignore[operator]


GRAPHYARD_STATE: type = AgentState
"""The state of the ``graphyard`` side; ``--snapshot-frequency`` swaps it for a what-if."""


def chat_graph(setup: Setup, model: ScriptedChatModel, saver: BaseCheckpointSaver[Any]) -> Pregel:
    state = GRAPHYARD_STATE if setup == "graphyard" else PlainState

    async def chat(values: dict[str, Any]) -> dict[str, Any]:
        reply = await model.ainvoke(values["messages"])
        return {"messages": [reply]}

    builder: StateGraph[Any] = StateGraph(state)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=saver)


@dataclass
class RunResult:
    raw_bytes: int
    stored_bytes: int
    aput_ms: list[float]
    turn_ms: list[float]
    per_turn: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.stored_bytes / self.raw_bytes


async def run_once(backend: Backend, setup: Setup, turns: int, tokens: int) -> RunResult:
    rng = random.Random(turns)  # both setups see the same conversation
    replies = [text_of_tokens(rng, tokens) for _ in range(turns)]
    questions = [text_of_tokens(rng, tokens) for _ in range(turns)]
    model = ScriptedChatModel(responses=replies)
    run_id = f"{setup}-{turns}-{uuid.uuid4().hex[:6]}"
    aput_ms: list[float] = []
    turn_ms: list[float] = []
    samples: list[dict[str, float]] = []
    async with backend.open(setup, run_id) as saver:
        original = saver.aput

        async def timed_aput(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                aput_ms.append((time.perf_counter() - start) * 1000)

        empty = await backend.stored_bytes(saver)  # the schema alone, before any thread
        saver.aput = timed_aput  # type: ignore[method-assign]
        graph = chat_graph(setup, model, saver)
        config = {"configurable": {"thread_id": "bench"}}
        if backend.counters:
            samples.append(backend.counters(saver))
        for n in range(turns):
            human = HumanMessage(questions[n], id=f"h{n}")
            start = time.perf_counter()
            await graph.ainvoke({"messages": [human]}, config, durability="sync")
            turn_ms.append((time.perf_counter() - start) * 1000)
            if backend.counters:
                samples.append(backend.counters(saver))
        messages: list[BaseMessage] = (await graph.aget_state(config)).values["messages"]
        assert len(messages) == 2 * turns, (setup, len(messages))
        raw = sum(len(str(m.content).encode()) for m in messages)
        stored = await backend.stored_bytes(saver) - empty
    per_turn = {
        name: (samples[1][name] - samples[0][name], samples[-1][name] - samples[-2][name])
        for name in (samples[0] if samples else {})
    }
    return RunResult(raw, stored, aput_ms, turn_ms, per_turn)


# --- backends ------------------------------------------------------------------------------


def sqlite_backend(args: argparse.Namespace, stack: ExitStack) -> Backend | str:
    work = Path(tempfile.mkdtemp(prefix="graphyard-bench-sqlite-"))
    stack.callback(shutil.rmtree, work, True)

    @asynccontextmanager
    async def open_store(setup: Setup, run_id: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
        path = work / f"{run_id}.db"
        if setup == "graphyard":
            async with open_saver(f"sqlite:///{path}", settings=Settings.model_construct()) as s:
                yield s
        else:
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            async with AsyncSqliteSaver.from_conn_string(str(path)) as s:
                await s.setup()
                yield s

    async def stored_bytes(saver: BaseCheckpointSaver[Any]) -> int:
        conn = saver.conn  # type: ignore[attr-defined]
        await conn.commit()
        await conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor = await conn.execute(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        )
        return int((await cursor.fetchone())[0])

    return Backend("sqlite", open_store, stored_bytes)


def start_postgres(args: argparse.Namespace, stack: ExitStack) -> tuple[str | None, str]:
    """(admin URL, "") of ``--postgres-url`` or a throwaway cluster; (None, why) if neither."""
    if args.postgres_url:
        return args.postgres_url, ""
    if not any(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return (
            None,
            "no --postgres-url and no PostgreSQL server binaries (apt-get install postgresql)",
        )
    data = tempfile.mkdtemp(prefix="graphyard-bench-pg-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = str(ROOT / "scripts" / "postgres")
    started = subprocess.run(
        [script, "start", data, str(port)], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        return None, f"scripts/postgres failed: {started.stderr.strip()}"
    stack.callback(shutil.rmtree, data, True)
    stack.callback(subprocess.run, [script, "stop", data], check=False)
    return started.stdout.strip(), ""


@asynccontextmanager
async def fresh_database(admin: str, name: str) -> AsyncIterator[str]:
    """The URL of a new, empty database ``name``; dropped on exit."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))
    finally:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_backend(args: argparse.Namespace, stack: ExitStack) -> Backend | str:
    admin, why = start_postgres(args, stack)
    if admin is None:
        return why

    @asynccontextmanager
    async def open_store(setup: Setup, run_id: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
        async with fresh_database(admin, "bench_" + run_id.replace("-", "_")) as url:
            if setup == "graphyard":
                async with open_saver(url, settings=Settings.model_construct()) as s:
                    yield s
            else:
                from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

                async with AsyncPostgresSaver.from_conn_string(url) as s:
                    await s.setup()
                    yield s

    async def stored_bytes(saver: BaseCheckpointSaver[Any]) -> int:
        async with saver._cursor() as cur:  # type: ignore[attr-defined]
            await cur.execute(
                "SELECT pg_total_relation_size('checkpoints') + pg_total_relation_size("
                "'checkpoint_blobs') + pg_total_relation_size('checkpoint_writes') AS n"
            )
            return int((await cur.fetchone())["n"])

    return Backend("postgres", open_store, stored_bytes)


BACKENDS: dict[str, Callable[[argparse.Namespace, ExitStack], Backend | str]] = {
    "sqlite": sqlite_backend,
    "postgres": postgres_backend,
    # --- DynamoDB: register "dynamodb": dynamodb_backend here ---
}


# --- report --------------------------------------------------------------------------------


def _size(n: float) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def _latency(ms: list[float]) -> str:
    p95 = statistics.quantiles(ms, n=20)[-1] if len(ms) >= 2 else ms[0]
    return f"{statistics.fmean(ms):.2f}/{p95:.2f}"


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--turns", default="10,50,200")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per message")
    parser.add_argument("--postgres-url", default=os.environ.get("GRAPHYARD_BENCH_POSTGRES_URL"))
    parser.add_argument(
        "--snapshot-frequency",
        type=int,
        help="what-if: graphyard's DeltaChannel snapshot frequency (default: AgentState's)",
    )
    args = parser.parse_args()
    turn_counts = [int(t) for t in args.turns.split(",")]
    global GRAPHYARD_STATE
    state_note = "graphyard state: AgentState"
    if args.snapshot_frequency:
        GRAPHYARD_STATE = delta_state(args.snapshot_frequency)
        state_note = f"graphyard state: DeltaChannel snapshot_frequency={args.snapshot_frequency}"
    print(
        f"storage_growth: {args.tokens}-token messages, 1-node chat graph, durability=sync; "
        f"{state_note}; python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    header = [
        "backend",
        "turns",
        "raw text",
        "graphyard stored",
        "x raw",
        "aput ms mean/p95",
        "official stored",
        "x raw",
        "aput ms mean/p95",
        "official/graphyard",
    ]
    widths = [8, 5, 9, 16, 6, 16, 15, 6, 16, 18]
    goals: list[str] = []
    with ExitStack() as stack:
        for name in args.backends.split(","):
            backend = BACKENDS[name](args, stack)
            if isinstance(backend, str):
                print(f"\n{name}: skipped ({backend})")
                continue
            print()
            print(_row(header, widths))
            for turns in turn_counts:
                results = {s: asyncio.run(run_once(backend, s, turns, args.tokens)) for s in SETUPS}
                ours, theirs = results["graphyard"], results["official"]
                assert ours.raw_bytes == theirs.raw_bytes
                print(
                    _row(
                        [
                            name,
                            str(turns),
                            _size(ours.raw_bytes),
                            _size(ours.stored_bytes),
                            f"{ours.ratio:.1f}x",
                            _latency(ours.aput_ms),
                            _size(theirs.stored_bytes),
                            f"{theirs.ratio:.1f}x",
                            _latency(theirs.aput_ms),
                            f"{theirs.stored_bytes / ours.stored_bytes:.1f}x",
                        ],
                        widths,
                    ),
                    flush=True,
                )
                for setup, result in results.items():
                    for counter, (first, last) in result.per_turn.items():
                        print(
                            f"    {setup} {counter} per turn: turn 1 {first:g}, turn {turns} {last:g}"
                        )
                if turns == max(turn_counts):
                    verdict = "met" if ours.ratio <= GOAL_RATIO else "MISSED"
                    goals.append(
                        f"{name}: graphyard {ours.ratio:.1f}x raw at {turns} turns "
                        f"(goal <= {GOAL_RATIO:g}x: {verdict}); official {theirs.ratio:.1f}x"
                    )
    print("\naput ms: latency of each checkpoint write (saver.aput), mean/p95 over the run")
    for line in goals:
        print(line)


if __name__ == "__main__":
    main()
