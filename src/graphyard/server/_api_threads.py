"""Assistants and threads: the LangGraph SDK's ``client.assistants`` and ``client.threads``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from langgraph.errors import InvalidUpdateError
from pydantic import BaseModel, ConfigDict, Field

from graphyard.server._deps import IdPath as Id
from graphyard.server._deps import (
    Svc,
    assistant_json,
    state_json,
    thread_json,
)
from graphyard.server._errors import ApiError

__all__ = ["router"]

router = APIRouter()

MAX_OFFSET = 1_000_000_000
"""Offsets past this are refused (422) rather than overflowing the database's integers."""
_FILTER_KEY = r"^[A-Za-z0-9_.-]{1,128}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AssistantSearch(_Body):
    graph_id: str | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


@router.post("/assistants/search", tags=["assistants"])
async def search_assistants(
    body: AssistantSearch, svc: Svc, request: Request
) -> list[dict[str, Any]]:
    """The one assistant of the served graph."""
    await svc.user(request)
    if body.graph_id not in (None, svc.graph_id) or body.offset > 0:
        return []
    return [assistant_json(svc)]


@router.get("/assistants/{assistant_id}", tags=["assistants"])
async def get_assistant(assistant_id: Id, svc: Svc, request: Request) -> dict[str, Any]:
    await svc.user(request)
    svc.check_assistant(assistant_id)
    return assistant_json(svc)


@router.get("/assistants/{assistant_id}/graph", tags=["assistants"])
async def get_assistant_graph(
    assistant_id: Id, svc: Svc, request: Request, xray: bool = False
) -> dict[str, Any]:
    """The graph's nodes and edges (what LangGraph Studio draws)."""
    await svc.user(request)
    svc.check_assistant(assistant_id)
    return svc.runtime.graph.get_graph(xray=xray).to_json()  # type: ignore[no-any-return]


@router.get("/assistants/{assistant_id}/schemas", tags=["assistants"])
async def get_assistant_schemas(assistant_id: Id, svc: Svc, request: Request) -> dict[str, Any]:
    await svc.user(request)
    svc.check_assistant(assistant_id)
    graph = svc.runtime.graph
    return {
        "graph_id": svc.graph_id,
        "input_schema": graph.get_input_jsonschema(),
        "output_schema": graph.get_output_jsonschema(),
        "state_schema": graph.get_output_jsonschema(),
        "config_schema": graph.get_config_jsonschema(),
        "context_schema": None,
    }


class ThreadCreate(_Body):
    thread_id: str | None = Field(None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:-]+$")
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"


@router.post("/threads", tags=["threads"])
async def create_thread(body: ThreadCreate, svc: Svc, request: Request) -> dict[str, Any]:
    """Create a thread owned by the caller."""
    user = await svc.user(request)
    if body.thread_id:  # the caller's id may name a thread the checkpointer already has
        thread_id = body.thread_id
        record = await svc.create_thread(thread_id, user, body.metadata)
    else:
        thread_id = str(uuid.uuid4())
        record = await svc.store.create_thread(thread_id, user, body.metadata)
    if record is None:
        existing = await svc.store.get_thread(thread_id)
        if body.if_exists == "do_nothing" and existing is not None and existing.owner == user:
            record = existing
        else:
            raise ApiError(409, "conflict", f"thread {thread_id!r} already exists")
    return await thread_json(svc, record)


