"""Pinned facts: identifiers and facts a user or a tool supplied, kept when their turn is trimmed.

Extraction is deterministic (regular expressions over human and tool messages, no model
call), incremental (only messages not scanned yet are read) and idempotent (scanning the
same history twice gives the same pins), so a replayed or forked thread pins the same facts.

What is pinned:

- identifiers: order / invoice / ticket / account ids (``A1001``, ``INV-20931``), e-mail
  addresses, phone numbers, long account or tracking numbers, each labelled by the word in
  front of it ("order", "account", "tracking", ...);
- stated preferences and personal facts: a user's sentence such as "please always ship to
  my office" or "I prefer e-mail";
- tool results: the latest result of each (tool, arguments), cut to a few hundred characters.

This module never calls a model and never changes a message; it only reads them.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence
from typing import Literal, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

__all__ = [
    "Pin",
    "PinKind",
    "extract_pins",
    "keep_pins",
    "merge_pins",
    "pin_text",
    "render_pins",
    "text_tokens",
    "tool_pin",
]

PinKind = Literal["id", "email", "phone", "number", "preference", "tool"]
"""What a pin holds: an identifier, contact details, a stated preference or a tool result."""

_TOOL_CHARS = 240
_SENTENCE_CHARS = 200

# Every repetition that can run into a long input is bounded: an unbounded run tried from
# each of n start positions is quadratic, and a user message can be 100 KB (see the test).
# 64 and 63 are the longest local part and domain label an address may have (RFC 5321).
_EMAIL = re.compile(r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}\b")
_ID = re.compile(r"(?<![\w@.])#?([A-Z]{1,4}-?\d{3,12}(?:-\d+)?)\b")
_ORDER_ID = re.compile(r"(?<![\w@.])#?([Aa]\d{4})\b")
_NUMBER = re.compile(r"(?<![\w@.+])(\d[\d -]{4,22}\d)(?![\w@])")
_PHONE = re.compile(
    r"(?<![\w@])(\+\d[\d ().-]{7,18}\d|\(\d{3}\)\s?\d{3}-\d{4}|\d{3}-\d{3}-\d{4})\b"
)
_LABEL = re.compile(
    r"(order|invoice|ticket|account|acct|tracking|card|customer|member(?:ship)?|policy|"
    r"reference|ref|case|booking|reservation|serial|sku|zip|postcode|phone|iban)",
    re.I,
)
_LABELLED = re.compile(
    r"\b(tracking|confirmation|reference|serial|booking|reservation)"
    r"(?:\s{1,3}(?:number|no\.?|code|id))?\s{0,3}[:#]?\s{0,3}([A-Z0-9][A-Z0-9-]{5,40})\b",
    re.I,
)
_PREFERENCE = re.compile(
    r"\b(i (?:would |'d )?prefer|i (?:always|never|only|usually)|please (?:always|never|only|"
    r"don't|do not|use|call|send|ship|contact|email|text)|(?:don't|do not) (?:call|email|text|"
    r"send|ship|contact)|my (?:name|preferred|address|shipping address|size|birthday|company|"
    r"timezone|time zone)|call me|i(?: am|'m) (?:allergic|based|located|vegan|vegetarian)|"
    r"i live in|ship(?:ping)? (?:it |them )?to)\b",
    re.I,
)
_SENTENCES = re.compile(r"[^.!?\n]+[.!?]?")


class Pin(TypedDict):
    """One pinned fact."""

    kind: PinKind
    label: str
    """What the value is, e.g. ``order id``, ``email``, ``order_status(A1001)``."""
    value: str
    source: str
    """Id (or ``#index``) of the message it came from; it is shown only when that message is not."""
    seen: int
    """Position of the first sighting, for a stable order in the rendered block."""


def _message_key(message: BaseMessage, index: int) -> str:
    return message.id or f"#{index}"


def _label(text: str, start: int) -> str | None:
    before = text[max(0, start - 32) : start]
    labels = _LABEL.findall(before)
    return labels[-1].lower() if labels else None


def _from_text(text: str, source: str, seen: int, *, human: bool) -> list[Pin]:
    pins: list[Pin] = []
    # spans already pinned, disjoint and sorted (so their ends are sorted too): a bisection
    # finds an overlap in O(log n); a scan of them all was quadratic in a message of many ids
    starts: list[int] = []
    ends: list[int] = []

    def add(kind: PinKind, label: str, value: str, span: tuple[int, int]) -> None:
        i = bisect.bisect_left(starts, span[1])
        if i > 0 and ends[i - 1] > span[0]:
            return
        starts.insert(i, span[0])
        ends.insert(i, span[1])
        pins.append(
            Pin(
                kind=kind,
                label=label,
                value=value,
                source=source,
                seen=seen,
            )
        )

    for m in _EMAIL.finditer(text):
        add("email", "email", m.group(0), m.span())
    for m in _PHONE.finditer(text):
        add("phone", "phone", m.group(1).strip(), m.span(1))
    for m in _LABELLED.finditer(text):
        if any(c.isdigit() for c in m.group(2)):
            add("number", f"{m.group(1).lower()} number", m.group(2), m.span(2))
    for pattern in (_ORDER_ID, _ID):
        for m in pattern.finditer(text):
            label = _label(text, m.start()) or ("order" if pattern is _ORDER_ID else "id")
            value = m.group(1).upper() if pattern is _ORDER_ID else m.group(1)
            add("id", f"{label} id" if not label.endswith("id") else label, value, m.span(1))
    for m in _NUMBER.finditer(text):
        digits = re.sub(r"\D", "", m.group(1))
        label = _label(text, m.start())
        if len(digits) >= 6 and label is not None:
            add("number", f"{label} number", m.group(1).strip(), m.span(1))
    if human:
        for m in _SENTENCES.finditer(text):
            sentence = m.group(0).strip()
            if _PREFERENCE.search(sentence):
                value = sentence[:_SENTENCE_CHARS]
                pins.append(
                    Pin(
                        kind="preference",
                        label="the user said",
                        value=value,
                        source=source,
                        seen=seen,
                    )
                )
    return pins


def extract_pins(messages: Sequence[BaseMessage], *, start: int = 0) -> list[Pin]:
    """Facts stated in ``messages[start:]`` (human and tool messages only), in order of
    appearance. Earlier messages are read only to name the tool call a result answers.

    >>> from langchain_core.messages import HumanMessage
    >>> [(p["label"], p["value"]) for p in extract_pins([HumanMessage(
    ...     "My order A1001 never came; write to jo@example.com. Please always ship to my office.")])]
    [('email', 'jo@example.com'), ('order id', 'A1001'), ('the user said', 'Please always ship to my office.')]
    """
    pins: list[Pin] = []
    for seen in range(start, len(messages)):
        message = messages[seen]
        source = _message_key(message, seen)
        if isinstance(message, HumanMessage):
            pins += _from_text(_text(message), source, seen, human=True)
        elif isinstance(message, ToolMessage) and message.status != "error":
            pin = tool_pin(messages, seen)
            if pin is None:
                continue
            pins.append(pin)
            text = pin_text(message)
            pins += [p for p in _from_text(text, source, seen, human=False) if p["kind"] != "id"]
    return pins


def pin_text(message: BaseMessage) -> str:
    """The text pins are read from: a message's text, with a tool result's whitespace folded.

    >>> from langchain_core.messages import ToolMessage
    >>> pin_text(ToolMessage("a  b\\n c", tool_call_id="c"))
    'a b c'
    """
    text = _text(message)
    return " ".join(text.split()) if isinstance(message, ToolMessage) else text


def tool_pin(messages: Sequence[BaseMessage], index: int) -> Pin | None:
    """The pin of the tool result ``messages[index]`` (labelled by the call it answers), or
    ``None`` when that message is no tool result worth pinning. It depends on the messages
    alone, so a stored pin of a tool result can be read again from them.

    >>> from langchain_core.messages import ToolMessage
    >>> tool_pin([ToolMessage("shipped", tool_call_id="c", name="order_status")], 0)["label"]
    'order_status()'
    """
    message = messages[index]
    if not isinstance(message, ToolMessage) or message.status == "error":
        return None
    text = pin_text(message)
    if not text:
        return None
    value = text if len(text) <= _TOOL_CHARS else text[: _TOOL_CHARS - 3] + "..."
    return Pin(
        kind="tool",
        label=_call_label(messages, index, message),
        value=value,
        source=_message_key(message, index),
        seen=index,
    )


def merge_pins(old: Sequence[Pin], new: Sequence[Pin]) -> list[Pin]:
    """``old`` updated with ``new``: a fact seen again keeps its place and takes the newer source
    and value (a tool called again with the same arguments answers with fresh data).

    >>> a = extract_pins([HumanMessage("order A1001", id="m1")])
    >>> b = extract_pins([*[HumanMessage("hi")] * 8, HumanMessage("again: A1001", id="m9")], start=8)
    >>> [(p["value"], p["source"], p["seen"]) for p in merge_pins(a, b)]
    [('A1001', 'm9', 0)]
    """
    out = {_key(p): p for p in old}
    for pin in new:
        key = _key(pin)
        if key in out:
            out[key] = Pin(**{**pin, "seen": out[key]["seen"]})  # type: ignore[typeddict-item]
        else:
            out[key] = pin
    return sorted(out.values(), key=lambda p: p["seen"])


_PRIORITY: dict[str, int] = {
    "email": 0,
    "id": 0,
    "phone": 0,
    "number": 0,
    "preference": 1,
    "tool": 2,
}


def _key(pin: Pin) -> str:
    """Identity of a fact: seen again, it updates its pin instead of adding one. A tool result
    is the same fact when the same call (tool and arguments) answered it."""
    if pin["kind"] == "tool":
        return f"tool:{pin['label']}"
    return f"{pin['kind']}:{pin['value'].lower()}"


def keep_pins(pins: Sequence[Pin], *, max_tokens: int) -> list[Pin]:
    """The pins worth keeping in state: the best ``max_tokens`` of them, ranked as
    :func:`render_pins` ranks them, in their original order. Bounds the state's size.

    >>> len(keep_pins(extract_pins([HumanMessage("a@example.com b@example.com")]), max_tokens=6))
    1
    """
    kept: set[int] = set()
    used = 0
    for pin in sorted(pins, key=lambda p: (_PRIORITY[p["kind"]], -p["seen"])):
        cost = _tokens(f"\n- {pin['label']}: {pin['value']}")
        if used + cost <= max_tokens:
            kept.add(id(pin))
            used += cost
    return [p for p in pins if id(p) in kept]


def render_pins(pins: Sequence[Pin], *, max_tokens: int) -> str:
    """The pins as a compact text block of at most ``max_tokens`` (approximate) tokens.

    When they do not all fit, tool results give way first, then preferences, then
    identifiers; within a kind the oldest go first. The block lists facts in the order
    they were first seen, so it changes only when a pin is added or leaves.

    >>> print(render_pins(extract_pins([HumanMessage("my email is jo@example.com")]), max_tokens=100))
    Facts from earlier in this conversation:
    - email: jo@example.com
    """
    header = "Facts from earlier in this conversation:"
    if not pins or max_tokens <= 0:
        return ""
    kept = keep_pins(pins, max_tokens=max_tokens - _tokens(header))
    if not kept:
        return ""
    kept.sort(key=lambda p: p["seen"])
    return "\n".join([header, *(f"- {p['label']}: {p['value']}" for p in kept)])


def _call_label(messages: Sequence[BaseMessage], index: int, result: ToolMessage) -> str:
    """``name(args)`` of the call ``result`` answers: the AI message a little before it."""
    for i in range(index - 1, -1, -1):
        message = messages[i]
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call["id"] == result.tool_call_id:
                    args = ", ".join(str(v) for v in call["args"].values())
                    return f"{call['name']}({args})"
            if message.tool_calls:
                break  # results follow their own call: an earlier one cannot be it
    return f"{result.name or 'tool'}()"


def text_tokens(text: str) -> int:
    """Tokens of ``text`` at the approximate counter's rate (4 characters a token), without a
    message's fixed overhead; a block's lines cost at least their joined text."""
    return -(-len(text) // 4)


_tokens = text_tokens


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict):
            parts.append(json.dumps(block, default=str)[:_TOOL_CHARS])
    return "\n".join(parts)
