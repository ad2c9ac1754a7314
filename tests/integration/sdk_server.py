"""A graphyard server for the LangGraph SDK tests: real uvicorn, scripted models, two knobs more.

It is :class:`scripted_server.ServerProcess` (same environment, logs, stop and kill) serving
:func:`app_factory` instead, whose scripted model

- takes its pace from the run: a run created with ``metadata={"scripted_delay": 0.2}``
  streams one token every 0.2 s (and, not streamed, answers after as long), any other run
  at ``SCRIPTED_DELAY`` (default 0), so one server hosts both quick runs and runs slow
  enough to cancel, drop or interrupt;
- appends one line per model call to ``SCRIPTED_CALLS_FILE``, so a test can tell that a
  refused request never reached a model, even in another process.

It answers like ``scripted_server``: :func:`scripted_server.expected_answer` of the number
of human messages it was shown.

:class:`SdkServer` also lets a second process share the first one's database
(``SdkServer(dir_b, database=a.directory)``) and can serve any ``module:attr`` graph
(``env={"GRAPHYARD_GRAPH": "sdk_graphs:custom_graph"}``). It must never reach a real model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import httpx
from fastapi import FastAPI
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables.config import ensure_config
from scripted_server import ServerProcess, expected_answer

from graphyard.config import TIERS, Settings
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

__all__ = [
    "Frame",
    "PacedModel",
    "Sdk",
    "SdkServer",
    "app_factory",
    "conversation",
    "eventually",
    "frames",
    "human",
    "running",
    "start_all",
]


class PacedModel(ScriptedChatModel):
    """A scripted model whose delay per token comes from the run's metadata."""

    calls_file: str | None = None

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        if self.calls_file:
            with open(self.calls_file, "a", encoding="utf-8") as calls:
                calls.write(f"{len(messages)}\n")
        return super()._next(messages)

    def _delay(self) -> float:
        # The node's config: LangChain passes no run_manager to _astream under ainvoke.
        metadata = ensure_config().get("metadata") or {}
        return float(metadata.get("scripted_delay", self.delay))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        delay = self._delay()
        for chunk in self._chunks(self._next(messages)):
            if delay:
                await asyncio.sleep(delay)
            yield ChatGenerationChunk(message=chunk)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Not streamed (no ``messages`` stream mode): as long as streaming would take."""
        message = self._next(messages)
        if delay := self._delay():
            await asyncio.sleep(delay * len(list(self._chunks(message))))
        return ChatResult(generations=[ChatGeneration(message=message)])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answer(messages: list[BaseMessage]) -> str:
    return expected_answer(sum(isinstance(m, HumanMessage) for m in messages))


def app_factory() -> FastAPI:
    """The app uvicorn serves (``--factory``): settings from ``GRAPHYARD_*``, tiers scripted."""
    model = PacedModel(
        delay=float(os.environ.get("SCRIPTED_DELAY", "0")),
        calls_file=os.environ.get("SCRIPTED_CALLS_FILE"),
    )
    model.responses = [_answer]  # assigned: the constructor rejects callables (a known bug)
    return create_app(Settings(), models=dict.fromkeys(TIERS, model))


@dataclass
class SdkServer(ServerProcess):
    """A uvicorn subprocess serving :func:`app_factory`, data in ``directory``.

    ``database``: another server's directory whose checkpoint database (and shop) this one
    shares, for two processes over one database.
    """

    database: Path | None = None
    factory: ClassVar[str] = "sdk_server:app_factory"

    @property
    def calls_file(self) -> Path:
        return self.directory / "model-calls.txt"

    def model_calls(self) -> int:
        """How many times any model of this server was called."""
        if not self.calls_file.exists():
            return 0
        return len(self.calls_file.read_text().splitlines())

    def environ(self) -> dict[str, str]:
        env = super().environ()
        env["SCRIPTED_CALLS_FILE"] = str(self.calls_file)
        if self.database is not None:
            env["GRAPHYARD_CHECKPOINTER"] = f"sqlite:///{self.database / 'graphyard.db'}"
            env["GRAPHYARD_SHOP_DB"] = str(self.database / "shop.db")
        return {**env, **self.env}

    def start(self, *, timeout: float = 60.0) -> SdkServer:
        """Start the server and wait until it serves requests (not just ``/ok``)."""
        self.launch()
        return self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float = 60.0) -> SdkServer:
        """Wait until the launched server's runtime is open: ``/info`` answers below 500."""
        assert self.process is not None, "not launched"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/info", timeout=2.0).status_code < 500:
                    return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not start within {timeout} s:\n{self.log()}")


def start_all(*servers: SdkServer) -> None:
    """Boot several servers at once (each takes seconds to import and open)."""
    for server in servers:
        server.launch()
    for server in servers:
        server.wait_ready()


@contextlib.contextmanager
def running(*servers: SdkServer) -> Iterator[tuple[SdkServer, ...]]:
    """Servers started together, killed afterwards; their logs printed (pytest shows them
    for a failed test)."""
    try:
        start_all(*servers)
        yield servers
    finally:
        for server in servers:
            server.kill()
            print(server.log())


# --- one interface over the SDK's two clients ------------------------------------------


class Sdk:
    """The async or the sync LangGraph SDK client behind one awaitable interface.

    ``await sdk.threads.create()`` calls ``client.threads.create()``: awaited for the async
    client, in a worker thread for the sync one (so each test runs once per client, through
    that client's own HTTP code). A stream comes back as the list of its parts.
    """

    def __init__(self, target: Any, *, sync: bool) -> None:
        self._target = target
        self.sync = sync

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return Sdk(value, sync=self.sync)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.sync:

                def run() -> Any:
                    result = value(*args, **kwargs)
                    return list(result) if isinstance(result, Iterator) else result

                return await asyncio.to_thread(run)
            result = value(*args, **kwargs)
            if hasattr(result, "__aiter__"):
                return [part async for part in result]
            return await result

        return call


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 20.0) -> None:
    """Wait until ``await check()`` is true (polling), or fail saying ``what`` did not happen."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        await asyncio.sleep(0.1)


def human(text: str) -> dict[str, Any]:
    """A run input: one user message."""
    return {"messages": [{"role": "user", "content": text}]}


def conversation(values: dict[str, Any]) -> list[tuple[str, str]]:
    """Human and final AI messages of a state's values as ``(type, text)``; tool traffic out."""
    return [
        (m["type"], m["content"])
        for m in values.get("messages", [])
        if m["type"] == "human" or (m["type"] == "ai" and not m.get("tool_calls"))
    ]


# --- SSE read by hand, to check the wire format itself ---------------------------------


class Frame(NamedTuple):
    """One SSE event: its ``id``, ``event`` and ``data`` fields (``data`` decoded JSON)."""

    id: str
    event: str
    data: Any
    fields: tuple[str, ...]
    """The field names in the order they came, e.g. ``("id", "event", "data")``."""


def frames(lines: Iterable[str], *, stop_after: int | None = None) -> Iterator[Frame]:
    """The events of an SSE body, comments skipped; stops after ``stop_after`` events."""
    fields: list[tuple[str, str]] = []
    count = 0
    for line in lines:
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            fields.append((name, value.removeprefix(" ")))
            continue
        if not fields:
            continue
        values = dict(fields)
        data = "\n".join(v for k, v in fields if k == "data")
        yield Frame(
            values.get("id", ""),
            values.get("event", ""),
            json.loads(data) if data else None,
            tuple(k for k, _ in fields),
        )
        fields = []
        count += 1
        if stop_after is not None and count >= stop_after:
            return
    if fields:
        raise AssertionError(f"the stream ended inside an event: {fields!r}")
