"""``GET /threads/{thread_id}/cost``: what a thread's model calls cost, from the ledger.

Answers the caller's own threads only: another user's thread is a 404 exactly like a
missing one (the same ``Services.thread`` lookup every thread route uses). Only calls made
since the thread was created count, so a thread re-created under a deleted one's id does
not inherit its spend. This module never writes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from graphyard.ledger import Ledger
from graphyard.server._deps import IdPath as Id
from graphyard.server._deps import Svc

__all__ = ["router"]

router = APIRouter()


@router.get("/threads/{thread_id}/cost", tags=["threads"])
async def thread_cost(thread_id: Id, svc: Svc, request: Request) -> dict[str, Any]:
    """Tokens, dollars and calls of the thread: totals, and by run, tier and model.

    ``{"thread_id", "totals": {calls, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, cost_usd}, "by_run": {run_id: totals}, "by_tier": {...},
    "by_model": {...}}``
    """
    user = await svc.user(request)
    record = await svc.thread(thread_id, user)
    ledger: Ledger = request.app.state.ledger
    report = await ledger.thread_cost(thread_id, since=record.created_at)
    return report.as_json()
