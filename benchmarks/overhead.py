"""What graphyard adds to the time to first token (TTFT), measured side by side.

Two scenarios, each ours vs a baseline in the same run, interleaved (the order alternates
every iteration, so background load and ordering effects hit both sides equally):

- ``scripted``: ``POST /chat/{thread}`` over real HTTP to a real uvicorn server in a
  subprocess (uvicorn set up as ``graphyard serve`` sets it up: uvloop/httptools when
  installed, access log on; SQLite checkpointer with the default ``synchronous`` and
  ``durability`` unless ``--sqlite-synchronous``/``--durability`` say otherwise), all tiers a
  ``ScriptedChatModel``; vs streaming the same kind of model directly in this process.
  The path is router -> trim -> planner (the message triggers no tool), so the difference
  is graphyard's whole cost: HTTP, SSE, ``aget_state``, checkpoints, graph steps.
- ``local``: the same endpoint on a server with the default tiers and no API keys, so every
  tier is the bundled SmolLM2 (``GRAPHYARD_LOCAL__THREADS=1``); vs a ``LocalModelServer``
  of our own (same xllamacpp parameters) called on ``/v1/chat/completions`` with the same
  request ``ChatOpenAI`` sends for the graph's prompt (system prompt + the user message,
  the cheap tier's ``max_completion_tokens``, streamed with usage).

TTFT is the time from sending the request to receiving the first non-empty token (an SSE
``{"token": ...}`` frame, or an OpenAI ``delta.content``). Every stream is read to its end
before the next request starts, so no run is still generating in the background, and each
request waits ``--pause`` (100 ms) first: graphyard still does a run's bookkeeping (final
state read, run record, event flush) after sending ``[DONE]``, and a request sent at once
would wait for it (``--pause 0`` measures that case). Each request uses a new thread id.
Failed graphyard requests are not timed; they are counted in the table, with the
server's exception lines.

Run::

    .venv/bin/python benchmarks/overhead.py                 # both scenarios
    .venv/bin/python benchmarks/overhead.py --only scripted --n 100
    .venv/bin/python benchmarks/overhead.py --sqlite-synchronous NORMAL   # try a setting
    .venv/bin/python benchmarks/overhead.py --pause 0      # back-to-back turns

Needs no network: servers listen on 127.0.0.1, API keys are removed from the server's
environment. Servers are stopped on exit, on Ctrl-C and on SIGTERM (and a server whose
parent dies stops itself).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

Scenario = Literal["scripted", "local"]

GOAL_MS = 15.0
"""What graphyard may add to the first token (p50 difference)."""
MESSAGE = "hello there"
"""Routes to the cheap tier and plans no tool call: router -> trim -> planner."""
SCRIPTED_ANSWER = "Hello! How can I help you with your order today?"
WARMUPS = 3
DEFAULT_N: dict[Scenario, int] = {"scripted": 30, "local": 10}
SERVER_START_TIMEOUT = 60.0
# Variables that could make the server reach the network (real providers, tracing) or pick
# up a developer's configuration.
_LEAKY_PREFIXES = ("GRAPHYARD_", "LANGSMITH_", "LANGCHAIN_")
_LEAKY = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")

console = Console()
if not console.is_terminal:
    console = Console(width=max(console.width, 120))  # keep the table readable in logs


# --------------------------------------------------------------------------- server side


def _serve(scenario: Scenario, workdir: Path, fd: int, overrides: dict[str, str]) -> None:
    """Child process: serve graphyard on the inherited listening socket ``fd``."""
    import logging

    import uvicorn

    from graphyard.config import Settings
    from graphyard.models import ScriptedChatModel
    from graphyard.server import create_app

    settings = Settings(
        checkpointer=f"sqlite:///{workdir / 'graphyard.db'}",
        shop_db=workdir / "shop.db",
        **overrides,  # type: ignore[arg-type]
    )
    models: Any = None
    if scenario == "scripted":
        model = ScriptedChatModel(responses=[SCRIPTED_ANSWER])
        models = {"cheap": model, "mid": model, "strong": model}
    # As `graphyard serve` does (log level info: uvicorn's access log is on).
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, models=models), log_level="info", timeout_graceful_shutdown=15
        )
    )

    def exit_with_parent() -> None:
        sys.stdin.buffer.read()  # EOF: the parent closed the pipe or died
        server.should_exit = True

    threading.Thread(target=exit_with_parent, daemon=True).start()
    server.run(sockets=[socket.socket(fileno=fd)])


@dataclass
class ServerProcess:
    """A graphyard server in a subprocess, listening on a socket bound here (no port race)."""

    scenario: Scenario
    workdir: Path
    overrides: dict[str, str]
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "server.log"

    def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_LEAKY_PREFIXES) and k not in _LEAKY
        }
        env["GRAPHYARD_LOCAL__THREADS"] = "1"
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        with sock, self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--serve",
                    self.scenario,
                    "--workdir",
                    str(self.workdir),
                    "--fd",
                    str(sock.fileno()),
                    "--overrides",
                    json.dumps(self.overrides),
                ],
                pass_fds=[sock.fileno()],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,  # no graphyard.toml of the developer's
                env=env,
                start_new_session=True,  # Ctrl-C reaches us; we stop the server in order
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/ok", timeout=1.0, trust_env=False).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # the server's watcher asks uvicorn to shut down
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- measurements


class RequestFailed(Exception):
    """A request that produced no first token; counted and shown, not timed."""


async def graphyard_ttft(client: httpx.AsyncClient, url: str) -> float:
    """Seconds from sending a message to the first ``{"token": ...}`` frame; reads to [DONE]."""
    try:
        return await _graphyard_ttft(client, url)
    except httpx.TransportError as exc:  # e.g. the server dropped the stream
        raise RequestFailed(f"{type(exc).__name__} {exc}".strip()) from exc


async def _graphyard_ttft(client: httpx.AsyncClient, url: str) -> float:
    thread = f"bench-{uuid.uuid4().hex}"
    ttft: float | None = None
    started = time.perf_counter()
    async with client.stream("POST", f"{url}/chat/{thread}", json={"content": MESSAGE}) as r:
        if r.status_code != 200:
            body = (await r.aread()).decode(errors="replace")
            raise RequestFailed(f"POST /chat answered {r.status_code}: {body[:300]}")
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            event = json.loads(data)
            if ttft is None and event.get("token"):
                ttft = time.perf_counter() - started
            if "error" in event:
                raise RequestFailed(f"the run failed: {event['error']}")
    if ttft is None:
        raise RequestFailed("the run streamed no token")
    return ttft


async def scripted_direct_ttft(model: Any, prompt: list[Any]) -> float:
    """Seconds to the first non-empty chunk of ``model.astream(prompt)``; reads to the end."""
    ttft: float | None = None
    started = time.perf_counter()
    async for chunk in model.astream(prompt):
        if ttft is None and chunk.content:
            ttft = time.perf_counter() - started
    assert ttft is not None
    return ttft


async def llama_direct_ttft(
    client: httpx.AsyncClient, base_url: str, payload: dict[str, Any]
) -> float:
    """Seconds to the first ``delta.content`` of xllamacpp's OpenAI stream; reads to the end."""
    ttft: float | None = None
    started = time.perf_counter()
    async with client.stream("POST", f"{base_url}/v1/chat/completions", json=payload) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            for choice in json.loads(data).get("choices") or []:
                if ttft is None and (choice.get("delta") or {}).get("content"):
                    ttft = time.perf_counter() - started
    if ttft is None:
        raise RuntimeError("the model streamed no content")
    return ttft


