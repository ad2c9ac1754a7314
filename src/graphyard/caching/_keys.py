"""Cache keys: everything that changes a cached result goes into its key.

A key is the SHA-256 of a canonical JSON document holding the normalized input, the model
and tier, the prompt (its declared version *and* a hash of its text, so an edited prompt
invalidates even when nobody bumps the version), the versions of the tools the answer
could have used (a hash of each tool's name, description, argument schema and source), the
knowledge base's content, and the owner when the result depends on a user's data.

This module decides which questions may be cached and for whom (:func:`question_scope`).
It must never return a shared (cross-user) scope for text that names a user's order,
account or contact details: when in doubt it answers ``"user"`` or ``None``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from langchain_core.tools import BaseTool

__all__ = [
    "KEY_SCHEMA",
    "Scope",
    "cache_key",
    "normalize_question",
    "owner_of",
    "question_scope",
    "text_version",
    "tool_versions",
]

KEY_SCHEMA = "graphyard-cache-1"
"""Changes when the key layout changes, so old entries are never misread."""

Scope = Literal["shared", "user"]
"""``shared``: the same answer for everyone; ``user``: only for the user who asked."""

_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_INNER_PUNCT = re.compile(r"[,;:!?]+")
_ORDER_ID = re.compile(r"\b#?[a-z]\d{4}\b", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"\+?\d[\d ().-]{7,}\d")
_LONG_NUMBER = re.compile(r"\d{5,}")
_PERSONAL = re.compile(
    r"\bmy (orders?|package|parcel|delivery|shipment|tickets?|account|refund|return|"
    r"card|address|subscription|invoice|purchase)\b",
    re.I,
)
_SIDE_EFFECT = re.compile(
    r"\b(ticket|speak to|talk to|real person|human|agent|complain\w*|escalate|urgent|asap|"
    r"cancel my|change my|update my|delete my)\b",
    re.I,
)
_REFERS_BACK = re.compile(
    r"\b(it|that|this|those|these|them|they|above|earlier|previous|before|again|also|"
    r"same|instead|what about|and if)\b",
    re.I,
)
_ASKS = re.compile(
    r"\?|^\W*(what|how|when|where|why|who|which|can|could|do|does|did|is|are|will|would|"
    r"should|may)\b|\b(refund|return|ship|shipping|deliver|track|warranty|cancel|exchange|"
    r"password|pay|payment|size|address|damaged|support|hours|policy)\w*",
    re.I,
)
"""A question or a help-center topic: greetings and chit-chat are not cached."""
MAX_QUESTION_CHARS = 500
"""Longer messages are too specific to repeat; they are never cached."""


def normalize_question(text: str) -> str:
    """The form of a question that equal questions share: case, spacing and punctuation folded.

    >>> normalize_question("  What is your REFUND policy?? ")
    'what is your refund policy'
    >>> normalize_question("what is your refund policy") == normalize_question("What is your refund policy!")
    True
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _INNER_PUNCT.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    return _EDGE_PUNCT.sub("", text)


def question_scope(text: str, *, has_history: bool = False) -> Scope | None:
    """Who may share the answer to ``text``: ``"shared"``, ``"user"``, or ``None`` (never cache).

    - ``None`` when the text is not a question or help topic (greetings, thanks), when
      answering may have a side effect (tickets, a person, changes to an
      account), when the text carries contact details, when it is long, or when it refers
      back to earlier turns (``has_history``) so the answer depends on the conversation;
    - ``"user"`` when it names an order or the user's own account, order or delivery;
    - ``"shared"`` otherwise: a self-contained help question.

    >>> question_scope("What is your refund policy?")
    'shared'
    >>> question_scope("Where is order A1003?")
    'user'
    >>> question_scope("I want to speak to a human") is None
    True
    >>> question_scope("hello there") is None
    True
    >>> question_scope("and what about that one?", has_history=True) is None
    True
    """
    stripped = text.strip()
    if not stripped or len(stripped) > MAX_QUESTION_CHARS:
        return None
    if _SIDE_EFFECT.search(stripped) or _EMAIL.search(stripped) or _PHONE.search(stripped):
        return None
    if has_history and _REFERS_BACK.search(stripped):
        return None
    if not _ASKS.search(stripped):
        return None  # "hello", "thanks": not a question whose answer is worth keeping
    if _ORDER_ID.search(stripped) or _PERSONAL.search(stripped) or _LONG_NUMBER.search(stripped):
        return "user"
    return "shared"


def owner_of(configurable: Mapping[str, Any]) -> str | None:
    """Whose data a user-scoped entry belongs to: the authenticated user, else the thread.

    Without authentication every caller is ``anonymous``; scoping such entries to the
    thread keeps one anonymous conversation's order details out of another's.

    >>> owner_of({"user_id": "alice", "thread_id": "t1"}), owner_of({"thread_id": "t1"})
    ('user:alice', 'thread:t1')
    """
    user = configurable.get("user_id")
    if user and user != "anonymous":
        return f"user:{user}"
    thread = configurable.get("thread_id")
    return f"thread:{thread}" if thread else None


def text_version(*parts: str) -> str:
    """A short content hash of some texts (a prompt, a knowledge base).

    >>> text_version("You are helpful.") == text_version("You are helpful.")
    True
    >>> len(text_version("a", "b"))
    16
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


def tool_versions(tools: Iterable[BaseTool]) -> dict[str, str]:
    """A version per tool: a hash of its name, description, argument schema and source code.

    Editing a tool's code or docstring changes its version, so answers that could have
    used it are no longer served.

    >>> from langchain_core.tools import tool
    >>> @tool
    ... def ping(x: str) -> str:
    ...     '''Echo.'''
    ...     return x
    >>> list(tool_versions([ping]))
    ['ping']
    """
    out: dict[str, str] = {}
    for t in tools:
        func = getattr(t, "func", None) or getattr(t, "coroutine", None)
        try:
            source = inspect.getsource(func) if func is not None else ""
        except (OSError, TypeError):
            source = getattr(func, "__qualname__", "")
        schema = json.dumps(t.tool_call_schema.model_json_schema(), sort_keys=True, default=str)
        out[t.name] = text_version(t.name, t.description, schema, source)
    return out


def cache_key(parts: Mapping[str, Any]) -> str:
    """The key for a cached result: a SHA-256 over the canonical JSON of ``parts``.

    >>> a = cache_key({"q": "refund policy", "model": "anthropic:claude-haiku-4-5"})
    >>> a == cache_key({"model": "anthropic:claude-haiku-4-5", "q": "refund policy"})
    True
    >>> a == cache_key({"q": "refund policy", "model": "anthropic:claude-sonnet-4-5"})
    False
    """
    document = json.dumps({"schema": KEY_SCHEMA, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(document.encode("utf-8")).hexdigest()
