"""Human approvals of the reference agent's ``create_ticket``, on a real server with API keys.

Every way a person answers: the LangGraph SDK's ``Command(resume=...)``, ``graphyard threads
approve|reject`` and ``POST /chat``; approve, reject and edit; a restart between the pause
and the answer; and another user, who cannot see the pending approval, let alone answer it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client
from sdk_server import SdkServer
from typer.testing import CliRunner

from graphyard.cli import app

pytestmark = pytest.mark.server

TICKET_REQUEST = "I want to speak to a human about order A1003"
KEYS = {"sk-alice": "alice", "sk-bob": "bob"}
ALICE = {"x-api-key": "sk-alice"}
BOB = {"x-api-key": "sk-bob"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdkServer]:
    process = SdkServer(
        tmp_path_factory.mktemp("approvals"), env={"GRAPHYARD_API_KEYS": json.dumps(KEYS)}
    ).start()
    try:
        yield process
    finally:
        process.kill()
        print(process.log())


def tickets(server: SdkServer) -> list[dict[str, Any]]:
    with sqlite3.connect(server.directory / "shop.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM tickets ORDER BY id")]


def paused_thread(server: SdkServer) -> tuple[str, dict[str, Any]]:
    """Alice's new thread, waiting for her approval of a ticket; and the interrupt."""
    with httpx.Client(base_url=server.url, headers=ALICE, timeout=60.0) as http:
        thread = http.post("/threads", json={}).json()["thread_id"]
        paused = http.post(
            f"/threads/{thread}/runs/wait",
            json={
                "assistant_id": "support",
                "input": {"messages": [{"role": "user", "content": TICKET_REQUEST}]},
            },
        ).json()
    [interrupt] = paused["__interrupt__"]
    assert interrupt["value"]["tool"] == "create_ticket"
    return thread, interrupt


def state(server: SdkServer, thread: str, headers: dict[str, str] = ALICE) -> httpx.Response:
    return httpx.get(f"{server.url}/threads/{thread}/state", headers=headers, timeout=30.0)


def tool_results(server: SdkServer, thread: str) -> list[str]:
    """What ``create_ticket`` answered (the order lookup beside it left out)."""
    values = state(server, thread).json()["values"]
    return [
        m["content"]
        for m in values["messages"]
        if m["type"] == "tool" and m.get("name") == "create_ticket"
    ]


def cli(server: SdkServer, *args: str, key: str = "sk-alice") -> Any:
    return CliRunner().invoke(app, ["threads", *args, "--url", server.url, "--api-key", key])


def test_another_user_can_neither_see_nor_answer_a_pending_approval(server: SdkServer) -> None:
    thread, interrupt = paused_thread(server)
    before = state(server, thread).json()
    assert [i["id"] for i in before["interrupts"]] == [interrupt["id"]]

    assert state(server, thread, BOB).status_code == 404
    with httpx.Client(base_url=server.url, headers=BOB, timeout=30.0) as http:
        resume = {"assistant_id": "support", "command": {"resume": {"action": "approve"}}}
        assert http.post(f"/threads/{thread}/runs/wait", json=resume).status_code == 404
        chat = http.post(f"/chat/{thread}", json={"resume": {"action": "approve"}})
        assert chat.status_code == 404 and chat.json()["error"] == "not_found"
    with get_sync_client(url=server.url, api_key="sk-bob") as bob:
        with pytest.raises(httpx.HTTPStatusError) as refused:
            bob.runs.wait(thread, "support", command={"resume": {"action": "approve"}})
        assert refused.value.response.status_code == 404
    answered = cli(server, "approve", thread, key="sk-bob")
    assert answered.exit_code == 1 and "not found" in answered.output
    unknown = cli(server, "approve", thread, key="sk-nobody")
    assert unknown.exit_code == 1 and "401" in unknown.output
    assert unknown.exception is None or isinstance(unknown.exception, SystemExit)

    assert state(server, thread).json() == before  # still pending, untouched
    assert not [t for t in tickets(server) if t["subject"] == thread]


def test_the_sdk_approves_with_a_resume_command_and_the_ticket_is_opened(
    server: SdkServer,
) -> None:
    thread, interrupt = paused_thread(server)
    opened = len(tickets(server))
    with get_sync_client(url=server.url, api_key="sk-alice") as alice:
        done = alice.runs.wait(thread, "support", command={"resume": {"action": "approve"}})
    assert "__interrupt__" not in done
    [result] = tool_results(server, thread)
    assert result.startswith("Ticket #")
    [ticket] = tickets(server)[opened:]
    assert (
        ticket["order_id"] == "A1003"
        and ticket["priority"] == interrupt["value"]["args"]["priority"]
    )


def test_the_cli_approves_with_edited_arguments(server: SdkServer) -> None:
    thread, interrupt = paused_thread(server)
    assert interrupt["value"]["args"]["priority"] == "normal"
    opened = len(tickets(server))
    answered = cli(server, "approve", thread, "--edit", '{"priority": "urgent"}')
    assert answered.exit_code == 0, answered.output
    [ticket] = tickets(server)[opened:]
    assert ticket["priority"] == "urgent" and ticket["order_id"] == "A1003"
    [result] = tool_results(server, thread)
    assert "priority urgent" in result
    again = cli(server, "approve", thread)
    assert again.exit_code == 1 and "no pending approval" in again.output


def test_the_cli_and_the_chat_endpoint_reject_and_nothing_is_opened(server: SdkServer) -> None:
    opened = len(tickets(server))
    by_cli, _ = paused_thread(server)
    answered = cli(server, "reject", by_cli, "--reason", "we do not open tickets on weekends")
    assert answered.exit_code == 0, answered.output
    assert tool_results(server, by_cli) == [
        "The support team declined to open this ticket: we do not open tickets on weekends"
    ]

    by_chat, _ = paused_thread(server)
    with (
        httpx.Client(base_url=server.url, headers=ALICE, timeout=60.0) as http,
        http.stream(
            "POST", f"/chat/{by_chat}", json={"resume": {"action": "reject", "reason": "duplicate"}}
        ) as response,
    ):
        assert response.status_code == 200
        body = "".join(response.iter_text())
    assert "[DONE]" in body
    assert tool_results(server, by_chat) == [
        "The support team declined to open this ticket: duplicate"
    ]
    assert len(tickets(server)) == opened


def test_a_pending_approval_survives_a_restart_and_is_approved_from_the_cli(
    tmp_path: Path,
) -> None:
    process = SdkServer(tmp_path / "s", env={"GRAPHYARD_API_KEYS": json.dumps(KEYS)}).start()
    try:
        thread, interrupt = paused_thread(process)
        process.stop()
        process.start()
        pending = state(process, thread).json()
        assert [i["id"] for i in pending["interrupts"]] == [interrupt["id"]]
        assert pending["next"] == ["executor"]
        answered = cli(process, "approve", thread, "--json")
        assert answered.exit_code == 0, answered.output
        assert "__interrupt__" not in json.loads(answered.stdout)
        [ticket] = tickets(process)
        assert ticket["order_id"] == "A1003"
        assert state(process, thread).json()["interrupts"] == []
    finally:
        process.kill()
