"""The FastAPI application.

Create it with :func:`create_app`; the runtime (checkpointer, models, graph) opens in the
app's lifespan and closes with it, stopping the bundled model server too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from langchain_core.language_models import BaseChatModel
from sse_starlette import EventSourceResponse, ServerSentEvent

import graphyard
from graphyard._runtime import GraphSource, Runtime, open_runtime
from graphyard.config import Settings, TierName
from graphyard.errors import ThreadNotFound
from graphyard.server._chat import ChatRequest, ChatRuns, chat_events, sse_frames
from graphyard.server._errors import install_error_handlers
from graphyard.server._serialize import jsonable

__all__ = ["create_app"]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0

ThreadId = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:-]+$")]


def create_app(
    settings: Settings | None = None,
    *,
    graph: GraphSource | None = None,
    models: Mapping[TierName, BaseChatModel] | None = None,
) -> FastAPI:
    """The graphyard server for ``graph`` (the reference agent by default).

    >>> from graphyard.server import create_app
    >>> create_app().title
    'graphyard'
    """
    settings = settings or Settings()
    runs = ChatRuns()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, graph=graph, models=models) as runtime:
            app.state.runtime = runtime
            log.info(
                "serving graph %r with tiers %s; checkpoints in %s",
                runtime.graph_id,
                ", ".join(f"{t.name}={t.model_id}" for t in runtime.tiers.values()),
                settings.checkpointer,
            )
            try:
                yield
            finally:
                await runs.shutdown()

    app = FastAPI(
        title="graphyard",
        version=graphyard.__version__,
        summary="A production runtime for LangGraph agents.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    def runtime_of(request: Request) -> Runtime:
        return request.app.state.runtime  # type: ignore[no-any-return]

    @app.get("/ok", tags=["meta"])
    async def ok() -> dict[str, bool]:
        """Liveness: answers as soon as the server is up (models load on first use)."""
        return {"ok": True}

    @app.get("/info", tags=["meta"])
    async def info(request: Request) -> dict[str, Any]:
        """Version, served graph and tiers."""
        runtime = runtime_of(request)
        return {
            "version": graphyard.__version__,
            "graph_id": runtime.graph_id,
            "tiers": {
                t.name: {"model": t.model_id, "fallback_from": t.fallback_from}
                for t in runtime.tiers.values()
            },
        }

    @app.post("/chat/{thread_id}", tags=["chat"], response_class=EventSourceResponse)
    async def chat(thread_id: ThreadId, body: ChatRequest, request: Request) -> EventSourceResponse:
        """Send a message (or answer an approval) and stream the answer as SSE."""
        runtime = runtime_of(request)
        events = await chat_events(runtime, thread_id, body)
        queue = runs.start(thread_id, events)
        return EventSourceResponse(
            sse_frames(queue),
            ping=HEARTBEAT_SECONDS,
            ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/threads/{thread_id}/state", tags=["threads"])
    async def thread_state(thread_id: ThreadId, request: Request) -> dict[str, Any]:
        """The thread's latest state (values, next nodes, pending interrupts)."""
        runtime = runtime_of(request)
        snapshot = await runtime.graph.aget_state({"configurable": {"thread_id": thread_id}})
        if snapshot.created_at is None:
            raise ThreadNotFound(thread_id)
        return {
            "values": jsonable(snapshot.values),
            "next": list(snapshot.next),
            "checkpoint": jsonable(snapshot.config.get("configurable", {})),
            "metadata": jsonable(snapshot.metadata),
            "created_at": snapshot.created_at,
            "parent_checkpoint": jsonable((snapshot.parent_config or {}).get("configurable")),
            "tasks": [
                {
                    "id": t.id,
                    "name": t.name,
                    "error": t.error,
                    "interrupts": jsonable(t.interrupts),
                }
                for t in snapshot.tasks
            ],
            "interrupts": jsonable(snapshot.interrupts),
        }

    return app
