"""Context management: chunked windows, pinned facts, summaries, exact and rescaled counts,
Anthropic cache breakpoints, and the same step in a user's own graph.

Every "fits" below is checked with the counter the provider would use: the approximate one
for scripted models (which report it as their ``input_tokens``), or the test's own exact
counter where a test plays a provider with one.
"""

from __future__ import annotations

import copy
import itertools
import random
import shutil
from collections.abc import Sequence
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
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from graphyard.agent import build_graph
from graphyard.agent._shop import DemoShop
from graphyard.config import ContextConfig, Settings
from graphyard.context import (
    ContextWindow,
    build_prompt,
    context_node,
    context_prompt,
    exact_counter,
    extract_pins,
    merge_pins,
    plan_window,
    render_pins,
)
from graphyard.models import ScriptedChatModel, Tier

SYSTEM = SystemMessage("You are the support assistant of Northwind Outfitters. Be brief.")
FILLER = "Could you also tell me a bit more about how the delivery and returns work? " * 3


# --- helpers -------------------------------------------------------------------------------


def text_of(prompt: Sequence[BaseMessage]) -> str:
    parts = []
    for message in prompt:
        content = message.content
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [b["text"] if isinstance(b, dict) else str(b) for b in content]
    return "\n".join(parts)


def assert_tool_pairs_whole(view: Sequence[BaseMessage]) -> None:
    called = {c["id"] for m in view if isinstance(m, AIMessage) for c in m.tool_calls}
    answered = {m.tool_call_id for m in view if isinstance(m, ToolMessage)}
    assert called == answered, f"split tool pairs: {called ^ answered}"


def lookup(order: str, tag: str, result: str) -> list[BaseMessage]:
    call = ToolCall(name="order_status", args={"order_id": order}, id=f"call-{tag}")
    return [
        AIMessage("", tool_calls=[call], id=f"ai-{tag}"),
        ToolMessage(result, tool_call_id=call["id"], name="order_status", id=f"tool-{tag}"),
    ]


def support_thread(turns: int, *, seed: int = 0) -> list[BaseMessage]:
    """A support conversation with facts planted in its first turns, then chatter and lookups."""
    rng = random.Random(seed)
    messages: list[BaseMessage] = [
        HumanMessage("Hi, my email is dana.reyes@example.org and my order is A1020.", id="h0"),
        AIMessage("Thanks Dana, I have your order.", id="a0"),
        HumanMessage(
            "My account number is 4471-9902-318. Please never call me, email only.", id="h1"
        ),
        *lookup("A1020", "t1", "Order A1020: shipped with UPS, tracking 1Z999AA10123456784."),
        AIMessage("It shipped with UPS.", id="a1"),
    ]
    for turn in range(2, turns):
        messages.append(
            HumanMessage(f"question {turn}: {FILLER[: rng.randint(60, 220)]}", id=f"h{turn}")
        )
        if turn % 4 == 0:
            messages += lookup(f"A2{turn:03d}", f"t{turn}", "Order status: processing. " * 4)
        messages.append(
            AIMessage(
                f"answer {turn}: " + "we can help with that. " * rng.randint(2, 8), id=f"a{turn}"
            )
        )
    return messages


def answer_with_usage(scale: float = 1.0) -> Any:
    """A scripted response whose usage reports ``scale`` times the approximate count."""

    def respond(prompt: list[BaseMessage]) -> AIMessage:
        real = int(count(prompt) * scale)
        return AIMessage(
            "Happy to help.",
            usage_metadata={"input_tokens": real, "output_tokens": 4, "total_tokens": real + 4},
        )

    return respond


# --- pinned facts -----------------------------------------------------------------------------


