"""A server whose thread records are gone while the checkpoints remain (DynamoDB keeps the
records in each process's own ``./graphyard-server.db``, and a new Lambda instance starts
with an empty ``/tmp``) must still know whose each thread is: it reads the owner from the
thread's checkpoints. Before, with auth on, the first user to name the thread on ``/chat``
was given it, with its owner's whole conversation in the model's context."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from graphyard.config import TIERS, Settings, TierConfig
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

KEYS = {"sk-alice": "alice", "sk-bob": "bob"}


async def test_a_thread_whose_record_is_lost_stays_its_owners(
    settings: Settings, tmp_path: Path
) -> None:
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    settings = settings.model_copy(update={**tiers, "api_keys": KEYS})
    model = ScriptedChatModel(responses=["Your order A1001 ships Friday."] * 5)
    app = create_app(settings, models=dict.fromkeys(TIERS, model))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(
                transport=transport, base_url="http://g", headers={"x-api-key": "sk-alice"}
            ) as alice,
            httpx.AsyncClient(
                transport=transport, base_url="http://g", headers={"x-api-key": "sk-bob"}
            ) as bob,
        ):
            turn = await alice.post("/chat/t-1", json={"content": "my email is al@x.org"})
            assert turn.status_code == 200, turn.text

            def lose_the_records() -> None:  # the checkpoints stay (a new Lambda instance)
                db = sqlite3.connect(settings.checkpointer.removeprefix("sqlite:///"))
                with db:
                    db.execute("DELETE FROM graphyard_runs")
                    db.execute("DELETE FROM graphyard_threads")
                db.close()

            # every way bob could name the thread first, each on a server with no record
            attempts = [
                ("POST", "/chat/t-1", {"content": "what is my email?"}, 404),
                ("GET", "/threads/t-1/state", None, 404),
                ("GET", "/threads/t-1", None, 404),
                ("POST", "/threads", {"thread_id": "t-1"}, 409),
                ("POST", "/threads", {"thread_id": "t-1", "if_exists": "do_nothing"}, 409),
                (
                    "POST",
                    "/threads/t-1/runs/wait",
                    {"assistant_id": "support", "input": None, "if_not_exists": "create"},
                    404,
                ),
            ]
            # the latest checkpoint is alice's state update, not a run: it names her too
            update = await alice.post(
                "/threads/t-1/state", json={"values": {"messages": []}, "as_node": "critic"}
            )
            assert update.status_code == 200, update.text
            for method, path, body, expected in attempts:
                lose_the_records()
                answer = await bob.request(method, path, json=body)
                assert answer.status_code == expected, (method, path, answer.text)
            lose_the_records()
            mine = await alice.post(
                "/threads", json={"thread_id": "t-1", "if_exists": "do_nothing"}
            )
            assert mine.status_code == 200, mine.text

            again = await alice.post("/chat/t-1", json={"content": "thanks"})
            assert again.status_code == 200, again.text
            state = (await alice.get("/threads/t-1/state")).json()
            humans = [m["content"] for m in state["values"]["messages"] if m["type"] == "human"]
            assert humans == ["my email is al@x.org", "thanks"]
            assert (await bob.get("/threads/t-1")).status_code == 404
            assert (await alice.get("/threads/t-1")).json()["thread_id"] == "t-1"
