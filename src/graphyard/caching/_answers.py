"""The answer cache: the final answer to a self-contained question, served again without a model.

Why not LangGraph's node cache for this: a node-cache hit replays the node's stored writes
and skips the node, so nothing streams in ``messages`` mode (no model runs), and the replayed
``AIMessage`` keeps the id it had in the first thread; the ``messages`` channel replaces
messages by id, so a hit on a later turn of the *same* thread would overwrite the earlier
answer instead of appending one. So answers live on the same ``BaseCache`` backend (namespace
``graphyard,answers``) but are served by the planner node itself:

- a hit streams the stored text token by token through :class:`ReplayChatModel` (a chat
  model that never touches the network), so ``messages`` mode, ``astream_events`` and the
  chat endpoint see it like a live answer, only fast; it carries a fresh message id;
- before the tokens, a ``custom`` stream event ``{"type": "cache_hit", ...}`` says it was
  a hit and how many dollars it saved, and a LangChain custom callback event
  (:data:`CACHE_EVENT`) tells callback handlers (ledger, metrics) about hits and misses;
- the replay's callback metadata carries :data:`CACHE_HIT_METADATA_KEY`, so a handler that
  counts model calls can skip it: it made no provider call and cost nothing.

What is cached, and for whom (see :func:`graphyard.caching.question_scope`): answers to
questions with no personal data are shared by all users; an answer that used the user's
order (``order_status`` ran, or the question names an order) is kept for that user only
(``user:<id>``, or the thread when nobody is authenticated), with a shorter TTL. A turn that
ran a tool with side effects (``create_ticket``), an unknown tool, a failed tool, or whose
answer the critic would send back is never cached. This module must never serve a
user-scoped entry under another owner's key.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
    adispatch_custom_event,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langchain_core.tools import BaseTool

from graphyard.caching._backends import CacheCounts
from graphyard.caching._keys import (
    Scope,
    cache_key,
    normalize_question,
    owner_of,
    question_scope,
    tool_versions,
)
from graphyard.caching._store import GraphCache
from graphyard.models import CACHE_HIT_METADATA_KEY
from graphyard.replay import recorded_answer_cache_hit

__all__ = [
    "ANSWERS_NAMESPACE",
    "CACHE_EVENT",
    "CACHE_HIT_METADATA_KEY",
    "AnswerCache",
    "CachedAnswer",
    "ReplayChatModel",
]

log = logging.getLogger(__name__)

ANSWERS_NAMESPACE = ("graphyard", "answers")
CACHE_EVENT = "graphyard_cache"
"""Name of the LangChain custom callback event sent on every answer-cache lookup."""

READ_ONLY_TOOLS = {"search_help_articles": "shared", "order_status": "user"}
"""Tools a cached turn may have used, and the scope their results give the answer."""

_TOKEN = re.compile(r"\s*\S+|\s+$")


@dataclass(slots=True)
class CachedAnswer:
    """One stored answer and what producing it cost."""

    text: str
    model_id: str
    tier: str
    scope: Scope
    cost_usd: float
    """Dollars the original turn spent on model calls: what each hit saves."""
    input_tokens: int
    output_tokens: int
    calls: int
    created_at: float


class ReplayChatModel(BaseChatModel):
    """Streams a stored answer token by token; makes no provider call, reports no usage.

    >>> ReplayChatModel(text="Refunds take 5 days.").invoke("ignored").content
    'Refunds take 5 days.'
    """

    text: str
    model_id: str = "cache"
    pause: float = 0.0
    """Seconds between tokens (0: just yield to the event loop, so each token is its own frame)."""

    @property
    def _llm_type(self) -> str:
        return "graphyard-cache"

    def _message(self) -> AIMessage:
        return AIMessage(
            content=self.text,
            id=str(uuid.uuid4()),
            usage_metadata=UsageMetadata(input_tokens=0, output_tokens=0, total_tokens=0),
            response_metadata={
                "finish_reason": "stop",
                "model_name": self.model_id,
                "cache_hit": True,
            },
        )

    def _chunks(self, message: AIMessage) -> Iterator[AIMessageChunk]:
        for token in _TOKEN.findall(self.text) or [""]:
            yield AIMessageChunk(content=token, id=message.id)
        yield AIMessageChunk(
            content="",
            id=message.id,
            usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
            chunk_position="last",
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._message())])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._message()):
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks(self._message()):
            await asyncio.sleep(self.pause)
            yield ChatGenerationChunk(message=chunk)


CostFn = Callable[[str, Mapping[str, Any]], float]
"""``(model_id, usage_metadata) -> dollars``, e.g. :func:`graphyard.models.call_cost`."""


class AnswerCache:
    """Stores and serves final answers of a graph's turns on a :class:`GraphCache`.

    ``prompt(tier)`` returns the identity of the system prompt a tier is called with (the
    prompt version plus its text): it is called on every lookup, so a changed prompt
    changes every key at once.

    >>> import asyncio
    >>> from graphyard.caching import GraphCache, MemoryCacheBackend
    >>> answers = AnswerCache(GraphCache(MemoryCacheBackend()), tools=[], cost=lambda m, u: 0.01,
    ...                       prompt=lambda tier: "v1")
    >>> asyncio.run(answers.get("What is the refund policy?", model_id="m", tier="mid",
    ...             scope="shared", owner=None, prompt="v1")) is None
    True
    """

    def __init__(
        self,
        cache: GraphCache,
        *,
        tools: Sequence[BaseTool],
        cost: CostFn,
        prompt: Callable[[Any], str],
        kb: Any = None,
        shared_ttl: int | None = None,
        user_ttl: int | None = None,
    ) -> None:
        self.cache = cache
        self.tools = list(tools)
        self.cost = cost
        self.prompt = prompt
        self.kb = kb
        self.shared_ttl = shared_ttl or cache.config.seconds("answer_ttl")
        self.user_ttl = user_ttl or cache.config.seconds("user_answer_ttl")
        self._versions: dict[str, str] | None = None

    # --- keys ------------------------------------------------------------------------------

    async def versions(self) -> dict[str, str]:
        """Tool versions and the knowledge base's content hash (computed once, off the loop)."""
        if self._versions is None:
            from graphyard.caching._kb import kb_version

            def compute() -> dict[str, str]:
                out = tool_versions(self.tools)
                if self.kb is not None:
                    out["knowledge_base"] = kb_version(self.kb)
                return out

            self._versions = await asyncio.to_thread(compute)
        return self._versions

    async def key(
        self,
        question: str,
        *,
        model_id: str,
        tier: str,
        scope: Scope,
        owner: str | None,
        prompt: str,
    ) -> str:
        """The entry key: question, model, tier, prompt, tool versions, and the owner if personal."""
        return cache_key(
            {
                "q": normalize_question(question),
                "model": model_id,
                "tier": tier,
                "prompt": prompt,
                "tools": await self.versions(),
                "scope": scope,
                "owner": owner if scope == "user" else None,
            }
        )

    # --- generic get/put (for any graph) ----------------------------------------------------

    async def get(
        self,
        question: str,
        *,
        model_id: str,
        tier: str,
        scope: Scope,
        owner: str | None,
        prompt: str,
    ) -> CachedAnswer | None:
        """The stored answer for this question, model, tier, prompt and owner, if any."""
        if scope == "user" and not owner:
            return None
        key = await self.key(
            question, model_id=model_id, tier=tier, scope=scope, owner=owner, prompt=prompt
        )
        found = await self.cache.backend.aget([(ANSWERS_NAMESPACE, key)])
        value = found.get((ANSWERS_NAMESPACE, key))
        return CachedAnswer(**value) if isinstance(value, dict) else None

    async def put(
        self, question: str, answer: CachedAnswer, *, owner: str | None, prompt: str
    ) -> None:
        """Store ``answer`` (under ``owner`` when its scope is ``user``)."""
        if answer.scope == "user" and not owner:
            return
        key = await self.key(
            question,
            model_id=answer.model_id,
            tier=answer.tier,
            scope=answer.scope,
            owner=owner,
            prompt=prompt,
        )
        ttl = self.user_ttl if answer.scope == "user" else self.shared_ttl
        await self.cache.backend.aset({(ANSWERS_NAMESPACE, key): (asdict(answer), ttl)})
        await self.cache.acount([CacheCounts("answers", stores=1)])

    # --- the reference agent's hooks --------------------------------------------------------

    async def lookup(
        self, state: Mapping[str, Any], tier: Any, config: RunnableConfig
    ) -> dict[str, Any] | None:
        """In the planner, before any model call: the state update of a hit, else ``None``.

        On a hit the answer streams (``messages`` mode) through :class:`ReplayChatModel`.
        """
        if recorded_answer_cache_hit() is False:
            return None  # a replay whose recording called the model here: so does the replay
        turn = _turn(state)
        if turn is None:
            return None
        question, has_history = turn
        scope = question_scope(question, has_history=has_history)
        if scope is None:
            return None
        configurable = config.get("configurable") or {}
        owner = owner_of(configurable)
        prompt = self.prompt(tier)
        found: CachedAnswer | None = None
        try:
            found = await self._find(question, tier, scope, owner, prompt)
        except Exception:  # a cache that cannot be read is a miss, never a failed run
            log.exception("could not read the answer cache")
            return None
        if found is None:
            await self.cache.acount([CacheCounts("answers", misses=1)])
            await _callback_event(config, {"type": "cache_miss", "cache": "answers"})
            return None
        await self.cache.acount([CacheCounts("answers", hits=1, saved_usd=found.cost_usd)])
        event = {
            "type": "cache_hit",
            "cache": "answers",
            "scope": found.scope,
            "tier": found.tier,
            "model": found.model_id,
            "saved_usd": round(found.cost_usd, 10),
            "saved_calls": found.calls,
            "saved_tokens": found.input_tokens + found.output_tokens,
            "age_seconds": round(max(time.time() - found.created_at, 0.0), 3),
        }
        _stream_event(event)
        await _callback_event(config, event)
        replay = ReplayChatModel(text=found.text, model_id=found.model_id)
        # no tier.call_config(): the graphyard_model key would make a ledger count a model call
        meta: RunnableConfig = {
            "metadata": {CACHE_HIT_METADATA_KEY: True, "graphyard_cache_saved_usd": found.cost_usd}
        }
        message = await replay.ainvoke([HumanMessage(question)], merge_configs(config, meta))
        # ReplayChatModel gives every replay a fresh id: the messages channel replaces by id,
        # so reusing the stored answer's id would overwrite an earlier turn's message
        return {"messages": [message]}

    async def _find(
        self, question: str, tier: Any, scope: Scope, owner: str | None, prompt: str
    ) -> CachedAnswer | None:
        # a general question may have been answered from a user's order: look there too
        for try_scope in ("shared", "user") if scope == "shared" else ("user",):
            found = await self.get(
                question,
                model_id=tier.model_id,
                tier=tier.name,
                scope=try_scope,  # type: ignore[arg-type]
                owner=owner,
                prompt=prompt,
            )
            if found is not None:
                return found
        return None

    async def remember(
        self,
        state: Mapping[str, Any],
        tier: Any,
        config: RunnableConfig,
        response: AIMessage,
        *,
        accepted: bool,
    ) -> None:
        """In the planner, after a final answer: store it if the turn may be cached."""
        if not accepted or response.tool_calls or response.response_metadata.get("cache_hit"):
            return
        if recorded_answer_cache_hit() is not None:
            return  # a replay serves recorded answers: they never enter the shared cache
        turn = _turn(state, answered=True)
        if turn is None:
            return
        question, has_history = turn
        scope = question_scope(question, has_history=has_history)
        if scope is None:
            return
        if has_history:
            # the prompt carried this user's earlier turns (and pinned facts such as their
            # e-mail): the answer may repeat them, so it is never shared with anyone else
            scope = "user"
        spent = [
            m for m in _turn_messages(state["messages"]) if isinstance(m, (AIMessage, ToolMessage))
        ]
        for message in spent:
            if isinstance(message, ToolMessage) and message.status == "error":
                return
            if isinstance(message, AIMessage):
                for call in message.tool_calls:
                    tool_scope = READ_ONLY_TOOLS.get(call["name"])
                    if tool_scope is None:
                        return  # side effects (tickets) or a tool we know nothing about
                    if tool_scope == "user":
                        scope = "user"
        calls = [m for m in spent if isinstance(m, AIMessage) and m.usage_metadata] + [response]
        usage = [dict(m.usage_metadata or {}) for m in calls]
        answer = CachedAnswer(
            text=str(response.content),
            model_id=tier.model_id,
            tier=tier.name,
            scope=scope,
            cost_usd=sum(self.cost(tier.model_id, u) for u in usage),
            input_tokens=sum(int(u.get("input_tokens") or 0) for u in usage),
            output_tokens=sum(int(u.get("output_tokens") or 0) for u in usage),
            calls=len(calls),
            created_at=time.time(),
        )
        owner = owner_of(config.get("configurable") or {})
        try:
            await self.put(question, answer, owner=owner, prompt=self.prompt(tier))
        except Exception:  # a cache that cannot write must not fail the answer
            log.exception("could not store an answer in the cache")


def _turn_messages(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return list(messages[i + 1 :])
    return []


def _turn(state: Mapping[str, Any], *, answered: bool = False) -> tuple[str, bool] | None:
    """``(question, has_history)`` for a first attempt at a turn; ``None`` otherwise."""
    if state.get("verdict") is not None or state.get("revisions"):
        return None  # a revision: its prompt holds the critic's reason
    messages: Sequence[BaseMessage] = state.get("messages") or []
    humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    if not humans:
        return None
    last = humans[-1]
    if not answered and last != len(messages) - 1:
        return None  # only before the turn's first model call
    content = messages[last].content
    if not isinstance(content, str):
        return None  # images and other blocks are not normalized: never cached
    return content, len(humans) > 1


def _stream_event(event: dict[str, Any]) -> None:
    from langgraph.config import get_stream_writer

    try:
        writer = get_stream_writer()
    except RuntimeError:  # called outside a graph run
        return
    writer(event)


async def _callback_event(config: RunnableConfig, event: dict[str, Any]) -> None:
    try:
        await adispatch_custom_event(CACHE_EVENT, event, config=config)
    except Exception:  # no parent run (outside a graph): nobody to tell
        log.debug("no callback run for cache event", exc_info=True)