def test_pins_keep_ids_emails_account_numbers_phones_preferences_and_tool_results() -> None:
    history = [
        HumanMessage(
            "Order A1020 arrived broken. Reach me at dana@example.org or +1 415 555 0100; "
            "account number 4471-9902-318, invoice INV-20931. I prefer a refund over a swap."
        ),
        *lookup("A1020", "x", "Order A1020: delivered Tuesday, tracking 1Z999AA10123456784."),
        HumanMessage("thanks, that is all"),
    ]

    pins = {(p["label"], p["value"]) for p in extract_pins(history)}

    assert ("order id", "A1020") in pins
    assert ("email", "dana@example.org") in pins
    assert ("phone", "+1 415 555 0100") in pins
    assert ("account number", "4471-9902-318") in pins
    assert ("invoice id", "INV-20931") in pins
    assert ("the user said", "I prefer a refund over a swap.") in pins
    assert (
        "order_status(A1020)",
        "Order A1020: delivered Tuesday, tracking 1Z999AA10123456784.",
    ) in pins
    assert not any("thanks" in value for _, value in pins)


def test_pinning_is_deterministic_and_reading_in_pieces_equals_reading_at_once() -> None:
    history = support_thread(40)

    whole = extract_pins(history)
    pieces: list[Any] = []
    for a in range(0, len(history), 7):
        pieces = merge_pins(pieces, extract_pins(history[: a + 7], start=a))

    assert whole == extract_pins(history)
    assert merge_pins([], whole) == pieces


def test_a_failed_tool_call_is_not_pinned_as_a_fact() -> None:
    call = ToolCall(name="order_status", args={"order_id": "A9999"}, id="c")
    history = [
        AIMessage("", tool_calls=[call]),
        ToolMessage("boom", tool_call_id="c", name="order_status", status="error"),
    ]

    assert extract_pins(history) == []


def test_the_pin_block_stays_within_its_tokens_and_tool_results_give_way_first() -> None:
    history = [HumanMessage("my email is kim@example.com and order A1001")]
    for i in range(20):
        history += lookup(f"A10{i:02d}", f"t{i}", f"Order A10{i:02d}: " + "details " * 20)

    block = render_pins(extract_pins(history), max_tokens=120)

    assert count([SystemMessage(block)]) <= 120 + 6
    assert "kim@example.com" in block and "A1001" in block
    assert block.count("order_status(") < 20


# --- the window: pins, chunks, invariants ---------------------------------------------------


def test_facts_from_trimmed_turns_stay_visible_while_last_n_drops_them() -> None:
    history = [*support_thread(120), HumanMessage("Which email and account do you have for me?")]
    window = ContextWindow(window=3000, max_tokens=200)

    state = window.plan(history, None, system=SYSTEM)
    prompt = build_prompt(history, state, SYSTEM)
    last_n = [SYSTEM, *history[plan_window(history, window.budget, system=SYSTEM)["start"] :]]

    assert state["plan"]["start"] > 10, "the early turns must have been trimmed"
    for fact in ("dana.reyes@example.org", "A1020", "4471-9902-318", "never call me", "1Z999AA"):
        assert fact in text_of(prompt), fact
        assert fact not in text_of(last_n), fact
    assert count(prompt) <= window.budget


def test_a_fact_still_inside_the_window_is_not_repeated_in_the_block() -> None:
    history = [HumanMessage("my email is lee@example.com", id="h"), AIMessage("ok", id="a")]
    window = ContextWindow(window=4000, max_tokens=200)

    state = window.plan(history, None, system=SYSTEM)

    assert state["plan"]["start"] == 0
    assert state["block"] == ""
    assert [p["value"] for p in state["pins"]] == ["lee@example.com"]


def test_pins_can_be_switched_off_per_tier() -> None:
    settings = Settings(strong={"model": "anthropic:claude-sonnet-4-5", "context": {"pins": False}})
    history = [*support_thread(120), HumanMessage("which email?")]
    off = ContextWindow(window=3000, max_tokens=200, config=settings.tier_context("strong"))
    on = ContextWindow(window=3000, max_tokens=200, config=settings.tier_context("mid"))

    assert off.plan(history, None, system=SYSTEM)["block"] == ""
    assert "dana.reyes@example.org" in on.plan(history, None, system=SYSTEM)["block"]


