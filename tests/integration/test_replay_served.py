"""Replay of served runs, end to end: real uvicorn, a user graph, scripted models.

The production story: a tool fails in a served run; the engineer replays the failing
checkpoint (the error comes back, and no model is called: the served model counts its
calls in a file); after the tool is fixed (a restart with the fixed code) the same replay
gets past the tool, stops where the recording ends, and with ``live`` completes and shows
what changed. A prompt changed since the recording is reported at the step that asks the
model, with the prompt's diff, from the API and from ``graphyard threads replay``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sdk_server import SdkServer, frames
from test_replay_graph import DEFAULT_PROMPT, TOOL_ERROR
from typer.testing import CliRunner

from graphyard.cli import app

pytestmark = pytest.mark.server

ERROR = f"RuntimeError: {TOOL_ERROR}"


@dataclass
class ReplayServer(SdkServer):
    factory: ClassVar[str] = "test_replay_graph:app_factory"


def ask(http: httpx.Client, text: str) -> tuple[str, dict[str, Any]]:
    """A new thread, one message, run to the end; the thread id and the final values."""
    thread = http.post("/threads", json={}).json()["thread_id"]
    done = http.post(
        f"/threads/{thread}/runs/wait",
        json={
            "assistant_id": "replay_graph",
            "input": {"messages": [{"role": "user", "content": text}]},
        },
    )
    assert done.status_code == 200, done.text
    return thread, done.json()


def replay(http: httpx.Client, thread: str, **body: Any) -> dict[str, list[Any]]:
    """POST /threads/{id}/replay; the SSE events by name."""
    events: dict[str, list[Any]] = {}
    with http.stream("POST", f"/threads/{thread}/replay", json=body) as response:
        assert response.status_code == 200, response.read().decode()
        events["location"] = [response.headers["location"]]
        for frame in frames(response.iter_lines()):
            events.setdefault(frame.event, []).append(frame.data)
    assert "end" in events
    return events


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "server"


def test_a_failing_tool_replays_to_the_same_error_with_no_model_call_and_completes_once_fixed(
    directory: Path,
) -> None:
    server = ReplayServer(directory, env={"REPLAY_TOOL_BROKEN": "1"}).start()
    try:
        with server.client() as http:
            thread, values = ask(http, "Where is my order A1001?")
            assert values["__error__"] == {"error": "RuntimeError", "message": TOOL_ERROR}
            failing = http.get(f"/threads/{thread}/state").json()
            assert failing["next"] == ["tools"]
            checkpoint = failing["checkpoint"]["checkpoint_id"]
            calls_before = server.model_calls()
            assert calls_before == 1

            events = replay(http, thread, checkpoint_id=checkpoint)
            [result] = events["replay/result"]
            assert result["mode"] == "recorded"
            assert result["error"] == ERROR
            assert result["original_error"] == ERROR
            assert result["reproduced"] is True
            assert result["model_calls_live"] == 0
            assert events["error"][0]["error"] == "RuntimeError"
            assert server.model_calls() == calls_before  # no model was asked anything

            # the replay is a run of the thread: listed, and its events can be re-read
            runs = http.get(f"/threads/{thread}/runs").json()
            assert runs[0]["kwargs"]["kind"] == "replay" and runs[0]["status"] == "error"
            [location] = events["location"]
            assert location == f"/threads/{thread}/runs/{runs[0]['run_id']}/stream"
            with http.stream("GET", location, headers={"Last-Event-ID": "2"}) as again:
                rest = list(frames(again.iter_lines()))
            assert rest[0].id == "3" and [f.event for f in rest][-3:] == [
                "replay/result",
                "error",
                "end",
            ]
            assert rest[-3].data == result
    finally:
        server.kill()

    fixed = ReplayServer(directory).start()  # the fix is deployed
    try:
        with fixed.client() as http:
            events = replay(http, thread, checkpoint_id=checkpoint)
            [result] = events["replay/result"]
            # recorded mode stops at the divergence: no model is asked what the recording lacks
            assert result["error"].startswith("ReplayDivergence: step 3, node 'agent'")
            [divergence] = events["replay/divergence"]
            # the tool worked, so the agent's next request is new to the recording
            assert (divergence["step"], divergence["node"]) == (3, "agent")
            assert (
                "+tool(lookup_order): Order A1001 shipped on Monday with UPS." in divergence["diff"]
            )
            assert result["model_calls_live"] == 0
            assert fixed.model_calls() == calls_before  # the calls file is the directory's

            events = replay(http, thread, checkpoint_id=checkpoint, live=True)
            [result] = events["replay/result"]
            assert result["error"] is None and "error" not in events
            assert result["model_calls_live"] == 1 and fixed.model_calls() == calls_before + 1
            assert result["next"] == [] and result["original_next"] == ["tools"]
            [change] = result["diff"]
            assert change["key"] == "messages"
            assert "+tool(lookup_order): Order A1001 shipped on Monday with UPS." in change["diff"]
            assert "+ai: Good news: Order A1001 shipped on Monday with UPS." in change["diff"]

            # the replay went onto a new branch of the same thread; the original is intact
            state = http.get(f"/threads/{thread}/state").json()
            assert state["values"]["messages"][-1]["content"].startswith("Good news")
            original = http.get(f"/threads/{thread}/state/{checkpoint}").json()
            assert original["next"] == ["tools"]
    finally:
        fixed.kill()


def test_a_changed_prompt_is_reported_at_the_step_that_asks_the_model(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ReplayServer(directory).start()
    try:
        with server.client() as http:
            thread, values = ask(http, "Where is my order A1001?")
            assert values["messages"][-1]["content"].startswith("Good news")
            assert server.model_calls() == 2
            # unchanged code: the whole turn replays from the recording, to the same state
            events = replay(http, thread, fork=True)
            [result] = events["replay/result"]
            assert result["model_calls_served"] == 2 and result["model_calls_live"] == 0
            assert result["divergence"] is None and result["error"] is None
            assert result["diff"] == [] and result["thread_id"] != thread
            assert server.model_calls() == 2
    finally:
        server.kill()

    changed = "You are the shop's helper. Never look orders up."
    server = ReplayServer(directory, env={"REPLAY_PROMPT": changed}).start()
    try:
        with server.client() as http:
            events = replay(http, thread)
            [divergence] = events["replay/divergence"]
            assert (divergence["step"], divergence["node"], divergence["seq"]) == (1, "agent", 0)
            assert divergence["reason"] == "the model request differs from the recorded one"
            assert f"-system: {DEFAULT_PROMPT}" in divergence["diff"]
            assert f"+system: {changed}" in divergence["diff"]
            [result] = events["replay/result"]
            assert result["error"].startswith("ReplayDivergence: step 1, node 'agent'")
            assert server.model_calls() == 2  # still only the original run's
    finally:
        server.kill()

    # the same, locally from the command line, on the server's database
    monkeypatch.setenv("GRAPHYARD_CHECKPOINTER", f"sqlite:///{directory / 'graphyard.db'}")
    monkeypatch.setenv("GRAPHYARD_GRAPH", "test_replay_graph:replay_graph")
    monkeypatch.setenv("GRAPHYARD_SHOP_DB", str(directory / "shop.db"))
    monkeypatch.setenv("REPLAY_PROMPT", changed)
    runner = CliRunner()
    out = runner.invoke(app, ["threads", "replay", thread, "--fork", "--json"])
    assert out.exit_code == 1, out.output
    result = json.loads(out.stdout)
    assert result["divergence"]["step"] == 1 and result["model_calls_live"] == 0
    assert f"+system: {changed}" in result["divergence"]["diff"]

    history = runner.invoke(app, ["threads", "history", thread, "--json"])
    assert history.exit_code == 0, history.output
    rows = json.loads(history.stdout)
    ran = [
        (r["step"], r["nodes"], r["model_calls"], r["tool_calls"])
        for r in rows
        if not r["replay_of"]
    ]
    assert ran[:4] == [
        (-1, ["__start__"], 0, 0),
        (0, ["agent"], 1, 0),
        (1, ["tools"], 0, 1),
        (2, ["agent"], 1, 0),
    ]
    assert any(r["replay_of"] for r in rows)  # the earlier replay's branch is listed too

    shown = runner.invoke(
        app, ["threads", "show", thread, "--checkpoint", rows[2]["checkpoint_id"], "--json"]
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["next"] == ["tools"]


def test_deleting_a_thread_deletes_its_recordings(directory: Path) -> None:
    import sqlite3

    server = ReplayServer(directory).start()
    try:
        with server.client() as http:
            thread, _ = ask(http, "Where is my order A1001?")
            keep, _ = ask(http, "Where is my order A1002?")

            def count(t: str, table: str = "graphyard_recordings") -> int:
                with sqlite3.connect(directory / "graphyard.db") as db:
                    return int(
                        db.execute(
                            f"SELECT COUNT(*) FROM {table} WHERE thread_id = ?", (t,)
                        ).fetchone()[0]
                    )

            assert count(thread) == 3 and count(keep) == 3  # two model calls, one tool call
            assert count(thread, "graphyard_recording_messages") > 0
            assert http.delete(f"/threads/{thread}").status_code in (200, 204)
            assert count(thread) == 0 and count(keep) == 3
            assert count(thread, "graphyard_recording_messages") == 0
            assert count(keep, "graphyard_recording_messages") > 0
    finally:
        server.kill()
