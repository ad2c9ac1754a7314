"""Token counts for planning prompts: exact where the provider offers a counter, else rescaled.

Planning counts many candidate windows, so it uses LangChain's character-based estimate
(``count_tokens_approximately``) multiplied by a *scale* learned from the provider's own
numbers: after each call, ``usage_metadata["input_tokens"]`` divided by the estimate of the
prompt that was sent. A prompt that comes near the budget is then checked with the
provider's exact counter when one exists, and planned again if it does not fit.

Exact counters, from the installed wheels:

- ``ChatAnthropic.get_num_tokens_from_messages`` asks Anthropic's free token-counting
  endpoint: exact, tools included, one HTTP request. Used, but only near the budget.
- ``ChatOpenAI.get_num_tokens_from_messages`` is NOT used: it ignores tool schemas (it warns
  and drops them), raises for model names it does not know (every OpenAI-compatible server
  behind ``base_url``), and tiktoken fetches its encoding over the network on first use.
  One real call's ``usage_metadata`` calibrates the estimate to within a few percent instead.
- ``BaseChatModel``'s default uses the GPT-2 tokenizer (``transformers``): not exact for any
  current model, so not used.

Why not ``count_tokens_approximately(..., use_usage_metadata_scaling=True)``: it divides an
AI message's ``total_tokens`` (output included) by the estimate of the whole history up to
that message, not of the (trimmed, system-prefixed) prompt that was sent, and clamps the
factor to [1, 1.25]; here the factor comes from the prompt really sent.

This module never calls a model; an exact counter is called only through the function
:func:`exact_counter` returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.messages.utils import count_tokens_approximately

__all__ = ["ExactCounter", "exact_counter", "rescale", "scaled_counter"]

ExactCounter = Callable[[Sequence[BaseMessage], Sequence[Any]], int]
"""Counts a prompt exactly: ``(messages, tools) -> tokens``. May block on the network."""

MIN_SCALE, MAX_SCALE = 0.5, 4.0


def scaled_counter(scale: float) -> Callable[[Sequence[BaseMessage]], int]:
    """The approximate counter times ``scale``, rounded up (never under-counts the estimate).

    >>> from langchain_core.messages import HumanMessage
    >>> scaled_counter(1.0)([HumanMessage("x" * 400)]), scaled_counter(1.5)([HumanMessage("x" * 400)])
    (104, 156)
    """
    if scale == 1.0:
        return count_tokens_approximately

    def count(messages: Sequence[BaseMessage]) -> int:
        return math.ceil(count_tokens_approximately(messages) * scale)

    return count


def rescale(real_tokens: int | None, estimated: int | None, current: float = 1.0) -> float:
    """The scale that turns the estimate of a sent prompt into the provider's real count.

    Keeps ``current`` when either number is missing; clamped to [0.5, 4] so one odd reading
    (a provider counting cached tokens apart, say) cannot make the window collapse.

    >>> rescale(1300, 1000), rescale(None, 1000, 1.2), rescale(100_000, 10)
    (1.3, 1.2, 4.0)
    """
    if not real_tokens or not estimated:
        return current
    return min(max(real_tokens / estimated, MIN_SCALE), MAX_SCALE)


def exact_counter(model: Any) -> ExactCounter | None:
    """The provider's exact counter for ``model``, or ``None`` when it has none worth using.

    Only Anthropic's (a request to its counting endpoint) qualifies; see the module docstring.

    >>> from graphyard.models import ScriptedChatModel
    >>> exact_counter(ScriptedChatModel()) is None
    True
    """
    if getattr(model, "_llm_type", None) != "anthropic-chat":
        return None
    count = getattr(model, "get_num_tokens_from_messages", None)
    if count is None:
        return None

    def exact(messages: Sequence[BaseMessage], tools: Sequence[Any]) -> int:
        return int(count(list(messages), tools=list(tools) or None))

    return exact