def grow(
    window: ContextWindow, turns: int, *, seed: int = 1
) -> list[tuple[list[BaseMessage], Any]]:
    """Plays a conversation turn by turn through ``window``: (prompt, state) per model call."""
    rng = random.Random(seed)
    history: list[BaseMessage] = []
    state: Any = None
    calls = []
    for turn in range(turns):
        history.append(
            HumanMessage(
                f"turn {turn}: order A{1000 + turn} " + FILLER[: rng.randint(40, 200)],
                id=f"h{turn}",
            )
        )
        if turn % 3 == 0:
            history += lookup(
                f"A{1000 + turn}", f"t{turn}", "Order status: shipped. " * rng.randint(1, 6)
            )
        state = window.plan(history, state, system=SYSTEM)
        prompt = build_prompt(history, state, SYSTEM)
        calls.append((prompt, state))
        history.append(answer_with_usage()(prompt).model_copy(update={"id": f"a{turn}"}))
    return calls


def test_the_window_start_moves_in_chunks_so_the_prompt_prefix_stays_stable() -> None:
    chunked = grow(ContextWindow(window=2500, max_tokens=200), 80)
    sliding = grow(ContextWindow(window=2500, max_tokens=200, config=ContextConfig(refill=1.0)), 80)

    def starts(calls: list[tuple[list[BaseMessage], Any]]) -> list[int]:
        return [state["plan"]["start"] for _, state in calls]

    chunk_moves = sum(a != b for a, b in itertools.pairwise(starts(chunked)))
    slide_moves = sum(a != b for a, b in itertools.pairwise(starts(sliding)))
    assert 0 < chunk_moves * 3 <= slide_moves, (chunk_moves, slide_moves)
    # between moves, each prompt begins with the whole previous prompt but its last answer
    for (before, s1), (after, s2) in itertools.pairwise(chunked):
        if s1["plan"]["start"] == s2["plan"]["start"]:
            assert after[: len(before)] == before
    for prompt, state in chunked + sliding:
        assert count(prompt) <= state["budget"]
        assert isinstance(prompt[1], HumanMessage)
        assert_tool_pairs_whole(prompt[1:])


def test_a_five_thousand_message_thread_with_pins_and_chunks_never_exceeds_the_cap() -> None:
    rng = random.Random(5000)
    history: list[BaseMessage] = [HumanMessage("I am jo@example.com, order A1001.", id="first")]
    window = ContextWindow(window=6000, max_tokens=300, config=ContextConfig(refill=0.5))
    state: Any = None
    before: list[BaseMessage] = []
    while len(history) < 5000:
        n = len(history)
        history.append(HumanMessage("h" * rng.choice([1, 40, 300, 1500, 9000]), id=f"h{n}"))
        for k in range(rng.randint(0, 2)):
            history += lookup(f"A{rng.randint(1000, 9999)}", f"{n}-{k}", "r" * rng.randint(0, 2000))
        state = window.plan(history, state, system=SYSTEM)
        prompt = build_prompt(history, state, SYSTEM)
        assert count(prompt) <= window.budget
        assert isinstance(prompt[1], HumanMessage)
        assert_tool_pairs_whole(prompt[1:])
        history.append(AIMessage("a" * rng.randint(0, 600), id=f"a{n}"))
        if len(history) > 4990 and not before:
            before = copy.deepcopy(history)
    assert len(history) >= 5000
    assert "jo@example.com" in text_of(prompt)
    assert state["jumps"] < len([m for m in history if isinstance(m, HumanMessage)]) / 2
    assert history[: len(before)] == before


def test_stored_messages_are_never_modified_by_planning_or_by_cache_breakpoints() -> None:
    history = [*support_thread(60), HumanMessage("h" * 9000, id="big")]
    frozen = copy.deepcopy(history)
    window = ContextWindow(window=3000, max_tokens=200, cache_breakpoints=True)

    state = window.plan(history, None, system=SYSTEM)
    prompt = build_prompt(history, state, SYSTEM)
    prompt[-1].content[-1]["text"] = "changed in the prompt only"  # type: ignore[index]

    assert state["plan"]["truncate"] is not None
    assert history == frozen


