"""Diffs for people: a request that diverged from its recording, and two final states.

Both render their inputs as short lines (a message per line: role, text, tool calls) and
compare those with :mod:`difflib`, so what a reader sees is what changed, not two JSON
blobs. Nothing here touches storage.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from graphyard.replay._record import canonical_message

__all__ = ["diff_requests", "diff_states", "message_lines"]

_MAX_LINE = 240
_MAX_LINES = 60


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_LINE else text[: _MAX_LINE - 1] + "…"


def _line(m: Mapping[str, Any]) -> str:
    content = m.get("content")
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    extra = ""
    if m.get("tool_calls"):
        calls = ", ".join(
            f"{c['name']}({json.dumps(c.get('args'), sort_keys=True, default=str)})"
            for c in m["tool_calls"]
        )
        extra += f" [calls {calls}]"
    role = str(m.get("role") or m.get("type"))
    if m.get("name") and role == "tool":
        role += f"({m['name']}{', ' + str(m['status']) if m.get('status') else ''})"
    return _short(f"{role}: {text}{extra}")


def message_lines(messages: Sequence[Any]) -> list[str]:
    """One line per message, for diffs and terminals.

    >>> from langchain_core.messages import HumanMessage
    >>> message_lines([HumanMessage("hi")])
    ['human: hi']
    """
    out = []
    for m in messages:
        out.append(_line(canonical_message(m) if isinstance(m, BaseMessage) else m))
    return out


def _unified(before: list[str], after: list[str], a: str, b: str) -> list[str]:
    lines = list(difflib.unified_diff(before, after, a, b, lineterm="", n=1))
    if len(lines) > _MAX_LINES:
        lines = [*lines[:_MAX_LINES], f"… {len(lines) - _MAX_LINES} more lines"]
    return lines


def diff_requests(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """How a model request differs from the recorded one (canonical requests in).

    >>> diff_requests({"model": "m", "messages": [{"role": "system", "content": "Be brief."}]},
    ...               {"model": "m", "messages": [{"role": "system", "content": "Be long."}]})[2:]
    ['@@ -1 +1 @@', '-system: Be brief.', '+system: Be long.']
    """

    def lines(request: Mapping[str, Any]) -> list[str]:
        head = []
        if "model" in request:
            head.append(f"model: {request.get('model')}")
        if request.get("tools"):
            head.append(f"tools: {', '.join(request['tools'])}")
        if "messages" in request:
            return head + message_lines(request["messages"])
        return [*head, _short(json.dumps(request, sort_keys=True, default=str))]

    before, after = lines(recorded), lines(current)
    if before[:1] == after[:1] and before[:1] and before[0].startswith("model: "):
        before, after = before[1:], after[1:]  # same model: show the messages only
    return _unified(before, after, "recorded", "now")


def _value_lines(value: Any) -> list[str]:
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(v, BaseMessage) or (isinstance(v, dict) and "content" in v) for v in value
        )
    ):
        return message_lines(value)
    return json.dumps(value, indent=1, sort_keys=True, default=str).splitlines()


def diff_states(
    original: Mapping[str, Any] | None, replayed: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Per state key, how the replay's final values differ from the original run's.

    >>> diff_states({"n": 1, "same": 2}, {"n": 2, "same": 2})
    [{'key': 'n', 'change': 'changed', 'diff': ['--- original', '+++ replay', '@@ -1 +1 @@', '-1', '+2']}]
    """
    original, replayed = dict(original or {}), dict(replayed or {})
    out: list[dict[str, Any]] = []
    for key in sorted(set(original) | set(replayed)):
        if key in original and key in replayed:
            before, after = _value_lines(original[key]), _value_lines(replayed[key])
            if before != after:
                out.append(
                    {
                        "key": key,
                        "change": "changed",
                        "diff": _unified(before, after, "original", "replay"),
                    }
                )
        elif key in replayed:
            out.append(
                {
                    "key": key,
                    "change": "added",
                    "diff": ["+" + x for x in _value_lines(replayed[key])],
                }
            )
        else:
            out.append(
                {
                    "key": key,
                    "change": "removed",
                    "diff": ["-" + x for x in _value_lines(original[key])],
                }
            )
    return out
