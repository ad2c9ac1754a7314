"""Context windows that move in chunks, with pinned facts, an optional summary and cache breakpoints.

One :class:`ContextWindow` serves one model: before each call it plans which stored
messages the prompt shows (``plan_window`` underneath, so every invariant of ``_trim``
holds), and :meth:`ContextWindow.prompt` builds that prompt. The plan, the pins, the summary
and the token scale live in graph state as a :class:`ContextState`, packed by
:meth:`ContextWindow.pack` (``_stored``: about 3 KB at the default pin cap, the block rendered
again rather than stored), so a resumed, replayed or forked thread plans exactly the same prompt.

Why chunks: a window that slides one turn at a time changes the prompt's prefix on every
call, and a provider's prompt cache (Anthropic's, OpenAI's) then never hits. Here the window
start stays where it is while the prompt fits; when it no longer does, the start jumps
forward so that the prompt fills only ``refill`` of the budget, and stays there again for
several turns. The pinned-facts block shows only facts whose message is outside the window,
so it too changes only when the start jumps.

Why not LangChain's middleware (``langchain.agents.middleware``): ``SummarizationMiddleware``
rewrites the stored history (``RemoveMessage(REMOVE_ALL_MESSAGES)`` and a summary message),
costs a model call whenever it triggers and works only inside ``create_agent``;
``ContextEditingMiddleware`` clears old tool results but cannot keep the facts in them;
``AnthropicPromptCachingMiddleware`` marks the last message but knows nothing of a window
that moves. langgraph's ``pre_model_hook`` (``create_react_agent``) is deprecated. A plain
node plus a prompt function works in any ``StateGraph`` and in the reference agent alike.

This module never rewrites stored messages and never calls a model except the summariser
(only when ``summary`` is on, once per jump of the window start) and Anthropic's token
counting endpoint (only when ``exact_count`` is on and a prompt comes near the budget).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph.constants import TAG_NOSTREAM

from graphyard.config import ContextConfig
from graphyard.context._pins import (
    Pin,
    extract_pins,
    keep_pins,
    merge_pins,
    render_pins,
    text_tokens,
)
from graphyard.context._stored import pack_context, render_block, unpack_context
from graphyard.context._tokens import ExactCounter, exact_counter, rescale, scaled_counter
from graphyard.context._trim import WindowPlan, apply_window, plan_window

__all__ = ["ContextState", "ContextWindow", "build_prompt", "context_node", "context_prompt"]

EPHEMERAL: dict[str, str] = {"type": "ephemeral"}
"""Anthropic's cache breakpoint marker (5-minute cache)."""
_NEAR_BUDGET = 0.9
"""An estimated prompt above this share of the budget is checked with an exact counter."""
_NEAR_BUDGET_UNMEASURED = 0.5
"""The same before any real count calibrated the estimate (a tokenizer may count 2x more)."""
_PINS_KEPT = 2
"""State keeps this many blocks' worth of pins, the best ranked; it stays small however long the thread."""
_SUMMARY_INPUT_CHARS = 24_000
_SUMMARY_SYSTEM = (
    "You maintain a running summary of a customer-support conversation for an assistant that "
    "can no longer see its older messages. Fold the new messages into the summary. Keep every "
    "name, id, number, date, decision, promise and open question; drop greetings and filler. "
    "Answer with the summary only, at most {words} words."
)


class ContextState(TypedDict, total=False):
    """What the context step keeps in graph state between model calls."""

    plan: WindowPlan
    """The window of the next model call over the stored messages."""
    start_id: str | None
    """Id of the message the window starts at: the start stays there while the prompt fits."""
    model: str
    """Which model the plan was made for (its scale is learned separately)."""
    scales: dict[str, float]
    """Real tokens per estimated token, per model, from the last ``usage_metadata``."""
    measured: list[str]
    """Models whose scale comes from a real count (usage or exact), not the default."""
    sent: int
    """Estimate (unscaled) of the planned prompt, tools included; compared with the real count."""
    budget: int
    """Tokens the prompt may take."""
    pins: list[Pin]
    """Facts pinned so far."""
    scanned: int
    """Messages already read for pins."""
    scanned_id: str | None
    """Id of the last message read, to notice a rewritten history and read it again."""
    block: str
    """The text added to the system message: pinned facts outside the window, and the summary.
    Graph state holds the packed form (:meth:`ContextWindow.pack`), which renders it again."""
    breakpoints: bool
    """Whether prompts carry Anthropic cache breakpoints."""
    summary: str | None
    """Running summary of the messages before ``summarized``."""
    summarized: int
    """Messages folded into ``summary``."""
    summary_usage: UsageMetadata | None
    """Usage of the summary call made while planning, if one was made."""
    jumps: int
    """How many times the window start has moved."""
    exact: int | None
    """The provider's exact count of the planned prompt, when it was checked."""