class ThreadSearch(_Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    ids: list[str] | None = Field(None, max_length=1000)
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"


@router.post("/threads/search", tags=["threads"])
async def search_threads(body: ThreadSearch, svc: Svc, request: Request) -> list[dict[str, Any]]:
    """The caller's threads, filtered by metadata and status."""
    user = await svc.user(request)
    records = await svc.store.search_threads(
        user,
        metadata=body.metadata,
        status=body.status,
        ids=body.ids,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    out = [await thread_json(svc, r) for r in records]
    if body.values:
        out = [
            t for t in out if all((t["values"] or {}).get(k) == v for k, v in body.values.items())
        ]
    return out


class ThreadCount(_Body):
    metadata: dict[str, Any] | None = None


@router.post("/threads/count", tags=["threads"])
async def count_threads(body: ThreadCount, svc: Svc, request: Request) -> int:
    user = await svc.user(request)
    return await svc.store.count_threads(user)


@router.get("/threads/{thread_id}", tags=["threads"])
async def get_thread(thread_id: Id, svc: Svc, request: Request) -> dict[str, Any]:
    user = await svc.user(request)
    return await thread_json(svc, await svc.thread(thread_id, user))


class ThreadPatch(_Body):
    metadata: dict[str, Any] = Field(default_factory=dict)


@router.patch("/threads/{thread_id}", tags=["threads"])
async def patch_thread(
    thread_id: Id, body: ThreadPatch, svc: Svc, request: Request
) -> dict[str, Any]:
    """Merge metadata into the thread's."""
    user = await svc.user(request)
    record = await svc.thread(thread_id, user)
    await svc.store.update_thread(thread_id, metadata={**record.metadata, **body.metadata})
    return await thread_json(svc, await svc.thread(thread_id, user))


@router.delete("/threads/{thread_id}", tags=["threads"], status_code=204)
async def delete_thread(thread_id: Id, svc: Svc, request: Request) -> Response:
    """Delete the thread, its runs and its checkpoints. 409 while a run is active."""
    user = await svc.user(request)
    record = await svc.thread(thread_id, user)
    if record.active_run_id:
        raise ApiError(409, "thread_busy", "the thread has an active run; cancel it first")
    await svc.runtime.saver.adelete_thread(thread_id)
    await svc.store.delete_thread(thread_id)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/state", tags=["threads"])
async def get_state(
    thread_id: Id, svc: Svc, request: Request, subgraphs: bool = False
) -> dict[str, Any]:
    """The thread's latest state: values, next nodes, tasks and pending interrupts."""
    user = await svc.user(request)
    await svc.thread(thread_id, user)
    snapshot = await svc.runtime.graph.aget_state(
        {"configurable": {"thread_id": thread_id}}, subgraphs=subgraphs
    )
    return state_json(snapshot)


@router.get("/threads/{thread_id}/state/{checkpoint_id}", tags=["threads"])
async def get_state_at(
    thread_id: Id, checkpoint_id: Id, svc: Svc, request: Request, subgraphs: bool = False
) -> dict[str, Any]:
    """The thread's state at one checkpoint."""
    user = await svc.user(request)
    await svc.thread(thread_id, user)
    config = {"configurable": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}}
    snapshot = await svc.runtime.graph.aget_state(config, subgraphs=subgraphs)
    if snapshot.created_at is None:
        raise ApiError(404, "not_found", f"checkpoint {checkpoint_id!r} not found")
    return state_json(snapshot)


class CheckpointRef(_Body):
    thread_id: str | None = None
    checkpoint_ns: str = ""
    checkpoint_id: str | None = None


class StateAtCheckpoint(_Body):
    checkpoint: CheckpointRef
    subgraphs: bool = False


@router.post("/threads/{thread_id}/state/checkpoint", tags=["threads"])
async def post_state_at(
    thread_id: Id, body: StateAtCheckpoint, svc: Svc, request: Request
) -> dict[str, Any]:
    """The thread's state at a checkpoint (the SDK's ``get_state(checkpoint=...)``)."""
    user = await svc.user(request)
    await svc.thread(thread_id, user)
    configurable: dict[str, Any] = {
        "thread_id": thread_id,
        "checkpoint_ns": body.checkpoint.checkpoint_ns,
    }
    if body.checkpoint.checkpoint_id:
        configurable["checkpoint_id"] = body.checkpoint.checkpoint_id
    snapshot = await svc.runtime.graph.aget_state(
        {"configurable": configurable}, subgraphs=body.subgraphs
    )
    if snapshot.created_at is None:
        raise ApiError(404, "not_found", f"checkpoint {body.checkpoint.checkpoint_id!r} not found")
    return state_json(snapshot)


class StateUpdate(_Body):
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = None
    checkpoint: CheckpointRef | None = None
    checkpoint_id: str | None = None


@router.post("/threads/{thread_id}/state", tags=["threads"])
async def update_state(
    thread_id: Id, body: StateUpdate, svc: Svc, request: Request
) -> dict[str, Any]:
    """Write values as if ``as_node`` produced them. From an older checkpoint this forks."""
    user = await svc.user(request)
    record = await svc.thread(thread_id, user)
    if record.active_run_id:
        raise ApiError(409, "thread_busy", "the thread has an active run")
    # user_id lands in the checkpoint's metadata, as a run's does: whose thread it is, for
    # a server that has no record of it (Services.adopt)
    configurable: dict[str, Any] = {"thread_id": thread_id, "user_id": user}
    checkpoint_id = body.checkpoint_id or (
        body.checkpoint.checkpoint_id if body.checkpoint else None
    )
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
        configurable["checkpoint_ns"] = body.checkpoint.checkpoint_ns if body.checkpoint else ""
    try:
        config = await svc.runtime.graph.aupdate_state(
            {"configurable": configurable}, body.values, as_node=body.as_node
        )
    except (ValueError, KeyError, InvalidUpdateError) as exc:
        raise ApiError(422, "invalid_request", f"cannot update state: {exc}") from exc
    await svc.store.update_thread(thread_id)
    c = config.get("configurable", {})
    return {"checkpoint": {k: c.get(k) for k in ("thread_id", "checkpoint_ns", "checkpoint_id")}}


class HistoryQuery(_Body):
    limit: int = Field(10, ge=1, le=1000)
    before: CheckpointRef | str | None = None
    metadata: dict[Annotated[str, Field(pattern=_FILTER_KEY)], Any] | None = None
    checkpoint: CheckpointRef | None = None


@router.post("/threads/{thread_id}/history", tags=["threads"])
async def history(
    thread_id: Id, body: HistoryQuery, svc: Svc, request: Request
) -> list[dict[str, Any]]:
    """The thread's checkpoints, newest first."""
    user = await svc.user(request)
    await svc.thread(thread_id, user)
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if body.checkpoint and body.checkpoint.checkpoint_ns:
        configurable["checkpoint_ns"] = body.checkpoint.checkpoint_ns
    before = body.before
    before_config = None
    if before is not None:
        before_id = before if isinstance(before, str) else before.checkpoint_id
        before_config = {"configurable": {"thread_id": thread_id, "checkpoint_id": before_id}}
    out = []
    async for snapshot in svc.runtime.graph.aget_state_history(
        {"configurable": configurable}, filter=body.metadata, before=before_config, limit=body.limit
    ):
        out.append(state_json(snapshot))
    return out
