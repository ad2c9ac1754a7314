"""The graphyard server that schemathesis fuzzes: real uvicorn, SQLite in a temp dir, scripted tiers.

``python -m uvicorn --factory schema_server:app_factory --app-dir tests/integration`` builds
:func:`build_app` from two environment variables:

- ``SCHEMA_SERVER_DIR``: the directory holding the checkpoint database and the demo shop;
- ``SCHEMA_SERVER_API_KEYS``: optional JSON ``{"key": "user"}``; auth is off without it.

Every tier is one :class:`graphyard.testing.ScriptedChatModel` that answers at once, so a
run started by a fuzzed request ends in milliseconds and the fuzzer never waits on a model.
:class:`SchemaServer` starts, and always stops, such a server on a free loopback port.

It must never reach a real model or the network: the factory replaces every tier before the
runtime opens, and the server binds 127.0.0.1 only.
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
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from fastapi import FastAPI

from graphyard.config import TIERS, Settings
from graphyard.server import create_app
from graphyard.testing import ScriptedChatModel

__all__ = ["ANSWER", "SchemaServer", "app_factory", "build_app"]

HERE = Path(__file__).resolve().parent
ANSWER = "Thanks for your message: your order ships tomorrow."
"""What every scripted tier answers."""
_LEAKY_PREFIXES = ("GRAPHYARD_", "SCHEMA_SERVER_", "LANGSMITH_", "LANGCHAIN_")
_LEAKY = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")


def build_app(directory: Path, *, api_keys: dict[str, str] | None = None) -> FastAPI:
    """``create_app`` with its data in ``directory`` and every tier scripted."""
    settings = Settings(
        checkpointer=f"sqlite:///{directory / 'graphyard.db'}",
        shop_db=directory / "shop.db",
        api_keys=api_keys or {},
    )
    model = ScriptedChatModel(responses=[ANSWER])
    return create_app(settings, models=dict.fromkeys(TIERS, model))


def app_factory() -> FastAPI:
    """The app uvicorn serves (``--factory``), configured by ``SCHEMA_SERVER_*``."""
    directory = Path(os.environ["SCHEMA_SERVER_DIR"])
    keys = json.loads(os.environ.get("SCHEMA_SERVER_API_KEYS") or "{}")
    return build_app(directory, api_keys=keys)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SchemaServer:
    """A uvicorn subprocess serving :func:`app_factory`, data and log in ``directory``.

    Use it as a context manager: the process is killed on exit, whatever happened.
    """

    directory: Path
    api_keys: dict[str, str] | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def environ(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_LEAKY_PREFIXES) and k not in _LEAKY
        }
        env["SCHEMA_SERVER_DIR"] = str(self.directory)
        if self.api_keys:
            env["SCHEMA_SERVER_API_KEYS"] = json.dumps(self.api_keys)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        return env

    def start(self, *, timeout: float = 60.0) -> SchemaServer:
        """Start the server; return once ``/info`` answers (the runtime is open)."""
        assert self.process is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "schema_server:app_factory",
                    "--app-dir",
                    str(HERE),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    "--timeout-graceful-shutdown",
                    "5",
                ],
                cwd=self.directory,
                env=self.environ(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        headers = {"x-api-key": next(iter(self.api_keys))} if self.api_keys else {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/info", headers=headers, timeout=2.0).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 10 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def log(self, since: int = 0) -> str:
        """What the server wrote, from byte ``since`` of its log (see :meth:`log_size`)."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def __enter__(self) -> SchemaServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        self.stop()
