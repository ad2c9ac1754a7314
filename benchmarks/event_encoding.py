"""What the server spends turning one streamed token into the bytes a client receives.

Every ``messages-tuple`` token a served run streams becomes an event (JSON of the message
chunk and its LangGraph metadata), stored and sent as one SSE frame. This times, per
event, graphyard's path (``graphyard.server._serialize.dumps``: orjson once, with a
``default`` for messages; the frame written directly) against the plain one it replaced
(``jsonable`` to plain data, then ``json.dumps``, then sse-starlette's
``ServerSentEvent.encode``), checks both give the same bytes, and prints the ratio.

Run::

    .venv/bin/python benchmarks/event_encoding.py
    .venv/bin/python benchmarks/event_encoding.py --events 50000 --repeat 9
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessageChunk
from rich.console import Console
from rich.table import Table
from sse_starlette import ServerSentEvent

from graphyard.server._api_runs import _frame
from graphyard.server._serialize import dumps, jsonable

console = Console()

# what LangGraph attaches to a token of the reference agent's planner (ids are made up)
METADATA = {
    "thread_id": "7d6c3a1e-1111-2222-3333-444455556666",
    "graphyard_tier": "cheap",
    "graphyard_model": "anthropic:claude-haiku-4-5",
    "langgraph_step": 3,
    "langgraph_node": "planner",
    "langgraph_triggers": ("branch:to:planner",),
    "langgraph_path": ("__pregel_pull", "planner"),
    "langgraph_checkpoint_ns": "planner:0e3f0c39-4a1b-8a4b-0c0d-1e2f3a4b5c6d",
    "checkpoint_ns": "planner:0e3f0c39-4a1b-8a4b-0c0d-1e2f3a4b5c6d",
    "ls_provider": "anthropic",
    "ls_model_name": "claude-haiku-4-5",
    "ls_model_type": "chat",
    "ls_temperature": 0.0,
    "assistant_id": "fe096781-5601-53d2-b2f6-0d3403f7e9ca",
    "graph_id": "support",
    "run_id": "1f0c1d7e-5b7e-6c2a-bf7e-0000000000aa",
    "user_id": "alice",
}


def token(i: int) -> tuple[AIMessageChunk, dict[str, Any]]:
    chunk = AIMessageChunk(content=f"tok{i} ", id="lc_run--1f0c1d7e-5b7e-6c2a-bf7e-000000000001")
    return chunk, METADATA


def plain(seq: int, item: tuple[AIMessageChunk, dict[str, Any]]) -> bytes:
    """The path before: to plain data (in translate), dumped (in publish), then encoded."""
    data = json.dumps(jsonable(jsonable(list(item))), separators=(",", ":"), ensure_ascii=False)
    return ServerSentEvent(data=data, event="messages", id=str(seq)).encode()


def graphyard(seq: int, item: tuple[AIMessageChunk, dict[str, Any]]) -> bytes:
    return _frame(seq, "messages", dumps(item))


def us_per_event(encode: Callable[[int, Any], bytes], items: list[Any]) -> float:
    started = time.perf_counter()
    for seq, item in enumerate(items, 1):
        encode(seq, item)
    return (time.perf_counter() - started) / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per measurement")
    parser.add_argument("--repeat", type=int, default=7, help="measurements per path")
    args = parser.parse_args()

    items = [token(i) for i in range(args.events)]
    for seq, item in enumerate(items[:200], 1):
        ours, theirs = graphyard(seq, item), plain(seq, item)
        assert ours == theirs, (ours, theirs)
    times: dict[str, list[float]] = {"plain": [], "graphyard": []}
    for _ in range(args.repeat):  # interleaved, so drift hits both alike
        times["plain"].append(us_per_event(plain, items))
        times["graphyard"].append(us_per_event(graphyard, items))

    table = Table(title=f"one messages-tuple token event: JSON + SSE frame ({args.events} events)")
    for col in ("path", "us/event (median)", "min", "max", "vs plain"):
        table.add_column(col, justify="left" if col == "path" else "right")
    base = statistics.median(times["plain"])
    for name, label in (
        ("plain", "jsonable + json.dumps + ServerSentEvent.encode"),
        ("graphyard", "graphyard: orjson dumps + direct frame"),
    ):
        median = statistics.median(times[name])
        table.add_row(
            label,
            f"{median:.2f}",
            f"{min(times[name]):.2f}",
            f"{max(times[name]):.2f}",
            f"{median / base:.2f}x",
        )
    console.print(table)
    console.print(f"frame size: {len(graphyard(1, items[0]))} bytes; identical bytes: yes")


if __name__ == "__main__":
    main()
