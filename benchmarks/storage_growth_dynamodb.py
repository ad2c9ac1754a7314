"""Storage growth and requests per turn on DynamoDB: graphyard's saver vs langgraph-checkpoint-aws.

A one-node chat graph (the shape of NOTES.md's SQLite measurement) runs 10, 50 and 200 turns
of ~200-token messages (a human message in, an AI reply out) on a fresh table per run, with
the message list on a plain ``add_messages`` channel and on a ``DeltaChannel``. Printed side
by side, per saver:

- stored bytes / raw text bytes: every item of the table sized by DynamoDB's rules plus the
  100 bytes per item DynamoDB bills for its index, plus S3 objects (``aws-s3`` only);
- requests per invoke at turn 1 and at the last turn (DynamoDB and S3 API calls, counted
  with botocore event hooks on the saver's clients);
- write latency: mean milliseconds per ``put`` (checkpoint) and per ``put_writes``.

Goals (issue 4): at most 8x the raw text at 200 turns, requests per turn flat and at most 6.

``--loop-lag`` measures instead what the async saver's thread pool buys: the event loop's
longest stall while 8 tasks save and load checkpoints through ``AsyncDynamoDBSaver``, against
the same boto3 calls made on the loop. (Measured with langgraph-checkpoint-aws 1.2.6.)

Everything runs against a ``moto_server`` subprocess on loopback (started here), so absolute
latencies are moto's, not AWS's: compare the ratios. Needs the dev extra and, for the
baseline, ``pip install langgraph-checkpoint-aws`` (skipped with a note if missing).

    .venv/bin/python benchmarks/storage_growth_dynamodb.py               # 10, 50, 200 turns
    .venv/bin/python benchmarks/storage_growth_dynamodb.py --turns 10,50 --savers ours
    .venv/bin/python benchmarks/storage_growth_dynamodb.py --loop-lag
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

import boto3
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import _messages_delta_reducer, add_messages

from graphyard.persistence.dynamodb import DynamoDBSaver, create_table, item_size
from graphyard.persistence.dynamodb.testing import FAKE_CREDENTIALS, MotoServer

REGION = "us-east-1"
ITEM_OVERHEAD = 100
"""Bytes DynamoDB bills per item on top of its attributes."""


class PlainState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


class DeltaState(TypedDict):
    messages: Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer)]


def _vocabulary(rng: random.Random, n: int = 3000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(n)]


class Texts:
    """~200-token messages (150 words from a 3000-word vocabulary), deterministic."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words = _vocabulary(self.rng)

    def __call__(self) -> str:
        return " ".join(self.rng.choice(self.words) for _ in range(150)) + "."


def chat_graph(state: type, texts: Texts) -> StateGraph:
    def reply(_: Any) -> dict[str, Any]:
        return {"messages": [AIMessage(texts(), id=str(uuid.uuid4()))]}

    builder = StateGraph(state)
    builder.add_node("chat", reply)
    builder.add_edge(START, "chat")
    builder.add_edge("chat", END)
    return builder


@dataclass
class Run:
    saver: str
    channel: str
    turns: int
    raw_bytes: int = 0
    stored_bytes: int = 0
    requests: list[int] = field(default_factory=list)
    put_ms: list[float] = field(default_factory=list)
    writes_ms: list[float] = field(default_factory=list)
    invoke_ms: list[float] = field(default_factory=list)
    error: str | None = None


def _timed(saver: Any, name: str, into: list[float]) -> None:
    method = getattr(saver, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - start) * 1000)

    setattr(saver, name, wrapper)


def _s3_bytes(endpoint: str, bucket: str) -> int:
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        return 0
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sum(o["Size"] for page in pages for o in page.get("Contents", []))


