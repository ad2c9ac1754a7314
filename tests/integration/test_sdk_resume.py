"""Resumable streams: a client that loses its connection mid-run reconnects with
``Last-Event-ID`` and receives every event exactly once, in order.

Checked on the wire with httpx (dropping the connection by hand, several times), through
the SDK's ``join_stream(last_event_id=...)``, and through the SDK's own automatic reconnect
behind a proxy that cuts the first connection mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client
from sdk_server import Frame, SdkServer, frames, human, running

pytestmark = pytest.mark.server

ASSISTANT = "support"
STREAM_MODES = ["messages-tuple", "updates"]
PACE = {"scripted_delay": 0.25}
"""Run metadata: a token every 0.25 s, so a run streams for about 2.5 s."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdkServer]:
    with running(SdkServer(tmp_path_factory.mktemp("resume"))) as (server,):
        yield server


def run_body(text: str) -> dict[str, Any]:
    return {
        "assistant_id": ASSISTANT,
        "input": human(text),
        "stream_mode": STREAM_MODES,
        "metadata": PACE,
    }


async def read_all(client: httpx.AsyncClient, location: str, **headers: str) -> list[Frame]:
    async with client.stream("GET", location, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        return list(frames([line async for line in response.aiter_lines()]))


async def test_a_stream_dropped_twice_and_resumed_with_last_event_id_yields_every_event_once(
    server: SdkServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        tid = (await client.post("/threads", json={})).json()["thread_id"]

        async with client.stream(
            "POST", f"/threads/{tid}/runs/stream", json=run_body("hello")
        ) as response:
            location = response.headers["location"]
            received = await take(response, 4)
        # the connection is closed here, mid-run
        run_id = received[0].data["run_id"]
        run = (await client.get(f"/threads/{tid}/runs/{run_id}")).json()
        assert run["status"] == "running"

        async with client.stream(
            "GET", location, headers={"Last-Event-ID": received[-1].id}
        ) as response:
            assert response.status_code == 200
            received += await take(response, 3)
        received += await read_all(client, location, **{"Last-Event-ID": received[-1].id})

        everything = await read_all(client, location)  # after the end: the whole run again

    assert everything[0].event == "metadata"
    assert everything[-1].event == "end"
    assert [f.id for f in everything] == [str(i) for i in range(1, len(everything) + 1)]
    assert len(everything) > 10  # so the drops above were mid-stream
    assert received == everything


async def take(response: httpx.Response, count: int) -> list[Frame]:
    """The next ``count`` events of a stream; the caller then drops the connection."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        lines.append(line)
        if line == "" and len(list(frames(lines))) >= count:
            break
    got = list(frames(lines))
    assert len(got) == count, got
    return got


def test_the_sdks_join_stream_resumes_after_a_last_event_id(server: SdkServer) -> None:
    with get_sync_client(url=server.url, api_key=None, timeout=30.0) as client:
        tid = client.threads.create()["thread_id"]
        run = client.runs.create(
            tid, ASSISTANT, input=human("hi"), stream_mode=STREAM_MODES, metadata=PACE
        )
        head = []
        for part in client.runs.join_stream(tid, run["run_id"]):
            head.append(part)
            if len(head) == 5:
                break
        rest = list(client.runs.join_stream(tid, run["run_id"], last_event_id=head[-1].id))
        whole = list(client.runs.join_stream(tid, run["run_id"]))

    assert [p.id for p in whole] == [str(i) for i in range(1, len(whole) + 1)]
    assert head + rest == whole
    assert (whole[0].event, whole[-1].event) == ("metadata", "end")


async def test_a_last_event_id_that_is_not_an_event_id_gets_a_400_json_error(
    server: SdkServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        tid = (await client.post("/threads", json={})).json()["thread_id"]
        run = (
            await client.post(
                f"/threads/{tid}/runs/wait", json={"assistant_id": ASSISTANT, "input": human("x")}
            )
        ).headers["content-location"]
        bad = await client.get(f"{run}/stream", headers={"Last-Event-ID": "not-a-number"})
        assert bad.status_code == 400
        assert bad.json()["error"] == "invalid_request"
        past_the_end = await read_all(client, f"{run}/stream", **{"Last-Event-ID": "100000"})
        assert past_the_end == []


# --- the SDK's automatic reconnect ------------------------------------------------------


class DroppingProxy:
    """A loopback TCP proxy that cuts its first connection after ``cut_after`` bytes of
    response, as a load balancer's idle timeout or a flaky network would."""

    def __init__(self, upstream: int, cut_after: int) -> None:
        self.upstream = upstream
        self.cut_after = cut_after
        self.requests: list[bytes] = []
        """The first bytes each connection sent (its request line and headers)."""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # a connection still open (the client's last one) is closed here, not left to the
        # garbage collector: an unclosed transport is a ResourceWarning, and warnings fail
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        index = len(self.requests)
        self.requests.append(b"")
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except BaseException:
            writer.close()
            raise

        async def upstream() -> None:
            while data := await reader.read(65536):
                if len(self.requests[index]) < 4096:
                    self.requests[index] += data
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            sent = 0
            while data := await up_reader.read(65536):
                if index == 0 and sent + len(data) >= self.cut_after:
                    writer.write(data[: self.cut_after - sent])
                    await writer.drain()
                    return  # cut: both sides are closed below
                writer.write(data)
                sent += len(data)
                await writer.drain()

        pump = asyncio.create_task(upstream())
        try:
            await downstream()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await pump
            for w in (writer, up_writer):
                w.close()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await w.wait_closed()


async def test_the_async_sdk_reconnects_by_itself_after_a_drop_and_misses_nothing(
    server: SdkServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as direct:
        tid = (await direct.post("/threads", json={})).json()["thread_id"]

        async with (
            DroppingProxy(server.port, cut_after=3000) as proxy,
            get_client(url=proxy.url, api_key=None, timeout=30.0) as client,
        ):
            parts = [
                part
                async for part in client.runs.stream(
                    tid,
                    ASSISTANT,
                    input=human("stay with me"),
                    stream_mode=STREAM_MODES,
                    metadata=PACE,
                )
            ]

        location = f"/threads/{tid}/runs/{parts[0].data['run_id']}/stream"
        everything = await read_all(direct, location)

    assert len(proxy.requests) == 2, proxy.requests  # the stream, then one reconnect
    reconnect = proxy.requests[1].decode().splitlines()
    assert reconnect[0] == f"GET {location} HTTP/1.1"
    headers = dict(line.lower().split(": ", 1) for line in reconnect[1:] if ": " in line)
    assert 1 < int(headers["last-event-id"]) < len(everything) - 1  # cut mid-run
    assert [(p.id, p.event, p.data) for p in parts] == [(f.id, f.event, f.data) for f in everything]
    assert (parts[0].event, parts[-1].event) == ("metadata", "end")
