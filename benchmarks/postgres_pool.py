"""Concurrent runs on one Postgres checkpointer: graphyard's pooled saver vs the official
saver on the same pool.

The official ``AsyncPostgresSaver`` takes an instance-wide ``asyncio.Lock`` around every
statement even when it is given a connection pool (langgraph issue #7259), so concurrent runs
queue for one connection at a time. graphyard's ``open_saver`` gives it the pool with that
lock replaced by a semaphore of the pool's size. Both sides here use the same pool settings
(graphyard's defaults: 1..10 connections, autocommit, ``prepare_threshold=0``, ``dict_row``),
the same 1-node chat graph (``messages`` on a ``DeltaChannel``), ``--threads`` conversations
of ``--turns`` turns running at once, durability ``sync``. Reported: wall time, turns per
second, and per-turn latency p50/p95, side by side with the ratio; the sides alternate
``--rounds`` times so background load hits both.

Run::

    .venv/bin/python benchmarks/postgres_pool.py
    .venv/bin/python benchmarks/postgres_pool.py --threads 50 --turns 4 --postgres-url postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

sys.path.insert(0, str(Path(__file__).resolve().parent))
import storage_growth

from graphyard.config import PostgresConfig, Settings
from graphyard.persistence import open_saver
from graphyard.testing import ScriptedChatModel


@asynccontextmanager
async def official_on_pool(url: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The official saver given a pool like graphyard's, lock and all."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    config = PostgresConfig()
    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    async with AsyncConnectionPool(
        url,
        kwargs=kwargs,
        min_size=config.min_size,
        max_size=config.max_size,
        timeout=config.timeout,
        check=AsyncConnectionPool.check_connection,
        open=False,
    ) as pool:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        yield saver


async def one_side(side: str, url: str, threads: int, turns: int) -> tuple[float, list[float]]:
    rng = random.Random(1)
    model = ScriptedChatModel(responses=[storage_growth.text_of_tokens(rng, 200)])
    opened = (
        open_saver(url, settings=Settings.model_construct())
        if side == "graphyard"
        else official_on_pool(url)
    )
    latencies: list[float] = []
    async with opened as saver:
        graph = storage_growth.chat_graph("graphyard", model, saver)
        text = storage_growth.text_of_tokens(rng, 200)

        async def conversation(thread_id: str) -> None:
            for n in range(turns):
                start = time.perf_counter()
                await graph.ainvoke(
                    {"messages": [HumanMessage(text, id=f"h{n}")]},
                    {"configurable": {"thread_id": thread_id}},
                    durability="sync",
                )
                latencies.append((time.perf_counter() - start) * 1000)

        start = time.perf_counter()
        await asyncio.gather(
            *(conversation(f"{side}-{uuid.uuid4().hex[:8]}") for _ in range(threads))
        )
        wall = time.perf_counter() - start
    return wall, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=20, help="conversations at once")
    parser.add_argument("--turns", type=int, default=5, help="turns per conversation")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url", default=os.environ.get("GRAPHYARD_BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    with ExitStack() as stack:
        admin, why = storage_growth.start_postgres(args, stack)
        if admin is None:
            raise SystemExit(f"postgres unavailable: {why}")
        walls: dict[str, list[float]] = {"graphyard": [], "official": []}
        lat: dict[str, list[float]] = {"graphyard": [], "official": []}

        async def run_all() -> None:
            for r in range(args.rounds):
                order = ["graphyard", "official"] if r % 2 == 0 else ["official", "graphyard"]
                for side in order:
                    async with storage_growth.fresh_database(admin, f"pool_{side}_{r}") as url:
                        wall, latencies = await one_side(side, url, args.threads, args.turns)
                    walls[side].append(wall)
                    lat[side] += latencies

        asyncio.run(run_all())
    total = args.threads * args.turns
    print(
        f"postgres_pool: {args.threads} conversations x {args.turns} turns at once, "
        f"{args.rounds} rounds; python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print(f"{'':28}{'graphyard':>12}{'official':>12}{'official/graphyard':>20}")
    g_wall, o_wall = statistics.median(walls["graphyard"]), statistics.median(walls["official"])
    rows = [
        ("wall s (median of rounds)", g_wall, o_wall),
        ("turns per second", total / g_wall, total / o_wall),
        (
            "turn latency p50 ms",
            statistics.median(lat["graphyard"]),
            statistics.median(lat["official"]),
        ),
        (
            "turn latency p95 ms",
            statistics.quantiles(lat["graphyard"], n=20)[-1],
            statistics.quantiles(lat["official"], n=20)[-1],
        ),
    ]
    for name, ours, theirs in rows:
        print(f"{name:28}{ours:12.2f}{theirs:12.2f}{theirs / ours:19.2f}x")


if __name__ == "__main__":
    main()