@dataclass
class Result:
    scenario: Scenario
    baseline_label: str
    baseline: list[float]
    ours: list[float]
    failures: list[str] = field(default_factory=list)
    """Messages of graphyard requests that failed (not timed)."""
    server_errors: list[str] = field(default_factory=list)
    """Exception lines from the server's log, to explain the failures."""
    aborted: bool = False
    """Stopped early because most graphyard requests failed."""


async def side_by_side(
    scenario: Scenario,
    baseline_label: str,
    baseline: Callable[[], Awaitable[float]],
    ours: Callable[[], Awaitable[float]],
    n: int,
    progress: Progress,
    pause: float,
) -> Result:
    """``WARMUPS`` then ``n`` measured rounds; the side that goes first alternates.

    Each request starts ``pause`` seconds after the previous one ended: graphyard finishes
    a run's bookkeeping after its last frame, and a request sent at once waits for it.
    """
    task = progress.add_task(f"{scenario}: warm-up", total=WARMUPS + n)
    result = Result(scenario, baseline_label, [], [])
    for i in range(WARMUPS + n):
        if i == WARMUPS:
            progress.update(task, description=f"{scenario}: measuring")
        order = [(baseline, result.baseline), (ours, result.ours)]
        if i % 2:
            order.reverse()
        for measure, into in order:
            await asyncio.sleep(pause)
            try:
                seconds = await measure()
            except RequestFailed as exc:
                result.failures.append(str(exc))
                continue
            if i >= WARMUPS:
                into.append(seconds)
        if len(result.failures) > max(WARMUPS + n, 10) // 2:
            result.aborted = True  # timing a broken server says nothing
            break
        progress.advance(task)
    progress.remove_task(task)
    return result


