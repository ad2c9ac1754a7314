"""A real graphyard server on scripted models, run by uvicorn in a subprocess for tests.

``python -m uvicorn --factory scripted_server:app_factory --app-dir tests/integration``
serves :func:`scripted_app`: settings come from the ``GRAPHYARD_*`` variables the test
passes, and every tier is one :class:`ScriptedChatModel`. Two variables of our own shape
the model:

- ``SCRIPTED_DELAY``: seconds between streamed tokens (default 0);
- ``SCRIPTED_RESPONSE``: a fixed answer; by default the model answers with
  :func:`expected_answer`, which counts the human messages in the prompt it received, so a
  test can tell from the answer alone whether the model saw the earlier turns.

:class:`ServerProcess` starts, stops and kills such a server; in-process tests use
:func:`scripted_app` directly. Neither may reach a real model: every tier is replaced
before the runtime opens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
from fastapi import FastAPI
from langchain_core.messages import BaseMessage, HumanMessage

from graphyard.config import TIERS, Settings, TierConfig
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

__all__ = [
    "ServerProcess",
    "Stream",
    "app_factory",
    "expected_answer",
    "iter_sse",
    "read_stream",
    "scripted_app",
]

HERE = Path(__file__).resolve().parent


def expected_answer(human_messages: int) -> str:
    """What the default scripted model answers when its prompt holds ``human_messages``."""
    return f"Answer {human_messages}: I have read {human_messages} of your messages."


def _answer(messages: list[BaseMessage]) -> str:
    return expected_answer(sum(isinstance(m, HumanMessage) for m in messages))


def scripted_app(settings: Settings, *, delay: float = 0.0, response: str | None = None) -> FastAPI:
    """The graphyard app with every tier served by one scripted model.

    The tiers are configured as ``scripted:<tier>`` so that ``/info`` names what serves
    them and nothing asks for the bundled model's weights.
    """
    tiers = {t: TierConfig(model=f"scripted:{t}") for t in TIERS}
    model = ScriptedChatModel(
        responses=[response if response is not None else _answer], delay=delay
    )
    return create_app(settings.model_copy(update=tiers), models=dict.fromkeys(TIERS, model))


def app_factory() -> FastAPI:
    """The app uvicorn serves (``--factory``), configured by environment variables."""
    return scripted_app(
        Settings(),
        delay=float(os.environ.get("SCRIPTED_DELAY", "0")),
        response=os.environ.get("SCRIPTED_RESPONSE"),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_environ() -> dict[str, str]:
    """This process's environment without anything that configures graphyard or a provider."""
    leaky = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GRAPHYARD_", "SCRIPTED_")) and k not in leaky
    }


@dataclass
class ServerProcess:
    """A uvicorn subprocess serving :func:`app_factory` with its data in ``directory``.

    The checkpoint database and the demo shop live in ``directory``, so a new process
    started on the same directory continues the same threads.
    """

    directory: Path
    delay: float = 0.0
    response: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for the server."""
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    factory: ClassVar[str] = "scripted_server:app_factory"
    """The uvicorn ``--factory`` this server runs."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"server-{self.starts}.log"

    def environ(self) -> dict[str, str]:
        pythonpath = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
        return {
            **_clean_environ(),
            "GRAPHYARD_CHECKPOINTER": f"sqlite:///{self.directory / 'graphyard.db'}",
            "GRAPHYARD_SHOP_DB": str(self.directory / "shop.db"),
            "SCRIPTED_DELAY": str(self.delay),
            **({"SCRIPTED_RESPONSE": self.response} if self.response is not None else {}),
            "PYTHONPATH": pythonpath,
            **self.env,
        }

    def launch(self) -> None:
        """Start the process without waiting for it."""
        assert self.process is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.port = _free_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    self.factory,
                    "--app-dir",
                    str(HERE),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    "--timeout-graceful-shutdown",
                    "10",
                ],
                cwd=self.directory,
                env=self.environ(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start(self, *, timeout: float = 30.0) -> ServerProcess:
        """Start the server and wait until ``/ok`` answers."""
        self.launch()
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/ok", timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server did not answer /ok within {timeout} s:\n{self.log()}")

    def stop(self, *, timeout: float = 20.0) -> int:
        """SIGTERM, as a process manager would, and wait for a graceful exit."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: the process dies at once, as in a crash or an OOM kill."""
        return self._end(signal.SIGKILL, 10.0)

    def client(self) -> httpx.Client:
        """A client for this server (generous timeout: a slow run streams for seconds)."""
        return httpx.Client(base_url=self.url, timeout=httpx.Timeout(30.0))

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def _end(self, sig: signal.Signals, timeout: float) -> int:
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(sig)
        return process.wait(timeout)

    def log(self) -> str:
        """What every process started on this directory wrote, oldest first."""
        logs = sorted(self.directory.glob("server-*.log"), key=lambda p: p.stat().st_mtime)
        return "".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in logs)


# --- SSE, parsed by hand so the tests check the wire format and not a client's reading --


def iter_sse(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """``("comment", text)`` and ``("data", frame)`` items of an SSE response, in order.

    A frame is the JSON of its ``data:`` lines, or the string ``"[DONE]"``.
    """
    data: list[str] = []
    for line in response.iter_lines():
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line == "" and data:
            text = "\n".join(data)
            data = []
            yield "data", text if text == "[DONE]" else json.loads(text)
    if data:
        raise AssertionError(f"stream ended inside an event: {data!r}")


@dataclass
class Stream:
    """A whole SSE response: its frames and comments, or the error body if not 200."""

    status: int
    content_type: str
    frames: list[Any]
    comments: list[str]
    error: dict[str, Any] | None = None

    @property
    def tokens(self) -> str:
        return "".join(f["token"] for f in self.frames if isinstance(f, dict) and "token" in f)

    def first(self, key: str) -> Any:
        return next(f for f in self.frames if isinstance(f, dict) and key in f)

    @property
    def summary(self) -> dict[str, Any]:
        """The last frame before ``[DONE]``: this turn's tier, cost and usage."""
        assert self.frames[-1] == "[DONE]", self.frames
        return self.frames[-2]  # type: ignore[no-any-return]


def read_stream(client: httpx.Client, thread_id: str, body: Any) -> Stream:
    """POST ``body`` to ``/chat/{thread_id}`` and read the stream to its end."""
    with client.stream("POST", f"/chat/{thread_id}", json=body) as response:
        content_type = response.headers.get("content-type", "")
        if response.status_code != 200:
            response.read()
            return Stream(response.status_code, content_type, [], [], error=response.json())
        frames: list[Any] = []
        comments: list[str] = []
        for kind, item in iter_sse(response):
            (frames if kind == "data" else comments).append(item)
        return Stream(response.status_code, content_type, frames, comments)
