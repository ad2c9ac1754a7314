"""The reference agent's tools: order status, help-center search, and tickets with approval.

``create_ticket`` is high-impact: it pauses the run with ``interrupt()`` and acts only on a
human's decision, given back through ``Command(resume=...)``:

- ``{"action": "approve"}`` (or ``True``) creates the ticket as proposed;
- ``{"action": "edit", "args": {...}}`` creates it with the edited arguments;
- ``{"action": "reject", "reason": "..."}`` (or ``False``) creates nothing.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_core.tools import BaseTool, tool
from langgraph.types import interrupt

from graphyard.agent._shop import DemoShop, KnowledgeBase

__all__ = ["HIGH_IMPACT_TOOLS", "Decision", "make_tools", "parse_decision"]

HIGH_IMPACT_TOOLS = frozenset({"create_ticket"})

Priority = Literal["low", "normal", "high", "urgent"]


def parse_decision(value: Any) -> tuple[str, dict[str, Any], str | None]:
    """Normalize a human's answer to ``(action, edited_args, reason)``."""
    if value is True or value == "approve":
        return "approve", {}, None
    if value is False or value == "reject":
        return "reject", {}, None
    if isinstance(value, dict):
        action = value.get("action", "approve" if value.get("approved", False) else "reject")
        if action in ("approve", "edit", "reject"):
            return action, dict(value.get("args") or {}), value.get("reason")
    raise ValueError(
        f"approval must be approve/reject/edit, e.g. {{'action': 'approve'}}; got {value!r}"
    )


Decision = tuple[str, dict[str, Any], str | None]


def make_tools(shop: DemoShop, kb: KnowledgeBase | None = None) -> list[BaseTool]:
    """The agent's tools, bound to one shop and knowledge base."""
    kb = kb or KnowledgeBase()

    @tool
    def order_status(order_id: str) -> str:
        """Look up an order by its id (the letter A and four digits, e.g. A1003): status, carrier, tracking number, ETA and items."""
        order = shop.order(order_id.strip().lstrip("#"))
        if order is None:
            return f"No order with id {order_id!r} exists. Order ids look like A1003."
        return json.dumps(order)

    @tool
    def search_help_articles(query: str) -> str:
        """Search the help center (refunds, returns, shipping, warranty, cancellations, account) and return the best articles."""
        hits = kb.search(query, k=2)
        if not hits:
            return "No help article matches that question."
        return "\n\n".join(article.text.strip() for article, _ in hits)

    @tool
    def create_ticket(
        subject: str,
        body: str,
        priority: Priority = "normal",
        order_id: str | None = None,
        customer_email: str | None = None,
    ) -> str:
        """Open a ticket for the human support team. A person must approve it before it is created."""
        args = {
            "subject": subject,
            "body": body,
            "priority": priority,
            "order_id": order_id,
            "customer_email": customer_email,
        }
        answer = interrupt(
            {
                "type": "approval",
                "tool": "create_ticket",
                "args": args,
                "question": "Create this support ticket?",
            }
        )
        action, edits, reason = parse_decision(answer)
        if action == "reject":
            return "The support team declined to open this ticket" + (f": {reason}" if reason else ".")
        args.update({k: v for k, v in edits.items() if k in args})
        ticket = shop.create_ticket(**args)
        return f"Ticket #{ticket['id']} opened (priority {ticket['priority']}): {ticket['subject']}"

    return [order_status, search_help_articles, create_ticket]
