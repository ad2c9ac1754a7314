"""``POST /threads/{thread_id}/replay``: replay a thread over HTTP, streamed like a run.

The replay is an ordinary run of kind ``replay`` (see ``RunManager.kinds``): it takes the
thread's database lock (``409`` if the thread is busy), its events are stored and can be
re-read from ``/threads/{id}/runs/{run_id}/stream`` with ``Last-Event-ID`` (the
``Location`` header), it shows in ``GET /threads/{id}/runs``, and the run's callback
handlers (recording, cost, metrics) see it like any other. With ``fork`` the run belongs to
the new thread (created for the caller), which keeps the original thread free.

Events: ``metadata``, ``replay`` (where it starts), the requested stream modes,
``replay/divergence`` (the first request the recording lacks), ``replay/result`` (counts,
errors, and the diff against the original run), then ``error`` if the replay failed, and
``end``. Another user's thread answers 404, like a missing one.

This module must never run a replay outside the run manager.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from graphyard.replay import RecordingHandler, recording_store, replay_events
from graphyard.replay._replay import ReplayResult
from graphyard.server._api_runs import sse_response
from graphyard.server._deps import IdPath as Id
from graphyard.server._deps import Services, Svc
from graphyard.server._errors import ApiError
from graphyard.server._serialize import jsonable
from graphyard.server._store import RunRecord

__all__ = ["ReplayRequest", "install_replay", "router"]

log = logging.getLogger(__name__)

router = APIRouter()


class ReplayRequest(BaseModel):
    """How to replay a thread."""

    model_config = ConfigDict(extra="forbid")

    checkpoint_id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[0-9a-fA-F-]+$")
    """The checkpoint to replay from (default: the start of the thread's last turn)."""
    live: bool = False
    """After a divergence, call the real models instead of stopping."""
    fork: bool = False
    """Write the replay to a new thread instead of a new branch of this one."""
    stream_mode: list[Literal["values", "updates"]] = Field(
        default_factory=lambda: ["updates"], max_length=2
    )
    """The graph stream modes to send besides the replay events."""


async def install_replay(svc: Services, *, prices: Any = None) -> None:
    """Record every run's calls and serve replay runs (called in the app's lifespan)."""
    store = recording_store(svc.runtime.saver)
    if store is not None:
        await store.setup()
    else:
        log.warning(
            "%s keeps no recordings: runs are not recorded and replay is unavailable",
            type(svc.runtime.saver).__name__,
        )
    handlers: dict[str, RecordingHandler] = {}

    def make(run: RunRecord) -> RecordingHandler | None:
        if store is None:
            return None
        handler = RecordingHandler(store, run.thread_id, run_id=run.run_id, prices=prices)
        handlers[run.run_id] = handler
        return handler

    async def flush(run: RunRecord) -> None:
        handler = handlers.pop(run.run_id, None)
        if handler is not None:
            await handler.flush()

    async def execute(run: RunRecord, config: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        kw = run.kwargs
        async for event, data in replay_events(
            svc.runtime.graph,
            kw["source_thread_id"],
            checkpoint_id=kw.get("replay_checkpoint_id"),
            live=bool(kw.get("live")),
            fork=kw.get("fork") or False,
            config=config,
            stream_mode=kw.get("stream_mode") or ["updates"],
            raise_errors=True,
        ):
            yield event, jsonable(data.as_json() if isinstance(data, ReplayResult) else data)

    svc.runs.handlers.append(make)
    svc.runs.finish_hooks.append(flush)
    svc.runs.kinds["replay"] = execute


@router.post("/threads/{thread_id}/replay", tags=["threads"], response_class=EventSourceResponse)
async def replay_thread(
    thread_id: Id, body: ReplayRequest, svc: Svc, request: Request
) -> EventSourceResponse:
    """Replay the thread from a checkpoint with the recorded model outputs (no model call),
    or ``live`` after a divergence; stream the replay like a run, ending with its diff."""
    user = await svc.user(request)
    await svc.thread(thread_id, user)
    saver = svc.runtime.saver
    if recording_store(saver) is None:
        raise ApiError(
            400, "replay_unavailable", f"{type(saver).__name__} keeps no recordings to replay"
        )
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if body.checkpoint_id:
        configurable["checkpoint_id"] = body.checkpoint_id
    found = await saver.aget_tuple({"configurable": configurable})
    if found is None:
        what = f"checkpoint {body.checkpoint_id!r}" if body.checkpoint_id else "any checkpoint"
        raise ApiError(404, "not_found", f"thread {thread_id!r} has no {what}")
    kwargs: dict[str, Any] = {
        "kind": "replay",
        "source_thread_id": thread_id,
        "live": body.live,
        "stream_mode": list(body.stream_mode),
    }
    if body.checkpoint_id:
        kwargs["replay_checkpoint_id"] = body.checkpoint_id
    target = thread_id
    if body.fork:
        target = str(uuid.uuid4())
        kwargs["fork"] = target
        await svc.store.create_thread(
            target, user, {"replay_of": thread_id, "checkpoint_id": body.checkpoint_id}
        )
    run = await svc.runs.create(target, user, kwargs, multitask_strategy="reject")
    return sse_response(svc, run, location=f"/threads/{target}/runs/{run.run_id}/stream")