class ContextWindow:
    """Plans and builds the prompts of one model within its context budget.

    ``window`` and ``max_tokens`` give the budget: ``window * fraction - max_tokens``.

    >>> from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    >>> cw = ContextWindow(window=2000, max_tokens=200)
    >>> history = [HumanMessage("my email is jo@example.com " + "x" * 6000), AIMessage("noted"),
    ...            HumanMessage("which email do you have?")]
    >>> state = cw.plan(history, None, system=SystemMessage("Be brief."))
    >>> state["plan"]["start"], "jo@example.com" in state["block"]
    (2, True)
    >>> [m.type for m in cw.prompt(history, state, SystemMessage("Be brief."))]
    ['system', 'human']
    """

    def __init__(
        self,
        *,
        window: int,
        max_tokens: int = 0,
        config: ContextConfig | None = None,
        name: str = "model",
        tools: Sequence[Any] = (),
        exact: ExactCounter | None = None,
        summarizer: Runnable[Any, Any] | None = None,
        cache_breakpoints: bool = False,
    ) -> None:
        self.config = config or ContextConfig()
        fraction = self.config.fraction if self.config.fraction is not None else 0.8
        self.budget = int(window * fraction) - max_tokens
        if self.budget <= 0:
            raise ValueError(
                f"context budget of {name!r} is {self.budget} tokens: raise the window "
                f"({window}) or the fraction ({fraction}), or lower max_tokens ({max_tokens})"
            )
        self.name = name
        self.tools = list(tools)
        self.tool_tokens = count_tokens_approximately([], tools=self.tools) if self.tools else 0
        self.exact = exact if self.config.exact_count else None
        self.summarizer = summarizer if self.config.summary else None
        self.cache_breakpoints = cache_breakpoints and self.config.cache

    @classmethod
    def for_model(
        cls,
        model: BaseChatModel,
        *,
        window: int | None = None,
        max_tokens: int | None = None,
        config: ContextConfig | None = None,
        tools: Sequence[Any] = (),
        summarizer: Runnable[Any, Any] | None = None,
    ) -> ContextWindow:
        """A window for ``model``: its context size from its profile (``max_input_tokens``), its
        completion budget from ``max_tokens``, exact counting and cache breakpoints for Anthropic.

        >>> from graphyard.models import ScriptedChatModel
        >>> ContextWindow.for_model(ScriptedChatModel(), window=8192, max_tokens=256).budget
        6297
        """
        profile = getattr(model, "profile", None) or {}
        size = window or profile.get("max_input_tokens")
        if not size:
            raise ValueError(
                f"{type(model).__name__} has no context window in its profile; pass window=..."
            )
        completion = max_tokens if max_tokens is not None else getattr(model, "max_tokens", 0)
        anthropic = getattr(model, "_llm_type", None) == "anthropic-chat"
        return cls(
            window=int(size),
            max_tokens=int(completion or 0),
            config=config,
            name=str(getattr(model, "model", None) or getattr(model, "model_name", "model")),
            tools=tools,
            exact=exact_counter(model),
            summarizer=summarizer,
            cache_breakpoints=anthropic,
        )

    # --- planning -----------------------------------------------------------------------------

    def plan(
        self,
        messages: Sequence[BaseMessage],
        state: ContextState | None,
        *,
        system: SystemMessage | None = None,
        scale: float | None = None,
    ) -> ContextState:
        """Plan the next call's window (no model call, no network): update the pins, learn the
        scale from the last answer, keep the window start or jump it forward by a chunk."""
        ctx: ContextState = unpack_context(messages, state)  # type: ignore[assignment]
        scales = dict(ctx.get("scales") or {})
        if scale is None:
            scale = self._observe(messages, ctx, scales)
        scales[self.name] = scale
        count = scaled_counter(scale)
        ctx["scales"], ctx["model"], ctx["budget"] = scales, self.name, self.budget
        ctx.pop("summary_usage", None)
        ctx.pop("exact", None)

        pins = self._pins(messages, ctx) if self.config.pins else []
        summary = ctx.get("summary") if self.config.summary else None
        reserve = self._reserve(pins, scale)
        tools = math.ceil(self.tool_tokens * scale)
        available = self.budget - tools - reserve
        fixed = count([system]) if system is not None else 0

        anchor = _find(messages, ctx.get("start_id"), ctx.get("plan"))
        plan: WindowPlan | None = None
        if anchor is not None and isinstance(messages[anchor], HumanMessage):
            used = fixed + count(messages[anchor:])
            if used <= available:
                plan = WindowPlan(
                    total=len(messages), start=anchor, skip=None, truncate=None, tokens=used,
                    dropped=anchor,
                )  # fmt: skip
        if plan is None:
            target = fixed + int((available - fixed) * self.config.refill)
            plan = plan_window(messages, target, system=system, counter=count)
            if plan["skip"] is not None or plan["truncate"] is not None:
                plan = plan_window(messages, available, system=system, counter=count)
            if anchor is None or plan["start"] != anchor:
                ctx["jumps"] = ctx.get("jumps", 0) + 1
        ctx["plan"] = plan
        ctx["start_id"] = messages[plan["start"]].id if plan["start"] < len(messages) else None
        ctx["block"] = self._block(messages, plan, pins, summary)
        ctx["breakpoints"] = self.cache_breakpoints
        ctx["sent"] = self._estimate(messages, ctx, system)
        return ctx

    async def aplan(
        self,
        messages: Sequence[BaseMessage],
        state: ContextState | None,
        *,
        system: SystemMessage | None = None,
        config: RunnableConfig | None = None,
    ) -> ContextState:
        """:meth:`plan`, then the summary of what left the window (when on) and, near the
        budget, a check with the provider's exact counter (planned again if it is over)."""
        ctx = self.plan(messages, state, system=system)
        if self.summarizer is not None and ctx["plan"]["start"] > ctx.get("summarized", 0):
            ctx = await self._summarize(messages, ctx, config)
            ctx["block"] = self._block(
                messages, ctx["plan"], ctx.get("pins", []) if self.config.pins else [],
                ctx.get("summary"),
            )  # fmt: skip
            ctx["sent"] = self._estimate(messages, ctx, system)
        if self.exact is None:
            return ctx
        for _ in range(3):
            scale = ctx["scales"][self.name]
            near = _NEAR_BUDGET if self.name in ctx.get("measured", []) else _NEAR_BUDGET_UNMEASURED
            if math.ceil(ctx["sent"] * scale) < near * self.budget:
                return ctx
            prompt = build_prompt(messages, ctx, system)
            exact = await asyncio.to_thread(self.exact, prompt, self.tools)
            ctx["exact"] = exact
            ctx["measured"] = sorted({*ctx.get("measured", []), self.name})
            if exact <= self.budget:
                return ctx
            # over by the exact count: learn its scale, plan again (the start may jump)
            ctx = self.plan(messages, ctx, system=system, scale=rescale(exact, ctx["sent"]) * 1.02)
        return ctx

    # --- the prompt ---------------------------------------------------------------------------

    def prompt(
        self,
        messages: Sequence[BaseMessage],
        state: ContextState | None,
        system: SystemMessage | None = None,
        *,
        transform: Callable[[list[BaseMessage]], list[BaseMessage]] | None = None,
    ) -> list[BaseMessage]:
        """:func:`build_prompt`, planning first when ``state`` holds no plan for ``messages``."""
        state = unpack_context(messages, state) if state is not None else None  # type: ignore[assignment]
        plan = (state or {}).get("plan")
        if not state or plan is None or plan["total"] != len(messages):
            state = self.plan(messages, state, system=system)
        return build_prompt(messages, state, system, transform=transform)

    def ensure(
        self,
        messages: Sequence[BaseMessage],
        state: ContextState | None,
        system: SystemMessage | None = None,
    ) -> ContextState:
        """``state`` (unpacked) if it holds this model's plan for ``messages``, else a fresh plan."""
        state = unpack_context(messages, state)  # type: ignore[assignment]
        if state and state.get("model") == self.name:
            plan = state.get("plan")
            if plan is not None and plan["total"] == len(messages):
                return state
        return self.plan(messages, state, system=system)

    def record(
        self, state: ContextState, prompt: Sequence[BaseMessage], *, tools: bool
    ) -> ContextState:
        """``state`` noting the estimate of the prompt really sent (after a ``transform``, with
        or without tool schemas), so the next plan learns the right scale from the answer;
        ``state`` itself when that changes nothing (no need to write it to the graph again).

        >>> from langchain_core.messages import HumanMessage
        >>> ContextWindow(window=1000).record({}, [HumanMessage("x" * 40)], tools=False)["sent"]
        14
        """
        sent = count_tokens_approximately(list(prompt)) + (self.tool_tokens if tools else 0)
        if state.get("sent") == sent and state.get("model") == self.name:
            return state  # unchanged: the caller need not write it again
        return {**state, "sent": sent, "model": self.name}

    def pack(self, messages: Sequence[BaseMessage], state: ContextState) -> dict[str, Any]:
        """The compact form of ``state`` to keep in graph state (see ``_stored``): every
        function here takes it back, given the same ``messages``.

        >>> from langchain_core.messages import HumanMessage
        >>> cw = ContextWindow(window=1000)
        >>> history = [HumanMessage("order A1001", id="h")]
        >>> cw.ensure(history, cw.pack(history, cw.plan(history, None)))["pins"][0]["value"]
        'A1001'
        """
        ctx = dict(state)
        if not self.config.pins:
            ctx.pop("pins", None)
        return pack_context(
            messages, ctx, pin_tokens=self.config.pin_tokens, summary=self.config.summary
        )

    # --- internals ----------------------------------------------------------------------------

    def _observe(
        self, messages: Sequence[BaseMessage], ctx: ContextState, scales: Mapping[str, float]
    ) -> float:
        """The scale after reading the answer to the last planned prompt, if it was ours."""
        current = scales.get(self.name, 1.0)
        plan = ctx.get("plan")
        if plan is None or ctx.get("model") != self.name:
            return current
        for message in messages[plan["total"] :]:
            if isinstance(message, AIMessage) and message.usage_metadata:
                real = message.usage_metadata.get("input_tokens")
                if real:
                    ctx["measured"] = sorted({*ctx.get("measured", []), self.name})
                return rescale(real, ctx.get("sent"), current)
        return current

    def _pins(self, messages: Sequence[BaseMessage], ctx: ContextState) -> list[Pin]:
        scanned = ctx.get("scanned", 0)
        pins = list(ctx.get("pins") or [])
        if scanned > len(messages) or (
            scanned and messages[scanned - 1].id != ctx.get("scanned_id")
        ):
            scanned, pins = 0, []  # history was rewritten: read it again
        pins = merge_pins(pins, extract_pins(messages, start=scanned))
        # state holds a few blocks' worth: enough for facts that leave the window later
        pins = keep_pins(pins, max_tokens=_PINS_KEPT * self.config.pin_tokens)
        ctx["pins"], ctx["scanned"] = pins, len(messages)
        ctx["scanned_id"] = messages[-1].id if messages else None
        return pins

    def _reserve(self, pins: Sequence[Pin], scale: float) -> int:
        """Tokens kept for the context block whatever the window: every pin (capped) and the
        summary, at most. The block shown is a subset, so it always fits in what is kept."""
        tokens = 0
        if pins:
            everything = render_pins(pins, max_tokens=1 << 30)
            tokens += min(text_tokens(everything), self.config.pin_tokens) + 1
        if self.config.summary:
            tokens += self.config.summary_tokens + 12
        # +6: the separator, and a system message of its own when there is no system prompt
        return math.ceil(tokens * scale) + 6 if tokens else 0

    def _block(
        self,
        messages: Sequence[BaseMessage],
        plan: WindowPlan,
        pins: Sequence[Pin],
        summary: str | None,
    ) -> str:
        return render_block(messages, plan, pins, summary, self.config.pin_tokens)

    def _estimate(
        self, messages: Sequence[BaseMessage], ctx: ContextState, system: SystemMessage | None
    ) -> int:
        return count_tokens_approximately(build_prompt(messages, ctx, system)) + self.tool_tokens

    async def _summarize(
        self, messages: Sequence[BaseMessage], ctx: ContextState, config: RunnableConfig | None
    ) -> ContextState:
        assert self.summarizer is not None
        done = min(ctx.get("summarized", 0), ctx["plan"]["start"])
        lines = [f"{m.type}: {_text(m)}" for m in messages[done : ctx["plan"]["start"]]]
        new = "\n".join(lines)[-_SUMMARY_INPUT_CHARS:]
        words = max(self.config.summary_tokens * 3 // 4, 10)
        request = [
            SystemMessage(_SUMMARY_SYSTEM.format(words=words)),
            HumanMessage(
                f"Summary so far:\n{ctx.get('summary') or '(none)'}\n\nNew messages:\n{new}"
            ),
        ]
        # "nostream": the summary is bookkeeping, not an answer; keep its tokens off the stream
        answer = await self.summarizer.ainvoke(
            request, merge_configs(config, {"tags": [TAG_NOSTREAM]})
        )
        text = _text(answer) if isinstance(answer, BaseMessage) else str(answer)
        ctx["summary"] = text.strip()[: self.config.summary_tokens * 4]
        ctx["summarized"] = ctx["plan"]["start"]
        ctx["summary_usage"] = getattr(answer, "usage_metadata", None)
        return ctx


def context_node(
    model: BaseChatModel | ContextWindow,
    *,
    system: str | SystemMessage | None = None,
    messages_key: str = "messages",
    state_key: str = "context",
    **options: Any,
) -> Callable[[Mapping[str, Any], RunnableConfig], Awaitable[dict[str, Any]]]:
    """A graph node that plans the next model call's window; add it before your model node.

    Your state needs a ``context`` key (any value type; see :class:`ContextState`), and your
    model node builds its prompt with :func:`context_prompt`. ``options`` go to
    :meth:`ContextWindow.for_model` (``window``, ``max_tokens``, ``config``, ``tools``,
    ``summarizer``).

    >>> from langgraph.graph import START, MessagesState, StateGraph
    >>> from graphyard.models import ScriptedChatModel
    >>> class State(MessagesState):
    ...     context: dict
    >>> model = ScriptedChatModel(responses=["Hi!"])
    >>> async def agent(state):
    ...     return {"messages": [await model.ainvoke(context_prompt(state, "Be brief."))]}
    >>> builder = StateGraph(State)
    >>> builder.add_node("context", context_node(model, system="Be brief.", window=8192))  # doctest: +ELLIPSIS
    <...>
    >>> builder.add_node("agent", agent).add_edge(START, "context").add_edge("context", "agent")  # doctest: +ELLIPSIS
    <...>
    >>> import asyncio
    >>> asyncio.run(builder.compile().ainvoke({"messages": [("user", "hello")]}))["messages"][-1].content
    'Hi!'
    """
    window = (
        model if isinstance(model, ContextWindow) else ContextWindow.for_model(model, **options)
    )
    system_message = SystemMessage(system) if isinstance(system, str) else system

    async def context(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        planned = await window.aplan(
            state[messages_key], state.get(state_key), system=system_message, config=config
        )
        return {state_key: window.pack(state[messages_key], planned)}

    context.window = window  # type: ignore[attr-defined]  # for inspection
    return context


def context_prompt(
    state: Mapping[str, Any],
    system: str | SystemMessage | None = None,
    *,
    transform: Callable[[list[BaseMessage]], list[BaseMessage]] | None = None,
    messages_key: str = "messages",
    state_key: str = "context",
) -> list[BaseMessage]:
    """The prompt :func:`context_node` planned, from the graph state alone (see its example)."""
    context = state.get(state_key)
    if not context or "plan" not in context:
        raise ValueError(
            f"state[{state_key!r}] holds no plan: run context_node before the model node"
        )
    system_message = SystemMessage(system) if isinstance(system, str) else system
    return build_prompt(state[messages_key], context, system_message, transform=transform)


def build_prompt(
    messages: Sequence[BaseMessage],
    state: ContextState,
    system: SystemMessage | None = None,
    *,
    transform: Callable[[list[BaseMessage]], list[BaseMessage]] | None = None,
) -> list[BaseMessage]:
    """The messages to send under a planned ``state``: the system message with the context
    block (pinned facts outside the window, the summary), then the window.

    ``transform`` rewrites the window (e.g. folding tool results for a model without tools)
    before the cache breakpoint goes on. With ``breakpoints`` (Anthropic models) the system
    text and the last human or tool message carry ``cache_control`` content blocks: the form
    langchain-anthropic passes through on every transport (its top-level ``cache_control``
    kwarg is honoured by the direct API only). The system text's breakpoint keeps tools and
    instructions cached across jumps of the window; the last message's lets the next call
    read everything up to it, since the window start did not move. Marks that stored messages
    carry are left out, so a prompt never has more than these two (Anthropic allows four).

    >>> from langchain_core.messages import HumanMessage
    >>> history = [HumanMessage("hi")]
    >>> plan = {"total": 1, "start": 0, "skip": None, "truncate": None, "tokens": 5, "dropped": 0}
    >>> prompt = build_prompt(history, {"plan": plan, "block": "Facts: A1001", "breakpoints": True},
    ...                       SystemMessage("Be brief."))
    >>> prompt[0].content[0]["cache_control"], prompt[1].content[-1]["cache_control"]
    ({'type': 'ephemeral'}, {'type': 'ephemeral'})
    """
    if "v" in state:  # the packed form kept in graph state
        state = unpack_context(messages, state)  # type: ignore[assignment]
    view = apply_window(messages, state["plan"])
    if transform is not None:
        view = transform(view)
    block = state.get("block") or ""
    head: list[BaseMessage] = []
    if state.get("breakpoints"):
        blocks: list[str | dict[str, Any]] = []
        if system is not None:
            blocks.append({"type": "text", "text": _text(system), "cache_control": EPHEMERAL})
        if block:
            blocks.append({"type": "text", "text": block})
        if blocks:
            head = [SystemMessage(blocks, id=system.id if system else None)]
        return head + _mark_last(_unmarked(view))
    if system is not None or block:
        text = "\n\n".join(t for t in (_text(system) if system else "", block) if t)
        head = [SystemMessage(text, id=system.id if system else None)]
    return head + view


def _find(
    messages: Sequence[BaseMessage], start_id: str | None, plan: WindowPlan | None
) -> int | None:
    """Where the previous window started, if that message is still there."""
    if plan is None:
        return None
    start = plan["start"]
    if start_id is None:
        return start if start < len(messages) and messages[start].id is None else None
    if start < len(messages) and messages[start].id == start_id:
        return start
    for i, message in enumerate(messages):
        if message.id == start_id:
            return i
    return None


def _unmarked(view: list[BaseMessage]) -> list[BaseMessage]:
    """``view`` without the ``cache_control`` marks its stored messages may carry (a client can
    send content blocks with them): Anthropic rejects a request with more than four
    breakpoints, and ours are the two that matter. Marked messages are copied, never changed."""
    out = []
    for message in view:
        content = message.content
        if isinstance(content, list) and any(
            isinstance(b, dict) and "cache_control" in b for b in content
        ):
            blocks = [
                {k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b
                for b in content
            ]
            message = message.model_copy(update={"content": blocks})
        out.append(message)
    return out


def _mark_last(view: list[BaseMessage]) -> list[BaseMessage]:
    """Copy of ``view`` whose last human or tool message carries a cache breakpoint."""
    for i in range(len(view) - 1, -1, -1):
        message = view[i]
        if isinstance(message, HumanMessage | ToolMessage) and _text(message):
            content = message.content
            blocks = (
                [{"type": "text", "text": content}]
                if isinstance(content, str)
                else [
                    dict(b) if isinstance(b, dict) else {"type": "text", "text": b} for b in content
                ]
            )
            blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
            return [*view[:i], message.model_copy(update={"content": blocks}), *view[i + 1 :]]
    return view


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        b if isinstance(b, str) else str(b.get("text", ""))
        for b in content
        if isinstance(b, str | dict)
    )
