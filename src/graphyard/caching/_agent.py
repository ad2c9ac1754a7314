"""Wiring the caches into the reference agent, so its graph module needs only a few lines.

This module must never enable caching the caller did not ask for: with no cache, the tools
come back unchanged and there is no answer cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.tools import BaseTool

from graphyard.caching._answers import AnswerCache
from graphyard.caching._kb import cached_kb_search
from graphyard.caching._store import GraphCache
from graphyard.config import Settings

__all__ = ["agent_caches"]


def agent_caches(
    cache: GraphCache | None,
    tools: Sequence[BaseTool],
    kb: Any,
    settings: Settings,
    *,
    prompt: Callable[[Any], str],
) -> tuple[list[BaseTool], AnswerCache | None]:
    """The agent's tools (knowledge-base search cached) and its answer cache.

    ``prompt(tier)`` identifies the system prompt a tier answers with (version and text).

    >>> from graphyard.agent import DemoShop, KnowledgeBase, make_tools
    >>> tools = make_tools(DemoShop(":memory:"))
    >>> agent_caches(None, tools, KnowledgeBase(), Settings(), prompt=str) == (tools, None)
    True
    """
    if cache is None:
        return list(tools), None
    from graphyard.models import call_cost

    tools = cached_kb_search(tools, kb, ttl=cache.config.seconds("kb_ttl"))
    answers = AnswerCache(
        cache,
        tools=tools,
        kb=kb,
        cost=lambda model_id, usage: call_cost(model_id, usage, settings.prices),
        prompt=prompt,
    )
    return tools, answers
