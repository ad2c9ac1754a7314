"""The start-up gate: `/ok` answers while the app is still being imported and opened,
other requests wait for it and then reach the real app, and a failed start gives 503s and
ends `graphyard serve` with a clear message and exit code 2."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from graphyard.errors import ConfigError
from graphyard.server._gate import StartupGate


def slow_app(release: threading.Event, opened: list[str]) -> Any:
    def build() -> Starlette:
        assert release.wait(10), "the test never released the build"

        async def hello(request: Any) -> JSONResponse:
            return JSONResponse({"hello": "from the app"})

        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            opened.append("open")
            yield
            opened.append("closed")

        return Starlette(routes=[Route("/hello", hello)], lifespan=lifespan)

    return build


async def run_lifespan(
    gate: StartupGate,
) -> tuple[asyncio.Queue[dict[str, Any]], asyncio.Task[None]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(gate({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    return inbox, task


async def test_ok_answers_while_the_app_is_built_and_requests_wait_for_it() -> None:
    release, opened = threading.Event(), []
    gate = StartupGate(slow_app(release, opened))
    inbox, lifespan = await run_lifespan(gate)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url="http://gate")

    ok = await client.get("/ok")
    ready = await client.get("/ready")
    waiting = asyncio.create_task(client.get("/hello"))
    await asyncio.sleep(0.1)

    assert ok.status_code == 200 and ok.json() == {"ok": True}
    assert ready.status_code == 503 and ready.json()["error"] == "starting"
    assert not waiting.done()  # held until the app is ready, not refused

    release.set()
    hello = await asyncio.wait_for(waiting, 10)

    assert hello.status_code == 200 and hello.json() == {"hello": "from the app"}
    assert (await client.get("/ready")).status_code == 200
    assert opened == ["open"]

    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(lifespan, 10)
    assert opened == ["open", "closed"]
    await client.aclose()


async def test_a_failed_start_answers_503_everywhere_and_calls_on_failure() -> None:
    failures: list[BaseException] = []

    def build() -> Starlette:
        raise ConfigError("checkpointer URL 'mongodb://x' is not supported")

    gate = StartupGate(build, on_failure=failures.append)
    inbox, lifespan = await run_lifespan(gate)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url="http://gate")

    other = await client.get("/threads/t1/state")
    ok = await client.get("/ok")

    assert other.status_code == 503
    assert other.json() == {
        "error": "unavailable",
        "message": "the server failed to start: checkpointer URL 'mongodb://x' is not supported",
    }
    assert ok.status_code == 503
    assert [type(f) for f in failures] == [ConfigError]

    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(lifespan, 10)
    await client.aclose()


@pytest.mark.server
def test_graphyard_serve_exits_2_with_the_reason_when_the_runtime_cannot_open(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphyard",
            "serve",
            "--port",
            "0",
            "--graph",
            "no_such_module:graph",
        ],
        env={"PATH": "/usr/bin:/bin", "GRAPHYARD_SHOP_DB": str(tmp_path / "shop.db")},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )

    assert proc.returncode == 2, proc.stderr
    assert "configuration error" in proc.stderr
    assert "no_such_module" in proc.stderr
    assert "Traceback" not in proc.stderr
