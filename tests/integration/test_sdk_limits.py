"""Request limits: a body over ``GRAPHYARD_MAX_BODY_BYTES`` gets 413 before anything runs;
a user over ``GRAPHYARD_RATE_LIMIT_PER_MINUTE`` gets 429 with ``Retry-After``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from sdk_server import SdkServer, human, running

pytestmark = pytest.mark.server

MAX_BODY = 4096
PER_MINUTE = 5
KEYS = {"sk-big": "big", "sk-quick": "quick", "sk-other": "other"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdkServer]:
    env = {
        "GRAPHYARD_MAX_BODY_BYTES": str(MAX_BODY),
        "GRAPHYARD_RATE_LIMIT_PER_MINUTE": str(PER_MINUTE),
        "GRAPHYARD_API_KEYS": json.dumps(KEYS),
    }
    with running(SdkServer(tmp_path_factory.mktemp("limits"), env=env)) as (server,):
        yield server


def run_request(text: str) -> dict[str, object]:
    return {"assistant_id": "support", "input": human(text)}


def test_a_body_over_the_limit_gets_413_json_before_any_model_call(server: SdkServer) -> None:
    headers = {"x-api-key": "sk-big"}
    with httpx.Client(base_url=server.url, timeout=30, headers=headers) as client:
        tid = client.post("/threads", json={}).json()["thread_id"]
        calls = server.model_calls()

        for path in (f"/threads/{tid}/runs/wait", f"/threads/{tid}/runs/stream", "/runs/wait"):
            refused = client.post(path, json=run_request("x" * MAX_BODY))
            assert refused.status_code == 413, (path, refused.text)
            assert refused.headers["content-type"] == "application/json"
            assert refused.json()["error"] == "payload_too_large"
        chat = client.post(f"/chat/{tid}", json={"content": "x" * MAX_BODY})
        assert chat.status_code == 413

        assert server.model_calls() == calls  # no model was asked anything
        assert client.get(f"/threads/{tid}/runs").json() == []
        assert client.get(f"/threads/{tid}").json()["values"] is None

    # just under the limit is fine (another user: this one has spent its rate)
    with httpx.Client(base_url=server.url, timeout=30, headers={"x-api-key": "sk-other"}) as ok:
        tid = ok.post("/threads", json={}).json()["thread_id"]
        accepted = ok.post(f"/threads/{tid}/runs/wait", json=run_request("y" * (MAX_BODY - 200)))
        assert accepted.status_code == 200, accepted.text
    assert server.model_calls() == calls + 1


def test_a_chunked_body_over_the_limit_gets_413_too(server: SdkServer) -> None:
    def chunks() -> Iterator[bytes]:
        body = json.dumps(run_request("z" * MAX_BODY)).encode()
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    headers = {"x-api-key": "sk-other", "content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=30, headers=headers) as client:
        calls = server.model_calls()
        refused = client.post("/runs/wait", content=chunks())
        assert "content-length" not in refused.request.headers
        assert (refused.status_code, refused.json()["error"]) == (413, "payload_too_large")
        assert server.model_calls() == calls


def test_a_user_over_the_rate_limit_gets_429_with_retry_after_and_others_do_not(
    server: SdkServer,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        quick = {"x-api-key": "sk-quick"}
        answers = [
            client.post("/threads/search", json={}, headers=quick) for _ in range(PER_MINUTE)
        ]
        assert [a.status_code for a in answers] == [200] * PER_MINUTE

        limited = client.post("/threads/search", json={}, headers=quick)
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 60 // PER_MINUTE  # a token comes back every 12 s

        assert client.post("/threads", json={}, headers=quick).status_code == 429
        assert client.post("/threads/search", json={}, headers={"x-api-key": "sk-big"}).is_success
        assert client.get("/ok").status_code == 200
