"""Two server processes over one SQLite database: one active run per thread, whichever
process a request reaches, and each ``multitask_strategy`` doing what it says.

Every test sends the first run to one process and the second to the other, so only the
lock and the cancel requests kept in the database can make them agree.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError
from scripted_server import expected_answer
from sdk_server import SdkServer, conversation, eventually, frames, human, running

from postgres_fixtures import fresh_database

pytestmark = pytest.mark.server

ASSISTANT = "support"
LEASE_SECONDS = 4
"""Each process heartbeats its runs (and reads cancel requests) every third of this."""
SLOW = {"scripted_delay": 0.5}
"""Run metadata: the model takes ~5 s over its answer, longer than a cancel takes to arrive."""


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SdkServer, SdkServer]]:
    """Two server processes over one database. On Postgres each runs in a directory of its
    own, as on two machines: whatever they share, they share through Postgres."""
    env = {"GRAPHYARD_RUN_LEASE_SECONDS": str(LEASE_SECONDS)}
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(fresh_database(request.getfixturevalue("postgres_server")))
            shop = tmp_path_factory.mktemp("shop") / "shop.db"
            env |= {"GRAPHYARD_CHECKPOINTER": url, "GRAPHYARD_SHOP_DB": str(shop)}
            first = SdkServer(tmp_path_factory.mktemp("first"), env=env)
            second = SdkServer(tmp_path_factory.mktemp("second"), env=env)
        else:
            first = SdkServer(tmp_path_factory.mktemp("first"), env=env)
            second = SdkServer(tmp_path_factory.mktemp("second"), env=env, database=first.directory)
        with running(first, second):
            yield first, second


@pytest.fixture
async def clients(
    pair: tuple[SdkServer, SdkServer],
) -> AsyncIterator[tuple[LangGraphClient, LangGraphClient]]:
    async with (
        get_client(url=pair[0].url, api_key=None, timeout=60.0) as a,
        get_client(url=pair[1].url, api_key=None, timeout=60.0) as b,
    ):
        yield a, b


async def values_of(client: LangGraphClient, tid: str) -> dict[str, Any]:
    return (await client.threads.get_state(tid))["values"]  # type: ignore[no-any-return]


# --- reject, twenty at once ----------------------------------------------------------------


async def test_twenty_concurrent_reject_runs_across_two_processes_admit_exactly_one(
    pair: tuple[SdkServer, SdkServer], clients: tuple[LangGraphClient, LangGraphClient]
) -> None:
    # three threads raced at once, twenty requests each, half to each process
    tids = [(await clients[0].threads.create())["thread_id"] for _ in range(3)]
    https = [httpx.AsyncClient(base_url=s.url, timeout=60) for s in pair]

    async def send(tid: str, i: int) -> httpx.Response:
        body = {
            "assistant_id": ASSISTANT,
            "input": human(f"racer {i}"),
            "multitask_strategy": "reject",
            "metadata": {"scripted_delay": 0.6},  # the winner runs ~6 s
        }
        return await https[i % 2].post(f"/threads/{tid}/runs", json=body)

    try:
        responses = await asyncio.gather(*(send(tid, i) for i in range(20) for tid in tids))
    finally:
        for client in https:
            await client.aclose()

    for t, tid in enumerate(tids):
        mine = responses[t::3]
        accepted = [(i, r) for i, r in enumerate(mine) if r.is_success]
        assert len(accepted) == 1, [(r.status_code, r.text) for r in mine]
        [(winner, response)] = accepted
        run = response.json()
        refused = [r for r in mine if not r.is_success]
        assert [r.status_code for r in refused] == [409] * 19, [r.text for r in refused]
        for r in refused:
            body = r.json()
            assert body["error"] == "thread_busy"
            assert run["run_id"] in body["message"]  # refused because of the one that won

        values = await clients[1].runs.join(tid, run["run_id"])
        assert conversation(values) == [("human", f"racer {winner}"), ("ai", expected_answer(1))]
        assert [r["run_id"] for r in await clients[0].runs.list(tid, limit=100)] == [run["run_id"]]


# --- one test per strategy, first run on one process, second on the other --------------------


async def input_saved(client: LangGraphClient, tid: str) -> bool:
    """The run's input is in the thread's state, so its model is now answering."""
    values = (await client.threads.get_state(tid))["values"] or {}
    return [kind for kind, _ in conversation(values)] == ["human"]


async def start_slow_run(client: LangGraphClient, tid: str) -> dict[str, Any]:
    run = await client.runs.create(tid, ASSISTANT, input=human("first"), metadata=SLOW)
    await eventually(lambda: input_saved(client, tid), "the run's input is saved")
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "running"
    return run  # type: ignore[no-any-return]


async def test_reject_refuses_the_second_run_with_409_and_the_first_completes(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    a, b = clients
    tid = (await a.threads.create())["thread_id"]
    first = await start_slow_run(a, tid)

    with pytest.raises(ConflictError) as refused:
        await b.runs.create(tid, ASSISTANT, input=human("second"), multitask_strategy="reject")
    assert refused.value.response.json()["error"] == "thread_busy"

    await b.runs.join(tid, first["run_id"])
    assert conversation(await values_of(b, tid)) == [
        ("human", "first"),
        ("ai", expected_answer(1)),
    ]
    assert [r["status"] for r in await a.runs.list(tid)] == ["success"]


async def test_enqueue_runs_the_second_after_the_first_and_keeps_both_exchanges_in_order(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    a, b = clients
    tid = (await a.threads.create())["thread_id"]
    first = await start_slow_run(a, tid)

    second = await b.runs.create(
        tid, ASSISTANT, input=human("second"), multitask_strategy="enqueue"
    )
    assert second["status"] == "pending"  # waits its turn

    values = await b.runs.join(tid, second["run_id"])
    assert conversation(values) == [
        ("human", "first"),
        ("ai", expected_answer(1)),
        ("human", "second"),
        ("ai", expected_answer(2)),
    ]
    assert (await a.runs.get(tid, first["run_id"]))["status"] == "success"
    assert (await a.runs.get(tid, second["run_id"]))["status"] == "success"


async def test_interrupt_stops_the_first_run_early_and_the_second_answers_both_messages(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    a, b = clients
    tid = (await a.threads.create())["thread_id"]
    first = await start_slow_run(a, tid)

    second = await b.runs.create(
        tid, ASSISTANT, input=human("second"), multitask_strategy="interrupt"
    )

    values = await b.runs.join(tid, second["run_id"])
    # the first message stays, its answer (5 s away when interrupted) never came
    assert conversation(values) == [
        ("human", "first"),
        ("human", "second"),
        ("ai", expected_answer(2)),
    ]
    assert (await a.runs.get(tid, first["run_id"]))["status"] == "interrupted"
    assert (await a.runs.get(tid, second["run_id"]))["status"] == "success"


async def test_rollback_erases_the_first_run_and_its_input_and_the_second_answers_alone(
    clients: tuple[LangGraphClient, LangGraphClient],
) -> None:
    a, b = clients
    tid = (await a.threads.create())["thread_id"]
    first = await start_slow_run(a, tid)

    second = await b.runs.create(
        tid, ASSISTANT, input=human("second"), multitask_strategy="rollback"
    )

    values = await b.runs.join(tid, second["run_id"])
    assert conversation(values) == [("human", "second"), ("ai", expected_answer(1))]
    with pytest.raises(NotFoundError):
        await a.runs.get(tid, first["run_id"])
    assert [r["run_id"] for r in await a.runs.list(tid)] == [second["run_id"]]
    history = await a.threads.get_history(tid, limit=100)
    seen = {m["content"] for h in history for m in h["values"].get("messages", [])}
    assert "first" not in seen  # gone from every checkpoint, not only from the latest


# --- a stream resumed on the other process ---------------------------------------------------


async def test_a_stream_dropped_on_one_process_resumes_on_the_other_from_the_database(
    pair: tuple[SdkServer, SdkServer],
) -> None:
    body = {
        "assistant_id": ASSISTANT,
        "input": human("travel"),
        "stream_mode": ["messages-tuple", "updates"],
        "metadata": {"scripted_delay": 0.15},
    }
    async with (
        httpx.AsyncClient(base_url=pair[0].url, timeout=30) as a,
        httpx.AsyncClient(base_url=pair[1].url, timeout=30) as b,
    ):
        tid = (await a.post("/threads", json={})).json()["thread_id"]
        lines: list[str] = []
        async with a.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
            location = response.headers["location"]
            async for line in response.aiter_lines():
                lines.append(line)
                if line == "" and len(list(frames(lines))) == 4:
                    break
        head = list(frames(lines))

        async with b.stream("GET", location, headers={"Last-Event-ID": head[-1].id}) as rest:
            assert rest.status_code == 200
            tail = list(frames([line async for line in rest.aiter_lines()]))
        async with a.stream("GET", location) as whole:
            everything = list(frames([line async for line in whole.aiter_lines()]))

    assert (everything[0].event, everything[-1].event) == ("metadata", "end")
    assert [f.id for f in everything] == [str(i) for i in range(1, len(everything) + 1)]
    assert head + tail == everything
