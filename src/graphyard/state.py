"""The reference agent's state.

``messages`` lives on a ``DeltaChannel``: each checkpoint stores only the messages written
in that step, not the whole list again, so storage grows linearly with a conversation
instead of with its square (measured in ../shared/NOTES.md: 142.7 MB vs 2.66 MB of SQLite
for the same 200 turns).

``DeltaChannel``'s reducer does not assign ids; the dedup-by-id semantics need them, so
every message graphyard writes carries an id (see :func:`with_ids`).
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage, BaseMessage, convert_to_messages
from langgraph.channels.delta import DeltaChannel
from langgraph.graph.message import _messages_delta_reducer

from graphyard.config import TierName
from graphyard.context import ContextState, WindowPlan

__all__ = ["AgentState", "Usage", "add_usage", "with_ids"]


class Usage(TypedDict, total=False):
    """Token totals, summed over model calls."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read: int
    cache_creation: int
    calls: int


def add_usage(left: Usage | None, right: Usage | None) -> Usage:
    """Reducer: field-wise sum of two token totals."""
    out: dict[str, int] = dict(left or {})
    for key, value in (right or {}).items():
        out[key] = out.get(key, 0) + int(value)
    return Usage(**out)  # type: ignore[typeddict-item]


class AgentState(TypedDict, total=False):
    """State of the reference customer-support agent."""

    messages: Annotated[list[AnyMessage], DeltaChannel(_messages_delta_reducer)]
    """The conversation; written as deltas."""
    task_id: str | None
    """Identifies the request being answered (one per human turn)."""
    tool_calls_remaining: int
    """Tool calls still allowed for this turn."""
    cost_usd: Annotated[float, operator.add]
    """Dollars spent on this thread so far."""
    usage: Annotated[Usage, add_usage]
    """Tokens used on this thread so far."""
    tier: TierName | None
    """The tier answering the current turn."""
    revisions: int
    """How many times the critic sent this turn's answer back."""
    window: WindowPlan | None
    """The context window planned for the next model call."""
    context: ContextState | None
    """Context management between calls: window start, pinned facts, summary, token scale."""
    verdict: str | None
    """The critic's last verdict: ``ok``, or why the answer was sent back."""


def with_ids(messages: Iterable[Any]) -> list[BaseMessage]:
    """Coerce message-likes to messages and give every one an id.

    >>> [m.type for m in with_ids([("user", "hi")])], bool(with_ids(["hi"])[0].id)
    (['human'], True)
    """
    out = []
    for message in convert_to_messages(list(messages)):
        if message.id is None:
            message = message.model_copy(update={"id": str(uuid.uuid4())})
        out.append(message)
    return out
