"""Runs: the LangGraph SDK's ``client.runs`` (background, streamed, waited, joined, cancelled)."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sse_starlette import EventSourceResponse, ServerSentEvent

from graphyard.server._deps import IdPath as Id
from graphyard.server._deps import Services, Svc, run_json
from graphyard.server._errors import ApiError
from graphyard.server._serialize import jsonable
from graphyard.server._store import RunRecord

__all__ = ["HEARTBEAT_SECONDS", "RunCreate", "router", "sse_response"]

log = logging.getLogger(__name__)

router = APIRouter()

HEARTBEAT_SECONDS = 5.0


StreamModeName = Literal[
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "events",
    "debug",
    "tasks",
    "checkpoints",
]


class RunCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resume: Any = None
    update: Any = None
    goto: Any = None

    @model_validator(mode="after")
    def _not_empty(self) -> RunCommand:
        if not self.model_fields_set & {"resume", "update", "goto"}:
            raise ValueError("a command needs at least one of 'resume', 'update' or 'goto'")
        return self


class RunCreate(BaseModel):
    """A run request, as the LangGraph SDK sends it (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: str = Field(min_length=1)
    input: dict[str, Any] | list[Any] | None = None
    command: RunCommand | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream_mode: StreamModeName | list[StreamModeName] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] | None = None
    if_not_exists: Literal["create", "reject"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    on_completion: Literal["delete", "keep"] | None = None
    durability: Literal["sync", "async", "exit"] | None = None

    @field_validator("stream_mode", mode="after")
    @classmethod
    def _as_list(cls, value: Any) -> list[str]:
        return [value] if isinstance(value, str) else list(value) or ["values"]

    def kwargs(self) -> dict[str, Any]:
        """What the executor needs, JSON-safe (stored with the run)."""
        return jsonable(
            self.model_dump(
                include={
                    "input",
                    "config",
                    "context",
                    "stream_mode",
                    "stream_subgraphs",
                    "interrupt_before",
                    "interrupt_after",
                    "checkpoint",
                    "checkpoint_id",
                    "durability",
                },
                exclude_none=True,
            )
            | ({"command": self.command.model_dump()} if self.command else {})
            | ({"input": self.input} if "input" in self.model_fields_set else {})
        )


async def _create(
    svc: Services, user: str, thread_id: str | None, body: RunCreate
) -> tuple[RunRecord, bool]:
    """Create the run; returns it and whether its thread is temporary (stateless run)."""
    svc.check_assistant(body.assistant_id)
    temporary = thread_id is None
    if thread_id is None:
        thread_id = str(uuid.uuid4())
        await svc.store.create_thread(thread_id, user, {})
    else:
        if body.if_not_exists == "create":
            await svc.create_thread(thread_id, user, {})  # a concurrent create may win
        await svc.thread(thread_id, user)
    run = await svc.runs.create(
        thread_id,
        user,
        body.kwargs(),
        metadata=body.metadata,
        multitask_strategy=body.multitask_strategy or "enqueue",
    )
    if temporary and body.on_completion != "keep":
        task = asyncio.create_task(_delete_when_done(svc, run))
        _cleanups.add(task)
        task.add_done_callback(_cleanups.discard)
    return run, temporary


_cleanups: set[asyncio.Task[None]] = set()


async def _delete_when_done(svc: Services, run: RunRecord) -> None:
    try:
        await svc.runs.wait(run)
        await asyncio.sleep(1.0)  # let a waiting client read the final state first
        await svc.runtime.saver.adelete_thread(run.thread_id)
        await svc.store.delete_thread(run.thread_id)
    except Exception:
        log.exception("could not delete the temporary thread of run %s", run.run_id)


_NEWLINES = re.compile(r"[\r\n]")


def _frame(seq: int, event: str, data: str) -> bytes:
    """One SSE frame, byte for byte what ``ServerSentEvent(data, event=, id=).encode()``
    gives, without its StringIO and regular expressions for the usual single-line JSON."""
    if _NEWLINES.search(data) or _NEWLINES.search(event):
        return ServerSentEvent(data=data, event=event, id=str(seq)).encode()
    return f"id: {seq}\r\nevent: {event}\r\ndata: {data}\r\n\r\n".encode()


def sse_response(
    svc: Services,
    run: RunRecord,
    *,
    after: int = 0,
    on_disconnect: str = "continue",
    location: str | None = None,
) -> EventSourceResponse:
    """The run's events as SSE: ``event``, ``data`` and ``id`` on every frame."""

    async def frames() -> AsyncIterator[bytes]:
        finished = False
        try:
            # the frames pending for this client go out in one write (one ASGI message)
            async for batch in svc.runs.event_batches(run, after):
                yield b"".join(_frame(seq, event, data) for seq, event, data in batch)
            finished = True
        finally:
            if not finished and on_disconnect == "cancel":
                await svc.runs.cancel(run, "interrupt")

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if location:
        headers["Location"] = location
        headers["Content-Location"] = location.removesuffix("/stream")
    return EventSourceResponse(
        frames(),
        ping=HEARTBEAT_SECONDS,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        headers=headers,
    )


async def _final_values(svc: Services, run: RunRecord) -> Any:
    finished = await svc.runs.wait(run)
    if finished.status == "error":
        kind, _, message = (finished.error or "Error: run failed").partition(": ")
        return {"__error__": {"error": kind, "message": message}}
    snapshot = await svc.runtime.graph.aget_state({"configurable": {"thread_id": run.thread_id}})
    values = jsonable(snapshot.values)
    if snapshot.interrupts:
        values = (
            {**values, "__interrupt__": jsonable(snapshot.interrupts)}
            if isinstance(values, dict)
            else values
        )
    return values


def _last_event_id(value: str | None) -> int:
    if not value:
        return 0
    try:
        return max(int(value), 0)
    except ValueError:
        raise ApiError(
            400, "invalid_request", "Last-Event-ID must be an event id from this stream"
        ) from None


# --- thread runs ---------------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs", tags=["runs"])
async def create_run(thread_id: Id, body: RunCreate, svc: Svc, request: Request) -> JSONResponse:
    """Start a run in the background."""
    user = await svc.user(request)
    run, _ = await _create(svc, user, thread_id, body)
    location = f"/threads/{thread_id}/runs/{run.run_id}"
    return JSONResponse(run_json(run), headers={"Content-Location": location})


@router.post("/threads/{thread_id}/runs/stream", tags=["runs"], response_class=EventSourceResponse)
async def stream_run(
    thread_id: Id, body: RunCreate, svc: Svc, request: Request
) -> EventSourceResponse:
    """Start a run and stream its events. Reconnect to ``Location`` with ``Last-Event-ID``."""
    user = await svc.user(request)
    run, _ = await _create(svc, user, thread_id, body)
    return sse_response(
        svc,
        run,
        on_disconnect=body.on_disconnect or "continue",
        location=f"/threads/{thread_id}/runs/{run.run_id}/stream",
    )


@router.post("/threads/{thread_id}/runs/wait", tags=["runs"])
async def wait_run(thread_id: Id, body: RunCreate, svc: Svc, request: Request) -> JSONResponse:
    """Start a run and answer with the thread's final values."""
    user = await svc.user(request)
    run, _ = await _create(svc, user, thread_id, body)
    values = await _final_values(svc, run)
    return JSONResponse(
        values, headers={"Content-Location": f"/threads/{thread_id}/runs/{run.run_id}"}
    )


@router.get("/threads/{thread_id}/runs", tags=["runs"])
async def list_runs(
    thread_id: Id,
    svc: Svc,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    status: Literal["pending", "running", "error", "success", "timeout", "interrupted"]
    | None = None,
) -> list[dict[str, Any]]:
    user = await svc.user(request)
    await svc.thread(thread_id, user)
    runs = await svc.store.list_runs(thread_id, status=status, limit=limit, offset=offset)
    return [run_json(r) for r in runs]


@router.get("/threads/{thread_id}/runs/{run_id}", tags=["runs"])
async def get_run(thread_id: Id, run_id: Id, svc: Svc, request: Request) -> dict[str, Any]:
    user = await svc.user(request)
    return run_json(await svc.run(thread_id, run_id, user))


@router.delete("/threads/{thread_id}/runs/{run_id}", tags=["runs"], status_code=204)
async def delete_run(thread_id: Id, run_id: Id, svc: Svc, request: Request) -> Response:
    user = await svc.user(request)
    run = await svc.run(thread_id, run_id, user)
    if run.status in ("pending", "running"):
        raise ApiError(409, "run_active", "the run is still active; cancel it first")
    await svc.store.delete_run(run_id)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs/{run_id}/join", tags=["runs"])
async def join_run(thread_id: Id, run_id: Id, svc: Svc, request: Request) -> Any:
    """Wait for the run to end; answer with the thread's final values."""
    user = await svc.user(request)
    return await _final_values(svc, await svc.run(thread_id, run_id, user))


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream", tags=["runs"], response_class=EventSourceResponse
)
async def join_stream(
    thread_id: Id,
    run_id: Id,
    svc: Svc,
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    cancel_on_disconnect: bool = False,
) -> EventSourceResponse:
    """Stream the run's events after ``Last-Event-ID`` (all of them without it), then live ones."""
    user = await svc.user(request)
    run = await svc.run(thread_id, run_id, user)
    return sse_response(
        svc,
        run,
        after=_last_event_id(last_event_id),
        on_disconnect="cancel" if cancel_on_disconnect else "continue",
        location=f"/threads/{thread_id}/runs/{run_id}/stream",
    )


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", tags=["runs"])
async def cancel_run(
    thread_id: Id,
    run_id: Id,
    svc: Svc,
    request: Request,
    wait: bool = False,
    action: Literal["interrupt", "rollback"] = "interrupt",
) -> Response:
    """Stop the run: ``interrupt`` keeps what it did so far, ``rollback`` erases it."""
    user = await svc.user(request)
    run = await svc.run(thread_id, run_id, user)
    if run.status not in ("pending", "running"):
        raise ApiError(409, "run_not_active", f"run {run_id!r} is already {run.status}")
    await svc.runs.cancel(run, action)
    if wait:
        await svc.runs.wait(run)
        return Response(status_code=204)
    return Response(status_code=202)


# --- stateless runs (a temporary thread, deleted afterwards unless on_completion=keep) -------


@router.post("/runs", tags=["runs"])
async def create_stateless_run(body: RunCreate, svc: Svc, request: Request) -> dict[str, Any]:
    user = await svc.user(request)
    run, _ = await _create(svc, user, None, body)
    return run_json(run)


@router.post("/runs/stream", tags=["runs"], response_class=EventSourceResponse)
async def stream_stateless_run(body: RunCreate, svc: Svc, request: Request) -> EventSourceResponse:
    user = await svc.user(request)
    run, _ = await _create(svc, user, None, body)
    return sse_response(
        svc,
        run,
        on_disconnect=body.on_disconnect or "cancel",
        location=f"/threads/{run.thread_id}/runs/{run.run_id}/stream",
    )


@router.post("/runs/wait", tags=["runs"])
async def wait_stateless_run(body: RunCreate, svc: Svc, request: Request) -> Any:
    user = await svc.user(request)
    run, _ = await _create(svc, user, None, body)
    return await _final_values(svc, run)
