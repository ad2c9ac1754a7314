"""The FastAPI application.

Create it with :func:`create_app`; the runtime (checkpointer, models, graph), the server
store and the run manager open in the app's lifespan and close with it, stopping the
bundled model server too.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from langchain_core.language_models import BaseChatModel
from sse_starlette import EventSourceResponse, ServerSentEvent

import graphyard
from graphyard._runtime import GraphSource, open_runtime
from graphyard.config import Settings, TierName, parse_duration
from graphyard.ledger import connect_ledger, handler_factory
from graphyard.observability import CONTENT_TYPE, MetricsMiddleware, Observability
from graphyard.persistence import sqlite_path, ttl_sweeps
from graphyard.server import _api_cost, _api_replay, _api_runs, _api_threads
from graphyard.server._auth import authenticate, load_authenticator
from graphyard.server._chat import ChatRequest, start_chat
from graphyard.server._deps import IdPath as ThreadId
from graphyard.server._deps import Services, Svc
from graphyard.server._errors import ApiError, install_error_handlers
from graphyard.server._limits import BodySizeLimit, RateLimiter
from graphyard.server._runs import RunManager
from graphyard.server._store import SqliteServerStore
from graphyard.server._store_postgres import PostgresServerStore, ServerStore
from graphyard.server._web import mount_web

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _server_store(checkpointer: str, saver: Any, lease_seconds: float) -> ServerStore:
    """Where thread and run records, events and run locks live: the checkpointer's own
    database, so every server process on it shares them."""
    if checkpointer.startswith("sqlite:"):
        return SqliteServerStore(sqlite_path(checkpointer))
    pool = getattr(saver, "conn", None)
    if checkpointer.startswith(("postgres://", "postgresql://")) and hasattr(pool, "connection"):
        return PostgresServerStore(pool)
    if checkpointer.startswith("dynamodb:") and hasattr(saver, "client"):
        from graphyard.server._dynamodb import (
            DynamoDBThreads,
            SharedSqliteServerStore,
            threads_table,
        )

        log.warning(
            "run records and stream events are kept in ./graphyard-server.db beside dynamodb "
            "(a stream resumes on the instance that ran it only); run leases and each user's "
            "thread list are shared in DynamoDB table %s",
            threads_table(saver.table_name),
        )
        shared = DynamoDBThreads(
            saver.client, threads_table(saver.table_name), saver._run, seconds=lease_seconds
        )
        return SharedSqliteServerStore("graphyard-server.db", shared)
    log.warning(
        "thread and run records are kept in ./graphyard-server.db beside %s: run locks hold "
        "across processes on this machine only",
        checkpointer.split("://")[0],
    )
    return SqliteServerStore("graphyard-server.db")


def _freeze_startup_heap() -> None:
    """Move everything allocated by startup (modules, the graph, models, pools) out of the
    garbage collector's reach: a full collection then scans only what requests allocated.
    Without it, under 200 streaming clients, a full collection took 180-280 ms (18 of
    them in 30 s, measured with gc.callbacks), rescanning hundreds of thousands of objects
    that live as long as the process, and each pause held every stream; with it, 21-53 ms.
    The objects are still freed normally when unreferenced; only cycles among them are
    left to live, as CPython's own docs recommend for pre-fork servers. Not for apps
    created over and over in one process (tests): each freeze would keep its garbage."""
    gc.collect()
    gc.freeze()
    log.debug("startup heap frozen: %d objects", gc.get_freeze_count())


def _thread_created(store: ServerStore) -> Callable[[str], Awaitable[float | None]]:
    async def created(thread_id: str) -> float | None:
        record = await store.get_thread(thread_id)
        return record.created_at if record is not None else None

    return created


def create_app(
    settings: Settings | None = None,
    *,
    graph: GraphSource | None = None,
    models: Mapping[TierName, BaseChatModel] | None = None,
    tracer_provider: Any = None,
    freeze_startup_heap: bool = False,
) -> FastAPI:
    """The graphyard server for ``graph`` (the reference agent by default).

    ``tracer_provider`` (an OpenTelemetry SDK ``TracerProvider``) receives the runs' spans
    instead of the one the ``OTEL_*`` variables would configure. ``freeze_startup_heap``
    (``graphyard serve`` sets it: one app per process) hides what startup allocated from
    the garbage collector once the app is up; see :func:`_freeze_startup_heap`.

    >>> from graphyard.server import create_app
    >>> create_app().title
    'graphyard'
    """
    settings = settings or Settings()
    auth = load_authenticator(settings.api_keys, settings.auth)
    limiter = RateLimiter(settings.rate_limit_per_minute)
    # metrics, tracing and run log lines; attached to the run manager in the lifespan
    obs = Observability(settings, tracer_provider=tracer_provider)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, graph=graph, models=models) as runtime:
            store = _server_store(settings.checkpointer, runtime.saver, settings.run_lease_seconds)
            await store.open()
            svc = Services(runtime, store, None, auth, time.time(), limiter)  # type: ignore[arg-type]
            svc.runs = RunManager(
                runtime.graph,
                store,
                assistant_id=svc.assistant_id,
                durability=settings.durability,
                lease_seconds=settings.run_lease_seconds,
                saver=runtime.saver,
                events_ttl=(
                    parse_duration(settings.run_events_ttl).total_seconds()
                    if settings.run_events_ttl
                    else None
                ),
            )
            # the cost ledger: a handler per run records calls and enforces budgets; a
            # run's calls are stored before the run is marked finished
            ledger = await connect_ledger(
                settings.checkpointer,
                saver=runtime.saver,
                postgres=settings.postgres,
            )
            app.state.ledger = ledger
            svc.runs.handlers.append(
                handler_factory(ledger, settings, thread_created=_thread_created(store))
            )
            svc.runs.finish_hooks.append(lambda run: ledger.flush())
            # replay: every run's model/tool calls recorded; POST /threads/{id}/replay
            await _api_replay.install_replay(svc, prices=settings.prices)
            obs.attach(svc.runs, saver=runtime.saver, agent=runtime.graph_id)
            await svc.runs.start()
            app.state.services = svc
            if freeze_startup_heap:
                _freeze_startup_heap()
            log.info(
                "serving graph %r with tiers %s; checkpoints in %s; auth %s",
                runtime.graph_id,
                ", ".join(f"{t.name}={t.model_id}" for t in runtime.tiers.values()),
                settings.checkpointer,
                "on" if auth else "off (loopback only)",
            )
            try:
                # Deletes threads idle past settings.thread_ttl, in a background task.
                async with ttl_sweeps(
                    runtime.saver,
                    settings.thread_ttl,
                    settings.thread_ttl_check_every,
                    on_deleted=store.delete_thread,
                ):
                    yield
            finally:
                await svc.runs.stop()
                await ledger.close()
                await store.close()
                await obs.aclose()

    app = FastAPI(
        title="graphyard",
        version=graphyard.__version__,
        summary="A production runtime for LangGraph agents, compatible with the LangGraph SDK.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if obs.metrics is not None:  # outermost, so it also counts the 413s above
        app.add_middleware(MetricsMiddleware, metrics=obs.metrics)
    app.state.observability = obs
    install_error_handlers(app)
    app.include_router(_api_threads.router)
    app.include_router(_api_runs.router)
    app.include_router(_api_cost.router)
    app.include_router(_api_replay.router)

    @app.get("/ok", tags=["meta"])
    async def ok() -> dict[str, bool]:
        """Liveness: answers as soon as the server is up (models load on first use)."""
        return {"ok": True}

    @app.get("/info", tags=["meta"])
    async def info(svc: Svc) -> dict[str, Any]:
        """Version, served graph, tiers and whether auth is on."""
        return {
            "version": graphyard.__version__,
            "graph_id": svc.graph_id,
            "assistant_id": svc.assistant_id,
            "auth": svc.auth is not None,
            "tiers": {
                t.name: {"model": t.model_id, "fallback_from": t.fallback_from}
                for t in svc.runtime.tiers.values()
            },
        }

    @app.post("/chat/{thread_id}", tags=["chat"], response_class=EventSourceResponse)
    async def chat(
        thread_id: ThreadId, body: ChatRequest, svc: Svc, request: Request
    ) -> EventSourceResponse:
        """Send a message (or answer an approval) and stream the answer as SSE."""
        user = await svc.user(request)
        frames = await start_chat(svc, thread_id, user, body)
        return EventSourceResponse(
            frames,
            ping=_api_runs.HEARTBEAT_SECONDS,
            ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    if (metrics := obs.metrics) is not None:

        @app.get("/metrics", tags=["meta"], response_class=PlainTextResponse)
        async def prometheus_metrics(request: Request) -> Response:
            """Prometheus metrics. With auth on, any valid API key may read them (unless
            ``GRAPHYARD_METRICS=open``); with auth off the server is loopback-only."""
            if settings.metrics == "auth" and await authenticate(auth, request.headers) is None:
                raise ApiError(401, "unauthorized", "missing or invalid API key (x-api-key header)")
            return Response(metrics.render(), media_type=CONTENT_TYPE)

    mount_web(app)  # the chat page at / (static files; every API call it makes needs the key)
    return app
