"""Auth and isolation: API keys map to users; another user's thread or run is
indistinguishable from one that does not exist; no key gets 401.

The routes are read from the server's own ``/openapi.json`` when the test runs, so a route
added later without an ownership check fails here without anyone updating this file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import AuthenticationError, NotFoundError
from sdk_server import SdkServer, human, running

pytestmark = pytest.mark.server

KEYS = {"sk-alice-0123456789": "alice", "sk-bob-9876543210": "bob"}
ALICE = {"x-api-key": "sk-alice-0123456789"}
BOB = {"x-api-key": "sk-bob-9876543210"}
OPEN = {("GET", "/ok"), ("GET", "/info")}
"""Routes meant to answer without a key: liveness, and what the server serves (no data)."""

BODIES: dict[str, Any] = {
    "RunCreate": {"assistant_id": "support", "input": human("bob was here")},
    "ThreadPatch": {"metadata": {"by": "bob"}},
    "StateUpdate": {"values": {"tier": "strong"}},
    "HistoryQuery": {"limit": 5},
    "ChatRequest": {"content": "bob was here"},
}
"""A plausible body per request schema, so requests reach the handler (and its ownership
check) instead of stopping at validation; any other schema gets its required fields filled
in from the schema itself (see :func:`example`)."""


@dataclass
class World:
    server: SdkServer
    routes: list[tuple[str, str, dict[str, Any]]]
    """Every ``(method, path template, operation)`` of the app's OpenAPI schema."""
    schemas: dict[str, Any]
    """The schema's ``components/schemas``."""
    alice: dict[str, str]
    """Alice's real ids: ``thread_id``, ``run_id``, ``checkpoint_id``."""
    bob_thread: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = SdkServer(
        tmp_path_factory.mktemp("auth"), env={"GRAPHYARD_API_KEYS": json.dumps(KEYS)}
    )
    with running(server), httpx.Client(base_url=server.url, timeout=30) as client:
        thread = client.post("/threads", json={"metadata": {"owner": "alice"}}, headers=ALICE)
        tid = thread.json()["thread_id"]
        done = client.post(
            f"/threads/{tid}/runs/wait",
            json={"assistant_id": "support", "input": human("alice's secret")},
            headers=ALICE,
        )
        assert done.status_code == 200, done.text
        [run] = client.get(f"/threads/{tid}/runs", headers=ALICE).json()
        state = client.get(f"/threads/{tid}/state", headers=ALICE).json()
        bob_thread = client.post("/threads", json={}, headers=BOB).json()["thread_id"]
        schema = client.get("/openapi.json").json()
        routes = [
            (method.upper(), path, op)
            for path, ops in schema["paths"].items()
            for method, op in ops.items()
        ]
        alice = {
            "thread_id": tid,
            "run_id": run["run_id"],
            "checkpoint_id": state["checkpoint"]["checkpoint_id"],
        }
        yield World(server, routes, schema["components"]["schemas"], alice, bob_thread)


def fill(template: str, ids: dict[str, str]) -> str:
    values = {"assistant_id": "support", **ids}
    names = [part[1:-1] for part in template.split("/") if part.startswith("{")]
    missing = [n for n in names if n not in values]
    assert not missing, f"{template}: give this test a value for {missing}"
    return template.format(**{n: values[n] for n in names})


