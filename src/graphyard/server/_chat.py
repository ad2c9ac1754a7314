"""``POST /chat/{thread_id}``: the simple streaming endpoint, built on the run machinery.

Frames, each ``data: <json>``:

- ``{"node": "planner"}`` when a node starts;
- ``{"token": "..."}`` for each token a model streams;
- ``{"tier": "mid"}`` when the run picks or changes tier, ``{"verdict": "..."}`` when the
  critic sends an answer back (the client should drop the draft it showed);
- ``{"interrupt": [...]}`` when the run pauses for a human's approval (answer with
  ``{"resume": {"action": "approve"}}`` on the same endpoint);
- ``{"error": {"code": ..., "message": ...}}`` if the run fails;
- ``{"cache": {"hit": true, "saved_usd": ..., ...}}`` before the tokens of an answer
  served from the answer cache (``graphyard.caching``): no model was called;
- last, ``{"tier", "cost_usd", "thread_cost_usd", "usage"}`` for this turn, then ``[DONE]``.

A chat turn is an ordinary run (``multitask_strategy="reject"``): it shows in
``GET /threads/{id}/runs``, holds the thread's database lock, keeps going if the client
disconnects, and its events can be re-read from ``/threads/{id}/runs/{run_id}/stream``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.messages import HumanMessage
from pydantic import BaseModel, ConfigDict, Field, model_validator

from graphyard.config import TierName
from graphyard.server._deps import Services
from graphyard.server._errors import ApiError
from graphyard.server._serialize import dumps, jsonable
from graphyard.server._store import RunRecord
from graphyard.state import with_ids

__all__ = ["ChatRequest", "start_chat"]

CHAT_STREAM_MODES = ["tasks", "messages-tuple", "updates", "custom"]

_ERROR_CODES = {
    "BudgetExceeded": "budget_exceeded",
    "budget_exceeded": "budget_exceeded",
    "ModelUnavailable": "model_unavailable",
    "ThreadBusy": "thread_busy",
    "ServerShutdown": "server_shutdown",
}


class ChatRequest(BaseModel):
    """A new message, or the answer to a pending approval."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = Field(None, min_length=1, max_length=200_000)
    """The user's message."""
    resume: Any = None
    """The answer to a pending ``interrupt()``, e.g. ``{"action": "approve"}``."""
    tier: TierName | None = None
    """Force a tier for this turn instead of routing."""

    @model_validator(mode="after")
    def _one_of(self) -> ChatRequest:
        has_resume = "resume" in self.model_fields_set
        if (self.content is None) == (not has_resume):
            raise ValueError("send exactly one of 'content' (a message) or 'resume' (an approval)")
        return self


async def start_chat(
    svc: Services, thread_id: str, user: str, request: ChatRequest
) -> AsyncIterator[dict[str, str]]:
    """Validate, start the turn's run, and return its SSE frames (for sse-starlette)."""
    record = await svc.store.get_thread(thread_id)
    # new only if the checkpointer has never seen it either: a thread whose record is
    # missing (a fresh Lambda instance) is adopted for the owner its checkpoints name
    new = record is None and not (await svc.adopt(thread_id))[0]
    if not new:
        await svc.thread(thread_id, user)  # 404 if it is someone else's
    graph = svc.runtime.graph
    before = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    pending = [i for task in before.tasks for i in task.interrupts]
    if request.content is not None and pending:
        raise ApiError(
            409,
            "approval_pending",
            'this thread is waiting for an approval; answer it with {"resume": ...} first',
        )
    if request.content is None and not pending:
        raise ApiError(409, "nothing_to_resume", "this thread has no pending approval")
    kwargs: dict[str, Any] = {"stream_mode": CHAT_STREAM_MODES}
    if request.content is None:
        kwargs["command"] = {"resume": jsonable(request.resume)}
    else:
        kwargs["input"] = {"messages": jsonable(with_ids([HumanMessage(request.content)]))}
    if request.tier:
        kwargs["config"] = {"configurable": {"tier": request.tier}}
    if new:  # only now: a refused request leaves no thread behind
        await svc.store.create_thread(thread_id, user, {})
        await svc.thread(thread_id, user)  # a concurrent create by someone else wins: 404
    run = await svc.runs.create(thread_id, user, kwargs, multitask_strategy="reject")
    return _frames(svc, run, dict(before.values or {}))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks (Anthropic)
        return "".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def chat_frames(event: str, data: Any) -> list[dict[str, Any]]:
    """The chat frames for one run event."""
    if event == "tasks" and isinstance(data, dict) and "triggers" in data:
        return [{"node": data["name"]}]
    if event == "messages":
        chunk = data[0] if isinstance(data, list) and data else {}
        if isinstance(chunk, dict) and chunk.get("type") == "AIMessageChunk":
            token = _text(chunk.get("content"))
            return [{"token": token}] if token else []
        return []
    if event == "updates" and isinstance(data, dict):
        out: list[dict[str, Any]] = []
        for node, update in data.items():
            if node == "__interrupt__" or not isinstance(update, dict):
                continue
            if update.get("tier"):
                out.append({"tier": update["tier"]})
            verdict = update.get("verdict")
            if verdict and verdict != "ok":
                out.append({"verdict": verdict})
        return out
    if event == "custom" and isinstance(data, dict) and data.get("type") == "cache_hit":
        return [{"cache": {"hit": True, **{k: v for k, v in data.items() if k != "type"}}}]
    if event == "error" and isinstance(data, dict):
        code = _ERROR_CODES.get(str(data.get("error")), "run_failed")
        return [{"error": {"code": code, "message": data.get("message", "")}}]
    return []


async def _frames(
    svc: Services, run: RunRecord, before: dict[str, Any]
) -> AsyncIterator[dict[str, str]]:
    async for _seq, event, raw in svc.runs.events(run):
        if event == "end":
            continue  # the iterator ends once the run has released the thread
        for frame in chat_frames(event, json.loads(raw)):
            yield {"data": dumps(frame)}
    after = await svc.runtime.graph.aget_state({"configurable": {"thread_id": run.thread_id}})
    interrupts = [i for task in after.tasks for i in task.interrupts]
    if interrupts:
        yield {"data": dumps({"interrupt": jsonable(interrupts)})}
    values = after.values or {}
    spent = float(values.get("cost_usd") or 0.0)
    usage_after, usage_before = values.get("usage") or {}, before.get("usage") or {}
    final = {
        "tier": values.get("tier"),
        "cost_usd": round(spent - float(before.get("cost_usd") or 0.0), 10),
        "thread_cost_usd": round(spent, 10),
        "usage": {k: v - usage_before.get(k, 0) for k, v in usage_after.items()},
    }
    yield {"data": dumps(final)}
    yield {"data": "[DONE]"}
