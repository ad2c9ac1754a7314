"""The server path never blocks the event loop: the app runs in-process under blockbuster.

The app's own lifespan opens the runtime (``app.router.lifespan_context``) and requests go
through ``httpx.ASGITransport``, so the checks see every call made on the loop's thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from blockbuster import BlockBuster
from scripted_server import expected_answer, iter_sse, scripted_app

from graphyard.config import Settings

TICKET_REQUEST = "I want to speak to a human about order A1003"


async def chat(client: httpx.AsyncClient, thread_id: str, body: Any) -> list[Any]:
    response = await client.post(f"/chat/{thread_id}", json=body)
    assert response.status_code == 200, response.text
    return [item for kind, item in iter_sse(response) if kind == "data"]


def tokens(frames: list[Any]) -> str:
    return "".join(f["token"] for f in frames if isinstance(f, dict) and "token" in f)


def errors(frames: list[Any]) -> list[Any]:
    return [f["error"] for f in frames if isinstance(f, dict) and "error" in f]


@pytest.fixture
async def client(settings: Settings, no_blocking: BlockBuster) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a running app; blockbuster watches from the first request on.

    Startup is left out here: it has a known blocking call of its own, pinned by
    ``test_server_startup_does_not_block_the_event_loop``.
    """
    app = scripted_app(settings)
    no_blocking.deactivate()
    async with app.router.lifespan_context(app):
        no_blocking.activate()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://graphyard") as client:
            yield client


async def test_a_chat_turn_does_not_block_the_event_loop(client: httpx.AsyncClient) -> None:
    frames = await chat(client, "t1", {"content": "hello"})
    assert errors(frames) == []
    assert tokens(frames) == expected_answer(1)
    second = await chat(client, "t1", {"content": "hello again"})
    assert tokens(second) == expected_answer(2)
    state = await client.get("/threads/t1/state")
    assert len(state.json()["values"]["messages"]) == 4


async def test_an_approval_and_its_tools_do_not_block_the_event_loop(
    client: httpx.AsyncClient,
) -> None:
    asked = await chat(client, "t1", {"content": TICKET_REQUEST})
    assert errors(asked) == []
    assert any(isinstance(f, dict) and "interrupt" in f for f in asked)
    resumed = await chat(client, "t1", {"resume": {"action": "approve"}})
    assert errors(resumed) == []
    assert tokens(resumed) == expected_answer(1)


async def test_a_help_question_does_not_block_the_event_loop(client: httpx.AsyncClient) -> None:
    frames = await chat(client, "t1", {"content": "What is your refund policy?"})
    assert errors(frames) == []
    assert tokens(frames) == expected_answer(1)


async def test_server_startup_does_not_block_the_event_loop(
    settings: Settings, no_blocking: BlockBuster
) -> None:
    app = scripted_app(settings)
    async with app.router.lifespan_context(app):
        pass
