"""Helpers for the deployment tests (imported by name, like tests/integration's
scripted_server): paths, free ports, a clean environment, the Ollama stand-in."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEPLOY = ROOT / "deploy" / "lambda"

# pproxy: a widely used SOCKS5/HTTP proxy server on PyPI (last release 2.7.9, 2024-01), so no
# proxy of our own. It calls asyncio.get_event_loop() before any loop exists and installs
# uvloop when it can; with uvloop 0.23 (which graphyard's server uses) that raises "no
# current event loop". Hiding uvloop from it runs pproxy on the standard asyncio loop,
# unchanged otherwise.
PPROXY = (
    "import sys; sys.modules['uvloop'] = None; "
    "from pproxy.server import main; sys.argv[0] = 'pproxy'; main()"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listened on {port} within {timeout} s:\n{log.read_text()}")


def clean_environ() -> dict[str, str]:
    """This environment without graphyard settings, provider keys or proxy variables."""
    drop = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_PROXY", "ANTHROPIC_PROXY")
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GRAPHYARD_") and k not in drop and not k.lower().endswith("_proxy")
    }


Spawn = Callable[..., subprocess.Popen[bytes]]


def start_standin(spawn: Spawn, tmp_path: Path, name: str) -> tuple[int, Path]:
    """An Ollama stand-in process; returns its port and its request log."""
    port = free_port()
    requests = tmp_path / f"{name}-requests.jsonl"
    requests.touch()
    process = spawn(
        name, [sys.executable, "-u", str(HERE / "ollama_standin.py"), str(port), str(requests)]
    )
    wait_for_port(port, process, tmp_path / f"{name}.log")
    return port, requests
