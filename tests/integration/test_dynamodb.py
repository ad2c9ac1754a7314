"""graphyard's DynamoDB saver against a real moto_server over HTTP (DynamoDB and S3).

Conformance (``langgraph-checkpoint-conformance``, sync and async savers), 1 MB messages
through the reference agent, oversized checkpoints stored whole and never half-written,
TTL on every item with expired items invisible, a DeltaChannel history in one query,
requests per invoke flat, and DeltaChannel-safe prune and copy.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import random
import string
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

import boto3
import pytest
from checkpointer_support import config, settings_for, transcript
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import _messages_delta_reducer
from typer.testing import CliRunner

from graphyard import open_runtime
from graphyard.errors import ConfigError
from graphyard.persistence import list_threads, open_saver, prune_threads, saver_backend
from graphyard.persistence.dynamodb import DynamoDBSaver, create_table, parse_url
from graphyard.persistence.dynamodb.aio import AsyncDynamoDBSaver
from graphyard.testing import ScriptedChatModel

pytestmark = pytest.mark.dynamodb

REGION = "us-east-1"
TABLE = "checkpoints"
BASE = {c.value for c in BASE_CAPABILITIES}


# -- helpers ---------------------------------------------------------------------------------


def _client(endpoint: str, service: str = "dynamodb") -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def _saver(endpoint: str, *, table: str = TABLE, **options: Any) -> DynamoDBSaver:
    client = _client(endpoint)
    if options.get("s3_bucket"):
        options.setdefault("s3_client", _client(endpoint, "s3"))
    create_table(
        client, table, s3_client=options.get("s3_client"), s3_bucket=options.get("s3_bucket")
    )
    return DynamoDBSaver(client, table, **options)


def _items(endpoint: str, table: str = TABLE) -> list[dict[str, Any]]:
    client, items, start = _client(endpoint), [], None
    while True:
        page = client.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


@contextmanager
def _counting(saver: BaseCheckpointSaver[str]) -> Iterator[collections.Counter[str]]:
    """DynamoDB API calls the saver makes inside the block, by operation."""
    calls: collections.Counter[str] = collections.Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    events = saver.client.meta.events  # type: ignore[attr-defined]
    events.register("before-call.dynamodb", count, unique_id="test-count")
    try:
        yield calls
    finally:
        events.unregister("before-call.dynamodb", unique_id="test-count")


def chat_graph(saver: BaseCheckpointSaver[str], *, snapshot_frequency: int = 100) -> Any:
    """A one-node chat graph whose messages live on a DeltaChannel."""

    channel = DeltaChannel(_messages_delta_reducer, snapshot_frequency=snapshot_frequency)
    # The functional form: annotations are evaluated here, not from strings later.
    State = TypedDict("State", {"messages": Annotated[list[AnyMessage], channel]})  # noqa: UP013

    def reply(state: Any) -> dict[str, Any]:
        return {"messages": [AIMessage(f"answer {len(state['messages'])}", id=str(uuid.uuid4()))]}

    builder = StateGraph(State)
    builder.add_node("chat", reply)
    builder.add_edge(START, "chat")
    builder.add_edge("chat", END)
    return builder.compile(checkpointer=saver)


def _say(graph: Any, thread_id: str, turns: int, *, first: int = 0) -> None:
    for n in range(first, first + turns):
        graph.invoke(
            {"messages": [HumanMessage(f"turn {n}", id=f"h{n}")]},
            {"configurable": {"thread_id": thread_id}},
            durability="sync",
        )


def _contents(graph: Any, thread_id: str) -> list[str]:
    state = graph.get_state({"configurable": {"thread_id": thread_id}})
    return [str(m.content) for m in state.values.get("messages", [])]


def _noise(n: int, seed: int = 7) -> str:
    """Text that zlib cannot shrink much, so it really crosses the 400 KB item limit."""
    return "".join(random.Random(seed).choices(string.ascii_letters + string.digits, k=n))


class SyncSaverThroughAsyncAPI(DynamoDBSaver):
    """The conformance suite calls the async API only: this runs it on the *sync* saver's
    methods (each call in a worker thread), so the sync code path is what it tests."""

    async def aget_tuple(self, config: Any) -> Any:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for row in await asyncio.to_thread(lambda: list(self.list(config, **kwargs))):
            yield row

    async def aput(self, *args: Any) -> Any:
        return await asyncio.to_thread(self.put, *args)

    async def aput_writes(
        self, config: Any, writes: Any, task_id: str, task_path: str = ""
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def acopy_thread(self, source: str, target: str) -> None:
        await asyncio.to_thread(self.copy_thread, source, target)

    async def aprune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


# -- conformance -----------------------------------------------------------------------------


def _assert_passed(report: Any) -> None:
    failures = {k: r.failures for k, r in report.results.items() if r.failures}
    assert report.passed_all_base(), failures
    assert sum(report.results[c].tests_passed for c in BASE) >= 58
    for extended in ("copy_thread", "prune"):
        assert report.results[extended].passed, failures
    assert report.results["delete_for_runs"].detected is False  # would need a table scan


async def test_async_dynamodb_saver_passes_the_conformance_suite(dynamodb_url: str) -> None:
    @checkpointer_test(name="graphyard-dynamodb-async")
    async def factory() -> AsyncIterator[object]:
        async with open_saver(dynamodb_url) as saver:  # what the server opens
            yield saver

    _assert_passed(await validate(factory))


async def test_sync_dynamodb_saver_passes_the_conformance_suite(dynamodb_endpoint: str) -> None:
    @checkpointer_test(name="graphyard-dynamodb-sync")
    async def factory() -> AsyncIterator[object]:
        client = _client(dynamodb_endpoint)
        await asyncio.to_thread(create_table, client, TABLE)
        yield SyncSaverThroughAsyncAPI(client, TABLE)

    _assert_passed(await validate(factory))


# -- big payloads ----------------------------------------------------------------------------


@pytest.mark.parametrize("offload", ["chunks", "s3"])
async def test_a_one_megabyte_message_round_trips_through_the_reference_graph(
    dynamodb_url: str, tmp_path: Path, offload: str
) -> None:
    url = dynamodb_url + ("&s3_bucket=graphyard-big" if offload == "s3" else "")
    big = _noise(1_000_000)
    model = ScriptedChatModel(responses=[big[::-1]])
    settings = settings_for(url, tmp_path)
    models = dict.fromkeys(("cheap", "mid", "strong"), model)
    async with open_runtime(settings, models=models) as runtime:
        await runtime.graph.ainvoke(
            {"messages": [HumanMessage(big, id="big")]}, config("t"), durability="sync"
        )
    async with open_runtime(settings, models=models) as reopened:  # a new saver reads it back
        messages = (await reopened.graph.aget_state(config("t"))).values["messages"]

    assert messages[0].content == big
    assert messages[-1].content == big[::-1]
    endpoint = parse_url(url).endpoint_url
    assert endpoint is not None
    if offload == "s3":
        objects = _client(endpoint, "s3").list_objects_v2(Bucket="graphyard-big")
        assert objects["KeyCount"] >= 2  # the message's write and the checkpoint holding it
    else:
        assert any(i["k"]["S"] == "x" for i in _items(endpoint))


@pytest.mark.parametrize("offload", ["chunks", "s3"])
def test_a_checkpoint_over_400_kb_is_stored_whole(dynamodb_endpoint: str, offload: str) -> None:
    options = {"s3_bucket": "graphyard-big"} if offload == "s3" else {}
    saver = _saver(dynamodb_endpoint, **options)
    value = _noise(900_000)
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"big": value}
    checkpoint["channel_versions"] = {"big": 1}
    stored = saver.put(
        {"configurable": {"thread_id": "t", "checkpoint_ns": ""}},
        checkpoint,
        {"step": 0},
        {"big": 1},  # type: ignore[typeddict-item]
    )

    loaded = saver.get_tuple(stored)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"]["big"] == value
    kinds = collections.Counter(i["k"]["S"] for i in _items(dynamodb_endpoint))
    if offload == "s3":
        assert kinds == {"c": 1}
    else:
        assert kinds["c"] == 1 and kinds["x"] >= 2  # 900 KB in <=350 KB chunks


@pytest.mark.parametrize("offload", ["chunks", "s3"])
def test_a_failure_mid_write_never_leaves_a_half_written_checkpoint_readable(
    dynamodb_endpoint: str, offload: str
) -> None:
    options = {"s3_bucket": "graphyard-big"} if offload == "s3" else {}
    saver = _saver(dynamodb_endpoint, **options)
    base = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    first = saver.put(base, empty_checkpoint(), {"step": 0}, {})  # type: ignore[typeddict-item]
    big = empty_checkpoint()
    big["channel_values"] = {"big": _noise(900_000)}
    big["channel_versions"] = {"big": 1}

    def network_dies(**_: Any) -> None:
        raise ConnectionResetError("simulated: the process lost DynamoDB mid-write")

    events = saver.client.meta.events
    events.register("before-call.dynamodb.PutItem", network_dies, unique_id="die")
    with pytest.raises(ConnectionResetError):
        saver.put(first, big, {"step": 1}, {"big": 1})  # type: ignore[typeddict-item]
    events.unregister("before-call.dynamodb.PutItem", unique_id="die")

    # The payload did get written (chunks or the S3 object)...
    if offload == "s3":
        assert saver.s3_client.list_objects_v2(Bucket="graphyard-big")["KeyCount"] == 1
    else:
        assert any(i["k"]["S"] == "x" for i in _items(dynamodb_endpoint))
    # ...but no reader sees a checkpoint that is not all there.
    latest = saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert latest is not None and latest.checkpoint["id"] == first["configurable"]["checkpoint_id"]
    assert [t.checkpoint["id"] for t in saver.list({"configurable": {"thread_id": "t"}})] == [
        first["configurable"]["checkpoint_id"]
    ]
    assert (
        saver.get_tuple(
            {**base, "configurable": {**base["configurable"], "checkpoint_id": big["id"]}}
        )
        is None
    )


def test_a_tasks_writes_are_saved_all_or_none(dynamodb_endpoint: str) -> None:
    saver = _saver(dynamodb_endpoint)
    stored = saver.put(
        {"configurable": {"thread_id": "t", "checkpoint_ns": ""}},
        empty_checkpoint(),
        {"step": 0},
        {},  # type: ignore[typeddict-item]
    )
    writes = [("small", "a"), ("big", _noise(600_000)), ("other", "c")]

    def network_dies(**_: Any) -> None:
        raise ConnectionResetError("simulated")

    events = saver.client.meta.events
    events.register("before-call.dynamodb.PutItem", network_dies, unique_id="die")
    with pytest.raises(ConnectionResetError):
        saver.put_writes(stored, writes, "task-1")
    events.unregister("before-call.dynamodb.PutItem", unique_id="die")
    assert any(i["k"]["S"] == "x" for i in _items(dynamodb_endpoint))  # the chunks got written
    after_failure = saver.get_tuple(stored)
    assert after_failure is not None and after_failure.pending_writes == []

    saver.put_writes(stored, writes, "task-1")  # LangGraph retries the task: now all of it
    loaded = saver.get_tuple(stored)
    assert loaded is not None
    assert [(c, v) for _, c, v in loaded.pending_writes or []] == writes


# -- TTL -------------------------------------------------------------------------------------


def test_every_item_carries_a_ttl_and_expired_items_are_invisible(dynamodb_endpoint: str) -> None:
    now = 1_900_000_000.0
    saver = _saver(dynamodb_endpoint, ttl_seconds=3600, clock=lambda: now)
    graph = chat_graph(saver)
    _say(graph, "t", 2)
    big = HumanMessage(_noise(500_000), id="big")  # chunk items need a ttl too
    graph.invoke({"messages": [big]}, {"configurable": {"thread_id": "t"}})

    items = _items(dynamodb_endpoint)
    assert {i["k"]["S"] for i in items} == {"c", "w", "x"}
    assert {int(i["ttl"]["N"]) for i in items} == {int(now) + 3600}
    ttl = _client(dynamodb_endpoint).describe_time_to_live(TableName=TABLE)
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    assert len(_contents(graph, "t")) == 6

    saver.clock = lambda: now + 3601  # moto never expires items: they are still stored...
    assert len(_items(dynamodb_endpoint)) == len(items)
    # ...but nothing reads them any more.
    assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is None
    assert list(saver.list({"configurable": {"thread_id": "t"}})) == []
    assert _contents(graph, "t") == []


def test_an_active_thread_keeps_its_whole_history_when_its_first_items_expire(
    dynamodb_endpoint: str,
) -> None:
    t0 = 1_900_000_000.0
    clock = [t0]
    saver = _saver(dynamodb_endpoint, ttl_seconds=1000, clock=lambda: clock[0])
    graph = chat_graph(saver, snapshot_frequency=1000)  # no snapshot: history is all writes
    _say(graph, "t", 3)
    clock[0] = t0 + 50  # a turn soon after: nothing to rebase yet
    with _counting(saver) as calls:
        _say(graph, "t", 1, first=3)
    assert calls == {"Query": 1, "PutItem": 5}
    clock[0] = t0 + 600  # the first items expire within 90% of a TTL: this turn rebases
    _say(graph, "t", 1, first=4)
    clock[0] = t0 + 1100  # the first four turns' own items have now expired

    expired = [i for i in _items(dynamodb_endpoint) if int(i["ttl"]["N"]) < clock[0]]
    assert expired, "the test must read across expired items"
    assert _contents(graph, "t") == [
        text for n in range(5) for text in (f"turn {n}", f"answer {2 * n + 1}")
    ]


async def test_dynamodb_ttl_setting_reaches_every_item(dynamodb_url: str, tmp_path: Path) -> None:
    settings = settings_for(dynamodb_url, tmp_path, dynamodb_ttl="2h")
    async with open_saver(dynamodb_url, settings=settings) as saver:
        before = time.time()
        await chat_graph(saver).ainvoke({"messages": [HumanMessage("hi", id="h")]}, config("t"))
    endpoint = parse_url(dynamodb_url).endpoint_url
    assert endpoint is not None
    ttls = [int(i["ttl"]["N"]) for i in _items(endpoint)]
    assert ttls and all(before + 7200 - 5 <= t <= time.time() + 7200 for t in ttls)


# -- requests --------------------------------------------------------------------------------


def test_a_delta_channel_history_is_rebuilt_with_one_query(dynamodb_endpoint: str) -> None:
    writer = _saver(dynamodb_endpoint)
    graph = chat_graph(writer, snapshot_frequency=1000)
    _say(graph, "t", 20)
    latest = writer.get_tuple({"configurable": {"thread_id": "t"}})
    assert latest is not None
    target = latest.config

    reader = DynamoDBSaver(_client(dynamodb_endpoint), TABLE)  # a cold saver: no memory
    with _counting(reader) as calls:
        ours = reader.get_delta_channel_history(config=target, channels=["messages"])
    assert calls == {"Query": 1}

    with _counting(reader) as per_ancestor:  # LangGraph's default: one get_tuple per ancestor
        default = BaseCheckpointSaver.get_delta_channel_history(
            reader, config=target, channels=["messages"]
        )
    assert per_ancestor["Query"] >= 60

    def contents(history: Any) -> list[str]:
        return [m.content for _, _, batch in history["messages"]["writes"] for m in batch]

    assert contents(ours) == contents(default)
    assert len(contents(ours)) == 40  # 20 turns, no snapshot: every message is a write

    fresh = DynamoDBSaver(_client(dynamodb_endpoint), TABLE)
    with _counting(fresh) as calls:  # what a graph does on load: latest, then its history
        fresh.get_tuple({"configurable": {"thread_id": "t"}})
        fresh.get_delta_channel_history(config=target, channels=["messages"])
    assert calls == {"Query": 1}


def test_requests_per_invoke_stay_flat_as_a_conversation_grows(dynamodb_endpoint: str) -> None:
    saver = _saver(dynamodb_endpoint)
    graph = chat_graph(saver, snapshot_frequency=10)
    per_turn = []
    for n in range(30):
        with _counting(saver) as calls:
            _say(graph, "t", 1, first=n)
        per_turn.append(sum(calls.values()))

    # get_tuple + history (1 Query), 3 checkpoints and 2 tasks' writes (1 PutItem each).
    assert per_turn == [6] * 30
    assert len(_contents(graph, "t")) == 60


# -- prune, copy, delete -----------------------------------------------------------------------


def test_prune_keep_latest_keeps_a_delta_channel_thread_readable(dynamodb_endpoint: str) -> None:
    saver = _saver(dynamodb_endpoint)
    graph = chat_graph(saver, snapshot_frequency=7)
    _say(graph, "t", 10)
    _say(graph, "other", 2)
    before = _contents(graph, "t")
    other_items = len([i for i in _items(dynamodb_endpoint) if i["pk"]["S"] == "other"])

    saver.prune(["t"], strategy="keep_latest")

    assert len(list(saver.list({"configurable": {"thread_id": "t", "checkpoint_ns": ""}}))) == 1
    assert _contents(graph, "t") == before
    assert len([i for i in _items(dynamodb_endpoint) if i["pk"]["S"] == "other"]) == other_items
    _say(graph, "t", 1, first=10)  # the thread goes on from its one checkpoint
    assert _contents(graph, "t") == [*before, "turn 10", "answer 21"]


@pytest.mark.parametrize("offload", ["chunks", "s3"])
def test_a_copied_thread_stays_readable_after_its_source_is_deleted(
    dynamodb_endpoint: str, offload: str
) -> None:
    options = {"s3_bucket": "graphyard-big"} if offload == "s3" else {}
    saver = _saver(dynamodb_endpoint, **options)
    graph = chat_graph(saver, snapshot_frequency=5)
    _say(graph, "source", 4)
    big = HumanMessage(_noise(600_000), id="big")  # over 350 KB even compressed
    graph.invoke({"messages": [big]}, {"configurable": {"thread_id": "source"}})
    before = _contents(graph, "source")

    saver.copy_thread("source", "copy")
    saver.delete_thread("source")

    assert _contents(graph, "source") == []
    assert [i for i in _items(dynamodb_endpoint) if i["pk"]["S"] == "source"] == []
    assert _contents(graph, "copy") == before
    if offload == "s3":
        keys = [
            o["Key"] for o in saver.s3_client.list_objects_v2(Bucket="graphyard-big")["Contents"]
        ]
        assert keys and all(k.startswith("copy/") for k in keys)


async def test_retention_keeps_a_dynamodb_delta_thread_readable_and_lists_threads(
    dynamodb_url: str,
) -> None:
    async with open_saver(dynamodb_url) as saver:
        graph = chat_graph(saver, snapshot_frequency=7)
        for thread in ("old", "new"):
            for n in range(4):
                await graph.ainvoke(
                    {"messages": [HumanMessage(f"{thread} {n}", id=f"{thread}{n}")]}, config(thread)
                )
        before = (await graph.aget_state(config("new"))).values["messages"]

        rows = await list_threads(saver, limit=10)
        report = await prune_threads(saver, keep_latest=True, channels=graph.channels)
        after = (await graph.aget_state(config("new"))).values["messages"]
        remaining = [c async for c in saver.alist(config("new"))]

    assert [r.thread_id for r in rows] == ["new", "old"]
    assert rows[0].checkpoints == 12
    assert sorted(report.threads) == ["new", "old"]
    assert transcript(after) == transcript(before)
    assert len(remaining) == 1


async def test_idle_dynamodb_threads_are_swept_and_named_ones_deleted(dynamodb_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from graphyard.persistence import delete_threads, sweep_idle_threads

    async with open_saver(dynamodb_url) as saver:
        graph = chat_graph(saver)
        for thread in ("a", "b", "c"):
            await graph.ainvoke(
                {"messages": [HumanMessage("hi", id=f"h-{thread}")]}, config(thread)
            )
        not_yet = await sweep_idle_threads(saver, timedelta(days=1))
        deleted = await delete_threads(saver, ["a", "nobody"])
        later = await sweep_idle_threads(
            saver, timedelta(days=1), now=datetime.now(UTC) + timedelta(days=2)
        )
        left = await list_threads(saver, limit=10)

    assert not_yet.threads == []
    assert deleted.threads == ["a"]
    assert sorted(later.threads) == ["b", "c"]
    assert left == []


def test_listing_without_a_thread_scans_every_thread_newest_first(dynamodb_endpoint: str) -> None:
    saver = _saver(dynamodb_endpoint)
    graph = chat_graph(saver)
    _say(graph, "first", 1)
    _say(graph, "second", 1)

    rows = list(saver.list(None))
    assert [r.checkpoint["id"] for r in rows] == sorted(
        (r.checkpoint["id"] for r in rows), reverse=True
    )
    assert {r.config["configurable"]["thread_id"] for r in rows} == {"first", "second"}
    assert rows[0].config["configurable"]["thread_id"] == "second"
    assert len(list(saver.list(None, limit=2))) == 2


# -- async, URL, CLI -------------------------------------------------------------------------


async def test_the_async_saver_never_blocks_the_event_loop(
    dynamodb_url: str, no_blocking: Any
) -> None:
    from blockbuster import BlockingError

    async with open_saver(dynamodb_url) as saver:
        graph = chat_graph(saver)
        for n in range(3):
            await graph.ainvoke({"messages": [HumanMessage(f"turn {n}", id=f"h{n}")]}, config("t"))
        assert len((await graph.aget_state(config("t"))).values["messages"]) == 6
        with pytest.raises(asyncio.InvalidStateError):
            saver.get_tuple(config("t"))  # the sync API refuses to run on the loop
        with warnings.catch_warnings():
            # The blocked call is stopped inside socket.connect; the socket it leaves is
            # collected here, not in some later test.
            warnings.simplefilter("ignore", ResourceWarning)
            with pytest.raises(BlockingError) as caught:
                saver._get_tuple(config("t"))  # and the guard above would catch it if it did
            del caught
            gc.collect()


async def test_open_saver_opens_a_dynamodb_url_and_creates_the_table_once(
    dynamodb_url: str,
) -> None:
    assert saver_backend(dynamodb_url) == "dynamodb"
    for _ in range(2):  # the second open finds the table
        async with open_saver(dynamodb_url) as saver:
            assert isinstance(saver, AsyncDynamoDBSaver)
    endpoint = parse_url(dynamodb_url).endpoint_url
    assert _client(str(endpoint)).list_tables()["TableNames"] == [TABLE]


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("dynamodb://checkpoints?region=us-east-1&endpoint=http://x", "accepted: region"),
        ("dynamodb://a?region=us-east-1", "names no valid table"),
        (
            "dynamodb://checkpoints?region=us-east-1&endpoint_url=http://127.0.0.1:9",
            "cannot reach DynamoDB",
        ),
    ],
)
async def test_a_bad_dynamodb_url_is_a_config_error_that_says_the_fix(
    url: str, fix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(ConfigError, match=fix):
        async with open_saver(url):
            pass


def test_db_init_creates_the_table_with_ttl_enabled(
    dynamodb_url: str, dynamodb_endpoint: str
) -> None:
    from graphyard.cli import app

    result = CliRunner().invoke(
        app, ["db", "init", "--json"], env={**os.environ, "GRAPHYARD_CHECKPOINTER": dynamodb_url}
    )

    assert result.exit_code == 0, result.output
    assert '"backend": "dynamodb"' in result.output
    client = _client(dynamodb_endpoint)
    keys = client.describe_table(TableName=TABLE)["Table"]["KeySchema"]
    assert keys == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    ttl = client.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}


def test_the_sync_saver_matches_the_in_memory_saver_turn_by_turn(dynamodb_endpoint: str) -> None:
    ours, reference = (
        chat_graph(_saver(dynamodb_endpoint), snapshot_frequency=3),
        chat_graph(InMemorySaver(), snapshot_frequency=3),
    )
    for n in range(8):
        for graph in (ours, reference):
            _say(graph, "t", 1, first=n)
        assert _contents(ours, "t") == _contents(reference, "t")
    history: Callable[[Any], list[int]] = lambda g: [  # noqa: E731
        len(s.values.get("messages", []))
        for s in g.get_state_history({"configurable": {"thread_id": "t"}})
    ]
    assert history(ours) == history(reference)
