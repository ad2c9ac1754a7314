"""Fixtures for the deployment tests: child processes that are always reaped, and a
SOCKS5 proxy (pproxy) as a real process on 127.0.0.1."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import PPROXY, Spawn, free_port, wait_for_port


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start a child process with its output in ``tmp_path/<name>.log``; killed afterwards."""
    children: list[subprocess.Popen[bytes]] = []

    def start(name: str, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("ab") as log:  # the child keeps its own copy
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
        children.append(process)
        return process  # type: ignore[no-any-return]

    yield start
    for process in children:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)


@pytest.fixture
def socks_proxy(spawn: Spawn, tmp_path: Path) -> tuple[int, Path, subprocess.Popen[bytes]]:
    """pproxy as a SOCKS5 server on 127.0.0.1; its ``-v`` log names every CONNECT."""
    port = free_port()
    process = spawn(
        "pproxy", [sys.executable, "-u", "-c", PPROXY, "-l", f"socks5://127.0.0.1:{port}", "-v"]
    )
    wait_for_port(port, process, tmp_path / "pproxy.log")
    return port, tmp_path / "pproxy.log", process
