"""The official LangGraph SDK, sync and async, against a real graphyard server.

The SDK tests run twice, once per client (``[sync]`` and ``[async]``), against uvicorn
subprocesses serving the reference agent, or a small graph of our own, on scripted models.
The SDK is used exactly as its documentation shows; the tests assert on what a user of it
sees. The wire format itself (SSE lines, ``Location``) is checked with httpx.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import NotFoundError
from langgraph_sdk.schema import StreamPart
from scripted_server import expected_answer
from sdk_graphs import PROGRESS
from sdk_server import Sdk, SdkServer, conversation, eventually, frames, human, running

pytestmark = pytest.mark.server

ASSISTANT = "support"
TICKET_REQUEST = "I want to speak to a human about order A1003"
SLOW = {"scripted_delay": 0.3}
"""Run metadata that makes the scripted model take ~3 s over an answer."""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SdkServer, SdkServer]]:
    agent = SdkServer(tmp_path_factory.mktemp("agent"))
    custom = SdkServer(
        tmp_path_factory.mktemp("custom"), env={"GRAPHYARD_GRAPH": "sdk_graphs:custom_graph"}
    )
    with running(agent, custom):
        yield agent, custom


@pytest.fixture(scope="module")
def agent(servers: tuple[SdkServer, SdkServer]) -> SdkServer:
    """The reference support agent."""
    return servers[0]


@pytest.fixture(params=["sync", "async"])
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[SdkServer], Sdk]]:
    """Open an SDK client (the sync or the async one) to a server."""
    opened: list[Any] = []

    def connect(server: SdkServer) -> Sdk:
        factory = get_sync_client if request.param == "sync" else get_client
        client = factory(url=server.url, api_key=None, timeout=60.0)
        opened.append(client)
        return Sdk(client, sync=request.param == "sync")

    yield connect
    for client in opened:
        if request.param == "sync":
            client.close()
        else:
            await client.aclose()


@pytest.fixture
def sdk(connect: Callable[[SdkServer], Sdk], agent: SdkServer) -> Sdk:
    return connect(agent)


def tokens(text: str) -> list[str]:
    """How the scripted model splits an answer into streamed tokens."""
    return re.findall(r"\s*\S+", text)


def tickets(server: SdkServer) -> dict[int, dict[str, Any]]:
    with sqlite3.connect(server.directory / "shop.db") as conn:
        conn.row_factory = sqlite3.Row
        return {r["id"]: dict(r) for r in conn.execute("SELECT * FROM tickets")}


# --- assistants and threads ----------------------------------------------------------


async def test_the_served_graph_is_one_assistant_that_search_get_and_get_graph_describe(
    sdk: Sdk,
) -> None:
    [assistant] = await sdk.assistants.search()
    assert assistant["graph_id"] == "support"
    assert await sdk.assistants.get(assistant["assistant_id"]) == assistant
    assert await sdk.assistants.get("support") == assistant  # the graph id works too
    assert await sdk.assistants.search(graph_id="another-graph") == []
    with pytest.raises(NotFoundError):
        await sdk.assistants.get("no-such-assistant")

    graph = await sdk.assistants.get_graph(assistant["assistant_id"])
    nodes = {n["id"] for n in graph["nodes"]}
    assert nodes == {"__start__", "router", "trim", "planner", "executor", "critic", "__end__"}
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert {("__start__", "router"), ("router", "trim"), ("executor", "trim")} <= edges


async def test_a_thread_is_created_read_updated_found_and_deleted(sdk: Sdk) -> None:
    tag = f"crud-{'sync' if sdk.sync else 'async'}"
    thread = await sdk.threads.create(metadata={"tag": tag, "stage": 1})
    assert thread["status"] == "idle"
    assert thread["metadata"] == {"tag": tag, "stage": 1}
    assert thread["values"] is None

    assert (await sdk.threads.get(thread["thread_id"]))["metadata"] == thread["metadata"]
    updated = await sdk.threads.update(thread["thread_id"], metadata={"stage": 2, "vip": True})
    assert updated["metadata"] == {"tag": tag, "stage": 2, "vip": True}

    found = await sdk.threads.search(metadata={"tag": tag})
    assert [t["thread_id"] for t in found] == [thread["thread_id"]]
    assert await sdk.threads.search(metadata={"tag": tag, "stage": 1}) == []

    await sdk.threads.delete(thread["thread_id"])
    with pytest.raises(NotFoundError):
        await sdk.threads.get(thread["thread_id"])
    assert await sdk.threads.search(metadata={"tag": tag}) == []


# --- streaming: every mode --------------------------------------------------------------

ANSWER = expected_answer(1)


def check_values(parts: list[StreamPart], text: str) -> None:
    assert {p.event for p in parts} == {"values"}
    assert conversation(parts[0].data) == [("human", text)]
    assert conversation(parts[-1].data) == [("human", text), ("ai", ANSWER)]


def check_updates(parts: list[StreamPart], text: str) -> None:
    assert {p.event for p in parts} == {"updates"}
    assert [next(iter(p.data)) for p in parts] == ["router", "trim", "planner", "critic"]
    [answer] = parts[2].data["planner"]["messages"]
    assert answer["content"] == ANSWER


def check_messages_tuple(parts: list[StreamPart], text: str) -> None:
    assert {p.event for p in parts} == {"messages"}
    chunks = [chunk for chunk, _meta in (p.data for p in parts)]
    assert {c["type"] for c in chunks} == {"AIMessageChunk"}
    # token by token: one event per token the model streamed, then the closing chunk
    assert [c["content"] for c in chunks if c["content"]] == tokens(ANSWER)
    assert "".join(c["content"] for c in chunks) == ANSWER
    assert {meta["langgraph_node"] for _chunk, meta in (p.data for p in parts)} == {"planner"}


def check_messages(parts: list[StreamPart], text: str) -> None:
    events = [p.event for p in parts]
    assert events[0] == "messages/metadata"
    assert set(events[1:]) == {"messages/partial"}
    contents = [p.data[0]["content"] for p in parts[1:]]
    assert contents[-1] == ANSWER
    # each partial is the whole message so far: a growing prefix of the answer
    assert all(b.startswith(a) for a, b in itertools.pairwise(contents))
    assert len(set(contents)) == len(tokens(ANSWER))


def check_events(parts: list[StreamPart], text: str) -> None:
    assert {p.event for p in parts} == {"events"}
    kinds = [p.data["event"] for p in parts]
    assert kinds[0] == "on_chain_start"
    assert kinds[-1] == "on_chain_end"
    assert parts[0].data["run_id"] == parts[-1].data["run_id"]  # the graph's own run
    streamed = [
        p.data["data"]["chunk"]["content"]
        for p in parts
        if p.data["event"] == "on_chat_model_stream"
    ]
    assert "".join(streamed) == ANSWER
    assert {"router", "trim", "planner", "critic"} <= {
        p.data["name"] for p in parts if p.data["event"] == "on_chain_start"
    }


def check_debug(parts: list[StreamPart], text: str) -> None:
    assert {p.event for p in parts} == {"debug"}
    assert {p.data["type"] for p in parts} == {"checkpoint", "task", "task_result"}
    tasks = [p.data["payload"]["name"] for p in parts if p.data["type"] == "task"]
    assert tasks == ["router", "trim", "planner", "critic"]


MODES: dict[str, Callable[[list[StreamPart], str], None]] = {
    "values": check_values,
    "updates": check_updates,
    "messages-tuple": check_messages_tuple,
    "messages": check_messages,
    "events": check_events,
    "debug": check_debug,
}


@pytest.mark.parametrize("mode", list(MODES))
async def test_each_stream_mode_comes_between_metadata_and_end_with_an_id_on_every_event(
    sdk: Sdk, mode: str
) -> None:
    thread = await sdk.threads.create()
    text = f"hello in {mode} mode"
    parts = await sdk.runs.stream(
        thread["thread_id"], ASSISTANT, input=human(text), stream_mode=mode
    )

    assert parts[0].event == "metadata"
    [run] = await sdk.runs.list(thread["thread_id"])
    assert parts[0].data["run_id"] == run["run_id"]
    assert parts[-1].event == "end"
    assert [p.id for p in parts] == [str(i) for i in range(1, len(parts) + 1)]
    MODES[mode](parts[1:-1], text)
    assert run["status"] == "success"


async def test_a_graph_of_our_own_streams_its_custom_events_around_the_tokens(
    connect: Callable[[SdkServer], Sdk], servers: tuple[SdkServer, SdkServer]
) -> None:
    sdk = connect(servers[1])
    [assistant] = await sdk.assistants.search()
    thread = await sdk.threads.create()

    parts = await sdk.runs.stream(
        thread["thread_id"], assistant["assistant_id"], input=human("hi"), stream_mode="custom"
    )
    assert [(p.event, p.data) for p in parts[1:-1]] == [("custom", e) for e in PROGRESS]
    assert (parts[0].event, parts[-1].event) == ("metadata", "end")

    both = await sdk.runs.stream(
        thread["thread_id"],
        assistant["assistant_id"],
        input=human("again"),
        stream_mode=["custom", "messages-tuple"],
    )
    kinds = [p.event for p in both]
    assert kinds[0] == "metadata"
    assert kinds[1] == "custom"  # "thinking", before the model's first token
    assert kinds[2:-2] == ["messages"] * (len(tokens(expected_answer(2))) + 1)
    assert (kinds[-2], both[-2].data) == ("custom", PROGRESS[1])  # "answering", after the last
    assert "".join(p.data[0]["content"] for p in both[2:-2]) == expected_answer(2)


async def test_the_stream_is_plain_sse_with_id_event_data_and_a_location_to_rejoin(
    agent: SdkServer,
) -> None:
    async with httpx.AsyncClient(base_url=agent.url, timeout=30) as client:
        thread = (await client.post("/threads", json={})).json()
        body = {"assistant_id": ASSISTANT, "input": human("raw"), "stream_mode": ["updates"]}
        url = f"/threads/{thread['thread_id']}/runs/stream"
        async with client.stream("POST", url, json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            location = response.headers["location"]
            lines = [line async for line in response.aiter_lines()]

        events = list(frames(lines))
        run_id = events[0].data["run_id"]
        assert location == f"/threads/{thread['thread_id']}/runs/{run_id}/stream"
        assert {e.fields for e in events} == {("id", "event", "data")}
        assert [e.id for e in events] == [str(i) for i in range(1, len(events) + 1)]
        assert [e.event for e in events] == ["metadata", *["updates"] * 4, "end"]
        # every data line is one JSON document; end carries none
        assert all(line.startswith(("id: ", "event: ", "data: ")) for line in lines if line)

        async with client.stream("GET", location) as again:
            assert again.status_code == 200
            replayed = list(frames([line async for line in again.aiter_lines()]))
        assert replayed == events


# --- wait, create + join, list, get, cancel -----------------------------------------------


async def test_wait_returns_the_final_values_and_create_then_join_agrees(sdk: Sdk) -> None:
    thread = await sdk.threads.create()
    tid = thread["thread_id"]

    values = await sdk.runs.wait(tid, ASSISTANT, input=human("first"))
    assert conversation(values) == [("human", "first"), ("ai", expected_answer(1))]

    run = await sdk.runs.create(tid, ASSISTANT, input=human("second"), metadata={"n": 2})
    assert run["status"] in ("pending", "running")
    assert run["metadata"] == {"n": 2}
    joined = await sdk.runs.join(tid, run["run_id"])
    assert conversation(joined)[-2:] == [("human", "second"), ("ai", expected_answer(2))]
    assert joined == (await sdk.threads.get_state(tid))["values"]

    runs = await sdk.runs.list(tid)
    assert runs[0]["run_id"] == run["run_id"]  # newest first
    assert [r["status"] for r in runs] == ["success", "success"]
    got = await sdk.runs.get(tid, run["run_id"])
    assert (got["status"], got["thread_id"], got["metadata"]) == ("success", tid, {"n": 2})
    assert (await sdk.threads.get(tid))["status"] == "idle"


async def test_a_cancelled_slow_run_ends_interrupted_and_the_thread_takes_the_next_run(
    sdk: Sdk,
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    run = await sdk.runs.create(tid, ASSISTANT, input=human("take your time"), metadata=SLOW)

    async def input_saved() -> bool:
        state = await sdk.threads.get_state(tid)
        return conversation(state["values"] or {}) == [("human", "take your time")]

    await eventually(input_saved, "the run's input is saved")  # the model is now answering
    assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "running"
    assert (await sdk.threads.get(tid))["status"] == "busy"

    await sdk.runs.cancel(tid, run["run_id"], wait=True)

    assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert (await sdk.threads.get(tid))["status"] != "busy"
    state = await sdk.threads.get_state(tid)
    assert conversation(state["values"]) == [("human", "take your time")]  # no answer saved

    values = await sdk.runs.wait(tid, ASSISTANT, input=human("now quickly"))
    assert conversation(values) == [
        ("human", "take your time"),
        ("human", "now quickly"),
        ("ai", expected_answer(2)),
    ]
    assert [r["status"] for r in await sdk.runs.list(tid)] == ["success", "interrupted"]


# --- state and history ------------------------------------------------------------------


async def two_turns(sdk: Sdk) -> tuple[str, dict[str, Any], dict[str, Any]]:
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.runs.wait(tid, ASSISTANT, input=human("one"))
    first = await sdk.threads.get_state(tid)
    await sdk.runs.wait(tid, ASSISTANT, input=human("two"))
    return tid, first, await sdk.threads.get_state(tid)


async def test_history_lists_checkpoints_newest_first_and_get_state_reads_any_of_them(
    sdk: Sdk,
) -> None:
    tid, first, second = await two_turns(sdk)

    history = await sdk.threads.get_history(tid, limit=100)
    assert history[0]["checkpoint"] == second["checkpoint"]
    assert [h["metadata"]["step"] for h in history] == list(range(len(history) - 2, -2, -1))
    for newer, older in itertools.pairwise(history):
        assert newer["parent_checkpoint"]["checkpoint_id"] == older["checkpoint"]["checkpoint_id"]
    ends = [h for h in history if h["next"] == []]
    assert [h["checkpoint"] for h in ends] == [second["checkpoint"], first["checkpoint"]]
    assert len(await sdk.threads.get_history(tid, limit=3)) == 3

    old_id = first["checkpoint"]["checkpoint_id"]
    old = await sdk.threads.get_state(tid, checkpoint_id=old_id)
    assert old["values"] == first["values"]
    assert conversation(old["values"]) == [("human", "one"), ("ai", expected_answer(1))]
    with pytest.raises(NotFoundError):
        await sdk.threads.get_state(tid, checkpoint_id="no-such-checkpoint")


async def test_get_state_reads_a_checkpoint_given_as_the_sdks_checkpoint_dict(sdk: Sdk) -> None:
    tid, first, _second = await two_turns(sdk)
    old = await sdk.threads.get_state(tid, checkpoint=first["checkpoint"])
    assert old["values"] == first["values"]


async def test_update_state_writes_values_at_the_head_as_a_node(sdk: Sdk) -> None:
    tid, _first, second = await two_turns(sdk)

    result = await sdk.threads.update_state(tid, {"tier": "strong"}, as_node="router")

    head = await sdk.threads.get_state(tid)
    assert head["checkpoint"]["checkpoint_id"] == result["checkpoint"]["checkpoint_id"]
    assert head["parent_checkpoint"]["checkpoint_id"] == second["checkpoint"]["checkpoint_id"]
    assert head["values"]["tier"] == "strong"
    assert head["next"] == ["trim"]  # as if the router had just run
    assert conversation(head["values"]) == conversation(second["values"])


async def test_update_state_from_an_older_checkpoint_forks_a_new_branch(sdk: Sdk) -> None:
    tid, first, second = await two_turns(sdk)
    answer = first["values"]["messages"][-1]

    await sdk.threads.update_state(
        tid,
        {"messages": [{"type": "ai", "content": "An edited first answer.", "id": answer["id"]}]},
        as_node="critic",
        checkpoint=first["checkpoint"],
    )

    head = await sdk.threads.get_state(tid)
    assert head["parent_checkpoint"]["checkpoint_id"] == first["checkpoint"]["checkpoint_id"]
    assert conversation(head["values"]) == [("human", "one"), ("ai", "An edited first answer.")]
    # the old branch is still there, by id
    kept = await sdk.threads.get_state(tid, checkpoint_id=second["checkpoint"]["checkpoint_id"])
    assert kept["values"] == second["values"]
    # and the thread goes on from the fork
    values = await sdk.runs.wait(tid, ASSISTANT, input=human("three"))
    assert conversation(values)[1:] == [
        ("ai", "An edited first answer."),
        ("human", "three"),
        ("ai", expected_answer(2)),
    ]


async def test_a_run_from_an_older_checkpoint_starts_a_new_branch(sdk: Sdk) -> None:
    tid, first, second = await two_turns(sdk)

    values = await sdk.runs.wait(
        tid,
        ASSISTANT,
        input=human("instead of two"),
        checkpoint_id=first["checkpoint"]["checkpoint_id"],
    )
    assert conversation(values) == [
        ("human", "one"),
        ("ai", expected_answer(1)),
        ("human", "instead of two"),
        ("ai", expected_answer(2)),
    ]
    kept = await sdk.threads.get_state(tid, checkpoint_id=second["checkpoint"]["checkpoint_id"])
    assert conversation(kept["values"])[2] == ("human", "two")


# --- human in the loop ------------------------------------------------------------------


async def test_an_approval_interrupt_is_answered_with_a_resume_command(
    sdk: Sdk, agent: SdkServer
) -> None:
    tid = (await sdk.threads.create())["thread_id"]

    paused = await sdk.runs.wait(tid, ASSISTANT, input=human(TICKET_REQUEST))
    [interrupt] = paused["__interrupt__"]
    assert interrupt["value"]["tool"] == "create_ticket"
    assert interrupt["value"]["args"]["order_id"] == "A1003"
    thread = await sdk.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert [i["id"] for task in thread["interrupts"].values() for i in task] == [interrupt["id"]]
    state = await sdk.threads.get_state(tid)
    assert state["next"] == ["executor"]
    assert conversation(state["values"]) == [("human", TICKET_REQUEST)]

    parts = await sdk.runs.stream(
        tid, ASSISTANT, command={"resume": {"action": "approve"}}, stream_mode="updates"
    )

    assert (parts[0].event, parts[-1].event) == ("metadata", "end")
    nodes = [next(iter(p.data)) for p in parts[1:-1]]
    assert nodes[0] == "executor"  # it continued where it stopped
    assert nodes[-1] == "critic"
    done = await sdk.threads.get_state(tid)
    assert done["next"] == [] and done["interrupts"] == []
    assert conversation(done["values"])[-1] == ("ai", expected_answer(1))
    [result] = [
        m["content"]
        for m in done["values"]["messages"]
        if m["type"] == "tool" and "Ticket" in m["content"]
    ]
    number = int(re.match(r"Ticket #(\d+)", result).group(1))  # type: ignore[union-attr]
    assert tickets(agent)[number]["order_id"] == "A1003"
    assert (await sdk.threads.get(tid))["status"] == "idle"


# --- many runs in a row -------------------------------------------------------------------


def test_thirty_runs_one_after_another_on_one_thread_all_succeed(tmp_path: Path) -> None:
    """Each run's end must leave the server able to take the next one at once.

    It has a server of its own: the failure this guards against (a run's end leaving the
    store's connection inside a transaction, see test_server_store.py) stops a server from
    writing anything again.
    """
    with (
        running(SdkServer(tmp_path / "server")) as (server,),
        get_sync_client(url=server.url, api_key=None, timeout=60.0) as client,
    ):
        tid = client.threads.create()["thread_id"]
        for i in range(30):
            run = client.runs.create(tid, ASSISTANT, input=human(f"message {i}"))
            client.runs.join(tid, run["run_id"])
        runs = client.runs.list(tid, limit=100)
        assert [r["status"] for r in runs] == ["success"] * 30
        values = client.threads.get_state(tid)["values"]
        assert conversation(values)[-1] == ("ai", expected_answer(30))
