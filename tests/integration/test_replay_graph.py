"""The user graph the replay tests serve (no tests here): a shop helper with one tool.

``agent`` asks the cheap tier (a scripted model in the server, whatever the settings name
in the CLI: recorded mode never calls it) and ``tools`` runs ``lookup_order``. Two
environment variables stand for a deploy of new code:

- ``REPLAY_TOOL_BROKEN=1``: ``lookup_order`` raises ``RuntimeError("inventory database is
  down")``, the production failure; unset, it is fixed;
- ``REPLAY_PROMPT``: the agent's system prompt (a prompt change since the recording).

``REPLAY_STEPS`` makes the agent call the tool that many times before answering (long
threads). The served model appends a line per call to ``SCRIPTED_CALLS_FILE``.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, TypedDict

from fastapi import FastAPI
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from sdk_server import PacedModel

from graphyard.config import TIERS, Settings
from graphyard.server import create_app

__all__ = ["DEFAULT_PROMPT", "TOOL_ERROR", "app_factory", "replay_graph", "respond"]

DEFAULT_PROMPT = "You are the shop's helper. Look orders up before answering."
TOOL_ERROR = "inventory database is down"


class ShopState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up by its id."""
    if os.environ.get("REPLAY_TOOL_BROKEN") == "1":
        raise RuntimeError(TOOL_ERROR)
    return f"Order {order_id} shipped on Monday with UPS."


def respond(messages: list[BaseMessage]) -> AIMessage:
    """The scripted model: look the order up (``REPLAY_STEPS`` times), then answer."""
    steps = int(os.environ.get("REPLAY_STEPS", "1"))
    done = sum(isinstance(m, ToolMessage) for m in messages)
    if done < steps:
        return AIMessage(
            "",
            tool_calls=[
                {"name": "lookup_order", "args": {"order_id": f"A{1001 + done}"}, "id": f"c{done}"}
            ],
        )
    return AIMessage(f"Good news: {messages[-1].content}")


def replay_graph(runtime: Any) -> StateGraph[ShopState]:
    """The graph, on the runtime's cheap tier."""
    tier = runtime.tiers["cheap"]

    async def agent(state: ShopState, config: RunnableConfig) -> dict[str, Any]:
        prompt = os.environ.get("REPLAY_PROMPT", DEFAULT_PROMPT)
        answer = await tier.chat_model.ainvoke(
            [SystemMessage(prompt), *state["messages"]], tier.call_config(config)
        )
        return {"messages": [answer]}

    def route(state: ShopState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    graph = StateGraph(ShopState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([lookup_order]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph


def app_factory() -> FastAPI:
    """What uvicorn serves: this graph, every tier one scripted model that counts its calls."""
    model = PacedModel(calls_file=os.environ.get("SCRIPTED_CALLS_FILE"))
    model.responses = [respond]
    settings = Settings(graph="test_replay_graph:replay_graph")
    return create_app(settings, models=dict.fromkeys(TIERS, model))
