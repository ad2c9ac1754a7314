"""What the ``context`` state key costs in a checkpoint, and that older stored shapes still load.

A checkpointer stores the ``context`` value in every checkpoint (about eight per agent turn),
so its size is paid many times a turn: these tests hold it to a bound, check that the
compact form plans exactly what the readable one does, and run the reference agent on real
SQLite over a thread whose stored ``context`` has an older or an unknown shape.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.utils import count_tokens_approximately as count

from graphyard.agent import build_graph
from graphyard.config import Settings
from graphyard.context import ContextWindow, build_prompt, extract_pins
from graphyard.persistence import open_saver
from graphyard.testing import ScriptedChatModel, scripted_tiers

SYSTEM = SystemMessage("You are the support assistant of Northwind Outfitters. Be brief.")
FILLER = "Could you tell me more about delivery and returns? " * 3

STORED_BOUND = 3_000
"""Bytes of the stored ``context`` (as JSON) after 300 turns that each plant three facts, at
the default ``pin_tokens`` (400). The readable form is about 17 KB there (120 pins naming
their message by a 36-character id, and the rendered block besides); packed, about 2.6 KB."""


def uid(n: int) -> str:
    """A message id as long as the agent's (a UUID), so sizes are the agent's."""
    return str(uuid.UUID(int=n))


def planted(turn: int, rng: random.Random) -> str:
    return (
        f"Turn {turn}: my email is user{turn}@example.com, order A{1000 + turn}, account "
        f"number {rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}-{turn:03d}. {FILLER}"
    )


def answer(prompt: list[BaseMessage]) -> AIMessage:
    real = count(prompt)
    return AIMessage(
        "Happy to help with that; the rest follows by email shortly.",
        usage_metadata={"input_tokens": real, "output_tokens": 20, "total_tokens": real + 20},
    )


def test_the_stored_context_stays_small_after_300_turns_of_planted_facts() -> None:
    window = ContextWindow(window=4096, max_tokens=256)
    rng = random.Random(0)
    history: list[BaseMessage] = []
    stored: Any = None
    sizes = []
    for turn in range(300):
        history.append(HumanMessage(planted(turn, rng), id=uid(2 * turn)))
        readable = window.plan(history, stored, system=SYSTEM)
        stored = window.pack(history, readable)
        sizes.append(len(json.dumps(stored)))
        prompt = build_prompt(history, stored, SYSTEM)
        assert prompt == build_prompt(history, readable, SYSTEM), turn
        history.append(answer(prompt).model_copy(update={"id": uid(2 * turn + 1)}))

    readable_size = len(json.dumps(readable))
    assert max(sizes) < STORED_BOUND, (max(sizes), readable_size)
    assert readable_size > 5 * max(sizes), "the readable form is the one that must not be stored"
    assert len(readable["pins"]) > 100, "the pin cap must have been reached"
    # the oldest facts have left the window, and the newest outside it are still in the prompt
    last_outside = readable["plan"]["start"] // 2 - 1  # two messages a turn
    assert last_outside > 200, "the window must have moved far"
    for turn in range(last_outside - 10, last_outside + 1):
        assert f"user{turn}@example.com" in text(prompt[:1]), "a fact outside it is in the block"
        assert f"user{turn}@example.com" not in text(prompt[1:])
    assert "user299@example.com" in text(prompt[1:]), "the newest turn is in the window"


def text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


def test_a_packed_context_plans_the_same_windows_as_the_readable_one() -> None:
    window = ContextWindow(window=3000, max_tokens=200)
    rng = random.Random(1)
    history: list[BaseMessage] = []
    readable: Any = None
    packed: Any = None
    for turn in range(80):
        history.append(HumanMessage(planted(turn, rng), id=f"h{turn}"))
        readable = window.plan(history, readable, system=SYSTEM)
        again = window.plan(history, packed, system=SYSTEM)
        packed = window.pack(history, again)
        assert again == readable, turn
        history.append(answer(build_prompt(history, packed, SYSTEM)))


def test_tool_results_are_stored_as_references_to_their_messages_and_read_back_the_same() -> None:
    window = ContextWindow(window=3000, max_tokens=200)
    history: list[BaseMessage] = []
    readable: Any = None
    packed: Any = None
    shown_tools = 0
    for turn in range(30):
        question = f"question {turn}: where is order A{2000 + turn}? {FILLER}"
        call = ToolCall(name="search_help_articles", args={"query": question}, id=f"c{turn}")
        history += [
            HumanMessage(question, id=uid(3 * turn)),
            AIMessage("", tool_calls=[call], id=uid(3 * turn + 1)),
            ToolMessage(
                f"Order A{2000 + turn}: shipped, tracking 1Z{turn:04d}AA1012345. " * 8,
                tool_call_id=call["id"], name="search_help_articles", id=uid(3 * turn + 2),
            ),
        ]  # fmt: skip
        readable = window.plan(history, readable, system=SYSTEM)
        again = window.plan(history, packed, system=SYSTEM)
        assert again == readable, turn
        packed = window.pack(history, again)
        tools = [p for p in readable["pins"] if p["kind"] == "tool"]
        assert all(p["label"] not in json.dumps(packed) for p in tools)
        assert sum(row[:2] == [None, None] for row in packed["pins"]) == len(tools)
        prompt = build_prompt(history, packed, SYSTEM)
        shown_tools += "- search_help_articles(" in str(prompt[0].content)
        history.append(answer(prompt))

    assert shown_tools >= 3, "tool results outside the window must have been in the block"


def test_a_fact_seen_again_later_keeps_its_newer_source_through_packing() -> None:
    history = [
        HumanMessage("order A1001 " + "x" * 8000, id="first"),
        AIMessage("ok", id="a"),
        HumanMessage("about A1001 again, and jo@example.com", id="again"),
    ]
    window = ContextWindow(window=2000, max_tokens=200)

    state = window.plan(history, None, system=SYSTEM)
    back = window.ensure(history, window.pack(history, state), SYSTEM)

    assert [(p["value"], p["source"]) for p in back["pins"]] == [
        ("A1001", "again"),
        ("jo@example.com", "again"),
    ]
    assert back["block"] == state["block"] == "", "both facts are inside the window"


@pytest.mark.parametrize(
    "shape",
    ["readable", "older", "unknown"],
)
async def test_the_agent_answers_on_a_thread_whose_stored_context_has_another_shape(
    tmp_path: Path, shape: str
) -> None:
    settings = Settings(shop_db=tmp_path / "shop.db")
    model = ScriptedChatModel(responses=[answer])
    tiers = scripted_tiers(model, context_window=2048, max_tokens=128)
    cfg: Any = {"configurable": {"thread_id": "t", "tier": "mid"}}
    rng = random.Random(2)
    async with open_saver(f"sqlite:///{tmp_path / 'cp.sqlite'}", settings=settings) as saver:
        graph = build_graph(tiers, settings).compile(checkpointer=saver)
        for turn in range(12):
            await graph.ainvoke({"messages": [("user", planted(turn, rng))]}, cfg)
        values = (await graph.aget_state(cfg)).values
        messages = values["messages"]
        window = ContextWindow(window=2048, max_tokens=128)
        old = {
            "readable": window.plan(messages, None),  # what graphyard stored before packing
            "older": {  # pins without a source, as no version wrote them: read again
                "plan": values["context"]["plan"],
                "pins": [{"kind": "email", "value": "x@example.com"}],
                "scanned": len(messages),
            },
            "unknown": ["not", "a", "context"],
        }[shape]
        await graph.aupdate_state(cfg, {"context": old})

        await graph.ainvoke({"messages": [("user", "which email did I give first?")]}, cfg)
        after = (await graph.aget_state(cfg)).values

    assert after["messages"][-1].content.startswith("Happy to help")
    assert after["context"]["v"] == 2, "the next write stores the compact form"
    assert len(json.dumps(after["context"])) < len(json.dumps(window.plan(messages, None)))
    # the facts of the first turns are pinned again, whatever was stored
    assert "user0@example.com" in text(model.calls[-1][:1])
    pinned = {p["value"] for p in window.ensure(after["messages"], after["context"])["pins"]}
    assert {p["value"] for p in extract_pins(messages[:1])} <= pinned
