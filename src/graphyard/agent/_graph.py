"""The reference customer-support agent.

::

    START -> router -> trim -> planner -> executor -> trim -> planner ... -> critic -> END
                                  ^                                             |
                                  +------------ revise (one tier up) -----------+

- router: picks the tier for this turn (the configured router: learned by default, see
  ``graphyard.routing``) and resets the turn's limits;
- trim: plans the context window of the next model call (the stored history stays whole);
- planner: calls the tier's model; for models without tool calling it plans the tool
  calls itself from the request (order ids, help questions, ticket requests);
- executor: runs the tools, bounded by ``tool_calls_remaining``; ``create_ticket`` waits
  for a human's approval through ``interrupt()``;
- critic: accepts the answer or sends it back one tier up, at most ``max_revisions`` times.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode

from graphyard.agent import _prompts
from graphyard.agent._shop import DemoShop, KnowledgeBase, normalize_order_id
from graphyard.agent._tools import make_tools
from graphyard.caching import GraphCache, agent_caches
from graphyard.config import TIERS, Settings, TierName
from graphyard.context import ContextWindow, build_prompt, exact_counter
from graphyard.models import Tier, call_cost
from graphyard.routing import Router, aroute, build_router
from graphyard.state import AgentState, Usage, with_ids

__all__ = ["build_graph", "critique", "reference_graph"]

_TICKET = re.compile(
    r"\b(ticket|speak to (a |an )?(human|person|agent|someone)|real person|complain\w*|escalate)\b",
    re.I,
)
_URGENT = re.compile(r"\b(urgent|asap|immediately|emergency)\b", re.I)
_QUESTION = re.compile(r"\?|\b(how|what|when|where|why|can i|do you)\b", re.I)
_POLICY = re.compile(
    r"\b(policy|refund\w*|return\w*|exchange\w*|shipping|warranty|cancel\w*|password|"
    r"account|pay\w*|size|international|damaged|broken)\b",
    re.I,
)


def build_graph(
    tiers: Mapping[TierName, Tier],
    settings: Settings | None = None,
    *,
    shop: DemoShop | None = None,
    kb: KnowledgeBase | None = None,
    router: Router | None = None,
    cache: GraphCache | None = None,
) -> StateGraph[AgentState]:
    """The support agent as an uncompiled graph; compile it with a checkpointer.

    >>> from graphyard.models import ScriptedChatModel
    >>> from graphyard.testing import scripted_tiers
    >>> import asyncio
    >>> graph = build_graph(scripted_tiers(ScriptedChatModel(responses=["Hi!"]))).compile()
    >>> asyncio.run(graph.ainvoke({"messages": [("user", "hello")]}))["messages"][-1].content
    'Hi!'
    """
    settings = settings or Settings()
    shop = shop or DemoShop(settings.shop_db)
    kb = kb or KnowledgeBase()
    router = router or build_router(settings, tiers)
    # with a cache (compile with the same one): KB search is a cached task; answers are cached
    tools, answers = agent_caches(
        cache, make_tools(shop, kb), kb, settings,
        prompt=lambda t: f"{_prompts.PROMPT_VERSION}\n{system_prompt(t, None).content}",
    )  # fmt: skip
    tool_node = ToolNode(tools)
    tools_by_tier = {name: tools if tier.supports_tools else [] for name, tier in tiers.items()}

    def system_prompt(tier: Tier, reason: str | None) -> SystemMessage:
        text = _prompts.WITH_TOOLS if tier.supports_tools else _prompts.WITHOUT_TOOLS
        if reason:
            text += "\n\n" + _prompts.REVISE.format(reason=reason)
        return SystemMessage(text)

    # one context window per tier (graphyard.context): chunked, pinned facts, cache breakpoints
    windows = {
        name: ContextWindow(
            window=tier.context_window,
            max_tokens=tier.max_tokens,
            config=settings.tier_context(name),
            name=tier.model_id,
            tools=tools_by_tier[name],
            exact=exact_counter(tier.chat_model),
            summarizer=tiers[next(t for t in TIERS if t in tiers)].chat_model,
            cache_breakpoints=tier.model_id.startswith("anthropic:"),
        )
        for name, tier in tiers.items()
    }

    async def route(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        configurable = config.get("configurable", {})
        forced = configurable.get("tier")
        text = _last_human_text(state["messages"])
        tier = forced if forced in tiers else await aroute(router, text)
        return {
            "tier": tier,
            "task_id": configurable.get("task_id") or str(uuid.uuid4()),
            "tool_calls_remaining": settings.tool_calls_per_turn,
            "revisions": 0,
            "verdict": None,
            "window": None,
        }

    async def trim(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        tier = tiers[state["tier"]]
        cheap = tiers[next(t for t in TIERS if t in tiers)]  # writes the summary, when on
        context = await windows[tier.name].aplan(
            state["messages"],
            state.get("context"),
            system=system_prompt(tier, state.get("verdict")),
            config=cheap.call_config(config),
        )
        # the compact form: the checkpointer stores it again in every checkpoint of the turn
        stored = windows[tier.name].pack(state["messages"], context)
        update: dict[str, Any] = {"window": context["plan"], "context": stored}
        if summary_usage := context.get("summary_usage"):
            update["cost_usd"] = call_cost(cheap.model_id, summary_usage, settings.prices)
            update["usage"] = _usage(summary_usage)
        return update

    async def planner(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        tier = tiers[state["tier"]]
        messages = state["messages"]
        system = system_prompt(tier, state.get("verdict"))
        context = windows[tier.name].ensure(messages, state.get("context"), system)
        if answers and (hit := await answers.lookup(state, tier, config)):
            return hit  # streamed from the cache: no model call
        if not tier.supports_tools and isinstance(messages[-1], HumanMessage):
            # the knowledge base reads its files on first use: keep that off the event loop
            planned = await asyncio.to_thread(_plan_tool_calls, str(messages[-1].content), kb)
            calls = planned[: state["tool_calls_remaining"]]
            if calls:
                return {"messages": [AIMessage(content="", tool_calls=calls, id=_id())]}
        # Without tool definitions a provider rejects tool_use/tool_result blocks (Anthropic
        # answers 400), so once the turn's tools are spent the exchanges go in as text.
        offer_tools = tier.supports_tools and state["tool_calls_remaining"] > 0
        fold = None if offer_tools else _fold_tool_results
        prompt = build_prompt(messages, context, system, transform=fold)
        model: Any = tier.chat_model
        if offer_tools:
            model = model.bind_tools(tools)
        response = await model.ainvoke(prompt, tier.call_config(config))
        if response.id is None:
            response.id = _id()
        if response.tool_calls and state["tool_calls_remaining"] <= 0:
            # The turn's tool budget is spent and the model still asks: end the turn with
            # what it said instead of looping through a refusing executor forever.
            response = AIMessage(
                content=str(response.content)
                or "I could not finish this within the tool calls allowed for one message.",
                id=response.id,
                usage_metadata=response.usage_metadata,
                response_metadata=response.response_metadata,
            )
        if answers:
            ok = critique(response, messages) is None
            await answers.remember(state, tier, config, response, accepted=ok)
        usage = response.usage_metadata or {}
        # what was really sent (folded, with or without tools): the next trim learns its scale
        sent = windows[tier.name].record(context, prompt, tools=offer_tools)
        return {
            "messages": [response],
            "cost_usd": call_cost(tier.model_id, usage, settings.prices),
            "usage": _usage(usage),
            **({"context": windows[tier.name].pack(messages, sent)} if sent is not context else {}),
        }

    async def executor(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        calls = state["messages"][-1].tool_calls  # type: ignore[union-attr]
        remaining = state["tool_calls_remaining"]
        if len(calls) > remaining:
            refused = [
                ToolMessage(
                    "Tool call limit for this message reached; answer with what you have.",
                    tool_call_id=call["id"],
                    name=call["name"],
                    status="error",
                )
                for call in calls
            ]
            return {"messages": with_ids(refused), "tool_calls_remaining": 0}
        result = await tool_node.ainvoke({"messages": state["messages"]}, config)
        return {
            "messages": with_ids(result["messages"]),
            "tool_calls_remaining": remaining - len(calls),
        }

    async def critic(state: AgentState) -> dict[str, Any]:
        answer = state["messages"][-1]
        reason = critique(answer, state["messages"])
        if reason is None:
            return {"verdict": "ok"}
        if state["revisions"] >= settings.max_revisions:
            return {"verdict": f"kept after {state['revisions']} revisions: {reason}"}
        return {
            "verdict": reason,
            "revisions": state["revisions"] + 1,
            "tier": _next_tier(state["tier"], tiers),
            "messages": [RemoveMessage(id=answer.id)] if answer.id else [],
        }

    def after_planner(state: AgentState) -> Literal["executor", "critic"]:
        last = state["messages"][-1]
        return "executor" if isinstance(last, AIMessage) and last.tool_calls else "critic"

    def after_critic(state: AgentState) -> Literal["trim", "__end__"]:
        verdict = state.get("verdict")
        return END if verdict == "ok" or (verdict or "").startswith("kept after") else "trim"

    graph = StateGraph(AgentState)
    graph.add_node("router", route)
    graph.add_node("trim", trim)
    graph.add_node("planner", planner)
    graph.add_node("executor", executor)
    graph.add_node("critic", critic)
    graph.add_edge(START, "router")
    graph.add_edge("router", "trim")
    graph.add_edge("trim", "planner")
    graph.add_conditional_edges("planner", after_planner)
    graph.add_edge("executor", "trim")
    graph.add_conditional_edges("critic", after_critic)
    return graph


def critique(answer: BaseMessage, history: Sequence[BaseMessage]) -> str | None:
    """Why ``answer`` should be sent back, or ``None`` if it is acceptable.

    Cheap checks that need no model: empty, cut off by the token limit, or degenerate
    repetition (small models loop).
    """
    text = str(answer.content).strip()
    if not text:
        return "the answer was empty"
    if answer.response_metadata.get("finish_reason") == "length":
        return "the answer was cut off; be shorter"
    sentences = [s.strip().lower() for s in re.split(r"[.!?\n]+", text) if len(s.strip()) > 10]
    if len(sentences) >= 3 and len(set(sentences)) <= len(sentences) / 2:
        return "the answer repeats itself"
    return None


def _next_tier(tier: TierName, tiers: Mapping[TierName, Tier]) -> TierName:
    order = [t for t in TIERS if t in tiers]
    i = order.index(tier)
    return order[min(i + 1, len(order) - 1)]


def _plan_tool_calls(text: str, kb: KnowledgeBase) -> list[ToolCall]:
    """Tool calls for a model that cannot make them: order ids, ticket requests, questions."""
    calls: list[ToolCall] = []
    order_id = normalize_order_id(text)
    if order_id:
        calls.append(_call("order_status", {"order_id": order_id}))
    if _TICKET.search(text):
        subject = text.strip().splitlines()[0][:80]
        calls.append(
            _call(
                "create_ticket",
                {
                    "subject": subject,
                    "body": text.strip(),
                    "priority": "urgent" if _URGENT.search(text) else "normal",
                    "order_id": order_id,
                },
            )
        )
    elif (_POLICY.search(text) or (not order_id and _QUESTION.search(text))) and kb.search(
        text, k=1
    ):
        calls.append(_call("search_help_articles", {"query": text.strip()[:300]}))
    return calls


def _fold_tool_results(view: Sequence[BaseMessage]) -> list[BaseMessage]:
    """For models without tool calling: tool results become "Facts" in their turn's message."""
    out: list[BaseMessage] = []
    context: list[str] = []
    for message in view:
        if isinstance(message, AIMessage) and message.tool_calls:
            continue
        if isinstance(message, ToolMessage):
            context.append(str(message.content))
            continue
        if context and out and isinstance(out[-1], HumanMessage):
            out[-1] = out[-1].model_copy(
                update={"content": f"{out[-1].content}\n\nFacts: " + "\n".join(context)}
            )
        context = []
        out.append(message)
    if context:
        # the turn's tool results come after its human message: fold them into it
        for i in range(len(out) - 1, -1, -1):
            if isinstance(out[i], HumanMessage):
                out[i] = out[i].model_copy(
                    update={"content": f"{out[i].content}\n\nFacts: " + "\n".join(context)}
                )
                break
    return out


def _usage(usage: Mapping[str, Any]) -> Usage:
    details = usage.get("input_token_details") or {}
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        total_tokens=int(usage.get("total_tokens") or 0),
        cache_read=int(details.get("cache_read") or 0),
        cache_creation=int(details.get("cache_creation") or 0),
        calls=1,
    )


def _last_human_text(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return str(message.content)
    return ""


def _call(name: str, args: dict[str, Any]) -> ToolCall:
    return ToolCall(name=name, args=args, id=f"call_{uuid.uuid4().hex[:12]}", type="tool_call")


def _id() -> str:
    return str(uuid.uuid4())


def reference_graph(runtime: Any) -> StateGraph[AgentState]:
    """Factory used by ``graphyard serve``: the support agent on the runtime's tiers."""
    return build_graph(runtime.tiers, runtime.settings, cache=getattr(runtime, "cache", None))
