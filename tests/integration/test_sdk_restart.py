"""A server killed with SIGKILL while a run is active: the run is marked ``error`` (on
restart, or by a surviving process over the same database), the thread's lock is freed,
and the thread takes a new run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from scripted_server import expected_answer
from sdk_server import SdkServer, conversation, eventually, frames, human, running

pytestmark = pytest.mark.server

ASSISTANT = "support"
LEASE = {"GRAPHYARD_RUN_LEASE_SECONDS": "2"}
SLOW = {"scripted_delay": 0.5}
"""Run metadata: ~5 s of answer, so the run is surely active when its server dies."""


async def input_saved(client: LangGraphClient, tid: str) -> bool:
    """The run's input is in the thread's state, so its model is now answering."""
    values = (await client.threads.get_state(tid))["values"] or {}
    return [kind for kind, _ in conversation(values)] == ["human"]


async def start_doomed_run(client: LangGraphClient) -> tuple[str, str]:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, ASSISTANT, input=human("doomed"), metadata=SLOW)
    await eventually(lambda: input_saved(client, tid), "the run's input is saved")
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "running"
    assert (await client.threads.get(tid))["status"] == "busy"
    return tid, run["run_id"]


async def the_thread_is_usable(client: LangGraphClient, tid: str) -> None:
    values = await client.runs.wait(
        tid, ASSISTANT, input=human("again"), multitask_strategy="reject"
    )
    # the killed run's input was saved before it died (durability "sync"); its answer never was
    assert conversation(values) == [
        ("human", "doomed"),
        ("human", "again"),
        ("ai", expected_answer(2)),
    ]


async def test_a_run_active_when_its_server_was_killed_is_marked_error_on_restart(
    tmp_path: Path,
) -> None:
    server = SdkServer(tmp_path / "server", env=LEASE)
    with running(server):
        async with get_client(url=server.url, api_key=None, timeout=30.0) as client:
            tid, run_id = await start_doomed_run(client)

        server.kill()
        server.start()  # same database, new process (and port)

        async with get_client(url=server.url, api_key=None, timeout=30.0) as client:
            run = await client.runs.get(tid, run_id)
            assert run["status"] == "error"
            thread = await client.threads.get(tid)
            assert thread["status"] == "error"  # not "busy": the lock is free

            # a client rejoining the dead run's stream gets what was saved, then the stream ends
            async with (
                httpx.AsyncClient(base_url=server.url, timeout=10) as http,
                http.stream("GET", f"/threads/{tid}/runs/{run_id}/stream") as stream,
            ):
                assert stream.status_code == 200
                replay = list(frames([line async for line in stream.aiter_lines()]))
            assert replay[0].event == "metadata"

            await the_thread_is_usable(client, tid)
            statuses = [r["status"] for r in await client.runs.list(tid)]
            assert statuses == ["success", "error"]


async def test_a_surviving_process_marks_its_dead_peers_run_error_without_a_restart(
    tmp_path: Path,
) -> None:
    doomed = SdkServer(tmp_path / "doomed", env=LEASE)
    survivor = SdkServer(tmp_path / "survivor", env=LEASE, database=doomed.directory)
    with running(doomed, survivor):
        async with (
            get_client(url=doomed.url, api_key=None, timeout=30.0) as a,
            get_client(url=survivor.url, api_key=None, timeout=30.0) as b,
        ):
            tid, run_id = await start_doomed_run(a)
            assert (await b.runs.get(tid, run_id))["status"] == "running"

            doomed.kill()

            async def marked_error() -> bool:
                return (await b.runs.get(tid, run_id))["status"] == "error"

            await eventually(marked_error, "the dead process's run is marked error")
            assert (await b.threads.get(tid))["status"] == "error"
            await the_thread_is_usable(b, tid)
