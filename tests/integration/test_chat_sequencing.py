"""A chat client may send its next message as soon as it has read ``[DONE]``.

``[DONE]`` is the client's only signal that the turn is over; if the thread is still
locked by the finished run at that moment, a well-behaved client gets ``409 thread_busy``.
Over HTTP this shows up now and then (about one turn in a hundred on a quiet machine);
slowing down the step that records a run as over makes it deterministic.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from scripted_server import expected_answer, iter_sse, scripted_app

from graphyard.config import Settings
from graphyard.server._store import SqliteServerStore


async def test_the_next_message_right_after_done_is_accepted_when_recording_the_run_is_slow(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish = SqliteServerStore.finish

    async def slow_finish(self: SqliteServerStore, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)  # a busy disk, or a database across the network
        return await finish(self, *args, **kwargs)

    monkeypatch.setattr(SqliteServerStore, "finish", slow_finish)
    app = scripted_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://graphyard") as client:
            first = await client.post("/chat/t1", json={"content": "one"})
            frames = [item for kind, item in iter_sse(first) if kind == "data"]
            assert frames[-1] == "[DONE]"

            second = await client.post("/chat/t1", json={"content": "two"})
            assert second.status_code == 200, second.text
            tokens = [i["token"] for k, i in iter_sse(second) if k == "data" and "token" in i]
            assert "".join(tokens) == expected_answer(2)
