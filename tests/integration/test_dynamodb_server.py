"""Two ``dynamodb://`` servers (two Lambda instances) on one table never run one thread at
once: each keeps its run records in its own ``graphyard-server.db``, so only the lease in
``<table>-threads`` stands between them. Before it, both accepted a turn on the same thread
and wrote sibling checkpoints: one answer vanished from the history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from graphyard.config import TIERS, Settings, TierConfig
from graphyard.persistence.dynamodb._admin import parse_url
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

pytestmark = pytest.mark.dynamodb

ANSWER = " ".join(f"word{i}" for i in range(30))


@asynccontextmanager
async def instance(
    settings: Settings, home: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """One server with its own working directory (its own graphyard-server.db)."""
    await asyncio.to_thread(home.mkdir)
    monkeypatch.chdir(home)  # the store opens ./graphyard-server.db when the app starts
    model = ScriptedChatModel(responses=[ANSWER] * 10, delay=0.02)  # ~0.6 s a turn
    app = create_app(settings, models=dict.fromkeys(TIERS, model))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://g", timeout=30
        ) as client,
    ):
        yield client


def lease_holders(url: str, thread_id: str) -> list[str]:
    target = parse_url(url)
    client = boto3.client("dynamodb", region_name=target.region, endpoint_url=target.endpoint_url)
    items = client.query(
        TableName=f"{target.table}-threads",
        KeyConditionExpression="pk = :t AND sk = :lease",
        ExpressionAttributeValues={":t": {"S": thread_id}, ":lease": {"S": "lease"}},
    )["Items"]
    return [i["holder"]["S"] for i in items]


async def wait_running(client: httpx.AsyncClient, thread_id: str) -> None:
    """Until the instance behind ``client`` is running a run on the thread."""
    for _ in range(300):
        runs = await client.get(f"/threads/{thread_id}/runs")
        if runs.status_code == 200 and any(r["status"] == "running" for r in runs.json()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no run started on {thread_id}")


def humans(state: dict[str, Any]) -> list[str]:
    return [m["content"] for m in state["values"]["messages"] if m["type"] == "human"]


def settings_for(url: str, tmp_path: Path) -> Settings:
    return Settings(
        checkpointer=url,
        shop_db=tmp_path / "shop.db",
        router="rules",
        **{t: TierConfig(model=f"scripted:{t}") for t in TIERS},
    )


async def test_a_turn_on_a_thread_busy_on_another_instance_answers_409_and_loses_nothing(
    dynamodb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(dynamodb_url, tmp_path)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(instance(settings, tmp_path / "a", monkeypatch))
        b = await stack.enter_async_context(instance(settings, tmp_path / "b", monkeypatch))

        first = asyncio.create_task(a.post("/chat/t-1", json={"content": "first"}))
        await wait_running(a, "t-1")
        busy = await b.post("/chat/t-1", json={"content": "second"})
        assert busy.status_code == 409, busy.text
        assert len(await asyncio.to_thread(lease_holders, dynamodb_url, "t-1")) == 1
        assert busy.json()["error"] == "thread_busy", busy.json()
        assert (await first).status_code == 200

        # the lease is gone with the run: the other instance takes the next turn
        assert await asyncio.to_thread(lease_holders, dynamodb_url, "t-1") == []
        again = await b.post("/chat/t-1", json={"content": "third"})
        assert again.status_code == 200, again.text
        state = (await a.get("/threads/t-1/state")).json()
        assert humans(state) == ["first", "third"]
        assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai"] * 2


async def test_a_run_enqueued_on_another_instance_waits_for_the_lease_then_runs(
    dynamodb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(dynamodb_url, tmp_path)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(instance(settings, tmp_path / "a", monkeypatch))
        b = await stack.enter_async_context(instance(settings, tmp_path / "b", monkeypatch))

        first = asyncio.create_task(a.post("/chat/t-2", json={"content": "first"}))
        await wait_running(a, "t-2")
        queued = await b.post(
            "/threads/t-2/runs/wait",
            json={
                "assistant_id": "support",
                "input": {"messages": [{"role": "user", "content": "second"}]},
                "multitask_strategy": "enqueue",
                "if_not_exists": "create",
            },
        )
        assert (await first).status_code == 200
        assert queued.status_code == 200, queued.text
        state = (await b.get("/threads/t-2/state")).json()
        # one line of history, each turn whole and in order: nothing ran side by side
        assert humans(state) == ["first", "second"]
        assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai"] * 2


async def test_a_lease_of_a_dead_instance_expires_and_is_never_taken_back(
    dynamodb_endpoint: str,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from graphyard.server._dynamodb import DynamoDBThreads

    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=dynamodb_endpoint)
    pool = ThreadPoolExecutor(2)

    async def run(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    leases = DynamoDBThreads(client, "checkpoints-threads", run, seconds=0.3)
    await leases.setup()
    assert await leases.acquire("t", "dead/r1")
    assert not await leases.acquire("t", "live/r2")  # held
    assert await leases.renew("t", "dead/r1")
    await asyncio.sleep(0.4)  # the holder stopped heartbeating
    assert await leases.acquire("t", "live/r2")
    assert not await leases.renew("t", "dead/r1")  # the old holder learns it lost it
    await leases.release("t", "dead/r1")  # ...and cannot delete the new holder's lease
    assert not await leases.acquire("t", "other/r3")
    await leases.release("t", "live/r2")
    assert await leases.acquire("t", "other/r3")
    pool.shutdown()


async def test_every_instance_lists_all_of_a_users_threads_and_only_hers(
    dynamodb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {"sk-alice": "alice", "sk-bob": "bob"}
    settings = settings_for(dynamodb_url, tmp_path).model_copy(update={"api_keys": keys})
    alice = {"x-api-key": "sk-alice"}
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(instance(settings, tmp_path / "a", monkeypatch))
        b = await stack.enter_async_context(instance(settings, tmp_path / "b", monkeypatch))

        made = await a.post("/threads", json={"metadata": {"title": "refund"}}, headers=alice)
        assert made.status_code == 200, made.text
        first = made.json()["thread_id"]
        await asyncio.sleep(0.01)
        turn = await b.post("/chat/t-b", json={"content": "hello"}, headers=alice)
        assert turn.status_code == 200, turn.text
        renamed = await b.patch(
            f"/threads/{first}", json={"metadata": {"title": "refund A1001"}}, headers=alice
        )
        assert renamed.status_code == 200, renamed.text

        for client in (a, b):  # whichever instance answers, the same list, newest first
            found = await client.post("/threads/search", json={}, headers=alice)
            assert found.status_code == 200, found.text
            assert [t["thread_id"] for t in found.json()] == ["t-b", first]
            assert found.json()[1]["metadata"]["title"] == "refund A1001"
            count = await client.post("/threads/count", json={}, headers=alice)
            assert count.json() == 2
            titled = await client.post(
                "/threads/search", json={"metadata": {"title": "refund A1001"}}, headers=alice
            )
            assert [t["thread_id"] for t in titled.json()] == [first]
            bobs = await client.post("/threads/search", json={}, headers={"x-api-key": "sk-bob"})
            assert bobs.json() == []

        gone = await a.delete("/threads/t-b", headers=alice)
        assert gone.status_code in (200, 204), gone.text
        left = await b.post("/threads/search", json={}, headers=alice)
        assert [t["thread_id"] for t in left.json()] == [first]