def test_a_rewritten_history_is_read_again_and_the_window_replanned() -> None:
    history = support_thread(60)
    window = ContextWindow(window=2500, max_tokens=200)
    state = window.plan(history, None, system=SYSTEM)

    rewritten = [HumanMessage("new start: order B77001 please", id="n0"), *history[40:]]
    again = window.plan(rewritten, state, system=SYSTEM)

    assert {p["value"] for p in again["pins"]} >= {"B77001"}
    assert "dana.reyes@example.org" not in {p["value"] for p in again["pins"]}
    assert count(build_prompt(rewritten, again, SYSTEM)) <= window.budget


# --- token counts -------------------------------------------------------------------------------


def test_the_scale_is_learned_from_the_last_real_input_tokens_and_keeps_prompts_under_the_cap() -> (
    None
):
    window = ContextWindow(window=3000, max_tokens=200, name="heavy")
    respond = answer_with_usage(1.6)  # a tokenizer that needs 60% more tokens than estimated
    history: list[BaseMessage] = []
    state: Any = None
    real = []
    for turn in range(60):
        history.append(HumanMessage(f"q{turn} " + FILLER, id=f"h{turn}"))
        state = window.plan(history, state, system=SYSTEM)
        prompt = build_prompt(history, state, SYSTEM)
        answer = respond(prompt)
        real.append(answer.usage_metadata["input_tokens"])
        history.append(answer.model_copy(update={"id": f"a{turn}"}))

    assert state["scales"]["heavy"] == pytest.approx(1.6, rel=0.02)
    assert max(real) > window.budget / 2, "the conversation must have reached the budget"
    assert all(r <= window.budget for r in real[1:]), "after one answer the scale is known"


def test_an_exact_counter_is_asked_only_near_the_budget_and_its_verdict_wins() -> None:
    asked: list[int] = []

    def exact(messages: Sequence[BaseMessage], tools: Sequence[Any]) -> int:
        tokens = 2 * count(messages)  # this provider counts twice what we estimate
        asked.append(tokens)
        return tokens

    window = ContextWindow(window=3000, max_tokens=200, exact=exact)
    import asyncio

    small = [HumanMessage("hello", id="h")]
    state = asyncio.run(window.aplan(small, None, system=SYSTEM))
    assert asked == [] and "exact" not in state, "a small prompt cannot overflow: not counted"

    history = [*support_thread(80), HumanMessage("and now?", id="last")]
    state = asyncio.run(window.aplan(history, None, system=SYSTEM))
    prompt = build_prompt(history, state, SYSTEM)

    assert asked, "a prompt near the budget must be counted exactly"
    assert asked[0] > window.budget
    assert exact(prompt, []) <= window.budget
    assert state["scales"][window.name] >= 2.0


def test_only_anthropic_models_offer_an_exact_counter() -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    anthropic = ChatAnthropic(model="claude-sonnet-4-5", api_key="test-key")  # type: ignore[call-arg]
    openai = ChatOpenAI(model="gpt-4.1-mini", api_key="test-key")  # type: ignore[arg-type]

    assert exact_counter(anthropic) is not None
    assert exact_counter(openai) is None
    assert exact_counter(ScriptedChatModel()) is None


# --- Anthropic cache breakpoints ------------------------------------------------------------------


def test_anthropic_requests_carry_breakpoints_on_the_system_text_and_the_last_message() -> None:
    from langchain_anthropic import ChatAnthropic

    model = ChatAnthropic(model="claude-sonnet-4-5", api_key="test-key")  # type: ignore[call-arg]
    window = ContextWindow.for_model(model, max_tokens=1024)
    history = [*support_thread(6), *lookup("A1020", "last", "Order A1020: delivered.")]

    state = window.plan(history, None, system=SYSTEM)
    payload = model._get_request_payload(build_prompt(history, state, SYSTEM))

    assert window.cache_breakpoints and state["breakpoints"]
    assert payload["system"][0]["cache_control"] == {"type": "ephemeral"}
    last = payload["messages"][-1]["content"][-1]
    assert last["type"] == "tool_result" and last["cache_control"] == {"type": "ephemeral"}
    marks = str(payload).count("'cache_control'")
    assert 2 <= marks <= 4, "Anthropic allows at most four breakpoints"


