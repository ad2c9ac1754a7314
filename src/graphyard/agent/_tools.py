"""The reference agent's tools: order status, help-center search, and tickets with approval.

``create_ticket`` is high-impact: it pauses the run with ``interrupt()`` and acts only on a
human's decision, given back through ``Command(resume=...)``:

- ``{"action": "approve"}`` (or ``True``) creates the ticket as proposed;
- ``{"action": "edit", "args": {...}}`` creates it with the edited arguments;
- ``{"action": "reject", "reason": "..."}`` (or ``False``) creates nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.tools import BaseTool, tool
from langgraph.types import interrupt

from graphyard.agent._shop import DemoShop, KnowledgeBase

__all__ = ["HIGH_IMPACT_TOOLS", "Decision", "describe_order", "make_tools", "parse_decision"]

HIGH_IMPACT_TOOLS = frozenset({"create_ticket"})

Priority = Literal["low", "normal", "high", "urgent"]


def describe_order(order: dict[str, Any]) -> str:
    """An order in plain sentences: small models answer far better from prose than from JSON.

    >>> describe_order({"id": "A1", "status": "shipped", "placed_at": "2026-03-17T09:15:00Z",
    ...     "total_cents": 1250, "carrier": "UPS", "tracking_number": "1Z", "eta": "2026-03-22",
    ...     "items": [{"name": "Tent", "quantity": 1, "unit_price_cents": 1250}]})
    'Order A1 is shipped. Carrier UPS, tracking number 1Z, expected delivery 2026-03-22. Placed 2026-03-17. Items: 1 x Tent ($12.50). Total $12.50.'
    """
    parts = [f"Order {order['id']} is {order['status']}."]
    if order.get("carrier"):
        when = "delivered" if order["status"] == "delivered" else "expected delivery"
        parts.append(
            f"Carrier {order['carrier']}, tracking number {order['tracking_number']}, {when} {order['eta']}."
        )
    parts.append(f"Placed {str(order['placed_at'])[:10]}.")
    items = ", ".join(
        f"{i['quantity']} x {i['name']} (${i['unit_price_cents'] / 100:.2f})"
        for i in order["items"]
    )
    parts.append(f"Items: {items}. Total ${order['total_cents'] / 100:.2f}.")
    return " ".join(parts)


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
        return describe_order(order)

    @tool
    def search_help_articles(query: str) -> str:
        """Search the help center (refunds, returns, shipping, warranty, cancellations, account) and return the best articles."""
        hits = kb.search(query, k=2)
        if not hits:
            return "No help article matches that question."
        best, *others = (article for article, _ in hits)
        related = "".join(f"\n(Related article: {a.title})" for a in others)
        return best.text.strip() + related

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
            return "The support team declined to open this ticket" + (
                f": {reason}" if reason else "."
            )
        args.update({k: v for k, v in edits.items() if k in args})
        ticket = shop.create_ticket(**args)
        return f"Ticket #{ticket['id']} opened (priority {ticket['priority']}): {ticket['subject']}"

    return [order_status, search_help_articles, create_ticket]
