"""The reference support agent, run end to end on scripted models.

Every model here is a :class:`ScriptedChatModel`: it streams, reports ``usage_metadata`` and
records every prompt it receives, so the tests assert on what a model would have seen and
on what a user gets back (answers, tickets, costs, stored history).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.utils import count_tokens_approximately as count
from langchain_core.runnables import RunnableConfig
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command
from pydantic import Field

from graphyard.agent import DemoShop, build_graph, critique, make_tools
from graphyard.config import TIERS, ModelPrice, Settings, TierName
from graphyard.models import Tier, call_cost
from graphyard.testing import ScriptedChatModel, scripted_tiers

LIMIT_REACHED = "Tool call limit for this message reached"


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def seeded_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo shop seeded once: seeding a fresh file costs ~1.5 s (see test_tools.py)."""
    path = tmp_path_factory.mktemp("seeded") / "shop.db"
    DemoShop(path).tickets()
    return path


@pytest.fixture(autouse=True)
def _own_shop(seeded_shop: Path, settings: Settings) -> None:
    """Each test gets its own copy of the seeded shop, at ``settings.shop_db``."""
    shutil.copyfile(seeded_shop, settings.shop_db)


def config(thread: str = "t", **configurable: Any) -> RunnableConfig:
    return {"configurable": {"thread_id": thread, **configurable}}


def per_tier(**scripts: list[Any]) -> dict[TierName, ScriptedChatModel]:
    """One scripted model per tier, each named after its tier in ``response_metadata``."""
    return {
        name: ScriptedChatModel(responses=scripts.get(name, [f"{name} answer"]), model_name=name)
        for name in TIERS
    }


def compile_graph(tiers: dict[TierName, Tier], settings: Settings, checkpointer: Any = None) -> Any:
    return build_graph(tiers, settings).compile(checkpointer=checkpointer or InMemorySaver())


def asks_for(order_id: str, call_id: str) -> AIMessage:
    """A tool-calling model's reply that looks an order up."""
    return AIMessage(
        "", tool_calls=[ToolCall(name="order_status", args={"order_id": order_id}, id=call_id)]
    )


def usage(inp: int, out: int) -> dict[str, int]:
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


async def ask(graph: Any, text: str, cfg: RunnableConfig) -> dict[str, Any]:
    return await graph.ainvoke({"messages": [("user", text)]}, cfg)


def answered_by(models: dict[TierName, ScriptedChatModel]) -> list[TierName]:
    return [name for name, model in models.items() if model.calls]


# --- routing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tier"),
    [
        ("hello there", "cheap"),
        ("Where is my order A1020?", "cheap"),
        ("My tent arrived broken", "mid"),
        ("I want a refund for my jacket", "mid"),
        ("My lawyer will take legal action", "strong"),
        ("I filed a chargeback with my bank", "strong"),
    ],
)
async def test_the_router_sends_each_request_to_the_cheapest_adequate_tier(
    settings: Settings, text: str, tier: TierName
) -> None:
    models = per_tier()
    graph = compile_graph(scripted_tiers(models), settings)

    state = await ask(graph, text, config())

    assert state["tier"] == tier
    assert answered_by(models) == [tier]
    assert state["messages"][-1].content == f"{tier} answer"


async def test_a_tier_forced_in_the_run_config_overrides_the_router(settings: Settings) -> None:
    models = per_tier()
    graph = compile_graph(scripted_tiers(models), settings)

    forced = await ask(graph, "hello there", config("a", tier="strong"))
    unknown = await ask(graph, "hello there", config("b", tier="premium"))

    assert forced["tier"] == "strong"
    assert unknown["tier"] == "cheap", "an unknown tier name falls back to the router"
    assert [len(models[t].calls) for t in TIERS] == [1, 0, 1]


# --- the planner for models without tool calling -------------------------------------------------


