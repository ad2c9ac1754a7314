"""What metrics and tracing add to a run, measured side by side in one process.

Three apps on the same scripted model and the same kind of SQLite file, all in this
process (requests through ``httpx.ASGITransport``, so HTTP parsing is not in the figures):

- ``off``: ``GRAPHYARD_METRICS=off`` and no tracing: the baseline;
- ``metrics``: the default (``/metrics`` on, tracing off);
- ``+tracing``: metrics plus a span tree per run, exported by an SDK
  ``BatchSpanProcessor`` to an exporter that drops the spans (the export thread's work
  counts, the network does not).

Each configuration is served by two apps, created in palindrome order (creation order
alone moved the figures by as much as the effect measured). Turns run in blocks
(``--block``, 10) on new threads, one block per app in an order that rotates every
round, so background load hits all configurations alike. The table gives the
per-turn wall time (request to the end of the stream) p50/p95, and the process CPU time
per turn (median over blocks), each with its ratio to ``off``. On a shared machine the
CPU figure is the one to read: other processes' load moves wall time a lot and CPU time
little.

A second table isolates the instrumentation itself: the callbacks of one run of the
reference agent's common path (router -> trim -> planner with one streamed model call ->
critic) fed straight to a run's ``RunInstrument`` and ``Observability`` hooks, in
microseconds per run (best of 5 repeats), next to the CPU time of a whole turn.

Run::

    .venv/bin/python benchmarks/observability.py            # 200 turns per app
    .venv/bin/python benchmarks/observability.py --n 500

Needs ``graphyard[otel]`` for the tracing column; no network.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from graphyard.config import TIERS, Settings, TierConfig
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

ANSWER = "Hello! How can I help you with your order today?"
WARMUPS = 5


class _DropSpans:
    """A span exporter that accepts and forgets: the SDK's export path without a network."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _app(workdir: Path, name: str, copy: int = 0) -> Any:
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    settings = Settings(
        checkpointer=f"sqlite:///{workdir / name}-{copy}.db",
        shop_db=workdir / f"{name}-{copy}-shop.db",
        router="rules",
        metrics="off" if name == "off" else "auth",
        **tiers,  # type: ignore[arg-type]
    )
    provider = None
    if name == "+tracing":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(_DropSpans()))  # type: ignore[arg-type]
    model = ScriptedChatModel(responses=[ANSWER])
    return create_app(settings, models=dict.fromkeys(TIERS, model), tracer_provider=provider)