def _table_bytes(client: Any, table: str) -> int:
    total, start = 0, None
    while True:
        kwargs: dict[str, Any] = {"TableName": table}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = client.scan(**kwargs)
        total += sum(item_size(i) + ITEM_OVERHEAD for i in page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


def make_ours(client: Any, endpoint: str, table: str) -> Any:
    create_table(client, table)
    return DynamoDBSaver(client, table)


def make_aws(client: Any, endpoint: str, table: str, *, s3: bool = False) -> Any:
    from langgraph_checkpoint_aws.checkpoint.dynamodb import DynamoDBSaver as AwsSaver

    client.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    offload = None
    if s3:  # its documented setup for checkpoints over 350 KB
        boto3.client("s3", region_name=REGION, endpoint_url=endpoint).create_bucket(Bucket=table)
        offload = {"bucket_name": table, "endpoint_url": endpoint}
    return AwsSaver(
        table_name=table, region_name=REGION, endpoint_url=endpoint, s3_offload_config=offload
    )


def make_aws_s3(client: Any, endpoint: str, table: str) -> Any:
    return make_aws(client, endpoint, table, s3=True)


SAVERS: dict[str, tuple[str, Callable[[Any, str, str], Any]]] = {
    "ours": ("graphyard", make_ours),
    "aws": ("langgraph-checkpoint-aws", make_aws),
    "aws-s3": ("langgraph-checkpoint-aws +S3", make_aws_s3),
}


def run_one(key: str, channel: str, turns: int, client: Any, endpoint: str) -> Run:
    label, factory = SAVERS[key]
    run = Run(label, channel, turns)
    table = f"bench-{key}-{channel}-{turns}-{uuid.uuid4().hex[:6]}"
    saver = factory(client, endpoint, table)
    calls = [0]

    def count(**_: Any) -> None:
        calls[0] += 1

    saver.client.meta.events.register("before-call.dynamodb", count)
    s3 = getattr(saver, "s3_client", None) or getattr(
        getattr(saver, "storage", None), "s3_client", None
    )
    if s3 is not None:  # offloaded payloads cost requests too
        s3.meta.events.register("before-call.s3", count)
    _timed(saver, "put", run.put_ms)
    _timed(saver, "put_writes", run.writes_ms)
    texts = Texts()
    graph = chat_graph(DeltaState if channel == "delta" else PlainState, texts).compile(
        checkpointer=saver
    )
    config = {"configurable": {"thread_id": f"thread-{uuid.uuid4().hex[:8]}"}}
    try:
        for _ in range(turns):
            human = HumanMessage(texts(), id=str(uuid.uuid4()))
            calls[0] = 0
            start = time.perf_counter()
            out = graph.invoke({"messages": [human]}, config, durability="sync")
            run.invoke_ms.append((time.perf_counter() - start) * 1000)
            run.requests.append(calls[0])
        run.raw_bytes = sum(len(str(m.content).encode()) for m in out["messages"])
        assert len(out["messages"]) == 2 * turns, "the conversation did not round-trip"
    except Exception as exc:  # a baseline that breaks is a result too
        run.error = f"{type(exc).__name__}: {str(exc)[:160]}"
    run.stored_bytes = _table_bytes(client, table) + _s3_bytes(endpoint, table)
    client.delete_table(TableName=table)
    return run


def _mean(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f}" if values else "-"


def report(runs: list[Run]) -> None:
    header = (
        f"{'saver':<26} {'channel':<12} {'turns':>5} {'text MB':>8} {'stored MB':>10} "
        f"{'x text':>8} {'req t1':>7} {'req last':>8} {'req max':>8} {'put ms':>7} "
        f"{'writes ms':>9} {'invoke ms':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        ratio = r.stored_bytes / r.raw_bytes if r.raw_bytes else float("nan")
        print(
            f"{r.saver:<26} {r.channel:<12} {r.turns:>5} {r.raw_bytes / 1e6:>8.3f} "
            f"{r.stored_bytes / 1e6:>10.3f} {ratio:>8.1f} "
            f"{(r.requests[0] if r.requests else 0):>7} {(r.requests[-1] if r.requests else 0):>8} "
            f"{max(r.requests, default=0):>8} {_mean(r.put_ms):>7} {_mean(r.writes_ms):>9} "
            f"{_mean(r.invoke_ms):>9}"
            + (f"   FAILED after {len(r.requests)} turns: {r.error}" if r.error else "")
        )
    by_key = {(r.saver, r.channel, r.turns): r for r in runs}
    lines = []
    for (saver, channel, turns), ours in by_key.items():
        if saver != "graphyard":
            continue
        for label in ("langgraph-checkpoint-aws", "langgraph-checkpoint-aws +S3"):
            base = by_key.get((label, channel, turns))
            if base is None or not base.requests or not ours.requests or not ours.raw_bytes:
                continue
            broke = f" (it failed at turn {len(base.requests)})" if base.error else ""
            lines.append(
                f"  {label:<29} {channel:<6} {turns:>4} turns: stored "
                f"{base.stored_bytes / ours.stored_bytes:5.1f}x, requests at its last turn "
                f"{base.requests[-1] / ours.requests[len(base.requests) - 1]:5.1f}x, put time "
                f"{statistics.mean(base.put_ms) / statistics.mean(ours.put_ms):4.1f}x{broke}"
            )
    if lines:
        print("\nbaseline / graphyard (higher = graphyard better):")
        print("\n".join(lines))
    print(
        "\nchannel: plain = add_messages list (the whole list in every checkpoint), "
        "delta = DeltaChannel (messages stored once, snapshot every 100 updates)."
    )


async def loop_lag(endpoint: str, tasks: int = 8, rounds: int = 30) -> None:
    """Longest event-loop stall: AsyncDynamoDBSaver's pool vs boto3 on the loop."""
    from langgraph.checkpoint.base import empty_checkpoint

    from graphyard.persistence.dynamodb.aio import AsyncDynamoDBSaver

    url = f"dynamodb://lag?region={REGION}&endpoint_url={endpoint}"
    async with AsyncDynamoDBSaver.from_conn_string(url) as saver:
        await saver.asetup()

        async def probe(stop: asyncio.Event, gaps: list[float]) -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append((now - last) * 1000)
                last = now

        async def worker(n: int, on_loop: bool) -> None:
            config = {"configurable": {"thread_id": f"lag-{n}-{on_loop}", "checkpoint_ns": ""}}
            for step in range(rounds):
                checkpoint = empty_checkpoint()
                checkpoint["channel_values"] = {"x": "y" * 2000}
                meta: Any = {"source": "loop", "step": step}
                if on_loop:  # what a saver without a pool does: boto3 on the event loop
                    config = saver._put(config, checkpoint, meta, {})
                    saver._get_tuple(config)
                    await asyncio.sleep(0)
                else:
                    config = await saver.aput(config, checkpoint, meta, {})
                    await saver.aget_tuple(config)

        results = {}
        for on_loop in (False, True):
            gaps: list[float] = []
            stop = asyncio.Event()
            probe_task = asyncio.create_task(probe(stop, gaps))
            start = time.perf_counter()
            await asyncio.gather(*(worker(n, on_loop) for n in range(tasks)))
            elapsed = time.perf_counter() - start
            stop.set()
            await probe_task
            gaps.sort()
            results[on_loop] = (
                max(gaps),
                gaps[int(len(gaps) * 0.99) - 1],
                tasks * rounds * 2 / elapsed,
            )
        # The pool's own cost: one operation at a time, direct call vs awaited through it.
        config = {"configurable": {"thread_id": "hop", "checkpoint_ns": ""}}
        config = await saver.aput(config, empty_checkpoint(), {"source": "loop", "step": 0}, {})  # type: ignore[typeddict-item]
        direct, pooled = [], []
        for _ in range(200):
            t0 = time.perf_counter()
            saver._get_tuple(config)
            direct.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await saver.aget_tuple(config)
            pooled.append(time.perf_counter() - t0)

    print(f"{tasks} tasks x {rounds} rounds of aput + aget_tuple (2 KB checkpoints):")
    print(f"{'boto3 runs':<28} {'max stall ms':>12} {'p99 stall ms':>12} {'ops/s':>8}")
    for on_loop, label in ((False, "on the saver's thread pool"), (True, "on the event loop")):
        worst, p99, rate = results[on_loop]
        print(f"{label:<28} {worst:>12.1f} {p99:>12.1f} {rate:>8.0f}")
    ratio = results[True][0] / results[False][0]
    print(f"longest stall, on the loop / pool: {ratio:.1f}x")
    print(
        f"get_tuple alone: {statistics.median(direct) * 1000:.2f} ms direct, "
        f"{statistics.median(pooled) * 1000:.2f} ms through the pool (median of 200)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", default="10,50,200", help="comma-separated turn counts")
    parser.add_argument("--savers", default="ours,aws", help="any of ours, aws, aws-s3")
    parser.add_argument("--channels", default="plain,delta", help="plain, delta or both")
    parser.add_argument("--loop-lag", action="store_true", help="measure event-loop stalls instead")
    args = parser.parse_args()
    os.environ.update(FAKE_CREDENTIALS)  # moto accepts any; boto3 needs some
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop moto_server on kill too
    with MotoServer() as moto:
        if args.loop_lag:
            asyncio.run(loop_lag(moto.endpoint))
            return
        client = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto.endpoint)
        savers = [s for s in args.savers.split(",") if s]
        if any(s.startswith("aws") for s in savers):
            try:
                import langgraph_checkpoint_aws  # noqa: F401
            except ImportError:
                print(
                    "langgraph-checkpoint-aws is not installed: baseline skipped", file=sys.stderr
                )
                savers = [s for s in savers if not s.startswith("aws")]
        runs = []
        for turns in (int(t) for t in args.turns.split(",")):
            for channel in args.channels.split(","):
                for key in savers:
                    start = time.perf_counter()
                    runs.append(run_one(key, channel, turns, client, moto.endpoint))
                    print(
                        f"  ran {SAVERS[key][0]} / {channel} / {turns} turns in "
                        f"{time.perf_counter() - start:.0f} s",
                        file=sys.stderr,
                    )
        report(runs)


if __name__ == "__main__":
    main()