def test_other_models_get_plain_prompts_without_breakpoints() -> None:
    window = ContextWindow.for_model(ScriptedChatModel(), window=8192, max_tokens=256)
    history = support_thread(4)

    prompt = build_prompt(history, window.plan(history, None, system=SYSTEM), SYSTEM)

    assert "cache_control" not in str([m.content for m in prompt])
    assert isinstance(prompt[0].content, str)


# --- running summary ----------------------------------------------------------------------------


async def test_the_summary_is_written_once_per_jump_by_the_cheap_model_and_kept_in_state() -> None:
    summarizer = ScriptedChatModel(responses=["Dana (dana.reyes@example.org) asked about A1020."])
    window = ContextWindow(
        window=2500,
        max_tokens=200,
        config=ContextConfig(summary=True, summary_tokens=60),
        summarizer=summarizer,
    )
    history: list[BaseMessage] = []
    state: Any = None
    for turn in range(60):
        history.append(HumanMessage(f"q{turn} " + FILLER, id=f"h{turn}"))
        state = await window.aplan(history, state, system=SYSTEM)
        prompt = build_prompt(history, state, SYSTEM)
        assert count(prompt) <= window.budget
        history.append(AIMessage("answer " * 30, id=f"a{turn}"))

    assert len(summarizer.calls) == state["jumps"] - 1 > 0, "one call per jump, none before"
    assert state["summary"].startswith("Dana")
    assert state["summarized"] == state["plan"]["start"]
    assert "Summary of the earlier conversation" in text_of(prompt)
    # each call summarises only what left the window since the last one
    assert "q0 " in text_of(summarizer.calls[0]) and "q0 " not in text_of(summarizer.calls[-1])


async def test_the_summary_is_off_by_default_and_costs_no_call() -> None:
    summarizer = ScriptedChatModel(responses=["never"])
    window = ContextWindow(window=2500, max_tokens=200, summarizer=summarizer)
    history = support_thread(80)

    state = await window.aplan(history, None, system=SYSTEM)

    assert state["plan"]["start"] > 0 and summarizer.calls == []
    assert "summary" not in state


# --- the reference agent and users' graphs ---------------------------------------------------------


@pytest.fixture(scope="module")
def seeded_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("context-shop") / "shop.db"
    DemoShop(path).tickets()
    return path


@pytest.fixture
def shop_settings(settings: Settings, seeded_shop: Path) -> Settings:
    shutil.copyfile(seeded_shop, settings.shop_db)
    return settings


async def test_the_reference_agent_keeps_early_facts_and_a_stable_cached_prefix(
    shop_settings: Settings,
) -> None:
    model = ScriptedChatModel(responses=[answer_with_usage()])
    tier = Tier("strong", "anthropic:claude-sonnet-4-5", model, 1500, 200, supports_tools=True)
    graph = build_graph({"strong": tier}, shop_settings).compile(checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "t", "tier": "strong"}}
    budget = int(1500 * shop_settings.context_fraction) - 200

    await graph.ainvoke({"messages": [("user", "I'm dana@example.org, order A1020.")]}, cfg)
    for turn in range(30):
        await graph.ainvoke({"messages": [("user", f"question {turn}: {FILLER}")]}, cfg)
    state = (await graph.aget_state(cfg)).values

    last = model.calls[-1]
    assert "dana@example.org" in text_of(last) and "A1020" in text_of(last)
    assert state["context"]["plan"]["start"] > 0, "the first turn must be outside the window"
    assert last[0].content[0]["cache_control"] == {"type": "ephemeral"}
    assert last[-1].content[-1]["cache_control"] == {"type": "ephemeral"}
    assert all(count(p) <= budget for p in model.calls)
    stable = sum(text_of(b[:2]) == text_of(a[:2]) for a, b in itertools.pairwise(model.calls))
    assert stable >= len(model.calls) / 2, "the prefix must stay put for most turns"
    assert len(state["messages"]) == 2 * 31


