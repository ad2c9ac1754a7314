"""``GET /threads/{id}/cost`` on a real server (uvicorn subprocess, scripted models priced
through ``GRAPHYARD_PRICES``), on SQLite and Postgres, checked against ``call_cost`` of the
usage the scripted model reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from scripted_server import ServerProcess, read_stream

from graphyard.config import ModelPrice
from graphyard.models import call_cost

pytestmark = pytest.mark.server

PRICES = {
    f"scripted:{tier}": {"input": 3.0, "output": 15.0, "cache_read": 0.3}
    for tier in ("cheap", "mid", "strong")
}
KEYS = {"sk-alice": "alice", "sk-bob": "bob"}


def expected_cost(values: dict[str, Any]) -> tuple[float, int, int, int]:
    """Dollars, calls, input and output tokens from the usage on the thread's AI answers."""
    prices = {k: ModelPrice(**v) for k, v in PRICES.items()}
    usages = [
        m["usage_metadata"]
        for m in values["messages"]
        if m["type"] == "ai" and m.get("usage_metadata")
    ]
    return (
        sum(call_cost("scripted:mid", u, prices) for u in usages),
        len(usages),
        sum(u["input_tokens"] for u in usages),
        sum(u["output_tokens"] for u in usages),
    )


def run_wait(client: httpx.Client, thread_id: str, text: str) -> dict[str, Any]:
    response = client.post(
        f"/threads/{thread_id}/runs/wait",
        json={
            "assistant_id": "support",
            "input": {"messages": [{"role": "user", "content": text}]},
        },
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def check_cost_matches_the_thread(client: httpx.Client, thread_id: str) -> dict[str, Any]:
    values = client.get(f"/threads/{thread_id}/state").json()["values"]
    cost = client.get(f"/threads/{thread_id}/cost").json()
    dollars, calls, tokens_in, tokens_out = expected_cost(values)
    assert calls > 0 and dollars > 0
    totals = cost["totals"]
    assert totals["calls"] == calls
    assert (totals["input_tokens"], totals["output_tokens"]) == (tokens_in, tokens_out)
    assert totals["cost_usd"] == pytest.approx(dollars, rel=1e-9)
    # the agent's own running total agrees with the ledger
    assert values["cost_usd"] == pytest.approx(dollars, rel=1e-9)
    for breakdown in ("by_run", "by_tier", "by_model"):
        parts = cost[breakdown].values()
        assert sum(p["cost_usd"] for p in parts) == pytest.approx(dollars, rel=1e-9)
        assert sum(p["calls"] for p in parts) == calls
    assert set(cost["by_model"]) == {f"scripted:{t}" for t in cost["by_tier"]}
    runs = {r["run_id"] for r in client.get(f"/threads/{thread_id}/runs").json()}
    assert set(cost["by_run"]) == runs
    return cost  # type: ignore[no-any-return]


def test_thread_cost_equals_call_cost_of_the_scripted_usage_by_run_tier_and_model(
    tmp_path: Path,
) -> None:
    srv = ServerProcess(tmp_path / "srv", env={"GRAPHYARD_PRICES": json.dumps(PRICES)}).start()
    try:
        with srv.client() as client:
            thread_id = client.post("/threads", json={}).json()["thread_id"]
            run_wait(client, thread_id, "where is my order?")
            chat = read_stream(client, thread_id, {"content": "and how do refunds work?"})
            run_wait(client, thread_id, "please summarise what we said")
            cost = check_cost_matches_the_thread(client, thread_id)
            empty = client.post("/threads", json={}).json()["thread_id"]
            nothing = client.get(f"/threads/{empty}/cost").json()
    finally:
        srv.kill()
    assert len(cost["by_run"]) == 3
    # the chat endpoint's per-turn figure is the ledger's figure for that run
    chat_run = list(cost["by_run"].values())[1]
    assert chat.summary["cost_usd"] == pytest.approx(chat_run["cost_usd"], rel=1e-9)
    assert nothing["totals"]["calls"] == 0 and nothing["by_run"] == {}


def test_another_users_thread_cost_is_a_404_exactly_like_a_missing_thread(tmp_path: Path) -> None:
    srv = ServerProcess(
        tmp_path / "srv",
        env={"GRAPHYARD_PRICES": json.dumps(PRICES), "GRAPHYARD_API_KEYS": json.dumps(KEYS)},
    ).start()
    try:
        with srv.client() as alice, srv.client() as bob, srv.client() as anonymous:
            alice.headers["x-api-key"] = "sk-alice"
            bob.headers["x-api-key"] = "sk-bob"
            thread_id = alice.post("/threads", json={}).json()["thread_id"]
            run_wait(alice, thread_id, "where is my order?")
            mine = alice.get(f"/threads/{thread_id}/cost")
            theirs = bob.get(f"/threads/{thread_id}/cost")
            missing = bob.get("/threads/no-such-thread/cost")
            no_key = anonymous.get(f"/threads/{thread_id}/cost")
            bad_id = alice.get("/threads/bad%20id!/cost")
    finally:
        srv.kill()
    assert mine.status_code == 200 and mine.json()["totals"]["calls"] >= 1
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"] == missing.json()["error"] == "not_found"
    assert theirs.json()["message"].replace(thread_id, "X") == missing.json()["message"].replace(
        "no-such-thread", "X"
    )
    assert no_key.status_code == 401
    assert bad_id.status_code == 422 and bad_id.json()["error"] == "invalid_request"


@pytest.mark.postgres
def test_on_postgres_the_ledger_rows_live_in_the_checkpoint_database(
    tmp_path: Path, postgres_url: str
) -> None:
    import psycopg

    srv = ServerProcess(
        tmp_path / "srv",
        env={"GRAPHYARD_PRICES": json.dumps(PRICES), "GRAPHYARD_CHECKPOINTER": postgres_url},
    ).start()
    try:
        with srv.client() as client:
            thread_id = client.post("/threads", json={}).json()["thread_id"]
            run_wait(client, thread_id, "where is my order?")
            run_wait(client, thread_id, "and my refund?")
            cost = check_cost_matches_the_thread(client, thread_id)
    finally:
        srv.kill()
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT run_id, tier, model, node, input_tokens, output_tokens, cost_usd, status"
            " FROM graphyard_ledger WHERE thread_id = %s ORDER BY started_at",
            (thread_id,),
        ).fetchall()
        runs = conn.execute(
            "SELECT run_id FROM graphyard_runs WHERE thread_id = %s", (thread_id,)
        ).fetchall()
    assert len(rows) == cost["totals"]["calls"] == 2
    assert {r[0] for r in rows} == set(cost["by_run"])
    assert all(r[3] == "planner" and r[7] == "ok" for r in rows)
    assert sum(r[6] for r in rows) == pytest.approx(cost["totals"]["cost_usd"])
    # the thread and run records are in Postgres too: no SQLite side file beside the server
    assert {r[0] for r in runs} == set(cost["by_run"])
    assert not (tmp_path / "srv" / "graphyard-server.db").exists()
