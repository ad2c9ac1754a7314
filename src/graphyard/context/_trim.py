"""Fit a conversation into a model's context budget without rewriting it.

The plan is computed over the stored history and applied to build the prompt of one
model call; the stored history is never changed (returning a trimmed list through an
``add_messages``-style reducer merges instead of replacing, a bug in many examples).

Invariants, each tested:

- the window starts on a human turn (providers such as Anthropic require it);
- an AI message that calls tools is never separated from its tool results;
- the prompt (system message included) fits the budget. When even the current turn does
  not fit, older tool exchanges of that turn are dropped, and as a last resort the human
  message's text is cut in the middle, so the model call still succeeds.

Why not ``langchain_core.messages.trim_messages``: with ``start_on="human"`` it returns an
empty window when the current turn alone exceeds the budget, and it does not keep an AI
tool call together with all of its results when several tools were called; the plan below
does both and is a few integers, small enough to keep in state for inspection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

__all__ = ["TokenCounter", "WindowPlan", "apply_window", "plan_window"]

TokenCounter = Callable[[Sequence[BaseMessage]], int]
"""Counts the tokens of a list of messages as the model will see them."""

_ELLIPSIS = "\n[...]\n"


class WindowPlan(TypedDict):
    """Which stored messages one model call sees. ``messages[start:]``, minus ``skip``."""

    total: int
    """Number of stored messages the plan was made for."""
    start: int
    """Index of the first message kept."""
    skip: tuple[int, int] | None
    """A half-open range of indices dropped from inside the current turn."""
    truncate: int | None
    """Characters kept of the first (human) message when it alone overflows."""
    tokens: int
    """Tokens of the planned prompt, system message included."""
    dropped: int
    """Messages left out."""


def _units(messages: Sequence[BaseMessage]) -> list[tuple[int, int]]:
    """Group messages into atomic [start, end) ranges: a tool-calling AI message with its results."""
    units: list[tuple[int, int]] = []
    i = 0
    while i < len(messages):
        j = i + 1
        message = messages[i]
        if isinstance(message, AIMessage) and message.tool_calls:
            ids = {call["id"] for call in message.tool_calls}
            while (
                j < len(messages)
                and isinstance(messages[j], ToolMessage)
                and (
                    messages[j].tool_call_id in ids  # type: ignore[attr-defined]
                )
            ):
                j += 1
        units.append((i, j))
        i = j
    return units


def plan_window(
    messages: Sequence[BaseMessage],
    budget: int,
    *,
    system: BaseMessage | None = None,
    counter: TokenCounter = count_tokens_approximately,
) -> WindowPlan:
    """Plan the largest recent window of ``messages`` that fits ``budget`` tokens.

    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> history = [HumanMessage("a" * 400), AIMessage("b" * 400), HumanMessage("where is A1001?")]
    >>> plan = plan_window(history, budget=60)
    >>> plan["start"], plan["dropped"]
    (2, 2)
    """
    fixed = counter([system]) if system is not None else 0
    available = budget - fixed
    units = _units(messages)
    sizes = _Sizes(messages, units, counter)  # counted from the end, only as far as needed
    n = len(messages)

    # The largest suffix of whole units that fits.
    used, first = 0, len(units)
    while first > 0 and used + sizes[first - 1] <= available:
        first -= 1
        used += sizes[first]
    # Move the start forward to a human turn.
    human = next((u for u in range(first, len(units)) if _is_human(messages, units[u])), None)
    if human is not None:
        used -= sum(sizes[first:human])
        return WindowPlan(
            total=n,
            start=units[human][0],
            skip=None,
            truncate=None,
            tokens=fixed + used,
            dropped=units[human][0],
        )

    # The current turn alone does not fit: keep its human message and the latest units.
    last_human = next(
        (u for u in range(len(units) - 1, -1, -1) if _is_human(messages, units[u])), None
    )
    if last_human is None:  # no human turn at all: keep what fits
        start = units[first][0] if first < len(units) else n
        return WindowPlan(
            total=n, start=start, skip=None, truncate=None, tokens=fixed + used, dropped=start
        )
    head = units[last_human]
    used = sizes[last_human]
    tail = len(units)
    while tail - 1 > last_human and used + sizes[tail - 1] <= available:
        tail -= 1
        used += sizes[tail]
    skip = (head[1], units[tail][0]) if tail < len(units) else (head[1], n)
    if skip[0] == skip[1]:
        skip = None
    truncate = None
    if used > available:
        truncate = _fit_text(messages[head[0]], available - (used - sizes[last_human]), counter)
        used = available
    dropped = head[0] + (skip[1] - skip[0] if skip else 0)
    return WindowPlan(
        total=n, start=head[0], skip=skip, truncate=truncate, tokens=fixed + used, dropped=dropped
    )


def apply_window(messages: Sequence[BaseMessage], plan: WindowPlan) -> list[BaseMessage]:
    """The messages a model call sees under ``plan``: a new list (treat its messages as
    read-only; only a cut message is a copy)."""
    if plan["total"] != len(messages):
        raise ValueError("the window plan was made for a different history; plan again")
    view = list(messages[plan["start"] :])
    if plan["skip"] is not None:
        a, b = (i - plan["start"] for i in plan["skip"])
        view = view[:a] + view[b:]
    if plan["truncate"] is not None and view:
        first = view[0]
        text = str(first.content)
        keep = plan["truncate"]
        cut = text[: keep // 2] + _ELLIPSIS + text[len(text) - keep // 2 :]
        view[0] = first.model_copy(update={"content": cut})
    return view


class _Sizes:
    """Token counts of units, counted on first use: a long thread's old turns are never counted."""

    def __init__(
        self, messages: Sequence[BaseMessage], units: list[tuple[int, int]], counter: TokenCounter
    ) -> None:
        self._messages, self._units, self._counter = messages, units, counter
        self._known: dict[int, int] = {}

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return [self[i] for i in range(*key.indices(len(self._units)))]
        if key < 0:
            key += len(self._units)
        if key not in self._known:
            a, b = self._units[key]
            self._known[key] = self._counter(self._messages[a:b])
        return self._known[key]


def _is_human(messages: Sequence[BaseMessage], unit: tuple[int, int]) -> bool:
    return isinstance(messages[unit[0]], HumanMessage)


def _fit_text(message: BaseMessage, tokens: int, counter: TokenCounter) -> int:
    """Characters of ``message`` that fit ``tokens``, keeping head and tail (binary search)."""
    text = str(message.content)
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        cut = text[: mid // 2] + _ELLIPSIS + text[len(text) - mid // 2 :]
        if counter([message.model_copy(update={"content": cut})]) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    return lo
