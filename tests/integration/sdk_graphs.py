"""A graph of our own for the SDK tests, served with ``GRAPHYARD_GRAPH=sdk_graphs:custom_graph``.

It is what a user's graph looks like: its own state, a node that reports progress through
LangGraph's ``get_stream_writer()`` (the SDK's ``custom`` stream mode) and calls the served
cheap tier (a scripted model in the tests).
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages

__all__ = ["PROGRESS", "custom_graph"]

PROGRESS = [{"step": "thinking", "of": 2}, {"step": "answering", "of": 2}]
"""The custom events the graph writes for every message, in order."""


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def custom_graph(runtime: Any) -> StateGraph[ChatState]:
    """One node: two progress events, then the cheap tier's answer."""
    model = runtime.tiers["cheap"].chat_model

    async def respond(state: ChatState) -> dict[str, Any]:
        write = get_stream_writer()
        write(PROGRESS[0])
        response = await model.ainvoke(state["messages"])
        write(PROGRESS[1])
        return {"messages": [response]}

    graph = StateGraph(ChatState)
    graph.add_node("respond", respond)
    graph.add_edge(START, "respond")
    return graph
