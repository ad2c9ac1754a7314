"""The ledger and the budget checks never block the event loop: the app runs in-process
under blockbuster, with every budget set (so each model call queries the ledger) and priced
models (so each call is costed and written)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from blockbuster import BlockBuster
from scripted_server import iter_sse, scripted_app

from graphyard.config import ModelPrice, Settings


@pytest.fixture
async def client(settings: Settings, no_blocking: BlockBuster) -> AsyncIterator[httpx.AsyncClient]:
    priced = settings.model_copy(
        update={
            "prices": {
                f"scripted:{t}": ModelPrice(input=0, output=10_000)
                for t in ("cheap", "mid", "strong")
            },
            "budget_run_usd": 0.5,
            "budget_thread_usd": 0.15,
            "budget_user_day_usd": 5.0,
        }
    )
    no_blocking.deactivate()  # startup has its own test (test_event_loop.py)
    app = scripted_app(priced)
    async with app.router.lifespan_context(app):
        no_blocking.activate()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://graphyard") as client:
            yield client
        no_blocking.deactivate()  # shutdown flushes and closes: not the request path


async def chat(client: httpx.AsyncClient, thread_id: str, text: str) -> list[Any]:
    response = await client.post(f"/chat/{thread_id}", json={"content": text})
    assert response.status_code == 200, response.text
    return [item for kind, item in iter_sse(response) if kind == "data"]


async def test_costing_recording_and_stopping_runs_never_block_the_event_loop(
    client: httpx.AsyncClient,
) -> None:
    first = await chat(client, "t1", "where is my order?")
    assert not [f for f in first if isinstance(f, dict) and "error" in f]
    second = await chat(client, "t1", "and how do refunds work?")
    [error] = [f["error"] for f in second if isinstance(f, dict) and "error" in f]
    assert error["code"] == "budget_exceeded"
    cost = (await client.get("/threads/t1/cost")).json()
    assert cost["totals"]["calls"] == 2
    assert 0.15 < cost["totals"]["cost_usd"] < 0.2
    assert json.dumps(cost)  # plain JSON
