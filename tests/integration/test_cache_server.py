"""The answer cache through a real uvicorn server: a hit streams like a live answer and says so."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from scripted_server import ServerProcess, read_stream
from typer.testing import CliRunner

pytestmark = pytest.mark.server

QUESTION = "What is your refund policy?"
PRICES = json.dumps(
    {f"scripted:{t}": {"input": 3.0, "output": 15.0} for t in ("cheap", "mid", "strong")}
)


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """``(event, data)`` pairs of an SDK-style SSE stream."""
    out: list[tuple[str, Any]] = []
    event, data = "", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            out.append((event, json.loads("\n".join(data))))
            event, data = "", []
    return out


def test_a_cache_hit_streams_token_by_token_and_the_stream_says_it_was_a_hit(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(delay=0.02, env={"GRAPHYARD_PRICES": PRICES})
    with server.client() as client:
        live = read_stream(client, "first", {"content": QUESTION})
        cached = read_stream(client, "second", {"content": QUESTION})

    assert live.status == cached.status == 200
    assert not any(isinstance(f, dict) and "cache" in f for f in live.frames)
    assert cached.tokens == live.tokens and live.tokens
    hit = cached.first("cache")["cache"]
    assert hit["hit"] is True and hit["scope"] == "shared" and hit["saved_usd"] > 0
    token_frames = [i for i, f in enumerate(cached.frames) if isinstance(f, dict) and "token" in f]
    assert len(token_frames) > 3  # streamed, not one block
    assert cached.frames.index({"cache": hit}) < token_frames[0]
    assert cached.summary["cost_usd"] == 0 and live.summary["cost_usd"] > 0


def test_sdk_streams_show_the_hit_as_a_custom_event_and_stream_its_tokens(
    start_server: Callable[..., ServerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(env={"GRAPHYARD_PRICES": PRICES})
    body = {
        "assistant_id": "support",
        "input": {"messages": [{"type": "human", "content": QUESTION}]},
        "stream_mode": ["custom", "messages-tuple"],
    }
    with server.client() as client:
        runs = []
        for _ in range(2):
            thread = client.post("/threads", json={}).json()["thread_id"]
            with client.stream("POST", f"/threads/{thread}/runs/stream", json=body) as response:
                assert response.status_code == 200
                runs.append(sse_events(response))

    live, cached = runs
    assert not [d for e, d in live if e == "custom"]
    (hit,) = [d for e, d in cached if e == "custom" and d.get("type") == "cache_hit"]
    assert hit["saved_usd"] > 0
    tokens = [
        d[0]["content"]
        for e, d in cached
        if e == "messages" and d[0]["type"] == "AIMessageChunk" and d[0]["content"]
    ]
    assert len(tokens) > 3

    # the counters are in the cache file beside the checkpoints, where the CLI reads them
    from graphyard.cli import app

    monkeypatch.setenv("GRAPHYARD_CHECKPOINTER", f"sqlite:///{server.directory / 'graphyard.db'}")
    result = CliRunner().invoke(app, ["cache", "stats", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    answers = next(r for r in report["caches"] if r["cache"] == "answers")
    assert (answers["hits"], answers["misses"], answers["entries"]) == (1, 1, 1)
    assert answers["saved_usd"] == pytest.approx(hit["saved_usd"], rel=1e-3)
    cleared = CliRunner().invoke(app, ["cache", "clear", "--cache", "answers"])
    assert cleared.exit_code == 0 and "removed 1" in cleared.output
