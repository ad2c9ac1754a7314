"""Structured logs of real runs: every line logged during a run carries its ids, and no line
carries message content unless ``log_content`` asks for it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, MessagesState, StateGraph

from graphyard.config import TIERS, Settings, TierConfig
from graphyard.observability import JsonFormatter
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

SECRET = "zebra-crossing-7731"
ANSWER = "Penguins-answer-5520"
node_log = logging.getLogger("tests.user_graph")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above, as graphyard serve writes it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def _user_graph(runtime: Any) -> StateGraph[MessagesState]:
    """A user's graph: a node that logs (on the loop and in a worker thread) and calls a model."""
    model = runtime.tiers["cheap"].chat_model

    async def answer(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        node_log.info("answering %d messages", len(state["messages"]))
        await asyncio.to_thread(node_log.info, "looked something up in a thread")
        return {"messages": [await model.ainvoke(state["messages"], config)]}

    graph = StateGraph(MessagesState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    return graph


async def _chat(settings: Settings, log_content: bool) -> None:
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    settings = settings.model_copy(
        update={**tiers, "api_keys": {"sk-alice": "alice"}, "log_content": log_content}
    )
    model = ScriptedChatModel(responses=[AIMessage(content=ANSWER)])
    app = create_app(settings, graph=_user_graph, models=dict.fromkeys(TIERS, model))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://g", headers={"x-api-key": "sk-alice"}
        ) as client:
            thread = (await client.post("/threads", json={"thread_id": "logs-1"})).json()
            run = await client.post(
                f"/threads/{thread['thread_id']}/runs/wait",
                json={"assistant_id": "_user_graph", "input": {"messages": [("user", SECRET)]}},
            )
            assert run.status_code == 200, run.text
            await asyncio.sleep(0.2)  # the run's last line is logged once its status is stored


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_every_line_logged_during_a_run_carries_its_ids_and_no_content(
    settings: Settings, json_log: io.StringIO
) -> None:
    await _chat(settings, log_content=False)
    lines = _lines(json_log)
    during = [line for line in lines if line.get("run_id")]
    messages = {line["message"] for line in during}
    assert "answering 1 messages" in messages
    assert "looked something up in a thread" in messages
    events = {line.get("event"): line for line in during}
    assert {"model_call", "run_finished"} <= set(events)
    for line in during:
        assert line["thread_id"] == "logs-1" and line["user_id"] == "alice"
    assert len({line["run_id"] for line in during}) == 1
    call = events["model_call"]
    # a user graph calls its model without Tier.call_config: LangChain's metadata names it
    assert call["tier"] == "unknown" and call["model"] == "scriptedchatmodel:scripted"
    assert call["input_tokens"] > 0 and call["output_tokens"] == 1
    assert events["run_finished"]["status"] == "success"
    text = json_log.getvalue()
    assert SECRET not in text and ANSWER not in text
    assert "prompt" not in call and "answer" not in call


async def test_log_content_puts_the_prompt_and_answer_in_the_model_call_line(
    settings: Settings, json_log: io.StringIO
) -> None:
    await _chat(settings, log_content=True)
    call = next(line for line in _lines(json_log) if line.get("event") == "model_call")
    assert call["prompt"] == [{"role": "human", "content": SECRET}]
    assert call["answer"] == ANSWER
