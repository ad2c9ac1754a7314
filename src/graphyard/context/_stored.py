"""The compact form of a :class:`~graphyard.context.ContextState` kept in graph state.

A checkpointer stores every channel's value in every checkpoint (about eight per agent
turn), so each byte of the ``context`` key is paid many times per turn. The planning code
works on the readable form (pins as dicts naming their source message by id, the rendered
``block``); :func:`pack_context` turns it into what the graph stores, and
:func:`unpack_context` turns it back, given the same messages:

- the ``block`` is not stored: it is rendered again from the pins, the plan and the summary
  (deterministic), and stored verbatim only if that rendering would differ;
- pins are lists ``[label index, value, seen delta]`` (plus the source message's index
  when it is not the message first seen) over a table of ``[kind, label]`` pairs, instead
  of dicts with key names and a 36-character message id each; a value longer than 8
  characters is ``[offset, length]`` into its source message's text (read, not stored);
- a tool result's pin is ``[None, None, seen delta]``: its label (the call, whose arguments
  can be a whole user message) and its value (up to 240 characters) are read again from the
  tool message, which the history keeps anyway.

Measured with ``/tmp/rb/storage.py`` (100 turns that each plant three facts): the
``context`` value is about 17 KB in the readable form and about 3 KB packed.

A stored value of an unknown or older shape unpacks with no pins and nothing scanned, so the
next plan reads the history again instead of failing. This module never changes a message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from langchain_core.messages import BaseMessage

from graphyard.context._pins import Pin, pin_text, render_pins, tool_pin
from graphyard.context._trim import WindowPlan

__all__ = ["pack_context", "render_block", "unpack_context", "visible"]

PACKED = 2
"""Version of the packed form, under the key ``v``."""


def visible(messages: Sequence[BaseMessage], plan: WindowPlan) -> list[tuple[int, BaseMessage]]:
    """The ``(index, message)`` pairs a plan shows, in order.

    >>> from langchain_core.messages import HumanMessage
    >>> plan = {"total": 2, "start": 1, "skip": None, "truncate": None, "tokens": 9, "dropped": 1}
    >>> [i for i, _ in visible([HumanMessage("a"), HumanMessage("b")], plan)]
    [1]
    """
    skip = plan["skip"] or (0, 0)
    return [
        (i, messages[i])
        for i in range(plan["start"], min(plan["total"], len(messages)))
        if not skip[0] <= i < skip[1]
    ]


def render_block(
    messages: Sequence[BaseMessage],
    plan: WindowPlan,
    pins: Sequence[Pin],
    summary: str | None,
    pin_tokens: int,
) -> str:
    """The text added to the system message: the summary, then the pinned facts whose source
    message the plan does not show, in at most ``pin_tokens`` tokens.

    >>> from langchain_core.messages import HumanMessage
    >>> from graphyard.context import extract_pins
    >>> history = [HumanMessage("my email is jo@example.com", id="a"), HumanMessage("hi", id="b")]
    >>> plan = {"total": 2, "start": 1, "skip": None, "truncate": None, "tokens": 9, "dropped": 1}
    >>> print(render_block(history, plan, extract_pins(history), None, 100))
    Facts from earlier in this conversation:
    - email: jo@example.com
    """
    shown = {m.id or f"#{i}" for i, m in visible(messages, plan)}
    outside = [p for p in pins if p["source"] not in shown]
    parts = []
    if summary:
        parts.append("Summary of the earlier conversation:\n" + summary)
    pinned = render_pins(outside, max_tokens=pin_tokens)
    if pinned:
        parts.append(pinned)
    return "\n\n".join(parts)


def pack_context(
    messages: Sequence[BaseMessage], ctx: Mapping[str, Any], *, pin_tokens: int, summary: bool
) -> dict[str, Any]:
    """The compact, JSON-serializable form of ``ctx`` (a plan made over ``messages``).

    ``pin_tokens`` and ``summary`` are the settings the block was rendered with.

    >>> from langchain_core.messages import HumanMessage
    >>> from graphyard.context import ContextWindow
    >>> history = [HumanMessage("my email is jo@example.com " + "x" * 6000, id="a"),
    ...            HumanMessage("which email?", id="b")]
    >>> cw = ContextWindow(window=2000, max_tokens=200)
    >>> state = cw.plan(history, None)
    >>> packed = pack_context(history, state, pin_tokens=400, summary=False)
    >>> "block" in packed, packed["pins"]
    (False, [[0, [12, 14], 0]])
    >>> unpack_context(history, packed)["block"] == state["block"]
    True
    """
    if "v" in ctx:
        return dict(ctx)  # already packed
    out = {k: v for k, v in ctx.items() if k not in ("pins", "block", "summary_usage")}
    out["v"] = PACKED
    out["pt"] = pin_tokens
    if summary:
        out["sb"] = True
    pins: list[Pin] = list(ctx.get("pins") or [])
    if pins:
        labels: dict[tuple[str, str], int] = {}
        rows: list[list[Any]] = []
        where: dict[str, int] | None = None
        previous = 0
        for pin in pins:
            source: int | None = pin["seen"]
            if pin["source"] != _key(messages, pin["seen"]):
                if where is None:
                    where = {_key(messages, i): i for i in range(len(messages))}
                source = where.get(pin["source"])
            row: list[Any]
            if source is not None and _from_message(messages, source, pin):
                row = [None, None, pin["seen"] - previous]  # read again from its message
            else:
                label = labels.setdefault((pin["kind"], pin["label"]), len(labels))
                value = _span(messages, source, pin["value"]) if source is not None else None
                row = [label, value or pin["value"], pin["seen"] - previous]
            previous = pin["seen"]
            if source is None:  # not among these messages: keep it as it is
                row.append(pin["source"])
            elif source != pin["seen"]:
                row.append(source - pin["seen"])
            rows.append(row)
        out["labels"] = [list(k) for k in labels]
        out["pins"] = rows
    plan = ctx.get("plan")
    if plan is not None and "block" in ctx:
        rendered = render_block(
            messages, plan, pins, ctx.get("summary") if summary else None, pin_tokens
        )
        if rendered != ctx["block"]:
            out["block"] = ctx["block"]  # rendered otherwise: keep what the plan said
    return out


def unpack_context(messages: Sequence[BaseMessage], stored: Any) -> dict[str, Any]:
    """The readable form of a stored ``context`` value: packed, readable already (returned as
    it is), of an older shape or unknown (no pins, nothing scanned: the next plan reads the
    history again).

    >>> unpack_context([], "garbage"), unpack_context([], {"pins": [{"old": 1}], "scanned": 9})
    ({}, {})
    """
    if not isinstance(stored, Mapping):
        return {}
    if stored.get("v") != PACKED:
        if "block" in stored and _readable_pins(stored.get("pins")):
            return dict(stored)  # the readable form, as plan() returns it
        # an older stored shape: keep nothing of it but what is safe to plan from again
        return {}
    ctx = {k: v for k, v in stored.items() if k not in ("v", "pt", "sb", "labels", "pins")}
    try:
        labels = [(str(kind), str(label)) for kind, label in stored.get("labels") or []]
        pins: list[Pin] = []
        seen = 0
        for row in stored.get("pins") or []:
            seen += int(row[2])
            at = seen + int(row[3]) if len(row) > 3 and not isinstance(row[3], str) else seen
            if row[0] is None:  # a tool result: label and value come from its message
                pin = tool_pin(messages, at)
                if pin is None:
                    return {}  # the history changed under it: plan from scratch
                pins.append(Pin(**{**pin, "seen": seen}))  # type: ignore[typeddict-item]
                continue
            kind, label = labels[row[0]]
            source = row[3] if len(row) > 3 and isinstance(row[3], str) else _key(messages, at)
            value = row[1]
            if isinstance(value, list):  # [offset, length] in its message's text
                offset, length = int(value[0]), int(value[1])
                value = pin_text(messages[at])[offset : offset + abs(length)]
                value = value.upper() if length < 0 else value
            pins.append(
                cast(Pin, {"kind": kind, "label": label, "value": str(value), "source": source,
                           "seen": seen})
            )  # fmt: skip
    except (IndexError, TypeError, ValueError):
        return {}
    ctx["pins"] = pins
    if "block" not in ctx:
        plan = ctx.get("plan")
        summary = ctx.get("summary") if stored.get("sb") else None
        try:
            ctx["block"] = (
                render_block(messages, plan, pins, summary, int(stored.get("pt", 0)))
                if plan is not None
                else ""
            )
        except (IndexError, KeyError, TypeError, ValueError):
            return {}
    return ctx


def _key(messages: Sequence[BaseMessage], index: int) -> str:
    if 0 <= index < len(messages):
        return messages[index].id or f"#{index}"
    return f"#{index}"


def _span(messages: Sequence[BaseMessage], index: int, value: str) -> list[int] | None:
    """``[offset, length]`` of ``value`` in the text of ``messages[index]`` (a negative length:
    upper-cased there), when that is shorter than the value itself."""
    if len(value) <= 8 or not 0 <= index < len(messages):
        return None
    text = pin_text(messages[index])
    offset = text.find(value)
    if offset >= 0:
        return [offset, len(value)]
    offset = text.upper().find(value)
    if offset >= 0 and text[offset : offset + len(value)].upper() == value:
        return [offset, -len(value)]
    return None


def _from_message(messages: Sequence[BaseMessage], index: int, pin: Pin) -> bool:
    """Whether ``pin`` is the pin of the tool result ``messages[index]``, to be read from it."""
    if pin["kind"] != "tool" or not 0 <= index < len(messages):
        return False
    again = tool_pin(messages, index)
    return again is not None and (again["label"], again["value"]) == (pin["label"], pin["value"])


def _readable_pins(pins: Any) -> bool:
    return pins is None or (
        isinstance(pins, list)
        and all(isinstance(p, Mapping) and {"kind", "label", "value", "source", "seen"} <= p.keys()
                for p in pins)
    )  # fmt: skip
