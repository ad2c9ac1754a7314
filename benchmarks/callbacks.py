"""What graphyard's per-run callback handlers cost per streamed token, side by side.

A served run carries three LangChain callback handlers: the cost ledger (budgets checked on
every token), the metrics/tracing instrument and the replay recorder. LangChain calls every
handler on every streamed token, so their cost multiplies with the tokens a server streams.
This streams ``--tokens`` tokens from a scripted model with no handlers, with each handler
alone, and with all three, and prints microseconds per token and the ratio to no handlers
(median of ``--repeat`` streams each, in one run, interleaved). Per token means the slope
between a stream of ``--tokens`` and one of three times as many, so a handler's fixed cost
per call (a ledger row, a recording written at the end) is not spread over the tokens.

Run::

    .venv/bin/python benchmarks/callbacks.py
    .venv/bin/python benchmarks/callbacks.py --tokens 5000 --repeat 9
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from graphyard.config import ModelPrice
from graphyard.ledger import Budgets, LedgerHandler, open_ledger
from graphyard.observability._instrument import RunInstrument
from graphyard.observability._metrics import Metrics
from graphyard.persistence import open_saver
from graphyard.replay import RecordingHandler, recording_store
from graphyard.testing import ScriptedChatModel

console = Console()
PRICES = {"scripted:bench": ModelPrice(input=3.0, output=15.0)}
META = {"graphyard_tier": "cheap", "graphyard_model": "scripted:bench"}


async def seconds(handlers: list[Any], tokens: int) -> float:
    model = ScriptedChatModel(responses=[" ".join(["tok"] * tokens)])
    started = time.perf_counter()
    async for _ in model.astream("hi", {"callbacks": handlers, "metadata": META}):
        pass
    return time.perf_counter() - started


async def per_token(make: Callable[[], list[Any]], tokens: int) -> float:
    """Microseconds per token: the slope between ``tokens`` and ``3 * tokens``."""
    short = await seconds(make(), tokens)
    long = await seconds(make(), 3 * tokens)
    return (long - short) / (2 * tokens) * 1e6


async def main(tokens: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="graphyard-cb-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        # synchronous=OFF: a recording's commit (one per call, at its end) would otherwise
        # add an fsync's jitter to the slope; this measures the handlers' CPU per token
        async with open_saver(url, synchronous="OFF") as saver, open_ledger(url) as ledger:
            store = recording_store(saver)
            assert store is not None
            metrics = Metrics()

            def ledger_handler() -> Any:
                budgets = Budgets(run_usd=1e6, thread_usd=1e6, user_day_usd=1e6)
                return LedgerHandler(
                    ledger, run_id="r", thread_id="t", user_id="u", budgets=budgets, prices=PRICES
                )

            def instrument() -> Any:
                return RunInstrument(
                    run_id="r", thread_id="t", user_id="u", agent="bench", metrics=metrics,
                    prices=PRICES,
                )  # fmt: skip

            def recorder() -> Any:
                return RecordingHandler(store, "t", run_id="r")

            stacks: dict[str, Callable[[], list[Any]]] = {
                "no handlers": list,
                "ledger (3 budgets)": lambda: [ledger_handler()],
                "metrics": lambda: [instrument()],
                "replay recorder": lambda: [recorder()],
                "all three (a served run)": lambda: [ledger_handler(), instrument(), recorder()],
            }
            times: dict[str, list[float]] = {name: [] for name in stacks}
            await seconds([], 200)  # warm-up
            for _ in range(repeat):
                for name, make in stacks.items():
                    times[name].append(await per_token(make, tokens))
    base = statistics.median(times["no handlers"])
    table = Table(
        title=f"per streamed token (slope {tokens} -> {3 * tokens} tokens), median of {repeat}"
    )
    for col in ("handlers", "us/token", "added us", "ratio"):
        table.add_column(col, justify="left" if col == "handlers" else "right")
    for name, values in times.items():
        median = statistics.median(values)
        table.add_row(name, f"{median:.1f}", f"{median - base:+.1f}", f"{median / base:.2f}x")
    console.print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.tokens < 1 or args.repeat < 1:
        parser.error("--tokens and --repeat must be at least 1")
    asyncio.run(main(args.tokens, args.repeat))
