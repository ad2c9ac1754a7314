"""Knowledge-base search as a cached LangGraph task.

The agent's ``search_help_articles`` tool is wrapped so its work runs in a functional-API
``@task`` with a ``CachePolicy``: LangGraph's own node cache. Pregel looks the task's key up
in the graph's cache before running it, and on a hit replays the stored result without
running the search (the ``updates`` stream marks it ``{"__metadata__": {"cached": True}}``).

The key holds the normalized query, the tool's version (a hash of its code, description and
schema) and the knowledge base's content hash: editing an article or the tool invalidates.
The result is plain text (never a message), so a hit replays no message id from another
thread. Search results are the same for every user, so entries are shared; this module must
never cache a tool whose result depends on who asks (``order_status``), nor one with side
effects (``create_ticket``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from langgraph.func import task
from langgraph.types import CachePolicy

from graphyard.caching._keys import cache_key, normalize_question, text_version, tool_versions

__all__ = ["KB_TOOL", "cached_kb_search", "kb_version"]

KB_TOOL = "search_help_articles"
"""The tool whose results are cached."""


def kb_version(kb: Any) -> str:
    """A content hash of a knowledge base's articles (reads them on first use: call off the loop).

    >>> from graphyard.agent import KnowledgeBase
    >>> len(kb_version(KnowledgeBase()))
    16
    """
    return text_version(*(f"{a.slug}\x00{a.title}\x00{a.text}" for a in kb.articles))


def cached_kb_search(tools: Sequence[BaseTool], kb: Any, *, ttl: int) -> list[BaseTool]:
    """``tools`` with ``search_help_articles`` replaced by one whose search is a cached task.

    Outside a graph run (no Pregel loop to run tasks) the new tool searches directly.

    >>> from graphyard.agent import DemoShop, KnowledgeBase, make_tools
    >>> kb = KnowledgeBase()
    >>> tools = cached_kb_search(make_tools(DemoShop(":memory:"), kb), kb, ttl=60)
    >>> [t.name for t in tools]
    ['order_status', 'search_help_articles', 'create_ticket']
    """
    by_name = {t.name: t for t in tools}
    original = by_name.get(KB_TOOL)
    if original is None or not isinstance(original, StructuredTool) or original.func is None:
        return list(tools)
    search = original.func
    versions: list[str] = []  # [tool version, knowledge base version], computed on first use

    def key(query: str) -> str:
        return cache_key(
            {"tool": KB_TOOL, "q": query, "tool_version": versions[0], "kb": versions[1]}
        )

    @task(name="kb_search", cache_policy=CachePolicy(key_func=key, ttl=ttl))
    async def kb_search(query: str) -> str:
        return str(await asyncio.to_thread(search, query))

    async def run(query: str) -> str:
        if not versions:  # reads source files and articles: off the event loop
            found = await asyncio.to_thread(
                lambda: [tool_versions([original])[KB_TOOL], kb_version(kb)]
            )
            versions[:] = found
        normalized = normalize_question(query) or query
        if not _in_graph_run():  # e.g. a test calling the tool directly: no task runner
            return str(await asyncio.to_thread(search, normalized))
        return await kb_search(normalized)

    wrapped = StructuredTool(
        name=original.name,
        description=original.description,
        args_schema=original.args_schema,
        coroutine=run,
        func=search,
    )
    return [wrapped if t.name == KB_TOOL else t for t in tools]


def _in_graph_run() -> bool:
    from langgraph.config import get_config

    try:
        return "__pregel_call" in get_config().get("configurable", {})
    except RuntimeError:
        return False