async def test_a_user_graph_gets_the_same_step_from_one_node(shop_settings: Settings) -> None:
    model = ScriptedChatModel(responses=[answer_with_usage()])

    class State(MessagesState):
        context: dict

    async def agent(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(context_prompt(state, SYSTEM))]}

    builder = StateGraph(State)
    builder.add_node("context", context_node(model, system=SYSTEM, window=1200, max_tokens=100))
    builder.add_node("agent", agent)
    builder.add_edge(START, "context")
    builder.add_edge("context", "agent")
    graph = builder.compile(checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "u"}}

    await graph.ainvoke({"messages": [("user", "account number 5550-1234-99, order A1003")]}, cfg)
    for turn in range(25):
        await graph.ainvoke({"messages": [("user", f"{turn}: {FILLER}")]}, cfg)

    budget = int(1200 * 0.8) - 100
    assert all(count(p) <= budget for p in model.calls)
    assert "5550-1234-99" in text_of(model.calls[-1])
    assert len((await graph.aget_state(cfg)).values["messages"]) == 52


def test_the_prompt_function_refuses_a_state_without_a_plan() -> None:
    with pytest.raises(ValueError, match="run context_node before"):
        context_prompt({"messages": [HumanMessage("hi")]}, SYSTEM)


def test_a_budget_that_leaves_no_room_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="raise the window"):
        ContextWindow(window=1000, max_tokens=900)


async def test_the_reference_agent_summarises_with_the_cheap_tier_off_the_stream_and_bills_it(
    shop_settings: Settings,
) -> None:
    settings = shop_settings.model_copy(
        update={"context": ContextConfig(summary=True, summary_tokens=40)}
    )
    cheap = ScriptedChatModel(responses=["SUMMARY: Dana asked about A1020 and refunds."])
    strong = ScriptedChatModel(responses=[answer_with_usage()])
    tiers = {
        "cheap": Tier("cheap", "scripted:cheap", cheap, 1500, 200, supports_tools=True),
        "strong": Tier("strong", "scripted:strong", strong, 1500, 200, supports_tools=True),
    }
    graph = build_graph(tiers, settings).compile(checkpointer=InMemorySaver())  # type: ignore[arg-type]
    cfg: Any = {"configurable": {"thread_id": "s", "tier": "strong"}}
    streamed: list[str] = []

    for turn in range(30):
        async for chunk, _ in graph.astream(
            {"messages": [("user", f"question {turn}: {FILLER}")]}, cfg, stream_mode="messages"
        ):
            streamed.append(str(chunk.content))
    state = (await graph.aget_state(cfg)).values

    assert cheap.calls, "the window must have jumped at least once"
    assert state["context"]["summary"].startswith("SUMMARY")
    assert "SUMMARY: Dana" in text_of(strong.calls[-1])
    assert not any("SUMMARY" in token for token in streamed), "summary tokens leaked"
    assert state["usage"]["calls"] == len(strong.calls) + len(cheap.calls)


def test_context_settings_apply_graph_wide_and_a_tier_overrides_only_what_it_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAPHYARD_CONTEXT__REFILL", "0.5")
    monkeypatch.setenv("GRAPHYARD_CONTEXT__PIN_TOKENS", "200")
    monkeypatch.setenv("GRAPHYARD_STRONG__CONTEXT__REFILL", "0.9")
    monkeypatch.setenv("GRAPHYARD_STRONG__CONTEXT__FRACTION", "0.5")

    settings = Settings()
    strong, mid = settings.tier_context("strong"), settings.tier_context("mid")

    assert (strong.refill, strong.pin_tokens, strong.fraction) == (0.9, 200, 0.5)
    assert (mid.refill, mid.pin_tokens, mid.fraction) == (0.5, 200, settings.context_fraction)
    assert ContextWindow(window=10_000, max_tokens=1000, config=strong).budget == 4000
