"""Cache backends on real databases: SQLite (a sibling file) and Postgres (the checkpointer's)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from langchain_core.messages import HumanMessage

from graphyard._runtime import open_runtime
from graphyard.caching import CacheCounts, open_cache
from graphyard.config import TIERS, Settings, TierConfig
from graphyard.testing import ScriptedChatModel


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("dynamodb", marks=pytest.mark.dynamodb),
    ]
)
def backend_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param in ("postgres", "dynamodb"):
        url = request.getfixturevalue(f"{request.param}_url")
        return settings.model_copy(update={"checkpointer": url})
    return settings


async def test_entries_round_trip_expire_and_clear_by_namespace(backend_settings: Settings) -> None:
    async with open_cache(backend_settings) as cache:
        assert cache is not None
        a, b = (("graphyard", "answers"), "k1"), (("__pregel_ns_writes", "f", "search"), "k2")
        await cache.aset({a: ({"text": "hi"}, None), b: ([["out", 1]], 1)})
        # node writes come back as (channel, value) pairs, their messages with fresh ids
        assert await cache.aget([a, b]) == {a: {"text": "hi"}, b: [("out", 1)]}
        await asyncio.sleep(1.2)
        assert await cache.aget([a, b]) == {a: {"text": "hi"}}  # b's one-second TTL ran out
        assert await cache.apurge_expired() <= 1
        await cache.aclear([a[0]])
        assert await cache.aget([a]) == {}
        assert cache.get([a]) == {}  # the sync API (CLI, sync graphs) reads the same store


async def test_counters_from_two_processes_add_up(backend_settings: Settings) -> None:
    async with open_cache(backend_settings) as one, open_cache(backend_settings) as two:
        assert one is not None and two is not None
        await asyncio.gather(
            *(
                c.acount([CacheCounts("answers", hits=1, saved_usd=0.25)])
                for c in (one, two)
                for _ in range(10)
            )
        )
        (answers,) = [c for c in await one.astats() if c.name == "answers"]
        assert answers.hits == 20 and answers.saved_usd == pytest.approx(5.0)


async def test_the_served_agent_answers_a_repeated_question_from_the_cache(
    backend_settings: Settings,
) -> None:
    model = ScriptedChatModel(responses=["Refunds take 5-7 business days."])
    settings = backend_settings.model_copy(
        update={t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    )
    async with open_runtime(settings, models=dict.fromkeys(TIERS, model)) as runtime:
        scheme = backend_settings.checkpointer.partition(":")[0]
        assert runtime.cache is not None
        assert runtime.cache.kind == {"postgresql": "postgres"}.get(scheme, scheme)
        for user in ("alice", "bob"):
            config = {"configurable": {"thread_id": str(uuid.uuid4()), "user_id": user}}
            out = await runtime.graph.ainvoke(
                {"messages": [HumanMessage("What is your refund policy?")]}, config
            )
            assert out["messages"][-1].content == "Refunds take 5-7 business days."
        assert len(model.calls) == 1
        stats = {c.name: c for c in await runtime.cache.astats()}
        assert (stats["answers"].hits, stats["answers"].misses) == (1, 1)


@pytest.mark.dynamodb
async def test_dynamodb_cache_entries_live_in_their_own_table_not_the_checkpoint_table(
    dynamodb_url: str, settings: Settings
) -> None:
    import boto3

    from graphyard.persistence.dynamodb._admin import parse_url

    async with open_cache(settings.model_copy(update={"checkpointer": dynamodb_url})) as cache:
        assert cache is not None and cache.kind == "dynamodb"
        await cache.aset({(("graphyard", "answers"), "k"): ({"text": "hi"}, 60)})
    target = parse_url(dynamodb_url)
    client = boto3.client("dynamodb", region_name=target.region, endpoint_url=target.endpoint_url)
    items = client.scan(TableName="checkpoints-cache")["Items"]
    (item,) = [i for i in items if i["pk"]["S"] == "graphyard,answers"]
    assert int(item["ttl"]["N"]) > 0  # DynamoDB's own TTL sweeps it too
    if "checkpoints" in client.list_tables()["TableNames"]:
        assert not client.scan(TableName="checkpoints")["Items"]


async def test_an_unusable_dynamodb_cache_falls_back_to_memory_with_a_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphyard.caching import _dynamodb

    def refuse(url: str) -> None:
        raise RuntimeError("AccessDenied: dynamodb:CreateTable")

    monkeypatch.setattr(_dynamodb.DynamoDBCache, "open", staticmethod(refuse))
    dynamo = settings.model_copy(update={"checkpointer": "dynamodb://t?region=us-east-1"})
    with caplog.at_level("WARNING", logger="graphyard.caching._store"):
        async with open_cache(dynamo) as cache:
            assert cache is not None and cache.kind == "memory"
    assert "AccessDenied" in caplog.text and "process's memory" in caplog.text
