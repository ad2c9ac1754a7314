"""Budgets on a real server: uvicorn in a subprocess, the reference agent, scripted models
priced at $0.01 per output token (``GRAPHYARD_PRICES``), so each answer's cost is known.

The scripted answer to the n-th message, "Answer n: I have read n of your messages.", is 9
output tokens: $0.09. Prompt tokens are free here, so a budget stops a run only while it
streams, which is the hard case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from scripted_server import ServerProcess, expected_answer, read_stream
from sdk_server import Frame, frames

pytestmark = pytest.mark.server

PRICES = json.dumps(
    {f"scripted:{tier}": {"input": 0, "output": 10_000} for tier in ("cheap", "mid", "strong")}
)
ANSWER_USD = 0.09


def server(directory: Path, **env: str) -> ServerProcess:
    return ServerProcess(directory, env={"GRAPHYARD_PRICES": PRICES, **env})


def stream_run(client: httpx.Client, thread_id: str, run_input: Any) -> list[Frame]:
    body = {
        "assistant_id": "support",
        "input": run_input,
        "stream_mode": ["messages-tuple", "values"],
    }
    with client.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        assert response.status_code == 200, response.read()
        return list(frames(response.iter_lines()))


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def tokens(events: list[Frame]) -> str:
    return "".join(
        f.data[0]["content"]
        for f in events
        if f.event == "messages" and f.data[0].get("type") == "AIMessageChunk"
    )


def history(client: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    response = client.post(f"/threads/{thread_id}/history", json={"limit": 1000})
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def test_budget_exhaustion_mid_stream_stops_the_run_and_the_thread_finishes_once_raised(
    tmp_path: Path,
) -> None:
    # the first answer ($0.09) fits the thread's $0.12; the second stops after ~$0.03
    first = server(tmp_path / "srv", GRAPHYARD_BUDGET_THREAD_USD="0.12").start()
    try:
        with first.client() as client:
            thread_id = client.post("/threads", json={}).json()["thread_id"]
            done = stream_run(client, thread_id, human("hello"))
            assert not [f for f in done if f.event == "error"]
            before_state = client.get(f"/threads/{thread_id}/state").json()
            before_history = history(client, thread_id)

            stopped = stream_run(client, thread_id, human("and again"))
            [error] = [f for f in stopped if f.event == "error"]
            assert stopped[-1].event == "end"
            after_state = client.get(f"/threads/{thread_id}/state").json()
            after_history = history(client, thread_id)
            [run] = [
                r
                for r in client.get(f"/threads/{thread_id}/runs").json()
                if r["status"] != "success"
            ]
            thread = client.get(f"/threads/{thread_id}").json()
    finally:
        first.stop()

    assert error.data["error"] == "budget_exceeded"
    assert error.data["budget"] == "thread"
    assert error.data["limit_usd"] == 0.12
    assert error.data["spent_usd"] > 0.12
    assert "per-thread budget of $0.1200" in error.data["message"]
    assert "GRAPHYARD_BUDGET_THREAD_USD" in error.data["message"]
    assert run["status"] == "error" and thread["status"] == "error"
    # it stopped part-way through the answer...
    full = expected_answer(2)
    assert tokens(stopped) and full.startswith(tokens(stopped)) and tokens(stopped) != full
    # ...and nothing stored was lost: every earlier checkpoint is still there, unchanged,
    # and the state holds the new question but no half answer
    assert after_history[-len(before_history) :] == before_history
    before_msgs = before_state["values"]["messages"]
    after_msgs = after_state["values"]["messages"]
    assert after_msgs[: len(before_msgs)] == before_msgs
    assert [(m["type"], m["content"]) for m in after_msgs[len(before_msgs) :]] == [
        ("human", "and again")
    ]
    assert after_state["next"] == ["planner"]

    # the operator raises the budget and restarts; the same thread resumes where it stopped
    raised = server(tmp_path / "srv", GRAPHYARD_BUDGET_THREAD_USD="1.00").start()
    try:
        with raised.client() as client:
            resumed = stream_run(client, thread_id, None)
            final = client.get(f"/threads/{thread_id}/state").json()
            cost = client.get(f"/threads/{thread_id}/cost").json()
            runs = client.get(f"/threads/{thread_id}/runs").json()
    finally:
        raised.kill()
    assert not [f for f in resumed if f.event == "error"]
    assert tokens(resumed) == full
    final_msgs = final["values"]["messages"]
    assert final_msgs[: len(after_msgs)] == after_msgs
    assert (final_msgs[-1]["type"], final_msgs[-1]["content"]) == ("ai", full)
    assert final["next"] == []
    assert sorted(r["status"] for r in runs) == ["error", "success", "success"]
    # the cost route counts all three runs, the cut one at what it streamed
    assert cost["totals"]["calls"] == 3
    assert len(cost["by_run"]) == 3
    stopped_cost = cost["by_run"][run["run_id"]]["cost_usd"]
    assert 0 < stopped_cost < ANSWER_USD
    assert cost["totals"]["cost_usd"] == pytest.approx(2 * ANSWER_USD + stopped_cost)


def test_the_per_user_daily_budget_spans_the_users_threads_and_spares_other_users(
    tmp_path: Path,
) -> None:
    keys = json.dumps({"sk-alice": "alice", "sk-bob": "bob"})
    srv = server(
        tmp_path / "srv", GRAPHYARD_API_KEYS=keys, GRAPHYARD_BUDGET_USER_DAY_USD="0.12"
    ).start()
    try:
        with srv.client() as alice, srv.client() as bob:
            alice.headers["x-api-key"] = "sk-alice"
            bob.headers["x-api-key"] = "sk-bob"
            # distinct questions: an answer served from graphyard's cache costs nothing
            first = read_stream(alice, "alice-1", {"content": "where is my order?"})
            second = read_stream(alice, "alice-2", {"content": "how do refunds work?"})
            other = read_stream(bob, "bob-1", {"content": "can I change my address?"})
            refused = read_stream(alice, "alice-3", {"content": "what are your hours?"})
            alice_cost = alice.get("/threads/alice-2/cost").json()
    finally:
        srv.kill()
    assert first.tokens == expected_answer(1)
    assert second.first("error")["error"]["code"] == "budget_exceeded"
    assert "per-user daily budget of $0.1200" in second.first("error")["error"]["message"]
    assert second.tokens and second.tokens != expected_answer(1)
    assert other.tokens == expected_answer(1)  # bob's day is his own
    # once the day's budget is spent, the next thread is refused before the model streams
    assert refused.first("error")["error"]["code"] == "budget_exceeded"
    assert refused.tokens == ""
    assert 0 < alice_cost["totals"]["cost_usd"] < ANSWER_USD


def test_a_per_run_budget_cuts_each_run_but_not_the_thread(tmp_path: Path) -> None:
    srv = server(tmp_path / "srv", GRAPHYARD_BUDGET_RUN_USD="0.12").start()
    try:
        with srv.client() as client:
            thread_id = client.post("/threads", json={}).json()["thread_id"]
            turns = [stream_run(client, thread_id, human(f"question {i}")) for i in range(3)]
            cost = client.get(f"/threads/{thread_id}/cost").json()
    finally:
        srv.kill()
    # each run spends $0.09 of its own $0.12: three runs ($0.27) all finish
    assert all(not [f for f in t if f.event == "error"] for t in turns)
    assert cost["totals"]["cost_usd"] == pytest.approx(3 * ANSWER_USD)
