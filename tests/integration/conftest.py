"""Fixtures for tests that talk HTTP to a real uvicorn serving scripted models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from scripted_server import ServerProcess

SLOW_DELAY = 0.25
"""Seconds between tokens on the slow server: a turn streams for about 2.5 s."""


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a server with its data in this test's directory; killed after the test."""
    servers: list[ServerProcess] = []

    def start(**options: Any) -> ServerProcess:
        server = ServerProcess(tmp_path / "server", **options)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.kill()
        print(server.log())  # pytest shows it when the test failed


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that only need distinct threads (saves a start per test)."""
    server = ServerProcess(tmp_path_factory.mktemp("fast-server")).start()
    yield server
    server.kill()
    print(server.log())


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose model streams one token every ``SLOW_DELAY`` seconds."""
    server = ServerProcess(tmp_path_factory.mktemp("slow-server"), delay=SLOW_DELAY).start()
    yield server
    server.kill()
    print(server.log())