def example(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """A minimal valid value for a JSON schema: its required fields, filled in."""
    if "$ref" in schema:
        return example(schemas[schema["$ref"].rpartition("/")[2]], schemas)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        return example(options[0], schemas) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("type") == "object" or "properties" in schema:
        required = schema.get("required", [])
        return {k: example(v, schemas) for k, v in schema["properties"].items() if k in required}
    return {"string": "x", "integer": 1, "number": 1, "boolean": False, "array": []}.get(
        schema.get("type", "")
    )


def body_for(op: dict[str, Any], schemas: dict[str, Any]) -> Any:
    if "requestBody" not in op:
        return None
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    name = schema.get("$ref", "").rpartition("/")[2]
    return BODIES[name] if name in BODIES else example(schema, schemas)


def send(
    client: httpx.Client,
    world: World,
    method: str,
    path: str,
    op: dict[str, Any],
    headers: dict[str, str],
) -> httpx.Response:
    return client.request(method, path, json=body_for(op, world.schemas), headers=headers)


def fakes() -> dict[str, str]:
    return {name: str(uuid.uuid4()) for name in ("thread_id", "run_id", "checkpoint_id")}


def as_if_real(response: httpx.Response, fake: dict[str, str], real: dict[str, str]) -> bytes:
    """A response to fake ids, with those ids written as the real ones it stands for."""
    text = response.text
    for name, value in fake.items():
        text = text.replace(value, real[name])
    return text.encode()


def owned_routes(world: World, *names: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [r for r in world.routes if any(f"{{{n}}}" in r[1] for n in names)]


def test_every_route_with_a_thread_or_run_id_hides_alices_from_bob_like_a_missing_one(
    world: World,
) -> None:
    routes = owned_routes(world, "thread_id", "run_id")
    assert len(routes) >= 17  # the walk found the SDK's routes, not an empty schema
    leaks = []
    with httpx.Client(base_url=world.server.url, timeout=15) as client:
        canonical = client.get(f"/threads/{uuid.uuid4()}", headers=BOB)
        assert canonical.status_code == 404
        for method, template, op in routes:
            fake = fakes()
            missing = send(client, world, method, fill(template, fake), op, BOB)
            theirs = send(client, world, method, fill(template, world.alice), op, BOB)
            if missing.status_code != 404:  # the route creates what is missing (/chat)
                missing = canonical
                fake = {"thread_id": canonical.url.path.rpartition("/")[2]}
            expected = as_if_real(missing, fake, world.alice)
            if theirs.status_code != 404 or theirs.content != expected:
                leaks.append((method, template, theirs.status_code, theirs.text[:200]))
            assert theirs.headers["content-type"] == "application/json"
    assert leaks == []


def test_alices_run_ids_on_bobs_own_thread_look_like_missing_runs(world: World) -> None:
    routes = owned_routes(world, "run_id")
    assert routes
    mine = {**world.alice, "thread_id": world.bob_thread}
    with httpx.Client(base_url=world.server.url, timeout=15) as client:
        for method, template, op in routes:
            fake = {**fakes(), "thread_id": world.bob_thread}
            missing = send(client, world, method, fill(template, fake), op, BOB)
            theirs = send(client, world, method, fill(template, mine), op, BOB)
            assert missing.status_code == 404, (method, template, missing.text)
            assert (theirs.status_code, theirs.content) == (
                404,
                as_if_real(missing, fake, mine),
            ), (method, template)


def test_alices_thread_is_untouched_after_bob_tried_every_route(world: World) -> None:
    before = httpx.get(f"{world.server.url}/threads/{world.alice['thread_id']}", headers=ALICE)
    with httpx.Client(base_url=world.server.url, timeout=15) as client:
        for method, template, op in owned_routes(world, "thread_id", "run_id"):
            send(client, world, method, fill(template, world.alice), op, BOB)
            send(client, world, method, fill(template, world.alice), op, {})
        tid = world.alice["thread_id"]
        after = client.get(f"/threads/{tid}", headers=ALICE)
        runs = client.get(f"/threads/{tid}/runs", headers=ALICE).json()
    assert after.status_code == 200
    assert after.json() == before.json()
    assert [r["run_id"] for r in runs] == [world.alice["run_id"]]


@pytest.mark.parametrize(
    "headers", [{}, {"x-api-key": "sk-nobody"}, {"authorization": "Bearer sk-nobody"}]
)
def test_every_route_but_ok_and_info_answers_401_without_a_valid_key(
    world: World, headers: dict[str, str]
) -> None:
    refused = []
    with httpx.Client(base_url=world.server.url, timeout=15) as client:
        for method, template, op in world.routes:
            if (method, template) in OPEN:
                continue
            response = send(client, world, method, fill(template, world.alice), op, headers)
            if response.status_code != 401 or response.json()["error"] != "unauthorized":
                refused.append((method, template, response.status_code))
        assert client.get("/ok").status_code == 200
        assert client.get("/info").json()["auth"] is True
    assert refused == []


def test_bob_does_not_find_alices_threads_by_search_count_or_id(world: World) -> None:
    with (
        get_sync_client(url=world.server.url, api_key="sk-bob-9876543210") as bob,
        get_sync_client(url=world.server.url, api_key="sk-alice-0123456789") as alice,
    ):
        bobs = {t["thread_id"] for t in bob.threads.search(limit=100)}
        assert world.alice["thread_id"] not in bobs
        assert world.bob_thread in bobs
        assert bob.threads.search(ids=[world.alice["thread_id"]]) == []
        assert bob.threads.search(metadata={"owner": "alice"}) == []
        assert bob.threads.count() == len(bobs)
        with pytest.raises(NotFoundError):
            bob.threads.get(world.alice["thread_id"])

        alices = {t["thread_id"] for t in alice.threads.search(limit=100)}
        assert world.alice["thread_id"] in alices
        assert world.bob_thread not in alices


def test_the_sdk_with_a_key_works_and_without_one_gets_401(world: World) -> None:
    with get_sync_client(url=world.server.url, api_key=None) as nobody:
        with pytest.raises(AuthenticationError):
            nobody.threads.search()
        with pytest.raises(httpx.HTTPStatusError) as refused:  # wait raises the plain error
            nobody.runs.wait(None, "support", input=human("hi"))
        assert refused.value.response.status_code == 401
    with get_sync_client(url=world.server.url, api_key="sk-bob-9876543210") as bob:
        [assistant] = bob.assistants.search()
        values = bob.runs.wait(world.bob_thread, assistant["assistant_id"], input=human("hi"))
        assert values["messages"][-1]["type"] == "ai"