async def test_the_local_planner_looks_the_order_up_and_the_model_sees_its_carrier(
    settings: Settings,
) -> None:
    model = ScriptedChatModel(responses=["Your tent is on its way with UPS."])
    graph = compile_graph(scripted_tiers(model, supports_tools=False), settings)

    state = await ask(graph, "where is A1020?", config())

    _question, call, result, answer = state["messages"]
    assert [c["name"] for c in call.tool_calls] == ["order_status"]
    assert call.tool_calls[0]["args"] == {"order_id": "A1020"}
    assert isinstance(result, ToolMessage) and "UPS" in result.content
    assert answer.content == "Your tent is on its way with UPS."
    [prompt] = model.calls  # planning the lookup took no model call
    assert isinstance(prompt[0], SystemMessage)
    assert [type(m) for m in prompt] == [SystemMessage, HumanMessage]
    assert "where is A1020?" in prompt[1].content
    assert "UPS" in prompt[1].content and "1Z9NW0010020" in prompt[1].content


async def test_the_local_planner_searches_the_help_center_for_policy_questions(
    settings: Settings,
) -> None:
    model = ScriptedChatModel(responses=["Refunds take 5 days."])
    graph = compile_graph(scripted_tiers(model), settings)

    state = await ask(graph, "what is your refund policy?", config())

    assert [c["name"] for c in state["messages"][1].tool_calls] == ["search_help_articles"]
    assert "Refund" in model.calls[0][-1].content


async def test_with_no_tool_calls_allowed_the_local_planner_answers_without_looking_up(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"tool_calls_per_turn": 0})
    model = ScriptedChatModel(responses=["Let me check with the team."])
    graph = compile_graph(scripted_tiers(model), settings)

    state = await ask(graph, "where is A1020?", config())

    assert [m.type for m in state["messages"]] == ["human", "ai"]
    assert "UPS" not in model.calls[0][-1].content


# --- tool-calling models ---------------------------------------------------------------------------


async def test_a_tool_calling_model_gets_the_tool_result_and_then_answers(
    settings: Settings,
) -> None:
    model = ScriptedChatModel(responses=[asks_for("#a1020", "call-1"), "It ships with UPS."])
    graph = compile_graph(scripted_tiers(model, supports_tools=True), settings)

    state = await ask(graph, "where is my tent? order a1020", config())

    assert len(model.calls) == 2
    second = model.calls[1]
    assert isinstance(second[-2], AIMessage) and second[-2].tool_calls[0]["id"] == "call-1"
    result = second[-1]
    assert isinstance(result, ToolMessage)
    assert result.tool_call_id == "call-1"
    assert "Order A1020 is shipped" in result.content and "UPS" in result.content
    assert state["messages"][-1].content == "It ships with UPS."
    assert state["tool_calls_remaining"] == settings.tool_calls_per_turn - 1


def asks_for_both(call_ids: tuple[str, str]) -> AIMessage:
    """A tool-calling model's reply that looks two orders up at once."""
    return AIMessage(
        "",
        tool_calls=[
            ToolCall(name="order_status", args={"order_id": order}, id=call_id)
            for order, call_id in zip(("A1020", "A1003"), call_ids, strict=True)
        ],
    )


async def test_a_model_that_always_asks_for_a_tool_ends_after_tool_calls_per_turn_and_answers(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"tool_calls_per_turn": 3})
    model = ScriptedChatModel(responses=[asks_for("A1020", "again")])
    graph = compile_graph(scripted_tiers(model, supports_tools=True), settings)

    state = await graph.ainvoke(
        {"messages": [("user", "where is A1020?")]}, {**config(), "recursion_limit": 60}
    )

    results = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert [r.status for r in results] == ["success"] * 3
    assert len(model.calls) == 3 + 1
    answer = state["messages"][-1]
    assert isinstance(answer, AIMessage) and not answer.tool_calls
    assert "tool calls allowed" in answer.content
    assert (state["tool_calls_remaining"], state["verdict"]) == (0, "ok")
    assert state["usage"]["calls"] == 4, "the refused request was still paid for"


async def test_asking_for_more_tools_than_remain_gets_limit_reached_results_then_an_answer(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"tool_calls_per_turn": 3})
    model = ScriptedChatModel(
        responses=[
            asks_for_both(("a1", "a2")),
            asks_for_both(("b1", "b2")),  # two more, with one call left: both refused
            "Here is what I found.",
        ]
    )
    graph = compile_graph(scripted_tiers(model, supports_tools=True), settings)

    state = await ask(graph, "where are A1020 and A1003?", config())

    results = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert [(r.tool_call_id, r.status) for r in results] == [
        ("a1", "success"),
        ("a2", "success"),
        ("b1", "error"),
        ("b2", "error"),
    ]
    assert all(LIMIT_REACHED in r.content for r in results[2:])
    assert len(model.calls) == 3
    assert any(LIMIT_REACHED in str(m.content) for m in model.calls[-1]), "the model is told"
    assert state["messages"][-1].content == "Here is what I found."
    assert state["tool_calls_remaining"] == 0


