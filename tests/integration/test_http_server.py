"""The HTTP server as a client sees it: real uvicorn in a subprocess, real SQLite, scripted models.

A server is killed or restarted where a test needs it; otherwise tests share one server per
module and keep apart by thread id.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from scripted_server import ServerProcess, expected_answer, iter_sse, read_stream

pytestmark = pytest.mark.server

TICKET_REQUEST = "I want to speak to a human about order A1003"


def state_of(client: httpx.Client, thread_id: str) -> dict[str, Any]:
    response = client.get(f"/threads/{thread_id}/state")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def conversation(state: dict[str, Any]) -> list[tuple[str, str]]:
    """The thread's human and final AI messages as ``(type, text)``, tool traffic left out."""
    return [
        (m["type"], m["content"])
        for m in state["values"]["messages"]
        if m["type"] == "human" or (m["type"] == "ai" and not m.get("tool_calls"))
    ]


def tickets(server: ServerProcess) -> list[dict[str, Any]]:
    """Tickets in the server's demo shop (read directly: it is the outcome a user cares about)."""
    path = server.directory / "shop.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM tickets ORDER BY id")]
        except sqlite3.OperationalError:  # the shop is being seeded right now
            return []


def wait_for(predicate: Callable[[], bool], what: str, *, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


# --- streaming ----------------------------------------------------------------------


def test_chat_streams_router_tier_nodes_tokens_and_a_usage_summary_then_done(
    fast_server: ServerProcess,
) -> None:
    with fast_server.client() as client:
        stream = read_stream(client, "stream-1", {"content": "hello"})

    assert stream.status == 200
    assert stream.content_type.startswith("text/event-stream")
    assert stream.frames[0] == {"node": "router"}
    nodes = [f["node"] for f in stream.frames if isinstance(f, dict) and "node" in f]
    assert nodes == ["router", "trim", "planner", "critic"]
    kinds = [next(iter(f)) if isinstance(f, dict) else f for f in stream.frames]
    assert kinds.index("tier") < kinds.index("token")
    assert stream.frames.index({"node": "planner"}) < kinds.index("token")
    assert stream.tokens == expected_answer(1)

    summary = stream.summary
    assert set(summary) == {"tier", "cost_usd", "thread_cost_usd", "usage"}
    assert summary["tier"] == stream.first("tier")["tier"]
    assert summary["usage"]["input_tokens"] > 0
    assert summary["usage"]["output_tokens"] > 0
    assert summary["usage"]["calls"] == 1
    assert summary["cost_usd"] == summary["thread_cost_usd"] == 0.0  # scripted models are free
    assert stream.frames.count("[DONE]") == 1

    with fast_server.client() as client:
        assert conversation(state_of(client, "stream-1")) == [
            ("human", "hello"),
            ("ai", stream.tokens),
        ]


# --- restarts -----------------------------------------------------------------------


@pytest.mark.parametrize("end", ["stop", "kill"], ids=["sigterm", "sigkill"])
def test_a_completed_turn_survives_a_restart_and_the_next_prompt_includes_it(
    start_server: Callable[..., ServerProcess], end: str
) -> None:
    server = start_server()
    with server.client() as client:
        first = read_stream(client, "t1", {"content": "first message"})
    assert first.tokens == expected_answer(1)

    getattr(server, end)()  # SIGTERM (graceful) or SIGKILL (crash) right after the turn
    server.start()

    with server.client() as client:
        second = read_stream(client, "t1", {"content": "second message"})
        state = state_of(client, "t1")

    assert second.tokens == expected_answer(2)  # the model's prompt held the first turn
    assert conversation(state) == [
        ("human", "first message"),
        ("ai", expected_answer(1)),
        ("human", "second message"),
        ("ai", expected_answer(2)),
    ]
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai", "human", "ai"]
    assert second.summary["usage"]["calls"] == 1  # this turn's usage, not the thread's
    assert state["values"]["usage"]["calls"] == 2


def test_a_run_cut_off_by_kill_9_does_not_lock_the_thread_after_a_restart(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(delay=0.2)
    with (
        server.client() as client,
        client.stream("POST", "/chat/t1", json={"content": "cut off"}) as response,
    ):
        next(item for kind, item in iter_sse(response) if kind == "data" and "token" in item)
        server.kill()  # mid-answer: the run's lease and lock die with the process

    server.start()
    with server.client() as client:
        retry = read_stream(client, "t1", {"content": "are you there?"})
        assert retry.status == 200, retry.error
        assert retry.tokens == expected_answer(2)
        assert conversation(state_of(client, "t1")) == [
            ("human", "cut off"),  # kept, though its answer was lost with the process
            ("human", "are you there?"),
            ("ai", expected_answer(2)),
        ]


# --- bad input ----------------------------------------------------------------------


def test_bad_requests_get_json_errors_and_change_nothing_stored(
    fast_server: ServerProcess,
) -> None:
    with fast_server.client() as client:
        assert read_stream(client, "bad-input", {"content": "hello"}).status == 200
        before = state_of(client, "bad-input")

        def post(thread: str, **kwargs: Any) -> httpx.Response:
            return client.post(f"/chat/{thread}", **kwargs)

        for thread in ("bad-input", "bad-input-new"):
            malformed = post(
                thread, content=b'{"content": "hi"', headers={"content-type": "application/json"}
            )
            assert malformed.status_code == 400
            assert malformed.json()["error"] == "malformed_json"
            assert malformed.json()["message"]

            for body in (
                {},  # neither content nor resume
                {"tier": "mid"},
                {"content": "hi", "resume": {"action": "approve"}},
                {"content": ""},
                {"content": "hi", "tier": "ultra"},
                {"content": "hi", "unknown": 1},
                {"content": 42},
                ["hi"],
            ):
                response = post(thread, json=body)
                assert response.status_code == 422, (body, response.text)
                assert response.headers["content-type"] == "application/json"
                assert response.json()["error"] == "invalid_request", body
                assert response.json()["detail"], body

        for bad_id in ("bad%20id", "a%2Fb", "semi%3Bcolon", "x" * 257, "..%2F..%2Fetc"):
            for response in (
                post(bad_id, json={"content": "hi"}),
                client.get(f"/threads/{bad_id}/state"),
            ):
                assert response.status_code in (404, 422), (bad_id, response.text)
                assert response.json()["error"] in ("not_found", "invalid_request")

        missing = client.get("/threads/never-used/state")
        assert missing.status_code == 404
        assert missing.json()["error"] == "not_found"
        assert "never-used" in missing.json()["message"]

        unknown = client.get("/no/such/route")
        assert unknown.status_code == 404
        assert unknown.json()["error"] == "not_found"
        wrong_method = client.get("/chat/bad-input")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"] == "method_not_allowed"

        assert state_of(client, "bad-input") == before
        assert client.get("/threads/bad-input-new/state").status_code == 404


# --- approvals ----------------------------------------------------------------------


def test_a_ticket_waits_for_approval_then_the_resume_streams_the_answer(
    fast_server: ServerProcess,
) -> None:
    with fast_server.client() as client:
        asked = read_stream(client, "approval", {"content": TICKET_REQUEST})
        assert asked.status == 200
        [interrupt] = asked.first("interrupt")["interrupt"]
        assert interrupt["value"]["type"] == "approval"
        assert interrupt["value"]["tool"] == "create_ticket"
        assert interrupt["value"]["args"]["order_id"] == "A1003"
        assert asked.tokens == ""  # no answer yet: the run is waiting
        assert asked.frames[-1] == "[DONE]"

        pending = state_of(client, "approval")
        assert [i["id"] for i in pending["interrupts"]] == [interrupt["id"]]
        assert pending["next"] == ["executor"]
        assert not [t for t in tickets(fast_server) if t["order_id"] == "A1003"]

        blocked = client.post("/chat/approval", json={"content": "hello?"})
        assert blocked.status_code == 409
        assert blocked.json()["error"] == "approval_pending"
        assert state_of(client, "approval") == pending

        resumed = read_stream(client, "approval", {"resume": {"action": "approve"}})
        assert resumed.status == 200
        assert resumed.frames[0] == {"node": "executor"}
        assert not [f for f in resumed.frames if isinstance(f, dict) and "interrupt" in f]
        assert resumed.tokens == expected_answer(1)
        assert resumed.frames[-1] == "[DONE]"

        done = state_of(client, "approval")
        assert done["interrupts"] == []
        assert done["values"]["messages"][-1]["content"] == expected_answer(1)
        tool_results = [m["content"] for m in done["values"]["messages"] if m["type"] == "tool"]
        assert any(r.startswith("Ticket #") for r in tool_results), tool_results
        assert [t["order_id"] for t in tickets(fast_server)].count("A1003") == 1

        again = client.post("/chat/approval", json={"resume": {"action": "approve"}})
        assert again.status_code == 409
        assert again.json()["error"] == "nothing_to_resume"
        assert state_of(client, "approval") == done


def test_a_refused_resume_on_an_unknown_thread_leaves_it_unknown(
    fast_server: ServerProcess,
) -> None:
    with fast_server.client() as client:
        fresh = client.post("/chat/never-asked", json={"resume": {"action": "approve"}})
        assert fresh.status_code == 409
        assert fresh.json()["error"] == "nothing_to_resume"
        assert client.get("/threads/never-asked/state").status_code == 404


def test_a_pending_approval_survives_a_server_restart(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    with server.client() as client:
        asked = read_stream(client, "t-restart", {"content": TICKET_REQUEST})
    [interrupt] = asked.first("interrupt")["interrupt"]

    server.restart()

    with server.client() as client:
        assert [i["id"] for i in state_of(client, "t-restart")["interrupts"]] == [interrupt["id"]]
        resumed = read_stream(client, "t-restart", {"resume": {"action": "approve"}})
        assert resumed.tokens == expected_answer(1)
        assert state_of(client, "t-restart")["interrupts"] == []
    assert [t["order_id"] for t in tickets(server)] == ["A1003"]


# --- concurrency --------------------------------------------------------------------


def test_a_busy_thread_refuses_a_second_run_while_other_threads_proceed(
    slow_server: ServerProcess,
) -> None:
    with slow_server.client() as client, slow_server.client() as other:
        with client.stream("POST", "/chat/busy", json={"content": "slow one"}) as response:
            assert response.status_code == 200
            events = iter_sse(response)
            first = next(item for kind, item in events if kind == "data" and "token" in item)

            refused = other.post("/chat/busy", json={"content": "me too"})
            assert refused.status_code == 409
            assert refused.json()["error"] == "thread_busy"

            elsewhere = read_stream(other, "not-busy", {"content": "meanwhile"})
            assert elsewhere.tokens == expected_answer(1)

            rest = [item for kind, item in events if kind == "data"]
        tokens = first["token"] + "".join(f["token"] for f in rest if "token" in f)
        assert tokens == expected_answer(1)
        assert rest[-1] == "[DONE]"

        # the run is over, so the thread takes the next message
        assert read_stream(client, "busy", {"content": "next"}).tokens == expected_answer(2)
        assert [t for t, _ in conversation(state_of(client, "busy"))] == ["human", "ai"] * 2


def test_a_client_that_disconnects_mid_stream_does_not_cancel_the_run(
    slow_server: ServerProcess,
) -> None:
    with slow_server.client() as client:
        with client.stream("POST", "/chat/dropped", json={"content": "bye"}) as response:
            assert response.status_code == 200
            next(item for kind, item in iter_sse(response) if kind == "data" and "token" in item)
        # the connection is closed here, with most of the answer still to come
        assert conversation(state_of(client, "dropped")) == [("human", "bye")]

        wait_for(lambda: len(conversation(state_of(client, "dropped"))) == 2, "the answer is saved")
        assert conversation(state_of(client, "dropped"))[-1] == ("ai", expected_answer(1))
        assert read_stream(client, "dropped", {"content": "back"}).tokens == expected_answer(2)


# --- heartbeat ----------------------------------------------------------------------


def test_a_silent_run_keeps_the_connection_alive_with_heartbeat_comments(
    start_server: Callable[..., ServerProcess],
) -> None:
    # The first token comes after 8 s and a heartbeat is due at 5; we hang up at the heartbeat.
    server = start_server(delay=8.0, response="Done.")
    seen: list[str] = []
    with (
        server.client() as client,
        client.stream("POST", "/chat/quiet", json={"content": "hello"}) as response,
    ):
        for line in response.iter_lines():
            seen.append(line)
            if line.startswith(":") or '"token"' in line:
                break
    assert seen[-1] == ": heartbeat", seen
    # the run goes on after we hang up; the fixture kills the server


# --- meta ---------------------------------------------------------------------------


def test_meta_endpoints_docs_and_openapi_answer(fast_server: ServerProcess) -> None:
    with fast_server.client() as client:
        ok = client.get("/ok")
        assert ok.status_code == 200
        assert ok.json() == {"ok": True}

        info = client.get("/info")
        assert info.status_code == 200
        assert info.json()["graph_id"] == "support"
        assert {name: t["model"] for name, t in info.json()["tiers"].items()} == {
            "cheap": "scripted:cheap",
            "mid": "scripted:mid",
            "strong": "scripted:strong",
        }

        docs = client.get("/docs")
        assert docs.status_code == 200
        assert "text/html" in docs.headers["content-type"]

        openapi = client.get("/openapi.json")
        assert openapi.status_code == 200
        paths = openapi.json()["paths"]
        assert "post" in paths["/chat/{thread_id}"]
        assert "get" in paths["/threads/{thread_id}/state"]
