"""A start-up gate: answer ``/ok`` at once, serve everything else when the app is ready.

Importing FastAPI, LangGraph, LangChain and the providers' SDKs and opening the runtime
(checkpointer, tiers, graph) takes seconds on a small machine, most of it imports. A
platform that waits for a health check before sending traffic (the AWS Lambda Web Adapter
polls ``/ok``; a load balancer; a process manager) would wait for all of it.

:class:`StartupGate` is the ASGI app uvicorn serves. It answers ``GET /ok`` itself from the
first moment (and ``GET /ready``, which answers 200 only once the real app serves), while a
worker thread imports and builds the real app and a task opens its
lifespan. Every other request waits for that (``STARTUP_WAIT`` seconds at most) and is then
handed to the real app unchanged; if the start failed, it gets a 503 JSON body and the
process is told to exit (``on_failure``), so a configuration error still ends
``graphyard serve`` with a clear message and a non-zero exit code.

This module must never import FastAPI, LangChain or LangGraph at import time: that would
undo its purpose. It imports only the standard library.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["STARTUP_WAIT", "StartupGate"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

STARTUP_WAIT = 120.0
"""Seconds a request that arrives during start-up waits for the app before a 503."""


class StartupGate:
    """ASGI app: ``/ok`` at once, the app built by ``build`` for everything else.

    ``build`` runs in a worker thread (it may import heavy modules) and returns a Starlette
    or FastAPI app, whose lifespan the gate then runs; it starts once ``listening()`` is
    true (the server has bound its socket), or at once without it. ``on_failure`` is called
    once, on the event loop, if building or starting the app fails.

    >>> import asyncio
    >>> from starlette.applications import Starlette
    >>> gate = StartupGate(Starlette)
    >>> asyncio.run(gate.wait_ready(timeout=5)) is not None
    True
    """

    def __init__(
        self,
        build: Callable[[], Any],
        *,
        on_failure: Callable[[BaseException], None] | None = None,
        startup_wait: float = STARTUP_WAIT,
        listening: Callable[[], bool] | None = None,
    ) -> None:
        self._build = build
        self._listening = listening
        self._on_failure = on_failure
        self._startup_wait = startup_wait
        self._app: Any = None
        self._ready: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        """Why the app could not start, once it has failed."""

    # --- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            if scope["path"] == "/ok":
                await self._ok(scope, send)
                return
            if scope["path"] == "/ready":
                await self._readiness(scope, send)
                return
        app = self._app
        if app is None:
            try:
                app = await self.wait_ready(timeout=self._startup_wait)
            except TimeoutError:
                await _refuse(scope, send, 503, "starting", "the server is still starting; retry")
                return
        if app is None:
            await _refuse(scope, send, 503, "unavailable", self._failure_message())
            return
        await app(scope, receive, send)

    async def wait_ready(self, *, timeout: float) -> Any:  # noqa: ASYNC109
        """The app once it is serving, or ``None`` if it failed to start.

        Starts the app first when no lifespan has (tests, doctests).
        """
        if self._task is None:
            self._begin()
        assert self._ready is not None
        await asyncio.wait_for(self._ready.wait(), timeout)
        return self._app

    async def _ok(self, scope: Scope, send: Send) -> None:
        if self.error is None:
            await _respond(scope, send, 200, {"ok": True})
        else:
            await _refuse(scope, send, 503, "unavailable", self._failure_message())

    async def _readiness(self, scope: Scope, send: Send) -> None:
        if self._app is not None:
            await _respond(scope, send, 200, {"ready": True})
        elif self.error is None:
            await _refuse(scope, send, 503, "starting", "the server is still starting; retry")
        else:
            await _refuse(scope, send, 503, "unavailable", self._failure_message())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup", message
        self._begin()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown", message
        await self._end()
        await send({"type": "lifespan.shutdown.complete"})

    # --- start and stop ---------------------------------------------------------------

    def _begin(self) -> None:
        self._ready, self._stop = asyncio.Event(), asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="graphyard-startup")

    async def _end(self) -> None:
        if self._task is None:
            return
        assert self._stop is not None
        self._stop.set()
        await self._task

    async def _run(self) -> None:
        assert self._ready is not None and self._stop is not None
        try:
            # The imports hold the GIL most of the time: begin once the socket is bound, so
            # they do not slow down the start of the server that answers /ok.
            while self._listening is not None and not self._listening():
                if self._stop.is_set():
                    return
                await asyncio.sleep(0.005)
            app = await asyncio.to_thread(self._build)
            if self._stop.is_set():  # shut down while importing: don't open the runtime
                return
            async with app.router.lifespan_context(app):
                self._app = app
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:
            self.error = exc
            log.error("the server failed to start: %s", exc, exc_info=_is_unexpected(exc))
            if self._on_failure is not None:
                self._on_failure(exc)
        finally:
            self._app = None
            self._ready.set()

    def _failure_message(self) -> str:
        if self.error is None:
            return "the server is shutting down"
        if _is_unexpected(self.error):
            return "the server failed to start; see its log"
        return f"the server failed to start: {self.error}"


def _is_unexpected(exc: BaseException) -> bool:
    """Configuration errors are explained by their message; anything else needs its trace."""
    from graphyard.errors import ConfigError

    return not isinstance(exc, ConfigError)


async def _respond(scope: Scope, send: Send, status: int, body: Any, **headers: str) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send(
        {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else payload}
    )


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013, "reason": message[:120]})
        return
    await _respond(scope, send, status, {"error": code, "message": message}, retry_after="5")