class ToolBindingScriptedModel(ScriptedChatModel):
    """Binds tools the way provider chat models do, and records whether each call had them."""

    tools_per_call: list[bool] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        self.tools_per_call.append(bool(kwargs.get("tools")))
        return super()._generate(messages, stop, run_manager, **kwargs)

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        self.tools_per_call.append(bool(kwargs.get("tools")))
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield chunk


async def test_a_prompt_holding_tool_exchanges_is_sent_with_the_tool_definitions(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"tool_calls_per_turn": 1})
    model = ToolBindingScriptedModel(responses=[asks_for("A1020", "c1"), "It shipped with UPS."])
    graph = compile_graph(scripted_tiers(model, supports_tools=True), settings)

    await ask(graph, "where is A1020?", config())

    assert len(model.calls) == len(model.tools_per_call) == 2
    assert model.tools_per_call[0], "the first call offers the tools"
    for prompt, had_tools in zip(model.calls, model.tools_per_call, strict=True):
        holds_tool_blocks = any(
            isinstance(m, ToolMessage) or (isinstance(m, AIMessage) and m.tool_calls)
            for m in prompt
        )
        assert had_tools or not holds_tool_blocks


async def test_a_second_turn_starts_with_fresh_tool_calls_and_no_revisions(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"tool_calls_per_turn": 1})
    model = ScriptedChatModel(
        responses=[
            asks_for("A1020", "turn1-a"),  # spends the turn's only tool call
            "",  # empty: sent back once, one tier up
            "A1020 shipped with UPS.",
            asks_for("A1003", "turn2-a"),  # a new turn may call a tool again
            "A1003 is on its way.",
        ]
    )
    graph = compile_graph(scripted_tiers(model, supports_tools=True), settings)

    first = await ask(graph, "where is A1020?", config())
    assert (first["tool_calls_remaining"], first["revisions"], first["tier"]) == (0, 1, "mid")

    second = await ask(graph, "and A1003?", config())

    assert second["revisions"] == 0
    assert second["tier"] == "cheap"
    assert second["verdict"] == "ok"
    last_result = [m for m in second["messages"] if isinstance(m, ToolMessage)][-1]
    assert last_result.tool_call_id == "turn2-a"
    assert last_result.status == "success" and "Order A1003" in last_result.content
    assert second["messages"][-1].content == "A1003 is on its way."


# --- the critic --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_revisions", "tiers_called"),
    [
        (0, ["cheap"]),
        (1, ["cheap", "mid"]),
        (2, ["cheap", "mid", "strong"]),
        (3, ["cheap", "mid", "strong", "strong"]),
    ],
)
async def test_empty_answers_escalate_one_tier_at_a_time_until_max_revisions(
    settings: Settings, max_revisions: int, tiers_called: list[str]
) -> None:
    settings = settings.model_copy(update={"max_revisions": max_revisions})
    models = per_tier(cheap=[""], mid=[""], strong=[""])
    graph = compile_graph(scripted_tiers(models), settings)

    order = []
    async for update in graph.astream(
        {"messages": [("user", "hello there")]}, config(), stream_mode="updates"
    ):
        for message in (update.get("planner") or {}).get("messages", []):
            order.append(message.response_metadata["model_name"])
    state = (await graph.aget_state(config())).values

    assert order == tiers_called
    assert sum(len(m.calls) for m in models.values()) == len(tiers_called)
    assert state["revisions"] == max_revisions
    assert state["verdict"] == (f"kept after {max_revisions} revisions: the answer was empty")
    assert [m.type for m in state["messages"]] == ["human", "ai"], "only the last draft is kept"


