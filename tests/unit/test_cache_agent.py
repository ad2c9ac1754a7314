"""The reference agent with its caches: answers and knowledge-base searches served again safely.

Real SQLite cache files (the sibling of the checkpoint file), scripted models.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from graphyard.agent import DemoShop, KnowledgeBase, _prompts, build_graph
from graphyard.caching import ANSWERS_NAMESPACE, GraphCache, open_cache
from graphyard.config import ModelPrice, Settings
from graphyard.testing import ScriptedChatModel, scripted_tiers

REFUND = "Refunds reach your card within 5-7 business days after we receive the return."
PRICES = {f"scripted:{t}": ModelPrice(input=3.0, output=15.0) for t in ("cheap", "mid", "strong")}


@pytest.fixture(scope="session")
def seeded_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seeded") / "shop.db"
    DemoShop(path).tickets()
    return path


@pytest.fixture
def cache_settings(settings: Settings, seeded_shop: Path) -> Settings:
    shutil.copyfile(seeded_shop, settings.shop_db)
    return settings.model_copy(update={"prices": PRICES})


@pytest.fixture
async def cache(cache_settings: Settings) -> AsyncIterator[GraphCache]:
    async with open_cache(cache_settings) as opened:
        assert opened is not None and opened.kind == "sqlite"
        yield opened


def compile_graph(
    model: Any, settings: Settings, cache: GraphCache, *, tools: bool = False, kb: Any = None
) -> Any:
    tiers = scripted_tiers(model, supports_tools=tools)
    return build_graph(tiers, settings, cache=cache, kb=kb).compile(
        checkpointer=InMemorySaver(), cache=cache
    )


class Turn:
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.custom: list[dict[str, Any]] = []
        self.answer: AIMessage | None = None
        self.messages: list[Any] = []


async def ask(graph: Any, text: str, *, thread: str | None = None, user: str = "alice") -> Turn:
    turn = Turn()
    config = {"configurable": {"thread_id": thread or str(uuid.uuid4()), "user_id": user}}
    async for mode, chunk in graph.astream(
        {"messages": [HumanMessage(text, id=str(uuid.uuid4()))]},
        config,
        stream_mode=["messages", "custom"],
    ):
        if mode == "custom":
            turn.custom.append(chunk)
        elif isinstance(chunk[0], AIMessageChunk) and chunk[0].content:
            turn.tokens.append(str(chunk[0].content))
    state = (await graph.aget_state(config)).values
    turn.messages = state["messages"]
    turn.answer = state["messages"][-1]
    return turn


def hits(turn: Turn) -> list[dict[str, Any]]:
    return [e for e in turn.custom if e.get("type") == "cache_hit"]


async def test_a_repeated_question_is_streamed_from_the_cache_without_a_model_call(
    cache_settings: Settings, cache: GraphCache
) -> None:
    model = ScriptedChatModel(responses=[REFUND])
    graph = compile_graph(model, cache_settings, cache)

    first = await ask(graph, "What is your refund policy?", user="alice")
    calls = len(model.calls)
    second = await ask(graph, "what is your REFUND policy", user="bob")

    assert calls == 1 and len(model.calls) == calls  # the hit made no model call
    assert first.answer is not None and second.answer is not None
    assert second.answer.content == first.answer.content == REFUND
    assert second.answer.id != first.answer.id
    # streamed token by token like a live answer, after an event saying it was a hit
    assert len(second.tokens) > 3 and "".join(second.tokens) == REFUND
    (event,) = hits(second)
    assert event["scope"] == "shared" and event["saved_usd"] > 0 and event["saved_calls"] == 1
    assert not hits(first)
    stats = {c.name: c for c in await cache.astats()}
    assert (stats["answers"].hits, stats["answers"].misses, stats["answers"].stores) == (1, 1, 1)
    assert stats["answers"].saved_usd == pytest.approx(event["saved_usd"])


async def test_a_hit_on_a_later_turn_of_the_same_thread_adds_a_message_instead_of_replacing_one(
    cache_settings: Settings, cache: GraphCache
) -> None:
    model = ScriptedChatModel(responses=[REFUND])
    graph = compile_graph(model, cache_settings, cache)

    await ask(graph, "What is your refund policy?", thread="t1")
    again = await ask(graph, "What is your refund policy?", thread="t1")

    assert len(model.calls) == 1 and hits(again)
    answers = [m for m in again.messages if isinstance(m, AIMessage) and m.content == REFUND]
    assert len(answers) == 2 and answers[0].id != answers[1].id
    assert [m.type for m in again.messages].count("human") == 2


async def test_changing_the_system_prompt_invalidates_cached_answers(
    cache_settings: Settings, cache: GraphCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = ScriptedChatModel(responses=[REFUND])
    graph = compile_graph(model, cache_settings, cache)
    await ask(graph, "What is your refund policy?")

    monkeypatch.setattr(_prompts, "WITHOUT_TOOLS", _prompts.WITHOUT_TOOLS + " Be warm.")
    reworded = await ask(graph, "What is your refund policy?")
    assert len(model.calls) == 2 and not hits(reworded)

    monkeypatch.setattr(_prompts, "PROMPT_VERSION", _prompts.PROMPT_VERSION + "-next")
    bumped = await ask(graph, "What is your refund policy?")
    assert len(model.calls) == 3 and not hits(bumped)

    again = await ask(graph, "What is your refund policy?")  # same prompt as the last call
    assert len(model.calls) == 3 and hits(again)


async def test_an_answer_about_one_users_order_is_never_served_to_another_user(
    cache_settings: Settings, cache: GraphCache
) -> None:
    model = ScriptedChatModel(responses=[lambda m: f"Here is what I found: {m[-1].content[-60:]}"])
    graph = compile_graph(model, cache_settings, cache)

    alice = await ask(graph, "Where is order A1003?", user="alice")
    assert alice.answer is not None and "Total $" in str(alice.answer.content)  # saw the order
    bob = await ask(graph, "Where is order A1003?", user="bob")
    assert len(model.calls) == 2 and not hits(bob)  # bob's turn called the model
    alice_again = await ask(graph, "Where is order A1003?", user="alice")
    assert len(model.calls) == 2 and hits(alice_again)[0]["scope"] == "user"
    # without authentication every caller is "anonymous": entries are kept per thread
    anon = await ask(graph, "Where is order A1003?", user="anonymous", thread="x")
    other = await ask(graph, "Where is order A1003?", user="anonymous", thread="y")
    assert len(model.calls) == 4 and not hits(anon) and not hits(other)


async def test_an_answer_given_with_a_users_earlier_turns_in_the_prompt_is_never_shared(
    cache_settings: Settings, cache: GraphCache
) -> None:
    def greets_who_it_knows(prompt: list[Any]) -> AIMessage:
        # real models greet the customer with what the prompt says about them
        seen = "\n".join(str(m.content) for m in prompt)
        who = "dana@example.org" if "dana@example.org" in seen else "there"
        return AIMessage(f"Hi {who}! {REFUND}")

    model = ScriptedChatModel(responses=[greets_who_it_knows])
    graph = compile_graph(model, cache_settings, cache)
    await ask(graph, "Hi, I'm dana@example.org.", thread="a", user="alice")
    alice = await ask(graph, "How long do refunds take?", thread="a", user="alice")
    bob = await ask(graph, "How long do refunds take?", thread="b", user="bob")

    assert alice.answer is not None and "dana@example.org" in str(alice.answer.content)
    assert bob.answer is not None and "dana@example.org" not in str(bob.answer.content)
    assert not hits(bob)


async def test_an_answer_that_used_a_users_order_is_kept_for_that_user_only(
    cache_settings: Settings, cache: GraphCache
) -> None:
    """The question looks general, but the model looked an order up: the answer is personal."""
    lookup = AIMessage(
        "",
        tool_calls=[
            {"name": "order_status", "args": {"order_id": "A1003"}, "id": "c1", "type": "tool_call"}
        ],
    )
    model = ScriptedChatModel(responses=[lookup, "Your latest order ships Tuesday."])
    graph = compile_graph(model, cache_settings, cache, tools=True)

    await ask(graph, "When do orders ship?", user="alice")
    bob = await ask(graph, "When do orders ship?", user="bob")
    assert len(model.calls) == 4 and not hits(bob)
    alice = await ask(graph, "When do orders ship?", user="alice")
    assert len(model.calls) == 4 and hits(alice)[0]["scope"] == "user"
    assert hits(alice)[0]["saved_calls"] == 2  # the lookup call and the answer


async def test_a_turn_that_opened_a_ticket_is_never_cached(
    cache_settings: Settings, cache: GraphCache
) -> None:
    ticket = AIMessage(
        "",
        tool_calls=[
            {
                "name": "create_ticket",
                "args": {"subject": "s", "body": "b"},
                "id": "c1",
                "type": "tool_call",
            }
        ],
    )
    model = ScriptedChatModel(responses=[ticket, "I opened a ticket."])
    graph = compile_graph(model, cache_settings, cache, tools=True)
    config = {"configurable": {"thread_id": "t", "user_id": "alice"}}
    from langgraph.types import Command

    await graph.ainvoke(
        {"messages": [HumanMessage("What is your warranty policy?", id="h1")]}, config
    )
    await graph.ainvoke(Command(resume={"action": "approve"}), config)
    assert (await graph.aget_state(config)).values["messages"][-1].content == "I opened a ticket."
    assert not [e for e in await cache.aentries() if e.namespace == ",".join(ANSWERS_NAMESPACE)]


async def test_cached_answers_expire_after_their_ttl(cache_settings: Settings) -> None:
    settings = cache_settings.model_copy(
        update={"cache": cache_settings.cache.model_copy(update={"answer_ttl": "1s"})}
    )
    async with open_cache(settings) as cache:
        assert cache is not None
        model = ScriptedChatModel(responses=[REFUND])
        graph = compile_graph(model, settings, cache)
        await ask(graph, "What is your refund policy?")
        assert hits(await ask(graph, "What is your refund policy?"))
        await asyncio.sleep(1.2)
        expired = await ask(graph, "What is your refund policy?")
        assert not hits(expired) and len(model.calls) == 2


async def test_the_knowledge_base_is_searched_once_for_repeated_queries(
    cache_settings: Settings, cache: GraphCache
) -> None:
    class CountingKB(KnowledgeBase):
        searches = 0

        def search(self, query: str, k: int = 3) -> Any:
            if k == 2:  # the tool's search (the planner's own check asks for k=1)
                CountingKB.searches += 1
            return super().search(query, k)

    def search(q: str) -> AIMessage:
        call = {
            "name": "search_help_articles",
            "args": {"query": q},
            "id": f"c{uuid.uuid4().hex[:6]}",
            "type": "tool_call",
        }
        return AIMessage("", tool_calls=[call])

    model = ScriptedChatModel(
        responses=[search("refund policy"), REFUND, search("Refund Policy?"), REFUND]
    )
    graph = compile_graph(model, cache_settings, cache, tools=True, kb=CountingKB())

    await ask(graph, "How do refunds work?")
    await ask(graph, "When will I get my money back?")  # another question, the same search

    assert len(model.calls) == 4  # two different questions: no answer hit
    assert CountingKB.searches == 1
    stats = {c.name: c for c in await cache.astats()}
    assert (stats["task:kb_search"].hits, stats["task:kb_search"].misses) == (1, 1)


async def test_without_a_cache_the_agent_calls_the_model_every_time(
    cache_settings: Settings,
) -> None:
    model = ScriptedChatModel(responses=[REFUND])
    graph = build_graph(scripted_tiers(model), cache_settings).compile(checkpointer=InMemorySaver())
    for _ in range(2):
        await graph.ainvoke(
            {"messages": [HumanMessage("What is your refund policy?", id=str(uuid.uuid4()))]},
            {"configurable": {"thread_id": str(uuid.uuid4())}},
        )
    assert len(model.calls) == 2


def test_the_sqlite_cache_lives_in_a_sibling_file_of_the_checkpoints(
    cache_settings: Settings, tmp_path: Path
) -> None:
    from graphyard.caching import cache_location

    assert cache_location(cache_settings) == f"sqlite:///{tmp_path / 'graphyard.cache.db'}"
    off = cache_settings.model_copy(
        update={"cache": cache_settings.cache.model_copy(update={"enabled": False})}
    )
    assert cache_location(off) == "none"


async def test_cache_misses_stores_and_hits_never_block_the_event_loop(
    cache_settings: Settings, no_blocking: None
) -> None:
    async with open_cache(cache_settings) as cache:
        assert cache is not None
        model = ScriptedChatModel(responses=[REFUND])
        graph = compile_graph(model, cache_settings, cache)
        await ask(graph, "What is your refund policy?")
        assert hits(await ask(graph, "What is your refund policy?"))


async def test_callback_handlers_hear_of_every_lookup_and_the_replay_is_marked_as_no_call(
    cache_settings: Settings, cache: GraphCache
) -> None:
    """What a ledger or metrics handler attached to a run sees (see RunManager.handlers)."""
    from langchain_core.callbacks import AsyncCallbackHandler

    from graphyard.caching import CACHE_EVENT, CACHE_HIT_METADATA_KEY

    class Recorder(AsyncCallbackHandler):
        def __init__(self) -> None:
            self.events: list[dict[str, Any]] = []
            self.model_starts: list[dict[str, Any]] = []

        async def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
            if name == CACHE_EVENT:
                self.events.append(data)

        async def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            self.model_starts.append(kwargs.get("metadata") or {})

    model = ScriptedChatModel(responses=[REFUND])
    graph = compile_graph(model, cache_settings, cache)
    recorder = Recorder()
    for thread in ("a", "b"):
        config = {"configurable": {"thread_id": thread, "user_id": "u"}, "callbacks": [recorder]}
        await graph.ainvoke(
            {"messages": [HumanMessage("What is your refund policy?", id=thread)]}, config
        )

    assert [e["type"] for e in recorder.events] == ["cache_miss", "cache_hit"]
    assert recorder.events[1]["saved_usd"] > 0
    live, replay = recorder.model_starts
    assert not live.get(CACHE_HIT_METADATA_KEY) and replay[CACHE_HIT_METADATA_KEY] is True


async def test_a_node_cache_hit_adds_its_messages_with_new_ids_instead_of_replacing_old_ones(
    cache: GraphCache,
) -> None:
    """LangGraph replays a hit's writes as stored; the messages channel replaces by id."""
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.types import CachePolicy

    runs: list[str] = []

    def faq(state: MessagesState) -> dict[str, Any]:
        runs.append(str(state["messages"][-1].content))
        return {"messages": [AIMessage("We ship in 2 days.", id=str(uuid.uuid4()))]}

    builder = StateGraph(MessagesState)
    builder.add_node(
        "faq", faq, cache_policy=CachePolicy(key_func=lambda s: str(s["messages"][-1].content))
    )
    builder.add_edge(START, "faq")
    graph = builder.compile(checkpointer=InMemorySaver(), cache=cache)
    config = {"configurable": {"thread_id": "t"}}
    await graph.ainvoke({"messages": [HumanMessage("shipping?", id="h1")]}, config)
    out = await graph.ainvoke({"messages": [HumanMessage("shipping?", id="h2")]}, config)

    assert runs == ["shipping?"]  # the second turn was a hit
    answers = [m for m in out["messages"] if isinstance(m, AIMessage)]
    assert len(answers) == 2 and answers[0].id != answers[1].id
    assert {c.name: c.hits for c in await cache.astats()}["node:faq"] == 1


async def test_the_cached_search_tool_still_works_when_called_outside_a_graph(
    tmp_path: Path,
) -> None:
    from graphyard.agent import make_tools
    from graphyard.caching import cached_kb_search

    kb = KnowledgeBase()
    tools = cached_kb_search(make_tools(DemoShop(tmp_path / "s.db"), kb), kb, ttl=60)
    search = next(t for t in tools if t.name == "search_help_articles")
    assert "Refund Policy" in await search.ainvoke({"query": "refund policy"})
