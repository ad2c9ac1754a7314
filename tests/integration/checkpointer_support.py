"""Helpers for the checkpointer tests: the reference agent on scripted models, turn by turn."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.pregel import Pregel

from graphyard.config import TIERS, Settings, TierConfig, TierName
from graphyard.testing import ScriptedChatModel


def answer(messages: list[BaseMessage]) -> str:
    """The scripted answer to ``turn <n>``: ``Answer <n>.`` (``Answer 1.`` otherwise)."""
    last = next((m for m in reversed(messages) if m.type == "human"), None)
    words = str(last.content).split() if last is not None else []
    n = words[1] if len(words) == 2 and words[0] == "turn" else "1"
    return f"Answer {n}."


def scripted_models() -> Mapping[TierName, BaseChatModel]:
    model = ScriptedChatModel()
    model.responses = [answer]
    return dict.fromkeys(TIERS, model)


def settings_for(url: str, directory: Path, **overrides: Any) -> Settings:
    """Settings for ``url`` whose tiers name scripted models (nothing wants real weights)."""
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    return Settings(checkpointer=url, shop_db=directory / "shop.db", **tiers, **overrides)


def config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread_id}
    if checkpoint_id:
        configurable |= {"checkpoint_ns": "", "checkpoint_id": checkpoint_id}
    return {"configurable": configurable}


async def run_turns(graph: Pregel, thread_id: str, turns: int, *, first: int = 1) -> None:
    """Send human messages ``turn <first>`` ... and let the agent answer each."""
    for n in range(first, first + turns):
        await graph.ainvoke(
            {"messages": [HumanMessage(f"turn {n}", id=f"h{n}")]},
            config(thread_id),
            durability="sync",
        )


def transcript(messages: list[BaseMessage]) -> list[tuple[str, str]]:
    return [(m.type, str(m.content)) for m in messages]