async def test_a_rejected_draft_is_removed_from_the_stored_history(
    settings: Settings, tmp_path: Path
) -> None:
    models = per_tier(cheap=[""], mid=["Our store opens at nine."])
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "threads.db")) as saver:
        graph = compile_graph(scripted_tiers(models), settings, saver)
        await ask(graph, "hello there", config())
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "threads.db")) as saver:
        state = (
            await compile_graph(scripted_tiers(models), settings, saver).aget_state(config())
        ).values

    assert [(m.type, m.content) for m in state["messages"]] == [
        ("human", "hello there"),
        ("ai", "Our store opens at nine."),
    ]
    assert (state["revisions"], state["verdict"], state["tier"]) == (1, "ok", "mid")
    [revision_prompt] = models["mid"].calls
    assert "rejected because: the answer was empty" in revision_prompt[0].content
    assert [m.type for m in revision_prompt[1:]] == ["human"], "the draft is not shown again"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (AIMessage("   "), "the answer was empty"),
        (
            AIMessage("Your order", response_metadata={"finish_reason": "length"}),
            "the answer was cut off; be shorter",
        ),
        (
            AIMessage("Your order is on its way. " * 4),
            "the answer repeats itself",
        ),
        (AIMessage("Your order A1020 shipped with UPS. It should arrive on Sunday."), None),
    ],
)
def test_the_critic_sends_back_empty_cut_off_and_looping_answers(
    answer: AIMessage, reason: str | None
) -> None:
    assert critique(answer, []) == reason


# --- approval of high-impact tools --------------------------------------------------------------------


TICKET_REQUEST = "Please open a ticket: my stove leaks gas, urgent!"


async def wait_for_approval(graph: Any, cfg: RunnableConfig) -> dict[str, Any]:
    state = await ask(graph, TICKET_REQUEST, cfg)
    [pending] = state["__interrupt__"]
    return pending.value


async def test_the_ticket_tool_waits_for_approval_with_the_proposed_ticket(
    settings: Settings,
) -> None:
    model = ScriptedChatModel(responses=["A ticket is open."])
    graph = compile_graph(scripted_tiers(model), settings)

    payload = await wait_for_approval(graph, config())

    assert payload == {
        "type": "approval",
        "tool": "create_ticket",
        "args": {
            "subject": TICKET_REQUEST,
            "body": TICKET_REQUEST,
            "priority": "urgent",
            "order_id": None,
            "customer_email": None,
        },
        "question": "Create this support ticket?",
    }
    assert (await graph.aget_state(config())).next == ("executor",)
    assert DemoShop(settings.shop_db).tickets() == []
    assert model.calls == []


async def test_an_approved_ticket_is_created_as_proposed(settings: Settings) -> None:
    model = ScriptedChatModel(responses=["A ticket is open."])
    graph = compile_graph(scripted_tiers(model), settings)
    await wait_for_approval(graph, config())

    state = await graph.ainvoke(Command(resume={"action": "approve"}), config())

    [ticket] = DemoShop(settings.shop_db).tickets()
    assert (ticket["subject"], ticket["body"], ticket["priority"]) == (
        TICKET_REQUEST,
        TICKET_REQUEST,
        "urgent",
    )
    assert f"Ticket #{ticket['id']} opened (priority urgent)" in model.calls[0][-1].content
    assert state["messages"][-1].content == "A ticket is open."
    assert "__interrupt__" not in state


async def test_a_rejected_ticket_is_not_created_and_the_model_hears_why(settings: Settings) -> None:
    model = ScriptedChatModel(responses=["The team will not open a ticket."])
    graph = compile_graph(scripted_tiers(model), settings)
    await wait_for_approval(graph, config())

    state = await graph.ainvoke(
        Command(resume={"action": "reject", "reason": "already reported"}), config()
    )

    assert DemoShop(settings.shop_db).tickets() == []
    result = [m for m in state["messages"] if isinstance(m, ToolMessage)][-1]
    assert result.content == "The support team declined to open this ticket: already reported"
    assert "already reported" in model.calls[0][-1].content


async def test_an_edited_ticket_is_created_with_the_humans_changes(settings: Settings) -> None:
    model = ScriptedChatModel(responses=["A ticket is open."])
    graph = compile_graph(scripted_tiers(model), settings)
    await wait_for_approval(graph, config())

    await graph.ainvoke(
        Command(
            resume={
                "action": "edit",
                "args": {"subject": "Gas leak", "priority": "high", "status": "closed"},
            }
        ),
        config(),
    )

    [ticket] = DemoShop(settings.shop_db).tickets()
    assert (ticket["subject"], ticket["priority"], ticket["body"]) == (
        "Gas leak",
        "high",
        TICKET_REQUEST,
    )
    assert ticket["status"] == "open", "only the tool's own arguments can be edited"
    assert "opened (priority high): Gas leak" in model.calls[0][-1].content


