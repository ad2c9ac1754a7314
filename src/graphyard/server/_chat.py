"""``POST /chat/{thread_id}``: the simple streaming endpoint.

Frames, each ``data: <json>``:

- ``{"node": "planner"}`` when a node starts;
- ``{"token": "..."}`` for each token a model streams;
- ``{"tier": "mid"}`` when the run picks or changes tier, ``{"verdict": "..."}`` when the
  critic sends an answer back (the client should drop the draft it showed);
- ``{"interrupt": [...]}`` when the run pauses for a human's approval (answer with
  ``{"resume": {"action": "approve"}}`` on the same endpoint);
- ``{"error": {"code": ..., "message": ...}}`` if the run fails;
- last, ``{"tier", "cost_usd", "thread_cost_usd", "usage"}`` for this turn, then ``[DONE]``.

The run executes in a task of its own: a client that disconnects does not cancel it, and
what it produces is saved. One run per thread at a time (409 otherwise).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.messages import AIMessageChunk, HumanMessage
from langgraph.types import Command
from pydantic import BaseModel, ConfigDict, Field, model_validator

from graphyard._runtime import Runtime
from graphyard.config import TierName
from graphyard.errors import ThreadBusy
from graphyard.server._errors import ApiError, status_for
from graphyard.server._serialize import dumps, jsonable
from graphyard.state import with_ids

__all__ = ["ChatRequest", "ChatRuns", "chat_events"]

log = logging.getLogger(__name__)

_DONE = object()


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


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks (Anthropic)
        return "".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


async def chat_events(
    runtime: Runtime, thread_id: str, request: ChatRequest, *, user_id: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The frames of one chat turn, as dicts (the caller writes them as SSE)."""
    graph = runtime.graph
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id}}
    if request.tier:
        config["configurable"]["tier"] = request.tier
    if user_id:
        config["configurable"]["user_id"] = user_id
    before = await graph.aget_state(config)
    pending = [i for task in before.tasks for i in task.interrupts]
    if request.content is not None and pending:
        raise ApiError(
            409,
            "approval_pending",
            'this thread is waiting for an approval; answer it with {"resume": ...} first',
        )
    if request.content is None and not pending:
        raise ApiError(409, "nothing_to_resume", "this thread has no pending approval")
    graph_input: Any = (
        Command(resume=request.resume)
        if request.content is None
        else {"messages": with_ids([HumanMessage(request.content)])}
    )
    return _stream(runtime, graph_input, config, before.values)


async def _stream(
    runtime: Runtime, graph_input: Any, config: dict[str, Any], before: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    graph = runtime.graph
    try:
        async for mode, chunk in graph.astream(
            graph_input,
            config,
            stream_mode=["tasks", "messages", "updates"],
            durability=runtime.settings.durability,
        ):
            if mode == "tasks":
                if "result" not in chunk and "error" not in chunk:
                    yield {"node": chunk["name"]}
            elif mode == "messages":
                message, _meta = chunk
                if isinstance(message, AIMessageChunk) and (token := _text(message.content)):
                    yield {"token": token}
            elif mode == "updates":
                for node, update in chunk.items():
                    if node == "__interrupt__" or not isinstance(update, dict):
                        continue
                    if update.get("tier"):
                        yield {"tier": update["tier"]}
                    verdict = update.get("verdict")
                    if verdict and verdict != "ok":
                        yield {"verdict": verdict}
    except Exception as exc:
        status, code = status_for(exc)
        log.exception("run on thread %s failed", config["configurable"]["thread_id"])
        message = str(exc) if status < 500 or code != "internal_error" else type(exc).__name__
        yield {"error": {"code": code, "message": message}}
        return
    after = await graph.aget_state(config)
    interrupts = [i for task in after.tasks for i in task.interrupts]
    if interrupts:
        yield {"interrupt": jsonable(interrupts)}
    values = after.values
    spent = float(values.get("cost_usd") or 0.0)
    usage_after, usage_before = values.get("usage") or {}, before.get("usage") or {}
    yield {
        "tier": values.get("tier"),
        "cost_usd": round(spent - float(before.get("cost_usd") or 0.0), 10),
        "thread_cost_usd": round(spent, 10),
        "usage": {k: v - usage_before.get(k, 0) for k, v in usage_after.items()},
    }


class ChatRuns:
    """Runs in flight, one per thread, each in its own task so a disconnect doesn't stop it."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def busy(self, thread_id: str) -> bool:
        return thread_id in self._tasks

    def start(self, thread_id: str, events: AsyncIterator[dict[str, Any]]) -> asyncio.Queue[Any]:
        """Run ``events`` in the background; return the queue its frames arrive on."""
        if thread_id in self._tasks:
            raise ThreadBusy(f"thread {thread_id!r} already has a run in progress")
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in events:
                    queue.put_nowait(event)
            finally:
                queue.put_nowait(_DONE)
                self._tasks.pop(thread_id, None)

        self._tasks[thread_id] = asyncio.create_task(pump(), name=f"chat:{thread_id}")
        return queue

    async def shutdown(self, grace: float = 10.0) -> None:
        """Let runs finish for up to ``grace`` seconds, then cancel the rest."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def sse_frames(queue: asyncio.Queue[Any]) -> AsyncIterator[dict[str, str]]:
    """SSE frames for sse-starlette from a run's queue, ending with ``[DONE]``."""
    while True:
        event = await queue.get()
        if event is _DONE:
            yield {"data": "[DONE]"}
            return
        yield {"data": dumps(event)}