async def _turn(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await client.post(f"/chat/{uuid.uuid4().hex}", json={"content": "hello there"})
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or '"error"' in response.text:
        raise RuntimeError(response.text[:500])
    return elapsed


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def main(n: int, block: int) -> None:
    logging.disable(logging.WARNING)  # the scripted model has no price: one warning per app
    names = ["off", "metrics", "+tracing"]
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    # Two apps per configuration, created in palindrome order (off, metrics, +tracing,
    # +tracing, metrics, off): the app created first runs measurably slower here (about
    # 1-2 ms of CPU per turn, whatever its configuration), so a single creation order
    # would bias the comparison by as much as the effect being measured.
    instances = [(name, k) for k, group in enumerate((names, names[::-1])) for name in group]
    with tempfile.TemporaryDirectory() as tmp:
        async with AsyncExitStack() as stack:
            clients: dict[tuple[str, int], httpx.AsyncClient] = {}
            for name, k in instances:
                app = _app(Path(tmp), name, k)
                await stack.enter_async_context(app.router.lifespan_context(app))
                clients[name, k] = await stack.enter_async_context(
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url="http://bench"
                    )
                )
            for _ in range(WARMUPS):
                for key in instances:
                    await _turn(clients[key])
            rounds = max(n // (2 * block), 1)
            for i in range(rounds):
                shift = i % len(instances)
                for name, k in instances[shift:] + instances[:shift]:
                    # CPU time of this process for a block of turns and their bookkeeping
                    # (the pause lets each run's final writes finish inside the block):
                    # other processes' load barely moves it, unlike wall-clock time.
                    started = time.process_time()
                    for _ in range(block):
                        times[name].append(await _turn(clients[name, k]))
                    await asyncio.sleep(0.05)
                    cpu[name].append((time.process_time() - started) / block)
    base, base_cpu = statistics.median(times["off"]), statistics.median(cpu["off"])
    turns = len(times["off"])
    table = Table(title=f"Per-turn cost, {turns} /chat turns per configuration (in-process)")
    columns = (
        "app",
        "wall p50 ms",
        "wall p95 ms",
        "wall ratio",
        "CPU ms/turn",
        "CPU added ms",
        "CPU ratio",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "app" else "right")
    for name in names:
        p50, c = statistics.median(times[name]), statistics.median(cpu[name])
        table.add_row(
            name,
            f"{p50 * 1000:.2f}",
            f"{_pct(times[name], 0.95) * 1000:.2f}",
            f"{p50 / base:.3f}x",
            f"{c * 1000:.2f}",
            f"{(c - base_cpu) * 1000:+.2f}",
            f"{c / base_cpu:.3f}x",
        )
    console = Console()
    console.print(table)
    print("CPU ms/turn: median over blocks of", block, "turns of process CPU time per turn")
    micro = Table(title="Instrumentation alone, per run (synthetic callbacks of one turn)")
    for column in ("instrument", "us/run", "share of a turn's CPU (off)"):
        micro.add_column(column, justify="left" if column == "instrument" else "right")
    for label, tracing in (("metrics", False), ("metrics+tracing", True)):
        us = _instrument_cost(tracing)
        micro.add_row(label, f"{us:.1f}", f"{us / (base_cpu * 1e6):.2%}")
    console.print(micro)


def _instrument_cost(tracing: bool, runs: int = 2000) -> float:
    """Microseconds per run spent in graphyard's observability callbacks (best of 5)."""
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    from graphyard.observability import Observability
    from graphyard.server._store import RunRecord

    provider = None
    if tracing:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(_DropSpans()))  # type: ignore[arg-type]
    obs = Observability(Settings(), tracer_provider=provider, agent="support")
    usage = {"input_tokens": 62, "output_tokens": 12, "total_tokens": 74}
    answer = LLMResult(
        generations=[[ChatGeneration(message=AIMessage(content=ANSWER, usage_metadata=usage))]]  # type: ignore[arg-type]
    )
    meta = {"graphyard_tier": "cheap", "graphyard_model": "scripted:cheap"}
    tokens = ANSWER.split()

    def one_run() -> None:
        now = time.time()
        run = RunRecord(str(uuid.uuid4()), "t", "a", "alice", "running", now, now, {}, {}, "reject")
        obs.run_started(run)
        handler = obs.handler(run)
        root = uuid.uuid4()
        handler.on_chain_start(None, {}, run_id=root, parent_run_id=None, name="LangGraph")
        for step, node in enumerate(("router", "trim", "planner", "critic"), start=1):
            node_id = uuid.uuid4()
            handler.on_chain_start(
                None,
                {},
                run_id=node_id,
                parent_run_id=root,
                tags=[f"graph:step:{step}"],
                metadata={"langgraph_node": node, "langgraph_step": step},
                name=node,
            )
            if node == "planner":
                call = uuid.uuid4()
                handler.on_chat_model_start(
                    None, [[]], run_id=call, parent_run_id=node_id, metadata=meta
                )
                for token in tokens:
                    handler.on_llm_new_token(token, run_id=call)
                handler.on_llm_end(answer, run_id=call)
            handler.on_chain_end({"tier": "cheap"} if node == "router" else {}, run_id=node_id)
        handler.on_chain_end({}, run_id=root)
        obs.run_finished(run, "success", None)

    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(runs):
            one_run()
        best = min(best, (time.perf_counter() - started) / runs)
    if provider is not None:
        provider.shutdown()
    return best * 1e6


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="turns per app")
    parser.add_argument("--block", type=int, default=10, help="turns per CPU-time block")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.block))