# --- cost and usage ------------------------------------------------------------------------------------


async def test_cost_is_usage_times_the_configured_price(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"prices": {"scripted:cheap": ModelPrice(input=2.0, output=8.0)}}
    )
    model = ScriptedChatModel(responses=[AIMessage("Hi!", usage_metadata=usage(1200, 300))])
    graph = compile_graph(scripted_tiers(model), settings)

    state = await ask(graph, "hello there", config())

    assert state["cost_usd"] == pytest.approx((1200 * 2.0 + 300 * 8.0) / 1_000_000)
    assert state["cost_usd"] == pytest.approx(0.0048)


async def test_cost_adds_up_every_model_call_of_a_turn(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"prices": {"scripted:cheap": ModelPrice(input=3.0, output=15.0)}}
    )
    model = ScriptedChatModel(responses=[asks_for("A1020", "c1"), "It shipped with UPS."])
    graph = compile_graph(scripted_tiers(model, supports_tools=True), settings)

    state = await ask(graph, "where is A1020?", config())

    replies = [m for m in state["messages"] if isinstance(m, AIMessage)]
    assert len(replies) == 2 and all(m.usage_metadata for m in replies)
    expected = sum(
        (m.usage_metadata["input_tokens"] * 3.0 + m.usage_metadata["output_tokens"] * 15.0)
        / 1_000_000
        for m in replies
    )
    assert state["cost_usd"] == pytest.approx(expected)
    assert state["cost_usd"] > 0


async def test_an_unpriced_self_hosted_tier_costs_nothing(settings: Settings) -> None:
    model = ScriptedChatModel(responses=[AIMessage("Hi!", usage_metadata=usage(1200, 300))])
    graph = compile_graph(scripted_tiers(model), settings)

    state = await ask(graph, "hello there", config())

    assert state["cost_usd"] == 0.0
    assert state["usage"]["input_tokens"] == 1200


async def test_usage_and_cost_accumulate_across_turns(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"prices": {"scripted:cheap": ModelPrice(input=1.0, output=1.0)}}
    )
    model = ScriptedChatModel(
        responses=[
            AIMessage("first", usage_metadata=usage(100, 10)),
            AIMessage("second", usage_metadata=usage(200, 20)),
        ]
    )
    graph = compile_graph(scripted_tiers(model), settings)

    await ask(graph, "hello there", config())
    state = await ask(graph, "hello again", config())

    assert state["usage"] == {
        "input_tokens": 300,
        "output_tokens": 30,
        "total_tokens": 330,
        "cache_read": 0,
        "cache_creation": 0,
        "calls": 2,
    }
    assert state["cost_usd"] == pytest.approx(330 / 1_000_000)


HAIKU = "anthropic:claude-haiku-4-5"


@pytest.mark.parametrize(
    ("inp", "out", "cache_read", "cache_creation"),
    [
        (1_000_000, 0, 0, 0),
        (0, 1_000_000, 0, 0),
        (1234, 567, 0, 0),
        (10_000, 500, 8_000, 0),
        (10_000, 500, 0, 2_000),
        (10_000, 500, 6_000, 3_000),
    ],
)
def test_haiku_costs_match_genai_prices_and_the_published_price(
    inp: int, out: int, cache_read: int, cache_creation: int
) -> None:
    metadata: dict[str, Any] = usage(inp, out)
    if cache_read or cache_creation:
        metadata["input_token_details"] = {
            "cache_read": cache_read,
            "cache_creation": cache_creation,
        }

    cost = call_cost(HAIKU, metadata)  # type: ignore[arg-type]

    reference = calc_price(
        PriceUsage(
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cache_read or None,
            cache_write_tokens=cache_creation or None,
        ),
        model_ref="claude-haiku-4-5",
        provider_id="anthropic",
    )
    # published: $1 / $5 per million tokens in / out; cache reads $0.10, writes $1.25
    uncached = inp - cache_read - cache_creation
    published = (uncached * 1.0 + cache_read * 0.10 + cache_creation * 1.25 + out * 5.0) / 1e6
    assert cost == pytest.approx(float(reference.total_price))
    assert cost == pytest.approx(published)


