"""Context management under hostile or long-lived input: pinning a huge adversarial message
stays linear, state stays bounded however many facts a thread plants, stored cache marks
cannot push an Anthropic request past its four breakpoints, one thread's pinned facts never
reach another thread's prompt, and the summary call is labelled with the cheap tier.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.utils import count_tokens_approximately as count
from langgraph.checkpoint.memory import InMemorySaver

from graphyard.agent import build_graph
from graphyard.agent._shop import DemoShop
from graphyard.config import ContextConfig, Settings
from graphyard.context import ContextWindow, build_prompt, extract_pins
from graphyard.models import ScriptedChatModel, Tier

SYSTEM = SystemMessage("You are the support assistant of Northwind Outfitters. Be brief.")
FILLER = "Could you also tell me a bit more about how the delivery and returns work? " * 3
KB = 1024

# Inputs that made the pin patterns (or their overlap check) quadratic: every start
# position re-scanned the rest of the text. At 100 KB each took 4-75 s before the fix
# (0.15 s at most after it); at the 200 KB used here, four times that.
ADVERSARIAL = {
    "spaces after a label": "tracking" + " " * (200 * KB) + "!",
    "tabs after a label": "tracking number" + "\t" * (200 * KB),
    "dotted word run": "a." * (100 * KB),
    "hyphenated run": "a-" * (100 * KB),
    "plus run": "a+" * (100 * KB),
    "domain without an end": "x@" + "b-" * (100 * KB),
    "id-like run": "AB-" * (67 * KB),
    "thousands of addresses": "a.b@" * (50 * KB),
}


def text_of(prompt: list[BaseMessage]) -> str:
    parts = []
    for message in prompt:
        content = message.content
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [b["text"] if isinstance(b, dict) else str(b) for b in content]
    return "\n".join(parts)


def echo_usage(prompt: list[BaseMessage]) -> AIMessage:
    real = count(prompt)
    return AIMessage(
        "Happy to help.",
        usage_metadata={"input_tokens": real, "output_tokens": 4, "total_tokens": real + 4},
    )


# A hang guard, not a speed assertion: linear patterns need well under a second for each
# of these, quadratic ones from 17 s to minutes, so a regression fails instead of stalling.
@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_pinning_a_200_kb_adversarial_message_finishes(name: str) -> None:
    text = ADVERSARIAL[name]

    pins = extract_pins([HumanMessage(text, id="h")])

    assert all(len(p["value"]) <= 320 for p in pins)


def test_pins_are_still_found_around_a_huge_adversarial_message() -> None:
    text = "tracking number: 1Z999AA10123456784 " + "a." * (20 * KB) + " write to jo@example.com"

    values = {p["value"] for p in extract_pins([HumanMessage(text)])}

    assert {"1Z999AA10123456784", "jo@example.com"} <= values


def test_the_context_state_stays_bounded_however_many_facts_a_thread_plants() -> None:
    window = ContextWindow(window=4000, max_tokens=200)
    history: list[BaseMessage] = []
    state: Any = None
    sizes = {}
    for turn in range(1, 301):
        history.append(
            HumanMessage(
                f"my email is user{turn}@example.com, order A{1000 + turn}, "
                f"account number 4471-9902-{turn:04d}. {FILLER}",
                id=f"h{turn}",
            )
        )
        state = window.plan(history, state, system=SYSTEM)
        history.append(echo_usage(build_prompt(history, state, SYSTEM)).model_copy(
            update={"id": f"a{turn}"}
        ))  # fmt: skip
        sizes[turn] = len(json.dumps(state))

    # the pins kept are capped by pin_tokens: from there on the state no longer grows
    cap = 2 * window.config.pin_tokens * 4  # two blocks' worth of pin text, in characters
    assert sizes[300] <= sizes[150] * 1.05, sizes
    assert sizes[300] < 8 * cap, "pins, the block and the plan stay within a few caps"
    assert "user1@example.com" not in json.dumps(state), "the oldest facts gave way"


def test_stored_cache_marks_never_push_an_anthropic_request_past_four_breakpoints() -> None:
    from langchain_anthropic import ChatAnthropic

    model = ChatAnthropic(model="claude-sonnet-4-5", api_key="test-key")  # type: ignore[call-arg]
    window = ContextWindow.for_model(model, max_tokens=1024)
    mark = {"type": "ephemeral"}
    history: list[BaseMessage] = []
    for i in range(6):  # a client that sent its own cache marks on every message
        history += [
            HumanMessage([{"type": "text", "text": f"q{i}", "cache_control": mark}], id=f"h{i}"),
            AIMessage([{"type": "text", "text": f"a{i}", "cache_control": mark}], id=f"a{i}"),
        ]
    history.append(HumanMessage("and now?", id="last"))
    stored = [m.model_copy(deep=True) for m in history]

    state = window.plan(history, None, system=SYSTEM)
    payload = model._get_request_payload(build_prompt(history, state, SYSTEM))

    assert str(payload).count("'cache_control'") == 2
    assert payload["system"][0]["cache_control"] == mark
    assert payload["messages"][-1]["content"][-1]["cache_control"] == mark
    assert history == stored, "the stored messages keep their marks"


@pytest.fixture
def shop_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    seeded = tmp_path_factory.mktemp("safety-shop") / "shop.db"
    DemoShop(seeded).tickets()
    shutil.copyfile(seeded, settings.shop_db)
    return settings


async def test_one_threads_pinned_facts_never_reach_another_threads_prompt(
    shop_settings: Settings,
) -> None:
    model = ScriptedChatModel(responses=[echo_usage])
    tier = Tier("strong", "scripted:strong", model, 1500, 200, supports_tools=True)
    graph = build_graph({"strong": tier}, shop_settings).compile(checkpointer=InMemorySaver())
    a: Any = {"configurable": {"thread_id": "a", "tier": "strong"}}
    b: Any = {"configurable": {"thread_id": "b", "tier": "strong"}}

    await graph.ainvoke({"messages": [("user", "I'm dana@example.org, order A1020.")]}, a)
    await graph.ainvoke({"messages": [("user", "I'm kim@example.com, order A1017.")]}, b)
    for turn in range(15):  # interleaved, so both windows jump and show their pins
        for cfg in (a, b):
            before = len(model.calls)
            await graph.ainvoke({"messages": [("user", f"question {turn}: {FILLER}")]}, cfg)
            seen = "\n".join(text_of(p) for p in model.calls[before:])
            other = ("kim@example.com", "A1017") if cfg is a else ("dana@example.org", "A1020")
            assert not any(fact in seen for fact in other), (cfg, turn)

    last_b = text_of(model.calls[-1])
    assert "kim@example.com" in last_b and "A1017" in last_b, "b's own facts stay pinned"
    state_b = (await graph.aget_state(b)).values
    assert state_b["context"]["plan"]["start"] > 0, "b's first turn must have left the window"


class MetadataSpy(BaseCallbackHandler):
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.calls.append(dict(kwargs.get("metadata") or {}))


async def test_the_summary_call_carries_the_cheap_tiers_name_and_model_for_the_ledger(
    shop_settings: Settings,
) -> None:
    settings = shop_settings.model_copy(
        update={"context": ContextConfig(summary=True, summary_tokens=40)}
    )
    cheap = ScriptedChatModel(responses=["SUMMARY: Dana asked about A1020."])
    strong = ScriptedChatModel(responses=[echo_usage])
    tiers = {
        "cheap": Tier("cheap", "scripted:cheap", cheap, 1500, 200, supports_tools=True),
        "strong": Tier("strong", "scripted:strong", strong, 1500, 200, supports_tools=True),
    }
    graph = build_graph(tiers, settings).compile(checkpointer=InMemorySaver())  # type: ignore[arg-type]
    spy = MetadataSpy()
    cfg: Any = {"configurable": {"thread_id": "s", "tier": "strong"}, "callbacks": [spy]}

    for turn in range(30):
        await graph.ainvoke({"messages": [("user", f"question {turn}: {FILLER}")]}, cfg)

    summaries = [m for m in spy.calls if m.get("graphyard_tier") == "cheap"]
    answers = [m for m in spy.calls if m.get("graphyard_tier") == "strong"]
    assert len(summaries) == len(cheap.calls) > 0
    assert all(m["graphyard_model"] == "scripted:cheap" for m in summaries)
    assert len(answers) == len(strong.calls)
    assert len(spy.calls) == len(summaries) + len(answers), "every call is labelled"