def _prompt_messages() -> list[Any]:
    """What the planner sends for MESSAGE: a model without tools, a fresh thread."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from graphyard.agent._prompts import WITHOUT_TOOLS

    return [SystemMessage(WITHOUT_TOOLS), HumanMessage(MESSAGE)]


async def run_scripted(url: str, n: int, progress: Progress, pause: float) -> Result:
    from graphyard.models import ScriptedChatModel

    model = ScriptedChatModel(responses=[SCRIPTED_ANSWER])
    prompt = _prompt_messages()
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        return await side_by_side(
            "scripted",
            "ScriptedChatModel.astream() in-process",
            lambda: scripted_direct_ttft(model, prompt),
            lambda: graphyard_ttft(client, url),
            n,
            progress,
            pause,
        )


async def run_local(url: str, llama_url: str, n: int, progress: Progress, pause: float) -> Result:
    from graphyard.agent._prompts import WITHOUT_TOOLS
    from graphyard.config import Settings

    # The request ChatOpenAI(stream_usage=True) makes for the planner's prompt.
    payload = {
        "model": "smollm2",
        "messages": [
            {"role": "system", "content": WITHOUT_TOOLS},
            {"role": "user", "content": MESSAGE},
        ],
        "max_completion_tokens": Settings.model_fields["cheap"].default.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    # xllamacpp closes the connection after each streamed completion without saying so, and
    # reusing it races with that close: open a new one per request (graphyard's model client
    # has to reconnect per call for the same reason).
    async with (
        httpx.AsyncClient(timeout=600, trust_env=False) as client,
        httpx.AsyncClient(
            timeout=600, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
        ) as llama_client,
    ):
        return await side_by_side(
            "local",
            "xllamacpp /v1/chat/completions direct",
            lambda: llama_direct_ttft(llama_client, llama_url, payload),
            lambda: graphyard_ttft(client, url),
            n,
            progress,
            pause,
        )


def run_local_with_baseline_server(url: str, n: int, progress: Progress, pause: float) -> Result:
    from graphyard.config import LocalModelConfig
    from graphyard.models import LocalModelServer

    # Same parameters as the server's (GRAPHYARD_LOCAL__THREADS=1), in this process.
    llama = LocalModelServer(LocalModelConfig(threads=1))
    try:
        return asyncio.run(run_local(url, llama.start(), n, progress, pause))
    finally:
        llama.stop()


# --------------------------------------------------------------------------- report


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def report(results: list[Result]) -> None:
    table = Table(title=f"Time to first token, graphyard vs baseline (goal: adds < {GOAL_MS:g} ms)")
    table.add_column("scenario")
    table.add_column("n", justify="right")
    table.add_column("baseline p50 ms", justify="right")
    table.add_column("baseline p95 ms", justify="right")
    table.add_column("graphyard p50 ms", justify="right")
    table.add_column("graphyard p95 ms", justify="right")
    table.add_column("added p50 ms", justify="right")
    table.add_column("ratio (p50)", justify="right")
    table.add_column("goal", justify="center")
    table.add_column("failed", justify="right")
    for r in results:
        if r.aborted or not r.ours or not r.baseline:
            failed = f"[red]{len(r.failures)}[/]"
            table.add_row(r.scenario, str(len(r.ours)), *["-"] * 6, "[red]ABORTED[/]", failed)
            continue
        b50, b95 = statistics.median(r.baseline) * 1e3, percentile(r.baseline, 95) * 1e3
        o50, o95 = statistics.median(r.ours) * 1e3, percentile(r.ours, 95) * 1e3
        added = o50 - b50
        meets = added < GOAL_MS
        table.add_row(
            r.scenario,
            str(len(r.ours)),
            f"{b50:.2f}",
            f"{b95:.2f}",
            f"{o50:.2f}",
            f"{o95:.2f}",
            f"{added:+.2f}",
            f"{o50 / b50:.2f}x",
            "[green]met[/]" if meets else "[red]MISSED[/]",
            f"[red]{len(r.failures)}[/]" if r.failures else "0",
        )
    console.print(table)
    for r in results:
        console.print(f"  {r.scenario}: baseline = {r.baseline_label}")
    for r in results:
        for message in sorted(set(r.failures)):
            count = r.failures.count(message)
            console.print(f"  [red]{r.scenario}: {count} graphyard request(s) failed:[/] {message}")
        for line in sorted(set(r.server_errors)):
            console.print(f"    server log ({r.server_errors.count(line)} such lines): {line}")


def describe_setup(overrides: dict[str, str], pause: float) -> None:
    import graphyard
    from graphyard.config import Settings

    server = {
        name: overrides.get(name, Settings.model_fields[name].default)
        for name in ("sqlite_synchronous", "durability")
    }
    console.print(
        f"graphyard {graphyard.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; server: SQLite synchronous={server['sqlite_synchronous']}, "
        f"durability={server['durability']}; message {MESSAGE!r}; {WARMUPS} warm-ups; "
        f"{pause * 1e3:g} ms idle before each request"
        + "".join(f"; {k}={v}" for k, v in overrides.items() if k not in server)
    )


# --------------------------------------------------------------------------- main


@contextmanager
def graphyard_server(
    scenario: Scenario, workdir: Path, overrides: dict[str, str]
) -> Iterator[ServerProcess]:
    workdir.mkdir()
    server = ServerProcess(scenario, workdir, overrides)
    try:
        server.start()
        yield server
    except Exception:
        lines = server.log_path.read_text(errors="replace").splitlines()
        console.print(f"server log (last 30 lines of {len(lines)}):", *lines[-30:], sep="\n")
        raise
    finally:
        server.stop()


def _exception_lines(log: Path) -> list[str]:
    return [
        line
        for line in log.read_text(errors="replace").splitlines()
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Busy|Unavailable)\b.*:", line)
    ]


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwind through the finally blocks that stop the servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="TTFT overhead of graphyard vs direct model calls.",
        epilog="example: .venv/bin/python benchmarks/overhead.py --only scripted --n 100",
    )
    parser.add_argument(
        "--n", type=int, help="measured requests per side (default: 30 scripted, 10 local)"
    )
    parser.add_argument("--only", choices=["scripted", "local"], help="run one scenario")
    parser.add_argument(
        "--pause",
        type=float,
        default=0.1,
        help="seconds of idle before each request, both sides (default: 0.1; 0 measures "
        "back-to-back turns, which also pay for the previous run's bookkeeping)",
    )
    parser.add_argument(
        "--sqlite-synchronous",
        choices=["OFF", "NORMAL", "FULL", "EXTRA"],
        help="the server's Settings.sqlite_synchronous (default: graphyard's default)",
    )
    parser.add_argument(
        "--durability",
        choices=["sync", "async", "exit"],
        help="the server's Settings.durability (default: graphyard's default)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any other server setting (VALUE as JSON where it parses, e.g. "
        "'cache={\"enabled\": false}' or metrics=off); repeatable",
    )
    parser.add_argument("--serve", choices=["scripted", "local"], help=argparse.SUPPRESS)
    parser.add_argument("--overrides", type=json.loads, default={}, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.workdir, args.fd, args.overrides)
        return 0
    if args.n is not None and args.n < 1:
        parser.error("--n must be at least 1")

    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    scenarios: list[Scenario] = [args.only] if args.only else ["scripted", "local"]
    overrides = {
        k: v
        for k, v in {
            "sqlite_synchronous": args.sqlite_synchronous,
            "durability": args.durability,
        }.items()
        if v is not None
    }
    from graphyard.config import Settings

    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep or field not in Settings.model_fields:
            parser.error(f"--set takes FIELD=VALUE with a Settings field, got {item!r}")
        try:
            overrides[field] = json.loads(value)
        except json.JSONDecodeError:
            overrides[field] = value
    describe_setup(overrides, args.pause)
    results: list[Result] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="graphyard-bench-") as tmp,
            Progress(console=console, transient=True) as progress,
        ):
            for scenario in scenarios:
                n = args.n or DEFAULT_N[scenario]
                with graphyard_server(scenario, Path(tmp) / scenario, overrides) as server:
                    if scenario == "scripted":
                        result = asyncio.run(run_scripted(server.url, n, progress, args.pause))
                    else:
                        result = run_local_with_baseline_server(server.url, n, progress, args.pause)
                    if result.failures:
                        result.server_errors = _exception_lines(server.log_path)
                    results.append(result)
    except KeyboardInterrupt:
        console.print("interrupted; servers stopped")
        return 130
    report(results)
    return 1 if any(r.aborted for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