def test_a_price_override_charges_cache_reads_at_the_input_price_unless_given() -> None:
    metadata: Any = {**usage(10_000, 1_000), "input_token_details": {"cache_read": 4_000}}

    plain = call_cost(
        "ollama:qwen3:8b", metadata, {"ollama:qwen3:8b": ModelPrice(input=1, output=2)}
    )
    cheap_reads = call_cost(
        "ollama:qwen3:8b",
        metadata,
        {"ollama:qwen3:8b": ModelPrice(input=1, output=2, cache_read=0.5)},
    )

    assert plain == pytest.approx((10_000 * 1 + 1_000 * 2) / 1e6)
    assert cheap_reads == pytest.approx((6_000 * 1 + 4_000 * 0.5 + 1_000 * 2) / 1e6)


def test_an_unknown_model_costs_nothing_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="graphyard.models._pricing")

    cost = call_cost("anthropic:claude-unknown-test-model", usage(1000, 100))  # type: ignore[arg-type]

    assert cost == 0.0
    assert "no price known for anthropic:claude-unknown-test-model" in caplog.text


# --- context budget inside the graph ---------------------------------------------------------------


async def test_the_stored_history_stays_whole_while_every_prompt_fits_a_small_window(
    settings: Settings, tmp_path: Path
) -> None:
    window, max_tokens = 600, 100
    budget = int(window * settings.context_fraction) - max_tokens
    model = ScriptedChatModel(
        responses=[
            "Thanks for asking. The parcel left our warehouse on Monday. The carrier has it "
            "now. You will get an email when it arrives."
        ]
    )
    tiers = scripted_tiers(model, context_window=window, max_tokens=max_tokens)
    questions = [
        f"where is A1020? (question {i})"
        if i % 3 == 0
        else f"hello, question {i}: " + "tell me more " * (i % 5)
        for i in range(24)
    ]

    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "threads.db")) as saver:
        graph = compile_graph(tiers, settings, saver)
        for question in questions:
            await ask(graph, question, config())
        state = (await graph.aget_state(config())).values

    lookups = sum(q.startswith("where") for q in questions)
    assert len(state["messages"]) == 2 * len(questions) + 2 * lookups
    assert [m.content for m in state["messages"] if isinstance(m, HumanMessage)] == questions
    assert len(model.calls) == len(questions)
    for prompt in model.calls:
        assert count(prompt) <= budget
    seen_last = [q for q in questions if any(q in str(m.content) for m in model.calls[-1])]
    assert questions[0] not in seen_last, "late prompts must have been trimmed"
    assert 0 < len(seen_last) < len(questions) / 2
    assert model.calls[-1][-1].content.startswith(questions[-1])


async def test_a_tool_calling_tier_keeps_the_whole_history_when_it_fits(settings: Settings) -> None:
    window, max_tokens = 4000, 256
    budget = int(window * settings.context_fraction) - max_tokens
    model = ScriptedChatModel(responses=["Sure."])
    tiers = scripted_tiers(model, context_window=window, max_tokens=max_tokens, supports_tools=True)
    graph = compile_graph(tiers, settings)

    for i in range(8):
        await ask(graph, f"hello {i}", config())

    last = model.calls[-1]
    tools = make_tools(DemoShop(settings.shop_db))
    assert count(last, tools=tools) < budget / 2, "the whole history fits comfortably"
    assert len(last) == 1 + 15, "the prompt should carry every earlier message"


async def test_prompts_never_modify_the_history_they_were_built_from(settings: Settings) -> None:
    model = ScriptedChatModel(responses=["Noted."])
    tiers = scripted_tiers(model, context_window=600, max_tokens=100)
    graph = compile_graph(tiers, settings)
    long_question = "where is A1020? " + "It is very important to me. " * 80

    await ask(graph, long_question, config())
    state = (await graph.aget_state(config())).values

    assert state["messages"][0].content == long_question
    assert "[...]" in model.calls[0][1].content, "the model saw a cut version"
    assert count(model.calls[0]) <= int(600 * settings.context_fraction) - 100
